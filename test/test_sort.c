/* test_sort.c - fb_sort.h: permutations, top-N and sorted tables, single-threaded and parallel (2 and
 * 3 workers), from every CPU variant the machine runs (scalar, base, avx2, avx512), checked against the C library's qsort with an independent
 * comparator written here (SQL order, nulls first/last, descending, ties broken by row id, which is
 * exactly the stable order). Data: random, sorted, reverse-sorted, all-equal, few-distinct and Zipf
 * values with nulls (bitmaps at odd offsets), NaN (several payloads, both signs), ±0.0, ±inf and the
 * extremes of every type; sizes 0, 1, 2, 31, 1000 and 1M+7; single and multi-column keys; plus the
 * bad-input statuses and the memory limit. */
#include "fb_test.h"
#include "fb_sort_internal.h"

#include <math.h>

static uint64_t rng;

/* ---- oracle -------------------------------------------------------------------------------------- */

static int is_float(fb_type t) { return t == FB_TYPE_FLOAT32 || t == FB_TYPE_FLOAT64; }
static int is_unsigned(fb_type t)
{
    return t == FB_TYPE_UINT8 || t == FB_TYPE_UINT16 || t == FB_TYPE_UINT32 || t == FB_TYPE_UINT64;
}

/* value at p widened: signed types to int64 bits, unsigned to uint64 */
static uint64_t widen(fb_type t, const void *p)
{
    switch (t) {
    case FB_TYPE_INT8: return (uint64_t)(int64_t) * (const int8_t *)p;
    case FB_TYPE_INT16: return (uint64_t)(int64_t) * (const int16_t *)p;
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: return (uint64_t)(int64_t) * (const int32_t *)p;
    case FB_TYPE_INT64: return (uint64_t) * (const int64_t *)p;
    case FB_TYPE_UINT8: return *(const uint8_t *)p;
    case FB_TYPE_UINT16: return *(const uint16_t *)p;
    case FB_TYPE_UINT32: return *(const uint32_t *)p;
    default: return *(const uint64_t *)p;
    }
}

/* SQL order of two values: -inf < ... < -0.0 = 0.0 < ... < +inf < NaN (all NaN equal). */
static int value_cmp(fb_type t, const void *a, const void *b)
{
    if (is_float(t)) {
        double x = t == FB_TYPE_FLOAT32 ? *(const float *)a : *(const double *)a;
        double y = t == FB_TYPE_FLOAT32 ? *(const float *)b : *(const double *)b;
        if (isnan(x) || isnan(y))
            return isnan(x) && isnan(y) ? 0 : isnan(x) ? 1 : -1;
        return x < y ? -1 : x > y ? 1 : 0;
    }
    uint64_t x = widen(t, a), y = widen(t, b);
    if (is_unsigned(t))
        return x < y ? -1 : x > y;
    return (int64_t)x < (int64_t)y ? -1 : (int64_t)x > (int64_t)y;
}

static int row_valid(const fb_column *c, int64_t i)
{
    if (!c->validity)
        return 1;
    int64_t b = c->offset + i;
    return (c->validity[b / 8] >> (b % 8)) & 1;
}

static const void *row_ptr(const fb_column *c, int64_t i)
{
    return (const char *)c->data + (size_t)(c->offset + i) * fb_type_width(c->type);
}

static const fb_sort_key *oracle_keys;
static size_t oracle_n_keys;

static int oracle_row_cmp(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    for (size_t k = 0; k < oracle_n_keys; k++) {
        const fb_sort_key *key = &oracle_keys[k];
        int va = row_valid(&key->column, a), vb = row_valid(&key->column, b);
        if (!va || !vb) {
            if (!va && !vb)
                continue;
            int a_first = !va ? key->nulls_first : !key->nulls_first;
            return a_first ? -1 : 1;
        }
        int c = value_cmp(key->column.type, row_ptr(&key->column, a), row_ptr(&key->column, b));
        if (key->descending)
            c = -c;
        if (c)
            return c;
    }
    return a < b ? -1 : a > b; /* stability: equal keys keep their input order */
}

static uint32_t *oracle_perm(const fb_sort_key *keys, size_t n_keys, int64_t n)
{
    uint32_t *p = malloc((size_t)(n + 1) * 4);
    for (int64_t i = 0; i < n; i++)
        p[i] = (uint32_t)i;
    oracle_keys = keys;
    oracle_n_keys = n_keys;
    qsort(p, (size_t)n, 4, oracle_row_cmp);
    return p;
}

/* ---- data ---------------------------------------------------------------------------------------- */

static const fb_type all_types[] = {FB_TYPE_INT8,   FB_TYPE_INT16,  FB_TYPE_INT32,   FB_TYPE_INT64,
                                    FB_TYPE_UINT8,  FB_TYPE_UINT16, FB_TYPE_UINT32,  FB_TYPE_UINT64,
                                    FB_TYPE_FLOAT32, FB_TYPE_FLOAT64, FB_TYPE_DATE32};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* One random value: extremes, 0, -1, NaN (any payload, both signs), ±0.0, ±inf, denormals, small
 * pool values (duplicates), or uniform bits. */
static void random_value(fb_type t, void *out) { fbt_random_value(&rng, t, out); }

/* P_NARROW: uniform over the low 24 bits (a 32-bit key whose buckets differ in few bits: two LSD passes) */
typedef enum pattern { P_RANDOM, P_SORTED, P_REVERSE, P_EQUAL, P_FEW, P_ZIPF, P_NARROW, P_COUNT } pattern;
static const char *const pattern_names[] = {"random", "sorted", "reverse", "all-equal", "few-distinct", "zipf", "narrow"};

static fb_type value_sort_type;
static int value_sort_cmp(const void *a, const void *b) { return value_cmp(value_sort_type, a, b); }


static fbt_col make_col(fb_type t, int64_t n, pattern p, int with_nulls)
{
    fbt_col b;
    size_t w = fb_type_width(t);
    int64_t off = (int64_t)(fbt_next(&rng) % 13);
    b.data = malloc((size_t)(n + off + 1) * w);
    char *d = b.data;
    enum { POOL = 1000 };
    char pool[POOL * 8];
    int pool_n = p == P_EQUAL ? 1 : p == P_FEW ? 5 : POOL;
    for (int i = 0; i < pool_n; i++)
        random_value(t, pool + i * w);
    for (int64_t i = 0; i < n + off; i++) {
        switch (p) {
        case P_EQUAL:
        case P_FEW: memcpy(d + i * w, pool + (fbt_next(&rng) % (uint64_t)pool_n) * w, w); break;
        case P_ZIPF: {
            /* density ~ 1/x over the pool: Zipf with s = 1 */
            double u = (double)(fbt_next(&rng) >> 11) / 9007199254740992.0;
            int idx = (int)exp(u * log((double)POOL + 1)) - 1;
            memcpy(d + i * w, pool + (idx < POOL ? idx : POOL - 1) * w, w);
            break;
        }
        case P_NARROW: {
            uint64_t u = fbt_next(&rng) & 0xFFFFFF;
            if (t == FB_TYPE_FLOAT32 || t == FB_TYPE_FLOAT64)
                random_value(t, d + i * w);
            else
                memcpy(d + i * w, &u, w);
            break;
        }
        default: random_value(t, d + i * w);
        }
    }
    if (p == P_SORTED || p == P_REVERSE) {
        value_sort_type = t;
        qsort(d + off * w, (size_t)n, w, value_sort_cmp);
        if (p == P_REVERSE)
            for (int64_t i = 0, j = n - 1; i < j; i++, j--) {
                char tmp[8];
                memcpy(tmp, d + (off + i) * w, w);
                memcpy(d + (off + i) * w, d + (off + j) * w, w);
                memcpy(d + (off + j) * w, tmp, w);
            }
    }
    b.valid = NULL;
    if (with_nulls)
        b.valid = fbt_random_validity(&rng, n + off);
    b.col = fb_column_make(t, b.data, n, b.valid);
    b.col.offset = off;
    return b;
}


