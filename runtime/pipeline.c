/* pipeline.c - building a query: pipelines of source → operators → sink, the dependency DAG (kept
 * acyclic edge by edge), the statistics of a run, and destruction. Running is sched.c's job. */
#include "fb_pipeline_internal.h"

#include <stdio.h>
#include <string.h>

/* Calls the destroy hooks of stages that will never belong to a query (a failed add). */
static void destroy_stages(const fb_source *source, const fb_operator *ops, size_t n_ops, const fb_sink *sink)
{
    if (source && source->destroy)
        source->destroy(source->user);
    for (size_t i = 0; ops && i < n_ops; i++) {
        if (ops[i].destroy)
            ops[i].destroy(ops[i].user);
    }
    if (sink && sink->destroy)
        sink->destroy(sink->user);
}

fb_status fb_query_create(fb_ctx *ctx, fb_query **out)
{
    FB_RETURN_ERROR_IF(!ctx || !out, ctx, FB_ERR_INVALID_ARG, "ctx and out must not be NULL");
    fb_query *q = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *q, &q));
    memset(q, 0, sizeof *q);
    q->ctx = ctx;
    if (pthread_mutex_init(&q->lock, NULL) != 0) {
        fb_free(ctx, q, sizeof *q);
        return FB_ERROR(ctx, FB_ERR_INTERNAL, "pthread_mutex_init failed");
    }
    if (pthread_cond_init(&q->wake, NULL) != 0) {
        pthread_mutex_destroy(&q->lock);
        fb_free(ctx, q, sizeof *q);
        return FB_ERROR(ctx, FB_ERR_INTERNAL, "pthread_cond_init failed");
    }
    *out = q;
    return FB_OK;
}

static void pipeline_free(fb_ctx *ctx, fb_pipeline *p)
{
    destroy_stages(&p->source, p->ops, p->n_ops, &p->sink);
    fb_free(ctx, p->ops, p->n_ops * sizeof *p->ops);
    fb_free(ctx, p->op_names, p->n_ops * sizeof *p->op_names);
    fb_free(ctx, p->deps, (size_t)p->cap_deps * sizeof *p->deps);
    fb_free(ctx, p, sizeof *p);
}

void fb_query_destroy(fb_query *q)
{
    if (!q)
        return;
    fb_ctx *ctx = q->ctx;
    for (int i = 0; i < q->n_pipelines; i++)
        pipeline_free(ctx, q->pipelines[i]);
    fb_free(ctx, q->pipelines, (size_t)q->cap_pipelines * sizeof *q->pipelines);
    fb_free(ctx, q->cells, fb_query_stats_bytes(q, q->workers));
    pthread_cond_destroy(&q->wake);
    pthread_mutex_destroy(&q->lock);
    fb_free(ctx, q, sizeof *q);
}

/* Copies a stage name into a fixed buffer; NULL gives `fallback`. */
static void copy_name(char *dst, size_t size, const char *name, const char *fallback)
{
    snprintf(dst, size, "%s", name ? name : fallback);
}

static fb_status check_stages(fb_ctx *ctx, const fb_source *source, const fb_operator *ops, size_t n_ops,
                              const fb_sink *sink)
{
    FB_RETURN_ERROR_IF(!source || !sink, ctx, FB_ERR_INVALID_ARG, "source and sink must not be NULL");
    FB_RETURN_ERROR_IF(!source->next_morsel || !source->scan, ctx, FB_ERR_INVALID_ARG,
                       "source '%s' needs both next_morsel and scan", source->name ? source->name : "source");
    FB_RETURN_ERROR_IF(!sink->sink, ctx, FB_ERR_INVALID_ARG, "sink '%s' has no sink function",
                       sink->name ? sink->name : "sink");
    FB_RETURN_ERROR_IF(n_ops > 0 && !ops, ctx, FB_ERR_INVALID_ARG, "ops is NULL but n_ops is %zu", n_ops);
    FB_RETURN_ERROR_IF(n_ops > 1024, ctx, FB_ERR_INVALID_ARG, "%zu operators in one pipeline (at most 1024)", n_ops);
    for (size_t i = 0; i < n_ops; i++) {
        FB_RETURN_ERROR_IF(!ops[i].execute, ctx, FB_ERR_INVALID_ARG, "operator %zu ('%s') has no execute function", i,
                           ops[i].name ? ops[i].name : "operator");
    }
    return FB_OK;
}

