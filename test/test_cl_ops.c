/* test_cl_ops.c - the OpenCL twins of the CPU operators (fb_cl.h: sort, ...) against the CPU
 * functions (fb_sort.h, ...) and against independent checks written here: a sort result must be a
 * permutation whose neighbours are in SQL order (nulls first/last, -0.0 = 0.0, NaN largest) with
 * equal keys in input order, which fixes it uniquely. Random data with duplicates, extremes, NaN
 * payloads, nulls at nonzero offsets, all-equal keys; bad input; the device memory budget. It
 * fails (does not skip) without an OpenCL device. Sizes stay small: PoCL runs on the CPU. */
#include "fb_test.h"

#include <time.h>

#include "fb/fb_cl.h"
#include "fb_cl_internal.h"

/* Chunks the last OpenCL operator call of ctx split its input into. */
static int ctx_cl_chunks(fb_ctx *ctx) { return ctx->cl ? ctx->cl->last_chunks : -1; }

static uint64_t rng;

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const fb_type all_types[] = {FB_TYPE_INT8,   FB_TYPE_INT16,  FB_TYPE_INT32,   FB_TYPE_INT64,
                                    FB_TYPE_UINT8,  FB_TYPE_UINT16, FB_TYPE_UINT32,  FB_TYPE_UINT64,
                                    FB_TYPE_FLOAT32, FB_TYPE_FLOAT64, FB_TYPE_DATE32};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* A random column of `rows` rows starting at row `offset` of its buffers; nulls when with_nulls. */
static fbt_col rand_col(fb_type t, int64_t rows, int64_t offset, int with_nulls)
{
    fbt_col c;
    memset(&c, 0, sizeof c);
    size_t w = fb_type_width(t);
    c.data = xmalloc((size_t)(rows + offset) * w);
    for (int64_t i = 0; i < rows + offset; i++)
        fbt_random_value(&rng, t, (char *)c.data + (size_t)i * w);
    if (with_nulls) {
        c.valid = fbt_random_validity(&rng, rows + offset);
        assert_non_null(c.valid);
    }
    c.col.type = t;
    c.col.data = c.data;
    c.col.validity = c.valid;
    c.col.length = rows;
    c.col.offset = offset;
    return c;
}

/* ---- an independent order: SQL order of one key, written from the definition ------------------------ */

static int valid_at(const fb_column *c, int64_t i)
{
    int64_t b = c->offset + i;
    return !c->validity || ((c->validity[b >> 3] >> (b & 7)) & 1);
}

/* -1, 0, 1: value a vs value b of column c (both valid), ascending SQL order. */
static int cmp_values(const fb_column *c, int64_t a, int64_t b)
{
    const char *p = (const char *)c->data;
    int64_t ia = c->offset + a, ib = c->offset + b;
#define CMP(T)                                                                                                       \
    do {                                                                                                             \
        T x = ((const T *)p)[ia], y = ((const T *)p)[ib];                                                           \
        return (x > y) - (x < y);                                                                                    \
    } while (0)
#define CMPF(T)                                                                                                      \
    do {                                                                                                             \
        T x = ((const T *)p)[ia], y = ((const T *)p)[ib];                                                           \
        int nx = isnan(x), ny = isnan(y);                                                                            \
        if (nx || ny)                                                                                                \
            return nx - ny;                                                                                          \
        return (x > y) - (x < y); /* -0.0 == 0.0 */                                                                  \
    } while (0)
    switch (c->type) {
    case FB_TYPE_INT8: CMP(int8_t);
    case FB_TYPE_INT16: CMP(int16_t);
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: CMP(int32_t);
    case FB_TYPE_INT64: CMP(int64_t);
    case FB_TYPE_UINT8: CMP(uint8_t);
    case FB_TYPE_UINT16: CMP(uint16_t);
    case FB_TYPE_UINT32: CMP(uint32_t);
    case FB_TYPE_UINT64: CMP(uint64_t);
    case FB_TYPE_FLOAT32: CMPF(float);
    case FB_TYPE_FLOAT64: CMPF(double);
    default: fail_msg("type %d", (int)c->type);
    }
#undef CMP
#undef CMPF
    return 0;
}

static int cmp_rows(const fb_sort_key *keys, size_t n_keys, int64_t a, int64_t b)
{
    for (size_t k = 0; k < n_keys; k++) {
        const fb_column *c = &keys[k].column;
        int va = valid_at(c, a), vb = valid_at(c, b);
        int r;
        if (!va || !vb) {
            if (va == vb)
                continue;
            r = va ? 1 : -1; /* null first */
            if (!keys[k].nulls_first)
                r = -r;
            return r;
        }
        r = cmp_values(c, a, b);
        if (keys[k].descending)
            r = -r;
        if (r)
            return r;
    }
    return 0;
}

/* perm[0..m) is the first m entries of the stable sort of n rows (m == n: all of them). */
static void check_sorted(const fb_sort_key *keys, size_t n_keys, int64_t n, const uint32_t *perm, int64_t m)
{
    uint8_t *seen = calloc((size_t)n + 1, 1);
    assert_non_null(seen);
    for (int64_t j = 0; j < m; j++) {
        if (perm[j] >= n || seen[perm[j]])
            fail_msg("entry %lld: row %u out of range or repeated", (long long)j, perm[j]);
        seen[perm[j]] = 1;
        if (j > 0) {
            int r = cmp_rows(keys, n_keys, perm[j - 1], perm[j]);
            if (r > 0 || (r == 0 && perm[j - 1] > perm[j]))
                fail_msg("entries %lld, %lld (rows %u, %u) out of order (cmp %d)", (long long)j - 1, (long long)j,
                         perm[j - 1], perm[j], r);
        }
    }
    if (m < n && m > 0) /* nothing left out sorts before the last one taken */
        for (int64_t i = 0; i < n; i++) {
            if (seen[i])
                continue;
            int r = cmp_rows(keys, n_keys, i, perm[m - 1]);
            if (r < 0 || (r == 0 && (uint32_t)i < perm[m - 1]))
                fail_msg("row %lld belongs in the top %lld", (long long)i, (long long)m);
        }
    free(seen);
}

/* ---- sort --------------------------------------------------------------------------------------------- */

/* The OpenCL permutation equals the CPU's and passes the independent check. */
static void sort_case(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t n)
{
    uint32_t *cpu = xmalloc((size_t)n * sizeof *cpu), *dev = xmalloc((size_t)n * sizeof *dev);
    assert_fb_ok(ctx, fb_sort_permutation(ctx, keys, n_keys, cpu, n));
    memset(dev, 0xAB, (size_t)n * sizeof *dev);
    assert_fb_ok(ctx, fb_cl_sort_permutation(ctx, keys, n_keys, dev, n));
    check_sorted(keys, n_keys, n, dev, n);
    for (int64_t i = 0; i < n; i++)
        if (cpu[i] != dev[i])
            fail_msg("type %d, %lld rows: entry %lld: cpu %u, opencl %u", (int)keys[0].column.type, (long long)n,
                     (long long)i, cpu[i], dev[i]);
    free(cpu);
    free(dev);
}

static void test_sort_one_key(void **state)
{
    fb_ctx *ctx = *state;
    static const int64_t lengths[] = {0, 1, 7, 1023, 4099, 100003};
    for (size_t t = 0; t < N_TYPES; t++)
        for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++)
            for (int variant = 0; variant < 4; variant++) {
                int64_t n = lengths[l];
                fbt_col c = rand_col(all_types[t], n, variant & 1 ? 13 : 0, variant >= 2);
                fb_sort_key k = {c.col, variant == 1 || variant == 2, variant >= 2 && (variant & 1)};
                sort_case(ctx, &k, 1, n);
                fbt_col_free(&c);
            }
}

static void test_sort_multi_key(void **state)
{
    fb_ctx *ctx = *state;
    int64_t n = 50007;
    fbt_col a = rand_col(FB_TYPE_INT8, n, 3, 1), b = rand_col(FB_TYPE_FLOAT64, n, 0, 1),
            c = rand_col(FB_TYPE_UINT32, n, 5, 0);
    for (int i = 0; i < 4; i++) {
        fb_sort_key keys[3] = {{a.col, i & 1, i & 2}, {b.col, !(i & 1), !(i & 2)}, {c.col, i == 3, 0}};
        sort_case(ctx, keys, 3, n);
    }
    fbt_col_free(&a);
    fbt_col_free(&b);
    fbt_col_free(&c);
}

