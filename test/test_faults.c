/* test_faults.c - allocation fault injection: a context whose allocator fails its k-th allocation, for
 * every k up to the number of allocations a call makes (a strided subset past 160), for the sorts (serial
 * and parallel; permutation, top-N, table), the kernel-level and runtime aggregation (also behind a filter
 * through fb_query_add_agg), the hash table (build, probe, probe-select, probe-mark), the runtime join
 * and plans.
 * Each call must either succeed with the right answer (an allocation it could do without) or return
 * FB_ERR_OUT_OF_MEMORY with a message; afterwards nothing the context allocated may be left (its memory
 * accounting back to zero, every block of the test allocator freed), and the same call on the same
 * context must work again. To find the allocation behind a leak: FAULTS_TRACE=<size in bytes> prints a
 * backtrace of every allocation of that size (addr2line -f -e test_faults ADDR gives the functions).
 * Plans take their data-sized memory (intermediates, operator buffers) from the context too; only their
 * small bookkeeping structs use malloc and are not covered here. */
#include "fb_test.h"

#include "fb_pipeline_join_internal.h"

#include <execinfo.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct fault_alloc {
    atomic_long calls; /* allocations since the last reset */
    long fail_at;      /* the allocation that fails (0-based), or -1 */
    atomic_long live;  /* blocks handed out and not freed */
} fault_alloc;

static fault_alloc fa;

static void *fa_alloc(void *user, size_t size, size_t alignment)
{
    fault_alloc *f = user;
    long k = atomic_fetch_add(&f->calls, 1);
    if (getenv("FAULTS_TRACE") && size == (size_t)atol(getenv("FAULTS_TRACE"))) {
        void *bt[12];
        int n = backtrace(bt, 12);
        fprintf(stderr, "alloc %ld: %zu bytes\n", k, size);
        backtrace_symbols_fd(bt, n, 2);
    }
    if (k == f->fail_at)
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, alignment < sizeof(void *) ? sizeof(void *) : alignment, size ? size : 1) != 0)
        return NULL;
    atomic_fetch_add(&f->live, 1);
    return p;
}

static void fa_free(void *user, void *ptr, size_t size)
{
    fault_alloc *f = user;
    (void)size;
    if (!ptr)
        return;
    free(ptr);
    atomic_fetch_sub(&f->live, 1);
}

static fb_ctx *ctx;
static uint64_t rng;

static int setup(void **state)
{
    (void)state;
    rng = fbt_seed();
    fa.fail_at = -1;
    fb_options *o = NULL;
    fb_allocator a = {fa_alloc, fa_free, &fa};
    if (fb_options_create(&o) != FB_OK || fb_options_set_allocator(o, &a) != FB_OK ||
        fb_options_set_threads(o, 2) != FB_OK)
        return -1;
    fb_status st = fb_ctx_create(o, &ctx);
    fb_options_destroy(o);
    return st == FB_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fb_ctx_destroy(ctx);
    return 0;
}

/* One call under test: does the work, frees what it made, and returns its status; with FB_OK it sets
 * *check to a digest of its answer. */
typedef fb_status (*call_fn)(uint64_t *check);

static void sweep(const char *name, call_fn call)
{
    long base_live = atomic_load(&fa.live);
    uint64_t want = 0, got = 0;
    fa.fail_at = -1;
    atomic_store(&fa.calls, 0);
    assert_fb_ok(ctx, call(&want));
    long total = atomic_load(&fa.calls);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    long failed = 0, tried = 0;
    for (long k = 0; k < total; k += k < 160 ? 1 : 1 + total / 64) {
        fa.fail_at = k;
        atomic_store(&fa.calls, 0);
        got = 0;
        fb_status st = call(&got);
        fa.fail_at = -1;
        tried++;
        if (st == FB_OK) {
            assert_true(got == want); /* it did without that allocation: same answer */
        } else {
            if (st != FB_ERR_OUT_OF_MEMORY)
                fail_msg("%s, allocation %ld failing: %s (%s)", name, k, fb_status_name(st), fb_last_error(ctx));
            assert_true(fb_last_error(ctx)[0] != '\0');
            failed++;
        }
        if (fb_ctx_memory_used(ctx) != 0 || atomic_load(&fa.live) != base_live)
            fail_msg("%s, allocation %ld failing: %zu bytes accounted and %ld blocks left", name, k,
                     fb_ctx_memory_used(ctx), atomic_load(&fa.live) - base_live);
        /* and the context still works */
        atomic_store(&fa.calls, 0);
        got = 0;
        assert_fb_ok(ctx, call(&got));
        assert_true(got == want);
    }
    print_message("[ faults   ] %s: %ld allocations, %ld failures injected, %ld reported out of memory\n", name,
                  total, tried, failed);
    assert_true(failed > 0);
}

