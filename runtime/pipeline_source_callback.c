/* pipeline_source_callback.c - the built-in source for engine-fed data: each morsel is one batch an
 * engine's callback hands over (column views it keeps alive until the batch is released). */
#include "fb_internal.h"

#include <string.h>

typedef struct fb_feed_source {
    fb_ctx *ctx;
    fb_feed_fn next;
    fb_feed_release_fn release;
    void *user;
} fb_feed_source;

/* One batch in flight: what the callback gave, kept until the morsel is released. */
typedef struct fb_feed_record {
    fb_chunk chunk;
    void *token;
    struct fb_feed_record *next_free;
} fb_feed_record;

typedef struct fb_feed_global {
    pthread_mutex_t lock; /* the free list: releases come from several workers at once */
    fb_feed_record *free_list;
    int64_t next_row;     /* under the runtime's serialization of next_morsel */
} fb_feed_global;

static void feed_destroy(void *user)
{
    fb_feed_source *s = user;
    if (s)
        fb_free(s->ctx, s, sizeof *s);
}

static fb_status feed_init_global(void *user, fb_ctx *ctx, void **global)
{
    fb_feed_global *g = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *g, &g));
    memset(g, 0, sizeof *g);
    if (pthread_mutex_init(&g->lock, NULL) != 0) {
        fb_free(ctx, g, sizeof *g);
        return FB_ERROR(ctx, FB_ERR_INTERNAL, "pthread_mutex_init failed");
    }
    *global = g;
    return FB_OK;
}

static void feed_destroy_global(void *user, void *global)
{
    fb_feed_source *s = user;
    fb_feed_global *g = global;
    if (!g)
        return;
    /* every morsel has been released by now: all records are on the free list */
    while (g->free_list) {
        fb_feed_record *rec = g->free_list;
        g->free_list = rec->next_free;
        fb_free(s->ctx, rec, sizeof *rec);
    }
    pthread_mutex_destroy(&g->lock);
    fb_free(s->ctx, g, sizeof *g);
}

static fb_status feed_next_morsel(void *user, void *global, const fb_worker_info *w, fb_morsel *out, int *done)
{
    fb_feed_source *s = user;
    fb_feed_global *g = global;
    fb_chunk chunk;
    memset(&chunk, 0, sizeof chunk);
    int node = -1, d = 0;
    void *token = NULL;
    fb_status st = s->next(s->user, w, &chunk, &node, &token, &d);
    if (st != FB_OK)
        return st;
    if (d) {
        *done = 1;
        return FB_OK;
    }
    if (chunk.rows < 0 || chunk.rows > FB_MORSEL_MAX_ROWS || g->next_row > INT64_MAX - chunk.rows) {
        if (s->release)
            s->release(s->user, token);
        return fb_stage_error(s->ctx, FB_ERR_INVALID_ARG, "the callback handed over a batch of %lld rows",
                              (long long)chunk.rows);
    }
    pthread_mutex_lock(&g->lock);
    fb_feed_record *rec = g->free_list;
    if (rec)
        g->free_list = rec->next_free;
    pthread_mutex_unlock(&g->lock);
    if (!rec && (st = FB_ALLOC(s->ctx, sizeof *rec, &rec)) != FB_OK) {
        if (s->release)
            s->release(s->user, token);
        return st;
    }
    rec->chunk = chunk;
    rec->token = token;
    rec->next_free = NULL;
    out->begin = g->next_row;
    out->end = g->next_row + chunk.rows;
    out->numa_node = node;
    out->data = rec;
    g->next_row += chunk.rows;
    return FB_OK;
}

static fb_status feed_scan(void *user, void *global, void *local, const fb_morsel *m, fb_chunk *out)
{
    const fb_feed_record *rec = m->data;
    *out = rec->chunk;
    return FB_OK;
}

static void feed_release(void *user, void *global, const fb_morsel *m)
{
    fb_feed_source *s = user;
    fb_feed_global *g = global;
    fb_feed_record *rec = m->data;
    if (s->release)
        s->release(s->user, rec->token);
    pthread_mutex_lock(&g->lock);
    rec->next_free = g->free_list;
    g->free_list = rec;
    pthread_mutex_unlock(&g->lock);
}

fb_status fb_source_callback(fb_ctx *ctx, fb_feed_fn next, fb_feed_release_fn release, void *user, fb_source *out)
{
    FB_RETURN_ERROR_IF(!ctx || !next || !out, ctx, FB_ERR_INVALID_ARG, "ctx, next and out must not be NULL");
    fb_feed_source *s = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *s, &s));
    s->ctx = ctx;
    s->next = next;
    s->release = release;
    s->user = user;
    memset(out, 0, sizeof *out);
    out->name = "callback";
    out->init_global = feed_init_global;
    out->next_morsel = feed_next_morsel;
    out->scan = feed_scan;
    out->release_morsel = feed_release;
    out->destroy_global = feed_destroy_global;
    out->destroy = feed_destroy;
    out->user = s;
    return FB_OK;
}
