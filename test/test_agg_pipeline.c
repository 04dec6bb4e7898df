/* test_agg_pipeline.c - the runtime aggregation (fb_query_add_agg(), fb_agg_run(); pipeline_agg.c)
 * against a sort-based oracle written here: every CPU variant the machine runs, 1-3 workers, every
 * forced strategy (direct, pre-aggregation, straight to the partitions) and the automatic choice
 * (checked through the path counters), on random, Zipf-skewed, all-null, single-group, all-distinct
 * and growing keys of several types, nulls in keys and values, a filter operator in front of the
 * sink (selection vectors), the fallback path (two keys, float sums, ungrouped), empty input, exact
 * 128-bit sums and int64 overflow reported as FB_ERR_OVERFLOW, out of memory and bad input.
 * Everything is compared exactly (avg: 1e-12 relative, as it divides an exact sum once). */
#include "fb_test.h"

#include "fb_agg_internal.h"
#include "fb_pipeline_agg_internal.h"

#include <math.h>

__extension__ typedef __int128 i128;

static uint64_t rng;

#define N_CTX (FB_ISA_COUNT + 1)
static fb_ctx *ctxs[N_CTX];
static int n_ctxs;

static int setup(void **state)
{
    (void)state;
    rng = fbt_seed();
    int n = fbt_open_variants(ctxs);
    if (n < 0)
        return -1;
    /* and three workers on the best variant: more workers than cores, partitions from three */
    fb_options *o = NULL;
    if (fb_options_create(&o) != FB_OK || fb_options_set_threads(o, 3) != FB_OK || fb_ctx_create(o, &ctxs[n]) != FB_OK)
        return -1;
    fb_options_destroy(o);
    n_ctxs = n + 1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fbt_close_variants(ctxs, n_ctxs);
    return 0;
}

/* ---- data ---------------------------------------------------------------------------------------- */

enum { D_RANDOM, D_ZIPF, D_ALLNULL, D_SINGLE, D_DISTINCT, D_GROWING };
static const char *const dist_names[] = {"random", "zipf", "all-null", "single-group", "all-distinct", "growing"};

static int is_signed_t(fb_type t)
{
    return t == FB_TYPE_INT8 || t == FB_TYPE_INT16 || t == FB_TYPE_INT32 || t == FB_TYPE_INT64 || t == FB_TYPE_DATE32;
}

/* Value i of an integer column as an int64 whose order is the type's (uint64: top bit flipped). */
static int64_t get_ord(fb_type t, const void *data, int64_t i)
{
    switch (t) {
    case FB_TYPE_INT8: return ((const int8_t *)data)[i];
    case FB_TYPE_INT16: return ((const int16_t *)data)[i];
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: return ((const int32_t *)data)[i];
    case FB_TYPE_INT64: return ((const int64_t *)data)[i];
    case FB_TYPE_UINT8: return ((const uint8_t *)data)[i];
    case FB_TYPE_UINT16: return ((const uint16_t *)data)[i];
    case FB_TYPE_UINT32: return ((const uint32_t *)data)[i];
    default: return (int64_t)(((const uint64_t *)data)[i] ^ 0x8000000000000000ull);
    }
}

/* Its value as a number (for sums). */
static i128 get_num(fb_type t, const void *data, int64_t i)
{
    if (t == FB_TYPE_UINT64)
        return (i128)((const uint64_t *)data)[i];
    if (t == FB_TYPE_FLOAT64)
        return (i128)((const double *)data)[i];
    return get_ord(t, data, i);
}

static int valid_at(const fb_column *c, int64_t i)
{
    if (!c->validity)
        return 1;
    int64_t b = c->offset + i;
    return (c->validity[b >> 3] >> (b & 7)) & 1;
}

/* A key column of n rows: `card` distinct values (scaled by spread, negative for signed types),
 * about 1/10 null when nulls. */
