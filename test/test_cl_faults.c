/* test_cl_faults.c - OpenCL fault injection on PoCL: for every public OpenCL operator (hash, select,
 * compact, gather, the three sorts, group-by, the three join probes, the streamed group-by and probe
 * under a small device memory budget, the group-by in hash partitions, the expression twins in
 * chunks), the k-th device buffer creation, kernel enqueue, device -> host read and host -> device
 * write (fb_cl_fault() in cl/fb_cl_internal.h) returns an injected OpenCL error code, for every k up
 * to the number of such calls the operator makes (a strided subset past 48); for the partitioned
 * group-by and the chunked expressions also every host allocation of the context in turn.
 * Each call must either succeed with the right answer or return the named status (FB_ERR_DEVICE_MEMORY
 * for CL_MEM_OBJECT_ALLOCATION_FAILURE, FB_ERR_OPENCL for the others) with the OpenCL code and its name
 * in the message; afterwards nothing may be left (the context's host memory accounting and the test
 * allocator's live blocks back to where they were, the OpenCL context's reference count - one per
 * live buffer on PoCL - unchanged; LSan checks the rest in the asan build), and the same call on the
 * same context must give the right answer again. The right answer: the CPU twin's for the hash and
 * the sort permutation (equal by definition), the fault-free run's digest for the others (their
 * correctness against the CPU is test_cl_ops's subject).
 * Plans: placement auto without a calibration runs on the CPU, so with a device fault armed it must be
 * right without a single OpenCL call (FB_CALIBRATION points nowhere here). The device fallback of plans
 * under auto and hybrid, with faults swept through gpu runs, is test_plan_cl's subject. Also: four threads
 * calling operators on the one context at once. Fails (does not
 * skip) without an OpenCL device. */
#include "fb_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "fb/fb_cl.h"
#include "fb_cl_internal.h"
#include "fb_test_cl_faults.h"

/* ---- a counting allocator: the context's host memory must all come back ---------------------------- */

static atomic_long live_blocks;
static atomic_long alloc_calls, alloc_fail_at = -1; /* host allocation failure injection (-1: none) */

static void *t_alloc(void *user, size_t size, size_t alignment)
{
    (void)user;
    if (atomic_fetch_add(&alloc_calls, 1) == atomic_load(&alloc_fail_at))
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, alignment < sizeof(void *) ? sizeof(void *) : alignment, size ? size : 1) != 0)
        return NULL;
    atomic_fetch_add(&live_blocks, 1);
    return p;
}

static void t_free(void *user, void *ptr, size_t size)
{
    (void)user;
    (void)size;
    if (!ptr)
        return;
    free(ptr);
    atomic_fetch_sub(&live_blocks, 1);
}

static fb_ctx *ctx;

/* The OpenCL context's reference count: PoCL holds one per live buffer, and drops them a little after
 * the commands that used them finish, so this waits until it settles (unchanged for 20 ms) or, with
 * `want`, until it is at most want (for at most 2 s). */
static cl_uint cl_context_refs(const cl_uint *want)
{
    cl_uint refs = 0, last = 0;
    int same = 0;
    clFinish(ctx->cl->queue);
    clFinish(ctx->cl->copy_queue);
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(clGetContextInfo(ctx->cl->context, CL_CONTEXT_REFERENCE_COUNT, sizeof refs, &refs, NULL),
                         CL_SUCCESS);
        if (want ? refs <= *want : (i > 0 && refs == last && ++same >= 20))
            break;
        if (!want && refs != last)
            same = 0;
        last = refs;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    return refs;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t mix(uint64_t h, uint64_t x) { return (h ^ x) * 0x9E3779B97F4A7C15ull + (h >> 29); }

static uint64_t digest(uint64_t h, const void *p, size_t bytes)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < bytes; i++)
        h = mix(h, b[i]);
    return h;
}

/* One call under test: with FB_OK it sets *check to a digest of its answer; it frees what it made. */
typedef fb_status (*call_fn)(uint64_t *check);

static long total_points, total_runs;

/* Runs `call` once clean (its digest must equal *want when want_set), then with each of its OpenCL calls
 * failing in turn. */
