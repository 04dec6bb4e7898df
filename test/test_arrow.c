/* test_arrow.c - the Arrow C Data Interface (fb_arrow.h) against a hand-written Arrow producer and
 * consumer: zero-copy views with offsets and validity (checked by running a kernel over them against a
 * scalar loop over the raw Arrow buffers), dictionaries, record batches, streams, named errors for
 * unsupported types, move semantics, and exported arrays whose release runs exactly once however the
 * consumer releases the parent and its children. (The pyarrow round trip is in arrow_pyarrow_check.py.) */
#include "fb_test.h"

#include "fb/fb_arrow.h"

#include <stdlib.h>
#include <string.h>

/* ---- a minimal Arrow producer: every array and schema counts its releases ---------------------- */

static int arrays_released, schemas_released;

typedef struct prod_array {
    const void *buffers[2];
    struct ArrowArray **children;
    int64_t n_children;
} prod_array;

static void prod_release_array(struct ArrowArray *a)
{
    prod_array *p = a->private_data;
    for (int64_t i = 0; i < p->n_children; i++) {
        if (a->children[i]->release)
            a->children[i]->release(a->children[i]);
        free(a->children[i]);
    }
    if (a->dictionary) {
        if (a->dictionary->release)
            a->dictionary->release(a->dictionary);
        free(a->dictionary);
    }
    free(p->children);
    free(p);
    a->release = NULL;
    arrays_released++;
}

static void prod_release_schema(struct ArrowSchema *s)
{
    for (int64_t i = 0; i < s->n_children; i++) {
        if (s->children[i]->release)
            s->children[i]->release(s->children[i]);
        free(s->children[i]);
    }
    free(s->children);
    if (s->dictionary) {
        if (s->dictionary->release)
            s->dictionary->release(s->dictionary);
        free(s->dictionary);
    }
    s->release = NULL;
    schemas_released++;
}

static void prod_primitive(struct ArrowSchema *s, struct ArrowArray *a, const char *format, const char *name,
                           const void *data, const uint8_t *validity, int64_t length, int64_t offset,
                           int64_t null_count)
{
    memset(s, 0, sizeof *s);
    memset(a, 0, sizeof *a);
    s->format = format;
    s->name = name;
    s->flags = ARROW_FLAG_NULLABLE;
    s->release = prod_release_schema;
    prod_array *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->buffers[0] = validity;
    p->buffers[1] = data;
    a->length = length;
    a->offset = offset;
    a->null_count = null_count;
    a->n_buffers = 2;
    a->buffers = p->buffers;
    a->release = prod_release_array;
    a->private_data = p;
}

/* A struct array over n children made by prod_primitive into heap structs. */
static void prod_struct(struct ArrowSchema *s, struct ArrowArray *a, struct ArrowSchema **cs, struct ArrowArray **ca,
                        int64_t n, int64_t length, int64_t offset)
{
    memset(s, 0, sizeof *s);
    memset(a, 0, sizeof *a);
    s->format = "+s";
    s->n_children = n;
    s->children = calloc((size_t)n, sizeof *s->children);
    memcpy(s->children, cs, sizeof *cs * (size_t)n);
    s->release = prod_release_schema;
    prod_array *p = calloc(1, sizeof *p);
    p->n_children = n;
    p->children = calloc((size_t)n, sizeof *p->children);
    memcpy(p->children, ca, sizeof *ca * (size_t)n);
    a->length = length;
    a->offset = offset;
    a->n_buffers = 1;
    a->buffers = p->buffers;
    a->n_children = n;
    a->children = p->children;
    a->release = prod_release_array;
    a->private_data = p;
}

static void heap_primitive(struct ArrowSchema **s, struct ArrowArray **a, const char *format, const char *name,
                           const void *data, const uint8_t *validity, int64_t length, int64_t offset,
                           int64_t null_count)
{
    *s = calloc(1, sizeof **s);
    *a = calloc(1, sizeof **a);
    prod_primitive(*s, *a, format, name, data, validity, length, offset, null_count);
}

static fb_ctx *ctx;
static uint64_t rng;

static int setup(void **state)
{
    (void)state;
    return fb_ctx_create(NULL, &ctx) == FB_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fb_ctx_destroy(ctx);
    return 0;
}

/* ---- types ------------------------------------------------------------------------------------- */

