/* expr.cl - the device half of the expression twins (fb_cl_expr_* in include/fb/fb_cl.h, host side
 * cl_expr.c), computing what kernels/expr.c and kernels/expr_ref.c compute on the CPU, bit for bit:
 *   - booleans (fb_bool: a value and a validity bitmap) one output byte, i.e. 8 rows, per work-item,
 *     so no two work-items write the same byte: predicates (comparison with a constant, BETWEEN,
 *     IN, as ranges or sets of ordered keys like fb_pred on the CPU), column/column comparisons,
 *     Kleene AND/OR/NOT, and the validity of arithmetic and cast outputs;
 *   - an input selection becomes a bitmap first (fb_expr_sel_mask, 32-bit atomic_or: core OpenCL);
 *   - selection-vector outputs (select_cols, bool_to_sel, sel_and/or/not) as a 0/1 flag per
 *     candidate, an exclusive scan (fb_cl_scan: scan.cl and select.cl) and a scatter, so the output
 *     stays in candidate order; a union merges two disjoint ascending vectors by binary search;
 *   - arithmetic and casts one row per work-item; the first failing (valid) row is found with
 *     32-bit atomic_min.
 * Floats: + - * are single IEEE operations in round-to-nearest and contraction is off, so results
 * equal the CPU's bit for bit on a device with IEEE float32/64 (denormals included: CL_FP_DENORM),
 * except NaN payloads, which SQL does not tell apart. Casts use the rounding of fb_expr_cast_one():
 * rint (ties to even) and _rte conversions. Arithmetic and casts need cl_khr_fp64. */

#pragma OPENCL FP_CONTRACT OFF

#define FB_PRED_IN 1

#define FB_CMP_EQ 0
#define FB_CMP_NE 1
#define FB_CMP_LT 2
#define FB_CMP_LE 3
#define FB_CMP_GT 4

#define FB_ARITH_ADD 0
#define FB_ARITH_SUB 1

/* Bit `row` of an input selection's bitmap (uint words, LSB first); every row without one. */
int fb_expr_mask_bit(__global const uint *mask, int has_mask, ulong row)
{
    return has_mask ? (int)((mask[row >> 5] >> (uint)(row & 31)) & 1u) : 1;
}

/* Whether `key` is in the ascending set s[0..n). */
int fb_expr_in_set(__global const long *s, uint n, long key)
{
    uint a = 0, b = n;
    while (a < b) {
        uint mid = (a + b) >> 1;
        if (s[mid] < key)
            a = mid + 1;
        else
            b = mid;
    }
    return a < n && s[a] == key;
}

/* Entries of the ascending vector s[0..n) below x. */
ulong fb_expr_lower_bound(__global const uint *s, ulong n, uint x)
{
    ulong a = 0, b = n;
    while (a < b) {
        ulong mid = (a + b) >> 1;
        if (s[mid] < x)
            a = mid + 1;
        else
            b = mid;
    }
    return a;
}

int fb_expr_cmp_keys(int op, long x, long y)
{
    switch (op) {
    case FB_CMP_EQ: return x == y;
    case FB_CMP_NE: return x != y;
    case FB_CMP_LT: return x < y;
    case FB_CMP_LE: return x <= y;
    case FB_CMP_GT: return x > y;
    default: return x >= y;
    }
}

/* mask bit i := 1 for every i in sel[0..n) (any order); an index ≥ length sets *err instead. */
__kernel void fb_expr_sel_mask(__global const uint *sel, ulong n, ulong length, __global uint *mask,
                               __global uint *err)
{
    for (ulong j = get_global_id(0); j < n; j += get_global_size(0)) {
        uint i = sel[j];
        if (i >= length)
            *err = 1u;
        else
            atomic_or(&mask[i >> 5], 1u << (i & 31u));
    }
}

/* Boolean of a predicate over ordered keys: kind RANGE ((lo <= key <= hi) != negate) or IN (key in
 * set[0..n_set), ascending). Validity = the column's AND the selection's; value bits under a NULL are 0. */
