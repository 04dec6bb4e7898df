/* simd_join.c - the SIMD join kernels, written once against simde and compiled once per target
 * (FB_KERNEL_BASE / FB_KERNEL_AVX2 / FB_KERNEL_AVX512, as simd_kernels.c):
 *   find_heads: vertical linear probing, one probe row per 64-bit lane: gather each lane's bucket
 *               (first-row word and key words), compare exactly, retire hits and empty buckets, advance
 *               the rest to the next bucket, until every lane is resolved.
 *   scatter:    the radix scatter of join_ref.c with whole-line non-temporal flushes.
 *   jr_scatter: the tuple join's radix scatter, straight to the partitions' cursors.
 *   jr_probe_sum: the tuple join's count/sum probe of a partition's table (AVX-512: 16 lanes of gathers).
 * Results equal join_ref.c's (the tests check every variant against it). */
#include "fb_join_internal.h"
#include "fb_simd_compat.h"

#include <simde/x86/avx2.h>
#include <string.h>

#if defined(FB_KERNEL_AVX512)
#define FB_JW512 1
#else
#define FB_JW512 0
#endif

#define FB_JINLINE static inline __attribute__((always_inline))

/* ================================ vector layer: 64-bit lanes, masks as lane bits ================ */
#if FB_JW512

typedef simde__m512i fb_jvec;
#define FB_JN 8

FB_JINLINE fb_jvec jv_load(const void *p) { return simde_mm512_loadu_si512(p); }
FB_JINLINE void jv_store(void *p, fb_jvec v) { simde_mm512_storeu_si512(p, v); }
FB_JINLINE fb_jvec jv_set(int64_t x) { return simde_mm512_set1_epi64(x); }
FB_JINLINE fb_jvec jv_add(fb_jvec a, fb_jvec b) { return simde_mm512_add_epi64(a, b); }
FB_JINLINE fb_jvec jv_and(fb_jvec a, fb_jvec b) { return simde_mm512_and_si512(a, b); }
FB_JINLINE fb_jvec jv_srl(fb_jvec a, int s) { return simde_mm512_srl_epi64(a, simde_mm_set_epi64x(0, s)); }
FB_JINLINE uint32_t jm_eq(fb_jvec a, fb_jvec b) { return simde_mm512_cmpeq_epi64_mask(a, b); }
FB_JINLINE fb_jvec jv_blend(uint32_t m, fb_jvec a, fb_jvec b) { return simde_mm512_mask_mov_epi64(b, (simde__mmask8)m, a); }
/* base[idx] in lanes of m, 0 elsewhere (no memory touched there) */
FB_JINLINE fb_jvec jv_gather(fb_jvec idx, uint32_t m, const uint64_t *base)
{
    return fb_mm512_mask_i64gather_epi64(simde_mm512_setzero_si512(), (simde__mmask8)m, idx, base);
}

#else /* 256-bit */

typedef simde__m256i fb_jvec;
#define FB_JN 4

FB_JINLINE fb_jvec jv_load(const void *p) { return simde_mm256_loadu_si256((const simde__m256i *)p); }
FB_JINLINE void jv_store(void *p, fb_jvec v) { simde_mm256_storeu_si256((simde__m256i *)p, v); }
FB_JINLINE fb_jvec jv_set(int64_t x) { return simde_mm256_set1_epi64x(x); }
FB_JINLINE fb_jvec jv_add(fb_jvec a, fb_jvec b) { return simde_mm256_add_epi64(a, b); }
FB_JINLINE fb_jvec jv_and(fb_jvec a, fb_jvec b) { return simde_mm256_and_si256(a, b); }
FB_JINLINE fb_jvec jv_srl(fb_jvec a, int s) { return simde_mm256_srl_epi64(a, simde_mm_set_epi64x(0, s)); }
FB_JINLINE uint32_t jm_eq(fb_jvec a, fb_jvec b)
{
    return (uint32_t)simde_mm256_movemask_pd(simde_mm256_castsi256_pd(simde_mm256_cmpeq_epi64(a, b)));
}
FB_JINLINE fb_jvec jm_vec(uint32_t bits)
{
    fb_jvec pow2 = simde_mm256_setr_epi64x(1, 2, 4, 8);
    return simde_mm256_cmpeq_epi64(simde_mm256_and_si256(simde_mm256_set1_epi64x(bits), pow2), pow2);
}
FB_JINLINE fb_jvec jv_blend(uint32_t m, fb_jvec a, fb_jvec b) { return simde_mm256_blendv_epi8(b, a, jm_vec(m)); }
FB_JINLINE fb_jvec jv_gather(fb_jvec idx, uint32_t m, const uint64_t *base)
{
    return simde_mm256_mask_i64gather_epi64(simde_mm256_setzero_si256(), (const int64_t *)base, idx, jm_vec(m), 8);
}

