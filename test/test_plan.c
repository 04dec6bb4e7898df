/* test_plan.c - query plans (fb_plan.h) against a reference executor written here (nested loops over the
 * same arrays): filters with IN / BETWEEN / comparisons and nulls, inner / left / semi / anti joins with
 * duplicate and null keys, several joins in one probe pipeline, projections with overflow, grouped and
 * ungrouped aggregation with nulls, sort, top-N and limit, empty inputs, explain, and the named errors of
 * the builder. The SSB queries against DuckDB are in ssb_plan_check.py. */
#include "fb_test.h"

#include "fb/fb_cl.h"
#include "fb/fb_plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static fb_ctx *ctx;
static uint64_t rng;

enum { NF = 6000, ND = 400, NE = 50 };

/* fact F(k int32 nullable, e int32, v int32 nullable, w int64, id int64 unique) */
static int32_t fk[NF], fe[NF], fv[NF];
static int64_t fw[NF], fid[NF];
static uint8_t fk_valid[NF / 8 + 1], fv_valid[NF / 8 + 1];
/* dimension D(k int32 nullable with duplicates, a int32) and E(k int32 unique, b int32) */
static int32_t dk[ND], da[ND], ek[NE], eb[NE];
static uint8_t dk_valid[ND / 8 + 1];
/* U(k int32 unique (a permutation of 0..ND-1), some null, a int32): joins over it take the perfect hash */
static int32_t uk[ND], ua[ND];
static uint8_t uk_valid[ND / 8 + 1];

static int bit(const uint8_t *v, int i)
{
    return (v[i >> 3] >> (i & 7)) & 1;
}

static void setbit(uint8_t *v, int i, int on)
{
    if (on)
        v[i >> 3] |= (uint8_t)(1u << (i & 7));
    else
        v[i >> 3] &= (uint8_t)~(1u << (i & 7));
}

static void make_data(void)
{
    for (int i = 0; i < NF; i++) {
        fk[i] = (int32_t)(fbt_next(&rng) % 300) - 20; /* some keys match nothing */
        fe[i] = (int32_t)(fbt_next(&rng) % (NE + 5));
        fv[i] = (int32_t)(fbt_next(&rng) % 2001) - 1000;
        if (i % 97 == 0)
            fv[i] = i % 2 ? INT32_MAX : INT32_MIN;
        fw[i] = (int64_t)(fbt_next(&rng) % 100000) - 50000;
        fid[i] = i * 7919LL % NF; /* a permutation: unique */
        setbit(fk_valid, i, fbt_next(&rng) % 10 != 0);
        setbit(fv_valid, i, fbt_next(&rng) % 8 != 0);
    }
    for (int i = 0; i < ND; i++) {
        dk[i] = (int32_t)(fbt_next(&rng) % 250); /* duplicates */
        da[i] = (int32_t)(fbt_next(&rng) % 7) - 3;
        setbit(dk_valid, i, fbt_next(&rng) % 15 != 0);
    }
    for (int i = 0; i < ND; i++) {
        uk[i] = (int32_t)((i * 151) % ND);
        ua[i] = (int32_t)(fbt_next(&rng) % 7) - 3;
        setbit(uk_valid, i, fbt_next(&rng) % 20 != 0);
    }
    for (int i = 0; i < NE; i++) {
        ek[i] = i;
        eb[i] = (int32_t)(fbt_next(&rng) % 5);
    }
}

static fb_column fcols[5], dcols[2], ecols[2], ucols[2];
static fb_table ft, dt, et, ut;

static int setup(void **state)
{
    (void)state;
    rng = fbt_seed();
    make_data();
    fcols[0] = fb_column_make(FB_TYPE_INT32, fk, NF, fk_valid);
    fcols[1] = fb_column_make(FB_TYPE_INT32, fe, NF, NULL);
    fcols[2] = fb_column_make(FB_TYPE_INT32, fv, NF, fv_valid);
    fcols[3] = fb_column_make(FB_TYPE_INT64, fw, NF, NULL);
    fcols[4] = fb_column_make(FB_TYPE_INT64, fid, NF, NULL);
    dcols[0] = fb_column_make(FB_TYPE_INT32, dk, ND, dk_valid);
    dcols[1] = fb_column_make(FB_TYPE_INT32, da, ND, NULL);
    ucols[0] = fb_column_make(FB_TYPE_INT32, uk, ND, uk_valid);
    ucols[1] = fb_column_make(FB_TYPE_INT32, ua, ND, NULL);
    ecols[0] = fb_column_make(FB_TYPE_INT32, ek, NE, NULL);
    ecols[1] = fb_column_make(FB_TYPE_INT32, eb, NE, NULL);
    static const char *fn[] = {"k", "e", "v", "w", "id"}, *dn[] = {"dk", "a"}, *en[] = {"ek", "b"};
    ft = (fb_table){5, fcols, fn};
    dt = (fb_table){2, dcols, dn};
    et = (fb_table){2, ecols, en};
    ut = (fb_table){2, ucols, dn};
    fb_options *o = NULL;
    if (fb_options_create(&o) != FB_OK || fb_options_set_threads(o, 2) != FB_OK)
        return -1;
    fb_status st = fb_ctx_create(o, &ctx);
    fb_options_destroy(o);
    return st == FB_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fb_ctx_destroy(ctx);
    return 0;
}

