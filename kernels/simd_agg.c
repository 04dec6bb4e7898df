/* simd_agg.c - the SIMD variants of the aggregation kernels (fb_agg_internal.h), written once against
 * simde and compiled once per target (FB_KERNEL_BASE, FB_KERNEL_AVX2, FB_KERNEL_AVX512, as
 * simd_kernels.c). Only the small vector layer at the top knows the width. Integer results equal
 * agg_ref.c's bit for bit; sum_f64 adds in FB_N64 interleaved chains (reassociation only). The base
 * (SSE2) variant takes agg_ref.c's loops for the int32 sum and the min/max (see fb_agg_internal.h). */
#include "fb_agg_internal.h"
#include "fb_simd_compat.h"
#include "fb_vec.h"

#include <simde/x86/avx2.h>


/* ================================ vector layer ================================================== */
#if defined(FB_KERNEL_AVX512)

typedef simde__m512d fb_vecd;

FB_INLINE fb_vec v_sub32(fb_vec a, fb_vec b) { return simde_mm512_sub_epi32(a, b); }
FB_INLINE fb_vec v_srl64_32(fb_vec a) { return simde_mm512_srli_epi64(a, 32); }
FB_INLINE fb_vec v_load_widen_s32(const int32_t *p)
{
    return fb_mm512_cvtepi32_epi64(simde_mm256_loadu_si256((const simde__m256i *)p));
}
/* lanes whose bit is clear become 0 (32- or 64-bit lanes) */
FB_INLINE fb_vec v_keep32(fb_vec v, uint32_t bits) { return simde_mm512_maskz_mov_epi32((simde__mmask16)bits, v); }
FB_INLINE fb_vec v_keep64(fb_vec v, uint32_t bits) { return simde_mm512_maskz_mov_epi64((simde__mmask8)bits, v); }
/* bits ? a : b */
FB_INLINE fb_vec v_blend32(uint32_t bits, fb_vec a, fb_vec b) { return simde_mm512_mask_mov_epi32(b, (simde__mmask16)bits, a); }
FB_INLINE fb_vec v_blend64(uint32_t bits, fb_vec a, fb_vec b) { return simde_mm512_mask_mov_epi64(b, (simde__mmask8)bits, a); }
FB_INLINE fb_vec v_min32(fb_vec a, fb_vec b) { return simde_mm512_min_epi32(a, b); }
FB_INLINE fb_vec v_max32(fb_vec a, fb_vec b) { return simde_mm512_max_epi32(a, b); }
FB_INLINE fb_vec v_min64(fb_vec a, fb_vec b) { return simde_mm512_min_epi64(a, b); }
FB_INLINE fb_vec v_max64(fb_vec a, fb_vec b) { return simde_mm512_max_epi64(a, b); }
FB_INLINE fb_vecd d_zero(void) { return simde_mm512_setzero_pd(); }
FB_INLINE fb_vecd d_load_keep(const double *p, uint32_t bits)
{
    return simde_mm512_castsi512_pd(v_keep64(simde_mm512_loadu_si512(p), bits));
}
FB_INLINE fb_vecd d_add(fb_vecd a, fb_vecd b) { return simde_mm512_add_pd(a, b); }
FB_INLINE void d_store(double *p, fb_vecd v) { simde_mm512_storeu_pd(p, v); }

#else /* 256-bit */

typedef simde__m256d fb_vecd;

