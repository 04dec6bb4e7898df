/* test_cl.c - the OpenCL module: device listing and info, opening a device (default, none, bad index),
 * every OpenCL twin against its CPU function and against an independent oracle written here (every
 * type; lengths 0, 1, 7, 1023 and 1M+3; nulls at nonzero offsets; sel_in; all predicates), bad input,
 * out-of-range indices, the on-disk binary cache, build failures, transfer measurement and concurrent
 * calls on one context. It fails (does not skip) when no OpenCL device is found: run it where PoCL
 * or a GPU driver is installed. */
#include "fb_test.h"

#include <time.h>

#include "fb_cl_internal.h"

#include <dirent.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const fb_type all_types[] = {FB_TYPE_INT8,   FB_TYPE_INT16,  FB_TYPE_INT32,   FB_TYPE_INT64,
                                    FB_TYPE_UINT8,  FB_TYPE_UINT16, FB_TYPE_UINT32,  FB_TYPE_UINT64,
                                    FB_TYPE_FLOAT32, FB_TYPE_FLOAT64, FB_TYPE_DATE32};
#define N_TYPES (sizeof all_types / sizeof all_types[0])
#define BIG ((int64_t)(1 << 20) + 3)
static const int64_t lengths[] = {0, 1, 7, 1023, BIG};
#define N_LENGTHS (sizeof lengths / sizeof lengths[0])

static uint64_t rng;

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* ---- values as raw bits, and the oracle's view of them --------------------------------------------- */

static int is_float(fb_type t) { return t == FB_TYPE_FLOAT32 || t == FB_TYPE_FLOAT64; }

static int is_signed(fb_type t)
{
    return t == FB_TYPE_INT8 || t == FB_TYPE_INT16 || t == FB_TYPE_INT32 || t == FB_TYPE_INT64 || t == FB_TYPE_DATE32;
}

static uint64_t width_mask(size_t w) { return w == 8 ? ~0ull : (1ull << (8 * w)) - 1; }

static int64_t sign_extend(uint64_t raw, size_t w)
{
    if (w == 8)
        return (int64_t)raw;
    uint64_t sign = 1ull << (8 * w - 1);
    return (int64_t)((raw ^ sign) - sign);
}

/* Random raw bits of a value of type t: specials (0, ±1, min, max, NaN, ±0.0, ±inf, ...), small
 * values with many duplicates and negatives, or any bits at all (NaN payloads included). */
static uint64_t rand_bits(fb_type t)
{
    uint64_t r = fbt_next(&rng), v = fbt_next(&rng);
    unsigned mode = (unsigned)(r & 15);
    size_t w = fb_type_width(t);
    if (t == FB_TYPE_FLOAT32) {
        static const float sp[] = {0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, NAN, -NAN,
                                   FLT_MAX, -FLT_MAX, FLT_MIN, 1e-45f, 0.5f, -2.5f};
        float f;
        if (mode < 4)
            f = sp[v % (sizeof sp / sizeof sp[0])];
        else if (mode < 11)
            f = (float)((int)(v % 21) - 10) * 0.5f;
        else
            return (uint32_t)v;
        uint32_t b;
        memcpy(&b, &f, 4);
        return b;
    }
    if (t == FB_TYPE_FLOAT64) {
        static const double sp[] = {0.0, -0.0, 1.0, -1.0, INFINITY, -INFINITY, NAN, -NAN,
                                    DBL_MAX, -DBL_MAX, DBL_MIN, 5e-324, 0.5, -2.5};
        double f;
        if (mode < 4)
            f = sp[v % (sizeof sp / sizeof sp[0])];
        else if (mode < 11)
            f = (double)((int)(v % 21) - 10) * 0.5;
        else if (mode < 12)
            return 0x7FF0000000000001ull | (v & 0x800FFFFFFFFFFFFFull); /* a NaN with a payload */
        else
            return v;
        uint64_t b;
        memcpy(&b, &f, 8);
        return b;
    }
    uint64_t mask = width_mask(w), top = 1ull << (8 * w - 1);
    if (mode < 4) {
        uint64_t sp[8] = {0, 1, mask, top, top - 1, top + 1, mask - 1, 2};
        if (!is_signed(t)) {
            sp[3] = mask; /* unsigned: 0, 1, max, max - 1 */
            sp[4] = mask - 1;
        }
        return sp[v & 7] & mask;
    }
    if (mode < 11)
        return (uint64_t)((int64_t)(v % 21) - 10) & mask;
    return v & mask;
}

/* A test column: `n` rows at a random offset (nonzero with nulls), with or without a validity bitmap. */
typedef struct tcol {
    fb_column col;
    void *data;
    uint8_t *valid;
} tcol;

static void tcol_make(tcol *c, fb_type t, int64_t n, int nulls)
{
    size_t w = fb_type_width(t);
    int64_t off = nulls ? 1 + (int64_t)(fbt_next(&rng) % 13) : (int64_t)(fbt_next(&rng) % 3);
    c->data = xmalloc((size_t)(off + n) * w);
    for (int64_t i = 0; i < off + n; i++) {
        uint64_t b = rand_bits(t);
        memcpy((char *)c->data + (size_t)i * w, &b, w); /* little-endian */
    }
    c->valid = NULL;
    if (nulls) {
        size_t bytes = (size_t)(off + n + 7) / 8 + 1;
        c->valid = xmalloc(bytes);
        for (size_t i = 0; i < bytes; i++) {
            uint64_t r = fbt_next(&rng);
            c->valid[i] = (uint8_t)(r | (r >> 8)); /* about one null in four */
        }
    }
    c->col = fb_column_make(t, c->data, n, c->valid);
    c->col.offset = off;
}

static void tcol_free(tcol *c)
{
    free(c->data);
    free(c->valid);
}

static uint64_t raw_at(const fb_column *c, int64_t i)
{
    size_t w = fb_type_width(c->type);
    uint64_t b = 0;
    memcpy(&b, (const char *)c->data + (size_t)(c->offset + i) * w, w);
    return b;
}

static int valid_at(const fb_column *c, int64_t i)
{
    if (!c->validity)
        return 1;
    int64_t b = c->offset + i;
    return (c->validity[b >> 3] >> (b & 7)) & 1;
}

/* SQL order of two values of type t: -1, 0, 1 (NaN = NaN and above everything, -0.0 = 0.0). */
static int ocmp(fb_type t, uint64_t a, uint64_t b)
{
    if (is_float(t)) {
        double x, y;
        if (t == FB_TYPE_FLOAT32) {
            float fx, fy;
            uint32_t ax = (uint32_t)a, by = (uint32_t)b;
            memcpy(&fx, &ax, 4);
            memcpy(&fy, &by, 4);
            x = fx;
            y = fy;
        } else {
            memcpy(&x, &a, 8);
            memcpy(&y, &b, 8);
        }
        if (isnan(x) || isnan(y))
            return isnan(x) - isnan(y);
        return (x > y) - (x < y);
    }
    if (is_signed(t)) {
        int64_t x = sign_extend(a, fb_type_width(t)), y = sign_extend(b, fb_type_width(t));
        return (x > y) - (x < y);
    }
    return (a > b) - (a < b);
}

static uint64_t oracle_fmix(uint64_t w)
{
    uint64_t k = w + FB_HASH_SEED;
    k ^= k >> 33;
    k *= 0xFF51AFD7ED558CCDull;
    k ^= k >> 33;
    k *= 0xC4CEB9FE1A85EC53ull;
    k ^= k >> 33;
    return k;
}

static uint64_t oracle_hash(const fb_column *c, int64_t i)
{
    if (!valid_at(c, i))
        return FB_HASH_NULL;
    uint64_t raw = raw_at(c, i);
    return oracle_fmix(is_signed(c->type) ? (uint64_t)sign_extend(raw, fb_type_width(c->type)) : raw);
}

/* ---- context fixture ----------------------------------------------------------------------------------- */

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

/* ---- devices ------------------------------------------------------------------------------------------- */