/* Every row equal (every digit skipped), two values only, sorted and reverse-sorted input. */
static void test_sort_shapes(void **state)
{
    fb_ctx *ctx = *state;
    int64_t n = 70001;
    int64_t *v = xmalloc((size_t)n * sizeof *v);
    for (int shape = 0; shape < 4; shape++) {
        for (int64_t i = 0; i < n; i++)
            v[i] = shape == 0 ? 42 : shape == 1 ? (int64_t)(fbt_next(&rng) & 1) * INT64_MIN
                                     : shape == 2 ? i - n / 2
                                                  : (n - i) * 1000003;
        fb_sort_key k = {{FB_TYPE_INT64, n, 0, v, NULL}, shape == 3, 0};
        sort_case(ctx, &k, 1, n);
    }
    free(v);
}

static void test_sort_top_n(void **state)
{
    fb_ctx *ctx = *state;
    int64_t n = 30011;
    fbt_col c = rand_col(FB_TYPE_FLOAT32, n, 1, 1);
    fb_sort_key k = {c.col, 1, 1};
    static const int64_t wants[] = {0, 1, 10, 3000, 30011, 40000};
    uint32_t *cpu = xmalloc((size_t)n * sizeof *cpu), *dev = xmalloc((size_t)n * sizeof *dev);
    for (size_t w = 0; w < sizeof wants / sizeof wants[0]; w++) {
        int64_t m_cpu = -1, m_dev = -1;
        assert_fb_ok(ctx, fb_sort_top_n(ctx, &k, 1, wants[w], cpu, n, &m_cpu));
        assert_fb_ok(ctx, fb_cl_sort_top_n(ctx, &k, 1, wants[w], dev, n, &m_dev));
        assert_int_equal(m_cpu, m_dev);
        check_sorted(&k, 1, n, dev, m_dev);
        if (m_dev > 0)
            assert_memory_equal(cpu, dev, (size_t)m_dev * sizeof *dev);
    }
    int64_t m;
    assert_fb_status(ctx, fb_cl_sort_top_n(ctx, &k, 1, -1, dev, n, &m), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_cl_sort_top_n(ctx, &k, 1, 10, dev, 9, &m), FB_ERR_CAPACITY);
    free(cpu);
    free(dev);
    fbt_col_free(&c);
}

static void test_sort_table(void **state)
{
    fb_ctx *ctx = *state;
    int64_t n = 20001;
    fbt_col k0 = rand_col(FB_TYPE_INT16, n, 0, 1), p0 = rand_col(FB_TYPE_UINT64, n, 9, 1),
            p1 = rand_col(FB_TYPE_FLOAT32, n, 0, 0);
    fb_sort_key k = {k0.col, 0, 1};
    fb_column payload[2] = {p0.col, p1.col};
    fb_type types[3] = {FB_TYPE_INT16, FB_TYPE_UINT64, FB_TYPE_FLOAT32};
    int nulls[3] = {1, 1, 0};
    fb_column_out cpu[3], dev[3];
    for (int i = 0; i < 3; i++) {
        size_t bytes = (size_t)n * fb_type_width(types[i]);
        cpu[i] = (fb_column_out){types[i], n, xmalloc(bytes), nulls[i] ? xmalloc((size_t)n / 8 + 1) : NULL, 0, 0};
        dev[i] = (fb_column_out){types[i], n, xmalloc(bytes), nulls[i] ? xmalloc((size_t)n / 8 + 1) : NULL, 0, 0};
    }
    assert_fb_ok(ctx, fb_sort_table(ctx, &k, 1, payload, 2, cpu));
    assert_fb_ok(ctx, fb_cl_sort_table(ctx, &k, 1, payload, 2, dev));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cpu[i].length, n);
        assert_int_equal(dev[i].length, n);
        assert_int_equal(cpu[i].null_count, dev[i].null_count);
        assert_memory_equal(cpu[i].data, dev[i].data, (size_t)n * fb_type_width(types[i]));
        if (nulls[i]) {
            /* bits past row n are unspecified */
            assert_memory_equal(cpu[i].validity, dev[i].validity, (size_t)n / 8);
            uint8_t m = (uint8_t)((1u << (n & 7)) - 1);
            assert_int_equal(cpu[i].validity[n / 8] & m, dev[i].validity[n / 8] & m);
        }
    }
    /* a bad out resets every out */
    dev[2].type = FB_TYPE_INT32;
    assert_fb_status(ctx, fb_cl_sort_table(ctx, &k, 1, payload, 2, dev), FB_ERR_UNSUPPORTED_TYPE);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(dev[i].length, 0);
        free(cpu[i].data);
        free(cpu[i].validity);
        free(dev[i].data);
        free(dev[i].validity);
    }
    fbt_col_free(&k0);
    fbt_col_free(&p0);
    fbt_col_free(&p1);
}

static void test_sort_bad_args(void **state)
{
    fb_ctx *ctx = *state;
    int32_t v[4] = {3, 1, 2, 0}, w[3] = {0, 0, 0};
    uint32_t out[4];
    fb_sort_key k = {{FB_TYPE_INT32, 4, 0, v, NULL}, 0, 0};
    fb_sort_key two[2] = {k, {{FB_TYPE_INT32, 3, 0, w, NULL}, 0, 0}};
    assert_fb_status(ctx, fb_cl_sort_permutation(ctx, NULL, 1, out, 4), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_cl_sort_permutation(ctx, &k, 0, out, 4), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_cl_sort_permutation(ctx, &k, 1, NULL, 4), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_cl_sort_permutation(ctx, &k, 1, out, 3), FB_ERR_CAPACITY);
    assert_fb_status(ctx, fb_cl_sort_permutation(ctx, two, 2, out, 4), FB_ERR_LENGTH_MISMATCH);
    k.column.type = (fb_type)99;
    assert_fb_status(ctx, fb_cl_sort_permutation(ctx, &k, 1, out, 4), FB_ERR_UNSUPPORTED_TYPE);
    assert_int_equal(fb_cl_sort_permutation(NULL, &k, 1, out, 4), FB_ERR_INVALID_ARG);
}

/* A sort larger than the device memory budget runs in device-sorted chunks merged on the host, with
 * the same result (permutation, top-N, table); a budget too small for any chunk fails with
 * FB_ERR_DEVICE_MEMORY and frees what it took. */
static void test_sort_budget(void **state)
{
    fb_ctx *ctx = *state;
    int64_t n = 100003;
    fbt_col c = rand_col(FB_TYPE_INT64, n, 5, 1), c2 = rand_col(FB_TYPE_FLOAT32, n, 0, 0);
    fb_sort_key k[2] = {{c.col, 1, 0}, {c2.col, 0, 1}};
    uint32_t *out = xmalloc((size_t)n * sizeof *out), *top = xmalloc(1000 * sizeof *top);
    setenv("FB_CL_MEM_BUDGET", "3M", 1); /* ~22 bytes per row: chunks of 65536 rows */
    sort_case(ctx, k, 2, n);
    int chunks = ctx_cl_chunks(ctx);
    int64_t m = 0;
    fb_status st = fb_cl_sort_top_n(ctx, k, 2, 1000, top, 1000, &m);
    fb_column_out o[2] = {{FB_TYPE_INT64, n, xmalloc((size_t)n * 8), xmalloc((size_t)n / 8 + 1), 0, 0},
                          {FB_TYPE_FLOAT32, n, xmalloc((size_t)n * 4), NULL, 0, 0}};
    fb_status st_table = fb_cl_sort_table(ctx, k, 2, NULL, 0, o);
    setenv("FB_CL_MEM_BUDGET", "16k", 1);
    fb_status st_small = fb_cl_sort_permutation(ctx, k, 2, out, n);
    unsetenv("FB_CL_MEM_BUDGET");
    fprintf(stderr, "[ budget   ] sort: 100003 rows in %d chunks\n", chunks);
    assert_true(chunks > 1);
    assert_fb_ok(ctx, st);
    assert_int_equal(m, 1000);
    assert_fb_ok(ctx, fb_sort_permutation(ctx, k, 2, out, n));
    assert_memory_equal(out, top, 1000 * sizeof *top);
    assert_fb_ok(ctx, st_table);
    assert_int_equal(o[0].length, n);
    for (int64_t i = 0; i < n; i++) {
        if (((int64_t *)o[0].data)[i] != ((int64_t *)c.data)[5 + out[i]] && fb_column_is_valid(&c.col, out[i]))
            fail_msg("table row %lld", (long long)i);
        if (memcmp((float *)o[1].data + i, (float *)c2.data + out[i], 4))
            fail_msg("table payload row %lld", (long long)i);
    }
    assert_fb_status(ctx, st_small, FB_ERR_DEVICE_MEMORY);
    assert_non_null(strstr(fb_last_error(ctx), "budget"));
    for (int i = 0; i < 2; i++) {
        free(o[i].data);
        free(o[i].validity);
    }
    free(out);
    free(top);
    fbt_col_free(&c);
    fbt_col_free(&c2);
}

