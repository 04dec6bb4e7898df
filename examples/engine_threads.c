/* engine_threads.c - how an engine with its own scheduler uses fb's kernel-level API from its own threads.
 *
 *   SELECT c_region, count(*), sum(o_amount)
 *   FROM orders JOIN customer ON o_cust = c_key
 *   WHERE o_amount > 500
 *   GROUP BY c_region
 *
 * The engine (this file) owns the threads and the morsels: it builds one fb_hash_table over customer
 * (one thread), then each of its pthreads takes morsels of orders from an atomic counter and runs, per
 * morsel: fb_select_cmp (the filter) -> fb_compact (the surviving keys) -> fb_hash_table_probe (the join,
 * in bounded chunks of id pairs) -> fb_gather (late materialization of c_region and o_amount) ->
 * fb_agg_update into the thread's own aggregation table. At the end the tables are merged with
 * fb_agg_merge and read with fb_agg_result. fb runs no thread of its own here.
 *
 * The answer is checked against a plain loop; exit status 0 when equal.
 * Build: cc -std=c11 -O2 engine_threads.c $(pkg-config --cflags --libs fb) -lpthread
 */
#include <fb/fb.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CUSTOMERS = 50000, ORDERS = 2000000, REGIONS = 5, MORSEL = 65536, PAIRS = 8192, THREADS = 2 };

static int32_t c_key[CUSTOMERS], c_region[CUSTOMERS];
static int32_t *o_cust;
static int64_t *o_amount;

typedef struct worker {
    fb_ctx *ctx;
    const fb_hash_table *ht;
    atomic_long *next_morsel;
    fb_agg_table *agg; /* the thread's own table */
    fb_status status;
} worker;