static void test_devices(void **state)
{
    fb_ctx *ctx = *state;
    int count = -1;
    assert_fb_ok(ctx, fb_cl_device_count(ctx, &count));
    if (count < 1)
        fail_msg("no OpenCL device found: install PoCL (pocl-opencl-icd) or a GPU driver; this test needs one");
    int first_gpu = -1;
    for (int i = 0; i < count; i++) {
        fb_cl_device_info info;
        memset(&info, 0xCD, sizeof info);
        assert_fb_ok(ctx, fb_cl_device_get_info(ctx, i, &info));
        assert_int_equal(info.index, i);
        assert_true(info.name[0] && info.vendor[0] && info.driver_version[0] && info.platform[0]);
        assert_non_null(strstr(info.device_version, "OpenCL"));
        assert_true(info.is_gpu == 0 || info.is_gpu == 1);
        assert_true(info.is_cpu == 0 || info.is_cpu == 1);
        assert_true(info.compute_units >= 1);
        assert_true(info.global_mem_bytes > 0);
        assert_true(info.max_alloc_bytes > 0 && info.max_alloc_bytes <= info.global_mem_bytes);
        assert_true(info.local_mem_bytes > 0);
        assert_true(info.max_work_group_size >= 1);
        assert_true(info.numa_node >= -1);
        fb_topology_info topo;
        if (info.numa_node >= 0 && fb_topology_get_info(ctx, &topo) == FB_OK && topo.numa_nodes > 0)
            assert_true(info.numa_node < topo.numa_nodes);
        if (info.is_gpu && first_gpu < 0)
            first_gpu = i;
        fprintf(stderr, "[ device   ] %d: %s (%s, %s), %u CUs, %llu MiB, numa %d\n", i, info.name, info.platform,
                info.driver_version, info.compute_units, (unsigned long long)(info.global_mem_bytes >> 20),
                info.numa_node);
    }
    fb_cl_device_info info;
    assert_fb_status(ctx, fb_cl_device_get_info(ctx, count, &info), FB_ERR_NO_DEVICE);
    assert_fb_status(ctx, fb_cl_device_get_info(ctx, -1, &info), FB_ERR_NO_DEVICE);
    assert_fb_status(ctx, fb_cl_device_get_info(ctx, 0, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_cl_device_get_info(NULL, 0, &info), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_cl_device_count(ctx, NULL), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_cl_device_count(NULL, &count), FB_ERR_INVALID_ARG);

    /* a synthetic topology has no devices in it: no NUMA node */
    fb_options *o;
    fb_ctx *syn = NULL;
    assert_fb_ok(NULL, fb_options_create(&o));
    assert_fb_ok(NULL, fb_options_set_topology(o, "pack:2 numa:1 core:2 pu:1"));
    assert_fb_ok(NULL, fb_ctx_create(o, &syn));
    fb_options_destroy(o);
    assert_fb_ok(syn, fb_cl_device_get_info(syn, 0, &info));
    assert_int_equal(info.numa_node, -1);
    fb_ctx_destroy(syn);

    /* the default device: the first GPU, else the first device */
    int index = -7;
    assert_fb_ok(ctx, fb_cl_open(ctx, &index));
    assert_int_equal(index, first_gpu >= 0 ? first_gpu : 0);
    assert_fb_ok(ctx, fb_cl_open(ctx, NULL)); /* already open */
    assert_fb_status(NULL, fb_cl_open(NULL, &index), FB_ERR_INVALID_ARG);
}

static fb_ctx *ctx_with_device(int device)
{
    fb_options *o;
    assert_fb_ok(NULL, fb_options_create(&o));
    assert_fb_ok(NULL, fb_options_set_cl_device(o, device));
    fb_ctx *ctx = NULL;
    assert_fb_ok(NULL, fb_ctx_create(o, &ctx));
    fb_options_destroy(o);
    return ctx;
}

static void test_no_device(void **state)
{
    (void)state;
    fb_ctx *ctx = ctx_with_device(FB_CL_DEVICE_NONE);
    int index = -7, count = 0;
    assert_fb_status(ctx, fb_cl_open(ctx, &index), FB_ERR_NO_DEVICE);
    assert_int_equal(index, -7);
    assert_fb_ok(ctx, fb_cl_device_count(ctx, &count)); /* listing needs no device of the context */
    int32_t v[3] = {1, 2, 3};
    uint64_t h[3];
    fb_column c = fb_column_make(FB_TYPE_INT32, v, 3, NULL);
    assert_fb_status(ctx, fb_cl_hash_column(ctx, &c, h, 3), FB_ERR_NO_DEVICE);
    c.length = 0;
    assert_fb_status(ctx, fb_cl_hash_column(ctx, &c, h, 3), FB_ERR_NO_DEVICE);
    double a, b;
    assert_fb_status(ctx, fb_cl_measure_transfer(ctx, 4096, 1, &a, &b), FB_ERR_NO_DEVICE);
    /* bad arguments are reported before the device is needed, as on the CPU */
    assert_fb_status(ctx, fb_cl_hash_column(ctx, NULL, h, 3), FB_ERR_INVALID_ARG);
    fb_ctx_destroy(ctx);

    ctx = ctx_with_device(count + 3);
    assert_fb_status(ctx, fb_cl_open(ctx, &index), FB_ERR_NO_DEVICE);
    assert_non_null(strstr(fb_last_error(ctx), "no OpenCL device"));
    uint32_t sel[3];
    int64_t n_out = -1;
    int32_t k = 1;
    c.length = 3;
    assert_fb_status(ctx, fb_cl_select_cmp(ctx, &c, FB_CMP_EQ, &k, NULL, 0, sel, 3, &n_out), FB_ERR_NO_DEVICE);
    assert_int_equal(n_out, -1);
    fb_ctx_destroy(ctx);

    /* FB_CL_DEVICE=none in the environment does the same */
    const char *old = getenv("FB_CL_DEVICE");
    char *saved = old ? strdup(old) : NULL;
    setenv("FB_CL_DEVICE", "none", 1);
    assert_fb_ok(NULL, fb_ctx_create(NULL, &ctx));
    assert_fb_status(ctx, fb_cl_open(ctx, NULL), FB_ERR_NO_DEVICE);
    fb_ctx_destroy(ctx);
    if (saved) {
        setenv("FB_CL_DEVICE", saved, 1);
        free(saved);
    } else {
        unsetenv("FB_CL_DEVICE");
    }
}

/* Without any OpenCL platform (the ICD loader finds no vendor file: CL_PLATFORM_NOT_FOUND_KHR) there
 * are 0 devices, which is not an error, and opening one is FB_ERR_NO_DEVICE. The loader reads its
 * configuration once per process, so this runs in a child: this program re-run with --no-platform
 * and OCL_ICD_VENDORS pointing at an empty directory. */
static int no_platform_child(void)
{
    fb_ctx *ctx = NULL;
    int count = -1;
    if (fb_ctx_create(NULL, &ctx) != FB_OK)
        return 10;
    int rc = 0;
    if (fb_cl_device_count(ctx, &count) != FB_OK || count != 0)
        rc = 11;
    else if (fb_cl_open(ctx, NULL) != FB_ERR_NO_DEVICE || !strstr(fb_last_error(ctx), "no OpenCL device"))
        rc = 12;
    fb_cl_device_info info;
    if (rc == 0 && fb_cl_device_get_info(ctx, 0, &info) != FB_ERR_NO_DEVICE)
        rc = 13;
    fprintf(stderr, "[ child    ] %d devices, open: %s\n", count, fb_last_error(ctx));
    fb_ctx_destroy(ctx);
    return rc;
}

static void test_no_platform(void **state)
{
    (void)state;
    char dir[] = "/tmp/fb-test-icd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "OCL_ICD_VENDORS=%s /proc/%ld/exe --no-platform", dir, (long)getpid());
    int rc = system(cmd);
    rmdir(dir);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
}

/* ---- hashing ---------------------------------------------------------------------------------------- */

static void check_hashes(const char *what, const fb_column *c, const uint64_t *cl, const uint64_t *cpu,
                         const uint64_t *oracle, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (cl[i] != cpu[i] || cl[i] != oracle[i])
            fail_msg("%s %s n=%lld offset=%lld row %lld: cl %016llx cpu %016llx oracle %016llx", what,
                     fb_type_name(c->type), (long long)n, (long long)c->offset, (long long)i,
                     (unsigned long long)cl[i], (unsigned long long)cpu[i], (unsigned long long)oracle[i]);
    }
}