/* Times one 1M-row int32 sort on the device and on the CPU (printed, never asserted). */
static void test_sort_timing(void **state)
{
    fb_ctx *ctx = *state;
    int64_t n = 1 << 20;
    fbt_col c = rand_col(FB_TYPE_UINT32, n, 0, 0);
    for (int64_t i = 0; i < n; i++)
        ((uint32_t *)c.data)[i] = (uint32_t)fbt_next(&rng);
    fb_sort_key k = {c.col, 0, 0};
    uint32_t *a = xmalloc((size_t)n * sizeof *a), *b = xmalloc((size_t)n * sizeof *b);
    double t0 = now_s();
    assert_fb_ok(ctx, fb_sort_permutation(ctx, &k, 1, a, n));
    double t1 = now_s();
    assert_fb_ok(ctx, fb_cl_sort_permutation(ctx, &k, 1, b, n));
    double t2 = now_s();
    assert_memory_equal(a, b, (size_t)n * sizeof *a);
    fprintf(stderr, "[ timing   ] sort permutation, 1Mi random uint32: cpu %.1f ms, opencl %.1f ms\n",
            1e3 * (t1 - t0), 1e3 * (t2 - t1));
    free(a);
    free(b);
    fbt_col_free(&c);
}

/* ---- grouped aggregation ---------------------------------------------------------------------------- */

typedef struct agg_out {
    fb_column_out keys[FB_AGG_MAX_KEYS];
    fb_column_out aggs[FB_AGG_MAX_AGGS];
} agg_out;

static void agg_out_make(agg_out *o, const fb_agg_spec *spec, int64_t cap)
{
    memset(o, 0, sizeof *o);
    for (size_t k = 0; k < FB_AGG_MAX_KEYS; k++)
        o->keys[k] = (fb_column_out){k < spec->n_keys ? spec->key_types[k] : FB_TYPE_INT64, cap,
                                     xmalloc((size_t)cap * 8), xmalloc((size_t)cap / 8 + 1), 0, 0};
    for (size_t a = 0; a < spec->n_aggs; a++) {
        fb_type rt;
        assert_int_equal(fb_agg_result_type(spec->aggs[a].kind,
                                            spec->aggs[a].kind == FB_AGG_COUNT_STAR ? FB_TYPE_INT64 : spec->aggs[a].type,
                                            &rt),
                         FB_OK);
        o->aggs[a] = (fb_column_out){rt, cap, xmalloc((size_t)cap * 8), xmalloc((size_t)cap / 8 + 1), 0, 0};
    }
}

static void agg_out_free(agg_out *o, size_t n_aggs)
{
    for (size_t k = 0; k < FB_AGG_MAX_KEYS; k++) {
        free(o->keys[k].data);
        free(o->keys[k].validity);
    }
    for (size_t a = 0; a < n_aggs; a++) {
        free(o->aggs[a].data);
        free(o->aggs[a].validity);
    }
}

static int bit_at(const uint8_t *v, int64_t i) { return (v[i >> 3] >> (i & 7)) & 1; }

/* Runs the CPU table and fb_cl_group_by on the same input and compares: same status; keys, counts,
 * integer results and float min/max bitwise; float sums and averages within the bound of recursive
 * summation, count x 2^-52 x sum |x| of the group (abs_sums: per-group sums of |x| in CPU group order,
 * one array per aggregate or NULL where the aggregate is not a float sum). Returns the group count. */
static int64_t agg_case(fb_ctx *ctx, const fb_agg_spec *spec, const fb_column *key, const fb_column *values,
                        size_t n_values, int64_t n, double *const *abs_sums)
{
    fb_agg_table *t = NULL;
    agg_out cpu, dev;
    agg_out_make(&cpu, spec, n + 1);
    agg_out_make(&dev, spec, n + 1);
    assert_fb_ok(ctx, fb_agg_create(ctx, spec, &t));
    assert_fb_ok(ctx, fb_agg_update(t, key, values, n_values, n, NULL, 0));
    int has_key = spec->n_keys > 0;
    fb_status cst = fb_agg_result(t, has_key ? cpu.keys : NULL, cpu.aggs);
    int64_t G = -1;
    fb_status dst = fb_cl_group_by(ctx, spec, key, values, n_values, n, has_key ? dev.keys : NULL, dev.aggs, &G);
    if (cst != dst)
        fail_msg("cpu %s, opencl %s (%s)", fb_status_name(cst), fb_status_name(dst), fb_last_error(ctx));
    if (cst == FB_OK) {
        int64_t cg = 0;
        assert_fb_ok(ctx, fb_agg_group_count(t, &cg));
        assert_int_equal(cg, G);
        assert_int_equal(dev.keys[0].length, has_key ? G : 0);
        for (size_t k = 0; k < spec->n_keys; k++) {
            assert_int_equal(dev.keys[k].length, G);
            assert_int_equal(cpu.keys[k].null_count, dev.keys[k].null_count);
            size_t kw = fb_type_width(dev.keys[k].type);
            for (int64_t g = 0; g < G; g++) {
                int cv = bit_at(cpu.keys[k].validity, g), dv = bit_at(dev.keys[k].validity, g);
                assert_int_equal(cv, dv);
                if (cv && memcmp((char *)cpu.keys[k].data + g * kw, (char *)dev.keys[k].data + g * kw, kw))
                    fail_msg("group %lld: key %zu differs", (long long)g, k);
            }
        }
        for (size_t a = 0; a < spec->n_aggs; a++) {
            fb_column_out *c = &cpu.aggs[a], *d = &dev.aggs[a];
            assert_int_equal(d->length, G);
            assert_int_equal(c->null_count, d->null_count);
            size_t w = fb_type_width(c->type);
            int float_sum = abs_sums && abs_sums[a];
            for (int64_t g = 0; g < G; g++) {
                int cv = bit_at(c->validity, g), dv = bit_at(d->validity, g);
                if (cv != dv)
                    fail_msg("aggregate %zu group %lld: validity %d vs %d", a, (long long)g, cv, dv);
                if (!cv)
                    continue;
                if (float_sum) {
                    double x = ((double *)c->data)[g], y = ((double *)d->data)[g];
                    int64_t cnt = ((int64_t *)cpu.aggs[0].data)[g]; /* aggregate 0 is count(*) */
                    double tol = (double)cnt * 0x1p-52 * abs_sums[a][g];
                    if (spec->aggs[a].kind == FB_AGG_AVG)
                        tol /= (double)cnt;
                    if (!(isnan(x) && isnan(y)) && !(fabs(x - y) <= tol))
                        fail_msg("aggregate %zu group %lld: cpu %.17g opencl %.17g (tolerance %g)", a, (long long)g,
                                 x, y, tol);
                } else if (memcmp((char *)c->data + g * w, (char *)d->data + g * w, w)) {
                    fail_msg("aggregate %zu (kind %d of type %d) group %lld differs", a, (int)spec->aggs[a].kind,
                             (int)spec->aggs[a].type, (long long)g);
                }
            }
        }
    } else {
        assert_int_equal(dev.keys[0].length, 0);
    }
    fb_agg_destroy(t);
    agg_out_free(&cpu, spec->n_aggs);
    agg_out_free(&dev, spec->n_aggs);
    return cst == FB_OK ? G : -1;
}