static fbt_col make_key(fb_type t, int64_t n, int dist, uint64_t card, uint64_t spread, int nulls)
{
    fbt_col b;
    size_t w = fb_type_width(t);
    b.data = calloc((size_t)n + 1, w);
    b.valid = NULL;
    if (nulls || dist == D_ALLNULL) {
        b.valid = calloc((size_t)n / 8 + 2, 1);
        for (int64_t i = 0; i < n; i++)
            if (dist != D_ALLNULL && fbt_next(&rng) % 10 != 0)
                b.valid[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    uint64_t topbit = 1ull << (w * 8 - 1);
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = fbt_next(&rng), v;
        switch (dist) {
        case D_ZIPF: v = (uint64_t)pow((double)card + 1.0, (double)(r >> 11) / 9007199254740992.0) - 1; break;
        case D_SINGLE: v = 7; break;
        case D_DISTINCT: v = (uint64_t)i * 2654435761u; break;
        case D_GROWING: v = (uint64_t)i / 3; break; /* the key range grows morsel by morsel */
        default: v = r % (card ? card : 1); break;
        }
        if (dist != D_DISTINCT)
            v = v * spread - (is_signed_t(t) ? card * spread / 2 : 0);
        if (dist == D_RANDOM && fbt_next(&rng) % 128 == 0) /* the type's extremes */
            v = fbt_next(&rng) & 1 ? (is_signed_t(t) ? topbit : 0) : (is_signed_t(t) ? topbit - 1 : ~0ull);
        memcpy((char *)b.data + i * (int64_t)w, &v, w);
    }
    b.col = fb_column_make(t, b.data, n, b.valid);
    return b;
}

/* A value column: fbt_random_value() (extremes, duplicates, negatives), 1/8 null when nulls == 1,
 * all null when 2; 64-bit types get values below 2^40 unless `wide` (then sums may overflow). */
static fbt_col make_val(fb_type t, int64_t n, int nulls, int wide)
{
    fbt_col b;
    size_t w = fb_type_width(t);
    b.data = calloc((size_t)n + 1, w);
    b.valid = NULL;
    if (nulls) {
        b.valid = calloc((size_t)n / 8 + 2, 1);
        for (int64_t i = 0; i < n; i++)
            if (nulls == 1 && fbt_next(&rng) % 8 != 0)
                b.valid[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    for (int64_t i = 0; i < n; i++) {
        char *p = (char *)b.data + i * (int64_t)w;
        if (t == FB_TYPE_FLOAT64) {
            double d = (double)((int64_t)(fbt_next(&rng) % 2001) - 1000); /* exact sums in any order */
            memcpy(p, &d, 8);
            continue;
        }
        fbt_random_value(&rng, t, p);
        if (w == 8 && !wide) {
            int64_t v;
            memcpy(&v, p, 8);
            v >>= 24;
            memcpy(p, &v, 8);
        }
    }
    b.col = fb_column_make(t, b.data, n, b.valid);
    return b;
}

/* ---- the oracle ------------------------------------------------------------------------------------ */

typedef struct group_ref {
    uint8_t knull[FB_AGG_MAX_KEYS];
    int64_t key[FB_AGG_MAX_KEYS];
    int64_t cnt;
    int64_t nn[8];
    i128 sum[8];
    int64_t mn[8], mx[8];
} group_ref;

static size_t ref_nkeys;

static int cmp_group(const void *pa, const void *pb)
{
    const group_ref *a = pa, *b = pb;
    for (size_t k = 0; k < ref_nkeys; k++) {
        if (a->knull[k] != b->knull[k])
            return a->knull[k] < b->knull[k] ? -1 : 1;
        if (a->key[k] != b->key[k])
            return a->key[k] < b->key[k] ? -1 : 1;
    }
    return 0;
}

typedef struct agg_case {
    size_t n_keys;
    fb_type key_types[FB_AGG_MAX_KEYS];
    const fb_column *keys;
    size_t n_vals;
    const fb_column *vals;
    size_t n_aggs;
    const fb_agg_desc *aggs;
    int64_t filter_min; /* rows with valid value column 0 >= filter_min only, when filter */
    int filter;
} agg_case;

static int passes(const agg_case *c, int64_t i)
{
    return !c->filter || (valid_at(&c->vals[0], i) && get_ord(c->vals[0].type, c->vals[0].data, i) >= c->filter_min);
}

/* Groups of the case by sorting one group_ref per row and folding equal neighbours. */
static group_ref *oracle(const agg_case *c, int64_t n, int64_t *n_groups)
{
    group_ref *r = calloc((size_t)n + 1, sizeof *r);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!passes(c, i))
            continue;
        group_ref *g = &r[m++];
        for (size_t k = 0; k < c->n_keys; k++) {
            g->knull[k] = !valid_at(&c->keys[k], i);
            g->key[k] = g->knull[k] ? 0 : get_ord(c->keys[k].type, c->keys[k].data, i);
        }
        g->cnt = 1;
        for (size_t a = 0; a < c->n_aggs; a++) {
            g->mn[a] = INT64_MAX;
            g->mx[a] = INT64_MIN;
            if (c->aggs[a].kind == FB_AGG_COUNT_STAR)
                continue;
            const fb_column *v = &c->vals[c->aggs[a].input];
            if (!valid_at(v, i))
                continue;
            g->nn[a] = 1;
            g->sum[a] = get_num(v->type, v->data, i);
            if (v->type != FB_TYPE_FLOAT64)
                g->mn[a] = g->mx[a] = get_ord(v->type, v->data, i);
        }
    }
    ref_nkeys = c->n_keys;
    qsort(r, (size_t)m, sizeof *r, cmp_group);
    int64_t out = 0;
    for (int64_t i = 0; i < m; i++) {
        if (out && cmp_group(&r[out - 1], &r[i]) == 0) {
            group_ref *g = &r[out - 1];
            g->cnt += r[i].cnt;
            for (size_t a = 0; a < c->n_aggs; a++) {
                g->nn[a] += r[i].nn[a];
                g->sum[a] += r[i].sum[a];
                g->mn[a] = r[i].mn[a] < g->mn[a] ? r[i].mn[a] : g->mn[a];
                g->mx[a] = r[i].mx[a] > g->mx[a] ? r[i].mx[a] : g->mx[a];
            }
        } else {
            r[out++] = r[i];
        }
    }
    if (c->n_keys == 0 && out == 0) { /* ungrouped: one row, also for no input */
        memset(&r[0], 0, sizeof r[0]);
        out = 1;
    }
    *n_groups = out;
    return r;
}

/* Runs the case through the runtime: table source, optionally the filter, the aggregation. */
static fb_status run_case(fb_ctx *ctx, const agg_case *c, int64_t n, int64_t morsel, fb_agg_strategy strat,
                          fb_agg_groups **g)
{
    fb_column cols[8];
    size_t kc[FB_AGG_MAX_KEYS], vc[4];
    for (size_t k = 0; k < c->n_keys; k++)
        cols[k] = c->keys[k], kc[k] = k;
    for (size_t v = 0; v < c->n_vals; v++)
        cols[c->n_keys + v] = c->vals[v], vc[v] = c->n_keys + v;
    for (size_t i = 0; i < c->n_keys + c->n_vals; i++)
        cols[i].length = n;
    fb_table table = {c->n_keys + c->n_vals, cols, NULL};
    fb_agg_spec spec = {c->n_keys, c->key_types, c->n_aggs, c->aggs, strat};
    fb_agg_input in = {kc, vc, c->n_vals};
    if (!c->filter)
        return fb_agg_run(ctx, &table, morsel, &spec, &in, g, NULL);
    fb_query *q = NULL;
    fb_status st = fb_query_create(ctx, &q);
    fb_source src;
    fb_operator op;
    if (st == FB_OK)
        st = fb_source_table(ctx, &table, morsel, &src);
    if (st == FB_OK) {
        int64_t lo = c->filter_min; /* column type is int64 for filtered cases */
        st = fb_operator_select_cmp(ctx, c->n_keys, c->vals[0].type, FB_CMP_GE, &lo, &op);
        if (st != FB_OK)
            src.destroy(src.user);
    }
    if (st == FB_OK)
        st = fb_query_add_agg(q, "agg", &src, &op, 1, &spec, &in, g, NULL);
    if (st == FB_OK)
        st = fb_query_run(q);
    fb_query_destroy(q);
    if (st != FB_OK) {
        fb_agg_groups_destroy(*g);
        *g = NULL;
    }
    return st;
}

/* Compares fb's groups (copied out with fb_agg_groups_result) with the oracle's. */
static void check_groups(const agg_case *c, const fb_agg_groups *g, const group_ref *ref, int64_t n_ref,
                         const char *what)
{
    int64_t n = fb_agg_groups_count(g);
    if (n != n_ref)
        fail_msg("%s: %lld groups, expected %lld", what, (long long)n, (long long)n_ref);
    fb_column_out ko[FB_AGG_MAX_KEYS], ao[8];
    void *bufs[FB_AGG_MAX_KEYS + 8];
    int nb = 0;
    for (size_t k = 0; k < c->n_keys; k++) {
        ko[k] = (fb_column_out){c->key_types[k], n, bufs[nb++] = calloc((size_t)n + 1, 8),
                                calloc((size_t)n / 8 + 2, 1), 0, 0};
    }
    for (size_t a = 0; a < c->n_aggs; a++) {
        fb_type rt;
        assert_fb_ok(NULL, fb_agg_result_type(c->aggs[a].kind, c->aggs[a].kind == FB_AGG_COUNT_STAR ? FB_TYPE_INT64 : c->aggs[a].type, &rt));
        ao[a] = (fb_column_out){rt, n, bufs[nb++] = calloc((size_t)n + 1, 8), calloc((size_t)n / 8 + 2, 1), 0, 0};
    }
    assert_fb_ok(NULL, fb_agg_groups_result(g, ko, ao));
    /* fb's groups as group_refs, sorted like the oracle's */
    group_ref *got = calloc((size_t)n + 1, sizeof *got);
    for (int64_t i = 0; i < n; i++) {
        for (size_t k = 0; k < c->n_keys; k++) {
            fb_column kv = fb_column_make(ko[k].type, ko[k].data, n, ko[k].validity);
            got[i].knull[k] = !valid_at(&kv, i);
            got[i].key[k] = got[i].knull[k] ? 0 : get_ord(ko[k].type, ko[k].data, i);
        }
        got[i].cnt = i; /* row number, to find the outputs again after sorting */
    }
    ref_nkeys = c->n_keys;
    qsort(got, (size_t)n, sizeof *got, cmp_group);
    for (int64_t j = 0; j < n; j++) {
        int64_t i = got[j].cnt;
        const group_ref *e = &ref[j];
        if (cmp_group(&got[j], e) != 0)
            fail_msg("%s: group %lld has another key (%lld vs %lld)", what, (long long)j, (long long)got[j].key[0],
                     (long long)e->key[0]);
        for (size_t a = 0; a < c->n_aggs; a++) {
            fb_column col = fb_column_make(ao[a].type, ao[a].data, n, ao[a].validity);
            int valid = valid_at(&col, i);
            fb_agg_kind kd = c->aggs[a].kind;
            int64_t nn = kd == FB_AGG_COUNT_STAR ? e->cnt : e->nn[a];
            if (kd == FB_AGG_COUNT_STAR || kd == FB_AGG_COUNT) {
                if (!valid || ((int64_t *)ao[a].data)[i] != nn)
                    fail_msg("%s: group %lld aggregate %zu: count %lld, expected %lld", what, (long long)j, a,
                             (long long)((int64_t *)ao[a].data)[i], (long long)nn);
                continue;
            }
            if (valid != (nn != 0))
                fail_msg("%s: group %lld aggregate %zu: null is %d, expected %d", what, (long long)j, a, !valid, nn == 0);
            if (!valid)
                continue;
            if (kd == FB_AGG_SUM && ao[a].type == FB_TYPE_INT64) {
                if (((int64_t *)ao[a].data)[i] != (int64_t)e->sum[a])
                    fail_msg("%s: group %lld sum %lld, expected %lld", what, (long long)j,
                             (long long)((int64_t *)ao[a].data)[i], (long long)e->sum[a]);
            } else if (kd == FB_AGG_SUM) {
                if (((double *)ao[a].data)[i] != (double)e->sum[a])
                    fail_msg("%s: group %lld float sum %g, expected %g", what, (long long)j, ((double *)ao[a].data)[i],
                             (double)e->sum[a]);
            } else if (kd == FB_AGG_AVG) {
                double want = (double)e->sum[a] / (double)nn, have = ((double *)ao[a].data)[i];
                if (fabs(have - want) > 1e-12 * fabs(want))
                    fail_msg("%s: group %lld avg %.17g, expected %.17g", what, (long long)j, have, want);
            } else {
                int64_t have = get_ord(ao[a].type, ao[a].data, i), want = kd == FB_AGG_MIN ? e->mn[a] : e->mx[a];
                if (have != want)
                    fail_msg("%s: group %lld %s %lld, expected %lld", what, (long long)j, kd == FB_AGG_MIN ? "min" : "max",
                             (long long)have, (long long)want);
            }
        }
    }
    free(got);
    for (size_t k = 0; k < c->n_keys; k++)
        free(ko[k].validity);
    for (size_t a = 0; a < c->n_aggs; a++)
        free(ao[a].validity);
    for (int i = 0; i < nb; i++)
        free(bufs[i]);
}

/* ---- tests --------------------------------------------------------------------------------------- */

static const fb_agg_strategy strategies[] = {FB_AGG_STRATEGY_AUTO, FB_AGG_STRATEGY_DIRECT, FB_AGG_STRATEGY_HASH,
                                             FB_AGG_STRATEGY_PARTITION};
static const char *const strategy_names[] = {"auto", "direct", "hash", "partition"};

/* One key column of every kind of distribution and several types, every strategy and context. */
static void test_differential(void **state)
{
    (void)state;
    /* round r takes ktypes[r % 8]; odd rounds have two value columns: int32 keys with one int32
     * value column (the direct path's in-place kernels) on random, zipf, all-distinct, growing keys */
    static const fb_type ktypes[] = {FB_TYPE_INT32, FB_TYPE_INT64, FB_TYPE_INT32, FB_TYPE_UINT64,
                                     FB_TYPE_DATE32, FB_TYPE_INT8, FB_TYPE_UINT16, FB_TYPE_UINT32};
    int round = 0;
    for (int dist = D_RANDOM; dist <= D_GROWING; dist++)
        for (int two_cols = 0; two_cols < 2; two_cols++) {
            fb_type kt = ktypes[(size_t)(round++) % (sizeof ktypes / sizeof ktypes[0])];
            if (dist == D_DISTINCT && fb_type_width(kt) < 4)
                kt = FB_TYPE_INT64;
            int64_t n = 20000 + (int64_t)(fbt_next(&rng) % 20000);
            uint64_t card = dist == D_ZIPF ? 5000 : (fbt_next(&rng) & 1) ? 50 : 3000;
            uint64_t spread = (fbt_next(&rng) % 3 == 0) ? 1000003 : 1;
            fbt_col key = make_key(kt, n, dist, card, spread, two_cols);
            /* one value column: nulls in every other distribution (the fused direct loop takes none) */
            fbt_col v0 = make_val(two_cols ? FB_TYPE_INT64 : FB_TYPE_INT32, n, two_cols || dist % 2 == 0, 0);
            fbt_col v1 = make_val(FB_TYPE_UINT8, n, two_cols ? 1 : 0, 0);
            fb_column vals[2] = {v0.col, v1.col};
            fb_agg_desc aggs[8];
            size_t na = 0;
            aggs[na++] = (fb_agg_desc){FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID};
            aggs[na++] = (fb_agg_desc){FB_AGG_SUM, 0, v0.col.type};
            aggs[na++] = (fb_agg_desc){FB_AGG_COUNT, 0, v0.col.type};
            aggs[na++] = (fb_agg_desc){FB_AGG_MIN, 0, v0.col.type};
            aggs[na++] = (fb_agg_desc){FB_AGG_AVG, 0, v0.col.type};
            if (two_cols) {
                aggs[na++] = (fb_agg_desc){FB_AGG_MAX, 1, FB_TYPE_UINT8};
                aggs[na++] = (fb_agg_desc){FB_AGG_SUM, 1, FB_TYPE_UINT8};
                aggs[na++] = (fb_agg_desc){FB_AGG_COUNT, 1, FB_TYPE_UINT8};
            } else {
                aggs[na++] = (fb_agg_desc){FB_AGG_MAX, 0, v0.col.type};
            }
            agg_case c = {1, {kt, 0}, &key.col, two_cols ? 2u : 1u, vals, na, aggs, 0, 0};
            int64_t n_ref;
            group_ref *ref = oracle(&c, n, &n_ref);
            for (int ci = 0; ci < n_ctxs; ci++)
                for (size_t s = 0; s < 4; s++) {
                    fb_agg_groups *g = NULL;
                    int64_t morsel = (fbt_next(&rng) & 1) ? 1000 + (int64_t)(fbt_next(&rng) % 3000) : 0;
                    fb_status st = run_case(ctxs[ci], &c, n, morsel, strategies[s], &g);
                    char what[256];
                    snprintf(what, sizeof what, "%s %s key %s, %s, ctx %d (%s), morsel %lld", dist_names[dist],
                             fb_type_name(kt), two_cols ? "+2 value columns" : "1 value column", strategy_names[s], ci,
                             fb_isa_name(fb_ctx_isa(ctxs[ci])), (long long)morsel);
                    if (strategies[s] == FB_AGG_STRATEGY_DIRECT && st == FB_ERR_CAPACITY)
                        continue; /* keys too wide for a forced direct table: reported, fine */
                    if (st != FB_OK)
                        fail_msg("%s: %s: %s", what, fb_status_name(st), fb_last_error(ctxs[ci]));
                    check_groups(&c, g, ref, n_ref, what);
                    fb_agg_path_counts pc;
                    fb_agg_groups_paths(g, &pc);
                    if (strategies[s] == FB_AGG_STRATEGY_PARTITION && pc.passed_rows != n)
                        fail_msg("%s: %lld rows passed straight, expected all %lld", what, (long long)pc.passed_rows,
                                 (long long)n);
                    if (strategies[s] == FB_AGG_STRATEGY_DIRECT && pc.direct_rows != n)
                        fail_msg("%s: %lld rows direct, expected %lld", what, (long long)pc.direct_rows, (long long)n);
                    if (strategies[s] == FB_AGG_STRATEGY_HASH && pc.preagg_rows != n)
                        fail_msg("%s: %lld rows pre-aggregated, expected %lld", what, (long long)pc.preagg_rows,
                                 (long long)n);
                    if (pc.direct_rows + pc.preagg_rows + pc.passed_rows != n)
                        fail_msg("%s: paths add up to %lld rows of %lld", what,
                                 (long long)(pc.direct_rows + pc.preagg_rows + pc.passed_rows), (long long)n);
                    fb_agg_groups_destroy(g);
                }
            free(ref);
            fbt_col_free(&key);
            fbt_col_free(&v0);
            fbt_col_free(&v1);
        }
}

/* The automatic choice: small key ranges go direct, high cardinality passes the table by, a few
 * thousand groups over many rows pre-aggregate. */
static void test_auto_choice(void **state)
{
    (void)state;
    fb_ctx *ctx = ctxs[n_ctxs - 1];
    struct {
        int dist;
        uint64_t card, spread;
        int want; /* 0 direct, 1 preagg, 2 passed (most rows) */
    } cases[] = {{D_ZIPF, 100, 1, 0}, {D_RANDOM, 1000, 1000003, 1}, {D_DISTINCT, 0, 1, 2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t n = 200000;
        fbt_col key = make_key(FB_TYPE_INT64, n, cases[i].dist, cases[i].card, cases[i].spread, 0);
        fbt_col v = make_val(FB_TYPE_INT32, n, 0, 0);
        fb_agg_desc aggs[2] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT32}};
        agg_case c = {1, {FB_TYPE_INT64, 0}, &key.col, 1, &v.col, 2, aggs, 0, 0};
        int64_t n_ref;
        group_ref *ref = oracle(&c, n, &n_ref);
        fb_agg_groups *g = NULL;
        assert_fb_ok(ctx, run_case(ctx, &c, n, 0, FB_AGG_STRATEGY_AUTO, &g));
        check_groups(&c, g, ref, n_ref, "auto choice");
        fb_agg_path_counts pc;
        fb_agg_groups_paths(g, &pc);
        int64_t most = n * 9 / 10;
        int64_t got = cases[i].want == 0 ? pc.direct_rows : cases[i].want == 1 ? pc.preagg_rows : pc.passed_rows;
        if (got < most)
            fail_msg("auto case %zu: direct %lld, preagg %lld, passed %lld rows of %lld", i, (long long)pc.direct_rows,
                     (long long)pc.preagg_rows, (long long)pc.passed_rows, (long long)n);
        fb_agg_groups_destroy(g);
        free(ref);
        fbt_col_free(&key);
        fbt_col_free(&v);
    }
}

