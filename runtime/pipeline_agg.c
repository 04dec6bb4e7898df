/* pipeline_agg.c - grouped aggregation in the runtime (fb_query_add_agg(), fb_agg.h): an aggregation
 * sink that pre-aggregates per worker and spills partial aggregates into radix partitions, and a
 * second pipeline that merges each partition on one worker into its groups ("hashing is sorting").
 *
 * Fast path: one integer key column, integer (or date32) count/sum/min/max/avg. A worker's rows
 * become fixed-width *records* of 64-bit words: the ordered key, the row count (with the key-null
 * flag in bit 63), a null count per value column read, and per aggregate state a sum (one word for
 * inputs of at most 32 bits, whose partial sums cannot leave int64 before a table is flushed, two for
 * 64-bit inputs), a min or a max. A worker keeps one of:
 *   - a direct-indexed table (small key range): each slot in C interleaved copies (row j updates copy
 *     j % C), so that neighbouring rows of the same group do not wait on each other's stores, and a
 *     copy's words side by side (one cache line a row); count(*) with a sum (and a min and a max) of one
 *     int32 column without nulls -- A2's shape -- is one vector read-modify-write a row in the CPU
 *     variant's kernel (fb_agg_kernels.direct_fused_i32), other shapes one loop per word;
 *   - a cache-sized open-addressing table of records (pre-aggregation), emptied into the partitions
 *     when half full; when a flush finds that the table hardly reduced the rows, the next
 *     AGG_PASS_ROWS rows go to the partitions directly: as compact rows (key and value as they come,
 *     8 or 16 bytes, the count implicit) through a write-combining line per partition, when at most
 *     one value column is read and the row has no null; else one record per row.
 * Several narrow key columns are packed into one key word (agg_user::n_pack) and take the same paths;
 * integer keys that do not pack (int32 with int32, two int64s ...) have one record word each and a word
 * of their null flags (agg_layout::nx) and take the same paths but the direct table and compact rows.
 * Records land in 2^FB_AGG_PARTITION_BITS partitions by the top bits of the key's hash, in blocks
 * carved from slabs on the worker's NUMA node. The merge pipeline's source hands out partitions;
 * its sink aggregates a partition's records and compact rows (every worker's blocks) into a table,
 * grown as needed -- of the record layout for runs under 2^31 rows, else of wide entries (64-bit
 * counts, 128-bit sums) -- and writes the groups as typed columns on its worker's node, checking
 * integer sums against int64.
 *
 * Other specs (float aggregates, no keys) fall back to one fb_agg_table per worker, merged by combine
 * (one partition). The context may force the strategy (fb_ctx_agg_strategy()) where the spec leaves it AUTO.
 */
#include "fb_internal.h"
#include "fb/fb_topology.h"
#include "fb_agg_internal.h"
#include "fb_kernel_table.h"
#include "fb_pipeline_agg_internal.h"
#include "fb_pipeline_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

__extension__ typedef __int128 agg_i128;
__extension__ typedef unsigned __int128 agg_u128;

#define AGG_BATCH 2048
#define AGG_NPART (1 << FB_AGG_PARTITION_BITS)
/* Compact rows go to fewer, coarser partitions (the top AGG_CBITS bits of the hash): their
 * write-combining lines then stay in the L1 cache. Compact partition c holds the rows of radix
 * partitions c << AGG_CSHIFT .. (c + 1) << AGG_CSHIFT - 1, which the merge takes together. */
#ifndef AGG_CBITS
#define AGG_CBITS 10
#endif
#define AGG_CSHIFT (FB_AGG_PARTITION_BITS - AGG_CBITS)
#define AGG_PRE_SLOTS 8192              /* pre-aggregation table: slots (half of them used at most) */
#define AGG_PASS_ROWS (INT64_C(1) << 20) /* rows sent past a table that did not reduce, before a retry */
#define AGG_FLUSH_ROWS (INT64_C(1) << 30) /* rows a table takes before it is flushed: narrow sums of
                                             32-bit values and the 31-bit packed counts cannot overflow */
#define AGG_LOW31 UINT64_C(0x7FFFFFFF)
#define AGG_SLAB_BYTES ((size_t)32 << 20)
#define AGG_BLOCK_BYTES ((size_t)16 << 10)
#define AGG_MERGE_LIMIT(slots) ((int64_t)((slots) / 16 * 11)) /* a merge table's fill: about 0.69 */
#define AGG_MERGE_MIN 16384 /* records below which neighbouring partitions are merged together */
#define AGG_NULL_FLAG (UINT64_C(1) << 63)
#define AGG_USED_FLAG (UINT64_C(1) << 62)
#define AGG_CNT_MASK (AGG_USED_FLAG - 1)
#define AGG_NULL_HASH 0x2545F4914F6CDD1Dull
#define AGG_MAX_WORDS (2 + 3 * FB_AGG_MAX_AGGS + FB_AGG_MAX_KEYS)

enum { W_KEY, W_CNT, W_NULLS, W_SUM, W_SUMHI, W_MIN, W_MAX, W_KEYX };
enum { MODE_NONE, MODE_DIRECT, MODE_PRE, MODE_GENERIC };

/* ---- layout of records (narrow) and merge-table entries (wide) --------------------------------- */

typedef struct agg_layout {
    int W, WT;                    /* words of a record, of a merge-table entry */
    uint8_t kind[AGG_MAX_WORDS];  /* of each record word */
    uint8_t col[AGG_MAX_WORDS];   /* value index the word reads */
    uint16_t tw[AGG_MAX_WORDS];   /* its word in the merge table (a narrow sum widens to two) */
    int nulls_w[FB_AGG_MAX_AGGS]; /* per aggregate (not count(*)): record word of its column's null count
                                     (1 when packed) */
    int packed;                   /* one value column is read: its null count lives in bits 31..61 of the
                                     count word (record and pre-aggregation entries), which saves a word */
    int pn_col, pn_t;             /* that column, and its null count's word in the merge table */
    int acc_w[FB_AGG_MAX_AGGS];   /* per sum/avg/min/max: record word of its state */
    int nx, xw;                   /* keys that do not pack into one word (agg_user::n_pack 0, 2..4 keys):
                                     word 0 holds key 0, the nx words from xw on (W_KEYX, the last ones)
                                     keys 1..nx-1 and the keys' null flags (bit k: key k); a null key's
                                     word is 0. Else nx 0. */
} agg_layout;

static void layout_build(agg_layout *L, const fb_agg_spec *spec, int nx)
{
    int w = 0, t = 0;
    int col_nulls[FB_AGG_MAX_AGGS];
    for (int i = 0; i < FB_AGG_MAX_AGGS; i++)
        col_nulls[i] = -1;
    L->kind[w] = W_KEY, L->tw[w++] = (uint16_t)t++;
    L->kind[w] = W_CNT, L->tw[w++] = (uint16_t)t++;
    int n_cols = 0;
    uint8_t seen[FB_AGG_MAX_AGGS] = {0};
    for (size_t a = 0; a < spec->n_aggs; a++)
        if (spec->aggs[a].kind != FB_AGG_COUNT_STAR && !seen[spec->aggs[a].input])
            seen[spec->aggs[a].input] = 1, n_cols++;
    L->packed = 0;
    for (size_t a = 0; a < spec->n_aggs; a++) {
        const fb_agg_desc *d = &spec->aggs[a];
        L->nulls_w[a] = L->acc_w[a] = -1;
        if (d->kind == FB_AGG_COUNT_STAR)
            continue;
        if (n_cols == 1) {
            if (!L->packed)
                L->packed = 1, L->pn_col = d->input, L->pn_t = t++;
            L->nulls_w[a] = 1;
            continue;
        }
        if (col_nulls[d->input] < 0) {
            col_nulls[d->input] = w;
            L->kind[w] = W_NULLS, L->col[w] = (uint8_t)d->input, L->tw[w++] = (uint16_t)t++;
        }
        L->nulls_w[a] = col_nulls[d->input];
    }
    for (size_t a = 0; a < spec->n_aggs; a++) {
        const fb_agg_desc *d = &spec->aggs[a];
        if (d->kind == FB_AGG_COUNT_STAR || d->kind == FB_AGG_COUNT)
            continue;
        int want = d->kind == FB_AGG_AVG ? W_SUM : d->kind == FB_AGG_SUM ? W_SUM : d->kind == FB_AGG_MIN ? W_MIN : W_MAX;
        int found = -1; /* sum and avg of one column share a state; so do equal min/max */
        for (int i = 2; i < w && found < 0; i++)
            if (L->kind[i] == want && L->col[i] == (uint8_t)d->input)
                found = i;
        if (found < 0) {
            found = w;
            L->kind[w] = (uint8_t)want, L->col[w] = (uint8_t)d->input, L->tw[w++] = (uint16_t)t;
            if (want == W_SUM) {
                t += 2;
                if (fb_type_width(d->type) == 8)
                    L->kind[w] = W_SUMHI, L->col[w] = (uint8_t)d->input, L->tw[w++] = (uint16_t)(t - 1);
            } else {
                t++;
            }
        }
        L->acc_w[a] = found;
    }
    L->nx = nx, L->xw = w;
    for (int i = 0; i < nx; i++)
        L->kind[w] = W_KEYX, L->col[w] = (uint8_t)i, L->tw[w++] = (uint16_t)t++;
    L->W = w;
    L->WT = t;
}

static int sum_is_wide(const agg_layout *L, int i) { return i + 1 < L->W && L->kind[i + 1] == W_SUMHI; }

static uint64_t word_identity(int kind)
{
    return kind == W_MIN ? (uint64_t)INT64_MAX : kind == W_MAX ? (uint64_t)INT64_MIN : 0;
}

static inline uint64_t rec_hash(uint64_t key, uint64_t w1)
{
    return (w1 & AGG_NULL_FLAG) ? AGG_NULL_HASH : fb_hash_u64(key);
}

/* Word i of a record's extra key words, in a record (wide 0) or a merge-table entry (wide 1). */
static inline size_t xword(const agg_layout *L, int wide, int i)
{
    return wide ? L->tw[L->xw + i] : (size_t)(L->xw + i);
}

/* The hash of a record's (or an entry's) key: rec_hash, or over every key word: each step (a
 * multiply and a rotation) is a bijection of the words so far, so keys that differ in a later word only
 * meet by chance, and one finalizer mixes the result. */
static inline uint64_t key_hash(const agg_layout *L, int wide, const uint64_t *r)
{
    if (!L->nx)
        return rec_hash(r[0], r[1]);
    uint64_t x = r[0];
    for (int i = 0; i < L->nx; i++) {
        x *= UINT64_C(0x9E3779B97F4A7C15);
        x = (x << 31 | x >> 33) ^ r[xword(L, wide, i)];
    }
    return fb_hash_u64(x);
}

/* ---- typed columns <-> ordered int64 ------------------------------------------------------------ */

#define AGG_ROW(j) (sel ? (int64_t)sel[j] : base + (j))

/* One loop for a selection and one for a plain range (which the compiler vectorizes). */
#define AGG_LOAD(T, x)                                                                                   \
    do {                                                                                                 \
        const T *d_ = (const T *)d;                                                                      \
        if (sel)                                                                                         \
            for (int64_t j = 0; j < n; j++) {                                                            \
                T v_ = d_[sel[j]];                                                                       \
                out[j] = (x);                                                                            \
            }                                                                                            \
        else                                                                                             \
            for (int64_t j = 0; j < n; j++) {                                                            \
                T v_ = d_[base + j];                                                                     \
                out[j] = (x);                                                                            \
            }                                                                                            \
    } while (0)

static void load_ordered(const fb_column *c, const uint32_t *sel, int64_t base, int64_t n, int64_t *out)
{
    const char *d = (const char *)c->data + c->offset * (int64_t)fb_type_width(c->type);
    switch (c->type) {
    case FB_TYPE_INT8: AGG_LOAD(int8_t, v_); break;
    case FB_TYPE_INT16: AGG_LOAD(int16_t, v_); break;
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: AGG_LOAD(int32_t, v_); break;
    case FB_TYPE_UINT8: AGG_LOAD(uint8_t, v_); break;
    case FB_TYPE_UINT16: AGG_LOAD(uint16_t, v_); break;
    case FB_TYPE_UINT32: AGG_LOAD(uint32_t, v_); break;
    case FB_TYPE_UINT64: AGG_LOAD(uint64_t, (int64_t)(v_ ^ 0x8000000000000000ull)); break;
    default: AGG_LOAD(int64_t, v_); break;
    }
}
#undef AGG_LOAD

/* valid[j] = 1/0; returns 0 when the column has no validity (valid is then not written). */
static int load_valid(const fb_column *c, const uint32_t *sel, int64_t base, int64_t n, uint8_t *valid)
{
    if (!c->validity)
        return 0;
    for (int64_t j = 0; j < n; j++) {
        int64_t b = c->offset + AGG_ROW(j);
        valid[j] = (c->validity[b >> 3] >> (b & 7)) & 1;
    }
    return 1;
}

/* NUMA memory for large, freshly written regions: asks for transparent huge pages, which turn the
 * 512 page faults of every 2 MiB written into one (a run writes all its partitions anew). */
