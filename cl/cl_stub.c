/* TEMPORARY stub: replaced by the OpenCL host module. */
#include "fb_internal.h"
void fb_cl_release(fb_ctx *ctx) { (void)ctx; }
