/* fbench_hw.c - `fbench hw`: what the hardware gives fb's kernels as ceilings. Memory read and copy
 * bandwidth with one thread and with one pinned thread per core, the rate of random 8-byte loads
 * into a table larger than the last-level cache, host<->device transfer bandwidth of each OpenCL
 * device, and the topology; printed as a table and, on request, written as JSON.
 *
 * Method (as STREAM): arrays far larger than the caches, each thread first-touches the part it
 * will use (so the pages sit on its NUMA node), all threads start and stop together at barriers,
 * the best of several repetitions counts. Read sums 64-bit words into eight accumulators (the
 * compiler vectorizes it with the baseline SSE2, and the sum is kept so nothing is dropped); copy
 * is memcpy, which glibc turns into non-temporal stores for large blocks, so copy moves and counts
 * 2 bytes per byte copied (read + write) as STREAM's copy does. */
#include "fbench.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fb_topology_internal.h"

#define HW_DEFAULT_SIZE_MB 1024
#define HW_DEFAULT_REPEATS 5
#define HW_RANDOM_ACCESSES (1l << 23)    /* independent loads per thread and repetition */
#define HW_CHASE_ACCESSES (1l << 19)     /* dependent loads per thread and repetition */
#define HW_COMPUTE_ITERS (1l << 25)      /* steps of the compute kernel per thread and repetition */
#define HW_CL_TRANSFER_MAX (256ull << 20) /* bytes per host<->device copy */

typedef struct hw_options {
    int threads;      /* 0 = one per core */
    long size_mb;     /* per array */
    int repeats;
    const char *json; /* NULL = no JSON */
} hw_options;

/* One OpenCL device's figures, or the error that stopped them. */
typedef struct hw_cl_result {
    int index;
    char name[400];
    double h2d_gbps, d2h_gbps;
    char error[512]; /* "" when measured */
} hw_cl_result;

typedef struct hw_results {
    int threads_all;
    int pinned;
    size_t array_bytes;
    size_t table_bytes;
    uint64_t llc_bytes;
    double read_gbps[2], copy_gbps[2];   /* [0] one thread, [1] all threads */
    double random_mps[2], chase_mps[2];  /* independent and dependent loads */
    double compute_scaling;              /* all threads' compute throughput / one thread's */
    size_t cl_transfer_bytes;
    int cl_count;                        /* -1 when the devices could not be listed */
    char cl_error[512];
    hw_cl_result *cl;
} hw_results;

/* ---- the measured loops ---------------------------------------------------------------------- */

/* Eight independent sums: no loop-carried dependency limits the loads, and GCC vectorizes it. */
static uint64_t hw_read_sum(const uint64_t *a, size_t n)
{
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 += a[i];
        s1 += a[i + 1];
        s2 += a[i + 2];
        s3 += a[i + 3];
        s4 += a[i + 4];
        s5 += a[i + 5];
        s6 += a[i + 6];
        s7 += a[i + 7];
    }
    for (; i < n; i++)
        s0 += a[i];
    return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

/* Loads at addresses that do not depend on loaded data: the core overlaps as many misses as it can. */
static uint64_t hw_random_loads(const uint64_t *table, unsigned bits, long n, uint64_t seed)
{
    uint64_t x = seed | 1, sum = 0;
    for (long k = 0; k < n; k++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull; /* Knuth's MMIX LCG: top bits are good */
        sum += table[x >> (64 - bits)];
    }
    return sum;
}

/* Each address depends on the value loaded before it: one miss at a time (latency). */
static uint64_t hw_chase_loads(const uint64_t *table, uint64_t mask, long n, uint64_t seed)
{
    uint64_t idx = seed & mask;
    for (long k = 0; k < n; k++)
        idx = (table[idx] + (uint64_t)k) & mask;
    return idx;
}

/* ---- a team of pinned threads ---------------------------------------------------------------- */

typedef enum hw_kernel { HW_READ, HW_COPY, HW_RANDOM, HW_CHASE, HW_COMPUTE } hw_kernel;

