/* plan_cost.c - the cost model's calibration (fb_plan.h): measuring the CPU rates with small plans over
 * synthetic tables (each rate the difference of two plans' best-of-3 times), and the calibration file
 * (JSON, in the user's config directory). The predictions themselves are in plan.c, next to the compile
 * whose pipelines they predict. */
#include "fb/fb_cl.h"
#include "fb/fb_plan.h"

#include "fb_internal.h"
#include "fb_plan_cost_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define RATE_FLOOR 1e-12
#define SMALL_TABLE_ROWS 2048 /* the small table of the device's probe-size measurement */
/* Runs per timing, the best kept: more for small tables, whose milliseconds a busy machine disturbs more. */
#define CAL_RUNS(rows) ((rows) <= ((int64_t)1 << 16) ? 11 : (rows) <= ((int64_t)1 << 19) ? 9 : 5)

/* The rates, by name, in the order of fb_plan_rates. */
static const char *const rate_names[] = {"pipeline_s",       "start_s", "scan_row_s",  "filter_row_s", "project_row_s",
                                         "probe_row_s", "probe_match_row_s",      "hash_probe_row_s", "build_row_s", "agg_row_s",
                                         "collect_row_s",    "sort_row_s", "probe_mix_row_s", "probe_big_row_s"};
#define N_RATES (sizeof rate_names / sizeof rate_names[0])
#define N_RATES_REQUIRED 12 /* the rates after these may be absent from a file (written before they existed) */

static double *rate_at(fb_plan_rates *r, size_t i)
{
    double *f[N_RATES] = {&r->pipeline_s,       &r->start_s, &r->scan_row_s,  &r->filter_row_s, &r->project_row_s,
                          &r->probe_row_s, &r->probe_match_row_s,      &r->hash_probe_row_s, &r->build_row_s, &r->agg_row_s,
                          &r->collect_row_s,    &r->sort_row_s, &r->probe_mix_row_s, &r->probe_big_row_s};
    return f[i];
}

/* ---- measuring ------------------------------------------------------------------------------------------ */

enum { F_A, F_K, F_K0, F_HK, F_G, F_V, F_ID, F_KM, F_KB, F_KS, F_COLS };
enum { D_K, D_HK, D_P, D_BK, D_COLS };

/* The key range of the big perfect hash (probe_big_row_s): 2^18, the most a dimension of 64 Ki rows gets
 * one (try_direct in plan.c). */
#define BIG_RANGE ((int64_t)1 << 18)

typedef struct cal_data {
    int64_t rows, dim_rows;
    double mix_f; /* the match fraction of km */
    double few_f; /* the match fraction of k0 (about 1/1024) */
    int32_t *a, *k, *k0, *g, *id, *dk, *dp, *km, *kb, *dbk, *ks;
    int64_t *hk, *v, *dhk;
    int32_t one[1];
    fb_column fcols[F_COLS], dcols[D_COLS], tcols[1];
    fb_column scols[D_COLS], pcols[D_COLS];
    fb_table fact, dim, tiny, star, small;
} cal_data;

#define STAR_ROWS 2048 /* rows of each build of X_STAR3 (at most the dimension's) */
#define SMALL_PROBE_ROWS 256 /* rows of X_PROBE0_SMALL's table (a star schema's filtered dimensions: 20-8000) */

static void cal_free(cal_data *d)
{
    free(d->a);
    free(d->k);
    free(d->k0);
    free(d->g);
    free(d->id);
    free(d->dk);
    free(d->dp);
    free(d->hk);
    free(d->v);
    free(d->dhk);
    free(d->km);
    free(d->kb);
    free(d->dbk);
    free(d->ks);
}

double fb_plan_cal_probe_range(int64_t rows)
{
    int64_t dim = rows / 16 < 65536 ? (rows / 16 > 64 ? rows / 16 : 64) : 65536;
    return (double)(2 * dim);
}

double fb_plan_cal_big_range(void)
{
    return (double)BIG_RANGE;
}

