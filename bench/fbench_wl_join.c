/* fbench_wl_join.c - the J1..J4 workloads of `fbench run` (../shared/WORKLOADS.md): generation from a
 * seed, a reference answer by a plain C hash map (no fb code), the timed run through the runtime's
 * join pipelines (fb_pipeline_add_join), the bytes of the radix-join bound, and the dump for DuckDB.
 *
 * Data (int32 columns, payload v = row number on both sides):
 *   J1  R: rows/4 unique keys in random order (fmix32 of the row number, a bijection, so distinct and
 *       spread over the whole int32 range); S: rows keys drawn uniformly from R's keys.
 *   J2  as J1, S's keys Zipf(s = 1.0) over R's keys (rank r is R's row r - 1).
 *   J3  R: rows/64 unique keys; S: rows keys, half drawn from R's keys, half from keys R lacks.
 *   J4  R: rows/4 rows, keys with duplicates (each distinct key 1-8 times, rows shuffled); S: rows keys
 *       drawn uniformly from R's distinct keys; the pairs are materialized, then checked by
 *       count(*) and sum(r.v * 7 + s.v) over them (gathered from the pair ids).
 * Result: count(*), sum(r.v + s.v) (J4: sum(r.v * 7 + s.v)).
 * Bound (copy bandwidth): a one-pass radix join reads both sides (8 bytes a row), writes them
 * partitioned and reads them back: 24 bytes a row; J4 adds 16 bytes a pair written and read back. */
#include "fbench_run.h"

#include "fb_pipeline_join_internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct join_data {
    int which; /* 1..4 */
    int64_t nr, ns;
    int32_t *rk, *rv, *sk, *sv;
    int64_t pairs; /* pairs of the join (J4's bound) */
} join_data;

/* MurmurHash3's finalizer: a bijection of 32-bit words. */
static uint32_t fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

static uint64_t below(uint64_t *s, uint64_t n) { return (uint64_t)(((unsigned __int128)fbench_splitmix64(s) * n) >> 64); }

static double unit(uint64_t *s) { return (double)(fbench_splitmix64(s) >> 11) * 0x1.0p-53; }

/* Zipf(1) over ranks 1..n by inverse CDF: a table of the harmonic sums of the first ZIPF_TABLE ranks
 * (binary search) and, past it, H(r) ≈ ln r + γ + 1/(2r) inverted (exact enough: the data is what the
 * peer gets, whatever its distance from the ideal law). */
#define ZIPF_TABLE 65536
typedef struct zipf {
    int64_t n;
    double hn;
    double *h; /* h[i] = H(i + 1) */
} zipf;

static int zipf_init(zipf *z, int64_t n)
{
    z->n = n;
    int64_t m = n < ZIPF_TABLE ? n : ZIPF_TABLE;
    z->h = malloc((size_t)m * sizeof *z->h);
    if (!z->h)
        return -1;
    double acc = 0;
    for (int64_t i = 0; i < m; i++) {
        acc += 1.0 / (double)(i + 1);
        z->h[i] = acc;
    }
    const double gamma = 0.5772156649015329;
    z->hn = n <= ZIPF_TABLE ? acc : log((double)n) + gamma + 0.5 / (double)n;
    return 0;
}

static int64_t zipf_draw(const zipf *z, uint64_t *s)
{
    double u = unit(s) * z->hn;
    int64_t m = z->n < ZIPF_TABLE ? z->n : ZIPF_TABLE;
    if (u < z->h[m - 1]) {
        int64_t lo = 0, hi = m - 1; /* first i with h[i] > u */
        while (lo < hi) {
            int64_t mid = (lo + hi) / 2;
            if (z->h[mid] > u)
                hi = mid;
            else
                lo = mid + 1;
        }
        return lo + 1;
    }
    const double gamma = 0.5772156649015329;
    double r = exp(u - gamma);
    r = exp(u - gamma - 0.5 / r);
    int64_t k = (int64_t)r + 1;
    return k > z->n ? z->n : k < m + 1 ? m + 1 : k;
}

