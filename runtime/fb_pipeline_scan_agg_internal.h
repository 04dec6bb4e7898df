/* fb_pipeline_scan_agg_internal.h - the scan → filter → aggregate pipeline over one int64 column
 * (SELECT count(x), sum(x) FROM t WHERE x BETWEEN lo AND hi), built from the runtime's table source,
 * its range filter and a count/sum sink. For fbench ("fbench run scan-agg") and the tests; not part
 * of the public API. Symbols here are hidden. */
#ifndef FB_PIPELINE_SCAN_AGG_INTERNAL_H
#define FB_PIPELINE_SCAN_AGG_INTERNAL_H

#include "fb_internal.h"

/* The answer of the pipeline: rows with lo <= x <= hi that are not null, and their sum. */
typedef struct fb_scan_sum_result {
    int64_t count;
    int64_t sum; /* 0 when count is 0 (SQL's NULL: tell it by count) */
} fb_scan_sum_result;

/* Adds the pipeline "scan-filter-sum" over `col` (int64; its buffers must stay valid until the run
 * ends) to q: table source with morsels of `morsel_rows` rows (0 = FB_MORSEL_DEFAULT_ROWS), the
 * filter fb_select_range(lo, hi) per morsel on the worker's thread, and a sink summing into per-worker
 * partial sums that are combined exactly (128-bit) into the global one, so that the result never
 * depends on the order in which workers met the values. `result` is written by the finalize; the run
 * fails with FB_ERR_OVERFLOW when the exact sum does not fit int64.
 * Returns FB_OK, FB_ERR_INVALID_ARG, FB_ERR_UNSUPPORTED_TYPE (col is not int64), FB_ERR_OUT_OF_MEMORY. */
fb_status fb_pipeline_add_scan_filter_sum(fb_query *q, const fb_column *col, int64_t lo, int64_t hi,
                                          int64_t morsel_rows, fb_scan_sum_result *result, fb_pipeline **out);

/* The same in one call: creates a query with that pipeline, runs it on ctx's workers, destroys it.
 * count and sum are written only on success; stats (may be NULL) receives the whole query's counters
 * (fb_query_stats(q, -1, -1)) on success and on failure after the run started.
 * Returns FB_OK, the errors above, those of fb_query_run() (FB_ERR_OVERFLOW among them). */
fb_status fb_run_scan_filter_sum(fb_ctx *ctx, const fb_column *col, int64_t lo, int64_t hi, int64_t morsel_rows,
                                 int64_t *count, int64_t *sum, fb_stats *stats);

#endif /* FB_PIPELINE_SCAN_AGG_INTERNAL_H */
