/* test_plan_cost.c - the cost model (fb_plan.h): the OpenCL calibration (fb_plan_calibrate_device) on this
 * machine's device, the calibration file's new fields (round trip, files without them), the documented gpu /
 * hybrid formulas checked against arithmetic done here, the NO_DEVICE messages, and - from real calibrations
 * taken here - that auto picks cpu for random plans and for every SSB query (through fbench) where the device
 * (PoCL) is slower than the CPU kernels, and the test: every pipeline's measured time within 2x of its
 * prediction under cpu, gpu and hybrid, for the 13 SSB queries at SF 0.1 and for plans built here (pipelines
 * predicted under 2 ms compared in aggregate per placement; the sanitizers leave the 2x comparisons out).
 * Needs an OpenCL device: it fails, not skips, without one (label opencl). */
#include "fb_test.h"

#include "fb/fb_cl.h"
#include "fb/fb_plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Under AddressSanitizer (or ThreadSanitizer, more so) the host code runs 2-3x slower but PoCL's kernels (compiled by PoCL, without it)
 * do not: "the device is slower than the CPU kernels" need not hold there, and auto may rightly pick it.
 * The auto tests then check that auto picks the smallest prediction. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FBT_HOST_SLOWED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define FBT_HOST_SLOWED 1
#endif
#endif
#ifndef FBT_HOST_SLOWED
#define FBT_HOST_SLOWED 0
#endif

static fb_ctx *ctx;
static uint64_t rng;
static fb_plan_calibration real; /* measured once, at small rows */

enum { NF = 1 << 16, NU = 2000, NH = 3000 };

/* fact F(u int32 -> U.k dense, h int64 -> H.k hashed, a int32 nullable, g int32, v int64) */
static int32_t fu[NF], fa[NF], fg[NF];
static int64_t fh[NF], fv[NF];
static uint8_t fa_valid[NF / 8];
/* U(k int32 0..NU-1 unique, x int32), H(k int64 sparse unique, y int32) */
static int32_t uk[NU], ux[NU], hy[NH];
static int64_t hk[NH];
static fb_column fcols[5], ucols[2], hcols[2];
static fb_table ft, ut, ht;
static char tmp_dir[64];

#define N_RATE_FIELDS 12
static double *rate(fb_plan_rates *r, int i)
{
    double *f[N_RATE_FIELDS] = {&r->pipeline_s,   &r->start_s,     &r->scan_row_s,        &r->filter_row_s,
                                &r->project_row_s, &r->probe_row_s, &r->probe_match_row_s, &r->hash_probe_row_s,
                                &r->build_row_s,  &r->agg_row_s,   &r->collect_row_s,     &r->sort_row_s};
    return f[i];
}

/* A context told to use no OpenCL device (FB_CL_DEVICE_NONE). */
static fb_ctx *no_device_ctx(void)
{
    fb_options *o;
    fb_ctx *none;
    assert_fb_ok(NULL, fb_options_create(&o));
    assert_fb_ok(NULL, fb_options_set_cl_device(o, FB_CL_DEVICE_NONE));
    assert_fb_ok(NULL, fb_ctx_create(o, &none));
    fb_options_destroy(o);
    return none;
}

