/* fb_join_internal.h - the hash table's memory layout and the table of per-ISA join kernels
 * (bucket search for a batch of probe rows; fb_radix_partition()'s scatter through write-combining
 * buffers; the tuple join's scatter straight to partition cursors, its count/sum probe), and the
 * kernel table's concurrent build (join.c).
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
 *
 * The tuple join of the runtime (runtime/pipeline_join.c, kernels/join_radix.c) works on 8-byte
 * tuples of a 32-bit key (low half) and a 32-bit payload (high half: a value to sum, or a row id).
 * Its hash fb_jr_hash() is a bijection of the key (Fibonacci hashing), so equal hashes mean equal keys;
 * radix partitions take the hash's top `bits` bits, the in-partition table the bits below them.
 */
#ifndef FB_JOIN_INTERNAL_H
#define FB_JOIN_INTERNAL_H

#include <stdint.h>

#include "fb/fb_core.h"

/* Same as FB_JOIN_MAX_KEYS (fb_join.h), for kernels that do not include the public header. */
#define FB_JOIN_KEYS_MAX_INTERNAL 4

/* ---- tuple radix join ------------------------------------------------------------------------ */

#define FB_JR_HASH_MUL 0x9E3779B1u
#define FB_JR_MAX_BITS 16

static inline uint32_t fb_jr_hash(uint32_t key) { return key * FB_JR_HASH_MUL; }

/* The in-cache table of one partition: its build tuples ordered by bucket (a counting sort), bucket
 * b holding tup[off[b] .. off[b + 1]). Duplicates of a key share its bucket, so a probe walks its
 * matches (plus the rare other key of the bucket), never a chain. The bucket count depends on the
 * probe (fb_join_kernels.jr_load): at most 1/2 tuple a bucket (FB_JR_LOAD_SPARSE), a probe of a key
 * rarely meets more than one other tuple, so the scalar probes check two places without branching and
 * loop only for longer buckets; about 1 tuple a bucket (FB_JR_LOAD_ONE) for the AVX-512 probe, which
 * compares a bucket's first 4 tuples with one 32-byte load; about 2 (FB_JR_LOAD_WIDE) for a probe that
 * would compare 8 at once (a 64-byte load, which at random offsets mostly spans two cache lines). tup
 * has FB_JR_TUP_PAD readable (zero) entries past its n. */
typedef struct fb_jr_table {
    const uint32_t *off; /* nb + 1 entries, nb = 2^lb; NULL when off16 holds them */
    const uint64_t *tup; /* n + 2 */
    int bits; /* partition bits above the bucket bits */
    int lb;   /* 1 .. 32 - bits */
    /* The same bounds as 16-bit entries (fb_jr_build16, tables of at most FB_JR_OFF16_MAX tuples), for
     * the probes that read them (fb_join_kernels.jr_off16): half the bytes, so that a 16K-tuple
     * partition's bounds stay in a 32 KiB L1. NULL otherwise. */
    const uint16_t *off16;
} fb_jr_table;

/* The most tuples a table with 16-bit bounds holds (its last bound and its padding below 2^16). */
#define FB_JR_OFF16_MAX (65535 - 2 * FB_JR_TUP_PAD)

/* log2 of the tuples a bucket of a partition's table holds on average (fb_jr_log2_buckets). */
#define FB_JR_LOAD_SPARSE (-1)
#define FB_JR_LOAD_WIDE 1
#define FB_JR_LOAD_ONE 0 /* about 1 (the AVX-512 probe: 4 tuples a bucket compared at once) */

/* Zero entries of a table's tup past its tuples. */
#define FB_JR_TUP_PAD 8

/* Bucket of a hash in a partition's table. */
static inline uint32_t fb_jr_bucket(uint32_t h, int bits, int lb)
{
    return (uint32_t)(h << bits) >> (32 - lb);
}

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

    /* Radix scatter of tuples (keys[i], pay ? pay[i] : pay_base + i) for rows i = *row .. n-1 whose key
     * is valid (bit voff + i of valid; valid NULL = all) into partition fb_jr_hash(key) >> (32 - bits)
     * (bits 0..FB_JR_MAX_BITS; 0 = one partition): each tuple is stored at cur[p], which advances. Stops
     * after a store that makes cur[p] reach end[p]: sets *full = p and *row to the next row, returns 1
     * (the caller gives partition p new room and calls again); returns 0 when all rows are done
     * (*row = n). */
    int (*jr_scatter)(const uint32_t *keys, const uint32_t *pay, uint32_t pay_base, const uint8_t *valid, int64_t voff,
                      int64_t *row, int64_t n, int bits, uint64_t **cur, uint64_t *const *end, uint32_t *full);

    /* Inner join of n probe tuples against a partition's table: *count += matches, *sum += the sum of
     * (int32 build payload + int32 probe payload) over them. */
    void (*jr_probe_sum)(const struct fb_jr_table *t, const uint64_t *tuples, int64_t n, int64_t *count,
                         __int128 *sum);

    /* The table load jr_probe_sum is made for: FB_JR_LOAD_SPARSE, FB_JR_LOAD_ONE or FB_JR_LOAD_WIDE. */
    int jr_load;

    /* 1 when jr_probe_sum also reads tables with 16-bit bounds (fb_jr_table.off16), 0 when it reads off only. */
    int jr_off16;
} fb_join_kernels;

