/* fb_join_internal.h - the hash table's memory layout and the table of per-ISA join kernels
 * (bucket search for a batch of probe rows, radix scatter through write-combining buffers).
 *
 * Bucket layout: an array of 2^log2cap buckets of W = n_keys + 2 uint64 words each:
 *   words[b*W + c]           key column c of the bucket's distinct key, widened to 64 bits
 *   words[b*W + n_keys]      id + 1 of the key's first build row (0 = empty bucket)
 *   words[b*W + n_keys + 1]  low 32 bits: head, high 32 bits: tail of the chain of its other rows
 * The first row lives in the bucket, so a unique key costs one cache miss per probe. Further rows
 * with the same key are fb_join_row entries (internal row number + 1 in head/tail/next, 0 = none),
 * chained in insertion order, so a probe walks exactly the matches (linear in output).
 * A key's home bucket is hash >> (64 - log2cap); collisions go to the next bucket (linear probing).
 *
 * Variants: join_ref.c (fb_join_kernels_scalar) and simd_join.c compiled per ISA
 * (fb_join_kernels_base/avx2/avx512). Every variant gives identical results.
 */
#ifndef FB_JOIN_INTERNAL_H
#define FB_JOIN_INTERNAL_H

#include <stdint.h>

#include "fb/fb_core.h"

/* Same as FB_JOIN_MAX_KEYS (fb_join.h), for kernels that do not include the public header. */
#define FB_JOIN_KEYS_MAX_INTERNAL 4

/* One inserted build row: its caller-given id and the next row with the same key (internal + 1). */
typedef struct fb_join_row {
    int64_t id;
    uint32_t next;
    uint32_t pad;
} fb_join_row;

typedef struct fb_join_kernels {
    fb_isa isa;

    /* For rows j in [0, n): found[j] = 1 + index of the bucket holding key (keys[0][j], ..,
     * keys[nk-1][j]), searched from bucket hashes[j] >> shift, or 0 when the key is absent or
     * live[j] == 0. shift = 64 - log2cap; the table has at least one empty bucket. */
    void (*find_heads)(const uint64_t *buckets, int nk, int shift, const uint64_t *hashes,
                       const int64_t *const *keys, const uint8_t *live, int64_t n, uint64_t *found);

    /* Scatter of fb_radix_partition(): appends row i to partition (hashes[i] >> shift) & (2^bits - 1)
     * at pos[p] (advanced), through wc (2^bits lines of 16 uint32, 64-byte aligned). start[p] is the
     * first index of partition p in perm. Flushes every buffer before returning. */
    void (*scatter)(const uint64_t *hashes, int64_t n, int shift, int bits, const int64_t *start, int64_t *pos,
                    uint32_t *wc, uint32_t *perm);
} fb_join_kernels;

extern const fb_join_kernels fb_join_kernels_scalar;
extern const fb_join_kernels fb_join_kernels_base;
extern const fb_join_kernels fb_join_kernels_avx2;
extern const fb_join_kernels fb_join_kernels_avx512;

/* Scalar bucket search for one row (also the SIMD variants' fallback for tails). */
static inline uint64_t fb_join_find_one(const uint64_t *buckets, int nk, int shift, uint64_t hash,
                                        const int64_t *const *keys, int64_t j)
{
    uint64_t mask = (~0ull) >> shift; /* capacity - 1 (shift ≤ 60) */
    uint64_t b = hash >> shift;
    int w = nk + 2;
    for (;;) {
        const uint64_t *bk = buckets + b * (uint64_t)w;
        if (!bk[nk])
            return 0;
        int eq = 1;
        for (int c = 0; c < nk; c++)
            eq &= bk[c] == (uint64_t)keys[c][j];
        if (eq)
            return b + 1;
        b = (b + 1) & mask;
    }
}

/* Scatter flush helpers shared by the variants: `line` is the wc line of partition p; element e of
 * perm sits in slot (e + a0) & 15 of its line, a0 being perm's misalignment in elements. */
static inline void fb_join_wc_copy(const uint32_t *line, int64_t from, int64_t to, int64_t a0, uint32_t *perm)
{
    for (int64_t e = from; e <= to; e++)
        perm[e] = line[(e + a0) & 15];
}

#endif /* FB_JOIN_INTERNAL_H */
