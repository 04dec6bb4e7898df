/* test_expr.c - the expression kernels (fb_expr.h): every CPU variant the machine runs (scalar, base,
 * avx2, avx512) against an oracle written here, for comparisons (column/constant and column/column,
 * boolean and selection forms), BETWEEN, IN, three-valued AND/OR/NOT, selection-vector logic,
 * + - * with overflow at and one past the boundary, and every cast pair; on random data with nulls at
 * odd offsets, extremes, NaN, -0.0, inf, empty input and input selections; plus bad input; and,
 * through test/expr_duckdb_check.py, SSB-shaped filters and revenue against DuckDB. */
#include "fb_test.h"

#include <float.h>
#include <math.h>

static uint64_t rng;
FBT_VARIANTS_FIXTURE

static const char *vname(int v) { return fb_isa_name(fb_ctx_isa(variants[v])); }

static const fb_type all_types[] = {FB_TYPE_INT8,   FB_TYPE_INT16,  FB_TYPE_INT32,   FB_TYPE_INT64,
                                    FB_TYPE_UINT8,  FB_TYPE_UINT16, FB_TYPE_UINT32,  FB_TYPE_UINT64,
                                    FB_TYPE_FLOAT32, FB_TYPE_FLOAT64, FB_TYPE_DATE32};
#define N_TYPES (sizeof all_types / sizeof all_types[0])
static const int64_t lengths[] = {0, 1, 7, 17, 1023, 40003};
#define N_LENGTHS (sizeof lengths / sizeof lengths[0])

/* ---- oracle -------------------------------------------------------------------------------------- */

static int is_float(fb_type t) { return t == FB_TYPE_FLOAT32 || t == FB_TYPE_FLOAT64; }
static int is_unsigned(fb_type t)
{
    return t == FB_TYPE_UINT8 || t == FB_TYPE_UINT16 || t == FB_TYPE_UINT32 || t == FB_TYPE_UINT64;
}

__extension__ typedef __int128 i128;

/* Integer value of element r of p (any integer type, date32 as int32). */
static i128 ival(fb_type t, const void *p, int64_t r)
{
    switch (t) {
    case FB_TYPE_INT8: return ((const int8_t *)p)[r];
    case FB_TYPE_INT16: return ((const int16_t *)p)[r];
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: return ((const int32_t *)p)[r];
    case FB_TYPE_INT64: return ((const int64_t *)p)[r];
    case FB_TYPE_UINT8: return ((const uint8_t *)p)[r];
    case FB_TYPE_UINT16: return ((const uint16_t *)p)[r];
    case FB_TYPE_UINT32: return ((const uint32_t *)p)[r];
    default: return ((const uint64_t *)p)[r];
    }
}

static double fval(fb_type t, const void *p, int64_t r)
{
    return t == FB_TYPE_FLOAT32 ? ((const float *)p)[r] : ((const double *)p)[r];
}

/* SQL order of element ra of a and rb of b: -1, 0, 1 (NaN = NaN > everything, -0.0 = 0.0). */
static int ocmp(fb_type t, const void *a, int64_t ra, const void *b, int64_t rb)
{
    if (is_float(t)) {
        double x = fval(t, a, ra), y = fval(t, b, rb);
        if (isnan(x) || isnan(y))
            return isnan(x) && isnan(y) ? 0 : isnan(x) ? 1 : -1;
        return x < y ? -1 : x > y;
    }
    i128 x = ival(t, a, ra), y = ival(t, b, rb);
    return x < y ? -1 : x > y;
}

static int op_holds(fb_cmp op, int c)
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
static void setbit(uint8_t *b, int64_t i, int on)
{
    if (on)
        b[i >> 3] |= (uint8_t)(1u << (i & 7));
    else
        b[i >> 3] &= (uint8_t)~(1u << (i & 7));
}

static int row_valid(const fb_column *c, int64_t i) { return !c->validity || bit(c->validity, c->offset + i); }

/* ---- data ---------------------------------------------------------------------------------------- */

/* A column of n random values (fbt_random_value: extremes, NaN, ±0, inf, duplicates) at a random
 * offset, with about one row in eight null when with_nulls. */
static fbt_col make_col(fb_type t, int64_t n, int with_nulls)
{
    fbt_col b;
    size_t w = fb_type_width(t);
    int64_t off = (int64_t)(fbt_next(&rng) % 13);
    b.data = malloc((size_t)(n + off + 1) * w);
    for (int64_t i = 0; i < n + off; i++)
        fbt_random_value(&rng, t, (char *)b.data + i * w);
    b.valid = with_nulls ? fbt_random_validity(&rng, n + off) : NULL;
    b.col = fb_column_make(t, b.data, n, b.valid);
    b.col.offset = off;
    return b;
}

/* A random ascending selection of about half the rows of n (NULL when n is 0 and want is 0). */
static uint32_t *make_sel(int64_t n, int64_t *n_sel)
{
    uint32_t *s = malloc((size_t)n * 4 + 4);
    int64_t k = 0;
    uint64_t keep = fbt_next(&rng) % 4; /* 0: sparse .. 3: dense */
    for (int64_t i = 0; i < n; i++)
        if (fbt_next(&rng) % 4 <= keep)
            s[k++] = (uint32_t)i;
    *n_sel = k;
    return s;
}

/* Expected boolean (three-valued: 1 TRUE, 0 FALSE, -1 NULL) per row, vs a result. */
static void check_bool(const fb_bool *got, const int8_t *expect, int64_t n, const char *what, int v)
{
    for (int64_t i = 0; i < n; i++) {
        int g = bit(got->validity, i) ? bit(got->bits, i) : -1;
        if (g != expect[i])
            fail_msg("%s variant %s n=%lld row %lld: %d, expected %d (1 TRUE, 0 FALSE, -1 NULL)", what, vname(v),
                     (long long)n, (long long)i, g, expect[i]);
        if (!bit(got->validity, i) && bit(got->bits, i))
            fail_msg("%s variant %s row %lld: NULL with its value bit set", what, vname(v), (long long)i);
    }
    for (int64_t i = n; i < (n + 7) / 8 * 8; i++)
        if (bit(got->bits, i) || bit(got->validity, i))
            fail_msg("%s variant %s: padding bit %lld set", what, vname(v), (long long)i);
}

typedef struct boolbuf {
    fb_bool b;
    uint8_t *bits, *valid;
} boolbuf;

static boolbuf bool_alloc(int64_t n)
{
    boolbuf x;
    size_t nb = (size_t)(n + 7) / 8 + 1;
    x.bits = malloc(nb);
    x.valid = malloc(nb);
    memset(x.bits, 0xA5, nb);
    memset(x.valid, 0x5A, nb);
    x.b = (fb_bool){n, x.bits, x.valid};
    return x;
}

static void bool_free(boolbuf *x)
{
    free(x->bits);
    free(x->valid);
}

/* ---- comparisons, BETWEEN, IN --------------------------------------------------------------------- */

