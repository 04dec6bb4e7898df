/* join.c - public entry points of fb_join.h: the hash table (create, build, grow), the probes for
 * every join type, and the radix partitioner. Checks arguments, reads key morsels in batches
 * (widened keys + hashes from the context's hashing kernels), prefetches buckets and calls the
 * context's join kernel variant (fb_join_internal.h) for the bucket search; walking duplicate
 * chains and writing results is scalar and shared, so every variant writes identical output. */
#include "fb_internal.h"
#include "fb_join_internal.h"
#include "fb_kernel_table.h"

#include <string.h>
#include <sys/mman.h>

/* Probe rows per batch: hashes, widened keys and found buckets of a batch live on the stack, and all
 * of its buckets are prefetched before the first compare (group prefetching). */
#define FB_JOIN_BATCH 256
#define FB_JOIN_MIN_LOG2CAP 4

struct fb_hash_table {
    fb_ctx *ctx;
    int nk;
    fb_type types[FB_JOIN_MAX_KEYS];
    uint64_t *buckets; /* see fb_join_internal.h */
    int log2cap;
    fb_join_row *rows; /* build rows after the first of their key (the first lives in its bucket) */
    int64_t n_rows, rows_cap;
    int64_t total_rows; /* given to build, nulls included */
    int64_t null_rows;
    int64_t distinct;
    int64_t shared_room; /* rows fb_hash_table_build_shared() may still insert (reserved up front) */
};

typedef struct fb_join_batch {
    uint64_t h[FB_JOIN_BATCH];
    int64_t k[FB_JOIN_MAX_KEYS][FB_JOIN_BATCH];
    const int64_t *kp[FB_JOIN_MAX_KEYS];
    uint8_t live[FB_JOIN_BATCH];
    int any_null;
    uint64_t found[FB_JOIN_BATCH]; /* bucket + 1, 0 = no match */
} fb_join_batch;

const fb_join_kernels *fb_join_kernels_get(const fb_ctx *ctx)
{
    switch (fb_ctx_isa(ctx)) {
    case FB_ISA_BASE: return &fb_join_kernels_base;
#if defined(FB_HAVE_X86_VARIANTS)
    case FB_ISA_AVX2: return &fb_join_kernels_avx2;
    case FB_ISA_AVX512: return &fb_join_kernels_avx512;
#endif
    default: return &fb_join_kernels_scalar;
    }
}

static size_t bucket_words(int nk) { return (size_t)nk + 2; }
static size_t buckets_bytes(int nk, int log2cap) { return ((size_t)1 << log2cap) * bucket_words(nk) * 8; }

/* Zeroes a new bucket array, first asking for transparent huge pages where the kernel leaves them to
 * madvise: a probe touches one random bucket per row, and with 4 KiB pages nearly every one also
 * misses the TLB, which (as measured on Zen 4) keeps the software prefetches from hiding the miss:
 * semi-join probes of a 1M-row table ran about 2x faster with huge pages. A hint only: memory from
 * custom allocator hooks is left as it is when the kernel refuses. */
static void buckets_init(uint64_t *p, size_t bytes)
{
#if defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1), hi = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#endif
    memset(p, 0, bytes);
}

static int key_type_ok(fb_type t)
{
    return t == FB_TYPE_INT32 || t == FB_TYPE_INT64 || t == FB_TYPE_DATE32 || t == FB_TYPE_UINT32 ||
           t == FB_TYPE_UINT64;
}

/* ---- argument checks -------------------------------------------------------------------------- */

static fb_status check_keys(const fb_ctx *ctx, const fb_hash_table *t, const fb_column *keys, size_t n_keys,
                            int64_t *len, const char *where)
{
    if (!ctx)
        return fb_set_error(NULL, FB_ERR_INVALID_ARG, where, "ctx must not be NULL");
    if (!t)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "table must not be NULL");
    if (!keys)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "keys must not be NULL");
    if (n_keys != (size_t)t->nk)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%zu key columns given, the table has %d", n_keys, t->nk);
    for (size_t c = 0; c < n_keys; c++) {
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, &keys[c], where, "key"));
        if (keys[c].type != t->types[c])
            return fb_set_error(ctx, FB_ERR_UNSUPPORTED_TYPE, where, "key %zu has type %s, the table's is %s", c,
                                fb_type_name(keys[c].type), fb_type_name(t->types[c]));
        if (keys[c].length != keys[0].length)
            return fb_set_error(ctx, FB_ERR_LENGTH_MISMATCH, where, "key %zu has %lld rows, key 0 has %lld", c,
                                (long long)keys[c].length, (long long)keys[0].length);
    }
    *len = keys[0].length;
    return FB_OK;
}

