/* arrow.c - the Arrow C Data Interface (fb_arrow.h): zero-copy import of primitive, dictionary and
 * struct arrays and streams; zero-copy export of columns as a struct array with reference-counted release.
 *
 * Exported structs use malloc, not the context's allocator: the consumer may release them after the
 * context is gone. */
#include "fb/fb_arrow.h"

#include "fb_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- types ------------------------------------------------------------------------------------- */

static const struct {
    const char *format;
    fb_type type;
} arrow_types[] = {
    {"c", FB_TYPE_INT8},    {"s", FB_TYPE_INT16},   {"i", FB_TYPE_INT32},   {"l", FB_TYPE_INT64},
    {"C", FB_TYPE_UINT8},   {"S", FB_TYPE_UINT16},  {"I", FB_TYPE_UINT32},  {"L", FB_TYPE_UINT64},
    {"f", FB_TYPE_FLOAT32}, {"g", FB_TYPE_FLOAT64}, {"tdD", FB_TYPE_DATE32},
};
#define N_ARROW_TYPES (sizeof arrow_types / sizeof arrow_types[0])

/* A readable name for the Arrow formats fb does not take (for the error message). */
static const char *arrow_format_name(const char *f)
{
    static const struct {
        const char *prefix;
        const char *name;
    } names[] = {
        {"n", "null"},          {"b", "boolean"},      {"e", "float16"},       {"u", "utf8"},
        {"U", "large_utf8"},    {"vu", "utf8_view"},   {"z", "binary"},        {"Z", "large_binary"},
        {"vz", "binary_view"},  {"w:", "fixed_size_binary"}, {"d:", "decimal"}, {"tdm", "date64"},
        {"tt", "time"},         {"ts", "timestamp"},   {"tD", "duration"},     {"ti", "interval"},
        {"+l", "list"},         {"+L", "large_list"},  {"+w:", "fixed_size_list"}, {"+s", "struct"},
        {"+m", "map"},          {"+ud", "dense_union"}, {"+us", "sparse_union"}, {"+r", "run_end_encoded"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncmp(f, names[i].prefix, strlen(names[i].prefix)) == 0)
            return names[i].name;
    return "unknown";
}

static fb_status type_of(fb_ctx *ctx, const char *format, fb_type *out, const char *where, const char *what)
{
    if (!format)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s: the Arrow schema has no format", what);
    for (size_t i = 0; i < N_ARROW_TYPES; i++)
        if (strcmp(format, arrow_types[i].format) == 0) {
            *out = arrow_types[i].type;
            return FB_OK;
        }
    return fb_set_error(ctx, FB_ERR_UNSUPPORTED_TYPE, where,
                        "%s: Arrow type %s (format \"%s\") is not supported; fb takes int8..int64, "
                        "uint8..uint64, float32, float64, date32, dictionaries with integer codes and structs of "
                        "those",
                        what, arrow_format_name(format), format);
}

fb_status fb_arrow_type(fb_ctx *ctx, const char *format, fb_type *out)
{
    FB_RETURN_ERROR_IF(!out, ctx, FB_ERR_INVALID_ARG, "out must not be NULL");
    return type_of(ctx, format, out, __func__, "format");
}

const char *fb_arrow_format(fb_type type)
{
    for (size_t i = 0; i < N_ARROW_TYPES; i++)
        if (arrow_types[i].type == type)
            return arrow_types[i].format;
    return NULL;
}

/* ---- import ------------------------------------------------------------------------------------ */

/* A view of a primitive array (two buffers, no children). `what` names it in messages. */
static fb_status view_primitive(fb_ctx *ctx, fb_type type, const struct ArrowArray *a, fb_column *out,
                                const char *where, const char *what)
{
    if (!a->release)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s: the Arrow array was already released", what);
    if (a->n_buffers != 2 || a->n_children != 0 || !a->buffers)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where,
                            "%s: a %s Arrow array needs 2 buffers and no children (has %lld buffers, %lld children)",
                            what, fb_type_name(type), (long long)a->n_buffers, (long long)a->n_children);
    if (a->length < 0 || a->offset < 0 || a->null_count < -1 || a->offset > INT64_MAX - a->length)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where,
                            "%s: bad Arrow length %lld, offset %lld or null_count %lld", what, (long long)a->length,
                            (long long)a->offset, (long long)a->null_count);
    if (a->length > 0 && !a->buffers[1])
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s: %lld rows but no value buffer", what,
                            (long long)a->length);
    if (a->null_count > 0 && !a->buffers[0])
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s: %lld nulls but no validity buffer", what,
                            (long long)a->null_count);
    *out = fb_column_make(type, a->buffers[1], a->length, a->null_count == 0 ? NULL : a->buffers[0]);
    out->offset = a->offset;
    return FB_OK;
}