/* ---- variants ------------------------------------------------------------------------------------ */

static fb_ctx *variants[FB_ISA_COUNT + 1];
static int n_variants;

static int setup_variants(void **state)
{
    (void)state;
    rng = fbt_seed();
    n_variants = fbt_open_variants(variants);
    if (n_variants < 0)
        return -1;
    /* one more context of the best variant with 3 threads: parallel sorts with more workers than cores */
    fb_options *o = NULL;
    fb_status st = fb_options_create(&o);
    if (st == FB_OK)
        st = fb_options_set_threads(o, 3);
    if (st == FB_OK)
        st = fb_ctx_create(o, &variants[n_variants]);
    fb_options_destroy(o);
    if (st != FB_OK)
        return -1;
    n_variants++;
    return 0;
}

static int teardown_variants(void **state)
{
    (void)state;
    fbt_close_variants(variants, n_variants);
    n_variants = 0;
    return 0;
}

/* ---- checks -------------------------------------------------------------------------------------- */

static void describe(char *buf, size_t size, const fb_sort_key *keys, size_t n_keys, int64_t n, const char *what)
{
    int len = snprintf(buf, size, "%s n=%lld keys:", what, (long long)n);
    for (size_t k = 0; k < n_keys && len > 0 && (size_t)len < size; k++)
        len += snprintf(buf + len, size - (size_t)len, " %s%s%s%s", fb_type_name(keys[k].column.type),
                        keys[k].descending ? " desc" : " asc", keys[k].column.validity ? " nulls" : "",
                        keys[k].column.validity ? (keys[k].nulls_first ? "-first" : "-last") : "");
}

/* Checks fb_sort_permutation and fb_sort_top_n (for several n) of every variant against the oracle. */
static void check_sort(const fb_sort_key *keys, size_t n_keys, int64_t n, const char *what)
{
    char desc[512];
    describe(desc, sizeof desc, keys, n_keys, n, what);
    uint32_t *expect = oracle_perm(keys, n_keys, n);
    uint32_t *got = malloc((size_t)(n + 8) * 4);
    const int64_t tops_small[] = {0, 1, 7, 100, n / 16, n / 2, n - 1, n, n + 5};
    const int64_t tops_large[] = {0, 1, 100, n / 16, n / 2, n + 5}; /* each path once; big sorts are slow */
    const int64_t *tops = n > 100000 ? tops_large : tops_small;
    size_t n_tops = n > 100000 ? sizeof tops_large / sizeof tops_large[0] : sizeof tops_small / sizeof tops_small[0];
    for (int v = 0; v < n_variants; v++) {
        /* large inputs: the scalar variant, the best one and the 3-thread context (the middle variants
         * run every path on the smaller inputs), so that the suite stays within its time under ASan */
        if (n > 100000 && v > 0 && v < n_variants - 2)
            continue;
        fb_ctx *ctx = variants[v];
        const char *isa = fb_isa_name(fb_ctx_isa(ctx));
        memset(got, 0xAB, (size_t)(n + 8) * 4);
        assert_fb_ok(ctx, fb_sort_permutation(ctx, keys, n_keys, got, n));
        for (int64_t j = 0; j < n; j++)
            if (got[j] != expect[j])
                fail_msg("%s variant %s: position %lld holds row %u, expected %u", desc, isa, (long long)j, got[j],
                         expect[j]);
        assert_int_equal(got[n], 0xABABABABu);
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
        memset(got, 0xAB, (size_t)(n + 8) * 4);
        assert_fb_ok(ctx, fb_sort_permutation_parallel(ctx, keys, n_keys, got, n));
        for (int64_t j = 0; j < n; j++)
            if (got[j] != expect[j])
                fail_msg("%s variant %s parallel (%d threads): position %lld holds row %u, expected %u", desc, isa,
                         fb_ctx_threads(ctx), (long long)j, got[j], expect[j]);
        assert_int_equal(got[n], 0xABABABABu);
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
        for (size_t t = 0; t < n_tops; t++) {
            int64_t want = tops[t];
            if (want < 0)
                continue;
            int64_t m = want < n ? want : n, n_out = -1;
            memset(got, 0xAB, (size_t)(n + 8) * 4);
            assert_fb_ok(ctx, fb_sort_top_n(ctx, keys, n_keys, want, got, m, &n_out));
            assert_int_equal(n_out, m);
            for (int64_t j = 0; j < m; j++)
                if (got[j] != expect[j])
                    fail_msg("%s variant %s top %lld: position %lld holds row %u, expected %u", desc, isa,
                             (long long)want, (long long)j, got[j], expect[j]);
            assert_int_equal(got[m], 0xABABABABu);
            assert_int_equal(fb_ctx_memory_used(ctx), 0);
            n_out = -1;
            memset(got, 0xAB, (size_t)(n + 8) * 4);
            assert_fb_ok(ctx, fb_sort_top_n_parallel(ctx, keys, n_keys, want, got, m, &n_out));
            assert_int_equal(n_out, m);
            for (int64_t j = 0; j < m; j++)
                if (got[j] != expect[j])
                    fail_msg("%s variant %s parallel top %lld: position %lld holds row %u, expected %u", desc, isa,
                             (long long)want, (long long)j, got[j], expect[j]);
            assert_int_equal(got[m], 0xABABABABu);
            assert_int_equal(fb_ctx_memory_used(ctx), 0);
        }
    }
    free(got);
    free(expect);
}

/* ---- tests --------------------------------------------------------------------------------------- */

static const int64_t small_sizes[] = {0, 1, 2, 31, 1000};
#define N_SMALL (sizeof small_sizes / sizeof small_sizes[0])

static void test_single_key(void **state)
{
    (void)state;
    for (size_t ti = 0; ti < N_TYPES; ti++)
        for (int p = 0; p < P_COUNT; p++)
            for (size_t si = 0; si < N_SMALL; si++)
                for (int flags = 0; flags < 8; flags++) {
                    int64_t n = small_sizes[si];
                    fbt_col c = make_col(all_types[ti], n, (pattern)p, flags & 4);
                    fb_sort_key key = {c.col, flags & 1, (flags >> 1) & 1};
                    check_sort(&key, 1, n, pattern_names[p]);
                    fbt_col_free(&c);
                }
}

