/* sched.c - runs a query: one worker thread per context thread, placed on cores round-robin over
 * the NUMA nodes and pinned with hwloc; per pipeline one morsel queue per NUMA node, filled from the
 * source by the workers that run dry; local morsels first, stealing from other nodes last; tasks of
 * a bounded batch of morsels; combine/finalize and the start of dependent pipelines in DAG order;
 * the first error (or a cancellation) stops every worker; statistics per pipeline and worker.
 *
 * Locks, outermost first: a pipeline's source_lock, then its lock or a queue's lock (both leaves);
 * the query's lock is only ever taken alone, or inside source_lock or combine_lock. No stage
 * function runs under a lock except next_morsel (under source_lock, which serializes it, as does the
 * release of a morsel the runtime rejects or cannot queue) and combine (under combine_lock). */
#include "fb_pipeline_internal.h"
#include "fb_sched_numa_internal.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* A task runs at most this many morsels, or this long, before it returns to the scheduler loop. */
#define FB_TASK_MORSELS 16
#define FB_TASK_NS 2000000
/* A worker whose node's queue is empty asks the source for up to this many morsels at once. */
#define FB_REFILL_MORSELS 4
/* Before it steals from another node a worker backs off (yields) at least this often and this long,
 * giving that node's own workers the first chance at their morsels. */
#define FB_STEAL_BACKOFF_YIELDS 4
#define FB_STEAL_BACKOFF_NS 50000
#define FB_QUEUE_INITIAL 64
#define FB_RUN_MESSAGE_MAX 4096

enum { FB_P_WAITING = 0, FB_P_READY = 1, FB_P_DONE = 2 };

/* The stage whose function runs on this thread, for fb_stage_error(). */
static _Thread_local const char *current_stage;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- per-node morsel queues ------------------------------------------------------------------ */

typedef struct fb_queue {
    pthread_mutex_t lock;
    atomic_size_t count; /* = n, for checks without the lock */
    fb_morsel *items;    /* ring of cap entries, on the queue's node */
    size_t cap, head, n;
    int node;
} fb_queue;

static fb_status queue_create(fb_ctx *ctx, int node, fb_queue **out)
{
    fb_queue *qu = NULL;
    FB_FORWARD_IF_ERROR(fb_numa_alloc(ctx, node, sizeof *qu, (void **)&qu));
    memset(qu, 0, sizeof *qu);
    qu->node = node;
    fb_status st = fb_numa_alloc(ctx, node, FB_QUEUE_INITIAL * sizeof *qu->items, (void **)&qu->items);
    if (st != FB_OK) {
        fb_numa_free(ctx, node, qu, sizeof *qu);
        return st;
    }
    qu->cap = FB_QUEUE_INITIAL;
    atomic_init(&qu->count, 0);
    if (pthread_mutex_init(&qu->lock, NULL) != 0) {
        fb_numa_free(ctx, node, qu->items, qu->cap * sizeof *qu->items);
        fb_numa_free(ctx, node, qu, sizeof *qu);
        return FB_ERROR(ctx, FB_ERR_INTERNAL, "pthread_mutex_init failed");
    }
    *out = qu;
    return FB_OK;
}

static void queue_destroy(fb_ctx *ctx, fb_queue *qu)
{
    if (!qu)
        return;
    pthread_mutex_destroy(&qu->lock);
    fb_numa_free(ctx, qu->node, qu->items, qu->cap * sizeof *qu->items);
    fb_numa_free(ctx, qu->node, qu, sizeof *qu);
}

/* Appends a morsel, doubling the ring (on the queue's node) when full. */
static fb_status queue_push(fb_ctx *ctx, fb_queue *qu, const fb_morsel *m)
{
    fb_status st = FB_OK;
    pthread_mutex_lock(&qu->lock);
    if (qu->n == qu->cap) {
        fb_morsel *grown = NULL;
        st = fb_numa_alloc(ctx, qu->node, 2 * qu->cap * sizeof *grown, (void **)&grown);
        if (st == FB_OK) {
            for (size_t i = 0; i < qu->n; i++)
                grown[i] = qu->items[(qu->head + i) % qu->cap];
            fb_numa_free(ctx, qu->node, qu->items, qu->cap * sizeof *qu->items);
            qu->items = grown;
            qu->cap *= 2;
            qu->head = 0;
        }
    }
    if (st == FB_OK) {
        qu->items[(qu->head + qu->n) % qu->cap] = *m;
        qu->n++;
        atomic_store(&qu->count, qu->n);
    }
    pthread_mutex_unlock(&qu->lock);
    return st;
}

static bool queue_pop(fb_queue *qu, fb_morsel *m)
{
    if (atomic_load_explicit(&qu->count, memory_order_acquire) == 0)
        return false;
    bool got = false;
    pthread_mutex_lock(&qu->lock);
    if (qu->n > 0) {
        *m = qu->items[qu->head];
        qu->head = (qu->head + 1) % qu->cap;
        qu->n--;
        atomic_store(&qu->count, qu->n);
        got = true;
    }
    pthread_mutex_unlock(&qu->lock);
    return got;
}

/* ---- run state ------------------------------------------------------------------------------- */

/* A pipeline during a run. */
typedef struct fb_prun {
    fb_pipeline *p;
    atomic_int state;             /* FB_P_WAITING, FB_P_READY (globals made), FB_P_DONE (finalized) */
    int pending;                  /* dependencies not finalized yet; guarded by the query's lock */
    void *src_global, *sink_global;
    void **op_globals;            /* n_ops */
    int globals_made;             /* stages (source, ops..., sink) whose init_global has run */
    pthread_mutex_t source_lock;  /* serializes next_morsel */
    pthread_mutex_t lock;         /* the counts below */
    int64_t outstanding;          /* morsels taken from the source and not yet through the sink */
    int locals_open;              /* workers whose local states still have to combine */
    bool finalizing;
    atomic_bool source_done;      /* next_morsel said done, or an operator said FB_OP_FINISHED */
    atomic_bool drained;          /* source_done and no morsel outstanding */
    atomic_bool stop_early;       /* an operator said FB_OP_FINISHED: drop queued morsels */
    pthread_mutex_t combine_lock; /* one combine at a time */
    fb_queue **queues;            /* one per NUMA node */
    int64_t start_ns;
    int mutexes;                  /* how many of the three mutexes are initialized */
} fb_prun;

