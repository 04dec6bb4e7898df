/* sort_parallel.c - the parallel sorts of fb_sort.h (fb_sort_*_parallel): the single-threaded sorts of
 * kernels/sort.c run their phases through a runner (fb_sort_internal.h); this file's runner runs each
 * phase's tasks on the runtime's workers as a one-pipeline query whose source hands out task numbers
 * as one-row morsels (in order, so that big early tasks start first) and whose sink runs the task. */
#include "fb_internal.h"
#include "fb_sort_internal.h"

#include <stdint.h>

typedef struct par_phase {
    int64_t n_tasks;
    int64_t next;
    fb_sort_task_fn task;
    void *arg;
} par_phase;

static fb_status par_next_morsel(void *user, void *global, const fb_worker_info *w, fb_morsel *out, int *done)
{
    par_phase *p = user;
    (void)global;
    (void)w;
    if (p->next >= p->n_tasks) {
        *done = 1;
        return FB_OK;
    }
    out->begin = p->next++;
    out->end = out->begin + 1;
    out->numa_node = -1;
    out->data = NULL;
    return FB_OK;
}

static fb_status par_scan(void *user, void *global, void *local, const fb_morsel *m, fb_chunk *out)
{
    (void)user;
    (void)global;
    (void)local;
    out->row_begin = m->begin;
    out->rows = m->end - m->begin;
    out->n_columns = 0;
    out->columns = NULL;
    out->sel = NULL;
    out->n_sel = out->rows;
    return FB_OK;
}

/* The local state is the worker's index (+1, so that it is never NULL). */
static fb_status par_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    (void)user;
    (void)global;
    *local = (void *)(intptr_t)(w->worker + 1);
    return FB_OK;
}

static fb_status par_sink(void *user, void *global, void *local, const fb_chunk *chunk)
{
    par_phase *p = user;
    (void)global;
    int worker = (int)((intptr_t)local - 1);
    for (int64_t t = chunk->row_begin; t < chunk->row_begin + chunk->rows; t++)
        FB_FORWARD_IF_ERROR(p->task(p->arg, t, worker));
    return FB_OK;
}

static fb_status par_run(void *self, fb_ctx *ctx, int64_t n_tasks, fb_sort_task_fn task, void *arg)
{
    (void)self;
    if (n_tasks <= 0)
        return FB_OK;
    if (n_tasks == 1) /* not worth starting the workers */
        return task(arg, 0, 0);
    par_phase phase = {n_tasks, 0, task, arg};
    fb_source src = {.name = "sort tasks", .next_morsel = par_next_morsel, .scan = par_scan, .user = &phase};
    fb_sink sink = {.name = "sort task", .init_local = par_init_local, .sink = par_sink, .user = &phase};
    fb_query *q = NULL;
    FB_FORWARD_IF_ERROR(fb_query_create(ctx, &q));
    fb_status st = fb_query_add_pipeline(q, "sort phase", &src, NULL, 0, &sink, NULL);
    if (st == FB_OK)
        st = fb_query_run(q);
    fb_query_destroy(q);
    return st;
}

static fb_sort_runner par_runner(const fb_ctx *ctx)
{
    fb_sort_runner r = {ctx ? fb_ctx_threads(ctx) : 1, par_run, NULL};
    return r;
}

fb_status fb_sort_permutation_parallel(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, uint32_t *row_ids,
                                       int64_t capacity)
{
    fb_sort_runner r = par_runner(ctx);
    return fb_sort_permutation_with(ctx, keys, n_keys, row_ids, capacity, &r, __func__);
}

fb_status fb_sort_top_n_parallel(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t n, uint32_t *row_ids,
                                 int64_t capacity, int64_t *n_out)
{
    fb_sort_runner r = par_runner(ctx);
    return fb_sort_top_n_with(ctx, keys, n_keys, n, row_ids, capacity, n_out, &r, __func__);
}

fb_status fb_sort_table_parallel(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, const fb_column *payload,
                                 size_t n_payload, fb_column_out *out)
{
    fb_sort_runner r = par_runner(ctx);
    return fb_sort_table_with(ctx, keys, n_keys, payload, n_payload, out, &r, __func__);
}
