/* test_kernels.c - hashing, selection, compaction and gather: every CPU variant the machine runs
 * (scalar, base, avx2, avx512) against an independent oracle written here, on random data with
 * duplicates, nulls (bitmaps at odd offsets), negatives, extremes, NaN, -0.0 and odd lengths; plus
 * the bad-input statuses of every entry point. */
#include "fb_test.h"

#include <math.h>

static uint64_t rng;

/* ---- oracle -------------------------------------------------------------------------------------- */

static uint64_t oracle_fmix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

/* value of row r (data already at offset) widened the way the hash documents */
static uint64_t widen(fb_type t, const void *data, int64_t r)
{
    switch (t) {
    case FB_TYPE_INT8: return (uint64_t)(int64_t)((const int8_t *)data)[r];
    case FB_TYPE_INT16: return (uint64_t)(int64_t)((const int16_t *)data)[r];
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: return (uint64_t)(int64_t)((const int32_t *)data)[r];
    case FB_TYPE_INT64: return (uint64_t)((const int64_t *)data)[r];
    case FB_TYPE_UINT8: return ((const uint8_t *)data)[r];
    case FB_TYPE_UINT16: return ((const uint16_t *)data)[r];
    case FB_TYPE_UINT32: return ((const uint32_t *)data)[r];
    default: return ((const uint64_t *)data)[r];
    }
}

static int row_valid(const fb_column *c, int64_t i)
{
    if (!c->validity)
        return 1;
    int64_t b = c->offset + i;
    return (c->validity[b / 8] >> (b % 8)) & 1;
}

static uint64_t oracle_hash(const fb_column *c, int64_t i)
{
    if (!row_valid(c, i))
        return FB_HASH_NULL;
    return oracle_fmix(widen(c->type, c->data, c->offset + i) + FB_HASH_SEED);
}

