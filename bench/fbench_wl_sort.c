/* fbench_wl_sort.c - the S1..S4 workloads of `fbench run` (../shared/WORKLOADS.md), run with the
 * parallel sorts of fb_sort.h on the context's threads.
 *
 * Checks, independent of fb: for S1..S3 the run verifies its own output (split over threads, so that
 * the check costs little of the timed run): every adjacent pair in order (by a comparator written here),
 * ties in input order where the rows carry their row number (S1's v), and the output equal to the
 * input as a multiset (a sum of mixed row hashes, order-independent), which the reference computes
 * from the input; S4's reference keeps the top 100 in a plain array.
 *
 * Bound: S1..S3 move each row at least twice through memory (one out-of-cache partitioning pass and
 * the final pass: each reads and writes the row), held against the copy bandwidth; S4 reads the keys
 * once, against the read bandwidth. */
#include "fbench_run.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ROWS_64M (INT64_C(64) << 20)
#define ROWS_16M (INT64_C(16) << 20)
#define TOP_N 100

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct sort_data {
    int64_t rows;
    int wl; /* 1..4 */
    int32_t *k32, *v32;  /* S1, S4 (k32) */
    int64_t *k64;        /* S2 */
    int32_t *a;          /* S3 */
    int64_t *b;
    double *c;
    uint8_t *c_valid;    /* Arrow bitmap */
    /* outputs, written by each run */
    void *out[3];
    uint8_t *out_valid;
    size_t out_bytes[3];
} sort_data;

static void sort_destroy(void *data)
{
    sort_data *d = data;
    if (!d)
        return;
    size_t n = (size_t)d->rows;
    fbench_free_pages(d->k32, n * 4);
    fbench_free_pages(d->v32, n * 4);
    fbench_free_pages(d->k64, n * 8);
    fbench_free_pages(d->a, n * 4);
    fbench_free_pages(d->b, n * 8);
    fbench_free_pages(d->c, n * 8);
    fbench_free_pages(d->c_valid, (n + 7) / 8 + 8);
    fbench_free_pages(d->out_valid, (n + 7) / 8 + 8);
    for (int i = 0; i < 3; i++)
        fbench_free_pages(d->out[i], d->out_bytes[i]);
    free(d);
}

static void *sort_generate_wl(int64_t rows, uint64_t seed, int wl)
{
    sort_data *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->rows = rows;
    d->wl = wl;
    size_t n = (size_t)rows;
    int ok = 1;
    uint64_t s = seed;
    if (wl == 1 || wl == 4) {
        ok = (d->k32 = fbench_alloc_pages(n * 4)) != NULL;
        if (ok && wl == 1)
            ok = (d->v32 = fbench_alloc_pages(n * 4)) != NULL;
        for (size_t i = 0; ok && i < n; i++) {
            d->k32[i] = (int32_t)(uint32_t)(fbench_splitmix64(&s) >> 32);
            if (d->v32)
                d->v32[i] = (int32_t)i; /* the row number: shows stability */
        }
        if (ok && wl == 1) {
            d->out_bytes[0] = d->out_bytes[1] = n * 4;
        }
    } else if (wl == 2) {
        ok = (d->k64 = fbench_alloc_pages(n * 8)) != NULL;
        for (size_t i = 0; ok && i < n; i++)
            d->k64[i] = (int64_t)fbench_splitmix64(&s);
        d->out_bytes[0] = n * 8;
    } else {
        ok = (d->a = fbench_alloc_pages(n * 4)) && (d->b = fbench_alloc_pages(n * 8)) &&
             (d->c = fbench_alloc_pages(n * 8)) && (d->c_valid = fbench_alloc_pages((n + 7) / 8 + 8)) &&
             (d->out_valid = fbench_alloc_pages((n + 7) / 8 + 8));
        int32_t pool[1000];
        for (int i = 0; i < 1000; i++)
            pool[i] = (int32_t)(uint32_t)(fbench_splitmix64(&s) >> 40) - (1 << 23);
        for (size_t i = 0; ok && i < n; i++) {
            uint64_t r = fbench_splitmix64(&s), u = fbench_splitmix64(&s);
            d->a[i] = pool[r % 1000];
            d->b[i] = (int64_t)u;
            int pick = (int)((r >> 20) % 100);
            double c;
            if (pick < 5) {
                c = NAN;
            } else if (pick < 7) {
                c = (pick & 1) ? -0.0 : 0.0;
            } else {
                c = (double)(int64_t)(u >> 11) / 1e6 - 4.5e9;
            }
            d->c[i] = c;
            if (pick >= 90) /* 10% null */
                d->c_valid[i / 8] &= (uint8_t)~(1u << (i % 8));
            else
                d->c_valid[i / 8] |= (uint8_t)(1u << (i % 8));
        }
        d->out_bytes[0] = n * 4;
        d->out_bytes[1] = n * 8;
        d->out_bytes[2] = n * 8;
    }
    for (int i = 0; ok && i < 3; i++)
        if (d->out_bytes[i]) {
            d->out[i] = fbench_alloc_pages(d->out_bytes[i]);
            ok = d->out[i] != NULL;
        }
    if (!ok) {
        sort_destroy(d);
        return NULL;
    }
    return d;
}