static void sweep(const char *name, call_fn call, uint64_t want, int want_set)
{
    uint64_t got = 0;
    fb_cl_fault_arm(FB_CL_FAULT_BUFFER, -1, 0); /* count only */
    assert_fb_ok(ctx, call(&got));
    if (want_set && got != want)
        fail_msg("%s: the OpenCL answer differs from the CPU's", name);
    want = got;
    long calls[FB_CL_FAULT_KINDS];
    for (int kind = 0; kind < FB_CL_FAULT_KINDS; kind++)
        calls[kind] = fb_cl_fault_calls((fb_cl_fault_kind)kind);
    size_t base_mem = fb_ctx_memory_used(ctx);
    long base_live = atomic_load(&live_blocks);
    cl_uint base_refs = cl_context_refs(NULL);
    long runs = 0, failed = 0;
    for (int kind = 0; kind < FB_CL_FAULT_KINDS; kind++) {
        for (long k = 0; k < calls[kind]; k += k < 48 ? 1 : 1 + calls[kind] / 24) {
            cl_int code = code_for(kind, k);
            fb_cl_fault_arm((fb_cl_fault_kind)kind, k, code);
            got = 0;
            fb_status st = call(&got);
            fb_cl_fault_off();
            runs++;
            if (st == FB_OK) {
                if (got != want)
                    fail_msg("%s, %s call %ld failing: FB_OK with a different answer", name, kind_names[kind], k);
            } else {
                fb_status named = code == CL_MEM_OBJECT_ALLOCATION_FAILURE ? FB_ERR_DEVICE_MEMORY : FB_ERR_OPENCL;
                char text[64];
                snprintf(text, sizeof text, "%d (%s)", (int)code, fb_cl_error_name(code));
                if (st != named || !strstr(fb_last_error(ctx), text))
                    fail_msg("%s, %s call %ld failing with %s: %s (%s), expected %s with \"%s\"", name,
                             kind_names[kind], k, text, fb_status_name(st), fb_last_error(ctx), fb_status_name(named),
                             text);
                failed++;
            }
            cl_uint refs = cl_context_refs(&base_refs);
            if (refs < base_refs) /* the base was taken before a late release */
                base_refs = refs;
            if (fb_ctx_memory_used(ctx) != base_mem || atomic_load(&live_blocks) != base_live || refs != base_refs)
                fail_msg("%s, %s call %ld failing: %zu host bytes, %ld host blocks, %d device objects left", name,
                         kind_names[kind], k, fb_ctx_memory_used(ctx) - base_mem,
                         atomic_load(&live_blocks) - base_live, (int)(refs - base_refs));
            got = 0;
            assert_fb_ok(ctx, call(&got)); /* and the context still works */
            if (got != want)
                fail_msg("%s: wrong answer after a %s fault at call %ld", name, kind_names[kind], k);
        }
    }
    print_message("[ cl faults] %-30s buffers %3ld, kernels %3ld, reads %3ld, writes %3ld: %ld runs, %ld failed\n",
                  name, calls[0], calls[1], calls[2], calls[3], runs, failed);
    total_points += calls[0] + calls[1] + calls[2] + calls[3];
    total_runs += runs;
    assert_true(failed > 0);
}

/* ---- data --------------------------------------------------------------------------------------------- */

enum { N = 12000, NB = 3000 };
static int32_t k32[N], v32[N];
static int64_t k64[N], v64[N];
static uint8_t kvalid[N / 8 + 1];
static uint32_t sel[N];
static int64_t ids[N];
static int64_t n_sel;

static fb_column key32(void) { return fb_column_make(FB_TYPE_INT32, k32, N, kvalid); }

/* ---- the calls --------------------------------------------------------------------------------------- */

static fb_status call_hash(uint64_t *check)
{
    fb_column keys[2] = {key32(), fb_column_make(FB_TYPE_INT64, k64, N, NULL)};
    uint64_t *h = malloc(8 * N);
    fb_status st = fb_cl_hash_columns(ctx, keys, 2, h, N);
    if (st == FB_OK)
        *check = digest(0, h, 8 * N);
    free(h);
    return st;
}

static fb_status call_select_cmp(uint64_t *check)
{
    fb_column c = fb_column_make(FB_TYPE_INT64, v64, N, NULL);
    int64_t lim = 0, n_out = -1;
    uint32_t *out = malloc(4 * N);
    fb_status st = fb_cl_select_cmp(ctx, &c, FB_CMP_LT, &lim, sel, n_sel, out, N, &n_out);
    if (st == FB_OK)
        *check = digest((uint64_t)n_out, out, 4 * (size_t)n_out);
    free(out);
    return st;
}

static fb_status call_select_in(uint64_t *check)
{
    fb_column c = key32();
    int32_t set[5] = {k32[1], k32[7], k32[100], -3, 17};
    int64_t n_out = -1;
    uint32_t *out = malloc(4 * N);
    fb_status st = fb_cl_select_in(ctx, &c, set, 5, NULL, N, out, N, &n_out);
    if (st == FB_OK)
        *check = digest((uint64_t)n_out, out, 4 * (size_t)n_out);
    free(out);
    return st;
}

static fb_status call_compact(uint64_t *check)
{
    fb_column c = key32();
    int32_t *d = malloc(4 * N);
    uint8_t *v = malloc(N / 8 + 1);
    fb_column_out o = {FB_TYPE_INT32, N, d, v, 0, 0};
    fb_status st = fb_cl_compact(ctx, &c, sel, n_sel, &o);
    if (st == FB_OK)
        *check = digest(digest((uint64_t)o.null_count, d, 4 * (size_t)o.length), v, (size_t)o.length / 8);
    free(d);
    free(v);
    return st;
}

static fb_status call_gather(uint64_t *check)
{
    fb_column c = fb_column_make(FB_TYPE_INT64, v64, N, NULL);
    int64_t *d = malloc(8 * N);
    fb_column_out o = {FB_TYPE_INT64, N, d, NULL, 0, 0};
    fb_status st = fb_cl_gather(ctx, &c, ids, N, &o);
    if (st == FB_OK)
        *check = digest((uint64_t)o.length, d, 8 * (size_t)o.length);
    free(d);
    return st;
}