#define CHECK(expr)                                                                                    \
    do {                                                                                               \
        fb_status st_ = (expr);                                                                        \
        if (st_ != FB_OK) {                                                                            \
            fprintf(stderr, "%s: %s: %s\n", #expr, fb_status_name(st_), fb_last_error(w->ctx));        \
            w->status = st_;                                                                           \
            goto done;                                                                                 \
        }                                                                                              \
    } while (0)

static void *work(void *arg)
{
    worker *w = arg;
    uint32_t *sel = malloc(sizeof *sel * MORSEL);
    int32_t *keys = malloc(sizeof *keys * MORSEL);
    int64_t *build_ids = malloc(sizeof *build_ids * PAIRS), *probe_ids = malloc(sizeof *probe_ids * PAIRS);
    int32_t *region = malloc(sizeof *region * PAIRS);
    int64_t *amount = malloc(sizeof *amount * PAIRS);
    w->status = FB_OK;
    if (!sel || !keys || !build_ids || !probe_ids || !region || !amount) {
        w->status = FB_ERR_OUT_OF_MEMORY;
        goto done;
    }
    const fb_column regions = fb_column_make(FB_TYPE_INT32, c_region, CUSTOMERS, NULL);
    for (;;) {
        long m = atomic_fetch_add(w->next_morsel, 1);
        int64_t first = (int64_t)m * MORSEL;
        if (first >= ORDERS)
            break;
        int64_t rows = ORDERS - first < MORSEL ? ORDERS - first : MORSEL;
        /* WHERE o_amount > 500 */
        fb_column amt = fb_column_make(FB_TYPE_INT64, o_amount + first, rows, NULL);
        int64_t threshold = 500, n_sel = 0;
        CHECK(fb_select_cmp(w->ctx, &amt, FB_CMP_GT, &threshold, NULL, 0, sel, MORSEL, &n_sel));
        /* The surviving join keys, contiguous. */
        fb_column cust = fb_column_make(FB_TYPE_INT32, o_cust + first, rows, NULL);
        fb_column_out kout = {.type = FB_TYPE_INT32, .capacity = MORSEL, .data = keys};
        CHECK(fb_compact(w->ctx, &cust, sel, n_sel, &kout));
        fb_column probe_keys = fb_column_make(FB_TYPE_INT32, keys, kout.length, NULL);
        /* JOIN customer: pairs in chunks of PAIRS (probe ids index the compacted keys). */
        fb_join_cursor cursor = FB_JOIN_CURSOR_INIT;
        fb_join_pairs pairs = {build_ids, probe_ids, PAIRS, 0, 0};
        do {
            CHECK(fb_hash_table_probe(w->ctx, w->ht, &probe_keys, 1, FB_JOIN_INNER, 0, &cursor, &pairs));
            /* Back to the morsel's row numbers, then to global ones for the gather of o_amount. */
            for (int64_t i = 0; i < pairs.length; i++)
                probe_ids[i] = first + sel[probe_ids[i]];
            fb_column_out rout = {.type = FB_TYPE_INT32, .capacity = PAIRS, .data = region};
            fb_column_out aout = {.type = FB_TYPE_INT64, .capacity = PAIRS, .data = amount};
            fb_column all_amounts = fb_column_make(FB_TYPE_INT64, o_amount, ORDERS, NULL);
            CHECK(fb_gather(w->ctx, &regions, build_ids, pairs.length, &rout));
            CHECK(fb_gather(w->ctx, &all_amounts, probe_ids, pairs.length, &aout));
            /* GROUP BY c_region: count(*), sum(o_amount) */
            fb_column gk = fb_column_make(FB_TYPE_INT32, region, pairs.length, NULL);
            fb_column gv = fb_column_make(FB_TYPE_INT64, amount, pairs.length, NULL);
            CHECK(fb_agg_update(w->agg, &gk, &gv, 1, pairs.length, NULL, 0));
        } while (pairs.more);
    }
done:
    free(sel);
    free(keys);
    free(build_ids);
    free(probe_ids);
    free(region);
    free(amount);
    return NULL;
}

static uint64_t rng = 0x5eed;
static uint64_t next_random(void)
{
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int main(void)
{
    o_cust = malloc(sizeof *o_cust * ORDERS);
    o_amount = malloc(sizeof *o_amount * ORDERS);
    if (!o_cust || !o_amount)
        return 1;
    for (int i = 0; i < CUSTOMERS; i++) {
        c_key[i] = i * 3; /* keys with gaps: a third of the orders find no customer */
        c_region[i] = (int32_t)(next_random() % REGIONS);
    }
    for (int i = 0; i < ORDERS; i++) {
        o_cust[i] = (int32_t)(next_random() % (CUSTOMERS * 3));
        o_amount[i] = (int64_t)(next_random() % 1000);
    }

    fb_ctx *ctx = NULL;
    if (fb_ctx_create(NULL, &ctx) != FB_OK) {
        fprintf(stderr, "fb_ctx_create: %s\n", fb_last_error(NULL));
        return 1;
    }
    /* Build side, on this thread. */
    fb_type kt = FB_TYPE_INT32;
    fb_hash_table *ht = NULL;
    fb_column ck = fb_column_make(FB_TYPE_INT32, c_key, CUSTOMERS, NULL);
    if (fb_hash_table_create(ctx, &kt, 1, CUSTOMERS, &ht) != FB_OK || fb_hash_table_build(ctx, ht, &ck, 1, 0) != FB_OK) {
        fprintf(stderr, "build: %s\n", fb_last_error(ctx));
        return 1;
    }
    /* Probe side on the engine's threads, each with its own aggregation table. */
    fb_agg_desc aggs[2] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT64}};
    fb_agg_spec spec = {1, &kt, 2, aggs, FB_AGG_STRATEGY_AUTO};
    atomic_long next = 0;
    worker w[THREADS];
    pthread_t tid[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (worker){ctx, ht, &next, NULL, FB_OK};
        if (fb_agg_create(ctx, &spec, &w[t].agg) != FB_OK || pthread_create(&tid[t], NULL, work, &w[t]) != 0) {
            fprintf(stderr, "worker %d: %s\n", t, fb_last_error(ctx));
            return 1;
        }
    }
    int failed = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(tid[t], NULL);
        failed |= w[t].status != FB_OK;
        if (t > 0 && !failed && fb_agg_merge(w[0].agg, w[t].agg) != FB_OK) {
            fprintf(stderr, "merge: %s\n", fb_last_error(ctx));
            failed = 1;
        }
    }
    int64_t groups = 0;
    int32_t out_region[REGIONS];
    int64_t out_count[REGIONS], out_sum[REGIONS];
    if (!failed) {
        fb_column_out keys = {.type = FB_TYPE_INT32, .capacity = REGIONS, .data = out_region};
        fb_column_out res[2] = {{.type = FB_TYPE_INT64, .capacity = REGIONS, .data = out_count},
                                {.type = FB_TYPE_INT64, .capacity = REGIONS, .data = out_sum}};
        if (fb_agg_group_count(w[0].agg, &groups) != FB_OK || groups > REGIONS ||
            fb_agg_result(w[0].agg, &keys, res) != FB_OK) {
            fprintf(stderr, "result: %s\n", fb_last_error(ctx));
            failed = 1;
        }
    }
    /* The same query as a plain loop. */
    int64_t ref_count[REGIONS] = {0}, ref_sum[REGIONS] = {0};
    for (int i = 0; i < ORDERS; i++)
        if (o_amount[i] > 500 && o_cust[i] % 3 == 0) {
            ref_count[c_region[o_cust[i] / 3]]++;
            ref_sum[c_region[o_cust[i] / 3]] += o_amount[i];
        }
    int wrong = failed;
    for (int64_t g = 0; !failed && g < groups; g++) {
        int r = out_region[g];
        printf("c_region %d: count %lld, sum %lld\n", r, (long long)out_count[g], (long long)out_sum[g]);
        wrong |= r < 0 || r >= REGIONS || out_count[g] != ref_count[r] || out_sum[g] != ref_sum[r];
    }
    int ref_groups = 0;
    for (int r = 0; r < REGIONS; r++)
        ref_groups += ref_count[r] > 0;
    wrong |= groups != ref_groups;
    printf("engine_threads: %s\n", wrong ? "WRONG ANSWER" : "matches the plain loop");
    for (int t = 0; t < THREADS; t++)
        fb_agg_destroy(w[t].agg);
    fb_hash_table_destroy(ht);
    fb_ctx_destroy(ctx);
    free(o_cust);
    free(o_amount);
    return wrong ? 1 : 0;
}