FB_INLINE fb_vec v_sub32(fb_vec a, fb_vec b) { return simde_mm256_sub_epi32(a, b); }
FB_INLINE fb_vec v_srl64_32(fb_vec a) { return simde_mm256_srli_epi64(a, 32); }
FB_INLINE fb_vec v_load_widen_s32(const int32_t *p)
{
    return simde_mm256_cvtepi32_epi64(simde_mm_loadu_si128((const simde__m128i *)p));
}
/* all-ones lanes where bit j of bits is set */
FB_INLINE fb_vec mask32(uint32_t bits)
{
    fb_vec pow2 = simde_mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return simde_mm256_cmpeq_epi32(simde_mm256_and_si256(simde_mm256_set1_epi32((int32_t)bits), pow2), pow2);
}
FB_INLINE fb_vec mask64(uint32_t bits)
{
    fb_vec pow2 = simde_mm256_setr_epi64x(1, 2, 4, 8);
    return simde_mm256_cmpeq_epi64(simde_mm256_and_si256(simde_mm256_set1_epi64x(bits), pow2), pow2);
}
FB_INLINE fb_vec v_keep32(fb_vec v, uint32_t bits) { return simde_mm256_and_si256(v, mask32(bits)); }
FB_INLINE fb_vec v_keep64(fb_vec v, uint32_t bits) { return simde_mm256_and_si256(v, mask64(bits)); }
FB_INLINE fb_vec v_blend32(uint32_t bits, fb_vec a, fb_vec b) { return simde_mm256_blendv_epi8(b, a, mask32(bits)); }
FB_INLINE fb_vec v_blend64(uint32_t bits, fb_vec a, fb_vec b) { return simde_mm256_blendv_epi8(b, a, mask64(bits)); }
FB_INLINE fb_vec v_min32(fb_vec a, fb_vec b) { return simde_mm256_min_epi32(a, b); }
FB_INLINE fb_vec v_max32(fb_vec a, fb_vec b) { return simde_mm256_max_epi32(a, b); }
FB_INLINE fb_vec v_min64(fb_vec a, fb_vec b) { return simde_mm256_blendv_epi8(a, b, simde_mm256_cmpgt_epi64(a, b)); }
FB_INLINE fb_vec v_max64(fb_vec a, fb_vec b) { return simde_mm256_blendv_epi8(a, b, simde_mm256_cmpgt_epi64(b, a)); }
FB_INLINE fb_vecd d_zero(void) { return simde_mm256_setzero_pd(); }
FB_INLINE fb_vecd d_load_keep(const double *p, uint32_t bits)
{
    return simde_mm256_castsi256_pd(v_keep64(v_load(p), bits));
}
FB_INLINE fb_vecd d_add(fb_vecd a, fb_vecd b) { return simde_mm256_add_pd(a, b); }
FB_INLINE void d_store(double *p, fb_vecd v) { simde_mm256_storeu_pd(p, v); }

#endif /* width */

/* ================================ reductions ===================================================== */

#if defined(FB_KERNEL_AVX2) || defined(FB_KERNEL_AVX512) /* base uses the scalar loops: fb_agg_internal.h */
static int64_t sum_i32(const int32_t *v, fb_bits valid, int64_t n, fb_agg_i128 *sum)
{
    fb_vec acc = v_zero(); /* FB_N64 int64 lanes, each |lane| < 2^31 * n/FB_N64: no overflow */
    int64_t nn = 0, i = 0;
    for (; i + FB_N64 <= n; i += FB_N64) {
        uint32_t bits = load_bits(valid, i, FB_N64);
        acc = v_add64(acc, v_keep64(v_load_widen_s32(v + i), bits));
        nn += __builtin_popcount(bits);
    }
    int64_t lanes[FB_N64];
    v_store(lanes, acc);
    fb_agg_i128 s = 0;
    for (int j = 0; j < FB_N64; j++)
        s += lanes[j];
    for (; i < n; i++)
        if (fb_bit_get(valid, i)) {
            s += v[i];
            nn++;
        }
    *sum += s;
    return nn;
}
#endif

/* Exact 128-bit sum from 64-bit lanes: each value is lo + 2^32 * (hb - 2^31) with lo its low half
 * and hb its high half with the sign bit flipped, both unsigned 32-bit; lane sums of those cannot
 * overflow 64 bits for n < 2^32. Null lanes are zeroed: lo 0, hb 2^31, and the bias is subtracted for
 * every lane processed. */
