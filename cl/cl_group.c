/* cl_group.c - fb_cl_group_by, the OpenCL twin of a CPU aggregation table (fb_agg.h) fed one whole
 * input: the same groups in the same order (first row first), the same result types, nulls and
 * overflow errors, integers bitwise equal; float sums differ by reassociation only.
 *
 * Device work (group.cl): a global hash table of the key's widened bits, sized for every row being
 * its own group (2 x rows slots, so it never fills); the occupied slots sorted by their first row
 * (radix sort of sort.cl) give dense group numbers; then per aggregate one pass of 64-bit atomics
 * into per-group words, through local memory when the groups fit there (FB_CL_GROUP_LOCAL_MAX).
 *
 * Memory: the table stays on the device; the key and value columns go over in chunks sized to what
 * the device memory budget leaves (fb_cl_budget()), so the input may be larger than the device. An
 * input whose table does not fit is split into hash partitions on the host (fb_hash_columns,
 * fb_radix_partition; a part still too large is split by the next hash bits), each grouped on the
 * device by itself; the groups' first rows put them back in order.
 *
 * Two or more key columns first become one int64 key per row (cl_keys.c: the row's tuple's first
 * row), and each group's keys are copied from its first row at the end. */
#include "fb/fb_agg.h"
#include "fb/fb_cl.h"
#include "fb_cl_internal.h"
#include "fb_kernels_common.h"

#include <math.h>
#include <string.h>

/* group.cl's operations */
#define GB_COUNT_ROWS 0
#define GB_COUNT_VALID 1
#define GB_SUM_INT 2
#define GB_SUM_WIDE 3
#define GB_SUM_FLOAT 4
#define GB_MIN 5
#define GB_MAX 6

#define GB_EMPTY 0x8000000000000000ull

/* The public name, in messages of the helpers too */
#define GB_WHERE "fb_cl_group_by"

/* Most groups aggregated in local memory first (3 words of 8 bytes each: 24 KiB). */
#define FB_CL_GROUP_LOCAL_MAX 1024

static int is_float(fb_type t) { return t == FB_TYPE_FLOAT32 || t == FB_TYPE_FLOAT64; }

static int is_key_type(fb_type t) { return t != FB_TYPE_INVALID && !is_float(t) && fb_type_width(t) > 0; }

/* The operation of aggregate a. */
static cl_int op_of(const fb_agg_desc *a)
{
    switch (a->kind) {
    case FB_AGG_COUNT_STAR: return GB_COUNT_ROWS;
    case FB_AGG_COUNT: return GB_COUNT_VALID;
    case FB_AGG_MIN: return GB_MIN;
    case FB_AGG_MAX: return GB_MAX;
    default: /* sum, avg */
        if (is_float(a->type))
            return GB_SUM_FLOAT;
        return fb_type_width(a->type) == 8 ? GB_SUM_WIDE : GB_SUM_INT;
    }
}

static uint64_t pow2_at_least(uint64_t v)
{
    uint64_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

static fb_status check_args(fb_ctx *ctx, const fb_agg_spec *spec, const fb_column *keys, const fb_column *values,
                            size_t n_values, int64_t n_rows, fb_column_out *out_keys, fb_column_out *out_aggs,
                            int64_t *n_groups, const char *where)
{
    if (!ctx)
        return fb_set_error(NULL, FB_ERR_INVALID_ARG, where, "ctx must not be NULL");
    FB_RETURN_ERROR_IF(!spec || !n_groups, ctx, FB_ERR_INVALID_ARG, "spec and n_groups must not be NULL");
    FB_RETURN_ERROR_IF(spec->n_keys > FB_AGG_MAX_KEYS || (spec->n_keys && (!spec->key_types || !keys || !out_keys)),
                       ctx, FB_ERR_INVALID_ARG,
                       "fb_cl_group_by groups by 0..%d key columns (spec has %zu), with keys and out_keys",
                       FB_AGG_MAX_KEYS, spec->n_keys);
    FB_RETURN_ERROR_IF(spec->n_aggs > FB_AGG_MAX_AGGS || (spec->n_aggs && (!spec->aggs || !out_aggs)), ctx,
                       FB_ERR_INVALID_ARG, "n_aggs is %zu (at most %d, with aggs and out_aggs)", spec->n_aggs,
                       FB_AGG_MAX_AGGS);
    /* slots (2 x rows, a power of two, plus 2) are numbered in 32 bits on the device */
    FB_RETURN_ERROR_IF(n_rows < 0 || n_rows > FB_CL_TABLE_MAX_ROWS, ctx, FB_ERR_INVALID_ARG,
                       "n_rows is %lld (0..%lld on the device)", (long long)n_rows, (long long)FB_CL_TABLE_MAX_ROWS);
    for (size_t k = 0; k < spec->n_keys; k++) {
        FB_RETURN_ERROR_IF(!is_key_type(spec->key_types[k]), ctx, FB_ERR_UNSUPPORTED_TYPE,
                           "a %s key; keys are integers or date32", fb_type_name(spec->key_types[k]));
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, &keys[k], where, "a key column"));
        FB_RETURN_ERROR_IF(keys[k].type != spec->key_types[k], ctx, FB_ERR_UNSUPPORTED_TYPE,
                           "key column %zu is %s, the spec says %s", k, fb_type_name(keys[k].type),
                           fb_type_name(spec->key_types[k]));
        FB_RETURN_ERROR_IF(keys[k].length != n_rows, ctx, FB_ERR_LENGTH_MISMATCH,
                           "key column %zu has %lld rows, not %lld", k, (long long)keys[k].length, (long long)n_rows);
    }
    for (size_t a = 0; a < spec->n_aggs; a++) {
        const fb_agg_desc *d = &spec->aggs[a];
        fb_type rt;
        FB_FORWARD_IF_ERROR(fb_agg_result_type(d->kind, d->kind == FB_AGG_COUNT_STAR ? FB_TYPE_INT64 : d->type, &rt));
        if (d->kind == FB_AGG_COUNT_STAR)
            continue;
        FB_RETURN_ERROR_IF(d->input < 0 || (size_t)d->input >= n_values || !values, ctx, FB_ERR_INVALID_ARG,
                           "aggregate %zu reads value column %d of %zu", a, (int)d->input, n_values);
        const fb_column *v = &values[d->input];
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, v, where, "a value column"));
        FB_RETURN_ERROR_IF(v->type != d->type, ctx, FB_ERR_UNSUPPORTED_TYPE, "aggregate %zu: column is %s, spec %s", a,
                           fb_type_name(v->type), fb_type_name(d->type));
        FB_RETURN_ERROR_IF(v->length != n_rows, ctx, FB_ERR_LENGTH_MISMATCH,
                           "value column %d has %lld rows, not %lld", (int)d->input, (long long)v->length,
                           (long long)n_rows);
    }
    return FB_OK;
}

/* The value of an ordered key (fb_key of common.cl) back in type t's bits: floats come back
 * canonical (one NaN, +0.0), as the CPU's min and max return them. */
static uint64_t unkey(fb_type t, int64_t key)
{
    switch (t) {
    case FB_TYPE_UINT32: return (uint32_t)key ^ 0x80000000u;
    case FB_TYPE_UINT64: return (uint64_t)key ^ 0x8000000000000000ull;
    case FB_TYPE_FLOAT32: {
        uint32_t raw = (uint32_t)key;
        return raw & 0x80000000u ? raw ^ 0x7FFFFFFFu : raw;
    }
    case FB_TYPE_FLOAT64: {
        uint64_t raw = (uint64_t)key;
        return raw & 0x8000000000000000ull ? raw ^ 0x7FFFFFFFFFFFFFFFull : raw;
    }
    default: return (uint64_t)key;
    }
}