/* ---- batches of keys -------------------------------------------------------------------------- */

/* Widened keys, hashes (fb_hash_columns' definition, through the context's kernels) and liveness
 * (every key column valid) of rows start..start+m-1. */
static void load_batch(const fb_ctx *ctx, const fb_hash_table *t, const fb_column *keys, int64_t start, int64_t m,
                       fb_join_batch *b)
{
    const fb_kernel_table *kt = ctx->kt;
    b->any_null = 0;
    for (int c = 0; c < t->nk; c++) {
        const fb_column *col = &keys[c];
        fb_bits valid = {col->validity, col->offset + start};
        int64_t *k = b->k[c];
        b->kp[c] = k;
        if (col->type == FB_TYPE_INT64 || col->type == FB_TYPE_UINT64) {
            const uint64_t *v = (const uint64_t *)col->data + col->offset + start;
            memcpy(k, v, (size_t)m * 8);
            kt->hash_64(v, valid, m, b->h, c > 0);
        } else if (col->type == FB_TYPE_UINT32) {
            const uint32_t *v = (const uint32_t *)col->data + col->offset + start;
            for (int64_t j = 0; j < m; j++)
                k[j] = (int64_t)v[j];
            kt->hash_32(v, 1, valid, m, b->h, c > 0);
        } else {
            const uint32_t *v = (const uint32_t *)col->data + col->offset + start;
            for (int64_t j = 0; j < m; j++)
                k[j] = (int32_t)v[j];
            kt->hash_32(v, 0, valid, m, b->h, c > 0);
        }
        if (col->validity) {
            if (!b->any_null)
                memset(b->live, 1, (size_t)m);
            b->any_null = 1;
            for (int64_t j = 0; j < m; j++)
                b->live[j] &= (uint8_t)fb_bit_get(valid, j);
        }
    }
}

/* Buckets (+ 1, 0 = no match) of rows start..start+m-1 into b->found. */
static void probe_batch(const fb_ctx *ctx, const fb_hash_table *t, const fb_join_kernels *jk, const fb_column *keys,
                        int64_t start, int64_t m, fb_join_batch *b)
{
    if (t->distinct == 0) {
        memset(b->found, 0, (size_t)m * 8);
        return;
    }
    load_batch(ctx, t, keys, start, m, b);
    int shift = 64 - t->log2cap;
    size_t w = bucket_words(t->nk);
    for (int64_t j = 0; j < m; j++)
        __builtin_prefetch(t->buckets + (b->h[j] >> shift) * w);
    jk->find_heads(t->buckets, t->nk, shift, b->h, b->kp, b->any_null ? b->live : NULL, m, b->found);
}

/* ---- create / destroy ------------------------------------------------------------------------- */