static void test_hash(void **state)
{
    fb_ctx *ctx = *state;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        fb_type t = all_types[ti];
        if (is_float(t))
            continue;
        for (size_t li = 0; li < N_LENGTHS; li++) {
            int64_t n = lengths[li];
            tcol c;
            tcol_make(&c, t, n, (li + ti) % 3 != 0);
            uint64_t *h_cl = xmalloc((size_t)n * 8), *h_cpu = xmalloc((size_t)n * 8), *h_or = xmalloc((size_t)n * 8);
            assert_fb_ok(ctx, fb_cl_hash_column(ctx, &c.col, h_cl, n));
            assert_fb_ok(ctx, fb_hash_column(ctx, &c.col, h_cpu, n));
            for (int64_t i = 0; i < n; i++)
                h_or[i] = oracle_hash(&c.col, i);
            check_hashes("hash", &c.col, h_cl, h_cpu, h_or, n);

            /* combine into existing (random) hashes */
            for (int64_t i = 0; i < n; i++)
                h_cl[i] = h_cpu[i] = h_or[i] = fbt_next(&rng);
            assert_fb_ok(ctx, fb_cl_hash_combine(ctx, &c.col, h_cl, n));
            assert_fb_ok(ctx, fb_hash_combine(ctx, &c.col, h_cpu, n));
            for (int64_t i = 0; i < n; i++)
                h_or[i] = h_or[i] * FB_HASH_MUL ^ oracle_hash(&c.col, i);
            check_hashes("combine", &c.col, h_cl, h_cpu, h_or, n);
            free(h_cl);
            free(h_cpu);
            free(h_or);
            tcol_free(&c);
        }
    }
}

static void test_hash_columns(void **state)
{
    fb_ctx *ctx = *state;
    static const fb_type types[3] = {FB_TYPE_INT8, FB_TYPE_UINT64, FB_TYPE_DATE32};
    for (size_t li = 0; li < N_LENGTHS; li++) {
        int64_t n = lengths[li];
        tcol c[3];
        fb_column cols[3];
        for (int k = 0; k < 3; k++) {
            tcol_make(&c[k], types[k], n, k != 1);
            cols[k] = c[k].col;
        }
        uint64_t *h_cl = xmalloc((size_t)n * 8 + 8), *h_cpu = xmalloc((size_t)n * 8 + 8), *h_or = xmalloc((size_t)n * 8 + 8);
        assert_fb_ok(ctx, fb_cl_hash_columns(ctx, cols, 3, h_cl, n + 1));
        assert_fb_ok(ctx, fb_hash_columns(ctx, cols, 3, h_cpu, n + 1));
        for (int64_t i = 0; i < n; i++) {
            h_or[i] = oracle_hash(&cols[0], i);
            h_or[i] = h_or[i] * FB_HASH_MUL ^ oracle_hash(&cols[1], i);
            h_or[i] = h_or[i] * FB_HASH_MUL ^ oracle_hash(&cols[2], i);
        }
        check_hashes("hash_columns", &cols[0], h_cl, h_cpu, h_or, n);
        /* equal keys of different integer types hash alike */
        if (n > 0) {
            int32_t a = -5;
            int64_t b = -5;
            uint64_t ha, hb;
            fb_column ca = fb_column_make(FB_TYPE_INT32, &a, 1, NULL), cb = fb_column_make(FB_TYPE_INT64, &b, 1, NULL);
            assert_fb_ok(ctx, fb_cl_hash_column(ctx, &ca, &ha, 1));
            assert_fb_ok(ctx, fb_cl_hash_column(ctx, &cb, &hb, 1));
            assert_int_equal(ha, hb);
        }
        free(h_cl);
        free(h_cpu);
        free(h_or);
        for (int k = 0; k < 3; k++)
            tcol_free(&c[k]);
    }
}

/* ---- selection -------------------------------------------------------------------------------------- */

typedef enum pkind { P_CMP, P_RANGE, P_IN } pkind;

typedef struct pred {
    pkind kind;
    fb_cmp op;
    uint64_t a, b;   /* constant, or lo and hi */
    uint64_t set[8]; /* IN values (raw bits) */
    int n_set;
} pred;

static int oracle_pass(fb_type t, const pred *p, uint64_t x)
{
    switch (p->kind) {
    case P_CMP: {
        int c = ocmp(t, x, p->a);
        switch (p->op) {
        case FB_CMP_EQ: return c == 0;
        case FB_CMP_NE: return c != 0;
        case FB_CMP_LT: return c < 0;
        case FB_CMP_LE: return c <= 0;
        case FB_CMP_GT: return c > 0;
        default: return c >= 0;
        }
    }
    case P_RANGE: return ocmp(t, x, p->a) >= 0 && ocmp(t, x, p->b) <= 0;
    default:
        for (int i = 0; i < p->n_set; i++)
            if (ocmp(t, x, p->set[i]) == 0)
                return 1;
        return 0;
    }
}

/* Runs one predicate through the OpenCL twin (cl 1) or the CPU function (cl 0). */
static fb_status run_pred(fb_ctx *ctx, int cl, const fb_column *c, const pred *p, const uint32_t *sel_in, int64_t n_in,
                          uint32_t *out, int64_t cap, int64_t *n_out)
{
    size_t w = fb_type_width(c->type);
    unsigned char a[8], b[8], set[8 * 8];
    memcpy(a, &p->a, w);
    memcpy(b, &p->b, w);
    for (int i = 0; i < p->n_set; i++)
        memcpy(set + (size_t)i * w, &p->set[i], w);
    switch (p->kind) {
    case P_CMP:
        return cl ? fb_cl_select_cmp(ctx, c, p->op, a, sel_in, n_in, out, cap, n_out)
                  : fb_select_cmp(ctx, c, p->op, a, sel_in, n_in, out, cap, n_out);
    case P_RANGE:
        return cl ? fb_cl_select_range(ctx, c, a, b, sel_in, n_in, out, cap, n_out)
                  : fb_select_range(ctx, c, a, b, sel_in, n_in, out, cap, n_out);
    default:
        return cl ? fb_cl_select_in(ctx, c, set, p->n_set, sel_in, n_in, out, cap, n_out)
                  : fb_select_in(ctx, c, set, p->n_set, sel_in, n_in, out, cap, n_out);
    }
}

static const char *pred_name(const pred *p)
{
    static const char *const ops[] = {"EQ", "NE", "LT", "LE", "GT", "GE"};
    return p->kind == P_CMP ? ops[p->op] : p->kind == P_RANGE ? "RANGE" : "IN";
}

/* One predicate over one column, with or without sel_in: twin = CPU = oracle. */
static void check_select(fb_ctx *ctx, const fb_column *c, const pred *p, const uint32_t *sel_in, int64_t n_in)
{
    int64_t cand = sel_in ? n_in : c->length;
    uint32_t *o_cl = xmalloc((size_t)cand * 4), *o_cpu = xmalloc((size_t)cand * 4), *o_or = xmalloc((size_t)cand * 4);
    memset(o_cl, 0xAB, (size_t)cand * 4);
    int64_t n_cl = -1, n_cpu = -1, n_or = 0;
    assert_fb_ok(ctx, run_pred(ctx, 1, c, p, sel_in, n_in, o_cl, cand, &n_cl));
    assert_fb_ok(ctx, run_pred(ctx, 0, c, p, sel_in, n_in, o_cpu, cand, &n_cpu));
    for (int64_t j = 0; j < cand; j++) {
        int64_t i = sel_in ? (int64_t)sel_in[j] : j;
        if (valid_at(c, i) && oracle_pass(c->type, p, raw_at(c, i)))
            o_or[n_or++] = (uint32_t)i;
    }
    if (n_cl != n_cpu || n_cl != n_or)
        fail_msg("select %s %s n=%lld sel_in=%s: cl %lld rows, cpu %lld, oracle %lld", pred_name(p),
                 fb_type_name(c->type), (long long)c->length, sel_in ? "yes" : "no", (long long)n_cl,
                 (long long)n_cpu, (long long)n_or);
    for (int64_t j = 0; j < n_cl; j++)
        if (o_cl[j] != o_cpu[j] || o_cl[j] != o_or[j])
            fail_msg("select %s %s n=%lld: entry %lld cl %u cpu %u oracle %u", pred_name(p), fb_type_name(c->type),
                     (long long)c->length, (long long)j, o_cl[j], o_cpu[j], o_or[j]);
    free(o_cl);
    free(o_cpu);
    free(o_or);
}

