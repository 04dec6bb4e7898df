/* cl_kernels.c - the OpenCL twins of fb_kernels.h: the same argument checks as the CPU entry points
 * (kernels/fb_kernels_common.h), then upload, launch and read back on the context's device. Each
 * call holds ctx->cl_lock from start to end and leaves the queue drained, so no device work
 * outlives the call and every buffer is released on every path. */
#include "fb_cl_internal.h"
#include "fb_kernels_common.h"

#include <stdlib.h>
#include <string.h>

/* ---- hashing ----------------------------------------------------------------------------------------- */

/* Hashes keys[0..n_keys) into hashes: the first one replaces (or, with combine_first, mixes into)
 * the hashes, the others mix in. Arguments already checked. */
static fb_status run_hash(fb_ctx *ctx, const fb_column *keys, size_t n_keys, uint64_t *hashes, int combine_first,
                          const char *where)
{
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    int64_t n = keys[0].length;
    if (st != FB_OK || n == 0)
        return fb_cl_job_close(&j, st);
    cl_mem h;
    size_t bytes = (size_t)n * sizeof *hashes;
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, bytes, combine_first ? hashes : NULL, &h));
    for (size_t k = 0; k < n_keys; k++) {
        int mark = j.n_mems;
        fb_cl_dev_column d;
        TRY(fb_cl_upload_column(&j, &keys[k], &d));
        cl_ulong rows = (cl_ulong)n;
        cl_int combine = k > 0 || combine_first;
        const fb_cl_karg args[] = {KARG(d.data), KARG(d.type), KARG(d.valid), KARG(d.has_valid), KARG(d.voff),
                             KARG(rows),   KARG(h),      KARG(combine)};
        TRY(fb_cl_job_args(&j, j.cl->hash_rows, "fb_hash_rows", args, 8));
        TRY(fb_cl_job_run(&j, j.cl->hash_rows, "fb_hash_rows", fb_cl_grid_groups(j.cl, rows, j.cl->wg_hash), j.cl->wg_hash));
        if (k + 1 < n_keys)
            fb_cl_job_release_from(&j, mark); /* keep device memory to one key column at a time */
    }
    TRY(fb_cl_job_read(&j, h, CL_TRUE, 0, bytes, hashes));
done:
    return fb_cl_job_close(&j, st);
}

fb_status fb_cl_hash_column(fb_ctx *ctx, const fb_column *key, uint64_t *hashes, int64_t capacity)
{
    FB_RETURN_ERROR_IF(!ctx, NULL, FB_ERR_INVALID_ARG, "ctx must not be NULL");
    FB_FORWARD_IF_ERROR(fb_check_hash_args(ctx, key, hashes, capacity, __func__));
    return run_hash(ctx, key, 1, hashes, 0, __func__);
}

fb_status fb_cl_hash_combine(fb_ctx *ctx, const fb_column *key, uint64_t *hashes, int64_t capacity)
{
    FB_RETURN_ERROR_IF(!ctx, NULL, FB_ERR_INVALID_ARG, "ctx must not be NULL");
    FB_FORWARD_IF_ERROR(fb_check_hash_args(ctx, key, hashes, capacity, __func__));
    return run_hash(ctx, key, 1, hashes, 1, __func__);
}

fb_status fb_cl_hash_columns(fb_ctx *ctx, const fb_column *keys, size_t n_keys, uint64_t *hashes, int64_t capacity)
{
    FB_FORWARD_IF_ERROR(fb_check_hash_columns_args(ctx, keys, n_keys, hashes, capacity, __func__));
    return run_hash(ctx, keys, n_keys, hashes, 0, __func__);
}

/* ---- selection ---------------------------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The selection kernels over a device column: candidates rows 0..n_cand-1 of d, or the n_cand entries of
 * sel_in (has_sel); *out (n_cand uints, owned by the job) receives the selected rows and *n_out their number.
 * set: the IN set sorted and without duplicates (n_set entries, uploaded here). */
