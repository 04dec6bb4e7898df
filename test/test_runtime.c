/* test_runtime.c - the morsel-driven runtime: query/pipeline building and bad input (NULLs, cycles),
 * the built-in sources (every row exactly once, empty tables, zero morsels), NUMA placement on a
 * synthetic two-socket topology (local consumption, stealing from an imbalanced queue), DAG order
 * under random delays, independent pipelines running together, the scan → filter → sum pipeline
 * against a scalar reference, errors injected at random points, cancellation from another thread,
 * operators that split chunks or finish early, statistics, NUMA memory, memory-limit exhaustion, and
 * several runs in a row on one context. Stage functions never assert (they run on worker threads):
 * they record what they saw and the test thread checks it. */
#include "fb_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "fb_pipeline_scan_agg_internal.h"
#include "fb_sched_numa_internal.h"

#define TOPO_2S "pack:2 numa:1 l3:1(size=32MB) core:4 pu:1"
#define MAX_ROWS (1 << 20)

__extension__ typedef __int128 i128;

/* ids[i] = i: the data of the test sources, so that a sum of values is a sum of row ids. */
static int64_t *ids;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void spin_ns(int64_t ns)
{
    int64_t t0 = now_ns();
    while (now_ns() - t0 < ns) {
    }
}

static uint64_t mix(uint64_t x)
{
    uint64_t s = x;
    return fbt_next(&s);
}

static fb_ctx *make_ctx(const char *topology, int threads, size_t limit)
{
    fb_options *o = NULL;
    fb_ctx *ctx = NULL;
    assert_fb_ok(NULL, fb_options_create(&o));
    assert_fb_ok(NULL, fb_options_set_topology(o, topology));
    assert_fb_ok(NULL, fb_options_set_threads(o, threads));
    assert_fb_ok(NULL, fb_options_set_memory_limit(o, limit));
    assert_fb_ok(NULL, fb_options_set_cl_device(o, FB_CL_DEVICE_NONE));
    assert_fb_ok(NULL, fb_ctx_create(o, &ctx));
    fb_options_destroy(o);
    return ctx;
}

/* ---- a configurable test pipeline: every stage function implemented, counted and failable ------ */

typedef struct tq {
    fb_ctx *ctx;
    fb_query *q;
    atomic_long calls;      /* failable stage calls so far */
    long fail_at;           /* fail the call with this number (0 = never) */
    fb_status fail_status;
    atomic_int injected;
    int delay_us;           /* random delays up to this in some calls */
    atomic_long live;       /* stage states alive (malloc'ed: LSan sees leaks too) */
    atomic_long seq;        /* event sequence for ordering checks */
    atomic_int hooks;       /* destroy hooks called */
    atomic_int bad;         /* a stage saw something wrong */
    char bad_what[128];
} tq;

typedef struct tp {
    tq *t;
    int id;
    int64_t rows, morsel_rows;
    int node_mode;          /* -2: by position over t's nodes, -1: unknown, ≥ 0: that node */
    int nodes;
    bool split;             /* the operator emits each chunk in two halves (FB_OP_HAVE_MORE_OUTPUT) */
    atomic_uchar *seen;     /* optional: per row id, how often the sink saw it */
    atomic_long handed, released;
    atomic_long start_seq, first_sink_seq, fin_seq;
    atomic_int fin_calls, combines, init_globals;
    int64_t result_count;
    uint64_t result_sum;
} tp;

typedef struct tsrc_global {
    int64_t next;
} tsrc_global;

typedef struct tsum {
    int64_t count;
    uint64_t sum;
} tsum;

typedef struct tsplit {
    uint32_t *sel;
    int64_t cap;
    int phase;
} tsplit;

static void t_bad(tq *t, const char *what)
{
    if (atomic_exchange(&t->bad, 1) == 0)
        snprintf(t->bad_what, sizeof t->bad_what, "%s", what);
}

static fb_status step(tp *p)
{
    tq *t = p->t;
    long n = atomic_fetch_add(&t->calls, 1) + 1;
    if (t->delay_us > 0) {
        uint64_t h = mix((uint64_t)n ^ (uint64_t)t->fail_at);
        if (h % 4 == 0)
            usleep((useconds_t)((h >> 8) % (uint64_t)t->delay_us));
    }
    if (n == t->fail_at) {
        atomic_store(&t->injected, 1);
        return fb_stage_error(t->ctx, t->fail_status, "injected failure at call %ld", n);
    }
    return FB_OK;
}

static void *t_malloc(tq *t, size_t n)
{
    void *p = calloc(1, n);
    if (p)
        atomic_fetch_add(&t->live, 1);
    return p;
}

static void t_free(tq *t, void *p)
{
    if (p) {
        atomic_fetch_sub(&t->live, 1);
        free(p);
    }
}

static void t_hook(void *user)
{
    tp *p = user;
    atomic_fetch_add(&p->t->hooks, 1);
}

static fb_status src_init_global(void *user, fb_ctx *ctx, void **global)
{
    tp *p = user;
    atomic_store(&p->start_seq, atomic_fetch_add(&p->t->seq, 1) + 1);
    atomic_fetch_add(&p->init_globals, 1);
    if (ctx != p->t->ctx)
        t_bad(p->t, "init_global got another context");
    FB_FORWARD_IF_ERROR(step(p));
    *global = t_malloc(p->t, sizeof(tsrc_global));
    return *global ? FB_OK : FB_ERR_OUT_OF_MEMORY;
}

static fb_status src_next(void *user, void *global, const fb_worker_info *w, fb_morsel *out, int *done)
{
    tp *p = user;
    tsrc_global *g = global;
    FB_FORWARD_IF_ERROR(step(p));
    if (g->next >= p->rows) {
        *done = 1;
        return FB_OK;
    }
    out->begin = g->next;
    out->end = g->next + p->morsel_rows < p->rows ? g->next + p->morsel_rows : p->rows;
    g->next = out->end;
    out->numa_node = p->node_mode >= -1 ? p->node_mode : (int)(out->begin * p->nodes / p->rows);
    out->data = malloc(8); /* a leak here shows a morsel that was never released */
    atomic_fetch_add(&p->handed, 1);
    return FB_OK;
}

static fb_status src_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    tp *p = user;
    FB_FORWARD_IF_ERROR(step(p));
    *local = t_malloc(p->t, sizeof(fb_column));
    return *local ? FB_OK : FB_ERR_OUT_OF_MEMORY;
}

static fb_status src_scan(void *user, void *global, void *local, const fb_morsel *m, fb_chunk *out)
{
    tp *p = user;
    FB_FORWARD_IF_ERROR(step(p));
    fb_column *c = local;
    *c = fb_column_make(FB_TYPE_INT64, ids, m->end - m->begin, NULL);
    c->offset = m->begin;
    out->rows = m->end - m->begin;
    out->n_columns = 1;
    out->columns = c;
    return FB_OK;
}

static void src_release(void *user, void *global, const fb_morsel *m)
{
    tp *p = user;
    free(m->data);
    atomic_fetch_add(&p->released, 1);
}

static void state_destroy_local(void *user, void *global, void *local)
{
    tp *p = user;
    t_free(p->t, local);
}

static void state_destroy_global(void *user, void *global)
{
    tp *p = user;
    t_free(p->t, global);
}

static fb_status split_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    tp *p = user;
    FB_FORWARD_IF_ERROR(step(p));
    tsplit *s = t_malloc(p->t, sizeof *s);
    if (!s)
        return FB_ERR_OUT_OF_MEMORY;
    s->cap = p->morsel_rows;
    s->sel = malloc((size_t)s->cap * sizeof *s->sel);
    *local = s;
    return s->sel ? FB_OK : FB_ERR_OUT_OF_MEMORY;
}

static void split_destroy_local(void *user, void *global, void *local)
{
    tp *p = user;
    tsplit *s = local;
    if (s)
        free(s->sel);
    t_free(p->t, s);
}

static fb_status split_execute(void *user, void *global, void *local, const fb_chunk *in, fb_chunk *out,
                               fb_op_result *result)
{
    tp *p = user;
    tsplit *s = local;
    FB_FORWARD_IF_ERROR(step(p));
    *out = *in;
    if (!p->split)
        return FB_OK;
    int64_t live = in->n_sel, half = live / 2;
    int64_t from = s->phase == 0 ? 0 : half, to = s->phase == 0 ? half : live;
    if (live > s->cap) {
        t_bad(p->t, "split: chunk larger than the morsel size");
        return FB_ERR_INTERNAL;
    }
    for (int64_t j = from; j < to; j++)
        s->sel[j - from] = in->sel ? in->sel[j] : (uint32_t)j;
    out->sel = s->sel;
    out->n_sel = to - from;
    *result = s->phase == 0 ? FB_OP_HAVE_MORE_OUTPUT : FB_OP_NEED_MORE_INPUT;
    s->phase ^= 1;
    return FB_OK;
}

static fb_status sum_init_global(void *user, fb_ctx *ctx, void **global)
{
    tp *p = user;
    FB_FORWARD_IF_ERROR(step(p));
    *global = t_malloc(p->t, sizeof(tsum));
    return *global ? FB_OK : FB_ERR_OUT_OF_MEMORY;
}

static fb_status sum_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    tp *p = user;
    FB_FORWARD_IF_ERROR(step(p));
    if (w->ctx != p->t->ctx || w->worker < 0 || w->worker >= w->workers)
        t_bad(p->t, "init_local: bad worker info");
    *local = t_malloc(p->t, sizeof(tsum));
    return *local ? FB_OK : FB_ERR_OUT_OF_MEMORY;
}

