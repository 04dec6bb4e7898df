/* cl_join.c - the OpenCL twins of the fb_join.h probes for one key column, one call per join: the
 * device builds a table from the build keys (join.cl) and probes it with the probe keys. Results
 * equal the CPU table's (fb_hash_table_build() of the build column in one call, then
 * fb_hash_table_probe / _probe_select / _probe_mark) entry for entry, in the same order.
 *
 * Memory: the build side stays on the device (about 28 bytes per build row); the probe side goes
 * over in chunks that fit what the device memory budget (fb_cl_budget()) leaves, each chunk's
 * output coming back before the next. A build side larger than the budget gives
 * FB_ERR_DEVICE_MEMORY (a partitioned build is not done yet). */
#include "fb/fb_cl.h"
#include "fb/fb_join.h"
#include "fb_cl_internal.h"
#include "fb_kernels_common.h"

#include <string.h>

#define JOIN_EMPTY 0x8000000000000000ull

static int join_key_type(fb_type t)
{
    return t == FB_TYPE_INT32 || t == FB_TYPE_INT64 || t == FB_TYPE_DATE32 || t == FB_TYPE_UINT32 ||
           t == FB_TYPE_UINT64;
}

static fb_status check_keys(fb_ctx *ctx, const fb_column *build, const fb_column *probe, const char *where)
{
    if (!ctx)
        return fb_set_error(NULL, FB_ERR_INVALID_ARG, where, "ctx must not be NULL");
    if (!build || !probe)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "build and probe must not be NULL");
    FB_FORWARD_IF_ERROR(fb_check_column(ctx, build, where, "the build key column"));
    FB_FORWARD_IF_ERROR(fb_check_column(ctx, probe, where, "the probe key column"));
    if (!join_key_type(build->type))
        return fb_set_error(ctx, FB_ERR_UNSUPPORTED_TYPE, where, "a %s key; join keys are int32, int64, date32, "
                            "uint32 or uint64", fb_type_name(build->type));
    if (probe->type != build->type)
        return fb_set_error(ctx, FB_ERR_UNSUPPORTED_TYPE, where, "the probe key is %s, the build key %s",
                            fb_type_name(probe->type), fb_type_name(build->type));
    if (build->length > FB_CL_TABLE_MAX_ROWS || probe->length > FB_MORSEL_MAX_ROWS)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%lld build or %lld probe rows are too many",
                            (long long)build->length, (long long)probe->length);
    return FB_OK;
}

/* The device table of one build column. */
typedef struct build_table {
    cl_mem tkeys, start, end, rows;
    cl_ulong mask;
    int64_t rows_total;  /* build rows, null keys included */
    int64_t null_rows;   /* build rows with a null key */
} build_table;

static fb_status run(fb_cl_job *j, cl_kernel k, const char *name, const fb_cl_karg *args, cl_uint n, uint64_t items)
{
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, k, name, args, n));
    return fb_cl_job_run(j, k, name, fb_cl_grid_groups(j->cl, items, j->cl->wg_group), j->cl->wg_group);
}

static fb_status build(fb_cl_job *j, const fb_column *key, build_table *t)
{
    struct fb_cl_state *cl = j->cl;
    cl_ulong nb = (cl_ulong)key->length, cap = 64;
    while (cap < 2 * nb)
        cap <<= 1;
    t->mask = cap - 1;
    t->rows_total = key->length;
    t->null_rows = 0;
    if (key->validity)
        for (int64_t i = 0; i < key->length; i++)
            t->null_rows += !fb_column_is_valid(key, i);
    cl_ulong empty = JOIN_EMPTY;
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)cap * 8, NULL, &t->tkeys));
    const fb_cl_karg fargs[] = {KARG(t->tkeys), KARG(cap), KARG(empty)};
    FB_FORWARD_IF_ERROR(run(j, cl->join_fill, "fb_join_fill", fargs, 3, cap));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)(cap + 1) * 4, NULL, &t->start));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)(cap + 1) * 4, NULL, &t->end));
    FB_FORWARD_IF_ERROR(fb_cl_job_fill(j, t->start, 0u, (size_t)(cap + 1) * 4));
    FB_FORWARD_IF_ERROR(fb_cl_job_fill(j, t->end, 0u, (size_t)(cap + 1) * 4));
    t->rows = cl->dummy;
    if (nb == 0)
        return FB_OK;
    cl_mem slots;
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)nb * 4, NULL, &t->rows));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)nb * 4, NULL, &slots));
    int mark = j->n_mems;
    fb_cl_dev_column d;
    FB_FORWARD_IF_ERROR(fb_cl_upload_column(j, key, &d));
    const fb_cl_karg sargs[] = {KARG(d.data), KARG(d.type), KARG(d.valid), KARG(d.has_valid), KARG(d.voff),
                                KARG(nb),     KARG(t->tkeys), KARG(t->mask), KARG(slots),     KARG(t->rows)};
    FB_FORWARD_IF_ERROR(run(j, cl->join_slots, "fb_join_slots", sargs, 10, nb));
    fb_cl_job_release_from(j, mark);
    FB_FORWARD_IF_ERROR(fb_cl_sort_pairs(j, slots, t->rows, nb));
    const fb_cl_karg rargs[] = {KARG(slots), KARG(nb), KARG(t->start), KARG(t->end)};
    FB_FORWARD_IF_ERROR(run(j, cl->join_ranges, "fb_join_ranges", rargs, 4, nb));
    fb_cl_job_release(j, slots);
    return FB_OK;
}

