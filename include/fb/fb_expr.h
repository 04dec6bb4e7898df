/* fb_expr.h - expression kernels on the CPU: comparisons, BETWEEN, IN, AND/OR/NOT, + - *, casts.
 *
 * These are the pieces a vectorized filter or projection is made of (the Star Schema Benchmark's
 * `lo_discount BETWEEN 1 AND 3 AND lo_quantity < 25`, `p_category IN (...)` over dictionary codes,
 * `revenue = lo_extendedprice * lo_discount`). Like fb_kernels.h, each function works on one morsel
 * on the calling thread, never allocates, and runs the context's CPU kernel variant (fb_ctx_isa());
 * every variant returns identical results (floats: identical up to NaN payloads, which SQL does not
 * distinguish).
 *
 * Column/constant comparisons, BETWEEN and IN that produce a selection vector are fb_select_cmp(),
 * fb_select_range() and fb_select_in() of fb_kernels.h; this header adds their column/column form,
 * their boolean (three-valued) form, the logic over both forms, arithmetic and casts.
 *
 * \defgroup fb_expr_conventions Conventions
 * - **Selection vectors** are ascending uint32_t row indices into a morsel (fb_kernels.h). An input
 *   selection `sel_in` (NULL = every row; `n_in` entries otherwise, each < the column's length)
 *   restricts which rows a function reads.
 * - **Booleans** (::fb_bool) are SQL three-valued columns in Arrow's boolean layout: a value bitmap
 *   and a validity bitmap, LSB first, 1 = TRUE / 1 = not NULL. A row is TRUE when both bits are 1,
 *   FALSE when it is valid with value bit 0, NULL when its validity bit is 0. Outputs are canonical:
 *   the value bit of a NULL row is 0.
 * - **Nulls.** A comparison, BETWEEN or IN of a null row is NULL (so a selection never contains it);
 *   arithmetic and casts of a null row are null (output validity = AND of the inputs' validities), and
 *   such rows never report an overflow. The value bits of a null output row are unspecified.
 * - **Input selection and row-aligned outputs.** Boolean, arithmetic and cast outputs are row-aligned
 *   with their input (output row i belongs to input row i, length = the input's length). With
 *   `sel_in`, only the listed rows count: every other output row is NULL and can never fail (an
 *   overflow or an out-of-range cast there is no error). This lets a later fb_agg_update() take the
 *   full-length column together with the selection. Cost: these functions run their SIMD loop over
 *   the whole morsel whatever the selection (reading every row is cheaper than gathering the
 *   selected ones above a few percent selectivity); the selection-vector outputs
 *   (fb_expr_select_cols(), fb_expr_bool_to_sel()) visit only the listed rows.
 * - **Float order** is SQL's, as in fb_kernels.h: -0.0 = 0.0, NaN = NaN, and NaN is larger than every
 *   other value. The order is total, so `NOT (x < c)` equals `x >= c` on every non-null row.
 * - Errors follow \ref fb_errors; outputs of a failed call have length 0 (fb_column_out) and are not
 *   marked valid.
 *
 * Threading: every function may be called from several threads at once on one context.
 */
#ifndef FB_EXPR_H
#define FB_EXPR_H

#include "fb_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/** \brief A three-valued boolean column (Arrow boolean layout, no offset).
 *
 * As an input, `validity` may be NULL (no NULL rows), and a value bit under a 0 validity bit is
 * ignored. As an output, the caller sets `length` (the rows the result must have, which every
 * function checks) and both buffers, of at least (length + 7) / 8 bytes each; the function writes
 * every byte of them (padding bits of the last byte are 0). A call that fails on its arguments
 * writes nothing; one that fails later (FB_ERR_OUT_OF_RANGE for a sel_in index) leaves every row
 * NULL. */
typedef struct fb_bool {
    int64_t length;    /**< rows */
    uint8_t *bits;     /**< value bitmap: 1 = TRUE */
    uint8_t *validity; /**< validity bitmap: 1 = not NULL; NULL on input = no NULL rows */
} fb_bool;

/** \name Comparisons, BETWEEN and IN
 * Supported types: every fb_type (for the column/column forms both columns must have the same type;
 * compare across types after fb_expr_cast()).
 * @{ */

/** \brief Selects the rows where `a op b` (column/column; both non-null).
 * \param a, b columns of one type and one length.
 * \param sel_in, n_in, sel_out, capacity, n_out as for fb_select_cmp().
 * \return FB_OK, FB_ERR_INVALID_ARG (NULL pointers, bad views, unknown op, more than
 *         FB_MORSEL_MAX_ROWS rows), FB_ERR_UNSUPPORTED_TYPE (types differ), FB_ERR_LENGTH_MISMATCH,
 *         FB_ERR_CAPACITY, FB_ERR_OUT_OF_RANGE (a sel_in index outside the columns). */