static void sort_keys(fb_sort_key keys[2])
{
    keys[0] = (fb_sort_key){key32(), 0, 1};
    keys[1] = (fb_sort_key){fb_column_make(FB_TYPE_INT64, k64, N, NULL), 1, 0};
}

static fb_status call_sort(uint64_t *check)
{
    fb_sort_key keys[2];
    sort_keys(keys);
    uint32_t *perm = malloc(4 * N);
    fb_status st = fb_cl_sort_permutation(ctx, keys, 2, perm, N);
    if (st == FB_OK)
        *check = digest(0, perm, 4 * N);
    free(perm);
    return st;
}

static fb_status call_top_n(uint64_t *check)
{
    fb_sort_key keys[2];
    sort_keys(keys);
    uint32_t *perm = malloc(4 * N);
    int64_t n_out = -1;
    fb_status st = fb_cl_sort_top_n(ctx, keys, 2, 777, perm, N, &n_out);
    if (st == FB_OK)
        *check = digest((uint64_t)n_out, perm, 4 * (size_t)n_out);
    free(perm);
    return st;
}

static fb_status call_sort_table(uint64_t *check)
{
    fb_sort_key key = {key32(), 1, 0};
    fb_column pay = fb_column_make(FB_TYPE_INT64, v64, N, NULL);
    int32_t *ok = malloc(4 * N);
    uint8_t *ov = malloc(N / 8 + 1);
    int64_t *op = malloc(8 * N);
    fb_column_out out[2] = {{FB_TYPE_INT32, N, ok, ov, 0, 0}, {FB_TYPE_INT64, N, op, NULL, 0, 0}};
    fb_status st = fb_cl_sort_table(ctx, &key, 1, &pay, 1, out);
    if (st == FB_OK)
        *check = digest(digest(digest((uint64_t)out[0].null_count, ok, 4 * N), ov, N / 8), op, 8 * N);
    free(ok);
    free(ov);
    free(op);
    return st;
}

static fb_status call_group_by(uint64_t *check)
{
    fb_type kt = FB_TYPE_INT32;
    fb_agg_desc aggs[3] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT64},
                           {FB_AGG_MIN, 1, FB_TYPE_INT32}};
    fb_agg_spec spec = {1, &kt, 3, aggs, FB_AGG_STRATEGY_AUTO};
    fb_column key = key32();
    fb_column vals[2] = {fb_column_make(FB_TYPE_INT64, v64, N, NULL), fb_column_make(FB_TYPE_INT32, v32, N, NULL)};
    int32_t *gk = malloc(4 * N);
    uint8_t *gv = malloc(N / 8 + 1), *mv = malloc(N / 8 + 1);
    int64_t *c = malloc(8 * N), *s = malloc(8 * N);
    int32_t *mn = malloc(4 * N);
    fb_column_out ko = {FB_TYPE_INT32, N, gk, gv, 0, 0};
    fb_column_out ao[3] = {{FB_TYPE_INT64, N, c, NULL, 0, 0}, {FB_TYPE_INT64, N, s, NULL, 0, 0},
                           {FB_TYPE_INT32, N, mn, mv, 0, 0}};
    int64_t groups = -1;
    fb_status st = fb_cl_group_by(ctx, &spec, &key, vals, 2, N, &ko, ao, &groups);
    if (st == FB_OK) { /* group order is the device's: a sum of per-group digests */
        uint64_t h = (uint64_t)groups;
        for (int64_t g = 0; g < groups; g++) {
            int kn = (gv[g >> 3] >> (g & 7)) & 1;
            h += mix(mix(mix(mix((uint64_t)(kn ? gk[g] : 0x7777), (uint64_t)kn), (uint64_t)c[g]), (uint64_t)s[g]),
                     (uint64_t)mn[g]);
        }
        *check = h;
    }
    free(gk);
    free(gv);
    free(mv);
    free(c);
    free(s);
    free(mn);
    return st;
}

