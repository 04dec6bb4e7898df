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

#endif /* FB_VEC_H */
