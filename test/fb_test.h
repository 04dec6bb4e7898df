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

/* Destroys the n contexts of fbt_open_variants(). */
static inline void fbt_close_variants(fb_ctx **ctx, int n)
{
    for (int i = 0; i < n; i++)
        fb_ctx_destroy(ctx[i]);
}

#endif /* FB_TEST_H */
