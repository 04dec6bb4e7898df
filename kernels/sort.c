/* sort.c - public entry points of fb_sort.h (argument checks, scratch memory) and the single-threaded
 * sort itself: normalized-key records, MSD radix sort with constant-digit skipping, insertion sort
 * for tiny inputs, a heap for top-N. Also the scalar variant of the sort kernel table
 * (fb_sort_internal.h); simd_sort.c holds the others.
 *
 * A record is `words` uint64: the normalized key bits packed most significant first from bit 63 of
 * word 0 (per key: a null bit when the column has a validity bitmap, then the ordered value bits),
 * and the row id either in the low bits of the last key word (when enough of them are free) or in
 * one more word. Comparing records word by word therefore gives (key, row id) order, which makes
 * every record distinct and every method here stable and deterministic. */
#include "fb_internal.h"
#include "fb_kernel_table.h"
#include "fb_kernels_common.h"
#include "fb_sort_internal.h"
#include "fb_sort_radix.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- scalar variant ------------------------------------------------------------------------------ */

static void encode_32_scalar(const uint32_t *v, int64_t n, fb_key_kind kind, uint32_t flip, uint64_t *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = fb_sort_encode_32(v[i], kind, flip);
}

static void encode_64_scalar(const uint64_t *v, int64_t n, fb_key_kind kind, uint64_t flip, uint64_t *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = fb_sort_encode_64(v[i], kind, flip);
}

const fb_sort_kernels fb_sort_kernels_scalar = {
    .isa = FB_ISA_SCALAR,
    .encode_32 = encode_32_scalar,
    .encode_64 = encode_64_scalar,
    .rs_encode = rs_encode,
    .rs_histogram = rs_histogram,
    .rs_scatter = rs_scatter_plain,
    .rs_flush = rs_flush_plain,
    .rs_sort = rs_sort_bucket,
    .rs_small = rs_rank_sort,
    .rs_merge = rs_merge_scalar,
    .rs_emit = rs_emit,
};

/* The context's variant; fb_ctx_create() only accepts variants this build and CPU run. */
static const fb_sort_kernels *sort_kernels(const fb_ctx *ctx)
{
    switch (ctx->isa) {
    case FB_ISA_BASE: return &fb_sort_kernels_base;
#if defined(FB_HAVE_X86_VARIANTS)
    case FB_ISA_AVX2: return &fb_sort_kernels_avx2;
    case FB_ISA_AVX512: return &fb_sort_kernels_avx512;
#endif
    default: return &fb_sort_kernels_scalar;
    }
}

/* ---- record layout ------------------------------------------------------------------------------- */

#define KEY_BITS_MAX (FB_SORT_MAX_KEYS * 65)
#define KEY_WORDS_MAX ((KEY_BITS_MAX + 63) / 64)
#define DIGITS_MAX (KEY_WORDS_MAX * 8)
#define CHUNK 1024 /* rows encoded at a time (an L1-sized buffer on the stack) */
#define SMALL_SORT 32

typedef struct layout {
    int64_t n;
    int words;          /* record stride in uint64 */
    int rid_word;       /* word holding the row id */
    uint64_t rid_mask;  /* its bits there */
    int n_digits;       /* 8-bit digits over the key bits, least significant first */
    uint8_t digit_word[DIGITS_MAX];
    uint8_t digit_shift[DIGITS_MAX];
} layout;

static int key_field_bits(const fb_sort_key *k)
{
    return (int)fb_type_width(k->column.type) * 8;
}

static void layout_make(const fb_sort_key *keys, size_t n_keys, int64_t n, layout *L)
{
    int bits = 0;
    for (size_t k = 0; k < n_keys; k++)
        bits += (keys[k].column.validity != NULL) + key_field_bits(&keys[k]);
    int rid_bits = n > 1 ? 64 - __builtin_clzll((unsigned long long)(n - 1)) : 1;
    int key_words = (bits + 63) / 64;
    int free_bits = key_words * 64 - bits;
    L->n = n;
    if (free_bits >= rid_bits) {
        L->words = key_words;
        L->rid_word = key_words - 1;
        L->rid_mask = (1ull << rid_bits) - 1;
    } else {
        L->words = key_words + 1;
        L->rid_word = key_words;
        L->rid_mask = ~0ull;
    }
    L->n_digits = 0;
    for (int w = key_words - 1; w >= 0; w--)
        for (int s = w == key_words - 1 ? free_bits : 0; s < 64; s += 8) {
            L->digit_word[L->n_digits] = (uint8_t)w;
            L->digit_shift[L->n_digits] = (uint8_t)s;
            L->n_digits++;
        }
}

/* ORs the low `fw` bits of v (v < 2^fw, 1 ≤ fw ≤ 64) into rec at bit position pos (0 = bit 63 of word 0). */
static inline void put_bits(uint64_t *rec, int pos, int fw, uint64_t v)
{
    int wi = pos >> 6, avail = 64 - (pos & 63);
    if (fw <= avail) {
        rec[wi] |= v << (avail - fw);
    } else {
        int rest = fw - avail;
        rec[wi] |= v >> rest;
        rec[wi + 1] |= v << (64 - rest);
    }
}

/* Ordered unsigned bits of rows [start, start + count) of one key, count ≤ CHUNK. */
static void encode_chunk(const fb_sort_kernels *sk, const fb_sort_key *key, int64_t start, int64_t count,
                         uint64_t *out)
{
    const fb_column *c = &key->column;
    int64_t r0 = c->offset + start;
    int desc = key->descending != 0;
    switch (c->type) {
    case FB_TYPE_INT8:
    case FB_TYPE_UINT8: {
        const uint8_t *v = (const uint8_t *)c->data + r0;
        uint8_t x = (uint8_t)((c->type == FB_TYPE_INT8 ? 0x80u : 0u) ^ (desc ? 0xFFu : 0u));
        for (int64_t i = 0; i < count; i++)
            out[i] = (uint8_t)(v[i] ^ x);
        break;
    }
    case FB_TYPE_INT16:
    case FB_TYPE_UINT16: {
        const uint16_t *v = (const uint16_t *)c->data + r0;
        uint16_t x = (uint16_t)((c->type == FB_TYPE_INT16 ? 0x8000u : 0u) ^ (desc ? 0xFFFFu : 0u));
        for (int64_t i = 0; i < count; i++)
            out[i] = (uint16_t)(v[i] ^ x);
        break;
    }
    case FB_TYPE_INT32:
    case FB_TYPE_UINT32:
    case FB_TYPE_FLOAT32:
    case FB_TYPE_DATE32:
        sk->encode_32((const uint32_t *)c->data + r0, count, fb_type_key_kind(c->type), desc ? ~0u : 0u, out);
        break;
    default:
        sk->encode_64((const uint64_t *)c->data + r0, count, fb_type_key_kind(c->type), desc ? ~0ull : 0ull, out);
        break;
    }
}

