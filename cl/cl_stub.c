/* TEMPORARY stub: replaced by the OpenCL host module (cl/). Every call reports FB_ERR_NO_DEVICE. */
#include "fb_internal.h"

void fb_cl_release(fb_ctx *ctx) { (void)ctx; }
#define FB_CL_STUB return FB_ERROR(ctx, FB_ERR_NO_DEVICE, "OpenCL support is not written yet")
fb_status fb_cl_device_count(fb_ctx *ctx, int *count) { (void)count; FB_CL_STUB; }
fb_status fb_cl_device_get_info(fb_ctx *ctx, int index, fb_cl_device_info *info) { FB_CL_STUB; }
fb_status fb_cl_open(fb_ctx *ctx, int *index) { FB_CL_STUB; }
fb_status fb_cl_measure_transfer(fb_ctx *ctx, size_t bytes, int repeats, double *h2d_gbps, double *d2h_gbps) { FB_CL_STUB; }
fb_status fb_cl_hash_column(fb_ctx *ctx, const fb_column *key, uint64_t *hashes, int64_t capacity) { FB_CL_STUB; }
fb_status fb_cl_hash_combine(fb_ctx *ctx, const fb_column *key, uint64_t *hashes, int64_t capacity) { FB_CL_STUB; }
fb_status fb_cl_hash_columns(fb_ctx *ctx, const fb_column *keys, size_t n_keys, uint64_t *hashes, int64_t capacity) { FB_CL_STUB; }
fb_status fb_cl_select_cmp(fb_ctx *ctx, const fb_column *col, fb_cmp op, const void *value, const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t capacity, int64_t *n_out) { FB_CL_STUB; }
fb_status fb_cl_select_range(fb_ctx *ctx, const fb_column *col, const void *lo, const void *hi, const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t capacity, int64_t *n_out) { FB_CL_STUB; }
fb_status fb_cl_select_in(fb_ctx *ctx, const fb_column *col, const void *values, int64_t n_values, const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t capacity, int64_t *n_out) { FB_CL_STUB; }
fb_status fb_cl_compact(fb_ctx *ctx, const fb_column *col, const uint32_t *sel, int64_t n_sel, fb_column_out *out) { FB_CL_STUB; }
fb_status fb_cl_gather(fb_ctx *ctx, const fb_column *col, const int64_t *row_ids, int64_t n_ids, fb_column_out *out) { FB_CL_STUB; }
