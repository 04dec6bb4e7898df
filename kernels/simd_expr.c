/* simd_expr.c - the SIMD variants of the expression kernels (fb_expr_internal.h), written once against
 * simde and compiled once per target (FB_KERNEL_BASE, FB_KERNEL_AVX2, FB_KERNEL_AVX512, as
 * simd_kernels.c). Results equal expr_ref.c's bit for bit (floats: up to NaN payloads).
 *
 * Comparisons produce 16 result bits per step from ordered keys (fb_kernel_table.h). Integer
 * arithmetic wraps in the lanes and checks overflow per vector with sign-bit tests (add, sub), a
 * widening multiply (int32 *) or a fits-in-32-bits test that takes an exact 32x32->64 multiply (int64
 * *; other vectors go lane by lane with __builtin_mul_overflow). Casts run in blocks through an int64
 * or double buffer with plain loops that the per-target flags vectorize.
 * The comparison layer (fb_mask, mk_*, key32/key64, pred32/pred64) is fb_vec.h's, shared with
 * simd_kernels.c. */
#include "fb_expr_internal.h"
#include "fb_vec.h"

#include <math.h>
#include <string.h>

/* ================================ vector layer (beyond fb_vec.h) ================================= */
#if FB_W512

typedef simde__m512 fb_vecf;
typedef simde__m512d fb_vecd;

FB_INLINE fb_vec v_or(fb_vec a, fb_vec b) { return simde_mm512_or_si512(a, b); }
FB_INLINE fb_vec v_sub32(fb_vec a, fb_vec b) { return simde_mm512_sub_epi32(a, b); }
FB_INLINE fb_vec v_sub64(fb_vec a, fb_vec b) { return simde_mm512_sub_epi64(a, b); }
FB_INLINE fb_vec v_mul_s32(fb_vec a, fb_vec b) { return simde_mm512_mul_epi32(a, b); }
FB_INLINE fb_vec v_slli64_32(fb_vec a) { return simde_mm512_slli_epi64(a, 32); }
FB_INLINE fb_vec v_srli64_32(fb_vec a) { return simde_mm512_srli_epi64(a, 32); }
FB_INLINE fb_vecf f_load(const float *p) { return simde_mm512_loadu_ps(p); }
FB_INLINE fb_vecf f_set(float x) { return simde_mm512_set1_ps(x); }
FB_INLINE void f_store(float *p, fb_vecf v) { simde_mm512_storeu_ps(p, v); }
FB_INLINE fb_vecf f_add(fb_vecf a, fb_vecf b) { return simde_mm512_add_ps(a, b); }
FB_INLINE fb_vecf f_sub(fb_vecf a, fb_vecf b) { return simde_mm512_sub_ps(a, b); }
FB_INLINE fb_vecf f_mul(fb_vecf a, fb_vecf b) { return simde_mm512_mul_ps(a, b); }
FB_INLINE fb_vecd d_load(const double *p) { return simde_mm512_loadu_pd(p); }
FB_INLINE fb_vecd d_set(double x) { return simde_mm512_set1_pd(x); }
FB_INLINE void d_store(double *p, fb_vecd v) { simde_mm512_storeu_pd(p, v); }
FB_INLINE fb_vecd d_add(fb_vecd a, fb_vecd b) { return simde_mm512_add_pd(a, b); }
FB_INLINE fb_vecd d_sub(fb_vecd a, fb_vecd b) { return simde_mm512_sub_pd(a, b); }
FB_INLINE fb_vecd d_mul(fb_vecd a, fb_vecd b) { return simde_mm512_mul_pd(a, b); }

#else /* 256-bit */

typedef simde__m256 fb_vecf;
typedef simde__m256d fb_vecd;

FB_INLINE fb_vec v_or(fb_vec a, fb_vec b) { return simde_mm256_or_si256(a, b); }
FB_INLINE fb_vec v_sub32(fb_vec a, fb_vec b) { return simde_mm256_sub_epi32(a, b); }
FB_INLINE fb_vec v_sub64(fb_vec a, fb_vec b) { return simde_mm256_sub_epi64(a, b); }
FB_INLINE fb_vec v_mul_s32(fb_vec a, fb_vec b) { return simde_mm256_mul_epi32(a, b); }
FB_INLINE fb_vec v_slli64_32(fb_vec a) { return simde_mm256_slli_epi64(a, 32); }
FB_INLINE fb_vec v_srli64_32(fb_vec a) { return simde_mm256_srli_epi64(a, 32); }
FB_INLINE fb_vecf f_load(const float *p) { return simde_mm256_loadu_ps(p); }
FB_INLINE fb_vecf f_set(float x) { return simde_mm256_set1_ps(x); }
FB_INLINE void f_store(float *p, fb_vecf v) { simde_mm256_storeu_ps(p, v); }
FB_INLINE fb_vecf f_add(fb_vecf a, fb_vecf b) { return simde_mm256_add_ps(a, b); }
FB_INLINE fb_vecf f_sub(fb_vecf a, fb_vecf b) { return simde_mm256_sub_ps(a, b); }
FB_INLINE fb_vecf f_mul(fb_vecf a, fb_vecf b) { return simde_mm256_mul_ps(a, b); }
FB_INLINE fb_vecd d_load(const double *p) { return simde_mm256_loadu_pd(p); }
FB_INLINE fb_vecd d_set(double x) { return simde_mm256_set1_pd(x); }
FB_INLINE void d_store(double *p, fb_vecd v) { simde_mm256_storeu_pd(p, v); }
FB_INLINE fb_vecd d_add(fb_vecd a, fb_vecd b) { return simde_mm256_add_pd(a, b); }
FB_INLINE fb_vecd d_sub(fb_vecd a, fb_vecd b) { return simde_mm256_sub_pd(a, b); }
FB_INLINE fb_vecd d_mul(fb_vecd a, fb_vecd b) { return simde_mm256_mul_pd(a, b); }

