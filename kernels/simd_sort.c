/* simd_sort.c - the SIMD sort kernels (key normalization: raw column bits to ordered unsigned keys),
 * written once against simde and compiled once per target (FB_KERNEL_BASE, FB_KERNEL_AVX2,
 * FB_KERNEL_AVX512; see simd_kernels.c). The pass is a few bitwise operations per lane, so all
 * variants use 256-bit vectors (the AVX-512 build gets the VEX/EVEX forms of them); tails take the
 * scalar encoders of fb_sort_internal.h. Results are bitwise identical to sort.c's scalar variant. */
#include "fb_sort_internal.h"
#include "fb_sort_radix.h"

#include <simde/x86/avx2.h>

#define FB_INLINE static inline __attribute__((always_inline))

typedef simde__m256i fb_v;

FB_INLINE fb_v v_load(const void *p) { return simde_mm256_loadu_si256((const simde__m256i *)p); }
FB_INLINE void v_store(void *p, fb_v v) { simde_mm256_storeu_si256((simde__m256i *)p, v); }

/* float32 lanes to their ordered key as fb_key_32 computes it (canonical NaN, -0.0 = 0.0, negative
 * magnitudes flipped), as raw bits */
FB_INLINE fb_v float_key_32(fb_v raw)
{
    fb_v nan = simde_mm256_cmpgt_epi32(simde_mm256_and_si256(raw, simde_mm256_set1_epi32(0x7FFFFFFF)),
                                       simde_mm256_set1_epi32(0x7F800000));
    raw = simde_mm256_blendv_epi8(raw, simde_mm256_set1_epi32(0x7FC00000), nan);
    fb_v negzero = simde_mm256_cmpeq_epi32(raw, simde_mm256_set1_epi32(INT32_MIN));
    raw = simde_mm256_andnot_si256(negzero, raw);
    fb_v neg = simde_mm256_cmpgt_epi32(simde_mm256_setzero_si256(), raw);
    return simde_mm256_xor_si256(raw, simde_mm256_and_si256(neg, simde_mm256_set1_epi32(0x7FFFFFFF)));
}

FB_INLINE fb_v float_key_64(fb_v raw)
{
    fb_v nan = simde_mm256_cmpgt_epi64(simde_mm256_and_si256(raw, simde_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll)),
                                       simde_mm256_set1_epi64x(0x7FF0000000000000ll));
    raw = simde_mm256_blendv_epi8(raw, simde_mm256_set1_epi64x(0x7FF8000000000000ll), nan);
    fb_v negzero = simde_mm256_cmpeq_epi64(raw, simde_mm256_set1_epi64x(INT64_MIN));
    raw = simde_mm256_andnot_si256(negzero, raw);
    fb_v neg = simde_mm256_cmpgt_epi64(simde_mm256_setzero_si256(), raw);
    return simde_mm256_xor_si256(raw, simde_mm256_and_si256(neg, simde_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll)));
}

/* The loops are instantiated per kind (a constant argument of an always-inline function) so that
 * the branch on kind leaves the inner loop. */
FB_INLINE void encode_32_loop(const uint32_t *v, int64_t n, fb_key_kind kind, uint32_t flip, uint64_t *out)
{
    /* SIGNED: raw ^ sign ^ flip; UNSIGNED: raw ^ flip (fb_key_32 flips the sign, the encoder flips it back) */
    uint32_t x = kind == FB_KEY_UNSIGNED ? flip : flip ^ 0x80000000u;
    fb_v vx = simde_mm256_set1_epi32((int32_t)x);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        fb_v r = v_load(v + i);
        if (kind == FB_KEY_FLOAT)
            r = float_key_32(r);
        r = simde_mm256_xor_si256(r, vx);
        v_store(out + i, simde_mm256_cvtepu32_epi64(simde_mm256_castsi256_si128(r)));
        v_store(out + i + 4, simde_mm256_cvtepu32_epi64(simde_mm256_extracti128_si256(r, 1)));
    }
    for (; i < n; i++)
        out[i] = fb_sort_encode_32(v[i], kind, flip);
}

static void encode_32(const uint32_t *v, int64_t n, fb_key_kind kind, uint32_t flip, uint64_t *out)
{
    switch (kind) {
    case FB_KEY_FLOAT: encode_32_loop(v, n, FB_KEY_FLOAT, flip, out); break;
    case FB_KEY_UNSIGNED: encode_32_loop(v, n, FB_KEY_UNSIGNED, flip, out); break;
    default: encode_32_loop(v, n, FB_KEY_SIGNED, flip, out); break;
    }
}

