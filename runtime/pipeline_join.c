/* pipeline_join.c - the runtime's inner hash join (fb_pipeline_join_internal.h): the radix-partitioned
 * plan (partition sinks for both sides, then a source of partitions and a per-partition join sink) and
 * the non-partitioned plan (a shared chained table built by every worker at once, then a probe sink).
 * The hot loops are the join kernels of the context's variant (kernels/fb_join_internal.h).
 *
 * One state (fb_jstate) is shared by every stage of a join; each stage's `user` is a small handle on
 * it, and the state is freed when the last handle's destroy hook runs. Pipelines read what earlier
 * pipelines' sinks left in their global states (the runtime keeps them until the run ends). */
#include "fb_join_internal.h"
#include "fb_pipeline_internal.h"
#include "fb_pipeline_join_internal.h"
#include "fb_sched_numa_internal.h"
#include "fb_topology_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

__extension__ typedef __int128 fb_i128;

/* ---- shared state ------------------------------------------------------------------------------ */

/* A chunk of one partition's tuples from one worker: a 64-byte header, then up to chunk_tuples tuples. */
typedef struct fb_jchunk {
    struct fb_jchunk *next;
    int64_t n;
    char pad[48];
} fb_jchunk;

static uint64_t *chunk_data(fb_jchunk *c) { return (uint64_t *)(c + 1); }

/* A slab of a worker's partition memory (chunks are cut from it). */
typedef struct fb_jslab {
    struct fb_jslab *next;
    size_t bytes;
    int node;
} fb_jslab;

/* What the partition sink of one side leaves: per combined worker, the first chunk of each partition. */
typedef struct fb_jside {
    int workers;         /* slots combined so far */
    fb_jchunk ***heads;  /* [ctx threads][parts] */
    int64_t *count;      /* [parts] tuples per partition */
    fb_jslab *slabs;
} fb_jside;

/* Pairs collected by a worker. */
typedef struct fb_jpairs {
    struct fb_jpairs *next;
    int64_t n;
    int64_t node; /* NUMA node it was allocated on */
    int64_t pad[5];
    /* then FB_JPAIRS_CAP build ids, then FB_JPAIRS_CAP probe ids */
} fb_jpairs;
/* 8 MiB blocks on the worker's node, mostly transparent huge pages: J4 writes 300 MB of pairs, and
 * with 4 KiB pages its page faults cost about as much as the probe */
#define FB_JPAIRS_CAP (INT64_C(1) << 19)
#define FB_JPAIRS_BYTES (sizeof(fb_jpairs) + 2 * FB_JPAIRS_CAP * sizeof(int64_t) + FB_JPAIRS_CAP)
static int64_t *pairs_b(fb_jpairs *p) { return (int64_t *)(p + 1); }
static int64_t *pairs_p(fb_jpairs *p) { return (int64_t *)(p + 1) + FB_JPAIRS_CAP; }
static uint8_t *pairs_m(fb_jpairs *p) { return (uint8_t *)((int64_t *)(p + 1) + 2 * FB_JPAIRS_CAP); }

/* The output sink's global state: exact sums and the pairs of every worker. */
typedef struct fb_jout {
    int64_t count;
    fb_i128 sum;
    fb_jpairs *pairs;
} fb_jout;

typedef struct fb_jstate {
    fb_ctx *ctx;
    int refs;
    fb_join_input in;
    fb_join_result *result;
    fb_join_algorithm algo;
    int pairs; /* output PAIRS */
    int threads;
    /* radix */
    int bits;
    int64_t parts;
    int64_t chunk_tuples;
    size_t slab_bytes;
    fb_jside *side[2]; /* the partition sinks' globals, set by their init_global */
    /* shared table */
    int lb;
    int64_t build_rows;
    uint32_t *head; /* 2^lb */
    uint32_t *ent;  /* 4 per build row */
    /* the general join (fb_query_add_join: any type and key) */
    int general;
    fb_join_type type;
    int nk, W;               /* key columns; words per partition record: id (bit 63: null key), keys */
    fb_column bkeys[FB_JOIN_MAX_KEYS], pkeys[FB_JOIN_MAX_KEYS];
    fb_column *bpay, *ppay;  /* payload columns to gather (copies) */
    size_t nbp, npp;
    fb_hash_table *table;    /* non-partitioned: built by every worker at once (fb_hash_table_build_shared) */
    fb_join_result *info;    /* written during the run (partition placement), or NULL */
    int nodes;               /* NUMA nodes: partition p's memory lies on node p % nodes */
} fb_jstate;

static void jstate_release(fb_jstate *js)
{
    if (js && --js->refs == 0) {
        fb_free(js->ctx, js->bpay, js->nbp * sizeof *js->bpay);
        fb_free(js->ctx, js->ppay, js->npp * sizeof *js->ppay);
        fb_free(js->ctx, js, sizeof *js);
    }
}

/* The node that holds partition p's memory and whose workers join it first. */
static int part_node(const fb_jstate *js, int64_t p) { return js->nodes > 1 ? (int)(p % js->nodes) : 0; }

/* Each stage's user: the state and which side it works on. */
typedef struct fb_juser {
    fb_jstate *js;
    int side;
} fb_juser;

static fb_status juser_make(fb_jstate *js, int side, fb_juser **out)
{
    fb_juser *u = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(js->ctx, sizeof *u, &u));
    u->js = js;
    u->side = side;
    js->refs++;
    *out = u;
    return FB_OK;
}

static void juser_destroy(void *user)
{
    fb_juser *u = user;
    if (!u)
        return;
    fb_jstate *js = u->js;
    fb_free(js->ctx, u, sizeof *u);
    jstate_release(js);
}

/* Asks for transparent huge pages on the 2 MiB-aligned part of a large block: partition writes go to
 * thousands of places at once and probes of the shared table land anywhere, both TLB-bound with 4 KiB
 * pages. A hint only. */
static void advise_huge(void *p, size_t bytes)
{
#if defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1), hi = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#endif
}

/* ---- reading a chunk --------------------------------------------------------------------------- */

/* The key (and value) column of one side in a chunk, checked. */
static fb_status chunk_side(const fb_jstate *js, const fb_chunk *c, const uint32_t **keys, const uint32_t **vals,
                            const uint8_t **valid, int64_t *voff)
{
    size_t need = js->pairs ? 1 : 2;
    if (c->n_columns < need)
        return fb_stage_error(js->ctx, FB_ERR_INVALID_ARG, "the join reads %zu columns of a chunk with %zu", need,
                              c->n_columns);
    const fb_column *k = &c->columns[0];
    *keys = (const uint32_t *)k->data + k->offset;
    *valid = k->validity;
    *voff = k->offset;
    *vals = NULL;
    if (!js->pairs) {
        const fb_column *v = &c->columns[1];
        *vals = (const uint32_t *)v->data + v->offset;
    }
    return FB_OK;
}

/* ---- output: count/sum or pairs, per worker, combined --------------------------------------------- */

typedef struct fb_jlocal_out {
    int node;
    int64_t count;
    fb_i128 sum;
    fb_jpairs *pairs; /* the block being filled first */
    /* radix join scratch: a partition's table and its segments */
    uint32_t *off;
    uint64_t *tup;
    int64_t cap_nb, cap_n;
    const uint64_t **seg;
    int64_t *seg_n;
    int64_t cap_seg;
} fb_jlocal_out;

static void free_pairs(fb_ctx *ctx, fb_jpairs *p)
{
    while (p) {
        fb_jpairs *next = p->next;
        fb_numa_free(ctx, (int)p->node, p, FB_JPAIRS_BYTES);
        p = next;
    }
}

/* A block with room for at least one pair at the head of l->pairs. */
static fb_status pairs_room(fb_ctx *ctx, fb_jlocal_out *l)
{
    if (l->pairs && l->pairs->n < FB_JPAIRS_CAP)
        return FB_OK;
    fb_jpairs *p = NULL;
    FB_FORWARD_IF_ERROR(fb_numa_alloc(ctx, l->node, FB_JPAIRS_BYTES, (void **)&p));
    advise_huge(p, FB_JPAIRS_BYTES);
    p->node = l->node;
    p->next = l->pairs;
    p->n = 0;
    l->pairs = p;
    return FB_OK;
}

static fb_status out_init_global(void *user, fb_ctx *ctx, void **global)
{
    fb_jout *g = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *g, &g));
    memset(g, 0, sizeof *g);
    *global = g;
    return FB_OK;
}

static void out_destroy_global(void *user, void *global)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_jout *g = global;
    if (!g)
        return;
    free_pairs(js->ctx, g->pairs);
    fb_free(js->ctx, g, sizeof *g);
}

static fb_status out_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_jlocal_out *l = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(js->ctx, sizeof *l, &l));
    memset(l, 0, sizeof *l);
    l->node = w->numa_node;
    *local = l;
    return FB_OK;
}

static void out_destroy_local(void *user, void *global, void *local)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_jlocal_out *l = local;
    if (!l)
        return;
    fb_ctx *ctx = js->ctx;
    free_pairs(ctx, l->pairs);
    fb_free(ctx, l->off, (size_t)(l->cap_nb + 2) * 4);
    fb_free(ctx, l->tup, (size_t)(l->cap_n + FB_JR_TUP_PAD) * 8);
    fb_free(ctx, l->seg, (size_t)l->cap_seg * sizeof *l->seg);
    fb_free(ctx, l->seg_n, (size_t)l->cap_seg * sizeof *l->seg_n);
    fb_free(ctx, l, sizeof *l);
}

static fb_status out_combine(void *user, void *global, void *local)
{
    fb_jout *g = global;
    fb_jlocal_out *l = local;
    g->count += l->count;
    g->sum += l->sum;
    while (l->pairs) {
        fb_jpairs *p = l->pairs;
        l->pairs = p->next;
        p->next = g->pairs;
        g->pairs = p;
    }
    return FB_OK;
}