/* Writes the records of rows [start, start + count) to rec (count * L->words words). */
static void fill_records(const fb_sort_kernels *sk, const fb_sort_key *keys, size_t n_keys, const layout *L,
                         int64_t start, int64_t count, uint64_t *rec)
{
    uint64_t tmp[CHUNK];
    int R = L->words;
    memset(rec, 0, (size_t)count * (size_t)R * 8);
    for (int64_t c0 = 0; c0 < count; c0 += CHUNK) {
        int64_t m = count - c0 < CHUNK ? count - c0 : CHUNK;
        uint64_t *rc = rec + c0 * R;
        int pos = 0;
        for (size_t k = 0; k < n_keys; k++) {
            const fb_sort_key *key = &keys[k];
            int fw = key_field_bits(key);
            encode_chunk(sk, key, start + c0, m, tmp);
            if (key->column.validity) {
                fb_bits valid = {key->column.validity, key->column.offset};
                uint64_t null_bit = key->nulls_first ? 0 : 1;
                for (int64_t i = 0; i < m; i++) {
                    int ok = fb_bit_get(valid, start + c0 + i);
                    put_bits(rc + i * R, pos, 1, ok ? null_bit ^ 1 : null_bit);
                    put_bits(rc + i * R, pos + 1, fw, ok ? tmp[i] : 0);
                }
                pos += 1 + fw;
            } else if (fw == 64 && (pos & 63) == 0) {
                for (int64_t i = 0; i < m; i++)
                    rc[i * R + (pos >> 6)] = tmp[i];
                pos += fw;
            } else {
                for (int64_t i = 0; i < m; i++)
                    put_bits(rc + i * R, pos, fw, tmp[i]);
                pos += fw;
            }
        }
        for (int64_t i = 0; i < m; i++)
            rc[i * R + L->rid_word] |= (uint64_t)(start + c0 + i);
    }
}

/* Copies one record of R words: inline for the common sizes (a memcpy call of a run-time size per
 * record took a third of a three-key sort). */
static inline void copy_rec(uint64_t *d, const uint64_t *s, int R)
{
    switch (R) {
    case 3: d[0] = s[0], d[1] = s[1], d[2] = s[2]; break;
    case 4: d[0] = s[0], d[1] = s[1], d[2] = s[2], d[3] = s[3]; break;
    default:
        for (int w = 0; w < R; w++)
            d[w] = s[w];
    }
}

/* ---- comparison sorts ---------------------------------------------------------------------------- */

static inline int rec_less(const uint64_t *a, const uint64_t *b, int R)
{
    for (int w = 0; w < R; w++)
        if (a[w] != b[w])
            return a[w] < b[w];
    return 0;
}

static void insertion_sort(uint64_t *rec, int64_t n, int R)
{
    uint64_t t[KEY_WORDS_MAX + 1];
    for (int64_t i = 1; i < n; i++) {
        copy_rec(t, rec + i * R, R);
        int64_t j = i;
        for (; j > 0 && rec_less(t, rec + (j - 1) * R, R); j--)
            copy_rec(rec + j * R, rec + (j - 1) * R, R);
        copy_rec(rec + j * R, t, R);
    }
}

static void swap_rec(uint64_t *a, uint64_t *b, int R)
{
    for (int w = 0; w < R; w++) {
        uint64_t t = a[w];
        a[w] = b[w];
        b[w] = t;
    }
}

/* Max-heap of n records: restores the heap below node i. */
static void sift_down(uint64_t *h, int64_t n, int64_t i, int R)
{
    for (;;) {
        int64_t l = 2 * i + 1, big = i;
        if (l < n && rec_less(h + big * R, h + l * R, R))
            big = l;
        if (l + 1 < n && rec_less(h + big * R, h + (l + 1) * R, R))
            big = l + 1;
        if (big == i)
            return;
        swap_rec(h + i * R, h + big * R, R);
        i = big;
    }
}

static void sift_up(uint64_t *h, int64_t i, int R)
{
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!rec_less(h + p * R, h + i * R, R))
            return;
        swap_rec(h + i * R, h + p * R, R);
        i = p;
    }
}

/* ---- MSD radix sort ------------------------------------------------------------------------------ */

/* MSD radix sort of n records of x by their 8-bit digits d, d-1, ..., 0 (L->digit_word/digit_shift,
 * least significant first), stable; the result ends in y when to_y, else in x (the other is scratch).
 * Digits on which all records agree are skipped after their histogram; a level scatters x -> y and
 * recurses into each digit's range with the roles swapped, so the work stops where the keys become
 * distinct (the leading keys usually decide) instead of passing over every digit as LSD must. Small
 * ranges: insertion sort of the whole records (key, then row id: stable). */
static void msd_sort(uint64_t *x, uint64_t *y, int64_t n, const layout *L, int d, int to_y)
{
    int R = L->words;
    uint32_t cnt[256];
    while (n > SMALL_SORT && d >= 0) {
        int w = L->digit_word[d], s = L->digit_shift[d];
        memset(cnt, 0, sizeof cnt);
        for (int64_t i = 0; i < n; i++)
            cnt[(x[i * R + w] >> s) & 0xFF]++;
        int constant = 0;
        for (int k = 0; k < 256 && !constant; k++)
            constant = cnt[k] == (uint64_t)n;
        if (!constant)
            break;
        d--;
    }
    if (n <= SMALL_SORT || d < 0) {
        if (to_y) {
            memcpy(y, x, (size_t)n * (size_t)R * 8);
            x = y;
        }
        if (d >= 0)
            insertion_sort(x, n, R); /* (d < 0: every key digit equal, the input order stands) */
        return;
    }
    int w = L->digit_word[d], s = L->digit_shift[d];
    int64_t off[256], sum = 0;
    for (int k = 0; k < 256; k++) {
        off[k] = sum;
        sum += cnt[k];
    }
    for (int64_t i = 0; i < n; i++)
        copy_rec(y + off[(x[i * R + w] >> s) & 0xFF]++ * R, x + i * R, R);
    int64_t pos = 0;
    for (int k = 0; k < 256; k++) {
        int64_t c = cnt[k];
        if (c == 1) {
            if (!to_y)
                copy_rec(x + pos * R, y + pos * R, R);
        } else if (c > 1) {
            msd_sort(y + pos * R, x + pos * R, c, L, d - 1, !to_y);
        }
        pos += c;
    }
}

/* ---- argument checks ----------------------------------------------------------------------------- */

fb_status fb_sort_check_keys(const fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t *rows,
                             const char *where)
{
    if (!ctx)
        return fb_set_error(NULL, FB_ERR_INVALID_ARG, where, "ctx must not be NULL");
    if (!keys)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "keys must not be NULL");
    if (n_keys == 0 || n_keys > FB_SORT_MAX_KEYS)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "n_keys is %zu; a sort takes 1 to %d keys", n_keys,
                            FB_SORT_MAX_KEYS);
    for (size_t k = 0; k < n_keys; k++) {
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, &keys[k].column, where, "a key column"));
        if (keys[k].column.length != keys[0].column.length)
            return fb_set_error(ctx, FB_ERR_LENGTH_MISMATCH, where, "key %zu has %lld rows, key 0 has %lld", k,
                                (long long)keys[k].column.length, (long long)keys[0].column.length);
    }
    if (keys[0].column.length > FB_MORSEL_MAX_ROWS)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%lld rows; a sort takes at most %lld (uint32 row ids)",
                            (long long)keys[0].column.length, (long long)FB_MORSEL_MAX_ROWS);
    *rows = keys[0].column.length;
    return FB_OK;
}

/* Bytes of n records, or 0 when that overflows size_t. */
static size_t rec_bytes(int64_t n, int R)
{
    if ((uint64_t)n > SIZE_MAX / 8 / (size_t)R)
        return 0;
    return (size_t)n * (size_t)R * 8;
}

