/* cl_program.c - building the kernel program from the embedded sources (cl/fb_cl_sources.h) once per
 * context and device, and the on-disk binary cache that makes later contexts skip the compiler.
 *
 * Cache: one file per key in $FB_CL_CACHE_DIR, else $XDG_CACHE_HOME/fb/cl, else $HOME/.cache/fb/cl
 * (created with mode 0700). The key is a text naming everything the binary depends on: fb's
 * version, device name, vendor, driver and device version, platform name and version, build
 * options and each source's SHA-256. The file name is a 64-bit hash of the key; the file itself holds
 * the full key, so a collision or a stale file is detected and rebuilt over:
 *
 *   "FBCLBIN\1" | key bytes (u64 LE) | binary bytes (u64 LE) | FNV-1a 64 of key+binary (u64 LE) | key | binary
 *
 * A file that is short, long, corrupt, for another key, or that the driver rejects is ignored and
 * rewritten. Files are written to a temporary name and renamed into place, so readers never see a
 * partial file. FB_CL_CACHE=0 turns the cache off; FB_CL_BUILD_OPTIONS adds build options. */
#include "fb_cl_internal.h"
#include "fb_cl_sources.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Options every build gets; FB_CL_BUILD_OPTIONS is appended. */
#define FB_CL_BASE_OPTIONS "-cl-std=CL1.2"

static const unsigned char cache_magic[8] = {'F', 'B', 'C', 'L', 'B', 'I', 'N', 1};
#define CACHE_HEADER 32u /* magic + three u64 */

/* ---- a growing string through the context's allocator ------------------------------------------ */

typedef struct fb_str {
    char *p;
    size_t len, cap;
} fb_str;

static void str_free(fb_ctx *ctx, fb_str *s)
{
    fb_free(ctx, s->p, s->cap);
    s->p = NULL;
    s->len = s->cap = 0;
}