#endif /* width */

/* ================================ comparisons ==================================================== */

/* Column/column comparisons reduce to two base predicates: every fb_cmp is EQ or GT, with the
 * operands swapped (LT, GE) and/or the result negated (NE, LE, GE). Loops are specialized on the key
 * kind and the base; the negation is an xor. */
typedef struct cmp_plan {
    int eq;        /* base EQ (else GT) */
    int swap;      /* compare b with a */
    uint32_t flip; /* negate: xor of the 16 result bits */
} cmp_plan;

static cmp_plan plan_cmp(fb_cmp op)
{
    switch (op) {
    case FB_CMP_EQ: return (cmp_plan){1, 0, 0};
    case FB_CMP_NE: return (cmp_plan){1, 0, 0xFFFF};
    case FB_CMP_LT: return (cmp_plan){0, 1, 0};
    case FB_CMP_LE: return (cmp_plan){0, 0, 0xFFFF};
    case FB_CMP_GT: return (cmp_plan){0, 0, 0};
    default: return (cmp_plan){0, 1, 0xFFFF}; /* GE: NOT (b > a) */
    }
}

FB_INLINE int base_key(int eq, int64_t x, int64_t y) { return eq ? x == y : x > y; }

FB_INLINE void store16(uint8_t *p, uint32_t m)
{
    uint16_t x = (uint16_t)m;
    memcpy(p, &x, 2);
}

/* Clears bytes [i/8, (n+7)/8) and returns; the caller sets the tail bits i..n-1 (i is a multiple of 16). */
static void clear_tail(uint8_t *bits, int64_t i, int64_t n)
{
    memset(bits + i / 8, 0, (size_t)((n + 7) / 8 - i / 8));
}

FB_INLINE void pred_bits_32_loop(const fb_pred *p, fb_key_kind kind, int is_in, const uint32_t *v, int64_t n,
                                 uint8_t *bits)
{
    fb_vec lo = v_set32((int32_t)p->lo), hi = v_set32((int32_t)p->hi);
    uint32_t flip = p->negate ? FB_FULL32 : 0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint32_t m = 0;
        for (int h = 0; h < 16; h += FB_N32)
            m |= pred32(key32(v_load(v + i + h), kind), p, lo, hi, flip, is_in) << h;
        store16(bits + i / 8, m);
    }
    clear_tail(bits, i, n);
    for (; i < n; i++)
        bits[i >> 3] |= (uint8_t)(fb_pred_test(p, fb_key_32(v[i], kind)) << (i & 7));
}

FB_INLINE void pred_bits_64_loop(const fb_pred *p, fb_key_kind kind, int is_in, const uint64_t *v, int64_t n,
                                 uint8_t *bits)
{
    fb_vec lo = v_set64(p->lo), hi = v_set64(p->hi);
    uint32_t flip = p->negate ? FB_FULL64 : 0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint32_t m = 0;
        for (int h = 0; h < 16; h += FB_N64)
            m |= pred64(key64(v_load(v + i + h), kind), p, lo, hi, flip, is_in) << h;
        store16(bits + i / 8, m);
    }
    clear_tail(bits, i, n);
    for (; i < n; i++)
        bits[i >> 3] |= (uint8_t)(fb_pred_test(p, fb_key_64(v[i], kind)) << (i & 7));
}

static void pred_bits_32(const fb_pred *p, const uint32_t *v, int64_t n, uint8_t *bits)
{
    int in = p->kind == FB_PRED_IN;
    switch (p->key) {
    case FB_KEY_UNSIGNED:
        if (in) pred_bits_32_loop(p, FB_KEY_UNSIGNED, 1, v, n, bits);
        else pred_bits_32_loop(p, FB_KEY_UNSIGNED, 0, v, n, bits);
        break;
    case FB_KEY_FLOAT:
        if (in) pred_bits_32_loop(p, FB_KEY_FLOAT, 1, v, n, bits);
        else pred_bits_32_loop(p, FB_KEY_FLOAT, 0, v, n, bits);
        break;
    default:
        if (in) pred_bits_32_loop(p, FB_KEY_SIGNED, 1, v, n, bits);
        else pred_bits_32_loop(p, FB_KEY_SIGNED, 0, v, n, bits);
    }
}