static int is_integer(fb_type t)
{
    return t >= FB_TYPE_INT8 && t <= FB_TYPE_UINT64;
}

static fb_status import_column(fb_ctx *ctx, const struct ArrowSchema *s, const struct ArrowArray *a,
                               fb_arrow_column *out, const char *where, const char *what)
{
    if (!s || !a || !out)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s: schema, array and out must not be NULL", what);
    if (!s->release)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where, "%s: the Arrow schema was already released", what);
    memset(out, 0, sizeof *out);
    fb_type type;
    fb_status st = type_of(ctx, s->format, &type, where, what);
    if (st != FB_OK)
        return st;
    if (s->dictionary) {
        if (!is_integer(type))
            return fb_set_error(ctx, FB_ERR_UNSUPPORTED_TYPE, where, "%s: dictionary codes must be integers, not %s",
                                what, fb_type_name(type));
        if (!a->dictionary || !a->dictionary->release || !s->dictionary->release)
            return fb_set_error(ctx, FB_ERR_INVALID_ARG, where,
                                "%s: a dictionary-encoded Arrow array without (or with a released) dictionary", what);
        st = view_primitive(ctx, type, a, &out->column, where, what);
        if (st != FB_OK)
            return st;
        out->is_dictionary = 1;
        out->dictionary_schema = s->dictionary;
        out->dictionary_array = a->dictionary;
        fb_type dtype = FB_TYPE_INVALID;
        for (size_t i = 0; s->dictionary->format && i < N_ARROW_TYPES; i++)
            if (strcmp(s->dictionary->format, arrow_types[i].format) == 0)
                dtype = arrow_types[i].type;
        if (dtype != FB_TYPE_INVALID) {
            st = view_primitive(ctx, dtype, a->dictionary, &out->dictionary, where, what);
            if (st != FB_OK)
                return st;
        }
        return FB_OK;
    }
    if (a->dictionary)
        return fb_set_error(ctx, FB_ERR_INVALID_ARG, where,
                            "%s: the Arrow array has a dictionary but its schema does not", what);
    return view_primitive(ctx, type, a, &out->column, where, what);
}

fb_status fb_arrow_import_column(fb_ctx *ctx, const struct ArrowSchema *schema, const struct ArrowArray *array,
                                 fb_arrow_column *out)
{
    return import_column(ctx, schema, array, out, __func__, "array");
}

struct fb_arrow_table {
    fb_table view;
    fb_column *columns;
    const char **names;
    fb_arrow_column *arrow;
    struct ArrowSchema schema; /* moved in; released by fb_arrow_table_free */
    struct ArrowArray array;
};