static fb_status out_finalize(void *user, void *global)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_jout *g = global;
    fb_join_result *r = js->result;
    if (!js->pairs) {
        if (g->sum > INT64_MAX || g->sum < INT64_MIN)
            return fb_stage_error(js->ctx, FB_ERR_OVERFLOW, "sum(build.v + probe.v) over %lld pairs does not fit int64",
                                  (long long)g->count);
        r->count = g->count;
        r->sum = (int64_t)g->sum;
    } else {
        int64_t n = 0, nb = 0;
        for (fb_jpairs *p = g->pairs; p; p = p->next) {
            n += p->n;
            nb++;
        }
        fb_join_pair_block *blocks = NULL;
        FB_FORWARD_IF_ERROR(FB_ALLOC(js->ctx, (size_t)(nb ? nb : 1) * sizeof *blocks, &blocks));
        int64_t at = 0;
        for (fb_jpairs *p = g->pairs; p; p = p->next)
            blocks[at++] = (fb_join_block){js->general && (js->type == FB_JOIN_SEMI || js->type == FB_JOIN_ANTI ||
                                                           js->type == FB_JOIN_MARK)
                                               ? NULL
                                               : pairs_b(p),
                                           pairs_p(p), js->general && js->type == FB_JOIN_MARK ? pairs_m(p) : NULL,
                                           p->n};
        r->count = n;
        r->sum = 0;
        r->blocks = blocks;
        r->n_blocks = nb;
        r->owner = g->pairs; /* the result owns the blocks from here on */
        g->pairs = NULL;
    }
    r->algorithm = js->algo;
    r->radix_bits = js->algo == FB_JOIN_ALGO_RADIX ? js->bits : 0;
    return FB_OK;
}

/* ---- radix: partition sinks ---------------------------------------------------------------------- */

#define FB_JMAX_NODES 64

typedef struct fb_jpart_local {
    int node;
    uint64_t **cur, **end; /* parts each: where partition p's next tuple goes, the end of its chunk */
    fb_jchunk **first, **last; /* parts each */
    fb_jslab *slabs;
    char *slab_at[FB_JMAX_NODES], *slab_end[FB_JMAX_NODES]; /* per node: the slab chunks are cut from */
    int64_t *hash_buf;  /* general join: hashes of a chunk */
    int64_t hash_cap;
} fb_jpart_local;

static void free_slabs(fb_ctx *ctx, fb_jslab *s)
{
    while (s) {
        fb_jslab *next = s->next;
        fb_numa_free(ctx, s->node, s, s->bytes);
        s = next;
    }
}

static fb_status part_init_global(void *user, fb_ctx *ctx, void **global)
{
    fb_juser *u = user;
    fb_jstate *js = u->js;
    fb_jside *g = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *g, &g));
    memset(g, 0, sizeof *g);
    fb_status st = FB_ALLOC(ctx, (size_t)js->threads * sizeof *g->heads, &g->heads);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, (size_t)js->parts * sizeof *g->count, &g->count);
    if (st != FB_OK) {
        fb_free(ctx, g->heads, (size_t)js->threads * sizeof *g->heads);
        fb_free(ctx, g, sizeof *g);
        return st;
    }
    memset(g->heads, 0, (size_t)js->threads * sizeof *g->heads);
    memset(g->count, 0, (size_t)js->parts * sizeof *g->count);
    js->side[u->side] = g;
    *global = g;
    return FB_OK;
}

static void part_destroy_global(void *user, void *global)
{
    fb_juser *u = user;
    fb_jstate *js = u->js;
    fb_jside *g = global;
    if (!g)
        return;
    for (int w = 0; w < js->threads; w++)
        fb_free(js->ctx, g->heads[w], (size_t)js->parts * sizeof **g->heads);
    fb_free(js->ctx, g->heads, (size_t)js->threads * sizeof *g->heads);
    fb_free(js->ctx, g->count, (size_t)js->parts * sizeof *g->count);
    free_slabs(js->ctx, g->slabs);
    js->side[u->side] = NULL;
    fb_free(js->ctx, g, sizeof *g);
}

static size_t chunk_bytes(const fb_jstate *js) { return sizeof(fb_jchunk) + (size_t)js->chunk_tuples * 8; }

/* A new, empty chunk of partition p from the worker's slabs on the partition's node (so that the worker
 * that later joins the partition, one of that node, reads local memory; on one node, the worker's). */
static fb_status new_chunk(fb_jstate *js, fb_jpart_local *l, int64_t p, fb_jchunk **out)
{
    size_t cb = chunk_bytes(js);
    int node = js->nodes > 1 ? part_node(js, p) : l->node;
    int slot = node < 0 ? 0 : node % FB_JMAX_NODES;
    if (!l->slab_at[slot] || (size_t)(l->slab_end[slot] - l->slab_at[slot]) < cb) {
        fb_jslab *s = NULL;
        FB_FORWARD_IF_ERROR(fb_numa_alloc(js->ctx, node, js->slab_bytes, (void **)&s));
        advise_huge(s, js->slab_bytes);
        s->next = l->slabs;
        s->bytes = js->slab_bytes;
        s->node = node;
        l->slabs = s;
        l->slab_at[slot] = (char *)s + 64;
        l->slab_end[slot] = (char *)s + js->slab_bytes;
    }
    fb_jchunk *c = (fb_jchunk *)l->slab_at[slot];
    l->slab_at[slot] += cb;
    c->next = NULL;
    c->n = 0;
    *out = c;
    return FB_OK;
}

static void part_destroy_local(void *user, void *global, void *local)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_jpart_local *l = local;
    if (!l)
        return;
    fb_ctx *ctx = js->ctx;
    size_t parts = (size_t)js->parts;
    fb_free(ctx, l->cur, parts * sizeof *l->cur);
    fb_free(ctx, l->end, parts * sizeof *l->end);
    fb_free(ctx, l->first, parts * sizeof *l->first);
    fb_free(ctx, l->last, parts * sizeof *l->last);
    free_slabs(ctx, l->slabs);
    fb_free(ctx, l->hash_buf, (size_t)l->hash_cap * 8);
    fb_free(ctx, l, sizeof *l);
}

static fb_status part_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    fb_juser *u = user;
    fb_jstate *js = u->js;
    fb_ctx *ctx = js->ctx;
    size_t parts = (size_t)js->parts;
    fb_jpart_local *l = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *l, &l));
    memset(l, 0, sizeof *l);
    l->node = w->numa_node;
    *local = l;
    /* a failed init_local is not destroyed by the runtime: undo here */
    fb_status st = FB_ALLOC(ctx, parts * sizeof *l->cur, &l->cur);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, parts * sizeof *l->end, &l->end);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, parts * sizeof *l->first, &l->first);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, parts * sizeof *l->last, &l->last);
    for (size_t p = 0; st == FB_OK && p < parts; p++) {
        fb_jchunk *c;
        st = new_chunk(js, l, (int64_t)p, &c);
        if (st != FB_OK)
            break;
        l->first[p] = l->last[p] = c;
        l->cur[p] = chunk_data(c);
        l->end[p] = chunk_data(c) + js->chunk_tuples;
    }
    if (st != FB_OK) {
        part_destroy_local(user, global, l);
        *local = NULL;
    }
    return st;
}

/* Partition p's chunk is full: seal it, chain a new one. */
static fb_status part_next_chunk(fb_jstate *js, fb_jpart_local *l, uint32_t p)
{
    fb_jchunk *c;
    FB_FORWARD_IF_ERROR(new_chunk(js, l, p, &c));
    l->last[p]->n = js->chunk_tuples;
    l->last[p]->next = c;
    l->last[p] = c;
    l->cur[p] = chunk_data(c);
    l->end[p] = chunk_data(c) + js->chunk_tuples;
    return FB_OK;
}

/* Scatters rows [0, n) of one run (all of a chunk, or one selected row). */
static fb_status part_rows(fb_jstate *js, fb_jpart_local *l, const fb_join_kernels *jk, const uint32_t *keys,
                           const uint32_t *vals, uint32_t pay_base, const uint8_t *valid, int64_t voff, int64_t n)
{
    int64_t row = 0;
    uint32_t full;
    while (jk->jr_scatter(keys, vals, pay_base, valid, voff, &row, n, js->bits, l->cur, l->end, &full))
        FB_FORWARD_IF_ERROR(part_next_chunk(js, l, full));
    return FB_OK;
}

static fb_status part_sink(void *user, void *global, void *local, const fb_chunk *c)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_jpart_local *l = local;
    const uint32_t *keys = NULL, *vals = NULL;
    const uint8_t *valid = NULL;
    int64_t voff = 0;
    FB_FORWARD_IF_ERROR(chunk_side(js, c, &keys, &vals, &valid, &voff));
    const fb_join_kernels *jk = fb_join_kernels_get(js->ctx);
    if (!c->sel)
        return part_rows(js, l, jk, keys, vals, (uint32_t)c->row_begin, valid, voff, c->rows);
    for (int64_t j = 0; j < c->n_sel; j++) {
        uint32_t s = c->sel[j];
        FB_FORWARD_IF_ERROR(part_rows(js, l, jk, keys + s, vals ? vals + s : NULL, (uint32_t)(c->row_begin + s), valid,
                                      voff + s, 1));
    }
    return FB_OK;
}

static fb_status part_combine(void *user, void *global, void *local)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_jside *g = global;
    fb_jpart_local *l = local;
    for (int64_t p = 0; p < js->parts; p++) {
        l->last[p]->n = l->cur[p] - chunk_data(l->last[p]);
        for (fb_jchunk *c = l->first[p]; c; c = c->next)
            g->count[p] += c->n;
    }
    /* the global takes the chunk lists (a copy of `first`) and the slabs */
    fb_jchunk **heads = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(js->ctx, (size_t)js->parts * sizeof *heads, &heads));
    memcpy(heads, l->first, (size_t)js->parts * sizeof *heads);
    g->heads[g->workers++] = heads;
    while (l->slabs) {
        fb_jslab *s = l->slabs;
        l->slabs = s->next;
        s->next = g->slabs;
        g->slabs = s;
    }
    return FB_OK;
}

/* ---- radix: the source of partitions and the join sink --------------------------------------------- */

typedef struct fb_jparts_global {
    int64_t *order; /* partitions, grouped by node, in each group the most probe tuples first */
    int64_t n;
    int64_t next[FB_JMAX_NODES], end[FB_JMAX_NODES]; /* node k's group: order[next[k] .. end[k]) */
} fb_jparts_global;

/* for the sort's comparison (qsort has no context) */
static _Thread_local const int64_t *sort_counts;

static int cmp_parts(const void *a, const void *b)
{
    int64_t x = sort_counts[*(const int64_t *)a], y = sort_counts[*(const int64_t *)b];
    if (x != y)
        return x > y ? -1 : 1;
    return *(const int64_t *)a < *(const int64_t *)b ? -1 : 1;
}

