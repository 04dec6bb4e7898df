/* fb_sort.h - kernel-level sorting on the CPU: stable permutations, sorted tables and top-N over
 * one morsel of (possibly multi-column) keys.
 *
 * Order. Keys compare left to right; each key is ascending or descending and puts its nulls first
 * or last (independently of the direction). Supported key types: int8..int64, uint8..uint64,
 * float32, float64, date32. Floats follow SQL order:
 *   -inf < ... < -0.0 = 0.0 < ... < +inf < NaN,
 * every NaN (any sign, any payload) equal to every other; descending reverses this (NaN first).
 * Sorting is stable: rows whose keys are all equal keep their input order.
 *
 * Algorithm. Every row gets a normalized key: per key column an optional null bit (only for
 * columns with a validity bitmap; 0 sorts first) followed by the value's ordered bits (signed
 * and float values turned into unsigned ones whose unsigned order is the SQL order, inverted for
 * descending keys, 0 for nulls), concatenated most significant first into 64-bit words, so that
 * comparing the words (or the big-endian bytes) gives the sort order. The row id fills the low
 * bits of the last word when they are free, else one more word. The records are partitioned by
 * their top differing bits into cache-sized buckets, and each bucket is sorted by an MSD radix sort
 * with 8-bit digits that skips every digit on which all its rows agree (found by a histogram) and
 * stops where the rows become distinct, with insertion sort for small ranges; top-N keeps a heap of
 * N records. A single narrow key (see "Parallel sorts") is sorted as 8-byte records instead.
 *
 * Row ids are uint32_t, so a call sorts at most FB_MORSEL_MAX_ROWS rows.
 *
 * Memory. Scratch memory comes from the context's allocator and counts against its memory limit:
 * for the 8-byte records 8 bytes per row (none for a 64-bit key alone, which is partitioned in its
 * output column; 8 more when skewed keys leave a bucket above 2 MiB), else about 2 x rows x record size (records of 8 bytes and up: the key bits and
 * the row id, rounded up to 64-bit words), plus 4 bytes per row for the permutation of fb_sort_table();
 * when it runs out the call returns FB_ERR_OUT_OF_MEMORY having freed everything it took.
 *
 * Threading: every function but the parallel ones runs on the calling thread; all may be called from several threads at
 * once on one context. Every CPU variant (scalar, base, AVX2, AVX-512) gives identical results.
 */
#ifndef FB_SORT_H
#define FB_SORT_H

#include "fb_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most key columns one sort accepts. */
#define FB_SORT_MAX_KEYS 32

/** \brief One sort key: a column and its order. */
typedef struct fb_sort_key {
    fb_column column; /**< the key values (a view; all keys of one call have equal lengths) */
    int descending;   /**< 0: ascending, else descending */
    int nulls_first;  /**< 0: nulls after every value, else before (for either direction) */
} fb_sort_key;

/** \brief Stable sort permutation: row_ids[j] is the row that comes j-th in sorted order.
 * \param keys n_keys key specs (1..FB_SORT_MAX_KEYS) of equal length n.
 * \param[out] row_ids `capacity` entries; n are written (a permutation of 0..n-1).
 * \return FB_OK; FB_ERR_INVALID_ARG (ctx, keys or row_ids NULL, n_keys 0 or above
 *         FB_SORT_MAX_KEYS, a bad view, more than FB_MORSEL_MAX_ROWS rows);
 *         FB_ERR_UNSUPPORTED_TYPE (a key of an unknown type); FB_ERR_LENGTH_MISMATCH (keys of
 *         different lengths); FB_ERR_CAPACITY (capacity < n); FB_ERR_OUT_OF_MEMORY.
 * \note row_ids may be NULL when n is 0. */
FB_API fb_status fb_sort_permutation(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, uint32_t *row_ids,
                                     int64_t capacity);

