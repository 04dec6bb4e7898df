/* fb_plan_cost_internal.h - what the cost model's calibration (plan_cost.c) needs from the predictions
 * (plan.c). Hidden symbols. */
#ifndef FB_PLAN_COST_INTERNAL_H
#define FB_PLAN_COST_INTERNAL_H

#include "fb/fb_plan.h"

/* The seconds of copies and device calls (launches) that fb_plan_predict() with FB_PLACEMENT_GPU charges
 * for the plan under root, summed over its pipelines, with cal's opencl bandwidths and launch_s: what the
 * calibration takes off a measured gpu run to leave the per-row device work. */
fb_status fb_plan_gpu_extra(fb_plan *plan, fb_plan_node root, const fb_plan_calibration *cal, double *seconds);

/* The key range of the perfect hash the CPU's probe_row_s is measured with, for a calibration of `rows`
 * rows (rows / 8 within 128..131072), and that of probe_big_row_s (2^18). */
double fb_plan_cal_probe_range(int64_t rows);
double fb_plan_cal_big_range(void);

/* Rows of the device morsels gpu and hybrid plans run on this context (FB_PLAN_DEVICE_MORSEL, else from the
 * device memory budget): what fb_plan_calibrate_device() measures at by default. */
int64_t fb_plan_device_morsel(fb_ctx *ctx);

/* Opens the context's OpenCL device (fb_cl_open()): FB_OK when gpu and hybrid placement have one. */
fb_status fb_plan_cost_device(fb_ctx *ctx);

#endif /* FB_PLAN_COST_INTERNAL_H */