static void put(void *data, size_t w, int64_t g, uint64_t bits) { memcpy((char *)data + (size_t)g * w, &bits, w); }

static void set_bit(uint8_t *bits, int64_t i, int v)
{
    if (v)
        bits[i >> 3] |= (uint8_t)(1u << (i & 7));
}

typedef __int128 i128;

/* The exact sum of group g from its words (w1, w2 as fb_gb_update left them). */
static i128 exact_sum(cl_int op, fb_type t, uint64_t w1, uint64_t w2)
{
    if (op == GB_SUM_INT)
        return (i128)(int64_t)w1;
    i128 hi = t == FB_TYPE_INT64 ? (i128)(int64_t)w2 : (i128)w2;
    return hi * ((i128)1 << 32) + (i128)w1;
}

/* What a partition's group-by (group_direct) gives back besides the outputs. */
typedef struct gb_extra {
    uint32_t *first_rows; /* NULL, or room for the groups' first rows (input rows, in group order) */
    int defer_overflow;   /* an integer sum overflowing int64 is noted below, not an error */
    int64_t overflow_group[FB_AGG_MAX_AGGS]; /* with defer_overflow: aggregate a's first such group, or -1 */
} gb_extra;

/* Writes the outputs from the group keys and words (G groups, words[a * 3 * G + k * G + g]). */
static fb_status write_results(fb_ctx *ctx, const fb_agg_spec *spec, int64_t G, const uint64_t *gkeys,
                               int64_t null_group, const uint64_t *words, fb_column_out *out_keys,
                               fb_column_out *out_aggs, gb_extra *x, const char *where)
{
    fb_type kt = spec->n_keys ? spec->key_types[0] : FB_TYPE_INVALID;
    if (spec->n_keys)
        FB_FORWARD_IF_ERROR(fb_check_column_out(ctx, out_keys, kt, G, null_group >= 0, where));
    for (size_t a = 0; a < spec->n_aggs; a++) {
        const fb_agg_desc *d = &spec->aggs[a];
        fb_type rt;
        fb_agg_result_type(d->kind, d->kind == FB_AGG_COUNT_STAR ? FB_TYPE_INT64 : d->type, &rt);
        int nulls = 0;
        const uint64_t *w0 = words + a * 3 * (size_t)G;
        if (d->kind != FB_AGG_COUNT_STAR && d->kind != FB_AGG_COUNT)
            for (int64_t g = 0; g < G && !nulls; g++)
                nulls = w0[g] == 0;
        FB_FORWARD_IF_ERROR(fb_check_column_out(ctx, &out_aggs[a], rt, G, nulls, where));
    }
    for (size_t a = 0; a < spec->n_aggs; a++) {
        const fb_agg_desc *d = &spec->aggs[a];
        cl_int op = op_of(d);
        if (d->kind != FB_AGG_SUM || op == GB_SUM_FLOAT)
            continue;
        const uint64_t *w0 = words + a * 3 * (size_t)G, *w1 = w0 + G, *w2 = w1 + G;
        for (int64_t g = 0; g < G; g++) {
            i128 s = exact_sum(op, d->type, w1[g], w2[g]);
            if (w0[g] && (s > INT64_MAX || s < INT64_MIN)) {
                if (x && x->defer_overflow) {
                    x->overflow_group[a] = g;
                    break;
                }
                return fb_set_error(ctx, FB_ERR_OVERFLOW, where, "aggregate %zu (sum of %s) overflows int64 in group %lld",
                                    a, fb_type_name(d->type), (long long)g);
            }
        }
    }
    if (spec->n_keys) {
        size_t kw = fb_type_width(kt);
        if (out_keys->validity)
            memset(out_keys->validity, 0, (size_t)(G + 7) / 8);
        for (int64_t g = 0; g < G; g++) {
            put(out_keys->data, kw, g, g == null_group ? 0 : gkeys[g]);
            if (out_keys->validity)
                set_bit(out_keys->validity, g, g != null_group);
        }
        out_keys->null_count = null_group >= 0;
    }
    for (size_t a = 0; a < spec->n_aggs; a++) {
        const fb_agg_desc *d = &spec->aggs[a];
        cl_int op = op_of(d);
        fb_column_out *o = &out_aggs[a];
        const uint64_t *w0 = words + a * 3 * (size_t)G, *w1 = w0 + G, *w2 = w1 + G;
        if (o->validity)
            memset(o->validity, 0, (size_t)(G + 7) / 8);
        int64_t nulls = 0;
        for (int64_t g = 0; g < G; g++) {
            int64_t nn = (int64_t)w0[g];
            int valid = d->kind == FB_AGG_COUNT_STAR || d->kind == FB_AGG_COUNT || nn != 0;
            double f;
            switch (d->kind) {
            case FB_AGG_COUNT_STAR:
            case FB_AGG_COUNT: ((int64_t *)o->data)[g] = nn; break;
            case FB_AGG_SUM:
                if (op == GB_SUM_FLOAT) {
                    memcpy(&f, &w1[g], 8);
                    ((double *)o->data)[g] = valid ? f : 0.0;
                } else {
                    ((int64_t *)o->data)[g] = valid ? (int64_t)(uint64_t)exact_sum(op, d->type, w1[g], w2[g]) : 0;
                }
                break;
            case FB_AGG_AVG:
                if (op == GB_SUM_FLOAT) {
                    memcpy(&f, &w1[g], 8);
                    ((double *)o->data)[g] = valid ? f / (double)nn : 0.0;
                } else {
                    ((double *)o->data)[g] = valid ? (double)exact_sum(op, d->type, w1[g], w2[g]) / (double)nn : 0.0;
                }
                break;
            default: put(o->data, fb_type_width(d->type), g, valid ? unkey(d->type, (int64_t)w1[g]) : 0); break;
            }
            nulls += !valid;
            if (o->validity)
                set_bit(o->validity, g, valid);
        }
        o->null_count = nulls;
    }
    if (spec->n_keys)
        out_keys->length = G;
    for (size_t a = 0; a < spec->n_aggs; a++)
        out_aggs[a].length = G;
    return FB_OK;
}

/* w[first .. first + n) = value on the device */
static fb_status fill_words(fb_cl_job *j, cl_mem w, cl_ulong first, cl_ulong n, cl_ulong value)
{
    struct fb_cl_state *cl = j->cl;
    const fb_cl_karg args[] = {KARG(w), KARG(first), KARG(n), KARG(value)};
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, cl->gb_fill, "fb_gb_fill", args, 4));
    return fb_cl_job_run(j, cl->gb_fill, "fb_gb_fill", fb_cl_grid_groups(cl, n, cl->wg_group), cl->wg_group);
}

/* Rows per chunk when each row needs `per_row` device bytes: what the budget leaves, at least 1024. */
static fb_status chunk_rows(fb_cl_job *j, size_t per_row, int64_t n, int64_t *rows)
{
    size_t room = fb_cl_job_room(j);
    int64_t r = (int64_t)(room / (per_row ? per_row : 1));
    if (r > n)
        r = n;
    if (r < 1024 && r < n)
        return fb_set_error(j->ctx, FB_ERR_DEVICE_MEMORY, j->where,
                            "the device memory budget (%zu bytes, FB_CL_MEM_BUDGET) leaves %zu bytes: too little for"
                            " chunks of the input",
                            fb_cl_budget(j->cl), room);
    *rows = r;
    return FB_OK;
}

