/* fb_runtime.h - the morsel-driven runtime: pipelines of sources, operators and sinks run by one
 * worker thread per core, with NUMA-local morsel queues, work stealing, a DAG of pipelines,
 * cancellation, per-pipeline and per-worker statistics, and memory bound to NUMA nodes.
 *
 * \defgroup fb_runtime Runtime
 *
 * Lifecycle of a query:
 * \code
 * fb_query_create(ctx, &q)                       one query = a DAG of pipelines
 *   fb_query_add_pipeline(q, name, &source, ops, n_ops, &sink, &p)   (any number)
 *   fb_pipeline_depends_on(probe, build)          probe starts after build has finalized
 * fb_query_run(q)                                 blocking; once per query
 *   fb_query_cancel(q)                            from any other thread while it runs
 * fb_query_stats(q, pipeline, worker, &stats)     after the run, also after a failed one
 * fb_query_destroy(q)                             frees everything, calls the stages' destroy hooks
 * \endcode
 *
 * Model (DuckDB's pipelines, HyPer's morsels). A pipeline is a source, zero or more operators and a
 * sink. The source hands out morsels (row ranges, each tagged with the NUMA node that holds its
 * memory); the runtime keeps one morsel queue per NUMA node and per pipeline. Each worker thread
 * belongs to one core and therefore to one NUMA node; it takes morsels of its own node first, asks
 * the source for more (telling it its node), and only when neither gives anything steals from other
 * nodes' queues. For each morsel the worker scans it into a chunk of column views, pushes the chunk
 * through the operators and into its local sink state. A task runs a bounded batch of morsels and
 * then returns to the scheduler, which checks cancellation and which pipelines are ready.
 * When a pipeline has no morsels left, every worker that took part combines its local sink state into
 * the global one (once per worker), and the last one finalizes the sink (once). A pipeline starts when
 * every pipeline it depends on has finalized; independent pipelines run at the same time.
 *
 * Stages are vtables of C function pointers plus a `user` pointer, so an engine plugs in its own.
 * Every function pointer not marked "required" may be NULL. Each stage kind has three levels of
 * state: `user` (the stage's own, owned by the query once added: `destroy` frees it), a global
 * state per run (`init_global`/`destroy_global`) and a local state per worker
 * (`init_local`/`destroy_local`); a NULL init function gives a NULL state.
 *
 * Errors: a stage reports failure by returning a status other than FB_OK, after recording a message
 * with fb_stage_error() (or through any fb function that failed on the same context and thread).
 * The first error of any worker cancels the whole query: every worker stops at its next morsel
 * boundary, every state is destroyed, and fb_query_run() returns that status with the message
 * (prefixed by the pipeline and worker) in fb_last_error(ctx) on the caller's thread.
 *
 * Threading: the query-building functions and fb_query_run() must not be called on one query from
 * several threads at once; fb_query_cancel() may be called from any thread at any time between
 * fb_query_create() and fb_query_destroy(). Different queries may run at the same time on one
 * context, each with its own workers.
 */
#ifndef FB_RUNTIME_H
#define FB_RUNTIME_H

#include "fb_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

struct fb_query;
/** Opaque query: a DAG of pipelines, run once; see fb_query_create(). */
typedef struct fb_query fb_query;

struct fb_pipeline;
/** Opaque pipeline, owned by its query; valid until fb_query_destroy(). */
typedef struct fb_pipeline fb_pipeline;

/** \brief Default rows per morsel of the built-in table source. */
#define FB_MORSEL_DEFAULT_ROWS 65536

/** \brief The worker a stage function runs on. */
typedef struct fb_worker_info {
    fb_ctx *ctx;   /**< the query's context (for kernel calls and fb_stage_error()) */
    int worker;    /**< 0..workers-1 */
    int workers;   /**< workers of the run (fb_ctx_threads()) */
    int numa_node; /**< the worker's NUMA node (logical index, as fb_topology_core_numa_node()) */
    int core;      /**< the core the worker is assigned to (logical index) */
} fb_worker_info;