#endif /* width */

#define FB_JFULL ((uint32_t)((1u << FB_JN) - 1))

/* ================================ bucket search ================================================= */

static void find_heads(const uint64_t *buckets, int nk, int shift, const uint64_t *hashes, const int64_t *const *keys,
                       const uint8_t *live, int64_t n, uint64_t *heads)
{
    fb_jvec capmask = jv_set((int64_t)(~0ull >> shift)), one = jv_set(1), zero = jv_set(0);
    fb_jvec id_off = jv_set(nk);
    fb_jvec key_off[FB_JOIN_KEYS_MAX_INTERNAL];
    for (int c = 0; c < nk; c++)
        key_off[c] = jv_set(c);
    int64_t j = 0;
    for (; j + FB_JN <= n; j += FB_JN) {
        uint32_t todo = FB_JFULL;
        if (live) {
            todo = 0;
            for (int l = 0; l < FB_JN; l++)
                todo |= (uint32_t)(live[j + l] != 0) << l;
        }
        fb_jvec slot = jv_srl(jv_load(hashes + j), shift);
        fb_jvec k[FB_JOIN_KEYS_MAX_INTERNAL];
        for (int c = 0; c < nk; c++)
            k[c] = jv_load(keys[c] + j);
        fb_jvec res = zero;
        while (todo) {
            fb_jvec idx = jv_add(slot, slot); /* slot * (nk + 2) without a 64-bit multiply (AVX2 has none) */
            for (int c = 0; c < nk; c++)
                idx = jv_add(idx, slot);
            todo &= ~jm_eq(jv_gather(jv_add(idx, id_off), todo, buckets), zero);
            uint32_t hit = todo;
            for (int c = 0; c < nk && hit; c++)
                hit &= jm_eq(jv_gather(jv_add(idx, key_off[c]), hit, buckets), k[c]);
            res = jv_blend(hit, jv_add(slot, one), res);
            todo &= ~hit;
            slot = jv_and(jv_add(slot, one), capmask);
        }
        jv_store(heads + j, res);
    }
    for (; j < n; j++)
        heads[j] = live && !live[j] ? 0 : fb_join_find_one(buckets, nk, shift, hashes[j], keys, j);
}

/* ================================ radix scatter ================================================= */

/* One full, 64-byte aligned line of perm, written around the caches. */
FB_JINLINE void flush_line(uint32_t *dst, const uint32_t *line)
{
#if FB_JW512 && defined(FB_COMPAT_NATIVE_AVX512)
    _mm512_stream_si512((void *)dst, _mm512_load_si512((const void *)line));
#elif defined(FB_KERNEL_AVX2)
    simde_mm256_stream_si256((simde__m256i *)dst, simde_mm256_load_si256((const simde__m256i *)line));
    simde_mm256_stream_si256((simde__m256i *)(dst + 8), simde_mm256_load_si256((const simde__m256i *)(line + 8)));
#else
    memcpy(dst, line, 64);
#endif
}

static void scatter(const uint64_t *hashes, int64_t n, int shift, int bits, const int64_t *start, int64_t *pos,
                    uint32_t *wc, uint32_t *perm)
{
    uint64_t pmask = (1ull << bits) - 1;
    int64_t a0 = (int64_t)(((uintptr_t)perm >> 2) & 15);
    fb_jvec vmask = jv_set((int64_t)pmask);
    int64_t i = 0;
    uint64_t part[FB_JN];
    for (; i < n; i += FB_JN) {
        int64_t m = n - i < FB_JN ? n - i : FB_JN;
        if (m == FB_JN) {
            jv_store(part, jv_and(jv_srl(jv_load(hashes + i), shift), vmask));
        } else {
            for (int64_t l = 0; l < m; l++)
                part[l] = (hashes[i + l] >> shift) & pmask;
        }
        for (int64_t l = 0; l < m; l++) {
            uint64_t p = part[l];
            int64_t e = pos[p]++;
            int64_t s = (e + a0) & 15;
            uint32_t *line = wc + p * 16;
            line[s] = (uint32_t)(i + l);
            if (s == 15) {
                int64_t ls = e - 15;
                if (ls >= start[p])
                    flush_line(perm + ls, line);
                else
                    fb_join_wc_copy(line, start[p], e, a0, perm);
            }
        }
    }
    simde_mm_sfence();
    for (uint64_t p = 0; p <= pmask; p++) {
        int64_t e = pos[p] - 1;
        if (pos[p] > start[p] && ((e + a0) & 15) != 15) {
            int64_t ls = e - ((e + a0) & 15);
            fb_join_wc_copy(wc + p * 16, ls > start[p] ? ls : start[p], e, a0, perm);
        }
    }
}