/* The variant of the context's ISA (join.c). */
const fb_join_kernels *fb_join_kernels_get(const fb_ctx *ctx);

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

/* ---- the kernel table built by several threads at once (join.c) ---- */

/* Sizes table t (single-threaded, before the concurrent builds) for `rows` more build rows, which
 * fb_hash_table_build_shared() may then insert without the table growing. */
struct fb_hash_table;
struct fb_column;
fb_status fb_hash_table_reserve_shared(fb_ctx *ctx, struct fb_hash_table *t, int64_t rows);

/* fb_hash_table_build() that any number of threads may call at once on the same table, for rows
 * reserved by fb_hash_table_reserve_shared() (FB_ERR_CAPACITY past them). The matches of a key are
 * the same as with fb_hash_table_build(); their order in its chain is the order the threads inserted
 * them. No probe may run during the builds. */
fb_status fb_hash_table_build_shared(fb_ctx *ctx, struct fb_hash_table *t, const struct fb_column *keys,
                                     size_t n_keys, int64_t first_row);

/* ---- tuple join helpers shared by every variant (join_radix.c) ---- */

/* log2 of the bucket count for a partition of n build tuples: at least 2 buckets, at most 2^(32 - bits),
 * and where the hash has the bits, at most 2^load tuples a bucket on average (load FB_JR_LOAD_SPARSE:
 * at least 2n buckets; FB_JR_LOAD_ONE: at least n; FB_JR_LOAD_WIDE: at least n/2). */
int fb_jr_log2_buckets(int64_t n, int bits, int load);

/* Builds a partition's table from nseg segments of build tuples (n in all, n < 2^32) into caller
 * memory: off (2^lb + 2 entries), tup (n + FB_JR_TUP_PAD). t->off points into off. */
void fb_jr_build(fb_jr_table *t, const uint64_t *const *seg, const int64_t *seg_n, int nseg, int bits, int lb,
                 uint32_t *off, uint64_t *tup);

/* fb_jr_build() writing 16-bit bounds to off16 (2^lb + 2 entries; t->off16 points into it, t->off is
 * NULL) for n ≤ FB_JR_OFF16_MAX tuples in all. */
void fb_jr_build16(fb_jr_table *t, const uint64_t *const *seg, const int64_t *seg_n, int nseg, int bits, int lb,
                   uint16_t *off16, uint64_t *tup);

/* Resumable inner join of probe tuples writing (build payload, probe payload) pairs: continues at
 * probe tuple *i, inside its bucket at build position *j - 1 (*j 0 = from the bucket's start); writes
 * at most cap pairs to bo/po and returns their number; *i == n when the tuples are done. */
int64_t fb_jr_probe_pairs(const fb_jr_table *t, const uint64_t *tuples, int64_t n, int64_t *i, uint32_t *j,
                          int64_t *bo, int64_t *po, int64_t cap);

/* The shared (non-partitioned) table: build rows chained per bucket (top lb bits of the hash);
 * head[b] = row + 1 of the bucket's last inserted row (0 = empty), ent[row] = {key, payload, next
 * row + 1, 0}. Inserts from several threads use an atomic exchange on head (runtime/pipeline_join.c). */
typedef struct fb_jr_shared {
    const uint32_t *head;
    const uint32_t *ent; /* 4 words per build row */
    int lb;
} fb_jr_shared;

/* Probes n rows (keys[i], payload pay ? pay[i] : pay_base + i; rows with a null key skipped) against
 * the shared table with group prefetching: count/sum as jr_probe_sum. */
void fb_jr_shared_probe_sum(const fb_jr_shared *t, const uint32_t *keys, const uint32_t *pay, const uint8_t *valid,
                            int64_t voff, int64_t n, int64_t *count, __int128 *sum);

/* The same writing (build row, probe row id = row_base + i) pairs, resumable as fb_jr_probe_pairs
 * (*j = the next build row + 1 of the current chain). */
int64_t fb_jr_shared_probe_pairs(const fb_jr_shared *t, const uint32_t *keys, const uint8_t *valid, int64_t voff,
                                 int64_t n, int64_t row_base, int64_t *i, uint32_t *j, int64_t *bo, int64_t *po,
                                 int64_t cap);

#endif /* FB_JOIN_INTERNAL_H */