/** \brief A unit of work handed out by a source: a row range plus the source's own data. */
typedef struct fb_morsel {
    int64_t begin;  /**< first row, in the source's numbering */
    int64_t end;    /**< one past the last row; end ≥ begin */
    int numa_node;  /**< NUMA node that holds the morsel's memory, or -1 when unknown (it is then queued
                         on the node of the worker that fetched it) */
    void *data;     /**< the source's own (e.g. an engine's batch); the runtime never reads it */
} fb_morsel;

/** \brief What flows from the source through the operators into the sink: column views of a morsel
 * and which of their rows are live. */
typedef struct fb_chunk {
    int64_t row_begin;        /**< source row number of row 0 of the columns (the morsel's begin) */
    int64_t rows;             /**< rows in each column view, ≥ 0 and ≤ FB_MORSEL_MAX_ROWS */
    size_t n_columns;         /**< number of columns */
    const fb_column *columns; /**< n_columns views of `rows` rows each; NULL only when n_columns is 0 */
    const uint32_t *sel;      /**< live rows (ascending indices < rows), or NULL when all rows are live */
    int64_t n_sel;            /**< number of live rows: entries of sel, or `rows` when sel is NULL */
} fb_chunk;

/** \brief A source: hands out morsels and scans them into chunks.
 *
 * Calls, in order: init_global (once per run, when the pipeline starts, after its dependencies have
 * finalized); next_morsel (many times, never two at once for one pipeline); per worker init_local
 * once, then scan for each of its morsels (several workers at once, each with its own local state);
 * release_morsel after each morsel has gone through the pipeline (or is dropped by a cancellation);
 * destroy_local, destroy_global at the end of the run; destroy when the query is destroyed. */
typedef struct fb_source {
    const char *name; /**< for statistics and messages; NULL = "source" (copied when added) */
    /** Creates the run's global state. \param ctx the query's context. */
    fb_status (*init_global)(void *user, fb_ctx *ctx, void **global);
    /** Required. Gives the next morsel, preferring one whose memory lies on `w->numa_node`, or sets
     * *done = 1 when there are none left (out is then ignored, and next_morsel is not called again).
     * A source fed by an engine may block here until the engine has data. */
    fb_status (*next_morsel)(void *user, void *global, const fb_worker_info *w, fb_morsel *out, int *done);
    /** Creates a worker's local state (typically scan buffers, allocated on w->numa_node). On failure it
     * frees what it made: destroy_local is not called for a failed init. */
    fb_status (*init_local)(void *user, void *global, const fb_worker_info *w, void **local);
    /** Required. Fills `out` with the chunk of morsel `m`; out->columns must stay valid until the next
     * scan on this local state or the morsel's release, whichever comes first. */
    fb_status (*scan)(void *user, void *global, void *local, const fb_morsel *m, fb_chunk *out);
    /** Gives a morsel back once its chunk has been through the sink, or when it is dropped unscanned
     * (on a worker, or on fb_query_run()'s thread for morsels still queued when a run stops). Every
     * morsel next_morsel handed out is released exactly once, before destroy_global. */
    void (*release_morsel)(void *user, void *global, const fb_morsel *m);
    void (*destroy_local)(void *user, void *global, void *local); /**< frees a local state */
    void (*destroy_global)(void *user, void *global);            /**< frees the global state */
    void (*destroy)(void *user); /**< frees `user`; called once by fb_query_destroy() (or a failed add) */
    void *user;                  /**< passed to every function above */
} fb_source;

/** \brief What an operator's execute says about its input and output. Values are pinned. */
typedef enum fb_op_result {
    FB_OP_NEED_MORE_INPUT = 0,  /**< `out` holds the whole result for `in` (possibly no live rows); the next
                                     call gets the next chunk. The default when execute does not set it. */
    FB_OP_HAVE_MORE_OUTPUT = 1, /**< `out` holds part of the result; execute is called again with the
                                     same `in` (after `out` has gone down the pipeline) for the rest */
    FB_OP_FINISHED = 2          /**< `out` holds the last output this operator wants to produce: the
                                     pipeline takes no more morsels from its source (e.g. a LIMIT is
                                     reached); morsels already taken finish, queued ones are dropped */
} fb_op_result;

