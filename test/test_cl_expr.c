/* test_cl_expr.c - the OpenCL expression twins (fb_cl_expr_* of fb_cl.h) against the CPU functions
 * of fb_expr.h run by the scalar variant (the CPU's reference, itself tested against an oracle in
 * test_expr.c): every status, every output byte (booleans with their padding, selection vectors,
 * arithmetic and cast values including the value bits of NULL rows, validity and null counts) and
 * the error messages, which name the first failing row. Floats compare bit for bit except that any
 * NaN equals any NaN (fb_expr.h leaves payloads open). Random data of every type with nulls at odd
 * offsets, extremes, NaN, -0.0, inf, duplicates, input selections, empty input; overflow in
 * valid rows, in NULL rows only and in unselected rows only; ties of float-to-integer casts; bad
 * arguments; a morsel over the device memory budget, in chunks. Fails (does not skip) without an
 * OpenCL device. Sizes stay small: PoCL runs on the CPU. */
#include "fb_test.h"

#include "fb/fb_cl.h"
#include "fb_cl_internal.h"

static uint64_t rng;
static fb_ctx *cpu; /* scalar CPU variant: the reference */
static fb_ctx *gpu; /* default context: the OpenCL twins */

static const fb_type all_types[] = {FB_TYPE_INT8,   FB_TYPE_INT16,  FB_TYPE_INT32,   FB_TYPE_INT64,
                                    FB_TYPE_UINT8,  FB_TYPE_UINT16, FB_TYPE_UINT32,  FB_TYPE_UINT64,
                                    FB_TYPE_FLOAT32, FB_TYPE_FLOAT64, FB_TYPE_DATE32};
#define N_TYPES (sizeof all_types / sizeof all_types[0])
static const int64_t lengths[] = {0, 1, 7, 17, 64, 1023, 20011};
#define N_LENGTHS (sizeof lengths / sizeof lengths[0])

static int64_t nbytes(int64_t n) { return (n + 7) / 8; }

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* Random column of `rows` rows at row `offset` of its buffers; `small` 1 keeps integers in -1000..1000
 * (0..1000 unsigned) and floats in halves of -20..20, so arithmetic mostly succeeds; `small` 2 keeps
 * them in 0..100 (floats: halves of 0..20, ties included), which every type holds. */
static fbt_col rand_col(fb_type t, int64_t rows, int64_t offset, int with_nulls, int small)
{
    fbt_col c;
    memset(&c, 0, sizeof c);
    size_t w = fb_type_width(t);
    c.data = xmalloc((size_t)(rows + offset) * w);
    for (int64_t i = 0; i < rows + offset; i++) {
        char *p = (char *)c.data + (size_t)i * w;
        if (!small) {
            fbt_random_value(&rng, t, p);
            continue;
        }
        int64_t v = small == 2 ? (int64_t)(fbt_next(&rng) % 101) : (int64_t)(fbt_next(&rng) % 2001) - 1000;
        if (t == FB_TYPE_UINT8 || t == FB_TYPE_UINT16 || t == FB_TYPE_UINT32 || t == FB_TYPE_UINT64)
            v = v < 0 ? -v : v;
        if (t == FB_TYPE_INT8)
            v %= 128;
        if (t == FB_TYPE_UINT8)
            v %= 256;
        if (t == FB_TYPE_FLOAT32) {
            float f = (float)(v % 41) * 0.5f;
            memcpy(p, &f, 4);
        } else if (t == FB_TYPE_FLOAT64) {
            double d = (double)(v % 41) * 0.5;
            memcpy(p, &d, 8);
        } else {
            memcpy(p, &v, w);
        }
    }
    if (with_nulls) {
        c.valid = fbt_random_validity(&rng, rows + offset);
        assert_non_null(c.valid);
    }
    c.col.type = t;
    c.col.data = c.data;
    c.col.validity = c.valid;
    c.col.length = rows;
    c.col.offset = offset;
    return c;
}

/* An ascending random subset of 0..n-1 (about `pct` percent), or with `bad` one index ≥ n at the end. */
static uint32_t *rand_sel(int64_t n, int pct, int bad, int64_t *n_sel)
{
    uint32_t *s = xmalloc((size_t)(n + 1) * sizeof *s);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if ((int)(fbt_next(&rng) % 100) < pct)
            s[k++] = (uint32_t)i;
    if (bad)
        s[k++] = (uint32_t)(n + fbt_next(&rng) % 3);
    *n_sel = k;
    return s;
}

/* Both calls gave the same status; on an error, the same message text after the function name. */
static void same_status(fb_status a, const char *msg_a, fb_status b, const char *msg_b, const char *what)
{
    if (a != b)
        fail_msg("%s: cpu %s (%s), opencl %s (%s)", what, fb_status_name(a), msg_a, fb_status_name(b), msg_b);
    if (a != FB_OK) {
        const char *pa = strchr(msg_a, ':'), *pb = strchr(msg_b, ':');
        if (!pa || !pb || strcmp(pa, pb) != 0)
            fail_msg("%s: messages differ:\n  cpu    %s\n  opencl %s", what, msg_a, msg_b);
    }
}

#define BOTH(call_cpu, call_gpu, what)                                                                              \
    do {                                                                                                           \
        char msg_[512];                                                                                            \
        fb_status sa_ = (call_cpu);                                                                                \
        snprintf(msg_, sizeof msg_, "%s", fb_last_error(cpu));                                                     \
        fb_status sb_ = (call_gpu);                                                                                \
        same_status(sa_, msg_, sb_, fb_last_error(gpu), what);                                                     \
        st = sa_;                                                                                                  \
    } while (0)

static void same_bytes(const void *a, const void *b, size_t n, const char *what)
{
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            fail_msg("%s: byte %zu differs: cpu 0x%02x, opencl 0x%02x", what, i, x[i], y[i]);
}

