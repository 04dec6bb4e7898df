/* cl_stream.c - double-buffered streaming of host columns to the device (fb_cl_stream in
 * fb_cl_internal.h): pinned staging buffers, a copy queue beside the compute queue, events between
 * them, and profiling of the copies. On a discrete GPU the copy of chunk k + 1 runs on a DMA engine
 * while the kernels of chunk k run, so a streamed operator costs max(transfer, compute) per chunk
 * instead of their sum; on PoCL both are CPU work and the order of events is what gets tested. */
#include "fb_cl_internal.h"
#include "fb_kernels_common.h"

#include <string.h>

#define PIN_ALIGN 64

static size_t round_up(size_t v) { return (v + PIN_ALIGN - 1) / PIN_ALIGN * PIN_ALIGN; }

static size_t valid_bytes(int64_t chunk) { return (size_t)(chunk + 7) / 8 + 1; }

static uint64_t event_time(cl_event e, cl_profiling_info what)
{
    cl_ulong t = 0;
    if (clGetEventProfilingInfo(e, what, sizeof t, &t, NULL) != CL_SUCCESS)
        return 0;
    return t;
}

/* Waits for the slot's copies, adds their times to the stats and releases them. */
static fb_status retire_uploads(fb_cl_stream *s, int slot)
{
    if (s->n_uploaded[slot] == 0)
        return FB_OK;
    cl_int err = clWaitForEvents((cl_uint)s->n_uploaded[slot], s->uploaded[slot]);
    for (int i = 0; i < s->n_uploaded[slot]; i++) {
        uint64_t a = event_time(s->uploaded[slot][i], CL_PROFILING_COMMAND_START),
                 b = event_time(s->uploaded[slot][i], CL_PROFILING_COMMAND_END);
        if (b > a)
            s->stats.h2d_ns += b - a;
        clReleaseEvent(s->uploaded[slot][i]);
    }
    s->n_uploaded[slot] = 0;
    return err == CL_SUCCESS ? FB_OK : fb_cl_fail(s->j->ctx, s->j->where, "clWaitForEvents", err);
}

/* Copies rows [r0, r0 + m) of every column into the slot: host -> pinned now, pinned -> device on
 * the copy queue once the kernels that last read the slot are done. */
static fb_status upload(fb_cl_stream *s, int slot, int64_t r0, int64_t m)
{
    fb_cl_job *j = s->j;
    FB_FORWARD_IF_ERROR(retire_uploads(s, slot)); /* the staging buffer is free again */
    char *pin = s->pin_ptr[slot];
    size_t off = 0;
    cl_uint n_wait = s->consumed[slot] ? 1 : 0;
    /* overlap: this copy against the compute of the chunk in the other slot (known after close) */
    for (size_t c = 0; c < s->n_cols; c++) {
        const fb_column *col = s->cols[c];
        size_t w = fb_type_width(col->type), bytes = (size_t)m * w;
        int64_t first = col->offset + r0;
        memcpy(pin + off, (const char *)col->data + (size_t)first * w, bytes);
        cl_int err = fb_cl_fault(FB_CL_FAULT_WRITE);
        if (err == CL_SUCCESS)
            err = clEnqueueWriteBuffer(j->cl->copy_queue, s->dev_data[slot][c], CL_FALSE, 0, bytes, pin + off, n_wait,
                                       n_wait ? &s->consumed[slot] : NULL, &s->uploaded[slot][s->n_uploaded[slot]]);
        if (err != CL_SUCCESS)
            return fb_cl_fail(j->ctx, j->where, "clEnqueueWriteBuffer", err);
        s->n_uploaded[slot]++;
        s->stats.h2d_bytes += bytes;
        off += round_up((size_t)s->chunk * w);
        if (col->validity) {
            size_t vb = (size_t)(((first & 7) + m + 7) >> 3);
            memcpy(pin + off, col->validity + (first >> 3), vb);
            err = fb_cl_fault(FB_CL_FAULT_WRITE);
            if (err == CL_SUCCESS)
                err = clEnqueueWriteBuffer(j->cl->copy_queue, s->dev_valid[slot][c], CL_FALSE, 0, vb, pin + off,
                                           n_wait, n_wait ? &s->consumed[slot] : NULL,
                                           &s->uploaded[slot][s->n_uploaded[slot]]);
            if (err != CL_SUCCESS)
                return fb_cl_fail(j->ctx, j->where, "clEnqueueWriteBuffer", err);
            s->n_uploaded[slot]++;
            s->stats.h2d_bytes += vb;
            off += round_up(valid_bytes(s->chunk));
        }
    }
    cl_int err = clFlush(j->cl->copy_queue); /* start the copy now, not at the next wait */
    if (err != CL_SUCCESS)
        return fb_cl_fail(j->ctx, j->where, "clFlush", err);
    s->slot_r0[slot] = r0;
    s->slot_m[slot] = m;
    s->issued++;
    s->stats.chunks++;
    return FB_OK;
}

