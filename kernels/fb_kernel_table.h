/* fb_kernel_table.h - the table of CPU kernel functions one ISA variant provides.
 *
 * The public entry points (kernels_api.c) check arguments, normalize them (data pointers advanced
 * by the column offset, predicates turned into ranges over ordered keys) and call through the
 * context's table. Kernels here never fail except for an index out of range, never allocate and
 * never see a NULL they were not told about.
 *
 * Variants: ref_kernels.c (fb_kernel_table_scalar) and simd_kernels.c compiled once per target
 * (fb_kernel_table_base, fb_kernel_table_avx2, fb_kernel_table_avx512). dispatch.c picks one.
 */
#ifndef FB_KERNEL_TABLE_H
#define FB_KERNEL_TABLE_H

#include <stdint.h>

#include "fb/fb_core.h"

/* How a lane's raw bits become an ordered signed key, so that every comparison is a signed
 * integer range test (see kernels_api.c, fb_pred_make). */
typedef enum fb_key_kind {
    FB_KEY_SIGNED = 0,   /* signed integers: the value itself */
    FB_KEY_UNSIGNED = 1, /* unsigned: flip the top bit */
    FB_KEY_FLOAT = 2     /* IEEE: NaN -> canonical NaN, -0.0 -> 0.0, then negative magnitudes flipped */
} fb_key_kind;

/* A predicate over ordered keys. A row is selected when it is valid and
 *   kind RANGE:  (lo <= key && key <= hi) != negate
 *   kind IN:     key equals one of set[0..n_set) */
typedef enum fb_pred_kind { FB_PRED_RANGE = 0, FB_PRED_IN = 1 } fb_pred_kind;

typedef struct fb_pred {
    fb_pred_kind kind;
    fb_key_kind key;
    int negate;          /* RANGE only */
    int64_t lo, hi;      /* RANGE: inclusive bounds; lo > hi means empty */
    const int64_t *set;  /* IN: keys (already ordered-key form, as int64; 32-bit lanes use the low half) */
    int64_t n_set;
} fb_pred;

/* Validity of a column: bit (off + i) of bits is row i; bits NULL = all valid. */
typedef struct fb_bits {
    const uint8_t *bits;
    int64_t off;
} fb_bits;

typedef struct fb_kernel_table {
    fb_isa isa;

    /* h[i] = hash(v[i]) or, with combine, h[i] * FB_HASH_MUL ^ hash(v[i]); nulls hash to FB_HASH_NULL.
     * hash_32 sign-extends (is_unsigned 0) or zero-extends 32-bit values. */
    void (*hash_32)(const uint32_t *v, int is_unsigned, fb_bits valid, int64_t n, uint64_t *h, int combine);
    void (*hash_64)(const uint64_t *v, fb_bits valid, int64_t n, uint64_t *h, int combine);

    /* Selection over 32- or 64-bit lanes. Candidates: rows 0..length-1, or sel_in[0..n_in).
     * Writes selected row indices to sel_out (room for every candidate) and returns their number,
     * or -1 if a sel_in index is ≥ length. */
    int64_t (*select_32)(const fb_pred *p, const uint32_t *v, fb_bits valid, int64_t length,
                         const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out);
    int64_t (*select_64)(const fb_pred *p, const uint64_t *v, fb_bits valid, int64_t length,
                         const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out);

    /* out[j] = v[sel[j]]; returns 0, or -1 if an index is ≥ length (out then partly written). */
    int (*compact_32)(const uint32_t *v, int64_t length, const uint32_t *sel, int64_t n, uint32_t *out);
    int (*compact_64)(const uint64_t *v, int64_t length, const uint32_t *sel, int64_t n, uint64_t *out);

    /* out[j] = v[ids[j]], or 0 where ids[j] == -1; returns 0, or -1 for an id < -1 or ≥ length. */
    int (*gather_32)(const uint32_t *v, int64_t length, const int64_t *ids, int64_t n, uint32_t *out);
    int (*gather_64)(const uint64_t *v, int64_t length, const int64_t *ids, int64_t n, uint64_t *out);
} fb_kernel_table;

/* Compaction of the scalar variant, which the SIMD variants use too: compaction reads rows in
 * ascending (or clustered) order, where plain loads beat hardware gathers (measured on Zen 4: a
 * 16-lane gather compaction ran at half the speed of the plain loop). */
int fb_compact_32_scalar(const uint32_t *v, int64_t length, const uint32_t *sel, int64_t n, uint32_t *out);
int fb_compact_64_scalar(const uint64_t *v, int64_t length, const uint32_t *sel, int64_t n, uint64_t *out);

extern const fb_kernel_table fb_kernel_table_scalar;
extern const fb_kernel_table fb_kernel_table_base;
extern const fb_kernel_table fb_kernel_table_avx2;
extern const fb_kernel_table fb_kernel_table_avx512;

/* Shared scalar helpers (ref_kernels.c), also used by SIMD variants for tails. */
static inline int fb_bit_get(fb_bits b, int64_t i)
{
    if (!b.bits)
        return 1;
    int64_t k = b.off + i;
    return (b.bits[k >> 3] >> (k & 7)) & 1;
}

/* fmix64 of MurmurHash3 applied to w + FB_HASH_SEED */
static inline uint64_t fb_hash_u64(uint64_t w)
{
    uint64_t x = w + 0x9E3779B97F4A7C15ull;
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ull;
    x ^= x >> 33;
    return x;
}

/* Ordered key of a 32- or 64-bit lane (fb_key_kind). */
static inline int64_t fb_key_32(uint32_t raw, fb_key_kind kind)
{
    switch (kind) {
    case FB_KEY_UNSIGNED:
        return (int32_t)(raw ^ 0x80000000u);
    case FB_KEY_FLOAT:
        if ((raw & 0x7FFFFFFFu) > 0x7F800000u)
            raw = 0x7FC00000u; /* every NaN is the same, and the largest */
        if (raw == 0x80000000u)
            raw = 0; /* -0.0 = 0.0 */
        return (int32_t)(raw ^ ((uint32_t)((int32_t)raw >> 31) & 0x7FFFFFFFu));
    default:
        return (int32_t)raw;
    }
}

static inline int64_t fb_key_64(uint64_t raw, fb_key_kind kind)
{
    switch (kind) {
    case FB_KEY_UNSIGNED:
        return (int64_t)(raw ^ 0x8000000000000000ull);
    case FB_KEY_FLOAT:
        if ((raw & 0x7FFFFFFFFFFFFFFFull) > 0x7FF0000000000000ull)
            raw = 0x7FF8000000000000ull;
        if (raw == 0x8000000000000000ull)
            raw = 0;
        return (int64_t)(raw ^ ((uint64_t)((int64_t)raw >> 63) & 0x7FFFFFFFFFFFFFFFull));
    default:
        return (int64_t)raw;
    }
}

/* Whether an ordered key satisfies a predicate (scalar; SIMD kernels use it for tails). */
static inline int fb_pred_test(const fb_pred *p, int64_t key)
{
    if (p->kind == FB_PRED_IN) {
        for (int64_t i = 0; i < p->n_set; i++)
            if (p->set[i] == key)
                return 1;
        return 0;
    }
    return (p->lo <= key && key <= p->hi) != (p->negate != 0);
}

#endif /* FB_KERNEL_TABLE_H */