static fb_status select_dev(fb_cl_job *j, const fb_cl_dev_column *d, const fb_pred *p, const int64_t *set,
                            cl_uint n_set, cl_mem sel, int has_sel_in, uint64_t n_cand, cl_mem *out, int64_t *n_out)
{
    struct fb_cl_state *cl = j->cl;
    fb_ctx *ctx = j->ctx;
    const char *where = j->where;
    cl_mem dset = cl->dummy, aux;
    fb_status st = FB_OK;
    *n_out = 0;
    if (n_set)
        FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_ONLY, n_set * sizeof *set, set, &dset));
    size_t wg = cl->wg_select;
    cl_uint items = FB_CL_SELECT_ITEMS;
    uint64_t tile = (uint64_t)wg * items;
    cl_ulong groups = (n_cand + tile - 1) / tile;
    /* aux: per-tile counts, then offsets; [groups] the total; [groups + 1] the error flag */
    static const cl_uint zero = 0;
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)(groups + 2) * sizeof(cl_uint), NULL, &aux));
    cl_int err = fb_cl_fault(FB_CL_FAULT_WRITE);
    if (err == CL_SUCCESS)
        err = clEnqueueWriteBuffer(cl->queue, aux, CL_FALSE, (size_t)(groups + 1) * sizeof(cl_uint), sizeof zero,
                                   &zero, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return fb_cl_fail(ctx, where, "clEnqueueWriteBuffer", err);
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)n_cand * sizeof(cl_uint), NULL, out));

    cl_int has_sel = has_sel_in != 0, kind = (cl_int)p->kind, negate = p->negate != 0;
    cl_long lo = p->lo, hi = p->hi;
    cl_ulong n_cand_arg = n_cand;
    size_t set_local = (n_set ? n_set : 1) * sizeof(cl_long);
    if (!has_sel)
        sel = cl->dummy;
    const fb_cl_karg args[] = {KARG(d->data),  KARG(d->type),   KARG(d->valid), KARG(d->has_valid), KARG(d->voff),
                         KARG(d->length), KARG(sel),     KARG(has_sel), KARG(n_cand_arg),  KARG(items),
                         KARG(kind),    KARG(negate),   KARG(lo),      KARG(hi),          KARG(dset),
                         KARG(n_set),   KARG(aux),      KARG(groups),  KLOCAL(wg * sizeof(cl_uint)),
                         KLOCAL(set_local), KARG(*out),  KLOCAL(tile)};
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, cl->select_count, "fb_select_count", args, 20));
    FB_FORWARD_IF_ERROR(fb_cl_job_run(j, cl->select_count, "fb_select_count", (size_t)groups, wg));
    const fb_cl_karg scan_args[] = {KARG(aux), KARG(groups), KLOCAL(cl->wg_scan * sizeof(cl_uint))};
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, cl->select_scan, "fb_select_scan", scan_args, 3));
    FB_FORWARD_IF_ERROR(fb_cl_job_run(j, cl->select_scan, "fb_select_scan", 1, cl->wg_scan));
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, cl->select_write, "fb_select_write", args, 22));
    FB_FORWARD_IF_ERROR(fb_cl_job_run(j, cl->select_write, "fb_select_write", (size_t)groups, wg));

    cl_uint tail[2]; /* total, error flag */
    FB_FORWARD_IF_ERROR(fb_cl_job_read(j, aux, CL_TRUE, (size_t)groups * sizeof(cl_uint), sizeof tail, tail));
    if (tail[1])
        return fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where, "sel_in holds an index ≥ the column's %lld rows",
                            (long long)d->length);
    if (tail[0] > n_cand)
        return fb_set_error(ctx, FB_ERR_INTERNAL, where, "device selected %u of %llu candidates", tail[0],
                            (unsigned long long)n_cand);
    *n_out = tail[0];
    return st;
}

/* p's IN set sorted and without duplicates into set[FB_SELECT_IN_MAX] (for a binary search on the device). */
static cl_uint sorted_set(const fb_pred *p, int64_t *set)
{
    cl_uint n_set = 0;
    if (p->kind != FB_PRED_IN)
        return 0;
    memcpy(set, p->set, (size_t)p->n_set * sizeof *set);
    qsort(set, (size_t)p->n_set, sizeof *set, cmp_i64);
    for (int64_t i = 0; i < p->n_set; i++)
        if (n_set == 0 || set[n_set - 1] != set[i])
            set[n_set++] = set[i];
    return n_set;
}

fb_status fb_cl_select_dev(fb_cl_job *j, const fb_cl_dev_column *d, const fb_pred *p, cl_mem sel_in, int has_sel_in,
                           uint64_t n_cand, cl_mem *out, int64_t *n_out)
{
    int64_t set[FB_SELECT_IN_MAX];
    cl_uint n_set = sorted_set(p, set);
    *out = NULL;
    *n_out = 0;
    if (n_cand == 0)
        return FB_OK;
    return select_dev(j, d, p, set, n_set, sel_in, has_sel_in, n_cand, out, n_out);
}

