/* fbench_run.c - `fbench run NAME`: a named workload generated from a seed, run through fb's runtime,
 * checked against an independent reference, timed (median of repeats) and put next to its bound: the
 * time the bytes it must move take at the measured memory bandwidth. Workloads register in the
 * `workloads` table below; the kernel issues add theirs (../shared/WORKLOADS.md). */
#include "fbench.h"
#include "fbench_run.h"

#include "fb_pipeline_scan_agg_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct run_options {
    const char *name;
    int threads;        /* 0 = one per core */
    double scale;
    const char *device; /* "cpu" or "opencl:N" */
    int repeat;
    const char *json;
    const char *dump;
    const char *hw;     /* fbench hw --json file with the bandwidth ceilings */
    int stats;
    long morsel;        /* rows per morsel, 0 = default */
    int cl_device;      /* -1: the CPU; else the OpenCL device of --device opencl:N */
    uint64_t seed;
} run_options;

/* One workload's data and answer; each workload keeps what it needs behind `data`. */
/* ---- scan-agg: SELECT count(x), sum(x) FROM t WHERE x BETWEEN lo AND hi over int64 x ------------- */

#define SCAN_AGG_LO (-(INT64_C(1) << 30))
#define SCAN_AGG_HI ((INT64_C(1) << 30) - 1)

typedef struct scan_agg_data {
    int64_t rows;
    int64_t *x; /* uniform in [-2^31, 2^31): about half pass the filter, sums stay far from overflow */
} scan_agg_data;

static void *scan_agg_generate(int64_t rows, uint64_t seed)
{
    scan_agg_data *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->rows = rows;
    d->x = fbench_alloc_pages((size_t)rows * 8);
    if (!d->x) {
        free(d);
        return NULL;
    }
    uint64_t s = seed;
    double t0 = fbench_now(), last = t0;
    for (int64_t i = 0; i < rows; i++) {
        d->x[i] = (int64_t)(fbench_splitmix64(&s) >> 32) - (INT64_C(1) << 31);
        if ((i & 0xFFFFF) == 0 && fbench_now() - last > 1.0) {
            last = fbench_now();
            fprintf(stderr, "fbench run: generating ... %.0f%%\n", 100.0 * (double)i / (double)rows);
        }
    }
    return d;
}

static void scan_agg_destroy(void *data)
{
    scan_agg_data *d = data;
    if (!d)
        return;
    fbench_free_pages(d->x, (size_t)d->rows * 8);
    free(d);
}

static void scan_agg_reference(const void *data, fbench_result *out)
{
    const scan_agg_data *d = data;
    int64_t count = 0, sum = 0;
    for (int64_t i = 0; i < d->rows; i++) {
        if (d->x[i] >= SCAN_AGG_LO && d->x[i] <= SCAN_AGG_HI) {
            count++;
            sum += d->x[i];
        }
    }
    out->values[0] = count;
    out->values[1] = sum;
    out->n_values = 2;
}

static fb_status scan_agg_run(fb_ctx *ctx, const void *data, long morsel, fbench_result *out, fb_query *q)
{
    const scan_agg_data *d = data;
    fb_column col = fb_column_make(FB_TYPE_INT64, d->x, d->rows, NULL);
    out->n_values = 2;
    if (!q)
        return fb_run_scan_filter_sum(ctx, &col, SCAN_AGG_LO, SCAN_AGG_HI, morsel, &out->values[0], &out->values[1],
                                      NULL);
    fb_scan_sum_result r;
    fb_pipeline *p;
    fb_status st = fb_pipeline_add_scan_filter_sum(q, &col, SCAN_AGG_LO, SCAN_AGG_HI, morsel, &r, &p);
    if (st == FB_OK)
        st = fb_query_run(q);
    if (st == FB_OK) {
        out->values[0] = r.count;
        out->values[1] = r.sum;
    }
    return st;
}

static double scan_agg_bytes(const void *data)
{
    return (double)((const scan_agg_data *)data)->rows * 8.0;
}