/* Values of a column of type t: bitwise, except that NaN equals NaN. */
static void same_values(fb_type t, const void *a, const void *b, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        if (t == FB_TYPE_FLOAT32) {
            float x = ((const float *)a)[i], y = ((const float *)b)[i];
            if (isnan(x) && isnan(y))
                continue;
            if (memcmp(&x, &y, 4) != 0)
                fail_msg("%s: row %lld: cpu %a, opencl %a", what, (long long)i, (double)x, (double)y);
        } else if (t == FB_TYPE_FLOAT64) {
            double x = ((const double *)a)[i], y = ((const double *)b)[i];
            if (isnan(x) && isnan(y))
                continue;
            if (memcmp(&x, &y, 8) != 0)
                fail_msg("%s: row %lld: cpu %a, opencl %a", what, (long long)i, x, y);
        } else {
            size_t w = fb_type_width(t);
            if (memcmp((const char *)a + (size_t)i * w, (const char *)b + (size_t)i * w, w) != 0)
                fail_msg("%s: row %lld differs", what, (long long)i);
        }
    }
}

/* Two boolean outputs of n rows, their bytes pre-filled with garbage. */
typedef struct bool_pair {
    fb_bool a, b;
} bool_pair;

static bool_pair bools(int64_t n)
{
    bool_pair p;
    size_t nb = (size_t)nbytes(n);
    p.a = (fb_bool){n, xmalloc(nb), xmalloc(nb)};
    p.b = (fb_bool){n, xmalloc(nb), xmalloc(nb)};
    memset(p.a.bits, 0xA5, nb);
    memset(p.a.validity, 0x5A, nb);
    memset(p.b.bits, 0x3C, nb);
    memset(p.b.validity, 0xC3, nb);
    return p;
}

static void same_bools(const bool_pair *p, const char *what)
{
    size_t nb = (size_t)nbytes(p->a.length);
    same_bytes(p->a.bits, p->b.bits, nb, what);
    same_bytes(p->a.validity, p->b.validity, nb, what);
}

static void free_bools(bool_pair *p)
{
    free(p->a.bits);
    free(p->a.validity);
    free(p->b.bits);
    free(p->b.validity);
}

/* ---- comparisons, BETWEEN, IN ------------------------------------------------------------------ */

/* sel mode: 0 none, 1 about half the rows, 2 a few rows, 3 an index out of range */
static uint32_t *sel_for(int mode, int64_t n, int64_t *n_sel)
{
    *n_sel = 0;
    if (mode == 0)
        return NULL;
    return rand_sel(n, mode == 2 ? 3 : 50, mode == 3, n_sel);
}

static void test_predicates(void **state)
{
    (void)state;
    int iter = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        fb_type t = all_types[ti];
        size_t w = fb_type_width(t);
        for (size_t li = 0; li < N_LENGTHS; li++) {
            int64_t n = lengths[li];
            for (int cfg = 0; cfg < 8; cfg++, iter++) {
                int nulls = cfg & 1, selm = (cfg >> 1) % 4;
                fbt_col c = rand_col(t, n, (cfg & 4) ? 5 : 0, nulls, 0);
                int64_t n_sel;
                uint32_t *sel = sel_for(selm, n, &n_sel);
                char v1[8], v2[8], set[8 * 9];
                /* constants from the column (so equality hits) or random (extremes, NaN) */
                for (int k = 0; k < 9; k++) {
                    char *dst = k == 0 ? v1 : k == 1 ? v2 : set + (size_t)(k - 2) * w;
                    if (n > 0 && fbt_next(&rng) % 2)
                        memcpy(dst, (char *)c.data + (size_t)(c.col.offset + (int64_t)(fbt_next(&rng) % (uint64_t)n)) * w, w);
                    else
                        fbt_random_value(&rng, t, dst);
                }
                int64_t n_set = 1 + (int64_t)(fbt_next(&rng) % 7);
                fb_cmp op = (fb_cmp)(iter % 6);
                char what[160];
                fb_status st;
                bool_pair p = bools(n);
                snprintf(what, sizeof what, "cmp %s n=%lld cfg=%d op=%d", fb_type_name(t), (long long)n, cfg, (int)op);
                BOTH(fb_expr_cmp(cpu, &c.col, op, v1, sel, n_sel, &p.a), fb_cl_expr_cmp(gpu, &c.col, op, v1, sel, n_sel, &p.b),
                     what);
                same_bools(&p, what);
                free_bools(&p);
                p = bools(n);
                snprintf(what, sizeof what, "between %s n=%lld cfg=%d", fb_type_name(t), (long long)n, cfg);
                BOTH(fb_expr_between(cpu, &c.col, v1, v2, sel, n_sel, &p.a),
                     fb_cl_expr_between(gpu, &c.col, v1, v2, sel, n_sel, &p.b), what);
                same_bools(&p, what);
                free_bools(&p);
                p = bools(n);
                snprintf(what, sizeof what, "in %s n=%lld cfg=%d n_set=%lld", fb_type_name(t), (long long)n, cfg,
                         (long long)n_set);
                BOTH(fb_expr_in(cpu, &c.col, set, n_set, sel, n_sel, &p.a),
                     fb_cl_expr_in(gpu, &c.col, set, n_set, sel, n_sel, &p.b), what);
                same_bools(&p, what);
                free_bools(&p);
                (void)st;
                free(sel);
                fbt_col_free(&c);
            }
        }
    }
}

