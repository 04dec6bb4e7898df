/* cl_join.c - the OpenCL twins of the fb_join.h probes, one call per join: the
 * device builds a table from the build keys (join.cl) and probes it with the probe keys. Results
 * equal the CPU table's (fb_hash_table_build() of the build column in one call, then
 * fb_hash_table_probe / _probe_select / _probe_mark) entry for entry, in the same order.
 *
 * Memory: the build side stays on the device (about 28 bytes per build row); the probe side goes
 * over in chunks that fit what the device memory budget (fb_cl_budget()) leaves, each chunk's
 * output coming back before the next. A build side larger than the budget is split with its probe
 * side into hash partitions on the host (fb_hash_columns, fb_radix_partition), one device table per
 * partition, and the partitions' results are put back in the unpartitioned order.
 *
 * Composite keys (2..FB_JOIN_MAX_KEYS columns) first become one int64 key per row (cl_keys.c). */
#include "fb/fb_cl.h"
#include "fb/fb_join.h"
#include "fb_cl_internal.h"
#include "fb_kernels_common.h"
#include "fb_plan_cl_internal.h"

#include <stdlib.h>
#include <string.h>

#define JOIN_EMPTY 0x8000000000000000ull

/* An argument error of a device-buffer variant (the caller's job names the call). */
#define RETURN_ERROR_IF_AT2(cond, j, what)                                                                        \
    do {                                                                                                       \
        if (cond)                                                                                              \
            return fb_set_error((j)->ctx, FB_ERR_INVALID_ARG, (j)->where, "expects %s", what);                 \
    } while (0)

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

/* One chunk of m probe rows (device column d) against table t: the count, then, when the *ct entries fit
 * `room`, the entries (pairs: *ob build ids, *op probe ids, each + bfirst / pfirst; semi / anti: *os probe
 * rows + pfirst), in device buffers of the job. */
static fb_status probe_chunk(fb_cl_job *j, const build_table *t, const fb_cl_dev_column *d, int64_t m, cl_int jtype,
                             int64_t build_first, int64_t probe_first, int64_t room, cl_mem *ob, cl_mem *op,
                             cl_mem *os, int64_t *ct_out)
{
    struct fb_cl_state *cl = j->cl;
    int pairs = jtype == 0 || jtype == 1;
    cl_ulong rows = (cl_ulong)m;
    cl_mem counts, dtotal;
    static const cl_ulong zero = 0;
    *ct_out = 0;
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)(m + 1) * 4, NULL, &counts));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, sizeof zero, &zero, &dtotal));
    const fb_cl_karg cargs[] = {KARG(d->data), KARG(d->type), KARG(d->valid), KARG(d->has_valid), KARG(d->voff),
                                KARG(rows),    KARG(t->tkeys), KARG(t->mask), KARG(t->start),   KARG(t->end),
                                KARG(jtype),   KARG(counts),  KARG(dtotal),  KLOCAL(sizeof(cl_ulong))};
    FB_FORWARD_IF_ERROR(run(j, cl->join_count, "fb_join_count", cargs, 14, rows));
    cl_ulong ct = 0;
    FB_FORWARD_IF_ERROR(fb_cl_job_read(j, dtotal, CL_TRUE, 0, sizeof ct, &ct));
    if (ct > UINT32_MAX)
        return fb_set_error(j->ctx, FB_ERR_CAPACITY, j->where,
                            "%llu result entries from %lld probe rows: a call returns fewer than 2^32",
                            (unsigned long long)ct, (long long)m);
    *ct_out = (int64_t)ct;
    if (ct == 0 || (int64_t)ct > room)
        return FB_OK;
    FB_FORWARD_IF_ERROR(fb_cl_scan(j, counts, rows));
    if (pairs) {
        FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)ct * 8, NULL, ob));
        FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)ct * 8, NULL, op));
    } else {
        FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)ct * 4, NULL, os));
    }
    cl_long bfirst = build_first, pfirst = probe_first;
    const fb_cl_karg wargs[] = {KARG(d->data),  KARG(d->type),  KARG(d->valid), KARG(d->has_valid), KARG(d->voff),
                                KARG(rows),     KARG(t->tkeys), KARG(t->mask),  KARG(t->start),     KARG(t->end),
                                KARG(jtype),    KARG(counts),   KARG(t->rows),  KARG(bfirst),       KARG(pfirst),
                                KARG(*ob),      KARG(*op),      KARG(*os)};
    return run(j, cl->join_write, "fb_join_write", wargs, 18, rows);
}

/* Inner/left pairs (out) or semi/anti selection (sel); *total receives the entries of the whole
 * probe side, written only while they fit `capacity`. */
static fb_status probe_entries_table(fb_ctx *ctx, const build_table *pre, size_t pre_bytes, const fb_column *bkey,
                                     int64_t build_first, const fb_column *pkey, int64_t probe_first, cl_int jtype,
                                     int64_t *build_ids, int64_t *probe_ids, uint32_t *sel, int64_t capacity,
                                     int64_t *total, const char *where);

static fb_status probe_entries(fb_ctx *ctx, const fb_column *bkey, int64_t build_first, const fb_column *pkey,
                               int64_t probe_first, cl_int jtype, int64_t *build_ids, int64_t *probe_ids,
                               uint32_t *sel, int64_t capacity, int64_t *total, const char *where)
{
    return probe_entries_table(ctx, NULL, 0, bkey, build_first, pkey, probe_first, jtype, build_ids, probe_ids, sel,
                               capacity, total, where);
}

/* probe_entries() against `pre`, a table built before (fb_cl_join_table: its pre_bytes count against this
 * call's budget), or NULL: the table of bkey, built here. */
