/* fb_join.h - kernel-level hash join on the CPU: a hash table built from morsels of key columns,
 * probed morsel by morsel for inner, left outer, semi, anti and mark joins, and a radix partitioner.
 *
 * Lifecycle: fb_hash_table_create() for a key spec (1..FB_JOIN_MAX_KEYS columns) →
 * fb_hash_table_build() once per build morsel (the table grows) → any number of probe calls →
 * fb_hash_table_destroy(). Results are row ids: (build row, probe row) pairs for inner and left outer
 * joins, a selection vector for semi and anti joins, a boolean per probe row for mark joins;
 * fb_gather() (fb_kernels.h) materializes payload columns from them.
 *
 * Keys: int32, int64, date32, uint32, uint64 columns. Keys compare by value after widening to 64
 * bits (signed types sign-extended, unsigned zero-extended), exactly (the hash only finds the bucket).
 * Probe key columns must have the table's key types, in order. A row whose key has a null in any
 * key column never matches (SQL equality); null build rows are not inserted but counted (see the
 * mark join).
 *
 * Order of results (identical for every CPU variant): probe rows in ascending order; within one
 * probe row, its matching build rows in the order they were inserted (build calls in call order,
 * rows of a call in row order).
 *
 * Hashing follows fb_hash_columns(); the table places a key by the hash's top bits and
 * fb_radix_partition() partitions by low bits, so a table built per radix partition stays uniform.
 *
 * Threading: build calls on one table must not overlap each other or probes of it. After the last
 * build, probe calls are read-only and may run from several threads at once on one table (each with
 * its own cursor and outputs).
 */
#ifndef FB_JOIN_H
#define FB_JOIN_H

#include "fb_agg.h"
#include "fb_column.h"
#include "fb_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most key columns a hash table takes (a composite key of up to four columns). */
#define FB_JOIN_MAX_KEYS 4

/** Most rows one table holds over all build calls (row chains use 32-bit links). */
#define FB_HASH_TABLE_MAX_ROWS ((int64_t)UINT32_MAX - 1)

/** \brief Join types. Values are pinned. */
typedef enum fb_join_type {
    FB_JOIN_INNER = 0, /**< every (build, probe) pair with equal keys: fb_hash_table_probe() */
    FB_JOIN_LEFT = 1,  /**< inner, plus (-1, probe row) for each probe row without a match: fb_hash_table_probe() */
    FB_JOIN_SEMI = 2,  /**< probe rows with at least one match, once each: fb_hash_table_probe_select() */
    FB_JOIN_ANTI = 3,  /**< probe rows without a match (SQL NOT EXISTS: null keys are kept): fb_hash_table_probe_select() */
    FB_JOIN_MARK = 4   /**< a boolean per probe row (IN / EXISTS): fb_hash_table_probe_mark() */
} fb_join_type;

struct fb_hash_table;
/** Opaque hash table; see fb_hash_table_create(). */
typedef struct fb_hash_table fb_hash_table;

/** \brief Creates an empty hash table for keys of the given types.
 * \param key_types n_keys types, each FB_TYPE_INT32, INT64, DATE32, UINT32 or UINT64.
 * \param n_keys 1..FB_JOIN_MAX_KEYS.
 * \param expected_rows a sizing hint (build rows expected, ≥ 0; 0 = start small and grow).
 * \param[out] out the table; its memory comes from ctx's allocator and counts against its limit.
 * \return FB_OK; FB_ERR_INVALID_ARG (NULL pointers, n_keys out of range, expected_rows < 0 or above
 *         FB_HASH_TABLE_MAX_ROWS); FB_ERR_UNSUPPORTED_TYPE; FB_ERR_OUT_OF_MEMORY.
 * \note The table keeps ctx: ctx must outlive it. */
FB_API fb_status fb_hash_table_create(fb_ctx *ctx, const fb_type *key_types, size_t n_keys, int64_t expected_rows,
                                      fb_hash_table **out);