static void join_destroy(void *data)
{
    join_data *d = data;
    if (!d)
        return;
    fbench_free_pages(d->rk, (size_t)d->nr * 4);
    fbench_free_pages(d->rv, (size_t)d->nr * 4);
    fbench_free_pages(d->sk, (size_t)d->ns * 4);
    fbench_free_pages(d->sv, (size_t)d->ns * 4);
    free(d);
}

static join_data *join_alloc(int which, int64_t nr, int64_t ns)
{
    join_data *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->which = which;
    d->nr = nr;
    d->ns = ns;
    d->rk = fbench_alloc_pages((size_t)nr * 4);
    d->rv = fbench_alloc_pages((size_t)nr * 4);
    d->sk = fbench_alloc_pages((size_t)ns * 4);
    d->sv = fbench_alloc_pages((size_t)ns * 4);
    if (!d->rk || !d->rv || !d->sk || !d->sv) {
        join_destroy(d);
        return NULL;
    }
    for (int64_t i = 0; i < nr; i++)
        d->rv[i] = (int32_t)i;
    for (int64_t i = 0; i < ns; i++)
        d->sv[i] = (int32_t)i;
    return d;
}

static void *join_generate(int which, int64_t rows, uint64_t seed)
{
    int64_t ns = rows, nr = which == 3 ? rows / 64 : rows / 4;
    if (nr < 1)
        nr = 1;
    join_data *d = join_alloc(which, nr, ns);
    if (!d)
        return NULL;
    uint64_t s = seed;
    uint32_t salt = (uint32_t)fbench_splitmix64(&s);
    if (which != 4) {
        for (int64_t i = 0; i < nr; i++)
            d->rk[i] = (int32_t)fmix32((uint32_t)i ^ salt);
    }
    if (which == 1) {
        for (int64_t i = 0; i < ns; i++)
            d->sk[i] = d->rk[below(&s, (uint64_t)nr)];
        d->pairs = ns;
    } else if (which == 2) {
        zipf z;
        if (zipf_init(&z, nr) != 0) {
            join_destroy(d);
            return NULL;
        }
        for (int64_t i = 0; i < ns; i++)
            d->sk[i] = d->rk[zipf_draw(&z, &s) - 1];
        free(z.h);
        d->pairs = ns;
    } else if (which == 3) {
        int64_t hits = 0;
        for (int64_t i = 0; i < ns; i++) {
            if (fbench_splitmix64(&s) >> 63) {
                d->sk[i] = d->rk[below(&s, (uint64_t)nr)];
                hits++;
            } else { /* a row number past R's: a key R lacks */
                d->sk[i] = (int32_t)fmix32((uint32_t)(nr + (int64_t)below(&s, ((uint64_t)1 << 32) - (uint64_t)nr)) ^ salt);
            }
        }
        d->pairs = hits;
    } else {
        /* distinct keys with 1..8 rows each, then the rows shuffled */
        int64_t *dup = malloc((size_t)nr * sizeof *dup);
        int32_t *dk = malloc((size_t)nr * sizeof *dk);
        if (!dup || !dk) {
            free(dup);
            free(dk);
            join_destroy(d);
            return NULL;
        }
        int64_t nd = 0, at = 0;
        while (at < nr) {
            int64_t c = 1 + (int64_t)below(&s, 8);
            if (c > nr - at)
                c = nr - at;
            dk[nd] = (int32_t)fmix32((uint32_t)nd ^ salt);
            dup[nd] = c;
            for (int64_t j = 0; j < c; j++)
                d->rk[at++] = dk[nd];
            nd++;
        }
        for (int64_t i = nr - 1; i > 0; i--) {
            int64_t j = (int64_t)below(&s, (uint64_t)i + 1);
            int32_t t = d->rk[i];
            d->rk[i] = d->rk[j];
            d->rk[j] = t;
        }
        d->pairs = 0;
        for (int64_t i = 0; i < ns; i++) {
            int64_t g = (int64_t)below(&s, (uint64_t)nd);
            d->sk[i] = dk[g];
            d->pairs += dup[g];
        }
        free(dup);
        free(dk);
    }
    return d;
}

