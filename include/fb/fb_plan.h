/* fb_plan.h - query plans over in-memory tables: a C builder for scan, filter, project, hash join,
 * aggregate, sort / top-N and limit; the runtime splits a plan into pipelines at the breakers (hash
 * build, aggregation, sort) and runs them on its workers; explain prints the plan and its pipelines.
 *
 * A plan is a tree of nodes. Every node has an output schema: a list of typed columns, referred to by
 * position (0..). Nodes are added bottom-up; each builder function returns the new node's id.
 * \code
 *   fb_plan_create(ctx, &p);
 *   fb_plan_scan(p, &lineorder, cols, 4, &lo);                   lo: (orderdate, quantity, price, discount)
 *   fb_plan_filter(p, lo, preds, 2, &f);                         discount BETWEEN 1 AND 3 AND quantity < 25
 *   fb_plan_scan(p, &date, dcols, 2, &d);  fb_plan_filter(p, d, &year_1993, 1, &df);
 *   fb_plan_join(p, f, df, &pk, &bk, 1, FB_JOIN_SEMI, NULL, 0, &j);   lineorder rows with a 1993 date
 *   fb_plan_project(p, j, FB_PLAN_MUL, 2, 3, 0, &rev);           appends price * discount (int64)
 *   fb_plan_aggregate(p, rev, NULL, 0, &sum_of_col_4, 1, &a);
 *   fb_plan_run(p, a, FB_PLACEMENT_CPU, &result);
 * \endcode
 *
 * Placement: FB_PLACEMENT_CPU runs every pipeline on the CPU workers. FB_PLACEMENT_AUTO chooses per
 * plan and says what it chose in explain; GPU and hybrid placement come with the OpenCL operators
 * (issue 8) and return FB_ERR_NO_DEVICE with a message saying so until then.
 *
 * Semantics are SQL's: a filter keeps rows whose every predicate is true (a null value is never
 * selected); join keys that are null never match; aggregates follow fb_agg.h (nulls skipped, null keys
 * form one group); sort follows fb_sort.h (stable; SQL float order).
 */
#ifndef FB_PLAN_H
#define FB_PLAN_H

#include "fb_agg.h"
#include "fb_join.h"
#include "fb_runtime.h"
#include "fb_sort.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct fb_plan;
/** Opaque plan; see fb_plan_create(). */
typedef struct fb_plan fb_plan;

/** Id of a plan node (0..), valid in its plan. */
typedef int32_t fb_plan_node;

/** Most columns a node's output has. */
#define FB_PLAN_MAX_COLUMNS 64
/** Most predicates of one filter node. */
#define FB_PLAN_MAX_PREDS 16

/** \brief Where a plan runs. Values are pinned. */
typedef enum fb_placement {
    FB_PLACEMENT_CPU = 0,    /**< the CPU workers */
    FB_PLACEMENT_GPU = 1,    /**< an OpenCL device (not available yet) */
    FB_PLACEMENT_HYBRID = 2, /**< CPU workers and an OpenCL device on the same pipelines (not available yet) */
    FB_PLACEMENT_AUTO = 3    /**< fb chooses; explain says what and why */
} fb_placement;

/** \brief Name of a placement ("cpu", "gpu", "hybrid", "auto"); "invalid" for other values. */
FB_API const char *fb_placement_name(fb_placement placement);

/** \brief Kinds of filter predicates. Values are pinned. */
typedef enum fb_plan_pred_kind {
    FB_PLAN_PRED_CMP = 0,     /**< column op value */
    FB_PLAN_PRED_BETWEEN = 1, /**< lo <= column <= hi */
    FB_PLAN_PRED_IN = 2       /**< column IN (values) */
} fb_plan_pred_kind;

/** \brief One predicate over an integer (int8..int64, uint8..uint64, date32 or dictionary-code) or
 * float column. Constants are given as int64 (integer columns) or double (float columns) and must be
 * representable in the column's type (else FB_ERR_OUT_OF_RANGE when the filter is added). */