static void *s1_generate(int64_t rows, uint64_t seed) { return sort_generate_wl(rows, seed, 1); }
static void *s2_generate(int64_t rows, uint64_t seed) { return sort_generate_wl(rows, seed, 2); }
static void *s3_generate(int64_t rows, uint64_t seed) { return sort_generate_wl(rows, seed, 3); }
static void *s4_generate(int64_t rows, uint64_t seed) { return sort_generate_wl(rows, seed, 4); }

/* ---- row hashes and order, written here (not fb's) ------------------------------------------------ */

static int s3_valid(const uint8_t *bits, int64_t i) { return (bits[i / 8] >> (i % 8)) & 1; }

static uint64_t dbits(double x)
{
    uint64_t u;
    memcpy(&u, &x, 8);
    return u;
}

/* Hash of row i of a table (S1: k, v; S2: k; S3: a, b, c with its null flag). */
static uint64_t row_hash(int wl, const void *const *cols, const uint8_t *valid, int64_t i)
{
    switch (wl) {
    case 1: return mix64(((uint64_t)(uint32_t)((const int32_t *)cols[0])[i] << 32) ^ (uint32_t)((const int32_t *)cols[1])[i]);
    case 2: return mix64((uint64_t)((const int64_t *)cols[0])[i]);
    default: {
        int ok = s3_valid(valid, i);
        uint64_t h = mix64((uint64_t)(uint32_t)((const int32_t *)cols[0])[i] ^ 0xA5A5A5A5ull);
        h = mix64(h ^ (uint64_t)((const int64_t *)cols[1])[i]);
        return mix64(h ^ (ok ? dbits(((const double *)cols[2])[i]) : 0x5151ull) ^ (uint64_t)ok << 7);
    }
    }
}

/* SQL order of two float64: -inf < ... < -0.0 = 0.0 < ... < +inf < NaN. */
static int dcmp(double x, double y)
{
    if (isnan(x) || isnan(y))
        return isnan(x) && isnan(y) ? 0 : isnan(x) ? 1 : -1;
    return x < y ? -1 : x > y;
}

/* Whether output rows i-1, i are in order (S1 also: ties keep input order, v being the row number). */
static int pair_ok(int wl, const void *const *cols, const uint8_t *valid, int64_t i)
{
    switch (wl) {
    case 1: {
        const int32_t *k = cols[0], *v = cols[1];
        return k[i - 1] < k[i] || (k[i - 1] == k[i] && v[i - 1] < v[i]);
    }
    case 2: return ((const int64_t *)cols[0])[i - 1] <= ((const int64_t *)cols[0])[i];
    default: {
        const int32_t *a = cols[0];
        const int64_t *b = cols[1];
        const double *c = cols[2];
        if (a[i - 1] != a[i])
            return a[i - 1] < a[i];
        if (b[i - 1] != b[i])
            return b[i - 1] > b[i]; /* descending */
        int v0 = s3_valid(valid, i - 1), v1 = s3_valid(valid, i);
        if (!v0 || !v1)
            return !v1; /* nulls last */
        return dcmp(c[i - 1], c[i]) <= 0;
    }
    }
}

typedef struct check_part {
    int wl;
    const void *const *cols;
    const uint8_t *valid;
    int64_t begin, end;
    uint64_t hash;
    int64_t bad;
    int order;
} check_part;

