/* fb_sort_internal.h - the table of sort kernels one ISA variant provides (key normalization), and
 * how sort.c picks it. The scalar variant lives in sort.c; simd_sort.c is compiled once per target
 * (fb_sort_kernels_base, _avx2, _avx512). Every variant writes bitwise identical output. */
#ifndef FB_SORT_INTERNAL_H
#define FB_SORT_INTERNAL_H

#include <stdint.h>

#include "fb/fb_core.h"
#include "fb_kernel_table.h"

typedef struct fb_sort_kernels {
    fb_isa isa;
    /* out[i] = the ordered unsigned bits of v[i] (fb_key_32/fb_key_64 of kind, sign bit flipped, so
     * unsigned order = SQL order) XOR flip, zero-extended to 64 bits. flip is 0 (ascending) or all
     * ones of the lane width (descending). */
    void (*encode_32)(const uint32_t *v, int64_t n, fb_key_kind kind, uint32_t flip, uint64_t *out);
    void (*encode_64)(const uint64_t *v, int64_t n, fb_key_kind kind, uint64_t flip, uint64_t *out);
} fb_sort_kernels;

extern const fb_sort_kernels fb_sort_kernels_scalar;
extern const fb_sort_kernels fb_sort_kernels_base;
extern const fb_sort_kernels fb_sort_kernels_avx2;
extern const fb_sort_kernels fb_sort_kernels_avx512;

/* Scalar encoders (sort.c), also used by the SIMD variants for tails. */
static inline uint64_t fb_sort_encode_32(uint32_t raw, fb_key_kind kind, uint32_t flip)
{
    return (uint32_t)((uint32_t)fb_key_32(raw, kind) ^ 0x80000000u ^ flip);
}

static inline uint64_t fb_sort_encode_64(uint64_t raw, fb_key_kind kind, uint64_t flip)
{
    return (uint64_t)fb_key_64(raw, kind) ^ 0x8000000000000000ull ^ flip;
}

#endif /* FB_SORT_INTERNAL_H */