static void test_types(void **state)
{
    (void)state;
    for (int t = FB_TYPE_INT8; t < FB_TYPE_COUNT; t++) {
        const char *f = fb_arrow_format((fb_type)t);
        assert_non_null(f);
        fb_type back = FB_TYPE_INVALID;
        assert_fb_ok(ctx, fb_arrow_type(ctx, f, &back));
        assert_int_equal(back, t);
    }
    assert_null(fb_arrow_format(FB_TYPE_INVALID));
    static const struct {
        const char *format, *name;
    } bad[] = {{"b", "boolean"}, {"u", "utf8"}, {"e", "float16"}, {"d:12,2", "decimal"}, {"tsu:UTC", "timestamp"},
               {"+l", "list"},   {"n", "null"}, {"tdm", "date64"}, {"?", "unknown"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fb_type t;
        assert_fb_status(ctx, fb_arrow_type(ctx, bad[i].format, &t), FB_ERR_UNSUPPORTED_TYPE);
        assert_non_null(strstr(fb_last_error(ctx), bad[i].name));
        assert_non_null(strstr(fb_last_error(ctx), bad[i].format));
    }
    fb_type t;
    assert_fb_status(ctx, fb_arrow_type(ctx, NULL, &t), FB_ERR_INVALID_ARG);
}

/* ---- primitive arrays: the view is the Arrow array (offset, validity) --------------------------- */

static void test_primitive_views(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        int64_t n = (int64_t)(fbt_next(&rng) % 3000), off = (int64_t)(fbt_next(&rng) % 70);
        int32_t *v = malloc(sizeof *v * (size_t)(n + off + 1));
        uint8_t *valid = calloc((size_t)(n + off + 8) / 8 + 1, 1);
        int64_t nulls = 0;
        for (int64_t i = 0; i < n + off; i++) {
            v[i] = (int32_t)fbt_next(&rng);
            if (fbt_next(&rng) % 4) /* ~25% nulls */
                valid[i >> 3] |= (uint8_t)(1u << (i & 7));
            else if (i >= off)
                nulls++;
        }
        int with_nulls = round % 3 != 0;
        struct ArrowSchema s;
        struct ArrowArray a;
        prod_primitive(&s, &a, "i", "x", v, with_nulls ? valid : NULL, n, off, with_nulls ? nulls : 0);
        fb_arrow_column col;
        assert_fb_ok(ctx, fb_arrow_import_column(ctx, &s, &a, &col));
        assert_int_equal(col.column.type, FB_TYPE_INT32);
        assert_int_equal(col.column.length, n);
        assert_int_equal(col.column.offset, off);
        assert_ptr_equal(col.column.data, v); /* zero copy */
        assert_false(col.is_dictionary);
        /* A kernel over the view against a loop over the raw Arrow buffers. */
        int32_t c = (int32_t)fbt_next(&rng);
        uint32_t *sel = malloc(sizeof *sel * (size_t)(n + 1));
        int64_t got = -1;
        assert_fb_ok(ctx, fb_select_cmp(ctx, &col.column, FB_CMP_GT, &c, NULL, 0, sel, n, &got));
        int64_t k = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t b = off + i;
            int is_valid = !with_nulls || ((valid[b >> 3] >> (b & 7)) & 1);
            if (is_valid && v[b] > c) {
                assert_true(k < got);
                assert_int_equal(sel[k], i);
                k++;
            }
        }
        assert_int_equal(k, got);
        a.release(&a);
        s.release(&s);
        free(sel);
        free(v);
        free(valid);
    }
}

static void test_primitive_errors(void **state)
{
    (void)state;
    int64_t x[4] = {1, 2, 3, 4};
    struct ArrowSchema s;
    struct ArrowArray a;
    fb_arrow_column col;
    prod_primitive(&s, &a, "l", "x", x, NULL, 4, 0, 1); /* a null but no bitmap */
    assert_fb_status(ctx, fb_arrow_import_column(ctx, &s, &a, &col), FB_ERR_INVALID_ARG);
    a.null_count = -1; /* unknown and no bitmap: no nulls */
    assert_fb_ok(ctx, fb_arrow_import_column(ctx, &s, &a, &col));
    assert_null(col.column.validity);
    a.n_buffers = 3;
    assert_fb_status(ctx, fb_arrow_import_column(ctx, &s, &a, &col), FB_ERR_INVALID_ARG);
    a.n_buffers = 2;
    a.length = -1;
    assert_fb_status(ctx, fb_arrow_import_column(ctx, &s, &a, &col), FB_ERR_INVALID_ARG);
    a.length = 4;
    s.format = "b";
    assert_fb_status(ctx, fb_arrow_import_column(ctx, &s, &a, &col), FB_ERR_UNSUPPORTED_TYPE);
    assert_non_null(strstr(fb_last_error(ctx), "boolean"));
    s.format = "l";
    a.release(&a);
    assert_fb_status(ctx, fb_arrow_import_column(ctx, &s, &a, &col), FB_ERR_INVALID_ARG); /* released */
    s.release(&s);
    assert_fb_status(ctx, fb_arrow_import_column(ctx, NULL, &a, &col), FB_ERR_INVALID_ARG);
}