__kernel void fb_expr_pred(__global const uchar *data, int type, __global const uchar *valid, int has_valid,
                           ulong voff, ulong length, __global const uint *mask, int has_mask, int kind, int negate,
                           long lo, long hi, __global const long *set, uint n_set, __global uchar *bits_out,
                           __global uchar *valid_out)
{
    ulong nb = (length + 7) >> 3;
    for (ulong b = get_global_id(0); b < nb; b += get_global_size(0)) {
        uint t = 0, k = 0;
        for (uint r = 0; r < 8; r++) {
            ulong row = 8 * b + r;
            if (row >= length)
                break;
            uint ok = (uint)(fb_bit(valid, has_valid, voff + row) & fb_expr_mask_bit(mask, has_mask, row));
            long key = fb_key(data, type, row);
            int pass = kind == FB_PRED_IN ? fb_expr_in_set(set, n_set, key) : ((lo <= key && key <= hi) != (negate != 0));
            k |= ok << r;
            t |= (ok & (uint)pass) << r;
        }
        bits_out[b] = (uchar)t;
        valid_out[b] = (uchar)k;
    }
}

/* Boolean of key(a) op key(b); validity = a's AND b's AND the selection's. */
__kernel void fb_expr_cmp_cols(__global const uchar *a, int type, __global const uchar *va, int has_va, ulong voa,
                               __global const uchar *b, __global const uchar *vb, int has_vb, ulong vob, ulong length,
                               int op, __global const uint *mask, int has_mask, __global uchar *bits_out,
                               __global uchar *valid_out)
{
    ulong nb = (length + 7) >> 3;
    for (ulong w = get_global_id(0); w < nb; w += get_global_size(0)) {
        uint t = 0, k = 0;
        for (uint r = 0; r < 8; r++) {
            ulong row = 8 * w + r;
            if (row >= length)
                break;
            uint ok = (uint)(fb_bit(va, has_va, voa + row) & fb_bit(vb, has_vb, vob + row) &
                             fb_expr_mask_bit(mask, has_mask, row));
            uint pass = (uint)fb_expr_cmp_keys(op, fb_key(a, type, row), fb_key(b, type, row));
            k |= ok << r;
            t |= (ok & pass) << r;
        }
        bits_out[w] = (uchar)t;
        valid_out[w] = (uchar)k;
    }
}

/* Validity of an arithmetic or cast output: a's AND b's AND the selection's (absent parts: all valid). */
__kernel void fb_expr_validity(__global const uchar *va, int has_va, ulong voa, __global const uchar *vb, int has_vb,
                               ulong vob, __global const uint *mask, int has_mask, ulong length,
                               __global uchar *valid_out)
{
    ulong nb = (length + 7) >> 3;
    for (ulong w = get_global_id(0); w < nb; w += get_global_size(0)) {
        uint k = 0;
        for (uint r = 0; r < 8; r++) {
            ulong row = 8 * w + r;
            if (row >= length)
                break;
            k |= (uint)(fb_bit(va, has_va, voa + row) & fb_bit(vb, has_vb, vob + row) &
                        fb_expr_mask_bit(mask, has_mask, row)) << r;
        }
        valid_out[w] = (uchar)k;
    }
}

/* Kleene logic on bytes (op 0 AND, 1 OR, 2 NOT), as kleene_word in kernels/expr.c; t = TRUE rows,
 * k = known rows. The padding bits of the last byte are cleared. */
