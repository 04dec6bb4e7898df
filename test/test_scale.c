/* test_scale.c - scale edges. Past 2^31 rows, through memory-cheap paths (a generated source of the
 * runtime, fb_source_callback(), handing out views of one template morsel; a join whose pairs are
 * counted by an aggregation, never materialized):
 *   big_agg   count(*), sum, min, max of one group over 2^31 + 5 generated rows (fb_query_add_agg);
 *   big_join  a plan joining 33000 probe rows with a build key repeated 65536 times: 2,160,525,312
 *             pairs into count(*) and sum of a build column (fb_plan_join → fb_plan_aggregate);
 *   big_top_n the 4 smallest keys of 2^31 + 5 generated rows, planted past row 2^31 (two of them
 *             equal: stability), with fb_sort_top_n per morsel and a merge per worker; their row
 *             numbers are global (past 2^31).
 * A full sort past 2^31 rows needs more than 8 GiB (keys and a permutation): not done here.
 * Moderate sizes (every ISA's default context, 2 workers), each against a scalar reference written here:
 *   edges_agg, edges_sort, edges_join  keys all equal (one group), every row its own group (distinct
 *             keys), Zipf 2.0 keys (half the rows on one key), and a random control.
 * Run one test: test_scale NAME (a cmocka filter); ctest runs the moderate ones as scale_edges and each
 * big one as its own entry labelled `scale` (not under the sanitizers). */
#include "fb_test.h"

#include "fb_pipeline_join_internal.h"

#include <stdatomic.h>

static uint64_t rng;
static fb_ctx *ctx;

/* ---- key shapes ---------------------------------------------------------------------------------------- */

typedef enum { SHAPE_EQUAL, SHAPE_DISTINCT, SHAPE_ZIPF, SHAPE_RANDOM, SHAPES } shape;
static const char *const shape_names[SHAPES] = {"all equal", "all distinct", "zipf 2.0", "random"};

/* Zipf(s = 2) over ranks 1..ranks by inverse CDF (cdf of `ranks` entries, built once per call). */
static void fill_keys(int64_t *k, int64_t n, shape s, uint64_t *r)
{
    if (s == SHAPE_EQUAL) {
        for (int64_t i = 0; i < n; i++)
            k[i] = -77;
    } else if (s == SHAPE_DISTINCT) { /* a shuffled arithmetic progression: every key once */
        for (int64_t i = 0; i < n; i++)
            k[i] = i * 7919 - n;
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)(fbt_next(r) % (uint64_t)(i + 1)), t = k[i];
            k[i] = k[j];
            k[j] = t;
        }
    } else if (s == SHAPE_ZIPF) {
        enum { RANKS = 1 << 16 };
        static double cdf[RANKS];
        double sum = 0;
        for (int i = 0; i < RANKS; i++)
            cdf[i] = (sum += 1.0 / ((double)(i + 1) * (double)(i + 1)));
        for (int64_t i = 0; i < n; i++) {
            double u = (double)(fbt_next(r) >> 11) / 9007199254740992.0 * sum;
            int lo = 0, hi = RANKS - 1;
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (cdf[mid] < u)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            k[i] = (int64_t)lo * 1000003 - 5; /* rank 0 (about 61 % of the rows) is key -5 */
        }
    } else {
        for (int64_t i = 0; i < n; i++)
            k[i] = (int64_t)(fbt_next(r) % 50000) - 25000;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* (key, row) pairs, sorted: the stable order of the keys. */
typedef struct kr {
    int64_t key, row;
} kr;

static int cmp_kr(const void *a, const void *b)
{
    const kr *x = a, *y = b;
    if (x->key != y->key)
        return (x->key > y->key) - (x->key < y->key);
    return (x->row > y->row) - (x->row < y->row);
}

static kr *sorted_pairs(const int64_t *k, int64_t n)
{
    kr *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++)
        p[i] = (kr){k[i], i};
    qsort(p, (size_t)n, sizeof *p, cmp_kr);
    return p;
}

/* ---- moderate sizes ------------------------------------------------------------------------------------ */

