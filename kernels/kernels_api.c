/* kernels_api.c - public entry points of fb_kernels.h: check arguments, normalize them, call the
 * context's kernel variant. 8- and 16-bit columns go through the portable loops here in every
 * variant (they are rare as keys; widening them in SIMD is future work). */
#include "fb_internal.h"
#include "fb_kernel_table.h"
#include "fb_kernels_common.h"

#include <string.h>

/* ---- hashing --------------------------------------------------------------------------------- */

static void hash_small(const fb_column *key, uint64_t *h, int combine)
{
    fb_bits valid = {key->validity, key->offset};
    for (int64_t i = 0; i < key->length; i++) {
        int64_t r = key->offset + i;
        uint64_t w;
        switch (key->type) {
        case FB_TYPE_INT8: w = (uint64_t)(int64_t)((const int8_t *)key->data)[r]; break;
        case FB_TYPE_INT16: w = (uint64_t)(int64_t)((const int16_t *)key->data)[r]; break;
        case FB_TYPE_UINT8: w = ((const uint8_t *)key->data)[r]; break;
        default: w = ((const uint16_t *)key->data)[r]; break;
        }
        uint64_t x = fb_bit_get(valid, i) ? fb_hash_u64(w) : FB_HASH_NULL;
        h[i] = combine ? h[i] * FB_HASH_MUL ^ x : x;
    }
}

fb_status fb_check_hash_args(const fb_ctx *ctx, const fb_column *key, const uint64_t *hashes, int64_t capacity,
                             const char *where)
{
    FB_FORWARD_IF_ERROR(fb_check_column(ctx, key, where, "key"));
    if (key->type == FB_TYPE_FLOAT32 || key->type == FB_TYPE_FLOAT64)
        return fb_set_error(ctx, FB_ERR_UNSUPPORTED_TYPE, where, "key has type %s; hashing takes integer and date32 keys",
                            fb_type_name(key->type));
    if (key->length > 0 && !hashes)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "hashes must not be NULL");
    if (capacity < key->length)
        return fb_set_error(ctx, FB_ERR_CAPACITY, where, "hashes holds %lld values, key has %lld rows",
                            (long long)capacity, (long long)key->length);
    return FB_OK;
}

static fb_status hash_one(fb_ctx *ctx, const fb_column *key, uint64_t *hashes, int64_t capacity, int combine,
                          const char *where)
{
    if (!ctx)
        return fb_set_error(NULL, FB_ERR_INVALID_ARG, where, "ctx must not be NULL");
    FB_FORWARD_IF_ERROR(fb_check_hash_args(ctx, key, hashes, capacity, where));
    const fb_kernel_table *kt = ctx->kt;
    fb_bits valid = {key->validity, key->offset};
    switch (key->type) {
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32:
    case FB_TYPE_UINT32:
        kt->hash_32((const uint32_t *)key->data + key->offset, key->type == FB_TYPE_UINT32, valid, key->length, hashes,
                    combine);
        break;
    case FB_TYPE_INT64:
    case FB_TYPE_UINT64:
        kt->hash_64((const uint64_t *)key->data + key->offset, valid, key->length, hashes, combine);
        break;
    default:
        hash_small(key, hashes, combine);
        break;
    }
    return FB_OK;
}

fb_status fb_hash_column(fb_ctx *ctx, const fb_column *key, uint64_t *hashes, int64_t capacity)
{
    return hash_one(ctx, key, hashes, capacity, 0, __func__);
}

fb_status fb_hash_combine(fb_ctx *ctx, const fb_column *key, uint64_t *hashes, int64_t capacity)
{
    return hash_one(ctx, key, hashes, capacity, 1, __func__);
}

