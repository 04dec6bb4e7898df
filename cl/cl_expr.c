/* cl_expr.c - the OpenCL twins of fb_expr.h (fb_cl_expr_* in fb_cl.h): the same argument checks and
 * statuses as kernels/expr.c, then upload, the kernels of expr.cl, and read back. Results are those
 * of the CPU functions bit for bit (see expr.cl for floats). Each call is one job (cl_job.c): it
 * holds ctx->cl_lock, leaves the queue drained and releases every buffer on every path. A row-aligned
 * call over the device memory budget is one job per chunk of rows (expr_chunks). */
#include "fb_cl_internal.h"
#include "fb_expr_internal.h"
#include "fb_kernels_common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t nbytes(int64_t n) { return (n + 7) / 8; }

/* Argument checks: fb_expr_check_* of kernels/expr.c (fb_expr_internal.h), shared with the CPU functions. */

/* ---- shared device steps --------------------------------------------------------------------------- */

static size_t groups_for(const struct fb_cl_state *cl, uint64_t items) { return fb_cl_grid_groups(cl, items, cl->wg_expr); }

static fb_status run(fb_cl_job *j, cl_kernel k, const char *name, const fb_cl_karg *args, cl_uint n_args,
                     uint64_t items)
{
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, k, name, args, n_args));
    return fb_cl_job_run(j, k, name, groups_for(j->cl, items), j->cl->wg_expr);
}

/* The error flag of a call: one uint, 0 until a kernel finds an index out of range. */
static fb_status err_flag(fb_cl_job *j, cl_mem *err)
{
    static const cl_uint zero = 0;
    return fb_cl_job_buffer(j, CL_MEM_READ_WRITE, sizeof zero, &zero, err);
}

/* *mask = the bitmap (uint words) of the rows in sel_in, or the dummy buffer with *has_mask 0
 * without a selection; an index ≥ length sets the error flag. */
static fb_status sel_mask(fb_cl_job *j, const uint32_t *sel_in, int64_t n_in, int64_t length, cl_mem err,
                          cl_mem *mask, cl_int *has_mask)
{
    *mask = j->cl->dummy;
    *has_mask = 0;
    if (!sel_in)
        return FB_OK;
    *has_mask = 1;
    size_t words = (size_t)((length + 31) / 32);
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, words ? words * 4 : 4, NULL, mask));
    FB_FORWARD_IF_ERROR(fb_cl_job_fill(j, *mask, 0u, words ? words * 4 : 4));
    if (n_in == 0)
        return FB_OK;
    cl_mem sel;
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_ONLY, (size_t)n_in * sizeof *sel_in, sel_in, &sel));
    cl_ulong n = (cl_ulong)n_in, len = (cl_ulong)length;
    const fb_cl_karg args[] = {KARG(sel), KARG(n), KARG(len), KARG(*mask), KARG(err)};
    return run(j, j->cl->ex_sel_mask, "fb_expr_sel_mask", args, 5, n);
}

/* flags[0..n) hold 0/1 (flags has n + 1 uints): *dev_out = the entries of src (or the indices) whose
 * flag is 1, in order, and *count their number; *dev_out is NULL when there is none. */
static fb_status compact_flags(fb_cl_job *j, cl_mem flags, uint64_t n, cl_mem src, cl_mem *dev_out, int64_t *count)
{
    *dev_out = NULL;
    *count = 0;
    FB_FORWARD_IF_ERROR(fb_cl_scan(j, flags, n));
    cl_uint total = 0;
    FB_FORWARD_IF_ERROR(fb_cl_job_read(j, flags, CL_TRUE, (size_t)n * sizeof(cl_uint), sizeof total, &total));
    if (total > n)
        return fb_set_error(j->ctx, FB_ERR_INTERNAL, j->where, "device selected %u of %llu candidates", total,
                            (unsigned long long)n);
    if (total == 0)
        return FB_OK;
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)total * sizeof(cl_uint), NULL, dev_out));
    cl_ulong n64 = n;
    cl_int has_src = src != NULL;
    cl_mem s = src ? src : j->cl->dummy;
    const fb_cl_karg args[] = {KARG(flags), KARG(n64), KARG(s), KARG(has_src), KARG(*dev_out)};
    FB_FORWARD_IF_ERROR(run(j, j->cl->ex_scatter, "fb_expr_scatter", args, 5, n));
    *count = total;
    return FB_OK;
}

/* The first entry of sel ≥ length, for the message of a call the device found one in. */
static uint32_t first_bad(const uint32_t *sel, int64_t n, int64_t length)
{
    for (int64_t j = 0; j < n; j++)
        if (sel[j] >= length)
            return sel[j];
    return 0;
}

static fb_status read_err(fb_cl_job *j, cl_mem err, cl_uint *flag)
{
    return fb_cl_job_read(j, err, CL_TRUE, 0, sizeof *flag, flag);
}

/* ---- inputs over the device memory budget: row-aligned calls in chunks -------------------------------- */

/* A row-aligned call (boolean, arithmetic and cast outputs) whose rows do not fit the device memory
 * budget runs as several calls on chunks of rows (a multiple of 8, so every bitmap starts on a byte):
 * column views from the chunk's first row, the chunk's slice of the outputs, and the entries of sel_in
 * in the chunk, rebased to it. An entry of sel_in past the column fails the call before any chunk. */
typedef struct expr_chunks {
    int64_t n, chunk;     /* rows; rows per chunk, 0 when the call fits the budget whole */
    uint32_t *sel;        /* sel_in's entries by chunk, rebased (from ctx), and each chunk's start in it */
    int64_t *start;
    size_t sel_bytes, start_bytes;
    fb_ctx *ctx;
} expr_chunks;

/* Device bytes of the call's fixed buffers (flags, an IN set, bitmap rounding) kept out of the chunks. */
#define EXPR_FIXED_BYTES (4096 + FB_SELECT_IN_MAX * 8)

static void chunks_free(expr_chunks *c)
{
    if (c->sel)
        fb_free(c->ctx, c->sel, c->sel_bytes);
    if (c->start)
        fb_free(c->ctx, c->start, c->start_bytes);
    c->sel = NULL;
    c->start = NULL;
}

/* Plans the chunks of n rows needing about per_row device bytes each (sel_in's entries, 4 bytes, count
 * in per_row). *bad is set when sel_in holds an entry ≥ n (then no chunks are planned). */