static int64_t cell(const fb_plan_result *r, int c, int64_t i, int *valid)
{
    const fb_column *col = &r->table.columns[c];
    *valid = fb_column_is_valid(col, i);
    if (col->type == FB_TYPE_INT32)
        return ((const int32_t *)col->data)[col->offset + i];
    return ((const int64_t *)col->data)[col->offset + i];
}

/* The filter the tests share: e IN (1, 3, 5..20) AND w BETWEEN -30000 AND 40000 AND v <> 0. */
static int f_pass(int i)
{
    int in = fe[i] == 1 || fe[i] == 3 || (fe[i] >= 5 && fe[i] <= 20);
    return in && fw[i] >= -30000 && fw[i] <= 40000 && bit(fv_valid, i) && fv[i] != 0;
}

static fb_plan_node scan_filter_f(fb_plan *p)
{
    fb_plan_node s, f;
    assert_fb_ok(ctx, fb_plan_scan(p, &ft, "F", NULL, 0, &s));
    static const int64_t in[] = {1, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    fb_plan_pred preds[3] = {
        {.kind = FB_PLAN_PRED_IN, .column = 1, .in_values = in, .n_in = 18},
        {.kind = FB_PLAN_PRED_BETWEEN, .column = 3, .lo = -30000, .hi = 40000},
        {.kind = FB_PLAN_PRED_CMP, .column = 2, .op = FB_CMP_NE, .value = 0},
    };
    assert_fb_ok(ctx, fb_plan_filter(p, s, preds, 3, &f));
    return f;
}

/* Grouped by D.a (and null), over F filtered JOIN D ON k = dk of `type`: count(*), sum(v), min(v), count(v). */
static void check_join_agg(fb_join_type type, int unique)
{
    const fb_table *dim = unique ? &ut : &dt;
    const int32_t *bk_ = unique ? uk : dk, *ba = unique ? ua : da;
    const uint8_t *bv = unique ? uk_valid : dk_valid;
    fb_plan *p;
    assert_fb_ok(ctx, fb_plan_create(ctx, &p));
    fb_plan_node f = scan_filter_f(p), d, j, a, s;
    assert_fb_ok(ctx, fb_plan_scan(p, dim, "D", NULL, 0, &d));
    size_t pk = 0, bk = 0, pay = 1;
    assert_fb_ok(ctx, fb_plan_join(p, f, d, &pk, &bk, 1, type, &pay, 1, &j));
    int grouped = type == FB_JOIN_INNER || type == FB_JOIN_LEFT;
    size_t key = 5; /* the payload column a */
    fb_plan_agg aggs[4] = {{FB_AGG_COUNT_STAR, 0}, {FB_AGG_SUM, 2}, {FB_AGG_MIN, 2}, {FB_AGG_COUNT, 2}};
    assert_fb_ok(ctx, fb_plan_aggregate(p, j, grouped ? &key : NULL, grouped ? 1 : 0, aggs, 4, &a));
    fb_plan_sort_key sk = {0, 0, 1};
    assert_fb_ok(ctx, fb_plan_sort(p, a, &sk, 1, -1, &s));
    fb_plan_result *r = NULL;
    assert_fb_ok(ctx, fb_plan_run(p, grouped ? s : a, FB_PLACEMENT_CPU, &r));

    /* Reference: slot 0 = null group, slot 1 + (a + 3) for a in -3..3. */
    int64_t cnt[8] = {0}, sum[8] = {0}, cntv[8] = {0}, mn[8];
    int has[8] = {0};
    for (int g = 0; g < 8; g++)
        mn[g] = INT64_MAX;
    for (int i = 0; i < NF; i++) {
        if (!f_pass(i))
            continue;
        int matches = 0;
        for (int b = 0; b < ND; b++) {
            if (!bit(fk_valid, i) || !bit(bv, b) || fk[i] != bk_[b])
                continue;
            matches++;
            if (type == FB_JOIN_INNER || type == FB_JOIN_LEFT) {
                int g = 1 + ba[b] + 3;
                has[g] = 1, cnt[g]++;
                if (bit(fv_valid, i))
                    sum[g] += fv[i], cntv[g]++, mn[g] = fv[i] < mn[g] ? fv[i] : mn[g];
            }
        }
        int emit = (type == FB_JOIN_SEMI && matches) || (type == FB_JOIN_ANTI && !matches) ||
                   (type == FB_JOIN_LEFT && !matches);
        if (emit) {
            int g = type == FB_JOIN_LEFT ? 0 : 1;
            has[g] = 1, cnt[g]++;
            if (bit(fv_valid, i))
                sum[g] += fv[i], cntv[g]++, mn[g] = fv[i] < mn[g] ? fv[i] : mn[g];
        }
    }
    if (!grouped) {
        assert_int_equal(r->rows, 1);
        int ok;
        assert_int_equal(cell(r, 0, 0, &ok), cnt[1]);
        assert_int_equal(cell(r, 1, 0, &ok), sum[1]);
        assert_int_equal(cell(r, 3, 0, &ok), cntv[1]);
    } else {
        int64_t row = 0;
        for (int g = 0; g < 8; g++) {
            if (!has[g])
                continue;
            assert_true(row < r->rows);
            int ok;
            int64_t k = cell(r, 0, row, &ok);
            assert_int_equal(ok, g != 0); /* nulls first */
            if (g)
                assert_int_equal(k, g - 4);
            assert_int_equal(cell(r, 1, row, &ok), cnt[g]);
            int64_t s_ = cell(r, 2, row, &ok);
            assert_int_equal(ok, cntv[g] > 0);
            if (ok)
                assert_int_equal(s_, sum[g]);
            int64_t m = cell(r, 3, row, &ok);
            if (ok)
                assert_int_equal(m, mn[g]);
            assert_int_equal(cell(r, 4, row, &ok), cntv[g]);
            row++;
        }
        assert_int_equal(row, r->rows);
    }
    fb_plan_result_free(r);
    fb_plan_destroy(p);
}

/* Each join type over D (duplicate keys: the hash table) and U (unique dense keys: the perfect hash). */
static void test_inner(void **state) { (void)state; check_join_agg(FB_JOIN_INNER, 0); check_join_agg(FB_JOIN_INNER, 1); }
static void test_left(void **state) { (void)state; check_join_agg(FB_JOIN_LEFT, 0); check_join_agg(FB_JOIN_LEFT, 1); }
static void test_semi(void **state) { (void)state; check_join_agg(FB_JOIN_SEMI, 0); check_join_agg(FB_JOIN_SEMI, 1); }
static void test_anti(void **state) { (void)state; check_join_agg(FB_JOIN_ANTI, 0); check_join_agg(FB_JOIN_ANTI, 1); }

/* Two joins in one probe pipeline, a projection and a top-N sort over a unique tiebreaker. */
static void test_star_project_topn(void **state)
{
    (void)state;
    fb_plan *p;
    assert_fb_ok(ctx, fb_plan_create(ctx, &p));
    fb_plan_node f = scan_filter_f(p), d, e, j1, j2, pr, s;
    assert_fb_ok(ctx, fb_plan_scan(p, &dt, "D", NULL, 0, &d));
    assert_fb_ok(ctx, fb_plan_scan(p, &et, "E", NULL, 0, &e));
    size_t k0 = 0, k1 = 1, pay = 1;
    assert_fb_ok(ctx, fb_plan_join(p, f, e, &k1, &k0, 1, FB_JOIN_INNER, &pay, 1, &j1)); /* + b (col 5) */
    assert_fb_ok(ctx, fb_plan_join(p, j1, d, &k0, &k0, 1, FB_JOIN_INNER, &pay, 1, &j2)); /* + a (col 6) */
    assert_fb_ok(ctx, fb_plan_project(p, j2, FB_PLAN_MUL, 2, 3, 0, 0, &pr));             /* v * w (col 7) */
    fb_plan_sort_key keys[3] = {{7, 1, 0}, {4, 0, 0}, {6, 0, 0}}; /* a row of F may join several of D */
    assert_fb_ok(ctx, fb_plan_sort(p, pr, keys, 3, 25, &s));
    fb_plan_result *r = NULL;
    assert_fb_ok(ctx, fb_plan_run(p, s, FB_PLACEMENT_AUTO, &r));
    assert_int_equal(r->placement, FB_PLACEMENT_CPU);
    assert_int_equal(r->table.n_columns, 8);
    /* Reference: every joined row's (v*w, id, b, a), top 25 by v*w desc, id asc, a asc. */
    typedef struct {
        int64_t vw, id, b, a;
    } jr;
    jr *all = malloc(sizeof *all * NF * 8);
    int64_t n = 0;
    for (int i = 0; i < NF; i++) {
        if (!f_pass(i) || !bit(fk_valid, i) || fe[i] >= NE)
            continue;
        for (int b = 0; b < ND; b++)
            if (bit(dk_valid, b) && dk[b] == fk[i])
                all[n++] = (jr){(int64_t)fv[i] * fw[i], fid[i], eb[fe[i]], da[b]};
    }
    for (int64_t x = 0; x < n; x++) /* selection sort of the top 25 */
        for (int64_t y = x + 1; y < n && x < 25; y++)
            if (all[y].vw > all[x].vw || (all[y].vw == all[x].vw && all[y].id < all[x].id) ||
                (all[y].vw == all[x].vw && all[y].id == all[x].id && all[y].a < all[x].a)) {
                jr t = all[x];
                all[x] = all[y];
                all[y] = t;
            }
    assert_int_equal(r->rows, n < 25 ? n : 25);
    for (int64_t i = 0; i < r->rows; i++) {
        int ok;
        assert_int_equal(cell(r, 7, i, &ok), all[i].vw);
        assert_int_equal(cell(r, 4, i, &ok), all[i].id);
        assert_int_equal(cell(r, 5, i, &ok), all[i].b);
        assert_int_equal(cell(r, 6, i, &ok), all[i].a);
    }
    /* explain (analyze): the plan and its three pipelines. */
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    assert_fb_ok(ctx, fb_plan_explain(p, s, FB_PLACEMENT_AUTO, r, m));
    fclose(m);
    assert_non_null(strstr(text, "INNER HASH JOIN"));
    assert_non_null(strstr(text, "join build"));
    assert_non_null(strstr(text, "perfect hash"));
    assert_non_null(strstr(text, "top-25 sort"));
    assert_non_null(strstr(text, "analyzed:"));
    assert_non_null(strstr(text, "chose cpu"));
    free(text);
    assert_int_equal(r->pipelines, 3);
    free(all);
    fb_plan_result_free(r);
    fb_plan_destroy(p);
}

static void test_overflow_limit_empty(void **state)
{
    (void)state;
    fb_plan *p;
    assert_fb_ok(ctx, fb_plan_create(ctx, &p));
    fb_plan_node s, pr, l, f, a;
    assert_fb_ok(ctx, fb_plan_scan(p, &ft, "F", NULL, 0, &s));
    /* v * (w * 2^40) overflows for some rows (w up to 5e4, v up to 2^31). */
    assert_fb_ok(ctx, fb_plan_project(p, s, FB_PLAN_MUL, 3, 0, 1, INT64_C(1) << 40, &pr));
    fb_plan_node pr2;
    assert_fb_ok(ctx, fb_plan_project(p, pr, FB_PLAN_MUL, 5, 2, 0, 0, &pr2));
    fb_plan_result *r = NULL;
    assert_fb_status(ctx, fb_plan_run(p, pr2, FB_PLACEMENT_CPU, &r), FB_ERR_OVERFLOW);
    assert_null(r);
    /* limit without sort: that many rows, each a row of F. */
    assert_fb_ok(ctx, fb_plan_limit(p, s, 123, &l));
    assert_fb_ok(ctx, fb_plan_run(p, l, FB_PLACEMENT_CPU, &r));
    assert_int_equal(r->rows, 123);
    for (int64_t i = 0; i < r->rows; i++) {
        int ok;
        int64_t id = cell(r, 4, i, &ok);
        assert_true(id >= 0 && id < NF);
        int64_t row = -1;
        for (int k = 0; k < NF && row < 0; k++)
            if (fid[k] == id)
                row = k;
        assert_int_equal(cell(r, 3, i, &ok), fw[row]);
    }
    fb_plan_result_free(r);
    /* A filter nothing passes, then an ungrouped aggregate: one row, count 0, sum null. */
    fb_plan_pred none = {.kind = FB_PLAN_PRED_BETWEEN, .column = 3, .lo = 1, .hi = 0};
    assert_fb_ok(ctx, fb_plan_filter(p, s, &none, 1, &f));
    fb_plan_agg aggs[2] = {{FB_AGG_COUNT_STAR, 0}, {FB_AGG_SUM, 3}};
    assert_fb_ok(ctx, fb_plan_aggregate(p, f, NULL, 0, aggs, 2, &a));
    assert_fb_ok(ctx, fb_plan_run(p, a, FB_PLACEMENT_CPU, &r));
    assert_int_equal(r->rows, 1);
    int ok;
    assert_int_equal(cell(r, 0, 0, &ok), 0);
    cell(r, 1, 0, &ok);
    assert_false(ok);
    fb_plan_result_free(r);
    /* An empty table scanned, sorted, joined. */
    fb_column empty_cols[2] = {fb_column_make(FB_TYPE_INT32, NULL, 0, NULL), fb_column_make(FB_TYPE_INT32, NULL, 0, NULL)};
    fb_table empty = {2, empty_cols, NULL};
    fb_plan_node es, j, so;
    assert_fb_ok(ctx, fb_plan_scan(p, &empty, "empty", NULL, 0, &es));
    size_t k0 = 0;
    assert_fb_ok(ctx, fb_plan_join(p, s, es, &k0, &k0, 1, FB_JOIN_INNER, NULL, 0, &j));
    fb_plan_sort_key sk = {0, 0, 0};
    assert_fb_ok(ctx, fb_plan_sort(p, j, &sk, 1, -1, &so));
    assert_fb_ok(ctx, fb_plan_run(p, so, FB_PLACEMENT_CPU, &r));
    assert_int_equal(r->rows, 0);
    fb_plan_result_free(r);
    fb_plan_destroy(p);
}

static void test_errors(void **state)
{
    (void)state;
    fb_plan *p;
    assert_fb_ok(ctx, fb_plan_create(ctx, &p));
    fb_plan_node s, x, d;
    assert_fb_ok(ctx, fb_plan_scan(p, &ft, "F", NULL, 0, &s));
    assert_fb_ok(ctx, fb_plan_scan(p, &dt, "D", NULL, 0, &d));
    size_t bad_col = 9;
    assert_fb_status(ctx, fb_plan_scan(p, &ft, "F", &bad_col, 1, &x), FB_ERR_INVALID_ARG);
    fb_plan_pred big = {.kind = FB_PLAN_PRED_CMP, .column = 0, .op = FB_CMP_EQ, .value = INT64_C(1) << 40};
    assert_fb_status(ctx, fb_plan_filter(p, s, &big, 1, &x), FB_ERR_OUT_OF_RANGE);
    fb_plan_pred badop = {.kind = FB_PLAN_PRED_CMP, .column = 0, .op = (fb_cmp)42};
    assert_fb_status(ctx, fb_plan_filter(p, s, &badop, 1, &x), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_plan_filter(p, 99, &badop, 1, &x), FB_ERR_INVALID_ARG);
    size_t k64 = 3, k32 = 0;
    assert_fb_status(ctx, fb_plan_join(p, s, d, &k64, &k32, 1, FB_JOIN_INNER, NULL, 0, &x), FB_ERR_UNSUPPORTED_TYPE);
    assert_fb_status(ctx, fb_plan_join(p, s, d, &k32, &k32, 1, FB_JOIN_MARK, NULL, 0, &x), FB_ERR_INVALID_ARG);
    fb_plan_agg fsum = {FB_AGG_SUM, 7};
    assert_fb_status(ctx, fb_plan_aggregate(p, s, NULL, 0, &fsum, 1, &x), FB_ERR_INVALID_ARG);
    fb_plan_result *r = (fb_plan_result *)&r;
    /* gpu and hybrid placement: test_plan_cl */
    assert_fb_status(ctx, fb_plan_run(p, s, (fb_placement)7, &r), FB_ERR_INVALID_ARG);
    assert_null(r);
    assert_non_null(strstr(fb_last_error(ctx), "placement"));
    assert_fb_status(ctx, fb_plan_run(p, 1000, FB_PLACEMENT_CPU, &r), FB_ERR_INVALID_ARG);
    assert_string_equal(fb_placement_name(FB_PLACEMENT_HYBRID), "hybrid");
    fb_type types[FB_PLAN_MAX_COLUMNS];
    assert_int_equal(fb_plan_schema(p, s, types), 5);
    assert_int_equal(types[3], FB_TYPE_INT64);
    assert_int_equal(fb_plan_schema(p, 77, types), -1);
    fb_plan_destroy(p);
}

/* ---- the cost model ---------------------------------------------------------------------------------- */

static char cal_dir[64];

static void cal_file(char *buf, size_t size, const char *name)
{
    if (!cal_dir[0]) {
        snprintf(cal_dir, sizeof cal_dir, "/tmp/fb-test-plan-XXXXXX");
        assert_non_null(mkdtemp(cal_dir));
    }
    snprintf(buf, size, "%s/%s", cal_dir, name);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static const double *rates_of(const fb_plan_rates *r, int i)
{
    const double *f[] = {&r->pipeline_s, &r->start_s, &r->scan_row_s,  &r->filter_row_s, &r->project_row_s, &r->probe_row_s, &r->probe_match_row_s,
                         &r->hash_probe_row_s, &r->build_row_s, &r->agg_row_s, &r->collect_row_s, &r->sort_row_s};
    return f[i];
}
#define N_RATE_FIELDS 12

static void test_calibrate_save_load(void **state)
{
    (void)state;
    fb_plan_calibration cal, back;
    assert_fb_status(ctx, fb_plan_calibrate(ctx, 100, &cal), FB_ERR_INVALID_ARG);
    assert_fb_ok(ctx, fb_plan_calibrate(ctx, 1 << 14, &cal));
    for (int i = 0; i < N_RATE_FIELDS; i++) {
        double v = *rates_of(&cal.cpu, i);
        assert_true(isfinite(v) && v > 0);
    }
    assert_int_equal(cal.workers, fb_ctx_threads(ctx));
    assert_int_equal(cal.rows, 1 << 14);
    assert_int_equal(cal.opencl.has_opencl, 0);
    /* save / load round trip, with OpenCL rates and a name that needs escaping */
    cal.opencl.has_opencl = 1;
    snprintf(cal.opencl.device, sizeof cal.opencl.device, "dev \"x\" \\ y");
    for (int i = 0; i < N_RATE_FIELDS; i++)
        *(double *)rates_of(&cal.opencl.rates, i) = (double)(i + 1) * 1.25e-9;
    char path[128];
    cal_file(path, sizeof path, "cal.json");
    assert_fb_ok(ctx, fb_plan_calibration_save(ctx, &cal, path));
    memset(&back, 0x5a, sizeof back);
    assert_fb_ok(ctx, fb_plan_calibration_load(ctx, path, &back));
    for (int i = 0; i < N_RATE_FIELDS; i++) {
        assert_true(fabs(*rates_of(&back.cpu, i) - *rates_of(&cal.cpu, i)) <= 1e-8 * *rates_of(&cal.cpu, i));
        assert_true(fabs(*rates_of(&back.opencl.rates, i) - *rates_of(&cal.opencl.rates, i)) <= 1e-17);
    }
    assert_int_equal(back.workers, cal.workers);
    assert_int_equal(back.rows, cal.rows);
    assert_int_equal(back.opencl.has_opencl, 1);
    assert_string_equal(back.opencl.device, cal.opencl.device);
    assert_string_equal(back.cpu_name, cal.cpu_name);
    /* the default path: $FB_CALIBRATION, else $XDG_CONFIG_HOME/fb/..., and save makes its directories */
    char def[256], xdg[128], want[256];
    setenv("FB_CALIBRATION", path, 1);
    assert_fb_ok(ctx, fb_plan_calibration_path(ctx, def, sizeof def));
    assert_string_equal(def, path);
    assert_fb_status(ctx, fb_plan_calibration_path(ctx, def, 4), FB_ERR_INVALID_ARG);
    unsetenv("FB_CALIBRATION");
    cal_file(xdg, sizeof xdg, "xdg");
    setenv("XDG_CONFIG_HOME", xdg, 1);
    assert_fb_ok(ctx, fb_plan_calibration_path(ctx, def, sizeof def));
    snprintf(want, sizeof want, "%s/fb/calibration.json", xdg);
    assert_string_equal(def, want);
    assert_fb_ok(ctx, fb_plan_calibration_save(ctx, &cal, NULL));
    assert_fb_ok(ctx, fb_plan_calibration_load(ctx, NULL, &back));
    assert_true(back.cpu.sort_row_s > 0);
    remove(want);
    snprintf(want, sizeof want, "%s/fb", xdg);
    rmdir(want);
    rmdir(xdg);
    unsetenv("XDG_CONFIG_HOME");
    /* bad files: named errors that name the file (and the field) */
    char bad[128];
    cal_file(bad, sizeof bad, "bad.json");
    write_text(bad, "this is not json");
    assert_fb_status(ctx, fb_plan_calibration_load(ctx, bad, &back), FB_ERR_IO);
    assert_non_null(strstr(fb_last_error(ctx), "bad.json"));
    write_text(bad, "{\"fb_calibration\": 1, \"cpu\": {\"pipeline_s\": 1e-5, \"start_s\": 1e-4, \"scan_row_s\": 1e-10}}");
    assert_fb_status(ctx, fb_plan_calibration_load(ctx, bad, &back), FB_ERR_IO);
    assert_non_null(strstr(fb_last_error(ctx), "filter_row_s"));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char text[4096];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    char *at = strstr(text, "\"agg_row_s\": ");
    assert_non_null(at);
    at[13] = '-'; /* a negative rate */
    write_text(bad, text);
    assert_fb_status(ctx, fb_plan_calibration_load(ctx, bad, &back), FB_ERR_IO);
    assert_non_null(strstr(fb_last_error(ctx), "agg_row_s"));
    remove(bad);
    assert_fb_status(ctx, fb_plan_calibration_load(ctx, bad, &back), FB_ERR_IO);
    remove(path);
    rmdir(cal_dir);
    cal_dir[0] = '\0';
}

/* A calibration with round rates (no measuring: predictions are then exact arithmetic). */
static fb_plan_calibration fixed_cal(void)
{
    fb_plan_calibration c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < N_RATE_FIELDS; i++)
        *(double *)rates_of(&c.cpu, i) = i == 0 ? 1e-4 : 1e-9 * i;
    c.workers = 2;
    c.rows = 1 << 20;
    return c;
}

/* F (the first `rows` rows) filtered, joined with U (perfect hash) and E, grouped by e. */
static fb_plan_node star_plan(fb_plan *p, fb_table *t, fb_column *cols, int64_t rows)
{
    for (int c = 0; c < 5; c++) {
        cols[c] = fcols[c];
        cols[c].length = rows;
    }
    *t = (fb_table){5, cols, ft.names};
    fb_plan_node s, f, u, j, e, j2, a;
    assert_fb_ok(ctx, fb_plan_scan(p, t, "F", NULL, 0, &s));
    fb_plan_pred pr = {.kind = FB_PLAN_PRED_BETWEEN, .column = 3, .lo = -30000, .hi = 40000};
    assert_fb_ok(ctx, fb_plan_filter(p, s, &pr, 1, &f));
    assert_fb_ok(ctx, fb_plan_scan(p, &ut, "U", NULL, 0, &u));
    size_t pk = 0, bk = 0, pay = 1, pe = 1;
    assert_fb_ok(ctx, fb_plan_join(p, f, u, &pk, &bk, 1, FB_JOIN_INNER, &pay, 1, &j));
    assert_fb_ok(ctx, fb_plan_scan(p, &et, "E", NULL, 0, &e));
    assert_fb_ok(ctx, fb_plan_join(p, j, e, &pe, &bk, 1, FB_JOIN_SEMI, NULL, 0, &j2));
    size_t key = 1;
    fb_plan_agg agg = {FB_AGG_SUM, 3};
    assert_fb_ok(ctx, fb_plan_aggregate(p, j2, &key, 1, &agg, 1, &a));
    return a;
}

static char *explain_text(fb_plan *p, fb_plan_node root, fb_placement pl, const fb_plan_result *r)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    assert_fb_ok(ctx, fb_plan_explain(p, root, pl, r, f));
    fclose(f);
    return buf;
}

