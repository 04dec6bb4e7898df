/* fuzz_plan.c - libFuzzer target for the plan builder and runtime (fb_plan.h): random small plans over
 * small random tables, on every CPU variant (two workers each), against a reference executor written here.
 *
 * The input decodes into 1..3 tables (0..60 rows; column 0 of every table has one shared join-key type
 * and a small value pool so joins match; 1..3 more columns of any type, nulls, every edge value) and a
 * chain of up to 6 operators over a scan of table 0: filters (1..3 predicates: comparison, BETWEEN, IN on
 * integer or float columns; constants sometimes outside the column's type, which the builder must refuse
 * with FB_ERR_OUT_OF_RANGE), hash joins (inner, left, semi, anti, 1..2 key pairs, build payload) with
 * another table (filtered or not), int64 projections (+ - * of columns or a constant: FB_ERR_OVERFLOW
 * exactly when a row overflows), and at the end optionally an aggregation (0..2 keys; count(*), count,
 * sum, min, max, avg), a sort (1..2 keys, asc/desc, nulls first/last) with or without a limit, or a limit
 * after a sort. The reference executes the same chain with nested loops over value rows. Results are
 * compared as multisets of rows (floats: -0.0 = 0.0, NaN = NaN; avg within 1e-12), a sorted result also
 * in key order, a top-N / limit as the first rows of the reference's sorted order (keys) and a sub-multiset
 * of it. The context's memory returns to its level before the plan. */
#include "fuzz_common.h"

#define MAX_ROWS 60
#define MAX_COLS 24
#define MAX_TABLES 3
#define MAX_OPS 6
#define MAX_OUT 8192

/* A relation of the reference: rows x cols cells (value bits zero-extended, validity). */
typedef struct rel {
    int ncols;
    fb_type types[MAX_COLS];
    int64_t rows, cap;
    uint64_t *v;
    uint8_t *ok;
} rel;

static void rel_init(rel *r, int ncols, const fb_type *types)
{
    memset(r, 0, sizeof *r);
    r->ncols = ncols;
    memcpy(r->types, types, (size_t)ncols * sizeof *types);
}

static void rel_push(rel *r, const uint64_t *v, const uint8_t *ok)
{
    if (r->rows == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->v = realloc(r->v, (size_t)(r->cap * r->ncols) * sizeof *r->v + 8);
        r->ok = realloc(r->ok, (size_t)(r->cap * r->ncols) + 1);
    }
    memcpy(r->v + r->rows * r->ncols, v, (size_t)r->ncols * sizeof *v);
    memcpy(r->ok + r->rows * r->ncols, ok, (size_t)r->ncols);
    r->rows++;
}

static void rel_free(rel *r)
{
    free(r->v);
    free(r->ok);
    memset(r, 0, sizeof *r);
}

#define CELL(r, i, c) ((r)->v[(i) * (r)->ncols + (c)])
#define OK(r, i, c) ((r)->ok[(i) * (r)->ncols + (c)])

static int is_int(fb_type t) { return !fz_is_float(t); }

/* A value's bits normalized for comparison: -0.0 as 0.0, every NaN as one NaN. */
static uint64_t norm(fb_type t, uint64_t bits)
{
    if (t == FB_TYPE_FLOAT32) {
        float f;
        uint32_t b = (uint32_t)bits;
        memcpy(&f, &b, 4);
        if (f == 0)
            return 0;
        if (isnan(f))
            return 0x7FC00000u;
        return b;
    }
    if (t == FB_TYPE_FLOAT64) {
        double d;
        memcpy(&d, &bits, 8);
        if (d == 0)
            return 0;
        if (isnan(d))
            return 0x7FF8000000000000ull;
    }
    return bits;
}

/* ---- comparisons ---------------------------------------------------------------------------------- */

/* SQL comparison of a column value with a predicate constant (int64 for integer columns, double for floats). */
static int cmp_const(fb_type t, uint64_t bits, int64_t ic, double fc)
{
    if (fz_is_float(t)) {
        double x = fz_get_f64(t, &bits);
        int nx = isnan(x), ny = isnan(fc);
        if (nx || ny)
            return nx - ny;
        return (x > fc) - (x < fc);
    }
    if (t == FB_TYPE_UINT64) {
        if (ic < 0)
            return 1;
        return (bits > (uint64_t)ic) - (bits < (uint64_t)ic);
    }
    int64_t x = fz_get_i64(t, &bits);
    return (x > ic) - (x < ic);
}

