/* sort.c - public entry points of fb_sort.h (argument checks, scratch memory) and the single-threaded
 * sort itself: normalized-key records, LSD radix sort with constant-digit skipping, insertion sort
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

#include <string.h>

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
        memcpy(t, rec + i * R, (size_t)R * 8);
        int64_t j = i;
        for (; j > 0 && rec_less(t, rec + (j - 1) * R, R); j--)
            memcpy(rec + j * R, rec + (j - 1) * R, (size_t)R * 8);
        memcpy(rec + j * R, t, (size_t)R * 8);
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

/* ---- LSD radix sort ------------------------------------------------------------------------------ */

/* Sorts n records of a (b is scratch of the same size); returns the buffer holding the result.
 * counts: L->n_digits * 256 entries of scratch. */
static uint64_t *radix_sort(uint64_t *a, uint64_t *b, int64_t n, const layout *L, uint32_t *counts)
{
    int R = L->words, D = L->n_digits;
    if (n <= SMALL_SORT) {
        insertion_sort(a, n, R);
        return a;
    }
    memset(counts, 0, (size_t)D * 256 * sizeof *counts);
    /* one histogram pass for every digit: counts do not change with the order, so they serve every
     * scatter pass, and a digit whose one bucket holds all n rows is skipped */
    if (R == 1) {
        int s0 = L->digit_shift[0];
        for (int64_t i = 0; i < n; i++) {
            uint64_t x = a[i];
            for (int d = 0; d < D; d++)
                counts[d * 256 + ((x >> (s0 + 8 * d)) & 0xFF)]++;
        }
    } else {
        for (int64_t i = 0; i < n; i++)
            for (int d = 0; d < D; d++)
                counts[d * 256 + ((a[i * R + L->digit_word[d]] >> L->digit_shift[d]) & 0xFF)]++;
    }
    uint64_t *src = a, *dst = b;
    for (int d = 0; d < D; d++) {
        uint32_t *c = counts + d * 256;
        int constant = 0;
        for (int x = 0; x < 256 && !constant; x++)
            constant = c[x] == (uint64_t)n;
        if (constant)
            continue;
        int64_t off[256], sum = 0;
        for (int x = 0; x < 256; x++) {
            off[x] = sum;
            sum += c[x];
        }
        int w = L->digit_word[d], s = L->digit_shift[d];
        /* plain scatter: software write-combining buffers measured no faster on the development
         * machine (a shared EPYC VM, 32 MiB L3) at 1M or 16M records, and 11-bit digits took twice
         * as long per pass as 8-bit ones there (more than the 8 -> 6 passes of a 64-bit key save) */
        if (R == 1) {
            for (int64_t i = 0; i < n; i++)
                dst[off[(src[i] >> s) & 0xFF]++] = src[i];
        } else if (R == 2) {
            for (int64_t i = 0; i < n; i++) {
                int64_t o = off[(src[2 * i + w] >> s) & 0xFF]++;
                dst[2 * o] = src[2 * i];
                dst[2 * o + 1] = src[2 * i + 1];
            }
        } else {
            for (int64_t i = 0; i < n; i++) {
                int64_t o = off[(src[i * R + w] >> s) & 0xFF]++;
                memcpy(dst + o * R, src + i * R, (size_t)R * 8);
            }
        }
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    return src;
}

/* ---- argument checks ----------------------------------------------------------------------------- */

static fb_status check_keys(const fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t *rows,
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

/* ---- the sorts ------------------------------------------------------------------------------------ */

/* Full stable sort into row_ids (room for n). */
static fb_status sort_all(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t n, uint32_t *row_ids,
                          const char *where)
{
    if (n == 0)
        return FB_OK;
    layout L;
    layout_make(keys, n_keys, n, &L);
    size_t bytes = rec_bytes(n, L.words);
    FB_RETURN_ERROR_IF(bytes == 0, ctx, FB_ERR_OUT_OF_MEMORY, "%lld records do not fit in memory", (long long)n);
    size_t cbytes = (size_t)L.n_digits * 256 * sizeof(uint32_t);
    uint64_t *a = NULL, *b = NULL;
    uint32_t *counts = NULL;
    fb_status st = fb_alloc(ctx, bytes, 64, (void **)&a, where);
    if (st == FB_OK && n > SMALL_SORT)
        st = fb_alloc(ctx, bytes, 64, (void **)&b, where);
    if (st == FB_OK && n > SMALL_SORT)
        st = fb_alloc(ctx, cbytes, 64, (void **)&counts, where);
    if (st == FB_OK) {
        fill_records(sort_kernels(ctx), keys, n_keys, &L, 0, n, a);
        const uint64_t *r = radix_sort(a, b, n, &L, counts);
        for (int64_t j = 0; j < n; j++)
            row_ids[j] = (uint32_t)(r[j * L.words + L.rid_word] & L.rid_mask);
    }
    fb_free(ctx, counts, counts ? cbytes : 0);
    fb_free(ctx, b, b ? bytes : 0);
    fb_free(ctx, a, a ? bytes : 0);
    return st;
}

fb_status fb_sort_permutation(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, uint32_t *row_ids,
                              int64_t capacity)
{
    int64_t n = 0;
    FB_FORWARD_IF_ERROR(check_keys(ctx, keys, n_keys, &n, __func__));
    FB_RETURN_ERROR_IF(n > 0 && !row_ids, ctx, FB_ERR_INVALID_ARG, "row_ids must not be NULL");
    FB_RETURN_ERROR_IF(capacity < n, ctx, FB_ERR_CAPACITY, "row_ids holds %lld entries, the keys have %lld rows",
                       (long long)capacity, (long long)n);
    return sort_all(ctx, keys, n_keys, n, row_ids, __func__);
}

fb_status fb_sort_top_n(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t n, uint32_t *row_ids,
                        int64_t capacity, int64_t *n_out)
{
    int64_t rows = 0;
    FB_FORWARD_IF_ERROR(check_keys(ctx, keys, n_keys, &rows, __func__));
    FB_RETURN_ERROR_IF(n < 0, ctx, FB_ERR_INVALID_ARG, "n is negative (%lld)", (long long)n);
    FB_RETURN_ERROR_IF(!n_out, ctx, FB_ERR_INVALID_ARG, "n_out must not be NULL");
    int64_t m = n < rows ? n : rows;
    FB_RETURN_ERROR_IF(m > 0 && !row_ids, ctx, FB_ERR_INVALID_ARG, "row_ids must not be NULL");
    FB_RETURN_ERROR_IF(capacity < m, ctx, FB_ERR_CAPACITY, "row_ids holds %lld entries, the result has %lld",
                       (long long)capacity, (long long)m);
    if (m == 0) {
        *n_out = 0;
        return FB_OK;
    }
    if (m > rows / 8) {
        /* a large share of the rows: sorting them all is cheaper than a heap */
        uint32_t *all = NULL;
        size_t bytes = (size_t)rows * sizeof *all;
        FB_FORWARD_IF_ERROR(fb_alloc(ctx, bytes, 64, (void **)&all, __func__));
        fb_status st = sort_all(ctx, keys, n_keys, rows, all, __func__);
        if (st == FB_OK) {
            memcpy(row_ids, all, (size_t)m * sizeof *all);
            *n_out = m;
        }
        fb_free(ctx, all, bytes);
        return st;
    }
    /* A max-heap of the m smallest records so far; rows arrive in chunks so that memory stays O(m). */
    layout L;
    layout_make(keys, n_keys, rows, &L);
    int R = L.words;
    size_t hbytes = rec_bytes(m, R), cbytes = rec_bytes(CHUNK, R);
    uint64_t *h = NULL, *chunk = NULL;
    fb_status st = fb_alloc(ctx, hbytes, 64, (void **)&h, __func__);
    if (st == FB_OK)
        st = fb_alloc(ctx, cbytes, 64, (void **)&chunk, __func__);
    if (st == FB_OK) {
        const fb_sort_kernels *sk = sort_kernels(ctx);
        int64_t size = 0;
        for (int64_t c0 = 0; c0 < rows; c0 += CHUNK) {
            int64_t cm = rows - c0 < CHUNK ? rows - c0 : CHUNK;
            fill_records(sk, keys, n_keys, &L, c0, cm, chunk);
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
        *n_out = m;
    }
    fb_free(ctx, chunk, chunk ? cbytes : 0);
    fb_free(ctx, h, h ? hbytes : 0);
    return st;
}

static void reset_outs(fb_column_out *out, size_t n_out)
{
    for (size_t i = 0; i < n_out; i++) {
        out[i].length = 0;
        out[i].null_count = 0;
    }
}

fb_status fb_sort_table(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, const fb_column *payload,
                        size_t n_payload, fb_column_out *out)
{
    int64_t n = 0;
    FB_FORWARD_IF_ERROR(check_keys(ctx, keys, n_keys, &n, __func__));
    FB_RETURN_ERROR_IF(!out, ctx, FB_ERR_INVALID_ARG, "out must not be NULL");
    size_t n_cols = n_keys + n_payload;
    reset_outs(out, n_cols);
    FB_RETURN_ERROR_IF(n_payload > 0 && !payload, ctx, FB_ERR_INVALID_ARG, "payload must not be NULL");
    for (size_t j = 0; j < n_payload; j++) {
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, &payload[j], __func__, "a payload column"));
        FB_RETURN_ERROR_IF(payload[j].length != n, ctx, FB_ERR_LENGTH_MISMATCH,
                           "payload %zu has %lld rows, the keys have %lld", j, (long long)payload[j].length,
                           (long long)n);
    }
    for (size_t i = 0; i < n_cols; i++) {
        const fb_column *c = i < n_keys ? &keys[i].column : &payload[i - n_keys];
        fb_status st = fb_check_column_out(ctx, &out[i], c->type, n, c->validity != NULL, __func__);
        if (st != FB_OK) {
            reset_outs(out, n_cols);
            return st;
        }
    }
    uint32_t *perm = NULL;
    size_t bytes = (size_t)n * sizeof *perm;
    FB_FORWARD_IF_ERROR(fb_alloc(ctx, bytes, 64, (void **)&perm, __func__));
    fb_status st = sort_all(ctx, keys, n_keys, n, perm, __func__);
    for (size_t i = 0; i < n_cols && st == FB_OK; i++)
        st = fb_compact(ctx, i < n_keys ? &keys[i].column : &payload[i - n_keys], perm, n, &out[i]);
    if (st != FB_OK)
        reset_outs(out, n_cols);
    fb_free(ctx, perm, bytes);
    return st;
}
