/* agg.c - grouped and ungrouped aggregation (fb_agg.h): the table of groups, its two indexes (direct
 * and hashed), the per-aggregate states, merge and result. The per-ISA inner loops live in
 * agg_ref.c / simd_agg.c (fb_agg_internal.h).
 *
 * Layout: groups are numbered densely in order of first appearance. Their keys (as ordered int64:
 * signed types sign-extended, unsigned zero-extended, uint64 with the top bit flipped so that int64
 * order is the type's order), a per-group key-null mask, the row count and every aggregate's state
 * are arrays indexed by that number. The index that maps a key tuple to its number is either a
 * direct-indexed array of slots or an open-addressing hash table of (hash tag, number) pairs; both
 * are rebuilt from the stored keys when they change, so switching costs one pass over the groups.
 * Rows are processed in batches of FB_AGG_BATCH: keys → group numbers, then one tight loop per
 * aggregate over the batch. That split is where a later radix-partitioning spill goes: a batch's
 * rows can leave for partitions instead of being looked up.
 */
#include "fb_agg_internal.h"
#include "fb_internal.h"

#include <stdio.h>
#include <string.h>

#define FB_AGG_BATCH 1024
#define FB_AGG_PREFETCH 16
#define FB_AGG_EMPTY UINT32_MAX
#define FB_AGG_MAX_GROUPS ((int64_t)UINT32_MAX - 1)

typedef struct fb_agg_state {
    int64_t *nulls; /* null inputs per group: non-null ones are cnt - nulls, so a column without nulls
                       costs no access here (count(col) of such a column touches no state at all) */
    void *acc;      /* sum: fb_agg_i128 (integers) or double; avg: the same; min/max: int64 ordered key,
                       starting at the identity (INT64_MAX for min, INT64_MIN for max) */
    size_t width; /* bytes per group of acc, 0 for counts */
    int is_float; /* input is float32/float64 */
} fb_agg_state;

struct fb_agg_table {
    fb_ctx *ctx;
    const fb_agg_kernels *ak;
    size_t n_keys, n_aggs;
    fb_type key_types[FB_AGG_MAX_KEYS];
    fb_agg_desc aggs[FB_AGG_MAX_AGGS];
    fb_agg_strategy force;
    fb_agg_strategy mode; /* DIRECT or HASH */
    fb_status failed;     /* FB_OK, or why the table failed */

    /* groups */
    int64_t n_groups, cap;
    int64_t *gkey[FB_AGG_MAX_KEYS];
    uint8_t *gnull; /* bit k: key k is null */
    int64_t *cnt;
    fb_agg_state st[FB_AGG_MAX_AGGS];

    /* direct index: slot = sum_k code_k * stride_k, code = 0 for null, key - dmin + 1 otherwise */
    int have_range;
    int64_t dmin[FB_AGG_MAX_KEYS], dmax[FB_AGG_MAX_KEYS];
    uint64_t dstride[FB_AGG_MAX_KEYS];
    uint32_t *dmap;
    size_t dslots;

    /* hash index: slots hold (hash >> 32) << 32 | (group + 1), 0 = empty */
    uint64_t *ghash; /* per group, valid in hash mode */
    uint64_t *slots;
    size_t nslots;

    /* scratch of one batch */
    int64_t *kv[FB_AGG_MAX_KEYS];
    uint8_t *kn;
    uint64_t *h;
    uint32_t *gid, *slot, *rows;
    const uint32_t *brows; /* the batch's rows: brows[j], or bbase + j when brows is NULL */
    int64_t bbase;
    int64_t *iv; /* ordered-key (integer) values of one aggregate's input */
    double *dv;
    uint8_t *vv; /* validity of one aggregate's input */
};

/* ---- small helpers ---------------------------------------------------------------------------- */

static int is_key_type(fb_type t)
{
    return (t >= FB_TYPE_INT8 && t <= FB_TYPE_UINT64) || t == FB_TYPE_DATE32;
}

static int is_float(fb_type t) { return t == FB_TYPE_FLOAT32 || t == FB_TYPE_FLOAT64; }

/* Result type of an aggregate; FB_ERR_INVALID_ARG (kind) or FB_ERR_UNSUPPORTED_TYPE, no message. */
static fb_status out_type(fb_agg_kind kind, fb_type input, fb_type *out)
{
    if ((unsigned)kind > FB_AGG_AVG)
        return FB_ERR_INVALID_ARG;
    if (kind == FB_AGG_COUNT_STAR) {
        *out = FB_TYPE_INT64;
        return FB_OK;
    }
    if (fb_type_width(input) == 0)
        return FB_ERR_UNSUPPORTED_TYPE;
    if (kind == FB_AGG_COUNT)
        *out = FB_TYPE_INT64;
    else if (kind == FB_AGG_MIN || kind == FB_AGG_MAX)
        *out = input;
    else if (input == FB_TYPE_DATE32)
        return FB_ERR_UNSUPPORTED_TYPE;
    else
        *out = kind == FB_AGG_AVG || is_float(input) ? FB_TYPE_FLOAT64 : FB_TYPE_INT64;
    return FB_OK;
}

static const char *kind_name(fb_agg_kind kind)
{
    static const char *const names[] = {"count(*)", "count", "sum", "min", "max", "avg"};
    return (unsigned)kind <= FB_AGG_AVG ? names[kind] : "unknown";
}

fb_status fb_agg_result_type(fb_agg_kind kind, fb_type input, fb_type *out)
{
    FB_RETURN_ERROR_IF(!out, NULL, FB_ERR_INVALID_ARG, "out must not be NULL");
    fb_status st = out_type(kind, input, out);
    FB_RETURN_ERROR_IF(st == FB_ERR_INVALID_ARG, NULL, st, "unknown aggregate kind %d", (int)kind);
    FB_RETURN_ERROR_IF(st != FB_OK, NULL, st, "%s of %s is not supported", kind_name(kind), fb_type_name(input));
    return FB_OK;
}

#define FB_ROW(j) (rows ? (int64_t)rows[j] : base + (j))

/* Ordered int64 of rows of integer data (see the file comment): rows[j], or base + j when rows is
 * NULL (a plain morsel: contiguous loads the compiler vectorizes). */
static void load_ints(fb_type t, const void *data, const uint32_t *rows, int64_t base, int64_t n, int64_t *out)
{
    switch (t) {
    case FB_TYPE_INT8:
        for (int64_t j = 0; j < n; j++)
            out[j] = ((const int8_t *)data)[FB_ROW(j)];
        break;
    case FB_TYPE_INT16:
        for (int64_t j = 0; j < n; j++)
            out[j] = ((const int16_t *)data)[FB_ROW(j)];
        break;
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32:
        for (int64_t j = 0; j < n; j++)
            out[j] = ((const int32_t *)data)[FB_ROW(j)];
        break;
    case FB_TYPE_INT64:
        for (int64_t j = 0; j < n; j++)
            out[j] = ((const int64_t *)data)[FB_ROW(j)];
        break;
    case FB_TYPE_UINT8:
        for (int64_t j = 0; j < n; j++)
            out[j] = ((const uint8_t *)data)[FB_ROW(j)];
        break;
    case FB_TYPE_UINT16:
        for (int64_t j = 0; j < n; j++)
            out[j] = ((const uint16_t *)data)[FB_ROW(j)];
        break;
    case FB_TYPE_UINT32:
        for (int64_t j = 0; j < n; j++)
            out[j] = ((const uint32_t *)data)[FB_ROW(j)];
        break;
    case FB_TYPE_UINT64:
        for (int64_t j = 0; j < n; j++)
            out[j] = (int64_t)(((const uint64_t *)data)[FB_ROW(j)] ^ 0x8000000000000000ull);
        break;
    case FB_TYPE_FLOAT32: /* ordered keys of floats, for min/max */
        for (int64_t j = 0; j < n; j++)
            out[j] = fb_key_32(((const uint32_t *)data)[FB_ROW(j)], FB_KEY_FLOAT);
        break;
    default:
        for (int64_t j = 0; j < n; j++)
            out[j] = fb_key_64(((const uint64_t *)data)[FB_ROW(j)], FB_KEY_FLOAT);
        break;
    }
}

