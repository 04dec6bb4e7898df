/* fbench_plan.c - `fbench plan ssb`: the 13 Star Schema Benchmark queries as fb plans (fb_plan.h) over
 * the tables of ssb.c, run under each placement, printed side by side (and as JSON, with the decoded
 * answers, for the DuckDB comparison in test/ssb_plan_check.py). */
#include "fbench.h"
#include "ssb.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- a builder that tracks column names (and dictionaries) per node ------------------------------- */

typedef struct bnode {
    fb_plan_node id;
    int n;
    const char *names[FB_PLAN_MAX_COLUMNS];
    const ssb_dict *dicts[FB_PLAN_MAX_COLUMNS];
} bnode;

typedef struct builder {
    fb_plan *plan;
    const ssb_data *d;
    fb_table tables[SSB_N_TABLES];
    fb_column cols[SSB_N_TABLES][SSB_MAX_COLUMNS];
    const char *names[SSB_N_TABLES][SSB_MAX_COLUMNS];
    int failed;
    char error[512];
} builder;

/* A builder over the SSB tables of d (the plan is set later). */
static void builder_init(builder *b, const ssb_data *d)
{
    memset(b, 0, sizeof *b);
    b->d = d;
    for (int t = 0; t < SSB_N_TABLES; t++) {
        const ssb_table *tb = &d->tables[t];
        for (int c = 0; c < tb->n_columns; c++) {
            b->cols[t][c] = fb_column_make(tb->columns[c].type, tb->columns[c].data, tb->rows, NULL);
            b->names[t][c] = tb->columns[c].name;
        }
        b->tables[t] = (fb_table){(size_t)tb->n_columns, b->cols[t], b->names[t]};
    }
}

static void fail(builder *b, const char *what)
{
    if (!b->failed)
        snprintf(b->error, sizeof b->error, "%s: %s", what, fb_last_error(NULL));
    b->failed = 1;
}

static int col(const bnode *n, const char *name)
{
    for (int i = 0; i < n->n; i++)
        if (strcmp(n->names[i], name) == 0)
            return i;
    fprintf(stderr, "fbench plan: no column %s (a bug in fbench_plan.c)\n", name);
    abort();
}

static const ssb_table *table_of(builder *b, int t)
{
    return &b->d->tables[t];
}

/* Scans `names` (NULL-terminated) of table t. */
static bnode scan(builder *b, int t, const char *const *names)
{
    bnode n = {0};
    size_t idx[FB_PLAN_MAX_COLUMNS];
    const ssb_table *tb = table_of(b, t);
    for (; names[n.n]; n.n++) {
        const ssb_column *c = ssb_find(tb, names[n.n]);
        if (!c) {
            fprintf(stderr, "fbench plan: no column %s in %s\n", names[n.n], tb->name);
            abort();
        }
        idx[n.n] = (size_t)(c - tb->columns);
        n.names[n.n] = c->name;
        n.dicts[n.n] = c->dict;
    }
    if (!b->failed && fb_plan_scan(b->plan, &b->tables[t], tb->name, idx, (size_t)n.n, &n.id) != FB_OK)
        fail(b, "scan");
    return n;
}

/* The code of string s in column `name` of node n (a sorted dictionary: code order = string order). */
static int64_t code(const bnode *n, const char *name, const char *s)
{
    const ssb_dict *d = n->dicts[col(n, name)];
    for (int32_t i = 0; d && i < d->n; i++)
        if (strcmp(d->values[i], s) == 0)
            return i;
    fprintf(stderr, "fbench plan: '%s' is not a value of %s\n", s, name);
    abort();
}

/* First code ≥ s (lower bound) and last code ≤ s (upper bound) for string ranges. */
static int64_t code_lo(const bnode *n, const char *name, const char *s)
{
    const ssb_dict *d = n->dicts[col(n, name)];
    int32_t i = 0;
    while (i < d->n && strcmp(d->values[i], s) < 0)
        i++;
    return i;
}

static int64_t code_hi(const bnode *n, const char *name, const char *s)
{
    const ssb_dict *d = n->dicts[col(n, name)];
    int32_t i = d->n - 1;
    while (i >= 0 && strcmp(d->values[i], s) > 0)
        i--;
    return i;
}

static fb_plan_pred p_eq(const bnode *n, const char *name, int64_t v)
{
    fb_plan_pred p = {.kind = FB_PLAN_PRED_CMP, .column = (size_t)col(n, name), .op = FB_CMP_EQ, .value = v};
    return p;
}

static fb_plan_pred p_cmp(const bnode *n, const char *name, fb_cmp op, int64_t v)
{
    fb_plan_pred p = {.kind = FB_PLAN_PRED_CMP, .column = (size_t)col(n, name), .op = op, .value = v};
    return p;
}

static fb_plan_pred p_between(const bnode *n, const char *name, int64_t lo, int64_t hi)
{
    fb_plan_pred p = {.kind = FB_PLAN_PRED_BETWEEN, .column = (size_t)col(n, name), .lo = lo, .hi = hi};
    return p;
}

static fb_plan_pred p_in(const bnode *n, const char *name, const int64_t *v, size_t k)
{
    fb_plan_pred p = {.kind = FB_PLAN_PRED_IN, .column = (size_t)col(n, name), .in_values = v, .n_in = k};
    return p;
}

