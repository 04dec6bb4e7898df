/* fbench_run.h - what a workload of `fbench run` provides (../shared/WORKLOADS.md). scan-agg lives in
 * fbench_run.c; the operators' workloads in fbench_wl_join.c, fbench_wl_agg.c and fbench_wl_sort.c, each
 * listing its workloads through one function. */
#ifndef FBENCH_RUN_H
#define FBENCH_RUN_H

#include "fbench.h"

typedef struct fbench_result {
    int64_t values[4];  /* the answer, compared with the reference */
    int n_values;
} fbench_result;

typedef struct fbench_workload {
    const char *name;
    const char *what;
    int64_t rows_at_scale_1;
    /* Makes the input (rows rows), returns NULL on failure. */
    void *(*generate)(int64_t rows, uint64_t seed);
    void (*destroy)(void *data);
    /* The answer by a plain loop, independent of fb. */
    void (*reference)(const void *data, fbench_result *out);
    /* One timed run; stats may be NULL. */
    fb_status (*run)(fb_ctx *ctx, const void *data, long morsel, fbench_result *out, fb_query *stats_query);
    /* Bytes the run must move at least (for the bound). With bound_copy 0 they are bytes read, held
     * against the read bandwidth; with 1 they count bytes read + written (a partitioning or sort pass
     * counts both), held against the copy bandwidth. */
    double (*bytes)(const void *data);
    /* Writes the input columns and the manifest's workload-specific part. */
    int (*dump)(const void *data, const char *dir, FILE *manifest);
    const char *result_names[4];
    int bound_copy;
    /* The same run on the context's OpenCL device (--device opencl:N), or NULL when the workload has
     * none; its data movement to and from the device is part of the time. */
    fb_status (*run_cl)(fb_ctx *ctx, const void *data, fbench_result *out);
    /* Optional, untimed, after each run: checks the output the run left in `data` (e.g. a sort's order
     * and an order-independent hash) and sets out's values. A run whose peer does no such check (DuckDB's
     * CREATE TABLE AS ... ORDER BY) should not pay for it inside the timing. NULL: run sets the values. */
    void (*finish)(fb_ctx *ctx, const void *data, fbench_result *out);
} fbench_workload;

/** \brief The join workloads (J1..J4). \param list set to the array. \return its length (0 = none yet). */
size_t fbench_wl_join(const fbench_workload **list);
/** \brief The aggregation workloads (A1..A4). \param list set to the array. \return its length. */
size_t fbench_wl_agg(const fbench_workload **list);
/** \brief The sort workloads (S1..S4). \param list set to the array. \return its length. */
size_t fbench_wl_sort(const fbench_workload **list);

#endif /* FBENCH_RUN_H */
