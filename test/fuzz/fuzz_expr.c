/* fuzz_expr.c - libFuzzer target for the expression kernels (fb_expr.h, and the selections of
 * fb_kernels.h) on every CPU variant.
 *
 * The input is a sequence of up to 4 operations, each decoded from its bytes: comparisons of a column
 * with a constant or another column (boolean and selection-vector forms), BETWEEN, IN, AND / OR / NOT of
 * three-valued booleans, boolean to selection, intersection / union / complement of selection vectors,
 * arithmetic (+ - * of int32, int64, float32, float64, column/column and column/constant on either
 * side) and casts between every pair of types. Columns have any length (0..200), offsets, null masks,
 * every edge value; an optional input selection restricts the rows. Each result is checked against
 * scalar code here: SQL comparisons (NaN largest, -0.0 = 0.0), Kleene logic, canonical booleans (value
 * bit 0 under NULL, padding 0), FB_ERR_OVERFLOW exactly when a selected non-null row overflows (integer
 * arithmetic, out-of-range casts, NaN/inf to integer, finite float64 beyond float32), values bit for bit
 * (floats: any NaN for a NaN), rows outside the selection NULL. */
#include "fuzz_common.h"

#define MAX_ROWS 200

enum { T_FALSE = 0, T_TRUE = 1, T_NULL = 2 };

static int cmp_holds(int c, fb_cmp op)
{
    switch (op) {
    case FB_CMP_EQ: return c == 0;
    case FB_CMP_NE: return c != 0;
    case FB_CMP_LT: return c < 0;
    case FB_CMP_LE: return c <= 0;
    case FB_CMP_GT: return c > 0;
    default: return c >= 0;
    }
}

static int bit(const uint8_t *b, int64_t i) { return (b[i >> 3] >> (i & 7)) & 1; }

/* Checks a boolean output against want (T_FALSE/T_TRUE/T_NULL per row), canonical form included. */
static void check_bool(fb_ctx *ctx, const char *what, const fb_bool *o, const uint8_t *want, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        int v = bit(o->validity, i), b = bit(o->bits, i);
        int got = !v ? T_NULL : b ? T_TRUE : T_FALSE;
        FZ_CHECK(got == want[i] && (v || !b), "%s row %lld: %d (value bit %d), expected %d [isa %s]", what, (long long)i,
                 got, b, want[i], fb_isa_name(fb_ctx_isa(ctx)));
    }
    for (int64_t i = n; i < (n + 7) / 8 * 8; i++)
        FZ_CHECK(!bit(o->validity, i) && !bit(o->bits, i), "%s: padding bit %lld set", what, (long long)i);
}

/* The selection vector equals the TRUE rows of want among the candidates. */
static void check_sel(fb_ctx *ctx, const char *what, const uint32_t *sel, int64_t n_sel, const uint8_t *want, int64_t n)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (want[i] == T_TRUE) {
            FZ_CHECK(k < n_sel && sel[k] == (uint32_t)i, "%s: row %lld missing [isa %s]", what, (long long)i,
                     fb_isa_name(fb_ctx_isa(ctx)));
            k++;
        }
    FZ_CHECK(k == n_sel, "%s: %lld rows selected, expected %lld [isa %s]", what, (long long)n_sel, (long long)k,
             fb_isa_name(fb_ctx_isa(ctx)));
}

/* An optional strictly ascending selection of 0..n-1; in_sel[i] says whether row i is a candidate. */
static uint32_t *decode_sel(fz_in *in, int64_t n, int64_t *n_sel, uint8_t *in_sel)
{
    int use = n > 0 && (fz_u8(in) & 1);
    *n_sel = 0;
    memset(in_sel, 1, (size_t)n + 1);
    if (!use)
        return NULL;
    uint32_t *s = malloc(((size_t)n + 1) * sizeof *s);
    uint8_t bits = 0;
    for (int64_t i = 0; i < n; i++) {
        if ((i & 7) == 0)
            bits = fz_u8(in);
        in_sel[i] = (bits >> (i & 7)) & 1;
        if (in_sel[i])
            s[(*n_sel)++] = (uint32_t)i;
    }
    return s;
}

static void decode_bool(fz_in *in, int64_t n, fb_bool *b, uint8_t *state)
{
    size_t nb = ((size_t)n + 7) / 8 + 1;
    b->length = n;
    b->bits = malloc(nb);
    b->validity = (fz_u8(in) & 1) ? malloc(nb) : NULL;
    for (size_t i = 0; i < nb; i++) {
        b->bits[i] = fz_u8(in);
        if (b->validity)
            b->validity[i] = fz_u8(in);
    }
    for (int64_t i = 0; i < n; i++)
        state[i] = b->validity && !bit(b->validity, i) ? T_NULL : bit(b->bits, i) ? T_TRUE : T_FALSE;
}