static void *check_range(void *arg)
{
    check_part *p = arg;
    uint64_t h = 0;
    int64_t bad = 0;
    for (int64_t i = p->begin; i < p->end; i++) {
        h += row_hash(p->wl, p->cols, p->valid, i);
        if (p->order && i > 0)
            bad += !pair_ok(p->wl, p->cols, p->valid, i);
    }
    p->hash = h;
    p->bad = bad;
    return NULL;
}

/* Multiset hash of the rows and (order) the number of adjacent pairs out of order, on `threads` threads. */
static void check_table(int wl, const void *const *cols, const uint8_t *valid, int64_t rows, int order, int threads,
                        uint64_t *hash, int64_t *bad)
{
    enum { MAXT = 64 };
    check_part parts[MAXT];
    pthread_t tid[MAXT];
    int t_n = threads < 1 ? 1 : threads > MAXT ? MAXT : threads;
    *hash = 0;
    *bad = 0;
    for (int t = 0; t < t_n; t++) {
        parts[t] = (check_part){wl, cols, valid, rows * t / t_n, rows * (t + 1) / t_n, 0, 0, order};
        if (t > 0 && pthread_create(&tid[t], NULL, check_range, &parts[t]) != 0) {
            check_range(&parts[t]);
            tid[t] = 0;
        }
    }
    check_range(&parts[0]);
    for (int t = 0; t < t_n; t++) {
        if (t > 0 && tid[t])
            pthread_join(tid[t], NULL);
        *hash += parts[t].hash;
        *bad += parts[t].bad;
    }
}

static void sort_reference(const void *data, fbench_result *out)
{
    const sort_data *d = data;
    if (d->wl == 4) {
        /* the TOP_N largest keys, ties by row number, in a sorted array */
        int64_t top_row[TOP_N];
        int32_t top_k[TOP_N];
        int size = 0;
        for (int64_t i = 0; i < d->rows; i++) {
            int32_t k = d->k32[i];
            if (size == TOP_N && k <= top_k[TOP_N - 1])
                continue;
            int j = size < TOP_N ? size++ : TOP_N - 1;
            while (j > 0 && top_k[j - 1] < k) {
                top_k[j] = top_k[j - 1];
                top_row[j] = top_row[j - 1];
                j--;
            }
            top_k[j] = k;
            top_row[j] = i;
        }
        int64_t sk = 0;
        uint64_t rh = 0; /* wraps: unsigned */
        for (int j = 0; j < size; j++) {
            sk += top_k[j];
            rh += mix64((uint64_t)top_row[j] * (uint64_t)(j + 1));
        }
        out->values[0] = size;
        out->values[1] = sk;
        out->values[2] = size ? top_k[size - 1] : 0;
        out->values[3] = (int64_t)rh;
        out->n_values = 4;
        return;
    }
    const void *cols[3] = {d->wl == 1 ? (const void *)d->k32 : d->wl == 2 ? (const void *)d->k64 : (const void *)d->a,
                           d->wl == 1 ? (const void *)d->v32 : (const void *)d->b, d->c};
    uint64_t h;
    int64_t bad;
    check_table(d->wl, cols, d->c_valid, d->rows, 0, 1, &h, &bad);
    out->values[0] = d->rows;
    out->values[1] = (int64_t)h;
    out->values[2] = 0;
    out->n_values = 3;
}

