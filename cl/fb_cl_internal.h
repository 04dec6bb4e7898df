/* fb_cl_internal.h - the OpenCL module's internals, shared by its files (cl_device.c, cl_program.c,
 * cl_kernels.c) and reachable from tests: the per-context state, OpenCL error mapping, device
 * enumeration, opening a device, the program build with its on-disk binary cache, and test hooks.
 * Nothing here is exported (hidden visibility). */
#ifndef FB_CL_INTERNAL_H
#define FB_CL_INTERNAL_H

#include <CL/cl.h>

#include "fb/fb_column.h"
#include "fb/fb_expr.h"
#include "fb_internal.h"

/* One OpenCL device in fb_cl_device_count() order. */
typedef struct fb_cl_dev {
    cl_platform_id platform;
    cl_device_id device;
} fb_cl_dev;

/* What a streamed operator call moved and how long its transfers took (from profiling events). */
typedef struct fb_cl_stream_stats {
    uint64_t chunks;      /* chunks uploaded */
    uint64_t h2d_bytes;   /* bytes copied host -> device through pinned staging buffers */
    uint64_t h2d_ns;      /* device time of those copies (sum of event durations) */
} fb_cl_stream_stats;

/* Where the context's program came from. */
typedef enum fb_cl_program_origin {
    FB_CL_PROGRAM_NONE = 0,   /* not opened yet */
    FB_CL_PROGRAM_BUILT = 1,  /* compiled from the embedded sources */
    FB_CL_PROGRAM_CACHED = 2  /* loaded from the on-disk binary cache */
} fb_cl_program_origin;

/* Value widths the move kernels come in: index 0..3 for 1, 2, 4, 8 bytes. */
#define FB_CL_WIDTHS 4

/* The opened device of a context (ctx->cl), guarded by ctx->cl_lock. Host memory comes from the
 * context's allocator. */
struct fb_cl_state {
    int index;                 /* device index in fb_cl_device_count() order */
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;    /* in-order; every call ends with the queue drained */
    cl_command_queue copy_queue; /* in-order; streamed uploads (cl_stream.c), drained by every call too */
    cl_program program;        /* every .cl file of cl/, one program */
    fb_cl_program_origin origin;
    char cache_file[4096];     /* the cache file used or written; "" when the cache is off */

    cl_kernel hash_rows;                   /* hash.cl */
    cl_kernel select_count;                /* select.cl */
    cl_kernel select_scan;
    cl_kernel select_write;
    cl_kernel compact[FB_CL_WIDTHS];       /* move.cl: fb_compact_w1 .. w8 */
    cl_kernel gather[FB_CL_WIDTHS];        /* fb_gather_w1 .. w8 */
    cl_kernel compact_validity;
    cl_kernel gather_validity;

    size_t wg_hash;     /* work-group sizes: powers of two within each kernel's limit, ≤ 256 */
    size_t wg_select;   /* shared by fb_select_count and fb_select_write (same tiles) */
    size_t wg_scan;
    size_t wg_move;     /* all move kernels */
    size_t max_groups;  /* cap on work-groups of the grid-stride kernels (see open_state in cl_device.c) */
    cl_ulong max_alloc; /* CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    cl_ulong global_mem; /* CL_DEVICE_GLOBAL_MEM_SIZE */
    cl_uint compute_units;

    cl_kernel sort_word;        /* sort.cl */
    cl_kernel sort_digit_hist;
    cl_kernel radix_count;
    cl_kernel radix_scatter;
    cl_kernel sort_iota;
    cl_kernel scan_tiles;       /* scan.cl */
    cl_kernel scan_add;
    size_t wg_sort;    /* fb_sort_word, fb_sort_digit_hist, fb_radix_count, fb_sort_iota */
    size_t wg_radix;   /* fb_radix_scatter: must be RADIX_WG (256) */