/* A group-by of two key columns (the int32 keys with nulls and the int64 keys): composite tuples. */
static fb_status call_group_by_keys(uint64_t *check)
{
    fb_type kt[2] = {FB_TYPE_INT32, FB_TYPE_INT64};
    fb_agg_desc aggs[3] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT64},
                           {FB_AGG_MAX, 1, FB_TYPE_INT32}};
    fb_agg_spec spec = {2, kt, 3, aggs, FB_AGG_STRATEGY_AUTO};
    fb_column keys[2] = {key32(), fb_column_make(FB_TYPE_INT64, k64, N, NULL)};
    fb_column vals[2] = {fb_column_make(FB_TYPE_INT64, v64, N, NULL), fb_column_make(FB_TYPE_INT32, v32, N, NULL)};
    int32_t *gk = malloc(4 * N), *mx = malloc(4 * N);
    int64_t *gk2 = malloc(8 * N), *c = malloc(8 * N), *s = malloc(8 * N);
    uint8_t *gv = malloc(N / 8 + 1), *gv2 = malloc(N / 8 + 1), *mv = malloc(N / 8 + 1);
    fb_column_out ko[2] = {{FB_TYPE_INT32, N, gk, gv, 0, 0}, {FB_TYPE_INT64, N, gk2, gv2, 0, 0}};
    fb_column_out ao[3] = {{FB_TYPE_INT64, N, c, NULL, 0, 0}, {FB_TYPE_INT64, N, s, NULL, 0, 0},
                           {FB_TYPE_INT32, N, mx, mv, 0, 0}};
    int64_t groups = -1;
    fb_status st = fb_cl_group_by(ctx, &spec, keys, vals, 2, N, ko, ao, &groups);
    if (st == FB_OK) { /* in group order: the order is part of the answer */
        uint64_t h = (uint64_t)groups;
        for (int64_t g = 0; g < groups; g++) {
            int kn = (gv[g >> 3] >> (g & 7)) & 1;
            h = mix(mix(mix(mix(mix(h, (uint64_t)(kn ? gk[g] : 0x7777)), (uint64_t)kn), (uint64_t)gk2[g]),
                        (uint64_t)c[g]),
                    (uint64_t)s[g]) + (uint64_t)mx[g];
        }
        *check = h;
    }
    free(gk);
    free(mx);
    free(gk2);
    free(c);
    free(s);
    free(gv);
    free(gv2);
    free(mv);
    return st;
}

static fb_status call_join_probe(uint64_t *check)
{
    fb_column b = fb_column_make(FB_TYPE_INT32, k32, NB, kvalid), p = key32();
    int64_t cap = 8 * N, n = -1;
    int64_t *bi = malloc(8 * (size_t)cap), *pi = malloc(8 * (size_t)cap);
    fb_join_pairs o = {bi, pi, cap, 0, 0};
    fb_status st = fb_cl_join_probe(ctx, &b, 0, &p, 0, FB_JOIN_LEFT, &o, &n);
    if (st == FB_OK)
        *check = digest(digest((uint64_t)n, bi, 8 * (size_t)o.length), pi, 8 * (size_t)o.length);
    free(bi);
    free(pi);
    return st;
}

static fb_status call_join_select(uint64_t *check)
{
    fb_column b = fb_column_make(FB_TYPE_INT32, k32, NB, kvalid), p = key32();
    uint32_t *out = malloc(4 * N);
    int64_t n = -1;
    fb_status st = fb_cl_join_probe_select(ctx, &b, &p, FB_JOIN_ANTI, out, N, &n);
    if (st == FB_OK)
        *check = digest((uint64_t)n, out, 4 * (size_t)n);
    free(out);
    return st;
}

static fb_status call_join_mark(uint64_t *check)
{
    fb_column b = fb_column_make(FB_TYPE_INT32, k32, NB, kvalid), p = key32();
    uint8_t *m = malloc(N), *v = malloc(N / 8 + 1);
    fb_column_out o = {FB_TYPE_UINT8, N, m, v, 0, 0};
    fb_status st = fb_cl_join_probe_mark(ctx, &b, &p, &o);
    if (st == FB_OK)
        *check = digest(digest((uint64_t)o.null_count, m, N), v, N / 8);
    free(m);
    free(v);
    return st;
}

/* The expression twins (each against the CPU function's answer) and the composite-key probe. */
static fb_status expr_cmp(int cl, uint64_t *check)
{
    fb_column c = key32();
    int32_t v = 17;
    uint8_t *bits = calloc(N / 8 + 1, 1), *valid = calloc(N / 8 + 1, 1);
    fb_bool o = {N, bits, valid};
    fb_status st = cl ? fb_cl_expr_cmp(ctx, &c, FB_CMP_GT, &v, sel, n_sel, &o)
                      : fb_expr_cmp(ctx, &c, FB_CMP_GT, &v, sel, n_sel, &o);
    if (st == FB_OK)
        *check = digest(digest(0, bits, N / 8), valid, N / 8);
    free(bits);
    free(valid);
    return st;
}
static fb_status call_expr_cmp(uint64_t *check) { return expr_cmp(1, check); }

static fb_status expr_logic(int cl, uint64_t *check)
{
    uint8_t *ab = malloc(N / 8 + 1), *bb = malloc(N / 8 + 1), *bits = calloc(N / 8 + 1, 1),
            *valid = calloc(N / 8 + 1, 1);
    for (int64_t i = 0; i < N / 8 + 1; i++) {
        ab[i] = (uint8_t)k32[i];
        bb[i] = (uint8_t)v32[i];
    }
    fb_bool a = {N, ab, kvalid}, b = {N, bb, NULL}, o = {N, bits, valid};
    fb_status st = cl ? fb_cl_expr_and(ctx, &a, &b, &o) : fb_expr_and(ctx, &a, &b, &o);
    if (st == FB_OK)
        *check = digest(digest(0, bits, N / 8), valid, N / 8);
    free(ab);
    free(bb);
    free(bits);
    free(valid);
    return st;
}
static fb_status call_expr_logic(uint64_t *check) { return expr_logic(1, check); }