static void test_column_pairs(void **state)
{
    (void)state;
    int iter = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        fb_type t = all_types[ti];
        for (size_t li = 0; li < N_LENGTHS; li++) {
            int64_t n = lengths[li];
            for (int cfg = 0; cfg < 8; cfg++, iter++) {
                int selm = (cfg >> 1) % 4;
                fbt_col a = rand_col(t, n, (cfg & 4) ? 3 : 0, cfg & 1, 0);
                fbt_col b = rand_col(t, n, 1, (cfg & 2) != 0, 0);
                if (n > 0 && cfg & 1) /* equal rows, so EQ/LE/GE hit */
                    for (int64_t i = 0; i < n; i += 3)
                        memcpy((char *)b.data + (size_t)(i + 1) * fb_type_width(t),
                               (char *)a.data + (size_t)(i + a.col.offset) * fb_type_width(t), fb_type_width(t));
                int64_t n_sel;
                uint32_t *sel = sel_for(selm, n, &n_sel);
                fb_cmp op = (fb_cmp)(iter % 6);
                char what[160];
                fb_status st;
                bool_pair p = bools(n);
                snprintf(what, sizeof what, "cmp_cols %s n=%lld cfg=%d op=%d", fb_type_name(t), (long long)n, cfg,
                         (int)op);
                BOTH(fb_expr_cmp_cols(cpu, &a.col, op, &b.col, sel, n_sel, &p.a),
                     fb_cl_expr_cmp_cols(gpu, &a.col, op, &b.col, sel, n_sel, &p.b), what);
                same_bools(&p, what);
                free_bools(&p);
                int64_t cand = sel ? n_sel : n, ka = -1, kb = -2;
                uint32_t *oa = xmalloc((size_t)(cand + 1) * 4), *ob = xmalloc((size_t)(cand + 1) * 4);
                snprintf(what, sizeof what, "select_cols %s n=%lld cfg=%d op=%d", fb_type_name(t), (long long)n, cfg,
                         (int)op);
                BOTH(fb_expr_select_cols(cpu, &a.col, op, &b.col, sel, n_sel, oa, cand, &ka),
                     fb_cl_expr_select_cols(gpu, &a.col, op, &b.col, sel, n_sel, ob, cand, &kb), what);
                if (st == FB_OK) {
                    assert_int_equal(ka, kb);
                    same_bytes(oa, ob, (size_t)ka * 4, what);
                }
                free(oa);
                free(ob);
                free(sel);
                fbt_col_free(&a);
                fbt_col_free(&b);
            }
        }
    }
}

/* ---- logic and selection vectors --------------------------------------------------------------- */

/* A random boolean: value bits anywhere (also under NULL rows and in the padding), validity or not. */
static fb_bool rand_bool(int64_t n, int with_validity)
{
    size_t nb = (size_t)nbytes(n);
    fb_bool b = {n, xmalloc(nb), with_validity ? xmalloc(nb) : NULL};
    for (size_t i = 0; i < nb; i++) {
        b.bits[i] = (uint8_t)fbt_next(&rng);
        if (b.validity)
            b.validity[i] = (uint8_t)(fbt_next(&rng) | fbt_next(&rng));
    }
    return b;
}

static void test_logic(void **state)
{
    (void)state;
    for (size_t li = 0; li < N_LENGTHS; li++) {
        int64_t n = lengths[li];
        for (int cfg = 0; cfg < 4; cfg++) {
            fb_bool a = rand_bool(n, cfg & 1), b = rand_bool(n, cfg & 2);
            char what[128];
            fb_status st;
            for (int op = 0; op < 3; op++) {
                bool_pair p = bools(n);
                snprintf(what, sizeof what, "logic op %d n=%lld cfg=%d", op, (long long)n, cfg);
                if (op == 0)
                    BOTH(fb_expr_and(cpu, &a, &b, &p.a), fb_cl_expr_and(gpu, &a, &b, &p.b), what);
                else if (op == 1)
                    BOTH(fb_expr_or(cpu, &a, &b, &p.a), fb_cl_expr_or(gpu, &a, &b, &p.b), what);
                else
                    BOTH(fb_expr_not(cpu, &a, &p.a), fb_cl_expr_not(gpu, &a, &p.b), what);
                same_bools(&p, what);
                free_bools(&p);
            }
            /* out aliasing an input */
            if (n > 0 && a.validity) {
                size_t nb = (size_t)nbytes(n);
                fb_bool x = {n, xmalloc(nb), xmalloc(nb)}, y = {n, xmalloc(nb), xmalloc(nb)};
                memcpy(x.bits, a.bits, nb);
                memcpy(x.validity, a.validity, nb);
                memcpy(y.bits, a.bits, nb);
                memcpy(y.validity, a.validity, nb);
                BOTH(fb_expr_or(cpu, &x, &b, &x), fb_cl_expr_or(gpu, &y, &b, &y), "or aliased");
                same_bytes(x.bits, y.bits, nb, "or aliased");
                same_bytes(x.validity, y.validity, nb, "or aliased");
                free(x.bits);
                free(x.validity);
                free(y.bits);
                free(y.validity);
            }
            for (int selm = 0; selm < 4; selm++) {
                int64_t n_sel;
                uint32_t *sel = sel_for(selm, n, &n_sel);
                int64_t cand = sel ? n_sel : n, ka = -1, kb = -2;
                uint32_t *oa = xmalloc((size_t)(cand + 1) * 4), *ob = xmalloc((size_t)(cand + 1) * 4);
                snprintf(what, sizeof what, "bool_to_sel n=%lld cfg=%d sel=%d", (long long)n, cfg, selm);
                BOTH(fb_expr_bool_to_sel(cpu, &a, sel, n_sel, oa, cand, &ka),
                     fb_cl_expr_bool_to_sel(gpu, &a, sel, n_sel, ob, cand, &kb), what);
                if (st == FB_OK) {
                    assert_int_equal(ka, kb);
                    same_bytes(oa, ob, (size_t)ka * 4, what);
                }
                free(oa);
                free(ob);
                free(sel);
            }
            free(a.bits);
            free(a.validity);
            free(b.bits);
            free(b.validity);
        }
    }
}