static bnode filter(builder *b, bnode in, const fb_plan_pred *preds, size_t k)
{
    bnode n = in;
    if (!b->failed && fb_plan_filter(b->plan, in.id, preds, k, &n.id) != FB_OK)
        fail(b, "filter");
    return n;
}

/* probe JOIN build ON pkey = bkey, carrying `payload` (NULL-terminated) of the build side. */
static bnode join(builder *b, bnode probe, bnode build, const char *pkey, const char *bkey, fb_join_type type,
                  const char *const *payload)
{
    bnode n = probe;
    size_t pk = (size_t)col(&probe, pkey), bk = (size_t)col(&build, bkey), pay[FB_PLAN_MAX_COLUMNS] = {0};
    size_t np = 0;
    for (; payload && payload[np]; np++) {
        pay[np] = (size_t)col(&build, payload[np]);
        n.names[n.n] = payload[np];
        n.dicts[n.n++] = build.dicts[pay[np]];
    }
    if (!b->failed && fb_plan_join(b->plan, probe.id, build.id, &pk, &bk, 1, type, pay, np, &n.id) != FB_OK)
        fail(b, "join");
    return n;
}

static bnode project(builder *b, bnode in, fb_plan_arith op, const char *l, const char *r, const char *name)
{
    bnode n = in;
    if (!b->failed &&
        fb_plan_project(b->plan, in.id, op, (size_t)col(&in, l), (size_t)col(&in, r), 0, 0, &n.id) != FB_OK)
        fail(b, "project");
    n.names[n.n] = name;
    n.dicts[n.n++] = NULL;
    return n;
}

/* GROUP BY keys (NULL-terminated) with sum(sum_col) named `as`. */
static bnode group_sum(builder *b, bnode in, const char *const *keys, const char *sum_col, const char *as)
{
    bnode n = {0};
    size_t k[FB_AGG_MAX_KEYS];
    size_t nk = 0;
    for (; keys && keys[nk]; nk++) {
        k[nk] = (size_t)col(&in, keys[nk]);
        n.names[n.n] = keys[nk];
        n.dicts[n.n++] = in.dicts[k[nk]];
    }
    fb_plan_agg a = {FB_AGG_SUM, (size_t)col(&in, sum_col)};
    n.names[n.n] = as;
    n.dicts[n.n++] = NULL;
    if (!b->failed && fb_plan_aggregate(b->plan, in.id, k, nk, &a, 1, &n.id) != FB_OK)
        fail(b, "aggregate");
    return n;
}