/* Upload, select_dev(), download. */
static fb_status run_select(fb_ctx *ctx, const fb_column *col, const fb_pred *p, const uint32_t *sel_in, int64_t n_in,
                            uint32_t *sel_out, int64_t *n_out, const char *where)
{
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    uint64_t n_cand = (uint64_t)(sel_in ? n_in : col->length);
    if (st != FB_OK)
        return fb_cl_job_close(&j, st);
    if (n_cand == 0) {
        *n_out = 0;
        return fb_cl_job_close(&j, FB_OK);
    }
    fb_cl_dev_column d;
    cl_mem sel = j.cl->dummy, out;
    int64_t n = 0;
    TRY(fb_cl_upload_column(&j, col, &d));
    if (sel_in)
        TRY(fb_cl_job_buffer(&j, CL_MEM_READ_ONLY, (size_t)n_in * sizeof *sel_in, sel_in, &sel));
    TRY(fb_cl_select_dev(&j, &d, p, sel, sel_in != NULL, n_cand, &out, &n));
    if (n > 0)
        TRY(fb_cl_job_read(&j, out, CL_TRUE, 0, (size_t)n * sizeof(cl_uint), sel_out));
    *n_out = n;
done:
    return fb_cl_job_close(&j, st);
}

fb_status fb_cl_select_cmp(fb_ctx *ctx, const fb_column *col, fb_cmp op, const void *value, const uint32_t *sel_in,
                           int64_t n_in, uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(fb_check_select_args(ctx, col, sel_in, n_in, sel_out, capacity, n_out, __func__));
    fb_pred p;
    FB_FORWARD_IF_ERROR(fb_pred_make_cmp(ctx, col->type, op, value, &p, __func__));
    return run_select(ctx, col, &p, sel_in, n_in, sel_out, n_out, __func__);
}

fb_status fb_cl_select_range(fb_ctx *ctx, const fb_column *col, const void *lo, const void *hi,
                             const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t capacity,
                             int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(fb_check_select_args(ctx, col, sel_in, n_in, sel_out, capacity, n_out, __func__));
    fb_pred p;
    FB_FORWARD_IF_ERROR(fb_pred_make_range(ctx, col->type, lo, hi, &p, __func__));
    return run_select(ctx, col, &p, sel_in, n_in, sel_out, n_out, __func__);
}

fb_status fb_cl_select_in(fb_ctx *ctx, const fb_column *col, const void *values, int64_t n_values,
                          const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(fb_check_select_args(ctx, col, sel_in, n_in, sel_out, capacity, n_out, __func__));
    int64_t keys[FB_SELECT_IN_MAX];
    fb_pred p;
    FB_FORWARD_IF_ERROR(fb_pred_make_in(ctx, col->type, values, n_values, keys, &p, __func__));
    return run_select(ctx, col, &p, sel_in, n_in, sel_out, n_out, __func__);
}

/* ---- compaction and gather ------------------------------------------------------------------------------ */

static int width_index(size_t w) { return w == 1 ? 0 : w == 2 ? 1 : w == 4 ? 2 : 3; }

static const char *const compact_names[FB_CL_WIDTHS] = {"fb_compact_w1", "fb_compact_w2", "fb_compact_w4",
                                                        "fb_compact_w8"};
static const char *const gather_names[FB_CL_WIDTHS] = {"fb_gather_w1", "fb_gather_w2", "fb_gather_w4", "fb_gather_w8"};

