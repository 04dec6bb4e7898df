/* fb_expr_internal.h - the per-ISA kernels of the expression module (fb_expr.h) and their table.
 *
 * expr.c checks arguments, computes output validity (AND of the inputs' and of the input selection)
 * and calls these through fb_expr_kernels_get(fb_ctx_isa(ctx)). expr_ref.c is the scalar variant
 * (fb_expr_kernels_scalar, plain C one row at a time: the reference); simd_expr.c is compiled once per
 * target (fb_expr_kernels_base / _avx2 / _avx512). Every kernel runs densely over rows 0..n-1 of
 * 32- or 64-bit lanes (data pointers already advanced by the column offset), never allocates, and
 * never fails except by returning the first row it cannot compute. Symbols here are hidden. */
#ifndef FB_EXPR_INTERNAL_H
#define FB_EXPR_INTERNAL_H

#include <stdint.h>

#include "fb/fb_expr.h"
#include "fb_kernel_table.h"

typedef struct fb_expr_kernels {
    fb_isa isa;

    /* bits: (n + 7) / 8 whole bytes, bit i = the predicate holds for lane i (validity is the caller's);
     * padding bits of the last byte are 0. */
    void (*pred_bits_32)(const fb_pred *p, const uint32_t *v, int64_t n, uint8_t *bits);
    void (*pred_bits_64)(const fb_pred *p, const uint64_t *v, int64_t n, uint8_t *bits);
    /* bits as above of key(a[i]) op key(b[i]) (ordered keys of fb_kernel_table.h) */
    void (*cmp_bits_32)(fb_key_kind kind, fb_cmp op, const uint32_t *a, const uint32_t *b, int64_t n, uint8_t *bits);
    void (*cmp_bits_64)(fb_key_kind kind, fb_cmp op, const uint64_t *a, const uint64_t *b, int64_t n, uint8_t *bits);

    /* Selection of the rows valid in va and vb where key(a) op key(b): candidates 0..length-1, or
     * sel_in[0..n_in); returns the count written to out, or -1 for a sel_in index ≥ length. */
    int64_t (*select_cols_32)(fb_key_kind kind, fb_cmp op, const uint32_t *a, fb_bits va, const uint32_t *b,
                              fb_bits vb, int64_t length, const uint32_t *sel_in, int64_t n_in, uint32_t *out);
    int64_t (*select_cols_64)(fb_key_kind kind, fb_cmp op, const uint64_t *a, fb_bits va, const uint64_t *b,
                              fb_bits vb, int64_t length, const uint32_t *sel_in, int64_t n_in, uint32_t *out);

    /* out[i] = a[i] op b[i] for i < n, where an operand flagged *_const is its element 0 for every row.
     * Integers wrap in the output; the return value is the first row valid in `valid` whose exact
     * result does not fit the type, or -1. Floats never fail. */
    int64_t (*arith_i32)(fb_arith op, const int32_t *a, int a_const, const int32_t *b, int b_const, fb_bits valid,
                         int64_t n, int32_t *out);
    int64_t (*arith_i64)(fb_arith op, const int64_t *a, int a_const, const int64_t *b, int b_const, fb_bits valid,
                         int64_t n, int64_t *out);
    void (*arith_f32)(fb_arith op, const float *a, int a_const, const float *b, int b_const, int64_t n, float *out);
    void (*arith_f64)(fb_arith op, const double *a, int a_const, const double *b, int b_const, int64_t n,
                      double *out);

    /* out[i] = CAST(in[i] AS to) for i < n (fb_expr.h's rules); returns the first row valid in `valid`
     * whose value is out of the target's range (its output is then unspecified), or -1. Rows that
     * are not valid get an unspecified value and never fail. */
    int64_t (*cast)(fb_type from, const void *in, fb_type to, void *out, fb_bits valid, int64_t n);
} fb_expr_kernels;