/* kind 0 cmp const, 1 between, 2 in, 3 cmp cols */
static void run_pred(fb_type t, int64_t n, int kind)
{
    size_t w = fb_type_width(t);
    fbt_col a = make_col(t, n, fbt_next(&rng) & 1), b = make_col(t, n, fbt_next(&rng) & 1);
    char c1[8], c2[8], set[8 * 9];
    fbt_random_value(&rng, t, c1);
    fbt_random_value(&rng, t, c2);
    int64_t n_set = 1 + (int64_t)(fbt_next(&rng) % 9);
    for (int64_t s = 0; s < n_set; s++)
        fbt_random_value(&rng, t, set + s * w);
    fb_cmp op = (fb_cmp)(fbt_next(&rng) % 6);
    int64_t n_sel = 0;
    uint32_t *sel = make_sel(n, &n_sel);
    int use_sel = fbt_next(&rng) & 1;
    const char *da = (const char *)a.data + a.col.offset * w, *db = (const char *)b.data + b.col.offset * w;
    int8_t *expect = malloc((size_t)n + 1);
    uint8_t *in_sel = calloc((size_t)n + 1, 1);
    for (int64_t j = 0; j < n_sel; j++)
        in_sel[sel[j]] = 1;
    for (int64_t i = 0; i < n; i++) {
        int valid = row_valid(&a.col, i) && (kind != 3 || row_valid(&b.col, i)) && (!use_sel || in_sel[i]);
        int r;
        switch (kind) {
        case 0: r = op_holds(op, ocmp(t, da, i, c1, 0)); break;
        case 1: r = ocmp(t, da, i, c1, 0) >= 0 && ocmp(t, da, i, c2, 0) <= 0; break;
        case 2:
            r = 0;
            for (int64_t s = 0; s < n_set; s++)
                r |= ocmp(t, da, i, set, s) == 0;
            break;
        default: r = op_holds(op, ocmp(t, da, i, db, i)); break;
        }
        expect[i] = valid ? (int8_t)r : -1;
    }
    char what[96];
    snprintf(what, sizeof what, "pred kind %d %s op %d sel %d", kind, fb_type_name(t), (int)op, use_sel);
    uint32_t *out = malloc((size_t)n * 4 + 4);
    for (int v = 0; v < n_variants; v++) {
        fb_ctx *ctx = variants[v];
        boolbuf o = bool_alloc(n);
        const uint32_t *si = use_sel ? sel : NULL;
        switch (kind) {
        case 0: assert_fb_ok(ctx, fb_expr_cmp(ctx, &a.col, op, c1, si, n_sel, &o.b)); break;
        case 1: assert_fb_ok(ctx, fb_expr_between(ctx, &a.col, c1, c2, si, n_sel, &o.b)); break;
        case 2: assert_fb_ok(ctx, fb_expr_in(ctx, &a.col, set, n_set, si, n_sel, &o.b)); break;
        default: assert_fb_ok(ctx, fb_expr_cmp_cols(ctx, &a.col, op, &b.col, si, n_sel, &o.b)); break;
        }
        check_bool(&o.b, expect, n, what, v);
        /* the TRUE rows as a selection: through fb_expr_bool_to_sel, and directly for column/column */
        int64_t k = -1, m = 0;
        assert_fb_ok(ctx, fb_expr_bool_to_sel(ctx, &o.b, NULL, 0, out, n, &k));
        for (int64_t i = 0; i < n; i++)
            if (expect[i] == 1) {
                if (m >= k || out[m] != (uint32_t)i)
                    fail_msg("%s bool_to_sel variant %s: entry %lld", what, vname(v), (long long)m);
                m++;
            }
        assert_int_equal(m, k);
        if (kind == 3) {
            k = -1;
            assert_fb_ok(ctx, fb_expr_select_cols(ctx, &a.col, op, &b.col, si, n_sel, out, n, &k));
            m = 0;
            for (int64_t i = 0; i < n; i++)
                if (expect[i] == 1) {
                    if (m >= k || out[m] != (uint32_t)i)
                        fail_msg("%s select_cols variant %s n=%lld: entry %lld", what, vname(v), (long long)n,
                                 (long long)m);
                    m++;
                }
            assert_int_equal(m, k);
        }
        bool_free(&o);
    }
    free(out);
    free(expect);
    free(in_sel);
    free(sel);
    fbt_col_free(&a);
    fbt_col_free(&b);
}

static void test_predicates(void **state)
{
    (void)state;
    for (size_t li = 0; li < N_LENGTHS; li++)
        for (size_t ti = 0; ti < N_TYPES; ti++)
            for (int kind = 0; kind < 4; kind++)
                for (int rep = 0; rep < (lengths[li] > 2000 ? 2 : 6); rep++)
                    run_pred(all_types[ti], lengths[li], kind);
}

/* Floats: NaN = NaN, NaN above +inf, -0.0 = 0.0, for every op, column/column and column/constant. */
static void test_float_order(void **state)
{
    (void)state;
    double vals[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0, -0.0, 1.0, -1.0, DBL_MAX, -DBL_MIN};
    int nv = (int)(sizeof vals / sizeof vals[0]);
    int64_t n = nv * nv;
    double *a = malloc((size_t)n * 8), *b = malloc((size_t)n * 8);
    float *af = malloc((size_t)n * 4), *bf = malloc((size_t)n * 4);
    for (int i = 0; i < nv; i++)
        for (int j = 0; j < nv; j++) {
            a[i * nv + j] = vals[i];
            b[i * nv + j] = vals[j];
            af[i * nv + j] = (float)vals[i];
            bf[i * nv + j] = (float)vals[j];
        }
    for (int f32 = 0; f32 < 2; f32++) {
        fb_type t = f32 ? FB_TYPE_FLOAT32 : FB_TYPE_FLOAT64;
        fb_column ca = fb_column_make(t, f32 ? (void *)af : (void *)a, n, NULL);
        fb_column cb = fb_column_make(t, f32 ? (void *)bf : (void *)b, n, NULL);
        for (int op = 0; op < 6; op++)
            for (int v = 0; v < n_variants; v++) {
                boolbuf o = bool_alloc(n);
                assert_fb_ok(variants[v], fb_expr_cmp_cols(variants[v], &ca, (fb_cmp)op, &cb, NULL, 0, &o.b));
                for (int i = 0; i < nv; i++)
                    for (int j = 0; j < nv; j++) {
                        double x = vals[i], y = vals[j];
                        int c = isnan(x) ? (isnan(y) ? 0 : 1) : isnan(y) ? -1 : x < y ? -1 : x > y;
                        if (f32 && !isnan(x) && !isnan(y)) { /* DBL_MAX, -DBL_MIN become inf, -0.0 */
                            float fx = (float)x, fy = (float)y;
                            c = fx < fy ? -1 : fx > fy;
                        }
                        if (bit(o.bits, i * nv + j) != op_holds((fb_cmp)op, c))
                            fail_msg("%s %g op %d %g variant %s", fb_type_name(t), x, op, y, vname(v));
                    }
                bool_free(&o);
            }
    }
    free(a), free(b), free(af), free(bf);
}

/* ---- logic ---------------------------------------------------------------------------------------- */

static int8_t kleene(int op, int8_t x, int8_t y)
{
    if (op == 2)
        return x < 0 ? -1 : !x;
    if (op == 0)
        return (x == 0 || y == 0) ? 0 : (x < 0 || y < 0) ? -1 : 1;
    return (x == 1 || y == 1) ? 1 : (x < 0 || y < 0) ? -1 : 0;
}

static void random_bool(int64_t n, int with_nulls, boolbuf *x, int8_t *tv)
{
    *x = bool_alloc(n);
    for (int64_t i = 0; i < (n + 7) / 8 + 1; i++) {
        x->bits[i] = (uint8_t)fbt_next(&rng); /* value bits under nulls are set at random: ignored */
        x->valid[i] = (uint8_t)(fbt_next(&rng) | (fbt_next(&rng) & fbt_next(&rng)));
    }
    if (!with_nulls)
        x->b.validity = NULL;
    for (int64_t i = 0; i < n; i++)
        tv[i] = with_nulls && !bit(x->valid, i) ? -1 : (int8_t)bit(x->bits, i);
}

static void test_logic(void **state)
{
    (void)state;
    for (size_t li = 0; li < N_LENGTHS; li++) {
        int64_t n = lengths[li];
        int8_t *ta = malloc((size_t)n + 1), *tb = malloc((size_t)n + 1), *te = malloc((size_t)n + 1);
        for (int rep = 0; rep < 4; rep++) {
            boolbuf a, b;
            random_bool(n, rep & 1, &a, ta);
            random_bool(n, rep >> 1, &b, tb);
            for (int op = 0; op < 3; op++) {
                for (int64_t i = 0; i < n; i++)
                    te[i] = kleene(op, ta[i], tb[i]);
                for (int v = 0; v < n_variants; v++) {
                    fb_ctx *ctx = variants[v];
                    boolbuf o = bool_alloc(n);
                    if (op == 0)
                        assert_fb_ok(ctx, fb_expr_and(ctx, &a.b, &b.b, &o.b));
                    else if (op == 1)
                        assert_fb_ok(ctx, fb_expr_or(ctx, &a.b, &b.b, &o.b));
                    else
                        assert_fb_ok(ctx, fb_expr_not(ctx, &a.b, &o.b));
                    check_bool(&o.b, te, n, op == 0 ? "AND" : op == 1 ? "OR" : "NOT", v);
                    bool_free(&o);
                }
            }
            /* NOT NOT x is x with its nulls, and x AND NOT x is never TRUE */
            boolbuf o1 = bool_alloc(n), o2 = bool_alloc(n);
            assert_fb_ok(variants[0], fb_expr_not(variants[0], &a.b, &o1.b));
            assert_fb_ok(variants[0], fb_expr_not(variants[0], &o1.b, &o2.b));
            check_bool(&o2.b, ta, n, "NOT NOT", 0);
            assert_fb_ok(variants[0], fb_expr_and(variants[0], &a.b, &o1.b, &o2.b));
            for (int64_t i = 0; i < n; i++)
                assert_false(bit(o2.bits, i));
            bool_free(&o1), bool_free(&o2);
            /* bool_to_sel with an input selection */
            int64_t n_sel, k;
            uint32_t *sel = make_sel(n, &n_sel), *out = malloc((size_t)n * 4 + 4);
            assert_fb_ok(variants[0], fb_expr_bool_to_sel(variants[0], &a.b, sel, n_sel, out, n, &k));
            int64_t m = 0;
            for (int64_t j = 0; j < n_sel; j++)
                if (ta[sel[j]] == 1) {
                    assert_true(m < k && out[m] == sel[j]);
                    m++;
                }
            assert_int_equal(m, k);
            free(sel), free(out);
            bool_free(&a), bool_free(&b);
        }
        free(ta), free(tb), free(te);
    }
}