static fb_status add_pipeline(fb_query *q, const char *name, const fb_source *source, const fb_operator *ops,
                              size_t n_ops, const fb_sink *sink, fb_pipeline **out)
{
    fb_ctx *ctx = q->ctx;
    FB_RETURN_ERROR_IF(q->ran, ctx, FB_ERR_INVALID_ARG, "the query has already run; pipelines cannot be added");
    FB_FORWARD_IF_ERROR(check_stages(ctx, source, ops, n_ops, sink));
    FB_RETURN_ERROR_IF(q->n_pipelines >= 65536, ctx, FB_ERR_INVALID_ARG, "a query holds at most 65536 pipelines");
    if (q->n_pipelines == q->cap_pipelines) {
        int cap = q->cap_pipelines ? q->cap_pipelines * 2 : 8;
        fb_pipeline **grown = NULL;
        FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, (size_t)cap * sizeof *grown, &grown));
        if (q->n_pipelines)
            memcpy(grown, q->pipelines, (size_t)q->n_pipelines * sizeof *grown);
        fb_free(ctx, q->pipelines, (size_t)q->cap_pipelines * sizeof *q->pipelines);
        q->pipelines = grown;
        q->cap_pipelines = cap;
    }
    fb_pipeline *p = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *p, &p));
    memset(p, 0, sizeof *p);
    if (n_ops) {
        fb_status st = FB_ALLOC(ctx, n_ops * sizeof *p->ops, &p->ops);
        if (st == FB_OK)
            st = FB_ALLOC(ctx, n_ops * sizeof *p->op_names, &p->op_names);
        if (st != FB_OK) {
            fb_free(ctx, p->ops, n_ops * sizeof *p->ops);
            fb_free(ctx, p, sizeof *p);
            return st;
        }
    }
    p->query = q;
    p->index = q->n_pipelines;
    if (name)
        copy_name(p->name, sizeof p->name, name, "");
    else
        snprintf(p->name, sizeof p->name, "pipeline %d", p->index);
    p->source = *source;
    copy_name(p->source_name, sizeof p->source_name, source->name, "source");
    p->source.name = p->source_name;
    p->sink = *sink;
    copy_name(p->sink_name, sizeof p->sink_name, sink->name, "sink");
    p->sink.name = p->sink_name;
    p->n_ops = n_ops;
    for (size_t i = 0; i < n_ops; i++) {
        p->ops[i] = ops[i];
        copy_name(p->op_names[i], sizeof p->op_names[i], ops[i].name, "operator");
        p->ops[i].name = p->op_names[i];
    }
    q->pipelines[q->n_pipelines++] = p;
    if (out)
        *out = p;
    return FB_OK;
}

fb_status fb_query_add_pipeline(fb_query *q, const char *name, const fb_source *source, const fb_operator *ops,
                                size_t n_ops, const fb_sink *sink, fb_pipeline **out)
{
    fb_status st;
    if (!q)
        st = FB_ERROR(NULL, FB_ERR_INVALID_ARG, "q must not be NULL");
    else
        st = add_pipeline(q, name, source, ops, n_ops, sink, out);
    if (st != FB_OK) {
        /* the query owns the stages from the call on: a failed add frees them */
        destroy_stages(source, ops, n_ops, sink);
    }
    return st;
}

/* Whether `from` waits, directly or not, for `target` (depth-first over the dependency lists). */
static bool reaches(const fb_query *q, int from, int target, unsigned char *seen)
{
    if (from == target)
        return true;
    if (seen[from])
        return false;
    seen[from] = 1;
    const fb_pipeline *p = q->pipelines[from];
    for (int i = 0; i < p->n_deps; i++) {
        if (reaches(q, p->deps[i], target, seen))
            return true;
    }
    return false;
}