static void load_doubles(fb_type t, const void *data, const uint32_t *rows, int64_t base, int64_t n, double *out)
{
    if (t == FB_TYPE_FLOAT32)
        for (int64_t j = 0; j < n; j++)
            out[j] = ((const float *)data)[FB_ROW(j)];
    else
        for (int64_t j = 0; j < n; j++)
            out[j] = ((const double *)data)[FB_ROW(j)];
}

static void load_valid(const fb_column *c, const uint32_t *rows, int64_t base, int64_t n, uint8_t *out)
{
    if (!c->validity) {
        memset(out, 1, (size_t)n);
        return;
    }
    for (int64_t j = 0; j < n; j++) {
        int64_t b = c->offset + FB_ROW(j);
        out[j] = (c->validity[b >> 3] >> (b & 7)) & 1;
    }
}

/* The hash fb_hash_columns() defines, of a stored (ordered) key tuple. */
static uint64_t hash_stored(const fb_agg_table *t, const int64_t *k, uint8_t nulls)
{
    uint64_t h = 0;
    for (size_t c = 0; c < t->n_keys; c++) {
        uint64_t w = (uint64_t)k[c] ^ (t->key_types[c] == FB_TYPE_UINT64 ? 0x8000000000000000ull : 0);
        uint64_t x = (nulls >> c) & 1 ? FB_HASH_NULL : fb_hash_u64(w);
        h = c == 0 ? x : h * FB_HASH_MUL ^ x;
    }
    return h;
}

/* ---- memory ----------------------------------------------------------------------------------- */

static void free_arr(fb_agg_table *t, void **p, size_t bytes)
{
    fb_free(t->ctx, *p, bytes);
    *p = NULL;
}

static void free_index(fb_agg_table *t)
{
    free_arr(t, (void **)&t->dmap, t->dslots * sizeof(uint32_t));
    t->dslots = 0;
    free_arr(t, (void **)&t->slots, t->nslots * sizeof(uint64_t));
    t->nslots = 0;
}

static void free_groups(fb_agg_table *t)
{
    size_t c = (size_t)t->cap;
    for (size_t k = 0; k < t->n_keys; k++)
        free_arr(t, (void **)&t->gkey[k], c * 8);
    free_arr(t, (void **)&t->gnull, c);
    free_arr(t, (void **)&t->cnt, c * 8);
    free_arr(t, (void **)&t->ghash, c * 8);
    for (size_t a = 0; a < t->n_aggs; a++) {
        free_arr(t, (void **)&t->st[a].nulls, c * 8);
        free_arr(t, &t->st[a].acc, c * t->st[a].width);
    }
    t->cap = 0;
}

static void free_scratch(fb_agg_table *t)
{
    for (size_t k = 0; k < FB_AGG_MAX_KEYS; k++)
        free_arr(t, (void **)&t->kv[k], FB_AGG_BATCH * 8);
    free_arr(t, (void **)&t->kn, FB_AGG_BATCH);
    free_arr(t, (void **)&t->h, FB_AGG_BATCH * 8);
    free_arr(t, (void **)&t->gid, FB_AGG_BATCH * 4);
    free_arr(t, (void **)&t->slot, FB_AGG_BATCH * 4);
    free_arr(t, (void **)&t->rows, FB_AGG_BATCH * 4);
    free_arr(t, (void **)&t->iv, FB_AGG_BATCH * 8);
    free_arr(t, (void **)&t->dv, FB_AGG_BATCH * 8);
    free_arr(t, (void **)&t->vv, FB_AGG_BATCH);
}

/* Marks the table failed and frees all but the handle. */
static fb_status fail(fb_agg_table *t, fb_status st)
{
    free_index(t);
    free_groups(t);
    free_scratch(t);
    t->n_groups = 0;
    t->failed = st;
    return st;
}

/* Room for `need` groups. New states start at zero (counts, sums) or the identity (min/max). */
static fb_status reserve_groups(fb_agg_table *t, int64_t need, const char *where)
{
    if (need <= t->cap)
        return FB_OK;
    if (need > FB_AGG_MAX_GROUPS)
        return fb_set_error(t->ctx, FB_ERR_CAPACITY, where, "more than %lld groups", (long long)FB_AGG_MAX_GROUPS);
    int64_t nc = t->cap ? t->cap : 256;
    while (nc < need)
        nc *= 2;
    if (nc > FB_AGG_MAX_GROUPS)
        nc = FB_AGG_MAX_GROUPS;
    size_t o = (size_t)t->cap, c = (size_t)nc;
    /* All new arrays are allocated before any old one is replaced, so a failure leaves every array
     * at the old capacity (which fail() frees with the right sizes). */
    void *nk[FB_AGG_MAX_KEYS] = {0}, *nnull = NULL, *ncnt = NULL, *nhash = NULL;
    void *nnn[FB_AGG_MAX_AGGS] = {0}, *nacc[FB_AGG_MAX_AGGS] = {0};
    fb_status st = FB_OK;
    for (size_t k = 0; k < t->n_keys && st == FB_OK; k++)
        st = fb_alloc(t->ctx, c * 8, 64, &nk[k], where);
    if (st == FB_OK && t->n_keys)
        st = fb_alloc(t->ctx, c, 64, &nnull, where);
    if (st == FB_OK)
        st = fb_alloc(t->ctx, c * 8, 64, &ncnt, where);
    if (st == FB_OK && t->mode == FB_AGG_STRATEGY_HASH)
        st = fb_alloc(t->ctx, c * 8, 64, &nhash, where);
    for (size_t a = 0; a < t->n_aggs && st == FB_OK; a++) {
        if (t->aggs[a].kind == FB_AGG_COUNT_STAR)
            continue;
        st = fb_alloc(t->ctx, c * 8, 64, &nnn[a], where);
        if (st == FB_OK && t->st[a].width)
            st = fb_alloc(t->ctx, c * t->st[a].width, 64, &nacc[a], where);
    }
    if (st != FB_OK) {
        for (size_t k = 0; k < t->n_keys; k++)
            fb_free(t->ctx, nk[k], c * 8);
        fb_free(t->ctx, nnull, c);
        fb_free(t->ctx, ncnt, c * 8);
        fb_free(t->ctx, nhash, c * 8);
        for (size_t a = 0; a < t->n_aggs; a++) {
            fb_free(t->ctx, nnn[a], c * 8);
            fb_free(t->ctx, nacc[a], c * t->st[a].width);
        }
        return st;
    }
#define FB_MOVE(dst, src, w)                                                                                  \
    do {                                                                                                  \
        if (dst)                                                                                          \
            memcpy((src), (dst), o * (w));                                                                \
        memset((char *)(src) + o * (w), 0, (c - o) * (w));                                                \
        fb_free(t->ctx, (dst), o * (w));                                                                  \
        (dst) = (src);                                                                                    \
    } while (0)
    for (size_t k = 0; k < t->n_keys; k++)
        FB_MOVE(t->gkey[k], nk[k], 8);
    if (t->n_keys)
        FB_MOVE(t->gnull, nnull, 1);
    FB_MOVE(t->cnt, ncnt, 8);
    if (nhash)
        FB_MOVE(t->ghash, nhash, 8);
    for (size_t a = 0; a < t->n_aggs; a++) {
        if (nnn[a])
            FB_MOVE(t->st[a].nulls, nnn[a], 8);
        if (nacc[a])
            FB_MOVE(t->st[a].acc, nacc[a], t->st[a].width);
        if (t->aggs[a].kind == FB_AGG_MIN || t->aggs[a].kind == FB_AGG_MAX)
            for (size_t g = o; g < c; g++)
                ((int64_t *)t->st[a].acc)[g] = t->aggs[a].kind == FB_AGG_MIN ? INT64_MAX : INT64_MIN;
    }
#undef FB_MOVE
    t->cap = nc;
    return FB_OK;
}

