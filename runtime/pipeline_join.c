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
#include "fb_topology_internal.h"

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
#define FB_JPAIRS_BYTES (sizeof(fb_jpairs) + 2 * FB_JPAIRS_CAP * sizeof(int64_t))
static int64_t *pairs_b(fb_jpairs *p) { return (int64_t *)(p + 1); }
static int64_t *pairs_p(fb_jpairs *p) { return (int64_t *)(p + 1) + FB_JPAIRS_CAP; }

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
} fb_jstate;

static void jstate_release(fb_jstate *js)
{
    if (js && --js->refs == 0)
        fb_free(js->ctx, js, sizeof *js);
}

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
    fb_free(ctx, l->tup, (size_t)(l->cap_n + 2) * 8);
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
            blocks[at++] = (fb_join_pair_block){pairs_b(p), pairs_p(p), p->n};
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

typedef struct fb_jpart_local {
    int node;
    uint64_t *wc;   /* parts lines of 8 tuples */
    uint8_t *wcnt;  /* parts */
    uint64_t **cur, **end;
    fb_jchunk **first, **last; /* parts each */
    fb_jslab *slabs;
    char *slab_at, *slab_end;
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

/* A new, empty chunk from the worker's slabs. */
static fb_status new_chunk(fb_jstate *js, fb_jpart_local *l, fb_jchunk **out)
{
    size_t cb = chunk_bytes(js);
    if (!l->slab_at || (size_t)(l->slab_end - l->slab_at) < cb) {
        fb_jslab *s = NULL;
        FB_FORWARD_IF_ERROR(fb_numa_alloc(js->ctx, l->node, js->slab_bytes, (void **)&s));
        advise_huge(s, js->slab_bytes);
        s->next = l->slabs;
        s->bytes = js->slab_bytes;
        s->node = l->node;
        l->slabs = s;
        l->slab_at = (char *)s + 64;
        l->slab_end = (char *)s + js->slab_bytes;
    }
    fb_jchunk *c = (fb_jchunk *)l->slab_at;
    l->slab_at += cb;
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
    fb_free(ctx, l->wc, parts * 64);
    fb_free(ctx, l->wcnt, parts);
    fb_free(ctx, l->cur, parts * sizeof *l->cur);
    fb_free(ctx, l->end, parts * sizeof *l->end);
    fb_free(ctx, l->first, parts * sizeof *l->first);
    fb_free(ctx, l->last, parts * sizeof *l->last);
    free_slabs(ctx, l->slabs);
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
    fb_status st = FB_ALLOC(ctx, parts * 64, &l->wc);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, parts, &l->wcnt);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, parts * sizeof *l->cur, &l->cur);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, parts * sizeof *l->end, &l->end);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, parts * sizeof *l->first, &l->first);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, parts * sizeof *l->last, &l->last);
    if (st == FB_OK)
        memset(l->wcnt, 0, parts);
    for (size_t p = 0; st == FB_OK && p < parts; p++) {
        fb_jchunk *c;
        st = new_chunk(js, l, &c);
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
    FB_FORWARD_IF_ERROR(new_chunk(js, l, &c));
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
    while (jk->jr_scatter(keys, vals, pay_base, valid, voff, &row, n, js->bits, l->wc, l->wcnt, l->cur, l->end,
                          &full))
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
        if (l->wcnt[p])
            memcpy(l->cur[p], l->wc + p * 8, (size_t)l->wcnt[p] * 8);
        l->cur[p] += l->wcnt[p];
        l->wcnt[p] = 0;
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
    int64_t *order; /* partitions, the most probe tuples first */
    int64_t n, next;
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
    /* partitions with no build or no probe tuples produce nothing and are left out */
    for (int64_t p = 0; p < js->parts; p++)
        if (js->side[0]->count[p] && js->side[1]->count[p])
            g->order[g->n++] = p;
    sort_counts = js->side[1]->count;
    qsort(g->order, (size_t)g->n, sizeof *g->order, cmp_parts);
    sort_counts = NULL;
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
    fb_jparts_global *g = global;
    if (g->next >= g->n) {
        *done = 1;
        return FB_OK;
    }
    /* the morsel's "row" is the partition itself */
    out->begin = g->order[g->next];
    out->end = out->begin + 1;
    out->numa_node = -1;
    out->data = NULL;
    g->next++;
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
    int lb = fb_jr_log2_buckets(n, js->bits);
    int64_t nb = (int64_t)1 << lb;
    if (nb > l->cap_nb) {
        FB_FORWARD_IF_ERROR(grow32(ctx, &l->off, &l->cap_nb, nb, 2));
    }
    if (n > l->cap_n) {
        int64_t nc = n > 2 * l->cap_n ? n : 2 * l->cap_n;
        uint64_t *tup = NULL;
        FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, (size_t)(nc + 2) * 8, &tup));
        fb_free(ctx, l->tup, (size_t)(l->cap_n + 2) * 8);
        l->tup = tup;
        l->cap_n = nc;
    }
    fb_jr_table t;
    fb_jr_build(&t, l->seg, l->seg_n, (int)nseg, js->bits, lb, l->off, l->tup);
    const fb_join_kernels *jk = fb_join_kernels_get(ctx);
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
    for (int64_t r = 0; r < c->rows; r++)
        FB_FORWARD_IF_ERROR(join_partition(js, local, c->row_begin + r));
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
    /* partitions of about l2/64 build tuples: table (12-16 bytes a tuple) in a quarter of the L2 */
    int64_t target = (int64_t)(l2 / 64);
    int bits = 0;
    while (bits < 14 && (rows >> bits) > target)
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
