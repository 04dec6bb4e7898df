/* plan.c - query plans (fb_plan.h): the builder, the split into pipelines at the breakers, the
 * plan's own runtime stages (filter, project, join probe, limit operators; hash-build, aggregation,
 * sort and collect sinks; a source over materialized intermediates) and explain.
 *
 * A run compiles the node tree bottom-up into one fb_query: a node that streams (filter, project,
 * probe side of a join, limit) becomes an operator of the pipeline under construction; a breaker ends
 * it with a sink (the build side of a join: a hash table over the materialized build rows; an
 * aggregation: per-worker fb_agg tables merged at combine; a sort: rows materialized then sorted at
 * finalize) and its output becomes the source of the next pipeline, which depends on it. Intermediates
 * ("mats") are column buffers owned by the run. */
#include "fb/fb_plan.h"
#include "fb/fb_cl.h"
#include "fb/fb_expr.h"

#include "fb_cl_internal.h"
#include "fb_internal.h"
#include "fb_kernels_common.h"
#include "fb_plan_cl_internal.h"
#include "fb_plan_cost_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- nodes ----------------------------------------------------------------------------------------- */

typedef enum node_kind { N_SCAN, N_FILTER, N_PROJECT, N_JOIN, N_AGG, N_SORT, N_LIMIT } node_kind;

typedef struct pred {
    fb_plan_pred p;
    uint8_t value[8], lo[8], hi[8]; /* constants in the column's type */
    void *in;                       /* n_in values in the column's type */
} pred;

typedef struct pnode {
    node_kind kind;
    int input, build;
    int n_cols;
    fb_type types[FB_PLAN_MAX_COLUMNS];
    char names[FB_PLAN_MAX_COLUMNS][32];
    /* scan */
    fb_column scan[FB_PLAN_MAX_COLUMNS];
    int64_t scan_rows;
    char table[32];
    /* filter */
    pred preds[FB_PLAN_MAX_PREDS];
    size_t n_preds;
    /* project */
    fb_plan_arith op;
    size_t left, right;
    int right_is_const;
    int64_t right_value;
    /* join */
    size_t pkeys[FB_JOIN_MAX_KEYS], bkeys[FB_JOIN_MAX_KEYS], n_keys;
    fb_join_type jtype;
    size_t payload[FB_PLAN_MAX_COLUMNS], n_payload;
    /* aggregate */
    size_t akeys[FB_AGG_MAX_KEYS], n_akeys;
    fb_plan_agg aggs[FB_PLAN_MAX_COLUMNS];
    size_t n_aggs;
    /* sort / limit */
    fb_plan_sort_key skeys[FB_PLAN_MAX_COLUMNS];
    size_t n_skeys;
    int64_t limit;
} pnode;

struct fb_plan {
    fb_ctx *ctx;
    pnode *nodes;
    int n_nodes, cap;
    fb_plan_calibration cal; /* the cost model's rates (has_cal), set or read from the default file */
    int has_cal;
};

const char *fb_placement_name(fb_placement placement)
{
    switch (placement) {
    case FB_PLACEMENT_CPU:
        return "cpu";
    case FB_PLACEMENT_GPU:
        return "gpu";
    case FB_PLACEMENT_HYBRID:
        return "hybrid";
    case FB_PLACEMENT_AUTO:
        return "auto";
    }
    return "invalid";
}

fb_status fb_plan_create(fb_ctx *ctx, fb_plan **out)
{
    FB_RETURN_ERROR_IF(!ctx || !out, ctx, FB_ERR_INVALID_ARG, "ctx and out must not be NULL");
    fb_plan *p = calloc(1, sizeof *p);
    FB_RETURN_ERROR_IF(!p, ctx, FB_ERR_OUT_OF_MEMORY, "no memory for a plan");
    p->ctx = ctx;
    *out = p;
    return FB_OK;
}

void fb_plan_destroy(fb_plan *plan)
{
    if (!plan)
        return;
    for (int i = 0; i < plan->n_nodes; i++)
        for (size_t k = 0; k < plan->nodes[i].n_preds; k++)
            free(plan->nodes[i].preds[k].in);
    free(plan->nodes);
    free(plan);
}

/* A new node (zeroed) or NULL with the error recorded. */
static pnode *new_node(fb_plan *p, node_kind kind, const char *where, fb_plan_node *id)
{
    if (p->n_nodes == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        pnode *n = realloc(p->nodes, sizeof *n * (size_t)cap);
        if (!n) {
            fb_set_error(p->ctx, FB_ERR_OUT_OF_MEMORY, where, "no memory for a plan node");
            return NULL;
        }
        p->nodes = n;
        p->cap = cap;
    }
    pnode *n = &p->nodes[p->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->input = n->build = -1;
    n->limit = -1;
    *id = p->n_nodes++;
    return n;
}

static const pnode *get_node(const fb_plan *p, fb_plan_node id)
{
    return p && id >= 0 && id < p->n_nodes ? &p->nodes[id] : NULL;
}

static int is_int_type(fb_type t)
{
    return (t >= FB_TYPE_INT8 && t <= FB_TYPE_UINT64) || t == FB_TYPE_DATE32;
}

static void copy_schema(pnode *dst, const pnode *src)
{
    dst->n_cols = src->n_cols;
    memcpy(dst->types, src->types, sizeof dst->types);
    memcpy(dst->names, src->names, sizeof dst->names);
}

static void set_col(pnode *n, int i, fb_type t, const char *name)
{
    n->types[i] = t;
    snprintf(n->names[i], sizeof n->names[i], "%s", name);
}

fb_status fb_plan_scan(fb_plan *plan, const fb_table *table, const char *name, const size_t *columns, size_t n,
                       fb_plan_node *out)
{
    FB_RETURN_ERROR_IF(!plan || !table || !out || (n && !columns), plan ? plan->ctx : NULL, FB_ERR_INVALID_ARG,
                       "plan, table and out must not be NULL (columns only when n is 0)");
    fb_ctx *ctx = plan->ctx;
    int64_t rows = 0;
    FB_FORWARD_IF_ERROR(fb_table_validate(ctx, table, &rows));
    size_t cols = n ? n : table->n_columns;
    FB_RETURN_ERROR_IF(cols == 0 || cols > FB_PLAN_MAX_COLUMNS, ctx, FB_ERR_INVALID_ARG,
                       "a scan reads 1..%d columns, not %zu", FB_PLAN_MAX_COLUMNS, cols);
    for (size_t i = 0; i < n; i++)
        FB_RETURN_ERROR_IF(columns[i] >= table->n_columns, ctx, FB_ERR_INVALID_ARG,
                           "column %zu is not in the table (%zu columns)", columns[i], table->n_columns);
    fb_plan_node id;
    pnode *node = new_node(plan, N_SCAN, __func__, &id);
    if (!node)
        return FB_ERR_OUT_OF_MEMORY;
    node->n_cols = (int)cols;
    node->scan_rows = rows;
    snprintf(node->table, sizeof node->table, "%s", name ? name : "table");
    for (size_t i = 0; i < cols; i++) {
        size_t c = n ? columns[i] : i;
        node->scan[i] = table->columns[c];
        char buf[32];
        if (table->names && table->names[c])
            snprintf(buf, sizeof buf, "%s", table->names[c]);
        else
            snprintf(buf, sizeof buf, "c%zu", c);
        set_col(node, (int)i, table->columns[c].type, buf);
    }
    *out = id;
    return FB_OK;
}

/* Writes the int64 constant v as a value of type t; -1 when it does not fit. */
static int int_constant(fb_type t, int64_t v, void *dst)
{
    switch (t) {
#define FIT(T, TY, LO, HI)                                                                            \
    case T:                                                                                           \
        if (v < (int64_t)(LO) || v > (int64_t)(HI))                                                   \
            return -1;                                                                                \
        {                                                                                             \
            TY x = (TY)v;                                                                             \
            memcpy(dst, &x, sizeof x);                                                                \
        }                                                                                             \
        return 0;
        FIT(FB_TYPE_INT8, int8_t, INT8_MIN, INT8_MAX)
        FIT(FB_TYPE_INT16, int16_t, INT16_MIN, INT16_MAX)
        FIT(FB_TYPE_INT32, int32_t, INT32_MIN, INT32_MAX)
        FIT(FB_TYPE_DATE32, int32_t, INT32_MIN, INT32_MAX)
        FIT(FB_TYPE_INT64, int64_t, INT64_MIN, INT64_MAX)
        FIT(FB_TYPE_UINT8, uint8_t, 0, UINT8_MAX)
        FIT(FB_TYPE_UINT16, uint16_t, 0, UINT16_MAX)
        FIT(FB_TYPE_UINT32, uint32_t, 0, UINT32_MAX)
        FIT(FB_TYPE_UINT64, uint64_t, 0, INT64_MAX)
#undef FIT
    default:
        return -1;
    }
}

static int float_constant(fb_type t, double v, void *dst)
{
    if (t == FB_TYPE_FLOAT64) {
        memcpy(dst, &v, 8);
        return 0;
    }
    float f = (float)v;
    if (!isnan(v) && (double)f != v)
        return -1;
    memcpy(dst, &f, 4);
    return 0;
}

fb_status fb_plan_filter(fb_plan *plan, fb_plan_node input, const fb_plan_pred *preds, size_t n, fb_plan_node *out)
{
    FB_RETURN_ERROR_IF(!plan || !out || (n && !preds), plan ? plan->ctx : NULL, FB_ERR_INVALID_ARG,
                       "plan, preds and out must not be NULL");
    fb_ctx *ctx = plan->ctx;
    const pnode *in = get_node(plan, input);
    FB_RETURN_ERROR_IF(!in, ctx, FB_ERR_INVALID_ARG, "input node %d does not exist", (int)input);
    FB_RETURN_ERROR_IF(n == 0 || n > FB_PLAN_MAX_PREDS, ctx, FB_ERR_INVALID_ARG, "a filter has 1..%d predicates",
                       FB_PLAN_MAX_PREDS);
    pred tmp[FB_PLAN_MAX_PREDS];
    memset(tmp, 0, sizeof tmp);
    fb_status st = FB_OK;
    for (size_t k = 0; k < n && st == FB_OK; k++) {
        const fb_plan_pred *p = &preds[k];
        tmp[k].p = *p;
        tmp[k].p.in_values = NULL;
        if (p->column >= (size_t)in->n_cols) {
            st = FB_ERROR(ctx, FB_ERR_INVALID_ARG, "predicate %zu: column %zu is not in the input (%d columns)", k,
                          p->column, in->n_cols);
            break;
        }
        fb_type t = in->types[p->column];
        int flt = t == FB_TYPE_FLOAT32 || t == FB_TYPE_FLOAT64;
        if (p->kind == FB_PLAN_PRED_CMP) {
            if ((unsigned)p->op > FB_CMP_GE)
                st = FB_ERROR(ctx, FB_ERR_INVALID_ARG, "predicate %zu: unknown comparison %d", k, (int)p->op);
            else if (flt ? float_constant(t, p->fvalue, tmp[k].value) : int_constant(t, p->value, tmp[k].value))
                st = FB_ERROR(ctx, FB_ERR_OUT_OF_RANGE, "predicate %zu: the constant does not fit %s column '%s'", k,
                              fb_type_name(t), in->names[p->column]);
        } else if (p->kind == FB_PLAN_PRED_BETWEEN) {
            if (flt ? float_constant(t, p->flo, tmp[k].lo) || float_constant(t, p->fhi, tmp[k].hi)
                    : int_constant(t, p->lo, tmp[k].lo) || int_constant(t, p->hi, tmp[k].hi))
                st = FB_ERROR(ctx, FB_ERR_OUT_OF_RANGE, "predicate %zu: a bound does not fit %s column '%s'", k,
                              fb_type_name(t), in->names[p->column]);
        } else if (p->kind == FB_PLAN_PRED_IN) {
            if (flt || !is_int_type(t))
                st = FB_ERROR(ctx, FB_ERR_UNSUPPORTED_TYPE, "predicate %zu: IN takes integer columns, not %s", k,
                              fb_type_name(t));
            else if (!p->in_values || p->n_in == 0 || p->n_in > FB_SELECT_IN_MAX)
                st = FB_ERROR(ctx, FB_ERR_INVALID_ARG, "predicate %zu: IN needs 1..%d values", k, FB_SELECT_IN_MAX);
            else if (!(tmp[k].in = malloc(fb_type_width(t) * p->n_in)))
                st = FB_ERROR(ctx, FB_ERR_OUT_OF_MEMORY, "no memory for an IN list");
            for (size_t v = 0; st == FB_OK && v < p->n_in; v++)
                if (int_constant(t, p->in_values[v], (char *)tmp[k].in + v * fb_type_width(t)))
                    st = FB_ERROR(ctx, FB_ERR_OUT_OF_RANGE, "predicate %zu: IN value %zu does not fit %s", k, v,
                                  fb_type_name(t));
        } else {
            st = FB_ERROR(ctx, FB_ERR_INVALID_ARG, "predicate %zu: unknown kind %d", k, (int)p->kind);
        }
    }
    fb_plan_node id = -1;
    pnode *node = st == FB_OK ? new_node(plan, N_FILTER, __func__, &id) : NULL;
    if (!node) {
        for (size_t k = 0; k < n; k++)
            free(tmp[k].in);
        return st == FB_OK ? FB_ERR_OUT_OF_MEMORY : st;
    }
    in = get_node(plan, input); /* new_node may have moved the array */
    copy_schema(node, in);
    node->input = input;
    memcpy(node->preds, tmp, sizeof tmp);
    node->n_preds = n;
    *out = id;
    return FB_OK;
}

static int project_input_ok(fb_type t)
{
    return (t >= FB_TYPE_INT8 && t <= FB_TYPE_INT64) || (t >= FB_TYPE_UINT8 && t <= FB_TYPE_UINT32) ||
           t == FB_TYPE_DATE32;
}

fb_status fb_plan_project(fb_plan *plan, fb_plan_node input, fb_plan_arith op, size_t left, size_t right,
                          int right_is_const, int64_t right_value, fb_plan_node *out)
{
    FB_RETURN_ERROR_IF(!plan || !out, plan ? plan->ctx : NULL, FB_ERR_INVALID_ARG, "plan and out must not be NULL");
    fb_ctx *ctx = plan->ctx;
    const pnode *in = get_node(plan, input);
    FB_RETURN_ERROR_IF(!in, ctx, FB_ERR_INVALID_ARG, "input node %d does not exist", (int)input);
    FB_RETURN_ERROR_IF((unsigned)op > FB_PLAN_MUL, ctx, FB_ERR_INVALID_ARG, "unknown arithmetic %d", (int)op);
    FB_RETURN_ERROR_IF(left >= (size_t)in->n_cols || (!right_is_const && right >= (size_t)in->n_cols), ctx,
                       FB_ERR_INVALID_ARG, "a column is not in the input (%d columns)", in->n_cols);
    FB_RETURN_ERROR_IF(in->n_cols == FB_PLAN_MAX_COLUMNS, ctx, FB_ERR_INVALID_ARG, "more than %d columns",
                       FB_PLAN_MAX_COLUMNS);
    FB_RETURN_ERROR_IF(!project_input_ok(in->types[left]) || (!right_is_const && !project_input_ok(in->types[right])),
                       ctx, FB_ERR_UNSUPPORTED_TYPE, "arithmetic takes integer columns up to int64/uint32");
    fb_plan_node id;
    pnode *node = new_node(plan, N_PROJECT, __func__, &id);
    if (!node)
        return FB_ERR_OUT_OF_MEMORY;
    in = get_node(plan, input);
    copy_schema(node, in);
    node->input = input;
    node->op = op;
    node->left = left;
    node->right = right;
    node->right_is_const = right_is_const;
    node->right_value = right_value;
    char name[32];
    static const char ops[] = "+-*";
    if (right_is_const)
        snprintf(name, sizeof name, "%.12s%c%lld", in->names[left], ops[op], (long long)right_value);
    else
        snprintf(name, sizeof name, "%.12s%c%.12s", in->names[left], ops[op], in->names[right]);
    set_col(node, node->n_cols++, FB_TYPE_INT64, name);
    *out = id;
    return FB_OK;
}

fb_status fb_plan_join(fb_plan *plan, fb_plan_node probe, fb_plan_node build, const size_t *probe_keys,
                       const size_t *build_keys, size_t n_keys, fb_join_type type, const size_t *payload,
                       size_t n_payload, fb_plan_node *out)
{
    FB_RETURN_ERROR_IF(!plan || !out || !probe_keys || !build_keys || (n_payload && !payload),
                       plan ? plan->ctx : NULL, FB_ERR_INVALID_ARG, "NULL argument");
    fb_ctx *ctx = plan->ctx;
    const pnode *pn = get_node(plan, probe), *bn = get_node(plan, build);
    FB_RETURN_ERROR_IF(!pn || !bn || probe == build, ctx, FB_ERR_INVALID_ARG, "bad probe (%d) or build (%d) node",
                       (int)probe, (int)build);
    FB_RETURN_ERROR_IF(n_keys == 0 || n_keys > FB_JOIN_MAX_KEYS, ctx, FB_ERR_INVALID_ARG,
                       "a join has 1..%d key pairs", FB_JOIN_MAX_KEYS);
    FB_RETURN_ERROR_IF(type != FB_JOIN_INNER && type != FB_JOIN_LEFT && type != FB_JOIN_SEMI && type != FB_JOIN_ANTI,
                       ctx, FB_ERR_INVALID_ARG, "plans join inner, left, semi or anti (type %d)", (int)type);
    int payload_cols = type == FB_JOIN_INNER || type == FB_JOIN_LEFT ? (int)n_payload : 0;
    FB_RETURN_ERROR_IF(pn->n_cols + payload_cols > FB_PLAN_MAX_COLUMNS, ctx, FB_ERR_INVALID_ARG,
                       "more than %d columns", FB_PLAN_MAX_COLUMNS);
    for (size_t k = 0; k < n_keys; k++) {
        FB_RETURN_ERROR_IF(probe_keys[k] >= (size_t)pn->n_cols || build_keys[k] >= (size_t)bn->n_cols, ctx,
                           FB_ERR_INVALID_ARG, "key pair %zu names a column that does not exist", k);
        fb_type a = pn->types[probe_keys[k]], b = bn->types[build_keys[k]];
        FB_RETURN_ERROR_IF(a != b, ctx, FB_ERR_UNSUPPORTED_TYPE, "key pair %zu: %s probe key against %s build key", k,
                           fb_type_name(a), fb_type_name(b));
        FB_RETURN_ERROR_IF(a != FB_TYPE_INT32 && a != FB_TYPE_INT64 && a != FB_TYPE_DATE32 && a != FB_TYPE_UINT32 &&
                               a != FB_TYPE_UINT64,
                           ctx, FB_ERR_UNSUPPORTED_TYPE, "key pair %zu: %s keys are not supported", k, fb_type_name(a));
    }
    for (size_t k = 0; k < n_payload; k++)
        FB_RETURN_ERROR_IF(payload[k] >= (size_t)bn->n_cols, ctx, FB_ERR_INVALID_ARG,
                           "payload column %zu is not in the build side", payload[k]);
    fb_plan_node id;
    pnode *node = new_node(plan, N_JOIN, __func__, &id);
    if (!node)
        return FB_ERR_OUT_OF_MEMORY;
    pn = get_node(plan, probe);
    bn = get_node(plan, build);
    copy_schema(node, pn);
    node->input = probe;
    node->build = build;
    node->n_keys = n_keys;
    memcpy(node->pkeys, probe_keys, sizeof *probe_keys * n_keys);
    memcpy(node->bkeys, build_keys, sizeof *build_keys * n_keys);
    node->jtype = type;
    node->n_payload = (size_t)payload_cols;
    for (int k = 0; k < payload_cols; k++) {
        node->payload[k] = payload[k];
        set_col(node, node->n_cols++, bn->types[payload[k]], bn->names[payload[k]]);
    }
    *out = id;
    return FB_OK;
}

fb_status fb_plan_aggregate(fb_plan *plan, fb_plan_node input, const size_t *keys, size_t n_keys,
                            const fb_plan_agg *aggs, size_t n_aggs, fb_plan_node *out)
{
    FB_RETURN_ERROR_IF(!plan || !out || (n_keys && !keys) || (n_aggs && !aggs), plan ? plan->ctx : NULL,
                       FB_ERR_INVALID_ARG, "NULL argument");
    fb_ctx *ctx = plan->ctx;
    const pnode *in = get_node(plan, input);
    FB_RETURN_ERROR_IF(!in, ctx, FB_ERR_INVALID_ARG, "input node %d does not exist", (int)input);
    FB_RETURN_ERROR_IF(n_keys > FB_AGG_MAX_KEYS || n_keys + n_aggs == 0 || n_keys + n_aggs > FB_PLAN_MAX_COLUMNS,
                       ctx, FB_ERR_INVALID_ARG, "an aggregation has 0..%d keys and 1..%d outputs", FB_AGG_MAX_KEYS,
                       FB_PLAN_MAX_COLUMNS);
    fb_type rtypes[FB_PLAN_MAX_COLUMNS];
    for (size_t k = 0; k < n_keys; k++) {
        FB_RETURN_ERROR_IF(keys[k] >= (size_t)in->n_cols, ctx, FB_ERR_INVALID_ARG, "key %zu: no column %zu", k,
                           keys[k]);
        FB_RETURN_ERROR_IF(!is_int_type(in->types[keys[k]]), ctx, FB_ERR_UNSUPPORTED_TYPE,
                           "key %zu: cannot group by %s", k, fb_type_name(in->types[keys[k]]));
    }
    for (size_t a = 0; a < n_aggs; a++) {
        fb_type t = FB_TYPE_INVALID;
        if (aggs[a].kind != FB_AGG_COUNT_STAR) {
            FB_RETURN_ERROR_IF(aggs[a].column >= (size_t)in->n_cols, ctx, FB_ERR_INVALID_ARG,
                               "aggregate %zu: no column %zu", a, aggs[a].column);
            t = in->types[aggs[a].column];
        }
        FB_FORWARD_IF_ERROR(fb_agg_result_type(aggs[a].kind, aggs[a].kind == FB_AGG_COUNT_STAR ? FB_TYPE_INT64 : t,
                                               &rtypes[a]));
    }
    fb_plan_node id;
    pnode *node = new_node(plan, N_AGG, __func__, &id);
    if (!node)
        return FB_ERR_OUT_OF_MEMORY;
    in = get_node(plan, input);
    node->input = input;
    node->n_akeys = n_keys;
    if (n_keys)
        memcpy(node->akeys, keys, sizeof *keys * n_keys);
    node->n_aggs = n_aggs;
    if (n_aggs)
        memcpy(node->aggs, aggs, sizeof *aggs * n_aggs);
    static const char *fn[] = {"count_star", "count", "sum", "min", "max", "avg"};
    for (size_t k = 0; k < n_keys; k++)
        set_col(node, node->n_cols++, in->types[keys[k]], in->names[keys[k]]);
    for (size_t a = 0; a < n_aggs; a++) {
        char name[32];
        if (aggs[a].kind == FB_AGG_COUNT_STAR)
            snprintf(name, sizeof name, "count_star");
        else
            snprintf(name, sizeof name, "%s(%.20s)", fn[aggs[a].kind], in->names[aggs[a].column]);
        set_col(node, node->n_cols++, rtypes[a], name);
    }
    *out = id;
    return FB_OK;
}

fb_status fb_plan_sort(fb_plan *plan, fb_plan_node input, const fb_plan_sort_key *keys, size_t n_keys, int64_t limit,
                       fb_plan_node *out)
{
    FB_RETURN_ERROR_IF(!plan || !out || !keys, plan ? plan->ctx : NULL, FB_ERR_INVALID_ARG, "NULL argument");
    fb_ctx *ctx = plan->ctx;
    const pnode *in = get_node(plan, input);
    FB_RETURN_ERROR_IF(!in, ctx, FB_ERR_INVALID_ARG, "input node %d does not exist", (int)input);
    FB_RETURN_ERROR_IF(n_keys == 0 || n_keys > FB_PLAN_MAX_COLUMNS || limit < -1, ctx, FB_ERR_INVALID_ARG,
                       "a sort has 1..%d keys and a limit ≥ -1", FB_PLAN_MAX_COLUMNS);
    for (size_t k = 0; k < n_keys; k++)
        FB_RETURN_ERROR_IF(keys[k].column >= (size_t)in->n_cols, ctx, FB_ERR_INVALID_ARG, "sort key %zu: no column %zu",
                           k, keys[k].column);
    fb_plan_node id;
    pnode *node = new_node(plan, N_SORT, __func__, &id);
    if (!node)
        return FB_ERR_OUT_OF_MEMORY;
    copy_schema(node, get_node(plan, input));
    node->input = input;
    node->n_skeys = n_keys;
    memcpy(node->skeys, keys, sizeof *keys * n_keys);
    node->limit = limit;
    *out = id;
    return FB_OK;
}

fb_status fb_plan_limit(fb_plan *plan, fb_plan_node input, int64_t n, fb_plan_node *out)
{
    FB_RETURN_ERROR_IF(!plan || !out, plan ? plan->ctx : NULL, FB_ERR_INVALID_ARG, "NULL argument");
    FB_RETURN_ERROR_IF(!get_node(plan, input) || n < 0, plan->ctx, FB_ERR_INVALID_ARG,
                       "bad input node %d or negative limit", (int)input);
    fb_plan_node id;
    pnode *node = new_node(plan, N_LIMIT, __func__, &id);
    if (!node)
        return FB_ERR_OUT_OF_MEMORY;
    copy_schema(node, get_node(plan, input));
    node->input = input;
    node->limit = n;
    *out = id;
    return FB_OK;
}

int fb_plan_schema(const fb_plan *plan, fb_plan_node node, fb_type *types)
{
    const pnode *n = get_node(plan, node);
    if (!n || !types)
        return -1;
    memcpy(types, n->types, sizeof *types * (size_t)n->n_cols);
    return n->n_cols;
}

/* ---- materialized intermediates ------------------------------------------------------------------------ */

typedef struct mat {
    fb_ctx *ctx; /* whose allocator the buffers come from */
    int n_cols;
    fb_type types[FB_PLAN_MAX_COLUMNS];
    void *data[FB_PLAN_MAX_COLUMNS];
    uint8_t *valid[FB_PLAN_MAX_COLUMNS]; /* always allocated; has_nulls says whether it matters */
    int has_nulls[FB_PLAN_MAX_COLUMNS];
    int64_t rows, cap;
} mat;

/* Data-sized memory of plans (intermediates, operator buffers, perfect-hash arrays) comes from the
 * context's allocator, so that its memory limit and allocator hooks apply; small bookkeeping uses malloc. */

/* n blocks of sizes[i] bytes into outs[i], all or none (then an error is recorded for ctx). */
static fb_status plan_alloc_n(fb_ctx *ctx, void **outs, const size_t *sizes, int n)
{
    for (int i = 0; i < n; i++) {
        outs[i] = NULL;
        fb_status st = fb_alloc(ctx, sizes[i] ? sizes[i] : 1, 64, &outs[i], "fb_plan_run");
        if (st != FB_OK) {
            for (int j = 0; j < i; j++)
                fb_free(ctx, outs[j], sizes[j] ? sizes[j] : 1);
            return fb_stage_error(ctx, st, "%s", fb_last_error(ctx));
        }
    }
    return FB_OK;
}

static void plan_release(fb_ctx *ctx, void *p, size_t bytes)
{
    if (p)
        fb_free(ctx, p, bytes ? bytes : 1);
}

static size_t bitmap_bytes(int64_t rows)
{
    return (size_t)(rows + 7) / 8 + 8;
}

static void mat_init(mat *m, fb_ctx *ctx, int n_cols, const fb_type *types)
{
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
    m->n_cols = n_cols;
    memcpy(m->types, types, sizeof *types * (size_t)n_cols);
}

static void mat_free(mat *m)
{
    for (int c = 0; c < m->n_cols; c++) {
        if (m->cap) {
            plan_release(m->ctx, m->data[c], (size_t)m->cap * fb_type_width(m->types[c]));
            plan_release(m->ctx, m->valid[c], bitmap_bytes(m->cap));
        }
        m->data[c] = NULL;
        m->valid[c] = NULL;
    }
    m->rows = m->cap = 0;
}

static fb_status mat_reserve(fb_ctx *ctx, mat *m, int64_t rows)
{
    if (rows <= m->cap)
        return FB_OK;
    int64_t cap = m->cap ? m->cap : 1024;
    while (cap < rows)
        cap *= 2;
    void *blocks[2 * FB_PLAN_MAX_COLUMNS] = {0};
    size_t sizes[2 * FB_PLAN_MAX_COLUMNS] = {0};
    for (int c = 0; c < m->n_cols; c++) {
        sizes[2 * c] = (size_t)cap * fb_type_width(m->types[c]);
        sizes[2 * c + 1] = bitmap_bytes(cap);
    }
    if (plan_alloc_n(ctx, blocks, sizes, 2 * m->n_cols) != FB_OK)
        return fb_stage_error(ctx, FB_ERR_OUT_OF_MEMORY, "no memory for %lld intermediate rows", (long long)cap);
    for (int c = 0; c < m->n_cols; c++) {
        if (m->cap) {
            memcpy(blocks[2 * c], m->data[c], (size_t)m->rows * fb_type_width(m->types[c]));
            memcpy(blocks[2 * c + 1], m->valid[c], (size_t)(m->rows + 7) / 8);
            plan_release(ctx, m->data[c], (size_t)m->cap * fb_type_width(m->types[c]));
            plan_release(ctx, m->valid[c], bitmap_bytes(m->cap));
        }
        m->data[c] = blocks[2 * c];
        m->valid[c] = blocks[2 * c + 1];
    }
    m->cap = cap;
    return FB_OK;
}

static fb_column mat_view(const mat *m, int c, int64_t begin, int64_t rows)
{
    fb_column v = fb_column_make(m->types[c], m->data[c], rows, m->has_nulls[c] ? m->valid[c] : NULL);
    v.offset = begin;
    return v;
}

/* Copies bit range [from, from + n) of src to bit `to` of dst. */
static void copy_bits(uint8_t *dst, int64_t to, const uint8_t *src, int64_t from, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t s = from + i, d = to + i;
        int bit = src ? (src[s >> 3] >> (s & 7)) & 1 : 1;
        dst[d >> 3] = (uint8_t)((dst[d >> 3] & ~(1u << (d & 7))) | ((unsigned)bit << (d & 7)));
    }
}