static void test_edges_agg(void **state)
{
    (void)state;
    const int64_t n = 300000;
    int64_t *k = malloc(8 * n);
    int32_t *v = malloc(4 * n);
    for (int s = 0; s < SHAPES; s++) {
        fill_keys(k, n, (shape)s, &rng);
        for (int64_t i = 0; i < n; i++)
            v[i] = (int32_t)(fbt_next(&rng) % 2000001) - 1000000;
        /* reference: groups of the sorted (key, row) pairs */
        kr *p = sorted_pairs(k, n);
        int64_t groups = 0;
        for (int64_t i = 0; i < n; i++)
            groups += i == 0 || p[i].key != p[i - 1].key;
        fb_type kt = FB_TYPE_INT64;
        fb_agg_desc aggs[4] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT32},
                               {FB_AGG_MIN, 0, FB_TYPE_INT32}, {FB_AGG_MAX, 0, FB_TYPE_INT32}};
        fb_agg_spec spec = {1, &kt, 4, aggs, FB_AGG_STRATEGY_AUTO};
        fb_column cols[2] = {fb_column_make(FB_TYPE_INT64, k, n, NULL), fb_column_make(FB_TYPE_INT32, v, n, NULL)};
        fb_table t = {2, cols, NULL};
        size_t kc = 0, vc = 1;
        fb_agg_input in = {&kc, &vc, 1};
        fb_agg_groups *g = NULL;
        assert_fb_ok(ctx, fb_agg_run(ctx, &t, 8192, &spec, &in, &g, NULL));
        assert_int_equal(fb_agg_groups_count(g), groups);
        int64_t *gk = malloc(8 * (size_t)groups), *gc = malloc(8 * (size_t)groups), *gs = malloc(8 * (size_t)groups);
        int32_t *gmin = malloc(4 * (size_t)groups), *gmax = malloc(4 * (size_t)groups);
        fb_column_out ko = {FB_TYPE_INT64, groups, gk, NULL, 0, 0};
        fb_column_out ao[4] = {{FB_TYPE_INT64, groups, gc, NULL, 0, 0}, {FB_TYPE_INT64, groups, gs, NULL, 0, 0},
                               {FB_TYPE_INT32, groups, gmin, NULL, 0, 0}, {FB_TYPE_INT32, groups, gmax, NULL, 0, 0}};
        assert_fb_ok(ctx, fb_agg_groups_result(g, &ko, ao));
        /* the result in key order: (key, group index) pairs sorted */
        kr *order = sorted_pairs(gk, groups);
        int64_t i = 0;
        for (int64_t r = 0; r < groups; r++) {
            int64_t key = p[i].key, cnt = 0, sum = 0;
            int32_t mn = INT32_MAX, mx = INT32_MIN;
            for (; i < n && p[i].key == key; i++) {
                int32_t x = v[p[i].row];
                cnt++;
                sum += x;
                mn = x < mn ? x : mn;
                mx = x > mx ? x : mx;
            }
            int64_t gi = order[r].row;
            if (order[r].key != key || gc[gi] != cnt || gs[gi] != sum || gmin[gi] != mn || gmax[gi] != mx)
                fail_msg("%s: group %lld: (%lld: %lld, %lld, %d, %d), want (%lld: %lld, %lld, %d, %d)", shape_names[s],
                         (long long)r, (long long)order[r].key, (long long)gc[gi], (long long)gs[gi], gmin[gi],
                         gmax[gi], (long long)key, (long long)cnt, (long long)sum, mn, mx);
        }
        print_message("[ edges    ] aggregation, %s: %lld rows, %lld groups\n", shape_names[s], (long long)n,
                      (long long)groups);
        free(order);
        free(gk);
        free(gc);
        free(gs);
        free(gmin);
        free(gmax);
        free(p);
        fb_agg_groups_destroy(g);
    }
    free(k);
    free(v);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
}