/* ---- the two indexes -------------------------------------------------------------------------- */

/* Range of the incoming keys, per column: min/max of the non-null ones (any = 0 when none). */
typedef struct fb_agg_range {
    int64_t mn[FB_AGG_MAX_KEYS], mx[FB_AGG_MAX_KEYS];
    int any[FB_AGG_MAX_KEYS];
} fb_agg_range;

static uint64_t direct_code(const fb_agg_table *t, size_t k, int64_t key, int null)
{
    return null ? 0 : (uint64_t)key - (uint64_t)t->dmin[k] + 1;
}

static void direct_insert_all(fb_agg_table *t)
{
    for (size_t s = 0; s < t->dslots; s++)
        t->dmap[s] = FB_AGG_EMPTY;
    for (int64_t g = 0; g < t->n_groups; g++) {
        uint64_t s = 0;
        for (size_t k = 0; k < t->n_keys; k++)
            s += direct_code(t, k, t->gkey[k][g], (t->gnull[g] >> k) & 1) * t->dstride[k];
        t->dmap[s] = (uint32_t)g;
    }
}

static void hash_insert_all(fb_agg_table *t)
{
    memset(t->slots, 0, t->nslots * 8);
    size_t mask = t->nslots - 1;
    for (int64_t g = 0; g < t->n_groups; g++) {
        uint64_t h = t->ghash[g];
        size_t p = (size_t)h & mask;
        while (t->slots[p])
            p = (p + 1) & mask;
        t->slots[p] = (h & 0xFFFFFFFF00000000ull) | (uint64_t)(g + 1);
    }
}

/* Hash table with room for `groups` at load ≤ 1/2. */
static fb_status hash_reserve(fb_agg_table *t, int64_t groups, const char *where)
{
    size_t want = 1024;
    while ((int64_t)(want / 2) < groups)
        want *= 2;
    if (want <= t->nslots)
        return FB_OK;
    uint64_t *ns;
    FB_FORWARD_IF_ERROR(fb_alloc(t->ctx, want * 8, 64, (void **)&ns, where));
    fb_free(t->ctx, t->slots, t->nslots * 8);
    t->slots = ns;
    t->nslots = want;
    hash_insert_all(t);
    return FB_OK;
}

/* Leaves direct indexing for good: hashes of the stored keys, then the hash table. */
static fb_status switch_to_hash(fb_agg_table *t, const char *where)
{
    if (t->cap) { /* with no groups yet, reserve_groups() allocates ghash once the mode is HASH */
        uint64_t *gh;
        FB_FORWARD_IF_ERROR(fb_alloc(t->ctx, (size_t)t->cap * 8, 64, (void **)&gh, where));
        int64_t k[FB_AGG_MAX_KEYS];
        for (int64_t g = 0; g < t->n_groups; g++) {
            for (size_t c = 0; c < t->n_keys; c++)
                k[c] = t->gkey[c][g];
            gh[g] = hash_stored(t, k, t->gnull[g]);
        }
        memset(gh + t->n_groups, 0, (size_t)(t->cap - t->n_groups) * 8);
        t->ghash = gh;
    }
    free_arr(t, (void **)&t->dmap, t->dslots * 4);
    t->dslots = 0;
    t->mode = FB_AGG_STRATEGY_HASH;
    return hash_reserve(t, t->n_groups + FB_AGG_BATCH, where);
}

/* Before a batch of keys within range r: widens the direct index to cover it, or switches to hashing
 * (auto), or fails with FB_ERR_CAPACITY (forced direct; nothing changed then). */
static fb_status prepare_index(fb_agg_table *t, const fb_agg_range *r, const char *where)
{
    if (t->mode == FB_AGG_STRATEGY_HASH)
        return FB_OK;
    int64_t mn[FB_AGG_MAX_KEYS], mx[FB_AGG_MAX_KEYS];
    int changed = !t->have_range;
    for (size_t k = 0; k < t->n_keys; k++) {
        mn[k] = t->have_range ? t->dmin[k] : INT64_MAX;
        mx[k] = t->have_range ? t->dmax[k] : INT64_MIN;
        if (r->any[k]) {
            if (r->mn[k] < mn[k])
                mn[k] = r->mn[k], changed = 1;
            if (r->mx[k] > mx[k])
                mx[k] = r->mx[k], changed = 1;
        }
        if (mn[k] > mx[k]) /* only nulls so far */
            mn[k] = mx[k] = 0;
    }
    if (!changed)
        return FB_OK;
    uint64_t limit = t->force == FB_AGG_STRATEGY_DIRECT ? FB_AGG_DIRECT_FORCED_MAX_SLOTS : FB_AGG_DIRECT_MAX_SLOTS;
    uint64_t slots = 1, stride[FB_AGG_MAX_KEYS];
    int fits = 1;
    for (size_t k = 0; k < t->n_keys && fits; k++) {
        uint64_t ext = (uint64_t)mx[k] - (uint64_t)mn[k]; /* + 2 (null slot, inclusive range) below */
        stride[k] = slots;
        if (ext >= limit || (slots *= ext + 2) > limit)
            fits = 0;
    }
    if (!fits) {
        if (t->force == FB_AGG_STRATEGY_DIRECT)
            return fb_set_error(t->ctx, FB_ERR_CAPACITY, where,
                                "the keys span more than %llu direct-indexed slots (FB_AGG_STRATEGY_DIRECT)",
                                (unsigned long long)limit);
        return switch_to_hash(t, where);
    }
    if (slots > t->dslots) {
        size_t want = t->dslots ? t->dslots : 64;
        while (want < slots)
            want *= 2;
        uint32_t *nm;
        FB_FORWARD_IF_ERROR(fb_alloc(t->ctx, want * 4, 64, (void **)&nm, where));
        fb_free(t->ctx, t->dmap, t->dslots * 4);
        t->dmap = nm;
        t->dslots = want;
    }
    for (size_t k = 0; k < t->n_keys; k++) {
        t->dmin[k] = mn[k];
        t->dmax[k] = mx[k];
        t->dstride[k] = stride[k];
    }
    t->have_range = 1;
    direct_insert_all(t);
    return FB_OK;
}