/* A constant: mostly a value of the column (so predicates select something), else a random one. */
static uint64_t pick_const(const fb_column *c)
{
    if (c->length > 0 && fbt_next(&rng) % 4 != 0)
        return raw_at(c, (int64_t)(fbt_next(&rng) % (uint64_t)c->length));
    return rand_bits(c->type);
}

static uint32_t *random_sel_in(int64_t length, int64_t *n_in)
{
    uint32_t *s = xmalloc((size_t)length * 4);
    int64_t k = 0;
    for (int64_t i = 0; i < length; i++)
        if (fbt_next(&rng) % 3 != 0)
            s[k++] = (uint32_t)i;
    *n_in = k;
    return s;
}

static void test_select(void **state)
{
    fb_ctx *ctx = *state;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        fb_type t = all_types[ti];
        for (size_t li = 0; li < N_LENGTHS; li++) {
            int64_t n = lengths[li];
            int big = n == BIG;
            tcol c;
            tcol_make(&c, t, n, (li + ti) % 4 != 1);
            pred preds[10];
            int np = 0;
            for (int op = FB_CMP_EQ; op <= FB_CMP_GE; op++) {
                preds[np] = (pred){.kind = P_CMP, .op = (fb_cmp)op, .a = pick_const(&c.col)};
                np++;
            }
            uint64_t x = pick_const(&c.col), y = pick_const(&c.col);
            if (ocmp(t, x, y) > 0) {
                uint64_t s = x;
                x = y;
                y = s;
            }
            preds[np++] = (pred){.kind = P_RANGE, .a = x, .b = y};
            preds[np++] = (pred){.kind = P_RANGE, .a = y, .b = x}; /* empty unless equal */
            pred in = {.kind = P_IN, .n_set = 6};
            for (int i = 0; i < 5; i++)
                in.set[i] = pick_const(&c.col);
            in.set[5] = in.set[0]; /* duplicates are allowed */
            preds[np++] = in;
            int64_t n_in = 0;
            uint32_t *sel_in = random_sel_in(n, &n_in);
            for (int k = 0; k < np; k++) {
                /* at 1M+3 rows, two predicates per type keep the run short; the small sizes take all */
                if (big && k != (int)(ti % 6) && k != np - 1)
                    continue;
                check_select(ctx, &c.col, &preds[k], NULL, 0);
                if (!big || k == np - 1)
                    check_select(ctx, &c.col, &preds[k], sel_in, n_in);
            }
            free(sel_in);
            tcol_free(&c);
        }
    }
}

/* Floats in SQL order: NaN equals NaN and is above +inf; -0.0 equals 0.0. */
static void test_select_float_order(void **state)
{
    fb_ctx *ctx = *state;
    double v[8] = {NAN, -0.0, 0.0, INFINITY, -INFINITY, 1.0, -NAN, 2.0};
    fb_column c = fb_column_make(FB_TYPE_FLOAT64, v, 8, NULL);
    uint32_t out[8];
    int64_t n = 0;
    double k = 1.0, nan = NAN, zero = 0.0;
    assert_fb_ok(ctx, fb_cl_select_cmp(ctx, &c, FB_CMP_GT, &k, NULL, 0, out, 8, &n));
    assert_int_equal(n, 4); /* NaN, inf, -NaN, 2.0 */
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 3);
    assert_int_equal(out[2], 6);
    assert_int_equal(out[3], 7);
    assert_fb_ok(ctx, fb_cl_select_cmp(ctx, &c, FB_CMP_EQ, &nan, NULL, 0, out, 8, &n));
    assert_int_equal(n, 2);
    assert_fb_ok(ctx, fb_cl_select_cmp(ctx, &c, FB_CMP_EQ, &zero, NULL, 0, out, 8, &n));
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 2);
}

/* ---- compaction and gather -------------------------------------------------------------------------- */

typedef struct tout {
    fb_column_out out;
} tout;

static void tout_make(tout *o, fb_type t, int64_t cap, int with_validity)
{
    memset(o, 0, sizeof *o);
    o->out.type = t;
    o->out.capacity = cap;
    o->out.data = xmalloc((size_t)cap * fb_type_width(t));
    memset(o->out.data, 0xEE, (size_t)cap * fb_type_width(t));
    o->out.validity = with_validity ? xmalloc((size_t)(cap + 7) / 8) : NULL;
    if (o->out.validity)
        memset(o->out.validity, 0xEE, (size_t)(cap + 7) / 8);
    o->out.length = -5;
    o->out.null_count = -5;
}

static void tout_free(tout *o)
{
    free(o->out.data);
    free(o->out.validity);
}

/* The twin's output equals the CPU's and the oracle's (rows from col at idx; -1 = null of bits 0). */
static void check_move(const char *what, const fb_column *c, const int64_t *idx, int64_t n, const tout *cl,
                       const tout *cpu)
{
    size_t w = fb_type_width(c->type);
    if (cl->out.length != n || cpu->out.length != n || cl->out.null_count != cpu->out.null_count)
        fail_msg("%s %s n=%lld: length cl %lld cpu %lld, nulls cl %lld cpu %lld", what, fb_type_name(c->type),
                 (long long)n, (long long)cl->out.length, (long long)cpu->out.length, (long long)cl->out.null_count,
                 (long long)cpu->out.null_count);
    if (n > 0 && memcmp(cl->out.data, cpu->out.data, (size_t)n * w) != 0)
        fail_msg("%s %s n=%lld: values differ from the CPU's", what, fb_type_name(c->type), (long long)n);
    if (cl->out.validity && memcmp(cl->out.validity, cpu->out.validity, (size_t)(n + 7) / 8) != 0)
        fail_msg("%s %s n=%lld: validity differs from the CPU's", what, fb_type_name(c->type), (long long)n);
    int64_t nulls = 0;
    for (int64_t j = 0; j < n; j++) {
        uint64_t expect = idx[j] < 0 ? 0 : raw_at(c, idx[j]), got = 0;
        memcpy(&got, (const char *)cl->out.data + (size_t)j * w, w);
        int ok = idx[j] >= 0 && valid_at(c, idx[j]);
        nulls += !ok;
        if (got != expect)
            fail_msg("%s %s row %lld: %llx, oracle %llx", what, fb_type_name(c->type), (long long)j,
                     (unsigned long long)got, (unsigned long long)expect);
        if (cl->out.validity && ((cl->out.validity[j >> 3] >> (j & 7)) & 1) != ok)
            fail_msg("%s %s row %lld: validity %d, oracle %d", what, fb_type_name(c->type), (long long)j, !ok, ok);
    }
    if (cl->out.validity) {
        assert_int_equal(cl->out.null_count, nulls);
        if (n % 8) /* the last byte is padded with zeros */
            assert_int_equal(cl->out.validity[n / 8] >> (n % 8), 0);
    } else {
        assert_int_equal(cl->out.null_count, 0);
    }
}

static void test_compact(void **state)
{
    fb_ctx *ctx = *state;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        fb_type t = all_types[ti];
        for (size_t li = 0; li < N_LENGTHS; li++) {
            int64_t len = lengths[li];
            int nulls = (li + ti) % 3 != 2;
            tcol c;
            tcol_make(&c, t, len, nulls);
            /* any order, repeats; as many rows as the column, plus a few */
            int64_t n = len == 0 ? 0 : len + (int64_t)(fbt_next(&rng) % 5);
            uint32_t *sel = xmalloc((size_t)n * 4);
            int64_t *idx = xmalloc((size_t)n * 8);
            for (int64_t j = 0; j < n; j++)
                idx[j] = sel[j] = (uint32_t)(fbt_next(&rng) % (uint64_t)len);
            for (int with_validity = nulls; with_validity <= 1; with_validity++) {
                tout cl, cpu;
                tout_make(&cl, t, n, with_validity);
                tout_make(&cpu, t, n, with_validity);
                assert_fb_ok(ctx, fb_cl_compact(ctx, &c.col, sel, n, &cl.out));
                assert_fb_ok(ctx, fb_compact(ctx, &c.col, sel, n, &cpu.out));
                check_move("compact", &c.col, idx, n, &cl, &cpu);
                tout_free(&cl);
                tout_free(&cpu);
            }
            free(sel);
            free(idx);
            tcol_free(&c);
        }
    }
}

