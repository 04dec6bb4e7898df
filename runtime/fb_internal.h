/* fb_internal.h - what every part of libfb shares and users never see: the context's layout,
 * the error macros, allocation through the context. Symbols here are hidden (not FB_API). */
#ifndef FB_INTERNAL_H
#define FB_INTERNAL_H

#include "fb/fb.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct fb_kernel_table;   /* kernels/fb_kernel_table.h */
struct fb_cl_state;       /* cl/fb_cl_internal.h */
struct fb_topology_state; /* runtime/fb_topology_internal.h */

struct fb_options {
    int threads;              /* 0 = one per core */
    fb_isa isa;               /* FB_ISA_AUTO = env FB_ISA or best */
    bool isa_set;             /* set explicitly: wins over FB_ISA */
    int cl_device;            /* index, FB_CL_DEVICE_DEFAULT or FB_CL_DEVICE_NONE */
    bool cl_device_set;       /* set explicitly: wins over FB_CL_DEVICE */
    size_t memory_limit;      /* 0 = none */
    fb_allocator alloc;
    char *topology;           /* synthetic description or NULL */
    fb_join_algorithm join_algo; /* FB_JOIN_ALGO_AUTO = env FB_JOIN_ALGO or per join */
    fb_agg_strategy agg_strategy; /* FB_AGG_STRATEGY_AUTO = env FB_AGG_STRATEGY or per aggregation */
};

struct fb_ctx {
    fb_isa isa;
    const struct fb_kernel_table *kt; /* CPU kernels of isa */
    int threads;
    fb_join_algorithm join_algo;      /* forced join algorithm, or FB_JOIN_ALGO_AUTO */
    fb_agg_strategy agg_strategy;     /* forced runtime aggregation strategy, or FB_AGG_STRATEGY_AUTO */
    fb_allocator alloc;
    bool alloc_custom;                /* alloc came from fb_options_set_allocator(): NUMA memory uses it too */
    size_t memory_limit;
    atomic_size_t memory_used;
    int cl_device;                    /* requested device (as in fb_options) */
    pthread_mutex_t cl_lock;          /* guards cl and serializes OpenCL calls */
    struct fb_cl_state *cl;           /* opened device, NULL until first use */
    struct fb_topology_state *topo;   /* loaded at create */
    /* Large blocks of fb_numa_alloc() kept after fb_numa_free() for the next query (runtime/sched_numa.c):
     * fresh pages cost a fault and a zeroing each, as much as a partitioning pass writing them. */
    pthread_mutex_t cache_lock;
    struct fb_cached_block {
        void *ptr;
        size_t bytes;
        int node;
    } cache[64];
    int cache_n;
    size_t cache_bytes, cache_cap; /* held now; most it may hold (FB_MEMORY_CACHE, 0 = off) */
};

/* Frees the blocks the context's cache holds (runtime/sched_numa.c); called by fb_ctx_destroy(). */
void fb_numa_cache_drain(fb_ctx *ctx);
/* The cache's two sources: node ≥ 0 (or -1) for fb_numa_alloc's hwloc blocks, FB_CACHE_HEAP for
 * fb_alloc's blocks from the default allocator (64-byte aligned). Blocks under FB_CACHE_MIN_BYTES
 * are never cached. */
#define FB_CACHE_HEAP (-2)
#define FB_CACHE_MIN_BYTES ((size_t)1 << 20)
/* A cached block of exactly `bytes` from `node`, or NULL (the caller accounts it as in use). */
void *fb_cache_take(fb_ctx *ctx, int node, size_t bytes);
/* Keeps a block no longer in use (already unaccounted) for the next allocation of its size, or releases it. */
void fb_cache_put_or_free(fb_ctx *ctx, int node, void *ptr, size_t bytes);

/* ---- errors ---------------------------------------------------------------------------------- */

/* Records a formatted message for ctx (may be NULL) on the calling thread, prefixed by `where`
 * (the public function's name), and returns st. */
fb_status fb_set_error(const fb_ctx *ctx, fb_status st, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Forgets the calling thread's error for ctx (called when a context is destroyed). */
void fb_clear_error(const fb_ctx *ctx);

#define FB_ERROR(ctx, st, ...) fb_set_error((ctx), (st), __func__, __VA_ARGS__)

/* One line per error path, as zstd's RETURN_ERROR_IF. */
#define FB_RETURN_ERROR_IF(cond, ctx, st, ...)                                                       \
    do {                                                                                             \
        if (cond)                                                                                    \
            return fb_set_error((ctx), (st), __func__, __VA_ARGS__);                                 \
    } while (0)

#define FB_FORWARD_IF_ERROR(expr)                                                                    \
    do {                                                                                             \
        fb_status fb_rc_ = (expr);                                                                   \
        if (fb_rc_ != FB_OK)                                                                         \
            return fb_rc_;                                                                           \
    } while (0)

/* ---- memory ---------------------------------------------------------------------------------- */

/* Allocation through ctx's hooks and limit; reports FB_ERR_OUT_OF_MEMORY with `where`'s name. */
fb_status fb_alloc(fb_ctx *ctx, size_t size, size_t alignment, void **out, const char *where);
void fb_free(fb_ctx *ctx, void *ptr, size_t size);
#define FB_ALLOC(ctx, size, out) fb_alloc((ctx), (size), 64, (void **)(out), __func__)

/* ---- pieces owned by other modules, called by the context ------------------------------------ */

/* CPU kernel table of a variant, or NULL if not built in / not supported by this CPU. */
const struct fb_kernel_table *fb_kernel_table_get(fb_isa isa);
/* Best variant this CPU runs. */
fb_isa fb_isa_best(void);

/* runtime/topology.c: load (synthetic may be NULL) and free; the state lives in ctx->topo. */
fb_status fb_topology_load(fb_ctx *ctx, const char *synthetic);
void fb_topology_free(fb_ctx *ctx);

/* cl/: releases the context's OpenCL state (device, queues, programs). Safe when none was opened. */
void fb_cl_release(fb_ctx *ctx);

/* ---- shared argument checks (runtime/column.c) ----------------------------------------------- */

/* Validates a column view for a public function named `where`; `what` names the argument. */
fb_status fb_check_column(const fb_ctx *ctx, const fb_column *col, const char *where, const char *what);
/* Validates an output column: non-NULL, data when capacity > 0, type as expected, capacity ≥ rows,
 * validity present when needs_validity. */
fb_status fb_check_column_out(const fb_ctx *ctx, fb_column_out *out, fb_type type, int64_t rows,
                              bool needs_validity, const char *where);

#endif /* FB_INTERNAL_H */