static fb_status run_kernel(fb_cl_job *j, cl_kernel k, const char *name, const fb_cl_karg *args, cl_uint n_args,
                            size_t groups, size_t wg)
{
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, k, name, args, n_args));
    return fb_cl_job_run(j, k, name, groups, wg);
}

/* No key: one group of every row (its result always has one row, as on the CPU). */
static fb_status ungrouped(fb_cl_job *j, const fb_agg_spec *spec, const fb_column *values, int64_t n_rows,
                           fb_column_out *out_aggs, int64_t *n_groups)
{
    struct fb_cl_state *cl = j->cl;
    size_t n_aggs = spec->n_aggs, wg = cl->wg_group;
    cl_ulong G = 1;
    uint64_t words_h[3 * FB_AGG_MAX_AGGS];
    memset(words_h, 0, sizeof words_h);
    const fb_column *scols[FB_CL_STREAM_MAX_COLS];
    int col_of[FB_AGG_MAX_AGGS];
    size_t n_s = 0, per_row = 4;
    for (size_t a = 0; a < n_aggs; a++) {
        col_of[a] = -1;
        if (spec->aggs[a].kind == FB_AGG_COUNT_STAR) {
            words_h[a * 3] = (uint64_t)n_rows; /* no column to read */
            continue;
        }
        for (size_t b = 0; b < n_s && col_of[a] < 0; b++)
            if (scols[b] == &values[spec->aggs[a].input])
                col_of[a] = (int)b;
        if (col_of[a] < 0) {
            col_of[a] = (int)n_s;
            scols[n_s++] = &values[spec->aggs[a].input];
            per_row += 2 * (fb_type_width(spec->aggs[a].type) + 1);
        }
    }
    fb_status st = FB_OK;
    fb_cl_stream stream;
    memset(&stream, 0, sizeof stream);
    if (n_s > 0 && n_rows > 0) {
        cl_mem words, gids;
        int64_t chunk = 1;
        TRY(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, n_aggs * 3 * 8, NULL, &words));
        TRY(fb_cl_job_fill(j, words, 0u, n_aggs * 3 * 8));
        for (size_t a = 0; a < n_aggs; a++) {
            cl_int op = op_of(&spec->aggs[a]);
            if (op == GB_MIN || op == GB_MAX)
                TRY(fill_words(j, words, (cl_ulong)(a * 3 + 1), 1,
                               op == GB_MIN ? 0x7FFFFFFFFFFFFFFFull : 0x8000000000000000ull));
        }
        TRY(chunk_rows(j, per_row, n_rows, &chunk));
        TRY(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)(chunk < 8 ? 8 : chunk) * 4, NULL, &gids));
        TRY(fb_cl_job_fill(j, gids, 0u, (size_t)(chunk < 8 ? 8 : chunk) * 4)); /* every row in group 0 */
        TRY(fb_cl_stream_open(&stream, j, scols, n_s, n_rows, chunk));
        cl->last_chunks = 0;
        for (;;) {
            int64_t r0, m;
            fb_cl_dev_column dc[FB_CL_STREAM_MAX_COLS];
            TRY(fb_cl_stream_next(&stream, &r0, &m, dc));
            if (m == 0)
                break;
            cl_ulong rows = (cl_ulong)m;
            cl_int use_local = 1;
            for (size_t a = 0; a < n_aggs; a++) {
                if (col_of[a] < 0)
                    continue;
                fb_cl_dev_column *v = &dc[col_of[a]];
                cl_int op = op_of(&spec->aggs[a]);
                cl_ulong agg_base = (cl_ulong)(a * 3);
                const fb_cl_karg uargs[] = {KARG(gids),     KARG(rows),         KARG(v->data),   KARG(v->type),
                                            KARG(v->valid), KARG(v->has_valid), KARG(v->voff),   KARG(op),
                                            KARG(G),        KARG(words),        KARG(agg_base),  KARG(use_local),
                                            KLOCAL(8),      KLOCAL(8),          KLOCAL(8)};
                size_t ugroups = fb_cl_grid_groups(cl, rows, wg);
                if (ugroups > (size_t)cl->compute_units * 8)
                    ugroups = (size_t)cl->compute_units * 8;
                TRY(run_kernel(j, cl->gb_update, "fb_gb_update", uargs, 15, ugroups, wg));
            }
            TRY(fb_cl_stream_release(&stream));
            cl->last_chunks++;
        }
        TRY(fb_cl_stream_close(&stream, FB_OK));
        uint64_t dev[3 * FB_AGG_MAX_AGGS];
        TRY(fb_cl_job_read(j, words, CL_TRUE, 0, n_aggs * 3 * 8, dev));
        for (size_t a = 0; a < n_aggs; a++)
            if (spec->aggs[a].kind != FB_AGG_COUNT_STAR)
                memcpy(&words_h[a * 3], &dev[a * 3], 3 * 8);
    } else {
        for (size_t a = 0; a < n_aggs; a++) { /* no value read: min/max of nothing, as the device would */
            cl_int op = op_of(&spec->aggs[a]);
            if (op == GB_MIN || op == GB_MAX)
                words_h[a * 3 + 1] = op == GB_MIN ? 0x7FFFFFFFFFFFFFFFull : 0x8000000000000000ull;
        }
    }
    st = write_results(j->ctx, spec, 1, NULL, -1, words_h, NULL, out_aggs, NULL, j->where);
    if (st == FB_OK)
        *n_groups = 1;
done:
    return fb_cl_stream_close(&stream, st);
}