static void test_multi_key(void **state)
{
    (void)state;
    const int64_t sizes[] = {0, 1, 2, 31, 1000, 4099};
    for (int round = 0; round < 60; round++) {
        size_t n_keys = 2 + (size_t)(fbt_next(&rng) % 3);
        int64_t n = sizes[round % (sizeof sizes / sizeof sizes[0])];
        fbt_col cols[4];
        fb_sort_key keys[4];
        for (size_t k = 0; k < n_keys; k++) {
            fb_type t = all_types[fbt_next(&rng) % N_TYPES];
            /* few distinct values in the leading keys so that later keys decide */
            pattern p = k + 1 < n_keys ? ((fbt_next(&rng) & 1) ? P_FEW : P_ZIPF) : (pattern)(fbt_next(&rng) % P_COUNT);
            uint64_t f = fbt_next(&rng);
            cols[k] = make_col(t, n, p, (int)(f & 1));
            keys[k] = (fb_sort_key){cols[k].col, (int)((f >> 1) & 1), (int)((f >> 2) & 1)};
        }
        check_sort(keys, n_keys, n, "multi");
        for (size_t k = 0; k < n_keys; k++)
            fbt_col_free(&cols[k]);
    }
}

/* FB_SORT_MAX_KEYS keys of mixed width: records of many words, digits across word borders. */
static void test_many_keys(void **state)
{
    (void)state;
    int64_t n = 3000;
    fbt_col cols[FB_SORT_MAX_KEYS];
    fb_sort_key keys[FB_SORT_MAX_KEYS];
    for (size_t k = 0; k < FB_SORT_MAX_KEYS; k++) {
        fb_type t = all_types[(k * 7) % N_TYPES];
        cols[k] = make_col(t, n, k + 1 < FB_SORT_MAX_KEYS ? P_EQUAL : P_FEW, (int)(k % 3 == 0));
        keys[k] = (fb_sort_key){cols[k].col, (int)(k & 1), (int)((k >> 1) & 1)};
    }
    check_sort(keys, FB_SORT_MAX_KEYS, n, "max-keys equal");
    for (size_t k = 0; k < FB_SORT_MAX_KEYS; k++) {
        fbt_col_free(&cols[k]);
        cols[k] = make_col(all_types[(k * 5) % N_TYPES], n, k < 3 ? P_FEW : P_RANDOM, (int)(k % 4 == 0));
        keys[k].column = cols[k].col;
    }
    check_sort(keys, FB_SORT_MAX_KEYS, n, "max-keys few");
    for (size_t k = 0; k < FB_SORT_MAX_KEYS; k++)
        fbt_col_free(&cols[k]);
}

static void test_large(void **state)
{
    (void)state;
    int64_t n = fbt_size((1 << 20) + 7);
    struct {
        fb_type t;
        pattern p;
        int nulls, desc, nulls_first;
    } one[] = {
        {FB_TYPE_INT32, P_RANDOM, 1, 0, 0},  {FB_TYPE_INT64, P_ZIPF, 1, 1, 1},   {FB_TYPE_FLOAT64, P_RANDOM, 0, 0, 0},
        {FB_TYPE_FLOAT32, P_REVERSE, 1, 1, 0}, {FB_TYPE_UINT16, P_FEW, 0, 1, 0}, {FB_TYPE_UINT64, P_SORTED, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
        fbt_col c = make_col(one[i].t, n, one[i].p, one[i].nulls);
        fb_sort_key key = {c.col, one[i].desc, one[i].nulls_first};
        check_sort(&key, 1, n, pattern_names[one[i].p]);
        fbt_col_free(&c);
    }
    fbt_col a = make_col(FB_TYPE_INT32, n, P_FEW, 1), b = make_col(FB_TYPE_FLOAT32, n, P_ZIPF, 1),
           c = make_col(FB_TYPE_INT64, n, P_RANDOM, 0);
    fb_sort_key keys[3] = {{a.col, 0, 1}, {b.col, 1, 0}, {c.col, 0, 0}};
    check_sort(keys, 3, n, "multi");
    fbt_col_free(&a);
    fbt_col_free(&b);
    fbt_col_free(&c);
}

/* The documented float order, spelled out; -0.0 and 0.0 (and the NaNs) keep their input order. */
static void test_float_order(void **state)
{
    (void)state;
    uint64_t nan_neg = 0xFFF8000000000123ull, nan_pos = 0x7FF0000000000001ull;
    double v[10];
    v[0] = 1.0;
    memcpy(&v[1], &nan_neg, 8);
    v[2] = -0.0;
    v[3] = -INFINITY;
    v[4] = 0.0;
    memcpy(&v[5], &nan_pos, 8);
    v[6] = INFINITY;
    v[7] = -1.0;
    v[8] = -0.0;
    v[9] = 1e-40; /* a denormal in float32 too */
    const uint32_t asc[] = {3, 7, 2, 4, 8, 9, 0, 6, 1, 5};
    const uint32_t desc[] = {1, 5, 6, 0, 9, 2, 4, 8, 7, 3};
    float f[10];
    for (int i = 0; i < 10; i++)
        f[i] = (float)v[i];
    for (int v_i = 0; v_i < n_variants; v_i++) {
        fb_ctx *ctx = variants[v_i];
        for (int w = 0; w < 2; w++) {
            fb_sort_key key = {fb_column_make(w ? FB_TYPE_FLOAT64 : FB_TYPE_FLOAT32, w ? (const void *)v : (const void *)f,
                                              10, NULL),
                               0, 0};
            uint32_t got[10];
            assert_fb_ok(ctx, fb_sort_permutation(ctx, &key, 1, got, 10));
            assert_memory_equal(got, asc, sizeof asc);
            key.descending = 1;
            assert_fb_ok(ctx, fb_sort_permutation(ctx, &key, 1, got, 10));
            assert_memory_equal(got, desc, sizeof desc);
        }
    }
}

static void test_sort_table(void **state)
{
    (void)state;
    const int64_t sizes[] = {0, 1, 31, 5000};
    const fb_type ptypes[] = {FB_TYPE_INT8, FB_TYPE_UINT16, FB_TYPE_FLOAT32, FB_TYPE_INT64};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int64_t n = sizes[si];
        fbt_col k0 = make_col(FB_TYPE_DATE32, n, P_FEW, 1), k1 = make_col(FB_TYPE_FLOAT64, n, P_RANDOM, 0);
        fb_sort_key keys[2] = {{k0.col, 1, 0}, {k1.col, 0, 1}};
        fbt_col pay[4];
        fb_column pcols[4];
        for (int j = 0; j < 4; j++) {
            pay[j] = make_col(ptypes[j], n, P_RANDOM, j & 1);
            pcols[j] = pay[j].col;
        }
        uint32_t *perm = oracle_perm(keys, 2, n);
        const fb_column *all[6] = {&keys[0].column, &keys[1].column, &pcols[0], &pcols[1], &pcols[2], &pcols[3]};
        for (int v = 0; v < n_variants; v++) {
            fb_ctx *ctx = variants[v];
            fb_column_out out[6];
            for (int i = 0; i < 6; i++) {
                size_t w = fb_type_width(all[i]->type);
                out[i] = (fb_column_out){all[i]->type, n, malloc((size_t)(n + 1) * w), malloc((size_t)(n + 8) / 8 + 1), -1, -1};
            }
          for (int par = 0; par < 2; par++) {
            if (par)
                assert_fb_ok(ctx, fb_sort_table_parallel(ctx, keys, 2, pcols, 4, out));
            else
                assert_fb_ok(ctx, fb_sort_table(ctx, keys, 2, pcols, 4, out));
            for (int i = 0; i < 6; i++) {
                const fb_column *c = all[i];
                size_t w = fb_type_width(c->type);
                int64_t nulls = 0;
                assert_int_equal(out[i].length, n);
                for (int64_t j = 0; j < n; j++) {
                    int ok = row_valid(c, perm[j]);
                    int got_ok = (out[i].validity[j / 8] >> (j % 8)) & 1;
                    nulls += !ok;
                    if (ok != got_ok || (ok && memcmp((char *)out[i].data + j * w, row_ptr(c, perm[j]), w) != 0))
                        fail_msg("sort_table variant %s n=%lld column %d row %lld differs",
                                 fb_isa_name(fb_ctx_isa(ctx)), (long long)n, i, (long long)j);
                }
                assert_int_equal(out[i].null_count, nulls);
            }
            assert_int_equal(fb_ctx_memory_used(ctx), 0);
          }
            for (int i = 0; i < 6; i++) {
                free(out[i].data);
                free(out[i].validity);
            }
        }
        free(perm);
        fbt_col_free(&k0);
        fbt_col_free(&k1);
        for (int j = 0; j < 4; j++)
            fbt_col_free(&pay[j]);
    }
}