static fb_status agg_alloc(fb_ctx *ctx, int node, size_t bytes, void **out)
{
    FB_FORWARD_IF_ERROR(fb_numa_alloc(ctx, node, bytes, out));
#ifdef MADV_HUGEPAGE
    if (bytes >= ((size_t)2 << 20)) {
        uintptr_t a = ((uintptr_t)*out + 4095) & ~(uintptr_t)4095, e = ((uintptr_t)*out + bytes) & ~(uintptr_t)4095;
        if (e > a)
            (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
    }
#endif
    return FB_OK;
}

/* The node a worker's memory is taken from: its own; on a machine with one NUMA node, none (-1): the
 * memory then comes from the context's allocator (an engine's pool, or malloc), which can keep freed
 * blocks for the next query, where memory fresh from the system costs the kernel a zeroing pass per
 * page (measured: half the CPU time of A1 when every run mapped its partitions anew). */
static int agg_mem_node(fb_ctx *ctx, int node)
{
    fb_topology_info info;
    if (fb_topology_get_info(ctx, &info) == FB_OK && info.numa_nodes == 1 && !info.synthetic)
        return -1;
    return node;
}

/* ---- partitions: blocks of records in slabs on a worker's node ---------------------------------- */

typedef struct agg_block {
    struct agg_block *next;
    int64_t n; /* records, set when the block is closed */
    char pad[48];
} agg_block;

typedef struct agg_slab {
    struct agg_slab *next;
    size_t bytes;
    char pad[48];
} agg_slab;

/* A worker's partitions. Two chains per partition: records of W words (partial aggregates), and
 * compact rows (one input row each, AGG_ROW_BYTES: see compact_*), written through a
 * software write-combining buffer of one cache line per partition and streamed out line by line. */
typedef struct agg_parts {
    uint64_t *cur[AGG_NPART], *end[AGG_NPART];
    agg_block *head[AGG_NPART], *tail[AGG_NPART];
    char *ccur[AGG_NPART], *cend[AGG_NPART];
    agg_block *chead[AGG_NPART], *ctail[AGG_NPART];
    uint8_t cfill[AGG_NPART]; /* bytes in the partition's write-combining line */
    uint64_t *wc;             /* AGG_NPART lines of 64 bytes */
    agg_slab *slabs;
    char *slab_cur, *slab_end;
    int n_slabs;
    int node;
    int rs;                   /* compact row bytes: 8 or 16 */
    int64_t records;
} agg_parts;

static void parts_free(fb_ctx *ctx, agg_parts *P)
{
    while (P->slabs) {
        agg_slab *s = P->slabs;
        P->slabs = s->next;
        fb_numa_free(ctx, P->node, s, s->bytes);
    }
    fb_numa_free(ctx, P->node, P->wc, (size_t)AGG_NPART * 64);
    P->wc = NULL;
}

/* A fresh block from the worker's slabs (slabs grow from 2 MiB to AGG_SLAB_BYTES: small runs stay
 * small, large ones take few blocks of the context's cache). */
static fb_status parts_block(fb_ctx *ctx, agg_parts *P, agg_block **out)
{
    if (P->slab_cur + AGG_BLOCK_BYTES > P->slab_end) {
        agg_slab *s;
        size_t bytes = ((size_t)2 << 20) << (P->n_slabs < 4 ? P->n_slabs : 4);
        bytes = bytes < AGG_SLAB_BYTES ? bytes : AGG_SLAB_BYTES;
        FB_FORWARD_IF_ERROR(agg_alloc(ctx, P->node, bytes, (void **)&s));
        s->next = P->slabs;
        s->bytes = bytes;
        P->slabs = s;
        P->n_slabs++;
        P->slab_cur = (char *)s + sizeof *s;
        P->slab_end = (char *)s + bytes;
    }
    agg_block *b = (agg_block *)P->slab_cur;
    P->slab_cur += AGG_BLOCK_BYTES;
    b->next = NULL;
    b->n = 0;
    *out = b;
    return FB_OK;
}

/* Opens a new block for partition p. */
static fb_status parts_new_block(fb_ctx *ctx, agg_parts *P, int p, int W)
{
    agg_block *b;
    FB_FORWARD_IF_ERROR(parts_block(ctx, P, &b));
    b->next = NULL;
    b->n = 0;
    if (P->tail[p]) {
        P->tail[p]->n = (P->cur[p] - (uint64_t *)(P->tail[p] + 1)) / W;
        P->tail[p]->next = b;
    } else {
        P->head[p] = b;
    }
    P->tail[p] = b;
    P->cur[p] = (uint64_t *)(b + 1);
    P->end[p] = P->cur[p] + ((AGG_BLOCK_BYTES - sizeof *b) / (8 * (size_t)W)) * (size_t)W;
    return FB_OK;
}

/* Bytes of compact rows a block holds: whole lines. */
#define AGG_CBLOCK_PAYLOAD ((AGG_BLOCK_BYTES - sizeof(agg_block)) / 64 * 64)

/* Opens a new block of compact rows for partition p. */
static fb_status compact_new_block(fb_ctx *ctx, agg_parts *P, int p)
{
    agg_block *b;
    FB_FORWARD_IF_ERROR(parts_block(ctx, P, &b));
    if (P->ctail[p]) {
        P->ctail[p]->n = (P->ccur[p] - (char *)(P->ctail[p] + 1)) / P->rs;
        P->ctail[p]->next = b;
    } else {
        P->chead[p] = b;
    }
    P->ctail[p] = b;
    P->ccur[p] = (char *)(b + 1);
    P->cend[p] = P->ccur[p] + AGG_CBLOCK_PAYLOAD;
    return FB_OK;
}

/* Writes partition p's full write-combining line to its block, past the caches. */
static fb_status compact_flush_line(fb_ctx *ctx, agg_parts *P, int p)
{
    if (__builtin_expect(P->ccur[p] == P->cend[p], 0))
        FB_FORWARD_IF_ERROR(compact_new_block(ctx, P, p));
    const uint64_t *src = P->wc + (size_t)p * 8;
#if defined(__SSE2__)
    __m128i *d = (__m128i *)(void *)P->ccur[p];
    const __m128i *s = (const __m128i *)(const void *)src;
    _mm_stream_si128(d, _mm_load_si128(s));
    _mm_stream_si128(d + 1, _mm_load_si128(s + 1));
    _mm_stream_si128(d + 2, _mm_load_si128(s + 2));
    _mm_stream_si128(d + 3, _mm_load_si128(s + 3));
#else
    memcpy(P->ccur[p], src, 64);
#endif
    P->ccur[p] += 64;
    return FB_OK;
}

/* Compact rows of one batch: keys and values as ordered int64 (vals NULL: no value column). rs 8:
 * the key's low 32 bits and the value's in one word; rs 16: key and value words. */
static fb_status compact_put(fb_ctx *ctx, agg_parts *P, const int64_t *keys, const int64_t *vals, int64_t m,
                             uint64_t *h)
{
    uint64_t *wc = P->wc;
    uint8_t *fill = P->cfill;
    ctx->kt->hash_64((const uint64_t *)keys, (fb_bits){NULL, 0}, m, h, 0); /* the CPU variant's vector hash */
    if (P->rs == 8) {
        for (int64_t j = 0; j < m; j++) {
            uint64_t k = (uint64_t)keys[j];
            int p = (int)(h[j] >> (64 - AGG_CBITS));
            unsigned f = fill[p];
            wc[(size_t)p * 8 + (f >> 3)] = (k & 0xFFFFFFFFu) | (vals ? (uint64_t)vals[j] << 32 : 0);
            f += 8;
            if (f == 64) {
                FB_FORWARD_IF_ERROR(compact_flush_line(ctx, P, p));
                f = 0;
            }
            fill[p] = (uint8_t)f;
        }
    } else {
        for (int64_t j = 0; j < m; j++) {
            uint64_t k = (uint64_t)keys[j];
            int p = (int)(h[j] >> (64 - AGG_CBITS));
            unsigned f = fill[p];
            uint64_t *d = wc + (size_t)p * 8 + (f >> 3);
            d[0] = k;
            d[1] = vals ? (uint64_t)vals[j] : 0;
            f += 16;
            if (f == 64) {
                FB_FORWARD_IF_ERROR(compact_flush_line(ctx, P, p));
                f = 0;
            }
            fill[p] = (uint8_t)f;
        }
    }
    P->records += m;
    return FB_OK;
}

/* compact_put with rs 8 for an int32 (date32) key column and an int32 value column (or none) read
 * in place, rows base..base+m-1. */
static fb_status compact_put_i32(fb_ctx *ctx, agg_parts *P, const int32_t *keys, const int32_t *vals, int64_t m,
                                 uint64_t *h)
{
    uint64_t *wc = P->wc;
    uint8_t *fill = P->cfill;
    ctx->kt->hash_32((const uint32_t *)keys, 0, (fb_bits){NULL, 0}, m, h, 0);
    for (int64_t j = 0; j < m; j++) {
        uint32_t k = (uint32_t)keys[j];
        int p = (int)(h[j] >> (64 - AGG_CBITS));
        unsigned f = fill[p];
        wc[(size_t)p * 8 + (f >> 3)] = k | (vals ? (uint64_t)(uint32_t)vals[j] << 32 : 0);
        f += 8;
        if (f == 64) {
            FB_FORWARD_IF_ERROR(compact_flush_line(ctx, P, p));
            f = 0;
        }
        fill[p] = (uint8_t)f;
    }
    P->records += m;
    return FB_OK;
}

/* Ends phase 1 for a worker's partitions: the partial lines go out, every block gets its count. */
static fb_status parts_close(fb_ctx *ctx, agg_parts *P, int W)
{
    for (int p = 0; p < AGG_NPART; p++)
        if (P->tail[p])
            P->tail[p]->n = (P->cur[p] - (uint64_t *)(P->tail[p] + 1)) / W;
    if (!P->wc)
        return FB_OK;
#if defined(__SSE2__)
    _mm_sfence();
#endif
    for (int p = 0; p < AGG_NPART; p++) {
        if (P->cfill[p]) {
            if (P->ccur[p] == P->cend[p])
                FB_FORWARD_IF_ERROR(compact_new_block(ctx, P, p));
            memcpy(P->ccur[p], P->wc + (size_t)p * 8, P->cfill[p]);
            P->ccur[p] += P->cfill[p];
            P->cfill[p] = 0;
        }
        if (P->ctail[p])
            P->ctail[p]->n = (P->ccur[p] - (char *)(P->ctail[p] + 1)) / P->rs;
    }
    return FB_OK;
}

/* Appends one record (W words) with hash h. */
static inline fb_status parts_put(fb_ctx *ctx, agg_parts *P, const uint64_t *rec, uint64_t h, int W)
{
    int p = (int)(h >> (64 - FB_AGG_PARTITION_BITS));
    if (__builtin_expect(P->cur[p] == P->end[p], 0))
        FB_FORWARD_IF_ERROR(parts_new_block(ctx, P, p, W));
    uint64_t *d = P->cur[p];
    for (int i = 0; i < W; i++)
        d[i] = rec[i];
    P->cur[p] = d + W;
    return FB_OK;
}

/* parts_put for m records of W words (a fixed W lets the compiler copy a record in two vector moves). */
#define AGG_PUT_LOOP(W_)                                                                                 \
    for (int64_t j = 0; j < m; j++) {                                                                    \
        int p = (int)(h[j] >> (64 - FB_AGG_PARTITION_BITS));                                             \
        if (__builtin_expect(P->cur[p] == P->end[p], 0))                                                 \
            FB_FORWARD_IF_ERROR(parts_new_block(ctx, P, p, W_));                                         \
        uint64_t *d = P->cur[p];                                                                         \
        memcpy(d, rec + j * (W_), (W_) * 8);                                                             \
        P->cur[p] = d + (W_);                                                                            \
    }
static fb_status parts_put_many(fb_ctx *ctx, agg_parts *P, const uint64_t *rec, const uint64_t *h, int64_t m, int W)
{
    switch (W) {
    case 3: AGG_PUT_LOOP(3) break;
    case 4: AGG_PUT_LOOP(4) break;
    case 5: AGG_PUT_LOOP(5) break;
    case 6: AGG_PUT_LOOP(6) break;
    default:
        for (int64_t j = 0; j < m; j++)
            FB_FORWARD_IF_ERROR(parts_put(ctx, P, rec + j * W, h[j], W));
        break;
    }
    P->records += m;
    return FB_OK;
}
#undef AGG_PUT_LOOP

/* ---- merging records into a table of entries ---------------------------------------------------- */

/* Adds records rec[j] (W words each) into entries tbl + gid[j] * TW; wide: entries have the merge
 * table's layout (two-word sums), else the record layout. */
static void merge_records(const agg_layout *L, int wide, uint64_t *tbl, const uint32_t *gid, const uint64_t *rec,
                          int64_t m)
{
    const int W = L->W, TW = wide ? L->WT : L->W;
    if (wide && W == 3 && L->packed && L->kind[2] == W_SUM) {
        /* count(*) and sum (count(v), avg) of one narrow column: one pass touches each entry once */
        const size_t pn = (size_t)L->pn_t, ts = L->tw[2];
        for (int64_t j = 0; j < m; j++) {
            uint64_t *e = tbl + (size_t)gid[j] * TW, c = rec[j * 3 + 1];
            agg_u128 x = ((agg_u128)e[ts + 1] << 64 | e[ts]) + (agg_u128)(agg_i128)(int64_t)rec[j * 3 + 2];
            e[1] += c & AGG_LOW31;
            e[pn] += (c >> 31) & AGG_LOW31;
            e[ts] = (uint64_t)x, e[ts + 1] = (uint64_t)(x >> 64);
        }
        return;
    }
    for (int i = 1; i < W; i++) {
        const int t = wide ? L->tw[i] : i;
        const uint64_t *r = rec + i;
        switch (L->kind[i]) {
        case W_CNT:
            if (!wide) /* a packed null count rides along: both stay below 2^31 */
                for (int64_t j = 0; j < m; j++)
                    tbl[(size_t)gid[j] * TW + 1] += r[j * W] & AGG_CNT_MASK;
            else if (L->packed)
                for (int64_t j = 0; j < m; j++) {
                    uint64_t *e = tbl + (size_t)gid[j] * TW;
                    e[1] += r[j * W] & AGG_LOW31;
                    e[L->pn_t] += (r[j * W] >> 31) & AGG_LOW31;
                }
            else
                for (int64_t j = 0; j < m; j++)
                    tbl[(size_t)gid[j] * TW + 1] += r[j * W] & AGG_LOW31;
            break;
        case W_NULLS:
            for (int64_t j = 0; j < m; j++)
                tbl[(size_t)gid[j] * TW + t] += r[j * W];
            break;
        case W_SUM:
            if (sum_is_wide(L, i)) {
                for (int64_t j = 0; j < m; j++) {
                    uint64_t *e = tbl + (size_t)gid[j] * TW + t;
                    agg_u128 x = ((agg_u128)e[1] << 64 | e[0]) + ((agg_u128)r[j * W + 1] << 64 | r[j * W]);
                    e[0] = (uint64_t)x, e[1] = (uint64_t)(x >> 64);
                }
            } else if (wide) {
                for (int64_t j = 0; j < m; j++) {
                    uint64_t *e = tbl + (size_t)gid[j] * TW + t;
                    agg_u128 x = ((agg_u128)e[1] << 64 | e[0]) + (agg_u128)(agg_i128)(int64_t)r[j * W];
                    e[0] = (uint64_t)x, e[1] = (uint64_t)(x >> 64);
                }
            } else {
                for (int64_t j = 0; j < m; j++)
                    tbl[(size_t)gid[j] * TW + t] += r[j * W];
            }
            break;
        case W_MIN:
            for (int64_t j = 0; j < m; j++) {
                int64_t *e = (int64_t *)tbl + (size_t)gid[j] * TW + t, v = (int64_t)r[j * W];
                *e = v < *e ? v : *e;
            }
            break;
        case W_MAX:
            for (int64_t j = 0; j < m; j++) {
                int64_t *e = (int64_t *)tbl + (size_t)gid[j] * TW + t, v = (int64_t)r[j * W];
                *e = v > *e ? v : *e;
            }
            break;
        default: /* W_SUMHI: with its W_SUM */
            break;
        }
    }
}

/* Claims an empty entry for record r: key, flags, identities. */
static void entry_init(const agg_layout *L, int wide, uint64_t *e, const uint64_t *r)
{
    const int TW = wide ? L->WT : L->W;
    for (int i = 0; i < TW; i++)
        e[i] = 0;
    for (int i = 2; i < L->W; i++)
        if (L->kind[i] == W_MIN || L->kind[i] == W_MAX)
            e[wide ? L->tw[i] : i] = word_identity(L->kind[i]);
    e[0] = r[0];
    e[1] = (r[1] & AGG_NULL_FLAG) | AGG_USED_FLAG;
    for (int i = 0; i < L->nx; i++)
        e[xword(L, wide, i)] = r[L->xw + i];
}

/* Whether entry e holds the extra key words of record r. */
static inline int xkeys_equal(const agg_layout *L, int wide, const uint64_t *e, const uint64_t *r)
{
    for (int i = 0; i < L->nx; i++)
        if (e[xword(L, wide, i)] != r[L->xw + i])
            return 0;
    return 1;
}

/* An open-addressing table of entries (linear probing on the hash's low bits). */
typedef struct agg_table {
    uint64_t *e;
    size_t slots; /* power of two */
    int64_t groups;
    int64_t limit; /* groups it takes at most (a fraction of slots) */
    int node;
} agg_table;

/* Finds or claims the entry of each record; stops before the record that would take the table past
 * half full and returns how many got their gid. */
static int64_t table_probe(const agg_layout *L, int wide, agg_table *T, const uint64_t *rec, const uint64_t *h,
                           int64_t m, uint32_t *gid)
{
    const int W = L->W, TW = wide ? L->WT : L->W;
    const size_t mask = T->slots - 1;
    const int64_t limit = T->limit;
    for (int64_t j = 0; j < m; j++) {
        if (j + 8 < m)
            __builtin_prefetch(T->e + (h[j + 8] & mask) * TW, 1);
        const uint64_t *r = rec + j * W;
        uint64_t key = r[0], nf = r[1] & AGG_NULL_FLAG;
        size_t p = h[j] & mask;
        for (;;) {
            uint64_t *e = T->e + p * TW;
            if (!(e[1] & AGG_USED_FLAG)) {
                if (T->groups >= limit)
                    return j;
                entry_init(L, wide, e, r);
                T->groups++;
                break;
            }
            if (e[0] == key && (e[1] & AGG_NULL_FLAG) == nf && (!L->nx || xkeys_equal(L, wide, e, r)))
                break;
            p = (p + 1) & mask;
        }
        gid[j] = (uint32_t)p;
    }
    return m;
}

/* ---- the shared object and the result ----------------------------------------------------------- */

typedef struct agg_out {
    int64_t rows;
    void *buf; /* in one of the result's slabs */
    uint64_t key_nulls; /* bit k: key column k has a null */
    uint64_t agg_nulls; /* bit a: aggregate a has a null */
} agg_out;

struct fb_agg_groups {
    fb_ctx *ctx;
    fb_agg_spec spec;
    fb_type key_types[FB_AGG_MAX_KEYS];
    fb_agg_desc aggs[FB_AGG_MAX_AGGS];
    fb_type rtypes[FB_AGG_MAX_AGGS];
    int n_parts;
    int done;
    agg_out *parts;
    fb_agg_path_counts paths;
    struct agg_oslab *slabs; /* memory of the partitions' columns */
    int shared_refs; /* the query's stages that still point here; the caller's reference is separate */
    int caller_ref;
};

/* Byte offsets of a partition's columns in its buffer: keys, then aggregates; each data array and
 * each validity bitmap rounded up to 64 bytes. */
static size_t round64(size_t x) { return (x + 63) & ~(size_t)63; }

static size_t out_layout(const fb_agg_groups *g, int64_t rows, size_t *data_off, size_t *valid_off)
{
    size_t off = 0, n = 0;
    for (size_t k = 0; k < g->spec.n_keys; k++, n++) {
        data_off[n] = off;
        off += round64((size_t)rows * fb_type_width(g->key_types[k]));
        valid_off[n] = off;
        off += round64(((size_t)rows + 7) / 8);
    }
    for (size_t a = 0; a < g->spec.n_aggs; a++, n++) {
        data_off[n] = off;
        off += round64((size_t)rows * fb_type_width(g->rtypes[a]));
        valid_off[n] = off;
        off += round64(((size_t)rows + 7) / 8);
    }
    return off ? off : 64;
}

/* A slab that partitions' columns are carved from (one merge worker's, on its node). */
typedef struct agg_oslab {
    struct agg_oslab *next;
    size_t bytes;
    int node;
    char pad[40];
} agg_oslab;

static void oslabs_free(fb_ctx *ctx, agg_oslab *s)
{
    while (s) {
        agg_oslab *n = s->next;
        fb_numa_free(ctx, s->node, s, s->bytes);
        s = n;
    }
}

static void groups_free_parts(fb_agg_groups *g)
{
    oslabs_free(g->ctx, g->slabs);
    g->slabs = NULL;
    if (!g->parts)
        return;
    fb_free(g->ctx, g->parts, (size_t)g->n_parts * sizeof *g->parts);
    g->parts = NULL;
}

static void groups_unref(fb_agg_groups *g, int caller)
{
    if (caller)
        g->caller_ref = 0;
    else
        g->shared_refs--;
    if (g->shared_refs == 0 && !g->caller_ref) {
        groups_free_parts(g);
        fb_free(g->ctx, g, sizeof *g);
    }
}

void fb_agg_groups_destroy(fb_agg_groups *g)
{
    if (g)
        groups_unref(g, 1);
}

int64_t fb_agg_groups_count(const fb_agg_groups *g)
{
    if (!g || !g->done)
        return 0;
    int64_t n = 0;
    for (int p = 0; p < g->n_parts; p++)
        n += g->parts[p].rows;
    return n;
}

int fb_agg_groups_partitions(const fb_agg_groups *g) { return g && g->done ? g->n_parts : 0; }

void fb_agg_groups_paths(const fb_agg_groups *g, fb_agg_path_counts *out)
{
    memset(out, 0, sizeof *out);
    if (g && g->done)
        *out = g->paths;
}

fb_status fb_agg_groups_partition(const fb_agg_groups *g, int p, fb_column *keys, fb_column *aggs, int64_t *rows)
{
    FB_RETURN_ERROR_IF(!g || !rows, g ? g->ctx : NULL, FB_ERR_INVALID_ARG, "g and rows must not be NULL");
    FB_RETURN_ERROR_IF(!g->done, g->ctx, FB_ERR_INVALID_ARG, "the aggregation has not run to its end");
    FB_RETURN_ERROR_IF(p < 0 || p >= g->n_parts, g->ctx, FB_ERR_INVALID_ARG, "partition %d of %d", p, g->n_parts);
    FB_RETURN_ERROR_IF((g->spec.n_keys && !keys) || (g->spec.n_aggs && !aggs), g->ctx, FB_ERR_INVALID_ARG,
                       "keys and aggs must not be NULL");
    const agg_out *o = &g->parts[p];
    size_t doff[FB_AGG_MAX_KEYS + FB_AGG_MAX_AGGS], voff[FB_AGG_MAX_KEYS + FB_AGG_MAX_AGGS];
    out_layout(g, o->rows, doff, voff);
    size_t n = 0;
    for (size_t k = 0; k < g->spec.n_keys; k++, n++)
        keys[k] = fb_column_make(g->key_types[k], (char *)o->buf + doff[n], o->rows,
                                 (o->key_nulls >> k) & 1 ? (uint8_t *)o->buf + voff[n] : NULL);
    for (size_t a = 0; a < g->spec.n_aggs; a++, n++)
        aggs[a] = fb_column_make(g->rtypes[a], (char *)o->buf + doff[n], o->rows,
                                 (o->agg_nulls >> a) & 1 ? (uint8_t *)o->buf + voff[n] : NULL);
    *rows = o->rows;
    return FB_OK;
}

static void copy_bits(uint8_t *dst, int64_t at, const uint8_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t b = at + i;
        int v = src ? (src[i >> 3] >> (i & 7)) & 1 : 1;
        dst[b >> 3] = (uint8_t)((dst[b >> 3] & ~(1u << (b & 7))) | ((unsigned)v << (b & 7)));
    }
}

