/* test_join_pipeline.c - the public runtime join (fb_join.h: fb_join_run, fb_query_add_join,
 * fb_query_add_join_agg): every join type (inner, left, semi, anti, mark) × both algorithms
 * (non-partitioned, radix with several partition counts) × key types (int32, int64, uint32, date32,
 * uint64, composite keys of 2..4 columns) × every ISA variant the CPU runs, against a sort-and-search
 * reference written here, on random data with duplicates, nulls (bitmaps at odd offsets), negatives,
 * INT_MIN/INT_MAX, empty sides, one key repeated 100k times in the build, and Zipf probes (with a
 * check that the time grows about linearly). Also: a caller's operator and sink after the join,
 * the join feeding an aggregation directly, radix partitions on the NUMA node of the worker that joins
 * them (synthetic two-node topology), and bad-input statuses. */
/* extremes in 1/32 of the key values: enough duplicates, not a quadratic output */
#define FBTJ_KEY_PICKS 64
#include "fb_test.h"
#include "fb_test_join.h"

#include <math.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the reference: build rows sorted by key, each probe row's matches found by binary search ------ */

static const side *ref_build;
static int cmp_keys(const side *a, int64_t i, const side *b, int64_t j)
{
    for (int c = 0; c < a->nk; c++) {
        int64_t x = key_at(a, c, i), y = key_at(b, c, j);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

static int cmp_build_rows(const void *x, const void *y)
{
    int64_t i = *(const int64_t *)x, j = *(const int64_t *)y;
    int r = cmp_keys(ref_build, i, ref_build, j);
    return r ? r : (i < j ? -1 : i > j);
}

typedef struct row3 {
    int64_t b, p;
    int64_t m;
} row3;

static int cmp_row3(const void *x, const void *y)
{
    const row3 *a = x, *b = y;
    if (a->p != b->p)
        return a->p < b->p ? -1 : 1;
    if (a->b != b->b)
        return a->b < b->b ? -1 : 1;
    return (a->m > b->m) - (a->m < b->m);
}

typedef struct rows {
    row3 *r;
    int64_t n, cap;
} rows;

static void rows_push(rows *x, int64_t b, int64_t p, int64_t m)
{
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 1024;
        x->r = realloc(x->r, (size_t)x->cap * sizeof *x->r);
        assert_non_null(x->r);
    }
    x->r[x->n++] = (row3){b, p, m};
}

/* Expected output rows (build id or -1, probe id, mark) of a join. */
static void reference(const side *b, const side *p, fb_join_type type, rows *out)
{
    int64_t *order = malloc((size_t)(b->n + 1) * 8), nb = 0;
    for (int64_t i = 0; i < b->n; i++)
        if (live_at(b, i))
            order[nb++] = i;
    ref_build = b;
    qsort(order, (size_t)nb, 8, cmp_build_rows);
    for (int64_t j = 0; j < p->n; j++) {
        int64_t lo = 0, hi = 0;
        if (live_at(p, j)) {
            hi = nb;
            while (lo < hi) { /* first build row with key >= probe key */
                int64_t mid = (lo + hi) / 2;
                if (cmp_keys(b, order[mid], p, j) < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            hi = lo;
            while (hi < nb && cmp_keys(b, order[hi], p, j) == 0)
                hi++;
        }
        int matched = hi > lo;
        switch (type) {
        case FB_JOIN_INNER:
        case FB_JOIN_LEFT:
            for (int64_t k = lo; k < hi; k++)
                rows_push(out, order[k], j, 1);
            if (!matched && type == FB_JOIN_LEFT)
                rows_push(out, -1, j, 0);
            break;
        case FB_JOIN_SEMI:
            if (matched)
                rows_push(out, -1, j, 1);
            break;
        case FB_JOIN_ANTI:
            if (!matched)
                rows_push(out, -1, j, 0);
            break;
        case FB_JOIN_MARK: rows_push(out, -1, j, matched); break;
        }
    }
    free(order);
}

/* The collected result as rows (marks 1 where a block has none: inner joins). */
static void result_rows(const fb_join_result *r, fb_join_type type, rows *out)
{
    int64_t total = 0;
    for (int64_t k = 0; k < r->n_blocks; k++) {
        const fb_join_block *blk = &r->blocks[k];
        if (type == FB_JOIN_INNER || type == FB_JOIN_LEFT)
            assert_non_null(blk->build_ids);
        else
            assert_null(blk->build_ids);
        if (type == FB_JOIN_MARK)
            assert_non_null(blk->marks);
        for (int64_t i = 0; i < blk->n; i++) {
            int64_t b = blk->build_ids ? blk->build_ids[i] : -1;
            int64_t m = blk->marks ? blk->marks[i] : (type == FB_JOIN_INNER || type == FB_JOIN_SEMI ||
                                                       (type == FB_JOIN_LEFT && b >= 0));
            rows_push(out, b, blk->probe_ids[i], m);
        }
        total += blk->n;
    }
    assert_int_equal(total, r->count);
}

static void check_rows(rows *expect, rows *got, const char *what, fb_ctx *ctx)
{
    if (expect->n)
        qsort(expect->r, (size_t)expect->n, sizeof *expect->r, cmp_row3);
    if (got->n)
        qsort(got->r, (size_t)got->n, sizeof *got->r, cmp_row3);
    if (expect->n != got->n)
        fail_msg("%s (%s): %lld rows, expected %lld", what, fb_isa_name(fb_ctx_isa(ctx)), (long long)got->n,
                 (long long)expect->n);
    for (int64_t i = 0; i < expect->n; i++)
        if (cmp_row3(&expect->r[i], &got->r[i]) != 0)
            fail_msg("%s (%s): row %lld is (%lld, %lld, %lld), expected (%lld, %lld, %lld)", what,
                     fb_isa_name(fb_ctx_isa(ctx)), (long long)i, (long long)got->r[i].b, (long long)got->r[i].p,
                     (long long)got->r[i].m, (long long)expect->r[i].b, (long long)expect->r[i].p,
                     (long long)expect->r[i].m);
}

/* ---- contexts: every variant × both algorithms ---------------------------------------------------- */

#define MAX_CTX (2 * FB_ISA_COUNT)
static fb_ctx *ctxs[MAX_CTX];
static int n_ctx;

static fb_ctx *join_ctx(fb_isa isa, fb_join_algorithm algo, const char *topo)
{
    fb_options *o = NULL;
    fb_ctx *ctx = NULL;
    assert_int_equal(fb_options_create(&o), FB_OK);
    assert_int_equal(fb_options_set_isa(o, isa), FB_OK);
    assert_int_equal(fb_options_set_threads(o, 2), FB_OK);
    assert_int_equal(fb_options_set_join_algorithm(o, algo), FB_OK);
    if (topo)
        assert_int_equal(fb_options_set_topology(o, topo), FB_OK);
    assert_int_equal(fb_ctx_create(o, &ctx), FB_OK);
    fb_options_destroy(o);
    return ctx;
}

static int setup(void **state)
{
    (void)state;
    rng = fbt_seed();
    n_ctx = 0;
    for (int i = FB_ISA_SCALAR; i < FB_ISA_COUNT; i++) {
        if (!fb_isa_supported((fb_isa)i)) {
            fprintf(stderr, "[ skipped  ] variant %s: not supported by this CPU\n", fb_isa_name((fb_isa)i));
            continue;
        }
        ctxs[n_ctx++] = join_ctx((fb_isa)i, FB_JOIN_ALGO_NON_PARTITIONED, NULL);
        ctxs[n_ctx++] = join_ctx((fb_isa)i, FB_JOIN_ALGO_RADIX, NULL);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < n_ctx; i++)
        fb_ctx_destroy(ctxs[i]);
    n_ctx = 0;
    return 0;
}

static fb_join_spec make_spec(const side *b, const side *p, fb_join_type type, int bits, int64_t morsel)
{
    fb_join_spec s;
    memset(&s, 0, sizeof s);
    s.type = type;
    s.n_keys = (size_t)b->nk;
    s.build_keys = b->col;
    s.probe_keys = p->col;
    s.radix_bits = bits;
    s.morsel_rows = morsel;
    return s;
}

/* Every join type on every context, against the reference. */
static void check_all(const side *b, const side *p, int bits, int64_t morsel, const char *what)
{
    for (int t = FB_JOIN_INNER; t <= FB_JOIN_MARK; t++) {
        rows expect = {0};
        reference(b, p, (fb_join_type)t, &expect);
        for (int c = 0; c < n_ctx; c++) {
            fb_ctx *ctx = ctxs[c];
            fb_join_spec s = make_spec(b, p, (fb_join_type)t, bits, morsel);
            fb_join_result r;
            assert_fb_ok(ctx, fb_join_run(ctx, &s, &r));
            assert_int_equal(r.algorithm, fb_ctx_join_algorithm(ctx));
            rows got = {0};
            result_rows(&r, (fb_join_type)t, &got);
            char msg[160];
            snprintf(msg, sizeof msg, "%s, type %d, %s, bits %d", what, t,
                     r.algorithm == FB_JOIN_ALGO_RADIX ? "radix" : "shared", bits);
            check_rows(&expect, &got, msg, ctx);
            free(got.r);
            fb_join_result_free(ctx, &r);
            assert_int_equal(fb_ctx_memory_used(ctx), 0);
        }
        free(expect.r);
    }
}

static void test_random(void **state)
{
    (void)state;
    static const fb_type k1[][1] = {{FB_TYPE_INT32}, {FB_TYPE_INT64}, {FB_TYPE_UINT32}, {FB_TYPE_DATE32}, {FB_TYPE_UINT64}};
    static const fb_type k2[] = {FB_TYPE_INT32, FB_TYPE_INT64};
    static const fb_type k3[] = {FB_TYPE_UINT32, FB_TYPE_DATE32, FB_TYPE_INT64};
    static const fb_type k4[] = {FB_TYPE_INT64, FB_TYPE_INT32, FB_TYPE_UINT64, FB_TYPE_INT32};
    struct {
        const fb_type *types;
        int nk;
    } keys[] = {{k1[0], 1}, {k1[1], 1}, {k1[2], 1}, {k1[3], 1}, {k1[4], 1}, {k2, 2}, {k3, 3}, {k4, 4}};
    static const int64_t sizes[][2] = {{0, 0}, {0, 300}, {300, 0}, {1, 1}, {700, 2000}, {5000, 3000}, {12000, 16000}};
    static const int bits[] = {-1, 0, 3, 7};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
            side b, p;
            int64_t pool = 1 + (int64_t)(fbt_next(&rng) % (uint64_t)(sizes[z][0] + 2));
            make_side(&b, keys[k].types, keys[k].nk, sizes[z][0], pool, 1);
            make_side(&p, keys[k].types, keys[k].nk, sizes[z][1], pool, 1);
            plant_matches(&p, &b);
            char what[96];
            snprintf(what, sizeof what, "keys %zu (%d columns), %lld x %lld", k, keys[k].nk, (long long)b.n,
                     (long long)p.n);
            int bt = bits[(k + z) % 4];
            check_all(&b, &p, bt, 1000 + (int64_t)(fbt_next(&rng) % 5000), what);
            free_side(&b);
            free_side(&p);
        }
}

/* One key repeated 100k times in the build; Zipf-skewed probes. Checked against the reference, and
 * the time of a 4x larger probe side must grow about linearly (not with the square). */
static double timed_run(fb_ctx *ctx, const side *b, const side *p, fb_join_type type, int64_t *count)
{
    fb_join_spec s = make_spec(b, p, type, -1, 0);
    fb_join_result r;
    double t0 = now_s();
    assert_fb_ok(ctx, fb_join_run(ctx, &s, &r));
    double t = now_s() - t0;
    *count = r.count;
    fb_join_result_free(ctx, &r);
    return t;
}

static void zipf_side(side *s, fb_type t, int64_t n, int64_t domain)
{
    make_side(s, &t, 1, n, 1, 0);
    for (int64_t i = 0; i < n; i++) {
        double u = (double)(fbt_next(&rng) >> 11) / 9007199254740992.0;
        int64_t k = (int64_t)exp(u * log((double)domain)); /* density ~ 1/k on 1..domain */
        set_key(s, 0, i, k - 1);
    }
}

static void test_heavy_and_zipf(void **state)
{
    (void)state;
    const fb_type t64 = FB_TYPE_INT64;
    /* build: key -7 repeated 100k times, plus keys 0..19999 twice; probe: key -7 ten times among 5000 */
    side b, p;
    make_side(&b, &t64, 1, 140000, 1, 0);
    for (int64_t i = 0; i < b.n; i++)
        set_key(&b, 0, i, i < 100000 ? -7 : (i - 100000) % 20000);
    make_side(&p, &t64, 1, 5000, 1, 1);
    for (int64_t i = 0; i < p.n; i++)
        set_key(&p, 0, i, i % 500 == 3 ? -7 : (int64_t)(fbt_next(&rng) % 40000) - 10000);
    check_all(&b, &p, -1, 0, "heavy build key");
    free_side(&p);

    /* Zipf probes over the build keys: time at n and 4n probe rows */
    side z1, z4;
    zipf_side(&z1, t64, 40000, 20000);
    zipf_side(&z4, t64, 160000, 20000);
    check_all(&b, &z1, -1, 0, "zipf probes");
    for (int c = 0; c < n_ctx; c++) {
        for (int t = FB_JOIN_INNER; t <= FB_JOIN_MARK; t++) {
            int64_t c1, c4;
            double best1 = 1e9, best4 = 1e9;
            for (int rep = 0; rep < 2; rep++) {
                double t1 = timed_run(ctxs[c], &b, &z1, (fb_join_type)t, &c1);
                double t4 = timed_run(ctxs[c], &b, &z4, (fb_join_type)t, &c4);
                best1 = t1 < best1 ? t1 : best1;
                best4 = t4 < best4 ? t4 : best4;
            }
            /* the output (inner: two pairs per probe row) grows 4x as well */
            if (best4 > 12 * best1 + 0.25)
                fail_msg("zipf, type %d, %s: %.3f s for 4x the probe rows vs %.3f s", t,
                         fb_isa_name(fb_ctx_isa(ctxs[c])), best4, best1);
        }
    }
    free_side(&z1);
    free_side(&z4);
    free_side(&b);
}

/* ---- a caller's operator and sink after the join; the join feeding an aggregation ----------------- */

typedef struct sum_sink {
    int64_t rows, sum_b, sum_p, marks;
} sum_sink;

typedef struct sum_local {
    int64_t rows, sum_b, sum_p, marks;
} sum_local;

static fb_status ss_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    (void)user, (void)global, (void)w;
    *local = calloc(1, sizeof(sum_local));
    return *local ? FB_OK : FB_ERR_OUT_OF_MEMORY;
}

/* columns: build id, probe id, mark, build payload, probe payload */
static fb_status ss_sink(void *user, void *global, void *local, const fb_chunk *c)
{
    (void)user, (void)global;
    sum_local *l = local;
    assert_int_equal(c->n_columns, 5);
    const int64_t *bid = c->columns[0].data;
    const uint8_t *mk = c->columns[2].data;
    const int32_t *bp = c->columns[3].data, *pp = c->columns[4].data;
    for (int64_t j = 0; j < c->n_sel; j++) {
        int64_t i = c->sel ? c->sel[j] : j;
        l->rows++;
        l->marks += mk[i];
        if (bid[i] >= 0)
            l->sum_b += bp[i];
        else
            assert_false(c->columns[3].validity && ((c->columns[3].validity[i >> 3] >> (i & 7)) & 1));
        l->sum_p += pp[i];
    }
    return FB_OK;
}

/* the same sink for chunks of any width (only counts rows) */
static fb_status ss_count_sink(void *user, void *global, void *local, const fb_chunk *c)
{
    (void)user, (void)global;
    ((sum_local *)local)->rows += c->n_sel;
    return FB_OK;
}

static fb_status ss_combine(void *user, void *global, void *local)
{
    (void)global;
    sum_sink *g = user;
    sum_local *l = local;
    g->rows += l->rows;
    g->sum_b += l->sum_b;
    g->sum_p += l->sum_p;
    g->marks += l->marks;
    return FB_OK;
}

static void ss_destroy_local(void *user, void *global, void *local)
{
    (void)user, (void)global;
    free(local);
}

static void test_sink_and_agg(void **state)
{
    (void)state;
    static const fb_type kt[] = {FB_TYPE_INT32, FB_TYPE_INT64};
    for (int nk = 1; nk <= 2; nk++) {
        side b, p;
        make_side(&b, kt, nk, 15000, 10000, 1);
        make_side(&p, kt, nk, 20000, 10000, 1);
        plant_matches(&p, &b);
        for (int t = FB_JOIN_INNER; t <= FB_JOIN_LEFT; t++) {
            rows expect = {0};
            reference(&b, &p, (fb_join_type)t, &expect);
            int64_t want_b = 0, want_p = 0, want_m = 0, want_sel = 0;
            const int64_t cut = 10000; /* the caller's operator keeps probe rows with id < cut */
            for (int64_t i = 0; i < expect.n; i++) {
                want_b += expect.r[i].b >= 0 ? b.pay[expect.r[i].b] : 0;
                want_p += p.pay[expect.r[i].p];
                want_m += expect.r[i].m;
                want_sel += expect.r[i].p < cut;
            }
            fb_column bpay = fb_column_make(FB_TYPE_INT32, b.pay, b.n, NULL);
            fb_column ppay = fb_column_make(FB_TYPE_INT32, p.pay, p.n, NULL);
            for (int c = 0; c < n_ctx; c++) {
                fb_ctx *ctx = ctxs[c];
                fb_join_spec s = make_spec(&b, &p, (fb_join_type)t, -1, 4096);
                s.build_payload = &bpay;
                s.n_build_payload = 1;
                s.probe_payload = &ppay;
                s.n_probe_payload = 1;
                /* a caller's sink, after no operator and after a filter on the probe id */
                for (int with_op = 0; with_op < 2; with_op++) {
                    sum_sink g = {0};
                    fb_sink sk;
                    memset(&sk, 0, sizeof sk);
                    sk.init_local = ss_init_local;
                    sk.sink = ss_sink;
                    sk.combine = ss_combine;
                    sk.destroy_local = ss_destroy_local;
                    sk.user = &g;
                    fb_operator op;
                    if (with_op)
                        assert_fb_ok(ctx, fb_operator_select_cmp(ctx, 1, FB_TYPE_INT64, FB_CMP_LT, &cut, &op));
                    fb_query *q = NULL;
                    assert_fb_ok(ctx, fb_query_create(ctx, &q));
                    fb_join_result info;
                    fb_pipeline *pp = NULL;
                    assert_fb_ok(ctx, fb_query_add_join(q, &s, with_op ? &op : NULL, (size_t)with_op, &sk, &info, &pp));
                    assert_non_null(pp);
                    assert_fb_ok(ctx, fb_query_run(q));
                    assert_int_equal(info.algorithm, fb_ctx_join_algorithm(ctx));
                    fb_query_destroy(q);
                    if (with_op) {
                        assert_int_equal(g.rows, want_sel);
                    } else {
                        assert_int_equal(g.rows, expect.n);
                        assert_int_equal(g.sum_b, want_b);
                        assert_int_equal(g.sum_p, want_p);
                        assert_int_equal(g.marks, want_m);
                    }
                }
                /* count(*), sum(build.pay), sum(probe.pay) grouped by the mark, by the aggregation sink */
                fb_type gk = FB_TYPE_UINT8;
                fb_agg_desc aggs[3] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID},
                                       {FB_AGG_SUM, 0, FB_TYPE_INT32},
                                       {FB_AGG_SUM, 1, FB_TYPE_INT32}};
                fb_agg_spec as = {1, &gk, 3, aggs, FB_AGG_STRATEGY_AUTO};
                size_t kc = 2, vc[2] = {3, 4};
                fb_agg_input ai = {&kc, vc, 2};
                fb_query *q = NULL;
                assert_fb_ok(ctx, fb_query_create(ctx, &q));
                fb_agg_groups *groups = NULL;
                fb_pipeline *merge = NULL;
                assert_fb_ok(ctx, fb_query_add_join_agg(q, &s, &as, &ai, NULL, &groups, &merge));
                assert_non_null(merge);
                assert_fb_ok(ctx, fb_query_run(q));
                int64_t ng = fb_agg_groups_count(groups);
                assert_true(ng <= 2);
                uint8_t keys[2];
                int64_t cnt[2], sb[2], sp[2];
                uint8_t v1[1], v2[1];
                fb_column_out ko = {FB_TYPE_UINT8, 2, keys, NULL, 0, 0};
                fb_column_out ao[3] = {{FB_TYPE_INT64, 2, cnt, NULL, 0, 0},
                                       {FB_TYPE_INT64, 2, sb, v1, 0, 0},
                                       {FB_TYPE_INT64, 2, sp, v2, 0, 0}};
                assert_fb_ok(ctx, fb_agg_groups_result(groups, &ko, ao));
                int64_t got_n = 0, got_b = 0, got_p = 0, got_m = 0;
                for (int64_t gi = 0; gi < ng; gi++) {
                    got_n += cnt[gi];
                    got_b += (v1[0] >> gi) & 1 ? sb[gi] : 0;
                    got_p += (v2[0] >> gi) & 1 ? sp[gi] : 0;
                    got_m += keys[gi] ? cnt[gi] : 0;
                }
                assert_int_equal(got_n, expect.n);
                assert_int_equal(got_b, want_b);
                assert_int_equal(got_p, want_p);
                assert_int_equal(got_m, want_m);
                fb_agg_groups_destroy(groups);
                fb_query_destroy(q);
                assert_int_equal(fb_ctx_memory_used(ctx), 0);
            }
            free(expect.r);
        }
        free_side(&b);
        free_side(&p);
    }
}

