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
 * Placement: FB_PLACEMENT_CPU runs every pipeline on the CPU workers. FB_PLACEMENT_GPU runs the streaming
 * operators of every pipeline (filter, projection, join probe) on the context's OpenCL device
 * (fb_options_set_cl_device(), FB_CL_DEVICE) through the fb_cl.h twins, over large morsels (the device
 * memory budget / 256 bytes a row, 4 Ki..4 Mi rows; FB_PLAN_DEVICE_MORSEL=rows overrides), while the
 * sinks (hash build, aggregation, sort, result) combine the device's output on the host.
 * FB_PLACEMENT_HYBRID does the same on one worker (worker 0, the device's driver) while the other workers
 * take normal morsels of the same pipelines from the same source and run them on the CPU; the sinks combine
 * both. The device's first morsel of a pipeline is a CPU-sized one; later ones are sized from the speeds
 * measured so far (the device's share of the rows left, halved, up to the large morsel), so that a slow
 * device takes little and a fast one much. A join's build side is copied to the device once per run (a
 * device hash table probed by every morsel; a composite key's tuples with it; inner / left joins' payload
 * columns too). A device morsel runs its pipeline's operators as one chain in device memory: the source
 * columns the operators read go up once (only the live rows once under half are left), filters, join
 * probes and projections work on device buffers, and only the result's row numbers and the columns made
 * on the device come back (FB_PLAN_NO_CHAIN=1: one device call per operator instead). explain analyze
 * prints per pipeline the morsels each device ran (and how many ran chained) and the bytes moved
 * host->device and device->host. FB_PLACEMENT_AUTO chooses per plan the runnable placement with the smallest
 * predicted time (fb_plan_predict(); a placement without a prediction is no candidate, and gpu / hybrid
 * only when the device opens), and explain says what it chose and why. Results are the CPU placement's:
 * integers bitwise, float sums up to reassociation, rows in the same order where the plan orders them.
 *
 * Device failures: under hybrid and auto, an OpenCL failure (FB_ERR_OPENCL, FB_ERR_DEVICE_MEMORY,
 * FB_ERR_NO_DEVICE, FB_ERR_CL_BUILD) moves the work to the CPU: the failed operator call (or the failed
 * chain's morsel) is redone by the CPU kernels on the same input (no row lost or duplicated), the rest of
 * the run stays on the CPU, the result says so (fb_plan_result_note(): "gpu failed (<status>: <message>);
 * ran on cpu", also in explain analyze) and one line goes to stderr unless FB_QUIET is set (to anything
 * but "0"). Under gpu it is the run's error: that status with the OpenCL call and code in fb_last_error(),
 * everything freed.
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
    FB_PLACEMENT_GPU = 1,    /**< the operators on an OpenCL device, the sinks on the host */
    FB_PLACEMENT_HYBRID = 2, /**< CPU workers and an OpenCL device on the same pipelines at once */
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
    fb_placement placement; /**< where it ran: cpu, gpu or hybrid (auto's choice); after a device failure
                                 the work went to the CPU, as fb_plan_result_note() says */
    void *priv;         /**< private */
} fb_plan_result;

/** \brief Runs the plan rooted at `root` (once or many times; each run is independent).
 * Intermediates and results take their memory from the context's allocator, within its memory limit.
 * \param[out] out the result; free with fb_plan_result_free() before the context is destroyed.
 * \param placement see the top of this file (device failures under gpu / hybrid / auto included).
 * \return FB_OK or the status of the failing stage (message in fb_last_error(ctx)); FB_ERR_INVALID_ARG
 *         for a bad root or placement; under gpu, FB_ERR_NO_DEVICE without an OpenCL device and
 *         FB_ERR_OPENCL / FB_ERR_DEVICE_MEMORY / FB_ERR_CL_BUILD when the device fails. */
FB_API fb_status fb_plan_run(fb_plan *plan, fb_plan_node root, fb_placement placement, fb_plan_result **out);

/** \brief What happened to the device during the run: "gpu failed (<status>: <message>); ran on cpu" after
 * a fallback (hybrid, auto), else "". \param r may be NULL (""). The string lives as long as the result. */
FB_API const char *fb_plan_result_note(const fb_plan_result *r);

/** \brief Frees a result. Its columns come from the context's allocator (and count against its memory
 * limit while the result lives): free results before destroying the context. \param r may be NULL. */
FB_API void fb_plan_result_free(fb_plan_result *r);

/** \brief Writes the plan tree under `root`, its pipelines, the placement and the predicted time of every
 * pipeline per placement with rates (and, with `analyzed` from a run of the same plan and root, the
 * measured rows, morsels and time per pipeline next to the prediction, with their ratio) as text. Without
 * a calibration it says so (run fbench calibrate) and still succeeds.
 * \param analyzed NULL for plain explain.
 * \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_IO (writing failed). */
FB_API fb_status fb_plan_explain(const fb_plan *plan, fb_plan_node root, fb_placement placement,
                                 const fb_plan_result *analyzed, FILE *out);


/* ---- the cost model ------------------------------------------------------------------------------- */

/** \brief Rates of the cost model for one device: seconds, with all of the context's workers, for the
 * fixed cost of a pipeline and per row of each kind of stage. Measured by fb_plan_calibrate(). A
 * pipeline is predicted as pipeline_s (+ start_s when it depends on no other) + source rows x scan_row_s
 * + the sum over its operators of their input rows x their rate (filter: x predicates; a projection:
 * the rows of its chunk, as the expression kernels compute densely, x (1 + inputs widened to int64))
 * + the rows into its sink x the sink's rate (sort: scaled by log n / log of the rows it was measured
 * with). */
typedef struct fb_plan_rates {
    double pipeline_s;       /**< fixed cost of a pipeline (set-up, scheduling, finalize) */
    double start_s;          /**< fixed cost of starting a run (waking the workers), added to the
                                  pipelines that start with the run (those that depend on none) */
    double scan_row_s;       /**< per row a source produces (base table or intermediate) */
    double filter_row_s;     /**< per predicate per input row of a filter */
    double project_row_s;    /**< per input row of a projection */
    double probe_row_s;      /**< per probe row of a join whose build side is a perfect hash (dense unique keys),
                                  a row that finds no match */
    double probe_match_row_s; /**< what a probe row that matches adds to probe_row_s (its output) */
    double hash_probe_row_s; /**< per probe row of a join over a hash table */
    double build_row_s;      /**< per build row of a join (materialize and build) */
    double agg_row_s;        /**< per input row of a grouped aggregation */
    double collect_row_s;    /**< per row materialized by the result sink */
    double sort_row_s;       /**< per input row of a sort (or top-N) sink */
    double probe_mix_row_s;  /**< what a perfect-hash probe row adds where the rows' matches are a mix (match
                                  fraction f): x mix(f) = (1 - f^W - (1 - f)^W) / (1 - 2^(1-W)), 1 at f = 1/2,
                                  with W = 2 for the CPU (4 f (1 - f): mispredicted branches) and 16 for a
                                  device (work-items of a vector that diverge); measured at f = 1/4. 0:
                                  unknown (files written before it; a device then uses opencl.probe_mix_row_s) */
    double probe_big_row_s;  /**< probe_row_s of a perfect hash over a key range of 2^18 (a 1 MiB array;
                                  probe_row_s is measured at fb_plan_calibration.rows / 8 within 128..131072):
                                  between the two the rate is log-linear in the build side's key range, and
                                  beyond them it stays at the nearer one. 0: unknown (no range term; devices,
                                  whose join tables are hash tables, always) */
} fb_plan_rates;

/** \brief A machine's calibration, as fb_plan_calibrate() and fb_plan_calibrate_device() measure it and
 * fb_plan_calibration_save() writes it. The file is JSON:
 * \code
 *   {"fb_calibration": 1, "fb_version": "0.1.0", "cpu_name": "AMD EPYC ...", "workers": 2, "rows": 4194304,
 *    "cpu": {"pipeline_s": 4.2e-05, "start_s": 2.1e-04, "scan_row_s": 1.2e-10, ... every fb_plan_rates field ...},
 *    "opencl": {"has_opencl": 1, "device": "NVIDIA H100", "h2d_gbps": 24.1, "d2h_gbps": 25.3,
 *               "launch_s": 1.2e-05, "table_row_s": 2.1e-09,
 *               "table_rows": 65536, "small_table_ratio": 0.4,
 *               "probe_mix_row_s": 3e-08, "from_plans": 1, "shares_cores": 0, "rows": 4194304,
 *               "job_s": 2e-04, "table_s": 3e-04, "small_table_rows": 256,
 *               "rates": { ... the same fields ... }}}
 * \endcode
 * Every rate is a finite number >= 0 (seconds); fields not listed are ignored. The rates
 * probe_mix_row_s and probe_big_row_s, and in "opencl" h2d_gbps, d2h_gbps,
 * launch_s, table_row_s, table_rows, small_table_ratio, probe_mix_row_s, from_plans, shares_cores, rows,
 * job_s, table_s and small_table_rows
 * may be absent (files written before they existed): they load as 0 (a bandwidth of 0: copies are not
 * charged). The "opencl" section may be absent: no OpenCL rates. */
typedef struct fb_plan_calibration {
    fb_plan_rates cpu;   /**< the CPU workers' rates */
    int workers;         /**< workers the CPU rates were measured with */
    char cpu_name[128];  /**< the CPU's model name */
    int64_t rows;        /**< rows of the synthetic tables measured */
    struct {
        int has_opencl;      /**< 1 when `rates` hold measured OpenCL rates (fb_plan_calibrate_device()) */
        char device[128];    /**< the OpenCL device's name */
        fb_plan_rates rates; /**< its rates: the operators' per row of the device's work, without the copies
                                  (h2d_gbps / d2h_gbps below) and calls (launch_s); the host's parts (fixed
                                  costs, scan, sinks) the CPU's */
        double h2d_gbps;     /**< host->device copy bandwidth, 10^9 bytes per second (0: unknown) */
        double d2h_gbps;     /**< device->host copy bandwidth, 10^9 bytes per second (0: unknown) */
        double launch_s;     /**< latency of one device call (a 1-row kernel with its tiny copies) */
        int from_plans;      /**< 1: rates measured by running the calibration plans with gpu placement;
                                  0: by timing the fb_cl_* twins the gpu placement calls */
        double table_row_s;  /**< per build row of a device join table (made once for a one-key join, on
                                  every probe call for a composite key) */
        double table_rows;   /**< build rows of the table the device's probe rates were measured with */
        double small_table_ratio; /**< a probe row's cost against a table of small_table_rows rows over its cost
                                       against table_rows (0..1; 0: unknown): the probe rates scale from this at
                                       small_table_rows build rows to 1 at table_rows (log-linear in the build
                                       rows, not beyond table_rows; below small_table_rows the same line, down
                                       to half the ratio); with from_plans measured by the plans (a probe with
                                       few matches, as probe_row_s, of a 256-row table), else by the twins */
        double small_table_rows; /**< the rows of that small table (0: 2048, files written before it) */
        double probe_mix_row_s; /**< what a probe row of a dense-key join adds where its matches are a mix
                                     (x 4 f (1 - f) at a match fraction f: most at half), beyond the straight
                                     line between none and all (device work-items that diverge) */
        double job_s;        /**< fixed cost of a pipeline whose operators run on the device (its chain's job
                                  set-up), measured with a plan of a 1-row filter; 0: unknown */
        double table_s;      /**< fixed cost of making a build side's device table in a run, measured with a
                                  plan of a 1-row join; 0: unknown */
        int64_t rows;        /**< rows of the synthetic columns the device was measured with (its morsel
                                  rows by default; 0: unknown, files written before it) */
        int shares_cores;    /**< 1 when the device is the host's CPU (an OpenCL CPU device such as PoCL's):
                                  under hybrid it and the workers share the cores, so their throughputs
                                  do not add (each is predicted at half speed) */
    } opencl;            /**< the OpenCL device (GPU / hybrid placement) */
} fb_plan_calibration;

/** \brief Measures the CPU rates on this machine: small plans over synthetic tables of `rows` rows
 * (1024..2^26) run through fb_plan_run() with the context's workers, best of 5 each (9 up to 2^19 rows,
 * 11 up to 2^16: small timings are the more disturbed by a busy machine), the experiments interleaved;
 * every rate is the difference against a base plan (filter = scan->filter->count minus scan->count;
 * probe_row_s and probe_match_row_s = the line through a probe where every row matches and one where 1/1024
 * do, at 0 and 1; probe_mix_row_s = a probe where 1/4 match, at random, beyond that line; probe_big_row_s =
 * the few-match probe of a perfect hash over 2^18 keys), never below 1e-12.
 * opencl.has_opencl is 0. \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_OUT_OF_MEMORY or a run's status. */
FB_API fb_status fb_plan_calibrate(fb_ctx *ctx, int64_t rows, fb_plan_calibration *out);

/** \brief Measures the context's OpenCL device into cal->opencl (the rest of `cal` is kept; call it after
 * fb_plan_calibrate(), whose CPU rates it reads for the work the gpu placement leaves on the host):
 * the device's name, host<->device bandwidth (fb_cl_measure_transfer() with pinned memory), the launch
 * latency (best time of a 1-row fb_cl_expr_cmp()) and the fb_plan_rates per row of each kind of stage.
 * When fb_plan_run() can run FB_PLACEMENT_GPU, the rates come from the same calibration plans as the
 * CPU's, run with gpu placement, each the difference of two plans minus the copies and launches the
 * model (fb_plan_predict()) charges for them (opencl.from_plans 1); else from the fb_cl_* twins the gpu
 * placement calls, on synthetic columns of `rows` rows, best of 5 or more, as fb_plan_calibrate(), minus
 * their copies and launch: filter = fb_cl_select_cmp, project = fb_cl_expr_arith_const, probes =
 * fb_cl_join_probe (dense unique keys for probe_row_s / probe_match_row_s, int64 keys for
 * hash_probe_row_s, each less the same call with a 1-row probe side). Either way the host's rates (the
 * fixed costs, scan, and the sinks: build, aggregation, sort, collect) are the CPU's: under gpu placement
 * the sources, sinks and scheduling run on the CPU workers as under cpu, and only the operators (filter,
 * projection, join probes) run on the device. Always from the twins: opencl.table_row_s (the device's
 * table, built by every probe call: fb_cl_join_probe of a dimension-sized build side, rows / 16 in
 * 64..65536, and one probe row), small_table_ratio (the same probes against 2048 rows) and probe_mix_row_s
 * (a probe where half the rows match against the mean of none and all). Every rate is at least 1e-12.
 * Sets opencl.has_opencl and shares_cores (an OpenCL CPU device) on success.
 * \param rows 1024..2^26, or 0: the rows of the device morsels gpu and hybrid plans run on this context
 *        (FB_PLAN_DEVICE_MORSEL, else the device memory budget / 256, 4 Ki..4 Mi), as a device's cost per
 *        row moves with the size of its calls (PoCL: 2^16..2^20 rows take seconds, 2^22 about 15 s).
 * \return FB_OK; FB_ERR_NO_DEVICE (no device, or the context was made with FB_CL_DEVICE_NONE; `cal` is
 *         then unchanged); FB_ERR_INVALID_ARG; FB_ERR_OUT_OF_MEMORY; a twin's or a run's status. */
FB_API fb_status fb_plan_calibrate_device(fb_ctx *ctx, int64_t rows, fb_plan_calibration *cal);

/** \brief The default calibration file: $FB_CALIBRATION if set, else $XDG_CONFIG_HOME/fb/calibration.json,
 * else $HOME/.config/fb/calibration.json. \return FB_OK, FB_ERR_INVALID_ARG (NULL or too small buffer, no
 * HOME). */
FB_API fb_status fb_plan_calibration_path(fb_ctx *ctx, char *buf, size_t size);

/** \brief Writes a calibration as JSON (format: fb_plan_calibration) to `path` (NULL: the default path,
 * its directories created). \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_IO. */
FB_API fb_status fb_plan_calibration_save(fb_ctx *ctx, const fb_plan_calibration *cal, const char *path);

/** \brief Reads a calibration file (NULL: the default path).
 * \return FB_OK; FB_ERR_IO when the file cannot be read, is not a calibration, or a rate is missing or
 * not a finite number >= 0 (the message names the file and the field; run fbench calibrate);
 * FB_ERR_INVALID_ARG. */
FB_API fb_status fb_plan_calibration_load(fb_ctx *ctx, const char *path, fb_plan_calibration *out);

/** \brief Uses `cal` (copied) for this plan's predictions; NULL forgets it (the default file is then read
 * when first needed). \return FB_OK, FB_ERR_INVALID_ARG. */
FB_API fb_status fb_plan_set_calibration(fb_plan *plan, const fb_plan_calibration *cal);

/** \brief Predicts the time of every pipeline of the plan under `root` (in the order explain lists them)
 * from estimated rows and the calibration: scans exact; a filter over a scan by evaluating its predicates on
 * a sample of the table, elsewhere 1/2 per predicate; joins under the foreign-key assumption (matches =
 * build rows / rows of the build side's base table; anti 1 - that; left all); aggregations min(input,
 * 4096) groups (1 ungrouped); sort and limit as their input, capped by the limit.
 *
 * Per placement, a pipeline of S source rows is predicted as:
 * - FB_PLACEMENT_CPU: with the CPU rates, as fb_plan_rates says; a perfect-hash probe costs per row
 *   probe_row_s (log-linear in its key range up to probe_big_row_s at 2^18 keys) + f probe_match_row_s +
 *   mix(f) probe_mix_row_s at a match fraction f.
 * - FB_PLACEMENT_GPU: with the OpenCL rates the same way (a projection per selected row; a dense-key probe
 *   adds mix(f) x rates.probe_mix_row_s, else opencl.probe_mix_row_s, per row (W = 16), with no range
 *   term, and its rates scale with the build side's size as small_table_ratio says), plus what the
 *   device work costs as the gpu placement's device chains do it, per device morsel (FB_PLAN_DEVICE_MORSEL
 *   rows, else from the device memory budget, 4 Ki..4 Mi): one job whose kernels (one per predicate, per
 *   projection and per input it widens, per join probe, one more for an inner / left join's gathers) cost
 *   opencl.launch_s each; a source column copied in once, when an operator first reads it (its live rows
 *   only once under half the morsel's rows are live, with the row map back), at opencl.h2d_gbps; the row
 *   map and the columns made on the device (payload, projections) of the result rows back at d2h_gbps; plus
 *   opencl.job_s per pipeline with operators. A join's device table (its keys, and its payload columns) is
 *   made once, charged to its build pipeline: opencl.table_s + launch_s + table_row_s per build row + the
 *   copies.
 * - FB_PLACEMENT_HYBRID: a pipeline without operators as cpu; else max of the two fixed costs + the per-row
 *   parts at the sum of both throughputs: worker 0 drives the device at the gpu's per-row cost, the other
 *   workers run at the cpu's per-row cost x workers / (workers - 1), and the placement sizes the device's
 *   morsels so that both finish together; with opencl.shares_cores the device has the driver's core only
 *   (the gpu's per-row cost x workers); and with S >= 8 x 64 Ki, at least the device's first morsel
 *   (a CPU-sized one: 64 Ki rows, at most the device morsel), which is not split. Plus the device
 *   join tables as under gpu.
 * - FB_PLACEMENT_AUTO: the placement of smallest total among those that can run (gpu and hybrid only with
 *   an OpenCL device and OpenCL rates in the calibration); fb_plan_predict_choice() says which.
 *
 * `total` is the sum of the pipelines' times. The pipelines that start with the run (those that depend on no
 * other: a star schema's builds) run at once, the workers taking their morsels in turn: explain analyze
 * compares the wall time measured for each with the start plus, under processor sharing, the sum over
 * them of min(its own time, the other's) over the workers, at least its own time, each without the start;
 * under gpu / hybrid at least its device work (calls, copies, its join's table) and half the others'
 * (the one device takes them in turn).
 * \param[out] seconds capacity entries, may be NULL with capacity 0; \param[out] n pipelines (may be more
 * than capacity: then only capacity are written); \param[out] total their sum (may be NULL).
 * \return FB_OK; FB_ERR_IO without any calibration (set none and no readable default file: run fbench
 * calibrate); FB_ERR_NO_DEVICE for gpu / hybrid when the calibration has no OpenCL rates or the context has
 * no OpenCL device (the message says which); FB_ERR_INVALID_ARG. */
FB_API fb_status fb_plan_predict(fb_plan *plan, fb_plan_node root, fb_placement placement, double *seconds,
                                 size_t capacity, size_t *n, double *total);

/** \brief What FB_PLACEMENT_AUTO picks for the plan under `root`: the placement with the smallest
 * predicted total among cpu and (with an OpenCL device and OpenCL rates) gpu and hybrid.
 * \param[out] chosen FB_PLACEMENT_CPU, _GPU or _HYBRID. \param[out] totals may be NULL, else 3 entries:
 * the predicted totals of cpu, gpu and hybrid (NAN for one that cannot run).
 * \return as fb_plan_predict() with FB_PLACEMENT_CPU. */
FB_API fb_status fb_plan_predict_choice(fb_plan *plan, fb_plan_node root, fb_placement *chosen, double *totals);

#ifdef __cplusplus
}
#endif
#endif /* FB_PLAN_H */