static fb_status copy_out(fb_ctx *ctx, const fb_column *src, int64_t at, fb_column_out *o)
{
    size_t w = fb_type_width(src->type);
    memcpy((char *)o->data + at * (int64_t)w, src->data, (size_t)src->length * w);
    if (o->validity)
        copy_bits(o->validity, at, src->validity, src->length);
    else if (src->validity)
        return FB_ERROR(ctx, FB_ERR_INVALID_ARG, "an output without validity receives a null");
    for (int64_t i = 0; src->validity && i < src->length; i++)
        o->null_count += !((src->validity[i >> 3] >> (i & 7)) & 1);
    return FB_OK;
}

fb_status fb_agg_groups_result(const fb_agg_groups *g, fb_column_out *keys, fb_column_out *aggs)
{
    FB_RETURN_ERROR_IF(!g, NULL, FB_ERR_INVALID_ARG, "g must not be NULL");
    fb_ctx *ctx = g->ctx;
    FB_RETURN_ERROR_IF(!g->done, ctx, FB_ERR_INVALID_ARG, "the aggregation has not run to its end");
    FB_RETURN_ERROR_IF((g->spec.n_keys && !keys) || (g->spec.n_aggs && !aggs), ctx, FB_ERR_INVALID_ARG,
                       "keys and aggs must not be NULL");
    int64_t n = fb_agg_groups_count(g);
    uint64_t kn = 0, an = 0;
    for (int p = 0; p < g->n_parts; p++)
        kn |= g->parts[p].key_nulls, an |= g->parts[p].agg_nulls;
    for (size_t k = 0; k < g->spec.n_keys; k++)
        keys[k].length = keys[k].null_count = 0;
    for (size_t a = 0; a < g->spec.n_aggs; a++)
        aggs[a].length = aggs[a].null_count = 0;
    for (size_t k = 0; k < g->spec.n_keys; k++)
        FB_FORWARD_IF_ERROR(fb_check_column_out(ctx, &keys[k], g->key_types[k], n, (kn >> k) & 1, __func__));
    for (size_t a = 0; a < g->spec.n_aggs; a++)
        FB_FORWARD_IF_ERROR(fb_check_column_out(ctx, &aggs[a], g->rtypes[a], n, (an >> a) & 1, __func__));
    fb_column kc[FB_AGG_MAX_KEYS], ac[FB_AGG_MAX_AGGS];
    int64_t at = 0, rows;
    for (int p = 0; p < g->n_parts; p++) {
        FB_FORWARD_IF_ERROR(fb_agg_groups_partition(g, p, kc, ac, &rows));
        for (size_t k = 0; k < g->spec.n_keys; k++)
            FB_FORWARD_IF_ERROR(copy_out(ctx, &kc[k], at, &keys[k]));
        for (size_t a = 0; a < g->spec.n_aggs; a++)
            FB_FORWARD_IF_ERROR(copy_out(ctx, &ac[a], at, &aggs[a]));
        at += rows;
    }
    for (size_t k = 0; k < g->spec.n_keys; k++)
        keys[k].length = n;
    for (size_t a = 0; a < g->spec.n_aggs; a++)
        aggs[a].length = n;
    return FB_OK;
}

/* ---- phase 1: the aggregation sink --------------------------------------------------------------- */

typedef struct agg_user {
    fb_agg_groups *g;
    agg_layout L;
    int fast;
    size_t key_col[FB_AGG_MAX_KEYS];
    size_t n_values;
    size_t value_col[FB_AGG_MAX_AGGS];
    fb_type value_type[FB_AGG_MAX_AGGS]; /* FB_TYPE_INVALID: read by no aggregate */
    int refs;                            /* the three stages that share this */
    struct agg_global *G;                /* phase 1's global state while a run is on */
    int next_part;                       /* the merge source's cursor */
    int range[AGG_NPART + 1];            /* output partition i merges radix partitions range[i]..range[i+1]-1 */
    int direct_i32;                      /* int32/date32 key, every value read int32: fast_direct_i32() */
    int compact_rs;                      /* passed rows go out as compact rows of this many bytes (0: as
                                            records): one key, at most one value column read */
    int compact_col;                     /* that value column, or -1 */
    int compact_ksigned;                 /* rs 8: the key's 32 bits sign-extend (else zero-extend) */
    int n_pack;                          /* 2..4 key columns packed into one 64-bit key (0: one key) */
    int narrow;                          /* this run's merge tables have the record layout (W words: the
                                            run has under 2^31 rows, so 31-bit counts and one-word sums
                                            of 32-bit values cannot overflow), else the wide one (WT) */
    uint8_t kshift[FB_AGG_MAX_KEYS];     /* key k's field: its value (biased to unsigned) in kbits[k]
                                            bits from bit kshift[k], its null flag just above */
    uint8_t kbits[FB_AGG_MAX_KEYS];
} agg_user;

typedef struct agg_global {
    int workers;
    agg_parts **parts;      /* per worker that combined */
    int n_parts_in;
    fb_agg_table *generic;  /* fallback */
    fb_agg_path_counts paths;
} agg_global;

typedef struct agg_local {
    fb_ctx *ctx;
    const fb_agg_kernels *ak; /* the context's CPU variant */
    int node;
    int mode;
    /* scratch of one batch */
    int64_t *kv;
    int64_t *kx[FB_AGG_MAX_KEYS]; /* agg_layout::nx: the extra key words of a batch */
    uint8_t *kvalid;
    int64_t *vv[FB_AGG_MAX_AGGS];
    uint8_t *vvalid[FB_AGG_MAX_AGGS];
    uint64_t *rec, *h;
    uint32_t *gid;
    size_t scratch_bytes;
    void *scratch;
    /* pre-aggregation */
    agg_table pre;
    int64_t pre_rows; /* rows merged since the last flush */
    int64_t pass_left;
    /* direct */
    int64_t dbase;      /* key of slot 1 (slot 0: null) */
    int64_t dslots, C;  /* slots; interleaved copies (2^lc) */
    int lc;
    int64_t ds;         /* words of a slot copy's record: word i of copy e is dw[i][e * ds] */
    int fused_rw;       /* the record is (count, sum[, min, max]) for fb_agg_kernels.direct_fused_i32: 2 or
                           4 (its words), else 0 */
    uint64_t *dw[AGG_MAX_WORDS];
    size_t dbytes;
    void *dmem;
    int64_t drows;
    /* spill */
    agg_parts *parts;
    fb_agg_table *generic;
    fb_agg_path_counts paths;
} agg_local;

static fb_status agg_init_global(void *user, fb_ctx *ctx, void **global)
{
    agg_global *G;
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof *G, &G));
    memset(G, 0, sizeof *G);
    G->workers = fb_ctx_threads(ctx);
    fb_status st = FB_ALLOC(ctx, sizeof(agg_parts *) * (size_t)G->workers, &G->parts);
    if (st != FB_OK) {
        fb_free(ctx, G, sizeof *G);
        return st;
    }
    memset(G->parts, 0, sizeof(agg_parts *) * (size_t)G->workers);
    ((agg_user *)user)->G = G;
    *global = G;
    return FB_OK;
}

static void agg_destroy_global(void *user, void *global)
{
    agg_user *u = user;
    agg_global *G = global;
    fb_ctx *ctx = u->g->ctx;
    if (!G)
        return;
    u->G = NULL;
    for (int i = 0; i < G->n_parts_in; i++) {
        parts_free(ctx, G->parts[i]);
        fb_numa_free(ctx, G->parts[i]->node, G->parts[i], sizeof(agg_parts));
    }
    fb_free(ctx, G->parts, sizeof(agg_parts *) * (size_t)G->workers);
    fb_agg_destroy(G->generic);
    fb_free(ctx, G, sizeof *G);
}

static void agg_destroy_local(void *user, void *global, void *local)
{
    agg_user *u = user;
    agg_local *l = local;
    (void)global;
    if (!l)
        return;
    fb_ctx *ctx = u->g->ctx;
    if (l->parts) {
        parts_free(ctx, l->parts);
        fb_numa_free(ctx, l->node, l->parts, sizeof(agg_parts));
    }
    fb_numa_free(ctx, l->node, l->pre.e, l->pre.slots * (size_t)u->L.W * 8);
    fb_numa_free(ctx, l->node, l->dmem, l->dbytes);
    fb_numa_free(ctx, l->node, l->scratch, l->scratch_bytes);
    fb_agg_destroy(l->generic);
    fb_numa_free(ctx, l->node, l, sizeof *l);
}

static fb_status agg_init_local_parts(void *user, void *global, const fb_worker_info *w, void **local);

/* The runtime does not destroy a local state whose init failed: free what was made here. */
static fb_status agg_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    *local = NULL;
    fb_status st = agg_init_local_parts(user, global, w, local);
    if (st != FB_OK) {
        agg_destroy_local(user, global, *local);
        *local = NULL;
    }
    return st;
}

