/* topology.c - the machine through hwloc: packages, NUMA nodes, cores and caches of the real
 * machine (with I/O devices, so OpenCL devices can be placed) or of a synthetic description.
 *
 * The real topology is loaded once per process, at the first context that needs it, and kept:
 * the machine does not change under a running engine, and loading it with I/O discovery costs
 * 10-300 ms (hwloc's PCI backend, and its OpenCL backend that starts every OpenCL platform), too
 * much for a context made per query. Every context reads the one copy (hwloc allows concurrent
 * reads). Keeping it also keeps hwloc's plugins loaded: when the last topology is destroyed hwloc
 * unloads them, and the leak checker then reports what libpciaccess still held in its globals.
 * A synthetic topology belongs to its context alone and is destroyed with it. */
#include "fb_topology_internal.h"

#include <errno.h>
#include <hwloc/opencl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fb_topology_state {
    hwloc_topology_t topo;
    int synthetic;              /* from a synthetic description; else the process's real topology */
    hwloc_obj_type_t core_type; /* HWLOC_OBJ_CORE, or HWLOC_OBJ_PU where hwloc finds no cores */
    fb_topology_info info;
    int *core_numa;             /* per core: NUMA node logical index */
    int *core_package;          /* per core: package logical index (0 without packages) */
};

static pthread_mutex_t real_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fb_topology_state *real_topology; /* loaded once, kept for the process; guarded by real_lock */

/* ---- building the state ---------------------------------------------------------------------- */

static void state_destroy(struct fb_topology_state *s)
{
    if (!s)
        return;
    if (s->topo)
        hwloc_topology_destroy(s->topo);
    free(s->core_numa);
    free(s->core_package);
    free(s);
}

/* Size of the first cache object at `depth_type` that holds data (L1 instruction caches are
 * skipped); 0 when there is none. */
static uint64_t cache_size(hwloc_topology_t topo, hwloc_obj_type_t type, int *count)
{
    uint64_t size = 0;
    int n = 0;
    for (hwloc_obj_t o = hwloc_get_next_obj_by_type(topo, type, NULL); o;
         o = hwloc_get_next_obj_by_type(topo, type, o)) {
        if (o->attr->cache.type == HWLOC_OBJ_CACHE_INSTRUCTION)
            continue;
        if (n++ == 0)
            size = o->attr->cache.size;
    }
    if (count)
        *count = n;
    return size;
}

/* The first NUMA node (logical order) that shares CPUs with `cpuset`; nodes without CPUs (HBM,
 * CXL memory) are skipped. -1 when none does. */
static int numa_of_cpuset(hwloc_topology_t topo, hwloc_const_cpuset_t cpuset)
{
    for (hwloc_obj_t n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, NULL); n;
         n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n)) {
        if (n->cpuset && hwloc_bitmap_intersects(n->cpuset, cpuset))
            return (int)n->logical_index;
    }
    return -1;
}

/* Counts, cache sizes and the per-core maps of a loaded topology. */
static int state_fill(struct fb_topology_state *s, char *err, size_t errsize)
{
    hwloc_topology_t topo = s->topo;
    fb_topology_info *info = &s->info;
    memset(info, 0, sizeof *info);
    info->synthetic = s->synthetic;

    int packages = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
    info->packages = packages > 0 ? packages : 1;
    int numa = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    info->numa_nodes = numa > 0 ? numa : 1;
    info->pus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    s->core_type = HWLOC_OBJ_CORE;
    info->cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    if (info->cores <= 0) {
        s->core_type = HWLOC_OBJ_PU;
        info->cores = info->pus;
    }
    if (info->cores <= 0 || info->pus <= 0) {
        snprintf(err, errsize, "hwloc found no processing units");
        return -1;
    }
    info->l1d_bytes = cache_size(topo, HWLOC_OBJ_L1CACHE, NULL);
    info->l2_bytes = cache_size(topo, HWLOC_OBJ_L2CACHE, NULL);
    info->l3_bytes = cache_size(topo, HWLOC_OBJ_L3CACHE, &info->l3_count);
    for (hwloc_obj_t n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, NULL); n;
         n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n))
        info->memory_bytes += n->attr->numanode.local_memory;
    if (info->memory_bytes == 0)
        info->memory_bytes = hwloc_get_root_obj(topo)->total_memory;

    s->core_numa = calloc((size_t)info->cores, sizeof *s->core_numa);
    s->core_package = calloc((size_t)info->cores, sizeof *s->core_package);
    if (!s->core_numa || !s->core_package) {
        snprintf(err, errsize, "cannot allocate the per-core tables for %d cores", info->cores);
        return -1;
    }
    for (int c = 0; c < info->cores; c++) {
        hwloc_obj_t core = hwloc_get_obj_by_type(topo, s->core_type, (unsigned)c);
        int node = core && core->cpuset ? numa_of_cpuset(topo, core->cpuset) : -1;
        s->core_numa[c] = node >= 0 ? node : 0;
        hwloc_obj_t pkg = core ? hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, core) : NULL;
        s->core_package[c] = pkg ? (int)pkg->logical_index : 0;
    }
    return 0;
}

