/* join_radix.c - the parts of the runtime's tuple join that every CPU variant shares: building a
 * partition's in-cache table (a counting sort of its build tuples by bucket), the resumable pair
 * output of a partition, and the probes of the shared (non-partitioned) table with group prefetching.
 * The per-variant loops (radix scatter, count/sum probe) are in join_ref.c and simd_join.c. */
#include "fb_join_internal.h"

#include <string.h>

int fb_jr_log2_buckets(int64_t n, int bits, int load)
{
    int lb = 1;
    while (lb < 32 - bits && ((int64_t)1 << (lb + load + 1)) < 2 * n)
        lb++;
    return lb;
}

/* The counting sort of fb_jr_build/fb_jr_build16: bounds of 16 bits (narrow) or 32 bits in off. */
static inline __attribute__((always_inline)) void jr_build(fb_jr_table *t, const uint64_t *const *seg,
                                                           const int64_t *seg_n, int nseg, int bits, int lb,
                                                           int narrow, void *off, uint64_t *tup)
{
    uint32_t nb = (uint32_t)1 << lb;
    uint32_t *off32 = off;
    uint16_t *off16 = off;
    memset(off, 0, ((size_t)nb + 2) * (narrow ? 2 : 4));
    for (int s = 0; s < nseg; s++) {
        const uint64_t *tp = seg[s];
        for (int64_t i = 0; i < seg_n[s]; i++) {
            uint32_t b = fb_jr_bucket(fb_jr_hash((uint32_t)tp[i]), bits, lb) + 2;
            if (!narrow)
                off32[b]++;
            else
                off16[b]++;
        }
    }
    /* prefix sums with the running total in a register (not re-read from the entry just stored) */
    uint32_t run = 0;
    for (uint32_t b = 2; b <= nb + 1; b++) {
        if (!narrow) {
            run += off32[b];
            off32[b] = run;
        } else {
            run += off16[b];
            off16[b] = (uint16_t)run;
        }
    }
    /* off[b + 1] is now bucket b's start; used as its cursor it ends as bucket b + 1's start */
    for (int s = 0; s < nseg; s++) {
        const uint64_t *tp = seg[s];
        for (int64_t i = 0; i < seg_n[s]; i++) {
            uint64_t x = tp[i];
            uint32_t b = fb_jr_bucket(fb_jr_hash((uint32_t)x), bits, lb) + 1;
            if (!narrow)
                tup[off32[b]++] = x;
            else
                tup[off16[b]++] = x;
        }
    }
    memset(tup + (narrow ? off16[nb] : off32[nb]), 0, FB_JR_TUP_PAD * sizeof *tup);
    t->off = narrow ? NULL : off32;
    t->off16 = narrow ? off16 : NULL;
    t->tup = tup;
    t->bits = bits;
    t->lb = lb;
}

void fb_jr_build(fb_jr_table *t, const uint64_t *const *seg, const int64_t *seg_n, int nseg, int bits, int lb,
                 uint32_t *off, uint64_t *tup)
{
    jr_build(t, seg, seg_n, nseg, bits, lb, 0, off, tup);
}

void fb_jr_build16(fb_jr_table *t, const uint64_t *const *seg, const int64_t *seg_n, int nseg, int bits, int lb,
                   uint16_t *off16, uint64_t *tup)
{
    jr_build(t, seg, seg_n, nseg, bits, lb, 1, off16, tup);
}

int64_t fb_jr_probe_pairs(const fb_jr_table *t, const uint64_t *tuples, int64_t n, int64_t *i, uint32_t *j,
                          int64_t *bo, int64_t *po, int64_t cap)
{
    int64_t cnt = 0, r = *i;
    uint32_t resume = *j;
    for (; r < n; r++) {
        uint64_t x = tuples[r];
        uint32_t k = (uint32_t)x;
        uint32_t b = fb_jr_bucket(fb_jr_hash(k), t->bits, t->lb);
        uint32_t p = resume ? resume - 1 : t->off[b], e = t->off[b + 1];
        resume = 0;
        for (; p < e; p++) {
            if ((uint32_t)t->tup[p] != k)
                continue;
            if (cnt == cap) {
                *i = r;
                *j = p + 1;
                return cnt;
            }
            bo[cnt] = (int64_t)(t->tup[p] >> 32);
            po[cnt++] = (int64_t)(x >> 32);
        }
    }
    *i = n;
    *j = 0;
    return cnt;
}

/* Rows per group of the shared probes: every row's bucket head is prefetched, then every chain's
 * first entry, before the first compare. */
#define FB_JR_GROUP 32

static inline int jr_valid(const uint8_t *valid, int64_t voff, int64_t i)
{
    int64_t k = voff + i;
    return !valid || ((valid[k >> 3] >> (k & 7)) & 1);
}

void fb_jr_shared_probe_sum(const fb_jr_shared *t, const uint32_t *keys, const uint32_t *pay, const uint8_t *valid,
                            int64_t voff, int64_t n, int64_t *count, __int128 *sum)
{
    int shift = 32 - t->lb;
    const uint32_t *head = t->head, *ent = t->ent;
    uint32_t hb[FB_JR_GROUP], first[FB_JR_GROUP];
    int64_t cnt = 0;
    __int128 s = 0;
    for (int64_t g = 0; g < n; g += FB_JR_GROUP) {
        int m = n - g < FB_JR_GROUP ? (int)(n - g) : FB_JR_GROUP;
        for (int l = 0; l < m; l++) {
            hb[l] = fb_jr_hash(keys[g + l]) >> shift;
            __builtin_prefetch(head + hb[l]);
        }
        for (int l = 0; l < m; l++) {
            first[l] = jr_valid(valid, voff, g + l) ? head[hb[l]] : 0;
            if (first[l])
                __builtin_prefetch(ent + (size_t)(first[l] - 1) * 4);
        }
        for (int l = 0; l < m; l++) {
            uint32_t k = keys[g + l];
            int64_t pv = pay ? (int64_t)(int32_t)pay[g + l] : 0;
            for (uint32_t r = first[l]; r;) {
                const uint32_t *e = ent + (size_t)(r - 1) * 4;
                if (e[0] == k) {
                    cnt++;
                    s += (int64_t)(int32_t)e[1] + pv;
                }
                r = e[2];
            }
        }
    }
    *count += cnt;
    *sum += s;
}

int64_t fb_jr_shared_probe_pairs(const fb_jr_shared *t, const uint32_t *keys, const uint8_t *valid, int64_t voff,
                                 int64_t n, int64_t row_base, int64_t *i, uint32_t *j, int64_t *bo, int64_t *po,
                                 int64_t cap)
{
    int shift = 32 - t->lb;
    int64_t cnt = 0, r = *i;
    uint32_t resume = *j;
    for (; r < n; r++) {
        uint32_t k = keys[r];
        uint32_t e1 = resume;
        resume = 0;
        if (!e1) {
            if (!jr_valid(valid, voff, r))
                continue;
            e1 = t->head[fb_jr_hash(k) >> shift];
        }
        while (e1) {
            const uint32_t *e = t->ent + (size_t)(e1 - 1) * 4;
            if (e[0] == k) {
                if (cnt == cap) {
                    *i = r;
                    *j = e1;
                    return cnt;
                }
                bo[cnt] = (int64_t)(e1 - 1);
                po[cnt++] = row_base + r;
            }
            e1 = e[2];
        }
    }
    *i = n;
    *j = 0;
    return cnt;
}