static void test_selection_logic(void **state)
{
    (void)state;
    static const int pcts[] = {0, 2, 50, 100};
    for (size_t li = 0; li < N_LENGTHS; li++) {
        int64_t n = lengths[li];
        for (int cfg = 0; cfg < 16; cfg++) {
            int64_t n_a, n_b, n_d;
            uint32_t *a = rand_sel(n, pcts[cfg % 4], 0, &n_a), *b = rand_sel(n, pcts[cfg / 4], 0, &n_b);
            uint32_t *dom = rand_sel(n, 60, cfg == 5 && n > 0, &n_d);
            int64_t cap = n_a + n_b + n + 1, ka = -1, kb = -2;
            uint32_t *oa = xmalloc((size_t)cap * 4), *ob = xmalloc((size_t)cap * 4);
            char what[128];
            fb_status st;
            snprintf(what, sizeof what, "sel_and n=%lld cfg=%d", (long long)n, cfg);
            BOTH(fb_expr_sel_and(cpu, a, n_a, b, n_b, oa, cap, &ka), fb_cl_expr_sel_and(gpu, a, n_a, b, n_b, ob, cap, &kb),
                 what);
            assert_int_equal(ka, kb);
            same_bytes(oa, ob, (size_t)ka * 4, what);
            snprintf(what, sizeof what, "sel_or n=%lld cfg=%d", (long long)n, cfg);
            BOTH(fb_expr_sel_or(cpu, a, n_a, b, n_b, oa, cap, &ka), fb_cl_expr_sel_or(gpu, a, n_a, b, n_b, ob, cap, &kb),
                 what);
            assert_int_equal(ka, kb);
            same_bytes(oa, ob, (size_t)ka * 4, what);
            for (int with_dom = 0; with_dom < 2; with_dom++) {
                snprintf(what, sizeof what, "sel_not n=%lld cfg=%d dom=%d", (long long)n, cfg, with_dom);
                ka = -1;
                kb = -2;
                BOTH(fb_expr_sel_not(cpu, a, n_a, n, with_dom ? dom : NULL, n_d, oa, cap, &ka),
                     fb_cl_expr_sel_not(gpu, a, n_a, n, with_dom ? dom : NULL, n_d, ob, cap, &kb), what);
                if (st == FB_OK) {
                    assert_int_equal(ka, kb);
                    same_bytes(oa, ob, (size_t)ka * 4, what);
                }
            }
            free(oa);
            free(ob);
            free(a);
            free(b);
            free(dom);
        }
    }
    /* unsorted input and short capacity: the same argument errors */
    uint32_t un[] = {3, 1}, ok[] = {1, 2}, out[4];
    int64_t k;
    fb_status st;
    BOTH(fb_expr_sel_and(cpu, un, 2, ok, 2, out, 4, &k), fb_cl_expr_sel_and(gpu, un, 2, ok, 2, out, 4, &k), "unsorted");
    assert_int_equal(st, FB_ERR_INVALID_ARG);
    BOTH(fb_expr_sel_or(cpu, ok, 2, ok, 2, out, 3, &k), fb_cl_expr_sel_or(gpu, ok, 2, ok, 2, out, 3, &k), "capacity");
    assert_int_equal(st, FB_ERR_CAPACITY);
    BOTH(fb_expr_sel_not(cpu, ok, 2, 2, NULL, 0, out, 4, &k), fb_cl_expr_sel_not(gpu, ok, 2, 2, NULL, 0, out, 4, &k),
         "a out of range");
    assert_int_equal(st, FB_ERR_OUT_OF_RANGE);
}

/* ---- arithmetic and casts ------------------------------------------------------------------------ */

/* Puts extreme values into the rows that are NULL (mode 1) or not in sel (mode 2). */
static void extremes_where_ignored(fbt_col *c, const uint32_t *sel, int64_t n_sel, int mode)
{
    fb_type t = c->col.type;
    size_t w = fb_type_width(t);
    int64_t n = c->col.length, k = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = c->col.offset + i;
        int ignored;
        if (mode == 1) {
            ignored = c->valid && !((c->valid[r >> 3] >> (r & 7)) & 1);
        } else {
            while (k < n_sel && sel[k] < i)
                k++;
            ignored = !(k < n_sel && sel[k] == i);
        }
        if (!ignored)
            continue;
        char *p = (char *)c->data + (size_t)r * w;
        uint64_t v = fbt_next(&rng) % 2 ? ~0ull >> 1 : 1ull << 63; /* int64 max / min */
        if (t == FB_TYPE_FLOAT64) {
            double d = fbt_next(&rng) % 2 ? 1e300 : -1e300;
            memcpy(p, &d, 8);
        } else if (t == FB_TYPE_FLOAT32) {
            float f = fbt_next(&rng) % 2 ? 3e38f : -3e38f;
            memcpy(p, &f, 4);
        } else if (w == 8) {
            memcpy(p, &v, 8);
        } else {
            uint64_t x = (uint64_t)(fbt_next(&rng) % 2 ? -1 : 0) ^ (1ull << (w * 8 - 1)); /* max or min */
            memcpy(p, &x, w);
        }
    }
}