/* ================================ tuple radix join ============================================== */

/* Rows per block of the radix scatter: partitions and tuples of a block first (plain loops the
 * compiler vectorizes), then the stores. */
#define FB_JR_BLOCK 256

/* Each tuple goes straight to its partition's cursor: no write-combining lines, so no unpredictable
 * "line full" branch (1 row in 8 took it, and its misses and the line flushes cost more than the
 * stores: 3.7-4.0 ns a row against 2.4-2.7 here, single thread, 2^8 partitions, Zen 4); the
 * "chunk full" branch is taken once per chunk. The cursors' lines stay in the L1 (one per partition);
 * each store prefetches its partition's next line for writing, thousands of rows before it is
 * needed: far more streams than the hardware prefetchers follow (2.0 ns a row at 2^8 and 2^9
 * partitions, 2.9 at 2^10, against 2.4-2.5, 2.8 and 4.4 without). */
static int jr_scatter(const uint32_t *keys, const uint32_t *pay, uint32_t pay_base, const uint8_t *valid, int64_t voff,
                      int64_t *row, int64_t n, int bits, uint64_t **cur, uint64_t *const *end, uint32_t *full)
{
    int shift = 32 - bits;
    uint32_t part[FB_JR_BLOCK];
    uint64_t tup[FB_JR_BLOCK];
    int64_t i = *row;
    while (i < n) {
        int m = n - i < FB_JR_BLOCK ? (int)(n - i) : FB_JR_BLOCK;
        for (int l = 0; l < m; l++)
            part[l] = (uint32_t)((uint64_t)fb_jr_hash(keys[i + l]) >> shift);
        if (pay) {
            for (int l = 0; l < m; l++)
                tup[l] = (uint64_t)keys[i + l] | (uint64_t)pay[i + l] << 32;
        } else {
            for (int l = 0; l < m; l++)
                tup[l] = (uint64_t)keys[i + l] | (uint64_t)(pay_base + (uint32_t)(i + l)) << 32;
        }
        for (int l = 0; l < m; l++) {
            if (valid && !((valid[(voff + i + l) >> 3] >> ((voff + i + l) & 7)) & 1))
                continue;
            uint32_t p = part[l];
            uint64_t *d = cur[p];
            *d++ = tup[l];
            __builtin_prefetch(d + 8, 1, 3); /* the partition's next line, for writing */
            cur[p] = d;
            if (__builtin_expect(d == end[p], 0)) {
                *full = p;
                *row = i + l + 1;
                return 1;
            }
        }
        i += m;
    }
    *row = n;
    return 0;
}

#if FB_JW512 && defined(FB_COMPAT_NATIVE_AVX512)
/* AVX-512 count/sum probe, in blocks of 16 probe tuples. Per block, vertically: the 16 keys are
 * hashed and their buckets computed in one register; keys, payloads and buckets go to small arrays.
 * Then per tuple: the bucket's bounds (off[b], off[b + 1]) in one 8-byte load (4 bytes from off16 for
 * tables of 16-bit bounds), its first 4 tuples in one unaligned 32-byte load from tup (the table has 1 tuple a bucket on average, FB_JR_LOAD_ONE, and
 * tup 8 readable entries past its end), one masked compare of the 4 keys against the broadcast probe
 * key, and three masked adds (match count, build payloads, probe payload): no branch but the rare
 * block with a bucket of more than 4 tuples, whose rest is checked scalar. Single thread, Zen 4, J1's
 * 16K-tuple partitions: 2.1-2.2 ns a probe tuple (16-bit bounds), against 2.5-2.9 for the former loop (hash, bounds
 * and counts per tuple in general registers, about 48 instructions a tuple, 64-byte loads of 8 tuples
 * at 2 a bucket: 7 in 8 of them span two cache lines) and 3.6 for the bounds gathered 16 at a time.
 * Exact sums: a lane adds at most one value (< 2^32 in magnitude) a tuple to each accumulator; the
 * lanes go to the 128-bit total every 2^24 tuples, and a long bucket's scalar rest at once. */