/* fb_sort_table with one key without nulls and at most one payload of up to 4 bytes, or one 64-bit
 * integer key alone (the 8-byte record path), serial and parallel, every variant, against the oracle;
 * floats and validity bitmaps (which take the general path) too, for contrast. */
static void check_table_one(fb_type kt, pattern p, int desc, int with_pay, fb_type pt, int64_t n)
{
    fbt_col k = make_col(kt, n, p, 0), pay = make_col(pt, n, P_RANDOM, 0);
    fb_sort_key key = {k.col, desc, 0};
    uint32_t *perm = oracle_perm(&key, 1, n);
    size_t kw = fb_type_width(kt), pw = fb_type_width(pt);
    for (int v = 0; v < n_variants; v++) {
        fb_ctx *ctx = variants[v];
        for (int par = 0; par < 2; par++) {
            /* the key output one value past malloc's alignment: output columns need not be aligned */
            char *kbuf = malloc((size_t)(n + 2) * kw);
            fb_column_out out[2] = {{kt, n, kbuf + kw, NULL, -1, -1}, {pt, n, malloc((size_t)(n + 1) * pw), NULL, -1, -1}};
            if (par)
                assert_fb_ok(ctx, fb_sort_table_parallel(ctx, &key, 1, &pay.col, with_pay ? 1 : 0, out));
            else
                assert_fb_ok(ctx, fb_sort_table(ctx, &key, 1, &pay.col, with_pay ? 1 : 0, out));
            assert_int_equal(out[0].length, n);
            assert_int_equal(out[0].null_count, 0);
            for (int64_t j = 0; j < n; j++) {
                if (memcmp((char *)out[0].data + j * kw, row_ptr(&k.col, perm[j]), kw) != 0 ||
                    (with_pay && memcmp((char *)out[1].data + j * pw, row_ptr(&pay.col, perm[j]), pw) != 0))
                    fail_msg("sort_table %s %s %s payload %s n=%lld variant %s%s: row %lld differs", fb_type_name(kt),
                             pattern_names[p], desc ? "desc" : "asc", with_pay ? fb_type_name(pt) : "none",
                             (long long)n, fb_isa_name(fb_ctx_isa(ctx)), par ? " parallel" : "", (long long)j);
            }
            if (with_pay)
                assert_int_equal(out[1].length, n);
            free(kbuf);
            free(out[1].data);
            assert_int_equal(fb_ctx_memory_used(ctx), 0);
        }
    }
    free(perm);
    fbt_col_free(&k);
    fbt_col_free(&pay);
}

static void test_sort_table_records(void **state)
{
    (void)state;
    const int64_t sizes[] = {0, 1, 2, 31, 1000, 40000, 300007};
    const fb_type narrow[] = {FB_TYPE_INT8, FB_TYPE_UINT16, FB_TYPE_INT32, FB_TYPE_UINT32, FB_TYPE_DATE32, FB_TYPE_FLOAT32};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int p = 0; p < P_COUNT; p++) {
            int64_t n = fbt_size(sizes[si]);
            if (n > 1000 && p != P_RANDOM && p != P_FEW && p != P_ZIPF && p != P_NARROW)
                continue;
            uint64_t r = fbt_next(&rng);
            fb_type kt = narrow[r % (sizeof narrow / sizeof narrow[0])];
            fb_type pt = narrow[(r >> 8) % (sizeof narrow / sizeof narrow[0])];
            check_table_one(kt, (pattern)p, (int)((r >> 16) & 1), 1, pt, n);
            check_table_one(FB_TYPE_INT32, (pattern)p, (int)((r >> 17) & 1), 1, FB_TYPE_INT32, n);
            check_table_one((r >> 18) & 1 ? FB_TYPE_INT64 : FB_TYPE_UINT64, (pattern)p, (int)((r >> 19) & 1), 0,
                            FB_TYPE_INT8, n);
            check_table_one(FB_TYPE_INT64, (pattern)p, 0, 1, FB_TYPE_INT32, n > 1000 ? 1000 : n); /* general path */
        }
}