/* One key column (or none), the whole input on the device. */
static fb_status group_one_key(fb_ctx *ctx, const fb_agg_spec *spec, const fb_column *keys, const fb_column *values,
                               int64_t n_rows, fb_column_out *out_keys, fb_column_out *out_aggs, int64_t *n_groups,
                               gb_extra *x)
{
    for (size_t a = 0; a < spec->n_aggs; a++)
        out_aggs[a].length = out_aggs[a].null_count = 0;
    *n_groups = 0;
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, GB_WHERE);
    if (st != FB_OK)
        return fb_cl_job_close(&j, st);
    struct fb_cl_state *cl = j.cl;
    uint64_t *host = NULL;
    size_t host_bytes = 0;
    fb_cl_stream stream;
    memset(&stream, 0, sizeof stream);
    if (!cl->gb_insert) {
        st = fb_set_error(ctx, FB_ERR_OPENCL, GB_WHERE,
                          "the device lacks cl_khr_int64_base_atomics, cl_khr_int64_extended_atomics or cl_khr_fp64");
        goto done;
    }
    if (spec->n_keys == 0) {
        st = ungrouped(&j, spec, values, n_rows, out_aggs, n_groups);
        goto done;
    }
    if (n_rows == 0) {
        st = write_results(ctx, spec, 0, NULL, -1, NULL, out_keys, out_aggs, x, GB_WHERE);
        goto done;
    }
    size_t wg = cl->wg_group;
    cl_ulong n = (cl_ulong)n_rows;
    cl_ulong cap = pow2_at_least(2 * n < 64 ? 64 : 2 * n), mask = cap - 1, slots = cap + 2;
    size_t kw = fb_type_width(keys->type);
    cl->last_chunks = 0;

    /* 1. the table: keys, first rows */
    cl_mem tkeys, first;
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, (size_t)cap * 8, NULL, &tkeys));
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, (size_t)slots * 4, NULL, &first));
    TRY(fill_words(&j, tkeys, 0, cap, GB_EMPTY));
    TRY(fb_cl_job_fill(&j, first, 0xFFFFFFFFu, (size_t)slots * 4));
    int64_t chunk = 1;
    TRY(chunk_rows(&j, 2 * (kw + 1), n_rows, &chunk));
    const fb_column *kcol[1] = {keys};
    TRY(fb_cl_stream_open(&stream, &j, kcol, 1, n_rows, chunk));
    for (;;) {
        int64_t r0, m;
        fb_cl_dev_column d;
        TRY(fb_cl_stream_next(&stream, &r0, &m, &d));
        if (m == 0)
            break;
        cl_ulong rows = (cl_ulong)m;
        cl_uint base = (cl_uint)r0;
        const fb_cl_karg args[] = {KARG(d.data), KARG(d.type), KARG(d.valid), KARG(d.has_valid), KARG(d.voff),
                                   KARG(rows),   KARG(base),   KARG(tkeys),   KARG(mask),        KARG(first)};
        TRY(run_kernel(&j, cl->gb_insert, "fb_gb_insert", args, 10, fb_cl_grid_groups(cl, rows, wg), wg));
        TRY(fb_cl_stream_release(&stream));
        cl->last_chunks++;
    }
    TRY(fb_cl_stream_close(&stream, FB_OK));

    /* 2. groups numbered by first row */
    cl_mem count, firsts, slot_ids;
    static const cl_uint zero = 0;
    size_t pair_cap = (size_t)(n < slots ? n : slots);
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, sizeof zero, &zero, &count));
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, pair_cap * 4, NULL, &firsts));
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, pair_cap * 4, NULL, &slot_ids));
    const fb_cl_karg cargs[] = {KARG(first), KARG(slots), KARG(count), KARG(firsts), KARG(slot_ids)};
    TRY(run_kernel(&j, cl->gb_collect, "fb_gb_collect", cargs, 5, fb_cl_grid_groups(cl, slots, wg), wg));
    cl_uint groups32 = 0;
    TRY(fb_cl_job_read(&j, count, CL_TRUE, 0, sizeof groups32, &groups32));
    cl_ulong G = groups32;
    if (G == 0 || G > pair_cap) {
        st = fb_set_error(ctx, FB_ERR_INTERNAL, GB_WHERE, "the device found %llu groups in %lld rows",
                          (unsigned long long)G, (long long)n_rows);
        goto done;
    }
    /* whether there is a null group (slot cap) */
    cl_uint special[1];
    TRY(fb_cl_job_read(&j, first, CL_TRUE, (size_t)cap * 4, sizeof special, special));
    fb_cl_job_release(&j, first);
    fb_cl_job_release(&j, count);
    TRY(fb_cl_sort_pairs(&j, firsts, slot_ids, G));
    if (x && x->first_rows) /* the groups' first rows, in group order (fb_cl_job_release drains the queue) */
        TRY(fb_cl_job_read(&j, firsts, CL_FALSE, 0, (size_t)G * 4, x->first_rows));
    cl_mem dense, gkeys;
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, (size_t)slots * 4, NULL, &dense));
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, (size_t)G * 8, NULL, &gkeys));
    const fb_cl_karg dargs[] = {KARG(slot_ids), KARG(G), KARG(tkeys), KARG(cap), KARG(dense), KARG(gkeys)};
    TRY(run_kernel(&j, cl->gb_dense, "fb_gb_dense", dargs, 6, fb_cl_grid_groups(cl, G, wg), wg));
    fb_cl_job_release(&j, firsts);
    fb_cl_job_release(&j, slot_ids);

    /* 3. the aggregates' words: [agg][w0 | w1 | w2][group] */
    size_t n_aggs = spec->n_aggs;
    size_t words_n = n_aggs * 3 * (size_t)G;
    cl_mem words = cl->dummy;
    if (n_aggs) {
        TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, words_n * 8, NULL, &words));
        TRY(fb_cl_job_fill(&j, words, 0u, words_n * 8));
    }
    for (size_t a = 0; a < n_aggs; a++) { /* min and max start from the largest and smallest key */
        cl_int op = op_of(&spec->aggs[a]);
        if (op == GB_MIN || op == GB_MAX)
            TRY(fill_words(&j, words, (cl_ulong)(a * 3 + 1) * G, G,
                           op == GB_MIN ? 0x7FFFFFFFFFFFFFFFull : 0x8000000000000000ull));
    }
    int use_local = G <= FB_CL_GROUP_LOCAL_MAX;
    /* the streamed columns: the key, then each value column read by an aggregate (once) */
    const fb_column *scols[FB_CL_STREAM_MAX_COLS];
    int col_of[FB_AGG_MAX_AGGS];
    size_t n_s = 0;
    size_t per_row = 2 * (kw + 1) + 4;
    scols[n_s++] = keys;
    for (size_t a = 0; a < n_aggs; a++) {
        col_of[a] = -1;
        if (spec->aggs[a].kind == FB_AGG_COUNT_STAR)
            continue;
        for (size_t b = 1; b < n_s && col_of[a] < 0; b++)
            if (scols[b] == &values[spec->aggs[a].input])
                col_of[a] = (int)b;
        if (col_of[a] < 0) {
            col_of[a] = (int)n_s;
            scols[n_s++] = &values[spec->aggs[a].input];
            per_row += 2 * (fb_type_width(spec->aggs[a].type) + 1);
        }
    }
    TRY(chunk_rows(&j, per_row, n_rows, &chunk));
    int phase1_chunks = cl->last_chunks, chunks2 = 0;
    size_t lbytes = use_local ? (size_t)G * 8 : 8;
    cl_mem gids;
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, (size_t)chunk * 4, NULL, &gids));
    TRY(fb_cl_stream_open(&stream, &j, scols, n_s, n_rows, chunk));
    for (;;) {
        int64_t r0, m;
        fb_cl_dev_column dc[FB_CL_STREAM_MAX_COLS];
        TRY(fb_cl_stream_next(&stream, &r0, &m, dc));
        if (m == 0)
            break;
        cl_ulong rows = (cl_ulong)m;
        fb_cl_dev_column *d = &dc[0];
        const fb_cl_karg largs[] = {KARG(d->data), KARG(d->type), KARG(d->valid), KARG(d->has_valid), KARG(d->voff),
                                    KARG(rows),    KARG(tkeys),   KARG(mask),     KARG(dense),        KARG(gids)};
        TRY(run_kernel(&j, cl->gb_lookup, "fb_gb_lookup", largs, 10, fb_cl_grid_groups(cl, rows, wg), wg));
        fb_cl_dev_column none = {cl->dummy, cl->dummy, FB_TYPE_INT64, 0, 0, 0};
        for (size_t a = 0; a < n_aggs; a++) {
            const fb_agg_desc *ad = &spec->aggs[a];
            fb_cl_dev_column *v = col_of[a] < 0 ? &none : &dc[col_of[a]];
            cl_int op = op_of(ad);
            cl_ulong agg_base = (cl_ulong)(a * 3 * (size_t)G);
            const fb_cl_karg uargs[] = {KARG(gids),   KARG(rows),    KARG(v->data),  KARG(v->type),
                                        KARG(v->valid), KARG(v->has_valid), KARG(v->voff), KARG(op),
                                        KARG(G),      KARG(words),   KARG(agg_base), KARG(use_local),
                                        KLOCAL(lbytes), KLOCAL(lbytes), KLOCAL(lbytes)};
            size_t ugroups = fb_cl_grid_groups(cl, rows, wg);
            if (use_local && ugroups > (size_t)cl->compute_units * 8)
                ugroups = (size_t)cl->compute_units * 8; /* few groups: each flushes G words once */
            TRY(run_kernel(&j, cl->gb_update, "fb_gb_update", uargs, 15, ugroups, wg));
        }
        TRY(fb_cl_stream_release(&stream));
        chunks2++;
    }
    TRY(fb_cl_stream_close(&stream, FB_OK));
    cl->last_chunks = chunks2 > phase1_chunks ? chunks2 : phase1_chunks;

    /* 4. results */
    host_bytes = ((size_t)G + words_n) * 8;
    TRY(fb_alloc(ctx, host_bytes, 64, (void **)&host, GB_WHERE));
    TRY(fb_cl_job_read(&j, gkeys, CL_FALSE, 0, (size_t)G * 8, host));
    if (n_aggs)
        TRY(fb_cl_job_read(&j, words, CL_FALSE, 0, words_n * 8, host + G));
    TRY(fb_cl_job_finish(&j));
    int64_t null_group = -1;
    if (special[0] != 0xFFFFFFFFu) {
        cl_uint ng;
        TRY(fb_cl_job_read(&j, dense, CL_TRUE, (size_t)cap * 4, sizeof ng, &ng));
        null_group = ng;
    }
    st = write_results(ctx, spec, (int64_t)G, host, null_group, host + G, out_keys, out_aggs, x, GB_WHERE);
    if (st == FB_OK)
        *n_groups = (int64_t)G;