static fb_status expr_arith(int cl, uint64_t *check)
{
    fb_column a = fb_column_make(FB_TYPE_INT64, k64, N, kvalid), b = fb_column_make(FB_TYPE_INT64, v64, N, NULL);
    int64_t *v = malloc(8 * N);
    uint8_t *valid = calloc(N / 8 + 1, 1);
    fb_column_out o = {FB_TYPE_INT64, N, v, valid, 0, 0};
    fb_status st = cl ? fb_cl_expr_arith(ctx, FB_ARITH_MUL, &a, &b, sel, n_sel, &o)
                      : fb_expr_arith(ctx, FB_ARITH_MUL, &a, &b, sel, n_sel, &o);
    if (st == FB_OK) {
        uint64_t h = digest((uint64_t)o.null_count, valid, N / 8);
        for (int64_t j = 0; j < n_sel; j++) /* rows outside the selection are unspecified */
            if (valid[sel[j] >> 3] >> (sel[j] & 7) & 1)
                h = digest(h, &v[sel[j]], 8);
        *check = h;
    }
    free(v);
    free(valid);
    return st;
}
static fb_status call_expr_arith(uint64_t *check) { return expr_arith(1, check); }

static fb_status expr_cast(int cl, uint64_t *check)
{
    fb_column a = fb_column_make(FB_TYPE_INT64, k64, N, kvalid);
    double *v = malloc(8 * N);
    uint8_t *valid = calloc(N / 8 + 1, 1);
    fb_column_out o = {FB_TYPE_FLOAT64, N, v, valid, 0, 0};
    fb_status st = cl ? fb_cl_expr_cast(ctx, &a, NULL, 0, &o) : fb_expr_cast(ctx, &a, NULL, 0, &o);
    if (st == FB_OK) {
        uint64_t h = digest((uint64_t)o.null_count, valid, N / 8);
        for (int64_t i = 0; i < N; i++)
            if (valid[i >> 3] >> (i & 7) & 1)
                h = digest(h, &v[i], 8);
        *check = h;
    }
    free(v);
    free(valid);
    return st;
}
static fb_status call_expr_cast(uint64_t *check) { return expr_cast(1, check); }

static fb_status expr_select_cols(int cl, uint64_t *check)
{
    fb_column a = key32(), b = fb_column_make(FB_TYPE_INT32, v32, N, NULL);
    uint32_t *out = malloc(4 * N);
    int64_t n = -1;
    fb_status st = cl ? fb_cl_expr_select_cols(ctx, &a, FB_CMP_GT, &b, sel, n_sel, out, N, &n)
                      : fb_expr_select_cols(ctx, &a, FB_CMP_GT, &b, sel, n_sel, out, N, &n);
    if (st == FB_OK)
        *check = digest((uint64_t)n, out, 4 * (size_t)n);
    free(out);
    return st;
}
static fb_status call_expr_select_cols(uint64_t *check) { return expr_select_cols(1, check); }

static fb_status join_keys(int cl, uint64_t *check)
{
    fb_column b[2] = {fb_column_make(FB_TYPE_INT32, k32, NB, kvalid), fb_column_make(FB_TYPE_INT64, k64, NB, NULL)};
    fb_column p[2] = {key32(), fb_column_make(FB_TYPE_INT64, k64, N, NULL)};
    int64_t cap = 8 * N, n = -1;
    int64_t *bi = malloc(8 * (size_t)cap), *pi = malloc(8 * (size_t)cap);
    fb_join_pairs o = {bi, pi, cap, 0, 0};
    fb_status st;
    if (cl) {
        st = fb_cl_join_probe_keys(ctx, b, p, 2, 0, 0, FB_JOIN_LEFT, &o, &n);
    } else { /* the CPU kernel: a hash table over the build keys, one probe of the whole side */
        fb_hash_table *t = NULL;
        const fb_type types[2] = {FB_TYPE_INT32, FB_TYPE_INT64};
        fb_join_cursor cur = FB_JOIN_CURSOR_INIT;
        st = fb_hash_table_create(ctx, types, 2, NB, &t);
        if (st == FB_OK)
            st = fb_hash_table_build(ctx, t, b, 2, 0);
        if (st == FB_OK)
            st = fb_hash_table_probe(ctx, t, p, 2, FB_JOIN_LEFT, 0, &cur, &o);
        if (st == FB_OK && o.more)
            st = FB_ERR_CAPACITY;
        n = o.length;
        fb_hash_table_destroy(t);
    }
    if (st == FB_OK)
        *check = digest(digest((uint64_t)n, bi, 8 * (size_t)o.length), pi, 8 * (size_t)o.length);
    free(bi);
    free(pi);
    return st;
}
static fb_status call_join_keys(uint64_t *check) { return join_keys(1, check); }

/* ---- tests --------------------------------------------------------------------------------------------- */

static void test_hash(void **state)
{
    (void)state;
    fb_column keys[2] = {key32(), fb_column_make(FB_TYPE_INT64, k64, N, NULL)};
    uint64_t *h = malloc(8 * N);
    assert_fb_ok(ctx, fb_hash_columns(ctx, keys, 2, h, N));
    uint64_t want = digest(0, h, 8 * N);
    free(h);
    sweep("fb_cl_hash_columns", call_hash, want, 1);
}

static void test_select(void **state)
{
    (void)state;
    sweep("fb_cl_select_cmp", call_select_cmp, 0, 0);
    sweep("fb_cl_select_in", call_select_in, 0, 0);
}