static int64_t sum_i64(const int64_t *v, fb_bits valid, int64_t n, fb_agg_i128 *sum)
{
    fb_vec acc_lo = v_zero(), acc_hb = v_zero();
    fb_vec low = v_set64(0xFFFFFFFFll), flip = v_set64(0x80000000ll);
    int64_t nn = 0, i = 0;
    for (; i + FB_N64 <= n; i += FB_N64) {
        uint32_t bits = load_bits(valid, i, FB_N64);
        fb_vec x = v_keep64(v_load(v + i), bits);
        acc_lo = v_add64(acc_lo, v_and(x, low));
        acc_hb = v_add64(acc_hb, v_xor(v_srl64_32(x), flip));
        nn += __builtin_popcount(bits);
    }
    uint64_t lo[FB_N64], hb[FB_N64];
    v_store(lo, acc_lo);
    v_store(hb, acc_hb);
    fb_agg_i128 s_lo = 0, s_hb = 0;
    for (int j = 0; j < FB_N64; j++) {
        s_lo += lo[j];
        s_hb += hb[j];
    }
    fb_agg_i128 s = s_lo + (s_hb - (fb_agg_i128)i * 0x80000000ll) * ((fb_agg_i128)1 << 32);
    for (; i < n; i++)
        if (fb_bit_get(valid, i)) {
            s += v[i];
            nn++;
        }
    *sum += s;
    return nn;
}

static int64_t sum_f64(const double *v, fb_bits valid, int64_t n, double *sum)
{
    fb_vecd acc = d_zero();
    int64_t nn = 0, i = 0;
    for (; i + FB_N64 <= n; i += FB_N64) {
        uint32_t bits = load_bits(valid, i, FB_N64);
        acc = d_add(acc, d_load_keep(v + i, bits));
        nn += __builtin_popcount(bits);
    }
    double lanes[FB_N64], s = *sum;
    d_store(lanes, acc);
    if (i > 0)
        for (int j = 0; j < FB_N64; j++)
            s += lanes[j];
    for (; i < n; i++)
        if (fb_bit_get(valid, i)) {
            s += v[i];
            nn++;
        }
    *sum = s;
    return nn;
}

#if defined(FB_KERNEL_AVX2) || defined(FB_KERNEL_AVX512) /* base uses the scalar loops: fb_agg_internal.h */
static int64_t minmax_i32(const int32_t *v, fb_bits valid, int64_t n, int64_t *mn, int64_t *mx)
{
    fb_vec lo = v_set32(INT32_MAX), hi = v_set32(INT32_MIN);
    int64_t nn = 0, i = 0;
    for (; i + FB_N32 <= n; i += FB_N32) {
        uint32_t bits = load_bits(valid, i, FB_N32);
        fb_vec x = v_load(v + i);
        lo = v_min32(lo, v_blend32(bits, x, v_set32(INT32_MAX)));
        hi = v_max32(hi, v_blend32(bits, x, v_set32(INT32_MIN)));
        nn += __builtin_popcount(bits);
    }
    int32_t l[FB_N32], h[FB_N32];
    v_store(l, lo);
    v_store(h, hi);
    int64_t a = *mn, b = *mx;
    if (nn)
        for (int j = 0; j < FB_N32; j++) {
            a = l[j] < a ? l[j] : a;
            b = h[j] > b ? h[j] : b;
        }
    for (; i < n; i++)
        if (fb_bit_get(valid, i)) {
            a = v[i] < a ? v[i] : a;
            b = v[i] > b ? v[i] : b;
            nn++;
        }
    if (nn) {
        *mn = a;
        *mx = b;
    }
    return nn;
}