typedef struct hw_team {
    int n;                    /* threads */
    hwloc_topology_t topo;    /* NULL: do not pin */
    fb_ctx *ctx;
    pthread_barrier_t barrier; /* n workers + the timing thread */
    /* what to run */
    const hw_kernel *kernels;
    int n_kernels, repeats;
    uint64_t *src, *dst;      /* bandwidth arrays (dst may be NULL) */
    size_t words;
    uint64_t *table;          /* random-access table */
    unsigned table_bits;
    int touch_table;          /* the team initialises the table */
    int pin_failed;
    pthread_mutex_t lock;
} hw_team;

typedef struct hw_worker {
    hw_team *team;
    int id;
    pthread_t thread;
    volatile uint64_t sink; /* keeps every result alive */
} hw_worker;

/* [begin, end) of part `id` of `n` over `words`, on 4 KiB boundaries so pages are not shared. */
static void hw_part(size_t words, int n, int id, size_t *begin, size_t *end)
{
    size_t pages = (words + 511) / 512;
    size_t b = pages * (size_t)id / (size_t)n * 512, e = pages * (size_t)(id + 1) / (size_t)n * 512;
    *begin = b < words ? b : words;
    *end = e < words ? e : words;
}

static uint64_t hw_mix(uint64_t z)
{
    z = (z ^ (z >> 33)) * 0xFF51AFD7ED558CCDull;
    z = (z ^ (z >> 33)) * 0xC4CEB9FE1A85EC53ull;
    return z ^ (z >> 33);
}

/* Four independent multiply-add chains, no memory: how much integer throughput threads get when they
 * all run. On a VM whose vCPUs are SMT siblings of one physical core this scales far below n. */
static uint64_t hw_compute(uint64_t seed, long iters)
{
    uint64_t a = seed | 1, b = seed ^ 0x1234, c = seed + 77, d = ~seed;
    for (long i = 0; i < iters; i++) {
        a = a * 0x9E3779B97F4A7C15ull + (uint64_t)i;
        b = b * 0xC2B2AE3D27D4EB4Full + a;
        c = (c ^ (c << 7)) + b;
        d += c >> 3;
    }
    return a + b + c + d;
}

static void *hw_worker_main(void *arg)
{
    hw_worker *w = arg;
    hw_team *t = w->team;
    if (t->topo) {
        fb_topology_info info;
        fb_topology_get_info(t->ctx, &info);
        hwloc_obj_t core = fb_topology_core_obj(t->ctx, w->id % info.cores);
        if (!core || hwloc_set_cpubind(t->topo, core->cpuset, HWLOC_CPUBIND_THREAD) != 0) {
            pthread_mutex_lock(&t->lock);
            t->pin_failed = 1;
            pthread_mutex_unlock(&t->lock);
        }
    }
    /* first touch: this thread's part of each array lands on its NUMA node */
    size_t b, e;
    hw_part(t->words, t->n, w->id, &b, &e);
    for (size_t i = b; i < e; i++) {
        if (t->src)
            t->src[i] = i;
        if (t->dst)
            t->dst[i] = 0;
    }
    if (t->touch_table) {
        size_t tb, te;
        hw_part((size_t)1 << t->table_bits, t->n, w->id, &tb, &te);
        for (size_t i = tb; i < te; i++)
            t->table[i] = hw_mix(i + 1);
    }
    pthread_barrier_wait(&t->barrier);
    uint64_t seed = 0x5EED0000ull + (uint64_t)w->id * 0x9E3779B97F4A7C15ull;
    for (int k = 0; k < t->n_kernels; k++) {
        for (int r = 0; r < t->repeats; r++) {
            pthread_barrier_wait(&t->barrier);
            switch (t->kernels[k]) {
            case HW_READ:
                w->sink += hw_read_sum(t->src + b, e - b);
                break;
            case HW_COPY:
                memcpy(t->dst + b, t->src + b, (e - b) * sizeof(uint64_t));
                w->sink += t->dst[b + (e - b) / 2];
                break;
            case HW_RANDOM:
                w->sink += hw_random_loads(t->table, t->table_bits, HW_RANDOM_ACCESSES, fbench_splitmix64(&seed));
                break;
            case HW_CHASE:
                w->sink += hw_chase_loads(t->table, ((uint64_t)1 << t->table_bits) - 1, HW_CHASE_ACCESSES,
                                          fbench_splitmix64(&seed));
                break;
            case HW_COMPUTE:
                w->sink += hw_compute(fbench_splitmix64(&seed), HW_COMPUTE_ITERS);
                break;
            }
            pthread_barrier_wait(&t->barrier);
        }
    }
    return NULL;
}