static fb_status sum_sink(void *user, void *global, void *local, const fb_chunk *chunk)
{
    tp *p = user;
    tsum *l = local;
    long expect = 0;
    atomic_compare_exchange_strong(&p->first_sink_seq, &expect, atomic_fetch_add(&p->t->seq, 1) + 1);
    FB_FORWARD_IF_ERROR(step(p));
    const fb_column *c = &chunk->columns[0];
    const int64_t *x = (const int64_t *)c->data + c->offset;
    if (chunk->row_begin != c->offset)
        t_bad(p->t, "sink: row_begin is not the morsel's first row");
    for (int64_t j = 0; j < chunk->n_sel; j++) {
        int64_t v = x[chunk->sel ? chunk->sel[j] : j];
        l->sum += (uint64_t)v;
        l->count++;
        if (p->seen)
            atomic_fetch_add(&p->seen[v], 1);
    }
    return FB_OK;
}

static fb_status sum_combine(void *user, void *global, void *local)
{
    tp *p = user;
    tsum *g = global;
    const tsum *l = local;
    atomic_fetch_add(&p->combines, 1);
    FB_FORWARD_IF_ERROR(step(p));
    g->sum += l->sum;
    g->count += l->count;
    return FB_OK;
}

static fb_status sum_finalize(void *user, void *global)
{
    tp *p = user;
    const tsum *g = global;
    atomic_fetch_add(&p->fin_calls, 1);
    FB_FORWARD_IF_ERROR(step(p));
    atomic_store(&p->fin_seq, atomic_fetch_add(&p->t->seq, 1) + 1);
    p->result_count = g->count;
    p->result_sum = g->sum;
    return FB_OK;
}

static void tp_init(tp *p, tq *t, int id, int64_t rows, int64_t morsel_rows)
{
    memset(p, 0, sizeof *p);
    p->t = t;
    p->id = id;
    p->rows = rows;
    p->morsel_rows = morsel_rows;
    p->node_mode = -2;
    fb_topology_info info;
    p->nodes = fb_topology_get_info(t->ctx, &info) == FB_OK ? info.numa_nodes : 1;
}

static fb_source tp_source(tp *p)
{
    fb_source s = {"tsource", src_init_global, src_next, src_init_local, src_scan, src_release,
                   state_destroy_local, state_destroy_global, t_hook, p};
    return s;
}

static fb_operator tp_operator(tp *p)
{
    fb_operator o = {"tsplit", NULL, split_init_local, split_execute, split_destroy_local, NULL, t_hook, p};
    return o;
}

static fb_sink tp_sink(tp *p)
{
    fb_sink s = {"tsum", sum_init_global, sum_init_local, sum_sink, sum_combine, sum_finalize,
                 state_destroy_local, state_destroy_global, t_hook, p};
    return s;
}

static fb_pipeline *tp_add(fb_query *q, tp *p, const char *name)
{
    fb_source s = tp_source(p);
    fb_operator o = tp_operator(p);
    fb_sink k = tp_sink(p);
    fb_pipeline *pl = NULL;
    assert_fb_ok(p->t->ctx, fb_query_add_pipeline(q, name, &s, &o, 1, &k, &pl));
    return pl;
}

static uint64_t id_sum(int64_t n) { return (uint64_t)((i128)n * (n - 1) / 2); }

/* ---- bad input ----------------------------------------------------------------------------------- */