/* A worker's local states for one pipeline. */
typedef struct fb_wlocal {
    void *src, *sink;
    void **ops; /* n_ops, inside the worker's block */
    int made;   /* stages (source, ops..., sink) whose init_local has run */
    bool open;  /* counted in locals_open */
} fb_wlocal;

typedef struct fb_worker {
    struct fb_run *run;
    fb_worker_info info;
    pthread_t thread;
    bool started;
    unsigned rr; /* rotates the pipeline a worker looks at first */
    int pinned;
    int64_t idle_ns, wall_ns;
    int64_t busy_ns;   /* over all pipelines: what acquire subtracts from its idle time */
    fb_stats *cells;   /* per pipeline */
    fb_wlocal *locals; /* per pipeline */
    size_t bytes;      /* of the worker's block, on its node */
} fb_worker;

struct fb_run {
    fb_query *q;
    fb_ctx *ctx;
    int n_pipes, nodes, workers;
    fb_prun *pr;
    fb_worker **w;
    int *dep_start;              /* dependents of pipeline i: dependents[dep_start[i] .. dep_start[i + 1]) */
    int *dependents;
    int n_edges;
    int *to_start;               /* pipelines whose dependencies have all finalized, not yet started;
                                    guarded by the query's lock */
    int n_to_start;
    int *activated;              /* pipelines in the order they started, for destruction in reverse */
    atomic_int n_activated;
    atomic_int stop;             /* an error or a cancellation: leave at the next morsel boundary */
    atomic_ullong gen;           /* bumped under the query's lock whenever idle workers must look again */
    atomic_int done;             /* every pipeline finalized */
    int finalized;               /* guarded by the query's lock */
    fb_status err;               /* the first error; guarded by the query's lock */
    char err_msg[FB_RUN_MESSAGE_MAX];
};
typedef struct fb_run fb_run;

/* Charges the time since t0 to pipeline p's cell of worker w. */
static void add_busy(fb_worker *w, int p, int64_t t0)
{
    int64_t d = now_ns() - t0;
    w->cells[p].busy_ns += d;
    w->busy_ns += d;
}

static void wake_all(fb_run *r)
{
    pthread_mutex_lock(&r->q->lock);
    atomic_fetch_add(&r->gen, 1);
    pthread_cond_broadcast(&r->q->wake);
    pthread_mutex_unlock(&r->q->lock);
}

