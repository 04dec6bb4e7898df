/* fb_topology_internal.h - the context's hwloc topology for the other modules of libfb. */
#ifndef FB_TOPOLOGY_INTERNAL_H
#define FB_TOPOLOGY_INTERNAL_H

#include <hwloc.h>

#include "fb_internal.h"

/* The loaded hwloc topology of ctx (real or synthetic), never NULL after fb_ctx_create succeeded.
 * Read-only for callers. */
hwloc_topology_t fb_topology_hwloc(const fb_ctx *ctx);

/* 1 when the topology is synthetic (nothing can be bound, and I/O devices are absent). */
int fb_topology_is_synthetic(const fb_ctx *ctx);

#endif /* FB_TOPOLOGY_INTERNAL_H */