static int cal_make(cal_data *d, int64_t rows)
{
    memset(d, 0, sizeof *d);
    d->rows = rows;
    d->dim_rows = rows / 16 < 65536 ? (rows / 16 > 64 ? rows / 16 : 64) : 65536;
    size_t n = (size_t)rows, nd = (size_t)d->dim_rows;
    d->a = malloc(4 * n);
    d->k = malloc(4 * n);
    d->k0 = malloc(4 * n);
    d->g = malloc(4 * n);
    d->id = malloc(4 * n);
    d->hk = malloc(8 * n);
    d->v = malloc(8 * n);
    d->dk = malloc(4 * nd);
    d->dp = malloc(4 * nd);
    d->dhk = malloc(8 * nd);
    d->km = malloc(4 * n);
    d->kb = malloc(4 * n);
    d->dbk = malloc(4 * nd);
    d->ks = malloc(4 * n);
    if (!d->a || !d->k || !d->k0 || !d->g || !d->id || !d->hk || !d->v || !d->dk || !d->dp || !d->dhk || !d->km ||
        !d->kb || !d->dbk || !d->ks)
        return -1;
    int64_t spread = BIG_RANGE / d->dim_rows, mixed = 0, few = 0;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int64_t i = 0; i < rows; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        d->a[i] = (int32_t)(x % 1000);
        /* the dimension's keys are the even numbers below 2 dim_rows: every k matches, no k0 (but every
         * lookup of both reads the perfect hash's array); the match rate is their difference (a half-matching
         * probe would also measure what a mix of both costs, which varies: divergent device work-items) */
        uint64_t half = (x >> 16) % (uint64_t)(2 * d->dim_rows);
        d->k[i] = (int32_t)(half & ~(uint64_t)1);
        /* k0 matches for about 1/1024 of the rows: a probe with no match at all may skip work (a device's
         * pass that writes the matches) that every real join does */
        d->k0[i] = ((x >> 42) & 1023) == 0 ? d->k[i] : d->k[i] | 1;
        few += (d->k0[i] & 1) == 0;
        d->hk[i] = (int64_t)(half / 2 + (half & 1) * (uint64_t)d->dim_rows) * 1000003; /* half match */
        d->g[i] = (int32_t)((x >> 32) % 1024);
        d->v[i] = (int64_t)((x >> 40) % 100000);
        d->id[i] = (int32_t)i;
        /* km: k for 1/4 of the rows (by bits of x the other columns do not use), else k0; kb: keys that
         * miss, spread over the big dimension's whole range */
        int m = ((x >> 52) & 3) == 0;
        d->km[i] = m ? d->k[i] : d->k0[i];
        mixed += (d->km[i] & 1) == 0;
        d->kb[i] = (int32_t)(((x >> 16) % (uint64_t)d->dim_rows) * (uint64_t)spread + 1);
        /* ks: k0's keys (and matches) over the small dimension (the first SMALL_PROBE_ROWS rows) */
        int64_t small = d->dim_rows < SMALL_PROBE_ROWS ? d->dim_rows : SMALL_PROBE_ROWS;
        d->ks[i] = d->k0[i] % (int32_t)(2 * small);
    }
    d->mix_f = rows > 0 ? (double)mixed / (double)rows : 0;
    d->few_f = rows > 0 ? (double)few / (double)rows : 0;
    for (int64_t i = 0; i < d->dim_rows; i++) {
        d->dk[i] = (int32_t)(2 * i);
        d->dp[i] = (int32_t)(i % 97);
        d->dhk[i] = i * 1000003;
        d->dbk[i] = (int32_t)(i * spread);
    }
    d->fcols[F_A] = fb_column_make(FB_TYPE_INT32, d->a, rows, NULL);
    d->fcols[F_K] = fb_column_make(FB_TYPE_INT32, d->k, rows, NULL);
    d->fcols[F_K0] = fb_column_make(FB_TYPE_INT32, d->k0, rows, NULL);
    d->fcols[F_HK] = fb_column_make(FB_TYPE_INT64, d->hk, rows, NULL);
    d->fcols[F_G] = fb_column_make(FB_TYPE_INT32, d->g, rows, NULL);
    d->fcols[F_V] = fb_column_make(FB_TYPE_INT64, d->v, rows, NULL);
    d->fcols[F_ID] = fb_column_make(FB_TYPE_INT32, d->id, rows, NULL);
    d->fcols[F_KM] = fb_column_make(FB_TYPE_INT32, d->km, rows, NULL);
    d->fcols[F_KB] = fb_column_make(FB_TYPE_INT32, d->kb, rows, NULL);
    d->fcols[F_KS] = fb_column_make(FB_TYPE_INT32, d->ks, rows, NULL);
    d->dcols[D_BK] = fb_column_make(FB_TYPE_INT32, d->dbk, d->dim_rows, NULL);
    d->dcols[D_K] = fb_column_make(FB_TYPE_INT32, d->dk, d->dim_rows, NULL);
    d->dcols[D_HK] = fb_column_make(FB_TYPE_INT64, d->dhk, d->dim_rows, NULL);
    d->dcols[D_P] = fb_column_make(FB_TYPE_INT32, d->dp, d->dim_rows, NULL);
    d->tcols[0] = fb_column_make(FB_TYPE_INT32, d->one, 1, NULL);
    d->fact = (fb_table){F_COLS, d->fcols, NULL};
    d->dim = (fb_table){D_COLS, d->dcols, NULL};
    d->tiny = (fb_table){1, d->tcols, NULL};
    for (int c = 0; c < D_COLS; c++) {
        d->scols[c] = d->dcols[c];
        d->scols[c].length = d->dim_rows < STAR_ROWS ? d->dim_rows : STAR_ROWS;
    }
    d->star = (fb_table){D_COLS, d->scols, NULL};
    for (int c = 0; c < D_COLS; c++) {
        d->pcols[c] = d->dcols[c];
        d->pcols[c].length = d->dim_rows < SMALL_PROBE_ROWS ? d->dim_rows : SMALL_PROBE_ROWS;
    }
    d->small = (fb_table){D_COLS, d->pcols, NULL};
    return 0;
}

/* The experiments: each builds one plan (returning its root). */
typedef enum experiment {
    X_FIXED,      /* tiny -> count */
    X_FIXED2,     /* tiny semi join (build tiny) -> count: two pipelines */
    X_COUNT_A,    /* fact[a] -> count */
    X_COUNT_AG,   /* fact[a, g] -> count */
    X_FILTER,     /* fact[a, g] -> a < 500 AND g < 512 -> count (the second predicate over a selection) */
    X_COUNT_V,    /* fact[v] -> count */
    X_PROJECT,    /* fact[v] -> v * 3 -> count */
    X_BUILD,      /* tiny inner join (build fact[id]) -> count */
    X_COUNT_K,    /* fact[k] -> count */
    X_PROBE,      /* fact[k] inner join dim[k, p] (perfect hash, every row matches) -> count */
    X_COUNT_K0,   /* fact[k0] -> count */
    X_PROBE0,     /* fact[k0] inner join dim[k, p] (perfect hash, no row matches) -> count */
    X_COUNT_HK,   /* fact[hk] -> count */
    X_HASH_PROBE, /* fact[hk] inner join dim[hk, p] (hash table) -> count */
    X_COUNT_KM,   /* fact[km] -> count */
    X_PROBE_MIX,  /* fact[km] inner join dim[k, p] (perfect hash, 1/4 of the rows match, at random) -> count */
    X_TINY_FILTER, /* tiny -> filter -> count */
    X_STAR3,      /* tiny semi join three builds of the first STAR_ROWS of dim[k, p] filtered p < 48 -> count:
                     three build pipelines that start together, as a star schema's */
    X_COUNT_KS,   /* fact[ks] -> count */
    X_PROBE0_SMALL, /* fact[ks] inner join the first SMALL_PROBE_ROWS of dim[k, p] (X_PROBE0, a small table) */
    X_COUNT_KB,   /* fact[kb] -> count */
    X_PROBE_BIG,  /* fact[kb] inner join dim[bk, p] (perfect hash over 2^18 keys, no row matches) -> count */
    X_COUNT_GV,   /* fact[g, v] -> count */
    X_AGG,        /* fact[g, v] -> group by g sum(v) */
    X_COLLECT,    /* fact[a] -> result */
    X_COUNT_SV,   /* the first rows/4 of fact[v] -> count */
    X_SORT,       /* the first rows/4 of fact[v] -> sort by v */
    X_COUNT
} experiment;

