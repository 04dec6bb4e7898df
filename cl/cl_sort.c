/* cl_sort.c - the OpenCL twins of fb_sort.h (fb_cl_sort_permutation, fb_cl_sort_top_n,
 * fb_cl_sort_table): the same argument checks and the same stable SQL order as the CPU sort, from an
 * LSD radix sort on the device (sort.cl).
 *
 * The CPU sort builds one normalized record per row; on the device that would mean moving up to
 * 16-byte records through every pass. Instead the device sorts (32-bit word, row id) pairs one word
 * at a time, least significant first: for each key from the last to the first, the low then the
 * high half of its ordered bits (64-bit types), then its null bit (columns with a validity bitmap).
 * Every pass is stable, so the result is the order of the concatenated words: the CPU's normalized
 * key order, ties in input order. Each word is gathered through the current permutation, so a
 * one-column 32-bit sort reads its keys once (sequentially) and then moves 8 bytes per row per
 * digit pass; digits on which every row agrees are skipped (one histogram pass per word). */
#include "fb/fb_cl.h"
#include "fb/fb_sort.h"
#include "fb_cl_internal.h"
#include "fb_kernel_table.h"
#include "fb_kernels_common.h"
#include "fb_sort_internal.h"

#include <string.h>

/* sort.cl's tile: RADIX_WG x RADIX_ITEMS */
#define RADIX_WG 256
#define RADIX_TILE (256 * 8)

#define WORD_LOW 0
#define WORD_HIGH 1
#define WORD_NULL 2

/* The radix passes' geometry: `groups` work-groups, each walking `tpg` consecutive tiles. */
typedef struct radix_plan {
    size_t groups;
    cl_uint tpg;
} radix_plan;

static radix_plan plan_for(const struct fb_cl_state *cl, uint64_t n)
{
    uint64_t tiles = (n + RADIX_TILE - 1) / RADIX_TILE;
    /* enough groups to fill the device (several per compute unit hide the barriers' latency), few
     * enough that the digit-major count array stays small for the one-group scan */
    uint64_t want = (uint64_t)(cl->compute_units ? cl->compute_units : 1) * 8;
    if (want > 2048)
        want = 2048;
    uint64_t g = tiles < want ? tiles : want;
    if (g == 0)
        g = 1;
    uint64_t tpg = (tiles + g - 1) / g;
    if (tpg == 0)
        tpg = 1;
    radix_plan p = {(size_t)((tiles + tpg - 1) / tpg), (cl_uint)tpg};
    if (p.groups == 0)
        p.groups = 1;
    return p;
}

/* The device buffers of one sort. */
typedef struct sort_bufs {
    cl_mem ka, kb, va, vb, hist, counts;
    radix_plan plan;
} sort_bufs;

/* One stable pass of (ka, va) by the digit at `shift` into (kb, vb), then swaps. */
static fb_status radix_pass(fb_cl_job *j, sort_bufs *b, cl_ulong n, cl_uint shift)
{
    struct fb_cl_state *cl = j->cl;
    cl_uint tpg = b->plan.tpg;
    const fb_cl_karg cargs[] = {KARG(b->ka), KARG(n), KARG(shift), KARG(tpg), KARG(b->counts),
                                KLOCAL(256 * sizeof(cl_uint))};
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, cl->radix_count, "fb_radix_count", cargs, 6));
    FB_FORWARD_IF_ERROR(fb_cl_job_run(j, cl->radix_count, "fb_radix_count", b->plan.groups, cl->wg_sort));
    cl_ulong n_counts = (cl_ulong)b->plan.groups * 256;
    const fb_cl_karg sargs[] = {KARG(b->counts), KARG(n_counts), KLOCAL(cl->wg_scan * sizeof(cl_uint))};
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, cl->select_scan, "fb_select_scan", sargs, 3));
    FB_FORWARD_IF_ERROR(fb_cl_job_run(j, cl->select_scan, "fb_select_scan", 1, cl->wg_scan));
    const fb_cl_karg xargs[] = {KARG(b->ka), KARG(b->va), KARG(b->kb), KARG(b->vb),
                                KARG(n),     KARG(shift), KARG(tpg),   KARG(b->counts)};
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, cl->radix_scatter, "fb_radix_scatter", xargs, 8));
    FB_FORWARD_IF_ERROR(fb_cl_job_run(j, cl->radix_scatter, "fb_radix_scatter", b->plan.groups, RADIX_WG));
    cl_mem t = b->ka;
    b->ka = b->kb;
    b->kb = t;
    t = b->va;
    b->va = b->vb;
    b->vb = t;
    return FB_OK;
}

