/* fuzz_agg.c - libFuzzer target for kernel-level grouped and ungrouped aggregation (fb_agg.h) on every
 * CPU variant.
 *
 * The input decodes into 0..3 key columns (integer and date32 types, nulls, pools of duplicates or any
 * value), 1..3 value columns of any type, 0..8 aggregates (count(*), count, sum, min, max, avg over any
 * value column their type allows), a strategy (auto, direct, hash, partition), 1..3 morsels each with an
 * optional selection (any order, repeats), and a split point: the morsels before it go into one table,
 * the rest into a second one merged into the first. Checked against a scalar reference here: groups in
 * first-row order with null keys as one group, exact 128-bit integer sums (FB_ERR_OVERFLOW exactly when a
 * sum leaves int64), counts, SQL-order min/max (-0.0 returned as 0.0), averages, null results for groups
 * without a non-null value, float sums within reassociation error; and the context's memory back to zero. */
#include "fuzz_common.h"

#define MAX_ROWS 96
#define MAX_MORSELS 3
#define MAX_KEYS 3
#define MAX_VALUES 3
#define MAX_AGGS 8
#define MAX_GROUPS (MAX_ROWS * MAX_MORSELS * 2 + 1)

static const fb_type key_types[] = {FB_TYPE_INT8,   FB_TYPE_INT16,  FB_TYPE_INT32,  FB_TYPE_INT64, FB_TYPE_UINT8,
                                    FB_TYPE_UINT16, FB_TYPE_UINT32, FB_TYPE_UINT64, FB_TYPE_DATE32};

typedef struct morsel {
    fz_col keys[MAX_KEYS], vals[MAX_VALUES];
    fb_column kv[MAX_KEYS], vv[MAX_VALUES];
    int64_t n;
    uint32_t *sel;
    int64_t n_sel;
} morsel;

typedef struct ref_agg {
    int64_t count;   /* non-null values (count(*): rows) */
    __int128 isum;   /* integer sum */
    double fsum, fabs_sum;
    const void *min, *max; /* pointers to the values */
} ref_agg;

typedef struct ref_group {
    const morsel *m; /* where its first row is */
    int64_t row;
    ref_agg a[MAX_AGGS];
} ref_group;

static size_t g_nk;

static int same_key(const morsel *a, int64_t i, const morsel *b, int64_t j)
{
    for (size_t k = 0; k < g_nk; k++) {
        int va = fz_valid(&a->kv[k], i), vb = fz_valid(&b->kv[k], j);
        if (va != vb)
            return 0;
        if (va && fz_get_i64(a->kv[k].type, fz_at(&a->kv[k], i)) != fz_get_i64(b->kv[k].type, fz_at(&b->kv[k], j)))
            return 0;
    }
    return 1;
}