/* ORDER BY: names (NULL-terminated), a leading '-' for descending. */
static bnode order_by(builder *b, bnode in, const char *const *keys)
{
    bnode n = in;
    fb_plan_sort_key k[8];
    size_t nk = 0;
    for (; keys[nk]; nk++) {
        int desc = keys[nk][0] == '-';
        k[nk] = (fb_plan_sort_key){(size_t)col(&in, keys[nk] + desc), desc, 0};
    }
    if (!b->failed && fb_plan_sort(b->plan, in.id, k, nk, -1, &n.id) != FB_OK)
        fail(b, "sort");
    return n;
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- the 13 queries ------------------------------------------------------------------------------------ */

typedef struct query {
    const char *name;
    /* Builds the plan; out_cols = the output columns in the SQL's select-list order. */
    bnode (*build)(builder *b, const char **out_cols);
} query;

static bnode q1(builder *b, int variant, const char **out)
{
    bnode lo = scan(b, SSB_LINEORDER, L("lo_orderdate", "lo_quantity", "lo_extendedprice", "lo_discount"));
    bnode d = scan(b, SSB_DATE, L("d_datekey", "d_year", "d_yearmonthnum", "d_weeknuminyear"));
    fb_plan_pred lp[2], dp[2];
    size_t nd = 1;
    if (variant == 1) {
        lp[0] = p_between(&lo, "lo_discount", 1, 3);
        lp[1] = p_cmp(&lo, "lo_quantity", FB_CMP_LT, 25);
        dp[0] = p_eq(&d, "d_year", 1993);
    } else if (variant == 2) {
        lp[0] = p_between(&lo, "lo_discount", 4, 6);
        lp[1] = p_between(&lo, "lo_quantity", 26, 35);
        dp[0] = p_eq(&d, "d_yearmonthnum", 199401);
    } else {
        lp[0] = p_between(&lo, "lo_discount", 5, 7);
        lp[1] = p_between(&lo, "lo_quantity", 26, 35);
        dp[0] = p_eq(&d, "d_weeknuminyear", 6);
        dp[1] = p_eq(&d, "d_year", 1994);
        nd = 2;
    }
    lo = filter(b, lo, lp, 2);
    d = filter(b, d, dp, nd);
    bnode j = join(b, lo, d, "lo_orderdate", "d_datekey", FB_JOIN_SEMI, NULL);
    j = project(b, j, FB_PLAN_MUL, "lo_extendedprice", "lo_discount", "rev");
    out[0] = "revenue";
    return group_sum(b, j, NULL, "rev", "revenue");
}
static bnode q11(builder *b, const char **out) { return q1(b, 1, out); }
static bnode q12(builder *b, const char **out) { return q1(b, 2, out); }
static bnode q13(builder *b, const char **out) { return q1(b, 3, out); }

static bnode q2(builder *b, int variant, const char **out)
{
    bnode lo = scan(b, SSB_LINEORDER, L("lo_orderdate", "lo_partkey", "lo_suppkey", "lo_revenue"));
    bnode p = scan(b, SSB_PART, L("p_partkey", "p_category", "p_brand1"));
    bnode s = scan(b, SSB_SUPPLIER, L("s_suppkey", "s_region"));
    bnode d = scan(b, SSB_DATE, L("d_datekey", "d_year"));
    fb_plan_pred pp, sp;
    if (variant == 1) {
        pp = p_eq(&p, "p_category", code(&p, "p_category", "MFGR#12"));
        sp = p_eq(&s, "s_region", code(&s, "s_region", "AMERICA"));
    } else if (variant == 2) {
        pp = p_between(&p, "p_brand1", code_lo(&p, "p_brand1", "MFGR#2221"), code_hi(&p, "p_brand1", "MFGR#2228"));
        sp = p_eq(&s, "s_region", code(&s, "s_region", "ASIA"));
    } else {
        pp = p_eq(&p, "p_brand1", code(&p, "p_brand1", "MFGR#2239"));
        sp = p_eq(&s, "s_region", code(&s, "s_region", "EUROPE"));
    }
    p = filter(b, p, &pp, 1);
    s = filter(b, s, &sp, 1);
    bnode j = join(b, lo, p, "lo_partkey", "p_partkey", FB_JOIN_INNER, L("p_brand1"));
    j = join(b, j, s, "lo_suppkey", "s_suppkey", FB_JOIN_SEMI, NULL);
    j = join(b, j, d, "lo_orderdate", "d_datekey", FB_JOIN_INNER, L("d_year"));
    bnode a = group_sum(b, j, L("d_year", "p_brand1"), "lo_revenue", "revenue");
    out[0] = "revenue";
    out[1] = "d_year";
    out[2] = "p_brand1";
    return order_by(b, a, L("d_year", "p_brand1"));
}
static bnode q21(builder *b, const char **out) { return q2(b, 1, out); }
static bnode q22(builder *b, const char **out) { return q2(b, 2, out); }
static bnode q23(builder *b, const char **out) { return q2(b, 3, out); }

static bnode q3(builder *b, int variant, const char **out)
{
    bnode lo = scan(b, SSB_LINEORDER, L("lo_orderdate", "lo_custkey", "lo_suppkey", "lo_revenue"));
    bnode c = scan(b, SSB_CUSTOMER, L("c_custkey", "c_city", "c_nation", "c_region"));
    bnode s = scan(b, SSB_SUPPLIER, L("s_suppkey", "s_city", "s_nation", "s_region"));
    bnode d = scan(b, SSB_DATE, L("d_datekey", "d_year", "d_yearmonth"));
    fb_plan_pred cp, sp, dp;
    const char *cg, *sg;
    int64_t c_cities[2], s_cities[2];
    if (variant == 1) {
        cp = p_eq(&c, "c_region", code(&c, "c_region", "ASIA"));
        sp = p_eq(&s, "s_region", code(&s, "s_region", "ASIA"));
        cg = "c_nation";
        sg = "s_nation";
    } else if (variant == 2) {
        cp = p_eq(&c, "c_nation", code(&c, "c_nation", "UNITED STATES"));
        sp = p_eq(&s, "s_nation", code(&s, "s_nation", "UNITED STATES"));
        cg = "c_city";
        sg = "s_city";
    } else {
        c_cities[0] = code(&c, "c_city", "UNITED KI1");
        c_cities[1] = code(&c, "c_city", "UNITED KI5");
        s_cities[0] = code(&s, "s_city", "UNITED KI1");
        s_cities[1] = code(&s, "s_city", "UNITED KI5");
        cp = p_in(&c, "c_city", c_cities, 2);
        sp = p_in(&s, "s_city", s_cities, 2);
        cg = "c_city";
        sg = "s_city";
    }
    if (variant == 4)
        dp = p_eq(&d, "d_yearmonth", code(&d, "d_yearmonth", "Dec1997"));
    else
        dp = p_between(&d, "d_year", 1992, 1997);
    c = filter(b, c, &cp, 1);
    s = filter(b, s, &sp, 1);
    d = filter(b, d, &dp, 1);
    bnode j = join(b, lo, c, "lo_custkey", "c_custkey", FB_JOIN_INNER, (const char *const[]){cg, NULL});
    j = join(b, j, s, "lo_suppkey", "s_suppkey", FB_JOIN_INNER, (const char *const[]){sg, NULL});
    j = join(b, j, d, "lo_orderdate", "d_datekey", FB_JOIN_INNER, L("d_year"));
    bnode a = group_sum(b, j, (const char *const[]){cg, sg, "d_year", NULL}, "lo_revenue", "revenue");
    out[0] = cg;
    out[1] = sg;
    out[2] = "d_year";
    out[3] = "revenue";
    return order_by(b, a, L("d_year", "-revenue"));
}
static bnode q31(builder *b, const char **out) { return q3(b, 1, out); }
static bnode q32(builder *b, const char **out) { return q3(b, 2, out); }
static bnode q33(builder *b, const char **out) { return q3(b, 3, out); }
static bnode q34(builder *b, const char **out) { return q3(b, 4, out); }

static bnode q4(builder *b, int variant, const char **out)
{
    bnode lo = scan(b, SSB_LINEORDER,
                    L("lo_orderdate", "lo_custkey", "lo_suppkey", "lo_partkey", "lo_revenue", "lo_supplycost"));
    bnode c = scan(b, SSB_CUSTOMER, L("c_custkey", "c_nation", "c_region"));
    bnode s = scan(b, SSB_SUPPLIER, L("s_suppkey", "s_city", "s_nation", "s_region"));
    bnode p = scan(b, SSB_PART, L("p_partkey", "p_mfgr", "p_category", "p_brand1"));
    bnode d = scan(b, SSB_DATE, L("d_datekey", "d_year"));
    int64_t mfgr[2] = {code(&p, "p_mfgr", "MFGR#1"), code(&p, "p_mfgr", "MFGR#2")}, years[2] = {1997, 1998};
    fb_plan_pred cp = p_eq(&c, "c_region", code(&c, "c_region", "AMERICA"));
    fb_plan_pred sp = variant == 3 ? p_eq(&s, "s_nation", code(&s, "s_nation", "UNITED STATES"))
                                   : p_eq(&s, "s_region", code(&s, "s_region", "AMERICA"));
    fb_plan_pred pp = variant == 3 ? p_eq(&p, "p_category", code(&p, "p_category", "MFGR#14"))
                                   : p_in(&p, "p_mfgr", mfgr, 2);
    fb_plan_pred dp = p_in(&d, "d_year", years, 2);
    c = filter(b, c, &cp, 1);
    s = filter(b, s, &sp, 1);
    p = filter(b, p, &pp, 1);
    if (variant != 1)
        d = filter(b, d, &dp, 1);
    bnode j;
    if (variant == 1) {
        j = join(b, lo, c, "lo_custkey", "c_custkey", FB_JOIN_INNER, L("c_nation"));
        j = join(b, j, s, "lo_suppkey", "s_suppkey", FB_JOIN_SEMI, NULL);
        j = join(b, j, p, "lo_partkey", "p_partkey", FB_JOIN_SEMI, NULL);
    } else if (variant == 2) {
        j = join(b, lo, c, "lo_custkey", "c_custkey", FB_JOIN_SEMI, NULL);
        j = join(b, j, s, "lo_suppkey", "s_suppkey", FB_JOIN_INNER, L("s_nation"));
        j = join(b, j, p, "lo_partkey", "p_partkey", FB_JOIN_INNER, L("p_category"));
    } else {
        j = join(b, lo, p, "lo_partkey", "p_partkey", FB_JOIN_INNER, L("p_brand1"));
        j = join(b, j, s, "lo_suppkey", "s_suppkey", FB_JOIN_INNER, L("s_city"));
        j = join(b, j, c, "lo_custkey", "c_custkey", FB_JOIN_SEMI, NULL);
    }
    j = join(b, j, d, "lo_orderdate", "d_datekey", FB_JOIN_INNER, L("d_year"));
    j = project(b, j, FB_PLAN_SUB, "lo_revenue", "lo_supplycost", "p");
    bnode a;
    if (variant == 1) {
        a = group_sum(b, j, L("d_year", "c_nation"), "p", "profit");
        out[0] = "d_year", out[1] = "c_nation", out[2] = "profit";
        return order_by(b, a, L("d_year", "c_nation"));
    }
    if (variant == 2) {
        a = group_sum(b, j, L("d_year", "s_nation", "p_category"), "p", "profit");
        out[0] = "d_year", out[1] = "s_nation", out[2] = "p_category", out[3] = "profit";
        return order_by(b, a, L("d_year", "s_nation", "p_category"));
    }
    a = group_sum(b, j, L("d_year", "s_city", "p_brand1"), "p", "profit");
    out[0] = "d_year", out[1] = "s_city", out[2] = "p_brand1", out[3] = "profit";
    return order_by(b, a, L("d_year", "s_city", "p_brand1"));
}
static bnode q41(builder *b, const char **out) { return q4(b, 1, out); }
static bnode q42(builder *b, const char **out) { return q4(b, 2, out); }
static bnode q43(builder *b, const char **out) { return q4(b, 3, out); }

static const query queries[] = {
    {"Q1.1", q11}, {"Q1.2", q12}, {"Q1.3", q13}, {"Q2.1", q21}, {"Q2.2", q22}, {"Q2.3", q23}, {"Q3.1", q31},
    {"Q3.2", q32}, {"Q3.3", q33}, {"Q3.4", q34}, {"Q4.1", q41}, {"Q4.2", q42}, {"Q4.3", q43},
};
#define N_QUERIES (sizeof queries / sizeof queries[0])

/* ---- the command ---------------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int64_t cell_int(const fb_column *c, int64_t i)
{
    int64_t j = c->offset + i;
    switch (c->type) {
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32:
        return ((const int32_t *)c->data)[j];
    case FB_TYPE_INT64:
        return ((const int64_t *)c->data)[j];
    default:
        return 0;
    }
}

/* The answer as JSON rows in the SQL's column order, strings decoded. */
static void write_answer(FILE *f, const bnode *root, const char **out_cols, int n_out, const fb_plan_result *r)
{
    fprintf(f, "[");
    for (int64_t i = 0; i < r->rows; i++) {
        fprintf(f, "%s[", i ? ", " : "");
        for (int k = 0; k < n_out; k++) {
            int c = col(root, out_cols[k]);
            const fb_column *cc = &r->table.columns[c];
            if (k)
                fprintf(f, ", ");
            if (!fb_column_is_valid(cc, i))
                fprintf(f, "null");
            else if (root->dicts[c])
                fbench_json_string(f, root->dicts[c]->values[cell_int(cc, i)]);
            else
                fprintf(f, "%lld", (long long)cell_int(cc, i));
        }
        fprintf(f, "]");
    }
    fprintf(f, "]");
}

static int parse_placements(const char *s, fb_placement *out, int *n)
{
    *n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        fb_placement p;
        if (strcmp(tok, "cpu") == 0)
            p = FB_PLACEMENT_CPU;
        else if (strcmp(tok, "gpu") == 0)
            p = FB_PLACEMENT_GPU;
        else if (strcmp(tok, "hybrid") == 0)
            p = FB_PLACEMENT_HYBRID;
        else if (strcmp(tok, "auto") == 0)
            p = FB_PLACEMENT_AUTO;
        else
            return -1;
        if (*n == 4)
            return -1;
        out[(*n)++] = p;
    }
    return *n ? 0 : -1;
}