/* A filter in front of the sink (selection vectors), and the fallback path: two keys, float sums,
 * no keys at all. */
static void test_filter_and_fallback(void **state)
{
    (void)state;
    int64_t n = 30000;
    fbt_col k0 = make_key(FB_TYPE_INT32, n, D_RANDOM, 200, 1, 1);
    fbt_col k1 = make_key(FB_TYPE_UINT8, n, D_RANDOM, 5, 1, 1);
    fbt_col v0 = make_val(FB_TYPE_INT64, n, 1, 0);
    fbt_col v1 = make_val(FB_TYPE_FLOAT64, n, 1, 0);
    fb_column keys[2] = {k0.col, k1.col}, vals[2] = {v0.col, v1.col};
    fb_agg_desc aggs[4] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID},
                           {FB_AGG_SUM, 0, FB_TYPE_INT64},
                           {FB_AGG_MAX, 0, FB_TYPE_INT64},
                           {FB_AGG_SUM, 1, FB_TYPE_FLOAT64}};
    struct {
        size_t n_keys, n_aggs;
        int filter;
    } shapes[] = {{1, 3, 1}, {2, 3, 0}, {2, 4, 1}, {1, 4, 0}, {0, 4, 0}, {0, 3, 1}};
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
        agg_case c = {shapes[sh].n_keys, {FB_TYPE_INT32, FB_TYPE_UINT8}, keys, 2, vals, shapes[sh].n_aggs, aggs,
                      -(INT64_C(1) << 20), shapes[sh].filter};
        int64_t n_ref;
        group_ref *ref = oracle(&c, n, &n_ref);
        for (int ci = 0; ci < n_ctxs; ci++) {
            fb_agg_groups *g = NULL;
            char what[128];
            snprintf(what, sizeof what, "shape %zu (%zu keys, %zu aggs, filter %d), ctx %d", sh, shapes[sh].n_keys,
                     shapes[sh].n_aggs, shapes[sh].filter, ci);
            fb_status st = run_case(ctxs[ci], &c, n, 777, FB_AGG_STRATEGY_AUTO, &g);
            if (st != FB_OK)
                fail_msg("%s: %s: %s", what, fb_status_name(st), fb_last_error(ctxs[ci]));
            check_groups(&c, g, ref, n_ref, what);
            fb_agg_groups_destroy(g);
        }
        free(ref);
    }
    fbt_col_free(&k0);
    fbt_col_free(&k1);
    fbt_col_free(&v0);
    fbt_col_free(&v1);
}