static fb_status parts_init_global(void *user, fb_ctx *ctx, void **global)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_jparts_global *g = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *g, &g));
    memset(g, 0, sizeof *g);
    fb_status st = FB_ALLOC(ctx, (size_t)js->parts * sizeof *g->order, &g->order);
    if (st != FB_OK) {
        fb_free(ctx, g, sizeof *g);
        return st;
    }
    if (!js->side[0] || !js->side[1]) {
        fb_free(ctx, g->order, (size_t)js->parts * sizeof *g->order);
        fb_free(ctx, g, sizeof *g);
        return fb_stage_error(ctx, FB_ERR_INTERNAL, "the partitions of the join's sides are missing");
    }
    /* partitions with no probe tuples produce nothing and are left out, and so are those without build
     * tuples unless unmatched probe rows are output (left, anti, mark) */
    int keep_unmatched = js->general && js->type != FB_JOIN_INNER && js->type != FB_JOIN_SEMI;
    int nodes = js->nodes > 1 ? (js->nodes < FB_JMAX_NODES ? js->nodes : FB_JMAX_NODES) : 1;
    for (int k = 0; k < nodes; k++) {
        g->next[k] = g->n;
        for (int64_t p = k; p < js->parts; p += nodes)
            if (js->side[1]->count[p] && (keep_unmatched || js->side[0]->count[p]))
                g->order[g->n++] = p;
        g->end[k] = g->n;
        sort_counts = js->side[1]->count;
        qsort(g->order + g->next[k], (size_t)(g->end[k] - g->next[k]), sizeof *g->order, cmp_parts);
        sort_counts = NULL;
    }
    *global = g;
    return FB_OK;
}

static void parts_destroy_global(void *user, void *global)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_jparts_global *g = global;
    if (!g)
        return;
    fb_free(js->ctx, g->order, (size_t)js->parts * sizeof *g->order);
    fb_free(js->ctx, g, sizeof *g);
}

static fb_status parts_next_morsel(void *user, void *global, const fb_worker_info *w, fb_morsel *out, int *done)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_jparts_global *g = global;
    int nodes = js->nodes > 1 ? (js->nodes < FB_JMAX_NODES ? js->nodes : FB_JMAX_NODES) : 1;
    /* the asking worker's node first, else the node with the most partitions left */
    int k = w->numa_node >= 0 && w->numa_node < nodes ? w->numa_node : 0;
    if (g->next[k] >= g->end[k]) {
        int64_t most = 0;
        for (int j = 0; j < nodes; j++)
            if (g->end[j] - g->next[j] > most) {
                most = g->end[j] - g->next[j];
                k = j;
            }
        if (most == 0) {
            *done = 1;
            return FB_OK;
        }
    }
    /* the morsel's "row" is the partition itself, tagged with the node that holds its memory */
    out->begin = g->order[g->next[k]++];
    out->end = out->begin + 1;
    out->numa_node = js->nodes > 1 ? part_node(js, out->begin) : -1;
    out->data = NULL;
    return FB_OK;
}

static fb_status parts_scan(void *user, void *global, void *local, const fb_morsel *m, fb_chunk *out)
{
    /* a chunk of one row per partition (no columns): the sink reads the partition from row_begin */
    memset(out, 0, sizeof *out);
    out->row_begin = m->begin;
    out->rows = m->end - m->begin;
    out->n_sel = out->rows;
    return FB_OK;
}

/* Grows a scratch array of 4-byte entries to hold n. */
static fb_status grow32(fb_ctx *ctx, uint32_t **a, int64_t *cap, int64_t n, int64_t extra)
{
    if (n <= *cap)
        return FB_OK;
    int64_t nc = n > 2 * *cap ? n : 2 * *cap;
    uint32_t *b = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, (size_t)(nc + extra) * 4, &b));
    fb_free(ctx, *a, (size_t)(*cap + extra) * 4);
    *a = b;
    *cap = nc;
    return FB_OK;
}

/* Counts a partition joined by a worker of `node` as local or remote (fb_join_result). */
static void count_placement(fb_jstate *js, int node, int64_t p)
{
    if (!js->info)
        return;
    int local = js->nodes <= 1 || node == part_node(js, p);
    __atomic_fetch_add(local ? &js->info->partitions_local : &js->info->partitions_remote, 1, __ATOMIC_RELAXED);
}

static fb_status join_partition(fb_jstate *js, fb_jlocal_out *l, int64_t p)
{
    fb_ctx *ctx = js->ctx;
    const fb_jside *bs = js->side[0], *ps = js->side[1];
    int64_t n = bs->count[p];
    int64_t nseg = 0;
    for (int w = 0; w < bs->workers; w++)
        for (fb_jchunk *c = bs->heads[w][p]; c; c = c->next)
            nseg++;
    if (nseg > l->cap_seg) {
        int64_t nc = nseg > 2 * l->cap_seg ? nseg : 2 * l->cap_seg;
        const uint64_t **s = NULL;
        int64_t *sn = NULL;
        fb_status st = FB_ALLOC(ctx, (size_t)nc * sizeof *s, &s);
        if (st == FB_OK)
            st = FB_ALLOC(ctx, (size_t)nc * sizeof *sn, &sn);
        if (st != FB_OK) {
            fb_free(ctx, s, (size_t)nc * sizeof *s);
            return st;
        }
        fb_free(ctx, l->seg, (size_t)l->cap_seg * sizeof *l->seg);
        fb_free(ctx, l->seg_n, (size_t)l->cap_seg * sizeof *l->seg_n);
        l->seg = s;
        l->seg_n = sn;
        l->cap_seg = nc;
    }
    nseg = 0;
    for (int w = 0; w < bs->workers; w++)
        for (fb_jchunk *c = bs->heads[w][p]; c; c = c->next) {
            l->seg[nseg] = chunk_data(c);
            l->seg_n[nseg++] = c->n;
        }
    const fb_join_kernels *jk = fb_join_kernels_get(ctx);
    /* the pairs' probe (fb_jr_probe_pairs) walks buckets one tuple at a time: sparse buckets */
    int lb = fb_jr_log2_buckets(n, js->bits, js->pairs ? FB_JR_LOAD_SPARSE : jk->jr_load);
    int64_t nb = (int64_t)1 << lb;
    if (nb > l->cap_nb) {
        FB_FORWARD_IF_ERROR(grow32(ctx, &l->off, &l->cap_nb, nb, 2));
    }
    if (n > l->cap_n) {
        int64_t nc = n > 2 * l->cap_n ? n : 2 * l->cap_n;
        uint64_t *tup = NULL;
        FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, (size_t)(nc + FB_JR_TUP_PAD) * 8, &tup));
        fb_free(ctx, l->tup, (size_t)(l->cap_n + FB_JR_TUP_PAD) * 8);
        l->tup = tup;
        l->cap_n = nc;
    }
    fb_jr_table t;
    /* 16-bit bounds (in the room of the 32-bit ones) where the probe reads them: half the cache */
    if (!js->pairs && jk->jr_off16 && n <= FB_JR_OFF16_MAX)
        fb_jr_build16(&t, l->seg, l->seg_n, (int)nseg, js->bits, lb, (uint16_t *)l->off, l->tup);
    else
        fb_jr_build(&t, l->seg, l->seg_n, (int)nseg, js->bits, lb, l->off, l->tup);
    for (int w = 0; w < ps->workers; w++) {
        for (fb_jchunk *c = ps->heads[w][p]; c; c = c->next) {
            if (!js->pairs) {
                jk->jr_probe_sum(&t, chunk_data(c), c->n, &l->count, &l->sum);
                continue;
            }
            int64_t i = 0;
            uint32_t j = 0;
            while (i < c->n) {
                FB_FORWARD_IF_ERROR(pairs_room(ctx, l));
                fb_jpairs *b = l->pairs;
                b->n += fb_jr_probe_pairs(&t, chunk_data(c), c->n, &i, &j, pairs_b(b) + b->n, pairs_p(b) + b->n,
                                          FB_JPAIRS_CAP - b->n);
            }
        }
    }
    return FB_OK;
}

static fb_status parts_join_sink(void *user, void *global, void *local, const fb_chunk *c)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    for (int64_t r = 0; r < c->rows; r++) {
        count_placement(js, ((fb_jlocal_out *)local)->node, c->row_begin + r);
        FB_FORWARD_IF_ERROR(join_partition(js, local, c->row_begin + r));
    }
    return FB_OK;
}

/* ---- non-partitioned: the shared table ----------------------------------------------------------- */

static fb_status shared_init_global(void *user, fb_ctx *ctx, void **global)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    size_t hb = ((size_t)1 << js->lb) * 4, eb = (size_t)js->build_rows * 16;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, hb, &js->head));
    fb_status st = FB_ALLOC(ctx, eb ? eb : 16, &js->ent);
    if (st != FB_OK) {
        fb_free(ctx, js->head, hb);
        js->head = NULL;
        return st;
    }
    advise_huge(js->head, hb);
    advise_huge(js->ent, eb);
    memset(js->head, 0, hb);
    *global = js;
    return FB_OK;
}

static void shared_destroy_global(void *user, void *global)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    if (!global)
        return;
    size_t eb = (size_t)js->build_rows * 16;
    fb_free(js->ctx, js->head, ((size_t)1 << js->lb) * 4);
    fb_free(js->ctx, js->ent, eb ? eb : 16);
    js->head = js->ent = NULL;
}

/* Inserts build row `row`: its entry first, then an atomic exchange makes it the bucket's head. */
static inline void shared_insert(fb_jstate *js, int shift, uint32_t k, uint32_t v, int64_t row)
{
    uint32_t *e = js->ent + (size_t)row * 4;
    e[0] = k;
    e[1] = v;
    e[3] = 0;
    e[2] = __atomic_exchange_n(&js->head[fb_jr_hash(k) >> shift], (uint32_t)(row + 1), __ATOMIC_RELAXED);
}

static fb_status shared_build_sink(void *user, void *global, void *local, const fb_chunk *c)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    const uint32_t *keys = NULL, *vals = NULL;
    const uint8_t *valid = NULL;
    int64_t voff = 0;
    FB_FORWARD_IF_ERROR(chunk_side(js, c, &keys, &vals, &valid, &voff));
    int shift = 32 - js->lb;
    int64_t n = c->sel ? c->n_sel : c->rows;
    for (int64_t j = 0; j < n; j++) {
        int64_t i = c->sel ? (int64_t)c->sel[j] : j;
        if (valid && !((valid[(voff + i) >> 3] >> ((voff + i) & 7)) & 1))
            continue;
        shared_insert(js, shift, keys[i], vals ? vals[i] : 0, c->row_begin + i);
    }
    return FB_OK;
}