/** \brief Destroys a table and frees its memory. \param table may be NULL. */
FB_API void fb_hash_table_destroy(fb_hash_table *table);

/** \brief Inserts the rows of one build morsel. Row i gets build row id `first_row + i`.
 * Duplicate keys are kept (every one is returned by probes); rows with a null key are counted,
 * not inserted. The table grows as needed (load factor ≤ 0.5).
 * \param keys n_keys columns of equal length with the table's key types.
 * \param first_row id of row 0 (≥ 0; ids stay below INT64_MAX); ids need not be contiguous across calls, and the caller
 *        chooses them (e.g. the row's position in the whole build side).
 * \return FB_OK; FB_ERR_INVALID_ARG (NULL pointers, bad view, first_row < 0, first_row + length
 *         overflowing, n_keys differing from the table's); FB_ERR_UNSUPPORTED_TYPE (a key type differs
 *         from the table's); FB_ERR_LENGTH_MISMATCH; FB_ERR_CAPACITY (more than FB_HASH_TABLE_MAX_ROWS
 *         rows in all); FB_ERR_OUT_OF_MEMORY (nothing of this morsel was inserted; the table is as
 *         before the call). */
FB_API fb_status fb_hash_table_build(fb_ctx *ctx, fb_hash_table *table, const fb_column *keys, size_t n_keys,
                                     int64_t first_row);

/** \brief Build rows given to the table so far (null-key rows included). \return 0 for NULL. */
FB_API int64_t fb_hash_table_rows(const fb_hash_table *table);

/** \brief Distinct non-null keys in the table. \return 0 for NULL. */
FB_API int64_t fb_hash_table_distinct(const fb_hash_table *table);

/** \brief Where a resumable probe stands. Set it to FB_JOIN_CURSOR_INIT before the first call for
 * a probe morsel and pass it unchanged to the following calls for the same morsel; its fields are
 * private. */
typedef struct fb_join_cursor {
    int64_t row;    /**< private: next probe row of the morsel */
    uint64_t chain; /**< private: position in that row's chain of matches, 0 = its start */
} fb_join_cursor;

/** Initial value of an fb_join_cursor. */
#define FB_JOIN_CURSOR_INIT {0, 0}

/** \brief Caller-owned output of fb_hash_table_probe(): id pairs, as fb_column_out is for columns. */
typedef struct fb_join_pairs {
    int64_t *build_ids; /**< capacity entries: build row ids (-1 for unmatched rows of a left join) */
    int64_t *probe_ids; /**< capacity entries: probe row ids (first_row + row index) */
    int64_t capacity;   /**< pairs the arrays hold, ≥ 1 */
    int64_t length;     /**< set by the probe: pairs written (0 after a failed call) */
    int more;           /**< set by the probe: 1 when output remains (call again with the same cursor),
                             0 when the morsel is finished */
} fb_join_pairs;

/** \brief Probes one morsel for an inner or left outer join, writing at most out->capacity pairs.
 * N:M joins produce results of any size in bounded chunks: call again with the same cursor while
 * out->more is 1; every pair comes exactly once across the calls, in the documented order.
 * Time is linear in probe rows plus pairs written (duplicate chains are walked, never searched).
 * \param keys n_keys probe key columns of equal length with the table's key types.
 * \param type FB_JOIN_INNER or FB_JOIN_LEFT.
 * \param first_row probe row id of row 0 (≥ 0).
 * \param cursor in/out: FB_JOIN_CURSOR_INIT on the first call for this morsel.
 * \param out id buffers and capacity; length and more are set.
 * \return FB_OK; FB_ERR_INVALID_ARG (NULL pointers, bad view, n_keys differing from the table's, a
 *         type other than inner/left, a cursor not from this morsel, negative first_row);
 *         FB_ERR_UNSUPPORTED_TYPE; FB_ERR_LENGTH_MISMATCH; FB_ERR_CAPACITY (capacity < 1).
 * \note Read-only on the table; see the threading note above. The table must not be built into
 *       between the calls of one cursor. */