static void test_bad_input(void **state)
{
    (void)state;
    fb_ctx *ctx = variants[0];
    int32_t a[8] = {3, 1, 2, 0, 5, 4, 7, 6};
    int64_t b[7] = {0};
    uint32_t ids[8];
    int64_t n_out;
    fb_sort_key key = {fb_column_make(FB_TYPE_INT32, a, 8, NULL), 0, 0};
    fb_sort_key two[2] = {key, {fb_column_make(FB_TYPE_INT64, b, 7, NULL), 0, 0}};
    fb_sort_key many[FB_SORT_MAX_KEYS + 1];
    for (size_t k = 0; k <= FB_SORT_MAX_KEYS; k++)
        many[k] = key;

    assert_int_equal(fb_sort_permutation(NULL, &key, 1, ids, 8), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_sort_permutation(ctx, NULL, 1, ids, 8), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_sort_permutation(ctx, &key, 0, ids, 8), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_sort_permutation(ctx, many, FB_SORT_MAX_KEYS + 1, ids, 8), FB_ERR_INVALID_ARG);
    assert_fb_ok(ctx, fb_sort_permutation(ctx, many, FB_SORT_MAX_KEYS, ids, 8));
    assert_fb_status(ctx, fb_sort_permutation(ctx, &key, 1, NULL, 8), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_sort_permutation(ctx, &key, 1, ids, 7), FB_ERR_CAPACITY);
    assert_fb_status(ctx, fb_sort_permutation(ctx, two, 2, ids, 8), FB_ERR_LENGTH_MISMATCH);
    fb_sort_key bad = key;
    bad.column.type = FB_TYPE_INVALID;
    assert_fb_status(ctx, fb_sort_permutation(ctx, &bad, 1, ids, 8), FB_ERR_UNSUPPORTED_TYPE);
    bad.column.type = (fb_type)99;
    assert_fb_status(ctx, fb_sort_permutation(ctx, &bad, 1, ids, 8), FB_ERR_UNSUPPORTED_TYPE);
    bad = key;
    bad.column.data = NULL;
    assert_fb_status(ctx, fb_sort_permutation(ctx, &bad, 1, ids, 8), FB_ERR_INVALID_ARG);
    bad = key;
    bad.column.length = -1;
    assert_fb_status(ctx, fb_sort_permutation(ctx, &bad, 1, ids, 8), FB_ERR_INVALID_ARG);
    bad = key;
    bad.column.length = FB_MORSEL_MAX_ROWS + 1;
    assert_fb_status(ctx, fb_sort_permutation(ctx, &bad, 1, ids, INT64_MAX), FB_ERR_INVALID_ARG);
    bad = key;
    bad.column.length = 0;
    bad.column.data = NULL;
    assert_fb_ok(ctx, fb_sort_permutation(ctx, &bad, 1, NULL, 0));

    assert_int_equal(fb_sort_permutation_parallel(NULL, &key, 1, ids, 8), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_sort_permutation_parallel(ctx, &key, 1, ids, 7), FB_ERR_CAPACITY);
    assert_fb_status(ctx, fb_sort_permutation_parallel(ctx, two, 2, ids, 8), FB_ERR_LENGTH_MISMATCH);
    assert_int_equal(fb_sort_top_n_parallel(NULL, &key, 1, 3, ids, 8, &n_out), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_sort_top_n_parallel(ctx, &key, 1, -1, ids, 8, &n_out), FB_ERR_INVALID_ARG);
    assert_int_equal(fb_sort_table_parallel(NULL, &key, 1, NULL, 0, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_sort_table_parallel(ctx, &key, 1, NULL, 0, NULL), FB_ERR_INVALID_ARG);
    assert_int_equal(fb_sort_top_n(NULL, &key, 1, 3, ids, 8, &n_out), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_sort_top_n(ctx, &key, 1, -1, ids, 8, &n_out), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_sort_top_n(ctx, &key, 1, 3, ids, 8, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_sort_top_n(ctx, &key, 1, 3, NULL, 8, &n_out), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_sort_top_n(ctx, &key, 1, 3, ids, 2, &n_out), FB_ERR_CAPACITY);
    assert_fb_status(ctx, fb_sort_top_n(ctx, two, 2, 3, ids, 8, &n_out), FB_ERR_LENGTH_MISMATCH);
    assert_fb_status(ctx, fb_sort_top_n(ctx, &key, 0, 3, ids, 8, &n_out), FB_ERR_INVALID_ARG);
    assert_fb_ok(ctx, fb_sort_top_n(ctx, &key, 1, 100, ids, 8, &n_out));
    assert_int_equal(n_out, 8);

    int32_t o32[8];
    int64_t o64[8];
    uint8_t ov[2];
    fb_column_out out[2] = {{FB_TYPE_INT32, 8, o32, NULL, 5, 5}, {FB_TYPE_INT64, 8, o64, NULL, 5, 5}};
    fb_column pay = fb_column_make(FB_TYPE_INT64, b, 8, NULL);
    int64_t b8[8] = {0};
    pay.data = b8;
    assert_int_equal(fb_sort_table(NULL, &key, 1, &pay, 1, out), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_sort_table(ctx, &key, 1, &pay, 1, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_sort_table(ctx, &key, 1, NULL, 1, out), FB_ERR_INVALID_ARG);
    assert_int_equal(out[0].length, 0);
    pay.length = 7;
    assert_fb_status(ctx, fb_sort_table(ctx, &key, 1, &pay, 1, out), FB_ERR_LENGTH_MISMATCH);
    pay.length = 8;
    out[1].type = FB_TYPE_UINT64;
    assert_fb_status(ctx, fb_sort_table(ctx, &key, 1, &pay, 1, out), FB_ERR_UNSUPPORTED_TYPE);
    out[1].type = FB_TYPE_INT64;
    out[1].capacity = 7;
    assert_fb_status(ctx, fb_sort_table(ctx, &key, 1, &pay, 1, out), FB_ERR_CAPACITY);
    out[1].capacity = 8;
    uint8_t valid = 0xFF;
    pay.validity = &valid;
    assert_fb_status(ctx, fb_sort_table(ctx, &key, 1, &pay, 1, out), FB_ERR_INVALID_ARG); /* needs out validity */
    assert_int_equal(out[0].length, 0);
    out[1].validity = ov;
    assert_fb_ok(ctx, fb_sort_table(ctx, &key, 1, &pay, 1, out));
    assert_int_equal(out[0].length, 8);
    assert_int_equal(out[1].length, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(o32[i], i);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
}

/* Past the memory limit a sort fails with FB_ERR_OUT_OF_MEMORY and gives every byte back. */
static void test_memory_limit(void **state)
{
    (void)state;
    int64_t n = 100000;
    fbt_col c = make_col(FB_TYPE_INT64, n, P_RANDOM, 1);
    fb_sort_key key = {c.col, 0, 0};
    uint32_t *ids = malloc((size_t)n * 4);
    const size_t limits[] = {1000, 1u << 20, 2u << 20, 3u << 20};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        fb_options *o;
        fb_ctx *ctx;
        assert_int_equal(fb_options_create(&o), FB_OK);
        assert_int_equal(fb_options_set_memory_limit(o, limits[i]), FB_OK);
        assert_int_equal(fb_ctx_create(o, &ctx), FB_OK);
        fb_options_destroy(o);
        assert_fb_status(ctx, fb_sort_permutation(ctx, &key, 1, ids, n), FB_ERR_OUT_OF_MEMORY);
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
        assert_fb_status(ctx, fb_sort_permutation_parallel(ctx, &key, 1, ids, n), FB_ERR_OUT_OF_MEMORY);
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
        int64_t n_out = -1;
        fb_status st = fb_sort_top_n(ctx, &key, 1, n / 2, ids, n, &n_out);
        assert_int_equal(st, FB_ERR_OUT_OF_MEMORY);
        assert_int_equal(n_out, -1);
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
        /* a small top-N needs only its heap and one chunk */
        st = fb_sort_top_n(ctx, &key, 1, 10, ids, n, &n_out);
        assert_int_equal(st, limits[i] < 40000 ? FB_ERR_OUT_OF_MEMORY : FB_OK);
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
        fb_ctx_destroy(ctx);
    }
    free(ids);
    fbt_col_free(&c);
}

/* ---- DuckDB ----------------------------------------------------------------------------------------- */

static void write_arr(const char *dir, const char *name, const char *part, const char *col, const char *ty,
                      const void *p, size_t bytes)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s_%s_%s.%s", dir, name, part, col, ty);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, bytes, f), bytes);
    fclose(f);
}

/* S1..S4-shaped data sets, sorted by fb's parallel sorts (3 workers), written for sort_duckdb_check.py. */
static void duckdb_datasets(const char *dir)
{
    fb_ctx *ctx = variants[n_variants - 1];
    int64_t n = 300000;
    /* s1: int32 keys with many ties, payload = row number */
    int32_t *k = malloc((size_t)n * 4), *v = malloc((size_t)n * 4), *ko = malloc((size_t)n * 4),
            *vo = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) {
        k[i] = (int32_t)(fbt_next(&rng) % 50000) - 25000;
        v[i] = (int32_t)i;
    }
    k[7] = INT32_MIN;
    k[8] = INT32_MAX;
    fb_sort_key key = {fb_column_make(FB_TYPE_INT32, k, n, NULL), 0, 0};
    fb_column pay = fb_column_make(FB_TYPE_INT32, v, n, NULL);
    fb_column_out out[4] = {{FB_TYPE_INT32, n, ko, NULL, 0, 0}, {FB_TYPE_INT32, n, vo, NULL, 0, 0}};
    assert_fb_ok(ctx, fb_sort_table_parallel(ctx, &key, 1, &pay, 1, out));
    write_arr(dir, "s1", "in", "k", "i32", k, (size_t)n * 4);
    write_arr(dir, "s1", "in", "v", "i32", v, (size_t)n * 4);
    write_arr(dir, "s1", "out", "k", "i32", ko, (size_t)n * 4);
    write_arr(dir, "s1", "out", "v", "i32", vo, (size_t)n * 4);
    /* s2: int64 over the full range, some repeated */
    int64_t *k64 = malloc((size_t)n * 8), *k64o = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++)
        k64[i] = i % 10 == 0 ? (int64_t)(fbt_next(&rng) % 100) : (int64_t)fbt_next(&rng);
    k64[3] = INT64_MIN;
    k64[4] = INT64_MAX;
    fb_sort_key key64 = {fb_column_make(FB_TYPE_INT64, k64, n, NULL), 0, 0};
    out[0] = (fb_column_out){FB_TYPE_INT64, n, k64o, NULL, 0, 0};
    assert_fb_ok(ctx, fb_sort_table_parallel(ctx, &key64, 1, NULL, 0, out));
    write_arr(dir, "s2", "in", "k", "i64", k64, (size_t)n * 8);
    write_arr(dir, "s2", "out", "k", "i64", k64o, (size_t)n * 8);
    /* s3: a int32 (1000 values) asc, b int64 (few values, so that c decides) desc, c float64 asc nulls last */
    int32_t pool[1000];
    for (int i = 0; i < 1000; i++)
        pool[i] = (int32_t)(fbt_next(&rng) >> 33) - (1 << 30);
    int64_t *b = malloc((size_t)n * 8), *bo = malloc((size_t)n * 8);
    double *c = malloc((size_t)n * 8), *co = malloc((size_t)n * 8);
    uint8_t *cbits = calloc((size_t)n / 8 + 1, 1), *cob = calloc((size_t)n / 8 + 1, 1), *cv = malloc((size_t)n),
            *cov = malloc((size_t)n);
    int32_t *a = malloc((size_t)n * 4), *ao = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) {
        a[i] = pool[fbt_next(&rng) % 1000];
        b[i] = ((int64_t)(fbt_next(&rng) % 5) - 2) * (INT64_MAX / 3);
        fbt_random_value(&rng, FB_TYPE_FLOAT64, &c[i]);
        cv[i] = fbt_next(&rng) % 10 != 0;
        cbits[i / 8] |= (uint8_t)(cv[i] << (i % 8));
    }
    fb_sort_key k3[3] = {{fb_column_make(FB_TYPE_INT32, a, n, NULL), 0, 0},
                         {fb_column_make(FB_TYPE_INT64, b, n, NULL), 1, 0},
                         {fb_column_make(FB_TYPE_FLOAT64, c, n, cbits), 0, 0}};
    out[0] = (fb_column_out){FB_TYPE_INT32, n, ao, NULL, 0, 0};
    out[1] = (fb_column_out){FB_TYPE_INT64, n, bo, NULL, 0, 0};
    out[2] = (fb_column_out){FB_TYPE_FLOAT64, n, co, cob, 0, 0};
    out[3] = (fb_column_out){FB_TYPE_INT32, n, vo, NULL, 0, 0};
    assert_fb_ok(ctx, fb_sort_table_parallel(ctx, k3, 3, &pay, 1, out));
    for (int64_t i = 0; i < n; i++)
        cov[i] = (cob[i / 8] >> (i % 8)) & 1;
    write_arr(dir, "s3", "in", "a", "i32", a, (size_t)n * 4);
    write_arr(dir, "s3", "in", "b", "i64", b, (size_t)n * 8);
    write_arr(dir, "s3", "in", "c", "f64", c, (size_t)n * 8);
    write_arr(dir, "s3", "in", "cvalid", "u8", cv, (size_t)n);
    write_arr(dir, "s3", "in", "r", "i32", v, (size_t)n * 4);
    write_arr(dir, "s3", "out", "a", "i32", ao, (size_t)n * 4);
    write_arr(dir, "s3", "out", "b", "i64", bo, (size_t)n * 8);
    write_arr(dir, "s3", "out", "c", "f64", co, (size_t)n * 8);
    write_arr(dir, "s3", "out", "cvalid", "u8", cov, (size_t)n);
    write_arr(dir, "s3", "out", "r", "i32", vo, (size_t)n * 4);
    /* s4: top 100 by k desc of 600000 int32 keys with many ties (the parallel top-N path) */
    int64_t n4 = 600000;
    int32_t *k4 = malloc((size_t)n4 * 4);
    for (int64_t i = 0; i < n4; i++)
        k4[i] = (int32_t)(fbt_next(&rng) % 3000);
    fb_sort_key key4 = {fb_column_make(FB_TYPE_INT32, k4, n4, NULL), 1, 0};
    uint32_t ids[100];
    int64_t got = 0;
    assert_fb_ok(ctx, fb_sort_top_n_parallel(ctx, &key4, 1, 100, ids, 100, &got));
    assert_int_equal(got, 100);
    write_arr(dir, "s4", "in", "k", "i32", k4, (size_t)n4 * 4);
    write_arr(dir, "s4", "out", "r", "u32", ids, sizeof ids);
    fprintf(stderr, "[ duckdb   ] s1..s4 sorted by fb (variant %s, %d threads)\n", fb_isa_name(fb_ctx_isa(ctx)),
            fb_ctx_threads(ctx));
    free(k), free(v), free(ko), free(vo), free(k64), free(k64o), free(b), free(bo), free(c), free(co);
    free(cbits), free(cob), free(cv), free(cov), free(a), free(ao), free(k4);
}