fb_status fb_check_hash_columns_args(const fb_ctx *ctx, const fb_column *keys, size_t n_keys, const uint64_t *hashes,
                                     int64_t capacity, const char *where)
{
    if (!ctx)
        return fb_set_error(NULL, FB_ERR_INVALID_ARG, where, "ctx must not be NULL");
    if (!keys || n_keys == 0)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "keys must be a non-empty array");
    for (size_t i = 0; i < n_keys; i++) {
        FB_FORWARD_IF_ERROR(fb_check_hash_args(ctx, &keys[i], hashes, capacity, where));
        if (keys[i].length != keys[0].length)
            return fb_set_error(ctx, FB_ERR_LENGTH_MISMATCH, where, "key %zu has %lld rows, key 0 has %lld", i,
                                (long long)keys[i].length, (long long)keys[0].length);
    }
    return FB_OK;
}

fb_status fb_hash_columns(fb_ctx *ctx, const fb_column *keys, size_t n_keys, uint64_t *hashes, int64_t capacity)
{
    FB_FORWARD_IF_ERROR(fb_check_hash_columns_args(ctx, keys, n_keys, hashes, capacity, __func__));
    for (size_t i = 0; i < n_keys; i++)
        FB_FORWARD_IF_ERROR(hash_one(ctx, &keys[i], hashes, capacity, i > 0, __func__));
    return FB_OK;
}

/* ---- predicates ------------------------------------------------------------------------------- */

/* Ordered key of one constant of `type`, and the key domain of the lanes that type is read in. */
static int64_t const_key(fb_type type, const void *value)
{
    switch (type) {
    case FB_TYPE_INT8: { int8_t v; memcpy(&v, value, 1); return v; }
    case FB_TYPE_INT16: { int16_t v; memcpy(&v, value, 2); return v; }
    case FB_TYPE_UINT8: { uint8_t v; memcpy(&v, value, 1); return v; }
    case FB_TYPE_UINT16: { uint16_t v; memcpy(&v, value, 2); return v; }
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32:
    case FB_TYPE_UINT32:
    case FB_TYPE_FLOAT32: { uint32_t v; memcpy(&v, value, 4); return fb_key_32(v, fb_type_key_kind(type)); }
    default: { uint64_t v; memcpy(&v, value, 8); return fb_key_64(v, fb_type_key_kind(type)); }
    }
}

fb_key_kind fb_type_key_kind(fb_type type)
{
    switch (type) {
    case FB_TYPE_UINT32:
    case FB_TYPE_UINT64: return FB_KEY_UNSIGNED;
    case FB_TYPE_FLOAT32:
    case FB_TYPE_FLOAT64: return FB_KEY_FLOAT;
    default: return FB_KEY_SIGNED; /* 8/16-bit unsigned keys are their zero-extended values */
    }
}

static void key_domain(fb_type type, int64_t *kmin, int64_t *kmax)
{
    switch (type) {
    case FB_TYPE_INT8: *kmin = INT8_MIN; *kmax = INT8_MAX; break;
    case FB_TYPE_INT16: *kmin = INT16_MIN; *kmax = INT16_MAX; break;
    case FB_TYPE_UINT8: *kmin = 0; *kmax = UINT8_MAX; break;
    case FB_TYPE_UINT16: *kmin = 0; *kmax = UINT16_MAX; break;
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32:
    case FB_TYPE_UINT32:
    case FB_TYPE_FLOAT32: *kmin = INT32_MIN; *kmax = INT32_MAX; break;
    default: *kmin = INT64_MIN; *kmax = INT64_MAX; break;
    }
}