static void test_bad_input(void **state)
{
    (void)state;
    fb_ctx *ctx = make_ctx(NULL, 2, 0);
    tq t = {.ctx = ctx};
    tp a, b, c;
    tp_init(&a, &t, 0, 10, 4);
    tp_init(&b, &t, 1, 10, 4);
    tp_init(&c, &t, 2, 10, 4);
    fb_query *q = NULL;
    assert_fb_status(NULL, fb_query_create(NULL, &q), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_query_create(ctx, NULL), FB_ERR_INVALID_ARG);
    assert_fb_ok(ctx, fb_query_create(ctx, &q));

    /* a failed add still owns (and frees) the stages */
    fb_source s = tp_source(&a);
    fb_operator o = tp_operator(&a);
    fb_sink k = tp_sink(&a);
    assert_fb_status(NULL, fb_query_add_pipeline(NULL, "x", &s, &o, 1, &k, NULL), FB_ERR_INVALID_ARG);
    assert_int_equal(atomic_load(&t.hooks), 3);
    assert_fb_status(ctx, fb_query_add_pipeline(q, "x", NULL, NULL, 0, &k, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_query_add_pipeline(q, "x", &s, NULL, 0, NULL, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_query_add_pipeline(q, "x", &s, NULL, 1, &k, NULL), FB_ERR_INVALID_ARG);
    fb_source no_next = s;
    no_next.next_morsel = NULL;
    assert_fb_status(ctx, fb_query_add_pipeline(q, "x", &no_next, NULL, 0, &k, NULL), FB_ERR_INVALID_ARG);
    fb_sink no_sink = k;
    no_sink.sink = NULL;
    assert_fb_status(ctx, fb_query_add_pipeline(q, "x", &s, NULL, 0, &no_sink, NULL), FB_ERR_INVALID_ARG);
    fb_operator no_exec = o;
    no_exec.execute = NULL;
    assert_fb_status(ctx, fb_query_add_pipeline(q, "x", &s, &no_exec, 1, &k, NULL), FB_ERR_INVALID_ARG);
    assert_int_equal(fb_query_pipelines(q), 0);

    /* the DAG: self edges, cycles, other queries */
    atomic_store(&t.hooks, 0);
    fb_pipeline *pa = tp_add(q, &a, "a"), *pb = tp_add(q, &b, "b"), *pc = tp_add(q, &c, NULL);
    assert_int_equal(fb_pipeline_index(pa), 0);
    assert_int_equal(fb_pipeline_index(pc), 2);
    assert_int_equal(fb_pipeline_index(NULL), -1);
    assert_int_equal(fb_query_pipelines(q), 3);
    assert_int_equal(fb_query_pipelines(NULL), 0);
    assert_fb_status(ctx, fb_pipeline_depends_on(NULL, pa), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_pipeline_depends_on(pa, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_pipeline_depends_on(pa, pa), FB_ERR_INVALID_ARG);
    assert_fb_ok(ctx, fb_pipeline_depends_on(pb, pa));
    assert_fb_ok(ctx, fb_pipeline_depends_on(pb, pa)); /* twice is harmless */
    assert_fb_status(ctx, fb_pipeline_depends_on(pa, pb), FB_ERR_INVALID_ARG);
    assert_non_null(strstr(fb_last_error(ctx), "cycle"));
    assert_fb_ok(ctx, fb_pipeline_depends_on(pc, pb));
    assert_fb_status(ctx, fb_pipeline_depends_on(pa, pc), FB_ERR_INVALID_ARG); /* a -> c -> b -> a */
    fb_query *other = NULL;
    assert_fb_ok(ctx, fb_query_create(ctx, &other));
    tp d;
    tp_init(&d, &t, 3, 10, 4);
    fb_pipeline *pd = tp_add(other, &d, "d");
    assert_fb_status(ctx, fb_pipeline_depends_on(pd, pa), FB_ERR_INVALID_ARG);
    fb_query_destroy(other);

    /* statistics only after the run; runs once; frozen after */
    fb_stats st;
    assert_fb_status(ctx, fb_query_stats(q, -1, -1, &st), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_query_run(NULL), FB_ERR_INVALID_ARG);
    assert_fb_ok(ctx, fb_query_run(q));
    assert_int_equal(a.result_sum, id_sum(10));
    assert_int_equal(c.result_count, 10);
    assert_fb_status(ctx, fb_query_run(q), FB_ERR_INVALID_ARG);
    tp e;
    tp_init(&e, &t, 4, 10, 4);
    fb_source se = tp_source(&e);
    fb_sink ke = tp_sink(&e);
    int hooks = atomic_load(&t.hooks);
    assert_fb_status(ctx, fb_query_add_pipeline(q, "late", &se, NULL, 0, &ke, NULL), FB_ERR_INVALID_ARG);
    assert_int_equal(atomic_load(&t.hooks), hooks + 2);
    assert_fb_status(ctx, fb_pipeline_depends_on(pc, pa), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_query_stats(NULL, -1, -1, &st), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_query_stats(q, -1, -1, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_query_stats(q, 3, -1, &st), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_query_stats(q, -2, -1, &st), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_query_stats(q, 0, fb_query_workers(q), &st), FB_ERR_INVALID_ARG);
    fb_query_destroy(q);
    assert_int_equal(atomic_load(&t.live), 0);
    fb_query_destroy(NULL);
    fb_query_cancel(NULL);

    /* built-in constructors */
    fb_source src;
    fb_operator op;
    int64_t v = 1;
    fb_column col = fb_column_make(FB_TYPE_INT64, ids, 100, NULL);
    fb_column col2 = fb_column_make(FB_TYPE_INT64, ids, 99, NULL);
    fb_column cols[2] = {col, col2};
    fb_table table = {2, cols, NULL};
    assert_fb_status(ctx, fb_source_table(ctx, NULL, 0, &src), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_source_table(NULL, &table, 0, &src), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_source_table(ctx, &table, 0, &src), FB_ERR_LENGTH_MISMATCH);
    table.n_columns = 1;
    assert_fb_status(ctx, fb_source_table(ctx, &table, -1, &src), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_source_table(ctx, &table, FB_MORSEL_MAX_ROWS + 1, &src), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_source_callback(ctx, NULL, NULL, NULL, &src), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_operator_select_cmp(ctx, 0, FB_TYPE_INT64, (fb_cmp)9, &v, &op), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_operator_select_cmp(ctx, 0, (fb_type)77, FB_CMP_EQ, &v, &op), FB_ERR_UNSUPPORTED_TYPE);
    assert_fb_status(ctx, fb_operator_select_cmp(ctx, 0, FB_TYPE_INT64, FB_CMP_EQ, NULL, &op), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_operator_select_range(ctx, 0, FB_TYPE_INT64, &v, NULL, &op), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_operator_select_range(NULL, 0, FB_TYPE_INT64, &v, &v, &op), FB_ERR_INVALID_ARG);

    /* the scan-filter-sum entry */
    int64_t cnt = -1, sum = -1;
    float f[4] = {1, 2, 3, 4};
    fb_column fcol = fb_column_make(FB_TYPE_FLOAT32, f, 4, NULL);
    assert_fb_status(ctx, fb_run_scan_filter_sum(ctx, &fcol, 0, 1, 0, &cnt, &sum, NULL), FB_ERR_UNSUPPORTED_TYPE);
    assert_fb_status(ctx, fb_run_scan_filter_sum(ctx, NULL, 0, 1, 0, &cnt, &sum, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_run_scan_filter_sum(ctx, &col, 0, 1, 0, NULL, &sum, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_run_scan_filter_sum(ctx, &col, 0, 1, -5, &cnt, &sum, NULL), FB_ERR_INVALID_ARG);
    assert_int_equal(cnt, -1);
    assert_fb_status(NULL, fb_pipeline_add_scan_filter_sum(NULL, &col, 0, 1, 0, NULL, NULL), FB_ERR_INVALID_ARG);

    /* a filter over a column of another type fails the run with the kernel's status */
    assert_fb_ok(ctx, fb_query_create(ctx, &q));
    table.n_columns = 1;
    assert_fb_ok(ctx, fb_source_table(ctx, &table, 16, &src));
    int32_t v32 = 3;
    assert_fb_ok(ctx, fb_operator_select_cmp(ctx, 0, FB_TYPE_INT32, FB_CMP_LT, &v32, &op));
    tp f1;
    tp_init(&f1, &t, 5, 0, 16);
    fb_sink fk = tp_sink(&f1);
    assert_fb_ok(ctx, fb_query_add_pipeline(q, "typed", &src, &op, 1, &fk, NULL));
    assert_fb_status(ctx, fb_query_run(q), FB_ERR_UNSUPPORTED_TYPE);
    assert_non_null(strstr(fb_last_error(ctx), "select_cmp"));
    assert_non_null(strstr(fb_last_error(ctx), "typed"));
    fb_query_destroy(q);

    /* a source that tags a morsel with a node the topology lacks */
    assert_fb_ok(ctx, fb_query_create(ctx, &q));
    tp g;
    tp_init(&g, &t, 6, 100, 10);
    g.node_mode = 5;
    tp_add(q, &g, "badnode");
    assert_fb_status(ctx, fb_query_run(q), FB_ERR_INVALID_ARG);
    assert_non_null(strstr(fb_last_error(ctx), "NUMA node 5"));
    fb_query_destroy(q);
    assert_int_equal(atomic_load(&g.handed), atomic_load(&g.released));

    /* NUMA memory */
    void *mem = NULL;
    assert_fb_status(ctx, fb_numa_alloc(ctx, 0, 16, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_numa_alloc(NULL, 0, 16, &mem), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_numa_alloc(ctx, -2, 16, &mem), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_numa_alloc(ctx, 1 << 20, 16, &mem), FB_ERR_INVALID_ARG);
    fb_numa_free(ctx, 0, NULL, 16);
    fb_numa_free(NULL, 0, NULL, 16);
    assert_int_equal(atomic_load(&t.live), 0);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    fb_ctx_destroy(ctx);
}

/* ---- empty inputs ---------------------------------------------------------------------------------- */

static fb_status feed_done(void *user, const fb_worker_info *w, fb_chunk *chunk, int *node, void **token, int *done)
{
    atomic_fetch_add((atomic_int *)user, 1);
    *done = 1;
    return FB_OK;
}

static void test_empty(void **state)
{
    (void)state;
    fb_ctx *ctx = make_ctx(TOPO_2S, 0, 0);
    assert_int_equal(fb_ctx_threads(ctx), 8);
    /* a query without pipelines */
    fb_query *q = NULL;
    assert_fb_ok(ctx, fb_query_create(ctx, &q));
    assert_fb_ok(ctx, fb_query_run(q));
    fb_stats st;
    assert_fb_ok(ctx, fb_query_stats(q, -1, -1, &st));
    assert_int_equal(st.morsels, 0);
    fb_query_destroy(q);

    /* an empty table, a table without columns, a callback with no data, a source of zero rows */
    int64_t cnt = -1, sum = -1;
    fb_column empty = fb_column_make(FB_TYPE_INT64, NULL, 0, NULL);
    assert_fb_ok(ctx, fb_run_scan_filter_sum(ctx, &empty, INT64_MIN, INT64_MAX, 0, &cnt, &sum, &st));
    assert_int_equal(cnt, 0);
    assert_int_equal(sum, 0);
    assert_int_equal(st.morsels, 0);

    tq t = {.ctx = ctx};
    tp e3[3];
    for (int i = 0; i < 3; i++)
        tp_init(&e3[i], &t, i, 0, 4);
    assert_fb_ok(ctx, fb_query_create(ctx, &q));
    fb_table none = {0, NULL, NULL};
    fb_source s1, s2;
    assert_fb_ok(ctx, fb_source_table(ctx, &none, 0, &s1));
    atomic_int feed_calls = 0;
    assert_fb_ok(ctx, fb_source_callback(ctx, feed_done, NULL, &feed_calls, &s2));
    fb_sink k1 = tp_sink(&e3[0]), k2 = tp_sink(&e3[1]);
    fb_pipeline *p1 = NULL, *p2 = NULL;
    assert_fb_ok(ctx, fb_query_add_pipeline(q, "no columns", &s1, NULL, 0, &k1, &p1));
    assert_fb_ok(ctx, fb_query_add_pipeline(q, "no data", &s2, NULL, 0, &k2, &p2));
    fb_pipeline *p3 = tp_add(q, &e3[2], "zero rows");
    assert_fb_ok(ctx, fb_pipeline_depends_on(p3, p1));
    assert_fb_ok(ctx, fb_pipeline_depends_on(p3, p2));
    assert_fb_ok(ctx, fb_query_run(q));
    assert_int_equal(atomic_load(&feed_calls), 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&e3[i].fin_calls), 1);
        assert_int_equal(atomic_load(&e3[i].combines), 0);
        assert_int_equal(e3[i].result_count, 0);
    }
    assert_fb_ok(ctx, fb_query_stats(q, -1, -1, &st));
    assert_int_equal(st.morsels, 0);
    fb_query_destroy(q);
    assert_int_equal(atomic_load(&t.live), 0);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    fb_ctx_destroy(ctx);
}

/* ---- the table source covers every row exactly once --------------------------------------------- */

typedef struct cover_sink {
    atomic_uchar *seen;
    atomic_long bad;
    int64_t count;
    uint64_t sum;
} cover_sink;

static fb_status cover_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    *local = calloc(1, sizeof(tsum));
    return *local ? FB_OK : FB_ERR_OUT_OF_MEMORY;
}

static fb_status cover_sink_fn(void *user, void *global, void *local, const fb_chunk *chunk)
{
    cover_sink *cs = user;
    tsum *l = local;
    /* two columns: ids and ids shifted by one row, both as views of the same morsel */
    const fb_column *a = &chunk->columns[0], *b = &chunk->columns[1];
    const int64_t *x = (const int64_t *)a->data + a->offset, *y = (const int64_t *)b->data + b->offset;
    for (int64_t j = 0; j < chunk->rows; j++) {
        if (x[j] != chunk->row_begin + j || y[j] != x[j] + 1)
            atomic_fetch_add(&cs->bad, 1);
        atomic_fetch_add(&cs->seen[x[j]], 1);
        l->sum += (uint64_t)x[j];
        l->count++;
    }
    return FB_OK;
}

static fb_status cover_combine(void *user, void *global, void *local)
{
    cover_sink *cs = user;
    const tsum *l = local;
    cs->count += l->count;
    cs->sum += l->sum;
    return FB_OK;
}

static void cover_destroy_local(void *user, void *global, void *local) { free(local); }

static void test_table_source_coverage(void **state)
{
    (void)state;
    uint64_t seed = fbt_seed();
    const char *topos[] = {NULL, TOPO_2S, "pack:4 numa:1 core:1 pu:1"};
    atomic_uchar *seen = calloc(MAX_ROWS, 1);
    assert_non_null(seen);
    for (int it = 0; it < 12; it++) {
        const char *topo = topos[it % 3];
        fb_ctx *ctx = make_ctx(topo, (int)(fbt_next(&seed) % 6), 0);
        int64_t n = (int64_t)(fbt_next(&seed) % 200000);
        int64_t morsel = (int64_t)(fbt_next(&seed) % 5 == 0 ? 0 : 1 + fbt_next(&seed) % 5000);
        if (it == 0)
            morsel = 1, n = 3000;
        memset(seen, 0, MAX_ROWS);
        fb_column cols[2] = {fb_column_make(FB_TYPE_INT64, ids, n, NULL), fb_column_make(FB_TYPE_INT64, ids, n, NULL)};
        cols[1].offset = 1;
        fb_table table = {2, cols, NULL};
        cover_sink cs = {.seen = seen};
        fb_sink sink = {"cover", NULL, cover_init_local, cover_sink_fn, cover_combine, NULL,
                        cover_destroy_local, NULL, NULL, &cs};
        fb_source src;
        assert_fb_ok(ctx, fb_source_table(ctx, &table, morsel, &src));
        fb_query *q = NULL;
        assert_fb_ok(ctx, fb_query_create(ctx, &q));
        assert_fb_ok(ctx, fb_query_add_pipeline(q, "cover", &src, NULL, 0, &sink, NULL));
        assert_fb_ok(ctx, fb_query_run(q));
        assert_int_equal(atomic_load(&cs.bad), 0);
        assert_int_equal(cs.count, n);
        assert_int_equal(cs.sum, id_sum(n));
        for (int64_t i = 0; i < n; i++) {
            if (seen[i] != 1)
                fail_msg("row %lld seen %d times (n %lld, morsel %lld)", (long long)i, seen[i], (long long)n,
                         (long long)morsel);
        }
        int64_t mr = morsel ? morsel : FB_MORSEL_DEFAULT_ROWS;
        fb_stats st;
        assert_fb_ok(ctx, fb_query_stats(q, 0, -1, &st));
        assert_int_equal(st.morsels, n ? (n - 1) / mr + 1 : 0);
        assert_int_equal(st.rows, n);
        assert_int_equal(st.rows_out, n);
        fb_query_destroy(q);
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
        fb_ctx_destroy(ctx);
    }
    free(seen);
}

/* ---- NUMA: balanced data is consumed locally ---------------------------------------------------- */

typedef struct spin_sink {
    int64_t spin_ns;
    atomic_long rows;
} spin_sink;

static fb_status spin_sink_fn(void *user, void *global, void *local, const fb_chunk *chunk)
{
    spin_sink *s = user;
    spin_ns(s->spin_ns);
    atomic_fetch_add(&s->rows, chunk->n_sel);
    return FB_OK;
}

static void test_numa_balanced_locality(void **state)
{
    (void)state;
    fb_ctx *ctx = make_ctx(TOPO_2S, 0, 0);
    fb_topology_info info;
    assert_fb_ok(ctx, fb_topology_get_info(ctx, &info));
    assert_int_equal(info.numa_nodes, 2);
    const int64_t morsels = 2048, morsel_rows = 256, n = morsels * morsel_rows;
    fb_column col = fb_column_make(FB_TYPE_INT64, ids, n, NULL);
    fb_table table = {1, &col, NULL};
    fb_source src;
    assert_fb_ok(ctx, fb_source_table(ctx, &table, morsel_rows, &src));
    spin_sink ss = {.spin_ns = 40000};
    fb_sink sink = {.name = "spin", .sink = spin_sink_fn, .user = &ss};
    fb_query *q = NULL;
    assert_fb_ok(ctx, fb_query_create(ctx, &q));
    assert_fb_ok(ctx, fb_query_add_pipeline(q, "balanced", &src, NULL, 0, &sink, NULL));
    assert_fb_ok(ctx, fb_query_run(q));
    assert_int_equal(atomic_load(&ss.rows), n);
    assert_int_equal(fb_query_workers(q), 8);
    fb_stats total, w;
    assert_fb_ok(ctx, fb_query_stats(q, -1, -1, &total));
    assert_int_equal(total.morsels, morsels);
    assert_int_equal(total.morsels_local + total.morsels_remote, morsels);
    for (int i = 0; i < 8; i++) {
        assert_fb_ok(ctx, fb_query_stats(q, -1, i, &w));
        /* round-robin over the nodes: workers 0, 2, 4, 6 on node 0, the others on node 1 */
        assert_int_equal(w.numa_node, i % 2);
        assert_int_equal(w.pinned, 0);
        assert_int_equal(w.morsels_local + w.morsels_remote, w.morsels);
        assert_int_equal(w.steals, w.morsels_remote);
    }
    double local = (double)total.morsels_local / (double)total.morsels;
    fprintf(stderr, "[ info     ] balanced: %.1f%% of %lld morsels consumed on their node, %lld steals\n",
            100.0 * local, (long long)total.morsels, (long long)total.steals);
    assert_true(local >= 0.90);
    fb_query_destroy(q);
    fb_ctx_destroy(ctx);
}

/* ---- NUMA: an imbalanced queue is drained by stealing ------------------------------------------- */

typedef struct imba {
    int64_t batches, batch_rows, next;
    fb_column cols[1 << 12];  /* one column view per batch, alive until released */
    atomic_long released;
    atomic_int node1_done;    /* a worker of node 1 has consumed a morsel */
    atomic_int timeouts; /* after one, nobody waits any more */
    atomic_long rows;
} imba;

static fb_status imba_feed(void *user, const fb_worker_info *w, fb_chunk *chunk, int *node, void **token, int *done)
{
    imba *m = user;
    if (m->next == m->batches) {
        *done = 1;
        return FB_OK;
    }
    int64_t b = m->next++;
    m->cols[b] = fb_column_make(FB_TYPE_INT64, ids + b * m->batch_rows, m->batch_rows, NULL);
    chunk->rows = m->batch_rows;
    chunk->n_columns = 1;
    chunk->columns = &m->cols[b];
    *node = 0; /* all the data on node 0 */
    *token = &m->cols[b];
    return FB_OK;
}

static void imba_release(void *user, void *token)
{
    imba *m = user;
    atomic_fetch_add(&m->released, 1);
}

static fb_status imba_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    *local = (void *)(intptr_t)(w->numa_node + 1);
    return FB_OK;
}

static fb_status imba_sink(void *user, void *global, void *local, const fb_chunk *chunk)
{
    imba *m = user;
    int node = (int)(intptr_t)local - 1;
    if (node == 1) {
        atomic_store(&m->node1_done, 1);
    } else {
        /* node 0's workers wait for node 1's to have stolen something: stealing must happen */
        int64_t t0 = now_ns();
        while (!atomic_load(&m->node1_done) && !atomic_load(&m->timeouts)) {
            if (now_ns() - t0 > 10000000000ll) {
                atomic_fetch_add(&m->timeouts, 1);
                break;
            }
            usleep(100);
        }
    }
    spin_ns(20000);
    atomic_fetch_add(&m->rows, chunk->n_sel);
    return FB_OK;
}

static void test_numa_imbalanced_stealing(void **state)
{
    (void)state;
    fb_ctx *ctx = make_ctx(TOPO_2S, 0, 0);
    imba *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->batches = 400;
    m->batch_rows = 64;
    fb_source src;
    assert_fb_ok(ctx, fb_source_callback(ctx, imba_feed, imba_release, m, &src));
    fb_sink sink = {.name = "imba", .init_local = imba_init_local, .sink = imba_sink, .user = m};
    fb_query *q = NULL;
    assert_fb_ok(ctx, fb_query_create(ctx, &q));
    assert_fb_ok(ctx, fb_query_add_pipeline(q, "imbalanced", &src, NULL, 0, &sink, NULL));
    assert_fb_ok(ctx, fb_query_run(q));
    assert_int_equal(atomic_load(&m->timeouts), 0);
    assert_int_equal(atomic_load(&m->rows), m->batches * m->batch_rows);
    assert_int_equal(atomic_load(&m->released), m->batches);
    fb_stats total, w;
    assert_fb_ok(ctx, fb_query_stats(q, 0, -1, &total));
    assert_int_equal(total.morsels, m->batches);
    int64_t node1_morsels = 0;
    for (int i = 0; i < fb_query_workers(q); i++) {
        assert_fb_ok(ctx, fb_query_stats(q, 0, i, &w));
        if (w.numa_node == 1) {
            /* everything node 1 consumed it stole from node 0's queue */
            assert_int_equal(w.steals, w.morsels);
            assert_int_equal(w.morsels_remote, w.morsels);
            node1_morsels += w.morsels;
        } else {
            assert_int_equal(w.steals, 0);
            assert_int_equal(w.morsels_local, w.morsels);
        }
    }
    fprintf(stderr, "[ info     ] imbalanced: node 1 stole %lld of %lld morsels\n", (long long)node1_morsels,
            (long long)total.morsels);
    assert_true(node1_morsels > 0);
    assert_int_equal(total.steals, node1_morsels);
    fb_query_destroy(q);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    fb_ctx_destroy(ctx);
    free(m);
}

/* ---- DAG order under random delays --------------------------------------------------------------- */

static void test_dag_order(void **state)
{
    (void)state;
    uint64_t seed = fbt_seed();
    fb_ctx *ctx = make_ctx(TOPO_2S, 0, 0);
    for (int it = 0; it < 6; it++) {
        enum { K = 9 };
        tq t = {.ctx = ctx, .delay_us = 300, .fail_at = 0};
        t.fail_at = -(long)it; /* never; varies the delays */
        tp p[K];
        int rank[K];
        for (int i = 0; i < K; i++)
            rank[i] = i;
        for (int i = K - 1; i > 0; i--) {
            int j = (int)(fbt_next(&seed) % (uint64_t)(i + 1));
            int tmp = rank[i];
            rank[i] = rank[j];
            rank[j] = tmp;
        }
        fb_query *q = NULL;
        assert_fb_ok(ctx, fb_query_create(ctx, &q));
        fb_pipeline *pl[K];
        for (int i = 0; i < K; i++) {
            tp_init(&p[i], &t, i, (int64_t)(fbt_next(&seed) % 3000), 50 + (int64_t)(fbt_next(&seed) % 250));
            p[i].split = fbt_next(&seed) % 2;
            char name[16];
            snprintf(name, sizeof name, "p%d", i);
            pl[i] = tp_add(q, &p[i], name);
        }
        bool edge[K][K];
        memset(edge, 0, sizeof edge);
        for (int i = 0; i < K; i++) {
            for (int j = 0; j < K; j++) {
                if (rank[j] < rank[i] && fbt_next(&seed) % 4 == 0) {
                    edge[i][j] = true;
                    assert_fb_ok(ctx, fb_pipeline_depends_on(pl[i], pl[j]));
                }
            }
        }
        assert_fb_ok(ctx, fb_query_run(q));
        assert_int_equal(atomic_load(&t.bad), 0);
        for (int i = 0; i < K; i++) {
            assert_int_equal(atomic_load(&p[i].fin_calls), 1);
            assert_int_equal(atomic_load(&p[i].init_globals), 1);
            assert_int_equal(p[i].result_count, p[i].rows);
            assert_int_equal(p[i].result_sum, id_sum(p[i].rows));
            assert_int_equal(atomic_load(&p[i].handed), atomic_load(&p[i].released));
            for (int j = 0; j < K; j++) {
                if (!edge[i][j])
                    continue;
                long fin = atomic_load(&p[j].fin_seq), start = atomic_load(&p[i].start_seq);
                long first = atomic_load(&p[i].first_sink_seq);
                if (fin >= start || (first && fin >= first))
                    fail_msg("p%d depends on p%d but started (%ld, first sink %ld) before it finalized (%ld)", i, j,
                             start, first, fin);
            }
        }
        fb_query_destroy(q);
        assert_int_equal(atomic_load(&t.live), 0);
        assert_int_equal(atomic_load(&t.hooks), 3 * K);
    }
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    fb_ctx_destroy(ctx);
}

/* ---- independent pipelines run at the same time --------------------------------------------------- */

typedef struct meet {
    atomic_int started[2];
    atomic_int timeouts;
} meet;

typedef struct meet_user {
    meet *m;
    int me;
} meet_user;

static fb_status meet_sink(void *user, void *global, void *local, const fb_chunk *chunk)
{
    meet_user *u = user;
    atomic_store(&u->m->started[u->me], 1);
    int64_t t0 = now_ns();
    while (!atomic_load(&u->m->started[1 - u->me]) && !atomic_load(&u->m->timeouts)) {
        if (now_ns() - t0 > 10000000000ll) {
            atomic_fetch_add(&u->m->timeouts, 1);
            break;
        }
        usleep(100);
    }
    return FB_OK;
}

static void test_independent_pipelines_overlap(void **state)
{
    (void)state;
    fb_ctx *ctx = make_ctx(TOPO_2S, 0, 0);
    meet m = {0};
    meet_user u[2] = {{&m, 0}, {&m, 1}};
    fb_column col = fb_column_make(FB_TYPE_INT64, ids, 64, NULL);
    fb_table table = {1, &col, NULL};
    fb_query *q = NULL;
    assert_fb_ok(ctx, fb_query_create(ctx, &q));
    for (int i = 0; i < 2; i++) {
        fb_source src;
        assert_fb_ok(ctx, fb_source_table(ctx, &table, 8, &src));
        fb_sink sink = {.name = "meet", .sink = meet_sink, .user = &u[i]};
        assert_fb_ok(ctx, fb_query_add_pipeline(q, i ? "right" : "left", &src, NULL, 0, &sink, NULL));
    }
    assert_fb_ok(ctx, fb_query_run(q));
    assert_int_equal(atomic_load(&m.timeouts), 0);
    fb_query_destroy(q);
    fb_ctx_destroy(ctx);
}

/* ---- scan → filter → sum against a scalar reference ---------------------------------------------- */

static void reference(const fb_column *col, int64_t lo, int64_t hi, int64_t *count, i128 *sum)
{
    const int64_t *x = (const int64_t *)col->data + col->offset;
    *count = 0;
    *sum = 0;
    for (int64_t i = 0; i < col->length; i++) {
        if (fb_column_is_valid(col, i) && x[i] >= lo && x[i] <= hi) {
            (*count)++;
            *sum += x[i];
        }
    }
}

static void check_scan_sum(fb_ctx *ctx, const fb_column *col, int64_t lo, int64_t hi, int64_t morsel_rows)
{
    int64_t ref_count;
    i128 ref_sum;
    reference(col, lo, hi, &ref_count, &ref_sum);
    int64_t count = -1, sum = -1;
    fb_stats st;
    fb_status rc = fb_run_scan_filter_sum(ctx, col, lo, hi, morsel_rows, &count, &sum, &st);
    if (ref_sum > INT64_MAX || ref_sum < INT64_MIN) {
        assert_fb_status(ctx, rc, FB_ERR_OVERFLOW);
        assert_non_null(strstr(fb_last_error(ctx), "count_sum"));
        assert_int_equal(count, -1);
    } else {
        assert_fb_ok(ctx, rc);
        if (count != ref_count || sum != (int64_t)ref_sum)
            fail_msg("[%lld, %lld] over %lld rows (morsel %lld): got count %lld sum %lld, expected %lld %lld",
                     (long long)lo, (long long)hi, (long long)col->length, (long long)morsel_rows, (long long)count,
                     (long long)sum, (long long)ref_count, (long long)(int64_t)ref_sum);
        assert_int_equal(st.rows, col->length);
        assert_int_equal(st.rows_out, ref_count);
    }
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
}

static void test_scan_filter_sum(void **state)
{
    (void)state;
    uint64_t seed = fbt_seed();
    const int64_t n = 300000;
    int64_t *x = malloc((size_t)(n + 8) * sizeof *x);
    uint8_t *valid = malloc((size_t)(n + 8 + 7) / 8);
    assert_non_null(x);
    assert_non_null(valid);
    for (int64_t i = 0; i < n + 8; i++) {
        uint64_t r = fbt_next(&seed);
        switch (r % 16) {
        case 0: x[i] = INT64_MIN; break;
        case 1: x[i] = INT64_MAX; break;
        case 2: x[i] = (int64_t)fbt_next(&seed); break;
        default: x[i] = (int64_t)(r >> 32) % 2000 - 1000; break;
        }
    }
    for (int64_t i = 0; i < (n + 8 + 7) / 8; i++)
        valid[i] = (uint8_t)(fbt_next(&seed) | fbt_next(&seed)); /* ~25% nulls */
    fb_column col = fb_column_make(FB_TYPE_INT64, x, n, valid);
    col.offset = 5;
    fb_ctx *ctxs[3] = {make_ctx(NULL, 0, 0), make_ctx(TOPO_2S, 0, 0), make_ctx(NULL, 1, 0)};
    for (int c = 0; c < 3; c++) {
        fb_ctx *ctx = ctxs[c];
        check_scan_sum(ctx, &col, -1000, 1000, 0);          /* small values only: fits */
        check_scan_sum(ctx, &col, INT64_MIN, INT64_MAX, 0); /* extremes: overflows */
        check_scan_sum(ctx, &col, 5, -5, 4096);             /* empty range */
        check_scan_sum(ctx, &col, INT64_MAX, INT64_MAX, 1000);
        for (int it = 0; it < 6; it++) {
            int64_t a = (int64_t)(fbt_next(&seed) % 2400) - 1200, b = (int64_t)(fbt_next(&seed) % 2400) - 1200;
            int64_t lo = a < b ? a : b, hi = a < b ? b : a;
            check_scan_sum(ctx, &col, lo, hi, 1 + (int64_t)(fbt_next(&seed) % 70000));
        }
        /* a sum whose partial sums overflow but whose total fits: exact and order-independent */
        int64_t ext[8] = {INT64_MAX, INT64_MAX, INT64_MIN, INT64_MIN, INT64_MAX, INT64_MIN, 7, -3};
        fb_column e = fb_column_make(FB_TYPE_INT64, ext, 8, NULL);
        check_scan_sum(ctx, &e, INT64_MIN, INT64_MAX, 1);
        check_scan_sum(ctx, &e, 0, INT64_MAX, 1); /* 3 * INT64_MAX + 7: overflows */
    }
    for (int c = 0; c < 3; c++)
        fb_ctx_destroy(ctxs[c]);
    free(x);
    free(valid);
}

/* ---- errors injected at random points ------------------------------------------------------------ */

static const fb_status inject_status[] = {FB_ERR_IO, FB_ERR_OVERFLOW, FB_ERR_OUT_OF_MEMORY, FB_ERR_INTERNAL};

static void test_error_injection(void **state)
{
    (void)state;
    uint64_t seed = fbt_seed();
    fb_ctx *ctxs[2] = {make_ctx(TOPO_2S, 0, 0), make_ctx(NULL, 0, 0)};
    int failures = 0;
    for (int it = 0; it < 60; it++) {
        fb_ctx *ctx = ctxs[it % 2];
        tq t = {.ctx = ctx};
        t.delay_us = it % 3 == 0 ? 50 : 0;
        t.fail_at = 1 + (long)(fbt_next(&seed) % 700);
        t.fail_status = inject_status[fbt_next(&seed) % 4];
        enum { K = 3 };
        tp p[K];
        fb_query *q = NULL;
        assert_fb_ok(ctx, fb_query_create(ctx, &q));
        fb_pipeline *pl[K];
        for (int i = 0; i < K; i++) {
            tp_init(&p[i], &t, i, 1000 + (int64_t)(fbt_next(&seed) % 2000), 20 + (int64_t)(fbt_next(&seed) % 50));
            p[i].split = i == 1;
            pl[i] = tp_add(q, &p[i], i == 2 ? "probe" : "build");
        }
        assert_fb_ok(ctx, fb_pipeline_depends_on(pl[2], pl[0]));
        assert_fb_ok(ctx, fb_pipeline_depends_on(pl[2], pl[1]));
        fb_status rc = fb_query_run(q);
        if (atomic_load(&t.injected)) {
            failures++;
            assert_fb_status(ctx, rc, t.fail_status);
            if (!strstr(fb_last_error(ctx), "injected failure"))
                fail_msg("message lost: %s", fb_last_error(ctx));
        } else {
            assert_fb_ok(ctx, rc);
            for (int i = 0; i < K; i++)
                assert_int_equal(p[i].result_sum, id_sum(p[i].rows));
        }
        fb_stats st;
        assert_fb_ok(ctx, fb_query_stats(q, -1, -1, &st));
        fb_query_destroy(q);
        assert_int_equal(atomic_load(&t.bad), 0);
        assert_int_equal(atomic_load(&t.live), 0);
        assert_int_equal(atomic_load(&t.hooks), 3 * K);
        for (int i = 0; i < K; i++)
            assert_int_equal(atomic_load(&p[i].handed), atomic_load(&p[i].released));
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
    }
    fprintf(stderr, "[ info     ] %d of 60 runs failed by injection\n", failures);
    assert_true(failures > 20);
    fb_ctx_destroy(ctxs[0]);
    fb_ctx_destroy(ctxs[1]);
}

/* every worker fails at once, with statuses of its own: one error wins, with its own message */
static fb_status fail_sink(void *user, void *global, void *local, const fb_chunk *chunk)
{
    const fb_worker_info *w = local;
    return fb_stage_error(w->ctx, w->worker % 2 ? FB_ERR_IO : FB_ERR_OVERFLOW, "worker %d says no", w->worker);
}

static fb_status fail_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    *local = (void *)w;
    return FB_OK;
}

static fb_status silent_sink(void *user, void *global, void *local, const fb_chunk *chunk)
{
    return chunk->row_begin >= 64 ? FB_ERR_IO : FB_OK;
}

static void test_first_error_wins(void **state)
{
    (void)state;
    fb_ctx *ctx = make_ctx(TOPO_2S, 0, 0);
    fb_column col = fb_column_make(FB_TYPE_INT64, ids, 100000, NULL);
    fb_table table = {1, &col, NULL};
    for (int it = 0; it < 5; it++) {
        fb_source src;
        assert_fb_ok(ctx, fb_source_table(ctx, &table, 64, &src));
        fb_sink sink = {.name = "naysayer", .init_local = fail_init_local, .sink = fail_sink};
        fb_query *q = NULL;
        assert_fb_ok(ctx, fb_query_create(ctx, &q));
        assert_fb_ok(ctx, fb_query_add_pipeline(q, "fail", &src, NULL, 0, &sink, NULL));
        fb_status rc = fb_query_run(q);
        assert_true(rc == FB_ERR_IO || rc == FB_ERR_OVERFLOW);
        const char *msg = fb_last_error(ctx);
        assert_non_null(strstr(msg, "fb_query_run"));
        assert_non_null(strstr(msg, "naysayer"));
        assert_non_null(strstr(msg, "says no"));
        int worker = -1;
        const char *at = strstr(msg, "worker ");
        assert_non_null(at);
        assert_int_equal(sscanf(at, "worker %d", &worker), 1);
        assert_int_equal(rc, worker % 2 ? FB_ERR_IO : FB_ERR_OVERFLOW);
        fb_query_destroy(q);
    }
    /* a stage that fails without a message still gets one */
    fb_source src;
    assert_fb_ok(ctx, fb_source_table(ctx, &table, 64, &src));
    fb_sink sink = {.name = "silent", .sink = silent_sink};
    fb_query *q = NULL;
    assert_fb_ok(ctx, fb_query_create(ctx, &q));
    assert_fb_ok(ctx, fb_query_add_pipeline(q, "quiet", &src, NULL, 0, &sink, NULL));
    assert_fb_status(ctx, fb_query_run(q), FB_ERR_IO);
    assert_non_null(strstr(fb_last_error(ctx), "without a message"));
    fb_query_destroy(q);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    fb_ctx_destroy(ctx);
}

/* ---- cancellation ------------------------------------------------------------------------------- */

typedef struct endless {
    fb_column col;
    atomic_long handed, released;
    fb_query *cancel_me; /* when set, the sink cancels the query itself */
    atomic_long rows;
} endless;

static fb_status endless_feed(void *user, const fb_worker_info *w, fb_chunk *chunk, int *node, void **token,
                              int *done)
{
    endless *e = user;
    chunk->rows = e->col.length;
    chunk->n_columns = 1;
    chunk->columns = &e->col;
    *token = malloc(4);
    atomic_fetch_add(&e->handed, 1);
    return FB_OK;
}

static void endless_release(void *user, void *token)
{
    endless *e = user;
    free(token);
    atomic_fetch_add(&e->released, 1);
}

static fb_status endless_sink(void *user, void *global, void *local, const fb_chunk *chunk)
{
    endless *e = user;
    if (atomic_fetch_add(&e->rows, chunk->n_sel) > 100000 && e->cancel_me)
        fb_query_cancel(e->cancel_me);
    return FB_OK;
}

typedef struct canceller {
    fb_query *q;
    int64_t delay_ns;
} canceller;

static void *cancel_main(void *arg)
{
    canceller *c = arg;
    spin_ns(c->delay_ns);
    fb_query_cancel(c->q);
    return NULL;
}

static void test_cancel(void **state)
{
    (void)state;
    uint64_t seed = fbt_seed();
    fb_ctx *ctx = make_ctx(TOPO_2S, 0, 0);
    /* an endless source: only a cancellation ends it */
    for (int it = 0; it < 8; it++) {
        endless e = {.col = fb_column_make(FB_TYPE_INT64, ids, 64, NULL)};
        fb_source src;
        assert_fb_ok(ctx, fb_source_callback(ctx, endless_feed, endless_release, &e, &src));
        int64_t lo = 0, hi = 10;
        fb_operator op;
        assert_fb_ok(ctx, fb_operator_select_range(ctx, 0, FB_TYPE_INT64, &lo, &hi, &op));
        fb_sink sink = {.name = "endless", .sink = endless_sink, .user = &e};
        fb_query *q = NULL;
        assert_fb_ok(ctx, fb_query_create(ctx, &q));
        assert_fb_ok(ctx, fb_query_add_pipeline(q, "endless", &src, &op, 1, &sink, NULL));
        canceller c = {q, (int64_t)(fbt_next(&seed) % 20000000)};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, cancel_main, &c), 0);
        assert_fb_status(ctx, fb_query_run(q), FB_ERR_CANCELLED);
        assert_non_null(strstr(fb_last_error(ctx), "cancel"));
        pthread_join(th, NULL);
        fb_query_destroy(q);
        assert_int_equal(atomic_load(&e.handed), atomic_load(&e.released));
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
    }
    /* cancelled from one of its own stages */
    {
        endless e = {.col = fb_column_make(FB_TYPE_INT64, ids, 64, NULL)};
        fb_source src;
        assert_fb_ok(ctx, fb_source_callback(ctx, endless_feed, endless_release, &e, &src));
        fb_sink sink = {.name = "endless", .sink = endless_sink, .user = &e};
        fb_query *q = NULL;
        assert_fb_ok(ctx, fb_query_create(ctx, &q));
        e.cancel_me = q;
        assert_fb_ok(ctx, fb_query_add_pipeline(q, "self-cancel", &src, NULL, 0, &sink, NULL));
        assert_fb_status(ctx, fb_query_run(q), FB_ERR_CANCELLED);
        fb_query_destroy(q);
        assert_int_equal(atomic_load(&e.handed), atomic_load(&e.released));
    }
    /* cancelled before it ran */
    {
        fb_query *q = NULL;
        tq t = {.ctx = ctx};
        tp p;
        tp_init(&p, &t, 0, 100, 10);
        assert_fb_ok(ctx, fb_query_create(ctx, &q));
        tp_add(q, &p, "never");
        fb_query_cancel(q);
        assert_fb_status(ctx, fb_query_run(q), FB_ERR_CANCELLED);
        assert_int_equal(atomic_load(&p.init_globals), 0);
        fb_query_cancel(q); /* after the run: nothing */
        fb_query_destroy(q);
        assert_int_equal(atomic_load(&t.live), 0);
    }
    /* a finite DAG cancelled at a random time: finishes or stops, never hangs, never leaks */
    int cancelled = 0;
    for (int it = 0; it < 30; it++) {
        tq t = {.ctx = ctx, .delay_us = 20};
        enum { K = 3 };
        tp p[K];
        fb_query *q = NULL;
        assert_fb_ok(ctx, fb_query_create(ctx, &q));
        fb_pipeline *pl[K];
        for (int i = 0; i < K; i++) {
            tp_init(&p[i], &t, i, 2000, 16);
            pl[i] = tp_add(q, &p[i], "dag");
        }
        assert_fb_ok(ctx, fb_pipeline_depends_on(pl[1], pl[0]));
        assert_fb_ok(ctx, fb_pipeline_depends_on(pl[2], pl[1]));
        canceller c = {q, (int64_t)(fbt_next(&seed) % 30000000)};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, cancel_main, &c), 0);
        fb_status rc = fb_query_run(q);
        pthread_join(th, NULL);
        if (rc == FB_ERR_CANCELLED) {
            cancelled++;
        } else {
            assert_fb_ok(ctx, rc);
            for (int i = 0; i < K; i++)
                assert_int_equal(p[i].result_sum, id_sum(2000));
        }
        fb_query_destroy(q);
        assert_int_equal(atomic_load(&t.live), 0);
        for (int i = 0; i < K; i++)
            assert_int_equal(atomic_load(&p[i].handed), atomic_load(&p[i].released));
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
    }
    fprintf(stderr, "[ info     ] %d of 30 timed cancellations stopped the query\n", cancelled);
    fb_ctx_destroy(ctx);
}