/* Sorts (b->ka, b->va) stably by the low `digits` bytes of the words, skipping every digit on which
 * all rows agree (one histogram pass, 4 KiB back). *moved becomes 1 when a pass ran. */
static fb_status sort_passes(fb_cl_job *j, sort_bufs *b, cl_ulong n, int digits, int *moved)
{
    struct fb_cl_state *cl = j->cl;
    cl_uint hist[1024];
    FB_FORWARD_IF_ERROR(fb_cl_job_fill(j, b->hist, 0u, sizeof hist));
    /* ~16 words per work-item, and few enough groups that their 1024 global atomics each stay cheap */
    size_t hgroups = fb_cl_grid_groups(cl, (n + 15) / 16, cl->wg_sort);
    if (hgroups > (size_t)cl->compute_units * 8)
        hgroups = (size_t)cl->compute_units * 8;
    const fb_cl_karg hargs[] = {KARG(b->ka), KARG(n), KARG(b->hist), KLOCAL(1024 * sizeof(cl_uint))};
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, cl->sort_digit_hist, "fb_sort_digit_hist", hargs, 4));
    FB_FORWARD_IF_ERROR(fb_cl_job_run(j, cl->sort_digit_hist, "fb_sort_digit_hist", hgroups ? hgroups : 1,
                                      cl->wg_sort));
    FB_FORWARD_IF_ERROR(fb_cl_job_read(j, b->hist, CL_TRUE, 0, sizeof hist, hist));
    for (int dg = 0; dg < digits; dg++) {
        int constant = 0;
        for (int v = 0; v < 256 && !constant; v++)
            constant = hist[dg * 256 + v] == n;
        if (constant)
            continue;
        FB_FORWARD_IF_ERROR(radix_pass(j, b, n, (cl_uint)(8 * dg)));
        *moved = 1;
    }
    return FB_OK;
}

/* Sorts the row ids in b->va (which holds 0..n-1, in order, on entry) stably by one word of a key. */
static fb_status sort_word(fb_cl_job *j, sort_bufs *b, const fb_cl_dev_column *d, const fb_sort_key *key, cl_ulong n,
                           cl_int kind, int *moved)
{
    struct fb_cl_state *cl = j->cl;
    cl_int has_perm = *moved, nulls_first = key->nulls_first != 0;
    cl_uint flip = key->descending ? 0xFFFFFFFFu : 0u;
    const fb_cl_karg wargs[] = {KARG(d->data), KARG(d->type), KARG(d->valid), KARG(d->has_valid),
                                KARG(d->voff), KARG(b->va),   KARG(has_perm), KARG(n),
                                KARG(kind),    KARG(flip),    KARG(nulls_first), KARG(b->ka)};
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, cl->sort_word, "fb_sort_word", wargs, 12));
    FB_FORWARD_IF_ERROR(fb_cl_job_run(j, cl->sort_word, "fb_sort_word", fb_cl_grid_groups(cl, n, cl->wg_sort),
                                      cl->wg_sort));
    return sort_passes(j, b, n, kind == WORD_NULL ? 1 : 4, moved);
}

/* The second key and value buffers, the histogram and the count array of a sort of n pairs. */
static fb_status scratch_buffers(fb_cl_job *j, sort_bufs *b, cl_ulong n)
{
    size_t wbytes = (size_t)n * sizeof(cl_uint);
    b->plan = plan_for(j->cl, n);
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, wbytes, NULL, &b->kb));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, wbytes, NULL, &b->vb));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, 1024 * sizeof(cl_uint), NULL, &b->hist));
    return fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (b->plan.groups * 256 + 1) * sizeof(cl_uint), NULL, &b->counts);
}