static void test_gather(void **state)
{
    fb_ctx *ctx = *state;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        fb_type t = all_types[ti];
        for (size_t li = 0; li < N_LENGTHS; li++) {
            int64_t len = lengths[li];
            int nulls = (li + ti) % 3 != 0;
            tcol c;
            tcol_make(&c, t, len, nulls);
            int64_t n = len + 3; /* even an empty column can be gathered from with -1 ids */
            int64_t *ids = xmalloc((size_t)n * 8);
            int any_null_id = 0;
            for (int64_t j = 0; j < n; j++) {
                uint64_t r = fbt_next(&rng);
                ids[j] = len == 0 || r % 10 == 0 ? -1 : (int64_t)(r % (uint64_t)len);
                any_null_id |= ids[j] == -1;
            }
            for (int with_validity = nulls || any_null_id; with_validity <= 1; with_validity++) {
                tout cl, cpu;
                tout_make(&cl, t, n, with_validity);
                tout_make(&cpu, t, n, with_validity);
                assert_fb_ok(ctx, fb_cl_gather(ctx, &c.col, ids, n, &cl.out));
                assert_fb_ok(ctx, fb_gather(ctx, &c.col, ids, n, &cpu.out));
                check_move("gather", &c.col, ids, n, &cl, &cpu);
                tout_free(&cl);
                tout_free(&cpu);
            }
            /* without -1 ids and nulls no validity is needed */
            if (!nulls && len > 0) {
                for (int64_t j = 0; j < n; j++)
                    ids[j] = (int64_t)(fbt_next(&rng) % (uint64_t)len);
                tout cl, cpu;
                tout_make(&cl, t, n, 0);
                tout_make(&cpu, t, n, 0);
                assert_fb_ok(ctx, fb_cl_gather(ctx, &c.col, ids, n, &cl.out));
                assert_fb_ok(ctx, fb_gather(ctx, &c.col, ids, n, &cpu.out));
                check_move("gather", &c.col, ids, n, &cl, &cpu);
                tout_free(&cl);
                tout_free(&cpu);
            }
            free(ids);
            tcol_free(&c);
        }
    }
}

/* ---- indices outside the column ---------------------------------------------------------------------- */

static void test_out_of_range(void **state)
{
    fb_ctx *ctx = *state;
    int64_t sizes[2] = {10, BIG};
    for (int s = 0; s < 2; s++) {
        int64_t len = sizes[s];
        tcol c;
        tcol_make(&c, FB_TYPE_INT32, len, 1);
        int64_t n = len;
        uint32_t *sel = xmalloc((size_t)n * 4), *out = xmalloc((size_t)n * 4);
        int64_t *ids = xmalloc((size_t)n * 8);
        for (int64_t j = 0; j < n; j++)
            ids[j] = sel[j] = (uint32_t)j;
        sel[n - 1] = (uint32_t)len; /* the last one is one past the end */
        ids[n / 2] = len;

        tout o;
        tout_make(&o, FB_TYPE_INT32, n, 1);
        assert_fb_status(ctx, fb_cl_compact(ctx, &c.col, sel, n, &o.out), FB_ERR_OUT_OF_RANGE);
        assert_int_equal(o.out.length, 0);
        assert_int_equal(o.out.null_count, 0);
        o.out.length = 9;
        assert_fb_status(ctx, fb_compact(ctx, &c.col, sel, n, &o.out), FB_ERR_OUT_OF_RANGE);
        assert_int_equal(o.out.length, 0);
        assert_fb_status(ctx, fb_cl_gather(ctx, &c.col, ids, n, &o.out), FB_ERR_OUT_OF_RANGE);
        assert_int_equal(o.out.length, 0);
        ids[n / 2] = -2;
        assert_fb_status(ctx, fb_cl_gather(ctx, &c.col, ids, n, &o.out), FB_ERR_OUT_OF_RANGE);
        assert_int_equal(o.out.length, 0);
        assert_fb_status(ctx, fb_gather(ctx, &c.col, ids, n, &o.out), FB_ERR_OUT_OF_RANGE);

        int32_t k = 0;
        int64_t n_out = -3;
        assert_fb_status(ctx, fb_cl_select_cmp(ctx, &c.col, FB_CMP_GE, &k, sel, n, out, n, &n_out), FB_ERR_OUT_OF_RANGE);
        assert_int_equal(n_out, -3);
        assert_fb_status(ctx, fb_select_cmp(ctx, &c.col, FB_CMP_GE, &k, sel, n, out, n, &n_out), FB_ERR_OUT_OF_RANGE);
        /* and the same input without the bad index works */
        assert_fb_ok(ctx, fb_cl_select_cmp(ctx, &c.col, FB_CMP_GE, &k, sel, n - 1, out, n, &n_out));
        assert_fb_ok(ctx, fb_cl_compact(ctx, &c.col, sel, n - 1, &o.out));
        assert_int_equal(o.out.length, n - 1);
        tout_free(&o);
        free(sel);
        free(out);
        free(ids);
        tcol_free(&c);
    }

    /* an empty column: every index is outside it, but -1 ids are nulls */
    fb_column empty = fb_column_make(FB_TYPE_UINT16, NULL, 0, NULL);
    uint32_t sel1[1] = {0}, out1[1];
    int64_t ids1[2] = {-1, -1}, n_out = -3;
    uint16_t k = 0;
    tout o;
    tout_make(&o, FB_TYPE_UINT16, 2, 1);
    assert_fb_status(ctx, fb_cl_select_cmp(ctx, &empty, FB_CMP_EQ, &k, sel1, 1, out1, 1, &n_out), FB_ERR_OUT_OF_RANGE);
    assert_fb_status(ctx, fb_cl_compact(ctx, &empty, sel1, 1, &o.out), FB_ERR_OUT_OF_RANGE);
    assert_fb_ok(ctx, fb_cl_gather(ctx, &empty, ids1, 2, &o.out));
    assert_int_equal(o.out.length, 2);
    assert_int_equal(o.out.null_count, 2);
    assert_int_equal(o.out.validity[0], 0);
    assert_int_equal(((uint16_t *)o.out.data)[0], 0);
    assert_int_equal(((uint16_t *)o.out.data)[1], 0);
    /* no candidates: nothing to do, no error */
    assert_fb_ok(ctx, fb_cl_select_cmp(ctx, &empty, FB_CMP_EQ, &k, NULL, 0, out1, 0, &n_out));
    assert_int_equal(n_out, 0);
    assert_fb_ok(ctx, fb_cl_select_cmp(ctx, &empty, FB_CMP_EQ, &k, sel1, 0, out1, 0, &n_out));
    assert_int_equal(n_out, 0);
    tout_free(&o);
}

/* ---- bad input: the twin gives the CPU function's status -------------------------------------------- */

#define assert_both(ctx, cl_call, cpu_call, expected)                                                              \
    do {                                                                                                           \
        assert_fb_status(ctx, cpu_call, expected);                                                                 \
        assert_fb_status(ctx, cl_call, expected);                                                                  \
    } while (0)

