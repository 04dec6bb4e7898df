/* test_core.c - version, status names, options, context lifecycle, ISA forcing, allocator hooks and
 * memory limit, column and table validation, per-thread error messages. */
#include "fb_test.h"

#include <pthread.h>

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(fb_version(), FB_VERSION_NUMBER);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", FB_VERSION_MAJOR, FB_VERSION_MINOR, FB_VERSION_PATCH);
    assert_string_equal(fb_version_string(), expect);
}

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(fb_status_name(FB_OK), "FB_OK");
    assert_string_equal(fb_status_name(FB_ERR_INVALID_ARG), "FB_ERR_INVALID_ARG");
    assert_string_equal(fb_status_name(FB_ERR_INTERNAL), "FB_ERR_INTERNAL");
    assert_string_equal(fb_status_name((fb_status)FB_STATUS_COUNT), "FB_ERR_UNKNOWN");
    assert_string_equal(fb_status_name((fb_status)-1), "FB_ERR_UNKNOWN");
    /* pinned values */
    assert_int_equal(FB_ERR_OUT_OF_MEMORY, 4);
    assert_int_equal(FB_ERR_OPENCL, 9);
    for (int s = 0; s < FB_STATUS_COUNT; s++)
        assert_string_not_equal(fb_status_name((fb_status)s), "FB_ERR_UNKNOWN");
}

static void test_types(void **state)
{
    (void)state;
    assert_int_equal(fb_type_width(FB_TYPE_INT8), 1);
    assert_int_equal(fb_type_width(FB_TYPE_UINT16), 2);
    assert_int_equal(fb_type_width(FB_TYPE_DATE32), 4);
    assert_int_equal(fb_type_width(FB_TYPE_FLOAT64), 8);
    assert_int_equal(fb_type_width(FB_TYPE_INVALID), 0);
    assert_int_equal(fb_type_width((fb_type)99), 0);
    assert_string_equal(fb_type_name(FB_TYPE_DATE32), "date32");
    assert_string_equal(fb_type_name((fb_type)-3), "invalid");
}

static void test_isa_names(void **state)
{
    (void)state;
    for (int i = 0; i < FB_ISA_COUNT; i++) {
        fb_isa parsed;
        assert_fb_ok(NULL, fb_isa_parse(fb_isa_name((fb_isa)i), &parsed));
        assert_int_equal(parsed, i);
    }
    fb_isa parsed;
    assert_fb_status(NULL, fb_isa_parse("sse9", &parsed), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_isa_parse(NULL, &parsed), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_isa_parse("avx2", NULL), FB_ERR_INVALID_ARG);
    assert_true(fb_isa_supported(FB_ISA_SCALAR));
    assert_true(fb_isa_supported(FB_ISA_BASE));
    assert_true(fb_isa_supported(FB_ISA_AUTO));
    assert_false(fb_isa_supported((fb_isa)42));
}

