/* fb_core.h - version, status codes, errors, allocator hooks, options and the context.
 *
 * Everything else in fb takes an fb_ctx. A context is created once per engine (or per query),
 * holds the chosen CPU kernel variant (ISA), the OpenCL device choice, the allocator, the memory
 * limit and the machine topology, and is destroyed once.
 *
 * \defgroup fb_errors Error convention
 * Every function that can fail returns an ::fb_status. FB_OK (0) is success; any other value is an
 * error, and fb_last_error() gives a readable message for it on the calling thread. Output arguments
 * are written only on success, unless a function's documentation says otherwise; outputs of a failed
 * call are never marked valid (an output column of a failed call has length 0).
 * Functions that destroy an object accept NULL and do nothing.
 */
#ifndef FB_CORE_H
#define FB_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a symbol exported from libfb; everything else is hidden (-fvisibility=hidden). */
#if defined(FB_STATIC_DEFINE)
#define FB_API
#elif defined(_WIN32)
#define FB_API __declspec(dllexport)
#else
#define FB_API __attribute__((visibility("default")))
#endif

/** \name Version
 * Compile-time version of the headers; fb_version() gives the version of the library at run time.
 * @{ */
#define FB_VERSION_MAJOR 0
#define FB_VERSION_MINOR 1
#define FB_VERSION_PATCH 0
/** One number for comparisons: major * 10000 + minor * 100 + patch. */
#define FB_VERSION_NUMBER (FB_VERSION_MAJOR * 10000 + FB_VERSION_MINOR * 100 + FB_VERSION_PATCH)
/** @} */

/** \brief Version of the linked library.
 * \return FB_VERSION_NUMBER of the library the program runs with (may differ from the headers').
 * \note Thread-safe. */
FB_API unsigned fb_version(void);

/** \brief Version of the linked library as text, e.g. "0.1.0".
 * \return a static string. \note Thread-safe. */
FB_API const char *fb_version_string(void);

/** \brief Status codes. Values are pinned: they never change between versions. */
typedef enum fb_status {
    FB_OK = 0,                    /**< success */
    FB_ERR_INVALID_ARG = 1,       /**< a NULL pointer or a value outside its documented range */
    FB_ERR_LENGTH_MISMATCH = 2,   /**< columns or buffers that must have equal lengths do not */
    FB_ERR_UNSUPPORTED_TYPE = 3,  /**< the column type (or combination) is not supported by this call */
    FB_ERR_OUT_OF_MEMORY = 4,     /**< host memory (or the context's memory limit) exhausted */
    FB_ERR_UNSUPPORTED_ISA = 5,   /**< a forced CPU kernel variant the CPU (or this build) lacks */
    FB_ERR_CAPACITY = 6,          /**< an output buffer is too small for the result */
    FB_ERR_OUT_OF_RANGE = 7,      /**< a row id or selection index outside its column */
    FB_ERR_NO_DEVICE = 8,         /**< no OpenCL platform/device, or the requested index is absent */
    FB_ERR_OPENCL = 9,            /**< an OpenCL call failed; the message names the call and code */
    FB_ERR_CL_BUILD = 10,         /**< an OpenCL program failed to build; the message has the log */
    FB_ERR_DEVICE_MEMORY = 11,    /**< the OpenCL device ran out of memory */
    FB_ERR_TOPOLOGY = 12,         /**< hwloc could not load the (real or synthetic) topology */
    FB_ERR_IO = 13,               /**< a file could not be read or written */
    FB_ERR_OVERFLOW = 14,         /**< an integer result overflowed its type */
    FB_ERR_CANCELLED = 15,        /**< the operation was cancelled */
    FB_ERR_INTERNAL = 16          /**< a bug in fb: please report it with the message */
} fb_status;

/** Number of status codes (one past the largest value). */
#define FB_STATUS_COUNT 17

/** \brief Name of a status code, e.g. "FB_ERR_INVALID_ARG".
 * \param status any value; unknown values give "FB_ERR_UNKNOWN".
 * \return a static string. \note Thread-safe. */
FB_API const char *fb_status_name(fb_status status);

struct fb_ctx;
/** Opaque context; see fb_ctx_create(). */
typedef struct fb_ctx fb_ctx;

/** \brief Message of the last error on the calling thread.
 * \param ctx the context the failing call was made on, or NULL for the last error of any call
 *            (fb_ctx_create() and option setters report here).
 * \return a message such as "fb_select_cmp: column 'col' has type float32, set has type int32";
 *         "" if the calling thread has no error recorded for ctx. Valid until the next fb call on
 *         this thread. \note Thread-safe: each thread has its own last error. */
