/* fb_vec.h - the part of the SIMD vector layer every kernels/simd_*.c file shares: the vector type of
 * the translation unit's width (512 bits under FB_KERNEL_AVX512, else 256, which simde splits on the
 * base target), loads, stores, broadcasts, basic integer ops and the validity-bit loader. Each simd_*.c
 * adds the operations only it needs below its #include of this header. */
#ifndef FB_VEC_H
#define FB_VEC_H

#include <stdint.h>

#include <simde/x86/avx2.h>
#include <simde/x86/avx512.h>

#include "fb_kernel_table.h"

#define FB_INLINE static inline __attribute__((always_inline))

#if defined(FB_KERNEL_AVX512)
#define FB_W512 1

typedef simde__m512i fb_vec;  /* 16 x 32-bit or 8 x 64-bit lanes */
typedef simde__m256i fb_half; /* 8 x 32-bit lanes */
#define FB_N32 16
#define FB_N64 8

FB_INLINE fb_vec v_load(const void *p) { return simde_mm512_loadu_si512(p); }
FB_INLINE void v_store(void *p, fb_vec v) { simde_mm512_storeu_si512(p, v); }
FB_INLINE fb_half h_load(const void *p) { return simde_mm256_loadu_si256((const simde__m256i *)p); }
FB_INLINE void h_store(void *p, fb_half v) { simde_mm256_storeu_si256((simde__m256i *)p, v); }
FB_INLINE fb_vec v_set32(int32_t x) { return simde_mm512_set1_epi32(x); }
FB_INLINE fb_vec v_set64(int64_t x) { return simde_mm512_set1_epi64(x); }
FB_INLINE fb_vec v_zero(void) { return simde_mm512_setzero_si512(); }
FB_INLINE fb_vec v_and(fb_vec a, fb_vec b) { return simde_mm512_and_si512(a, b); }
FB_INLINE fb_vec v_xor(fb_vec a, fb_vec b) { return simde_mm512_xor_si512(a, b); }
FB_INLINE fb_vec v_add32(fb_vec a, fb_vec b) { return simde_mm512_add_epi32(a, b); }
FB_INLINE fb_vec v_add64(fb_vec a, fb_vec b) { return simde_mm512_add_epi64(a, b); }

typedef uint32_t fb_mask; /* a mask register: one bit per lane */
FB_INLINE fb_mask mk_gt32(fb_vec a, fb_vec b) { return simde_mm512_cmpgt_epi32_mask(a, b); }
FB_INLINE fb_mask mk_eq32(fb_vec a, fb_vec b) { return simde_mm512_cmpeq_epi32_mask(a, b); }
FB_INLINE fb_mask mk_gt64(fb_vec a, fb_vec b) { return simde_mm512_cmpgt_epi64_mask(a, b); }
FB_INLINE fb_mask mk_eq64(fb_vec a, fb_vec b) { return simde_mm512_cmpeq_epi64_mask(a, b); }
FB_INLINE fb_mask mk_or(fb_mask a, fb_mask b) { return a | b; }
FB_INLINE uint32_t mk_bits32(fb_mask m) { return m; }
FB_INLINE uint32_t mk_bits64(fb_mask m) { return m; }
/* m ? a : b, per 32- or 64-bit lane */
FB_INLINE fb_vec v_sel32(fb_mask m, fb_vec a, fb_vec b) { return simde_mm512_mask_mov_epi32(b, (simde__mmask16)m, a); }
FB_INLINE fb_vec v_sel64(fb_mask m, fb_vec a, fb_vec b) { return simde_mm512_mask_mov_epi64(b, (simde__mmask8)m, a); }

#else /* 256-bit */
#define FB_W512 0

typedef simde__m256i fb_vec;  /* 8 x 32-bit or 4 x 64-bit lanes */
typedef simde__m128i fb_half; /* 4 x 32-bit lanes */
#define FB_N32 8
#define FB_N64 4

FB_INLINE fb_vec v_load(const void *p) { return simde_mm256_loadu_si256((const simde__m256i *)p); }
FB_INLINE void v_store(void *p, fb_vec v) { simde_mm256_storeu_si256((simde__m256i *)p, v); }
FB_INLINE fb_half h_load(const void *p) { return simde_mm_loadu_si128((const simde__m128i *)p); }
FB_INLINE void h_store(void *p, fb_half v) { simde_mm_storeu_si128((simde__m128i *)p, v); }
FB_INLINE fb_vec v_set32(int32_t x) { return simde_mm256_set1_epi32(x); }
FB_INLINE fb_vec v_set64(int64_t x) { return simde_mm256_set1_epi64x(x); }
FB_INLINE fb_vec v_zero(void) { return simde_mm256_setzero_si256(); }
FB_INLINE fb_vec v_and(fb_vec a, fb_vec b) { return simde_mm256_and_si256(a, b); }
FB_INLINE fb_vec v_xor(fb_vec a, fb_vec b) { return simde_mm256_xor_si256(a, b); }
FB_INLINE fb_vec v_add32(fb_vec a, fb_vec b) { return simde_mm256_add_epi32(a, b); }
FB_INLINE fb_vec v_add64(fb_vec a, fb_vec b) { return simde_mm256_add_epi64(a, b); }