/* ---- operators that finish early ------------------------------------------------------------------ */

typedef struct limit_op {
    int64_t limit;
    atomic_long passed;
    atomic_long sunk;
} limit_op;

static fb_status limit_execute(void *user, void *global, void *local, const fb_chunk *in, fb_chunk *out,
                               fb_op_result *result)
{
    limit_op *l = user;
    int64_t before = atomic_fetch_add(&l->passed, in->n_sel);
    *out = *in;
    if (before + in->n_sel >= l->limit) {
        /* the input has no selection vector (a callback source): pass a shorter view of it */
        static _Thread_local fb_column cut;
        int64_t keep = before >= l->limit ? 0 : l->limit - before;
        cut = in->columns[0];
        cut.length = keep;
        out->columns = &cut;
        out->rows = keep;
        out->sel = NULL;
        out->n_sel = keep;
        *result = FB_OP_FINISHED;
    }
    return FB_OK;
}

static fb_status limit_sink(void *user, void *global, void *local, const fb_chunk *chunk)
{
    limit_op *l = user;
    atomic_fetch_add(&l->sunk, chunk->n_sel);
    return FB_OK;
}

static void test_operator_finished(void **state)
{
    (void)state;
    fb_ctx *ctx = make_ctx(TOPO_2S, 0, 0);
    for (int it = 0; it < 5; it++) {
        endless e = {.col = fb_column_make(FB_TYPE_INT64, ids, 64, NULL)};
        limit_op l = {.limit = 1000 + it * 777};
        fb_source src;
        assert_fb_ok(ctx, fb_source_callback(ctx, endless_feed, endless_release, &e, &src));
        fb_operator op = {.name = "limit", .execute = limit_execute, .user = &l};
        fb_sink sink = {.name = "count", .sink = limit_sink, .user = &l};
        fb_query *q = NULL;
        assert_fb_ok(ctx, fb_query_create(ctx, &q));
        assert_fb_ok(ctx, fb_query_add_pipeline(q, "limited", &src, &op, 1, &sink, NULL));
        assert_fb_ok(ctx, fb_query_run(q));
        assert_int_equal(atomic_load(&l.sunk), l.limit);
        fb_query_destroy(q);
        assert_int_equal(atomic_load(&e.handed), atomic_load(&e.released));
    }
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    fb_ctx_destroy(ctx);
}