fb_status fb_cl_sort_pairs(fb_cl_job *j, cl_mem keys, cl_mem vals, uint64_t n)
{
    if (n < 2)
        return FB_OK;
    if (j->cl->wg_radix < RADIX_WG)
        return fb_set_error(j->ctx, FB_ERR_OPENCL, j->where,
                            "the device runs fb_radix_scatter with at most %zu work-items per group; it needs %d",
                            j->cl->wg_radix, RADIX_WG);
    int mark = j->n_mems, moved = 0;
    sort_bufs b;
    memset(&b, 0, sizeof b);
    b.ka = keys;
    b.va = vals;
    FB_FORWARD_IF_ERROR(scratch_buffers(j, &b, n));
    FB_FORWARD_IF_ERROR(sort_passes(j, &b, n, 4, &moved));
    if (b.va != vals) { /* an odd number of passes: the result is in the scratch pair */
        size_t bytes = (size_t)n * sizeof(cl_uint);
        cl_int err = fb_cl_fault(FB_CL_FAULT_WRITE);
        if (err == CL_SUCCESS)
            err = clEnqueueCopyBuffer(j->cl->queue, b.ka, keys, 0, 0, bytes, 0, NULL, NULL);
        if (err == CL_SUCCESS)
            err = clEnqueueCopyBuffer(j->cl->queue, b.va, vals, 0, 0, bytes, 0, NULL, NULL);
        if (err != CL_SUCCESS)
            return fb_cl_fail(j->ctx, j->where, "clEnqueueCopyBuffer", err);
    }
    fb_cl_job_release_from(j, mark);
    return FB_OK;
}

/* The sort permutation of keys (n > 0 rows) on the device: *perm is b->va when it returns FB_OK. */
static fb_status device_sort(fb_cl_job *j, const fb_sort_key *keys, size_t n_keys, int64_t rows, sort_bufs *b)
{
    struct fb_cl_state *cl = j->cl;
    if (cl->wg_radix < RADIX_WG)
        return fb_set_error(j->ctx, FB_ERR_OPENCL, j->where,
                            "the device runs fb_radix_scatter with at most %zu work-items per group; it needs %d",
                            cl->wg_radix, RADIX_WG);
    cl_ulong n = (cl_ulong)rows;
    size_t wbytes = (size_t)rows * sizeof(cl_uint);
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, wbytes, NULL, &b->ka));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, wbytes, NULL, &b->va));
    FB_FORWARD_IF_ERROR(scratch_buffers(j, b, n));
    const fb_cl_karg iargs[] = {KARG(b->va), KARG(n)};
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, cl->sort_iota, "fb_sort_iota", iargs, 2));
    FB_FORWARD_IF_ERROR(
        fb_cl_job_run(j, cl->sort_iota, "fb_sort_iota", fb_cl_grid_groups(cl, n, cl->wg_sort), cl->wg_sort));
    int moved = 0;
    for (size_t k = n_keys; k-- > 0;) {
        const fb_column *c = &keys[k].column;
        int mark = j->n_mems;
        fb_cl_dev_column d;
        FB_FORWARD_IF_ERROR(fb_cl_upload_column(j, c, &d));
        FB_FORWARD_IF_ERROR(sort_word(j, b, &d, &keys[k], n, WORD_LOW, &moved));
        if (fb_type_width(c->type) == 8)
            FB_FORWARD_IF_ERROR(sort_word(j, b, &d, &keys[k], n, WORD_HIGH, &moved));
        if (c->validity)
            FB_FORWARD_IF_ERROR(sort_word(j, b, &d, &keys[k], n, WORD_NULL, &moved));
        fb_cl_job_release_from(j, mark); /* one key column on the device at a time */
    }
    return FB_OK;
}

/* ---- inputs larger than the device memory budget: sorted runs merged on the host ------------------- */

/* The ordered bits of one key of row `row` (fb_sort.h's normalized key: unsigned order = sort order)
 * and whether it is null. */