/* SQL order: -1, 0, 1. Floats: NaN equals NaN and is above everything; -0.0 equals 0.0. */
static int oracle_cmp(fb_type t, const void *a, const void *b)
{
    if (t == FB_TYPE_FLOAT32 || t == FB_TYPE_FLOAT64) {
        double x = t == FB_TYPE_FLOAT32 ? *(const float *)a : *(const double *)a;
        double y = t == FB_TYPE_FLOAT32 ? *(const float *)b : *(const double *)b;
        if (isnan(x) || isnan(y))
            return isnan(x) && isnan(y) ? 0 : isnan(x) ? 1 : -1;
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (t == FB_TYPE_UINT8 || t == FB_TYPE_UINT16 || t == FB_TYPE_UINT32 || t == FB_TYPE_UINT64) {
        uint64_t x = widen(t, a, 0), y = widen(t, b, 0);
        return x < y ? -1 : x > y;
    }
    int64_t x = (int64_t)widen(t, a, 0), y = (int64_t)widen(t, b, 0);
    return x < y ? -1 : x > y;
}

typedef struct pred {
    int kind; /* 0 cmp, 1 range, 2 in */
    fb_cmp op;
    const void *a, *b; /* cmp: a; range: a..b */
    const void *set;
    int64_t n_set;
} pred;

static int oracle_pred(const pred *p, fb_type t, const void *x)
{
    if (p->kind == 1)
        return oracle_cmp(t, x, p->a) >= 0 && oracle_cmp(t, x, p->b) <= 0;
    if (p->kind == 2) {
        for (int64_t s = 0; s < p->n_set; s++)
            if (oracle_cmp(t, x, (const char *)p->set + s * fb_type_width(t)) == 0)
                return 1;
        return 0;
    }
    int c = oracle_cmp(t, x, p->a);
    switch (p->op) {
    case FB_CMP_EQ: return c == 0;
    case FB_CMP_NE: return c != 0;
    case FB_CMP_LT: return c < 0;
    case FB_CMP_LE: return c <= 0;
    case FB_CMP_GT: return c > 0;
    default: return c >= 0;
    }
}

/* ---- data ---------------------------------------------------------------------------------------- */

static const fb_type all_types[] = {FB_TYPE_INT8,   FB_TYPE_INT16,  FB_TYPE_INT32,   FB_TYPE_INT64,
                                    FB_TYPE_UINT8,  FB_TYPE_UINT16, FB_TYPE_UINT32,  FB_TYPE_UINT64,
                                    FB_TYPE_FLOAT32, FB_TYPE_FLOAT64, FB_TYPE_DATE32};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

static void random_value(fb_type t, void *out) { fbt_random_value(&rng, t, out); }


static fbt_col make_col(fb_type t, int64_t n, int with_nulls)
{
    fbt_col b;
    size_t w = fb_type_width(t);
    int64_t off = (int64_t)(fbt_next(&rng) % 13);
    b.data = malloc((size_t)(n + off + 1) * w);
    for (int64_t i = 0; i < n + off; i++)
        random_value(t, (char *)b.data + i * w);
    b.valid = NULL;
    if (with_nulls)
        b.valid = fbt_random_validity(&rng, n + off);
    b.col = fb_column_make(t, b.data, n, b.valid);
    b.col.offset = off;
    return b;
}


/* ---- variants ------------------------------------------------------------------------------------ */

FBT_VARIANTS_FIXTURE

static const int64_t lengths[] = {0, 1, 7, 1023, (1 << 20) + 3};
#define N_LENGTHS (sizeof lengths / sizeof lengths[0])

/* ---- hashing --------------------------------------------------------------------------------------- */

static void test_hash(void **state)
{
    (void)state;
    for (size_t li = 0; li < N_LENGTHS; li++) {
        int64_t n = fbt_size(lengths[li]);
        uint64_t *expect = malloc((size_t)(n + 1) * 8), *got = malloc((size_t)(n + 1) * 8);
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            fb_type t = all_types[ti];
            if (t == FB_TYPE_FLOAT32 || t == FB_TYPE_FLOAT64)
                continue;
            for (int nulls = 0; nulls < 2; nulls++) {
                fbt_col a = make_col(t, n, nulls), b = make_col(FB_TYPE_INT64, n, !nulls);
                for (int64_t i = 0; i < n; i++)
                    expect[i] = oracle_hash(&a.col, i);
                for (int v = 0; v < n_variants; v++) {
                    memset(got, 0xAB, (size_t)(n + 1) * 8);
                    assert_fb_ok(variants[v], fb_hash_column(variants[v], &a.col, got, n));
                    for (int64_t i = 0; i < n; i++)
                        if (got[i] != expect[i])
                            fail_msg("hash %s variant %s n=%lld row %lld: %016llx, expected %016llx", fb_type_name(t),
                                     fb_isa_name(fb_ctx_isa(variants[v])), (long long)n, (long long)i,
                                     (unsigned long long)got[i], (unsigned long long)expect[i]);
                    assert_true(got[n] == 0xABABABABABABABABull); /* nothing past the end */
                }
                /* composite key: (a, b) */
                for (int64_t i = 0; i < n; i++)
                    expect[i] = expect[i] * FB_HASH_MUL ^ oracle_hash(&b.col, i);
                fb_column keys[2] = {a.col, b.col};
                for (int v = 0; v < n_variants; v++) {
                    assert_fb_ok(variants[v], fb_hash_columns(variants[v], keys, 2, got, n));
                    assert_memory_equal(got, expect, (size_t)n * 8);
                }
                fbt_col_free(&a);
                fbt_col_free(&b);
            }
        }
        free(expect);
        free(got);
    }
}

/* Equal values of different integer types hash alike (a documented property). */
static void test_hash_cross_type(void **state)
{
    (void)state;
    int32_t a[4] = {-5, 0, INT32_MIN, 77};
    int64_t b[4] = {-5, 0, INT32_MIN, 77};
    uint64_t ha[4], hb[4];
    fb_column ca = fb_column_make(FB_TYPE_INT32, a, 4, NULL), cb = fb_column_make(FB_TYPE_INT64, b, 4, NULL);
    for (int v = 0; v < n_variants; v++) {
        assert_fb_ok(variants[v], fb_hash_column(variants[v], &ca, ha, 4));
        assert_fb_ok(variants[v], fb_hash_column(variants[v], &cb, hb, 4));
        assert_memory_equal(ha, hb, sizeof ha);
    }
}

/* ---- selection ------------------------------------------------------------------------------------- */

static int64_t oracle_select(const pred *p, const fb_column *c, const uint32_t *sel_in, int64_t n_in, uint32_t *out)
{
    size_t w = fb_type_width(c->type);
    int64_t n = sel_in ? n_in : c->length, k = 0;
    for (int64_t j = 0; j < n; j++) {
        int64_t i = sel_in ? sel_in[j] : j;
        if (row_valid(c, i) && oracle_pred(p, c->type, (const char *)c->data + (c->offset + i) * w))
            out[k++] = (uint32_t)i;
    }
    return k;
}