    cl_kernel gb_insert;  /* group.cl: NULL when the device lacks 64-bit atomics or fp64 */
    cl_kernel gb_collect;
    cl_kernel gb_dense;
    cl_kernel gb_lookup;
    cl_kernel gb_update;
    cl_kernel gb_fill;
    cl_kernel join_fill;  /* join.cl: NULL when the device lacks 64-bit atomics */
    cl_kernel join_slots;
    cl_kernel join_ranges;
    cl_kernel join_count;
    cl_kernel join_write;
    cl_kernel join_mark;
    size_t wg_group;
    cl_kernel ex_sel_mask;     /* expr.cl: expression twins (cl_expr.c) */
    cl_kernel ex_pred;
    cl_kernel ex_cmp_cols;
    cl_kernel ex_validity;
    cl_kernel ex_logic;
    cl_kernel ex_cols_flags;
    cl_kernel ex_bool_flags;
    cl_kernel ex_member_flags;
    cl_kernel ex_scatter;
    cl_kernel ex_merge;
    cl_kernel ex_arith;        /* NULL when the device lacks cl_khr_fp64 */
    cl_kernel ex_cast;         /* NULL when the device lacks cl_khr_fp64 */
    size_t wg_expr;
    cl_kernel keys_pack;       /* keys.cl: composite keys (cl_keys.c) */
    cl_kernel keys_insert;
    cl_kernel keys_first;
    cl_kernel keys_lookup;
    int last_chunks;   /* chunks the last operator call split its input into (tests) */
    int last_partitions; /* hash partitions the last join split its build side into; 0 = none (tests) */
    fb_cl_stream_stats last_stream; /* the last streamed operator call's transfers (tests, fbench) */
    cl_mem dummy;       /* a small buffer bound where a kernel's input is absent (no validity, no sel_in) */
};

/* Candidates per work-item in a selection tile. */
#define FB_CL_SELECT_ITEMS 8u

/* ---- errors ------------------------------------------------------------------------------------ */

/* Name of an OpenCL error code, e.g. "CL_OUT_OF_RESOURCES"; "CL_UNKNOWN_ERROR" for others. */
const char *fb_cl_error_name(cl_int err);

/* Reports a failed OpenCL call as FB_ERR_OPENCL ("clFoo failed: -5 (CL_OUT_OF_RESOURCES)"), or as
 * FB_ERR_DEVICE_MEMORY for CL_MEM_OBJECT_ALLOCATION_FAILURE. */
fb_status fb_cl_fail(const fb_ctx *ctx, const char *where, const char *call, cl_int err);

/* Creates a device buffer of `bytes` (> 0) on cl's context; on failure reports FB_ERR_DEVICE_MEMORY
 * (allocation failures, CL_OUT_OF_RESOURCES, sizes past CL_DEVICE_MAX_MEM_ALLOC_SIZE) or FB_ERR_OPENCL
 * in *st and returns NULL. */
cl_mem fb_cl_buffer(const fb_ctx *ctx, const struct fb_cl_state *cl, const char *where, cl_mem_flags flags,
                    size_t bytes, fb_status *st);

/* ---- one call's device work (cl_job.c) ------------------------------------------------------------- */

/* Most device buffers one job holds at a time. */
/* Most columns streamed together (a key and one value column per aggregate). */
#define FB_CL_STREAM_MAX_COLS 66
#define FB_CL_JOB_MAX_MEMS (4 * FB_CL_STREAM_MAX_COLS + 32)

/* One call's device buffers. Buffers count against the context's device memory budget
 * (fb_cl_budget()); fb_cl_job_close() drains the queue and releases everything. */
typedef struct fb_cl_job {
    fb_ctx *ctx;
    struct fb_cl_state *cl;
    const char *where;
    cl_mem mems[FB_CL_JOB_MAX_MEMS];
    size_t sizes[FB_CL_JOB_MAX_MEMS];
    int n_mems;
    size_t bytes; /* device bytes held now */
    size_t peak;  /* most device bytes held at once */
    int over_budget; /* a buffer was refused because it would pass the budget (FB_ERR_DEVICE_MEMORY, not an
                        OpenCL failure) */
} fb_cl_job;

/* A kernel argument: size and value (value NULL with a size: local memory of that many bytes). */
typedef struct fb_cl_karg {
    size_t size;
    const void *value;
} fb_cl_karg;
#define KARG(x) {sizeof(x), &(x)}
#define KLOCAL(bytes) {(bytes), NULL}

/* A column on the device: values from row `offset` on, and its validity bitmap from byte offset/8 on
 * (so row i's bit is voff + i with voff = offset % 8). Absent parts are bound to the dummy buffer. */
typedef struct fb_cl_dev_column {
    cl_mem data, valid;
    cl_int type, has_valid;
    cl_ulong length, voff;
} fb_cl_dev_column;

#define TRY(expr)                                                                                                  \
    do {                                                                                                           \
        st = (expr);                                                                                               \
        if (st != FB_OK)                                                                                           \
            goto done;                                                                                             \
    } while (0)

/* Locks the context, opens its device and starts a job; fb_cl_job_close() ends both and returns st. */
fb_status fb_cl_job_open(fb_cl_job *j, fb_ctx *ctx, const char *where);
fb_status fb_cl_job_close(fb_cl_job *j, fb_status st);