fb_status fb_pred_make_cmp(const fb_ctx *ctx, fb_type type, fb_cmp op, const void *value, fb_pred *p, const char *where)
{
    if (!value)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "value must not be NULL");
    if ((unsigned)op > FB_CMP_GE)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "unknown comparison operator %d", (int)op);
    int64_t kmin, kmax, c = const_key(type, value);
    key_domain(type, &kmin, &kmax);
    memset(p, 0, sizeof *p);
    p->kind = FB_PRED_RANGE;
    p->key = fb_type_key_kind(type);
    p->lo = kmin;
    p->hi = kmax;
    switch (op) {
    case FB_CMP_EQ: p->lo = p->hi = c; break;
    case FB_CMP_NE: p->lo = p->hi = c; p->negate = 1; break;
    case FB_CMP_LT: if (c == kmin) { p->lo = 1; p->hi = 0; } else { p->hi = c - 1; } break;
    case FB_CMP_LE: p->hi = c; break;
    case FB_CMP_GT: if (c == kmax) { p->lo = 1; p->hi = 0; } else { p->lo = c + 1; } break;
    case FB_CMP_GE: p->lo = c; break;
    }
    return FB_OK;
}

fb_status fb_pred_make_range(const fb_ctx *ctx, fb_type type, const void *lo, const void *hi, fb_pred *p,
                             const char *where)
{
    if (!lo || !hi)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "lo and hi must not be NULL");
    memset(p, 0, sizeof *p);
    p->kind = FB_PRED_RANGE;
    p->key = fb_type_key_kind(type);
    p->lo = const_key(type, lo);
    p->hi = const_key(type, hi);
    return FB_OK;
}

fb_status fb_pred_make_in(const fb_ctx *ctx, fb_type type, const void *values, int64_t n_values, int64_t *keys,
                          fb_pred *p, const char *where)
{
    if (!values)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "values must not be NULL");
    if (n_values < 1 || n_values > FB_SELECT_IN_MAX)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where,
                            "n_values must be 1..%d, got %lld (use a semi join for larger sets)", FB_SELECT_IN_MAX,
                            (long long)n_values);
    size_t w = fb_type_width(type);
    for (int64_t i = 0; i < n_values; i++)
        keys[i] = const_key(type, (const char *)values + (size_t)i * w);
    memset(p, 0, sizeof *p);
    p->kind = FB_PRED_IN;
    p->key = fb_type_key_kind(type);
    p->set = keys;
    p->n_set = n_values;
    return FB_OK;
}

/* ---- selection -------------------------------------------------------------------------------- */

fb_status fb_check_select_args(const fb_ctx *ctx, const fb_column *col, const uint32_t *sel_in, int64_t n_in,
                               const uint32_t *sel_out, int64_t capacity, const int64_t *n_out, const char *where)
{
    if (!ctx)
        return fb_set_error(NULL, FB_ERR_INVALID_ARG, where, "ctx must not be NULL");
    FB_FORWARD_IF_ERROR(fb_check_column(ctx, col, where, "col"));
    if (!n_out)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "n_out must not be NULL");
    if (col->length > FB_MORSEL_MAX_ROWS)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where,
                            "col has %lld rows; selection vectors address at most %lld rows per call",
                            (long long)col->length, (long long)FB_MORSEL_MAX_ROWS);
    int64_t candidates = col->length;
    if (sel_in) {
        if (n_in < 0)
            return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "n_in is negative (%lld)", (long long)n_in);
        candidates = n_in;
    }
    if (candidates > 0 && !sel_out)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "sel_out must not be NULL");
    if (capacity < candidates)
        return fb_set_error(ctx, FB_ERR_CAPACITY, where, "sel_out holds %lld entries, there are %lld candidate rows",
                            (long long)capacity, (long long)candidates);
    return FB_OK;
}

static int64_t select_small(const fb_pred *p, const fb_column *col, const uint32_t *sel_in, int64_t n_in,
                            uint32_t *sel_out)
{
    fb_bits valid = {col->validity, col->offset};
    int64_t n = sel_in ? n_in : col->length, k = 0;
    for (int64_t j = 0; j < n; j++) {
        int64_t i = sel_in ? (int64_t)sel_in[j] : j;
        if (i >= col->length)
            return -1;
        if (!fb_bit_get(valid, i))
            continue;
        int64_t r = col->offset + i, key;
        switch (col->type) {
        case FB_TYPE_INT8: key = ((const int8_t *)col->data)[r]; break;
        case FB_TYPE_INT16: key = ((const int16_t *)col->data)[r]; break;
        case FB_TYPE_UINT8: key = ((const uint8_t *)col->data)[r]; break;
        default: key = ((const uint16_t *)col->data)[r]; break;
        }
        int hit = fb_pred_test(p, key);
        if (hit)
            sel_out[k++] = (uint32_t)i;
    }
    return k;
}