/** \brief An operator: transforms a chunk into an output chunk (a filter sets a selection vector,
 * a projection computes columns, a join probe emits matches).
 *
 * Calls: init_global once per run (after the pipeline's dependencies finalized); per worker
 * init_local once; execute for each chunk (several workers at once, each with its own local state);
 * destroy_local, destroy_global at the end of the run; destroy when the query is destroyed. */
typedef struct fb_operator {
    const char *name; /**< for statistics and messages; NULL = "operator" */
    fb_status (*init_global)(void *user, fb_ctx *ctx, void **global); /**< creates the run's global state */
    fb_status (*init_local)(void *user, void *global, const fb_worker_info *w,
                            void **local); /**< creates a worker's local state; on failure it frees what it made (destroy_local is not called for a failed init) */
    /** Required. Reads `in` (valid during the call) and fills `out`, whose columns may point to in's
     * columns (a filter only changes sel) or to buffers in the local state valid until the next
     * execute on it. `*result` is FB_OP_NEED_MORE_INPUT on entry. A chunk without live rows skips the
     * rest of the pipeline. */
    fb_status (*execute)(void *user, void *global, void *local, const fb_chunk *in, fb_chunk *out,
                         fb_op_result *result);
    void (*destroy_local)(void *user, void *global, void *local); /**< frees a local state */
    void (*destroy_global)(void *user, void *global);            /**< frees the global state */
    void (*destroy)(void *user); /**< frees `user`; called once by fb_query_destroy() (or a failed add) */
    void *user;                  /**< passed to every function above */
} fb_operator;

/** \brief A sink: ends a pipeline (hash build, aggregation, sort, result collection).
 *
 * Calls: init_global once per run (after the pipeline's dependencies finalized); per worker
 * init_local once, sink for each chunk with live rows, then combine once when the pipeline has no
 * morsels left; finalize once after every combine; destroy_local right after combine (or at a
 * failure), destroy_global at the end of the run; destroy when the query is destroyed.
 * Pipelines that depend on this one start after finalize and may read the global state (through
 * their own user pointers) until the run ends. */
typedef struct fb_sink {
    const char *name; /**< for statistics and messages; NULL = "sink" */
    fb_status (*init_global)(void *user, fb_ctx *ctx, void **global); /**< creates the run's global state */
    fb_status (*init_local)(void *user, void *global, const fb_worker_info *w,
                            void **local); /**< creates a worker's local state; on failure it frees what it made (destroy_local is not called for a failed init) */
    /** Required. Consumes a chunk into the local state (several workers at once). */
    fb_status (*sink)(void *user, void *global, void *local, const fb_chunk *chunk);
    /** Merges a worker's local state into the global one. The runtime never runs two combines of one
     * pipeline at once, so combine needs no lock of its own. */
    fb_status (*combine)(void *user, void *global, void *local);
    /** Completes the global state once all combines are done, on one worker. */
    fb_status (*finalize)(void *user, void *global);
    void (*destroy_local)(void *user, void *global, void *local); /**< frees a local state */
    void (*destroy_global)(void *user, void *global);            /**< frees the global state */
    void (*destroy)(void *user); /**< frees `user`; called once by fb_query_destroy() (or a failed add) */
    void *user;                  /**< passed to every function above */
} fb_sink;

/** \brief Creates an empty query on a context.
 * \param ctx the context whose workers (fb_ctx_threads()), topology, allocator and memory limit the
 *        query uses; it must outlive the query.
 * \param[out] out the new query.
 * \return FB_OK, FB_ERR_INVALID_ARG (ctx or out NULL) or FB_ERR_OUT_OF_MEMORY. */
FB_API fb_status fb_query_create(fb_ctx *ctx, fb_query **out);

