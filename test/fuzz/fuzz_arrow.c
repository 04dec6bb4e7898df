/* fuzz_arrow.c - libFuzzer target for the Arrow C Data Interface import (fb_arrow.h).
 *
 * The input decodes into an ArrowSchema / ArrowArray pair the way a producer could write them, right or
 * wrong: the struct's format, children count, length, offset, null count and validity buffer; per child
 * its format (every supported one, unsupported ones, "", NULL), an optional dictionary (in the schema, the
 * array, both, with any format), a length that covers the struct or falls short, an offset, 1..3 buffers,
 * a value buffer or none, a validity bitmap or none, a null count that is right, -1 or wrong, a released
 * child, a NULL child pointer; and in "wild" inputs arbitrary 64-bit lengths and offsets (buffers are then
 * never read, by fb or here). Every buffer is malloc'ed at exactly the size the producer claims, so ASan
 * sees any read outside it. Each struct has a release callback that counts its calls.
 *
 * Checks: fb_arrow_import_table() either refuses with an error and a message, leaving the caller's structs
 * as they were (release callbacks not run, contents unchanged), or gives a table whose every column has the
 * child's type, the struct's length, and values and validity equal to what the buffers say at the child's
 * plus the struct's offset (dictionary: the codes and the dictionary's values). An input the harness
 * built correctly must be accepted. fb_arrow_table_free() runs each release callback exactly once; every
 * buffer is freed (LeakSanitizer). fb_arrow_import_column() agrees with the table on each child, and the
 * table exported again by fb_arrow_export_table() and imported back has the same values, its owner
 * callback running exactly once. */
#include "fuzz_common.h"

#define MAX_CHILDREN 5
#define MAX_ROWS 80

static int64_t g_schema_releases, g_array_releases, g_owner_releases, g_top_schema, g_top_array;

typedef struct node {
    void *bufs[3];
    const void *buf_ptrs[3];
    struct ArrowSchema *schema_children[MAX_CHILDREN];
    struct ArrowArray *array_children[MAX_CHILDREN];
    char *format;
} node;

static void release_schema(struct ArrowSchema *s)
{
    FZ_CHECK(s->release != NULL, "release of a released schema");
    node *nd = s->private_data;
    for (int64_t i = 0; i < MAX_CHILDREN; i++)
        if (nd->schema_children[i]) {
            if (nd->schema_children[i]->release)
                nd->schema_children[i]->release(nd->schema_children[i]);
            free(nd->schema_children[i]);
        }
    if (s->dictionary) {
        if (s->dictionary->release)
            s->dictionary->release(s->dictionary);
        free(s->dictionary);
    }
    free(nd->format);
    free(nd);
    s->format = NULL;
    s->children = NULL;
    s->dictionary = NULL;
    s->release = NULL;
    g_schema_releases++;
}

static void release_array(struct ArrowArray *a)
{
    FZ_CHECK(a->release != NULL, "release of a released array");
    node *nd = a->private_data;
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (nd->array_children[i]) {
            if (nd->array_children[i]->release)
                nd->array_children[i]->release(nd->array_children[i]);
            free(nd->array_children[i]);
        }
    if (a->dictionary) {
        if (a->dictionary->release)
            a->dictionary->release(a->dictionary);
        free(a->dictionary);
    }
    for (int i = 0; i < 3; i++)
        free(nd->bufs[i]);
    free(nd);
    a->buffers = NULL;
    a->children = NULL;
    a->dictionary = NULL;
    a->release = NULL;
    g_array_releases++;
}

static void release_top_schema(struct ArrowSchema *s)
{
    g_top_schema++;
    release_schema(s);
}

static void release_top_array(struct ArrowArray *a)
{
    g_top_array++;
    release_array(a);
}

/* Released-at-birth structs (a producer handing over a released child) still own nothing. */
static void noop_schema_release(struct ArrowSchema *s) { s->release = NULL; }
static void noop_array_release(struct ArrowArray *a) { a->release = NULL; }

static const char *const formats[] = {"c", "s", "i", "l", "C", "S", "I", "L", "f", "g", "tdD",
                                      "c", "s", "i", "l", "C", "S", "I", "L", "f", "g", "tdD",
                                      "u", "b", "n", "tdm", "e", "w:4", "", "+s", "+l", "ii", "i ", NULL};