/* ---- statistics ---------------------------------------------------------------------------------- */

static void test_stats(void **state)
{
    (void)state;
    fb_ctx *ctx = make_ctx(TOPO_2S, 6, 0);
    tq t = {.ctx = ctx};
    tp a, b;
    tp_init(&a, &t, 0, 50000, 500);
    tp_init(&b, &t, 1, 30000, 300);
    b.split = true;
    fb_query *q = NULL;
    assert_fb_ok(ctx, fb_query_create(ctx, &q));
    fb_pipeline *pa = tp_add(q, &a, "a"), *pb = tp_add(q, &b, "b");
    assert_fb_ok(ctx, fb_pipeline_depends_on(pb, pa));
    assert_int_equal(fb_query_workers(q), 0);
    assert_fb_ok(ctx, fb_query_run(q));
    assert_int_equal(fb_query_workers(q), 6);
    fb_stats total, pipe[2], sum_cells = {0}, sum_workers = {0};
    assert_fb_ok(ctx, fb_query_stats(q, -1, -1, &total));
    assert_fb_ok(ctx, fb_query_stats(q, 0, -1, &pipe[0]));
    assert_fb_ok(ctx, fb_query_stats(q, 1, -1, &pipe[1]));
    assert_int_equal(pipe[0].morsels, 100);
    assert_int_equal(pipe[1].morsels, 100);
    assert_int_equal(pipe[0].rows, 50000);
    assert_int_equal(pipe[1].rows_out, 30000);
    assert_int_equal(total.morsels, 200);
    assert_true(pipe[0].wall_ns > 0 && pipe[1].wall_ns > 0);
    assert_true(total.wall_ns >= pipe[0].wall_ns);
    assert_int_equal(pipe[0].numa_node, -1);
    assert_int_equal(pipe[0].idle_ns, 0);
    for (int w = 0; w < 6; w++) {
        fb_stats ws, c0, c1;
        assert_fb_ok(ctx, fb_query_stats(q, -1, w, &ws));
        assert_fb_ok(ctx, fb_query_stats(q, 0, w, &c0));
        assert_fb_ok(ctx, fb_query_stats(q, 1, w, &c1));
        assert_int_equal(ws.morsels, c0.morsels + c1.morsels);
        assert_int_equal(ws.busy_ns, c0.busy_ns + c1.busy_ns);
        assert_int_equal(ws.numa_node, w % 2);
        assert_int_equal(c0.numa_node, w % 2);
        assert_int_equal(c0.wall_ns, 0);
        assert_true(ws.wall_ns > 0);
        assert_true(ws.idle_ns >= 0 && ws.busy_ns >= 0);
        assert_true(ws.busy_ns + ws.idle_ns <= ws.wall_ns + 1000000);
        sum_cells.morsels += c0.morsels + c1.morsels;
        sum_cells.rows += c0.rows + c1.rows;
        sum_workers.idle_ns += ws.idle_ns;
    }
    assert_int_equal(sum_cells.morsels, total.morsels);
    assert_int_equal(sum_cells.rows, total.rows);
    assert_int_equal(sum_workers.idle_ns, total.idle_ns);
    assert_true(total.busy_ns > 0);
    /* one combine per worker that took part, one finalize */
    int took_part = 0;
    for (int w = 0; w < 6; w++) {
        fb_stats c0;
        assert_fb_ok(ctx, fb_query_stats(q, 0, w, &c0));
        took_part += c0.morsels > 0;
    }
    assert_int_equal(atomic_load(&a.combines), took_part);
    assert_int_equal(atomic_load(&a.fin_calls), 1);
    fb_query_destroy(q);

    /* on the real machine workers are pinned (where the system allows it) */
    fb_ctx *real = make_ctx(NULL, 0, 0);
    int64_t cnt, sum;
    fb_stats st;
    fb_column col = fb_column_make(FB_TYPE_INT64, ids, 100000, NULL);
    assert_fb_ok(real, fb_run_scan_filter_sum(real, &col, 10, 20, 1000, &cnt, &sum, &st));
    assert_int_equal(cnt, 11);
    assert_int_equal(sum, 165);
    assert_int_equal(st.morsels, 100);
    assert_int_equal(st.morsels_local, 100); /* one NUMA node */
    fb_query *rq = NULL;
    assert_fb_ok(real, fb_query_create(real, &rq));
    fb_scan_sum_result res;
    assert_fb_ok(real, fb_pipeline_add_scan_filter_sum(rq, &col, 0, 9, 0, &res, NULL));
    assert_fb_ok(real, fb_query_run(rq));
    assert_int_equal(res.count, 10);
    assert_int_equal(res.sum, 45);
    fb_stats w0;
    assert_fb_ok(real, fb_query_stats(rq, -1, 0, &w0));
    fprintf(stderr, "[ info     ] real topology: worker 0 on core %d, NUMA node %d, pinned %d\n", w0.core, w0.numa_node,
            w0.pinned);
    fb_query_destroy(rq);
    fb_ctx_destroy(real);
    fb_ctx_destroy(ctx);
}