/* Asks Linux for transparent huge pages over a large scratch array (a hint; errors are ignored): its
 * first touch then faults 2 MiB at a time instead of 4 KiB, which took a fifth of a large sort's time
 * in the kernel's page-fault path on the development machine (THP in "madvise" mode). */
static void advise_huge(void *p, size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (!p || bytes < ((size_t)4 << 20))
        return;
    uintptr_t b = ((uintptr_t)p + 4095) & ~(uintptr_t)4095, e = ((uintptr_t)p + bytes) & ~(uintptr_t)4095;
    if (e > b)
        (void)madvise((void *)b, e - b, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

/* ---- runners ------------------------------------------------------------------------------------ */

static fb_status serial_run(void *self, fb_ctx *ctx, int64_t n_tasks, fb_sort_task_fn task, void *arg,
                            const int *task_node)
{
    (void)self;
    (void)ctx;
    (void)task_node;
    for (int64_t t = 0; t < n_tasks; t++)
        FB_FORWARD_IF_ERROR(task(arg, t, 0));
    return FB_OK;
}

static const fb_sort_runner serial_runner = {1, serial_run, NULL, 1, NULL, NULL};

#define PHASE_MORSEL (1 << 18) /* rows per task of the encode, histogram and scatter phases */

static int64_t n_morsels(int64_t n) { return (n + PHASE_MORSEL - 1) / PHASE_MORSEL; }

static void morsel_range(int64_t n, int64_t m, int64_t *b, int64_t *e)
{
    *b = m * PHASE_MORSEL;
    *e = *b + PHASE_MORSEL < n ? *b + PHASE_MORSEL : n;
}

/* Bits of the top-level partition of n records whose keys differ in their low `hb` bits: buckets of
 * about FB_RS_BUCKET records; 0 = no partition. */
static int top_bits(int64_t n, int hb)
{
    int b = 0;
    while (b < FB_RS_MAX_BITS && (n >> b) > FB_RS_BUCKET)
        b++;
    return b > hb ? hb : b;
}

/* ---- the fixed-width record sort (fb_sort_radix.h) ------------------------------------------------
 * Phases: encode rows into records a (and the key range); histogram of the top digit per morsel;
 * stable scatter a -> b into 2^bits buckets (morsel m's records of digit d go after those of morsels
 * < m); then per bucket a cache-resident MSD sort (scratch per worker) and decoding into the outputs. */

typedef struct rs_job {
    const fb_sort_kernels *sk;
    fb_rs_spec spec;
    fb_rs_out out;
    int64_t n, morsels;
    uint64_t *b;          /* the partitioned records (n), or NULL */
    uint64_t *a;          /* scratch for buckets larger than cap (n), or NULL */
    uint64_t *range;      /* [morsels][2]: min, max key */
    int shift;
    uint64_t mask;
    uint32_t *hist;       /* [morsels][mask + 1]: counts, then each morsel's first position per digit */
    int64_t *bstart;      /* [mask + 2]: bucket d is [bstart[d], bstart[d + 1]) */
    uint64_t **chunks;    /* per worker FB_RS_CHUNK records, on the worker's NUMA node */
    int64_t cap;          /* records of each worker's bucket scratch */
    uint64_t **wbuf;      /* per worker, on its node: cap records (where the worker sorts its buckets), wc
                             (mask + 1) * 8 records, off and start (mask + 1) each */
    size_t wstride;       /* uint64 per worker in wbuf */
} rs_job;

static uint64_t *rs_worker(const rs_job *j, int w) { return j->wbuf[w]; }
static uint64_t *rs_chunk(const rs_job *j, int w) { return j->chunks[w]; }

/* ---- NUMA placement --------------------------------------------------------------------------------
 * A worker's scratch (its chunk buffer, and the bucket scratch in which it sorts each partition it
 * takes) is allocated on the worker's NUMA node (fb_numa_alloc; on one node, or a synthetic topology,
 * from the context's allocator), and on a machine with several nodes the partitions (bucket tasks) are
 * handed out in contiguous groups, group k preferably to the workers of node k. */
static int worker_node(const fb_sort_runner *run, int w) { return run->node ? run->node[w] : -1; }

/* One buffer of `bytes` per worker, each on its worker's node; *out is NULL or an array whose entries
 * are NULL where nothing was allocated (worker_bufs_free frees either). */
static fb_status worker_bufs(fb_ctx *ctx, const fb_sort_runner *run, size_t bytes, uint64_t ***out,
                             const char *where)
{
    uint64_t **p = NULL;
    *out = NULL;
    FB_FORWARD_IF_ERROR(fb_alloc(ctx, (size_t)run->workers * sizeof *p, 64, (void **)&p, where));
    memset(p, 0, (size_t)run->workers * sizeof *p);
    *out = p;
    for (int w = 0; w < run->workers; w++) {
        int node = worker_node(run, w);
        FB_FORWARD_IF_ERROR(fb_numa_alloc(ctx, node, bytes, (void **)&p[w]));
        if (run->node_bytes && node >= 0)
            run->node_bytes[node] += (int64_t)bytes;
    }
    return FB_OK;
}

static void worker_bufs_free(fb_ctx *ctx, const fb_sort_runner *run, size_t bytes, uint64_t **p)
{
    if (!p)
        return;
    for (int w = 0; w < run->workers; w++)
        fb_numa_free(ctx, worker_node(run, w), p[w], bytes);
    fb_free(ctx, p, (size_t)run->workers * sizeof *p);
}

/* The preferred node of each of n partition tasks (contiguous groups, one per node), or NULL when the
 * runner has one node (then nothing is allocated). */
static fb_status partition_nodes(fb_ctx *ctx, const fb_sort_runner *run, int64_t n, int **out, const char *where)
{
    *out = NULL;
    if (run->nodes <= 1 || n <= 0)
        return FB_OK;
    int *t = NULL;
    FB_FORWARD_IF_ERROR(fb_alloc(ctx, (size_t)n * sizeof *t, 64, (void **)&t, where));
    for (int64_t d = 0; d < n; d++)
        t[d] = (int)(d * run->nodes / n);
    *out = t;
    return FB_OK;
}

/* The key range of a morsel (records encoded into the worker's chunk buffer, not kept). */
static fb_status rs_task_range(void *arg, int64_t m, int w)
{
    rs_job *j = arg;
    int64_t b, e;
    morsel_range(j->n, m, &b, &e);
    uint64_t mn = ~0ull, mx = 0, cmn, cmx, *c = rs_chunk(j, w);
    uint32_t *h = j->hist ? j->hist + (size_t)m * (j->mask + 1) : NULL; /* no arithmetic on NULL (UB) */
    if (h)
        memset(h, 0, (size_t)(j->mask + 1) * sizeof *h);
    for (int64_t c0 = b; c0 < e; c0 += FB_RS_CHUNK) {
        int64_t c1 = c0 + FB_RS_CHUNK < e ? c0 + FB_RS_CHUNK : e;
        j->sk->rs_encode(&j->spec, c0, c1, c, &cmn, &cmx);
        mn = cmn < mn ? cmn : mn;
        mx = cmx > mx ? cmx : mx;
        if (j->hist)
            j->sk->rs_histogram(c, c1 - c0, j->shift, j->mask, h);
    }
    j->range[2 * m] = mn;
    j->range[2 * m + 1] = mx;
    return FB_OK;
}

static fb_status rs_task_hist(void *arg, int64_t m, int w)
{
    rs_job *j = arg;
    int64_t b, e;
    morsel_range(j->n, m, &b, &e);
    uint32_t *h = j->hist + (size_t)m * (j->mask + 1);
    memset(h, 0, (size_t)(j->mask + 1) * sizeof *h);
    uint64_t mn, mx, *c = rs_chunk(j, w);
    for (int64_t c0 = b; c0 < e; c0 += FB_RS_CHUNK) {
        int64_t c1 = c0 + FB_RS_CHUNK < e ? c0 + FB_RS_CHUNK : e;
        j->sk->rs_encode(&j->spec, c0, c1, c, &mn, &mx);
        j->sk->rs_histogram(c, c1 - c0, j->shift, j->mask, h);
    }
    return FB_OK;
}

static fb_status rs_task_scatter(void *arg, int64_t m, int w)
{
    rs_job *j = arg;
    int64_t b, e;
    morsel_range(j->n, m, &b, &e);
    uint64_t *wc = rs_worker(j, w) + j->cap;
    int64_t *off = (int64_t *)(wc + (j->mask + 1) * 8), *start = off + j->mask + 1;
    const uint32_t *h = j->hist + (size_t)m * (j->mask + 1);
    for (uint64_t d = 0; d <= j->mask; d++)
        off[d] = start[d] = h[d];
    uint64_t mn, mx, *c = rs_chunk(j, w);
    for (int64_t c0 = b; c0 < e; c0 += FB_RS_CHUNK) {
        int64_t c1 = c0 + FB_RS_CHUNK < e ? c0 + FB_RS_CHUNK : e;
        j->sk->rs_encode(&j->spec, c0, c1, c, &mn, &mx);
        j->sk->rs_scatter(c, c1 - c0, j->shift, j->mask, off, j->b, wc, start);
    }
    j->sk->rs_flush(j->mask, off, j->b, wc, start);
    return FB_OK;
}

static fb_status rs_task_bucket(void *arg, int64_t d, int w)
{
    rs_job *j = arg;
    int64_t s = j->bstart[d], c = j->bstart[d + 1] - s;
    if (c == 0)
        return FB_OK;
    uint64_t *t = c <= j->cap ? rs_worker(j, w) : j->a + s;
    const uint64_t *r = j->sk->rs_sort(j->b + s, t, c, j->spec.lo);
    j->sk->rs_emit(&j->spec, r, c, s, &j->out);
    return FB_OK;
}

/* All keys equal: the input order is the sorted order. */
static fb_status rs_task_emit_input(void *arg, int64_t m, int w)
{
    rs_job *j = arg;
    int64_t b, e;
    morsel_range(j->n, m, &b, &e);
    uint64_t mn, mx, *c = rs_chunk(j, w);
    for (int64_t c0 = b; c0 < e; c0 += FB_RS_CHUNK) {
        int64_t c1 = c0 + FB_RS_CHUNK < e ? c0 + FB_RS_CHUNK : e;
        j->sk->rs_encode(&j->spec, c0, c1, c, &mn, &mx);
        j->sk->rs_emit(&j->spec, c, c1 - c0, c0, &j->out);
    }
    return FB_OK;
}

static fb_status rs_task_encode(void *arg, int64_t m, int w)
{
    rs_job *j = arg;
    (void)w;
    int64_t b, e;
    uint64_t mn, mx;
    morsel_range(j->n, m, &b, &e);
    j->sk->rs_encode(&j->spec, b, e, j->b + b, &mn, &mx);
    return FB_OK;
}

/* The per-morsel digit counts hist[m][d] (m < morsels, d < nd) become each morsel's first output position
 * for digit d, and bstart[d] digit d's first position (bstart[nd] = the total). */
static void hist_to_starts(uint32_t *hist, int64_t morsels, uint64_t nd, int64_t *bstart)
{
    int64_t pos = 0;
    for (uint64_t d = 0; d < nd; d++) {
        bstart[d] = pos;
        for (int64_t m = 0; m < morsels; m++) {
            uint32_t c = hist[(size_t)m * nd + d];
            hist[(size_t)m * nd + d] = (uint32_t)pos;
            pos += c;
        }
    }
    bstart[nd] = pos;
}

/* Phases: the key range (records encoded chunk by chunk into a worker's buffer, as in every phase
 * that reads the input, so that no array of records is written before the partition); histograms of
 * the top digit per morsel; the stable scatter into b; per bucket the cache-resident MSD sort and the
 * decoding. An 8-byte key alone is partitioned straight into its output column (b), so the sort takes
 * no memory in proportion to the rows unless a bucket outgrows the worker scratch. */
static fb_status rs_sort(fb_ctx *ctx, const fb_rs_spec *spec, int64_t n, const fb_rs_out *out,
                         const fb_sort_runner *run, const char *where)
{
    if (n == 0)
        return FB_OK;
    rs_job j;
    memset(&j, 0, sizeof j);
    j.sk = sort_kernels(ctx);
    j.spec = *spec;
    j.out = *out;
    j.n = n;
    j.morsels = n_morsels(n);
    int own_b = !(spec->lo == 0 && out->key); /* else b is the output column */
    size_t abytes = (size_t)n * 8, rbytes = (size_t)j.morsels * 16, hbytes = 0, bsbytes = 0, wbytes = 0;
    size_t cbytes = FB_RS_CHUNK * 8;
    int *tnode = NULL;
    size_t tbytes = 0;
    /* The first pass also takes the histogram for keys that differ in their top bit (uniform keys over
     * the type's range): then it is the partition's, and the histogram pass is saved. */
    int key_bits = spec->lo ? 32 : 64;
    int bits = top_bits(n, key_bits);
    j.shift = spec->lo + key_bits - bits;
    j.mask = (1ull << bits) - 1;
    hbytes = (size_t)j.morsels * (j.mask + 1) * 4;
    fb_status st = fb_alloc(ctx, rbytes, 64, (void **)&j.range, where);
    if (st == FB_OK)
        st = worker_bufs(ctx, run, cbytes, &j.chunks, where);
    if (st == FB_OK && bits)
        st = fb_alloc(ctx, hbytes, 64, (void **)&j.hist, where);
    if (st == FB_OK)
        st = run->run(run->self, ctx, j.morsels, rs_task_range, &j, NULL);
    if (st != FB_OK)
        goto done;
    uint64_t kmin = ~0ull, kmax = 0;
    for (int64_t m = 0; m < j.morsels; m++) {
        kmin = j.range[2 * m] < kmin ? j.range[2 * m] : kmin;
        kmax = j.range[2 * m + 1] > kmax ? j.range[2 * m + 1] : kmax;
    }
    if (kmin == kmax) {
        st = run->run(run->self, ctx, j.morsels, rs_task_emit_input, &j, NULL);
        goto done;
    }
    int hb = 64 - __builtin_clzll(kmin ^ kmax);
    int have_hist = hb == key_bits && j.hist;
    if (!have_hist) {
        fb_free(ctx, j.hist, j.hist ? hbytes : 0);
        j.hist = NULL;
        bits = top_bits(n, hb);
        j.shift = spec->lo + hb - bits;
        j.mask = (1ull << bits) - 1;
        hbytes = (size_t)j.morsels * (j.mask + 1) * 4;
        if (bits)
            st = fb_alloc(ctx, hbytes, 64, (void **)&j.hist, where);
    }
    uint64_t nd = j.mask + 1;
    bsbytes = (size_t)(nd + 1) * 8;
    if (st == FB_OK)
        st = fb_alloc(ctx, bsbytes, 64, (void **)&j.bstart, where);
    if (st == FB_OK && own_b)
        st = fb_alloc(ctx, abytes, 64, (void **)&j.b, where);
    if (st != FB_OK)
        goto done;
    if (!own_b)
        j.b = out->key;
    else
        advise_huge(j.b, abytes);
    if (bits == 0) {
        j.bstart[0] = 0;
        j.bstart[1] = n;
    } else {
        if (!have_hist)
            st = run->run(run->self, ctx, j.morsels, rs_task_hist, &j, NULL);
        if (st != FB_OK)
            goto done;
        hist_to_starts(j.hist, j.morsels, nd, j.bstart);
    }
    int64_t biggest = 0;
    for (uint64_t d = 0; d < nd; d++)
        biggest = j.bstart[d + 1] - j.bstart[d] > biggest ? j.bstart[d + 1] - j.bstart[d] : biggest;
    j.cap = biggest < 8 * FB_RS_BUCKET ? biggest : 8 * FB_RS_BUCKET;
    j.cap = (j.cap + 7) & ~(int64_t)7;
    j.wstride = (size_t)j.cap + (bits ? (size_t)nd * 8 + (size_t)nd * 2 : 0);
    wbytes = j.wstride * 8;
    st = worker_bufs(ctx, run, wbytes, &j.wbuf, where);
    if (st == FB_OK)
        st = partition_nodes(ctx, run, (int64_t)nd, &tnode, where);
    tbytes = tnode ? (size_t)nd * sizeof *tnode : 0;
    if (st == FB_OK && biggest > j.cap) {
        st = fb_alloc(ctx, abytes, 64, (void **)&j.a, where);
        advise_huge(j.a, abytes);
    }
    if (st == FB_OK)
        st = run->run(run->self, ctx, j.morsels, bits ? rs_task_scatter : rs_task_encode, &j, NULL);
    if (st == FB_OK)
        st = run->run(run->self, ctx, (int64_t)nd, rs_task_bucket, &j, tnode);
done:
    fb_free(ctx, tnode, tbytes);
    worker_bufs_free(ctx, run, wbytes, j.wbuf);
    fb_free(ctx, j.bstart, j.bstart ? bsbytes : 0);
    fb_free(ctx, j.hist, j.hist ? hbytes : 0);
    worker_bufs_free(ctx, run, cbytes, j.chunks);
    fb_free(ctx, j.range, j.range ? rbytes : 0);
    if (own_b)
        fb_free(ctx, j.b, j.b ? abytes : 0);
    fb_free(ctx, j.a, j.a ? abytes : 0);
    return st;
}

/* Whether the record sort takes key k; fills spec's key part. allow_float: float32 keys (row ids only). */
static int rs_key_spec(const fb_sort_key *k, int allow_float, fb_rs_spec *s)
{
    const fb_column *c = &k->column;
    fb_type t = c->type;
    if (c->validity || t == FB_TYPE_FLOAT64 || (t == FB_TYPE_FLOAT32 && !allow_float))
        return 0;
    int w = (int)fb_type_width(t);
    int sgn = t == FB_TYPE_INT8 || t == FB_TYPE_INT16 || t == FB_TYPE_INT32 || t == FB_TYPE_DATE32 ||
              t == FB_TYPE_INT64;
    memset(s, 0, sizeof *s);
    s->key = (const char *)c->data + (size_t)c->offset * (size_t)w;
    s->key_width = w;
    s->key_signed = sgn;
    s->key_float = t == FB_TYPE_FLOAT32;
    if (w == 8) {
        s->lo = 0;
        s->key_mask = ~0ull;
        s->xor_ = (sgn ? 0x8000000000000000ull : 0) ^ (k->descending ? ~0ull : 0);
    } else {
        s->lo = 32;
        s->key_mask = 0xFFFFFFFFull;
        s->xor_ = (sgn || s->key_float ? 0x80000000ull : 0) ^ (k->descending ? 0xFFFFFFFFull : 0);
    }
    return 1;
}

/* ---- the normalized-record sort (any keys) --------------------------------------------------------
 * Phases: records (fill_records) and the range of their first word; a stable partition by the top
 * differing bits of the first word into buckets of about FB_RS_BUCKET records; per bucket the LSD radix
 * MSD sort above (which skips the digits the partition made constant) and the row ids. */

typedef struct gen_job {
    const fb_sort_kernels *sk;
    const fb_sort_key *keys;
    size_t n_keys;
    layout L;
    int64_t n, morsels;
    uint64_t *a, *b;
    uint64_t *range;
    int shift;
    uint64_t mask;
    uint32_t *hist;
    int64_t *bstart;
    uint32_t *row_ids;
} gen_job;

static fb_status gen_task_fill(void *arg, int64_t m, int w)
{
    gen_job *j = arg;
    (void)w;
    int64_t b, e;
    morsel_range(j->n, m, &b, &e);
    int R = j->L.words;
    uint64_t *rec = j->a + b * R;
    fill_records(j->sk, j->keys, j->n_keys, &j->L, b, e - b, rec);
    uint64_t mn = ~0ull, mx = 0;
    for (int64_t i = 0; i < e - b; i++) {
        uint64_t x = rec[i * R];
        mn = x < mn ? x : mn;
        mx = x > mx ? x : mx;
    }
    j->range[2 * m] = mn;
    j->range[2 * m + 1] = mx;
    return FB_OK;
}

static fb_status gen_task_hist(void *arg, int64_t m, int w)
{
    gen_job *j = arg;
    (void)w;
    int64_t b, e;
    morsel_range(j->n, m, &b, &e);
    int R = j->L.words;
    uint32_t *h = j->hist + (size_t)m * (j->mask + 1);
    memset(h, 0, (size_t)(j->mask + 1) * sizeof *h);
    const uint64_t *rec = j->a + b * R;
    for (int64_t i = 0; i < e - b; i++)
        h[(rec[i * R] >> j->shift) & j->mask]++;
    return FB_OK;
}

static fb_status gen_task_scatter(void *arg, int64_t m, int w)
{
    gen_job *j = arg;
    (void)w;
    int64_t b, e;
    morsel_range(j->n, m, &b, &e);
    int R = j->L.words;
    uint32_t *off = j->hist + (size_t)m * (j->mask + 1); /* this morsel's positions, advanced in place */
    const uint64_t *rec = j->a + b * R;
    for (int64_t i = 0; i < e - b; i++) {
        int64_t o = off[(rec[i * R] >> j->shift) & j->mask]++;
        copy_rec(j->b + o * R, rec + i * R, R);
    }
    return FB_OK;
}

static fb_status gen_task_bucket(void *arg, int64_t d, int w)
{
    gen_job *j = arg;
    int64_t s = j->bstart[d], c = j->bstart[d + 1] - s;
    if (c == 0)
        return FB_OK;
    int R = j->L.words;
    (void)w;
    msd_sort(j->b + s * R, j->a + s * R, c, &j->L, j->L.n_digits - 1, 0);
    const uint64_t *r = j->b + s * R;
    for (int64_t i = 0; i < c; i++)
        j->row_ids[s + i] = (uint32_t)(r[i * R + j->L.rid_word] & j->L.rid_mask);
    return FB_OK;
}

/* Full stable sort into row_ids (room for n). */
static fb_status sort_all(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t n, uint32_t *row_ids,
                          const fb_sort_runner *run, const char *where)
{
    if (n == 0)
        return FB_OK;
    fb_rs_spec spec;
    if (n_keys == 1 && keys[0].column.type != FB_TYPE_INT64 && keys[0].column.type != FB_TYPE_UINT64 &&
        rs_key_spec(&keys[0], 1, &spec)) {
        spec.rowid = 1;
        fb_rs_out out = {NULL, NULL, row_ids};
        return rs_sort(ctx, &spec, n, &out, run, where);
    }
    gen_job j;
    memset(&j, 0, sizeof j);
    j.sk = sort_kernels(ctx);
    j.keys = keys;
    j.n_keys = n_keys;
    j.n = n;
    j.row_ids = row_ids;
    j.morsels = n_morsels(n);
    layout_make(keys, n_keys, n, &j.L);
    int R = j.L.words;
    size_t bytes = rec_bytes(n, R);
    FB_RETURN_ERROR_IF(bytes == 0, ctx, FB_ERR_OUT_OF_MEMORY, "%lld records do not fit in memory", (long long)n);
    size_t rbytes = (size_t)j.morsels * 16;
    size_t hbytes = 0, bsbytes = 0, tbytes = 0;
    int *tnode = NULL;
    fb_status st = fb_alloc(ctx, bytes, 64, (void **)&j.a, where);
    if (st == FB_OK && n > SMALL_SORT)
        st = fb_alloc(ctx, bytes, 64, (void **)&j.b, where);
    if (st == FB_OK) {
        advise_huge(j.a, bytes);
        advise_huge(j.b, bytes);
    }
    if (st == FB_OK)
        st = fb_alloc(ctx, rbytes, 64, (void **)&j.range, where);
    if (st == FB_OK)
        st = run->run(run->self, ctx, j.morsels, gen_task_fill, &j, NULL);
    if (st != FB_OK)
        goto done;
    if (n <= SMALL_SORT) {
        insertion_sort(j.a, n, R);
        for (int64_t i = 0; i < n; i++)
            row_ids[i] = (uint32_t)(j.a[i * R + j.L.rid_word] & j.L.rid_mask);
        goto done;
    }
    uint64_t kmin = ~0ull, kmax = 0;
    for (int64_t m = 0; m < j.morsels; m++) {
        kmin = j.range[2 * m] < kmin ? j.range[2 * m] : kmin;
        kmax = j.range[2 * m + 1] > kmax ? j.range[2 * m + 1] : kmax;
    }
    int hb = kmin == kmax ? 0 : 64 - __builtin_clzll(kmin ^ kmax);
    int bits = top_bits(n, hb);
    j.shift = hb - bits;
    j.mask = (1ull << bits) - 1;
    uint64_t nd = j.mask + 1;
    hbytes = (size_t)j.morsels * nd * 4;
    bsbytes = (size_t)(nd + 1) * 8;
    st = fb_alloc(ctx, hbytes, 64, (void **)&j.hist, where);
    if (st == FB_OK)
        st = fb_alloc(ctx, bsbytes, 64, (void **)&j.bstart, where);
    if (st == FB_OK)
        st = partition_nodes(ctx, run, (int64_t)nd, &tnode, where);
    tbytes = tnode ? (size_t)nd * sizeof *tnode : 0;
    if (st != FB_OK)
        goto done;
    if (bits == 0) {
        uint64_t *t = j.a;
        j.a = j.b;
        j.b = t;
        j.bstart[0] = 0;
        j.bstart[1] = n;
    } else {
        st = run->run(run->self, ctx, j.morsels, gen_task_hist, &j, NULL);
        if (st != FB_OK)
            goto done;
        hist_to_starts(j.hist, j.morsels, nd, j.bstart);
        st = run->run(run->self, ctx, j.morsels, gen_task_scatter, &j, NULL);
    }
    if (st == FB_OK)
        st = run->run(run->self, ctx, (int64_t)nd, gen_task_bucket, &j, tnode);
done:
    fb_free(ctx, tnode, tbytes);
    fb_free(ctx, j.bstart, j.bstart ? bsbytes : 0);
    fb_free(ctx, j.hist, j.hist ? hbytes : 0);
    fb_free(ctx, j.range, j.range ? rbytes : 0);
    fb_free(ctx, j.b, j.b ? bytes : 0);
    fb_free(ctx, j.a, j.a ? bytes : 0);
    return st;
}

fb_status fb_sort_permutation_with(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, uint32_t *row_ids,
                                   int64_t capacity, const fb_sort_runner *run, const char *where)
{
    int64_t n = 0;
    FB_FORWARD_IF_ERROR(fb_sort_check_keys(ctx, keys, n_keys, &n, where));
    if (n > 0 && !row_ids)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "row_ids must not be NULL");
    if (capacity < n)
        return fb_set_error(ctx, FB_ERR_CAPACITY, where, "row_ids holds %lld entries, the keys have %lld rows",
                            (long long)capacity, (long long)n);
    return sort_all(ctx, keys, n_keys, n, row_ids, run, where);
}

fb_status fb_sort_permutation(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, uint32_t *row_ids,
                              int64_t capacity)
{
    return fb_sort_permutation_with(ctx, keys, n_keys, row_ids, capacity, &serial_runner, __func__);
}

static void sift_down_u64(uint64_t *h, int64_t n, int64_t i)
{
    for (;;) {
        int64_t l = 2 * i + 1, big = i;
        if (l < n && h[big] < h[l])
            big = l;
        if (l + 1 < n && h[big] < h[l + 1])
            big = l + 1;
        if (big == i)
            return;
        uint64_t t = h[i];
        h[i] = h[big];
        h[big] = t;
        i = big;
    }
}

/* Top-N of one narrow key without nulls: 8-byte records (key, row id) in a max-heap of integers; a
 * chunk whose smallest key is above the heap's largest record is passed over after its encoding. */
static fb_status top_n_records(fb_ctx *ctx, const fb_rs_spec *spec, int64_t rows, int64_t m, uint32_t *row_ids,
                               const char *where)
{
    const fb_sort_kernels *sk = sort_kernels(ctx);
    size_t hbytes = (size_t)m * 8, cbytes = FB_RS_CHUNK * 8;
    uint64_t *h = NULL, *chunk = NULL;
    fb_status st = fb_alloc(ctx, hbytes, 64, (void **)&h, where);
    if (st == FB_OK)
        st = fb_alloc(ctx, cbytes, 64, (void **)&chunk, where);
    if (st == FB_OK) {
        int64_t size = 0;
        for (int64_t c0 = 0; c0 < rows; c0 += FB_RS_CHUNK) {
            int64_t c1 = c0 + FB_RS_CHUNK < rows ? c0 + FB_RS_CHUNK : rows;
            uint64_t kmin, kmax;
            sk->rs_encode(spec, c0, c1, chunk, &kmin, &kmax);
            if (size == m && (kmin << 32) > h[0])
                continue;
            for (int64_t i = 0; i < c1 - c0; i++) {
                uint64_t x = chunk[i];
                if (size < m) {
                    int64_t k = size++;
                    while (k > 0 && h[(k - 1) / 2] < x) {
                        h[k] = h[(k - 1) / 2];
                        k = (k - 1) / 2;
                    }
                    h[k] = x;
                } else if (x < h[0]) {
                    h[0] = x;
                    sift_down_u64(h, m, 0);
                }
            }
        }
        for (int64_t end = m - 1; end > 0; end--) {
            uint64_t t = h[0];
            h[0] = h[end];
            h[end] = t;
            sift_down_u64(h, end, 0);
        }
        for (int64_t j = 0; j < m; j++)
            row_ids[j] = (uint32_t)h[j];
    }
    fb_free(ctx, chunk, chunk ? cbytes : 0);
    fb_free(ctx, h, h ? hbytes : 0);
    return st;
}

/* The m smallest records of rows [begin, begin + rows) by a max-heap (memory O(m)); row_ids relative to begin. */
static fb_status top_n_heap(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t begin, int64_t rows,
                            int64_t m, uint32_t *row_ids, const char *where)
{
    fb_sort_key sub[FB_SORT_MAX_KEYS];
    for (size_t k = 0; k < n_keys; k++) {
        sub[k] = keys[k];
        sub[k].column.offset += begin;
        sub[k].column.length = rows;
    }
    fb_rs_spec spec;
    if (n_keys == 1 && fb_type_width(sub[0].column.type) <= 4 && rs_key_spec(&sub[0], 1, &spec)) {
        spec.rowid = 1;
        return top_n_records(ctx, &spec, rows, m, row_ids, where);
    }
    layout L;
    layout_make(sub, n_keys, rows, &L);
    int R = L.words;
    size_t hbytes = rec_bytes(m, R), cbytes = rec_bytes(CHUNK, R);
    uint64_t *h = NULL, *chunk = NULL;
    fb_status st = fb_alloc(ctx, hbytes, 64, (void **)&h, where);
    if (st == FB_OK)
        st = fb_alloc(ctx, cbytes, 64, (void **)&chunk, where);
    if (st == FB_OK) {
        const fb_sort_kernels *sk = sort_kernels(ctx);
        int64_t size = 0;
        for (int64_t c0 = 0; c0 < rows; c0 += CHUNK) {
            int64_t cm = rows - c0 < CHUNK ? rows - c0 : CHUNK;
            fill_records(sk, sub, n_keys, &L, c0, cm, chunk);
            for (int64_t i = 0; i < cm; i++) {
                const uint64_t *r = chunk + i * R;
                if (size < m) {
                    memcpy(h + size * R, r, (size_t)R * 8);
                    sift_up(h, size, R);
                    size++;
                } else if (rec_less(r, h, R)) {
                    memcpy(h, r, (size_t)R * 8);
                    sift_down(h, m, 0, R);
                }
            }
        }
        /* heap sort: the largest goes last */
        for (int64_t end = m - 1; end > 0; end--) {
            swap_rec(h, h + end * R, R);
            sift_down(h, end, 0, R);
        }
        for (int64_t j = 0; j < m; j++)
            row_ids[j] = (uint32_t)(h[j * R + L.rid_word] & L.rid_mask);
    }
    fb_free(ctx, chunk, chunk ? cbytes : 0);
    fb_free(ctx, h, h ? hbytes : 0);
    return st;
}

/* Parallel top-N: each morsel's top m (by the heap) as candidates, in row order; then the top m of the
 * candidates, which equals the top m of all rows (a row outside its morsel's top m has m rows before it). */
#define TOP_MORSEL (1 << 18)

typedef struct top_job {
    fb_ctx *ctx;
    const fb_sort_key *keys;
    size_t n_keys;
    int64_t rows, m;
    uint32_t *cand; /* [morsels][m] */
    const char *where;
} top_job;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static fb_status top_task(void *arg, int64_t t, int w)
{
    top_job *j = arg;
    (void)w;
    int64_t b = t * TOP_MORSEL, e = b + TOP_MORSEL < j->rows ? b + TOP_MORSEL : j->rows;
    int64_t m = j->m < e - b ? j->m : e - b;
    uint32_t *c = j->cand + (size_t)t * (size_t)j->m;
    FB_FORWARD_IF_ERROR(top_n_heap(j->ctx, j->keys, j->n_keys, b, e - b, m, c, j->where));
    qsort(c, (size_t)m, sizeof *c, cmp_u32);
    for (int64_t i = 0; i < m; i++)
        c[i] += (uint32_t)b;
    return FB_OK;
}

static fb_status top_n_parallel(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t rows, int64_t m,
                                uint32_t *row_ids, const fb_sort_runner *run, const char *where)
{
    int64_t morsels = (rows + TOP_MORSEL - 1) / TOP_MORSEL;
    top_job j = {ctx, keys, n_keys, rows, m, NULL, where};
    size_t cbytes = (size_t)morsels * (size_t)m * 4;
    FB_FORWARD_IF_ERROR(fb_alloc(ctx, cbytes, 64, (void **)&j.cand, where));
    fb_status st = run->run(run->self, ctx, morsels, top_task, &j, NULL);
    /* pack the candidates (row order) */
    int64_t nc = 0;
    for (int64_t t = 0; t < morsels && st == FB_OK; t++) {
        int64_t b = t * TOP_MORSEL, e = b + TOP_MORSEL < rows ? b + TOP_MORSEL : rows;
        int64_t mt = m < e - b ? m : e - b;
        memmove(j.cand + nc, j.cand + (size_t)t * (size_t)m, (size_t)mt * 4);
        nc += mt;
    }
    /* the candidates' keys, gathered, and their top m */
    fb_column_out outs[FB_SORT_MAX_KEYS];
    fb_sort_key ck[FB_SORT_MAX_KEYS];
    size_t sizes[FB_SORT_MAX_KEYS][2];
    memset(outs, 0, sizeof outs);
    memset(sizes, 0, sizeof sizes);
    uint32_t *ids = NULL;
    size_t ibytes = (size_t)m * 4;
    for (size_t k = 0; k < n_keys && st == FB_OK; k++) {
        const fb_column *c = &keys[k].column;
        sizes[k][0] = (size_t)nc * fb_type_width(c->type) + 8;
        sizes[k][1] = c->validity ? (size_t)(nc + 7) / 8 + 8 : 0;
        outs[k] = (fb_column_out){c->type, nc, NULL, NULL, 0, 0};
        st = fb_alloc(ctx, sizes[k][0], 64, &outs[k].data, where);
        if (st == FB_OK && sizes[k][1])
            st = fb_alloc(ctx, sizes[k][1], 64, (void **)&outs[k].validity, where);
        if (st == FB_OK)
            st = fb_compact(ctx, c, j.cand, nc, &outs[k]);
        ck[k] = keys[k];
        ck[k].column = fb_column_make(c->type, outs[k].data, nc, outs[k].validity);
    }
    if (st == FB_OK)
        st = fb_alloc(ctx, ibytes, 64, (void **)&ids, where);
    if (st == FB_OK)
        st = top_n_heap(ctx, ck, n_keys, 0, nc, m, ids, where);
    for (int64_t i = 0; i < m && st == FB_OK; i++)
        row_ids[i] = j.cand[ids[i]];
    fb_free(ctx, ids, ids ? ibytes : 0);
    for (size_t k = 0; k < n_keys; k++) {
        fb_free(ctx, outs[k].validity, outs[k].validity ? sizes[k][1] : 0);
        fb_free(ctx, outs[k].data, outs[k].data ? sizes[k][0] : 0);
    }
    fb_free(ctx, j.cand, cbytes);
    return st;
}

fb_status fb_sort_top_n_with(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t n, uint32_t *row_ids,
                             int64_t capacity, int64_t *n_out, const fb_sort_runner *run, const char *where)
{
    int64_t rows = 0;
    FB_FORWARD_IF_ERROR(fb_sort_check_keys(ctx, keys, n_keys, &rows, where));
    if (n < 0)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "n is negative (%lld)", (long long)n);
    if (!n_out)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "n_out must not be NULL");
    int64_t m = n < rows ? n : rows;
    if (m > 0 && !row_ids)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "row_ids must not be NULL");
    if (capacity < m)
        return fb_set_error(ctx, FB_ERR_CAPACITY, where, "row_ids holds %lld entries, the result has %lld",
                            (long long)capacity, (long long)m);
    if (m == 0) {
        *n_out = 0;
        return FB_OK;
    }
    fb_status st;
    if (m > rows / 8) {
        /* a large share of the rows: sorting them all is cheaper than a heap */
        uint32_t *all = NULL;
        size_t bytes = (size_t)rows * sizeof *all;
        FB_FORWARD_IF_ERROR(fb_alloc(ctx, bytes, 64, (void **)&all, where));
        st = sort_all(ctx, keys, n_keys, rows, all, run, where);
        if (st == FB_OK)
            memcpy(row_ids, all, (size_t)m * sizeof *all);
        fb_free(ctx, all, bytes);
    } else if (run->workers > 1 && rows > 2 * TOP_MORSEL && m <= TOP_MORSEL / 8) {
        st = top_n_parallel(ctx, keys, n_keys, rows, m, row_ids, run, where);
    } else {
        st = top_n_heap(ctx, keys, n_keys, 0, rows, m, row_ids, where);
    }
    if (st == FB_OK)
        *n_out = m;
    return st;
}

