/* pipeline_scan_agg.c - the scan → filter → aggregate pipeline over an int64 column: the table
 * source, the range filter, and a count/sum sink with per-worker partial sums (on the worker's node)
 * combined exactly into a 128-bit global sum, checked against int64 once, at finalize. */
#include "fb_pipeline_scan_agg_internal.h"
#include "fb_pipeline_internal.h"

#include <string.h>

__extension__ typedef __int128 fb_i128;

typedef struct fb_count_sum {
    fb_ctx *ctx;
    size_t column;
    fb_scan_sum_result *result;
} fb_count_sum;

typedef struct fb_count_sum_state {
    fb_i128 sum;
    int64_t count;
    int node; /* locals: where it was allocated */
} fb_count_sum_state;

static void count_sum_destroy(void *user)
{
    fb_count_sum *s = user;
    if (s)
        fb_free(s->ctx, s, sizeof *s);
}

static fb_status count_sum_init_global(void *user, fb_ctx *ctx, void **global)
{
    fb_count_sum_state *g = NULL;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *g, &g));
    memset(g, 0, sizeof *g);
    g->node = -1;
    *global = g;
    return FB_OK;
}

static void count_sum_destroy_global(void *user, void *global)
{
    fb_count_sum *s = user;
    if (global)
        fb_free(s->ctx, global, sizeof(fb_count_sum_state));
}

static fb_status count_sum_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    fb_count_sum *s = user;
    fb_count_sum_state *l = NULL;
    FB_FORWARD_IF_ERROR(fb_numa_alloc(s->ctx, w->numa_node, sizeof *l, (void **)&l));
    memset(l, 0, sizeof *l);
    l->node = w->numa_node;
    *local = l;
    return FB_OK;
}

static void count_sum_destroy_local(void *user, void *global, void *local)
{
    fb_count_sum *s = user;
    fb_count_sum_state *l = local;
    if (l)
        fb_numa_free(s->ctx, l->node, l, sizeof *l);
}

/* Adds v to an int64 running sum; on int64 overflow moves the running sum into the wide one. */
#define FB_SUM_ADD(v)                                                                                \
    do {                                                                                             \
        int64_t t_;                                                                                  \
        if (__builtin_add_overflow(acc, (v), &t_)) {                                                 \
            wide += acc;                                                                             \
            acc = (v);                                                                               \
        } else {                                                                                     \
            acc = t_;                                                                                \
        }                                                                                            \
    } while (0)

static fb_status count_sum_sink(void *user, void *global, void *local, const fb_chunk *chunk)
{
    fb_count_sum *s = user;
    fb_count_sum_state *l = local;
    if (s->column >= chunk->n_columns)
        return fb_stage_error(s->ctx, FB_ERR_INVALID_ARG, "the sum reads column %zu of a chunk with %zu columns",
                              s->column, chunk->n_columns);
    const fb_column *col = &chunk->columns[s->column];
    if (col->type != FB_TYPE_INT64)
        return fb_stage_error(s->ctx, FB_ERR_UNSUPPORTED_TYPE, "column %zu has type %s, the sum needs int64", s->column,
                              fb_type_name(col->type));
    const int64_t *x = (const int64_t *)col->data + col->offset;
    int64_t acc = 0, count = 0;
    fb_i128 wide = 0;
    const uint32_t *sel = chunk->sel;
    int64_t n = chunk->sel ? chunk->n_sel : chunk->rows;
    if (!col->validity) {
        /* Four exact 128-bit sums (add + adc each) instead of one overflow-checked chain: the
         * additions of neighbouring rows no longer wait on each other (measured 2x on this sink). */
        count = n;
        fb_i128 w0 = 0, w1 = 0, w2 = 0, w3 = 0;
        int64_t j = 0;
        if (sel) {
            for (; j + 4 <= n; j += 4) {
                w0 += x[sel[j]];
                w1 += x[sel[j + 1]];
                w2 += x[sel[j + 2]];
                w3 += x[sel[j + 3]];
            }
            for (; j < n; j++)
                w0 += x[sel[j]];
        } else {
            for (; j + 4 <= n; j += 4) {
                w0 += x[j];
                w1 += x[j + 1];
                w2 += x[j + 2];
                w3 += x[j + 3];
            }
            for (; j < n; j++)
                w0 += x[j];
        }
        wide = w0 + w1 + w2 + w3;
    } else {
        /* the filter drops nulls already; a pipeline without one relies on this */
        for (int64_t j = 0; j < n; j++) {
            int64_t i = sel ? (int64_t)sel[j] : j;
            if (fb_column_is_valid(col, i)) {
                count++;
                FB_SUM_ADD(x[i]);
            }
        }
    }
    l->sum += wide + acc;
    l->count += count;
    return FB_OK;
}