/* The CPU's parallel sorts, or with `cl` their OpenCL twins on the context's device. */
static fb_status sort_run_on(fb_ctx *ctx, const sort_data *d, fbench_result *out, int cl)
{
    int64_t n = d->rows;
    fb_status st;
    if (d->wl == 4) {
        fb_sort_key key = {fb_column_make(FB_TYPE_INT32, d->k32, n, NULL), 1, 0};
        uint32_t ids[TOP_N];
        int64_t got = 0;
        st = cl ? fb_cl_sort_top_n(ctx, &key, 1, TOP_N, ids, TOP_N, &got)
                : fb_sort_top_n_parallel(ctx, &key, 1, TOP_N, ids, TOP_N, &got);
        if (st != FB_OK)
            return st;
        int64_t sk = 0;
        uint64_t rh = 0; /* wraps: unsigned */
        for (int64_t j = 0; j < got; j++) {
            sk += d->k32[ids[j]];
            rh += mix64((uint64_t)ids[j] * (uint64_t)(j + 1));
        }
        out->values[0] = got;
        out->values[1] = sk;
        out->values[2] = got ? d->k32[ids[got - 1]] : 0;
        out->values[3] = (int64_t)rh;
        out->n_values = 4;
        return FB_OK;
    }
    fb_column_out o[3];
    if (d->wl == 1) {
        fb_sort_key key = {fb_column_make(FB_TYPE_INT32, d->k32, n, NULL), 0, 0};
        fb_column pay = fb_column_make(FB_TYPE_INT32, d->v32, n, NULL);
        o[0] = (fb_column_out){FB_TYPE_INT32, n, d->out[0], NULL, 0, 0};
        o[1] = (fb_column_out){FB_TYPE_INT32, n, d->out[1], NULL, 0, 0};
        st = cl ? fb_cl_sort_table(ctx, &key, 1, &pay, 1, o) : fb_sort_table_parallel(ctx, &key, 1, &pay, 1, o);
    } else if (d->wl == 2) {
        fb_sort_key key = {fb_column_make(FB_TYPE_INT64, d->k64, n, NULL), 0, 0};
        o[0] = (fb_column_out){FB_TYPE_INT64, n, d->out[0], NULL, 0, 0};
        st = cl ? fb_cl_sort_table(ctx, &key, 1, NULL, 0, o) : fb_sort_table_parallel(ctx, &key, 1, NULL, 0, o);
    } else {
        fb_sort_key keys[3] = {{fb_column_make(FB_TYPE_INT32, d->a, n, NULL), 0, 0},
                               {fb_column_make(FB_TYPE_INT64, d->b, n, NULL), 1, 0},
                               {fb_column_make(FB_TYPE_FLOAT64, d->c, n, d->c_valid), 0, 0}};
        o[0] = (fb_column_out){FB_TYPE_INT32, n, d->out[0], NULL, 0, 0};
        o[1] = (fb_column_out){FB_TYPE_INT64, n, d->out[1], NULL, 0, 0};
        o[2] = (fb_column_out){FB_TYPE_FLOAT64, n, d->out[2], d->out_valid, 0, 0};
        st = cl ? fb_cl_sort_table(ctx, keys, 3, NULL, 0, o) : fb_sort_table_parallel(ctx, keys, 3, NULL, 0, o);
    }
    if (st != FB_OK)
        return st;
    out->values[0] = o[0].length; /* sort_finish checks the columns, outside the timing */
    out->n_values = 3;
    return FB_OK;
}

/* S1..S3: the sorted columns the run left in d->out, checked (order, stability, hash) after the timing:
 * DuckDB's CREATE TABLE AS ... ORDER BY, the peer, checks nothing either. */
static void sort_finish(fb_ctx *ctx, const void *data, fbench_result *out)
{
    const sort_data *d = data;
    if (d->wl == 4)
        return;
    const void *cols[3] = {d->out[0], d->out[1], d->out[2]};
    uint64_t h;
    int64_t bad;
    check_table(d->wl, cols, d->out_valid, d->rows, 1, fb_ctx_threads(ctx), &h, &bad);
    out->values[1] = (int64_t)h;
    out->values[2] = bad;
}

static fb_status sort_run(fb_ctx *ctx, const void *data, long morsel, fbench_result *out, fb_query *q)
{
    (void)morsel;
    (void)q;
    return sort_run_on(ctx, data, out, 0);
}

static fb_status sort_run_cl(fb_ctx *ctx, const void *data, fbench_result *out)
{
    return sort_run_on(ctx, data, out, 1);
}

static double sort_bytes(const void *data)
{
    const sort_data *d = data;
    double w = d->wl == 1 ? 8 : d->wl == 2 ? 8 : d->wl == 3 ? 20.125 : 4;
    return d->wl == 4 ? (double)d->rows * w : 2.0 * 2.0 * (double)d->rows * w;
}