/* Loads a topology: the real machine's (synthetic NULL) or a synthetic one. On failure writes the
 * reason to err and returns NULL. */
static struct fb_topology_state *state_load(const char *synthetic, char *err, size_t errsize)
{
    /* hwloc's ABI changes with its major version: a mismatch between headers and library would
     * misread every object. */
    if ((hwloc_get_api_version() >> 16) != (HWLOC_API_VERSION >> 16)) {
        snprintf(err, errsize, "hwloc library API 0x%x does not match the headers fb was built with (0x%x)",
                 hwloc_get_api_version(), (unsigned)HWLOC_API_VERSION);
        return NULL;
    }
    struct fb_topology_state *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errsize, "cannot allocate the topology state");
        return NULL;
    }
    s->synthetic = synthetic != NULL;
    if (hwloc_topology_init(&s->topo) != 0) {
        s->topo = NULL;
        snprintf(err, errsize, "hwloc_topology_init failed: %s", strerror(errno));
        state_destroy(s);
        return NULL;
    }
    if (synthetic) {
        if (hwloc_topology_set_synthetic(s->topo, synthetic) != 0) {
            snprintf(err, errsize,
                     "hwloc rejected the synthetic topology '%s' (%s); expected e.g. "
                     "'pack:2 numa:1 l3:1(size=32MB) core:4 pu:1'",
                     synthetic, strerror(errno));
            state_destroy(s);
            return NULL;
        }
    } else {
        /* PCI devices and OS devices (OpenCL among them) give each GPU its NUMA node. GL displays are
         * of no use to fb and probing them can be slow. */
        hwloc_topology_set_io_types_filter(s->topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
        hwloc_topology_set_components(s->topo, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "gl");
    }
    if (hwloc_topology_load(s->topo) != 0) {
        snprintf(err, errsize, "hwloc_topology_load failed%s%s%s: %s", synthetic ? " for '" : "",
                 synthetic ? synthetic : "", synthetic ? "'" : "", strerror(errno));
        state_destroy(s);
        return NULL;
    }
    if (state_fill(s, err, errsize) != 0) {
        state_destroy(s);
        return NULL;
    }
    return s;
}

fb_status fb_topology_load(fb_ctx *ctx, const char *synthetic)
{
    FB_RETURN_ERROR_IF(!ctx, NULL, FB_ERR_INVALID_ARG, "ctx must not be NULL");
    char err[768];
    err[0] = '\0';
    if (synthetic) {
        struct fb_topology_state *s = state_load(synthetic, err, sizeof err);
        FB_RETURN_ERROR_IF(!s, ctx, FB_ERR_TOPOLOGY, "%s", err);
        ctx->topo = s;
        return FB_OK;
    }
    /* A failed load is retried by the next context: the failure may have been transient. */
    pthread_mutex_lock(&real_lock);
    if (!real_topology)
        real_topology = state_load(NULL, err, sizeof err);
    struct fb_topology_state *s = real_topology;
    pthread_mutex_unlock(&real_lock);
    FB_RETURN_ERROR_IF(!s, ctx, FB_ERR_TOPOLOGY, "cannot load the machine's topology: %s", err);
    ctx->topo = s;
    return FB_OK;
}

void fb_topology_free(fb_ctx *ctx)
{
    if (!ctx || !ctx->topo)
        return;
    struct fb_topology_state *s = ctx->topo;
    ctx->topo = NULL;
    if (s->synthetic)
        state_destroy(s); /* the real topology stays for the next context */
}

/* ---- internal accessors ---------------------------------------------------------------------- */

hwloc_topology_t fb_topology_hwloc(const fb_ctx *ctx) { return ctx && ctx->topo ? ctx->topo->topo : NULL; }