FB_API const char *fb_last_error(const fb_ctx *ctx);

/** \brief CPU kernel variants. Values are pinned. */
typedef enum fb_isa {
    FB_ISA_AUTO = 0,    /**< the best the CPU supports (or the FB_ISA environment variable) */
    FB_ISA_SCALAR = 1,  /**< portable scalar C: the reference all other variants are tested against */
    FB_ISA_BASE = 2,    /**< simde kernels at the baseline target (SSE2 on x86-64, NEON on AArch64) */
    FB_ISA_AVX2 = 3,    /**< simde kernels compiled for AVX2 (+BMI2, FMA) */
    FB_ISA_AVX512 = 4   /**< simde kernels compiled for AVX-512 F/BW/DQ/VL */
} fb_isa;

/** Number of fb_isa values (one past the largest). */
#define FB_ISA_COUNT 5

/** \brief Name of a variant as accepted by FB_ISA: "auto", "scalar", "base", "avx2", "avx512".
 * \return a static string; "unknown" for values out of range. \note Thread-safe. */
FB_API const char *fb_isa_name(fb_isa isa);

/** \brief Parses a variant name (as fb_isa_name() writes it).
 * \param[out] out the variant. \return FB_OK, or FB_ERR_INVALID_ARG for NULL or an unknown name. */
FB_API fb_status fb_isa_parse(const char *name, fb_isa *out);

/** \brief Whether this CPU and this build can run a variant.
 * \return 1 if fb_ctx_create() would accept the variant on this machine, else 0. FB_ISA_AUTO gives 1.
 * \note Thread-safe; CPU features are probed once per process. */
FB_API int fb_isa_supported(fb_isa isa);

/** \brief Allocator hooks. All host memory that fb allocates for a context goes through them (with the
 * default allocator, the runtime's per-NUMA-node memory comes from hwloc, bound to its node; with hooks
 * installed it comes from the hooks, unbound, and the engine decides where it lives).
 * alloc returns memory aligned to at least `alignment` (a power of two, at most 4096) or NULL;
 * free receives the size given to alloc. Both may be called from any thread at once. */
typedef struct fb_allocator {
    void *(*alloc)(void *user, size_t size, size_t alignment); /**< allocate; NULL on failure */
    void (*free)(void *user, void *ptr, size_t size);           /**< free what alloc returned */
    void *user;                                                 /**< passed to both */
} fb_allocator;

struct fb_options;
/** Opaque, reusable set of context options; see fb_options_create(). */
typedef struct fb_options fb_options;

/** Special values for fb_options_set_cl_device(). */
#define FB_CL_DEVICE_DEFAULT (-1) /**< FB_CL_DEVICE env variable, else the first GPU, else the first device */
#define FB_CL_DEVICE_NONE (-2)    /**< never open an OpenCL device from this context */

/** \brief Creates an option set holding the defaults: all cores, FB_ISA_AUTO, FB_CL_DEVICE_DEFAULT,
 * no memory limit, the C library allocator, the real topology.
 * \param[out] out the new options. \return FB_OK, FB_ERR_INVALID_ARG (out NULL) or FB_ERR_OUT_OF_MEMORY. */
FB_API fb_status fb_options_create(fb_options **out);

/** \brief Destroys an option set. \param opts may be NULL. */
FB_API void fb_options_destroy(fb_options *opts);

/** \brief Number of worker threads for the runtime.
 * \param threads 1..4096, or 0 for one per core of the topology. \return FB_OK or FB_ERR_INVALID_ARG. */
FB_API fb_status fb_options_set_threads(fb_options *opts, int threads);

/** \brief Forces a CPU kernel variant. An explicit variant wins over the FB_ISA environment variable.
 * \return FB_OK or FB_ERR_INVALID_ARG (unknown value). Support is checked by fb_ctx_create(). */
FB_API fb_status fb_options_set_isa(fb_options *opts, fb_isa isa);

/** \brief Chooses the OpenCL device by its index in fb_cl_device_list() order.
 * \param device 0.., FB_CL_DEVICE_DEFAULT or FB_CL_DEVICE_NONE. The device is opened on first use.
 * \return FB_OK or FB_ERR_INVALID_ARG. */
FB_API fb_status fb_options_set_cl_device(fb_options *opts, int device);

