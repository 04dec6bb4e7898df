/* test_plan_cl.c - plans on the OpenCL device (fb_plan.h: gpu and hybrid placement, the CPU fallback, auto),
 * on PoCL in CI. Every answer is compared with the cpu placement's on the same plan and data:
 *   - the 13 SSB queries (bench/fbench_plan.c's plans, included below, over bench/ssb.c's tables at a tiny
 *     scale factor) under gpu and hybrid;
 *   - random small plans (filters over columns with nulls; one to three joins of every type in one probe
 *     pipeline with int32, int64 and composite keys, unique and duplicate build keys; a projection;
 *     aggregation with null keys; sort + limit) under gpu and hybrid;
 *   - a fault sweep (fb_cl_fault_arm for every k of buffer creation, kernel enqueue, read and write - under gpu
 *     every k, so every step of the device chains fails once; a strided subset past 16 under hybrid and
 *     auto and under TSan, every k there too with FB_SWEEP_ALL=1): under hybrid and auto the answer stays the cpu's and the
 *     result carries the fallback note; under gpu the run fails with the named status and the OpenCL code,
 *     leaves no host memory behind, and the next run answers right;
 *   - device chains (one job per device morsel): every SSB fact pipeline under gpu runs chained and moves
 *     fewer bytes than one device call per operator (FB_PLAN_NO_CHAIN=1), host -> device at most the fact
 *     columns it scans; under small device memory budgets the chains give way to the operators' chunked
 *     calls with the same answer.
 * Integer columns compare bitwise; float sums are of integer-valued doubles (exact in any order), so they
 * compare bitwise too. Rows compare as multisets, and in order where the plan orders them (a sort over
 * the group keys of an aggregation, which are unique). The device takes morsels of FB_PLAN_DEVICE_MORSEL =
 * 4096 rows here so that every device sees several. Fails (does not skip) without an OpenCL device. */
/* The SSB plans of fbench, first (its static fail() would meet cmocka's macro); its command is not used:
 * stubs for the fbench helpers it and ssb.c call. */
#include "../bench/fbench_plan.c"

#include "fb_test.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fb/fb_cl.h"
#include "fb/fb_plan.h"
#include "fb_cl_internal.h"
#include "fb_plan_cl_internal.h"
#include "fb_test_cl_faults.h"

double fbench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
void *fbench_alloc_pages(size_t bytes) { return calloc(1, bytes ? bytes : 1); }
void fbench_free_pages(void *p, size_t bytes) { (void)bytes; free(p); }
void fbench_cpu_model(char *buf, size_t size) { snprintf(buf, size, "test"); }
void fbench_json_string(FILE *f, const char *s) { fprintf(f, "\"%s\"", s); }
int fbench_write_file(const char *dir, const char *name, const void *p, size_t bytes)
{
    (void)dir, (void)name, (void)p, (void)bytes;
    return -1;
}
int fbench_parse_int(const char *s, long lo, long hi, long *out)
{
    (void)s, (void)lo, (void)hi, (void)out;
    return -1;
}

static fb_ctx *ctx;

