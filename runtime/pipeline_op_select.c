/* pipeline_op_select.c - the built-in filter operator: `column op constant` or `lo <= column <= hi`
 * through the CPU selection kernels (fb_select_cmp / fb_select_range) on the worker's thread; the
 * output keeps the input's columns and carries the selected rows as its selection vector. */
#include "fb_internal.h"

#include <string.h>

typedef struct fb_select_op {
    fb_ctx *ctx;
    size_t column;
    fb_type type;
    bool range;   /* fb_select_range over [a, b], else fb_select_cmp(op, a) */
    fb_cmp op;
    uint64_t a, b; /* the constants' bytes (width of type) */
} fb_select_op;

typedef struct fb_select_local {
    int node;
    uint32_t *sel; /* on the worker's node */
    int64_t cap;
} fb_select_local;

static void select_destroy(void *user)
{
    fb_select_op *s = user;
    if (s)
        fb_free(s->ctx, s, sizeof *s);
}

static fb_status select_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    fb_select_op *s = user;
    fb_select_local *l = NULL;
    FB_FORWARD_IF_ERROR(fb_numa_alloc(s->ctx, w->numa_node, sizeof *l, (void **)&l));
    memset(l, 0, sizeof *l);
    l->node = w->numa_node;
    *local = l;
    return FB_OK;
}

static void select_destroy_local(void *user, void *global, void *local)
{
    fb_select_op *s = user;
    fb_select_local *l = local;
    if (!l)
        return;
    fb_numa_free(s->ctx, l->node, l->sel, (size_t)l->cap * sizeof *l->sel);
    fb_numa_free(s->ctx, l->node, l, sizeof *l);
}

static fb_status select_execute(void *user, void *global, void *local, const fb_chunk *in, fb_chunk *out,
                                fb_op_result *result)
{
    fb_select_op *s = user;
    fb_select_local *l = local;
    if (s->column >= in->n_columns)
        return fb_stage_error(s->ctx, FB_ERR_INVALID_ARG, "the filter reads column %zu of a chunk with %zu columns",
                              s->column, in->n_columns);
    const fb_column *col = &in->columns[s->column];
    if (col->type != s->type)
        return fb_stage_error(s->ctx, FB_ERR_UNSUPPORTED_TYPE, "column %zu has type %s, the filter's constants %s",
                              s->column, fb_type_name(col->type), fb_type_name(s->type));
    if (l->cap < in->rows) {
        int64_t cap = in->rows < 1024 ? 1024 : in->rows;
        uint32_t *sel = NULL;
        FB_FORWARD_IF_ERROR(fb_numa_alloc(s->ctx, l->node, (size_t)cap * sizeof *sel, (void **)&sel));
        fb_numa_free(s->ctx, l->node, l->sel, (size_t)l->cap * sizeof *l->sel);
        l->sel = sel;
        l->cap = cap;
    }
    int64_t n = 0;
    int64_t n_in = in->sel ? in->n_sel : 0;
    if (s->range)
        FB_FORWARD_IF_ERROR(fb_select_range(s->ctx, col, &s->a, &s->b, in->sel, n_in, l->sel, l->cap, &n));
    else
        FB_FORWARD_IF_ERROR(fb_select_cmp(s->ctx, col, s->op, &s->a, in->sel, n_in, l->sel, l->cap, &n));
    *out = *in;
    out->sel = l->sel;
    out->n_sel = n;
    return FB_OK;
}

static fb_status select_make(fb_ctx *ctx, size_t column, fb_type type, bool range, fb_cmp op, const void *a,
                             const void *b, fb_operator *out, const char *where)
{
    if (!ctx || !a || (range && !b) || !out)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "ctx, the constant(s) and out must not be NULL");
    size_t width = fb_type_width(type);
    if (width == 0)
        return fb_set_error(ctx, FB_ERR_UNSUPPORTED_TYPE, where, "unknown column type %d", (int)type);
    if (!range && (unsigned)op > FB_CMP_GE)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "unknown comparison %d", (int)op);
    fb_select_op *s = NULL;
    FB_FORWARD_IF_ERROR(fb_alloc(ctx, sizeof *s, 64, (void **)&s, where));
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->column = column;
    s->type = type;
    s->range = range;
    s->op = op;
    memcpy(&s->a, a, width);
    if (range)
        memcpy(&s->b, b, width);
    memset(out, 0, sizeof *out);
    out->name = range ? "select_range" : "select_cmp";
    out->init_local = select_init_local;
    out->execute = select_execute;
    out->destroy_local = select_destroy_local;
    out->destroy = select_destroy;
    out->user = s;
    return FB_OK;
}

fb_status fb_operator_select_cmp(fb_ctx *ctx, size_t column, fb_type type, fb_cmp op, const void *value,
                                 fb_operator *out)
{
    return select_make(ctx, column, type, false, op, value, NULL, out, __func__);
}

fb_status fb_operator_select_range(fb_ctx *ctx, size_t column, fb_type type, const void *lo, const void *hi,
                                   fb_operator *out)
{
    return select_make(ctx, column, type, true, FB_CMP_EQ, lo, hi, out, __func__);
}
