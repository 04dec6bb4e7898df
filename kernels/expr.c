/* expr.c - public entry points of fb_expr.h: check arguments, compute output validity (the AND of the
 * inputs' bitmaps and of the input selection), call the context's expression kernel variant, and
 * turn a kernel's failing row into a named error. Row-aligned outputs with an input selection are
 * computed densely by the kernels (which never fail on a row the validity leaves out), so every
 * variant's fast loop serves both forms. 8- and 16-bit comparisons run in the portable loops here. */
#include "fb_expr_internal.h"
#include "fb_internal.h"
#include "fb_kernels_common.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const fb_expr_kernels *fb_expr_kernels_get(fb_isa isa)
{
    switch (isa) {
    case FB_ISA_BASE: return &fb_expr_kernels_base;
#if defined(FB_HAVE_X86_VARIANTS)
    case FB_ISA_AVX2: return &fb_expr_kernels_avx2;
    case FB_ISA_AVX512: return &fb_expr_kernels_avx512;
#endif
    default: return &fb_expr_kernels_scalar;
    }
}

/* ---- bitmaps ------------------------------------------------------------------------------------ */

static int64_t nbytes(int64_t n) { return (n + 7) / 8; }

/* Byte j (rows 8j..8j+7) of a validity bitmap at any bit offset; rows ≥ n read as 0. */
static uint8_t bits_byte(fb_bits b, int64_t j, int64_t n)
{
    int64_t rows = n - 8 * j < 8 ? n - 8 * j : 8;
    uint8_t keep = (uint8_t)((1u << rows) - 1);
    if (!b.bits)
        return keep;
    int64_t k = b.off + 8 * j;
    const uint8_t *p = b.bits + (k >> 3);
    int s = (int)(k & 7);
    unsigned w = p[0];
    if (s + rows > 8)
        w |= (unsigned)p[1] << 8;
    return (uint8_t)(w >> s) & keep;
}

/* Rows 64w..64w+63 of a bitmap at any bit offset, for a word that lies wholly inside n rows. */
static uint64_t bits_word(fb_bits b, int64_t w)
{
    if (!b.bits)
        return ~0ull;
    int64_t k = b.off + 64 * w;
    const uint8_t *p = b.bits + (k >> 3);
    int s = (int)(k & 7);
    uint64_t x;
    memcpy(&x, p, 8);
    if (s)
        x = (x >> s) | ((uint64_t)p[8] << (64 - s)); /* byte 8 holds row 64w+63's bit when s > 0 */
    return x;
}

/* out = the rows of sel_in (or all n rows) AND a AND b; returns the number of 0 bits among the n,
 * or -1 for a sel_in index ≥ n (out is then all zeros). Whole bytes are written; 64 rows a step. */
static int64_t validity_and(fb_bits a, fb_bits b, const uint32_t *sel_in, int64_t n_in, int64_t n, uint8_t *out)
{
    int64_t nb = nbytes(n);
    if (n == 0) /* out may be NULL */
        return sel_in && n_in > 0 ? -1 : 0;
    if (sel_in) {
        memset(out, 0, (size_t)nb);
        for (int64_t j = 0; j < n_in; j++) {
            uint32_t i = sel_in[j];
            if (i >= n) {
                memset(out, 0, (size_t)nb);
                return -1;
            }
            out[i >> 3] |= (uint8_t)(1u << (i & 7));
        }
    }
    int64_t ones = 0, w = 0;
    for (; 64 * (w + 1) <= n; w++) {
        uint64_t x = ~0ull;
        if (sel_in)
            memcpy(&x, out + 8 * w, 8);
        x &= bits_word(a, w) & bits_word(b, w);
        memcpy(out + 8 * w, &x, 8);
        ones += __builtin_popcountll(x);
    }
    for (int64_t j = 8 * w; j < nb; j++) {
        uint8_t x = (sel_in ? out[j] : 0xFF) & bits_byte(a, j, n) & bits_byte(b, j, n);
        out[j] = x;
        ones += __builtin_popcount(x);
    }
    return n - ones;
}

static const fb_bits no_nulls = {NULL, 0};

static fb_bits col_bits(const fb_column *c) { return (fb_bits){c->validity, c->offset}; }

/* ---- argument checks ---------------------------------------------------------------------------- */

fb_status fb_expr_check_ctx(const fb_ctx *ctx, const char *where)
{
    if (!ctx)
        return fb_set_error(NULL, FB_ERR_INVALID_ARG, where, "ctx must not be NULL");
    return FB_OK;
}