static void test_bad_input(void **state)
{
    fb_ctx *ctx = *state;
    int32_t v[16] = {0};
    float f[16] = {0};
    uint8_t valid[2] = {0xFF, 0xFF};
    uint64_t h[16];
    uint32_t sel[16] = {0}, out[16];
    int64_t ids[16] = {0}, n_out;
    fb_column c = fb_column_make(FB_TYPE_INT32, v, 16, NULL);
    fb_column cf = fb_column_make(FB_TYPE_FLOAT32, f, 16, NULL);
    fb_column bad = c;

    /* hashing */
    assert_both(NULL, fb_cl_hash_column(NULL, &c, h, 16), fb_hash_column(NULL, &c, h, 16), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_hash_column(ctx, NULL, h, 16), fb_hash_column(ctx, NULL, h, 16), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_hash_column(ctx, &c, NULL, 16), fb_hash_column(ctx, &c, NULL, 16), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_hash_column(ctx, &c, h, 15), fb_hash_column(ctx, &c, h, 15), FB_ERR_CAPACITY);
    assert_both(ctx, fb_cl_hash_combine(ctx, &c, h, 15), fb_hash_combine(ctx, &c, h, 15), FB_ERR_CAPACITY);
    assert_both(ctx, fb_cl_hash_column(ctx, &cf, h, 16), fb_hash_column(ctx, &cf, h, 16), FB_ERR_UNSUPPORTED_TYPE);
    bad.type = FB_TYPE_INVALID;
    assert_both(ctx, fb_cl_hash_column(ctx, &bad, h, 16), fb_hash_column(ctx, &bad, h, 16), FB_ERR_UNSUPPORTED_TYPE);
    bad = c;
    bad.length = -1;
    assert_both(ctx, fb_cl_hash_column(ctx, &bad, h, 16), fb_hash_column(ctx, &bad, h, 16), FB_ERR_INVALID_ARG);
    bad = c;
    bad.data = NULL;
    assert_both(ctx, fb_cl_hash_column(ctx, &bad, h, 16), fb_hash_column(ctx, &bad, h, 16), FB_ERR_INVALID_ARG);
    fb_column two[2] = {c, c};
    two[1].length = 15;
    assert_both(ctx, fb_cl_hash_columns(ctx, two, 2, h, 16), fb_hash_columns(ctx, two, 2, h, 16),
                FB_ERR_LENGTH_MISMATCH);
    assert_both(ctx, fb_cl_hash_columns(ctx, two, 0, h, 16), fb_hash_columns(ctx, two, 0, h, 16), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_hash_columns(ctx, NULL, 2, h, 16), fb_hash_columns(ctx, NULL, 2, h, 16), FB_ERR_INVALID_ARG);
    assert_both(NULL, fb_cl_hash_columns(NULL, two, 1, h, 16), fb_hash_columns(NULL, two, 1, h, 16), FB_ERR_INVALID_ARG);

    /* selection */
    int32_t k = 0, set[2] = {1, 2};
    assert_both(NULL, fb_cl_select_cmp(NULL, &c, FB_CMP_EQ, &k, NULL, 0, out, 16, &n_out),
                fb_select_cmp(NULL, &c, FB_CMP_EQ, &k, NULL, 0, out, 16, &n_out), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_select_cmp(ctx, NULL, FB_CMP_EQ, &k, NULL, 0, out, 16, &n_out),
                fb_select_cmp(ctx, NULL, FB_CMP_EQ, &k, NULL, 0, out, 16, &n_out), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_select_cmp(ctx, &c, FB_CMP_EQ, NULL, NULL, 0, out, 16, &n_out),
                fb_select_cmp(ctx, &c, FB_CMP_EQ, NULL, NULL, 0, out, 16, &n_out), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_select_cmp(ctx, &c, (fb_cmp)6, &k, NULL, 0, out, 16, &n_out),
                fb_select_cmp(ctx, &c, (fb_cmp)6, &k, NULL, 0, out, 16, &n_out), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_select_cmp(ctx, &c, FB_CMP_EQ, &k, NULL, 0, NULL, 16, &n_out),
                fb_select_cmp(ctx, &c, FB_CMP_EQ, &k, NULL, 0, NULL, 16, &n_out), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_select_cmp(ctx, &c, FB_CMP_EQ, &k, NULL, 0, out, 16, NULL),
                fb_select_cmp(ctx, &c, FB_CMP_EQ, &k, NULL, 0, out, 16, NULL), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_select_cmp(ctx, &c, FB_CMP_EQ, &k, NULL, 0, out, 15, &n_out),
                fb_select_cmp(ctx, &c, FB_CMP_EQ, &k, NULL, 0, out, 15, &n_out), FB_ERR_CAPACITY);
    assert_both(ctx, fb_cl_select_cmp(ctx, &c, FB_CMP_EQ, &k, sel, 5, out, 4, &n_out),
                fb_select_cmp(ctx, &c, FB_CMP_EQ, &k, sel, 5, out, 4, &n_out), FB_ERR_CAPACITY);
    assert_both(ctx, fb_cl_select_cmp(ctx, &c, FB_CMP_EQ, &k, sel, -1, out, 16, &n_out),
                fb_select_cmp(ctx, &c, FB_CMP_EQ, &k, sel, -1, out, 16, &n_out), FB_ERR_INVALID_ARG);
    bad = c;
    bad.type = (fb_type)77;
    assert_both(ctx, fb_cl_select_cmp(ctx, &bad, FB_CMP_EQ, &k, NULL, 0, out, 16, &n_out),
                fb_select_cmp(ctx, &bad, FB_CMP_EQ, &k, NULL, 0, out, 16, &n_out), FB_ERR_UNSUPPORTED_TYPE);
    assert_both(ctx, fb_cl_select_range(ctx, &c, &k, NULL, NULL, 0, out, 16, &n_out),
                fb_select_range(ctx, &c, &k, NULL, NULL, 0, out, 16, &n_out), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_select_range(ctx, &c, &k, &k, NULL, 0, out, 3, &n_out),
                fb_select_range(ctx, &c, &k, &k, NULL, 0, out, 3, &n_out), FB_ERR_CAPACITY);
    assert_both(ctx, fb_cl_select_in(ctx, &c, set, 0, NULL, 0, out, 16, &n_out),
                fb_select_in(ctx, &c, set, 0, NULL, 0, out, 16, &n_out), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_select_in(ctx, &c, set, FB_SELECT_IN_MAX + 1, NULL, 0, out, 16, &n_out),
                fb_select_in(ctx, &c, set, FB_SELECT_IN_MAX + 1, NULL, 0, out, 16, &n_out), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_select_in(ctx, &c, NULL, 2, NULL, 0, out, 16, &n_out),
                fb_select_in(ctx, &c, NULL, 2, NULL, 0, out, 16, &n_out), FB_ERR_INVALID_ARG);

    /* compaction and gather */
    tout o;
    tout_make(&o, FB_TYPE_INT32, 16, 0);
    assert_both(NULL, fb_cl_compact(NULL, &c, sel, 16, &o.out), fb_compact(NULL, &c, sel, 16, &o.out), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_compact(ctx, NULL, sel, 16, &o.out), fb_compact(ctx, NULL, sel, 16, &o.out), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_compact(ctx, &c, NULL, 16, &o.out), fb_compact(ctx, &c, NULL, 16, &o.out), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_compact(ctx, &c, sel, 16, NULL), fb_compact(ctx, &c, sel, 16, NULL), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_compact(ctx, &c, sel, -1, &o.out), fb_compact(ctx, &c, sel, -1, &o.out), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_compact(ctx, &cf, sel, 16, &o.out), fb_compact(ctx, &cf, sel, 16, &o.out),
                FB_ERR_UNSUPPORTED_TYPE);
    o.out.capacity = 15;
    assert_both(ctx, fb_cl_compact(ctx, &c, sel, 16, &o.out), fb_compact(ctx, &c, sel, 16, &o.out), FB_ERR_CAPACITY);
    assert_both(ctx, fb_cl_gather(ctx, &c, ids, 16, &o.out), fb_gather(ctx, &c, ids, 16, &o.out), FB_ERR_CAPACITY);
    o.out.capacity = 16;
    fb_column cv = c;
    cv.validity = valid; /* nulls possible, but out has no validity buffer */
    assert_both(ctx, fb_cl_compact(ctx, &cv, sel, 16, &o.out), fb_compact(ctx, &cv, sel, 16, &o.out), FB_ERR_INVALID_ARG);
    ids[3] = -1; /* a null row, but out has no validity buffer */
    assert_both(ctx, fb_cl_gather(ctx, &c, ids, 16, &o.out), fb_gather(ctx, &c, ids, 16, &o.out), FB_ERR_INVALID_ARG);
    assert_both(ctx, fb_cl_gather(ctx, &c, NULL, 16, &o.out), fb_gather(ctx, &c, NULL, 16, &o.out), FB_ERR_INVALID_ARG);
    assert_int_equal(o.out.length, 0);
    tout_free(&o);
}

