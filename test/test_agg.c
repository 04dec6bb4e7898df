/* test_agg.c - grouped and ungrouped aggregation (fb_agg.h): every CPU variant the machine runs
 * against a sort-based oracle written here, on random, Zipf-skewed, all-null, single-group and
 * all-distinct keys (1-4 key columns of every key type, nulls in keys and values, negatives and the
 * types' extremes), with and without selection vectors, forced and automatic strategies, morsels
 * that grow and switch the direct table, merge of two tables, overflow, empty input, out of memory
 * and bad input; and, through test/agg_duckdb_check.py, against DuckDB on A1/A2/A4-shaped data.
 *
 * Float tolerance: grouped float sums add rows in row order in every variant, but merged tables and
 * the SIMD ungrouped sums reassociate, so float sums and averages are compared with
 * |got - expected| <= 1e-9 * (sum of |x| over the group) + 1e-300 (NaN must match NaN). Everything
 * else, integer sums and avg of integers' exact sums included, must be equal (avg within 1 ulp-ish:
 * 1e-12 relative, since it divides an exact sum once). */
#include "fb_test.h"

#include <math.h>
#include <unistd.h>

__extension__ typedef __int128 i128;

static uint64_t rng;

/* ---- variants ------------------------------------------------------------------------------------ */

FBT_VARIANTS_FIXTURE

/* ---- columns ------------------------------------------------------------------------------------- */

static int is_signed_t(fb_type t)
{
    return t == FB_TYPE_INT8 || t == FB_TYPE_INT16 || t == FB_TYPE_INT32 || t == FB_TYPE_INT64 || t == FB_TYPE_DATE32;
}
static int is_float_t(fb_type t) { return t == FB_TYPE_FLOAT32 || t == FB_TYPE_FLOAT64; }



static int row_valid(const fb_column *c, int64_t i)
{
    if (!c->validity)
        return 1;
    int64_t b = c->offset + i;
    return (c->validity[b / 8] >> (b % 8)) & 1;
}

static const void *row_ptr(const fb_column *c, int64_t i)
{
    return (const char *)c->data + (c->offset + i) * (int64_t)fb_type_width(c->type);
}

/* integer value of a row: signed types as int64 in *s, unsigned as uint64 in *u */
static int64_t get_s(const fb_column *c, int64_t i)
{
    const void *p = row_ptr(c, i);
    switch (c->type) {
    case FB_TYPE_INT8: return *(const int8_t *)p;
    case FB_TYPE_INT16: return *(const int16_t *)p;
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: return *(const int32_t *)p;
    default: return *(const int64_t *)p;
    }
}
static uint64_t get_u(const fb_column *c, int64_t i)
{
    const void *p = row_ptr(c, i);
    switch (c->type) {
    case FB_TYPE_UINT8: return *(const uint8_t *)p;
    case FB_TYPE_UINT16: return *(const uint16_t *)p;
    case FB_TYPE_UINT32: return *(const uint32_t *)p;
    default: return *(const uint64_t *)p;
    }
}
static double get_d(const fb_column *c, int64_t i)
{
    return c->type == FB_TYPE_FLOAT32 ? *(const float *)row_ptr(c, i) : *(const double *)row_ptr(c, i);
}

/* SQL order of two non-null values of one type: NaN largest, -0.0 = 0.0 */
static int val_cmp(const fb_column *a, int64_t i, const fb_column *b, int64_t j)
{
    if (is_float_t(a->type)) {
        double x = get_d(a, i), y = get_d(b, j);
        if (isnan(x) || isnan(y))
            return isnan(x) && isnan(y) ? 0 : isnan(x) ? 1 : -1;
        return x < y ? -1 : x > y;
    }
    if (is_signed_t(a->type)) {
        int64_t x = get_s(a, i), y = get_s(b, j);
        return x < y ? -1 : x > y;
    }
    uint64_t x = get_u(a, i), y = get_u(b, j);
    return x < y ? -1 : x > y;
}

/* key tuple order: null first */
static int keys_cmp(const fb_column *ka, int64_t i, const fb_column *kb, int64_t j, size_t n_keys)
{
    for (size_t k = 0; k < n_keys; k++) {
        int va = row_valid(&ka[k], i), vb = row_valid(&kb[k], j);
        if (va != vb)
            return va - vb;
        if (va) {
            int c = val_cmp(&ka[k], i, &kb[k], j);
            if (c)
                return c;
        }
    }
    return 0;
}

/* forced direct tables cannot hold keys spanning a whole 32/64-bit range: no extremes for them */
static int key_extremes = 1;

enum { D_RANDOM, D_ZIPF, D_ALLNULL, D_SINGLE, D_DISTINCT };
static const char *const dist_names[] = {"random", "zipf", "all-null", "single-group", "all-distinct"};

/* A key column: values from dist over `card` distinct bases, multiplied by `spread` (wide ranges
 * push the table to hashing), 1/64 replaced by the type's min or max, ~1/10 null when nulls. */