fb_status fb_expr_check_sel(const fb_ctx *ctx, const uint32_t *sel_in, int64_t n_in, const char *where)
{
    if (sel_in && n_in < 0)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "n_in is negative (%lld)", (long long)n_in);
    return FB_OK;
}

fb_status fb_expr_check_pair(const fb_ctx *ctx, const fb_column *a, const fb_column *b, const char *where)
{
    FB_FORWARD_IF_ERROR(fb_check_column(ctx, a, where, "a"));
    FB_FORWARD_IF_ERROR(fb_check_column(ctx, b, where, "b"));
    if (a->type != b->type)
        return fb_set_error(ctx, FB_ERR_UNSUPPORTED_TYPE, where, "a has type %s, b has type %s (cast one first)",
                            fb_type_name(a->type), fb_type_name(b->type));
    if (a->length != b->length)
        return fb_set_error(ctx, FB_ERR_LENGTH_MISMATCH, where, "a has %lld rows, b has %lld", (long long)a->length,
                            (long long)b->length);
    return FB_OK;
}

fb_status fb_expr_check_bool_out(const fb_ctx *ctx, const fb_bool *out, int64_t rows, const char *where)
{
    if (!out)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "out must not be NULL");
    if (out->length != rows)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "out has length %lld, the input has %lld rows",
                            (long long)out->length, (long long)rows);
    if (rows > 0 && (!out->bits || !out->validity))
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "out needs both its bits and validity buffers");
    return FB_OK;
}

fb_status fb_expr_check_bool_in(const fb_ctx *ctx, const fb_bool *a, const char *what, const char *where)
{
    if (!a)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s must not be NULL", what);
    if (a->length < 0 || a->length > FB_MORSEL_MAX_ROWS)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s has length %lld", what, (long long)a->length);
    if (a->length > 0 && !a->bits)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s has no bits buffer", what);
    return FB_OK;
}

/* ---- comparisons -------------------------------------------------------------------------------- */

/* Ordered key of row r (offset applied) of an 8- or 16-bit column. */
static int64_t small_key(const fb_column *c, int64_t i)
{
    int64_t r = c->offset + i;
    switch (c->type) {
    case FB_TYPE_INT8: return ((const int8_t *)c->data)[r];
    case FB_TYPE_INT16: return ((const int16_t *)c->data)[r];
    case FB_TYPE_UINT8: return ((const uint8_t *)c->data)[r];
    default: return ((const uint16_t *)c->data)[r];
    }
}

fb_status fb_expr_select_cols(fb_ctx *ctx, const fb_column *a, fb_cmp op, const fb_column *b, const uint32_t *sel_in,
                              int64_t n_in, uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_select_cols(ctx, a, op, b, sel_in, n_in, sel_out, capacity, n_out, __func__));
    const fb_expr_kernels *k = fb_expr_kernels_get(fb_ctx_isa(ctx));
    fb_key_kind kind = fb_type_key_kind(a->type);
    int64_t cnt;
    switch (fb_type_width(a->type)) {
    case 4:
        cnt = k->select_cols_32(kind, op, (const uint32_t *)a->data + a->offset, col_bits(a),
                                (const uint32_t *)b->data + b->offset, col_bits(b), a->length, sel_in, n_in, sel_out);
        break;
    case 8:
        cnt = k->select_cols_64(kind, op, (const uint64_t *)a->data + a->offset, col_bits(a),
                                (const uint64_t *)b->data + b->offset, col_bits(b), a->length, sel_in, n_in, sel_out);
        break;
    default: {
        int64_t n = sel_in ? n_in : a->length;
        cnt = 0;
        for (int64_t j = 0; j < n && cnt >= 0; j++) {
            int64_t i = sel_in ? (int64_t)sel_in[j] : j;
            if (i >= a->length)
                cnt = -1;
            else if (fb_column_is_valid(a, i) && fb_column_is_valid(b, i) &&
                     fb_expr_cmp_keys(op, small_key(a, i), small_key(b, i)))
                sel_out[cnt++] = (uint32_t)i;
        }
    }
    }
    FB_RETURN_ERROR_IF(cnt < 0, ctx, FB_ERR_OUT_OF_RANGE, "sel_in holds an index ≥ the columns' %lld rows",
                       (long long)a->length);
    *n_out = cnt;
    return FB_OK;
}

/* Writes out->validity (AND of the columns' validity and sel_in) and then out->bits = the kernel's
 * bits AND validity. b is NULL for a predicate over one column. */