/** \brief Destroys a query: every state left, then the stages' destroy hooks, then the query.
 * \param q may be NULL. \note No other call on q may be running (fb_query_cancel() included). */
FB_API void fb_query_destroy(fb_query *q);

/** \brief Adds a pipeline. The vtables are copied (names too); the query owns the stages' `user`
 * states from this call on, also when it fails: their destroy hooks run exactly once, at
 * fb_query_destroy(), or before this function returns an error.
 * \param q a query that has not run yet.
 * \param name for statistics and messages (copied, truncated to 63 bytes), or NULL for "pipeline N".
 * \param source required; next_morsel and scan must be set.
 * \param ops n_ops operators in pipeline order (execute must be set); NULL when n_ops is 0.
 * \param sink required; sink must be set.
 * \param[out] out the pipeline, or NULL when the caller does not need it.
 * \return FB_OK, FB_ERR_INVALID_ARG (NULL q, source or sink, a missing required function, more than
 *         1024 operators or 65536 pipelines, a query that has run) or FB_ERR_OUT_OF_MEMORY. */
FB_API fb_status fb_query_add_pipeline(fb_query *q, const char *name, const fb_source *source,
                                       const fb_operator *ops, size_t n_ops, const fb_sink *sink,
                                       fb_pipeline **out);

/** \brief Makes `pipeline` start only after `dependency` has finalized (a probe after its build).
 * Adding an edge twice is harmless.
 * \return FB_OK; FB_ERR_INVALID_ARG (NULL, pipelines of different queries, a pipeline depending on
 *         itself, an edge that would close a cycle, a query that has run); FB_ERR_OUT_OF_MEMORY. */
FB_API fb_status fb_pipeline_depends_on(fb_pipeline *pipeline, fb_pipeline *dependency);

/** \brief Index of a pipeline in its query, in the order of fb_query_add_pipeline() (0..).
 * \return the index, or -1 if pipeline is NULL. */
FB_API int fb_pipeline_index(const fb_pipeline *pipeline);

/** \brief Runs the query to completion on fb_ctx_threads(ctx) worker threads, started for this run
 * and joined before it returns. Workers are assigned to cores round-robin over the NUMA nodes (worker
 * 0 on the first core of node 0, worker 1 on the first core of node 1, ...) and pinned to their core
 * with hwloc; on a synthetic topology they are not pinned but keep their NUMA node, so that NUMA
 * placement can be tested on any machine.
 * \return FB_OK when every pipeline has finalized; FB_ERR_CANCELLED after fb_query_cancel(); the first
 *         error of any stage, or FB_ERR_OUT_OF_MEMORY from the runtime's own state; FB_ERR_INVALID_ARG
 *         (q NULL, a query that has run before). The message is in fb_last_error(ctx) on this thread.
 *         On failure every state has been destroyed and the sinks' outputs must not be used.
 * \note A query runs once. Statistics are available afterwards in either case. */
FB_API fb_status fb_query_run(fb_query *q);

/** \brief Asks a query to stop: a running fb_query_run() returns FB_ERR_CANCELLED soon after (workers
 * stop at their next morsel boundary; a stage function that is running is not interrupted). Before
 * the run, makes it return FB_ERR_CANCELLED at once; after it, does nothing.
 * \param q may be NULL (nothing happens). \note Thread-safe; may be called from a stage function. */
FB_API void fb_query_cancel(fb_query *q);