static fb_status chunks_plan(fb_ctx *ctx, int64_t n, size_t per_row, const uint32_t *sel_in, int64_t n_in,
                             expr_chunks *c, int *bad, const char *where)
{
    memset(c, 0, sizeof *c);
    c->ctx = ctx;
    c->n = n;
    *bad = 0;
    pthread_mutex_lock(&ctx->cl_lock);
    fb_status st = fb_cl_acquire(ctx, where);
    size_t budget = st == FB_OK ? fb_cl_budget(ctx->cl) : 0;
    if (st == FB_OK)
        ctx->cl->last_chunks = 1;
    pthread_mutex_unlock(&ctx->cl_lock);
    FB_FORWARD_IF_ERROR(st);
    uint64_t room = budget > EXPR_FIXED_BYTES ? budget - EXPR_FIXED_BYTES : 0;
    if ((uint64_t)n * per_row <= room)
        return FB_OK;
    int64_t chunk = (int64_t)(room / per_row) & ~(int64_t)7;
    if (chunk < 1024)
        return fb_set_error(ctx, FB_ERR_DEVICE_MEMORY, where,
                            "the device memory budget (%zu bytes, FB_CL_MEM_BUDGET) is too small for chunks of 1024 "
                            "rows of %zu bytes",
                            budget, per_row);
    for (int64_t j = 0; j < n_in; j++)
        if (sel_in[j] >= n) {
            *bad = 1;
            return FB_OK;
        }
    int64_t k = (n + chunk - 1) / chunk;
    c->chunk = chunk;
    if (!sel_in)
        return FB_OK;
    c->start_bytes = (size_t)(k + 1) * 8;
    c->sel_bytes = (size_t)(n_in > 0 ? n_in : 1) * 4;
    st = fb_alloc(ctx, c->start_bytes, 64, (void **)&c->start, where);
    if (st == FB_OK)
        st = fb_alloc(ctx, c->sel_bytes, 64, (void **)&c->sel, where);
    if (st != FB_OK) {
        chunks_free(c);
        return st;
    }
    memset(c->start, 0, c->start_bytes); /* a counting sort of the entries by chunk, in their order */
    for (int64_t j = 0; j < n_in; j++)
        c->start[sel_in[j] / (uint64_t)chunk + 1]++;
    for (int64_t q = 0; q < k; q++)
        c->start[q + 1] += c->start[q];
    for (int64_t j = 0; j < n_in; j++) {
        int64_t q = (int64_t)(sel_in[j] / (uint64_t)chunk);
        c->sel[c->start[q]++] = sel_in[j] - (uint32_t)(q * chunk);
    }
    for (int64_t q = k; q > 0; q--) /* start[q] ran to chunk q's end: back to its start */
        c->start[q] = c->start[q - 1];
    c->start[0] = 0;
    return FB_OK;
}

/* Chunk q: its first row, rows and sel_in entries (sel NULL without sel_in). */
static void chunk_at(const expr_chunks *c, int64_t q, int64_t *r0, int64_t *m, const uint32_t **sel, int64_t *n_sel)
{
    *r0 = q * c->chunk;
    *m = c->n - *r0 < c->chunk ? c->n - *r0 : c->chunk;
    *sel = c->sel ? c->sel + c->start[q] : NULL;
    *n_sel = c->sel ? c->start[q + 1] - c->start[q] : 0;
}

static int64_t chunks_count(const expr_chunks *c) { return (c->n + c->chunk - 1) / c->chunk; }

/* A column view of rows [r0, r0 + m) of col. */
static fb_column col_rows(const fb_column *col, int64_t r0, int64_t m)
{
    fb_column v = *col;
    v.offset += r0;
    v.length = m;
    return v;
}

static void note_chunks(fb_ctx *ctx, int64_t k)
{
    pthread_mutex_lock(&ctx->cl_lock);
    if (ctx->cl)
        ctx->cl->last_chunks = (int)k;
    pthread_mutex_unlock(&ctx->cl_lock);
}

/* ---- comparisons, BETWEEN, IN ------------------------------------------------------------------------ */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Boolean of `a op b` (b non-NULL) or of the predicate p over a, in one job. Arguments already checked. */
static fb_status run_bool_one(fb_ctx *ctx, const fb_column *a, const fb_column *b, fb_cmp op, const fb_pred *p,
                          const uint32_t *sel_in, int64_t n_in, fb_bool *out, const char *where)
{
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    int64_t n = a->length;
    if (st != FB_OK)
        return fb_cl_job_close(&j, st);
    if (n == 0) {
        st = sel_in && n_in > 0 ? fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where,
                                               "sel_in holds an index ≥ the column's 0 rows")
                                : FB_OK;
        return fb_cl_job_close(&j, st);
    }
    struct fb_cl_state *cl = j.cl;
    size_t nb = (size_t)nbytes(n);
    cl_mem err, mask, dbits, dvalid;
    cl_int has_mask;
    fb_cl_dev_column da, db;
    int64_t set[FB_SELECT_IN_MAX]; /* uploaded without blocking: lives until the job is drained */
    TRY(err_flag(&j, &err));
    TRY(sel_mask(&j, sel_in, n_in, n, err, &mask, &has_mask));
    TRY(fb_cl_upload_column(&j, a, &da));
    TRY(fb_cl_job_buffer(&j, CL_MEM_WRITE_ONLY, nb, NULL, &dbits));
    TRY(fb_cl_job_buffer(&j, CL_MEM_WRITE_ONLY, nb, NULL, &dvalid));
    cl_ulong len = (cl_ulong)n;
    if (b) {
        TRY(fb_cl_upload_column(&j, b, &db));
        cl_int cop = (cl_int)op;
        const fb_cl_karg args[] = {KARG(da.data),  KARG(da.type), KARG(da.valid), KARG(da.has_valid),
                                   KARG(da.voff),  KARG(db.data), KARG(db.valid), KARG(db.has_valid),
                                   KARG(db.voff),  KARG(len),     KARG(cop),      KARG(mask),
                                   KARG(has_mask), KARG(dbits),   KARG(dvalid)};
        TRY(run(&j, cl->ex_cmp_cols, "fb_expr_cmp_cols", args, 15, nb));
    } else {
        /* the IN set sorted and without duplicates, for a binary search on the device */
        cl_uint n_set = 0;
        cl_mem dset = cl->dummy;
        if (p->kind == FB_PRED_IN) {
            memcpy(set, p->set, (size_t)p->n_set * sizeof *set);
            qsort(set, (size_t)p->n_set, sizeof *set, cmp_i64);
            for (int64_t i = 0; i < p->n_set; i++)
                if (n_set == 0 || set[n_set - 1] != set[i])
                    set[n_set++] = set[i];
            TRY(fb_cl_job_buffer(&j, CL_MEM_READ_ONLY, n_set * sizeof *set, set, &dset));
        }
        cl_int kind = (cl_int)p->kind, negate = p->negate != 0;
        cl_long lo = p->lo, hi = p->hi;
        const fb_cl_karg args[] = {KARG(da.data), KARG(da.type), KARG(da.valid), KARG(da.has_valid),
                                   KARG(da.voff), KARG(len),     KARG(mask),     KARG(has_mask),
                                   KARG(kind),    KARG(negate),  KARG(lo),       KARG(hi),
                                   KARG(dset),    KARG(n_set),   KARG(dbits),    KARG(dvalid)};
        TRY(run(&j, cl->ex_pred, "fb_expr_pred", args, 16, nb));
    }
    cl_uint bad = 0;
    TRY(read_err(&j, err, &bad));
    if (bad) {
        memset(out->bits, 0, nb);
        memset(out->validity, 0, nb);
        st = fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where, "sel_in holds an index ≥ the column's %lld rows",
                          (long long)n);
        goto done;
    }
    TRY(fb_cl_job_read(&j, dbits, CL_FALSE, 0, nb, out->bits));
    TRY(fb_cl_job_read(&j, dvalid, CL_FALSE, 0, nb, out->validity));
    TRY(fb_cl_job_finish(&j));