static void test_arith(void **state)
{
    (void)state;
    static const fb_type types[] = {FB_TYPE_INT32, FB_TYPE_INT64, FB_TYPE_FLOAT32, FB_TYPE_FLOAT64};
    int iter = 0;
    for (size_t ti = 0; ti < 4; ti++) {
        fb_type t = types[ti];
        size_t w = fb_type_width(t);
        for (size_t li = 0; li < N_LENGTHS; li++) {
            int64_t n = lengths[li];
            /* data: 0 random (extremes: overflow), 1 small, 2 small with extremes in NULL rows only,
             * 3 small with extremes in unselected rows only */
            for (int data = 0; data < 4; data++) {
                for (int form = 0; form < 3; form++, iter++) { /* col op col, col op const, const op col */
                    fb_arith op = (fb_arith)(iter % 3);
                    int nulls = data == 2 || (iter & 4);
                    int selm = data == 3 ? 1 : (iter >> 3) % 4;
                    int64_t n_sel;
                    uint32_t *sel = sel_for(selm, n, &n_sel);
                    fbt_col a = rand_col(t, n, (iter & 1) ? 3 : 0, nulls, data != 0);
                    fbt_col b = rand_col(t, n, 0, nulls && (iter & 2), data != 0);
                    if (data >= 2) {
                        extremes_where_ignored(&a, sel, n_sel, data - 1);
                        if (data == 3)
                            extremes_where_ignored(&b, sel, n_sel, 2);
                    }
                    char value[8];
                    if (data == 0) {
                        fbt_random_value(&rng, t, value);
                    } else {
                        fbt_col one = rand_col(t, 1, 0, 0, 1);
                        memcpy(value, one.data, w);
                        fbt_col_free(&one);
                    }
                    fb_column_out oa = {.type = t, .capacity = n, .data = xmalloc((size_t)n * w + 1),
                                        .validity = xmalloc((size_t)nbytes(n) + 1)};
                    fb_column_out ob = {.type = t, .capacity = n, .data = xmalloc((size_t)n * w + 1),
                                        .validity = xmalloc((size_t)nbytes(n) + 1)};
                    if (!nulls && !sel && (iter & 8)) /* no validity needed: none given */
                        oa.validity = NULL, ob.validity = NULL;
                    uint8_t *va = oa.validity, *vb = ob.validity;
                    char what[160];
                    fb_status st;
                    snprintf(what, sizeof what, "arith %s op=%d form=%d n=%lld data=%d sel=%d", fb_type_name(t),
                             (int)op, form, (long long)n, data, selm);
                    if (form == 0)
                        BOTH(fb_expr_arith(cpu, op, &a.col, &b.col, sel, n_sel, &oa),
                             fb_cl_expr_arith(gpu, op, &a.col, &b.col, sel, n_sel, &ob), what);
                    else
                        BOTH(fb_expr_arith_const(cpu, op, &a.col, value, form == 2, sel, n_sel, &oa),
                             fb_cl_expr_arith_const(gpu, op, &a.col, value, form == 2, sel, n_sel, &ob), what);
                    if (data >= 1 && selm != 3)
                        assert_int_equal(st, FB_OK); /* extremes only where they cannot fail */
                    assert_int_equal(oa.length, ob.length);
                    assert_int_equal(oa.null_count, ob.null_count);
                    if (st == FB_OK) {
                        same_values(t, oa.data, ob.data, n, what);
                        if (va)
                            same_bytes(va, vb, (size_t)nbytes(n), what);
                    }
                    free(oa.data);
                    free(va);
                    free(ob.data);
                    free(vb);
                    free(sel);
                    fbt_col_free(&a);
                    fbt_col_free(&b);
                }
            }
        }
    }
}

static void test_cast(void **state)
{
    (void)state;
    static const int64_t lens[] = {0, 5, 333, 4099};
    int iter = 0;
    for (size_t fi = 0; fi < N_TYPES; fi++) {
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            fb_type from = all_types[fi], to = all_types[ti];
            size_t wo = fb_type_width(to);
            for (size_t li = 0; li < 4; li++) {
                int64_t n = lens[li];
                /* random, small, tiny (fits every type), tiny + extremes in NULL rows */
                for (int data = 0; data < 4; data++, iter++) {
                    int nulls = data == 3 || (iter & 1);
                    int selm = (iter >> 1) % 4;
                    int64_t n_sel;
                    uint32_t *sel = sel_for(selm, n, &n_sel);
                    fbt_col c = rand_col(from, n, (iter & 2) ? 7 : 0, nulls, data == 0 ? 0 : data == 1 ? 1 : 2);
                    if (data == 3)
                        extremes_where_ignored(&c, sel, n_sel, 1);
                    fb_column_out oa = {.type = to, .capacity = n, .data = xmalloc((size_t)n * wo + 1),
                                        .validity = xmalloc((size_t)nbytes(n) + 1)};
                    fb_column_out ob = {.type = to, .capacity = n, .data = xmalloc((size_t)n * wo + 1),
                                        .validity = xmalloc((size_t)nbytes(n) + 1)};
                    char what[160];
                    fb_status st;
                    snprintf(what, sizeof what, "cast %s -> %s n=%lld data=%d sel=%d", fb_type_name(from),
                             fb_type_name(to), (long long)n, data, selm);
                    BOTH(fb_expr_cast(cpu, &c.col, sel, n_sel, &oa), fb_cl_expr_cast(gpu, &c.col, sel, n_sel, &ob),
                         what);
                    if (data >= 2 && selm != 3)
                        assert_int_equal(st, FB_OK);
                    assert_int_equal(oa.length, ob.length);
                    assert_int_equal(oa.null_count, ob.null_count);
                    if (st == FB_OK) {
                        same_values(to, oa.data, ob.data, n, what);
                        same_bytes(oa.validity, ob.validity, (size_t)nbytes(n), what);
                    }
                    free(oa.data);
                    free(oa.validity);
                    free(ob.data);
                    free(ob.validity);
                    free(sel);
                    fbt_col_free(&c);
                }
            }
        }
    }
}