typedef struct fb_plan_pred {
    fb_plan_pred_kind kind; /**< the predicate */
    size_t column;          /**< input column */
    fb_cmp op;              /**< for FB_PLAN_PRED_CMP */
    int64_t value;          /**< FB_PLAN_PRED_CMP on an integer column: the constant */
    int64_t lo;             /**< FB_PLAN_PRED_BETWEEN on an integer column: the lower bound */
    int64_t hi;             /**< FB_PLAN_PRED_BETWEEN on an integer column: the upper bound */
    double fvalue;          /**< FB_PLAN_PRED_CMP on a float column: the constant */
    double flo;             /**< FB_PLAN_PRED_BETWEEN on a float column: the lower bound */
    double fhi;             /**< FB_PLAN_PRED_BETWEEN on a float column: the upper bound */
    const int64_t *in_values; /**< FB_PLAN_PRED_IN on an integer column: n_in values (copied) */
    size_t n_in;            /**< 1..FB_SELECT_IN_MAX */
} fb_plan_pred;

/** \brief Arithmetic of fb_plan_project(). Values are pinned. */
typedef enum fb_plan_arith {
    FB_PLAN_ADD = 0, /**< left + right */
    FB_PLAN_SUB = 1, /**< left - right */
    FB_PLAN_MUL = 2  /**< left * right */
} fb_plan_arith;

/** \brief One aggregate of fb_plan_aggregate(): the function and its input column. */
typedef struct fb_plan_agg {
    fb_agg_kind kind; /**< the function */
    size_t column;    /**< input column (ignored for count(*)) */
} fb_plan_agg;

/** \brief One sort key of fb_plan_sort(). */
typedef struct fb_plan_sort_key {
    size_t column;   /**< input column */
    int descending;  /**< 0 ascending, else descending */
    int nulls_first; /**< 0 nulls last, else first */
} fb_plan_sort_key;

/** \brief Creates an empty plan on a context (which must outlive it). \return FB_OK,
 * FB_ERR_INVALID_ARG, FB_ERR_OUT_OF_MEMORY. */
FB_API fb_status fb_plan_create(fb_ctx *ctx, fb_plan **out);

/** \brief Frees a plan (results of fb_plan_run() stay valid). \param plan may be NULL. */
FB_API void fb_plan_destroy(fb_plan *plan);

/** \brief Scans columns of an in-memory table (projection: only `columns` are read).
 * \param table its views are copied; the buffers must stay valid and unchanged while the plan runs.
 * \param columns n indices into table->columns (1..FB_PLAN_MAX_COLUMNS), or NULL with n 0 for all.
 * \param name the table's name for explain (copied), may be NULL.
 * \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_LENGTH_MISMATCH, FB_ERR_UNSUPPORTED_TYPE,
 *         FB_ERR_OUT_OF_MEMORY. */
FB_API fb_status fb_plan_scan(fb_plan *plan, const fb_table *table, const char *name, const size_t *columns,
                              size_t n, fb_plan_node *out);

/** \brief Keeps the rows for which every predicate holds (AND). Output schema = input schema.
 * \return FB_OK, FB_ERR_INVALID_ARG (bad node or column, too many predicates, unknown kind or op),
 *         FB_ERR_UNSUPPORTED_TYPE, FB_ERR_OUT_OF_RANGE (a constant outside the column's type). */
FB_API fb_status fb_plan_filter(fb_plan *plan, fb_plan_node input, const fb_plan_pred *preds, size_t n,
                                fb_plan_node *out);

/** \brief Appends a computed int64 column `left op right` (right a column, or the constant
 * `right_value` when right_is_const). Inputs are integer columns (int8..int64, uint8..uint32, date32);
 * a result outside int64 fails the run with FB_ERR_OVERFLOW; a null input gives a null.
 * \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_UNSUPPORTED_TYPE. */
FB_API fb_status fb_plan_project(fb_plan *plan, fb_plan_node input, fb_plan_arith op, size_t left, size_t right,
                                 int right_is_const, int64_t right_value, fb_plan_node *out);