/* ---- NUMA: radix partitions on the node of the worker that joins them ------------------------------ */

static void test_numa_partitions(void **state)
{
    (void)state;
    static const fb_type kt[] = {FB_TYPE_INT32, FB_TYPE_INT64};
    side b, p;
    make_side(&b, kt, 2, 40000, 30000, 1);
    make_side(&p, kt, 2, 60000, 30000, 1);
    plant_matches(&p, &b);
    fb_ctx *ctx = join_ctx(FB_ISA_SCALAR, FB_JOIN_ALGO_RADIX, "pack:2 numa:1 l3:1(size=32MB) core:2 pu:1");
    for (int nk = 1; nk <= 2; nk++) { /* one int32 key: the tuple join; two keys: the general one */
        b.nk = p.nk = nk;
        rows expect = {0};
        reference(&b, &p, FB_JOIN_INNER, &expect);
        fb_join_spec s = make_spec(&b, &p, FB_JOIN_INNER, 6, 2048);
        fb_join_result r;
        assert_fb_ok(ctx, fb_join_run(ctx, &s, &r));
        assert_int_equal(r.algorithm, FB_JOIN_ALGO_RADIX);
        assert_int_equal(r.radix_bits, 6);
        fprintf(stderr, "[ info     ] %d key(s), 2 nodes: %lld partitions joined on their node, %lld elsewhere\n", nk,
                (long long)r.partitions_local, (long long)r.partitions_remote);
        /* every partition is joined once, by a worker of its node unless the other worker stole it */
        assert_true(r.partitions_local + r.partitions_remote > 32);
        assert_true(r.partitions_local + r.partitions_remote <= 64);
        assert_true(r.partitions_local > 0);
        rows got = {0};
        result_rows(&r, FB_JOIN_INNER, &got);
        check_rows(&expect, &got, "two nodes", ctx);
        free(got.r);
        free(expect.r);
        fb_join_result_free(ctx, &r);
    }
    /* the runtime sees every partition tagged with the node that holds its memory: each partition morsel
     * counts as local or remote, none as of unknown place */
    b.nk = p.nk = 2;
    fb_join_spec s = make_spec(&b, &p, FB_JOIN_LEFT, 6, 2048);
    sum_sink g = {0};
    fb_sink sk;
    memset(&sk, 0, sizeof sk);
    sk.init_local = ss_init_local;
    sk.sink = ss_count_sink;
    sk.combine = ss_combine;
    sk.destroy_local = ss_destroy_local;
    sk.user = &g;
    fb_query *q = NULL;
    assert_fb_ok(ctx, fb_query_create(ctx, &q));
    fb_join_result info;
    fb_pipeline *pp = NULL;
    assert_fb_ok(ctx, fb_query_add_join(q, &s, NULL, 0, &sk, &info, &pp));
    assert_fb_ok(ctx, fb_query_run(q));
    fb_stats st;
    assert_fb_ok(ctx, fb_query_stats(q, fb_pipeline_index(pp), -1, &st));
    fprintf(stderr, "[ info     ] join-partitions pipeline: %lld morsels, %lld local, %lld remote\n", (long long)st.morsels,
            (long long)st.morsels_local, (long long)st.morsels_remote);
    assert_int_equal(st.morsels, 64);
    assert_int_equal(st.morsels_local + st.morsels_remote, st.morsels);
    assert_int_equal(info.partitions_local + info.partitions_remote, 64);
    rows expect = {0};
    reference(&b, &p, FB_JOIN_LEFT, &expect);
    assert_int_equal(g.rows, expect.n);
    free(expect.r);
    fb_query_destroy(q);
    b.nk = p.nk = 2;
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    fb_ctx_destroy(ctx);
    free_side(&b);
    free_side(&p);
}