/* Per-group sums of |x| of a float64 column (grouped by spec's keys), in the CPU's group order. */
static double *abs_sums_of(fb_ctx *ctx, const fb_agg_spec *spec, const fb_column *key, const fbt_col *v, int64_t n)
{
    int64_t all = n + v->col.offset;
    double *a = xmalloc((size_t)all * sizeof *a);
    for (int64_t i = 0; i < all; i++)
        a[i] = fabs(((double *)v->data)[i]);
    fb_column col = {FB_TYPE_FLOAT64, n, v->col.offset, a, v->col.validity};
    fb_agg_desc d = {FB_AGG_SUM, 0, FB_TYPE_FLOAT64};
    fb_agg_spec s = {spec->n_keys, spec->key_types, 1, &d, FB_AGG_STRATEGY_AUTO};
    fb_agg_table *t = NULL;
    assert_fb_ok(ctx, fb_agg_create(ctx, &s, &t));
    assert_fb_ok(ctx, fb_agg_update(t, key, &col, 1, n, NULL, 0));
    int64_t G;
    assert_fb_ok(ctx, fb_agg_group_count(t, &G));
    double *out = xmalloc((size_t)(G + 1) * sizeof *out);
    fb_column_out ko[FB_AGG_MAX_KEYS];
    for (size_t k = 0; k < spec->n_keys; k++)
        ko[k] = (fb_column_out){spec->key_types[k], G + 1, xmalloc((size_t)(G + 1) * 8), xmalloc((size_t)G / 8 + 1),
                                0, 0};
    fb_column_out so = {FB_TYPE_FLOAT64, G + 1, out, xmalloc((size_t)G / 8 + 1), 0, 0};
    assert_fb_ok(ctx, fb_agg_result(t, ko, &so));
    for (int64_t g = 0; g < G; g++)
        if (!bit_at(so.validity, g))
            out[g] = 0.0;
    for (size_t k = 0; k < spec->n_keys; k++) {
        free(ko[k].data);
        free(ko[k].validity);
    }
    free(so.validity);
    fb_agg_destroy(t);
    free(a);
    return out;
}

/* Keys of a given cardinality: values from a pool of `distinct` (random bits when 0), ~1/8 null;
 * with skew, a quarter of the rows share one value. */
static fbt_col key_col_skew(fb_type t, int64_t n, int64_t distinct, int with_nulls, int skew)
{
    fbt_col c = rand_col(t, n, 3, with_nulls);
    size_t w = fb_type_width(t);
    if (distinct > 0)
        for (int64_t i = 0; i < n + 3; i++) {
            uint64_t v = fbt_next(&rng) % (uint64_t)distinct;
            if (skew && fbt_next(&rng) % 4 == 0)
                v = 0;
            v -= (uint64_t)distinct / 2; /* negatives */
            memcpy((char *)c.data + (size_t)i * w, &v, w);
        }
    return c;
}

static fbt_col key_col(fb_type t, int64_t n, int64_t distinct, int with_nulls)
{
    return key_col_skew(t, n, distinct, with_nulls, 1);
}

/* Benign float64 values (reassociation stays within the bound) with a few NaN. */
static fbt_col float_values(int64_t n)
{
    fbt_col c = rand_col(FB_TYPE_FLOAT64, n, 3, 1);
    for (int64_t i = 0; i < n + 3; i++) {
        uint64_t r = fbt_next(&rng);
        ((double *)c.data)[i] = r % 5000 == 0 ? NAN : (double)((int64_t)(r % 200001) - 100000) / 100.0;
    }
    return c;
}

/* Every aggregate over the six value columns of suite_values(): count(*), count, sum, min, max, avg of
 * int32 (nulls), int64 (large, nulls), float32, float64 (NaN), uint16 (no nulls), uint64 (nulls).
 * Aggregates 11 and 12 are the float64 sum and average. */
static const fb_agg_desc suite_aggs[] = {
    {FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_COUNT, 0, FB_TYPE_INT32}, {FB_AGG_SUM, 0, FB_TYPE_INT32},
    {FB_AGG_MIN, 0, FB_TYPE_INT32},          {FB_AGG_MAX, 0, FB_TYPE_INT32},   {FB_AGG_AVG, 0, FB_TYPE_INT32},
    {FB_AGG_SUM, 1, FB_TYPE_INT64},          {FB_AGG_MIN, 1, FB_TYPE_INT64},   {FB_AGG_AVG, 1, FB_TYPE_INT64},
    {FB_AGG_MIN, 2, FB_TYPE_FLOAT32},        {FB_AGG_MAX, 2, FB_TYPE_FLOAT32}, {FB_AGG_SUM, 3, FB_TYPE_FLOAT64},
    {FB_AGG_AVG, 3, FB_TYPE_FLOAT64},        {FB_AGG_MAX, 3, FB_TYPE_FLOAT64}, {FB_AGG_SUM, 4, FB_TYPE_UINT16},
    {FB_AGG_MAX, 5, FB_TYPE_UINT64},         {FB_AGG_MIN, 5, FB_TYPE_UINT64}};

static void suite_values(fbt_col v[6], int64_t n)
{
    v[0] = rand_col(FB_TYPE_INT32, n, 3, 1);
    v[1] = key_col(FB_TYPE_INT64, n, 1000000007, 1);
    v[2] = rand_col(FB_TYPE_FLOAT32, n, 3, 1);
    v[3] = float_values(n);
    v[4] = rand_col(FB_TYPE_UINT16, n, 3, 0);
    v[5] = rand_col(FB_TYPE_UINT64, n, 3, 1);
}

static void agg_suite(fb_ctx *ctx, fb_type kt, int64_t n, int64_t distinct)
{
    fbt_col k = key_col(kt, n, distinct, 1);
    fbt_col v[6];
    suite_values(v, n);
    fb_column vals[6];
    for (int i = 0; i < 6; i++)
        vals[i] = v[i].col;
    const fb_agg_desc *d = suite_aggs;
    size_t n_aggs = sizeof suite_aggs / sizeof suite_aggs[0];
    fb_agg_spec spec = {1, &kt, n_aggs, d, FB_AGG_STRATEGY_AUTO};
    double *fs = abs_sums_of(ctx, &spec, &k.col, &v[3], n);
    double *abs_sums[FB_AGG_MAX_AGGS] = {0};
    abs_sums[11] = abs_sums[12] = fs;
    int64_t G = agg_case(ctx, &spec, &k.col, vals, 6, n, abs_sums);
    fprintf(stderr, "[ groups   ] key %s, %lld rows: %lld groups\n", fb_type_name(kt), (long long)n, (long long)G);
    /* sums of random uint64: overflow on both sides */
    const fb_agg_desc o[] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 5, FB_TYPE_UINT64}};
    fb_agg_spec ospec = {1, &kt, 2, o, FB_AGG_STRATEGY_AUTO};
    agg_case(ctx, &ospec, &k.col, vals, 6, n, NULL);
    /* ungrouped: every aggregate but the float sums (one group of all rows) */
    fb_agg_desc u[sizeof suite_aggs / sizeof suite_aggs[0]];
    size_t n_u = 0;
    for (size_t a = 0; a < n_aggs; a++)
        if (!(d[a].type == FB_TYPE_FLOAT64 && d[a].kind != FB_AGG_MAX))
            u[n_u++] = d[a];
    fb_agg_spec uspec = {0, NULL, n_u, u, FB_AGG_STRATEGY_AUTO};
    assert_int_equal(agg_case(ctx, &uspec, NULL, vals, 6, n, NULL), 1);
    fb_agg_spec count_only = {0, NULL, 1, d, FB_AGG_STRATEGY_AUTO};
    assert_int_equal(agg_case(ctx, &count_only, NULL, vals, 6, n, NULL), 1);
    free(fs);
    fbt_col_free(&k);
    for (int i = 0; i < 6; i++)
        fbt_col_free(&v[i]);
}

static void test_group_low_cardinality(void **state)
{
    agg_suite(*state, FB_TYPE_INT32, 200003, 100);
    agg_suite(*state, FB_TYPE_INT8, 5001, 0);
    agg_suite(*state, FB_TYPE_UINT16, 1, 0);
}

static void test_group_high_cardinality(void **state)
{
    agg_suite(*state, FB_TYPE_INT64, 100003, 0); /* random bits: INT64_MIN (the table's empty marker) too */
    agg_suite(*state, FB_TYPE_INT32, 50001, 20000);
    agg_suite(*state, FB_TYPE_UINT64, 30001, 3000);
}