/* Appends the live rows of `cols` (n_cols views of `rows` rows; sel NULL = all) to m. */
static fb_status mat_append(fb_ctx *ctx, mat *m, const fb_column *const *cols, int64_t rows, const uint32_t *sel,
                            int64_t n_sel)
{
    int64_t n = sel ? n_sel : rows;
    if (n == 0)
        return FB_OK;
    FB_FORWARD_IF_ERROR(mat_reserve(ctx, m, m->rows + n));
    for (int c = 0; c < m->n_cols; c++) {
        const fb_column *col = cols[c];
        size_t w = fb_type_width(m->types[c]);
        char *dst = (char *)m->data[c] + (size_t)m->rows * w;
        if (col->validity)
            m->has_nulls[c] = 1;
        if (sel) {
            fb_column_out o = {.type = m->types[c], .capacity = n, .data = dst};
            void *tmp = NULL;
            size_t tmp_bytes = bitmap_bytes(n);
            if (col->validity) {
                FB_FORWARD_IF_ERROR(plan_alloc_n(ctx, &tmp, &tmp_bytes, 1));
                o.validity = tmp;
            }
            fb_status st = fb_compact(ctx, col, sel, n, &o);
            if (st == FB_OK)
                copy_bits(m->valid[c], m->rows, tmp, 0, n);
            plan_release(ctx, tmp, tmp_bytes);
            FB_FORWARD_IF_ERROR(st);
        } else {
            memcpy(dst, (const char *)col->data + (size_t)col->offset * w, (size_t)n * w);
            copy_bits(m->valid[c], m->rows, col->validity, col->offset, n);
        }
    }
    m->rows += n;
    return FB_OK;
}

/* Appends all of src to dst (same schema). */
static fb_status mat_concat(fb_ctx *ctx, mat *dst, const mat *src)
{
    const fb_column *ptrs[FB_PLAN_MAX_COLUMNS];
    fb_column views[FB_PLAN_MAX_COLUMNS];
    for (int c = 0; c < src->n_cols; c++) {
        views[c] = mat_view(src, c, 0, src->rows);
        ptrs[c] = &views[c];
    }
    return mat_append(ctx, dst, ptrs, src->rows, NULL, 0);
}

/* ---- a run: the query being built and everything its stages share ----------------------------------- */

#define MAX_PIPES 64

typedef struct run run;

/* What the device did for one pipeline (explain analyze). */
typedef struct dev_counters {
    atomic_llong dev_morsels, cpu_morsels; /* morsels whose operators ran on the device / on the CPU */
    atomic_llong dev_rows, cpu_rows;       /* their rows */
    atomic_llong dev_ns, cpu_ns;           /* time in the operators on the device's worker / the CPU workers
                                              (hybrid: sizes the device's morsels) */
    atomic_llong h2d, d2h;                 /* bytes the device calls moved host -> device, device -> host */
    atomic_llong chained;                  /* device morsels whose operators ran as one chain (one job) */
} dev_counters;

/* The plain copy of dev_counters a result keeps. */
typedef struct dev_figures {
    long long dev_morsels, cpu_morsels, h2d, d2h, chained;
} dev_figures;

typedef struct join_state { /* the build side of one join, filled by its sink's finalize */
    const pnode *node;
    mat rows;                /* key columns first, then the payload columns */
    fb_hash_table *ht;       /* the general case */
    int32_t *direct;         /* or a perfect hash: build row of key dmin + i, -1 for none */
    fb_ctx *ctx;             /* whose allocator direct comes from */
    int64_t dmin;
    uint64_t drange;
    fb_cl_join_table *dev_table; /* OpenCL placements, one key column: the build side on the device */
    fb_cl_keys_table *dev_keys;  /* composite keys (device chains): the build tuples on the device, and */
    fb_cl_join_table *dev_ctable; /* the table over the keys they number the build rows with */
} join_state;

typedef struct agg_state {
    const pnode *node;
    fb_agg_spec spec;
    fb_type key_types[FB_AGG_MAX_KEYS];
    fb_agg_desc descs[FB_PLAN_MAX_COLUMNS];
    fb_agg_table *global;
    mat *out;
} agg_state;

typedef struct sort_state {
    const pnode *node;
    int64_t limit; /* ≥ 0: top-N */
    mat rows;      /* everything, then sorted into *out */
    mat *out;
} sort_state;

typedef struct limit_state {
    atomic_llong taken;
    int64_t limit;
} limit_state;

/* Sinks, for the cost model. */
enum { SINK_COLLECT, SINK_BUILD, SINK_AGG, SINK_SORT };

typedef struct pipe_desc {
    char text[1024];
    char note[160]; /* what the run chose (e.g. the join algorithm), written at finalize */
    /* what the cost model needs: the node whose output is the source (a scan or a breaker), the nodes
     * of the operators, the sink and the node whose rows enter it */
    int src_node;
    int op_nodes[64];
    int n_op_nodes;
    int sink_kind, sink_node, sink_in;
    int starts_with_run; /* depends on no other pipeline */
} pipe_desc;

struct run {
    fb_ctx *ctx;
    const fb_plan *plan;
    fb_query *q;
    int n_pipes;
    pipe_desc pipes[MAX_PIPES];
    void *owned[512]; /* states freed after the query */
    void (*owned_free[512])(void *);
    int n_owned;
    mat *mats[MAX_PIPES];
    int n_mats;
    /* OpenCL placement (gpu, hybrid, or what auto chose): see the "device" section below */
    fb_placement placement;   /* FB_PLACEMENT_CPU, _GPU or _HYBRID: where the operators run */
    int fallback;             /* 1: a device failure moves the work to the CPU (auto, hybrid); 0: it is an error */
    int64_t dev_morsel;       /* rows of the morsels the device takes */
    atomic_int dev_failed;    /* set once by the first device failure (then every stage runs on the CPU) */
    fb_status dev_status;     /* that failure, written by the thread that set dev_failed */
    char dev_msg[320];
    dev_counters dev[MAX_PIPES];
};

static void *run_keep(run *r, void *p, void (*fn)(void *))
{
    if (!p)
        return NULL;
    if (r->n_owned == 512) {
        fn(p);
        return NULL;
    }
    r->owned[r->n_owned] = p;
    r->owned_free[r->n_owned++] = fn;
    return p;
}

static mat *run_mat(run *r, int n_cols, const fb_type *types)
{
    if (r->n_mats == MAX_PIPES)
        return NULL;
    mat *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    mat_init(m, r->ctx, n_cols, types);
    r->mats[r->n_mats++] = m;
    return m;
}

/* The pipeline under construction. */
typedef struct stream {
    const pnode *scan; /* a base-table scan, or */
    mat *src;          /* a materialized intermediate */
    fb_pipeline *src_pipe; /* the pipeline that fills src */
    fb_operator ops[64];
    size_t n_ops;
    fb_pipeline *deps[64];
    int n_deps;
    char text[512];
    int src_node;     /* the cost model's record (pipe_desc) */
    int op_nodes[64];
    int *pipe_slot;   /* the operators' pipeline index (set by stream_finish) */
} stream;

static void text_add(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void text_add(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

/* ---- the source over a mat ------------------------------------------------------------------------- */

typedef struct mat_source {
    mat *m;                /* a materialized intermediate, or */
    const pnode *scan;     /* a base table (OpenCL placements; cpu uses fb_source_table()) */
    run *r;
    int pipe, has_ops;     /* the pipeline, and whether it has operators (for the device counters) */
    int64_t next, morsel, rows;
    int64_t dev_morsel;    /* rows of the device's morsels from this source */
    int share;             /* hybrid: a device morsel is at most the device's share of the rows */
} mat_source;

typedef struct mat_local {
    fb_column cols[FB_PLAN_MAX_COLUMNS];
    int worker;
} mat_local;

static int use_device(run *r, int worker);

/* hybrid: the rows of the device's next morsel. Its first is a CPU-sized one; then, from the time per row the
 * operators took on the device's worker and on the CPU workers so far in this pipeline, the device's share of
 * the rows left (its speed / the speed of all workers together), halved so that the last grabs shrink and the
 * device does not finish long after the CPU workers: between one CPU morsel and the device's largest. */
static int64_t hybrid_device_morsel(const mat_source *s, int64_t left, int workers)
{
    const dev_counters *d = &s->r->dev[s->pipe];
    long long dn = atomic_load(&d->dev_ns), dr = atomic_load(&d->dev_rows);
    long long cn = atomic_load(&d->cpu_ns), cr = atomic_load(&d->cpu_rows);
    if (dn <= 0 || dr <= 0 || cn <= 0 || cr <= 0)
        return s->morsel;
    double dev_speed = (double)dr / (double)dn, cpu_speed = (double)cr / (double)cn; /* rows per ns */
    int cpus = workers > 1 ? workers - 1 : 1;
    double share = dev_speed / (dev_speed + cpus * cpu_speed);
    int64_t size = (int64_t)(0.5 * share * (double)left);
    if (size > s->dev_morsel)
        size = s->dev_morsel;
    return size > s->morsel ? size : s->morsel;
}

static fb_status mat_next(void *user, void *global, const fb_worker_info *w, fb_morsel *out, int *done)
{
    mat_source *s = user;
    int64_t rows = s->m ? s->m->rows : s->rows;
    if (s->next >= rows) {
        *done = 1;
        return FB_OK;
    }
    /* The device takes large morsels: all workers under gpu, the designated worker under hybrid. A morsel
     * is run wherever the worker that takes it from the queue says (use_device()), so its size only
     * balances the work; a large morsel on a CPU worker is just a long one. */
    int64_t size = s->morsel;
    if (s->has_ops && use_device(s->r, w->worker)) {
        size = s->dev_morsel;
        if (s->share)
            size = hybrid_device_morsel(s, rows - s->next, w->workers);
    }
    out->begin = s->next;
    out->end = rows - s->next > size ? s->next + size : rows;
    out->numa_node = -1;
    s->next = out->end;
    return FB_OK;
}

static fb_status mat_init_global(void *user, fb_ctx *ctx, void **global)
{
    ((mat_source *)user)->next = 0;
    return FB_OK;
}

static fb_status mat_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    mat_local *l = calloc(1, sizeof(mat_local));
    *local = l;
    if (!l)
        return fb_stage_error(w->ctx, FB_ERR_OUT_OF_MEMORY, "no memory for a scan state");
    l->worker = w->worker;
    return FB_OK;
}

static void free_local(void *user, void *global, void *local)
{
    free(local);
}

static fb_status mat_scan(void *user, void *global, void *local, const fb_morsel *m, fb_chunk *out)
{
    mat_source *s = user;
    mat_local *l = local;
    int n_cols = s->m ? s->m->n_cols : s->scan->n_cols;
    for (int c = 0; c < n_cols; c++) {
        if (s->m) {
            l->cols[c] = mat_view(s->m, c, m->begin, m->end - m->begin);
        } else {
            l->cols[c] = s->scan->scan[c];
            l->cols[c].offset += m->begin;
            l->cols[c].length = m->end - m->begin;
        }
    }
    if (s->has_ops && s->r->placement != FB_PLACEMENT_CPU) {
        dev_counters *d = &s->r->dev[s->pipe];
        int dev = use_device(s->r, l->worker);
        atomic_fetch_add(dev ? &d->dev_morsels : &d->cpu_morsels, 1);
        atomic_fetch_add(dev ? &d->dev_rows : &d->cpu_rows, (long long)(m->end - m->begin));
    }
    out->rows = m->end - m->begin;
    out->n_columns = (size_t)n_cols;
    out->columns = l->cols;
    out->sel = NULL;
    out->n_sel = out->rows;
    return FB_OK;
}

static fb_status stream_source(run *r, stream *s, fb_source *src)
{
    if (s->scan && r->placement == FB_PLACEMENT_CPU) {
        fb_table t = {(size_t)s->scan->n_cols, s->scan->scan, NULL};
        return fb_source_table(r->ctx, &t, 0, src);
    }
    mat_source *ms = run_keep(r, calloc(1, sizeof *ms), free);
    if (!ms)
        return FB_ERROR(r->ctx, FB_ERR_OUT_OF_MEMORY, "no memory for a source");
    ms->m = s->scan ? NULL : s->src;
    ms->scan = s->scan;
    ms->rows = s->scan ? s->scan->scan_rows : 0;
    ms->r = r;
    ms->pipe = r->n_pipes;
    ms->has_ops = s->n_ops > 0;
    ms->morsel = FB_MORSEL_DEFAULT_ROWS;
    if (r->placement != FB_PLACEMENT_CPU && r->dev_morsel < ms->morsel)
        ms->morsel = r->dev_morsel; /* hybrid: CPU morsels no larger than the device's */
    ms->dev_morsel = r->dev_morsel;
    ms->share = r->placement == FB_PLACEMENT_HYBRID && !getenv("FB_PLAN_DEVICE_MORSEL");
    memset(src, 0, sizeof *src);
    src->name = s->scan ? "table" : "intermediate";
    src->init_global = mat_init_global;
    src->next_morsel = mat_next;
    src->init_local = mat_init_local;
    src->scan = mat_scan;
    src->destroy_local = free_local;
    src->user = ms;
    return FB_OK;
}

static fb_status chain_attach(run *r, stream *s, fb_operator *ops, size_t *n_ops, fb_source *src);

/* Adds the stream as a pipeline ending in `sink`. */
static fb_status stream_finish(run *r, stream *s, const char *name, const fb_sink *sink, const char *sink_text,
                               int sink_kind, int sink_node, int sink_in, fb_pipeline **out)
{
    FB_RETURN_ERROR_IF(r->n_pipes == MAX_PIPES, r->ctx, FB_ERR_INVALID_ARG, "more than %d pipelines", MAX_PIPES);
    fb_source src;
    FB_FORWARD_IF_ERROR(stream_source(r, s, &src));
    /* OpenCL placements: a chain operator in front runs the operators on the device morsels in one job */
    fb_operator ops[65];
    size_t n_ops = s->n_ops;
    memcpy(ops, s->ops, sizeof *ops * n_ops);
    FB_FORWARD_IF_ERROR(chain_attach(r, s, ops, &n_ops, &src));
    fb_pipeline *p = NULL;
    FB_FORWARD_IF_ERROR(fb_query_add_pipeline(r->q, name, &src, ops, n_ops, sink, &p));
    if (s->src_pipe)
        FB_FORWARD_IF_ERROR(fb_pipeline_depends_on(p, s->src_pipe));
    for (int i = 0; i < s->n_deps; i++)
        FB_FORWARD_IF_ERROR(fb_pipeline_depends_on(p, s->deps[i]));
    pipe_desc *pd = &r->pipes[r->n_pipes];
    pd->text[0] = '\0';
    text_add(pd->text, sizeof pd->text, "%s -> %s", s->text, sink_text);
    pd->src_node = s->src_node;
    pd->n_op_nodes = (int)s->n_ops;
    memcpy(pd->op_nodes, s->op_nodes, sizeof *pd->op_nodes * s->n_ops);
    pd->sink_kind = sink_kind;
    pd->sink_node = sink_node;
    pd->sink_in = sink_in;
    pd->starts_with_run = !s->src_pipe && s->n_deps == 0;
    if (s->pipe_slot)
        *s->pipe_slot = r->n_pipes;
    r->n_pipes++;
    *out = p;
    return FB_OK;
}

/* ---- operators ------------------------------------------------------------------------------------- */

#define PAIRS_CAP 65536 /* join pairs per probe step */

typedef struct buf_local { /* growable per-worker buffers of an operator */
    uint32_t *sel[2];
    int64_t cap;
    fb_column cols[FB_PLAN_MAX_COLUMNS];
    void *data[FB_PLAN_MAX_COLUMNS];
    uint8_t *valid[FB_PLAN_MAX_COLUMNS];
    int64_t data_cap;
    /* join probe */
    void *keys[FB_JOIN_MAX_KEYS];
    uint8_t *key_valid[FB_JOIN_MAX_KEYS];
    int64_t key_cap;
    int64_t *build_ids, *probe_ids;
    uint32_t *pair_sel;
    fb_join_cursor cursor;
    int pending;
    fb_column probe_keys[FB_JOIN_MAX_KEYS];
    const uint32_t *map; /* compacted key index -> chunk row, NULL = identity */
    fb_ctx *ctx;         /* the buffers above come from its allocator */
    int data_cols;       /* columns of data / valid allocated (data_cap rows each) */
    int worker;          /* the worker that owns this state (use_device()) */
    int64_t *dbuild, *dprobe; /* the device probe's pairs (dpairs_cap each) */
    int64_t dpairs_cap;
} buf_local;

static fb_status op_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    buf_local *l = calloc(1, sizeof(buf_local));
    *local = l;
    if (!l)
        return fb_stage_error(w->ctx, FB_ERR_OUT_OF_MEMORY, "no memory for an operator state");
    l->ctx = w->ctx;
    l->worker = w->worker;
    return FB_OK;
}