fb_status fb_hash_table_create(fb_ctx *ctx, const fb_type *key_types, size_t n_keys, int64_t expected_rows,
                               fb_hash_table **out)
{
    FB_RETURN_ERROR_IF(!ctx, NULL, FB_ERR_INVALID_ARG, "ctx must not be NULL");
    FB_RETURN_ERROR_IF(!key_types || !out, ctx, FB_ERR_INVALID_ARG, "key_types and out must not be NULL");
    FB_RETURN_ERROR_IF(n_keys < 1 || n_keys > FB_JOIN_MAX_KEYS, ctx, FB_ERR_INVALID_ARG,
                       "n_keys is %zu; a table takes 1 to %d key columns", n_keys, FB_JOIN_MAX_KEYS);
    FB_RETURN_ERROR_IF(expected_rows < 0 || expected_rows > FB_HASH_TABLE_MAX_ROWS, ctx, FB_ERR_INVALID_ARG,
                       "expected_rows %lld is outside 0..%lld", (long long)expected_rows,
                       (long long)FB_HASH_TABLE_MAX_ROWS);
    for (size_t c = 0; c < n_keys; c++)
        FB_RETURN_ERROR_IF(!key_type_ok(key_types[c]), ctx, FB_ERR_UNSUPPORTED_TYPE,
                           "key %zu has type %s; join keys are int32, int64, date32, uint32 or uint64", c,
                           fb_type_name(key_types[c]));
    fb_hash_table *t;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *t, &t));
    memset(t, 0, sizeof *t);
    t->ctx = ctx;
    t->nk = (int)n_keys;
    for (size_t c = 0; c < n_keys; c++)
        t->types[c] = key_types[c];
    t->log2cap = FB_JOIN_MIN_LOG2CAP;
    while (((int64_t)1 << t->log2cap) < 2 * expected_rows)
        t->log2cap++;
    size_t bytes = buckets_bytes(t->nk, t->log2cap);
    fb_status st = FB_ALLOC(ctx, bytes, &t->buckets);
    if (st != FB_OK) {
        fb_free(ctx, t, sizeof *t);
        return st;
    }
    buckets_init(t->buckets, bytes);
    *out = t;
    return FB_OK;
}

void fb_hash_table_destroy(fb_hash_table *t)
{
    if (!t)
        return;
    fb_free(t->ctx, t->buckets, buckets_bytes(t->nk, t->log2cap));
    fb_free(t->ctx, t->rows, (size_t)t->rows_cap * sizeof(fb_join_row));
    fb_free(t->ctx, t, sizeof *t);
}

int64_t fb_hash_table_rows(const fb_hash_table *t) { return t ? t->total_rows : 0; }
int64_t fb_hash_table_distinct(const fb_hash_table *t) { return t ? t->distinct : 0; }

/* ---- build ------------------------------------------------------------------------------------ */

static uint64_t rehash_key(const uint64_t *k, int nk)
{
    uint64_t h = fb_hash_u64(k[0]);
    for (int c = 1; c < nk; c++)
        h = h * FB_HASH_MUL ^ fb_hash_u64(k[c]);
    return h;
}

/* Moves every bucket of t into nb (2^log2cap zeroed buckets). */
static void rehash_into(const fb_hash_table *t, uint64_t *nb, int log2cap)
{
    size_t w = bucket_words(t->nk);
    uint64_t old_cap = (uint64_t)1 << t->log2cap, mask = ((uint64_t)1 << log2cap) - 1;
    int shift = 64 - log2cap;
    for (uint64_t i = 0; i < old_cap; i++) {
        const uint64_t *bk = t->buckets + i * w;
        if (!bk[t->nk])
            continue;
        uint64_t b = rehash_key(bk, t->nk) >> shift;
        while (nb[b * w + t->nk])
            b = (b + 1) & mask;
        memcpy(nb + b * w, bk, w * 8);
    }
}

/* Makes room for `add` more rows: row array and buckets (load ≤ 0.5 even if all are new keys).
 * Allocates everything first, so a failure leaves the table untouched. */
static fb_status reserve(fb_ctx *ctx, fb_hash_table *t, int64_t add)
{
    int64_t need_rows = t->n_rows + add;
    int64_t new_rows_cap = t->rows_cap;
    if (need_rows > new_rows_cap) {
        new_rows_cap = new_rows_cap * 2 > need_rows ? new_rows_cap * 2 : need_rows;
        if (new_rows_cap < 16)
            new_rows_cap = 16;
    }
    int new_log2 = t->log2cap;
    while (((int64_t)1 << new_log2) < 2 * (t->distinct + add))
        new_log2++;
    fb_join_row *nr = NULL;
    uint64_t *nb = NULL;
    if (new_rows_cap != t->rows_cap)
        FB_FORWARD_IF_ERROR(fb_alloc(ctx, (size_t)new_rows_cap * sizeof(fb_join_row), 64, (void **)&nr,
                                     "fb_hash_table_build"));
    if (new_log2 != t->log2cap) {
        fb_status st = fb_alloc(ctx, buckets_bytes(t->nk, new_log2), 64, (void **)&nb, "fb_hash_table_build");
        if (st != FB_OK) {
            fb_free(ctx, nr, (size_t)new_rows_cap * sizeof(fb_join_row));
            return st;
        }
    }
    if (nr) {
        if (t->n_rows)
            memcpy(nr, t->rows, (size_t)t->n_rows * sizeof(fb_join_row));
        fb_free(ctx, t->rows, (size_t)t->rows_cap * sizeof(fb_join_row));
        t->rows = nr;
        t->rows_cap = new_rows_cap;
    }
    if (nb) {
        buckets_init(nb, buckets_bytes(t->nk, new_log2));
        rehash_into(t, nb, new_log2);
        fb_free(ctx, t->buckets, buckets_bytes(t->nk, t->log2cap));
        t->buckets = nb;
        t->log2cap = new_log2;
    }
    return FB_OK;
}