static int sort_dump(const void *data, const char *dir, FILE *m)
{
    const sort_data *d = data;
    size_t n = (size_t)d->rows;
    long long rows = (long long)d->rows;
    switch (d->wl) {
    case 1:
        if (fbench_write_file(dir, "k.int32.bin", d->k32, n * 4) || fbench_write_file(dir, "v.int32.bin", d->v32, n * 4))
            return -1;
        fprintf(m, "  \"tables\": [{\"name\": \"t\", \"rows\": %lld, \"columns\": ["
                   "{\"name\": \"k\", \"type\": \"int32\", \"file\": \"k.int32.bin\", \"validity\": null}, "
                   "{\"name\": \"v\", \"type\": \"int32\", \"file\": \"v.int32.bin\", \"validity\": null}]}],\n"
                   "  \"query\": \"CREATE TABLE o AS SELECT k, v FROM t ORDER BY k\",\n", rows);
        return 0;
    case 2:
        if (fbench_write_file(dir, "k.int64.bin", d->k64, n * 8))
            return -1;
        fprintf(m, "  \"tables\": [{\"name\": \"t\", \"rows\": %lld, \"columns\": ["
                   "{\"name\": \"k\", \"type\": \"int64\", \"file\": \"k.int64.bin\", \"validity\": null}]}],\n"
                   "  \"query\": \"CREATE TABLE o AS SELECT k FROM t ORDER BY k\",\n", rows);
        return 0;
    case 3:
        if (fbench_write_file(dir, "a.int32.bin", d->a, n * 4) || fbench_write_file(dir, "b.int64.bin", d->b, n * 8) ||
            fbench_write_file(dir, "c.float64.bin", d->c, n * 8) || fbench_write_file(dir, "c.validity.bin", d->c_valid, (n + 7) / 8))
            return -1;
        fprintf(m, "  \"tables\": [{\"name\": \"t\", \"rows\": %lld, \"columns\": ["
                   "{\"name\": \"a\", \"type\": \"int32\", \"file\": \"a.int32.bin\", \"validity\": null}, "
                   "{\"name\": \"b\", \"type\": \"int64\", \"file\": \"b.int64.bin\", \"validity\": null}, "
                   "{\"name\": \"c\", \"type\": \"float64\", \"file\": \"c.float64.bin\", \"validity\": \"c.validity.bin\"}]}],\n"
                   "  \"query\": \"CREATE TABLE o AS SELECT a, b, c FROM t ORDER BY a ASC, b DESC, c ASC NULLS LAST\",\n",
                rows);
        return 0;
    default:
        if (fbench_write_file(dir, "k.int32.bin", d->k32, n * 4))
            return -1;
        fprintf(m, "  \"tables\": [{\"name\": \"t\", \"rows\": %lld, \"columns\": ["
                   "{\"name\": \"k\", \"type\": \"int32\", \"file\": \"k.int32.bin\", \"validity\": null}]}],\n"
                   "  \"query\": \"CREATE TABLE o AS SELECT k FROM t ORDER BY k DESC LIMIT %d\",\n", rows, TOP_N);
        return 0;
    }
}

static const fbench_workload sort_workloads[] = {
    {"S1", "sort 64M rows (k int32 uniform, v int32) by k, v follows (fb_sort_table_parallel)", ROWS_64M, s1_generate,
     sort_destroy, sort_reference, sort_run, sort_bytes, sort_dump, {"rows", "hash", "out_of_order"}, 1, sort_run_cl, sort_finish},
    {"S2", "sort 64M int64 keys uniform over the full range (fb_sort_table_parallel)", ROWS_64M, s2_generate,
     sort_destroy, sort_reference, sort_run, sort_bytes, sort_dump, {"rows", "hash", "out_of_order"}, 1, sort_run_cl, sort_finish},
    {"S3", "sort 16M rows by a int32 (1000 values) asc, b int64 desc, c float64 (NaN, nulls) asc nulls last", ROWS_16M,
     s3_generate, sort_destroy, sort_reference, sort_run, sort_bytes, sort_dump, {"rows", "hash", "out_of_order"}, 1, sort_run_cl, sort_finish},
    {"S4", "top 100 of 64M int32 keys by k desc (fb_sort_top_n_parallel)", ROWS_64M, s4_generate, sort_destroy,
     sort_reference, sort_run, sort_bytes, sort_dump, {"rows", "sum_k", "last_k", "row_hash"}, 0, sort_run_cl, sort_finish},
};

size_t fbench_wl_sort(const fbench_workload **list)
{
    *list = sort_workloads;
    return sizeof sort_workloads / sizeof sort_workloads[0];
}