static void test_duckdb(void **state)
{
    (void)state;
    if (fbt_small())
        skip();
#ifndef FB_SORT_DUCKDB_SCRIPT
    skip();
#else
    if (system("python3 -c 'import duckdb, numpy' >/dev/null 2>&1") != 0) {
        fprintf(stderr, "[ skipped  ] duckdb: python3 cannot import duckdb and numpy\n");
        skip();
    }
    char dir[] = "/tmp/fb_sort_duckdb_XXXXXX";
    assert_non_null(mkdtemp(dir));
    duckdb_datasets(dir);
    int rc = fbt_run_check_script(FB_SORT_DUCKDB_SCRIPT, dir);
    if (rc != 0)
        fail_msg("sort_duckdb_check.py reported a difference (exit status %d)", rc);
#endif
}

/* ---- the small-run kernels: sorting networks and merges (every ISA variant) ----------------------- */

/* The record kernels of every variant this CPU runs. */
static int record_kernels(const fb_sort_kernels **k)
{
    int n = 0;
    k[n++] = &fb_sort_kernels_scalar;
    if (fb_isa_supported(FB_ISA_BASE))
        k[n++] = &fb_sort_kernels_base;
#if defined(__x86_64__) || defined(__i386__)
    if (fb_isa_supported(FB_ISA_AVX2))
        k[n++] = &fb_sort_kernels_avx2;
    if (fb_isa_supported(FB_ISA_AVX512))
        k[n++] = &fb_sort_kernels_avx512;
#endif
    return n;
}