/* No rows: no groups (grouped), one row of count 0 and null sum (ungrouped); a filter that drops
 * everything; all values null. */
static void test_empty_and_all_null(void **state)
{
    (void)state;
    fb_ctx *ctx = ctxs[0];
    int64_t n = 5000;
    fbt_col k = make_key(FB_TYPE_INT32, n, D_ZIPF, 30, 1, 1);
    fbt_col v = make_val(FB_TYPE_INT64, n, 2, 0); /* all null */
    fb_agg_desc aggs[4] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID},
                           {FB_AGG_SUM, 0, FB_TYPE_INT64},
                           {FB_AGG_MIN, 0, FB_TYPE_INT64},
                           {FB_AGG_AVG, 0, FB_TYPE_INT64}};
    for (size_t nk = 0; nk <= 1; nk++)
        for (int64_t rows = 0; rows <= n; rows += n) {
            agg_case c = {nk, {FB_TYPE_INT32, 0}, &k.col, 1, &v.col, 4, aggs, 0, 0};
            for (size_t s = 0; s < 4; s++) {
                int64_t n_ref;
                group_ref *ref = oracle(&c, rows, &n_ref);
                fb_agg_groups *g = NULL;
                assert_fb_ok(ctx, run_case(ctx, &c, rows, 0, strategies[s], &g));
                check_groups(&c, g, ref, n_ref, rows ? "all null values" : "no rows");
                fb_agg_groups_destroy(g);
                free(ref);
            }
        }
    /* a filter that keeps no row (the value column is all null) */
    agg_case c = {1, {FB_TYPE_INT32, 0}, &k.col, 1, &v.col, 4, aggs, 0, 1};
    fb_agg_groups *g = NULL;
    assert_fb_ok(ctx, run_case(ctx, &c, n, 0, FB_AGG_STRATEGY_AUTO, &g));
    assert_int_equal(fb_agg_groups_count(g), 0);
    fb_agg_groups_destroy(g);
    fbt_col_free(&k);
    fbt_col_free(&v);
}

/* Integer sums are exact in 128 bits: ±INT64_MAX pairs that cancel give the right answer on every
 * path; a sum that ends outside int64 fails the run with FB_ERR_OVERFLOW. */
static void test_overflow(void **state)
{
    (void)state;
    int64_t n = 4096;
    int64_t *kv = malloc((size_t)n * 8), *vv = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++) {
        kv[i] = i % 4;
        vv[i] = (i / 4) % 2 ? -INT64_MAX : INT64_MAX; /* each group: +max, -max, +max, ... */
    }
    fb_column k = fb_column_make(FB_TYPE_INT64, kv, n, NULL), v = fb_column_make(FB_TYPE_INT64, vv, n, NULL);
    fb_agg_desc aggs[2] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT64}};
    agg_case c = {1, {FB_TYPE_INT64, 0}, &k, 1, &v, 2, aggs, 0, 0};
    for (int ci = 0; ci < n_ctxs; ci++)
        for (size_t s = 0; s < 4; s++) {
            /* the rows sorted so that partial sums leave int64 (+max, +max, ..., then -max ...) */
            for (int order = 0; order < 2; order++) {
                for (int64_t i = 0; i < n; i++)
                    vv[i] = order ? (i < n / 2 ? INT64_MAX : -INT64_MAX) : ((i / 4) % 2 ? -INT64_MAX : INT64_MAX);
                int64_t n_ref;
                group_ref *ref = oracle(&c, n, &n_ref);
                fb_agg_groups *g = NULL;
                assert_fb_ok(ctxs[ci], run_case(ctxs[ci], &c, n, 512, strategies[s], &g));
                check_groups(&c, g, ref, n_ref, "cancelling sums");
                fb_agg_groups_destroy(g);
                free(ref);
            }
            vv[0] = INT64_MAX;
            vv[4] = INT64_MAX; /* group 0 now ends at 2 * INT64_MAX */
            for (int64_t i = 8; i < n; i += 4)
                vv[i] = i % 8 ? -1 : 1;
            fb_agg_groups *g = NULL;
            fb_status st = run_case(ctxs[ci], &c, n, 512, strategies[s], &g);
            if (st != FB_ERR_OVERFLOW)
                fail_msg("strategy %s, ctx %d: %s instead of FB_ERR_OVERFLOW", strategy_names[s], ci, fb_status_name(st));
            assert_null(g);
            assert_non_null(strstr(fb_last_error(ctxs[ci]), "overflow"));
        }
    free(kv);
    free(vv);
}

