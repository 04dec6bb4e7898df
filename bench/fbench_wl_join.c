/* fbench_wl_join.c - the J1..J4 workloads of `fbench run` (../shared/WORKLOADS.md). */
#include "fbench_run.h"

size_t fbench_wl_join(const fbench_workload **list)
{
    *list = NULL;
    return 0;
}