static fb_status build_experiment(fb_plan *p, cal_data *d, experiment x, fb_plan_node *root)
{
    static const fb_plan_agg count = {FB_AGG_COUNT_STAR, 0};
    fb_plan_node s = -1, t = -1, b = -1;
    size_t c0;
    switch (x) {
    case X_FIXED:
    case X_FIXED2:
    case X_TINY_FILTER:
        FB_FORWARD_IF_ERROR(fb_plan_scan(p, &d->tiny, "tiny", NULL, 0, &s));
        if (x == X_TINY_FILTER) {
            fb_plan_pred pr = {.kind = FB_PLAN_PRED_CMP, .column = 0, .op = FB_CMP_LT, .value = 500};
            FB_FORWARD_IF_ERROR(fb_plan_filter(p, s, &pr, 1, &t));
            s = t;
        }
        if (x == X_FIXED2) {
            size_t k0 = 0;
            FB_FORWARD_IF_ERROR(fb_plan_scan(p, &d->tiny, "tiny", NULL, 0, &b));
            FB_FORWARD_IF_ERROR(fb_plan_join(p, s, b, &k0, &k0, 1, FB_JOIN_SEMI, NULL, 0, &t));
            s = t;
        }
        break;
    case X_COUNT_A:
    case X_COLLECT:
        c0 = F_A;
        FB_FORWARD_IF_ERROR(fb_plan_scan(p, &d->fact, "fact", &c0, 1, &s));
        if (x == X_COLLECT) {
            *root = s;
            return FB_OK;
        }
        break;
    case X_COUNT_AG:
    case X_FILTER: {
        size_t cols[2] = {F_A, F_G};
        FB_FORWARD_IF_ERROR(fb_plan_scan(p, &d->fact, "fact", cols, 2, &s));
        if (x == X_FILTER) {
            fb_plan_pred pr[2] = {{.kind = FB_PLAN_PRED_CMP, .column = 0, .op = FB_CMP_LT, .value = 500},
                                  {.kind = FB_PLAN_PRED_CMP, .column = 1, .op = FB_CMP_LT, .value = 512}};
            FB_FORWARD_IF_ERROR(fb_plan_filter(p, s, pr, 2, &t));
            s = t;
        }
        break;
    }
    case X_COUNT_V:
    case X_PROJECT:
        c0 = F_V;
        FB_FORWARD_IF_ERROR(fb_plan_scan(p, &d->fact, "fact", &c0, 1, &s));
        if (x == X_PROJECT) {
            FB_FORWARD_IF_ERROR(fb_plan_project(p, s, FB_PLAN_MUL, 0, 0, 1, 3, &t));
            s = t;
        }
        break;
    case X_BUILD: {
        c0 = F_ID;
        size_t k0 = 0;
        FB_FORWARD_IF_ERROR(fb_plan_scan(p, &d->tiny, "tiny", NULL, 0, &s));
        FB_FORWARD_IF_ERROR(fb_plan_scan(p, &d->fact, "fact", &c0, 1, &b));
        FB_FORWARD_IF_ERROR(fb_plan_join(p, s, b, &k0, &k0, 1, FB_JOIN_INNER, NULL, 0, &t));
        s = t;
        break;
    }
    case X_COUNT_K:
    case X_PROBE:
    case X_COUNT_K0:
    case X_PROBE0:
    case X_COUNT_HK:
    case X_HASH_PROBE:
    case X_COUNT_KM:
    case X_PROBE_MIX:
    case X_COUNT_KS:
    case X_PROBE0_SMALL:
    case X_COUNT_KB:
    case X_PROBE_BIG: {
        int hash = x == X_COUNT_HK || x == X_HASH_PROBE, big = x == X_COUNT_KB || x == X_PROBE_BIG;
        int small = x == X_COUNT_KS || x == X_PROBE0_SMALL;
        c0 = hash ? F_HK : big ? F_KB : small ? F_KS : x == X_COUNT_KM || x == X_PROBE_MIX ? F_KM
                                                   : x == X_COUNT_K0 || x == X_PROBE0 ? F_K0 : F_K;
        FB_FORWARD_IF_ERROR(fb_plan_scan(p, &d->fact, "fact", &c0, 1, &s));
        if (x == X_PROBE || x == X_PROBE0 || x == X_HASH_PROBE || x == X_PROBE_MIX || x == X_PROBE_BIG ||
            x == X_PROBE0_SMALL) {
            size_t dc[2] = {hash ? D_HK : big ? D_BK : D_K, D_P}, k0 = 0, pay = 1;
            FB_FORWARD_IF_ERROR(fb_plan_scan(p, small ? &d->small : &d->dim, "dim", dc, 2, &b));
            FB_FORWARD_IF_ERROR(fb_plan_join(p, s, b, &k0, &k0, 1, FB_JOIN_INNER, &pay, 1, &t));
            s = t;
        }
        break;
    }
    case X_STAR3: {
        FB_FORWARD_IF_ERROR(fb_plan_scan(p, &d->tiny, "tiny", NULL, 0, &s));
        for (int k = 0; k < 3; k++) {
            size_t dc[2] = {D_K, D_P}, k0 = 0;
            fb_plan_node f;
            fb_plan_pred pr = {.kind = FB_PLAN_PRED_CMP, .column = 1, .op = FB_CMP_LT, .value = 48};
            FB_FORWARD_IF_ERROR(fb_plan_scan(p, &d->star, "dim", dc, 2, &b));
            FB_FORWARD_IF_ERROR(fb_plan_filter(p, b, &pr, 1, &f));
            FB_FORWARD_IF_ERROR(fb_plan_join(p, s, f, &k0, &k0, 1, FB_JOIN_SEMI, NULL, 0, &t));
            s = t;
        }
        break;
    }
    case X_COUNT_GV:
    case X_AGG: {
        size_t cols[2] = {F_G, F_V};
        FB_FORWARD_IF_ERROR(fb_plan_scan(p, &d->fact, "fact", cols, 2, &s));
        if (x == X_AGG) {
            size_t key = 0;
            fb_plan_agg sum = {FB_AGG_SUM, 1};
            return fb_plan_aggregate(p, s, &key, 1, &sum, 1, root);
        }
        break;
    }
    case X_COUNT_SV:
    case X_SORT: {
        fb_column v = d->fcols[F_V];
        v.length = d->rows / 4;
        fb_table quarter = {1, &v, NULL};
        FB_FORWARD_IF_ERROR(fb_plan_scan(p, &quarter, "fact", NULL, 0, &s));
        if (x == X_SORT) {
            fb_plan_sort_key key = {0, 0, 0};
            return fb_plan_sort(p, s, &key, 1, -1, root);
        }
        break;
    }
    case X_COUNT:
        break;
    }
    return fb_plan_aggregate(p, s, NULL, 0, &count, 1, root);
}

/* Whether the device's rates use experiment x: the operators' (the host's rates are the CPU's). */
static int device_experiment(experiment x)
{
    switch (x) {
    case X_FIXED:
    case X_FIXED2:
    case X_TINY_FILTER:
    case X_STAR3:
    case X_COUNT_AG:
    case X_FILTER:
    case X_COUNT_V:
    case X_PROJECT:
    case X_COUNT_K:
    case X_PROBE:
    case X_COUNT_K0:
    case X_PROBE0:
    case X_COUNT_HK:
    case X_HASH_PROBE:
    case X_COUNT_KM:
    case X_PROBE_MIX:
    case X_COUNT_KS:
    case X_PROBE0_SMALL:
        return 1;
    default:
        return 0;
    }
}

/* Every experiment's best time (t[X_COUNT]) of CAL_RUNS(rows) runs under `placement`, after a warm-up, in
 * rounds that run each experiment once (a burst of other work on the machine then slows one run of many
 * experiments rather than every run of one, whose difference to its base it would inflate); the fixed
 * costs (tens of microseconds) run 5 times a round. With extra_cal, extra[X_COUNT] = the copies and
 * launches the gpu prediction charges for each experiment's plan. */