/* A memory limit the partitions exceed: FB_ERR_OUT_OF_MEMORY, and everything is given back. */
static void test_out_of_memory(void **state)
{
    (void)state;
    int64_t n = 300000;
    fbt_col k = make_key(FB_TYPE_INT64, n, D_DISTINCT, 0, 1, 0);
    fbt_col v = make_val(FB_TYPE_INT32, n, 1, 0);
    fb_agg_desc aggs[2] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT32}};
    agg_case c = {1, {FB_TYPE_INT64, 0}, &k.col, 1, &v.col, 2, aggs, 0, 0};
    for (size_t limit = (size_t)1 << 20; limit <= ((size_t)64 << 20); limit *= 4) {
        fb_options *o = NULL;
        fb_ctx *ctx = NULL;
        assert_fb_ok(NULL, fb_options_create(&o));
        assert_fb_ok(NULL, fb_options_set_memory_limit(o, limit));
        assert_fb_ok(NULL, fb_ctx_create(o, &ctx));
        fb_options_destroy(o);
        fb_agg_groups *g = NULL;
        fb_status st = run_case(ctx, &c, n, 0, FB_AGG_STRATEGY_AUTO, &g);
        if (st != FB_OK && st != FB_ERR_OUT_OF_MEMORY)
            fail_msg("limit %zu: %s", limit, fb_status_name(st));
        if (st == FB_OK) {
            int64_t n_ref;
            group_ref *ref = oracle(&c, n, &n_ref);
            check_groups(&c, g, ref, n_ref, "under a memory limit");
            free(ref);
        }
        fb_agg_groups_destroy(g);
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
        fb_ctx_destroy(ctx);
    }
    fbt_col_free(&k);
    fbt_col_free(&v);
}

static void test_bad_input(void **state)
{
    (void)state;
    fb_ctx *ctx = ctxs[0];
    int32_t kd[4] = {1, 2, 3, 4};
    int64_t vd[4] = {1, 2, 3, 4};
    fb_column cols[2] = {fb_column_make(FB_TYPE_INT32, kd, 4, NULL), fb_column_make(FB_TYPE_INT64, vd, 4, NULL)};
    fb_table table = {2, cols, NULL};
    fb_type kt = FB_TYPE_INT32;
    fb_agg_desc aggs[2] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT64}};
    fb_agg_spec spec = {1, &kt, 2, aggs, FB_AGG_STRATEGY_AUTO};
    size_t kc = 0, vc = 1;
    fb_agg_input in = {&kc, &vc, 1};
    fb_agg_groups *g = (fb_agg_groups *)&g;
    assert_int_equal(fb_agg_run(NULL, &table, 0, &spec, &in, &g, NULL), FB_ERR_INVALID_ARG);
    assert_int_equal(fb_agg_run(ctx, &table, 0, NULL, &in, &g, NULL), FB_ERR_INVALID_ARG);
    assert_null(g);
    assert_int_equal(fb_agg_run(ctx, &table, 0, &spec, NULL, &g, NULL), FB_ERR_INVALID_ARG);
    fb_agg_input no_vals = {&kc, NULL, 0};
    assert_int_equal(fb_agg_run(ctx, &table, 0, &spec, &no_vals, &g, NULL), FB_ERR_INVALID_ARG);
    fb_agg_spec bad = spec;
    bad.strategy = (fb_agg_strategy)9;
    assert_int_equal(fb_agg_run(ctx, &table, 0, &bad, &in, &g, NULL), FB_ERR_INVALID_ARG);
    /* types checked against the chunks when the run is on */
    fb_type kt64 = FB_TYPE_INT64;
    bad = spec;
    bad.key_types = &kt64;
    assert_int_equal(fb_agg_run(ctx, &table, 0, &bad, &in, &g, NULL), FB_ERR_UNSUPPORTED_TYPE);
    assert_null(g);
    size_t vc_bad = 7;
    fb_agg_input in_bad = {&kc, &vc_bad, 1};
    assert_int_equal(fb_agg_run(ctx, &table, 0, &spec, &in_bad, &g, NULL), FB_ERR_INVALID_ARG);
    /* a forced direct table over keys wider than it may be */
    int32_t wide[2] = {INT32_MIN, INT32_MAX};
    int64_t wv[2] = {1, 2};
    fb_column wc[2] = {fb_column_make(FB_TYPE_INT32, wide, 2, NULL), fb_column_make(FB_TYPE_INT64, wv, 2, NULL)};
    fb_table wt = {2, wc, NULL};
    bad = spec;
    bad.strategy = FB_AGG_STRATEGY_DIRECT;
    assert_int_equal(fb_agg_run(ctx, &wt, 0, &bad, &in, &g, NULL), FB_ERR_CAPACITY);
    /* accessors on NULL */
    assert_int_equal(fb_agg_groups_count(NULL), 0);
    assert_int_equal(fb_agg_groups_partitions(NULL), 0);
    int64_t rows;
    assert_int_equal(fb_agg_groups_partition(NULL, 0, NULL, NULL, &rows), FB_ERR_INVALID_ARG);
    fb_agg_groups_destroy(NULL);
    assert_fb_ok(ctx, fb_agg_run(ctx, &table, 0, &spec, &in, &g, NULL));
    fb_column ko, ao[2];
    assert_int_equal(fb_agg_groups_partition(g, fb_agg_groups_partitions(g), &ko, ao, &rows), FB_ERR_INVALID_ARG);
    fb_column_out small[2] = {{FB_TYPE_INT32, 1, kd, NULL, 0, 0}};
    fb_column_out so[2] = {{FB_TYPE_INT64, 1, vd, NULL, 0, 0}, {FB_TYPE_INT64, 1, vd, NULL, 0, 0}};
    assert_int_equal(fb_agg_groups_result(g, small, so), FB_ERR_CAPACITY);
    fb_agg_groups_destroy(g);
    /* a query that fails to take the aggregation still frees its stages */
    fb_source src;
    assert_fb_ok(ctx, fb_source_table(ctx, &table, 0, &src));
    assert_int_equal(fb_query_add_agg(NULL, NULL, &src, NULL, 0, &spec, &in, &g, NULL), FB_ERR_INVALID_ARG);
    assert_null(g);
}

/* fb_options_set_agg_strategy() and FB_AGG_STRATEGY: every forced strategy gives the oracle's groups
 * and sends the rows down its path; an explicit strategy in the spec wins over the context's. Key and
 * value types cover both compact row widths (8 bytes: 32-bit key and value; 16 bytes: wider ones). */