fb_status fb_arrow_import_table(fb_ctx *ctx, struct ArrowSchema *schema, struct ArrowArray *array,
                                fb_arrow_table **out)
{
    FB_RETURN_ERROR_IF(!schema || !array || !out, ctx, FB_ERR_INVALID_ARG, "schema, array and out must not be NULL");
    *out = NULL;
    FB_RETURN_ERROR_IF(!schema->release || !array->release, ctx, FB_ERR_INVALID_ARG,
                       "the Arrow schema or array was already released");
    FB_RETURN_ERROR_IF(!schema->format || strcmp(schema->format, "+s") != 0, ctx, FB_ERR_UNSUPPORTED_TYPE,
                       "a table must be an Arrow struct array (format \"+s\"), got %s (format \"%s\")",
                       schema->format ? arrow_format_name(schema->format) : "none",
                       schema->format ? schema->format : "");
    FB_RETURN_ERROR_IF(schema->n_children < 0 || schema->n_children != array->n_children ||
                           (schema->n_children && (!schema->children || !array->children)),
                       ctx, FB_ERR_INVALID_ARG, "the struct schema has %lld children, its array %lld",
                       (long long)schema->n_children, (long long)array->n_children);
    FB_RETURN_ERROR_IF(array->length < 0 || array->offset < 0 || array->offset > INT64_MAX - array->length, ctx,
                       FB_ERR_INVALID_ARG, "bad struct length %lld or offset %lld", (long long)array->length,
                       (long long)array->offset);
    FB_RETURN_ERROR_IF(array->null_count != 0 && array->n_buffers > 0 && array->buffers && array->buffers[0], ctx,
                       FB_ERR_UNSUPPORTED_TYPE,
                       "struct-level nulls (null_count %lld) are not supported: give a record batch",
                       (long long)array->null_count);
    size_t n = (size_t)schema->n_children;
    fb_arrow_table *t = calloc(1, sizeof *t);
    if (t) {
        t->columns = calloc(n ? n : 1, sizeof *t->columns);
        t->names = calloc(n ? n : 1, sizeof *t->names);
        t->arrow = calloc(n ? n : 1, sizeof *t->arrow);
    }
    if (!t || !t->columns || !t->names || !t->arrow) {
        if (t) {
            free(t->columns);
            free(t->names);
            free(t->arrow);
        }
        free(t);
        return FB_ERROR(ctx, FB_ERR_OUT_OF_MEMORY, "no memory for a table of %zu columns", n);
    }
    for (size_t i = 0; i < n; i++) {
        const struct ArrowSchema *cs = schema->children[i];
        const struct ArrowArray *ca = array->children[i];
        char what[160];
        snprintf(what, sizeof what, "column %zu ('%s')", i, cs && cs->name ? cs->name : "");
        fb_status st = import_column(ctx, cs, ca, &t->arrow[i], __func__, what);
        if (st == FB_OK && ca->length < array->offset + array->length)
            st = fb_set_error(ctx, FB_ERR_LENGTH_MISMATCH, __func__, "%s has %lld rows, the struct needs %lld", what,
                              (long long)ca->length, (long long)(array->offset + array->length));
        if (st != FB_OK) {
            free(t->columns);
            free(t->names);
            free(t->arrow);
            free(t);
            return st;
        }
        /* A struct's offset applies on top of its children's. */
        t->arrow[i].column.offset += array->offset;
        t->arrow[i].column.length = array->length;
        t->columns[i] = t->arrow[i].column;
        t->names[i] = cs->name ? cs->name : "";
    }
    t->view.n_columns = n;
    t->view.columns = t->columns;
    t->view.names = t->names;
    /* Move: the table owns the structs now. */
    t->schema = *schema;
    t->array = *array;
    schema->release = NULL;
    array->release = NULL;
    *out = t;
    return FB_OK;
}

const fb_table *fb_arrow_table_view(const fb_arrow_table *t)
{
    return t ? &t->view : NULL;
}

const fb_arrow_column *fb_arrow_table_column(const fb_arrow_table *t, size_t i)
{
    return t && i < t->view.n_columns ? &t->arrow[i] : NULL;
}

void fb_arrow_table_free(fb_arrow_table *t)
{
    if (!t)
        return;
    if (t->array.release)
        t->array.release(&t->array);
    if (t->schema.release)
        t->schema.release(&t->schema);
    free(t->columns);
    free(t->names);
    free(t->arrow);
    free(t);
}