static int64_t minmax_i64(const int64_t *v, fb_bits valid, int64_t n, int64_t *mn, int64_t *mx)
{
    fb_vec lo = v_set64(INT64_MAX), hi = v_set64(INT64_MIN);
    int64_t nn = 0, i = 0;
    for (; i + FB_N64 <= n; i += FB_N64) {
        uint32_t bits = load_bits(valid, i, FB_N64);
        fb_vec x = v_load(v + i);
        lo = v_min64(lo, v_blend64(bits, x, v_set64(INT64_MAX)));
        hi = v_max64(hi, v_blend64(bits, x, v_set64(INT64_MIN)));
        nn += __builtin_popcount(bits);
    }
    int64_t l[FB_N64], h[FB_N64];
    v_store(l, lo);
    v_store(h, hi);
    int64_t a = *mn, b = *mx;
    if (nn)
        for (int j = 0; j < FB_N64; j++) {
            a = l[j] < a ? l[j] : a;
            b = h[j] > b ? h[j] : b;
        }
    for (; i < n; i++)
        if (fb_bit_get(valid, i)) {
            a = v[i] < a ? v[i] : a;
            b = v[i] > b ? v[i] : b;
            nn++;
        }
    if (nn) {
        *mn = a;
        *mx = b;
    }
    return nn;
}
#endif

static void direct_slots_i32(const int32_t *v, fb_bits valid, int64_t n, int32_t base, uint32_t *slot)
{
    fb_vec off = v_set32((int32_t)((uint32_t)base - 1u)); /* v - base + 1 in wrapping 32-bit arithmetic */
    int64_t i = 0;
    for (; i + FB_N32 <= n; i += FB_N32)
        v_store(slot + i, v_keep32(v_sub32(v_load(v + i), off), load_bits(valid, i, FB_N32)));
    for (; i < n; i++)
        slot[i] = fb_bit_get(valid, i) ? (uint32_t)v[i] - (uint32_t)base + 1 : 0;
}

#if defined(FB_KERNEL_AVX2) || defined(FB_KERNEL_AVX512)
/* direct_fused_i32: a row's record (count, sum, min, max) is one 256-bit read-modify-write (a (count,
 * sum) record one 128-bit one) instead of one per word; rows are taken 8 at a time, so that a row's
 * copy (i mod 2^lc) is a constant of its position. */
FB_INLINE void fused_row4(uint64_t *r, int32_t v)
{
    simde__m256i rec = simde_mm256_loadu_si256((const simde__m256i *)(void *)r);
    simde__m256i x = simde_mm256_set1_epi64x(v);
    /* lanes 0, 1: count + 1, sum + v */
    simde__m256i s = simde_mm256_add_epi64(rec, simde_mm256_blend_epi32(x, simde_mm256_setr_epi64x(1, 0, 0, 0), 0x03));
#if defined(__AVX512VL__) /* the native 64-bit min/max (simde 0.7.4 has no 256-bit ones): lanes 2, 3 */
    simde__m256i out = _mm256_mask_max_epi64(_mm256_mask_min_epi64(s, 0x4, rec, x), 0x8, rec, x);
#else
    /* lane 2 takes v where rec > v (min), lane 3 where !(rec > v) (max; equal: the same value) */
    simde__m256i take = simde_mm256_xor_si256(simde_mm256_cmpgt_epi64(rec, x), simde_mm256_setr_epi64x(0, 0, 0, -1));
    simde__m256i out = simde_mm256_blend_epi32(s, simde_mm256_blendv_epi8(rec, x, take), 0xF0);
#endif
    simde_mm256_storeu_si256((simde__m256i *)(void *)r, out);
}

FB_INLINE void fused_row2(uint64_t *r, int32_t v)
{
    simde__m128i rec = simde_mm_loadu_si128((const simde__m128i *)(void *)r);
    simde_mm_storeu_si128((simde__m128i *)(void *)r, simde_mm_add_epi64(rec, simde_mm_set_epi64x(v, 1)));
}

#define FUSED_SLOT(i, c, LC) ((((size_t)((uint32_t)k[i] - (uint32_t)base) + 1) << (LC)) + (c))
/* Whether the 8 keys at k are all in range: (uint32)(k - base) < span, compared signed after
 * flipping the sign bits. */