static void free_bool(fb_bool *b)
{
    free(b->bits);
    free(b->validity);
}

/* Arithmetic on one row; returns 0 on integer overflow. */
static int arith_one(fb_type t, fb_arith op, const void *a, const void *b, void *out)
{
    if (t == FB_TYPE_INT32 || t == FB_TYPE_INT64) {
        int64_t x = fz_get_i64(t, a), y = fz_get_i64(t, b), r;
        int ovf = op == FB_ARITH_ADD ? __builtin_add_overflow(x, y, &r)
                  : op == FB_ARITH_SUB ? __builtin_sub_overflow(x, y, &r)
                                       : __builtin_mul_overflow(x, y, &r);
        if (ovf || (t == FB_TYPE_INT32 && (r < INT32_MIN || r > INT32_MAX)))
            return 0;
        memcpy(out, &r, fb_type_width(t));
        return 1;
    }
    if (t == FB_TYPE_FLOAT32) {
        float x, y, r;
        memcpy(&x, a, 4), memcpy(&y, b, 4);
        r = op == FB_ARITH_ADD ? x + y : op == FB_ARITH_SUB ? x - y : x * y;
        memcpy(out, &r, 4);
        return 1;
    }
    double x, y, r;
    memcpy(&x, a, 8), memcpy(&y, b, 8);
    r = op == FB_ARITH_ADD ? x + y : op == FB_ARITH_SUB ? x - y : x * y;
    memcpy(out, &r, 8);
    return 1;
}

/* CAST of one value; returns 0 when it fails (overflow). */
static int cast_one(fb_type from, const void *in, fb_type to, void *out)
{
    size_t wo = fb_type_width(to);
    if (to == FB_TYPE_FLOAT64 || to == FB_TYPE_FLOAT32) {
        double d;
        float f;
        if (from == FB_TYPE_FLOAT32 || from == FB_TYPE_FLOAT64) {
            d = fz_get_f64(from, in);
            f = (float)d;
            if (to == FB_TYPE_FLOAT32 && isfinite(d) && isinf(f))
                return 0;
        } else if (from == FB_TYPE_UINT64) {
            uint64_t u = (uint64_t)fz_get_i64(from, in);
            d = (double)u, f = (float)u;
        } else {
            int64_t s = fz_get_i64(from, in);
            d = (double)s, f = (float)s;
        }
        if (to == FB_TYPE_FLOAT64)
            memcpy(out, &d, 8);
        else
            memcpy(out, &f, 4);
        return 1;
    }
    /* integer target: range as [lo, hi] in 128 bits */
    __int128 lo, hi, v;
    switch (to) {
    case FB_TYPE_INT8: lo = INT8_MIN, hi = INT8_MAX; break;
    case FB_TYPE_INT16: lo = INT16_MIN, hi = INT16_MAX; break;
    case FB_TYPE_INT32: case FB_TYPE_DATE32: lo = INT32_MIN, hi = INT32_MAX; break;
    case FB_TYPE_INT64: lo = INT64_MIN, hi = INT64_MAX; break;
    case FB_TYPE_UINT8: lo = 0, hi = UINT8_MAX; break;
    case FB_TYPE_UINT16: lo = 0, hi = UINT16_MAX; break;
    case FB_TYPE_UINT32: lo = 0, hi = UINT32_MAX; break;
    default: lo = 0, hi = UINT64_MAX; break;
    }
    if (from == FB_TYPE_FLOAT32 || from == FB_TYPE_FLOAT64) {
        double d = fz_get_f64(from, in);
        if (!isfinite(d))
            return 0;
        double r = rint(d);
        if (!(r >= -0x1p64 && r < 0x1p64))
            return 0;
        v = r < 0 ? -(__int128)(uint64_t)(-r) : (__int128)(uint64_t)r;
    } else if (from == FB_TYPE_UINT64) {
        v = (__int128)(uint64_t)fz_get_i64(from, in);
    } else {
        v = fz_get_i64(from, in);
    }
    if (v < lo || v > hi)
        return 0;
    uint64_t bits = (uint64_t)v;
    memcpy(out, &bits, wo);
    return 1;
}