/* ---- the calls -------------------------------------------------------------------------------------- */

enum { N = 60000 };
static int32_t k32[N], v32[N];
static int64_t k64[N];
static uint8_t kvalid[N / 8 + 1];

static uint64_t mix(uint64_t h, uint64_t x)
{
    return (h ^ x) * 0x9E3779B97F4A7C15ull + (h >> 29);
}

static fb_status call_sort(uint64_t *check)
{
    fb_sort_key keys[2] = {{fb_column_make(FB_TYPE_INT32, k32, N, kvalid), 0, 1},
                           {fb_column_make(FB_TYPE_INT64, k64, N, NULL), 1, 0}};
    uint32_t *perm = malloc(sizeof *perm * N);
    if (!perm)
        return FB_ERR_OUT_OF_MEMORY;
    fb_status st = fb_sort_permutation(ctx, keys, 2, perm, N);
    for (int64_t i = 0; st == FB_OK && i < N; i++)
        *check = mix(*check, perm[i]);
    free(perm);
    return st;
}

static fb_status call_sort_parallel(uint64_t *check)
{
    fb_sort_key key = {fb_column_make(FB_TYPE_INT32, k32, N, NULL), 0, 0};
    fb_column pay = fb_column_make(FB_TYPE_INT32, v32, N, NULL);
    int32_t *ok = malloc(4 * N), *ov = malloc(4 * N);
    fb_column_out out[2] = {{FB_TYPE_INT32, N, ok, NULL, 0, 0}, {FB_TYPE_INT32, N, ov, NULL, 0, 0}};
    fb_status st = ok && ov ? fb_sort_table_parallel(ctx, &key, 1, &pay, 1, out) : FB_ERR_OUT_OF_MEMORY;
    for (int64_t i = 0; st == FB_OK && i < N; i++)
        *check = mix(mix(*check, (uint32_t)ok[i]), (uint32_t)ov[i]);
    free(ok);
    free(ov);
    return st;
}

static fb_status call_agg_kernel(uint64_t *check)
{
    fb_type kt = FB_TYPE_INT64;
    fb_agg_desc aggs[3] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT32},
                           {FB_AGG_MAX, 0, FB_TYPE_INT32}};
    fb_agg_spec spec = {1, &kt, 3, aggs, FB_AGG_STRATEGY_AUTO};
    fb_agg_table *t = NULL;
    fb_status st = fb_agg_create(ctx, &spec, &t);
    fb_column key = fb_column_make(FB_TYPE_INT64, k64, N, NULL), val = fb_column_make(FB_TYPE_INT32, v32, N, NULL);
    for (int64_t off = 0; st == FB_OK && off < N; off += 8192) { /* several morsels: the table grows */
        int64_t n = N - off < 8192 ? N - off : 8192;
        fb_column km = key, vm = val;
        km.offset = vm.offset = off;
        km.length = vm.length = n;
        st = fb_agg_update(t, &km, &vm, 1, n, NULL, 0);
    }
    int64_t groups = 0;
    if (st == FB_OK)
        st = fb_agg_group_count(t, &groups);
    int64_t *ko = NULL, *c = NULL, *s = NULL;
    int32_t *mx = NULL;
    if (st == FB_OK) {
        ko = malloc(8 * (size_t)groups + 8), c = malloc(8 * (size_t)groups + 8), s = malloc(8 * (size_t)groups + 8);
        mx = malloc(4 * (size_t)groups + 4);
        fb_column_out kout = {FB_TYPE_INT64, groups, ko, NULL, 0, 0};
        fb_column_out aout[3] = {{FB_TYPE_INT64, groups, c, NULL, 0, 0}, {FB_TYPE_INT64, groups, s, NULL, 0, 0},
                                 {FB_TYPE_INT32, groups, mx, NULL, 0, 0}};
        st = ko && c && s && mx ? fb_agg_result(t, &kout, aout) : FB_ERR_OUT_OF_MEMORY;
        uint64_t h = 0; /* order-independent */
        for (int64_t g = 0; st == FB_OK && g < groups; g++)
            h += mix(mix(mix((uint64_t)ko[g], (uint64_t)c[g]), (uint64_t)s[g]), (uint64_t)mx[g]);
        *check = h;
    }
    free(ko);
    free(c);
    free(s);
    free(mx);
    fb_agg_destroy(t);
    return st;
}