FB_API fb_status fb_hash_table_probe(fb_ctx *ctx, const fb_hash_table *table, const fb_column *keys, size_t n_keys,
                                     fb_join_type type, int64_t first_row, fb_join_cursor *cursor,
                                     fb_join_pairs *out);

/** \brief Semi or anti join of one probe morsel: the indices (into the morsel, ascending) of the
 * probe rows that have a match (FB_JOIN_SEMI) or have none (FB_JOIN_ANTI, SQL NOT EXISTS: rows with a
 * null key are included, as they match nothing).
 * \param sel_out capacity entries; capacity must be at least the morsel's rows.
 * \param[out] n_out indices written.
 * \return FB_OK; FB_ERR_INVALID_ARG (also: more than FB_MORSEL_MAX_ROWS rows, a type other than
 *         semi/anti); FB_ERR_UNSUPPORTED_TYPE; FB_ERR_LENGTH_MISMATCH; FB_ERR_CAPACITY. */
FB_API fb_status fb_hash_table_probe_select(fb_ctx *ctx, const fb_hash_table *table, const fb_column *keys,
                                            size_t n_keys, fb_join_type type, uint32_t *sel_out, int64_t capacity,
                                            int64_t *n_out);

/** \brief Mark join of one probe morsel: one boolean per probe row, 1 when the row has a match.
 * out->type must be FB_TYPE_UINT8 with capacity ≥ the morsel's rows.
 * - out->validity NULL (EXISTS semantics): mark = 1 if matched, else 0 (a null probe key gives 0).
 * - out->validity given (SQL `key IN (build keys)`, three-valued): 1 (valid) if matched; else null
 *   (validity 0, value 0) when the probe key has a null and the table has any build row, or when the
 *   table holds a build row with a null key; else 0 (valid). For composite keys this treats a
 *   partly null row as wholly null (SQL would give false when a non-null column differs from every
 *   build row). An empty table gives 0 for every row, null keys included.
 * \return FB_OK; FB_ERR_INVALID_ARG; FB_ERR_UNSUPPORTED_TYPE (out->type not uint8, key types);
 *         FB_ERR_LENGTH_MISMATCH; FB_ERR_CAPACITY. */
FB_API fb_status fb_hash_table_probe_mark(fb_ctx *ctx, const fb_hash_table *table, const fb_column *keys,
                                          size_t n_keys, fb_column_out *out);

/** Most radix bits fb_radix_partition() takes in one pass (65,536 partitions). */
#define FB_RADIX_MAX_BITS 16

/** \brief Radix-partitions one morsel by hash bits: partition of row i is
 * `(hashes[i] >> shift) & ((1 << bits) - 1)`. Writes the rows of partition p, in ascending row order,
 * to perm[offsets[p] .. offsets[p + 1]). Scatters through software write-combining buffers (one cache
 * line per partition, flushed as whole lines with non-temporal stores where the variant has them);
 * the buffers (2^bits * 64 bytes) come from ctx's allocator. A second pass over a partition with a
 * larger shift refines it.
 * \param hashes n hashes (from fb_hash_columns()). \param n rows, 0..FB_MORSEL_MAX_ROWS.
 * \param bits 1..FB_RADIX_MAX_BITS. \param shift 0..64 - bits.
 * \param offsets 2^bits + 1 entries: partition starts, and offsets[2^bits] = n.
 * \param perm n row indices (a permutation of 0..n-1).
 * \return FB_OK; FB_ERR_INVALID_ARG (NULL pointers, n, bits or shift out of range);
 *         FB_ERR_OUT_OF_MEMORY. */
FB_API fb_status fb_radix_partition(fb_ctx *ctx, const uint64_t *hashes, int64_t n, int bits, int shift,
                                    int64_t *offsets, uint32_t *perm);

