/* TEMPORARY stub: replaced by the hwloc topology module. */
#include "fb_topology_internal.h"
#include <string.h>
fb_status fb_topology_load(fb_ctx *ctx, const char *synthetic) { (void)ctx; (void)synthetic; return FB_OK; }
void fb_topology_free(fb_ctx *ctx) { (void)ctx; }
fb_status fb_topology_get_info(fb_ctx *ctx, fb_topology_info *info) { memset(info, 0, sizeof *info); info->cores = 2; return FB_OK; }
hwloc_topology_t fb_topology_hwloc(const fb_ctx *ctx) { (void)ctx; return NULL; }
int fb_topology_is_synthetic(const fb_ctx *ctx) { (void)ctx; return 0; }