extern const fb_expr_kernels fb_expr_kernels_scalar;
extern const fb_expr_kernels fb_expr_kernels_base;
extern const fb_expr_kernels fb_expr_kernels_avx2;
extern const fb_expr_kernels fb_expr_kernels_avx512;

/* The kernels of a variant (expr.c); the scalar ones for a variant this build lacks. */
const fb_expr_kernels *fb_expr_kernels_get(fb_isa isa);

/* One cast of a valid value (expr_ref.c): writes *out and returns 1, or returns 0 when the value is
 * outside the target's range. Shared by the scalar variant and the SIMD variants' slow paths. */
int fb_expr_cast_one(fb_type from, const void *in, fb_type to, void *out);

/* Exact comparison outcome for an fb_cmp on ordered keys. */
static inline int fb_expr_cmp_keys(fb_cmp op, int64_t x, int64_t y)
{
    switch (op) {
    case FB_CMP_EQ: return x == y;
    case FB_CMP_NE: return x != y;
    case FB_CMP_LT: return x < y;
    case FB_CMP_LE: return x <= y;
    case FB_CMP_GT: return x > y;
    default: return x >= y;
    }
}


/* Argument checks and message helpers of expr.c, shared with the OpenCL twins (cl/cl_expr.c) so both
 * refuse the same inputs with the same statuses and messages. `where` is the public function's name. */
fb_status fb_expr_check_ctx(const fb_ctx *ctx, const char *where);
fb_status fb_expr_check_sel(const fb_ctx *ctx, const uint32_t *sel_in, int64_t n_in, const char *where);
fb_status fb_expr_check_pair(const fb_ctx *ctx, const fb_column *a, const fb_column *b, const char *where);
fb_status fb_expr_check_bool_out(const fb_ctx *ctx, const fb_bool *out, int64_t rows, const char *where);
fb_status fb_expr_check_bool_in(const fb_ctx *ctx, const fb_bool *a, const char *what, const char *where);
fb_status fb_expr_check_bool_args(fb_ctx *ctx, const fb_column *col, const uint32_t *sel_in, int64_t n_in,
                                  const fb_bool *out, const char *where);
fb_status fb_expr_check_logic(fb_ctx *ctx, const fb_bool *a, const fb_bool *b, const fb_bool *out,
                              const char *where);
fb_status fb_expr_check_sorted(const fb_ctx *ctx, const uint32_t *s, int64_t n, const char *what,
                               const char *where);
fb_status fb_expr_check_merge(fb_ctx *ctx, const uint32_t *a, int64_t n_a, const uint32_t *b, int64_t n_b,
                              const uint32_t *sel_out, int64_t capacity, int64_t need, const int64_t *n_out,
                              const char *where);
fb_status fb_expr_check_arith(fb_ctx *ctx, fb_arith op, const fb_column *a, const fb_column *b, const void *value,
                              const uint32_t *sel_in, int64_t n_in, fb_column_out *out, const char *where);
fb_status fb_expr_check_cast(fb_ctx *ctx, const fb_column *in, const uint32_t *sel_in, int64_t n_in,
                             fb_column_out *out, const char *where);
fb_status fb_expr_check_select_cols(fb_ctx *ctx, const fb_column *a, fb_cmp op, const fb_column *b,
                                    const uint32_t *sel_in, int64_t n_in, const uint32_t *sel_out, int64_t capacity,
                                    const int64_t *n_out, const char *where);
fb_status fb_expr_check_bool_to_sel(fb_ctx *ctx, const fb_bool *a, const uint32_t *sel_in, int64_t n_in,
                                    const uint32_t *sel_out, int64_t capacity, const int64_t *n_out,
                                    const char *where);
/* "+", "-" or "*" */
const char *fb_expr_arith_name(fb_arith op);
/* Text of one value of type t at p for an error message. */
void fb_expr_value_text(fb_type t, const void *p, char *buf, size_t size);

#endif /* FB_EXPR_INTERNAL_H */