static fb_status finish_bool(fb_ctx *ctx, const fb_column *a, const fb_column *b, const uint32_t *sel_in, int64_t n_in,
                             fb_bool *out, const char *where)
{
    int64_t n = a->length;
    int64_t nulls = validity_and(col_bits(a), b ? col_bits(b) : no_nulls, sel_in, n_in, n, out->validity);
    if (nulls < 0) {
        if (n > 0)
            memset(out->bits, 0, (size_t)nbytes(n));
        return fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where, "sel_in holds an index ≥ the column's %lld rows",
                            (long long)n);
    }
    if (nulls > 0) /* canonical form: no value bit under a NULL */
        for (int64_t j = 0; j < nbytes(n); j++)
            out->bits[j] &= out->validity[j];
    return FB_OK;
}

static fb_status bool_from_pred(fb_ctx *ctx, const fb_column *col, const fb_pred *p, const uint32_t *sel_in,
                                int64_t n_in, fb_bool *out, const char *where)
{
    const fb_expr_kernels *k = fb_expr_kernels_get(fb_ctx_isa(ctx));
    int64_t n = col->length;
    if (n == 0) /* buffers may be NULL */
        return finish_bool(ctx, col, NULL, sel_in, n_in, out, where);
    switch (fb_type_width(col->type)) {
    case 4: k->pred_bits_32(p, (const uint32_t *)col->data + col->offset, n, out->bits); break;
    case 8: k->pred_bits_64(p, (const uint64_t *)col->data + col->offset, n, out->bits); break;
    default:
        memset(out->bits, 0, (size_t)nbytes(n));
        for (int64_t i = 0; i < n; i++)
            if (fb_pred_test(p, small_key(col, i)))
                out->bits[i >> 3] |= (uint8_t)(1u << (i & 7));
    }
    return finish_bool(ctx, col, NULL, sel_in, n_in, out, where);
}

fb_status fb_expr_check_bool_args(fb_ctx *ctx, const fb_column *col, const uint32_t *sel_in, int64_t n_in,
                                 const fb_bool *out, const char *where)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_ctx(ctx, where));
    FB_FORWARD_IF_ERROR(fb_check_column(ctx, col, where, "col"));
    if (col->length > FB_MORSEL_MAX_ROWS)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "col has %lld rows; at most %lld per call",
                            (long long)col->length, (long long)FB_MORSEL_MAX_ROWS);
    FB_FORWARD_IF_ERROR(fb_expr_check_sel(ctx, sel_in, n_in, where));
    return fb_expr_check_bool_out(ctx, out, col->length, where);
}

fb_status fb_expr_cmp(fb_ctx *ctx, const fb_column *col, fb_cmp op, const void *value, const uint32_t *sel_in,
                      int64_t n_in, fb_bool *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_bool_args(ctx, col, sel_in, n_in, out, __func__));
    fb_pred p;
    FB_FORWARD_IF_ERROR(fb_pred_make_cmp(ctx, col->type, op, value, &p, __func__));
    return bool_from_pred(ctx, col, &p, sel_in, n_in, out, __func__);
}

fb_status fb_expr_between(fb_ctx *ctx, const fb_column *col, const void *lo, const void *hi, const uint32_t *sel_in,
                          int64_t n_in, fb_bool *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_bool_args(ctx, col, sel_in, n_in, out, __func__));
    fb_pred p;
    FB_FORWARD_IF_ERROR(fb_pred_make_range(ctx, col->type, lo, hi, &p, __func__));
    return bool_from_pred(ctx, col, &p, sel_in, n_in, out, __func__);
}

fb_status fb_expr_in(fb_ctx *ctx, const fb_column *col, const void *values, int64_t n_values, const uint32_t *sel_in,
                     int64_t n_in, fb_bool *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_bool_args(ctx, col, sel_in, n_in, out, __func__));
    int64_t keys[FB_SELECT_IN_MAX];
    fb_pred p;
    FB_FORWARD_IF_ERROR(fb_pred_make_in(ctx, col->type, values, n_values, keys, &p, __func__));
    return bool_from_pred(ctx, col, &p, sel_in, n_in, out, __func__);
}