static void test_edges_sort(void **state)
{
    (void)state;
    const int64_t n = 300000, top = 1000;
    int64_t *k = malloc(8 * n);
    uint32_t *perm = malloc(4 * n);
    for (int s = 0; s < SHAPES; s++) {
        fill_keys(k, n, (shape)s, &rng);
        kr *p = sorted_pairs(k, n); /* the stable order */
        fb_sort_key key = {fb_column_make(FB_TYPE_INT64, k, n, NULL), 0, 0};
        for (int run = 0; run < 3; run++) {
            int64_t got = n;
            memset(perm, 0xAB, 4 * (size_t)n);
            if (run == 0)
                assert_fb_ok(ctx, fb_sort_permutation(ctx, &key, 1, perm, n));
            else if (run == 1)
                assert_fb_ok(ctx, fb_sort_permutation_parallel(ctx, &key, 1, perm, n));
            else
                assert_fb_ok(ctx, fb_sort_top_n_parallel(ctx, &key, 1, top, perm, n, &got));
            if (run == 2)
                assert_int_equal(got, top);
            for (int64_t i = 0; i < got; i++)
                if (perm[i] != (uint32_t)p[i].row)
                    fail_msg("%s, %s: position %lld holds row %u, want %lld", shape_names[s],
                             run == 0 ? "fb_sort_permutation" : run == 1 ? "parallel" : "top-n", (long long)i, perm[i],
                             (long long)p[i].row);
        }
        print_message("[ edges    ] sort, %s: %lld rows\n", shape_names[s], (long long)n);
        free(p);
    }
    free(k);
    free(perm);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
}

static void test_edges_join(void **state)
{
    (void)state;
    /* build and probe sizes per shape: all-equal keys give nb x np pairs */
    static const int64_t sizes[SHAPES][2] = {{3000, 3000}, {200000, 300000}, {5000, 100000}, {50000, 200000}};
    for (int s = 0; s < SHAPES; s++) {
        int64_t nb = sizes[s][0], np = sizes[s][1];
        int64_t *bk64 = malloc(8 * (size_t)nb), *pk64 = malloc(8 * (size_t)np);
        fill_keys(bk64, nb, (shape)s, &rng);
        if (s == SHAPE_DISTINCT) { /* probe keys: the build's and as many others */
            for (int64_t i = 0; i < np; i++)
                pk64[i] = i % 2 ? bk64[fbt_next(&rng) % (uint64_t)nb] : (int64_t)(fbt_next(&rng) % 1000000) * 7919 + 3;
        } else {
            fill_keys(pk64, np, (shape)s, &rng);
        }
        int32_t *bk = malloc(4 * (size_t)nb), *bv = malloc(4 * (size_t)nb), *pk = malloc(4 * (size_t)np),
                *pv = malloc(4 * (size_t)np);
        for (int64_t i = 0; i < nb; i++) {
            bk[i] = (int32_t)bk64[i];
            bv[i] = (int32_t)(fbt_next(&rng) % 2001) - 1000;
        }
        for (int64_t i = 0; i < np; i++) {
            pk[i] = (int32_t)pk64[i];
            pv[i] = (int32_t)(fbt_next(&rng) % 2001) - 1000;
        }
        /* reference: per build key, rows and value sum; probe rows look their key up */
        int64_t *sk = malloc(8 * (size_t)nb);
        for (int64_t i = 0; i < nb; i++)
            sk[i] = bk[i];
        qsort(sk, (size_t)nb, 8, cmp_i64);
        int64_t *uk = malloc(8 * (size_t)nb), *ucnt = calloc((size_t)nb, 8), *usum = calloc((size_t)nb, 8), nu = 0;
        for (int64_t i = 0; i < nb; i++)
            if (i == 0 || sk[i] != sk[i - 1])
                uk[nu++] = sk[i];
        for (int64_t i = 0; i < nb; i++) {
            int64_t x = bk[i];
            int64_t *hit = bsearch(&x, uk, (size_t)nu, 8, cmp_i64);
            ucnt[hit - uk]++;
            usum[hit - uk] += bv[i];
        }
        int64_t want_count = 0, want_sum = 0;
        for (int64_t i = 0; i < np; i++) {
            int64_t x = pk[i];
            int64_t *hit = bsearch(&x, uk, (size_t)nu, 8, cmp_i64);
            if (hit) {
                want_count += ucnt[hit - uk];
                want_sum += usum[hit - uk] + ucnt[hit - uk] * (int64_t)pv[i];
            }
        }
        for (int algo = 0; algo < 2; algo++) {
            fb_join_input in;
            memset(&in, 0, sizeof in);
            in.build_key = fb_column_make(FB_TYPE_INT32, bk, nb, NULL);
            in.build_val = fb_column_make(FB_TYPE_INT32, bv, nb, NULL);
            in.probe_key = fb_column_make(FB_TYPE_INT32, pk, np, NULL);
            in.probe_val = fb_column_make(FB_TYPE_INT32, pv, np, NULL);
            in.output = FB_JOIN_OUTPUT_COUNT_SUM;
            in.morsel_rows = 16384;
            in.radix_bits = algo ? 6 : -1;
            fb_query *q = NULL;
            fb_join_result r;
            assert_fb_ok(ctx, fb_query_create(ctx, &q));
            assert_fb_ok(ctx, fb_pipeline_add_join(q, &in, &r));
            assert_fb_ok(ctx, fb_query_run(q));
            fb_query_destroy(q);
            if (r.count != want_count || r.sum != want_sum)
                fail_msg("%s, radix bits %d: %lld pairs, sum %lld; want %lld, %lld", shape_names[s], in.radix_bits,
                         (long long)r.count, (long long)r.sum, (long long)want_count, (long long)want_sum);
        }
        print_message("[ edges    ] join, %s: %lld x %lld rows, %lld pairs\n", shape_names[s], (long long)nb,
                      (long long)np, (long long)want_count);
        free(sk);
        free(uk);
        free(ucnt);
        free(usum);
        free(bk64);
        free(pk64);
        free(bk);
        free(bv);
        free(pk);
        free(pv);
    }
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
}

