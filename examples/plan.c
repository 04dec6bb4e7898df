/* plan.c - running a query plan (fb_plan.h) from C: fb splits it into pipelines and runs them on its own
 * workers (compare engine_threads.c, where the engine drives the kernels itself).
 *
 *   SELECT c_region, count(*), sum(o_amount)
 *   FROM orders JOIN customers ON o_cust = c_id
 *   WHERE o_amount BETWEEN 100 AND 900 AND c_region IN (1, 3)
 *   GROUP BY c_region ORDER BY c_region
 *
 * Prints explain analyze and the answer, checks it against a plain loop; exit status 0 when equal.
 * Build: cc -std=c11 -O2 plan.c $(pkg-config --cflags --libs fb)
 */
#include <fb/fb.h>

#include <stdio.h>
#include <stdlib.h>

enum { CUSTOMERS = 20000, ORDERS = 3000000 };

static uint64_t rng = 42;
static uint64_t next_random(void)
{
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#define CHECK(expr)                                                                                    \
    do {                                                                                               \
        if ((expr) != FB_OK) {                                                                         \
            fprintf(stderr, "%s: %s\n", #expr, fb_last_error(ctx));                                    \
            return 1;                                                                                  \
        }                                                                                              \
    } while (0)

int main(void)
{
    int32_t *c_id = malloc(sizeof *c_id * CUSTOMERS), *c_region = malloc(sizeof *c_region * CUSTOMERS);
    int32_t *o_cust = malloc(sizeof *o_cust * ORDERS);
    int64_t *o_amount = malloc(sizeof *o_amount * ORDERS);
    if (!c_id || !c_region || !o_cust || !o_amount)
        return 1;
    for (int i = 0; i < CUSTOMERS; i++) {
        c_id[i] = i + 1;
        c_region[i] = (int32_t)(next_random() % 5);
    }
    for (int i = 0; i < ORDERS; i++) {
        o_cust[i] = (int32_t)(1 + next_random() % CUSTOMERS);
        o_amount[i] = (int64_t)(next_random() % 1000);
    }
    fb_ctx *ctx = NULL;
    if (fb_ctx_create(NULL, &ctx) != FB_OK) {
        fprintf(stderr, "fb_ctx_create: %s\n", fb_last_error(NULL));
        return 1;
    }
    fb_column oc[2] = {fb_column_make(FB_TYPE_INT32, o_cust, ORDERS, NULL),
                       fb_column_make(FB_TYPE_INT64, o_amount, ORDERS, NULL)};
    fb_column cc[2] = {fb_column_make(FB_TYPE_INT32, c_id, CUSTOMERS, NULL),
                       fb_column_make(FB_TYPE_INT32, c_region, CUSTOMERS, NULL)};
    const char *on[2] = {"o_cust", "o_amount"}, *cn[2] = {"c_id", "c_region"};
    fb_table orders = {2, oc, on}, customers = {2, cc, cn};

    fb_plan *p = NULL;
    fb_plan_node so, fo, sc, fc, j, a, s;
    CHECK(fb_plan_create(ctx, &p));
    CHECK(fb_plan_scan(p, &orders, "orders", NULL, 0, &so));
    fb_plan_pred amount = {.kind = FB_PLAN_PRED_BETWEEN, .column = 1, .lo = 100, .hi = 900};
    CHECK(fb_plan_filter(p, so, &amount, 1, &fo));
    CHECK(fb_plan_scan(p, &customers, "customers", NULL, 0, &sc));
    static const int64_t regions[2] = {1, 3};
    fb_plan_pred region = {.kind = FB_PLAN_PRED_IN, .column = 1, .in_values = regions, .n_in = 2};
    CHECK(fb_plan_filter(p, sc, &region, 1, &fc));
    size_t pk = 0, bk = 0, payload = 1; /* o_cust = c_id, carrying c_region (column 2 of the join) */
    CHECK(fb_plan_join(p, fo, fc, &pk, &bk, 1, FB_JOIN_INNER, &payload, 1, &j));
    size_t key = 2;
    fb_plan_agg aggs[2] = {{FB_AGG_COUNT_STAR, 0}, {FB_AGG_SUM, 1}};
    CHECK(fb_plan_aggregate(p, j, &key, 1, aggs, 2, &a));
    fb_plan_sort_key by = {0, 0, 0};
    CHECK(fb_plan_sort(p, a, &by, 1, -1, &s));

    fb_plan_result *r = NULL;
    CHECK(fb_plan_run(p, s, FB_PLACEMENT_AUTO, &r));
    CHECK(fb_plan_explain(p, s, FB_PLACEMENT_AUTO, r, stdout));

    int64_t ref_count[5] = {0}, ref_sum[5] = {0};
    for (int i = 0; i < ORDERS; i++) {
        int reg = c_region[o_cust[i] - 1];
        if (o_amount[i] >= 100 && o_amount[i] <= 900 && (reg == 1 || reg == 3))
            ref_count[reg]++, ref_sum[reg] += o_amount[i];
    }
    const int32_t *rk = r->table.columns[0].data;
    const int64_t *rc = r->table.columns[1].data, *rs = r->table.columns[2].data;
    int wrong = r->rows != 2;
    for (int64_t i = 0; i < r->rows && !wrong; i++) {
        printf("c_region %d: count %lld, sum %lld\n", rk[i], (long long)rc[i], (long long)rs[i]);
        wrong |= (i == 0 ? rk[i] != 1 : rk[i] != 3) || rc[i] != ref_count[rk[i]] || rs[i] != ref_sum[rk[i]];
    }
    printf("plan: %s\n", wrong ? "WRONG ANSWER" : "matches the plain loop");
    fb_plan_result_free(r);
    fb_plan_destroy(p);
    fb_ctx_destroy(ctx);
    free(c_id);
    free(c_region);
    free(o_cust);
    free(o_amount);
    return wrong;
}