fb_status fb_expr_cmp_cols(fb_ctx *ctx, const fb_column *a, fb_cmp op, const fb_column *b, const uint32_t *sel_in,
                           int64_t n_in, fb_bool *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_bool_args(ctx, a, sel_in, n_in, out, __func__));
    FB_FORWARD_IF_ERROR(fb_expr_check_pair(ctx, a, b, __func__));
    FB_RETURN_ERROR_IF((unsigned)op > FB_CMP_GE, ctx, FB_ERR_INVALID_ARG, "unknown comparison operator %d", (int)op);
    const fb_expr_kernels *k = fb_expr_kernels_get(fb_ctx_isa(ctx));
    fb_key_kind kind = fb_type_key_kind(a->type);
    int64_t n = a->length;
    if (n == 0) /* buffers may be NULL */
        return finish_bool(ctx, a, b, sel_in, n_in, out, __func__);
    switch (fb_type_width(a->type)) {
    case 4:
        k->cmp_bits_32(kind, op, (const uint32_t *)a->data + a->offset, (const uint32_t *)b->data + b->offset, n,
                       out->bits);
        break;
    case 8:
        k->cmp_bits_64(kind, op, (const uint64_t *)a->data + a->offset, (const uint64_t *)b->data + b->offset, n,
                       out->bits);
        break;
    default:
        memset(out->bits, 0, (size_t)nbytes(n));
        for (int64_t i = 0; i < n; i++)
            if (fb_expr_cmp_keys(op, small_key(a, i), small_key(b, i)))
                out->bits[i >> 3] |= (uint8_t)(1u << (i & 7));
    }
    return finish_bool(ctx, a, b, sel_in, n_in, out, __func__);
}

/* ---- logic -------------------------------------------------------------------------------------- */

fb_status fb_expr_check_logic(fb_ctx *ctx, const fb_bool *a, const fb_bool *b, const fb_bool *out, const char *where)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_ctx(ctx, where));
    FB_FORWARD_IF_ERROR(fb_expr_check_bool_in(ctx, a, "a", where));
    if (b) {
        FB_FORWARD_IF_ERROR(fb_expr_check_bool_in(ctx, b, "b", where));
        if (a->length != b->length)
            return fb_set_error(ctx, FB_ERR_LENGTH_MISMATCH, where, "a has %lld rows, b has %lld",
                                (long long)a->length, (long long)b->length);
    }
    return fb_expr_check_bool_out(ctx, out, a->length, where);
}

/* Kleene logic on 64-bit words of t (TRUE rows) and k (known, non-NULL rows); op 0 AND, 1 OR, 2 NOT. */
static inline __attribute__((always_inline)) void kleene_word(int op, uint64_t ta, uint64_t ka, uint64_t tb,
                                                              uint64_t kb, uint64_t *t, uint64_t *k)
{
    if (op == 0) {
        *t = ta & tb;
        *k = (ka & kb) | (ka & ~ta) | (kb & ~tb); /* both known, or either known FALSE */
    } else if (op == 1) {
        *t = ta | tb;
        *k = (ka & kb) | ta | tb;
    } else {
        *t = ka & ~ta;
        *k = ka;
    }
}

/* Loads m ≤ 8 bytes as a little-endian word (constant-size copy for whole words). */
static inline __attribute__((always_inline)) uint64_t load_word(const uint8_t *p, int m)
{
    uint64_t x = 0;
    if (m == 8)
        memcpy(&x, p, 8);
    else
        memcpy(&x, p, (size_t)m);
    return x;
}

static inline __attribute__((always_inline)) void store_word(uint8_t *p, uint64_t x, int m)
{
    if (m == 8)
        memcpy(p, &x, 8);
    else
        memcpy(p, &x, (size_t)m);
}

static inline __attribute__((always_inline)) void logic_words(int op, const fb_bool *a, const fb_bool *b,
                                                               fb_bool *out, int64_t j, int m)
{
    uint64_t ka = a->validity ? load_word(a->validity + j, m) : ~0ull, ta = load_word(a->bits + j, m) & ka;
    uint64_t kb = ~0ull, tb = 0, t, k;
    if (b) {
        kb = b->validity ? load_word(b->validity + j, m) : ~0ull;
        tb = load_word(b->bits + j, m) & kb;
    }
    kleene_word(op, ta, ka, tb, kb, &t, &k);
    store_word(out->bits + j, t, m);
    store_word(out->validity + j, k, m);
}

/* Whole bytes are written; the padding bits of the last byte are cleared. op is a constant at each
 * call site, so each operator gets its own loop (64 rows a step). */
static inline __attribute__((always_inline)) void logic(int op, const fb_bool *a, const fb_bool *b, fb_bool *out)
{
    int64_t nb = nbytes(a->length), j = 0;
    for (; j + 8 <= nb; j += 8)
        logic_words(op, a, b, out, j, 8);
    if (j < nb)
        logic_words(op, a, b, out, j, (int)(nb - j));
    if (a->length & 7) {
        uint8_t keep = (uint8_t)((1u << (a->length & 7)) - 1);
        out->bits[nb - 1] &= keep;
        out->validity[nb - 1] &= keep;
    }
}