static fb_status call_agg_runtime(uint64_t *check)
{
    fb_type kt = FB_TYPE_INT64;
    fb_agg_desc aggs[2] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT32}};
    fb_agg_spec spec = {1, &kt, 2, aggs, FB_AGG_STRATEGY_AUTO};
    fb_column cols[2] = {fb_column_make(FB_TYPE_INT64, k64, N, NULL), fb_column_make(FB_TYPE_INT32, v32, N, NULL)};
    fb_table table = {2, cols, NULL};
    size_t kc = 0, vc = 1;
    fb_agg_input in = {&kc, &vc, 1};
    fb_agg_groups *g = NULL;
    fb_status st = fb_agg_run(ctx, &table, 4096, &spec, &in, &g, NULL);
    uint64_t h = 0;
    for (int p = 0; st == FB_OK && p < fb_agg_groups_partitions(g); p++) {
        fb_column k, a[2];
        int64_t rows;
        st = fb_agg_groups_partition(g, p, &k, a, &rows);
        for (int64_t i = 0; st == FB_OK && i < rows; i++)
            h += mix(mix((uint64_t)((const int64_t *)k.data)[k.offset + i], (uint64_t)((const int64_t *)a[0].data)[i]),
                     (uint64_t)((const int64_t *)a[1].data)[i]);
    }
    *check = h;
    fb_agg_groups_destroy(g);
    return st;
}

static fb_status call_hash_join(uint64_t *check)
{
    fb_type kt = FB_TYPE_INT32;
    fb_hash_table *ht = NULL;
    fb_status st = fb_hash_table_create(ctx, &kt, 1, 0, &ht); /* starts small: the build grows it */
    fb_column bk = fb_column_make(FB_TYPE_INT32, k32, N / 4, kvalid);
    if (st == FB_OK)
        st = fb_hash_table_build(ctx, ht, &bk, 1, 0);
    int64_t *b = malloc(8 * 4096), *p = malloc(8 * 4096);
    fb_column pk = fb_column_make(FB_TYPE_INT32, k32 + N / 2, N / 2, NULL);
    fb_join_cursor cur = FB_JOIN_CURSOR_INIT;
    fb_join_pairs pairs = {b, p, 4096, 0, 0};
    uint64_t h = 0;
    do {
        if (st != FB_OK || !b || !p)
            break;
        st = fb_hash_table_probe(ctx, ht, &pk, 1, FB_JOIN_INNER, 0, &cur, &pairs);
        for (int64_t i = 0; st == FB_OK && i < pairs.length; i++)
            h += mix((uint64_t)b[i], (uint64_t)p[i]);
    } while (st == FB_OK && pairs.more);
    *check = h;
    free(b);
    free(p);
    fb_hash_table_destroy(ht);
    return st;
}