static int setup(void **state)
{
    (void)state;
    rng = fbt_seed();
    for (int i = 0; i < NF; i++) {
        fu[i] = (int32_t)(fbt_next(&rng) % (NU + 200)); /* some match nothing */
        fh[i] = (int64_t)(fbt_next(&rng) % (NH + 500)) * 7919 - 1000;
        fa[i] = (int32_t)(fbt_next(&rng) % 1000) - 500;
        fg[i] = (int32_t)(fbt_next(&rng) % 50);
        fv[i] = (int64_t)(fbt_next(&rng) % 100000) - 5000;
        if (fbt_next(&rng) % 10)
            fa_valid[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    for (int i = 0; i < NU; i++) {
        uk[i] = i;
        ux[i] = (int32_t)(fbt_next(&rng) % 30);
    }
    for (int i = 0; i < NH; i++) {
        hk[i] = (int64_t)i * 7919 - 1000;
        hy[i] = (int32_t)(fbt_next(&rng) % 20);
    }
    fcols[0] = fb_column_make(FB_TYPE_INT32, fu, NF, NULL);
    fcols[1] = fb_column_make(FB_TYPE_INT64, fh, NF, NULL);
    fcols[2] = fb_column_make(FB_TYPE_INT32, fa, NF, fa_valid);
    fcols[3] = fb_column_make(FB_TYPE_INT32, fg, NF, NULL);
    fcols[4] = fb_column_make(FB_TYPE_INT64, fv, NF, NULL);
    ucols[0] = fb_column_make(FB_TYPE_INT32, uk, NU, NULL);
    ucols[1] = fb_column_make(FB_TYPE_INT32, ux, NU, NULL);
    hcols[0] = fb_column_make(FB_TYPE_INT64, hk, NH, NULL);
    hcols[1] = fb_column_make(FB_TYPE_INT32, hy, NH, NULL);
    ft = (fb_table){5, fcols, NULL};
    ut = (fb_table){2, ucols, NULL};
    ht = (fb_table){2, hcols, NULL};
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/fb-test-plan-cost-XXXXXX");
    if (!mkdtemp(tmp_dir))
        return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/none.json", tmp_dir);
    setenv("FB_CALIBRATION", path, 1); /* never the user's file */
    if (fb_ctx_create(NULL, &ctx) != FB_OK)
        return -1;
    /* a real calibration at small rows, used by the tests below */
    if (fb_plan_calibrate(ctx, 1 << 20, &real) != FB_OK) { /* fewer rows: fixed costs inflate the rates */
        fprintf(stderr, "calibrate: %s\n", fb_last_error(ctx));
        return -1;
    }
    if (fb_plan_calibrate_device(ctx, 1 << 16, &real) != FB_OK) {
        fprintf(stderr, "calibrate_device (an OpenCL device is required): %s\n", fb_last_error(ctx));
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fb_ctx_destroy(ctx);
    rmdir(tmp_dir);
    return 0;
}

static void test_device_calibration(void **state)
{
    (void)state;
    fb_plan_calibration c = real;
    assert_int_equal(c.opencl.has_opencl, 1);
    int index = -1;
    assert_fb_ok(ctx, fb_cl_open(ctx, &index));
    fb_cl_device_info info;
    assert_fb_ok(ctx, fb_cl_device_get_info(ctx, index, &info));
    assert_int_equal(strncmp(c.opencl.device, info.name, sizeof c.opencl.device - 1), 0);
    assert_int_equal(c.opencl.shares_cores, info.is_cpu != 0);
    assert_true(isfinite(c.opencl.h2d_gbps) && c.opencl.h2d_gbps > 0);
    assert_true(isfinite(c.opencl.d2h_gbps) && c.opencl.d2h_gbps > 0);
    assert_true(isfinite(c.opencl.launch_s) && c.opencl.launch_s > 0 && c.opencl.launch_s < 1);
    for (int i = 0; i < N_RATE_FIELDS; i++) {
        double v = *rate(&c.opencl.rates, i), cpu = *rate(&c.cpu, i);
        assert_true(isfinite(v) && v >= 1e-12);
        assert_true(isfinite(cpu) && cpu >= 1e-12);
    }
    /* rows 0: the device morsels' rows */
    setenv("FB_PLAN_DEVICE_MORSEL", "8192", 1);
    fb_plan_calibration m = real;
    assert_fb_ok(ctx, fb_plan_calibrate_device(ctx, 0, &m));
    unsetenv("FB_PLAN_DEVICE_MORSEL");
    assert_int_equal(m.opencl.rows, 8192);
    assert_int_equal(m.rows, real.rows);
    /* the CPU part is kept; the device's rows and fixed costs are set */
    assert_int_equal(c.rows, 1 << 20);
    assert_true(c.opencl.rows > 0 && c.opencl.job_s >= 1e-12 && c.opencl.table_s >= 1e-12);
    assert_true(c.cpu.probe_mix_row_s >= 1e-12 && c.cpu.probe_big_row_s >= 1e-12);
    assert_true(c.opencl.rates.probe_big_row_s == 0);
    assert_int_equal(c.workers, fb_ctx_threads(ctx));
    /* bad arguments; a context without a device: NO_DEVICE, the calibration untouched */
    assert_fb_status(ctx, fb_plan_calibrate_device(ctx, 100, &c), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_plan_calibrate_device(ctx, 1 << 15, NULL), FB_ERR_INVALID_ARG);
    fb_ctx *none = no_device_ctx();
    fb_plan_calibration before = c;
    assert_fb_status(none, fb_plan_calibrate_device(none, 1 << 12, &c), FB_ERR_NO_DEVICE);
    assert_memory_equal(&before, &c, sizeof c);
    fb_ctx_destroy(none);
}

static void read_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t len = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[len] = '\0';
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* Removes `"key": value, ` (the value up to the next comma) from text; the last field of an object with the
 * comma before it. */
static void drop_field(char *text, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    char *at = strstr(text, pat);
    assert_non_null(at);
    char *end = at + strcspn(at, ",}");
    assert_true(*end == ',' || *end == '}');
    if (*end == '}') { /* the object's last field: its value and the ", " before it */
        while (at > text && at[-1] != ',')
            at--;
        assert_true(at > text);
        at--;
    } else {
        end++;
        while (*end == ' ' || *end == '\n')
            end++;
    }
    memmove(at, end, strlen(end) + 1);
}

static void test_file_fields(void **state)
{
    (void)state;
    char path[128], text[8192];
    snprintf(path, sizeof path, "%s/cal.json", tmp_dir);
    fb_plan_calibration c = real, back;
    c.opencl.from_plans = 1;
    assert_fb_ok(ctx, fb_plan_calibration_save(ctx, &c, path));
    memset(&back, 0x5a, sizeof back);
    assert_fb_ok(ctx, fb_plan_calibration_load(ctx, path, &back));
    assert_true(fabs(back.opencl.h2d_gbps - c.opencl.h2d_gbps) <= 1e-8 * c.opencl.h2d_gbps);
    assert_true(fabs(back.opencl.d2h_gbps - c.opencl.d2h_gbps) <= 1e-8 * c.opencl.d2h_gbps);
    assert_true(fabs(back.opencl.launch_s - c.opencl.launch_s) <= 1e-8 * c.opencl.launch_s);
    assert_int_equal(back.opencl.from_plans, 1);
    assert_int_equal(back.opencl.shares_cores, c.opencl.shares_cores);
    assert_int_equal(back.opencl.has_opencl, 1);
    assert_string_equal(back.opencl.device, c.opencl.device);
    for (int i = 0; i < N_RATE_FIELDS; i++)
        assert_true(fabs(*rate(&back.opencl.rates, i) - *rate(&c.opencl.rates, i)) <=
                    1e-8 * *rate(&c.opencl.rates, i));
    /* the rates and device fields added for the morsel size, key range and match mix */
    assert_true(fabs(back.cpu.probe_mix_row_s - c.cpu.probe_mix_row_s) <= 1e-8 * c.cpu.probe_mix_row_s);
    assert_true(fabs(back.cpu.probe_big_row_s - c.cpu.probe_big_row_s) <= 1e-8 * c.cpu.probe_big_row_s);
    assert_true(fabs(back.opencl.rates.probe_mix_row_s - c.opencl.rates.probe_mix_row_s) <=
                1e-8 * c.opencl.rates.probe_mix_row_s);
    assert_true(back.opencl.rates.probe_big_row_s == 0);
    assert_true(back.opencl.rows == c.opencl.rows && back.opencl.rows > 0);
    assert_true(fabs(back.opencl.job_s - c.opencl.job_s) <= 1e-8 * c.opencl.job_s);
    assert_true(fabs(back.opencl.table_s - c.opencl.table_s) <= 1e-8 * c.opencl.table_s);
    assert_true(back.opencl.small_table_rows == c.opencl.small_table_rows && back.opencl.small_table_rows > 0);
    assert_int_equal(back.rows, c.rows);
    /* a file from before the new fields: they load as 0 */
    read_file(path, text, sizeof text);
    char old[8192];
    snprintf(old, sizeof old, "%s", text);
    drop_field(old, "h2d_gbps");
    drop_field(old, "d2h_gbps");
    drop_field(old, "launch_s");
    drop_field(old, "table_row_s");
    drop_field(old, "from_plans");
    drop_field(old, "shares_cores");
    drop_field(old, "job_s");
    drop_field(old, "table_s");
    drop_field(old, "small_table_rows");
    drop_field(old, "probe_mix_row_s"); /* the cpu's, the opencl section's, the device rates' */
    drop_field(old, "probe_mix_row_s");
    drop_field(old, "probe_mix_row_s");
    drop_field(old, "probe_big_row_s");
    drop_field(old, "probe_big_row_s");
    assert_null(strstr(old, "launch_s"));
    assert_null(strstr(old, "probe_mix_row_s"));
    assert_null(strstr(old, "job_s"));
    write_file(path, old);
    assert_fb_ok(ctx, fb_plan_calibration_load(ctx, path, &back));
    assert_int_equal(back.opencl.has_opencl, 1);
    assert_true(back.opencl.h2d_gbps == 0 && back.opencl.d2h_gbps == 0 && back.opencl.launch_s == 0);
    assert_int_equal(back.opencl.from_plans, 0);
    assert_int_equal(back.opencl.shares_cores, 0);
    assert_true(back.cpu.probe_mix_row_s == 0 && back.cpu.probe_big_row_s == 0 && back.opencl.rates.probe_mix_row_s == 0);
    assert_true(back.opencl.job_s == 0 && back.opencl.table_s == 0 && back.opencl.small_table_rows == 0);
    assert_true(fabs(back.opencl.rates.filter_row_s - c.opencl.rates.filter_row_s) <= 1e-8 * c.opencl.rates.filter_row_s);
    /* ... and without an "opencl" section at all: no OpenCL rates */
    char *sec = strstr(text, ",\n \"opencl\"");
    assert_non_null(sec);
    snprintf(sec, 3, "}\n");
    write_file(path, text);
    assert_fb_ok(ctx, fb_plan_calibration_load(ctx, path, &back));
    assert_int_equal(back.opencl.has_opencl, 0);
    assert_true(fabs(back.cpu.scan_row_s - c.cpu.scan_row_s) <= 1e-8 * c.cpu.scan_row_s);
    /* a bad bandwidth is an error that names the field */
    read_file(path, text, sizeof text);
    assert_fb_ok(ctx, fb_plan_calibration_save(ctx, &c, path));
    read_file(path, text, sizeof text);
    char *at = strstr(text, "\"d2h_gbps\": ");
    assert_non_null(at);
    at[12] = '-';
    write_file(path, text);
    assert_fb_status(ctx, fb_plan_calibration_load(ctx, path, &back), FB_ERR_IO);
    assert_non_null(strstr(fb_last_error(ctx), "d2h_gbps"));
    remove(path);
}

/* Round rates for exact arithmetic: cpu rate i = (i + 1) ns (pipeline 100 us, start 50 us), the device's
 * `speed` times those, launch 10 us, 1 GB/s both ways. */
static fb_plan_calibration round_cal(double speed, int shares_cores)
{
    fb_plan_calibration c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < N_RATE_FIELDS; i++)
        *rate(&c.cpu, i) = i == 0 ? 1e-4 : i == 1 ? 5e-5 : 1e-9 * (i + 1);
    c.opencl.rates = c.cpu;
    for (int i = 0; i < N_RATE_FIELDS; i++)
        *rate(&c.opencl.rates, i) *= speed;
    c.opencl.has_opencl = 1;
    c.opencl.h2d_gbps = 1;
    c.opencl.d2h_gbps = 1;
    c.opencl.launch_s = 1e-5;
    c.opencl.shares_cores = shares_cores;
    c.workers = 2;
    c.rows = 1 << 20;
    return c;
}

/* gpu and hybrid of a one-pipeline plan (F[a, g] -> a < 0 AND g < 25 -> result) by hand. */
static void test_formulas(void **state)
{
    (void)state;
    fb_plan *p;
    assert_fb_ok(ctx, fb_plan_create(ctx, &p));
    size_t cols[2] = {2, 3};
    fb_plan_node s, f;
    assert_fb_ok(ctx, fb_plan_scan(p, &ft, "F", cols, 2, &s));
    fb_plan_pred pr[2] = {{.kind = FB_PLAN_PRED_CMP, .column = 0, .op = FB_CMP_LT, .value = 0},
                          {.kind = FB_PLAN_PRED_CMP, .column = 1, .op = FB_CMP_LT, .value = 25}};
    assert_fb_ok(ctx, fb_plan_filter(p, s, pr, 2, &f));
    /* the filter's estimate is a sample of 8 x 8192 rows of the 65536: all of them - exact */
    double pass = 0;
    for (int i = 0; i < NF; i++) {
        int valid = (fa_valid[i / 8] >> (i % 8)) & 1;
        pass += valid && fa[i] < 0 && fg[i] < 25;
    }
    for (int shares = 0; shares < 2; shares++) {
        fb_plan_calibration c = round_cal(1, shares);
        assert_fb_ok(ctx, fb_plan_set_calibration(p, &c));
        double cpu, gpu, hyb;
        size_t n;
        assert_fb_ok(ctx, fb_plan_predict(p, f, FB_PLACEMENT_CPU, &cpu, 1, &n, NULL));
        assert_int_equal(n, 1);
        assert_fb_ok(ctx, fb_plan_predict(p, f, FB_PLACEMENT_GPU, &gpu, 1, &n, NULL));
        assert_fb_ok(ctx, fb_plan_predict(p, f, FB_PLACEMENT_HYBRID, &hyb, 1, &n, NULL));
        const fb_plan_rates *r = &c.cpu, *g = &c.opencl.rates;
        double rows = NF;
        double want_cpu = r->pipeline_s + r->start_s + rows * r->scan_row_s + 2 * rows * r->filter_row_s +
                          pass * r->collect_row_s;
        assert_true(fabs(cpu - want_cpu) <= 1e-9 * want_cpu);
        /* one device morsel, one chain: two kernels (one per predicate), a and g (4 bytes a row each) up once,
         * the row map of the rows kept down (4 bytes each); no column made on the device */
        double want_gpu = g->pipeline_s + g->start_s + rows * g->scan_row_s + 2 * rows * g->filter_row_s +
                          pass * g->collect_row_s + 2 * c.opencl.launch_s + rows * 8 / 1e9 + 4 * pass / 1e9;
        assert_true(fabs(gpu - want_gpu) <= 1e-9 * want_gpu);
        /* hybrid: the device (worker 0) and the other W - 1 workers split the rows so that both finish together:
         * their throughputs add (on shared cores the device has the driver's core only: W x its time) */
        double cv = want_cpu - r->pipeline_s - r->start_s, gv = want_gpu - g->pipeline_s - g->start_s;
        int W = fb_ctx_threads(ctx);
        double split = W < 2 ? gv : 1 / (1 / (shares ? gv * W : gv) + 1 / (cv * W / (W - 1)));
        double want_hyb = fmax(r->pipeline_s + r->start_s, g->pipeline_s + g->start_s) + split;
        assert_true(fabs(hyb - want_hyb) <= 1e-9 * want_hyb);
    }
    /* a device 5x faster: on apart cores hybrid is faster than either alone; on shared cores not faster
     * than the faster */
    for (int shares = 0; shares < 2 && fb_ctx_threads(ctx) >= 2; shares++) {
        fb_plan_calibration c = round_cal(0.2, shares);
        assert_fb_ok(ctx, fb_plan_set_calibration(p, &c));
        double t[3];
        size_t n;
        for (int pl = 0; pl < 3; pl++)
            assert_fb_ok(ctx, fb_plan_predict(p, f, (fb_placement)pl, NULL, 0, &n, &t[pl]));
        if (shares)
            assert_true(t[2] > fmin(t[0], t[1]));
        else
            assert_true(t[2] < t[0] && t[2] < t[1]);
    }
    /* a device 100x faster wins auto (gpu: its fixed costs are smaller too); auto predicts its choice */
    fb_plan_calibration fast = round_cal(0.01, 0);
    assert_fb_ok(ctx, fb_plan_set_calibration(p, &fast));
    fb_placement pick;
    double totals[3], t_auto, t_pick;
    size_t n;
    assert_fb_ok(ctx, fb_plan_predict_choice(p, f, &pick, totals));
    assert_int_not_equal(pick, FB_PLACEMENT_CPU);
    assert_true(totals[pick] <= totals[0] && totals[pick] <= totals[1] && totals[pick] <= totals[2]);
    assert_fb_ok(ctx, fb_plan_predict(p, f, FB_PLACEMENT_AUTO, NULL, 0, &n, &t_auto));
    assert_fb_ok(ctx, fb_plan_predict(p, f, pick, NULL, 0, &n, &t_pick));
    assert_true(t_auto == t_pick);
    char *buf = NULL;
    size_t size = 0;
    FILE *mf = open_memstream(&buf, &size);
    assert_fb_ok(ctx, fb_plan_explain(p, f, FB_PLACEMENT_AUTO, NULL, mf));
    fclose(mf);
    char want[64];
    snprintf(want, sizeof want, "chose %s", fb_placement_name(pick));
    assert_non_null(strstr(buf, want));
    assert_non_null(strstr(buf, "predicted: cpu"));
    assert_non_null(strstr(buf, ", gpu "));
    assert_non_null(strstr(buf, ", hybrid "));
    free(buf);
    /* NO_DEVICE, with the reason: no OpenCL rates in the calibration ... */
    fb_plan_calibration cpu_only = round_cal(1, 0);
    cpu_only.opencl.has_opencl = 0;
    assert_fb_ok(ctx, fb_plan_set_calibration(p, &cpu_only));
    assert_fb_status(ctx, fb_plan_predict(p, f, FB_PLACEMENT_GPU, NULL, 0, &n, NULL), FB_ERR_NO_DEVICE);
    assert_non_null(strstr(fb_last_error(ctx), "no OpenCL rates"));
    assert_fb_status(ctx, fb_plan_predict(p, f, FB_PLACEMENT_HYBRID, NULL, 0, &n, NULL), FB_ERR_NO_DEVICE);
    assert_fb_ok(ctx, fb_plan_predict_choice(p, f, &pick, totals));
    assert_int_equal(pick, FB_PLACEMENT_CPU);
    assert_true(isnan(totals[1]) && isnan(totals[2]) && totals[0] > 0);
    fb_plan_destroy(p);
    /* ... or no device on the context */
    fb_ctx *none = no_device_ctx();
    assert_fb_ok(none, fb_plan_create(none, &p));
    assert_fb_ok(none, fb_plan_scan(p, &ft, "F", cols, 2, &s));
    assert_fb_ok(none, fb_plan_set_calibration(p, &fast));
    assert_fb_status(none, fb_plan_predict(p, s, FB_PLACEMENT_GPU, NULL, 0, &n, NULL), FB_ERR_NO_DEVICE);
    assert_non_null(strstr(fb_last_error(none), "no OpenCL device"));
    assert_fb_ok(none, fb_plan_predict_choice(p, s, &pick, NULL));
    assert_int_equal(pick, FB_PLACEMENT_CPU);
    fb_plan_destroy(p);
    fb_ctx_destroy(none);
}

/* A random plan over F: a filter or not, 0..3 joins (dense U / hashed H; inner, semi, anti, left), a
 * projection or not, then a grouped or ungrouped aggregation, a top-N, or the rows collected. */
static fb_plan_node random_plan(fb_plan *p, uint64_t *r)
{
    fb_plan_node s;
    assert_fb_ok(ctx, fb_plan_scan(p, &ft, "F", NULL, 0, &s));
    int ncols = 5;
    if (fbt_next(r) % 3) {
        fb_plan_pred pr[2] = {{.kind = FB_PLAN_PRED_BETWEEN, .column = 2, .lo = -300, .hi = (int64_t)(fbt_next(r) % 500)},
                              {.kind = FB_PLAN_PRED_CMP, .column = 3, .op = FB_CMP_LT, .value = (int64_t)(fbt_next(r) % 50)}};
        fb_plan_node f;
        assert_fb_ok(ctx, fb_plan_filter(p, s, pr, 1 + fbt_next(r) % 2, &f));
        s = f;
    }
    int joins = (int)(fbt_next(r) % 4);
    for (int j = 0; j < joins; j++) {
        int hashed = fbt_next(r) % 2;
        static const fb_join_type types[] = {FB_JOIN_INNER, FB_JOIN_SEMI, FB_JOIN_ANTI, FB_JOIN_LEFT};
        fb_join_type t = types[fbt_next(r) % 4];
        fb_plan_node b, out;
        assert_fb_ok(ctx, fb_plan_scan(p, hashed ? &ht : &ut, hashed ? "H" : "U", NULL, 0, &b));
        size_t pk = hashed ? 1 : 0, bk = 0, pay = 1;
        int payload = t == FB_JOIN_INNER || t == FB_JOIN_LEFT;
        assert_fb_ok(ctx, fb_plan_join(p, s, b, &pk, &bk, 1, t, payload ? &pay : NULL, payload ? 1 : 0, &out));
        s = out;
        ncols += payload;
    }
    if (fbt_next(r) % 2) {
        fb_plan_node pj;
        assert_fb_ok(ctx, fb_plan_project(p, s, FB_PLAN_MUL, 4, 3, 0, 0, &pj));
        s = pj;
        ncols++;
    }
    fb_plan_node root = s;
    switch (fbt_next(r) % 4) {
    case 0: {
        size_t key = 3;
        fb_plan_agg a[2] = {{FB_AGG_SUM, 4}, {FB_AGG_COUNT_STAR, 0}};
        assert_fb_ok(ctx, fb_plan_aggregate(p, s, &key, 1, a, 2, &root));
        break;
    }
    case 1: {
        fb_plan_agg a = {FB_AGG_MAX, (size_t)(ncols - 1)};
        assert_fb_ok(ctx, fb_plan_aggregate(p, s, NULL, 0, &a, 1, &root));
        break;
    }
    case 2: {
        fb_plan_sort_key k = {4, 1, 0};
        assert_fb_ok(ctx, fb_plan_sort(p, s, &k, 1, 10, &root));
        break;
    }
    default:
        break;
    }
    return root;
}

static void test_auto_on_this_machine(void **state)
{
    (void)state;
    int shown = 0;
    for (int k = 0; k < 24; k++) {
        fb_plan *p;
        assert_fb_ok(ctx, fb_plan_create(ctx, &p));
        assert_fb_ok(ctx, fb_plan_set_calibration(p, &real));
        fb_plan_node root = random_plan(p, &rng);
        double sec[3][64], tot[3];
        size_t n[3];
        for (int pl = 0; pl < 3; pl++) {
            assert_fb_ok(ctx, fb_plan_predict(p, root, (fb_placement)pl, sec[pl], 64, &n[pl], &tot[pl]));
            assert_int_equal(n[pl], n[0]);
            for (size_t i = 0; i < n[pl]; i++)
                assert_true(isfinite(sec[pl][i]) && sec[pl][i] > 0);
            assert_true(isfinite(tot[pl]) && tot[pl] > 0);
        }
        fb_placement pick;
        double totals[3];
        assert_fb_ok(ctx, fb_plan_predict_choice(p, root, &pick, totals));
        assert_true(totals[pick] <= totals[0] && (isnan(totals[1]) || totals[pick] <= totals[1]) &&
                    (isnan(totals[2]) || totals[pick] <= totals[2]));
        if (FBT_HOST_SLOWED) {
            fb_plan_destroy(p);
            continue;
        }
        if (pick != FB_PLACEMENT_CPU || !shown) {
            char *buf = NULL;
            size_t size = 0;
            FILE *mf = open_memstream(&buf, &size);
            assert_fb_ok(ctx, fb_plan_explain(p, root, FB_PLACEMENT_AUTO, NULL, mf));
            fclose(mf);
            if (pick != FB_PLACEMENT_CPU)
                fprintf(stderr, "plan %d: auto picks %s:\n%s", k, fb_placement_name(pick), buf);
            assert_non_null(strstr(buf, "chose cpu"));
            free(buf);
            shown = 1;
        }
        assert_int_equal(pick, FB_PLACEMENT_CPU);
        for (int pl = 0; pl < 3; pl++)
            assert_true(totals[pl] == tot[pl]);
        fb_plan_destroy(p);
    }
}

/* The test, per pipeline: a pipeline predicted at SHORT_S or more is compared by itself, its
 * measured wall time within 2x of its prediction; the shorter ones (builds of dimension tables, final
 * sorts, plans over small tables: tenths of a millisecond, where a worker woken late is already a factor
 * of 2) are compared in aggregate, per placement, the sum of their measured times within 2x of the sum
 * of their predictions. */
#define SHORT_S 2e-3

typedef struct within {
    double short_meas[3], short_pred[3]; /* per placement: the short pipelines' sums */
    int n_long[3], n_short[3], outside;
} within;

static void within_add(within *w, int pl, double meas, double pred, const char *what)
{
    if (pred >= SHORT_S) {
        double ratio = meas / pred;
        int ok = ratio >= 0.5 && ratio <= 2.0;
        w->n_long[pl]++;
        w->outside += !ok;
        fprintf(stderr, "  %-6s %-44.44s measured %8.3f ms, predicted %8.3f ms: %5.2f%s\n",
                fb_placement_name((fb_placement)pl), what, meas * 1e3, pred * 1e3, ratio, ok ? "" : "  OUTSIDE 2x");
    } else {
        w->n_short[pl]++;
        w->short_meas[pl] += meas;
        w->short_pred[pl] += pred;
    }
}

/* The aggregates of the short pipelines; returns how many placements are outside 2x. */
static int within_short(within *w, const char *what)
{
    int outside = 0;
    for (int pl = 0; pl < 3; pl++) {
        if (!w->n_short[pl])
            continue;
        double ratio = w->short_meas[pl] / w->short_pred[pl];
        int ok = ratio >= 0.5 && ratio <= 2.0;
        outside += !ok;
        fprintf(stderr,
                "  %-6s %s: %d pipelines under %.0f ms in aggregate: measured %.3f ms, predicted %.3f ms: %.2f%s\n",
                fb_placement_name((fb_placement)pl), what, w->n_short[pl], SHORT_S * 1e3, w->short_meas[pl] * 1e3,
                w->short_pred[pl] * 1e3, ratio, ok ? "" : "  OUTSIDE 2x");
    }
    return outside;
}

/* Every SSB query through fbench with a calibration fbench measures here: auto picks cpu (the device,
 * PoCL, is slower than the CPU kernels), every placement has a positive, finite prediction, and (one
 * attempt) every pipeline's explain-analyze time under cpu, gpu, hybrid and auto (the fastest of 5 runs)
 * is within 2x of its prediction as above. SF 0.1: lineorder 600,000 rows, one device morsel, and the
 * device calibrated at 2^19 rows, about that size. Returns the pipelines and aggregates outside 2x. */
static int ssb_attempt(int attempt)
{
#ifdef FB_FBENCH
    char cal[128], json[128], txt[128], cmd[1024];
    snprintf(cal, sizeof cal, "%s/ssb-cal.json", tmp_dir);
    snprintf(json, sizeof json, "%s/ssb.json", tmp_dir);
    snprintf(txt, sizeof txt, "%s/ssb.txt", tmp_dir);
    const char *sf = FBT_HOST_SLOWED ? "0.02" : "0.1";
    /* the CPU at fbench's default rows (fewer: fixed costs inflate its rates, 1.35x at 2^20) */
    snprintf(cmd, sizeof cmd, "'%s' calibrate --rows %d --device-rows %d --out '%s' > /dev/null", FB_FBENCH,
             FBT_HOST_SLOWED ? 131072 : 1 << 22, FBT_HOST_SLOWED ? 131072 : 524288, cal);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "FB_CALIBRATION='%s' '%s' plan ssb --sf %s --placement cpu,gpu,hybrid,auto --predict --explain --repeat 5 "
             "--json '%s' > '%s'",
             cal, FB_FBENCH, sf, json, txt);
    assert_int_equal(system(cmd), 0);
    static char text[1 << 20];
    read_file(json, text, sizeof text);
    int queries = 0;
    for (const char *at = text; (at = strstr(at, "\"auto_choice\": \"")); at++) {
        queries++;
        const char *v = at + strlen("\"auto_choice\": \"");
        if (strncmp(v, "cpu\"", 4) != 0)
            fprintf(stderr, "SSB query %d: auto picks %.80s\n", queries, v);
        if (!FBT_HOST_SLOWED)
            assert_int_equal(strncmp(v, "cpu\"", 4), 0);
        const char *pr = strstr(at, "\"predicted\": {");
        assert_non_null(pr);
        static const char *names[] = {"\"cpu\": ", "\"gpu\": ", "\"hybrid\": "};
        for (int pl = 0; pl < 3; pl++) {
            const char *x = strstr(pr, names[pl]);
            assert_non_null(x);
            double t = strtod(x + strlen(names[pl]), NULL);
            assert_true(isfinite(t) && t > 0);
        }
    }
    assert_int_equal(queries, 13);
    /* the explain-analyze lines: "Qn.m | ..." starts a query, "  k: <pipeline>" a pipeline, and "measured X ms,
     * predicted P Y ms" compares it (P: where it ran; auto's runs are cpu's). fbench runs the queries a
     * second time (its answers checked above once): each pipeline's measured time is the smaller of the two
     * runs' (a busy machine only slows runs down). */
    enum { MAXP = 13 * 4 * 8 };
    static double meas[MAXP], pred[MAXP];
    static int place[MAXP];
    static char what[MAXP][96];
    int lines = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            snprintf(cmd, sizeof cmd,
                     "FB_CALIBRATION='%s' '%s' plan ssb --sf %s --placement cpu,gpu,hybrid,auto --predict --explain "
                     "--repeat 5 > '%s'",
                     cal, FB_FBENCH, sf, txt);
            assert_int_equal(system(cmd), 0);
        }
        read_file(txt, text, sizeof text);
        char query[8] = "?", pipe[80] = "";
        int n = 0;
        for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
            double m, x;
            char pl[16];
            int k;
            if (line[0] == 'Q' && line[2] == '.') {
                snprintf(query, sizeof query, "%.4s", line);
            } else if (sscanf(line, "  %d: %79[^\n]", &k, pipe) == 2) {
                continue;
            } else if (sscanf(line, "     measured %lf ms, predicted %15s %lf ms", &m, pl, &x) == 3) {
                assert_true(n < MAXP);
                int p = strcmp(pl, "cpu") == 0 ? 0 : strcmp(pl, "gpu") == 0 ? 1 : 2;
                if (pass == 0) {
                    meas[n] = m * 1e-3;
                    pred[n] = x * 1e-3;
                    place[n] = p;
                    snprintf(what[n], sizeof what[n], "%s %s", query, pipe);
                } else {
                    assert_int_equal(p, place[n]);
                    meas[n] = m * 1e-3 < meas[n] ? m * 1e-3 : meas[n];
                }
                n++;
            }
        }
        if (pass == 0)
            lines = n;
        else
            assert_int_equal(n, lines);
    }
    within w;
    memset(&w, 0, sizeof w);
    fprintf(stderr, "SSB SF %s, attempt %d:\n", sf, attempt);
    for (int i = 0; i < lines && !FBT_HOST_SLOWED; i++)
        within_add(&w, place[i], meas[i], pred[i], what[i]);
    /* 13 queries x 4 placements x 4..6 pipelines */
    assert_true(lines >= 13 * 4 * 4);
    int outside = w.outside + within_short(&w, "SSB");
    fprintf(stderr, "SSB attempt %d: %d compared alone (cpu %d, gpu %d, hybrid %d), %d outside 2x\n", attempt,
            w.n_long[0] + w.n_long[1] + w.n_long[2], w.n_long[0], w.n_long[1], w.n_long[2], outside);
    remove(json);
    remove(txt);
    remove(cal);
    return outside;