static void op_destroy_local(void *user, void *global, void *local)
{
    buf_local *l = local;
    if (!l)
        return;
    fb_ctx *ctx = l->ctx;
    for (int i = 0; i < 2; i++)
        plan_release(ctx, l->sel[i], sizeof(uint32_t) * (size_t)l->cap);
    for (int c = 0; c < FB_PLAN_MAX_COLUMNS; c++) {
        plan_release(ctx, l->data[c], (size_t)l->data_cap * 8);
        plan_release(ctx, l->valid[c], bitmap_bytes(l->data_cap));
    }
    for (int k = 0; k < FB_JOIN_MAX_KEYS; k++) {
        plan_release(ctx, l->keys[k], (size_t)l->key_cap * 8);
        plan_release(ctx, l->key_valid[k], bitmap_bytes(l->key_cap));
    }
    plan_release(ctx, l->build_ids, 8 * PAIRS_CAP);
    plan_release(ctx, l->probe_ids, 8 * PAIRS_CAP);
    plan_release(ctx, l->pair_sel, 4 * PAIRS_CAP);
    if (l->dpairs_cap) {
        plan_release(ctx, l->dbuild, 8 * (size_t)l->dpairs_cap);
        plan_release(ctx, l->dprobe, 8 * (size_t)l->dpairs_cap);
    }
    free(l);
}

static fb_status need_sel(fb_ctx *ctx, buf_local *l, int64_t rows)
{
    if (rows <= l->cap)
        return FB_OK;
    void *blocks[2];
    size_t sizes[2] = {sizeof(uint32_t) * (size_t)rows, sizeof(uint32_t) * (size_t)rows};
    FB_FORWARD_IF_ERROR(plan_alloc_n(ctx, blocks, sizes, 2));
    for (int i = 0; i < 2; i++) {
        plan_release(ctx, l->sel[i], sizeof(uint32_t) * (size_t)l->cap);
        l->sel[i] = blocks[i];
    }
    l->cap = rows;
    return FB_OK;
}

/* Output column buffers (8 bytes a value, any type) for `n_cols` columns of `rows` rows each. */
static fb_status need_data(fb_ctx *ctx, buf_local *l, int n_cols, int64_t rows)
{
    if (rows <= l->data_cap && n_cols <= l->data_cols)
        return FB_OK;
    /* Every allocated column is reallocated (all of one size, as op_destroy_local frees them). */
    n_cols = n_cols > l->data_cols ? n_cols : l->data_cols;
    rows = rows > l->data_cap ? rows : l->data_cap;
    void *blocks[2 * FB_PLAN_MAX_COLUMNS] = {0};
    size_t sizes[2 * FB_PLAN_MAX_COLUMNS] = {0};
    for (int c = 0; c < n_cols; c++) {
        sizes[2 * c] = (size_t)rows * 8;
        sizes[2 * c + 1] = bitmap_bytes(rows);
    }
    FB_FORWARD_IF_ERROR(plan_alloc_n(ctx, blocks, sizes, 2 * n_cols));
    for (int c = 0; c < n_cols; c++) { /* callers rewrite what they need: nothing is kept */
        plan_release(ctx, l->data[c], (size_t)l->data_cap * 8);
        plan_release(ctx, l->valid[c], bitmap_bytes(l->data_cap));
        l->data[c] = blocks[2 * c];
        l->valid[c] = blocks[2 * c + 1];
    }
    l->data_cap = rows;
    l->data_cols = n_cols;
    return FB_OK;
}

/* ---- the device (OpenCL placements) ------------------------------------------------------------------
 *
 * Under gpu placement every worker runs its morsels' operators (filter, projection, join probe) with the
 * fb_cl_* twins on the context's OpenCL device, over large morsels (run.dev_morsel rows); under hybrid only
 * worker 0 does (the device's driver), the other workers run the same pipeline's morsels on the CPU at the
 * same time. The twins' results equal the CPU kernels' bit for bit, so the sinks (on the host) combine
 * both. A device call that fails with a device status (FB_ERR_OPENCL, FB_ERR_DEVICE_MEMORY, FB_ERR_NO_DEVICE,
 * FB_ERR_CL_BUILD) under hybrid or auto is redone by the CPU kernel on the same input (the chunk an
 * operator got is untouched, and nothing was passed on), and every later stage of the run stays on the
 * CPU; under gpu the status is the run's. */

static int use_device(run *r, int worker)
{
    if (r->placement == FB_PLACEMENT_CPU || atomic_load(&r->dev_failed))
        return 0;
    return r->placement == FB_PLACEMENT_GPU || worker == 0;
}

static int is_device_status(fb_status st)
{
    return st == FB_ERR_OPENCL || st == FB_ERR_DEVICE_MEMORY || st == FB_ERR_NO_DEVICE || st == FB_ERR_CL_BUILD;
}

/* After a device call of `what` failed with st: 1 when the caller redoes the work on the CPU (and the
 * run's first failure is recorded and reported once on stderr unless FB_QUIET is set), 0 when st is the
 * caller's status. */
static int device_fallback(run *r, fb_status st, const char *what)
{
    if (!r->fallback || !is_device_status(st))
        return 0;
    int expected = 0;
    if (atomic_compare_exchange_strong(&r->dev_failed, &expected, 1)) {
        r->dev_status = st;
        snprintf(r->dev_msg, sizeof r->dev_msg, "%s: %s", what, fb_last_error(r->ctx));
        const char *quiet = getenv("FB_QUIET");
        if (!quiet || !quiet[0] || strcmp(quiet, "0") == 0)
            fprintf(stderr, "fb: gpu failed (%s: %s); ran on cpu\n", fb_status_name(st), r->dev_msg);
    }
    return 1;
}

/* The device counters of an operator's pipeline (user block {run, state, &pipe}). */
static dev_counters *op_dev(void *user)
{
    void **u = user;
    return &((run *)u[0])->dev[*(int *)u[2]];
}

static void dev_moved(dev_counters *d, int64_t h2d, int64_t d2h)
{
    atomic_fetch_add(&d->h2d, (long long)h2d);
    atomic_fetch_add(&d->d2h, (long long)d2h);
}

/* Bytes of `rows` values of a column (with its validity). */
static int64_t col_bytes(const fb_column *c, int64_t rows)
{
    return rows * (int64_t)fb_type_width(c->type) + (c->validity ? (rows + 7) / 8 : 0);
}

/* The selection of one predicate p over col: the OpenCL twin (dev) or the CPU kernel, the same arguments. */
static fb_status select_pred(fb_ctx *ctx, int dev, const pred *p, const fb_column *col, const uint32_t *cur,
                             int64_t n_cur, uint32_t *dst, int64_t rows, int64_t *n_out)
{
    if (p->p.kind == FB_PLAN_PRED_CMP)
        return (dev ? fb_cl_select_cmp : fb_select_cmp)(ctx, col, p->p.op, p->value, cur, n_cur, dst, rows, n_out);
    if (p->p.kind == FB_PLAN_PRED_BETWEEN)
        return (dev ? fb_cl_select_range : fb_select_range)(ctx, col, p->lo, p->hi, cur, n_cur, dst, rows, n_out);
    return (dev ? fb_cl_select_in : fb_select_in)(ctx, col, p->in, (int64_t)p->p.n_in, cur, n_cur, dst, rows, n_out);
}

/* filter */
static fb_status filter_execute(void *user, void *global, void *local, const fb_chunk *in, fb_chunk *out,
                                fb_op_result *result)
{
    const pnode *n = ((void **)user)[1];
    buf_local *l = local;
    run *r = global;
    fb_ctx *ctx = r->ctx; /* every stage shares the plan's context (the run is the operators' global) */
    *out = *in;
    if (in->n_sel == 0)
        return FB_OK;
    FB_FORWARD_IF_ERROR(need_sel(ctx, l, in->rows));
    int dev = use_device(r, l->worker);
    const uint32_t *cur = in->sel;
    int64_t n_cur = in->n_sel;
    int which = 0;
    for (size_t k = 0; k < n->n_preds && n_cur > 0; k++) {
        const pred *p = &n->preds[k];
        const fb_column *col = &in->columns[p->p.column];
        uint32_t *dst = l->sel[which];
        int64_t n_out = 0;
        fb_status st = FB_OK;
        if (dev) {
            st = select_pred(ctx, 1, p, col, cur, n_cur, dst, in->rows, &n_out);
            if (st == FB_OK)
                dev_moved(op_dev(user), col_bytes(col, in->rows) + (cur ? 4 * n_cur : 0), 4 * n_out);
            else if (device_fallback(r, st, "filter"))
                dev = 0;
            else
                return fb_stage_error(ctx, st, "filter on the device: %s", fb_last_error(ctx));
        }
        if (!dev) {
            st = select_pred(ctx, 0, p, col, cur, n_cur, dst, in->rows, &n_out);
            if (st != FB_OK)
                return fb_stage_error(ctx, st, "filter: %s", fb_last_error(ctx));
        }
        cur = dst;
        n_cur = n_out;
        which ^= 1;
    }
    out->sel = cur;
    out->n_sel = n_cur;
    return FB_OK;
}

static fb_status global_is_run(void *user, fb_ctx *ctx, void **global)
{
    /* user->run pointer is set as the operator's global so execute can reach the context. */
    *global = *(run **)user;
    return FB_OK;
}

/* The projection's kernels (widen, then arithmetic) on the device or the CPU: a op b (b NULL: the constant)
 * over `rows` rows (sel / n_sel: the live ones, NULL / 0 all) into l->data[out] / l->valid[out], with
 * l->data[1..2] for the widened inputs. */
static fb_status project_kernels(fb_ctx *ctx, int dev, const pnode *n, buf_local *l, const fb_column *a,
                                 const fb_column *b, const uint32_t *sel, int64_t n_sel, int64_t rows, int out,
                                 int64_t *h2d, int64_t *d2h)
{
    fb_column a64 = *a, b64 = b ? *b : *a;
    fb_status st = FB_OK;
    /* The expression kernels compute in one type: widen int8..int32, uint8..uint32 and date32 first. */
    for (int side = 0; side < 2 && st == FB_OK; side++) {
        const fb_column *c = side ? b : a;
        if (!c || c->type == FB_TYPE_INT64)
            continue;
        fb_column_out o = {.type = FB_TYPE_INT64, .capacity = rows, .data = l->data[1 + side],
                           .validity = l->valid[1 + side]};
        st = dev ? fb_cl_expr_cast(ctx, c, sel, n_sel, &o) : fb_expr_cast(ctx, c, sel, n_sel, &o);
        *h2d += col_bytes(c, rows) + 4 * n_sel;
        *d2h += 8 * rows + (rows + 7) / 8;
        *(side ? &b64 : &a64) =
            fb_column_make(FB_TYPE_INT64, l->data[1 + side], rows, (c->validity || sel) ? l->valid[1 + side] : NULL);
    }
    fb_column_out o = {.type = FB_TYPE_INT64, .capacity = rows, .data = l->data[out], .validity = l->valid[out]};
    static const fb_arith ops[] = {FB_ARITH_ADD, FB_ARITH_SUB, FB_ARITH_MUL};
    if (st == FB_OK && dev)
        st = b ? fb_cl_expr_arith(ctx, ops[n->op], &a64, &b64, sel, n_sel, &o)
               : fb_cl_expr_arith_const(ctx, ops[n->op], &a64, &n->right_value, 0, sel, n_sel, &o);
    else if (st == FB_OK)
        st = b ? fb_expr_arith(ctx, ops[n->op], &a64, &b64, sel, n_sel, &o)
               : fb_expr_arith_const(ctx, ops[n->op], &a64, &n->right_value, 0, sel, n_sel, &o);
    *h2d += col_bytes(&a64, rows) + (b ? col_bytes(&b64, rows) : 0) + 4 * n_sel;
    *d2h += 8 * rows + (rows + 7) / 8;
    return st;
}

/* The projection on the device over the live rows only: they are compacted on the host (the expression
 * kernels compute densely), computed on the device, and put back at their rows. */
static fb_status project_device(fb_ctx *ctx, const pnode *n, buf_local *l, const fb_chunk *in, int64_t *h2d,
                                int64_t *d2h)
{
    const fb_column *a = &in->columns[n->left], *b = n->right_is_const ? NULL : &in->columns[n->right];
    if (!in->sel)
        return project_kernels(ctx, 1, n, l, a, b, NULL, 0, in->rows, 0, h2d, d2h);
    int64_t m = in->n_sel;
    fb_column dense[2];
    for (int side = 0; side < 2; side++) {
        const fb_column *c = side ? b : a;
        if (!c)
            continue;
        fb_column_out o = {.type = c->type, .capacity = m, .data = l->data[3 + side],
                           .validity = c->validity ? l->valid[3 + side] : NULL};
        FB_FORWARD_IF_ERROR(fb_compact(ctx, c, in->sel, m, &o));
        dense[side] = fb_column_make(c->type, l->data[3 + side], m, o.null_count ? l->valid[3 + side] : NULL);
    }
    FB_FORWARD_IF_ERROR(project_kernels(ctx, 1, n, l, &dense[0], b ? &dense[1] : NULL, NULL, 0, m, 5, h2d, d2h));
    const int64_t *src = l->data[5];
    int64_t *dst = l->data[0];
    const uint8_t *sv = l->valid[5];
    uint8_t *dv = l->valid[0];
    for (int64_t i = 0; i < m; i++) {
        uint32_t r = in->sel[i];
        dst[r] = src[i];
        unsigned bit = (sv[i >> 3] >> (i & 7)) & 1u;
        dv[r >> 3] = (uint8_t)((dv[r >> 3] & ~(1u << (r & 7))) | (bit << (r & 7)));
    }
    return FB_OK;
}

/* project: int64 = left op right over the live rows, with the expression kernels */
static fb_status project_execute(void *user, void *global, void *local, const fb_chunk *in, fb_chunk *out,
                                 fb_op_result *result)
{
    const pnode *n = ((const pnode **)user)[1];
    buf_local *l = local;
    run *r = global;
    fb_ctx *ctx = r->ctx;
    int dev = use_device(r, l->worker);
    FB_FORWARD_IF_ERROR(need_data(ctx, l, dev ? 6 : 3, in->rows));
    const fb_column *a = &in->columns[n->left], *b = n->right_is_const ? NULL : &in->columns[n->right];
    int nullable = a->validity || (b && b->validity);
    int64_t h2d = 0, d2h = 0;
    fb_status st = FB_OK;
    if (dev) {
        st = project_device(ctx, n, l, in, &h2d, &d2h);
        if (st == FB_OK)
            dev_moved(op_dev(user), h2d, d2h);
        else if (device_fallback(r, st, "project"))
            dev = 0;
        else
            return fb_stage_error(ctx, st, "project %s on the device: %s", n->names[n->n_cols - 1],
                                  fb_last_error(ctx));
    }
    if (!dev)
        st = project_kernels(ctx, 0, n, l, a, b, in->sel, in->sel ? in->n_sel : 0, in->rows, 0, &h2d, &d2h);
    if (st != FB_OK)
        return fb_stage_error(ctx, st, "project %s: %s", n->names[n->n_cols - 1], fb_last_error(ctx));
    for (size_t c = 0; c < in->n_columns; c++)
        l->cols[c] = in->columns[c];
    /* Rows outside the selection are not live; the validity matters only where an input has nulls. */
    l->cols[in->n_columns] = fb_column_make(FB_TYPE_INT64, l->data[0], in->rows, nullable ? l->valid[0] : NULL);
    *out = *in;
    out->n_columns = in->n_columns + 1;
    out->columns = l->cols;
    return FB_OK;
}

/* join probe */

/* A key as int64 (0 with *ok = 0 for a uint64 above INT64_MAX). */
static int64_t key_at(const fb_column *c, int64_t i, int *ok)
{
    int64_t j = c->offset + i;
    *ok = 1;
    switch (c->type) {
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32:
        return ((const int32_t *)c->data)[j];
    case FB_TYPE_UINT32:
        return ((const uint32_t *)c->data)[j];
    case FB_TYPE_INT64:
        return ((const int64_t *)c->data)[j];
    default: {
        uint64_t u = ((const uint64_t *)c->data)[j];
        *ok = u <= (uint64_t)INT64_MAX;
        return (int64_t)u;
    }
    }
}


/* A perfect-hash join: keys are looked up in js->direct. The output keeps the chunk's rows where they
 * are (unique build keys never duplicate a probe row): semi / inner narrow the selection, anti keeps the
 * unmatched, left keeps all; build payload columns are written at the rows' positions. */
static fb_status probe_direct(join_state *js, buf_local *l, fb_ctx *ctx, const fb_chunk *in, fb_chunk *out)
{
    const pnode *n = js->node;
    const fb_column *kc = &in->columns[n->pkeys[0]];
    int with_payload = n->jtype == FB_JOIN_INNER || n->jtype == FB_JOIN_LEFT;
    FB_FORWARD_IF_ERROR(need_sel(ctx, l, in->rows));
    if (with_payload && n->n_payload) {
        FB_FORWARD_IF_ERROR(need_data(ctx, l, (int)n->n_payload, in->rows));
        if (n->jtype == FB_JOIN_LEFT || js->rows.n_cols > (int)n->n_keys)
            for (size_t c = 0; c < n->n_payload; c++)
                memset(l->valid[c], 0, (size_t)(in->rows + 7) / 8);
    }
    const int32_t *d = js->direct;
    uint32_t *sel = l->sel[0];
    int64_t k_out = 0;
    int payload_nulls = n->jtype == FB_JOIN_LEFT;
    int np = with_payload ? (int)n->n_payload : 0;
    const char *psrc[FB_PLAN_MAX_COLUMNS];
    const uint8_t *pvalid[FB_PLAN_MAX_COLUMNS];
    size_t pw[FB_PLAN_MAX_COLUMNS];
    for (int c = 0; c < np; c++) {
        int col = (int)n->n_keys + c;
        payload_nulls |= js->rows.has_nulls[col];
        psrc[c] = js->rows.data[col];
        pvalid[c] = js->rows.has_nulls[col] ? js->rows.valid[col] : NULL;
        pw[c] = fb_type_width(js->rows.types[col]);
    }
    int k32 = (kc->type == FB_TYPE_INT32 || kc->type == FB_TYPE_DATE32) && !kc->validity;
    const int32_t *keys32 = k32 ? (const int32_t *)kc->data + kc->offset : NULL;
    uint64_t dmin = (uint64_t)js->dmin, drange = js->drange;
    fb_join_type jt = n->jtype;
    for (int64_t k = 0; k < in->n_sel; k++) {
        int64_t i = in->sel ? in->sel[k] : k;
        int32_t b = -1;
        if (k32) {
            uint64_t slot = (uint64_t)(int64_t)keys32[i] - dmin;
            b = slot < drange ? d[slot] : -1;
        } else if (fb_column_is_valid(kc, i)) {
            int ok = 1;
            uint64_t slot = (uint64_t)key_at(kc, i, &ok) - dmin;
            if (ok && slot < drange)
                b = d[slot];
        }
        int keep = jt == FB_JOIN_ANTI ? b < 0 : jt == FB_JOIN_LEFT ? 1 : b >= 0;
        sel[k_out] = (uint32_t)i;
        k_out += keep;
        if (b < 0)
            continue;
        for (int c = 0; c < np; c++) {
            if (pw[c] == 4)
                ((int32_t *)l->data[c])[i] = ((const int32_t *)psrc[c])[b];
            else if (pw[c] == 8)
                ((int64_t *)l->data[c])[i] = ((const int64_t *)psrc[c])[b];
            else
                memcpy((char *)l->data[c] + (size_t)i * pw[c], psrc[c] + (size_t)b * pw[c], pw[c]);
            if (payload_nulls && (!pvalid[c] || ((pvalid[c][b >> 3] >> (b & 7)) & 1)))
                l->valid[c][i >> 3] |= (uint8_t)(1u << (i & 7));
        }
    }
    out->sel = sel;
    out->n_sel = k_out;
    if (with_payload && n->n_payload) {
        for (size_t c = 0; c < in->n_columns; c++)
            l->cols[c] = in->columns[c];
        for (size_t c = 0; c < n->n_payload; c++)
            l->cols[in->n_columns + c] = fb_column_make(js->rows.types[n->n_keys + c], l->data[c], in->rows,
                                                        payload_nulls ? l->valid[c] : NULL);
        out->n_columns = in->n_columns + n->n_payload;
        out->columns = l->cols;
    }
    return FB_OK;
}

/* The live rows' probe keys, contiguous, in l->probe_keys (l->map: compacted index -> chunk row). */
static fb_status probe_keys_prepare(fb_ctx *ctx, const pnode *n, buf_local *l, const fb_chunk *in)
{
    if (!in->sel) {
        for (size_t k = 0; k < n->n_keys; k++)
            l->probe_keys[k] = in->columns[n->pkeys[k]];
        l->map = NULL;
        return FB_OK;
    }
    if (in->n_sel > l->key_cap) {
        void *blocks[2 * FB_JOIN_MAX_KEYS] = {0};
        size_t sizes[2 * FB_JOIN_MAX_KEYS] = {0};
        for (size_t k = 0; k < n->n_keys; k++) {
            sizes[2 * k] = (size_t)in->n_sel * 8;
            sizes[2 * k + 1] = bitmap_bytes(in->n_sel);
        }
        FB_FORWARD_IF_ERROR(plan_alloc_n(ctx, blocks, sizes, 2 * (int)n->n_keys));
        for (size_t k = 0; k < n->n_keys; k++) {
            plan_release(ctx, l->keys[k], (size_t)l->key_cap * 8);
            plan_release(ctx, l->key_valid[k], bitmap_bytes(l->key_cap));
            l->keys[k] = blocks[2 * k];
            l->key_valid[k] = blocks[2 * k + 1];
        }
        l->key_cap = in->n_sel;
    }
    for (size_t k = 0; k < n->n_keys; k++) {
        const fb_column *c = &in->columns[n->pkeys[k]];
        fb_column_out o = {.type = c->type, .capacity = in->n_sel, .data = l->keys[k],
                           .validity = c->validity ? l->key_valid[k] : NULL};
        fb_status st = fb_compact(ctx, c, in->sel, in->n_sel, &o);
        if (st != FB_OK)
            return fb_stage_error(ctx, st, "join probe: %s", fb_last_error(ctx));
        l->probe_keys[k] = fb_column_make(c->type, l->keys[k], in->n_sel, o.null_count ? l->key_valid[k] : NULL);
    }
    l->map = in->sel;
    return FB_OK;
}

/* The device probe's pair arrays of l, made anew with room for cap pairs (the old ones released). */
static fb_status dpairs_alloc(fb_ctx *ctx, buf_local *l, int64_t cap)
{
    if (l->dpairs_cap) {
        plan_release(ctx, l->dbuild, 8 * (size_t)l->dpairs_cap);
        plan_release(ctx, l->dprobe, 8 * (size_t)l->dpairs_cap);
    }
    l->dbuild = l->dprobe = NULL;
    l->dpairs_cap = 0;
    void *blocks[2];
    size_t sizes[2] = {8 * (size_t)cap, 8 * (size_t)cap};
    FB_FORWARD_IF_ERROR(plan_alloc_n(ctx, blocks, sizes, 2));
    l->dbuild = blocks[0];
    l->dprobe = blocks[1];
    l->dpairs_cap = cap;
    return FB_OK;
}