/* ---- dictionaries --------------------------------------------------------------------------------- */

static void test_dictionary(void **state)
{
    (void)state;
    int8_t codes[6] = {2, 0, 1, 2, 2, 0};
    int64_t dict[3] = {-7, 1000, INT64_MIN};
    struct ArrowSchema s;
    struct ArrowArray a;
    prod_primitive(&s, &a, "c", "k", codes, NULL, 5, 1, 0);
    heap_primitive(&s.dictionary, &a.dictionary, "l", NULL, dict, NULL, 3, 0, 0);
    fb_arrow_column col;
    assert_fb_ok(ctx, fb_arrow_import_column(ctx, &s, &a, &col));
    assert_true(col.is_dictionary);
    assert_int_equal(col.column.type, FB_TYPE_INT8);
    assert_int_equal(col.column.offset, 1);
    assert_int_equal(col.dictionary.type, FB_TYPE_INT64);
    assert_int_equal(col.dictionary.length, 3);
    for (int64_t i = 0; i < col.column.length; i++) {
        int8_t code = ((const int8_t *)col.column.data)[col.column.offset + i];
        assert_int_equal(((const int64_t *)col.dictionary.data)[code], dict[codes[1 + i]]);
    }
    /* A string dictionary: codes usable, dictionary only as Arrow. */
    s.dictionary->format = "u";
    assert_fb_ok(ctx, fb_arrow_import_column(ctx, &s, &a, &col));
    assert_true(col.is_dictionary);
    assert_int_equal(col.dictionary.type, FB_TYPE_INVALID);
    assert_ptr_equal(col.dictionary_array, a.dictionary);
    /* Float codes are refused. */
    s.format = "g";
    assert_fb_status(ctx, fb_arrow_import_column(ctx, &s, &a, &col), FB_ERR_UNSUPPORTED_TYPE);
    s.format = "c";
    a.release(&a);
    s.release(&s);
}

/* ---- record batches ------------------------------------------------------------------------------ */

static void make_batch(struct ArrowSchema *s, struct ArrowArray *a, int32_t *k, int64_t *v, uint8_t *vvalid,
                       int64_t n, int64_t offset, const char *k_format)
{
    struct ArrowSchema *cs[2];
    struct ArrowArray *ca[2];
    heap_primitive(&cs[0], &ca[0], k_format, "k", k, NULL, n, 0, 0);
    heap_primitive(&cs[1], &ca[1], "l", "v", v, vvalid, n, 0, -1);
    prod_struct(s, a, cs, ca, 2, n - offset, offset);
}

