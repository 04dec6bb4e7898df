/* fb_cl_sources.h - the OpenCL C sources of the cl folder, embedded at build time by cmake/fb_embed_cl.cmake. */
#ifndef FB_CL_SOURCES_H
#define FB_CL_SOURCES_H

#include <stddef.h>

typedef struct fb_cl_source {
    const char *name;   /* file name, e.g. "select.cl" */
    const char *text;   /* NUL-terminated source */
    size_t size;        /* bytes, without the NUL */
    const char *sha256; /* hex SHA-256 of the file */
} fb_cl_source;

/* In file-name order. */
extern const fb_cl_source fb_cl_sources[];
extern const size_t fb_cl_source_count;

#endif /* FB_CL_SOURCES_H */
