/* fb_sched_numa_internal.h - where the runtime's workers and memory go on the machine: worker
 * placement over cores and NUMA nodes, thread pinning, and where a memory range lies. The public
 * half (fb_numa_alloc/fb_numa_free) is in fb_runtime.h. Symbols here are hidden. */
#ifndef FB_SCHED_NUMA_INTERNAL_H
#define FB_SCHED_NUMA_INTERNAL_H

#include "fb_internal.h"

/* NUMA nodes of the context's topology (≥ 1). */
int fb_numa_nodes(const fb_ctx *ctx);

/* Places `workers` workers: cores[i] and nodes[i] for worker i. Cores are taken round-robin over
 * the NUMA nodes (node 0's first core, node 1's first core, ..., node 0's second core, ...), so
 * that fewer workers than cores still spread over every node; past the last core the order repeats. */
fb_status fb_numa_place_workers(fb_ctx *ctx, int workers, int *cores, int *nodes);

/* Pins the calling thread to the CPUs of `core`. Returns 1 when pinned, 0 when not (a synthetic
 * topology, or the system refused). */
int fb_numa_bind_thread(const fb_ctx *ctx, int core);

/* The NUMA node (logical index) that holds the first page of [addr, addr + len): 0 on a machine
 * with one node; -1 on a synthetic topology, or when it cannot be told (pages not touched yet). */
int fb_numa_node_of_memory(const fb_ctx *ctx, const void *addr, size_t len);

#endif /* FB_SCHED_NUMA_INTERNAL_H */