/** \brief Hash join: `probe` streams through, `build` is built into a hash table first (the build
 * side is a pipeline breaker). Keys are n_keys column pairs of equal types (int32, int64, date32,
 * uint32, uint64 — as fb_hash_table_create()).
 * Output schema: FB_JOIN_INNER and FB_JOIN_LEFT: the probe columns, then the build columns listed in
 * `payload` (nulls for unmatched rows of a left join); FB_JOIN_SEMI and FB_JOIN_ANTI: the probe
 * columns. Several joins in a row on one probe side run in one probe pipeline (star schema).
 * \return FB_OK, FB_ERR_INVALID_ARG (bad nodes or columns, n_keys out of 1..FB_JOIN_MAX_KEYS, mark
 *         joins), FB_ERR_UNSUPPORTED_TYPE (key types that differ or are not supported). */
FB_API fb_status fb_plan_join(fb_plan *plan, fb_plan_node probe, fb_plan_node build, const size_t *probe_keys,
                              const size_t *build_keys, size_t n_keys, fb_join_type type, const size_t *payload,
                              size_t n_payload, fb_plan_node *out);

/** \brief Grouped (n_keys 1..FB_AGG_MAX_KEYS) or ungrouped (n_keys 0) aggregation. Output schema:
 * the keys, then one column per aggregate typed as fb_agg_result_type() says.
 * \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_UNSUPPORTED_TYPE. */
FB_API fb_status fb_plan_aggregate(fb_plan *plan, fb_plan_node input, const size_t *keys, size_t n_keys,
                                   const fb_plan_agg *aggs, size_t n_aggs, fb_plan_node *out);

/** \brief Sorts by n_keys keys (stable); `limit` ≥ 0 keeps only the first `limit` rows (top-N, found
 * without sorting everything), -1 keeps all. Output schema = input schema.
 * \return FB_OK, FB_ERR_INVALID_ARG. */
FB_API fb_status fb_plan_sort(fb_plan *plan, fb_plan_node input, const fb_plan_sort_key *keys, size_t n_keys,
                              int64_t limit, fb_plan_node *out);

/** \brief Keeps the first `n` rows (in the order of a sort below it; any rows otherwise) and stops
 * reading the input once it has them. \return FB_OK, FB_ERR_INVALID_ARG. */
FB_API fb_status fb_plan_limit(fb_plan *plan, fb_plan_node input, int64_t n, fb_plan_node *out);

/** \brief Output schema of a node. \param[out] types at least FB_PLAN_MAX_COLUMNS entries.
 * \return the number of columns, or -1 for a bad node. */
FB_API int fb_plan_schema(const fb_plan *plan, fb_plan_node node, fb_type *types);

/** \brief The result of a run: owned columns. */
typedef struct fb_plan_result {
    fb_table table;     /**< the columns (rows = their length), names as "c0".. or the scan's */
    int64_t rows;       /**< rows of the result */
    double seconds;     /**< wall time of the run */
    int pipelines;      /**< pipelines the plan was split into */
    fb_placement placement; /**< where it ran */
    void *priv;         /**< private */
} fb_plan_result;

/** \brief Runs the plan rooted at `root` (once or many times; each run is independent).
 * \param[out] out the result; free with fb_plan_result_free().
 * \return FB_OK or the status of the failing stage (message in fb_last_error(ctx)); FB_ERR_INVALID_ARG
 *         for a bad root; FB_ERR_NO_DEVICE for a placement that is not available. */
FB_API fb_status fb_plan_run(fb_plan *plan, fb_plan_node root, fb_placement placement, fb_plan_result **out);

/** \brief Frees a result. \param r may be NULL. */
FB_API void fb_plan_result_free(fb_plan_result *r);

/** \brief Writes the plan tree under `root`, its pipelines and the placement (and, with `analyzed`
 * from a run of the same plan and root, the measured rows, morsels and time per pipeline) as text.
 * \param analyzed NULL for plain explain.
 * \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_IO (writing failed). */
FB_API fb_status fb_plan_explain(const fb_plan *plan, fb_plan_node root, fb_placement placement,
                                 const fb_plan_result *analyzed, FILE *out);

#ifdef __cplusplus
}
#endif
#endif /* FB_PLAN_H */