static void test_forced_by_context(void **state)
{
    (void)state;
    static const struct {
        fb_type kt, vt;
        int dist, nulls;
    } shapes[] = {{FB_TYPE_INT32, FB_TYPE_INT32, D_RANDOM, 0},  {FB_TYPE_UINT32, FB_TYPE_INT16, D_RANDOM, 0},
                  {FB_TYPE_INT64, FB_TYPE_INT64, D_ZIPF, 0},    {FB_TYPE_INT16, FB_TYPE_UINT32, D_RANDOM, 0},
                  {FB_TYPE_DATE32, FB_TYPE_UINT8, D_DISTINCT, 0}, {FB_TYPE_INT32, FB_TYPE_INT32, D_RANDOM, 1},
                  {FB_TYPE_UINT64, FB_TYPE_INT32, D_ZIPF, 0}};
    for (size_t s = 0; s < 4; s++) {
        fb_options *o = NULL;
        fb_ctx *ctx = NULL;
        assert_int_equal(fb_options_create(&o), FB_OK);
        assert_int_equal(fb_options_set_threads(o, 2), FB_OK);
        assert_int_equal(fb_options_set_agg_strategy(o, strategies[s]), FB_OK);
        assert_int_equal(fb_ctx_create(o, &ctx), FB_OK);
        fb_options_destroy(o);
        assert_int_equal(fb_ctx_agg_strategy(ctx), strategies[s]);
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            int64_t n = 30000 + (int64_t)(fbt_next(&rng) % 30000);
            uint64_t spread = shapes[i].dist == D_ZIPF ? 1 : 1000003;
            fbt_col key = make_key(shapes[i].kt, n, shapes[i].dist, 4000, spread, shapes[i].nulls);
            fbt_col v = make_val(shapes[i].vt, n, shapes[i].nulls, 0);
            fb_type vt = shapes[i].vt;
            fb_agg_desc aggs[6] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, vt},
                                   {FB_AGG_COUNT, 0, vt}, {FB_AGG_MIN, 0, vt}, {FB_AGG_MAX, 0, vt},
                                   {FB_AGG_AVG, 0, vt}};
            agg_case c = {1, {shapes[i].kt, 0}, &key.col, 1, &v.col, 6, aggs, 0, 0};
            int64_t n_ref;
            group_ref *ref = oracle(&c, n, &n_ref);
            char what[160];
            snprintf(what, sizeof what, "context forces %s: %s key, %s value%s", strategy_names[s],
                     fb_type_name(shapes[i].kt), fb_type_name(vt), shapes[i].nulls ? ", nulls" : "");
            fb_agg_groups *g = NULL;
            fb_status st = run_case(ctx, &c, n, 2048, FB_AGG_STRATEGY_AUTO, &g);
            if (strategies[s] == FB_AGG_STRATEGY_DIRECT && st == FB_ERR_CAPACITY) {
                if (shapes[i].dist == D_ZIPF)
                    fail_msg("%s: a small key range did not fit the forced direct table", what);
            } else {
                if (st != FB_OK)
                    fail_msg("%s: %s: %s", what, fb_status_name(st), fb_last_error(ctx));
                check_groups(&c, g, ref, n_ref, what);
                fb_agg_path_counts pc;
                fb_agg_groups_paths(g, &pc);
                int64_t want = strategies[s] == FB_AGG_STRATEGY_DIRECT  ? pc.direct_rows
                               : strategies[s] == FB_AGG_STRATEGY_HASH  ? pc.preagg_rows
                               : strategies[s] == FB_AGG_STRATEGY_PARTITION ? pc.passed_rows
                                                                            : n;
                if (want != n)
                    fail_msg("%s: %lld rows took the forced path, expected %lld", what, (long long)want, (long long)n);
                /* rows without a null key or value pass as compact rows, the others as records */
                int64_t clean = 0;
                for (int64_t r = 0; r < n; r++)
                    clean += valid_at(&key.col, r) && valid_at(&v.col, r);
                if (strategies[s] == FB_AGG_STRATEGY_PARTITION && pc.compact_rows != clean)
                    fail_msg("%s: %lld compact rows, expected %lld", what, (long long)pc.compact_rows, (long long)clean);
                fb_agg_groups_destroy(g);
            }
            /* the merge tables' wide layout (which runs of 2^31 rows take) gives the same groups */
            fb_agg_narrow_max_rows = -1;
            st = run_case(ctx, &c, n, 2048, FB_AGG_STRATEGY_AUTO, &g);
            fb_agg_narrow_max_rows = (INT64_C(1) << 31) - 2;
            if (st == FB_OK) {
                check_groups(&c, g, ref, n_ref, what);
                fb_agg_groups_destroy(g);
            } else if (st != FB_ERR_CAPACITY || strategies[s] != FB_AGG_STRATEGY_DIRECT) {
                fail_msg("%s, wide merge: %s: %s", what, fb_status_name(st), fb_last_error(ctx));
            }
            /* the spec's own strategy wins over the context's */
            assert_fb_ok(ctx, run_case(ctx, &c, n, 2048, FB_AGG_STRATEGY_HASH, &g));
            check_groups(&c, g, ref, n_ref, what);
            fb_agg_path_counts pc;
            fb_agg_groups_paths(g, &pc);
            if (pc.preagg_rows != n)
                fail_msg("%s: spec forces hash, %lld rows pre-aggregated of %lld", what, (long long)pc.preagg_rows,
                         (long long)n);
            fb_agg_groups_destroy(g);
            free(ref);
            fbt_col_free(&key);
            fbt_col_free(&v);
        }
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
        fb_ctx_destroy(ctx);
    }
    /* the option's checks, and the environment variable */
    fb_options *o = NULL;
    assert_int_equal(fb_options_create(&o), FB_OK);
    assert_int_equal(fb_options_set_agg_strategy(NULL, FB_AGG_STRATEGY_HASH), FB_ERR_INVALID_ARG);
    assert_int_equal(fb_options_set_agg_strategy(o, (fb_agg_strategy)9), FB_ERR_INVALID_ARG);
    assert_int_equal(fb_ctx_agg_strategy(NULL), FB_AGG_STRATEGY_AUTO);
    fb_ctx *ctx = NULL;
    assert_int_equal(setenv("FB_AGG_STRATEGY", "partition", 1), 0);
    assert_int_equal(fb_ctx_create(o, &ctx), FB_OK);
    assert_int_equal(fb_ctx_agg_strategy(ctx), FB_AGG_STRATEGY_PARTITION);
    fb_ctx_destroy(ctx);
    assert_int_equal(fb_options_set_agg_strategy(o, FB_AGG_STRATEGY_HASH), FB_OK); /* the option wins */
    assert_int_equal(fb_ctx_create(o, &ctx), FB_OK);
    assert_int_equal(fb_ctx_agg_strategy(ctx), FB_AGG_STRATEGY_HASH);
    fb_ctx_destroy(ctx);
    assert_int_equal(setenv("FB_AGG_STRATEGY", "sideways", 1), 0);
    assert_int_equal(fb_ctx_create(NULL, &ctx), FB_ERR_INVALID_ARG);
    assert_int_equal(setenv("FB_AGG_STRATEGY", "direct", 1), 0);
    assert_int_equal(fb_ctx_create(NULL, &ctx), FB_OK);
    assert_int_equal(fb_ctx_agg_strategy(ctx), FB_AGG_STRATEGY_DIRECT);
    fb_ctx_destroy(ctx);
    assert_int_equal(unsetenv("FB_AGG_STRATEGY"), 0);
    assert_int_equal(fb_ctx_create(NULL, &ctx), FB_OK);
    assert_int_equal(fb_ctx_agg_strategy(ctx), FB_AGG_STRATEGY_AUTO);
    fb_ctx_destroy(ctx);
    fb_options_destroy(o);
}

/* Two key columns whose fields fit one 64-bit word (each key's bits and a null flag) go through the
 * fast paths as one packed key; wider pairs as one word per key (test_wide_keys). Every strategy, keys
 * with nulls and the types' extremes, against the oracle. */
static void test_packed_keys(void **state)
{
    (void)state;
    static const struct {
        fb_type k0, k1;
        int packed;
    } pairs[] = {{FB_TYPE_INT8, FB_TYPE_INT16, 1},   {FB_TYPE_INT16, FB_TYPE_UINT32, 1},
                 {FB_TYPE_DATE32, FB_TYPE_UINT8, 1}, {FB_TYPE_UINT16, FB_TYPE_INT32, 1},
                 {FB_TYPE_INT32, FB_TYPE_INT32, 0},  {FB_TYPE_INT64, FB_TYPE_INT8, 0}};
    fb_ctx *ctx = ctxs[n_ctxs - 1];
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        for (int nulls = 0; nulls < 2; nulls++) {
            int64_t n = 20000 + (int64_t)(fbt_next(&rng) % 20000);
            fbt_col k0 = make_key(pairs[i].k0, n, D_RANDOM, 60, 1, nulls);
            fbt_col k1 = make_key(pairs[i].k1, n, nulls ? D_ZIPF : D_RANDOM, 300, 7, nulls);
            fbt_col v = make_val(FB_TYPE_INT32, n, nulls, 0);
            fb_column keys[2] = {k0.col, k1.col};
            fb_agg_desc aggs[5] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT32},
                                   {FB_AGG_COUNT, 0, FB_TYPE_INT32},     {FB_AGG_MIN, 0, FB_TYPE_INT32},
                                   {FB_AGG_AVG, 0, FB_TYPE_INT32}};
            agg_case c = {2, {pairs[i].k0, pairs[i].k1}, keys, 1, &v.col, 5, aggs, 0, 0};
            int64_t n_ref;
            group_ref *ref = oracle(&c, n, &n_ref);
            for (size_t s = 0; s < 4; s++) {
                char what[160];
                snprintf(what, sizeof what, "keys %s, %s%s, %s", fb_type_name(pairs[i].k0), fb_type_name(pairs[i].k1),
                         nulls ? " with nulls" : "", strategy_names[s]);
                fb_agg_groups *g = NULL;
                fb_status st = run_case(ctx, &c, n, 1500, strategies[s], &g);
                if (strategies[s] == FB_AGG_STRATEGY_DIRECT && st == FB_ERR_CAPACITY)
                    continue; /* the packed keys span more than a forced direct table */
                if (st != FB_OK)
                    fail_msg("%s: %s: %s", what, fb_status_name(st), fb_last_error(ctx));
                check_groups(&c, g, ref, n_ref, what);
                fb_agg_path_counts pc;
                fb_agg_groups_paths(g, &pc);
                if (pc.generic_rows != 0)
                    fail_msg("%s: %lld rows took the fallback", what, (long long)pc.generic_rows);
                int64_t clean = 0; /* packed keys carry their nulls: a null value alone makes a record */
                for (int64_t r = 0; r < n; r++)
                    clean += valid_at(&v.col, r);
                if (pairs[i].packed && strategies[s] == FB_AGG_STRATEGY_PARTITION && pc.compact_rows != clean)
                    fail_msg("%s: %lld compact rows, expected %lld", what, (long long)pc.compact_rows, (long long)clean);
                fb_agg_groups_destroy(g);
            }
            free(ref);
            fbt_col_free(&k0);
            fbt_col_free(&k1);
            fbt_col_free(&v);
        }
}