static uint64_t host_word(const fb_sort_key *k, int64_t row, int *is_null)
{
    const fb_column *c = &k->column;
    *is_null = !fb_column_is_valid(c, row);
    if (*is_null)
        return 0;
    const char *p = (const char *)c->data;
    int64_t i = c->offset + row;
    uint64_t w;
    switch (c->type) {
    case FB_TYPE_INT8: w = (uint32_t)fb_key_32((uint32_t)(int32_t)((const int8_t *)p)[i], FB_KEY_SIGNED) ^ 0x80000000u; break;
    case FB_TYPE_INT16: w = (uint32_t)fb_key_32((uint32_t)(int32_t)((const int16_t *)p)[i], FB_KEY_SIGNED) ^ 0x80000000u; break;
    case FB_TYPE_UINT8: w = (uint32_t)((const uint8_t *)p)[i] ^ 0x80000000u; break;
    case FB_TYPE_UINT16: w = (uint32_t)((const uint16_t *)p)[i] ^ 0x80000000u; break;
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: w = (uint32_t)fb_key_32(((const uint32_t *)p)[i], FB_KEY_SIGNED) ^ 0x80000000u; break;
    case FB_TYPE_UINT32: w = (uint32_t)fb_key_32(((const uint32_t *)p)[i], FB_KEY_UNSIGNED) ^ 0x80000000u; break;
    case FB_TYPE_FLOAT32: w = (uint32_t)fb_key_32(((const uint32_t *)p)[i], FB_KEY_FLOAT) ^ 0x80000000u; break;
    case FB_TYPE_INT64: w = (uint64_t)fb_key_64(((const uint64_t *)p)[i], FB_KEY_SIGNED) ^ 0x8000000000000000ull; break;
    case FB_TYPE_UINT64: w = (uint64_t)fb_key_64(((const uint64_t *)p)[i], FB_KEY_UNSIGNED) ^ 0x8000000000000000ull; break;
    default: w = (uint64_t)fb_key_64(((const uint64_t *)p)[i], FB_KEY_FLOAT) ^ 0x8000000000000000ull; break;
    }
    return k->descending ? ~w : w; /* only compared with words of the same column */
}

/* Whether row a sorts before row b (ties: the smaller row id first, which keeps the sort stable). */
static int row_before(const fb_sort_key *keys, size_t n_keys, uint32_t a, uint32_t b)
{
    for (size_t k = 0; k < n_keys; k++) {
        int na, nb;
        uint64_t wa = host_word(&keys[k], a, &na), wb = host_word(&keys[k], b, &nb);
        if (na != nb)
            return keys[k].nulls_first ? na : nb;
        if (!na && wa != wb)
            return wa < wb;
    }
    return a < b;
}

