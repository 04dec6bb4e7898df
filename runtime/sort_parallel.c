/* sort_parallel.c - the parallel sorts of fb_sort.h (fb_sort_*_parallel): the single-threaded sorts of
 * kernels/sort.c run their phases through a runner (fb_sort_internal.h); this file's runner runs each
 * phase's tasks on the runtime's workers as a one-pipeline query whose source hands out task numbers
 * as one-row morsels (in order, so that big early tasks start first) and whose sink runs the task.
 * A task with a preferred NUMA node goes out as a morsel on that node: the scheduler queues it there,
 * where that node's workers take it first (others may steal it). The runner tells the sort each
 * worker's node (as fb_numa_place_workers places the workers), so that a worker's scratch is
 * allocated on its node. */
#include "fb_internal.h"
#include "fb_sched_numa_internal.h"
#include "fb_sort_internal.h"

#include <stdint.h>
#include <string.h>

typedef struct par_phase {
    int64_t n_tasks;
    int64_t next;
    fb_sort_task_fn task;
    void *arg;
    const int *task_node; /* NULL or [n_tasks] */
    int nodes;
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
    int node = p->task_node ? p->task_node[out->begin] : -1;
    out->numa_node = node >= 0 && node < p->nodes ? node : -1;
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

static fb_status par_run(void *self, fb_ctx *ctx, int64_t n_tasks, fb_sort_task_fn task, void *arg,
                        const int *task_node)
{
    const fb_sort_runner *r = self;
    if (n_tasks <= 0)
        return FB_OK;
    if (n_tasks == 1) /* not worth starting the workers */
        return task(arg, 0, 0);
    par_phase phase = {n_tasks, 0, task, arg, task_node, r ? r->nodes : 1};
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

/* The runner's own memory: the runner (its self) and 2 * workers ints (cores, nodes). */
static size_t par_bytes(int workers) { return sizeof(fb_sort_runner) + 2 * (size_t)workers * sizeof(int); }

fb_status fb_sort_parallel_runner(fb_ctx *ctx, fb_sort_runner *out)
{
    memset(out, 0, sizeof *out);
    int W = fb_ctx_threads(ctx);
    fb_topology_info info;
    int nodes = fb_topology_get_info(ctx, &info) == FB_OK ? info.numa_nodes : 1;
    fb_sort_runner *self = NULL;
    FB_FORWARD_IF_ERROR(fb_alloc(ctx, par_bytes(W), 64, (void **)&self, __func__));
    int *cores = (int *)(self + 1), *node = cores + W;
    fb_status st = fb_numa_place_workers(ctx, W, cores, node);
    if (st != FB_OK) {
        fb_free(ctx, self, par_bytes(W));
        return st;
    }
    *self = (fb_sort_runner){W, par_run, self, nodes > 1 ? nodes : 1, node, NULL};
    *out = *self;
    return FB_OK;
}

void fb_sort_parallel_runner_free(fb_ctx *ctx, fb_sort_runner *r)
{
    if (r && r->self)
        fb_free(ctx, r->self, par_bytes(r->workers));
    if (r)
        r->self = NULL;
}

/* The runner for the public functions; a NULL ctx gets a one-worker runner without memory, so that
 * the sort reports the NULL context as it does for the serial functions. */
static fb_status par_runner(fb_ctx *ctx, fb_sort_runner *r)
{
    if (!ctx) {
        *r = (fb_sort_runner){1, par_run, NULL, 1, NULL, NULL};
        return FB_OK;
    }
    return fb_sort_parallel_runner(ctx, r);
}

fb_status fb_sort_permutation_parallel(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, uint32_t *row_ids,
                                       int64_t capacity)
{
    fb_sort_runner r;
    FB_FORWARD_IF_ERROR(par_runner(ctx, &r));
    fb_status st = fb_sort_permutation_with(ctx, keys, n_keys, row_ids, capacity, &r, __func__);
    fb_sort_parallel_runner_free(ctx, &r);
    return st;
}

fb_status fb_sort_top_n_parallel(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t n, uint32_t *row_ids,
                                 int64_t capacity, int64_t *n_out)
{
    fb_sort_runner r;
    FB_FORWARD_IF_ERROR(par_runner(ctx, &r));
    fb_status st = fb_sort_top_n_with(ctx, keys, n_keys, n, row_ids, capacity, n_out, &r, __func__);
    fb_sort_parallel_runner_free(ctx, &r);
    return st;
}

fb_status fb_sort_table_parallel(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, const fb_column *payload,
                                 size_t n_payload, fb_column_out *out)
{
    fb_sort_runner r;
    FB_FORWARD_IF_ERROR(par_runner(ctx, &r));
    fb_status st = fb_sort_table_with(ctx, keys, n_keys, payload, n_payload, out, &r, __func__);
    fb_sort_parallel_runner_free(ctx, &r);
    return st;
}
