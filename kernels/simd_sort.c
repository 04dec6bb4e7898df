/* simd_sort.c - the SIMD sort kernels (key normalization: raw column bits to ordered unsigned keys),
 * written once against simde and compiled once per target (FB_KERNEL_BASE, FB_KERNEL_AVX2,
 * FB_KERNEL_AVX512; see simd_kernels.c). The pass is a few bitwise operations per lane, so all
 * variants use 256-bit vectors (the AVX-512 build gets the VEX/EVEX forms of them); tails take the
 * scalar encoders of fb_sort_internal.h. Results are bitwise identical to sort.c's scalar variant.
 * Also the record sort's SIMD parts: sorting networks and a merge network for small runs (512-bit
 * registers on AVX-512, 256-bit elsewhere; the AVX2 and AVX-512 bucket sorts end in them, the base
 * variant keeps the rank sort, faster there than 64-bit compares emulated on SSE2; and runs of
 * 65..128 whole-record keys end in two networks and rs_net_merge) and the write-combining scatter. */
#include "fb_sort_internal.h"

#include <string.h>

#include <simde/x86/avx2.h>
#include <simde/x86/avx512.h>

#define FB_INLINE static inline __attribute__((always_inline))

/* SN_UNROLL(n): the networks' loops fully unrolled, so their registers stay registers. Not in sanitizer
 * builds (FB_SANITIZED, CMakeLists.txt): there ASan's stack instrumentation of the unrolled networks made
 * this one file take 4-5 minutes to compile per ISA (4 s without), the longest step of CI; the code and
 * its checks are the same, only slower. */
#if defined(FB_SANITIZED)
#define SN_UNROLL(n)
#else
#define SN_PRAGMA(x) _Pragma(#x)
#define SN_UNROLL(n) SN_PRAGMA(GCC unroll n)
#endif

/* ---- sorting networks and merges of records (small runs) -------------------------------------------
 * Records compare as unsigned 64-bit integers; in registers they are held with the sign bit flipped so
 * that the signed min/max of the ISA order them. A run of n <= FB_RS_NET records is padded with
 * all-ones records to N = 8, 16, 32 or 64 (the next power of two), loaded into N / SN_W registers and
 * sorted by a bitonic network: compare-exchanges across registers are one min and one max, those within
 * a register a lane permutation, a min, a max and a blend. Stability: for lo > 0 (a 32-bit key above a
 * payload, row id or nothing) the low bits are replaced by the record's position in the run before the
 * network and the record is fetched back by that position after it, so equal keys keep their order and
 * the network's order is total; for lo = 0 the whole record is the key (equal records are identical). */
#if defined(FB_KERNEL_AVX512)
typedef simde__m512i sn_v;
#define SN_W 8
#define SN_LW 3
FB_INLINE sn_v sn_load(const uint64_t *p) { return simde_mm512_loadu_si512(p); }
FB_INLINE void sn_store(uint64_t *p, sn_v v) { simde_mm512_storeu_si512(p, v); }
FB_INLINE sn_v sn_flip(sn_v v) { return v; } /* AVX-512 has unsigned 64-bit min and max */
FB_INLINE sn_v sn_min(sn_v a, sn_v b) { return simde_mm512_min_epu64(a, b); }
FB_INLINE sn_v sn_max(sn_v a, sn_v b) { return simde_mm512_max_epu64(a, b); }
/* lane l of the result = lane l ^ j of v (index vectors from a constant table: one load, where the
 * compiler would assemble a set_epi64 of constants lane by lane) */