static void test_predict(void **state)
{
    (void)state;
    char missing[128];
    cal_file(missing, sizeof missing, "none.json");
    setenv("FB_CALIBRATION", missing, 1); /* no default file */
    fb_plan *p;
    assert_fb_ok(ctx, fb_plan_create(ctx, &p));
    fb_table small_t, big_t;
    fb_column small_c[5], big_c[5];
    fb_plan_node small = star_plan(p, &small_t, small_c, NF / 4), big = star_plan(p, &big_t, big_c, NF);
    double sec[16], total = 0;
    size_t n = 0;
    assert_fb_status(ctx, fb_plan_predict(p, big, FB_PLACEMENT_CPU, sec, 16, &n, &total), FB_ERR_IO);
    assert_non_null(strstr(fb_last_error(ctx), "fbench calibrate"));
    char *text = explain_text(p, big, FB_PLACEMENT_AUTO, NULL); /* explain still works */
    assert_non_null(strstr(text, "no calibration"));
    free(text);
    fb_plan_calibration cal = fixed_cal();
    assert_fb_ok(ctx, fb_plan_set_calibration(p, &cal));
    assert_fb_status(ctx, fb_plan_predict(p, big, FB_PLACEMENT_GPU, sec, 16, &n, &total), FB_ERR_NO_DEVICE);
    assert_fb_status(ctx, fb_plan_predict(p, 999, FB_PLACEMENT_CPU, sec, 16, &n, &total), FB_ERR_INVALID_ARG);
    /* one entry per pipeline, each positive, summing to the total */
    fb_plan_result *r = NULL;
    assert_fb_ok(ctx, fb_plan_run(p, big, FB_PLACEMENT_CPU, &r));
    assert_fb_ok(ctx, fb_plan_predict(p, big, FB_PLACEMENT_CPU, sec, 16, &n, &total));
    assert_int_equal((int)n, r->pipelines);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(sec[i] > 0 && isfinite(sec[i]));
        sum += sec[i];
    }
    assert_true(fabs(sum - total) <= 1e-12 * total);
    /* capacity smaller than the pipelines: n says how many there are */
    size_t n2 = 0;
    assert_fb_ok(ctx, fb_plan_predict(p, big, FB_PLACEMENT_CPU, sec, 1, &n2, NULL));
    assert_int_equal(n2, n);
    /* more input rows, more time: the probe pipeline (the last) and the total */
    double small_sec[16], small_total;
    size_t sn;
    assert_fb_ok(ctx, fb_plan_predict(p, small, FB_PLACEMENT_CPU, small_sec, 16, &sn, &small_total));
    assert_int_equal(sn, n);
    assert_true(small_sec[n - 1] < sec[n - 1]);
    assert_true(small_total < total);
    /* auto predicts what cpu does */
    double auto_total;
    assert_fb_ok(ctx, fb_plan_predict(p, big, FB_PLACEMENT_AUTO, NULL, 0, &n2, &auto_total));
    assert_true(auto_total == total);
    /* explain analyze: every pipeline predicted and compared */
    text = explain_text(p, big, FB_PLACEMENT_CPU, r);
    int predicted = 0, compared = 0;
    for (const char *at = text; (at = strstr(at, "predicted: cpu")); at++)
        predicted++;
    for (const char *at = text; (at = strstr(at, "measured/predicted")); at++)
        compared++;
    assert_int_equal(predicted, r->pipelines);
    assert_int_equal(compared, r->pipelines + 1); /* and the whole run */
    free(text);
    fb_plan_result_free(r);
    /* the filter over a scan is estimated on a sample: F is small, so the sample is all of it - exact */
    fb_plan_node s, f;
    assert_fb_ok(ctx, fb_plan_scan(p, &ft, "F", NULL, 0, &s));
    f = scan_filter_f(p);
    int64_t pass = 0;
    for (int i = 0; i < NF; i++)
        pass += f_pass(i);
    text = explain_text(p, f, FB_PLACEMENT_CPU, NULL);
    char want[64];
    snprintf(want, sizeof want, "(%lld rows into the sink)", (long long)pass);
    assert_non_null(strstr(text, want));
    free(text);
    /* groups of an aggregation: the distinct values of its key in the rows of its (filtered) dimension */
    fb_plan_node e, ef, j, a, so;
    assert_fb_ok(ctx, fb_plan_scan(p, &et, "E", NULL, 0, &e));
    fb_plan_pred lt = {.kind = FB_PLAN_PRED_CMP, .column = 0, .op = FB_CMP_LT, .value = 20};
    assert_fb_ok(ctx, fb_plan_filter(p, e, &lt, 1, &ef));
    size_t pk = 1, bk = 0, pay = 1, key = 5;
    assert_fb_ok(ctx, fb_plan_join(p, s, ef, &pk, &bk, 1, FB_JOIN_INNER, &pay, 1, &j));
    fb_plan_agg cnt = {FB_AGG_COUNT_STAR, 0};
    assert_fb_ok(ctx, fb_plan_aggregate(p, j, &key, 1, &cnt, 1, &a));
    fb_plan_sort_key sk = {0, 0, 0};
    assert_fb_ok(ctx, fb_plan_sort(p, a, &sk, 1, -1, &so));
    int seen[5] = {0}, distinct = 0;
    for (int i = 0; i < NE; i++)
        if (ek[i] < 20 && !seen[eb[i]]++)
            distinct++;
    text = explain_text(p, so, FB_PLACEMENT_CPU, NULL);
    snprintf(want, sizeof want, "(%d rows into the sink)", distinct);
    assert_non_null(strstr(strstr(text, "-> sort"), want));
    free(text);
    fb_plan_destroy(p);
    unsetenv("FB_CALIBRATION");
    rmdir(cal_dir);
    cal_dir[0] = '\0';
}