static void insert_row(fb_hash_table *t, uint64_t h, const fb_join_batch *b, int64_t j, int64_t id)
{
    int nk = t->nk;
    size_t w = bucket_words(nk);
    uint64_t mask = ((uint64_t)1 << t->log2cap) - 1;
    uint64_t s = h >> (64 - t->log2cap);
    for (;;) {
        uint64_t *bk = t->buckets + s * w;
        if (!bk[nk]) {
            for (int c = 0; c < nk; c++)
                bk[c] = (uint64_t)b->k[c][j];
            bk[nk] = (uint64_t)id + 1;
            bk[nk + 1] = 0;
            t->distinct++;
            return;
        }
        int eq = 1;
        for (int c = 0; c < nk; c++)
            eq &= bk[c] == (uint64_t)b->k[c][j];
        if (eq) {
            int64_t r = t->n_rows++;
            uint32_t r1 = (uint32_t)(r + 1), head = (uint32_t)bk[nk + 1], tail = (uint32_t)(bk[nk + 1] >> 32);
            t->rows[r].id = id;
            t->rows[r].next = 0;
            t->rows[r].pad = 0;
            if (tail)
                t->rows[tail - 1].next = r1;
            else
                head = r1;
            bk[nk + 1] = (uint64_t)head | (uint64_t)r1 << 32;
            return;
        }
        s = (s + 1) & mask;
    }
}

fb_status fb_hash_table_build(fb_ctx *ctx, fb_hash_table *t, const fb_column *keys, size_t n_keys, int64_t first_row)
{
    int64_t n;
    FB_FORWARD_IF_ERROR(check_keys(ctx, t, keys, n_keys, &n, __func__));
    FB_RETURN_ERROR_IF(first_row < 0 || first_row > INT64_MAX - 1 - n, ctx, FB_ERR_INVALID_ARG,
                       "first_row %lld is negative or overflows with %lld rows", (long long)first_row, (long long)n);
    FB_RETURN_ERROR_IF(n > FB_HASH_TABLE_MAX_ROWS - t->total_rows, ctx, FB_ERR_CAPACITY,
                       "the table holds %lld rows; %lld more would pass FB_HASH_TABLE_MAX_ROWS",
                       (long long)t->total_rows, (long long)n);
    if (n == 0)
        return FB_OK;
    FB_FORWARD_IF_ERROR(reserve(ctx, t, n));
    fb_join_batch b;
    size_t w = bucket_words(t->nk);
    for (int64_t start = 0; start < n; start += FB_JOIN_BATCH) {
        int64_t m = n - start < FB_JOIN_BATCH ? n - start : FB_JOIN_BATCH;
        load_batch(ctx, t, keys, start, m, &b);
        int shift = 64 - t->log2cap;
        for (int64_t j = 0; j < m; j++)
            __builtin_prefetch(t->buckets + (b.h[j] >> shift) * w, 1);
        for (int64_t j = 0; j < m; j++) {
            if (b.any_null && !b.live[j]) {
                t->null_rows++;
                continue;
            }
            insert_row(t, b.h[j], &b, j, first_row + start + j);
        }
    }
    t->total_rows += n;
    return FB_OK;
}

/* ---- concurrent build (fb_join_internal.h) ---------------------------------------------------- */

