/* test_topology.c - the hwloc topology module: the real machine's topology, synthetic two-socket
 * topologies given by fb_options_set_topology() and by FB_TOPOLOGY (counts, per-core NUMA node
 * and package, cache sizes), bad descriptions, bad arguments and the truncation of describe. */
#include "fb_test.h"

#include "fb_topology_internal.h"

/* hwloc's sizes: "MB" is 10^6 bytes, "MiB" 2^20. */
#define TWO_SOCKETS "pack:2 numa:1 l3:1(size=32MB) core:4 pu:1"
#define TWO_SOCKETS_NO_NUMA "pack:2 core:4 pu:1"
#define TWO_SOCKETS_CACHES "pack:2 numa:1(memory=8GiB) l3:1(size=32MiB) l2:4(size=1MiB) l1d:1(size=48KiB) core:1 pu:2"

/* Saves FB_TOPOLOGY and clears it for the test; the teardown puts it back. */
static int setup_env(void **state)
{
    const char *old = getenv("FB_TOPOLOGY");
    *state = old ? strdup(old) : NULL;
    unsetenv("FB_TOPOLOGY");
    return 0;
}

static int teardown_env(void **state)
{
    char *saved = *state;
    if (saved) {
        setenv("FB_TOPOLOGY", saved, 1);
        free(saved);
    } else {
        unsetenv("FB_TOPOLOGY");
    }
    return 0;
}

/* A context over a synthetic description given as an option. */
static fb_ctx *synthetic_ctx(const char *desc)
{
    fb_options *o = NULL;
    assert_fb_ok(NULL, fb_options_create(&o));
    assert_fb_ok(NULL, fb_options_set_topology(o, desc));
    fb_ctx *ctx = NULL;
    assert_fb_ok(NULL, fb_ctx_create(o, &ctx));
    fb_options_destroy(o);
    return ctx;
}

/* Every core maps to a node and a package within the counts. */
static void check_core_maps(fb_ctx *ctx, const fb_topology_info *info)
{
    for (int c = 0; c < info->cores; c++) {
        int node = -1, pkg = -1;
        assert_fb_ok(ctx, fb_topology_core_numa_node(ctx, c, &node));
        assert_fb_ok(ctx, fb_topology_core_package(ctx, c, &pkg));
        assert_in_range(node, 0, info->numa_nodes - 1);
        assert_in_range(pkg, 0, info->packages - 1);
        assert_non_null(fb_topology_core_obj(ctx, c));
    }
    assert_null(fb_topology_core_obj(ctx, info->cores));
    assert_null(fb_topology_core_obj(ctx, -1));
}

static void test_real_machine(void **state)
{
    (void)state;
    fb_ctx *ctx = NULL;
    assert_fb_ok(NULL, fb_ctx_create(NULL, &ctx));
    fb_topology_info info;
    memset(&info, 0xAB, sizeof info);
    assert_fb_ok(ctx, fb_topology_get_info(ctx, &info));
    assert_int_equal(info.synthetic, 0);
    assert_true(info.packages >= 1);
    assert_true(info.numa_nodes >= 1);
    assert_true(info.cores >= 1);
    assert_true(info.pus >= info.cores);
    assert_true(info.l3_count >= 0);
    assert_true(info.l3_count == 0 || info.l3_bytes > 0);
    assert_int_equal(fb_ctx_threads(ctx), info.cores);
    assert_non_null(fb_topology_hwloc(ctx));
    assert_int_equal(fb_topology_is_synthetic(ctx), 0);
    check_core_maps(ctx, &info);

    char text[4096];
    assert_fb_ok(ctx, fb_topology_describe(ctx, text, sizeof text));
    assert_true(strlen(text) > 0);
    assert_non_null(strstr(text, "machine topology"));
    fprintf(stderr, "%s", text);

    /* every context reads the one topology of the machine, loaded once per process */
    fb_ctx *second = NULL;
    assert_fb_ok(NULL, fb_ctx_create(NULL, &second));
    assert_ptr_equal(fb_topology_hwloc(second), fb_topology_hwloc(ctx));
    fb_ctx_destroy(ctx);
    fb_topology_info again;
    assert_fb_ok(second, fb_topology_get_info(second, &again));
    assert_int_equal(again.cores, info.cores);
    fb_ctx_destroy(second);
}

