/* fb_arrow.h - the Arrow C Data Interface: Arrow arrays in, fb results out, without copying buffers.
 *
 * Import: a primitive Arrow array (int8..int64, uint8..uint64, float32, float64, date32) becomes an
 * fb_column that points at the array's own buffers (validity bitmap and offset honoured); a dictionary
 * array becomes its integer codes plus the dictionary; a struct array (a record batch, as pyarrow's
 * RecordBatch._export_to_c writes it) becomes an fb_table. Any other type is refused with
 * FB_ERR_UNSUPPORTED_TYPE and a message naming the type and its format string.
 *
 * Export: columns in memory the caller owns become an Arrow struct array whose release callbacks free
 * exactly once: the caller's `release` runs once, after the consumer has released the array and every
 * child it moved out of it.
 *
 * The structs below are the C Data Interface's ABI (https://arrow.apache.org/docs/format/CDataInterface.html),
 * defined here under the interface's own include guard so that a program that already has them from
 * Arrow's headers (or nanoarrow's) sees one definition.
 */
#ifndef FB_ARROW_H
#define FB_ARROW_H

#include "fb_column.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE

/** ArrowSchema.flags: the field is dictionary-encoded with ordered codes. */
#define ARROW_FLAG_DICTIONARY_ORDERED 1
/** ArrowSchema.flags: the field may hold nulls. */
#define ARROW_FLAG_NULLABLE 2
/** ArrowSchema.flags: map keys are sorted. */
#define ARROW_FLAG_MAP_KEYS_SORTED 4

/** \brief Arrow C Data Interface: the type of an array (see the Arrow specification). */
struct ArrowSchema {
    const char *format;             /**< type as a format string, e.g. "i" for int32 */
    const char *name;               /**< field name, may be NULL */
    const char *metadata;           /**< binary key-value metadata, may be NULL */
    int64_t flags;                  /**< ARROW_FLAG_ bits */
    int64_t n_children;             /**< number of children */
    struct ArrowSchema **children;  /**< the children's types */
    struct ArrowSchema *dictionary; /**< the dictionary's type, for dictionary-encoded fields */
    void (*release)(struct ArrowSchema *); /**< frees the schema; NULL once released */
    void *private_data;             /**< the producer's */
};

/** \brief Arrow C Data Interface: an array's data (see the Arrow specification). */
struct ArrowArray {
    int64_t length;                /**< logical rows */
    int64_t null_count;            /**< null rows, or -1 when not computed */
    int64_t offset;                /**< rows skipped at the start of every buffer */
    int64_t n_buffers;             /**< number of buffers */
    int64_t n_children;            /**< number of children */
    const void **buffers;          /**< the buffers; buffers[0] is the validity bitmap (may be NULL) */
    struct ArrowArray **children;  /**< the children's data */
    struct ArrowArray *dictionary; /**< the dictionary's values, for dictionary-encoded arrays */
    void (*release)(struct ArrowArray *); /**< frees the array; NULL once released */
    void *private_data;            /**< the producer's */
};

#endif /* ARROW_C_DATA_INTERFACE */

#ifndef ARROW_C_STREAM_INTERFACE
#define ARROW_C_STREAM_INTERFACE

/** \brief Arrow C Stream Interface: a sequence of arrays of one schema (see the Arrow specification). */
struct ArrowArrayStream {
    int (*get_schema)(struct ArrowArrayStream *, struct ArrowSchema *out); /**< the stream's schema; 0 or errno */
    int (*get_next)(struct ArrowArrayStream *, struct ArrowArray *out); /**< next array; released `out` at the end */
    const char *(*get_last_error)(struct ArrowArrayStream *); /**< message of the last failure, may be NULL */
    void (*release)(struct ArrowArrayStream *); /**< frees the stream; NULL once released */
    void *private_data;                         /**< the producer's */
};

#endif /* ARROW_C_STREAM_INTERFACE */

/** \brief One imported Arrow array: its values as an fb_column, and for a dictionary array the codes
 * and the dictionary. The views point into the Arrow array's buffers: they live as long as it does. */
typedef struct fb_arrow_column {
    fb_column column;                      /**< the values, or for a dictionary array the codes */
    int is_dictionary;                     /**< 1 when the array is dictionary-encoded */
    fb_column dictionary;                  /**< fixed-width dictionary values as a column; type
                                                FB_TYPE_INVALID when the dictionary is not fixed-width
                                                (e.g. strings: use dictionary_array) */
    const struct ArrowSchema *dictionary_schema; /**< the dictionary's Arrow type, or NULL */
    const struct ArrowArray *dictionary_array;   /**< the dictionary's Arrow data, or NULL */
} fb_arrow_column;