static void test_sel_logic(void **state)
{
    (void)state;
    fb_ctx *ctx = variants[0];
    for (size_t li = 0; li < N_LENGTHS; li++) {
        int64_t n = lengths[li], na, nb, nd, k;
        uint32_t *a = make_sel(n, &na), *b = make_sel(n, &nb), *dom = make_sel(n, &nd);
        uint32_t *out = malloc((size_t)(2 * n + 1) * 4);
        uint8_t *ia = calloc((size_t)n + 1, 1), *ib = calloc((size_t)n + 1, 1);
        for (int64_t j = 0; j < na; j++)
            ia[a[j]] = 1;
        for (int64_t j = 0; j < nb; j++)
            ib[b[j]] = 1;
        for (int op = 0; op < 4; op++) {
            if (op == 0)
                assert_fb_ok(ctx, fb_expr_sel_and(ctx, a, na, b, nb, out, n, &k));
            else if (op == 1)
                assert_fb_ok(ctx, fb_expr_sel_or(ctx, a, na, b, nb, out, na + nb, &k));
            else if (op == 2)
                assert_fb_ok(ctx, fb_expr_sel_not(ctx, a, na, n, NULL, 0, out, n, &k));
            else
                assert_fb_ok(ctx, fb_expr_sel_not(ctx, a, na, n, dom, nd, out, n, &k));
            int64_t m = 0;
            for (int64_t i = 0; i < n; i++) {
                int in_dom = 1;
                if (op == 3) {
                    in_dom = 0;
                    for (int64_t j = 0; j < nd && !in_dom && dom[j] <= i; j++) /* dom is ascending */
                        in_dom = dom[j] == i;
                    if (n > 2000 && i > 2000)
                        break; /* keep the quadratic oracle short */
                }
                int want = op == 0 ? ia[i] && ib[i] : op == 1 ? ia[i] || ib[i] : in_dom && !ia[i];
                if (want) {
                    if (m >= k || out[m] != (uint32_t)i)
                        fail_msg("sel op %d n=%lld: entry %lld should be %lld", op, (long long)n, (long long)m,
                                 (long long)i);
                    m++;
                }
            }
            if (!(op == 3 && n > 2000))
                assert_int_equal(m, k);
        }
        assert_fb_status(ctx, fb_expr_sel_and(ctx, b, nb, b, nb, out, nb, &k), FB_OK);
        if (nb >= 2) {
            uint32_t bad[2] = {5, 5};
            assert_fb_status(ctx, fb_expr_sel_or(ctx, bad, 2, b, nb, out, nb + 2, &k), FB_ERR_INVALID_ARG);
        }
        free(a), free(b), free(dom), free(out), free(ia), free(ib);
    }
}

/* ---- arithmetic ----------------------------------------------------------------------------------- */

static const fb_type arith_types[] = {FB_TYPE_INT32, FB_TYPE_INT64, FB_TYPE_FLOAT32, FB_TYPE_FLOAT64};

/* Exact result of x op y, and whether it fits t (floats: always). */
static int oarith(fb_type t, fb_arith op, const void *a, int64_t ra, const void *b, int64_t rb, void *res)
{
    if (is_float(t)) {
        if (t == FB_TYPE_FLOAT32) {
            float x = ((const float *)a)[ra], y = ((const float *)b)[rb];
            float r = op == FB_ARITH_ADD ? x + y : op == FB_ARITH_SUB ? x - y : x * y;
            memcpy(res, &r, 4);
        } else {
            double x = ((const double *)a)[ra], y = ((const double *)b)[rb];
            double r = op == FB_ARITH_ADD ? x + y : op == FB_ARITH_SUB ? x - y : x * y;
            memcpy(res, &r, 8);
        }
        return 1;
    }
    i128 x = ival(t, a, ra), y = ival(t, b, rb);
    i128 r = op == FB_ARITH_ADD ? x + y : op == FB_ARITH_SUB ? x - y : x * y;
    i128 lo = t == FB_TYPE_INT32 ? INT32_MIN : INT64_MIN, hi = t == FB_TYPE_INT32 ? INT32_MAX : INT64_MAX;
    if (t == FB_TYPE_INT32) {
        int32_t v = (int32_t)r;
        memcpy(res, &v, 4);
    } else {
        int64_t v = (int64_t)r;
        memcpy(res, &v, 8);
    }
    return r >= lo && r <= hi;
}

static int same_value(fb_type t, const void *x, const void *y)
{
    if (is_float(t)) {
        double a = fval(t, x, 0), b = fval(t, y, 0);
        if (isnan(a) || isnan(b))
            return isnan(a) && isnan(b);
    }
    return memcmp(x, y, fb_type_width(t)) == 0; /* bitwise: -0.0 differs from 0.0 here */
}

/* mode 0: random values (extremes: an overflow on a valid row is expected to be reported);
 * mode 1: the rows whose result overflows are made null, so the call must succeed. */
static void run_arith(fb_type t, fb_arith op, int64_t n, int form, int mode)
{
    size_t w = fb_type_width(t);
    fbt_col a = make_col(t, n, 1), b = make_col(t, n, fbt_next(&rng) & 1);
    if (!a.valid) /* keep nulls at an odd offset in a */
        abort();
    char cst[8];
    fbt_random_value(&rng, t, cst);
    int64_t n_sel = 0;
    uint32_t *sel = make_sel(n, &n_sel);
    int use_sel = (int)(fbt_next(&rng) % 3) == 0;
    uint8_t *in_sel = calloc((size_t)n + 1, 1);
    for (int64_t j = 0; j < n_sel; j++)
        in_sel[sel[j]] = 1;
    /* form 0: col op col, 1: col op const, 2: const op col */
    const char *da = (const char *)a.data + a.col.offset * w, *db = (const char *)b.data + b.col.offset * w;
    char *expect = malloc((size_t)(n + 1) * w);
    int8_t *ev = malloc((size_t)n + 1);
    int64_t first_bad = -1, nulls = 0;
    for (int64_t i = 0; i < n; i++) {
        const void *x = form == 2 ? (const void *)cst : da + i * w, *y = form == 0 ? db + i * w : form == 1 ? cst : da + i * w;
        int fits = oarith(t, op, x, 0, y, 0, expect + i * w);
        int valid = row_valid(&a.col, i) && (form != 0 || row_valid(&b.col, i)) && (!use_sel || in_sel[i]);
        if (!fits && valid) {
            if (mode == 1) { /* make it null in a */
                setbit(a.valid, a.col.offset + i, 0);
                valid = 0;
            } else if (first_bad < 0)
                first_bad = i;
        }
        ev[i] = (int8_t)valid;
        nulls += !valid;
    }
    char *got = malloc((size_t)(n + 1) * w);
    uint8_t *gv = malloc((size_t)n / 8 + 2);
    for (int v = 0; v < n_variants; v++) {
        fb_ctx *ctx = variants[v];
        fb_column_out out = {t, n, got, gv, -5, -5};
        const uint32_t *si = use_sel ? sel : NULL;
        fb_status st = form == 0 ? fb_expr_arith(ctx, op, &a.col, &b.col, si, n_sel, &out)
                                 : fb_expr_arith_const(ctx, op, &a.col, cst, form == 2, si, n_sel, &out);
        if (first_bad >= 0) {
            assert_fb_status(ctx, st, FB_ERR_OVERFLOW);
            char row[48];
            snprintf(row, sizeof row, "row %lld:", (long long)first_bad);
            if (!strstr(fb_last_error(ctx), row))
                fail_msg("%s op %d variant %s: message '%s' does not name %s", fb_type_name(t), (int)op, vname(v),
                         fb_last_error(ctx), row);
            assert_int_equal(out.length, 0);
            continue;
        }
        assert_fb_ok(ctx, st);
        assert_int_equal(out.length, n);
        assert_int_equal(out.null_count, nulls);
        for (int64_t i = 0; i < n; i++) {
            if (bit(gv, i) != ev[i])
                fail_msg("%s op %d form %d variant %s n=%lld row %lld: validity %d, expected %d", fb_type_name(t),
                         (int)op, form, vname(v), (long long)n, (long long)i, bit(gv, i), ev[i]);
            if (ev[i] && !same_value(t, got + i * w, expect + i * w))
                fail_msg("%s op %d form %d variant %s n=%lld row %lld: wrong value", fb_type_name(t), (int)op, form,
                         vname(v), (long long)n, (long long)i);
        }
    }
    free(got), free(gv), free(expect), free(ev), free(sel), free(in_sel);
    fbt_col_free(&a);
    fbt_col_free(&b);
}