/* ---- past 2^31 rows ------------------------------------------------------------------------------------- */

#define BIG_ROWS (((int64_t)1 << 31) + 5)
#define TEMPLATE_ROWS 65536

static int64_t tmpl_key[TEMPLATE_ROWS];
static int32_t tmpl_val[TEMPLATE_ROWS];

/* A generated source: `total` rows, handed out as views of the template morsel (the last one shorter);
 * with `plant`, morsels holding planted rows get a copy of the template with those rows' keys set. */
typedef struct gen {
    int64_t total, next;
    int n_plant;
    int64_t plant_row[8], plant_key[8];
    atomic_long handed, released;
} gen;

typedef struct gen_batch {
    fb_column cols[2];
    int64_t *keys; /* a planted copy, or NULL */
} gen_batch;

static fb_status gen_feed(void *user, const fb_worker_info *w, fb_chunk *chunk, int *node, void **token, int *done)
{
    (void)w;
    (void)node;
    gen *g = user;
    if (g->next >= g->total) {
        *done = 1;
        return FB_OK;
    }
    int64_t m = g->total - g->next < TEMPLATE_ROWS ? g->total - g->next : TEMPLATE_ROWS;
    gen_batch *b = malloc(sizeof *b);
    if (!b)
        return fb_stage_error(w->ctx, FB_ERR_OUT_OF_MEMORY, "no memory for a batch");
    b->keys = NULL;
    const int64_t *keys = tmpl_key;
    for (int i = 0; i < g->n_plant; i++) {
        int64_t r = g->plant_row[i];
        if (r < g->next || r >= g->next + m)
            continue;
        if (!b->keys) {
            b->keys = malloc(sizeof tmpl_key);
            if (!b->keys) {
                free(b);
                return fb_stage_error(w->ctx, FB_ERR_OUT_OF_MEMORY, "no memory for a batch");
            }
            memcpy(b->keys, tmpl_key, sizeof tmpl_key);
            keys = b->keys;
        }
        b->keys[r - g->next] = g->plant_key[i];
    }
    b->cols[0] = fb_column_make(FB_TYPE_INT64, keys, m, NULL);
    b->cols[1] = fb_column_make(FB_TYPE_INT32, tmpl_val, m, NULL);
    chunk->rows = m;
    chunk->n_columns = 2;
    chunk->columns = b->cols;
    *token = b;
    g->next += m;
    atomic_fetch_add(&g->handed, 1);
    return FB_OK;
}