/* records of the small-run tests: (key bits [lo, 64), original position) ordered as qsort sees them */
static int rec_lo;
static int rec_pos_cmp(const void *pa, const void *pb)
{
    const uint64_t *a = pa, *b = pb; /* [0] record, [1] position */
    uint64_t ka = rec_lo ? a[0] >> rec_lo : a[0], kb = rec_lo ? b[0] >> rec_lo : b[0];
    if (ka != kb)
        return ka < kb ? -1 : 1;
    return a[1] < b[1] ? -1 : a[1] > b[1];
}

static int u64_cmp(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return a < b ? -1 : a > b;
}

/* n records of a shape: random, sorted, reverse-sorted, all-equal, few-distinct keys, extremes only;
 * for lo = 32 the low halves are random (a payload: equal keys must keep their order) */
static void small_records(uint64_t *x, int64_t n, int shape, int lo)
{
    static const uint64_t ext[] = {0, 1, ~0ull, 0x8000000000000000ull, 0x7FFFFFFFFFFFFFFFull, 0xFFFFFFFF00000000ull,
                                   0x00000000FFFFFFFFull};
    uint64_t base = fbt_next(&rng);
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = fbt_next(&rng);
        switch (shape) {
        case 0: x[i] = r; break;
        case 1: x[i] = base + (uint64_t)i * (r % 3 + 1) * (lo ? 1ull << 32 : 1); break;
        case 2: x[i] = ~0ull - (uint64_t)i * (lo ? 1ull << 32 : 1); break;
        case 3: x[i] = base; break;
        case 4: x[i] = (base + (r % 3)) << (lo ? 32 : 0); break;
        default: x[i] = ext[r % (sizeof ext / sizeof ext[0])]; break;
        }
        if (lo)
            x[i] = (x[i] & ~0xFFFFFFFFull) | (fbt_next(&rng) & 0xFFFFFFFFull);
    }
}

static void test_small_run_kernels(void **state)
{
    (void)state;
    const fb_sort_kernels *ks[FB_ISA_COUNT];
    int nk = record_kernels(ks);
    uint64_t x[FB_RS_NET + 1], y[FB_RS_NET + 1], ref[2 * FB_RS_NET];
    for (int ki = 0; ki < nk; ki++)
        for (int lo = 0; lo <= 32; lo += 32)
            for (int shape = 0; shape < 6; shape++)
                for (int64_t n = 0; n <= FB_RS_NET; n++)
                    for (int rep = 0; rep < 3; rep++) {
                        small_records(x, n, shape, lo);
                        for (int64_t i = 0; i < n; i++) {
                            ref[2 * i] = x[i];
                            ref[2 * i + 1] = (uint64_t)i;
                        }
                        rec_lo = lo;
                        qsort(ref, (size_t)n, 16, rec_pos_cmp);
                        y[n] = 0x5A5A5A5A5A5A5A5Aull; /* no write past n */
                        ks[ki]->rs_small(x, y, n, lo);
                        for (int64_t i = 0; i < n; i++)
                            if (y[i] != ref[2 * i])
                                fail_msg("rs_small %s n=%lld lo=%d shape %d: record %lld is %llx, qsort has %llx",
                                         fb_isa_name(ks[ki]->isa), (long long)n, lo, shape, (long long)i,
                                         (unsigned long long)y[i], (unsigned long long)ref[2 * i]);
                        assert_true(y[n] == 0x5A5A5A5A5A5A5A5Aull);
                    }
}

/* The bucket sort kernel (rs_sort) on runs around the sizes where it changes method: networks, two
 * networks and a merge (whole-record keys), MSD levels, two LSD passes. */
static void test_bucket_kernels(void **state)
{
    (void)state;
    const fb_sort_kernels *ks[FB_ISA_COUNT];
    int nk = record_kernels(ks);
    const int64_t sizes[] = {0, 1, 2, 31, 63, 64, 65, 96, 127, 128, 129, 255, 256, 257, 1000, 5003};
    uint64_t *x = malloc(5003 * 8), *a = malloc(5003 * 8), *t = malloc(5003 * 8), *ref = malloc(2 * 5003 * 8);
    for (int ki = 0; ki < nk; ki++)
        for (int lo = 0; lo <= 32; lo += 32)
            for (int shape = 0; shape < 6; shape++)
                for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                    int64_t n = sizes[si];
                    small_records(x, n, shape, lo);
                    if (shape == 0 && (si & 1)) /* keys that differ in few low bits: the LSD path */
                        for (int64_t i = 0; i < n; i++)
                            x[i] = lo ? (x[i] & 0x00FFFFFFFFFFFFFFull) | (0x5Aull << 56) : x[i] & 0xFFFFF;
                    for (int64_t i = 0; i < n; i++) {
                        ref[2 * i] = x[i];
                        ref[2 * i + 1] = (uint64_t)i;
                    }
                    rec_lo = lo;
                    qsort(ref, (size_t)n, 16, rec_pos_cmp);
                    memcpy(a, x, (size_t)n * 8);
                    const uint64_t *r = n ? ks[ki]->rs_sort(a, t, n, lo) : a;
                    for (int64_t i = 0; i < n; i++)
                        if (r[i] != ref[2 * i])
                            fail_msg("rs_sort %s n=%lld lo=%d shape %d: record %lld differs from qsort",
                                     fb_isa_name(ks[ki]->isa), (long long)n, lo, shape, (long long)i);
                }
    free(x);
    free(a);
    free(t);
    free(ref);
}