fb_status fb_expr_and(fb_ctx *ctx, const fb_bool *a, const fb_bool *b, fb_bool *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_logic(ctx, a, b, out, __func__));
    logic(0, a, b, out);
    return FB_OK;
}

fb_status fb_expr_or(fb_ctx *ctx, const fb_bool *a, const fb_bool *b, fb_bool *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_logic(ctx, a, b, out, __func__));
    logic(1, a, b, out);
    return FB_OK;
}

fb_status fb_expr_not(fb_ctx *ctx, const fb_bool *a, fb_bool *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_logic(ctx, a, NULL, out, __func__));
    logic(2, a, NULL, out);
    return FB_OK;
}

fb_status fb_expr_bool_to_sel(fb_ctx *ctx, const fb_bool *a, const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out,
                              int64_t capacity, int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_bool_to_sel(ctx, a, sel_in, n_in, sel_out, capacity, n_out, __func__));
    int64_t cnt = 0, n = a->length;
    if (sel_in) {
        for (int64_t j = 0; j < n_in; j++) {
            uint32_t i = sel_in[j];
            FB_RETURN_ERROR_IF(i >= n, ctx, FB_ERR_OUT_OF_RANGE, "sel_in holds %u, a has %lld rows", i, (long long)n);
            int t = (a->bits[i >> 3] >> (i & 7)) & 1 && (!a->validity || (a->validity[i >> 3] >> (i & 7)) & 1);
            sel_out[cnt] = i;
            cnt += t;
        }
    } else {
        /* 64 rows at a time; the set bits come out with count-trailing-zeros */
        int64_t nb = nbytes(n);
        for (int64_t j0 = 0; j0 < nb; j0 += 8) {
            uint64_t t = 0, k = ~0ull;
            int m = nb - j0 < 8 ? (int)(nb - j0) : 8;
            memcpy(&t, a->bits + j0, (size_t)m);
            if (a->validity) {
                k = 0;
                memcpy(&k, a->validity + j0, (size_t)m);
            }
            t &= k;
            int64_t rows = n - 8 * j0;
            if (rows < 64)
                t &= (1ull << rows) - 1;
            while (t) {
                sel_out[cnt++] = (uint32_t)(8 * j0 + __builtin_ctzll(t));
                t &= t - 1;
            }
        }
    }
    *n_out = cnt;
    return FB_OK;
}

fb_status fb_expr_check_sorted(const fb_ctx *ctx, const uint32_t *s, int64_t n, const char *what, const char *where)
{
    if (n < 0)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s has a negative count (%lld)", what, (long long)n);
    if (n > 0 && !s)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s must not be NULL", what);
    for (int64_t j = 1; j < n; j++)
        if (s[j] <= s[j - 1])
            return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s is not strictly ascending at entry %lld", what,
                                (long long)j);
    return FB_OK;
}

fb_status fb_expr_check_merge(fb_ctx *ctx, const uint32_t *a, int64_t n_a, const uint32_t *b, int64_t n_b,
                             const uint32_t *sel_out, int64_t capacity, int64_t need, const int64_t *n_out,
                             const char *where)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_ctx(ctx, where));
    FB_FORWARD_IF_ERROR(fb_expr_check_sorted(ctx, a, n_a, "a", where));
    FB_FORWARD_IF_ERROR(fb_expr_check_sorted(ctx, b, n_b, "b", where));
    if (!n_out)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "n_out must not be NULL");
    if (need > 0 && !sel_out)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "sel_out must not be NULL");
    if (capacity < need)
        return fb_set_error(ctx, FB_ERR_CAPACITY, where, "sel_out holds %lld entries, the result may need %lld",
                            (long long)capacity, (long long)need);
    return FB_OK;
}

fb_status fb_expr_sel_and(fb_ctx *ctx, const uint32_t *a, int64_t n_a, const uint32_t *b, int64_t n_b,
                          uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(
        fb_expr_check_merge(ctx, a, n_a, b, n_b, sel_out, capacity, n_a < n_b ? n_a : n_b, n_out, __func__));
    int64_t i = 0, j = 0, k = 0;
    while (i < n_a && j < n_b) {
        uint32_t x = a[i], y = b[j];
        sel_out[k] = x;
        k += x == y;
        i += x <= y;
        j += y <= x;
    }
    *n_out = k;
    return FB_OK;
}