static void *j1_generate(int64_t rows, uint64_t seed) { return join_generate(1, rows, seed); }
static void *j2_generate(int64_t rows, uint64_t seed) { return join_generate(2, rows, seed); }
static void *j3_generate(int64_t rows, uint64_t seed) { return join_generate(3, rows, seed); }
static void *j4_generate(int64_t rows, uint64_t seed) { return join_generate(4, rows, seed); }

/* The reference: an open-addressing map from R's key to (rows, sum of v), then one look-up per S row. */
static void join_reference(const void *data, fbench_result *out)
{
    const join_data *d = data;
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)d->nr)
        cap *= 2;
    typedef struct slot {
        int32_t key;
        int32_t used;
        int64_t cnt, sumv;
    } slot;
    slot *t = calloc(cap, sizeof *t);
    out->n_values = 2;
    if (!t) {
        out->values[0] = out->values[1] = -1;
        return;
    }
    for (int64_t i = 0; i < d->nr; i++) {
        uint64_t h = (uint64_t)fmix32((uint32_t)d->rk[i] + 0x12345u) & (cap - 1);
        while (t[h].used && t[h].key != d->rk[i])
            h = (h + 1) & (cap - 1);
        t[h].used = 1;
        t[h].key = d->rk[i];
        t[h].cnt++;
        t[h].sumv += d->rv[i];
    }
    int64_t mul = d->which == 4 ? 7 : 1, count = 0, sum = 0;
    for (int64_t i = 0; i < d->ns; i++) {
        uint64_t h = (uint64_t)fmix32((uint32_t)d->sk[i] + 0x12345u) & (cap - 1);
        while (t[h].used && t[h].key != d->sk[i])
            h = (h + 1) & (cap - 1);
        if (t[h].used) {
            count += t[h].cnt;
            sum += mul * t[h].sumv + t[h].cnt * (int64_t)d->sv[i];
        }
    }
    free(t);
    out->values[0] = count;
    out->values[1] = sum;
}

/* J4's check of the materialized pairs, sum(r.v * 7 + s.v) gathered through the pair ids: the blocks
 * are split over the run's threads, as an engine consuming the pairs would. */
typedef struct checksum_task {
    const join_data *d;
    const fb_join_result *r;
    int64_t first, step;
    int64_t sum;
} checksum_task;

static void *checksum_blocks(void *arg)
{
    checksum_task *t = arg;
    int64_t sum = 0;
    for (int64_t b = t->first; b < t->r->n_blocks; b += t->step) {
        const fb_join_block *blk = &t->r->blocks[b];
        for (int64_t i = 0; i < blk->n; i++) {
            if (i + 16 < blk->n) { /* the gathers miss the caches: ask 16 pairs ahead */
                __builtin_prefetch(&t->d->rv[blk->build_ids[i + 16]]);
                __builtin_prefetch(&t->d->sv[blk->probe_ids[i + 16]]);
            }
            sum += 7 * (int64_t)t->d->rv[blk->build_ids[i]] + t->d->sv[blk->probe_ids[i]];
        }
    }
    t->sum = sum;
    return NULL;
}

static int64_t pairs_checksum(const join_data *d, const fb_join_result *r, int threads)
{
    if (threads > 64)
        threads = 64;
    checksum_task t[64];
    pthread_t th[64];
    int started[64] = {0};
    for (int i = 0; i < threads; i++) {
        t[i] = (checksum_task){d, r, i, threads, 0};
        if (i > 0)
            started[i] = pthread_create(&th[i], NULL, checksum_blocks, &t[i]) == 0;
    }
    checksum_blocks(&t[0]);
    int64_t sum = t[0].sum;
    for (int i = 1; i < threads; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        else
            checksum_blocks(&t[i]); /* no thread: do its share here */
        sum += t[i].sum;
    }
    return sum;
}