static fb_status probe_entries_table(fb_ctx *ctx, const build_table *pre, size_t pre_bytes, const fb_column *bkey,
                                     int64_t build_first, const fb_column *pkey, int64_t probe_first, cl_int jtype,
                                     int64_t *build_ids, int64_t *probe_ids, uint32_t *sel, int64_t capacity,
                                     int64_t *total, const char *where)
{
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    if (st != FB_OK)
        return fb_cl_job_close(&j, st);
    j.bytes = pre_bytes; /* the persistent table's device memory (the job never releases it) */
    struct fb_cl_state *cl = j.cl;
    fb_cl_stream stream;
    memset(&stream, 0, sizeof stream);
    *total = 0;
    if (!cl->join_slots) {
        st = fb_set_error(ctx, FB_ERR_OPENCL, where, "the device lacks cl_khr_int64_base_atomics");
        goto done;
    }
    build_table t;
    if (pre)
        t = *pre;
    else
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
        cl_mem ob = cl->dummy, op = cl->dummy, os = cl->dummy;
        int64_t ct = 0;
        TRY(probe_chunk(&j, &t, &d, m, jtype, build_first, pairs ? probe_first + r0 : r0, capacity - *total, &ob, &op,
                        &os, &ct));
        *total += ct;
        if (ct > 0 && *total <= capacity) {
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

/* Mark join of one key column: marks[i] (and, with mvalid, its three-valued validity bit). The null
 * rules use the whole build side: g_rows (its rows) and g_null_rows (rows with a null key), which a
 * partition's table alone does not know. */
static fb_status mark_rows(fb_ctx *ctx, const fb_column *build_key, const fb_column *probe_key, uint8_t *marks_out,
                           uint8_t *mvalid, int64_t g_rows, int64_t g_null_rows, const char *where)
{
    int64_t n = probe_key->length;
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    if (st != FB_OK || n == 0)
        return fb_cl_job_close(&j, st);
    struct fb_cl_state *cl = j.cl;
    if (!cl->join_slots) {
        st = fb_set_error(ctx, FB_ERR_OPENCL, where, "the device lacks cl_khr_int64_base_atomics");
        goto done;
    }
    build_table t;
    TRY(build(&j, build_key, &t));
    cl_int three = mvalid != NULL;
    cl_int null_if_null_key = g_rows > 0, null_if_unmatched = g_null_rows > 0;
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
        TRY(fb_cl_job_read(&j, marks, CL_FALSE, 0, (size_t)m, marks_out + r0));
        if (three) /* r0 is a multiple of 8 */
            TRY(fb_cl_job_read(&j, valid, CL_FALSE, 0, vbytes, mvalid + r0 / 8));
        TRY(fb_cl_job_finish(&j));
        fb_cl_job_release_from(&j, mark);
        cl->last_chunks++;
    }
done:
    return fb_cl_job_close(&j, st);
}

/* ---- any number of key columns, and builds larger than the device memory budget ---------------------- */

/* What one join call asks for and gets. Pairs (inner, left) go to build_ids/probe_ids while they fit
 * capacity, semi/anti rows to sel, marks to marks/mvalid; total counts the entries of the whole call. */
typedef struct join_req {
    cl_int jtype; /* FB_JOIN_* */
    int64_t build_first, probe_first;
    int64_t *build_ids, *probe_ids;
    uint32_t *sel;
    uint8_t *marks, *mvalid;
    int64_t capacity;
    int64_t total;
    int64_t g_rows, g_null_rows; /* mark join: the whole build side's rows and rows with a null key */
} join_req;

static int64_t rows_with_null(const fb_column *keys, size_t n_keys)
{
    int64_t c = 0;
    for (int64_t i = 0; i < keys[0].length; i++) {
        int null = 0;
        for (size_t k = 0; k < n_keys; k++)
            null |= !fb_column_is_valid(&keys[k], i);
        c += null;
    }
    return c;
}

/* One key column, the whole build side on the device. */
static fb_status join_one_key(fb_ctx *ctx, const fb_column *bkey, const fb_column *pkey, join_req *r,
                              const char *where)
{
    if (r->jtype == FB_JOIN_MARK)
        return mark_rows(ctx, bkey, pkey, r->marks, r->mvalid, r->g_rows, r->g_null_rows, where);
    return probe_entries(ctx, bkey, r->build_first, pkey, r->probe_first, r->jtype, r->build_ids, r->probe_ids, r->sel,
                         r->capacity, &r->total, where);
}

/* Any number of key columns, the whole build side on the device: composite keys become one int64
 * key per row first (cl_keys.c). */
static fb_status join_direct(fb_ctx *ctx, const fb_column *bkeys, const fb_column *pkeys, size_t n_keys, join_req *r,
                             const char *where)
{
    if (n_keys == 1)
        return join_one_key(ctx, &bkeys[0], &pkeys[0], r, where);
    int64_t nb = bkeys[0].length, np = pkeys[0].length;
    size_t bytes = (size_t)(nb + np) * 8 + (size_t)(nb + 8) / 8 + (size_t)(np + 8) / 8 + 2;
    char *mem = NULL;
    FB_FORWARD_IF_ERROR(fb_alloc(ctx, bytes, 64, (void **)&mem, where));
    int64_t *bkey = (int64_t *)mem, *pkey = bkey + nb;
    uint8_t *bvalid = (uint8_t *)(pkey + np), *pvalid = bvalid + (nb + 8) / 8;
    fb_status st = fb_cl_keys_join(ctx, bkeys, pkeys, n_keys, bkey, bvalid, pkey, pvalid, where);
    if (st == FB_OK) {
        fb_column b = {.type = FB_TYPE_INT64, .length = nb, .data = bkey, .validity = bvalid};
        fb_column p = {.type = FB_TYPE_INT64, .length = np, .data = pkey, .validity = pvalid};
        st = join_one_key(ctx, &b, &p, r, where);
    }
    fb_free(ctx, mem, bytes);
    return st;
}

/* Rows idx[0..m) of col as a new column in host memory from ctx (free with free_column). */
static fb_status gather_column(fb_ctx *ctx, const fb_column *col, const uint32_t *idx, int64_t m, fb_column *out,
                               size_t *bytes, const char *where)
{
    size_t w = fb_type_width(col->type), vb = col->validity ? (size_t)(m + 7) / 8 : 0;
    size_t size = (size_t)m * w + vb + 1;
    char *mem = NULL;
    FB_FORWARD_IF_ERROR(fb_alloc(ctx, size, 64, (void **)&mem, where));
    *bytes = size;
    const char *src = (const char *)col->data + (size_t)col->offset * w;
    for (int64_t i = 0; i < m; i++)
        memcpy(mem + (size_t)i * w, src + (size_t)idx[i] * w, w);
    uint8_t *valid = NULL;
    if (vb) {
        valid = (uint8_t *)mem + (size_t)m * w;
        memset(valid, 0, vb);
        for (int64_t i = 0; i < m; i++)
            valid[i >> 3] |= (uint8_t)(fb_column_is_valid(col, idx[i]) << (i & 7));
    }
    *out = (fb_column){.type = col->type, .length = m, .data = mem, .validity = valid};
    return FB_OK;
}

/* One side split by hash bits: perm (rows of partition p at perm[off[p] .. off[p + 1]), ascending). */
typedef struct side_parts {
    uint64_t *hashes;
    uint32_t *perm;
    int64_t *off;
    int64_t n;
    int bits;
} side_parts;

static void side_free(fb_ctx *ctx, side_parts *s)
{
    if (s->hashes)
        fb_free(ctx, s->hashes, (size_t)(s->n ? s->n : 1) * 8);
    if (s->perm)
        fb_free(ctx, s->perm, (size_t)(s->n ? s->n : 1) * 4);
    if (s->off)
        fb_free(ctx, s->off, ((size_t)1 << s->bits) * 8 + 8);
    memset(s, 0, sizeof *s);
}

static fb_status side_split(fb_ctx *ctx, const fb_column *keys, size_t n_keys, int bits, side_parts *s,
                            const char *where)
{
    memset(s, 0, sizeof *s);
    s->n = keys[0].length;
    s->bits = bits;
    fb_status st = fb_alloc(ctx, (size_t)(s->n ? s->n : 1) * 8, 64, (void **)&s->hashes, where);
    if (st == FB_OK)
        st = fb_alloc(ctx, (size_t)(s->n ? s->n : 1) * 4, 64, (void **)&s->perm, where);
    if (st == FB_OK)
        st = fb_alloc(ctx, ((size_t)1 << bits) * 8 + 8, 64, (void **)&s->off, where);
    if (st == FB_OK && s->n > 0)
        st = fb_hash_columns(ctx, keys, n_keys, s->hashes, s->n);
    if (st == FB_OK && s->n > 0) /* the top bits: the device tables index by the low ones */
        st = fb_radix_partition(ctx, s->hashes, s->n, bits, 64 - bits, s->off, s->perm);
    if (st == FB_OK && s->n == 0)
        memset(s->off, 0, ((size_t)1 << bits) * 8 + 8);
    if (st != FB_OK)
        side_free(ctx, s);
    return st;
}

/* The join with both sides split into 2^bits partitions by the hashes of their keys, one device
 * table per partition; results are put back in the unpartitioned order (probe rows ascending, then
 * build rows ascending). *largest receives the largest build partition. */
static fb_status join_partitioned(fb_ctx *ctx, const fb_column *bkeys, const fb_column *pkeys, size_t n_keys,
                                  join_req *r, int bits, int64_t *largest, const char *where)
{
    side_parts b, p;
    fb_status st = side_split(ctx, bkeys, n_keys, bits, &b, where);
    if (st != FB_OK)
        return st;
    st = side_split(ctx, pkeys, n_keys, bits, &p, where);
    if (st != FB_OK) {
        side_free(ctx, &b);
        return st;
    }
    int64_t np = p.n, P = (int64_t)1 << bits;
    *largest = 0;
    for (int64_t q = 0; q < P; q++)
        if (b.off[q + 1] - b.off[q] > *largest)
            *largest = b.off[q + 1] - b.off[q];
    int pairs = r->jtype == FB_JOIN_INNER || r->jtype == FB_JOIN_LEFT;
    /* pairs: every partition's (build, probe) ids in partition order, then scattered by probe row */
    int64_t *pb = NULL, *pp = NULL, *count = NULL, held = 0, used = 0;
    uint8_t *hit = NULL; /* semi/anti: the probe rows selected */
    size_t count_bytes = (size_t)(np + 1) * 8;
    if (pairs)
        st = fb_alloc(ctx, count_bytes, 64, (void **)&count, where);
    else if (r->jtype != FB_JOIN_MARK)
        st = fb_alloc(ctx, (size_t)np + 1, 64, (void **)&hit, where);
    if (st == FB_OK && count)
        memset(count, 0, count_bytes);
    if (st == FB_OK && hit)
        memset(hit, 0, (size_t)np + 1);
    int n_parts = 0;
    for (int64_t q = 0; q < P && st == FB_OK; q++) {
        int64_t mb = b.off[q + 1] - b.off[q], mp = p.off[q + 1] - p.off[q];
        if (mp == 0)
            continue;
        n_parts++;
        const uint32_t *bi = b.perm + b.off[q], *pi = p.perm + p.off[q];
        fb_column bk[FB_JOIN_MAX_KEYS], pk[FB_JOIN_MAX_KEYS];
        size_t bbytes[FB_JOIN_MAX_KEYS] = {0}, pbytes[FB_JOIN_MAX_KEYS] = {0};
        for (size_t k = 0; k < n_keys && st == FB_OK; k++) {
            st = gather_column(ctx, &bkeys[k], bi, mb, &bk[k], &bbytes[k], where);
            if (st == FB_OK)
                st = gather_column(ctx, &pkeys[k], pi, mp, &pk[k], &pbytes[k], where);
        }
        join_req sub = *r;
        sub.build_first = sub.probe_first = 0;
        size_t sub_bytes = 0;
        void *sub_mem = NULL;
        if (st == FB_OK) {
            if (pairs) { /* room for one pair per probe row first, more when the partition needs it */
                int64_t cap = mp;
                for (;;) {
                    sub_bytes = (size_t)(cap > 0 ? cap : 1) * 16;
                    st = fb_alloc(ctx, sub_bytes, 64, &sub_mem, where);
                    if (st != FB_OK)
                        break;
                    sub.build_ids = sub_mem;
                    sub.probe_ids = sub.build_ids + cap;
                    sub.capacity = cap;
                    sub.total = 0;
                    st = join_direct(ctx, bk, pk, n_keys, &sub, where);
                    if (st != FB_ERR_CAPACITY || sub.total <= cap)
                        break;
                    fb_free(ctx, sub_mem, sub_bytes);
                    sub_mem = NULL;
                    cap = sub.total;
                }
            } else if (r->jtype == FB_JOIN_MARK) {
                sub_bytes = (size_t)mp + (size_t)(mp + 7) / 8 + 1;
                st = fb_alloc(ctx, sub_bytes, 64, &sub_mem, where);
                if (st == FB_OK) {
                    sub.marks = sub_mem;
                    sub.mvalid = r->mvalid ? sub.marks + mp : NULL;
                    st = join_direct(ctx, bk, pk, n_keys, &sub, where);
                }
            } else {
                sub_bytes = (size_t)mp * 4;
                st = fb_alloc(ctx, sub_bytes, 64, &sub_mem, where);
                if (st == FB_OK) {
                    sub.sel = sub_mem;
                    sub.capacity = mp;
                    st = join_direct(ctx, bk, pk, n_keys, &sub, where);
                }
            }
        }
        for (size_t k = 0; k < n_keys; k++) { /* a size of 0: not gathered */
            if (bbytes[k])
                fb_free(ctx, (void *)bk[k].data, bbytes[k]);
            if (pbytes[k])
                fb_free(ctx, (void *)pk[k].data, pbytes[k]);
        }
        if (st == FB_OK && pairs && sub.total > 0) {
            /* the partition's ids become the call's; kept until every partition is done */
            size_t need = (size_t)(used + sub.total) * 16;
            if (need > (size_t)held * 16) {
                int64_t nh = held ? held : 1024;
                while (nh < used + sub.total)
                    nh *= 2;
                int64_t *grown = NULL;
                st = fb_alloc(ctx, (size_t)nh * 16, 64, (void **)&grown, where);
                if (st == FB_OK) {
                    if (used) {
                        memcpy(grown, pb, (size_t)used * 8);
                        memcpy(grown + nh, pp, (size_t)used * 8);
                    }
                    if (pb)
                        fb_free(ctx, pb, (size_t)held * 16);
                    pb = grown;
                    pp = grown + nh;
                    held = nh;
                }
            }
            for (int64_t e = 0; st == FB_OK && e < sub.total; e++) {
                int64_t bl = sub.build_ids[e], pl = sub.probe_ids[e];
                pb[used + e] = bl < 0 ? -1 : (int64_t)bi[bl];
                pp[used + e] = (int64_t)pi[pl];
                count[pi[pl]]++;
            }
            if (st == FB_OK)
                used += sub.total;
        } else if (st == FB_OK && r->jtype == FB_JOIN_MARK) {
            for (int64_t e = 0; e < mp; e++) {
                uint32_t row = pi[e];
                r->marks[row] = sub.marks[e];
                if (r->mvalid) {
                    uint8_t bit = (uint8_t)(1u << (row & 7));
                    if ((sub.mvalid[e >> 3] >> (e & 7)) & 1)
                        r->mvalid[row >> 3] |= bit;
                    else
                        r->mvalid[row >> 3] &= (uint8_t)~bit;
                }
            }
        } else if (st == FB_OK) {
            for (int64_t e = 0; e < sub.total; e++)
                hit[pi[sub.sel[e]]] = 1;
        }
        if (sub_mem)
            fb_free(ctx, sub_mem, sub_bytes);
    }
    if (st == FB_OK && pairs) {
        r->total = used;
        if (used > r->capacity) {
            st = fb_set_error(ctx, FB_ERR_CAPACITY, where, "the result has %lld entries, the output holds %lld",
                              (long long)used, (long long)r->capacity);
        } else {
            int64_t at = 0; /* count[row] becomes the row's first output position */
            for (int64_t i = 0; i < np; i++) {
                int64_t c = count[i];
                count[i] = at;
                at += c;
            }
            for (int64_t e = 0; e < used; e++) {
                int64_t o = count[pp[e]]++;
                r->build_ids[o] = pb[e] < 0 ? -1 : r->build_first + pb[e];
                r->probe_ids[o] = r->probe_first + pp[e];
            }
        }
    } else if (st == FB_OK && hit) {
        int64_t k = 0;
        for (int64_t i = 0; i < np; i++)
            if (hit[i]) /* the partitions' semi (or anti) rows */
                r->sel[k++] = (uint32_t)i;
        r->total = k;
    }
    if (pb)
        fb_free(ctx, pb, (size_t)held * 16);
    if (count)
        fb_free(ctx, count, count_bytes);
    if (hit)
        fb_free(ctx, hit, (size_t)np + 1);
    side_free(ctx, &b);
    side_free(ctx, &p);
    if (st == FB_OK) {
        pthread_mutex_lock(&ctx->cl_lock);
        if (ctx->cl)
            ctx->cl->last_partitions = n_parts;
        pthread_mutex_unlock(&ctx->cl_lock);
    }
    return st;
}

/* The whole build side on the device when it fits the budget, else in hash partitions: as many as
 * the budget asks for, doubled while a partition still does not fit and the largest one shrinks. */
static fb_status join_any(fb_ctx *ctx, const fb_column *bkeys, const fb_column *pkeys, size_t n_keys, join_req *r,
                          const char *where)
{
    r->g_rows = bkeys[0].length;
    r->g_null_rows = r->jtype == FB_JOIN_MARK ? rows_with_null(bkeys, n_keys) : 0;
    r->total = 0;
    pthread_mutex_lock(&ctx->cl_lock);
    fb_status st = fb_cl_acquire(ctx, where);
    size_t budget = st == FB_OK ? fb_cl_budget(ctx->cl) : 0;
    if (st == FB_OK)
        ctx->cl->last_partitions = 0;
    pthread_mutex_unlock(&ctx->cl_lock);
    FB_FORWARD_IF_ERROR(st);
    st = join_direct(ctx, bkeys, pkeys, n_keys, r, where);
    if (st != FB_ERR_DEVICE_MEMORY || bkeys[0].length < 2)
        return st;
    /* about 100 device bytes per build row (table, runs, sort), plus the composite keys' tuples; half
     * the budget per partition leaves the other half to the probe side's chunks */
    uint64_t per_row = 100 + (n_keys > 1 ? 8 * n_keys + 30 : 0);
    uint64_t need = (uint64_t)bkeys[0].length * per_row;
    int bits = 1;
    while (bits < FB_RADIX_MAX_BITS && need >> bits > budget / 2)
        bits++;
    int64_t prev = INT64_MAX, largest = 0;
    for (;;) {
        r->total = 0;
        st = join_partitioned(ctx, bkeys, pkeys, n_keys, r, bits, &largest, where);
        if (st != FB_ERR_DEVICE_MEMORY)
            return st;
        if (bits == FB_RADIX_MAX_BITS || largest >= prev)
            return fb_set_error(ctx, FB_ERR_DEVICE_MEMORY, where,
                                "the build side does not fit the device memory budget (%zu bytes, FB_CL_MEM_BUDGET) "
                                "even in %d hash partitions (the largest holds %lld rows: equal keys): %s",
                                budget, 1 << bits, (long long)largest, fb_last_error(ctx));
        prev = largest;
        bits++;
    }
}

/* ---- public entry points -------------------------------------------------------------------------- */

/* FB_RETURN_ERROR_IF naming the public function (`where`) rather than the helper it runs in */
#define RETURN_ERROR_IF_AT(cond, ctx, st, ...)                                                                      \
    do {                                                                                                           \
        if (cond)                                                                                                  \
            return fb_set_error((ctx), (st), where, __VA_ARGS__);                                                  \
    } while (0)

static fb_status check_key_set(fb_ctx *ctx, const fb_column *bkeys, const fb_column *pkeys, size_t n_keys,
                               const char *where)
{
    if (!ctx)
        return fb_set_error(NULL, FB_ERR_INVALID_ARG, where, "ctx must not be NULL");
    RETURN_ERROR_IF_AT(!bkeys || !pkeys, ctx, FB_ERR_INVALID_ARG, "build_keys and probe_keys must not be NULL");
    RETURN_ERROR_IF_AT(n_keys < 1 || n_keys > FB_JOIN_MAX_KEYS, ctx, FB_ERR_INVALID_ARG,
                       "n_keys is %zu (1..%d)", n_keys, FB_JOIN_MAX_KEYS);
    for (size_t k = 0; k < n_keys; k++) {
        FB_FORWARD_IF_ERROR(check_keys(ctx, &bkeys[k], &pkeys[k], where));
        RETURN_ERROR_IF_AT(bkeys[k].length != bkeys[0].length || pkeys[k].length != pkeys[0].length, ctx,
                           FB_ERR_LENGTH_MISMATCH, "key column %zu has %lld build and %lld probe rows, column 0 %lld"
                           " and %lld", k, (long long)bkeys[k].length, (long long)pkeys[k].length,
                           (long long)bkeys[0].length, (long long)pkeys[0].length);
    }
    return FB_OK;
}

static fb_status join_probe(fb_ctx *ctx, const fb_column *build_keys, const fb_column *probe_keys, size_t n_keys,
                            int64_t build_first_row, int64_t probe_first_row, fb_join_type type, fb_join_pairs *out,
                            int64_t *n_pairs, const char *where)
{
    FB_FORWARD_IF_ERROR(check_key_set(ctx, build_keys, probe_keys, n_keys, where));
    RETURN_ERROR_IF_AT(!out || !n_pairs || (out->capacity > 0 && (!out->build_ids || !out->probe_ids)), ctx,
                       FB_ERR_INVALID_ARG, "out (with its id arrays) and n_pairs must not be NULL");
    RETURN_ERROR_IF_AT(type != FB_JOIN_INNER && type != FB_JOIN_LEFT, ctx, FB_ERR_INVALID_ARG,
                       "join type %d: fb_cl_join_probe does inner and left joins", (int)type);
    RETURN_ERROR_IF_AT(build_first_row < 0 || probe_first_row < 0 ||
                           build_first_row > INT64_MAX - build_keys[0].length ||
                           probe_first_row > INT64_MAX - probe_keys[0].length,
                       ctx, FB_ERR_INVALID_ARG, "first rows must be ≥ 0 and leave the ids below INT64_MAX");
    out->length = 0;
    out->more = 0;
    *n_pairs = 0;
    join_req r = {.jtype = (cl_int)type, .build_first = build_first_row, .probe_first = probe_first_row,
                  .build_ids = out->build_ids, .probe_ids = out->probe_ids, .capacity = out->capacity};
    fb_status st = join_any(ctx, build_keys, probe_keys, n_keys, &r, where);
    *n_pairs = r.total;
    if (st == FB_OK)
        out->length = r.total;
    return st;
}

fb_status fb_cl_join_probe_keys(fb_ctx *ctx, const fb_column *build_keys, const fb_column *probe_keys, size_t n_keys,
                                int64_t build_first_row, int64_t probe_first_row, fb_join_type type,
                                fb_join_pairs *out, int64_t *n_pairs)
{
    return join_probe(ctx, build_keys, probe_keys, n_keys, build_first_row, probe_first_row, type, out, n_pairs,
                      __func__);
}

fb_status fb_cl_join_probe(fb_ctx *ctx, const fb_column *build_key, int64_t build_first_row,
                           const fb_column *probe_key, int64_t probe_first_row, fb_join_type type, fb_join_pairs *out,
                           int64_t *n_pairs)
{
    return join_probe(ctx, build_key, probe_key, 1, build_first_row, probe_first_row, type, out, n_pairs, __func__);
}

static fb_status join_select(fb_ctx *ctx, const fb_column *build_keys, const fb_column *probe_keys, size_t n_keys,
                             fb_join_type type, uint32_t *sel_out, int64_t capacity, int64_t *n_out, const char *where)
{
    FB_FORWARD_IF_ERROR(check_key_set(ctx, build_keys, probe_keys, n_keys, where));
    int64_t np = probe_keys[0].length;
    RETURN_ERROR_IF_AT(!n_out || (np > 0 && !sel_out), ctx, FB_ERR_INVALID_ARG, "sel_out and n_out must not be NULL");
    RETURN_ERROR_IF_AT(type != FB_JOIN_SEMI && type != FB_JOIN_ANTI, ctx, FB_ERR_INVALID_ARG,
                       "join type %d: fb_cl_join_probe_select does semi and anti joins", (int)type);
    RETURN_ERROR_IF_AT(capacity < np, ctx, FB_ERR_CAPACITY, "sel_out holds %lld entries, the probe side has %lld rows",
                       (long long)capacity, (long long)np);
    *n_out = 0;
    join_req r = {.jtype = (cl_int)type, .sel = sel_out, .capacity = capacity};
    fb_status st = join_any(ctx, build_keys, probe_keys, n_keys, &r, where);
    if (st == FB_OK)
        *n_out = r.total;
    return st;
}

fb_status fb_cl_join_probe_select_keys(fb_ctx *ctx, const fb_column *build_keys, const fb_column *probe_keys,
                                       size_t n_keys, fb_join_type type, uint32_t *sel_out, int64_t capacity,
                                       int64_t *n_out)
{
    return join_select(ctx, build_keys, probe_keys, n_keys, type, sel_out, capacity, n_out, __func__);
}

fb_status fb_cl_join_probe_select(fb_ctx *ctx, const fb_column *build_key, const fb_column *probe_key,
                                  fb_join_type type, uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    return join_select(ctx, build_key, probe_key, 1, type, sel_out, capacity, n_out, __func__);
}

static fb_status join_mark(fb_ctx *ctx, const fb_column *build_keys, const fb_column *probe_keys, size_t n_keys,
                           fb_column_out *out, const char *where)
{
    FB_FORWARD_IF_ERROR(check_key_set(ctx, build_keys, probe_keys, n_keys, where));
    int64_t n = probe_keys[0].length;
    RETURN_ERROR_IF_AT(!out || (n > 0 && !out->data), ctx, FB_ERR_INVALID_ARG, "out (with data) must not be NULL");
    out->length = out->null_count = 0;
    RETURN_ERROR_IF_AT(out->type != FB_TYPE_UINT8, ctx, FB_ERR_UNSUPPORTED_TYPE, "out is %s; marks are uint8",
                       fb_type_name(out->type));
    RETURN_ERROR_IF_AT(out->capacity < n, ctx, FB_ERR_CAPACITY, "out holds %lld rows, the probe side has %lld",
                       (long long)out->capacity, (long long)n);
    if (n == 0) { /* opens the device all the same, as every twin does */
        pthread_mutex_lock(&ctx->cl_lock);
        fb_status st = fb_cl_acquire(ctx, where);
        pthread_mutex_unlock(&ctx->cl_lock);
        return st;
    }
    join_req r = {.jtype = FB_JOIN_MARK, .marks = out->data, .mvalid = out->validity};
    FB_FORWARD_IF_ERROR(join_any(ctx, build_keys, probe_keys, n_keys, &r, where));
    int64_t nulls = 0;
    if (out->validity)
        for (int64_t i = 0; i < n; i++)
            nulls += !((out->validity[i >> 3] >> (i & 7)) & 1);
    out->null_count = nulls;
    out->length = n;
    return FB_OK;
}

fb_status fb_cl_join_probe_mark_keys(fb_ctx *ctx, const fb_column *build_keys, const fb_column *probe_keys,
                                     size_t n_keys, fb_column_out *out)
{
    return join_mark(ctx, build_keys, probe_keys, n_keys, out, __func__);
}

fb_status fb_cl_join_probe_mark(fb_ctx *ctx, const fb_column *build_key, const fb_column *probe_key,
                                fb_column_out *out)
{
    return join_mark(ctx, build_key, probe_key, 1, out, __func__);
}

/* ---- a device join table that lives across probe calls (fb_plan_cl_internal.h) ---------------------------- */

struct fb_cl_join_table {
    fb_ctx *ctx;
    fb_type type;
    build_table t;
    cl_mem own[4 + 2 * FB_CL_TABLE_MAX_PAYLOAD]; /* t's buffers (t.rows may be the context's dummy, which is
                                                    not ours), then the payload columns' */
    int n_own;
    size_t bytes;
    fb_cl_dev_column payload[FB_CL_TABLE_MAX_PAYLOAD]; /* fb_cl_join_table_payload() */
    int n_payload;
};

/* Takes buffer m out of job j (it stays alive) into tb. */
static void detach(fb_cl_job *j, cl_mem m, fb_cl_join_table *tb)
{
    for (int i = 0; i < j->n_mems; i++) {
        if (j->mems[i] != m)
            continue;
        tb->own[tb->n_own++] = m;
        tb->bytes += j->sizes[i];
        j->bytes -= j->sizes[i];
        memmove(&j->mems[i], &j->mems[i + 1], (size_t)(j->n_mems - i - 1) * sizeof j->mems[0]);
        memmove(&j->sizes[i], &j->sizes[i + 1], (size_t)(j->n_mems - i - 1) * sizeof j->sizes[0]);
        j->n_mems--;
        return;
    }
}

void fb_cl_join_table_free(fb_cl_join_table *tb)
{
    if (!tb)
        return;
    for (int i = 0; i < tb->n_own; i++)
        clReleaseMemObject(tb->own[i]);
    free(tb);
}

fb_status fb_cl_join_table_create(fb_ctx *ctx, const fb_column *build_key, fb_cl_join_table **out)
{
    const char *where = __func__;
    if (!ctx)
        return fb_set_error(NULL, FB_ERR_INVALID_ARG, where, "ctx must not be NULL");
    RETURN_ERROR_IF_AT(!build_key || !out, ctx, FB_ERR_INVALID_ARG, "build_key and out must not be NULL");
    *out = NULL;
    FB_FORWARD_IF_ERROR(check_keys(ctx, build_key, build_key, where));
    fb_cl_join_table *tb = calloc(1, sizeof *tb);
    RETURN_ERROR_IF_AT(!tb, ctx, FB_ERR_OUT_OF_MEMORY, "no memory for a device join table");
    tb->ctx = ctx;
    tb->type = build_key->type;
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    if (st != FB_OK)
        goto done;
    if (!j.cl->join_slots) {
        st = fb_set_error(ctx, FB_ERR_OPENCL, where, "the device lacks cl_khr_int64_base_atomics");
        goto done;
    }
    TRY(build(&j, build_key, &tb->t));
    TRY(fb_cl_job_finish(&j));
    detach(&j, tb->t.tkeys, tb);
    detach(&j, tb->t.start, tb);
    detach(&j, tb->t.end, tb);
    if (tb->t.rows != j.cl->dummy)
        detach(&j, tb->t.rows, tb);
done:
    st = fb_cl_job_close(&j, st);
    if (st != FB_OK) {
        fb_cl_join_table_free(tb);
        return st;
    }
    *out = tb;
    return FB_OK;
}

size_t fb_cl_join_table_bytes(const fb_cl_join_table *tb)
{
    return tb ? tb->bytes : 0;
}

fb_status fb_cl_join_table_probe(fb_cl_join_table *tb, const fb_column *probe_key, fb_join_type type,
                                 fb_join_pairs *out, int64_t *n_pairs)
{
    const char *where = __func__;
    if (!tb)
        return fb_set_error(NULL, FB_ERR_INVALID_ARG, where, "the table must not be NULL");
    fb_ctx *ctx = tb->ctx;
    RETURN_ERROR_IF_AT(!probe_key || !out || !n_pairs || (out->capacity > 0 && (!out->build_ids || !out->probe_ids)),
                       ctx, FB_ERR_INVALID_ARG, "probe_key, out (with its id arrays) and n_pairs must not be NULL");
    RETURN_ERROR_IF_AT(probe_key->type != tb->type, ctx, FB_ERR_UNSUPPORTED_TYPE, "the probe key is %s, the table's %s",
                       fb_type_name(probe_key->type), fb_type_name(tb->type));
    RETURN_ERROR_IF_AT(type != FB_JOIN_INNER && type != FB_JOIN_LEFT && type != FB_JOIN_SEMI && type != FB_JOIN_ANTI,
                       ctx, FB_ERR_INVALID_ARG, "join type %d: inner, left, semi or anti", (int)type);
    RETURN_ERROR_IF_AT(probe_key->length > FB_MORSEL_MAX_ROWS, ctx, FB_ERR_INVALID_ARG, "%lld probe rows are too many",
                       (long long)probe_key->length);
    out->length = 0;
    out->more = 0;
    *n_pairs = 0;
    int64_t total = 0;
    fb_status st = probe_entries_table(ctx, &tb->t, tb->bytes, NULL, 0, probe_key, 0, (cl_int)type, out->build_ids,
                                       out->probe_ids, NULL, out->capacity, &total, where);
    *n_pairs = total;
    if (st == FB_OK)
        out->length = total;
    return st;
}

fb_status fb_cl_join_table_select(fb_cl_join_table *tb, const fb_column *probe_key, fb_join_type type,
                                  uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    const char *where = __func__;
    if (!tb)
        return fb_set_error(NULL, FB_ERR_INVALID_ARG, where, "the table must not be NULL");
    fb_ctx *ctx = tb->ctx;
    RETURN_ERROR_IF_AT(!probe_key || !n_out || (probe_key->length > 0 && !sel_out), ctx, FB_ERR_INVALID_ARG,
                       "probe_key, sel_out and n_out must not be NULL");
    RETURN_ERROR_IF_AT(probe_key->type != tb->type, ctx, FB_ERR_UNSUPPORTED_TYPE, "the probe key is %s, the table's %s",
                       fb_type_name(probe_key->type), fb_type_name(tb->type));
    RETURN_ERROR_IF_AT(type != FB_JOIN_SEMI && type != FB_JOIN_ANTI, ctx, FB_ERR_INVALID_ARG,
                       "join type %d: semi or anti", (int)type);
    RETURN_ERROR_IF_AT(capacity < probe_key->length, ctx, FB_ERR_CAPACITY,
                       "sel_out holds %lld entries, the probe side has %lld rows", (long long)capacity,
                       (long long)probe_key->length);
    *n_out = 0;
    int64_t total = 0;
    fb_status st = probe_entries_table(ctx, &tb->t, tb->bytes, NULL, 0, probe_key, 0, (cl_int)type, NULL, NULL,
                                       sel_out, capacity, &total, where);
    if (st == FB_OK)
        *n_out = total;
    return st;
}

fb_status fb_cl_join_table_payload(fb_cl_join_table *tb, const fb_column *cols, size_t n_cols)
{
    const char *where = __func__;
    if (!tb)
        return fb_set_error(NULL, FB_ERR_INVALID_ARG, where, "the table must not be NULL");
    fb_ctx *ctx = tb->ctx;
    RETURN_ERROR_IF_AT(n_cols > FB_CL_TABLE_MAX_PAYLOAD || tb->n_payload > 0 || (n_cols && !cols), ctx,
                       FB_ERR_INVALID_ARG, "%zu payload columns (at most %d, once per table)", n_cols,
                       FB_CL_TABLE_MAX_PAYLOAD);
    for (size_t c = 0; c < n_cols; c++) {
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, &cols[c], where, "a payload column"));
        RETURN_ERROR_IF_AT(cols[c].length != tb->t.rows_total, ctx, FB_ERR_INVALID_ARG,
                           "a payload column has %lld rows, the table %lld", (long long)cols[c].length,
                           (long long)tb->t.rows_total);
    }
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    if (st != FB_OK)
        return fb_cl_job_close(&j, st);
    j.bytes = tb->bytes; /* the table counts against the budget */
    fb_cl_dev_column d[FB_CL_TABLE_MAX_PAYLOAD];
    for (size_t c = 0; c < n_cols; c++)
        TRY(fb_cl_upload_column(&j, &cols[c], &d[c]));
    TRY(fb_cl_job_finish(&j));
    for (size_t c = 0; c < n_cols; c++) {
        if (d[c].data != j.cl->dummy)
            detach(&j, d[c].data, tb);
        if (d[c].valid != j.cl->dummy)
            detach(&j, d[c].valid, tb);
        tb->payload[c] = d[c];
    }
    tb->n_payload = (int)n_cols;