static void test_table(void **state)
{
    (void)state;
    enum { N = 1000 };
    int32_t k[N];
    int64_t v[N];
    uint8_t vvalid[N / 8 + 1] = {0};
    for (int i = 0; i < N; i++) {
        k[i] = (int32_t)(fbt_next(&rng) % 50) - 25;
        v[i] = (int64_t)fbt_next(&rng);
        if (i % 7)
            vvalid[i >> 3] |= (uint8_t)(1u << (i & 7));
    }
    struct ArrowSchema s;
    struct ArrowArray a;
    arrays_released = schemas_released = 0;
    make_batch(&s, &a, k, v, vvalid, N, 10, "i");
    fb_arrow_table *t = NULL;
    assert_fb_ok(ctx, fb_arrow_import_table(ctx, &s, &a, &t));
    assert_null(s.release); /* moved */
    assert_null(a.release);
    const fb_table *view = fb_arrow_table_view(t);
    int64_t len;
    assert_fb_ok(ctx, fb_table_validate(ctx, view, &len));
    assert_int_equal(len, N - 10);
    assert_int_equal(view->n_columns, 2);
    assert_string_equal(view->names[0], "k");
    assert_string_equal(view->names[1], "v");
    for (int64_t i = 0; i < len; i++) {
        assert_int_equal(((const int32_t *)view->columns[0].data)[view->columns[0].offset + i], k[10 + i]);
        assert_int_equal(fb_column_is_valid(&view->columns[1], i), (10 + i) % 7 != 0);
    }
    assert_non_null(fb_arrow_table_column(t, 1));
    assert_null(fb_arrow_table_column(t, 2));
    assert_int_equal(arrays_released, 0);
    fb_arrow_table_free(t);
    assert_int_equal(arrays_released, 3); /* the struct and both children, once each */
    assert_int_equal(schemas_released, 3);

    /* A column of an unsupported type: named error, nothing moved or released. */
    arrays_released = schemas_released = 0;
    make_batch(&s, &a, k, v, vvalid, N, 0, "u");
    assert_fb_status(ctx, fb_arrow_import_table(ctx, &s, &a, &t), FB_ERR_UNSUPPORTED_TYPE);
    assert_null(t);
    assert_non_null(strstr(fb_last_error(ctx), "'k'"));
    assert_non_null(strstr(fb_last_error(ctx), "utf8"));
    assert_non_null(s.release);
    assert_non_null(a.release);
    assert_int_equal(arrays_released, 0);
    a.release(&a);
    s.release(&s);
    /* Not a struct. */
    prod_primitive(&s, &a, "i", "k", k, NULL, N, 0, 0);
    assert_fb_status(ctx, fb_arrow_import_table(ctx, &s, &a, &t), FB_ERR_UNSUPPORTED_TYPE);
    a.release(&a);
    s.release(&s);
}

/* ---- streams ------------------------------------------------------------------------------------- */

typedef struct prod_stream {
    int next, batches, fail_at;
    int32_t *k;
    int64_t *v;
    uint8_t *vvalid;
} prod_stream;

static int stream_schema(struct ArrowArrayStream *st, struct ArrowSchema *out)
{
    prod_stream *p = st->private_data;
    struct ArrowArray a;
    make_batch(out, &a, p->k, p->v, p->vvalid, 100, 0, "i");
    a.release(&a);
    return 0;
}

static int stream_next(struct ArrowArrayStream *st, struct ArrowArray *out)
{
    prod_stream *p = st->private_data;
    if (p->next == p->fail_at)
        return 5; /* EIO */
    if (p->next == p->batches) {
        memset(out, 0, sizeof *out); /* end: a released array */
        return 0;
    }
    struct ArrowSchema s;
    make_batch(&s, out, p->k, p->v, p->vvalid, 100, p->next++, "i");
    s.release(&s);
    return 0;
}

static const char *stream_error(struct ArrowArrayStream *st)
{
    (void)st;
    return "the producer broke";
}

static void stream_release(struct ArrowArrayStream *st)
{
    st->release = NULL;
}

static void test_stream(void **state)
{
    (void)state;
    int32_t k[100];
    int64_t v[100];
    uint8_t vv[13];
    memset(vv, 0xff, sizeof vv);
    for (int i = 0; i < 100; i++)
        k[i] = i, v[i] = -i;
    prod_stream p = {0, 3, -1, k, v, vv};
    struct ArrowArrayStream st = {stream_schema, stream_next, stream_error, stream_release, &p};
    int batches = 0;
    for (;;) {
        fb_arrow_table *t = NULL;
        assert_fb_ok(ctx, fb_arrow_stream_next(ctx, &st, &t));
        if (!t)
            break;
        const fb_table *view = fb_arrow_table_view(t);
        assert_int_equal(view->columns[0].length, 100 - batches); /* batch b has offset b */
        assert_int_equal(((const int32_t *)view->columns[0].data)[view->columns[0].offset], batches);
        batches++;
        fb_arrow_table_free(t);
    }
    assert_int_equal(batches, 3);
    p.next = 0;
    p.fail_at = 1;
    fb_arrow_table *t = NULL;
    assert_fb_ok(ctx, fb_arrow_stream_next(ctx, &st, &t));
    fb_arrow_table_free(t);
    assert_fb_status(ctx, fb_arrow_stream_next(ctx, &st, &t), FB_ERR_IO);
    assert_non_null(strstr(fb_last_error(ctx), "the producer broke"));
    assert_null(t);
    st.release(&st);
}

/* ---- export -------------------------------------------------------------------------------------- */

static int owner_released;
static void owner_release(void *owner)
{
    assert_ptr_equal(owner, &owner_released);
    owner_released++;
}