#else
    (void)attempt;
    fprintf(stderr, "fbench is not built (FB_BUILD_BENCH=OFF): the SSB part is left out\n");
    return 0;
#endif
}

/* A second attempt, with a fresh calibration, when the first has a pipeline outside 2x: the machine that
 * runs the tests is shared, and one calibration timing or run disturbed by other work moves a ratio; an
 * error of the model stays in both. Under the sanitizers (FBT_HOST_SLOWED) the host code runs 2-10x slower
 * than the calibration's and PoCL's kernels do not: only the auto checks and the predictions' presence. */
static void test_ssb_within_2x(void **state)
{
    (void)state;
    if (ssb_attempt(1) != 0)
        assert_int_equal(ssb_attempt(2), 0);
}

/* Per-pipeline times of a run from explain analyze ("measured X ms, predicted P Y ms"); returns how many. */
static int measured_lines(fb_plan *p, fb_plan_node root, const fb_plan_result *r, double *meas, double *pred)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *mf = open_memstream(&buf, &size);
    assert_fb_ok(ctx, fb_plan_explain(p, root, r->placement, r, mf));
    fclose(mf);
    int n = 0;
    for (const char *at = buf; (at = strstr(at, "measured ")) != NULL && n < 16; at++) {
        double m, x;
        char pl[16];
        if (sscanf(at, "measured %lf ms, predicted %15s %lf ms", &m, pl, &x) == 3) {
            meas[n] = m * 1e-3;
            pred[n++] = x * 1e-3;
        }
    }
    free(buf);
    return n;
}