done:
    fb_cl_stream_close(&stream, st);
    if (host) {
        clFinish(j.cl->queue); /* a read into host may still be queued when a later call failed */
        fb_free(ctx, host, host_bytes);
    }
    return fb_cl_job_close(&j, st);
}

/* Two or more keys: each row's tuple becomes the index of its first row (cl_keys.c, nulls grouping
 * together), the one-key group-by runs on that int64 key (groups still come in the order of their
 * first row, and the key of a group is its first row), and each group's keys are copied from its
 * first row. */
static fb_status group_by_composite(fb_ctx *ctx, const fb_agg_spec *spec, const fb_column *keys,
                                    const fb_column *values, int64_t n_rows, fb_column_out *out_keys,
                                    fb_column_out *out_aggs, int64_t *n_groups, gb_extra *x)
{
    size_t bytes = (size_t)(n_rows > 0 ? n_rows : 1) * 16;
    int64_t *mem = NULL;
    FB_FORWARD_IF_ERROR(fb_alloc(ctx, bytes, 64, (void **)&mem, GB_WHERE));
    int64_t *synth = mem, *firsts = mem + (n_rows > 0 ? n_rows : 1);
    fb_status st = n_rows > 0 ? fb_cl_keys_group(ctx, keys, spec->n_keys, synth, GB_WHERE) : FB_OK;
    int64_t G = 0;
    if (st == FB_OK) {
        fb_type kt = FB_TYPE_INT64;
        fb_agg_spec one = *spec;
        one.n_keys = 1;
        one.key_types = &kt;
        fb_column kc = {.type = FB_TYPE_INT64, .length = n_rows, .data = synth};
        fb_column_out ko = {.type = FB_TYPE_INT64, .capacity = n_rows, .data = firsts};
        gb_extra inner;
        memset(&inner, 0, sizeof inner);
        if (x) {
            inner.defer_overflow = x->defer_overflow;
            memcpy(inner.overflow_group, x->overflow_group, sizeof inner.overflow_group);
        }
        st = group_one_key(ctx, &one, &kc, values, n_rows, &ko, out_aggs, &G, &inner);
        if (x)
            memcpy(x->overflow_group, inner.overflow_group, sizeof inner.overflow_group);
    }
    for (size_t k = 0; k < spec->n_keys && st == FB_OK; k++) {
        const fb_column *c = &keys[k];
        int64_t nulls = 0;
        for (int64_t g = 0; g < G; g++)
            nulls += !fb_column_is_valid(c, firsts[g]);
        st = fb_check_column_out(ctx, &out_keys[k], c->type, G, nulls > 0, GB_WHERE);
        if (st != FB_OK)
            break;
        size_t w = fb_type_width(c->type);
        const char *src = (const char *)c->data + (size_t)c->offset * w;
        if (out_keys[k].validity && G > 0)
            memset(out_keys[k].validity, 0, (size_t)(G + 7) / 8);
        for (int64_t g = 0; g < G; g++) {
            memcpy((char *)out_keys[k].data + (size_t)g * w, src + (size_t)firsts[g] * w, w);
            if (out_keys[k].validity)
                set_bit(out_keys[k].validity, g, fb_column_is_valid(c, firsts[g]));
        }
        out_keys[k].null_count = nulls;
    }
    if (st == FB_OK) {
        for (size_t k = 0; k < spec->n_keys; k++)
            out_keys[k].length = G;
        if (x && x->first_rows)
            for (int64_t g = 0; g < G; g++)
                x->first_rows[g] = (uint32_t)firsts[g];
        *n_groups = G;
    } else {
        for (size_t k = 0; k < spec->n_keys; k++)
            out_keys[k].length = out_keys[k].null_count = 0;
        for (size_t a = 0; a < spec->n_aggs; a++)
            out_aggs[a].length = out_aggs[a].null_count = 0;
        *n_groups = 0;
    }
    fb_free(ctx, mem, bytes);
    return st;
}

/* The whole input on the device at once (the table of every row, and with several keys every row's
 * tuple): the one- or composite-key path. */
static fb_status group_direct(fb_ctx *ctx, const fb_agg_spec *spec, const fb_column *keys, const fb_column *values,
                              int64_t n_rows, fb_column_out *out_keys, fb_column_out *out_aggs, int64_t *n_groups,
                              gb_extra *x)
{
    if (x)
        for (size_t a = 0; a < FB_AGG_MAX_AGGS; a++)
            x->overflow_group[a] = -1;
    if (spec->n_keys > 1)
        return group_by_composite(ctx, spec, keys, values, n_rows, out_keys, out_aggs, n_groups, x);
    return group_one_key(ctx, spec, keys, values, n_rows, out_keys, out_aggs, n_groups, x);
}

/* ---- inputs larger than the device memory budget: hash partitions on the host ----------------------- */

/* Device bytes of the direct path at least (its first buffers: the table's keys and first rows, 2 x
 * rows slots or more; with several keys first the tuples, their null patterns and slots). */
static uint64_t direct_min_bytes(const fb_agg_spec *spec, int64_t n)
{
    uint64_t cap = pow2_at_least(2 * (uint64_t)n < 64 ? 64 : 2 * (uint64_t)n);
    uint64_t one = cap * 12;
    uint64_t comp = spec->n_keys > 1 ? (uint64_t)n * (8 * spec->n_keys + 5) + cap * 8 : 0;
    return one > comp ? one : comp;
}

/* Device bytes the direct path needs for `rows` rows of which a fraction `distinct` are groups: the
 * table (2 x rows slots and more: 12 bytes each), and per group its dense number, key, sort pair and
 * 24 bytes of words per aggregate; several keys need their tuples, null patterns and slots first. */
static uint64_t direct_bytes(const fb_agg_spec *spec, uint64_t rows, double distinct)
{
    double slots = (double)pow2_at_least(2 * rows < 64 ? 64 : 2 * rows);
    double one = 12.0 * slots + (double)rows * distinct * (16.0 + 24.0 * (double)spec->n_aggs);
    double comp = spec->n_keys > 1 ? (double)rows * (8.0 * (double)spec->n_keys + 46.0) : 0.0;
    return (uint64_t)(one > comp ? one : comp);
}