/* The join probe on the device: fb_cl_join_probe*_keys() against the build side's key columns, then (inner,
 * left) the output columns by fb_cl_compact() / fb_cl_gather(), every pair of the chunk at once. Any
 * status comes back to the caller, which redoes the chunk on the CPU or fails. */
static fb_status probe_device(join_state *js, buf_local *l, fb_ctx *ctx, const fb_chunk *in, fb_chunk *out,
                              dev_counters *d)
{
    const pnode *n = js->node;
    FB_FORWARD_IF_ERROR(probe_keys_prepare(ctx, n, l, in));
    fb_column bkeys[FB_JOIN_MAX_KEYS];
    int64_t h2d = 0, d2h = 0;
    for (size_t k = 0; k < n->n_keys; k++) {
        bkeys[k] = mat_view(&js->rows, (int)k, 0, js->rows.rows);
        h2d += col_bytes(&bkeys[k], js->rows.rows) + col_bytes(&l->probe_keys[k], in->n_sel);
    }
    fb_status st;
    if (js->dev_table) /* the build side is on the device already */
        h2d = col_bytes(&l->probe_keys[0], in->n_sel);
    if (n->jtype == FB_JOIN_SEMI || n->jtype == FB_JOIN_ANTI) {
        FB_FORWARD_IF_ERROR(need_sel(ctx, l, in->rows));
        int64_t n_out = 0;
        st = js->dev_table ? fb_cl_join_table_select(js->dev_table, &l->probe_keys[0], n->jtype, l->sel[0], in->rows,
                                                     &n_out)
                           : fb_cl_join_probe_select_keys(ctx, bkeys, l->probe_keys, n->n_keys, n->jtype, l->sel[0],
                                                          in->rows, &n_out);
        if (st != FB_OK)
            return st;
        if (l->map)
            for (int64_t i = 0; i < n_out; i++)
                l->sel[0][i] = l->map[l->sel[0][i]];
        dev_moved(d, h2d, 4 * n_out);
        out->sel = l->sel[0];
        out->n_sel = n_out;
        return FB_OK;
    }
    int64_t n_pairs = 0;
    for (int attempt = 0;; attempt++) {
        if (l->dpairs_cap == 0)
            FB_FORWARD_IF_ERROR(dpairs_alloc(ctx, l, in->n_sel > 1024 ? in->n_sel : 1024));
        fb_join_pairs pairs = {l->dbuild, l->dprobe, l->dpairs_cap, 0, 0};
        st = js->dev_table ? fb_cl_join_table_probe(js->dev_table, &l->probe_keys[0], n->jtype, &pairs, &n_pairs)
                           : fb_cl_join_probe_keys(ctx, bkeys, l->probe_keys, n->n_keys, 0, 0, n->jtype, &pairs,
                                                   &n_pairs);
        if (st == FB_OK)
            break;
        if (st != FB_ERR_CAPACITY || attempt > 0 || n_pairs <= l->dpairs_cap)
            return st;
        if (n_pairs > FB_MORSEL_MAX_ROWS)
            return fb_stage_error(ctx, FB_ERR_CAPACITY, "join probe: %lld pairs from one morsel (at most %lld)",
                                  (long long)n_pairs, (long long)FB_MORSEL_MAX_ROWS);
        FB_FORWARD_IF_ERROR(dpairs_alloc(ctx, l, n_pairs));
    }
    d2h += 16 * n_pairs;
    int n_cols = n->n_cols;
    FB_FORWARD_IF_ERROR(need_data(ctx, l, n_cols, n_pairs));
    FB_FORWARD_IF_ERROR(need_sel(ctx, l, n_pairs));
    for (int64_t i = 0; i < n_pairs; i++)
        l->sel[0][i] = l->map ? l->map[l->dprobe[i]] : (uint32_t)l->dprobe[i];
    size_t n_probe = in->n_columns;
    for (int c = 0; c < n_cols; c++) {
        fb_column_out o = {.type = n->types[c], .capacity = n_pairs, .data = l->data[c], .validity = l->valid[c]};
        if ((size_t)c < n_probe) {
            st = fb_cl_compact(ctx, &in->columns[c], l->sel[0], n_pairs, &o);
            h2d += col_bytes(&in->columns[c], in->rows) + 4 * n_pairs;
        } else {
            fb_column b = mat_view(&js->rows, (int)(n->n_keys + (size_t)c - n_probe), 0, js->rows.rows);
            st = fb_cl_gather(ctx, &b, l->dbuild, n_pairs, &o);
            h2d += col_bytes(&b, js->rows.rows) + 8 * n_pairs;
        }
        if (st != FB_OK)
            return st;
        d2h += n_pairs * (int64_t)fb_type_width(n->types[c]) + (n_pairs + 7) / 8;
        l->cols[c] = fb_column_make(n->types[c], l->data[c], n_pairs, o.null_count ? l->valid[c] : NULL);
    }
    dev_moved(d, h2d, d2h);
    out->rows = n_pairs;
    out->n_columns = (size_t)n_cols;
    out->columns = l->cols;
    out->sel = NULL;
    out->n_sel = n_pairs;
    return FB_OK;
}

static fb_status probe_execute(void *user, void *global, void *local, const fb_chunk *in, fb_chunk *out,
                               fb_op_result *result)
{
    join_state *js = ((join_state **)user)[1];
    const pnode *n = js->node;
    buf_local *l = local;
    run *r = global;
    fb_ctx *ctx = r->ctx;
    *out = *in;
    if (!l->pending && in->n_sel > 0 && use_device(r, l->worker)) {
        fb_status st = probe_device(js, l, ctx, in, out, op_dev(user));
        if (st == FB_OK)
            return FB_OK;
        if (!device_fallback(r, st, "join probe"))
            return fb_stage_error(ctx, st, "join probe on the device: %s", fb_last_error(ctx));
        *out = *in; /* redo the chunk on the CPU */
    }
    if (js->direct)
        return probe_direct(js, l, ctx, in, out);
    if (!l->pending) {
        if (in->n_sel == 0)
            return FB_OK;
        FB_FORWARD_IF_ERROR(probe_keys_prepare(ctx, n, l, in));
        l->cursor = (fb_join_cursor)FB_JOIN_CURSOR_INIT;
    }
    if (n->jtype == FB_JOIN_SEMI || n->jtype == FB_JOIN_ANTI) {
        FB_FORWARD_IF_ERROR(need_sel(ctx, l, in->rows));
        int64_t n_out = 0;
        fb_status st = fb_hash_table_probe_select(ctx, js->ht, l->probe_keys, n->n_keys, n->jtype, l->sel[0],
                                                  in->rows, &n_out);
        if (st != FB_OK)
            return fb_stage_error(ctx, st, "join probe: %s", fb_last_error(ctx));
        if (l->map)
            for (int64_t i = 0; i < n_out; i++)
                l->sel[0][i] = l->map[l->sel[0][i]];
        out->sel = l->sel[0];
        out->n_sel = n_out;
        return FB_OK;
    }
    /* Inner / left: pairs in bounded chunks, then the output columns. */
    if (!l->build_ids) {
        void *blocks[3];
        size_t sizes[3] = {8 * PAIRS_CAP, 8 * PAIRS_CAP, 4 * PAIRS_CAP};
        FB_FORWARD_IF_ERROR(plan_alloc_n(ctx, blocks, sizes, 3));
        l->build_ids = blocks[0];
        l->probe_ids = blocks[1];
        l->pair_sel = blocks[2];
    }
    fb_join_pairs pairs = {l->build_ids, l->probe_ids, PAIRS_CAP, 0, 0};
    fb_status st = fb_hash_table_probe(ctx, js->ht, l->probe_keys, n->n_keys, n->jtype, 0, &l->cursor, &pairs);
    if (st != FB_OK)
        return fb_stage_error(ctx, st, "join probe: %s", fb_last_error(ctx));
    l->pending = pairs.more;
    *result = pairs.more ? FB_OP_HAVE_MORE_OUTPUT : FB_OP_NEED_MORE_INPUT;
    int n_cols = n->n_cols;
    FB_FORWARD_IF_ERROR(need_data(ctx, l, n_cols, PAIRS_CAP));
    for (int64_t i = 0; i < pairs.length; i++)
        l->pair_sel[i] = l->map ? l->map[l->probe_ids[i]] : (uint32_t)l->probe_ids[i];
    size_t n_probe = in->n_columns;
    for (int c = 0; c < n_cols; c++) {
        fb_column_out o = {.type = n->types[c], .capacity = PAIRS_CAP, .data = l->data[c], .validity = l->valid[c]};
        if ((size_t)c < n_probe)
            st = fb_compact(ctx, &in->columns[c], l->pair_sel, pairs.length, &o);
        else {
            fb_column b = mat_view(&js->rows, (int)(n->n_keys + (size_t)c - n_probe), 0, js->rows.rows);
            st = fb_gather(ctx, &b, l->build_ids, pairs.length, &o);
        }
        if (st != FB_OK)
            return fb_stage_error(ctx, st, "join output: %s", fb_last_error(ctx));
        l->cols[c] = fb_column_make(n->types[c], l->data[c], pairs.length, o.null_count ? l->valid[c] : NULL);
    }
    out->rows = pairs.length;
    out->n_columns = (size_t)n_cols;
    out->columns = l->cols;
    out->sel = NULL;
    out->n_sel = pairs.length;
    return FB_OK;
}

/* limit */
static fb_status limit_execute(void *user, void *global, void *local, const fb_chunk *in, fb_chunk *out,
                               fb_op_result *result)
{
    limit_state *ls = ((limit_state **)user)[1];
    buf_local *l = local;
    fb_ctx *ctx = ((run *)global)->ctx;
    *out = *in;
    long long before = atomic_fetch_add(&ls->taken, (long long)in->n_sel);
    int64_t room = ls->limit - before;
    if (room <= 0) {
        out->n_sel = 0;
        out->sel = NULL;
        *result = FB_OP_FINISHED;
        return FB_OK;
    }
    if (room < in->n_sel) {
        FB_FORWARD_IF_ERROR(need_sel(ctx, l, in->rows));
        for (int64_t i = 0; i < room; i++)
            l->sel[0][i] = in->sel ? in->sel[i] : (uint32_t)i;
        out->sel = l->sel[0];
        out->n_sel = room;
        *result = FB_OP_FINISHED;
    }
    return FB_OK;
}

typedef fb_status (*exec_fn)(void *, void *, void *, const fb_chunk *, fb_chunk *, fb_op_result *);

/* An operator's user block: {run, state, &pipeline index} (read as void *[3] by the operators), and the
 * operator's own execute, which timed_execute() times for hybrid's morsel sizes. */
typedef struct chain chain;
typedef struct op_user {
    void *run, *state, *pipe;
    exec_fn execute;
    chain *chain; /* the pipeline's device chain (OpenCL placements), and this operator's index in it */
    int chain_idx;
} op_user;

static int chain_ran(const chain *ch, int worker, int idx);

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static fb_status timed_execute(void *user, void *global, void *local, const fb_chunk *in, fb_chunk *out,
                               fb_op_result *result)
{
    op_user *u = user;
    run *r = global;
    if (u->chain && chain_ran(u->chain, ((buf_local *)local)->worker, u->chain_idx)) {
        *out = *in; /* the chain ran this operator on the device for this chunk */
        return FB_OK;
    }
    if (r->placement != FB_PLACEMENT_HYBRID)
        return u->execute(user, global, local, in, out, result);
    int dev = use_device(r, ((buf_local *)local)->worker);
    int64_t t0 = mono_ns();
    fb_status st = u->execute(user, global, local, in, out, result);
    dev_counters *d = op_dev(user);
    atomic_fetch_add(dev ? &d->dev_ns : &d->cpu_ns, (long long)(mono_ns() - t0));
    return st;
}

/* An operator whose user is an op_user block. */
static fb_status add_op(run *r, stream *s, const char *name, int node, void *state,
                        fb_status (*execute)(void *, void *, void *, const fb_chunk *, fb_chunk *, fb_op_result *))
{
    FB_RETURN_ERROR_IF(s->n_ops == 64, r->ctx, FB_ERR_INVALID_ARG, "more than 64 operators in one pipeline");
    op_user *user = run_keep(r, calloc(1, sizeof(op_user)), free);
    FB_RETURN_ERROR_IF(!user, r->ctx, FB_ERR_OUT_OF_MEMORY, "no memory for an operator");
    if (!s->pipe_slot)
        s->pipe_slot = run_keep(r, calloc(1, sizeof(int)), free);
    FB_RETURN_ERROR_IF(!s->pipe_slot, r->ctx, FB_ERR_OUT_OF_MEMORY, "no memory for an operator");
    user->run = r;
    user->state = state;
    user->pipe = s->pipe_slot; /* the index of the pipeline, set when the stream becomes one */
    user->execute = execute;
    s->op_nodes[s->n_ops] = node;
    fb_operator *op = &s->ops[s->n_ops++];
    memset(op, 0, sizeof *op);
    op->name = name;
    op->init_global = global_is_run;
    op->init_local = op_init_local;
    op->execute = timed_execute;
    op->destroy_local = op_destroy_local;
    op->user = user;
    return FB_OK;
}

/* ---- device chains (OpenCL placements) ------------------------------------------------------------------
 *
 * A pipeline with operators gets a chain operator in front of them. On a device morsel it runs the longest
 * prefix of the operators it can (filters, projections, probes of joins whose tables - one-key, or a
 * composite key's tuples and numbers, fb_cl_keys_table - and payload columns went to the device once when
 * their build pipelines finished) in ONE device job (chain_run()):
 *   - a source column goes up when an operator first reads it, once: the whole morsel column, or - when
 *     under half the morsel's rows are still live - only the live rows (compacted on the host by the row
 *     map, which comes back once per map, 4 bytes a live row);
 *   - filters and semi / anti probes narrow a device row map (the morsel rows of the live rows; selection
 *     kernels through the map, or over dense columns and then every dense column compacted);
 *   - inner / left probes gather the row map, the dense columns and the table's payload columns by their
 *     pairs; projections (casts, arithmetic) compute on dense device columns;
 *   - downloaded: the row map (4 bytes a result row) and the columns made on the device; the source's
 *     columns of the result are compacted on the host from the morsel by the row map, after the job ends.
 * Device memory: the device's morsels are sized from the chain's bytes per row (chain_row_bytes()) to half
 * the budget; the tables count against it. The operators the chain ran pass the chunk on (chain_ran()).
 * A device failure redoes the morsel through the operators (on the CPU under hybrid / auto: nothing was
 * passed on yet) or is the run's error under gpu; passing the budget, or any other failure (an overflow, a
 * capacity) redoes it through the operators, whose own paths (chunked device calls, or the CPU) report it as
 * they do without the chain. FB_PLAN_NO_CHAIN=1 turns chains off (one device call per operator: A/B). */

#define CHAIN_MAX_WORKERS 1024

struct chain {
    run *r;
    int n_ops;                         /* the pipeline's operators after the chain */
    op_user *ops[64];
    int *ran;                          /* per worker: operators the chain ran for the worker's current chunk */
};

static int chain_ran(const chain *ch, int worker, int idx)
{
    return worker >= 0 && worker < CHAIN_MAX_WORKERS && idx < ch->ran[worker];
}

/* Operators of the prefix the device can run now (tables exist once their build pipelines finished). */
static int chain_prefix(const chain *ch)
{
    int k = 0;
    for (; k < ch->n_ops; k++) {
        const op_user *u = ch->ops[k];
        if (u->execute == filter_execute || u->execute == project_execute)
            continue;
        if (u->execute != probe_execute)
            break;
        const join_state *js = u->state;
        const pnode *n = js->node;
        const fb_cl_join_table *tb = n->n_keys == 1 ? js->dev_table : js->dev_keys ? js->dev_ctable : NULL;
        if (!tb)
            break;
        if ((n->jtype == FB_JOIN_INNER || n->jtype == FB_JOIN_LEFT) &&
            fb_cl_join_table_payload_count(tb) < (int)(js->rows.n_cols - (int)n->n_keys))
            break;
        if (n->jtype != FB_JOIN_INNER && n->jtype != FB_JOIN_LEFT && n->jtype != FB_JOIN_SEMI &&
            n->jtype != FB_JOIN_ANTI)
            break;
    }
    return k;
}

/* One column of the chain's current rows: a source column (its morsel uploaded when first read, rows
 * through the row map) or a dense device column. */
typedef struct ccol {
    int src;   /* source column index (compacted on the host at the end), or -1 (downloaded) */
    int up;    /* src: d holds the whole morsel column */
    int dense; /* d is dense over the current rows (moves with them) */
    fb_cl_dev_column d;
} ccol;

typedef struct cstate {
    fb_cl_job *j;
    const fb_chunk *in;
    ccol cols[FB_PLAN_MAX_COLUMNS];
    int n_cols;
    cl_mem map; /* morsel rows of the current rows; NULL: all rows of the morsel, in order */
    int64_t n;  /* current rows */
    uint32_t *host_map; /* a host copy of map (when hmap_of == map) */
    cl_mem hmap_of;
    int64_t host_cap;
    fb_ctx *ctx;
    cl_mem err, bad;
    int64_t h2d, d2h;
} cstate;

static fb_cl_dev_column dev_u32(cstate *c, cl_mem m, int64_t n)
{
    fb_cl_dev_column d = {m, c->j->cl->dummy, FB_TYPE_UINT32, 0, (cl_ulong)n, 0};
    return d;
}

/* Whether source column k is best sent as its current rows only (compacted on the host by the row map,
 * which comes back once, 4 bytes a row) rather than as the whole morsel: when under half the rows live. */
static int chain_send_live(const cstate *c, int k)
{
    const ccol *cc = &c->cols[k];
    return cc->src >= 0 && !cc->up && !cc->dense && c->map && 2 * c->n < c->in->rows;
}

/* Column k of the current rows as a dense device column. */
static fb_status chain_dense(cstate *c, int k, fb_cl_dev_column *out)
{
    ccol *cc = &c->cols[k];
    fb_cl_job *j = c->j;
    if (cc->dense) {
        *out = cc->d;
        return FB_OK;
    }
    const fb_column *col = &c->in->columns[cc->src];
    if (chain_send_live(c, k)) {
        if (c->hmap_of != c->map) {
            if (c->n > c->host_cap) {
                plan_release(c->ctx, c->host_map, 4 * (size_t)c->host_cap);
                c->host_map = NULL;
                c->host_cap = 0;
                void *blk;
                size_t sz = 4 * (size_t)c->n;
                FB_FORWARD_IF_ERROR(plan_alloc_n(c->ctx, &blk, &sz, 1));
                c->host_map = blk;
                c->host_cap = c->n;
            }
            FB_FORWARD_IF_ERROR(fb_cl_job_read(j, c->map, CL_TRUE, 0, (size_t)c->n * 4, c->host_map));
            c->hmap_of = c->map;
            c->d2h += 4 * c->n;
        }
        size_t w = fb_type_width(col->type);
        void *blk[2] = {0};
        size_t sz[2] = {(size_t)c->n * w, (size_t)(c->n + 7) / 8};
        FB_FORWARD_IF_ERROR(plan_alloc_n(c->ctx, blk, sz, col->validity ? 2 : 1));
        fb_column_out o = {.type = col->type, .capacity = c->n, .data = blk[0], .validity = blk[1]};
        fb_status st = fb_compact(c->ctx, col, c->host_map, c->n, &o);
        fb_column dense = fb_column_make(col->type, blk[0], c->n, col->validity ? blk[1] : NULL);
        if (st == FB_OK)
            st = fb_cl_upload_column(j, &dense, &cc->d);
        clFinish(j->cl->queue); /* the upload reads the host copy (also when a later step of it failed) */
        plan_release(c->ctx, blk[0], sz[0]);
        plan_release(c->ctx, blk[1], col->validity ? sz[1] : 0);
        FB_FORWARD_IF_ERROR(st);
        c->h2d += col_bytes(&dense, c->n);
        cc->dense = 1;
        *out = cc->d;
        return FB_OK;
    }
    if (!cc->up) {
        FB_FORWARD_IF_ERROR(fb_cl_upload_column(j, col, &cc->d));
        cc->up = 1;
        c->h2d += col_bytes(col, col->length);
    }
    *out = cc->d;
    if (!c->map)
        return FB_OK;
    out->voff = 0;
    out->length = (cl_ulong)c->n;
    out->valid = j->cl->dummy;
    return fb_cl_move_dev(j, &cc->d, c->map, 1, c->n, c->err, cc->d.has_valid, &out->data,
                          cc->d.has_valid ? &out->valid : NULL);
}

/* Keeps the current rows at positions pos[0..m) (ascending). */
static fb_status chain_keep(cstate *c, cl_mem pos, int64_t m)
{
    if (c->map) {
        fb_cl_dev_column mp = dev_u32(c, c->map, c->n);
        cl_mem nm = NULL;
        FB_FORWARD_IF_ERROR(fb_cl_move_dev(c->j, &mp, pos, 1, m, c->err, 0, &nm, NULL));
        c->map = nm;
    } else {
        c->map = pos;
    }
    for (int k = 0; k < c->n_cols; k++) {
        ccol *cc = &c->cols[k];
        if (!cc->dense)
            continue;
        fb_cl_dev_column d = cc->d;
        d.valid = c->j->cl->dummy;
        d.voff = 0;
        d.length = (cl_ulong)m;
        FB_FORWARD_IF_ERROR(
            fb_cl_move_dev(c->j, &cc->d, pos, 1, m, c->err, cc->d.has_valid, &d.data, cc->d.has_valid ? &d.valid : NULL));
        cc->d = d;
    }
    c->n = m;
    return FB_OK;
}

static fb_status chain_filter(cstate *c, const pnode *n)
{
    fb_ctx *ctx = c->j->ctx;
    for (size_t k = 0; k < n->n_preds && c->n > 0; k++) {
        const pred *p = &n->preds[k];
        int col = (int)p->p.column;
        fb_pred fp;
        int64_t keys[FB_SELECT_IN_MAX];
        /* a source column sent whole, and no dense columns to narrow: select through the row map */
        int dense_src = !c->cols[col].dense && !chain_send_live(c, col);
        for (int q = 0; q < c->n_cols && dense_src; q++)
            dense_src = !c->cols[q].dense;
        fb_cl_dev_column d;
        if (dense_src) {
            cl_mem keep = c->map;
            c->map = NULL; /* the whole uploaded morsel column */
            fb_status st = chain_dense(c, col, &d);
            c->map = keep;
            FB_FORWARD_IF_ERROR(st);
        } else {
            FB_FORWARD_IF_ERROR(chain_dense(c, col, &d));
        }
        fb_type t = (fb_type)d.type;
        if (p->p.kind == FB_PLAN_PRED_CMP)
            FB_FORWARD_IF_ERROR(fb_pred_make_cmp(ctx, t, p->p.op, p->value, &fp, __func__));
        else if (p->p.kind == FB_PLAN_PRED_BETWEEN)
            FB_FORWARD_IF_ERROR(fb_pred_make_range(ctx, t, p->lo, p->hi, &fp, __func__));
        else
            FB_FORWARD_IF_ERROR(fb_pred_make_in(ctx, t, p->in, (int64_t)p->p.n_in, keys, &fp, __func__));
        cl_mem out = NULL;
        int64_t m = 0;
        if (dense_src) {
            FB_FORWARD_IF_ERROR(fb_cl_select_dev(c->j, &d, &fp, c->map ? c->map : c->j->cl->dummy, c->map != NULL,
                                                 (uint64_t)c->n, &out, &m));
            c->map = out;
            c->n = m;
        } else {
            FB_FORWARD_IF_ERROR(fb_cl_select_dev(c->j, &d, &fp, c->j->cl->dummy, 0, (uint64_t)c->n, &out, &m));
            if (m == 0)
                c->n = 0;
            else
                FB_FORWARD_IF_ERROR(chain_keep(c, out, m));
        }
    }
    return FB_OK;
}

