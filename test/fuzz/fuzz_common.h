/* fuzz_common.h - what the libFuzzer targets of test/fuzz share: a reader that turns the fuzzer's bytes
 * into choices (never failing: an exhausted input reads as zeros), columns decoded from those bytes
 * (type, length, Arrow offset, null mask, values with every edge: INT_MIN/MAX, NaN of any payload and
 * sign, -0.0, ±inf, denormals, small pools for duplicates), one context per CPU variant this machine
 * runs (as test/fb_test.h's fbt_open_variants), SQL value order for the references, and FZ_CHECK, which
 * prints what differed and aborts so that libFuzzer saves the input. */
#ifndef FB_FUZZ_COMMON_H
#define FB_FUZZ_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb/fb.h"

/* ---- failure ------------------------------------------------------------------------------------- */

#define FZ_CHECK(cond, ...)                                                                           \
    do {                                                                                              \
        if (!(cond)) {                                                                                \
            fprintf(stderr, "\nfuzz check failed at %s:%d: %s\n  ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                                             \
            fprintf(stderr, "\n");                                                                    \
            abort();                                                                                  \
        }                                                                                             \
    } while (0)

/* A status must be FB_OK. */
#define FZ_OK(ctx, call)                                                                              \
    do {                                                                                              \
        fb_status st_ = (call);                                                                       \
        FZ_CHECK(st_ == FB_OK, "%s: %s (%s) [isa %s]", #call, fb_status_name(st_), fb_last_error(ctx),  \
                 fb_isa_name(fb_ctx_isa(ctx)));                                                       \
    } while (0)

/* ---- the byte reader ------------------------------------------------------------------------------ */

typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

static inline uint8_t fz_u8(fz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static inline uint64_t fz_bytes(fz_in *in, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)fz_u8(in) << (8 * i);
    return v;
}

/* A number in 0..n-1 (n ≥ 1) from one byte (two when n > 256). */
static inline uint32_t fz_pick(fz_in *in, uint32_t n)
{
    if (n <= 1)
        return 0;
    return (uint32_t)(n <= 256 ? fz_u8(in) % n : fz_bytes(in, 2) % n);
}

/* ---- types and values ----------------------------------------------------------------------------- */

static const fb_type fz_all_types[] = {FB_TYPE_INT8,   FB_TYPE_INT16,   FB_TYPE_INT32,   FB_TYPE_INT64,
                                       FB_TYPE_UINT8,  FB_TYPE_UINT16,  FB_TYPE_UINT32,  FB_TYPE_UINT64,
                                       FB_TYPE_FLOAT32, FB_TYPE_FLOAT64, FB_TYPE_DATE32};
#define FZ_N_TYPES 11

static inline int fz_is_float(fb_type t) { return t == FB_TYPE_FLOAT32 || t == FB_TYPE_FLOAT64; }
static inline int fz_is_signed(fb_type t)
{
    return t == FB_TYPE_INT8 || t == FB_TYPE_INT16 || t == FB_TYPE_INT32 || t == FB_TYPE_INT64 || t == FB_TYPE_DATE32;
}

/* One value of type t written at out: the selector byte picks an edge, a small-pool value (duplicates)
 * or raw bytes. `pool` > 0 limits the value to that many small distinct values (for join and group keys). */
static inline void fz_value(fz_in *in, fb_type t, int pool, void *out)
{
    size_t w = fb_type_width(t);
    uint8_t sel = fz_u8(in);
    if (pool > 0) {
        int64_t k = (int64_t)(sel % (unsigned)pool) - (fz_is_signed(t) || fz_is_float(t) ? pool / 2 : 0);
        if (t == FB_TYPE_FLOAT32) {
            float f = (float)k;
            if (sel >= 250)
                f = NAN;
            memcpy(out, &f, 4);
        } else if (t == FB_TYPE_FLOAT64) {
            double d = (double)k;
            if (sel >= 250)
                d = k == 0 ? -0.0 : NAN;
            memcpy(out, &d, 8);
        } else {
            memcpy(out, &k, w);
        }
        return;
    }
    if (t == FB_TYPE_FLOAT32) {
        static const float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, 1.0f, -1.0f, 0.5f, 1e-42f, -1e-42f,
                                   3.4028235e38f, -3.4028235e38f, 2147483648.0f, -2147483648.0f, 2.5f, -2.5f, 1.1754944e-38f};
        float f;
        if (sel < 32) {
            uint32_t bits = 0x7F800001u | (uint32_t)(fz_bytes(in, 4) & 0x807FFFFFu); /* NaN: any sign and payload */
            memcpy(&f, &bits, 4);
        } else if (sel < 96) {
            f = sp[sel % 16];
        } else if (sel < 192) {
            f = (float)((int)(sel % 17) - 8) * 0.5f;
        } else {
            uint32_t bits = (uint32_t)fz_bytes(in, 4);
            memcpy(&f, &bits, 4);
        }
        memcpy(out, &f, 4);
        return;
    }
    if (t == FB_TYPE_FLOAT64) {
        static const double sp[] = {0.0, -0.0, INFINITY, -INFINITY, 1.0, -1.0, 0.5, 5e-324, -5e-324, 1.7976931348623157e308,
                                    -1.7976931348623157e308, 9223372036854775808.0, -9223372036854775808.0, 2.5, -2.5,
                                    3.4028235677973366e38};
        double d;
        if (sel < 32) {
            uint64_t bits = 0x7FF0000000000001ull | (fz_bytes(in, 8) & 0x800FFFFFFFFFFFFFull);
            memcpy(&d, &bits, 8);
        } else if (sel < 96) {
            d = sp[sel % 16];
        } else if (sel < 192) {
            d = (double)((int)(sel % 17) - 8) * 0.5;
        } else {
            uint64_t bits = fz_bytes(in, 8);
            memcpy(&d, &bits, 8);
        }
        memcpy(out, &d, 8);
        return;
    }
    uint64_t top = 1ull << (w * 8 - 1), v;
    int sg = fz_is_signed(t);
    switch (sel % 8) {
    case 0: v = sg ? top : 0; break;                       /* min */
    case 1: v = sg ? top - 1 : top | (top - 1); break;      /* max */
    case 2: v = sg ? top + 1 : top - 1; break;             /* min + 1 / middle */
    case 3: v = (uint64_t)((int64_t)(sel >> 3) - 16); break; /* small values, negatives */
    case 4: v = (uint64_t)(sel >> 3); break;
    default: v = fz_bytes(in, (int)w); break;
    }
    memcpy(out, &v, w);
}

/* Widened views of a value (little-endian bytes at p of type t). */
static inline int64_t fz_get_i64(fb_type t, const void *p)
{
    switch (t) {
    case FB_TYPE_INT8: { int8_t v; memcpy(&v, p, 1); return v; }
    case FB_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case FB_TYPE_INT32: case FB_TYPE_DATE32: { int32_t v; memcpy(&v, p, 4); return v; }
    case FB_TYPE_INT64: { int64_t v; memcpy(&v, p, 8); return v; }
    case FB_TYPE_UINT8: { uint8_t v; memcpy(&v, p, 1); return v; }
    case FB_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case FB_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case FB_TYPE_UINT64: { uint64_t v; memcpy(&v, p, 8); return (int64_t)v; }
    default: return 0;
    }
}

static inline double fz_get_f64(fb_type t, const void *p)
{
    if (t == FB_TYPE_FLOAT32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    if (t == FB_TYPE_FLOAT64) {
        double d;
        memcpy(&d, p, 8);
        return d;
    }
    if (t == FB_TYPE_UINT64)
        return (double)(uint64_t)fz_get_i64(t, p);
    return (double)fz_get_i64(t, p);
}

/* SQL order of two non-null values of type t: -1, 0, 1 (floats: -0.0 = 0.0, NaN = NaN > everything). */
static inline int fz_cmp_values(fb_type t, const void *a, const void *b)
{
    if (fz_is_float(t)) {
        double x = fz_get_f64(t, a), y = fz_get_f64(t, b);
        int nx = isnan(x), ny = isnan(y);
        if (nx || ny)
            return nx - ny;
        return (x > y) - (x < y);
    }
    if (t == FB_TYPE_UINT64) {
        uint64_t x = (uint64_t)fz_get_i64(t, a), y = (uint64_t)fz_get_i64(t, b);
        return (x > y) - (x < y);
    }
    int64_t x = fz_get_i64(t, a), y = fz_get_i64(t, b);
    return (x > y) - (x < y);
}

/* ---- columns -------------------------------------------------------------------------------------- */

/* A column decoded from the input: exact-size buffers (ASan sees every read past them), an Arrow offset. */
typedef struct fz_col {
    fb_column col;
    void *data;
    uint8_t *valid;
} fz_col;

static inline int fz_valid(const fb_column *c, int64_t i) { return fb_column_is_valid(c, i); }
static inline const void *fz_at(const fb_column *c, int64_t i)
{
    return (const uint8_t *)c->data + (size_t)(c->offset + i) * fb_type_width(c->type);
}

/* Decodes a column of `len` rows of type t: options byte (offset 0..3, null mode, value pool), then the
 * validity bits and values. nullable = 0 never makes a validity bitmap. */
static inline void fz_column(fz_in *in, fb_type t, int64_t len, int nullable, int pool, fz_col *out)
{
    uint8_t opt = fz_u8(in);
    int64_t off = opt & 3;
    int null_mode = nullable ? (opt >> 2) & 3 : 0; /* 0 none, 1 bitmap all valid, 2 input bits, 3 all null */
    if (pool < 0) /* the column chooses: a pool of 1..16 values (duplicates) or any value */
        pool = (opt & 0x80) ? 0 : 1 + ((opt >> 4) & 7) * 2;
    size_t w = fb_type_width(t);
    size_t rows = (size_t)(off + len);
    out->data = malloc(rows * w + 1);
    out->valid = NULL;
    for (int64_t i = 0; i < off; i++)
        memset((uint8_t *)out->data + (size_t)i * w, 0xA5, w);
    for (int64_t i = 0; i < len; i++)
        fz_value(in, t, pool, (uint8_t *)out->data + (size_t)(off + i) * w);
    if (null_mode) {
        size_t nb = (rows + 7) / 8;
        out->valid = malloc(nb ? nb : 1);
        for (size_t b = 0; b < nb; b++)
            out->valid[b] = null_mode == 1 ? 0xFF : null_mode == 3 ? 0 : fz_u8(in);
    }
    out->col.type = t;
    out->col.length = len;
    out->col.offset = off;
    out->col.data = out->data;
    out->col.validity = out->valid;
}

static inline void fz_col_free(fz_col *c)
{
    free(c->data);
    free(c->valid);
    memset(c, 0, sizeof *c);
}

/* ---- contexts: one per CPU variant -------------------------------------------------------------- */

static fb_ctx *fz_ctx[FB_ISA_COUNT];
static int fz_n_ctx;

/* Opens (once) one context per CPU variant this machine runs, scalar first, with `threads` workers and
 * no OpenCL device. */
static inline int fz_open_variants(int threads)
{
    if (fz_n_ctx)
        return fz_n_ctx;
    for (int i = FB_ISA_SCALAR; i < FB_ISA_COUNT; i++) {
        if (!fb_isa_supported((fb_isa)i))
            continue;
        fb_options *o = NULL;
        fb_status st = fb_options_create(&o);
        if (st == FB_OK)
            st = fb_options_set_isa(o, (fb_isa)i);
        if (st == FB_OK)
            st = fb_options_set_threads(o, threads);
        if (st == FB_OK)
            st = fb_options_set_cl_device(o, FB_CL_DEVICE_NONE);
        if (st == FB_OK)
            st = fb_ctx_create(o, &fz_ctx[fz_n_ctx]);
        fb_options_destroy(o);
        FZ_CHECK(st == FB_OK, "context for %s: %s", fb_isa_name((fb_isa)i), fb_last_error(NULL));
        fz_n_ctx++;
    }
    return fz_n_ctx;
}

/* Every byte of fb's memory given back after an input (its allocator counts). */
#define FZ_NO_CTX_LEAK(ctx, before)                                                                   \
    FZ_CHECK(fb_ctx_memory_used(ctx) == (before), "context memory %zu bytes after the input, %zu before [isa %s]", \
             fb_ctx_memory_used(ctx), (size_t)(before), fb_isa_name(fb_ctx_isa(ctx)))

#endif /* FB_FUZZ_COMMON_H */