static fb_status agg_init_local_parts(void *user, void *global, const fb_worker_info *w, void **local)
{
    agg_user *u = user;
    fb_ctx *ctx = u->g->ctx;
    agg_local *l;
    (void)global;
    int node = agg_mem_node(ctx, w->numa_node);
    FB_FORWARD_IF_ERROR(fb_numa_alloc(ctx, node, sizeof *l, (void **)&l));
    memset(l, 0, sizeof *l);
    l->ctx = ctx;
    l->node = node;
    l->ak = fb_agg_kernels_get(fb_ctx_isa(ctx));
    *local = l;
    if (!u->fast) {
        l->mode = MODE_GENERIC;
        return fb_agg_create(ctx, &u->g->spec, &l->generic);
    }
    const int W = u->L.W;
    size_t nv = 0;
    for (size_t v = 0; v < u->n_values; v++)
        nv += u->value_type[v] != FB_TYPE_INVALID;
    const size_t nx = (size_t)u->L.nx;
    l->scratch_bytes = AGG_BATCH * (8 + 1 + nv * 9 + (size_t)W * 8 + 8 + 4 + nx * 8) + 64 * (nv * 2 + 6 + nx);
    FB_FORWARD_IF_ERROR(fb_numa_alloc(ctx, l->node, l->scratch_bytes, &l->scratch));
    char *p = l->scratch;
#define AGG_CARVE(ptr, bytes) (ptr = (void *)p, p += round64(bytes))
    AGG_CARVE(l->kv, AGG_BATCH * 8);
    for (size_t i = 0; i < nx; i++)
        AGG_CARVE(l->kx[i], AGG_BATCH * 8);
    AGG_CARVE(l->kvalid, AGG_BATCH);
    for (size_t v = 0; v < u->n_values; v++)
        if (u->value_type[v] != FB_TYPE_INVALID) {
            AGG_CARVE(l->vv[v], AGG_BATCH * 8);
            AGG_CARVE(l->vvalid[v], AGG_BATCH);
        }
    AGG_CARVE(l->rec, AGG_BATCH * (size_t)W * 8);
    AGG_CARVE(l->h, AGG_BATCH * 8);
    AGG_CARVE(l->gid, AGG_BATCH * 4);
#undef AGG_CARVE
    FB_FORWARD_IF_ERROR(fb_numa_alloc(ctx, l->node, sizeof(agg_parts), (void **)&l->parts));
    memset(l->parts, 0, sizeof(agg_parts));
    l->parts->node = l->node;
    l->parts->rs = u->compact_rs;
    if (u->compact_rs) {
        FB_FORWARD_IF_ERROR(fb_numa_alloc(ctx, l->node, (size_t)AGG_NPART * 64, (void **)&l->parts->wc));
        memset(l->parts->cfill, 0, sizeof l->parts->cfill);
    }
    return FB_OK;
}

/* Empties the pre-aggregation table into the partitions and decides whether to keep using it. */
static fb_status pre_flush(const agg_user *u, agg_local *l)
{
    const int W = u->L.W;
    int64_t groups = l->pre.groups;
    for (size_t s = 0; s < l->pre.slots && l->pre.groups; s++) {
        uint64_t *e = l->pre.e + s * (size_t)W;
        if (!(e[1] & AGG_USED_FLAG))
            continue;
        e[1] &= ~AGG_USED_FLAG;
        FB_FORWARD_IF_ERROR(parts_put(l->ctx, l->parts, e, key_hash(&u->L, 0, e), W));
        e[1] = 0;
        l->pre.groups--;
    }
    l->paths.flushes++;
    l->paths.spilled_records += groups;
    /* a table that merged fewer than two rows into a group on average is not worth its probes */
    if (u->g->spec.strategy != FB_AGG_STRATEGY_HASH && groups * 2 > l->pre_rows)
        l->pass_left = AGG_PASS_ROWS;
    l->pre_rows = 0;
    return FB_OK;
}

/* Every word of the direct table to its identity. */
static void direct_reset(const agg_user *u, agg_local *l)
{
    uint64_t id[AGG_MAX_WORDS];
    for (int i = 1; i < u->L.W; i++)
        id[l->dw[i] - (uint64_t *)l->dmem] = word_identity(u->L.kind[i]);
    uint64_t *t = l->dmem;
    for (int64_t e = 0; e < l->dslots * l->C; e++, t += l->ds)
        memcpy(t, id, (size_t)l->ds * 8);
    l->drows = 0;
}

/* Empties the direct table into the partitions. */
static fb_status direct_flush(const agg_user *u, agg_local *l)
{
    const agg_layout *L = &u->L;
    const int W = L->W;
    const int64_t C = l->C, ds = l->ds;
    uint64_t rec[AGG_MAX_WORDS];
    for (int64_t s = 0; s < l->dslots; s++) {
        uint64_t cnt = 0;
        for (int64_t c = 0; c < C; c++)
            cnt += l->dw[1][(s * C + c) * ds];
        if (!(cnt & AGG_LOW31))
            continue;
        rec[0] = s ? (uint64_t)(l->dbase + s - 1) : 0;
        rec[1] = cnt | (s ? 0 : AGG_NULL_FLAG);
        for (int i = 2; i < W; i++) {
            int kd = L->kind[i];
            if (kd == W_SUMHI)
                continue;
            if (kd == W_SUM && sum_is_wide(L, i)) {
                agg_u128 x = 0;
                for (int64_t c = 0; c < C; c++)
                    x += (agg_u128)l->dw[i + 1][(s * C + c) * ds] << 64 | l->dw[i][(s * C + c) * ds];
                rec[i] = (uint64_t)x, rec[i + 1] = (uint64_t)(x >> 64);
                continue;
            }
            uint64_t acc = word_identity(kd);
            for (int64_t c = 0; c < C; c++) {
                uint64_t v = l->dw[i][(s * C + c) * ds];
                if (kd == W_MIN)
                    acc = (int64_t)v < (int64_t)acc ? v : acc;
                else if (kd == W_MAX)
                    acc = (int64_t)v > (int64_t)acc ? v : acc;
                else
                    acc += v;
            }
            rec[i] = acc;
        }
        FB_FORWARD_IF_ERROR(parts_put(l->ctx, l->parts, rec, rec_hash(rec[0], rec[1]), W));
        l->paths.spilled_records++;
    }
    direct_reset(u, l);
    return FB_OK;
}

/* Where each record word lives in a slot copy's record of the direct table (off[1..W-1]): in record
 * order, or -- for count(*)/count(v) with a sum and optionally a min and a max of one int32 column, the
 * shape direct_fused_i32 takes -- count, sum, min, max. Returns the fused record's words (2 or 4), or 0. */
static int direct_order(const agg_user *u, int *off)
{
    const agg_layout *L = &u->L;
    int sum = -1, mn = -1, mx = -1, other = 0;
    for (int i = 1; i < L->W; i++)
        off[i] = i - 1;
    for (int i = 2; i < L->W; i++) {
        if (L->kind[i] == W_SUM && sum < 0 && !sum_is_wide(L, i))
            sum = i;
        else if (L->kind[i] == W_MIN && mn < 0)
            mn = i;
        else if (L->kind[i] == W_MAX && mx < 0)
            mx = i;
        else
            other = 1;
    }
    if (!u->direct_i32 || !L->packed || other || sum < 0 || (mn < 0) != (mx < 0))
        return 0;
    off[1] = 0, off[sum] = 1;
    if (mn < 0)
        return 2;
    off[mn] = 2, off[mx] = 3;
    return 4;
}

/* Sets up (or re-bases) the direct table for keys in [mn, mx]. */
static fb_status direct_setup(const agg_user *u, agg_local *l, int64_t mn, int64_t mx)
{
    const int W = u->L.W;
    if (l->dmem)
        FB_FORWARD_IF_ERROR(direct_flush(u, l));
    int64_t slots = mx - mn + 2;
    int lc = slots <= 1024 ? 2 : slots <= 8192 ? 1 : 0;
    int64_t C = INT64_C(1) << lc, ds = W - 1;
    size_t bytes = round64((size_t)(slots * C * ds) * 8);
    if (bytes > l->dbytes) {
        fb_numa_free(l->ctx, l->node, l->dmem, l->dbytes);
        l->dmem = NULL;
        l->dbytes = 0;
        FB_FORWARD_IF_ERROR(fb_numa_alloc(l->ctx, l->node, bytes, &l->dmem));
        l->dbytes = bytes;
    }
    l->dbase = mn;
    l->dslots = slots;
    l->C = C;
    l->lc = lc;
    l->ds = ds;
    int off[AGG_MAX_WORDS];
    l->fused_rw = direct_order(u, off);
    for (int i = 1; i < W; i++)
        l->dw[i] = (uint64_t *)l->dmem + off[i];
    direct_reset(u, l);
    l->mode = MODE_DIRECT;
    return FB_OK;
}

/* Direct update of one batch: slots from the keys, then one loop per record word. */
/* The direct table's word loops over one batch whose slots (times C, plus the copy) are in l->gid,
 * for values of type T (int64 from load_ordered, or int32 read in place). */
#define AGG_DIRECT_WORDS(NAME, T)                                                                          \
    static void NAME(const agg_user *u, agg_local *l, int64_t m, const T *const *vals,                     \
                     const uint8_t *const *oks)                                                            \
    {                                                                                                      \
        const agg_layout *L = &u->L;                                                                       \
        const uint32_t *idx = l->gid;                                                                      \
        const size_t ds = (size_t)l->ds;                                                                   \
        for (int i = 1; i < L->W; i++) {                                                                   \
            uint64_t *a = l->dw[i];                                                                        \
            int c = L->kind[i] == W_CNT ? 0 : L->col[i];                                                   \
            const T *v = vals[c];                                                                          \
            const uint8_t *ok = oks[c];                                                                    \
            switch (L->kind[i]) {                                                                          \
            case W_CNT:                                                                                    \
                if (L->packed && oks[L->pn_col]) {                                                         \
                    const uint8_t *pok = oks[L->pn_col];                                                   \
                    for (int64_t j = 0; j < m; j++)                                                        \
                        a[idx[j] * ds] += 1 + ((uint64_t)!pok[j] << 31);                                   \
                } else {                                                                                   \
                    for (int64_t j = 0; j < m; j++)                                                        \
                        a[idx[j] * ds]++;                                                                  \
                }                                                                                          \
                break;                                                                                     \
            case W_NULLS:                                                                                  \
                if (ok)                                                                                    \
                    for (int64_t j = 0; j < m; j++)                                                        \
                        a[idx[j] * ds] += !ok[j];                                                          \
                break;                                                                                     \
            case W_SUM:                                                                                    \
                if (sum_is_wide(L, i)) {                                                                   \
                    uint64_t *hi = l->dw[i + 1];                                                           \
                    for (int64_t j = 0; j < m; j++) {                                                      \
                        uint64_t x = ok && !ok[j] ? 0 : (uint64_t)(int64_t)v[j], lo = a[idx[j] * ds] + x;  \
                        hi[idx[j] * ds] += (uint64_t)((int64_t)x >> 63) + (lo < x);                        \
                        a[idx[j] * ds] = lo;                                                               \
                    }                                                                                      \
                } else if (ok) {                                                                           \
                    for (int64_t j = 0; j < m; j++)                                                        \
                        a[idx[j] * ds] += ok[j] ? (uint64_t)(int64_t)v[j] : 0;                             \
                } else {                                                                                   \
                    for (int64_t j = 0; j < m; j++)                                                        \
                        a[idx[j] * ds] += (uint64_t)(int64_t)v[j];                                         \
                }                                                                                          \
                break;                                                                                     \
            case W_MIN:                                                                                    \
                if (ok)                                                                                    \
                    for (int64_t j = 0; j < m; j++) {                                                      \
                        int64_t x = ok[j] ? (int64_t)v[j] : INT64_MAX, *e = (int64_t *)a + idx[j] * ds;    \
                        *e = x < *e ? x : *e;                                                              \
                    }                                                                                      \
                else                                                                                       \
                    for (int64_t j = 0; j < m; j++) {                                                      \
                        int64_t x = (int64_t)v[j], *e = (int64_t *)a + idx[j] * ds;                        \
                        *e = x < *e ? x : *e;                                                              \
                    }                                                                                      \
                break;                                                                                     \
            case W_MAX:                                                                                    \
                if (ok)                                                                                    \
                    for (int64_t j = 0; j < m; j++) {                                                      \
                        int64_t x = ok[j] ? (int64_t)v[j] : INT64_MIN, *e = (int64_t *)a + idx[j] * ds;    \
                        *e = x > *e ? x : *e;                                                              \
                    }                                                                                      \
                else                                                                                       \
                    for (int64_t j = 0; j < m; j++) {                                                      \
                        int64_t x = (int64_t)v[j], *e = (int64_t *)a + idx[j] * ds;                        \
                        *e = x > *e ? x : *e;                                                              \
                    }                                                                                      \
                break;                                                                                     \
            default:                                                                                       \
                break;                                                                                     \
            }                                                                                              \
        }                                                                                                  \
    }
AGG_DIRECT_WORDS(direct_words_i64, int64_t)
AGG_DIRECT_WORDS(direct_words_i32, int32_t)
#undef AGG_DIRECT_WORDS

/* Direct update of one batch of loaded keys and values. */
static void direct_update(const agg_user *u, agg_local *l, int64_t m, int has_kvalid, const int *has_vvalid)
{
    const int64_t C = l->C, cm = C - 1, base = l->dbase;
    uint32_t *idx = l->gid;
    if (has_kvalid)
        for (int64_t j = 0; j < m; j++)
            idx[j] = (uint32_t)((l->kvalid[j] ? (uint64_t)(l->kv[j] - base) + 1 : 0) * (uint64_t)C + (uint64_t)(j & cm));
    else
        for (int64_t j = 0; j < m; j++)
            idx[j] = (uint32_t)(((uint64_t)(l->kv[j] - base) + 1) * (uint64_t)C + (uint64_t)(j & cm));
    const int64_t *vals[FB_AGG_MAX_AGGS];
    const uint8_t *oks[FB_AGG_MAX_AGGS];
    for (size_t v = 0; v < u->n_values; v++) {
        vals[v] = l->vv[v];
        oks[v] = has_vvalid[v] ? l->vvalid[v] : NULL;
    }
    direct_words_i64(u, l, m, vals, oks);
}