/* Merges the sorted runs runs[r * chunk ..] (row ids) into out[0..m): a binary heap of run heads. */
static fb_status merge_runs(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, const uint32_t *runs, int64_t n,
                            int64_t chunk, uint32_t *out, int64_t m, const char *where)
{
    int64_t R = (n + chunk - 1) / chunk;
    int64_t *pos = NULL, *heap = NULL;
    size_t bytes = (size_t)R * sizeof *pos;
    FB_FORWARD_IF_ERROR(fb_alloc(ctx, bytes, 64, (void **)&pos, where));
    fb_status st = fb_alloc(ctx, bytes, 64, (void **)&heap, where);
    if (st != FB_OK) {
        fb_free(ctx, pos, bytes);
        return st;
    }
#define HEAD(r) runs[pos[r]]
#define LESS(x, y) row_before(keys, n_keys, HEAD(x), HEAD(y))
    int64_t size = 0;
    for (int64_t r = 0; r < R; r++) {
        pos[r] = r * chunk;
        int64_t i = size++;
        heap[i] = r;
        while (i > 0 && LESS(heap[i], heap[(i - 1) / 2])) {
            int64_t t = heap[i];
            heap[i] = heap[(i - 1) / 2];
            heap[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
    }
    for (int64_t o = 0; o < m && size > 0; o++) {
        int64_t r = heap[0];
        out[o] = HEAD(r);
        pos[r]++;
        int64_t end = (r + 1) * chunk < n ? (r + 1) * chunk : n;
        if (pos[r] == end)
            heap[0] = heap[--size];
        for (int64_t i = 0;;) {
            int64_t l = 2 * i + 1, rr = l + 1, best = i;
            if (l < size && LESS(heap[l], heap[best]))
                best = l;
            if (rr < size && LESS(heap[rr], heap[best]))
                best = rr;
            if (best == i)
                break;
            int64_t t = heap[i];
            heap[i] = heap[best];
            heap[best] = t;
            i = best;
        }
    }
#undef HEAD
#undef LESS
    fb_free(ctx, heap, bytes);
    fb_free(ctx, pos, bytes);
    return FB_OK;
}

/* Device bytes a sort of `rows` rows needs: four 4-byte arrays, the largest key column, the counts. */
static size_t sort_bytes(const fb_sort_key *keys, size_t n_keys, int64_t rows)
{
    size_t widest = 0;
    for (size_t k = 0; k < n_keys; k++) {
        size_t w = fb_type_width(keys[k].column.type) + (keys[k].column.validity ? 1 : 0);
        widest = w > widest ? w : widest;
    }
    return (size_t)rows * (16 + widest) + 4 * 2048 * 256 + 8192;
}

/* The first m entries of the sort permutation of n rows into out: on the device in one piece when
 * it fits the budget, else as device-sorted chunks merged here. *chunks receives the pieces. */
static fb_status sort_to_host(fb_cl_job *j, const fb_sort_key *keys, size_t n_keys, int64_t n, uint32_t *out,
                              int64_t m, int *chunks)
{
    size_t room = fb_cl_job_room(j);
    *chunks = 1;
    if (sort_bytes(keys, n_keys, n) <= room) {
        sort_bufs b;
        memset(&b, 0, sizeof b);
        int mark = j->n_mems;
        FB_FORWARD_IF_ERROR(device_sort(j, keys, n_keys, n, &b));
        FB_FORWARD_IF_ERROR(fb_cl_job_read(j, b.va, CL_TRUE, 0, (size_t)m * sizeof *out, out));
        fb_cl_job_release_from(j, mark);
        return FB_OK;
    }
    int64_t chunk = 1024;
    while (chunk * 2 < n && sort_bytes(keys, n_keys, chunk * 2) <= room)
        chunk *= 2;
    if (sort_bytes(keys, n_keys, chunk) > room)
        return fb_set_error(j->ctx, FB_ERR_DEVICE_MEMORY, j->where,
                            "the device memory budget (%zu bytes, FB_CL_MEM_BUDGET) leaves %zu bytes: too little to"
                            " sort even %lld rows",
                            fb_cl_budget(j->cl), room, (long long)chunk);
    uint32_t *runs = NULL;
    size_t bytes = (size_t)n * sizeof *runs;
    FB_FORWARD_IF_ERROR(fb_alloc(j->ctx, bytes, 64, (void **)&runs, j->where));
    fb_status st = FB_OK;
    fb_sort_key sub[FB_SORT_MAX_KEYS];
    *chunks = 0;
    for (int64_t r0 = 0; r0 < n && st == FB_OK; r0 += chunk) {
        int64_t rows = n - r0 < chunk ? n - r0 : chunk;
        for (size_t k = 0; k < n_keys; k++) {
            sub[k] = keys[k];
            sub[k].column.offset += r0;
            sub[k].column.length = rows;
        }
        sort_bufs b;
        memset(&b, 0, sizeof b);
        int mark = j->n_mems;
        st = device_sort(j, sub, n_keys, rows, &b);
        if (st == FB_OK)
            st = fb_cl_job_read(j, b.va, CL_TRUE, 0, (size_t)rows * sizeof *runs, runs + r0);
        fb_cl_job_release_from(j, mark);
        for (int64_t i = 0; i < rows && st == FB_OK; i++)
            runs[r0 + i] += (uint32_t)r0;
        (*chunks)++;
    }
    if (st == FB_OK)
        st = merge_runs(j->ctx, keys, n_keys, runs, n, chunk, out, m, j->where);
    fb_free(j->ctx, runs, bytes);
    return st;
}

fb_status fb_cl_sort_permutation(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, uint32_t *row_ids,
                                 int64_t capacity)
{
    int64_t n = 0;
    FB_FORWARD_IF_ERROR(fb_sort_check_keys(ctx, keys, n_keys, &n, __func__));
    FB_RETURN_ERROR_IF(n > 0 && !row_ids, ctx, FB_ERR_INVALID_ARG, "row_ids must not be NULL");
    FB_RETURN_ERROR_IF(capacity < n, ctx, FB_ERR_CAPACITY, "row_ids holds %lld entries, the keys have %lld rows",
                       (long long)capacity, (long long)n);
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, __func__);
    if (st != FB_OK || n == 0)
        return fb_cl_job_close(&j, st);
    TRY(sort_to_host(&j, keys, n_keys, n, row_ids, n, &j.cl->last_chunks));
done:
    return fb_cl_job_close(&j, st);
}

fb_status fb_cl_sort_top_n(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t n, uint32_t *row_ids,
                           int64_t capacity, int64_t *n_out)
{
    int64_t rows = 0;
    FB_FORWARD_IF_ERROR(fb_sort_check_keys(ctx, keys, n_keys, &rows, __func__));
    FB_RETURN_ERROR_IF(n < 0, ctx, FB_ERR_INVALID_ARG, "n is negative (%lld)", (long long)n);
    FB_RETURN_ERROR_IF(!n_out, ctx, FB_ERR_INVALID_ARG, "n_out must not be NULL");
    int64_t m = n < rows ? n : rows;
    FB_RETURN_ERROR_IF(m > 0 && !row_ids, ctx, FB_ERR_INVALID_ARG, "row_ids must not be NULL");
    FB_RETURN_ERROR_IF(capacity < m, ctx, FB_ERR_CAPACITY, "row_ids holds %lld entries, the result has %lld",
                       (long long)capacity, (long long)m);
    if (m == 0) {
        *n_out = 0;
        return FB_OK;
    }
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, __func__);
    if (st != FB_OK)
        return fb_cl_job_close(&j, st);
    TRY(sort_to_host(&j, keys, n_keys, rows, row_ids, m, &j.cl->last_chunks));
    *n_out = m;
done:
    return fb_cl_job_close(&j, st);
}