fb_status fb_pipeline_depends_on(fb_pipeline *pipeline, fb_pipeline *dependency)
{
    fb_ctx *ctx = pipeline ? pipeline->query->ctx : dependency ? dependency->query->ctx : NULL;
    FB_RETURN_ERROR_IF(!pipeline || !dependency, ctx, FB_ERR_INVALID_ARG, "pipeline and dependency must not be NULL");
    fb_query *q = pipeline->query;
    FB_RETURN_ERROR_IF(dependency->query != q, ctx, FB_ERR_INVALID_ARG,
                       "pipelines '%s' and '%s' belong to different queries", pipeline->name, dependency->name);
    FB_RETURN_ERROR_IF(q->ran, ctx, FB_ERR_INVALID_ARG, "the query has already run; dependencies cannot be added");
    FB_RETURN_ERROR_IF(pipeline == dependency, ctx, FB_ERR_INVALID_ARG, "pipeline '%s' cannot depend on itself",
                       pipeline->name);
    for (int i = 0; i < pipeline->n_deps; i++) {
        if (pipeline->deps[i] == dependency->index)
            return FB_OK;
    }
    unsigned char *seen = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, (size_t)q->n_pipelines, &seen));
    memset(seen, 0, (size_t)q->n_pipelines);
    bool cycle = reaches(q, dependency->index, pipeline->index, seen);
    fb_free(ctx, seen, (size_t)q->n_pipelines);
    FB_RETURN_ERROR_IF(cycle, ctx, FB_ERR_INVALID_ARG,
                       "'%s' depending on '%s' would close a cycle: '%s' already waits for '%s'", pipeline->name,
                       dependency->name, dependency->name, pipeline->name);
    if (pipeline->n_deps == pipeline->cap_deps) {
        int cap = pipeline->cap_deps ? pipeline->cap_deps * 2 : 4;
        int *grown = NULL;
        FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, (size_t)cap * sizeof *grown, &grown));
        if (pipeline->n_deps)
            memcpy(grown, pipeline->deps, (size_t)pipeline->n_deps * sizeof *grown);
        fb_free(ctx, pipeline->deps, (size_t)pipeline->cap_deps * sizeof *pipeline->deps);
        pipeline->deps = grown;
        pipeline->cap_deps = cap;
    }
    pipeline->deps[pipeline->n_deps++] = dependency->index;
    return FB_OK;
}

int fb_pipeline_index(const fb_pipeline *pipeline) { return pipeline ? pipeline->index : -1; }

int fb_query_pipelines(const fb_query *q) { return q ? q->n_pipelines : 0; }

int fb_query_workers(const fb_query *q) { return q ? q->workers : 0; }

/* Adds the counters of b to a (the identity fields stay a's). */
static void stats_add(fb_stats *a, const fb_stats *b)
{
    a->morsels += b->morsels;
    a->rows += b->rows;
    a->rows_out += b->rows_out;
    a->morsels_local += b->morsels_local;
    a->morsels_remote += b->morsels_remote;
    a->steals += b->steals;
    a->busy_ns += b->busy_ns;
    a->idle_ns += b->idle_ns;
}

fb_status fb_query_stats(const fb_query *q, int pipeline, int worker, fb_stats *out)
{
    fb_ctx *ctx = q ? q->ctx : NULL;
    FB_RETURN_ERROR_IF(!q || !out, ctx, FB_ERR_INVALID_ARG, "q and out must not be NULL");
    FB_RETURN_ERROR_IF(!q->ran || (!q->cells && q->n_pipelines > 0 && q->workers > 0), ctx, FB_ERR_INVALID_ARG,
                       "the query has not run: there are no statistics yet");
    FB_RETURN_ERROR_IF(pipeline < -1 || pipeline >= q->n_pipelines, ctx, FB_ERR_INVALID_ARG,
                       "pipeline %d is out of range -1..%d", pipeline, q->n_pipelines - 1);
    FB_RETURN_ERROR_IF(worker < -1 || worker >= q->workers, ctx, FB_ERR_INVALID_ARG,
                       "worker %d is out of range -1..%d", worker, q->workers - 1);
    fb_stats s;
    memset(&s, 0, sizeof s);
    s.numa_node = -1;
    s.core = -1;
    int p0 = pipeline < 0 ? 0 : pipeline, p1 = pipeline < 0 ? q->n_pipelines : pipeline + 1;
    int w0 = worker < 0 ? 0 : worker, w1 = worker < 0 ? q->workers : worker + 1;
    for (int p = p0; p < p1; p++) {
        for (int w = w0; w < w1; w++)
            stats_add(&s, &q->cells[(size_t)p * (size_t)q->workers + (size_t)w]);
    }
    if (worker >= 0) {
        const fb_stats *ws = &q->worker_stats[worker];
        s.numa_node = ws->numa_node;
        s.core = ws->core;
        s.pinned = ws->pinned;
        if (pipeline < 0) {
            s.idle_ns = ws->idle_ns;
            s.wall_ns = ws->wall_ns;
        }
    } else if (pipeline < 0) {
        for (int w = 0; w < q->workers; w++)
            s.idle_ns += q->worker_stats[w].idle_ns;
        s.wall_ns = q->wall_ns;
    } else {
        s.wall_ns = q->pipelines[pipeline]->wall_ns;
    }
    *out = s;
    return FB_OK;
}
