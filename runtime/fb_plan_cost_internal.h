/* fb_plan_cost_internal.h - what the cost model's calibration (plan_cost.c) needs from the predictions
 * (plan.c). Hidden symbols. */
#ifndef FB_PLAN_COST_INTERNAL_H
#define FB_PLAN_COST_INTERNAL_H

#include "fb/fb_plan.h"

/* The seconds of copies and device calls (launches) that fb_plan_predict() with FB_PLACEMENT_GPU charges
 * for the plan under root, summed over its pipelines, with cal's opencl bandwidths and launch_s: what the
 * calibration takes off a measured gpu run to leave the per-row device work. */
fb_status fb_plan_gpu_extra(fb_plan *plan, fb_plan_node root, const fb_plan_calibration *cal, double *seconds);

/* Opens the context's OpenCL device (fb_cl_open()): FB_OK when gpu and hybrid placement have one. */
fb_status fb_plan_cost_device(fb_ctx *ctx);

#endif /* FB_PLAN_COST_INTERNAL_H */