static fb_status run_pred(fb_ctx *ctx, const pred *p, const fb_column *c, const uint32_t *sel_in, int64_t n_in,
                          uint32_t *out, int64_t cap, int64_t *n_out)
{
    if (p->kind == 1)
        return fb_select_range(ctx, c, p->a, p->b, sel_in, n_in, out, cap, n_out);
    if (p->kind == 2)
        return fb_select_in(ctx, c, p->set, p->n_set, sel_in, n_in, out, cap, n_out);
    return fb_select_cmp(ctx, c, p->op, p->a, sel_in, n_in, out, cap, n_out);
}

static void check_select(const pred *p, const fb_column *c, const uint32_t *sel_in, int64_t n_in, uint32_t *expect,
                         uint32_t *got)
{
    int64_t cand = sel_in ? n_in : c->length;
    int64_t ne = oracle_select(p, c, sel_in, n_in, expect);
    for (int v = 0; v < n_variants; v++) {
        int64_t ng = -1;
        got[cand] = 0xDEADBEEF;
        assert_fb_ok(variants[v], run_pred(variants[v], p, c, sel_in, n_in, got, cand, &ng));
        if (ng != ne || memcmp(got, expect, (size_t)ne * 4) != 0)
            fail_msg("select kind %d op %d type %s variant %s n=%lld sel_in=%d: %lld rows, expected %lld",
                     p->kind, (int)p->op, fb_type_name(c->type), fb_isa_name(fb_ctx_isa(variants[v])),
                     (long long)c->length, sel_in != NULL, (long long)ng, (long long)ne);
        assert_int_equal(got[cand], 0xDEADBEEF);
    }
}

static void test_select(void **state)
{
    (void)state;
    for (size_t li = 0; li < N_LENGTHS; li++) {
        int64_t n = fbt_size(lengths[li]);
        uint32_t *expect = malloc((size_t)(n + 1) * 4), *got = malloc((size_t)(n + 1) * 4);
        uint32_t *sel_in = malloc((size_t)(n + 1) * 4);
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            fb_type t = all_types[ti];
            size_t w = fb_type_width(t);
            fbt_col c = make_col(t, n, (int)(fbt_next(&rng) % 4 != 0));
            /* candidates: a random ascending subset, and with duplicates/unsorted order too */
            int64_t n_in = 0;
            for (int64_t i = 0; i < n; i++)
                if (fbt_next(&rng) % 3)
                    sel_in[n_in++] = (uint32_t)i;
            if (n_in > 2) {
                sel_in[1] = sel_in[n_in - 1];
                sel_in[0] = sel_in[1];
            }
            int trials = n > 100000 ? 2 : 4; /* the large size costs the most; small ones vary more */
            for (int trial = 0; trial < trials; trial++) {
                char a[8], b[8], set[8 * 12];
                /* constants from the data (so that = matches) or random specials */
                if (n > 0 && trial % 2 == 0)
                    memcpy(a, (char *)c.data + (c.col.offset + (int64_t)(fbt_next(&rng) % (uint64_t)n)) * w, w);
                else
                    random_value(t, a);
                random_value(t, b);
                if (oracle_cmp(t, a, b) > 0 && trial != 3) { /* trial 3 keeps an empty (lo > hi) range */
                    char tmp[8];
                    memcpy(tmp, a, w);
                    memcpy(a, b, w);
                    memcpy(b, tmp, w);
                }
                int64_t n_set = 1 + (int64_t)(fbt_next(&rng) % 12);
                for (int64_t s = 0; s < n_set; s++) {
                    if (n > 0 && s % 2)
                        memcpy(set + s * w, (char *)c.data + (c.col.offset + (int64_t)(fbt_next(&rng) % (uint64_t)n)) * w, w);
                    else
                        random_value(t, set + s * w);
                }
                for (int withsel = 0; withsel < 2; withsel++) {
                    const uint32_t *si = withsel ? sel_in : NULL;
                    for (int op = FB_CMP_EQ; op <= FB_CMP_GE; op++) {
                        pred p = {0, (fb_cmp)op, a, NULL, NULL, 0};
                        check_select(&p, &c.col, si, n_in, expect, got);
                    }
                    pred r = {1, FB_CMP_EQ, a, b, NULL, 0};
                    check_select(&r, &c.col, si, n_in, expect, got);
                    pred in = {2, FB_CMP_EQ, NULL, NULL, set, n_set};
                    check_select(&in, &c.col, si, n_in, expect, got);
                }
            }
            fbt_col_free(&c);
        }
        free(expect);
        free(got);
        free(sel_in);
    }
}