static void new_group(fb_agg_table *t, int64_t j, uint64_t h)
{
    int64_t g = t->n_groups++;
    for (size_t k = 0; k < t->n_keys; k++)
        t->gkey[k][g] = t->kv[k][j];
    t->gnull[g] = t->kn[j];
    if (t->ghash)
        t->ghash[g] = h;
}

/* Group numbers of the n key tuples in kv/kn (hashes in t->h in hash mode); inserts new groups. The
 * caller has reserved room for n more groups and prepared the index. */
static void lookup(fb_agg_table *t, int64_t n, int slots_ready)
{
    uint32_t *gid = t->gid;
    if (t->mode != FB_AGG_STRATEGY_HASH) {
        if (!slots_ready)
            for (int64_t j = 0; j < n; j++) {
                uint64_t s = 0;
                for (size_t k = 0; k < t->n_keys; k++)
                    s += direct_code(t, k, t->kv[k][j], (t->kn[j] >> k) & 1) * t->dstride[k];
                t->slot[j] = (uint32_t)s;
            }
        for (int64_t j = 0; j < n; j++) {
            uint32_t g = t->dmap[t->slot[j]];
            if (g == FB_AGG_EMPTY) { /* never with slots_ready: the caller checked */
                g = (uint32_t)t->n_groups;
                t->dmap[t->slot[j]] = g;
                new_group(t, j, 0);
            }
            gid[j] = g;
        }
        return;
    }
    size_t mask = t->nslots - 1;
    const uint64_t *h = t->h;
    /* a table past the cache misses on every probe: fetch FB_AGG_PREFETCH rows ahead */
    for (int64_t j = 0; j < n && j < FB_AGG_PREFETCH; j++)
        __builtin_prefetch(&t->slots[(size_t)h[j] & mask]);
    for (int64_t j = 0; j < n; j++) {
        if (j + FB_AGG_PREFETCH < n)
            __builtin_prefetch(&t->slots[(size_t)h[j + FB_AGG_PREFETCH] & mask]);
        if (j + FB_AGG_PREFETCH / 2 < n && t->n_keys) { /* that slot has arrived by now: fetch its key */
            uint64_t s = t->slots[(size_t)h[j + FB_AGG_PREFETCH / 2] & mask];
            if (s)
                __builtin_prefetch(&t->gkey[0][(uint32_t)(s - 1)]);
        }
        uint64_t tag = h[j] & 0xFFFFFFFF00000000ull;
        size_t p = (size_t)h[j] & mask;
        for (;;) {
            uint64_t s = t->slots[p];
            if (!s) {
                uint32_t g = (uint32_t)t->n_groups;
                t->slots[p] = tag | (uint64_t)(g + 1);
                new_group(t, j, h[j]);
                gid[j] = g;
                break;
            }
            if ((s & 0xFFFFFFFF00000000ull) == tag) {
                uint32_t g = (uint32_t)(s - 1);
                int eq = t->gnull[g] == t->kn[j];
                for (size_t k = 0; k < t->n_keys && eq; k++)
                    eq = t->gkey[k][g] == t->kv[k][j];
                if (eq) {
                    gid[j] = g;
                    break;
                }
            }
            p = (p + 1) & mask;
        }
    }
}

/* ---- create / destroy ------------------------------------------------------------------------- */

fb_status fb_agg_create(fb_ctx *ctx, const fb_agg_spec *spec, fb_agg_table **out)
{
    FB_RETURN_ERROR_IF(!ctx, NULL, FB_ERR_INVALID_ARG, "ctx must not be NULL");
    FB_RETURN_ERROR_IF(!spec || !out, ctx, FB_ERR_INVALID_ARG, "spec and out must not be NULL");
    FB_RETURN_ERROR_IF(spec->n_keys > FB_AGG_MAX_KEYS, ctx, FB_ERR_INVALID_ARG, "%zu key columns; at most %d",
                       spec->n_keys, FB_AGG_MAX_KEYS);
    FB_RETURN_ERROR_IF(spec->n_aggs > FB_AGG_MAX_AGGS, ctx, FB_ERR_INVALID_ARG, "%zu aggregates; at most %d",
                       spec->n_aggs, FB_AGG_MAX_AGGS);
    FB_RETURN_ERROR_IF(spec->n_keys && !spec->key_types, ctx, FB_ERR_INVALID_ARG, "key_types must not be NULL");
    FB_RETURN_ERROR_IF(spec->n_aggs && !spec->aggs, ctx, FB_ERR_INVALID_ARG, "aggs must not be NULL");
    FB_RETURN_ERROR_IF((unsigned)spec->strategy > FB_AGG_STRATEGY_PARTITION, ctx, FB_ERR_INVALID_ARG,
                       "unknown strategy %d", (int)spec->strategy);
    for (size_t k = 0; k < spec->n_keys; k++)
        FB_RETURN_ERROR_IF(!is_key_type(spec->key_types[k]), ctx, FB_ERR_UNSUPPORTED_TYPE,
                           "key %zu has type %s; keys are integers or date32", k, fb_type_name(spec->key_types[k]));
    for (size_t a = 0; a < spec->n_aggs; a++) {
        const fb_agg_desc *d = &spec->aggs[a];
        fb_type rt;
        FB_RETURN_ERROR_IF((unsigned)d->kind > FB_AGG_AVG, ctx, FB_ERR_INVALID_ARG, "aggregate %zu: unknown kind %d", a,
                           (int)d->kind);
        if (d->kind == FB_AGG_COUNT_STAR)
            continue;
        FB_RETURN_ERROR_IF(d->input < 0, ctx, FB_ERR_INVALID_ARG, "aggregate %zu: input %d is negative", a,
                           (int)d->input);
        FB_RETURN_ERROR_IF(out_type(d->kind, d->type, &rt) != FB_OK, ctx, FB_ERR_UNSUPPORTED_TYPE,
                           "aggregate %zu: %s of %s is not supported", a, kind_name(d->kind), fb_type_name(d->type));
    }

    fb_agg_table *t;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *t, &t));
    memset(t, 0, sizeof *t);
    t->ctx = ctx;
    t->ak = fb_agg_kernels_get(fb_ctx_isa(ctx));
    t->n_keys = spec->n_keys;
    t->n_aggs = spec->n_aggs;
    for (size_t k = 0; k < spec->n_keys; k++)
        t->key_types[k] = spec->key_types[k];
    for (size_t a = 0; a < spec->n_aggs; a++) {
        t->aggs[a] = spec->aggs[a];
        fb_agg_kind kd = t->aggs[a].kind;
        if (kd == FB_AGG_COUNT_STAR) {
            t->aggs[a].input = -1;
            t->aggs[a].type = FB_TYPE_INVALID;
        }
        t->st[a].is_float = is_float(t->aggs[a].type);
        if (kd == FB_AGG_SUM || kd == FB_AGG_AVG)
            t->st[a].width = t->st[a].is_float ? sizeof(double) : sizeof(fb_agg_i128);
        else if (kd == FB_AGG_MIN || kd == FB_AGG_MAX)
            t->st[a].width = 8;
    }
    t->force = spec->strategy == FB_AGG_STRATEGY_PARTITION ? FB_AGG_STRATEGY_HASH : spec->strategy;
    t->mode = t->force == FB_AGG_STRATEGY_HASH ? FB_AGG_STRATEGY_HASH : FB_AGG_STRATEGY_DIRECT;

    fb_status st = FB_OK;
    for (size_t k = 0; k < FB_AGG_MAX_KEYS && st == FB_OK; k++)
        st = FB_ALLOC(ctx, FB_AGG_BATCH * 8, &t->kv[k]);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, FB_AGG_BATCH, &t->kn);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, FB_AGG_BATCH * 8, &t->h);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, FB_AGG_BATCH * 4, &t->gid);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, FB_AGG_BATCH * 4, &t->slot);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, FB_AGG_BATCH * 4, &t->rows);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, FB_AGG_BATCH * 8, &t->iv);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, FB_AGG_BATCH * 8, &t->dv);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, FB_AGG_BATCH, &t->vv);
    if (st == FB_OK && t->n_keys == 0) { /* ungrouped: the one group exists from the start */
        st = reserve_groups(t, 1, __func__);
        t->n_groups = 1;
    }
    if (st == FB_OK && t->mode == FB_AGG_STRATEGY_HASH && t->n_keys)
        st = hash_reserve(t, FB_AGG_BATCH, __func__);
    if (st != FB_OK) {
        fail(t, st);
        fb_free(ctx, t, sizeof *t);
        return st;
    }
    *out = t;
    return FB_OK;
}

