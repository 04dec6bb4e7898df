/* expr_ref.c - the scalar variant of the expression kernels (fb_expr_internal.h): plain C, one row
 * at a time. It is what FB_ISA=scalar runs and what the SIMD variants are tested against; its
 * fb_expr_cast_one() is also the SIMD variants' path for rows their fast paths leave out. */
#include "fb_expr_internal.h"

#include <math.h>
#include <string.h>

/* ---- comparisons ------------------------------------------------------------------------------ */

static void set_bit(uint8_t *bits, int64_t i, int on)
{
    if (on)
        bits[i >> 3] |= (uint8_t)(1u << (i & 7));
}

static void pred_bits_32(const fb_pred *p, const uint32_t *v, int64_t n, uint8_t *bits)
{
    memset(bits, 0, (size_t)((n + 7) / 8));
    for (int64_t i = 0; i < n; i++)
        set_bit(bits, i, fb_pred_test(p, fb_key_32(v[i], p->key)));
}

static void pred_bits_64(const fb_pred *p, const uint64_t *v, int64_t n, uint8_t *bits)
{
    memset(bits, 0, (size_t)((n + 7) / 8));
    for (int64_t i = 0; i < n; i++)
        set_bit(bits, i, fb_pred_test(p, fb_key_64(v[i], p->key)));
}

static void cmp_bits_32(fb_key_kind kind, fb_cmp op, const uint32_t *a, const uint32_t *b, int64_t n, uint8_t *bits)
{
    memset(bits, 0, (size_t)((n + 7) / 8));
    for (int64_t i = 0; i < n; i++)
        set_bit(bits, i, fb_expr_cmp_keys(op, fb_key_32(a[i], kind), fb_key_32(b[i], kind)));
}

static void cmp_bits_64(fb_key_kind kind, fb_cmp op, const uint64_t *a, const uint64_t *b, int64_t n, uint8_t *bits)
{
    memset(bits, 0, (size_t)((n + 7) / 8));
    for (int64_t i = 0; i < n; i++)
        set_bit(bits, i, fb_expr_cmp_keys(op, fb_key_64(a[i], kind), fb_key_64(b[i], kind)));
}

static int64_t select_cols_32(fb_key_kind kind, fb_cmp op, const uint32_t *a, fb_bits va, const uint32_t *b,
                              fb_bits vb, int64_t length, const uint32_t *sel_in, int64_t n_in, uint32_t *out)
{
    int64_t n = sel_in ? n_in : length, k = 0;
    for (int64_t j = 0; j < n; j++) {
        int64_t i = sel_in ? (int64_t)sel_in[j] : j;
        if (i >= length)
            return -1;
        if (fb_bit_get(va, i) && fb_bit_get(vb, i) &&
            fb_expr_cmp_keys(op, fb_key_32(a[i], kind), fb_key_32(b[i], kind)))
            out[k++] = (uint32_t)i;
    }
    return k;
}

static int64_t select_cols_64(fb_key_kind kind, fb_cmp op, const uint64_t *a, fb_bits va, const uint64_t *b,
                              fb_bits vb, int64_t length, const uint32_t *sel_in, int64_t n_in, uint32_t *out)
{
    int64_t n = sel_in ? n_in : length, k = 0;
    for (int64_t j = 0; j < n; j++) {
        int64_t i = sel_in ? (int64_t)sel_in[j] : j;
        if (i >= length)
            return -1;
        if (fb_bit_get(va, i) && fb_bit_get(vb, i) &&
            fb_expr_cmp_keys(op, fb_key_64(a[i], kind), fb_key_64(b[i], kind)))
            out[k++] = (uint32_t)i;
    }
    return k;
}

/* ---- arithmetic --------------------------------------------------------------------------------- */

static int64_t arith_i32(fb_arith op, const int32_t *a, int a_const, const int32_t *b, int b_const, fb_bits valid,
                         int64_t n, int32_t *out)
{
    int64_t bad = -1;
    for (int64_t i = 0; i < n; i++) {
        int32_t x = a[a_const ? 0 : i], y = b[b_const ? 0 : i], r;
        int ovf = op == FB_ARITH_ADD ? __builtin_add_overflow(x, y, &r)
                : op == FB_ARITH_SUB ? __builtin_sub_overflow(x, y, &r)
                                     : __builtin_mul_overflow(x, y, &r);
        out[i] = r;
        if (ovf && bad < 0 && fb_bit_get(valid, i))
            bad = i;
    }
    return bad;
}

static int64_t arith_i64(fb_arith op, const int64_t *a, int a_const, const int64_t *b, int b_const, fb_bits valid,
                         int64_t n, int64_t *out)
{
    int64_t bad = -1;
    for (int64_t i = 0; i < n; i++) {
        int64_t x = a[a_const ? 0 : i], y = b[b_const ? 0 : i], r;
        int ovf = op == FB_ARITH_ADD ? __builtin_add_overflow(x, y, &r)
                : op == FB_ARITH_SUB ? __builtin_sub_overflow(x, y, &r)
                                     : __builtin_mul_overflow(x, y, &r);
        out[i] = r;
        if (ovf && bad < 0 && fb_bit_get(valid, i))
            bad = i;
    }
    return bad;
}