/* Best per-pipeline times (of 5 runs, and up to 6 more while a pipeline predicted at SHORT_S or more is above
 * 2x of it: a busy machine only slows runs down, so more runs can lower the best measured time, never raise
 * it) of the plan under `placement`, added to w; n: the pipelines. */
static void best_pipelines(fb_plan *p, fb_plan_node root, fb_placement placement, within *w, const char *what)
{
    double best[16], pred[16];
    int n = 0;
    for (int run = 0; run < 11; run++) {
        fb_plan_result *r = NULL;
        assert_fb_ok(ctx, fb_plan_run(p, root, placement, &r));
        assert_int_equal(r->placement, placement);
        double m[16], x[16];
        n = measured_lines(p, root, r, m, x);
        assert_int_equal(n, r->pipelines);
        int slow = 0;
        for (int i = 0; i < n; i++) {
            best[i] = run == 0 || m[i] < best[i] ? m[i] : best[i];
            pred[i] = x[i];
            slow |= pred[i] >= SHORT_S && best[i] > 2 * pred[i];
        }
        fb_plan_result_free(r);
        if (run >= 4 && !slow)
            break;
    }
    for (int i = 0; i < n; i++) {
        char label[96];
        snprintf(label, sizeof label, "%s, pipeline %d", what, i);
        within_add(w, (int)placement, best[i], pred[i], label);
    }
}

