/* fb_test_join.h - the key sides of the join tests (test_join.c, test_join_pipeline.c): random key
 * columns (int32, uint32, date32, int64, uint64; 1..4 per side) with duplicates, negatives, extremes,
 * odd offsets and ~1/8 nulls, their widened values, and probe keys copied from build rows.
 *
 * Include after fb_test.h. Defines the file's random state `rng` (seeded by the test file). A file may
 * define FBTJ_KEY_PICKS before including (default 16): 2 in FBTJ_KEY_PICKS keys are extremes, 1/8 are
 * any bits, the rest come from the small pool. */
#ifndef FB_TEST_JOIN_H
#define FB_TEST_JOIN_H

#include "fb_test.h"

#ifndef FBTJ_KEY_PICKS
#define FBTJ_KEY_PICKS 16
#endif

static uint64_t rng;

/* A key side: n_keys columns of n rows, each with its own buffer, offset and maybe a validity bitmap,
 * and a payload column of n rows. */
typedef struct side {
    int nk;
    int64_t n;
    fb_column col[4];
    void *data[4];
    uint8_t *valid[4];
    int32_t *pay;
} side;

static inline int is64(fb_type t) { return t == FB_TYPE_INT64 || t == FB_TYPE_UINT64; }

/* Widened value of row i of column c (as the join compares keys). */
static inline int64_t key_at(const side *s, int c, int64_t i)
{
    const fb_column *k = &s->col[c];
    int64_t r = k->offset + i;
    switch (k->type) {
    case FB_TYPE_INT64:
    case FB_TYPE_UINT64: return ((const int64_t *)k->data)[r];
    case FB_TYPE_UINT32: return (int64_t)((const uint32_t *)k->data)[r];
    default: return ((const int32_t *)k->data)[r];
    }
}

/* Whether every key column of row i is valid. */
static inline int live_at(const side *s, int64_t i)
{
    for (int c = 0; c < s->nk; c++) {
        const fb_column *k = &s->col[c];
        if (k->validity) {
            int64_t b = k->offset + i;
            if (!((k->validity[b >> 3] >> (b & 7)) & 1))
                return 0;
        }
    }
    return 1;
}

/* A value for a key column: extremes, a small pool (duplicates, negatives; `pool` distinct values, so
 * matches are frequent), or any bits. */
static inline uint64_t random_key(fb_type t, int64_t pool)
{
    uint64_t r = fbt_next(&rng), u = fbt_next(&rng);
    int pick = (int)(r % FBTJ_KEY_PICKS);
    if (pick < 2) {
        static const int64_t ext32[] = {INT32_MIN, INT32_MAX, 0, -1, (int64_t)UINT32_MAX};
        static const int64_t ext64[] = {INT64_MIN, INT64_MAX, 0, -1, INT32_MIN, INT32_MAX};
        return is64(t) ? (uint64_t)ext64[u % 6] : (uint64_t)ext32[u % 5];
    }
    if (pick < FBTJ_KEY_PICKS - FBTJ_KEY_PICKS / 8)
        return (uint64_t)((int64_t)(u % (uint64_t)pool) - pool / 2);
    return u;
}

/* Sets key column c of row i (truncated to the column's width). */
static inline void set_key(side *s, int c, int64_t i, int64_t v)
{
    fb_column *k = &s->col[c];
    if (is64(k->type))
        ((int64_t *)s->data[c])[k->offset + i] = v;
    else
        ((uint32_t *)s->data[c])[k->offset + i] = (uint32_t)v;
}

/* A side of n rows with nk key columns of the given types (offsets 0..8, nulls in about half of the
 * columns when `nulls`) and payloads in -10^6..10^6. */
static inline void make_side(side *s, const fb_type *types, int nk, int64_t n, int64_t pool, int nulls)
{
    memset(s, 0, sizeof *s);
    s->nk = nk;
    s->n = n;
    for (int c = 0; c < nk; c++) {
        int64_t off = (int64_t)(fbt_next(&rng) % 9);
        size_t w = fb_type_width(types[c]);
        s->data[c] = malloc((size_t)(n + off + 1) * w);
        for (int64_t i = 0; i < n + off; i++) {
            uint64_t v = random_key(types[c], pool);
            if (w == 8)
                ((uint64_t *)s->data[c])[i] = v;
            else
                ((uint32_t *)s->data[c])[i] = (uint32_t)v;
        }
        if (nulls && fbt_next(&rng) % 2)
            s->valid[c] = fbt_random_validity(&rng, n + off);
        s->col[c] = fb_column_make(types[c], s->data[c], n, s->valid[c]);
        s->col[c].offset = off;
    }
    s->pay = malloc((size_t)(n + 1) * 4);
    for (int64_t i = 0; i < n; i++)
        s->pay[i] = (int32_t)(fbt_next(&rng) % 2000001) - 1000000;
}

/* Copies the keys of random build rows into about half of the probe rows (so that composite and
 * 64-bit keys match often). */
static inline void plant_matches(side *probe, const side *build)
{
    if (build->n == 0)
        return;
    for (int64_t i = 0; i < probe->n; i++) {
        if (fbt_next(&rng) % 2)
            continue;
        int64_t b = (int64_t)(fbt_next(&rng) % (uint64_t)build->n);
        for (int c = 0; c < probe->nk; c++)
            set_key(probe, c, i, key_at(build, c, b));
    }
}

static inline void free_side(side *s)
{
    for (int c = 0; c < s->nk; c++) {
        free(s->data[c]);
        free(s->valid[c]);
    }
    free(s->pay);
}

#endif /* FB_TEST_JOIN_H */