static void test_move(void **state)
{
    (void)state;
    sweep("fb_cl_compact", call_compact, 0, 0);
    sweep("fb_cl_gather", call_gather, 0, 0);
}

static void test_sort(void **state)
{
    (void)state;
    fb_sort_key keys[2];
    sort_keys(keys);
    uint32_t *perm = malloc(4 * N);
    assert_fb_ok(ctx, fb_sort_permutation(ctx, keys, 2, perm, N));
    uint64_t want = digest(0, perm, 4 * N);
    free(perm);
    sweep("fb_cl_sort_permutation", call_sort, want, 1);
    sweep("fb_cl_sort_top_n", call_top_n, 0, 0);
    sweep("fb_cl_sort_table", call_sort_table, 0, 0);
}

static void test_group_by(void **state)
{
    (void)state;
    sweep("fb_cl_group_by", call_group_by, 0, 0);
}

static void test_join(void **state)
{
    (void)state;
    sweep("fb_cl_join_probe", call_join_probe, 0, 0);
    sweep("fb_cl_join_probe_select", call_join_select, 0, 0);
    sweep("fb_cl_join_probe_mark", call_join_mark, 0, 0);
}

static void test_expr(void **state)
{
    (void)state;
    struct {
        const char *name;
        fb_status (*both)(int, uint64_t *);
        call_fn cl;
    } t[] = {{"fb_cl_expr_cmp", expr_cmp, call_expr_cmp},
             {"fb_cl_expr_and", expr_logic, call_expr_logic},
             {"fb_cl_expr_arith", expr_arith, call_expr_arith},
             {"fb_cl_expr_cast", expr_cast, call_expr_cast}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint64_t want = 0;
        assert_fb_ok(ctx, t[i].both(0, &want));
        sweep(t[i].name, t[i].cl, want, 1);
    }
}

static void test_join_keys(void **state)
{
    (void)state;
    uint64_t want = 0, h = 0;
    assert_fb_ok(ctx, join_keys(0, &want));
    sweep("fb_cl_join_probe_keys", call_join_keys, want, 1);
    /* a build side over the budget: hash partitions, one device table each */
    setenv("FB_CL_MEM_BUDGET", "256k", 1);
    assert_fb_ok(ctx, call_join_keys(&h));
    assert_int_equal(h, want);
    sweep("fb_cl_join_probe_keys (partitioned)", call_join_keys, want, 1);
    unsetenv("FB_CL_MEM_BUDGET");
}

/* Host allocations (ctx's allocator) failing in turn: FB_ERR_OUT_OF_MEMORY or the right answer, nothing
 * left, and the next call right. */
static void sweep_host(const char *name, call_fn call, uint64_t want)
{
    uint64_t got = 0;
    atomic_store(&alloc_fail_at, -1);
    atomic_store(&alloc_calls, 0);
    assert_fb_ok(ctx, call(&got));
    assert_true(got == want);
    long calls = atomic_load(&alloc_calls), failed = 0;
    size_t base_mem = fb_ctx_memory_used(ctx);
    long base_live = atomic_load(&live_blocks);
    cl_uint base_refs = cl_context_refs(NULL);
    for (long k = 0; k < calls; k++) {
        atomic_store(&alloc_calls, 0);
        atomic_store(&alloc_fail_at, k);
        fb_status st = call(&got);
        atomic_store(&alloc_fail_at, -1);
        if (st == FB_OK && got != want)
            fail_msg("%s, host allocation %ld failing: FB_OK with a different answer", name, k);
        if (st != FB_OK && st != FB_ERR_OUT_OF_MEMORY)
            fail_msg("%s, host allocation %ld failing: %s (%s)", name, k, fb_status_name(st), fb_last_error(ctx));
        failed += st != FB_OK;
        cl_uint refs = cl_context_refs(&base_refs);
        if (refs < base_refs)
            base_refs = refs;
        if (fb_ctx_memory_used(ctx) != base_mem || atomic_load(&live_blocks) != base_live || refs != base_refs)
            fail_msg("%s, host allocation %ld failing: %zu host bytes, %ld host blocks, %d device objects left", name, k,
                     fb_ctx_memory_used(ctx) - base_mem, atomic_load(&live_blocks) - base_live, (int)(refs - base_refs));
        assert_fb_ok(ctx, call(&got));
        assert_true(got == want);
    }
    print_message("[ cl faults] %-30s host allocations %3ld: %ld failed\n", name, calls, failed);
    assert_true(failed > 0);
}

/* A group-by over the device memory budget (one and two key columns): host hash partitions, one device
 * group-by each; the same answer as the unpartitioned call under every fault, host allocation failure
 * and a context memory limit. */