static void test_group_empty_and_bad(void **state)
{
    fb_ctx *ctx = *state;
    fb_type kt = FB_TYPE_INT32;
    fb_agg_desc d[] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT32}};
    fb_agg_spec spec = {1, &kt, 2, d, FB_AGG_STRATEGY_AUTO};
    int32_t x[1] = {0};
    fb_column key = {FB_TYPE_INT32, 0, 0, x, NULL}, val = key;
    assert_int_equal(agg_case(ctx, &spec, &key, &val, 1, 0, NULL), 0);
    fb_agg_spec none = {0, NULL, 2, d, FB_AGG_STRATEGY_AUTO}; /* ungrouped over no rows: one row */
    assert_int_equal(agg_case(ctx, &none, NULL, &val, 1, 0, NULL), 1);
    agg_out o;
    agg_out_make(&o, &spec, 4);
    int64_t G;
    key.length = val.length = 1;
    fb_type five[5] = {FB_TYPE_INT32, FB_TYPE_INT32, FB_TYPE_INT32, FB_TYPE_INT32, FB_TYPE_INT32};
    fb_agg_spec bad = spec;
    bad.n_keys = 5;
    bad.key_types = five;
    assert_fb_status(ctx, fb_cl_group_by(ctx, &bad, &key, &val, 1, 1, o.keys, o.aggs, &G), FB_ERR_INVALID_ARG);
    fb_type ft = FB_TYPE_FLOAT64;
    bad = spec;
    bad.key_types = &ft;
    assert_fb_status(ctx, fb_cl_group_by(ctx, &bad, &key, &val, 1, 1, o.keys, o.aggs, &G), FB_ERR_UNSUPPORTED_TYPE);
    assert_fb_status(ctx, fb_cl_group_by(ctx, &spec, &key, &val, 1, 2, o.keys, o.aggs, &G), FB_ERR_LENGTH_MISMATCH);
    assert_fb_status(ctx, fb_cl_group_by(ctx, &spec, &key, NULL, 0, 1, o.keys, o.aggs, &G), FB_ERR_INVALID_ARG);
    o.aggs[1].type = FB_TYPE_INT32;
    assert_fb_status(ctx, fb_cl_group_by(ctx, &spec, &key, &val, 1, 1, o.keys, o.aggs, &G), FB_ERR_UNSUPPORTED_TYPE);
    o.aggs[1].type = FB_TYPE_INT64;
    o.aggs[1].capacity = 0;
    assert_fb_status(ctx, fb_cl_group_by(ctx, &spec, &key, &val, 1, 1, o.keys, o.aggs, &G), FB_ERR_CAPACITY);
    assert_int_equal(o.keys[0].length, 0);
    agg_out_free(&o, spec.n_aggs);
}

/* Under a small device memory budget the input goes over in chunks and the result is the same. */
static void test_group_budget(void **state)
{
    fb_ctx *ctx = *state;
    int64_t n = 100000;
    fb_type kt = FB_TYPE_INT64;
    fbt_col k = key_col(kt, n, 5000, 1), v = rand_col(FB_TYPE_INT32, n, 3, 1);
    fb_agg_desc d[] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT32},
                       {FB_AGG_MIN, 0, FB_TYPE_INT32}};
    fb_agg_spec spec = {1, &kt, 3, d, FB_AGG_STRATEGY_AUTO};
    /* table: 2^18 slots x 8 + (2^18 + 2) x 4 bytes = 3 MiB; the budget leaves ~1 MiB, chunks of ~45000 rows */
    setenv("FB_CL_MEM_BUDGET", "4200k", 1);
    agg_case(ctx, &spec, &k.col, &v.col, 1, n, NULL);
    int chunks = ctx_cl_chunks(ctx);
    /* the value pass streamed key (8 bytes + validity) and value (4 bytes + validity) per row through
     * the pinned double buffers, timed by events */
    fb_cl_stream_stats ss = ctx->cl->last_stream;
    fprintf(stderr, "[ stream   ] %llu chunks, %llu bytes host->device in %.2f ms of copies\n",
            (unsigned long long)ss.chunks, (unsigned long long)ss.h2d_bytes, 1e-6 * (double)ss.h2d_ns);
    assert_int_equal(ss.chunks, (uint64_t)chunks);
    assert_true(ss.h2d_bytes >= (uint64_t)n * 12 && ss.h2d_bytes <= (uint64_t)n * 13);
    /* 64k: a quarter of the rows share one key, and that key's table alone passes the budget */
    setenv("FB_CL_MEM_BUDGET", "64k", 1);
    agg_out o;
    agg_out_make(&o, &spec, n);
    int64_t G;
    fb_status st = fb_cl_group_by(ctx, &spec, &k.col, &v.col, 1, n, o.keys, o.aggs, &G);
    unsetenv("FB_CL_MEM_BUDGET");
    assert_fb_status(ctx, st, FB_ERR_DEVICE_MEMORY);
    assert_non_null(strstr(fb_last_error(ctx), "equal keys"));
    assert_int_equal(o.keys[0].length, 0);
    fprintf(stderr, "[ budget   ] 100000 rows in %d chunks\n", chunks);
    assert_true(chunks > 2);
    agg_out_free(&o, spec.n_aggs);
    fbt_col_free(&k);
    fbt_col_free(&v);
}

/* Group-by over the budget: budgets below the direct path's table (2 x rows slots and more, 12 bytes
 * each: 768 KiB for 30000 rows) or its aggregate words make the call split the rows into hash
 * partitions, one device group-by each. The last one holds few groups whole. */
static const char *const part_budgets[] = {"400k", "700k", "1200k"};

/* Every aggregate of suite_aggs grouped by nk key columns against the CPU at each of n_b budgets (so
 * the answer does not depend on the budget), split into more than one partition under the first
 * n_split of them; the integer sums of random uint64 overflow on both sides. */
static void part_suite_at(fb_ctx *ctx, const char *what, const fb_column *keys, const fb_type *kt, size_t nk,
                          int64_t n, const char *const *budgets, size_t n_b, size_t n_split)
{
    fbt_col v[6];
    suite_values(v, n);
    fb_column vals[6];
    for (int i = 0; i < 6; i++)
        vals[i] = v[i].col;
    size_t n_aggs = sizeof suite_aggs / sizeof suite_aggs[0];
    fb_agg_spec spec = {nk, kt, n_aggs, suite_aggs, FB_AGG_STRATEGY_AUTO};
    double *fs = abs_sums_of(ctx, &spec, keys, &v[3], n);
    double *abs_sums[FB_AGG_MAX_AGGS] = {0};
    abs_sums[11] = abs_sums[12] = fs;
    int64_t G0 = -1;
    char parts[128] = "";
    double t0 = now_s();
    for (size_t b = 0; b < n_b; b++) {
        setenv("FB_CL_MEM_BUDGET", budgets[b], 1);
        int64_t G = agg_case(ctx, &spec, keys, vals, 6, n, abs_sums);
        int p = ctx->cl->last_partitions;
        if (p < 2 && b < n_split)
            fail_msg("%s under %s: %d partitions", what, budgets[b], p);
        if (b > 0)
            assert_int_equal(G, G0);
        G0 = G;
        snprintf(parts + strlen(parts), sizeof parts - strlen(parts), "%s%d under %s", b ? ", " : "", p, budgets[b]);
    }
    const fb_agg_desc o[] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 5, FB_TYPE_UINT64}};
    fb_agg_spec ospec = {nk, kt, 2, o, FB_AGG_STRATEGY_AUTO};
    setenv("FB_CL_MEM_BUDGET", budgets[0], 1);
    agg_case(ctx, &ospec, keys, vals, 6, n, NULL);
    unsetenv("FB_CL_MEM_BUDGET");
    fprintf(stderr, "[ parts    ] %-30s %lld rows, %lld groups; partitions: %s (%.2f s)\n", what, (long long)n,
            (long long)G0, parts, now_s() - t0);
    free(fs);
    for (int i = 0; i < 6; i++)
        fbt_col_free(&v[i]);
}

static void part_suite(fb_ctx *ctx, const char *what, const fb_column *keys, const fb_type *kt, size_t nk, int64_t n)
{
    part_suite_at(ctx, what, keys, kt, nk, n, part_budgets, 3, 2);
}

