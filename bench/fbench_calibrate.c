/* fbench_calibrate.c - `fbench calibrate`: measures the cost model's rates on this machine
 * (fb_plan_calibrate()), prints them and saves them as the calibration file plans' auto placement and
 * explain read (fb_plan_calibration_save(); default $FB_CALIBRATION, else $XDG_CONFIG_HOME/fb/
 * calibration.json, else ~/.config/fb/calibration.json). */
#include "fbench.h"

#include <stdlib.h>
#include <string.h>

int fbench_calibrate_main(int argc, char **argv);

static void calibrate_usage(FILE *f)
{
    fprintf(f, "usage: fbench calibrate [--rows N] [--out FILE] [--threads N]\n"
               "  measures the per-row rates of plan stages (scan, filter, project, join probe by perfect hash\n"
               "  and by hash table, join build, grouped aggregation, result collection, sort) and the fixed\n"
               "  cost of a pipeline on synthetic tables of N rows (default 4194304), prints them and saves\n"
               "  them to FILE (default $FB_CALIBRATION, else $XDG_CONFIG_HOME/fb/calibration.json, else\n"
               "  ~/.config/fb/calibration.json), which explain and auto placement read.\n");
}

int fbench_calibrate_main(int argc, char **argv)
{
    long rows = 1L << 22, threads = 0;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            calibrate_usage(stdout);
            return FBENCH_EXIT_OK;
        }
        if (!v) {
            fprintf(stderr, "fbench calibrate: %s needs a value\n", a);
            return FBENCH_EXIT_USAGE;
        }
        i++;
        if (strcmp(a, "--rows") == 0 && fbench_parse_int(v, 1024, 1L << 26, &rows) == 0) {
        } else if (strcmp(a, "--threads") == 0 && fbench_parse_int(v, 1, 4096, &threads) == 0) {
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
    if (fb_options_create(&opts) != FB_OK || (threads && fb_options_set_threads(opts, (int)threads) != FB_OK) ||
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
    const fb_plan_rates *r = &cal.cpu;
    printf("  pipeline_s       %10.3f us  fixed cost of a pipeline\n", r->pipeline_s * 1e6);
    printf("  start_s          %10.3f us  fixed cost of starting a run\n", r->start_s * 1e6);
    struct {
        const char *name;
        double v;
    } rates[] = {{"scan_row_s", r->scan_row_s},         {"filter_row_s", r->filter_row_s},
                 {"project_row_s", r->project_row_s},   {"probe_row_s", r->probe_row_s}, {"probe_match_row_s", r->probe_match_row_s},
                 {"hash_probe_row_s", r->hash_probe_row_s}, {"build_row_s", r->build_row_s},
                 {"agg_row_s", r->agg_row_s},           {"collect_row_s", r->collect_row_s},
                 {"sort_row_s", r->sort_row_s}};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
        printf("  %-16s %10.3f ns/row  %8.1f M rows/s\n", rates[i].name, rates[i].v * 1e9, 1e-6 / rates[i].v);
    printf("  opencl: none (no OpenCL plan operators yet)\n");
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