typedef simde__m256i fb_mask; /* all-ones lanes */
FB_INLINE fb_mask mk_gt32(fb_vec a, fb_vec b) { return simde_mm256_cmpgt_epi32(a, b); }
FB_INLINE fb_mask mk_eq32(fb_vec a, fb_vec b) { return simde_mm256_cmpeq_epi32(a, b); }
FB_INLINE fb_mask mk_gt64(fb_vec a, fb_vec b) { return simde_mm256_cmpgt_epi64(a, b); }
FB_INLINE fb_mask mk_eq64(fb_vec a, fb_vec b) { return simde_mm256_cmpeq_epi64(a, b); }
FB_INLINE fb_mask mk_or(fb_mask a, fb_mask b) { return simde_mm256_or_si256(a, b); }
FB_INLINE uint32_t mk_bits32(fb_mask m) { return (uint32_t)simde_mm256_movemask_ps(simde_mm256_castsi256_ps(m)); }
FB_INLINE uint32_t mk_bits64(fb_mask m) { return (uint32_t)simde_mm256_movemask_pd(simde_mm256_castsi256_pd(m)); }
/* m ? a : b, per 32- or 64-bit lane */
FB_INLINE fb_vec v_sel32(fb_mask m, fb_vec a, fb_vec b) { return simde_mm256_blendv_epi8(b, a, m); }
FB_INLINE fb_vec v_sel64(fb_mask m, fb_vec a, fb_vec b) { return simde_mm256_blendv_epi8(b, a, m); }

#endif /* width */

#define FB_FULL32 ((uint32_t)((1ull << FB_N32) - 1))
#define FB_FULL64 ((uint32_t)((1ull << FB_N64) - 1))

/* Validity bits of rows i..i+n-1 (n ≤ 16) as the low n bits (all ones without a bitmap). */
FB_INLINE uint32_t load_bits(fb_bits b, int64_t i, int n)
{
    uint32_t full = (uint32_t)((1ull << n) - 1);
    if (!b.bits)
        return full;
    int64_t k = b.off + i;
    const uint8_t *p = b.bits + (k >> 3);
    int s = (int)(k & 7), nbytes = (s + n + 7) >> 3;
    uint32_t w = 0;
    for (int j = 0; j < nbytes; j++)
        w |= (uint32_t)p[j] << (8 * j);
    return (w >> s) & full;
}

/* ---- ordered keys and predicates (the selection and the expression kernels) ----------------------- */

/* Ordered keys of a vector: fb_key_32 / fb_key_64 (fb_kernel_table.h) lane by lane, so that signed
 * compares order unsigned and float keys as SQL does. */
FB_INLINE fb_vec key32(fb_vec v, fb_key_kind kind)
{
    if (kind == FB_KEY_UNSIGNED)
        return v_xor(v, v_set32(INT32_MIN));
    if (kind == FB_KEY_FLOAT) {
        fb_vec zero = v_zero();
        fb_mask nan = mk_gt32(v_and(v, v_set32(0x7FFFFFFF)), v_set32(0x7F800000));
        v = v_sel32(nan, v_set32(0x7FC00000), v);
        v = v_sel32(mk_eq32(v, v_set32(INT32_MIN)), zero, v);
        return v_xor(v, v_sel32(mk_gt32(zero, v), v_set32(0x7FFFFFFF), zero));
    }
    return v;
}

FB_INLINE fb_vec key64(fb_vec v, fb_key_kind kind)
{
    if (kind == FB_KEY_UNSIGNED)
        return v_xor(v, v_set64(INT64_MIN));
    if (kind == FB_KEY_FLOAT) {
        fb_vec zero = v_zero();
        fb_mask nan = mk_gt64(v_and(v, v_set64(INT64_MAX)), v_set64(0x7FF0000000000000ll));
        v = v_sel64(nan, v_set64(0x7FF8000000000000ll), v);
        v = v_sel64(mk_eq64(v, v_set64(INT64_MIN)), zero, v);
        return v_xor(v, v_sel64(mk_gt64(zero, v), v_set64(INT64_MAX), zero));
    }
    return v;
}

/* Predicate bits of one vector of keys. */
FB_INLINE uint32_t pred32(fb_vec k, const fb_pred *p, fb_vec lo, fb_vec hi, uint32_t flip, int is_in)
{
    if (is_in) {
        fb_mask m = mk_eq32(k, v_set32((int32_t)p->set[0]));
        for (int64_t s = 1; s < p->n_set; s++)
            m = mk_or(m, mk_eq32(k, v_set32((int32_t)p->set[s])));
        return mk_bits32(m);
    }
    return (~mk_bits32(mk_or(mk_gt32(lo, k), mk_gt32(k, hi))) & FB_FULL32) ^ flip;
}

FB_INLINE uint32_t pred64(fb_vec k, const fb_pred *p, fb_vec lo, fb_vec hi, uint32_t flip, int is_in)
{
    if (is_in) {
        fb_mask m = mk_eq64(k, v_set64(p->set[0]));
        for (int64_t s = 1; s < p->n_set; s++)
            m = mk_or(m, mk_eq64(k, v_set64(p->set[s])));
        return mk_bits64(m);
    }
    return (~mk_bits64(mk_or(mk_gt64(lo, k), mk_gt64(k, hi))) & FB_FULL64) ^ flip;
}

#endif /* FB_VEC_H */