FB_INLINE int fused_in_range(const int32_t *k, simde__m256i base_flip, simde__m256i span_flip)
{
    simde__m256i d = simde_mm256_sub_epi32(simde_mm256_loadu_si256((const simde__m256i *)(const void *)k), base_flip);
    return simde_mm256_movemask_epi8(simde_mm256_cmpgt_epi32(span_flip, d)) == -1;
}

#define FUSED_LOOP(LC, RW)                                                                         \
    do {                                                                                           \
        const uint32_t cm_ = (1u << (LC)) - 1u;                                                    \
        for (; i_ + 8 <= n; i_ += 8) {                                                             \
            if (!fused_in_range(k + i_, base_flip, span_flip))                                     \
                return i_;                                                                         \
            _Pragma("GCC unroll 8") for (int u_ = 0; u_ < 8; u_++)                                 \
                fused_row##RW(tbl + RW * FUSED_SLOT(i_ + u_, (uint32_t)u_ & cm_, LC), v[i_ + u_]); \
        }                                                                                          \
        for (int64_t j_ = i_; j_ < n; j_++)                                                        \
            if ((uint32_t)k[j_] - (uint32_t)base >= span)                                          \
                return i_;                                                                         \
        for (; i_ < n; i_++)                                                                       \
            fused_row##RW(tbl + RW * FUSED_SLOT(i_, (uint32_t)i_ & cm_, LC), v[i_]);               \
    } while (0)

static int64_t direct_fused_i32(const int32_t *k, const int32_t *v, int64_t n, int32_t base, uint32_t span, int lc,
                                int rw, uint64_t *tbl)
{
    /* k - (base + 2^31) = (k - base) ^ 2^31 in wrapping arithmetic */
    const simde__m256i base_flip = simde_mm256_set1_epi32((int32_t)((uint32_t)base + 0x80000000u));
    const simde__m256i span_flip = simde_mm256_set1_epi32((int32_t)(span ^ 0x80000000u));
    int64_t i_ = 0;
    switch (lc * 8 + rw) {
    case 0 * 8 + 4: FUSED_LOOP(0, 4); break;
    case 1 * 8 + 4: FUSED_LOOP(1, 4); break;
    case 2 * 8 + 4: FUSED_LOOP(2, 4); break;
    case 3 * 8 + 4: FUSED_LOOP(3, 4); break;
    case 0 * 8 + 2: FUSED_LOOP(0, 2); break;
    case 1 * 8 + 2: FUSED_LOOP(1, 2); break;
    case 2 * 8 + 2: FUSED_LOOP(2, 2); break;
    default: FUSED_LOOP(3, 2); break;
    }
    return n;
}
#undef FUSED_LOOP
#undef FUSED_SLOT
#endif

#if defined(FB_KERNEL_AVX512)
const fb_agg_kernels fb_agg_kernels_avx512 = {
    .isa = FB_ISA_AVX512,
#elif defined(FB_KERNEL_AVX2)
const fb_agg_kernels fb_agg_kernels_avx2 = {
    .isa = FB_ISA_AVX2,
#else
const fb_agg_kernels fb_agg_kernels_base = {
    .isa = FB_ISA_BASE,
#endif
#if defined(FB_KERNEL_AVX2) || defined(FB_KERNEL_AVX512)
    .sum_i32 = sum_i32,
    .minmax_i32 = minmax_i32,
    .minmax_i64 = minmax_i64,
    .direct_fused_i32 = direct_fused_i32,
#else /* SSE2: see fb_agg_internal.h */
    .sum_i32 = fb_agg_sum_i32_scalar,
    .minmax_i32 = fb_agg_minmax_i32_scalar,
    .minmax_i64 = fb_agg_minmax_i64_scalar,
    .direct_fused_i32 = fb_agg_direct_fused_i32_scalar,
#endif
    .sum_i64 = sum_i64,
    .sum_f64 = sum_f64,
    .direct_slots_i32 = direct_slots_i32,
};