#ifndef FB_PEERS_DIR
#define FB_PEERS_DIR "bench/peers"
#endif

/* Runs duckdb_peer.py on the dump with the SSB SQL; fills seconds per query (NAN where missing). */
static int run_peer(const char *dir, int threads, int repeat, double *seconds)
{
    const char *peers = getenv("FB_PEERS_DIR") ? getenv("FB_PEERS_DIR") : FB_PEERS_DIR;
    char out[4200], cmd[16384];
    snprintf(out, sizeof out, "%s/duckdb.json", dir);
    snprintf(cmd, sizeof cmd, "python3 '%s/duckdb_peer.py' '%s' --sql '%s/ssb.sql' --threads %d --repeat %d --json '%s'",
             peers, dir, peers, threads, repeat, out);
    fprintf(stderr, "fbench plan: %s\n", cmd);
    if (system(cmd) != 0) {
        fprintf(stderr, "fbench plan: the DuckDB peer failed (pip install duckdb numpy?)\n");
        return -1;
    }
    FILE *f = fopen(out, "rb");
    char *text = f ? calloc(1, 1 << 22) : NULL;
    size_t len = text ? fread(text, 1, (1 << 22) - 1, f) : 0;
    if (f)
        fclose(f);
    for (size_t q = 0; q < N_QUERIES && len; q++) {
        char pat[64];
        snprintf(pat, sizeof pat, "\"query\": \"%s\"", queries[q].name);
        const char *p = strstr(text, pat), *sec = p ? strstr(p, "\"seconds\":") : NULL;
        if (sec)
            seconds[q] = strtod(sec + 10, NULL);
    }
    free(text);
    return len ? 0 : -1;
}