/* Checks the two-socket description TWO_SOCKETS, however it was given. */
static void check_two_sockets(fb_ctx *ctx)
{
    fb_topology_info info;
    assert_fb_ok(ctx, fb_topology_get_info(ctx, &info));
    assert_int_equal(info.synthetic, 1);
    assert_int_equal(info.packages, 2);
    assert_int_equal(info.numa_nodes, 2);
    assert_int_equal(info.cores, 8);
    assert_int_equal(info.pus, 8);
    assert_int_equal(info.l3_count, 2);
    assert_int_equal(info.l3_bytes, 32000000);
    assert_int_equal(info.l2_bytes, 0);
    assert_int_equal(info.l1d_bytes, 0);
    assert_int_equal(info.memory_bytes, 2ull << 30); /* hwloc's 1 GiB per synthetic node */
    assert_int_equal(fb_ctx_threads(ctx), 8);
    assert_int_equal(fb_topology_is_synthetic(ctx), 1);
    for (int c = 0; c < 8; c++) {
        int node = -1, pkg = -1;
        assert_fb_ok(ctx, fb_topology_core_numa_node(ctx, c, &node));
        assert_fb_ok(ctx, fb_topology_core_package(ctx, c, &pkg));
        assert_int_equal(node, c / 4);
        assert_int_equal(pkg, c / 4);
    }
    char text[2048];
    assert_fb_ok(ctx, fb_topology_describe(ctx, text, sizeof text));
    assert_non_null(strstr(text, "synthetic topology: 2 packages, 2 NUMA nodes, 8 cores"));
    assert_non_null(strstr(text, "package 0: NUMA 0 (1 GiB); cores 0-3"));
    assert_non_null(strstr(text, "package 1: NUMA 1 (1 GiB); cores 4-7"));
    assert_non_null(strstr(text, "L3 30.5 MiB x1"));
}

static void test_synthetic_option(void **state)
{
    (void)state;
    fb_ctx *ctx = synthetic_ctx(TWO_SOCKETS);
    check_two_sockets(ctx);
    fb_ctx_destroy(ctx);
}

static void test_synthetic_env(void **state)
{
    (void)state;
    setenv("FB_TOPOLOGY", TWO_SOCKETS, 1);
    fb_ctx *ctx = NULL;
    assert_fb_ok(NULL, fb_ctx_create(NULL, &ctx));
    check_two_sockets(ctx);
    fb_ctx_destroy(ctx);

    /* the environment applies to contexts made with options too, unless the option is set */
    fb_options *o = NULL;
    assert_fb_ok(NULL, fb_options_create(&o));
    assert_fb_ok(NULL, fb_ctx_create(o, &ctx));
    check_two_sockets(ctx);
    fb_ctx_destroy(ctx);
    assert_fb_ok(NULL, fb_options_set_topology(o, TWO_SOCKETS_NO_NUMA));
    assert_fb_ok(NULL, fb_ctx_create(o, &ctx));
    fb_topology_info info;
    assert_fb_ok(ctx, fb_topology_get_info(ctx, &info));
    assert_int_equal(info.numa_nodes, 1);
    fb_ctx_destroy(ctx);
    fb_options_destroy(o);
}

/* Without a NUMA level hwloc gives the machine one node: every core is on node 0, while the
 * packages still split the cores. */