/** \name Runtime join
 * The hash join of two whole sides run by the runtime (fb_runtime.h) as pipelines on the context's
 * workers: build pipeline(s) → probe pipeline → a sink (the caller's, an aggregation, or a collector
 * of row ids). Every join type (fb_join_type), keys as for fb_hash_table_create() (1..FB_JOIN_MAX_KEYS
 * columns; both sides with the same types, in order), nulls never match.
 *
 * Two algorithms (fb_join_algorithm, forced with fb_options_set_join_algorithm() or chosen by the
 * build side's size against the L2 cache hwloc reports):
 * - non-partitioned: pipeline "join-build" (table source over the build keys → a sink inserting into
 *   one shared hash table (fb_hash_table_create()), sized for the whole build side before the first
 *   morsel; every worker inserts at once (compare-and-swap on the buckets and key chains; in
 *   fb_join_run()'s tuple join, atomic exchanges), so the order of a key's duplicate build rows in its
 *   chain depends on the workers' timing, never the set of matches) then
 *   "join-probe" (table source over the probe keys → the probe operator, read-only on the table and
 *   run by every worker at once → the downstream stages);
 * - radix: "join-partition-build" and "join-partition-probe" (both sides scattered by the low bits of
 *   their key hashes into per-worker chunk lists; partition p's chunks are allocated on NUMA node
 *   p mod nodes (fb_numa_alloc()); the two pipelines run at the same time), then "join-partitions" (a
 *   source handing partition p first to a worker of node p mod nodes, the largest first, tagged with
 *   that node so the runtime counts it as local or remote → the operator that builds the partition's
 *   cache-sized table and probes it → the downstream stages).
 *
 * What the join stage hands downstream: chunks (row_begin 0, no selection) whose columns are
 *   0 build row id (int64; -1 where there is none: unmatched rows of a left join, every row of a
 *     semi, anti or mark join),
 *   1 probe row id (int64),
 *   2 mark (uint8: 1 when the probe row has a match; 1 for inner and semi rows, 0 for anti rows),
 *   then the build payload columns gathered by build row id (null where it is -1), then the probe
 *   payload columns gathered by probe row id (fb_gather()).
 * Rows per join type: inner, every (build, probe) pair with equal keys; left, those plus (-1, p) for
 * each probe row p without a match; semi, each probe row with a match once; anti, each probe row
 * without one (SQL NOT EXISTS: a probe row with a null key is kept); mark, every probe row once.
 * Row ids are positions in the sides (int64, no 2^31 limit). Chunks come in no particular order.
 * @{ */

/** \brief The two sides of a runtime join. Column buffers must stay valid and unchanged until the run
 * ends (the spec itself is copied). */
typedef struct fb_join_spec {
    fb_join_type type;                 /**< any fb_join_type */
    size_t n_keys;                     /**< key columns per side, 1..FB_JOIN_MAX_KEYS */
    const fb_column *build_keys;       /**< n_keys columns of equal length: the build side */
    const fb_column *probe_keys;       /**< n_keys columns of equal length and the build keys' types */
    const fb_column *build_payload;    /**< n_build_payload columns as long as the build side (inner and
                                            left joins only), gathered into the output */
    size_t n_build_payload;            /**< 0..16 */
    const fb_column *probe_payload;    /**< n_probe_payload columns as long as the probe side */
    size_t n_probe_payload;            /**< 0..16 */
    int64_t morsel_rows;               /**< rows per morsel of the sides' table sources, 0 = default */
    int radix_bits;                    /**< radix partition bits 0..14, or -1 = chosen from the caches */
} fb_join_spec;

/** \brief One block of a collected join result: row i is (build_ids[i], probe_ids[i], marks[i]). */
typedef struct fb_join_block {
    const int64_t *build_ids; /**< n build row ids (-1: none), NULL for semi, anti and mark joins */
    const int64_t *probe_ids; /**< n probe row ids */
    const uint8_t *marks;     /**< n marks (mark joins), else NULL */
    int64_t n;                /**< rows of the block */
} fb_join_block;