#define N_FORMATS (sizeof formats / sizeof formats[0])

static fb_type format_type(const char *f)
{
    static const char *const prim[] = {"c", "s", "i", "l", "C", "S", "I", "L", "f", "g", "tdD"};
    for (int i = 0; f && i < 11; i++)
        if (!strcmp(f, prim[i]))
            return fz_all_types[i];
    return FB_TYPE_INVALID;
}

static struct ArrowSchema *new_schema(const char *format, const char *name)
{
    struct ArrowSchema *s = calloc(1, sizeof *s);
    node *nd = calloc(1, sizeof *nd);
    nd->format = format ? strdup(format) : NULL;
    s->format = nd->format;
    s->name = name;
    s->flags = ARROW_FLAG_NULLABLE;
    s->release = release_schema;
    s->private_data = nd;
    return s;
}

/* A primitive (or any-format) array: `rows` = offset + length rows in its buffers. *ok is cleared when the
 * array breaks the producer contract in a way the import must refuse. */
static struct ArrowArray *new_array(fz_in *in, fb_type t, int64_t length, int wild, int *ok, int with_value_pool)
{
    struct ArrowArray *a = calloc(1, sizeof *a);
    node *nd = calloc(1, sizeof *nd);
    a->private_data = nd;
    a->release = release_array;
    uint8_t o1 = fz_u8(in), o2 = fz_u8(in);
    a->offset = o1 & 7;
    a->length = length;
    if (wild) {
        a->offset = (int64_t)fz_bytes(in, 8);
        a->length = (int64_t)fz_bytes(in, 8);
        *ok = 0;
    }
    int64_t rows = wild ? 0 : a->offset + a->length;
    a->n_buffers = 2;
    if ((o1 >> 3) == 1)
        a->n_buffers = 1, *ok = 0;
    else if ((o1 >> 3) == 2)
        a->n_buffers = 3, *ok = 0;
    a->buffers = nd->buf_ptrs;
    size_t w = t ? fb_type_width(t) : 4;
    if (!((o1 >> 3) == 3 && rows > 0)) { /* else: no value buffer */
        nd->bufs[1] = malloc((size_t)rows * w + (rows == 0));
        for (int64_t i = 0; i < rows; i++)
            if (t)
                fz_value(in, t, with_value_pool, (uint8_t *)nd->bufs[1] + (size_t)i * w);
            else
                memset((uint8_t *)nd->bufs[1] + (size_t)i * w, fz_u8(in), w);
    } else {
        *ok = 0;
    }
    int vmode = o2 & 3; /* 0 none, 1 bitmap with true count, 2 bitmap with -1, 3 bitmap with a count of 0 */
    if (vmode) {
        size_t nb = ((size_t)rows + 7) / 8;
        nd->bufs[0] = malloc(nb ? nb : 1);
        for (size_t i = 0; i < nb; i++)
            ((uint8_t *)nd->bufs[0])[i] = fz_u8(in);
        int64_t nulls = 0;
        for (int64_t i = wild ? rows : a->offset; i < rows; i++)
            nulls += !((((uint8_t *)nd->bufs[0])[i >> 3] >> (i & 7)) & 1);
        a->null_count = vmode == 1 ? nulls : vmode == 2 ? -1 : 0;
    } else {
        a->null_count = (o2 >> 2) & 1 ? (int64_t)(o2 >> 3) : 0; /* > 0 without a bitmap: refused */
        if (a->null_count > 0)
            *ok = 0;
    }
    if (wild && (o2 & 0x80))
        a->null_count = -(int64_t)(o2 & 0x7F);
    for (int i = 0; i < 3; i++)
        nd->buf_ptrs[i] = nd->bufs[i];
    return a;
}

typedef struct expect_col {
    fb_type type;
    const struct ArrowArray *array; /* the child (codes for a dictionary) */
    const struct ArrowArray *dict;
    fb_type dict_type;
} expect_col;

static int bitv(const void *b, int64_t i) { return (((const uint8_t *)b)[i >> 3] >> (i & 7)) & 1; }