fb_status fb_expr_sel_or(fb_ctx *ctx, const uint32_t *a, int64_t n_a, const uint32_t *b, int64_t n_b,
                         uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_merge(ctx, a, n_a, b, n_b, sel_out, capacity, n_a + n_b, n_out, __func__));
    int64_t i = 0, j = 0, k = 0;
    while (i < n_a && j < n_b) {
        uint32_t x = a[i], y = b[j];
        sel_out[k++] = x < y ? x : y;
        i += x <= y;
        j += y <= x;
    }
    while (i < n_a)
        sel_out[k++] = a[i++];
    while (j < n_b)
        sel_out[k++] = b[j++];
    *n_out = k;
    return FB_OK;
}

fb_status fb_expr_sel_not(fb_ctx *ctx, const uint32_t *a, int64_t n_a, int64_t length, const uint32_t *sel_in,
                          int64_t n_in, uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_ctx(ctx, __func__));
    FB_FORWARD_IF_ERROR(fb_expr_check_sorted(ctx, a, n_a, "a", __func__));
    FB_RETURN_ERROR_IF(length < 0 || length > FB_MORSEL_MAX_ROWS, ctx, FB_ERR_INVALID_ARG, "length is %lld",
                       (long long)length);
    FB_FORWARD_IF_ERROR(fb_expr_check_sel(ctx, sel_in, n_in, __func__));
    FB_RETURN_ERROR_IF(!n_out, ctx, FB_ERR_INVALID_ARG, "n_out must not be NULL");
    int64_t dom = sel_in ? n_in : length;
    FB_RETURN_ERROR_IF(dom > 0 && !sel_out, ctx, FB_ERR_INVALID_ARG, "sel_out must not be NULL");
    FB_RETURN_ERROR_IF(capacity < dom, ctx, FB_ERR_CAPACITY, "sel_out holds %lld entries, the domain has %lld rows",
                       (long long)capacity, (long long)dom);
    FB_RETURN_ERROR_IF(n_a > 0 && a[n_a - 1] >= length, ctx, FB_ERR_OUT_OF_RANGE, "a holds %u, the morsel has %lld rows",
                       a[n_a - 1], (long long)length);
    int64_t i = 0, k = 0;
    for (int64_t j = 0; j < dom; j++) {
        uint32_t r = sel_in ? sel_in[j] : (uint32_t)j;
        FB_RETURN_ERROR_IF(r >= length, ctx, FB_ERR_OUT_OF_RANGE, "sel_in holds %u, the morsel has %lld rows", r,
                           (long long)length);
        while (i < n_a && a[i] < r)
            i++;
        sel_out[k] = r;
        k += !(i < n_a && a[i] == r);
    }
    *n_out = k;
    return FB_OK;
}

/* ---- arithmetic and casts ----------------------------------------------------------------------- */

const char *fb_expr_arith_name(fb_arith op) { return op == FB_ARITH_ADD ? "+" : op == FB_ARITH_SUB ? "-" : "*"; }

/* The argument checks of the arithmetic functions (and their OpenCL twins); clears out's counts. */
fb_status fb_expr_check_arith(fb_ctx *ctx, fb_arith op, const fb_column *a, const fb_column *b, const void *value,
                              const uint32_t *sel_in, int64_t n_in, fb_column_out *out, const char *where)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_ctx(ctx, where));
    if (out) {
        out->length = 0;
        out->null_count = 0;
    }
    if (b)
        FB_FORWARD_IF_ERROR(fb_expr_check_pair(ctx, a, b, where));
    else
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, a, where, "col"));
    if (!b && !value)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "value must not be NULL");
    if ((unsigned)op > FB_ARITH_MUL)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "unknown arithmetic operator %d", (int)op);
    fb_type t = a->type;
    if (t != FB_TYPE_INT32 && t != FB_TYPE_INT64 && t != FB_TYPE_FLOAT32 && t != FB_TYPE_FLOAT64)
        return fb_set_error(ctx, FB_ERR_UNSUPPORTED_TYPE, where,
                            "arithmetic takes int32, int64, float32 and float64, not %s (cast first)", fb_type_name(t));
    int64_t n = a->length;
    if (n > FB_MORSEL_MAX_ROWS)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%lld rows; at most %lld per call", (long long)n,
                            (long long)FB_MORSEL_MAX_ROWS);
    FB_FORWARD_IF_ERROR(fb_expr_check_sel(ctx, sel_in, n_in, where));
    int nullable = a->validity || (b && b->validity) || sel_in;
    FB_FORWARD_IF_ERROR(fb_check_column_out(ctx, out, t, n, nullable, where));
    if (n == 0 && sel_in && n_in > 0)
        return fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where, "sel_in holds indices, the column has no rows");
    return FB_OK;
}

