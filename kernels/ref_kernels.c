/* ref_kernels.c - the scalar variant: plain C, one row at a time. It is what FB_ISA=scalar runs and the
 * reference every SIMD variant and the OpenCL twins are tested against. Keep it obvious. */
#include "fb/fb_kernels.h"
#include "fb_kernel_table.h"

static void hash_32(const uint32_t *v, int is_unsigned, fb_bits valid, int64_t n, uint64_t *h, int combine)
{
    for (int64_t i = 0; i < n; i++) {
        uint64_t w = is_unsigned ? (uint64_t)v[i] : (uint64_t)(int64_t)(int32_t)v[i];
        uint64_t x = fb_bit_get(valid, i) ? fb_hash_u64(w) : FB_HASH_NULL;
        h[i] = combine ? h[i] * FB_HASH_MUL ^ x : x;
    }
}

static void hash_64(const uint64_t *v, fb_bits valid, int64_t n, uint64_t *h, int combine)
{
    for (int64_t i = 0; i < n; i++) {
        uint64_t x = fb_bit_get(valid, i) ? fb_hash_u64(v[i]) : FB_HASH_NULL;
        h[i] = combine ? h[i] * FB_HASH_MUL ^ x : x;
    }
}

static int64_t select_32(const fb_pred *p, const uint32_t *v, fb_bits valid, int64_t length,
                         const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out)
{
    int64_t k = 0;
    int64_t n = sel_in ? n_in : length;
    for (int64_t j = 0; j < n; j++) {
        int64_t i = sel_in ? (int64_t)sel_in[j] : j;
        if (i >= length)
            return -1;
        sel_out[k] = (uint32_t)i; /* branch-free: a 50% selection would mispredict every other row */
        k += fb_bit_get(valid, i) && fb_pred_test(p, fb_key_32(v[i], p->key));
    }
    return k;
}

static int64_t select_64(const fb_pred *p, const uint64_t *v, fb_bits valid, int64_t length,
                         const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out)
{
    int64_t k = 0;
    int64_t n = sel_in ? n_in : length;
    for (int64_t j = 0; j < n; j++) {
        int64_t i = sel_in ? (int64_t)sel_in[j] : j;
        if (i >= length)
            return -1;
        sel_out[k] = (uint32_t)i; /* branch-free: a 50% selection would mispredict every other row */
        k += fb_bit_get(valid, i) && fb_pred_test(p, fb_key_64(v[i], p->key));
    }
    return k;
}

int fb_compact_32_scalar(const uint32_t *v, int64_t length, const uint32_t *sel, int64_t n, uint32_t *out)
{
    for (int64_t j = 0; j < n; j++) {
        if (sel[j] >= length)
            return -1;
        out[j] = v[sel[j]];
    }
    return 0;
}

int fb_compact_64_scalar(const uint64_t *v, int64_t length, const uint32_t *sel, int64_t n, uint64_t *out)
{
    for (int64_t j = 0; j < n; j++) {
        if (sel[j] >= length)
            return -1;
        out[j] = v[sel[j]];
    }
    return 0;
}

static int gather_32(const uint32_t *v, int64_t length, const int64_t *ids, int64_t n, uint32_t *out)
{
    for (int64_t j = 0; j < n; j++) {
        if (ids[j] < -1 || ids[j] >= length)
            return -1;
        out[j] = ids[j] < 0 ? 0 : v[ids[j]];
    }
    return 0;
}

static int gather_64(const uint64_t *v, int64_t length, const int64_t *ids, int64_t n, uint64_t *out)
{
    for (int64_t j = 0; j < n; j++) {
        if (ids[j] < -1 || ids[j] >= length)
            return -1;
        out[j] = ids[j] < 0 ? 0 : v[ids[j]];
    }
    return 0;
}

const fb_kernel_table fb_kernel_table_scalar = {
    .isa = FB_ISA_SCALAR,
    .hash_32 = hash_32,
    .hash_64 = hash_64,
    .select_32 = select_32,
    .select_64 = select_64,
    .compact_32 = fb_compact_32_scalar,
    .compact_64 = fb_compact_64_scalar,
    .gather_32 = gather_32,
    .gather_64 = gather_64,
};
