/* fb_column.h - column and table views in Arrow layout.
 *
 * A column is a fixed-width array of values plus an optional validity bitmap, laid out exactly as
 * Arrow's C Data Interface lays out a primitive array: bit i of the bitmap (LSB first within each
 * byte) is 1 when row i holds a value and 0 when it is null. Views never own memory.
 */
#ifndef FB_COLUMN_H
#define FB_COLUMN_H

#include "fb_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** \brief Value types. Values are pinned. */
typedef enum fb_type {
    FB_TYPE_INVALID = 0, /**< not a type; rejected everywhere */
    FB_TYPE_INT8 = 1,
    FB_TYPE_INT16 = 2,
    FB_TYPE_INT32 = 3,
    FB_TYPE_INT64 = 4,
    FB_TYPE_UINT8 = 5,
    FB_TYPE_UINT16 = 6,
    FB_TYPE_UINT32 = 7,
    FB_TYPE_UINT64 = 8,
    FB_TYPE_FLOAT32 = 9,
    FB_TYPE_FLOAT64 = 10,
    FB_TYPE_DATE32 = 11 /**< days since 1970-01-01 as int32 (Arrow date32) */
} fb_type;

/** Number of fb_type values (one past the largest). */
#define FB_TYPE_COUNT 12

/** \brief Width of one value in bytes. \return 1, 2, 4 or 8; 0 for an invalid type. */
FB_API size_t fb_type_width(fb_type type);

/** \brief Name of a type, e.g. "int32", "date32". \return a static string; "invalid" for unknown values. */
FB_API const char *fb_type_name(fb_type type);

/** \brief A read-only view of one column (Arrow primitive array layout).
 *
 * Row i's value is at `((const T *)data)[offset + i]`; its validity is bit `offset + i` of
 * `validity`. `validity == NULL` means every row is valid. */
typedef struct fb_column {
    fb_type type;            /**< value type */
    int64_t length;          /**< rows, ≥ 0 */
    int64_t offset;          /**< rows skipped at the start of data and validity (Arrow offset), ≥ 0 */
    const void *data;        /**< values; may be NULL only when length is 0 */
    const uint8_t *validity; /**< validity bitmap, LSB order, 1 = valid; NULL = no nulls */
} fb_column;

/** \brief A caller-owned buffer that a kernel writes a column into.
 *
 * The caller sets type, capacity, data and (when the result may hold nulls) validity; the kernel
 * sets length and null_count. Results always start at row 0 (no offset). */
typedef struct fb_column_out {
    fb_type type;       /**< value type; must match what the kernel produces */
    int64_t capacity;   /**< rows that data (and validity) can hold */
    void *data;         /**< capacity * width bytes */
    uint8_t *validity;  /**< (capacity + 7) / 8 bytes, or NULL; required when the result can hold
                             nulls. When given it is always written, all ones for a result without nulls. */
    int64_t length;     /**< set by the kernel: rows written (0 after a failed call) */
    int64_t null_count; /**< set by the kernel: null rows among them */
} fb_column_out;

/** \brief A read-only set of equal-length columns. */
typedef struct fb_table {
    size_t n_columns;          /**< number of columns */
    const fb_column *columns;  /**< n_columns views */
    const char *const *names;  /**< n_columns names, or NULL */
} fb_table;

/** \brief Makes a column view without nulls over `length` values of `type` at `data`.
 * \return the view (no validation; see fb_column_validate()). \note Thread-safe. */
FB_API fb_column fb_column_make(fb_type type, const void *data, int64_t length, const uint8_t *validity);

/** \brief Checks a view: known type, length and offset ≥ 0, data non-NULL when length > 0.
 * \param ctx for the error message, may be NULL. \return FB_OK, FB_ERR_INVALID_ARG or FB_ERR_UNSUPPORTED_TYPE. */
FB_API fb_status fb_column_validate(fb_ctx *ctx, const fb_column *col);

/** \brief Whether row i of a valid view is non-null. \return 1 or 0. */
static inline int fb_column_is_valid(const fb_column *col, int64_t i)
{
    if (!col->validity)
        return 1;
    int64_t b = col->offset + i;
    return (col->validity[b >> 3] >> (b & 7)) & 1;
}

/** \brief Counts the null rows of a view (popcount over the bitmap).
 * \param[out] out nulls. \return FB_OK or the status of fb_column_validate(). */
FB_API fb_status fb_column_null_count(fb_ctx *ctx, const fb_column *col, int64_t *out);

/** \brief Checks a table: every column valid and all of one length.
 * \param[out] length the common length (0 for a table without columns); may be NULL.
 * \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_UNSUPPORTED_TYPE or FB_ERR_LENGTH_MISMATCH. */
FB_API fb_status fb_table_validate(fb_ctx *ctx, const fb_table *table, int64_t *length);

#ifdef __cplusplus
}
#endif
#endif /* FB_COLUMN_H */