/* Runs each kernel `repeats` times on a team of n threads; best[k] receives kernel k's best time
 * in seconds. Returns 0, or -1 when threads could not be started. */
static int hw_team_run(hw_team *t, double *best)
{
    hw_worker *w = calloc((size_t)t->n, sizeof *w);
    if (!w)
        return -1;
    pthread_mutex_init(&t->lock, NULL);
    pthread_barrier_init(&t->barrier, NULL, (unsigned)t->n + 1);
    int started = 0;
    for (; started < t->n; started++) {
        w[started].team = t;
        w[started].id = started;
        if (pthread_create(&w[started].thread, NULL, hw_worker_main, &w[started]) != 0)
            break;
    }
    if (started < t->n) {
        /* cannot run a partial team against a barrier sized for all of it */
        fprintf(stderr, "fbench hw: cannot start %d threads (started %d)\n", t->n, started);
        exit(FBENCH_EXIT_FAILURE);
    }
    pthread_barrier_wait(&t->barrier); /* initialised */
    for (int k = 0; k < t->n_kernels; k++) {
        best[k] = 0;
        for (int r = 0; r < t->repeats; r++) {
            pthread_barrier_wait(&t->barrier);
            double t0 = fbench_now();
            pthread_barrier_wait(&t->barrier);
            double dt = fbench_now() - t0;
            if (r == 0 || dt < best[k])
                best[k] = dt;
        }
    }
    for (int i = 0; i < t->n; i++)
        pthread_join(w[i].thread, NULL);
    pthread_barrier_destroy(&t->barrier);
    pthread_mutex_destroy(&t->lock);
    free(w);
    return 0;
}

/* ---- the measurements ------------------------------------------------------------------------ */

static void hw_progress(const char *what)
{
    fprintf(stderr, "fbench hw: %s ...\n", what);
    fflush(stderr);
}

/* Read and copy bandwidth with n threads over fresh arrays of `bytes` each. */
static int hw_bandwidth(fb_ctx *ctx, hwloc_topology_t topo, int n, size_t bytes, int repeats, double *read_gbps,
                        double *copy_gbps, int *pin_failed)
{
    size_t words = bytes / sizeof(uint64_t);
    uint64_t *src = fbench_alloc_pages(bytes), *dst = fbench_alloc_pages(bytes);
    if (!src || !dst) {
        fprintf(stderr, "fbench hw: cannot allocate 2 x %zu MiB\n", bytes >> 20);
        fbench_free_pages(src, bytes);
        fbench_free_pages(dst, bytes);
        return -1;
    }
    static const hw_kernel kernels[] = {HW_READ, HW_COPY};
    hw_team t = {.n = n, .topo = topo, .ctx = ctx, .kernels = kernels, .n_kernels = 2, .repeats = repeats,
                 .src = src, .dst = dst, .words = words};
    double best[2];
    int rc = hw_team_run(&t, best);
    if (rc == 0) {
        *read_gbps = (double)(words * sizeof(uint64_t)) / best[0] * 1e-9;
        *copy_gbps = 2.0 * (double)(words * sizeof(uint64_t)) / best[1] * 1e-9;
        *pin_failed |= t.pin_failed;
    }
    fbench_free_pages(src, bytes);
    fbench_free_pages(dst, bytes);
    return rc;
}