/* Records the run's error (the first one wins) and stops every worker. Returns st. */
static fb_status run_fail(fb_run *r, fb_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static fb_status run_fail(fb_run *r, fb_status st, const char *fmt, ...)
{
    char msg[FB_RUN_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&r->q->lock);
    if (r->err == FB_OK) {
        r->err = st;
        memcpy(r->err_msg, msg, sizeof msg);
    }
    atomic_store(&r->stop, 1);
    atomic_fetch_add(&r->gen, 1);
    pthread_cond_broadcast(&r->q->wake);
    pthread_mutex_unlock(&r->q->lock);
    return st;
}

/* ---- calling stage functions ----------------------------------------------------------------- */

static void stage_enter(fb_ctx *ctx, const char *name)
{
    current_stage = name;
    fb_clear_error(ctx);
}

/* Turns the status of a stage function into the run's error when it failed. */
static fb_status stage_result(fb_run *r, const fb_prun *pr, const fb_worker *w, const char *kind, const char *name,
                              const char *fn, fb_status st)
{
    current_stage = NULL;
    if (st == FB_OK)
        return FB_OK;
    char inner[160];
    const char *msg = fb_last_error(r->ctx);
    if ((unsigned)st >= FB_STATUS_COUNT) {
        snprintf(inner, sizeof inner, "returned the unknown status %d", (int)st);
        msg = inner;
        st = FB_ERR_INTERNAL;
    } else if (!msg[0]) {
        snprintf(inner, sizeof inner, "returned %s without a message", fb_status_name(st));
        msg = inner;
    }
    if (w) {
        return run_fail(r, st, "pipeline '%s' (#%d): %s '%s' %s on worker %d (NUMA node %d): %s", pr->p->name,
                        pr->p->index, kind, name, fn, w->info.worker, w->info.numa_node, msg);
    }
    return run_fail(r, st, "pipeline '%s' (#%d): %s '%s' %s: %s", pr->p->name, pr->p->index, kind, name, fn, msg);
}

/* Calls a stage function (an expression of type fb_status) with its stage current. */
#define FB_STAGE(r, pr, w, kind, name, fn, call)                                                     \
    stage_result((r), (pr), (w), (kind), (name), (fn), (stage_enter((r)->ctx, (name)), (call)))

fb_status fb_stage_error(fb_ctx *ctx, fb_status status, const char *fmt, ...)
{
    char msg[FB_RUN_MESSAGE_MAX];
    msg[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    return fb_set_error(ctx, status, current_stage ? current_stage : "fb_stage_error", "%s", msg);
}

/* Checks a chunk made by a stage and fills in n_sel when sel is NULL. */
static fb_status check_chunk(fb_run *r, const fb_prun *pr, const fb_worker *w, const char *kind, const char *name,
                             fb_chunk *c)
{
    const char *bad = NULL;
    if (c->rows < 0 || c->rows > FB_MORSEL_MAX_ROWS)
        bad = "rows is negative or above FB_MORSEL_MAX_ROWS";
    else if (c->n_columns > 0 && !c->columns)
        bad = "columns is NULL";
    else if (c->sel && (c->n_sel < 0 || c->n_sel > c->rows))
        bad = "n_sel is outside 0..rows";
    for (size_t i = 0; !bad && i < c->n_columns; i++) {
        if (c->columns[i].length != c->rows)
            bad = "a column's length differs from rows";
    }
    if (bad) {
        return run_fail(r, FB_ERR_INVALID_ARG,
                        "pipeline '%s' (#%d): %s '%s' on worker %d produced an invalid chunk: %s", pr->p->name,
                        pr->p->index, kind, name, w->info.worker, bad);
    }
    if (!c->sel)
        c->n_sel = c->rows;
    return FB_OK;
}

/* ---- pipeline life: start, morsel accounting, finalize ---------------------------------------- */

static void destroy_globals(fb_run *r, fb_prun *pr)
{
    fb_pipeline *p = pr->p;
    for (int k = pr->globals_made - 1; k >= 0; k--) {
        current_stage = NULL;
        if (k == (int)p->n_ops + 1) {
            if (p->sink.destroy_global)
                p->sink.destroy_global(p->sink.user, pr->sink_global);
        } else if (k >= 1) {
            fb_operator *op = &p->ops[k - 1];
            if (op->destroy_global)
                op->destroy_global(op->user, pr->op_globals[k - 1]);
        } else if (p->source.destroy_global) {
            p->source.destroy_global(p->source.user, pr->src_global);
        }
    }
    pr->globals_made = 0;
}

/* Makes a pipeline's global states and lets workers at it. w is NULL on fb_query_run's thread. */
static fb_status activate(fb_run *r, fb_prun *pr, fb_worker *w)
{
    fb_pipeline *p = pr->p;
    int64_t t0 = now_ns();
    pr->start_ns = t0;
    r->activated[atomic_fetch_add(&r->n_activated, 1)] = p->index;
    int total = (int)p->n_ops + 2;
    fb_status st = FB_OK;
    while (st == FB_OK && pr->globals_made < total) {
        int k = pr->globals_made;
        if (k == 0) {
            if (p->source.init_global)
                st = FB_STAGE(r, pr, w, "source", p->source.name, "init_global",
                              p->source.init_global(p->source.user, r->ctx, &pr->src_global));
        } else if (k <= (int)p->n_ops) {
            fb_operator *op = &p->ops[k - 1];
            if (op->init_global)
                st = FB_STAGE(r, pr, w, "operator", op->name, "init_global",
                              op->init_global(op->user, r->ctx, &pr->op_globals[k - 1]));
        } else if (p->sink.init_global) {
            st = FB_STAGE(r, pr, w, "sink", p->sink.name, "init_global",
                          p->sink.init_global(p->sink.user, r->ctx, &pr->sink_global));
        }
        if (st == FB_OK)
            pr->globals_made++;
    }
    if (w)
        add_busy(w, p->index, t0);
    if (st == FB_OK)
        atomic_store(&pr->state, FB_P_READY);
    return st;
}

/* After a finalize: starts the pipelines that waited only for this one, ends the run after the last. */
static void pipeline_finished(fb_run *r, fb_prun *pr, fb_worker *w)
{
    int i = pr->p->index;
    pr->p->wall_ns = now_ns() - pr->start_ns;
    pthread_mutex_lock(&r->q->lock);
    atomic_store(&pr->state, FB_P_DONE);
    bool all = ++r->finalized == r->n_pipes;
    for (int e = r->dep_start[i]; e < r->dep_start[i + 1]; e++) {
        fb_prun *d = &r->pr[r->dependents[e]];
        if (--d->pending == 0)
            r->to_start[r->n_to_start++] = r->dependents[e];
    }
    pthread_mutex_unlock(&r->q->lock);
    /* start what is due, whoever made it due */
    for (;;) {
        int next = -1;
        pthread_mutex_lock(&r->q->lock);
        if (r->n_to_start > 0 && !atomic_load(&r->stop))
            next = r->to_start[--r->n_to_start];
        pthread_mutex_unlock(&r->q->lock);
        if (next < 0)
            break;
        if (activate(r, &r->pr[next], w) != FB_OK)
            return;
    }
    if (all)
        atomic_store(&r->done, 1);
    wake_all(r);
}

static void finalize(fb_run *r, fb_prun *pr, fb_worker *w)
{
    if (atomic_load(&r->stop))
        return;
    fb_pipeline *p = pr->p;
    int64_t t0 = now_ns();
    fb_status st = FB_OK;
    if (p->sink.finalize)
        st = FB_STAGE(r, pr, w, "sink", p->sink.name, "finalize", p->sink.finalize(p->sink.user, pr->sink_global));
    add_busy(w, p->index, t0);
    if (st == FB_OK)
        pipeline_finished(r, pr, w);
}

/* Whether the pipeline is ready to finalize now; claims the finalize if so. Call under pr->lock. */
static bool finalize_due_locked(fb_prun *pr)
{
    if (!pr->finalizing && atomic_load(&pr->source_done) && pr->outstanding == 0 && pr->locals_open == 0) {
        pr->finalizing = true;
        return true;
    }
    return false;
}

/* After the pipeline's counts changed (under pr->lock): wakes workers that must combine when it
 * has just drained, and finalizes when it is due. */
static void after_count_change(fb_run *r, fb_prun *pr, fb_worker *w, bool drained_now, bool fin)
{
    if (drained_now)
        wake_all(r);
    if (fin)
        finalize(r, pr, w);
}

/* Marks the source exhausted. Call under pr->source_lock; returns whether it drained the pipeline
 * and whether a finalize is due (to act on after the source lock is released). */
static void source_done_locked(fb_prun *pr, bool *drained_now, bool *fin)
{
    pthread_mutex_lock(&pr->lock);
    atomic_store(&pr->source_done, true);
    *drained_now = pr->outstanding == 0 && !atomic_load(&pr->drained);
    if (*drained_now)
        atomic_store(&pr->drained, true);
    *fin = finalize_due_locked(pr);
    pthread_mutex_unlock(&pr->lock);
}

/* A morsel has gone through the pipeline (or was dropped). */
static void morsel_finished(fb_run *r, fb_prun *pr, fb_worker *w)
{
    pthread_mutex_lock(&pr->lock);
    pr->outstanding--;
    bool drained_now = pr->outstanding == 0 && atomic_load(&pr->source_done) && !atomic_load(&pr->drained);
    if (drained_now)
        atomic_store(&pr->drained, true);
    bool fin = finalize_due_locked(pr);
    pthread_mutex_unlock(&pr->lock);
    after_count_change(r, pr, w, drained_now, fin);
}

/* An operator said FB_OP_FINISHED: the source hands out nothing more. */
static void close_source(fb_run *r, fb_prun *pr, fb_worker *w)
{
    atomic_store(&pr->stop_early, true);
    bool drained_now = false, fin = false;
    pthread_mutex_lock(&pr->source_lock);
    if (!atomic_load(&pr->source_done))
        source_done_locked(pr, &drained_now, &fin);
    pthread_mutex_unlock(&pr->source_lock);
    after_count_change(r, pr, w, drained_now, fin);
}

/* ---- worker local states ----------------------------------------------------------------------- */

static fb_status open_locals(fb_worker *w, fb_prun *pr)
{
    fb_run *r = w->run;
    fb_pipeline *p = pr->p;
    fb_wlocal *L = &w->locals[p->index];
    if (L->open)
        return FB_OK;
    int total = (int)p->n_ops + 2;
    fb_status st = FB_OK;
    while (st == FB_OK && L->made < total) {
        int k = L->made;
        if (k == 0) {
            if (p->source.init_local)
                st = FB_STAGE(r, pr, w, "source", p->source.name, "init_local",
                              p->source.init_local(p->source.user, pr->src_global, &w->info, &L->src));
        } else if (k <= (int)p->n_ops) {
            fb_operator *op = &p->ops[k - 1];
            if (op->init_local)
                st = FB_STAGE(r, pr, w, "operator", op->name, "init_local",
                              op->init_local(op->user, pr->op_globals[k - 1], &w->info, &L->ops[k - 1]));
        } else if (p->sink.init_local) {
            st = FB_STAGE(r, pr, w, "sink", p->sink.name, "init_local",
                          p->sink.init_local(p->sink.user, pr->sink_global, &w->info, &L->sink));
        }
        if (st == FB_OK)
            L->made++;
    }
    if (st != FB_OK)
        return st;
    L->open = true;
    pthread_mutex_lock(&pr->lock);
    pr->locals_open++;
    pthread_mutex_unlock(&pr->lock);
    return FB_OK;
}

static void destroy_locals(fb_worker *w, fb_prun *pr)
{
    fb_pipeline *p = pr->p;
    fb_wlocal *L = &w->locals[p->index];
    for (int k = L->made - 1; k >= 0; k--) {
        current_stage = NULL;
        if (k == (int)p->n_ops + 1) {
            if (p->sink.destroy_local)
                p->sink.destroy_local(p->sink.user, pr->sink_global, L->sink);
        } else if (k >= 1) {
            fb_operator *op = &p->ops[k - 1];
            if (op->destroy_local)
                op->destroy_local(op->user, pr->op_globals[k - 1], L->ops[k - 1]);
        } else if (p->source.destroy_local) {
            p->source.destroy_local(p->source.user, pr->src_global, L->src);
        }
    }
    L->made = 0;
    L->src = L->sink = NULL;
    for (size_t i = 0; i < p->n_ops; i++)
        L->ops[i] = NULL;
}

/* Combines a worker's local sink state into the global one (the pipeline has drained), frees the
 * local states, and finalizes when this was the last. */
static fb_status combine_and_close(fb_worker *w, fb_prun *pr)
{
    fb_run *r = w->run;
    fb_pipeline *p = pr->p;
    fb_status st = FB_OK;
    int64_t t0 = now_ns();
    if (p->sink.combine) {
        fb_wlocal *L = &w->locals[p->index];
        pthread_mutex_lock(&pr->combine_lock);
        st = FB_STAGE(r, pr, w, "sink", p->sink.name, "combine",
                      p->sink.combine(p->sink.user, pr->sink_global, L->sink));
        pthread_mutex_unlock(&pr->combine_lock);
    }
    destroy_locals(w, pr);
    w->locals[p->index].open = false;
    add_busy(w, p->index, t0);
    if (st != FB_OK)
        return st;
    pthread_mutex_lock(&pr->lock);
    pr->locals_open--;
    bool fin = finalize_due_locked(pr);
    pthread_mutex_unlock(&pr->lock);
    after_count_change(r, pr, w, false, fin);
    return FB_OK;
}

static fb_status combine_drained(fb_worker *w)
{
    fb_run *r = w->run;
    for (int i = 0; i < r->n_pipes; i++) {
        if (w->locals[i].open && atomic_load(&r->pr[i].drained))
            FB_FORWARD_IF_ERROR(combine_and_close(w, &r->pr[i]));
    }
    return FB_OK;
}

/* ---- morsels: refill, process ------------------------------------------------------------------ */

static void release_morsel(fb_prun *pr, const fb_morsel *m)
{
    fb_source *s = &pr->p->source;
    if (s->release_morsel) {
        current_stage = s->name;
        s->release_morsel(s->user, pr->src_global, m);
        current_stage = NULL;
    }
}

/* Asks the source for up to FB_REFILL_MORSELS morsels for worker w, preferring w's node, and queues
 * each on the node that holds it. Stops at the first morsel for another node: w's node has run dry
 * in the source. */
static fb_status refill(fb_worker *w, fb_prun *pr)
{
    fb_run *r = w->run;
    fb_pipeline *p = pr->p;
    if (atomic_load(&pr->source_done))
        return FB_OK;
    int64_t t0 = now_ns();
    fb_status st = FB_OK;
    bool done = false, drained_now = false, fin = false;
    pthread_mutex_lock(&pr->source_lock);
    for (int i = 0; i < FB_REFILL_MORSELS; i++) {
        if (atomic_load(&r->stop) || atomic_load(&pr->source_done))
            break;
        fb_morsel m = {0, 0, -1, NULL};
        int d = 0;
        st = FB_STAGE(r, pr, w, "source", p->source.name, "next_morsel",
                      p->source.next_morsel(p->source.user, pr->src_global, &w->info, &m, &d));
        if (st != FB_OK)
            break;
        if (d) {
            done = true;
            break;
        }
        if (m.end < m.begin || m.numa_node < -1 || m.numa_node >= r->nodes) {
            release_morsel(pr, &m);
            st = run_fail(r, FB_ERR_INVALID_ARG,
                          "pipeline '%s' (#%d): source '%s' handed out an invalid morsel: rows [%lld, %lld) on NUMA "
                          "node %d (the topology has %d)",
                          p->name, p->index, p->source.name, (long long)m.begin, (long long)m.end, m.numa_node,
                          r->nodes);
            break;
        }
        int node = m.numa_node >= 0 ? m.numa_node : w->info.numa_node;
        pthread_mutex_lock(&pr->lock);
        pr->outstanding++;
        pthread_mutex_unlock(&pr->lock);
        st = queue_push(r->ctx, pr->queues[node], &m);
        if (st != FB_OK) {
            pthread_mutex_lock(&pr->lock);
            pr->outstanding--;
            pthread_mutex_unlock(&pr->lock);
            release_morsel(pr, &m);
            st = run_fail(r, st, "pipeline '%s' (#%d): morsel queue of NUMA node %d: %s", p->name, p->index, node,
                          fb_last_error(r->ctx));
            break;
        }
        if (node != w->info.numa_node)
            break;
    }
    if (done)
        source_done_locked(pr, &drained_now, &fin);
    pthread_mutex_unlock(&pr->source_lock);
    add_busy(w, p->index, t0);
    after_count_change(r, pr, w, drained_now, fin);
    return st;
}

/* Pushes a chunk through operators i.. and into the sink. */
static fb_status push_chunk(fb_worker *w, fb_prun *pr, size_t i, const fb_chunk *in, bool *finished)
{
    fb_run *r = w->run;
    fb_pipeline *p = pr->p;
    fb_wlocal *L = &w->locals[p->index];
    if (in->n_sel == 0)
        return FB_OK;
    if (i == p->n_ops) {
        w->cells[p->index].rows_out += in->n_sel;
        return FB_STAGE(r, pr, w, "sink", p->sink.name, "sink",
                        p->sink.sink(p->sink.user, pr->sink_global, L->sink, in));
    }
    fb_operator *op = &p->ops[i];
    for (;;) {
        fb_chunk out;
        memset(&out, 0, sizeof out);
        out.row_begin = in->row_begin;
        fb_op_result res = FB_OP_NEED_MORE_INPUT;
        FB_FORWARD_IF_ERROR(FB_STAGE(r, pr, w, "operator", op->name, "execute",
                                     op->execute(op->user, pr->op_globals[i], L->ops[i], in, &out, &res)));
        FB_FORWARD_IF_ERROR(check_chunk(r, pr, w, "operator", op->name, &out));
        FB_FORWARD_IF_ERROR(push_chunk(w, pr, i + 1, &out, finished));
        if (res == FB_OP_FINISHED) {
            *finished = true;
            return FB_OK;
        }
        if (res != FB_OP_HAVE_MORE_OUTPUT || atomic_load(&r->stop))
            return FB_OK;
    }
}

/* Runs one morsel through the pipeline (or drops it, when the pipeline stopped early or the run is
 * stopping), then gives it back to the source. `from` is the node whose queue it came from. */
static fb_status process_morsel(fb_worker *w, fb_prun *pr, const fb_morsel *m, int from)
{
    fb_run *r = w->run;
    fb_pipeline *p = pr->p;
    fb_stats *cell = &w->cells[p->index];
    fb_status st = FB_OK;
    bool finished = false;
    if (!atomic_load(&pr->stop_early) && !atomic_load(&r->stop)) {
        st = open_locals(w, pr);
        if (st == FB_OK) {
            int node = w->info.numa_node;
            cell->morsels++;
            cell->morsels_local += m->numa_node == node;
            cell->morsels_remote += m->numa_node >= 0 && m->numa_node != node;
            cell->steals += from != node;
            int64_t t0 = now_ns();
            fb_chunk chunk;
            memset(&chunk, 0, sizeof chunk);
            st = FB_STAGE(r, pr, w, "source", p->source.name, "scan",
                          p->source.scan(p->source.user, pr->src_global, w->locals[p->index].src, m, &chunk));
            if (st == FB_OK)
                st = check_chunk(r, pr, w, "source", p->source.name, &chunk);
            if (st == FB_OK) {
                chunk.row_begin = m->begin;
                cell->rows += chunk.rows;
                st = push_chunk(w, pr, 0, &chunk, &finished);
            }
            add_busy(w, p->index, t0);
        }
    }
    release_morsel(pr, m);
    if (st == FB_OK && finished)
        close_source(r, pr, w);
    morsel_finished(r, pr, w);
    return st;
}

/* ---- finding work ------------------------------------------------------------------------------- */

/* A morsel of w's own node for pipeline pr: from the queue, else (with may_refill) from the source. */
static int take_local(fb_worker *w, fb_prun *pr, bool may_refill, fb_morsel *m)
{
    fb_queue *own = pr->queues[w->info.numa_node];
    /* read before popping: once the source is done every morsel it gave is already queued */
    bool exhausted = atomic_load(&pr->source_done);
    if (queue_pop(own, m))
        return 1;
    if (!may_refill || exhausted)
        return 0;
    if (refill(w, pr) != FB_OK)
        return -1;
    return queue_pop(own, m) ? 1 : 0;
}

static bool ready(const fb_prun *pr) { return atomic_load(&pr->state) == FB_P_READY; }

/* Whether another node's queue of a running pipeline holds a morsel. */
static bool anything_to_steal(const fb_worker *w)
{
    const fb_run *r = w->run;
    for (int i = 0; i < r->n_pipes; i++) {
        if (!ready(&r->pr[i]))
            continue;
        for (int n = 0; n < r->nodes; n++) {
            if (n != w->info.numa_node && atomic_load(&r->pr[i].queues[n]->count) > 0)
                return true;
        }
    }
    return false;
}

/* Local morsels of any running pipeline: queued ones first, then from the sources. */
static int find_local(fb_worker *w, unsigned start, bool may_refill, fb_prun **out, fb_morsel *m)
{
    fb_run *r = w->run;
    for (int pass = 0; pass < (may_refill ? 2 : 1); pass++) {
        for (int i = 0; i < r->n_pipes; i++) {
            fb_prun *pr = &r->pr[(start + (unsigned)i) % (unsigned)r->n_pipes];
            if (!ready(pr))
                continue;
            int got = take_local(w, pr, pass == 1, m);
            if (got != 0) {
                *out = pr;
                return got;
            }
        }
    }
    return 0;
}

/* Whether a running pipeline's source may still hand out morsels. */
static bool any_source_open(const fb_worker *w)
{
    const fb_run *r = w->run;
    for (int i = 0; i < r->n_pipes; i++) {
        if (ready(&r->pr[i]) && !atomic_load(&r->pr[i].source_done))
            return true;
    }
    return false;
}

/* The next morsel for worker w: local first (queued, then from the sources), then, after a back-off,
 * stolen from another node. Returns 1 with *out, *m and *from set; 0 when there is nothing to do
 * anywhere (every running pipeline's source is done and every queue empty), so that the worker may
 * sleep until something changes; -1 on an error. */
static int acquire(fb_worker *w, fb_prun **out, fb_morsel *m, int *from)
{
    fb_run *r = w->run;
    unsigned start = (unsigned)w->info.worker + w->rr++;
    int64_t t0 = 0, busy0 = 0;
    int yields = 0;
    *from = w->info.numa_node;
    for (;;) {
        int got = find_local(w, start, true, out, m);
        if (got != 0) {
            if (t0)
                w->idle_ns += now_ns() - t0 - (w->busy_ns - busy0);
            return got;
        }
        if (!t0) {
            t0 = now_ns();
            busy0 = w->busy_ns;
        }
        if (atomic_load(&r->stop))
            break;
        if (!anything_to_steal(w)) {
            /* a source whose next morsels went to other nodes' queues (and were taken there) may have
             * more: ask again; sleep only when nothing is left anywhere */
            if (any_source_open(w)) {
                sched_yield(); /* another worker may be inside a (blocking) next_morsel: do not spin hot */
                continue;
            }
            /* the sources are done, so every morsel they gave is queued: a last look, then sleep */
            if (find_local(w, start, false, out, m) == 1) {
                w->idle_ns += now_ns() - t0 - (w->busy_ns - busy0);
                return 1;
            }
            if (!anything_to_steal(w))
                break;
            continue;
        }
        if (yields < FB_STEAL_BACKOFF_YIELDS || now_ns() - t0 < FB_STEAL_BACKOFF_NS) {
            sched_yield();
            yields++;
            continue;
        }
        for (int i = 0; i < r->n_pipes; i++) {
            fb_prun *pr = &r->pr[(start + (unsigned)i) % (unsigned)r->n_pipes];
            if (!ready(pr))
                continue;
            for (int k = 1; k < r->nodes; k++) {
                int n = (w->info.numa_node + k) % r->nodes;
                if (queue_pop(pr->queues[n], m)) {
                    w->idle_ns += now_ns() - t0 - (w->busy_ns - busy0);
                    *out = pr;
                    *from = n;
                    return 1;
                }
            }
        }
    }
    w->idle_ns += now_ns() - t0 - (w->busy_ns - busy0);
    return 0;
}

/* One task: a bounded batch of morsels of one pipeline. Returns 1 after work, 0 when there was
 * none, -1 on an error. */
static int run_task(fb_worker *w)
{
    fb_run *r = w->run;
    fb_prun *pr = NULL;
    fb_morsel m;
    int from = 0;
    int got = acquire(w, &pr, &m, &from);
    if (got <= 0)
        return got;
    int64_t t0 = now_ns();
    for (int n = 1;; n++) {
        if (process_morsel(w, pr, &m, from) != FB_OK)
            return -1;
        if (n >= FB_TASK_MORSELS || from != w->info.numa_node || atomic_load(&r->stop) ||
            now_ns() - t0 >= FB_TASK_NS)
            return 1;
        got = take_local(w, pr, true, &m);
        if (got <= 0)
            return got < 0 ? -1 : 1;
    }
}

static void wait_for_change(fb_worker *w, unsigned long long gen)
{
    fb_run *r = w->run;
    int64_t t0 = now_ns();
    pthread_mutex_lock(&r->q->lock);
    while (atomic_load(&r->gen) == gen && !atomic_load(&r->stop) && !atomic_load(&r->done))
        pthread_cond_wait(&r->q->wake, &r->q->lock);
    pthread_mutex_unlock(&r->q->lock);
    w->idle_ns += now_ns() - t0;
}

static void *worker_main(void *arg)
{
    fb_worker *w = arg;
    fb_run *r = w->run;
    int64_t t0 = now_ns();
    w->pinned = fb_numa_bind_thread(r->ctx, w->info.core);
    while (!atomic_load(&r->stop)) {
        /* read before looking for work: a change after this wakes the wait below */
        unsigned long long gen = atomic_load(&r->gen);
        if (combine_drained(w) != FB_OK)
            break;
        if (atomic_load(&r->done))
            break;
        int got = run_task(w);
        if (got < 0)
            break;
        if (got == 0)
            wait_for_change(w, gen);
    }
    /* after an error or a cancellation: free what was not combined */
    for (int i = 0; i < r->n_pipes; i++) {
        if (w->locals[i].made > 0)
            destroy_locals(w, &r->pr[i]);
        w->locals[i].open = false;
    }
    w->wall_ns = now_ns() - t0;
    return NULL;
}

/* ---- a run's set-up and tear-down ------------------------------------------------------------- */

static void run_destroy(fb_run *r)
{
    fb_ctx *ctx = r->ctx;
    if (r->pr) {
        /* morsels still queued go back to their sources, before the sources' global states go */
        for (int i = 0; i < r->n_pipes; i++) {
            fb_prun *pr = &r->pr[i];
            for (int n = 0; pr->queues && n < r->nodes; n++) {
                fb_morsel m;
                while (pr->queues[n] && queue_pop(pr->queues[n], &m))
                    release_morsel(pr, &m);
            }
        }
        /* global states in the reverse order of the pipelines' starts: a probe before its build */
        for (int k = atomic_load(&r->n_activated) - 1; k >= 0; k--)
            destroy_globals(r, &r->pr[r->activated[k]]);
        for (int i = 0; i < r->n_pipes; i++) {
            fb_prun *pr = &r->pr[i];
            for (int n = 0; pr->queues && n < r->nodes; n++)
                queue_destroy(ctx, pr->queues[n]);
            fb_free(ctx, pr->queues, (size_t)r->nodes * sizeof *pr->queues);
            fb_free(ctx, pr->op_globals, pr->p->n_ops * sizeof *pr->op_globals);
            if (pr->mutexes > 0)
                pthread_mutex_destroy(&pr->source_lock);
            if (pr->mutexes > 1)
                pthread_mutex_destroy(&pr->lock);
            if (pr->mutexes > 2)
                pthread_mutex_destroy(&pr->combine_lock);
        }
        fb_free(ctx, r->pr, (size_t)r->n_pipes * sizeof *r->pr);
    }
    for (int i = 0; r->w && i < r->workers; i++) {
        if (r->w[i])
            fb_numa_free(ctx, r->w[i]->info.numa_node, r->w[i], r->w[i]->bytes);
    }
    fb_free(ctx, r->w, (size_t)r->workers * sizeof *r->w);
    fb_free(ctx, r->dep_start, ((size_t)r->n_pipes + 1) * sizeof *r->dep_start);
    fb_free(ctx, r->dependents, (size_t)r->n_edges * sizeof *r->dependents);
    fb_free(ctx, r->activated, (size_t)r->n_pipes * sizeof *r->activated);
    fb_free(ctx, r->to_start, (size_t)r->n_pipes * sizeof *r->to_start);
    fb_free(ctx, r, sizeof *r);
}

static fb_status run_init_pipelines(fb_run *r)
{
    fb_ctx *ctx = r->ctx;
    fb_query *q = r->q;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, (size_t)r->n_pipes * sizeof *r->pr, &r->pr));
    memset(r->pr, 0, (size_t)r->n_pipes * sizeof *r->pr);
    for (int i = 0; i < r->n_pipes; i++) {
        fb_prun *pr = &r->pr[i];
        pr->p = q->pipelines[i];
        atomic_init(&pr->state, FB_P_WAITING);
        atomic_init(&pr->source_done, false);
        atomic_init(&pr->drained, false);
        atomic_init(&pr->stop_early, false);
        pr->pending = pr->p->n_deps;
    }
    for (int i = 0; i < r->n_pipes; i++) {
        fb_prun *pr = &r->pr[i];
        FB_RETURN_ERROR_IF(pthread_mutex_init(&pr->source_lock, NULL) != 0, ctx, FB_ERR_INTERNAL,
                           "pthread_mutex_init failed");
        pr->mutexes = 1;
        FB_RETURN_ERROR_IF(pthread_mutex_init(&pr->lock, NULL) != 0, ctx, FB_ERR_INTERNAL, "pthread_mutex_init failed");
        pr->mutexes = 2;
        FB_RETURN_ERROR_IF(pthread_mutex_init(&pr->combine_lock, NULL) != 0, ctx, FB_ERR_INTERNAL,
                           "pthread_mutex_init failed");
        pr->mutexes = 3;
        if (pr->p->n_ops) {
            FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, pr->p->n_ops * sizeof *pr->op_globals, &pr->op_globals));
            memset(pr->op_globals, 0, pr->p->n_ops * sizeof *pr->op_globals);
        }
        FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, (size_t)r->nodes * sizeof *pr->queues, &pr->queues));
        memset(pr->queues, 0, (size_t)r->nodes * sizeof *pr->queues);
        for (int n = 0; n < r->nodes; n++)
            FB_FORWARD_IF_ERROR(queue_create(ctx, n, &pr->queues[n]));
    }
    /* dependents of each pipeline, as one array indexed by dep_start */
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, ((size_t)r->n_pipes + 1) * sizeof *r->dep_start, &r->dep_start));
    memset(r->dep_start, 0, ((size_t)r->n_pipes + 1) * sizeof *r->dep_start);
    for (int i = 0; i < r->n_pipes; i++) {
        for (int e = 0; e < q->pipelines[i]->n_deps; e++)
            r->dep_start[q->pipelines[i]->deps[e] + 1]++;
    }
    for (int i = 0; i < r->n_pipes; i++)
        r->dep_start[i + 1] += r->dep_start[i];
    r->n_edges = r->dep_start[r->n_pipes];
    if (r->n_edges) {
        FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, (size_t)r->n_edges * sizeof *r->dependents, &r->dependents));
        int *fill = NULL;
        FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, (size_t)r->n_pipes * sizeof *fill, &fill));
        memcpy(fill, r->dep_start, (size_t)r->n_pipes * sizeof *fill);
        for (int i = 0; i < r->n_pipes; i++) {
            for (int e = 0; e < q->pipelines[i]->n_deps; e++)
                r->dependents[fill[q->pipelines[i]->deps[e]]++] = i;
        }
        fb_free(ctx, fill, (size_t)r->n_pipes * sizeof *fill);
    }
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, (size_t)r->n_pipes * sizeof *r->activated, &r->activated));
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, (size_t)r->n_pipes * sizeof *r->to_start, &r->to_start));
    return FB_OK;
}

