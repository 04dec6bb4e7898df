/* fb_pipeline_internal.h - the layout of queries and pipelines, shared by pipeline.c (building the
 * DAG, statistics, destruction) and sched.c (running it). Symbols here are hidden. */
#ifndef FB_PIPELINE_INTERNAL_H
#define FB_PIPELINE_INTERNAL_H

#include "fb_internal.h"

#define FB_PIPELINE_NAME_MAX 64
#define FB_STAGE_NAME_MAX 32

struct fb_run; /* sched.c: the state of a run in progress */

struct fb_pipeline {
    fb_query *query;
    int index;
    char name[FB_PIPELINE_NAME_MAX];
    fb_source source;                      /* source.name points to source_name */
    char source_name[FB_STAGE_NAME_MAX];
    fb_sink sink;                          /* sink.name points to sink_name */
    char sink_name[FB_STAGE_NAME_MAX];
    size_t n_ops;
    fb_operator *ops;                      /* n_ops; ops[i].name points to op_names[i] */
    char (*op_names)[FB_STAGE_NAME_MAX];
    int *deps;                             /* indices of the pipelines this one waits for */
    int n_deps, cap_deps;
    int64_t wall_ns;                       /* of the last run: start to end of finalize */
};

struct fb_query {
    fb_ctx *ctx;
    fb_pipeline **pipelines;
    int n_pipelines, cap_pipelines;
    bool ran;                    /* fb_query_run was called: the query is frozen */
    pthread_mutex_t lock;        /* guards cancelled, run, and the run's error and wake-ups */
    pthread_cond_t wake;         /* idle workers wait here for a change (sched.c) */
    bool cancelled;
    struct fb_run *run;          /* the run in progress, NULL otherwise */
    /* statistics of the run, kept until the query is destroyed */
    int workers;
    fb_stats *cells;             /* [n_pipelines * workers], pipeline-major */
    fb_stats *worker_stats;      /* [workers]: the worker-level fields (idle, wall, node, core, pinned) */
    int64_t wall_ns;
};

/* Bytes of a query's statistics arrays for `workers` workers (sched.c allocates, pipeline.c frees). */
static inline size_t fb_query_stats_bytes(const fb_query *q, int workers)
{
    return ((size_t)q->n_pipelines + 1) * (size_t)workers * sizeof(fb_stats);
}

#endif /* FB_PIPELINE_INTERNAL_H */