static const uint64_t sn_rev_idx[16] __attribute__((aligned(64))) = {7, 6, 5, 4, 3, 2, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7};
static const uint64_t sn_xor_idx[2][8] __attribute__((aligned(64))) = {{1, 0, 3, 2, 5, 4, 7, 6}, {2, 3, 0, 1, 6, 7, 4, 5}};
FB_INLINE sn_v sn_swap(sn_v v, int j)
{
    if (j == 4)
        return simde_mm512_shuffle_i64x2(v, v, SIMDE_MM_SHUFFLE(1, 0, 3, 2));
    return simde_mm512_permutexvar_epi64(simde_mm512_load_si512(sn_xor_idx[j == 2]), v);
}
/* lanes whose bit in m is set from a, the others from b */
FB_INLINE sn_v sn_blend(unsigned m, sn_v a, sn_v b) { return simde_mm512_mask_mov_epi64(b, (simde__mmask8)m, a); }
#else
typedef simde__m256i sn_v;
#define SN_W 4
#define SN_LW 2
FB_INLINE sn_v sn_load(const uint64_t *p) { return simde_mm256_loadu_si256((const simde__m256i *)p); }
FB_INLINE void sn_store(uint64_t *p, sn_v v) { simde_mm256_storeu_si256((simde__m256i *)p, v); }
FB_INLINE sn_v sn_flip(sn_v v) { return simde_mm256_xor_si256(v, simde_mm256_set1_epi64x(INT64_MIN)); }
FB_INLINE sn_v sn_min(sn_v a, sn_v b) { return simde_mm256_blendv_epi8(a, b, simde_mm256_cmpgt_epi64(a, b)); }
FB_INLINE sn_v sn_max(sn_v a, sn_v b) { return simde_mm256_blendv_epi8(b, a, simde_mm256_cmpgt_epi64(a, b)); }
FB_INLINE sn_v sn_swap(sn_v v, int j)
{
    if (j == 2)
        return simde_mm256_permute4x64_epi64(v, SIMDE_MM_SHUFFLE(1, 0, 3, 2));
    return simde_mm256_shuffle_epi32(v, SIMDE_MM_SHUFFLE(1, 0, 3, 2));
}
/* the 16 lane masks of 4 lanes, all-ones lanes where bit l of the index is set */
#define SN_M4(m) {-(int64_t)((m) & 1), -(int64_t)(((m) >> 1) & 1), -(int64_t)(((m) >> 2) & 1), -(int64_t)(((m) >> 3) & 1)}
static const int64_t sn_lanes[16][4] __attribute__((aligned(32))) = {
    SN_M4(0), SN_M4(1), SN_M4(2),  SN_M4(3),  SN_M4(4),  SN_M4(5),  SN_M4(6),  SN_M4(7),
    SN_M4(8), SN_M4(9), SN_M4(10), SN_M4(11), SN_M4(12), SN_M4(13), SN_M4(14), SN_M4(15)};
FB_INLINE sn_v sn_blend(unsigned m, sn_v a, sn_v b)
{
    return simde_mm256_blendv_epi8(b, a, simde_mm256_load_si256((const simde__m256i *)sn_lanes[m & 15]));
}
#endif

/* One step (k, j) of the bitonic sort of R registers: element i = r * SN_W + lane is exchanged with
 * i ^ j, the smaller going to the lower index where (i & k) == 0 (an ascending block), else the larger.
 * k = 2^lk, j = 2^lj; every loop has a constant trip count, so that the whole network unrolls into
 * straight-line code with constant masks and permutations. */
FB_INLINE void sn_step(sn_v *v, int R, int lk, int lj)
{
    int k = 1 << lk, j = 1 << lj;
    if (j >= SN_W) {
        int jr = j / SN_W;
SN_UNROLL(16)
        for (int r = 0; r < R; r++) {
            if (r & jr)
                continue;
            sn_v a = v[r], b = v[r | jr], mn = sn_min(a, b), mx = sn_max(a, b);
            int asc = ((r * SN_W) & k) == 0;
            v[r] = asc ? mn : mx;
            v[r | jr] = asc ? mx : mn;
        }
        return;
    }
SN_UNROLL(16)
    for (int r = 0; r < R; r++) {
        sn_v p = sn_swap(v[r], j), mn = sn_min(v[r], p), mx = sn_max(v[r], p);
        unsigned m = 0;
SN_UNROLL(8)
        for (int l = 0; l < SN_W; l++)
            m |= (unsigned)((((l & j) == 0) == (((r * SN_W + l) & k) == 0))) << l;
        v[r] = sn_blend(m, mn, mx);
    }
}

/* The bitonic merge of R = 2^lr registers holding a bitonic sequence (two sorted halves, the second
 * descending) into ascending order: the last steps (k = R * SN_W) of the sort. */