static fb_status run_init_workers(fb_run *r)
{
    fb_ctx *ctx = r->ctx;
    int W = r->workers;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, (size_t)W * sizeof *r->w, &r->w));
    memset(r->w, 0, (size_t)W * sizeof *r->w);
    int *place = NULL;
    size_t place_bytes = 2 * (size_t)W * sizeof *place;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, place_bytes, &place));
    fb_status st = fb_numa_place_workers(ctx, W, place, place + W);
    size_t total_ops = 0;
    for (int i = 0; i < r->n_pipes; i++)
        total_ops += r->pr[i].p->n_ops;
    /* one block per worker, on its node: the worker, its statistics, its local states */
    size_t head = (sizeof(fb_worker) + 63) / 64 * 64;
    size_t cells = (size_t)r->n_pipes * sizeof(fb_stats);
    size_t locals = (size_t)r->n_pipes * sizeof(fb_wlocal);
    size_t bytes = head + cells + locals + total_ops * sizeof(void *);
    for (int i = 0; st == FB_OK && i < W; i++) {
        int node = place[W + i];
        void *block = NULL;
        st = fb_numa_alloc(ctx, node, bytes, &block);
        if (st != FB_OK)
            break;
        memset(block, 0, bytes);
        fb_worker *w = block;
        w->run = r;
        w->bytes = bytes;
        w->info.ctx = ctx;
        w->info.worker = i;
        w->info.workers = W;
        w->info.numa_node = node;
        w->info.core = place[i];
        w->cells = (fb_stats *)((char *)block + head);
        w->locals = (fb_wlocal *)((char *)block + head + cells);
        void **ops = (void **)((char *)block + head + cells + locals);
        for (int p = 0; p < r->n_pipes; p++) {
            w->locals[p].ops = ops;
            ops += r->pr[p].p->n_ops;
        }
        r->w[i] = w;
    }
    fb_free(ctx, place, place_bytes);
    return st;
}