static void test_auto_placement(void **state)
{
    (void)state;
    fb_plan *p;
    assert_fb_ok(ctx, fb_plan_create(ctx, &p));
    fb_table t;
    fb_column c[5];
    fb_plan_node root = star_plan(p, &t, c, NF);
    int index, device = fb_cl_open(ctx, &index) == FB_OK;
    for (int faster = 0; faster < 2; faster++) {
        fb_plan_calibration cal = fixed_cal();
        cal.opencl.has_opencl = 1;
        for (int i = 0; i < N_RATE_FIELDS; i++)
            *(double *)rates_of(&cal.opencl.rates, i) = *rates_of(&cal.cpu, i) * (faster ? 0.01 : 100);
        assert_fb_ok(ctx, fb_plan_set_calibration(p, &cal));
        /* a device 100x slower: cpu; 100x faster: not cpu (when there is a device) */
        fb_placement pick;
        double totals[3];
        assert_fb_ok(ctx, fb_plan_predict_choice(p, root, &pick, totals));
        assert_int_equal(pick, faster && device ? pick : FB_PLACEMENT_CPU);
        if (faster && device)
            assert_int_not_equal(pick, FB_PLACEMENT_CPU);
        char want[32];
        snprintf(want, sizeof want, "chose %s", fb_placement_name(pick));
        fb_plan_result *r = NULL;
        assert_fb_ok(ctx, fb_plan_run(p, root, FB_PLACEMENT_AUTO, &r));
        if (!faster)
            assert_int_equal(r->placement, FB_PLACEMENT_CPU);
        char *text = explain_text(p, root, FB_PLACEMENT_AUTO, r);
        assert_non_null(strstr(text, want));
        assert_non_null(strstr(text, device ? "the smallest of cpu" : "no OpenCL device"));
        free(text);
        fb_plan_result_free(r);
    }
    fb_plan_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inner),  cmocka_unit_test(test_left),
        cmocka_unit_test(test_semi),   cmocka_unit_test(test_anti),
        cmocka_unit_test(test_star_project_topn), cmocka_unit_test(test_overflow_limit_empty),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_calibrate_save_load), cmocka_unit_test(test_predict),
        cmocka_unit_test(test_auto_placement),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