done:
    return fb_cl_job_close(&j, st);
}

/* run_bool_one(), in chunks of rows when the call does not fit the device memory budget. */
static fb_status run_bool(fb_ctx *ctx, const fb_column *a, const fb_column *b, fb_cmp op, const fb_pred *p,
                          const uint32_t *sel_in, int64_t n_in, fb_bool *out, const char *where)
{
    int64_t n = a->length;
    size_t w = fb_type_width(a->type), per_row = (b ? 2 : 1) * w + 4 + 1;
    expr_chunks c;
    int bad = 0;
    FB_FORWARD_IF_ERROR(chunks_plan(ctx, n, per_row, sel_in, sel_in ? n_in : 0, &c, &bad, where));
    if (bad) {
        memset(out->bits, 0, (size_t)nbytes(n));
        memset(out->validity, 0, (size_t)nbytes(n));
        return fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where, "sel_in holds an index ≥ the column's %lld rows",
                            (long long)n);
    }
    if (c.chunk == 0)
        return run_bool_one(ctx, a, b, op, p, sel_in, n_in, out, where);
    fb_status st = FB_OK;
    int64_t k = chunks_count(&c);
    for (int64_t q = 0; q < k && st == FB_OK; q++) {
        int64_t r0, m, ns;
        const uint32_t *sel;
        chunk_at(&c, q, &r0, &m, &sel, &ns);
        fb_column ca = col_rows(a, r0, m), cb = b ? col_rows(b, r0, m) : ca;
        fb_bool o = {m, out->bits + r0 / 8, out->validity + r0 / 8};
        st = run_bool_one(ctx, &ca, b ? &cb : NULL, op, p, sel, ns, &o, where);
    }
    chunks_free(&c);
    if (st == FB_OK)
        note_chunks(ctx, k);
    return st;
}

fb_status fb_cl_expr_cmp(fb_ctx *ctx, const fb_column *col, fb_cmp op, const void *value, const uint32_t *sel_in,
                         int64_t n_in, fb_bool *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_bool_args(ctx, col, sel_in, n_in, out, __func__));
    fb_pred p;
    FB_FORWARD_IF_ERROR(fb_pred_make_cmp(ctx, col->type, op, value, &p, __func__));
    return run_bool(ctx, col, NULL, op, &p, sel_in, n_in, out, __func__);
}

fb_status fb_cl_expr_between(fb_ctx *ctx, const fb_column *col, const void *lo, const void *hi,
                             const uint32_t *sel_in, int64_t n_in, fb_bool *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_bool_args(ctx, col, sel_in, n_in, out, __func__));
    fb_pred p;
    FB_FORWARD_IF_ERROR(fb_pred_make_range(ctx, col->type, lo, hi, &p, __func__));
    return run_bool(ctx, col, NULL, FB_CMP_EQ, &p, sel_in, n_in, out, __func__);
}

fb_status fb_cl_expr_in(fb_ctx *ctx, const fb_column *col, const void *values, int64_t n_values,
                        const uint32_t *sel_in, int64_t n_in, fb_bool *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_bool_args(ctx, col, sel_in, n_in, out, __func__));
    int64_t keys[FB_SELECT_IN_MAX];
    fb_pred p;
    FB_FORWARD_IF_ERROR(fb_pred_make_in(ctx, col->type, values, n_values, keys, &p, __func__));
    return run_bool(ctx, col, NULL, FB_CMP_EQ, &p, sel_in, n_in, out, __func__);
}

fb_status fb_cl_expr_cmp_cols(fb_ctx *ctx, const fb_column *a, fb_cmp op, const fb_column *b,
                              const uint32_t *sel_in, int64_t n_in, fb_bool *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_bool_args(ctx, a, sel_in, n_in, out, __func__));
    FB_FORWARD_IF_ERROR(fb_expr_check_pair(ctx, a, b, __func__));
    FB_RETURN_ERROR_IF((unsigned)op > FB_CMP_GE, ctx, FB_ERR_INVALID_ARG, "unknown comparison operator %d", (int)op);
    return run_bool(ctx, a, b, op, NULL, sel_in, n_in, out, __func__);
}

/* The selection of checked arguments in one job. */
static fb_status select_cols_one(fb_ctx *ctx, const fb_column *a, fb_cmp op, const fb_column *b,
                                 const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t *n_out)
{
    static const char where[] = "fb_cl_expr_select_cols";
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    uint64_t n_cand = (uint64_t)(sel_in ? n_in : a->length);
    if (st != FB_OK)
        return fb_cl_job_close(&j, st);
    if (n_cand == 0) {
        *n_out = 0;
        return fb_cl_job_close(&j, FB_OK);
    }
    struct fb_cl_state *cl = j.cl;
    cl_mem err, sel = cl->dummy, flags, res;
    fb_cl_dev_column da, db;
    TRY(err_flag(&j, &err));
    TRY(fb_cl_upload_column(&j, a, &da));
    TRY(fb_cl_upload_column(&j, b, &db));
    if (sel_in)
        TRY(fb_cl_job_buffer(&j, CL_MEM_READ_ONLY, (size_t)n_in * sizeof *sel_in, sel_in, &sel));
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, (size_t)(n_cand + 1) * sizeof(cl_uint), NULL, &flags));
    cl_int cop = (cl_int)op, has_sel = sel_in != NULL;
    cl_ulong len = (cl_ulong)a->length, nc = n_cand;
    const fb_cl_karg args[] = {KARG(da.data), KARG(da.type),      KARG(da.valid), KARG(da.has_valid),
                               KARG(da.voff), KARG(db.data),      KARG(db.valid), KARG(db.has_valid),
                               KARG(db.voff), KARG(len),          KARG(cop),      KARG(sel),
                               KARG(has_sel), KARG(nc),           KARG(flags),    KARG(err)};
    TRY(run(&j, cl->ex_cols_flags, "fb_expr_cols_flags", args, 16, n_cand));
    cl_uint bad = 0;
    TRY(read_err(&j, err, &bad));
    if (bad) {
        st = fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where, "sel_in holds an index ≥ the columns' %lld rows",
                          (long long)a->length);
        goto done;
    }
    int64_t cnt;
    TRY(compact_flags(&j, flags, n_cand, sel_in ? sel : NULL, &res, &cnt));
    if (cnt > 0)
        TRY(fb_cl_job_read(&j, res, CL_TRUE, 0, (size_t)cnt * sizeof *sel_out, sel_out));
    *n_out = cnt;
done:
    return fb_cl_job_close(&j, st);
}

/* Adds r0 to sel[0..n). */
static void rebase_out(uint32_t *sel, int64_t n, int64_t r0)
{
    for (int64_t j = 0; j < n; j++)
        sel[j] += (uint32_t)r0;
}