static fb_status shared_probe_sink(void *user, void *global, void *local, const fb_chunk *c)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_jlocal_out *l = local;
    const uint32_t *keys = NULL, *vals = NULL;
    const uint8_t *valid = NULL;
    int64_t voff = 0;
    FB_FORWARD_IF_ERROR(chunk_side(js, c, &keys, &vals, &valid, &voff));
    fb_jr_shared t = {js->head, js->ent, js->lb};
    /* a selection is walked one row at a time (no plan puts a filter here yet) */
    int64_t runs = c->sel ? c->n_sel : 1;
    for (int64_t r = 0; r < runs; r++) {
        int64_t s = c->sel ? (int64_t)c->sel[r] : 0, n = c->sel ? 1 : c->rows;
        if (!js->pairs) {
            fb_jr_shared_probe_sum(&t, keys + s, vals + s, valid, voff + s, n, &l->count, &l->sum);
            continue;
        }
        int64_t i = 0;
        uint32_t j = 0;
        while (i < n) {
            FB_FORWARD_IF_ERROR(pairs_room(js->ctx, l));
            fb_jpairs *b = l->pairs;
            b->n += fb_jr_shared_probe_pairs(&t, keys + s, valid, voff + s, n, c->row_begin + s, &i, &j,
                                             pairs_b(b) + b->n, pairs_p(b) + b->n, FB_JPAIRS_CAP - b->n);
        }
    }
    return FB_OK;
}

/* ---- assembling the pipelines -------------------------------------------------------------------- */

static fb_status check_side(fb_ctx *ctx, const fb_column *key, const fb_column *val, int pairs, const char *name)
{
    FB_FORWARD_IF_ERROR(fb_check_column(ctx, key, "fb_pipeline_add_join", name));
    FB_RETURN_ERROR_IF(key->type != FB_TYPE_INT32 && key->type != FB_TYPE_UINT32 && key->type != FB_TYPE_DATE32, ctx,
                       FB_ERR_UNSUPPORTED_TYPE, "the %s key has type %s; this join takes 32-bit keys", name,
                       fb_type_name(key->type));
    FB_RETURN_ERROR_IF(key->length >= ((int64_t)1 << 32) - 1, ctx, FB_ERR_CAPACITY,
                       "the %s side has %lld rows; this join takes fewer than 2^32", name, (long long)key->length);
    if (!pairs) {
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, val, "fb_pipeline_add_join", name));
        FB_RETURN_ERROR_IF(val->type != FB_TYPE_INT32, ctx, FB_ERR_UNSUPPORTED_TYPE,
                           "the %s value has type %s; the sum takes int32", name, fb_type_name(val->type));
        FB_RETURN_ERROR_IF(val->validity != NULL, ctx, FB_ERR_UNSUPPORTED_TYPE,
                           "the %s value column has a validity bitmap; the sum takes values without nulls", name);
        FB_RETURN_ERROR_IF(val->length != key->length, ctx, FB_ERR_LENGTH_MISMATCH,
                           "the %s side has %lld keys and %lld values", name, (long long)key->length,
                           (long long)val->length);
    }
    return FB_OK;
}

/* Algorithm and partitioning for a build side of `rows` rows on this machine. */
static void plan_join(fb_ctx *ctx, const fb_join_input *in, fb_jstate *js)
{
    fb_topology_info info;
    memset(&info, 0, sizeof info);
    (void)fb_topology_get_info(ctx, &info);
    uint64_t l2 = info.l2_bytes ? info.l2_bytes : (uint64_t)512 << 10;
    uint64_t llc = info.l3_bytes ? info.l3_bytes * (uint64_t)(info.l3_count > 0 ? info.l3_count : 1) : l2;
    int64_t rows = js->build_rows;
    js->lb = 1;
    while (js->lb < 32 && ((int64_t)1 << js->lb) < rows)
        js->lb++;
    uint64_t shared_bytes = ((uint64_t)4 << js->lb) + (uint64_t)rows * 16;
    js->algo = fb_ctx_join_algorithm(ctx);
    /* The shared table only where it fits in a core's L2: on the 2-core Zen 4 VM the shared probe ran
     * 2x (J3, 1M build rows, table in the L3) to 5x (J4, duplicates) slower than radix partitioning,
     * every miss of its chained buckets being a round trip to a far, shared cache or to memory. */
    (void)llc;
    if (js->algo == FB_JOIN_ALGO_AUTO)
        js->algo = shared_bytes <= l2 ? FB_JOIN_ALGO_NON_PARTITIONED : FB_JOIN_ALGO_RADIX;
    /* partitions of about l2/64 build tuples: table (10-16 bytes a tuple) in a quarter of the L2. But the
     * scatter's cost a row rises steeply once the cursor lines of its partitions (64 bytes each) no
     * longer fit the L1 (Zen 4, 32 KiB L1: 2.2-2.5 ns a row at 2^8 partitions, 2.4-2.9 at 2^9, 4.1-5.7
     * at 2^10), so past that point partitions grow to l2/32 tuples before more bits are taken (J1 at
     * scale 1: 2^9 partitions of 32K build tuples, not 2^10 of 16K, about 20% less time in all). */
    int64_t target = (int64_t)(l2 / 64);
    uint64_t l1 = info.l1d_bytes ? info.l1d_bytes : (uint64_t)32 << 10;
    int l1_bits = 0;
    while (((uint64_t)64 << (l1_bits + 1)) <= l1)
        l1_bits++;
    int bits = 0;
    while (bits < 14 && (rows >> bits) > target && (bits < l1_bits || (rows >> bits) > 2 * target))
        bits++;
    if (in->radix_bits >= 0)
        bits = in->radix_bits;
    js->bits = bits;
    js->parts = (int64_t)1 << bits;
    /* chunks hold about half of a worker's expected share of a partition, 64..4096 tuples */
    int64_t side_rows = in->build_key.length > in->probe_key.length ? in->build_key.length : in->probe_key.length;
    int64_t share = side_rows / (js->parts * js->threads) / 2;
    js->chunk_tuples = 64;
    while (js->chunk_tuples < 4096 && js->chunk_tuples < share)
        js->chunk_tuples *= 2;
    /* slabs: room for two chunks per partition, or a quarter of a worker's share of the larger side
     * (few mappings, each large enough for transparent huge pages), 1..64 MiB */
    size_t want = (size_t)js->parts * chunk_bytes(js) * 2, share_bytes = (size_t)side_rows * 8 / (size_t)js->threads / 4;
    if (share_bytes > want)
        want = share_bytes;
    js->slab_bytes = want < ((size_t)1 << 20) ? ((size_t)1 << 20) : want > ((size_t)64 << 20) ? ((size_t)64 << 20) : want;
}

static fb_status add_side_source(fb_ctx *ctx, const fb_jstate *js, int side, fb_source *src)
{
    const fb_join_input *in = &js->in;
    fb_column cols[2] = {side ? in->probe_key : in->build_key, side ? in->probe_val : in->build_val};
    fb_table t = {js->pairs ? 1 : 2, cols, NULL};
    return fb_source_table(ctx, &t, in->morsel_rows, src);
}

static fb_sink make_sink(const char *name, fb_juser *u)
{
    fb_sink s;
    memset(&s, 0, sizeof s);
    s.name = name;
    s.destroy = juser_destroy;
    s.user = u;
    return s;
}

static fb_sink out_sink(const char *name, fb_juser *u,
                        fb_status (*sink)(void *user, void *global, void *local, const fb_chunk *chunk))
{
    fb_sink s = make_sink(name, u);
    s.init_global = out_init_global;
    s.destroy_global = out_destroy_global;
    s.init_local = out_init_local;
    s.destroy_local = out_destroy_local;
    s.sink = sink;
    s.combine = out_combine;
    s.finalize = out_finalize;
    return s;
}

/* Adds one pipeline: the source (already made), a sink on a new handle of js. */
static fb_status add_one(fb_query *q, fb_jstate *js, const char *name, fb_source *src, int side, fb_sink proto,
                         fb_pipeline **out)
{
    fb_juser *u = NULL;
    fb_status st = juser_make(js, side, &u);
    if (st != FB_OK) {
        src->destroy(src->user);
        return st;
    }
    proto.user = u;
    proto.destroy = juser_destroy;
    return fb_query_add_pipeline(q, name, src, NULL, 0, &proto, out);
}

