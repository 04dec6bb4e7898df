/* column.c - type metadata and the validation of column and table views shared by every entry point. */
#include "fb_internal.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    size_t width;
} type_meta[FB_TYPE_COUNT] = {
    [FB_TYPE_INVALID] = {"invalid", 0}, [FB_TYPE_INT8] = {"int8", 1},     [FB_TYPE_INT16] = {"int16", 2},
    [FB_TYPE_INT32] = {"int32", 4},     [FB_TYPE_INT64] = {"int64", 8},   [FB_TYPE_UINT8] = {"uint8", 1},
    [FB_TYPE_UINT16] = {"uint16", 2},   [FB_TYPE_UINT32] = {"uint32", 4}, [FB_TYPE_UINT64] = {"uint64", 8},
    [FB_TYPE_FLOAT32] = {"float32", 4}, [FB_TYPE_FLOAT64] = {"float64", 8}, [FB_TYPE_DATE32] = {"date32", 4},
};

size_t fb_type_width(fb_type type)
{
    if ((unsigned)type >= FB_TYPE_COUNT)
        return 0;
    return type_meta[type].width;
}

const char *fb_type_name(fb_type type)
{
    if ((unsigned)type >= FB_TYPE_COUNT)
        return "invalid";
    return type_meta[type].name;
}

fb_column fb_column_make(fb_type type, const void *data, int64_t length, const uint8_t *validity)
{
    fb_column c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.data = data;
    c.length = length;
    c.validity = validity;
    return c;
}

fb_status fb_check_column(const fb_ctx *ctx, const fb_column *col, const char *where, const char *what)
{
    if (!col)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s must not be NULL", what);
    if (fb_type_width(col->type) == 0)
        return fb_set_error(ctx, FB_ERR_UNSUPPORTED_TYPE, where, "%s has an unknown type (%d)", what, (int)col->type);
    if (col->length < 0 || col->offset < 0)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s has a negative length (%lld) or offset (%lld)", what,
                            (long long)col->length, (long long)col->offset);
    if (col->length > 0 && !col->data)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s has %lld rows but no data", what,
                            (long long)col->length);
    if (col->offset > INT64_MAX - col->length)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s: offset + length overflows", what);
    return FB_OK;
}

fb_status fb_check_column_out(const fb_ctx *ctx, fb_column_out *out, fb_type type, int64_t rows,
                              bool needs_validity, const char *where)
{
    if (!out)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "out must not be NULL");
    out->length = 0; /* a failed call never leaves rows marked valid */
    out->null_count = 0;
    if (out->type != type)
        return fb_set_error(ctx, FB_ERR_UNSUPPORTED_TYPE, where, "out has type %s, the result has type %s",
                            fb_type_name(out->type), fb_type_name(type));
    if (out->capacity < rows)
        return fb_set_error(ctx, FB_ERR_CAPACITY, where, "out holds %lld rows, the result has %lld",
                            (long long)out->capacity, (long long)rows);
    if (rows > 0 && !out->data)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "out has no data buffer");
    if (needs_validity && rows > 0 && !out->validity)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where,
                            "the result can hold nulls but out has no validity buffer");
    return FB_OK;
}

fb_status fb_column_validate(fb_ctx *ctx, const fb_column *col)
{
    return fb_check_column(ctx, col, "fb_column_validate", "col");
}

fb_status fb_column_null_count(fb_ctx *ctx, const fb_column *col, int64_t *out)
{
    FB_FORWARD_IF_ERROR(fb_check_column(ctx, col, __func__, "col"));
    FB_RETURN_ERROR_IF(!out, ctx, FB_ERR_INVALID_ARG, "out must not be NULL");
    if (!col->validity) {
        *out = 0;
        return FB_OK;
    }
    int64_t valid = 0, i = 0, b = col->offset, n = col->length;
    /* head up to a byte boundary, whole bytes, tail */
    for (; i < n && (b & 7); i++, b++)
        valid += (col->validity[b >> 3] >> (b & 7)) & 1;
    for (; i + 8 <= n; i += 8, b += 8)
        valid += __builtin_popcount(col->validity[b >> 3]);
    for (; i < n; i++, b++)
        valid += (col->validity[b >> 3] >> (b & 7)) & 1;
    *out = n - valid;
    return FB_OK;
}

fb_status fb_table_validate(fb_ctx *ctx, const fb_table *table, int64_t *length)
{
    FB_RETURN_ERROR_IF(!table, ctx, FB_ERR_INVALID_ARG, "table must not be NULL");
    FB_RETURN_ERROR_IF(table->n_columns > 0 && !table->columns, ctx, FB_ERR_INVALID_ARG,
                       "table has %zu columns but no column array", table->n_columns);
    int64_t len = 0;
    for (size_t i = 0; i < table->n_columns; i++) {
        char what[64];
        snprintf(what, sizeof what, "column %zu", i);
        FB_FORWARD_IF_ERROR(fb_check_column(ctx, &table->columns[i], __func__, what));
        if (i == 0)
            len = table->columns[0].length;
        FB_RETURN_ERROR_IF(table->columns[i].length != len, ctx, FB_ERR_LENGTH_MISMATCH,
                           "column %zu%s%s%s has %lld rows, column 0 has %lld", i, table->names ? " ('" : "",
                           table->names && table->names[i] ? table->names[i] : "", table->names ? "')" : "",
                           (long long)table->columns[i].length, (long long)len);
    }
    if (length)
        *length = len;
    return FB_OK;
}