FB_API fb_status fb_expr_select_cols(fb_ctx *ctx, const fb_column *a, fb_cmp op, const fb_column *b,
                                     const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t capacity,
                                     int64_t *n_out);

/** \brief Boolean of `col op *value` for every row (or the rows of sel_in; others NULL).
 * \param value one value of the column's type.
 * \param out out->length must equal col->length; both buffers are required.
 * \return FB_OK, FB_ERR_INVALID_ARG (NULL pointers, bad views, unknown op, out->length differs from
 *         the column's), FB_ERR_OUT_OF_RANGE (a sel_in index outside the column). */
FB_API fb_status fb_expr_cmp(fb_ctx *ctx, const fb_column *col, fb_cmp op, const void *value, const uint32_t *sel_in,
                             int64_t n_in, fb_bool *out);

/** \brief Boolean of `a op b` (column/column). \return as fb_expr_cmp(), plus FB_ERR_UNSUPPORTED_TYPE
 *         (types differ) and FB_ERR_LENGTH_MISMATCH. */
FB_API fb_status fb_expr_cmp_cols(fb_ctx *ctx, const fb_column *a, fb_cmp op, const fb_column *b,
                                  const uint32_t *sel_in, int64_t n_in, fb_bool *out);

/** \brief Boolean of `*lo <= col <= *hi` (SQL BETWEEN; FALSE for every non-null row when lo > hi).
 * \return as fb_expr_cmp(). */
FB_API fb_status fb_expr_between(fb_ctx *ctx, const fb_column *col, const void *lo, const void *hi,
                                 const uint32_t *sel_in, int64_t n_in, fb_bool *out);

/** \brief Boolean of `col IN (values...)` with 1..FB_SELECT_IN_MAX constants of the column's type
 * (a list without NULL: a non-null row is TRUE or FALSE). \return as fb_expr_cmp(). */
FB_API fb_status fb_expr_in(fb_ctx *ctx, const fb_column *col, const void *values, int64_t n_values,
                            const uint32_t *sel_in, int64_t n_in, fb_bool *out);
/** @} */

/** \name AND, OR, NOT
 * Over booleans the logic is SQL's (Kleene) three-valued logic:
 *   AND: FALSE if either side is FALSE, else NULL if either is NULL, else TRUE;
 *   OR:  TRUE if either side is TRUE, else NULL if either is NULL, else FALSE;
 *   NOT: TRUE <-> FALSE, and NOT NULL is NULL (a null row stays unselected under NOT).
 *
 * Over selection vectors (the TRUE rows of a predicate), AND is usually cheaper as a chain (pass one
 * kernel's sel_out as the next one's sel_in); fb_expr_sel_and() and fb_expr_sel_or() combine two
 * vectors computed separately (OR of ANDs). fb_expr_sel_not() is the complement within a domain and
 * equals SQL NOT only where the predicate had no NULL row in the domain: for a nullable predicate use
 * fb_expr_not() on its boolean, or negate a comparison directly (`NOT (x < c)` is `x >= c`, and
 * `NOT (x BETWEEN lo AND hi)` is `x < lo OR x > hi`; all leave null rows out).
 * @{ */

/** \brief out = a AND b. \param a, b, out booleans of one length (out may alias a or b).
 * \return FB_OK, FB_ERR_INVALID_ARG (NULL pointers or buffers), FB_ERR_LENGTH_MISMATCH. */
FB_API fb_status fb_expr_and(fb_ctx *ctx, const fb_bool *a, const fb_bool *b, fb_bool *out);

/** \brief out = a OR b. \return as fb_expr_and(). */
FB_API fb_status fb_expr_or(fb_ctx *ctx, const fb_bool *a, const fb_bool *b, fb_bool *out);

/** \brief out = NOT a (NULL stays NULL). \return as fb_expr_and(). */
FB_API fb_status fb_expr_not(fb_ctx *ctx, const fb_bool *a, fb_bool *out);

/** \brief The TRUE rows of a boolean as a selection vector (of the candidates sel_in, or of all rows).
 * \param sel_in, n_in, sel_out, capacity, n_out as for fb_select_cmp().
 * \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_CAPACITY, FB_ERR_OUT_OF_RANGE. */
FB_API fb_status fb_expr_bool_to_sel(fb_ctx *ctx, const fb_bool *a, const uint32_t *sel_in, int64_t n_in,
                                     uint32_t *sel_out, int64_t capacity, int64_t *n_out);

/** \brief Rows in both ascending selection vectors (intersection).
 * \param sel_out room for min(n_a, n_b) entries (capacity); may not alias the inputs.
 * \return FB_OK, FB_ERR_INVALID_ARG (NULL pointers, negative counts, an input not strictly
 *         ascending), FB_ERR_CAPACITY. */