int fb_topology_is_synthetic(const fb_ctx *ctx) { return ctx && ctx->topo ? ctx->topo->synthetic : 0; }

hwloc_obj_t fb_topology_core_obj(const fb_ctx *ctx, int core)
{
    if (!ctx || !ctx->topo || core < 0 || core >= ctx->topo->info.cores)
        return NULL;
    return hwloc_get_obj_by_type(ctx->topo->topo, ctx->topo->core_type, (unsigned)core);
}

int fb_topology_cl_device_numa_node(const fb_ctx *ctx, struct _cl_device_id *device)
{
    if (!ctx || !ctx->topo || !device || ctx->topo->synthetic)
        return -1;
    hwloc_topology_t topo = ctx->topo->topo;
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (!set)
        return -1;
    int node = -1;
    if (hwloc_opencl_get_device_cpuset(topo, device, set) == 0) {
        /* A device local to one node gives that node; one local to several (a CPU device, or no PCI
         * locality known) cannot be placed. */
        int found = 0;
        for (hwloc_obj_t n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, NULL); n;
             n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n)) {
            if (n->cpuset && hwloc_bitmap_intersects(n->cpuset, set)) {
                node = found++ ? -1 : (int)n->logical_index;
                if (found > 1)
                    break;
            }
        }
    }
    hwloc_bitmap_free(set);
    return node;
}

/* ---- public functions ------------------------------------------------------------------------ */

fb_status fb_topology_get_info(fb_ctx *ctx, fb_topology_info *info)
{
    FB_RETURN_ERROR_IF(!ctx || !info, ctx, FB_ERR_INVALID_ARG, "ctx and info must not be NULL");
    FB_RETURN_ERROR_IF(!ctx->topo, ctx, FB_ERR_INTERNAL, "the context has no topology");
    *info = ctx->topo->info;
    return FB_OK;
}

/* Checks the arguments shared by the per-core queries. */
static fb_status check_core(fb_ctx *ctx, int core, const void *out, const char *where)
{
    if (!ctx || !out)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "ctx and the output must not be NULL");
    if (!ctx->topo)
        return fb_set_error(ctx, FB_ERR_INTERNAL, where, "the context has no topology");
    if (core < 0 || core >= ctx->topo->info.cores)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "core %d is out of range 0..%d", core,
                            ctx->topo->info.cores - 1);
    return FB_OK;
}

fb_status fb_topology_core_numa_node(fb_ctx *ctx, int core, int *node)
{
    FB_FORWARD_IF_ERROR(check_core(ctx, core, node, __func__));
    *node = ctx->topo->core_numa[core];
    return FB_OK;
}

fb_status fb_topology_core_package(fb_ctx *ctx, int core, int *package)
{
    FB_FORWARD_IF_ERROR(check_core(ctx, core, package, __func__));
    *package = ctx->topo->core_package[core];
    return FB_OK;
}

/* ---- description ----------------------------------------------------------------------------- */

/* Appends to a fixed buffer, counting what would have been written past its end. */
typedef struct fb_text {
    char *buf;
    size_t size;
    size_t len; /* characters produced so far, written or not */
} fb_text;

