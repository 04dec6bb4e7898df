/* fbench_calibrate.c - `fbench calibrate`: measures the cost model's rates on this machine
 * (fb_plan_calibrate(); the OpenCL device's with fb_plan_calibrate_device()), prints them and saves them as the calibration file plans' auto placement and
 * explain read (fb_plan_calibration_save(); default $FB_CALIBRATION, else $XDG_CONFIG_HOME/fb/
 * calibration.json, else ~/.config/fb/calibration.json). */
#include "fbench.h"


#include <stdlib.h>
#include <string.h>

int fbench_calibrate_main(int argc, char **argv);

static void calibrate_usage(FILE *f)
{
    fprintf(f, "usage: fbench calibrate [--rows N] [--out FILE] [--threads N] [--device opencl:N | --no-device]\n"
               "                        [--device-rows N]\n"
               "  measures the per-row rates of plan stages (scan, filter, project, join probe by perfect hash\n"
               "  and by hash table, join build, grouped aggregation, result collection, sort) and the fixed\n"
               "  cost of a pipeline on synthetic tables of N rows (default 4194304), prints them and saves\n"
               "  them to FILE (default $FB_CALIBRATION, else $XDG_CONFIG_HOME/fb/calibration.json, else\n"
               "  ~/.config/fb/calibration.json), which explain and auto placement read.\n"
               "  With an OpenCL device (the first GPU, else the first device; --device opencl:N picks one) it\n"
               "  also measures the device: copy bandwidth, launch latency and the same rates (gpu placement's\n"
               "  plans, or the OpenCL twins) on N device rows (default: the rows of the device morsels that\n"
               "  gpu and hybrid plans run: FB_PLAN_DEVICE_MORSEL, else the device memory budget / 256,\n"
               "  4096..4194304; a device's cost per row moves with the size of its calls),\n"
               "  printed beside the CPU's. --no-device skips it.\n");
}