static int out_valid(const fb_column_out *o, int64_t i) { return o->validity ? (o->validity[i >> 3] >> (i & 7)) & 1 : 1; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    int nctx = fz_open_variants(1);
    size_t nk = fz_pick(&in, MAX_KEYS + 1), nvals = 1 + fz_pick(&in, MAX_VALUES), na = fz_pick(&in, MAX_AGGS + 1);
    g_nk = nk;
    fb_agg_strategy strategy = (fb_agg_strategy)fz_pick(&in, 4);
    int n_morsels = 1 + (int)fz_pick(&in, MAX_MORSELS);
    int split = (int)fz_pick(&in, (uint32_t)n_morsels + 1); /* morsels [split, n) go to the second table */
    fb_type ktypes[MAX_KEYS], vtypes[MAX_VALUES];
    for (size_t k = 0; k < nk; k++)
        ktypes[k] = key_types[fz_pick(&in, 9)];
    for (size_t j = 0; j < nvals; j++)
        vtypes[j] = fz_all_types[fz_pick(&in, FZ_N_TYPES)];
    fb_agg_desc aggs[MAX_AGGS];
    for (size_t a = 0; a < na; a++) {
        aggs[a].kind = (fb_agg_kind)fz_pick(&in, 6);
        aggs[a].input = (int32_t)fz_pick(&in, (uint32_t)nvals);
        aggs[a].type = vtypes[aggs[a].input];
        if ((aggs[a].kind == FB_AGG_SUM || aggs[a].kind == FB_AGG_AVG) && aggs[a].type == FB_TYPE_DATE32)
            aggs[a].kind = FB_AGG_MIN;
        if (aggs[a].kind == FB_AGG_COUNT_STAR)
            aggs[a].type = FB_TYPE_INVALID;
    }
    morsel ms[MAX_MORSELS];
    memset(ms, 0, sizeof ms);
    for (int m = 0; m < n_morsels; m++) {
        ms[m].n = fz_pick(&in, MAX_ROWS + 1);
        for (size_t k = 0; k < nk; k++) {
            fz_column(&in, ktypes[k], ms[m].n, 1, -1, &ms[m].keys[k]);
            ms[m].kv[k] = ms[m].keys[k].col;
        }
        for (size_t j = 0; j < nvals; j++) {
            fz_column(&in, vtypes[j], ms[m].n, 1, -1, &ms[m].vals[j]);
            ms[m].vv[j] = ms[m].vals[j].col;
        }
        if (ms[m].n > 0 && (fz_u8(&in) & 1)) {
            ms[m].n_sel = fz_pick(&in, (uint32_t)ms[m].n * 2 + 1);
            ms[m].sel = malloc(((size_t)ms[m].n_sel + 1) * sizeof *ms[m].sel);
            for (int64_t i = 0; i < ms[m].n_sel; i++)
                ms[m].sel[i] = fz_pick(&in, (uint32_t)ms[m].n);
        }
    }
    fb_agg_spec spec = {nk, ktypes, na, aggs, strategy};

    /* The reference, in processing order (morsels in order, each in selection order). */
    ref_group *groups = calloc(MAX_GROUPS, sizeof *groups);
    int64_t ng = nk ? 0 : 1;
    for (int m = 0; m < n_morsels; m++) {
        int64_t cnt = ms[m].sel ? ms[m].n_sel : ms[m].n;
        for (int64_t s = 0; s < cnt; s++) {
            int64_t r = ms[m].sel ? ms[m].sel[s] : s;
            int64_t g = 0;
            if (nk) {
                for (g = 0; g < ng && !same_key(groups[g].m, groups[g].row, &ms[m], r); g++)
                    ;
                if (g == ng) {
                    groups[ng].m = &ms[m];
                    groups[ng++].row = r;
                }
            }
            for (size_t a = 0; a < na; a++) {
                ref_agg *ra = &groups[g].a[a];
                if (aggs[a].kind == FB_AGG_COUNT_STAR) {
                    ra->count++;
                    continue;
                }
                const fb_column *c = &ms[m].vv[aggs[a].input];
                if (!fz_valid(c, r))
                    continue;
                const void *p = fz_at(c, r);
                ra->count++;
                if (fz_is_float(c->type)) {
                    double x = fz_get_f64(c->type, p);
                    ra->fsum += x;
                    ra->fabs_sum += fabs(x);
                } else if (c->type == FB_TYPE_UINT64) {
                    ra->isum += (__int128)(uint64_t)fz_get_i64(c->type, p);
                } else {
                    ra->isum += fz_get_i64(c->type, p);
                }
                if (!ra->min || fz_cmp_values(c->type, p, ra->min) < 0)
                    ra->min = p;
                if (!ra->max || fz_cmp_values(c->type, p, ra->max) > 0)
                    ra->max = p;
            }
        }
    }
    int overflow = 0;
    for (int64_t g = 0; g < ng; g++)
        for (size_t a = 0; a < na; a++)
            if (aggs[a].kind == FB_AGG_SUM && !fz_is_float(aggs[a].type) &&
                (groups[g].a[a].isum > INT64_MAX || groups[g].a[a].isum < INT64_MIN))
                overflow = 1;

    fb_column_out kout[MAX_KEYS], aout[MAX_AGGS];
    fb_type rtypes[MAX_AGGS];
    for (size_t k = 0; k < nk; k++) {
        kout[k].type = ktypes[k];
        kout[k].capacity = ng;
        kout[k].data = malloc((size_t)ng * 8 + 1);
        kout[k].validity = malloc((size_t)ng / 8 + 1);
    }
    for (size_t a = 0; a < na; a++) {
        FZ_CHECK(fb_agg_result_type(aggs[a].kind, aggs[a].type, &rtypes[a]) == FB_OK, "result type");
        aout[a].type = rtypes[a];
        aout[a].capacity = ng;
        aout[a].data = malloc((size_t)ng * 8 + 1);
        aout[a].validity = malloc((size_t)ng / 8 + 1);
    }

    for (int v = 0; v < nctx; v++) {
        fb_ctx *ctx = fz_ctx[v];
        const char *isa = fb_isa_name(fb_ctx_isa(ctx));
        size_t mem0 = fb_ctx_memory_used(ctx);
        fb_agg_table *t[2] = {NULL, NULL};
        FZ_OK(ctx, fb_agg_create(ctx, &spec, &t[0]));
        FZ_OK(ctx, fb_agg_create(ctx, &spec, &t[1]));
        int refused = 0;
        for (int m = 0; m < n_morsels && !refused; m++) {
            fb_status st = fb_agg_update(t[m >= split], nk ? ms[m].kv : NULL, ms[m].vv, nvals, ms[m].n, ms[m].sel, ms[m].n_sel);
            /* A forced direct table refuses keys spanning too many slots; nothing else may fail. */
            if (st == FB_ERR_CAPACITY && strategy == FB_AGG_STRATEGY_DIRECT)
                refused = 1;
            else
                FZ_OK(ctx, st);
        }
        if (!refused && split < n_morsels) {
            fb_status st = fb_agg_merge(t[0], t[1]);
            if (st == FB_ERR_CAPACITY && strategy == FB_AGG_STRATEGY_DIRECT)
                refused = 1;
            else
                FZ_OK(ctx, st);
        }
        if (!refused) {
            int64_t got_ng = -1;
            FZ_OK(ctx, fb_agg_group_count(t[0], &got_ng));
            FZ_CHECK(got_ng == ng, "%lld groups, expected %lld [isa %s, strategy %d]", (long long)got_ng, (long long)ng,
                     isa, strategy);
            fb_status st = fb_agg_result(t[0], nk ? kout : NULL, na ? aout : NULL);
            FZ_CHECK(st == (overflow ? FB_ERR_OVERFLOW : FB_OK), "fb_agg_result: %s (%s), expected %s [isa %s]",
                     fb_status_name(st), fb_last_error(ctx), overflow ? "FB_ERR_OVERFLOW" : "FB_OK", isa);
            for (int64_t g = 0; g < ng && !overflow; g++) {
                const ref_group *rg = &groups[g];
                for (size_t k = 0; k < nk; k++) {
                    const fb_column *c = &rg->m->kv[k];
                    int vw = fz_valid(c, rg->row);
                    FZ_CHECK(out_valid(&kout[k], g) == vw, "group %lld key %zu validity [isa %s]", (long long)g, k, isa);
                    if (vw)
                        FZ_CHECK(!memcmp((uint8_t *)kout[k].data + (size_t)g * fb_type_width(c->type), fz_at(c, rg->row),
                                         fb_type_width(c->type)),
                                 "group %lld key %zu differs (groups out of order?) [isa %s, strategy %d]", (long long)g, k,
                                 isa, strategy);
                }
                for (size_t a = 0; a < na; a++) {
                    const ref_agg *ra = &rg->a[a];
                    const fb_column_out *o = &aout[a];
                    fb_agg_kind kind = aggs[a].kind;
                    const void *p = (uint8_t *)o->data + (size_t)g * fb_type_width(rtypes[a]);
                    if (kind == FB_AGG_COUNT_STAR || kind == FB_AGG_COUNT) {
                        FZ_CHECK(out_valid(o, g) && fz_get_i64(FB_TYPE_INT64, p) == ra->count,
                                 "group %lld agg %zu (count): %lld, expected %lld [isa %s]", (long long)g, a,
                                 (long long)fz_get_i64(FB_TYPE_INT64, p), (long long)ra->count, isa);
                        continue;
                    }
                    FZ_CHECK(out_valid(o, g) == (ra->count > 0), "group %lld agg %zu (kind %d): validity %d, %lld values [isa %s]",
                             (long long)g, a, kind, out_valid(o, g), (long long)ra->count, isa);
                    if (!ra->count)
                        continue;
                    fb_type it = aggs[a].type;
                    if (kind == FB_AGG_MIN || kind == FB_AGG_MAX) {
                        const void *w = kind == FB_AGG_MIN ? ra->min : ra->max;
                        FZ_CHECK(fz_cmp_values(it, p, w) == 0, "group %lld agg %zu (%s of %s): %g, expected %g [isa %s]",
                                 (long long)g, a, kind == FB_AGG_MIN ? "min" : "max", fb_type_name(it), fz_get_f64(it, p),
                                 fz_get_f64(it, w), isa);
                        if (fz_is_float(it))
                            FZ_CHECK(!(fz_get_f64(it, p) == 0 && signbit(fz_get_f64(it, p))), "-0.0 returned by %s",
                                     kind == FB_AGG_MIN ? "min" : "max");
                        continue;
                    }
                    double got = fz_get_f64(FB_TYPE_FLOAT64, p);
                    if (kind == FB_AGG_SUM && !fz_is_float(it)) {
                        FZ_CHECK(fz_get_i64(FB_TYPE_INT64, p) == (int64_t)ra->isum, "group %lld agg %zu (sum of %s): %lld, expected %lld [isa %s]",
                                 (long long)g, a, fb_type_name(it), (long long)fz_get_i64(FB_TYPE_INT64, p),
                                 (long long)ra->isum, isa);
                        continue;
                    }
                    double want = fz_is_float(it) ? ra->fsum : (double)ra->isum;
                    double tol = fz_is_float(it) ? 1e-9 * ra->fabs_sum : 1e-12 * fabs(want);
                    if (kind == FB_AGG_AVG) {
                        want /= (double)ra->count;
                        tol = tol / (double)ra->count + 1e-12 * fabs(want);
                    }
                    if (fz_is_float(it) && (isinf(ra->fabs_sum) || isnan(ra->fabs_sum)))
                        continue; /* overflow or NaN: the order of additions decides */
                    FZ_CHECK(fabs(got - want) <= tol || (isnan(got) && isnan(want)) || got == want,
                             "group %lld agg %zu (%s of %s): %.17g, expected %.17g [isa %s]", (long long)g, a,
                             kind == FB_AGG_SUM ? "sum" : "avg", fb_type_name(it), got, want, isa);
                }
            }
        }
        fb_agg_destroy(t[0]);
        fb_agg_destroy(t[1]);
        FZ_NO_CTX_LEAK(ctx, mem0);
    }
    for (size_t k = 0; k < nk; k++)
        free(kout[k].data), free(kout[k].validity);
    for (size_t a = 0; a < na; a++)
        free(aout[a].data), free(aout[a].validity);
    for (int m = 0; m < n_morsels; m++) {
        for (size_t k = 0; k < nk; k++)
            fz_col_free(&ms[m].keys[k]);
        for (size_t j = 0; j < nvals; j++)
            fz_col_free(&ms[m].vals[j]);
        free(ms[m].sel);
    }
    free(groups);
    return 0;
}
