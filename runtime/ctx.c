/* ctx.c - version, options, the context's lifecycle, and host memory through the context. */
#include "fb_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FB_STR2(x) #x
#define FB_STR(x) FB_STR2(x)

unsigned fb_version(void) { return FB_VERSION_NUMBER; }

const char *fb_version_string(void)
{
    return FB_STR(FB_VERSION_MAJOR) "." FB_STR(FB_VERSION_MINOR) "." FB_STR(FB_VERSION_PATCH);
}

/* ---- ISA names ------------------------------------------------------------------------------- */

static const char *const isa_names[FB_ISA_COUNT] = {
    [FB_ISA_AUTO] = "auto", [FB_ISA_SCALAR] = "scalar", [FB_ISA_BASE] = "base",
    [FB_ISA_AVX2] = "avx2", [FB_ISA_AVX512] = "avx512",
};

const char *fb_isa_name(fb_isa isa)
{
    if ((unsigned)isa >= FB_ISA_COUNT)
        return "unknown";
    return isa_names[isa];
}

fb_status fb_isa_parse(const char *name, fb_isa *out)
{
    FB_RETURN_ERROR_IF(!name || !out, NULL, FB_ERR_INVALID_ARG, "name and out must not be NULL");
    for (int i = 0; i < FB_ISA_COUNT; i++) {
        if (strcmp(name, isa_names[i]) == 0) {
            *out = (fb_isa)i;
            return FB_OK;
        }
    }
    return FB_ERROR(NULL, FB_ERR_INVALID_ARG, "unknown CPU kernel variant '%s' (expected auto, scalar, base, avx2 or avx512)",
                    name);
}

int fb_isa_supported(fb_isa isa)
{
    if (isa == FB_ISA_AUTO)
        return 1;
    if ((unsigned)isa >= FB_ISA_COUNT)
        return 0;
    return fb_kernel_table_get(isa) != NULL;
}

/* ---- default allocator ----------------------------------------------------------------------- */

static void *default_alloc(void *user, size_t size, size_t alignment)
{
    (void)user;
    void *p = NULL;
    if (alignment < sizeof(void *))
        alignment = sizeof(void *);
    if (posix_memalign(&p, alignment, size ? size : 1) != 0)
        return NULL;
    return p;
}

static void default_free(void *user, void *ptr, size_t size)
{
    (void)user;
    (void)size;
    free(ptr);
}

static const fb_allocator default_allocator = {default_alloc, default_free, NULL};

/* ---- options --------------------------------------------------------------------------------- */

static void options_defaults(struct fb_options *o)
{
    memset(o, 0, sizeof *o);
    o->isa = FB_ISA_AUTO;
    o->cl_device = FB_CL_DEVICE_DEFAULT;
    o->alloc = default_allocator;
}