FB_INLINE void sn_merge_regs(sn_v *v, int R, int lr)
{
    int ln = lr + SN_LW;
SN_UNROLL(8)
    for (int lj = ln - 1; lj >= 0; lj--)
        sn_step(v, R, ln, lj);
}

/* Bitonic sort of the R = 2^lr registers of flipped records in v, ascending. */
FB_INLINE void sn_sort_regs(sn_v *v, int R, int lr)
{
    int ln = lr + SN_LW;
SN_UNROLL(8)
    for (int lk = 1; lk < ln; lk++)
SN_UNROLL(8)
        for (int lj = lk - 1; lj >= 0; lj--)
            sn_step(v, R, lk, lj);
    sn_merge_regs(v, R, lr);
}

/* Sorts x[0..n) (unsigned, SN_W <= n <= R * SN_W = 2^(lr + SN_LW), n > (R / 2) * SN_W) into y (may be
 * x). Whole registers are loaded and stored in place. The last, partial register (c = n - b records,
 * b = its first position) is loaded from x[n - SN_W .. n) (inside the run since n >= SN_W) and its lanes
 * moved down, the other lanes all-ones records, which sort last; it is stored as x[n - SN_W .. n)
 * again: the lanes before b come from the register before it, which was stored first with the same
 * values. Registers wholly past n are all-ones records. */
#if SN_W == 8
FB_INLINE void sn_run(const uint64_t *x, uint64_t *y, int64_t n, int R, int lr)
{
    sn_v v[64 / SN_W], ones = simde_mm512_set1_epi64(-1);
    sn_v iota = simde_mm512_load_si512(sn_rev_idx + 8);
    int64_t full = n / SN_W, c = n - full * SN_W;
SN_UNROLL(16)
    for (int r = 0; r < R; r++) {
        if (r < full) {
            v[r] = sn_load(x + r * SN_W);
        } else if (r == full && c) {
            sn_v w = sn_load(x + n - SN_W);
            sn_v idx = simde_mm512_add_epi64(iota, simde_mm512_set1_epi64(SN_W - c));
            v[r] = simde_mm512_mask_mov_epi64(ones, (simde__mmask8)((1u << c) - 1), simde_mm512_permutexvar_epi64(idx, w));
        } else {
            v[r] = ones;
        }
    }
    sn_sort_regs(v, R, lr);
SN_UNROLL(16)
    for (int r = 0; r < R; r++) {
        if (r < full) {
            sn_store(y + r * SN_W, v[r]);
        } else if (r == full && c && r > 0) { /* r > 0: n >= SN_W */
            /* lane l: l < SN_W - c: lane l + c of v[r - 1]; else lane l - (SN_W - c) of v[r] */
            sn_v idx = simde_mm512_add_epi64(iota, simde_mm512_set1_epi64(c));
            sn_store(y + n - SN_W, simde_mm512_permutex2var_epi64(v[r - 1], idx, v[r]));
        }
    }
}
#else
FB_INLINE void sn_run(const uint64_t *x, uint64_t *y, int64_t n, int R, int lr)
{
    sn_v v[64 / SN_W];
    uint64_t t[64] __attribute__((aligned(64)));
    int64_t full = n / SN_W;
SN_UNROLL(16)
    for (int r = 0; r < R; r++)
        sn_store(t + r * SN_W, simde_mm256_set1_epi64x(-1));
    memcpy(t + full * SN_W, x + full * SN_W, (size_t)(n - full * SN_W) * 8);
SN_UNROLL(16)
    for (int r = 0; r < R; r++)
        v[r] = sn_flip(r < full ? sn_load(x + r * SN_W) : sn_load(t + r * SN_W));
    sn_sort_regs(v, R, lr);
SN_UNROLL(16)
    for (int r = 0; r < R; r++) {
        if (r < full)
            sn_store(y + r * SN_W, sn_flip(v[r]));
        else
            sn_store(t + r * SN_W, sn_flip(v[r]));
    }
    memcpy(y + full * SN_W, t + full * SN_W, (size_t)(n - full * SN_W) * 8);
}
#endif