/* ---- comparing results --------------------------------------------------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t x) { return (h ^ x) * 0x9E3779B97F4A7C15ull + (h >> 29); }

/* A hash of row i: every column's value bits (nothing of a null's) and validity. */
static uint64_t row_hash(const fb_plan_result *r, int64_t i)
{
    uint64_t h = 1;
    for (size_t c = 0; c < r->table.n_columns; c++) {
        const fb_column *col = &r->table.columns[c];
        if (!fb_column_is_valid(col, i)) {
            h = mix(h, 0xdead);
            continue;
        }
        size_t w = fb_type_width(col->type);
        uint64_t v = 0;
        memcpy(&v, (const char *)col->data + (size_t)(col->offset + i) * w, w);
        h = mix(mix(h, v), w);
    }
    return h;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The digest of a result: its row hashes in order (ordered) or sorted (a multiset). */
static uint64_t result_digest(const fb_plan_result *r, int ordered)
{
    uint64_t *h = malloc(sizeof *h * (size_t)(r->rows ? r->rows : 1));
    assert_non_null(h);
    for (int64_t i = 0; i < r->rows; i++)
        h[i] = row_hash(r, i);
    if (!ordered)
        qsort(h, (size_t)r->rows, sizeof *h, cmp_u64);
    uint64_t d = mix(7, (uint64_t)r->rows);
    for (int64_t i = 0; i < r->rows; i++)
        d = mix(d, h[i]);
    free(h);
    return d;
}

/* Runs the plan under `pl`; returns the digest (and the rows in *rows). Fails the test on an error. */
static uint64_t run_digest(fb_plan *p, fb_plan_node root, fb_placement pl, int ordered, int64_t *rows,
                           const char *what)
{
    fb_plan_result *r = NULL;
    fb_status st = fb_plan_run(p, root, pl, &r);
    if (st != FB_OK)
        fail_msg("%s under %s: %s: %s", what, fb_placement_name(pl), fb_status_name(st), fb_last_error(ctx));
    if (fb_plan_result_note(r)[0])
        fail_msg("%s under %s: unexpected fallback: %s", what, fb_placement_name(pl), fb_plan_result_note(r));
    if (pl != FB_PLACEMENT_AUTO)
        assert_int_equal(r->placement, pl);
    uint64_t d = result_digest(r, ordered);
    if (rows)
        *rows = r->rows;
    fb_plan_result_free(r);
    return d;
}

/* ---- the SSB queries ----------------------------------------------------------------------------------- */

static void test_ssb(void **state)
{
    (void)state;
    ssb_data d;
    assert_int_equal(ssb_generate(0.01, 7, &d), 0);
    builder b;
    builder_init(&b, &d);
    int nonempty = 0;
    for (size_t qi = 0; qi < N_QUERIES; qi++) {
        assert_fb_ok(ctx, fb_plan_create(ctx, &b.plan));
        const char *out_cols[8] = {0};
        bnode root = queries[qi].build(&b, out_cols);
        if (b.failed)
            fail_msg("%s: %s", queries[qi].name, b.error);
        int64_t rows = 0, rows_dev = 0;
        uint64_t want = run_digest(b.plan, root.id, FB_PLACEMENT_CPU, 0, &rows, queries[qi].name);
        uint64_t gpu = run_digest(b.plan, root.id, FB_PLACEMENT_GPU, 0, &rows_dev, queries[qi].name);
        if (gpu != want)
            fail_msg("%s: gpu answer (%lld rows) differs from cpu's (%lld rows)", queries[qi].name,
                     (long long)rows_dev, (long long)rows);
        uint64_t hyb = run_digest(b.plan, root.id, FB_PLACEMENT_HYBRID, 0, &rows_dev, queries[qi].name);
        if (hyb != want)
            fail_msg("%s: hybrid answer (%lld rows) differs from cpu's (%lld rows)", queries[qi].name,
                     (long long)rows_dev, (long long)rows);
        /* and with the device's morsels sized by the measured speeds (no FB_PLAN_DEVICE_MORSEL) */
        unsetenv("FB_PLAN_DEVICE_MORSEL");
        hyb = run_digest(b.plan, root.id, FB_PLACEMENT_HYBRID, 0, &rows_dev, queries[qi].name);
        setenv("FB_PLAN_DEVICE_MORSEL", "4096", 1);
        if (hyb != want)
            fail_msg("%s: hybrid answer with measured morsel sizes (%lld rows) differs from cpu's (%lld rows)",
                     queries[qi].name, (long long)rows_dev, (long long)rows);
        nonempty += rows > 0;
        fb_plan_destroy(b.plan);
        b.plan = NULL;
    }
    assert_true(nonempty >= 9);
    ssb_free(&d);
}

/* ---- random plans -------------------------------------------------------------------------------------- */

enum { NF = 20000, ND1 = 1000, ND2 = 500, ND3 = 400 };
/* F: fk1 int32 -> D1.k, fk2 int64 -> D2.k, fa/fb int32 -> D3.(ka, kb), v int32, w int64, x float64, g int32 */
static int32_t f_fk1[NF], f_fa[NF], f_fb[NF], f_v[NF], f_g[NF];
static int64_t f_fk2[NF], f_w[NF];
static double f_x[NF];
static uint8_t *f_fk1_valid, *f_fk2_valid, *f_v_valid, *f_g_valid;
static int32_t d1_k[ND1], d1_a[ND1];
static uint8_t *d1_a_valid;
static int64_t d2_k[ND2], d2_b[ND2];
static int32_t d3_ka[ND3], d3_kb[ND3], d3_c[ND3];
static fb_column fcols[8], d1cols[2], d2cols[2], d3cols[3];
static fb_table ftab, d1tab, d2tab, d3tab;

static void make_tables(void)
{
    uint64_t rng = fbt_seed();
    f_fk1_valid = fbt_random_validity(&rng, NF);
    f_fk2_valid = fbt_random_validity(&rng, NF);
    f_v_valid = fbt_random_validity(&rng, NF);
    f_g_valid = fbt_random_validity(&rng, NF);
    d1_a_valid = fbt_random_validity(&rng, ND1);
    for (int i = 0; i < NF; i++) {
        uint64_t x = fbt_next(&rng), y = fbt_next(&rng);
        f_fk1[i] = (int32_t)(x % 1100) - 50; /* some miss D1 */
        f_fk2[i] = (int64_t)(x >> 16) % 320 - 10;
        f_fa[i] = (int32_t)((x >> 32) % 25);
        f_fb[i] = (int32_t)((x >> 40) % 20);
        f_v[i] = (int32_t)(y % 2001) - 1000;
        f_w[i] = (int64_t)((y >> 16) % 200001) - 100000;
        f_x[i] = (double)((int64_t)((y >> 40) % 2001) - 1000);
        f_g[i] = (int32_t)((y >> 50) % 13) - 3;
    }
    for (int i = 0; i < ND1; i++) {
        d1_k[i] = i; /* unique and dense: the CPU's perfect hash */
        d1_a[i] = (int32_t)(fbt_next(&rng) % 50);
    }
    for (int i = 0; i < ND2; i++) {
        d2_k[i] = i % 300; /* duplicates */
        d2_b[i] = (int64_t)(fbt_next(&rng) % 1000) - 500;
    }
    for (int i = 0; i < ND3; i++) {
        d3_ka[i] = (int32_t)(fbt_next(&rng) % 25);
        d3_kb[i] = (int32_t)(fbt_next(&rng) % 20);
        d3_c[i] = (int32_t)(fbt_next(&rng) % 100);
    }
    fcols[0] = fb_column_make(FB_TYPE_INT32, f_fk1, NF, f_fk1_valid);
    fcols[1] = fb_column_make(FB_TYPE_INT64, f_fk2, NF, f_fk2_valid);
    fcols[2] = fb_column_make(FB_TYPE_INT32, f_fa, NF, NULL);
    fcols[3] = fb_column_make(FB_TYPE_INT32, f_fb, NF, NULL);
    fcols[4] = fb_column_make(FB_TYPE_INT32, f_v, NF, f_v_valid);
    fcols[5] = fb_column_make(FB_TYPE_INT64, f_w, NF, NULL);
    fcols[6] = fb_column_make(FB_TYPE_FLOAT64, f_x, NF, NULL);
    fcols[7] = fb_column_make(FB_TYPE_INT32, f_g, NF, f_g_valid);
    ftab = (fb_table){8, fcols, NULL};
    d1cols[0] = fb_column_make(FB_TYPE_INT32, d1_k, ND1, NULL);
    d1cols[1] = fb_column_make(FB_TYPE_INT32, d1_a, ND1, d1_a_valid);
    d1tab = (fb_table){2, d1cols, NULL};
    d2cols[0] = fb_column_make(FB_TYPE_INT64, d2_k, ND2, NULL);
    d2cols[1] = fb_column_make(FB_TYPE_INT64, d2_b, ND2, NULL);
    d2tab = (fb_table){2, d2cols, NULL};
    d3cols[0] = fb_column_make(FB_TYPE_INT32, d3_ka, ND3, NULL);
    d3cols[1] = fb_column_make(FB_TYPE_INT32, d3_kb, ND3, NULL);
    d3cols[2] = fb_column_make(FB_TYPE_INT32, d3_c, ND3, NULL);
    d3tab = (fb_table){3, d3cols, NULL};
}

static void free_tables(void)
{
    free(f_fk1_valid);
    free(f_fk2_valid);
    free(f_v_valid);
    free(f_g_valid);
    free(d1_a_valid);
}

/* A random plan over F and the dimensions; *ordered says whether its rows come in a defined order. With
 * `fixed`, the fault sweep's plan: filter, inner D1, semi D2, left D3 (composite), project, aggregate,
 * top-N. */
static fb_plan_node random_plan(fb_plan *p, uint64_t *rng, int fixed, int *ordered)
{
    fb_plan_node f, n;
    assert_fb_ok(ctx, fb_plan_scan(p, &ftab, "F", NULL, 0, &f));
    n = f;
    if (fixed || fbt_next(rng) % 4) { /* filters: v < c (nulls never pass), g between, fk1 IN */
        fb_plan_pred preds[3];
        size_t np = 0;
        preds[np++] = (fb_plan_pred){.kind = FB_PLAN_PRED_CMP, .column = 4, .op = FB_CMP_LT,
                                     .value = (int64_t)(fbt_next(rng) % 1500) - 500};
        if (fixed || fbt_next(rng) % 2)
            preds[np++] = (fb_plan_pred){.kind = FB_PLAN_PRED_BETWEEN, .column = 7, .lo = -2, .hi = 6};
        static const int64_t in_vals[] = {1, 5, 7, 11, 100, 999, -3, 400, 401, 402};
        if (!fixed && fbt_next(rng) % 3 == 0)
            preds[np++] = (fb_plan_pred){.kind = FB_PLAN_PRED_IN, .column = 0, .in_values = in_vals, .n_in = 10};
        assert_fb_ok(ctx, fb_plan_filter(p, n, preds, np, &n));
    }
    int n_cols = 8, payload_cols[3], n_payload_cols = 0;
    int joins = fixed ? 3 : 1 + (int)(fbt_next(rng) % 3);
    for (int j = 0; j < joins; j++) {
        int dim = fixed ? j : (int)(fbt_next(rng) % 3);
        fb_join_type type = fixed ? (j == 0 ? FB_JOIN_INNER : j == 1 ? FB_JOIN_SEMI : FB_JOIN_LEFT)
                                  : (fb_join_type)(fbt_next(rng) % 4);
        fb_plan_node d;
        size_t pk[2], bk[2], nk = 1, pay = 1;
        if (dim == 0) {
            assert_fb_ok(ctx, fb_plan_scan(p, &d1tab, "D1", NULL, 0, &d));
            if (!fixed && fbt_next(rng) % 2) {
                fb_plan_pred dp = {.kind = FB_PLAN_PRED_CMP, .column = 1, .op = FB_CMP_GE, .value = 10};
                assert_fb_ok(ctx, fb_plan_filter(p, d, &dp, 1, &d));
            }
            pk[0] = 0;
            bk[0] = 0;
        } else if (dim == 1) {
            assert_fb_ok(ctx, fb_plan_scan(p, &d2tab, "D2", NULL, 0, &d));
            pk[0] = 1;
            bk[0] = 0;
        } else {
            assert_fb_ok(ctx, fb_plan_scan(p, &d3tab, "D3", NULL, 0, &d));
            pk[0] = 2;
            pk[1] = 3;
            bk[0] = 0;
            bk[1] = 1;
            nk = 2;
            pay = 2;
        }
        int with_payload = type == FB_JOIN_INNER || type == FB_JOIN_LEFT;
        assert_fb_ok(ctx, fb_plan_join(p, n, d, pk, bk, nk, type, with_payload ? &pay : NULL, with_payload ? 1 : 0, &n));
        if (with_payload) {
            if (n_payload_cols < 3)
                payload_cols[n_payload_cols++] = n_cols;
            n_cols++;
        }
    }
    if (fixed || fbt_next(rng) % 2) { /* w * v (nulls in v) or w + const */
        if (fixed || fbt_next(rng) % 2)
            assert_fb_ok(ctx, fb_plan_project(p, n, FB_PLAN_MUL, 5, 4, 0, 0, &n));
        else
            assert_fb_ok(ctx, fb_plan_project(p, n, FB_PLAN_ADD, 5, 0, 1, 12345, &n));
        n_cols++;
    }
    if (!fixed && fbt_next(rng) % 4 == 0) { /* the rows themselves */
        *ordered = 0;
        return n;
    }
    /* aggregate by g (nulls: one group) and maybe a payload column, then sort the groups (+ limit) */
    size_t keys[2] = {7, 0};
    size_t nkeys = 1;
    if (n_payload_cols && (fixed || fbt_next(rng) % 2))
        keys[nkeys++] = (size_t)payload_cols[0];
    fb_plan_agg aggs[] = {{FB_AGG_COUNT_STAR, 0}, {FB_AGG_COUNT, 4},       {FB_AGG_SUM, 5},
                          {FB_AGG_SUM, 6},        {FB_AGG_MIN, 4},         {FB_AGG_MAX, (size_t)n_cols - 1},
                          {FB_AGG_AVG, 4}};
    assert_fb_ok(ctx, fb_plan_aggregate(p, n, keys, nkeys, aggs, sizeof aggs / sizeof aggs[0], &n));
    fb_plan_sort_key sk[2] = {{0, (int)(fbt_next(rng) % 2), (int)(fbt_next(rng) % 2)}, {1, 0, 1}};
    int64_t limit = fixed ? 7 : fbt_next(rng) % 2 ? -1 : (int64_t)(fbt_next(rng) % 10);
    assert_fb_ok(ctx, fb_plan_sort(p, n, sk, nkeys, limit, &n));
    *ordered = 1;
    return n;
}

static void test_random_plans(void **state)
{
    (void)state;
    uint64_t rng = fbt_seed() ^ 0x51;
    int plans = fbt_small() ? 6 : 24;
    for (int i = 0; i < plans; i++) {
        fb_plan *p = NULL;
        assert_fb_ok(ctx, fb_plan_create(ctx, &p));
        int ordered = 0;
        fb_plan_node root = random_plan(p, &rng, 0, &ordered);
        char what[32];
        snprintf(what, sizeof what, "random plan %d", i);
        int64_t rows = 0;
        uint64_t want = run_digest(p, root, FB_PLACEMENT_CPU, ordered, &rows, what);
        if (run_digest(p, root, FB_PLACEMENT_GPU, ordered, NULL, what) != want)
            fail_msg("%s: gpu answer differs from cpu's (%lld rows)", what, (long long)rows);
        if (run_digest(p, root, FB_PLACEMENT_HYBRID, ordered, NULL, what) != want)
            fail_msg("%s: hybrid answer differs from cpu's (%lld rows)", what, (long long)rows);
        fb_plan_destroy(p);
    }
}

/* explain analyze of a gpu run says where the operators ran and what moved. */
static void test_explain(void **state)
{
    (void)state;
    uint64_t rng = 3;
    fb_plan *p = NULL;
    assert_fb_ok(ctx, fb_plan_create(ctx, &p));
    int ordered;
    fb_plan_node root = random_plan(p, &rng, 1, &ordered);
    fb_plan_result *r = NULL;
    assert_fb_ok(ctx, fb_plan_run(p, root, FB_PLACEMENT_GPU, &r));
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_fb_ok(ctx, fb_plan_explain(p, root, FB_PLACEMENT_GPU, r, f));
    fclose(f);
    const char *ran = strstr(text, "ran on: device ");
    if (!ran)
        fail_msg("explain analyze of a gpu run lacks the device figures:\n%s", text);
    long long dev = -1, cpu = -1;
    assert_int_equal(sscanf(ran, "ran on: device %lld morsels (of %*d rows), cpu %lld", &dev, &cpu), 2);
    assert_true(dev >= 5); /* 20000 rows in morsels of 4096 */
    assert_int_equal(cpu, 0);
    free(text);
    fb_plan_result_free(r);
    fb_plan_destroy(p);
}

/* ---- device chains ------------------------------------------------------------------------------------- */

/* Per pipeline of a gpu run of the plan: device morsels, chained ones, bytes each way (FB_PLAN_NO_CHAIN set:
 * every operator its own device call). */
typedef struct moved {
    int pipes;
    long long dev[64], chained[64], h2d[64], d2h[64];
} moved;

static void gpu_moved(fb_plan *p, fb_plan_node root, int no_chain, uint64_t want, const char *what, moved *m)
{
    if (no_chain)
        setenv("FB_PLAN_NO_CHAIN", "1", 1);
    fb_plan_result *r = NULL;
    fb_status st = fb_plan_run(p, root, FB_PLACEMENT_GPU, &r);
    unsetenv("FB_PLAN_NO_CHAIN");
    if (st != FB_OK)
        fail_msg("%s: %s: %s", what, fb_status_name(st), fb_last_error(ctx));
    if (result_digest(r, 0) != want)
        fail_msg("%s%s: gpu answer differs from cpu's", what, no_chain ? " (no chain)" : "");
    m->pipes = r->pipelines;
    assert_true(m->pipes <= 64);
    for (int q = 0; q < m->pipes; q++)
        assert_fb_ok(ctx, fb_plan_result_device_pipe(r, q, &m->dev[q], &m->chained[q], &m->h2d[q], &m->d2h[q]));
    assert_int_equal(fb_plan_result_device_pipe(r, m->pipes, &m->dev[0], &m->chained[0], &m->h2d[0], &m->d2h[0]),
                     FB_ERR_INVALID_ARG);
    fb_plan_result_free(r);
}

/* The SSB fact pipelines under gpu run every device morsel as one chain, and move fewer bytes than their
 * operators one device call each: host -> device at most the fact columns the plan scans (each once), and
 * less than the per-operator calls; device -> host no more. */
static void test_chain_bytes(void **state)
{
    (void)state;
    ssb_data d;
    assert_int_equal(ssb_generate(0.01, 11, &d), 0);
    builder b;
    builder_init(&b, &d);
    for (size_t qi = 0; qi < N_QUERIES; qi++) {
        assert_fb_ok(ctx, fb_plan_create(ctx, &b.plan));
        const char *out_cols[8] = {0};
        bnode root = queries[qi].build(&b, out_cols);
        if (b.failed)
            fail_msg("%s: %s", queries[qi].name, b.error);
        const char *what = queries[qi].name;
        uint64_t want = run_digest(b.plan, root.id, FB_PLACEMENT_CPU, 0, NULL, what);
        moved ch, op;
        gpu_moved(b.plan, root.id, 0, want, what, &ch);
        gpu_moved(b.plan, root.id, 1, want, what, &op);
        assert_int_equal(ch.pipes, op.pipes);
        /* the fact pipeline: the most device morsels (lineorder in morsels of 4096 rows) */
        int f = 0;
        for (int q = 1; q < ch.pipes; q++)
            if (ch.dev[q] > ch.dev[f])
                f = q;
        /* the lineorder columns the plan scans, from explain */
        char *text = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&text, &len);
        assert_non_null(fp);
        assert_fb_ok(ctx, fb_plan_explain(b.plan, root.id, FB_PLACEMENT_GPU, NULL, fp));
        fclose(fp);
        const char *scan = strstr(text, "SCAN lineorder (");
        assert_non_null(scan);
        long long lo_rows = 0;
        assert_int_equal(sscanf(scan, "SCAN lineorder (%lld rows)", &lo_rows), 1);
        const char *lb = strchr(scan, '['), *rb = lb ? strchr(lb, ']') : NULL;
        assert_true(lb && rb);
        long long scan_bytes = 0;
        for (const char *c = lb + 1; c < rb;) { /* each name: its column's width */
            size_t n = strcspn(c, ",]");
            while (*c == ' ')
                c++, n--;
            const ssb_table *lt = NULL;
            for (int t = 0; t < SSB_N_TABLES; t++)
                if (d.tables[t].rows == lo_rows)
                    lt = &d.tables[t];
            assert_non_null(lt);
            int found = 0;
            for (int k = 0; k < lt->n_columns && !found; k++)
                if (strlen(lt->columns[k].name) == n && strncmp(lt->columns[k].name, c, n) == 0) {
                    scan_bytes += lo_rows * (long long)fb_type_width(lt->columns[k].type);
                    found = 1;
                }
            if (!found)
                fail_msg("%s: no lineorder column \"%.*s\"", what, (int)n, c);
            c += n + 1;
        }
        free(text);
        if (ch.dev[f] < 2 || ch.chained[f] != ch.dev[f])
            fail_msg("%s: fact pipeline %d: %lld device morsels, %lld chained", what, f, ch.dev[f], ch.chained[f]);
        if (op.chained[f] != 0)
            fail_msg("%s: FB_PLAN_NO_CHAIN still chained %lld morsels", what, op.chained[f]);
        if (ch.h2d[f] > scan_bytes || ch.h2d[f] >= op.h2d[f] || ch.d2h[f] > op.d2h[f])
            fail_msg("%s: fact pipeline %d moved host->device %lld (scanned columns %lld, one call per operator %lld), "
                     "device->host %lld (one call per operator %lld)",
                     what, f, ch.h2d[f], scan_bytes, op.h2d[f], ch.d2h[f], op.d2h[f]);
        print_message("[ chain    ] %-5s fact pipeline: host->device %8lld (per operator %8lld, scanned %8lld), "
                      "device->host %7lld (per operator %7lld)\n",
                      what, ch.h2d[f], op.h2d[f], scan_bytes, ch.d2h[f], op.d2h[f]);
        fb_plan_destroy(b.plan);
        b.plan = NULL;
    }
    ssb_free(&d);
}