static fb_status call_runtime_join(uint64_t *check)
{
    fb_join_input in;
    memset(&in, 0, sizeof in);
    in.build_key = fb_column_make(FB_TYPE_INT32, k32, N / 4, NULL);
    in.build_val = fb_column_make(FB_TYPE_INT32, v32, N / 4, NULL);
    in.probe_key = fb_column_make(FB_TYPE_INT32, k32 + N / 4, N - N / 4, NULL);
    in.probe_val = fb_column_make(FB_TYPE_INT32, v32 + N / 4, N - N / 4, NULL);
    in.output = FB_JOIN_OUTPUT_COUNT_SUM;
    in.morsel_rows = 4096;
    in.radix_bits = -1;
    fb_query *q = NULL;
    fb_join_result r;
    fb_status st = fb_query_create(ctx, &q);
    if (st == FB_OK)
        st = fb_pipeline_add_join(q, &in, &r);
    if (st == FB_OK)
        st = fb_query_run(q);
    fb_query_destroy(q);
    if (st == FB_OK)
        *check = mix((uint64_t)r.count, (uint64_t)r.sum);
    return st;
}

static fb_status call_plan(uint64_t *check)
{
    fb_column fc[2] = {fb_column_make(FB_TYPE_INT32, k32, N, kvalid), fb_column_make(FB_TYPE_INT32, v32, N, NULL)};
    fb_column dc[2] = {fb_column_make(FB_TYPE_INT32, k32, 3000, NULL), fb_column_make(FB_TYPE_INT32, v32, 3000, NULL)};
    fb_table ft = {2, fc, NULL}, dt = {2, dc, NULL};
    fb_plan *p = NULL;
    fb_plan_node f, d, j, a, s;
    fb_status st = fb_plan_create(ctx, &p);
    size_t k0 = 0, pay = 1, key = 2;
    fb_plan_agg aggs[2] = {{FB_AGG_COUNT_STAR, 0}, {FB_AGG_SUM, 1}};
    fb_plan_sort_key by = {0, 0, 0};
    if (st == FB_OK)
        st = fb_plan_scan(p, &ft, "f", NULL, 0, &f);
    if (st == FB_OK)
        st = fb_plan_scan(p, &dt, "d", NULL, 0, &d);
    if (st == FB_OK)
        st = fb_plan_join(p, f, d, &k0, &k0, 1, FB_JOIN_INNER, &pay, 1, &j);
    if (st == FB_OK)
        st = fb_plan_aggregate(p, j, &key, 1, aggs, 2, &a);
    if (st == FB_OK)
        st = fb_plan_sort(p, a, &by, 1, -1, &s);
    fb_plan_result *r = NULL;
    if (st == FB_OK)
        st = fb_plan_run(p, s, FB_PLACEMENT_CPU, &r);
    uint64_t h = 0;
    for (int64_t i = 0; st == FB_OK && i < r->rows; i++)
        for (size_t c = 0; c < 3; c++) {
            const fb_column *col = &r->table.columns[c];
            int64_t v = col->type == FB_TYPE_INT32 ? ((const int32_t *)col->data)[col->offset + i]
                                                   : ((const int64_t *)col->data)[col->offset + i];
            h = mix(h, (uint64_t)v);
        }
    *check = h;
    fb_plan_result_free(r);
    fb_plan_destroy(p);
    return st;
}

static fb_status call_top_n(uint64_t *check)
{
    fb_sort_key keys[2] = {{fb_column_make(FB_TYPE_INT32, k32, N, kvalid), 1, 0},
                           {fb_column_make(FB_TYPE_INT64, k64, N, NULL), 0, 1}};
    uint32_t *ids = malloc(sizeof *ids * N);
    int64_t got = 0;
    fb_status st = ids ? fb_sort_top_n(ctx, keys, 2, 5000, ids, N, &got) : FB_ERR_OUT_OF_MEMORY;
    for (int64_t i = 0; st == FB_OK && i < got; i++)
        *check = mix(*check, ids[i]);
    if (st == FB_OK)
        st = fb_sort_top_n_parallel(ctx, keys, 2, 777, ids, N, &got);
    for (int64_t i = 0; st == FB_OK && i < got; i++)
        *check = mix(*check, ids[i]);
    free(ids);
    return st;
}