/* ---- concurrency, memory accounting, transfers ------------------------------------------------------ */

typedef struct worker {
    fb_ctx *ctx;
    const fb_column *col;
    const uint64_t *expect;
    int ok;
} worker;

static void *hash_worker(void *arg)
{
    worker *w = arg;
    uint64_t *h = malloc((size_t)w->col->length * 8);
    w->ok = h != NULL;
    for (int r = 0; r < 8 && w->ok; r++) {
        w->ok = fb_cl_hash_column(w->ctx, w->col, h, w->col->length) == FB_OK &&
                memcmp(h, w->expect, (size_t)w->col->length * 8) == 0;
    }
    free(h);
    return NULL;
}

static void test_threads(void **state)
{
    fb_ctx *ctx = *state;
    tcol c;
    tcol_make(&c, FB_TYPE_INT64, 20000, 1);
    uint64_t *expect = xmalloc(20000 * 8);
    assert_fb_ok(ctx, fb_hash_column(ctx, &c.col, expect, 20000));
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){ctx, &c.col, expect, 0};
        assert_int_equal(pthread_create(&th[i], NULL, hash_worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(w[i].ok);
    }
    free(expect);
    tcol_free(&c);
}

/* Calls take no host memory from the context beyond the open device's state. */
static void test_memory_accounting(void **state)
{
    fb_ctx *ctx = *state;
    assert_fb_ok(ctx, fb_cl_open(ctx, NULL));
    size_t before = fb_ctx_memory_used(ctx);
    tcol c;
    tcol_make(&c, FB_TYPE_UINT8, 1000, 1);
    uint64_t h[1000];
    uint32_t out[1000];
    int64_t n_out;
    uint8_t set[3] = {1, 2, 250};
    assert_fb_ok(ctx, fb_cl_hash_column(ctx, &c.col, h, 1000));
    assert_fb_ok(ctx, fb_cl_select_in(ctx, &c.col, set, 3, NULL, 0, out, 1000, &n_out));
    int count;
    fb_cl_device_info info;
    assert_fb_ok(ctx, fb_cl_device_count(ctx, &count));
    assert_fb_ok(ctx, fb_cl_device_get_info(ctx, 0, &info));
    assert_int_equal(fb_ctx_memory_used(ctx), before);
    tcol_free(&c);
}

static cl_uint context_refs(fb_ctx *ctx)
{
    cl_uint refs = 0;
    assert_int_equal(clGetContextInfo(ctx->cl->context, CL_CONTEXT_REFERENCE_COUNT, sizeof refs, &refs, NULL),
                     CL_SUCCESS);
    return refs;
}

/* PoCL drops the context references of finished commands' events from its own threads, a moment
 * after the call returned: wait (up to 2 s) for the count to come back to `base` before judging. */
/* The context's reference count once it has come down to *base (PoCL releases some objects late). A
 * count below *base means an object counted in the base (one of fb_cl_open's, released late) has gone
 * since: the lower count becomes the base. */
static cl_uint context_refs_settled(fb_ctx *ctx, cl_uint *base)
{
    cl_uint refs = context_refs(ctx);
    for (int i = 0; i < 2000 && refs > *base; i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
        refs = context_refs(ctx);
    }
    if (refs < *base)
        *base = refs;
    return refs;
}

#define assert_refs_settled(ctx, base)                                                                     \
    do {                                                                                                   \
        cl_uint settled_ = context_refs_settled(ctx, &(base));                                             \
        assert_int_equal(settled_, base);                                                                  \
    } while (0)

/* Every OpenCL object a call makes holds its context (PoCL counts them): after any call, success or
 * failure, the count is back where it was, so no buffer outlived its call. */
static void test_no_leaked_objects(void **state)
{
    fb_ctx *ctx = *state;
    assert_fb_ok(ctx, fb_cl_open(ctx, NULL));
    cl_uint base = context_refs(ctx);
    tcol c;
    tcol_make(&c, FB_TYPE_INT16, 5000, 1);
    uint64_t h[5000];
    uint32_t sel[5000], out[5000];
    int64_t ids[5000], n_out;
    for (int i = 0; i < 5000; i++) {
        sel[i] = (uint32_t)(4999 - i);
        ids[i] = i % 7 == 0 ? -1 : i;
    }
    int16_t k = 3, set[2] = {1, -1};
    tout o;
    tout_make(&o, FB_TYPE_INT16, 5000, 1);
    assert_fb_ok(ctx, fb_cl_hash_column(ctx, &c.col, h, 5000));
    fb_column two[2] = {c.col, c.col};
    assert_fb_ok(ctx, fb_cl_hash_columns(ctx, two, 2, h, 5000));
    assert_refs_settled(ctx, base);
    assert_fb_ok(ctx, fb_cl_select_in(ctx, &c.col, set, 2, sel, 5000, out, 5000, &n_out));
    assert_fb_ok(ctx, fb_cl_gather(ctx, &c.col, ids, 5000, &o.out));
    assert_refs_settled(ctx, base);
    sel[100] = 5000;
    ids[200] = 5000;
    assert_fb_status(ctx, fb_cl_select_cmp(ctx, &c.col, FB_CMP_LT, &k, sel, 5000, out, 5000, &n_out),
                     FB_ERR_OUT_OF_RANGE);
    assert_fb_status(ctx, fb_cl_compact(ctx, &c.col, sel, 5000, &o.out), FB_ERR_OUT_OF_RANGE);
    assert_fb_status(ctx, fb_cl_gather(ctx, &c.col, ids, 5000, &o.out), FB_ERR_OUT_OF_RANGE);
    assert_refs_settled(ctx, base);

    /* a buffer past the device's largest allocation fails with FB_ERR_DEVICE_MEMORY mid-call: the
     * column (n bytes) is on the device when the selection vector's buffer (4n bytes) is refused.
     * Only tried where that takes at most 2 GiB of host address space, mostly never touched. */
    fb_cl_device_info info;
    assert_fb_ok(ctx, fb_cl_device_get_info(ctx, ctx->cl->index, &info));
    if (info.max_alloc_bytes <= ((uint64_t)1 << 30)) {
        int64_t n = (int64_t)(info.max_alloc_bytes / 4) + 1;
        uint8_t *vals = malloc((size_t)n), *dst = malloc((size_t)n);
        uint32_t *big_sel = malloc((size_t)n * 4);
        if (vals && dst && big_sel) {
            fb_column big = fb_column_make(FB_TYPE_UINT8, vals, n, NULL);
            fb_column_out bo = {.type = FB_TYPE_UINT8, .capacity = n, .data = dst};
            assert_fb_status(ctx, fb_cl_compact(ctx, &big, big_sel, n, &bo), FB_ERR_DEVICE_MEMORY);
            assert_int_equal(bo.length, 0);
            assert_refs_settled(ctx, base);
        }
        free(vals);
        free(dst);
        free(big_sel);
    }
    tout_free(&o);
    tcol_free(&c);
}

static void test_transfer(void **state)
{
    fb_ctx *ctx = *state;
    double h2d = 0, d2h = 0;
    assert_fb_ok(ctx, fb_cl_measure_transfer(ctx, 1 << 22, 3, &h2d, &d2h));
    assert_true(h2d > 0 && d2h > 0);
    fprintf(stderr, "[ transfer ] 4 MiB: host->device %.2f GB/s, device->host %.2f GB/s\n", h2d, d2h);
    assert_fb_status(ctx, fb_cl_measure_transfer(ctx, 4096, 0, &h2d, &d2h), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_cl_measure_transfer(ctx, 0, 1, &h2d, &d2h), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_cl_measure_transfer(ctx, 4096, 1, NULL, &d2h), FB_ERR_INVALID_ARG);
    assert_fb_status(NULL, fb_cl_measure_transfer(NULL, 4096, 1, &h2d, &d2h), FB_ERR_INVALID_ARG);
    fb_cl_device_info info;
    int index;
    assert_fb_ok(ctx, fb_cl_open(ctx, &index));
    assert_fb_ok(ctx, fb_cl_device_get_info(ctx, index, &info));
    assert_fb_status(ctx, fb_cl_measure_transfer(ctx, (size_t)info.max_alloc_bytes + 1, 1, &h2d, &d2h),
                     FB_ERR_DEVICE_MEMORY);
}