fb_status fb_sort_top_n(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t n, uint32_t *row_ids,
                        int64_t capacity, int64_t *n_out)
{
    return fb_sort_top_n_with(ctx, keys, n_keys, n, row_ids, capacity, n_out, &serial_runner, __func__);
}

static void reset_outs(fb_column_out *out, size_t n_out)
{
    for (size_t i = 0; i < n_out; i++) {
        out[i].length = 0;
        out[i].null_count = 0;
    }
}

/* Moving every column by the permutation, a range of output rows (a multiple of 64) per task. */
#define MOVE_MORSEL (1 << 16)

typedef struct move_job {
    fb_ctx *ctx;
    const fb_sort_key *keys;
    size_t n_keys;
    const fb_column *payload;
    fb_column_out *out;
    size_t n_cols;
    const uint32_t *perm;
    int64_t n;
    int64_t *nulls; /* [tasks][n_cols] */
} move_job;

static fb_status move_task(void *arg, int64_t t, int w)
{
    move_job *j = arg;
    (void)w;
    int64_t b = t * MOVE_MORSEL, e = b + MOVE_MORSEL < j->n ? b + MOVE_MORSEL : j->n;
    for (size_t i = 0; i < j->n_cols; i++) {
        const fb_column *c = i < j->n_keys ? &j->keys[i].column : &j->payload[i - j->n_keys];
        fb_column_out *o = &j->out[i];
        size_t wd = fb_type_width(c->type);
        fb_column_out part = {c->type, e - b, (char *)o->data + (size_t)b * wd,
                              o->validity ? o->validity + b / 8 : NULL, 0, 0};
        FB_FORWARD_IF_ERROR(fb_compact(j->ctx, c, j->perm + b, e - b, &part));
        j->nulls[(size_t)t * j->n_cols + i] = part.null_count;
    }
    return FB_OK;
}