static void test_merge_kernels(void **state)
{
    (void)state;
    const fb_sort_kernels *ks[FB_ISA_COUNT];
    int nk = record_kernels(ks);
    const int64_t sizes[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 100, 1007};
    const int ns = (int)(sizeof sizes / sizeof sizes[0]);
    uint64_t *a = malloc(1008 * 8), *b = malloc(1008 * 8), *o = malloc(2017 * 8), *r = malloc(2016 * 8);
    for (int ki = 0; ki < nk; ki++)
        for (int ia = 0; ia < ns; ia++)
            for (int ib = 0; ib < ns; ib++)
                for (int shape = 0; shape < 6; shape++) {
                    int64_t na = sizes[ia], nb = sizes[ib];
                    small_records(a, na, shape, 0);
                    small_records(b, nb, (shape + ia) % 6, 0);
                    qsort(a, (size_t)na, 8, u64_cmp);
                    qsort(b, (size_t)nb, 8, u64_cmp);
                    memcpy(r, a, (size_t)na * 8);
                    memcpy(r + na, b, (size_t)nb * 8);
                    qsort(r, (size_t)(na + nb), 8, u64_cmp);
                    o[na + nb] = 0x5A5A5A5A5A5A5A5Aull;
                    ks[ki]->rs_merge(a, na, b, nb, o);
                    if (memcmp(o, r, (size_t)(na + nb) * 8) != 0)
                        fail_msg("rs_merge %s %lld + %lld records, shape %d: differs from qsort",
                                 fb_isa_name(ks[ki]->isa), (long long)na, (long long)nb, shape);
                    assert_true(o[na + nb] == 0x5A5A5A5A5A5A5A5Aull);
                }
    free(a);
    free(b);
    free(o);
    free(r);
}

/* ---- NUMA-local partitions (a synthetic two-node topology) ----------------------------------------- */

typedef struct numa_probe {
    fb_sort_runner inner;   /* the runtime's runner */
    int64_t placed_phases;  /* phases run with preferred nodes */
    int64_t tasks_on_node[2];
    int bad_order;          /* preferred nodes not in contiguous ascending groups */
} numa_probe;

static fb_status numa_probe_run(void *self, fb_ctx *ctx, int64_t n_tasks, fb_sort_task_fn task, void *arg,
                                const int *task_node)
{
    numa_probe *p = self;
    if (task_node) {
        p->placed_phases++;
        for (int64_t t = 0; t < n_tasks; t++) {
            assert_true(task_node[t] >= 0 && task_node[t] < 2);
            p->tasks_on_node[task_node[t]]++;
            if (t > 0 && task_node[t] < task_node[t - 1])
                p->bad_order = 1;
        }
    }
    return p->inner.run(p->inner.self, ctx, n_tasks, task, arg, task_node);
}

static void test_numa_partitions(void **state)
{
    (void)state;
    fb_options *o = NULL;
    fb_ctx *ctx = NULL;
    assert_int_equal(fb_options_create(&o), FB_OK);
    assert_int_equal(fb_options_set_topology(o, "pack:2 numa:1 l3:1(size=32MB) core:2 pu:1"), FB_OK);
    assert_int_equal(fb_options_set_threads(o, 4), FB_OK);
    assert_int_equal(fb_ctx_create(o, &ctx), FB_OK);
    fb_options_destroy(o);
    fb_sort_runner r;
    assert_int_equal(fb_sort_parallel_runner(ctx, &r), FB_OK);
    assert_int_equal(r.workers, 4);
    assert_int_equal(r.nodes, 2);
    int on[2] = {0, 0};
    for (int w = 0; w < r.workers; w++) {
        assert_true(r.node[w] == 0 || r.node[w] == 1);
        on[r.node[w]]++;
    }
    assert_true(on[0] > 0 && on[1] > 0);
    /* int32 keys (few distinct: ties) with their row number as payload, and int64 keys alone */
    const int64_t n = 300007;
    for (int wide = 0; wide <= 1; wide++) {
        int64_t node_bytes[2] = {0, 0};
        numa_probe probe = {.inner = r};
        fb_sort_runner pr = r;
        pr.run = numa_probe_run;
        pr.self = &probe;
        pr.node_bytes = node_bytes;
        int32_t *k32 = malloc((size_t)n * 4), *p32 = malloc((size_t)n * 4), *ok32 = malloc((size_t)n * 4),
                *op32 = malloc((size_t)n * 4);
        int64_t *k64 = malloc((size_t)n * 8), *ok64 = malloc((size_t)n * 8), *ref = malloc((size_t)n * 8);
        for (int64_t i = 0; i < n; i++) {
            uint64_t x = fbt_next(&rng);
            k32[i] = (int32_t)(x % 50000) - 25000;
            p32[i] = (int32_t)i;
            k64[i] = (int64_t)x;
            ref[i] = wide ? k64[i] : (int64_t)k32[i] * (1ll << 32) + i; /* key, then row: the stable order */
        }
        fb_sort_key key = {wide ? fb_column_make(FB_TYPE_INT64, k64, n, NULL) : fb_column_make(FB_TYPE_INT32, k32, n, NULL),
                           0, 0};
        fb_column pay = fb_column_make(FB_TYPE_INT32, p32, n, NULL);
        fb_column_out out[2] = {{.type = key.column.type, .capacity = n, .data = wide ? (void *)ok64 : (void *)ok32},
                                {.type = FB_TYPE_INT32, .capacity = n, .data = op32}};
        assert_int_equal(fb_sort_table_with(ctx, &key, 1, wide ? NULL : &pay, wide ? 0 : 1, out, &pr, "test"), FB_OK);
        value_sort_type = FB_TYPE_INT64;
        qsort(ref, (size_t)n, 8, value_sort_cmp);
        for (int64_t i = 0; i < n; i++) {
            if (wide)
                assert_true(ok64[i] == ref[i]);
            else
                assert_true(ok32[i] == (int32_t)(ref[i] >> 32) && op32[i] == (int32_t)(ref[i] & 0xFFFFFFFF));
        }
        /* every worker's scratch on its own node: both nodes got some; partitions went out in one group per
         * node, in order */
        assert_true(node_bytes[0] > 0 && node_bytes[1] > 0);
        assert_true(probe.placed_phases >= 1);
        assert_true(probe.tasks_on_node[0] > 0 && probe.tasks_on_node[1] > 0);
        assert_false(probe.bad_order);
        free(k32), free(p32), free(ok32), free(op32), free(k64), free(ok64), free(ref);
    }
    fb_sort_parallel_runner_free(ctx, &r);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    fb_ctx_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_key), cmocka_unit_test(test_multi_key),   cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_float_order), cmocka_unit_test(test_sort_table), cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_memory_limit), cmocka_unit_test(test_large), cmocka_unit_test(test_sort_table_records),
        cmocka_unit_test(test_duckdb), cmocka_unit_test(test_small_run_kernels), cmocka_unit_test(test_merge_kernels),
        cmocka_unit_test(test_bucket_kernels),
        cmocka_unit_test(test_numa_partitions),
    };
    return cmocka_run_group_tests(tests, setup_variants, teardown_variants);
}