static void sn_sort_8(const uint64_t *x, uint64_t *y, int64_t n) { sn_run(x, y, n, 8 / SN_W, 3 - SN_LW); }
static void sn_sort_16(const uint64_t *x, uint64_t *y, int64_t n) { sn_run(x, y, n, 16 / SN_W, 4 - SN_LW); }
static void sn_sort_32(const uint64_t *x, uint64_t *y, int64_t n) { sn_run(x, y, n, 32 / SN_W, 5 - SN_LW); }
static void sn_sort_64(const uint64_t *x, uint64_t *y, int64_t n) { sn_run(x, y, n, 64 / SN_W, 6 - SN_LW); }

/* Stable sort of x[0..n) by bits [lo, 64) into y (distinct arrays), n <= FB_RS_NET, lo = 0 or lo >= 6. */
static void rs_net_sort(const uint64_t *x, uint64_t *y, int64_t n, int lo)
{
    if (n <= 1) {
        if (n == 1)
            y[0] = x[0];
        return;
    }
    uint64_t buf[FB_RS_NET] __attribute__((aligned(64)));
    uint64_t low = lo ? ((1ull << lo) - 1) : 0;
    const uint64_t *in = x;
    uint64_t *out = y;
    if (lo) {
        for (int64_t i = 0; i < n; i++)
            buf[i] = (x[i] & ~low) | (uint64_t)i;
        in = out = buf;
    }
    if (n < SN_W) { /* fewer records than lanes: through a buffer of one register */
        uint64_t t[SN_W] __attribute__((aligned(64)));
        memcpy(t, in, (size_t)n * 8);
        for (int64_t i = n; i < SN_W; i++)
            t[i] = ~0ull;
        sn_sort_8(t, t, SN_W);
        memcpy(out, t, (size_t)n * 8);
    } else if (n <= 8)
        sn_sort_8(in, out, n);
    else if (n <= 16)
        sn_sort_16(in, out, n);
    else if (n <= 32)
        sn_sort_32(in, out, n);
    else
        sn_sort_64(in, out, n);
    if (lo)
        for (int64_t i = 0; i < n; i++)
            y[i] = x[buf[i] & low];
}

/* Merge of two ascending runs a[0..na) and b[0..nb) (unsigned records, whole-record order; equal
 * records are identical in the callers, so ties need no rule) into out[0 .. na + nb): blocks of
 * SN_M records, one from each run, go through a bitonic merge network; the lower half is written, the
 * upper half stays and meets the next block of the run whose next record is smaller. The runs' tails
 * (under a block) are padded with all-ones records in a small buffer. */
#define SN_MR (16 / SN_W) /* registers per block */
#define SN_LMR (4 - SN_LW)
#define SN_M (SN_MR * SN_W)
FB_INLINE void sn_block(const uint64_t *p, int64_t n, int64_t i, sn_v *v)
{
    if (i + SN_M <= n) {
SN_UNROLL(4)
        for (int r = 0; r < SN_MR; r++)
            v[r] = sn_flip(sn_load(p + i + r * SN_W));
        return;
    }
    uint64_t t[SN_M];
    for (int64_t k = 0; k < SN_M; k++)
        t[k] = i + k < n ? p[i + k] : ~0ull;
SN_UNROLL(4)
    for (int r = 0; r < SN_MR; r++)
        v[r] = sn_flip(sn_load(t + r * SN_W));
}

/* v[0..SN_MR) ascending, w[0..SN_MR) ascending: v gets the lower SN_M records, w the upper, both ascending */
FB_INLINE void sn_merge2(sn_v *v, sn_v *w)
{
    sn_v u[2 * SN_MR];
SN_UNROLL(4)
    for (int r = 0; r < SN_MR; r++) {
        u[r] = v[r];
        u[2 * SN_MR - 1 - r] = w[r]; /* register order reversed; lanes reversed below */
    }
    /* reverse the lanes of the second half so that it descends: a bitonic sequence */
SN_UNROLL(4)
    for (int r = SN_MR; r < 2 * SN_MR; r++) {
#if SN_W == 8
        u[r] = simde_mm512_permutexvar_epi64(simde_mm512_load_si512(sn_rev_idx), u[r]);
#else
        u[r] = simde_mm256_permute4x64_epi64(u[r], SIMDE_MM_SHUFFLE(0, 1, 2, 3));
#endif
    }
    sn_merge_regs(u, 2 * SN_MR, SN_LMR + 1);
SN_UNROLL(4)
    for (int r = 0; r < SN_MR; r++) {
        v[r] = u[r];
        w[r] = u[SN_MR + r];
    }
}

