/* test_cl_ops.c - the OpenCL twins of the CPU operators (fb_cl.h: sort, ...) against the CPU
 * functions (fb_sort.h, ...) and against independent checks written here: a sort result must be a
 * permutation whose neighbours are in SQL order (nulls first/last, -0.0 = 0.0, NaN largest) with
 * equal keys in input order, which fixes it uniquely. Random data with duplicates, extremes, NaN
 * payloads, nulls at nonzero offsets, all-equal keys; bad input; the device memory budget. It
 * fails (does not skip) without an OpenCL device. Sizes stay small: PoCL runs on the CPU. */
#include "fb_test.h"

#include <time.h>

#include "fb/fb_cl.h"

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

/* A sort larger than the device memory budget fails with FB_ERR_DEVICE_MEMORY and frees what it took:
 * the next call under a normal budget works. */
static void test_sort_budget(void **state)
{
    fb_ctx *ctx = *state;
    int64_t n = 100000;
    fbt_col c = rand_col(FB_TYPE_INT32, n, 0, 0);
    fb_sort_key k = {c.col, 0, 0};
    uint32_t *out = xmalloc((size_t)n * sizeof *out);
    setenv("FB_CL_MEM_BUDGET", "1M", 1);
    fb_status st = fb_cl_sort_permutation(ctx, &k, 1, out, n);
    unsetenv("FB_CL_MEM_BUDGET");
    assert_fb_status(ctx, st, FB_ERR_DEVICE_MEMORY);
    assert_non_null(strstr(fb_last_error(ctx), "budget"));
    sort_case(ctx, &k, 1, n);
    free(out);
    fbt_col_free(&c);
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

static int setup_ctx(void **state)
{
    rng = fbt_seed();
    fb_ctx *ctx = NULL;
    if (fb_ctx_create(NULL, &ctx) != FB_OK)
        return -1;
    if (fb_cl_open(ctx, NULL) != FB_OK) {
        fprintf(stderr, "no OpenCL device: %s\n", fb_last_error(ctx));
        fb_ctx_destroy(ctx);
        return -1;
    }
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
    };
    return cmocka_run_group_tests(tests, setup_ctx, teardown_ctx);
}
