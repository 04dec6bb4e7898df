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

const fb_join_kernels fb_join_kernels_scalar = {
    .isa = FB_ISA_SCALAR,
    .find_heads = find_heads_scalar,
    .scatter = scatter_scalar,
};