static void pred_bits_64(const fb_pred *p, const uint64_t *v, int64_t n, uint8_t *bits)
{
    int in = p->kind == FB_PRED_IN;
    switch (p->key) {
    case FB_KEY_UNSIGNED:
        if (in) pred_bits_64_loop(p, FB_KEY_UNSIGNED, 1, v, n, bits);
        else pred_bits_64_loop(p, FB_KEY_UNSIGNED, 0, v, n, bits);
        break;
    case FB_KEY_FLOAT:
        if (in) pred_bits_64_loop(p, FB_KEY_FLOAT, 1, v, n, bits);
        else pred_bits_64_loop(p, FB_KEY_FLOAT, 0, v, n, bits);
        break;
    default:
        if (in) pred_bits_64_loop(p, FB_KEY_SIGNED, 1, v, n, bits);
        else pred_bits_64_loop(p, FB_KEY_SIGNED, 0, v, n, bits);
    }
}

/* 16 result bits of rows i..i+15 of key(a) op key(b) */
FB_INLINE uint32_t cmp16_32(fb_key_kind kind, int eq, const uint32_t *a, const uint32_t *b, int64_t i)
{
    uint32_t m = 0;
    for (int h = 0; h < 16; h += FB_N32) {
        fb_vec ka = key32(v_load(a + i + h), kind), kb = key32(v_load(b + i + h), kind);
        m |= mk_bits32(eq ? mk_eq32(ka, kb) : mk_gt32(ka, kb)) << h;
    }
    return m;
}

FB_INLINE uint32_t cmp16_64(fb_key_kind kind, int eq, const uint64_t *a, const uint64_t *b, int64_t i)
{
    uint32_t m = 0;
    for (int h = 0; h < 16; h += FB_N64) {
        fb_vec ka = key64(v_load(a + i + h), kind), kb = key64(v_load(b + i + h), kind);
        m |= mk_bits64(eq ? mk_eq64(ka, kb) : mk_gt64(ka, kb)) << h;
    }
    return m;
}

FB_INLINE void cmp_bits_32_loop(fb_key_kind kind, int eq, uint32_t flip, const uint32_t *a, const uint32_t *b, int64_t n,
                                uint8_t *bits)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        store16(bits + i / 8, cmp16_32(kind, eq, a, b, i) ^ flip);
    clear_tail(bits, i, n);
    for (; i < n; i++)
        bits[i >> 3] |= (uint8_t)((base_key(eq, fb_key_32(a[i], kind), fb_key_32(b[i], kind)) ^ (flip & 1)) << (i & 7));
}

FB_INLINE void cmp_bits_64_loop(fb_key_kind kind, int eq, uint32_t flip, const uint64_t *a, const uint64_t *b, int64_t n,
                                uint8_t *bits)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        store16(bits + i / 8, cmp16_64(kind, eq, a, b, i) ^ flip);
    clear_tail(bits, i, n);
    for (; i < n; i++)
        bits[i >> 3] |= (uint8_t)((base_key(eq, fb_key_64(a[i], kind), fb_key_64(b[i], kind)) ^ (flip & 1)) << (i & 7));
}

static void cmp_bits_32(fb_key_kind kind, fb_cmp op, const uint32_t *a, const uint32_t *b, int64_t n, uint8_t *bits)
{
    cmp_plan c = plan_cmp(op);
    const uint32_t *x = c.swap ? b : a, *y = c.swap ? a : b;
    switch (kind) {
    case FB_KEY_UNSIGNED:
        if (c.eq) cmp_bits_32_loop(FB_KEY_UNSIGNED, 1, c.flip, x, y, n, bits);
        else cmp_bits_32_loop(FB_KEY_UNSIGNED, 0, c.flip, x, y, n, bits);
        break;
    case FB_KEY_FLOAT:
        if (c.eq) cmp_bits_32_loop(FB_KEY_FLOAT, 1, c.flip, x, y, n, bits);
        else cmp_bits_32_loop(FB_KEY_FLOAT, 0, c.flip, x, y, n, bits);
        break;
    default:
        if (c.eq) cmp_bits_32_loop(FB_KEY_SIGNED, 1, c.flip, x, y, n, bits);
        else cmp_bits_32_loop(FB_KEY_SIGNED, 0, c.flip, x, y, n, bits);
    }
}

static void cmp_bits_64(fb_key_kind kind, fb_cmp op, const uint64_t *a, const uint64_t *b, int64_t n, uint8_t *bits)
{
    cmp_plan c = plan_cmp(op);
    const uint64_t *x = c.swap ? b : a, *y = c.swap ? a : b;
    switch (kind) {
    case FB_KEY_UNSIGNED:
        if (c.eq) cmp_bits_64_loop(FB_KEY_UNSIGNED, 1, c.flip, x, y, n, bits);
        else cmp_bits_64_loop(FB_KEY_UNSIGNED, 0, c.flip, x, y, n, bits);
        break;
    case FB_KEY_FLOAT:
        if (c.eq) cmp_bits_64_loop(FB_KEY_FLOAT, 1, c.flip, x, y, n, bits);
        else cmp_bits_64_loop(FB_KEY_FLOAT, 0, c.flip, x, y, n, bits);
        break;
    default:
        if (c.eq) cmp_bits_64_loop(FB_KEY_SIGNED, 1, c.flip, x, y, n, bits);
        else cmp_bits_64_loop(FB_KEY_SIGNED, 0, c.flip, x, y, n, bits);
    }
}