static void arith_f32(fb_arith op, const float *a, int a_const, const float *b, int b_const, int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i++) {
        float x = a[a_const ? 0 : i], y = b[b_const ? 0 : i];
        out[i] = op == FB_ARITH_ADD ? x + y : op == FB_ARITH_SUB ? x - y : x * y;
    }
}

static void arith_f64(fb_arith op, const double *a, int a_const, const double *b, int b_const, int64_t n,
                      double *out)
{
    for (int64_t i = 0; i < n; i++) {
        double x = a[a_const ? 0 : i], y = b[b_const ? 0 : i];
        out[i] = op == FB_ARITH_ADD ? x + y : op == FB_ARITH_SUB ? x - y : x * y;
    }
}

/* ---- casts -------------------------------------------------------------------------------------- */

/* Source value in one of three forms: exact int64 (every integer type but large uint64), uint64, double. */
enum { SRC_I64, SRC_U64, SRC_F64 };

int fb_expr_cast_one(fb_type from, const void *in, fb_type to, void *out)
{
    int form = SRC_I64;
    int64_t s = 0;
    uint64_t u = 0;
    double d = 0;
    switch (from) {
    case FB_TYPE_INT8: { int8_t x; memcpy(&x, in, 1); s = x; break; }
    case FB_TYPE_INT16: { int16_t x; memcpy(&x, in, 2); s = x; break; }
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: { int32_t x; memcpy(&x, in, 4); s = x; break; }
    case FB_TYPE_INT64: memcpy(&s, in, 8); break;
    case FB_TYPE_UINT8: { uint8_t x; memcpy(&x, in, 1); s = x; break; }
    case FB_TYPE_UINT16: { uint16_t x; memcpy(&x, in, 2); s = x; break; }
    case FB_TYPE_UINT32: { uint32_t x; memcpy(&x, in, 4); s = x; break; }
    case FB_TYPE_UINT64: memcpy(&u, in, 8); form = SRC_U64; break;
    case FB_TYPE_FLOAT32: { float x; memcpy(&x, in, 4); d = x; form = SRC_F64; break; }
    default: memcpy(&d, in, 8); form = SRC_F64; break;
    }
    if (to == FB_TYPE_FLOAT32 || to == FB_TYPE_FLOAT64) {
        if (to == FB_TYPE_FLOAT64) {
            double r = form == SRC_I64 ? (double)s : form == SRC_U64 ? (double)u : d;
            memcpy(out, &r, 8);
            return 1;
        }
        float r = form == SRC_I64 ? (float)s : form == SRC_U64 ? (float)u : (float)d;
        if (form == SRC_F64 && isfinite(d) && isinf(r))
            return 0;
        memcpy(out, &r, 4);
        return 1;
    }
    /* integer target: its range as int64 [lo, hi], uint64 separately */
    int64_t lo, hi;
    switch (to) {
    case FB_TYPE_INT8: lo = INT8_MIN; hi = INT8_MAX; break;
    case FB_TYPE_INT16: lo = INT16_MIN; hi = INT16_MAX; break;
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: lo = INT32_MIN; hi = INT32_MAX; break;
    case FB_TYPE_UINT8: lo = 0; hi = UINT8_MAX; break;
    case FB_TYPE_UINT16: lo = 0; hi = UINT16_MAX; break;
    case FB_TYPE_UINT32: lo = 0; hi = UINT32_MAX; break;
    case FB_TYPE_UINT64: lo = 0; hi = INT64_MAX; break;
    default: lo = INT64_MIN; hi = INT64_MAX; break;
    }
    uint64_t bits; /* the target value's two's-complement bits */
    if (form == SRC_F64) {
        if (isnan(d))
            return 0;
        double r = rint(d); /* ties to even in the default rounding mode */
        if (to == FB_TYPE_UINT64) {
            if (!(r >= 0.0 && r < 18446744073709551616.0))
                return 0;
            bits = (uint64_t)r;
        } else if (to == FB_TYPE_INT64) {
            if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0))
                return 0;
            bits = (uint64_t)(int64_t)r;
        } else {
            if (!(r >= (double)lo && r <= (double)hi))
                return 0;
            bits = (uint64_t)(int64_t)r;
        }
    } else if (form == SRC_U64) {
        if (to != FB_TYPE_UINT64 && u > (uint64_t)hi)
            return 0;
        bits = u;
    } else {
        if (s < lo || (to != FB_TYPE_UINT64 && s > hi))
            return 0;
        bits = (uint64_t)s;
    }
    memcpy(out, &bits, fb_type_width(to)); /* little-endian: the low bytes */
    return 1;
}

static int64_t cast(fb_type from, const void *in, fb_type to, void *out, fb_bits valid, int64_t n)
{
    size_t wi = fb_type_width(from), wo = fb_type_width(to);
    int64_t bad = -1;
    for (int64_t i = 0; i < n; i++) {
        char *o = (char *)out + (size_t)i * wo;
        if (!fb_expr_cast_one(from, (const char *)in + (size_t)i * wi, to, o)) {
            memset(o, 0, wo);
            if (bad < 0 && fb_bit_get(valid, i))
                bad = i;
        }
    }
    return bad;
}

const fb_expr_kernels fb_expr_kernels_scalar = {
    .isa = FB_ISA_SCALAR,
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