static fb_status chain_probe(cstate *c, const join_state *js)
{
    const pnode *n = js->node;
    fb_cl_job *j = c->j;
    fb_cl_dev_column key;
    const fb_cl_join_table *tb = js->dev_table;
    if (n->n_keys == 1) {
        FB_FORWARD_IF_ERROR(chain_dense(c, (int)n->pkeys[0], &key));
    } else { /* the tuples' numbers in the build side */
        fb_cl_dev_column pk[FB_JOIN_MAX_KEYS];
        for (size_t k = 0; k < n->n_keys; k++)
            FB_FORWARD_IF_ERROR(chain_dense(c, (int)n->pkeys[k], &pk[k]));
        FB_FORWARD_IF_ERROR(fb_cl_keys_lookup_dev(j, js->dev_keys, pk, c->n, &key));
        tb = js->dev_ctable;
    }
    cl_mem bids = NULL, pids = NULL;
    int64_t count = 0;
    FB_FORWARD_IF_ERROR(fb_cl_join_table_probe_dev(j, tb, &key, c->n, n->jtype, &bids, &pids, &count));
    if (n->jtype == FB_JOIN_SEMI || n->jtype == FB_JOIN_ANTI) {
        if (count == 0) {
            c->n = 0;
            return FB_OK;
        }
        return chain_keep(c, pids, count);
    }
    if (count > FB_MORSEL_MAX_ROWS)
        return fb_set_error(j->ctx, FB_ERR_CAPACITY, j->where, "%lld pairs from one morsel", (long long)count);
    int n_probe = c->n_cols, n_pay = n->n_cols - n_probe;
    if (count == 0) {
        c->n = 0;
        c->n_cols = n->n_cols;
        for (int k = n_probe; k < n->n_cols; k++)
            c->cols[k] = (ccol){.src = -1, .dense = 1,
                                .d = {j->cl->dummy, j->cl->dummy, (cl_int)n->types[k], 0, 0, 0}};
        return FB_OK;
    }
    if (!c->map) { /* the identity map, to gather */
        FB_FORWARD_IF_ERROR(fb_cl_job_buffer(j, CL_MEM_READ_WRITE, (size_t)c->n * 4, NULL, &c->map));
        cl_ulong nn = (cl_ulong)c->n;
        const fb_cl_karg args[] = {KARG(c->map), KARG(nn)};
        FB_FORWARD_IF_ERROR(fb_cl_job_args(j, j->cl->sort_iota, "fb_sort_iota", args, 2));
        FB_FORWARD_IF_ERROR(fb_cl_job_run(j, j->cl->sort_iota, "fb_sort_iota",
                                          fb_cl_grid_groups(j->cl, nn, j->cl->wg_sort), j->cl->wg_sort));
    }
    fb_cl_dev_column mp = dev_u32(c, c->map, c->n);
    cl_mem nm = NULL;
    FB_FORWARD_IF_ERROR(fb_cl_move_dev(j, &mp, pids, 0, count, c->err, 0, &nm, NULL));
    for (int k = 0; k < n_probe; k++) {
        ccol *cc = &c->cols[k];
        if (!cc->dense)
            continue;
        fb_cl_dev_column d = cc->d;
        d.valid = j->cl->dummy;
        d.voff = 0;
        d.length = (cl_ulong)count;
        FB_FORWARD_IF_ERROR(
            fb_cl_move_dev(j, &cc->d, pids, 0, count, c->err, cc->d.has_valid, &d.data, cc->d.has_valid ? &d.valid : NULL));
        cc->d = d;
    }
    for (int q = 0; q < n_pay; q++) {
        const fb_cl_dev_column *b = fb_cl_join_table_column(tb, q);
        int want_valid = b->has_valid || n->jtype == FB_JOIN_LEFT;
        ccol *cc = &c->cols[n_probe + q];
        cc->src = -1;
        cc->up = 0;
        cc->dense = 1;
        cc->d = *b;
        cc->d.valid = j->cl->dummy;
        cc->d.voff = 0;
        cc->d.has_valid = want_valid;
        cc->d.length = (cl_ulong)count;
        FB_FORWARD_IF_ERROR(
            fb_cl_move_dev(j, b, bids, 0, count, c->err, want_valid, &cc->d.data, want_valid ? &cc->d.valid : NULL));
    }
    c->map = nm;
    c->n = count;
    c->n_cols = n->n_cols;
    return FB_OK;
}

static fb_status chain_project(cstate *c, const pnode *n)
{
    fb_cl_job *j = c->j;
    fb_cl_dev_column in[2], w[2];
    int sides = n->right_is_const ? 1 : 2;
    for (int side = 0; side < sides; side++) {
        FB_FORWARD_IF_ERROR(chain_dense(c, (int)(side ? n->right : n->left), &in[side]));
        w[side] = in[side];
        if (in[side].type != FB_TYPE_INT64)
            FB_FORWARD_IF_ERROR(fb_cl_expr_cast_dev(j, &in[side], FB_TYPE_INT64, c->n, c->bad, &w[side]));
    }
    static const fb_arith ops[] = {FB_ARITH_ADD, FB_ARITH_SUB, FB_ARITH_MUL};
    ccol *cc = &c->cols[c->n_cols];
    cc->src = -1;
    cc->up = 0;
    cc->dense = 1;
    FB_FORWARD_IF_ERROR(fb_cl_expr_arith_dev(j, ops[n->op], &w[0], sides == 2 ? &w[1] : NULL, &n->right_value, 0, c->n,
                                             c->bad, &cc->d));
    if (c->n == 0)
        cc->d.data = j->cl->dummy;
    c->n_cols++;
    return FB_OK;
}

/* The first k operators of ch on the morsel `in` in one device job; the result into out (l's buffers). */
static fb_status chain_run(chain *ch, buf_local *l, const fb_chunk *in, int k, fb_chunk *out, dev_counters *dc,
                           int *past_budget)
{
    run *r = ch->r;
    fb_ctx *ctx = r->ctx;
    fb_cl_job j;
    fb_status st = fb_cl_job_open(&j, ctx, "plan device chain");
    cstate c;
    memset(&c, 0, sizeof c);
    c.j = &j;
    c.ctx = ctx;
    c.in = in;
    c.n = in->rows;
    c.n_cols = (int)in->n_columns;
    int64_t d2h = 0;
    int closed = 0;
    for (int q = 0; q < c.n_cols; q++)
        c.cols[q].src = q;
    if (st != FB_OK)
        goto done;
    for (int q = 0; q < k; q++) /* the tables count against the budget */
        if (ch->ops[q]->execute == probe_execute) {
            const join_state *js = ch->ops[q]->state;
            j.bytes += fb_cl_join_table_bytes(js->dev_table) + fb_cl_join_table_bytes(js->dev_ctable) +
                       fb_cl_keys_table_bytes(js->dev_keys);
        }
    static const cl_uint zero = 0, none = 0xFFFFFFFFu;
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, sizeof zero, &zero, &c.err));
    TRY(fb_cl_job_buffer(&j, CL_MEM_READ_WRITE, sizeof none, &none, &c.bad));
    if (in->sel) { /* a source hands out whole morsels; a selection goes up as the row map */
        TRY(fb_cl_job_buffer(&j, CL_MEM_READ_ONLY, (size_t)in->n_sel * 4, in->sel, &c.map));
        c.n = in->n_sel;
        c.h2d += 4 * in->n_sel;
    }
    for (int q = 0; q < k && c.n > 0; q++) {
        op_user *u = ch->ops[q];
        if (u->execute == filter_execute)
            TRY(chain_filter(&c, u->state));
        else if (u->execute == project_execute)
            TRY(chain_project(&c, u->state));
        else
            TRY(chain_probe(&c, u->state));
    }
    if (c.n == 0) { /* nothing is left: an empty chunk */
        *out = *in;
        out->sel = NULL;
        out->rows = 0;
        out->n_sel = 0;
        out->n_columns = 0;
        goto done;
    }
    TRY(need_sel(ctx, l, c.n));
    TRY(need_data(ctx, l, c.n_cols, c.n));
    cl_uint flags[2] = {0, 0xFFFFFFFFu};
    TRY(fb_cl_job_read(&j, c.err, CL_FALSE, 0, sizeof flags[0], &flags[0]));
    TRY(fb_cl_job_read(&j, c.bad, CL_FALSE, 0, sizeof flags[1], &flags[1]));
    if (c.map) {
        TRY(fb_cl_job_read(&j, c.map, CL_FALSE, 0, (size_t)c.n * 4, l->sel[0]));
        d2h += 4 * c.n;
    }
    for (int q = 0; q < c.n_cols; q++) {
        ccol *cc = &c.cols[q];
        if (cc->src >= 0)
            continue;
        size_t bytes = (size_t)c.n * fb_type_width((fb_type)cc->d.type);
        TRY(fb_cl_job_read(&j, cc->d.data, CL_FALSE, 0, bytes, l->data[q]));
        d2h += (int64_t)bytes;
        if (cc->d.has_valid) {
            TRY(fb_cl_job_read(&j, cc->d.valid, CL_FALSE, 0, (size_t)(c.n + 7) / 8, l->valid[q]));
            d2h += (c.n + 7) / 8;
        }
    }
    TRY(fb_cl_job_finish(&j));
    if (flags[0] || flags[1] != 0xFFFFFFFFu) { /* redone through the operators, which name the row */
        st = fb_set_error(ctx, flags[0] ? FB_ERR_OUT_OF_RANGE : FB_ERR_OVERFLOW, j.where, "redo on the operators");
        goto done;
    }
    /* the device's part is done: let other workers have it while this one compacts the source columns */
    st = fb_cl_job_close(&j, FB_OK);
    closed = 1;
    for (int q = 0; q < c.n_cols && st == FB_OK; q++) {
        ccol *cc = &c.cols[q];
        if (cc->src < 0) {
            l->cols[q] = fb_column_make((fb_type)cc->d.type, l->data[q], c.n, cc->d.has_valid ? l->valid[q] : NULL);
            continue;
        }
        const fb_column *col = &in->columns[cc->src];
        if (!c.map) {
            l->cols[q] = *col;
            continue;
        }
        fb_column_out o = {.type = col->type, .capacity = c.n, .data = l->data[q],
                           .validity = col->validity ? l->valid[q] : NULL};
        st = fb_compact(ctx, col, l->sel[0], c.n, &o);
        l->cols[q] = fb_column_make(col->type, l->data[q], c.n, o.null_count ? l->valid[q] : NULL);
    }
    if (st != FB_OK)
        goto done;
    out->rows = c.n;
    out->n_columns = (size_t)c.n_cols;
    out->columns = l->cols;
    out->sel = NULL;
    out->n_sel = c.n;
done:
    *past_budget = j.over_budget;
    if (!closed)
        st = fb_cl_job_close(&j, st);
    plan_release(ctx, c.host_map, 4 * (size_t)c.host_cap);
    if (st == FB_OK)
        dev_moved(dc, c.h2d, d2h + c.d2h);
    return st;
}

static fb_status chain_execute(void *user, void *global, void *local, const fb_chunk *in, fb_chunk *out,
                               fb_op_result *result)
{
    op_user *u = user;
    chain *ch = u->state;
    run *r = global;
    buf_local *l = local;
    int w = l->worker;
    *out = *in;
    if (w < 0 || w >= CHAIN_MAX_WORKERS)
        return FB_OK;
    ch->ran[w] = 0;
    if (in->n_sel == 0 || !use_device(r, w))
        return FB_OK;
    int k = chain_prefix(ch);
    if (k == 0)
        return FB_OK;
    int past_budget = 0;
    fb_status st = chain_run(ch, l, in, k, out, op_dev(user), &past_budget);
    if (st == FB_OK) {
        ch->ran[w] = k;
        atomic_fetch_add(&op_dev(user)->chained, 1);
        return FB_OK;
    }
    *out = *in; /* the operators redo the morsel */
    if (st == FB_ERR_DEVICE_MEMORY && past_budget)
        return FB_OK; /* past the budget (not an OpenCL failure): the operators' calls go in chunks */
    if (!is_device_status(st) || device_fallback(r, st, "pipeline on the device"))
        return FB_OK;
    return fb_stage_error(r->ctx, st, "pipeline on the device: %s", fb_last_error(r->ctx));
}

/* Device bytes a morsel row of the chain over ops[0..n) may hold at once (uploads, maps, pairs, results). */
static size_t chain_row_bytes(op_user *const *ops, int n_ops)
{
    size_t b = 16; /* the row map, twice */
    for (int q = 0; q < n_ops; q++) {
        const op_user *u = ops[q];
        if (u->execute == filter_execute)
            b += 9 * ((const pnode *)u->state)->n_preds + 4;
        else if (u->execute == project_execute)
            b += 3 * 9;
        else if (u->execute == probe_execute) {
            const pnode *n = ((const join_state *)u->state)->node;
            b += 9 * n->n_keys + 4 + 24 + 9 * (size_t)n->n_payload + (n->n_keys > 1 ? 8 * n->n_keys + 10 : 0);
        }
    }
    return b;
}

static fb_status chain_attach(run *r, stream *s, fb_operator *ops, size_t *n_ops, fb_source *src)
{
    if (r->placement == FB_PLACEMENT_CPU || *n_ops == 0 || *n_ops >= 64 || getenv("FB_PLAN_NO_CHAIN"))
        return FB_OK;
    op_user *first = ops[0].user;
    if (first->execute != filter_execute && first->execute != project_execute && first->execute != probe_execute)
        return FB_OK;
    chain *ch = run_keep(r, calloc(1, sizeof *ch), free);
    int *ran = ch ? run_keep(r, calloc(CHAIN_MAX_WORKERS, sizeof(int)), free) : NULL;
    op_user *user = ran ? run_keep(r, calloc(1, sizeof(op_user)), free) : NULL;
    FB_RETURN_ERROR_IF(!user, r->ctx, FB_ERR_OUT_OF_MEMORY, "no memory for a device chain");
    ch->r = r;
    ch->ran = ran;
    ch->n_ops = (int)*n_ops;
    for (size_t q = 0; q < *n_ops; q++) {
        ch->ops[q] = ops[q].user;
        ch->ops[q]->chain = ch;
        ch->ops[q]->chain_idx = (int)q;
    }
    user->run = r;
    user->state = ch;
    user->pipe = s->pipe_slot;
    user->execute = chain_execute;
    memmove(&ops[1], &ops[0], sizeof *ops * *n_ops);
    memset(&ops[0], 0, sizeof *ops);
    ops[0].name = "device chain";
    ops[0].init_global = global_is_run;
    ops[0].init_local = op_init_local;
    ops[0].execute = timed_execute;
    ops[0].destroy_local = op_destroy_local;
    ops[0].user = user;
    (*n_ops)++;
    /* the device's morsels: what the budget holds of the chain's rows (half of it; the tables take the rest) */
    if (src->next_morsel == mat_next && r->ctx->cl) {
        mat_source *ms = src->user;
        size_t per_row = chain_row_bytes(ch->ops, ch->n_ops);
        int64_t rows = (int64_t)(fb_cl_budget(r->ctx->cl) / 2 / per_row) & ~(int64_t)7;
        if (rows < 4096)
            rows = 4096;
        if (rows < ms->dev_morsel && !getenv("FB_PLAN_DEVICE_MORSEL"))
            ms->dev_morsel = rows;
    }
    return FB_OK;
}

/* ---- sinks ------------------------------------------------------------------------------------------- */

/* For a build sink the materialized columns are the keys then the payload: a column map. */
typedef struct build_map {
    size_t cols[FB_PLAN_MAX_COLUMNS];
    int n;
} build_map;

typedef struct sink_user {
    run *r;
    const build_map *map; /* collect: input column of each materialized column; NULL = the same */
    mat *target;          /* collect: where combine appends */
    join_state *join;     /* hash build */
    sort_state *sort;     /* sort */
    agg_state *agg;       /* aggregation */
    int pipe;             /* index of the sink's pipeline (for notes) */
} sink_user;

typedef struct mat_local_sink {
    mat m;
} mat_local_sink;

static fb_status collect_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    sink_user *u = user;
    mat_local_sink *l = calloc(1, sizeof *l);
    if (!l)
        return fb_stage_error(w->ctx, FB_ERR_OUT_OF_MEMORY, "no memory for a sink state");
    mat_init(&l->m, u->r->ctx, u->target->n_cols, u->target->types);
    *local = l;
    return FB_OK;
}

static fb_status collect_sink(void *user, void *global, void *local, const fb_chunk *chunk)
{
    sink_user *u = user;
    mat_local_sink *l = local;
    const fb_column *ptrs[FB_PLAN_MAX_COLUMNS];
    for (int c = 0; c < l->m.n_cols; c++)
        ptrs[c] = &chunk->columns[u->map ? u->map->cols[c] : (size_t)c];
    return mat_append(u->r->ctx, &l->m, ptrs, chunk->rows, chunk->sel, chunk->n_sel);
}

static fb_status collect_combine(void *user, void *global, void *local)
{
    sink_user *u = user;
    mat_local_sink *l = local;
    return mat_concat(u->r->ctx, u->target, &l->m);
}

static void collect_destroy_local(void *user, void *global, void *local)
{
    mat_local_sink *l = local;
    if (l) {
        mat_free(&l->m);
        free(l);
    }
}

/* Most slots of a perfect-hash join; a range above 2^18 slots (1 MiB) must also be at most 4x the build
 * rows + 1024. */
#define DIRECT_MAX_RANGE (1u << 24)

/* Dimension tables of star schemas have unique, dense keys: then a join is an array lookup (a perfect
 * hash, as DuckDB's). Returns 1 when js->direct was made; 0 (nothing allocated) when the keys are not
 * unique or too sparse, or memory is short - the hash table is used then. */
static int try_direct(join_state *js, const fb_column *keys)
{
    int64_t rows = keys->length, lo = INT64_MAX, hi = INT64_MIN, valid = 0;
    for (int64_t i = 0; i < rows; i++) {
        int ok;
        int64_t v = key_at(keys, i, &ok);
        if (!ok)
            return 0;
        if (!fb_column_is_valid(keys, i))
            continue;
        valid++;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    uint64_t range = valid ? (uint64_t)hi - (uint64_t)lo + 1 : 0;
    if (valid && (range == 0 || range > DIRECT_MAX_RANGE || (range > 4 * (uint64_t)rows + 1024 && range > (1u << 18))))
        return 0;
    if (rows > INT32_MAX)
        return 0;
    int32_t *d = NULL;
    if (fb_alloc(js->ctx, sizeof *d * (size_t)(range ? range : 1), 64, (void **)&d, "fb_plan_run") != FB_OK)
        return 0; /* no memory for the array: the hash table may still fit */
    memset(d, 0xff, sizeof *d * (size_t)(range ? range : 1));
    for (int64_t i = 0; i < rows; i++) {
        if (!fb_column_is_valid(keys, i))
            continue;
        int ok;
        uint64_t slot = (uint64_t)key_at(keys, i, &ok) - (uint64_t)lo;
        if (d[slot] >= 0) { /* a duplicate key: not a perfect hash */
            fb_free(js->ctx, d, sizeof *d * (size_t)(range ? range : 1));
            return 0;
        }
        d[slot] = (int32_t)i;
    }
    js->direct = d;
    js->dmin = lo;
    js->drange = range;
    return 1;
}

/* Composite keys (device chains): the build side's tuples go to the device once (fb_cl_keys_table) with a
 * one-key table over the int64 keys they number the build rows with. */
static fb_status build_device_keys(run *r, join_state *js, const fb_column *keys, int pipe)
{
    const pnode *n = js->node;
    int64_t nb = js->rows.rows;
    void *blk[2] = {0};
    size_t sz[2] = {8 * (size_t)nb, (size_t)(nb + 7) / 8};
    FB_FORWARD_IF_ERROR(plan_alloc_n(r->ctx, blk, sz, 2));
    fb_status st = fb_cl_keys_table_create(r->ctx, keys, n->n_keys, blk[0], blk[1], &js->dev_keys);
    if (st == FB_OK) {
        fb_column bk = fb_column_make(FB_TYPE_INT64, blk[0], nb, blk[1]);
        st = fb_cl_join_table_create(r->ctx, &bk, &js->dev_ctable);
    }
    plan_release(r->ctx, blk[0], sz[0]);
    plan_release(r->ctx, blk[1], sz[1]);
    if (st != FB_OK) {
        fb_cl_keys_table_free(js->dev_keys);
        js->dev_keys = NULL;
        return st;
    }
    int64_t bytes = 8 * nb + (nb + 7) / 8;
    for (size_t k = 0; k < n->n_keys; k++)
        bytes += col_bytes(&keys[k], nb);
    dev_moved(&r->dev[pipe], bytes, 8 * nb + (nb + 7) / 8);
    return FB_OK;
}

/* OpenCL placements: the build side of a join goes to the device once, for every probe morsel: a one-key
 * table (js->dev_table), or for composite keys - when device chains are on - the tuples and a table over
 * their numbers (js->dev_keys, js->dev_ctable; the per-operator probes number them jointly per call); inner /
 * left joins' payload columns go along for the chains' gathers. A build side the device memory budget does
 * not hold stays on the host (the per-call probe partitions it); another device failure falls back (hybrid,
 * auto) or fails the run (gpu). */
static fb_status build_device_table(run *r, join_state *js, const fb_column *keys, int pipe)
{
    const pnode *n = js->node;
    int chains = !getenv("FB_PLAN_NO_CHAIN");
    if (r->placement == FB_PLACEMENT_CPU || atomic_load(&r->dev_failed) ||
        (n->n_keys > 1 && (!chains || js->rows.rows == 0)))
        return FB_OK;
    fb_status st;
    fb_cl_join_table *tb = NULL;
    if (n->n_keys == 1) {
        st = fb_cl_join_table_create(r->ctx, &keys[0], &js->dev_table);
        if (st == FB_OK)
            dev_moved(&r->dev[pipe], col_bytes(&keys[0], keys[0].length), 0);
        tb = js->dev_table;
    } else {
        st = build_device_keys(r, js, keys, pipe);
        tb = js->dev_ctable;
    }
    if (st == FB_OK) {
        /* a payload the budget does not hold leaves the probe to the per-operator path */
        int n_pay = js->rows.n_cols - (int)n->n_keys;
        if ((n->jtype == FB_JOIN_INNER || n->jtype == FB_JOIN_LEFT) && n_pay > 0 &&
            n_pay <= FB_CL_TABLE_MAX_PAYLOAD && chains) {
            fb_column pay[FB_PLAN_MAX_COLUMNS];
            int64_t bytes = 0;
            for (int c = 0; c < n_pay; c++) {
                pay[c] = mat_view(&js->rows, (int)n->n_keys + c, 0, js->rows.rows);
                bytes += col_bytes(&pay[c], js->rows.rows);
            }
            st = fb_cl_join_table_payload(tb, pay, (size_t)n_pay);
            if (st == FB_OK)
                dev_moved(&r->dev[pipe], bytes, 0);
            else if (st != FB_ERR_DEVICE_MEMORY && !device_fallback(r, st, "join build on the device"))
                return fb_stage_error(r->ctx, st, "join build on the device: %s", fb_last_error(r->ctx));
        }
        return FB_OK;
    }
    if (st == FB_ERR_DEVICE_MEMORY && !r->fallback)
        return FB_OK;
    if (device_fallback(r, st, "join build on the device"))
        return FB_OK;
    return fb_stage_error(r->ctx, st, "join build on the device: %s", fb_last_error(r->ctx));
}

static fb_status build_finalize(void *user, void *global)
{
    sink_user *u = user;
    join_state *js = u->join;
    fb_ctx *ctx = u->r->ctx;
    const pnode *n = js->node;
    fb_type kt[FB_JOIN_MAX_KEYS];
    fb_column keys[FB_JOIN_MAX_KEYS];
    for (size_t k = 0; k < n->n_keys; k++) {
        kt[k] = js->rows.types[k];
        keys[k] = mat_view(&js->rows, (int)k, 0, js->rows.rows);
    }
    char *note = u->r->pipes[u->pipe].note;
    size_t note_size = sizeof u->r->pipes[0].note;
    FB_FORWARD_IF_ERROR(build_device_table(u->r, js, keys, u->pipe));
    if (n->n_keys == 1 && try_direct(js, &keys[0])) {
        snprintf(note, note_size, "perfect hash: %lld build rows, key range %llu", (long long)js->rows.rows,
                 (unsigned long long)js->drange);
        return FB_OK;
    }
    fb_status st = fb_hash_table_create(ctx, kt, n->n_keys, js->rows.rows, &js->ht);
    if (st == FB_OK && js->rows.rows)
        st = fb_hash_table_build(ctx, js->ht, keys, n->n_keys, 0);
    if (st != FB_OK)
        return fb_stage_error(ctx, st, "hash build: %s", fb_last_error(ctx));
    snprintf(note, note_size, "hash table: %lld build rows, %lld distinct keys", (long long)js->rows.rows,
             (long long)fb_hash_table_distinct(js->ht));
    return FB_OK;
}

static fb_status sort_finalize(void *user, void *global)
{
    sink_user *u = user;
    sort_state *ss = u->sort;
    fb_ctx *ctx = u->r->ctx;
    const pnode *n = ss->node;
    mat *in = &ss->rows, *out = ss->out;
    int64_t rows = in->rows;
    if (rows > FB_MORSEL_MAX_ROWS)
        return fb_stage_error(ctx, FB_ERR_CAPACITY, "sort of %lld rows: more than %lld", (long long)rows,
                              (long long)FB_MORSEL_MAX_ROWS);
    if (rows == 0)
        return FB_OK;
    fb_sort_key keys[FB_PLAN_MAX_COLUMNS];
    for (size_t k = 0; k < n->n_skeys; k++) {
        keys[k].column = mat_view(in, (int)n->skeys[k].column, 0, rows);
        keys[k].descending = n->skeys[k].descending;
        keys[k].nulls_first = n->skeys[k].nulls_first;
    }
    void *perm_block = NULL;
    size_t perm_bytes = sizeof(uint32_t) * (size_t)rows;
    FB_FORWARD_IF_ERROR(plan_alloc_n(ctx, &perm_block, &perm_bytes, 1));
    uint32_t *perm = perm_block;
    int64_t n_out = rows;
    fb_status st = ss->limit >= 0 ? fb_sort_top_n(ctx, keys, n->n_skeys, ss->limit, perm, rows, &n_out)
                                  : fb_sort_permutation(ctx, keys, n->n_skeys, perm, rows);
    if (st == FB_OK && n_out > 0) {
        const fb_column *ptrs[FB_PLAN_MAX_COLUMNS];
        fb_column views[FB_PLAN_MAX_COLUMNS];
        for (int c = 0; c < in->n_cols; c++) {
            views[c] = mat_view(in, c, 0, rows);
            ptrs[c] = &views[c];
        }
        st = mat_append(ctx, out, ptrs, rows, perm, n_out);
    } else if (st != FB_OK) {
        st = fb_stage_error(ctx, st, "sort: %s", fb_last_error(ctx));
    }
    plan_release(ctx, perm, perm_bytes);
    mat_free(in);
    return st;
}

static fb_status agg_init_global(void *user, fb_ctx *ctx, void **global)
{
    agg_state *as = ((sink_user *)user)->agg;
    fb_status st = fb_agg_create(ctx, &as->spec, &as->global);
    return st == FB_OK ? FB_OK : fb_stage_error(ctx, st, "aggregate: %s", fb_last_error(ctx));
}

static fb_status agg_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    agg_state *as = ((sink_user *)user)->agg;
    fb_agg_table *t = NULL;
    fb_status st = fb_agg_create(w->ctx, &as->spec, &t);
    *local = t;
    return st == FB_OK ? FB_OK : fb_stage_error(w->ctx, st, "aggregate: %s", fb_last_error(w->ctx));
}