static void remove_dump(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fbench plan: could not remove %s\n", dir);
}

/* A grouped bar chart: per query, one bar per placement that ran and one for DuckDB. */
static int write_plot(const char *path, double sf, const char *model, const fb_placement *pl, int n_pl,
                      double fb_s[][4], const double *peer_s, const int *auto_pick)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "fbench plan: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    static const char *colors[] = {"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#e15759"};
    int series = n_pl + (peer_s ? 1 : 0);
    double max = 0;
    for (size_t q = 0; q < N_QUERIES; q++) {
        for (int p = 0; p < n_pl; p++)
            if (!isnan(fb_s[q][p]) && fb_s[q][p] > max)
                max = fb_s[q][p];
        if (peer_s && !isnan(peer_s[q]) && peer_s[q] > max)
            max = peer_s[q];
    }
    if (max <= 0)
        max = 1;
    const int W = 1100, H = 460, left = 70, top = 60, bottom = 60, plot_h = H - top - bottom;
    double group_w = (double)(W - left - 20) / (double)N_QUERIES, bar_w = group_w * 0.8 / series;
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' font-family='sans-serif' "
               "font-size='12'>\n<rect width='100%%' height='100%%' fill='white'/>\n",
            W, H);
    fprintf(f, "<text x='%d' y='22' font-size='15'>SSB SF %g: seconds per query (lower is better), %s</text>\n", left,
            sf, model);
    for (int t = 0; t <= 4; t++) { /* axis and grid */
        double v = max * t / 4, y = top + plot_h - plot_h * t / 4.0;
        fprintf(f, "<line x1='%d' x2='%d' y1='%.1f' y2='%.1f' stroke='#ddd'/>\n", left, W - 20, y, y);
        fprintf(f, "<text x='%d' y='%.1f' text-anchor='end'>%.3g s</text>\n", left - 6, y + 4, v);
    }
    for (size_t q = 0; q < N_QUERIES; q++) {
        double x0 = left + group_w * (double)q + group_w * 0.1;
        for (int sidx = 0; sidx < series; sidx++) {
            double v = sidx < n_pl ? fb_s[q][sidx] : peer_s[q];
            if (isnan(v))
                continue;
            double h = plot_h * v / max;
            fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='%s'><title>%s %s: %.4f s</title></rect>\n",
                    x0 + bar_w * sidx, top + plot_h - h, bar_w * 0.95, h, colors[sidx % 5], queries[q].name,
                    sidx < n_pl ? fb_placement_name(pl[sidx]) : "duckdb", v);
        }
        fprintf(f, "<text x='%.1f' y='%d' text-anchor='middle'>%s</text>\n", x0 + group_w * 0.4, top + plot_h + 18,
                queries[q].name);
        if (auto_pick && auto_pick[q] >= 0) /* what auto placement picked (the cost model) */
            fprintf(f, "<text x='%.1f' y='%d' text-anchor='middle' font-size='10' fill='#555'>auto: %s</text>\n",
                    x0 + group_w * 0.4, top + plot_h + 32, fb_placement_name((fb_placement)auto_pick[q]));
    }
    for (int sidx = 0; sidx < series; sidx++) { /* legend */
        int x = left + 160 * sidx, ran = 0;
        for (size_t q = 0; q < N_QUERIES; q++)
            ran |= sidx < n_pl ? !isnan(fb_s[q][sidx]) : !isnan(peer_s[q]);
        fprintf(f, "<rect x='%d' y='%d' width='12' height='12' fill='%s'/><text x='%d' y='%d'>%s%s</text>\n", x,
                H - 22, colors[sidx % 5], x + 16, H - 12,
                sidx < n_pl ? fb_placement_name(pl[sidx]) : "DuckDB (same data, same run)", ran ? "" : " (did not run)");
    }
    fprintf(f, "</svg>\n");
    if (fclose(f) != 0) {
        fprintf(stderr, "fbench plan: writing %s failed\n", path);
        return -1;
    }
    return 0;
}

