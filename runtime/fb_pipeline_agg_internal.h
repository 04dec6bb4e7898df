/* fb_pipeline_agg_internal.h - what the runtime aggregation (pipeline_agg.c, fb_query_add_agg())
 * tells the tests and fbench beyond the public API: which paths the rows took. Symbols here are
 * hidden. */
#ifndef FB_PIPELINE_AGG_INTERNAL_H
#define FB_PIPELINE_AGG_INTERNAL_H

#include "fb/fb_agg.h"

/* Rows (or, for the merge, records) per path of a finished run, summed over the workers. */
typedef struct fb_agg_path_counts {
    int64_t direct_rows;     /* aggregated in a worker's direct-indexed table */
    int64_t preagg_rows;     /* aggregated in a worker's pre-aggregation hash table */
    int64_t passed_rows;     /* sent straight to the partitions */
    int64_t generic_rows;    /* the fallback: one fb_agg_table per worker */
    int64_t spilled_records; /* partial aggregates written to the partitions (passed rows included) */
    int64_t flushes;         /* pre-aggregation tables emptied into the partitions */
    int64_t compact_rows;    /* of passed_rows: sent as compact rows (key and value, 8 or 16 bytes) */
} fb_agg_path_counts;

/* Runs of at most this many rows merge in tables of the narrow record layout (31-bit counts, one-word
 * sums of 32-bit values), larger ones in the wide layout (64-bit counts, 128-bit sums). Tests lower it
 * to check the wide layout on small inputs; nothing else writes it. */
extern int64_t fb_agg_narrow_max_rows;

/* The counts of g's run (all zero for NULL or an unfinished result). */
void fb_agg_groups_paths(const fb_agg_groups *g, fb_agg_path_counts *out);

#endif /* FB_PIPELINE_AGG_INTERNAL_H */