/* SQL float semantics spelled out on a fixed column. */
static void test_select_float_semantics(void **state)
{
    (void)state;
    float x[8] = {NAN, -0.0f, 0.0f, 1.0f, -INFINITY, INFINITY, -NAN, 2.0f};
    fb_column c = fb_column_make(FB_TYPE_FLOAT32, x, 8, NULL);
    uint32_t out[8];
    int64_t n;
    float zero = 0.0f, one = 1.0f, nan = NAN;
    for (int v = 0; v < n_variants; v++) {
        fb_ctx *ctx = variants[v];
        assert_fb_ok(ctx, fb_select_cmp(ctx, &c, FB_CMP_EQ, &zero, NULL, 0, out, 8, &n));
        assert_int_equal(n, 2); /* -0.0 and 0.0 */
        assert_fb_ok(ctx, fb_select_cmp(ctx, &c, FB_CMP_GT, &one, NULL, 0, out, 8, &n));
        assert_int_equal(n, 4); /* NaN, inf, -NaN, 2 */
        assert_fb_ok(ctx, fb_select_cmp(ctx, &c, FB_CMP_LT, &one, NULL, 0, out, 8, &n));
        assert_int_equal(n, 3); /* -0, 0, -inf */
        assert_fb_ok(ctx, fb_select_cmp(ctx, &c, FB_CMP_EQ, &nan, NULL, 0, out, 8, &n));
        assert_int_equal(n, 2);
        assert_int_equal(out[0], 0);
        assert_int_equal(out[1], 6);
        assert_fb_ok(ctx, fb_select_cmp(ctx, &c, FB_CMP_LE, &nan, NULL, 0, out, 8, &n));
        assert_int_equal(n, 8);
        assert_fb_ok(ctx, fb_select_cmp(ctx, &c, FB_CMP_NE, &nan, NULL, 0, out, 8, &n));
        assert_int_equal(n, 6);
    }
}

/* ---- compaction and gather ----------------------------------------------------------------------- */

static void check_move(const fb_column *c, const uint32_t *sel, const int64_t *ids, int64_t n)
{
    size_t w = fb_type_width(c->type);
    char *expect = malloc((size_t)(n + 1) * w), *got = malloc((size_t)(n + 1) * w);
    uint8_t *ev = calloc((size_t)(n / 8 + 2), 1), *gv = malloc((size_t)(n / 8 + 2));
    int64_t enull = 0;
    for (int64_t j = 0; j < n; j++) {
        int64_t r = sel ? (int64_t)sel[j] : ids[j];
        if (r < 0) {
            memset(expect + j * w, 0, w);
        } else {
            memcpy(expect + j * w, (const char *)c->data + (c->offset + r) * w, w);
        }
        int ok = r >= 0 && row_valid(c, r);
        ev[j / 8] |= (uint8_t)(ok << (j % 8));
        enull += !ok;
    }
    for (int v = 0; v < n_variants; v++) {
        fb_column_out out = {c->type, n, got, gv, -1, -1};
        memset(gv, 0xFF, (size_t)(n / 8 + 2));
        if (sel)
            assert_fb_ok(variants[v], fb_compact(variants[v], c, sel, n, &out));
        else
            assert_fb_ok(variants[v], fb_gather(variants[v], c, ids, n, &out));
        assert_int_equal(out.length, n);
        assert_int_equal(out.null_count, enull);
        if (memcmp(got, expect, (size_t)n * w) != 0)
            fail_msg("%s %s variant %s n=%lld: values differ", sel ? "compact" : "gather", fb_type_name(c->type),
                     fb_isa_name(fb_ctx_isa(variants[v])), (long long)n);
        assert_memory_equal(gv, ev, (size_t)(n + 7) / 8);
    }
    free(expect);
    free(got);
    free(ev);
    free(gv);
}

