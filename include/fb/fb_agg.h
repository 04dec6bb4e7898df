/* fb_agg.h - kernel-level grouped (and ungrouped) aggregation on the CPU: a table that morsels of
 * key and value columns are added to, one morsel at a time, on the calling thread.
 *
 * Lifecycle: fb_agg_create(spec) → fb_agg_update() per morsel (any number) → optionally
 * fb_agg_merge() of other tables of the same spec (one per worker) → fb_agg_group_count() and
 * fb_agg_result() → fb_agg_destroy(). This is what the runtime's aggregation sink keeps as its
 * local (per-worker) state; combine is fb_agg_merge(), finalize is fb_agg_result().
 *
 * Semantics (SQL):
 * - Groups are the distinct key tuples; a null key equals another null key of the same column, so
 *   rows whose key is null form one group (per combination of the other key columns).
 * - count(*) counts rows; count(col) counts non-null values; sum, min, max and avg skip nulls, and
 *   are null for a group without a non-null input value (sum of no rows is null, not 0).
 * - Integer sums are exact: they are kept in 128 bits and checked against int64 when the result is
 *   produced (FB_ERR_OVERFLOW, never a wrapped value), so neither the row order, the merge order nor
 *   the CPU variant changes whether a sum overflows. Float sums are doubles; the SIMD variants may
 *   add the rows of an ungrouped float sum in another order (results differ by reassociation only).
 * - avg is a double: the exact sum divided by the count of non-null values.
 * - min and max compare floats in SQL order (NaN is the largest value, -0.0 equals 0.0) and return
 *   -0.0 as 0.0 and any NaN as the canonical quiet NaN.
 * - Ungrouped aggregation is a spec with no key columns: its result always has exactly one row
 *   (count(*) = 0 and null sums when no row was added).
 *
 * Groups come out in the order of their first row (first fb_agg_update() first; fb_agg_merge()
 * appends the source's new groups in the source's order). That order is the same for every CPU
 * variant.
 *
 * Algorithm: keys are mapped to dense group numbers either by a direct-indexed table (when the
 * product of the key columns' observed value ranges is at most FB_AGG_DIRECT_MAX_SLOTS, decided from
 * each morsel's min/max and revisited as the ranges grow) or by an open-addressing hash table
 * (linear probing, hashes as fb_hash_columns() defines them, load at most 1/2, doubled when full).
 * A table that has switched to hashing stays there. fb_agg_spec::strategy forces one.
 *
 * Threading: one table is used by one thread at a time; distinct tables may be used concurrently
 * on one context. Memory comes from the context's allocator and counts against its memory limit.
 */
#ifndef FB_AGG_H
#define FB_AGG_H

#include "fb_column.h"
#include "fb_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most key columns a table groups by. */
#define FB_AGG_MAX_KEYS 4
/** Most aggregates one table computes. */
#define FB_AGG_MAX_AGGS 64
/** Largest direct-indexed table the automatic choice uses (slots = product of the key ranges, each
 *  range counting one extra slot for null). */
#define FB_AGG_DIRECT_MAX_SLOTS (1 << 16)
/** Largest direct-indexed table FB_AGG_STRATEGY_DIRECT accepts. */
#define FB_AGG_DIRECT_FORCED_MAX_SLOTS (1 << 24)

/** \brief Aggregate functions. Values are pinned. */
typedef enum fb_agg_kind {
    FB_AGG_COUNT_STAR = 0, /**< count(*): rows of the group; reads no column. Result int64, never null. */
    FB_AGG_COUNT = 1,      /**< count(col): non-null values. Result int64, never null. */
    FB_AGG_SUM = 2,        /**< sum(col): integers (not date32) into int64, floats into float64. */
    FB_AGG_MIN = 3,        /**< min(col): result in the column's type. */
    FB_AGG_MAX = 4,        /**< max(col): result in the column's type. */
    FB_AGG_AVG = 5         /**< avg(col): float64 (of integers or floats, not date32). */
} fb_agg_kind;

/** \brief How keys find their group. Values are pinned. */
typedef enum fb_agg_strategy {
    FB_AGG_STRATEGY_AUTO = 0,   /**< direct-indexed while the key ranges are small, then hashing */
    FB_AGG_STRATEGY_DIRECT = 1, /**< always direct-indexed; an update whose keys span more than
                                     FB_AGG_DIRECT_FORCED_MAX_SLOTS slots fails with FB_ERR_CAPACITY */
    FB_AGG_STRATEGY_HASH = 2,   /**< always the hash table; in the runtime (fb_query_add_agg()): per-worker
                                     cache-sized pre-aggregation tables that spill to radix partitions */
    FB_AGG_STRATEGY_PARTITION = 3 /**< runtime only (a table treats it as HASH): every row goes straight to
                                       the radix partitions, without pre-aggregation */
} fb_agg_strategy;

