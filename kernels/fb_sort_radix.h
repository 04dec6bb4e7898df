/* fb_sort_radix.h - the fixed-width record sort (fb_sort_internal.h, fb_rs_*): encoding rows into
 * uint64 records, histograms, the plain stable scatter, the cache-resident MSD radix sort of one bucket
 * (digit width from the bucket's size, common leading bits skipped via the bucket's key range,
 * a branch-free rank sort up to FB_RS_SMALL records, or the includer's sorting network) and decoding. Static inline so that sort.c (the scalar
 * variant) and simd_sort.c (compiled per ISA, which replaces the scatter by a write-combining one)
 * share one text and each gets it compiled for its own target. */
#ifndef FB_SORT_RADIX_H
#define FB_SORT_RADIX_H

#include <stdint.h>
#include <string.h>

#include "fb_sort_internal.h"

#define FB_RS_INLINE static inline __attribute__((always_inline))

/* The ordered key of row i (before the shift by lo), for a constant key width. */
FB_RS_INLINE uint64_t rs_key_w(const fb_rs_spec *s, int64_t i, int w, int sgn)
{
    uint64_t raw;
    switch (w) {
    case 1: raw = sgn ? (uint64_t)(int64_t)((const int8_t *)s->key)[i] : ((const uint8_t *)s->key)[i]; break;
    case 2: raw = sgn ? (uint64_t)(int64_t)((const int16_t *)s->key)[i] : ((const uint16_t *)s->key)[i]; break;
    case 4: raw = sgn ? (uint64_t)(int64_t)((const int32_t *)s->key)[i] : ((const uint32_t *)s->key)[i]; break;
    default: raw = ((const uint64_t *)s->key)[i]; break;
    }
    return (raw ^ s->xor_) & s->key_mask;
}

FB_RS_INLINE uint64_t rs_low(const fb_rs_spec *s, int64_t i)
{
    if (!s->pay)
        return s->rowid ? (uint64_t)(uint32_t)i : 0;
    switch (s->pay_width) {
    case 1: return ((const uint8_t *)s->pay)[i];
    case 2: return ((const uint16_t *)s->pay)[i];
    default: return ((const uint32_t *)s->pay)[i];
    }
}

FB_RS_INLINE void rs_encode_w(const fb_rs_spec *s, int64_t begin, int64_t end, uint64_t *out, uint64_t *kmin,
                              uint64_t *kmax, int w, int sgn)
{
    uint64_t mn = ~0ull, mx = 0;
    int lo = s->lo;
    if (s->key_float) {
        uint32_t flip = (uint32_t)(s->xor_ ^ 0x80000000u);
        for (int64_t i = begin; i < end; i++) {
            uint64_t k = fb_sort_encode_32(((const uint32_t *)s->key)[i], FB_KEY_FLOAT, flip);
            mn = k < mn ? k : mn;
            mx = k > mx ? k : mx;
            out[i - begin] = (k << 32) | (uint32_t)i;
        }
    } else if (lo == 0) {
        for (int64_t i = begin; i < end; i++) {
            uint64_t k = rs_key_w(s, i, w, sgn);
            mn = k < mn ? k : mn;
            mx = k > mx ? k : mx;
            out[i - begin] = k;
        }
    } else if (s->pay && s->pay_width == 4) {
        const uint32_t *p = s->pay;
        for (int64_t i = begin; i < end; i++) {
            uint64_t k = rs_key_w(s, i, w, sgn);
            mn = k < mn ? k : mn;
            mx = k > mx ? k : mx;
            out[i - begin] = (k << 32) | p[i];
        }
    } else {
        for (int64_t i = begin; i < end; i++) {
            uint64_t k = rs_key_w(s, i, w, sgn);
            mn = k < mn ? k : mn;
            mx = k > mx ? k : mx;
            out[i - begin] = (k << 32) | rs_low(s, i);
        }
    }
    *kmin = mn;
    *kmax = mx;
}