/* Independent and dependent random loads: all threads, then one, on one table. */
static int hw_random(fb_ctx *ctx, hwloc_topology_t topo, int n, size_t table_bytes, int repeats, hw_results *res,
                     int *pin_failed)
{
    unsigned bits = 0;
    while (((size_t)8 << (bits + 1)) <= table_bytes)
        bits++;
    uint64_t *table = fbench_alloc_pages(table_bytes);
    if (!table) {
        fprintf(stderr, "fbench hw: cannot allocate %zu MiB\n", table_bytes >> 20);
        return -1;
    }
    static const hw_kernel kernels[] = {HW_RANDOM, HW_CHASE};
    double best[2];
    for (int pass = 1; pass >= 0; pass--) {
        int threads = pass ? n : 1;
        char what[128];
        snprintf(what, sizeof what, "random 8-byte loads, %d thread%s, table %zu MiB", threads,
                 threads == 1 ? "" : "s", table_bytes >> 20);
        hw_progress(what);
        hw_team t = {.n = threads, .topo = topo, .ctx = ctx, .kernels = kernels, .n_kernels = 2,
                     .repeats = repeats, .table = table, .table_bits = bits, .touch_table = pass == 1};
        if (hw_team_run(&t, best) != 0) {
            fbench_free_pages(table, table_bytes);
            return -1;
        }
        *pin_failed |= t.pin_failed;
        res->random_mps[pass] = (double)HW_RANDOM_ACCESSES * threads / best[0] * 1e-6;
        res->chase_mps[pass] = (double)HW_CHASE_ACCESSES * threads / best[1] * 1e-6;
    }
    fbench_free_pages(table, table_bytes);
    return 0;
}

/* Host<->device bandwidth of every OpenCL device, one context per device. Errors are kept as text. */
/* Compute throughput of n threads over that of one (n = the ideal): the ceiling of any parallel
 * speedup of compute-bound work on this machine. Returns 0 or -1. */
static int hw_compute_scaling(fb_ctx *ctx, hwloc_topology_t topo, int n, int repeats, double *scaling,
                              int *pin_failed)
{
    static const hw_kernel kernels[] = {HW_COMPUTE};
    double best[2];
    for (int pass = 0; pass < 2; pass++) {
        hw_team t = {.n = pass ? n : 1, .topo = topo, .ctx = ctx, .kernels = kernels, .n_kernels = 1,
                     .repeats = repeats};
        if (hw_team_run(&t, &best[pass]) != 0)
            return -1;
        *pin_failed |= t.pin_failed;
    }
    *scaling = (double)n * best[0] / best[1];
    return 0;
}

static void hw_opencl(size_t bytes, int repeats, hw_results *res)
{
    res->cl_count = -1;
    res->cl_transfer_bytes = bytes;
    fb_ctx *ctx = NULL;
    int count = 0;
    fb_status st = fb_ctx_create(NULL, &ctx);
    if (st == FB_OK)
        st = fb_cl_device_count(ctx, &count);
    if (st != FB_OK) {
        snprintf(res->cl_error, sizeof res->cl_error, "%s", fb_last_error(ctx));
        fb_ctx_destroy(ctx);
        return;
    }
    res->cl_count = count;
    res->cl = calloc(count > 0 ? (size_t)count : 1, sizeof *res->cl);
    if (!res->cl) {
        res->cl_count = -1;
        snprintf(res->cl_error, sizeof res->cl_error, "out of memory");
        fb_ctx_destroy(ctx);
        return;
    }
    for (int i = 0; i < count; i++) {
        hw_cl_result *r = &res->cl[i];
        r->index = i;
        fb_cl_device_info info;
        memset(&info, 0, sizeof info);
        if (fb_cl_device_get_info(ctx, i, &info) == FB_OK)
            snprintf(r->name, sizeof r->name, "%.255s (%.127s)", info.name, info.platform);
        else
            snprintf(r->name, sizeof r->name, "device %d", i);
        char what[512];
        snprintf(what, sizeof what, "host<->device transfers, OpenCL device %d: %s", i, r->name);
        hw_progress(what);
        fb_options *o = NULL;
        fb_ctx *dev = NULL;
        st = fb_options_create(&o);
        if (st == FB_OK)
            st = fb_options_set_cl_device(o, i);
        if (st == FB_OK)
            st = fb_ctx_create(o, &dev);
        size_t n = bytes;
        if (st == FB_OK && info.max_alloc_bytes && n > info.max_alloc_bytes)
            n = (size_t)info.max_alloc_bytes;
        if (st == FB_OK)
            st = fb_cl_measure_transfer(dev, n, repeats, &r->h2d_gbps, &r->d2h_gbps);
        if (st != FB_OK)
            snprintf(r->error, sizeof r->error, "%s", fb_last_error(dev ? dev : NULL));
        fb_ctx_destroy(dev);
        fb_options_destroy(o);
    }
    fb_ctx_destroy(ctx);
}