static fb_status run_select(fb_ctx *ctx, const fb_column *col, const fb_pred *p, const uint32_t *sel_in, int64_t n_in,
                            uint32_t *sel_out, int64_t *n_out, const char *where)
{
    fb_bits valid = {col->validity, col->offset};
    int64_t k;
    switch (fb_type_width(col->type)) {
    case 4: k = ctx->kt->select_32(p, (const uint32_t *)col->data + col->offset, valid, col->length, sel_in, n_in, sel_out); break;
    case 8: k = ctx->kt->select_64(p, (const uint64_t *)col->data + col->offset, valid, col->length, sel_in, n_in, sel_out); break;
    default: k = select_small(p, col, sel_in, n_in, sel_out); break;
    }
    if (k < 0)
        return fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where, "sel_in holds an index ≥ the column's %lld rows",
                            (long long)col->length);
    *n_out = k;
    return FB_OK;
}

fb_status fb_select_cmp(fb_ctx *ctx, const fb_column *col, fb_cmp op, const void *value, const uint32_t *sel_in,
                        int64_t n_in, uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(fb_check_select_args(ctx, col, sel_in, n_in, sel_out, capacity, n_out, __func__));
    fb_pred p;
    FB_FORWARD_IF_ERROR(fb_pred_make_cmp(ctx, col->type, op, value, &p, __func__));
    return run_select(ctx, col, &p, sel_in, n_in, sel_out, n_out, __func__);
}

fb_status fb_select_range(fb_ctx *ctx, const fb_column *col, const void *lo, const void *hi, const uint32_t *sel_in,
                          int64_t n_in, uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(fb_check_select_args(ctx, col, sel_in, n_in, sel_out, capacity, n_out, __func__));
    fb_pred p;
    FB_FORWARD_IF_ERROR(fb_pred_make_range(ctx, col->type, lo, hi, &p, __func__));
    return run_select(ctx, col, &p, sel_in, n_in, sel_out, n_out, __func__);
}

fb_status fb_select_in(fb_ctx *ctx, const fb_column *col, const void *values, int64_t n_values,
                       const uint32_t *sel_in, int64_t n_in, uint32_t *sel_out, int64_t capacity, int64_t *n_out)
{
    FB_FORWARD_IF_ERROR(fb_check_select_args(ctx, col, sel_in, n_in, sel_out, capacity, n_out, __func__));
    int64_t keys[FB_SELECT_IN_MAX];
    fb_pred p;
    FB_FORWARD_IF_ERROR(fb_pred_make_in(ctx, col->type, values, n_values, keys, &p, __func__));
    return run_select(ctx, col, &p, sel_in, n_in, sel_out, n_out, __func__);
}

/* ---- compaction and gather --------------------------------------------------------------------- */

fb_status fb_check_move_args(const fb_ctx *ctx, const fb_column *col, const void *idx, int64_t n, int is_gather,
                             fb_column_out *out, const char *where)
{
    if (!ctx)
        return fb_set_error(NULL, FB_ERR_INVALID_ARG, where, "ctx must not be NULL");
    if (out) {
        out->length = 0;
        out->null_count = 0;
    }
    FB_FORWARD_IF_ERROR(fb_check_column(ctx, col, where, "col"));
    if (n < 0)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "the number of indices is negative (%lld)", (long long)n);
    if (n > 0 && !idx)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s must not be NULL", is_gather ? "row_ids" : "sel");
    bool needs_validity = col->validity != NULL;
    if (is_gather && !needs_validity && out && !out->validity) {
        const int64_t *ids = idx;
        for (int64_t j = 0; j < n && !needs_validity; j++)
            needs_validity = ids[j] == -1;
    }
    return fb_check_column_out(ctx, out, col->type, n, needs_validity, where);
}