/* Chains of other shapes than SSB's: a filter on a projected column and on a join's payload, a composite
 * left join with payload, an anti join after them; a semi join first, filters after it, an aggregate over a
 * payload key. gpu and hybrid answer as cpu does, the fact pipeline chained under gpu. */
static void test_chain_shapes(void **state)
{
    (void)state;
    for (int shape = 0; shape < 2; shape++) {
        fb_plan *p = NULL;
        assert_fb_ok(ctx, fb_plan_create(ctx, &p));
        fb_plan_node n, d1, d2, d3;
        assert_fb_ok(ctx, fb_plan_scan(p, &ftab, "F", NULL, 0, &n));
        assert_fb_ok(ctx, fb_plan_scan(p, &d1tab, "D1", NULL, 0, &d1));
        assert_fb_ok(ctx, fb_plan_scan(p, &d2tab, "D2", NULL, 0, &d2));
        assert_fb_ok(ctx, fb_plan_scan(p, &d3tab, "D3", NULL, 0, &d3));
        size_t k0 = 0, k1 = 1, pay1 = 1, pay2 = 2, pk3[2] = {2, 3}, bk3[2] = {0, 1};
        if (shape == 0) {
            assert_fb_ok(ctx, fb_plan_project(p, n, FB_PLAN_MUL, 5, 4, 0, 0, &n)); /* 8: w * v */
            fb_plan_pred f1 = {.kind = FB_PLAN_PRED_BETWEEN, .column = 8, .lo = -30000000, .hi = 30000000};
            assert_fb_ok(ctx, fb_plan_filter(p, n, &f1, 1, &n));
            assert_fb_ok(ctx, fb_plan_join(p, n, d1, &k0, &k0, 1, FB_JOIN_INNER, &pay1, 1, &n)); /* 9: D1.a */
            fb_plan_pred f2 = {.kind = FB_PLAN_PRED_CMP, .column = 9, .op = FB_CMP_GE, .value = 10};
            assert_fb_ok(ctx, fb_plan_filter(p, n, &f2, 1, &n));
            assert_fb_ok(ctx, fb_plan_join(p, n, d3, pk3, bk3, 2, FB_JOIN_LEFT, &pay2, 1, &n)); /* 10: D3.c */
            assert_fb_ok(ctx, fb_plan_project(p, n, FB_PLAN_ADD, 10, 0, 1, 7, &n));        /* 11 */
            assert_fb_ok(ctx, fb_plan_join(p, n, d2, &k1, &k0, 1, FB_JOIN_ANTI, NULL, 0, &n));
        } else {
            assert_fb_ok(ctx, fb_plan_join(p, n, d2, &k1, &k0, 1, FB_JOIN_SEMI, NULL, 0, &n));
            static const int64_t in_g[] = {-3, 0, 2, 5, 9};
            fb_plan_pred f[2] = {{.kind = FB_PLAN_PRED_IN, .column = 7, .in_values = in_g, .n_in = 5},
                                 {.kind = FB_PLAN_PRED_CMP, .column = 4, .op = FB_CMP_LT, .value = 0}};
            assert_fb_ok(ctx, fb_plan_filter(p, n, f, 2, &n));
            assert_fb_ok(ctx, fb_plan_join(p, n, d1, &k0, &k0, 1, FB_JOIN_INNER, &pay1, 1, &n)); /* 8: D1.a */
            assert_fb_ok(ctx, fb_plan_project(p, n, FB_PLAN_SUB, 5, 8, 0, 0, &n));          /* 9: w - a */
            size_t keys[1] = {8};
            fb_plan_agg aggs[] = {{FB_AGG_COUNT_STAR, 0}, {FB_AGG_SUM, 9}, {FB_AGG_MIN, 9}, {FB_AGG_MAX, 5}};
            assert_fb_ok(ctx, fb_plan_aggregate(p, n, keys, 1, aggs, 4, &n));
        }
        char what[32];
        snprintf(what, sizeof what, "chain shape %d", shape);
        int64_t rows = 0;
        uint64_t want = run_digest(p, n, FB_PLACEMENT_CPU, 0, &rows, what);
        moved ch;
        gpu_moved(p, n, 0, want, what, &ch);
        long long chained = 0;
        for (int q = 0; q < ch.pipes; q++)
            chained = ch.chained[q] > chained ? ch.chained[q] : chained;
        if (chained < 5) /* 20000 fact rows in morsels of 4096 */
            fail_msg("%s: %lld device morsels chained", what, chained);
        if (run_digest(p, n, FB_PLACEMENT_HYBRID, 0, NULL, what) != want)
            fail_msg("%s: hybrid answer differs from cpu's (%lld rows)", what, (long long)rows);
        assert_true(rows > 0);
        fb_plan_destroy(p);
    }
}