static fb_status call_sort_table(uint64_t *check)
{
    fb_sort_key key = {fb_column_make(FB_TYPE_INT64, k64, N, NULL), 1, 0};
    fb_column pay = fb_column_make(FB_TYPE_INT32, k32, N, kvalid);
    int64_t *ok = malloc(8 * N);
    int32_t *op = malloc(4 * N);
    uint8_t *ov = malloc(N / 8 + 1);
    fb_column_out out[2] = {{FB_TYPE_INT64, N, ok, NULL, 0, 0}, {FB_TYPE_INT32, N, op, ov, 0, 0}};
    fb_status st = ok && op && ov ? fb_sort_table(ctx, &key, 1, &pay, 1, out) : FB_ERR_OUT_OF_MEMORY;
    for (int64_t i = 0; st == FB_OK && i < N; i++)
        *check = mix(mix(*check, (uint64_t)ok[i]), (ov[i >> 3] >> (i & 7)) & 1 ? (uint64_t)op[i] : 0x5555);
    free(ok);
    free(op);
    free(ov);
    return st;
}

static fb_status call_probe_select_mark(uint64_t *check)
{
    fb_type kt = FB_TYPE_INT32;
    fb_hash_table *ht = NULL;
    fb_status st = fb_hash_table_create(ctx, &kt, 1, 0, &ht);
    fb_column bk = fb_column_make(FB_TYPE_INT32, k32, N / 4, kvalid), pk = fb_column_make(FB_TYPE_INT32, k32 + N / 2, 8192, kvalid);
    if (st == FB_OK)
        st = fb_hash_table_build(ctx, ht, &bk, 1, 0);
    uint32_t *sel = malloc(4 * 8192);
    uint8_t *m = malloc(8192), *mv = malloc(8192 / 8 + 1);
    int64_t n = 0;
    if (st == FB_OK)
        st = sel && m && mv ? fb_hash_table_probe_select(ctx, ht, &pk, 1, FB_JOIN_ANTI, sel, 8192, &n) : FB_ERR_OUT_OF_MEMORY;
    for (int64_t i = 0; st == FB_OK && i < n; i++)
        *check = mix(*check, sel[i]);
    fb_column_out mo = {FB_TYPE_UINT8, 8192, m, mv, 0, 0};
    if (st == FB_OK)
        st = fb_hash_table_probe_mark(ctx, ht, &pk, 1, &mo);
    for (int64_t i = 0; st == FB_OK && i < mo.length; i++)
        *check = mix(*check, (uint64_t)m[i] + 2 * (uint64_t)((mv[i >> 3] >> (i & 7)) & 1));
    free(sel);
    free(m);
    free(mv);
    fb_hash_table_destroy(ht);
    return st;
}