/** \brief Counters of a run. In a pipeline × worker cell, or summed over a row, a column or all. */
typedef struct fb_stats {
    int64_t morsels;        /**< morsels processed */
    int64_t rows;           /**< rows of those morsels, as the source scanned them */
    int64_t rows_out;       /**< live rows that reached the sink */
    int64_t morsels_local;  /**< morsels whose memory is on the worker's NUMA node */
    int64_t morsels_remote; /**< morsels whose memory is on another node (unknown location: neither) */
    int64_t steals;         /**< morsels taken from another NUMA node's queue */
    int64_t busy_ns;        /**< time in stage functions (state set-up, next_morsel, scan, operators, sink,
                                 combine, finalize) */
    int64_t idle_ns;        /**< workers: time waiting for work or backing off before a steal; else 0 */
    int64_t wall_ns;        /**< a pipeline: from its start to the end of its finalize; a worker: its
                                 thread's lifetime; the whole query: fb_query_run()'s; a cell: 0 */
    int numa_node;          /**< a worker (or a cell): its NUMA node; otherwise -1 */
    int core;               /**< a worker (or a cell): its core; otherwise -1 */
    int pinned;             /**< a worker (or a cell): 1 if bound to its core's CPUs; otherwise 0 */
} fb_stats;

/** \brief Number of pipelines in a query. \return 0 if q is NULL. */
FB_API int fb_query_pipelines(const fb_query *q);

/** \brief Number of workers of the query's run (0 before it ran). \return 0 if q is NULL. */
FB_API int fb_query_workers(const fb_query *q);

/** \brief Statistics of a run, also of a failed or cancelled one.
 * \param pipeline 0..fb_query_pipelines()-1, or -1 for all pipelines.
 * \param worker 0..fb_query_workers()-1, or -1 for all workers.
 *        (p, w) gives one cell; (p, -1) pipeline p; (-1, w) worker w; (-1, -1) the whole query.
 * \param[out] out the counters.
 * \return FB_OK, or FB_ERR_INVALID_ARG (NULL, an index out of range, a query that has not run). */
FB_API fb_status fb_query_stats(const fb_query *q, int pipeline, int worker, fb_stats *out);

/** \brief Records the message of a failing stage function on the calling thread, for the runtime to
 * report; the function then returns `status`.
 * \code
 * if (bad) return fb_stage_error(w->ctx, FB_ERR_IO, "cannot read block %d", b);
 * \endcode
 * \param ctx the query's context (as passed to init_global or in fb_worker_info).
 * \param status the error (not FB_OK). \param fmt printf format.
 * \return status. \note Thread-safe. */