static void gen_release(void *user, void *token)
{
    gen *g = user;
    gen_batch *b = token;
    free(b->keys);
    free(b);
    atomic_fetch_add(&g->released, 1);
}

static void test_big_agg(void **state)
{
    (void)state;
    for (int i = 0; i < TEMPLATE_ROWS; i++) {
        tmpl_key[i] = 7;
        tmpl_val[i] = (int32_t)(fbt_next(&rng) % 2000001) - 1000000;
    }
    /* reference: whole template morsels and the rest */
    int64_t full = BIG_ROWS / TEMPLATE_ROWS, rest = BIG_ROWS % TEMPLATE_ROWS, s_full = 0, s_rest = 0;
    int32_t mn = INT32_MAX, mx = INT32_MIN;
    for (int64_t i = 0; i < TEMPLATE_ROWS; i++) {
        s_full += tmpl_val[i];
        if (i < rest)
            s_rest += tmpl_val[i];
        mn = tmpl_val[i] < mn ? tmpl_val[i] : mn;
        mx = tmpl_val[i] > mx ? tmpl_val[i] : mx;
    }
    gen g = {.total = BIG_ROWS};
    fb_source src;
    assert_fb_ok(ctx, fb_source_callback(ctx, gen_feed, gen_release, &g, &src));
    fb_type kt = FB_TYPE_INT64;
    fb_agg_desc aggs[4] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT32},
                           {FB_AGG_MIN, 0, FB_TYPE_INT32}, {FB_AGG_MAX, 0, FB_TYPE_INT32}};
    fb_agg_spec spec = {1, &kt, 4, aggs, FB_AGG_STRATEGY_AUTO};
    size_t kc = 0, vc = 1;
    fb_agg_input in = {&kc, &vc, 1};
    fb_agg_groups *groups = NULL;
    fb_query *q = NULL;
    assert_fb_ok(ctx, fb_query_create(ctx, &q));
    assert_fb_ok(ctx, fb_query_add_agg(q, "generated", &src, NULL, 0, &spec, &in, &groups, NULL));
    assert_fb_ok(ctx, fb_query_run(q));
    assert_int_equal(fb_agg_groups_count(groups), 1);
    int64_t key, cnt, sum;
    int32_t gmin, gmax;
    fb_column_out ko = {FB_TYPE_INT64, 1, &key, NULL, 0, 0};
    fb_column_out ao[4] = {{FB_TYPE_INT64, 1, &cnt, NULL, 0, 0}, {FB_TYPE_INT64, 1, &sum, NULL, 0, 0},
                           {FB_TYPE_INT32, 1, &gmin, NULL, 0, 0}, {FB_TYPE_INT32, 1, &gmax, NULL, 0, 0}};
    assert_fb_ok(ctx, fb_agg_groups_result(groups, &ko, ao));
    fb_agg_groups_destroy(groups);
    fb_query_destroy(q);
    assert_int_equal(atomic_load(&g.handed), atomic_load(&g.released));
    assert_int_equal(key, 7);
    assert_int_equal(cnt, BIG_ROWS);
    assert_int_equal(sum, full * s_full + s_rest);
    assert_int_equal(gmin, mn);
    assert_int_equal(gmax, mx);
    print_message("[ scale    ] aggregation of %lld generated rows: count %lld, sum %lld\n", (long long)BIG_ROWS,
                  (long long)cnt, (long long)sum);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
}