static void plan_usage(FILE *f)
{
    fprintf(f, "usage: fbench plan ssb [--sf N] [--placement cpu,gpu,hybrid,auto] [--threads N] [--repeat R]\n"
               "                      [--seed S] [--query Qn.m] [--explain] [--json FILE] [--dump DIR]\n"
               "                      [--peer duckdb] [--plot FILE.svg] [--predict]\n"
               "  runs the 13 Star Schema Benchmark queries as fb plans under each placement and prints\n"
               "  query x placement (median seconds, lineorder rows/s). --explain prints each plan, its\n"
               "  pipelines and, after the runs, the measured rows and times per pipeline of the fastest run\n"
               "  (explain analyze),\n"
               "  next to the cost model's predictions. --predict adds the predicted seconds and the ratio\n"
               "  measured/predicted per query (needs a calibration: fbench calibrate), also for a placement\n"
               "  that cannot run, and the placement auto picks by the cost model (column \"auto\").\n"
               "  --json writes the times and the decoded answers; --dump writes the tables for DuckDB\n"
               "  (bench/peers/duckdb_peer.py DIR --sql bench/peers/ssb.sql).\n");
}

int fbench_plan_main(int argc, char **argv)
{
    double sf = 1;
    long seed = 42, threads = 0, repeat = 3;
    const char *json = NULL, *dump = NULL, *only = NULL, *peer = NULL, *plot = NULL;
    int explain = 0, predict = 0, rc_peer = FBENCH_EXIT_OK;
    fb_placement placements[4] = {FB_PLACEMENT_CPU};
    int n_place = 1;
    if (argc < 2 || strcmp(argv[1], "ssb") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
            plan_usage(stdout);
            return FBENCH_EXIT_OK;
        }
        plan_usage(stderr);
        return FBENCH_EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--explain") == 0) {
            explain = 1;
            continue;
        }
        if (strcmp(a, "--predict") == 0) {
            predict = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            plan_usage(stdout);
            return FBENCH_EXIT_OK;
        }
        if (!v) {
            fprintf(stderr, "fbench plan: %s needs a value\n", a);
            return FBENCH_EXIT_USAGE;
        }
        i++;
        char *end = NULL;
        if (strcmp(a, "--sf") == 0) {
            sf = strtod(v, &end);
            if (!end || *end || !(sf > 0 && sf <= 1000)) {
                fprintf(stderr, "fbench plan: --sf must be in (0, 1000]\n");
                return FBENCH_EXIT_USAGE;
            }
        } else if (strcmp(a, "--placement") == 0) {
            if (parse_placements(v, placements, &n_place) != 0) {
                fprintf(stderr, "fbench plan: --placement takes a list of cpu, gpu, hybrid, auto\n");
                return FBENCH_EXIT_USAGE;
            }
        } else if (strcmp(a, "--threads") == 0 && fbench_parse_int(v, 1, 4096, &threads) == 0) {
        } else if (strcmp(a, "--repeat") == 0 && fbench_parse_int(v, 1, 1000, &repeat) == 0) {
        } else if (strcmp(a, "--seed") == 0 && fbench_parse_int(v, 0, 0x7FFFFFFFFFFFFFFFL, &seed) == 0) {
        } else if (strcmp(a, "--json") == 0) {
            json = v;
        } else if (strcmp(a, "--dump") == 0) {
            dump = v;
        } else if (strcmp(a, "--query") == 0) {
            only = v;
        } else if (strcmp(a, "--peer") == 0) {
            if (strcmp(v, "duckdb") != 0) {
                fprintf(stderr, "fbench plan: --peer takes duckdb\n");
                return FBENCH_EXIT_USAGE;
            }
            peer = v;
        } else if (strcmp(a, "--plot") == 0) {
            plot = v;
        } else {
            fprintf(stderr, "fbench plan: bad option or value: %s %s\n", a, v);
            return FBENCH_EXIT_USAGE;
        }
    }
    fb_options *opts = NULL;
    fb_ctx *ctx = NULL;
    if (fb_options_create(&opts) != FB_OK || (threads && fb_options_set_threads(opts, (int)threads) != FB_OK) ||
        fb_ctx_create(opts, &ctx) != FB_OK) {
        fprintf(stderr, "fbench plan: %s\n", fb_last_error(NULL));
        fb_options_destroy(opts);
        return FBENCH_EXIT_FAILURE;
    }
    fb_options_destroy(opts);
    ssb_data d;
    double t0 = fbench_now();
    if (ssb_generate(sf, (uint64_t)seed, &d) != 0) {
        fb_ctx_destroy(ctx);
        return FBENCH_EXIT_FAILURE;
    }
    fprintf(stderr, "fbench plan: SSB SF %g generated in %.1f s\n", sf, fbench_now() - t0);
    char tmpdir[] = "/tmp/fbench-ssb-XXXXXX";
    int tmp_dump = 0;
    if (peer && !dump) {
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "fbench plan: cannot make a temporary directory: %s\n", strerror(errno));
            ssb_free(&d);
            fb_ctx_destroy(ctx);
            return FBENCH_EXIT_FAILURE;
        }
        dump = tmpdir;
        tmp_dump = 1;
    }
    if (dump && ssb_dump(&d, dump) != 0) {
        ssb_free(&d);
        fb_ctx_destroy(ctx);
        return FBENCH_EXIT_FAILURE;
    }
    builder b;
    builder_init(&b, &d);
    FILE *jf = json ? fopen(json, "w") : NULL;
    if (json && !jf) {
        fprintf(stderr, "fbench plan: cannot write %s: %s\n", json, strerror(errno));
        ssb_free(&d);
        fb_ctx_destroy(ctx);
        return FBENCH_EXIT_FAILURE;
    }
    char model[256];
    fbench_cpu_model(model, sizeof model);
    if (jf) {
        fprintf(jf, "{\"benchmark\": \"ssb\", \"sf\": %g, \"seed\": %ld, \"threads\": %d, \"cpu_model\": ", sf, seed,
                fb_ctx_threads(ctx));
        fbench_json_string(jf, model);
        fprintf(jf, ", \"fb_version\": \"%s\", \"queries\": [", fb_version_string());
    }
    double peer_s[N_QUERIES];
    for (size_t q = 0; q < N_QUERIES; q++)
        peer_s[q] = NAN;
    if (peer && run_peer(dump, fb_ctx_threads(ctx), (int)repeat, peer_s) != 0)
        rc_peer = FBENCH_EXIT_FAILURE;
    if (tmp_dump)
        remove_dump(dump);
    double fb_s[N_QUERIES][4];
    for (size_t q = 0; q < N_QUERIES; q++)
        for (int p = 0; p < 4; p++)
            fb_s[q][p] = NAN;
    printf("fbench plan ssb: SF %g, lineorder %lld rows, %d threads, %s\n", sf,
           (long long)d.tables[SSB_LINEORDER].rows, fb_ctx_threads(ctx), model);
    printf("%-6s", "query");
    for (int p = 0; p < n_place; p++) {
        printf(" | %-8s %9s %10s", fb_placement_name(placements[p]), "seconds", "rows/s");
        if (predict)
            printf(" %9s %6s", "predicted", "m/p");
    }
    int show_pick = predict;
    for (int p = 0; p < n_place; p++)
        show_pick |= placements[p] == FB_PLACEMENT_AUTO;
    int auto_pick[N_QUERIES];
    for (size_t q = 0; q < N_QUERIES; q++)
        auto_pick[q] = -1;
    if (peer)
        printf(" | %-8s %9s %8s", "duckdb", "seconds", "fb/ddb");
    if (show_pick)
        printf(" | %-6s", "auto");
    printf(" | rows\n");
    int rc = rc_peer, first = 1;
    for (size_t qi = 0; qi < N_QUERIES; qi++) {
        if (only && strcmp(only, queries[qi].name) != 0)
            continue;
        b.failed = 0;
        if (fb_plan_create(ctx, &b.plan) != FB_OK) {
            rc = FBENCH_EXIT_FAILURE;
            break;
        }
        const char *out_cols[8] = {0};
        bnode root = queries[qi].build(&b, out_cols);
        int n_out = 0;
        while (n_out < 8 && out_cols[n_out])
            n_out++;
        if (b.failed) {
            fprintf(stderr, "fbench plan: %s: building the plan failed: %s\n", queries[qi].name, b.error);
            fb_plan_destroy(b.plan);
            rc = FBENCH_EXIT_FAILURE;
            continue;
        }
        printf("%-6s", queries[qi].name);
        if (jf)
            fprintf(jf, "%s\n {\"query\": \"%s\", \"placements\": [", first ? "" : ",", queries[qi].name);
        first = 0;
        int64_t rows_out = -1;
        for (int p = 0; p < n_place; p++) {
            double times[1000];
            fb_plan_result *res = NULL, *run_res = NULL;
            fb_status st = FB_OK;
            /* res: the fastest run (explain analyze shows it: on a busy machine the slower runs are the
             * disturbed ones) */
            for (long r = -1; r < repeat && st == FB_OK; r++) { /* r = -1: warm-up */
                run_res = NULL;
                st = fb_plan_run(b.plan, root.id, placements[p], &run_res);
                if (st == FB_OK && r >= 0)
                    times[r] = run_res->seconds;
                if (st == FB_OK && (!res || r == 0 || run_res->seconds < res->seconds)) {
                    fb_plan_result_free(res);
                    res = run_res;
                } else {
                    fb_plan_result_free(run_res);
                }
            }
            if (jf)
                fprintf(jf, "%s{\"placement\": \"%s\", ", p ? ", " : "", fb_placement_name(placements[p]));
            if (st != FB_OK) {
                fb_plan_result_free(res);
                res = NULL;
                char err[600];
                snprintf(err, sizeof err, "%s: %s", fb_status_name(st), fb_last_error(ctx));
                printf(" | %-8s %20s", fb_placement_name(placements[p]), "n/a");
                double pred = NAN;
                size_t n_pipes = 0;
                if (predict && fb_plan_predict(b.plan, root.id, placements[p], NULL, 0, &n_pipes, &pred) != FB_OK)
                    pred = NAN;
                if (predict)
                    printf(" %9.4f %6s", pred, "");
                fprintf(stderr, "fbench plan: %s under %s: %s\n", queries[qi].name, fb_placement_name(placements[p]),
                        err);
                if (jf) {
                    if (!isnan(pred))
                        fprintf(jf, "\"predicted_seconds\": %.6f, ", pred);
                    fprintf(jf, "\"error\": ");
                    fbench_json_string(jf, err);
                    fprintf(jf, "}");
                }
                if (placements[p] == FB_PLACEMENT_CPU || placements[p] == FB_PLACEMENT_AUTO)
                    rc = FBENCH_EXIT_FAILURE;
                continue;
            }
            qsort(times, (size_t)repeat, sizeof *times, cmp_double);
            double med = repeat % 2 ? times[repeat / 2] : 0.5 * (times[repeat / 2 - 1] + times[repeat / 2]);
            printf(" | %-8s %9.4f %10.3g", fb_placement_name(res->placement), med,
                   (double)d.tables[SSB_LINEORDER].rows / med);
            rows_out = res->rows;
            fb_s[qi][p] = med;
            double pred = NAN;
            if (predict) {
                size_t n_pipes = 0;
                if (fb_plan_predict(b.plan, root.id, placements[p], NULL, 0, &n_pipes, &pred) != FB_OK) {
                    fprintf(stderr, "fbench plan: %s: no prediction: %s\n", queries[qi].name, fb_last_error(ctx));
                    pred = NAN;
                }
                printf(" %9.4f %6.2f", pred, med / pred);
            }
            if (explain) {
                printf("\n");
                fb_plan_explain(b.plan, root.id, placements[p], res, stdout);
            }
            if (jf) {
                fprintf(jf, "\"ran_on\": \"%s\", \"seconds\": %.6f, \"best_seconds\": %.6f, \"pipelines\": %d, "
                            "\"rows\": %lld, ",
                        fb_placement_name(res->placement), med, times[0], res->pipelines, (long long)res->rows);
                if (predict && !isnan(pred))
                    fprintf(jf, "\"predicted_seconds\": %.6f, \"measured_over_predicted\": %.4f, \"answer\": ", pred,
                            med / pred);
                else
                    fprintf(jf, "\"answer\": ");
                write_answer(jf, &root, out_cols, n_out, res);
                fprintf(jf, "}");
            }
            fb_plan_result_free(res);
        }
        if (jf)
            fprintf(jf, "]");
        if (show_pick) { /* what auto placement picks: the cost model's choice */
            fb_placement pick;
            double totals[3];
            if (fb_plan_predict_choice(b.plan, root.id, &pick, totals) == FB_OK) {
                auto_pick[qi] = (int)pick;
                if (jf) {
                    fprintf(jf, ", \"auto_choice\": \"%s\", \"predicted\": {", fb_placement_name(pick));
                    for (int pl = 0; pl < 3; pl++) {
                        fprintf(jf, "%s\"%s\": ", pl ? ", " : "", fb_placement_name((fb_placement)pl));
                        if (isnan(totals[pl]))
                            fprintf(jf, "null");
                        else
                            fprintf(jf, "%.6f", totals[pl]);
                    }
                    fprintf(jf, "}");
                }
            } else {
                for (int p = 0; p < n_place; p++) /* no calibration: where the auto run went */
                    if (placements[p] == FB_PLACEMENT_AUTO)
                        auto_pick[qi] = (int)FB_PLACEMENT_CPU;
            }
        }
        if (peer) {
            double best = NAN;
            for (int p = 0; p < n_place; p++)
                if (!isnan(fb_s[qi][p]) && (isnan(best) || fb_s[qi][p] < best))
                    best = fb_s[qi][p];
            printf(" | %-8s %9.4f %8.3f", "duckdb", peer_s[qi], best / peer_s[qi]);
            if (jf && !isnan(peer_s[qi]))
                fprintf(jf, ", \"duckdb_seconds\": %.6f", peer_s[qi]);
        }
        if (show_pick)
            printf(" | %-6s", auto_pick[qi] >= 0 ? fb_placement_name((fb_placement)auto_pick[qi]) : "n/a");
        printf(" | %lld\n", (long long)rows_out);
        if (jf)
            fprintf(jf, "}");
        fb_plan_destroy(b.plan);
        b.plan = NULL;
    }
    if (jf) {
        fprintf(jf, "\n]}\n");
        if (fclose(jf) != 0) {
            fprintf(stderr, "fbench plan: writing %s failed\n", json);
            rc = FBENCH_EXIT_FAILURE;
        }
    }
    if (plot && write_plot(plot, sf, model, placements, n_place, fb_s, peer ? peer_s : NULL, show_pick ? auto_pick : NULL) != 0)
        rc = FBENCH_EXIT_FAILURE;
    ssb_free(&d);
    fb_ctx_destroy(ctx);
    return rc;
}