/** \brief One aggregate: its function and the value column it reads. */
typedef struct fb_agg_desc {
    fb_agg_kind kind; /**< the function */
    int32_t input;    /**< index into the `values` array of fb_agg_update(); ignored for count(*) */
    fb_type type;     /**< type of that value column (FB_TYPE_INVALID for count(*)) */
} fb_agg_desc;

/** \brief What a table computes. Copied by fb_agg_create(). */
typedef struct fb_agg_spec {
    size_t n_keys;             /**< 0 (ungrouped) .. FB_AGG_MAX_KEYS */
    const fb_type *key_types;  /**< n_keys types: int8..int64, uint8..uint64, date32 (dictionary
                                    codes are int32 keys); floats give FB_ERR_UNSUPPORTED_TYPE */
    size_t n_aggs;             /**< 0..FB_AGG_MAX_AGGS (0 with keys: SELECT DISTINCT) */
    const fb_agg_desc *aggs;   /**< n_aggs aggregates, in output order */
    fb_agg_strategy strategy;  /**< FB_AGG_STRATEGY_AUTO unless a test or the planner forces one */
} fb_agg_spec;

struct fb_agg_table;
/** Opaque aggregation table; see fb_agg_create(). */
typedef struct fb_agg_table fb_agg_table;

/** \brief Type of an aggregate's result column.
 * \param[out] out int64 for counts and integer sums, float64 for float sums and avg, the input type
 *             for min and max.
 * \return FB_OK, FB_ERR_INVALID_ARG (out NULL, unknown kind), FB_ERR_UNSUPPORTED_TYPE (sum or avg of
 *         date32, an invalid type). \note Thread-safe. */
FB_API fb_status fb_agg_result_type(fb_agg_kind kind, fb_type input, fb_type *out);

/** \brief Creates an empty table.
 * \param ctx the context: CPU variant, allocator and memory limit, error messages; must outlive the table.
 * \param spec what to compute (copied).
 * \param[out] out the new table.
 * \return FB_OK, FB_ERR_INVALID_ARG (NULL pointers, too many keys or aggregates, unknown kind or
 *         strategy, negative input index), FB_ERR_UNSUPPORTED_TYPE (float keys, invalid types, sum or
 *         avg of date32), FB_ERR_OUT_OF_MEMORY.
 * \note Thread-safe. */
FB_API fb_status fb_agg_create(fb_ctx *ctx, const fb_agg_spec *spec, fb_agg_table **out);

/** \brief Destroys a table and frees its memory. \param t may be NULL. */
FB_API void fb_agg_destroy(fb_agg_table *t);

/** \brief Adds the rows of one morsel.
 * \param keys spec->n_keys key columns (may be NULL when there are none), each of n_rows rows and of
 *        the spec's key type; nulls allowed.
 * \param values n_values value columns of n_rows rows each; aggregate i reads
 *        values[aggs[i].input], whose type must be aggs[i].type; nulls allowed.
 * \param n_rows rows of the morsel, 0..FB_MORSEL_MAX_ROWS (this gives the row count when no column
 *        is read, e.g. an ungrouped count(*)).
 * \param sel rows to add (indices < n_rows, any order, repeats counted as often as listed), or NULL
 *        for all rows; n_sel their number (ignored when sel is NULL).
 * \return FB_OK; FB_ERR_INVALID_ARG (NULL pointers, bad views, an input index ≥ n_values, the table
 *         failed earlier); FB_ERR_UNSUPPORTED_TYPE (a column whose type differs from the spec);
 *         FB_ERR_LENGTH_MISMATCH (a column without n_rows rows); FB_ERR_OUT_OF_RANGE (a sel index ≥
 *         n_rows); FB_ERR_CAPACITY (keys too wide for a forced direct table, or more than 2^32 - 2
 *         groups); FB_ERR_OUT_OF_MEMORY. Argument errors and a forced direct table's FB_ERR_CAPACITY
 *         are found before any row is added and leave the table as it was. FB_ERR_OUT_OF_MEMORY and
 *         the group-count FB_ERR_CAPACITY may strike after some rows were added: the table is then
 *         *failed*: its memory (but the handle) is freed at once, and every later call but
 *         fb_agg_destroy() and fb_agg_table_strategy() returns FB_ERR_INVALID_ARG.
 * \note Not thread-safe for one table. */
FB_API fb_status fb_agg_update(fb_agg_table *t, const fb_column *keys, const fb_column *values, size_t n_values,
                               int64_t n_rows, const uint32_t *sel, int64_t n_sel);

