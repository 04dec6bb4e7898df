/* simd_kernels.c - the SIMD kernel variants, written once against simde and compiled once per target:
 *   FB_KERNEL_BASE    no target flags: SSE2 on x86-64, NEON on AArch64 (simde splits 256-bit vectors)
 *   FB_KERNEL_AVX2    256-bit vectors, native AVX2 + BMI2
 *   FB_KERNEL_AVX512  512-bit vectors and mask registers, AVX-512 F/BW/DQ/VL
 * Only the small vector layer at the top knows the width; the kernels below it are shared.
 * Results are bitwise identical to ref_kernels.c (the tests check every variant against it).
 * Tails shorter than a vector, and morsels past 2^31 rows (32-bit gather indices are signed), take
 * the scalar path.
 */
#include "fb/fb_kernels.h"
#include "fb_kernel_table.h"
#include "fb_simd_compat.h"
#include "fb_vec.h"

#include <simde/x86/avx2.h>

#if defined(FB_KERNEL_AVX2) && defined(__BMI2__)
#include <immintrin.h> /* _pdep_u64/_pext_u64: scalar BMI2, not covered by simde */
#define FB_HAVE_BMI2 1
#endif


/* ================================ vector layer ================================================== */
#if FB_W512


FB_INLINE fb_vec v_mul64(fb_vec a, fb_vec b) { return simde_mm512_mullo_epi64(a, b); }
FB_INLINE fb_vec v_srl64_33(fb_vec a) { return simde_mm512_srli_epi64(a, 33); }
FB_INLINE fb_vec v_iota32(void)
{
    return simde_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
FB_INLINE fb_vec v_widen_s32(fb_half h) { return fb_mm512_cvtepi32_epi64(h); }
FB_INLINE fb_vec v_widen_u32(fb_half h) { return fb_mm512_cvtepu32_epi64(h); }
FB_INLINE fb_half v_lo_half(fb_vec v) { return simde_mm512_castsi512_si256(v); }
FB_INLINE fb_half v_hi_half(fb_vec v) { return simde_mm512_extracti64x4_epi64(v, 1); }

FB_INLINE fb_mask mk_from_bits64(uint32_t bits) { return bits; }
/* lanes with a >= b as unsigned 32-bit */
FB_INLINE uint32_t bits_ge_u32(fb_vec a, fb_vec b) { return simde_mm512_cmpge_epu32_mask(a, b); }
/* lanes with a > b as unsigned 64-bit */
FB_INLINE uint32_t bits_gt_u64(fb_vec a, fb_vec b) { return (uint32_t)(~simde_mm512_cmpge_epu64_mask(b, a)) & 0xFFu; }

FB_INLINE fb_vec v_gather32(fb_vec idx, const uint32_t *base) { return fb_mm512_i32gather_epi32(idx, base); }
FB_INLINE fb_vec v_gather64(fb_half idx, const uint64_t *base) { return fb_mm512_i32gather_epi64(idx, base); }
/* FB_N64 values of 32 bits at 64-bit ids; lanes with id -1 give 0 and touch no memory */
FB_INLINE fb_half h_gather32_ids(fb_vec ids, const uint32_t *base)
{
    simde__mmask8 live = (simde__mmask8)~simde_mm512_cmpeq_epi64_mask(ids, v_set64(-1));
    return fb_mm512_mask_i64gather_epi32(simde_mm256_setzero_si256(), live, ids, base);
}
FB_INLINE fb_vec v_gather64_ids(fb_vec ids, const uint64_t *base)
{
    simde__mmask8 live = (simde__mmask8)~simde_mm512_cmpeq_epi64_mask(ids, v_set64(-1));
    return fb_mm512_mask_i64gather_epi64(v_zero(), live, ids, base);
}

/* Appends the lanes of idx selected by m to out[cnt..]; returns the new count. */
/* Appends the lanes of idx selected by m to out[cnt..]; returns the new count. Compresses into a
 * register and stores all 16 lanes (the caller guarantees room): the memory form of vpcompressd is
 * microcoded on Zen 4 and measured 8x slower here (bench/results/kernels-*.txt). */
FB_INLINE int64_t sel_write(uint32_t *out, int64_t cnt, fb_vec idx, uint32_t m)
{
    v_store(out + cnt, simde_mm512_maskz_compress_epi32((simde__mmask16)m, idx));
    return cnt + __builtin_popcount(m);
}

#else /* 256-bit */


/* 64-bit low multiply from three 32x32->64 products (AVX2 has no vpmullq) */
FB_INLINE fb_vec v_mul64(fb_vec a, fb_vec b)
{
    fb_vec lo = simde_mm256_mul_epu32(a, b);
    fb_vec cross = simde_mm256_add_epi64(simde_mm256_mul_epu32(simde_mm256_srli_epi64(a, 32), b),
                                         simde_mm256_mul_epu32(a, simde_mm256_srli_epi64(b, 32)));
    return simde_mm256_add_epi64(lo, simde_mm256_slli_epi64(cross, 32));
}
FB_INLINE fb_vec v_srl64_33(fb_vec a) { return simde_mm256_srli_epi64(a, 33); }
FB_INLINE fb_vec v_iota32(void) { return simde_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
FB_INLINE fb_vec v_widen_s32(fb_half h) { return simde_mm256_cvtepi32_epi64(h); }
FB_INLINE fb_vec v_widen_u32(fb_half h) { return simde_mm256_cvtepu32_epi64(h); }
FB_INLINE fb_half v_lo_half(fb_vec v) { return simde_mm256_castsi256_si128(v); }
FB_INLINE fb_half v_hi_half(fb_vec v) { return simde_mm256_extracti128_si256(v, 1); }

FB_INLINE fb_mask mk_from_bits64(uint32_t bits)
{
    fb_vec pow2 = simde_mm256_setr_epi64x(1, 2, 4, 8);
    return simde_mm256_cmpeq_epi64(simde_mm256_and_si256(simde_mm256_set1_epi64x(bits), pow2), pow2);
}
FB_INLINE uint32_t bits_ge_u32(fb_vec a, fb_vec b)
{
    fb_vec s = v_set32(INT32_MIN);
    return ~mk_bits32(mk_gt32(v_xor(b, s), v_xor(a, s))) & 0xFFu;
}
FB_INLINE uint32_t bits_gt_u64(fb_vec a, fb_vec b)
{
    fb_vec s = v_set64(INT64_MIN);
    return mk_bits64(mk_gt64(v_xor(a, s), v_xor(b, s)));
}

FB_INLINE fb_vec v_gather32(fb_vec idx, const uint32_t *base)
{
    return simde_mm256_i32gather_epi32((const int32_t *)base, idx, 4);
}
FB_INLINE fb_vec v_gather64(fb_half idx, const uint64_t *base)
{
    return simde_mm256_i32gather_epi64((const int64_t *)base, idx, 8);
}
/* Lanes with id -1 read row 0 (callers guarantee length > 0) and are zeroed afterwards. */
FB_INLINE fb_half h_gather32_ids(fb_vec ids, const uint32_t *base)
{
    fb_mask dead = mk_eq64(ids, v_set64(-1));
    fb_half g = simde_mm256_i64gather_epi32((const int32_t *)base, simde_mm256_andnot_si256(dead, ids), 4);
    simde__m128i pow2 = simde_mm_setr_epi32(1, 2, 4, 8);
    simde__m128i live = simde_mm_cmpeq_epi32(
        simde_mm_and_si128(simde_mm_set1_epi32((int32_t)(~mk_bits64(dead) & 0xFu)), pow2), pow2);
    return simde_mm_and_si128(g, live);
}
FB_INLINE fb_vec v_gather64_ids(fb_vec ids, const uint64_t *base)
{
    fb_mask dead = mk_eq64(ids, v_set64(-1));
    fb_vec g = simde_mm256_i64gather_epi64((const int64_t *)base, simde_mm256_andnot_si256(dead, ids), 8);
    return simde_mm256_andnot_si256(dead, g);
}

FB_INLINE int64_t sel_write(uint32_t *out, int64_t cnt, fb_vec idx, uint32_t m)
{
#if defined(FB_HAVE_BMI2)
    /* AVX2 left-pack: pext picks the byte indices of the selected lanes, a permute moves them to
     * the front, and all 8 lanes are stored (the caller guarantees room for them). */
    uint64_t expanded = _pdep_u64(m, 0x0101010101010101ull) * 0xFF;
    uint64_t wanted = _pext_u64(0x0706050403020100ull, expanded);
    simde__m256i perm = simde_mm256_cvtepu8_epi32(simde_mm_cvtsi64_si128((int64_t)wanted));
    v_store(out + cnt, simde_mm256_permutevar8x32_epi32(idx, perm));
#else
    uint32_t lanes[8];
    v_store(lanes, idx);
    for (int j = 0; j < 8; j++) {
        out[cnt] = lanes[j];
        cnt += (m >> j) & 1;
    }
    return cnt;
#endif
    return cnt + __builtin_popcount(m);
}

#endif /* width */


/* Validity bits of rows idx[0..n) as the low n bits. */
FB_INLINE uint32_t gather_bits(fb_bits b, const uint32_t *idx, int n)
{
    if (!b.bits)
        return (uint32_t)((1ull << n) - 1);
    uint32_t w = 0;
    for (int j = 0; j < n; j++)
        w |= (uint32_t)fb_bit_get(b, idx[j]) << j;
    return w;
}

/* ================================ hashing ======================================================= */

FB_INLINE fb_vec hash_vec(fb_vec w)
{
    fb_vec x = v_add64(w, v_set64((int64_t)FB_HASH_SEED));
    x = v_xor(x, v_srl64_33(x));
    x = v_mul64(x, v_set64((int64_t)0xFF51AFD7ED558CCDull));
    x = v_xor(x, v_srl64_33(x));
    x = v_mul64(x, v_set64((int64_t)0xC4CEB9FE1A85EC53ull));
    return v_xor(x, v_srl64_33(x));
}

FB_INLINE void hash_store(fb_vec x, fb_bits valid, int64_t i, uint64_t *h, int combine)
{
    if (valid.bits)
        x = v_sel64(mk_from_bits64(load_bits(valid, i, FB_N64)), x, v_set64((int64_t)FB_HASH_NULL));
    if (combine)
        x = v_xor(v_mul64(v_load(h + i), v_set64((int64_t)FB_HASH_MUL)), x);
    v_store(h + i, x);
}

static void hash_tail(uint64_t w, fb_bits valid, int64_t i, uint64_t *h, int combine)
{
    uint64_t x = fb_bit_get(valid, i) ? fb_hash_u64(w) : FB_HASH_NULL;
    h[i] = combine ? h[i] * FB_HASH_MUL ^ x : x;
}

static void hash_32(const uint32_t *v, int is_unsigned, fb_bits valid, int64_t n, uint64_t *h, int combine)
{
    int64_t i = 0;
    if (is_unsigned)
        for (; i + FB_N64 <= n; i += FB_N64)
            hash_store(hash_vec(v_widen_u32(h_load(v + i))), valid, i, h, combine);
    else
        for (; i + FB_N64 <= n; i += FB_N64)
            hash_store(hash_vec(v_widen_s32(h_load(v + i))), valid, i, h, combine);
    for (; i < n; i++)
        hash_tail(is_unsigned ? (uint64_t)v[i] : (uint64_t)(int64_t)(int32_t)v[i], valid, i, h, combine);
}

static void hash_64(const uint64_t *v, fb_bits valid, int64_t n, uint64_t *h, int combine)
{
    int64_t i = 0;
    for (; i + FB_N64 <= n; i += FB_N64)
        hash_store(hash_vec(v_load(v + i)), valid, i, h, combine);
    for (; i < n; i++)
        hash_tail(v[i], valid, i, h, combine);
}

/* ================================ selection ===================================================== */

/* Ordered keys (fb_key_32/fb_key_64 in fb_kernel_table.h) of a vector of lanes. */
/* One loop for 32-bit lanes; kind and is_in are constants at each call site below, so every
 * combination is compiled into its own specialized loop. */
FB_INLINE int64_t select_32_loop(const fb_pred *p, fb_key_kind kind, int is_in, const uint32_t *v, fb_bits valid,
                                 int64_t length, const uint32_t *sel_in, int64_t n_in, uint32_t *out)
{
    fb_vec lo = v_set32((int32_t)p->lo), hi = v_set32((int32_t)p->hi);
    uint32_t flip = p->negate ? FB_FULL32 : 0;
    int64_t cnt = 0, j = 0;
    if (!sel_in) {
        fb_vec idx = v_iota32(), step = v_set32(FB_N32);
        for (; j + FB_N32 <= length; j += FB_N32) {
            uint32_t m = pred32(key32(v_load(v + j), kind), p, lo, hi, flip, is_in) & load_bits(valid, j, FB_N32);
            cnt = sel_write(out, cnt, idx, m);
            idx = v_add32(idx, step);
        }
        for (; j < length; j++)
            if (fb_bit_get(valid, j) && fb_pred_test(p, fb_key_32(v[j], kind)))
                out[cnt++] = (uint32_t)j;
        return cnt;
    }
    if (length <= INT32_MAX) {
        fb_vec len = v_set32((int32_t)length);
        for (; j + FB_N32 <= n_in; j += FB_N32) {
            fb_vec ix = v_load(sel_in + j);
            if (bits_ge_u32(ix, len))
                return -1;
            uint32_t m = pred32(key32(v_gather32(ix, v), kind), p, lo, hi, flip, is_in) &
                         gather_bits(valid, sel_in + j, FB_N32);
            cnt = sel_write(out, cnt, ix, m);
        }
    }
    for (; j < n_in; j++) {
        uint32_t i = sel_in[j];
        if (i >= length)
            return -1;
        if (fb_bit_get(valid, i) && fb_pred_test(p, fb_key_32(v[i], kind)))
            out[cnt++] = i;
    }
    return cnt;
}

FB_INLINE int64_t select_64_loop(const fb_pred *p, fb_key_kind kind, int is_in, const uint64_t *v, fb_bits valid,
                                 int64_t length, const uint32_t *sel_in, int64_t n_in, uint32_t *out)
{
    fb_vec lo = v_set64(p->lo), hi = v_set64(p->hi);
    uint32_t flip = p->negate ? FB_FULL64 : 0;
    int64_t cnt = 0, j = 0;
    if (!sel_in) {
        fb_vec idx = v_iota32(), step = v_set32(FB_N32);
        for (; j + FB_N32 <= length; j += FB_N32) {
            uint32_t m = pred64(key64(v_load(v + j), kind), p, lo, hi, flip, is_in) |
                         pred64(key64(v_load(v + j + FB_N64), kind), p, lo, hi, flip, is_in) << FB_N64;
            cnt = sel_write(out, cnt, idx, m & load_bits(valid, j, FB_N32));
            idx = v_add32(idx, step);
        }
        for (; j < length; j++)
            if (fb_bit_get(valid, j) && fb_pred_test(p, fb_key_64(v[j], kind)))
                out[cnt++] = (uint32_t)j;
        return cnt;
    }
    if (length <= INT32_MAX) {
        fb_vec len = v_set32((int32_t)length);
        for (; j + FB_N32 <= n_in; j += FB_N32) {
            fb_vec ix = v_load(sel_in + j);
            if (bits_ge_u32(ix, len))
                return -1;
            uint32_t m = pred64(key64(v_gather64(v_lo_half(ix), v), kind), p, lo, hi, flip, is_in) |
                         pred64(key64(v_gather64(v_hi_half(ix), v), kind), p, lo, hi, flip, is_in) << FB_N64;
            cnt = sel_write(out, cnt, ix, m & gather_bits(valid, sel_in + j, FB_N32));
        }
    }
    for (; j < n_in; j++) {
        uint32_t i = sel_in[j];
        if (i >= length)
            return -1;
        if (fb_bit_get(valid, i) && fb_pred_test(p, fb_key_64(v[i], kind)))
            out[cnt++] = i;
    }
    return cnt;
}

static int64_t select_32(const fb_pred *p, const uint32_t *v, fb_bits valid, int64_t length, const uint32_t *sel_in,
                         int64_t n_in, uint32_t *out)
{
    int in = p->kind == FB_PRED_IN;
    switch (p->key) {
    case FB_KEY_UNSIGNED:
        return in ? select_32_loop(p, FB_KEY_UNSIGNED, 1, v, valid, length, sel_in, n_in, out)
                  : select_32_loop(p, FB_KEY_UNSIGNED, 0, v, valid, length, sel_in, n_in, out);
    case FB_KEY_FLOAT:
        return in ? select_32_loop(p, FB_KEY_FLOAT, 1, v, valid, length, sel_in, n_in, out)
                  : select_32_loop(p, FB_KEY_FLOAT, 0, v, valid, length, sel_in, n_in, out);
    default:
        return in ? select_32_loop(p, FB_KEY_SIGNED, 1, v, valid, length, sel_in, n_in, out)
                  : select_32_loop(p, FB_KEY_SIGNED, 0, v, valid, length, sel_in, n_in, out);
    }
}

static int64_t select_64(const fb_pred *p, const uint64_t *v, fb_bits valid, int64_t length, const uint32_t *sel_in,
                         int64_t n_in, uint32_t *out)
{
    int in = p->kind == FB_PRED_IN;
    switch (p->key) {
    case FB_KEY_UNSIGNED:
        return in ? select_64_loop(p, FB_KEY_UNSIGNED, 1, v, valid, length, sel_in, n_in, out)
                  : select_64_loop(p, FB_KEY_UNSIGNED, 0, v, valid, length, sel_in, n_in, out);
    case FB_KEY_FLOAT:
        return in ? select_64_loop(p, FB_KEY_FLOAT, 1, v, valid, length, sel_in, n_in, out)
                  : select_64_loop(p, FB_KEY_FLOAT, 0, v, valid, length, sel_in, n_in, out);
    default:
        return in ? select_64_loop(p, FB_KEY_SIGNED, 1, v, valid, length, sel_in, n_in, out)
                  : select_64_loop(p, FB_KEY_SIGNED, 0, v, valid, length, sel_in, n_in, out);
    }
}

/* ================================ gather (compaction: fb_compact_*_scalar) ====================== */

/* ids must lie in [-1, length): (uint64)(id + 1) ≤ length */
FB_INLINE int ids_out_of_range(fb_vec ids, fb_vec len)
{
    return bits_gt_u64(v_add64(ids, v_set64(1)), len) != 0;
}

static int gather_32(const uint32_t *v, int64_t length, const int64_t *ids, int64_t n, uint32_t *out)
{
    int64_t j = 0;
    if (length > 0) {
        fb_vec len = v_set64(length);
        for (; j + FB_N64 <= n; j += FB_N64) {
            fb_vec id = v_load(ids + j);
            if (ids_out_of_range(id, len))
                return -1;
            h_store(out + j, h_gather32_ids(id, v));
        }
    }
    for (; j < n; j++) {
        if (ids[j] < -1 || ids[j] >= length)
            return -1;
        out[j] = ids[j] < 0 ? 0 : v[ids[j]];
    }
    return 0;
}

static int gather_64(const uint64_t *v, int64_t length, const int64_t *ids, int64_t n, uint64_t *out)
{
    int64_t j = 0;
    if (length > 0) {
        fb_vec len = v_set64(length);
        for (; j + FB_N64 <= n; j += FB_N64) {
            fb_vec id = v_load(ids + j);
            if (ids_out_of_range(id, len))
                return -1;
            v_store(out + j, v_gather64_ids(id, v));
        }
    }
    for (; j < n; j++) {
        if (ids[j] < -1 || ids[j] >= length)
            return -1;
        out[j] = ids[j] < 0 ? 0 : v[ids[j]];
    }
    return 0;
}

/* ================================ the table ===================================================== */

#if defined(FB_KERNEL_AVX512)
const fb_kernel_table fb_kernel_table_avx512 = {
    .isa = FB_ISA_AVX512,
#elif defined(FB_KERNEL_AVX2)
const fb_kernel_table fb_kernel_table_avx2 = {
    .isa = FB_ISA_AVX2,
#else
const fb_kernel_table fb_kernel_table_base = {
    .isa = FB_ISA_BASE,
#endif
    .hash_32 = hash_32,
    .hash_64 = hash_64,
    .select_32 = select_32,
    .select_64 = select_64,
    .compact_32 = fb_compact_32_scalar, /* plain loads beat gathers here: see fb_kernel_table.h */
    .compact_64 = fb_compact_64_scalar,
    .gather_32 = gather_32,
    .gather_64 = gather_64,
};