static fb_status time_experiments(fb_ctx *ctx, cal_data *d, fb_placement placement,
                                  const fb_plan_calibration *extra_cal, double *t, double *extra)
{
    fb_plan *plans[X_COUNT] = {0};
    fb_plan_node roots[X_COUNT];
    fb_status st = FB_OK;
    for (int x = 0; x < X_COUNT && st == FB_OK; x++) {
        t[x] = INFINITY;
        if (extra_cal && !device_experiment((experiment)x)) {
            t[x] = extra[x] = 0;
            continue;
        }
        st = fb_plan_create(ctx, &plans[x]);
        if (st == FB_OK)
            st = build_experiment(plans[x], d, (experiment)x, &roots[x]);
        if (st == FB_OK && extra_cal)
            st = fb_plan_gpu_extra(plans[x], roots[x], extra_cal, &extra[x]);
    }
    int rounds = CAL_RUNS(d->rows);
    for (int i = -1; i < rounds && st == FB_OK; i++) {
        for (int x = 0; x < X_COUNT && st == FB_OK; x++) {
            if (!plans[x])
                continue;
            int reps = x == X_FIXED || x == X_FIXED2 || x == X_TINY_FILTER ? 5 : 1;
            for (int k = 0; k < reps && st == FB_OK; k++) {
                fb_plan_result *res = NULL;
                st = fb_plan_run(plans[x], roots[x], placement, &res);
                if (st == FB_OK && i >= 0 && res->seconds < t[x])
                    t[x] = res->seconds;
                fb_plan_result_free(res);
            }
        }
    }
    for (int x = 0; x < X_COUNT; x++)
        fb_plan_destroy(plans[x]);
    return st;
}

static double floor_rate(double r)
{
    return isfinite(r) && r > RATE_FLOOR ? r : RATE_FLOOR;
}

/* The rates from the experiments' times t[X_COUNT] (each rate the difference of two plans). With `host`, the
 * host's rates (fixed costs, scan, the sinks) are taken from it and only the operators' are measured: under
 * gpu placement a pipeline's source, sink and scheduling run on the CPU workers as under cpu. */
static void derive_rates(const double *t, const cal_data *d, const fb_plan_rates *host, fb_plan_rates *r)
{
    double n = (double)d->rows, nd = (double)d->dim_rows, ns = (double)(d->rows / 4);
    if (host) {
        *r = *host;
    } else {
        /* A pipeline's fixed cost: what a second (1-row) pipeline adds to a plan; the run's own fixed cost
         * (t[X_FIXED] - pipeline_s) cancels in every difference below. */
        r->pipeline_s = floor_rate(t[X_FIXED2] - t[X_FIXED]);
        r->start_s = floor_rate(t[X_FIXED] - r->pipeline_s);
        r->scan_row_s = floor_rate((t[X_COUNT_A] - t[X_FIXED]) / n);
        /* The build plan: two pipelines (the 1-row probe and the build) and n rows scanned and built. */
        r->build_row_s = floor_rate((t[X_BUILD] - t[X_FIXED2]) / n - r->scan_row_s);
        r->agg_row_s = floor_rate((t[X_AGG] - t[X_COUNT_GV]) / n);
        r->collect_row_s = floor_rate((t[X_COLLECT] - t[X_COUNT_A]) / n);
        r->sort_row_s = floor_rate((t[X_SORT] - t[X_COUNT_SV]) / ns);
    }
    r->filter_row_s = floor_rate((t[X_FILTER] - t[X_COUNT_AG]) / (2 * n)); /* two predicates */
    r->project_row_s = floor_rate((t[X_PROJECT] - t[X_COUNT_V]) / n);
    double dim_build = r->pipeline_s + nd * (r->scan_row_s + r->build_row_s);
    /* k matches on every row, k0 on few_f of them: the line through both, at f = 0 and 1 */
    double f0 = d->few_f, p1 = (t[X_PROBE] - t[X_COUNT_K] - dim_build) / n,
           p0 = (t[X_PROBE0] - t[X_COUNT_K0] - dim_build) / n;
    r->probe_match_row_s = floor_rate((p1 - p0) / (1 - f0));
    r->probe_row_s = floor_rate(p0 - f0 * r->probe_match_row_s);
    r->hash_probe_row_s = floor_rate((t[X_HASH_PROBE] - t[X_COUNT_HK] - dim_build) / n);
    /* the mix: what the probe of km costs beyond the straight line between none and all at its match
     * fraction, over mix(f) (fb_plan_rates: W = 2 on the CPU, 16 on a device) */
    double f = d->mix_f, w = host ? 16 : 2, shape = (1 - pow(f, w) - pow(1 - f, w)) / (1 - pow(2, 1 - w));
    double line = r->probe_row_s + f * r->probe_match_row_s;
    r->probe_mix_row_s = shape > 0 ? floor_rate(((t[X_PROBE_MIX] - t[X_COUNT_KM] - dim_build) / n - line) / shape)
                                   : RATE_FLOOR;
    /* the big perfect hash (a device's tables are hash tables: no range term there) */
    r->probe_big_row_s = host ? 0 : floor_rate((t[X_PROBE_BIG] - t[X_COUNT_KB] - dim_build) / n);
}

static void read_cpu_name(char *buf, size_t size)
{
    snprintf(buf, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon)
            continue;
        colon++;
        while (*colon == ' ' || *colon == '\t')
            colon++;
        snprintf(buf, size, "%.*s", (int)strcspn(colon, "\n"), colon);
        break;
    }
    fclose(f);
}

fb_status fb_plan_calibrate(fb_ctx *ctx, int64_t rows, fb_plan_calibration *out)
{
    FB_RETURN_ERROR_IF(!ctx || !out, ctx, FB_ERR_INVALID_ARG, "ctx and out must not be NULL");
    FB_RETURN_ERROR_IF(rows < 1024 || rows > ((int64_t)1 << 26), ctx, FB_ERR_INVALID_ARG,
                       "calibration rows must be in 1024..2^26, not %lld", (long long)rows);
    cal_data d;
    if (cal_make(&d, rows) != 0) {
        cal_free(&d);
        return FB_ERROR(ctx, FB_ERR_OUT_OF_MEMORY, "no memory for %lld calibration rows", (long long)rows);
    }
    double t[X_COUNT];
    fb_status st = time_experiments(ctx, &d, FB_PLACEMENT_CPU, NULL, t, NULL);
    if (st != FB_OK) {
        cal_free(&d);
        return st;
    }
    fb_plan_calibration c;
    memset(&c, 0, sizeof c);
    derive_rates(t, &d, NULL, &c.cpu);
    c.workers = fb_ctx_threads(ctx);
    c.rows = rows;
    read_cpu_name(c.cpu_name, sizeof c.cpu_name);
    cal_free(&d);
    *out = c;
    return FB_OK;
}