/* The view equals what the array's buffers say at row (array offset + extra + i). */
static void check_view(const fb_column *c, fb_type t, const struct ArrowArray *a, int64_t extra, int64_t length,
                       const char *what)
{
    FZ_CHECK(c->type == t, "%s: type %s, expected %s", what, fb_type_name(c->type), fb_type_name(t));
    FZ_CHECK(c->length == length, "%s: length %lld, expected %lld", what, (long long)c->length, (long long)length);
    size_t w = fb_type_width(t);
    for (int64_t i = 0; i < length; i++) {
        int64_t r = a->offset + extra + i;
        int want_valid = a->null_count == 0 || !a->buffers[0] ? 1 : bitv(a->buffers[0], r);
        FZ_CHECK(fz_valid(c, i) == want_valid, "%s row %lld: validity %d, expected %d", what, (long long)i,
                 fz_valid(c, i), want_valid);
        FZ_CHECK(!memcmp(fz_at(c, i), (const uint8_t *)a->buffers[1] + (size_t)r * w, w), "%s row %lld: value differs",
                 what, (long long)i);
    }
}

static void owner_release(void *owner)
{
    FZ_CHECK(owner == &g_owner_releases, "owner pointer");
    g_owner_releases++;
}

/* FZ_STATS=1 prints what the inputs reached. */
static int64_t st_inputs, st_correct, st_imported, st_checked_cols, st_dict_cols, st_round_trips, st_wild;
static void print_stats(void)
{
    fprintf(stderr, "fuzz_arrow: %lld inputs (%lld built correct, %lld wild), %lld imported, %lld columns checked "
                    "(%lld dictionaries), %lld round trips\n", (long long)st_inputs, (long long)st_correct,
            (long long)st_wild, (long long)st_imported, (long long)st_checked_cols, (long long)st_dict_cols,
            (long long)st_round_trips);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    fz_open_variants(1);
    fb_ctx *ctx = fz_ctx[0];
    static int stats_on = -1;
    if (stats_on < 0 && (stats_on = getenv("FZ_STATS") != NULL))
        atexit(print_stats);
    st_inputs++;
    size_t mem0 = fb_ctx_memory_used(ctx);
    g_schema_releases = g_array_releases = g_owner_releases = g_top_schema = g_top_array = 0;

    uint8_t top = fz_u8(&in), wild_bits = fz_u8(&in);
    int ok = 1; /* the harness built a correct record batch of supported types */
    const char *top_format = "+s";
    if ((top & 7) == 7) {
        top_format = formats[fz_pick(&in, N_FORMATS)];
        ok = 0;
    }
    int64_t n_children = fz_pick(&in, MAX_CHILDREN + 1);
    struct ArrowSchema *schema = new_schema(top_format, NULL);
    schema->release = release_top_schema;
    struct ArrowArray *array = calloc(1, sizeof *array);
    node *top_nd = calloc(1, sizeof *top_nd);
    array->private_data = top_nd;
    array->release = release_top_array;
    array->length = fz_pick(&in, MAX_ROWS + 1);
    array->offset = fz_pick(&in, 5);
    array->n_buffers = 1;
    array->buffers = top_nd->buf_ptrs;
    if ((top >> 3) & 1) { /* struct-level validity: refused when null_count != 0 */
        top_nd->bufs[0] = malloc(((size_t)(array->offset + array->length) + 7) / 8 + 1);
        memset(top_nd->bufs[0], fz_u8(&in), ((size_t)(array->offset + array->length) + 7) / 8 + 1);
        top_nd->buf_ptrs[0] = top_nd->bufs[0];
        array->null_count = (top >> 4) & 1 ? -1 : 0;
        if (array->null_count)
            ok = 0;
    }
    if ((wild_bits & 0xF0) == 0xF0) { /* wild struct sizes */
        array->length = (int64_t)fz_bytes(&in, 8);
        array->offset = (int64_t)fz_bytes(&in, 8);
        ok = 0;
    }
    int wild_children = (wild_bits & 0x0F) == 0x0F;
    int64_t need;
    if (__builtin_add_overflow(array->offset, array->length, &need))
        need = -1;
    schema->n_children = array->n_children = n_children;
    schema->children = ((node *)schema->private_data)->schema_children;
    array->children = top_nd->array_children;
    if ((top >> 5) == 1) { /* counts that differ */
        array->n_children = n_children + 1 - 2 * (n_children > 0);
        ok = 0;
    }
    expect_col exp[MAX_CHILDREN];
    memset(exp, 0, sizeof exp);
    char names[MAX_CHILDREN][8];
    for (int64_t i = 0; i < n_children; i++) {
        uint8_t c = fz_u8(&in), d = fz_u8(&in);
        const char *f = formats[fz_pick(&in, N_FORMATS)];
        fb_type t = format_type(f);
        int dict = (c & 3) == 3;
        if (!t && !dict)
            ok = 0;
        snprintf(names[i], sizeof names[i], "c%d", (int)i);
        struct ArrowSchema *cs = new_schema(f, (c & 4) ? names[i] : NULL);
        int64_t len = wild_children || need < 0 || need > MAX_ROWS * 2 ? 0 : need + (int64_t)((c >> 3) & 3);
        if ((c >> 5) == 1 && len > 0) { /* too short for the struct */
            len--;
            if (len < need)
                ok = 0;
        }
        struct ArrowArray *ca = new_array(&in, t, len, wild_children, &ok, (d & 1) ? 0 : 6);
        exp[i].type = t;
        exp[i].array = ca;
        if (dict) {
            const char *df = formats[fz_pick(&in, N_FORMATS)];
            fb_type dt = format_type(df);
            if (!t || fz_is_float(t) || t == FB_TYPE_DATE32)
                ok = 0; /* codes must be integers */
            if (!(d & 2)) {
                cs->dictionary = new_schema(df, NULL);
            } else {
                ok = 0; /* a dictionary in one of the two only */
            }
            if (!(d & 4) || (d & 2)) {
                int dok = 1;
                ca->dictionary = new_array(&in, dt, fz_pick(&in, 9), 0, &dok, 0);
                exp[i].dict = ca->dictionary;
                if (dt && !dok)
                    ok = 0;
            } else {
                ok = 0;
            }
            exp[i].dict_type = dt;
        }
        if ((c >> 5) == 2) { /* a released child (the struct still owns the memory) */
            int64_t rs = g_schema_releases, ra = g_array_releases;
            if (d & 8) {
                ca->release(ca);
                ca->release = noop_array_release;
                noop_array_release(ca);
            } else {
                cs->release(cs);
                cs->release = noop_schema_release;
                noop_schema_release(cs);
            }
            g_schema_releases = rs, g_array_releases = ra;
            exp[i].dict = NULL;
            ok = 0;
        }
        ((node *)schema->private_data)->schema_children[i] = cs;
        top_nd->array_children[i] = ca;
        if ((c >> 5) == 3 && (d & 0x10)) { /* a NULL child pointer in the list (the node still frees it) */
            if (d & 0x20)
                schema->children = NULL;
            else
                array->children = NULL;
            if (n_children)
                ok = 0;
        }
    }
    if (array->n_children > MAX_CHILDREN)
        array->n_children = MAX_CHILDREN; /* keep the lists within their arrays */

    /* Borrowed single-column import first (nothing moves). */
    for (int64_t i = 0; i < n_children && schema->children && array->children; i++) {
        fb_arrow_column col;
        fb_status st = fb_arrow_import_column(ctx, schema->children[i], array->children[i], &col);
        if (st != FB_OK)
            FZ_CHECK(fb_last_error(ctx)[0] != '\0', "import_column refused without a message");
        else if (!wild_children && exp[i].type)
            check_view(&col.column, exp[i].type, exp[i].array, 0, exp[i].array->length, "import_column");
    }

    struct ArrowSchema schema_copy = *schema;
    struct ArrowArray array_copy = *array;
    fb_arrow_table *t = NULL;
    st_correct += ok;
    st_wild += wild_children || (wild_bits & 0xF0) == 0xF0;
    fb_status st = fb_arrow_import_table(ctx, schema, array, &t);
    st_imported += st == FB_OK;
    if (st != FB_OK) {
        FZ_CHECK(!ok, "a correct record batch was refused: %s (%s)", fb_status_name(st), fb_last_error(ctx));
        FZ_CHECK(t == NULL && fb_last_error(ctx)[0] != '\0', "refused without a message or with a table");
        FZ_CHECK(!memcmp(&schema_copy, schema, sizeof *schema) && !memcmp(&array_copy, array, sizeof *array),
                 "a refused import changed the caller's structs");
        FZ_CHECK(g_schema_releases == 0 && g_array_releases == 0, "a refused import released something");
        schema->release(schema);
        array->release(array);
    } else {
        FZ_CHECK(schema->release == NULL && array->release == NULL, "an import did not move the structs");
        FZ_CHECK(g_schema_releases == 0 && g_array_releases == 0, "an import released something");
        const fb_table *view = fb_arrow_table_view(t);
        FZ_CHECK(view && (int64_t)view->n_columns == n_children, "%zu columns, expected %lld", view ? view->n_columns : 0,
                 (long long)n_children);
        for (size_t i = 0; i < view->n_columns; i++) {
            const fb_arrow_column *ac = fb_arrow_table_column(t, i);
            FZ_CHECK(ac && view->columns[i].type == ac->column.type, "column %zu view", i);
            if (wild_children || (wild_bits & 0xF0) == 0xF0)
                continue; /* sizes that no buffer has: not read */
            check_view(&view->columns[i], exp[i].type, exp[i].array, array_copy.offset, array_copy.length, "table column");
            st_checked_cols++;
            st_dict_cols += ac->is_dictionary;
            FZ_CHECK(ac->is_dictionary == (exp[i].dict != NULL), "column %zu: is_dictionary %d", i, ac->is_dictionary);
            if (ac->is_dictionary && exp[i].dict_type)
                check_view(&ac->dictionary, exp[i].dict_type, exp[i].dict, 0, exp[i].dict->length, "dictionary");
            else if (ac->is_dictionary)
                FZ_CHECK(ac->dictionary.type == FB_TYPE_INVALID, "column %zu: a dictionary of an unknown format has type %s",
                         i, fb_type_name(ac->dictionary.type));
        }
        FZ_CHECK(fb_arrow_table_column(t, view->n_columns) == NULL, "column past the end");
        /* Export the imported columns and import them back. */
        if (!wild_children && (wild_bits & 0xF0) != 0xF0) {
            struct ArrowSchema es;
            struct ArrowArray ea;
            fb_status xs = fb_arrow_export_table(ctx, view, owner_release, &g_owner_releases, &es, &ea);
            if (view->n_columns > 0 || xs == FB_OK) {
                FZ_CHECK(xs == FB_OK, "export of an imported table: %s (%s)", fb_status_name(xs), fb_last_error(ctx));
                fb_arrow_table *t2 = NULL;
                FZ_OK(ctx, fb_arrow_import_table(ctx, &es, &ea, &t2));
                const fb_table *v2 = fb_arrow_table_view(t2);
                FZ_CHECK(v2->n_columns == view->n_columns, "round trip: %zu columns", v2->n_columns);
                for (size_t i = 0; i < v2->n_columns; i++) {
                    const fb_column *a = &view->columns[i], *b = &v2->columns[i];
                    FZ_CHECK(a->type == b->type && a->length == b->length, "round trip column %zu", i);
                    for (int64_t r = 0; r < a->length; r++) {
                        FZ_CHECK(fz_valid(a, r) == fz_valid(b, r), "round trip column %zu row %lld validity", i, (long long)r);
                        FZ_CHECK(!memcmp(fz_at(a, r), fz_at(b, r), fb_type_width(a->type)), "round trip value");
                    }
                }
                FZ_CHECK(g_owner_releases == 0, "owner released while the export lives");
                fb_arrow_table_free(t2);
                FZ_CHECK(g_owner_releases == 1, "owner released %lld times", (long long)g_owner_releases);
                st_round_trips++;
            }
        }
        fb_arrow_table_free(t);
    }
    FZ_CHECK(g_top_schema == 1 && g_top_array == 1, "release callbacks ran %lld (schema) and %lld (array) times",
             (long long)g_top_schema, (long long)g_top_array);
    free(schema);
    free(array);
    FZ_NO_CTX_LEAK(ctx, mem0);
    return 0;
}