/* A bucket's id word while its claimer writes the keys. */
#define FB_JOIN_BUCKET_BUSY UINT64_MAX

/* insert_row for several threads at once, on a table that does not grow: an empty bucket is claimed by
 * a compare-and-swap of its id word (0 -> busy), filled, then published (release); a thread meeting a
 * busy bucket waits for it before comparing keys. A further row of a key is appended to the key's chain
 * by a compare-and-swap of the bucket's head/tail word; the thread that replaced the old tail links it
 * to the new row (the swap's acquire orders that after the old tail's own writes). Chains end up in
 * the order of the swaps, not of the row ids. */
static void insert_row_shared(fb_hash_table *t, uint64_t h, const fb_join_batch *b, int64_t j, int64_t id)
{
    int nk = t->nk;
    size_t w = bucket_words(nk);
    uint64_t mask = ((uint64_t)1 << t->log2cap) - 1;
    uint64_t s = h >> (64 - t->log2cap);
    for (;;) {
        uint64_t *bk = t->buckets + s * w;
        uint64_t idw = __atomic_load_n(&bk[nk], __ATOMIC_ACQUIRE);
        if (!idw) {
            if (__atomic_compare_exchange_n(&bk[nk], &idw, FB_JOIN_BUCKET_BUSY, 0, __ATOMIC_ACQUIRE,
                                            __ATOMIC_ACQUIRE)) {
                for (int c = 0; c < nk; c++)
                    bk[c] = (uint64_t)b->k[c][j];
                __atomic_store_n(&bk[nk + 1], 0, __ATOMIC_RELAXED);
                __atomic_fetch_add(&t->distinct, 1, __ATOMIC_RELAXED);
                __atomic_store_n(&bk[nk], (uint64_t)id + 1, __ATOMIC_RELEASE);
                return;
            }
            /* lost the bucket: idw holds the winner's word */
        }
        while (idw == FB_JOIN_BUCKET_BUSY) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
            idw = __atomic_load_n(&bk[nk], __ATOMIC_ACQUIRE);
        }
        int eq = 1;
        for (int c = 0; c < nk; c++)
            eq &= bk[c] == (uint64_t)b->k[c][j];
        if (eq) {
            int64_t r = __atomic_fetch_add(&t->n_rows, 1, __ATOMIC_RELAXED);
            uint32_t r1 = (uint32_t)(r + 1);
            t->rows[r].id = id;
            t->rows[r].next = 0;
            t->rows[r].pad = 0;
            uint64_t old = __atomic_load_n(&bk[nk + 1], __ATOMIC_RELAXED), nw;
            do {
                uint32_t head = (uint32_t)old;
                nw = (uint64_t)(head ? head : r1) | (uint64_t)r1 << 32;
            } while (!__atomic_compare_exchange_n(&bk[nk + 1], &old, nw, 1, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
            uint32_t tail = (uint32_t)(old >> 32);
            if (tail)
                t->rows[tail - 1].next = r1;
            return;
        }
        s = (s + 1) & mask;
    }
}

fb_status fb_hash_table_reserve_shared(fb_ctx *ctx, fb_hash_table *t, int64_t rows)
{
    FB_RETURN_ERROR_IF(!t, ctx, FB_ERR_INVALID_ARG, "table must not be NULL");
    FB_RETURN_ERROR_IF(rows < 0 || rows > FB_HASH_TABLE_MAX_ROWS - t->total_rows, ctx, FB_ERR_CAPACITY,
                       "cannot reserve %lld rows in a table of %lld", (long long)rows, (long long)t->total_rows);
    FB_FORWARD_IF_ERROR(reserve(ctx, t, rows));
    t->shared_room = rows;
    return FB_OK;
}

fb_status fb_hash_table_build_shared(fb_ctx *ctx, fb_hash_table *t, const fb_column *keys, size_t n_keys,
                                     int64_t first_row)
{
    int64_t n;
    FB_FORWARD_IF_ERROR(check_keys(ctx, t, keys, n_keys, &n, __func__));
    FB_RETURN_ERROR_IF(first_row < 0 || first_row > INT64_MAX - 1 - n, ctx, FB_ERR_INVALID_ARG,
                       "first_row %lld is negative or overflows with %lld rows", (long long)first_row, (long long)n);
    if (n == 0)
        return FB_OK;
    if (__atomic_sub_fetch(&t->shared_room, n, __ATOMIC_RELAXED) < 0) {
        __atomic_add_fetch(&t->shared_room, n, __ATOMIC_RELAXED);
        return FB_ERROR(ctx, FB_ERR_CAPACITY, "%lld more rows pass what fb_hash_table_reserve_shared reserved",
                        (long long)n);
    }
    fb_join_batch b;
    size_t w = bucket_words(t->nk);
    int shift = 64 - t->log2cap;
    int64_t nulls = 0;
    for (int64_t start = 0; start < n; start += FB_JOIN_BATCH) {
        int64_t m = n - start < FB_JOIN_BATCH ? n - start : FB_JOIN_BATCH;
        load_batch(ctx, t, keys, start, m, &b);
        for (int64_t j = 0; j < m; j++)
            __builtin_prefetch(t->buckets + (b.h[j] >> shift) * w, 1);
        for (int64_t j = 0; j < m; j++) {
            if (b.any_null && !b.live[j]) {
                nulls++;
                continue;
            }
            insert_row_shared(t, b.h[j], &b, j, first_row + start + j);
        }
    }
    __atomic_fetch_add(&t->null_rows, nulls, __ATOMIC_RELAXED);
    __atomic_fetch_add(&t->total_rows, n, __ATOMIC_RELAXED);
    return FB_OK;
}

/* ---- probes ----------------------------------------------------------------------------------- */

fb_status fb_hash_table_probe(fb_ctx *ctx, const fb_hash_table *t, const fb_column *keys, size_t n_keys,
                              fb_join_type type, int64_t first_row, fb_join_cursor *cursor, fb_join_pairs *out)
{
    if (out) {
        out->length = 0;
        out->more = 0;
    }
    int64_t n;
    FB_FORWARD_IF_ERROR(check_keys(ctx, t, keys, n_keys, &n, __func__));
    FB_RETURN_ERROR_IF(!cursor || !out, ctx, FB_ERR_INVALID_ARG, "cursor and out must not be NULL");
    FB_RETURN_ERROR_IF(type != FB_JOIN_INNER && type != FB_JOIN_LEFT, ctx, FB_ERR_INVALID_ARG,
                       "join type %d is not inner or left; semi/anti use fb_hash_table_probe_select, mark "
                       "fb_hash_table_probe_mark", (int)type);
    FB_RETURN_ERROR_IF(out->capacity < 1, ctx, FB_ERR_CAPACITY, "out holds %lld pairs; at least 1 is needed",
                       (long long)out->capacity);
    FB_RETURN_ERROR_IF(!out->build_ids || !out->probe_ids, ctx, FB_ERR_INVALID_ARG,
                       "out->build_ids and out->probe_ids must not be NULL");
    FB_RETURN_ERROR_IF(first_row < 0 || first_row > INT64_MAX - n, ctx, FB_ERR_INVALID_ARG,
                       "first_row %lld is negative or overflows with %lld rows", (long long)first_row, (long long)n);
    FB_RETURN_ERROR_IF(cursor->row < 0 || cursor->row > n || cursor->chain > (uint64_t)t->n_rows ||
                           (cursor->chain && cursor->row == n),
                       ctx, FB_ERR_INVALID_ARG, "the cursor (row %lld) does not belong to this morsel of %lld rows",
                       (long long)cursor->row, (long long)n);
    const fb_join_kernels *jk = fb_join_kernels_get(ctx);
    const fb_join_row *rows = t->rows;
    const uint64_t *bks = t->buckets;
    size_t w = bucket_words(t->nk), idw = (size_t)t->nk;
    int64_t *bo = out->build_ids, *po = out->probe_ids, cap = out->capacity, cnt = 0;
    int left = type == FB_JOIN_LEFT;
    int64_t row = cursor->row;
    uint32_t chain = (uint32_t)cursor->chain;
    fb_join_batch b;
    while (row < n) {
        int64_t m = n - row < FB_JOIN_BATCH ? n - row : FB_JOIN_BATCH;
        probe_batch(ctx, t, jk, keys, row, m, &b);
        for (int64_t j = 0; j < m; j++) {
            uint32_t more_rows = b.found[j] ? (uint32_t)bks[(b.found[j] - 1) * w + idw + 1] : 0;
            if (more_rows)
                __builtin_prefetch(&rows[more_rows - 1]);
        }
        for (int64_t j = 0; j < m; j++) {
            int64_t pid = first_row + row + j;
            uint32_t c;
            if (j == 0 && chain) {
                c = chain; /* resume inside this row's chain */
            } else if (b.found[j]) {
                if (cnt == cap) {
                    cursor->row = row + j;
                    cursor->chain = 0;
                    out->length = cnt;
                    out->more = 1;
                    return FB_OK;
                }
                const uint64_t *bk = bks + (b.found[j] - 1) * w;
                bo[cnt] = (int64_t)bk[idw] - 1;
                po[cnt++] = pid;
                c = (uint32_t)bk[idw + 1];
            } else {
                if (left) {
                    if (cnt == cap) {
                        cursor->row = row + j;
                        cursor->chain = 0;
                        out->length = cnt;
                        out->more = 1;
                        return FB_OK;
                    }
                    bo[cnt] = -1;
                    po[cnt++] = pid;
                }
                continue;
            }
            while (c) {
                if (cnt == cap) {
                    cursor->row = row + j;
                    cursor->chain = c;
                    out->length = cnt;
                    out->more = 1;
                    return FB_OK;
                }
                bo[cnt] = rows[c - 1].id;
                po[cnt++] = pid;
                c = rows[c - 1].next;
            }
        }
        chain = 0;
        row += m;
    }
    cursor->row = n;
    cursor->chain = 0;
    out->length = cnt;
    out->more = 0;
    return FB_OK;
}

fb_status fb_hash_table_probe_select(fb_ctx *ctx, const fb_hash_table *t, const fb_column *keys, size_t n_keys,
                                     fb_join_type type, uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    int64_t n;
    FB_FORWARD_IF_ERROR(check_keys(ctx, t, keys, n_keys, &n, __func__));
    FB_RETURN_ERROR_IF(type != FB_JOIN_SEMI && type != FB_JOIN_ANTI, ctx, FB_ERR_INVALID_ARG,
                       "join type %d is not semi or anti", (int)type);
    FB_RETURN_ERROR_IF(!n_out || (!sel_out && n > 0), ctx, FB_ERR_INVALID_ARG, "sel_out and n_out must not be NULL");
    FB_RETURN_ERROR_IF(n > FB_MORSEL_MAX_ROWS, ctx, FB_ERR_INVALID_ARG,
                       "%lld probe rows; a selection vector holds at most FB_MORSEL_MAX_ROWS", (long long)n);
    FB_RETURN_ERROR_IF(capacity < n, ctx, FB_ERR_CAPACITY, "sel_out holds %lld indices, the morsel has %lld rows",
                       (long long)capacity, (long long)n);
    const fb_join_kernels *jk = fb_join_kernels_get(ctx);
    uint32_t want = type == FB_JOIN_SEMI;
    int64_t cnt = 0;
    fb_join_batch b;
    for (int64_t row = 0; row < n; row += FB_JOIN_BATCH) {
        int64_t m = n - row < FB_JOIN_BATCH ? n - row : FB_JOIN_BATCH;
        probe_batch(ctx, t, jk, keys, row, m, &b);
        for (int64_t j = 0; j < m; j++) {
            sel_out[cnt] = (uint32_t)(row + j);
            cnt += (b.found[j] != 0) == want;
        }
    }
    *n_out = cnt;
    return FB_OK;
}

fb_status fb_hash_table_probe_mark(fb_ctx *ctx, const fb_hash_table *t, const fb_column *keys, size_t n_keys,
                                   fb_column_out *out)
{
    if (out) {
        out->length = 0;
        out->null_count = 0;
    }
    int64_t n;
    FB_FORWARD_IF_ERROR(check_keys(ctx, t, keys, n_keys, &n, __func__));
    FB_RETURN_ERROR_IF(!out, ctx, FB_ERR_INVALID_ARG, "out must not be NULL");
    FB_RETURN_ERROR_IF(out->type != FB_TYPE_UINT8, ctx, FB_ERR_UNSUPPORTED_TYPE, "out has type %s; marks are uint8",
                       fb_type_name(out->type));
    FB_RETURN_ERROR_IF(out->capacity < n, ctx, FB_ERR_CAPACITY, "out holds %lld rows, the morsel has %lld",
                       (long long)out->capacity, (long long)n);
    FB_RETURN_ERROR_IF(!out->data && n > 0, ctx, FB_ERR_INVALID_ARG, "out->data must not be NULL");
    const fb_join_kernels *jk = fb_join_kernels_get(ctx);
    uint8_t *mark = out->data, *valid = out->validity;
    int has_build = t->total_rows > 0, build_null = t->null_rows > 0;
    int64_t nulls = 0;
    if (valid)
        memset(valid, 0, (size_t)(n + 7) / 8);
    fb_join_batch b;
    for (int64_t row = 0; row < n; row += FB_JOIN_BATCH) {
        int64_t m = n - row < FB_JOIN_BATCH ? n - row : FB_JOIN_BATCH;
        probe_batch(ctx, t, jk, keys, row, m, &b);
        if (t->distinct == 0) /* probe_batch skipped the keys: liveness is still needed */
            load_batch(ctx, t, keys, row, m, &b);
        for (int64_t j = 0; j < m; j++) {
            int hit = b.found[j] != 0;
            mark[row + j] = (uint8_t)hit;
            if (valid) {
                int live = !b.any_null || b.live[j];
                int is_null = !hit && ((!live && has_build) || build_null);
                nulls += is_null;
                if (!is_null)
                    valid[(row + j) >> 3] |= (uint8_t)(1u << ((row + j) & 7));
            }
        }
    }
    out->length = n;
    out->null_count = nulls;
    return FB_OK;
}

/* ---- radix partitioning ----------------------------------------------------------------------- */

fb_status fb_radix_partition(fb_ctx *ctx, const uint64_t *hashes, int64_t n, int bits, int shift, int64_t *offsets,
                             uint32_t *perm)
{
    FB_RETURN_ERROR_IF(!ctx, NULL, FB_ERR_INVALID_ARG, "ctx must not be NULL");
    FB_RETURN_ERROR_IF(n < 0 || n > FB_MORSEL_MAX_ROWS, ctx, FB_ERR_INVALID_ARG, "n %lld is outside 0..2^32-1",
                       (long long)n);
    FB_RETURN_ERROR_IF(bits < 1 || bits > FB_RADIX_MAX_BITS, ctx, FB_ERR_INVALID_ARG, "bits %d is outside 1..%d", bits,
                       FB_RADIX_MAX_BITS);
    FB_RETURN_ERROR_IF(shift < 0 || shift > 64 - bits, ctx, FB_ERR_INVALID_ARG, "shift %d is outside 0..%d", shift,
                       64 - bits);
    FB_RETURN_ERROR_IF(!offsets || (n > 0 && (!hashes || !perm)), ctx, FB_ERR_INVALID_ARG,
                       "hashes, offsets and perm must not be NULL");
    size_t parts = (size_t)1 << bits;
    uint32_t *wc;
    int64_t *pos;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, parts * 64, &wc));
    fb_status st = FB_ALLOC(ctx, parts * 8, &pos);
    if (st != FB_OK) {
        fb_free(ctx, wc, parts * 64);
        return st;
    }
    uint64_t pmask = parts - 1;
    memset(offsets, 0, (parts + 1) * 8);
    for (int64_t i = 0; i < n; i++)
        offsets[((hashes[i] >> shift) & pmask) + 1]++;
    for (size_t p = 0; p < parts; p++) {
        offsets[p + 1] += offsets[p];
        pos[p] = offsets[p];
    }
    fb_join_kernels_get(ctx)->scatter(hashes, n, shift, bits, offsets, pos, wc, perm);
    fb_free(ctx, pos, parts * 8);
    fb_free(ctx, wc, parts * 64);
    return FB_OK;
}