static int holds(int c, fb_cmp op)
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

/* Whether an int64 constant fits an integer type, a double a float type. */
static int fits(fb_type t, int64_t ic, double fc)
{
    switch (t) {
    case FB_TYPE_INT8: return ic >= INT8_MIN && ic <= INT8_MAX;
    case FB_TYPE_INT16: return ic >= INT16_MIN && ic <= INT16_MAX;
    case FB_TYPE_INT32: case FB_TYPE_DATE32: return ic >= INT32_MIN && ic <= INT32_MAX;
    case FB_TYPE_UINT8: return ic >= 0 && ic <= UINT8_MAX;
    case FB_TYPE_UINT16: return ic >= 0 && ic <= UINT16_MAX;
    case FB_TYPE_UINT32: return ic >= 0 && ic <= UINT32_MAX;
    case FB_TYPE_UINT64: return ic >= 0;
    case FB_TYPE_FLOAT32: return isnan(fc) || (double)(float)fc == fc;
    default: return 1;
    }
}

/* ---- decoding ------------------------------------------------------------------------------------- */

static int64_t dec_int(fz_in *in)
{
    uint8_t s = fz_u8(in);
    static const int64_t edge[] = {INT64_MIN, INT64_MAX, INT32_MIN, INT32_MAX, 255, 256, -129, 65536, 4294967295LL, -1};
    if (s < 200)
        return (int64_t)(s % 21) - 10;
    if (s < 240)
        return edge[s % 10];
    return (int64_t)fz_bytes(in, 8);
}

static double dec_float(fz_in *in)
{
    uint8_t s = fz_u8(in);
    if (s < 200)
        return ((int)(s % 21) - 10) * 0.5;
    static const double edge[] = {INFINITY, -INFINITY, NAN, -0.0, 1e300, 1e-300};
    if (s < 250)
        return edge[s % 6];
    uint64_t b = fz_bytes(in, 8);
    double d;
    memcpy(&d, &b, 8);
    return d;
}

/* ---- the reference operators ----------------------------------------------------------------------- */

static int join_key_type(fb_type t)
{
    return t == FB_TYPE_INT32 || t == FB_TYPE_INT64 || t == FB_TYPE_DATE32 || t == FB_TYPE_UINT32 || t == FB_TYPE_UINT64;
}

typedef struct row_cmp_ctx {
    const rel *r;
    const fb_plan_sort_key *keys;
    size_t nk;
} row_cmp_ctx;
static row_cmp_ctx g_rc;

static int sort_cmp_rows(const rel *ra, int64_t a, const rel *rb, int64_t b, const fb_plan_sort_key *keys, size_t nk)
{
    for (size_t k = 0; k < nk; k++) {
        size_t c = keys[k].column;
        int va = OK(ra, a, c), vb = OK(rb, b, c);
        if (!va || !vb) {
            if (va == vb)
                continue;
            int nf = keys[k].nulls_first ? -1 : 1;
            return !va ? nf : -nf;
        }
        int x = fz_cmp_values(ra->types[c], &CELL(ra, a, c), &CELL(rb, b, c));
        if (x)
            return keys[k].descending ? -x : x;
    }
    return 0;
}

static int qsort_sort_cmp(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    int c = sort_cmp_rows(g_rc.r, a, g_rc.r, b, g_rc.keys, g_rc.nk);
    return c ? c : (a > b) - (a < b);
}