fb_status fb_pipeline_add_join(fb_query *q, const fb_join_input *in, fb_join_result *result)
{
    FB_RETURN_ERROR_IF(!q, NULL, FB_ERR_INVALID_ARG, "q must not be NULL");
    fb_ctx *ctx = q->ctx;
    FB_RETURN_ERROR_IF(!in || !result, ctx, FB_ERR_INVALID_ARG, "in and result must not be NULL");
    FB_RETURN_ERROR_IF(in->output != FB_JOIN_OUTPUT_COUNT_SUM && in->output != FB_JOIN_OUTPUT_PAIRS, ctx,
                       FB_ERR_INVALID_ARG, "unknown join output %d", (int)in->output);
    FB_RETURN_ERROR_IF(in->radix_bits < -1 || in->radix_bits > 14, ctx, FB_ERR_INVALID_ARG,
                       "radix_bits %d is outside -1..14", in->radix_bits);
    int pairs = in->output == FB_JOIN_OUTPUT_PAIRS;
    FB_FORWARD_IF_ERROR(check_side(ctx, &in->build_key, &in->build_val, pairs, "build"));
    FB_FORWARD_IF_ERROR(check_side(ctx, &in->probe_key, &in->probe_val, pairs, "probe"));
    FB_RETURN_ERROR_IF((in->build_key.type == FB_TYPE_UINT32) != (in->probe_key.type == FB_TYPE_UINT32), ctx,
                       FB_ERR_UNSUPPORTED_TYPE, "the keys have types %s and %s", fb_type_name(in->build_key.type),
                       fb_type_name(in->probe_key.type));
    memset(result, 0, sizeof *result);
    fb_jstate *js = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *js, &js));
    memset(js, 0, sizeof *js);
    js->ctx = ctx;
    js->refs = 1; /* this function's, dropped at the end */
    js->in = *in;
    js->result = result;
    js->pairs = pairs;
    js->threads = fb_ctx_threads(ctx);
    js->build_rows = in->build_key.length;
    js->nodes = fb_numa_nodes(ctx);
    js->info = result;
    plan_join(ctx, in, js);

    fb_status st;
    fb_source sb, sp;
    if (js->algo == FB_JOIN_ALGO_NON_PARTITIONED) {
        fb_pipeline *pb = NULL, *pp = NULL;
        fb_sink build = make_sink("shared_build", NULL);
        build.init_global = shared_init_global;
        build.destroy_global = shared_destroy_global;
        build.sink = shared_build_sink;
        st = add_side_source(ctx, js, 0, &sb);
        if (st == FB_OK)
            st = add_one(q, js, "join-build", &sb, 0, build, &pb);
        if (st == FB_OK)
            st = add_side_source(ctx, js, 1, &sp);
        if (st == FB_OK)
            st = add_one(q, js, "join-probe", &sp, 1, out_sink("shared_probe", NULL, shared_probe_sink), &pp);
        if (st == FB_OK)
            st = fb_pipeline_depends_on(pp, pb);
    } else {
        fb_pipeline *pb = NULL, *pp = NULL, *pj = NULL;
        fb_sink part = make_sink("radix_partition", NULL);
        part.init_global = part_init_global;
        part.destroy_global = part_destroy_global;
        part.init_local = part_init_local;
        part.destroy_local = part_destroy_local;
        part.sink = part_sink;
        part.combine = part_combine;
        st = add_side_source(ctx, js, 0, &sb);
        if (st == FB_OK)
            st = add_one(q, js, "join-partition-build", &sb, 0, part, &pb);
        if (st == FB_OK)
            st = add_side_source(ctx, js, 1, &sp);
        if (st == FB_OK)
            st = add_one(q, js, "join-partition-probe", &sp, 1, part, &pp);
        fb_juser *u = NULL;
        if (st == FB_OK)
            st = juser_make(js, 0, &u);
        if (st == FB_OK) {
            fb_source parts;
            memset(&parts, 0, sizeof parts);
            parts.name = "partitions";
            parts.init_global = parts_init_global;
            parts.destroy_global = parts_destroy_global;
            parts.next_morsel = parts_next_morsel;
            parts.scan = parts_scan;
            parts.destroy = juser_destroy;
            parts.user = u;
            st = add_one(q, js, "join-partitions", &parts, 0, out_sink("partition_join", NULL, parts_join_sink), &pj);
        }
        if (st == FB_OK)
            st = fb_pipeline_depends_on(pj, pb);
        if (st == FB_OK)
            st = fb_pipeline_depends_on(pj, pp);
    }
    jstate_release(js);
    return st;
}

void fb_join_result_free(fb_ctx *ctx, fb_join_result *r)
{
    if (!r)
        return;
    free_pairs(ctx, r->owner);
    if (r->blocks)
        fb_free(ctx, r->blocks, (size_t)(r->n_blocks ? r->n_blocks : 1) * sizeof *r->blocks);
    r->owner = NULL;
    r->blocks = NULL;
    r->n_blocks = 0;
}

fb_status fb_run_join(fb_ctx *ctx, const fb_join_input *in, fb_join_result *result)
{
    FB_RETURN_ERROR_IF(!ctx || !result, ctx, FB_ERR_INVALID_ARG, "ctx and result must not be NULL");
    memset(result, 0, sizeof *result);
    fb_query *q = NULL;
    FB_FORWARD_IF_ERROR(fb_query_create(ctx, &q));
    fb_join_result r;
    fb_status st = fb_pipeline_add_join(q, in, &r);
    if (st == FB_OK)
        st = fb_query_run(q);
    fb_query_destroy(q);
    if (st == FB_OK)
        *result = r;
    return st;
}

/* ==== the general join (fb_join.h: fb_query_add_join, fb_query_add_join_agg, fb_join_run) ==========
 *
 * Any join type over 1..4 key columns, on the kernel hash table (kernels/join.c), so every type and
 * key gets the kernels' semantics and per-ISA probes:
 * - non-partitioned: one fb_hash_table over the whole build side, sized for it up front, its morsels
 *   inserted by every worker at once (fb_hash_table_build_shared: compare-and-swap on buckets and
 *   chains; build ids = build row positions), probed by the operator on each probe chunk;
 * - radix: both sides scattered by the low bits of fb_hash_columns() into records (row id with bit 63
 *   set for a probe row with a null key, then the keys widened to 64 bits) in chunks on the partition's
 *   node; the operator builds a partition's table from its build records (ids = record numbers, mapped
 *   back to row ids) and probes its probe records. Null build rows are dropped; a null probe row goes
 *   to partition (row id mod partitions) and matches nothing there (its key columns are null).
 * The operator writes its output in chunks of at most FB_JOP_CAP rows. */

#define FB_JOP_CAP 16384

static int64_t gkey(const fb_column *c, int64_t i)
{
    int64_t j = c->offset + i;
    switch (c->type) {
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32:
        return ((const int32_t *)c->data)[j];
    case FB_TYPE_UINT32:
        return (int64_t)((const uint32_t *)c->data)[j];
    default:
        return ((const int64_t *)c->data)[j];
    }
}

static int gvalid(const fb_column *c, int64_t i)
{
    if (!c->validity)
        return 1;
    int64_t j = c->offset + i;
    return (c->validity[j >> 3] >> (j & 7)) & 1;
}

/* ---- radix: the partition sink of either side ---- */

static fb_status gpart_sink(void *user, void *global, void *local, const fb_chunk *c)
{
    fb_juser *u = user;
    fb_jstate *js = u->js;
    fb_jpart_local *l = local;
    fb_ctx *ctx = js->ctx;
    int nk = js->nk, W = js->W;
    FB_RETURN_ERROR_IF(c->n_columns < (size_t)nk, ctx, FB_ERR_INTERNAL, "the join's partition sink got %zu columns",
                       c->n_columns);
    if (c->rows > l->hash_cap) {
        int64_t *h = NULL;
        FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, (size_t)c->rows * 8, &h));
        fb_free(ctx, l->hash_buf, (size_t)l->hash_cap * 8);
        l->hash_buf = h;
        l->hash_cap = c->rows;
    }
    uint64_t *h = (uint64_t *)l->hash_buf;
    fb_status st = fb_hash_column(ctx, &c->columns[0], h, l->hash_cap);
    for (int k = 1; st == FB_OK && k < nk; k++)
        st = fb_hash_combine(ctx, &c->columns[k], h, l->hash_cap);
    if (st != FB_OK)
        return fb_stage_error(ctx, st, "join partition: %s", fb_last_error(ctx));
    uint64_t mask = (uint64_t)js->parts - 1;
    int64_t n = c->sel ? c->n_sel : c->rows;
    for (int64_t j = 0; j < n; j++) {
        int64_t i = c->sel ? (int64_t)c->sel[j] : j;
        int valid = 1;
        for (int k = 0; k < nk; k++)
            valid &= gvalid(&c->columns[k], i);
        int64_t id = c->row_begin + i;
        if (!valid && u->side == 0)
            continue;
        uint64_t p = valid ? h[i] & mask : (uint64_t)id & mask;
        if (l->cur[p] + W > l->end[p])
            FB_FORWARD_IF_ERROR(part_next_chunk(js, l, (uint32_t)p));
        uint64_t *rec = l->cur[p];
        rec[0] = (uint64_t)id | (valid ? 0 : (uint64_t)1 << 63);
        for (int k = 0; k < nk; k++)
            rec[1 + k] = (uint64_t)gkey(&c->columns[k], i);
        l->cur[p] += W;
    }
    return FB_OK;
}

/* ---- non-partitioned: the shared kernel table ---- */

static fb_status gbuild_init_global(void *user, fb_ctx *ctx, void **global)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_type types[FB_JOIN_MAX_KEYS];
    for (int k = 0; k < js->nk; k++)
        types[k] = js->bkeys[k].type;
    fb_status st = fb_hash_table_create(ctx, types, (size_t)js->nk, js->build_rows, &js->table);
    if (st == FB_OK) {
        st = fb_hash_table_reserve_shared(ctx, js->table, js->build_rows);
        if (st != FB_OK) {
            fb_hash_table_destroy(js->table);
            js->table = NULL;
        }
    }
    if (st != FB_OK)
        return fb_stage_error(ctx, st, "join build: %s", fb_last_error(ctx));
    *global = js;
    return FB_OK;
}

static void gbuild_destroy_global(void *user, void *global)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    if (!global)
        return;
    fb_hash_table_destroy(js->table);
    js->table = NULL;
}

static fb_status gbuild_sink(void *user, void *global, void *local, const fb_chunk *c)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_ctx *ctx = js->ctx;
    fb_status st = FB_OK;
    if (!c->sel) {
        st = fb_hash_table_build_shared(ctx, js->table, c->columns, (size_t)js->nk, c->row_begin);
    } else {
        fb_column one[FB_JOIN_MAX_KEYS];
        for (int64_t j = 0; st == FB_OK && j < c->n_sel; j++) {
            for (int k = 0; k < js->nk; k++) {
                one[k] = c->columns[k];
                one[k].offset += c->sel[j];
                one[k].length = 1;
            }
            st = fb_hash_table_build_shared(ctx, js->table, one, (size_t)js->nk, c->row_begin + c->sel[j]);
        }
    }
    if (st != FB_OK)
        return fb_stage_error(ctx, st, "join build: %s", fb_last_error(ctx));
    return FB_OK;
}

/* ---- the join operator (both algorithms) ---- */

typedef struct fb_gop_local {
    int node;
    int active; /* a batch is being output */
    /* the batch: probe keys, probe ids (ids[i], or base + i), build ids of the table (bmap[b], or b) */
    fb_column keys[FB_JOIN_MAX_KEYS];
    int64_t rows, base, at;
    const int64_t *ids, *bmap;
    const fb_hash_table *t;
    fb_join_cursor cur;
    /* radix: the partition's table and columns */
    fb_hash_table *pt;
    int64_t *bk[FB_JOIN_MAX_KEYS], *pk[FB_JOIN_MAX_KEYS], *bid, *pid;
    uint8_t *pvalid;
    int64_t cap_b, cap_p;
    /* output */
    int64_t *bo, *po;
    uint8_t *mk;
    uint32_t *sel;
    void **pay;
    uint8_t **payv;
    fb_column *cols;
} fb_gop_local;