fb_status fb_arrow_stream_next(fb_ctx *ctx, struct ArrowArrayStream *stream, fb_arrow_table **out)
{
    FB_RETURN_ERROR_IF(!stream || !out, ctx, FB_ERR_INVALID_ARG, "stream and out must not be NULL");
    *out = NULL;
    FB_RETURN_ERROR_IF(!stream->release || !stream->get_schema || !stream->get_next, ctx, FB_ERR_INVALID_ARG,
                       "the Arrow stream was released or lacks its callbacks");
    struct ArrowSchema schema;
    memset(&schema, 0, sizeof schema);
    int rc = stream->get_schema(stream, &schema);
    if (rc != 0) {
        const char *msg = stream->get_last_error ? stream->get_last_error(stream) : NULL;
        return FB_ERROR(ctx, FB_ERR_IO, "the stream's get_schema failed (%d): %s", rc, msg ? msg : "no message");
    }
    struct ArrowArray array;
    memset(&array, 0, sizeof array);
    rc = stream->get_next(stream, &array);
    if (rc != 0) {
        const char *msg = stream->get_last_error ? stream->get_last_error(stream) : NULL;
        fb_status st = FB_ERROR(ctx, FB_ERR_IO, "the stream's get_next failed (%d): %s", rc, msg ? msg : "no message");
        if (schema.release)
            schema.release(&schema);
        return st;
    }
    if (!array.release) { /* end of stream */
        if (schema.release)
            schema.release(&schema);
        return FB_OK;
    }
    fb_status st = fb_arrow_import_table(ctx, &schema, &array, out);
    if (st != FB_OK) {
        if (array.release)
            array.release(&array);
        if (schema.release)
            schema.release(&schema);
    }
    return st;
}

/* ---- export ------------------------------------------------------------------------------------ */

/* What every exported array of one export shares: the owner's release, run when the last is released. */
typedef struct export_shared {
    atomic_int refs;
    void (*release)(void *owner);
    void *owner;
} export_shared;

typedef struct export_child {
    export_shared *shared;
    const void *buffers[2];
} export_child;

typedef struct export_parent {
    export_shared *shared;
    const void *buffers[1];
    struct ArrowArray **child_ptrs;
    struct ArrowArray *children;
} export_parent;

static void shared_unref(export_shared *sh)
{
    if (atomic_fetch_sub(&sh->refs, 1) == 1) {
        if (sh->release)
            sh->release(sh->owner);
        free(sh);
    }
}

static void release_child_array(struct ArrowArray *a)
{
    export_child *c = a->private_data;
    shared_unref(c->shared);
    free(c);
    a->release = NULL;
}

static void release_parent_array(struct ArrowArray *a)
{
    export_parent *p = a->private_data;
    for (int64_t i = 0; i < a->n_children; i++)
        if (p->children[i].release) /* not moved out by the consumer */
            p->children[i].release(&p->children[i]);
    export_shared *sh = p->shared;
    free(p->child_ptrs);
    free(p->children);
    free(p);
    a->release = NULL;
    shared_unref(sh);
}

static void release_child_schema(struct ArrowSchema *s)
{
    free((void *)s->name);
    s->release = NULL;
}

static void release_parent_schema(struct ArrowSchema *s)
{
    struct ArrowSchema *kids = s->private_data;
    for (int64_t i = 0; i < s->n_children; i++)
        if (kids[i].release)
            kids[i].release(&kids[i]);
    free(kids);
    free(s->children);
    s->release = NULL;
}