int fbench_calibrate_main(int argc, char **argv)
{
    long rows = 1L << 22, threads = 0, dev_rows = 0, device = -1;
    int no_device = 0;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            calibrate_usage(stdout);
            return FBENCH_EXIT_OK;
        }
        if (strcmp(a, "--no-device") == 0) {
            no_device = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "fbench calibrate: %s needs a value\n", a);
            return FBENCH_EXIT_USAGE;
        }
        i++;
        if (strcmp(a, "--rows") == 0 && fbench_parse_int(v, 1024, 1L << 26, &rows) == 0) {
        } else if (strcmp(a, "--threads") == 0 && fbench_parse_int(v, 1, 4096, &threads) == 0) {
        } else if (strcmp(a, "--device-rows") == 0 && fbench_parse_int(v, 1024, 1L << 26, &dev_rows) == 0) {
        } else if (strcmp(a, "--device") == 0 && strncmp(v, "opencl:", 7) == 0 &&
                   fbench_parse_int(v + 7, 0, 1023, &device) == 0) {
        } else if (strcmp(a, "--out") == 0) {
            out = v;
        } else {
            fprintf(stderr, "fbench calibrate: bad option or value: %s %s\n", a, v);
            calibrate_usage(stderr);
            return FBENCH_EXIT_USAGE;
        }
    }
    fb_options *opts = NULL;
    fb_ctx *ctx = NULL;
    if (no_device && device >= 0) {
        fprintf(stderr, "fbench calibrate: --device and --no-device exclude each other\n");
        return FBENCH_EXIT_USAGE;
    }
    if (fb_options_create(&opts) != FB_OK || (threads && fb_options_set_threads(opts, (int)threads) != FB_OK) ||
        (device >= 0 && fb_options_set_cl_device(opts, (int)device) != FB_OK) ||
        (no_device && fb_options_set_cl_device(opts, FB_CL_DEVICE_NONE) != FB_OK) ||
        fb_ctx_create(opts, &ctx) != FB_OK) {
        fprintf(stderr, "fbench calibrate: %s\n", fb_last_error(NULL));
        fb_options_destroy(opts);
        return FBENCH_EXIT_FAILURE;
    }
    fb_options_destroy(opts);
    char path[1024];
    if (!out && fb_plan_calibration_path(ctx, path, sizeof path) != FB_OK) {
        fprintf(stderr, "fbench calibrate: %s\n", fb_last_error(ctx));
        fb_ctx_destroy(ctx);
        return FBENCH_EXIT_FAILURE;
    }
    fb_plan_calibration cal;
    double t0 = fbench_now();
    fb_status st = fb_plan_calibrate(ctx, rows, &cal);
    if (st != FB_OK) {
        fprintf(stderr, "fbench calibrate: %s: %s\n", fb_status_name(st), fb_last_error(ctx));
        fb_ctx_destroy(ctx);
        return FBENCH_EXIT_FAILURE;
    }
    printf("fbench calibrate: %ld rows, %d workers, %s (%.1f s)\n", rows, cal.workers, cal.cpu_name,
           fbench_now() - t0);
    /* the device, when there is one */
    if (!no_device) {
        long dr = dev_rows; /* 0: the device morsels' rows */
        t0 = fbench_now();
        st = fb_plan_calibrate_device(ctx, dr, &cal);
        if (st == FB_OK) {
            printf("  opencl: %s, %lld rows, %s (%.1f s)\n", cal.opencl.device, (long long)cal.opencl.rows,
                   cal.opencl.from_plans ? "gpu placement's plans" : "the OpenCL twins", fbench_now() - t0);
            printf("  copies host->device %.2f GB/s, device->host %.2f GB/s, launch %.1f us\n", cal.opencl.h2d_gbps,
                   cal.opencl.d2h_gbps, cal.opencl.launch_s * 1e6);
            printf("  device pipeline %.1f us, device table %.1f us + %.1f ns a build row; mixed matches (twins) +%.1f ns\n"
                   "  a probe of a %.0f-row table costs %.2f x one of %.0f rows%s\n",
                   cal.opencl.job_s * 1e6, cal.opencl.table_s * 1e6, cal.opencl.table_row_s * 1e9,
                   cal.opencl.probe_mix_row_s * 1e9,
                   cal.opencl.small_table_rows > 0 ? cal.opencl.small_table_rows : 2048, cal.opencl.small_table_ratio,
                   cal.opencl.table_rows, cal.opencl.shares_cores ? "; the device shares the CPU's cores" : "");
        } else if (st == FB_ERR_NO_DEVICE && device < 0) {
            printf("  opencl: none (%s)\n", fb_last_error(ctx));
        } else {
            fprintf(stderr, "fbench calibrate: the device: %s: %s\n", fb_status_name(st), fb_last_error(ctx));
            fb_ctx_destroy(ctx);
            return FBENCH_EXIT_FAILURE;
        }
    }
    const fb_plan_rates *r = &cal.cpu, *g = &cal.opencl.rates;
    int dev = cal.opencl.has_opencl;
    printf("  %-17s %12s", "rate", "cpu");
    if (dev)
        printf(" %12s %8s", "opencl", "ocl/cpu");
    printf("\n");
    struct {
        const char *name;
        double v, g;
    } rates[] = {{"pipeline_s", r->pipeline_s, g->pipeline_s},
                 {"start_s", r->start_s, g->start_s},
                 {"scan_row_s", r->scan_row_s, g->scan_row_s},
                 {"filter_row_s", r->filter_row_s, g->filter_row_s},
                 {"project_row_s", r->project_row_s, g->project_row_s},
                 {"probe_row_s", r->probe_row_s, g->probe_row_s},
                 {"probe_match_row_s", r->probe_match_row_s, g->probe_match_row_s},
                 {"hash_probe_row_s", r->hash_probe_row_s, g->hash_probe_row_s},
                 {"build_row_s", r->build_row_s, g->build_row_s},
                 {"agg_row_s", r->agg_row_s, g->agg_row_s},
                 {"collect_row_s", r->collect_row_s, g->collect_row_s},
                 {"sort_row_s", r->sort_row_s, g->sort_row_s},
                 {"probe_mix_row_s", r->probe_mix_row_s, g->probe_mix_row_s},
                 {"probe_big_row_s", r->probe_big_row_s, g->probe_big_row_s}};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        int fixed = i < 2; /* the fixed costs in us, the rest in ns per row */
        double k = fixed ? 1e6 : 1e9;
        printf("  %-17s %9.3f %-2s", rates[i].name, rates[i].v * k, fixed ? "us" : "ns");
        if (dev)
            printf(" %9.3f %-2s %8.2f", rates[i].g * k, fixed ? "us" : "ns", rates[i].v > 0 ? rates[i].g / rates[i].v : 0);
        printf("\n");
    }
    st = fb_plan_calibration_save(ctx, &cal, out);
    if (st != FB_OK) {
        fprintf(stderr, "fbench calibrate: %s: %s\n", fb_status_name(st), fb_last_error(ctx));
        fb_ctx_destroy(ctx);
        return FBENCH_EXIT_FAILURE;
    }
    printf("saved to %s\n", out ? out : path);
    fb_ctx_destroy(ctx);
    return FBENCH_EXIT_OK;
}
