/* cl_keys.c - composite keys for the OpenCL join and group-by (keys.cl): 2..4 integer key columns
 * become one int64 column holding, for each row, the first row with an equal tuple (for a join's
 * probe side: the first build row with an equal tuple, or -1). The single-key kernels then give the
 * composite answer: equal tuples have equal keys, distinct tuples distinct keys, and a tuple's
 * first row orders groups as the tuple does.
 *
 * Device memory: the build (or group-by) side's tuples and table stay on the device while it is
 * processed, about 8 x n_keys + 30 bytes per row; the probe side goes through in chunks. */
#include "fb_cl_internal.h"
#include "fb_plan_cl_internal.h"

#include <stdlib.h>
#include <string.h>

/* The device table of one side's tuples. */
typedef struct keys_table {
    cl_mem tup, nulls, trow, first, slots;
    cl_ulong mask;
    uint64_t n;
    cl_uint n_keys;
} keys_table;

static fb_status run(fb_cl_job *j, cl_kernel k, const char *name, const fb_cl_karg *args, cl_uint n, uint64_t items)
{
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, k, name, args, n));
    return fb_cl_job_run(j, k, name, fb_cl_grid_groups(j->cl, items, j->cl->wg_group), j->cl->wg_group);
}

/* Packs key column k (n_keys in all) of m rows on the device into tuples tup (m x n_keys longs) and nulls. */
static fb_status pack_one(fb_cl_job *j, const fb_cl_dev_column *d, size_t n_keys, size_t k, int64_t m, cl_mem tup,
                          cl_mem nulls)
{
    cl_ulong rows = (cl_ulong)m;
    cl_uint nk = (cl_uint)n_keys, kk = (cl_uint)k;
    const fb_cl_karg args[] = {KARG(d->data), KARG(d->type), KARG(d->valid), KARG(d->has_valid), KARG(d->voff),
                               KARG(rows),    KARG(nk),      KARG(kk),       KARG(tup),          KARG(nulls)};
    return run(j, j->cl->keys_pack, "fb_keys_pack", args, 10, rows);
}

/* Packs rows [r0, r0 + m) of the key columns into tuples tup (m x n_keys longs) and null patterns. */
static fb_status pack(fb_cl_job *j, const fb_column *keys, size_t n_keys, int64_t r0, int64_t m, cl_mem tup,
                      cl_mem nulls)
{
    for (size_t k = 0; k < n_keys; k++) {
        int mark = j->n_mems;
        fb_cl_dev_column d;
        FB_FORWARD_IF_ERROR(fb_cl_upload_rows(j, &keys[k], r0, m, &d));
        FB_FORWARD_IF_ERROR(pack_one(j, &d, n_keys, k, m, tup, nulls));
        fb_cl_job_release_from(j, mark); /* one key column on the device at a time */
    }
    return FB_OK;
}

/* The probe tuples ptup / pnulls (m rows) looked up in t: dkey (m longs) and dvalid. */
static fb_status lookup(fb_cl_job *j, const keys_table *t, cl_mem ptup, cl_mem pnulls, int64_t m, cl_mem dkey,
                        cl_mem dvalid)
{
    cl_ulong rows = (cl_ulong)m;
    const fb_cl_karg args[] = {KARG(ptup),   KARG(pnulls),   KARG(t->n_keys), KARG(rows), KARG(t->trow), KARG(t->mask),
                               KARG(t->tup), KARG(t->nulls), KARG(t->first),  KARG(dkey), KARG(dvalid)};
    return run(j, j->cl->keys_lookup, "fb_keys_lookup", args, 11, (rows + 7) / 8);
}

static fb_status build(fb_cl_job *j, const fb_column *keys, size_t n_keys, int skip_nulls, keys_table *t)
{
    uint64_t n = (uint64_t)keys[0].length, cap = 64;
    while (cap < 2 * n)
        cap <<= 1;
    t->n = n;
    t->mask = cap - 1;
    t->n_keys = (cl_uint)n_keys;
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)n * n_keys * 8, NULL, &t->tup));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)n, NULL, &t->nulls));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)cap * 4, NULL, &t->trow));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)cap * 4, NULL, &t->first));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)n * 4, NULL, &t->slots));
    FB_FORWARD_IF_ERROR(fb_cl_job_fill(j, t->trow, 0xFFFFFFFFu, (size_t)cap * 4));
    FB_FORWARD_IF_ERROR(fb_cl_job_fill(j, t->first, 0xFFFFFFFFu, (size_t)cap * 4));
    FB_FORWARD_IF_ERROR(pack(j, keys, n_keys, 0, (int64_t)n, t->tup, t->nulls));
    cl_ulong rows = n;
    cl_int skip = skip_nulls;
    const fb_cl_karg args[] = {KARG(t->tup),  KARG(t->nulls), KARG(t->n_keys), KARG(rows),       KARG(skip),
                               KARG(t->trow), KARG(t->mask),  KARG(t->slots),  KARG(t->first)};
    return run(j, j->cl->keys_insert, "fb_keys_insert", args, 9, rows);
}