/* The test on plans built here: with a calibration of the device at the data's size (2^18 rows),
 * every pipeline under cpu, gpu and hybrid within 2x of its prediction as ssb_attempt() says, for a filter,
 * a filter + semi join + projection, an inner join with a grouped aggregation (all over 2^18 rows), and
 * random plans over F (2^16 rows: their pipelines are short, compared in aggregate). */
enum { ROWS_2X = 1 << 18 };

/* One attempt: calibrates the device at ROWS_2X rows, then runs the plans; the number of pipelines and
 * aggregates outside 2x. */
static int within_2x_attempt(int attempt)
{
    enum { ROWS = ROWS_2X };
    fb_plan_calibration c = real;
    assert_fb_ok(ctx, fb_plan_calibrate_device(ctx, ROWS, &c));
    within w;
    memset(&w, 0, sizeof w);
    static int32_t a[ROWS], b[ROWS], k[ROWS], v[ROWS], dk[2556], dy[2556];
    for (int i = 0; i < ROWS; i++) {
        a[i] = (int32_t)(fbt_next(&rng) % 11);
        b[i] = (int32_t)(fbt_next(&rng) % 50) + 1;
        k[i] = (int32_t)(fbt_next(&rng) % 2556);
        v[i] = (int32_t)(fbt_next(&rng) % 100000);
    }
    for (int i = 0; i < 2556; i++) {
        dk[i] = i;
        dy[i] = 1992 + i / 365;
    }
    fb_column lc[4] = {fb_column_make(FB_TYPE_INT32, a, ROWS, NULL), fb_column_make(FB_TYPE_INT32, b, ROWS, NULL),
                       fb_column_make(FB_TYPE_INT32, k, ROWS, NULL), fb_column_make(FB_TYPE_INT32, v, ROWS, NULL)};
    fb_column dc[2] = {fb_column_make(FB_TYPE_INT32, dk, 2556, NULL), fb_column_make(FB_TYPE_INT32, dy, 2556, NULL)};
    fb_table lt = {4, lc, NULL}, dtab = {2, dc, NULL};
    fprintf(stderr, "plans, attempt %d:\n", attempt);
    for (int shape = 0; shape < 3 + 4; shape++) {
        fb_plan *p;
        assert_fb_ok(ctx, fb_plan_create(ctx, &p));
        assert_fb_ok(ctx, fb_plan_set_calibration(p, &c));
        fb_plan_node s, f, d, df, j, pr, root;
        char what[64];
        if (shape >= 3) {
            root = random_plan(p, &rng);
            snprintf(what, sizeof what, "random plan %d", shape - 3);
        } else {
            snprintf(what, sizeof what, "shape %d", shape);
            assert_fb_ok(ctx, fb_plan_scan(p, &lt, "L", NULL, 0, &s));
            fb_plan_pred lp[2] = {{.kind = FB_PLAN_PRED_BETWEEN, .column = 0, .lo = 1, .hi = 3},
                                  {.kind = FB_PLAN_PRED_CMP, .column = 1, .op = FB_CMP_LT, .value = 25}};
            assert_fb_ok(ctx, fb_plan_filter(p, s, lp, 2, &f));
            assert_fb_ok(ctx, fb_plan_scan(p, &dtab, "D", NULL, 0, &d));
            fb_plan_pred dp = {.kind = FB_PLAN_PRED_CMP, .column = 1, .op = FB_CMP_EQ, .value = 1993};
            assert_fb_ok(ctx, fb_plan_filter(p, d, &dp, 1, &df));
            size_t pk = 2, bk = 0, pay = 1, key = 4;
            fb_plan_agg cnt = {FB_AGG_COUNT_STAR, 0}, sum = {FB_AGG_SUM, 4};
            if (shape == 0) {
                assert_fb_ok(ctx, fb_plan_aggregate(p, f, NULL, 0, &cnt, 1, &root));
            } else if (shape == 1) {
                assert_fb_ok(ctx, fb_plan_join(p, f, df, &pk, &bk, 1, FB_JOIN_SEMI, NULL, 0, &j));
                assert_fb_ok(ctx, fb_plan_project(p, j, FB_PLAN_MUL, 3, 0, 0, 0, &pr));
                assert_fb_ok(ctx, fb_plan_aggregate(p, pr, NULL, 0, &sum, 1, &root));
            } else {
                assert_fb_ok(ctx, fb_plan_join(p, s, d, &pk, &bk, 1, FB_JOIN_INNER, &pay, 1, &j));
                assert_fb_ok(ctx, fb_plan_aggregate(p, j, &key, 1, &cnt, 1, &root));
            }
        }
        for (int pl = 0; pl < 3; pl++)
            best_pipelines(p, root, (fb_placement)pl, &w, what);
        fb_plan_destroy(p);
    }
    return w.outside + within_short(&w, "plans");
}

/* A second attempt, with a fresh calibration, when the first has a pipeline outside 2x (as the SSB test). */
static void test_plans_within_2x(void **state)
{
    (void)state;
    if (FBT_HOST_SLOWED) { /* the host runs slower than it was calibrated: the predictions only */
        fprintf(stderr, "under a sanitizer: the 2x comparisons are left out\n");
        return;
    }
    if (within_2x_attempt(1) != 0)
        assert_int_equal(within_2x_attempt(2), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_calibration), cmocka_unit_test(test_file_fields),
        cmocka_unit_test(test_formulas),           cmocka_unit_test(test_auto_on_this_machine),
        cmocka_unit_test(test_ssb_within_2x),           cmocka_unit_test(test_plans_within_2x),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