FB_API fb_status fb_expr_sel_and(fb_ctx *ctx, const uint32_t *a, int64_t n_a, const uint32_t *b, int64_t n_b,
                                 uint32_t *sel_out, int64_t capacity, int64_t *n_out);

/** \brief Rows in either ascending selection vector (union, ascending, no repeats).
 * \param sel_out room for n_a + n_b entries. \return as fb_expr_sel_and(). */
FB_API fb_status fb_expr_sel_or(fb_ctx *ctx, const uint32_t *a, int64_t n_a, const uint32_t *b, int64_t n_b,
                                uint32_t *sel_out, int64_t capacity, int64_t *n_out);

/** \brief Rows of the domain (sel_in, or 0..length-1 when sel_in is NULL) that are not in `a`.
 * See the note above on NULL rows.
 * \param a ascending indices, each < length. \param sel_out room for every domain row.
 * \return FB_OK, FB_ERR_INVALID_ARG (also for an unsorted input), FB_ERR_CAPACITY,
 *         FB_ERR_OUT_OF_RANGE (an index ≥ length). */
FB_API fb_status fb_expr_sel_not(fb_ctx *ctx, const uint32_t *a, int64_t n_a, int64_t length, const uint32_t *sel_in,
                                 int64_t n_in, uint32_t *sel_out, int64_t capacity, int64_t *n_out);
/** @} */

/** \name Arithmetic
 * `+`, `-`, `*` on int32, int64, float32 and float64; both operands and the output have one type
 * (widen first with fb_expr_cast(), e.g. int32 to int64 before a revenue product that may exceed
 * 2^31). Integer results that do not fit the type are an error (FB_ERR_OVERFLOW, the message names
 * the first such row and its operands), never a wrapped value; rows that are null in either input
 * are null and never overflow. Floats follow IEEE 754 (inf and NaN results, no error).
 * \param out out->type must be the operands' type; capacity ≥ the input's rows; out->validity is
 *        required when an input has a validity bitmap or sel_in is given. out->length becomes the
 *        input's length.
 * \return FB_OK, FB_ERR_INVALID_ARG (NULL pointers, bad views, unknown op, missing validity),
 *         FB_ERR_UNSUPPORTED_TYPE (another type, or types that differ), FB_ERR_LENGTH_MISMATCH,
 *         FB_ERR_CAPACITY, FB_ERR_OUT_OF_RANGE (sel_in), FB_ERR_OVERFLOW.
 * @{ */

/** Arithmetic operators. Values are pinned. */
typedef enum fb_arith {
    FB_ARITH_ADD = 0, /**< a + b */
    FB_ARITH_SUB = 1, /**< a - b */
    FB_ARITH_MUL = 2  /**< a * b */
} fb_arith;

/** \brief out = a op b, row by row (column/column). */
FB_API fb_status fb_expr_arith(fb_ctx *ctx, fb_arith op, const fb_column *a, const fb_column *b,
                               const uint32_t *sel_in, int64_t n_in, fb_column_out *out);

/** \brief out = col op *value, or *value op col when `value_left` is nonzero (column/constant).
 * \param value one value of the column's type. */
FB_API fb_status fb_expr_arith_const(fb_ctx *ctx, fb_arith op, const fb_column *col, const void *value,
                                     int value_left, const uint32_t *sel_in, int64_t n_in, fb_column_out *out);
/** @} */

/** \name Casts
 * Between every pair of int8..int64, uint8..uint64, float32, float64 and date32 (a date32 casts as
 * its day number, an int32). Integer to integer is exact or FB_ERR_OVERFLOW (a value outside the
 * target's range). Float to integer rounds to the nearest integer, ties to even (as DuckDB), and a
 * NaN, an infinity or a rounded value outside the target's range is FB_ERR_OVERFLOW. Integer to
 * float rounds to nearest. float64 to float32 rounds to nearest; a finite value beyond float32's
 * range is FB_ERR_OVERFLOW, infinities and NaN pass. Null rows are null and never fail.
 * @{ */

/** \brief out = CAST(in AS out->type), row by row.
 * \param out capacity ≥ in->length; out->validity is required when in has a validity bitmap or
 *        sel_in is given. out->length becomes in->length.
 * \return FB_OK, FB_ERR_INVALID_ARG (NULL pointers, bad views, missing validity),
 *         FB_ERR_UNSUPPORTED_TYPE (an invalid type), FB_ERR_CAPACITY, FB_ERR_OUT_OF_RANGE (sel_in),
 *         FB_ERR_OVERFLOW (the message names the first row and its value). */
FB_API fb_status fb_expr_cast(fb_ctx *ctx, const fb_column *in, const uint32_t *sel_in, int64_t n_in,
                              fb_column_out *out);
/** @} */

#ifdef __cplusplus
}
#endif
#endif /* FB_EXPR_H */