fb_status fb_arrow_export_table(fb_ctx *ctx, const fb_table *table, void (*release)(void *owner), void *owner,
                                struct ArrowSchema *schema, struct ArrowArray *array)
{
    FB_RETURN_ERROR_IF(!schema || !array, ctx, FB_ERR_INVALID_ARG, "schema and array must not be NULL");
    int64_t rows = 0;
    fb_status st = fb_table_validate(ctx, table, &rows);
    if (st != FB_OK)
        return st;
    size_t n = table->n_columns;
    int64_t *nulls = calloc(n ? n : 1, sizeof *nulls);
    FB_RETURN_ERROR_IF(!nulls, ctx, FB_ERR_OUT_OF_MEMORY, "no memory to export %zu columns", n);
    for (size_t i = 0; i < n && st == FB_OK; i++)
        st = fb_column_null_count(ctx, &table->columns[i], &nulls[i]);
    if (st != FB_OK) {
        free(nulls);
        return st;
    }
    export_shared *sh = calloc(1, sizeof *sh);
    export_parent *p = calloc(1, sizeof *p);
    struct ArrowSchema *kids = calloc(n ? n : 1, sizeof *kids);
    struct ArrowSchema **kid_ptrs = calloc(n ? n : 1, sizeof *kid_ptrs);
    export_child **cp = calloc(n ? n : 1, sizeof *cp);
    int ok = sh && p && kids && kid_ptrs && cp;
    if (ok) {
        p->children = calloc(n ? n : 1, sizeof *p->children);
        p->child_ptrs = calloc(n ? n : 1, sizeof *p->child_ptrs);
        ok = p->children && p->child_ptrs;
    }
    for (size_t i = 0; ok && i < n; i++) {
        char buf[32];
        const char *name = table->names && table->names[i] ? table->names[i] : NULL;
        if (!name) {
            snprintf(buf, sizeof buf, "c%zu", i);
            name = buf;
        }
        kids[i].name = strdup(name);
        cp[i] = calloc(1, sizeof **cp);
        ok = kids[i].name && cp[i];
    }
    if (!ok) {
        for (size_t i = 0; i < n; i++) {
            if (kids)
                free((void *)kids[i].name);
            if (cp)
                free(cp[i]);
        }
        if (p) {
            free(p->children);
            free(p->child_ptrs);
        }
        free(sh);
        free(p);
        free(kids);
        free(kid_ptrs);
        free(cp);
        free(nulls);
        return FB_ERROR(ctx, FB_ERR_OUT_OF_MEMORY, "no memory to export %zu columns", n);
    }
    atomic_init(&sh->refs, (int)n + 1);
    sh->release = release;
    sh->owner = owner;

    for (size_t i = 0; i < n; i++) {
        const fb_column *c = &table->columns[i];
        kids[i].format = fb_arrow_format(c->type);
        kids[i].flags = nulls[i] ? ARROW_FLAG_NULLABLE : 0;
        kids[i].release = release_child_schema;
        kid_ptrs[i] = &kids[i];

        cp[i]->shared = sh;
        cp[i]->buffers[0] = nulls[i] ? c->validity : NULL;
        cp[i]->buffers[1] = c->data;
        struct ArrowArray *ca = &p->children[i];
        ca->length = c->length;
        ca->null_count = nulls[i];
        ca->offset = c->offset;
        ca->n_buffers = 2;
        ca->buffers = cp[i]->buffers;
        ca->release = release_child_array;
        ca->private_data = cp[i];
        p->child_ptrs[i] = ca;
    }
    free(cp);
    free(nulls);

    memset(schema, 0, sizeof *schema);
    schema->format = "+s";
    schema->name = "";
    schema->n_children = (int64_t)n;
    schema->children = kid_ptrs;
    schema->release = release_parent_schema;
    schema->private_data = kids;

    p->shared = sh;
    memset(array, 0, sizeof *array);
    array->length = rows;
    array->null_count = 0;
    array->n_buffers = 1;
    array->buffers = p->buffers;
    array->n_children = (int64_t)n;
    array->children = p->child_ptrs;
    array->release = release_parent_array;
    array->private_data = p;
    return FB_OK;
}
