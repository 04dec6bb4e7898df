/* sched_numa.c - the runtime's view of NUMA: which core and node each worker gets, pinning worker
 * threads with hwloc, finding the node that holds a memory range, and memory bound to a node
 * (fb_numa_alloc) accounted against the context's memory limit. */
#include "fb_sched_numa_internal.h"
#include "fb_topology_internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int fb_numa_nodes(const fb_ctx *ctx)
{
    fb_topology_info info;
    if (fb_topology_get_info((fb_ctx *)ctx, &info) != FB_OK || info.numa_nodes < 1)
        return 1;
    return info.numa_nodes;
}

fb_status fb_numa_place_workers(fb_ctx *ctx, int workers, int *cores, int *nodes)
{
    fb_topology_info info;
    FB_FORWARD_IF_ERROR(fb_topology_get_info(ctx, &info));
    int n_cores = info.cores > 0 ? info.cores : 1;
    int n_nodes = info.numa_nodes > 0 ? info.numa_nodes : 1;
    int *core_node = NULL, *order = NULL, *rank = NULL;
    size_t bytes = (size_t)n_cores * sizeof(int);
    fb_status st = FB_ALLOC(ctx, bytes, &core_node);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, bytes, &order);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, bytes, &rank);
    if (st != FB_OK)
        goto out;
    /* rank of each core within its node, then order by (rank, node, core) */
    int max_rank = 0;
    for (int c = 0; c < n_cores; c++) {
        int node = 0;
        if (fb_topology_core_numa_node(ctx, c, &node) != FB_OK || node < 0 || node >= n_nodes)
            node = 0;
        core_node[c] = node;
        int r = 0;
        for (int d = 0; d < c; d++)
            r += core_node[d] == node;
        rank[c] = r;
        if (r > max_rank)
            max_rank = r;
    }
    int k = 0;
    for (int r = 0; r <= max_rank; r++) {
        for (int node = 0; node < n_nodes; node++) {
            for (int c = 0; c < n_cores; c++) {
                if (core_node[c] == node && rank[c] == r)
                    order[k++] = c;
            }
        }
    }
    for (int i = 0; i < workers; i++) {
        cores[i] = order[i % n_cores];
        nodes[i] = core_node[cores[i]];
    }
out:
    fb_free(ctx, rank, bytes);
    fb_free(ctx, order, bytes);
    fb_free(ctx, core_node, bytes);
    return st;
}

int fb_numa_bind_thread(const fb_ctx *ctx, int core)
{
    if (fb_topology_is_synthetic(ctx))
        return 0;
    hwloc_obj_t obj = fb_topology_core_obj(ctx, core);
    if (!obj || !obj->cpuset)
        return 0;
    return hwloc_set_thread_cpubind(fb_topology_hwloc(ctx), pthread_self(), obj->cpuset, HWLOC_CPUBIND_THREAD) == 0;
}

int fb_numa_node_of_memory(const fb_ctx *ctx, const void *addr, size_t len)
{
    if (fb_topology_is_synthetic(ctx) || !addr)
        return -1;
    if (fb_numa_nodes(ctx) == 1)
        return 0;
    hwloc_topology_t topo = fb_topology_hwloc(ctx);
    const struct hwloc_topology_support *sup = hwloc_topology_get_support(topo);
    if (!sup || !sup->membind || !sup->membind->get_area_memlocation)
        return -1;
    long page = sysconf(_SC_PAGESIZE);
    if (page > 0 && len > (size_t)page)
        len = (size_t)page;
    hwloc_nodeset_t set = hwloc_bitmap_alloc();
    if (!set)
        return -1;
    int node = -1;
    if (hwloc_get_area_memlocation(topo, addr, len ? len : 1, set, HWLOC_MEMBIND_BYNODESET) == 0) {
        int os = hwloc_bitmap_first(set);
        hwloc_obj_t obj = os >= 0 ? hwloc_get_numanode_obj_by_os_index(topo, (unsigned)os) : NULL;
        if (obj)
            node = (int)obj->logical_index;
    }
    hwloc_bitmap_free(set);
    return node;
}

/* ---- memory bound to a node ------------------------------------------------------------------ */

/* Whether memory for `node` comes from hwloc (a real topology and a node) or the context's allocator. */
/* hwloc binds memory to a node on a real topology; a caller's allocator hooks win over that (the
 * engine decides where its memory comes from), and a synthetic topology has nothing to bind to. */
static bool numa_uses_hwloc(const fb_ctx *ctx, int node)
{
    return node >= 0 && !ctx->alloc_custom && !fb_topology_is_synthetic(ctx);
}

/* Bytes hwloc really maps for `size`: whole pages. */
static size_t numa_hwloc_bytes(size_t size)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t p = page > 0 ? (size_t)page : 4096;
    if (size == 0)
        size = 1;
    if (size > SIZE_MAX - p)
        return SIZE_MAX;
    return (size + p - 1) / p * p;
}

/* ---- the block cache: large node-bound blocks kept between queries (struct fb_ctx) -------------- */

/* Blocks at least this large (FB_CACHE_MIN_BYTES, fb_internal.h) are cached; smaller ones come and go
 * through hwloc or the allocator directly. */

/* Gives a block back to where it came from: hwloc for node-bound blocks, the context's allocator for
 * FB_CACHE_HEAP ones. */
static void block_release(fb_ctx *ctx, int node, void *ptr, size_t bytes)
{
    if (node == FB_CACHE_HEAP)
        ctx->alloc.free(ctx->alloc.user, ptr, bytes);
    else
        hwloc_free(fb_topology_hwloc(ctx), ptr, bytes);
}