static fb_status str_addf(fb_ctx *ctx, fb_str *s, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static fb_status str_addf(fb_ctx *ctx, fb_str *s, const char *where, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return fb_set_error(ctx, FB_ERR_INTERNAL, where, "vsnprintf failed");
    size_t need = s->len + (size_t)n + 1;
    if (need > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < need)
            cap *= 2;
        char *p = NULL;
        FB_FORWARD_IF_ERROR(fb_alloc(ctx, cap, 0, (void **)&p, where));
        if (s->p)
            memcpy(p, s->p, s->len + 1);
        fb_free(ctx, s->p, s->cap);
        s->p = p;
        s->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
    return FB_OK;
}

/* Appends a device (platform NULL) or platform string property. */
static fb_status str_add_info(fb_ctx *ctx, fb_str *s, const char *where, const char *label, cl_device_id device,
                              cl_platform_id platform, cl_uint param)
{
    size_t len = 0;
    cl_int err = platform ? clGetPlatformInfo(platform, param, 0, NULL, &len) : clGetDeviceInfo(device, param, 0, NULL, &len);
    if (err != CL_SUCCESS)
        return fb_cl_fail(ctx, where, platform ? "clGetPlatformInfo" : "clGetDeviceInfo", err);
    char *tmp = NULL;
    FB_FORWARD_IF_ERROR(fb_alloc(ctx, len + 1, 0, (void **)&tmp, where));
    err = platform ? clGetPlatformInfo(platform, param, len, tmp, NULL) : clGetDeviceInfo(device, param, len, tmp, NULL);
    fb_status st = FB_OK;
    if (err != CL_SUCCESS) {
        st = fb_cl_fail(ctx, where, platform ? "clGetPlatformInfo" : "clGetDeviceInfo", err);
    } else {
        tmp[len] = '\0';
        st = str_addf(ctx, s, where, "%s %s\n", label, tmp);
    }
    fb_free(ctx, tmp, len + 1);
    return st;
}

/* ---- hashing, little-endian integers ---------------------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001B3ull;
    }
    return h;
}
#define FNV_OFFSET 0xCBF29CE484222325ull

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- options, key, paths ------------------------------------------------------------------------ */

static fb_status build_options(fb_ctx *ctx, fb_str *opts, const char *where)
{
    const char *extra = getenv("FB_CL_BUILD_OPTIONS");
    if (extra && *extra)
        return str_addf(ctx, opts, where, "%s %s", FB_CL_BASE_OPTIONS, extra);
    return str_addf(ctx, opts, where, "%s", FB_CL_BASE_OPTIONS);
}

static fb_status cache_key(fb_ctx *ctx, const struct fb_cl_state *cl, const char *options, fb_str *key,
                           const char *where)
{
    FB_FORWARD_IF_ERROR(str_addf(ctx, key, where, "fb-cl-cache 1\nfb %s\n", fb_version_string()));
    FB_FORWARD_IF_ERROR(str_add_info(ctx, key, where, "device", cl->device, NULL, CL_DEVICE_NAME));
    FB_FORWARD_IF_ERROR(str_add_info(ctx, key, where, "vendor", cl->device, NULL, CL_DEVICE_VENDOR));
    FB_FORWARD_IF_ERROR(str_add_info(ctx, key, where, "driver", cl->device, NULL, CL_DRIVER_VERSION));
    FB_FORWARD_IF_ERROR(str_add_info(ctx, key, where, "device-version", cl->device, NULL, CL_DEVICE_VERSION));
    FB_FORWARD_IF_ERROR(str_add_info(ctx, key, where, "platform", NULL, cl->platform, CL_PLATFORM_NAME));
    FB_FORWARD_IF_ERROR(str_add_info(ctx, key, where, "platform-version", NULL, cl->platform, CL_PLATFORM_VERSION));
    FB_FORWARD_IF_ERROR(str_addf(ctx, key, where, "options %s\n", options));
    for (size_t i = 0; i < fb_cl_source_count; i++)
        FB_FORWARD_IF_ERROR(str_addf(ctx, key, where, "source %s %s\n", fb_cl_sources[i].name, fb_cl_sources[i].sha256));
    return FB_OK;
}

static int cache_enabled(void)
{
    const char *v = getenv("FB_CL_CACHE");
    return !(v && (strcmp(v, "0") == 0 || strcmp(v, "off") == 0 || strcmp(v, "no") == 0 || strcmp(v, "false") == 0));
}

/* mkdir -p with mode 0700 for the parts it creates; 0 when `dir` is a directory afterwards. */
static int make_dirs(char *dir)
{
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(dir, 0700);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -1;
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* The cache directory (created), or 0 when there is none. */
static int cache_dir(char *dir, size_t size)
{
    const char *env = getenv("FB_CL_CACHE_DIR");
    int n;
    if (env && *env) {
        n = snprintf(dir, size, "%s", env);
    } else if ((env = getenv("XDG_CACHE_HOME")) && *env) {
        n = snprintf(dir, size, "%s/fb/cl", env);
    } else if ((env = getenv("HOME")) && *env) {
        n = snprintf(dir, size, "%s/.cache/fb/cl", env);
    } else {
        return 0;
    }
    if (n <= 0 || (size_t)n >= size)
        return 0;
    return make_dirs(dir) == 0;
}

/* ---- building ------------------------------------------------------------------------------------------ */

fb_status fb_cl_build_sources(fb_ctx *ctx, cl_context context, cl_device_id device, cl_uint count,
                              const char **sources, const size_t *sizes, const char *options, cl_program *out,
                              const char *where)
{
    *out = NULL;
    cl_int err = CL_SUCCESS;
    cl_program prog = clCreateProgramWithSource(context, count, sources, sizes, &err);
    if (err != CL_SUCCESS || !prog) {
        if (prog)
            clReleaseProgram(prog);
        return fb_cl_fail(ctx, where, "clCreateProgramWithSource", err);
    }
    err = clBuildProgram(prog, 1, &device, options, NULL, NULL);
    if (err == CL_SUCCESS) {
        *out = prog;
        return FB_OK;
    }
    fb_status st;
    if (err == CL_BUILD_PROGRAM_FAILURE || err == CL_INVALID_BUILD_OPTIONS || err == CL_COMPILER_NOT_AVAILABLE) {
        size_t len = 0;
        char *log = NULL;
        if (clGetProgramBuildInfo(prog, device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) == CL_SUCCESS &&
            fb_alloc(ctx, len + 1, 0, (void **)&log, where) == FB_OK) {
            if (clGetProgramBuildInfo(prog, device, CL_PROGRAM_BUILD_LOG, len, log, NULL) != CL_SUCCESS)
                len = 0;
            log[len] = '\0';
        }
        char name[256] = "?";
        clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof name - 1, name, NULL);
        name[sizeof name - 1] = '\0';
        st = fb_set_error(ctx, FB_ERR_CL_BUILD, where, "clBuildProgram failed: %d (%s) on '%s' with options '%s'; build log:\n%s",
                          (int)err, fb_cl_error_name(err), name, options, log && log[0] ? log : "(empty)");
        fb_free(ctx, log, len + 1);
    } else {
        st = fb_cl_fail(ctx, where, "clBuildProgram", err);
    }
    clReleaseProgram(prog);
    return st;
}

static fb_status build_embedded(fb_ctx *ctx, struct fb_cl_state *cl, const char *options, const char *where)
{
    const char *texts[64];
    size_t sizes[64];
    if (fb_cl_source_count == 0 || fb_cl_source_count > 64)
        return fb_set_error(ctx, FB_ERR_INTERNAL, where, "%zu embedded OpenCL sources (expected 1..64)",
                            fb_cl_source_count);
    for (size_t i = 0; i < fb_cl_source_count; i++) {
        texts[i] = fb_cl_sources[i].text;
        sizes[i] = fb_cl_sources[i].size;
    }
    return fb_cl_build_sources(ctx, cl->context, cl->device, (cl_uint)fb_cl_source_count, texts, sizes, options,
                               &cl->program, where);
}

/* ---- the cache file ------------------------------------------------------------------------------------ */

/* Reads the whole file into memory from the context; 0 on success. */
static int read_file(fb_ctx *ctx, const char *path, unsigned char **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    unsigned char *buf = NULL;
    size_t n = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < (off_t)CACHE_HEADER ||
        (uint64_t)st.st_size > ((uint64_t)1 << 32))
        goto fail;
    n = (size_t)st.st_size;
    if (fb_alloc(ctx, n, 0, (void **)&buf, "fb_cl_cache") != FB_OK)
        goto fail;
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto fail;
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *size = n;
    return 0;
fail:
    fb_free(ctx, buf, n);
    close(fd);
    return -1;
}