static void rs_net_merge(const uint64_t *a, int64_t na, const uint64_t *b, int64_t nb, uint64_t *out)
{
    if (na == 0 || nb == 0) {
        if (na)
            memcpy(out, a, (size_t)na * 8);
        if (nb)
            memcpy(out, b, (size_t)nb * 8);
        return;
    }
    int64_t n = na + nb, ia = SN_M, ib = SN_M, o = 0;
    sn_v v[SN_MR], w[SN_MR];
    sn_block(a, na, 0, v);
    sn_block(b, nb, 0, w);
    for (;;) {
        sn_merge2(v, w);
        if (o + SN_M <= n) {
SN_UNROLL(4)
            for (int r = 0; r < SN_MR; r++)
                sn_store(out + o + r * SN_W, sn_flip(v[r]));
        } else {
            uint64_t t[SN_M];
            for (int r = 0; r < SN_MR; r++)
                sn_store(t + r * SN_W, sn_flip(v[r]));
            memcpy(out + o, t, (size_t)(n - o) * 8);
        }
        o += SN_M;
        if (o >= n)
            return;
        /* w holds the upper records; the next block comes from the run whose next record is smaller */
        int take_a = ib >= nb || (ia < na && a[ia] <= b[ib]);
        if (take_a) {
            sn_block(a, na, ia, v);
            ia += SN_M;
        } else {
            sn_block(b, nb, ib, v);
            ib += SN_M;
        }
    }
}

/* the small MSD buckets take the networks; an MSD level aims at about 2^RS_MSD_PER records a bucket */
#if defined(FB_KERNEL_AVX2) || defined(FB_KERNEL_AVX512)
#define RS_SMALL_SORT rs_net_sort
#define RS_MERGE rs_net_merge
#ifndef RS_SMALL_MAX
#define RS_SMALL_MAX 64
#endif
#ifndef RS_MSD_PER
#define RS_MSD_PER 5
#endif
#endif
#include "fb_sort_radix.h"

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
        if (((o + ph) & 7) != 7) {
            buf[(o + ph) & 7] = x;
            continue;
        }
        int64_t line = o - 7;
        if (line >= start[d]) {
            /* the line's last record goes from the register into the stream, not through buf: a load of
             * buf right after storing into it would wait for the store (no store-to-load forwarding
             * into a wider load) */
#if defined(FB_KERNEL_AVX2) || defined(FB_KERNEL_AVX512)
            simde__m256i hi = simde_mm256_blend_epi32(simde_mm256_load_si256((const simde__m256i *)(buf + 4)),
                                                      simde_mm256_set1_epi64x((int64_t)x), 0xC0);
            simde_mm256_stream_si256((simde__m256i *)(dst + line), simde_mm256_load_si256((const simde__m256i *)buf));
            simde_mm256_stream_si256((simde__m256i *)(dst + line + 4), hi);
#else
            for (int j = 0; j < 6; j += 2)
                simde_mm_stream_si128((simde__m128i *)(dst + line + j), simde_mm_load_si128((const simde__m128i *)(buf + j)));
            simde_mm_stream_si128((simde__m128i *)(dst + line + 6),
                                  simde_mm_unpacklo_epi64(simde_mm_load_si128((const simde__m128i *)(buf + 6)),
                                                          simde_mm_cvtsi64_si128((int64_t)x)));
#endif
        } else {
            buf[7] = x;
            for (int64_t j = start[d]; j <= o; j++)
                dst[j] = buf[(j + ph) & 7];
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
    .rs_small = rs_net_sort,
    .rs_merge = rs_net_merge,
    .rs_emit = rs_emit,
};