#define FB_JR_PB 16
/* bucket b's bounds: off[b], off[b + 1] (narrow: off16's) */
FB_JINLINE void jr_bounds(const fb_jr_table *t, int narrow, uint32_t b, uint32_t *p, uint32_t *len)
{
    if (narrow) {
        uint32_t pe;
        memcpy(&pe, t->off16 + b, 4);
        *p = pe & 0xFFFF;
        *len = (pe >> 16) - *p;
    } else {
        uint64_t pe;
        memcpy(&pe, t->off + b, 8);
        *p = (uint32_t)pe;
        *len = (uint32_t)(pe >> 32) - *p;
    }
}

FB_JINLINE void jr_probe_sum_avx512_impl(const fb_jr_table *t, int narrow, const uint64_t *tuples, int64_t n,
                                         int64_t *count, __int128 *sum)
{
    const uint64_t *tup = t->tup;
    int bits = t->bits, lb = t->lb;
    const __m512i low = _mm512_set1_epi64(0xFFFFFFFF);
    const __m512i mul = _mm512_set1_epi32((int)FB_JR_HASH_MUL);
    /* the 16 keys (even dwords) and payloads (odd dwords) of two registers of 8 tuples */
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m128i sl = _mm_cvtsi32_si128(bits), sr = _mm_cvtsi32_si128(32 - lb);
    const __m256i low4 = _mm256_set1_epi64x(0xFFFFFFFF), ones4 = _mm256_set1_epi64x(1);
    const __m256i slot = _mm256_setr_epi64x(0, 1, 2, 3);
    __m256i acc_b = _mm256_setzero_si256(), acc_p = _mm256_setzero_si256(), acc_n = _mm256_setzero_si256();
    __int128 wide = 0;
    int64_t extra_n = 0;
    uint32_t bk[FB_JR_PB] __attribute__((aligned(64)));
    uint64_t key[FB_JR_PB] __attribute__((aligned(64))), pv[FB_JR_PB] __attribute__((aligned(64)));
    int64_t since = 0;
    for (int64_t i = 0; i < n; i += FB_JR_PB) {
        int m = n - i < FB_JR_PB ? (int)(n - i) : FB_JR_PB;
        __mmask16 live = (__mmask16)_bzhi_u32(0xFFFFu, (unsigned)m);
        /* the probe tuples stream past the table: fetched around the L2, which the table fills */
        _mm_prefetch((const char *)(tuples + i + 256), _MM_HINT_NTA);
        _mm_prefetch((const char *)(tuples + i + 264), _MM_HINT_NTA);
        __m512i x0 = _mm512_maskz_loadu_epi64((__mmask8)live, tuples + i);
        __m512i x1 = _mm512_maskz_loadu_epi64((__mmask8)(live >> 8), tuples + i + 8);
        __m512i k16 = _mm512_permutex2var_epi32(x0, even, x1);
        __m512i b16 = _mm512_srl_epi32(_mm512_sll_epi32(_mm512_mullo_epi32(k16, mul), sl), sr);
        _mm512_store_si512((void *)bk, b16);
        _mm512_store_si512((void *)key, _mm512_and_si512(x0, low));
        _mm512_store_si512((void *)(key + 8), _mm512_and_si512(x1, low));
        _mm512_store_si512((void *)pv, _mm512_srai_epi64(x0, 32));
        _mm512_store_si512((void *)(pv + 8), _mm512_srai_epi64(x1, 32));
        uint32_t most = 0;
        for (int l = 0; l < m; l++) {
            uint32_t p, len;
            jr_bounds(t, narrow, bk[l], &p, &len);
            most = len > most ? len : most;
            /* the bucket's places: slot j < len (every slot of a bucket longer than 4) */
            __mmask8 in = _mm256_cmpgt_epu64_mask(_mm256_set1_epi64x(len), slot);
            __m256i line = _mm256_loadu_si256((const void *)(tup + p));
            __mmask8 h = _mm256_mask_cmpeq_epi64_mask(in, _mm256_and_si256(line, low4), _mm256_set1_epi64x((int64_t)key[l]));
            acc_n = _mm256_mask_add_epi64(acc_n, h, acc_n, ones4);
            acc_b = _mm256_mask_add_epi64(acc_b, h, acc_b, _mm256_srai_epi64(line, 32));
            acc_p = _mm256_mask_add_epi64(acc_p, h, acc_p, _mm256_set1_epi64x((int64_t)pv[l]));
        }
        unsigned lg = 0;
        if (__builtin_expect(most > 4, 0)) {
            for (int l = 0; l < m; l++) {
                uint32_t p, len;
                jr_bounds(t, narrow, bk[l], &p, &len);
                lg |= (unsigned)(len > 4) << l;
            }
        }
        if (__builtin_expect(lg != 0, 0)) {
            while (lg) {
                int l = __builtin_ctz(lg);
                lg &= lg - 1;
                uint32_t k = (uint32_t)key[l];
                uint32_t p, len;
                jr_bounds(t, narrow, bk[l], &p, &len);
                int64_t s2 = 0;
                for (uint32_t q = p + 4; q < p + len; q++) {
                    int64_t hq = (uint32_t)tup[q] == k;
                    extra_n += hq;
                    s2 += -hq & ((int64_t)(int32_t)(uint32_t)(tup[q] >> 32) + (int64_t)pv[l]);
                }
                wide += s2;
            }
        }
        since += FB_JR_PB;
        if (__builtin_expect(since >= ((int64_t)1 << 24), 0)) {
            int64_t lb_[4], lp_[4];
            _mm256_storeu_si256((void *)lb_, acc_b);
            _mm256_storeu_si256((void *)lp_, acc_p);
            for (int q = 0; q < 4; q++)
                wide += (__int128)lb_[q] + lp_[q];
            acc_b = acc_p = _mm256_setzero_si256();
            since = 0;
        }
    }
    int64_t lb_[4], lp_[4], ln_[4];
    _mm256_storeu_si256((void *)lb_, acc_b);
    _mm256_storeu_si256((void *)lp_, acc_p);
    _mm256_storeu_si256((void *)ln_, acc_n);
    for (int q = 0; q < 4; q++) {
        wide += (__int128)lb_[q] + lp_[q];
        extra_n += ln_[q];
    }
    *count += extra_n;
    *sum += wide;
}