/* Device memory budgets too small for a chain's morsel: the operators' own (chunked) calls answer instead,
 * with no fallback; a budget that holds it runs chained. */
static void test_chain_budget(void **state)
{
    (void)state;
    uint64_t rng = 3;
    fb_plan *p = NULL;
    assert_fb_ok(ctx, fb_plan_create(ctx, &p));
    int ordered;
    fb_plan_node root = random_plan(p, &rng, 1, &ordered);
    uint64_t want = run_digest(p, root, FB_PLACEMENT_CPU, ordered, NULL, "budget plan");
    static const char *const budgets[] = {"160k", "256k", "512k", "64m"};
    long long chained_at[4] = {0};
    for (int b = 0; b < 4; b++) {
        setenv("FB_CL_MEM_BUDGET", budgets[b], 1);
        fb_plan_result *r = NULL;
        fb_status st = fb_plan_run(p, root, FB_PLACEMENT_GPU, &r);
        unsetenv("FB_CL_MEM_BUDGET");
        if (st != FB_OK)
            fail_msg("budget %s: %s: %s", budgets[b], fb_status_name(st), fb_last_error(ctx));
        if (fb_plan_result_note(r)[0])
            fail_msg("budget %s: unexpected fallback: %s", budgets[b], fb_plan_result_note(r));
        if (result_digest(r, ordered) != want)
            fail_msg("budget %s: gpu answer differs from cpu's", budgets[b]);
        for (int q = 0; q < r->pipelines; q++) {
            long long dev, ch, h2d, d2h;
            assert_fb_ok(ctx, fb_plan_result_device_pipe(r, q, &dev, &ch, &h2d, &d2h));
            assert_true(ch <= dev);
            chained_at[b] += ch;
        }
        fb_plan_result_free(r);
    }
    print_message("[ chain    ] chained device morsels at budgets 160k %lld, 256k %lld, 512k %lld, 64m %lld\n",
                  chained_at[0], chained_at[1], chained_at[2], chained_at[3]);
    assert_true(chained_at[3] >= 5); /* 20000 fact rows in morsels of 4096 */
    fb_plan_destroy(p);
}