/** \brief Top-N: the first min(n, rows) entries of fb_sort_permutation()'s result, found without
 * sorting every row (a heap of n records when n is small against the rows).
 * \param n rows wanted, ≥ 0.
 * \param[out] row_ids `capacity` entries, capacity ≥ min(n, rows).
 * \param[out] n_out receives min(n, rows).
 * \return as fb_sort_permutation(); FB_ERR_INVALID_ARG also for n < 0 or n_out NULL. */
FB_API fb_status fb_sort_top_n(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t n, uint32_t *row_ids,
                               int64_t capacity, int64_t *n_out);

/** \brief Sorts a table: the key columns and payload columns in sorted order (stable), written to
 * caller-owned buffers.
 * \param payload n_payload columns carried along (may be NULL when n_payload is 0), each as long
 *        as the keys.
 * \param out n_keys + n_payload buffers: out[k] receives key column k sorted, out[n_keys + j]
 *        payload column j. Each must have its column's type and capacity ≥ rows, and a validity
 *        buffer when its column has one. On failure every out->length is 0.
 * \return as fb_sort_permutation(); FB_ERR_INVALID_ARG also for out NULL, payload NULL with
 *         n_payload > 0 or an out without data; FB_ERR_UNSUPPORTED_TYPE for an out whose type
 *         differs from its column's; FB_ERR_CAPACITY for an out too small. */
FB_API fb_status fb_sort_table(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, const fb_column *payload,
                               size_t n_payload, fb_column_out *out);

/** \name Parallel sorts
 * The same three operations over a whole table on the context's worker threads (fb_ctx_threads()),
 * run through the runtime (fb_runtime.h: one query per phase). Results are identical to the
 * single-threaded functions'. Each call blocks until done; the calling thread only waits.
 *
 * How. Every row becomes a record (below); the records are encoded in parallel per morsel, then
 * partitioned stably by the top bits in which the keys differ into buckets of about 32Ki records
 * (per-morsel histograms, prefix sums, a scatter through write-combining buffers with streaming
 * stores), and each bucket is sorted by one worker inside its cache: an MSD radix sort that skips the
 * bits its keys share and ends in sorting networks of up to 64 records in SIMD registers (bitonic,
 * through simde; the scalar and SSE2 variants: branch-free rank sorts; equal keys keep their order) (for
 * several keys, nulls and floats: the normalized records and their MSD sort described above). One key
 * without nulls of at most 32 bits (not float for fb_sort_table_parallel) with at most one payload of at
 * most 32 bits without nulls, or one 64-bit integer key alone, is sorted as 8-byte records that carry
 * the values themselves (no permutation, no gather); fb_sort_permutation() and fb_sort_table() take the
 * same paths on the calling thread. Top-N takes each 256Ki-row morsel's top n by a heap in parallel and
 * then the top n of those (for more than 512Ki rows).
 *
 * Memory: as the single-threaded functions, plus per worker up to 2 MiB of bucket scratch and the
 * write-combining buffers (32 KiB per 512 buckets).
 *
 * NUMA: each worker's scratch (where it sorts the buckets it takes) is allocated on the worker's node
 * (fb_numa_alloc()), and on a topology with several nodes the buckets are handed out in contiguous
 * groups, group k preferably to the workers of node k (others may steal them). The partitioned records
 * themselves and the outputs stay where the allocator (or the caller) put them.
 * @{ */

/** \brief fb_sort_permutation() on the context's worker threads. \return as fb_sort_permutation(). */
FB_API fb_status fb_sort_permutation_parallel(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys,
                                              uint32_t *row_ids, int64_t capacity);

/** \brief fb_sort_top_n() on the context's worker threads. \return as fb_sort_top_n(). */
FB_API fb_status fb_sort_top_n_parallel(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t n,
                                        uint32_t *row_ids, int64_t capacity, int64_t *n_out);

/** \brief fb_sort_table() on the context's worker threads. \return as fb_sort_table(). */
FB_API fb_status fb_sort_table_parallel(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys,
                                        const fb_column *payload, size_t n_payload, fb_column_out *out);
/** @} */

#ifdef __cplusplus
}
#endif
#endif /* FB_SORT_H */