static void test_group_partitioned(void **state)
{
    (void)state;
    /* the table of 12000 rows (32768 slots x 12 bytes; the two keys' tuples 21 bytes a row more) and the
     * groups' words do not fit: the whole input fails on the device, then two partitions */
    struct {
        const char *name, *host_name, *budget;
        call_fn call;
    } t[] = {{"fb_cl_group_by (partitioned)", "fb_cl_group_by (parts, host)", "450k", call_group_by},
             {"fb_cl_group_by (2 keys, parts)", "fb_cl_group_by (2 keys, host)", "900k", call_group_by_keys}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint64_t want = 0, h = 0;
        assert_fb_ok(ctx, t[i].call(&want));
        assert_int_equal(ctx->cl->last_partitions, 0);
        setenv("FB_CL_MEM_BUDGET", t[i].budget, 1);
        double t0 = now_s();
        assert_fb_ok(ctx, t[i].call(&h));
        print_message("[ cl faults] %-30s %d partitions\n", t[i].name, ctx->cl->last_partitions);
        assert_true(ctx->cl->last_partitions > 1);
        assert_true(h == want);
        sweep(t[i].name, t[i].call, want, 1);
        sweep_host(t[i].host_name, t[i].call, want);
        unsetenv("FB_CL_MEM_BUDGET");
        print_message("[ cl faults] %-30s %.1f s\n", t[i].name, now_s() - t0);
    }
    /* a context whose host memory limit the partitioning passes: FB_ERR_OUT_OF_MEMORY, nothing left */
    static const size_t limits[] = {200 << 10, 800 << 10, 3200 << 10};
    setenv("FB_CL_MEM_BUDGET", "900k", 1);
    int oom = 0;
    for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++) {
        fb_options *o = NULL;
        fb_allocator a = {t_alloc, t_free, NULL};
        fb_ctx *small = NULL;
        assert_fb_ok(NULL, fb_options_create(&o));
        assert_fb_ok(NULL, fb_options_set_allocator(o, &a));
        assert_fb_ok(NULL, fb_options_set_memory_limit(o, limits[l]));
        assert_fb_ok(NULL, fb_ctx_create(o, &small));
        fb_options_destroy(o);
        fb_ctx *keep = ctx;
        ctx = small;
        if (fb_cl_open(ctx, NULL) == FB_OK) {
            size_t base = fb_ctx_memory_used(ctx);
            uint64_t h = 0;
            fb_status st = call_group_by_keys(&h);
            if (st == FB_ERR_OUT_OF_MEMORY)
                oom++;
            else
                assert_fb_ok(ctx, st);
            assert_int_equal(fb_ctx_memory_used(ctx), base);
            print_message("[ cl faults] memory limit %zu KiB: %s\n", limits[l] >> 10, fb_status_name(st));
        }
        ctx = keep;
        fb_ctx_destroy(small);
    }
    unsetenv("FB_CL_MEM_BUDGET");
    assert_true(oom > 0);
}

/* A small device memory budget: the group-by and the probe stream their input in chunks (pinned
 * staging buffers, the copy queue, events), and the sorts work in sorted runs. */
static void test_streamed(void **state)
{
    (void)state;
    setenv("FB_CL_MEM_BUDGET", "1m", 1);
    uint64_t h = 0;
    assert_fb_ok(ctx, call_group_by(&h));
    assert_true(ctx->cl->last_chunks > 1 || ctx->cl->last_stream.chunks > 1);
    sweep("fb_cl_group_by (streamed)", call_group_by, 0, 0);
    setenv("FB_CL_MEM_BUDGET", "300k", 1);
    assert_fb_ok(ctx, call_join_probe(&h));
    assert_true(ctx->cl->last_chunks > 1 || ctx->cl->last_stream.chunks > 1);
    sweep("fb_cl_join_probe (streamed)", call_join_probe, 0, 0);
    /* row-aligned expression twins over the budget: chunks of rows, one job each */
    setenv("FB_CL_MEM_BUDGET", "64k", 1);
    uint64_t want = 0;
    assert_fb_ok(ctx, expr_arith(0, &want));
    assert_fb_ok(ctx, call_expr_arith(&h));
    assert_true(ctx->cl->last_chunks > 1);
    sweep("fb_cl_expr_arith (chunks)", call_expr_arith, want, 1);
    sweep_host("fb_cl_expr_arith (chunks, host)", call_expr_arith, want);
    assert_fb_ok(ctx, expr_cmp(0, &want));
    sweep("fb_cl_expr_cmp (chunks)", call_expr_cmp, want, 1);
    assert_fb_ok(ctx, expr_select_cols(0, &want));
    assert_fb_ok(ctx, call_expr_select_cols(&h));
    assert_true(ctx->cl->last_chunks > 1);
    sweep("fb_cl_expr_select_cols (chunks)", call_expr_select_cols, want, 1);
    sweep_host("fb_cl_expr_select_cols (host)", call_expr_select_cols, want);
    /* sorts larger than the budget: sorted runs merged on the host */
    setenv("FB_CL_MEM_BUDGET", "2200k", 1);
    assert_fb_ok(ctx, call_sort(&h));
    assert_true(ctx->cl->last_chunks > 1);
    sweep("fb_cl_sort_permutation (runs)", call_sort, 0, 0);
    sweep("fb_cl_sort_table (runs)", call_sort_table, 0, 0);
    unsetenv("FB_CL_MEM_BUDGET");
    print_message("[ cl faults] %ld injection points, %ld faulted runs in all\n", total_points, total_runs);
}