/* a (or the constant at `value`, which then stands at the left when value_left) op b */
static fb_status arith(fb_ctx *ctx, fb_arith op, const fb_column *a, const fb_column *b, const void *value,
                       int value_left, const uint32_t *sel_in, int64_t n_in, fb_column_out *out, const char *where)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_arith(ctx, op, a, b, value, sel_in, n_in, out, where));
    const fb_type t = a->type;
    const int64_t n = a->length;
    fb_bits valid = no_nulls;
    int64_t nulls = 0;
    if (out->validity && n > 0) {
        nulls = validity_and(col_bits(a), b ? col_bits(b) : no_nulls, sel_in, n_in, n, out->validity);
        if (nulls < 0)
            return fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where, "sel_in holds an index ≥ the column's %lld rows",
                                (long long)n);
        valid.bits = out->validity;
    }
    const fb_expr_kernels *k = fb_expr_kernels_get(fb_ctx_isa(ctx));
    size_t w = fb_type_width(t);
    const char *pa = (const char *)a->data + (size_t)a->offset * w;
    const char *pb = b ? (const char *)b->data + (size_t)b->offset * w : value;
    int ca = 0, cb = !b;
    if (!b && value_left) {
        const char *tmp = pa;
        pa = pb;
        pb = tmp;
        ca = 1;
        cb = 0;
    }
    if (n > 0) {
        int64_t bad = -1;
        switch (t) {
        case FB_TYPE_INT32:
            bad = k->arith_i32(op, (const int32_t *)pa, ca, (const int32_t *)pb, cb, valid, n, out->data);
            break;
        case FB_TYPE_INT64:
            bad = k->arith_i64(op, (const int64_t *)pa, ca, (const int64_t *)pb, cb, valid, n, out->data);
            break;
        case FB_TYPE_FLOAT32: k->arith_f32(op, (const float *)pa, ca, (const float *)pb, cb, n, out->data); break;
        default: k->arith_f64(op, (const double *)pa, ca, (const double *)pb, cb, n, out->data); break;
        }
        if (bad >= 0) {
            int64_t x, y;
            if (t == FB_TYPE_INT32) {
                x = ((const int32_t *)pa)[ca ? 0 : bad];
                y = ((const int32_t *)pb)[cb ? 0 : bad];
            } else {
                x = ((const int64_t *)pa)[ca ? 0 : bad];
                y = ((const int64_t *)pb)[cb ? 0 : bad];
            }
            return fb_set_error(ctx, FB_ERR_OVERFLOW, where, "%s overflows at row %lld: %" PRId64 " %s %" PRId64,
                                fb_type_name(t), (long long)bad, x, fb_expr_arith_name(op), y);
        }
    }
    out->null_count = nulls;
    out->length = n;
    return FB_OK;
}

fb_status fb_expr_arith(fb_ctx *ctx, fb_arith op, const fb_column *a, const fb_column *b, const uint32_t *sel_in,
                        int64_t n_in, fb_column_out *out)
{
    if (!b)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, __func__, "b must not be NULL");
    return arith(ctx, op, a, b, NULL, 0, sel_in, n_in, out, __func__);
}

fb_status fb_expr_arith_const(fb_ctx *ctx, fb_arith op, const fb_column *col, const void *value, int value_left,
                              const uint32_t *sel_in, int64_t n_in, fb_column_out *out)
{
    return arith(ctx, op, col, NULL, value, value_left, sel_in, n_in, out, __func__);
}

/* Text of one value for an error message. */
void fb_expr_value_text(fb_type t, const void *p, char *buf, size_t size)
{
    double d;
    int64_t s;
    uint64_t u;
    switch (t) {
    case FB_TYPE_FLOAT32: { float f; memcpy(&f, p, 4); snprintf(buf, size, "%.9g", (double)f); return; }
    case FB_TYPE_FLOAT64: memcpy(&d, p, 8); snprintf(buf, size, "%.17g", d); return;
    case FB_TYPE_UINT64: memcpy(&u, p, 8); snprintf(buf, size, "%" PRIu64, u); return;
    default:
        fb_expr_cast_one(t, p, FB_TYPE_INT64, &s); /* every other type fits int64 */
        snprintf(buf, size, "%" PRId64, s);
    }
}