void fb_agg_destroy(fb_agg_table *t)
{
    if (!t)
        return;
    fail(t, FB_ERR_INVALID_ARG);
    fb_free(t->ctx, t, sizeof *t);
}

fb_agg_strategy fb_agg_table_strategy(const fb_agg_table *t)
{
    return !t || t->failed ? FB_AGG_STRATEGY_AUTO : t->mode;
}

static fb_status check_usable(const fb_agg_table *t, const char *where)
{
    if (!t)
        return fb_set_error(NULL, FB_ERR_INVALID_ARG, where, "table must not be NULL");
    if (t->failed)
        return fb_set_error(t->ctx, FB_ERR_INVALID_ARG, where, "the table failed earlier (%s) and can only be destroyed",
                            fb_status_name(t->failed));
    return FB_OK;
}

fb_status fb_agg_group_count(const fb_agg_table *t, int64_t *out)
{
    FB_FORWARD_IF_ERROR(check_usable(t, __func__));
    FB_RETURN_ERROR_IF(!out, t->ctx, FB_ERR_INVALID_ARG, "out must not be NULL");
    *out = t->n_groups;
    return FB_OK;
}

/* ---- update ----------------------------------------------------------------------------------- */

/* One aggregate over a batch whose group numbers are in t->gid and rows in t->brows/bbase. Without a
 * validity bitmap the loops touch only the accumulator. */
static void update_agg(fb_agg_table *t, size_t a, const fb_column *col, int64_t n)
{
    const fb_agg_desc *d = &t->aggs[a];
    fb_agg_state *s = &t->st[a];
    const uint32_t *gid = t->gid;
    const void *data = (const char *)col->data + col->offset * (int64_t)fb_type_width(col->type);
    const uint8_t *vv = NULL;
    int64_t *nulls = s->nulls;
    if (col->validity) {
        load_valid(col, t->brows, t->bbase, n, t->vv);
        vv = t->vv;
        for (int64_t j = 0; j < n; j++)
            nulls[gid[j]] += !vv[j];
    }
    if (d->kind == FB_AGG_COUNT)
        return;
    if ((d->kind == FB_AGG_SUM || d->kind == FB_AGG_AVG) && s->is_float) {
        double *acc = s->acc;
        load_doubles(d->type, data, t->brows, t->bbase, n, t->dv);
        for (int64_t j = 0; j < n; j++)
            if (!vv || vv[j])
                acc[gid[j]] += t->dv[j];
        return;
    }
    load_ints(d->type, data, t->brows, t->bbase, n, t->iv);
    const int64_t *iv = t->iv;
    if (d->kind == FB_AGG_SUM || d->kind == FB_AGG_AVG) {
        fb_agg_i128 *acc = s->acc;
        if (d->type == FB_TYPE_UINT64) {
            for (int64_t j = 0; j < n; j++)
                if (!vv || vv[j])
                    acc[gid[j]] += (uint64_t)iv[j] ^ 0x8000000000000000ull;
        } else if (!vv) {
            for (int64_t j = 0; j < n; j++)
                acc[gid[j]] += iv[j];
        } else {
            for (int64_t j = 0; j < n; j++)
                if (vv[j])
                    acc[gid[j]] += iv[j];
        }
        return;
    }
    int64_t *acc = s->acc;
    if (d->kind == FB_AGG_MIN) {
        for (int64_t j = 0; j < n; j++)
            if ((!vv || vv[j]) && iv[j] < acc[gid[j]])
                acc[gid[j]] = iv[j];
    } else {
        for (int64_t j = 0; j < n; j++)
            if ((!vv || vv[j]) && iv[j] > acc[gid[j]])
                acc[gid[j]] = iv[j];
    }
}

/* Ungrouped aggregate over all rows of a column with a SIMD kernel; 0 when none fits the type. */
static int update_ungrouped_fast(fb_agg_table *t, size_t a, const fb_column *col, int64_t n)
{
    const fb_agg_desc *d = &t->aggs[a];
    fb_agg_state *s = &t->st[a];
    fb_bits valid = {col->validity, col->offset};
    const fb_agg_kernels *ak = t->ak;
    int32_t w = d->type == FB_TYPE_INT32 || d->type == FB_TYPE_DATE32 ? 32 : d->type == FB_TYPE_INT64 ? 64 : 0;
    if (d->kind == FB_AGG_SUM || d->kind == FB_AGG_AVG) {
        if (d->type == FB_TYPE_FLOAT64) {
            s->nulls[0] += n - ak->sum_f64((const double *)col->data + col->offset, valid, n, s->acc);
            return 1;
        }
        if (w == 32)
            s->nulls[0] += n - ak->sum_i32((const int32_t *)col->data + col->offset, valid, n, s->acc);
        else if (w == 64)
            s->nulls[0] += n - ak->sum_i64((const int64_t *)col->data + col->offset, valid, n, s->acc);
        return w != 0;
    }
    if ((d->kind == FB_AGG_MIN || d->kind == FB_AGG_MAX) && w) {
        int64_t mn = INT64_MAX, mx = INT64_MIN, c;
        if (w == 32)
            c = ak->minmax_i32((const int32_t *)col->data + col->offset, valid, n, &mn, &mx);
        else
            c = ak->minmax_i64((const int64_t *)col->data + col->offset, valid, n, &mn, &mx);
        int64_t *acc = s->acc, v = d->kind == FB_AGG_MIN ? mn : mx;
        if (c && (d->kind == FB_AGG_MIN ? v < acc[0] : v > acc[0]))
            acc[0] = v;
        s->nulls[0] += n - c;
        return 1;
    }
    return 0;
}