static inline void rs_encode(const fb_rs_spec *s, int64_t begin, int64_t end, uint64_t *out, uint64_t *kmin,
                             uint64_t *kmax)
{
    switch (s->key_width * 2 + (s->key_signed != 0)) {
    case 2: rs_encode_w(s, begin, end, out, kmin, kmax, 1, 0); break;
    case 3: rs_encode_w(s, begin, end, out, kmin, kmax, 1, 1); break;
    case 4: rs_encode_w(s, begin, end, out, kmin, kmax, 2, 0); break;
    case 5: rs_encode_w(s, begin, end, out, kmin, kmax, 2, 1); break;
    case 8: rs_encode_w(s, begin, end, out, kmin, kmax, 4, 0); break;
    case 9: rs_encode_w(s, begin, end, out, kmin, kmax, 4, 1); break;
    default: rs_encode_w(s, begin, end, out, kmin, kmax, 8, 0); break;
    }
}

static inline void rs_histogram(const uint64_t *a, int64_t n, int shift, uint64_t mask, uint32_t *hist)
{
    for (int64_t i = 0; i < n; i++)
        hist[(a[i] >> shift) & mask]++;
}

static inline void rs_scatter_plain(const uint64_t *a, int64_t n, int shift, uint64_t mask, int64_t *off,
                                    uint64_t *dst, uint64_t *wc, const int64_t *start)
{
    (void)wc;
    (void)start;
    for (int64_t i = 0; i < n; i++) {
        uint64_t x = a[i];
        dst[off[(x >> shift) & mask]++] = x;
    }
}

static inline void rs_flush_plain(uint64_t mask, const int64_t *off, uint64_t *dst, const uint64_t *wc,
                                  const int64_t *start)
{
    (void)mask, (void)off, (void)dst, (void)wc, (void)start;
}

/* The records a write-combining scatter still holds: the partial last line of each digit. */
static inline void rs_flush_lines(uint64_t mask, const int64_t *off, uint64_t *dst, const uint64_t *wc,
                                  const int64_t *start)
{
    if ((uintptr_t)dst & 7)
        return; /* the scatter stored every record itself */
    int64_t ph = (int64_t)(((uintptr_t)dst >> 3) & 7);
    for (uint64_t d = 0; d <= mask; d++) {
        int64_t o = off[d];
        if ((o + ph) & 7) {
            int64_t j = o - ((o + ph) & 7); /* the first position of o's line */
            j = j < start[d] ? start[d] : j;
            for (; j < o; j++)
                dst[j] = wc[d * 8 + ((j + ph) & 7)];
        }
    }
}