static void test_synthetic_no_numa_level(void **state)
{
    (void)state;
    setenv("FB_TOPOLOGY", TWO_SOCKETS_NO_NUMA, 1);
    fb_ctx *ctx = NULL;
    assert_fb_ok(NULL, fb_ctx_create(NULL, &ctx));
    fb_topology_info info;
    assert_fb_ok(ctx, fb_topology_get_info(ctx, &info));
    assert_int_equal(info.synthetic, 1);
    assert_int_equal(info.packages, 2);
    assert_int_equal(info.numa_nodes, 1);
    assert_int_equal(info.cores, 8);
    assert_int_equal(info.l3_count, 0);
    assert_int_equal(info.l3_bytes, 0);
    for (int c = 0; c < 8; c++) {
        int node = -1, pkg = -1;
        assert_fb_ok(ctx, fb_topology_core_numa_node(ctx, c, &node));
        assert_fb_ok(ctx, fb_topology_core_package(ctx, c, &pkg));
        assert_int_equal(node, 0);
        assert_int_equal(pkg, c / 4);
    }
    char text[2048];
    assert_fb_ok(ctx, fb_topology_describe(ctx, text, sizeof text));
    assert_non_null(strstr(text, "package 1: NUMA 0 (1 GiB); cores 4-7"));
    fb_ctx_destroy(ctx);
}

/* Cache sizes and memory come from the description; SMT gives two PUs per core. */
static void test_synthetic_caches(void **state)
{
    (void)state;
    fb_ctx *ctx = synthetic_ctx(TWO_SOCKETS_CACHES);
    fb_topology_info info;
    assert_fb_ok(ctx, fb_topology_get_info(ctx, &info));
    assert_int_equal(info.packages, 2);
    assert_int_equal(info.numa_nodes, 2);
    assert_int_equal(info.cores, 8);
    assert_int_equal(info.pus, 16);
    assert_int_equal(info.l3_bytes, 32ull << 20);
    assert_int_equal(info.l3_count, 2);
    assert_int_equal(info.l2_bytes, 1ull << 20);
    assert_int_equal(info.l1d_bytes, 48ull << 10);
    assert_int_equal(info.memory_bytes, 16ull << 30);
    check_core_maps(ctx, &info);
    int node = -1;
    assert_fb_ok(ctx, fb_topology_core_numa_node(ctx, 5, &node));
    assert_int_equal(node, 1);
    char text[2048];
    assert_fb_ok(ctx, fb_topology_describe(ctx, text, sizeof text));
    assert_non_null(strstr(text, "package 1: NUMA 1 (8 GiB); cores 4-7 (PUs 8-15), L3 32 MiB x1, L2 1 MiB x4, "
                                 "L1d 48 KiB x4\n"));
    fb_ctx_destroy(ctx);
}