/* Probe rows per chunk: what the budget leaves for the keys, counts and about `out_per_row`
 * output bytes per row; a multiple of 8 (mark validity bytes), at least 1024. */
static fb_status chunk_rows(fb_cl_job *j, size_t per_row, int64_t n, int64_t *rows)
{
    size_t room = fb_cl_job_room(j);
    int64_t r = (int64_t)(room / per_row) & ~(int64_t)7;
    if (r >= n) {
        *rows = n > 0 ? n : 1;
        return FB_OK;
    }
    if (r < 1024)
        return fb_set_error(j->ctx, FB_ERR_DEVICE_MEMORY, j->where,
                            "the device memory budget (%zu bytes, FB_CL_MEM_BUDGET) leaves %zu bytes after the build"
                            " table: too little for chunks of the probe side",
                            fb_cl_budget(j->cl), room);
    *rows = r;
    return FB_OK;
}

/* Inner/left pairs (out) or semi/anti selection (sel); *total receives the entries of the whole
 * probe side, written only while they fit `capacity`. */
static fb_status probe_entries(fb_ctx *ctx, const fb_column *bkey, int64_t build_first, const fb_column *pkey,
                               int64_t probe_first, cl_int jtype, int64_t *build_ids, int64_t *probe_ids,
                               uint32_t *sel, int64_t capacity, int64_t *total, const char *where)
{
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    if (st != FB_OK)
        return fb_cl_job_close(&j, st);
    struct fb_cl_state *cl = j.cl;
    fb_cl_stream stream;
    memset(&stream, 0, sizeof stream);
    *total = 0;
    if (!cl->join_slots) {
        st = fb_set_error(ctx, FB_ERR_OPENCL, where, "the device lacks cl_khr_int64_base_atomics");
        goto done;
    }
    build_table t;
    TRY(build(&j, bkey, &t));
    int64_t n = pkey->length, chunk = 1, written = 0;
    int pairs = jtype == 0 || jtype == 1;
    size_t kw = fb_type_width(pkey->type);
    TRY(chunk_rows(&j, 2 * (kw + 1) + 4 + (pairs ? 32 : 4), n, &chunk));
    cl->last_chunks = 0;
    const fb_column *pcol[1] = {pkey};
    if (n > 0)
        TRY(fb_cl_stream_open(&stream, &j, pcol, 1, n, chunk));
    while (n > 0) {
        int64_t r0, m;
        fb_cl_dev_column d;
        TRY(fb_cl_stream_next(&stream, &r0, &m, &d));
        if (m == 0)
            break;
        int mark = j.n_mems;
        cl_ulong rows = (cl_ulong)m;
        cl_mem counts, dtotal;
        static const cl_ulong zero = 0;
        TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, (size_t)(m + 1) * 4, NULL, &counts));
        TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, sizeof zero, &zero, &dtotal));
        const fb_cl_karg cargs[] = {KARG(d.data), KARG(d.type), KARG(d.valid), KARG(d.has_valid), KARG(d.voff),
                                    KARG(rows),   KARG(t.tkeys), KARG(t.mask), KARG(t.start),   KARG(t.end),
                                    KARG(jtype),  KARG(counts), KARG(dtotal), KLOCAL(sizeof(cl_ulong))};
        TRY(run(&j, cl->join_count, "fb_join_count", cargs, 14, rows));
        cl_ulong ct = 0;
        TRY(fb_cl_job_read(&j, dtotal, CL_TRUE, 0, sizeof ct, &ct));
        if (ct > UINT32_MAX) {
            st = fb_set_error(ctx, FB_ERR_CAPACITY, where,
                              "%llu result entries from %lld probe rows: a call returns fewer than 2^32",
                              (unsigned long long)ct, (long long)m);
            goto done;
        }
        *total += (int64_t)ct;
        if (ct > 0 && *total <= capacity) {
            TRY(fb_cl_scan(&j, counts, rows));
            cl_mem ob = cl->dummy, op = cl->dummy, os = cl->dummy;
            if (pairs) {
                TRY(fb_cl_job_buffer(&j, CL_MEM_WRITE_ONLY, (size_t)ct * 8, NULL, &ob));
                TRY(fb_cl_job_buffer(&j, CL_MEM_WRITE_ONLY, (size_t)ct * 8, NULL, &op));
            } else {
                TRY(fb_cl_job_buffer(&j, CL_MEM_WRITE_ONLY, (size_t)ct * 4, NULL, &os));
            }
            cl_long bfirst = build_first, pfirst = pairs ? probe_first + r0 : r0;
            const fb_cl_karg wargs[] = {KARG(d.data),  KARG(d.type),  KARG(d.valid), KARG(d.has_valid), KARG(d.voff),
                                        KARG(rows),    KARG(t.tkeys), KARG(t.mask),  KARG(t.start),     KARG(t.end),
                                        KARG(jtype),   KARG(counts),  KARG(t.rows),  KARG(bfirst),      KARG(pfirst),
                                        KARG(ob),      KARG(op),      KARG(os)};
            TRY(run(&j, cl->join_write, "fb_join_write", wargs, 18, rows));
            if (pairs) {
                TRY(fb_cl_job_read(&j, ob, CL_FALSE, 0, (size_t)ct * 8, build_ids + written));
                TRY(fb_cl_job_read(&j, op, CL_FALSE, 0, (size_t)ct * 8, probe_ids + written));
            } else {
                TRY(fb_cl_job_read(&j, os, CL_FALSE, 0, (size_t)ct * 4, sel + written));
            }
            TRY(fb_cl_job_finish(&j));
            written += (int64_t)ct;
        }
        TRY(fb_cl_stream_release(&stream));
        fb_cl_job_release_from(&j, mark);
        cl->last_chunks++;
    }
    if (*total > capacity)
        st = fb_set_error(ctx, FB_ERR_CAPACITY, where, "the result has %lld entries, the output holds %lld",
                          (long long)*total, (long long)capacity);