static fb_status run_create(fb_query *q, int workers, fb_run **out)
{
    fb_ctx *ctx = q->ctx;
    fb_run *r = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *r, &r));
    memset(r, 0, sizeof *r);
    r->q = q;
    r->ctx = ctx;
    r->n_pipes = q->n_pipelines;
    r->nodes = fb_numa_nodes(ctx);
    r->workers = workers;
    atomic_init(&r->n_activated, 0);
    atomic_init(&r->stop, 0);
    atomic_init(&r->gen, 0);
    atomic_init(&r->done, 0);
    fb_status st = run_init_pipelines(r);
    if (st == FB_OK)
        st = run_init_workers(r);
    if (st != FB_OK) {
        /* keep the message of the failed step across the frees */
        char msg[FB_RUN_MESSAGE_MAX];
        snprintf(msg, sizeof msg, "%s", fb_last_error(ctx));
        run_destroy(r);
        return fb_set_error(ctx, st, "fb_query_run", "cannot set up the run: %s", msg);
    }
    *out = r;
    return FB_OK;
}

/* Copies the workers' counters into the query, where they outlive the run. */
static void collect_stats(fb_run *r)
{
    fb_query *q = r->q;
    int W = r->workers;
    for (int i = 0; i < W; i++) {
        const fb_worker *w = r->w[i];
        fb_stats *ws = &q->worker_stats[i];
        memset(ws, 0, sizeof *ws);
        ws->numa_node = w->info.numa_node;
        ws->core = w->info.core;
        ws->pinned = w->pinned;
        ws->idle_ns = w->idle_ns;
        ws->wall_ns = w->wall_ns;
        for (int p = 0; p < r->n_pipes; p++) {
            fb_stats *c = &q->cells[(size_t)p * (size_t)W + (size_t)i];
            *c = w->cells[p];
            c->idle_ns = 0;
            c->wall_ns = 0;
            c->numa_node = w->info.numa_node;
            c->core = w->info.core;
            c->pinned = w->pinned;
        }
    }
}

