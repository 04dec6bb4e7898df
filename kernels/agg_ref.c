/* agg_ref.c - the scalar variant of the aggregation kernels (fb_agg_internal.h): plain C, one row at
 * a time. It is what FB_ISA=scalar runs and what the SIMD variants are tested against. */
#include "fb_agg_internal.h"

int64_t fb_agg_sum_i32_scalar(const int32_t *v, fb_bits valid, int64_t n, fb_agg_i128 *sum)
{
    int64_t nn = 0, s = 0; /* |s| < 2^31 * 2^32: no overflow in int64 */
    for (int64_t i = 0; i < n; i++)
        if (fb_bit_get(valid, i)) {
            s += v[i];
            nn++;
        }
    *sum += s;
    return nn;
}

static int64_t sum_i64(const int64_t *v, fb_bits valid, int64_t n, fb_agg_i128 *sum)
{
    int64_t nn = 0;
    fb_agg_i128 s = 0;
    for (int64_t i = 0; i < n; i++)
        if (fb_bit_get(valid, i)) {
            s += v[i];
            nn++;
        }
    *sum += s;
    return nn;
}

static int64_t sum_f64(const double *v, fb_bits valid, int64_t n, double *sum)
{
    int64_t nn = 0;
    double s = *sum;
    for (int64_t i = 0; i < n; i++)
        if (fb_bit_get(valid, i)) {
            s += v[i];
            nn++;
        }
    *sum = s;
    return nn;
}

int64_t fb_agg_minmax_i32_scalar(const int32_t *v, fb_bits valid, int64_t n, int64_t *mn, int64_t *mx)
{
    int64_t nn = 0, lo = *mn, hi = *mx;
    for (int64_t i = 0; i < n; i++)
        if (fb_bit_get(valid, i)) {
            lo = v[i] < lo ? v[i] : lo;
            hi = v[i] > hi ? v[i] : hi;
            nn++;
        }
    if (nn) {
        *mn = lo;
        *mx = hi;
    }
    return nn;
}

int64_t fb_agg_minmax_i64_scalar(const int64_t *v, fb_bits valid, int64_t n, int64_t *mn, int64_t *mx)
{
    int64_t nn = 0, lo = *mn, hi = *mx;
    for (int64_t i = 0; i < n; i++)
        if (fb_bit_get(valid, i)) {
            lo = v[i] < lo ? v[i] : lo;
            hi = v[i] > hi ? v[i] : hi;
            nn++;
        }
    if (nn) {
        *mn = lo;
        *mx = hi;
    }
    return nn;
}

static void direct_slots_i32(const int32_t *v, fb_bits valid, int64_t n, int32_t base, uint32_t *slot)
{
    for (int64_t i = 0; i < n; i++)
        slot[i] = fb_bit_get(valid, i) ? (uint32_t)v[i] - (uint32_t)base + 1 : 0;
}

int64_t fb_agg_direct_fused_i32_scalar(const int32_t *k, const int32_t *v, int64_t n, int32_t base, uint32_t span,
                                       int lc, int rw, uint64_t *tbl)
{
    const uint32_t cm = (1u << lc) - 1u;
    for (int64_t i = 0; i < n; i++) {
        if (i % 8 == 0) /* the block of 8 rows must be in range */
            for (int64_t j = i; j < n && j < i + 8; j++)
                if ((uint32_t)k[j] - (uint32_t)base >= span)
                    return i;
        uint64_t *r = tbl + (size_t)rw * ((((size_t)((uint32_t)k[i] - (uint32_t)base) + 1) << lc) + ((uint32_t)i & cm));
        int64_t x = v[i];
        r[0]++;
        r[1] += (uint64_t)x;
        if (rw == 4) {
            r[2] = x < (int64_t)r[2] ? (uint64_t)x : r[2];
            r[3] = x > (int64_t)r[3] ? (uint64_t)x : r[3];
        }
    }
    return n;
}

const fb_agg_kernels fb_agg_kernels_scalar = {
    .isa = FB_ISA_SCALAR,
    .sum_i32 = fb_agg_sum_i32_scalar,
    .sum_i64 = sum_i64,
    .sum_f64 = sum_f64,
    .minmax_i32 = fb_agg_minmax_i32_scalar,
    .minmax_i64 = fb_agg_minmax_i64_scalar,
    .direct_slots_i32 = direct_slots_i32,
    .direct_fused_i32 = fb_agg_direct_fused_i32_scalar,
};
