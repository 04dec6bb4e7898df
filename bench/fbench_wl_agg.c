/* fbench_wl_agg.c - the A1..A4 workloads of `fbench run` (../shared/WORKLOADS.md): grouped aggregation
 * through the runtime (fb_query_add_agg()), checked against a plain C hash map.
 *
 * The answer is four order-independent figures over the groups, which DuckDB computes with the SQL
 * the dump writes ("query"): the number of groups, sum(c * (k % 1021)), sum((s % 1000003) * (k % 1021))
 * and a fourth one per workload (A1, A3: sum(s); A2: sum(((max - min) % 1000003) * (k % 1021));
 * A4: sum(count(v) * (k % 1021))), where c = count(*), s = sum(v). SQL's rules hold: a null key or a
 * null sum drops out of the sums that read it, % truncates toward zero. A2 also checks every avg
 * against s / c. */
#include "fbench_run.h"

#include "fb_pipeline_agg_internal.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AGG_M (INT64_C(1) << 20)

typedef struct agg_data {
    int kind;        /* 1..4 */
    int64_t rows;
    int64_t groups;  /* distinct keys drawn from (A3: keys are random 64-bit, all but distinct) */
    void *k;         /* int32 (A1, A2, A4) or int64 (A3) */
    int32_t *v;
    uint8_t *kvalid; /* A4 only: Arrow bitmaps */
    uint8_t *vvalid;
} agg_data;

static size_t key_width(const agg_data *d) { return d->kind == 3 ? 8 : 4; }

static void agg_destroy(void *data)
{
    agg_data *d = data;
    if (!d)
        return;
    fbench_free_pages(d->k, (size_t)d->rows * key_width(d));
    fbench_free_pages(d->v, (size_t)d->rows * 4);
    free(d->kvalid);
    free(d->vvalid);
    free(d);
}

static void *agg_generate(int kind, int64_t rows, uint64_t seed)
{
    /* glibc keeps freed blocks up to 32 MiB (the aggregation's slabs) in its main heap for the next
     * repeat instead of unmapping them, as an engine's memory pool (DuckDB's buffer manager) does between queries; the
     * timed runs then do not pay the kernel for zeroing fresh pages (FBENCH_AGG_FRESH_MEMORY=1: they do) */
    if (!getenv("FBENCH_AGG_FRESH_MEMORY")) {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        mallopt(M_ARENA_MAX, 1); /* a worker thread's own arena would unmap its emptied heaps */
    }
    agg_data *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->kind = kind;
    d->rows = rows;
    int64_t g = kind == 2 ? 100 : (int64_t)((double)rows / 32.0); /* A1, A4: 2M keys at 64M rows */
    d->groups = g < 1 ? 1 : g;
    d->k = fbench_alloc_pages((size_t)rows * key_width(d));
    d->v = fbench_alloc_pages((size_t)rows * 4);
    if (kind == 4) {
        d->kvalid = calloc(1, (size_t)(rows + 7) / 8);
        d->vvalid = calloc(1, (size_t)(rows + 7) / 8);
    }
    if (!d->k || !d->v || (kind == 4 && (!d->kvalid || !d->vvalid))) {
        agg_destroy(d);
        return NULL;
    }
    uint64_t s = seed;
    for (int64_t i = 0; i < rows; i++) {
        uint64_t r = fbench_splitmix64(&s);
        if (kind == 3) {
            ((int64_t *)d->k)[i] = (int64_t)r;
        } else {
            uint64_t id = (uint64_t)(((unsigned __int128)r * (uint64_t)d->groups) >> 64);
            /* A2: small keys (dictionary codes); A1/A4: the ids spread over int32 by an odd multiplier */
            ((int32_t *)d->k)[i] = kind == 2 ? (int32_t)id : (int32_t)(uint32_t)(id * 2654435761u);
        }
        uint64_t r2 = fbench_splitmix64(&s);
        d->v[i] = (int32_t)(uint32_t)(r2 >> 32);
        if (kind == 4) {
            if ((r2 & 0xFFFF) >= 655) /* 1% null keys */
                d->kvalid[i >> 3] |= (uint8_t)(1u << (i & 7));
            if (((r2 >> 16) & 0xFFFF) >= 6554) /* 10% null values */
                d->vvalid[i >> 3] |= (uint8_t)(1u << (i & 7));
        }
    }
    return d;
}