done:
    st = fb_cl_stream_close(&stream, st);
    return fb_cl_job_close(&j, st);
}

fb_status fb_cl_join_probe(fb_ctx *ctx, const fb_column *build_key, int64_t build_first_row,
                           const fb_column *probe_key, int64_t probe_first_row, fb_join_type type, fb_join_pairs *out,
                           int64_t *n_pairs)
{
    FB_FORWARD_IF_ERROR(check_keys(ctx, build_key, probe_key, __func__));
    FB_RETURN_ERROR_IF(!out || !n_pairs || (out->capacity > 0 && (!out->build_ids || !out->probe_ids)), ctx,
                       FB_ERR_INVALID_ARG, "out (with its id arrays) and n_pairs must not be NULL");
    FB_RETURN_ERROR_IF(type != FB_JOIN_INNER && type != FB_JOIN_LEFT, ctx, FB_ERR_INVALID_ARG,
                       "join type %d: fb_cl_join_probe does inner and left joins", (int)type);
    FB_RETURN_ERROR_IF(build_first_row < 0 || probe_first_row < 0 ||
                           build_first_row > INT64_MAX - build_key->length ||
                           probe_first_row > INT64_MAX - probe_key->length,
                       ctx, FB_ERR_INVALID_ARG, "first rows must be ≥ 0 and leave the ids below INT64_MAX");
    out->length = 0;
    out->more = 0;
    *n_pairs = 0;
    int64_t total = 0;
    fb_status st = probe_entries(ctx, build_key, build_first_row, probe_key, probe_first_row, (cl_int)type,
                                 out->build_ids, out->probe_ids, NULL, out->capacity, &total, __func__);
    *n_pairs = total;
    if (st == FB_OK)
        out->length = total;
    return st;
}

