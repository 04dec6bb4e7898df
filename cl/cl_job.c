/* cl_job.c - one call's device work: the context lock, device buffers counted against a memory
 * budget, kernel arguments and launches, transfers, and the release of everything on every path.
 * Shared by the twins (cl_kernels.c, cl_sort.c, cl_group.c, cl_join.c). */
#include "fb_cl_internal.h"
#include "fb_kernels_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

size_t fb_cl_budget(const struct fb_cl_state *cl)
{
    const char *e = getenv("FB_CL_MEM_BUDGET");
    if (e && *e) {
        char *end = NULL;
        unsigned long long v = strtoull(e, &end, 10);
        if (end && (*end == 'k' || *end == 'K'))
            v <<= 10;
        else if (end && (*end == 'm' || *end == 'M'))
            v <<= 20;
        else if (end && (*end == 'g' || *end == 'G'))
            v <<= 30;
        if (v > 0)
            return (size_t)v;
    }
    return (size_t)(cl->global_mem / 2);
}

size_t fb_cl_job_room(const fb_cl_job *j)
{
    size_t b = fb_cl_budget(j->cl);
    return j->bytes < b ? b - j->bytes : 0;
}

fb_status fb_cl_job_buffer(fb_cl_job *j, cl_mem_flags flags, size_t bytes, const void *src, cl_mem *out)
{
    if (j->n_mems == FB_CL_JOB_MAX_MEMS)
        return fb_set_error(j->ctx, FB_ERR_INTERNAL, j->where, "too many device buffers in one call");
    size_t budget = fb_cl_budget(j->cl);
    if (bytes > budget || j->bytes > budget - bytes) {
        j->over_budget = 1;
        return fb_set_error(j->ctx, FB_ERR_DEVICE_MEMORY, j->where,
                            "a device buffer of %zu bytes would pass the device memory budget (%zu bytes, %zu in use;"
                            " FB_CL_MEM_BUDGET)",
                            bytes, budget, j->bytes);
    }
    fb_status st;
    cl_mem m = fb_cl_buffer(j->ctx, j->cl, j->where, flags, bytes, &st);
    if (!m)
        return st;
    j->mems[j->n_mems] = m;
    j->sizes[j->n_mems++] = bytes;
    j->bytes += bytes;
    if (j->bytes > j->peak)
        j->peak = j->bytes;
    if (src) {
        cl_int err = fb_cl_fault(FB_CL_FAULT_WRITE);
        if (err == CL_SUCCESS)
            err = clEnqueueWriteBuffer(j->cl->queue, m, CL_FALSE, 0, bytes, src, 0, NULL, NULL);
        if (err != CL_SUCCESS)
            return fb_cl_fail(j->ctx, j->where, "clEnqueueWriteBuffer", err);
    }
    *out = m;
    return FB_OK;
}

void fb_cl_job_release_from(fb_cl_job *j, int mark)
{
    if (j->n_mems > mark)
        clFinish(j->cl->queue);
    while (j->n_mems > mark) {
        j->n_mems--;
        clReleaseMemObject(j->mems[j->n_mems]);
        j->bytes -= j->sizes[j->n_mems];
    }
}

void fb_cl_job_release(fb_cl_job *j, cl_mem m)
{
    for (int i = 0; i < j->n_mems; i++) {
        if (j->mems[i] != m)
            continue;
        clFinish(j->cl->queue);
        clReleaseMemObject(m);
        j->bytes -= j->sizes[i];
        memmove(&j->mems[i], &j->mems[i + 1], (size_t)(j->n_mems - i - 1) * sizeof j->mems[0]);
        memmove(&j->sizes[i], &j->sizes[i + 1], (size_t)(j->n_mems - i - 1) * sizeof j->sizes[0]);
        j->n_mems--;
        return;
    }
}

void fb_cl_job_end(fb_cl_job *j) { fb_cl_job_release_from(j, 0); }

fb_status fb_cl_job_args(fb_cl_job *j, cl_kernel k, const char *name, const fb_cl_karg *args, cl_uint n)
{
    for (cl_uint i = 0; i < n; i++) {
        cl_int err = clSetKernelArg(k, i, args[i].size, args[i].value);
        if (err != CL_SUCCESS)
            return fb_set_error(j->ctx, FB_ERR_OPENCL, j->where, "clSetKernelArg(%s, %u) failed: %d (%s)", name, i,
                                (int)err, fb_cl_error_name(err));
    }
    return FB_OK;
}