/* The direct table's fused kernel (fb_agg_kernels.direct_fused_i32) of every variant against a
 * row-at-a-time reference written here: records of 2 and 4 words in 1, 2, 4, 8 copies, bases from
 * INT32_MIN up, uniform, single-key and skewed keys, values with the int32 extremes, lengths that are
 * not multiples of the kernel's 8-row step, records that start from earlier contents, and a key
 * outside the table (the kernel stops before its block of 8 rows). */
static void test_direct_fused_kernel(void **state)
{
    (void)state;
    for (int round = 0; round < 48; round++) {
        const int lc = round % 4, rw = (round / 4) % 2 ? 4 : 2, dist = (round / 8) % 3;
        const int64_t n = round % 5 == 0 ? (int64_t)(fbt_next(&rng) % 20) : 1000 + (int64_t)(fbt_next(&rng) % 5000);
        const int64_t range = 1 + (int64_t)(fbt_next(&rng) % 300);
        const int32_t base = round % 7 == 0 ? INT32_MIN : (int32_t)(fbt_next(&rng) % 2000) - 1000;
        const int64_t C = INT64_C(1) << lc, words = (range + 1) * C * rw;
        int32_t *k = malloc((size_t)(n + 1) * 4), *v = malloc((size_t)(n + 1) * 4);
        uint64_t *init = malloc((size_t)words * 8), *want = malloc((size_t)words * 8), *got = malloc((size_t)words * 8);
        assert_non_null(k), assert_non_null(v), assert_non_null(init), assert_non_null(want), assert_non_null(got);
        for (int64_t i = 0; i < n; i++) {
            uint64_t r = fbt_next(&rng);
            uint64_t q = (r >> 40) % (uint64_t)range; /* skewed: q^2 / range piles on the low slots */
            int64_t off = dist == 0 ? (int64_t)(r % (uint64_t)range) : dist == 1 ? range - 1 : (int64_t)(q * q / (uint64_t)range);
            k[i] = (int32_t)((int64_t)base + off);
            fbt_random_value(&rng, FB_TYPE_INT32, &v[i]);
            if (fbt_next(&rng) % 64 == 0)
                v[i] = fbt_next(&rng) & 1 ? INT32_MIN : INT32_MAX;
        }
        /* every third round a key outside the table (just above it, or just below base): the kernel
         * stops before that row's block of 8 */
        int64_t want_took = n;
        if (round % 3 == 1 && n > 0) {
            int64_t p = (int64_t)(fbt_next(&rng) % (uint64_t)n);
            k[p] = (int32_t)((uint32_t)base + (fbt_next(&rng) & 1 ? (uint32_t)range : UINT32_MAX));
            want_took = p / 8 * 8;
        }
        for (int64_t w = 0; w < words; w++) /* counts, sums, mins and maxes some rows have already made */
            init[w] = w % rw < 2 ? fbt_next(&rng) % 1000 : (uint64_t)(int64_t)(int32_t)fbt_next(&rng);
        memcpy(want, init, (size_t)words * 8);
        for (int64_t i = 0; i < want_took; i++) {
            int64_t slot = (int64_t)k[i] - base + 1, copy = i % C;
            uint64_t *r = want + (slot * C + copy) * rw;
            r[0] += 1;
            r[1] = (uint64_t)((int64_t)r[1] + v[i]);
            if (rw == 4) {
                if (v[i] < (int64_t)r[2])
                    r[2] = (uint64_t)(int64_t)v[i];
                if (v[i] > (int64_t)r[3])
                    r[3] = (uint64_t)(int64_t)v[i];
            }
        }
        for (int ci = 0; ci < n_ctxs; ci++) {
            const fb_agg_kernels *ak = fb_agg_kernels_get(fb_ctx_isa(ctxs[ci]));
            memcpy(got, init, (size_t)words * 8);
            int64_t took = ak->direct_fused_i32(k, v, n, base, (uint32_t)range, lc, rw, got);
            if (took != want_took)
                fail_msg("round %d, %s: took %lld rows of %lld, expected %lld", round, fb_isa_name(ak->isa),
                         (long long)took, (long long)n, (long long)want_took);
            for (int64_t w = 0; w < words; w++)
                if (got[w] != want[w])
                    fail_msg("round %d, %s: lc %d, rw %d, %lld rows, base %d: word %lld is %lld, expected %lld", round,
                             fb_isa_name(ak->isa), lc, rw, (long long)n, base, (long long)w, (long long)got[w],
                             (long long)want[w]);
        }
        free(k), free(v), free(init), free(want), free(got);
    }
}

/* The shapes around the fused direct path through the runtime, against the oracle: count(*) and sum
 * alone, count(v), sum, min, max and avg in any order, min and max without a sum (the word loops),
 * key ranges of each copy count (100, 3000, 20000 slots), one key, keys that grow (re-based tables),
 * values at the int32 extremes; every variant, automatic and forced direct. */