static void *a1_generate(int64_t rows, uint64_t seed) { return agg_generate(1, rows, seed); }
static void *a2_generate(int64_t rows, uint64_t seed) { return agg_generate(2, rows, seed); }
static void *a3_generate(int64_t rows, uint64_t seed) { return agg_generate(3, rows, seed); }
static void *a4_generate(int64_t rows, uint64_t seed) { return agg_generate(4, rows, seed); }

static int bit(const uint8_t *b, int64_t i) { return !b || ((b[i >> 3] >> (i & 7)) & 1); }

/* One group's figures, folded into the answer. */
typedef struct agg_fold {
    int64_t groups;
    __int128 c1, c2, c3;
} agg_fold;

static void fold_group(int kind, agg_fold *f, int knull, int64_t k, int64_t c, int64_t cv, int s_null, int64_t s,
                       int64_t mn, int64_t mx)
{
    f->groups++;
    int64_t km = k % 1021;
    if (!knull) {
        f->c1 += (__int128)c * km;
        if (!s_null)
            f->c2 += (__int128)(s % 1000003) * km;
    }
    if (kind == 1 || kind == 3) {
        if (!s_null)
            f->c3 += s;
    } else if (kind == 2) {
        if (!knull && !s_null)
            f->c3 += (__int128)((mx - mn) % 1000003) * km;
    } else if (!knull) {
        f->c3 += (__int128)cv * km;
    }
}

static void fold_out(const agg_fold *f, fbench_result *out)
{
    out->values[0] = f->groups;
    out->values[1] = (int64_t)f->c1;
    out->values[2] = (int64_t)f->c2;
    out->values[3] = (int64_t)f->c3;
    out->n_values = 4;
}

/* ---- the reference: an open-addressing hash map, nothing of fb ---------------------------------- */

typedef struct ref_entry {
    int64_t k, s, mn, mx;
    int64_t c, cv; /* c = 0: empty */
} ref_entry;

static void agg_reference(const void *data, fbench_result *out)
{
    const agg_data *d = data;
    size_t cap = 16;
    while (cap < (size_t)(d->kind == 3 ? d->rows : d->groups) * 2)
        cap *= 2;
    ref_entry *t = calloc(cap, sizeof *t);
    ref_entry nullg = {0, 0, INT64_MAX, INT64_MIN, 0, 0};
    if (!t) {
        memset(out, 0, sizeof *out);
        return;
    }
    for (int64_t i = 0; i < d->rows; i++) {
        int64_t k = d->kind == 3 ? ((const int64_t *)d->k)[i] : ((const int32_t *)d->k)[i];
        ref_entry *e;
        if (!bit(d->kvalid, i)) {
            e = &nullg;
        } else {
            uint64_t h = (uint64_t)k * 0x9E3779B97F4A7C15ull;
            size_t p = (size_t)(h >> 20) & (cap - 1);
            while (t[p].c && t[p].k != k)
                p = (p + 1) & (cap - 1);
            e = &t[p];
            if (!e->c) {
                e->k = k;
                e->mn = INT64_MAX;
                e->mx = INT64_MIN;
            }
        }
        e->c++;
        if (bit(d->vvalid, i)) {
            int64_t v = d->v[i];
            e->cv++;
            e->s += v;
            e->mn = v < e->mn ? v : e->mn;
            e->mx = v > e->mx ? v : e->mx;
        }
    }
    agg_fold f = {0, 0, 0, 0};
    for (size_t p = 0; p < cap; p++)
        if (t[p].c)
            fold_group(d->kind, &f, 0, t[p].k, t[p].c, t[p].cv, t[p].cv == 0, t[p].s, t[p].mn, t[p].mx);
    if (nullg.c)
        fold_group(d->kind, &f, 1, 0, nullg.c, nullg.cv, nullg.cv == 0, nullg.s, nullg.mn, nullg.mx);
    free(t);
    fold_out(&f, out);
}

/* ---- the run through fb --------------------------------------------------------------------------- */

/* The aggregates of each workload: A1/A3: count(*), sum(v); A2: + min, max, avg; A4: count(*), count(v),
 * sum(v), avg(v). \return how many. */