/* Appends the rows base + (set bits of the 16-bit m) to out and returns the new count. The caller
 * guarantees room for 16 entries at out + cnt. AVX-512 compresses into a register and stores all 16
 * lanes (the memory form of vpcompressd is microcoded on Zen 4; see simd_kernels.c); the other
 * targets take one count-trailing-zeros per selected row. */
FB_INLINE int64_t write_rows(uint32_t *out, int64_t cnt, uint32_t base, uint32_t m)
{
#if FB_W512
    fb_vec idx = v_add32(simde_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         v_set32((int32_t)base));
    v_store(out + cnt, simde_mm512_maskz_compress_epi32((simde__mmask16)m, idx));
    return cnt + __builtin_popcount(m);
#else
    while (m) {
        out[cnt++] = base + (uint32_t)__builtin_ctz(m);
        m &= m - 1;
    }
    return cnt;
#endif
}

FB_INLINE int64_t select_cols_32_loop(fb_key_kind kind, int eq, uint32_t flip, const uint32_t *a, fb_bits va,
                                      const uint32_t *b, fb_bits vb, int64_t length, const uint32_t *sel_in, int64_t n_in,
                                      uint32_t *out)
{
    int64_t cnt = 0, j = 0;
    if (!sel_in) {
        for (; j + 16 <= length; j += 16)
            cnt = write_rows(out, cnt, (uint32_t)j,
                             (cmp16_32(kind, eq, a, b, j) ^ flip) & load_bits(va, j, 16) & load_bits(vb, j, 16));
        for (; j < length; j++)
            if (fb_bit_get(va, j) && fb_bit_get(vb, j) &&
                (base_key(eq, fb_key_32(a[j], kind), fb_key_32(b[j], kind)) ^ (int)(flip & 1)))
                out[cnt++] = (uint32_t)j;
        return cnt;
    }
    for (; j < n_in; j++) { /* scattered rows: one at a time, as the scalar variant */
        uint32_t i = sel_in[j];
        if (i >= length)
            return -1;
        out[cnt] = i;
        cnt += fb_bit_get(va, i) && fb_bit_get(vb, i) &&
               (base_key(eq, fb_key_32(a[i], kind), fb_key_32(b[i], kind)) ^ (int)(flip & 1));
    }
    return cnt;
}

FB_INLINE int64_t select_cols_64_loop(fb_key_kind kind, int eq, uint32_t flip, const uint64_t *a, fb_bits va,
                                      const uint64_t *b, fb_bits vb, int64_t length, const uint32_t *sel_in, int64_t n_in,
                                      uint32_t *out)
{
    int64_t cnt = 0, j = 0;
    if (!sel_in) {
        for (; j + 16 <= length; j += 16)
            cnt = write_rows(out, cnt, (uint32_t)j,
                             (cmp16_64(kind, eq, a, b, j) ^ flip) & load_bits(va, j, 16) & load_bits(vb, j, 16));
        for (; j < length; j++)
            if (fb_bit_get(va, j) && fb_bit_get(vb, j) &&
                (base_key(eq, fb_key_64(a[j], kind), fb_key_64(b[j], kind)) ^ (int)(flip & 1)))
                out[cnt++] = (uint32_t)j;
        return cnt;
    }
    for (; j < n_in; j++) { /* scattered rows: one at a time, as the scalar variant */
        uint32_t i = sel_in[j];
        if (i >= length)
            return -1;
        out[cnt] = i;
        cnt += fb_bit_get(va, i) && fb_bit_get(vb, i) &&
               (base_key(eq, fb_key_64(a[i], kind), fb_key_64(b[i], kind)) ^ (int)(flip & 1));
    }
    return cnt;
}

static int64_t select_cols_32(fb_key_kind kind, fb_cmp op, const uint32_t *a, fb_bits va, const uint32_t *b,
                              fb_bits vb, int64_t length, const uint32_t *sel_in, int64_t n_in, uint32_t *out)
{
    cmp_plan c = plan_cmp(op);
    const uint32_t *x = c.swap ? b : a, *y = c.swap ? a : b;
    fb_bits vx = c.swap ? vb : va, vy = c.swap ? va : vb;
    switch (kind) {
    case FB_KEY_UNSIGNED:
        return c.eq ? select_cols_32_loop(FB_KEY_UNSIGNED, 1, c.flip, x, vx, y, vy, length, sel_in, n_in, out)
                    : select_cols_32_loop(FB_KEY_UNSIGNED, 0, c.flip, x, vx, y, vy, length, sel_in, n_in, out);
    case FB_KEY_FLOAT:
        return c.eq ? select_cols_32_loop(FB_KEY_FLOAT, 1, c.flip, x, vx, y, vy, length, sel_in, n_in, out)
                    : select_cols_32_loop(FB_KEY_FLOAT, 0, c.flip, x, vx, y, vy, length, sel_in, n_in, out);
    default:
        return c.eq ? select_cols_32_loop(FB_KEY_SIGNED, 1, c.flip, x, vx, y, vy, length, sel_in, n_in, out)
                    : select_cols_32_loop(FB_KEY_SIGNED, 0, c.flip, x, vx, y, vy, length, sel_in, n_in, out);
    }
}