fb_status fb_cl_expr_select_cols(fb_ctx *ctx, const fb_column *a, fb_cmp op, const fb_column *b,
                                 const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t capacity,
                                 int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_select_cols(ctx, a, op, b, sel_in, n_in, sel_out, capacity, n_out, __func__));
    int64_t n = a->length;
    size_t per_row = 2 * fb_type_width(a->type) + 12 + 1;
    expr_chunks c;
    int bad = 0;
    FB_FORWARD_IF_ERROR(chunks_plan(ctx, n, per_row, sel_in, sel_in ? n_in : 0, &c, &bad, __func__));
    if (bad)
        return fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, __func__, "sel_in holds an index ≥ the columns' %lld rows",
                            (long long)n);
    if (c.chunk == 0)
        return select_cols_one(ctx, a, op, b, sel_in, n_in, sel_out, n_out);
    fb_status st = FB_OK;
    int64_t k = chunks_count(&c), total = 0;
    for (int64_t q = 0; q < k && st == FB_OK; q++) {
        int64_t r0, m, ns, got = 0;
        const uint32_t *sel;
        chunk_at(&c, q, &r0, &m, &sel, &ns);
        if (sel && ns == 0)
            continue;
        fb_column ca = col_rows(a, r0, m), cb = col_rows(b, r0, m);
        st = select_cols_one(ctx, &ca, op, &cb, sel, ns, sel_out + total, &got);
        if (st == FB_OK) {
            rebase_out(sel_out + total, got, r0);
            total += got;
        }
    }
    chunks_free(&c);
    if (st == FB_OK) {
        *n_out = total;
        note_chunks(ctx, k);
    }
    return st;
}

/* ---- logic -------------------------------------------------------------------------------------------- */

static fb_status run_logic_one(fb_ctx *ctx, int op, const fb_bool *a, const fb_bool *b, fb_bool *out,
                               const char *where)
{
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    int64_t n = a->length;
    if (st != FB_OK || n == 0)
        return fb_cl_job_close(&j, st);
    struct fb_cl_state *cl = j.cl;
    size_t nb = (size_t)nbytes(n);
    cl_mem ta, va = cl->dummy, tb = cl->dummy, vb = cl->dummy, dbits, dvalid;
    cl_int has_va = a->validity != NULL, has_vb = b && b->validity, cop = op;
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_ONLY, nb, a->bits, &ta));
    if (has_va)
        TRY(fb_cl_job_buffer(&j, CL_MEM_READ_ONLY, nb, a->validity, &va));
    if (b)
        TRY(fb_cl_job_buffer(&j, CL_MEM_READ_ONLY, nb, b->bits, &tb));
    if (has_vb)
        TRY(fb_cl_job_buffer(&j, CL_MEM_READ_ONLY, nb, b->validity, &vb));
    TRY(fb_cl_job_buffer(&j, CL_MEM_WRITE_ONLY, nb, NULL, &dbits));
    TRY(fb_cl_job_buffer(&j, CL_MEM_WRITE_ONLY, nb, NULL, &dvalid));
    cl_ulong len = (cl_ulong)n;
    const fb_cl_karg args[] = {KARG(cop),    KARG(ta),  KARG(va),    KARG(has_va), KARG(tb),
                               KARG(vb),     KARG(has_vb), KARG(len), KARG(dbits), KARG(dvalid)};
    TRY(run(&j, cl->ex_logic, "fb_expr_logic", args, 10, nb));
    /* out may alias a or b: the reads run after the uploads on the in-order queue */
    TRY(fb_cl_job_read(&j, dbits, CL_FALSE, 0, nb, out->bits));
    TRY(fb_cl_job_read(&j, dvalid, CL_FALSE, 0, nb, out->validity));
    TRY(fb_cl_job_finish(&j));
done:
    return fb_cl_job_close(&j, st);
}

/* run_logic_one(), in chunks of rows when the call does not fit the device memory budget. */
static fb_status run_logic(fb_ctx *ctx, int op, const fb_bool *a, const fb_bool *b, fb_bool *out, const char *where)
{
    expr_chunks c;
    int bad = 0;
    FB_FORWARD_IF_ERROR(chunks_plan(ctx, a->length, 1, NULL, 0, &c, &bad, where));
    if (c.chunk == 0)
        return run_logic_one(ctx, op, a, b, out, where);
    fb_status st = FB_OK;
    int64_t k = chunks_count(&c);
    for (int64_t q = 0; q < k && st == FB_OK; q++) {
        int64_t r0, m, ns;
        const uint32_t *sel;
        chunk_at(&c, q, &r0, &m, &sel, &ns);
        fb_bool ca = {m, a->bits + r0 / 8, a->validity ? a->validity + r0 / 8 : NULL};
        fb_bool cb = b ? (fb_bool){m, b->bits + r0 / 8, b->validity ? b->validity + r0 / 8 : NULL} : ca;
        fb_bool o = {m, out->bits + r0 / 8, out->validity + r0 / 8};
        st = run_logic_one(ctx, op, &ca, b ? &cb : NULL, &o, where);
    }
    chunks_free(&c);
    if (st == FB_OK)
        note_chunks(ctx, k);
    return st;
}

fb_status fb_cl_expr_and(fb_ctx *ctx, const fb_bool *a, const fb_bool *b, fb_bool *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_logic(ctx, a, b, out, __func__));
    return run_logic(ctx, 0, a, b, out, __func__);
}

fb_status fb_cl_expr_or(fb_ctx *ctx, const fb_bool *a, const fb_bool *b, fb_bool *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_logic(ctx, a, b, out, __func__));
    return run_logic(ctx, 1, a, b, out, __func__);
}

fb_status fb_cl_expr_not(fb_ctx *ctx, const fb_bool *a, fb_bool *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_logic(ctx, a, NULL, out, __func__));
    return run_logic(ctx, 2, a, NULL, out, __func__);
}

/* The selection of checked arguments in one job. */
static fb_status bool_to_sel_one(fb_ctx *ctx, const fb_bool *a, const uint32_t *sel_in, int64_t n_in,
                                 uint32_t *sel_out, int64_t *n_out)
{
    static const char where[] = "fb_cl_expr_bool_to_sel";
    int64_t cand = sel_in ? n_in : a->length;
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    if (st != FB_OK)
        return fb_cl_job_close(&j, st);
    int64_t n = a->length;
    if (cand == 0 || (n == 0 && !sel_in)) {
        *n_out = 0;
        return fb_cl_job_close(&j, FB_OK);
    }
    struct fb_cl_state *cl = j.cl;
    size_t nb = (size_t)nbytes(n);
    cl_mem err, bits = cl->dummy, valid = cl->dummy, sel = cl->dummy, flags, res;
    cl_int has_valid = a->validity != NULL && n > 0, has_sel = sel_in != NULL;
    TRY(err_flag(&j, &err));
    if (n > 0)
        TRY(fb_cl_job_buffer(&j, CL_MEM_READ_ONLY, nb, a->bits, &bits));
    if (has_valid)
        TRY(fb_cl_job_buffer(&j, CL_MEM_READ_ONLY, nb, a->validity, &valid));
    if (sel_in)
        TRY(fb_cl_job_buffer(&j, CL_MEM_READ_ONLY, (size_t)n_in * sizeof *sel_in, sel_in, &sel));
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, (size_t)(cand + 1) * sizeof(cl_uint), NULL, &flags));
    cl_ulong len = (cl_ulong)n, nc = (cl_ulong)cand;
    const fb_cl_karg args[] = {KARG(bits),    KARG(valid), KARG(has_valid), KARG(len), KARG(sel),
                               KARG(has_sel), KARG(nc),    KARG(flags),     KARG(err)};
    TRY(run(&j, cl->ex_bool_flags, "fb_expr_bool_flags", args, 9, nc));
    cl_uint bad = 0;
    TRY(read_err(&j, err, &bad));
    if (bad) {
        st = fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where, "sel_in holds %u, a has %lld rows",
                          first_bad(sel_in, n_in, n), (long long)n);
        goto done;
    }
    int64_t cnt;
    TRY(compact_flags(&j, flags, nc, sel_in ? sel : NULL, &res, &cnt));
    if (cnt > 0)
        TRY(fb_cl_job_read(&j, res, CL_TRUE, 0, (size_t)cnt * sizeof *sel_out, sel_out));
    *n_out = cnt;