static fb_status count_sum_combine(void *user, void *global, void *local)
{
    fb_count_sum_state *g = global;
    const fb_count_sum_state *l = local;
    g->sum += l->sum;
    g->count += l->count;
    return FB_OK;
}

static fb_status count_sum_finalize(void *user, void *global)
{
    fb_count_sum *s = user;
    const fb_count_sum_state *g = global;
    if (g->sum > INT64_MAX || g->sum < INT64_MIN)
        return fb_stage_error(s->ctx, FB_ERR_OVERFLOW, "the sum of %lld int64 values does not fit int64",
                              (long long)g->count);
    s->result->count = g->count;
    s->result->sum = (int64_t)g->sum;
    return FB_OK;
}

fb_status fb_pipeline_add_scan_filter_sum(fb_query *q, const fb_column *col, int64_t lo, int64_t hi,
                                          int64_t morsel_rows, fb_scan_sum_result *result, fb_pipeline **out)
{
    FB_RETURN_ERROR_IF(!q, NULL, FB_ERR_INVALID_ARG, "q must not be NULL");
    fb_ctx *ctx = q->ctx;
    FB_RETURN_ERROR_IF(!result, ctx, FB_ERR_INVALID_ARG, "result must not be NULL");
    FB_FORWARD_IF_ERROR(fb_check_column(ctx, col, __func__, "col"));
    FB_RETURN_ERROR_IF(col->type != FB_TYPE_INT64, ctx, FB_ERR_UNSUPPORTED_TYPE, "col has type %s, expected int64",
                       fb_type_name(col->type));
    fb_table table = {1, col, NULL};
    fb_source source;
    FB_FORWARD_IF_ERROR(fb_source_table(ctx, &table, morsel_rows, &source));
    fb_operator filter;
    fb_status st = fb_operator_select_range(ctx, 0, FB_TYPE_INT64, &lo, &hi, &filter);
    if (st != FB_OK) {
        source.destroy(source.user);
        return st;
    }
    fb_count_sum *s = NULL;
    st = FB_ALLOC(ctx, sizeof *s, &s);
    if (st != FB_OK) {
        source.destroy(source.user);
        filter.destroy(filter.user);
        return st;
    }
    s->ctx = ctx;
    s->column = 0;
    s->result = result;
    fb_sink sink;
    memset(&sink, 0, sizeof sink);
    sink.name = "count_sum";
    sink.init_global = count_sum_init_global;
    sink.init_local = count_sum_init_local;
    sink.sink = count_sum_sink;
    sink.combine = count_sum_combine;
    sink.finalize = count_sum_finalize;
    sink.destroy_local = count_sum_destroy_local;
    sink.destroy_global = count_sum_destroy_global;
    sink.destroy = count_sum_destroy;
    sink.user = s;
    return fb_query_add_pipeline(q, "scan-filter-sum", &source, &filter, 1, &sink, out);
}

fb_status fb_run_scan_filter_sum(fb_ctx *ctx, const fb_column *col, int64_t lo, int64_t hi, int64_t morsel_rows,
                                 int64_t *count, int64_t *sum, fb_stats *stats)
{
    FB_RETURN_ERROR_IF(!ctx || !count || !sum, ctx, FB_ERR_INVALID_ARG, "ctx, count and sum must not be NULL");
    fb_query *q = NULL;
    FB_FORWARD_IF_ERROR(fb_query_create(ctx, &q));
    fb_scan_sum_result result = {0, 0};
    fb_status st = fb_pipeline_add_scan_filter_sum(q, col, lo, hi, morsel_rows, &result, NULL);
    if (st == FB_OK) {
        st = fb_query_run(q);
        if (stats && fb_query_workers(q) > 0) {
            /* keeps fb_query_run's message: fb_query_stats cannot fail here */
            fb_query_stats(q, -1, -1, stats);
        }
    }
    if (st == FB_OK) {
        *count = result.count;
        *sum = result.sum;
    }
    fb_query_destroy(q);
    return st;
}