static void test_big_join(void **state)
{
    (void)state;
    enum { NB = 65536, NP = 33000 }; /* 32967 matching probe rows x 65536 > 2^31 */
    int32_t *bk = malloc(4 * NB), *bv = malloc(4 * NB), *pk = malloc(4 * NP), *pv = malloc(4 * NP);
    int64_t bsum = 0;
    for (int i = 0; i < NB; i++) {
        bk[i] = 12345;
        bv[i] = (int32_t)(fbt_next(&rng) % 201) - 100;
        bsum += bv[i];
    }
    int64_t matched = 0;
    for (int i = 0; i < NP; i++) { /* all but every 1000th probe row match */
        pk[i] = i % 1000 == 999 ? 54321 : 12345;
        pv[i] = i;
        matched += pk[i] == 12345;
    }
    fb_column pc[2] = {fb_column_make(FB_TYPE_INT32, pk, NP, NULL), fb_column_make(FB_TYPE_INT32, pv, NP, NULL)};
    fb_column bc[2] = {fb_column_make(FB_TYPE_INT32, bk, NB, NULL), fb_column_make(FB_TYPE_INT32, bv, NB, NULL)};
    fb_table pt = {2, pc, NULL}, bt = {2, bc, NULL};
    fb_plan *p = NULL;
    fb_plan_node ps, bs, j, a;
    size_t k0 = 0, pay = 1;
    fb_plan_agg aggs[2] = {{FB_AGG_COUNT_STAR, 0}, {FB_AGG_SUM, 2}}; /* join output: pk, pv, bv */
    assert_fb_ok(ctx, fb_plan_create(ctx, &p));
    assert_fb_ok(ctx, fb_plan_scan(p, &pt, "probe", NULL, 0, &ps));
    assert_fb_ok(ctx, fb_plan_scan(p, &bt, "build", NULL, 0, &bs));
    assert_fb_ok(ctx, fb_plan_join(p, ps, bs, &k0, &k0, 1, FB_JOIN_INNER, &pay, 1, &j));
    assert_fb_ok(ctx, fb_plan_aggregate(p, j, NULL, 0, aggs, 2, &a));
    fb_plan_result *r = NULL;
    assert_fb_ok(ctx, fb_plan_run(p, a, FB_PLACEMENT_CPU, &r));
    assert_int_equal(r->rows, 1);
    const fb_column *cc = &r->table.columns[0], *sc = &r->table.columns[1];
    int64_t cnt = ((const int64_t *)cc->data)[cc->offset], sum = ((const int64_t *)sc->data)[sc->offset];
    print_message("[ scale    ] join: %lld pairs (2^31 = %lld), sum %lld\n", (long long)cnt, (long long)1 << 31,
                  (long long)sum);
    assert_true(matched * NB > ((int64_t)1 << 31));
    assert_int_equal(cnt, matched * NB);
    assert_int_equal(sum, matched * bsum);
    fb_plan_result_free(r);
    fb_plan_destroy(p);
    free(bk);
    free(bv);
    free(pk);
    free(pv);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
}

/* top-N sink: per worker the N best (key, global row) so far; merged at the end */
enum { TOPN = 4 };
typedef struct top_state {
    kr best[TOPN];
    int n;
} top_state;

static void top_add(top_state *t, int64_t key, int64_t row)
{
    kr all[TOPN + 1];
    memcpy(all, t->best, sizeof(kr) * (size_t)t->n);
    all[t->n] = (kr){key, row};
    qsort(all, (size_t)t->n + 1, sizeof(kr), cmp_kr);
    t->n = t->n + 1 < TOPN ? t->n + 1 : TOPN;
    memcpy(t->best, all, sizeof(kr) * (size_t)t->n);
}

typedef struct top_local {
    top_state s;
    fb_ctx *ctx;
} top_local;

static fb_status top_init_global(void *user, fb_ctx *c, void **global)
{
    (void)user;
    (void)c;
    *global = calloc(1, sizeof(top_state));
    return *global ? FB_OK : FB_ERR_OUT_OF_MEMORY;
}

static fb_status top_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    (void)user;
    (void)global;
    top_local *l = calloc(1, sizeof *l);
    if (!l)
        return FB_ERR_OUT_OF_MEMORY;
    l->ctx = w->ctx;
    *local = l;
    return FB_OK;
}

static fb_status top_sink(void *user, void *global, void *local, const fb_chunk *chunk)
{
    (void)user;
    (void)global;
    top_local *l = local;
    fb_sort_key key = {chunk->columns[0], 0, 0};
    uint32_t ids[TOPN];
    int64_t got = 0;
    fb_status st = fb_sort_top_n(l->ctx, &key, 1, TOPN, ids, TOPN, &got);
    if (st != FB_OK)
        return st;
    const int64_t *k = (const int64_t *)chunk->columns[0].data + chunk->columns[0].offset;
    for (int64_t i = 0; i < got; i++)
        top_add(&l->s, k[ids[i]], chunk->row_begin + ids[i]);
    return FB_OK;
}