/** \brief Adds every group of src to dst, as if dst had also been given all of src's rows.
 * \param dst, src tables created with equal specs (same key types and aggregates; strategies may
 *        differ); src is not changed and may be destroyed afterwards.
 * \return FB_OK, FB_ERR_INVALID_ARG (NULL, dst == src, different specs, a failed table),
 *         FB_ERR_CAPACITY, FB_ERR_OUT_OF_MEMORY (dst is then failed, as in fb_agg_update()).
 * \note dst and src must not be in use by another thread during the call. */
FB_API fb_status fb_agg_merge(fb_agg_table *dst, const fb_agg_table *src);

/** \brief Number of rows fb_agg_result() writes: the groups (1 for an ungrouped table).
 * \param[out] out the number. \return FB_OK or FB_ERR_INVALID_ARG (NULL, a failed table). */
FB_API fb_status fb_agg_group_count(const fb_agg_table *t, int64_t *out);

/** \brief Writes one row per group.
 * \param keys spec->n_keys outputs (NULL when there are none) of the key types; a key output's
 *        validity is required when that key column has a null group, and written when given.
 * \param aggs spec->n_aggs outputs, typed as fb_agg_result_type() says; validity is required when
 *        the column holds a null (a group without non-null input for sum, min, max, avg), and
 *        written when given. Every capacity must be at least fb_agg_group_count().
 * \return FB_OK, FB_ERR_INVALID_ARG (NULL pointers, missing buffers, a failed table),
 *         FB_ERR_UNSUPPORTED_TYPE (an output of the wrong type), FB_ERR_CAPACITY, FB_ERR_OVERFLOW (an
 *         integer sum outside int64; the message names the aggregate). On failure every output has
 *         length 0. The table is not changed and may be updated further.
 * \note May run while no other thread changes the table. */
FB_API fb_status fb_agg_result(const fb_agg_table *t, fb_column_out *keys, fb_column_out *aggs);

/** \brief Which strategy the table uses now. \return FB_AGG_STRATEGY_DIRECT or FB_AGG_STRATEGY_HASH;
 * FB_AGG_STRATEGY_AUTO for NULL or a failed table. For tests and `explain`. */
FB_API fb_agg_strategy fb_agg_table_strategy(const fb_agg_table *t);

/** \name Aggregation in the runtime
 * A grouped (or ungrouped) aggregation as two pipelines of a query (fb_runtime.h): the first ends in
 * an aggregation sink after the caller's source and operators; the second, which depends on it, merges
 * the workers' data partition by partition, each partition on one worker, and materializes the groups.
 *
 * Algorithm ("hashing is sorting"): with one integer key column and integer aggregates, each worker
 * first looks at the key range of its morsels: a small range (at most FB_AGG_DIRECT_MAX_SLOTS slots, or
 * FB_AGG_DIRECT_FORCED_MAX_SLOTS when forced) is aggregated in a direct-indexed table of several
 * interleaved copies. Otherwise rows go into a cache-sized hash table that pre-aggregates; when it is
 * full its groups leave as partial aggregates into 2^FB_AGG_PARTITION_BITS radix partitions (by hash
 * bits); when a flush shows that the table hardly reduced the rows (high cardinality), the next rows
 * skip it and go to the partitions directly (as compact rows of key and value, 8 or 16 bytes, when at
 * most one value column is read and neither is null), and it is tried again later. At the end every worker's
 * table leaves into the partitions as well; the second pipeline then aggregates each partition in a
 * table of its own (mostly cache-resident) on the merging worker's NUMA node (neighbouring small
 * partitions together). On a machine with one NUMA node the memory comes from the context's
 * allocator, so that an engine's pool can hand it to the next query. fb_agg_spec::strategy
 * forces one path (DIRECT, HASH, or PARTITION for no pre-aggregation), and so does the context
 * (fb_options_set_agg_strategy(), FB_AGG_STRATEGY) for specs that leave it AUTO. Two to four key
 * columns take the same paths as one packed key when each key's bits plus a null flag fit 64 bits in
 * all (e.g. int32 with int16, three int16); wider integer key combinations (two int32, two int64) take
 * them with one word per key, except the direct table (forcing DIRECT fails with FB_ERR_CAPACITY). Other
 * specs (float aggregates, no keys) use one fb_agg_table per worker merged at the end: correct, not fast.
 *
 * Groups come out in no particular order, as partitions of column views (fb_agg_groups_partition()) or
 * copied into one set of columns (fb_agg_groups_result()).
 * @{ */

/** \brief Forces the strategy of the context's runtime aggregations (fb_query_add_agg(), fb_agg_run(),
 * plans): it applies to every aggregation whose fb_agg_spec::strategy is FB_AGG_STRATEGY_AUTO (an
 * explicit strategy in the spec wins). Without it the FB_AGG_STRATEGY environment variable (auto, direct,
 * hash, partition) is read by fb_ctx_create(); an explicit option wins over it. Aggregation tables of
 * their own (fb_agg_create()) are not affected.
 * \return FB_OK or FB_ERR_INVALID_ARG (NULL, unknown value). */