/* One record per row of the batch in l->rec, their hashes in l->h. */
static void build_records(const agg_user *u, agg_local *l, int64_t m, int has_kvalid, const int *has_vvalid)
{
    const agg_layout *L = &u->L;
    const int W = L->W;
    uint64_t *r = l->rec;
    const uint8_t *pok = L->packed && has_vvalid[L->pn_col] ? l->vvalid[L->pn_col] : NULL;
    if (L->nx) { /* the hash comes below, over every key word; no key null flag here */
        for (int64_t j = 0; j < m; j++) {
            r[j * W] = (uint64_t)l->kv[j];
            r[j * W + 1] = 1 | (pok && !pok[j] ? UINT64_C(1) << 31 : 0);
        }
    } else if (!has_kvalid && !pok) {
        for (int64_t j = 0; j < m; j++) {
            r[j * W] = (uint64_t)l->kv[j];
            r[j * W + 1] = 1;
            l->h[j] = fb_hash_u64((uint64_t)l->kv[j]);
        }
    } else {
        for (int64_t j = 0; j < m; j++) {
            int kn = has_kvalid && !l->kvalid[j];
            r[j * W] = kn ? 0 : (uint64_t)l->kv[j];
            r[j * W + 1] = 1 | (kn ? AGG_NULL_FLAG : 0) | (pok && !pok[j] ? UINT64_C(1) << 31 : 0);
            l->h[j] = kn ? AGG_NULL_HASH : fb_hash_u64((uint64_t)l->kv[j]);
        }
    }
    for (int i = 2; i < W; i++) {
        int c = L->col[i];
        const int64_t *v = l->vv[c];
        const uint8_t *ok = has_vvalid[c] ? l->vvalid[c] : NULL;
        uint64_t *o = r + i;
        switch (L->kind[i]) {
        case W_NULLS:
            for (int64_t j = 0; j < m; j++)
                o[j * W] = ok ? !ok[j] : 0;
            break;
        case W_SUM:
            for (int64_t j = 0; j < m; j++)
                o[j * W] = ok && !ok[j] ? 0 : (uint64_t)v[j];
            break;
        case W_SUMHI:
            for (int64_t j = 0; j < m; j++)
                o[j * W] = ok && !ok[j] ? 0 : (uint64_t)(v[j] >> 63);
            break;
        case W_MIN:
            for (int64_t j = 0; j < m; j++)
                o[j * W] = ok && !ok[j] ? (uint64_t)INT64_MAX : (uint64_t)v[j];
            break;
        case W_MAX:
            for (int64_t j = 0; j < m; j++)
                o[j * W] = ok && !ok[j] ? (uint64_t)INT64_MIN : (uint64_t)v[j];
            break;
        case W_KEYX: {
            const int64_t *x = l->kx[L->col[i]];
            for (int64_t j = 0; j < m; j++)
                o[j * W] = (uint64_t)x[j];
            break;
        }
        default:
            break;
        }
    }
    if (L->nx) { /* key_hash, a key word at a time over the batch */
        uint64_t *h = l->h;
        for (int64_t j = 0; j < m; j++)
            h[j] = (uint64_t)l->kv[j];
        for (int i = 0; i < L->nx; i++) {
            const int64_t *x = l->kx[i];
            for (int64_t j = 0; j < m; j++) {
                uint64_t y = h[j] * UINT64_C(0x9E3779B97F4A7C15);
                h[j] = (y << 31 | y >> 33) ^ (uint64_t)x[j];
            }
        }
        for (int64_t j = 0; j < m; j++)
            h[j] = fb_hash_u64(h[j]);
    }
}

/* Records from..m-1 of the batch go to the partitions as they are. */
static fb_status spill_batch(const agg_user *u, agg_local *l, int64_t from, int64_t m)
{
    const int W = u->L.W;
    FB_FORWARD_IF_ERROR(parts_put_many(l->ctx, l->parts, l->rec + from * W, l->h + from, m - from, W));
    l->paths.spilled_records += m - from;
    l->paths.passed_rows += m - from;
    return FB_OK;
}

static fb_status pre_batch(const agg_user *u, agg_local *l, int64_t m)
{
    const int W = u->L.W;
    if (!l->pre.e) {
        l->pre.slots = AGG_PRE_SLOTS;
        l->pre.limit = AGG_PRE_SLOTS / 2;
        FB_FORWARD_IF_ERROR(fb_numa_alloc(l->ctx, l->node, l->pre.slots * (size_t)W * 8, (void **)&l->pre.e));
        memset(l->pre.e, 0, l->pre.slots * (size_t)W * 8);
    }
    int64_t done = 0;
    while (done < m) {
        int64_t k = table_probe(&u->L, 0, &l->pre, l->rec + done * W, l->h + done, m - done, l->gid);
        merge_records(&u->L, 0, l->pre.e, l->gid, l->rec + done * W, k);
        l->pre_rows += k;
        l->paths.preagg_rows += k;
        done += k;
        if (done < m || l->pre_rows >= AGG_FLUSH_ROWS) {
            FB_FORWARD_IF_ERROR(pre_flush(u, l));
            if (l->pass_left) /* the rest of the batch goes straight out */
                return spill_batch(u, l, done, m);
        }
    }
    return FB_OK;
}

/* Min and max of the batch's non-null keys; returns 0 when all are null. */
static int batch_range(const agg_local *l, int64_t m, int has_kvalid, int64_t *mn, int64_t *mx)
{
    int64_t a = INT64_MAX, b = INT64_MIN;
    if (has_kvalid) {
        for (int64_t j = 0; j < m; j++)
            if (l->kvalid[j]) {
                a = l->kv[j] < a ? l->kv[j] : a;
                b = l->kv[j] > b ? l->kv[j] : b;
            }
    } else {
        for (int64_t j = 0; j < m; j++) {
            a = l->kv[j] < a ? l->kv[j] : a;
            b = l->kv[j] > b ? l->kv[j] : b;
        }
    }
    *mn = a, *mx = b;
    return a <= b;
}

/* Whether a direct table may span [mn, mx]. */
static int direct_fits(const agg_user *u, int64_t mn, int64_t mx)
{
    uint64_t limit = u->g->spec.strategy == FB_AGG_STRATEGY_DIRECT ? FB_AGG_DIRECT_FORCED_MAX_SLOTS
                                                                    : FB_AGG_DIRECT_MAX_SLOTS;
    return (uint64_t)mx - (uint64_t)mn < limit - 1;
}

/* Keeps the direct table while the batch's keys [mn, mx] (any: some key is not null) fit: re-bases it
 * to the union of the ranges when that fits, else leaves for pre-aggregation (or fails when forced). */
static fb_status direct_admit(const agg_user *u, agg_local *l, int any, int64_t mn, int64_t mx)
{
    const fb_agg_strategy strat = u->g->spec.strategy;
    if (l->mode == MODE_NONE) {
        if (!any)
            mn = mx = 0;
        if ((strat == FB_AGG_STRATEGY_AUTO || strat == FB_AGG_STRATEGY_DIRECT) && direct_fits(u, mn, mx))
            return direct_setup(u, l, mn, mx);
        if (strat == FB_AGG_STRATEGY_DIRECT)
            return fb_stage_error(l->ctx, FB_ERR_CAPACITY, "forced direct aggregation: keys span more than %d slots",
                                  (int)FB_AGG_DIRECT_FORCED_MAX_SLOTS);
        l->mode = MODE_PRE;
        return FB_OK;
    }
    if (!any || (mn >= l->dbase && mx <= l->dbase + l->dslots - 2))
        return FB_OK;
    int64_t lo = mn < l->dbase ? mn : l->dbase, hi = l->dbase + l->dslots - 2;
    hi = mx > hi ? mx : hi;
    if (direct_fits(u, lo, hi))
        return direct_setup(u, l, lo, hi);
    if (strat == FB_AGG_STRATEGY_DIRECT)
        return fb_stage_error(l->ctx, FB_ERR_CAPACITY, "forced direct aggregation: keys span more than %d slots",
                              (int)FB_AGG_DIRECT_FORCED_MAX_SLOTS);
    FB_FORWARD_IF_ERROR(direct_flush(u, l));
    l->mode = MODE_PRE;
    return FB_OK;
}

static fb_status direct_done(const agg_user *u, agg_local *l, int64_t m)
{
    l->paths.direct_rows += m;
    l->drows += m;
    return l->drows >= AGG_FLUSH_ROWS ? direct_flush(u, l) : FB_OK;
}

/* The direct table over an int32 key and int32 values without a selection: the CPU variant's
 * key-range and slot kernels (or its fused kernel), values read in place. Sets *taken to the rows it
 * took (all, or those before the batch where the table was left). */
static fb_status fast_direct_i32(const agg_user *u, agg_local *l, const fb_chunk *ch, int64_t *taken)
{
    const fb_column *kc = &ch->columns[u->key_col[0]];
    const int32_t *k = (const int32_t *)kc->data + kc->offset;
    const int32_t *vals[FB_AGG_MAX_AGGS];
    const uint8_t *oks[FB_AGG_MAX_AGGS];
    *taken = 0;
    for (int64_t b0 = 0; b0 < ch->rows; b0 += AGG_BATCH) {
        int64_t b = b0, m = ch->rows - b < AGG_BATCH ? ch->rows - b : AGG_BATCH; /* rows b..b+m-1 left */
        fb_bits kb = {kc->validity, kc->offset + b};
        int64_t mn = INT64_MAX, mx = INT64_MIN;
        const fb_column *fc = l->fused_rw ? &ch->columns[u->value_col[u->L.pn_col]] : NULL;
        if (l->mode == MODE_DIRECT && fc && !fc->validity && !kc->validity) {
            /* no key or value is null: the fused kernel checks the key range itself, up to the first
             * block of 8 rows with a key outside the table */
            int64_t d = l->ak->direct_fused_i32(k + b, (const int32_t *)fc->data + fc->offset + b, m, (int32_t)l->dbase,
                                                (uint32_t)(l->dslots - 1), l->lc, l->fused_rw, l->dmem);
            FB_FORWARD_IF_ERROR(direct_done(u, l, d));
            *taken = b + d;
            if (d == m)
                continue;
            b += d, m -= d;
            kb.off += d;
        }
        int64_t nk = l->ak->minmax_i32(k + b, kb, m, &mn, &mx);
        FB_FORWARD_IF_ERROR(direct_admit(u, l, nk > 0, mn, mx));
        if (l->mode != MODE_DIRECT)
            return FB_OK;
        if (fc && nk == m && !fc->validity) { /* after a re-base */
            int64_t d = l->ak->direct_fused_i32(k + b, (const int32_t *)fc->data + fc->offset + b, m, (int32_t)l->dbase,
                                                (uint32_t)(l->dslots - 1), l->lc, l->fused_rw, l->dmem);
            FB_FORWARD_IF_ERROR(direct_done(u, l, d)); /* all: the table spans the batch's keys now */
            *taken = b + d;
            continue;
        }
        l->ak->direct_slots_i32(k + b, kb, m, (int32_t)l->dbase, l->gid);
        const uint32_t C = (uint32_t)l->C, cm = C - 1;
        for (int64_t j = 0; j < m; j++)
            l->gid[j] = l->gid[j] * C + ((uint32_t)j & cm);
        for (size_t v = 0; v < u->n_values; v++) {
            if (u->value_type[v] == FB_TYPE_INVALID)
                continue;
            const fb_column *vc = &ch->columns[u->value_col[v]];
            vals[v] = (const int32_t *)vc->data + vc->offset + b;
            oks[v] = load_valid(vc, NULL, b, m, l->vvalid[v]) ? l->vvalid[v] : NULL;
        }
        direct_words_i32(u, l, m, vals, oks);
        FB_FORWARD_IF_ERROR(direct_done(u, l, m));
        *taken = b + m;
    }
    return FB_OK;
}

/* A passed batch with nulls: rows whose key and value are valid go out as compact rows, the others
 * (a null key or value) as records. */
static fb_status compact_split(const agg_user *u, agg_local *l, int64_t m, int has_kvalid, const int *has_vvalid)
{
    const int vc = u->compact_col;
    const uint8_t *kok = has_kvalid ? l->kvalid : NULL, *vok = vc >= 0 && has_vvalid[vc] ? l->vvalid[vc] : NULL;
    int64_t *ck = (int64_t *)(void *)l->rec, *cv = ck + AGG_BATCH; /* rec holds >= 2 words a row; free here */
    int64_t *kv = l->kv, *vv = vc >= 0 ? l->vv[vc] : NULL;
    uint8_t *kvalid = l->kvalid, *vvalid = vc >= 0 ? l->vvalid[vc] : NULL;
    int64_t c = 0, nb = 0;
    for (int64_t j = 0; j < m; j++) {
        int ok = (!kok || kok[j]) && (!vok || vok[j]);
        if (ok) {
            ck[c] = kv[j];
            cv[c] = vv ? vv[j] : 0;
            c++;
        } else { /* moved to the front, in order (nb <= j) */
            kv[nb] = kv[j];
            if (kok)
                kvalid[nb] = kvalid[j];
            if (vv) {
                vv[nb] = vv[j];
                if (vok)
                    vvalid[nb] = vvalid[j];
            }
            nb++;
        }
    }
    FB_FORWARD_IF_ERROR(compact_put(l->ctx, l->parts, ck, vv ? cv : NULL, c, l->h));
    l->paths.spilled_records += c;
    l->paths.passed_rows += c;
    l->paths.compact_rows += c;
    build_records(u, l, nb, has_kvalid, has_vvalid);
    return spill_batch(u, l, 0, nb);
}

/* The smallest value of an integer type of w bytes, as an ordered int64 (load_ordered). */
static int64_t type_min(fb_type t)
{
    switch (t) {
    case FB_TYPE_INT8: return INT8_MIN;
    case FB_TYPE_INT16: return INT16_MIN;
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: return INT32_MIN;
    default: return 0; /* unsigned types below 64 bits (64-bit keys are never packed) */
    }
}

/* Several key columns as one packed key per row (fields: the value minus the type's smallest, and a
 * null flag above it; a null key's value field is 0) into out; tmp: scratch of n int64. */
static void load_packed(const agg_user *u, agg_local *l, const fb_chunk *ch, const uint32_t *sel, int64_t base,
                        int64_t n, int64_t *out, int64_t *tmp)
{
    for (int64_t j = 0; j < n; j++)
        out[j] = 0;
    for (int k = 0; k < u->n_pack; k++) {
        const fb_column *c = &ch->columns[u->key_col[k]];
        const uint64_t lo = (uint64_t)type_min(c->type);
        const int sh = u->kshift[k], nb = u->kbits[k];
        load_ordered(c, sel, base, n, tmp);
        if (load_valid(c, sel, base, n, l->kvalid))
            for (int64_t j = 0; j < n; j++)
                out[j] |= (int64_t)(l->kvalid[j] ? ((uint64_t)tmp[j] - lo) << sh : UINT64_C(1) << (sh + nb));
        else
            for (int64_t j = 0; j < n; j++)
                out[j] |= (int64_t)(((uint64_t)tmp[j] - lo) << sh);
    }
}

/* Keys that do not pack (agg_layout::nx): key 0 into l->kv, keys 1.. and the null flags into l->kx (a
 * null key's word 0). */
static void load_multi(const agg_user *u, agg_local *l, const fb_chunk *ch, const uint32_t *sel, int64_t base,
                       int64_t n)
{
    const int nx = u->L.nx;
    int64_t *fl = l->kx[nx - 1];
    for (int64_t j = 0; j < n; j++)
        fl[j] = 0;
    for (int k = 0; k < nx; k++) {
        const fb_column *c = &ch->columns[u->key_col[k]];
        int64_t *out = k ? l->kx[k - 1] : l->kv;
        load_ordered(c, sel, base, n, out);
        if (load_valid(c, sel, base, n, l->kvalid))
            for (int64_t j = 0; j < n; j++)
                if (!l->kvalid[j])
                    out[j] = 0, fl[j] |= INT64_C(1) << k;
    }
}