static void reset_outs(fb_column_out *out, size_t n_out)
{
    for (size_t i = 0; i < n_out; i++) {
        out[i].length = 0;
        out[i].null_count = 0;
    }
}

static int width_index(size_t w) { return w == 1 ? 0 : w == 2 ? 1 : w == 4 ? 2 : 3; }

/* out = col's rows in the order of perm (n > 0 row ids, all < col->length), on the device. */
static fb_status permute_column(fb_cl_job *j, const fb_column *col, cl_mem perm, int64_t n, fb_column_out *out)
{
    struct fb_cl_state *cl = j->cl;
    int mark = j->n_mems;
    size_t w = fb_type_width(col->type);
    size_t out_bytes = (size_t)n * w, valid_bytes = (size_t)((n + 7) / 8);
    fb_cl_dev_column d;
    cl_mem dout, derr, dvalid = NULL;
    static const cl_uint zero = 0;
    FB_FORWARD_IF_ERROR(fb_cl_upload_column(j, col, &d));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_WRITE_ONLY, out_bytes, NULL, &dout));
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, sizeof zero, &zero, &derr));
    if (col->validity)
        FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_WRITE_ONLY, valid_bytes, NULL, &dvalid));
    cl_ulong rows = (cl_ulong)n;
    cl_kernel k = cl->compact[width_index(w)];
    const fb_cl_karg args[] = {KARG(d.data), KARG(d.length), KARG(perm), KARG(rows), KARG(dout), KARG(derr)};
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, k, "fb_compact_w*", args, 6));
    FB_FORWARD_IF_ERROR(fb_cl_job_run(j, k, "fb_compact_w*", fb_cl_grid_groups(cl, rows, cl->wg_move), cl->wg_move));
    FB_FORWARD_IF_ERROR(fb_cl_job_read(j, dout, CL_FALSE, 0, out_bytes, out->data));
    int64_t valid = n;
    if (dvalid) {
        const fb_cl_karg vargs[] = {KARG(d.valid), KARG(d.has_valid), KARG(d.voff), KARG(d.length),
                                    KARG(perm),    KARG(rows),        KARG(dvalid)};
        FB_FORWARD_IF_ERROR(fb_cl_job_args(j, cl->compact_validity, "fb_compact_validity", vargs, 7));
        FB_FORWARD_IF_ERROR(fb_cl_job_run(j, cl->compact_validity, "fb_compact_validity",
                                          fb_cl_grid_groups(cl, valid_bytes, cl->wg_move), cl->wg_move));
        FB_FORWARD_IF_ERROR(fb_cl_job_read(j, dvalid, CL_TRUE, 0, valid_bytes, out->validity));
        valid = 0;
        for (size_t i = 0; i < valid_bytes; i++)
            valid += __builtin_popcount(out->validity[i]);
    }
    FB_FORWARD_IF_ERROR(fb_cl_job_finish(j));
    out->null_count = n - valid;
    fb_cl_job_release_from(j, mark);
    return FB_OK;
}