static void test_group_partitioned_one_key(void **state)
{
    fb_ctx *ctx = *state;
    int64_t n = 30000;
    struct {
        const char *what;
        fb_type t;
        int64_t distinct; /* 0: random bits, extremes included */
        int skew;
    } cases[] = {{"int32, random, skewed", FB_TYPE_INT32, 12000, 1}, {"int64, random bits", FB_TYPE_INT64, 0, 0},
                 {"uint32, random", FB_TYPE_UINT32, 3000, 0},       {"date32, skewed", FB_TYPE_DATE32, 20000, 1},
                 {"int16, few groups", FB_TYPE_INT16, 40, 0},       {"uint64, random bits", FB_TYPE_UINT64, 0, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fbt_col k = key_col_skew(cases[c].t, n, cases[c].distinct, 1, cases[c].skew);
        part_suite(ctx, cases[c].what, &k.col, &cases[c].t, 1, n);
        fbt_col_free(&k);
    }
    /* one value in half the rows, null in the others: two groups, each in its own partition */
    fb_type kt = FB_TYPE_INT8;
    fbt_col one = key_col_skew(kt, n, 1, 0, 0);
    one.valid = xmalloc((size_t)(n + 3) / 8 + 1);
    memset(one.valid, 0, (size_t)(n + 3) / 8 + 1);
    for (int64_t i = 0; i < n + 3; i++)
        if (fbt_next(&rng) % 2)
            one.valid[i >> 3] |= (uint8_t)(1u << (i & 7));
    one.col.validity = one.valid;
    /* each group's table (32768 slots) fits 600k and 800k with its chunks, both groups' (65536) not */
    static const char *const two_budgets[] = {"600k", "800k"};
    part_suite_at(ctx, "int8, one value and nulls", &one.col, &kt, 1, n, two_budgets, 2, 2);
    /* a budget below the chunks of 1024 rows of every value column: parts small enough to go over
     * whole, or FB_ERR_DEVICE_MEMORY, soon either way */
    {
        fb_type t = FB_TYPE_INT32;
        fbt_col k = key_col_skew(t, n, 12000, 0, 0), v[6];
        suite_values(v, n);
        fb_column vals[6];
        for (int i = 0; i < 6; i++)
            vals[i] = v[i].col;
        fb_agg_spec spec = {1, &t, sizeof suite_aggs / sizeof suite_aggs[0], suite_aggs, FB_AGG_STRATEGY_AUTO};
        double *fs = abs_sums_of(ctx, &spec, &k.col, &v[3], n), *abs_sums[FB_AGG_MAX_AGGS] = {0};
        abs_sums[11] = abs_sums[12] = fs;
        static const char *const tiny[] = {"64k", "96k"};
        agg_out o;
        agg_out_make(&o, &spec, n);
        for (int b = 0; b < 2; b++) {
            double t0 = now_s();
            setenv("FB_CL_MEM_BUDGET", tiny[b], 1);
            int64_t G = -1;
            fb_status st = fb_cl_group_by(ctx, &spec, &k.col, vals, 6, n, o.keys, o.aggs, &G);
            fprintf(stderr, "[ parts    ] under %s: %s, %d partitions (%.2f s)\n", tiny[b], fb_status_name(st),
                    st == FB_OK ? ctx->cl->last_partitions : 0, now_s() - t0);
            if (st == FB_OK)
                agg_case(ctx, &spec, &k.col, vals, 6, n, abs_sums);
            else
                assert_fb_status(ctx, st, FB_ERR_DEVICE_MEMORY);
        }
        unsetenv("FB_CL_MEM_BUDGET");
        agg_out_free(&o, spec.n_aggs);
        free(fs);
        fbt_col_free(&k);
        for (int i = 0; i < 6; i++)
            fbt_col_free(&v[i]);
    }
    /* one value in every row: no partitioning splits it, so it fails where its table passes the budget */
    one.col.validity = NULL;
    fb_agg_spec spec = {1, &kt, 3, suite_aggs, FB_AGG_STRATEGY_AUTO};
    fbt_col v = rand_col(FB_TYPE_INT32, n, 3, 1);
    setenv("FB_CL_MEM_BUDGET", "400k", 1);
    agg_out o;
    agg_out_make(&o, &spec, n);
    int64_t G = -1;
    fb_status st = fb_cl_group_by(ctx, &spec, &one.col, &v.col, 1, n, o.keys, o.aggs, &G);
    assert_fb_status(ctx, st, FB_ERR_DEVICE_MEMORY);
    assert_non_null(strstr(fb_last_error(ctx), "equal keys"));
    assert_int_equal(o.keys[0].length, 0);
    assert_int_equal(o.aggs[0].length, 0);
    setenv("FB_CL_MEM_BUDGET", "2M", 1);
    assert_int_equal(agg_case(ctx, &spec, &one.col, &v.col, 1, n, NULL), 1);
    assert_int_equal(ctx->cl->last_partitions, 0);
    unsetenv("FB_CL_MEM_BUDGET");
    agg_out_free(&o, spec.n_aggs);
    fbt_col_free(&v);
    fbt_col_free(&one);
}

/* 2..4 key columns of mixed types (int8..int64, uint*, date32), few values each so tuples repeat,
 * nulls in some columns. */
static void test_group_partitioned_composite(void **state)
{
    fb_ctx *ctx = *state;
    static const fb_type types[][FB_AGG_MAX_KEYS] = {
        {FB_TYPE_INT8, FB_TYPE_UINT32}, {FB_TYPE_DATE32, FB_TYPE_INT16, FB_TYPE_UINT64},
        {FB_TYPE_UINT8, FB_TYPE_INT64, FB_TYPE_UINT16, FB_TYPE_INT32}, {FB_TYPE_INT64, FB_TYPE_DATE32}};
    static const int64_t distinct[][FB_AGG_MAX_KEYS] = {{200, 150}, {50, 40, 30}, {0, 30, 7, 3}, {0, 0}};
    static const size_t nks[] = {2, 3, 4, 2};
    static const char *const what[] = {"int8 x uint32", "date32 x int16 x uint64", "uint8 x int64 x uint16 x int32",
                                       "int64 x date32, random bits"};
    int64_t n = 30000;
    for (size_t c = 0; c < sizeof nks / sizeof nks[0]; c++) {
        size_t nk = nks[c];
        fbt_col k[FB_AGG_MAX_KEYS];
        fb_column kc[FB_AGG_MAX_KEYS];
        for (size_t i = 0; i < nk; i++) {
            k[i] = key_col_skew(types[c][i], n, distinct[c][i], i != 1, c == 1 && i == 0);
            kc[i] = k[i].col;
        }
        part_suite(ctx, what[c], kc, types[c], nk, n);
        for (size_t i = 0; i < nk; i++)
            fbt_col_free(&k[i]);
    }
}

static void test_group_timing(void **state)
{
    fb_ctx *ctx = *state;
    int64_t n = 1 << 20;
    for (int hi = 0; hi < 2; hi++) {
        fb_type kt = FB_TYPE_INT32;
        fbt_col k = key_col(kt, n, hi ? n : 64, 0), v = rand_col(FB_TYPE_INT32, n, 3, 0);
        fb_agg_desc d[] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT32}};
        fb_agg_spec spec = {1, &kt, 2, d, FB_AGG_STRATEGY_AUTO};
        agg_out o;
        agg_out_make(&o, &spec, n);
        fb_agg_table *t;
        double t0 = now_s();
        assert_fb_ok(ctx, fb_agg_create(ctx, &spec, &t));
        assert_fb_ok(ctx, fb_agg_update(t, &k.col, &v.col, 1, n, NULL, 0));
        assert_fb_ok(ctx, fb_agg_result(t, o.keys, o.aggs));
        double t1 = now_s();
        int64_t G;
        assert_fb_ok(ctx, fb_cl_group_by(ctx, &spec, &k.col, &v.col, 1, n, o.keys, o.aggs, &G));
        double t2 = now_s();
        fprintf(stderr, "[ timing   ] group by int32 (%lld groups), count + sum, 1Mi rows: cpu %.1f ms, opencl %.1f ms\n",
                (long long)G, 1e3 * (t1 - t0), 1e3 * (t2 - t1));
        fb_agg_destroy(t);
        agg_out_free(&o, 2);
        fbt_col_free(&k);
        fbt_col_free(&v);
    }
}

/* ---- hash join ---------------------------------------------------------------------------------------- */

/* Every CPU result of a join on nk key columns (inner, left, semi, anti, mark with and without
 * validity) against the OpenCL one: equal entry for entry, in order. One column goes through the
 * one-column functions, more through the _keys ones. */