/* Writes out->validity for rows taken from col at idx (uint32 sel or int64 ids; -1 = null) and
 * returns the null count. Whole bytes are written, the last one padded with zeros. */
int64_t fb_move_validity(const fb_column *col, const uint32_t *sel, const int64_t *ids, int64_t n, uint8_t *out)
{
    fb_bits valid = {col->validity, col->offset};
    int64_t nulls = 0;
    for (int64_t j0 = 0; j0 < n; j0 += 8) {
        uint8_t byte = 0;
        for (int64_t j = j0; j < j0 + 8 && j < n; j++) {
            int64_t r = sel ? (int64_t)sel[j] : ids[j];
            int ok = r >= 0 && fb_bit_get(valid, r);
            byte |= (uint8_t)(ok << (j - j0));
            nulls += !ok;
        }
        out[j0 >> 3] = byte;
    }
    return nulls;
}

static int move_small(const fb_column *col, const uint32_t *sel, const int64_t *ids, int64_t n, void *out)
{
    size_t w = fb_type_width(col->type);
    const char *base = col->data ? (const char *)col->data + (size_t)col->offset * w : NULL; /* NULL: no rows */
    for (int64_t j = 0; j < n; j++) {
        int64_t r = sel ? (int64_t)sel[j] : ids[j];
        if (r < -1 || r >= col->length || (sel && r < 0))
            return -1;
        if (r < 0)
            memset((char *)out + (size_t)j * w, 0, w);
        else
            memcpy((char *)out + (size_t)j * w, base + (size_t)r * w, w);
    }
    return 0;
}

static fb_status run_move(fb_ctx *ctx, const fb_column *col, const uint32_t *sel, const int64_t *ids, int64_t n,
                          fb_column_out *out, const char *where)
{
    const fb_kernel_table *kt = ctx->kt;
    int rc;
    switch (fb_type_width(col->type)) {
    case 4: {
        const uint32_t *v = col->data ? (const uint32_t *)col->data + col->offset : NULL; /* no arithmetic on NULL */
        rc = sel ? kt->compact_32(v, col->length, sel, n, out->data) : kt->gather_32(v, col->length, ids, n, out->data);
        break;
    }
    case 8: {
        const uint64_t *v = col->data ? (const uint64_t *)col->data + col->offset : NULL;
        rc = sel ? kt->compact_64(v, col->length, sel, n, out->data) : kt->gather_64(v, col->length, ids, n, out->data);
        break;
    }
    default: rc = move_small(col, sel, ids, n, out->data); break;
    }
    if (rc != 0)
        return fb_set_error(ctx, FB_ERR_OUT_OF_RANGE, where, "%s holds an index outside the column's %lld rows",
                            sel ? "sel" : "row_ids", (long long)col->length);
    int64_t nulls = out->validity ? fb_move_validity(col, sel, ids, n, out->validity) : 0;
    out->null_count = nulls;
    out->length = n;
    return FB_OK;
}

fb_status fb_compact(fb_ctx *ctx, const fb_column *col, const uint32_t *sel, int64_t n_sel, fb_column_out *out)
{
    FB_FORWARD_IF_ERROR(fb_check_move_args(ctx, col, sel, n_sel, 0, out, __func__));
    return run_move(ctx, col, sel, NULL, n_sel, out, __func__);
}

fb_status fb_gather(fb_ctx *ctx, const fb_column *col, const int64_t *row_ids, int64_t n_ids, fb_column_out *out)
{
    FB_FORWARD_IF_ERROR(fb_check_move_args(ctx, col, row_ids, n_ids, 1, out, __func__));
    return run_move(ctx, col, NULL, row_ids, n_ids, out, __func__);
}