/* Several threads calling OpenCL operators on the one context at once (its device is shared under a
 * lock): every answer equals the one-thread answer, and nothing is left. */
typedef struct cl_caller {
    call_fn call;
    uint64_t want;
    int bad;
} cl_caller;

static void *cl_caller_main(void *arg)
{
    cl_caller *c = arg;
    for (int i = 0; i < 4; i++) {
        uint64_t got = 0;
        if (c->call(&got) != FB_OK || got != c->want)
            c->bad++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    call_fn calls[4] = {call_sort, call_group_by, call_join_probe, call_hash};
    cl_caller c[4];
    pthread_t th[4];
    size_t base_mem = fb_ctx_memory_used(ctx);
    for (int i = 0; i < 4; i++) {
        c[i] = (cl_caller){calls[i], 0, 0};
        assert_fb_ok(ctx, calls[i](&c[i].want));
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, cl_caller_main, &c[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(c[i].bad, 0);
    }
    assert_int_equal(fb_ctx_memory_used(ctx), base_mem);
}

/* Plans under placement auto with every OpenCL call failing: without a calibration auto runs on the CPU,
 * right, and never touches the device. */
static void test_plan_auto(void **state)
{
    (void)state;
    fb_column fc[2] = {key32(), fb_column_make(FB_TYPE_INT64, v64, N, NULL)};
    fb_table t = {2, fc, NULL};
    uint64_t sums[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++) {
        fb_plan *p = NULL;
        fb_plan_node s, a;
        size_t key = 0;
        fb_plan_agg aggs[2] = {{FB_AGG_COUNT_STAR, 0}, {FB_AGG_SUM, 1}};
        assert_fb_ok(ctx, fb_plan_create(ctx, &p));
        assert_fb_ok(ctx, fb_plan_scan(p, &t, "t", NULL, 0, &s));
        assert_fb_ok(ctx, fb_plan_aggregate(p, s, &key, 1, aggs, 2, &a));
        fb_plan_result *r = NULL;
        if (pass == 1)
            fb_cl_fault_arm(FB_CL_FAULT_BUFFER, 0, CL_MEM_OBJECT_ALLOCATION_FAILURE);
        else
            fb_cl_fault_arm(FB_CL_FAULT_BUFFER, -1, 0);
        assert_fb_ok(ctx, fb_plan_run(p, a, pass ? FB_PLACEMENT_AUTO : FB_PLACEMENT_CPU, &r));
        for (int kind = 0; kind < FB_CL_FAULT_KINDS; kind++)
            assert_int_equal(fb_cl_fault_calls((fb_cl_fault_kind)kind), 0);
        fb_cl_fault_off();
        for (int64_t i = 0; i < r->rows; i++) {
            const fb_column *c1 = &r->table.columns[1], *c2 = &r->table.columns[2];
            sums[pass] += mix((uint64_t)((const int64_t *)c1->data)[c1->offset + i],
                              (uint64_t)((const int64_t *)c2->data)[c2->offset + i]);
        }
        fb_plan_result_free(r);
        fb_plan_destroy(p);
    }
    assert_true(sums[0] == sums[1]);
}

static int setup(void **state)
{
    (void)state;
    fb_options *o = NULL;
    fb_allocator a = {t_alloc, t_free, NULL};
    setenv("FB_CALIBRATION", "/nonexistent/fb-calibration.json", 1); /* no calibration: auto = cpu */
    if (fb_options_create(&o) != FB_OK || fb_options_set_allocator(o, &a) != FB_OK)
        return -1;
    int rc = fbt_cl_ctx_create(o, &ctx);
    fb_options_destroy(o);
    if (rc != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fb_cl_fault_off();
    fb_ctx_destroy(ctx);
    if (atomic_load(&live_blocks) != 0) {
        fprintf(stderr, "%ld host blocks of the context left after fb_ctx_destroy\n", atomic_load(&live_blocks));
        return -1;
    }
    return 0;
}

int main(void)
{
    uint64_t s = fbt_seed();
    for (int64_t i = 0; i < N; i++) {
        uint64_t x = fbt_next(&s);
        k32[i] = (int32_t)(x % 4000) - 1000; /* duplicates, negatives; build keys repeat */
        v32[i] = (int32_t)(x >> 40) - (1 << 23);
        k64[i] = (int64_t)(x >> 20) % 900 - 450;
        v64[i] = (int64_t)(fbt_next(&s) >> 20) - ((int64_t)1 << 43);
        if (x % 11)
            kvalid[i >> 3] |= (uint8_t)(1u << (i & 7));
        ids[i] = (int64_t)(fbt_next(&s) % N);
        if (x % 3)
            sel[n_sel++] = (uint32_t)i;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash),     cmocka_unit_test(test_select), cmocka_unit_test(test_move),
        cmocka_unit_test(test_sort),     cmocka_unit_test(test_group_by), cmocka_unit_test(test_join),
        cmocka_unit_test(test_expr),     cmocka_unit_test(test_join_keys), cmocka_unit_test(test_group_partitioned),
        cmocka_unit_test(test_streamed), cmocka_unit_test(test_threads), cmocka_unit_test(test_plan_auto),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