done:
    return fb_cl_job_close(&j, st);
}

int fb_cl_join_table_payload_count(const fb_cl_join_table *tb)
{
    return tb ? tb->n_payload : 0;
}

const fb_cl_dev_column *fb_cl_join_table_column(const fb_cl_join_table *tb, int c)
{
    return tb && c >= 0 && c < tb->n_payload ? &tb->payload[c] : NULL;
}

fb_status fb_cl_join_table_probe_dev(fb_cl_job *j, const fb_cl_join_table *tb, const fb_cl_dev_column *key, int64_t n,
                                     fb_join_type type, cl_mem *build_ids, cl_mem *probe_ids, int64_t *count)
{
    RETURN_ERROR_IF_AT2(!tb || !key || key->type != (cl_int)tb->type, j, "a probe key of the table's type");
    RETURN_ERROR_IF_AT2(type != FB_JOIN_INNER && type != FB_JOIN_LEFT && type != FB_JOIN_SEMI && type != FB_JOIN_ANTI,
                        j, "an inner, left, semi or anti join");
    *count = 0;
    *build_ids = *probe_ids = NULL;
    if (n == 0)
        return FB_OK;
    if (!j->cl->join_slots)
        return fb_set_error(j->ctx, FB_ERR_OPENCL, j->where, "the device lacks cl_khr_int64_base_atomics");
    cl_mem ob = j->cl->dummy, op = j->cl->dummy, os = j->cl->dummy;
    int pairs = type == FB_JOIN_INNER || type == FB_JOIN_LEFT;
    FB_FORWARD_IF_ERROR(probe_chunk(j, &tb->t, key, n, (cl_int)type, 0, 0, INT64_MAX, &ob, &op, &os, count));
    if (*count == 0)
        return FB_OK;
    *build_ids = pairs ? ob : NULL;
    *probe_ids = pairs ? op : os;
    return FB_OK;
}