/* ---- measuring the OpenCL device ------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs `call` (a statement setting st) once to warm up, then `runs` times; `best` is the fastest. */
#define BEST_OF(runs, best, call)                                                                                   \
    do {                                                                                                            \
        (best) = INFINITY;                                                                                          \
        for (int run_ = -1; run_ < (runs) && st == FB_OK; run_++) {                                                 \
            double t0_ = now_s();                                                                                   \
            call;                                                                                                   \
            double t_ = now_s() - t0_;                                                                              \
            if (st == FB_OK && run_ >= 0 && t_ < (best))                                                            \
                (best) = t_;                                                                                        \
        }                                                                                                           \
    } while (0)

/* Seconds to copy `bytes` at `gbps` (0: unknown, free). */
static double copy_s(double bytes, double gbps)
{
    return gbps > 0 ? bytes / (gbps * 1e9) : 0;
}

typedef struct dev_bufs {
    uint32_t *sel;
    int64_t *out, *ids_b, *ids_p;
    int32_t *kp;
    uint8_t *valid;
    uint8_t *bools;
} dev_bufs;

static void dev_bufs_free(dev_bufs *b)
{
    free(b->sel);
    free(b->out);
    free(b->ids_b);
    free(b->ids_p);
    free(b->valid);
    free(b->kp);
    free(b->bools);
}

/* The twins' rates (see fb_plan_calibrate_device()): each timing minus its copies and one launch. */
static fb_status calibrate_twins(fb_ctx *ctx, cal_data *d, fb_plan_calibration *c)
{
    size_t n = (size_t)d->rows;
    double dn = (double)n;
    dev_bufs b = {0};
    b.sel = malloc(4 * n);
    b.out = malloc(8 * n);
    b.ids_b = malloc(8 * n);
    b.ids_p = malloc(8 * n);
    b.valid = malloc(n / 8 + 1);
    b.kp = malloc(4 * n);
    b.bools = malloc(16);
    if (!b.sel || !b.out || !b.ids_b || !b.ids_p || !b.valid || !b.kp || !b.bools) {
        dev_bufs_free(&b);
        return FB_ERROR(ctx, FB_ERR_OUT_OF_MEMORY, "no memory for the device calibration");
    }
    double h2d = c->opencl.h2d_gbps, d2h = c->opencl.d2h_gbps, t, launch;
    fb_plan_rates *r = &c->opencl.rates;
    const fb_plan_rates *cpu = &c->cpu;
    fb_status st = FB_OK;
    int64_t n_out = 0, pairs = 0;
    int32_t c500 = 500;
    /* launch: a 1-row comparison with its copies */
    fb_column one = d->fcols[F_A];
    one.length = 1;
    fb_bool bo = {1, b.bools, b.bools + 8};
    BEST_OF(5 * CAL_RUNS(d->rows), launch, st = fb_cl_expr_cmp(ctx, &one, FB_CMP_LT, &c500, NULL, 1, &bo));
    c->opencl.launch_s = floor_rate(launch);
    /* filter: a < 500 over every row, the selection back */
    BEST_OF(CAL_RUNS(d->rows), t,
            st = fb_cl_select_cmp(ctx, &d->fcols[F_A], FB_CMP_LT, &c500, NULL, (int64_t)n, b.sel, (int64_t)n, &n_out));
    r->filter_row_s = floor_rate((t - launch - copy_s(4 * dn, h2d) - copy_s(4.0 * (double)n_out, d2h)) / dn);
    /* project: v * 3 (int64) */
    int64_t three = 3;
    fb_column_out po = {FB_TYPE_INT64, (int64_t)n, b.out, b.valid, 0, 0};
    BEST_OF(CAL_RUNS(d->rows), t,
            st = fb_cl_expr_arith_const(ctx, FB_ARITH_MUL, &d->fcols[F_V], &three, 0, NULL, (int64_t)n, &po));
    r->project_row_s = floor_rate((t - launch - copy_s(8 * dn, h2d) - copy_s(8.125 * dn, d2h)) / dn);
    fb_join_pairs jp = {b.ids_b, b.ids_p, (int64_t)n, 0, 0};
    /* probes of the dimension's dense unique keys: none of k0 matches, every k; each less the time of the
     * same call with a 1-row probe side (the dimension's table built) */
    double t0, dim_build;
    BEST_OF(CAL_RUNS(d->rows), dim_build,
            st = fb_cl_join_probe(ctx, &d->dcols[D_K], 0, &d->tcols[0], 0, FB_JOIN_INNER, &jp, &pairs));
    BEST_OF(CAL_RUNS(d->rows), t0,
            st = fb_cl_join_probe(ctx, &d->dcols[D_K], 0, &d->fcols[F_K0], 0, FB_JOIN_INNER, &jp, &pairs));
    r->probe_row_s = floor_rate((t0 - dim_build - copy_s(4 * dn, h2d)) / dn);
    /* the device's table of a dimension-sized build side, built by every probe call */
    c->opencl.table_row_s = floor_rate((dim_build - launch - copy_s(4 * (double)d->dim_rows + 4, h2d)) /
                                       (double)d->dim_rows);
    BEST_OF(CAL_RUNS(d->rows), t,
            st = fb_cl_join_probe(ctx, &d->dcols[D_K], 0, &d->fcols[F_K], 0, FB_JOIN_INNER, &jp, &pairs));
    double matches = pairs > 0 ? (double)pairs : 1;
    r->probe_match_row_s = floor_rate((t - t0 - copy_s(16 * matches, d2h)) / matches);
    /* half of the keys matching (alternate rows of k and k0 by a hash): what that costs beyond the mean of
     * none and all (work-items that diverge) */
    for (size_t i = 0; i < n; i++)
        b.kp[i] = (d->a[i] & 1) ? d->k[i] : d->k0[i];
    fb_column kh = fb_column_make(FB_TYPE_INT32, b.kp, (int64_t)n, NULL);
    double t_half;
    BEST_OF(CAL_RUNS(d->rows), t_half,
            st = fb_cl_join_probe(ctx, &d->dcols[D_K], 0, &kh, 0, FB_JOIN_INNER, &jp, &pairs));
    c->opencl.probe_mix_row_s =
        floor_rate((t_half - copy_s(16.0 * (double)pairs, d2h) - (t0 + (t - copy_s(16 * matches, d2h))) / 2) / dn);
    /* the same probe (every key matches) of a small table: what a probe row costs there, relative to
     * the dimension's table (a device's probe slows down as its table outgrows the caches) */
    if (d->dim_rows > SMALL_TABLE_ROWS) {
        double big = (t - dim_build - copy_s(4 * dn, h2d) - copy_s(16 * matches, d2h)) / dn, small_build, small;
        fb_column sd = d->dcols[D_K], sp = fb_column_make(FB_TYPE_INT32, b.kp, (int64_t)n, NULL);
        sd.length = SMALL_TABLE_ROWS;
        for (size_t i = 0; i < n; i++)
            b.kp[i] = d->k[i] % (2 * SMALL_TABLE_ROWS);
        BEST_OF(CAL_RUNS(d->rows), small_build,
                st = fb_cl_join_probe(ctx, &sd, 0, &d->tcols[0], 0, FB_JOIN_INNER, &jp, &pairs));
        BEST_OF(CAL_RUNS(d->rows), small, st = fb_cl_join_probe(ctx, &sd, 0, &sp, 0, FB_JOIN_INNER, &jp, &pairs));
        small = (small - small_build - copy_s(4 * dn, h2d) - copy_s(16.0 * (double)pairs, d2h)) / dn;
        if (st == FB_OK && big > 0 && small > 0) {
            c->opencl.small_table_ratio = small / big < 1 ? small / big : 1;
            c->opencl.table_rows = (double)d->dim_rows;
        }
    }
    /* a probe of int64 keys (half match) */
    fb_column one_hk = d->fcols[F_HK];
    one_hk.length = 1;
    BEST_OF(CAL_RUNS(d->rows), dim_build,
            st = fb_cl_join_probe(ctx, &d->dcols[D_HK], 0, &one_hk, 0, FB_JOIN_INNER, &jp, &pairs));
    BEST_OF(CAL_RUNS(d->rows), t,
            st = fb_cl_join_probe(ctx, &d->dcols[D_HK], 0, &d->fcols[F_HK], 0, FB_JOIN_INNER, &jp, &pairs));
    r->hash_probe_row_s =
        floor_rate((t - dim_build - copy_s(8 * dn, h2d) - copy_s(16.0 * (double)pairs, d2h)) / dn);
    /* what the host does under gpu placement (the source, the sinks, scheduling): the CPU's rates */
    r->scan_row_s = cpu->scan_row_s;
    r->collect_row_s = cpu->collect_row_s;
    r->build_row_s = cpu->build_row_s;
    r->agg_row_s = cpu->agg_row_s;
    r->sort_row_s = cpu->sort_row_s;
    r->pipeline_s = cpu->pipeline_s;
    r->start_s = cpu->start_s;
    dev_bufs_free(&b);
    return st;
}