/* Device bytes a part leaves for the chunks of its columns: 1024 rows of the key (8 bytes at most)
 * and every value column read, double-buffered, and their group numbers (chunk_rows()'s least). */
static uint64_t stream_reserve(const fb_column *const *vcols, size_t n_v)
{
    uint64_t per_row = 2 * (8 + 1) + 4;
    for (size_t v = 0; v < n_v; v++)
        per_row += 2 * (fb_type_width(vcols[v]->type) + 1);
    return 1024 * per_row;
}

/* The fraction of distinct hashes among n (linear counting over 2^20 bits of their low bits, 1 when
 * that saturates), from host memory of ctx. */
static fb_status distinct_fraction(fb_ctx *ctx, const uint64_t *h, int64_t n, double *f)
{
    const size_t M = (size_t)1 << 20;
    uint64_t *bits = NULL;
    FB_FORWARD_IF_ERROR(fb_alloc(ctx, M / 8, 64, (void **)&bits, GB_WHERE));
    memset(bits, 0, M / 8);
    for (int64_t i = 0; i < n; i++)
        bits[(h[i] & (M - 1)) >> 6] |= 1ull << (h[i] & 63);
    size_t filled = 0;
    for (size_t w = 0; w < M / 64; w++)
        filled += (size_t)__builtin_popcountll(bits[w]);
    fb_free(ctx, bits, M / 8);
    double g = filled >= M ? (double)n : -(double)M * log1p(-(double)filled / (double)M);
    *f = n > 0 ? g / (double)n : 1.0;
    if (*f > 1.0)
        *f = 1.0;
    return FB_OK;
}

/* The group-by split by the hashes of its keys: each partition's groups, the call's output columns
 * (keys, then aggregates) and the groups' first rows, kept until every partition is done. */
#define GB_MAX_OUT (FB_AGG_MAX_KEYS + FB_AGG_MAX_AGGS)

typedef struct part_block {
    struct part_block *next;
    size_t bytes;
    int64_t G;
} part_block;

typedef struct part_state {
    fb_ctx *ctx;
    const fb_agg_spec *spec;  /* the call's */
    fb_agg_spec pspec;        /* the partitions': aggregates read the gathered value columns */
    fb_agg_desc paggs[FB_AGG_MAX_AGGS];
    const fb_column *keys;
    const fb_column *vcols[FB_AGG_MAX_AGGS]; /* the value columns read, once each */
    size_t n_v;
    const uint64_t *hashes;   /* every row's fb_hash_columns() */
    size_t n_out;
    fb_type out_type[GB_MAX_OUT];
    size_t out_w[GB_MAX_OUT];
    /* scratch for one partition of up to cap rows: gathered inputs, outputs and first rows */
    int64_t cap;
    char *scratch;
    size_t scratch_bytes;
    fb_column in_keys[FB_AGG_MAX_KEYS], in_vals[FB_AGG_MAX_AGGS];
    fb_column_out out[GB_MAX_OUT];
    uint32_t *first;
    /* results */
    part_block *head, **tail;
    int64_t groups;
    int64_t nulls[GB_MAX_OUT];
    int64_t overflow_first[FB_AGG_MAX_AGGS]; /* per aggregate: the smallest first row of an overflowing group */
    int parts;
    size_t budget;
    char why[256]; /* the message of the last part that did not fit */
    double distinct; /* estimated groups per row */
    uint64_t target;  /* device bytes a part's table and groups should take: the budget less the chunks' */
    uint64_t reserve; /* device bytes of a part's chunks */
} part_state;

static size_t align8(size_t b) { return (b + 7) & ~(size_t)7; }

/* Bytes of a block of G groups (without its header): per output column its values and validity, then
 * the first rows. */
static size_t block_bytes(const part_state *ps, int64_t G)
{
    size_t b = 0;
    for (size_t c = 0; c < ps->n_out; c++)
        b += align8((size_t)G * ps->out_w[c]) + align8((size_t)(G + 7) / 8);
    return b + align8((size_t)G * 4);
}

/* Points the columns of a block of capacity G at mem: values and validity per column, first rows. */
static void block_views(const part_state *ps, char *mem, int64_t G, char **data, uint8_t **valid, uint32_t **first)
{
    for (size_t c = 0; c < ps->n_out; c++) {
        data[c] = mem;
        mem += align8((size_t)G * ps->out_w[c]);
        valid[c] = (uint8_t *)mem;
        mem += align8((size_t)(G + 7) / 8);
    }
    *first = (uint32_t *)mem;
}

static void part_free(part_state *ps)
{
    while (ps->head) {
        part_block *b = ps->head;
        ps->head = b->next;
        fb_free(ps->ctx, b, b->bytes);
    }
    if (ps->scratch)
        fb_free(ps->ctx, ps->scratch, ps->scratch_bytes);
    ps->scratch = NULL;
}

/* Scratch for partitions of up to cap rows. */
static fb_status part_scratch(part_state *ps, int64_t cap)
{
    const fb_agg_spec *s = ps->spec;
    size_t in = 0;
    for (size_t k = 0; k < s->n_keys; k++)
        in += align8((size_t)cap * fb_type_width(ps->keys[k].type)) + align8((size_t)(cap + 7) / 8);
    for (size_t v = 0; v < ps->n_v; v++)
        in += align8((size_t)cap * fb_type_width(ps->vcols[v]->type)) + align8((size_t)(cap + 7) / 8);
    ps->cap = cap;
    ps->scratch_bytes = in + block_bytes(ps, cap);
    FB_FORWARD_IF_ERROR(fb_alloc(ps->ctx, ps->scratch_bytes, 64, (void **)&ps->scratch, GB_WHERE));
    char *p = ps->scratch;
    for (size_t k = 0; k < s->n_keys + ps->n_v; k++) {
        fb_column *c = k < s->n_keys ? &ps->in_keys[k] : &ps->in_vals[k - s->n_keys];
        const fb_column *src = k < s->n_keys ? &ps->keys[k] : ps->vcols[k - s->n_keys];
        *c = (fb_column){.type = src->type, .data = p};
        p += align8((size_t)cap * fb_type_width(src->type));
        c->validity = src->validity ? (uint8_t *)p : NULL;
        p += align8((size_t)(cap + 7) / 8);
    }
    char *data[GB_MAX_OUT];
    uint8_t *valid[GB_MAX_OUT];
    block_views(ps, p, cap, data, valid, &ps->first);
    for (size_t c = 0; c < ps->n_out; c++)
        ps->out[c] = (fb_column_out){ps->out_type[c], cap, data[c], valid[c], 0, 0};
    return FB_OK;
}