fb_status fb_options_create(fb_options **out)
{
    FB_RETURN_ERROR_IF(!out, NULL, FB_ERR_INVALID_ARG, "out must not be NULL");
    struct fb_options *o = malloc(sizeof *o);
    FB_RETURN_ERROR_IF(!o, NULL, FB_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes", sizeof *o);
    options_defaults(o);
    *out = o;
    return FB_OK;
}

void fb_options_destroy(fb_options *opts)
{
    if (!opts)
        return;
    free(opts->topology);
    free(opts);
}

fb_status fb_options_set_threads(fb_options *opts, int threads)
{
    FB_RETURN_ERROR_IF(!opts, NULL, FB_ERR_INVALID_ARG, "opts must not be NULL");
    FB_RETURN_ERROR_IF(threads < 0 || threads > 4096, NULL, FB_ERR_INVALID_ARG,
                       "threads must be 0 (one per core) or 1..4096, got %d", threads);
    opts->threads = threads;
    return FB_OK;
}

fb_status fb_options_set_isa(fb_options *opts, fb_isa isa)
{
    FB_RETURN_ERROR_IF(!opts, NULL, FB_ERR_INVALID_ARG, "opts must not be NULL");
    FB_RETURN_ERROR_IF((unsigned)isa >= FB_ISA_COUNT, NULL, FB_ERR_INVALID_ARG, "unknown fb_isa value %d", (int)isa);
    opts->isa = isa;
    opts->isa_set = isa != FB_ISA_AUTO;
    return FB_OK;
}

fb_status fb_options_set_cl_device(fb_options *opts, int device)
{
    FB_RETURN_ERROR_IF(!opts, NULL, FB_ERR_INVALID_ARG, "opts must not be NULL");
    FB_RETURN_ERROR_IF(device < FB_CL_DEVICE_NONE, NULL, FB_ERR_INVALID_ARG,
                       "device must be an index ≥ 0, FB_CL_DEVICE_DEFAULT or FB_CL_DEVICE_NONE, got %d", device);
    opts->cl_device = device;
    opts->cl_device_set = device != FB_CL_DEVICE_DEFAULT;
    return FB_OK;
}

fb_status fb_options_set_memory_limit(fb_options *opts, size_t bytes)
{
    FB_RETURN_ERROR_IF(!opts, NULL, FB_ERR_INVALID_ARG, "opts must not be NULL");
    opts->memory_limit = bytes;
    return FB_OK;
}

fb_status fb_options_set_allocator(fb_options *opts, const fb_allocator *alloc)
{
    FB_RETURN_ERROR_IF(!opts, NULL, FB_ERR_INVALID_ARG, "opts must not be NULL");
    if (!alloc) {
        opts->alloc = default_allocator;
        return FB_OK;
    }
    FB_RETURN_ERROR_IF(!alloc->alloc || !alloc->free, NULL, FB_ERR_INVALID_ARG,
                       "allocator needs both alloc and free functions");
    opts->alloc = *alloc;
    return FB_OK;
}

fb_status fb_options_set_topology(fb_options *opts, const char *synthetic)
{
    FB_RETURN_ERROR_IF(!opts, NULL, FB_ERR_INVALID_ARG, "opts must not be NULL");
    char *copy = NULL;
    if (synthetic) {
        copy = strdup(synthetic);
        FB_RETURN_ERROR_IF(!copy, NULL, FB_ERR_OUT_OF_MEMORY, "cannot copy the topology string");
    }
    free(opts->topology);
    opts->topology = copy;
    return FB_OK;
}

fb_status fb_options_set_join_algorithm(fb_options *opts, fb_join_algorithm algorithm)
{
    FB_RETURN_ERROR_IF(!opts, NULL, FB_ERR_INVALID_ARG, "opts must not be NULL");
    FB_RETURN_ERROR_IF((unsigned)algorithm > FB_JOIN_ALGO_RADIX, NULL, FB_ERR_INVALID_ARG,
                       "unknown fb_join_algorithm value %d", (int)algorithm);
    opts->join_algo = algorithm;
    return FB_OK;
}

/* The forced join algorithm: the option, else FB_JOIN_ALGO (auto, shared, radix). */
static fb_status choose_join_algo(const struct fb_options *o, fb_join_algorithm *out)
{
    *out = o->join_algo;
    const char *env = getenv("FB_JOIN_ALGO");
    if (o->join_algo != FB_JOIN_ALGO_AUTO || !env || !*env)
        return FB_OK;
    if (strcmp(env, "shared") == 0)
        *out = FB_JOIN_ALGO_NON_PARTITIONED;
    else if (strcmp(env, "radix") == 0)
        *out = FB_JOIN_ALGO_RADIX;
    else
        FB_RETURN_ERROR_IF(strcmp(env, "auto") != 0, NULL, FB_ERR_INVALID_ARG,
                           "environment variable FB_JOIN_ALGO='%s' is not one of auto, shared, radix", env);
    return FB_OK;
}

fb_status fb_options_set_agg_strategy(fb_options *opts, fb_agg_strategy strategy)
{
    FB_RETURN_ERROR_IF(!opts, NULL, FB_ERR_INVALID_ARG, "opts must not be NULL");
    FB_RETURN_ERROR_IF((unsigned)strategy > FB_AGG_STRATEGY_PARTITION, NULL, FB_ERR_INVALID_ARG,
                       "unknown fb_agg_strategy value %d", (int)strategy);
    opts->agg_strategy = strategy;
    return FB_OK;
}

/* The forced aggregation strategy: the option, else FB_AGG_STRATEGY (auto, direct, hash, partition). */
static fb_status choose_agg_strategy(const struct fb_options *o, fb_agg_strategy *out)
{
    static const char *const names[] = {"auto", "direct", "hash", "partition"};
    *out = o->agg_strategy;
    const char *env = getenv("FB_AGG_STRATEGY");
    if (o->agg_strategy != FB_AGG_STRATEGY_AUTO || !env || !*env)
        return FB_OK;
    for (int i = 0; i < 4; i++)
        if (strcmp(env, names[i]) == 0) {
            *out = (fb_agg_strategy)i;
            return FB_OK;
        }
    return FB_ERROR(NULL, FB_ERR_INVALID_ARG,
                    "environment variable FB_AGG_STRATEGY='%s' is not one of auto, direct, hash, partition", env);
}

fb_agg_strategy fb_ctx_agg_strategy(const fb_ctx *ctx) { return ctx ? ctx->agg_strategy : FB_AGG_STRATEGY_AUTO; }

/* ---- context --------------------------------------------------------------------------------- */

/* The variant to use: explicit option, else FB_ISA, else the best one. */
static fb_status choose_isa(const struct fb_options *o, fb_isa *out)
{
    fb_isa isa = o->isa;
    if (!o->isa_set) {
        const char *env = getenv("FB_ISA");
        if (env && *env) {
            fb_isa parsed;
            FB_RETURN_ERROR_IF(fb_isa_parse(env, &parsed) != FB_OK, NULL, FB_ERR_INVALID_ARG,
                               "environment variable FB_ISA='%s' is not one of auto, scalar, base, avx2, avx512", env);
            isa = parsed;
        }
    }
    if (isa == FB_ISA_AUTO)
        isa = fb_isa_best();
    FB_RETURN_ERROR_IF(!fb_kernel_table_get(isa), NULL, FB_ERR_UNSUPPORTED_ISA,
                       "CPU kernel variant '%s' is not supported by this CPU or was not built in (best here: '%s')",
                       fb_isa_name(isa), fb_isa_name(fb_isa_best()));
    *out = isa;
    return FB_OK;
}

static fb_status choose_cl_device(const struct fb_options *o, int *out)
{
    int dev = o->cl_device;
    if (!o->cl_device_set) {
        const char *env = getenv("FB_CL_DEVICE");
        if (env && *env) {
            char *end = NULL;
            errno = 0;
            long v = strtol(env, &end, 10);
            if (strcmp(env, "none") == 0) {
                v = FB_CL_DEVICE_NONE;
            } else {
                FB_RETURN_ERROR_IF(errno || !end || *end || v < 0 || v > INT_MAX, NULL, FB_ERR_INVALID_ARG,
                                   "environment variable FB_CL_DEVICE='%s' must be a device index ≥ 0 or 'none'", env);
            }
            dev = (int)v;
        }
    }
    *out = dev;
    return FB_OK;
}

fb_status fb_ctx_create(const fb_options *opts, fb_ctx **out)
{
    FB_RETURN_ERROR_IF(!out, NULL, FB_ERR_INVALID_ARG, "out must not be NULL");
    struct fb_options defaults;
    if (!opts) {
        options_defaults(&defaults);
        opts = &defaults;
    }
    fb_isa isa = FB_ISA_SCALAR;
    FB_FORWARD_IF_ERROR(choose_isa(opts, &isa));
    int cl_device = FB_CL_DEVICE_NONE;
    FB_FORWARD_IF_ERROR(choose_cl_device(opts, &cl_device));
    fb_join_algorithm join_algo = FB_JOIN_ALGO_AUTO;
    FB_FORWARD_IF_ERROR(choose_join_algo(opts, &join_algo));
    fb_agg_strategy agg_strategy = FB_AGG_STRATEGY_AUTO;
    FB_FORWARD_IF_ERROR(choose_agg_strategy(opts, &agg_strategy));

    /* The context itself comes from the C library: the user's allocator may want a context to
     * account against, and the context is small and fixed. */
    fb_ctx *ctx = calloc(1, sizeof *ctx);
    FB_RETURN_ERROR_IF(!ctx, NULL, FB_ERR_OUT_OF_MEMORY, "cannot allocate the context");
    ctx->isa = isa;
    ctx->kt = fb_kernel_table_get(isa);
    ctx->join_algo = join_algo;
    ctx->agg_strategy = agg_strategy;
    ctx->alloc = opts->alloc;
    ctx->alloc_custom = opts->alloc.alloc != default_alloc;
    ctx->memory_limit = opts->memory_limit;
    atomic_init(&ctx->memory_used, 0);
    ctx->cl_device = cl_device;
    if (pthread_mutex_init(&ctx->cl_lock, NULL) != 0) {
        free(ctx);
        return FB_ERROR(NULL, FB_ERR_INTERNAL, "pthread_mutex_init failed");
    }
    if (pthread_mutex_init(&ctx->cache_lock, NULL) != 0) {
        pthread_mutex_destroy(&ctx->cl_lock);
        free(ctx);
        return FB_ERROR(NULL, FB_ERR_INTERNAL, "pthread_mutex_init failed");
    }
    /* The block cache: FB_MEMORY_CACHE bytes (0 turns it off), else 1 GiB; never more than a quarter
     * of a memory limit. */
    ctx->cache_cap = (size_t)1 << 30;
    const char *cache_env = getenv("FB_MEMORY_CACHE");
    if (cache_env && *cache_env) {
        char *end = NULL;
        unsigned long long v = strtoull(cache_env, &end, 10);
        if (end && !*end)
            ctx->cache_cap = (size_t)v;
    }
    if (ctx->memory_limit && ctx->cache_cap > ctx->memory_limit / 4)
        ctx->cache_cap = ctx->memory_limit / 4;

    const char *synthetic = opts->topology;
    if (!synthetic) {
        const char *env = getenv("FB_TOPOLOGY");
        if (env && *env)
            synthetic = env;
    }
    fb_status st = fb_topology_load(ctx, synthetic);
    if (st != FB_OK) {
        /* keep the topology's message, but report it as a failure of fb_ctx_create */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", fb_last_error(ctx));
        fb_ctx_destroy(ctx);
        return FB_ERROR(NULL, st, "%s", msg);
    }
    if (opts->threads > 0) {
        ctx->threads = opts->threads;
    } else {
        fb_topology_info info;
        ctx->threads = fb_topology_get_info(ctx, &info) == FB_OK && info.cores > 0 ? info.cores : 1;
    }
    *out = ctx;
    return FB_OK;
}

void fb_ctx_destroy(fb_ctx *ctx)
{
    if (!ctx)
        return;
    fb_cl_release(ctx);
    fb_numa_cache_drain(ctx); /* needs the topology */
    fb_topology_free(ctx);
    pthread_mutex_destroy(&ctx->cl_lock);
    pthread_mutex_destroy(&ctx->cache_lock);
    fb_clear_error(ctx);
    free(ctx);
}

fb_isa fb_ctx_isa(const fb_ctx *ctx) { return ctx ? ctx->isa : FB_ISA_SCALAR; }

int fb_ctx_threads(const fb_ctx *ctx) { return ctx ? ctx->threads : 0; }

fb_join_algorithm fb_ctx_join_algorithm(const fb_ctx *ctx) { return ctx ? ctx->join_algo : FB_JOIN_ALGO_AUTO; }

size_t fb_ctx_memory_used(const fb_ctx *ctx) { return ctx ? atomic_load(&ctx->memory_used) : 0; }

/* ---- memory ---------------------------------------------------------------------------------- */

fb_status fb_alloc(fb_ctx *ctx, size_t size, size_t alignment, void **out, const char *where)
{
    if (!ctx || !out)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "ctx and out must not be NULL");
    if (alignment == 0)
        alignment = 64;
    if ((alignment & (alignment - 1)) != 0 || alignment > 4096)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "alignment %zu is not a power of two ≤ 4096", alignment);
    if (ctx->memory_limit) {
        size_t used = atomic_fetch_add(&ctx->memory_used, size) + size;
        if (used > ctx->memory_limit || used < size) {
            atomic_fetch_sub(&ctx->memory_used, size);
            return fb_set_error(ctx, FB_ERR_OUT_OF_MEMORY, where,
                                "allocating %zu bytes would pass the context's memory limit of %zu bytes (%zu in use)",
                                size, ctx->memory_limit, used - size);
        }
    } else {
        atomic_fetch_add(&ctx->memory_used, size);
    }
    /* Large blocks of the default allocator go through the context's block cache (sched_numa.c). */
    int cacheable = !ctx->alloc_custom && alignment <= 64 && size >= FB_CACHE_MIN_BYTES;
    void *p = cacheable ? fb_cache_take(ctx, FB_CACHE_HEAP, size) : NULL;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(NDEBUG)
    if (p)
        memset(p, 0xA5, size); /* a reused block holds old data: let tests catch code that assumes zeros */
#endif
    if (!p)
        p = ctx->alloc.alloc(ctx->alloc.user, size, cacheable ? 64 : alignment);
    if (!p) {
        atomic_fetch_sub(&ctx->memory_used, size);
        return fb_set_error(ctx, FB_ERR_OUT_OF_MEMORY, where, "cannot allocate %zu bytes", size);
    }
    *out = p;
    return FB_OK;
}

void fb_free(fb_ctx *ctx, void *ptr, size_t size)
{
    if (!ctx || !ptr)
        return;
    atomic_fetch_sub(&ctx->memory_used, size);
    if (!ctx->alloc_custom && size >= FB_CACHE_MIN_BYTES)
        fb_cache_put_or_free(ctx, FB_CACHE_HEAP, ptr, size);
    else
        ctx->alloc.free(ctx->alloc.user, ptr, size);
}

fb_status fb_ctx_alloc(fb_ctx *ctx, size_t size, size_t alignment, void **out)
{
    return fb_alloc(ctx, size, alignment, out, "fb_ctx_alloc");
}

void fb_ctx_free(fb_ctx *ctx, void *ptr, size_t size) { fb_free(ctx, ptr, size); }