static size_t agg_descs(const agg_data *d, fb_agg_desc *aggs)
{
    size_t n_aggs = 0;
    aggs[n_aggs++] = (fb_agg_desc){FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID};
    if (d->kind == 4)
        aggs[n_aggs++] = (fb_agg_desc){FB_AGG_COUNT, 0, FB_TYPE_INT32};
    aggs[n_aggs++] = (fb_agg_desc){FB_AGG_SUM, 0, FB_TYPE_INT32};
    if (d->kind == 2) {
        aggs[n_aggs++] = (fb_agg_desc){FB_AGG_MIN, 0, FB_TYPE_INT32};
        aggs[n_aggs++] = (fb_agg_desc){FB_AGG_MAX, 0, FB_TYPE_INT32};
    }
    if (d->kind == 2 || d->kind == 4)
        aggs[n_aggs++] = (fb_agg_desc){FB_AGG_AVG, 0, FB_TYPE_INT32};
    return n_aggs;
}

static fb_status agg_run(fb_ctx *ctx, const void *data, long morsel, fbench_result *out, fb_query *stats_q)
{
    const agg_data *d = data;
    fb_type kt = d->kind == 3 ? FB_TYPE_INT64 : FB_TYPE_INT32;
    fb_column cols[2] = {fb_column_make(kt, d->k, d->rows, d->kvalid),
                         fb_column_make(FB_TYPE_INT32, d->v, d->rows, d->vvalid)};
    fb_table table = {2, cols, NULL};
    fb_agg_desc aggs[5];
    size_t n_aggs = agg_descs(d, aggs);
    const char *force = getenv("FBENCH_AGG_STRATEGY"); /* for experiments: direct, hash, partition */
    fb_agg_strategy strat = !force                          ? FB_AGG_STRATEGY_AUTO
                            : strcmp(force, "direct") == 0   ? FB_AGG_STRATEGY_DIRECT
                            : strcmp(force, "hash") == 0     ? FB_AGG_STRATEGY_HASH
                            : strcmp(force, "partition") == 0 ? FB_AGG_STRATEGY_PARTITION
                                                              : FB_AGG_STRATEGY_AUTO;
    fb_agg_spec spec = {1, &kt, n_aggs, aggs, strat};
    size_t kcol = 0, vcol = 1;
    fb_agg_input in = {&kcol, &vcol, 1};
    fb_agg_groups *g = NULL;
    fb_status st;
    if (stats_q) {
        fb_source src;
        st = fb_source_table(ctx, &table, morsel, &src);
        if (st == FB_OK)
            st = fb_query_add_agg(stats_q, NULL, &src, NULL, 0, &spec, &in, &g, NULL);
        if (st == FB_OK)
            st = fb_query_run(stats_q);
    } else {
        st = fb_agg_run(ctx, &table, morsel, &spec, &in, &g, NULL);
    }
    if (st != FB_OK) {
        fb_agg_groups_destroy(g);
        return st;
    }
    agg_fold f = {0, 0, 0, 0};
    int bad_avg = 0;
    for (int p = 0; p < fb_agg_groups_partitions(g) && st == FB_OK; p++) {
        fb_column k, a[5];
        int64_t rows;
        st = fb_agg_groups_partition(g, p, &k, a, &rows);
        for (int64_t i = 0; st == FB_OK && i < rows; i++) {
            int knull = !fb_column_is_valid(&k, i);
            int64_t key = kt == FB_TYPE_INT64 ? ((const int64_t *)k.data)[i] : ((const int32_t *)k.data)[i];
            int64_t c = ((const int64_t *)a[0].data)[i];
            size_t si = d->kind == 4 ? 2 : 1;
            int64_t cv = d->kind == 4 ? ((const int64_t *)a[1].data)[i] : c;
            int snull = !fb_column_is_valid(&a[si], i);
            int64_t s = ((const int64_t *)a[si].data)[i], mn = 0, mx = 0;
            if (d->kind == 2) {
                mn = ((const int32_t *)a[2].data)[i];
                mx = ((const int32_t *)a[3].data)[i];
            }
            if (!snull && (d->kind == 2 || d->kind == 4)) {
                double avg = ((const double *)a[n_aggs - 1].data)[i], want = (double)s / (double)cv;
                bad_avg |= fabs(avg - want) > 1e-9 * fabs(want) + 1e-9;
            }
            fold_group(d->kind, &f, knull, key, c, cv, snull, s, mn, mx);
        }
    }
    fb_agg_groups_destroy(g);
    if (st == FB_OK && bad_avg)
        st = fb_stage_error(ctx, FB_ERR_INTERNAL, "an avg differs from sum / count");
    fold_out(&f, out);
    return st;
}

