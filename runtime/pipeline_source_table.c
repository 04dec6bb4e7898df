/* pipeline_source_table.c - the built-in source over an in-memory table: morsels of consecutive rows,
 * each tagged with the NUMA node that holds its memory and handed out to workers of that node first;
 * chunks are zero-copy views (the column views shifted by the morsel's first row). */
#include "fb_sched_numa_internal.h"
#include "fb_topology_internal.h"

#include <string.h>

typedef struct fb_table_source {
    fb_ctx *ctx;
    size_t n_columns;
    fb_column *columns; /* the table's views, copied */
    int64_t rows;
    int64_t morsel_rows;
} fb_table_source;

typedef struct fb_table_global {
    int64_t n_morsels;
    int nodes;
    int *tags;       /* per morsel: its NUMA node, or -1 when unknown */
    int64_t *cursor; /* per bucket (node 0..nodes-1, then "unknown"): next morsel index to look at */
} fb_table_global;

typedef struct fb_table_local {
    int node;
    size_t bytes;
    fb_column columns[]; /* the chunk's views */
} fb_table_local;

static void table_destroy(void *user)
{
    fb_table_source *s = user;
    if (!s)
        return;
    fb_free(s->ctx, s->columns, s->n_columns * sizeof *s->columns);
    fb_free(s->ctx, s, sizeof *s);
}

static void table_destroy_global(void *user, void *global)
{
    fb_table_source *s = user;
    fb_table_global *g = global;
    if (!g)
        return;
    fb_free(s->ctx, g->tags, (size_t)g->n_morsels * sizeof *g->tags);
    fb_free(s->ctx, g->cursor, ((size_t)g->nodes + 1) * sizeof *g->cursor);
    fb_free(s->ctx, g, sizeof *g);
}

/* NUMA node of morsel i: on a synthetic topology by position (k-th of `nodes` contiguous parts), on a
 * real one where its first page lies (cached per page, as small morsels share pages). */
static int morsel_node(const fb_table_source *s, const fb_table_global *g, int64_t i, const void **last_page,
                       int *last_node)
{
    if (g->nodes == 1)
        return 0;
    if (fb_topology_is_synthetic(s->ctx)) {
        __extension__ unsigned __int128 k = (unsigned __int128)(uint64_t)i * (unsigned)g->nodes;
        return (int)(k / (uint64_t)g->n_morsels);
    }
    const fb_column *c = &s->columns[0];
    size_t width = fb_type_width(c->type);
    const char *addr = (const char *)c->data + (size_t)(c->offset + i * s->morsel_rows) * width;
    const void *page = (const void *)((uintptr_t)addr & ~(uintptr_t)4095);
    if (page != *last_page) {
        *last_page = page;
        *last_node = fb_numa_node_of_memory(s->ctx, addr, 1);
    }
    return *last_node;
}

static fb_status table_init_global(void *user, fb_ctx *ctx, void **global)
{
    fb_table_source *s = user;
    fb_table_global *g = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *g, &g));
    memset(g, 0, sizeof *g);
    g->nodes = fb_numa_nodes(ctx);
    g->n_morsels = s->n_columns == 0 || s->rows == 0 ? 0 : (s->rows - 1) / s->morsel_rows + 1;
    fb_status st = FB_ALLOC(ctx, ((size_t)g->nodes + 1) * sizeof *g->cursor, &g->cursor);
    if (st == FB_OK && g->n_morsels > 0)
        st = FB_ALLOC(ctx, (size_t)g->n_morsels * sizeof *g->tags, &g->tags);
    if (st != FB_OK) {
        table_destroy_global(user, g);
        return st;
    }
    for (int b = 0; b <= g->nodes; b++)
        g->cursor[b] = g->n_morsels;
    const void *last_page = NULL;
    int last_node = -1;
    /* each bucket's cursor starts at its first morsel */
    for (int64_t i = g->n_morsels - 1; i >= 0; i--) {
        int node = morsel_node(s, g, i, &last_page, &last_node);
        g->tags[i] = node;
        g->cursor[node >= 0 ? node : g->nodes] = i;
    }
    *global = g;
    return FB_OK;
}