static int64_t select_cols_64(fb_key_kind kind, fb_cmp op, const uint64_t *a, fb_bits va, const uint64_t *b,
                              fb_bits vb, int64_t length, const uint32_t *sel_in, int64_t n_in, uint32_t *out)
{
    cmp_plan c = plan_cmp(op);
    const uint64_t *x = c.swap ? b : a, *y = c.swap ? a : b;
    fb_bits vx = c.swap ? vb : va, vy = c.swap ? va : vb;
    switch (kind) {
    case FB_KEY_UNSIGNED:
        return c.eq ? select_cols_64_loop(FB_KEY_UNSIGNED, 1, c.flip, x, vx, y, vy, length, sel_in, n_in, out)
                    : select_cols_64_loop(FB_KEY_UNSIGNED, 0, c.flip, x, vx, y, vy, length, sel_in, n_in, out);
    case FB_KEY_FLOAT:
        return c.eq ? select_cols_64_loop(FB_KEY_FLOAT, 1, c.flip, x, vx, y, vy, length, sel_in, n_in, out)
                    : select_cols_64_loop(FB_KEY_FLOAT, 0, c.flip, x, vx, y, vy, length, sel_in, n_in, out);
    default:
        return c.eq ? select_cols_64_loop(FB_KEY_SIGNED, 1, c.flip, x, vx, y, vy, length, sel_in, n_in, out)
                    : select_cols_64_loop(FB_KEY_SIGNED, 0, c.flip, x, vx, y, vy, length, sel_in, n_in, out);
    }
}

/* ================================ arithmetic ===================================================== */

/* First valid row among the overflow bits m of rows i.., or -1. */
FB_INLINE int64_t first_bad(uint32_t m, fb_bits valid, int64_t i, int lanes)
{
    m &= load_bits(valid, i, lanes);
    return m ? i + __builtin_ctz(m) : -1;
}

/* Lanes (32-bit) whose exact product of the 32-bit lanes of a and b does not fit 32 bits; *r the
 * wrapped product. */
FB_INLINE uint32_t mul32_ovf(fb_vec a, fb_vec b, fb_vec *r)
{
    fb_vec lo32 = v_set64(0xFFFFFFFFll), bias = v_set64(0x80000000ll);
    fb_vec e = v_mul_s32(a, b);                           /* even lanes, exact 64-bit */
    fb_vec o = v_mul_s32(v_srli64_32(a), v_srli64_32(b)); /* odd lanes */
    *r = v_or(v_and(e, lo32), v_slli64_32(o));
    /* a product p fits when p + 2^31 lies in [0, 2^32): the high half of that sum is 0 */
    fb_vec flags = v_or(v_srli64_32(v_add64(e, bias)), v_slli64_32(v_srli64_32(v_add64(o, bias))));
    return ~mk_bits32(mk_eq32(flags, v_zero())) & FB_FULL32;
}

FB_INLINE int64_t arith_i32_loop(fb_arith op, const int32_t *a, int ca, const int32_t *b, int cb, fb_bits valid,
                                 int64_t n, int32_t *out)
{
    fb_vec zero = v_zero(), va = v_set32(a[0]), vb = v_set32(b[0]);
    int64_t i = 0;
    for (; i + FB_N32 <= n; i += FB_N32) {
        fb_vec x = ca ? va : v_load(a + i), y = cb ? vb : v_load(b + i), r;
        uint32_t m;
        if (op == FB_ARITH_MUL) {
            m = mul32_ovf(x, y, &r);
        } else {
            r = op == FB_ARITH_ADD ? v_add32(x, y) : v_sub32(x, y);
            fb_vec s = op == FB_ARITH_ADD ? v_and(v_xor(x, r), v_xor(y, r)) : v_and(v_xor(x, y), v_xor(x, r));
            m = mk_bits32(mk_gt32(zero, s));
        }
        v_store(out + i, r);
        if (m) {
            int64_t bad = first_bad(m, valid, i, FB_N32);
            if (bad >= 0)
                return bad;
        }
    }
    for (; i < n; i++) {
        int32_t x = a[ca ? 0 : i], y = b[cb ? 0 : i], r;
        int ovf = op == FB_ARITH_ADD ? __builtin_add_overflow(x, y, &r)
                : op == FB_ARITH_SUB ? __builtin_sub_overflow(x, y, &r)
                                     : __builtin_mul_overflow(x, y, &r);
        out[i] = r;
        if (ovf && fb_bit_get(valid, i))
            return i;
    }
    return -1;
}