/* The same aggregation on the context's OpenCL device (fb_cl_group_by), folded the same way. */
static fb_status agg_run_cl(fb_ctx *ctx, const void *data, fbench_result *out)
{
    const agg_data *d = data;
    fb_type kt = d->kind == 3 ? FB_TYPE_INT64 : FB_TYPE_INT32;
    fb_column key = fb_column_make(kt, d->k, d->rows, d->kvalid);
    fb_column val = fb_column_make(FB_TYPE_INT32, d->v, d->rows, d->vvalid);
    fb_agg_desc aggs[5];
    size_t n_aggs = agg_descs(d, aggs);
    fb_agg_spec spec = {1, &kt, n_aggs, aggs, FB_AGG_STRATEGY_AUTO};
    /* Outputs with room for every row as its own group (A3). */
    int64_t cap = d->rows ? d->rows : 1;
    size_t vbytes = (size_t)(cap + 7) / 8;
    void *kbuf = malloc((size_t)cap * 8), *abuf[5] = {0};
    uint8_t *kvalid = malloc(vbytes), *avalid[5] = {0};
    fb_column_out ko = {kt, cap, kbuf, kvalid, 0, 0}, ao[5];
    int ok = kbuf && kvalid;
    for (size_t a = 0; a < n_aggs; a++) {
        fb_type rt;
        fb_agg_result_type(aggs[a].kind, aggs[a].kind == FB_AGG_COUNT_STAR ? FB_TYPE_INT32 : aggs[a].type, &rt);
        abuf[a] = malloc((size_t)cap * 8);
        avalid[a] = malloc(vbytes);
        ok &= abuf[a] && avalid[a];
        ao[a] = (fb_column_out){rt, cap, abuf[a], avalid[a], 0, 0};
    }
    int64_t groups = 0;
    fb_status st = ok ? fb_cl_group_by(ctx, &spec, &key, &val, 1, d->rows, &ko, ao, &groups)
                      : fb_stage_error(ctx, FB_ERR_OUT_OF_MEMORY, "no memory for %lld groups", (long long)cap);
    agg_fold f = {0, 0, 0, 0};
    int bad_avg = 0;
    for (int64_t i = 0; st == FB_OK && i < groups; i++) {
        fb_column k = fb_column_make(kt, kbuf, groups, kvalid), sc;
        int knull = !fb_column_is_valid(&k, i);
        int64_t kv = kt == FB_TYPE_INT64 ? ((const int64_t *)kbuf)[i] : ((const int32_t *)kbuf)[i];
        int64_t c = ((const int64_t *)abuf[0])[i];
        size_t si = d->kind == 4 ? 2 : 1;
        int64_t cv = d->kind == 4 ? ((const int64_t *)abuf[1])[i] : c;
        sc = fb_column_make(FB_TYPE_INT64, abuf[si], groups, avalid[si]);
        int snull = !fb_column_is_valid(&sc, i);
        int64_t sum = ((const int64_t *)abuf[si])[i], mn = 0, mx = 0;
        if (d->kind == 2) {
            mn = ((const int32_t *)abuf[2])[i];
            mx = ((const int32_t *)abuf[3])[i];
        }
        if (!snull && (d->kind == 2 || d->kind == 4)) {
            double avg = ((const double *)abuf[n_aggs - 1])[i], want = (double)sum / (double)cv;
            bad_avg |= fabs(avg - want) > 1e-9 * fabs(want) + 1e-9;
        }
        fold_group(d->kind, &f, knull, kv, c, cv, snull, sum, mn, mx);
    }
    free(kbuf);
    free(kvalid);
    for (size_t a = 0; a < n_aggs; a++) {
        free(abuf[a]);
        free(avalid[a]);
    }
    if (st == FB_OK && bad_avg)
        st = fb_stage_error(ctx, FB_ERR_INTERNAL, "an avg differs from sum / count");
    fold_out(&f, out);
    return st;
}

static double agg_bytes(const void *data)
{
    const agg_data *d = data;
    return (double)d->rows * (double)(key_width(d) + 4) + (d->kind == 4 ? (double)d->rows / 4.0 : 0.0);
}