done:
    return fb_cl_job_close(&j, st);
}

fb_status fb_cl_expr_bool_to_sel(fb_ctx *ctx, const fb_bool *a, const uint32_t *sel_in, int64_t n_in,
                                 uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_bool_to_sel(ctx, a, sel_in, n_in, sel_out, capacity, n_out, __func__));
    int64_t n = a->length;
    expr_chunks c;
    int bad = 0;
    FB_FORWARD_IF_ERROR(chunks_plan(ctx, n, 13, sel_in, sel_in ? n_in : 0, &c, &bad, __func__));
    if (bad)
        return fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, __func__, "sel_in holds %u, a has %lld rows",
                            first_bad(sel_in, n_in, n), (long long)n);
    if (c.chunk == 0)
        return bool_to_sel_one(ctx, a, sel_in, n_in, sel_out, n_out);
    fb_status st = FB_OK;
    int64_t k = chunks_count(&c), total = 0;
    for (int64_t q = 0; q < k && st == FB_OK; q++) {
        int64_t r0, m, ns, got = 0;
        const uint32_t *sel;
        chunk_at(&c, q, &r0, &m, &sel, &ns);
        if (sel && ns == 0)
            continue;
        fb_bool ca = {m, a->bits + r0 / 8, a->validity ? a->validity + r0 / 8 : NULL};
        st = bool_to_sel_one(ctx, &ca, sel, ns, sel_out + total, &got);
        if (st == FB_OK) {
            rebase_out(sel_out + total, got, r0);
            total += got;
        }
    }
    chunks_free(&c);
    if (st == FB_OK) {
        *n_out = total;
        note_chunks(ctx, k);
    }
    return st;
}

/* ---- selection-vector logic ------------------------------------------------------------------------ */

/* Entries of x (x_host[0..n_x), or 0..n_x-1 when NULL) whose membership in y equals `want`, left on
 * the device in *res (NULL when none) with their number in *cnt; an entry ≥ length sets the flag err. */
static fb_status member(fb_cl_job *j, cl_mem x, int has_x, uint64_t n_x, cl_mem y, uint64_t n_y, int want,
                        uint64_t length, cl_mem err, cl_mem *res, int64_t *cnt)
{
    cl_mem flags;
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)(n_x + 1) * sizeof(cl_uint), NULL, &flags));
    cl_int hx = has_x;
    cl_ulong nx = n_x, ny = n_y, len = length;
    cl_uint w = (cl_uint)want;
    const fb_cl_karg args[] = {KARG(x), KARG(hx), KARG(nx), KARG(y), KARG(ny), KARG(w), KARG(len), KARG(flags), KARG(err)};
    FB_FORWARD_IF_ERROR(run(j, j->cl->ex_member_flags, "fb_expr_member_flags", args, 9, n_x));
    return compact_flags(j, flags, n_x, has_x ? x : NULL, res, cnt);
}

static fb_status upload_sel(fb_cl_job *j, const uint32_t *s, int64_t n, cl_mem *m)
{
    *m = j->cl->dummy;
    if (n == 0)
        return FB_OK;
    return fb_cl_job_buffer(j, CL_MEM_READ_ONLY, (size_t)n * sizeof *s, s, m);
}

fb_status fb_cl_expr_sel_and(fb_ctx *ctx, const uint32_t *a, int64_t n_a, const uint32_t *b, int64_t n_b,
                             uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(
        fb_expr_check_merge(ctx, a, n_a, b, n_b, sel_out, capacity, n_a < n_b ? n_a : n_b, n_out, __func__));
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, __func__);
    if (st != FB_OK || n_a == 0 || n_b == 0) {
        if (st == FB_OK)
            *n_out = 0;
        return fb_cl_job_close(&j, st);
    }
    cl_mem da, db, err, res;
    int64_t cnt;
    TRY(err_flag(&j, &err));
    TRY(upload_sel(&j, a, n_a, &da));
    TRY(upload_sel(&j, b, n_b, &db));
    TRY(member(&j, da, 1, (uint64_t)n_a, db, (uint64_t)n_b, 1, UINT64_MAX, err, &res, &cnt));
    if (cnt > 0)
        TRY(fb_cl_job_read(&j, res, CL_TRUE, 0, (size_t)cnt * sizeof *sel_out, sel_out));
    *n_out = cnt;
done:
    return fb_cl_job_close(&j, st);
}

fb_status fb_cl_expr_sel_or(fb_ctx *ctx, const uint32_t *a, int64_t n_a, const uint32_t *b, int64_t n_b,
                            uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_merge(ctx, a, n_a, b, n_b, sel_out, capacity, n_a + n_b, n_out, __func__));
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, __func__);
    if (st != FB_OK || n_a + n_b == 0) {
        if (st == FB_OK)
            *n_out = 0;
        return fb_cl_job_close(&j, st);
    }
    struct fb_cl_state *cl = j.cl;
    cl_mem da, db, err, rest = cl->dummy, res;
    int64_t n_rest = n_b;
    TRY(err_flag(&j, &err));
    TRY(upload_sel(&j, a, n_a, &da));
    TRY(upload_sel(&j, b, n_b, &db));
    if (n_a > 0 && n_b > 0) /* b's entries that a lacks: the two parts are then disjoint */
        TRY(member(&j, db, 1, (uint64_t)n_b, da, (uint64_t)n_a, 0, UINT64_MAX, err, &rest, &n_rest));
    else
        rest = db;
    if (!rest)
        rest = cl->dummy;
    uint64_t total = (uint64_t)(n_a + n_rest);
    TRY(fb_cl_job_buffer(&j, CL_MEM_WRITE_ONLY, (size_t)total * sizeof(cl_uint), NULL, &res));
    cl_ulong na = (cl_ulong)n_a, nr = (cl_ulong)n_rest;
    const fb_cl_karg args[] = {KARG(da), KARG(na), KARG(rest), KARG(nr), KARG(res)};
    TRY(run(&j, cl->ex_merge, "fb_expr_merge", args, 5, total));
    TRY(fb_cl_job_read(&j, res, CL_TRUE, 0, (size_t)total * sizeof *sel_out, sel_out));
    *n_out = (int64_t)total;