FB_API fb_status fb_stage_error(fb_ctx *ctx, fb_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** \name Built-in stages
 * Each constructor fills a vtable whose `user` state the query owns once the vtable is added
 * (fb_query_add_pipeline()). A vtable that is never added must be freed with its destroy hook:
 * `s.destroy(s.user)`.
 * @{ */

/** \brief A source over an in-memory table: morsels of `morsel_rows` consecutive rows, the last one
 * shorter; chunks are views of the table's columns (no copy). Each morsel is tagged with the NUMA node
 * that holds its memory: on a real machine with several nodes, where the first page of its first
 * column lies (unknown, -1, when not yet touched); on a machine with one node, node 0; on a synthetic
 * topology the table is split into as many contiguous parts as there are nodes, part k on node k
 * (with two nodes the first half of the table belongs to node 0). next_morsel hands out morsels of
 * the asking worker's node first, in row order.
 * \param table its column array is copied; the data and validity buffers must stay valid and unchanged
 *        until the run ends. A table without columns gives no morsels.
 * \param morsel_rows 1..FB_MORSEL_MAX_ROWS, or 0 for FB_MORSEL_DEFAULT_ROWS.
 * \param[out] out the source.
 * \return FB_OK; FB_ERR_INVALID_ARG; the status of fb_table_validate(); FB_ERR_OUT_OF_MEMORY. */
FB_API fb_status fb_source_table(fb_ctx *ctx, const fb_table *table, int64_t morsel_rows, fb_source *out);

/** \brief An engine's function that hands over the next batch of data for fb_source_callback().
 * Never called by two threads at once for one pipeline; may block until data is there.
 * \param w the asking worker (a source that knows where its data lies prefers w->numa_node).
 * \param[out] chunk the batch: columns, rows, optional sel (row_begin is set by the runtime to the
 *        batch's first row number, counting from 0 over all batches). Its memory (the column array,
 *        the data and sel) must stay valid until release is called with `*token`.
 * \param[out] numa_node the node holding the batch's memory, or -1 (preset) when unknown.
 * \param[out] token handed to release (preset NULL).
 * \param[out] done set to 1 when there is no more data (chunk is then ignored).
 * \return FB_OK or an error (with fb_stage_error()). */
typedef fb_status (*fb_feed_fn)(void *user, const fb_worker_info *w, fb_chunk *chunk, int *numa_node,
                                void **token, int *done);

/** \brief Gives a batch of fb_feed_fn back once it has gone through the pipeline (or was dropped by a
 * cancellation). Called from worker threads, several at once, and for batches still queued when a
 * run stops, from fb_query_run()'s thread. */
typedef void (*fb_feed_release_fn)(void *user, void *token);

/** \brief A source fed by a caller's callback (engine-fed data).
 * \param next required. \param release may be NULL. \param user passed to both (not owned).
 * \param[out] out the source.
 * \return FB_OK, FB_ERR_INVALID_ARG (ctx, next or out NULL) or FB_ERR_OUT_OF_MEMORY. */
FB_API fb_status fb_source_callback(fb_ctx *ctx, fb_feed_fn next, fb_feed_release_fn release, void *user,
                                    fb_source *out);

/** \brief A filter operator `column op *value` over column `column` of the chunk, with fb_select_cmp()
 * on the worker's thread; the output has the input's columns and the selected rows as sel (nulls are
 * never selected).
 * \param type the column's type (checked for each chunk: a mismatch fails with FB_ERR_UNSUPPORTED_TYPE).
 * \param value one value of `type` (copied).
 * \return FB_OK, FB_ERR_INVALID_ARG (NULL, unknown op), FB_ERR_UNSUPPORTED_TYPE (unknown type),
 *         FB_ERR_OUT_OF_MEMORY. */
FB_API fb_status fb_operator_select_cmp(fb_ctx *ctx, size_t column, fb_type type, fb_cmp op, const void *value,
                                        fb_operator *out);

/** \brief A filter operator `*lo <= column <= *hi` (SQL BETWEEN) with fb_select_range(); otherwise as
 * fb_operator_select_cmp(). */
FB_API fb_status fb_operator_select_range(fb_ctx *ctx, size_t column, fb_type type, const void *lo, const void *hi,
                                          fb_operator *out);
/** @} */

/** \name Memory on a NUMA node
 * For per-node state (morsel queues, hash-table partitions, a worker's buffers). On a real topology
 * the memory comes from hwloc_alloc_membind() bound to the node (page-aligned, whole pages; where the
 * system cannot bind, hwloc allocates it unbound); on a synthetic topology, or for node -1, it comes
 * from the context's allocator. Either way it counts against the context's memory limit. Blocks of
 * 1 MiB and more that fb_numa_free() gives back are kept by the context (up to FB_MEMORY_CACHE bytes,
 * default 1 GiB, at most a quarter of the memory limit; 0 turns the cache off) and handed out again for
 * the same size and node, so a query does not pay the page faults and zeroing of fresh memory that the
 * one before it already paid. The memory is not zeroed: it may hold an earlier query's data.
 * @{ */

/** \brief Allocates `size` bytes (64-byte aligned at least) on NUMA node `node`.
 * \param node 0..numa_nodes-1, or -1 for no particular node. \param[out] out the memory.
 * \return FB_OK, FB_ERR_INVALID_ARG (ctx or out NULL, node out of range), FB_ERR_OUT_OF_MEMORY.
 * \note Thread-safe. Free with fb_numa_free() and the same size. */
FB_API fb_status fb_numa_alloc(fb_ctx *ctx, int node, size_t size, void **out);

/** \brief Frees memory from fb_numa_alloc() (of the same `node` and `size`). \param ptr may be NULL. */
FB_API void fb_numa_free(fb_ctx *ctx, int node, void *ptr, size_t size);
/** @} */

#ifdef __cplusplus
}
#endif
#endif /* FB_RUNTIME_H */