/* ---- DuckDB on the same data: left, semi, anti (NOT EXISTS), mark, inner ------------------------ */

static void write_file(const char *dir, const char *name, const void *data, size_t bytes)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, bytes, f), bytes);
    fclose(f);
}

static void test_duckdb(void **state)
{
    (void)state;
#ifndef FB_JOIN_DUCKDB_SCRIPT
    skip();
#else
    if (system("python3 -c 'import duckdb, numpy' >/dev/null 2>&1") != 0) {
        fprintf(stderr, "[ skipped  ] duckdb: python3 cannot import duckdb and numpy\n");
        skip();
    }
    char dir[] = "/tmp/fb_join_duckdb_XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* int64 keys: k0 with nulls (a validity bitmap), k1 from a small pool; 3000 x 5000 rows */
    const int64_t n[2] = {3000, 5000};
    int64_t *k[2][2];
    uint8_t *bits[2], *bytes[2];
    fb_column cols[2][2];
    for (int sd = 0; sd < 2; sd++) {
        bits[sd] = fbt_random_validity(&rng, n[sd]);
        bytes[sd] = malloc((size_t)n[sd]);
        for (int c = 0; c < 2; c++) {
            k[sd][c] = malloc((size_t)n[sd] * 8);
            for (int64_t i = 0; i < n[sd]; i++)
                k[sd][c][i] = c == 0 ? (int64_t)(fbt_next(&rng) % 2000) - 1000 : (int64_t)(fbt_next(&rng) % 3);
            if (c == 0)
                k[sd][c][fbt_next(&rng) % (uint64_t)n[sd]] = INT64_MIN;
            cols[sd][c] = fb_column_make(FB_TYPE_INT64, k[sd][c], n[sd], c == 0 ? bits[sd] : NULL);
            char name[32];
            snprintf(name, sizeof name, "%s_k%d.bin", sd ? "p" : "b", c);
            write_file(dir, name, k[sd][c], (size_t)n[sd] * 8);
        }
        for (int64_t i = 0; i < n[sd]; i++)
            bytes[sd][i] = (bits[sd][i >> 3] >> (i & 7)) & 1;
        write_file(dir, sd ? "p_valid.bin" : "b_valid.bin", bytes[sd], (size_t)n[sd]);
    }
    static const char *names[] = {"inner", "left", "semi", "anti", "mark"};
    char path[512];
    snprintf(path, sizeof path, "%s/fb.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "[");
    int first = 1;
    /* the first variant (scalar) and the last (the widest) with both algorithms each */
    int pick[4] = {0, 1, n_ctx - 2, n_ctx - 1};
    for (int c = 0; c < 4; c++) {
        int cc = pick[c];
        if (cc < 0 || (c >= 2 && n_ctx <= 2))
            break;
        for (int nk = 1; nk <= 2; nk++)
            for (int t = FB_JOIN_INNER; t <= FB_JOIN_MARK; t++) {
                fb_join_spec s;
                memset(&s, 0, sizeof s);
                s.type = (fb_join_type)t;
                s.n_keys = (size_t)nk;
                s.build_keys = cols[0];
                s.probe_keys = cols[1];
                s.radix_bits = -1;
                fb_join_result r;
                assert_fb_ok(ctxs[cc], fb_join_run(ctxs[cc], &s, &r));
                int64_t sb = 0, sp = 0;
                for (int64_t bl = 0; bl < r.n_blocks; bl++)
                    for (int64_t i = 0; i < r.blocks[bl].n; i++) {
                        sp += r.blocks[bl].probe_ids[i];
                        sb += r.blocks[bl].build_ids ? r.blocks[bl].build_ids[i]
                                                     : (r.blocks[bl].marks ? r.blocks[bl].marks[i] : 0);
                    }
                fprintf(f, "%s{\"nk\": %d, \"type\": \"%s\", \"algo\": \"%s %s\", \"got\": [%lld, %lld, %lld]}",
                        first ? "" : ",\n", nk, names[t], fb_isa_name(fb_ctx_isa(ctxs[cc])),
                        r.algorithm == FB_JOIN_ALGO_RADIX ? "radix" : "shared", (long long)r.count, (long long)sb,
                        (long long)sp);
                first = 0;
                fb_join_result_free(ctxs[cc], &r);
            }
    }
    fprintf(f, "]\n");
    fclose(f);
    for (int sd = 0; sd < 2; sd++) {
        free(bits[sd]);
        free(bytes[sd]);
        free(k[sd][0]);
        free(k[sd][1]);
    }
    int rc = fbt_run_check_script(FB_JOIN_DUCKDB_SCRIPT, dir);
    if (rc != 0)
        fail_msg("join_duckdb_check.py reported a difference (exit status %d)", rc);
#endif
}

/* ---- memory limit: every failure path frees what it made ------------------------------------------ */

static void test_memory_limit(void **state)
{
    (void)state;
    static const fb_type kt[] = {FB_TYPE_INT64, FB_TYPE_INT32};
    side b, p;
    make_side(&b, kt, 2, 3000, 500, 1);
    make_side(&p, kt, 2, 5000, 500, 1);
    plant_matches(&p, &b);
    rows expect = {0};
    reference(&b, &p, FB_JOIN_LEFT, &expect);
    int ooms = 0, oks = 0;
    for (int algo = FB_JOIN_ALGO_NON_PARTITIONED; algo <= FB_JOIN_ALGO_RADIX; algo++)
        for (size_t limit = 4096; limit < ((size_t)48 << 20); limit = limit * 3 / 2) {
            fb_options *o = NULL;
            fb_ctx *ctx = NULL;
            assert_int_equal(fb_options_create(&o), FB_OK);
            assert_int_equal(fb_options_set_threads(o, 2), FB_OK);
            assert_int_equal(fb_options_set_join_algorithm(o, (fb_join_algorithm)algo), FB_OK);
            assert_int_equal(fb_options_set_memory_limit(o, limit), FB_OK);
            assert_int_equal(fb_ctx_create(o, &ctx), FB_OK);
            fb_options_destroy(o);
            fb_join_spec s = make_spec(&b, &p, FB_JOIN_LEFT, 4, 1024);
            fb_join_result r;
            fb_status st = fb_join_run(ctx, &s, &r);
            if (st == FB_OK) {
                oks++;
                assert_int_equal(r.count, expect.n);
                fb_join_result_free(ctx, &r);
            } else {
                ooms++;
                assert_fb_status(ctx, st, FB_ERR_OUT_OF_MEMORY);
            }
            /* the join feeding an aggregation */
            fb_agg_desc cnt = {FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID};
            /* an ungrouped count(*); key_types not NULL: fb_query_add_agg copies it with memcpy even for 0 keys */
            fb_type no_key = FB_TYPE_INT64;
            size_t no_col = 0;
            fb_agg_spec as = {0, &no_key, 1, &cnt, FB_AGG_STRATEGY_AUTO};
            fb_agg_input ai = {&no_col, &no_col, 0};
            fb_query *q = NULL;
            st = fb_query_create(ctx, &q);
            fb_agg_groups *groups = NULL;
            if (st == FB_OK)
                st = fb_query_add_join_agg(q, &s, &as, &ai, NULL, &groups, NULL);
            if (st == FB_OK)
                st = fb_query_run(q);
            if (st == FB_OK) {
                int64_t c = 0;
                fb_column_out co = {FB_TYPE_INT64, 1, &c, NULL, 0, 0};
                assert_fb_ok(ctx, fb_agg_groups_result(groups, NULL, &co));
                assert_int_equal(c, expect.n);
            } else {
                assert_fb_status(ctx, st, FB_ERR_OUT_OF_MEMORY);
            }
            fb_agg_groups_destroy(groups);
            fb_query_destroy(q);
            assert_int_equal(fb_ctx_memory_used(ctx), 0);
            fb_ctx_destroy(ctx);
        }
    fprintf(stderr, "[ info     ] memory limit sweep: %d out of memory, %d complete\n", ooms, oks);
    assert_true(ooms > 5);
    assert_true(oks > 0);
    free(expect.r);
    free_side(&b);
    free_side(&p);
}

/* ---- bad input -------------------------------------------------------------------------------------- */

static void test_bad_input(void **state)
{
    (void)state;
    fb_ctx *ctx = ctxs[0];
    int32_t k[4] = {1, 2, 3, 4};
    int64_t k64[4] = {1, 2, 3, 4};
    float f[4] = {0};
    fb_column b = fb_column_make(FB_TYPE_INT32, k, 4, NULL), p = fb_column_make(FB_TYPE_INT32, k, 3, NULL);
    fb_column b64 = fb_column_make(FB_TYPE_INT64, k64, 4, NULL), fl = fb_column_make(FB_TYPE_FLOAT32, f, 4, NULL);
    fb_column two[2] = {b, p};
    fb_join_spec s;
    memset(&s, 0, sizeof s);
    s.n_keys = 1;
    s.build_keys = &b;
    s.probe_keys = &p;
    s.radix_bits = -1;
    fb_join_result r;
    assert_int_equal(fb_join_run(NULL, &s, &r), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_join_run(ctx, NULL, &r), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_join_run(ctx, &s, NULL), FB_ERR_INVALID_ARG);
    s.type = (fb_join_type)9;
    assert_fb_status(ctx, fb_join_run(ctx, &s, &r), FB_ERR_INVALID_ARG);
    s.type = FB_JOIN_SEMI;
    s.n_keys = 0;
    assert_fb_status(ctx, fb_join_run(ctx, &s, &r), FB_ERR_INVALID_ARG);
    s.n_keys = 5;
    assert_fb_status(ctx, fb_join_run(ctx, &s, &r), FB_ERR_INVALID_ARG);
    s.n_keys = 1;
    s.radix_bits = 15;
    assert_fb_status(ctx, fb_join_run(ctx, &s, &r), FB_ERR_INVALID_ARG);
    s.radix_bits = -1;
    s.probe_keys = &b64;
    assert_fb_status(ctx, fb_join_run(ctx, &s, &r), FB_ERR_UNSUPPORTED_TYPE);
    s.build_keys = &fl;
    s.probe_keys = &fl;
    assert_fb_status(ctx, fb_join_run(ctx, &s, &r), FB_ERR_UNSUPPORTED_TYPE);
    s.build_keys = two; /* columns of one side of different lengths */
    s.probe_keys = two;
    s.n_keys = 2;
    assert_fb_status(ctx, fb_join_run(ctx, &s, &r), FB_ERR_LENGTH_MISMATCH);
    s.n_keys = 1;
    s.build_keys = &b;
    s.probe_keys = &p;
    s.build_payload = &b;
    s.n_build_payload = 1; /* a semi join has no build payload */
    assert_fb_status(ctx, fb_join_run(ctx, &s, &r), FB_ERR_INVALID_ARG);
    s.n_build_payload = 0;
    assert_fb_ok(ctx, fb_join_run(ctx, &s, &r));
    assert_int_equal(r.count, 3);
    fb_join_result_free(ctx, &r);
    fb_join_result_free(ctx, NULL);
    /* add_join: the sink is required, and the query owns the caller's stages also on failure */
    fb_query *q = NULL;
    assert_fb_ok(ctx, fb_query_create(ctx, &q));
    assert_fb_status(ctx, fb_query_add_join(q, &s, NULL, 0, NULL, NULL, NULL), FB_ERR_INVALID_ARG);
    assert_int_equal(fb_query_add_join(NULL, &s, NULL, 0, NULL, NULL, NULL), FB_ERR_INVALID_ARG);
    fb_query_destroy(q);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random),          cmocka_unit_test(test_heavy_and_zipf),
        cmocka_unit_test(test_sink_and_agg),    cmocka_unit_test(test_numa_partitions),
        cmocka_unit_test(test_duckdb),          cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