static void test_arith_random(void **state)
{
    (void)state;
    for (size_t li = 0; li < N_LENGTHS; li++)
        for (size_t ti = 0; ti < 4; ti++)
            for (int op = 0; op < 3; op++)
                for (int form = 0; form < 3; form++)
                    for (int mode = 0; mode < 2; mode++)
                        run_arith(arith_types[ti], (fb_arith)op, lengths[li], form, mode);
}

/* Small values: no overflow anywhere, so whole columns are compared (also the no-validity path). */
static void test_arith_small(void **state)
{
    (void)state;
    int64_t n = 10007;
    int32_t *a32 = malloc((size_t)n * 4), *b32 = malloc((size_t)n * 4), *o32 = malloc((size_t)n * 4);
    int64_t *a64 = malloc((size_t)n * 8), *b64 = malloc((size_t)n * 8), *o64 = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++) {
        a32[i] = (int32_t)(fbt_next(&rng) % 60001) - 30000;
        b32[i] = (int32_t)(fbt_next(&rng) % 60001) - 30000;
        a64[i] = (int64_t)(fbt_next(&rng) % 4000000001ull) - 2000000000; /* about int32 range: the fast path */
        b64[i] = (int64_t)(fbt_next(&rng) % 4294967296ull) - 2147483648ll;
        if (i % 101 == 0)
            b64[i] = 3; /* and the odd large factor */
    }
    for (int op = 0; op < 3; op++)
        for (int v = 0; v < n_variants; v++) {
            fb_ctx *ctx = variants[v];
            fb_column ca = fb_column_make(FB_TYPE_INT32, a32, n, NULL), cb = fb_column_make(FB_TYPE_INT32, b32, n, NULL);
            fb_column_out out = {FB_TYPE_INT32, n, o32, NULL, 0, 0};
            assert_fb_ok(ctx, fb_expr_arith(ctx, (fb_arith)op, &ca, &cb, NULL, 0, &out));
            for (int64_t i = 0; i < n; i++) {
                int64_t x = a32[i], y = b32[i];
                assert_int_equal(o32[i], (int32_t)(op == 0 ? x + y : op == 1 ? x - y : x * y));
            }
            fb_column da = fb_column_make(FB_TYPE_INT64, a64, n, NULL), db = fb_column_make(FB_TYPE_INT64, b64, n, NULL);
            fb_column_out out64 = {FB_TYPE_INT64, n, o64, NULL, 0, 0};
            assert_fb_ok(ctx, fb_expr_arith(ctx, (fb_arith)op, &da, &db, NULL, 0, &out64));
            for (int64_t i = 0; i < n; i++) {
                i128 x = a64[i], y = b64[i];
                assert_true(o64[i] == (int64_t)(op == 0 ? x + y : op == 1 ? x - y : x * y));
            }
        }
    free(a32), free(b32), free(o32), free(a64), free(b64), free(o64);
}

/* Exactly at the boundary succeeds, one past fails, at every position of a vector and in the tail;
 * and an overflowing row that is null (or outside sel_in) does not fail. */
static void test_overflow_edges(void **state)
{
    (void)state;
    typedef struct { fb_type t; fb_arith op; int64_t x, y; int ovf; } edge;
    static const edge edges[] = {
        {FB_TYPE_INT32, FB_ARITH_ADD, INT32_MAX - 5, 5, 0},   {FB_TYPE_INT32, FB_ARITH_ADD, INT32_MAX - 5, 6, 1},
        {FB_TYPE_INT32, FB_ARITH_ADD, INT32_MIN + 5, -5, 0},  {FB_TYPE_INT32, FB_ARITH_ADD, INT32_MIN + 5, -6, 1},
        {FB_TYPE_INT32, FB_ARITH_SUB, INT32_MIN + 5, 5, 0},   {FB_TYPE_INT32, FB_ARITH_SUB, INT32_MIN + 5, 6, 1},
        {FB_TYPE_INT32, FB_ARITH_SUB, -1, INT32_MAX, 0},      {FB_TYPE_INT32, FB_ARITH_SUB, 0, INT32_MIN, 1},
        {FB_TYPE_INT32, FB_ARITH_SUB, -1, INT32_MIN, 0},      {FB_TYPE_INT32, FB_ARITH_MUL, 46340, 46340, 0},
        {FB_TYPE_INT32, FB_ARITH_MUL, 46341, 46341, 1},       {FB_TYPE_INT32, FB_ARITH_MUL, INT32_MIN, 1, 0},
        {FB_TYPE_INT32, FB_ARITH_MUL, INT32_MIN, -1, 1},      {FB_TYPE_INT32, FB_ARITH_MUL, -1, INT32_MIN, 1},
        {FB_TYPE_INT32, FB_ARITH_MUL, 65536, -32768, 0},      {FB_TYPE_INT32, FB_ARITH_MUL, 65536, 32768, 1},
        {FB_TYPE_INT32, FB_ARITH_MUL, 65536, -32769, 1},      {FB_TYPE_INT32, FB_ARITH_MUL, INT32_MAX, INT32_MAX, 1},
        {FB_TYPE_INT64, FB_ARITH_ADD, INT64_MAX - 5, 5, 0},   {FB_TYPE_INT64, FB_ARITH_ADD, INT64_MAX - 5, 6, 1},
        {FB_TYPE_INT64, FB_ARITH_ADD, INT64_MIN, -1, 1},      {FB_TYPE_INT64, FB_ARITH_ADD, INT64_MIN, INT64_MAX, 0},
        {FB_TYPE_INT64, FB_ARITH_SUB, INT64_MIN + 5, 5, 0},   {FB_TYPE_INT64, FB_ARITH_SUB, INT64_MIN + 5, 6, 1},
        {FB_TYPE_INT64, FB_ARITH_SUB, 0, INT64_MIN, 1},       {FB_TYPE_INT64, FB_ARITH_SUB, -1, INT64_MIN, 0},
        {FB_TYPE_INT64, FB_ARITH_MUL, 3037000499ll, 3037000499ll, 0},
        {FB_TYPE_INT64, FB_ARITH_MUL, 3037000500ll, 3037000500ll, 1},
        {FB_TYPE_INT64, FB_ARITH_MUL, 4294967296ll, -2147483648ll, 0}, /* exactly INT64_MIN */
        {FB_TYPE_INT64, FB_ARITH_MUL, 4294967296ll, 2147483648ll, 1},
        {FB_TYPE_INT64, FB_ARITH_MUL, INT64_MIN, -1, 1},      {FB_TYPE_INT64, FB_ARITH_MUL, INT64_MIN, 1, 0},
        {FB_TYPE_INT64, FB_ARITH_MUL, 2147483647, -2147483648ll, 0}, /* largest fast-path product */
        {FB_TYPE_INT64, FB_ARITH_MUL, -2147483648ll, -2147483648ll, 0},
        {FB_TYPE_INT64, FB_ARITH_MUL, 2147483648ll, 2147483648ll, 0}, /* just off the fast path */
    };
    int64_t n = 67;
    for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++) {
        const edge *d = &edges[e];
        size_t w = fb_type_width(d->t);
        for (int64_t pos = 0; pos < n; pos += (pos < 20 ? 1 : 13)) {
            char *a = calloc((size_t)n, w), *b = calloc((size_t)n, w), *o = malloc((size_t)n * w);
            uint8_t valid[16], ov[16];
            memset(valid, 0xFF, sizeof valid);
            for (int64_t i = 0; i < n; i++) { /* harmless small values around the edge */
                int64_t x = (int64_t)(fbt_next(&rng) % 7) - 3;
                memcpy(a + i * w, &x, w);
                memcpy(b + i * w, &x, w);
            }
            memcpy(a + pos * w, &d->x, w); /* little-endian: the low bytes */
            memcpy(b + pos * w, &d->y, w);
            for (int v = 0; v < n_variants; v++) {
                fb_ctx *ctx = variants[v];
                fb_column ca = fb_column_make(d->t, a, n, NULL), cb = fb_column_make(d->t, b, n, NULL);
                fb_column_out out = {d->t, n, o, ov, 0, 0};
                fb_status st = fb_expr_arith(ctx, d->op, &ca, &cb, NULL, 0, &out);
                if (st != (d->ovf ? FB_ERR_OVERFLOW : FB_OK))
                    fail_msg("edge %zu (%lld %d %lld %s) at row %lld variant %s: %s %s", e, (long long)d->x,
                             (int)d->op, (long long)d->y, fb_type_name(d->t), (long long)pos, vname(v),
                             fb_status_name(st), fb_last_error(ctx));
                if (!d->ovf) {
                    i128 x = d->x, y = d->y, r = d->op == FB_ARITH_ADD ? x + y : d->op == FB_ARITH_SUB ? x - y : x * y;
                    int64_t got = d->t == FB_TYPE_INT32 ? ((int32_t *)o)[pos] : ((int64_t *)o)[pos];
                    assert_true(got == (int64_t)r);
                }
                /* the constant form, both sides */
                fb_column_out out2 = {d->t, n, o, ov, 0, 0};
                st = fb_expr_arith_const(ctx, d->op, &ca, b + pos * w, 0, NULL, 0, &out2);
                fb_status st2 = fb_expr_arith_const(ctx, d->op, &cb, a + pos * w, 1, NULL, 0, &out2);
                if (d->ovf) {
                    assert_int_equal(st, FB_ERR_OVERFLOW);
                    assert_int_equal(st2, FB_ERR_OVERFLOW);
                }
                /* the overflowing row null: no error */
                setbit(valid, pos, 0);
                fb_column cn = fb_column_make(d->t, a, n, valid);
                fb_column_out out3 = {d->t, n, o, ov, 0, 0};
                assert_fb_ok(ctx, fb_expr_arith(ctx, d->op, &cn, &cb, NULL, 0, &out3));
                assert_int_equal(out3.null_count, 1);
                setbit(valid, pos, 1);
                /* the overflowing row outside the input selection: no error */
                uint32_t sel[2] = {(uint32_t)(pos == 0 ? 1 : 0), (uint32_t)(pos == n - 1 ? n - 2 : n - 1)};
                fb_column_out out4 = {d->t, n, o, ov, 0, 0};
                assert_fb_ok(ctx, fb_expr_arith(ctx, d->op, &ca, &cb, sel, 2, &out4));
                assert_int_equal(out4.null_count, n - 2);
            }
            free(a), free(b), free(o);
        }
    }
}