static void text_printf(fb_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(fb_text *t, const char *fmt, ...)
{
    size_t room = t->len < t->size ? t->size - t->len : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(room ? t->buf + t->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n;
}

/* "32 MiB", "48.8 KiB": binary units, one decimal unless exact. */
static void text_bytes(fb_text *t, uint64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    uint64_t div = 1;
    while (u < 4 && bytes >= div * 1024) {
        div *= 1024;
        u++;
    }
    if (bytes % div == 0)
        text_printf(t, "%llu %s", (unsigned long long)(bytes / div), units[u]);
    else
        text_printf(t, "%.1f %s", (double)bytes / (double)div, units[u]);
}

/* Logical indices of the objects of `type` inside `set`, as ranges: "0-3,8-11". */
static void text_index_ranges(fb_text *t, hwloc_topology_t topo, hwloc_const_cpuset_t set, hwloc_obj_type_t type)
{
    long first = -1, last = -1;
    int written = 0;
    for (hwloc_obj_t o = hwloc_get_next_obj_inside_cpuset_by_type(topo, set, type, NULL);;
         o = hwloc_get_next_obj_inside_cpuset_by_type(topo, set, type, o)) {
        long idx = o ? (long)o->logical_index : -2;
        if (o && first >= 0 && idx == last + 1) {
            last = idx;
            continue;
        }
        if (first >= 0) {
            text_printf(t, "%s%ld", written++ ? "," : "", first);
            if (last > first)
                text_printf(t, "-%ld", last);
        }
        if (!o)
            break;
        first = last = idx;
    }
    if (!written)
        text_printf(t, "none");
}

/* ", L3 32 MiB x1, L2 1 MiB x2, L1d 32 KiB x2" for the caches inside `set`. */
static void text_caches(fb_text *t, hwloc_topology_t topo, hwloc_const_cpuset_t set)
{
    static const hwloc_obj_type_t types[] = {HWLOC_OBJ_L3CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L1CACHE};
    static const char *const names[] = {"L3", "L2", "L1d"};
    for (int i = 0; i < 3; i++) {
        int n = 0;
        uint64_t size = 0;
        for (hwloc_obj_t o = hwloc_get_next_obj_inside_cpuset_by_type(topo, set, types[i], NULL); o;
             o = hwloc_get_next_obj_inside_cpuset_by_type(topo, set, types[i], o)) {
            if (o->attr->cache.type == HWLOC_OBJ_CACHE_INSTRUCTION)
                continue;
            if (n++ == 0)
                size = o->attr->cache.size;
        }
        if (n) {
            text_printf(t, ", %s ", names[i]);
            text_bytes(t, size);
            text_printf(t, " x%d", n);
        }
    }
}

/* One line for a package (or for the whole machine when hwloc finds no package). */
static void text_package(fb_text *t, const struct fb_topology_state *s, hwloc_obj_t pkg)
{
    hwloc_topology_t topo = s->topo;
    hwloc_const_cpuset_t set = pkg->cpuset;
    if (pkg->type == HWLOC_OBJ_PACKAGE)
        text_printf(t, "package %u", pkg->logical_index);
    else
        text_printf(t, "machine");
    const char *model = hwloc_obj_get_info_by_name(pkg, "CPUModel");
    if (model && *model)
        text_printf(t, " (%s)", model);
    text_printf(t, ": NUMA ");
    int nodes = 0;
    for (hwloc_obj_t n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, NULL); n;
         n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n)) {
        if (!n->cpuset || !hwloc_bitmap_intersects(n->cpuset, set))
            continue;
        text_printf(t, "%s%u (", nodes++ ? ", " : "", n->logical_index);
        text_bytes(t, n->attr->numanode.local_memory);
        text_printf(t, ")");
    }
    if (!nodes)
        text_printf(t, "none");
    text_printf(t, "; %s ", s->core_type == HWLOC_OBJ_CORE ? "cores" : "PUs (no core information)");
    text_index_ranges(t, topo, set, s->core_type);
    if (s->core_type == HWLOC_OBJ_CORE) {
        text_printf(t, " (PUs ");
        text_index_ranges(t, topo, set, HWLOC_OBJ_PU);
        text_printf(t, ")");
    }
    text_caches(t, topo, set);
    text_printf(t, "\n");
}

fb_status fb_topology_describe(fb_ctx *ctx, char *buf, size_t size)
{
    FB_RETURN_ERROR_IF(!ctx || !buf, ctx, FB_ERR_INVALID_ARG, "ctx and buf must not be NULL");
    FB_RETURN_ERROR_IF(!ctx->topo, ctx, FB_ERR_INTERNAL, "the context has no topology");
    const struct fb_topology_state *s = ctx->topo;
    const fb_topology_info *i = &s->info;
    fb_text t = {buf, size, 0};
    text_printf(&t, "%s topology: %d package%s, %d NUMA node%s, %d core%s, %d PU%s, ",
                s->synthetic ? "synthetic" : "machine", i->packages, i->packages == 1 ? "" : "s",
                i->numa_nodes, i->numa_nodes == 1 ? "" : "s", i->cores, i->cores == 1 ? "" : "s", i->pus,
                i->pus == 1 ? "" : "s");
    text_bytes(&t, i->memory_bytes);
    text_printf(&t, " memory\n");
    hwloc_topology_t topo = s->topo;
    if (hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE) > 0) {
        for (hwloc_obj_t p = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PACKAGE, NULL); p;
             p = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PACKAGE, p))
            text_package(&t, s, p);
    } else {
        text_package(&t, s, hwloc_get_root_obj(topo));
    }
    if (t.len >= size) {
        return FB_ERROR(ctx, FB_ERR_CAPACITY, "the description needs %zu bytes, the buffer has %zu", t.len + 1,
                        size);
    }
    return FB_OK;
}