static void join_case_keys(fb_ctx *ctx, const fb_column *b, const fb_column *p, size_t nk)
{
    fb_hash_table *t = NULL;
    fb_type types[FB_JOIN_MAX_KEYS];
    for (size_t k = 0; k < nk; k++)
        types[k] = b[k].type;
    assert_fb_ok(ctx, fb_hash_table_create(ctx, types, nk, b->length, &t));
    assert_fb_ok(ctx, fb_hash_table_build(ctx, t, b, nk, 7));
    int64_t np = p->length;
    for (fb_join_type jt = FB_JOIN_INNER; jt <= FB_JOIN_LEFT; jt++) {
        int64_t cap = 1 << 16, n = 0;
        int64_t *cb = NULL, *cp = NULL;
        fb_join_cursor cur = FB_JOIN_CURSOR_INIT;
        int more = 1;
        while (more) {
            cb = realloc(cb, (size_t)(n + cap) * 8);
            cp = realloc(cp, (size_t)(n + cap) * 8);
            fb_join_pairs o = {cb + n, cp + n, cap, 0, 0};
            assert_fb_ok(ctx, fb_hash_table_probe(ctx, t, p, nk, jt, 11, &cur, &o));
            n += o.length;
            more = o.more;
        }
        int64_t need = -1;
        fb_join_pairs small = {cb, cp, 0, 0, 0};
        fb_status st = nk == 1 ? fb_cl_join_probe(ctx, b, 7, p, 11, jt, &small, &need)
                               : fb_cl_join_probe_keys(ctx, b, p, nk, 7, 11, jt, &small, &need);
        if (n > 0) {
            assert_fb_status(ctx, st, FB_ERR_CAPACITY);
        } else {
            assert_fb_ok(ctx, st);
        }
        assert_int_equal(need, n);
        int64_t *db = xmalloc((size_t)n * 8 + 8), *dp = xmalloc((size_t)n * 8 + 8);
        fb_join_pairs o = {db, dp, n, 0, 0};
        assert_fb_ok(ctx, nk == 1 ? fb_cl_join_probe(ctx, b, 7, p, 11, jt, &o, &need)
                                  : fb_cl_join_probe_keys(ctx, b, p, nk, 7, 11, jt, &o, &need));
        assert_int_equal(o.length, n);
        assert_int_equal(o.more, 0);
        for (int64_t i = 0; i < n; i++)
            if (db[i] != cb[i] || dp[i] != cp[i])
                fail_msg("join %d pair %lld: cpu (%lld, %lld), opencl (%lld, %lld)", (int)jt, (long long)i,
                         (long long)cb[i], (long long)cp[i], (long long)db[i], (long long)dp[i]);
        free(cb);
        free(cp);
        free(db);
        free(dp);
    }
    uint32_t *cs = xmalloc((size_t)np * 4), *ds = xmalloc((size_t)np * 4);
    for (fb_join_type jt = FB_JOIN_SEMI; jt <= FB_JOIN_ANTI; jt++) {
        int64_t cn = -1, dn = -1;
        assert_fb_ok(ctx, fb_hash_table_probe_select(ctx, t, p, nk, jt, cs, np, &cn));
        assert_fb_ok(ctx, nk == 1 ? fb_cl_join_probe_select(ctx, b, p, jt, ds, np, &dn)
                                  : fb_cl_join_probe_select_keys(ctx, b, p, nk, jt, ds, np, &dn));
        assert_int_equal(cn, dn);
        if (cn > 0)
            assert_memory_equal(cs, ds, (size_t)cn * 4);
    }
    for (int three = 0; three < 2; three++) {
        uint8_t *cm = xmalloc((size_t)np), *dm = xmalloc((size_t)np);
        uint8_t *cv = three ? xmalloc((size_t)np / 8 + 1) : NULL, *dv = three ? xmalloc((size_t)np / 8 + 1) : NULL;
        fb_column_out co = {FB_TYPE_UINT8, np, cm, cv, 0, 0}, dout = {FB_TYPE_UINT8, np, dm, dv, 0, 0};
        assert_fb_ok(ctx, fb_hash_table_probe_mark(ctx, t, p, nk, &co));
        assert_fb_ok(ctx, nk == 1 ? fb_cl_join_probe_mark(ctx, b, p, &dout) : fb_cl_join_probe_mark_keys(ctx, b, p, nk, &dout));
        assert_int_equal(co.length, dout.length);
        assert_int_equal(co.null_count, dout.null_count);
        for (int64_t i = 0; i < np; i++) {
            int civ = !three || bit_at(cv, i), div = !three || bit_at(dv, i);
            if (civ != div || (civ && cm[i] != dm[i]))
                fail_msg("mark (three-valued %d) row %lld: cpu %d/%d, opencl %d/%d", three, (long long)i, cm[i], civ,
                         dm[i], div);
        }
        free(cm);
        free(dm);
        free(cv);
        free(dv);
    }
    free(cs);
    free(ds);
    fb_hash_table_destroy(t);
}

static void join_case(fb_ctx *ctx, const fb_column *b, const fb_column *p) { join_case_keys(ctx, b, p, 1); }

/* nk key columns of build and probe rows: types cycling through int32, int64, date32, uint64, few
 * distinct values per column (tuples repeat, N:M), nulls in some columns. */
typedef struct key_set {
    fbt_col b[FB_JOIN_MAX_KEYS], p[FB_JOIN_MAX_KEYS];
    fb_column bc[FB_JOIN_MAX_KEYS], pc[FB_JOIN_MAX_KEYS];
} key_set;

static void key_set_make(key_set *ks, size_t nk, int64_t nb, int64_t np, int64_t distinct, int nulls)
{
    static const fb_type kts[4] = {FB_TYPE_INT32, FB_TYPE_INT64, FB_TYPE_DATE32, FB_TYPE_UINT64};
    for (size_t k = 0; k < nk; k++) {
        fb_type t = kts[(k + nk) % 4];
        int64_t dk = k == 0 ? distinct : 3 + (int64_t)k;
        ks->b[k] = key_col_skew(t, nb, dk, nulls && k == 1, 0);
        ks->p[k] = key_col_skew(t, np, dk, nulls && k != 1, 0);
        ks->bc[k] = ks->b[k].col;
        ks->pc[k] = ks->p[k].col;
    }
}

static void key_set_free(key_set *ks, size_t nk)
{
    for (size_t k = 0; k < nk; k++) {
        fbt_col_free(&ks->b[k]);
        fbt_col_free(&ks->p[k]);
    }
}

static void test_join_composite(void **state)
{
    fb_ctx *ctx = *state;
    static const int64_t sizes[][3] = {{0, 100, 5}, {100, 0, 5}, {1, 1, 1}, {1000, 3000, 50}, {20000, 30000, 2000}};
    for (size_t nk = 2; nk <= FB_JOIN_MAX_KEYS; nk++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            key_set ks;
            key_set_make(&ks, nk, sizes[s][0], sizes[s][1], sizes[s][2], s % 2 == 1);
            join_case_keys(ctx, ks.bc, ks.pc, nk);
            key_set_free(&ks, nk);
        }
    /* columns of one side that differ in length */
    key_set ks;
    key_set_make(&ks, 2, 10, 10, 5, 0);
    ks.bc[1].length = 9;
    uint32_t sel[10];
    int64_t n;
    assert_fb_status(ctx, fb_cl_join_probe_select_keys(ctx, ks.bc, ks.pc, 2, FB_JOIN_SEMI, sel, 10, &n),
                     FB_ERR_LENGTH_MISMATCH);
    assert_fb_status(ctx, fb_cl_join_probe_select_keys(ctx, ks.bc, ks.pc, 0, FB_JOIN_SEMI, sel, 10, &n),
                     FB_ERR_INVALID_ARG);
    key_set_free(&ks, 2);
}

/* Composite group-by keys: 2..4 columns with few distinct values each (tuples repeat), nulls in
 * all but one column, against the CPU aggregation table. */
static void test_group_composite(void **state)
{
    fb_ctx *ctx = *state;
    static const int64_t ns[] = {0, 1, 5000, 60001};
    for (size_t nk = 2; nk <= FB_AGG_MAX_KEYS; nk++)
        for (size_t si = 0; si < sizeof ns / sizeof ns[0]; si++) {
            int64_t n = ns[si];
            key_set ks;
            key_set_make(&ks, nk, n, 0, si == 3 ? 300 : 7, 1);
            fb_type kt[FB_AGG_MAX_KEYS];
            for (size_t k = 0; k < nk; k++)
                kt[k] = ks.bc[k].type;
            fbt_col v = rand_col(FB_TYPE_INT32, n, 3, 1), w = key_col(FB_TYPE_INT64, n, 1000000007, 1);
            fb_column vals[2] = {v.col, w.col};
            const fb_agg_desc d[] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT32},
                                     {FB_AGG_MIN, 1, FB_TYPE_INT64},          {FB_AGG_MAX, 0, FB_TYPE_INT32},
                                     {FB_AGG_AVG, 1, FB_TYPE_INT64},          {FB_AGG_COUNT, 1, FB_TYPE_INT64}};
            fb_agg_spec spec = {nk, kt, sizeof d / sizeof d[0], d, FB_AGG_STRATEGY_AUTO};
            int64_t G = agg_case(ctx, &spec, ks.bc, vals, 2, n, NULL);
            if (si == 3)
                fprintf(stderr, "[ groups   ] %zu keys, %lld rows: %lld groups\n", nk, (long long)n, (long long)G);
            fbt_col_free(&v);
            fbt_col_free(&w);
            key_set_free(&ks, nk);
        }
}