/* A cached block of exactly `bytes` on `node`, or NULL. */
void *fb_cache_take(fb_ctx *ctx, int node, size_t bytes)
{
    if (bytes < FB_CACHE_MIN_BYTES || !ctx->cache_cap)
        return NULL;
    void *p = NULL;
    pthread_mutex_lock(&ctx->cache_lock);
    for (int i = ctx->cache_n - 1; i >= 0; i--)
        if (ctx->cache[i].node == node && ctx->cache[i].bytes == bytes) {
            p = ctx->cache[i].ptr;
            ctx->cache_bytes -= bytes;
            ctx->cache[i] = ctx->cache[--ctx->cache_n];
            break;
        }
    pthread_mutex_unlock(&ctx->cache_lock);
    return p;
}

/* Keeps a freed block for the next allocation of its size and node, or gives it back to the system
 * when it is small or the cache is full (then the oldest block goes first, to make room). */
void fb_cache_put_or_free(fb_ctx *ctx, int node, void *ptr, size_t bytes)
{
    void *evict[64];
    size_t evict_bytes[64];
    int evict_node[64];
    int n_evict = 0, kept = 0;
    if (bytes >= FB_CACHE_MIN_BYTES && bytes <= ctx->cache_cap) {
        pthread_mutex_lock(&ctx->cache_lock);
        while (ctx->cache_n > 0 && (ctx->cache_n == 64 || ctx->cache_bytes + bytes > ctx->cache_cap)) {
            evict[n_evict] = ctx->cache[0].ptr;
            evict_node[n_evict] = ctx->cache[0].node;
            evict_bytes[n_evict++] = ctx->cache[0].bytes;
            ctx->cache_bytes -= ctx->cache[0].bytes;
            memmove(&ctx->cache[0], &ctx->cache[1], sizeof ctx->cache[0] * (size_t)(--ctx->cache_n));
        }
        ctx->cache[ctx->cache_n++] = (struct fb_cached_block){ptr, bytes, node};
        ctx->cache_bytes += bytes;
        kept = 1;
        pthread_mutex_unlock(&ctx->cache_lock);
    }
    for (int i = 0; i < n_evict; i++)
        block_release(ctx, evict_node[i], evict[i], evict_bytes[i]);
    if (!kept)
        block_release(ctx, node, ptr, bytes);
}

fb_status fb_numa_alloc(fb_ctx *ctx, int node, size_t size, void **out)
{
    FB_RETURN_ERROR_IF(!ctx || !out, ctx, FB_ERR_INVALID_ARG, "ctx and out must not be NULL");
    int nodes = fb_numa_nodes(ctx);
    FB_RETURN_ERROR_IF(node < -1 || node >= nodes, ctx, FB_ERR_INVALID_ARG, "NUMA node %d is out of range -1..%d",
                       node, nodes - 1);
    if (!numa_uses_hwloc(ctx, node))
        return fb_alloc(ctx, size, 64, out, __func__);

    size_t bytes = numa_hwloc_bytes(size);
    FB_RETURN_ERROR_IF(bytes == SIZE_MAX, ctx, FB_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes", size);
    void *cached = fb_cache_take(ctx, node, bytes);
    size_t used = atomic_fetch_add(&ctx->memory_used, bytes) + bytes;
    if (cached && (used < bytes || (ctx->memory_limit && used > ctx->memory_limit))) {
        atomic_fetch_sub(&ctx->memory_used, bytes);
        fb_cache_put_or_free(ctx, node, cached, bytes);
        cached = NULL;
        used = atomic_fetch_add(&ctx->memory_used, bytes) + bytes;
    }
    if (cached) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(NDEBUG)
        memset(cached, 0xA5, bytes); /* a reused block holds old data: let tests catch code that assumes zeros */
#endif
        *out = cached;
        return FB_OK;
    }
    if (used < bytes || (ctx->memory_limit && used > ctx->memory_limit)) {
        atomic_fetch_sub(&ctx->memory_used, bytes);
        return FB_ERROR(ctx, FB_ERR_OUT_OF_MEMORY,
                        "allocating %zu bytes on NUMA node %d would pass the context's memory limit of %zu bytes "
                        "(%zu in use)",
                        bytes, node, ctx->memory_limit, used - bytes);
    }
    hwloc_topology_t topo = fb_topology_hwloc(ctx);
    hwloc_obj_t obj = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)node);
    void *p = NULL;
    if (obj && obj->nodeset) {
        /* not STRICT: where the system cannot bind, hwloc still allocates (unbound) */
        p = hwloc_alloc_membind(topo, bytes, obj->nodeset, HWLOC_MEMBIND_BIND, HWLOC_MEMBIND_BYNODESET);
    } else {
        p = hwloc_alloc(topo, bytes);
    }
    if (!p) {
        atomic_fetch_sub(&ctx->memory_used, bytes);
        return FB_ERROR(ctx, FB_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes on NUMA node %d: %s", bytes, node,
                        strerror(errno));
    }
    *out = p;
    return FB_OK;
}

void fb_numa_free(fb_ctx *ctx, int node, void *ptr, size_t size)
{
    if (!ctx || !ptr)
        return;
    if (!numa_uses_hwloc(ctx, node)) {
        fb_free(ctx, ptr, size);
        return;
    }
    size_t bytes = numa_hwloc_bytes(size);
    atomic_fetch_sub(&ctx->memory_used, bytes);
    fb_cache_put_or_free(ctx, node, ptr, bytes);
}

void fb_numa_cache_drain(fb_ctx *ctx)
{
    pthread_mutex_lock(&ctx->cache_lock);
    for (int i = 0; i < ctx->cache_n; i++)
        block_release(ctx, ctx->cache[i].node, ctx->cache[i].ptr, ctx->cache[i].bytes);
    ctx->cache_n = 0;
    ctx->cache_bytes = 0;
    pthread_mutex_unlock(&ctx->cache_lock);
}