static int scan_agg_dump(const void *data, const char *dir, FILE *manifest)
{
    const scan_agg_data *d = data;
    if (fbench_write_file(dir, "x.int64.bin", d->x, (size_t)d->rows * 8))
        return -1;
    fprintf(manifest,
            "  \"tables\": [{\"name\": \"t\", \"rows\": %lld, \"columns\": [{\"name\": \"x\", \"type\": \"int64\", "
            "\"file\": \"x.int64.bin\", \"validity\": null}]}],\n"
            "  \"query\": \"SELECT count(x), sum(x) FROM t WHERE x BETWEEN %lld AND %lld\",\n",
            (long long)d->rows, (long long)SCAN_AGG_LO, (long long)SCAN_AGG_HI);
    return 0;
}

static const fbench_workload scan_workloads[] = {
    {"scan-agg", "scan -> filter (x BETWEEN -2^30 AND 2^30-1, ~50%) -> count and sum, 2^27 int64 values at scale 1",
     INT64_C(1) << 27, scan_agg_generate, scan_agg_destroy, scan_agg_reference, scan_agg_run, scan_agg_bytes,
     scan_agg_dump, {"count", "sum"}, 0, NULL, NULL},
};

/* Every workload: scan-agg here, the operators' workloads in fbench_wl_*.c. */
typedef size_t (*workload_list_fn)(const fbench_workload **list);
static size_t scan_list(const fbench_workload **list)
{
    *list = scan_workloads;
    return sizeof scan_workloads / sizeof scan_workloads[0];
}
static const workload_list_fn workload_lists[] = {scan_list, fbench_wl_join, fbench_wl_agg, fbench_wl_sort};
#define N_LISTS (sizeof workload_lists / sizeof workload_lists[0])

static const fbench_workload *find_workload(const char *name)
{
    for (size_t l = 0; l < N_LISTS; l++) {
        const fbench_workload *list;
        size_t n = workload_lists[l](&list);
        for (size_t i = 0; i < n; i++)
            if (strcmp(list[i].name, name) == 0)
                return &list[i];
    }
    return NULL;
}

/* ---- the command ------------------------------------------------------------------------------- */

static void run_usage(FILE *out)
{
    fprintf(out, "usage: fbench run NAME [--threads N] [--scale X] [--device cpu|opencl:N] [--repeat R]\n"
                 "                 [--json FILE] [--dump DIR] [--hw HW.json] [--stats] [--morsel ROWS] [--seed S]\n"
                 "workloads:\n");
    for (size_t l = 0; l < N_LISTS; l++) {
        const fbench_workload *list;
        size_t n = workload_lists[l](&list);
        for (size_t i = 0; i < n; i++)
            fprintf(out, "  %-10s %s%s\n", list[i].name, list[i].what, list[i].run_cl ? " [also opencl:N]" : "");
    }
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !end || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int run_parse(int argc, char **argv, run_options *o)
{
    memset(o, 0, sizeof *o);
    o->scale = 1.0;
    o->device = "cpu";
    o->repeat = 5;
    o->seed = 42;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            run_usage(stdout);
            exit(FBENCH_EXIT_OK);
        } else if (strcmp(a, "--stats") == 0) {
            o->stats = 1;
            continue;
        } else if (a[0] != '-') {
            if (o->name) {
                fprintf(stderr, "fbench run: one workload at a time ('%s' and '%s')\n", o->name, a);
                return -1;
            }
            o->name = a;
            continue;
        }
        if (!v) {
            fprintf(stderr, "fbench run: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--threads") == 0 && fbench_parse_int(v, 1, 4096, &n) == 0) {
            o->threads = (int)n;
        } else if (strcmp(a, "--repeat") == 0 && fbench_parse_int(v, 1, 1000, &n) == 0) {
            o->repeat = (int)n;
        } else if (strcmp(a, "--morsel") == 0 && fbench_parse_int(v, 1, 1L << 31, &n) == 0) {
            o->morsel = n;
        } else if (strcmp(a, "--seed") == 0 && fbench_parse_int(v, 0, 0x7FFFFFFFFFFFFFFFL, &n) == 0) {
            o->seed = (uint64_t)n;
        } else if (strcmp(a, "--scale") == 0 && parse_double(v, 1e-6, 64.0, &o->scale) == 0) {
        } else if (strcmp(a, "--device") == 0) {
            o->device = v;
        } else if (strcmp(a, "--json") == 0) {
            o->json = v;
        } else if (strcmp(a, "--dump") == 0) {
            o->dump = v;
        } else if (strcmp(a, "--hw") == 0) {
            o->hw = v;
        } else {
            fprintf(stderr, "fbench run: bad option or value: %s %s\n", a, v);
            return -1;
        }
    }
    if (!o->name) {
        fprintf(stderr, "fbench run: which workload?\n");
        run_usage(stderr);
        return -1;
    }
    o->cl_device = -1;
    if (strcmp(o->device, "cpu") != 0) {
        long dev;
        if (strncmp(o->device, "opencl:", 7) != 0 || fbench_parse_int(o->device + 7, 0, 1023, &dev) != 0) {
            fprintf(stderr, "fbench run: --device must be cpu or opencl:N, got '%s'\n", o->device);
            return -1;
        }
        o->cl_device = (int)dev;
    }
    return 0;
}