static void test_options_bad_input(void **state)
{
    (void)state;
    assert_fb_status(NULL, fb_options_create(NULL), FB_ERR_INVALID_ARG);
    fb_options *o = NULL;
    assert_fb_ok(NULL, fb_options_create(&o));
    assert_fb_status(NULL, fb_options_set_threads(NULL, 1), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_options_set_threads(o, -1), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_options_set_threads(o, 5000), FB_ERR_INVALID_ARG);
    assert_fb_ok(NULL, fb_options_set_threads(o, 3));
    assert_fb_status(NULL, fb_options_set_isa(o, (fb_isa)17), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_options_set_isa(NULL, FB_ISA_SCALAR), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_options_set_cl_device(o, -7), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_options_set_cl_device(NULL, 0), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_options_set_memory_limit(NULL, 0), FB_ERR_INVALID_ARG);
    fb_allocator half = {NULL, NULL, NULL};
    assert_fb_status(NULL, fb_options_set_allocator(o, &half), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_options_set_allocator(NULL, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_options_set_topology(NULL, "pack:2"), FB_ERR_INVALID_ARG);
    assert_fb_ok(NULL, fb_options_set_allocator(o, NULL));
    fb_ctx *ctx = NULL;
    assert_fb_ok(NULL, fb_ctx_create(o, &ctx));
    assert_int_equal(fb_ctx_threads(ctx), 3);
    fb_ctx_destroy(ctx);
    fb_options_destroy(o);
    fb_options_destroy(NULL);
    fb_ctx_destroy(NULL);
    assert_fb_status(NULL, fb_ctx_create(NULL, NULL), FB_ERR_INVALID_ARG);
    /* NULL contexts are harmless in the accessors */
    assert_int_equal(fb_ctx_threads(NULL), 0);
    assert_int_equal(fb_ctx_memory_used(NULL), 0);
}

/* Every variant the CPU has can be forced; the others give FB_ERR_UNSUPPORTED_ISA. */
static void test_isa_forcing(void **state)
{
    (void)state;
    for (int i = FB_ISA_SCALAR; i < FB_ISA_COUNT; i++) {
        fb_options *o;
        assert_fb_ok(NULL, fb_options_create(&o));
        assert_fb_ok(NULL, fb_options_set_isa(o, (fb_isa)i));
        fb_ctx *ctx = NULL;
        fb_status st = fb_ctx_create(o, &ctx);
        if (fb_isa_supported((fb_isa)i)) {
            assert_fb_ok(NULL, st);
            assert_int_equal(fb_ctx_isa(ctx), i);
        } else {
            assert_fb_status(NULL, st, FB_ERR_UNSUPPORTED_ISA);
            assert_non_null(strstr(fb_last_error(NULL), fb_isa_name((fb_isa)i)));
            assert_null(ctx);
        }
        fb_ctx_destroy(ctx);
        fb_options_destroy(o);
    }
}

/* FB_ISA in the environment applies when the option is not set; a bad value is a clear error. */
static void test_isa_env(void **state)
{
    (void)state;
    const char *old = getenv("FB_ISA");
    char *saved = old ? strdup(old) : NULL;
    fb_ctx *ctx = NULL;
    setenv("FB_ISA", "scalar", 1);
    assert_fb_ok(NULL, fb_ctx_create(NULL, &ctx));
    assert_int_equal(fb_ctx_isa(ctx), FB_ISA_SCALAR);
    fb_ctx_destroy(ctx);
    ctx = NULL;
    /* an explicit option wins over the environment */
    fb_options *o;
    assert_fb_ok(NULL, fb_options_create(&o));
    assert_fb_ok(NULL, fb_options_set_isa(o, FB_ISA_BASE));
    assert_fb_ok(NULL, fb_ctx_create(o, &ctx));
    assert_int_equal(fb_ctx_isa(ctx), FB_ISA_BASE);
    fb_ctx_destroy(ctx);
    ctx = NULL;
    fb_options_destroy(o);
    setenv("FB_ISA", "pentium", 1);
    assert_fb_status(NULL, fb_ctx_create(NULL, &ctx), FB_ERR_INVALID_ARG);
    assert_non_null(strstr(fb_last_error(NULL), "pentium"));
    assert_null(ctx);
    if (saved) {
        setenv("FB_ISA", saved, 1);
        free(saved);
    } else {
        unsetenv("FB_ISA");
    }
}

/* ---- allocator hooks and memory limit ---- */

typedef struct counting {
    size_t live, calls, fail_after;
} counting;

static void *counting_alloc(void *user, size_t size, size_t alignment)
{
    counting *c = user;
    if (c->fail_after && c->calls + 1 >= c->fail_after)
        return NULL;
    c->calls++;
    void *p = NULL;
    if (posix_memalign(&p, alignment < sizeof(void *) ? sizeof(void *) : alignment, size ? size : 1))
        return NULL;
    c->live += size;
    return p;
}

static void counting_free(void *user, void *ptr, size_t size)
{
    counting *c = user;
    c->live -= size;
    free(ptr);
}

static void test_allocator_and_limit(void **state)
{
    (void)state;
    counting c = {0, 0, 0};
    fb_allocator a = {counting_alloc, counting_free, &c};
    fb_options *o;
    assert_fb_ok(NULL, fb_options_create(&o));
    assert_fb_ok(NULL, fb_options_set_allocator(o, &a));
    assert_fb_ok(NULL, fb_options_set_memory_limit(o, 1000));
    fb_ctx *ctx;
    assert_fb_ok(NULL, fb_ctx_create(o, &ctx));
    fb_options_destroy(o);

    void *p = NULL, *q = NULL;
    assert_fb_ok(ctx, fb_ctx_alloc(ctx, 600, 128, &p));
    assert_true(((uintptr_t)p % 128) == 0);
    assert_int_equal(c.live, 600);
    assert_int_equal(fb_ctx_memory_used(ctx), 600);
    assert_fb_status(ctx, fb_ctx_alloc(ctx, 600, 0, &q), FB_ERR_OUT_OF_MEMORY);
    assert_non_null(strstr(fb_last_error(ctx), "limit"));
    assert_null(q);
    assert_fb_status(ctx, fb_ctx_alloc(ctx, 10, 3, &q), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_ctx_alloc(ctx, 10, 8192, &q), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_ctx_alloc(ctx, 10, 8, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_ctx_alloc(NULL, 10, 8, &q), FB_ERR_INVALID_ARG);
    fb_ctx_free(ctx, p, 600);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    assert_int_equal(c.live, 0);
    /* the hook's own failure is reported as out of memory and leaves nothing counted */
    c.fail_after = c.calls + 1;
    assert_fb_status(ctx, fb_ctx_alloc(ctx, 10, 8, &q), FB_ERR_OUT_OF_MEMORY);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    fb_ctx_free(ctx, NULL, 0);
    fb_ctx_destroy(ctx);
}

/* ---- columns and tables ---- */

static void test_column_validation(void **state)
{
    fb_ctx *ctx = *state;
    int32_t v[10] = {0};
    uint8_t valid[2] = {0xF0, 0x01};
    fb_column c = fb_column_make(FB_TYPE_INT32, v, 10, valid);
    assert_fb_ok(ctx, fb_column_validate(ctx, &c));
    int64_t nulls = -1;
    assert_fb_ok(ctx, fb_column_null_count(ctx, &c, &nulls));
    assert_int_equal(nulls, 10 - 5); /* bits 4..7 and 8 are set */
    c.offset = 3;
    c.length = 6; /* rows 3..8: bits 4,5,6,7,8 valid -> row 3 null */
    assert_fb_ok(ctx, fb_column_null_count(ctx, &c, &nulls));
    assert_int_equal(nulls, 1);
    fb_column bad = c;
    bad.type = (fb_type)55;
    assert_fb_status(ctx, fb_column_validate(ctx, &bad), FB_ERR_UNSUPPORTED_TYPE);
    bad = c;
    bad.length = -1;
    assert_fb_status(ctx, fb_column_validate(ctx, &bad), FB_ERR_INVALID_ARG);
    bad = c;
    bad.data = NULL;
    assert_fb_status(ctx, fb_column_validate(ctx, &bad), FB_ERR_INVALID_ARG);
    bad.length = 0; /* an empty column needs no data */
    assert_fb_ok(ctx, fb_column_validate(ctx, &bad));
    bad = c;
    bad.offset = INT64_MAX;
    assert_fb_status(ctx, fb_column_validate(ctx, &bad), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_column_validate(ctx, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_column_null_count(ctx, &c, NULL), FB_ERR_INVALID_ARG);

    fb_column cols[2] = {fb_column_make(FB_TYPE_INT32, v, 10, NULL), fb_column_make(FB_TYPE_INT8, v, 9, NULL)};
    const char *names[2] = {"k", "v"};
    fb_table t = {2, cols, names};
    int64_t len = 0;
    assert_fb_status(ctx, fb_table_validate(ctx, &t, &len), FB_ERR_LENGTH_MISMATCH);
    assert_non_null(strstr(fb_last_error(ctx), "'v'"));
    cols[1].length = 10;
    assert_fb_ok(ctx, fb_table_validate(ctx, &t, &len));
    assert_int_equal(len, 10);
    fb_table none = {0, NULL, NULL};
    assert_fb_ok(ctx, fb_table_validate(ctx, &none, &len));
    assert_int_equal(len, 0);
    fb_table broken = {3, NULL, NULL};
    assert_fb_status(ctx, fb_table_validate(ctx, &broken, &len), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_table_validate(ctx, NULL, &len), FB_ERR_INVALID_ARG);
}

/* Errors are per thread: another thread's failure does not change this thread's message. */
static void *fail_in_thread(void *arg)
{
    fb_ctx *ctx = arg;
    fb_ctx_alloc(ctx, 1, 3, NULL);
    return strdup(fb_last_error(ctx));
}

static void test_error_per_thread(void **state)
{
    fb_ctx *ctx = *state;
    assert_fb_status(ctx, fb_column_validate(ctx, NULL), FB_ERR_INVALID_ARG);
    char mine[256];
    snprintf(mine, sizeof mine, "%s", fb_last_error(ctx));
    assert_non_null(strstr(mine, "fb_column_validate"));
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fail_in_thread, ctx), 0);
    void *theirs;
    pthread_join(t, &theirs);
    assert_non_null(strstr(theirs, "fb_ctx_alloc"));
    free(theirs);
    assert_string_equal(fb_last_error(ctx), mine);
    /* another context's error is not reported for this one */
    fb_ctx *other;
    assert_fb_ok(NULL, fb_ctx_create(NULL, &other));
    assert_fb_status(other, fb_column_validate(other, NULL), FB_ERR_INVALID_ARG);
    assert_string_equal(fb_last_error(ctx), "");
    fb_ctx_destroy(other);
}

static int setup_ctx(void **state)
{
    fb_ctx *ctx = NULL;
    if (fb_ctx_create(NULL, &ctx) != FB_OK)
        return -1;
    *state = ctx;
    return 0;
}

static int teardown_ctx(void **state)
{
    fb_ctx_destroy(*state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_isa_names),
        cmocka_unit_test(test_options_bad_input),
        cmocka_unit_test(test_isa_forcing),
        cmocka_unit_test(test_isa_env),
        cmocka_unit_test(test_allocator_and_limit),
        cmocka_unit_test_setup_teardown(test_column_validation, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_error_per_thread, setup_ctx, teardown_ctx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