static fbt_col make_key(fb_type t, int64_t n, int dist, uint64_t card, uint64_t spread, int nulls)
{
    fbt_col b;
    size_t w = fb_type_width(t);
    int64_t off = (int64_t)(fbt_next(&rng) % 9);
    b.data = calloc((size_t)(n + off + 1), w);
    b.valid = NULL;
    if (nulls || dist == D_ALLNULL) {
        b.valid = calloc((size_t)(n + off) / 8 + 2, 1);
        for (int64_t i = 0; i < n + off; i++)
            if (dist != D_ALLNULL && fbt_next(&rng) % 10 != 0)
                b.valid[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    uint64_t topbit = 1ull << (w * 8 - 1);
    for (int64_t i = 0; i < n + off; i++) {
        uint64_t r = fbt_next(&rng), v;
        switch (dist) {
        case D_ZIPF: v = (uint64_t)pow((double)card + 1.0, (double)(r >> 11) / 9007199254740992.0) - 1; break;
        case D_SINGLE: v = 42; break;
        case D_DISTINCT: v = (uint64_t)i; break;
        default: v = r % (card ? card : 1); break;
        }
        v = v * spread - (is_signed_t(t) ? card * spread / 2 : 0); /* negatives for signed types */
        if (dist == D_RANDOM && key_extremes && fbt_next(&rng) % 64 == 0)
            v = fbt_next(&rng) & 1 ? (is_signed_t(t) ? topbit : 0) : (is_signed_t(t) ? topbit - 1 : ~0ull);
        memcpy((char *)b.data + i * (int64_t)w, &v, w);
    }
    b.col = fb_column_make(t, b.data, n, b.valid);
    b.col.offset = off;
    return b;
}

/* A value column with ~1/8 nulls (nulls 0: none; 2: all null). Integers: small pool, negatives, and
 * the type's extremes for types narrower than 64 bits (64-bit sums would overflow: test_overflow);
 * floats: pool, ±0.0, NaN, ±inf rarely, moderate uniform values. */
static fbt_col make_val(fb_type t, int64_t n, int nulls)
{
    fbt_col b;
    size_t w = fb_type_width(t);
    int64_t off = (int64_t)(fbt_next(&rng) % 9);
    b.data = calloc((size_t)(n + off + 1), w);
    b.valid = NULL;
    if (nulls) {
        b.valid = calloc((size_t)(n + off) / 8 + 2, 1);
        for (int64_t i = 0; i < n + off; i++)
            if (nulls == 1 && fbt_next(&rng) % 8 != 0)
                b.valid[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    uint64_t topbit = 1ull << (w * 8 - 1);
    for (int64_t i = 0; i < n + off; i++) {
        uint64_t r = fbt_next(&rng), u = fbt_next(&rng);
        int pick = (int)(r % 32);
        void *p = (char *)b.data + i * (int64_t)w;
        if (is_float_t(t)) {
            double d;
            if (pick == 0)
                d = NAN;
            else if (pick == 1)
                d = (u & 1) ? INFINITY : -INFINITY;
            else if (pick < 4)
                d = (u & 1) ? 0.0 : -0.0;
            else if (pick < 16)
                d = (double)((int64_t)(u % 41) - 20) * 0.25;
            else
                d = ((double)(u >> 11) / 9007199254740992.0 - 0.5) * 2e6;
            if (t == FB_TYPE_FLOAT32) {
                float f = (float)d;
                memcpy(p, &f, 4);
            } else {
                memcpy(p, &d, 8);
            }
            continue;
        }
        uint64_t v;
        if (pick < 2 && w < 8)
            v = pick == 0 ? (is_signed_t(t) ? topbit : 0) : (is_signed_t(t) ? topbit - 1 : ~0ull);
        else if (pick < 20)
            v = (uint64_t)((int64_t)(u % 21) - 10);
        else
            v = w == 8 ? (uint64_t)((int64_t)u >> 20) : u; /* 64-bit: |v| < 2^43 */
        if (w == 8 && !is_signed_t(t))
            v &= 0x00000FFFFFFFFFFFull;
        memcpy(p, &v, w);
    }
    b.col = fb_column_make(t, b.data, n, b.valid);
    b.col.offset = off;
    return b;
}

/* ---- oracle -------------------------------------------------------------------------------------- */

typedef struct ocase {
    size_t n_keys, n_values, n_aggs;
    const fb_column *keys, *values;
    const fb_agg_desc *aggs;
    const uint32_t *rows; /* the rows added, in order */
    int64_t n;
} ocase;

typedef struct oval {
    int valid;
    int overflow;
    int64_t i;    /* counts, integer sums */
    double d;     /* float sums, avg */
    double tol;   /* for d */
    int64_t row;  /* min/max: the input row holding the value */
} oval;

typedef struct ogroup {
    int64_t first;  /* position in rows of the group's first row */
    int64_t row;    /* that row (its key) */
    oval *v;        /* n_aggs */
} ogroup;

static const ocase *sort_case;
static int cmp_pos(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    int c = keys_cmp(sort_case->keys, sort_case->rows[x], sort_case->keys, sort_case->rows[y], sort_case->n_keys);
    return c ? c : (x > y) - (x < y);
}

/* Groups sorted by key; returns their number (1 for ungrouped). */
static int64_t oracle(const ocase *c, ogroup **out)
{
    int64_t *pos = malloc((size_t)(c->n + 1) * 8);
    for (int64_t j = 0; j < c->n; j++)
        pos[j] = j;
    sort_case = c;
    qsort(pos, (size_t)c->n, 8, cmp_pos);
    ogroup *g = calloc((size_t)c->n + 1, sizeof *g);
    int64_t ng = 0;
    for (int64_t s = 0; s < c->n || (c->n_keys == 0 && ng == 0);) {
        int64_t e = s;
        if (c->n_keys == 0)
            e = c->n;
        else
            while (e < c->n && keys_cmp(c->keys, c->rows[pos[s]], c->keys, c->rows[pos[e]], c->n_keys) == 0)
                e++;
        ogroup *G = &g[ng++];
        G->first = s < c->n ? pos[s] : 0;
        G->row = s < c->n ? c->rows[pos[s]] : 0;
        for (int64_t q = s; q < e; q++)
            G->first = pos[q] < G->first ? pos[q] : G->first;
        G->v = calloc(c->n_aggs + 1, sizeof(oval));
        for (size_t a = 0; a < c->n_aggs; a++) {
            oval *v = &G->v[a];
            fb_agg_kind kd = c->aggs[a].kind;
            if (kd == FB_AGG_COUNT_STAR) {
                v->valid = 1;
                v->i = e - s;
                continue;
            }
            const fb_column *col = &c->values[c->aggs[a].input];
            i128 isum = 0;
            double dsum = 0, asum = 0;
            int64_t nn = 0, best = -1;
            for (int64_t q = s; q < e; q++) { /* q in key order, then position: row order in the group */
                int64_t r = c->rows[pos[q]];
                if (!row_valid(col, r))
                    continue;
                nn++;
                if (is_float_t(col->type)) {
                    dsum += get_d(col, r);
                    asum += fabs(get_d(col, r));
                } else if (is_signed_t(col->type)) {
                    isum += get_s(col, r);
                } else {
                    isum += get_u(col, r);
                }
                if (best < 0 || (kd == FB_AGG_MIN && val_cmp(col, r, col, best) < 0) ||
                    (kd == FB_AGG_MAX && val_cmp(col, r, col, best) > 0))
                    best = r;
            }
            v->valid = kd == FB_AGG_COUNT || nn > 0;
            v->row = best;
            v->tol = 1e-9 * asum + 1e-300;
            if (kd == FB_AGG_COUNT)
                v->i = nn;
            else if (kd == FB_AGG_SUM && !is_float_t(col->type)) {
                v->overflow = isum > INT64_MAX || isum < INT64_MIN;
                v->i = (int64_t)isum;
            } else if (kd == FB_AGG_SUM)
                v->d = dsum;
            else if (kd == FB_AGG_AVG) {
                v->d = nn ? (is_float_t(col->type) ? dsum : (double)isum) / (double)nn : 0;
                if (!is_float_t(col->type))
                    v->tol = fabs(v->d) * 1e-12;
            }
        }
        s = e;
        if (c->n_keys == 0)
            break;
    }
    free(pos);
    *out = g;
    return ng;
}

static void free_groups(ogroup *g, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        free(g[i].v);
    free(g);
}

/* ---- running fb and comparing --------------------------------------------------------------------- */

typedef struct outbuf {
    fb_column_out o[40];
    size_t n;
} outbuf;

static void alloc_out(outbuf *ob, const fb_type *types, size_t n, int64_t rows)
{
    ob->n = n;
    for (size_t i = 0; i < n; i++) {
        fb_column_out *o = &ob->o[i];
        memset(o, 0, sizeof *o);
        o->type = types[i];
        o->capacity = rows;
        o->data = calloc((size_t)rows + 1, 8);
        o->validity = calloc((size_t)rows / 8 + 2, 1);
    }
}

static void free_out(outbuf *ob)
{
    for (size_t i = 0; i < ob->n; i++) {
        free(ob->o[i].data);
        free(ob->o[i].validity);
    }
}

static fb_column as_col(const fb_column_out *o)
{
    return fb_column_make(o->type, o->data, o->length, o->validity);
}

static int dclose(double got, double exp, double tol)
{
    if (isnan(exp) || isnan(got))
        return isnan(exp) && isnan(got);
    if (isinf(exp) || isinf(got))
        return got == exp;
    return fabs(got - exp) <= tol;
}

static const fb_column *cmp_keys_cols;
static size_t cmp_keys_n;
static int cmp_out_rows(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return keys_cmp(cmp_keys_cols, x, cmp_keys_cols, y, cmp_keys_n);
}

/* Compares a table's result with the oracle's groups. expect_overflow: FB_ERR_OVERFLOW expected. */
static void check_result(fb_ctx *ctx, const fb_agg_table *t, const ocase *c, const ogroup *g, int64_t ng,
                         const char *what)
{
    int overflow = 0;
    for (int64_t i = 0; i < ng; i++)
        for (size_t a = 0; a < c->n_aggs; a++)
            overflow |= g[i].v[a].valid && g[i].v[a].overflow;
    int64_t got_n = -1;
    assert_fb_ok(ctx, fb_agg_group_count(t, &got_n));
    if (got_n != ng)
        fail_msg("%s [%s]: %lld groups, expected %lld", what, fb_isa_name(fb_ctx_isa(ctx)), (long long)got_n,
                 (long long)ng);
    fb_type kt[FB_AGG_MAX_KEYS], at[40];
    for (size_t k = 0; k < c->n_keys; k++)
        kt[k] = c->keys[k].type;
    for (size_t a = 0; a < c->n_aggs; a++)
        assert_fb_ok(NULL, fb_agg_result_type(c->aggs[a].kind, c->aggs[a].type, &at[a]));
    outbuf ko, ao;
    alloc_out(&ko, kt, c->n_keys, ng);
    alloc_out(&ao, at, c->n_aggs, ng);
    fb_status st = fb_agg_result(t, ko.o, ao.o);
    if (overflow) {
        assert_fb_status(ctx, st, FB_ERR_OVERFLOW);
        for (size_t a = 0; a < c->n_aggs; a++)
            assert_int_equal(ao.o[a].length, 0);
        goto done;
    }
    if (st != FB_OK)
        fail_msg("%s [%s]: fb_agg_result: %s", what, fb_isa_name(fb_ctx_isa(ctx)), fb_last_error(ctx));
    fb_column kc[FB_AGG_MAX_KEYS];
    for (size_t k = 0; k < c->n_keys; k++)
        kc[k] = as_col(&ko.o[k]);
    /* output rows in key order, paired with the oracle's groups */
    int64_t *ord = malloc((size_t)ng * 8 + 8), *grp_of = malloc((size_t)ng * 8 + 8);
    for (int64_t i = 0; i < ng; i++)
        ord[i] = i;
    cmp_keys_cols = kc;
    cmp_keys_n = c->n_keys;
    qsort(ord, (size_t)ng, 8, cmp_out_rows);
    for (int64_t i = 0; i < ng; i++) {
        int64_t r = ord[i];
        grp_of[r] = i;
        if (c->n_keys && keys_cmp(kc, r, c->keys, g[i].row, c->n_keys) != 0)
            fail_msg("%s [%s]: group %lld in key order has another key than the oracle's", what,
                     fb_isa_name(fb_ctx_isa(ctx)), (long long)i);
        for (size_t a = 0; a < c->n_aggs; a++) {
            const oval *v = &g[i].v[a];
            const fb_column_out *o = &ao.o[a];
            fb_column oc = as_col(o);
            int valid = row_valid(&oc, r);
            if (valid != v->valid)
                fail_msg("%s [%s]: group %lld agg %zu (kind %d): valid %d, expected %d", what,
                         fb_isa_name(fb_ctx_isa(ctx)), (long long)i, a, (int)c->aggs[a].kind, valid, v->valid);
            if (!valid)
                continue;
            fb_agg_kind kd = c->aggs[a].kind;
            if (kd == FB_AGG_COUNT_STAR || kd == FB_AGG_COUNT || (kd == FB_AGG_SUM && !is_float_t(c->aggs[a].type))) {
                if (((int64_t *)o->data)[r] != v->i)
                    fail_msg("%s [%s]: group %lld agg %zu (kind %d): %lld, expected %lld", what,
                             fb_isa_name(fb_ctx_isa(ctx)), (long long)i, a, (int)kd, (long long)((int64_t *)o->data)[r],
                             (long long)v->i);
            } else if (kd == FB_AGG_SUM || kd == FB_AGG_AVG) {
                double d = ((double *)o->data)[r];
                if (!dclose(d, v->d, v->tol))
                    fail_msg("%s [%s]: group %lld agg %zu (kind %d): %.17g, expected %.17g", what,
                             fb_isa_name(fb_ctx_isa(ctx)), (long long)i, a, (int)kd, d, v->d);
            } else { /* min/max: equal in SQL order to the oracle's row; -0.0 comes out as 0.0 */
                const fb_column *in = &c->values[c->aggs[a].input];
                if (val_cmp(&oc, r, in, v->row) != 0)
                    fail_msg("%s [%s]: group %lld agg %zu (kind %d) differs from the oracle", what,
                             fb_isa_name(fb_ctx_isa(ctx)), (long long)i, a, (int)kd);
                if (is_float_t(oc.type) && get_d(&oc, r) == 0.0 && signbit(get_d(&oc, r)))
                    fail_msg("%s: min/max returned -0.0", what);
            }
        }
    }
    /* groups come out in order of first appearance */
    for (int64_t r = 1; r < ng; r++)
        if (g[grp_of[r]].first <= g[grp_of[r - 1]].first)
            fail_msg("%s [%s]: output row %lld is not in first-appearance order", what, fb_isa_name(fb_ctx_isa(ctx)),
                     (long long)r);
    free(ord);
    free(grp_of);
done:
    free_out(&ko);
    free_out(&ao);
}

/* Adds rows[0..n) to t in morsels of varying size (each a sub-view, with a selection vector when
 * use_sel: the rows of the morsel that rows lists, i.e. rows must be sorted when use_sel). */
static void feed(fb_ctx *ctx, fb_agg_table *t, const ocase *c, int64_t n_rows, int use_sel, int64_t from, int64_t to)
{
    /* without sel: rows are 0..n_rows-1 and [from, to) is a row range */
    if (!use_sel) {
        int64_t b = from;
        while (b < to) {
            int64_t m = (int64_t)(fbt_next(&rng) % 5000) + 1;
            if (m > to - b)
                m = to - b;
            fb_column k[FB_AGG_MAX_KEYS], v[8];
            for (size_t i = 0; i < c->n_keys; i++) {
                k[i] = c->keys[i];
                k[i].offset += b;
                k[i].length = m;
            }
            for (size_t i = 0; i < c->n_values; i++) {
                v[i] = c->values[i];
                v[i].offset += b;
                v[i].length = m;
            }
            assert_fb_ok(ctx, fb_agg_update(t, k, v, c->n_values, m, NULL, 0));
            b += m;
        }
        return;
    }
    /* with sel: one call over the whole columns, rows[from..to) as the selection */
    assert_fb_ok(ctx, fb_agg_update(t, c->keys, c->values, c->n_values, n_rows, c->rows + from, to - from));
}

/* ---- the main differential test ------------------------------------------------------------------ */

typedef struct keyset {
    size_t n;
    fb_type t[FB_AGG_MAX_KEYS];
} keyset;

static const keyset keysets[] = {
    {1, {FB_TYPE_INT32}},  {1, {FB_TYPE_INT8}},   {1, {FB_TYPE_INT16}},  {1, {FB_TYPE_INT64}},
    {1, {FB_TYPE_UINT8}},  {1, {FB_TYPE_UINT16}}, {1, {FB_TYPE_UINT32}}, {1, {FB_TYPE_UINT64}},
    {1, {FB_TYPE_DATE32}}, {2, {FB_TYPE_INT8, FB_TYPE_UINT64}},
    {3, {FB_TYPE_INT16, FB_TYPE_DATE32, FB_TYPE_UINT32}},
    {4, {FB_TYPE_INT64, FB_TYPE_UINT8, FB_TYPE_INT32, FB_TYPE_UINT16}},
    {0, {FB_TYPE_INVALID}},
};
#define N_KEYSETS (sizeof keysets / sizeof keysets[0])

static const fb_type value_types[] = {FB_TYPE_INT32, FB_TYPE_INT64, FB_TYPE_UINT64, FB_TYPE_FLOAT64,
                                      FB_TYPE_FLOAT32, FB_TYPE_INT8, FB_TYPE_UINT16, FB_TYPE_DATE32};
#define N_VALUES (sizeof value_types / sizeof value_types[0])

static void build_aggs(fb_agg_desc *aggs, size_t *n)
{
    size_t k = 0;
    aggs[k++] = (fb_agg_desc){FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID};
    for (size_t v = 0; v < N_VALUES; v++) {
        fb_type t = value_types[v];
        static const fb_agg_kind kinds[] = {FB_AGG_COUNT, FB_AGG_SUM, FB_AGG_MIN, FB_AGG_MAX, FB_AGG_AVG};
        for (size_t q = 0; q < 5; q++) {
            if (t == FB_TYPE_DATE32 && (kinds[q] == FB_AGG_SUM || kinds[q] == FB_AGG_AVG))
                continue;
            if (k < 16 * 2 && (v < 5 || q % 2 == 0)) /* keep it within 32 aggregates */
                aggs[k++] = (fb_agg_desc){kinds[q], (int32_t)v, t};
        }
    }
    *n = k;
}

static void run_case(const keyset *ks, int dist, int64_t n, uint64_t card, uint64_t spread, int use_sel,
                     fb_agg_strategy strat, int merge)
{
    fbt_col kb[FB_AGG_MAX_KEYS], vb[N_VALUES];
    fb_column kc[FB_AGG_MAX_KEYS], vc[N_VALUES];
    key_extremes = strat != FB_AGG_STRATEGY_DIRECT;
    for (size_t k = 0; k < ks->n; k++) {
        /* later key columns get few values so that composite keys still repeat */
        kb[k] = make_key(ks->t[k], n, dist, k ? 3 + card % 5 : card, k ? 1 : spread, 1);
        kc[k] = kb[k].col;
    }
    for (size_t v = 0; v < N_VALUES; v++) {
        vb[v] = make_val(value_types[v], n, v == 3 ? 2 * (dist == D_SINGLE) + (dist != D_SINGLE) : 1);
        vc[v] = vb[v].col;
    }
    fb_agg_desc aggs[40];
    size_t n_aggs;
    build_aggs(aggs, &n_aggs);
    /* rows: all, or an ascending random half (repeats are tested in test_selection_repeats) */
    uint32_t *rows = malloc((size_t)n * 4 + 4);
    int64_t nr = 0;
    for (int64_t i = 0; i < n; i++)
        if (!use_sel || fbt_next(&rng) % 2)
            rows[nr++] = (uint32_t)i;
    ocase c = {ks->n, N_VALUES, n_aggs, kc, vc, aggs, rows, nr};
    fb_agg_spec spec = {ks->n, ks->t, n_aggs, aggs, strat};
    char what[160];
    snprintf(what, sizeof what, "keys=%zu(%s) dist=%s n=%lld card=%llu spread=%llu sel=%d strategy=%d merge=%d",
             ks->n, ks->n ? fb_type_name(ks->t[0]) : "-", dist_names[dist], (long long)n, (unsigned long long)card,
             (unsigned long long)spread, use_sel, (int)strat, merge);
    ogroup *g;
    int64_t ng = oracle(&c, &g);
    for (int vi = 0; vi < n_variants; vi++) {
        fb_ctx *ctx = variants[vi];
        fb_agg_table *t = NULL, *t2 = NULL;
        assert_fb_ok(ctx, fb_agg_create(ctx, &spec, &t));
        if (!merge) {
            feed(ctx, t, &c, n, use_sel, 0, use_sel ? nr : n);
        } else { /* first part into t, second into t2 (the other strategy), merged into t */
            fb_agg_spec s2 = spec;
            s2.strategy = strat == FB_AGG_STRATEGY_HASH ? FB_AGG_STRATEGY_AUTO : FB_AGG_STRATEGY_HASH;
            assert_fb_ok(ctx, fb_agg_create(ctx, &s2, &t2));
            int64_t total = use_sel ? nr : n, half = total / 3;
            feed(ctx, t, &c, n, use_sel, 0, half);
            feed(ctx, t2, &c, n, use_sel, half, total);
            assert_fb_ok(ctx, fb_agg_merge(t, t2));
            fb_agg_destroy(t2);
        }
        check_result(ctx, t, &c, g, ng, what);
        fb_agg_destroy(t);
    }
    free_groups(g, ng);
    free(rows);
    for (size_t k = 0; k < ks->n; k++)
        fbt_col_free(&kb[k]);
    for (size_t v = 0; v < N_VALUES; v++)
        fbt_col_free(&vb[v]);
}

static void test_differential(void **state)
{
    (void)state;
    for (size_t ki = 0; ki < N_KEYSETS; ki++) {
        const keyset *ks = &keysets[ki];
        size_t w = ks->n ? fb_type_width(ks->t[0]) : 8;
        for (int dist = 0; dist < 5; dist++) {
            if (ks->n == 0 && dist > 0)
                continue;
            int64_t n = fbt_size(dist == D_DISTINCT && w == 1 ? 200 : dist == D_DISTINCT && w == 2 ? 30000 : 20000);
            uint64_t card = w == 1 ? 50 : 3000;
            /* direct-sized (spread 1) and, for wide types, hash-sized (spread 2^20) key ranges */
            run_case(ks, dist, n, card, 1, 0, FB_AGG_STRATEGY_AUTO, 0);
            run_case(ks, dist, n, card, 1, 1, FB_AGG_STRATEGY_HASH, 0);
            if (w >= 4)
                run_case(ks, dist, n, card, 1u << 20, 0, FB_AGG_STRATEGY_AUTO, 0);
            if (ks->n == 1 || (ks->n == 2 && dist != D_DISTINCT)) /* ranges a forced direct table holds */
                run_case(ks, dist, n, card, 1, dist % 2, FB_AGG_STRATEGY_DIRECT, 0);
            run_case(ks, dist, n, card, w >= 4 ? 977 : 1, dist % 2, FB_AGG_STRATEGY_AUTO, 1);
        }
    }
}

/* small sizes: 0, 1 and a few rows, every strategy */
static void test_small(void **state)
{
    (void)state;
    static const int64_t sizes[] = {0, 1, 2, 17};
    for (size_t si = 0; si < 4; si++)
        for (size_t ki = 0; ki < N_KEYSETS; ki += 3)
            for (int s = 0; s < 3; s++)
                run_case(&keysets[ki], D_RANDOM, sizes[si], 5, 1, si & 1, (fb_agg_strategy)s, 0);
}

/* ---- targeted tests ------------------------------------------------------------------------------ */

static void test_overflow(void **state)
{
    (void)state;
    int32_t k[4] = {1, 1, 2, 2};
    int64_t v[4] = {INT64_MAX, INT64_MAX, INT64_MAX, -INT64_MAX};
    uint64_t u[4] = {UINT64_MAX, 0, 1, 2};
    fb_type kt = FB_TYPE_INT32;
    fb_agg_desc aggs[2] = {{FB_AGG_SUM, 0, FB_TYPE_INT64}, {FB_AGG_AVG, 0, FB_TYPE_INT64}};
    fb_agg_desc uaggs[1] = {{FB_AGG_SUM, 0, FB_TYPE_UINT64}};
    for (int vi = 0; vi < n_variants; vi++) {
        fb_ctx *ctx = variants[vi];
        for (size_t nk = 0; nk < 2; nk++) {
            fb_agg_spec spec = {nk, &kt, 2, aggs, FB_AGG_STRATEGY_AUTO};
            fb_agg_table *t;
            assert_fb_ok(ctx, fb_agg_create(ctx, &spec, &t));
            fb_column kc = fb_column_make(FB_TYPE_INT32, k, 4, NULL), vc = fb_column_make(FB_TYPE_INT64, v, 4, NULL);
            assert_fb_ok(ctx, fb_agg_update(t, &kc, &vc, 1, 4, NULL, 0));
            int64_t ko[2], so[2];
            double ao[2];
            uint8_t kv[1], sv[1], av[1];
            fb_column_out kout = {FB_TYPE_INT32, 2, ko, kv, 0, 0};
            fb_column_out out[2] = {{FB_TYPE_INT64, 2, so, sv, 0, 0}, {FB_TYPE_FLOAT64, 2, ao, av, 0, 0}};
            assert_fb_status(ctx, fb_agg_result(t, &kout, out), FB_ERR_OVERFLOW);
            assert_int_equal(out[0].length, 0);
            /* the exact sum comes back into range: the table stays usable */
            int64_t back[4] = {-INT64_MAX, -INT64_MAX + 2, 0, 0};
            vc = fb_column_make(FB_TYPE_INT64, back, 4, NULL);
            assert_fb_ok(ctx, fb_agg_update(t, &kc, &vc, 1, 4, NULL, 0));
            assert_fb_ok(ctx, fb_agg_result(t, &kout, out));
            if (nk) {
                assert_int_equal(out[0].length, 2);
                assert_true(so[0] == 2 && so[1] == 0); /* MAX+MAX-MAX-MAX+... = 2 (since -INT64_MAX = MIN+1) */
                assert_true(fabs(ao[0] - 0.5) < 1e-12);
            } else {
                assert_true(so[0] == 2);
            }
            fb_agg_destroy(t);
            fb_agg_spec us = {nk, &kt, 1, uaggs, FB_AGG_STRATEGY_AUTO};
            assert_fb_ok(ctx, fb_agg_create(ctx, &us, &t));
            fb_column uc = fb_column_make(FB_TYPE_UINT64, u, 4, NULL);
            assert_fb_ok(ctx, fb_agg_update(t, &kc, &uc, 1, 4, NULL, 0));
            assert_fb_status(ctx, fb_agg_result(t, &kout, out), FB_ERR_OVERFLOW);
            fb_agg_destroy(t);
        }
    }
}

/* SQL null semantics on a hand-made case; ungrouped empty input gives one row. */
static void test_nulls_and_empty(void **state)
{
    (void)state;
    int32_t k[6] = {7, 0, 7, 0, 9, 9};
    uint8_t kvalid = 0x3D; /* rows 1 null: 0b111101 */
    int32_t v[6] = {1, 2, 3, 4, 5, 6};
    uint8_t vvalid = 0x0F; /* rows 4, 5 null */
    fb_type kt = FB_TYPE_INT32;
    fb_agg_desc aggs[5] = {{FB_AGG_COUNT_STAR, 0, 0}, {FB_AGG_COUNT, 0, FB_TYPE_INT32}, {FB_AGG_SUM, 0, FB_TYPE_INT32},
                           {FB_AGG_MIN, 0, FB_TYPE_INT32}, {FB_AGG_AVG, 0, FB_TYPE_INT32}};
    for (int vi = 0; vi < n_variants; vi++) {
        fb_ctx *ctx = variants[vi];
        for (int s = 0; s < 3; s++) {
            fb_agg_spec spec = {1, &kt, 5, aggs, (fb_agg_strategy)s};
            fb_agg_table *t;
            assert_fb_ok(ctx, fb_agg_create(ctx, &spec, &t));
            fb_column kc = fb_column_make(FB_TYPE_INT32, k, 6, &kvalid), vc = fb_column_make(FB_TYPE_INT32, v, 6, &vvalid);
            assert_fb_ok(ctx, fb_agg_update(t, &kc, &vc, 1, 6, NULL, 0));
            int64_t n;
            assert_fb_ok(ctx, fb_agg_group_count(t, &n));
            assert_int_equal(n, 4); /* 7, null, 0, 9 */
            int32_t ko[4], mo[4];
            int64_t c0[4], c1[4], so[4];
            double ao[4];
            uint8_t bits[6][1];
            fb_column_out kout = {FB_TYPE_INT32, 4, ko, bits[0], 0, 0};
            fb_column_out out[5] = {{FB_TYPE_INT64, 4, c0, bits[1], 0, 0}, {FB_TYPE_INT64, 4, c1, bits[2], 0, 0},
                                    {FB_TYPE_INT64, 4, so, bits[3], 0, 0}, {FB_TYPE_INT32, 4, mo, bits[4], 0, 0},
                                    {FB_TYPE_FLOAT64, 4, ao, bits[5], 0, 0}};
            assert_fb_ok(ctx, fb_agg_result(t, &kout, out));
            assert_int_equal(kout.null_count, 1);
            assert_int_equal(bits[0][0], 0x0D); /* group 1 (the null key) is null */
            assert_true(ko[0] == 7 && ko[2] == 0 && ko[3] == 9);
            assert_true(c0[0] == 2 && c0[1] == 1 && c0[2] == 1 && c0[3] == 2);
            assert_true(c1[0] == 2 && c1[1] == 1 && c1[2] == 1 && c1[3] == 0);
            assert_true(so[0] == 4 && so[1] == 2 && so[2] == 4);
            assert_int_equal(bits[3][0], 0x07); /* sum of group 9 is null */
            assert_int_equal(out[2].null_count, 1);
            assert_int_equal(bits[1][0], 0x0F);
            assert_true(mo[0] == 1 && mo[1] == 2 && mo[2] == 4);
            assert_true(ao[0] == 2.0 && ao[1] == 2.0 && ao[2] == 4.0);
            fb_agg_destroy(t);
        }
        /* ungrouped, no rows */
        fb_agg_spec spec = {0, NULL, 5, aggs, FB_AGG_STRATEGY_AUTO};
        fb_agg_table *t;
        assert_fb_ok(ctx, fb_agg_create(ctx, &spec, &t));
        fb_column vc = fb_column_make(FB_TYPE_INT32, v, 0, NULL);
        assert_fb_ok(ctx, fb_agg_update(t, NULL, &vc, 1, 0, NULL, 0));
        int64_t c0, c1, so;
        int32_t mo;
        double ao;
        uint8_t bits[5] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
        fb_column_out out[5] = {{FB_TYPE_INT64, 1, &c0, &bits[0], 0, 0}, {FB_TYPE_INT64, 1, &c1, &bits[1], 0, 0},
                                {FB_TYPE_INT64, 1, &so, &bits[2], 0, 0}, {FB_TYPE_INT32, 1, &mo, &bits[3], 0, 0},
                                {FB_TYPE_FLOAT64, 1, &ao, &bits[4], 0, 0}};
        assert_fb_ok(ctx, fb_agg_result(t, NULL, out));
        assert_int_equal(out[0].length, 1);
        assert_true(c0 == 0 && c1 == 0 && bits[0] == 1 && bits[1] == 1);
        assert_true(bits[2] == 0 && bits[3] == 0 && bits[4] == 0);
        /* missing validity where the result holds a null */
        out[2].validity = NULL;
        assert_fb_status(ctx, fb_agg_result(t, NULL, out), FB_ERR_INVALID_ARG);
        fb_agg_destroy(t);
    }
}

/* A selection vector with repeats counts a row as often as it is listed. */
static void test_selection_repeats(void **state)
{
    (void)state;
    int16_t k[3] = {-1, 5, -1};
    int64_t v[3] = {10, 20, 30};
    uint32_t sel[5] = {2, 2, 1, 0, 2};
    fb_type kt = FB_TYPE_INT16;
    fb_agg_desc aggs[2] = {{FB_AGG_COUNT_STAR, 0, 0}, {FB_AGG_SUM, 0, FB_TYPE_INT64}};
    for (int vi = 0; vi < n_variants; vi++) {
        fb_ctx *ctx = variants[vi];
        for (size_t nk = 0; nk < 2; nk++) {
            fb_agg_spec spec = {nk, &kt, 2, aggs, FB_AGG_STRATEGY_AUTO};
            fb_agg_table *t;
            assert_fb_ok(ctx, fb_agg_create(ctx, &spec, &t));
            fb_column kc = fb_column_make(FB_TYPE_INT16, k, 3, NULL), vc = fb_column_make(FB_TYPE_INT64, v, 3, NULL);
            assert_fb_ok(ctx, fb_agg_update(t, &kc, &vc, 1, 3, sel, 5));
            int16_t ko[2];
            int64_t c[2], s[2];
            fb_column_out kout = {FB_TYPE_INT16, 2, ko, NULL, 0, 0};
            fb_column_out out[2] = {{FB_TYPE_INT64, 2, c, NULL, 0, 0}, {FB_TYPE_INT64, 2, s, NULL, 0, 0}};
            assert_fb_ok(ctx, fb_agg_result(t, &kout, out));
            if (nk) {
                assert_true(ko[0] == -1 && c[0] == 4 && s[0] == 100);
                assert_true(ko[1] == 5 && c[1] == 1 && s[1] == 20);
            } else {
                assert_true(c[0] == 5 && s[0] == 120);
            }
            fb_agg_destroy(t);
        }
    }
}

/* The direct table widens as morsels bring new ranges, then switches to hashing; forced direct fails
 * cleanly when the range is too wide. */
static void test_strategy_switch(void **state)
{
    (void)state;
    enum { N = 3000 };
    int32_t *k = malloc(N * 4);
    fb_type kt = FB_TYPE_INT32;
    fb_agg_desc aggs[1] = {{FB_AGG_COUNT_STAR, 0, 0}};
    for (int vi = 0; vi < n_variants; vi++) {
        fb_ctx *ctx = variants[vi];
        fb_agg_spec spec = {1, &kt, 1, aggs, FB_AGG_STRATEGY_AUTO};
        fb_agg_table *t;
        assert_fb_ok(ctx, fb_agg_create(ctx, &spec, &t));
        for (int i = 0; i < N; i++)
            k[i] = i % 100 - 50;
        fb_column kc = fb_column_make(FB_TYPE_INT32, k, N, NULL);
        assert_fb_ok(ctx, fb_agg_update(t, &kc, NULL, 0, N, NULL, 0));
        assert_int_equal(fb_agg_table_strategy(t), FB_AGG_STRATEGY_DIRECT);
        for (int i = 0; i < N; i++)
            k[i] = i % 1000 + 1000; /* wider, still direct */
        assert_fb_ok(ctx, fb_agg_update(t, &kc, NULL, 0, N, NULL, 0));
        assert_int_equal(fb_agg_table_strategy(t), FB_AGG_STRATEGY_DIRECT);
        for (int i = 0; i < N; i++)
            k[i] = (i % 10) * 1000000; /* too wide: hashing */
        assert_fb_ok(ctx, fb_agg_update(t, &kc, NULL, 0, N, NULL, 0));
        assert_int_equal(fb_agg_table_strategy(t), FB_AGG_STRATEGY_HASH);
        int64_t n;
        assert_fb_ok(ctx, fb_agg_group_count(t, &n));
        assert_int_equal(n, 100 + 1000 + 9); /* 0 came with the first morsel */
        for (int i = 0; i < N; i++) /* the groups found before the switch are found by hashing */
            k[i] = i % 2 ? i % 100 - 50 : i % 1000 + 1000;
        assert_fb_ok(ctx, fb_agg_update(t, &kc, NULL, 0, N, NULL, 0));
        assert_fb_ok(ctx, fb_agg_group_count(t, &n));
        assert_int_equal(n, 100 + 1000 + 9);
        fb_agg_destroy(t);

        spec.strategy = FB_AGG_STRATEGY_DIRECT;
        assert_fb_ok(ctx, fb_agg_create(ctx, &spec, &t));
        k[0] = 0;
        k[1] = 1 << 30;
        kc.length = 2;
        assert_fb_status(ctx, fb_agg_update(t, &kc, NULL, 0, 2, NULL, 0), FB_ERR_CAPACITY);
        kc.length = 1;
        assert_fb_ok(ctx, fb_agg_update(t, &kc, NULL, 0, 1, NULL, 0)); /* still usable */
        assert_fb_ok(ctx, fb_agg_group_count(t, &n));
        assert_int_equal(n, 1);
        fb_agg_destroy(t);
    }
    free(k);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    enum { N = 200000 };
    int64_t *k = malloc(N * 8);
    for (int i = 0; i < N; i++)
        k[i] = (int64_t)fbt_next(&rng);
    fb_type kt = FB_TYPE_INT64;
    fb_agg_desc aggs[2] = {{FB_AGG_COUNT_STAR, 0, 0}, {FB_AGG_SUM, 0, FB_TYPE_INT64}};
    fb_options *o;
    assert_fb_ok(NULL, fb_options_create(&o));
    assert_fb_ok(NULL, fb_options_set_memory_limit(o, 4u << 20));
    fb_ctx *ctx;
    assert_fb_ok(NULL, fb_ctx_create(o, &ctx));
    fb_options_destroy(o);
    size_t before = fb_ctx_memory_used(ctx);
    fb_agg_spec spec = {1, &kt, 2, aggs, FB_AGG_STRATEGY_AUTO};
    fb_agg_table *t;
    assert_fb_ok(ctx, fb_agg_create(ctx, &spec, &t));
    fb_column kc = fb_column_make(FB_TYPE_INT64, k, N, NULL);
    assert_fb_status(ctx, fb_agg_update(t, &kc, &kc, 1, N, NULL, 0), FB_ERR_OUT_OF_MEMORY);
    assert_true(fb_ctx_memory_used(ctx) < before + 4096); /* all but the handle is freed */
    assert_fb_status(ctx, fb_agg_update(t, &kc, &kc, 1, 10, NULL, 0), FB_ERR_INVALID_ARG); /* failed */
    int64_t n;
    assert_fb_status(ctx, fb_agg_group_count(t, &n), FB_ERR_INVALID_ARG);
    assert_int_equal(fb_agg_table_strategy(t), FB_AGG_STRATEGY_AUTO);
    fb_agg_destroy(t);
    assert_int_equal(fb_ctx_memory_used(ctx), before);
    fb_ctx_destroy(ctx);
    free(k);
}

static void test_bad_input(void **state)
{
    (void)state;
    fb_ctx *ctx = variants[0];
    fb_type kt = FB_TYPE_INT32, ft = FB_TYPE_FLOAT64;
    fb_agg_desc aggs[2] = {{FB_AGG_COUNT_STAR, 0, 0}, {FB_AGG_SUM, 0, FB_TYPE_INT32}};
    fb_agg_spec spec = {1, &kt, 2, aggs, FB_AGG_STRATEGY_AUTO};
    fb_agg_table *t = NULL, *t2 = NULL;
    assert_fb_status(NULL, fb_agg_create(NULL, &spec, &t), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_agg_create(ctx, NULL, &t), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_agg_create(ctx, &spec, NULL), FB_ERR_INVALID_ARG);
    fb_agg_spec bad = spec;
    bad.key_types = &ft;
    assert_fb_status(ctx, fb_agg_create(ctx, &bad, &t), FB_ERR_UNSUPPORTED_TYPE);
    bad = spec;
    bad.n_keys = 5;
    assert_fb_status(ctx, fb_agg_create(ctx, &bad, &t), FB_ERR_INVALID_ARG);
    bad = spec;
    bad.strategy = (fb_agg_strategy)7;
    assert_fb_status(ctx, fb_agg_create(ctx, &bad, &t), FB_ERR_INVALID_ARG);
    fb_agg_desc bd[1] = {{FB_AGG_SUM, 0, FB_TYPE_DATE32}};
    bad = spec;
    bad.aggs = bd;
    bad.n_aggs = 1;
    assert_fb_status(ctx, fb_agg_create(ctx, &bad, &t), FB_ERR_UNSUPPORTED_TYPE);
    bd[0] = (fb_agg_desc){(fb_agg_kind)9, 0, FB_TYPE_INT32};
    assert_fb_status(ctx, fb_agg_create(ctx, &bad, &t), FB_ERR_INVALID_ARG);
    bd[0] = (fb_agg_desc){FB_AGG_MIN, -1, FB_TYPE_INT32};
    assert_fb_status(ctx, fb_agg_create(ctx, &bad, &t), FB_ERR_INVALID_ARG);
    fb_type rt;
    assert_fb_status(NULL, fb_agg_result_type(FB_AGG_AVG, FB_TYPE_DATE32, &rt), FB_ERR_UNSUPPORTED_TYPE);
    assert_fb_ok(NULL, fb_agg_result_type(FB_AGG_MAX, FB_TYPE_UINT16, &rt));
    assert_int_equal(rt, FB_TYPE_UINT16);

    assert_fb_ok(ctx, fb_agg_create(ctx, &spec, &t));
    int32_t k[4] = {1, 2, 1, 2}, v[4] = {5, 6, 7, 8};
    int64_t v64[4] = {0};
    fb_column kc = fb_column_make(FB_TYPE_INT32, k, 4, NULL), vc = fb_column_make(FB_TYPE_INT32, v, 4, NULL);
    fb_column wrong = fb_column_make(FB_TYPE_INT64, v64, 4, NULL), shortc = fb_column_make(FB_TYPE_INT32, v, 3, NULL);
    uint32_t sel[2] = {0, 4};
    assert_fb_status(NULL, fb_agg_update(NULL, &kc, &vc, 1, 4, NULL, 0), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_agg_update(t, NULL, &vc, 1, 4, NULL, 0), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_agg_update(t, &kc, NULL, 1, 4, NULL, 0), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_agg_update(t, &kc, &vc, 0, 4, NULL, 0), FB_ERR_INVALID_ARG); /* input 0 of 0 */
    assert_fb_status(ctx, fb_agg_update(t, &kc, &wrong, 1, 4, NULL, 0), FB_ERR_UNSUPPORTED_TYPE);
    assert_fb_status(ctx, fb_agg_update(t, &wrong, &vc, 1, 4, NULL, 0), FB_ERR_UNSUPPORTED_TYPE);
    assert_fb_status(ctx, fb_agg_update(t, &kc, &shortc, 1, 4, NULL, 0), FB_ERR_LENGTH_MISMATCH);
    assert_fb_status(ctx, fb_agg_update(t, &kc, &vc, 1, -1, NULL, 0), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_agg_update(t, &kc, &vc, 1, 4, sel, 2), FB_ERR_OUT_OF_RANGE);
    fb_column nodata = fb_column_make(FB_TYPE_INT32, NULL, 4, NULL);
    assert_fb_status(ctx, fb_agg_update(t, &nodata, &vc, 1, 4, NULL, 0), FB_ERR_INVALID_ARG);
    int64_t n = -1;
    assert_fb_ok(ctx, fb_agg_group_count(t, &n));
    assert_int_equal(n, 0); /* nothing was added by the failed calls */
    assert_fb_ok(ctx, fb_agg_update(t, &kc, &vc, 1, 4, NULL, 0));

    int32_t ko[2];
    int64_t c[2], s[2];
    fb_column_out kout = {FB_TYPE_INT32, 2, ko, NULL, 0, 0};
    fb_column_out out[2] = {{FB_TYPE_INT64, 2, c, NULL, 0, 0}, {FB_TYPE_INT64, 2, s, NULL, 0, 0}};
    assert_fb_status(NULL, fb_agg_result(NULL, &kout, out), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_agg_result(t, NULL, out), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_agg_result(t, &kout, NULL), FB_ERR_INVALID_ARG);
    out[1].capacity = 1;
    assert_fb_status(ctx, fb_agg_result(t, &kout, out), FB_ERR_CAPACITY);
    assert_int_equal(kout.length, 0);
    out[1].capacity = 2;
    out[1].type = FB_TYPE_FLOAT64;
    assert_fb_status(ctx, fb_agg_result(t, &kout, out), FB_ERR_UNSUPPORTED_TYPE);
    out[1].type = FB_TYPE_INT64;
    assert_fb_ok(ctx, fb_agg_result(t, &kout, out));
    assert_true(kout.length == 2 && ko[0] == 1 && ko[1] == 2 && s[0] == 12 && s[1] == 14 && c[0] == 2);

    assert_fb_status(ctx, fb_agg_merge(t, t), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_agg_merge(NULL, t), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_agg_merge(t, NULL), FB_ERR_INVALID_ARG);
    fb_agg_spec other = spec;
    other.n_aggs = 1;
    assert_fb_ok(ctx, fb_agg_create(ctx, &other, &t2));
    assert_fb_status(ctx, fb_agg_merge(t, t2), FB_ERR_INVALID_ARG);
    fb_agg_destroy(t2);
    assert_fb_status(NULL, fb_agg_group_count(NULL, &n), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_agg_group_count(t, NULL), FB_ERR_INVALID_ARG);
    fb_agg_destroy(t);
    fb_agg_destroy(NULL);
}

/* ---- DuckDB ---------------------------------------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const void *p, size_t bytes)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, bytes, f), bytes);
    fclose(f);
}

/* One data set: k int32 (1M rows, `card` distinct values spread over a wide range when wide),
 * v int32; nulls as in A4 when with_nulls. Aggregates count(*), count(v), sum, min, max, avg. Writes
 * inputs (values + one byte per row of validity) and fb's result (groups in fb's order) to dir/NAME_*. */
static void duckdb_dataset(const char *dir, const char *name, int64_t n, uint32_t card, int wide, int with_nulls)
{
    int32_t *k = malloc((size_t)n * 4), *v = malloc((size_t)n * 4);
    uint8_t *kbits = calloc((size_t)n / 8 + 1, 1), *vbits = calloc((size_t)n / 8 + 1, 1);
    uint8_t *kvb = malloc((size_t)n), *vvb = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++) {
        uint32_t r = (uint32_t)(fbt_next(&rng) % card);
        k[i] = wide ? (int32_t)(r * 2654435761u) : (int32_t)r;
        v[i] = (int32_t)(fbt_next(&rng) % 2000001) - 1000000;
        if (fbt_next(&rng) % 97 == 0)
            v[i] = fbt_next(&rng) & 1 ? INT32_MAX : INT32_MIN;
        kvb[i] = !with_nulls || fbt_next(&rng) % 100 != 0;
        vvb[i] = !with_nulls || fbt_next(&rng) % 10 != 0;
        kbits[i / 8] |= (uint8_t)(kvb[i] << (i % 8));
        vbits[i / 8] |= (uint8_t)(vvb[i] << (i % 8));
    }
    fb_ctx *ctx = variants[n_variants - 1];
    fb_type kt = FB_TYPE_INT32;
    fb_agg_desc aggs[6] = {{FB_AGG_COUNT_STAR, 0, 0},         {FB_AGG_COUNT, 0, FB_TYPE_INT32},
                           {FB_AGG_SUM, 0, FB_TYPE_INT32},    {FB_AGG_MIN, 0, FB_TYPE_INT32},
                           {FB_AGG_MAX, 0, FB_TYPE_INT32},    {FB_AGG_AVG, 0, FB_TYPE_INT32}};
    fb_agg_spec spec = {1, &kt, 6, aggs, FB_AGG_STRATEGY_AUTO};
    fb_agg_table *t;
    assert_fb_ok(ctx, fb_agg_create(ctx, &spec, &t));
    fb_column kc = fb_column_make(FB_TYPE_INT32, k, n, with_nulls ? kbits : NULL);
    fb_column vc = fb_column_make(FB_TYPE_INT32, v, n, with_nulls ? vbits : NULL);
    for (int64_t b = 0; b < n; b += 65536) { /* morsels of 64K rows */
        fb_column ks = kc, vs = vc;
        int64_t m = n - b < 65536 ? n - b : 65536;
        ks.offset = vs.offset = b;
        ks.length = vs.length = m;
        assert_fb_ok(ctx, fb_agg_update(t, &ks, &vs, 1, m, NULL, 0));
    }
    int64_t g;
    assert_fb_ok(ctx, fb_agg_group_count(t, &g));
    int32_t *ko = malloc((size_t)g * 4 + 4), *mn = malloc((size_t)g * 4 + 4), *mx = malloc((size_t)g * 4 + 4);
    int64_t *c0 = malloc((size_t)g * 8 + 8), *c1 = malloc((size_t)g * 8 + 8), *s = malloc((size_t)g * 8 + 8);
    double *av = malloc((size_t)g * 8 + 8);
    uint8_t *bits[7];
    for (int i = 0; i < 7; i++)
        bits[i] = calloc((size_t)g / 8 + 1, 1);
    fb_column_out kout = {FB_TYPE_INT32, g, ko, bits[0], 0, 0};
    fb_column_out out[6] = {{FB_TYPE_INT64, g, c0, bits[1], 0, 0}, {FB_TYPE_INT64, g, c1, bits[2], 0, 0},
                            {FB_TYPE_INT64, g, s, bits[3], 0, 0},  {FB_TYPE_INT32, g, mn, bits[4], 0, 0},
                            {FB_TYPE_INT32, g, mx, bits[5], 0, 0}, {FB_TYPE_FLOAT64, g, av, bits[6], 0, 0}};
    assert_fb_ok(ctx, fb_agg_result(t, &kout, out));
    fb_agg_destroy(t);
    /* validity as one byte per row for numpy */
    uint8_t *vb = malloc((size_t)g * 7 + 1);
    for (int c = 0; c < 7; c++)
        for (int64_t i = 0; i < g; i++)
            vb[c * g + i] = (bits[c][i / 8] >> (i % 8)) & 1;
    char fname[128];
#define FB_W(suffix, p, bytes)                                                                                   \
    do {                                                                                                         \
        snprintf(fname, sizeof fname, "%s_%s", name, suffix);                                                    \
        write_file(dir, fname, p, bytes);                                                                        \
    } while (0)
    FB_W("in_k.i32", k, (size_t)n * 4);
    FB_W("in_v.i32", v, (size_t)n * 4);
    FB_W("in_kvalid.u8", kvb, (size_t)n);
    FB_W("in_vvalid.u8", vvb, (size_t)n);
    FB_W("out_k.i32", ko, (size_t)g * 4);
    FB_W("out_count_star.i64", c0, (size_t)g * 8);
    FB_W("out_count.i64", c1, (size_t)g * 8);
    FB_W("out_sum.i64", s, (size_t)g * 8);
    FB_W("out_min.i32", mn, (size_t)g * 4);
    FB_W("out_max.i32", mx, (size_t)g * 4);
    FB_W("out_avg.f64", av, (size_t)g * 8);
    FB_W("out_valid.u8", vb, (size_t)g * 7);
#undef FB_W
    fprintf(stderr, "[ duckdb   ] %s: %lld rows, %lld groups (fb, variant %s)\n", name, (long long)n, (long long)g,
            fb_isa_name(fb_ctx_isa(ctx)));
    free(vb);
    for (int i = 0; i < 7; i++)
        free(bits[i]);
    free(ko), free(mn), free(mx), free(c0), free(c1), free(s), free(av);
    free(k), free(v), free(kbits), free(vbits), free(kvb), free(vvb);
}

static void test_duckdb(void **state)
{
    (void)state;
    if (fbt_small())
        skip();
#ifndef FB_AGG_DUCKDB_SCRIPT
    skip();
#else
    if (system("python3 -c 'import duckdb, numpy' >/dev/null 2>&1") != 0) {
        fprintf(stderr, "[ skipped  ] duckdb: python3 cannot import duckdb and numpy\n");
        skip();
    }
    char dir[] = "/tmp/fb_agg_duckdb_XXXXXX";
    assert_non_null(mkdtemp(dir));
    duckdb_dataset(dir, "a1", 1 << 20, 1 << 15, 1, 0); /* A1: uniform, many groups, wide keys (hashing) */
    duckdb_dataset(dir, "a2", 1 << 20, 100, 0, 0);     /* A2: 100 groups (direct) */
    duckdb_dataset(dir, "a4", 1 << 20, 1 << 15, 1, 1); /* A4: nulls in k and v */
    int rc = fbt_run_check_script(FB_AGG_DUCKDB_SCRIPT, dir);
    if (rc != 0)
        fail_msg("agg_duckdb_check.py reported a difference (exit status %d)", rc);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nulls_and_empty), cmocka_unit_test(test_selection_repeats),
        cmocka_unit_test(test_overflow),        cmocka_unit_test(test_strategy_switch),
        cmocka_unit_test(test_small),           cmocka_unit_test(test_differential),
        cmocka_unit_test(test_out_of_memory),   cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_duckdb),
    };
    return cmocka_run_group_tests(tests, setup_variants, teardown_variants);
}