fb_status fb_cl_sort_table(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, const fb_column *payload,
                           size_t n_payload, fb_column_out *out)
{
    int64_t n = 0;
    FB_FORWARD_IF_ERROR(fb_sort_check_keys(ctx, keys, n_keys, &n, __func__));
    FB_RETURN_ERROR_IF(!out, ctx, FB_ERR_INVALID_ARG, "out must not be NULL");
    size_t n_cols = n_keys + n_payload;
    reset_outs(out, n_cols);
    FB_RETURN_ERROR_IF(n_payload > 0 && !payload, ctx, FB_ERR_INVALID_ARG, "payload must not be NULL");
    for (size_t i = 0; i < n_payload; i++) {
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, &payload[i], __func__, "a payload column"));
        FB_RETURN_ERROR_IF(payload[i].length != n, ctx, FB_ERR_LENGTH_MISMATCH,
                           "payload %zu has %lld rows, the keys have %lld", i, (long long)payload[i].length,
                           (long long)n);
    }
    for (size_t i = 0; i < n_cols; i++) {
        const fb_column *c = i < n_keys ? &keys[i].column : &payload[i - n_keys];
        fb_status st = fb_check_column_out(ctx, &out[i], c->type, n, c->validity != NULL, __func__);
        if (st != FB_OK) {
            reset_outs(out, n_cols);
            return st;
        }
    }
    fb_cl_job j;
    uint32_t *perm = NULL;
    fb_status st = fb_cl_job_open(&j, ctx, __func__);
    if (st != FB_OK || n == 0)
        return fb_cl_job_close(&j, st);
    if (sort_bytes(keys, n_keys, n) + (size_t)n * 9 <= fb_cl_job_room(&j)) {
        sort_bufs b;
        memset(&b, 0, sizeof b);
        TRY(device_sort(&j, keys, n_keys, n, &b));
        for (size_t i = 0; i < n_cols; i++)
            TRY(permute_column(&j, i < n_keys ? &keys[i].column : &payload[i - n_keys], b.va, n, &out[i]));
        for (size_t i = 0; i < n_cols; i++)
            out[i].length = n;
    } else {
        /* larger than the budget: the permutation from sorted runs, the columns moved on the host */
        size_t bytes = (size_t)n * sizeof(uint32_t);
        TRY(fb_alloc(ctx, bytes, 64, (void **)&perm, __func__));
        TRY(sort_to_host(&j, keys, n_keys, n, perm, n, &j.cl->last_chunks));
        for (size_t i = 0; i < n_cols; i++)
            TRY(fb_compact(ctx, i < n_keys ? &keys[i].column : &payload[i - n_keys], perm, n, &out[i]));
    }
done:
    if (perm)
        fb_free(ctx, perm, (size_t)n * sizeof(uint32_t));
    if (st != FB_OK)
        reset_outs(out, n_cols);
    return fb_cl_job_close(&j, st);
}
