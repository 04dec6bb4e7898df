/* test_concurrency.c - several caller threads running queries on one context at once (runtime joins,
 * both algorithms; scan-filter-sums; plans through fb_plan_run: join + aggregate + sort), while another
 * thread cancels the running queries at random times. Every query that completes must give the
 * answer of an independent scalar reference computed here; a cancelled one returns FB_ERR_CANCELLED
 * with a message saying so; any other status fails. Afterwards the context's memory accounting is back
 * to zero (LSan checks the rest in the asan build), and once the context is destroyed no thread of
 * fb's is left (the process has as many threads as before it). Runs under TSan in CI (.ci/run). */
#include "fb_test.h"

#include "fb_pipeline_join_internal.h"
#include "fb_pipeline_scan_agg_internal.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

enum { CALLERS = 4, ITERS = 9, NB = 20000, NP = 120000, KEYS = 5000, NF = 200000 };

static int32_t bk[NB], bv[NB], pk[NP], pv[NP];
static int64_t fcol[NF];
static int64_t ref_cnt[2 * KEYS], ref_sum[2 * KEYS]; /* build side: rows and sum of bv per key */
static int64_t join_count, join_sum;         /* the join's reference */
/* the plan's reference: probe joined with build on the key, grouped by the probe key: count, sum(bv) */
static int64_t plan_cnt[2 * KEYS], plan_sum[2 * KEYS];

static fb_ctx *ctx;

/* The query each caller runs now (NULL between queries), for the canceller. */
static pthread_mutex_t slot_lock[CALLERS];
static fb_query *slot[CALLERS];
static atomic_int stop;
static atomic_long completed, cancelled, cancels_sent;

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void publish(int caller, fb_query *q)
{
    pthread_mutex_lock(&slot_lock[caller]);
    slot[caller] = q;
    pthread_mutex_unlock(&slot_lock[caller]);
}

static void *canceller_main(void *arg)
{
    uint64_t rng = *(uint64_t *)arg;
    while (!atomic_load(&stop)) {
        struct timespec t = {0, (long)(fbt_next(&rng) % 3000000)};
        nanosleep(&t, NULL);
        int c = (int)(fbt_next(&rng) % CALLERS);
        pthread_mutex_lock(&slot_lock[c]);
        if (slot[c]) {
            fb_query_cancel(slot[c]);
            atomic_fetch_add(&cancels_sent, 1);
        }
        pthread_mutex_unlock(&slot_lock[c]);
    }
    return NULL;
}

typedef struct caller {
    int index;
    uint64_t rng;
    char error[512]; /* the first mismatch or unexpected status, "" when none */
} caller;

#define CHECK(c, cond, ...)                                                                                            \
    do {                                                                                                               \
        if (!(cond) && !(c)->error[0])                                                                                 \
            snprintf((c)->error, sizeof (c)->error, __VA_ARGS__);                                                      \
    } while (0)

/* FB_OK or FB_ERR_CANCELLED (with a message about the cancellation); anything else is an error. */
static int outcome(caller *c, const char *what, fb_status st)
{
    if (st == FB_ERR_CANCELLED) {
        CHECK(c, strstr(fb_last_error(ctx), "cancel") != NULL, "%s: cancelled without saying so: %s", what,
              fb_last_error(ctx));
        atomic_fetch_add(&cancelled, 1);
        return 0;
    }
    CHECK(c, st == FB_OK, "%s: %s (%s)", what, fb_status_name(st), fb_last_error(ctx));
    if (st == FB_OK)
        atomic_fetch_add(&completed, 1);
    return st == FB_OK;
}

static void run_join(caller *c, int radix_bits)
{
    fb_join_input in;
    memset(&in, 0, sizeof in);
    in.build_key = fb_column_make(FB_TYPE_INT32, bk, NB, NULL);
    in.build_val = fb_column_make(FB_TYPE_INT32, bv, NB, NULL);
    in.probe_key = fb_column_make(FB_TYPE_INT32, pk, NP, NULL);
    in.probe_val = fb_column_make(FB_TYPE_INT32, pv, NP, NULL);
    in.output = FB_JOIN_OUTPUT_COUNT_SUM;
    in.morsel_rows = 4096;
    in.radix_bits = radix_bits;
    fb_query *q = NULL;
    fb_join_result r;
    memset(&r, 0, sizeof r);
    fb_status st = fb_query_create(ctx, &q);
    if (st == FB_OK)
        st = fb_pipeline_add_join(q, &in, &r);
    if (st == FB_OK) {
        publish(c->index, q);
        st = fb_query_run(q);
        publish(c->index, NULL);
    }
    fb_query_destroy(q);
    if (outcome(c, "join", st))
        CHECK(c, r.count == join_count && r.sum == join_sum, "join (radix bits %d): %lld pairs, sum %lld; want %lld, %lld",
              radix_bits, (long long)r.count, (long long)r.sum, (long long)join_count, (long long)join_sum);
}