static fb_status agg_sink(void *user, void *global, void *local, const fb_chunk *chunk)
{
    sink_user *u = user;
    const pnode *n = u->agg->node;
    fb_column keys[FB_AGG_MAX_KEYS], vals[FB_PLAN_MAX_COLUMNS];
    for (size_t k = 0; k < n->n_akeys; k++)
        keys[k] = chunk->columns[n->akeys[k]];
    for (size_t a = 0; a < n->n_aggs; a++)
        vals[a] = chunk->columns[n->aggs[a].kind == FB_AGG_COUNT_STAR ? 0 : n->aggs[a].column];
    fb_status st = fb_agg_update(local, n->n_akeys ? keys : NULL, vals, n->n_aggs, chunk->rows, chunk->sel,
                                 chunk->sel ? chunk->n_sel : 0);
    return st == FB_OK ? FB_OK : fb_stage_error(u->r->ctx, st, "aggregate: %s", fb_last_error(u->r->ctx));
}

static fb_status agg_combine(void *user, void *global, void *local)
{
    sink_user *u = user;
    fb_status st = fb_agg_merge(u->agg->global, local);
    return st == FB_OK ? FB_OK : fb_stage_error(u->r->ctx, st, "aggregate merge: %s", fb_last_error(u->r->ctx));
}

static void agg_destroy_local(void *user, void *global, void *local)
{
    fb_agg_destroy(local);
}

static fb_status agg_finalize(void *user, void *global)
{
    sink_user *u = user;
    agg_state *as = u->agg;
    fb_ctx *ctx = u->r->ctx;
    const pnode *n = as->node;
    int64_t groups = 0;
    fb_status st = fb_agg_group_count(as->global, &groups);
    if (st == FB_OK)
        st = mat_reserve(ctx, as->out, groups ? groups : 1);
    if (st != FB_OK)
        return fb_stage_error(ctx, st, "aggregate: %s", fb_last_error(ctx));
    fb_column_out outs[FB_PLAN_MAX_COLUMNS];
    for (int c = 0; c < n->n_cols; c++) {
        memset(&outs[c], 0, sizeof outs[c]);
        outs[c].type = n->types[c];
        outs[c].capacity = as->out->cap;
        outs[c].data = as->out->data[c];
        outs[c].validity = as->out->valid[c];
    }
    st = fb_agg_result(as->global, n->n_akeys ? outs : NULL, outs + n->n_akeys);
    if (st != FB_OK)
        return fb_stage_error(ctx, st, "aggregate: %s", fb_last_error(ctx));
    for (int c = 0; c < n->n_cols; c++)
        as->out->has_nulls[c] = outs[c].null_count > 0;
    as->out->rows = groups;
    return FB_OK;
}

static void agg_destroy_global(void *user, void *global)
{
    agg_state *as = ((sink_user *)user)->agg;
    fb_agg_destroy(as->global);
    as->global = NULL;
}

static sink_user *new_sink_user(run *r)
{
    sink_user *u = run_keep(r, calloc(1, sizeof *u), free);
    if (u)
        u->r = r;
    return u;
}

/* ---- compiling a node into the stream -------------------------------------------------------------- */

static void free_join_state(void *p)
{
    join_state *js = p;
    if (js->direct)
        fb_free(js->ctx, js->direct, sizeof(int32_t) * (size_t)(js->drange ? js->drange : 1));
    fb_hash_table_destroy(js->ht);
    fb_cl_join_table_free(js->dev_table);
    fb_cl_join_table_free(js->dev_ctable);
    fb_cl_keys_table_free(js->dev_keys);
    mat_free(&js->rows);
    free(js);
}

static void free_sort_state(void *p)
{
    sort_state *ss = p;
    mat_free(&ss->rows);
    free(ss);
}

/* Ends the stream in `sink` and makes `m` (which the sink fills) the stream's source. */
static fb_status materialize(run *r, stream *s, const char *what, const fb_sink *sink, const char *sink_text, mat *m,
                             int sink_kind, int node, int sink_in)
{
    fb_pipeline *p = NULL;
    FB_FORWARD_IF_ERROR(stream_finish(r, s, what, sink, sink_text, sink_kind, node, sink_in, &p));
    memset(s, 0, sizeof *s);
    s->src = m;
    s->src_pipe = p;
    s->src_node = node;
    snprintf(s->text, sizeof s->text, "scan %s", what);
    return FB_OK;
}

static fb_status compile(run *r, int id, stream *s);

/* A sort node (with `limit` ≥ 0 a top-N) over the node's input. */
static fb_status compile_sort(run *r, const pnode *n, int64_t limit, stream *s)
{
    fb_ctx *ctx = r->ctx;
    FB_FORWARD_IF_ERROR(compile(r, n->input, s));
    sort_state *ss = run_keep(r, calloc(1, sizeof *ss), free_sort_state);
    mat *m = run_mat(r, n->n_cols, n->types);
    sink_user *u = new_sink_user(r);
    FB_RETURN_ERROR_IF(!ss || !m || !u, ctx, FB_ERR_OUT_OF_MEMORY, "no memory for a sort");
    ss->node = n;
    ss->limit = limit;
    ss->out = m;
    mat_init(&ss->rows, r->ctx, n->n_cols, n->types);
    u->target = &ss->rows;
    u->sort = ss;
    fb_sink sink = {.name = "sort", .init_local = collect_init_local, .sink = collect_sink,
                    .combine = collect_combine, .finalize = sort_finalize,
                    .destroy_local = collect_destroy_local, .user = u};
    char t[64];
    if (limit >= 0)
        snprintf(t, sizeof t, "top-%lld sort", (long long)limit);
    else
        snprintf(t, sizeof t, "sort");
    return materialize(r, s, "sorted", &sink, t, m, SINK_SORT, (int)(n - r->plan->nodes), n->input);
}

static fb_status compile(run *r, int id, stream *s)
{
    const pnode *n = &r->plan->nodes[id];
    fb_ctx *ctx = r->ctx;
    switch (n->kind) {
    case N_SCAN:
        memset(s, 0, sizeof *s);
        s->scan = n;
        s->src_node = id;
        snprintf(s->text, sizeof s->text, "scan %s", n->table);
        return FB_OK;
    case N_FILTER:
        FB_FORWARD_IF_ERROR(compile(r, n->input, s));
        text_add(s->text, sizeof s->text, " -> filter");
        return add_op(r, s, "filter", id, (void *)n, filter_execute);
    case N_PROJECT:
        FB_FORWARD_IF_ERROR(compile(r, n->input, s));
        text_add(s->text, sizeof s->text, " -> project %s", n->names[n->n_cols - 1]);
        return add_op(r, s, "project", id, (void *)n, project_execute);
    case N_SORT:
        return compile_sort(r, n, n->limit, s);
    case N_LIMIT: {
        const pnode *in = &r->plan->nodes[n->input];
        if (in->kind == N_SORT) /* LIMIT over ORDER BY: a top-N sort */
            return compile_sort(r, in, in->limit >= 0 && in->limit < n->limit ? in->limit : n->limit, s);
        FB_FORWARD_IF_ERROR(compile(r, n->input, s));
        limit_state *ls = run_keep(r, calloc(1, sizeof *ls), free);
        FB_RETURN_ERROR_IF(!ls, ctx, FB_ERR_OUT_OF_MEMORY, "no memory");
        atomic_init(&ls->taken, 0);
        ls->limit = n->limit;
        text_add(s->text, sizeof s->text, " -> limit %lld", (long long)n->limit);
        return add_op(r, s, "limit", id, ls, limit_execute);
    }
    case N_JOIN: {
        join_state *js = run_keep(r, calloc(1, sizeof *js), free_join_state);
        build_map *map = run_keep(r, calloc(1, sizeof *map), free);
        sink_user *u = new_sink_user(r);
        FB_RETURN_ERROR_IF(!js || !map || !u, ctx, FB_ERR_OUT_OF_MEMORY, "no memory for a join");
        js->node = n;
        const pnode *bn = &r->plan->nodes[n->build];
        fb_type types[FB_PLAN_MAX_COLUMNS];
        for (size_t k = 0; k < n->n_keys; k++) {
            map->cols[map->n] = n->bkeys[k];
            types[map->n++] = bn->types[n->bkeys[k]];
        }
        for (size_t k = 0; k < n->n_payload; k++) {
            map->cols[map->n] = n->payload[k];
            types[map->n++] = bn->types[n->payload[k]];
        }
        mat_init(&js->rows, r->ctx, map->n, types);
        js->ctx = r->ctx;
        u->map = map;
        u->target = &js->rows;
        u->join = js;
        stream b;
        FB_FORWARD_IF_ERROR(compile(r, n->build, &b));
        u->pipe = r->n_pipes; /* the index stream_finish gives the build pipeline */
        fb_sink sink = {.name = "hash build", .init_local = collect_init_local, .sink = collect_sink,
                        .combine = collect_combine, .finalize = build_finalize,
                        .destroy_local = collect_destroy_local, .user = u};
        fb_pipeline *bp = NULL;
        char t[96];
        snprintf(t, sizeof t, "join build [%s] (join %d)", bn->names[n->bkeys[0]], id);
        FB_FORWARD_IF_ERROR(stream_finish(r, &b, "build", &sink, t, SINK_BUILD, id, n->build, &bp));
        FB_FORWARD_IF_ERROR(compile(r, n->input, s));
        FB_RETURN_ERROR_IF(s->n_deps == 64, ctx, FB_ERR_INVALID_ARG, "too many joins in one pipeline");
        s->deps[s->n_deps++] = bp;
        static const char *jt[] = {"inner", "left", "semi", "anti", "mark"};
        text_add(s->text, sizeof s->text, " -> %s join %d probe", jt[n->jtype], id);
        return add_op(r, s, "join probe", id, js, probe_execute);
    }
    case N_AGG: {
        FB_FORWARD_IF_ERROR(compile(r, n->input, s));
        const pnode *in = &r->plan->nodes[n->input];
        agg_state *as = run_keep(r, calloc(1, sizeof *as), free);
        mat *m = run_mat(r, n->n_cols, n->types);
        sink_user *u = new_sink_user(r);
        FB_RETURN_ERROR_IF(!as || !m || !u, ctx, FB_ERR_OUT_OF_MEMORY, "no memory for an aggregation");
        as->node = n;
        for (size_t k = 0; k < n->n_akeys; k++)
            as->key_types[k] = in->types[n->akeys[k]];
        for (size_t a = 0; a < n->n_aggs; a++) {
            as->descs[a].kind = n->aggs[a].kind;
            as->descs[a].input = (int32_t)a;
            as->descs[a].type = n->aggs[a].kind == FB_AGG_COUNT_STAR ? FB_TYPE_INVALID : in->types[n->aggs[a].column];
        }
        as->spec.n_keys = n->n_akeys;
        as->spec.key_types = as->key_types;
        as->spec.n_aggs = n->n_aggs;
        as->spec.aggs = as->descs;
        as->spec.strategy = FB_AGG_STRATEGY_AUTO;
        as->out = m;
        u->agg = as;
        fb_sink sink = {.name = "aggregate", .init_global = agg_init_global, .init_local = agg_init_local,
                        .sink = agg_sink, .combine = agg_combine, .finalize = agg_finalize,
                        .destroy_local = agg_destroy_local, .destroy_global = agg_destroy_global, .user = u};
        char t[64];
        snprintf(t, sizeof t, "aggregate (%zu keys, %zu aggregates)", n->n_akeys, n->n_aggs);
        return materialize(r, s, "aggregated", &sink, t, m, SINK_AGG, id, n->input);
    }
    }
    return FB_ERROR(ctx, FB_ERR_INTERNAL, "unknown node kind %d", (int)n->kind);
}

/* ---- running ----------------------------------------------------------------------------------------- */

typedef struct result_priv {
    mat m;
    char names[FB_PLAN_MAX_COLUMNS][32];
    const char *name_ptrs[FB_PLAN_MAX_COLUMNS];
    fb_column cols[FB_PLAN_MAX_COLUMNS];
    int n_pipes;
    pipe_desc pipes[MAX_PIPES];
    fb_stats stats[MAX_PIPES];
    fb_placement asked;
    int on_device;              /* the run's operators were placed on the OpenCL device (gpu / hybrid) */
    dev_figures dev[MAX_PIPES]; /* per pipeline: morsels per device, bytes moved */
    int64_t dev_morsel;         /* rows of the device's morsels */
    char note[400];             /* "gpu failed (<status>: <message>); ran on cpu", or "" */
} result_priv;

static void run_free(run *r)
{
    fb_query_destroy(r->q);
    for (int i = r->n_owned - 1; i >= 0; i--)
        r->owned_free[i](r->owned[i]);
    for (int i = 0; i < r->n_mats; i++) {
        mat_free(r->mats[i]);
        free(r->mats[i]);
    }
    free(r);
}

/* Compiles the plan under root into r->q; *root_mat is the mat holding the result after the run. */
static fb_status build_query(run *r, fb_plan_node root, mat **root_mat)
{
    const pnode *n = &r->plan->nodes[root];
    FB_FORWARD_IF_ERROR(fb_query_create(r->ctx, &r->q));
    stream s;
    FB_FORWARD_IF_ERROR(compile(r, root, &s));
    if (s.src && s.n_ops == 0) { /* the root is a breaker: its mat is the result */
        *root_mat = s.src;
        return FB_OK;
    }
    mat *m = run_mat(r, n->n_cols, n->types);
    sink_user *u = new_sink_user(r);
    FB_RETURN_ERROR_IF(!m || !u, r->ctx, FB_ERR_OUT_OF_MEMORY, "no memory for the result");
    u->target = m;
    fb_sink sink = {.name = "result", .init_local = collect_init_local, .sink = collect_sink,
                    .combine = collect_combine, .destroy_local = collect_destroy_local, .user = u};
    fb_pipeline *p;
    FB_FORWARD_IF_ERROR(stream_finish(r, &s, "result", &sink, "result", SINK_COLLECT, root, root, &p));
    *root_mat = m;
    return FB_OK;
}

/* The placement a run compiles for: cpu and auto compile for the CPU (fb_plan_run() lets auto choose
 * among the runnable placements); gpu and hybrid for themselves (the device is opened by the run). */
static fb_status check_placement(fb_ctx *ctx, fb_placement placement, fb_placement *chosen, const char *where)
{
    switch (placement) {
    case FB_PLACEMENT_CPU:
    case FB_PLACEMENT_AUTO:
        *chosen = FB_PLACEMENT_CPU;
        return FB_OK;
    case FB_PLACEMENT_GPU:
    case FB_PLACEMENT_HYBRID:
        *chosen = placement;
        return FB_OK;
    }
    *chosen = FB_PLACEMENT_CPU;
    return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "unknown placement %d", (int)placement);
}

/* auto: the runnable placement with the smallest predicted time (fb_plan_predict()); a placement whose
 * prediction fails is no candidate, and gpu / hybrid are candidates only when the device opens. */
static fb_placement auto_choose(fb_plan *plan, fb_plan_node root)
{
    double best = 0, t = 0;
    size_t n = 0;
    if (fb_plan_predict(plan, root, FB_PLACEMENT_CPU, NULL, 0, &n, &best) != FB_OK)
        return FB_PLACEMENT_CPU;
    fb_placement pick = FB_PLACEMENT_CPU;
    static const fb_placement cands[] = {FB_PLACEMENT_GPU, FB_PLACEMENT_HYBRID};
    for (int i = 0; i < 2; i++)
        if (fb_plan_predict(plan, root, cands[i], NULL, 0, &n, &t) == FB_OK && t < best) {
            best = t;
            pick = cands[i];
        }
    if (pick != FB_PLACEMENT_CPU && fb_cl_open(plan->ctx, NULL) != FB_OK)
        pick = FB_PLACEMENT_CPU;
    return pick;
}

/* Rows of the device's morsels: FB_PLAN_DEVICE_MORSEL when set (1..FB_MORSEL_MAX_ROWS), else the device
 * memory budget / 256 bytes a row, within 4 Ki..4 Mi rows (a small budget gives small morsels). */
