/* fb_agg_internal.h - the per-ISA kernels of the aggregation (fb_agg.h) and their dispatch table.
 *
 * agg.c owns the tables of groups and calls these through fb_agg_kernels_get(fb_ctx_isa(ctx)):
 * agg_ref.c is the scalar variant (fb_agg_kernels_scalar, the reference), simd_agg.c is compiled
 * once per target (fb_agg_kernels_base / _avx2 / _avx512). Every function works on n < 2^32 rows of
 * one morsel, never allocates and never fails. Integer results are identical in every variant;
 * sum_f64 may add in another order. Symbols here are hidden. */
#ifndef FB_AGG_INTERNAL_H
#define FB_AGG_INTERNAL_H

#include <stdint.h>

#include "fb/fb_agg.h"
#include "fb_kernel_table.h"

__extension__ typedef __int128 fb_agg_i128;

typedef struct fb_agg_kernels {
    fb_isa isa;
    /* Ungrouped reductions over rows 0..n-1 that are valid: add their values to *sum (exact for
     * integers) and return how many were valid. */
    int64_t (*sum_i32)(const int32_t *v, fb_bits valid, int64_t n, fb_agg_i128 *sum);
    int64_t (*sum_i64)(const int64_t *v, fb_bits valid, int64_t n, fb_agg_i128 *sum);
    int64_t (*sum_f64)(const double *v, fb_bits valid, int64_t n, double *sum);
    /* Lower *mn and raise *mx to the min and max of the valid rows; returns how many were valid
     * (*mn and *mx are untouched when none). Also the key-range probe of the direct-indexed table. */
    int64_t (*minmax_i32)(const int32_t *v, fb_bits valid, int64_t n, int64_t *mn, int64_t *mx);
    int64_t (*minmax_i64)(const int64_t *v, fb_bits valid, int64_t n, int64_t *mn, int64_t *mx);
    /* Direct-indexed slots of one 32-bit key column: slot[i] = (uint32)(v[i] - base) + 1 for a
     * valid row, 0 for a null one. The caller guarantees base <= v[i] < base + 2^32 - 1. */
    void (*direct_slots_i32)(const int32_t *v, fb_bits valid, int64_t n, int32_t base, uint32_t *slot);
    /* The direct table's fused update of int32 keys and int32 values, none null: row i updates the
     * record of rw words at tbl + rw * ((((uint32)(k[i] - base) + 1) << lc) + (i & (2^lc - 1))) (the key's
     * slot, in 2^lc interleaved copies): word 0 (count) += 1, word 1 (sum) += v[i], and for rw 4 word 2
     * (min) = min(word 2, v[i]), word 3 (max) = max(word 3, v[i]), as int64. rw is 2 or 4, lc 0..3.
     * Only keys with (uint32)(k[i] - base) < span are taken: the kernel stops before the first 8-row
     * block (counted from row 0) that holds another one and returns the rows it took (n when all were
     * in range). The table has span + 1 slots. */
    int64_t (*direct_fused_i32)(const int32_t *k, const int32_t *v, int64_t n, int32_t base, uint32_t span, int lc,
                                int rw, uint64_t *tbl);
} fb_agg_kernels;

/* Scalar kernels the base (SSE2) variant uses as well: SSE2 lacks the 32->64-bit widening and the
 * 32/64-bit min/max, and simde's emulation of them ran at half the speed of these loops, which the
 * compiler vectorizes itself (16M int32 rows, ungrouped sum+min+max+avg: 360 vs 630 M rows/s). */
int64_t fb_agg_sum_i32_scalar(const int32_t *v, fb_bits valid, int64_t n, fb_agg_i128 *sum);
int64_t fb_agg_minmax_i32_scalar(const int32_t *v, fb_bits valid, int64_t n, int64_t *mn, int64_t *mx);
int64_t fb_agg_minmax_i64_scalar(const int64_t *v, fb_bits valid, int64_t n, int64_t *mn, int64_t *mx);
/* The base variant's direct_fused_i32 as well: a row's record is one read-modify-write of scalar words
 * there, which SSE2's emulated 64-bit min/max would only slow down. */
int64_t fb_agg_direct_fused_i32_scalar(const int32_t *k, const int32_t *v, int64_t n, int32_t base, uint32_t span,
                                       int lc, int rw, uint64_t *tbl);

extern const fb_agg_kernels fb_agg_kernels_scalar;
extern const fb_agg_kernels fb_agg_kernels_base;
extern const fb_agg_kernels fb_agg_kernels_avx2;
extern const fb_agg_kernels fb_agg_kernels_avx512;

/* The kernels of a variant (agg.c); the scalar ones for a variant this build lacks. */
const fb_agg_kernels *fb_agg_kernels_get(fb_isa isa);

#endif /* FB_AGG_INTERNAL_H */
