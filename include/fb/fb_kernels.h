/* fb_kernels.h - kernel-level API on the CPU: hashing, selection, compaction, gather.
 *
 * Each function works on one morsel of columns on the calling thread: no threads, no allocation.
 * The context supplies the CPU kernel variant (fb_ctx_isa()) and receives the error message.
 * Every variant (scalar, base, AVX2, AVX-512) returns bitwise identical results; fb_cl.h has the
 * OpenCL twins with the same parameters and results.
 *
 * Selection vectors are uint32_t row indices into a morsel, ascending; a morsel therefore has at most
 * 2^32 - 1 rows (FB_MORSEL_MAX_ROWS).
 *
 * Threading: all functions may be called from several threads at once on one context.
 */
#ifndef FB_KERNELS_H
#define FB_KERNELS_H

#include "fb_column.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest number of rows a selection-vector kernel accepts in one call. */
#define FB_MORSEL_MAX_ROWS ((int64_t)UINT32_MAX)

/** \name Hashing
 * The hash of a key value v is defined, for every variant and device, as
 *   w = v widened to 64 bits (signed types sign-extended, unsigned zero-extended, date32 as int32)
 *   hash(v) = fmix64(w + FB_HASH_SEED), fmix64 being MurmurHash3's 64-bit finalizer,
 * and hash(null) = FB_HASH_NULL. Several key columns combine left to right as
 *   h = hash(k0);  h = h * FB_HASH_MUL ^ hash(k_i)  for i = 1..n-1.
 * Equal keys of different integer types (int32 -5 and int64 -5) hash alike.
 * Supported key types: int8..int64, uint8..uint64, date32 (floats give FB_ERR_UNSUPPORTED_TYPE).
 * @{ */
#define FB_HASH_SEED 0x9E3779B97F4A7C15ull
#define FB_HASH_NULL 0x2545F4914F6CDD1Dull
#define FB_HASH_MUL 0xC2B2AE3D27D4EB4Full

/** \brief Hashes one key column: hashes[i] = hash(key[i]).
 * \param hashes output, `capacity` entries; key->length are written.
 * \return FB_OK, FB_ERR_INVALID_ARG (NULL pointers, bad view), FB_ERR_UNSUPPORTED_TYPE, FB_ERR_CAPACITY. */
FB_API fb_status fb_hash_column(fb_ctx *ctx, const fb_column *key, uint64_t *hashes, int64_t capacity);

/** \brief Mixes one more key column into existing hashes: hashes[i] = hashes[i] * FB_HASH_MUL ^ hash(key[i]).
 * \return as fb_hash_column(). */
FB_API fb_status fb_hash_combine(fb_ctx *ctx, const fb_column *key, uint64_t *hashes, int64_t capacity);

/** \brief Hashes a composite key of n_keys ≥ 1 columns of equal length into one hash per row.
 * \return as fb_hash_column(), and FB_ERR_LENGTH_MISMATCH when the columns' lengths differ. */
FB_API fb_status fb_hash_columns(fb_ctx *ctx, const fb_column *keys, size_t n_keys, uint64_t *hashes,
                                 int64_t capacity);
/** @} */

/** \name Selection
 * A selection kernel reads the candidate rows (all rows of the column, or those listed in sel_in)
 * and writes the indices of those that satisfy the predicate to sel_out, in the order of the
 * candidates. Null rows never satisfy a predicate. Constants point to one value of the column's
 * type. Floats follow SQL order: -0.0 = 0.0, NaN = NaN, and NaN is greater than every other value
 * (so `x < 1.0` does not select NaN and `x > 1.0` does).
 *
 * Common parameters:
 * - sel_in: candidate row indices (each < col->length), or NULL for all rows; n_in their number
 *   (ignored when sel_in is NULL).
 * - sel_out: output, `capacity` entries; capacity must be at least the number of candidates.
 * - n_out: receives the number of selected rows.
 * Returns FB_OK, FB_ERR_INVALID_ARG (NULL pointers, bad view, unknown op, more than
 * FB_MORSEL_MAX_ROWS rows), FB_ERR_UNSUPPORTED_TYPE, FB_ERR_CAPACITY, FB_ERR_OUT_OF_RANGE (an index
 * in sel_in outside the column).
 * @{ */

/** Comparison operators. Values are pinned. */
typedef enum fb_cmp {
    FB_CMP_EQ = 0, /**< x = c */
    FB_CMP_NE = 1, /**< x <> c */
    FB_CMP_LT = 2, /**< x < c */
    FB_CMP_LE = 3, /**< x <= c */
    FB_CMP_GT = 4, /**< x > c */
    FB_CMP_GE = 5  /**< x >= c */
} fb_cmp;

/** \brief Selects rows where `x op *value`. Supports every fb_type. */
FB_API fb_status fb_select_cmp(fb_ctx *ctx, const fb_column *col, fb_cmp op, const void *value,
                               const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t capacity,
                               int64_t *n_out);

/** \brief Selects rows where `*lo <= x <= *hi` (SQL BETWEEN; empty when lo > hi). */
FB_API fb_status fb_select_range(fb_ctx *ctx, const fb_column *col, const void *lo, const void *hi,
                                 const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t capacity,
                                 int64_t *n_out);

/** Most constants fb_select_in() accepts; larger sets belong in a semi join. */
#define FB_SELECT_IN_MAX 256

/** \brief Selects rows whose value is one of n_values (1..FB_SELECT_IN_MAX) constants at `values`
 * (an array of the column's type; duplicates allowed). */
FB_API fb_status fb_select_in(fb_ctx *ctx, const fb_column *col, const void *values, int64_t n_values,
                              const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t capacity,
                              int64_t *n_out);
/** @} */

/** \name Compaction and gather
 * @{ */

/** \brief Compacts a column by a selection vector: out row j = col row sel[j] (value and validity).
 * \param sel n_sel indices, each < col->length (any order, repeats allowed).
 * \param out out->type must equal col->type; out->capacity ≥ n_sel; out->validity is required when
 *        col has a validity bitmap.
 * \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_UNSUPPORTED_TYPE (type mismatch), FB_ERR_CAPACITY,
 *         FB_ERR_OUT_OF_RANGE. */
FB_API fb_status fb_compact(fb_ctx *ctx, const fb_column *col, const uint32_t *sel, int64_t n_sel,
                            fb_column_out *out);

/** \brief Gathers rows by 64-bit row ids (late materialization of join results): out row j =
 * col row row_ids[j], and a null with value bits 0 where row_ids[j] is -1 (left outer joins).
 * \param row_ids n_ids ids, each -1 or in [0, col->length).
 * \param out as for fb_compact(); out->validity is required when col has a validity bitmap or
 *        any id is -1.
 * \return as fb_compact(). */
FB_API fb_status fb_gather(fb_ctx *ctx, const fb_column *col, const int64_t *row_ids, int64_t n_ids,
                           fb_column_out *out);
/** @} */

#ifdef __cplusplus
}
#endif
#endif /* FB_KERNELS_H */