static int64_t device_morsel_rows(fb_ctx *ctx)
{
    const char *e = getenv("FB_PLAN_DEVICE_MORSEL");
    if (e && e[0]) {
        char *end = NULL;
        long long v = strtoll(e, &end, 10);
        if (end && !*end && v >= 1 && v <= FB_MORSEL_MAX_ROWS)
            return (int64_t)v;
    }
    int64_t rows = ctx->cl ? (int64_t)(fb_cl_budget(ctx->cl) / 256) : 0;
    rows = rows < 4096 ? 4096 : rows > (4 << 20) ? (4 << 20) : rows;
    return rows;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

fb_status fb_plan_run(fb_plan *plan, fb_plan_node root, fb_placement placement, fb_plan_result **out)
{
    FB_RETURN_ERROR_IF(!plan || !out, plan ? plan->ctx : NULL, FB_ERR_INVALID_ARG, "plan and out must not be NULL");
    fb_ctx *ctx = plan->ctx;
    *out = NULL;
    FB_RETURN_ERROR_IF(!get_node(plan, root), ctx, FB_ERR_INVALID_ARG, "root node %d does not exist", (int)root);
    fb_placement chosen;
    FB_FORWARD_IF_ERROR(check_placement(ctx, placement, &chosen, __func__));
    if (placement == FB_PLACEMENT_AUTO)
        chosen = auto_choose(plan, root);
    if (chosen == FB_PLACEMENT_GPU)
        FB_FORWARD_IF_ERROR(fb_cl_open(ctx, NULL)); /* no device: gpu placement is an error */
    run *r = calloc(1, sizeof *r);
    fb_plan_result *res = calloc(1, sizeof *res);
    result_priv *priv = calloc(1, sizeof *priv);
    if (!r || !res || !priv) {
        free(r);
        free(res);
        free(priv);
        return FB_ERROR(ctx, FB_ERR_OUT_OF_MEMORY, "no memory for a run");
    }
    r->ctx = ctx;
    r->plan = plan;
    r->placement = chosen;
    r->fallback = placement != FB_PLACEMENT_GPU;
    atomic_init(&r->dev_failed, 0);
    for (int p = 0; p < MAX_PIPES; p++) {
        atomic_init(&r->dev[p].dev_rows, 0);
        atomic_init(&r->dev[p].cpu_rows, 0);
        atomic_init(&r->dev[p].dev_ns, 0);
        atomic_init(&r->dev[p].cpu_ns, 0);
        atomic_init(&r->dev[p].dev_morsels, 0);
        atomic_init(&r->dev[p].cpu_morsels, 0);
        atomic_init(&r->dev[p].h2d, 0);
        atomic_init(&r->dev[p].d2h, 0);
        atomic_init(&r->dev[p].chained, 0);
    }
    double t0 = now_s();
    if (chosen == FB_PLACEMENT_HYBRID) {
        fb_status ost = fb_cl_open(ctx, NULL); /* no device: hybrid runs on the CPU and says so */
        if (ost != FB_OK)
            device_fallback(r, ost, "opening the device");
    }
    r->dev_morsel = chosen != FB_PLACEMENT_CPU ? device_morsel_rows(ctx) : 0;
    mat *m = NULL;
    fb_status st = build_query(r, root, &m);
    if (st == FB_OK)
        st = fb_query_run(r->q);
    double t1 = now_s();
    if (st != FB_OK) {
        run_free(r);
        free(res);
        free(priv);
        return st;
    }
    /* The result takes the root mat's buffers. */
    const pnode *n = &plan->nodes[root];
    priv->m = *m;
    memset(m, 0, sizeof *m);
    m->n_cols = 0;
    priv->n_pipes = r->n_pipes;
    memcpy(priv->pipes, r->pipes, sizeof priv->pipes);
    for (int p = 0; p < r->n_pipes; p++)
        fb_query_stats(r->q, p, -1, &priv->stats[p]);
    priv->asked = placement;
    priv->on_device = chosen != FB_PLACEMENT_CPU;
    priv->dev_morsel = r->dev_morsel;
    for (int p = 0; p < r->n_pipes; p++) {
        priv->dev[p].dev_morsels = atomic_load(&r->dev[p].dev_morsels);
        priv->dev[p].cpu_morsels = atomic_load(&r->dev[p].cpu_morsels);
        priv->dev[p].h2d = atomic_load(&r->dev[p].h2d);
        priv->dev[p].d2h = atomic_load(&r->dev[p].d2h);
        priv->dev[p].chained = atomic_load(&r->dev[p].chained);
    }
    if (atomic_load(&r->dev_failed))
        snprintf(priv->note, sizeof priv->note, "gpu failed (%s: %s); ran on cpu", fb_status_name(r->dev_status),
                 r->dev_msg);
    for (int c = 0; c < n->n_cols; c++) {
        snprintf(priv->names[c], sizeof priv->names[c], "%s", n->names[c]);
        priv->name_ptrs[c] = priv->names[c];
        priv->cols[c] = mat_view(&priv->m, c, 0, priv->m.rows);
    }
    res->table.n_columns = (size_t)n->n_cols;
    res->table.columns = priv->cols;
    res->table.names = priv->name_ptrs;
    res->rows = priv->m.rows;
    res->seconds = t1 - t0;
    res->pipelines = r->n_pipes;
    res->placement = chosen;
    res->priv = priv;
    run_free(r);
    *out = res;
    return FB_OK;
}

const char *fb_plan_result_note(const fb_plan_result *r)
{
    return r && r->priv ? ((const result_priv *)r->priv)->note : "";
}

fb_status fb_plan_result_device_pipe(const fb_plan_result *r, int pipe, long long *dev_morsels, long long *chained,
                                     long long *h2d, long long *d2h)
{
    const result_priv *priv = r ? r->priv : NULL;
    if (!priv || pipe < 0 || pipe >= priv->n_pipes)
        return FB_ERR_INVALID_ARG;
    *dev_morsels = priv->dev[pipe].dev_morsels;
    *chained = priv->dev[pipe].chained;
    *h2d = priv->dev[pipe].h2d;
    *d2h = priv->dev[pipe].d2h;
    return FB_OK;
}

void fb_plan_result_free(fb_plan_result *r)
{
    if (!r)
        return;
    result_priv *priv = r->priv;
    if (priv) {
        mat_free(&priv->m);
        free(priv);
    }
    free(r);
}

/* ---- the cost model ------------------------------------------------------------------------------------ */

#define SAMPLE_SLICES 8
#define SAMPLE_ROWS 8192
#define AGG_GROUPS_GUESS 4096.0

/* Rows of the base table under a node (following inputs / probe sides down to a scan). */
int64_t fb_plan_device_morsel(fb_ctx *ctx)
{
    return device_morsel_rows(ctx);
}

static double base_rows(const fb_plan *p, int id)
{
    while (p->nodes[id].kind != N_SCAN)
        id = p->nodes[id].input;
    return (double)p->nodes[id].scan_rows;
}

/* Fraction of a scan's rows a filter over it keeps: its predicates evaluated with the select kernels on
 * SAMPLE_SLICES evenly spaced slices of SAMPLE_ROWS rows (all rows when the table is small). -1 when a
 * kernel fails (the caller guesses then). */
static double sample_selectivity(fb_ctx *ctx, const pnode *f, const pnode *scan)
{
    int64_t rows = scan->scan_rows;
    if (rows == 0)
        return 1.0;
    int64_t slice = rows <= SAMPLE_SLICES * SAMPLE_ROWS ? rows : SAMPLE_ROWS;
    int slices = rows <= SAMPLE_SLICES * SAMPLE_ROWS ? 1 : SAMPLE_SLICES;
    uint32_t *sel[2] = {malloc(sizeof(uint32_t) * (size_t)slice), malloc(sizeof(uint32_t) * (size_t)slice)};
    int64_t seen = 0, kept = 0;
    int failed = !sel[0] || !sel[1];
    for (int s = 0; s < slices && !failed; s++) {
        int64_t begin = slices == 1 ? 0 : (rows - slice) * s / (slices - 1);
        const uint32_t *cur = NULL;
        int64_t n_cur = slice;
        int which = 0;
        for (size_t k = 0; k < f->n_preds && n_cur > 0; k++) {
            const pred *pr = &f->preds[k];
            fb_column col = scan->scan[pr->p.column];
            col.offset += begin;
            col.length = slice;
            int64_t n_out = 0;
            fb_status st = select_pred(ctx, 0, pr, &col, cur, n_cur, sel[which], slice, &n_out);
            if (st != FB_OK) {
                failed = 1;
                break;
            }
            cur = sel[which];
            n_cur = n_out;
            which ^= 1;
        }
        seen += slice;
        kept += n_cur;
    }
    free(sel[0]);
    free(sel[1]);
    return failed ? -1.0 : (double)kept / (double)seen;
}

/* Follows column `c` of node `id` down to a base-table column; NULL when it is computed. */
static const fb_column *base_column(const fb_plan *p, int id, size_t c, const pnode **filter)
{
    if (filter)
        *filter = NULL;
    for (;;) {
        const pnode *n = &p->nodes[id];
        switch (n->kind) {
        case N_SCAN:
            return &n->scan[c];
        case N_FILTER:
            if (filter && p->nodes[n->input].kind == N_SCAN)
                *filter = n;
            id = n->input;
            break;
        case N_SORT:
        case N_LIMIT:
            id = n->input;
            break;
        case N_PROJECT:
            if (c + 1 >= (size_t)n->n_cols)
                return NULL;
            id = n->input;
            break;
        case N_JOIN: {
            int probe_cols = p->nodes[n->input].n_cols;
            if (c < (size_t)probe_cols) {
                id = n->input;
            } else {
                c = n->payload[c - (size_t)probe_cols];
                id = n->build;
            }
            break;
        }
        case N_AGG:
            if (c >= n->n_akeys)
                return NULL;
            c = n->akeys[c];
            id = n->input;
            break;
        }
    }
}

/* Row i of an integer column (int8..uint64, date32) as 64 bits. */
static uint64_t int_value(const fb_column *c, int64_t i)
{
    int64_t j = c->offset + i;
    switch (c->type) {
    case FB_TYPE_INT8:
        return (uint64_t)(int64_t)((const int8_t *)c->data)[j];
    case FB_TYPE_INT16:
        return (uint64_t)(int64_t)((const int16_t *)c->data)[j];
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32:
        return (uint64_t)(int64_t)((const int32_t *)c->data)[j];
    case FB_TYPE_UINT8:
        return ((const uint8_t *)c->data)[j];
    case FB_TYPE_UINT16:
        return ((const uint16_t *)c->data)[j];
    case FB_TYPE_UINT32:
        return ((const uint32_t *)c->data)[j];
    default:
        return ((const uint64_t *)c->data)[j];
    }
}

/* Most rows of a dimension table whose distinct keys the cost model counts. */
#define DISTINCT_MAX_ROWS (1 << 20)

/* Distinct values (a null counts as one) of column c of node `id` where it comes from a table of at most
 * DISTINCT_MAX_ROWS rows, among the rows a filter directly over that table keeps: the groups a grouping
 * key can form (a dimension attribute: d_year, c_city...). -1 when it is computed or the table is large. */
static double key_distinct(const fb_plan *p, int id, size_t c)
{
    const pnode *f = NULL;
    const fb_column *col = base_column(p, id, c, &f);
    if (!col || col->length > DISTINCT_MAX_ROWS || !is_int_type(col->type))
        return -1;
    int64_t rows = col->length;
    if (rows == 0)
        return 1;
    uint32_t *sel[2] = {NULL, NULL};
    const uint32_t *cur = NULL;
    int64_t n_cur = rows;
    if (f) { /* the filter's rows: its predicates over the whole (small) table */
        const pnode *scan = &p->nodes[f->input];
        sel[0] = malloc(sizeof(uint32_t) * (size_t)rows);
        sel[1] = malloc(sizeof(uint32_t) * (size_t)rows);
        int which = 0;
        for (size_t k = 0; sel[0] && sel[1] && k < f->n_preds && n_cur > 0; k++) {
            const pred *pr = &f->preds[k];
            const fb_column *pc = &scan->scan[pr->p.column];
            int64_t n_out = 0;
            fb_status st = select_pred(p->ctx, 0, pr, pc, cur, n_cur, sel[which], rows, &n_out);
            if (st != FB_OK) {
                free(sel[0]);
                free(sel[1]);
                return -1;
            }
            cur = sel[which];
            n_cur = n_out;
            which ^= 1;
        }
        if (!sel[0] || !sel[1]) {
            free(sel[0]);
            free(sel[1]);
            return -1;
        }
    }
    /* an open-addressing set of the values (0 marks an empty slot; the value 0 is counted apart) */
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)n_cur)
        cap *= 2;
    uint64_t *set = calloc(cap, sizeof *set);
    double distinct = -1;
    if (set) {
        int64_t found = 0;
        int nulls = 0, zero = 0;
        for (int64_t k = 0; k < n_cur; k++) {
            int64_t i = cur ? cur[k] : k;
            if (!fb_column_is_valid(col, i)) {
                nulls = 1;
                continue;
            }
            uint64_t v = int_value(col, i);
            if (v == 0) {
                zero = 1;
                continue;
            }
            for (uint64_t slot = ((v * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);; slot = (slot + 1) & (cap - 1)) {
                if (set[slot] == v)
                    break;
                if (set[slot] == 0) {
                    set[slot] = v;
                    found++;
                    break;
                }
            }
        }
        distinct = (double)(found + nulls + zero);
        if (distinct < 1)
            distinct = 1;
    }
    free(set);
    free(sel[0]);
    free(sel[1]);
    return distinct;
}

typedef struct estimate {
    const fb_plan *plan;
    double *rows; /* per node; < 0 not yet estimated */
} estimate;

static double est_rows(estimate *e, int id)
{
    if (e->rows[id] >= 0)
        return e->rows[id];
    const fb_plan *p = e->plan;
    const pnode *n = &p->nodes[id];
    double r = 0;
    switch (n->kind) {
    case N_SCAN:
        r = (double)n->scan_rows;
        break;
    case N_FILTER: {
        double in = est_rows(e, n->input), f = -1;
        if (p->nodes[n->input].kind == N_SCAN)
            f = sample_selectivity(p->ctx, n, &p->nodes[n->input]);
        if (f < 0)
            f = pow(0.5, (double)n->n_preds);
        r = in * f;
        break;
    }
    case N_PROJECT:
        r = est_rows(e, n->input);
        break;
    case N_JOIN: {
        double in = est_rows(e, n->input), base = base_rows(p, n->build);
        double match = base > 0 ? est_rows(e, n->build) / base : 0;
        match = match > 1 ? 1 : match;
        r = n->jtype == FB_JOIN_LEFT ? in : n->jtype == FB_JOIN_ANTI ? in * (1 - match) : in * match;
        break;
    }
    case N_AGG: {
        double in = est_rows(e, n->input), groups = 1;
        for (size_t k = 0; k < n->n_akeys && groups > 0; k++) {
            double d = key_distinct(p, n->input, n->akeys[k]);
            groups = d > 0 ? groups * d : -1;
        }
        if (groups < 0) /* a key that is computed or from a large table: a guess */
            groups = AGG_GROUPS_GUESS;
        r = n->n_akeys == 0 ? 1 : in < groups ? in : groups;
        break;
    }
    case N_SORT:
    case N_LIMIT: {
        double in = est_rows(e, n->input);
        r = n->limit >= 0 && (double)n->limit < in ? (double)n->limit : in;
        break;
    }
    }
    e->rows[id] = r;
    return r;
}

/* Whether the run will probe this join through a perfect hash: one key whose base column has a dense
 * range (as try_direct decides; uniqueness is assumed - the dimension tables of a star schema); *key_range
 * (may be NULL) that range. */
