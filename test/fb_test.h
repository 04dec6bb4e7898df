/* fb_test.h - what every cmocka test of fb shares: assertions that print fb's own error names and
 * messages, a seeded generator (splitmix64), and random columns with nulls, negatives and extremes. */
#ifndef FB_TEST_H
#define FB_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "fb/fb.h"

/* Fails with the status name and the last error message when rc is not FB_OK. */
#define assert_fb_ok(ctx, rc)                                                                         \
    do {                                                                                              \
        fb_status rc_ = (rc);                                                                         \
        if (rc_ != FB_OK)                                                                             \
            fail_msg("%s returned %s: %s", #rc, fb_status_name(rc_), fb_last_error(ctx));             \
    } while (0)

/* Fails unless rc is the expected status, and checks that a message was recorded. */
#define assert_fb_status(ctx, rc, expected)                                                           \
    do {                                                                                              \
        fb_status rc_ = (rc);                                                                         \
        if (rc_ != (expected))                                                                        \
            fail_msg("%s returned %s, expected %s (%s)", #rc, fb_status_name(rc_),                    \
                     fb_status_name(expected), fb_last_error(ctx));                                   \
        if ((expected) != FB_OK && fb_last_error(ctx)[0] == '\0')                                     \
            fail_msg("%s returned %s without a message", #rc, fb_status_name(rc_));                   \
    } while (0)

static inline uint64_t fbt_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Seed from FB_TEST_SEED (printed so a failure can be replayed), else a fixed one. */
static inline uint64_t fbt_seed(void)
{
    const char *s = getenv("FB_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : 0x5EED5EEDull;
    fprintf(stderr, "[ seed     ] FB_TEST_SEED=0x%llx\n", (unsigned long long)seed);
    return seed;
}

/* A column view together with the buffers it was made from (freed by fbt_col_free). */
typedef struct fbt_col {
    fb_column col;
    void *data;
    uint8_t *valid;
} fbt_col;

static inline void fbt_col_free(fbt_col *b)
{
    free(b->data);
    free(b->valid);
    memset(b, 0, sizeof *b);
}

/* A random validity bitmap of `bits` rows plus one spare byte, about one row in eight null. */
static inline uint8_t *fbt_random_validity(uint64_t *rng, int64_t bits)
{
    int64_t nb = (bits + 7) / 8 + 1;
    uint8_t *v = malloc((size_t)nb);
    for (int64_t i = 0; v && i < nb; i++)
        v[i] = (uint8_t)(fbt_next(rng) | fbt_next(rng) | fbt_next(rng));
    return v;
}

/* Writes one random value of type t: extremes, 0, -1, NaN (several payloads, both signs), ±0.0,
 * ±inf, values from a small pool (duplicates), or uniform bits. */
static inline void fbt_random_value(uint64_t *rng, fb_type t, void *out)
{
    uint64_t r = fbt_next(rng), u = fbt_next(rng);
    int pick = (int)(r % 16);
    size_t w = fb_type_width(t);
    if (t == FB_TYPE_FLOAT32) {
        static const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, 1.0f, -1.0f, 3.5f, 1e-42f, -1e-42f, 3.4e38f, -3.4e38f};
        float f;
        if (pick < 2) {
            uint32_t bits = 0x7F800001u | (uint32_t)(u & 0x807FFFFFu); /* a NaN, maybe negative, any payload */
            memcpy(&f, &bits, 4);
        } else if (pick < 6) {
            f = special[u % (sizeof special / sizeof special[0])];
        } else if (pick < 10) {
            f = (float)((int64_t)(u % 41) - 20) * 0.5f;
        } else {
            f = (float)((double)(int64_t)u / 1e15);
        }
        memcpy(out, &f, 4);
        return;
    }
    if (t == FB_TYPE_FLOAT64) {
        static const double special[] = {0.0, -0.0, INFINITY, -INFINITY, 1.0, -1.0, 3.5, 5e-324, -5e-324, 1.7e308, -1.7e308};
        double d;
        if (pick < 2) {
            uint64_t bits = 0x7FF0000000000001ull | (u & 0x800FFFFFFFFFFFFFull);
            memcpy(&d, &bits, 8);
        } else if (pick < 6) {
            d = special[u % (sizeof special / sizeof special[0])];
        } else if (pick < 10) {
            d = (double)((int64_t)(u % 41) - 20) * 0.5;
        } else {
            d = (double)(int64_t)u / 1e9;
        }
        memcpy(out, &d, 8);
        return;
    }
    uint64_t v;
    int is_signed = t == FB_TYPE_INT8 || t == FB_TYPE_INT16 || t == FB_TYPE_INT32 || t == FB_TYPE_INT64 ||
                    t == FB_TYPE_DATE32;
    uint64_t topbit = 1ull << (w * 8 - 1);
    switch (pick) {
    case 0: v = is_signed ? topbit : 0; break;                      /* min */
    case 1: v = is_signed ? topbit - 1 : topbit | (topbit - 1); break; /* max */
    case 2: v = 0; break;
    case 3: v = ~0ull; break;                                        /* -1 / max unsigned */
    case 4: v = is_signed ? topbit + 1 : 1; break;                   /* min + 1 */
    default:
        if (pick < 11)
            v = (uint64_t)((int64_t)(u % 21) - 10); /* small pool: duplicates, negatives */
        else
            v = u;
    }
    memcpy(out, &v, w); /* little-endian: the low bytes */
}

/* Opens one context per CPU kernel variant this machine runs (scalar first) into ctx[FB_ISA_COUNT],
 * printing the ones it skips. Returns their number, or -1 when a context cannot be made. */
static inline int fbt_open_variants(fb_ctx **ctx)
{
    int n = 0;
    for (int i = FB_ISA_SCALAR; i < FB_ISA_COUNT; i++) {
        if (!fb_isa_supported((fb_isa)i)) {
            fprintf(stderr, "[ skipped  ] variant %s: not supported by this CPU\n", fb_isa_name((fb_isa)i));
            continue;
        }
        fb_options *o = NULL;
        fb_status st = fb_options_create(&o);
        if (st == FB_OK)
            st = fb_options_set_isa(o, (fb_isa)i);
        if (st == FB_OK)
            st = fb_ctx_create(o, &ctx[n]);
        fb_options_destroy(o);
        if (st != FB_OK) {
            fprintf(stderr, "[ error    ] variant %s: %s\n", fb_isa_name((fb_isa)i), fb_last_error(NULL));
            for (int k = 0; k < n; k++)
                fb_ctx_destroy(ctx[k]);
            return -1;
        }
        n++;
    }
    return n;
}

/* Creates *ctx from options o (NULL: the defaults; o stays the caller's) and opens its OpenCL device. On
 * failure prints why, leaves *ctx NULL and returns -1, so a group setup fails - the OpenCL tests fail,
 * never skip, without a device. */
static inline int fbt_cl_ctx_create(const fb_options *o, fb_ctx **ctx)
{
    *ctx = NULL;
    fb_ctx *c = NULL;
    if (fb_ctx_create(o, &c) != FB_OK) {
        fprintf(stderr, "cannot create a context: %s\n", fb_last_error(NULL));
        return -1;
    }
    if (fb_cl_open(c, NULL) != FB_OK) {
        fprintf(stderr, "no OpenCL device: %s\n", fb_last_error(c));
        fb_ctx_destroy(c);
        return -1;
    }
    *ctx = c;
    return 0;
}

/* Destroys the n contexts of fbt_open_variants(). */
static inline void fbt_close_variants(fb_ctx **ctx, int n)
{
    for (int i = 0; i < n; i++)
        fb_ctx_destroy(ctx[i]);
}

/* Runs `python3 SCRIPT DIR` (a DuckDB comparison over the files a test wrote to DIR), then removes DIR.
 * \return the script's exit status as system() gives it (0 when the answers are equal). */
static inline int fbt_run_check_script(const char *script, const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s'", script, dir);
    int rc = system(cmd);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}

/* The fixture most test files share: `rng` seeded from FB_TEST_SEED and one context per CPU variant this
 * machine runs (variants[0 .. n_variants - 1]), opened by setup_variants and closed by teardown_variants.
 * Use once per file, at file scope, after declaring `static uint64_t rng;`. */
#define FBT_VARIANTS_FIXTURE                                                                          \
    static fb_ctx *variants[FB_ISA_COUNT];                                                            \
    static int n_variants;                                                                            \
    static int setup_variants(void **state)                                                           \
    {                                                                                                 \
        (void)state;                                                                                  \
        rng = fbt_seed();                                                                             \
        n_variants = fbt_open_variants(variants);                                                     \
        return n_variants < 0 ? -1 : 0;                                                               \
    }                                                                                                 \
    static int teardown_variants(void **state)                                                        \
    {                                                                                                 \
        (void)state;                                                                                  \
        fbt_close_variants(variants, n_variants);                                                     \
        n_variants = 0;                                                                               \
        return 0;                                                                                     \
    }

/* FBT_SMALL=1 (set by the valgrind runs, see FB_VALGRIND in test/CMakeLists.txt): tests shrink their
 * large inputs with fbt_size() and skip what only makes sense at size (the DuckDB comparisons). */
static inline int fbt_small(void)
{
    const char *e = getenv("FBT_SMALL");
    return e && *e && *e != '0';
}

/* n itself, or under FBT_SMALL, sizes past 4096 cut to 4096 + n % 64 (odd tails stay odd). */
static inline int64_t fbt_size(int64_t n) { return fbt_small() && n > 4096 ? 4096 + n % 64 : n; }

#endif /* FB_TEST_H */