fb_status fb_cl_move_dev(fb_cl_job *j, const fb_cl_dev_column *d, cl_mem idx, int is_sel, int64_t n, cl_mem err,
                         int want_valid, cl_mem *dout, cl_mem *dvalid)
{
    struct fb_cl_state *cl = j->cl;
    size_t w = fb_type_width((fb_type)d->type);
    size_t out_bytes = (size_t)n * w, valid_bytes = (size_t)((n + 7) / 8);
    *dout = NULL;
    if (dvalid)
        *dvalid = NULL;
    if (n == 0)
        return FB_OK;
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, out_bytes, NULL, dout));
    if (want_valid)
        FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, valid_bytes, NULL, dvalid));
    cl_ulong rows = (cl_ulong)n;
    int wi = width_index(w);
    cl_kernel k = is_sel ? cl->compact[wi] : cl->gather[wi];
    const char *kname = is_sel ? compact_names[wi] : gather_names[wi];
    const fb_cl_karg args[] = {KARG(d->data), KARG(d->length), KARG(idx), KARG(rows), KARG(*dout), KARG(err)};
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, k, kname, args, 6));
    FB_FORWARD_IF_ERROR(fb_cl_job_run(j, k, kname, fb_cl_grid_groups(cl, rows, cl->wg_move), cl->wg_move));
    if (want_valid) {
        cl_kernel kv = is_sel ? cl->compact_validity : cl->gather_validity;
        const char *vname = is_sel ? "fb_compact_validity" : "fb_gather_validity";
        const fb_cl_karg vargs[] = {KARG(d->valid), KARG(d->has_valid), KARG(d->voff), KARG(d->length),
                                    KARG(idx),      KARG(rows),         KARG(*dvalid)};
        FB_FORWARD_IF_ERROR(fb_cl_job_args(j, kv, vname, vargs, 7));
        FB_FORWARD_IF_ERROR(
            fb_cl_job_run(j, kv, vname, fb_cl_grid_groups(cl, valid_bytes, cl->wg_move), cl->wg_move));
    }
    return FB_OK;
}

/* out rows j = col rows idx[j]: sel (uint32) for a compaction, ids (int64, -1 = null) for a gather.
 * Arguments already checked (out's length and null count are 0). Upload, fb_cl_move_dev(), download. */
static fb_status run_move(fb_ctx *ctx, const fb_column *col, const uint32_t *sel, const int64_t *ids, int64_t n,
                          fb_column_out *out, const char *where)
{
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    if (st != FB_OK || n == 0)
        return fb_cl_job_close(&j, st);
    size_t w = fb_type_width(col->type);
    size_t idx_bytes = (size_t)n * (sel ? sizeof *sel : sizeof *ids);
    size_t out_bytes = (size_t)n * w, valid_bytes = (size_t)((n + 7) / 8);
    static const cl_uint zero = 0;

    fb_cl_dev_column d;
    cl_mem idx, dout, derr, dvalid = NULL;
    TRY(fb_cl_upload_column(&j, col, &d));
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_ONLY, idx_bytes, sel ? (const void *)sel : (const void *)ids, &idx));
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, sizeof(cl_uint), &zero, &derr));
    TRY(fb_cl_move_dev(&j, &d, idx, sel != NULL, n, derr, out->validity != NULL, &dout, &dvalid));
    /* one wait for everything; on an error the rows are there but out->length stays 0 */
    cl_uint bad = 0;
    TRY(fb_cl_job_read(&j, derr, CL_FALSE, 0, sizeof bad, &bad));
    TRY(fb_cl_job_read(&j, dout, CL_FALSE, 0, out_bytes, out->data));
    if (dvalid)
        TRY(fb_cl_job_read(&j, dvalid, CL_FALSE, 0, valid_bytes, out->validity));
    TRY(fb_cl_job_finish(&j));
    if (bad) {
        st = fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where, "%s holds an index outside the column's %lld rows",
                          sel ? "sel" : "row_ids", (long long)col->length);
        goto done;
    }
    int64_t valid = n;
    if (out->validity) {
        valid = 0;
        for (size_t b = 0; b < valid_bytes; b++)
            valid += __builtin_popcount(out->validity[b]);
    }
    out->null_count = n - valid;
    out->length = n;
done:
    return fb_cl_job_close(&j, st);
}

fb_status fb_cl_compact(fb_ctx *ctx, const fb_column *col, const uint32_t *sel, int64_t n_sel, fb_column_out *out)
{
    FB_FORWARD_IF_ERROR(fb_check_move_args(ctx, col, sel, n_sel, 0, out, __func__));
    return run_move(ctx, col, sel, NULL, n_sel, out, __func__);
}

fb_status fb_cl_gather(fb_ctx *ctx, const fb_column *col, const int64_t *row_ids, int64_t n_ids, fb_column_out *out)
{
    FB_FORWARD_IF_ERROR(fb_check_move_args(ctx, col, row_ids, n_ids, 1, out, __func__));
    return run_move(ctx, col, NULL, row_ids, n_ids, out, __func__);
}