/* A device buffer of `bytes` (> 0) owned by the job; with `src`, its content is written from host
 * memory without blocking (the job drains the queue before the call returns). Fails with
 * FB_ERR_DEVICE_MEMORY past the device memory budget. */
fb_status fb_cl_job_buffer(fb_cl_job *j, cl_mem_flags flags, size_t bytes, const void *src, cl_mem *out);

/* Releases the job's buffers from index `mark` on, once the work enqueued so far no longer needs them. */
void fb_cl_job_release_from(fb_cl_job *j, int mark);

/* Releases one buffer of the job now (after draining the queue). */
void fb_cl_job_release(fb_cl_job *j, cl_mem m);

void fb_cl_job_end(fb_cl_job *j);
fb_status fb_cl_job_args(fb_cl_job *j, cl_kernel k, const char *name, const fb_cl_karg *args, cl_uint n);
fb_status fb_cl_job_run(fb_cl_job *j, cl_kernel k, const char *name, size_t groups, size_t wg);
fb_status fb_cl_job_read(fb_cl_job *j, cl_mem m, cl_bool blocking, size_t offset, size_t bytes, void *dst);
fb_status fb_cl_job_write(fb_cl_job *j, cl_mem m, size_t offset, size_t bytes, const void *src);
/* Fills bytes of m with a 32-bit pattern. */
fb_status fb_cl_job_fill(fb_cl_job *j, cl_mem m, cl_uint pattern, size_t bytes);
fb_status fb_cl_job_finish(fb_cl_job *j);

/* aux[0..n) := its exclusive prefix sums and aux[n] := the total (aux holds n + 1 uints; the total
 * must fit 32 bits), across all compute units when n is large. */
fb_status fb_cl_scan(fb_cl_job *j, cl_mem aux, uint64_t n);

/* Work-groups for a grid-stride kernel over n items. */
size_t fb_cl_grid_groups(const struct fb_cl_state *cl, uint64_t n, size_t wg);

/* Uploads a column view (its values, and its validity when present). */
fb_status fb_cl_upload_column(fb_cl_job *j, const fb_column *col, fb_cl_dev_column *d);

/* Uploads rows [first, first + rows) of a column view (a chunk). */
fb_status fb_cl_upload_rows(fb_cl_job *j, const fb_column *col, int64_t first, int64_t rows, fb_cl_dev_column *d);

/* The device memory budget in bytes for one call's buffers: FB_CL_MEM_BUDGET (bytes, with an optional
 * k/m/g suffix) when set, else half the device's global memory. Operators that can work in chunks or
 * partitions size them to stay under it. */
size_t fb_cl_budget(const struct fb_cl_state *cl);

/* Bytes still free under the budget for job j. */
size_t fb_cl_job_room(const fb_cl_job *j);

/* Sorts n (uint32 key, uint32 value) pairs held in two device buffers of the job by key, stably
 * (sort.cl's radix passes; the result is left in the same buffers). */
fb_status fb_cl_sort_pairs(fb_cl_job *j, cl_mem keys, cl_mem vals, uint64_t n);

/* ---- device-buffer variants of the operator twins (a chain of operators in one job) --------------------- */

/* The public twins (fb_cl_select_*, fb_cl_compact / fb_cl_gather, fb_cl_expr_arith / _cast) are an upload,
 * one of these and a download; runtime/plan.c runs several of them on device columns in one job. Arguments
 * are checked by the caller (the plan built them); buffers they make belong to the job. */

struct fb_pred;

/* Selection: candidates rows 0..n_cand-1 of d, or (has_sel_in) the n_cand row ids in sel_in; *out (n_cand
 * uints) receives the selected rows in order and *n_out their number (one blocking read of the count).
 * *out is NULL when n_cand is 0. */
fb_status fb_cl_select_dev(fb_cl_job *j, const fb_cl_dev_column *d, const struct fb_pred *p, cl_mem sel_in,
                           int has_sel_in, uint64_t n_cand, cl_mem *out, int64_t *n_out);

/* Compaction (is_sel: idx holds n uint32 rows of d) or gather (idx holds n int64 ids, -1 = null) into a new
 * dense column *dout (and with want_valid its validity *dvalid); an index out of range sets *err (a uint
 * the caller zeroed). Nothing is made for n = 0. */
fb_status fb_cl_move_dev(fb_cl_job *j, const fb_cl_dev_column *d, cl_mem idx, int is_sel, int64_t n, cl_mem err,
                         int want_valid, cl_mem *dout, cl_mem *dvalid);