__kernel void fb_expr_logic(int op, __global const uchar *ta_in, __global const uchar *va, int has_va,
                            __global const uchar *tb_in, __global const uchar *vb, int has_vb, ulong length,
                            __global uchar *bits_out, __global uchar *valid_out)
{
    ulong nb = (length + 7) >> 3;
    for (ulong w = get_global_id(0); w < nb; w += get_global_size(0)) {
        uint ka = has_va ? va[w] : 0xFFu, ta = ta_in[w] & ka;
        uint kb = 0xFFu, tb = 0u, t, k;
        if (op != 2) {
            kb = has_vb ? vb[w] : 0xFFu;
            tb = tb_in[w] & kb;
        }
        if (op == 0) {
            t = ta & tb;
            k = (ka & kb) | (ka & ~ta) | (kb & ~tb);
        } else if (op == 1) {
            t = ta | tb;
            k = (ka & kb) | ta | tb;
        } else {
            t = ka & ~ta;
            k = ka;
        }
        uint keep = 0xFFu;
        if (w == nb - 1 && (length & 7))
            keep = (1u << (uint)(length & 7)) - 1u;
        bits_out[w] = (uchar)(t & keep);
        valid_out[w] = (uchar)(k & keep);
    }
}

/* ---- selection vectors: flags, then fb_cl_scan, then fb_expr_scatter -------------------------- */

/* flags[j] = candidate j (sel_in[j], or j) is valid in a and b and key(a) op key(b). */
__kernel void fb_expr_cols_flags(__global const uchar *a, int type, __global const uchar *va, int has_va, ulong voa,
                                 __global const uchar *b, __global const uchar *vb, int has_vb, ulong vob,
                                 ulong length, int op, __global const uint *sel_in, int has_sel, ulong n_cand,
                                 __global uint *flags, __global uint *err)
{
    for (ulong j = get_global_id(0); j < n_cand; j += get_global_size(0)) {
        ulong row = has_sel ? (ulong)sel_in[j] : j;
        uint f = 0;
        if (row >= length)
            *err = 1u;
        else
            f = (uint)(fb_bit(va, has_va, voa + row) && fb_bit(vb, has_vb, vob + row) &&
                       fb_expr_cmp_keys(op, fb_key(a, type, row), fb_key(b, type, row)));
        flags[j] = f;
    }
}

/* flags[j] = candidate j of a boolean is TRUE. */
__kernel void fb_expr_bool_flags(__global const uchar *bits, __global const uchar *valid, int has_valid, ulong length,
                                 __global const uint *sel_in, int has_sel, ulong n_cand, __global uint *flags,
                                 __global uint *err)
{
    for (ulong j = get_global_id(0); j < n_cand; j += get_global_size(0)) {
        ulong row = has_sel ? (ulong)sel_in[j] : j;
        uint f = 0;
        if (row >= length)
            *err = 1u;
        else
            f = (uint)(((bits[row >> 3] >> (uint)(row & 7)) & 1) && fb_bit(valid, has_valid, row));
        flags[j] = f;
    }
}

/* flags[j] = (x_j in y[0..n_y)) == want, x_j = x[j] (has_x) or j; x_j ≥ length sets *err. */
__kernel void fb_expr_member_flags(__global const uint *x, int has_x, ulong n_x, __global const uint *y, ulong n_y,
                                   uint want, ulong length, __global uint *flags, __global uint *err)
{
    for (ulong j = get_global_id(0); j < n_x; j += get_global_size(0)) {
        ulong r = has_x ? (ulong)x[j] : j;
        if (r >= length)
            *err = 1u;
        ulong p = fb_expr_lower_bound(y, n_y, (uint)r);
        uint in = p < n_y && y[p] == (uint)r;
        flags[j] = in == want;
    }
}

/* out[aux[i]] = src[i] (has_src) or i wherever aux[i + 1] != aux[i] (aux: exclusive prefix sums of
 * 0/1 flags, n + 1 entries). */
__kernel void fb_expr_scatter(__global const uint *aux, ulong n, __global const uint *src, int has_src,
                              __global uint *out)
{
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0)) {
        uint o = aux[i];
        if (aux[i + 1] != o)
            out[o] = has_src ? src[i] : (uint)i;
    }
}