static void jr_probe_sum_avx512(const fb_jr_table *t, const uint64_t *tuples, int64_t n, int64_t *count,
                                __int128 *sum)
{
    if (t->off16)
        jr_probe_sum_avx512_impl(t, 1, tuples, n, count, sum);
    else
        jr_probe_sum_avx512_impl(t, 0, tuples, n, count, sum);
}
#endif

/* Probes tuples against a partition's table: the first two places of the bucket are checked without
 * branches (at load ≤ 1/2 nearly every bucket has at most two tuples), a loop takes the rest. */
static void jr_probe_sum(const fb_jr_table *t, const uint64_t *tuples, int64_t n, int64_t *count, __int128 *sum)
{
    const uint32_t *off = t->off;
    const uint64_t *tup = t->tup;
    int bits = t->bits, lb = t->lb;
    int64_t cnt = 0, s = 0, s2 = 0;
    __int128 wide = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t k = (uint32_t)tuples[i];
        int64_t pv = (int32_t)(uint32_t)(tuples[i] >> 32);
        uint32_t b = fb_jr_bucket(fb_jr_hash(k), bits, lb);
        uint32_t p = off[b], e = off[b + 1];
        uint64_t x0 = tup[p], x1 = tup[p + 1];
        int64_t h0 = (p < e) & ((uint32_t)x0 == k), h1 = (p + 1 < e) & ((uint32_t)x1 == k);
        cnt += h0 + h1;
        s += (-h0 & ((int64_t)(int32_t)(uint32_t)(x0 >> 32) + pv)) + (-h1 & ((int64_t)(int32_t)(uint32_t)(x1 >> 32) + pv));
        if (__builtin_expect(e - p > 2, 0)) {
            for (p += 2; p < e; p++) {
                int64_t h = (uint32_t)tup[p] == k;
                cnt += h;
                s2 += -h & ((int64_t)(int32_t)(uint32_t)(tup[p] >> 32) + pv);
            }
            wide += s2; /* a long bucket may repeat one key many times: keep the sums exact */
            s2 = 0;
        }
        if (__builtin_expect((i & 0xFFFFFF) == 0xFFFFFF, 0)) {
            wide += s;
            s = 0;
        }
    }
    *count += cnt;
    *sum += wide + s;
}

/* ================================ the table ===================================================== */

#if defined(FB_KERNEL_AVX512)
const fb_join_kernels fb_join_kernels_avx512 = {
    .isa = FB_ISA_AVX512,
#elif defined(FB_KERNEL_AVX2)
const fb_join_kernels fb_join_kernels_avx2 = {
    .isa = FB_ISA_AVX2,
#else
const fb_join_kernels fb_join_kernels_base = {
    .isa = FB_ISA_BASE,
#endif
    .find_heads = find_heads,
    .scatter = scatter,
    .jr_scatter = jr_scatter,
#if FB_JW512 && defined(FB_COMPAT_NATIVE_AVX512)
    .jr_probe_sum = jr_probe_sum_avx512,
    .jr_load = FB_JR_LOAD_ONE,
    .jr_off16 = 1,
#else
    .jr_probe_sum = jr_probe_sum,
    .jr_load = FB_JR_LOAD_SPARSE,
#endif
};