/** \brief What fb_join_run() collects, and what a run chose. Free with fb_join_result_free(). */
typedef struct fb_join_result {
    int64_t count;               /**< output rows (pairs, selected or marked probe rows) */
    int64_t sum;                 /**< private (fbench's fused count/sum join); 0 here */
    fb_join_block *blocks;       /**< the rows in n_blocks blocks, as the workers wrote them (no copy */
    int64_t n_blocks;            /**< into one array), in no particular order */
    fb_join_algorithm algorithm; /**< the algorithm that ran */
    int radix_bits;              /**< radix: the partition bits used, else 0 */
    int64_t partitions_local;    /**< radix: partitions joined by a worker of the NUMA node their memory is on */
    int64_t partitions_remote;   /**< radix: partitions joined by a worker of another node (stolen work) */
    void *owner;                 /**< private: the blocks' memory */
} fb_join_result;

/** \brief Adds a join to a query: its build (and partition) pipelines and the probe pipeline
 * `join source → join operator → ops → sink`, which depends on them. The join's output chunks (see
 * above) go through `ops` into `sink` (e.g. a caller's aggregation), never materialized as a whole.
 * \param q a query that has not run. \param spec the join (copied; buffers as documented there).
 * \param ops, n_ops operators after the join (NULL, 0 for none); \param sink required. The query owns
 *        their `user` states from this call on, also when it fails (as fb_query_add_pipeline()).
 * \param[out] info written by the run with the algorithm, radix bits and partition placement (count
 *        and blocks stay 0), or NULL. It must stay valid until the run ends.
 * \param[out] probe the probe pipeline (for later dependencies), or NULL.
 * \return FB_OK; FB_ERR_INVALID_ARG (NULL pointers, n_keys, radix_bits or payload counts out of range,
 *         build payload for a semi, anti or mark join, unknown type); FB_ERR_UNSUPPORTED_TYPE (a key
 *         type the hash table does not take, different key types on the sides); FB_ERR_LENGTH_MISMATCH
 *         (columns of one side of different lengths); FB_ERR_OUT_OF_MEMORY. */
FB_API fb_status fb_query_add_join(fb_query *q, const fb_join_spec *spec, const fb_operator *ops, size_t n_ops,
                                   const fb_sink *sink, fb_join_result *info, fb_pipeline **probe);

/** \brief Adds a join feeding an aggregation directly: as fb_query_add_join() with the sink of
 * fb_query_add_agg() (its `input` names columns of the join's output chunks: 0 build id, 1 probe id,
 * 2 mark, then the payloads). E.g. count(*) and sum(b.v) + sum(p.v) of an inner join without
 * materializing its pairs.
 * \param[out] groups, merge as for fb_query_add_agg(). \param[out] info as for fb_query_add_join().
 * \return as fb_query_add_join() and fb_query_add_agg(). */
FB_API fb_status fb_query_add_join_agg(fb_query *q, const fb_join_spec *spec, const fb_agg_spec *agg,
                                       const fb_agg_input *input, fb_join_result *info, fb_agg_groups **groups,
                                       fb_pipeline **merge);

/** \brief Runs a join on ctx's workers and collects its row ids in blocks (result->count rows).
 * Payload columns of the spec are ignored (gather them with fb_gather() through the ids).
 * An inner join on one 32-bit key (int32, uint32, date32) with sides of fewer than 2^32 rows takes the
 * tuple join (8-byte key/row-id tuples; its blocks have marks NULL); every other join the general one.
 * \param[out] result zeroed first, filled on success. \return as fb_query_add_join() and fb_query_run(). */
FB_API fb_status fb_join_run(fb_ctx *ctx, const fb_join_spec *spec, fb_join_result *result);

/** \brief Frees the blocks of a result (a zeroed result is fine). \param result may be NULL. */
FB_API void fb_join_result_free(fb_ctx *ctx, fb_join_result *result);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* FB_JOIN_H */