/* Union of two disjoint ascending vectors: each entry goes to its index plus its rank in the other. */
__kernel void fb_expr_merge(__global const uint *a, ulong n_a, __global const uint *b, ulong n_b, __global uint *out)
{
    for (ulong i = get_global_id(0); i < n_a + n_b; i += get_global_size(0)) {
        if (i < n_a)
            out[i + fb_expr_lower_bound(b, n_b, a[i])] = a[i];
        else
            out[i - n_a + fb_expr_lower_bound(a, n_a, b[i - n_a])] = b[i - n_a];
    }
}

#if defined(cl_khr_fp64)
#pragma OPENCL EXTENSION cl_khr_fp64 : enable

/* ---- arithmetic and casts -------------------------------------------------------------------- */

/* out[i] = a[i] op b[i] over int32, int64, float32 or float64 lanes; an operand flagged *_const is
 * the constant c* (its bits) for every row. Integers wrap in the output and the first valid row
 * whose exact result does not fit goes to *bad (atomic_min; the host sets it to 0xFFFFFFFF). */
__kernel void fb_expr_arith(int op, int type, __global const uchar *a, int a_const, ulong ca,
                            __global const uchar *b, int b_const, ulong cb, __global const uchar *valid,
                            int has_valid, ulong length, __global uchar *out, __global uint *bad)
{
    for (ulong i = get_global_id(0); i < length; i += get_global_size(0)) {
        switch (type) {
        case FB_TYPE_INT32: {
            long x = (long)(a_const ? as_int((uint)ca) : ((__global const int *)a)[i]);
            long y = (long)(b_const ? as_int((uint)cb) : ((__global const int *)b)[i]);
            long r = op == FB_ARITH_ADD ? x + y : op == FB_ARITH_SUB ? x - y : x * y;
            ((__global int *)out)[i] = as_int((uint)(ulong)r);
            if ((r < -2147483648L || r > 2147483647L) && fb_bit(valid, has_valid, i))
                atomic_min(bad, (uint)i);
            break;
        }
        case FB_TYPE_INT64: {
            long x = a_const ? as_long(ca) : ((__global const long *)a)[i];
            long y = b_const ? as_long(cb) : ((__global const long *)b)[i];
            long r;
            int ovf;
            if (op == FB_ARITH_ADD) {
                r = as_long(as_ulong(x) + as_ulong(y));
                ovf = ((x ^ r) & (y ^ r)) < 0;
            } else if (op == FB_ARITH_SUB) {
                r = as_long(as_ulong(x) - as_ulong(y));
                ovf = ((x ^ y) & (x ^ r)) < 0;
            } else {
                r = as_long(as_ulong(x) * as_ulong(y));
                ovf = mul_hi(x, y) != (r >> 63);
            }
            ((__global long *)out)[i] = r;
            if (ovf && fb_bit(valid, has_valid, i))
                atomic_min(bad, (uint)i);
            break;
        }
        case FB_TYPE_FLOAT32: {
            float x = as_float(a_const ? (uint)ca : ((__global const uint *)a)[i]);
            float y = as_float(b_const ? (uint)cb : ((__global const uint *)b)[i]);
            ((__global float *)out)[i] = op == FB_ARITH_ADD ? x + y : op == FB_ARITH_SUB ? x - y : x * y;
            break;
        }
        default: {
            double x = as_double(a_const ? ca : ((__global const ulong *)a)[i]);
            double y = as_double(b_const ? cb : ((__global const ulong *)b)[i]);
            ((__global double *)out)[i] = op == FB_ARITH_ADD ? x + y : op == FB_ARITH_SUB ? x - y : x * y;
            break;
        }
        }
    }
}

/* Stores the low bytes of `bits` as row i of a column of type `to`. */
void fb_expr_store(__global uchar *out, int to, ulong i, ulong bits)
{
    switch (to) {
    case FB_TYPE_INT8:
    case FB_TYPE_UINT8: out[i] = (uchar)bits; break;
    case FB_TYPE_INT16:
    case FB_TYPE_UINT16: ((__global ushort *)out)[i] = (ushort)bits; break;
    case FB_TYPE_INT32:
    case FB_TYPE_UINT32:
    case FB_TYPE_FLOAT32:
    case FB_TYPE_DATE32: ((__global uint *)out)[i] = (uint)bits; break;
    default: ((__global ulong *)out)[i] = bits; break;
    }
}