/* ---- program build and the binary cache -------------------------------------------------------------- */

static void test_build_failure(void **state)
{
    fb_ctx *ctx = *state;
    assert_fb_ok(ctx, fb_cl_test_build(ctx, "__kernel void fine(__global int *p) { p[0] = 1; }"));
    assert_fb_status(ctx, fb_cl_test_build(ctx, "__kernel void broken(__global int *p) { p[0] = no_such_name; }"),
                     FB_ERR_CL_BUILD);
    assert_non_null(strstr(fb_last_error(ctx), "clBuildProgram"));
    assert_non_null(strstr(fb_last_error(ctx), "no_such_name")); /* the build log */
    assert_fb_status(ctx, fb_cl_test_build(ctx, NULL), FB_ERR_INVALID_ARG);
}

/* Environment variables the cache tests change, restored afterwards. */
static const char *const cache_env[] = {"FB_CL_CACHE_DIR", "FB_CL_CACHE", "FB_CL_BUILD_OPTIONS", "XDG_CACHE_HOME"};
#define N_CACHE_ENV (sizeof cache_env / sizeof cache_env[0])

static void env_save(char **saved)
{
    for (size_t i = 0; i < N_CACHE_ENV; i++) {
        const char *v = getenv(cache_env[i]);
        saved[i] = v ? strdup(v) : NULL;
    }
}

static void env_restore(char **saved)
{
    for (size_t i = 0; i < N_CACHE_ENV; i++) {
        if (saved[i])
            setenv(cache_env[i], saved[i], 1);
        else
            unsetenv(cache_env[i]);
        free(saved[i]);
    }
}

/* Opens a fresh context's device and returns where its program came from (path: the cache file). */
static fb_cl_program_origin open_fresh(char *path, size_t size)
{
    fb_ctx *ctx = NULL;
    assert_fb_ok(NULL, fb_ctx_create(NULL, &ctx));
    fb_cl_program_origin origin = FB_CL_PROGRAM_NONE;
    assert_fb_ok(ctx, fb_cl_program_status(ctx, &origin, path, size));
    /* whatever its origin, the program works */
    int16_t v[5] = {-3, 0, 7, -3, 9};
    uint64_t h_cl[5], h_cpu[5];
    fb_column c = fb_column_make(FB_TYPE_INT16, v, 5, NULL);
    assert_fb_ok(ctx, fb_cl_hash_column(ctx, &c, h_cl, 5));
    assert_fb_ok(ctx, fb_hash_column(ctx, &c, h_cpu, 5));
    assert_memory_equal(h_cl, h_cpu, sizeof h_cl);
    fb_ctx_destroy(ctx);
    return origin;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* rm -r for the small trees these tests make */
static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            remove_tree(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

static void test_cache(void **state)
{
    (void)state;
    char *saved[N_CACHE_ENV];
    env_save(saved);
    unsetenv("FB_CL_CACHE");
    unsetenv("FB_CL_BUILD_OPTIONS");
    char root[] = "/tmp/fb-test-cl-XXXXXX";
    assert_non_null(mkdtemp(root));
    char dir[256], path[4096], path2[4096];
    snprintf(dir, sizeof dir, "%s/nested/cache", root); /* created on demand */
    setenv("FB_CL_CACHE_DIR", dir, 1);

    /* first context builds and writes the cache (in a 0700 directory), the second loads it */
    assert_int_equal(open_fresh(path, sizeof path), FB_CL_PROGRAM_BUILT);
    assert_int_equal(strncmp(path, dir, strlen(dir)), 0);
    long size = file_size(path);
    assert_true(size > 32);
    assert_int_equal(count_files(dir), 1);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(open_fresh(path2, sizeof path2), FB_CL_PROGRAM_CACHED);
    assert_string_equal(path, path2);

    /* a truncated file is rebuilt and rewritten whole */
    assert_int_equal(truncate(path, size / 2), 0);
    assert_int_equal(open_fresh(path2, sizeof path2), FB_CL_PROGRAM_BUILT);
    assert_int_equal(file_size(path), size);
    assert_int_equal(open_fresh(path2, sizeof path2), FB_CL_PROGRAM_CACHED);

    /* a flipped byte in the binary is caught */
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, size - 100, SEEK_SET);
    int ch = fgetc(fp);
    fseek(fp, size - 100, SEEK_SET);
    fputc(ch ^ 0x5A, fp);
    fclose(fp);
    assert_int_equal(open_fresh(path2, sizeof path2), FB_CL_PROGRAM_BUILT);
    assert_int_equal(open_fresh(path2, sizeof path2), FB_CL_PROGRAM_CACHED);

    /* garbage is ignored */
    fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs("not a cache file", fp);
    fclose(fp);
    assert_int_equal(open_fresh(path2, sizeof path2), FB_CL_PROGRAM_BUILT);
    assert_int_equal(file_size(path), size);

    /* build options are part of the key: another file; and an intact file of another key under this
     * key's name (what a hash collision looks like) is rebuilt over */
    setenv("FB_CL_BUILD_OPTIONS", "-DFB_TEST_OPTION=1", 1);
    assert_int_equal(open_fresh(path2, sizeof path2), FB_CL_PROGRAM_BUILT);
    assert_string_not_equal(path, path2);
    assert_int_equal(count_files(dir), 2);
    assert_int_equal(open_fresh(path2, sizeof path2), FB_CL_PROGRAM_CACHED);
    copy_file(path, path2);
    assert_int_equal(open_fresh(path2, sizeof path2), FB_CL_PROGRAM_BUILT);
    assert_int_equal(open_fresh(path2, sizeof path2), FB_CL_PROGRAM_CACHED);

    /* a build option the compiler rejects fails the open with FB_ERR_CL_BUILD, and nothing leaks */
    setenv("FB_CL_BUILD_OPTIONS", "-DFB_TEST_BROKEN=( -cl-no-such-option", 1);
    fb_ctx *ctx;
    assert_fb_ok(NULL, fb_ctx_create(NULL, &ctx));
    fb_status rc = fb_cl_open(ctx, NULL);
    if (rc != FB_ERR_CL_BUILD)
        fail_msg("open with bad build options: %s (%s)", fb_status_name(rc), fb_last_error(ctx));
    assert_non_null(strstr(fb_last_error(ctx), "-cl-no-such-option"));
    fb_ctx_destroy(ctx);
    unsetenv("FB_CL_BUILD_OPTIONS");

    /* FB_CL_CACHE=0 writes nothing */
    char off_dir[256];
    snprintf(off_dir, sizeof off_dir, "%s/off", root);
    setenv("FB_CL_CACHE_DIR", off_dir, 1);
    setenv("FB_CL_CACHE", "0", 1);
    assert_int_equal(open_fresh(path2, sizeof path2), FB_CL_PROGRAM_BUILT);
    assert_string_equal(path2, "");
    assert_int_equal(count_files(off_dir), 0);
    unsetenv("FB_CL_CACHE");

    /* without FB_CL_CACHE_DIR: $XDG_CACHE_HOME/fb/cl */
    unsetenv("FB_CL_CACHE_DIR");
    char xdg[256], expect[300];
    snprintf(xdg, sizeof xdg, "%s/xdg", root);
    snprintf(expect, sizeof expect, "%s/fb/cl/", xdg);
    setenv("XDG_CACHE_HOME", xdg, 1);
    assert_int_equal(open_fresh(path2, sizeof path2), FB_CL_PROGRAM_BUILT);
    assert_int_equal(strncmp(path2, expect, strlen(expect)), 0);
    assert_int_equal(open_fresh(path2, sizeof path2), FB_CL_PROGRAM_CACHED);

    env_restore(saved);
    remove_tree(root);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--no-platform") == 0)
        return no_platform_child();
    rng = fbt_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_no_device),
        cmocka_unit_test(test_no_platform),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_hash_columns),
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_select_float_order),
        cmocka_unit_test(test_compact),
        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_memory_accounting),
        cmocka_unit_test(test_no_leaked_objects),
        cmocka_unit_test(test_transfer),
        cmocka_unit_test(test_build_failure),
        cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests(tests, setup_ctx, teardown_ctx);
}