/* The rates from the calibration plans run with gpu placement, each time less the copies and launches the
 * gpu prediction charges for its plan; FB_ERR_NO_DEVICE (with nothing measured) when gpu plans cannot run. */
static fb_status calibrate_plans(fb_ctx *ctx, cal_data *d, fb_plan_calibration *c)
{
    double t[X_COUNT], extra[X_COUNT];
    FB_FORWARD_IF_ERROR(time_experiments(ctx, d, FB_PLACEMENT_GPU, c, t, extra));
    for (int x = 0; x < X_COUNT; x++)
        t[x] -= extra[x];
    /* a device pipeline's fixed cost: a 1-row filter's plan over a plan without operators; a device
     * table's: the 1-row join's plan (two pipelines, a device table, a device probe) over that, less the
     * second pipeline's host cost */
    c->opencl.job_s = floor_rate(t[X_TINY_FILTER] - t[X_FIXED]);
    c->opencl.table_s = floor_rate(t[X_FIXED2] - t[X_FIXED] - c->cpu.pipeline_s - c->opencl.job_s);
    /* ... or, where more than that, what three build pipelines with device filters that start together
     * (X_STAR3) take beyond their host work, the device's filters, copies and tables (extra) and the probe
     * pipeline's job: per build, its job and table */
    {
        const fb_plan_rates *h = &c->cpu, *g = &c->opencl.rates;
        double sr = (double)(d->dim_rows < STAR_ROWS ? d->dim_rows : STAR_ROWS), kept = sr * 48.0 / 97.0;
        double host = t[X_FIXED] + 3 * (h->pipeline_s + sr * (h->scan_row_s + g->filter_row_s) + kept * h->build_row_s);
        double per_build = (t[X_STAR3] - host - c->opencl.job_s) / 3 - c->opencl.job_s;
        if (isfinite(per_build) && per_build > c->opencl.table_s)
            c->opencl.table_s = per_build;
    }
    /* the operators' experiments less those fixed costs (their base plans have no operators) */
    static const experiment ops[] = {X_FILTER, X_PROJECT, X_PROBE, X_PROBE0, X_HASH_PROBE, X_PROBE_MIX, X_PROBE0_SMALL};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        t[ops[i]] -= c->opencl.job_s + (ops[i] == X_FILTER || ops[i] == X_PROJECT ? 0 : c->opencl.table_s);
    derive_rates(t, d, &c->cpu, &c->opencl.rates);
    /* the probe of a small table (SMALL_PROBE_ROWS) over that of the dimension's: a device's probe cost moves
     * with its table's size (caches); this replaces the twins' ratio (at 2048 rows) */
    double sr = (double)(d->dim_rows < SMALL_PROBE_ROWS ? d->dim_rows : SMALL_PROBE_ROWS), n = (double)d->rows;
    const fb_plan_rates *h = &c->cpu;
    double small = (t[X_PROBE0_SMALL] - t[X_COUNT_KS] - (h->pipeline_s + sr * (h->scan_row_s + h->build_row_s))) / n;
    double big = c->opencl.rates.probe_row_s + d->few_f * c->opencl.rates.probe_match_row_s;
    if (d->dim_rows > SMALL_PROBE_ROWS && isfinite(small) && small > 0 && big > 0) {
        c->opencl.small_table_ratio = small / big < 1 ? small / big : 1;
        c->opencl.small_table_rows = sr;
        c->opencl.table_rows = (double)d->dim_rows;
    }
    return FB_OK;
}

fb_status fb_plan_cost_device(fb_ctx *ctx)
{
    int index;
    return fb_cl_open(ctx, &index);
}