static int same_value(fb_type t, const void *a, const void *b)
{
    if (fz_is_float(t) && isnan(fz_get_f64(t, a)))
        return isnan(fz_get_f64(t, b));
    return !memcmp(a, b, fb_type_width(t));
}

/* Checks an arithmetic or cast output against want values / row state (T_NULL rows skipped), or the
 * expected overflow. */
static void check_values(fb_ctx *ctx, const char *what, fb_status st, int overflow, const fb_column_out *o,
                         const uint8_t *state, const uint8_t *want, int64_t n)
{
    const char *isa = fb_isa_name(fb_ctx_isa(ctx));
    if (overflow) {
        FZ_CHECK(st == FB_ERR_OVERFLOW && o->length == 0, "%s: %s (length %lld), expected FB_ERR_OVERFLOW [isa %s]", what,
                 fb_status_name(st), (long long)o->length, isa);
        return;
    }
    FZ_CHECK(st == FB_OK, "%s: %s (%s) [isa %s]", what, fb_status_name(st), fb_last_error(ctx), isa);
    FZ_CHECK(o->length == n, "%s: length %lld, expected %lld", what, (long long)o->length, (long long)n);
    size_t w = fb_type_width(o->type);
    int64_t nulls = 0;
    for (int64_t i = 0; i < n; i++) {
        int v = o->validity ? bit(o->validity, i) : 1;
        FZ_CHECK(v == (state[i] != T_NULL), "%s row %lld: validity %d [isa %s]", what, (long long)i, v, isa);
        nulls += !v;
        if (v)
            FZ_CHECK(same_value(o->type, (const uint8_t *)o->data + (size_t)i * w, want + (size_t)i * w),
                     "%s row %lld: %.17g, expected %.17g (%s) [isa %s]", what, (long long)i,
                     fz_get_f64(o->type, (const uint8_t *)o->data + (size_t)i * w), fz_get_f64(o->type, want + (size_t)i * w),
                     fb_type_name(o->type), isa);
    }
    FZ_CHECK(o->null_count == nulls, "%s: null_count %lld, expected %lld [isa %s]", what, (long long)o->null_count,
             (long long)nulls, isa);
}