fb_status fb_cl_stream_open(fb_cl_stream *s, fb_cl_job *j, const fb_column *const *cols, size_t n_cols, int64_t n,
                            int64_t chunk)
{
    memset(s, 0, sizeof *s);
    s->j = j;
    s->cur = -1;
    if (n_cols > FB_CL_STREAM_MAX_COLS)
        return fb_set_error(j->ctx, FB_ERR_INTERNAL, j->where, "%zu streamed columns", n_cols);
    s->n_cols = n_cols;
    s->n = n;
    s->chunk = chunk < 8 ? 8 : chunk;
    for (size_t c = 0; c < n_cols; c++) {
        s->cols[c] = cols[c];
        size_t w = fb_type_width(cols[c]->type);
        s->pin_bytes += round_up((size_t)s->chunk * w);
        if (cols[c]->validity)
            s->pin_bytes += round_up(valid_bytes(s->chunk));
        for (int slot = 0; slot < 2; slot++) {
            FB_FORWARD_IF_ERROR(
                fb_cl_job_buffer(j, CL_MEM_READ_ONLY, (size_t)s->chunk * w, NULL, &s->dev_data[slot][c]));
            s->dev_valid[slot][c] = j->cl->dummy;
            if (cols[c]->validity)
                FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_ONLY, valid_bytes(s->chunk), NULL,
                                                     &s->dev_valid[slot][c]));
        }
    }
    for (int slot = 0; slot < 2 && s->pin_bytes; slot++) {
        cl_int err = fb_cl_fault(FB_CL_FAULT_BUFFER);
        s->pin[slot] = err != CL_SUCCESS ? NULL
                                         : clCreateBuffer(j->cl->context, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR,
                                                          s->pin_bytes, NULL, &err);
        if (err != CL_SUCCESS || !s->pin[slot]) {
            s->pin[slot] = NULL;
            return fb_cl_fail(j->ctx, j->where, "clCreateBuffer(CL_MEM_ALLOC_HOST_PTR)", err);
        }
        s->pin_ptr[slot] = clEnqueueMapBuffer(j->cl->copy_queue, s->pin[slot], CL_TRUE, CL_MAP_WRITE, 0, s->pin_bytes,
                                              0, NULL, NULL, &err);
        if (err != CL_SUCCESS || !s->pin_ptr[slot]) {
            s->pin_ptr[slot] = NULL;
            return fb_cl_fail(j->ctx, j->where, "clEnqueueMapBuffer", err);
        }
    }
    return FB_OK;
}

fb_status fb_cl_stream_next(fb_cl_stream *s, int64_t *r0, int64_t *m, fb_cl_dev_column *d)
{
    *m = 0;
    *r0 = s->next;
    if (s->next >= s->n || s->n_cols == 0)
        return FB_OK;
    int k = s->issued == 0 ? 0 : s->cur + 1; /* index of the chunk handed out now */
    int slot = k & 1;
    if (s->issued == 0)
        FB_FORWARD_IF_ERROR(upload(s, 0, 0, s->n < s->chunk ? s->n : s->chunk));
    /* prefetch the following chunk into the other slot: it overlaps this chunk's kernels */
    int64_t nx = s->next + s->chunk;
    if (nx < s->n && s->issued == k + 1)
        FB_FORWARD_IF_ERROR(upload(s, slot ^ 1, nx, s->n - nx < s->chunk ? s->n - nx : s->chunk));
    cl_int err = clEnqueueBarrierWithWaitList(s->j->cl->queue, (cl_uint)s->n_uploaded[slot], s->uploaded[slot], NULL);
    if (err != CL_SUCCESS)
        return fb_cl_fail(s->j->ctx, s->j->where, "clEnqueueBarrierWithWaitList", err);
    *r0 = s->slot_r0[slot];
    *m = s->slot_m[slot];
    for (size_t c = 0; c < s->n_cols; c++) {
        const fb_column *col = s->cols[c];
        int64_t first = col->offset + *r0;
        d[c].data = s->dev_data[slot][c];
        d[c].valid = s->dev_valid[slot][c];
        d[c].type = (cl_int)col->type;
        d[c].has_valid = col->validity != NULL;
        d[c].voff = col->validity ? (cl_ulong)(first & 7) : 0;
        d[c].length = (cl_ulong)*m;
    }
    s->cur = k;
    s->next = *r0 + *m;
    return FB_OK;
}

fb_status fb_cl_stream_release(fb_cl_stream *s)
{
    int slot = s->cur & 1;
    if (s->consumed[slot])
        clReleaseEvent(s->consumed[slot]);
    s->consumed[slot] = NULL;
    cl_int err = clEnqueueMarkerWithWaitList(s->j->cl->queue, 0, NULL, &s->consumed[slot]);
    if (err != CL_SUCCESS) {
        s->consumed[slot] = NULL;
        return fb_cl_fail(s->j->ctx, s->j->where, "clEnqueueMarkerWithWaitList", err);
    }
    return FB_OK;
}

fb_status fb_cl_stream_close(fb_cl_stream *s, fb_status st)
{
    fb_cl_job *j = s->j;
    if (!j)
        return st;
    clFinish(j->cl->queue);
    clFinish(j->cl->copy_queue);
    for (int slot = 0; slot < 2; slot++) {
        fb_status r = retire_uploads(s, slot);
        if (st == FB_OK)
            st = r;
        if (s->consumed[slot])
            clReleaseEvent(s->consumed[slot]);
        if (s->pin_ptr[slot])
            clEnqueueUnmapMemObject(j->cl->copy_queue, s->pin[slot], s->pin_ptr[slot], 0, NULL, NULL);
    }
    clFinish(j->cl->copy_queue);
    for (int slot = 0; slot < 2; slot++)
        if (s->pin[slot])
            clReleaseMemObject(s->pin[slot]);
    for (size_t c = 0; c < s->n_cols; c++)
        for (int slot = 0; slot < 2; slot++) {
            fb_cl_job_release(j, s->dev_data[slot][c]);
            if (s->dev_valid[slot][c] != j->cl->dummy)
                fb_cl_job_release(j, s->dev_valid[slot][c]);
        }
    j->cl->last_stream = s->stats;
    memset(s, 0, sizeof *s);
    return st;
}