static int predict_direct(const fb_plan *p, const pnode *n, double *key_range)
{
    if (key_range)
        *key_range = 1;
    if (n->n_keys != 1)
        return 0;
    const fb_column *c = base_column(p, n->build, n->bkeys[0], NULL);
    if (!c || c->length > (1 << 24))
        return 0;
    int64_t lo = INT64_MAX, hi = INT64_MIN, valid = 0;
    for (int64_t i = 0; i < c->length; i++) {
        int ok;
        int64_t v = key_at(c, i, &ok);
        if (!ok)
            return 0;
        if (!fb_column_is_valid(c, i))
            continue;
        valid++;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    if (!valid)
        return 1;
    uint64_t range = (uint64_t)hi - (uint64_t)lo + 1;
    if (key_range)
        *key_range = (double)range;
    return range != 0 && range <= DIRECT_MAX_RANGE && (range <= 4 * (uint64_t)c->length + 1024 || range <= (1u << 18));
}

/* What a device's probe rates are multiplied with for a join whose build side has `build` rows: from
 * small_table_ratio at small_table_rows (0: 2048) to 1 at the table_rows they were measured with, log-linear
 * between and below (at least half the ratio). */
static double device_probe_scale(const fb_plan_calibration *cal, double build)
{
    double lo = cal->opencl.small_table_rows > 0 ? cal->opencl.small_table_rows : 2048, hi = cal->opencl.table_rows,
           r = cal->opencl.small_table_ratio;
    if (!(r > 0 && r < 1) || !(hi > lo))
        return 1;
    /* below the small table's rows the same line on (smaller tables stay in nearer caches), down to r / 2 */
    double u = build < 1 ? log(1 / lo) / log(hi / lo) : build >= hi ? 1 : log(build / lo) / log(hi / lo);
    double scale = r + (1 - r) * u;
    return scale > r / 2 ? scale : r / 2;
}

/* mix(f) of fb_plan_rates.probe_mix_row_s: (1 - f^W - (1 - f)^W) / (1 - 2^(1-W)). */
static double probe_mix_shape(double f, double w)
{
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    return (1 - pow(f, w) - pow(1 - f, w)) / (1 - pow(2, 1 - w));
}

/* probe_row_s for a perfect hash over `range` keys: log-linear between the calibration's range and 2^18
 * (probe_big_row_s), the nearer one's outside them. */
static double probe_row_at(const fb_plan_rates *rt, const fb_plan_calibration *cal, double range)
{
    double lo = fb_plan_cal_probe_range(cal->rows), hi = fb_plan_cal_big_range();
    if (!(rt->probe_big_row_s > 0) || !(hi > lo) || range <= lo)
        return rt->probe_row_s;
    if (range >= hi)
        return rt->probe_big_row_s;
    double u = log(range / lo) / log(hi / lo);
    return rt->probe_row_s + u * (rt->probe_big_row_s - rt->probe_row_s);
}

/* Predicted seconds of pipeline pd with rates `rt` (a device's with dev: its probe rates scaled by the
 * build side's size). */
static double predict_pipe(estimate *e, const pipe_desc *pd, const fb_plan_rates *rt, double sort_rows,
                           double *sink_rows, const fb_plan_calibration *dev, const fb_plan_calibration *cal)
{
    const fb_plan *p = e->plan;
    /* chunk: the rows of the chunks the operators see. Filters and perfect-hash probes narrow a selection
     * over the source's chunk; a hash-table probe makes new chunks of its pairs. A projection computes
     * every row of the chunk (the expression kernels are dense under a selection). */
    double chunk = est_rows(e, pd->src_node);
    double t = rt->pipeline_s + (pd->starts_with_run ? rt->start_s : 0) + chunk * rt->scan_row_s;
    for (int k = 0; k < pd->n_op_nodes; k++) {
        const pnode *n = &p->nodes[pd->op_nodes[k]];
        double in = est_rows(e, n->input);
        switch (n->kind) {
        case N_FILTER:
            t += in * (double)n->n_preds * rt->filter_row_s;
            break;
        case N_PROJECT: { /* one dense pass for the arithmetic and one per input widened to int64 first */
            const pnode *in_node = &p->nodes[n->input];
            double passes = 1 + (in_node->types[n->left] != FB_TYPE_INT64) +
                            (!n->right_is_const && in_node->types[n->right] != FB_TYPE_INT64);
            /* the device's kernels compute the selected rows only (their copies are whole columns: gpu_extra) */
            t += (dev ? in : chunk) * passes * rt->project_row_s;
            break;
        }
        case N_JOIN: {
            double scale = dev ? device_probe_scale(dev, est_rows(e, n->build)) : 1;
            double key_range;
            if (predict_direct(p, n, &key_range)) {
                double base = base_rows(p, n->build), match = base > 0 ? est_rows(e, n->build) / base : 0;
                match = match < 1 ? match : 1;
                /* a mix of matches: branches (cpu) or work-items (device) that diverge */
                double mix_rate = rt->probe_mix_row_s > 0 ? rt->probe_mix_row_s : dev ? dev->opencl.probe_mix_row_s : 0;
                double mix = probe_mix_shape(match, dev ? 16 : 2) * mix_rate;
                t += scale * in * (probe_row_at(rt, cal, key_range) + match * rt->probe_match_row_s + mix);
            } else {
                t += scale * in * rt->hash_probe_row_s;
                if (n->jtype == FB_JOIN_INNER || n->jtype == FB_JOIN_LEFT)
                    chunk = est_rows(e, pd->op_nodes[k]);
            }
            break;
        }
        default: /* limit: a counter */
            break;
        }
    }
    double rows = est_rows(e, pd->sink_in);
    *sink_rows = rows;
    switch (pd->sink_kind) {
    case SINK_BUILD:
        t += rows * rt->build_row_s;
        break;
    case SINK_AGG: /* an ungrouped count / sum is part of the base the scan rate was measured with */
        if (p->nodes[pd->sink_node].n_akeys)
            t += rows * rt->agg_row_s;
        break;
    case SINK_SORT: /* sort_row_s was measured sorting cal_rows / 4 rows: per row it grows as log n */
        t += rows * rt->sort_row_s * log2(rows > 2 ? rows : 2) / log2(sort_rows > 2 ? sort_rows : 2);
        break;
    default:
        t += rows * rt->collect_row_s;
        break;
    }
    return t;
}

/* The plan's calibration: the one set, else the default file (read once it exists). */
static fb_status plan_calibration(fb_plan *p, const char *where)
{
    if (p->has_cal)
        return FB_OK;
    char path[1024] = "";
    fb_plan_calibration cal;
    fb_status st = fb_plan_calibration_path(p->ctx, path, sizeof path);
    if (st == FB_OK)
        st = fb_plan_calibration_load(p->ctx, path, &cal);
    if (st != FB_OK)
        return fb_set_error(p->ctx, FB_ERR_IO, where,
                            "no calibration for the cost model (%s: %s); run fbench calibrate, or set one with "
                            "fb_plan_set_calibration()",
                            path[0] ? path : "no default path", fb_last_error(p->ctx));
    p->cal = cal;
    p->has_cal = 1;
    return FB_OK;
}

fb_status fb_plan_set_calibration(fb_plan *plan, const fb_plan_calibration *cal)
{
    FB_RETURN_ERROR_IF(!plan, NULL, FB_ERR_INVALID_ARG, "plan must not be NULL");
    plan->has_cal = cal != NULL;
    if (cal)
        plan->cal = *cal;
    return FB_OK;
}

/* What the gpu placement adds to pipeline pd beyond rows x rates (fb_plan_predict()), following what its
 * device chain does (runtime/plan.c's device chains): per device morsel one job whose kernels (one per
 * predicate, per projection and per input it widens, per join probe and one more for an inner / left join's
 * gathers) cost opencl.launch_s each; a source column goes up once, when an operator first reads it (the
 * whole morsel column, or under half the morsel's rows live only the live rows and the row map back, 4
 * bytes a live row); down come the row map (4 bytes a result row) and the columns made on the device
 * (gathered payload, projections) of the result rows; plus opencl.job_s once. *once: what does not grow with
 * the source's rows: for a build pipeline the join's device table, made once when it finishes (table_s, keys
 * in, table_row_s per row, one call) and its payload columns in. A pipeline without operators does not use
 * the device otherwise: 0. */
static double gpu_extra(estimate *e, const pipe_desc *pd, const fb_plan_calibration *cal, double *once)
{
    const fb_plan *p = e->plan;
    double up = cal->opencl.h2d_gbps * 1e9, down = cal->opencl.d2h_gbps * 1e9;
    /* a join's build side goes to the device once, when its build pipeline finishes */
    double table_s = 0;
    if (pd->sink_kind == SINK_BUILD) {
        const pnode *j = &p->nodes[pd->sink_node], *b = &p->nodes[pd->sink_in];
        double rows = est_rows(e, pd->sink_in), bytes = 0;
        for (size_t k = 0; k < j->n_keys; k++)
            bytes += (double)fb_type_width(b->types[j->bkeys[k]]);
        if (j->jtype == FB_JOIN_INNER || j->jtype == FB_JOIN_LEFT)
            for (size_t k = 0; k < j->n_payload; k++)
                bytes += (double)fb_type_width(b->types[j->payload[k]]) + 0.125;
        table_s = cal->opencl.table_s + cal->opencl.launch_s + rows * cal->opencl.table_row_s +
                  (up > 0 ? rows * bytes / up : 0);
    }
    *once = table_s;
    if (pd->n_op_nodes == 0)
        return 0;
    double src_rows = est_rows(e, pd->src_node);
    double morsels = ceil(src_rows / (double)device_morsel_rows(p->ctx));
    morsels = morsels < 1 ? 1 : morsels;
    const pnode *src = &p->nodes[pd->src_node];
    int n_src = src->n_cols;
    char sent[FB_PLAN_MAX_COLUMNS] = {0};
    double live = src_rows, kernels = 0, h2d = 0, d2h = 0;
/* a source column (index < n_src: a pipeline's operators keep the source's columns first) goes up once */
#define SEND(c)                                                                                                     \
    do {                                                                                                            \
        size_t c_ = (c);                                                                                            \
        if (c_ < (size_t)n_src && c_ < FB_PLAN_MAX_COLUMNS && !sent[c_]) {                                          \
            double w_ = (double)fb_type_width(src->types[c_]);                                                      \
            sent[c_] = 1;                                                                                           \
            if (live < src_rows / 2) {                                                                              \
                h2d += live * w_;                                                                                   \
                d2h += 4 * live;                                                                                    \
            } else {                                                                                                \
                h2d += src_rows * w_;                                                                               \
            }                                                                                                       \
        }                                                                                                           \
    } while (0)
    const pnode *last = src;
    for (int k = 0; k < pd->n_op_nodes; k++) {
        const pnode *n = &p->nodes[pd->op_nodes[k]];
        const pnode *in = &p->nodes[n->input];
        double out = est_rows(e, pd->op_nodes[k]);
        switch (n->kind) {
        case N_FILTER:
            for (size_t i = 0; i < n->n_preds; i++)
                SEND(n->preds[i].p.column);
            kernels += (double)n->n_preds;
            live = out;
            break;
        case N_PROJECT:
            SEND(n->left);
            if (!n->right_is_const)
                SEND(n->right);
            kernels += 1 + (in->types[n->left] != FB_TYPE_INT64) +
                       (!n->right_is_const && in->types[n->right] != FB_TYPE_INT64);
            break;
        case N_JOIN:
            for (size_t i = 0; i < n->n_keys; i++)
                SEND(n->pkeys[i]);
            kernels += 1 + (n->jtype == FB_JOIN_INNER || n->jtype == FB_JOIN_LEFT);
            live = out;
            break;
        default: /* limit: a counter on the host */
            break;
        }
        last = n;
    }
#undef SEND
    /* down: the row map and the columns made on the device, of the result rows */
    d2h += 4 * live;
    for (int c = n_src; c < last->n_cols; c++)
        d2h += live * ((double)fb_type_width(last->types[c]) + 0.125);
    return cal->opencl.job_s + morsels * kernels * cal->opencl.launch_s + (up > 0 ? h2d / up : 0) +
           (down > 0 ? d2h / down : 0);
}

/* The per-row part of a hybrid pipeline of S source rows: worker 0 drives the device (g seconds a row) and
 * the other workers run CPU morsels (c seconds a row with all W workers, so c W / (W - 1) with W - 1); the
 * placement sizes the device's morsels from the speeds it measures (its share of the rows left), so both
 * finish about together: their throughputs add. On shared cores (the device is the CPU: its g was
 * measured with every core) the device runs on the driver's core only: W g a row. */
static double hybrid_split(double S, int W, double g, double c, int shares)
{
    if (S <= 0)
        return 0;
    if (W < 2) /* only the device's driver */
        return S * g;
    double cw = c * W / (W - 1);
    if (!(g > 0) || !(cw > 0))
        return 0;
    /* on shared cores the device has the driver's core only: g x W a row */
    return S / (1 / (shares ? g * W : g) + 1 / cw);
}

/* Predictions of every pipeline of a compiled run under placement cpu, gpu or hybrid: its time
 * (seconds[r->n_pipes]), the rows into its sink (sink_rows likewise), their sum (total) and its wall time
 * where the pipelines that start with the run share the workers (walls); each but seconds may be NULL. */
static fb_status predict_run(const fb_plan *plan, const run *r, fb_placement placement, double *seconds,
                             double *sink_rows, double *total, double *walls)
{
    const fb_plan_calibration *cal = &plan->cal;
    double sort_rows = cal->rows > 0 ? (double)cal->rows / 4 : 1 << 20;
    estimate e = {plan, malloc(sizeof(double) * (size_t)(plan->n_nodes ? plan->n_nodes : 1))};
    FB_RETURN_ERROR_IF(!e.rows, plan->ctx, FB_ERR_OUT_OF_MEMORY, "no memory for estimates");
    for (int i = 0; i < plan->n_nodes; i++)
        e.rows[i] = -1;
    double dev[MAX_PIPES]; /* the device's fixed work of each pipeline: its calls, copies and tables */
    for (int k = 0; k < r->n_pipes; k++) {
        const pipe_desc *pd = &r->pipes[k];
        double rows, once = 0;
        double cpu = placement == FB_PLACEMENT_GPU ? 0 : predict_pipe(&e, pd, &cal->cpu, sort_rows, &rows, NULL, cal);
        double extra = placement == FB_PLACEMENT_CPU ? 0 : gpu_extra(&e, pd, cal, &once);
        double gpu = placement == FB_PLACEMENT_CPU
                         ? 0
                         : predict_pipe(&e, pd, &cal->opencl.rates, sort_rows, &rows, cal, cal) + extra;
        dev[k] = placement == FB_PLACEMENT_CPU ? 0 : once + (pd->n_op_nodes ? extra : 0);
        if (placement == FB_PLACEMENT_CPU) {
            seconds[k] = cpu;
        } else if (placement == FB_PLACEMENT_GPU) {
            seconds[k] = gpu + once;
        } else if (pd->n_op_nodes == 0) { /* hybrid: the CPU workers run it (and a build makes its device table) */
            seconds[k] = cpu + once;
        } else { /* hybrid: the per-row parts split between the device and the CPU workers */
            double start = pd->starts_with_run, src = est_rows(&e, pd->src_node);
            double cpu_fixed = cal->cpu.pipeline_s + start * cal->cpu.start_s;
            double gpu_fixed = cal->opencl.rates.pipeline_s + start * cal->opencl.rates.start_s + cal->opencl.job_s;
            double cv = cpu - cpu_fixed, gv = gpu - gpu_fixed;
            int W = fb_ctx_threads(plan->ctx);
            double both = src > 0 ? hybrid_split(src, W, gv / src, cv / src, cal->opencl.shares_cores) : 0;
            /* the device's first morsel is a CPU-sized one (hybrid_device_morsel()), and a morsel is not
             * split: where there are many morsels (8 or more), the pipeline lasts at least that long; with
             * fewer the CPU workers may take them all */
            double first = (double)FB_MORSEL_DEFAULT_ROWS, dm = (double)device_morsel_rows(plan->ctx);
            first = first < dm ? first : dm;
            double first_s = W >= 2 && src >= 8 * first ? first * gv / src : 0;
            both = both > first_s ? both : first_s;
            seconds[k] = (cpu_fixed > gpu_fixed ? cpu_fixed : gpu_fixed) + both + once;
        }
        if (sink_rows)
            sink_rows[k] = rows;
    }
    free(e.rows);
    /* The pipelines that start with the run are ready at once, and the W workers take their morsels in turn:
     * each one's wall time (what explain analyze measures) is, under processor sharing, the start plus the
     * sum over them of min(its own time, the other's) over W (a small build is one morsel: one worker each),
     * at least its own time; each without the start. Their device work (calls, copies, tables) queues on the
     * one device: at least its own and half the others'. (Later pipelines run alone: in a star schema each
     * waits for all before it.) */
    double start_s = cal->cpu.start_s, sum = 0, W = fb_ctx_threads(plan->ctx);
    for (int k = 0; k < r->n_pipes; k++) {
        sum += seconds[k];
        if (!walls)
            continue;
        walls[k] = seconds[k];
        if (!r->pipes[k].starts_with_run)
            continue;
        double own = seconds[k] - start_s, shared = 0, queued = dev[k];
        own = own > 0 ? own : 0;
        for (int j = 0; j < r->n_pipes; j++) {
            double other = seconds[j] - start_s;
            if (!r->pipes[j].starts_with_run)
                continue;
            shared += other < own ? (other > 0 ? other : 0) : own;
            queued += j != k ? dev[j] / 2 : 0;
        }
        shared /= W >= 1 ? W : 1;
        shared = shared > own ? shared : own;
        walls[k] = start_s + (queued > shared ? queued : shared);
    }
    if (total)
        *total = sum;
    return FB_OK;
}

fb_status fb_plan_gpu_extra(fb_plan *plan, fb_plan_node root, const fb_plan_calibration *cal, double *seconds)
{
    run *r = calloc(1, sizeof *r);
    estimate e = {plan, malloc(sizeof(double) * (size_t)(plan->n_nodes ? plan->n_nodes : 1))};
    if (!r || !e.rows) {
        free(r);
        free(e.rows);
        return FB_ERROR(plan->ctx, FB_ERR_OUT_OF_MEMORY, "no memory");
    }
    for (int i = 0; i < plan->n_nodes; i++)
        e.rows[i] = -1;
    r->ctx = plan->ctx;
    r->plan = plan;
    mat *m = NULL;
    fb_status st = build_query(r, root, &m);
    double sum = 0;
    for (int k = 0; st == FB_OK && k < r->n_pipes; k++) {
        double once;
        sum += gpu_extra(&e, &r->pipes[k], cal, &once) + once;
    }
    *seconds = sum;
    free(e.rows);
    run_free(r);
    return st;
}

/* Whether gpu / hybrid can be predicted: OpenCL rates in the calibration and a device on the context.
 * FB_ERR_NO_DEVICE with a message saying which is missing. */
static fb_status device_predictable(fb_plan *plan, fb_placement placement, const char *where)
{
    FB_FORWARD_IF_ERROR(plan_calibration(plan, where));
    if (!plan->cal.opencl.has_opencl)
        return fb_set_error(plan->ctx, FB_ERR_NO_DEVICE, where,
                            "placement %s has no prediction: the calibration has no OpenCL rates (run fbench "
                            "calibrate on a machine with an OpenCL device)",
                            fb_placement_name(placement));
    if (fb_plan_cost_device(plan->ctx) != FB_OK)
        return fb_set_error(plan->ctx, FB_ERR_NO_DEVICE, where, "placement %s has no prediction: no OpenCL device (%s)",
                            fb_placement_name(placement), fb_last_error(plan->ctx));
    return FB_OK;
}

/* The compiled run's predictions under one placement (pipelines into sec[MAX_PIPES]). */
static fb_status predict_placement(fb_plan *plan, fb_plan_node root, fb_placement placement, double *sec, int *n_pipes,
                                   double *total, const char *where)
{
    fb_ctx *ctx = plan->ctx;
    FB_FORWARD_IF_ERROR(plan_calibration(plan, where));
    if (placement != FB_PLACEMENT_CPU)
        FB_FORWARD_IF_ERROR(device_predictable(plan, placement, where));
    run *r = calloc(1, sizeof *r);
    FB_RETURN_ERROR_IF(!r, ctx, FB_ERR_OUT_OF_MEMORY, "no memory");
    r->ctx = ctx;
    r->plan = plan;
    mat *m = NULL;
    fb_status st = build_query(r, root, &m);
    if (st == FB_OK)
        st = predict_run(plan, r, placement, sec, NULL, total, NULL);
    if (st == FB_OK)
        *n_pipes = r->n_pipes;
    run_free(r);
    return st;
}

fb_status fb_plan_predict_choice(fb_plan *plan, fb_plan_node root, fb_placement *chosen, double *totals)
{
    FB_RETURN_ERROR_IF(!plan || !chosen, plan ? plan->ctx : NULL, FB_ERR_INVALID_ARG,
                       "plan and chosen must not be NULL");
    FB_RETURN_ERROR_IF(!get_node(plan, root), plan->ctx, FB_ERR_INVALID_ARG, "root node %d does not exist", (int)root);
    double sec[MAX_PIPES], t[3] = {NAN, NAN, NAN};
    int n;
    FB_FORWARD_IF_ERROR(predict_placement(plan, root, FB_PLACEMENT_CPU, sec, &n, &t[0], __func__));
    *chosen = FB_PLACEMENT_CPU;
    for (int pl = FB_PLACEMENT_GPU; pl <= FB_PLACEMENT_HYBRID; pl++) {
        if (predict_placement(plan, root, (fb_placement)pl, sec, &n, &t[pl], __func__) != FB_OK) {
            t[pl] = NAN;
            continue;
        }
        if (t[pl] < t[*chosen])
            *chosen = (fb_placement)pl;
    }
    if (totals)
        memcpy(totals, t, sizeof t);
    return FB_OK;
}

fb_status fb_plan_predict(fb_plan *plan, fb_plan_node root, fb_placement placement, double *seconds,
                          size_t capacity, size_t *n, double *total)
{
    FB_RETURN_ERROR_IF(!plan || !n || (capacity && !seconds), plan ? plan->ctx : NULL, FB_ERR_INVALID_ARG,
                       "plan and n must not be NULL (seconds only with capacity 0)");
    fb_ctx *ctx = plan->ctx;
    FB_RETURN_ERROR_IF(!get_node(plan, root), ctx, FB_ERR_INVALID_ARG, "root node %d does not exist", (int)root);
    FB_RETURN_ERROR_IF((unsigned)placement > FB_PLACEMENT_AUTO, ctx, FB_ERR_INVALID_ARG, "unknown placement %d",
                       (int)placement);
    if (placement == FB_PLACEMENT_AUTO)
        FB_FORWARD_IF_ERROR(fb_plan_predict_choice(plan, root, &placement, NULL));
    double sec[MAX_PIPES], sum = 0;
    int n_pipes = 0;
    FB_FORWARD_IF_ERROR(predict_placement(plan, root, placement, sec, &n_pipes, &sum, __func__));
    for (int k = 0; k < n_pipes && (size_t)k < capacity; k++)
        seconds[k] = sec[k];
    *n = (size_t)n_pipes;
    if (total)
        *total = sum;
    return FB_OK;
}

/* ---- explain ----------------------------------------------------------------------------------------- */

static void explain_node(const fb_plan *plan, int id, int depth, FILE *f)
{
    const pnode *n = &plan->nodes[id];
    fprintf(f, "%*s", 2 * depth, "");
    static const char *cmp[] = {"=", "<>", "<", "<=", ">", ">="};
    switch (n->kind) {
    case N_SCAN:
        fprintf(f, "SCAN %s (%lld rows) [", n->table, (long long)n->scan_rows);
        for (int c = 0; c < n->n_cols; c++)
            fprintf(f, "%s%s", c ? ", " : "", n->names[c]);
        fprintf(f, "]\n");
        return;
    case N_FILTER: {
        const pnode *in = &plan->nodes[n->input];
        fprintf(f, "FILTER ");
        for (size_t k = 0; k < n->n_preds; k++) {
            const fb_plan_pred *p = &n->preds[k].p;
            const char *col = in->names[p->column];
            int flt = in->types[p->column] == FB_TYPE_FLOAT32 || in->types[p->column] == FB_TYPE_FLOAT64;
            if (k)
                fprintf(f, " AND ");
            if (p->kind == FB_PLAN_PRED_CMP && flt)
                fprintf(f, "%s %s %g", col, cmp[p->op], p->fvalue);
            else if (p->kind == FB_PLAN_PRED_CMP)
                fprintf(f, "%s %s %lld", col, cmp[p->op], (long long)p->value);
            else if (p->kind == FB_PLAN_PRED_BETWEEN && flt)
                fprintf(f, "%s BETWEEN %g AND %g", col, p->flo, p->fhi);
            else if (p->kind == FB_PLAN_PRED_BETWEEN)
                fprintf(f, "%s BETWEEN %lld AND %lld", col, (long long)p->lo, (long long)p->hi);
            else
                fprintf(f, "%s IN (%zu values)", col, p->n_in);
        }
        fprintf(f, "\n");
        break;
    }
    case N_PROJECT:
        fprintf(f, "PROJECT %s\n", n->names[n->n_cols - 1]);
        break;
    case N_JOIN: {
        static const char *jt[] = {"INNER", "LEFT", "SEMI", "ANTI", "MARK"};
        const pnode *pn = &plan->nodes[n->input], *bn = &plan->nodes[n->build];
        fprintf(f, "%s HASH JOIN %d ON ", jt[n->jtype], id);
        for (size_t k = 0; k < n->n_keys; k++)
            fprintf(f, "%s%s = %s", k ? " AND " : "", pn->names[n->pkeys[k]], bn->names[n->bkeys[k]]);
        fprintf(f, "\n");
        explain_node(plan, n->input, depth + 1, f);
        fprintf(f, "%*sbuild:\n", 2 * depth + 2, "");
        explain_node(plan, n->build, depth + 2, f);
        return;
    }
    case N_AGG:
        fprintf(f, "AGGREGATE [");
        for (int c = 0; c < n->n_cols; c++)
            fprintf(f, "%s%s", c ? ", " : "", n->names[c]);
        fprintf(f, "] (%zu keys)\n", n->n_akeys);
        break;
    case N_SORT:
        fprintf(f, "SORT BY ");
        for (size_t k = 0; k < n->n_skeys; k++)
            fprintf(f, "%s%s %s", k ? ", " : "", n->names[n->skeys[k].column], n->skeys[k].descending ? "DESC" : "ASC");
        if (n->limit >= 0)
            fprintf(f, " LIMIT %lld", (long long)n->limit);
        fprintf(f, "\n");
        break;
    case N_LIMIT:
        fprintf(f, "LIMIT %lld\n", (long long)n->limit);
        break;
    }
    if (n->input >= 0)
        explain_node(plan, n->input, depth + 1, f);
}

fb_status fb_plan_explain(const fb_plan *plan, fb_plan_node root, fb_placement placement,
                          const fb_plan_result *analyzed, FILE *out)
{
    FB_RETURN_ERROR_IF(!plan || !out, plan ? plan->ctx : NULL, FB_ERR_INVALID_ARG, "plan and out must not be NULL");
    fb_ctx *ctx = plan->ctx;
    FB_RETURN_ERROR_IF(!get_node(plan, root), ctx, FB_ERR_INVALID_ARG, "root node %d does not exist", (int)root);
    fb_placement chosen;
    int runnable = check_placement(ctx, placement, &chosen, __func__) == FB_OK;
    fprintf(out, "plan:\n");
    explain_node(plan, root, 1, out);
    /* The pipelines, from a compile that is not run. */
    run *r = calloc(1, sizeof *r);
    FB_RETURN_ERROR_IF(!r, ctx, FB_ERR_OUT_OF_MEMORY, "no memory");
    r->ctx = ctx;
    r->plan = plan;
    mat *m = NULL;
    fb_status st = build_query(r, root, &m);
    /* The predictions, when a calibration is set or in the default file (explain works without): every
     * placement that can be predicted (pr[placement][pipeline]), and what auto picks among them. */
    double pr[3][MAX_PIPES], walls[3][MAX_PIPES], pred_rows[MAX_PIPES], pred_total[3] = {0, 0, 0};
    char no_cal[400] = "", no_dev[400] = "";
    int have_pred = 0, have[3] = {0, 0, 0};
    fb_placement pick = FB_PLACEMENT_CPU;
    if (st == FB_OK) {
        if (plan_calibration((fb_plan *)plan, __func__) == FB_OK) {
            st = predict_run(plan, r, FB_PLACEMENT_CPU, pr[0], pred_rows, &pred_total[0], walls[0]);
            have[0] = have_pred = st == FB_OK;
            if (have_pred && device_predictable((fb_plan *)plan, FB_PLACEMENT_GPU, __func__) == FB_OK) {
                for (int pl = FB_PLACEMENT_GPU; pl <= FB_PLACEMENT_HYBRID && st == FB_OK; pl++) {
                    st = predict_run(plan, r, (fb_placement)pl, pr[pl], NULL, &pred_total[pl], walls[pl]);
                    have[pl] = st == FB_OK;
                }
            } else if (have_pred) {
                snprintf(no_dev, sizeof no_dev, "%s", fb_last_error(ctx));
            }
            for (int pl = FB_PLACEMENT_GPU; pl <= FB_PLACEMENT_HYBRID; pl++)
                if (have[pl] && pred_total[pl] < pred_total[pick])
                    pick = (fb_placement)pl;
        } else {
            snprintf(no_cal, sizeof no_cal, "%s", fb_last_error(ctx));
        }
    }
    if (st == FB_OK) {
        fprintf(out, "pipelines (placement %s", fb_placement_name(placement));
        if (placement == FB_PLACEMENT_AUTO && have_pred) {
            fprintf(out, ": chose %s, predicted %.4g s", fb_placement_name(pick), pred_total[pick]);
            if (have[FB_PLACEMENT_GPU])
                fprintf(out, ", the smallest of cpu %.4g s, gpu %.4g s, hybrid %.4g s", pred_total[0], pred_total[1],
                        pred_total[2]);
            else
                fprintf(out, "; gpu and hybrid cannot be predicted: %s", no_dev);
        } else if (placement == FB_PLACEMENT_AUTO) {
            fprintf(out, ": chose cpu: no calibration to predict with");
        } else if (!runnable) {
            fprintf(out, ": not available in this version");
        } else if (have_pred && have[placement]) {
            fprintf(out, ": predicted %.4g s", pred_total[placement]);
        }
        fprintf(out, "):\n");
        if (!have_pred)
            fprintf(out, "  predicted: none: %s\n", no_cal);
        else if (!have[FB_PLACEMENT_GPU] && placement != FB_PLACEMENT_AUTO)
            fprintf(out, "  gpu, hybrid: no prediction: %s\n", no_dev);
        /* the measured run is compared with the prediction of where it ran */
        int ran = analyzed && (unsigned)analyzed->placement < 3 && have[analyzed->placement] ? (int)analyzed->placement
                                                                                              : 0;
        for (int p = 0; p < r->n_pipes; p++) {
            fprintf(out, "  %d: %s\n", p, r->pipes[p].text);
            if (have_pred) {
                fprintf(out, "     predicted: cpu %.3f ms", pr[0][p] * 1e3);
                if (have[FB_PLACEMENT_GPU])
                    fprintf(out, ", gpu %.3f ms, hybrid %.3f ms", pr[1][p] * 1e3, pr[2][p] * 1e3);
                fprintf(out, " (%.0f rows into the sink)\n", pred_rows[p]);
            }
            if (analyzed && analyzed->priv && p < ((result_priv *)analyzed->priv)->n_pipes) {
                const fb_stats *s = &((result_priv *)analyzed->priv)->stats[p];
                fprintf(out, "     analyzed: %lld rows scanned, %lld rows into the sink, %lld morsels, %.2f ms wall, "
                             "%.2f ms busy\n",
                        (long long)s->rows, (long long)s->rows_out, (long long)s->morsels, s->wall_ns / 1e6,
                        s->busy_ns / 1e6);
                /* its wall time: with the pipelines that start with the run, sharing the workers */
                double w = walls[ran][p];
                if (have_pred)
                    fprintf(out, "     measured %.3f ms, predicted %s %.3f ms: measured/predicted %.2f%s\n",
                            s->wall_ns / 1e6, fb_placement_name((fb_placement)ran), w * 1e3,
                            w > 0 ? s->wall_ns / 1e9 / w : NAN,
                            w != pr[ran][p] ? " (its wall time among the pipelines that start with the run)" : "");
                const char *note = ((result_priv *)analyzed->priv)->pipes[p].note;
                if (note[0])
                    fprintf(out, "     %s\n", note);
                const result_priv *ap = analyzed->priv; /* where the operators ran (gpu / hybrid) */
                if (ap->on_device && r->pipes[p].n_op_nodes > 0)
                    fprintf(out, "     ran on: device %lld morsels (of %lld rows), cpu %lld morsels; host->device %.2f MB, "
                                 "device->host %.2f MB; %lld device morsels chained (one job each)\n",
                            ap->dev[p].dev_morsels, (long long)ap->dev_morsel, ap->dev[p].cpu_morsels,
                            ap->dev[p].h2d / 1e6, ap->dev[p].d2h / 1e6, ap->dev[p].chained);
            }
        }
        if (analyzed)
            fprintf(out, "result: %lld rows in %.4f s on %s", (long long)analyzed->rows, analyzed->seconds,
                    fb_placement_name(analyzed->placement));
        if (analyzed && have_pred)
            fprintf(out, ", predicted %.4f s: measured/predicted %.2f", pred_total[ran],
                    pred_total[ran] > 0 ? analyzed->seconds / pred_total[ran] : NAN);
        if (analyzed)
            fprintf(out, "\n");
        if (analyzed && analyzed->priv && ((result_priv *)analyzed->priv)->note[0])
            fprintf(out, "%s\n", ((result_priv *)analyzed->priv)->note);
    }
    run_free(r);
    if (st != FB_OK)
        return st;
    return ferror(out) ? FB_ERROR(ctx, FB_ERR_IO, "writing the explanation failed") : FB_OK;
}