FB_INLINE int64_t arith_i64_loop(fb_arith op, const int64_t *a, int ca, const int64_t *b, int cb, fb_bits valid,
                                 int64_t n, int64_t *out)
{
    fb_vec zero = v_zero(), va = v_set64(a[0]), vb = v_set64(b[0]), bias = v_set64(0x80000000ll);
    int64_t i = 0;
    for (; i + FB_N64 <= n; i += FB_N64) {
        fb_vec x = ca ? va : v_load(a + i), y = cb ? vb : v_load(b + i), r;
        uint32_t m = 0;
        if (op == FB_ARITH_MUL) {
            /* both factors in int32 range: the product is the exact 32x32->64 multiply */
            fb_vec wide = v_or(v_srli64_32(v_add64(x, bias)), v_srli64_32(v_add64(y, bias)));
            if (mk_bits64(mk_eq64(wide, zero)) == FB_FULL64) {
                v_store(out + i, v_mul_s32(x, y));
                continue;
            }
            for (int l = 0; l < FB_N64; l++) {
                int64_t p;
                int ovf = __builtin_mul_overflow(a[ca ? 0 : i + l], b[cb ? 0 : i + l], &p);
                out[i + l] = p;
                m |= (uint32_t)ovf << l;
            }
        } else {
            r = op == FB_ARITH_ADD ? v_add64(x, y) : v_sub64(x, y);
            fb_vec s = op == FB_ARITH_ADD ? v_and(v_xor(x, r), v_xor(y, r)) : v_and(v_xor(x, y), v_xor(x, r));
            m = mk_bits64(mk_gt64(zero, s));
            v_store(out + i, r);
        }
        if (m) {
            int64_t bad = first_bad(m, valid, i, FB_N64);
            if (bad >= 0)
                return bad;
        }
    }
    for (; i < n; i++) {
        int64_t x = a[ca ? 0 : i], y = b[cb ? 0 : i], r;
        int ovf = op == FB_ARITH_ADD ? __builtin_add_overflow(x, y, &r)
                : op == FB_ARITH_SUB ? __builtin_sub_overflow(x, y, &r)
                                     : __builtin_mul_overflow(x, y, &r);
        out[i] = r;
        if (ovf && fb_bit_get(valid, i))
            return i;
    }
    return -1;
}

/* Each (op, which operand is constant) gets its own specialized loop. */
static int64_t arith_i32(fb_arith op, const int32_t *a, int ca, const int32_t *b, int cb, fb_bits valid, int64_t n,
                         int32_t *out)
{
    switch (op) {
    case FB_ARITH_ADD:
        return ca ? arith_i32_loop(FB_ARITH_ADD, a, 1, b, 0, valid, n, out)
             : cb ? arith_i32_loop(FB_ARITH_ADD, a, 0, b, 1, valid, n, out)
                  : arith_i32_loop(FB_ARITH_ADD, a, 0, b, 0, valid, n, out);
    case FB_ARITH_SUB:
        return ca ? arith_i32_loop(FB_ARITH_SUB, a, 1, b, 0, valid, n, out)
             : cb ? arith_i32_loop(FB_ARITH_SUB, a, 0, b, 1, valid, n, out)
                  : arith_i32_loop(FB_ARITH_SUB, a, 0, b, 0, valid, n, out);
    default:
        return ca ? arith_i32_loop(FB_ARITH_MUL, a, 1, b, 0, valid, n, out)
             : cb ? arith_i32_loop(FB_ARITH_MUL, a, 0, b, 1, valid, n, out)
                  : arith_i32_loop(FB_ARITH_MUL, a, 0, b, 0, valid, n, out);
    }
}

static int64_t arith_i64(fb_arith op, const int64_t *a, int ca, const int64_t *b, int cb, fb_bits valid, int64_t n,
                         int64_t *out)
{
    switch (op) {
    case FB_ARITH_ADD:
        return ca ? arith_i64_loop(FB_ARITH_ADD, a, 1, b, 0, valid, n, out)
             : cb ? arith_i64_loop(FB_ARITH_ADD, a, 0, b, 1, valid, n, out)
                  : arith_i64_loop(FB_ARITH_ADD, a, 0, b, 0, valid, n, out);
    case FB_ARITH_SUB:
        return ca ? arith_i64_loop(FB_ARITH_SUB, a, 1, b, 0, valid, n, out)
             : cb ? arith_i64_loop(FB_ARITH_SUB, a, 0, b, 1, valid, n, out)
                  : arith_i64_loop(FB_ARITH_SUB, a, 0, b, 0, valid, n, out);
    default:
        return ca ? arith_i64_loop(FB_ARITH_MUL, a, 1, b, 0, valid, n, out)
             : cb ? arith_i64_loop(FB_ARITH_MUL, a, 0, b, 1, valid, n, out)
                  : arith_i64_loop(FB_ARITH_MUL, a, 0, b, 0, valid, n, out);
    }
}