static void test_compact_gather(void **state)
{
    (void)state;
    for (size_t li = 0; li < N_LENGTHS; li++) {
        int64_t n = fbt_size(lengths[li]);
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            fbt_col c = make_col(all_types[ti], n, (int)(fbt_next(&rng) % 3 != 0));
            /* a selection (ascending subset), then arbitrary order with repeats */
            int64_t m = (int64_t)(n * 2 / 3) + 5;
            uint32_t *sel = malloc((size_t)m * 4);
            int64_t *ids = malloc((size_t)m * 8);
            int64_t k = 0;
            for (int64_t i = 0; i < n && k < m; i++)
                if (fbt_next(&rng) % 3)
                    sel[k++] = (uint32_t)i;
            check_move(&c.col, sel, NULL, k);
            if (n > 0) {
                for (int64_t j = 0; j < m; j++)
                    sel[j] = (uint32_t)(fbt_next(&rng) % (uint64_t)n);
                check_move(&c.col, sel, NULL, m);
            }
            for (int64_t j = 0; j < m; j++)
                ids[j] = n > 0 && fbt_next(&rng) % 4 ? (int64_t)(fbt_next(&rng) % (uint64_t)n) : -1;
            check_move(&c.col, NULL, ids, m);
            free(sel);
            free(ids);
            fbt_col_free(&c);
        }
    }
}

/* ---- bad input ------------------------------------------------------------------------------------- */