fb_status fb_sort_table_with(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, const fb_column *payload,
                             size_t n_payload, fb_column_out *out, const fb_sort_runner *run, const char *where)
{
    int64_t n = 0;
    FB_FORWARD_IF_ERROR(fb_sort_check_keys(ctx, keys, n_keys, &n, where));
    if (!out)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "out must not be NULL");
    size_t n_cols = n_keys + n_payload;
    reset_outs(out, n_cols);
    if (n_payload > 0 && !payload)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "payload must not be NULL");
    for (size_t j = 0; j < n_payload; j++) {
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, &payload[j], where, "a payload column"));
        if (payload[j].length != n)
            return fb_set_error(ctx, FB_ERR_LENGTH_MISMATCH, where, "payload %zu has %lld rows, the keys have %lld", j,
                                (long long)payload[j].length, (long long)n);
    }
    for (size_t i = 0; i < n_cols; i++) {
        const fb_column *c = i < n_keys ? &keys[i].column : &payload[i - n_keys];
        fb_status st = fb_check_column_out(ctx, &out[i], c->type, n, c->validity != NULL, where);
        if (st != FB_OK) {
            reset_outs(out, n_cols);
            return st;
        }
    }
    /* one key without nulls and at most one narrow payload without nulls: records carry the values */
    fb_rs_spec spec;
    if (n_keys == 1 && n_payload <= 1 && rs_key_spec(&keys[0], 0, &spec) &&
        (n_payload == 0 || (spec.lo == 32 && !payload[0].validity && fb_type_width(payload[0].type) <= 4))) {
        fb_rs_out ro = {out[0].data, NULL, NULL};
        if (n_payload) {
            size_t pw = fb_type_width(payload[0].type);
            spec.pay = (const char *)payload[0].data + (size_t)payload[0].offset * pw;
            spec.pay_width = (int)pw;
            ro.pay = out[1].data;
        }
        fb_status st = rs_sort(ctx, &spec, n, &ro, run, where);
        if (st != FB_OK) {
            reset_outs(out, n_cols);
            return st;
        }
        for (size_t i = 0; i < n_cols; i++) {
            if (out[i].validity)
                memset(out[i].validity, 0xFF, (size_t)(n + 7) / 8);
            out[i].length = n;
            out[i].null_count = 0;
        }
        return FB_OK;
    }
    uint32_t *perm = NULL;
    int64_t tasks = (n + MOVE_MORSEL - 1) / MOVE_MORSEL;
    size_t bytes = (size_t)n * sizeof *perm, nbytes = (size_t)tasks * n_cols * 8 + 8;
    int64_t *nulls = NULL;
    fb_status st = fb_alloc(ctx, bytes + 4, 64, (void **)&perm, where);
    if (st == FB_OK)
        st = fb_alloc(ctx, nbytes, 64, (void **)&nulls, where);
    if (st == FB_OK)
        st = sort_all(ctx, keys, n_keys, n, perm, run, where);
    if (st == FB_OK) {
        move_job mj = {ctx, keys, n_keys, payload, out, n_cols, perm, n, nulls};
        st = run->run(run->self, ctx, tasks, move_task, &mj, NULL);
    }
    if (st == FB_OK) {
        for (size_t i = 0; i < n_cols; i++) {
            int64_t nn = 0;
            for (int64_t t = 0; t < tasks; t++)
                nn += nulls[(size_t)t * n_cols + i];
            out[i].length = n;
            out[i].null_count = nn;
        }
    } else {
        reset_outs(out, n_cols);
    }
    fb_free(ctx, nulls, nulls ? nbytes : 0);
    fb_free(ctx, perm, perm ? bytes + 4 : 0);
    return st;
}

fb_status fb_sort_table(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, const fb_column *payload,
                        size_t n_payload, fb_column_out *out)
{
    return fb_sort_table_with(ctx, keys, n_keys, payload, n_payload, out, &serial_runner, __func__);
}