done:
    return fb_cl_job_close(&j, st);
}

fb_status fb_cl_expr_sel_not(fb_ctx *ctx, const uint32_t *a, int64_t n_a, int64_t length, const uint32_t *sel_in,
                             int64_t n_in, uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_ctx(ctx, __func__));
    FB_FORWARD_IF_ERROR(fb_expr_check_sorted(ctx, a, n_a, "a", __func__));
    FB_RETURN_ERROR_IF(length < 0 || length > FB_MORSEL_MAX_ROWS, ctx, FB_ERR_INVALID_ARG, "length is %lld",
                       (long long)length);
    FB_FORWARD_IF_ERROR(fb_expr_check_sel(ctx, sel_in, n_in, __func__));
    FB_RETURN_ERROR_IF(!n_out, ctx, FB_ERR_INVALID_ARG, "n_out must not be NULL");
    int64_t dom = sel_in ? n_in : length;
    FB_RETURN_ERROR_IF(dom > 0 && !sel_out, ctx, FB_ERR_INVALID_ARG, "sel_out must not be NULL");
    FB_RETURN_ERROR_IF(capacity < dom, ctx, FB_ERR_CAPACITY, "sel_out holds %lld entries, the domain has %lld rows",
                       (long long)capacity, (long long)dom);
    FB_RETURN_ERROR_IF(n_a > 0 && a[n_a - 1] >= length, ctx, FB_ERR_OUT_OF_RANGE,
                       "a holds %u, the morsel has %lld rows", a[n_a - 1], (long long)length);
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, __func__);
    if (st != FB_OK || dom == 0) {
        if (st == FB_OK)
            *n_out = 0;
        return fb_cl_job_close(&j, st);
    }
    cl_mem da, dsel, err, res;
    int64_t cnt;
    TRY(err_flag(&j, &err));
    TRY(upload_sel(&j, a, n_a, &da));
    TRY(upload_sel(&j, sel_in, sel_in ? n_in : 0, &dsel));
    TRY(member(&j, dsel, sel_in != NULL, (uint64_t)dom, da, (uint64_t)n_a, 0, (uint64_t)length, err, &res, &cnt));
    cl_uint bad = 0;
    TRY(read_err(&j, err, &bad));
    if (bad) {
        st = fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, __func__, "sel_in holds %u, the morsel has %lld rows",
                          first_bad(sel_in, n_in, length), (long long)length);
        goto done;
    }
    if (cnt > 0)
        TRY(fb_cl_job_read(&j, res, CL_TRUE, 0, (size_t)cnt * sizeof *sel_out, sel_out));
    *n_out = cnt;
done:
    return fb_cl_job_close(&j, st);
}

/* ---- arithmetic and casts ------------------------------------------------------------------------- */


/* Uploads the validity bitmap of column c's n rows (from its offset), or binds the dummy. */
static fb_status upload_validity(fb_cl_job *j, const fb_column *c, int64_t n, cl_mem *m, cl_int *has, cl_ulong *voff)
{
    *m = j->cl->dummy;
    *has = 0;
    *voff = 0;
    if (!c || !c->validity)
        return FB_OK;
    *voff = (cl_ulong)(c->offset & 7);
    *has = 1;
    return fb_cl_job_buffer(j, CL_MEM_READ_ONLY, (size_t)((*voff + (uint64_t)n + 7) >> 3),
                            c->validity + (size_t)(c->offset >> 3), m);
}

/* Computes the output validity (a's AND b's AND sel_in's) on the device into *dvalid (*has 1), or
 * binds the dummy (*has 0) when out has no validity buffer (then every row is valid). */
static fb_status out_validity(fb_cl_job *j, const fb_column *a, const fb_column *b, const uint32_t *sel_in,
                              int64_t n_in, const fb_column_out *out, int64_t n, cl_mem err, cl_mem *dvalid,
                              cl_int *has)
{
    *dvalid = j->cl->dummy;
    *has = 0;
    if (!out->validity)
        return FB_OK;
    cl_mem mask, va, vb;
    cl_int has_mask, has_va, has_vb;
    cl_ulong voa, vob;
    FB_FORWARD_IF_ERROR(sel_mask(j, sel_in, n_in, n, err, &mask, &has_mask));
    FB_FORWARD_IF_ERROR(upload_validity(j, a, n, &va, &has_va, &voa));
    FB_FORWARD_IF_ERROR(upload_validity(j, b, n, &vb, &has_vb, &vob));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)nbytes(n), NULL, dvalid));
    cl_ulong len = (cl_ulong)n;
    const fb_cl_karg args[] = {KARG(va),   KARG(has_va),   KARG(voa), KARG(vb), KARG(has_vb),
                               KARG(vob),  KARG(mask),     KARG(has_mask), KARG(len), KARG(*dvalid)};
    FB_FORWARD_IF_ERROR(run(j, j->cl->ex_validity, "fb_expr_validity", args, 10, (uint64_t)nbytes(n)));
    *has = 1;
    return FB_OK;
}

static int64_t count_nulls(const uint8_t *valid, int64_t n)
{
    int64_t ones = 0;
    for (int64_t b = 0; b < nbytes(n); b++)
        ones += __builtin_popcount(valid[b]);
    return n - ones;
}

static fb_status need_fp64(fb_cl_job *j, cl_kernel k)
{
    if (k)
        return FB_OK;
    return fb_set_error(j->ctx, FB_ERR_OPENCL, j->where,
                        "the OpenCL device lacks cl_khr_fp64, which the arithmetic and cast kernels need");
}

/* The arithmetic kernel over device values da (and db, or the constant `value`, left of da with
 * value_left), output validity dvalid (has_valid) computed before, into dout; dbad receives the first
 * overflowing row. *a_const: whether the constant is the left operand. */
static fb_status arith_kernel(fb_cl_job *j, fb_arith op, fb_type t, cl_mem da, cl_mem db, const void *value,
                              int value_left, cl_mem dvalid, cl_int has_valid, int64_t n, cl_mem dout, cl_mem dbad,
                              cl_int *a_const_out)
{
    struct fb_cl_state *cl = j->cl;
    size_t w = fb_type_width(t);
    cl_ulong cval = 0;
    if (!db)
        memcpy(&cval, value, w);
    cl_mem pa = da, pb = db ? db : cl->dummy;
    cl_int a_const = 0, b_const = !db;
    cl_ulong ca = 0, cb = cval;
    if (!db && value_left) {
        pa = cl->dummy;
        pb = da;
        a_const = 1;
        b_const = 0;
        ca = cval;
        cb = 0;
    }
    *a_const_out = a_const;
    cl_int cop = (cl_int)op, ct = (cl_int)t;
    cl_ulong len = (cl_ulong)n;
    const fb_cl_karg args[] = {KARG(cop), KARG(ct),        KARG(pa),  KARG(a_const), KARG(ca),   KARG(pb), KARG(b_const),
                               KARG(cb),  KARG(dvalid),    KARG(has_valid), KARG(len), KARG(dout), KARG(dbad)};
    return run(j, cl->ex_arith, "fb_expr_arith", args, 13, len);
}

