/* error.c - status names and the per-thread last-error message. */
#include "fb_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[FB_STATUS_COUNT] = {
    [FB_OK] = "FB_OK",
    [FB_ERR_INVALID_ARG] = "FB_ERR_INVALID_ARG",
    [FB_ERR_LENGTH_MISMATCH] = "FB_ERR_LENGTH_MISMATCH",
    [FB_ERR_UNSUPPORTED_TYPE] = "FB_ERR_UNSUPPORTED_TYPE",
    [FB_ERR_OUT_OF_MEMORY] = "FB_ERR_OUT_OF_MEMORY",
    [FB_ERR_UNSUPPORTED_ISA] = "FB_ERR_UNSUPPORTED_ISA",
    [FB_ERR_CAPACITY] = "FB_ERR_CAPACITY",
    [FB_ERR_OUT_OF_RANGE] = "FB_ERR_OUT_OF_RANGE",
    [FB_ERR_NO_DEVICE] = "FB_ERR_NO_DEVICE",
    [FB_ERR_OPENCL] = "FB_ERR_OPENCL",
    [FB_ERR_CL_BUILD] = "FB_ERR_CL_BUILD",
    [FB_ERR_DEVICE_MEMORY] = "FB_ERR_DEVICE_MEMORY",
    [FB_ERR_TOPOLOGY] = "FB_ERR_TOPOLOGY",
    [FB_ERR_IO] = "FB_ERR_IO",
    [FB_ERR_OVERFLOW] = "FB_ERR_OVERFLOW",
    [FB_ERR_CANCELLED] = "FB_ERR_CANCELLED",
    [FB_ERR_INTERNAL] = "FB_ERR_INTERNAL",
};

const char *fb_status_name(fb_status status)
{
    if ((unsigned)status >= FB_STATUS_COUNT || !status_names[status])
        return "FB_ERR_UNKNOWN";
    return status_names[status];
}

/* The message is per thread, tagged with the context it came from, so that threads sharing a
 * context never see each other's errors and no lock is needed. OpenCL build logs make messages
 * long: keep room for them. */
#define FB_ERROR_MESSAGE_MAX 16384
static _Thread_local struct {
    const fb_ctx *ctx;
    char message[FB_ERROR_MESSAGE_MAX];
} last_error;

fb_status fb_set_error(const fb_ctx *ctx, fb_status st, const char *where, const char *fmt, ...)
{
    /* Formatted into a scratch buffer first: callers may pass fb_last_error() itself as an argument
     * (adding context to an inner stage's message), and vsnprintf into the buffer it reads is undefined. */
    static _Thread_local char scratch[FB_ERROR_MESSAGE_MAX];
    int n = snprintf(scratch, sizeof scratch, "%s: %s: ", where, fb_status_name(st));
    if (n < 0)
        n = 0;
    if ((size_t)n < sizeof scratch) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(scratch + n, sizeof scratch - (size_t)n, fmt, ap);
        va_end(ap);
    }
    memcpy(last_error.message, scratch, strnlen(scratch, sizeof scratch - 1) + 1);
    last_error.message[sizeof last_error.message - 1] = '\0';
    last_error.ctx = ctx;
    return st;
}

void fb_clear_error(const fb_ctx *ctx)
{
    if (last_error.ctx == ctx)
        last_error.message[0] = '\0';
}

const char *fb_last_error(const fb_ctx *ctx)
{
    if (ctx && last_error.ctx != ctx)
        return "";
    return last_error.message;
}
