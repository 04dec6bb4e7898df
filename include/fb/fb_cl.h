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
 * Device memory. The buffers of one call count against a budget: FB_CL_MEM_BUDGET (bytes, with an
 * optional k/m/g suffix) when set, else half the device's global memory. The operator twins (group
 * by, join probes) keep their table on the device and stream the rest of the input through in
 * chunks sized to what the budget leaves: double-buffered, from pinned (CL_MEM_ALLOC_HOST_PTR)
 * staging buffers on a second command queue, so the copy of one chunk overlaps the kernels of the
 * previous one. A join's build side or a group-by's table that does not fit is processed in hash
 * partitions; only what no partitioning splits (equal keys alone over the budget) gives
 * FB_ERR_DEVICE_MEMORY, and the call frees everything it took.
 *
 * Threading: calls on one context are serialized on its device queue; they may come from any thread.
 */
#ifndef FB_CL_H
#define FB_CL_H

#include "fb_kernels.h"
#include "fb_sort.h"
#include "fb_agg.h"
#include "fb_join.h"
#include "fb_expr.h"

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
 * agrees are skipped. Device memory: about 16 bytes per row plus one key column at a time. A sort
 * larger than the device memory budget (FB_CL_MEM_BUDGET, else half the device's memory) runs as
 * device-sorted chunks merged on the host (and fb_cl_sort_table then moves the columns on the host);
 * FB_ERR_DEVICE_MEMORY only when the budget cannot hold a chunk of 1024 rows.
 * fb_cl_sort_top_n sorts every row and returns the first n.
 * @{ */
FB_API fb_status fb_cl_sort_permutation(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, uint32_t *row_ids,
                                        int64_t capacity);
FB_API fb_status fb_cl_sort_top_n(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t n,
                                  uint32_t *row_ids, int64_t capacity, int64_t *n_out);
FB_API fb_status fb_cl_sort_table(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, const fb_column *payload,
                                  size_t n_payload, fb_column_out *out);
/** @} */

/** Most rows of a device hash table (group-by input, join build side): its 2 x rows slots are
 *  numbered in 32 bits. */
#define FB_CL_TABLE_MAX_ROWS ((int64_t)1 << 30)

/** \brief OpenCL twin of a CPU aggregation table fed one whole input: the result of
 * fb_agg_create(spec), fb_agg_update(keys, values, n_values, n_rows, NULL, 0) and fb_agg_result()
 * in one call, for spec->n_keys of 1..FB_AGG_MAX_KEYS (integer or date32 keys) or 0 (ungrouped:
 * one result row, keys and out_keys may be NULL) and any aggregates of fb_agg.h. Nulls in keys
 * group together, as on the CPU (with several keys: rows with the same null pattern and equal
 * non-null values).
 * Groups come out in the order of their first row, as on the CPU; counts, integer sums, min, max
 * and avg are bitwise equal to the CPU's, float sums differ by reassociation only (the device adds
 * rows in any order). Integer sums overflowing int64 give FB_ERR_OVERFLOW, as on the CPU.
 *
 * Device memory: the device keeps a hash table of 2 x n_rows slots or more (12 bytes each), and per
 * group about 16 bytes plus 24 per aggregate, and streams the columns through in chunks that fit
 * the device memory budget (FB_CL_MEM_BUDGET, else half the device's memory). Several keys first
 * become one int64 key per row on the device (each row's tuple is numbered by its first row: 8 x
 * n_keys + 30 more bytes per row, all rows at once), which then comes back to the host and goes
 * through the one-key path; each group's keys are copied from its first row.
 * An input whose table (or tuples, or groups) does not fit the budget is split on the host into 2^b
 * hash partitions by the top b bits of fb_hash_columns() (fb_radix_partition()), b as large as the
 * budget needs for the estimated groups (the distinct hashes, by linear counting); each partition is
 * grouped on the device by itself, a partition that still does not fit is split again by the next
 * hash bits (while that shrinks it), and the groups are put back in the order of their first rows,
 * so the answer does not depend on the budget (float sums up to reassociation, as always). Only the
 * rows of one key (or of keys with one 64-bit hash) whose table alone passes the budget give
 * FB_ERR_DEVICE_MEMORY. Host memory for the partitions comes from ctx's allocator: about 12.25 bytes
 * per row, 128 KiB, a copy of the largest partition's columns, and the groups' results until every
 * partition is done (about the size of the outputs).
 * Needs 64-bit atomics (cl_khr_int64_base_atomics and _extended_atomics) and fp64.
 * \param out_keys spec->n_keys outputs of the key types; a validity is required when that key has a
 *        null group.
 * \param out_aggs spec->n_aggs outputs typed as fb_agg_result_type() says (validity as in
 *        fb_agg_result()); every capacity must be at least the number of groups (n_rows suffices).
 * \param[out] n_groups the number of groups written.
 * \return FB_OK; FB_ERR_INVALID_ARG (NULL pointers, n_keys above FB_AGG_MAX_KEYS, bad counts or views, more
 *         than FB_CL_TABLE_MAX_ROWS rows);
 *         FB_ERR_UNSUPPORTED_TYPE; FB_ERR_LENGTH_MISMATCH; FB_ERR_CAPACITY; FB_ERR_OVERFLOW;
 *         FB_ERR_OUT_OF_MEMORY; FB_ERR_DEVICE_MEMORY (one key's rows alone do not fit the budget);
 *         FB_ERR_OPENCL (also: the device lacks 64-bit atomics); FB_ERR_NO_DEVICE. On failure
 *         every output has length 0. */
FB_API fb_status fb_cl_group_by(fb_ctx *ctx, const fb_agg_spec *spec, const fb_column *keys,
                                const fb_column *values, size_t n_values, int64_t n_rows, fb_column_out *out_keys,
                                fb_column_out *out_aggs, int64_t *n_groups);

/** \name OpenCL twins of the fb_join.h probes, one call per join
 * Each call builds a device hash table from the build key columns (as one fb_hash_table_build() of
 * the whole columns with first row build_first_row) and probes it with the probe key columns (the
 * same types, column by column: int32, int64, date32, uint32 or uint64). Results equal the CPU
 * table's entry for entry and in the same order (probe rows ascending, then build rows in insertion
 * order). The `_keys` forms take 1..FB_JOIN_MAX_KEYS key columns (a composite key: a row with a null
 * in any key column matches nothing, and a mark join treats it as wholly null, as the CPU does); the
 * others are their one-column shorthands.
 *
 * Device memory: the build side stays on the device (about 28 bytes per build row, plus 8 x n_keys
 * + 30 per row for a composite key's tuples) and the probe side streams through in chunks under the
 * device memory budget (FB_CL_MEM_BUDGET, else half the device's memory). A build side that does not
 * fit is split, with the probe side, into 2^b partitions by the top b bits of fb_hash_columns() on
 * the host (fb_radix_partition()), b as large as the budget needs (doubling the partitions while
 * one still does not fit and the largest shrinks); each partition gets its own device table and the
 * results are put back in the order above, so the answer does not depend on the budget. Only a
 * build side whose equal keys alone pass the budget gives FB_ERR_DEVICE_MEMORY. Host memory for
 * the partitions comes from ctx's allocator (about 24 bytes per row of both sides, plus the
 * result). Needs cl_khr_int64_base_atomics.
 * Statuses as the CPU functions, plus FB_ERR_DEVICE_MEMORY, FB_ERR_OPENCL, FB_ERR_NO_DEVICE, and
 * FB_ERR_INVALID_ARG for a build side of more than FB_CL_TABLE_MAX_ROWS rows; FB_ERR_LENGTH_MISMATCH
 * when the key columns of one side differ in length.
 * @{ */
/** \brief Inner or left outer join: every pair at once into out (out->more is always 0).
 * \param[out] n_pairs the result's size, also when it exceeds out->capacity (then FB_ERR_CAPACITY,
 *             out->length 0: call again with room for n_pairs). */
FB_API fb_status fb_cl_join_probe_keys(fb_ctx *ctx, const fb_column *build_keys, const fb_column *probe_keys,
                                       size_t n_keys, int64_t build_first_row, int64_t probe_first_row,
                                       fb_join_type type, fb_join_pairs *out, int64_t *n_pairs);
/** \brief fb_cl_join_probe_keys() with one key column. */
FB_API fb_status fb_cl_join_probe(fb_ctx *ctx, const fb_column *build_key, int64_t build_first_row,
                                  const fb_column *probe_key, int64_t probe_first_row, fb_join_type type,
                                  fb_join_pairs *out, int64_t *n_pairs);
/** \brief Semi or anti join: as fb_hash_table_probe_select(). */
FB_API fb_status fb_cl_join_probe_select_keys(fb_ctx *ctx, const fb_column *build_keys,
                                              const fb_column *probe_keys, size_t n_keys, fb_join_type type,
                                              uint32_t *sel_out, int64_t capacity, int64_t *n_out);
/** \brief fb_cl_join_probe_select_keys() with one key column. */
FB_API fb_status fb_cl_join_probe_select(fb_ctx *ctx, const fb_column *build_key, const fb_column *probe_key,
                                         fb_join_type type, uint32_t *sel_out, int64_t capacity, int64_t *n_out);
/** \brief Mark join: as fb_hash_table_probe_mark() (EXISTS without out->validity, three-valued IN with it). */
FB_API fb_status fb_cl_join_probe_mark_keys(fb_ctx *ctx, const fb_column *build_keys, const fb_column *probe_keys,
                                            size_t n_keys, fb_column_out *out);
/** \brief fb_cl_join_probe_mark_keys() with one key column. */
FB_API fb_status fb_cl_join_probe_mark(fb_ctx *ctx, const fb_column *build_key, const fb_column *probe_key,
                                       fb_column_out *out);
/** @} */

/** \name OpenCL twins of fb_expr.h
 * Same parameters, statuses and results as the CPU functions of the same name without `cl_`
 * (fb_expr.h's conventions: three-valued ::fb_bool outputs, row-aligned outputs under an input
 * selection, SQL float order, FB_ERR_OVERFLOW naming the first failing row). Results are bitwise
 * equal to the CPU's: booleans, selection vectors and integer results in every bit (arithmetic and
 * cast outputs also in the value bits of NULL rows, as the scalar CPU variant writes them: wrapped
 * integers, 0 for an out-of-range cast). Floats: + - * are one IEEE 754 operation each in
 * round-to-nearest with contraction (FMA) off, and casts round as on the CPU (ties to even), so the
 * bits are the CPU's on a device with IEEE single and double precision including subnormals
 * (CL_FP_DENORM; NVIDIA GPUs and PoCL have it), except NaN payloads (any NaN stands for NaN, as
 * fb_expr.h says for the CPU variants).
 *
 * Each call moves its inputs to the device and its outputs back. The twins over columns or booleans
 * (comparisons, BETWEEN, IN, AND/OR/NOT, arithmetic, casts, fb_cl_expr_select_cols and
 * fb_cl_expr_bool_to_sel) whose inputs and outputs do not fit the device memory budget
 * (FB_CL_MEM_BUDGET, else half the device's memory) run in chunks of rows, one after the other, with
 * the same results and statuses (an overflow names its row of the whole morsel; a sel_in index past
 * the column is found before any chunk); FB_ERR_DEVICE_MEMORY only when the budget cannot hold a
 * chunk of 1024 rows. fb_cl_expr_sel_and, _sel_or and _sel_not need their selection vectors within
 * the budget, else FB_ERR_DEVICE_MEMORY.
 * Selection vectors come out by a flag, an exclusive scan and a scatter, so they are in candidate
 * order.
 * fb_cl_expr_arith, fb_cl_expr_arith_const and fb_cl_expr_cast need cl_khr_fp64 (FB_ERR_OPENCL
 * without it). Statuses as the CPU functions, plus FB_ERR_DEVICE_MEMORY, FB_ERR_OPENCL and
 * FB_ERR_NO_DEVICE.
 * @{ */
/** \brief Twin of fb_expr_select_cols(). */
FB_API fb_status fb_cl_expr_select_cols(fb_ctx *ctx, const fb_column *a, fb_cmp op, const fb_column *b,
                                        const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t capacity,
                                        int64_t *n_out);
/** \brief Twin of fb_expr_cmp(). */
FB_API fb_status fb_cl_expr_cmp(fb_ctx *ctx, const fb_column *col, fb_cmp op, const void *value,
                                const uint32_t *sel_in, int64_t n_in, fb_bool *out);
/** \brief Twin of fb_expr_cmp_cols(). */
FB_API fb_status fb_cl_expr_cmp_cols(fb_ctx *ctx, const fb_column *a, fb_cmp op, const fb_column *b,
                                     const uint32_t *sel_in, int64_t n_in, fb_bool *out);
/** \brief Twin of fb_expr_between(). */
FB_API fb_status fb_cl_expr_between(fb_ctx *ctx, const fb_column *col, const void *lo, const void *hi,
                                    const uint32_t *sel_in, int64_t n_in, fb_bool *out);
/** \brief Twin of fb_expr_in(). */
FB_API fb_status fb_cl_expr_in(fb_ctx *ctx, const fb_column *col, const void *values, int64_t n_values,
                               const uint32_t *sel_in, int64_t n_in, fb_bool *out);
/** \brief Twin of fb_expr_and(). */
FB_API fb_status fb_cl_expr_and(fb_ctx *ctx, const fb_bool *a, const fb_bool *b, fb_bool *out);
/** \brief Twin of fb_expr_or(). */
FB_API fb_status fb_cl_expr_or(fb_ctx *ctx, const fb_bool *a, const fb_bool *b, fb_bool *out);
/** \brief Twin of fb_expr_not(). */
FB_API fb_status fb_cl_expr_not(fb_ctx *ctx, const fb_bool *a, fb_bool *out);
/** \brief Twin of fb_expr_bool_to_sel(). */
FB_API fb_status fb_cl_expr_bool_to_sel(fb_ctx *ctx, const fb_bool *a, const uint32_t *sel_in, int64_t n_in,
                                        uint32_t *sel_out, int64_t capacity, int64_t *n_out);
/** \brief Twin of fb_expr_sel_and(). */
FB_API fb_status fb_cl_expr_sel_and(fb_ctx *ctx, const uint32_t *a, int64_t n_a, const uint32_t *b, int64_t n_b,
                                    uint32_t *sel_out, int64_t capacity, int64_t *n_out);
/** \brief Twin of fb_expr_sel_or(). */
FB_API fb_status fb_cl_expr_sel_or(fb_ctx *ctx, const uint32_t *a, int64_t n_a, const uint32_t *b, int64_t n_b,
                                   uint32_t *sel_out, int64_t capacity, int64_t *n_out);
/** \brief Twin of fb_expr_sel_not(). */
FB_API fb_status fb_cl_expr_sel_not(fb_ctx *ctx, const uint32_t *a, int64_t n_a, int64_t length,
                                    const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t capacity,
                                    int64_t *n_out);
/** \brief Twin of fb_expr_arith(). */
FB_API fb_status fb_cl_expr_arith(fb_ctx *ctx, fb_arith op, const fb_column *a, const fb_column *b,
                                  const uint32_t *sel_in, int64_t n_in, fb_column_out *out);
/** \brief Twin of fb_expr_arith_const(). */
FB_API fb_status fb_cl_expr_arith_const(fb_ctx *ctx, fb_arith op, const fb_column *col, const void *value,
                                        int value_left, const uint32_t *sel_in, int64_t n_in, fb_column_out *out);
/** \brief Twin of fb_expr_cast(). */
FB_API fb_status fb_cl_expr_cast(fb_ctx *ctx, const fb_column *in, const uint32_t *sel_in, int64_t n_in,
                                 fb_column_out *out);
/** @} */

#ifdef __cplusplus
}
#endif
#endif /* FB_CL_H */