/* The cast kernel over device values din (type from) into dout (type to); dvalid (has_valid) computed before. */
static fb_status cast_kernel(fb_cl_job *j, cl_mem din, fb_type from_t, fb_type to_t, cl_mem dvalid, cl_int has_valid,
                             int64_t n, cl_mem dout, cl_mem dbad)
{
    cl_int from = (cl_int)from_t, to = (cl_int)to_t;
    cl_ulong len = (cl_ulong)n;
    const fb_cl_karg args[] = {KARG(din),       KARG(from), KARG(to),   KARG(dvalid),
                               KARG(has_valid), KARG(len),  KARG(dout), KARG(dbad)};
    return run(j, j->cl->ex_cast, "fb_expr_cast", args, 8, len);
}

/* Output validity of a dense result over device columns a and b (b may be NULL): their AND, or the
 * dummy (*has 0) when neither has a validity bitmap. */
static fb_status dev_validity(fb_cl_job *j, const fb_cl_dev_column *a, const fb_cl_dev_column *b, int64_t n,
                              cl_mem *dvalid, cl_int *has)
{
    *dvalid = j->cl->dummy;
    *has = 0;
    if (!a->has_valid && !(b && b->has_valid))
        return FB_OK;
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)nbytes(n), NULL, dvalid));
    cl_mem va = a->valid, vb = b ? b->valid : j->cl->dummy, mask = j->cl->dummy;
    cl_int has_va = a->has_valid, has_vb = b ? b->has_valid : 0, has_mask = 0;
    cl_ulong voa = a->voff, vob = b ? b->voff : 0, len = (cl_ulong)n;
    const fb_cl_karg args[] = {KARG(va),   KARG(has_va),   KARG(voa), KARG(vb), KARG(has_vb),
                               KARG(vob),  KARG(mask),     KARG(has_mask), KARG(len), KARG(*dvalid)};
    FB_FORWARD_IF_ERROR(run(j, j->cl->ex_validity, "fb_expr_validity", args, 10, (uint64_t)nbytes(n)));
    *has = 1;
    return FB_OK;
}

fb_status fb_cl_expr_arith_dev(fb_cl_job *j, fb_arith op, const fb_cl_dev_column *a, const fb_cl_dev_column *b,
                               const void *value, int value_left, int64_t n, cl_mem bad, fb_cl_dev_column *out)
{
    FB_FORWARD_IF_ERROR(need_fp64(j, j->cl->ex_arith));
    fb_type t = (fb_type)a->type;
    memset(out, 0, sizeof *out);
    out->type = a->type;
    out->length = (cl_ulong)n;
    out->valid = j->cl->dummy;
    if (n == 0)
        return FB_OK;
    FB_FORWARD_IF_ERROR(dev_validity(j, a, b, n, &out->valid, &out->has_valid));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)n * fb_type_width(t), NULL, &out->data));
    cl_int a_const = 0;
    return arith_kernel(j, op, t, a->data, b ? b->data : NULL, value, value_left, out->valid, out->has_valid, n,
                        out->data, bad, &a_const);
}

fb_status fb_cl_expr_cast_dev(fb_cl_job *j, const fb_cl_dev_column *in, fb_type to, int64_t n, cl_mem bad,
                              fb_cl_dev_column *out)
{
    FB_FORWARD_IF_ERROR(need_fp64(j, j->cl->ex_cast));
    memset(out, 0, sizeof *out);
    out->type = (cl_int)to;
    out->length = (cl_ulong)n;
    out->valid = j->cl->dummy;
    if (n == 0)
        return FB_OK;
    FB_FORWARD_IF_ERROR(dev_validity(j, in, NULL, n, &out->valid, &out->has_valid));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)n * fb_type_width(to), NULL, &out->data));
    return cast_kernel(j, in->data, (fb_type)in->type, to, out->valid, out->has_valid, n, out->data, bad);
}

/* The arithmetic of checked arguments in one job; an overflow names row row_base + its row. */
static fb_status arith_one(fb_ctx *ctx, fb_arith op, const fb_column *a, const fb_column *b, const void *value,
                           int value_left, const uint32_t *sel_in, int64_t n_in, fb_column_out *out, int64_t row_base,
                           const char *where)
{
    const fb_type t = a->type;
    const int64_t n = a->length;

    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    if (st != FB_OK || n == 0)
        return fb_cl_job_close(&j, st);
    struct fb_cl_state *cl = j.cl;
    TRY(need_fp64(&j, cl->ex_arith));
    size_t w = fb_type_width(t);
    cl_mem err, dvalid, da, db = cl->dummy, dout, dbad;
    cl_int has_valid;
    static const cl_uint none = 0xFFFFFFFFu;
    TRY(err_flag(&j, &err));
    TRY(out_validity(&j, a, b, sel_in, n_in, out, n, err, &dvalid, &has_valid));
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_ONLY, (size_t)n * w, (const char *)a->data + (size_t)a->offset * w, &da));
    if (b)
        TRY(fb_cl_job_buffer(&j, CL_MEM_READ_ONLY, (size_t)n * w, (const char *)b->data + (size_t)b->offset * w, &db));
    TRY(fb_cl_job_buffer(&j, CL_MEM_WRITE_ONLY, (size_t)n * w, NULL, &dout));
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, sizeof none, &none, &dbad));
    cl_int a_const = 0;
    TRY(arith_kernel(&j, op, t, da, b ? db : NULL, value, value_left, dvalid, has_valid, n, dout, dbad, &a_const));
    cl_uint flag = 0, bad = 0;
    TRY(fb_cl_job_read(&j, err, CL_FALSE, 0, sizeof flag, &flag));
    TRY(fb_cl_job_read(&j, dbad, CL_FALSE, 0, sizeof bad, &bad));
    TRY(fb_cl_job_read(&j, dout, CL_FALSE, 0, (size_t)n * w, out->data));
    if (has_valid)
        TRY(fb_cl_job_read(&j, dvalid, CL_FALSE, 0, (size_t)nbytes(n), out->validity));
    TRY(fb_cl_job_finish(&j));
    if (flag) {
        st = fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where, "sel_in holds an index ≥ the column's %lld rows",
                          (long long)n);
        goto done;
    }
    if (bad != 0xFFFFFFFFu) {
        int64_t x, y, r = bad;
        const char *xa = a_const ? (const char *)value : (const char *)a->data + (size_t)(a->offset + r) * w;
        const char *yb = b ? (const char *)b->data + (size_t)(b->offset + r) * w
                       : a_const ? (const char *)a->data + (size_t)(a->offset + r) * w : (const char *)value;
        if (t == FB_TYPE_INT32) {
            int32_t x32, y32;
            memcpy(&x32, xa, 4);
            memcpy(&y32, yb, 4);
            x = x32;
            y = y32;
        } else {
            memcpy(&x, xa, 8);
            memcpy(&y, yb, 8);
        }
        st = fb_set_error(ctx, FB_ERR_OVERFLOW, where, "%s overflows at row %lld: %" PRId64 " %s %" PRId64,
                          fb_type_name(t), (long long)(row_base + r), x, fb_expr_arith_name(op), y);
        goto done;
    }
    out->null_count = has_valid ? count_nulls(out->validity, n) : 0;
    out->length = n;