/* ---- faults -------------------------------------------------------------------------------------------- */

#if defined(__SANITIZE_THREAD__)
#define SWEEP_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SWEEP_UNDER_TSAN 1
#endif
#endif
#ifndef SWEEP_UNDER_TSAN
#define SWEEP_UNDER_TSAN 0
#endif

/* Sweeps the OpenCL calls of one run of the fixed plan under `pl` (see the top). */
static void sweep(fb_placement pl)
{
    uint64_t rng = 3;
    fb_plan *p = NULL;
    assert_fb_ok(ctx, fb_plan_create(ctx, &p));
    int ordered;
    fb_plan_node root = random_plan(p, &rng, 1, &ordered);
    if (pl == FB_PLACEMENT_AUTO) { /* a calibration in which the device is 1000x faster */
        fb_plan_calibration cal;
        memset(&cal, 0, sizeof cal);
        double *cpu = (double *)&cal.cpu, *dev = (double *)&cal.opencl.rates;
        for (size_t i = 0; i < sizeof cal.cpu / sizeof(double); i++) {
            cpu[i] = 1e-8;
            dev[i] = 1e-11;
        }
        cal.workers = fb_ctx_threads(ctx);
        cal.rows = 1 << 20;
        cal.opencl.has_opencl = 1;
        snprintf(cal.opencl.device, sizeof cal.opencl.device, "test");
        assert_fb_ok(ctx, fb_plan_set_calibration(p, &cal));
    }
    uint64_t want = run_digest(p, root, FB_PLACEMENT_CPU, ordered, NULL, "fault plan");
    fb_plan_result *r = NULL;
    long calls[FB_CL_FAULT_KINDS] = {0};
    fb_placement ran = FB_PLACEMENT_CPU;
    /* the calls of one run (under hybrid the device's worker may find no morsel left: try again) */
    for (int attempt = 0; attempt < 20 && calls[FB_CL_FAULT_KERNEL] == 0; attempt++) {
        fb_cl_fault_arm(FB_CL_FAULT_BUFFER, -1, 0); /* count only */
        assert_fb_ok(ctx, fb_plan_run(p, root, pl, &r));
        ran = r->placement;
        assert_true(result_digest(r, ordered) == want);
        fb_plan_result_free(r);
        for (int kind = 0; kind < FB_CL_FAULT_KINDS; kind++)
            calls[kind] = fb_cl_fault_calls((fb_cl_fault_kind)kind);
        fb_cl_fault_off();
        if (pl == FB_PLACEMENT_AUTO)
            break;
    }
    if (pl == FB_PLACEMENT_AUTO && ran == FB_PLACEMENT_CPU) /* the calibration above makes the device faster */
        fail_msg("auto chose cpu with a calibration in which the device is 1000x faster");
    assert_true(calls[FB_CL_FAULT_BUFFER] > 0 && calls[FB_CL_FAULT_KERNEL] > 0);
    size_t base_mem = fb_ctx_memory_used(ctx);
    long runs = 0, fell_back = 0, failed = 0;
    for (int kind = 0; kind < FB_CL_FAULT_KINDS; kind++) {
        /* every call under gpu (each step of the device chains fails once), strided past 16 under the others
         * and under TSan, whose CI run this would triple (FB_SWEEP_ALL=1: every call there too) */
        int every = (pl == FB_PLACEMENT_GPU && !SWEEP_UNDER_TSAN) || getenv("FB_SWEEP_ALL");
        for (long k = 0; k < calls[kind]; k += every || k < 16 ? 1 : 1 + calls[kind] / 12) {
            cl_int code = code_for(kind, k);
            fb_cl_fault_arm((fb_cl_fault_kind)kind, k, code);
            r = NULL;
            fb_status st = fb_plan_run(p, root, pl, &r);
            int fired = fb_cl_fault_calls((fb_cl_fault_kind)kind) > k;
            fb_cl_fault_off();
            runs++;
            char text[64];
            snprintf(text, sizeof text, "%d (%s)", (int)code, fb_cl_error_name(code));
            if (pl == FB_PLACEMENT_GPU) {
                fb_status named = code == CL_MEM_OBJECT_ALLOCATION_FAILURE ? FB_ERR_DEVICE_MEMORY : FB_ERR_OPENCL;
                if (st == FB_OK) { /* not reached, or an operator got around it (a join probe's partitions) */
                    if (result_digest(r, ordered) != want)
                        fail_msg("gpu, %s call %ld failing: FB_OK with a different answer", kind_names[kind], k);
                    fb_plan_result_free(r);
                } else {
                    if (st != named || !strstr(fb_last_error(ctx), text))
                        fail_msg("gpu, %s call %ld failing with %s: %s (%s), expected %s", kind_names[kind], k, text,
                                 fb_status_name(st), fb_last_error(ctx), fb_status_name(named));
                    assert_null(r);
                    failed++;
                }
                if (fb_ctx_memory_used(ctx) != base_mem)
                    fail_msg("gpu, %s call %ld failing: %lld host bytes left", kind_names[kind], k,
                             (long long)(fb_ctx_memory_used(ctx) - base_mem));
                assert_true(run_digest(p, root, pl, ordered, NULL, "the run after a fault") == want);
            } else {
                if (st != FB_OK)
                    fail_msg("%s, %s call %ld failing: %s: %s", fb_placement_name(pl), kind_names[kind], k,
                             fb_status_name(st), fb_last_error(ctx));
                if (result_digest(r, ordered) != want)
                    fail_msg("%s, %s call %ld failing: a different answer", fb_placement_name(pl), kind_names[kind], k);
                const char *note = fb_plan_result_note(r);
                if (note[0] && (!strstr(note, "gpu failed (") || !strstr(note, "); ran on cpu") || !strstr(note, text)))
                    fail_msg("%s, %s call %ld failing: note \"%s\"", fb_placement_name(pl), kind_names[kind], k, note);
                if (!fired && note[0])
                    fail_msg("%s, %s call %ld (not reached): note \"%s\"", fb_placement_name(pl), kind_names[kind], k,
                             note);
                fell_back += note[0] != 0;
                fb_plan_result_free(r);
                if (fb_ctx_memory_used(ctx) != base_mem)
                    fail_msg("%s, %s call %ld failing: %lld host bytes left", fb_placement_name(pl), kind_names[kind],
                             k, (long long)(fb_ctx_memory_used(ctx) - base_mem));
            }
        }
    }
    print_message("[ plan cl ] %-6s (ran %s) buffers %3ld, kernels %3ld, reads %3ld, writes %3ld: %ld runs, %ld failed, "
                  "%ld fell back\n",
                  fb_placement_name(pl), fb_placement_name(ran), calls[0], calls[1], calls[2], calls[3], runs, failed,
                  fell_back);
    assert_true(pl == FB_PLACEMENT_GPU ? failed > 0 : fell_back > 0);
    fb_plan_destroy(p);
}