static void arith_f32(fb_arith op, const float *a, int ca, const float *b, int cb, int64_t n, float *out)
{
    fb_vecf fa = f_set(a[0]), fbv = f_set(b[0]);
    int64_t i = 0;
    for (; i + FB_N32 <= n; i += FB_N32) {
        fb_vecf x = ca ? fa : f_load(a + i), y = cb ? fbv : f_load(b + i);
        f_store(out + i, op == FB_ARITH_ADD ? f_add(x, y) : op == FB_ARITH_SUB ? f_sub(x, y) : f_mul(x, y));
    }
    for (; i < n; i++) {
        float x = a[ca ? 0 : i], y = b[cb ? 0 : i];
        out[i] = op == FB_ARITH_ADD ? x + y : op == FB_ARITH_SUB ? x - y : x * y;
    }
}

static void arith_f64(fb_arith op, const double *a, int ca, const double *b, int cb, int64_t n, double *out)
{
    fb_vecd da = d_set(a[0]), db = d_set(b[0]);
    int64_t i = 0;
    for (; i + FB_N64 <= n; i += FB_N64) {
        fb_vecd x = ca ? da : d_load(a + i), y = cb ? db : d_load(b + i);
        d_store(out + i, op == FB_ARITH_ADD ? d_add(x, y) : op == FB_ARITH_SUB ? d_sub(x, y) : d_mul(x, y));
    }
    for (; i < n; i++) {
        double x = a[ca ? 0 : i], y = b[cb ? 0 : i];
        out[i] = op == FB_ARITH_ADD ? x + y : op == FB_ARITH_SUB ? x - y : x * y;
    }
}

/* ================================ casts ========================================================== */

#define CAST_BLOCK 512

static int is_float(fb_type t) { return t == FB_TYPE_FLOAT32 || t == FB_TYPE_FLOAT64; }

/* Range of an integer target as int64 (uint64: [0, INT64_MAX] here; its upper half is handled apart). */
static void int_range(fb_type t, int64_t *lo, int64_t *hi)
{
    switch (t) {
    case FB_TYPE_INT8: *lo = INT8_MIN; *hi = INT8_MAX; break;
    case FB_TYPE_INT16: *lo = INT16_MIN; *hi = INT16_MAX; break;
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: *lo = INT32_MIN; *hi = INT32_MAX; break;
    case FB_TYPE_UINT8: *lo = 0; *hi = UINT8_MAX; break;
    case FB_TYPE_UINT16: *lo = 0; *hi = UINT16_MAX; break;
    case FB_TYPE_UINT32: *lo = 0; *hi = UINT32_MAX; break;
    case FB_TYPE_UINT64: *lo = 0; *hi = INT64_MAX; break;
    default: *lo = INT64_MIN; *hi = INT64_MAX; break;
    }
}

/* Integer source (not uint64) into s[0..m). */
static void load_int(fb_type t, const void *in, int64_t m, int64_t *s)
{
    switch (t) {
    case FB_TYPE_INT8: for (int64_t i = 0; i < m; i++) s[i] = ((const int8_t *)in)[i]; break;
    case FB_TYPE_INT16: for (int64_t i = 0; i < m; i++) s[i] = ((const int16_t *)in)[i]; break;
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: for (int64_t i = 0; i < m; i++) s[i] = ((const int32_t *)in)[i]; break;
    case FB_TYPE_UINT8: for (int64_t i = 0; i < m; i++) s[i] = ((const uint8_t *)in)[i]; break;
    case FB_TYPE_UINT16: for (int64_t i = 0; i < m; i++) s[i] = ((const uint16_t *)in)[i]; break;
    case FB_TYPE_UINT32: for (int64_t i = 0; i < m; i++) s[i] = ((const uint32_t *)in)[i]; break;
    default: memcpy(s, in, (size_t)m * 8); break;
    }
}

/* Stores s[0..m) into an integer or float target; returns nonzero if a value was out of range. */
static int store_from_int(const int64_t *s, int64_t m, fb_type t, void *out)
{
    if (t == FB_TYPE_FLOAT32) {
        for (int64_t i = 0; i < m; i++)
            ((float *)out)[i] = (float)s[i];
        return 0;
    }
    if (t == FB_TYPE_FLOAT64) {
        for (int64_t i = 0; i < m; i++)
            ((double *)out)[i] = (double)s[i];
        return 0;
    }
    int64_t lo, hi;
    int_range(t, &lo, &hi);
    int bad = 0;
    for (int64_t i = 0; i < m; i++)
        bad |= (s[i] < lo) | (s[i] > hi);
    switch (fb_type_width(t)) {
    case 1: for (int64_t i = 0; i < m; i++) ((uint8_t *)out)[i] = (uint8_t)s[i]; break;
    case 2: for (int64_t i = 0; i < m; i++) ((uint16_t *)out)[i] = (uint16_t)s[i]; break;
    case 4: for (int64_t i = 0; i < m; i++) ((uint32_t *)out)[i] = (uint32_t)s[i]; break;
    default: memcpy(out, s, (size_t)m * 8); break;
    }
    return bad;
}

/* Float source (as doubles) into an integer or float target (fb_expr.h's rounding and range rules);
 * an out-of-range value stores 0. */