/* ---- output ---------------------------------------------------------------------------------- */

static void hw_iso_date(char *buf, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void hw_print_table(FILE *f, const hw_results *r, const fb_topology_info *info, const char *model,
                           const char *date, const char *topo_text, int repeats)
{
    fprintf(f, "fbench hw - fb %s - %s - %d cores, %d threads%s - %s\n\n", fb_version_string(), model, info->cores,
            r->threads_all, r->pinned ? " pinned" : " (not pinned)", date);
    fprintf(f, "topology\n");
    for (const char *line = topo_text; *line;) {
        size_t len = strcspn(line, "\n");
        fprintf(f, "  %.*s\n", (int)len, line);
        line += len + (line[len] == '\n');
    }
    char all[32];
    snprintf(all, sizeof all, "%d threads", r->threads_all);
    fprintf(f, "\nmemory bandwidth, GB/s (10^9 B/s), arrays of %zu MiB, best of %d\n", r->array_bytes >> 20, repeats);
    fprintf(f, "  %-36s %12s %12s\n", "", "1 thread", all);
    fprintf(f, "  %-36s %12.2f %12.2f\n", "read (sum of 64-bit words)", r->read_gbps[0], r->read_gbps[1]);
    fprintf(f, "  %-36s %12.2f %12.2f\n", "copy (bytes read + bytes written)", r->copy_gbps[0], r->copy_gbps[1]);
    fprintf(f, "\nrandom 8-byte loads, million/s, table of %zu MiB (last-level cache %llu MiB), best of %d\n",
            r->table_bytes >> 20, (unsigned long long)(r->llc_bytes >> 20), repeats);
    fprintf(f, "  %-36s %12s %12s\n", "", "1 thread", all);
    fprintf(f, "  %-36s %12.1f %12.1f\n", "independent (throughput)", r->random_mps[0], r->random_mps[1]);
    fprintf(f, "  %-36s %12.1f %12.1f\n", "dependent (pointer chase)", r->chase_mps[0], r->chase_mps[1]);
    fprintf(f, "  %-36s %12.1f %12s\n", "  = latency, ns", r->chase_mps[0] > 0 ? 1e3 / r->chase_mps[0] : 0.0, "");
    fprintf(f, "\ncompute (4 multiply-add chains per thread, no memory), throughput of %d threads / 1 thread\n",
            r->threads_all);
    fprintf(f, "  %-36s %12.2f %12d (ideal)\n", "scaling", r->compute_scaling, r->threads_all);
    fprintf(f, "\nOpenCL host<->device transfers, GB/s, %zu MiB per copy, pinned host memory, best of %d\n",
            r->cl_transfer_bytes >> 20, repeats);
    if (r->cl_count < 0) {
        fprintf(f, "  error: %s\n", r->cl_error);
    } else if (r->cl_count == 0) {
        fprintf(f, "  no OpenCL device\n");
    } else {
        fprintf(f, "  %-64s %10s %10s\n", "device", "host->dev", "dev->host");
        for (int i = 0; i < r->cl_count; i++) {
            const hw_cl_result *c = &r->cl[i];
            char name[72];
            snprintf(name, sizeof name, "%d: %.60s", c->index, c->name);
            if (c->error[0])
                fprintf(f, "  %-64s error: %s\n", name, c->error);
            else
                fprintf(f, "  %-64s %10.2f %10.2f\n", name, c->h2d_gbps, c->d2h_gbps);
        }
    }
}

static int hw_write_json(const char *path, const hw_results *r, const fb_topology_info *info, const char *model,
                         const char *date, const char *topo_text, int repeats)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    fprintf(f, "{\n  \"tool\": \"fbench hw\",\n  \"fb_version\": ");
    fbench_json_string(f, fb_version_string());
    fprintf(f, ",\n  \"date\": ");
    fbench_json_string(f, date);
    fprintf(f, ",\n  \"host\": ");
    fbench_json_string(f, host);
    fprintf(f, ",\n  \"cpu_model\": ");
    fbench_json_string(f, model);
    fprintf(f,
            ",\n  \"cores\": %d,\n  \"pus\": %d,\n  \"packages\": %d,\n  \"numa_nodes\": %d,\n"
            "  \"l3_bytes\": %llu,\n  \"l3_count\": %d,\n  \"llc_bytes\": %llu,\n  \"memory_bytes\": %llu,\n",
            info->cores, info->pus, info->packages, info->numa_nodes, (unsigned long long)info->l3_bytes,
            info->l3_count, (unsigned long long)r->llc_bytes, (unsigned long long)info->memory_bytes);
    fprintf(f, "  \"threads_all\": %d,\n  \"pinned\": %s,\n  \"repeats\": %d,\n  \"array_bytes\": %zu,\n",
            r->threads_all, r->pinned ? "true" : "false", repeats, r->array_bytes);
    fprintf(f, "  \"read_gbps_1\": %.3f,\n  \"read_gbps_all\": %.3f,\n", r->read_gbps[0], r->read_gbps[1]);
    fprintf(f, "  \"copy_gbps_1\": %.3f,\n  \"copy_gbps_all\": %.3f,\n", r->copy_gbps[0], r->copy_gbps[1]);
    fprintf(f, "  \"random_table_bytes\": %zu,\n", r->table_bytes);
    fprintf(f, "  \"random_mps\": %.2f,\n  \"random_mps_1\": %.2f,\n", r->random_mps[1], r->random_mps[0]);
    fprintf(f, "  \"random_dep_mps\": %.2f,\n  \"random_dep_mps_1\": %.2f,\n", r->chase_mps[1], r->chase_mps[0]);
    fprintf(f, "  \"random_dep_latency_ns\": %.1f,\n", r->chase_mps[0] > 0 ? 1e3 / r->chase_mps[0] : 0.0);
    fprintf(f, "  \"compute_scaling_all\": %.3f,\n", r->compute_scaling);
    fprintf(f, "  \"cl_transfer_bytes\": %zu,\n", r->cl_transfer_bytes);
    if (r->cl_count < 0) {
        fprintf(f, "  \"cl_error\": ");
        fbench_json_string(f, r->cl_error);
        fprintf(f, ",\n");
    }
    fprintf(f, "  \"cl_devices\": [");
    for (int i = 0; i < r->cl_count; i++) {
        const hw_cl_result *c = &r->cl[i];
        fprintf(f, "%s\n    {\"index\": %d, \"name\": ", i ? "," : "", c->index);
        fbench_json_string(f, c->name);
        if (c->error[0]) {
            fprintf(f, ", \"error\": ");
            fbench_json_string(f, c->error);
        } else {
            fprintf(f, ", \"h2d_gbps\": %.3f, \"d2h_gbps\": %.3f", c->h2d_gbps, c->d2h_gbps);
        }
        fprintf(f, "}");
    }
    fprintf(f, "%s],\n  \"topology\": ", r->cl_count > 0 ? "\n  " : "");
    fbench_json_string(f, topo_text);
    fprintf(f, "\n}\n");
    if (fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

/* ---- command line ---------------------------------------------------------------------------- */

/* The value of option `name` given as "--name V" or "--name=V"; advances *i. NULL if not this option. */
static const char *hw_option_value(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t len = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, len) != 0)
        return NULL;
    if (a[len] == '=')
        return a + len + 1;
    if (a[len] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

static int hw_parse(int argc, char **argv, hw_options *o)
{
    o->threads = 0;
    o->size_mb = HW_DEFAULT_SIZE_MB;
    o->repeats = HW_DEFAULT_REPEATS;
    o->json = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int missing = 0;
        const char *v;
        long n;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fbench_usage(stdout);
            exit(FBENCH_EXIT_OK);
        } else if ((v = hw_option_value(argc, argv, &i, "--threads", &missing))) {
            if (fbench_parse_int(v, 1, 4096, &n) != 0) {
                fprintf(stderr, "fbench hw: --threads wants 1..4096, got '%s'\n", v);
                return -1;
            }
            o->threads = (int)n;
        } else if ((v = hw_option_value(argc, argv, &i, "--size-mb", &missing))) {
            if (fbench_parse_int(v, 1, 1l << 24, &n) != 0) {
                fprintf(stderr, "fbench hw: --size-mb wants a number of MiB >= 1, got '%s'\n", v);
                return -1;
            }
            o->size_mb = n;
        } else if ((v = hw_option_value(argc, argv, &i, "--repeats", &missing))) {
            if (fbench_parse_int(v, 1, 1000, &n) != 0) {
                fprintf(stderr, "fbench hw: --repeats wants 1..1000, got '%s'\n", v);
                return -1;
            }
            o->repeats = (int)n;
        } else if ((v = hw_option_value(argc, argv, &i, "--json", &missing))) {
            if (!*v) {
                fprintf(stderr, "fbench hw: --json wants a file name\n");
                return -1;
            }
            o->json = v;
        } else if (missing) {
            fprintf(stderr, "fbench hw: option '%s' needs a value\n", a);
            return -1;
        } else {
            fprintf(stderr, "fbench hw: unknown option '%s' (see fbench --help)\n", a);
            return -1;
        }
    }
    return 0;
}