/* Key range of the rows to add (sel or all). */
static void key_range(const fb_agg_table *t, const fb_column *keys, int64_t n_rows, const uint32_t *sel, int64_t n,
                      fb_agg_range *r)
{
    for (size_t k = 0; k < t->n_keys; k++) {
        const fb_column *c = &keys[k];
        int64_t mn = INT64_MAX, mx = INT64_MIN, nn = 0;
        if (!sel && (c->type == FB_TYPE_INT32 || c->type == FB_TYPE_DATE32)) {
            nn = t->ak->minmax_i32((const int32_t *)c->data + c->offset, (fb_bits){c->validity, c->offset}, n_rows,
                                   &mn, &mx);
        } else if (!sel && c->type == FB_TYPE_INT64) {
            nn = t->ak->minmax_i64((const int64_t *)c->data + c->offset, (fb_bits){c->validity, c->offset}, n_rows,
                                   &mn, &mx);
        } else {
            const void *data = (const char *)c->data + c->offset * (int64_t)fb_type_width(c->type);
            for (int64_t b = 0; b < n; b += FB_AGG_BATCH) {
                int64_t m = n - b < FB_AGG_BATCH ? n - b : FB_AGG_BATCH;
                for (int64_t j = 0; j < m; j++)
                    t->rows[j] = sel ? sel[b + j] : (uint32_t)(b + j);
                load_ints(c->type, data, t->rows, 0, m, t->iv);
                load_valid(c, t->rows, 0, m, t->vv);
                for (int64_t j = 0; j < m; j++)
                    if (t->vv[j]) {
                        mn = t->iv[j] < mn ? t->iv[j] : mn;
                        mx = t->iv[j] > mx ? t->iv[j] : mx;
                        nn++;
                    }
            }
        }
        r->any[k] = nn > 0;
        r->mn[k] = mn;
        r->mx[k] = mx;
    }
}

fb_status fb_agg_update(fb_agg_table *t, const fb_column *keys, const fb_column *values, size_t n_values,
                        int64_t n_rows, const uint32_t *sel, int64_t n_sel)
{
    FB_FORWARD_IF_ERROR(check_usable(t, __func__));
    fb_ctx *ctx = t->ctx;
    FB_RETURN_ERROR_IF(n_rows < 0 || n_rows > FB_MORSEL_MAX_ROWS, ctx, FB_ERR_INVALID_ARG,
                       "n_rows %lld outside 0..FB_MORSEL_MAX_ROWS", (long long)n_rows);
    FB_RETURN_ERROR_IF(t->n_keys && !keys, ctx, FB_ERR_INVALID_ARG, "keys must not be NULL");
    FB_RETURN_ERROR_IF(n_values && !values, ctx, FB_ERR_INVALID_ARG, "values must not be NULL");
    for (size_t k = 0; k < t->n_keys; k++) {
        char what[32];
        snprintf(what, sizeof what, "key %zu", k);
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, &keys[k], __func__, what));
        FB_RETURN_ERROR_IF(keys[k].type != t->key_types[k], ctx, FB_ERR_UNSUPPORTED_TYPE,
                           "key %zu has type %s, the spec says %s", k, fb_type_name(keys[k].type),
                           fb_type_name(t->key_types[k]));
        FB_RETURN_ERROR_IF(keys[k].length != n_rows, ctx, FB_ERR_LENGTH_MISMATCH, "key %zu has %lld rows, n_rows is %lld",
                           k, (long long)keys[k].length, (long long)n_rows);
    }
    for (size_t a = 0; a < t->n_aggs; a++) {
        const fb_agg_desc *d = &t->aggs[a];
        if (d->kind == FB_AGG_COUNT_STAR)
            continue;
        FB_RETURN_ERROR_IF((size_t)d->input >= n_values, ctx, FB_ERR_INVALID_ARG,
                           "aggregate %zu reads value column %d of %zu", a, (int)d->input, n_values);
        const fb_column *c = &values[d->input];
        char what[32];
        snprintf(what, sizeof what, "value %d", (int)d->input);
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, c, __func__, what));
        FB_RETURN_ERROR_IF(c->type != d->type, ctx, FB_ERR_UNSUPPORTED_TYPE,
                           "value column %d has type %s, aggregate %zu expects %s", (int)d->input,
                           fb_type_name(c->type), a, fb_type_name(d->type));
        FB_RETURN_ERROR_IF(c->length != n_rows, ctx, FB_ERR_LENGTH_MISMATCH,
                           "value column %d has %lld rows, n_rows is %lld", (int)d->input, (long long)c->length,
                           (long long)n_rows);
    }
    int64_t n = n_rows;
    if (sel) {
        FB_RETURN_ERROR_IF(n_sel < 0 || n_sel > FB_MORSEL_MAX_ROWS, ctx, FB_ERR_INVALID_ARG,
                           "n_sel %lld outside 0..FB_MORSEL_MAX_ROWS", (long long)n_sel);
        for (int64_t j = 0; j < n_sel; j++)
            FB_RETURN_ERROR_IF(sel[j] >= n_rows, ctx, FB_ERR_OUT_OF_RANGE, "sel[%lld] = %u, the morsel has %lld rows",
                               (long long)j, sel[j], (long long)n_rows);
        n = n_sel;
    }
    if (n == 0)
        return FB_OK;

    if (t->n_keys == 0 && !sel) {
        t->cnt[0] += n;
        int done[FB_AGG_MAX_AGGS] = {0}, rest = 0;
        for (size_t a = 0; a < t->n_aggs; a++) {
            if (t->aggs[a].kind == FB_AGG_COUNT_STAR)
                done[a] = 1;
            else
                done[a] = update_ungrouped_fast(t, a, &values[t->aggs[a].input], n);
            rest |= !done[a];
        }
        if (!rest)
            return FB_OK;
        memset(t->gid, 0, FB_AGG_BATCH * 4);
        for (int64_t b = 0; b < n; b += FB_AGG_BATCH) {
            int64_t m = n - b < FB_AGG_BATCH ? n - b : FB_AGG_BATCH;
            t->brows = NULL;
            t->bbase = b;
            for (size_t a = 0; a < t->n_aggs; a++)
                if (!done[a])
                    update_agg(t, a, &values[t->aggs[a].input], m);
        }
        return FB_OK;
    }

    fb_status st;
    if (t->n_keys && t->mode != FB_AGG_STRATEGY_HASH) {
        fb_agg_range r;
        key_range(t, keys, n_rows, sel, n, &r);
        st = prepare_index(t, &r, __func__);
        if (st != FB_OK)
            return st == FB_ERR_CAPACITY ? st : fail(t, st); /* forced direct: nothing changed */
    }
    /* the SIMD slot kernel serves one 32-bit key column in direct mode */
    int fast_slots = t->n_keys == 1 && !sel && (t->key_types[0] == FB_TYPE_INT32 || t->key_types[0] == FB_TYPE_DATE32);
    for (int64_t b = 0; b < n; b += FB_AGG_BATCH) {
        int64_t m = n - b < FB_AGG_BATCH ? n - b : FB_AGG_BATCH;
        t->brows = sel ? sel + b : NULL;
        t->bbase = b;
        if (t->n_keys) {
            st = reserve_groups(t, t->n_groups + m, __func__);
            if (st == FB_OK && t->mode == FB_AGG_STRATEGY_HASH)
                st = hash_reserve(t, t->n_groups + m, __func__);
            if (st != FB_OK)
                return fail(t, st);
            int slots_ready = 0;
            if (t->mode != FB_AGG_STRATEGY_HASH && fast_slots) {
                const fb_column *c = &keys[0];
                t->ak->direct_slots_i32((const int32_t *)c->data + c->offset + b,
                                        (fb_bits){c->validity, c->offset + b}, m, (int32_t)t->dmin[0], t->slot);
                slots_ready = 1;
                /* a new group needs its key: fall back to loading keys when one appears */
                for (int64_t j = 0; j < m && slots_ready; j++)
                    if (t->dmap[t->slot[j]] == FB_AGG_EMPTY)
                        slots_ready = 0;
            }
            if (!slots_ready) {
                uint8_t *kn = t->kn;
                memset(kn, 0, (size_t)m);
                for (size_t k = 0; k < t->n_keys; k++) {
                    const fb_column *c = &keys[k];
                    load_ints(c->type, (const char *)c->data + c->offset * (int64_t)fb_type_width(c->type), t->brows,
                              t->bbase, m, t->kv[k]);
                    load_valid(c, t->brows, t->bbase, m, t->vv);
                    for (int64_t j = 0; j < m; j++) {
                        kn[j] |= (uint8_t)((!t->vv[j]) << k);
                        t->kv[k][j] = t->vv[j] ? t->kv[k][j] : 0;
                    }
                }
            }
            if (t->mode == FB_AGG_STRATEGY_HASH) {
                if (!sel) { /* the hashing kernels of the context's variant */
                    fb_column sub[FB_AGG_MAX_KEYS];
                    for (size_t k = 0; k < t->n_keys; k++) {
                        sub[k] = keys[k];
                        sub[k].offset += b;
                        sub[k].length = m;
                    }
                    st = fb_hash_columns(ctx, sub, t->n_keys, t->h, m);
                    if (st != FB_OK)
                        return fail(t, st);
                } else {
                    int64_t kt[FB_AGG_MAX_KEYS];
                    for (int64_t j = 0; j < m; j++) {
                        for (size_t k = 0; k < t->n_keys; k++)
                            kt[k] = t->kv[k][j];
                        t->h[j] = hash_stored(t, kt, t->kn[j]);
                    }
                }
            }
            lookup(t, m, slots_ready);
        }
        if (!t->n_keys)
            memset(t->gid, 0, (size_t)m * 4);
        if (t->n_groups > 4096) /* states past the cache: fetch every aggregate's state of a row ahead */
            for (int64_t j = 0; j < m; j++) {
                if (j + FB_AGG_PREFETCH < m) {
                    uint32_t g = t->gid[j + FB_AGG_PREFETCH];
                    __builtin_prefetch(&t->cnt[g], 1);
                    for (size_t a = 0; a < t->n_aggs; a++) {
                        if (t->st[a].acc)
                            __builtin_prefetch((char *)t->st[a].acc + g * t->st[a].width, 1);
                    }
                }
                t->cnt[t->gid[j]]++;
            }
        else
            for (int64_t j = 0; j < m; j++)
                t->cnt[t->gid[j]]++;
        for (size_t a = 0; a < t->n_aggs; a++)
            if (t->aggs[a].kind != FB_AGG_COUNT_STAR)
                update_agg(t, a, &values[t->aggs[a].input], m);
    }
    return FB_OK;
}