static void test_bad_description(void **state)
{
    (void)state;
    fb_options *o = NULL;
    assert_fb_ok(NULL, fb_options_create(&o));
    assert_fb_ok(NULL, fb_options_set_topology(o, "pack:2 banana:3 pu:1"));
    fb_ctx *ctx = NULL;
    assert_fb_status(NULL, fb_ctx_create(o, &ctx), FB_ERR_TOPOLOGY);
    assert_null(ctx);
    assert_non_null(strstr(fb_last_error(NULL), "fb_ctx_create"));
    assert_non_null(strstr(fb_last_error(NULL), "banana"));
    assert_fb_ok(NULL, fb_options_set_topology(o, ""));
    assert_fb_status(NULL, fb_ctx_create(o, &ctx), FB_ERR_TOPOLOGY);
    assert_null(ctx);
    fb_options_destroy(o);

    setenv("FB_TOPOLOGY", "pack:two pu:1", 1);
    assert_fb_status(NULL, fb_ctx_create(NULL, &ctx), FB_ERR_TOPOLOGY);
    assert_null(ctx);
    assert_non_null(strstr(fb_last_error(NULL), "pack:two"));
    /* an explicit option wins over a bad environment */
    assert_fb_ok(NULL, fb_options_create(&o));
    assert_fb_ok(NULL, fb_options_set_topology(o, TWO_SOCKETS));
    assert_fb_ok(NULL, fb_ctx_create(o, &ctx));
    check_two_sockets(ctx);
    fb_ctx_destroy(ctx);
    fb_options_destroy(o);
    /* an empty variable means the real machine */
    setenv("FB_TOPOLOGY", "", 1);
    assert_fb_ok(NULL, fb_ctx_create(NULL, &ctx));
    assert_int_equal(fb_topology_is_synthetic(ctx), 0);
    fb_ctx_destroy(ctx);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    fb_ctx *ctx = synthetic_ctx(TWO_SOCKETS);
    fb_topology_info info;
    int v = 77;
    assert_fb_status(NULL, fb_topology_get_info(NULL, &info), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_topology_get_info(ctx, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_topology_core_numa_node(NULL, 0, &v), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_topology_core_numa_node(ctx, 0, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_topology_core_numa_node(ctx, -1, &v), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_topology_core_numa_node(ctx, 8, &v), FB_ERR_INVALID_ARG);
    assert_non_null(strstr(fb_last_error(ctx), "core 8"));
    assert_fb_status(NULL, fb_topology_core_package(NULL, 0, &v), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_topology_core_package(ctx, 0, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_topology_core_package(ctx, 8, &v), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_topology_core_package(ctx, INT32_MIN, &v), FB_ERR_INVALID_ARG);
    assert_int_equal(v, 77); /* failed calls leave outputs alone */
    char text[64];
    assert_fb_status(NULL, fb_topology_describe(NULL, text, sizeof text), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_topology_describe(ctx, NULL, 10), FB_ERR_INVALID_ARG);

    /* truncation: as much as fits, NUL-terminated, and the size needed in the message */
    char full[2048];
    assert_fb_ok(ctx, fb_topology_describe(ctx, full, sizeof full));
    size_t need = strlen(full) + 1;
    memset(text, 'x', sizeof text);
    assert_fb_status(ctx, fb_topology_describe(ctx, text, 20), FB_ERR_CAPACITY);
    assert_int_equal(strlen(text), 19);
    assert_memory_equal(text, full, 19);
    assert_int_equal(text[20], 'x');
    char needs[64];
    snprintf(needs, sizeof needs, "needs %zu bytes", need);
    assert_non_null(strstr(fb_last_error(ctx), needs));
    char *exact = malloc(need);
    assert_non_null(exact);
    assert_fb_ok(ctx, fb_topology_describe(ctx, exact, need));
    assert_string_equal(exact, full);
    assert_fb_status(ctx, fb_topology_describe(ctx, exact, need - 1), FB_ERR_CAPACITY);
    assert_int_equal(strlen(exact), need - 2);
    free(exact);
    text[0] = 'y';
    assert_fb_status(ctx, fb_topology_describe(ctx, text, 0), FB_ERR_CAPACITY);
    assert_int_equal(text[0], 'y');
    assert_fb_status(ctx, fb_topology_describe(ctx, text, 1), FB_ERR_CAPACITY);
    assert_int_equal(text[0], '\0');

    /* internal accessors are harmless on NULL */
    assert_null(fb_topology_hwloc(NULL));
    assert_int_equal(fb_topology_is_synthetic(NULL), 0);
    assert_null(fb_topology_core_obj(NULL, 0));
    assert_int_equal(fb_topology_cl_device_numa_node(ctx, NULL), -1);
    assert_int_equal(fb_topology_cl_device_numa_node(NULL, NULL), -1);
    fb_ctx_destroy(ctx);
}

/* Contexts made and destroyed from several threads at once load the real topology once, without
 * races (run under the thread sanitizer too). */
static void *make_contexts(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++) {
        fb_ctx *ctx = NULL;
        if (fb_ctx_create(NULL, &ctx) != FB_OK)
            return (void *)1;
        fb_topology_info info;
        int ok = fb_topology_get_info(ctx, &info) == FB_OK && info.cores >= 1;
        fb_ctx_destroy(ctx);
        if (!ok)
            return (void *)1;
    }
    return NULL;
}

static void test_concurrent_contexts(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, make_contexts, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *rc = (void *)1;
        pthread_join(t[i], &rc);
        assert_null(rc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_real_machine, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_synthetic_option, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_synthetic_env, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_synthetic_no_numa_level, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_synthetic_caches, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_bad_description, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_concurrent_contexts, setup_env, teardown_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