int fbench_hw_main(int argc, char **argv)
{
    hw_options o;
    if (hw_parse(argc, argv, &o) != 0)
        return FBENCH_EXIT_USAGE;

    fb_options *opts = NULL;
    fb_ctx *ctx = NULL;
    fb_status st = fb_options_create(&opts);
    if (st == FB_OK)
        st = fb_options_set_cl_device(opts, FB_CL_DEVICE_NONE);
    if (st == FB_OK)
        st = fb_ctx_create(opts, &ctx);
    fb_options_destroy(opts);
    if (st != FB_OK) {
        fprintf(stderr, "fbench hw: %s\n", fb_last_error(NULL));
        return FBENCH_EXIT_FAILURE;
    }
    fb_topology_info info;
    fb_topology_get_info(ctx, &info);
    char topo_text[8192];
    if (fb_topology_describe(ctx, topo_text, sizeof topo_text) != FB_OK)
        fprintf(stderr, "fbench hw: the topology description was truncated\n");
    hwloc_topology_t topo = fb_topology_hwloc(ctx);
    if (fb_topology_is_synthetic(ctx)) {
        fprintf(stderr, "fbench hw: the topology is synthetic (FB_TOPOLOGY): threads are not pinned\n");
        topo = NULL;
    }

    hw_results r;
    memset(&r, 0, sizeof r);
    r.threads_all = o.threads ? o.threads : info.cores;
    if (r.threads_all > info.cores)
        fprintf(stderr, "fbench hw: %d threads on %d cores: some cores run two threads\n", r.threads_all, info.cores);

    /* Copy needs two arrays; keep them within half of what the system can give. */
    size_t bytes = (size_t)o.size_mb << 20;
    uint64_t avail = fbench_mem_available();
    if (avail && 2 * (uint64_t)bytes > avail / 2) {
        bytes = (size_t)(avail / 4) & ~(((size_t)1 << 20) - 1);
        fprintf(stderr, "fbench hw: %lu MiB per array would not fit in the available memory: using %zu MiB\n",
                o.size_mb, bytes >> 20);
    }
    r.array_bytes = bytes;
    r.llc_bytes = info.l3_bytes ? info.l3_bytes * (uint64_t)(info.l3_count > 0 ? info.l3_count : 1)
                                : info.l2_bytes * (uint64_t)info.cores;
    /* The random table: a power of two, at least 4x the last-level caches together. */
    size_t table = (size_t)1 << 20;
    while (table * 2 <= bytes)
        table *= 2;
    while (table < 4 * r.llc_bytes && table * 2 <= (avail ? avail / 2 : (uint64_t)table * 2))
        table *= 2;
    r.table_bytes = table;
    if (r.array_bytes < 4 * r.llc_bytes)
        fprintf(stderr, "fbench hw: arrays of %zu MiB are less than 4x the last-level cache (%llu MiB): "
                        "bandwidth figures include cache hits\n",
                r.array_bytes >> 20, (unsigned long long)(r.llc_bytes >> 20));

    int pin_failed = 0;
    char what[160];
    snprintf(what, sizeof what, "read and copy bandwidth, 1 thread, 2 x %zu MiB", bytes >> 20);
    hw_progress(what);
    if (hw_bandwidth(ctx, topo, 1, bytes, o.repeats, &r.read_gbps[0], &r.copy_gbps[0], &pin_failed) != 0)
        goto fail;
    snprintf(what, sizeof what, "read and copy bandwidth, %d threads, 2 x %zu MiB", r.threads_all, bytes >> 20);
    hw_progress(what);
    if (hw_bandwidth(ctx, topo, r.threads_all, bytes, o.repeats, &r.read_gbps[1], &r.copy_gbps[1], &pin_failed) != 0)
        goto fail;
    if (hw_random(ctx, topo, r.threads_all, table, o.repeats, &r, &pin_failed) != 0)
        goto fail;
    hw_progress("compute scaling");
    if (hw_compute_scaling(ctx, topo, r.threads_all, o.repeats, &r.compute_scaling, &pin_failed) != 0)
        goto fail;
    r.pinned = topo && !pin_failed;
    if (topo && pin_failed)
        fprintf(stderr, "fbench hw: some threads could not be pinned to their core\n");
    hw_progress("OpenCL devices");
    hw_opencl(bytes < HW_CL_TRANSFER_MAX ? bytes : HW_CL_TRANSFER_MAX, o.repeats, &r);

    char model[256], date[64];
    fbench_cpu_model(model, sizeof model);
    hw_iso_date(date, sizeof date);
    hw_print_table(stdout, &r, &info, model, date, topo_text, o.repeats);
    int rc = FBENCH_EXIT_OK;
    if (o.json) {
        if (hw_write_json(o.json, &r, &info, model, date, topo_text, o.repeats) != 0)
            rc = FBENCH_EXIT_FAILURE;
        else
            fprintf(stderr, "fbench hw: wrote %s\n", o.json);
    }
    free(r.cl);
    fb_ctx_destroy(ctx);
    return rc;
fail:
    free(r.cl);
    fb_ctx_destroy(ctx);
    return FBENCH_EXIT_FAILURE;
}

int fbench_hw_bandwidth(fb_ctx *ctx, int threads, size_t bytes, int repeats, double *read_gbps, double *copy_gbps)
{
    hwloc_topology_t topo = fb_topology_is_synthetic(ctx) ? NULL : fb_topology_hwloc(ctx);
    int pin_failed = 0;
    return hw_bandwidth(ctx, topo, threads, bytes, repeats, read_gbps, copy_gbps, &pin_failed);
}