static void test_direct_fused_shapes(void **state)
{
    (void)state;
    static const fb_agg_desc shapes[][6] = {
        {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT32}},
        {{FB_AGG_SUM, 0, FB_TYPE_INT32}, {FB_AGG_AVG, 0, FB_TYPE_INT32}},
        {{FB_AGG_MAX, 0, FB_TYPE_INT32}, {FB_AGG_COUNT, 0, FB_TYPE_INT32}, {FB_AGG_MIN, 0, FB_TYPE_INT32},
         {FB_AGG_AVG, 0, FB_TYPE_INT32}, {FB_AGG_SUM, 0, FB_TYPE_INT32}, {FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}},
        {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_MIN, 0, FB_TYPE_INT32}, {FB_AGG_MAX, 0, FB_TYPE_INT32}},
        {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT32}, {FB_AGG_MIN, 0, FB_TYPE_INT32},
         {FB_AGG_MAX, 0, FB_TYPE_INT32}, {FB_AGG_AVG, 0, FB_TYPE_INT32}},
    };
    static const size_t n_aggs[] = {2, 2, 6, 3, 5};
    static const struct {
        int dist;
        uint64_t card;
    } keys[] = {{D_RANDOM, 100}, {D_ZIPF, 3000}, {D_RANDOM, 20000}, {D_SINGLE, 1}, {D_GROWING, 0}, {D_DISTINCT, 0}};
    for (size_t sh = 0; sh < sizeof n_aggs / sizeof n_aggs[0]; sh++)
        for (size_t ki = 0; ki < sizeof keys / sizeof keys[0]; ki++) {
            int64_t n = 30000 + (int64_t)(fbt_next(&rng) % 10000);
            fbt_col key = make_key(FB_TYPE_INT32, n, keys[ki].dist, keys[ki].card, 1, 0);
            if (keys[ki].dist == D_RANDOM) /* no extremes: the range must stay direct */
                for (int64_t i = 0; i < n; i++)
                    ((int32_t *)key.data)[i] = (int32_t)(fbt_next(&rng) % keys[ki].card) - 50;
            const int leave = keys[ki].dist == D_DISTINCT; /* 3/4 of the rows direct, then keys too wide */
            if (leave)
                for (int64_t i = 0; i < n * 3 / 4; i++)
                    ((int32_t *)key.data)[i] = (int32_t)(fbt_next(&rng) % 100);
            fbt_col v = make_val(FB_TYPE_INT32, n, 0, 0);
            for (int64_t i = 0; i < n; i += 97)
                ((int32_t *)v.data)[i] = i % 2 ? INT32_MIN : INT32_MAX;
            agg_case c = {1, {FB_TYPE_INT32, 0}, &key.col, 1, &v.col, n_aggs[sh], shapes[sh], 0, 0};
            int64_t n_ref;
            group_ref *ref = oracle(&c, n, &n_ref);
            for (int ci = 0; ci < n_ctxs; ci++)
                for (size_t s = 0; s < 2; s++) {
                    fb_agg_groups *g = NULL;
                    int64_t morsel = (fbt_next(&rng) & 1) ? 1000 + (int64_t)(fbt_next(&rng) % 5000) : 0;
                    char what[256];
                    snprintf(what, sizeof what, "shape %zu, %s keys (%llu), %s, ctx %d (%s), morsel %lld", sh,
                             dist_names[keys[ki].dist], (unsigned long long)keys[ki].card, strategy_names[s], ci,
                             fb_isa_name(fb_ctx_isa(ctxs[ci])), (long long)morsel);
                    fb_status st = run_case(ctxs[ci], &c, n, morsel, strategies[s], &g);
                    if (leave && strategies[s] == FB_AGG_STRATEGY_DIRECT) {
                        if (st != FB_ERR_CAPACITY)
                            fail_msg("%s: %s, expected FB_ERR_CAPACITY", what, fb_status_name(st));
                        continue;
                    }
                    if (st != FB_OK)
                        fail_msg("%s: %s: %s", what, fb_status_name(st), fb_last_error(ctxs[ci]));
                    check_groups(&c, g, ref, n_ref, what);
                    fb_agg_path_counts pc;
                    fb_agg_groups_paths(g, &pc);
                    if (leave ? pc.direct_rows < n / 2 || pc.direct_rows + pc.preagg_rows + pc.passed_rows != n
                              : pc.direct_rows != n)
                        fail_msg("%s: %lld rows direct, %lld pre-aggregated, %lld passed of %lld", what,
                                 (long long)pc.direct_rows, (long long)pc.preagg_rows, (long long)pc.passed_rows,
                                 (long long)n);
                    fb_agg_groups_destroy(g);
                }
            free(ref);
            fbt_col_free(&key);
            fbt_col_free(&v);
        }
}

/* Two to four integer key columns that do not pack into one 64-bit word (int32 with int32, int64 with
 * int64, uint64 with int8 and int16, four int32s): one record word per key and a word of null flags,
 * through pre-aggregation and the partitions. Every variant and strategy (a forced direct table fails
 * with FB_ERR_CAPACITY), one and three workers, keys with nulls and the types' extremes, narrow and wide
 * merge tables, against the oracle. */
static void test_wide_keys(void **state)
{
    (void)state;
    static const struct {
        size_t n;
        fb_type t[FB_AGG_MAX_KEYS];
    } sets[] = {{2, {FB_TYPE_INT32, FB_TYPE_INT32}},
                {2, {FB_TYPE_INT64, FB_TYPE_INT64}},
                {3, {FB_TYPE_UINT64, FB_TYPE_INT8, FB_TYPE_INT16}},
                {4, {FB_TYPE_INT32, FB_TYPE_UINT32, FB_TYPE_DATE32, FB_TYPE_INT32}}};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        for (int nulls = 0; nulls < 2; nulls++) {
            int64_t n = 20000 + (int64_t)(fbt_next(&rng) % 20000);
            fbt_col k[FB_AGG_MAX_KEYS];
            fb_column keys[FB_AGG_MAX_KEYS];
            for (size_t j = 0; j < sets[i].n; j++) { /* few groups per key: the tables merge rows */
                k[j] = make_key(sets[i].t[j], n, j % 2 ? D_ZIPF : D_RANDOM, j ? 12 : 40, j == 1 ? 1 : 1000003,
                                nulls && j != 1);
                keys[j] = k[j].col;
            }
            fbt_col v = make_val(i % 2 ? FB_TYPE_INT64 : FB_TYPE_INT32, n, nulls, 0);
            fb_type vt = v.col.type;
            fb_agg_desc aggs[6] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, vt},
                                   {FB_AGG_COUNT, 0, vt},                 {FB_AGG_MIN, 0, vt},
                                   {FB_AGG_MAX, 0, vt},                   {FB_AGG_AVG, 0, vt}};
            agg_case c = {sets[i].n, {FB_TYPE_INVALID}, keys, 1, &v.col, 6, aggs, 0, 0};
            for (size_t j = 0; j < sets[i].n; j++)
                c.key_types[j] = sets[i].t[j];
            int64_t n_ref;
            group_ref *ref = oracle(&c, n, &n_ref);
            for (int ci = 0; ci < n_ctxs; ci++)
                for (size_t s = 0; s < 4; s++)
                    for (int wide = 0; wide < (ci == n_ctxs - 1 ? 2 : 1); wide++) { /* wide: 3 workers */
                        char what[192];
                        snprintf(what, sizeof what, "set %zu (%zu keys)%s, %s, ctx %d (%s), %s merge", i, sets[i].n,
                                 nulls ? " with nulls" : "", strategy_names[s], ci, fb_isa_name(fb_ctx_isa(ctxs[ci])),
                                 wide ? "wide" : "narrow");
                        fb_agg_groups *g = NULL;
                        if (wide)
                            fb_agg_narrow_max_rows = -1;
                        int64_t morsel = 1000 + (int64_t)(fbt_next(&rng) % 3000);
                        fb_status st = run_case(ctxs[ci], &c, n, morsel, strategies[s], &g);
                        fb_agg_narrow_max_rows = (INT64_C(1) << 31) - 2;
                        if (strategies[s] == FB_AGG_STRATEGY_DIRECT) {
                            if (st != FB_ERR_CAPACITY)
                                fail_msg("%s: %s, expected FB_ERR_CAPACITY", what, fb_status_name(st));
                            continue;
                        }
                        if (st != FB_OK)
                            fail_msg("%s: %s: %s", what, fb_status_name(st), fb_last_error(ctxs[ci]));
                        check_groups(&c, g, ref, n_ref, what);
                        fb_agg_path_counts pc;
                        fb_agg_groups_paths(g, &pc);
                        if (pc.generic_rows != 0 || pc.direct_rows != 0 || pc.preagg_rows + pc.passed_rows != n)
                            fail_msg("%s: %lld generic, %lld direct, %lld pre-aggregated, %lld passed rows of %lld",
                                     what, (long long)pc.generic_rows, (long long)pc.direct_rows,
                                     (long long)pc.preagg_rows, (long long)pc.passed_rows, (long long)n);
                        if ((strategies[s] == FB_AGG_STRATEGY_PARTITION && pc.passed_rows != n) ||
                            (strategies[s] == FB_AGG_STRATEGY_HASH && pc.preagg_rows != n))
                            fail_msg("%s: the forced path took %lld pre-aggregated, %lld passed rows of %lld", what,
                                     (long long)pc.preagg_rows, (long long)pc.passed_rows, (long long)n);
                        fb_agg_groups_destroy(g);
                    }
            free(ref);
            for (size_t j = 0; j < sets[i].n; j++)
                fbt_col_free(&k[j]);
            fbt_col_free(&v);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_differential),   cmocka_unit_test(test_auto_choice),
        cmocka_unit_test(test_filter_and_fallback), cmocka_unit_test(test_empty_and_all_null),
        cmocka_unit_test(test_overflow),       cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_bad_input),      cmocka_unit_test(test_forced_by_context),
        cmocka_unit_test(test_packed_keys),
        cmocka_unit_test(test_direct_fused_kernel), cmocka_unit_test(test_direct_fused_shapes),
        cmocka_unit_test(test_wide_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