static fb_status fast_sink(const agg_user *u, agg_local *l, const fb_chunk *ch)
{
    const fb_column *kc = &ch->columns[u->key_col[0]];
    const uint32_t *sel = ch->sel;
    const int64_t n = sel ? ch->n_sel : ch->rows;
    const fb_agg_strategy strat = u->g->spec.strategy;
    int has_vvalid[FB_AGG_MAX_AGGS] = {0};
    int64_t b = 0;
    if (l->mode == MODE_NONE && u->L.nx) { /* no direct table over keys that do not pack */
        if (strat == FB_AGG_STRATEGY_DIRECT)
            return fb_stage_error(l->ctx, FB_ERR_CAPACITY,
                                  "forced direct aggregation: the %d keys do not pack into one 64-bit word", u->L.nx);
        l->mode = MODE_PRE;
    }
    if ((l->mode == MODE_NONE || l->mode == MODE_DIRECT) && u->direct_i32 && !sel)
        FB_FORWARD_IF_ERROR(fast_direct_i32(u, l, ch, &b));
    const int vc = u->compact_col;
    for (; b < n; b += AGG_BATCH) {
        int64_t m = n - b < AGG_BATCH ? n - b : AGG_BATCH;
        if (l->mode == MODE_PRE && (strat == FB_AGG_STRATEGY_PARTITION || l->pass_left > 0) && u->direct_i32 &&
            u->compact_rs == 8 && !sel && !kc->validity &&
            (vc < 0 || !ch->columns[u->value_col[vc]].validity)) {
            /* passing int32 rows on: straight from the columns into the partitions */
            const fb_column *vcol = vc >= 0 ? &ch->columns[u->value_col[vc]] : NULL;
            FB_FORWARD_IF_ERROR(compact_put_i32(l->ctx, l->parts, (const int32_t *)kc->data + kc->offset + b,
                                                vcol ? (const int32_t *)vcol->data + vcol->offset + b : NULL, m,
                                                l->h));
            l->paths.spilled_records += m;
            l->paths.passed_rows += m;
            l->paths.compact_rows += m;
            l->pass_left = l->pass_left > m ? l->pass_left - m : 0;
            continue;
        }
        const uint32_t *bs = sel ? sel + b : NULL;
        int has_kvalid = 0;
        if (u->n_pack) {
            load_packed(u, l, ch, bs, b, m, l->kv, (int64_t *)(void *)l->rec); /* rec is free until build_records */
        } else if (u->L.nx) {
            load_multi(u, l, ch, bs, b, m);
        } else {
            load_ordered(kc, bs, b, m, l->kv);
            has_kvalid = load_valid(kc, bs, b, m, l->kvalid);
        }
        for (size_t v = 0; v < u->n_values; v++)
            if (u->value_type[v] != FB_TYPE_INVALID) {
                const fb_column *vcol = &ch->columns[u->value_col[v]];
                load_ordered(vcol, bs, b, m, l->vv[v]);
                has_vvalid[v] = load_valid(vcol, bs, b, m, l->vvalid[v]);
            }
        if (l->mode == MODE_NONE || l->mode == MODE_DIRECT) {
            int64_t mn, mx;
            int any = batch_range(l, m, has_kvalid, &mn, &mx);
            FB_FORWARD_IF_ERROR(direct_admit(u, l, any, mn, mx));
            if (l->mode == MODE_DIRECT) {
                direct_update(u, l, m, has_kvalid, has_vvalid);
                FB_FORWARD_IF_ERROR(direct_done(u, l, m));
                continue;
            }
        }
        if (strat == FB_AGG_STRATEGY_PARTITION || l->pass_left > 0) {
            if (u->compact_rs && !has_kvalid && (vc < 0 || !has_vvalid[vc])) {
                FB_FORWARD_IF_ERROR(compact_put(l->ctx, l->parts, l->kv, vc >= 0 ? l->vv[vc] : NULL, m, l->h));
                l->paths.spilled_records += m;
                l->paths.passed_rows += m;
                l->paths.compact_rows += m;
            } else if (u->compact_rs) {
                FB_FORWARD_IF_ERROR(compact_split(u, l, m, has_kvalid, has_vvalid));
            } else {
                build_records(u, l, m, has_kvalid, has_vvalid);
                FB_FORWARD_IF_ERROR(spill_batch(u, l, 0, m));
            }
            l->pass_left = l->pass_left > m ? l->pass_left - m : 0;
        } else {
            build_records(u, l, m, has_kvalid, has_vvalid);
            FB_FORWARD_IF_ERROR(pre_batch(u, l, m));
        }
    }
    return FB_OK;
}

static fb_status agg_sink(void *user, void *global, void *local, const fb_chunk *ch)
{
    agg_user *u = user;
    agg_local *l = local;
    const fb_agg_spec *spec = &u->g->spec;
    (void)global;
    for (size_t k = 0; k < spec->n_keys; k++) {
        if (u->key_col[k] >= ch->n_columns)
            return fb_stage_error(l->ctx, FB_ERR_INVALID_ARG, "key %zu is column %zu of a chunk with %zu columns", k,
                                  u->key_col[k], ch->n_columns);
        if (ch->columns[u->key_col[k]].type != u->g->key_types[k])
            return fb_stage_error(l->ctx, FB_ERR_UNSUPPORTED_TYPE, "key %zu has type %s, the spec says %s", k,
                                  fb_type_name(ch->columns[u->key_col[k]].type), fb_type_name(u->g->key_types[k]));
    }
    for (size_t v = 0; v < u->n_values; v++) {
        if (u->value_col[v] >= ch->n_columns)
            return fb_stage_error(l->ctx, FB_ERR_INVALID_ARG, "value %zu is column %zu of a chunk with %zu columns", v,
                                  u->value_col[v], ch->n_columns);
        if (u->value_type[v] != FB_TYPE_INVALID && ch->columns[u->value_col[v]].type != u->value_type[v])
            return fb_stage_error(l->ctx, FB_ERR_UNSUPPORTED_TYPE, "value %zu has type %s, the spec says %s", v,
                                  fb_type_name(ch->columns[u->value_col[v]].type), fb_type_name(u->value_type[v]));
    }
    if (l->mode != MODE_GENERIC)
        return fast_sink(u, l, ch);
    fb_column keys[FB_AGG_MAX_KEYS], vals[FB_AGG_MAX_AGGS];
    for (size_t k = 0; k < spec->n_keys; k++)
        keys[k] = ch->columns[u->key_col[k]];
    for (size_t v = 0; v < u->n_values; v++)
        vals[v] = ch->columns[u->value_col[v]];
    l->paths.generic_rows += ch->sel ? ch->n_sel : ch->rows;
    return fb_agg_update(l->generic, keys, vals, u->n_values, ch->rows, ch->sel, ch->n_sel);
}

static void add_paths(fb_agg_path_counts *a, const fb_agg_path_counts *b)
{
    a->direct_rows += b->direct_rows;
    a->preagg_rows += b->preagg_rows;
    a->passed_rows += b->passed_rows;
    a->generic_rows += b->generic_rows;
    a->spilled_records += b->spilled_records;
    a->flushes += b->flushes;
    a->compact_rows += b->compact_rows;
}

static fb_status agg_combine(void *user, void *global, void *local)
{
    agg_user *u = user;
    agg_global *G = global;
    agg_local *l = local;
    if (l->mode == MODE_GENERIC) {
        if (!G->generic) {
            G->generic = l->generic;
            l->generic = NULL;
        } else {
            FB_FORWARD_IF_ERROR(fb_agg_merge(G->generic, l->generic));
        }
    } else {
        if (l->mode == MODE_DIRECT)
            FB_FORWARD_IF_ERROR(direct_flush(u, l));
        if (l->pre.groups)
            FB_FORWARD_IF_ERROR(pre_flush(u, l));
        FB_FORWARD_IF_ERROR(parts_close(l->ctx, l->parts, u->L.W));
        G->parts[G->n_parts_in++] = l->parts;
        l->parts = NULL;
    }
    add_paths(&G->paths, &l->paths);
    return FB_OK;
}

/* ---- phase 2: partitions → groups ------------------------------------------------------------------ */

int64_t fb_agg_narrow_max_rows = (INT64_C(1) << 31) - 2;

/* Records and compact rows of radix partition p, over the workers. */
static int64_t part_records(const agg_global *G, int p)
{
    int64_t n = 0;
    for (int i = 0; i < G->n_parts_in; i++) {
        for (const agg_block *b = G->parts[i]->head[p]; b; b = b->next)
            n += b->n;
        if (!(p & ((1 << AGG_CSHIFT) - 1))) /* compact rows count for their group's first partition */
            for (const agg_block *b = G->parts[i]->chead[p >> AGG_CSHIFT]; b; b = b->next)
                n += b->n;
    }
    return n;
}

static fb_status merge_src_init_global(void *user, fb_ctx *ctx, void **global)
{
    agg_user *u = user;
    fb_agg_groups *g = u->g;
    groups_free_parts(g);
    g->done = 0;
    g->n_parts = 1;
    u->range[0] = 0;
    u->range[1] = 1;
    if (u->fast) {
        const agg_global *G0 = u->G;
        int64_t total = G0->paths.direct_rows + G0->paths.preagg_rows + G0->paths.passed_rows;
        u->narrow = total <= fb_agg_narrow_max_rows;
        /* Neighbouring radix partitions share one merge (one table, one output) until they hold
         * AGG_MERGE_MIN records: few groups then cost no thousand tiny merges. */
        const agg_global *G = u->G;
        int64_t acc = 0;
        g->n_parts = 0;
        for (int p = 0; p < AGG_NPART; p++) {
            acc += part_records(G, p);
            if ((acc >= AGG_MERGE_MIN && !((p + 1) & ((1 << AGG_CSHIFT) - 1))) || p == AGG_NPART - 1) {
                u->range[++g->n_parts] = p + 1;
                acc = 0;
            }
        }
    }
    FB_FORWARD_IF_ERROR(FB_ALLOC(ctx, sizeof(agg_out) * (size_t)g->n_parts, &g->parts));
    memset(g->parts, 0, sizeof(agg_out) * (size_t)g->n_parts);
    u->next_part = 0;
    *global = u;
    return FB_OK;
}

static fb_status merge_src_next(void *user, void *global, const fb_worker_info *w, fb_morsel *out, int *done)
{
    agg_user *u = user;
    (void)global, (void)w;
    if (u->next_part >= u->g->n_parts) {
        *done = 1;
        return FB_OK;
    }
    out->begin = u->next_part++;
    out->end = out->begin + 1;
    out->numa_node = -1;
    out->data = NULL;
    return FB_OK;
}

static fb_status merge_src_scan(void *user, void *global, void *local, const fb_morsel *m, fb_chunk *out)
{
    (void)user, (void)global, (void)local;
    memset(out, 0, sizeof *out);
    out->row_begin = m->begin;
    out->rows = 1;
    out->n_sel = 1;
    return FB_OK;
}

typedef struct merge_local {
    int node;
    agg_table T;
    uint64_t *h;
    uint32_t *gid;
    int64_t *keys, *vals; /* compact rows, decoded */
    size_t TW;            /* words of the table's entries (agg_user::narrow) */
    int64_t last_groups; /* of the previous partition: hash partitions are alike, so it sizes the next table */
    agg_oslab *slabs;    /* output memory, handed to the result by combine */
    char *out_cur, *out_end;
    const uint64_t **ent; /* the used entries of the table, for merge_emit */
    size_t ent_cap;
} merge_local;

/* Output memory for one partition, carved from the worker's current slab. */
static fb_status merge_out_alloc(fb_ctx *ctx, merge_local *ml, size_t bytes, void **out)
{
    bytes = round64(bytes);
    if (!ml->slabs || ml->out_cur + bytes > ml->out_end) {
        size_t sb = bytes + sizeof(agg_oslab) > ((size_t)16 << 20) ? bytes + sizeof(agg_oslab) : ((size_t)16 << 20);
        agg_oslab *s;
        FB_FORWARD_IF_ERROR(agg_alloc(ctx, ml->node, sb, (void **)&s));
        s->next = ml->slabs;
        s->bytes = sb;
        s->node = ml->node;
        ml->slabs = s;
        ml->out_cur = (char *)(s + 1);
        ml->out_end = (char *)s + sb;
    }
    *out = ml->out_cur;
    ml->out_cur += bytes;
    return FB_OK;
}

static fb_status merge_combine(void *user, void *global, void *local)
{
    agg_user *u = user;
    merge_local *ml = local;
    (void)global;
    while (ml->slabs) {
        agg_oslab *s = ml->slabs;
        ml->slabs = s->next;
        s->next = u->g->slabs;
        u->g->slabs = s;
    }
    return FB_OK;
}

static fb_status merge_init_local(void *user, void *global, const fb_worker_info *w, void **local)
{
    agg_user *u = user;
    merge_local *ml;
    (void)global;
    int node = agg_mem_node(u->g->ctx, w->numa_node);
    FB_FORWARD_IF_ERROR(fb_numa_alloc(u->g->ctx, node, sizeof *ml + AGG_BATCH * 28, (void **)&ml));
    memset(ml, 0, sizeof *ml);
    ml->node = node;
    ml->T.node = node;
    ml->h = (uint64_t *)(ml + 1);
    ml->keys = (int64_t *)(ml->h + AGG_BATCH);
    ml->vals = ml->keys + AGG_BATCH;
    ml->gid = (uint32_t *)(ml->vals + AGG_BATCH);
    *local = ml;
    return FB_OK;
}

static void merge_destroy_local(void *user, void *global, void *local)
{
    agg_user *u = user;
    merge_local *ml = local;
    (void)global;
    if (!ml)
        return;
    fb_numa_free(u->g->ctx, ml->node, ml->T.e, ml->T.slots * ml->TW * 8);
    fb_numa_free(u->g->ctx, ml->node, (void *)ml->ent, ml->ent_cap * sizeof *ml->ent);
    oslabs_free(u->g->ctx, ml->slabs);
    fb_numa_free(u->g->ctx, ml->node, ml, sizeof *ml + AGG_BATCH * 28);
}

/* A table of at least `slots` slots, emptied. */
static fb_status merge_table_reset(const agg_user *u, merge_local *ml, size_t slots)
{
    const size_t TW = (size_t)(u->narrow ? u->L.W : u->L.WT);
    if (ml->T.slots < slots || ml->T.slots > 4 * slots || ml->TW != TW) {
        fb_numa_free(u->g->ctx, ml->node, ml->T.e, ml->T.slots * ml->TW * 8);
        ml->T.e = NULL;
        ml->T.slots = 0;
        ml->TW = TW;
        FB_FORWARD_IF_ERROR(agg_alloc(u->g->ctx, ml->node, slots * TW * 8, (void **)&ml->T.e));
        ml->T.slots = slots;
    }
    memset(ml->T.e, 0, ml->T.slots * TW * 8);
    ml->T.groups = 0;
    ml->T.limit = AGG_MERGE_LIMIT(ml->T.slots);
    return FB_OK;
}

/* Doubles the merge table, moving its entries. */
static fb_status merge_table_grow(const agg_user *u, merge_local *ml)
{
    const size_t TW = ml->TW;
    agg_table old = ml->T;
    size_t slots = old.slots * 2;
    uint64_t *e;
    FB_FORWARD_IF_ERROR(agg_alloc(u->g->ctx, ml->node, slots * TW * 8, (void **)&e));
    memset(e, 0, slots * TW * 8);
    for (size_t s = 0; s < old.slots; s++) {
        const uint64_t *o = old.e + s * TW;
        if (!(o[1] & AGG_USED_FLAG))
            continue;
        size_t p = key_hash(&u->L, !u->narrow, o) & (slots - 1);
        while (e[p * TW + 1] & AGG_USED_FLAG)
            p = (p + 1) & (slots - 1);
        memcpy(e + p * TW, o, TW * 8);
    }
    fb_numa_free(u->g->ctx, ml->node, old.e, old.slots * TW * 8);
    ml->T.e = e;
    ml->T.slots = slots;
    ml->T.limit = AGG_MERGE_LIMIT(slots);
    return FB_OK;
}