static fb_status join_run(fb_ctx *ctx, const void *data, long morsel, fbench_result *out, fb_query *q)
{
    const join_data *d = data;
    fb_join_input in;
    memset(&in, 0, sizeof in);
    in.build_key = fb_column_make(FB_TYPE_INT32, d->rk, d->nr, NULL);
    in.build_val = fb_column_make(FB_TYPE_INT32, d->rv, d->nr, NULL);
    in.probe_key = fb_column_make(FB_TYPE_INT32, d->sk, d->ns, NULL);
    in.probe_val = fb_column_make(FB_TYPE_INT32, d->sv, d->ns, NULL);
    in.output = d->which == 4 ? FB_JOIN_OUTPUT_PAIRS : FB_JOIN_OUTPUT_COUNT_SUM;
    in.morsel_rows = morsel;
    in.radix_bits = -1;
    const char *bits = getenv("FBENCH_JOIN_RADIX_BITS"); /* for experiments */
    if (bits && *bits)
        in.radix_bits = atoi(bits);
    fb_join_result r;
    fb_query *own = NULL;
    if (!q) {
        fb_status st = fb_query_create(ctx, &own);
        if (st != FB_OK)
            return st;
        q = own;
    }
    fb_status st = fb_pipeline_add_join(q, &in, &r);
    if (st == FB_OK)
        st = fb_query_run(q);
    if (st == FB_OK && getenv("FBENCH_JOIN_VERBOSE")) {
        for (int p = 0; p < fb_query_pipelines(q); p++) {
            fb_stats ps;
            if (fb_query_stats(q, p, -1, &ps) == FB_OK)
                fprintf(stderr, "fbench run:   pipeline %d: %.1f ms wall, %.1f ms busy, %lld morsels\n", p,
                        ps.wall_ns / 1e6, ps.busy_ns / 1e6, (long long)ps.morsels);
        }
    }
    fb_query_destroy(own);
    if (st != FB_OK)
        return st;
    out->n_values = 2;
    out->values[0] = r.count;
    out->values[1] = r.sum;
    if (d->which == 4) {
        out->values[1] = pairs_checksum(d, &r, fb_ctx_threads(ctx));
        fb_join_result_free(ctx, &r);
    }
    if (getenv("FBENCH_JOIN_VERBOSE"))
        fprintf(stderr, "fbench run: join algorithm %s, %d radix bits\n",
                r.algorithm == FB_JOIN_ALGO_RADIX ? "radix" : "non-partitioned", r.radix_bits);
    return FB_OK;
}

static double join_bytes(const void *data)
{
    const join_data *d = data;
    double b = 24.0 * (double)(d->nr + d->ns);
    if (d->which == 4)
        b += 32.0 * (double)d->pairs;
    return b;
}

static int join_dump(const void *data, const char *dir, FILE *m)
{
    const join_data *d = data;
    if (fbench_write_file(dir, "r_k.int32.bin", d->rk, (size_t)d->nr * 4) || fbench_write_file(dir, "r_v.int32.bin", d->rv, (size_t)d->nr * 4) ||
        fbench_write_file(dir, "s_k.int32.bin", d->sk, (size_t)d->ns * 4) || fbench_write_file(dir, "s_v.int32.bin", d->sv, (size_t)d->ns * 4))
        return -1;
    fprintf(m,
            "  \"tables\": [\n"
            "    {\"name\": \"r\", \"rows\": %lld, \"columns\": [{\"name\": \"k\", \"type\": \"int32\", \"file\": "
            "\"r_k.int32.bin\", \"validity\": null}, {\"name\": \"v\", \"type\": \"int32\", \"file\": "
            "\"r_v.int32.bin\", \"validity\": null}]},\n"
            "    {\"name\": \"s\", \"rows\": %lld, \"columns\": [{\"name\": \"k\", \"type\": \"int32\", \"file\": "
            "\"s_k.int32.bin\", \"validity\": null}, {\"name\": \"v\", \"type\": \"int32\", \"file\": "
            "\"s_v.int32.bin\", \"validity\": null}]}\n"
            "  ],\n"
            "  \"query\": \"SELECT count(*), sum(r.v::BIGINT %s+ s.v) FROM r JOIN s ON r.k = s.k\",\n",
            (long long)d->nr, (long long)d->ns, d->which == 4 ? "* 7 " : "");
    return 0;
}