/* Reads key and validity (when valid is not NULL) of n rows from device buffers. */
static fb_status read_keys(fb_cl_job *j, cl_mem dkey, cl_mem dvalid, int64_t n, int64_t *key, uint8_t *valid)
{
    FB_FORWARD_IF_ERROR(fb_cl_job_read(j, dkey, CL_FALSE, 0, (size_t)n * 8, key));
    if (valid)
        FB_FORWARD_IF_ERROR(fb_cl_job_read(j, dvalid, CL_FALSE, 0, (size_t)(n + 7) / 8, valid));
    return fb_cl_job_finish(j);
}

static fb_status first_keys(fb_cl_job *j, const keys_table *t, int64_t *key, uint8_t *valid)
{
    int mark = j->n_mems;
    cl_mem dkey, dvalid;
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_WRITE_ONLY, (size_t)t->n * 8, NULL, &dkey));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_WRITE_ONLY, (size_t)(t->n + 7) / 8, NULL, &dvalid));
    cl_ulong rows = t->n;
    const fb_cl_karg args[] = {KARG(t->slots), KARG(t->first), KARG(rows), KARG(dkey), KARG(dvalid)};
    FB_FORWARD_IF_ERROR(run(j, j->cl->keys_first, "fb_keys_first", args, 5, (rows + 7) / 8));
    FB_FORWARD_IF_ERROR(read_keys(j, dkey, dvalid, (int64_t)t->n, key, valid));
    fb_cl_job_release_from(j, mark);
    return FB_OK;
}

fb_status fb_cl_keys_group(fb_ctx *ctx, const fb_column *keys, size_t n_keys, int64_t *key, const char *where)
{
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    if (st != FB_OK || keys[0].length == 0)
        return fb_cl_job_close(&j, st);
    keys_table t;
    TRY(build(&j, keys, n_keys, 0, &t));
    TRY(first_keys(&j, &t, key, NULL));
done:
    return fb_cl_job_close(&j, st);
}

fb_status fb_cl_keys_join(fb_ctx *ctx, const fb_column *bkeys, const fb_column *pkeys, size_t n_keys, int64_t *bkey,
                          uint8_t *bvalid, int64_t *pkey, uint8_t *pvalid, const char *where)
{
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    int64_t nb = bkeys[0].length, np = pkeys[0].length;
    if (st != FB_OK)
        return fb_cl_job_close(&j, st);
    if (nb == 0) { /* nothing matches: every probe key -1, or null */
        for (int64_t i = 0; i < np; i++) {
            int ok = 1;
            for (size_t k = 0; k < n_keys; k++)
                ok &= fb_column_is_valid(&pkeys[k], i);
            pkey[i] = ok ? -1 : 0;
            if (i % 8 == 0)
                pvalid[i / 8] = 0;
            pvalid[i / 8] |= (uint8_t)(ok << (i % 8));
        }
        return fb_cl_job_close(&j, FB_OK);
    }
    keys_table t;
    TRY(build(&j, bkeys, n_keys, 1, &t));
    TRY(first_keys(&j, &t, bkey, bvalid));
    fb_cl_job_release(&j, t.slots);
    /* probe chunks: tuples, nulls, one key column's upload (at most 8 bytes and a validity bit), output */
    size_t per_row = 8 * n_keys + 1 + 9 + 8 + 1;
    int64_t chunk = (int64_t)(fb_cl_job_room(&j) / per_row) & ~(int64_t)7;
    if (chunk > np)
        chunk = np;
    if (np > 0 && chunk < 1024 && chunk < np) {
        st = fb_set_error(ctx, FB_ERR_DEVICE_MEMORY, where,
                          "the device memory budget (%zu bytes, FB_CL_MEM_BUDGET) leaves %zu bytes after the build"
                          " side's composite keys: too little for chunks of the probe side",
                          fb_cl_budget(j.cl), fb_cl_job_room(&j));
        goto done;
    }
    for (int64_t r0 = 0; r0 < np; r0 += chunk) {
        int64_t m = np - r0 < chunk ? np - r0 : chunk;
        int mark = j.n_mems;
        cl_mem ptup, pnulls, dkey, dvalid;
        TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, (size_t)m * n_keys * 8, NULL, &ptup));
        TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, (size_t)m, NULL, &pnulls));
        TRY(pack(&j, pkeys, n_keys, r0, m, ptup, pnulls));
        TRY(fb_cl_job_buffer(&j, CL_MEM_WRITE_ONLY, (size_t)m * 8, NULL, &dkey));
        TRY(fb_cl_job_buffer(&j, CL_MEM_WRITE_ONLY, (size_t)(m + 7) / 8, NULL, &dvalid));
        TRY(lookup(&j, &t, ptup, pnulls, m, dkey, dvalid));
        TRY(read_keys(&j, dkey, dvalid, m, pkey + r0, pvalid + r0 / 8)); /* r0 is a multiple of 8 */
        fb_cl_job_release_from(&j, mark);
    }