/* Writes the merge table's groups as partition p's columns. */
/* Stores ordered int64 values src[r * stride] as a column of type t (one loop per type). */
static void store_column(fb_type t, void *data, const uint64_t *const *src, size_t off, int64_t n)
{
#define AGG_STORE(T, x)                                                                                  \
    for (int64_t r = 0; r < n; r++) {                                                                    \
        uint64_t v_ = src[r][off];                                                                       \
        ((T *)data)[r] = (T)(x);                                                                         \
    }
    switch (t) {
    case FB_TYPE_INT8: AGG_STORE(int8_t, v_); break;
    case FB_TYPE_INT16: AGG_STORE(int16_t, v_); break;
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: AGG_STORE(int32_t, v_); break;
    case FB_TYPE_UINT8: AGG_STORE(uint8_t, v_); break;
    case FB_TYPE_UINT16: AGG_STORE(uint16_t, v_); break;
    case FB_TYPE_UINT32: AGG_STORE(uint32_t, v_); break;
    case FB_TYPE_UINT64: AGG_STORE(uint64_t, v_ ^ 0x8000000000000000ull); break;
    default: AGG_STORE(int64_t, v_); break;
    }
#undef AGG_STORE
}

/* Writes the merge table's groups as a partition's columns, a column at a time over the list of
 * used entries. */
static fb_status merge_emit(const agg_user *u, merge_local *ml, agg_out *o)
{
    fb_agg_groups *g = u->g;
    const agg_layout *L = &u->L;
    const size_t TW = ml->TW;
    const int nar = u->narrow;
    const uint64_t cmask = nar ? AGG_LOW31 : AGG_CNT_MASK;
    const int64_t rows = ml->T.groups;
    size_t doff[FB_AGG_MAX_KEYS + FB_AGG_MAX_AGGS], voff[FB_AGG_MAX_KEYS + FB_AGG_MAX_AGGS];
    const size_t nk = g->spec.n_keys;
    size_t bytes = out_layout(g, rows, doff, voff);
    if ((size_t)rows + 1 > ml->ent_cap) {
        size_t cap = (size_t)rows + 1 > 2 * ml->ent_cap ? (size_t)rows + 1 : 2 * ml->ent_cap;
        fb_numa_free(g->ctx, ml->node, (void *)ml->ent, ml->ent_cap * sizeof *ml->ent);
        ml->ent = NULL;
        ml->ent_cap = 0;
        FB_FORWARD_IF_ERROR(agg_alloc(g->ctx, ml->node, cap * sizeof *ml->ent, (void **)&ml->ent));
        ml->ent_cap = cap;
    }
    FB_FORWARD_IF_ERROR(merge_out_alloc(g->ctx, ml, bytes, &o->buf));
    o->rows = rows;
    char *buf = o->buf;
    const uint64_t **ent = ml->ent;
    int64_t r = 0;
    for (size_t s = 0; s < ml->T.slots; s++) { /* branch-free: half the slots are used, at random */
        ent[r] = ml->T.e + s * TW;
        r += (ml->T.e[s * TW + 1] & AGG_USED_FLAG) != 0; /* ent has room for rows + 1 */
    }
    const size_t vbytes = round64(((size_t)rows + 7) / 8);
    if (u->n_pack) { /* each key's field of the packed key */
        for (int k = 0; k < u->n_pack; k++) {
            const uint64_t lo = (uint64_t)type_min(g->key_types[k]), vm = (UINT64_C(1) << u->kbits[k]) - 1;
            const int sh = u->kshift[k], nb = u->kbits[k];
            char *d = buf + doff[k];
            const size_t w = fb_type_width(g->key_types[k]);
            uint8_t *kv = (uint8_t *)buf + voff[k];
            memset(kv, 0, vbytes);
            for (r = 0; r < rows; r++) {
                uint64_t pk = ent[r][0];
                int kn = (int)((pk >> (sh + nb)) & 1);
                uint64_t x = kn ? 0 : ((pk >> sh) & vm) + lo; /* a null key's value: 0 */
                memcpy(d + (size_t)r * w, &x, w);           /* little-endian: the low bytes */
                kv[r >> 3] |= (uint8_t)(!kn << (r & 7));
                o->key_nulls |= (uint64_t)kn << k;
            }
        }
    } else if (L->nx) { /* each key's word, its null flag in the flags word */
        const size_t fo = xword(L, !nar, L->nx - 1);
        for (int k = 0; k < L->nx; k++) {
            const size_t w = fb_type_width(g->key_types[k]);
            char *d = buf + doff[k];
            store_column(g->key_types[k], d, ent, k ? xword(L, !nar, k - 1) : 0, rows);
            uint8_t *kv = (uint8_t *)buf + voff[k];
            memset(kv, 0, vbytes);
            for (r = 0; r < rows; r++) {
                int kn = (int)((ent[r][fo] >> k) & 1);
                if (kn) /* a null key's value: 0 */
                    memset(d + (size_t)r * w, 0, w);
                kv[r >> 3] |= (uint8_t)(!kn << (r & 7));
                o->key_nulls |= (uint64_t)kn << k;
            }
        }
    } else { /* key: null flag into validity */
        store_column(g->key_types[0], buf + doff[0], ent, 0, rows);
        uint8_t *kv = (uint8_t *)buf + voff[0];
        memset(kv, 0, vbytes);
        for (r = 0; r < rows; r++) {
            int kn = (ent[r][1] & AGG_NULL_FLAG) != 0;
            kv[r >> 3] |= (uint8_t)(!kn << (r & 7));
            o->key_nulls |= (uint64_t)kn;
        }
    }
    for (size_t a = 0; a < g->spec.n_aggs; a++) {
        fb_agg_kind kd = g->aggs[a].kind;
        char *d = buf + doff[nk + a];
        uint8_t *vb = (uint8_t *)buf + voff[nk + a];
        if (kd == FB_AGG_COUNT_STAR) {
            for (r = 0; r < rows; r++)
                ((int64_t *)d)[r] = (int64_t)(ent[r][1] & cmask);
            memset(vb, 0xFF, vbytes);
            continue;
        }
        /* the null count of the aggregate's column: a word, or bits 31..61 of the count word (narrow
         * and packed) */
        const int pn_in_cnt = nar && L->packed;
        const size_t nt = pn_in_cnt ? 1 : L->packed ? (size_t)L->pn_t : nar ? (size_t)L->nulls_w[a] : L->tw[L->nulls_w[a]];
#define AGG_NULLS(e) (pn_in_cnt ? ((e)[1] >> 31) & AGG_LOW31 : (e)[nt])
        if (kd == FB_AGG_COUNT) {
            for (r = 0; r < rows; r++)
                ((int64_t *)d)[r] = (int64_t)(ent[r][1] & cmask) - (int64_t)AGG_NULLS(ent[r]);
            memset(vb, 0xFF, vbytes);
            continue;
        }
        const size_t t = nar ? (size_t)L->acc_w[a] : L->tw[L->acc_w[a]];
        const int one_word = nar && L->kind[L->acc_w[a]] == W_SUM && !sum_is_wide(L, L->acc_w[a]);
#define AGG_SUM128(e) (one_word ? (agg_i128)(int64_t)(e)[t] : (agg_i128)((agg_u128)(e)[t + 1] << 64 | (e)[t]))
        memset(vb, 0, vbytes);
        int64_t nulls = 0;
        for (r = 0; r < rows; r++) {
            int valid = (ent[r][1] & cmask) != AGG_NULLS(ent[r]);
            vb[r >> 3] |= (uint8_t)(valid << (r & 7));
            nulls += !valid;
        }
        if (nulls)
            o->agg_nulls |= UINT64_C(1) << a;
        if (kd == FB_AGG_SUM) {
            int bad = 0;
            for (r = 0; r < rows; r++) {
                agg_i128 x = AGG_SUM128(ent[r]); /* 0 for a null sum */
                bad |= x > INT64_MAX || x < INT64_MIN;
                ((int64_t *)d)[r] = (int64_t)x;
            }
            if (bad) /* the run fails: no result */
                return fb_stage_error(g->ctx, FB_ERR_OVERFLOW, "aggregate %zu (sum of %s) overflows int64", a,
                                      fb_type_name(g->aggs[a].type));
        } else if (kd == FB_AGG_AVG) {
            for (r = 0; r < rows; r++) {
                int64_t nn = (int64_t)(ent[r][1] & cmask) - (int64_t)AGG_NULLS(ent[r]);
                agg_i128 x = AGG_SUM128(ent[r]);
                ((double *)d)[r] = nn ? (double)x / (double)nn : 0.0;
            }
        } else { /* min, max: a null one holds the identity; write 0 there */
            store_column(g->rtypes[a], d, ent, t, rows);
            if (nulls)
                for (r = 0; r < rows; r++)
                    if (!((vb[r >> 3] >> (r & 7)) & 1))
                        memset(d + (size_t)r * fb_type_width(g->rtypes[a]), 0, fb_type_width(g->rtypes[a]));
        }
#undef AGG_NULLS
#undef AGG_SUM128
    }
    return FB_OK;
}

static fb_status merge_generic(agg_user *u, merge_local *ml, agg_out *o)
{
    fb_agg_groups *g = u->g;
    agg_global *G = u->G;
    fb_agg_table *t = G->generic;
    fb_agg_table *empty = NULL;
    if (!t) { /* no worker saw a row */
        FB_FORWARD_IF_ERROR(fb_agg_create(g->ctx, &g->spec, &empty));
        t = empty;
    }
    int64_t rows = 0;
    fb_status st = fb_agg_group_count(t, &rows);
    size_t doff[FB_AGG_MAX_KEYS + FB_AGG_MAX_AGGS], voff[FB_AGG_MAX_KEYS + FB_AGG_MAX_AGGS];
    size_t bytes = out_layout(g, rows, doff, voff);
    if (st == FB_OK)
        st = merge_out_alloc(g->ctx, ml, bytes, &o->buf);
    if (st == FB_OK) {
        fb_column_out ko[FB_AGG_MAX_KEYS], ao[FB_AGG_MAX_AGGS];
        size_t n = 0;
        for (size_t k = 0; k < g->spec.n_keys; k++, n++)
            ko[k] = (fb_column_out){g->key_types[k], rows, (char *)o->buf + doff[n], (uint8_t *)o->buf + voff[n], 0, 0};
        for (size_t a = 0; a < g->spec.n_aggs; a++, n++)
            ao[a] = (fb_column_out){g->rtypes[a], rows, (char *)o->buf + doff[n], (uint8_t *)o->buf + voff[n], 0, 0};
        st = fb_agg_result(t, ko, ao);
        if (st == FB_OK) {
            o->rows = rows;
            for (size_t k = 0; k < g->spec.n_keys; k++)
                o->key_nulls |= (uint64_t)(ko[k].null_count > 0) << k;
            for (size_t a = 0; a < g->spec.n_aggs; a++)
                o->agg_nulls |= (uint64_t)(ao[a].null_count > 0) << a;
        }
    }
    fb_agg_destroy(empty);
    return st;
}

/* Aggregates compact rows into the merge table; stops before the row that would take the table
 * past its limit and returns how many rows it took. pf: the rows that come next (the next block), or
 * NULL: they are fetched from memory a line every few rows while these are merged. */
static int64_t merge_compact(const agg_user *u, merge_local *ml, const char *rows, int64_t m, const char *pf)
{
    const agg_layout *L = &u->L;
    const size_t TW = ml->TW, mask = ml->T.slots - 1;
    const int nar = u->narrow;
    int64_t *k = ml->keys, *v = ml->vals;
    uint64_t *h = ml->h, *tbl = ml->T.e;
    const uint64_t *w = (const uint64_t *)(const void *)rows;
    const int rs = u->compact_rs, pf_every = 64 / rs - 1; /* one line of the next rows per 64 bytes merged */
    const char *pf0 = pf ? pf : rows; /* (a NULL pf prefetches these rows again: harmless) */
    if (u->compact_rs == 8) {
        if (u->compact_ksigned)
            for (int64_t j = 0; j < m; j++)
                k[j] = (int32_t)(uint32_t)w[j], v[j] = (int32_t)(uint32_t)(w[j] >> 32);
        else
            for (int64_t j = 0; j < m; j++)
                k[j] = (uint32_t)w[j], v[j] = (int32_t)(uint32_t)(w[j] >> 32);
    } else {
        for (int64_t j = 0; j < m; j++)
            k[j] = (int64_t)w[2 * j], v[j] = (int64_t)w[2 * j + 1];
    }
    u->g->ctx->kt->hash_64((const uint64_t *)k, (fb_bits){NULL, 0}, m, h, 0);
    uint32_t *gid = ml->gid;
    int64_t groups = ml->T.groups;
    if (L->W == 3 && L->packed && L->kind[2] == W_SUM && nar) {
        /* count(*) and the sum of one 32-bit column (A1, A3), 3-word entries {key, count, sum}: one
         * pass finds the entry and updates it */
        const int pf_tbl = ml->T.slots * 24 > ((size_t)8 << 10); /* prefetch entries (rows and scratch stream through L1 too) */
        const int64_t lim = ml->T.limit;
        for (int64_t j = 0; j < m; j++) {
            if (!(j & pf_every))
                __builtin_prefetch(pf0 + j * rs);
            if (pf_tbl && j + 8 < m)
                __builtin_prefetch(tbl + (h[j + 8] & mask) * 3, 1);
            const uint64_t key = (uint64_t)k[j];
            size_t p = h[j] & mask;
            uint64_t *e = tbl + p * 3;
            for (;;) {
                const uint64_t w1 = e[1];
                if (__builtin_expect(!(w1 & AGG_USED_FLAG), 0)) {
                    if (groups >= lim) {
                        ml->T.groups = groups;
                        return j;
                    }
                    e[0] = key, e[1] = AGG_USED_FLAG, e[2] = 0;
                    groups++;
                    break;
                }
                if (e[0] == key && !(w1 & AGG_NULL_FLAG))
                    break;
                p = (p + 1) & mask;
                e = tbl + p * 3;
            }
            e[1]++;
            e[2] += (uint64_t)v[j];
        }
        ml->T.groups = groups;
        return m;
    }
    if (L->W == 3 && L->packed && L->kind[2] == W_SUM) {
        /* the same with wide entries (128-bit sums) */
        const size_t ts = nar ? 2 : L->tw[2];
        const int64_t pf_end = ml->T.slots * TW * 8 > ((size_t)48 << 10) ? m - 8 : 0; /* beyond L1: prefetch */
        for (int64_t j = 0; j < m; j++) {
            if (!(j & pf_every))
                __builtin_prefetch(pf0 + j * rs);
            if (j < pf_end)
                __builtin_prefetch(tbl + (h[j + 8] & mask) * TW, 1);
            uint64_t key = (uint64_t)k[j];
            size_t p = h[j] & mask;
            uint64_t *e;
            for (;;) {
                e = tbl + p * TW;
                if (__builtin_expect(!(e[1] & AGG_USED_FLAG), 0)) {
                    if (groups >= ml->T.limit) {
                        ml->T.groups = groups;
                        return j;
                    }
                    uint64_t r[2] = {key, 0};
                    entry_init(L, !nar, e, r);
                    groups++;
                    break;
                }
                if (e[0] == key && !(e[1] & AGG_NULL_FLAG))
                    break;
                p = (p + 1) & mask;
            }
            uint64_t x = (uint64_t)v[j], lo = e[ts] + x;
            e[1]++;
            if (!nar)
                e[ts + 1] += (uint64_t)((int64_t)x >> 63) + (lo < x);
            e[ts] = lo;
        }
        ml->T.groups = groups;
        return m;
    }
    /* find or claim each row's entry */
    for (int64_t j = 0; j < m; j++) {
        if (!(j & pf_every))
            __builtin_prefetch(pf0 + j * rs);
        uint64_t key = (uint64_t)k[j];
        size_t p = h[j] & mask;
        for (;;) {
            uint64_t *e = tbl + p * TW;
            if (!(e[1] & AGG_USED_FLAG)) {
                if (groups >= ml->T.limit) {
                    m = j;
                    break;
                }
                uint64_t r[2] = {key, 0};
                entry_init(L, !nar, e, r);
                groups++;
                break;
            }
            if (e[0] == key && !(e[1] & AGG_NULL_FLAG))
                break;
            p = (p + 1) & mask;
        }
        gid[j] = (uint32_t)p;
    }
    ml->T.groups = groups;
    for (int64_t j = 0; j < m; j++) /* the count of every entry */
        tbl[(size_t)gid[j] * TW + 1]++;
    for (int i = 2; i < L->W; i++) {
        const size_t t = nar ? (size_t)i : L->tw[i];
        switch (L->kind[i]) {
        case W_SUM:
            if (nar && !sum_is_wide(L, i)) { /* one word: 32-bit values of under 2^31 rows */
                for (int64_t j = 0; j < m; j++)
                    tbl[(size_t)gid[j] * TW + t] += (uint64_t)v[j];
                break;
            }
            for (int64_t j = 0; j < m; j++) {
                uint64_t *e = tbl + (size_t)gid[j] * TW + t;
                agg_u128 x = ((agg_u128)e[1] << 64 | e[0]) + (agg_u128)(agg_i128)v[j];
                e[0] = (uint64_t)x, e[1] = (uint64_t)(x >> 64);
            }
            break;
        case W_MIN:
            for (int64_t j = 0; j < m; j++) {
                int64_t *e = (int64_t *)tbl + (size_t)gid[j] * TW + t;
                *e = v[j] < *e ? v[j] : *e;
            }
            break;
        case W_MAX:
            for (int64_t j = 0; j < m; j++) {
                int64_t *e = (int64_t *)tbl + (size_t)gid[j] * TW + t;
                *e = v[j] > *e ? v[j] : *e;
            }
            break;
        default: /* W_NULLS, W_SUMHI: compact rows have no nulls; a wide sum is done with its W_SUM */
            break;
        }
    }
    return m;
}