static size_t gpay_count(const fb_jstate *js) { return js->nbp + js->npp; }

static const fb_column *gpay_col(const fb_jstate *js, size_t c)
{
    return c < js->nbp ? &js->bpay[c] : &js->ppay[c - js->nbp];
}

static void gop_free_part(fb_ctx *ctx, fb_gop_local *l, int nk)
{
    for (int k = 0; k < nk; k++) {
        fb_free(ctx, l->bk[k], (size_t)l->cap_b * 8);
        fb_free(ctx, l->pk[k], (size_t)l->cap_p * 8);
        l->bk[k] = l->pk[k] = NULL;
    }
    fb_free(ctx, l->bid, (size_t)l->cap_b * 8);
    fb_free(ctx, l->pid, (size_t)l->cap_p * 8);
    fb_free(ctx, l->pvalid, (size_t)(l->cap_p + 7) / 8);
    l->bid = l->pid = NULL;
    l->pvalid = NULL;
}

static void gop_destroy_local(void *user, void *global, void *local)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_gop_local *l = local;
    if (!l)
        return;
    fb_ctx *ctx = js->ctx;
    fb_hash_table_destroy(l->pt);
    gop_free_part(ctx, l, js->nk);
    fb_free(ctx, l->bo, FB_JOP_CAP * 8);
    fb_free(ctx, l->po, FB_JOP_CAP * 8);
    fb_free(ctx, l->mk, FB_JOP_CAP);
    fb_free(ctx, l->sel, FB_JOP_CAP * 4);
    size_t np = gpay_count(js);
    for (size_t c = 0; c < np; c++) {
        if (l->pay)
            fb_free(ctx, l->pay[c], FB_JOP_CAP * fb_type_width(gpay_col(js, c)->type));
        if (l->payv)
            fb_free(ctx, l->payv[c], FB_JOP_CAP / 8);
    }
    fb_free(ctx, l->pay, (np ? np : 1) * sizeof *l->pay);
    fb_free(ctx, l->payv, (np ? np : 1) * sizeof *l->payv);
    fb_free(ctx, l->cols, (3 + np) * sizeof *l->cols);
    fb_free(ctx, l, sizeof *l);
}

static fb_status gop_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_ctx *ctx = js->ctx;
    fb_gop_local *l = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *l, &l));
    memset(l, 0, sizeof *l);
    l->node = w->numa_node;
    size_t np = gpay_count(js);
    fb_status st = FB_ALLOC(ctx, FB_JOP_CAP * 8, &l->bo);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, FB_JOP_CAP * 8, &l->po);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, FB_JOP_CAP, &l->mk);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, FB_JOP_CAP * 4, &l->sel);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, (np ? np : 1) * sizeof *l->pay, &l->pay);
    if (st == FB_OK) {
        memset(l->pay, 0, (np ? np : 1) * sizeof *l->pay);
        st = FB_ALLOC(ctx, (np ? np : 1) * sizeof *l->payv, &l->payv);
    }
    if (st == FB_OK) {
        memset(l->payv, 0, (np ? np : 1) * sizeof *l->payv);
        st = FB_ALLOC(ctx, (3 + np) * sizeof *l->cols, &l->cols);
    }
    for (size_t c = 0; st == FB_OK && c < np; c++) {
        st = FB_ALLOC(ctx, FB_JOP_CAP * fb_type_width(gpay_col(js, c)->type), &l->pay[c]);
        if (st == FB_OK)
            st = FB_ALLOC(ctx, FB_JOP_CAP / 8, &l->payv[c]);
    }
    if (st != FB_OK) {
        gop_destroy_local(user, global, l);
        return st;
    }
    *local = l;
    return FB_OK;
}

/* Grows the partition arrays of one side (keys, ids, and for the probe side the validity). */
static fb_status gop_grow(fb_ctx *ctx, fb_gop_local *l, int nk, int probe, int64_t n)
{
    int64_t *cap = probe ? &l->cap_p : &l->cap_b;
    if (n <= *cap)
        return FB_OK;
    int64_t nc = n > 2 * *cap ? n : 2 * *cap;
    int64_t **keys = probe ? l->pk : l->bk, **ids = probe ? &l->pid : &l->bid;
    int64_t *nkeys[FB_JOIN_MAX_KEYS] = {NULL}, *nids = NULL;
    uint8_t *nv = NULL;
    fb_status st = FB_ALLOC(ctx, (size_t)nc * 8, &nids);
    for (int k = 0; st == FB_OK && k < nk; k++)
        st = FB_ALLOC(ctx, (size_t)nc * 8, &nkeys[k]);
    if (st == FB_OK && probe)
        st = FB_ALLOC(ctx, (size_t)(nc + 7) / 8, &nv);
    if (st != FB_OK) {
        fb_free(ctx, nids, (size_t)nc * 8);
        for (int k = 0; k < nk; k++)
            fb_free(ctx, nkeys[k], (size_t)nc * 8);
        return st;
    }
    fb_free(ctx, *ids, (size_t)*cap * 8);
    *ids = nids;
    for (int k = 0; k < nk; k++) {
        fb_free(ctx, keys[k], (size_t)*cap * 8);
        keys[k] = nkeys[k];
    }
    if (probe) {
        fb_free(ctx, l->pvalid, (size_t)(*cap + 7) / 8);
        l->pvalid = nv;
    }
    *cap = nc;
    return FB_OK;
}

/* Reads partition p's records of one side into the local arrays; returns the rows (and whether a
 * probe row has a null key). */
static int64_t gop_gather_side(const fb_jstate *js, fb_gop_local *l, const fb_jside *sd, int64_t p, int probe,
                               int *nulls)
{
    int nk = js->nk, W = js->W;
    int64_t **keys = probe ? l->pk : l->bk, *ids = probe ? l->pid : l->bid;
    int64_t r = 0;
    *nulls = 0;
    for (int w = 0; w < sd->workers; w++)
        for (fb_jchunk *c = sd->heads[w][p]; c; c = c->next) {
            const uint64_t *d = chunk_data(c);
            for (int64_t x = 0; x < c->n; x += W, r++) {
                uint64_t id = d[x];
                ids[r] = (int64_t)(id & ~((uint64_t)1 << 63));
                for (int k = 0; k < nk; k++)
                    keys[k][r] = (int64_t)d[x + 1 + k];
                if (probe) {
                    int valid = !(id >> 63);
                    if (!valid)
                        *nulls = 1;
                    if (valid)
                        l->pvalid[r >> 3] |= (uint8_t)(1u << (r & 7));
                    else
                        l->pvalid[r >> 3] &= (uint8_t)~(1u << (r & 7));
                }
            }
        }
    return r;
}

/* Builds partition p's table and makes its probe rows the batch. */
static fb_status gop_partition(fb_jstate *js, fb_gop_local *l, int64_t p)
{
    fb_ctx *ctx = js->ctx;
    int nk = js->nk;
    int64_t nb = js->side[0]->count[p] / js->W, np = js->side[1]->count[p] / js->W;
    FB_FORWARD_IF_ERROR(gop_grow(ctx, l, nk, 0, nb));
    FB_FORWARD_IF_ERROR(gop_grow(ctx, l, nk, 1, np));
    int nulls;
    (void)gop_gather_side(js, l, js->side[0], p, 0, &nulls);
    (void)gop_gather_side(js, l, js->side[1], p, 1, &nulls);
    fb_hash_table_destroy(l->pt);
    l->pt = NULL;
    fb_type types[FB_JOIN_MAX_KEYS];
    fb_column bcols[FB_JOIN_MAX_KEYS];
    for (int k = 0; k < nk; k++) {
        types[k] = FB_TYPE_INT64;
        bcols[k] = fb_column_make(FB_TYPE_INT64, l->bk[k], nb, NULL);
        l->keys[k] = fb_column_make(FB_TYPE_INT64, l->pk[k], np, nulls ? l->pvalid : NULL);
    }
    fb_status st = fb_hash_table_create(ctx, types, (size_t)nk, nb, &l->pt);
    if (st == FB_OK && nb > 0)
        st = fb_hash_table_build(ctx, l->pt, bcols, (size_t)nk, 0);
    if (st != FB_OK)
        return fb_stage_error(ctx, st, "join partition %lld: %s", (long long)p, fb_last_error(ctx));
    l->t = l->pt;
    l->rows = np;
    l->base = 0;
    l->ids = l->pid;
    l->bmap = l->bid;
    return FB_OK;
}

/* Writes the next output of the batch into the local buffers: returns the rows, *more = 1 when the
 * batch has more. */
static fb_status gop_emit(fb_jstate *js, fb_gop_local *l, int64_t *n_out, int *more)
{
    fb_ctx *ctx = js->ctx;
    int64_t n = 0;
    fb_status st = FB_OK;
    if (js->type == FB_JOIN_INNER || js->type == FB_JOIN_LEFT) {
        fb_join_pairs pr = {l->bo, l->po, FB_JOP_CAP, 0, 0};
        st = fb_hash_table_probe(ctx, l->t, l->keys, (size_t)js->nk, js->type, 0, &l->cur, &pr);
        n = pr.length;
        *more = st == FB_OK && pr.more;
        for (int64_t i = 0; i < n; i++) {
            l->po[i] = l->ids ? l->ids[l->po[i]] : l->base + l->po[i];
            if (l->bo[i] >= 0 && l->bmap)
                l->bo[i] = l->bmap[l->bo[i]];
            l->mk[i] = l->bo[i] >= 0;
        }
    } else {
        int64_t m = l->rows - l->at < FB_JOP_CAP ? l->rows - l->at : FB_JOP_CAP;
        fb_column slice[FB_JOIN_MAX_KEYS];
        for (int k = 0; k < js->nk; k++) {
            slice[k] = l->keys[k];
            slice[k].offset += l->at;
            slice[k].length = m;
        }
        if (js->type == FB_JOIN_MARK) {
            fb_column_out o = {FB_TYPE_UINT8, FB_JOP_CAP, l->mk, NULL, 0, 0};
            st = fb_hash_table_probe_mark(ctx, l->t, slice, (size_t)js->nk, &o);
            n = m;
            for (int64_t i = 0; i < n; i++)
                l->po[i] = l->at + i;
        } else {
            st = fb_hash_table_probe_select(ctx, l->t, slice, (size_t)js->nk, js->type, l->sel, FB_JOP_CAP, &n);
            for (int64_t i = 0; i < n; i++) {
                l->po[i] = l->at + l->sel[i];
                l->mk[i] = js->type == FB_JOIN_SEMI;
            }
        }
        for (int64_t i = 0; i < n; i++) {
            l->po[i] = l->ids ? l->ids[l->po[i]] : l->base + l->po[i];
            l->bo[i] = -1;
        }
        l->at += m;
        *more = l->at < l->rows;
    }
    if (st != FB_OK)
        return fb_stage_error(ctx, st, "join probe: %s", fb_last_error(ctx));
    *n_out = n;
    return FB_OK;
}