static int store_from_double(const double *d, int64_t m, fb_type t, void *out)
{
    int bad = 0;
    if (t == FB_TYPE_FLOAT64) {
        memcpy(out, d, (size_t)m * 8);
        return 0;
    }
    if (t == FB_TYPE_FLOAT32) {
        for (int64_t i = 0; i < m; i++) {
            float f = (float)d[i];
            bad |= isfinite(d[i]) && isinf(f);
            ((float *)out)[i] = f;
        }
        return bad;
    }
    double lo, hi_excl; /* the target's range as [lo, hi_excl) of rounded values */
    int64_t ilo, ihi;
    int_range(t, &ilo, &ihi);
    lo = (double)ilo;
    hi_excl = t == FB_TYPE_UINT64 ? 18446744073709551616.0 : t == FB_TYPE_INT64 ? 9223372036854775808.0 : (double)ihi + 1;
    size_t w = fb_type_width(t);
    for (int64_t i = 0; i < m; i++) {
        double r = rint(d[i]);
        int ok = r >= lo && r < hi_excl; /* false for NaN */
        bad |= !ok;
        uint64_t bits = !ok ? 0 : t == FB_TYPE_UINT64 ? (uint64_t)r : (uint64_t)(int64_t)r;
        switch (w) {
        case 1: ((uint8_t *)out)[i] = (uint8_t)bits; break;
        case 2: ((uint16_t *)out)[i] = (uint16_t)bits; break;
        case 4: ((uint32_t *)out)[i] = (uint32_t)bits; break;
        default: ((uint64_t *)out)[i] = bits; break;
        }
    }
    return bad;
}

static int64_t cast(fb_type from, const void *in, fb_type to, void *out, fb_bits valid, int64_t n)
{
    size_t wi = fb_type_width(from), wo = fb_type_width(to);
    int same = from == to || (wi == 4 && (from == FB_TYPE_INT32 || from == FB_TYPE_DATE32) &&
                              (to == FB_TYPE_INT32 || to == FB_TYPE_DATE32));
    if (same) {
        memcpy(out, in, (size_t)n * wi);
        return -1;
    }
    if (to == FB_TYPE_INT64 && !is_float(from) && from != FB_TYPE_UINT64) {
        load_int(from, in, n, out); /* widening into int64: never out of range */
        return -1;
    }
    int64_t s[CAST_BLOCK];
    double d[CAST_BLOCK];
    for (int64_t b = 0; b < n; b += CAST_BLOCK) {
        int64_t m = n - b < CAST_BLOCK ? n - b : CAST_BLOCK;
        const char *src = (const char *)in + (size_t)b * wi;
        char *dst = (char *)out + (size_t)b * wo;
        int bad;
        if (from == FB_TYPE_UINT64) {
            const uint64_t *u = (const uint64_t *)src;
            bad = 0;
            if (to == FB_TYPE_FLOAT32)
                for (int64_t i = 0; i < m; i++)
                    ((float *)dst)[i] = (float)u[i];
            else if (to == FB_TYPE_FLOAT64)
                for (int64_t i = 0; i < m; i++)
                    ((double *)dst)[i] = (double)u[i];
            else {
                int64_t lo, hi;
                int_range(to, &lo, &hi);
                for (int64_t i = 0; i < m; i++) {
                    bad |= u[i] > (uint64_t)hi;
                    s[i] = (int64_t)u[i];
                }
                store_from_int(s, m, to, dst); /* in-range values are nonnegative: no false alarm */
            }
        } else if (is_float(from)) {
            if (from == FB_TYPE_FLOAT32)
                for (int64_t i = 0; i < m; i++)
                    d[i] = ((const float *)src)[i];
            else
                memcpy(d, src, (size_t)m * 8);
            bad = store_from_double(d, m, to, dst);
        } else {
            load_int(from, src, m, s);
            bad = store_from_int(s, m, to, dst);
        }
        if (bad) /* find the first valid row out of range, if any (null rows never fail) */
            for (int64_t i = 0; i < m; i++) {
                char tmp[8];
                if (!fb_expr_cast_one(from, src + (size_t)i * wi, to, tmp) && fb_bit_get(valid, b + i))
                    return b + i;
            }
    }
    return -1;
}

/* ================================ the table ====================================================== */

#if defined(FB_KERNEL_AVX512)
const fb_expr_kernels fb_expr_kernels_avx512 = {
    .isa = FB_ISA_AVX512,
#elif defined(FB_KERNEL_AVX2)
const fb_expr_kernels fb_expr_kernels_avx2 = {
    .isa = FB_ISA_AVX2,
#else
const fb_expr_kernels fb_expr_kernels_base = {
    .isa = FB_ISA_BASE,
#endif
    .pred_bits_32 = pred_bits_32,
    .pred_bits_64 = pred_bits_64,
    .cmp_bits_32 = cmp_bits_32,
    .cmp_bits_64 = cmp_bits_64,
    .select_cols_32 = select_cols_32,
    .select_cols_64 = select_cols_64,
    .arith_i32 = arith_i32,
    .arith_i64 = arith_i64,
    .arith_f32 = arith_f32,
    .arith_f64 = arith_f64,
    .cast = cast,
};