/* fb_query_add_agg behind a filter operator, two keys (the generic per-worker tables) */
static fb_status call_query_agg(uint64_t *check)
{
    fb_type kt[2] = {FB_TYPE_INT64, FB_TYPE_INT32};
    fb_agg_desc aggs[2] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_MIN, 0, FB_TYPE_INT32}};
    fb_agg_spec spec = {2, kt, 2, aggs, FB_AGG_STRATEGY_AUTO};
    fb_column cols[3] = {fb_column_make(FB_TYPE_INT64, k64, N / 4, NULL),
                         fb_column_make(FB_TYPE_INT32, k32, N / 4, kvalid), fb_column_make(FB_TYPE_INT32, v32, N / 4, NULL)};
    fb_table table = {3, cols, NULL};
    size_t kc[2] = {0, 1}, vc = 2;
    fb_agg_input in = {kc, &vc, 1};
    fb_agg_groups *g = NULL;
    fb_query *q = NULL;
    fb_source src;
    fb_operator op;
    int64_t lo = 100, hi = 7000;
    fb_status st = fb_query_create(ctx, &q);
    if (st == FB_OK)
        st = fb_source_table(ctx, &table, 8192, &src);
    if (st == FB_OK) {
        st = fb_operator_select_range(ctx, 0, FB_TYPE_INT64, &lo, &hi, &op);
        if (st != FB_OK && src.destroy)
            src.destroy(src.user);
    }
    if (st == FB_OK)
        st = fb_query_add_agg(q, "filtered", &src, &op, 1, &spec, &in, &g, NULL);
    if (st == FB_OK)
        st = fb_query_run(q);
    int64_t groups = st == FB_OK ? fb_agg_groups_count(g) : 0;
    int64_t *k0 = malloc(8 * (size_t)groups + 8), *c = malloc(8 * (size_t)groups + 8);
    int32_t *k1 = malloc(4 * (size_t)groups + 4), *mn = malloc(4 * (size_t)groups + 4);
    uint8_t *k1v = malloc((size_t)groups / 8 + 1);
    fb_column_out ko[2] = {{FB_TYPE_INT64, groups, k0, NULL, 0, 0}, {FB_TYPE_INT32, groups, k1, k1v, 0, 0}};
    fb_column_out ao[2] = {{FB_TYPE_INT64, groups, c, NULL, 0, 0}, {FB_TYPE_INT32, groups, mn, NULL, 0, 0}};
    if (st == FB_OK)
        st = k0 && c && k1 && mn && k1v ? fb_agg_groups_result(g, ko, ao) : FB_ERR_OUT_OF_MEMORY;
    uint64_t h = 0; /* order-independent */
    for (int64_t i = 0; st == FB_OK && i < groups; i++)
        h += mix(mix(mix((uint64_t)k0[i], (k1v[i >> 3] >> (i & 7)) & 1 ? (uint64_t)k1[i] : 0x7777), (uint64_t)c[i]),
                 (uint64_t)mn[i]);
    *check = h;
    free(k0);
    free(c);
    free(k1);
    free(mn);
    free(k1v);
    fb_agg_groups_destroy(g);
    fb_query_destroy(q);
    return st;
}

static void test_sort(void **state) { (void)state; sweep("fb_sort_permutation", call_sort); }
static void test_top_n(void **state) { (void)state; sweep("fb_sort_top_n (+parallel)", call_top_n); }
static void test_sort_table(void **state) { (void)state; sweep("fb_sort_table", call_sort_table); }
static void test_probe_select_mark(void **state) { (void)state; sweep("fb_hash_table_probe_select/mark", call_probe_select_mark); }
static void test_query_agg(void **state) { (void)state; sweep("fb_query_add_agg + filter", call_query_agg); }
static void test_sort_parallel(void **state) { (void)state; sweep("fb_sort_table_parallel", call_sort_parallel); }
static void test_agg_kernel(void **state) { (void)state; sweep("fb_agg_update/result", call_agg_kernel); }
static void test_agg_runtime(void **state) { (void)state; sweep("fb_agg_run", call_agg_runtime); }
static void test_hash_join(void **state) { (void)state; sweep("fb_hash_table build/probe", call_hash_join); }
static void test_runtime_join(void **state) { (void)state; sweep("runtime join", call_runtime_join); }
static void test_plan(void **state) { (void)state; sweep("fb_plan_run", call_plan); }

int main(void)
{
    uint64_t s = 0x5EED;
    for (int64_t i = 0; i < N; i++) {
        uint64_t x = fbt_next(&s);
        k32[i] = (int32_t)(x % 20000) - 5000; /* duplicates, negatives */
        v32[i] = (int32_t)(x >> 40) - (1 << 23);
        k64[i] = (int64_t)(x >> 20) % 9000;
        if (x % 11)
            kvalid[i >> 3] |= (uint8_t)(1u << (i & 7));
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sort),        cmocka_unit_test(test_sort_parallel), cmocka_unit_test(test_agg_kernel),
        cmocka_unit_test(test_agg_runtime), cmocka_unit_test(test_hash_join),     cmocka_unit_test(test_runtime_join),
        cmocka_unit_test(test_plan),        cmocka_unit_test(test_top_n),         cmocka_unit_test(test_sort_table),
        cmocka_unit_test(test_probe_select_mark), cmocka_unit_test(test_query_agg),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