/* The same join on the context's OpenCL device: fb_cl_join_probe builds the device table from R's keys and
 * probes S's, every pair at once; count and sum(r.v + s.v) (J4: r.v * 7 + s.v) are folded on the host. */
static fb_status join_run_cl(fb_ctx *ctx, const void *data, fbench_result *out)
{
    const join_data *d = data;
    fb_column bk = fb_column_make(FB_TYPE_INT32, d->rk, d->nr, NULL);
    fb_column pk = fb_column_make(FB_TYPE_INT32, d->sk, d->ns, NULL);
    int64_t cap = d->pairs > 0 ? d->pairs : 1, n_pairs = 0;
    fb_join_pairs pairs = {malloc(sizeof(int64_t) * (size_t)cap), malloc(sizeof(int64_t) * (size_t)cap), cap, 0, 0};
    fb_status st = pairs.build_ids && pairs.probe_ids
                       ? fb_cl_join_probe(ctx, &bk, 0, &pk, 0, FB_JOIN_INNER, &pairs, &n_pairs)
                       : fb_stage_error(ctx, FB_ERR_OUT_OF_MEMORY, "no memory for %lld pairs", (long long)cap);
    if (st == FB_ERR_CAPACITY) { /* more pairs than expected: the call said how many */
        free(pairs.build_ids);
        free(pairs.probe_ids);
        cap = n_pairs;
        pairs = (fb_join_pairs){malloc(sizeof(int64_t) * (size_t)cap), malloc(sizeof(int64_t) * (size_t)cap), cap, 0, 0};
        st = pairs.build_ids && pairs.probe_ids ? fb_cl_join_probe(ctx, &bk, 0, &pk, 0, FB_JOIN_INNER, &pairs, &n_pairs)
                                                : fb_stage_error(ctx, FB_ERR_OUT_OF_MEMORY, "no memory for pairs");
    }
    int64_t sum = 0;
    for (int64_t i = 0; st == FB_OK && i < pairs.length; i++) {
        int64_t rv = d->rv[pairs.build_ids[i]], sv = d->sv[pairs.probe_ids[i]];
        sum += d->which == 4 ? rv * 7 + sv : rv + sv;
    }
    free(pairs.build_ids);
    free(pairs.probe_ids);
    out->n_values = 2;
    out->values[0] = pairs.length;
    out->values[1] = sum;
    return st;
}

static const fbench_workload join_workloads[] = {
    {"J1", "inner join, R 16M unique keys, S 64M uniform over R: count(*), sum(r.v + s.v)", INT64_C(1) << 26,
     j1_generate, join_destroy, join_reference, join_run, join_bytes, join_dump, {"count", "sum"}, 1, join_run_cl, NULL},
    {"J2", "as J1 with S's keys Zipf(1.0) over R's keys", INT64_C(1) << 26, j2_generate, join_destroy, join_reference,
     join_run, join_bytes, join_dump, {"count", "sum"}, 1, join_run_cl, NULL},
    {"J3", "R 1M unique keys (fits the LLC), S 64M, 50% match: count(*), sum(r.v + s.v)", INT64_C(1) << 26,
     j3_generate, join_destroy, join_reference, join_run, join_bytes, join_dump, {"count", "sum"}, 1, join_run_cl, NULL},
    {"J4", "N:M join, R 4M rows (each key 1-8 times), S 16M: pairs materialized, count(*), sum(r.v*7 + s.v)",
     INT64_C(1) << 24, j4_generate, join_destroy, join_reference, join_run, join_bytes, join_dump,
     {"count", "checksum"}, 1, join_run_cl, NULL},
};

size_t fbench_wl_join(const fbench_workload **list)
{
    *list = join_workloads;
    return sizeof join_workloads / sizeof join_workloads[0];
}