static const char *const agg_queries[5] = {
    NULL,
    "SELECT count(*), sum(c * (k % 1021)), sum((s % 1000003) * (k % 1021)), sum(s) FROM "
    "(SELECT k, count(*) AS c, sum(v) AS s FROM t GROUP BY k)",
    "SELECT count(*), sum(c * (k % 1021)), sum((s % 1000003) * (k % 1021)), "
    "sum(((mx::BIGINT - mn) % 1000003) * (k % 1021)) FROM "
    "(SELECT k, count(*) AS c, sum(v) AS s, min(v) AS mn, max(v) AS mx, avg(v) AS a FROM t GROUP BY k)",
    "SELECT count(*), sum(c * (k % 1021)), sum((s % 1000003) * (k % 1021)), sum(s) FROM "
    "(SELECT k, count(*) AS c, sum(v) AS s FROM t GROUP BY k)",
    "SELECT count(*), sum(c * (k % 1021)), sum((s % 1000003) * (k % 1021)), sum(cv * (k % 1021)) FROM "
    "(SELECT k, count(*) AS c, count(v) AS cv, sum(v) AS s, avg(v) AS a FROM t GROUP BY k)",
};

static int agg_dump(const void *data, const char *dir, FILE *m)
{
    const agg_data *d = data;
    const char *kt = d->kind == 3 ? "int64" : "int32";
    char kfile[64];
    snprintf(kfile, sizeof kfile, "k.%s.bin", kt);
    size_t vb = (size_t)(d->rows + 7) / 8;
    if (fbench_write_file(dir, kfile, d->k, (size_t)d->rows * key_width(d)) ||
        fbench_write_file(dir, "v.int32.bin", d->v, (size_t)d->rows * 4) ||
        (d->kvalid && fbench_write_file(dir, "k.validity.bin", d->kvalid, vb)) ||
        (d->vvalid && fbench_write_file(dir, "v.validity.bin", d->vvalid, vb)))
        return -1;
    fprintf(m,
            "  \"tables\": [{\"name\": \"t\", \"rows\": %lld, \"columns\": ["
            "{\"name\": \"k\", \"type\": \"%s\", \"file\": \"%s\", \"validity\": %s}, "
            "{\"name\": \"v\", \"type\": \"int32\", \"file\": \"v.int32.bin\", \"validity\": %s}]}],\n"
            "  \"query\": \"%s\",\n",
            (long long)d->rows, kt, kfile, d->kvalid ? "\"k.validity.bin\"" : "null",
            d->vvalid ? "\"v.validity.bin\"" : "null", agg_queries[d->kind]);
    return 0;
}

static const fbench_workload agg_workloads[] = {
    {"A1", "GROUP BY k (int32, 2M distinct at scale 1, uniform): count(*), sum(v); 64M rows at scale 1", 64 * AGG_M,
     a1_generate, agg_destroy, agg_reference, agg_run, agg_bytes, agg_dump,
     {"groups", "sum(c*(k%1021))", "sum((s%1000003)*(k%1021))", "sum(s)"}, 0, agg_run_cl, NULL},
    {"A2", "GROUP BY k (int32, 100 distinct): count(*), sum, min, max, avg of v; 64M rows at scale 1", 64 * AGG_M,
     a2_generate, agg_destroy, agg_reference, agg_run, agg_bytes, agg_dump,
     {"groups", "sum(c*(k%1021))", "sum((s%1000003)*(k%1021))", "sum(((mx-mn)%1000003)*(k%1021))"}, 0, agg_run_cl, NULL},
    {"A3", "GROUP BY k (int64, ~all distinct): count(*), sum(v); 64M rows at scale 1", 64 * AGG_M, a3_generate,
     agg_destroy, agg_reference, agg_run, agg_bytes, agg_dump,
     {"groups", "sum(c*(k%1021))", "sum((s%1000003)*(k%1021))", "sum(s)"}, 0, agg_run_cl, NULL},
    {"A4", "A1 with 10% null v and 1% null k: count(*), count(v), sum(v), avg(v); 64M rows at scale 1", 64 * AGG_M,
     a4_generate, agg_destroy, agg_reference, agg_run, agg_bytes, agg_dump,
     {"groups", "sum(c*(k%1021))", "sum((s%1000003)*(k%1021))", "sum(cv*(k%1021))"}, 0, agg_run_cl, NULL},
};

size_t fbench_wl_agg(const fbench_workload **list)
{
    *list = agg_workloads;
    return sizeof agg_workloads / sizeof agg_workloads[0];
}