FB_API fb_status fb_options_set_agg_strategy(fb_options *opts, fb_agg_strategy strategy);

/** \brief The runtime aggregation strategy the context forces (FB_AGG_STRATEGY_AUTO: chosen per worker
 * from what it sees). \return FB_AGG_STRATEGY_AUTO if ctx is NULL. */
FB_API fb_agg_strategy fb_ctx_agg_strategy(const fb_ctx *ctx);

/** log2 of the number of radix partitions of the runtime aggregation. */
#define FB_AGG_PARTITION_BITS 10

struct fb_agg_groups;
/** Opaque result of a runtime aggregation: the groups, in partitions; see fb_query_add_agg(). */
typedef struct fb_agg_groups fb_agg_groups;

/** \brief Where the aggregation sink finds its columns in the chunks that reach it. */
typedef struct fb_agg_input {
    const size_t *key_columns;   /**< spec->n_keys chunk column indices of the keys */
    const size_t *value_columns; /**< n_values chunk column indices; aggregate i reads
                                      value_columns[spec->aggs[i].input] */
    size_t n_values;             /**< entries of value_columns */
} fb_agg_input;

/** \brief Adds an aggregation to a query: the pipeline `source → ops → aggregation sink` and the
 * pipeline that merges its partitions (which depends on the first).
 * \param q a query that has not run. \param name of the first pipeline (NULL: "agg"); the second is
 *        "agg-merge".
 * \param source, ops, n_ops as for fb_query_add_pipeline() (the query owns them from this call on,
 *        also when it fails).
 * \param spec what to compute (copied; as for fb_agg_create()). \param input where keys and values are.
 * \param[out] groups the result object, filled by the run; the caller destroys it with
 *        fb_agg_groups_destroy() after fb_query_run() has returned (its groups are valid only when the
 *        run succeeded). Integer sums outside int64 fail the run with FB_ERR_OVERFLOW.
 * \param[out] merge the second pipeline (for dependencies of later pipelines), or NULL.
 * \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_UNSUPPORTED_TYPE, FB_ERR_OUT_OF_MEMORY; *groups is NULL on
 *         failure. Column types are checked against the spec for each chunk (FB_ERR_UNSUPPORTED_TYPE
 *         fails the run). */
FB_API fb_status fb_query_add_agg(fb_query *q, const char *name, const fb_source *source, const fb_operator *ops,
                                  size_t n_ops, const fb_agg_spec *spec, const fb_agg_input *input,
                                  fb_agg_groups **groups, fb_pipeline **merge);

/** \brief Aggregates a table in one call: fb_source_table() → fb_query_add_agg() → fb_query_run().
 * \param morsel_rows as for fb_source_table(). \param[out] groups the result (NULL on failure).
 * \param[out] stats the whole query's counters, or NULL.
 * \return FB_OK or the errors of those functions. */
FB_API fb_status fb_agg_run(fb_ctx *ctx, const fb_table *table, int64_t morsel_rows, const fb_agg_spec *spec,
                            const fb_agg_input *input, fb_agg_groups **groups, fb_stats *stats);

/** \brief Destroys a result. \param g may be NULL. */
FB_API void fb_agg_groups_destroy(fb_agg_groups *g);

/** \brief Number of groups (1 for an ungrouped aggregation). \return the number, 0 for NULL or a result
 * whose run did not finish. */
FB_API int64_t fb_agg_groups_count(const fb_agg_groups *g);

/** \brief Number of partitions the groups lie in. \return ≥ 1, 0 for NULL or an unfinished result. */
FB_API int fb_agg_groups_partitions(const fb_agg_groups *g);

/** \brief Views of one partition's groups (no copy; valid until fb_agg_groups_destroy()).
 * \param keys spec->n_keys views (NULL when there are none), of the key types, with validity when the
 *        partition has a null key. \param aggs spec->n_aggs views typed as fb_agg_result_type() says,
 *        with validity where a value is null. \param[out] rows the partition's groups.
 * \return FB_OK or FB_ERR_INVALID_ARG (NULL pointers, p out of range, an unfinished result). */
FB_API fb_status fb_agg_groups_partition(const fb_agg_groups *g, int p, fb_column *keys, fb_column *aggs,
                                         int64_t *rows);

/** \brief Copies every group into caller buffers, partition after partition (as fb_agg_result():
 * capacities ≥ fb_agg_groups_count(), validity required where a column holds a null).
 * \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_UNSUPPORTED_TYPE, FB_ERR_CAPACITY. */
FB_API fb_status fb_agg_groups_result(const fb_agg_groups *g, fb_column_out *keys, fb_column_out *aggs);
/** @} */

#ifdef __cplusplus
}
#endif
#endif /* FB_AGG_H */
