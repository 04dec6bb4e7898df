/* join_ref.c - the scalar join kernels (fb_join_kernels_scalar): the reference every SIMD variant of
 * simd_join.c must match, and the portable path for CPUs without SIMD variants. */
#include "fb_join_internal.h"

#include <string.h>

static void find_heads_scalar(const uint64_t *buckets, int nk, int shift, const uint64_t *hashes,
                              const int64_t *const *keys, const uint8_t *live, int64_t n, uint64_t *heads)
{
    for (int64_t j = 0; j < n; j++)
        heads[j] = live && !live[j] ? 0 : fb_join_find_one(buckets, nk, shift, hashes[j], keys, j);
}

static void scatter_scalar(const uint64_t *hashes, int64_t n, int shift, int bits, const int64_t *start, int64_t *pos,
                           uint32_t *wc, uint32_t *perm)
{
    uint64_t pmask = (1ull << bits) - 1;
    int64_t a0 = (int64_t)(((uintptr_t)perm >> 2) & 15);
    for (int64_t i = 0; i < n; i++) {
        uint64_t p = (hashes[i] >> shift) & pmask;
        int64_t e = pos[p]++;
        int64_t s = (e + a0) & 15;
        uint32_t *line = wc + p * 16;
        line[s] = (uint32_t)i;
        if (s == 15) {
            int64_t ls = e - 15;
            if (ls >= start[p])
                memcpy(perm + ls, line, 64);
            else
                fb_join_wc_copy(line, start[p], e, a0, perm);
        }
    }
    for (uint64_t p = 0; p <= pmask; p++) {
        int64_t e = pos[p] - 1;
        if (pos[p] > start[p] && ((e + a0) & 15) != 15) {
            int64_t ls = e - ((e + a0) & 15);
            fb_join_wc_copy(wc + p * 16, ls > start[p] ? ls : start[p], e, a0, perm);
        }
    }
}

static int jr_scatter_scalar(const uint32_t *keys, const uint32_t *pay, uint32_t pay_base, const uint8_t *valid,
                             int64_t voff, int64_t *row, int64_t n, int bits, uint64_t **cur, uint64_t *const *end,
                             uint32_t *full)
{
    int shift = 32 - bits;
    for (int64_t i = *row; i < n; i++) {
        if (valid && !((valid[(voff + i) >> 3] >> ((voff + i) & 7)) & 1))
            continue;
        uint32_t k = keys[i];
        uint32_t p = (uint32_t)((uint64_t)fb_jr_hash(k) >> shift);
        uint32_t v = pay ? pay[i] : pay_base + (uint32_t)i;
        *cur[p]++ = (uint64_t)k | (uint64_t)v << 32;
        if (cur[p] == end[p]) {
            *full = p;
            *row = i + 1;
            return 1;
        }
    }
    *row = n;
    return 0;
}

static void jr_probe_sum_scalar(const fb_jr_table *t, const uint64_t *tuples, int64_t n, int64_t *count,
                                __int128 *sum)
{
    const uint32_t *off = t->off;
    const uint64_t *tup = t->tup;
    int bits = t->bits, lb = t->lb;
    int64_t cnt = 0;
    __int128 s = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t k = (uint32_t)tuples[i];
        int64_t pv = (int32_t)(uint32_t)(tuples[i] >> 32);
        uint32_t b = fb_jr_bucket(fb_jr_hash(k), bits, lb);
        for (uint32_t p = off[b], e = off[b + 1]; p < e; p++) {
            if ((uint32_t)tup[p] == k) {
                cnt++;
                s += (int64_t)(int32_t)(uint32_t)(tup[p] >> 32) + pv;
            }
        }
    }
    *count += cnt;
    *sum += s;
}

const fb_join_kernels fb_join_kernels_scalar = {
    .isa = FB_ISA_SCALAR,
    .find_heads = find_heads_scalar,
    .scatter = scatter_scalar,
    .jr_scatter = jr_scatter_scalar,
    .jr_load = FB_JR_LOAD_SPARSE,
    .jr_probe_sum = jr_probe_sum_scalar,
};
