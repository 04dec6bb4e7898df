/* fb_pipeline_join_internal.h - the inner hash join of two tables run by the runtime's pipelines,
 * on a 32-bit key column per side, with either an aggregate sink fed directly by the join
 * (count(*) and sum(build.v + probe.v), no pairs materialized) or the (build row, probe row) pairs.
 * For fbench ("fbench run J1..J4") and the tests; the public runtime join (fb_query_add_join(),
 * fb_join_run(), fb_join.h) runs on it for inner joins of one 32-bit key. Symbols here are hidden.
 *
 * Two algorithms (fb_join_algorithm, fb_core.h):
 * - radix: pipeline "join-partition-build" (table source over the build side → a sink that
 *   radix-partitions (key, payload) tuples by hash bits, each stored straight to its partition's cursor
 *   with a prefetch for write (the kernel API's fb_radix_partition() uses write-combining buffers), into
 *   per-worker chunk lists on the worker's NUMA node) and "join-partition-probe" (the same for the
 *   probe side; both run at the same time), then "join-partitions" (a source handing out partitions,
 *   the largest probe partitions first, → a sink that builds each partition's cache-resident table and
 *   probes it, accumulating per worker);
 * - non-partitioned: "join-build" (table source → a sink inserting every build row into one shared
 *   chained table with atomic exchanges: the build runs on every worker at once) then "join-probe"
 *   (table source → a sink probing it with group prefetching).
 * FB_JOIN_ALGO_AUTO takes the shared table when it fits in the L2 cache hwloc reports, radix
 * otherwise (see plan_join for why not the last-level cache); partitions target l2/64 build rows.
 */
#ifndef FB_PIPELINE_JOIN_INTERNAL_H
#define FB_PIPELINE_JOIN_INTERNAL_H

#include "fb/fb_join.h"
#include "fb_internal.h"

/* What the join's sink produces. */
typedef enum fb_join_output {
    FB_JOIN_OUTPUT_COUNT_SUM = 0, /* count(*), sum(build.v + probe.v): the value columns are read */
    FB_JOIN_OUTPUT_PAIRS = 1      /* every (build row, probe row) pair: the value columns are ignored */
} fb_join_output;

/* The join's input. Keys: int32, uint32 or date32 (the same type on both sides), nulls never match.
 * Values (COUNT_SUM only): int32 without nulls. Row ids: positions in the sides (< 2^32). */
typedef struct fb_join_input {
    fb_column build_key, build_val;
    fb_column probe_key, probe_val;
    fb_join_output output;
    int64_t morsel_rows; /* rows per morsel of the table sources, 0 = FB_MORSEL_DEFAULT_ROWS */
    int radix_bits;      /* radix partition bits 0..14, or -1 = chosen from the caches */
} fb_join_input;

/* Blocks and results are the public ones (fb_join.h); a block of PAIRS output has marks NULL. */
typedef fb_join_block fb_join_pair_block;

/* Adds the join's pipelines to q (2 for the shared table, 3 for radix; the sides' buffers must stay
 * valid until the run ends). `result` is written by the last finalize; the run fails with
 * FB_ERR_OVERFLOW when the sum does not fit int64. Free PAIRS output with fb_join_result_free().
 * Returns FB_OK, FB_ERR_INVALID_ARG, FB_ERR_UNSUPPORTED_TYPE, FB_ERR_LENGTH_MISMATCH, FB_ERR_CAPACITY
 * (a side of 2^32 rows or more), FB_ERR_OUT_OF_MEMORY. */
fb_status fb_pipeline_add_join(fb_query *q, const fb_join_input *in, fb_join_result *result);

/* Creates a query with the join, runs it on ctx's workers and destroys it. result is zeroed first and
 * written on success only. */
fb_status fb_run_join(fb_ctx *ctx, const fb_join_input *in, fb_join_result *result);

#endif /* FB_PIPELINE_JOIN_INTERNAL_H */