done:
    return fb_cl_job_close(&j, st);
}

/* Rows [r0, r0 + m) of out as an output of m rows (r0 a multiple of 8). */
static fb_column_out out_rows(const fb_column_out *out, int64_t r0, int64_t m)
{
    size_t w = fb_type_width(out->type);
    fb_column_out o = {out->type, m, (char *)out->data + (size_t)r0 * w,
                       out->validity ? out->validity + r0 / 8 : NULL, 0, 0};
    return o;
}

static fb_status arith(fb_ctx *ctx, fb_arith op, const fb_column *a, const fb_column *b, const void *value,
                       int value_left, const uint32_t *sel_in, int64_t n_in, fb_column_out *out, const char *where)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_arith(ctx, op, a, b, value, sel_in, n_in, out, where));
    int64_t n = a->length;
    size_t w = fb_type_width(a->type), per_row = (b ? 3 : 2) * w + 4 + 1;
    expr_chunks c;
    int bad = 0;
    FB_FORWARD_IF_ERROR(chunks_plan(ctx, n, per_row, sel_in, sel_in ? n_in : 0, &c, &bad, where));
    if (bad)
        return fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where, "sel_in holds an index ≥ the column's %lld rows",
                            (long long)n);
    if (c.chunk == 0)
        return arith_one(ctx, op, a, b, value, value_left, sel_in, n_in, out, 0, where);
    fb_status st = FB_OK;
    int64_t k = chunks_count(&c), nulls = 0;
    for (int64_t q = 0; q < k && st == FB_OK; q++) {
        int64_t r0, m, ns;
        const uint32_t *sel;
        chunk_at(&c, q, &r0, &m, &sel, &ns);
        fb_column ca = col_rows(a, r0, m), cb = b ? col_rows(b, r0, m) : ca;
        fb_column_out o = out_rows(out, r0, m);
        st = arith_one(ctx, op, &ca, b ? &cb : NULL, value, value_left, sel, ns, &o, r0, where);
        nulls += o.null_count;
    }
    chunks_free(&c);
    if (st == FB_OK) {
        out->null_count = nulls;
        out->length = n;
        note_chunks(ctx, k);
    }
    return st;
}

fb_status fb_cl_expr_arith(fb_ctx *ctx, fb_arith op, const fb_column *a, const fb_column *b, const uint32_t *sel_in,
                           int64_t n_in, fb_column_out *out)
{
    if (!b)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, __func__, "b must not be NULL");
    return arith(ctx, op, a, b, NULL, 0, sel_in, n_in, out, __func__);
}

fb_status fb_cl_expr_arith_const(fb_ctx *ctx, fb_arith op, const fb_column *col, const void *value, int value_left,
                                 const uint32_t *sel_in, int64_t n_in, fb_column_out *out)
{
    return arith(ctx, op, col, NULL, value, value_left, sel_in, n_in, out, __func__);
}

/* The cast of checked arguments in one job; an out-of-range value names row row_base + its row. */
static fb_status cast_one(fb_ctx *ctx, const fb_column *in, const uint32_t *sel_in, int64_t n_in, fb_column_out *out,
                          int64_t row_base)
{
    static const char where[] = "fb_cl_expr_cast";
    const int64_t n = in->length;
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    if (st != FB_OK || n == 0)
        return fb_cl_job_close(&j, st);
    struct fb_cl_state *cl = j.cl;
    TRY(need_fp64(&j, cl->ex_cast));
    size_t wi = fb_type_width(in->type), wo = fb_type_width(out->type);
    cl_mem err, dvalid, din, dout, dbad;
    cl_int has_valid;
    static const cl_uint none = 0xFFFFFFFFu;
    TRY(err_flag(&j, &err));
    TRY(out_validity(&j, in, NULL, sel_in, n_in, out, n, err, &dvalid, &has_valid));
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_ONLY, (size_t)n * wi, (const char *)in->data + (size_t)in->offset * wi, &din));
    TRY(fb_cl_job_buffer(&j, CL_MEM_WRITE_ONLY, (size_t)n * wo, NULL, &dout));
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, sizeof none, &none, &dbad));
    TRY(cast_kernel(&j, din, in->type, out->type, dvalid, has_valid, n, dout, dbad));
    cl_uint flag = 0, bad = 0;
    TRY(fb_cl_job_read(&j, err, CL_FALSE, 0, sizeof flag, &flag));
    TRY(fb_cl_job_read(&j, dbad, CL_FALSE, 0, sizeof bad, &bad));
    TRY(fb_cl_job_read(&j, dout, CL_FALSE, 0, (size_t)n * wo, out->data));
    if (has_valid)
        TRY(fb_cl_job_read(&j, dvalid, CL_FALSE, 0, (size_t)nbytes(n), out->validity));
    TRY(fb_cl_job_finish(&j));
    if (flag) {
        st = fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where, "sel_in holds an index ≥ the column's %lld rows",
                          (long long)n);
        goto done;
    }
    if (bad != 0xFFFFFFFFu) {
        char text[64];
        fb_expr_value_text(in->type, (const char *)in->data + (size_t)(in->offset + (int64_t)bad) * wi, text, sizeof text);
        st = fb_set_error(ctx, FB_ERR_OVERFLOW, where, "row %lld: %s value %s is out of range for %s",
                          (long long)(row_base + (int64_t)bad), fb_type_name(in->type), text, fb_type_name(out->type));
        goto done;
    }
    out->null_count = has_valid ? count_nulls(out->validity, n) : 0;
    out->length = n;
done:
    return fb_cl_job_close(&j, st);
}

fb_status fb_cl_expr_cast(fb_ctx *ctx, const fb_column *in, const uint32_t *sel_in, int64_t n_in, fb_column_out *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_cast(ctx, in, sel_in, n_in, out, __func__));
    int64_t n = in->length;
    size_t per_row = fb_type_width(in->type) + fb_type_width(out->type) + 4 + 1;
    expr_chunks c;
    int bad = 0;
    FB_FORWARD_IF_ERROR(chunks_plan(ctx, n, per_row, sel_in, sel_in ? n_in : 0, &c, &bad, __func__));
    if (bad)
        return fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, __func__, "sel_in holds an index ≥ the column's %lld rows",
                            (long long)n);
    if (c.chunk == 0)
        return cast_one(ctx, in, sel_in, n_in, out, 0);
    fb_status st = FB_OK;
    int64_t k = chunks_count(&c), nulls = 0;
    for (int64_t q = 0; q < k && st == FB_OK; q++) {
        int64_t r0, m, ns;
        const uint32_t *sel;
        chunk_at(&c, q, &r0, &m, &sel, &ns);
        fb_column ci = col_rows(in, r0, m);
        fb_column_out o = out_rows(out, r0, m);
        st = cast_one(ctx, &ci, sel, ns, &o, r0);
        nulls += o.null_count;
    }
    chunks_free(&c);
    if (st == FB_OK) {
        out->null_count = nulls;
        out->length = n;
        note_chunks(ctx, k);
    }
    return st;
}