/* ---- merge ------------------------------------------------------------------------------------ */

static int same_spec(const fb_agg_table *a, const fb_agg_table *b)
{
    if (a->n_keys != b->n_keys || a->n_aggs != b->n_aggs)
        return 0;
    for (size_t k = 0; k < a->n_keys; k++)
        if (a->key_types[k] != b->key_types[k])
            return 0;
    for (size_t i = 0; i < a->n_aggs; i++)
        if (a->aggs[i].kind != b->aggs[i].kind || a->aggs[i].type != b->aggs[i].type)
            return 0;
    return 1;
}

fb_status fb_agg_merge(fb_agg_table *dst, const fb_agg_table *src)
{
    FB_FORWARD_IF_ERROR(check_usable(dst, __func__));
    FB_FORWARD_IF_ERROR(check_usable(src, __func__));
    fb_ctx *ctx = dst->ctx;
    FB_RETURN_ERROR_IF(dst == src, ctx, FB_ERR_INVALID_ARG, "dst and src are the same table");
    FB_RETURN_ERROR_IF(!same_spec(dst, src), ctx, FB_ERR_INVALID_ARG, "dst and src were created with different specs");
    fb_agg_table *t = dst;
    int64_t n = src->n_groups;
    fb_status st;
    if (t->n_keys && t->mode != FB_AGG_STRATEGY_HASH && n) {
        fb_agg_range r;
        for (size_t k = 0; k < t->n_keys; k++) {
            r.any[k] = 0;
            r.mn[k] = INT64_MAX;
            r.mx[k] = INT64_MIN;
            for (int64_t g = 0; g < n; g++)
                if (!((src->gnull[g] >> k) & 1)) {
                    int64_t v = src->gkey[k][g];
                    r.mn[k] = v < r.mn[k] ? v : r.mn[k];
                    r.mx[k] = v > r.mx[k] ? v : r.mx[k];
                    r.any[k] = 1;
                }
        }
        st = prepare_index(t, &r, __func__);
        if (st != FB_OK)
            return st == FB_ERR_CAPACITY ? st : fail(t, st);
    }
    for (int64_t b = 0; b < n; b += FB_AGG_BATCH) {
        int64_t m = n - b < FB_AGG_BATCH ? n - b : FB_AGG_BATCH;
        if (t->n_keys) {
            st = reserve_groups(t, t->n_groups + m, __func__);
            if (st == FB_OK && t->mode == FB_AGG_STRATEGY_HASH)
                st = hash_reserve(t, t->n_groups + m, __func__);
            if (st != FB_OK)
                return fail(t, st);
            for (size_t k = 0; k < t->n_keys; k++)
                memcpy(t->kv[k], src->gkey[k] + b, (size_t)m * 8);
            memcpy(t->kn, src->gnull + b, (size_t)m);
            if (t->mode == FB_AGG_STRATEGY_HASH) {
                if (src->mode == FB_AGG_STRATEGY_HASH)
                    memcpy(t->h, src->ghash + b, (size_t)m * 8);
                else {
                    int64_t kt[FB_AGG_MAX_KEYS];
                    for (int64_t j = 0; j < m; j++) {
                        for (size_t k = 0; k < t->n_keys; k++)
                            kt[k] = t->kv[k][j];
                        t->h[j] = hash_stored(t, kt, t->kn[j]);
                    }
                }
            }
            lookup(t, m, 0);
        } else {
            memset(t->gid, 0, (size_t)m * 4);
        }
        const uint32_t *gid = t->gid;
        for (int64_t j = 0; j < m; j++)
            t->cnt[gid[j]] += src->cnt[b + j];
        for (size_t a = 0; a < t->n_aggs; a++) {
            fb_agg_kind kd = t->aggs[a].kind;
            const fb_agg_state *ss = &src->st[a];
            fb_agg_state *ds = &t->st[a];
            if (kd == FB_AGG_COUNT_STAR)
                continue;
            for (int64_t j = 0; j < m; j++) {
                uint32_t g = gid[j];
                ds->nulls[g] += ss->nulls[b + j];
                if (kd == FB_AGG_SUM || kd == FB_AGG_AVG) {
                    if (ds->is_float)
                        ((double *)ds->acc)[g] += ((const double *)ss->acc)[b + j];
                    else
                        ((fb_agg_i128 *)ds->acc)[g] += ((const fb_agg_i128 *)ss->acc)[b + j];
                } else if (kd == FB_AGG_MIN || kd == FB_AGG_MAX) { /* the identity never wins */
                    int64_t v = ((const int64_t *)ss->acc)[b + j], *acc = ds->acc;
                    if (kd == FB_AGG_MIN ? v < acc[g] : v > acc[g])
                        acc[g] = v;
                }
            }
        }
    }
    return FB_OK;
}