/* Groups the m input rows rows[0..m) (ascending) on the device and keeps the result as a block. */
static fb_status part_group(part_state *ps, const uint32_t *rows, int64_t m)
{
    fb_ctx *ctx = ps->ctx;
    const fb_agg_spec *s = ps->spec;
    for (size_t k = 0; k < s->n_keys + ps->n_v; k++) {
        fb_column *c = k < s->n_keys ? &ps->in_keys[k] : &ps->in_vals[k - s->n_keys];
        const fb_column *src = k < s->n_keys ? &ps->keys[k] : ps->vcols[k - s->n_keys];
        fb_column_out o = {c->type, ps->cap, (void *)c->data, (uint8_t *)c->validity, 0, 0};
        FB_FORWARD_IF_ERROR(fb_compact(ctx, src, rows, m, &o));
        c->length = m;
    }
    gb_extra x;
    memset(&x, 0, sizeof x);
    x.first_rows = ps->first;
    x.defer_overflow = 1;
    int64_t G = 0;
    FB_FORWARD_IF_ERROR(group_direct(ctx, &ps->pspec, ps->in_keys, ps->in_vals, m, ps->out, ps->out + s->n_keys, &G,
                                     &x));
    ps->parts++;
    if (G == 0)
        return FB_OK;
    size_t bytes = sizeof(part_block) + block_bytes(ps, G);
    part_block *b = NULL;
    FB_FORWARD_IF_ERROR(fb_alloc(ctx, bytes, 64, (void **)&b, GB_WHERE));
    b->next = NULL;
    b->bytes = bytes;
    b->G = G;
    char *data[GB_MAX_OUT];
    uint8_t *valid[GB_MAX_OUT];
    uint32_t *first;
    block_views(ps, (char *)(b + 1), G, data, valid, &first);
    for (size_t c = 0; c < ps->n_out; c++) {
        memcpy(data[c], ps->out[c].data, (size_t)G * ps->out_w[c]);
        memcpy(valid[c], ps->out[c].validity, (size_t)(G + 7) / 8);
        ps->nulls[c] += ps->out[c].null_count;
    }
    for (int64_t g = 0; g < G; g++)
        first[g] = rows[ps->first[g]];
    for (size_t a = 0; a < s->n_aggs; a++)
        if (x.overflow_group[a] >= 0 && (int64_t)first[x.overflow_group[a]] < ps->overflow_first[a])
            ps->overflow_first[a] = first[x.overflow_group[a]];
    *ps->tail = b;
    ps->tail = &b->next;
    ps->groups += G;
    return FB_OK;
}

/* Splits rows[0..m) (ascending input rows, NULL: all m rows) by `bits` more hash bits below the top
 * `used` ones, and groups each part; a part over the budget is split again, while splitting shrinks
 * it. */
static fb_status part_split(part_state *ps, const uint32_t *rows, int64_t m, int used, int bits)
{
    fb_ctx *ctx = ps->ctx;
    int64_t P = (int64_t)1 << bits;
    size_t hb = rows ? (size_t)m * 8 : 0, pb = (size_t)m * 4, ob = (size_t)(P + 1) * 8;
    uint64_t *h = NULL;
    uint32_t *perm = NULL;
    int64_t *off = NULL;
    fb_status st = FB_OK;
    if (hb)
        st = fb_alloc(ctx, hb, 64, (void **)&h, GB_WHERE);
    if (st == FB_OK)
        st = fb_alloc(ctx, pb, 64, (void **)&perm, GB_WHERE);
    if (st == FB_OK)
        st = fb_alloc(ctx, ob, 64, (void **)&off, GB_WHERE);
    if (st == FB_OK && rows)
        for (int64_t i = 0; i < m; i++)
            h[i] = ps->hashes[rows[i]];
    if (st == FB_OK)
        st = fb_radix_partition(ctx, rows ? h : ps->hashes, m, bits, 64 - used - bits, off, perm);
    if (h) {
        fb_free(ctx, h, hb);
        h = NULL;
    }
    if (st == FB_OK && rows) /* partition-local positions become input rows (still ascending) */
        for (int64_t i = 0; i < m; i++)
            perm[i] = rows[perm[i]];
    int64_t largest = 0;
    for (int64_t q = 0; st == FB_OK && q < P; q++)
        if (off[q + 1] - off[q] > largest)
            largest = off[q + 1] - off[q];
    if (st == FB_OK && !ps->scratch)
        st = part_scratch(ps, largest);
    for (int64_t q = 0; st == FB_OK && q < P; q++) {
        int64_t mq = off[q + 1] - off[q];
        if (mq == 0)
            continue;
        if (mq < m) { /* smaller than the part that did not fit */
            st = part_group(ps, perm + off[q], mq);
            if (st != FB_ERR_DEVICE_MEMORY)
                continue;
            snprintf(ps->why, sizeof ps->why, "%s", fb_last_error(ctx));
            if (2 * direct_bytes(ps->spec, (uint64_t)mq, 1.0) + ps->reserve < ps->budget) {
                /* even every row its own group fits twice over: a smaller part would not help */
                st = fb_set_error(ctx, FB_ERR_DEVICE_MEMORY, GB_WHERE,
                                  "a part of %lld rows does not fit the device memory budget (%zu bytes, "
                                  "FB_CL_MEM_BUDGET): %s",
                                  (long long)mq, ps->budget, ps->why);
                break;
            }
        }
        /* over the budget (or not split by these bits): split it by more hash bits while there are any */
        int u = used + bits;
        if (u >= 64) {
            st = fb_set_error(ctx, FB_ERR_DEVICE_MEMORY, GB_WHERE,
                              "the group-by does not fit the device memory budget (%zu bytes, FB_CL_MEM_BUDGET) even"
                              " in hash partitions: %lld rows share one key hash (equal keys): %s",
                              ps->budget, (long long)mq, ps->why);
            break;
        }
        uint64_t need = direct_bytes(ps->spec, (uint64_t)mq, ps->distinct);
        int b2 = 1;
        while (b2 < FB_RADIX_MAX_BITS && b2 < 64 - u && need >> b2 > ps->target)
            b2++;
        st = part_split(ps, perm + off[q], mq, u, b2);
    }
    if (off)
        fb_free(ctx, off, ob);
    if (perm)
        fb_free(ctx, perm, pb);
    return st;
}

/* The result of every block in the order of the groups' first rows, as the CPU gives it. */
static fb_status part_write(part_state *ps, int64_t n_rows, fb_column_out *out_keys, fb_column_out *out_aggs,
                            int64_t *n_groups)
{
    fb_ctx *ctx = ps->ctx;
    const fb_agg_spec *s = ps->spec;
    int64_t G = ps->groups;
    for (size_t c = 0; c < ps->n_out; c++) { /* as fb_agg_result checks: keys, aggregates, then overflow */
        fb_column_out *o = c < s->n_keys ? &out_keys[c] : &out_aggs[c - s->n_keys];
        FB_FORWARD_IF_ERROR(fb_check_column_out(ctx, o, ps->out_type[c], G, ps->nulls[c] > 0, GB_WHERE));
    }
    /* rank of a first row among all first rows: a bitmap and the counts before each of its words */
    size_t words = (size_t)(n_rows + 63) / 64, rb = words * 16;
    uint64_t *bits = NULL;
    FB_FORWARD_IF_ERROR(fb_alloc(ctx, rb, 64, (void **)&bits, GB_WHERE));
    uint64_t *before = bits + words;
    memset(bits, 0, words * 8);
    char *data[GB_MAX_OUT];
    uint8_t *valid[GB_MAX_OUT];
    uint32_t *first;
    for (part_block *b = ps->head; b; b = b->next) {
        block_views(ps, (char *)(b + 1), b->G, data, valid, &first);
        for (int64_t g = 0; g < b->G; g++)
            bits[first[g] >> 6] |= 1ull << (first[g] & 63);
    }
    uint64_t at = 0;
    for (size_t w = 0; w < words; w++) {
        before[w] = at;
        at += (uint64_t)__builtin_popcountll(bits[w]);
    }
#define RANK(r) ((int64_t)(before[(r) >> 6] + (uint64_t)__builtin_popcountll(bits[(r) >> 6] & ((1ull << ((r) & 63)) - 1))))
    fb_status st = FB_OK;
    for (size_t a = 0; a < s->n_aggs; a++)
        if (ps->overflow_first[a] < INT64_MAX) {
            uint32_t r = (uint32_t)ps->overflow_first[a];
            st = fb_set_error(ctx, FB_ERR_OVERFLOW, GB_WHERE, "aggregate %zu (sum of %s) overflows int64 in group %lld",
                              a, fb_type_name(s->aggs[a].type), (long long)RANK(r));
            break;
        }
    if (st == FB_OK) {
        for (size_t c = 0; c < ps->n_out; c++) {
            fb_column_out *o = c < s->n_keys ? &out_keys[c] : &out_aggs[c - s->n_keys];
            if (o->validity && G > 0)
                memset(o->validity, 0, (size_t)(G + 7) / 8);
        }
        for (part_block *b = ps->head; b; b = b->next) {
            block_views(ps, (char *)(b + 1), b->G, data, valid, &first);
            for (int64_t g = 0; g < b->G; g++) {
                int64_t d = RANK(first[g]);
                for (size_t c = 0; c < ps->n_out; c++) {
                    fb_column_out *o = c < s->n_keys ? &out_keys[c] : &out_aggs[c - s->n_keys];
                    size_t w = ps->out_w[c];
                    memcpy((char *)o->data + (size_t)d * w, data[c] + (size_t)g * w, w);
                    if (o->validity)
                        set_bit(o->validity, d, (valid[c][g >> 3] >> (g & 7)) & 1);
                }
            }
        }
        for (size_t c = 0; c < ps->n_out; c++) {
            fb_column_out *o = c < s->n_keys ? &out_keys[c] : &out_aggs[c - s->n_keys];
            o->null_count = ps->nulls[c];
            o->length = G;
        }
        *n_groups = G;
    }
#undef RANK
    fb_free(ctx, bits, rb);
    return st;
}