/* The argument checks of fb_expr_cast() and its OpenCL twin; clears out's counts. */
fb_status fb_expr_check_cast(fb_ctx *ctx, const fb_column *in, const uint32_t *sel_in, int64_t n_in,
                             fb_column_out *out, const char *where)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_ctx(ctx, where));
    if (out) {
        out->length = 0;
        out->null_count = 0;
    }
    FB_FORWARD_IF_ERROR(fb_check_column(ctx, in, where, "in"));
    if (!out)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "out must not be NULL");
    if (fb_type_width(out->type) == 0)
        return fb_set_error(ctx, FB_ERR_UNSUPPORTED_TYPE, where, "out has an unknown type (%d)", (int)out->type);
    int64_t n = in->length;
    if (n > FB_MORSEL_MAX_ROWS)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%lld rows; at most %lld per call", (long long)n,
                            (long long)FB_MORSEL_MAX_ROWS);
    FB_FORWARD_IF_ERROR(fb_expr_check_sel(ctx, sel_in, n_in, where));
    FB_FORWARD_IF_ERROR(fb_check_column_out(ctx, out, out->type, n, in->validity || sel_in, where));
    if (n == 0 && sel_in && n_in > 0)
        return fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where, "sel_in holds indices, the column has no rows");
    return FB_OK;
}

/* The argument checks of fb_expr_select_cols() and its OpenCL twin. */
fb_status fb_expr_check_select_cols(fb_ctx *ctx, const fb_column *a, fb_cmp op, const fb_column *b,
                                    const uint32_t *sel_in, int64_t n_in, const uint32_t *sel_out, int64_t capacity,
                                    const int64_t *n_out, const char *where)
{
    FB_FORWARD_IF_ERROR(fb_check_select_args(ctx, a, sel_in, n_in, sel_out, capacity, n_out, where));
    FB_FORWARD_IF_ERROR(fb_expr_check_pair(ctx, a, b, where));
    if ((unsigned)op > FB_CMP_GE)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "unknown comparison operator %d", (int)op);
    return FB_OK;
}

/* The argument checks of fb_expr_bool_to_sel() and its OpenCL twin. */
fb_status fb_expr_check_bool_to_sel(fb_ctx *ctx, const fb_bool *a, const uint32_t *sel_in, int64_t n_in,
                                    const uint32_t *sel_out, int64_t capacity, const int64_t *n_out,
                                    const char *where)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_ctx(ctx, where));
    FB_FORWARD_IF_ERROR(fb_expr_check_bool_in(ctx, a, "a", where));
    FB_FORWARD_IF_ERROR(fb_expr_check_sel(ctx, sel_in, n_in, where));
    if (!n_out)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "n_out must not be NULL");
    int64_t cand = sel_in ? n_in : a->length;
    if (cand > 0 && !sel_out)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "sel_out must not be NULL");
    if (capacity < cand)
        return fb_set_error(ctx, FB_ERR_CAPACITY, where, "sel_out holds %lld entries, there are %lld candidates",
                            (long long)capacity, (long long)cand);
    return FB_OK;
}

fb_status fb_expr_cast(fb_ctx *ctx, const fb_column *in, const uint32_t *sel_in, int64_t n_in, fb_column_out *out)
{
    FB_FORWARD_IF_ERROR(fb_expr_check_cast(ctx, in, sel_in, n_in, out, __func__));
    const int64_t n = in->length;
    fb_bits valid = no_nulls;
    int64_t nulls = 0;
    if (out->validity && n > 0) {
        nulls = validity_and(col_bits(in), no_nulls, sel_in, n_in, n, out->validity);
        FB_RETURN_ERROR_IF(nulls < 0, ctx, FB_ERR_OUT_OF_RANGE, "sel_in holds an index ≥ the column's %lld rows",
                           (long long)n);
        valid.bits = out->validity;
    }
    size_t w = fb_type_width(in->type);
    const char *src = (const char *)in->data + (size_t)in->offset * w;
    if (n > 0) {
        int64_t bad = fb_expr_kernels_get(fb_ctx_isa(ctx))->cast(in->type, src, out->type, out->data, valid, n);
        if (bad >= 0) {
            char text[64];
            fb_expr_value_text(in->type, src + (size_t)bad * w, text, sizeof text);
            return fb_set_error(ctx, FB_ERR_OVERFLOW, __func__, "row %lld: %s value %s is out of range for %s",
                                (long long)bad, fb_type_name(in->type), text, fb_type_name(out->type));
        }
    }
    out->null_count = nulls;
    out->length = n;
    return FB_OK;
}