static void test_join(void **state)
{
    fb_ctx *ctx = *state;
    static const fb_type types[] = {FB_TYPE_INT32, FB_TYPE_INT64, FB_TYPE_UINT64, FB_TYPE_DATE32, FB_TYPE_UINT32};
    static const int64_t sizes[][3] = {{0, 100, 50}, {100, 0, 50}, {1, 1, 0}, {1000, 3000, 300},
                                       {40000, 100003, 30000}, {2000, 5000, 0}, {300, 2000, 7}};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            /* keys from a pool of sizes[s][2] values (random bits and extremes when 0): duplicates on both sides */
            /* skewed (a quarter of the rows on one key: N:M) only where the result stays small */
            int skew = sizes[s][0] * sizes[s][1] < 10000000;
            fbt_col b = key_col_skew(types[t], sizes[s][0], sizes[s][2], s % 2 == 0, skew),
                    p = key_col_skew(types[t], sizes[s][1], sizes[s][2], s % 3 != 2, skew);
            join_case(ctx, &b.col, &p.col);
            fbt_col_free(&b);
            fbt_col_free(&p);
        }
}

/* Under a small budget the probe side goes over in chunks with the same results; a build side over
 * the budget is joined in hash partitions with the same results (one and two key columns); a build
 * side whose one key alone passes the budget fails with FB_ERR_DEVICE_MEMORY. */
static void test_join_budget(void **state)
{
    fb_ctx *ctx = *state;
    fbt_col b = key_col_skew(FB_TYPE_INT64, 20000, 15000, 1, 0), p = key_col_skew(FB_TYPE_INT64, 200000, 30000, 1, 0);
    /* build: 2^16 slots x 16 bytes + 20000 x 8 = 1.2 MiB */
    setenv("FB_CL_MEM_BUDGET", "3M", 1);
    join_case(ctx, &b.col, &p.col);
    int chunks = ctx_cl_chunks(ctx);
    assert_int_equal(ctx->cl->last_partitions, 0);
    setenv("FB_CL_MEM_BUDGET", "512k", 1);
    join_case(ctx, &b.col, &p.col);
    int parts = ctx->cl->last_partitions;
    fprintf(stderr, "[ budget   ] join: 200000 probe rows in %d chunks; under 512k, %d partitions\n", chunks, parts);
    assert_true(chunks > 1);
    assert_true(parts > 1);
    key_set ks;
    key_set_make(&ks, 2, 30000, 50000, 20000, 1);
    join_case_keys(ctx, ks.bc, ks.pc, 2);
    assert_true(ctx->cl->last_partitions > 1);
    key_set_free(&ks, 2);
    /* one key 60000 times: no partitioning splits it */
    fbt_col same = key_col_skew(FB_TYPE_INT32, 60000, 1, 0, 0);
    uint32_t *sel = xmalloc(200000 * 4);
    int64_t n = -1;
    setenv("FB_CL_MEM_BUDGET", "256k", 1);
    fb_status st = fb_cl_join_probe_select(ctx, &same.col, &same.col, FB_JOIN_SEMI, sel, 200000, &n);
    unsetenv("FB_CL_MEM_BUDGET");
    assert_fb_status(ctx, st, FB_ERR_DEVICE_MEMORY);
    free(sel);
    fbt_col_free(&same);
    fbt_col_free(&b);
    fbt_col_free(&p);
}

static void test_join_bad_args(void **state)
{
    fb_ctx *ctx = *state;
    int32_t k[2] = {1, 2};
    int64_t k64[2] = {1, 2};
    fb_column b = {FB_TYPE_INT32, 2, 0, k, NULL}, p64 = {FB_TYPE_INT64, 2, 0, k64, NULL}, f = b;
    f.type = FB_TYPE_FLOAT32;
    int64_t ids[4], n;
    fb_join_pairs o = {ids, ids + 2, 2, 0, 0};
    assert_fb_status(ctx, fb_cl_join_probe(ctx, &b, 0, &p64, 0, FB_JOIN_INNER, &o, &n), FB_ERR_UNSUPPORTED_TYPE);
    assert_fb_status(ctx, fb_cl_join_probe(ctx, &f, 0, &f, 0, FB_JOIN_INNER, &o, &n), FB_ERR_UNSUPPORTED_TYPE);
    assert_fb_status(ctx, fb_cl_join_probe(ctx, &b, 0, &b, 0, FB_JOIN_SEMI, &o, &n), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_cl_join_probe(ctx, &b, -1, &b, 0, FB_JOIN_INNER, &o, &n), FB_ERR_INVALID_ARG);
    uint32_t sel[2];
    assert_fb_status(ctx, fb_cl_join_probe_select(ctx, &b, &b, FB_JOIN_SEMI, sel, 1, &n), FB_ERR_CAPACITY);
    assert_fb_status(ctx, fb_cl_join_probe_select(ctx, &b, &b, FB_JOIN_LEFT, sel, 2, &n), FB_ERR_INVALID_ARG);
    uint8_t m[2];
    fb_column_out mo = {FB_TYPE_INT8, 2, m, NULL, 0, 0};
    assert_fb_status(ctx, fb_cl_join_probe_mark(ctx, &b, &b, &mo), FB_ERR_UNSUPPORTED_TYPE);
    mo.type = FB_TYPE_UINT8;
    mo.capacity = 1;
    assert_fb_status(ctx, fb_cl_join_probe_mark(ctx, &b, &b, &mo), FB_ERR_CAPACITY);
}

static void test_join_timing(void **state)
{
    fb_ctx *ctx = *state;
    int64_t nb = 1 << 18, np = 1 << 20;
    fbt_col b = key_col(FB_TYPE_INT32, nb, 0, 0), p = key_col(FB_TYPE_INT32, np, 0, 0);
    for (int64_t i = 0; i < nb; i++)
        ((int32_t *)b.data)[i] = (int32_t)i * 4;
    for (int64_t i = 0; i < np + 3; i++)
        ((int32_t *)p.data)[i] = (int32_t)(fbt_next(&rng) % (uint64_t)(nb * 8));
    int64_t *ids = xmalloc((size_t)np * 16);
    double t0 = now_s();
    fb_hash_table *t;
    assert_fb_ok(ctx, fb_hash_table_create(ctx, &b.col.type, 1, nb, &t));
    assert_fb_ok(ctx, fb_hash_table_build(ctx, t, &b.col, 1, 0));
    fb_join_cursor cur = FB_JOIN_CURSOR_INIT;
    fb_join_pairs o = {ids, ids + np, np, 0, 0};
    assert_fb_ok(ctx, fb_hash_table_probe(ctx, t, &p.col, 1, FB_JOIN_INNER, 0, &cur, &o));
    double t1 = now_s();
    int64_t n;
    fb_join_pairs d = {ids, ids + np, np, 0, 0};
    assert_fb_ok(ctx, fb_cl_join_probe(ctx, &b.col, 0, &p.col, 0, FB_JOIN_INNER, &d, &n));
    double t2 = now_s();
    assert_int_equal(o.length, d.length);
    fprintf(stderr, "[ timing   ] inner join 256Ki build x 1Mi probe int32 (%lld pairs): cpu %.1f ms, opencl %.1f ms\n",
            (long long)n, 1e3 * (t1 - t0), 1e3 * (t2 - t1));
    fb_hash_table_destroy(t);
    free(ids);
    fbt_col_free(&b);
    fbt_col_free(&p);
}

static int setup_ctx(void **state)
{
    rng = fbt_seed();
    fb_ctx *ctx = NULL;
    if (fbt_cl_ctx_create(NULL, &ctx) != 0)
        return -1;
    *state = ctx;
    return 0;
}

static int teardown_ctx(void **state)
{
    fb_ctx_destroy(*state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sort_one_key),  cmocka_unit_test(test_sort_multi_key),
        cmocka_unit_test(test_sort_shapes),   cmocka_unit_test(test_sort_top_n),
        cmocka_unit_test(test_sort_table),    cmocka_unit_test(test_sort_bad_args),
        cmocka_unit_test(test_sort_budget),   cmocka_unit_test(test_sort_timing),
        cmocka_unit_test(test_group_low_cardinality), cmocka_unit_test(test_group_high_cardinality),
        cmocka_unit_test(test_group_empty_and_bad),   cmocka_unit_test(test_group_budget),
        cmocka_unit_test(test_group_partitioned_one_key), cmocka_unit_test(test_group_partitioned_composite),
        cmocka_unit_test(test_group_timing),
        cmocka_unit_test(test_group_composite), cmocka_unit_test(test_join_composite),
        cmocka_unit_test(test_join),          cmocka_unit_test(test_join_budget),
        cmocka_unit_test(test_join_bad_args), cmocka_unit_test(test_join_timing),
    };
    return cmocka_run_group_tests(tests, setup_ctx, teardown_ctx);
}