/** \brief The fb type an Arrow format string stands for.
 * \param format e.g. "i" (int32), "tdD" (date32). \param[out] out the type.
 * \return FB_OK, or FB_ERR_UNSUPPORTED_TYPE (message names the format) / FB_ERR_INVALID_ARG. */
FB_API fb_status fb_arrow_type(fb_ctx *ctx, const char *format, fb_type *out);

/** \brief The Arrow format string of an fb type. \return a static string, or NULL for an invalid type. */
FB_API const char *fb_arrow_format(fb_type type);

/** \brief Views one Arrow array (borrowed: the caller keeps it alive and releases it).
 *
 * Primitive arrays need two buffers (validity, values); a null_count of 0 drops the validity bitmap
 * from the view. Dictionary arrays give their codes (which must be an integer type) in `column`.
 * \param ctx for the error message, may be NULL.
 * \return FB_OK, FB_ERR_INVALID_ARG (NULL, released, malformed or negative sizes) or
 *         FB_ERR_UNSUPPORTED_TYPE (the message names the Arrow type). */
FB_API fb_status fb_arrow_import_column(fb_ctx *ctx, const struct ArrowSchema *schema, const struct ArrowArray *array,
                                        fb_arrow_column *out);

/** \brief An imported record batch: an fb_table over the Arrow buffers, owning the Arrow structs. */
typedef struct fb_arrow_table fb_arrow_table;

/** \brief Imports a struct array (a record batch) as a table, taking ownership of both structs
 * (Arrow's "move": their contents are copied into the table and the caller's structs are marked
 * released). Free with fb_arrow_table_free(), which releases them. On failure the caller's structs are
 * left as they were (still owned by the caller).
 * \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_UNSUPPORTED_TYPE (the message names the column and its
 *         type; struct-level nulls are refused too) or FB_ERR_OUT_OF_MEMORY. */
FB_API fb_status fb_arrow_import_table(fb_ctx *ctx, struct ArrowSchema *schema, struct ArrowArray *array,
                                       fb_arrow_table **out);

/** \brief The fb_table view of an imported table (valid until fb_arrow_table_free()). */
FB_API const fb_table *fb_arrow_table_view(const fb_arrow_table *t);

/** \brief Column i of an imported table with its dictionary, if any. \return NULL when i is out of range. */
FB_API const fb_arrow_column *fb_arrow_table_column(const fb_arrow_table *t, size_t i);

/** \brief Releases the Arrow structs an imported table owns and frees it. \param t may be NULL. */
FB_API void fb_arrow_table_free(fb_arrow_table *t);

/** \brief Reads the next record batch of an Arrow stream as a table.
 *
 * The stream stays the caller's (release it when done). Each batch's schema is the stream's schema.
 * \param[out] out the next table (free with fb_arrow_table_free()), or NULL at the end of the stream.
 * \return FB_OK, FB_ERR_IO (the stream failed; the message has its error), or an error of
 *         fb_arrow_import_table(). */
FB_API fb_status fb_arrow_stream_next(fb_ctx *ctx, struct ArrowArrayStream *stream, fb_arrow_table **out);

/** \brief Exports columns as an Arrow struct array (a record batch) without copying them.
 *
 * The Arrow structs point at the columns' buffers; `release(owner)` is called exactly once, when the
 * consumer has released the array and every child it moved out (the schema is independent: it owns
 * copies of the names). Offsets and validity of the columns are kept; null counts are computed.
 * \param table the columns (names NULL: "c0", "c1", ...). \param release may be NULL (nothing to free).
 * \param[out] schema, array filled; release them with their own release callbacks.
 * \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_UNSUPPORTED_TYPE, FB_ERR_LENGTH_MISMATCH or
 *         FB_ERR_OUT_OF_MEMORY (then nothing is exported and release is not called). */
FB_API fb_status fb_arrow_export_table(fb_ctx *ctx, const fb_table *table, void (*release)(void *owner), void *owner,
                                       struct ArrowSchema *schema, struct ArrowArray *array);

#ifdef __cplusplus
}
#endif
#endif /* FB_ARROW_H */