fb_status fb_plan_calibrate_device(fb_ctx *ctx, int64_t rows, fb_plan_calibration *cal)
{
    FB_RETURN_ERROR_IF(!ctx || !cal, ctx, FB_ERR_INVALID_ARG, "ctx and cal must not be NULL");
    FB_RETURN_ERROR_IF(rows != 0 && (rows < 1024 || rows > ((int64_t)1 << 26)), ctx, FB_ERR_INVALID_ARG,
                       "calibration rows must be 0 or in 1024..2^26, not %lld", (long long)rows);
    int index = -1;
    FB_FORWARD_IF_ERROR(fb_cl_open(ctx, &index));
    if (rows == 0) { /* the device morsels' rows: a device's cost per row moves with the morsel's size */
        rows = fb_plan_device_morsel(ctx);
        rows = rows < 1024 ? 1024 : rows;
    }
    fb_cl_device_info info;
    FB_FORWARD_IF_ERROR(fb_cl_device_get_info(ctx, index, &info));
    fb_plan_calibration c = *cal;
    memset(&c.opencl, 0, sizeof c.opencl);
    snprintf(c.opencl.device, sizeof c.opencl.device, "%.127s", info.name);
    c.opencl.shares_cores = info.is_cpu != 0;
    c.opencl.rows = rows;
    size_t bytes = (size_t)rows * 8;
    bytes = bytes < ((size_t)1 << 20) ? (size_t)1 << 20 : bytes > ((size_t)64 << 20) ? (size_t)64 << 20 : bytes;
    FB_FORWARD_IF_ERROR(fb_cl_measure_transfer(ctx, bytes, CAL_RUNS(rows), &c.opencl.h2d_gbps, &c.opencl.d2h_gbps));
    cal_data d;
    if (cal_make(&d, rows) != 0) {
        cal_free(&d);
        return FB_ERROR(ctx, FB_ERR_OUT_OF_MEMORY, "no memory for %lld calibration rows", (long long)rows);
    }
    fb_status st = calibrate_twins(ctx, &d, &c);
    if (st == FB_OK) {
        /* gpu plans, when this version runs them (a 1-row plan tells), replace the twins' rates */
        fb_plan *p = NULL;
        fb_plan_node root;
        fb_plan_result *res = NULL;
        fb_status gst = fb_plan_create(ctx, &p);
        if (gst == FB_OK)
            gst = build_experiment(p, &d, X_FIXED2, &root);
        if (gst == FB_OK)
            gst = fb_plan_run(p, root, FB_PLACEMENT_GPU, &res);
        fb_plan_result_free(res);
        fb_plan_destroy(p);
        if (gst == FB_OK)
            c.opencl.from_plans = calibrate_plans(ctx, &d, &c) == FB_OK; /* else the twins' rates stay */
    }
    cal_free(&d);
    if (st != FB_OK)
        return st;
    c.opencl.has_opencl = 1;
    *cal = c;
    return FB_OK;
}

/* ---- the file --------------------------------------------------------------------------------------------- */

fb_status fb_plan_calibration_path(fb_ctx *ctx, char *buf, size_t size)
{
    FB_RETURN_ERROR_IF(!buf || size == 0, ctx, FB_ERR_INVALID_ARG, "buf must not be NULL or empty");
    const char *env = getenv("FB_CALIBRATION"), *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    int n;
    if (env && env[0])
        n = snprintf(buf, size, "%s", env);
    else if (xdg && xdg[0])
        n = snprintf(buf, size, "%s/fb/calibration.json", xdg);
    else if (home && home[0])
        n = snprintf(buf, size, "%s/.config/fb/calibration.json", home);
    else {
        buf[0] = '\0';
        return FB_ERROR(ctx, FB_ERR_INVALID_ARG, "no calibration path: FB_CALIBRATION, XDG_CONFIG_HOME and HOME are unset");
    }
    FB_RETURN_ERROR_IF(n < 0 || (size_t)n >= size, ctx, FB_ERR_INVALID_ARG, "the calibration path is longer than %zu",
                       size);
    return FB_OK;
}