static void one_op(fz_in *in, int nctx)
{
    int kind = (int)fz_pick(in, 9);
    int64_t n = fz_pick(in, MAX_ROWS + 1);
    fb_type t = fz_all_types[fz_pick(in, FZ_N_TYPES)];
    size_t nb = ((size_t)n + 7) / 8 + 1;
    uint8_t *in_sel = malloc((size_t)n + 1), *want = malloc((size_t)n + 1), *want2 = malloc((size_t)n + 1);
    uint8_t *obits = malloc(nb), *ovalid = malloc(nb);
    uint32_t *sel_out = malloc(((size_t)n * 2 + 1) * sizeof *sel_out);
    int64_t n_sel = 0, n_out = -1;
    fz_col a = {0}, b = {0};
    uint32_t *sel = NULL;
    uint8_t *vals = NULL, *wantv = malloc((size_t)n * 8 + 8), *outv = malloc((size_t)n * 8 + 8);
    fb_bool ba = {0}, bb = {0}, out = {n, obits, ovalid};

    if (kind <= 3) { /* cmp const, cmp cols, between, in */
        fb_cmp op = (fb_cmp)fz_pick(in, 6);
        fz_column(in, t, n, 1, -1, &a);
        if (kind == 1)
            fz_column(in, t, n, 1, -1, &b);
        int nv = kind == 3 ? 1 + (int)fz_pick(in, 12) : 2;
        size_t w = fb_type_width(t);
        vals = malloc((size_t)nv * w);
        for (int i = 0; i < nv; i++)
            fz_value(in, t, (fz_u8(in) & 1) ? 8 : 0, vals + (size_t)i * w);
        sel = decode_sel(in, n, &n_sel, in_sel);
        for (int64_t i = 0; i < n; i++) {
            if (!in_sel[i] || !fz_valid(&a.col, i) || (kind == 1 && !fz_valid(&b.col, i))) {
                want[i] = T_NULL;
                continue;
            }
            const void *x = fz_at(&a.col, i);
            int r;
            if (kind == 0)
                r = cmp_holds(fz_cmp_values(t, x, vals), op);
            else if (kind == 1)
                r = cmp_holds(fz_cmp_values(t, x, fz_at(&b.col, i)), op);
            else if (kind == 2)
                r = fz_cmp_values(t, x, vals) >= 0 && fz_cmp_values(t, x, vals + w) <= 0;
            else {
                r = 0;
                for (int k = 0; k < nv; k++)
                    r |= fz_cmp_values(t, x, vals + (size_t)k * w) == 0;
            }
            want[i] = (uint8_t)r;
        }
        for (int v = 0; v < nctx; v++) {
            fb_ctx *ctx = fz_ctx[v];
            const char *what[] = {"fb_expr_cmp", "fb_expr_cmp_cols", "fb_expr_between", "fb_expr_in"};
            if (kind == 0)
                FZ_OK(ctx, fb_expr_cmp(ctx, &a.col, op, vals, sel, n_sel, &out));
            else if (kind == 1)
                FZ_OK(ctx, fb_expr_cmp_cols(ctx, &a.col, op, &b.col, sel, n_sel, &out));
            else if (kind == 2)
                FZ_OK(ctx, fb_expr_between(ctx, &a.col, vals, vals + w, sel, n_sel, &out));
            else
                FZ_OK(ctx, fb_expr_in(ctx, &a.col, vals, nv, sel, n_sel, &out));
            check_bool(ctx, what[kind], &out, want, n);
            int64_t cap = sel ? n_sel : n;
            if (kind == 0)
                FZ_OK(ctx, fb_select_cmp(ctx, &a.col, op, vals, sel, n_sel, sel_out, cap, &n_out));
            else if (kind == 1)
                FZ_OK(ctx, fb_expr_select_cols(ctx, &a.col, op, &b.col, sel, n_sel, sel_out, cap, &n_out));
            else if (kind == 2)
                FZ_OK(ctx, fb_select_range(ctx, &a.col, vals, vals + w, sel, n_sel, sel_out, cap, &n_out));
            else
                FZ_OK(ctx, fb_select_in(ctx, &a.col, vals, nv, sel, n_sel, sel_out, cap, &n_out));
            check_sel(ctx, what[kind], sel_out, n_out, want, n);
        }
    } else if (kind == 4) { /* AND, OR, NOT, bool to selection */
        uint8_t sa[MAX_ROWS + 1], sb[MAX_ROWS + 1];
        decode_bool(in, n, &ba, sa);
        decode_bool(in, n, &bb, sb);
        sel = decode_sel(in, n, &n_sel, in_sel);
        for (int v = 0; v < nctx; v++) {
            fb_ctx *ctx = fz_ctx[v];
            for (int64_t i = 0; i < n; i++)
                want[i] = sa[i] == T_FALSE || sb[i] == T_FALSE ? T_FALSE : sa[i] == T_NULL || sb[i] == T_NULL ? T_NULL : T_TRUE;
            FZ_OK(ctx, fb_expr_and(ctx, &ba, &bb, &out));
            check_bool(ctx, "fb_expr_and", &out, want, n);
            for (int64_t i = 0; i < n; i++)
                want[i] = sa[i] == T_TRUE || sb[i] == T_TRUE ? T_TRUE : sa[i] == T_NULL || sb[i] == T_NULL ? T_NULL : T_FALSE;
            FZ_OK(ctx, fb_expr_or(ctx, &ba, &bb, &out));
            check_bool(ctx, "fb_expr_or", &out, want, n);
            for (int64_t i = 0; i < n; i++)
                want[i] = sa[i] == T_NULL ? T_NULL : (uint8_t)!sa[i];
            FZ_OK(ctx, fb_expr_not(ctx, &ba, &out));
            check_bool(ctx, "fb_expr_not", &out, want, n);
            for (int64_t i = 0; i < n; i++)
                want[i] = in_sel[i] && sa[i] == T_TRUE;
            FZ_OK(ctx, fb_expr_bool_to_sel(ctx, &ba, sel, n_sel, sel_out, sel ? n_sel : n, &n_out));
            check_sel(ctx, "fb_expr_bool_to_sel", sel_out, n_out, want, n);
        }
    } else if (kind == 5) { /* selection vectors: AND, OR, NOT */
        int64_t na = 0, nbb = 0;
        uint8_t ina[MAX_ROWS + 1], inb[MAX_ROWS + 1];
        uint32_t *sa = decode_sel(in, n, &na, ina), *sb = decode_sel(in, n, &nbb, inb);
        sel = decode_sel(in, n, &n_sel, in_sel);
        uint32_t all_dummy = 0;
        const uint32_t *pa = sa ? sa : &all_dummy, *pb = sb ? sb : &all_dummy;
        /* a NULL vector stands for an empty one here */
        for (int64_t i = 0; i < n; i++) {
            if (!sa)
                ina[i] = 0;
            if (!sb)
                inb[i] = 0;
        }
        for (int v = 0; v < nctx; v++) {
            fb_ctx *ctx = fz_ctx[v];
            for (int64_t i = 0; i < n; i++)
                want[i] = ina[i] && inb[i];
            FZ_OK(ctx, fb_expr_sel_and(ctx, pa, na, pb, nbb, sel_out, na < nbb ? na : nbb, &n_out));
            check_sel(ctx, "fb_expr_sel_and", sel_out, n_out, want, n);
            for (int64_t i = 0; i < n; i++)
                want[i] = ina[i] || inb[i];
            FZ_OK(ctx, fb_expr_sel_or(ctx, pa, na, pb, nbb, sel_out, na + nbb, &n_out));
            check_sel(ctx, "fb_expr_sel_or", sel_out, n_out, want, n);
            for (int64_t i = 0; i < n; i++)
                want[i] = in_sel[i] && !ina[i];
            FZ_OK(ctx, fb_expr_sel_not(ctx, pa, na, n, sel, n_sel, sel_out, sel ? n_sel : n, &n_out));
            check_sel(ctx, "fb_expr_sel_not", sel_out, n_out, want, n);
        }
        free(sa);
        free(sb);
    } else if (kind <= 7) { /* arithmetic: column/column or column/constant */
        static const fb_type at[] = {FB_TYPE_INT32, FB_TYPE_INT64, FB_TYPE_FLOAT32, FB_TYPE_FLOAT64};
        t = at[fz_pick(in, 4)];
        fb_arith op = (fb_arith)fz_pick(in, 3);
        int value_left = fz_u8(in) & 1;
        size_t w = fb_type_width(t);
        fz_column(in, t, n, 1, -1, &a);
        if (kind == 6)
            fz_column(in, t, n, 1, -1, &b);
        vals = malloc(w);
        fz_value(in, t, 0, vals);
        sel = decode_sel(in, n, &n_sel, in_sel);
        int overflow = 0;
        for (int64_t i = 0; i < n; i++) {
            want2[i] = !in_sel[i] || !fz_valid(&a.col, i) || (kind == 6 && !fz_valid(&b.col, i)) ? T_NULL : T_TRUE;
            if (want2[i] == T_NULL)
                continue;
            const void *x = fz_at(&a.col, i), *y = kind == 6 ? fz_at(&b.col, i) : vals;
            if (kind == 7 && value_left)
                y = x, x = vals;
            overflow |= !arith_one(t, op, x, y, wantv + (size_t)i * w);
        }
        for (int v = 0; v < nctx; v++) {
            fb_ctx *ctx = fz_ctx[v];
            fb_column_out o = {t, n, outv, ovalid, -1, -1};
            fb_status st = kind == 6 ? fb_expr_arith(ctx, op, &a.col, &b.col, sel, n_sel, &o)
                                     : fb_expr_arith_const(ctx, op, &a.col, vals, value_left, sel, n_sel, &o);
            check_values(ctx, kind == 6 ? "fb_expr_arith" : "fb_expr_arith_const", st, overflow, &o, want2, wantv, n);
        }
    } else { /* casts */
        fb_type to = fz_all_types[fz_pick(in, FZ_N_TYPES)];
        fz_column(in, t, n, 1, -1, &a);
        sel = decode_sel(in, n, &n_sel, in_sel);
        int overflow = 0;
        size_t w = fb_type_width(to);
        for (int64_t i = 0; i < n; i++) {
            want2[i] = !in_sel[i] || !fz_valid(&a.col, i) ? T_NULL : T_TRUE;
            if (want2[i] != T_NULL)
                overflow |= !cast_one(t, fz_at(&a.col, i), to, wantv + (size_t)i * w);
        }
        for (int v = 0; v < nctx; v++) {
            fb_ctx *ctx = fz_ctx[v];
            fb_column_out o = {to, n, outv, ovalid, -1, -1};
            fb_status st = fb_expr_cast(ctx, &a.col, sel, n_sel, &o);
            check_values(ctx, "fb_expr_cast", st, overflow, &o, want2, wantv, n);
        }
    }
    fz_col_free(&a);
    fz_col_free(&b);
    free_bool(&ba);
    free_bool(&bb);
    free(sel), free(vals), free(wantv), free(outv), free(in_sel), free(want), free(want2), free(obits), free(ovalid);
    free(sel_out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    int nctx = fz_open_variants(1);
    for (int op = 0; op < 4 && (op == 0 || in.n > 0); op++)
        one_op(&in, nctx);
    return 0;
}