static void run_filter_sum(caller *c)
{
    int64_t lo = (int64_t)(fbt_next(&c->rng) % 1000000) - 500000, hi = lo + (int64_t)(fbt_next(&c->rng) % 600000);
    int64_t want_n = 0, want_s = 0;
    for (int64_t i = 0; i < NF; i++)
        if (fcol[i] >= lo && fcol[i] <= hi) {
            want_n++;
            want_s += fcol[i];
        }
    fb_column col = fb_column_make(FB_TYPE_INT64, fcol, NF, NULL);
    fb_scan_sum_result r = {-1, -1};
    fb_query *q = NULL;
    fb_status st = fb_query_create(ctx, &q);
    if (st == FB_OK)
        st = fb_pipeline_add_scan_filter_sum(q, &col, lo, hi, 2048, &r, NULL);
    if (st == FB_OK) {
        publish(c->index, q);
        st = fb_query_run(q);
        publish(c->index, NULL);
    }
    fb_query_destroy(q);
    if (outcome(c, "scan-filter-sum", st))
        CHECK(c, r.count == want_n && r.sum == want_s, "scan-filter-sum [%lld, %lld]: %lld rows, sum %lld; want %lld, %lld",
              (long long)lo, (long long)hi, (long long)r.count, (long long)r.sum, (long long)want_n, (long long)want_s);
}

/* select p.key, count(*), sum(b.val) from probe p join build b on p.key = b.key group by p.key order by 1 */
static void run_plan(caller *c)
{
    fb_column pc[1] = {fb_column_make(FB_TYPE_INT32, pk, NP, NULL)};
    fb_column bc[2] = {fb_column_make(FB_TYPE_INT32, bk, NB, NULL), fb_column_make(FB_TYPE_INT32, bv, NB, NULL)};
    fb_table pt = {1, pc, NULL}, bt = {2, bc, NULL};
    fb_plan *p = NULL;
    fb_plan_node ps, bs, j, a, s;
    size_t k0 = 0, pay = 1, key = 0, val = 1;
    fb_plan_agg aggs[2] = {{FB_AGG_COUNT_STAR, 0}, {FB_AGG_SUM, val}};
    fb_plan_sort_key by = {0, 0, 0};
    fb_plan_result *r = NULL;
    fb_status st = fb_plan_create(ctx, &p);
    if (st == FB_OK)
        st = fb_plan_scan(p, &pt, "p", NULL, 0, &ps);
    if (st == FB_OK)
        st = fb_plan_scan(p, &bt, "b", NULL, 0, &bs);
    if (st == FB_OK)
        st = fb_plan_join(p, ps, bs, &k0, &k0, 1, FB_JOIN_INNER, &pay, 1, &j);
    if (st == FB_OK)
        st = fb_plan_aggregate(p, j, &key, 1, aggs, 2, &a);
    if (st == FB_OK)
        st = fb_plan_sort(p, a, &by, 1, -1, &s);
    if (st == FB_OK)
        st = fb_plan_run(p, s, FB_PLACEMENT_CPU, &r);
    if (outcome(c, "plan", st)) {
        int64_t row = 0;
        for (int k = 0; k < 2 * KEYS && !c->error[0]; k++) {
            if (!plan_cnt[k])
                continue;
            const fb_column *kc = &r->table.columns[0], *cc = &r->table.columns[1], *sc = &r->table.columns[2];
            CHECK(c, row < r->rows, "plan: %lld rows, fewer than the reference's", (long long)r->rows);
            if (row >= r->rows)
                break;
            int32_t gk = ((const int32_t *)kc->data)[kc->offset + row];
            int64_t gc = ((const int64_t *)cc->data)[cc->offset + row], gs = ((const int64_t *)sc->data)[sc->offset + row];
            CHECK(c, gk == k && gc == plan_cnt[k] && gs == plan_sum[k],
                  "plan row %lld: (%d, %lld, %lld), want (%d, %lld, %lld)", (long long)row, gk, (long long)gc,
                  (long long)gs, k, (long long)plan_cnt[k], (long long)plan_sum[k]);
            row++;
        }
        CHECK(c, row == r->rows, "plan: %lld rows, want %lld", (long long)r->rows, (long long)row);
    }
    fb_plan_result_free(r);
    fb_plan_destroy(p);
}