static fb_status merge_sink(void *user, void *global, void *local, const fb_chunk *ch)
{
    agg_user *u = user;
    merge_local *ml = local;
    agg_global *G = u->G;
    (void)global;
    int op = (int)ch->row_begin;
    agg_out *o = &u->g->parts[op];
    if (!u->fast)
        return merge_generic(u, ml, o);
    const int W = u->L.W;
    int64_t records = 0;
    for (int p = u->range[op]; p < u->range[op + 1]; p++)
        records += part_records(G, p);
    int64_t est = ml->last_groups ? ml->last_groups + ml->last_groups / 4 + 64 : records;
    est = est < records ? est : records;
    size_t slots = 64;
    while (AGG_MERGE_LIMIT(slots) < est && slots < ((size_t)1 << 20))
        slots *= 2;
    if (slots * (size_t)(u->narrow ? W : u->L.WT) * 16 <= ((size_t)256 << 10))
        slots *= 2; /* a small table at most a third full: fewer collisions (their mispredicted branches) */
    FB_FORWARD_IF_ERROR(merge_table_reset(u, ml, slots));
    for (int p = u->range[op]; p < u->range[op + 1]; p++)
        for (int i = 0; i < G->n_parts_in; i++)
            for (const agg_block *b = G->parts[i]->head[p]; b; b = b->next) {
                const uint64_t *rec = (const uint64_t *)(b + 1);
                for (int64_t j0 = 0; j0 < b->n; j0 += AGG_BATCH) {
                    int64_t m = b->n - j0 < AGG_BATCH ? b->n - j0 : AGG_BATCH;
                    const uint64_t *r = rec + j0 * W;
                    for (int64_t j = 0; j < m; j++)
                        ml->h[j] = key_hash(&u->L, 0, r + j * W);
                    for (int64_t done = 0;;) {
                        int64_t k = table_probe(&u->L, !u->narrow, &ml->T, r + done * W, ml->h + done, m - done,
                                                ml->gid);
                        merge_records(&u->L, !u->narrow, ml->T.e, ml->gid, r + done * W, k);
                        done += k;
                        if (done == m)
                            break;
                        FB_FORWARD_IF_ERROR(merge_table_grow(u, ml));
                    }
                }
            }
    for (int c = u->range[op] >> AGG_CSHIFT; c < u->range[op + 1] >> AGG_CSHIFT; c++)
        for (int i = 0; i < G->n_parts_in; i++)
            for (const agg_block *b = G->parts[i]->chead[c]; b; b = b->next)
                for (int64_t j0 = 0; j0 < b->n; j0 += AGG_BATCH) {
                    int64_t m = b->n - j0 < AGG_BATCH ? b->n - j0 : AGG_BATCH;
                    const char *rows = (const char *)(b + 1) + j0 * u->compact_rs;
                    for (int64_t done = 0;;) {
                        const char *pf = b->next ? (const char *)(b->next + 1) + j0 * u->compact_rs : NULL;
                        done += merge_compact(u, ml, rows + done * u->compact_rs, m - done, pf);
                        if (done == m)
                            break;
                        FB_FORWARD_IF_ERROR(merge_table_grow(u, ml));
                    }
                }
    ml->last_groups = ml->T.groups;
    return merge_emit(u, ml, o);
}

static fb_status merge_finalize(void *user, void *global)
{
    agg_user *u = user;
    (void)global;
    if (u->G)
        u->g->paths = u->G->paths;
    u->g->done = 1;
    return FB_OK;
}

static void agg_user_unref(void *user)
{
    agg_user *u = user;
    if (!u || --u->refs > 0)
        return;
    fb_agg_groups *g = u->g;
    fb_free(g->ctx, u, sizeof *u);
    groups_unref(g, 0);
}

static int is_int_type(fb_type t) { return (t >= FB_TYPE_INT8 && t <= FB_TYPE_UINT64) || t == FB_TYPE_DATE32; }

fb_status fb_query_add_agg(fb_query *q, const char *name, const fb_source *source, const fb_operator *ops,
                           size_t n_ops, const fb_agg_spec *spec, const fb_agg_input *input, fb_agg_groups **groups,
                           fb_pipeline **merge)
{
    fb_ctx *ctx = q ? q->ctx : NULL;
    fb_status st = FB_OK;
    fb_agg_groups *g = NULL;
    agg_user *u = NULL;
    if (groups)
        *groups = NULL;
    if (merge)
        *merge = NULL;
    if (!q || !source || !spec || !input || !groups || (n_ops && !ops))
        st = FB_ERROR(ctx, FB_ERR_INVALID_ARG, "q, source, spec, input, groups (and ops) must not be NULL");
    else if ((spec->n_keys && !input->key_columns) || (input->n_values && !input->value_columns) ||
             input->n_values > FB_AGG_MAX_AGGS)
        st = FB_ERROR(ctx, FB_ERR_INVALID_ARG, "input lacks key or value columns, or has more than %d values",
                      FB_AGG_MAX_AGGS);
    if (st == FB_OK) { /* the spec's own checks */
        fb_agg_table *probe = NULL;
        st = fb_agg_create(ctx, spec, &probe);
        fb_agg_destroy(probe);
    }
    for (size_t a = 0; st == FB_OK && a < spec->n_aggs; a++)
        if (spec->aggs[a].kind != FB_AGG_COUNT_STAR && (size_t)spec->aggs[a].input >= input->n_values)
            st = FB_ERROR(ctx, FB_ERR_INVALID_ARG, "aggregate %zu reads value %d of %zu", a, (int)spec->aggs[a].input,
                          input->n_values);
    if (st == FB_OK)
        st = FB_ALLOC(ctx, sizeof *g, &g);
    if (st == FB_OK) {
        memset(g, 0, sizeof *g);
        g->ctx = ctx;
        g->spec = *spec;
        if (g->spec.strategy == FB_AGG_STRATEGY_AUTO) /* the context may force one */
            g->spec.strategy = fb_ctx_agg_strategy(ctx);
        if (spec->n_keys > 0) /* an ungrouped spec may have no key_types array */
            memcpy(g->key_types, spec->key_types, spec->n_keys * sizeof(fb_type));
        if (spec->n_aggs > 0)
            memcpy(g->aggs, spec->aggs, spec->n_aggs * sizeof(fb_agg_desc));
        g->spec.key_types = g->key_types;
        g->spec.aggs = g->aggs;
        for (size_t a = 0; a < spec->n_aggs; a++)
            fb_agg_result_type(spec->aggs[a].kind, spec->aggs[a].kind == FB_AGG_COUNT_STAR ? FB_TYPE_INT64 : spec->aggs[a].type,
                               &g->rtypes[a]);
        g->shared_refs = 1;
        g->caller_ref = 1;
        st = FB_ALLOC(ctx, sizeof *u, &u);
        if (st != FB_OK) { /* no user holds g: drop the shared reference and the caller's */
            groups_unref(g, 0);
            groups_unref(g, 1);
            g = NULL;
        }
    }
    if (st == FB_OK) {
        memset(u, 0, sizeof *u);
        u->g = g;
        u->refs = 3;
        u->n_values = input->n_values;
        for (size_t k = 0; k < spec->n_keys; k++)
            u->key_col[k] = input->key_columns[k];
        for (size_t v = 0; v < input->n_values; v++)
            u->value_col[v] = input->value_columns[v];
        int fast = spec->n_keys == 1, bits = 0, nx = 0;
        if (spec->n_keys >= 2) { /* several narrow keys: packed into one, when their fields fit 64 bits */
            fast = 1;
            for (size_t k = 0; k < spec->n_keys; k++) {
                fast &= is_int_type(spec->key_types[k]) && fb_type_width(spec->key_types[k]) < 8;
                u->kshift[k] = (uint8_t)bits;
                u->kbits[k] = (uint8_t)(8 * fb_type_width(spec->key_types[k]));
                bits += u->kbits[k] + 1;
            }
            u->n_pack = fast && bits <= 64 ? (int)spec->n_keys : 0;
            if (!u->n_pack) { /* integer keys that do not pack: one word each (agg_layout::nx) */
                fast = 1;
                for (size_t k = 0; k < spec->n_keys; k++)
                    fast &= is_int_type(spec->key_types[k]);
                nx = (int)spec->n_keys;
            }
        }
        for (size_t a = 0; a < spec->n_aggs; a++) {
            const fb_agg_desc *d = &spec->aggs[a];
            if (d->kind == FB_AGG_COUNT_STAR)
                continue;
            fast &= is_int_type(d->type);
            if (u->value_type[d->input] != FB_TYPE_INVALID && u->value_type[d->input] != d->type)
                st = FB_ERROR(ctx, FB_ERR_INVALID_ARG, "value %d is read with two types", (int)d->input);
            u->value_type[d->input] = d->type;
        }
        u->fast = fast;
        if (fast) {
            layout_build(&u->L, &g->spec, nx);
            u->direct_i32 = !u->n_pack && !nx &&
                            (spec->key_types[0] == FB_TYPE_INT32 || spec->key_types[0] == FB_TYPE_DATE32);
            for (size_t v = 0; v < input->n_values; v++)
                u->direct_i32 &= u->value_type[v] == FB_TYPE_INVALID || u->value_type[v] == FB_TYPE_INT32;
            int n_read = 0;
            u->compact_col = -1;
            for (size_t v = 0; v < input->n_values; v++)
                if (u->value_type[v] != FB_TYPE_INVALID)
                    n_read++, u->compact_col = (int)v;
            if (n_read <= 1 && !nx) {
                fb_type kt = spec->key_types[0];
                fb_type vt = u->compact_col >= 0 ? u->value_type[u->compact_col] : FB_TYPE_INT32;
                int k32 = u->n_pack ? bits <= 32 : fb_type_width(kt) <= 4;
                int v32 = fb_type_width(vt) <= 2 || vt == FB_TYPE_INT32 || vt == FB_TYPE_DATE32;
                u->compact_rs = k32 && v32 ? 8 : 16;
                u->compact_ksigned = !u->n_pack && !(kt == FB_TYPE_UINT8 || kt == FB_TYPE_UINT16 || kt == FB_TYPE_UINT32);
            }
        }
    }
    if (st != FB_OK) {
        if (u) {
            u->refs = 1;
            agg_user_unref(u);
        }
        if (g)
            groups_unref(g, 1);
        if (source && source->destroy)
            source->destroy(source->user);
        for (size_t i = 0; ops && i < n_ops; i++)
            if (ops[i].destroy)
                ops[i].destroy(ops[i].user);
        return st;
    }
    fb_sink sink;
    memset(&sink, 0, sizeof sink);
    sink.name = "agg";
    sink.init_global = agg_init_global;
    sink.init_local = agg_init_local;
    sink.sink = agg_sink;
    sink.combine = agg_combine;
    sink.destroy_local = agg_destroy_local;
    sink.destroy_global = agg_destroy_global;
    sink.destroy = agg_user_unref;
    sink.user = u;
    fb_pipeline *p1 = NULL, *p2 = NULL;
    st = fb_query_add_pipeline(q, name ? name : "agg", source, ops, n_ops, &sink, &p1);
    if (st != FB_OK) { /* the sink's destroy ran: drop the merge stages' references too */
        u->refs = 1;
        agg_user_unref(u);
        groups_unref(g, 1);
        return st;
    }
    fb_source src;
    memset(&src, 0, sizeof src);
    src.name = "agg-partitions";
    src.init_global = merge_src_init_global;
    src.next_morsel = merge_src_next;
    src.scan = merge_src_scan;
    src.destroy = agg_user_unref;
    src.user = u;
    fb_sink msink;
    memset(&msink, 0, sizeof msink);
    msink.name = "agg-merge";
    msink.init_local = merge_init_local;
    msink.sink = merge_sink;
    msink.combine = merge_combine;
    msink.finalize = merge_finalize;
    msink.destroy_local = merge_destroy_local;
    msink.destroy = agg_user_unref;
    msink.user = u;
    st = fb_query_add_pipeline(q, "agg-merge", &src, NULL, 0, &msink, &p2);
    if (st == FB_OK)
        st = fb_pipeline_depends_on(p2, p1);
    if (st != FB_OK) {
        groups_unref(g, 1);
        return st;
    }
    *groups = g;
    if (merge)
        *merge = p2;
    return FB_OK;
}

fb_status fb_agg_run(fb_ctx *ctx, const fb_table *table, int64_t morsel_rows, const fb_agg_spec *spec,
                     const fb_agg_input *input, fb_agg_groups **groups, fb_stats *stats)
{
    FB_RETURN_ERROR_IF(!ctx || !table || !groups, ctx, FB_ERR_INVALID_ARG, "ctx, table and groups must not be NULL");
    *groups = NULL;
    fb_query *q = NULL;
    FB_FORWARD_IF_ERROR(fb_query_create(ctx, &q));
    fb_source src;
    fb_agg_groups *g = NULL;
    fb_status st = fb_source_table(ctx, table, morsel_rows, &src);
    if (st == FB_OK)
        st = fb_query_add_agg(q, NULL, &src, NULL, 0, spec, input, &g, NULL);
    if (st == FB_OK) {
        st = fb_query_run(q);
        if (stats && fb_query_workers(q) > 0)
            fb_query_stats(q, -1, -1, stats);
    }
    fb_query_destroy(q);
    if (st != FB_OK) {
        fb_agg_groups_destroy(g);
        return st;
    }
    *groups = g;
    return FB_OK;
}
