/* fb_cl.h - OpenCL devices and the OpenCL twins of the CPU kernels.
 *
 * Devices are listed through the OpenCL ICD loader, across all platforms, in a stable order
 * (platform order, then device order within the platform). A context opens one device lazily, on
 * its first OpenCL call: the one chosen by fb_options_set_cl_device(), or by the FB_CL_DEVICE
 * environment variable, or the first GPU, or else the first device of any type.
 *
 * Kernel programs are built from the sources in cl/ (embedded in the library) once per device and
 * cached on disk under $FB_CL_CACHE_DIR, else $XDG_CACHE_HOME/fb/cl, else ~/.cache/fb/cl, keyed by
 * device name, vendor, driver version, source hash, build options and fb version. FB_CL_CACHE=0
 * turns the cache off; FB_CL_BUILD_OPTIONS adds build options (they are part of the key).
 *
 * The twins take host columns and return host results exactly as their CPU counterparts in
 * fb_kernels.h do (same parameters, same statuses, bitwise identical results); transfers to and
 * from the device happen inside the call. Errors of the OpenCL runtime come back as FB_ERR_OPENCL
 * (or FB_ERR_DEVICE_MEMORY, FB_ERR_CL_BUILD, FB_ERR_NO_DEVICE) with the OpenCL call and error code
 * in fb_last_error().
 *
 * Threading: calls on one context are serialized on its device queue; they may come from any thread.
 */
#ifndef FB_CL_H
#define FB_CL_H

#include "fb_kernels.h"
#include "fb_sort.h"

#ifdef __cplusplus
extern "C" {
#endif

/** \brief What fb knows about one OpenCL device. Fields are only ever added at the end. */
typedef struct fb_cl_device_info {
    int index;                  /**< index in fb_cl_device_count() order */
    char name[256];             /**< CL_DEVICE_NAME */
    char vendor[128];           /**< CL_DEVICE_VENDOR */
    char driver_version[128];   /**< CL_DRIVER_VERSION */
    char platform[128];         /**< CL_PLATFORM_NAME */
    char device_version[128];   /**< CL_DEVICE_VERSION */
    int is_gpu;                 /**< 1 for CL_DEVICE_TYPE_GPU */
    int is_cpu;                 /**< 1 for CL_DEVICE_TYPE_CPU */
    unsigned compute_units;     /**< CL_DEVICE_MAX_COMPUTE_UNITS */
    uint64_t global_mem_bytes;  /**< CL_DEVICE_GLOBAL_MEM_SIZE */
    uint64_t max_alloc_bytes;   /**< CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    uint64_t local_mem_bytes;   /**< CL_DEVICE_LOCAL_MEM_SIZE */
    size_t max_work_group_size; /**< CL_DEVICE_MAX_WORK_GROUP_SIZE */
    int numa_node;              /**< NUMA node (hwloc logical index) the device is attached to; -1 unknown */
} fb_cl_device_info;

/** \brief Number of OpenCL devices on all platforms.
 * \param[out] count 0 when the ICD loader finds no platform (that is not an error).
 * \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_OPENCL. */
FB_API fb_status fb_cl_device_count(fb_ctx *ctx, int *count);

/** \brief Describes device `index`. \param[out] info filled on success.
 * \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_NO_DEVICE (index out of range), FB_ERR_OPENCL. */
FB_API fb_status fb_cl_device_get_info(fb_ctx *ctx, int index, fb_cl_device_info *info);

/** \brief Opens the context's device now (building or loading its programs) instead of on first use.
 * \param[out] index the device opened; may be NULL.
 * \return FB_OK, FB_ERR_NO_DEVICE (none, or the context was made with FB_CL_DEVICE_NONE),
 *         FB_ERR_OPENCL, FB_ERR_CL_BUILD. */
FB_API fb_status fb_cl_open(fb_ctx *ctx, int *index);

/** \brief Measures host→device and device→host copy bandwidth of the context's device with pinned
 * host memory: `bytes` per copy, best of `repeats` (≥ 1).
 * \param[out] h2d_gbps, d2h_gbps 10^9 bytes per second. \return as fb_cl_open(), FB_ERR_DEVICE_MEMORY. */
FB_API fb_status fb_cl_measure_transfer(fb_ctx *ctx, size_t bytes, int repeats, double *h2d_gbps,
                                        double *d2h_gbps);

/** \name OpenCL twins of fb_kernels.h
 * Same parameters, statuses and results as the CPU functions of the same name without `cl_`.
 * @{ */
FB_API fb_status fb_cl_hash_column(fb_ctx *ctx, const fb_column *key, uint64_t *hashes, int64_t capacity);
FB_API fb_status fb_cl_hash_combine(fb_ctx *ctx, const fb_column *key, uint64_t *hashes, int64_t capacity);
FB_API fb_status fb_cl_hash_columns(fb_ctx *ctx, const fb_column *keys, size_t n_keys, uint64_t *hashes,
                                    int64_t capacity);
FB_API fb_status fb_cl_select_cmp(fb_ctx *ctx, const fb_column *col, fb_cmp op, const void *value,
                                  const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t capacity,
                                  int64_t *n_out);
FB_API fb_status fb_cl_select_range(fb_ctx *ctx, const fb_column *col, const void *lo, const void *hi,
                                    const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out,
                                    int64_t capacity, int64_t *n_out);
FB_API fb_status fb_cl_select_in(fb_ctx *ctx, const fb_column *col, const void *values, int64_t n_values,
                                 const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t capacity,
                                 int64_t *n_out);
FB_API fb_status fb_cl_compact(fb_ctx *ctx, const fb_column *col, const uint32_t *sel, int64_t n_sel,
                               fb_column_out *out);
FB_API fb_status fb_cl_gather(fb_ctx *ctx, const fb_column *col, const int64_t *row_ids, int64_t n_ids,
                              fb_column_out *out);
/** @} */

/** \name OpenCL twins of fb_sort.h
 * Same parameters, statuses and results (the same stable SQL order, bit for bit) as the CPU
 * functions of the same name without `cl_`. The device runs a stable LSD radix sort with 8-bit
 * digits over one 32-bit word of the normalized key at a time (from the last key's least
 * significant word to the first key's null bit), carrying uint32 row ids; digits on which every row
 * agrees are skipped. Device memory: about 16 bytes per row plus one key column at a time; more than
 * the device memory budget (FB_CL_MEM_BUDGET, else half the device's memory) gives
 * FB_ERR_DEVICE_MEMORY. fb_cl_sort_top_n sorts every row and returns the first n.
 * @{ */
FB_API fb_status fb_cl_sort_permutation(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, uint32_t *row_ids,
                                        int64_t capacity);
FB_API fb_status fb_cl_sort_top_n(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t n,
                                  uint32_t *row_ids, int64_t capacity, int64_t *n_out);
FB_API fb_status fb_cl_sort_table(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, const fb_column *payload,
                                  size_t n_payload, fb_column_out *out);
/** @} */

#ifdef __cplusplus
}
#endif
#endif /* FB_CL_H */