/* Float to integer rounds half to even, and values just past the target's range fail, on both. */
static void test_cast_edges(void **state)
{
    (void)state;
    static const double d[] = {0.5,  1.5,  2.5,  -0.5, -1.5,         -2.5,       127.5,  -128.5, 126.5,
                               2147483647.5, -2147483648.5, 4294967295.4, 9223372036854774784.0, -0.0,
                               1e-310, 18446744073709549568.0, 3.4028235677973366e38, 3.4028235e38 * 2.0};
    const int64_t n = (int64_t)(sizeof d / sizeof d[0]);
    fb_column in = {.type = FB_TYPE_FLOAT64, .length = n, .data = d};
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        fb_type to = all_types[ti];
        size_t wo = fb_type_width(to);
        for (int64_t i = 0; i < n; i++) {
            fb_column one = in;
            one.offset = i;
            one.length = 1;
            char oa_data[8], ob_data[8];
            fb_column_out oa = {.type = to, .capacity = 1, .data = oa_data};
            fb_column_out ob = {.type = to, .capacity = 1, .data = ob_data};
            char what[96];
            fb_status st;
            snprintf(what, sizeof what, "cast %.17g -> %s", d[i], fb_type_name(to));
            BOTH(fb_expr_cast(cpu, &one, NULL, 0, &oa), fb_cl_expr_cast(gpu, &one, NULL, 0, &ob), what);
            if (st == FB_OK)
                same_values(to, oa_data, ob_data, 1, what);
            (void)wo;
        }
    }
}

static void test_bad_args(void **state)
{
    (void)state;
    int32_t x[4] = {1, 2, 3, 4};
    int64_t y[4] = {1, 2, 3, 4};
    uint8_t bits[1], valid[1];
    fb_column a = {.type = FB_TYPE_INT32, .length = 4, .data = x};
    fb_column b = {.type = FB_TYPE_INT64, .length = 4, .data = y};
    fb_column c = {.type = FB_TYPE_INT32, .length = 3, .data = x};
    fb_bool out = {4, bits, valid}, short_out = {3, bits, valid};
    uint32_t sel[1], bad_sel[2] = {1, 9};
    int64_t k;
    int32_t v = 2;
    fb_status st;
    assert_int_equal(fb_cl_expr_cmp(NULL, &a, FB_CMP_EQ, &v, NULL, 0, &out), FB_ERR_INVALID_ARG);
    BOTH(fb_expr_cmp_cols(cpu, &a, FB_CMP_EQ, &b, NULL, 0, &out), fb_cl_expr_cmp_cols(gpu, &a, FB_CMP_EQ, &b, NULL, 0, &out),
         "types differ");
    assert_int_equal(st, FB_ERR_UNSUPPORTED_TYPE);
    BOTH(fb_expr_cmp_cols(cpu, &a, FB_CMP_EQ, &c, NULL, 0, &out), fb_cl_expr_cmp_cols(gpu, &a, FB_CMP_EQ, &c, NULL, 0, &out),
         "lengths differ");
    assert_int_equal(st, FB_ERR_LENGTH_MISMATCH);
    BOTH(fb_expr_cmp(cpu, &a, (fb_cmp)9, &v, NULL, 0, &out), fb_cl_expr_cmp(gpu, &a, (fb_cmp)9, &v, NULL, 0, &out), "op");
    assert_int_equal(st, FB_ERR_INVALID_ARG);
    BOTH(fb_expr_cmp(cpu, &a, FB_CMP_EQ, &v, NULL, 0, &short_out),
         fb_cl_expr_cmp(gpu, &a, FB_CMP_EQ, &v, NULL, 0, &short_out), "out length");
    assert_int_equal(st, FB_ERR_INVALID_ARG);
    BOTH(fb_expr_select_cols(cpu, &a, FB_CMP_EQ, &a, NULL, 0, sel, 1, &k),
         fb_cl_expr_select_cols(gpu, &a, FB_CMP_EQ, &a, NULL, 0, sel, 1, &k), "capacity");
    assert_int_equal(st, FB_ERR_CAPACITY);
    /* an index out of range: every row NULL afterwards */
    memset(bits, 0xFF, 1);
    memset(valid, 0xFF, 1);
    assert_int_equal(fb_cl_expr_cmp(gpu, &a, FB_CMP_EQ, &v, bad_sel, 2, &out), FB_ERR_OUT_OF_RANGE);
    assert_int_equal(bits[0], 0);
    assert_int_equal(valid[0], 0);
    int32_t o32[4];
    fb_column_out o = {.type = FB_TYPE_INT64, .capacity = 4, .data = o32};
    BOTH(fb_expr_arith(cpu, FB_ARITH_ADD, &a, &a, NULL, 0, &o), fb_cl_expr_arith(gpu, FB_ARITH_ADD, &a, &a, NULL, 0, &o),
         "out type");
    assert_int_equal(st, FB_ERR_UNSUPPORTED_TYPE);
    fb_column_out o2 = {.type = FB_TYPE_INT32, .capacity = 4, .data = o32};
    BOTH(fb_expr_arith(cpu, FB_ARITH_ADD, &a, &a, bad_sel, 2, &o2),
         fb_cl_expr_arith(gpu, FB_ARITH_ADD, &a, &a, bad_sel, 2, &o2), "validity needed");
    assert_int_equal(st, FB_ERR_INVALID_ARG);
    o2.validity = valid;
    BOTH(fb_expr_arith(cpu, FB_ARITH_ADD, &a, &a, bad_sel, 2, &o2),
         fb_cl_expr_arith(gpu, FB_ARITH_ADD, &a, &a, bad_sel, 2, &o2), "sel out of range");
    assert_int_equal(st, FB_ERR_OUT_OF_RANGE);
    assert_int_equal(o2.length, 0);
    BOTH(fb_expr_arith(cpu, FB_ARITH_ADD, &b, &b, NULL, 0, &o2), fb_cl_expr_arith(gpu, FB_ARITH_ADD, &b, &b, NULL, 0, &o2),
         "int64 into int32");
    assert_int_equal(st, FB_ERR_UNSUPPORTED_TYPE);
    fb_column s8 = {.type = FB_TYPE_INT8, .length = 4, .data = x};
    BOTH(fb_expr_arith(cpu, FB_ARITH_ADD, &s8, &s8, NULL, 0, &o2),
         fb_cl_expr_arith(gpu, FB_ARITH_ADD, &s8, &s8, NULL, 0, &o2), "int8 arithmetic");
    assert_int_equal(st, FB_ERR_UNSUPPORTED_TYPE);
}