/** \brief Caps the host memory fb allocates through this context (0 = no limit).
 * Allocations past the cap fail with FB_ERR_OUT_OF_MEMORY. \return FB_OK or FB_ERR_INVALID_ARG. */
FB_API fb_status fb_options_set_memory_limit(fb_options *opts, size_t bytes);

/** \brief Installs allocator hooks (copied). \param alloc NULL restores the C library allocator.
 * \return FB_OK, or FB_ERR_INVALID_ARG if alloc has a NULL function pointer. */
FB_API fb_status fb_options_set_allocator(fb_options *opts, const fb_allocator *alloc);

/** \brief Replaces the machine's topology by an hwloc synthetic description, e.g.
 * "pack:2 numa:1 l3:1(size=32MB) core:4 pu:1" (a two-socket machine). NULL restores the real
 * topology. The FB_TOPOLOGY environment variable does the same when this is not set.
 * The string is copied and parsed by fb_ctx_create(). \return FB_OK or FB_ERR_OUT_OF_MEMORY. */
FB_API fb_status fb_options_set_topology(fb_options *opts, const char *synthetic);

/** \brief Hash join algorithms of the runtime's join pipelines. Values are pinned. */
typedef enum fb_join_algorithm {
    FB_JOIN_ALGO_AUTO = 0,            /**< by the build side's size against the caches hwloc reports (or the
                                           FB_JOIN_ALGO environment variable: auto, shared, radix) */
    FB_JOIN_ALGO_NON_PARTITIONED = 1, /**< one shared hash table built in parallel, probed in place */
    FB_JOIN_ALGO_RADIX = 2            /**< both sides radix-partitioned to cache-sized partitions first */
} fb_join_algorithm;

/** \brief Forces a join algorithm (an explicit one wins over the FB_JOIN_ALGO environment variable).
 * \return FB_OK or FB_ERR_INVALID_ARG (NULL, unknown value). */
FB_API fb_status fb_options_set_join_algorithm(fb_options *opts, fb_join_algorithm algorithm);

/** \brief Creates a context.
 * \param opts options, or NULL for the defaults (environment variables FB_ISA, FB_CL_DEVICE,
 *        FB_TOPOLOGY apply in both cases where the option was not set explicitly).
 * \param[out] out the new context.
 * \return FB_OK; FB_ERR_INVALID_ARG (out NULL, bad FB_ISA value); FB_ERR_UNSUPPORTED_ISA (the forced
 *         variant cannot run here); FB_ERR_TOPOLOGY; FB_ERR_OUT_OF_MEMORY.
 * \note Thread-safe. A context may be used by several threads at once for kernel calls. */
FB_API fb_status fb_ctx_create(const fb_options *opts, fb_ctx **out);

/** \brief Destroys a context and everything it owns (OpenCL objects included).
 * \param ctx may be NULL. \note No other call on ctx may be running. */
FB_API void fb_ctx_destroy(fb_ctx *ctx);

/** \brief The CPU kernel variant the context uses (never FB_ISA_AUTO). \return FB_ISA_SCALAR if ctx is NULL. */
FB_API fb_isa fb_ctx_isa(const fb_ctx *ctx);

/** \brief The join algorithm the context forces (FB_JOIN_ALGO_AUTO: chosen per join).
 * \return FB_JOIN_ALGO_AUTO if ctx is NULL. */
FB_API fb_join_algorithm fb_ctx_join_algorithm(const fb_ctx *ctx);

/** \brief Number of worker threads the context's runtime uses. \return 0 if ctx is NULL. */
FB_API int fb_ctx_threads(const fb_ctx *ctx);

/** \brief Bytes currently allocated through the context. \return 0 if ctx is NULL. \note Thread-safe. */
FB_API size_t fb_ctx_memory_used(const fb_ctx *ctx);

/** \brief Allocates host memory through the context's allocator and memory limit.
 * \param size bytes (0 gives a valid unique pointer); \param alignment power of two ≤ 4096, 0 = 64.
 * \param[out] out the memory. \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_OUT_OF_MEMORY.
 * \note Thread-safe. Free with fb_ctx_free() passing the same size. */
FB_API fb_status fb_ctx_alloc(fb_ctx *ctx, size_t size, size_t alignment, void **out);

/** \brief Frees memory from fb_ctx_alloc(). \param ptr may be NULL. */
FB_API void fb_ctx_free(fb_ctx *ctx, void *ptr, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* FB_CORE_H */