/* Canonical row order for multiset comparison. */
static const rel *g_canon;
static uint8_t g_approx[MAX_COLS]; /* columns compared approximately (avg), not in the canonical order */
static int canon_cmp_rows(const rel *ra, int64_t a, const rel *rb, int64_t b)
{
    for (int c = 0; c < ra->ncols; c++) {
        if (g_approx[c])
            continue;
        int va = OK(ra, a, c), vb = OK(rb, b, c);
        if (va != vb)
            return va - vb;
        if (!va)
            continue;
        uint64_t x = norm(ra->types[c], CELL(ra, a, c)), y = norm(rb->types[c], CELL(rb, b, c));
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}
static int qsort_canon(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return canon_cmp_rows(g_canon, a, g_canon, b);
}

/* ---- the fuzz target -------------------------------------------------------------------------------- */

typedef struct table_in {
    int ncols;
    int64_t rows;
    fz_col cols[4];
    fb_column views[4];
    fb_table table;
} table_in;

static void table_rel(const table_in *t, rel *r)
{
    fb_type types[4];
    for (int c = 0; c < t->ncols; c++)
        types[c] = t->views[c].type;
    rel_init(r, t->ncols, types);
    for (int64_t i = 0; i < t->rows; i++) {
        uint64_t v[4] = {0};
        uint8_t ok[4];
        for (int c = 0; c < t->ncols; c++) {
            ok[c] = (uint8_t)fz_valid(&t->views[c], i);
            memcpy(&v[c], fz_at(&t->views[c], i), fb_type_width(types[c]));
        }
        rel_push(r, v, ok);
    }
}

static void result_rel(const fb_plan_result *res, rel *r)
{
    fb_type types[MAX_COLS];
    int nc = (int)res->table.n_columns;
    for (int c = 0; c < nc; c++)
        types[c] = res->table.columns[c].type;
    rel_init(r, nc, types);
    for (int64_t i = 0; i < res->rows; i++) {
        uint64_t v[MAX_COLS] = {0};
        uint8_t ok[MAX_COLS];
        for (int c = 0; c < nc; c++) {
            const fb_column *col = &res->table.columns[c];
            ok[c] = (uint8_t)fz_valid(col, i);
            if (ok[c])
                memcpy(&v[c], fz_at(col, i), fb_type_width(types[c]));
        }
        rel_push(r, v, ok);
    }
}

/* The plan being built and the reference's relation, kept in step. */
typedef struct state {
    fb_plan *plan;
    fb_plan_node node;
    rel r;
    int overflow; /* the reference saw an overflow: the run must fail with FB_ERR_OVERFLOW */
} state;

enum { OP_FILTER, OP_JOIN, OP_PROJECT, OP_N };

/* FZ_STATS=1 prints what the inputs reached (to see that the decoder covers the plan shapes). */
static int64_t st_runs, st_rows, st_joins, st_filters, st_projects, st_aggs, st_sorts, st_overflow, st_refused;
static void print_stats(void)
{
    fprintf(stderr, "fuzz_plan: %lld runs (%lld non-empty), %lld filters (%lld refused), %lld joins, %lld projects, "
                    "%lld aggregations, %lld sorts, %lld overflows\n", (long long)st_runs, (long long)st_rows,
            (long long)st_filters, (long long)st_refused, (long long)st_joins, (long long)st_projects, (long long)st_aggs,
            (long long)st_sorts, (long long)st_overflow);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    int nctx = fz_open_variants(2);
    static int stats_on = -1;
    if (stats_on < 0 && (stats_on = getenv("FZ_STATS") != NULL))
        atexit(print_stats);
    static const fb_type kt[] = {FB_TYPE_INT32, FB_TYPE_INT64, FB_TYPE_DATE32, FB_TYPE_UINT32, FB_TYPE_UINT64};
    fb_type key_type = kt[fz_pick(&in, 5)];
    int ntables = 1 + (int)fz_pick(&in, MAX_TABLES);
    /* The shape first (so that short inputs reach every operator): operator kinds and the root. */
    int nops = (int)fz_pick(&in, MAX_OPS + 1);
    int kinds[MAX_OPS];
    for (int o = 0; o < nops; o++)
        kinds[o] = (int)fz_pick(&in, OP_N);
    int root = (int)fz_pick(&in, 4);
    table_in tabs[MAX_TABLES];
    memset(tabs, 0, sizeof tabs);
    for (int t = 0; t < ntables; t++) {
        tabs[t].ncols = 2 + (int)fz_pick(&in, 3);
        tabs[t].rows = fz_pick(&in, MAX_ROWS + 1);
        for (int c = 0; c < tabs[t].ncols; c++) {
            fb_type ty = c == 0 ? key_type : fz_all_types[fz_pick(&in, FZ_N_TYPES)];
            fz_column(&in, ty, tabs[t].rows, 1, c == 0 ? 6 : -1, &tabs[t].cols[c]);
            tabs[t].views[c] = tabs[t].cols[c].col;
        }
        tabs[t].table.n_columns = (size_t)tabs[t].ncols;
        tabs[t].table.columns = tabs[t].views;
    }

    /* The operators' parameters follow; every variant decodes them from here again (the same way). */
    const fz_in params = in;

    for (int v = 0; v < nctx; v++) {
        fb_ctx *ctx = fz_ctx[v];
        const char *isa = fb_isa_name(fb_ctx_isa(ctx));
        size_t mem0 = fb_ctx_memory_used(ctx);
        state s = {0};
        FZ_OK(ctx, fb_plan_create(ctx, &s.plan));
        FZ_OK(ctx, fb_plan_scan(s.plan, &tabs[0].table, "t0", NULL, 0, &s.node));
        table_rel(&tabs[0], &s.r);
        fz_in ob = params;
        for (int o = 0; o < nops; o++) {
            int kind = kinds[o];
            if (kind == OP_FILTER) {
                size_t np = 1 + fz_pick(&ob, 3);
                fb_plan_pred preds[3];
                int64_t inv[3][4];
                int fit = 1;
                memset(preds, 0, sizeof preds);
                for (size_t p = 0; p < np; p++) {
                    preds[p].kind = (fb_plan_pred_kind)fz_pick(&ob, 3);
                    preds[p].column = fz_pick(&ob, (uint32_t)s.r.ncols);
                    preds[p].op = (fb_cmp)fz_pick(&ob, 6);
                    fb_type t = s.r.types[preds[p].column];
                    if (fz_is_float(t)) {
                        if (preds[p].kind == FB_PLAN_PRED_IN)
                            preds[p].kind = FB_PLAN_PRED_CMP;
                        preds[p].fvalue = dec_float(&ob), preds[p].flo = dec_float(&ob), preds[p].fhi = dec_float(&ob);
                        fit &= fits(t, 0, preds[p].fvalue) && fits(t, 0, preds[p].flo) && fits(t, 0, preds[p].fhi);
                    } else {
                        preds[p].value = dec_int(&ob), preds[p].lo = dec_int(&ob), preds[p].hi = dec_int(&ob);
                        preds[p].n_in = 1 + fz_pick(&ob, 4);
                        for (size_t k = 0; k < preds[p].n_in; k++)
                            inv[p][k] = dec_int(&ob);
                        preds[p].in_values = inv[p];
                        if (preds[p].kind == FB_PLAN_PRED_CMP)
                            fit &= fits(t, preds[p].value, 0);
                        else if (preds[p].kind == FB_PLAN_PRED_BETWEEN)
                            fit &= fits(t, preds[p].lo, 0) && fits(t, preds[p].hi, 0);
                        else
                            for (size_t k = 0; k < preds[p].n_in; k++)
                                fit &= fits(t, inv[p][k], 0);
                    }
                }
                fb_plan_node f;
                fb_status st = fb_plan_filter(s.plan, s.node, preds, np, &f);
                if (!fit) {
                    FZ_CHECK(st == FB_ERR_OUT_OF_RANGE || st == FB_OK, "filter with a constant outside its column: %s",
                             fb_status_name(st));
                    if (st != FB_OK) {
                        st_refused += v == 0;
                        continue;
                    }
                }
                FZ_OK(ctx, st);
                st_filters += v == 0;
                rel out;
                rel_init(&out, s.r.ncols, s.r.types);
                for (int64_t i = 0; i < s.r.rows; i++) {
                    int keep = 1;
                    for (size_t p = 0; p < np && keep; p++) {
                        size_t c = preds[p].column;
                        fb_type t = s.r.types[c];
                        if (!OK(&s.r, i, c)) {
                            keep = 0;
                            break;
                        }
                        uint64_t x = CELL(&s.r, i, c);
                        int fl = fz_is_float(t);
                        if (preds[p].kind == FB_PLAN_PRED_CMP)
                            keep = holds(cmp_const(t, x, preds[p].value, preds[p].fvalue), preds[p].op);
                        else if (preds[p].kind == FB_PLAN_PRED_BETWEEN)
                            keep = cmp_const(t, x, preds[p].lo, preds[p].flo) >= 0 &&
                                   cmp_const(t, x, preds[p].hi, preds[p].fhi) <= 0;
                        else {
                            keep = 0;
                            for (size_t k = 0; k < preds[p].n_in && !fl; k++)
                                keep |= cmp_const(t, x, inv[p][k], 0) == 0;
                        }
                    }
                    if (keep)
                        rel_push(&out, &CELL(&s.r, i, 0), &OK(&s.r, i, 0));
                }
                rel_free(&s.r);
                s.r = out;
                s.node = f;
            } else if (kind == OP_JOIN && ntables > 1) {
                int bt = 1 + (int)fz_pick(&ob, (uint32_t)ntables - 1);
                fb_join_type jt = (fb_join_type)fz_pick(&ob, 4);
                const table_in *T = &tabs[bt];
                /* probe key columns: those of the key type; build key column 0 (and maybe a second pair) */
                size_t pk[2], bk[2], nk = 1;
                int cand[MAX_COLS], nc = 0;
                for (int c = 0; c < s.r.ncols; c++)
                    if (s.r.types[c] == key_type)
                        cand[nc++] = c;
                if (!nc)
                    continue;
                pk[0] = (size_t)cand[fz_pick(&ob, (uint32_t)nc)];
                bk[0] = 0;
                if (fz_u8(&ob) & 1) { /* a second pair: any equal join-key types */
                    int bc = 1 + (int)fz_pick(&ob, (uint32_t)T->ncols - 1);
                    fb_type bty = T->views[bc].type;
                    int c2[MAX_COLS], n2 = 0;
                    for (int c = 0; c < s.r.ncols; c++)
                        if (s.r.types[c] == bty)
                            c2[n2++] = c;
                    if (join_key_type(bty) && n2) {
                        pk[1] = (size_t)c2[fz_pick(&ob, (uint32_t)n2)];
                        bk[1] = (size_t)bc;
                        nk = 2;
                    }
                }
                size_t pay[4], npay = (jt == FB_JOIN_INNER || jt == FB_JOIN_LEFT) ? fz_pick(&ob, 3) : 0;
                if (s.r.ncols + (int)npay > MAX_COLS)
                    npay = 0;
                for (size_t k = 0; k < npay; k++)
                    pay[k] = fz_pick(&ob, (uint32_t)T->ncols);
                if (s.r.rows * T->rows > 4096)
                    continue; /* keep the reference's nested loops small */
                fb_plan_node b, j;
                FZ_OK(ctx, fb_plan_scan(s.plan, &T->table, "tb", NULL, 0, &b));
                rel br;
                table_rel(T, &br);
                FZ_OK(ctx, fb_plan_join(s.plan, s.node, b, pk, bk, nk, jt, pay, npay, &j));
                st_joins += v == 0;
                fb_type ot[MAX_COLS];
                memcpy(ot, s.r.types, (size_t)s.r.ncols * sizeof *ot);
                for (size_t k = 0; k < npay; k++)
                    ot[s.r.ncols + (int)k] = br.types[pay[k]];
                rel out;
                rel_init(&out, s.r.ncols + (int)npay, ot);
                for (int64_t i = 0; i < s.r.rows; i++) {
                    int64_t matches = 0;
                    uint64_t vv[MAX_COLS];
                    uint8_t okk[MAX_COLS];
                    memcpy(vv, &CELL(&s.r, i, 0), (size_t)s.r.ncols * 8);
                    memcpy(okk, &OK(&s.r, i, 0), (size_t)s.r.ncols);
                    for (int64_t r = 0; r < br.rows; r++) {
                        int eq = 1;
                        for (size_t k = 0; k < nk && eq; k++)
                            eq = OK(&s.r, i, pk[k]) && OK(&br, r, bk[k]) && CELL(&s.r, i, pk[k]) == CELL(&br, r, bk[k]);
                        if (!eq)
                            continue;
                        matches++;
                        if (jt == FB_JOIN_INNER || jt == FB_JOIN_LEFT) {
                            for (size_t k = 0; k < npay; k++) {
                                vv[s.r.ncols + (int)k] = CELL(&br, r, pay[k]);
                                okk[s.r.ncols + (int)k] = OK(&br, r, pay[k]);
                            }
                            rel_push(&out, vv, okk);
                        }
                    }
                    if ((jt == FB_JOIN_LEFT && !matches) || (jt == FB_JOIN_SEMI && matches) || (jt == FB_JOIN_ANTI && !matches)) {
                        for (size_t k = 0; k < npay; k++)
                            vv[s.r.ncols + (int)k] = 0, okk[s.r.ncols + (int)k] = 0;
                        rel_push(&out, vv, okk);
                    }
                }
                rel_free(&br);
                rel_free(&s.r);
                s.r = out;
                s.node = j;
            } else if (kind == OP_PROJECT && s.r.ncols < MAX_COLS) {
                fb_plan_arith op = (fb_plan_arith)fz_pick(&ob, 3);
                size_t l = fz_pick(&ob, (uint32_t)s.r.ncols), rc = fz_pick(&ob, (uint32_t)s.r.ncols);
                int is_const = fz_u8(&ob) & 1;
                int64_t cv = dec_int(&ob);
                fb_type lt = s.r.types[l], rt = s.r.types[rc];
                int ok_types = is_int(lt) && lt != FB_TYPE_UINT64 && (is_const || (is_int(rt) && rt != FB_TYPE_UINT64));
                fb_plan_node pn;
                fb_status st = fb_plan_project(s.plan, s.node, op, l, rc, is_const, cv, &pn);
                if (!ok_types) {
                    FZ_CHECK(st == FB_ERR_UNSUPPORTED_TYPE, "project of %s and %s: %s", fb_type_name(lt), fb_type_name(rt),
                             fb_status_name(st));
                    continue;
                }
                FZ_OK(ctx, st);
                st_projects += v == 0;
                fb_type ot[MAX_COLS];
                memcpy(ot, s.r.types, (size_t)s.r.ncols * sizeof *ot);
                ot[s.r.ncols] = FB_TYPE_INT64;
                rel out;
                rel_init(&out, s.r.ncols + 1, ot);
                for (int64_t i = 0; i < s.r.rows; i++) {
                    uint64_t vv[MAX_COLS];
                    uint8_t okk[MAX_COLS];
                    memcpy(vv, &CELL(&s.r, i, 0), (size_t)s.r.ncols * 8);
                    memcpy(okk, &OK(&s.r, i, 0), (size_t)s.r.ncols);
                    int ok = OK(&s.r, i, l) && (is_const || OK(&s.r, i, rc));
                    int64_t a = fz_get_i64(lt, &CELL(&s.r, i, l)), b = is_const ? cv : fz_get_i64(rt, &CELL(&s.r, i, rc)), r = 0;
                    if (ok) {
                        int ovf = op == FB_PLAN_ADD ? __builtin_add_overflow(a, b, &r)
                                  : op == FB_PLAN_SUB ? __builtin_sub_overflow(a, b, &r)
                                                      : __builtin_mul_overflow(a, b, &r);
                        s.overflow |= ovf;
                    }
                    vv[s.r.ncols] = ok ? (uint64_t)r : 0;
                    okk[s.r.ncols] = (uint8_t)ok;
                    rel_push(&out, vv, okk);
                }
                rel_free(&s.r);
                s.r = out;
                s.node = pn;
            }
        }

        /* The root: nothing more, an aggregation, a sort (maybe top-N), or a sort and a limit. */
        fz_in tb = ob;
        memset(g_approx, 0, sizeof g_approx);
        fb_plan_sort_key sk[2];
        size_t nsk = 0;
        int64_t limit = -1;
        if (root == 1) {
            size_t keys[2], nkeys = fz_pick(&tb, 3);
            int nik = 0;
            for (size_t k = 0; k < nkeys; k++) {
                size_t c = fz_pick(&tb, (uint32_t)s.r.ncols);
                if (is_int(s.r.types[c]))
                    keys[nik++] = c;
            }
            size_t na = fz_pick(&tb, 4);
            fb_plan_agg aggs[3];
            for (size_t a = 0; a < na; a++) {
                aggs[a].kind = (fb_agg_kind)fz_pick(&tb, 6);
                aggs[a].column = fz_pick(&tb, (uint32_t)s.r.ncols);
                fb_type t = s.r.types[aggs[a].column];
                if ((aggs[a].kind == FB_AGG_SUM || aggs[a].kind == FB_AGG_AVG) && (fz_is_float(t) || t == FB_TYPE_DATE32))
                    aggs[a].kind = FB_AGG_MAX; /* float sums are the aggregation target's; date32 has none */
            }
            fb_plan_node an;
            if (nik + na == 0) { /* no output column: refused */
                FZ_CHECK(fb_plan_aggregate(s.plan, s.node, keys, 0, aggs, 0, &an) == FB_ERR_INVALID_ARG,
                         "an aggregation without outputs was accepted");
                aggs[0].kind = FB_AGG_COUNT_STAR, aggs[0].column = 0, na = 1;
            }
            FZ_OK(ctx, fb_plan_aggregate(s.plan, s.node, keys, (size_t)nik, aggs, na, &an));
            st_aggs += v == 0;
            fb_type ot[MAX_COLS];
            for (int k = 0; k < nik; k++)
                ot[k] = s.r.types[keys[k]];
            for (size_t a = 0; a < na; a++)
                FZ_CHECK(fb_agg_result_type(aggs[a].kind, s.r.types[aggs[a].column], &ot[nik + (int)a]) == FB_OK, "type");
            rel out;
            rel_init(&out, nik + (int)na, ot);
            /* groups by nested loop over first occurrences */
            int64_t *gid = malloc(((size_t)s.r.rows + 1) * sizeof *gid), *first = malloc(((size_t)s.r.rows + 1) * sizeof *first);
            int64_t ng = 0;
            for (int64_t i = 0; i < s.r.rows; i++) {
                int64_t g;
                for (g = 0; g < ng; g++) {
                    int eq = 1;
                    for (int k = 0; k < nik && eq; k++) {
                        size_t c = keys[k];
                        eq = OK(&s.r, i, c) == OK(&s.r, first[g], c) && (!OK(&s.r, i, c) || CELL(&s.r, i, c) == CELL(&s.r, first[g], c));
                    }
                    if (eq)
                        break;
                }
                if (g == ng)
                    first[ng++] = i;
                gid[i] = g;
            }
            if (nik == 0 && ng == 0)
                ng = 1, first[0] = -1;
            for (int64_t g = 0; g < ng; g++) {
                uint64_t vv[MAX_COLS] = {0};
                uint8_t okk[MAX_COLS] = {0};
                for (int k = 0; k < nik; k++)
                    vv[k] = CELL(&s.r, first[g], keys[k]), okk[k] = OK(&s.r, first[g], keys[k]);
                for (size_t a = 0; a < na; a++) {
                    size_t c = aggs[a].column;
                    fb_type t = s.r.types[c];
                    int64_t cnt = 0, cstar = 0;
                    __int128 sum = 0;
                    int64_t mi = -1, ma = -1;
                    for (int64_t i = 0; i < s.r.rows; i++) {
                        if (gid[i] != g)
                            continue;
                        cstar++;
                        if (!OK(&s.r, i, c))
                            continue;
                        cnt++;
                        sum += t == FB_TYPE_UINT64 ? (__int128)CELL(&s.r, i, c) : (__int128)fz_get_i64(t, &CELL(&s.r, i, c));
                        if (mi < 0 || fz_cmp_values(t, &CELL(&s.r, i, c), &CELL(&s.r, mi, c)) < 0)
                            mi = i;
                        if (ma < 0 || fz_cmp_values(t, &CELL(&s.r, i, c), &CELL(&s.r, ma, c)) > 0)
                            ma = i;
                    }
                    int o = nik + (int)a;
                    okk[o] = 1;
                    switch (aggs[a].kind) {
                    case FB_AGG_COUNT_STAR: vv[o] = (uint64_t)cstar; break;
                    case FB_AGG_COUNT: vv[o] = (uint64_t)cnt; break;
                    case FB_AGG_SUM:
                        okk[o] = cnt > 0;
                        if (sum > INT64_MAX || sum < INT64_MIN)
                            s.overflow = 1;
                        vv[o] = (uint64_t)(int64_t)sum;
                        break;
                    case FB_AGG_MIN: case FB_AGG_MAX:
                        okk[o] = cnt > 0;
                        vv[o] = cnt ? CELL(&s.r, aggs[a].kind == FB_AGG_MIN ? mi : ma, c) : 0;
                        break;
                    default: {
                        okk[o] = cnt > 0;
                        double d = cnt ? (double)sum / (double)cnt : 0;
                        memcpy(&vv[o], &d, 8);
                        g_approx[o] = 1;
                    }
                    }
                }
                rel_push(&out, vv, okk);
            }
            free(gid);
            free(first);
            rel_free(&s.r);
            s.r = out;
            s.node = an;
        } else if (root >= 2) {
            nsk = 1 + fz_pick(&tb, 2);
            for (size_t k = 0; k < nsk; k++) {
                uint8_t o = fz_u8(&tb);
                sk[k].column = fz_pick(&tb, (uint32_t)s.r.ncols);
                sk[k].descending = o & 1;
                sk[k].nulls_first = (o >> 1) & 1;
            }
            limit = (fz_u8(&tb) & 1) ? (int64_t)fz_pick(&tb, 20) : -1;
            fb_plan_node sn;
            FZ_OK(ctx, fb_plan_sort(s.plan, s.node, sk, nsk, root == 2 ? limit : -1, &sn));
            st_sorts += v == 0;
            s.node = sn;
            if (root == 3 && limit >= 0) {
                FZ_OK(ctx, fb_plan_limit(s.plan, s.node, limit, &sn));
                s.node = sn;
            }
        }

        fb_plan_result *res = NULL;
        fb_status st = fb_plan_run(s.plan, s.node, FB_PLACEMENT_CPU, &res);
        st_runs += v == 0, st_rows += v == 0 && s.r.rows > 0, st_overflow += v == 0 && s.overflow;
        if (s.overflow) {
            FZ_CHECK(st == FB_ERR_OVERFLOW, "run: %s (%s), expected FB_ERR_OVERFLOW [isa %s]", fb_status_name(st),
                     fb_last_error(ctx), isa);
        } else {
            FZ_CHECK(st == FB_OK, "run: %s (%s) [isa %s]", fb_status_name(st), fb_last_error(ctx), isa);
            rel got;
            result_rel(res, &got);
            FZ_CHECK(got.ncols == s.r.ncols, "%d columns, expected %d", got.ncols, s.r.ncols);
            for (int c = 0; c < got.ncols; c++)
                FZ_CHECK(got.types[c] == s.r.types[c], "column %d: %s, expected %s", c, fb_type_name(got.types[c]),
                         fb_type_name(s.r.types[c]));
            int64_t want_rows = s.r.rows;
            if (nsk && limit >= 0 && limit < want_rows)
                want_rows = limit;
            FZ_CHECK(got.rows == want_rows, "%lld rows, expected %lld [isa %s]", (long long)got.rows, (long long)want_rows, isa);
            int64_t *ig = malloc(((size_t)got.rows + 1) * sizeof *ig), *iw = malloc(((size_t)s.r.rows + 1) * sizeof *iw);
            for (int64_t i = 0; i < got.rows; i++)
                ig[i] = i;
            for (int64_t i = 0; i < s.r.rows; i++)
                iw[i] = i;
            if (nsk) {
                /* keys in order, equal to the reference's sorted keys row by row */
                g_rc.r = &s.r, g_rc.keys = sk, g_rc.nk = nsk;
                qsort(iw, (size_t)s.r.rows, sizeof *iw, qsort_sort_cmp);
                for (int64_t i = 0; i < got.rows; i++)
                    FZ_CHECK(sort_cmp_rows(&got, i, &s.r, iw[i], sk, nsk) == 0, "sorted row %lld: keys differ [isa %s]",
                             (long long)i, isa);
            }
            /* multiset: every result row in the reference, each once (all of it without a limit) */
            g_canon = &got;
            qsort(ig, (size_t)got.rows, sizeof *ig, qsort_canon);
            g_canon = &s.r;
            qsort(iw, (size_t)s.r.rows, sizeof *iw, qsort_canon);
            int64_t w = 0;
            for (int64_t i = 0; i < got.rows; i++) {
                while (w < s.r.rows && canon_cmp_rows(&s.r, iw[w], &got, ig[i]) < 0 && got.rows < s.r.rows)
                    w++;
                FZ_CHECK(w < s.r.rows && canon_cmp_rows(&s.r, iw[w], &got, ig[i]) == 0,
                         "result row %lld not in the reference [isa %s]", (long long)ig[i], isa);
                for (int c = 0; c < got.ncols; c++) {
                    if (!g_approx[c])
                        continue;
                    FZ_CHECK(OK(&got, ig[i], c) == OK(&s.r, iw[w], c), "column %d validity", c);
                    if (OK(&got, ig[i], c)) {
                        double x, y;
                        memcpy(&x, &CELL(&got, ig[i], c), 8);
                        memcpy(&y, &CELL(&s.r, iw[w], c), 8);
                        FZ_CHECK(fabs(x - y) <= 1e-12 * fabs(y) || x == y, "avg %.17g, expected %.17g [isa %s]", x, y, isa);
                    }
                }
                w++;
            }
            free(ig);
            free(iw);
            rel_free(&got);
        }
        fb_plan_result_free(res);
        fb_plan_destroy(s.plan);
        rel_free(&s.r);
        FZ_NO_CTX_LEAK(ctx, mem0);
    }
    for (int t = 0; t < ntables; t++)
        for (int c = 0; c < tabs[t].ncols; c++)
            fz_col_free(&tabs[t].cols[c]);
    return 0;
}