/* ---- NUMA memory ------------------------------------------------------------------------------------ */

static void test_numa_memory(void **state)
{
    (void)state;
    fb_ctx *real = make_ctx(NULL, 0, 0);
    void *p = NULL;
    assert_fb_ok(real, fb_numa_alloc(real, 0, 10000, &p));
    assert_true(fb_ctx_memory_used(real) >= 10000);
    assert_int_equal((uintptr_t)p % 64, 0);
    memset(p, 0xab, 10000);
    fb_numa_free(real, 0, p, 10000);
    assert_fb_ok(real, fb_numa_alloc(real, -1, 100, &p));
    fb_numa_free(real, -1, p, 100);
    assert_fb_ok(real, fb_numa_alloc(real, 0, 0, &p));
    fb_numa_free(real, 0, p, 0);
    assert_int_equal(fb_ctx_memory_used(real), 0);
    fb_ctx_destroy(real);

    fb_ctx *syn = make_ctx(TOPO_2S, 0, 20000);
    assert_fb_ok(syn, fb_numa_alloc(syn, 1, 10000, &p));
    assert_int_equal(fb_ctx_memory_used(syn), 10000);
    void *q = NULL;
    assert_fb_status(syn, fb_numa_alloc(syn, 0, 15000, &q), FB_ERR_OUT_OF_MEMORY);
    assert_fb_status(syn, fb_numa_alloc(syn, 2, 8, &q), FB_ERR_INVALID_ARG);
    fb_numa_free(syn, 1, p, 10000);
    assert_int_equal(fb_ctx_memory_used(syn), 0);
    fb_ctx_destroy(syn);

    /* placement, pinning and memory location on a synthetic topology */
    fb_ctx *two = make_ctx(TOPO_2S, 0, 0);
    int cores[10], nodes[10];
    assert_fb_ok(two, fb_numa_place_workers(two, 10, cores, nodes));
    const int want_cores[10] = {0, 4, 1, 5, 2, 6, 3, 7, 0, 4};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(cores[i], want_cores[i]);
        assert_int_equal(nodes[i], i % 2);
    }
    assert_int_equal(fb_numa_bind_thread(two, 0), 0);
    assert_int_equal(fb_numa_node_of_memory(two, ids, 8), -1);
    assert_int_equal(fb_numa_nodes(two), 2);
    assert_int_equal(fb_ctx_memory_used(two), 0);
    fb_ctx_destroy(two);
    fb_ctx *one = make_ctx(NULL, 0, 0);
    assert_int_equal(fb_numa_node_of_memory(one, ids, 8), 0);
    fb_ctx_destroy(one);

    fb_ctx *lim = make_ctx(NULL, 0, 8192);
    assert_fb_status(lim, fb_numa_alloc(lim, 0, 10000, &p), FB_ERR_OUT_OF_MEMORY);
    assert_int_equal(fb_ctx_memory_used(lim), 0);
    fb_ctx_destroy(lim);
}