/* ---- casts ---------------------------------------------------------------------------------------- */

/* Oracle cast of a valid value: 1 and *res, or 0 when out of range. */
static int ocast(fb_type from, const void *p, fb_type to, void *res)
{
    size_t wo = fb_type_width(to);
    if (is_float(from)) {
        double d = fval(from, p, 0);
        if (is_float(to)) {
            if (to == FB_TYPE_FLOAT64) {
                memcpy(res, &d, 8);
                return 1;
            }
            float f = (float)d;
            memcpy(res, &f, 4);
            return !(isfinite(d) && !isfinite(f));
        }
        if (!isfinite(d))
            return 0;
        long double r = nearbyintl((long double)d); /* exact: d is an integer or a half */
        i128 lo, hi;
        switch (to) {
        case FB_TYPE_INT8: lo = INT8_MIN; hi = INT8_MAX; break;
        case FB_TYPE_INT16: lo = INT16_MIN; hi = INT16_MAX; break;
        case FB_TYPE_INT32:
        case FB_TYPE_DATE32: lo = INT32_MIN; hi = INT32_MAX; break;
        case FB_TYPE_INT64: lo = INT64_MIN; hi = INT64_MAX; break;
        case FB_TYPE_UINT8: lo = 0; hi = UINT8_MAX; break;
        case FB_TYPE_UINT16: lo = 0; hi = UINT16_MAX; break;
        case FB_TYPE_UINT32: lo = 0; hi = UINT32_MAX; break;
        default: lo = 0; hi = UINT64_MAX; break;
        }
        if (r < (long double)lo || r > (long double)hi)
            return 0;
        i128 v = (i128)r;
        memcpy(res, &v, wo);
        return 1;
    }
    i128 v = ival(from, p, 0);
    if (to == FB_TYPE_FLOAT32) {
        float f = v < 0 ? (float)(int64_t)v : (float)(uint64_t)v;
        memcpy(res, &f, 4);
        return 1;
    }
    if (to == FB_TYPE_FLOAT64) {
        double d = v < 0 ? (double)(int64_t)v : (double)(uint64_t)v;
        memcpy(res, &d, 8);
        return 1;
    }
    int bits = (int)wo * 8;
    i128 lo = is_unsigned(to) ? 0 : -((i128)1 << (bits - 1));
    i128 hi = is_unsigned(to) ? ((i128)1 << bits) - 1 : ((i128)1 << (bits - 1)) - 1;
    if (v < lo || v > hi)
        return 0;
    memcpy(res, &v, wo);
    return 1;
}

static void run_cast(fb_type from, fb_type to, int64_t n, int mode)
{
    size_t wi = fb_type_width(from), wo = fb_type_width(to);
    fbt_col a = make_col(from, n, 1);
    int64_t n_sel = 0;
    uint32_t *sel = make_sel(n, &n_sel);
    int use_sel = (int)(fbt_next(&rng) % 3) == 0;
    uint8_t *in_sel = calloc((size_t)n + 1, 1);
    for (int64_t j = 0; j < n_sel; j++)
        in_sel[sel[j]] = 1;
    const char *da = (const char *)a.data + a.col.offset * wi;
    char *expect = malloc((size_t)(n + 1) * wo);
    int8_t *ev = malloc((size_t)n + 1);
    int64_t first_bad = -1, nulls = 0;
    for (int64_t i = 0; i < n; i++) {
        int ok = ocast(from, da + i * wi, to, expect + i * wo);
        int valid = row_valid(&a.col, i) && (!use_sel || in_sel[i]);
        if (!ok && valid) {
            if (mode == 1) {
                setbit(a.valid, a.col.offset + i, 0);
                valid = 0;
            } else if (first_bad < 0)
                first_bad = i;
        }
        ev[i] = (int8_t)valid;
        nulls += !valid;
    }
    char *got = malloc((size_t)(n + 1) * wo);
    uint8_t *gv = malloc((size_t)n / 8 + 2);
    for (int v = 0; v < n_variants; v++) {
        fb_ctx *ctx = variants[v];
        fb_column_out out = {to, n, got, gv, -5, -5};
        fb_status st = fb_expr_cast(ctx, &a.col, use_sel ? sel : NULL, n_sel, &out);
        if (first_bad >= 0) {
            assert_fb_status(ctx, st, FB_ERR_OVERFLOW);
            char row[48];
            snprintf(row, sizeof row, "row %lld:", (long long)first_bad);
            if (!strstr(fb_last_error(ctx), row))
                fail_msg("cast %s->%s variant %s: '%s' does not name %s", fb_type_name(from), fb_type_name(to),
                         vname(v), fb_last_error(ctx), row);
            assert_int_equal(out.length, 0);
            continue;
        }
        assert_fb_ok(ctx, st);
        assert_int_equal(out.length, n);
        assert_int_equal(out.null_count, nulls);
        for (int64_t i = 0; i < n; i++) {
            assert_int_equal(bit(gv, i), ev[i]);
            if (ev[i] && !same_value(to, got + i * wo, expect + i * wo))
                fail_msg("cast %s->%s variant %s n=%lld row %lld: wrong value", fb_type_name(from), fb_type_name(to),
                         vname(v), (long long)n, (long long)i);
        }
    }
    free(got), free(gv), free(expect), free(ev), free(sel), free(in_sel);
    fbt_col_free(&a);
}

