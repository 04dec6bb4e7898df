/* fb_topology_internal.h - the context's hwloc topology for the other modules of libfb (workers,
 * NUMA memory, OpenCL devices) and for fbench. */
#ifndef FB_TOPOLOGY_INTERNAL_H
#define FB_TOPOLOGY_INTERNAL_H

#include <hwloc.h>

#include "fb_internal.h"

struct _cl_device_id; /* cl_device_id without pulling the OpenCL headers into every module */

/* The loaded hwloc topology of ctx (real or synthetic), never NULL after fb_ctx_create succeeded.
 * Read-only for callers: the real machine's topology is shared by every context of the process
 * (hwloc allows concurrent reads), so it must never be modified, restricted or destroyed. */
hwloc_topology_t fb_topology_hwloc(const fb_ctx *ctx);

/* 1 when the topology is synthetic (nothing can be bound, and I/O devices are absent). */
int fb_topology_is_synthetic(const fb_ctx *ctx);

/* The hwloc object of core `core` (logical index 0..cores-1; a PU on machines where hwloc finds
 * no cores), or NULL when core is out of range. Its cpuset is what a worker binds to. */
hwloc_obj_t fb_topology_core_obj(const fb_ctx *ctx, int core);

/* The NUMA node (logical index) an OpenCL device is attached to, found through <hwloc/opencl.h>
 * (PCI locality in sysfs): -1 when it cannot be told (synthetic topology, a device local to
 * several nodes, such as a CPU device on a multi-node machine). */
int fb_topology_cl_device_numa_node(const fb_ctx *ctx, struct _cl_device_id *device);

#endif /* FB_TOPOLOGY_INTERNAL_H */