/* Chunks the last twin call on gpu split its rows into. */
static int gpu_chunks(void) { return gpu->cl ? gpu->cl->last_chunks : -1; }

/* A morsel larger than the device memory budget goes through in chunks of rows (the row-aligned twins,
 * fb_cl_expr_bool_to_sel and fb_cl_expr_select_cols): the same bits as the CPU with and without an
 * input selection (nulls, a nonzero offset), an overflow named at its row of the whole morsel, a bad
 * sel_in index as on the CPU; a budget too small for chunks of 1024 rows gives FB_ERR_DEVICE_MEMORY,
 * and the next call with the budget back works. */
static void test_budget(void **state)
{
    (void)state;
    int64_t n = 100003, n_sel = 0, n_bad = 0;
    size_t nb = (size_t)nbytes(n);
    fbt_col a = rand_col(FB_TYPE_INT64, n, 3, 1, 1), b = rand_col(FB_TYPE_INT64, n, 0, 1, 1);
    uint32_t *sel = rand_sel(n, 50, 0, &n_sel), *bad = rand_sel(n, 20, 1, &n_bad);
    fb_column_out oa = {.type = FB_TYPE_INT64, .capacity = n, .data = xmalloc((size_t)n * 8), .validity = xmalloc(nb)};
    fb_column_out ob = {.type = FB_TYPE_INT64, .capacity = n, .data = xmalloc((size_t)n * 8), .validity = xmalloc(nb)};
    fb_column_out ca = {.type = FB_TYPE_INT32, .capacity = n, .data = xmalloc((size_t)n * 4), .validity = xmalloc(nb)};
    fb_column_out cb = {.type = FB_TYPE_INT32, .capacity = n, .data = xmalloc((size_t)n * 4), .validity = xmalloc(nb)};
    fb_status st;
    setenv("FB_CL_MEM_BUDGET", "64k", 1);
    int chunks = 0;
    for (int selm = 0; selm < 2; selm++) {
        const uint32_t *s = selm ? sel : NULL;
        int64_t ns = selm ? n_sel : 0, v = 17, set[3] = {5, -7, 400};
        char what[64];
        bool_pair p = bools(n);
        snprintf(what, sizeof what, "chunked cmp, sel %d", selm);
        BOTH(fb_expr_cmp(cpu, &a.col, FB_CMP_LT, &v, s, ns, &p.a), fb_cl_expr_cmp(gpu, &a.col, FB_CMP_LT, &v, s, ns, &p.b),
             what);
        assert_int_equal(st, FB_OK);
        same_bools(&p, what);
        chunks = gpu_chunks();
        assert_true(chunks > 1);
        snprintf(what, sizeof what, "chunked in, sel %d", selm);
        BOTH(fb_expr_in(cpu, &a.col, set, 3, s, ns, &p.a), fb_cl_expr_in(gpu, &a.col, set, 3, s, ns, &p.b), what);
        same_bools(&p, what);
        snprintf(what, sizeof what, "chunked cmp_cols, sel %d", selm);
        BOTH(fb_expr_cmp_cols(cpu, &a.col, FB_CMP_GE, &b.col, s, ns, &p.a),
             fb_cl_expr_cmp_cols(gpu, &a.col, FB_CMP_GE, &b.col, s, ns, &p.b), what);
        same_bools(&p, what);
        uint32_t *sa = xmalloc((size_t)n * 4), *sb = xmalloc((size_t)n * 4);
        int64_t na = -1, nb2 = -2;
        snprintf(what, sizeof what, "chunked bool_to_sel, sel %d", selm);
        BOTH(fb_expr_bool_to_sel(cpu, &p.a, s, ns, sa, n, &na), fb_cl_expr_bool_to_sel(gpu, &p.b, s, ns, sb, n, &nb2),
             what);
        assert_int_equal(st, FB_OK);
        assert_true(gpu_chunks() > 1);
        assert_int_equal(na, nb2);
        same_bytes(sa, sb, (size_t)na * 4, what);
        snprintf(what, sizeof what, "chunked select_cols, sel %d", selm);
        BOTH(fb_expr_select_cols(cpu, &a.col, FB_CMP_LT, &b.col, s, ns, sa, n, &na),
             fb_cl_expr_select_cols(gpu, &a.col, FB_CMP_LT, &b.col, s, ns, sb, n, &nb2), what);
        assert_int_equal(st, FB_OK);
        assert_true(gpu_chunks() > 1);
        assert_int_equal(na, nb2);
        same_bytes(sa, sb, (size_t)na * 4, what);
        free(sa);
        free(sb);
        bool_pair q = bools(n); /* logic over the booleans just computed (their validity: nulls) */
        snprintf(what, sizeof what, "chunked or, sel %d", selm);
        BOTH(fb_expr_or(cpu, &p.a, &p.a, &q.a), fb_cl_expr_or(gpu, &p.b, &p.b, &q.b), what);
        same_bools(&q, what);
        assert_true(gpu_chunks() > 1);
        free_bools(&q);
        free_bools(&p);
        snprintf(what, sizeof what, "chunked arith, sel %d", selm);
        BOTH(fb_expr_arith(cpu, FB_ARITH_MUL, &a.col, &b.col, s, ns, &oa),
             fb_cl_expr_arith(gpu, FB_ARITH_MUL, &a.col, &b.col, s, ns, &ob), what);
        assert_int_equal(st, FB_OK);
        assert_true(gpu_chunks() > 1);
        assert_int_equal(oa.length, ob.length);
        assert_int_equal(oa.null_count, ob.null_count);
        same_values(FB_TYPE_INT64, oa.data, ob.data, n, what);
        same_bytes(oa.validity, ob.validity, nb, what);
        snprintf(what, sizeof what, "chunked cast, sel %d", selm);
        BOTH(fb_expr_cast(cpu, &a.col, s, ns, &ca), fb_cl_expr_cast(gpu, &a.col, s, ns, &cb), what);
        assert_int_equal(st, FB_OK);
        assert_true(gpu_chunks() > 1);
        assert_int_equal(ca.null_count, cb.null_count);
        same_values(FB_TYPE_INT32, ca.data, cb.data, n, what);
        same_bytes(ca.validity, cb.validity, nb, what);
    }
    /* failures in a later chunk name their row of the whole morsel */
    int64_t r = 3 * n / 4 + 5, big = INT64_MAX, wide = (int64_t)1 << 40, one = 1;
    for (int64_t i = r; i < r + 2; i++) {
        a.valid[(3 + i) >> 3] |= (uint8_t)(1u << ((3 + i) & 7));
        b.valid[i >> 3] |= (uint8_t)(1u << (i & 7));
    }
    memcpy((int64_t *)a.data + 3 + r, &big, 8);
    memcpy((int64_t *)b.data + r, &one, 8);
    memcpy((int64_t *)a.data + 3 + r + 1, &wide, 8);
    BOTH(fb_expr_arith(cpu, FB_ARITH_ADD, &a.col, &b.col, NULL, 0, &oa),
         fb_cl_expr_arith(gpu, FB_ARITH_ADD, &a.col, &b.col, NULL, 0, &ob), "chunked arith overflow");
    assert_int_equal(st, FB_ERR_OVERFLOW);
    assert_int_equal(ob.length, 0);
    BOTH(fb_expr_cast(cpu, &a.col, NULL, 0, &ca), fb_cl_expr_cast(gpu, &a.col, NULL, 0, &cb), "chunked cast overflow");
    assert_int_equal(st, FB_ERR_OVERFLOW);
    BOTH(fb_expr_cast(cpu, &b.col, bad, n_bad, &ca), fb_cl_expr_cast(gpu, &b.col, bad, n_bad, &cb),
         "chunked cast, bad sel_in");
    assert_int_equal(st, FB_ERR_OUT_OF_RANGE);
    bool_pair p = bools(n);
    int64_t v = 0;
    BOTH(fb_expr_cmp(cpu, &b.col, FB_CMP_EQ, &v, bad, n_bad, &p.a), fb_cl_expr_cmp(gpu, &b.col, FB_CMP_EQ, &v, bad, n_bad, &p.b),
         "chunked cmp, bad sel_in");
    assert_int_equal(st, FB_ERR_OUT_OF_RANGE);
    same_bools(&p, "chunked cmp, bad sel_in");
    uint32_t *sa = xmalloc((size_t)(n + 1) * 4), *sb = xmalloc((size_t)(n + 1) * 4);
    int64_t na = -1, nb2 = -2;
    BOTH(fb_expr_bool_to_sel(cpu, &p.a, bad, n_bad, sa, n + 1, &na),
         fb_cl_expr_bool_to_sel(gpu, &p.b, bad, n_bad, sb, n + 1, &nb2), "chunked bool_to_sel, bad sel_in");
    assert_int_equal(st, FB_ERR_OUT_OF_RANGE);
    BOTH(fb_expr_select_cols(cpu, &a.col, FB_CMP_NE, &b.col, bad, n_bad, sa, n + 1, &na),
         fb_cl_expr_select_cols(gpu, &a.col, FB_CMP_NE, &b.col, bad, n_bad, sb, n + 1, &nb2),
         "chunked select_cols, bad sel_in");
    assert_int_equal(st, FB_ERR_OUT_OF_RANGE);
    free(sa);
    free(sb);
    free_bools(&p);
    /* too small for chunks of 1024 rows */
    setenv("FB_CL_MEM_BUDGET", "16k", 1);
    st = fb_cl_expr_cast(gpu, &b.col, NULL, 0, &cb);
    unsetenv("FB_CL_MEM_BUDGET");
    assert_fb_status(gpu, st, FB_ERR_DEVICE_MEMORY);
    assert_int_equal(cb.length, 0);
    assert_fb_ok(gpu, fb_cl_expr_cast(gpu, &b.col, NULL, 0, &cb));
    assert_int_equal(cb.length, n);
    assert_int_equal(gpu_chunks(), 1);
    print_message("[ budget   ] %lld rows under 64k: %d chunks\n", (long long)n, chunks);
    free(oa.data);
    free(oa.validity);
    free(ob.data);
    free(ob.validity);
    free(ca.data);
    free(ca.validity);
    free(cb.data);
    free(cb.validity);
    free(sel);
    free(bad);
    fbt_col_free(&a);
    fbt_col_free(&b);
}

static int setup(void **state)
{
    (void)state;
    rng = fbt_seed();
    fb_options *o = NULL;
    if (fb_options_create(&o) != FB_OK || fb_options_set_isa(o, FB_ISA_SCALAR) != FB_OK ||
        fb_ctx_create(o, &cpu) != FB_OK)
        return -1;
    fb_options_destroy(o);
    return fbt_cl_ctx_create(NULL, &gpu);
}

static int teardown(void **state)
{
    (void)state;
    fb_ctx_destroy(cpu);
    fb_ctx_destroy(gpu);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predicates), cmocka_unit_test(test_column_pairs), cmocka_unit_test(test_logic),
        cmocka_unit_test(test_selection_logic), cmocka_unit_test(test_arith), cmocka_unit_test(test_cast),
        cmocka_unit_test(test_cast_edges), cmocka_unit_test(test_bad_args), cmocka_unit_test(test_budget),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