fb_status fb_cl_join_probe_select(fb_ctx *ctx, const fb_column *build_key, const fb_column *probe_key,
                                  fb_join_type type, uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(check_keys(ctx, build_key, probe_key, __func__));
    FB_RETURN_ERROR_IF(!n_out || (probe_key->length > 0 && !sel_out), ctx, FB_ERR_INVALID_ARG,
                       "sel_out and n_out must not be NULL");
    FB_RETURN_ERROR_IF(type != FB_JOIN_SEMI && type != FB_JOIN_ANTI, ctx, FB_ERR_INVALID_ARG,
                       "join type %d: fb_cl_join_probe_select does semi and anti joins", (int)type);
    FB_RETURN_ERROR_IF(capacity < probe_key->length, ctx, FB_ERR_CAPACITY,
                       "sel_out holds %lld entries, the probe side has %lld rows", (long long)capacity,
                       (long long)probe_key->length);
    int64_t total = 0;
    *n_out = 0;
    fb_status st = probe_entries(ctx, build_key, 0, probe_key, 0, (cl_int)type, NULL, NULL, sel_out, capacity, &total,
                                 __func__);
    if (st == FB_OK)
        *n_out = total;
    return st;
}

fb_status fb_cl_join_probe_mark(fb_ctx *ctx, const fb_column *build_key, const fb_column *probe_key,
                                fb_column_out *out)
{
    FB_FORWARD_IF_ERROR(check_keys(ctx, build_key, probe_key, __func__));
    FB_RETURN_ERROR_IF(!out || (probe_key->length > 0 && !out->data), ctx, FB_ERR_INVALID_ARG,
                       "out (with data) must not be NULL");
    out->length = out->null_count = 0;
    FB_RETURN_ERROR_IF(out->type != FB_TYPE_UINT8, ctx, FB_ERR_UNSUPPORTED_TYPE, "out is %s; marks are uint8",
                       fb_type_name(out->type));
    int64_t n = probe_key->length;
    FB_RETURN_ERROR_IF(out->capacity < n, ctx, FB_ERR_CAPACITY, "out holds %lld rows, the probe side has %lld",
                       (long long)out->capacity, (long long)n);
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, __func__);
    if (st != FB_OK || n == 0)
        return fb_cl_job_close(&j, st);
    struct fb_cl_state *cl = j.cl;
    if (!cl->join_slots) {
        st = fb_set_error(ctx, FB_ERR_OPENCL, __func__, "the device lacks cl_khr_int64_base_atomics");
        goto done;
    }
    build_table t;
    TRY(build(&j, build_key, &t));
    cl_int three = out->validity != NULL;
    cl_int null_if_null_key = t.rows_total > 0, null_if_unmatched = t.null_rows > 0;
    int64_t chunk = 1;
    TRY(chunk_rows(&j, fb_type_width(probe_key->type) + 1 + 2, n, &chunk));
    cl->last_chunks = 0;
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        int64_t m = n - r0 < chunk ? n - r0 : chunk;
        int mark = j.n_mems;
        cl_ulong rows = (cl_ulong)m;
        size_t vbytes = (size_t)(m + 7) / 8;
        fb_cl_dev_column d;
        cl_mem marks, valid = cl->dummy;
        TRY(fb_cl_upload_rows(&j, probe_key, r0, m, &d));
        TRY(fb_cl_job_buffer(&j, CL_MEM_WRITE_ONLY, (size_t)m, NULL, &marks));
        if (three)
            TRY(fb_cl_job_buffer(&j, CL_MEM_WRITE_ONLY, vbytes, NULL, &valid));
        const fb_cl_karg args[] = {KARG(d.data), KARG(d.type),  KARG(d.valid), KARG(d.has_valid),
                                   KARG(d.voff), KARG(rows),    KARG(t.tkeys), KARG(t.mask),
                                   KARG(t.start), KARG(t.end),  KARG(three),   KARG(null_if_null_key),
                                   KARG(null_if_unmatched), KARG(marks), KARG(valid)};
        TRY(run(&j, cl->join_mark, "fb_join_mark", args, 15, vbytes));
        TRY(fb_cl_job_read(&j, marks, CL_FALSE, 0, (size_t)m, (uint8_t *)out->data + r0));
        if (three) /* r0 is a multiple of 8 */
            TRY(fb_cl_job_read(&j, valid, CL_FALSE, 0, vbytes, out->validity + r0 / 8));
        TRY(fb_cl_job_finish(&j));
        fb_cl_job_release_from(&j, mark);
        cl->last_chunks++;
    }
    int64_t nulls = 0;
    if (three)
        for (int64_t i = 0; i < n; i++)
            nulls += !((out->validity[i >> 3] >> (i & 7)) & 1);
    out->null_count = nulls;
    out->length = n;
done:
    return fb_cl_job_close(&j, st);
}