static fb_status top_combine(void *user, void *global, void *local)
{
    (void)user;
    top_local *l = local;
    for (int i = 0; i < l->s.n; i++)
        top_add(global, l->s.best[i].key, l->s.best[i].row);
    return FB_OK;
}

static top_state top_result;

static fb_status top_finalize(void *user, void *global)
{
    (void)user;
    top_result = *(top_state *)global;
    return FB_OK;
}

static void top_destroy_local(void *user, void *global, void *local)
{
    (void)user;
    (void)global;
    free(local);
}

static void top_destroy_global(void *user, void *global)
{
    (void)user;
    free(global);
}

static void test_big_top_n(void **state)
{
    (void)state;
    for (int i = 0; i < TEMPLATE_ROWS; i++) {
        tmpl_key[i] = 1000000 + (int64_t)(fbt_next(&rng) % 1000000); /* above every planted key */
        tmpl_val[i] = i;
    }
    const int64_t two31 = (int64_t)1 << 31;
    gen g = {.total = BIG_ROWS, .n_plant = 5};
    /* planted: rows past 2^31 (and one just before it); keys 5, 3, 3, 9, 2 */
    const int64_t rows[5] = {two31 + 4, two31 - 1, two31 + 2, 12345, two31 + 1};
    const int64_t keys[5] = {5, 3, 3, 9, 2};
    memcpy(g.plant_row, rows, sizeof rows);
    memcpy(g.plant_key, keys, sizeof keys);
    fb_source src;
    assert_fb_ok(ctx, fb_source_callback(ctx, gen_feed, gen_release, &g, &src));
    fb_sink sink = {.name = "top-n",
                    .init_global = top_init_global,
                    .init_local = top_init_local,
                    .sink = top_sink,
                    .combine = top_combine,
                    .finalize = top_finalize,
                    .destroy_local = top_destroy_local,
                    .destroy_global = top_destroy_global};
    fb_query *q = NULL;
    assert_fb_ok(ctx, fb_query_create(ctx, &q));
    assert_fb_ok(ctx, fb_query_add_pipeline(q, "top-n", &src, NULL, 0, &sink, NULL));
    memset(&top_result, 0, sizeof top_result);
    assert_fb_ok(ctx, fb_query_run(q));
    fb_query_destroy(q);
    assert_int_equal(atomic_load(&g.handed), atomic_load(&g.released));
    /* want: (2, 2^31+1), (3, 2^31-1), (3, 2^31+2), (5, 2^31+4) */
    const kr want[TOPN] = {{2, two31 + 1}, {3, two31 - 1}, {3, two31 + 2}, {5, two31 + 4}};
    assert_int_equal(top_result.n, TOPN);
    for (int i = 0; i < TOPN; i++)
        if (top_result.best[i].key != want[i].key || top_result.best[i].row != want[i].row)
            fail_msg("top %d: (%lld, row %lld), want (%lld, row %lld)", i, (long long)top_result.best[i].key,
                     (long long)top_result.best[i].row, (long long)want[i].key, (long long)want[i].row);
    print_message("[ scale    ] top-%d of %lld generated rows: rows %lld, %lld, %lld, %lld\n", TOPN, (long long)BIG_ROWS,
                  (long long)top_result.best[0].row, (long long)top_result.best[1].row,
                  (long long)top_result.best[2].row, (long long)top_result.best[3].row);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
}

static int setup(void **state)
{
    (void)state;
    rng = fbt_seed();
    fb_options *o = NULL;
    if (fb_options_create(&o) != FB_OK || fb_options_set_threads(o, 2) != FB_OK)
        return -1;
    fb_status st = fb_ctx_create(o, &ctx);
    fb_options_destroy(o);
    return st == FB_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fb_ctx_destroy(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges_agg), cmocka_unit_test(test_edges_sort), cmocka_unit_test(test_edges_join),
        cmocka_unit_test(test_big_agg),   cmocka_unit_test(test_big_join),   cmocka_unit_test(test_big_top_n),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