done:
    return fb_cl_job_close(&j, st);
}

/* ---- a build side's composite keys kept on the device (fb_plan_cl_internal.h) ---------------------------- */

struct fb_cl_keys_table {
    keys_table t;
    cl_mem own[4];
    int n_own;
    size_t bytes;
};

void fb_cl_keys_table_free(fb_cl_keys_table *kt)
{
    if (!kt)
        return;
    for (int i = 0; i < kt->n_own; i++)
        clReleaseMemObject(kt->own[i]);
    free(kt);
}

size_t fb_cl_keys_table_bytes(const fb_cl_keys_table *kt)
{
    return kt ? kt->bytes : 0;
}

/* Takes buffer m out of job j (it stays alive) into kt. */
static void keep(fb_cl_job *j, cl_mem m, fb_cl_keys_table *kt)
{
    for (int i = 0; i < j->n_mems; i++) {
        if (j->mems[i] != m)
            continue;
        kt->own[kt->n_own++] = m;
        kt->bytes += j->sizes[i];
        j->bytes -= j->sizes[i];
        memmove(&j->mems[i], &j->mems[i + 1], (size_t)(j->n_mems - i - 1) * sizeof j->mems[0]);
        memmove(&j->sizes[i], &j->sizes[i + 1], (size_t)(j->n_mems - i - 1) * sizeof j->sizes[0]);
        j->n_mems--;
        return;
    }
}

fb_status fb_cl_keys_table_create(fb_ctx *ctx, const fb_column *bkeys, size_t n_keys, int64_t *bkey, uint8_t *bvalid,
                                  fb_cl_keys_table **out)
{
    static const char where[] = "fb_cl_keys_table_create";
    *out = NULL;
    if (n_keys < 2 || n_keys > 4 || bkeys[0].length == 0)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "2..4 key columns of at least one row");
    fb_cl_keys_table *kt = calloc(1, sizeof *kt);
    if (!kt)
        return fb_set_error(ctx, FB_ERR_OUT_OF_MEMORY, where, "no memory for a device keys table");
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, where);
    if (st != FB_OK)
        goto done;
    TRY(build(&j, bkeys, n_keys, 1, &kt->t));
    TRY(first_keys(&j, &kt->t, bkey, bvalid));
    fb_cl_job_release(&j, kt->t.slots);
    kt->t.slots = NULL;
    keep(&j, kt->t.tup, kt);
    keep(&j, kt->t.nulls, kt);
    keep(&j, kt->t.trow, kt);
    keep(&j, kt->t.first, kt);
done:
    st = fb_cl_job_close(&j, st);
    if (st != FB_OK) {
        fb_cl_keys_table_free(kt);
        return st;
    }
    *out = kt;
    return FB_OK;
}

fb_status fb_cl_keys_lookup_dev(fb_cl_job *j, const fb_cl_keys_table *kt, const fb_cl_dev_column *pkeys, int64_t n,
                                fb_cl_dev_column *out)
{
    memset(out, 0, sizeof *out);
    out->type = FB_TYPE_INT64;
    out->length = (cl_ulong)n;
    out->data = out->valid = j->cl->dummy;
    if (n == 0)
        return FB_OK;
    size_t n_keys = kt->t.n_keys;
    cl_mem ptup, pnulls;
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)n * n_keys * 8, NULL, &ptup));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)n, NULL, &pnulls));
    for (size_t k = 0; k < n_keys; k++)
        FB_FORWARD_IF_ERROR(pack_one(j, &pkeys[k], n_keys, k, n, ptup, pnulls));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)n * 8, NULL, &out->data));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)(n + 7) / 8, NULL, &out->valid));
    out->has_valid = 1;
    return lookup(j, &kt->t, ptup, pnulls, n, out->data, out->valid);
}