/* The next morsel of bucket b, or -1. */
static int64_t take_from_bucket(fb_table_global *g, int b)
{
    int tag = b < g->nodes ? b : -1;
    int64_t i = g->cursor[b];
    while (i < g->n_morsels && g->tags[i] != tag)
        i++;
    if (i >= g->n_morsels) {
        g->cursor[b] = g->n_morsels;
        return -1;
    }
    g->cursor[b] = i + 1;
    return i;
}

static fb_status table_next_morsel(void *user, void *global, const fb_worker_info *w, fb_morsel *out, int *done)
{
    fb_table_source *s = user;
    fb_table_global *g = global;
    int own = w->numa_node >= 0 && w->numa_node < g->nodes ? w->numa_node : 0;
    int64_t i = take_from_bucket(g, own);
    if (i < 0)
        i = take_from_bucket(g, g->nodes);
    for (int k = 1; i < 0 && k < g->nodes; k++)
        i = take_from_bucket(g, (own + k) % g->nodes);
    if (i < 0) {
        *done = 1;
        return FB_OK;
    }
    out->begin = i * s->morsel_rows;
    out->end = out->begin + s->morsel_rows < s->rows ? out->begin + s->morsel_rows : s->rows;
    out->numa_node = g->tags[i];
    out->data = NULL;
    return FB_OK;
}

static fb_status table_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    fb_table_source *s = user;
    size_t bytes = sizeof(fb_table_local) + s->n_columns * sizeof(fb_column);
    fb_table_local *l = NULL;
    FB_FORWARD_IF_ERROR(fb_numa_alloc(s->ctx, w->numa_node, bytes, (void **)&l));
    l->node = w->numa_node;
    l->bytes = bytes;
    *local = l;
    return FB_OK;
}

static void table_destroy_local(void *user, void *global, void *local)
{
    fb_table_source *s = user;
    fb_table_local *l = local;
    if (l)
        fb_numa_free(s->ctx, l->node, l, l->bytes);
}

static fb_status table_scan(void *user, void *global, void *local, const fb_morsel *m, fb_chunk *out)
{
    fb_table_source *s = user;
    fb_table_local *l = local;
    int64_t rows = m->end - m->begin;
    for (size_t c = 0; c < s->n_columns; c++) {
        l->columns[c] = s->columns[c];
        l->columns[c].offset += m->begin;
        l->columns[c].length = rows;
    }
    out->rows = rows;
    out->n_columns = s->n_columns;
    out->columns = l->columns;
    out->sel = NULL;
    out->n_sel = rows;
    return FB_OK;
}

fb_status fb_source_table(fb_ctx *ctx, const fb_table *table, int64_t morsel_rows, fb_source *out)
{
    FB_RETURN_ERROR_IF(!ctx || !table || !out, ctx, FB_ERR_INVALID_ARG, "ctx, table and out must not be NULL");
    FB_RETURN_ERROR_IF(morsel_rows < 0 || morsel_rows > FB_MORSEL_MAX_ROWS, ctx, FB_ERR_INVALID_ARG,
                       "morsel_rows must be 0 (default) or 1..%lld, got %lld", (long long)FB_MORSEL_MAX_ROWS,
                       (long long)morsel_rows);
    int64_t rows = 0;
    FB_FORWARD_IF_ERROR(fb_table_validate(ctx, table, &rows));
    fb_table_source *s = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *s, &s));
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->rows = rows;
    s->morsel_rows = morsel_rows ? morsel_rows : FB_MORSEL_DEFAULT_ROWS;
    if (table->n_columns) {
        fb_status st = FB_ALLOC(ctx, table->n_columns * sizeof *s->columns, &s->columns);
        if (st != FB_OK) {
            fb_free(ctx, s, sizeof *s);
            return st;
        }
        memcpy(s->columns, table->columns, table->n_columns * sizeof *s->columns);
        s->n_columns = table->n_columns;
    }
    memset(out, 0, sizeof *out);
    out->name = "table_scan";
    out->init_global = table_init_global;
    out->next_morsel = table_next_morsel;
    out->init_local = table_init_local;
    out->scan = table_scan;
    out->destroy_local = table_destroy_local;
    out->destroy_global = table_destroy_global;
    out->destroy = table_destroy;
    out->user = s;
    return FB_OK;
}