fb_status fb_query_run(fb_query *q)
{
    FB_RETURN_ERROR_IF(!q, NULL, FB_ERR_INVALID_ARG, "q must not be NULL");
    fb_ctx *ctx = q->ctx;
    FB_RETURN_ERROR_IF(q->ran, ctx, FB_ERR_INVALID_ARG, "the query has already run (a query runs once)");
    q->ran = true;
    int64_t t0 = now_ns();
    int W = fb_ctx_threads(ctx) > 0 ? fb_ctx_threads(ctx) : 1;
    if (q->n_pipelines > 0) {
        FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, fb_query_stats_bytes(q, W), &q->cells));
        memset(q->cells, 0, fb_query_stats_bytes(q, W));
        q->workers = W;
        q->worker_stats = q->cells + (size_t)q->n_pipelines * (size_t)W;
    }
    fb_run *r = NULL;
    if (q->n_pipelines > 0)
        FB_FORWARD_IF_ERROR(run_create(q, W, &r));

    pthread_mutex_lock(&q->lock);
    bool cancelled = q->cancelled;
    q->run = r;
    pthread_mutex_unlock(&q->lock);
    if (cancelled) {
        if (r)
            run_fail(r, FB_ERR_CANCELLED, "the query was cancelled before it ran");
        else
            return FB_ERROR(ctx, FB_ERR_CANCELLED, "the query was cancelled before it ran");
    }
    if (!r) {
        q->wall_ns = now_ns() - t0;
        return FB_OK;
    }

    for (int i = 0; i < r->n_pipes && !atomic_load(&r->stop); i++) {
        if (r->pr[i].pending == 0)
            activate(r, &r->pr[i], NULL);
    }
    for (int i = 0; i < W && !atomic_load(&r->stop); i++) {
        int e = pthread_create(&r->w[i]->thread, NULL, worker_main, r->w[i]);
        if (e != 0) {
            run_fail(r, e == EAGAIN ? FB_ERR_OUT_OF_MEMORY : FB_ERR_INTERNAL, "cannot start worker thread %d of %d: %s",
                     i, W, strerror(e));
            break;
        }
        r->w[i]->started = true;
    }
    for (int i = 0; i < W; i++) {
        if (r->w[i]->started)
            pthread_join(r->w[i]->thread, NULL);
    }
    collect_stats(r);

    pthread_mutex_lock(&q->lock);
    q->run = NULL;
    fb_status st = r->err;
    pthread_mutex_unlock(&q->lock);
    /* a cancellation that came after the last finalize did not stop anything */
    if (st == FB_ERR_CANCELLED && r->finalized == r->n_pipes)
        st = FB_OK;
    char msg[FB_RUN_MESSAGE_MAX];
    memcpy(msg, r->err_msg, sizeof msg);
    run_destroy(r);
    q->wall_ns = now_ns() - t0;
    if (st != FB_OK)
        return fb_set_error(ctx, st, "fb_query_run", "%s", msg);
    return FB_OK;
}

void fb_query_cancel(fb_query *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    q->cancelled = true;
    fb_run *r = q->run;
    if (r) {
        if (r->err == FB_OK) {
            r->err = FB_ERR_CANCELLED;
            snprintf(r->err_msg, sizeof r->err_msg, "the query was cancelled (fb_query_cancel)");
        }
        atomic_store(&r->stop, 1);
        atomic_fetch_add(&r->gen, 1);
        pthread_cond_broadcast(&q->wake);
    }
    pthread_mutex_unlock(&q->lock);
}