/* ---- memory limit ---------------------------------------------------------------------------------- */

static void test_memory_limit(void **state)
{
    (void)state;
    const int64_t n = 50000;
    fb_column col = fb_column_make(FB_TYPE_INT64, ids, n, NULL);
    int ooms = 0, oks = 0;
    for (size_t limit = 64; limit < 200000; limit += limit / 16 + 32) {
        fb_ctx *ctx = make_ctx(TOPO_2S, 0, limit);
        int64_t cnt = -1, sum = -1;
        fb_status rc = fb_run_scan_filter_sum(ctx, &col, 100, 40000, 2000, &cnt, &sum, NULL);
        if (rc == FB_OK) {
            oks++;
            assert_int_equal(cnt, 39901);
            assert_int_equal(sum, (int64_t)(id_sum(40001) - id_sum(100)));
        } else {
            ooms++;
            assert_fb_status(ctx, rc, FB_ERR_OUT_OF_MEMORY);
            assert_int_equal(cnt, -1);
        }
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
        fb_ctx_destroy(ctx);
    }
    fprintf(stderr, "[ info     ] memory limit sweep: %d out of memory, %d complete\n", ooms, oks);
    assert_true(ooms > 10);
    assert_true(oks > 0);
}

/* ---- several runs in a row on one context ------------------------------------------------------------ */