static fb_status gop_execute(void *user, void *global, void *local, const fb_chunk *in, fb_chunk *out,
                             fb_op_result *result)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_gop_local *l = local;
    fb_ctx *ctx = js->ctx;
    if (!l->active) {
        if (js->algo == FB_JOIN_ALGO_RADIX) {
            count_placement(js, l->node, in->row_begin);
            FB_FORWARD_IF_ERROR(gop_partition(js, l, in->row_begin));
        } else {
            FB_RETURN_ERROR_IF(in->n_columns < (size_t)js->nk || in->sel, ctx, FB_ERR_INTERNAL,
                               "the join probe got a chunk of %zu columns%s", in->n_columns,
                               in->sel ? " with a selection" : "");
            for (int k = 0; k < js->nk; k++)
                l->keys[k] = in->columns[k];
            l->t = js->table;
            l->rows = in->rows;
            l->base = in->row_begin;
            l->ids = l->bmap = NULL;
        }
        l->at = 0;
        l->cur = (fb_join_cursor)FB_JOIN_CURSOR_INIT;
        l->active = 1;
    }
    int64_t n = 0;
    int more = 0;
    fb_status st = gop_emit(js, l, &n, &more);
    if (st != FB_OK) {
        l->active = 0;
        return st;
    }
    l->active = more;
    *result = more ? FB_OP_HAVE_MORE_OUTPUT : FB_OP_NEED_MORE_INPUT;
    l->cols[0] = fb_column_make(FB_TYPE_INT64, l->bo, n, NULL);
    l->cols[1] = fb_column_make(FB_TYPE_INT64, l->po, n, NULL);
    l->cols[2] = fb_column_make(FB_TYPE_UINT8, l->mk, n, NULL);
    size_t np = gpay_count(js);
    for (size_t c = 0; c < np; c++) {
        const fb_column *src = gpay_col(js, c);
        fb_column_out o = {src->type, FB_JOP_CAP, l->pay[c], l->payv[c], 0, 0};
        st = fb_gather(ctx, src, c < js->nbp ? l->bo : l->po, n, &o);
        if (st != FB_OK)
            return fb_stage_error(ctx, st, "join gather: %s", fb_last_error(ctx));
        l->cols[3 + c] = fb_column_make(src->type, l->pay[c], n, o.null_count ? l->payv[c] : NULL);
    }
    memset(out, 0, sizeof *out);
    out->rows = n;
    out->n_columns = 3 + np;
    out->columns = l->cols;
    out->n_sel = n;
    return FB_OK;
}

/* ---- the collector of fb_join_run() ---- */

static fb_status collect_sink(void *user, void *global, void *local, const fb_chunk *c)
{
    fb_jstate *js = ((fb_juser *)user)->js;
    fb_jlocal_out *l = local;
    const int64_t *bo = c->columns[0].data, *po = c->columns[1].data;
    const uint8_t *mk = c->columns[2].data;
    int64_t n = c->rows, at = 0;
    while (at < n) {
        FB_FORWARD_IF_ERROR(pairs_room(js->ctx, l));
        fb_jpairs *b = l->pairs;
        int64_t k = FB_JPAIRS_CAP - b->n < n - at ? FB_JPAIRS_CAP - b->n : n - at;
        memcpy(pairs_b(b) + b->n, bo + at, (size_t)k * 8);
        memcpy(pairs_p(b) + b->n, po + at, (size_t)k * 8);
        memcpy(pairs_m(b) + b->n, mk + at, (size_t)k);
        b->n += k;
        at += k;
    }
    return FB_OK;
}

/* ---- assembling ---- */

static fb_status gcheck(fb_ctx *ctx, const fb_join_spec *spec)
{
    FB_RETURN_ERROR_IF(!spec, ctx, FB_ERR_INVALID_ARG, "spec must not be NULL");
    FB_RETURN_ERROR_IF((unsigned)spec->type > FB_JOIN_MARK, ctx, FB_ERR_INVALID_ARG, "unknown join type %d",
                       (int)spec->type);
    FB_RETURN_ERROR_IF(spec->n_keys < 1 || spec->n_keys > FB_JOIN_MAX_KEYS, ctx, FB_ERR_INVALID_ARG,
                       "a join has 1..%d key columns, not %zu", FB_JOIN_MAX_KEYS, spec->n_keys);
    FB_RETURN_ERROR_IF(!spec->build_keys || !spec->probe_keys, ctx, FB_ERR_INVALID_ARG, "the key columns must not be NULL");
    FB_RETURN_ERROR_IF(spec->radix_bits < -1 || spec->radix_bits > 14, ctx, FB_ERR_INVALID_ARG,
                       "radix_bits %d is outside -1..14", spec->radix_bits);
    FB_RETURN_ERROR_IF(spec->n_build_payload > 16 || spec->n_probe_payload > 16, ctx, FB_ERR_INVALID_ARG,
                       "at most 16 payload columns per side");
    FB_RETURN_ERROR_IF((spec->n_build_payload && !spec->build_payload) || (spec->n_probe_payload && !spec->probe_payload),
                       ctx, FB_ERR_INVALID_ARG, "payload columns must not be NULL");
    FB_RETURN_ERROR_IF(spec->n_build_payload && spec->type != FB_JOIN_INNER && spec->type != FB_JOIN_LEFT, ctx,
                       FB_ERR_INVALID_ARG, "a semi, anti or mark join has no build payload");
    FB_RETURN_ERROR_IF(spec->morsel_rows < 0 || spec->morsel_rows > FB_MORSEL_MAX_ROWS, ctx, FB_ERR_INVALID_ARG,
                       "morsel_rows %lld is out of range", (long long)spec->morsel_rows);
    for (size_t k = 0; k < spec->n_keys; k++) {
        const fb_column *b = &spec->build_keys[k], *p = &spec->probe_keys[k];
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, b, "fb_query_add_join", "build key"));
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, p, "fb_query_add_join", "probe key"));
        fb_type t = b->type;
        FB_RETURN_ERROR_IF(t != FB_TYPE_INT32 && t != FB_TYPE_INT64 && t != FB_TYPE_DATE32 && t != FB_TYPE_UINT32 &&
                               t != FB_TYPE_UINT64,
                           ctx, FB_ERR_UNSUPPORTED_TYPE, "build key %zu has type %s", k, fb_type_name(t));
        FB_RETURN_ERROR_IF(p->type != t, ctx, FB_ERR_UNSUPPORTED_TYPE, "key %zu has types %s and %s", k,
                           fb_type_name(t), fb_type_name(p->type));
        FB_RETURN_ERROR_IF(b->length != spec->build_keys[0].length || p->length != spec->probe_keys[0].length, ctx,
                           FB_ERR_LENGTH_MISMATCH, "the key columns of a side differ in length");
    }
    for (size_t c = 0; c < spec->n_build_payload; c++) {
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, &spec->build_payload[c], "fb_query_add_join", "build payload"));
        FB_RETURN_ERROR_IF(spec->build_payload[c].length != spec->build_keys[0].length, ctx, FB_ERR_LENGTH_MISMATCH,
                           "build payload %zu has %lld rows, the keys %lld", c,
                           (long long)spec->build_payload[c].length, (long long)spec->build_keys[0].length);
    }
    for (size_t c = 0; c < spec->n_probe_payload; c++) {
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, &spec->probe_payload[c], "fb_query_add_join", "probe payload"));
        FB_RETURN_ERROR_IF(spec->probe_payload[c].length != spec->probe_keys[0].length, ctx, FB_ERR_LENGTH_MISMATCH,
                           "probe payload %zu has %lld rows, the keys %lld", c,
                           (long long)spec->probe_payload[c].length, (long long)spec->probe_keys[0].length);
    }
    return FB_OK;
}

/* The state of a general join, planned. */
static fb_status gmake(fb_ctx *ctx, const fb_join_spec *spec, fb_join_result *info, fb_jstate **out)
{
    fb_jstate *js = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *js, &js));
    memset(js, 0, sizeof *js);
    js->ctx = ctx;
    js->refs = 1;
    js->general = 1;
    js->type = spec->type;
    js->nk = (int)spec->n_keys;
    js->W = 1 + js->nk;
    js->info = info;
    js->threads = fb_ctx_threads(ctx);
    js->nodes = fb_numa_nodes(ctx);
    js->build_rows = spec->build_keys[0].length;
    for (int k = 0; k < js->nk; k++) {
        js->bkeys[k] = spec->build_keys[k];
        js->pkeys[k] = spec->probe_keys[k];
    }
    fb_status st = FB_OK;
    if (spec->n_build_payload) {
        st = FB_ALLOC(ctx, spec->n_build_payload * sizeof *js->bpay, &js->bpay);
        if (st == FB_OK) {
            js->nbp = spec->n_build_payload;
            memcpy(js->bpay, spec->build_payload, js->nbp * sizeof *js->bpay);
        }
    }
    if (st == FB_OK && spec->n_probe_payload) {
        st = FB_ALLOC(ctx, spec->n_probe_payload * sizeof *js->ppay, &js->ppay);
        if (st == FB_OK) {
            js->npp = spec->n_probe_payload;
            memcpy(js->ppay, spec->probe_payload, js->npp * sizeof *js->ppay);
        }
    }
    if (st != FB_OK) {
        jstate_release(js);
        return st;
    }
    fb_join_input in;
    memset(&in, 0, sizeof in);
    in.build_key = spec->build_keys[0];
    in.probe_key = spec->probe_keys[0];
    in.radix_bits = spec->radix_bits;
    in.morsel_rows = spec->morsel_rows;
    js->in = in;
    plan_join(ctx, &in, js);
    if (fb_ctx_join_algorithm(ctx) == FB_JOIN_ALGO_AUTO) {
        /* the kernel table: about 2 buckets of (nk + 2) words and a chain entry per row */
        fb_topology_info ti;
        memset(&ti, 0, sizeof ti);
        (void)fb_topology_get_info(ctx, &ti);
        uint64_t l2 = ti.l2_bytes ? ti.l2_bytes : (uint64_t)512 << 10;
        uint64_t bytes = (uint64_t)js->build_rows * (uint64_t)(16 * (js->nk + 2) + 16);
        js->algo = bytes <= l2 ? FB_JOIN_ALGO_NON_PARTITIONED : FB_JOIN_ALGO_RADIX;
    }
    /* records of W words: chunks of the planned record count */
    js->chunk_tuples *= js->W;
    if (js->slab_bytes < chunk_bytes(js) + 64)
        js->slab_bytes = chunk_bytes(js) + 64;
    if (info) {
        info->algorithm = js->algo;
        info->radix_bits = js->algo == FB_JOIN_ALGO_RADIX ? js->bits : 0;
    }
    *out = js;
    return FB_OK;
}