/* One cast (fb_expr_cast_one in kernels/expr_ref.c): *bits = the target value's bits, returns 1,
 * or returns 0 when the value is outside the target's range. */
int fb_expr_cast_one(__global const uchar *in, int from, ulong i, int to, ulong *bits)
{
    /* the source as exact int64 (form 0), uint64 (1) or double (2) */
    int form = 0;
    long s = 0;
    ulong u = 0;
    double d = 0.0;
    if (from == FB_TYPE_UINT64) {
        u = ((__global const ulong *)in)[i];
        form = 1;
    } else if (from == FB_TYPE_FLOAT32) {
        d = (double)as_float(((__global const uint *)in)[i]);
        form = 2;
    } else if (from == FB_TYPE_FLOAT64) {
        d = as_double(((__global const ulong *)in)[i]);
        form = 2;
    } else {
        s = as_long(fb_widen(in, from, i));
    }
    if (to == FB_TYPE_FLOAT64) {
        double r = form == 0 ? convert_double_rte(s) : form == 1 ? convert_double_rte(u) : d;
        *bits = as_ulong(r);
        return 1;
    }
    if (to == FB_TYPE_FLOAT32) {
        float r = form == 0 ? convert_float_rte(s) : form == 1 ? convert_float_rte(u) : convert_float_rte(d);
        if (form == 2 && isfinite(d) && isinf(r))
            return 0;
        *bits = (ulong)as_uint(r);
        return 1;
    }
    long lo, hi;
    switch (to) {
    case FB_TYPE_INT8: lo = -128L; hi = 127L; break;
    case FB_TYPE_INT16: lo = -32768L; hi = 32767L; break;
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: lo = -2147483648L; hi = 2147483647L; break;
    case FB_TYPE_UINT8: lo = 0; hi = 255L; break;
    case FB_TYPE_UINT16: lo = 0; hi = 65535L; break;
    case FB_TYPE_UINT32: lo = 0; hi = 4294967295L; break;
    case FB_TYPE_UINT64: lo = 0; hi = LONG_MAX; break;
    default: lo = LONG_MIN; hi = LONG_MAX; break;
    }
    if (form == 2) {
        if (isnan(d))
            return 0;
        double r = rint(d);
        if (to == FB_TYPE_UINT64) {
            if (!(r >= 0.0 && r < 18446744073709551616.0))
                return 0;
            *bits = convert_ulong(r);
        } else if (to == FB_TYPE_INT64) {
            if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0))
                return 0;
            *bits = as_ulong(convert_long(r));
        } else {
            if (!(r >= (double)lo && r <= (double)hi))
                return 0;
            *bits = as_ulong(convert_long(r));
        }
    } else if (form == 1) {
        if (to != FB_TYPE_UINT64 && u > (ulong)hi)
            return 0;
        *bits = u;
    } else {
        if (s < lo || (to != FB_TYPE_UINT64 && s > hi))
            return 0;
        *bits = as_ulong(s);
    }
    return 1;
}

/* out[i] = CAST(in[i] AS to); a value out of range is written as 0 and, in a valid row, the first
 * such row goes to *bad (atomic_min). */
__kernel void fb_expr_cast(__global const uchar *in, int from, int to, __global const uchar *valid, int has_valid,
                           ulong length, __global uchar *out, __global uint *bad)
{
    for (ulong i = get_global_id(0); i < length; i += get_global_size(0)) {
        ulong bits = 0;
        if (!fb_expr_cast_one(in, from, i, to, &bits)) {
            bits = 0;
            if (fb_bit(valid, has_valid, i))
                atomic_min(bad, (uint)i);
        }
        fb_expr_store(out, to, i, bits);
    }
}

#endif /* cl_khr_fp64 */