fb_status fb_cl_job_run(fb_cl_job *j, cl_kernel k, const char *name, size_t groups, size_t wg)
{
    size_t global = groups * wg, local = wg;
    cl_int err = fb_cl_fault(FB_CL_FAULT_KERNEL);
    if (err == CL_SUCCESS)
        err = clEnqueueNDRangeKernel(j->cl->queue, k, 1, NULL, &global, &local, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        fb_status st = fb_cl_fail(j->ctx, j->where, "clEnqueueNDRangeKernel", err);
        return fb_set_error(j->ctx, st, j->where, "clEnqueueNDRangeKernel(%s, %zu x %zu) failed: %d (%s)", name,
                            groups, wg, (int)err, fb_cl_error_name(err));
    }
    return FB_OK;
}

fb_status fb_cl_job_read(fb_cl_job *j, cl_mem m, cl_bool blocking, size_t offset, size_t bytes, void *dst)
{
    cl_int err = fb_cl_fault(FB_CL_FAULT_READ);
    if (err == CL_SUCCESS)
        err = clEnqueueReadBuffer(j->cl->queue, m, blocking, offset, bytes, dst, 0, NULL, NULL);
    return err == CL_SUCCESS ? FB_OK : fb_cl_fail(j->ctx, j->where, "clEnqueueReadBuffer", err);
}

fb_status fb_cl_job_write(fb_cl_job *j, cl_mem m, size_t offset, size_t bytes, const void *src)
{
    cl_int err = fb_cl_fault(FB_CL_FAULT_WRITE);
    if (err == CL_SUCCESS)
        err = clEnqueueWriteBuffer(j->cl->queue, m, CL_FALSE, offset, bytes, src, 0, NULL, NULL);
    return err == CL_SUCCESS ? FB_OK : fb_cl_fail(j->ctx, j->where, "clEnqueueWriteBuffer", err);
}

fb_status fb_cl_job_fill(fb_cl_job *j, cl_mem m, cl_uint pattern, size_t bytes)
{
    cl_int err = fb_cl_fault(FB_CL_FAULT_WRITE);
    if (err == CL_SUCCESS)
        err = clEnqueueFillBuffer(j->cl->queue, m, &pattern, sizeof pattern, 0, bytes, 0, NULL, NULL);
    return err == CL_SUCCESS ? FB_OK : fb_cl_fail(j->ctx, j->where, "clEnqueueFillBuffer", err);
}

fb_status fb_cl_job_finish(fb_cl_job *j)
{
    cl_int err = clFinish(j->cl->queue);
    return err == CL_SUCCESS ? FB_OK : fb_cl_fail(j->ctx, j->where, "clFinish", err);
}

size_t fb_cl_grid_groups(const struct fb_cl_state *cl, uint64_t n, size_t wg)
{
    uint64_t g = (n + wg - 1) / wg;
    if (g > cl->max_groups)
        g = cl->max_groups;
    return g ? (size_t)g : 1;
}

fb_status fb_cl_upload_rows(fb_cl_job *j, const fb_column *col, int64_t first, int64_t rows, fb_cl_dev_column *d)
{
    size_t w = fb_type_width(col->type);
    int64_t off = col->offset + first;
    d->type = (cl_int)col->type;
    d->length = (cl_ulong)rows;
    d->data = d->valid = j->cl->dummy;
    d->has_valid = 0;
    d->voff = 0;
    if (rows == 0)
        return FB_OK;
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_ONLY, (size_t)rows * w,
                                         (const char *)col->data + (size_t)off * w, &d->data));
    if (col->validity) {
        size_t byte0 = (size_t)(off >> 3);
        d->voff = (cl_ulong)(off & 7);
        size_t bytes = (size_t)((d->voff + (uint64_t)rows + 7) >> 3);
        FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_ONLY, bytes, col->validity + byte0, &d->valid));
        d->has_valid = 1;
    }
    return FB_OK;
}

fb_status fb_cl_upload_column(fb_cl_job *j, const fb_column *col, fb_cl_dev_column *d)
{
    return fb_cl_upload_rows(j, col, 0, col->length, d);
}

fb_status fb_cl_job_open(fb_cl_job *j, fb_ctx *ctx, const char *where)
{
    memset(j, 0, sizeof *j);
    j->ctx = ctx;
    j->where = where;
    pthread_mutex_lock(&ctx->cl_lock);
    fb_status st = fb_cl_acquire(ctx, where);
    j->cl = ctx->cl;
    return st;
}

fb_status fb_cl_job_close(fb_cl_job *j, fb_status st)
{
    if (j->cl)
        fb_cl_job_end(j);
    pthread_mutex_unlock(&j->ctx->cl_lock);
    return st;
}