static void test_bad_input(void **state)
{
    (void)state;
    for (int v = 0; v < n_variants; v++) {
        fb_ctx *ctx = variants[v];
        int32_t d[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
        float f[4] = {0};
        uint8_t valid[3] = {0xFF, 0x0F, 0xFF};
        uint64_t h[20];
        uint32_t sel[20], bad_sel[20];
        int64_t n, ids[20];
        fb_column c = fb_column_make(FB_TYPE_INT32, d, 20, NULL);
        fb_column cf = fb_column_make(FB_TYPE_FLOAT32, f, 4, NULL);
        fb_column short_c = fb_column_make(FB_TYPE_INT32, d, 19, NULL);
        int32_t k = 3;

        /* hashing */
        assert_fb_status(NULL, fb_hash_column(NULL, &c, h, 20), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_column(ctx, NULL, h, 20), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_column(ctx, &c, NULL, 20), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_column(ctx, &c, h, 19), FB_ERR_CAPACITY);
        assert_fb_status(ctx, fb_hash_column(ctx, &cf, h, 20), FB_ERR_UNSUPPORTED_TYPE);
        assert_fb_status(ctx, fb_hash_combine(ctx, &cf, h, 20), FB_ERR_UNSUPPORTED_TYPE);
        fb_column pair[2] = {c, short_c};
        assert_fb_status(ctx, fb_hash_columns(ctx, pair, 2, h, 20), FB_ERR_LENGTH_MISMATCH);
        assert_fb_status(ctx, fb_hash_columns(ctx, pair, 0, h, 20), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_columns(ctx, NULL, 1, h, 20), FB_ERR_INVALID_ARG);
        fb_column badtype = c;
        badtype.type = (fb_type)77;
        assert_fb_status(ctx, fb_hash_column(ctx, &badtype, h, 20), FB_ERR_UNSUPPORTED_TYPE);
        fb_column nodata = c;
        nodata.data = NULL;
        assert_fb_status(ctx, fb_hash_column(ctx, &nodata, h, 20), FB_ERR_INVALID_ARG);

        /* selection */
        assert_fb_status(NULL, fb_select_cmp(NULL, &c, FB_CMP_EQ, &k, NULL, 0, sel, 20, &n), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_select_cmp(ctx, NULL, FB_CMP_EQ, &k, NULL, 0, sel, 20, &n), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_select_cmp(ctx, &c, FB_CMP_EQ, NULL, NULL, 0, sel, 20, &n), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_select_cmp(ctx, &c, (fb_cmp)9, &k, NULL, 0, sel, 20, &n), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_select_cmp(ctx, &c, FB_CMP_EQ, &k, NULL, 0, NULL, 20, &n), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_select_cmp(ctx, &c, FB_CMP_EQ, &k, NULL, 0, sel, 20, NULL), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_select_cmp(ctx, &c, FB_CMP_EQ, &k, NULL, 0, sel, 19, &n), FB_ERR_CAPACITY);
        assert_fb_status(ctx, fb_select_range(ctx, &c, &k, NULL, NULL, 0, sel, 20, &n), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_select_in(ctx, &c, d, 0, NULL, 0, sel, 20, &n), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_select_in(ctx, &c, d, FB_SELECT_IN_MAX + 1, NULL, 0, sel, 20, &n),
                         FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_select_in(ctx, &c, NULL, 3, NULL, 0, sel, 20, &n), FB_ERR_INVALID_ARG);
        for (int i = 0; i < 20; i++)
            bad_sel[i] = (uint32_t)i;
        bad_sel[17] = 20; /* one past the end, inside a vector block */
        assert_fb_status(ctx, fb_select_cmp(ctx, &c, FB_CMP_GE, &k, bad_sel, 20, sel, 20, &n), FB_ERR_OUT_OF_RANGE);
        bad_sel[17] = 0xFFFFFFFFu;
        assert_fb_status(ctx, fb_select_cmp(ctx, &c, FB_CMP_GE, &k, bad_sel, 20, sel, 20, &n), FB_ERR_OUT_OF_RANGE);
        assert_fb_status(ctx, fb_select_cmp(ctx, &c, FB_CMP_GE, &k, bad_sel, -1, sel, 20, &n), FB_ERR_INVALID_ARG);
        fb_column huge = c;
        huge.length = (int64_t)UINT32_MAX + 1; /* never read: rejected first */
        assert_fb_status(ctx, fb_select_cmp(ctx, &huge, FB_CMP_EQ, &k, NULL, 0, sel, INT64_MAX, &n),
                         FB_ERR_INVALID_ARG);

        /* compaction and gather */
        int32_t outd[20];
        uint8_t outv[3];
        fb_column_out out = {FB_TYPE_INT32, 20, outd, NULL, 7, 7};
        for (int i = 0; i < 20; i++)
            sel[i] = (uint32_t)(19 - i);
        assert_fb_status(NULL, fb_compact(NULL, &c, sel, 20, &out), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_compact(ctx, &c, NULL, 20, &out), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_compact(ctx, &c, sel, 20, NULL), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_compact(ctx, &c, sel, -2, &out), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_compact(ctx, &c, bad_sel, 20, &out), FB_ERR_OUT_OF_RANGE);
        assert_int_equal(out.length, 0);
        out.capacity = 19;
        assert_fb_status(ctx, fb_compact(ctx, &c, sel, 20, &out), FB_ERR_CAPACITY);
        out.capacity = 20;
        out.type = FB_TYPE_UINT32;
        assert_fb_status(ctx, fb_compact(ctx, &c, sel, 20, &out), FB_ERR_UNSUPPORTED_TYPE);
        out.type = FB_TYPE_INT32;
        fb_column cv = fb_column_make(FB_TYPE_INT32, d, 20, valid);
        assert_fb_status(ctx, fb_compact(ctx, &cv, sel, 20, &out), FB_ERR_INVALID_ARG); /* needs validity */
        out.validity = outv;
        assert_fb_ok(ctx, fb_compact(ctx, &cv, sel, 20, &out));
        assert_int_equal(out.length, 20);
        assert_int_equal(out.null_count, 4);
        assert_int_equal(outd[0], 20);
        out.validity = NULL;
        for (int i = 0; i < 20; i++)
            ids[i] = i;
        ids[5] = -1;
        assert_fb_status(ctx, fb_gather(ctx, &c, ids, 20, &out), FB_ERR_INVALID_ARG); /* -1 needs validity */
        ids[5] = -2;
        out.validity = outv;
        assert_fb_status(ctx, fb_gather(ctx, &c, ids, 20, &out), FB_ERR_OUT_OF_RANGE);
        ids[5] = 20;
        assert_fb_status(ctx, fb_gather(ctx, &c, ids, 20, &out), FB_ERR_OUT_OF_RANGE);
        ids[5] = INT64_MAX;
        assert_fb_status(ctx, fb_gather(ctx, &c, ids, 20, &out), FB_ERR_OUT_OF_RANGE);
        assert_int_equal(out.length, 0);
        ids[5] = -1;
        assert_fb_ok(ctx, fb_gather(ctx, &c, ids, 20, &out));
        assert_int_equal(out.null_count, 1);
        assert_int_equal(outd[5], 0);
        /* gather from an empty column: only -1 ids are valid */
        fb_column empty = fb_column_make(FB_TYPE_INT32, NULL, 0, NULL);
        for (int i = 0; i < 20; i++)
            ids[i] = -1;
        assert_fb_ok(ctx, fb_gather(ctx, &empty, ids, 20, &out));
        assert_int_equal(out.null_count, 20);
        ids[3] = 0;
        assert_fb_status(ctx, fb_gather(ctx, &empty, ids, 20, &out), FB_ERR_OUT_OF_RANGE);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_hash_cross_type),
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_select_float_semantics),
        cmocka_unit_test(test_compact_gather),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup_variants, teardown_variants);
}
