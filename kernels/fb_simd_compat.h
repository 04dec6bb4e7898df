/* fb_simd_compat.h - the AVX-512 operations simde 0.7.4 (Debian 12) lacks and fb's kernels need.
 *
 * Each function is the native intrinsic when the translation unit is compiled for AVX-512 and a
 * portable loop otherwise (simde itself provides everything else). Names keep the intrinsic's name
 * behind an fb_ prefix so they are easy to swap for simde's once it has them. Checked against
 * simde 0.7.4 on 2026-11-23: missing were the 32/64-bit gathers, _mm512_cvtepi32_epi64,
 * _mm512_cvtepu32_epi64 (and _mm512_srai_epi*, _mm256_mullo_epi64, which the kernels avoid).
 */
#ifndef FB_SIMD_COMPAT_H
#define FB_SIMD_COMPAT_H

#include <stdint.h>
#include <string.h>

#include <simde/x86/avx512.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define FB_COMPAT_NATIVE_AVX512 1
#endif

/* Sign-extends 8 int32 to 8 int64. */
static inline simde__m512i fb_mm512_cvtepi32_epi64(simde__m256i a)
{
#if defined(FB_COMPAT_NATIVE_AVX512)
    return _mm512_cvtepi32_epi64(a);
#else
    int32_t in[8];
    int64_t out[8];
    simde_mm256_storeu_si256((simde__m256i *)in, a);
    for (int i = 0; i < 8; i++)
        out[i] = in[i];
    return simde_mm512_loadu_si512(out);
#endif
}

/* Zero-extends 8 uint32 to 8 uint64. */
static inline simde__m512i fb_mm512_cvtepu32_epi64(simde__m256i a)
{
#if defined(FB_COMPAT_NATIVE_AVX512)
    return _mm512_cvtepu32_epi64(a);
#else
    uint32_t in[8];
    uint64_t out[8];
    simde_mm256_storeu_si256((simde__m256i *)in, a);
    for (int i = 0; i < 8; i++)
        out[i] = in[i];
    return simde_mm512_loadu_si512(out);
#endif
}

/* 16 x int32 loaded from base[idx[i]] (idx signed 32-bit). */
static inline simde__m512i fb_mm512_i32gather_epi32(simde__m512i idx, const void *base)
{
#if defined(FB_COMPAT_NATIVE_AVX512)
    return _mm512_i32gather_epi32(idx, base, 4);
#else
    int32_t ix[16], out[16];
    simde_mm512_storeu_si512(ix, idx);
    for (int i = 0; i < 16; i++)
        memcpy(&out[i], (const char *)base + (int64_t)ix[i] * 4, 4);
    return simde_mm512_loadu_si512(out);
#endif
}

/* 8 x int64 loaded from base[idx[i]] (8 signed 32-bit indices). */
static inline simde__m512i fb_mm512_i32gather_epi64(simde__m256i idx, const void *base)
{
#if defined(FB_COMPAT_NATIVE_AVX512)
    return _mm512_i32gather_epi64(idx, base, 8);
#else
    int32_t ix[8];
    int64_t out[8];
    simde_mm256_storeu_si256((simde__m256i *)ix, idx);
    for (int i = 0; i < 8; i++)
        memcpy(&out[i], (const char *)base + (int64_t)ix[i] * 8, 8);
    return simde_mm512_loadu_si512(out);
#endif
}

/* 8 x int32 from base[idx[i]] (64-bit indices) where mask bit i is set, src[i] elsewhere. */
static inline simde__m256i fb_mm512_mask_i64gather_epi32(simde__m256i src, simde__mmask8 k, simde__m512i idx,
                                                         const void *base)
{
#if defined(FB_COMPAT_NATIVE_AVX512)
    return _mm512_mask_i64gather_epi32(src, k, idx, base, 4);
#else
    int64_t ix[8];
    int32_t out[8];
    simde_mm512_storeu_si512(ix, idx);
    simde_mm256_storeu_si256((simde__m256i *)out, src);
    for (int i = 0; i < 8; i++)
        if ((k >> i) & 1)
            memcpy(&out[i], (const char *)base + ix[i] * 4, 4);
    return simde_mm256_loadu_si256((const simde__m256i *)out);
#endif
}

/* 8 x int64 from base[idx[i]] (64-bit indices) where mask bit i is set, src[i] elsewhere. */
static inline simde__m512i fb_mm512_mask_i64gather_epi64(simde__m512i src, simde__mmask8 k, simde__m512i idx,
                                                         const void *base)
{
#if defined(FB_COMPAT_NATIVE_AVX512)
    return _mm512_mask_i64gather_epi64(src, k, idx, base, 8);
#else
    int64_t ix[8], out[8];
    simde_mm512_storeu_si512(ix, idx);
    simde_mm512_storeu_si512(out, src);
    for (int i = 0; i < 8; i++)
        if ((k >> i) & 1)
            memcpy(&out[i], (const char *)base + ix[i] * 8, 8);
    return simde_mm512_loadu_si512(out);
#endif
}

#endif /* FB_SIMD_COMPAT_H */