static void test_cast_random(void **state)
{
    (void)state;
    for (size_t li = 0; li < N_LENGTHS; li++)
        for (size_t fi = 0; fi < N_TYPES; fi++)
            for (size_t ti = 0; ti < N_TYPES; ti++)
                for (int mode = 0; mode < 2; mode++)
                    run_cast(all_types[fi], all_types[ti], lengths[li], mode);
}

/* Rounding ties to even, and each range boundary exactly and one past. */
static void test_cast_edges(void **state)
{
    (void)state;
    typedef struct { double x; fb_type to; int ok; int64_t want; } dedge;
    static const dedge dedges[] = {
        {2.5, FB_TYPE_INT32, 1, 2},   {3.5, FB_TYPE_INT32, 1, 4},     {-2.5, FB_TYPE_INT32, 1, -2},
        {-0.5, FB_TYPE_INT32, 1, 0},  {0.5, FB_TYPE_UINT8, 1, 0},     {-0.5, FB_TYPE_UINT64, 1, 0},
        {-0.6, FB_TYPE_UINT64, 0, 0}, {255.4, FB_TYPE_UINT8, 1, 255}, {255.5, FB_TYPE_UINT8, 0, 0},
        {127.5, FB_TYPE_INT8, 0, 0},  {-128.5, FB_TYPE_INT8, 1, -128}, {-128.6, FB_TYPE_INT8, 0, 0},
        {2147483647.4, FB_TYPE_INT32, 1, INT32_MAX}, {2147483647.5, FB_TYPE_INT32, 0, 0},
        {-2147483648.5, FB_TYPE_INT32, 1, INT32_MIN}, {-2147483649.0, FB_TYPE_INT32, 0, 0},
        {9223372036854774784.0, FB_TYPE_INT64, 1, 9223372036854774784ll},
        {9223372036854775808.0, FB_TYPE_INT64, 0, 0}, {-9223372036854775808.0, FB_TYPE_INT64, 1, INT64_MIN},
        {NAN, FB_TYPE_INT32, 0, 0},   {INFINITY, FB_TYPE_INT64, 0, 0}, {-INFINITY, FB_TYPE_UINT8, 0, 0},
        {18446744073709549568.0, FB_TYPE_UINT64, 1, (int64_t)18446744073709549568ull},
        {18446744073709551616.0, FB_TYPE_UINT64, 0, 0},
    };
    for (size_t e = 0; e < sizeof dedges / sizeof dedges[0]; e++)
        for (int v = 0; v < n_variants; v++) {
            fb_ctx *ctx = variants[v];
            double in[40];
            for (int i = 0; i < 40; i++)
                in[i] = i == 37 ? dedges[e].x : 1.0;
            uint64_t o[40];
            fb_column c = fb_column_make(FB_TYPE_FLOAT64, in, 40, NULL);
            fb_column_out out = {dedges[e].to, 40, o, NULL, 0, 0};
            fb_status st = fb_expr_cast(ctx, &c, NULL, 0, &out);
            if (st != (dedges[e].ok ? FB_OK : FB_ERR_OVERFLOW))
                fail_msg("cast %.17g to %s variant %s: %s", dedges[e].x, fb_type_name(dedges[e].to), vname(v),
                         fb_status_name(st));
            if (dedges[e].ok) {
                uint64_t got = 0;
                memcpy(&got, (char *)o + 37 * fb_type_width(dedges[e].to), fb_type_width(dedges[e].to));
                uint64_t want = 0;
                memcpy(&want, &dedges[e].want, fb_type_width(dedges[e].to));
                assert_true(got == want);
            }
        }
    /* integer sources: each target's min and max exactly and one past, and the source's extremes */
    for (size_t fi = 0; fi < N_TYPES; fi++)
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            fb_type from = all_types[fi], to = all_types[ti];
            if (is_float(from))
                continue;
            size_t wi = fb_type_width(from), wo = fb_type_width(to);
            int bi = (int)wi * 8, bo = (int)wo * 8;
            i128 fmin = is_unsigned(from) ? 0 : -((i128)1 << (bi - 1));
            i128 fmax = is_unsigned(from) ? ((i128)1 << bi) - 1 : ((i128)1 << (bi - 1)) - 1;
            i128 tmin = is_unsigned(to) ? 0 : -((i128)1 << (bo - 1));
            i128 tmax = is_unsigned(to) ? ((i128)1 << bo) - 1 : ((i128)1 << (bo - 1)) - 1;
            i128 cand[] = {0, -1, 1, tmin - 1, tmin, tmax, tmax + 1, fmin, fmax, fmin + 1, fmax - 1};
            for (size_t c = 0; c < sizeof cand / sizeof cand[0]; c++) {
                if (cand[c] < fmin || cand[c] > fmax)
                    continue;
                char in[40 * 8] = {0}, o[40 * 8], want[8];
                memcpy(in + 37 * wi, &cand[c], wi); /* little-endian two's complement: the low bytes */
                int ok = ocast(from, in + 37 * wi, to, want);
                for (int v = 0; v < n_variants; v++) {
                    fb_column col = fb_column_make(from, in, 40, NULL);
                    fb_column_out out = {to, 40, o, NULL, 0, 0};
                    fb_status st = fb_expr_cast(variants[v], &col, NULL, 0, &out);
                    if (st != (ok ? FB_OK : FB_ERR_OVERFLOW))
                        fail_msg("cast %s %lld -> %s variant %s: %s", fb_type_name(from), (long long)cand[c],
                                 fb_type_name(to), vname(v), fb_status_name(st));
                    if (ok && !same_value(to, o + 37 * wo, want))
                        fail_msg("cast %s %lld -> %s variant %s: wrong value", fb_type_name(from),
                                 (long long)cand[c], fb_type_name(to), vname(v));
                }
            }
        }
    /* float64 -> float32: the largest finite float passes, past it fails, inf and NaN pass */
    double fin[4] = {(double)FLT_MAX, INFINITY, NAN, -1e39};
    for (int v = 0; v < n_variants; v++) {
        float o[4];
        fb_column c = fb_column_make(FB_TYPE_FLOAT64, fin, 3, NULL);
        fb_column_out out = {FB_TYPE_FLOAT32, 4, o, NULL, 0, 0};
        assert_fb_ok(variants[v], fb_expr_cast(variants[v], &c, NULL, 0, &out));
        assert_true(o[0] == FLT_MAX && isinf(o[1]) && isnan(o[2]));
        c = fb_column_make(FB_TYPE_FLOAT64, fin, 4, NULL);
        assert_fb_status(variants[v], fb_expr_cast(variants[v], &c, NULL, 0, &out), FB_ERR_OVERFLOW);
        /* uint64 max: to int64 fails, to float64 is 2^64 */
        uint64_t um[2] = {UINT64_MAX, (uint64_t)INT64_MAX};
        int64_t i64[2];
        double d[2];
        fb_column cu = fb_column_make(FB_TYPE_UINT64, um + 1, 1, NULL);
        fb_column_out oi = {FB_TYPE_INT64, 2, i64, NULL, 0, 0};
        assert_fb_ok(variants[v], fb_expr_cast(variants[v], &cu, NULL, 0, &oi));
        assert_true(i64[0] == INT64_MAX);
        cu = fb_column_make(FB_TYPE_UINT64, um, 2, NULL);
        assert_fb_status(variants[v], fb_expr_cast(variants[v], &cu, NULL, 0, &oi), FB_ERR_OVERFLOW);
        fb_column_out od = {FB_TYPE_FLOAT64, 2, d, NULL, 0, 0};
        assert_fb_ok(variants[v], fb_expr_cast(variants[v], &cu, NULL, 0, &od));
        assert_true(d[0] == 18446744073709551616.0);
    }
}

/* ---- bad input ------------------------------------------------------------------------------------ */