/* a op b (b NULL: the constant `value`, left of a with value_left) over n dense rows of device columns of
 * one type, into a new dense column *out (validity when an input has one); the first overflowing row goes
 * to `bad` (a uint the caller set to 0xFFFFFFFF). FB_ERR_OPENCL without cl_khr_fp64. */
fb_status fb_cl_expr_arith_dev(fb_cl_job *j, fb_arith op, const fb_cl_dev_column *a, const fb_cl_dev_column *b,
                               const void *value, int value_left, int64_t n, cl_mem bad, fb_cl_dev_column *out);

/* The cast of n dense rows of `in` to type `to` into a new dense column *out; an out-of-range row goes to
 * `bad` (as above). */
fb_status fb_cl_expr_cast_dev(fb_cl_job *j, const fb_cl_dev_column *in, fb_type to, int64_t n, cl_mem bad,
                              fb_cl_dev_column *out);

/* ---- streamed chunks (cl_stream.c) ---------------------------------------------------------------- */


/* Streams rows of up to FB_CL_STREAM_MAX_COLS host columns to the device in chunks, double
 * buffered: chunk k + 1 is copied on cl->copy_queue from a pinned (CL_MEM_ALLOC_HOST_PTR, mapped)
 * staging buffer while the kernels of chunk k run on cl->queue; events order the two queues (a
 * chunk's kernels wait for its upload, a slot's next upload waits for the kernels that read it). */
typedef struct fb_cl_stream {
    fb_cl_job *j;
    const fb_column *cols[FB_CL_STREAM_MAX_COLS];
    size_t n_cols;
    int64_t n, chunk, next; /* rows, rows per chunk, first row of the next chunk to hand out */
    cl_mem dev_data[2][FB_CL_STREAM_MAX_COLS], dev_valid[2][FB_CL_STREAM_MAX_COLS];
    cl_mem pin[2];          /* one staging buffer per slot, all columns of a chunk side by side */
    void *pin_ptr[2];
    size_t pin_bytes;
    cl_event uploaded[2][2 * FB_CL_STREAM_MAX_COLS]; /* copies of the chunk in the slot */
    int n_uploaded[2];
    cl_event consumed[2];   /* the kernels that read the slot */
    int64_t slot_r0[2], slot_m[2];
    int issued;             /* chunks uploaded so far */
    int cur;                /* slot of the chunk handed out last, -1 before the first */
    fb_cl_stream_stats stats;
} fb_cl_stream;

/* Sets up a stream of n rows of cols[0..n_cols) (equal lengths ≥ n) in chunks of `chunk` rows
 * (a multiple of 8); device buffers count against the job's budget (2 slots). */
fb_status fb_cl_stream_open(fb_cl_stream *s, fb_cl_job *j, const fb_column *const *cols, size_t n_cols, int64_t n,
                            int64_t chunk);

/* The next chunk: rows [*r0, *r0 + *m) as device columns d[0..n_cols), uploaded when the kernels
 * enqueued next on cl->queue run (a barrier waits for the copy). Returns FB_OK with *m = 0 at the
 * end. Call fb_cl_stream_release() after enqueueing the chunk's kernels. */
fb_status fb_cl_stream_next(fb_cl_stream *s, int64_t *r0, int64_t *m, fb_cl_dev_column *d);

/* Marks the current chunk's slot free once the kernels enqueued so far on cl->queue have run. */
fb_status fb_cl_stream_release(fb_cl_stream *s);

/* Waits for everything, records the stats in cl->last_stream and frees what the stream holds. */
fb_status fb_cl_stream_close(fb_cl_stream *s, fb_status st);

/* ---- composite keys (cl_keys.c) ------------------------------------------------------------------- */

/* Group-by keys: key[i] = the first row whose tuple of keys[0..n_keys) (nulls included) equals row i's. */
fb_status fb_cl_keys_group(fb_ctx *ctx, const fb_column *keys, size_t n_keys, int64_t *key, const char *where);

/* Join keys: bkey[i] = the first build row with build row i's tuple, null (bvalid bit 0) when the tuple
 * has a null; pkey[i] = the first build row with probe row i's tuple, or -1, null when it has a null.
 * bvalid and pvalid are bitmaps of (rows + 7) / 8 bytes. */
fb_status fb_cl_keys_join(fb_ctx *ctx, const fb_column *bkeys, const fb_column *pkeys, size_t n_keys, int64_t *bkey,
                          uint8_t *bvalid, int64_t *pkey, uint8_t *pvalid, const char *where);