static void test_runs_in_a_row(void **state)
{
    (void)state;
    uint64_t seed = fbt_seed();
    fb_ctx *ctx = make_ctx(TOPO_2S, 0, 0);
    for (int it = 0; it < 20; it++) {
        int64_t n = (int64_t)(fbt_next(&seed) % 100000);
        fb_column col = fb_column_make(FB_TYPE_INT64, ids, n, NULL);
        int64_t lo = (int64_t)(fbt_next(&seed) % 50000), hi = lo + (int64_t)(fbt_next(&seed) % 50000);
        int64_t cnt, sum, rc_cnt;
        i128 rc_sum;
        reference(&col, lo, hi, &rc_cnt, &rc_sum);
        assert_fb_ok(ctx, fb_run_scan_filter_sum(ctx, &col, lo, hi, 1 + (int64_t)(fbt_next(&seed) % 9000), &cnt,
                                                 &sum, NULL));
        assert_int_equal(cnt, rc_cnt);
        assert_int_equal(sum, (int64_t)rc_sum);
        tq t = {.ctx = ctx};
        tp p;
        tp_init(&p, &t, 0, n, 100);
        fb_query *q = NULL;
        assert_fb_ok(ctx, fb_query_create(ctx, &q));
        tp_add(q, &p, "again");
        assert_fb_ok(ctx, fb_query_run(q));
        assert_int_equal(p.result_sum, id_sum(n));
        fb_query_destroy(q);
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
    }
    fb_ctx_destroy(ctx);
}

/* ---- several queries at once on one context ---------------------------------------------------- */

typedef struct concurrent {
    fb_ctx *ctx;
    int64_t lo;
    fb_status rc;
    int64_t count, sum;
} concurrent;

static void *concurrent_main(void *arg)
{
    concurrent *c = arg;
    fb_column col = fb_column_make(FB_TYPE_INT64, ids, 200000, NULL);
    for (int i = 0; i < 5 && c->rc == FB_OK; i++)
        c->rc = fb_run_scan_filter_sum(c->ctx, &col, c->lo, c->lo + 999, 1000, &c->count, &c->sum, NULL);
    return NULL;
}

static void test_concurrent_queries(void **state)
{
    (void)state;
    fb_ctx *ctx = make_ctx(TOPO_2S, 4, 0);
    concurrent c[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        c[i] = (concurrent){ctx, 1000 * (int64_t)i, FB_OK, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, concurrent_main, &c[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(c[i].rc, FB_OK);
        assert_int_equal(c[i].count, 1000);
        assert_int_equal(c[i].sum, (int64_t)(id_sum(c[i].lo + 1000) - id_sum(c[i].lo)));
    }
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    fb_ctx_destroy(ctx);
}

static int setup_ids(void **state)
{
    (void)state;
    ids = malloc(MAX_ROWS * sizeof *ids);
    if (!ids)
        return -1;
    for (int64_t i = 0; i < MAX_ROWS; i++)
        ids[i] = i;
    return 0;
}

static int teardown_ids(void **state)
{
    (void)state;
    free(ids);
    return 0;
}

/* With allocator hooks installed, every byte a query takes (NUMA memory included) comes from them
 * and goes back to them: the engine decides where fb's memory lives. */
typedef struct hook_count {
    atomic_long live, calls;
} hook_count;

static void *hook_alloc(void *user, size_t size, size_t alignment)
{
    hook_count *c = user;
    void *p = NULL;
    if (posix_memalign(&p, alignment < sizeof(void *) ? sizeof(void *) : alignment, size ? size : 1) != 0)
        return NULL;
    atomic_fetch_add(&c->live, (long)size);
    atomic_fetch_add(&c->calls, 1);
    return p;
}

static void hook_free(void *user, void *ptr, size_t size)
{
    hook_count *c = user;
    atomic_fetch_sub(&c->live, (long)size);
    free(ptr);
}

static void test_allocator_hooks(void **state)
{
    (void)state;
    hook_count c;
    atomic_init(&c.live, 0);
    atomic_init(&c.calls, 0);
    fb_allocator a = {hook_alloc, hook_free, &c};
    fb_options *o;
    assert_fb_ok(NULL, fb_options_create(&o));
    assert_fb_ok(NULL, fb_options_set_allocator(o, &a));
    assert_fb_ok(NULL, fb_options_set_threads(o, 2));
    fb_ctx *ctx;
    assert_fb_ok(NULL, fb_ctx_create(o, &ctx)); /* the machine's real topology */
    fb_options_destroy(o);
    int64_t n = 100000, count = -1, sum = -1;
    fb_column col = fb_column_make(FB_TYPE_INT64, ids, n, NULL);
    assert_fb_ok(ctx, fb_run_scan_filter_sum(ctx, &col, 10, 99, 4096, &count, &sum, NULL));
    assert_int_equal(count, 90);
    assert_int_equal(sum, (10 + 99) * 90 / 2);
    assert_true(atomic_load(&c.calls) > 0);
    assert_int_equal(atomic_load(&c.live), 0);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    void *p = NULL;
    assert_fb_ok(ctx, fb_numa_alloc(ctx, 0, 1000, &p));
    assert_int_equal(atomic_load(&c.live), 1000);
    fb_numa_free(ctx, 0, p, 1000);
    assert_int_equal(atomic_load(&c.live), 0);
    fb_ctx_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_table_source_coverage),
        cmocka_unit_test(test_numa_balanced_locality),
        cmocka_unit_test(test_numa_imbalanced_stealing),
        cmocka_unit_test(test_dag_order),
        cmocka_unit_test(test_independent_pipelines_overlap),
        cmocka_unit_test(test_scan_filter_sum),
        cmocka_unit_test(test_error_injection),
        cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_operator_finished),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_numa_memory),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_runs_in_a_row),
        cmocka_unit_test(test_concurrent_queries),
        cmocka_unit_test(test_allocator_hooks),
    };
    return cmocka_run_group_tests(tests, setup_ids, teardown_ids);
}