/* ---- result ----------------------------------------------------------------------------------- */

/* Writes an ordered int64 key back as a value of type t. */
static void store_value(fb_type t, void *data, int64_t i, int64_t k)
{
    switch (t) {
    case FB_TYPE_INT8: ((int8_t *)data)[i] = (int8_t)k; break;
    case FB_TYPE_INT16: ((int16_t *)data)[i] = (int16_t)k; break;
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: ((int32_t *)data)[i] = (int32_t)k; break;
    case FB_TYPE_INT64: ((int64_t *)data)[i] = k; break;
    case FB_TYPE_UINT8: ((uint8_t *)data)[i] = (uint8_t)k; break;
    case FB_TYPE_UINT16: ((uint16_t *)data)[i] = (uint16_t)k; break;
    case FB_TYPE_UINT32: ((uint32_t *)data)[i] = (uint32_t)k; break;
    case FB_TYPE_UINT64: ((uint64_t *)data)[i] = (uint64_t)k ^ 0x8000000000000000ull; break;
    case FB_TYPE_FLOAT32: {
        uint32_t r = (uint32_t)(int32_t)k;
        r ^= (uint32_t)((int32_t)r >> 31) & 0x7FFFFFFFu; /* fb_key_32 inverted */
        memcpy((uint32_t *)data + i, &r, 4);
        break;
    }
    default: {
        uint64_t r = (uint64_t)k;
        r ^= (uint64_t)((int64_t)r >> 63) & 0x7FFFFFFFFFFFFFFFull;
        memcpy((uint64_t *)data + i, &r, 8);
        break;
    }
    }
}

static void set_bit(uint8_t *bits, int64_t i, int v)
{
    if (v)
        bits[i >> 3] |= (uint8_t)(1u << (i & 7));
}

fb_status fb_agg_result(const fb_agg_table *t, fb_column_out *keys, fb_column_out *aggs)
{
    FB_FORWARD_IF_ERROR(check_usable(t, __func__));
    fb_ctx *ctx = t->ctx;
    FB_RETURN_ERROR_IF(t->n_keys && !keys, ctx, FB_ERR_INVALID_ARG, "keys must not be NULL");
    FB_RETURN_ERROR_IF(t->n_aggs && !aggs, ctx, FB_ERR_INVALID_ARG, "aggs must not be NULL");
    int64_t n = t->n_groups;
    for (size_t k = 0; k < t->n_keys; k++) /* a failed call leaves every output empty */
        keys[k].length = keys[k].null_count = 0;
    for (size_t a = 0; a < t->n_aggs; a++)
        aggs[a].length = aggs[a].null_count = 0;
    for (size_t k = 0; k < t->n_keys; k++) {
        int nulls = 0;
        for (int64_t g = 0; g < n && !nulls; g++)
            nulls = (t->gnull[g] >> k) & 1;
        FB_FORWARD_IF_ERROR(fb_check_column_out(ctx, &keys[k], t->key_types[k], n, nulls, __func__));
    }
    for (size_t a = 0; a < t->n_aggs; a++) {
        fb_type rt = FB_TYPE_INT64;
        fb_agg_kind kd = t->aggs[a].kind;
        out_type(kd, kd == FB_AGG_COUNT_STAR ? FB_TYPE_INT64 : t->aggs[a].type, &rt); /* checked at create */
        int nulls = 0;
        if (kd != FB_AGG_COUNT_STAR && kd != FB_AGG_COUNT)
            for (int64_t g = 0; g < n && !nulls; g++)
                nulls = t->cnt[g] == t->st[a].nulls[g];
        FB_FORWARD_IF_ERROR(fb_check_column_out(ctx, &aggs[a], rt, n, nulls, __func__));
    }
    /* overflow before writing anything */
    for (size_t a = 0; a < t->n_aggs; a++)
        if (t->aggs[a].kind == FB_AGG_SUM && !t->st[a].is_float)
            for (int64_t g = 0; g < n; g++) {
                fb_agg_i128 s = ((const fb_agg_i128 *)t->st[a].acc)[g];
                FB_RETURN_ERROR_IF(s > INT64_MAX || s < INT64_MIN, ctx, FB_ERR_OVERFLOW,
                                   "aggregate %zu (sum of %s) overflows int64 in group %lld", a,
                                   fb_type_name(t->aggs[a].type), (long long)g);
            }
    for (size_t k = 0; k < t->n_keys; k++) {
        fb_column_out *o = &keys[k];
        if (o->validity)
            memset(o->validity, 0, (size_t)(n + 7) / 8);
        int64_t nulls = 0;
        for (int64_t g = 0; g < n; g++) {
            int isnull = (t->gnull[g] >> k) & 1;
            store_value(t->key_types[k], o->data, g, isnull ? 0 : t->gkey[k][g]);
            nulls += isnull;
            if (o->validity)
                set_bit(o->validity, g, !isnull);
        }
        o->null_count = nulls;
    }
    for (size_t a = 0; a < t->n_aggs; a++) {
        fb_column_out *o = &aggs[a];
        const fb_agg_state *s = &t->st[a];
        fb_agg_kind kd = t->aggs[a].kind;
        if (o->validity)
            memset(o->validity, 0, (size_t)(n + 7) / 8);
        int64_t nulls = 0;
        for (int64_t g = 0; g < n; g++) {
            int valid = 1;
            int64_t nn = kd == FB_AGG_COUNT_STAR ? 0 : t->cnt[g] - s->nulls[g];
            switch (kd) {
            case FB_AGG_COUNT_STAR: ((int64_t *)o->data)[g] = t->cnt[g]; break;
            case FB_AGG_COUNT: ((int64_t *)o->data)[g] = nn; break;
            case FB_AGG_SUM:
                valid = nn != 0;
                if (s->is_float)
                    ((double *)o->data)[g] = valid ? ((const double *)s->acc)[g] : 0.0;
                else
                    ((int64_t *)o->data)[g] = valid ? (int64_t)((const fb_agg_i128 *)s->acc)[g] : 0;
                break;
            case FB_AGG_AVG:
                valid = nn != 0;
                if (s->is_float)
                    ((double *)o->data)[g] = valid ? ((const double *)s->acc)[g] / (double)nn : 0.0;
                else
                    ((double *)o->data)[g] =
                        valid ? (double)((const fb_agg_i128 *)s->acc)[g] / (double)nn : 0.0;
                break;
            default:
                valid = nn != 0;
                store_value(t->aggs[a].type, o->data, g, valid ? ((const int64_t *)s->acc)[g] : 0);
                break;
            }
            nulls += !valid;
            if (o->validity)
                set_bit(o->validity, g, valid);
        }
        o->null_count = nulls;
    }
    for (size_t k = 0; k < t->n_keys; k++)
        keys[k].length = n;
    for (size_t a = 0; a < t->n_aggs; a++)
        aggs[a].length = n;
    return FB_OK;
}

/* ---- dispatch --------------------------------------------------------------------------------- */

const fb_agg_kernels *fb_agg_kernels_get(fb_isa isa)
{
    switch (isa) {
    case FB_ISA_BASE: return &fb_agg_kernels_base;
#if defined(FB_HAVE_X86_VARIANTS)
    case FB_ISA_AVX2: return &fb_agg_kernels_avx2;
    case FB_ISA_AVX512: return &fb_agg_kernels_avx512;
#endif
    default: return &fb_agg_kernels_scalar;
    }
}