/* ---- devices (cl_device.c) ----------------------------------------------------------------------- */

/* Lists every device of every platform (platform order, then device order). *devs is allocated
 * through ctx (free with fb_free(ctx, *devs, *n * sizeof **devs)); NULL with *n = 0 when there is none. */
fb_status fb_cl_list_devices(fb_ctx *ctx, const char *where, fb_cl_dev **devs, int *n);

/* Opens the context's device if it is not open yet (ctx->cl). Call with ctx->cl_lock held.
 * Returns FB_OK, FB_ERR_NO_DEVICE, FB_ERR_OPENCL, FB_ERR_CL_BUILD, FB_ERR_OUT_OF_MEMORY. */
fb_status fb_cl_acquire(fb_ctx *ctx, const char *where);

/* ---- program (cl_program.c) ---------------------------------------------------------------------- */

/* Gets cl->program for cl->device: from the cache when a matching, intact binary is there, else by
 * building the embedded sources (and then writing the cache). Sets cl->origin and cl->cache_file.
 * The caller then creates the kernels; if that fails on a cached program it calls
 * fb_cl_program_rebuild(). */
fb_status fb_cl_program_get(fb_ctx *ctx, struct fb_cl_state *cl, const char *where);

/* Drops a cached program that could not be used and builds from source (rewriting the cache). */
fb_status fb_cl_program_rebuild(fb_ctx *ctx, struct fb_cl_state *cl, const char *where);

/* Builds `count` sources with `options` for one device. On failure returns FB_ERR_CL_BUILD with the
 * build log in the message (FB_ERR_OPENCL for other failures) and *out stays NULL. */
fb_status fb_cl_build_sources(fb_ctx *ctx, cl_context context, cl_device_id device, cl_uint count,
                              const char **sources, const size_t *sizes, const char *options, cl_program *out,
                              const char *where);

/* ---- test hooks ------------------------------------------------------------------------------------ */

/* Opens the device (as fb_cl_open) and reports where its program came from; *path (may be NULL)
 * receives the cache file ("" when the cache is off), truncated to `size`. */
fb_status fb_cl_program_status(fb_ctx *ctx, fb_cl_program_origin *origin, char *path, size_t size);

/* Builds one OpenCL C source on the context's device and throws the program away: FB_OK, or
 * FB_ERR_CL_BUILD with the build log in the message. Never cached. */
fb_status fb_cl_test_build(fb_ctx *ctx, const char *source);

/* OpenCL fault injection (tests): every device buffer creation, kernel enqueue, device -> host read
 * and host -> device write (clEnqueueWriteBuffer, clEnqueueFillBuffer, clEnqueueCopyBuffer) of the
 * operators asks fb_cl_fault() first; it returns CL_SUCCESS (make the call) or the injected error code
 * (report it as if the call had returned it). Calls are counted per kind, process-wide, while counting
 * is on. Armed by fb_cl_fault_arm() or by the environment: FB_CL_FAULT=kind:k:code (kind one of
 * buffer, kernel, read, write; k the 0-based call of that kind counted from the first OpenCL call;
 * code a negative OpenCL error code, e.g. buffer:3:-4). */
typedef enum fb_cl_fault_kind {
    FB_CL_FAULT_BUFFER = 0, /* clCreateBuffer */
    FB_CL_FAULT_KERNEL = 1, /* clEnqueueNDRangeKernel */
    FB_CL_FAULT_READ = 2,   /* clEnqueueReadBuffer */
    FB_CL_FAULT_WRITE = 3,  /* clEnqueueWriteBuffer, clEnqueueFillBuffer, clEnqueueCopyBuffer */
    FB_CL_FAULT_KINDS = 4
} fb_cl_fault_kind;

cl_int fb_cl_fault(fb_cl_fault_kind kind);

/* Resets the counters and turns counting on; the k-th call (0-based) of `kind` then returns `code`
 * (k < 0: none fails). */
void fb_cl_fault_arm(fb_cl_fault_kind kind, long k, cl_int code);

/* Calls of `kind` counted since the last fb_cl_fault_arm(). */
long fb_cl_fault_calls(fb_cl_fault_kind kind);

/* Turns counting and injection off. */
void fb_cl_fault_off(void);

/* Frees a state and everything it holds (any part may be missing). */
void fb_cl_state_free(fb_ctx *ctx, struct fb_cl_state *cl);

#endif /* FB_CL_INTERNAL_H */