/* mkdir -p of the directories above a file path. */
static int make_parents(const char *path)
{
    char dir[1024];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return -1;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", (unsigned)*s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void json_rates(FILE *f, const fb_plan_rates *r)
{
    fb_plan_rates c = *r;
    fprintf(f, "{");
    for (size_t i = 0; i < N_RATES; i++)
        fprintf(f, "%s\"%s\": %.9g", i ? ", " : "", rate_names[i], *rate_at(&c, i));
    fprintf(f, "}");
}

fb_status fb_plan_calibration_save(fb_ctx *ctx, const fb_plan_calibration *cal, const char *path)
{
    FB_RETURN_ERROR_IF(!cal, ctx, FB_ERR_INVALID_ARG, "cal must not be NULL");
    char def[1024];
    if (!path) {
        FB_FORWARD_IF_ERROR(fb_plan_calibration_path(ctx, def, sizeof def));
        path = def;
        FB_RETURN_ERROR_IF(make_parents(path) != 0, ctx, FB_ERR_IO, "cannot make the directories of %s: %s", path,
                           strerror(errno));
    }
    FILE *f = fopen(path, "w");
    FB_RETURN_ERROR_IF(!f, ctx, FB_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    fprintf(f, "{\"fb_calibration\": 1, \"fb_version\": ");
    json_str(f, fb_version_string());
    fprintf(f, ", \"cpu_name\": ");
    json_str(f, cal->cpu_name);
    fprintf(f, ", \"workers\": %d, \"rows\": %lld,\n \"cpu\": ", cal->workers, (long long)cal->rows);
    json_rates(f, &cal->cpu);
    fprintf(f, ",\n \"opencl\": {\"has_opencl\": %d, \"device\": ", cal->opencl.has_opencl ? 1 : 0);
    json_str(f, cal->opencl.device);
    fprintf(f,
            ", \"h2d_gbps\": %.9g, \"d2h_gbps\": %.9g, \"launch_s\": %.9g, \"table_row_s\": %.9g, \"small_table_rows\": %.9g,\n"
            "  \"table_rows\": %.9g, \"small_table_ratio\": %.9g, \"probe_mix_row_s\": %.9g, \"from_plans\": %d,\n"
            "  \"shares_cores\": %d, \"rows\": %lld, \"job_s\": %.9g, \"table_s\": %.9g, \"rates\": ",
            cal->opencl.h2d_gbps, cal->opencl.d2h_gbps, cal->opencl.launch_s, cal->opencl.table_row_s,
            cal->opencl.small_table_rows,
            cal->opencl.table_rows, cal->opencl.small_table_ratio, cal->opencl.probe_mix_row_s,
            cal->opencl.from_plans ? 1 : 0,
            cal->opencl.shares_cores ? 1 : 0, (long long)cal->opencl.rows, cal->opencl.job_s, cal->opencl.table_s);
    json_rates(f, &cal->opencl.rates);
    fprintf(f, "}}\n");
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    FB_RETURN_ERROR_IF(bad, ctx, FB_ERR_IO, "writing %s failed", path);
    return FB_OK;
}

/* The object that follows "key": in [begin, end) as [*ob, *oe); -1 when absent. */
static int find_object(const char *begin, const char *end, const char *key, const char **ob, const char **oe)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    size_t pl = strlen(pat);
    for (const char *p = begin; p + pl <= end; p++) {
        if (memcmp(p, pat, pl) != 0)
            continue;
        const char *q = p + pl;
        while (q < end && (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r' || *q == ':'))
            q++;
        if (q >= end || *q != '{')
            return -1;
        int depth = 0;
        for (const char *r = q; r < end; r++) {
            depth += *r == '{';
            depth -= *r == '}';
            if (depth == 0) {
                *ob = q;
                *oe = r + 1;
                return 0;
            }
        }
        return -1;
    }
    return -1;
}

/* The value text after "key": in [begin, end) (at top level of that range or deeper: keys are unique). */
static const char *find_value(const char *begin, const char *end, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    size_t pl = strlen(pat);
    for (const char *p = begin; p + pl <= end; p++) {
        if (memcmp(p, pat, pl) != 0)
            continue;
        const char *q = p + pl;
        while (q < end && (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r'))
            q++;
        if (q >= end || *q != ':')
            continue;
        q++;
        while (q < end && (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r'))
            q++;
        return q < end ? q : NULL;
    }
    return NULL;
}

static int read_number(const char *begin, const char *end, const char *key, double *out)
{
    const char *v = find_value(begin, end, key);
    if (!v)
        return -1;
    char *e = NULL;
    errno = 0;
    double d = strtod(v, &e);
    if (e == v || errno || !isfinite(d) || e > end)
        return -1;
    *out = d;
    return 0;
}

static void read_string(const char *begin, const char *end, const char *key, char *buf, size_t size)
{
    buf[0] = '\0';
    const char *v = find_value(begin, end, key);
    if (!v || *v != '"')
        return;
    size_t n = 0;
    for (v++; v < end && *v != '"' && n + 1 < size; v++) {
        if (*v == '\\' && v + 1 < end)
            v++;
        buf[n++] = *v;
    }
    buf[n] = '\0';
}

static fb_status read_rates(fb_ctx *ctx, const char *path, const char *begin, const char *end, const char *section,
                            fb_plan_rates *out)
{
    for (size_t i = 0; i < N_RATES; i++) {
        double v;
        if (i >= N_RATES_REQUIRED && !find_value(begin, end, rate_names[i])) {
            *rate_at(out, i) = 0; /* a file from before this rate: unknown */
            continue;
        }
        FB_RETURN_ERROR_IF(read_number(begin, end, rate_names[i], &v) != 0 || v < 0, ctx, FB_ERR_IO,
                           "%s: %s.%s is missing or not a finite number >= 0 (run fbench calibrate)", path, section,
                           rate_names[i]);
        *rate_at(out, i) = v;
    }
    return FB_OK;
}

fb_status fb_plan_calibration_load(fb_ctx *ctx, const char *path, fb_plan_calibration *out)
{
    FB_RETURN_ERROR_IF(!out, ctx, FB_ERR_INVALID_ARG, "out must not be NULL");
    char def[1024];
    if (!path) {
        FB_FORWARD_IF_ERROR(fb_plan_calibration_path(ctx, def, sizeof def));
        path = def;
    }
    FILE *f = fopen(path, "rb");
    FB_RETURN_ERROR_IF(!f, ctx, FB_ERR_IO, "cannot read the calibration %s: %s (run fbench calibrate)", path,
                       strerror(errno));
    char *text = malloc(1 << 16);
    size_t len = text ? fread(text, 1, (1 << 16) - 1, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    FB_RETURN_ERROR_IF(!text, ctx, FB_ERR_OUT_OF_MEMORY, "no memory to read %s", path);
    text[len] = '\0';
    const char *end = text + len, *cb, *ce, *ob, *oe, *rb, *re;
    fb_plan_calibration c;
    memset(&c, 0, sizeof c);
    double num;
    fb_status st = FB_OK;
    if (rerr)
        st = FB_ERROR(ctx, FB_ERR_IO, "reading %s failed", path);
    else if (read_number(text, end, "fb_calibration", &num) != 0 || num != 1)
        st = FB_ERROR(ctx, FB_ERR_IO, "%s is not an fb calibration file (version 1; run fbench calibrate)", path);
    else if (find_object(text, end, "cpu", &cb, &ce) != 0)
        st = FB_ERROR(ctx, FB_ERR_IO, "%s has no \"cpu\" rates (run fbench calibrate)", path);
    if (st == FB_OK)
        st = read_rates(ctx, path, cb, ce, "cpu", &c.cpu);
    if (st == FB_OK && find_object(text, end, "opencl", &ob, &oe) == 0) {
        c.opencl.has_opencl = read_number(ob, oe, "has_opencl", &num) == 0 && num != 0;
        read_string(ob, oe, "device", c.opencl.device, sizeof c.opencl.device);
        /* the device's copies and launch: absent from older files (then 0: unknown) */
        const char *dev_names[7] = {"h2d_gbps",   "d2h_gbps",          "launch_s",       "table_row_s",
                                    "table_rows", "small_table_ratio", "probe_mix_row_s"};
        double *dev_fields[7] = {&c.opencl.h2d_gbps,   &c.opencl.d2h_gbps,          &c.opencl.launch_s,
                                 &c.opencl.table_row_s, &c.opencl.table_rows,       &c.opencl.small_table_ratio,
                                 &c.opencl.probe_mix_row_s};
        for (int i = 0; i < 7 && st == FB_OK; i++) {
            if (!find_value(ob, oe, dev_names[i]))
                continue;
            if (read_number(ob, oe, dev_names[i], dev_fields[i]) != 0 || *dev_fields[i] < 0)
                st = FB_ERROR(ctx, FB_ERR_IO, "%s: opencl.%s is not a finite number >= 0 (run fbench calibrate)", path,
                              dev_names[i]);
        }
        c.opencl.from_plans = read_number(ob, oe, "from_plans", &num) == 0 && num != 0;
        c.opencl.shares_cores = read_number(ob, oe, "shares_cores", &num) == 0 && num != 0;
        /* "rows" of the opencl section (not its rates'): before "rates" in the file; absent: 0 */
        const char *rates_at = NULL, *re_ = NULL;
        if (find_object(ob, oe, "rates", &rates_at, &re_) != 0)
            rates_at = oe;
        c.opencl.rows = read_number(ob, rates_at, "rows", &num) == 0 && num >= 0 ? (int64_t)num : 0;
        c.opencl.job_s = read_number(ob, rates_at, "job_s", &num) == 0 && num >= 0 ? num : 0;
        c.opencl.table_s = read_number(ob, rates_at, "table_s", &num) == 0 && num >= 0 ? num : 0;
        c.opencl.small_table_rows = read_number(ob, rates_at, "small_table_rows", &num) == 0 && num >= 0 ? num : 0;
        if (st == FB_OK && c.opencl.has_opencl) {
            if (find_object(ob, oe, "rates", &rb, &re) != 0)
                st = FB_ERROR(ctx, FB_ERR_IO, "%s: opencl.has_opencl is set but opencl.rates is missing", path);
            else
                st = read_rates(ctx, path, rb, re, "opencl.rates", &c.opencl.rates);
        }
    }
    if (st == FB_OK) {
        if (read_number(text, end, "workers", &num) == 0)
            c.workers = (int)num;
        if (read_number(text, end, "rows", &num) == 0)
            c.rows = (int64_t)num;
        /* cpu_name is at the top level, before "cpu": search only there to not read another key */
        read_string(text, cb, "cpu_name", c.cpu_name, sizeof c.cpu_name);
    }
    free(text);
    if (st == FB_OK)
        *out = c;
    return st;
}