/* A number after "key": in an fbench hw JSON file; NAN if absent. */
static double json_number(const char *text, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(text, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

/* The read bandwidth to hold the run against: from --hw (1-thread and all-thread figures; in between
 * threads x the 1-thread figure, capped by the all-thread one), else measured now with `threads`. */
static int read_ceiling(const run_options *o, fb_ctx *ctx, int threads, int cores, int copy, double *gbps,
                        char *source, size_t size)
{
    if (o->hw) {
        FILE *f = fopen(o->hw, "rb");
        char *text = f ? calloc(1, 1 << 20) : NULL;
        size_t len = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
        if (f)
            fclose(f);
        const char *k1 = copy ? "copy_gbps_1" : "read_gbps_1", *ka = copy ? "copy_gbps_all" : "read_gbps_all";
        double r1 = text ? json_number(text, k1) : NAN, ra = text ? json_number(text, ka) : NAN;
        free(text);
        if (!len || isnan(r1) || isnan(ra)) {
            fprintf(stderr, "fbench run: %s has no %s/%s (write it with fbench hw --json)\n", o->hw, k1, ka);
            return -1;
        }
        *gbps = threads >= cores ? ra : fmin(ra, threads * r1);
        snprintf(source, size, "%s", o->hw);
        return 0;
    }
    fprintf(stderr, "fbench run: measuring %s bandwidth with %d threads (give --hw FILE to skip) ...\n",
            copy ? "copy" : "read", threads);
    double read_bw, copy_bw;
    if (fbench_hw_bandwidth(ctx, threads, (size_t)256 << 20, 3, &read_bw, &copy_bw) != 0)
        return -1;
    *gbps = copy ? copy_bw : read_bw;
    snprintf(source, size, "measured now, %d threads, 256 MiB", threads);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void print_stats(fb_query *q)
{
    int workers = fb_query_workers(q);
    printf("  worker  node core pinned  morsels  local remote steals      rows   busy ms   idle ms\n");
    for (int w = -1; w < workers; w++) {
        fb_stats s;
        if (fb_query_stats(q, -1, w, &s) != FB_OK)
            continue;
        if (w < 0)
            printf("  all       -    -      -");
        else
            printf("  %6d %5d %4d %6d", w, s.numa_node, s.core, s.pinned);
        printf(" %8lld %6lld %6lld %6lld %9lld %9.1f %9.1f\n", (long long)s.morsels, (long long)s.morsels_local,
               (long long)s.morsels_remote, (long long)s.steals, (long long)s.rows, s.busy_ns / 1e6,
               s.idle_ns / 1e6);
    }
}

int fbench_run_main(int argc, char **argv)
{
    run_options o;
    if (run_parse(argc, argv, &o) != 0)
        return FBENCH_EXIT_USAGE;
    const fbench_workload *wl = find_workload(o.name);
    if (!wl) {
        fprintf(stderr, "fbench run: unknown workload '%s'\n", o.name);
        run_usage(stderr);
        return FBENCH_EXIT_USAGE;
    }
    if (o.cl_device >= 0 && !wl->run_cl) {
        fprintf(stderr, "fbench run: %s has no OpenCL run (workloads with one: those whose operators have "
                        "OpenCL twins; see fbench run --help)\n", wl->name);
        return FBENCH_EXIT_USAGE;
    }
    int64_t rows = (int64_t)llround((double)wl->rows_at_scale_1 * o.scale);
    if (rows < 1)
        rows = 1;

    fb_options *opts = NULL;
    fb_ctx *ctx = NULL;
    fb_status st = fb_options_create(&opts);
    if (st == FB_OK && o.threads)
        st = fb_options_set_threads(opts, o.threads);
    if (st == FB_OK && o.cl_device >= 0)
        st = fb_options_set_cl_device(opts, o.cl_device);
    if (st == FB_OK)
        st = fb_ctx_create(opts, &ctx);
    fb_options_destroy(opts);
    if (st != FB_OK) {
        fprintf(stderr, "fbench run: %s\n", fb_last_error(NULL));
        return FBENCH_EXIT_FAILURE;
    }
    fb_topology_info info;
    fb_topology_get_info(ctx, &info);
    int threads = fb_ctx_threads(ctx);
    int rc = FBENCH_EXIT_FAILURE;
    void *data = NULL;
    double *times = calloc((size_t)o.repeat, sizeof *times);

    fprintf(stderr, "fbench run: %s, %lld rows, generating (seed %llu) ...\n", wl->name, (long long)rows,
            (unsigned long long)o.seed);
    double t0 = fbench_now();
    data = wl->generate(rows, o.seed);
    if (!data || !times) {
        fprintf(stderr, "fbench run: cannot allocate the input\n");
        goto done;
    }
    fprintf(stderr, "fbench run: generated in %.1f s\n", fbench_now() - t0);

    if (o.dump) {
        char path[4096];
        mkdir(o.dump, 0755);
        snprintf(path, sizeof path, "%s/manifest.json", o.dump);
        FILE *m = fopen(path, "w");
        if (!m) {
            fprintf(stderr, "fbench run: cannot write %s: %s\n", path, strerror(errno));
            goto done;
        }
        fprintf(m, "{\n  \"workload\": \"%s\",\n  \"scale\": %g,\n  \"seed\": %llu,\n  \"byte_order\": \"little\",\n",
                wl->name, o.scale, (unsigned long long)o.seed);
        int bad = wl->dump(data, o.dump, m);
        fprintf(m, "  \"fb_version\": \"%s\"\n}\n", fb_version_string());
        if (fclose(m) != 0 || bad) {
            fprintf(stderr, "fbench run: writing %s failed\n", o.dump);
            goto done;
        }
        fprintf(stderr, "fbench run: input written to %s\n", o.dump);
    }

    fbench_result expect, got;
    wl->reference(data, &expect);
    double ceiling;
    char ceiling_src[512];
    if (read_ceiling(&o, ctx, threads, info.cores, wl->bound_copy, &ceiling, ceiling_src, sizeof ceiling_src) != 0)
        goto done;

    fb_query *stats_q = NULL;
    for (int r = -1; r < o.repeat; r++) { /* r = -1: a warm-up run, not timed */
        fb_query *q = NULL;
        if (o.stats && r == o.repeat - 1 && fb_query_create(ctx, &q) != FB_OK) {
            fprintf(stderr, "fbench run: %s\n", fb_last_error(ctx));
            goto done;
        }
        double t = fbench_now();
        st = o.cl_device >= 0 ? wl->run_cl(ctx, data, &got) : wl->run(ctx, data, o.morsel, &got, q);
        t = fbench_now() - t;
        if (st == FB_OK && wl->finish)
            wl->finish(ctx, data, &got);
        if (st != FB_OK) {
            fprintf(stderr, "fbench run: %s failed: %s\n", wl->name, fb_last_error(ctx));
            fb_query_destroy(q);
            goto done;
        }
        if (got.n_values != expect.n_values ||
            memcmp(got.values, expect.values, sizeof(int64_t) * (size_t)expect.n_values) != 0) {
            fprintf(stderr, "fbench run: %s: WRONG RESULT (run %d):", wl->name, r + 1);
            for (int i = 0; i < expect.n_values; i++)
                fprintf(stderr, " %s %lld (expected %lld)", wl->result_names[i], (long long)got.values[i],
                        (long long)expect.values[i]);
            fprintf(stderr, "\n");
            fb_query_destroy(q);
            goto done;
        }
        if (r >= 0) {
            times[r] = t;
            fprintf(stderr, "fbench run: run %d/%d: %.4f s\n", r + 1, o.repeat, t);
        }
        if (q)
            stats_q = q;
    }
    double *sorted = calloc((size_t)o.repeat, sizeof *sorted);
    if (!sorted)
        goto done;
    memcpy(sorted, times, sizeof *times * (size_t)o.repeat);
    qsort(sorted, (size_t)o.repeat, sizeof *sorted, cmp_double);
    double median = o.repeat % 2 ? sorted[o.repeat / 2] : 0.5 * (sorted[o.repeat / 2 - 1] + sorted[o.repeat / 2]);
    double best = sorted[0];
    free(sorted);
    double bytes = wl->bytes(data), bound = bytes / (ceiling * 1e9);

    printf("fbench run %s: %lld rows, device %s, %d threads, scale %g, fb %s\n", wl->name, (long long)rows, o.device,
           threads, o.scale, fb_version_string());
    printf("  result       ");
    for (int i = 0; i < expect.n_values; i++)
        printf(" %s=%lld", wl->result_names[i], (long long)got.values[i]);
    printf("  (matches the reference)\n");
    printf("  seconds       %.4f median of %d (best %.4f)\n", median, o.repeat, best);
    printf("  rows/s        %.3g\n", (double)rows / median);
    printf("  bound         %.4f s = %.3g GB / %.1f GB/s %s (%s)\n", bound, bytes * 1e-9, ceiling,
           wl->bound_copy ? "copy" : "read", ceiling_src);
    printf("  of bound      %.0f%%\n", 100.0 * bound / median);
    if (stats_q)
        print_stats(stats_q);

    if (o.json) {
        FILE *f = fopen(o.json, "w");
        if (!f) {
            fprintf(stderr, "fbench run: cannot write %s: %s\n", o.json, strerror(errno));
            fb_query_destroy(stats_q);
            goto done;
        }
        char model[256], date[32];
        fbench_cpu_model(model, sizeof model);
        time_t now = time(NULL);
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
        fprintf(f, "[\n  {\"workload\": \"%s\", \"device\": \"%s\", \"threads\": %d, \"scale\": %g, \"rows\": %lld,\n"
                   "   \"seconds\": %.6f, \"best_seconds\": %.6f, \"rows_per_s\": %.1f, \"bound_seconds\": %.6f,\n"
                   "   \"bytes\": %.0f, \"%s_gbps\": %.3f, \"ceiling_source\": ",
                wl->name, o.device, threads, o.scale, (long long)rows, median, best, (double)rows / median, bound,
                bytes, wl->bound_copy ? "copy" : "read", ceiling);
        fbench_json_string(f, ceiling_src);
        fprintf(f, ",\n   \"seconds_all\": [");
        for (int r = 0; r < o.repeat; r++)
            fprintf(f, "%s%.6f", r ? ", " : "", times[r]);
        fprintf(f, "],\n   \"result\": {");
        for (int i = 0; i < expect.n_values; i++)
            fprintf(f, "%s\"%s\": %lld", i ? ", " : "", wl->result_names[i], (long long)got.values[i]);
        fprintf(f, "}, \"checked\": true,\n   \"cpu_model\": ");
        fbench_json_string(f, model);
        fprintf(f, ", \"cores\": %d, \"date\": \"%s\", \"fb_version\": \"%s\", \"isa\": \"%s\", \"seed\": %llu}\n]\n",
                info.cores, date, fb_version_string(), fb_isa_name(fb_ctx_isa(ctx)), (unsigned long long)o.seed);
        if (fclose(f) != 0)
            fprintf(stderr, "fbench run: writing %s failed\n", o.json);
    }
    fb_query_destroy(stats_q);
    rc = FBENCH_EXIT_OK;
done:
    if (data)
        wl->destroy(data);
    free(times);
    fb_ctx_destroy(ctx);
    return rc;
}