/* Loads the program from cl->cache_file when the file is intact and for `key`; 1 on success. */
static int cache_load(fb_ctx *ctx, struct fb_cl_state *cl, const fb_str *key, const char *options)
{
    unsigned char *file = NULL;
    size_t size = 0;
    if (read_file(ctx, cl->cache_file, &file, &size) != 0)
        return 0;
    int ok = 0;
    uint64_t key_len = get_u64(file + 8), bin_len = get_u64(file + 16), sum = get_u64(file + 24);
    if (memcmp(file, cache_magic, sizeof cache_magic) != 0 || key_len != key->len || bin_len == 0 ||
        bin_len > size || key_len > size - CACHE_HEADER - bin_len || CACHE_HEADER + key_len + bin_len != size)
        goto done;
    const unsigned char *k = file + CACHE_HEADER, *bin = k + key_len;
    if (memcmp(k, key->p, key->len) != 0 || fnv1a(FNV_OFFSET, k, size - CACHE_HEADER) != sum)
        goto done;
    size_t len = (size_t)bin_len;
    cl_int bin_status = CL_SUCCESS, err = CL_SUCCESS;
    cl_program prog = clCreateProgramWithBinary(cl->context, 1, &cl->device, &len, &bin, &bin_status, &err);
    if (err != CL_SUCCESS || bin_status != CL_SUCCESS || !prog) {
        if (prog)
            clReleaseProgram(prog);
        goto done;
    }
    if (clBuildProgram(prog, 1, &cl->device, options, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(prog);
        goto done;
    }
    cl->program = prog;
    ok = 1;
done:
    fb_free(ctx, file, size);
    return ok;
}

static int write_all(int fd, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes cl->program's binary to cl->cache_file (temporary file + rename). A cache that cannot be
 * written is not an error: the next context builds again. */
static void cache_store(fb_ctx *ctx, struct fb_cl_state *cl, const fb_str *key)
{
    size_t bin_len = 0;
    cl_uint n_dev = 0;
    if (clGetProgramInfo(cl->program, CL_PROGRAM_NUM_DEVICES, sizeof n_dev, &n_dev, NULL) != CL_SUCCESS || n_dev != 1 ||
        clGetProgramInfo(cl->program, CL_PROGRAM_BINARY_SIZES, sizeof bin_len, &bin_len, NULL) != CL_SUCCESS ||
        bin_len == 0)
        return;
    size_t total = CACHE_HEADER + key->len + bin_len;
    unsigned char *file = NULL;
    if (fb_alloc(ctx, total, 0, (void **)&file, "fb_cl_cache") != FB_OK)
        return;
    unsigned char *bin = file + CACHE_HEADER + key->len;
    char tmp[sizeof cl->cache_file + 16];
    int fd = -1;
    if (clGetProgramInfo(cl->program, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) != CL_SUCCESS)
        goto done;
    memcpy(file, cache_magic, sizeof cache_magic);
    put_u64(file + 8, key->len);
    put_u64(file + 16, bin_len);
    memcpy(file + CACHE_HEADER, key->p, key->len);
    put_u64(file + 24, fnv1a(FNV_OFFSET, file + CACHE_HEADER, key->len + bin_len));
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.XXXXXX", cl->cache_file) >= sizeof tmp)
        goto done;
    fd = mkstemp(tmp);
    if (fd < 0)
        goto done;
    int rc = write_all(fd, file, total);
    rc |= close(fd);
    if (rc != 0 || rename(tmp, cl->cache_file) != 0)
        unlink(tmp);
done:
    fb_free(ctx, file, total);
}

/* ---- getting the program -------------------------------------------------------------------------- */

static fb_status program_obtain(fb_ctx *ctx, struct fb_cl_state *cl, int may_load, const char *where)
{
    fb_str options = {0}, key = {0};
    fb_status st = build_options(ctx, &options, where);
    char dir[sizeof cl->cache_file - 64];
    int use_cache = st == FB_OK && cache_enabled() && cache_dir(dir, sizeof dir);
    cl->cache_file[0] = '\0';
    if (use_cache) {
        st = cache_key(ctx, cl, options.p, &key, where);
        if (st != FB_OK)
            goto done;
        snprintf(cl->cache_file, sizeof cl->cache_file, "%s/fb-%016llx.clbin", dir,
                 (unsigned long long)fnv1a(FNV_OFFSET, key.p, key.len));
        if (may_load && cache_load(ctx, cl, &key, options.p)) {
            cl->origin = FB_CL_PROGRAM_CACHED;
            goto done;
        }
    }
    if (st == FB_OK)
        st = build_embedded(ctx, cl, options.p, where);
    if (st == FB_OK) {
        cl->origin = FB_CL_PROGRAM_BUILT;
        if (use_cache)
            cache_store(ctx, cl, &key);
    }
done:
    str_free(ctx, &key);
    str_free(ctx, &options);
    return st;
}

fb_status fb_cl_program_get(fb_ctx *ctx, struct fb_cl_state *cl, const char *where)
{
    return program_obtain(ctx, cl, 1, where);
}

fb_status fb_cl_program_rebuild(fb_ctx *ctx, struct fb_cl_state *cl, const char *where)
{
    if (cl->program)
        clReleaseProgram(cl->program);
    cl->program = NULL;
    cl->origin = FB_CL_PROGRAM_NONE;
    return program_obtain(ctx, cl, 0, where);
}

fb_status fb_cl_test_build(fb_ctx *ctx, const char *source)
{
    FB_RETURN_ERROR_IF(!ctx || !source, ctx, FB_ERR_INVALID_ARG, "ctx and source must not be NULL");
    pthread_mutex_lock(&ctx->cl_lock);
    fb_status st = fb_cl_acquire(ctx, __func__);
    if (st == FB_OK) {
        fb_str options = {0};
        st = build_options(ctx, &options, __func__);
        cl_program prog = NULL;
        size_t len = strlen(source);
        if (st == FB_OK)
            st = fb_cl_build_sources(ctx, ctx->cl->context, ctx->cl->device, 1, &source, &len, options.p, &prog,
                                     __func__);
        if (prog)
            clReleaseProgram(prog);
        str_free(ctx, &options);
    }
    pthread_mutex_unlock(&ctx->cl_lock);
    return st;
}