static fb_status side_source(fb_ctx *ctx, const fb_jstate *js, int side, fb_source *src)
{
    fb_table t = {(size_t)js->nk, side ? (fb_column *)js->pkeys : (fb_column *)js->bkeys, NULL};
    return fb_source_table(ctx, &t, js->in.morsel_rows, src);
}

/* Adds the build side's pipelines (deps) and makes the probe pipeline's source and join operator. */
static fb_status gadd_front(fb_query *q, fb_jstate *js, fb_source *src, fb_operator *op, fb_pipeline **deps,
                            int *n_deps)
{
    fb_ctx *ctx = js->ctx;
    fb_status st;
    fb_source sb, sp;
    *n_deps = 0;
    if (js->algo == FB_JOIN_ALGO_NON_PARTITIONED) {
        fb_sink build = make_sink("join_build", NULL);
        build.init_global = gbuild_init_global;
        build.destroy_global = gbuild_destroy_global;
        build.sink = gbuild_sink;
        st = side_source(ctx, js, 0, &sb);
        if (st == FB_OK)
            st = add_one(q, js, "join-build", &sb, 0, build, &deps[0]);
        if (st != FB_OK)
            return st;
        *n_deps = 1;
        FB_FORWARD_IF_ERROR(side_source(ctx, js, 1, src));
    } else {
        fb_sink part = make_sink("radix_partition", NULL);
        part.init_global = part_init_global;
        part.destroy_global = part_destroy_global;
        part.init_local = part_init_local;
        part.destroy_local = part_destroy_local;
        part.sink = gpart_sink;
        part.combine = part_combine;
        st = side_source(ctx, js, 0, &sb);
        if (st == FB_OK)
            st = add_one(q, js, "join-partition-build", &sb, 0, part, &deps[0]);
        if (st == FB_OK)
            st = side_source(ctx, js, 1, &sp);
        if (st == FB_OK)
            st = add_one(q, js, "join-partition-probe", &sp, 1, part, &deps[1]);
        if (st != FB_OK)
            return st;
        *n_deps = 2;
        fb_juser *u = NULL;
        FB_FORWARD_IF_ERROR(juser_make(js, 0, &u));
        memset(src, 0, sizeof *src);
        src->name = "partitions";
        src->init_global = parts_init_global;
        src->destroy_global = parts_destroy_global;
        src->next_morsel = parts_next_morsel;
        src->scan = parts_scan;
        src->destroy = juser_destroy;
        src->user = u;
    }
    fb_juser *u = NULL;
    st = juser_make(js, 1, &u);
    if (st != FB_OK) {
        src->destroy(src->user);
        return st;
    }
    memset(op, 0, sizeof *op);
    op->name = "join_probe";
    op->init_local = gop_init_local;
    op->destroy_local = gop_destroy_local;
    op->execute = gop_execute;
    op->destroy = juser_destroy;
    op->user = u;
    return FB_OK;
}

static void destroy_stages(const fb_operator *ops, size_t n_ops, const fb_sink *sink)
{
    for (size_t i = 0; ops && i < n_ops; i++)
        if (ops[i].destroy)
            ops[i].destroy(ops[i].user);
    if (sink && sink->destroy)
        sink->destroy(sink->user);
}

/* fb_query_add_join with the collector of `result` as the sink when sink is NULL. */
static fb_status gadd(fb_query *q, const fb_join_spec *spec, const fb_operator *ops, size_t n_ops,
                      const fb_sink *sink, fb_join_result *info, fb_join_result *result, fb_pipeline **probe)
{
    fb_ctx *ctx = q ? q->ctx : NULL;
    fb_status st = q ? FB_OK : fb_stage_error(NULL, FB_ERR_INVALID_ARG, "q must not be NULL");
    if (st == FB_OK && result == NULL && (!sink || !sink->sink))
        st = fb_stage_error(ctx, FB_ERR_INVALID_ARG, "the sink and its sink function must be set");
    if (st == FB_OK && n_ops && !ops)
        st = fb_stage_error(ctx, FB_ERR_INVALID_ARG, "ops must not be NULL");
    if (st == FB_OK)
        st = gcheck(ctx, spec);
    fb_jstate *js = NULL;
    if (st == FB_OK) {
        if (info)
            memset(info, 0, sizeof *info);
        st = gmake(ctx, spec, info, &js);
    }
    fb_operator *all = NULL;
    if (st == FB_OK)
        st = FB_ALLOC(ctx, (n_ops + 1) * sizeof *all, &all);
    if (st != FB_OK) {
        destroy_stages(ops, n_ops, sink);
        jstate_release(js);
        return st;
    }
    fb_pipeline *deps[2] = {NULL, NULL}, *pp = NULL;
    int n_deps = 0;
    fb_source src;
    st = gadd_front(q, js, &src, &all[0], deps, &n_deps);
    if (st != FB_OK) {
        destroy_stages(ops, n_ops, sink);
    } else {
        if (n_ops)
            memcpy(all + 1, ops, n_ops * sizeof *all);
        fb_sink out;
        fb_juser *u = NULL;
        if (result) {
            js->result = result;
            js->pairs = 1;
            st = juser_make(js, 1, &u);
            if (st == FB_OK)
                out = out_sink("join_collect", u, collect_sink);
            if (st != FB_OK) {
                destroy_stages(all, n_ops + 1, NULL);
                src.destroy(src.user);
            }
        } else {
            out = *sink;
        }
        if (st == FB_OK)
            st = fb_query_add_pipeline(q, js->algo == FB_JOIN_ALGO_RADIX ? "join-partitions" : "join-probe", &src,
                                       all, n_ops + 1, &out, &pp);
        for (int i = 0; st == FB_OK && i < n_deps; i++)
            st = fb_pipeline_depends_on(pp, deps[i]);
        if (st == FB_OK && probe)
            *probe = pp;
    }
    fb_free(ctx, all, (n_ops + 1) * sizeof *all);
    jstate_release(js);
    return st;
}

fb_status fb_query_add_join(fb_query *q, const fb_join_spec *spec, const fb_operator *ops, size_t n_ops,
                            const fb_sink *sink, fb_join_result *info, fb_pipeline **probe)
{
    return gadd(q, spec, ops, n_ops, sink, info, NULL, probe);
}

fb_status fb_query_add_join_agg(fb_query *q, const fb_join_spec *spec, const fb_agg_spec *agg,
                                const fb_agg_input *input, fb_join_result *info, fb_agg_groups **groups,
                                fb_pipeline **merge)
{
    FB_RETURN_ERROR_IF(!q, NULL, FB_ERR_INVALID_ARG, "q must not be NULL");
    fb_ctx *ctx = q->ctx;
    if (groups)
        *groups = NULL;
    FB_FORWARD_IF_ERROR(gcheck(ctx, spec));
    if (info)
        memset(info, 0, sizeof *info);
    fb_jstate *js = NULL;
    FB_FORWARD_IF_ERROR(gmake(ctx, spec, info, &js));
    fb_pipeline *deps[2] = {NULL, NULL};
    int n_deps = 0;
    fb_source src;
    fb_operator op;
    fb_status st = gadd_front(q, js, &src, &op, deps, &n_deps);
    jstate_release(js);
    FB_FORWARD_IF_ERROR(st);
    int before = q->n_pipelines;
    fb_pipeline *m = NULL;
    FB_FORWARD_IF_ERROR(fb_query_add_agg(q, "join-agg", &src, &op, 1, agg, input, groups, &m));
    /* fb_query_add_agg added the aggregation pipeline first, then its merge */
    FB_RETURN_ERROR_IF(q->n_pipelines != before + 2, ctx, FB_ERR_INTERNAL, "the aggregation added %d pipelines",
                       q->n_pipelines - before);
    fb_pipeline *pa = q->pipelines[before];
    for (int i = 0; st == FB_OK && i < n_deps; i++)
        st = fb_pipeline_depends_on(pa, deps[i]);
    if (st == FB_OK && merge)
        *merge = m;
    return st;
}

fb_status fb_join_run(fb_ctx *ctx, const fb_join_spec *spec, fb_join_result *result)
{
    FB_RETURN_ERROR_IF(!ctx || !result, ctx, FB_ERR_INVALID_ARG, "ctx and result must not be NULL");
    memset(result, 0, sizeof *result);
    FB_FORWARD_IF_ERROR(gcheck(ctx, spec));
    fb_type t = spec->build_keys[0].type;
    if (spec->type == FB_JOIN_INNER && spec->n_keys == 1 &&
        (t == FB_TYPE_INT32 || t == FB_TYPE_UINT32 || t == FB_TYPE_DATE32) &&
        spec->build_keys[0].length < ((int64_t)1 << 32) - 1 && spec->probe_keys[0].length < ((int64_t)1 << 32) - 1) {
        fb_join_input in;
        memset(&in, 0, sizeof in);
        in.build_key = spec->build_keys[0];
        in.probe_key = spec->probe_keys[0];
        in.output = FB_JOIN_OUTPUT_PAIRS;
        in.morsel_rows = spec->morsel_rows;
        in.radix_bits = spec->radix_bits;
        return fb_run_join(ctx, &in, result);
    }
    fb_query *q = NULL;
    FB_FORWARD_IF_ERROR(fb_query_create(ctx, &q));
    fb_join_result r;
    memset(&r, 0, sizeof r);
    fb_status st = gadd(q, spec, NULL, 0, NULL, &r, &r, NULL);
    if (st == FB_OK)
        st = fb_query_run(q);
    fb_query_destroy(q);
    if (st == FB_OK)
        *result = r;
    else
        fb_join_result_free(ctx, &r);
    return st;
}