static void test_export(void **state)
{
    (void)state;
    enum { N = 777 };
    int64_t a64[N];
    float f32[N + 5];
    uint8_t fvalid[(N + 5) / 8 + 1] = {0};
    int64_t expect_nulls = 0;
    for (int i = 0; i < N + 5; i++) {
        if (i < N)
            a64[i] = (int64_t)fbt_next(&rng);
        f32[i] = (float)(int32_t)fbt_next(&rng);
        if (fbt_next(&rng) % 3)
            fvalid[i >> 3] |= (uint8_t)(1u << (i & 7));
        else if (i >= 5)
            expect_nulls++;
    }
    fb_column cols[2] = {fb_column_make(FB_TYPE_INT64, a64, N, NULL), fb_column_make(FB_TYPE_FLOAT32, f32, N, fvalid)};
    cols[1].offset = 5;
    const char *names[2] = {"build_row", "value"};
    fb_table tab = {2, cols, names};

    for (int mode = 0; mode < 3; mode++) {
        struct ArrowSchema s;
        struct ArrowArray a;
        owner_released = 0;
        assert_fb_ok(ctx, fb_arrow_export_table(ctx, &tab, owner_release, &owner_released, &s, &a));
        assert_string_equal(s.format, "+s");
        assert_int_equal(s.n_children, 2);
        assert_string_equal(s.children[0]->format, "l");
        assert_string_equal(s.children[1]->format, "f");
        assert_string_equal(s.children[1]->name, "value");
        assert_int_equal(a.length, N);
        assert_ptr_equal(a.children[0]->buffers[1], a64); /* zero copy */
        assert_int_equal(a.children[1]->offset, 5);
        assert_int_equal(a.children[1]->null_count, expect_nulls);
        if (mode == 0) { /* release the parent: children go with it */
            a.release(&a);
            assert_null(a.release);
            assert_int_equal(owner_released, 1);
            s.release(&s);
        } else if (mode == 1) { /* move a child out, release the parent, then the child */
            struct ArrowArray moved = *a.children[1];
            a.children[1]->release = NULL;
            struct ArrowSchema moved_s = *s.children[1];
            s.children[1]->release = NULL;
            a.release(&a);
            s.release(&s);
            assert_int_equal(owner_released, 0);
            assert_ptr_equal(moved.buffers[1], f32); /* still readable */
            moved.release(&moved);
            moved_s.release(&moved_s);
            assert_int_equal(owner_released, 1);
        } else { /* import what was exported: the same views */
            fb_arrow_table *t = NULL;
            assert_fb_ok(ctx, fb_arrow_import_table(ctx, &s, &a, &t));
            const fb_table *view = fb_arrow_table_view(t);
            for (int c = 0; c < 2; c++) {
                assert_int_equal(view->columns[c].type, cols[c].type);
                assert_int_equal(view->columns[c].offset, cols[c].offset);
                assert_ptr_equal(view->columns[c].data, cols[c].data);
                assert_string_equal(view->names[c], names[c]);
            }
            assert_ptr_equal(view->columns[1].validity, fvalid);
            assert_int_equal(owner_released, 0);
            fb_arrow_table_free(t);
            assert_int_equal(owner_released, 1);
        }
    }
    /* Bad input: nothing exported, release not called. */
    owner_released = 0;
    cols[1].length = N - 1;
    struct ArrowSchema s;
    struct ArrowArray a;
    assert_fb_status(ctx, fb_arrow_export_table(ctx, &tab, owner_release, &owner_released, &s, &a),
                     FB_ERR_LENGTH_MISMATCH);
    cols[1].length = N;
    cols[1].type = FB_TYPE_INVALID;
    assert_fb_status(ctx, fb_arrow_export_table(ctx, &tab, owner_release, &owner_released, &s, &a),
                     FB_ERR_UNSUPPORTED_TYPE);
    assert_int_equal(owner_released, 0);
    /* No columns: an empty struct. */
    fb_table empty = {0, NULL, NULL};
    assert_fb_ok(ctx, fb_arrow_export_table(ctx, &empty, owner_release, &owner_released, &s, &a));
    assert_int_equal(a.n_children, 0);
    a.release(&a);
    s.release(&s);
    assert_int_equal(owner_released, 1);
}

int main(void)
{
    rng = fbt_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),      cmocka_unit_test(test_primitive_views), cmocka_unit_test(test_primitive_errors),
        cmocka_unit_test(test_dictionary), cmocka_unit_test(test_table),           cmocka_unit_test(test_stream),
        cmocka_unit_test(test_export),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