/* Stable insertion sort by bits [lo, 64). */
static inline void rs_insertion(uint64_t *a, int64_t n, int lo)
{
    for (int64_t i = 1; i < n; i++) {
        uint64_t x = a[i], k = x >> lo;
        int64_t j = i;
        while (j > 0 && (a[j - 1] >> lo) > k) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

/* Stable sort of x[0..n) by bits [lo, 64) into y (x and y distinct): each record goes to its rank,
 * the number of records before it in the order (smaller keys, equal keys from earlier positions).
 * O(n^2) comparisons, but without branches and in loops the compiler vectorizes: for the few records
 * of a final MSD bucket it beats insertion sort, whose every step is a mispredicted branch. */
static inline void rs_rank_sort(const uint64_t *x, uint64_t *y, int64_t n, int lo)
{
    for (int64_t i = 0; i < n; i++) {
        uint64_t k = x[i] >> lo;
        int64_t r = 0;
        for (int64_t j = 0; j < i; j++)
            r += (x[j] >> lo) <= k;
        for (int64_t j = i + 1; j < n; j++)
            r += (x[j] >> lo) < k;
        y[r] = x[i];
    }
}

/* Stable merge of two ascending runs (whole-record order) into out: the scalar text (sort.c's variant
 * and the tests' reference); simd_sort.c has a merge network. */
static inline void rs_merge_scalar(const uint64_t *a, int64_t na, const uint64_t *b, int64_t nb, uint64_t *out)
{
    int64_t i = 0, j = 0, o = 0;
    while (i < na && j < nb)
        out[o++] = b[j] < a[i] ? b[j++] : a[i++];
    while (i < na)
        out[o++] = a[i++];
    while (j < nb)
        out[o++] = b[j++];
}

/* The sort of the smallest MSD buckets: up to RS_SMALL_MAX records, from x into y, stable by bits
 * [lo, 64). A file that includes this header may name its own (simd_sort.c: sorting networks) and the
 * digit width that suits it: an MSD level makes buckets of about 2^RS_MSD_PER records. */
#ifndef RS_SMALL_SORT
#define RS_SMALL_SORT rs_rank_sort
#define RS_SMALL_MAX FB_RS_SMALL
#define RS_MSD_PER 3
#endif
#ifndef RS_MSD_MAXB
#define RS_MSD_MAXB 11
#endif

/* MSD radix sort of x[0..n) by bits [lo, 64), stable; the result ends in y when to_y, else in x (the
 * other array is scratch). Each level skips the bits all records share (from their key range), takes
 * up to FB_RS_MAX_BITS of the rest (fewer for small n, about 8 records a digit), scatters x -> y and
 * recurses on each digit's range with the roles swapped. Depth ≤ 64 / 4 + 1 levels. */
static void rs_msd(uint64_t *x, uint64_t *y, int64_t n, int lo, int to_y);

/* rs_msd once the range [mn, mx] of the records' keys (bits [lo, 64)) is known, n > RS_SMALL_MAX. */
static void rs_msd_range(uint64_t *x, uint64_t *y, int64_t n, int lo, int to_y, uint64_t mn, uint64_t mx)
{
    if (mn == mx) {
        if (to_y)
            memcpy(y, x, (size_t)n * 8);
        return;
    }
    int hb = 64 - __builtin_clzll(mn ^ mx);
    int b = (64 - __builtin_clzll((unsigned long long)n)) - RS_MSD_PER;
    b = b < 4 ? 4 : b > RS_MSD_MAXB ? RS_MSD_MAXB : b;
    b = b > hb ? hb : b;
    int shift = lo + hb - b;
    uint64_t mask = (1ull << b) - 1;
    uint32_t cnt[1 << RS_MSD_MAXB];
    uint32_t off[1 << RS_MSD_MAXB];
    memset(cnt, 0, (size_t)(mask + 1) * sizeof cnt[0]);
    rs_histogram(x, n, shift, mask, cnt);
    uint32_t sum = 0;
    for (uint64_t d = 0; d <= mask; d++) {
        off[d] = sum;
        sum += cnt[d];
    }
    for (int64_t i = 0; i < n; i++) {
        uint64_t v = x[i];
        y[off[(v >> shift) & mask]++] = v;
    }
    int64_t pos = 0;
    for (uint64_t d = 0; d <= mask; d++) {
        int64_t c = cnt[d];
        if (c == 1) {
            if (!to_y)
                x[pos] = y[pos];
        } else if (c > 1) {
            rs_msd(y + pos, x + pos, c, lo, !to_y);
        }
        pos += c;
    }
}

static void rs_msd(uint64_t *x, uint64_t *y, int64_t n, int lo, int to_y)
{
    if (n <= RS_SMALL_MAX) {
        RS_SMALL_SORT(x, y, n, lo);
        if (!to_y)
            memcpy(x, y, (size_t)n * 8);
        return;
    }
#ifdef RS_MERGE
    /* whole records as keys (lo = 0: equal records are identical, so any merge is stable): two small
     * sorts and their merge beat an MSD level here (AVX-512, 96..128 records: ~0.3 against ~0.73 us) */
    if (lo == 0 && n <= 2 * RS_SMALL_MAX) {
        int64_t h = n / 2;
        RS_SMALL_SORT(x, y, h, 0);
        RS_SMALL_SORT(x + h, y + h, n - h, 0);
        RS_MERGE(y, h, y + h, n - h, x);
        if (to_y)
            memcpy(y, x, (size_t)n * 8);
        return;
    }
#endif
    uint64_t mn = ~0ull, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t k = x[i] >> lo;
        mn = k < mn ? k : mn;
        mx = k > mx ? k : mx;
    }
    rs_msd_range(x, y, n, lo, to_y, mn, mx);
}

/* Stable sort of a bucket; returns a or t, whichever holds the result. A bucket whose keys differ only
 * in their low 24 bits or fewer (a 32-bit key after the top-level partition) takes two LSD passes of
 * at most 12 bits (both histograms in one read), which beats an MSD level and the rank sorts after it
 * (16Mi int32 keys + payload: 0.225 -> 0.17-0.20 s of CPU on the development machine);
 * otherwise the MSD sort, its result in t (the caller's scratch, reused bucket after bucket, so it
 * stays in cache). */
static inline uint64_t *rs_sort_bucket(uint64_t *a, uint64_t *t, int64_t n, int lo)
{
    if (n > 4 * RS_SMALL_MAX) {
        uint64_t mn = ~0ull, mx = 0;
        for (int64_t i = 0; i < n; i++) {
            uint64_t k = a[i] >> lo;
            mn = k < mn ? k : mn;
            mx = k > mx ? k : mx;
        }
        if (mn == mx)
            return a;
        int hb = 64 - __builtin_clzll(mn ^ mx);
        if (hb <= 24) {
            int b0 = hb / 2, b1 = hb - b0;
            uint64_t m0 = (1ull << b0) - 1, m1 = (1ull << b1) - 1;
            int s0 = lo, s1 = lo + b0;
            uint32_t c0[1 << 12], c1[1 << 12];
            memset(c0, 0, (size_t)(m0 + 1) * 4);
            memset(c1, 0, (size_t)(m1 + 1) * 4);
            for (int64_t i = 0; i < n; i++) {
                uint64_t x = a[i];
                c0[(x >> s0) & m0]++;
                c1[(x >> s1) & m1]++;
            }
            uint32_t p0 = 0, p1 = 0;
            for (uint64_t d = 0; d <= m0; d++) {
                uint32_t c = c0[d];
                c0[d] = p0;
                p0 += c;
            }
            for (uint64_t d = 0; d <= m1; d++) {
                uint32_t c = c1[d];
                c1[d] = p1;
                p1 += c;
            }
            for (int64_t i = 0; i < n; i++) {
                uint64_t x = a[i];
                t[c0[(x >> s0) & m0]++] = x;
            }
            for (int64_t i = 0; i < n; i++) {
                uint64_t x = t[i];
                a[c1[(x >> s1) & m1]++] = x;
            }
            return a;
        }
        rs_msd_range(a, t, n, lo, 1, mn, mx);
        return t;
    }
    rs_msd(a, t, n, lo, 1);
    return t;
}

static inline void rs_emit(const fb_rs_spec *s, const uint64_t *rec, int64_t n, int64_t pos, const fb_rs_out *out)
{
    if (out->row_ids) {
        uint32_t *r = out->row_ids + pos;
        for (int64_t i = 0; i < n; i++)
            r[i] = (uint32_t)rec[i];
        return;
    }
    if (out->key) {
        uint64_t x = s->xor_;
        int lo = s->lo;
        switch (s->key_width) {
        case 1: {
            uint8_t *k = (uint8_t *)out->key + pos;
            for (int64_t i = 0; i < n; i++)
                k[i] = (uint8_t)((rec[i] >> lo) ^ x);
            break;
        }
        case 2: {
            uint16_t *k = (uint16_t *)out->key + pos;
            for (int64_t i = 0; i < n; i++)
                k[i] = (uint16_t)((rec[i] >> lo) ^ x);
            break;
        }
        case 4: {
            uint32_t *k = (uint32_t *)out->key + pos;
            for (int64_t i = 0; i < n; i++)
                k[i] = (uint32_t)((rec[i] >> 32) ^ x);
            break;
        }
        default: {
            uint64_t *k = (uint64_t *)out->key + pos;
            for (int64_t i = 0; i < n; i++)
                k[i] = rec[i] ^ x;
            break;
        }
        }
    }
    if (out->pay) {
        switch (s->pay_width) {
        case 1: {
            uint8_t *p = (uint8_t *)out->pay + pos;
            for (int64_t i = 0; i < n; i++)
                p[i] = (uint8_t)rec[i];
            break;
        }
        case 2: {
            uint16_t *p = (uint16_t *)out->pay + pos;
            for (int64_t i = 0; i < n; i++)
                p[i] = (uint16_t)rec[i];
            break;
        }
        default: {
            uint32_t *p = (uint32_t *)out->pay + pos;
            for (int64_t i = 0; i < n; i++)
                p[i] = (uint32_t)rec[i];
            break;
        }
        }
    }
}

#endif /* FB_SORT_RADIX_H */