FB_INLINE void encode_64_loop(const uint64_t *v, int64_t n, fb_key_kind kind, uint64_t flip, uint64_t *out)
{
    uint64_t x = kind == FB_KEY_UNSIGNED ? flip : flip ^ 0x8000000000000000ull;
    fb_v vx = simde_mm256_set1_epi64x((int64_t)x);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        fb_v r = v_load(v + i);
        if (kind == FB_KEY_FLOAT)
            r = float_key_64(r);
        v_store(out + i, simde_mm256_xor_si256(r, vx));
    }
    for (; i < n; i++)
        out[i] = fb_sort_encode_64(v[i], kind, flip);
}

static void encode_64(const uint64_t *v, int64_t n, fb_key_kind kind, uint64_t flip, uint64_t *out)
{
    switch (kind) {
    case FB_KEY_FLOAT: encode_64_loop(v, n, FB_KEY_FLOAT, flip, out); break;
    case FB_KEY_UNSIGNED: encode_64_loop(v, n, FB_KEY_UNSIGNED, flip, out); break;
    default: encode_64_loop(v, n, FB_KEY_SIGNED, flip, out); break;
    }
}

/* Stable scatter through software write-combining buffers: a cache line of records per digit, aligned
 * like the line it will fill, written out with one streaming (non-temporal) store when full, so the
 * scatter neither reads the destination lines first nor keeps 2^bits lines of it in the cache. Lines
 * the call does not own entirely (the first and last of a digit's range, which it may share with
 * another range) get plain stores of just its records. */
static void scatter_wc(const uint64_t *a, int64_t n, int shift, uint64_t mask, int64_t *off, uint64_t *dst,
                       uint64_t *wc, const int64_t *start)
{
    if ((uintptr_t)dst & 7) { /* records not on 8-byte boundaries: no whole lines to stream */
        rs_scatter_plain(a, n, shift, mask, off, dst, wc, start);
        return;
    }
    int64_t ph = (int64_t)(((uintptr_t)dst >> 3) & 7); /* position p starts a cache line when (p + ph) % 8 == 0 */
    for (int64_t i = 0; i < n; i++) {
        uint64_t x = a[i], d = (x >> shift) & mask;
        int64_t o = off[d]++;
        uint64_t *buf = wc + d * 8;
        buf[(o + ph) & 7] = x;
        if (((o + ph) & 7) == 7) {
            int64_t line = o - 7;
            if (line >= start[d]) {
#if defined(FB_KERNEL_AVX2) || defined(FB_KERNEL_AVX512)
                simde_mm256_stream_si256((simde__m256i *)(dst + line), simde_mm256_load_si256((const simde__m256i *)buf));
                simde_mm256_stream_si256((simde__m256i *)(dst + line + 4),
                                         simde_mm256_load_si256((const simde__m256i *)(buf + 4)));
#else
                for (int j = 0; j < 8; j += 2)
                    simde_mm_stream_si128((simde__m128i *)(dst + line + j), simde_mm_load_si128((const simde__m128i *)(buf + j)));
#endif
            } else {
                for (int64_t j = start[d]; j <= o; j++)
                    dst[j] = buf[(j + ph) & 7];
            }
        }
    }
}

static void flush_wc(uint64_t mask, const int64_t *off, uint64_t *dst, const uint64_t *wc, const int64_t *start)
{
    rs_flush_lines(mask, off, dst, wc, start);
    simde_mm_sfence(); /* the streaming stores become visible before the range counts as written */
}

#if defined(FB_KERNEL_AVX512)
const fb_sort_kernels fb_sort_kernels_avx512 = {
    .isa = FB_ISA_AVX512,
#elif defined(FB_KERNEL_AVX2)
const fb_sort_kernels fb_sort_kernels_avx2 = {
    .isa = FB_ISA_AVX2,
#else
const fb_sort_kernels fb_sort_kernels_base = {
    .isa = FB_ISA_BASE,
#endif
    .encode_32 = encode_32,
    .encode_64 = encode_64,
    .rs_encode = rs_encode,
    .rs_histogram = rs_histogram,
    .rs_scatter = scatter_wc,
    .rs_flush = flush_wc,
    .rs_sort = rs_sort_bucket,
    .rs_emit = rs_emit,
};