static void test_faults_hybrid(void **state) { (void)state; sweep(FB_PLACEMENT_HYBRID); }
static void test_faults_auto(void **state) { (void)state; sweep(FB_PLACEMENT_AUTO); }
static void test_faults_gpu(void **state) { (void)state; sweep(FB_PLACEMENT_GPU); }

/* hybrid without a device (a context made with FB_CL_DEVICE_NONE): the CPU answers, with the note;
 * gpu: FB_ERR_NO_DEVICE. */
static void test_no_device(void **state)
{
    (void)state;
    fb_options *o = NULL;
    fb_ctx *c2 = NULL;
    assert_fb_ok(NULL, fb_options_create(&o));
    assert_fb_ok(NULL, fb_options_set_cl_device(o, FB_CL_DEVICE_NONE));
    assert_fb_ok(NULL, fb_ctx_create(o, &c2));
    fb_options_destroy(o);
    fb_ctx *keep = ctx;
    ctx = c2;
    uint64_t rng = 3;
    fb_plan *p = NULL;
    assert_fb_ok(ctx, fb_plan_create(ctx, &p));
    int ordered;
    fb_plan_node root = random_plan(p, &rng, 1, &ordered);
    uint64_t want = run_digest(p, root, FB_PLACEMENT_CPU, ordered, NULL, "no device");
    fb_plan_result *r = NULL;
    /* without FB_QUIET the fallback says so on stderr, once */
    unsetenv("FB_QUIET");
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    assert_true(saved >= 0 && dup2(fileno(tmp), 2) >= 0);
    fb_status st = fb_plan_run(p, root, FB_PLACEMENT_HYBRID, &r);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    setenv("FB_QUIET", "1", 1);
    char text[2048] = "";
    rewind(tmp);
    size_t got = fread(text, 1, sizeof text - 1, tmp);
    text[got] = '\0';
    fclose(tmp);
    assert_fb_ok(ctx, st);
    const char *line = strstr(text, "fb: gpu failed (FB_ERR_NO_DEVICE");
    if (!line || strstr(line + 1, "fb: gpu failed"))
        fail_msg("expected one fallback line on stderr, got \"%s\"", text);
    assert_true(result_digest(r, ordered) == want);
    assert_non_null(strstr(fb_plan_result_note(r), "gpu failed (FB_ERR_NO_DEVICE"));
    char *etext = NULL; /* explain analyze says so too */
    size_t elen = 0;
    FILE *ef = open_memstream(&etext, &elen);
    assert_non_null(ef);
    assert_fb_ok(ctx, fb_plan_explain(p, root, FB_PLACEMENT_HYBRID, r, ef));
    fclose(ef);
    if (!strstr(etext, "gpu failed (FB_ERR_NO_DEVICE") || !strstr(etext, "); ran on cpu"))
        fail_msg("explain analyze of a hybrid run without a device lacks the fallback note:\n%s", etext);
    free(etext);
    fb_plan_result_free(r);
    r = (fb_plan_result *)&r;
    assert_fb_status(ctx, fb_plan_run(p, root, FB_PLACEMENT_GPU, &r), FB_ERR_NO_DEVICE);
    assert_null(r);
    fb_plan_destroy(p);
    fb_ctx_destroy(c2);
    ctx = keep;
}

static int setup(void **state)
{
    (void)state;
    fb_options *o = NULL;
    /* three workers: under hybrid one drives the device and two take CPU morsels */
    if (fb_options_create(&o) != FB_OK || fb_options_set_threads(o, 3) != FB_OK)
        return -1;
    int rc = fbt_cl_ctx_create(o, &ctx);
    fb_options_destroy(o);
    if (rc != 0)
        return -1;
    make_tables();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fb_cl_fault_off();
    fb_ctx_destroy(ctx);
    free_tables();
    return 0;
}

int main(void)
{
    setenv("FB_PLAN_DEVICE_MORSEL", "4096", 1);
    setenv("FB_QUIET", "1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_plans), cmocka_unit_test(test_explain),     cmocka_unit_test(test_ssb),
        cmocka_unit_test(test_faults_hybrid), cmocka_unit_test(test_faults_auto), cmocka_unit_test(test_faults_gpu),
        cmocka_unit_test(test_no_device),     cmocka_unit_test(test_chain_bytes),
        cmocka_unit_test(test_chain_budget),   cmocka_unit_test(test_chain_shapes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