static void *caller_main(void *arg)
{
    caller *c = arg;
    for (int i = 0; i < ITERS && !c->error[0]; i++) {
        switch ((i + c->index) % 4) {
        case 0:
            run_join(c, -1);
            break;
        case 1:
            run_filter_sum(c);
            break;
        case 2:
            run_plan(c);
            break;
        default:
            run_join(c, 4); /* radix */
            break;
        }
    }
    return NULL;
}

static void test_concurrent_cancel(void **state)
{
    (void)state;
    uint64_t rng = fbt_seed();
    /* the first context starts process-wide threads that outlive it (the OpenCL ICD/PoCL's); count after */
    assert_int_equal(fb_ctx_create(NULL, &ctx), FB_OK);
    fb_ctx_destroy(ctx);
    int threads_before = count_threads();
    fb_options *o = NULL;
    assert_int_equal(fb_options_create(&o), FB_OK);
    assert_int_equal(fb_options_set_threads(o, 3), FB_OK);
    assert_int_equal(fb_ctx_create(o, &ctx), FB_OK);
    fb_options_destroy(o);

    for (int round = 0; round < 2; round++) { /* round 0 without cancellations: every query completes */
        caller c[CALLERS];
        pthread_t th[CALLERS], canceller;
        atomic_store(&stop, 0);
        long done_before = atomic_load(&completed);
        uint64_t crng = fbt_next(&rng);
        if (round == 1)
            assert_int_equal(pthread_create(&canceller, NULL, canceller_main, &crng), 0);
        for (int i = 0; i < CALLERS; i++) {
            memset(&c[i], 0, sizeof c[i]);
            c[i].index = i;
            c[i].rng = fbt_next(&rng);
            assert_int_equal(pthread_create(&th[i], NULL, caller_main, &c[i]), 0);
        }
        for (int i = 0; i < CALLERS; i++)
            pthread_join(th[i], NULL);
        atomic_store(&stop, 1);
        if (round == 1)
            pthread_join(canceller, NULL);
        for (int i = 0; i < CALLERS; i++)
            if (c[i].error[0])
                fail_msg("caller %d: %s", i, c[i].error);
        if (round == 0)
            assert_int_equal(atomic_load(&completed) - done_before, CALLERS * ITERS);
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
    }
    print_message("[ concur   ] %d callers x %d queries x 2 rounds: %ld completed, %ld cancelled (%ld cancels sent)\n",
                  CALLERS, ITERS, atomic_load(&completed), atomic_load(&cancelled), atomic_load(&cancels_sent));
    fb_ctx_destroy(ctx);
    /* a joined thread can stay listed for a moment after pthread_join() returns */
    int threads_after = count_threads();
    for (int i = 0; i < 200 && threads_after != threads_before; i++) {
        struct timespec t = {0, 10000000};
        nanosleep(&t, NULL);
        threads_after = count_threads();
    }
    if (threads_after != threads_before)
        fail_msg("%d threads before the context, %d after its destruction", threads_before, threads_after);
}

int main(void)
{
    uint64_t s = 0xC0C0;
    for (int i = 0; i < CALLERS; i++)
        pthread_mutex_init(&slot_lock[i], NULL);
    for (int64_t i = 0; i < NB; i++) {
        uint64_t x = fbt_next(&s);
        bk[i] = (int32_t)(x % (KEYS * 2)); /* keys past KEYS + 500: build rows without partners */
        bv[i] = (int32_t)(x >> 40) % 1000 - 300;
        ref_cnt[bk[i]]++;
        ref_sum[bk[i]] += bv[i];
    }
    for (int64_t i = 0; i < NP; i++) {
        uint64_t x = fbt_next(&s);
        /* skewed: a quarter of the rows on 8 keys; some keys without partners */
        pk[i] = x % 4 == 0 ? (int32_t)((x >> 8) % 8) : (int32_t)((x >> 8) % (KEYS + 500));
        pv[i] = (int32_t)(x >> 40) % 2000 - 1000;
        if (ref_cnt[pk[i]]) {
            join_count += ref_cnt[pk[i]];
            join_sum += ref_sum[pk[i]] + ref_cnt[pk[i]] * (int64_t)pv[i];
            plan_cnt[pk[i]] += ref_cnt[pk[i]];
            plan_sum[pk[i]] += ref_sum[pk[i]];
        }
    }
    for (int64_t i = 0; i < NF; i++)
        fcol[i] = (int64_t)(fbt_next(&s) % 2000000) - 1000000;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_concurrent_cancel)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