static void test_bad_input(void **state)
{
    (void)state;
    fb_ctx *ctx = variants[0];
    int32_t x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t y[8] = {0};
    fb_column c32 = fb_column_make(FB_TYPE_INT32, x, 8, NULL), c64 = fb_column_make(FB_TYPE_INT64, y, 8, NULL);
    fb_column c8 = fb_column_make(FB_TYPE_INT8, x, 8, NULL), c7 = fb_column_make(FB_TYPE_INT32, x, 7, NULL);
    uint32_t sel[8], badsel[2] = {1, 8};
    int64_t k;
    uint8_t bb[2], bv[2];
    fb_bool o = {8, bb, bv}, o7 = {7, bb, bv}, onull = {8, bb, NULL};
    int32_t c = 3, o32[8];
    uint8_t ov[2];
    assert_int_equal(fb_expr_cmp(NULL, &c32, FB_CMP_EQ, &c, NULL, 0, &o), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_expr_cmp(ctx, NULL, FB_CMP_EQ, &c, NULL, 0, &o), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_expr_cmp(ctx, &c32, (fb_cmp)9, &c, NULL, 0, &o), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_expr_cmp(ctx, &c32, FB_CMP_EQ, NULL, NULL, 0, &o), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_expr_cmp(ctx, &c32, FB_CMP_EQ, &c, NULL, 0, &o7), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_expr_cmp(ctx, &c32, FB_CMP_EQ, &c, NULL, 0, &onull), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_expr_cmp(ctx, &c32, FB_CMP_EQ, &c, badsel, 2, &o), FB_ERR_OUT_OF_RANGE);
    for (int i = 0; i < 8; i++) /* a failed call leaves no row marked valid */
        assert_false(bit(bv, i));
    assert_fb_status(ctx, fb_expr_cmp(ctx, &c32, FB_CMP_EQ, &c, sel, -1, &o), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_expr_in(ctx, &c32, &c, 0, NULL, 0, &o), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_expr_in(ctx, &c32, &c, FB_SELECT_IN_MAX + 1, NULL, 0, &o), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_expr_between(ctx, &c32, &c, NULL, NULL, 0, &o), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_expr_cmp_cols(ctx, &c32, FB_CMP_LT, &c64, NULL, 0, &o), FB_ERR_UNSUPPORTED_TYPE);
    assert_fb_status(ctx, fb_expr_cmp_cols(ctx, &c32, FB_CMP_LT, &c7, NULL, 0, &o), FB_ERR_LENGTH_MISMATCH);
    assert_fb_status(ctx, fb_expr_select_cols(ctx, &c32, FB_CMP_LT, &c64, NULL, 0, sel, 8, &k), FB_ERR_UNSUPPORTED_TYPE);
    assert_fb_status(ctx, fb_expr_select_cols(ctx, &c32, FB_CMP_LT, &c32, NULL, 0, sel, 7, &k), FB_ERR_CAPACITY);
    assert_fb_status(ctx, fb_expr_select_cols(ctx, &c32, FB_CMP_LT, &c32, badsel, 2, sel, 8, &k), FB_ERR_OUT_OF_RANGE);
    assert_fb_status(ctx, fb_expr_select_cols(ctx, &c32, (fb_cmp)-1, &c32, NULL, 0, sel, 8, &k), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_expr_and(ctx, &o, &o7, &o), FB_ERR_LENGTH_MISMATCH);
    assert_fb_status(ctx, fb_expr_not(ctx, &o, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_expr_or(ctx, NULL, &o, &o), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_expr_bool_to_sel(ctx, &o, NULL, 0, sel, 7, &k), FB_ERR_CAPACITY);
    assert_fb_status(ctx, fb_expr_bool_to_sel(ctx, &o, badsel, 2, sel, 8, &k), FB_ERR_OUT_OF_RANGE);
    assert_fb_status(ctx, fb_expr_sel_not(ctx, badsel, 2, 8, NULL, 0, sel, 8, &k), FB_ERR_OUT_OF_RANGE);
    assert_fb_status(ctx, fb_expr_sel_and(ctx, badsel, 2, badsel, 2, sel, 1, &k), FB_ERR_CAPACITY);
    fb_column_out out = {FB_TYPE_INT32, 8, o32, NULL, 9, 9};
    assert_fb_status(ctx, fb_expr_arith(ctx, FB_ARITH_ADD, &c32, &c64, NULL, 0, &out), FB_ERR_UNSUPPORTED_TYPE);
    assert_int_equal(out.length, 0);
    assert_fb_status(ctx, fb_expr_arith(ctx, FB_ARITH_ADD, &c8, &c8, NULL, 0, &out), FB_ERR_UNSUPPORTED_TYPE);
    assert_fb_status(ctx, fb_expr_arith(ctx, (fb_arith)3, &c32, &c32, NULL, 0, &out), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_expr_arith(ctx, FB_ARITH_ADD, &c32, NULL, NULL, 0, &out), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_expr_arith(ctx, FB_ARITH_ADD, &c32, &c7, NULL, 0, &out), FB_ERR_LENGTH_MISMATCH);
    assert_fb_status(ctx, fb_expr_arith(ctx, FB_ARITH_ADD, &c32, &c32, sel, 0, &out), FB_ERR_INVALID_ARG); /* no validity */
    assert_fb_status(ctx, fb_expr_arith_const(ctx, FB_ARITH_ADD, &c32, NULL, 0, NULL, 0, &out), FB_ERR_INVALID_ARG);
    out.validity = ov;
    assert_fb_status(ctx, fb_expr_arith(ctx, FB_ARITH_ADD, &c32, &c32, badsel, 2, &out), FB_ERR_OUT_OF_RANGE);
    out.capacity = 7;
    assert_fb_status(ctx, fb_expr_arith(ctx, FB_ARITH_ADD, &c32, &c32, NULL, 0, &out), FB_ERR_CAPACITY);
    fb_column_out oc = {FB_TYPE_INVALID, 8, o32, NULL, 0, 0};
    assert_fb_status(ctx, fb_expr_cast(ctx, &c32, NULL, 0, &oc), FB_ERR_UNSUPPORTED_TYPE);
    oc.type = FB_TYPE_INT16;
    assert_fb_status(ctx, fb_expr_cast(ctx, &c32, badsel, 2, &oc), FB_ERR_INVALID_ARG); /* no validity */
    assert_fb_status(ctx, fb_expr_cast(ctx, NULL, NULL, 0, &oc), FB_ERR_INVALID_ARG);
    /* empty inputs are fine everywhere */
    fb_column e = fb_column_make(FB_TYPE_INT32, NULL, 0, NULL);
    fb_bool eo = {0, NULL, NULL};
    fb_column_out eout = {FB_TYPE_INT32, 0, NULL, NULL, 0, 0};
    assert_fb_ok(ctx, fb_expr_cmp(ctx, &e, FB_CMP_EQ, &c, NULL, 0, &eo));
    assert_fb_ok(ctx, fb_expr_arith(ctx, FB_ARITH_MUL, &e, &e, NULL, 0, &eout));
    assert_fb_ok(ctx, fb_expr_not(ctx, &eo, &eo));
    assert_fb_ok(ctx, fb_expr_select_cols(ctx, &e, FB_CMP_EQ, &e, NULL, 0, NULL, 0, &k));
    assert_int_equal(k, 0);
    uint8_t ev[1];
    fb_column_out eoutv = {FB_TYPE_INT32, 0, NULL, ev, 0, 0};
    assert_fb_status(ctx, fb_expr_arith(ctx, FB_ARITH_MUL, &e, &e, badsel, 1, &eoutv), FB_ERR_OUT_OF_RANGE);
    assert_fb_status(ctx, fb_expr_cmp(ctx, &e, FB_CMP_EQ, &c, badsel, 1, &eo), FB_ERR_OUT_OF_RANGE);
}

/* ---- SSB against DuckDB --------------------------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const void *p, size_t bytes)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, bytes, f), bytes);
    fclose(f);
}

/* SSB-shaped lineorder columns (value domains of the SSB specification; lo_discount nullable here to
 * exercise three-valued logic), evaluated by fb as expressions and written with the results for
 * test/expr_duckdb_check.py:
 *   q11: lo_discount BETWEEN 1 AND 3 AND lo_quantity < 25 AND d_year = 1993 (selection chain)
 *   q12: (lo_discount BETWEEN 4 AND 6 OR lo_quantity >= 40) AND NOT (p_category IN (3, 7, 11)) (booleans)
 *   revenue: CAST(lo_extendedprice AS BIGINT) * lo_discount on the q11 rows, and its sum
 *   profit: lo_revenue - lo_supplycost (int32, as SSB Q4) on the q12 rows */
static void test_duckdb(void **state)
{
    (void)state;
    if (fbt_small())
        skip();
#ifndef FB_EXPR_DUCKDB_SCRIPT
    skip();
#else
    if (system("python3 -c 'import duckdb, numpy' >/dev/null 2>&1") != 0) {
        fprintf(stderr, "[ skipped  ] duckdb: python3 cannot import duckdb and numpy\n");
        skip();
    }
    int64_t n = 1 << 18;
    int32_t *qty = malloc((size_t)n * 4), *disc = malloc((size_t)n * 4), *price = malloc((size_t)n * 4);
    int32_t *year = malloc((size_t)n * 4), *cat = malloc((size_t)n * 4);
    int32_t *lrev = malloc((size_t)n * 4), *cost = malloc((size_t)n * 4);
    uint8_t *dvalid = calloc((size_t)n / 8 + 1, 1), *dv1 = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++) {
        qty[i] = 1 + (int32_t)(fbt_next(&rng) % 50);
        disc[i] = (int32_t)(fbt_next(&rng) % 11);
        price[i] = 90000 + (int32_t)(fbt_next(&rng) % 10400000); /* cents, up to about 104,949.00 */
        year[i] = 1992 + (int32_t)(fbt_next(&rng) % 7);
        cat[i] = (int32_t)(fbt_next(&rng) % 25); /* dictionary codes of p_category */
        lrev[i] = (int32_t)(fbt_next(&rng) % 10500000);
        cost[i] = 60000 + (int32_t)(fbt_next(&rng) % 60000);
        dv1[i] = fbt_next(&rng) % 20 != 0;
        dvalid[i / 8] |= (uint8_t)(dv1[i] << (i % 8));
    }
    fb_ctx *ctx = variants[n_variants - 1];
    fb_column cq = fb_column_make(FB_TYPE_INT32, qty, n, NULL), cd = fb_column_make(FB_TYPE_INT32, disc, n, dvalid);
    fb_column cp = fb_column_make(FB_TYPE_INT32, price, n, NULL), cy = fb_column_make(FB_TYPE_INT32, year, n, NULL);
    fb_column cc = fb_column_make(FB_TYPE_INT32, cat, n, NULL);
    uint32_t *s1 = malloc((size_t)n * 4), *s2 = malloc((size_t)n * 4), *s3 = malloc((size_t)n * 4);
    int64_t k1, k2, k3;
    int32_t lo = 1, hi = 3, q = 25, y = 1993;
    assert_fb_ok(ctx, fb_select_range(ctx, &cd, &lo, &hi, NULL, 0, s1, n, &k1));
    assert_fb_ok(ctx, fb_select_cmp(ctx, &cq, FB_CMP_LT, &q, s1, k1, s2, n, &k2));
    assert_fb_ok(ctx, fb_select_cmp(ctx, &cy, FB_CMP_EQ, &y, s2, k2, s3, n, &k3));
    /* revenue over the q11 rows, row-aligned */
    int64_t *p64 = malloc((size_t)n * 8), *d64 = malloc((size_t)n * 8), *rev = malloc((size_t)n * 8);
    uint8_t *dvv = malloc((size_t)n / 8 + 1), *rv = malloc((size_t)n / 8 + 1);
    fb_column_out op = {FB_TYPE_INT64, n, p64, NULL, 0, 0}, od = {FB_TYPE_INT64, n, d64, dvv, 0, 0};
    assert_fb_ok(ctx, fb_expr_cast(ctx, &cp, NULL, 0, &op));
    assert_fb_ok(ctx, fb_expr_cast(ctx, &cd, NULL, 0, &od));
    fb_column cp64 = fb_column_make(FB_TYPE_INT64, p64, n, NULL), cd64 = fb_column_make(FB_TYPE_INT64, d64, n, dvv);
    fb_column_out orev = {FB_TYPE_INT64, n, rev, rv, 0, 0};
    assert_fb_ok(ctx, fb_expr_arith(ctx, FB_ARITH_MUL, &cp64, &cd64, s3, k3, &orev));
    int64_t *rev_sel = malloc((size_t)k3 * 8 + 8);
    for (int64_t j = 0; j < k3; j++) {
        assert_true(bit(rv, s3[j]));
        rev_sel[j] = rev[s3[j]];
    }
    /* q12 through booleans */
    boolbuf b1 = bool_alloc(n), b2 = bool_alloc(n), b3 = bool_alloc(n), b4 = bool_alloc(n);
    int32_t lo2 = 4, hi2 = 6, q2 = 40, cats[3] = {3, 7, 11};
    assert_fb_ok(ctx, fb_expr_between(ctx, &cd, &lo2, &hi2, NULL, 0, &b1.b));
    assert_fb_ok(ctx, fb_expr_cmp(ctx, &cq, FB_CMP_GE, &q2, NULL, 0, &b2.b));
    assert_fb_ok(ctx, fb_expr_or(ctx, &b1.b, &b2.b, &b3.b));
    assert_fb_ok(ctx, fb_expr_in(ctx, &cc, cats, 3, NULL, 0, &b1.b));
    assert_fb_ok(ctx, fb_expr_not(ctx, &b1.b, &b2.b));
    assert_fb_ok(ctx, fb_expr_and(ctx, &b3.b, &b2.b, &b4.b));
    int64_t k4;
    uint32_t *s4 = malloc((size_t)n * 4);
    assert_fb_ok(ctx, fb_expr_bool_to_sel(ctx, &b4.b, NULL, 0, s4, n, &k4));
    fb_column cr = fb_column_make(FB_TYPE_INT32, lrev, n, NULL), cs = fb_column_make(FB_TYPE_INT32, cost, n, NULL);
    int32_t *profit = malloc((size_t)n * 4), *profit_sel = malloc((size_t)k4 * 4 + 4);
    uint8_t *pv = malloc((size_t)n / 8 + 1);
    fb_column_out oprof = {FB_TYPE_INT32, n, profit, pv, 0, 0};
    assert_fb_ok(ctx, fb_expr_arith(ctx, FB_ARITH_SUB, &cr, &cs, s4, k4, &oprof));
    assert_int_equal(oprof.null_count, n - k4);
    for (int64_t j = 0; j < k4; j++)
        profit_sel[j] = profit[s4[j]];
    char dir[] = "/tmp/fb_expr_duckdb_XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "lo_quantity.i32", qty, (size_t)n * 4);
    write_file(dir, "lo_discount.i32", disc, (size_t)n * 4);
    write_file(dir, "lo_discount_valid.u8", dv1, (size_t)n);
    write_file(dir, "lo_extendedprice.i32", price, (size_t)n * 4);
    write_file(dir, "d_year.i32", year, (size_t)n * 4);
    write_file(dir, "p_category.i32", cat, (size_t)n * 4);
    write_file(dir, "q11_rows.u32", s3, (size_t)k3 * 4);
    write_file(dir, "q11_revenue.i64", rev_sel, (size_t)k3 * 8);
    write_file(dir, "q12_rows.u32", s4, (size_t)k4 * 4);
    write_file(dir, "lo_revenue.i32", lrev, (size_t)n * 4);
    write_file(dir, "lo_supplycost.i32", cost, (size_t)n * 4);
    write_file(dir, "q12_profit.i32", profit_sel, (size_t)k4 * 4);
    fprintf(stderr, "[ duckdb   ] %lld rows: q11 %lld rows, q12 %lld rows (fb, variant %s)\n", (long long)n,
            (long long)k3, (long long)k4, fb_isa_name(fb_ctx_isa(ctx)));
    int rc = fbt_run_check_script(FB_EXPR_DUCKDB_SCRIPT, dir);
    bool_free(&b1), bool_free(&b2), bool_free(&b3), bool_free(&b4);
    free(qty), free(disc), free(price), free(year), free(cat), free(dvalid), free(dv1);
    free(lrev), free(cost), free(profit), free(profit_sel), free(pv);
    free(s1), free(s2), free(s3), free(s4), free(p64), free(d64), free(rev), free(dvv), free(rv), free(rev_sel);
    if (rc != 0)
        fail_msg("expr_duckdb_check.py reported a difference (exit status %d)", rc);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predicates),    cmocka_unit_test(test_float_order),
        cmocka_unit_test(test_logic),         cmocka_unit_test(test_sel_logic),
        cmocka_unit_test(test_arith_small),   cmocka_unit_test(test_arith_random),
        cmocka_unit_test(test_overflow_edges), cmocka_unit_test(test_cast_random),
        cmocka_unit_test(test_cast_edges),    cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_duckdb),
    };
    return cmocka_run_group_tests(tests, setup_variants, teardown_variants);
}