fb_status fb_cl_scan(fb_cl_job *j, cl_mem aux, uint64_t n)
{
    struct fb_cl_state *cl = j->cl;
    size_t wg = cl->wg_scan;
    cl_ulong n64 = n, tile = (cl_ulong)wg * 8;
    if (n <= tile * 16) { /* small: one work-group is quicker than three launches */
        const fb_cl_karg args[] = {KARG(aux), KARG(n64), KLOCAL(wg * sizeof(cl_uint))};
        FB_FORWARD_IF_ERROR(fb_cl_job_args(j, cl->select_scan, "fb_select_scan", args, 3));
        return fb_cl_job_run(j, cl->select_scan, "fb_select_scan", 1, wg);
    }
    cl_ulong tiles = (n + tile - 1) / tile;
    cl_mem partial;
    FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)(tiles + 1) * sizeof(cl_uint), NULL, &partial));
    const fb_cl_karg targs[] = {KARG(aux), KARG(n64), KARG(partial), KLOCAL(wg * sizeof(cl_uint))};
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, cl->scan_tiles, "fb_scan_tiles", targs, 4));
    FB_FORWARD_IF_ERROR(fb_cl_job_run(j, cl->scan_tiles, "fb_scan_tiles", (size_t)tiles, wg));
    const fb_cl_karg sargs[] = {KARG(partial), KARG(tiles), KLOCAL(wg * sizeof(cl_uint))};
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, cl->select_scan, "fb_select_scan", sargs, 3));
    FB_FORWARD_IF_ERROR(fb_cl_job_run(j, cl->select_scan, "fb_select_scan", 1, wg));
    const fb_cl_karg aargs[] = {KARG(aux), KARG(n64), KARG(tile), KARG(partial)};
    FB_FORWARD_IF_ERROR(fb_cl_job_args(j, cl->scan_add, "fb_scan_add", aargs, 4));
    FB_FORWARD_IF_ERROR(fb_cl_job_run(j, cl->scan_add, "fb_scan_add", fb_cl_grid_groups(cl, n, wg), wg));
    cl_int err = fb_cl_fault(FB_CL_FAULT_WRITE);
    if (err == CL_SUCCESS)
        err = clEnqueueCopyBuffer(cl->queue, partial, aux, (size_t)tiles * sizeof(cl_uint),
                                  (size_t)n * sizeof(cl_uint), sizeof(cl_uint), 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return fb_cl_fail(j->ctx, j->where, "clEnqueueCopyBuffer", err);
    fb_cl_job_release(j, partial);
    return FB_OK;
}

/* ---- fault injection (tests; fb_cl_internal.h) -------------------------------------------------- */

static atomic_int fault_on;                    /* counting (and maybe injecting) */
static atomic_long fault_calls[FB_CL_FAULT_KINDS];
static long fault_at = -1;                     /* the failing call of fault_kind, or -1 */
static int fault_kind;
static cl_int fault_code;
static pthread_once_t fault_env_once = PTHREAD_ONCE_INIT;

static void fault_env(void)
{
    const char *e = getenv("FB_CL_FAULT");
    static const char *const names[FB_CL_FAULT_KINDS] = {"buffer", "kernel", "read", "write"};
    if (!e || !*e)
        return;
    for (int k = 0; k < FB_CL_FAULT_KINDS; k++) {
        size_t len = strlen(names[k]);
        if (strncmp(e, names[k], len) != 0 || e[len] != ':')
            continue;
        char *end = NULL;
        long at = strtol(e + len + 1, &end, 10);
        long code = end && *end == ':' ? strtol(end + 1, NULL, 10) : CL_OUT_OF_RESOURCES;
        fb_cl_fault_arm((fb_cl_fault_kind)k, at, (cl_int)code);
        return;
    }
}

cl_int fb_cl_fault(fb_cl_fault_kind kind)
{
    pthread_once(&fault_env_once, fault_env);
    if (!atomic_load_explicit(&fault_on, memory_order_acquire))
        return CL_SUCCESS;
    long k = atomic_fetch_add(&fault_calls[kind], 1);
    return (int)kind == fault_kind && k == fault_at ? fault_code : CL_SUCCESS;
}

void fb_cl_fault_arm(fb_cl_fault_kind kind, long k, cl_int code)
{
    atomic_store(&fault_on, 0);
    for (int i = 0; i < FB_CL_FAULT_KINDS; i++)
        atomic_store(&fault_calls[i], 0);
    fault_kind = (int)kind;
    fault_at = k;
    fault_code = code;
    atomic_store_explicit(&fault_on, 1, memory_order_release);
}

long fb_cl_fault_calls(fb_cl_fault_kind kind) { return atomic_load(&fault_calls[kind]); }

void fb_cl_fault_off(void) { atomic_store(&fault_on, 0); }