/* The group-by in hash partitions of its rows (fb_hash_columns(), fb_radix_partition() by the top
 * `bits` bits, then more bits for a part still over the budget), one device group-by per part, the
 * groups put back in the order of their first rows. */
static fb_status group_partitioned(fb_ctx *ctx, const fb_agg_spec *spec, const fb_column *keys,
                                   const fb_column *values, int64_t n_rows, fb_column_out *out_keys,
                                   fb_column_out *out_aggs, int64_t *n_groups, size_t budget, const char *why)
{
    part_state ps;
    memset(&ps, 0, sizeof ps);
    snprintf(ps.why, sizeof ps.why, "%s", why);
    ps.ctx = ctx;
    ps.spec = spec;
    ps.keys = keys;
    ps.budget = budget;
    ps.tail = &ps.head;
    ps.pspec = *spec;
    ps.pspec.aggs = ps.paggs;
    for (size_t a = 0; a < spec->n_aggs; a++) {
        ps.paggs[a] = spec->aggs[a];
        ps.overflow_first[a] = INT64_MAX;
        if (spec->aggs[a].kind == FB_AGG_COUNT_STAR) {
            ps.paggs[a].input = 0;
            continue;
        }
        const fb_column *v = &values[spec->aggs[a].input];
        size_t i = 0;
        while (i < ps.n_v && ps.vcols[i] != v)
            i++;
        if (i == ps.n_v)
            ps.vcols[ps.n_v++] = v;
        ps.paggs[a].input = (int)i;
    }
    for (size_t k = 0; k < spec->n_keys; k++) {
        ps.out_type[ps.n_out] = spec->key_types[k];
        ps.out_w[ps.n_out++] = fb_type_width(spec->key_types[k]);
    }
    for (size_t a = 0; a < spec->n_aggs; a++) {
        const fb_agg_desc *d = &spec->aggs[a];
        fb_agg_result_type(d->kind, d->kind == FB_AGG_COUNT_STAR ? FB_TYPE_INT64 : d->type, &ps.out_type[ps.n_out]);
        ps.out_w[ps.n_out] = fb_type_width(ps.out_type[ps.n_out]);
        ps.n_out++;
    }
    size_t hb = (size_t)n_rows * 8;
    uint64_t *hashes = NULL;
    fb_status st = fb_alloc(ctx, hb, 64, (void **)&hashes, GB_WHERE);
    if (st == FB_OK)
        st = fb_hash_columns(ctx, keys, spec->n_keys, hashes, n_rows);
    ps.hashes = hashes;
    if (st == FB_OK)
        st = distinct_fraction(ctx, hashes, n_rows, &ps.distinct);
    /* the rest of the budget goes to the chunks of a part's columns (at least half of it) */
    uint64_t reserve = stream_reserve(ps.vcols, ps.n_v);
    ps.reserve = reserve;
    ps.target = budget > 2 * reserve ? budget - reserve : budget / 2;
    uint64_t need = direct_bytes(spec, (uint64_t)n_rows, ps.distinct);
    int bits = 1;
    while (bits < FB_RADIX_MAX_BITS && need >> bits > ps.target)
        bits++;
    if (st == FB_OK)
        st = part_split(&ps, NULL, n_rows, 0, bits);
    if (hashes)
        fb_free(ctx, hashes, hb);
    if (st == FB_OK)
        st = part_write(&ps, n_rows, out_keys, out_aggs, n_groups);
    part_free(&ps);
    if (st == FB_OK) {
        pthread_mutex_lock(&ctx->cl_lock);
        if (ctx->cl)
            ctx->cl->last_partitions = ps.parts;
        pthread_mutex_unlock(&ctx->cl_lock);
    }
    return st;
}

fb_status fb_cl_group_by(fb_ctx *ctx, const fb_agg_spec *spec, const fb_column *keys, const fb_column *values,
                         size_t n_values, int64_t n_rows, fb_column_out *out_keys, fb_column_out *out_aggs,
                         int64_t *n_groups)
{
    FB_FORWARD_IF_ERROR(check_args(ctx, spec, keys, values, n_values, n_rows, out_keys, out_aggs, n_groups, GB_WHERE));
    for (size_t k = 0; k < spec->n_keys; k++)
        out_keys[k].length = out_keys[k].null_count = 0;
    for (size_t a = 0; a < spec->n_aggs; a++)
        out_aggs[a].length = out_aggs[a].null_count = 0;
    *n_groups = 0;
    pthread_mutex_lock(&ctx->cl_lock);
    fb_status st = fb_cl_acquire(ctx, GB_WHERE);
    size_t budget = st == FB_OK ? fb_cl_budget(ctx->cl) : 0;
    int can = st == FB_OK && ctx->cl->gb_insert != NULL;
    if (st == FB_OK)
        ctx->cl->last_partitions = 0;
    pthread_mutex_unlock(&ctx->cl_lock);
    FB_FORWARD_IF_ERROR(st);
    /* a table of every row that cannot fit goes to hash partitions at once; one that may not, after
     * the device said so */
    int partition = can && spec->n_keys > 0 && n_rows >= 2;
    char why[256];
    if (!partition || direct_min_bytes(spec, n_rows) <= budget) {
        st = group_direct(ctx, spec, keys, values, n_rows, out_keys, out_aggs, n_groups, NULL);
        if (st != FB_ERR_DEVICE_MEMORY || !partition)
            return st;
        snprintf(why, sizeof why, "%s", fb_last_error(ctx));
    } else {
        snprintf(why, sizeof why, "a table of %lld rows needs %llu bytes", (long long)n_rows,
                 (unsigned long long)direct_min_bytes(spec, n_rows));
    }
    return group_partitioned(ctx, spec, keys, values, n_rows, out_keys, out_aggs, n_groups, budget, why);
}
