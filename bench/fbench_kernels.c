/* fbench_kernels.c - `fbench kernels`: the kernels of fb_kernels.h for every CPU variant this
 * machine runs (one context per variant) and their OpenCL twins for every OpenCL device (one
 * context per device), at a cache-resident and a memory-sized morsel, through google benchmark's
 * C shim. Names are greppable: <kernel>/<type>/<variant>/<rows> and cl:<device>/<kernel>/<type>/<rows>.
 *
 * Inputs come from a seeded splitmix64 and are made once per size, when the first benchmark of that
 * size runs (so a --benchmark_filter that skips a size skips its set-up). Selections keep about half
 * of the rows. Bytes processed count what the kernel logically reads and writes once: input
 * columns, selection vectors or row ids, and outputs (a gather's random reads count 1 value each,
 * though the hardware moves a cache line). */
#include "fbench.h"

#include <stdlib.h>
#include <string.h>

#include "gbench_shim.h"

/* Build side of the join benchmarks: this many unique keys (the low bits of i32a / i64 of the 64Ki size). */
#define JOIN_BUILD_ROWS ((int64_t)1 << 16)

/* Morsel sizes: 64Ki rows stay in the L2/L3 cache, 16Mi rows (64-128 MiB per column) do not. */
static const int64_t kernel_sizes[] = {(int64_t)1 << 16, (int64_t)1 << 24};
#define KERNEL_N_SIZES (sizeof kernel_sizes / sizeof kernel_sizes[0])

typedef enum kernel_op {
    OP_HASH_COLUMN,
    OP_HASH_COLUMNS,
    OP_SELECT_CMP,
    OP_SELECT_RANGE,
    OP_SELECT_IN,
    OP_COMPACT,
    OP_GATHER,
    OP_SORT,       /* fb_sort_permutation of one key column */
    OP_AGG,        /* group by a key with 4096 distinct values: count(*), sum(value) (create, update, result) */
    OP_JOIN_BUILD, /* fb_hash_table_create + build of 64Ki unique keys... of `rows` keys */
    OP_JOIN_PROBE, /* inner probe of `rows` keys into 64Ki unique build keys (about half match) */
    OP_EXPR_MUL,   /* fb_expr_arith: int64 * int64 with overflow checks */
    OP_EXPR_CMP,   /* fb_expr_cmp: int32 < 0 as a boolean column */
    OP_EXPR_CAST,  /* fb_expr_cast: int64 (in -2^20..2^20) to int32, range-checked */
    OP_EXPR_AND    /* fb_expr_and of two boolean columns (bits of i32a and i32b, validity of i64) */
} kernel_op;

/* What is benchmarked: the kernel, its key type and its name part ("int32", "2xint32"). */
typedef struct kernel_kind {
    kernel_op op;
    fb_type type;
    const char *name;
    const char *type_name;
} kernel_kind;

static const kernel_kind kernel_kinds[] = {
    {OP_HASH_COLUMN, FB_TYPE_INT32, "hash_column", "int32"},
    {OP_HASH_COLUMN, FB_TYPE_INT64, "hash_column", "int64"},
    {OP_HASH_COLUMNS, FB_TYPE_INT32, "hash_columns", "2xint32"},
    {OP_SELECT_CMP, FB_TYPE_INT32, "select_cmp", "int32"},
    {OP_SELECT_CMP, FB_TYPE_INT64, "select_cmp", "int64"},
    {OP_SELECT_RANGE, FB_TYPE_INT32, "select_range", "int32"},
    {OP_SELECT_RANGE, FB_TYPE_INT64, "select_range", "int64"},
    {OP_SELECT_IN, FB_TYPE_INT32, "select_in", "int32"},
    {OP_COMPACT, FB_TYPE_INT32, "compact", "int32"},
    {OP_COMPACT, FB_TYPE_INT64, "compact", "int64"},
    {OP_GATHER, FB_TYPE_INT32, "gather", "int32"},
    {OP_GATHER, FB_TYPE_INT64, "gather", "int64"},
    {OP_SORT, FB_TYPE_INT32, "sort", "int32"},
    {OP_SORT, FB_TYPE_INT64, "sort", "int64"},
    {OP_AGG, FB_TYPE_INT32, "group_by_sum", "int32"},
    {OP_JOIN_BUILD, FB_TYPE_INT32, "join_build", "int32"},
    {OP_JOIN_PROBE, FB_TYPE_INT32, "join_probe", "int32"},
    {OP_JOIN_PROBE, FB_TYPE_INT64, "join_probe", "int64"},
    {OP_EXPR_MUL, FB_TYPE_INT64, "expr_mul", "int64"},
    {OP_EXPR_CMP, FB_TYPE_INT32, "expr_cmp", "int32"},
    {OP_EXPR_CAST, FB_TYPE_INT64, "expr_cast", "int64"},
    {OP_EXPR_AND, FB_TYPE_INT32, "expr_and", "bool"},
};
#define KERNEL_N_KINDS (sizeof kernel_kinds / sizeof kernel_kinds[0])

/* Constants of fb_select_in(): 8 of the 16 codes, so half of the rows match. */
static const int32_t select_in_values[8] = {0, 2, 4, 6, 8, 10, 12, 14};

/* ---- inputs ---------------------------------------------------------------------------------- */

/* Inputs and outputs of one size, shared by every benchmark of that size. */
typedef struct kernel_data {
    int64_t rows;
    int32_t *i32a, *i32b; /* uniform over all of int32: `< 0` keeps half */
    int64_t *i64;         /* uniform over all of int64 */
    int32_t *codes;       /* uniform in 0..15 (dictionary codes), for select_in */
    uint32_t *sel;        /* ascending, each row kept with probability 1/2 */
    int64_t n_sel;
    int64_t *ids;         /* uniform random row ids in [0, rows) */
    int32_t *small32;     /* uniform in 0..4095 (group keys) */
    int32_t *probe32;     /* uniform in 0..2^17-1: half are build keys 0..2^16-1 */
    int64_t *probe64;
    int64_t *mul64;       /* uniform in -2^20..2^20: products never overflow */
    uint32_t *perm;       /* sort output */
    uint64_t *hashes;     /* outputs */
    uint32_t *sel_out;
    void *out;            /* rows * 8 bytes */
} kernel_data;

static kernel_data *kernel_data_by_size[KERNEL_N_SIZES];

static void kernel_data_free(kernel_data *d)
{
    if (!d)
        return;
    free(d->i32a);
    free(d->i32b);
    free(d->i64);
    free(d->codes);
    free(d->sel);
    free(d->ids);
    free(d->small32);
    free(d->probe32);
    free(d->probe64);
    free(d->mul64);
    free(d->perm);
    free(d->hashes);
    free(d->sel_out);
    free(d->out);
    free(d);
}

static void *kernel_alloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        return NULL;
    memset(p, 0, bytes); /* touch every page before timing */
    return p;
}

/* The data of size index `i`, made on first use; NULL when memory runs out. */
static kernel_data *kernel_data_get(size_t i)
{
    if (kernel_data_by_size[i])
        return kernel_data_by_size[i];
    int64_t n = kernel_sizes[i];
    kernel_data *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->rows = n;
    size_t un = (size_t)n;
    d->i32a = kernel_alloc(un * 4);
    d->i32b = kernel_alloc(un * 4);
    d->i64 = kernel_alloc(un * 8);
    d->codes = kernel_alloc(un * 4);
    d->sel = kernel_alloc(un * 4);
    d->ids = kernel_alloc(un * 8);
    d->small32 = kernel_alloc(un * 4);
    d->probe32 = kernel_alloc(un * 4);
    d->probe64 = kernel_alloc(un * 8);
    d->mul64 = kernel_alloc(un * 8);
    d->perm = kernel_alloc(un * 4);
    d->hashes = kernel_alloc(un * 8);
    d->sel_out = kernel_alloc(un * 4);
    d->out = kernel_alloc(un * 8);
    if (!d->i32a || !d->i32b || !d->i64 || !d->codes || !d->sel || !d->ids || !d->hashes || !d->sel_out ||
        !d->out || !d->small32 || !d->probe32 || !d->probe64 || !d->mul64 || !d->perm) {
        kernel_data_free(d);
        return NULL;
    }
    uint64_t rng = 0xFBE7C4ull + (uint64_t)n;
    for (int64_t r = 0; r < n; r++) {
        uint64_t a = fbench_splitmix64(&rng), b = fbench_splitmix64(&rng);
        d->i32a[r] = (int32_t)(uint32_t)a;
        d->i32b[r] = (int32_t)(uint32_t)(a >> 32);
        d->i64[r] = (int64_t)b;
        d->codes[r] = (int32_t)(b >> 60);
        if ((b >> 59) & 1)
            d->sel[d->n_sel++] = (uint32_t)r;
        d->ids[r] = (int64_t)(fbench_splitmix64(&rng) % (uint64_t)n);
        uint64_t c = fbench_splitmix64(&rng);
        d->small32[r] = (int32_t)(c & 4095);
        d->probe32[r] = (int32_t)((c >> 12) & ((JOIN_BUILD_ROWS << 1) - 1));
        d->probe64[r] = d->probe32[r] * INT64_C(1000003); /* build keys are i * 1000003 */
        d->mul64[r] = (int64_t)((c >> 32) & ((1 << 21) - 1)) - (1 << 20);
    }
    kernel_data_by_size[i] = d;
    return d;
}

/* ---- one benchmark --------------------------------------------------------------------------- */

/* One registered benchmark: a kind at a size, on a CPU variant's or an OpenCL device's context. */
typedef struct kernel_case {
    const kernel_kind *kind;
    size_t size_index;
    fb_ctx *ctx;          /* NULL: the context could not be made, see error */
    int cl;               /* 1: the fb_cl_ twins */
    const char *label;    /* device name, or NULL */
    const char *error;    /* why ctx is NULL */
} kernel_case;

/* The join benchmarks' build tables, one per key type and context, made on first use. */
typedef struct join_build {
    fb_ctx *ctx;
    fb_type type;
    fb_hash_table *ht;
    void *keys;
} join_build;
static join_build join_builds[128];
static int n_join_builds;

static fb_hash_table *join_table(fb_ctx *ctx, fb_type t)
{
    for (int i = 0; i < n_join_builds; i++)
        if (join_builds[i].ctx == ctx && join_builds[i].type == t)
            return join_builds[i].ht;
    if (n_join_builds == 128)
        return NULL;
    join_build *b = &join_builds[n_join_builds];
    size_t w = fb_type_width(t);
    b->keys = malloc(w * (size_t)JOIN_BUILD_ROWS);
    if (!b->keys)
        return NULL;
    for (int64_t i = 0; i < JOIN_BUILD_ROWS; i++) { /* unique keys in a scrambled order */
        int64_t k = (i * 40503) & (JOIN_BUILD_ROWS - 1);
        if (t == FB_TYPE_INT64)
            ((int64_t *)b->keys)[i] = k * INT64_C(1000003);
        else
            ((int32_t *)b->keys)[i] = (int32_t)k;
    }
    fb_column kc = fb_column_make(t, b->keys, JOIN_BUILD_ROWS, NULL);
    if (fb_hash_table_create(ctx, &t, 1, JOIN_BUILD_ROWS, &b->ht) != FB_OK ||
        fb_hash_table_build(ctx, b->ht, &kc, 1, 0) != FB_OK) {
        fb_hash_table_destroy(b->ht);
        free(b->keys);
        return NULL;
    }
    b->ctx = ctx;
    b->type = t;
    n_join_builds++;
    return b->ht;
}

static void join_builds_free(void)
{
    for (int i = 0; i < n_join_builds; i++) {
        fb_hash_table_destroy(join_builds[i].ht);
        free(join_builds[i].keys);
    }
    n_join_builds = 0;
}

/* The operator kernels (sort, aggregation, join, expressions) on the CPU and their OpenCL twins (no twin
 * of a hash build alone: that one reports why it skips). */
static fb_status operator_call(const kernel_case *c, kernel_data *d, int64_t *items, int64_t *bytes)
{
    fb_ctx *ctx = c->ctx;
    int64_t n = d->rows;
    fb_type t = c->kind->type;
    int64_t w = (int64_t)fb_type_width(t);
    fb_status st = FB_ERR_INTERNAL;
    *items = n;
    switch (c->kind->op) {
    case OP_SORT: {
        fb_sort_key key = {fb_column_make(t, t == FB_TYPE_INT64 ? (const void *)d->i64 : (const void *)d->i32a, n,
                                          NULL),
                           0, 0};
        st = c->cl ? fb_cl_sort_permutation(ctx, &key, 1, d->perm, n) : fb_sort_permutation(ctx, &key, 1, d->perm, n);
        *bytes = n * (w + 4);
        break;
    }
    case OP_AGG: {
        fb_type kt = FB_TYPE_INT32;
        fb_agg_desc aggs[2] = {{FB_AGG_COUNT_STAR, 0, FB_TYPE_INVALID}, {FB_AGG_SUM, 0, FB_TYPE_INT32}};
        fb_agg_spec spec = {1, &kt, 2, aggs, FB_AGG_STRATEGY_AUTO};
        fb_column key = fb_column_make(FB_TYPE_INT32, d->small32, n, NULL);
        fb_column val = fb_column_make(FB_TYPE_INT32, d->i32a, n, NULL);
        int64_t *counts = (int64_t *)d->out, *sums = (int64_t *)d->hashes;
        fb_column_out kout = {.type = FB_TYPE_INT32, .capacity = 4096, .data = d->sel_out};
        fb_column_out aout[2] = {{.type = FB_TYPE_INT64, .capacity = 4096, .data = counts},
                                 {.type = FB_TYPE_INT64, .capacity = 4096, .data = sums}};
        if (c->cl) {
            int64_t groups = 0;
            st = fb_cl_group_by(ctx, &spec, &key, &val, 1, n, &kout, aout, &groups);
        } else {
            fb_agg_table *at = NULL;
            st = fb_agg_create(ctx, &spec, &at);
            if (st == FB_OK)
                st = fb_agg_update(at, &key, &val, 1, n, NULL, 0);
            if (st == FB_OK)
                st = fb_agg_result(at, &kout, aout);
            fb_agg_destroy(at);
        }
        *bytes = n * 8;
        break;
    }
    case OP_JOIN_BUILD: {
        fb_hash_table *ht = NULL;
        fb_column kc = fb_column_make(FB_TYPE_INT32, d->i32a, n, NULL);
        if (c->cl)
            return fb_stage_error(ctx, FB_ERR_UNSUPPORTED_TYPE, "no OpenCL twin of the hash build on its own "
                                                                "(fb_cl_join_probe builds and probes in one call)");
        st = fb_hash_table_create(ctx, &t, 1, n, &ht);
        if (st == FB_OK)
            st = fb_hash_table_build(ctx, ht, &kc, 1, 0);
        fb_hash_table_destroy(ht);
        *bytes = n * 4;
        break;
    }
    case OP_JOIN_PROBE: {
        fb_column pk = fb_column_make(t, t == FB_TYPE_INT64 ? (const void *)d->probe64 : (const void *)d->probe32, n,
                                      NULL);
        int64_t cap = n;
        fb_join_pairs pairs = {(int64_t *)d->out, (int64_t *)d->hashes, cap, 0, 0};
        if (c->cl) {
            /* The OpenCL twin builds its table from the build keys and probes in one call (timed together). */
            if (!join_table(ctx, t))
                return fb_stage_error(ctx, FB_ERR_OUT_OF_MEMORY, "cannot make the build keys");
            const join_build *b = NULL;
            for (int i = 0; i < n_join_builds; i++)
                if (join_builds[i].ctx == ctx && join_builds[i].type == t)
                    b = &join_builds[i];
            fb_column bk = fb_column_make(t, b->keys, JOIN_BUILD_ROWS, NULL);
            int64_t n_pairs = 0;
            st = fb_cl_join_probe(ctx, &bk, 0, &pk, 0, FB_JOIN_INNER, &pairs, &n_pairs);
        } else {
            fb_hash_table *ht = join_table(ctx, t);
            if (!ht)
                return fb_stage_error(ctx, FB_ERR_OUT_OF_MEMORY, "cannot build the join table");
            fb_join_cursor cur = FB_JOIN_CURSOR_INIT;
            st = fb_hash_table_probe(ctx, ht, &pk, 1, FB_JOIN_INNER, 0, &cur, &pairs);
        }
        *bytes = n * w + pairs.length * 16;
        break;
    }
    case OP_EXPR_MUL: {
        fb_column a = fb_column_make(FB_TYPE_INT64, d->mul64, n, NULL);
        fb_column_out out = {.type = FB_TYPE_INT64, .capacity = n, .data = d->out};
        st = c->cl ? fb_cl_expr_arith(ctx, FB_ARITH_MUL, &a, &a, NULL, 0, &out)
                   : fb_expr_arith(ctx, FB_ARITH_MUL, &a, &a, NULL, 0, &out);
        *bytes = n * 16;
        break;
    }
    case OP_EXPR_CMP: {
        fb_column a = fb_column_make(FB_TYPE_INT32, d->i32a, n, NULL);
        fb_bool out = {n, (uint8_t *)d->out, (uint8_t *)d->hashes};
        int32_t zero = 0;
        st = c->cl ? fb_cl_expr_cmp(ctx, &a, FB_CMP_LT, &zero, NULL, 0, &out)
                   : fb_expr_cmp(ctx, &a, FB_CMP_LT, &zero, NULL, 0, &out);
        *bytes = n * 4 + n / 4;
        break;
    }
    case OP_EXPR_CAST: {
        fb_column a = fb_column_make(FB_TYPE_INT64, d->mul64, n, NULL);
        fb_column_out out = {.type = FB_TYPE_INT32, .capacity = n, .data = d->out};
        st = c->cl ? fb_cl_expr_cast(ctx, &a, NULL, 0, &out) : fb_expr_cast(ctx, &a, NULL, 0, &out);
        *bytes = n * 12;
        break;
    }
    case OP_EXPR_AND: {
        fb_bool a = {n, (uint8_t *)d->i32a, (uint8_t *)d->i64}, b = {n, (uint8_t *)d->i32b, NULL};
        fb_bool out = {n, (uint8_t *)d->out, (uint8_t *)d->hashes};
        st = c->cl ? fb_cl_expr_and(ctx, &a, &b, &out) : fb_expr_and(ctx, &a, &b, &out);
        *bytes = n / 2;
        break;
    }
    default:
        break;
    }
    return st;
}

/* Runs the kernel once; *items and *bytes receive what one call processed. */
static fb_status kernel_call(const kernel_case *c, kernel_data *d, int64_t *items, int64_t *bytes)
{
    fb_ctx *ctx = c->ctx;
    int64_t n = d->rows;
    fb_type t = c->kind->type;
    int64_t w = (int64_t)fb_type_width(t);
    const void *data = t == FB_TYPE_INT64 ? (const void *)d->i64 : (const void *)d->i32a;
    fb_column col = fb_column_make(t, data, n, NULL);
    int64_t n_out = 0;
    fb_status st = FB_ERR_INTERNAL;
    switch (c->kind->op) {
    case OP_HASH_COLUMN:
        st = c->cl ? fb_cl_hash_column(ctx, &col, d->hashes, n) : fb_hash_column(ctx, &col, d->hashes, n);
        *items = n;
        *bytes = n * (w + 8);
        break;
    case OP_HASH_COLUMNS: {
        fb_column keys[2] = {fb_column_make(FB_TYPE_INT32, d->i32a, n, NULL),
                             fb_column_make(FB_TYPE_INT32, d->i32b, n, NULL)};
        st = c->cl ? fb_cl_hash_columns(ctx, keys, 2, d->hashes, n) : fb_hash_columns(ctx, keys, 2, d->hashes, n);
        *items = n;
        *bytes = n * (4 + 4 + 8);
        break;
    }
    case OP_SELECT_CMP: {
        int32_t zero32 = 0;
        int64_t zero64 = 0;
        const void *value = t == FB_TYPE_INT64 ? (const void *)&zero64 : (const void *)&zero32;
        st = c->cl ? fb_cl_select_cmp(ctx, &col, FB_CMP_LT, value, NULL, 0, d->sel_out, n, &n_out)
                   : fb_select_cmp(ctx, &col, FB_CMP_LT, value, NULL, 0, d->sel_out, n, &n_out);
        *items = n;
        *bytes = n * w + n_out * 4;
        break;
    }
    case OP_SELECT_RANGE: {
        int32_t lo32 = -(1 << 30), hi32 = (1 << 30) - 1;
        int64_t lo64 = -((int64_t)1 << 62), hi64 = ((int64_t)1 << 62) - 1;
        const void *lo = t == FB_TYPE_INT64 ? (const void *)&lo64 : (const void *)&lo32;
        const void *hi = t == FB_TYPE_INT64 ? (const void *)&hi64 : (const void *)&hi32;
        st = c->cl ? fb_cl_select_range(ctx, &col, lo, hi, NULL, 0, d->sel_out, n, &n_out)
                   : fb_select_range(ctx, &col, lo, hi, NULL, 0, d->sel_out, n, &n_out);
        *items = n;
        *bytes = n * w + n_out * 4;
        break;
    }
    case OP_SELECT_IN: {
        fb_column codes = fb_column_make(FB_TYPE_INT32, d->codes, n, NULL);
        st = c->cl ? fb_cl_select_in(ctx, &codes, select_in_values, 8, NULL, 0, d->sel_out, n, &n_out)
                   : fb_select_in(ctx, &codes, select_in_values, 8, NULL, 0, d->sel_out, n, &n_out);
        *items = n;
        *bytes = n * 4 + n_out * 4;
        break;
    }
    case OP_COMPACT: {
        fb_column_out out = {.type = t, .capacity = n, .data = d->out, .validity = NULL};
        st = c->cl ? fb_cl_compact(ctx, &col, d->sel, d->n_sel, &out) : fb_compact(ctx, &col, d->sel, d->n_sel, &out);
        *items = d->n_sel;
        *bytes = d->n_sel * (4 + 2 * w);
        break;
    }
    case OP_GATHER: {
        fb_column_out out = {.type = t, .capacity = n, .data = d->out, .validity = NULL};
        st = c->cl ? fb_cl_gather(ctx, &col, d->ids, n, &out) : fb_gather(ctx, &col, d->ids, n, &out);
        *items = n;
        *bytes = n * (8 + 2 * w);
        break;
    }
    default:
        st = operator_call(c, d, items, bytes);
        break;
    }
    return st;
}

static void kernel_bench(fb_bench_state *s, void *user)
{
    const kernel_case *c = user;
    if (!c->ctx) {
        fb_bench_skip_with_error(s, c->error);
        return;
    }
    kernel_data *d = kernel_data_get(c->size_index);
    if (!d) {
        fb_bench_skip_with_error(s, "out of memory for the inputs");
        return;
    }
    /* One untimed call: checks the status, and opens the OpenCL device and builds its programs. */
    int64_t items = 0, bytes = 0;
    if (kernel_call(c, d, &items, &bytes) != FB_OK) {
        fb_bench_skip_with_error(s, fb_last_error(c->ctx));
        return;
    }
    while (fb_bench_keep_running_batch(s, 1)) {
        if (kernel_call(c, d, &items, &bytes) != FB_OK) {
            fb_bench_skip_with_error(s, fb_last_error(c->ctx));
            break;
        }
    }
    int64_t it = fb_bench_iterations(s);
    fb_bench_set_items_processed(s, it * items);
    fb_bench_set_bytes_processed(s, it * bytes);
    if (c->label)
        fb_bench_set_label(s, c->label);
}

/* A benchmark whose only job is to report an error (e.g. no OpenCL device list). */
static void kernel_error_bench(fb_bench_state *s, void *user) { fb_bench_skip_with_error(s, user); }

/* ---- registration ---------------------------------------------------------------------------- */

/* Everything registered, kept until the benchmarks have run. */
typedef struct kernel_registry {
    kernel_case *cases;
    size_t n_cases, cap_cases;
    fb_ctx **ctxs;
    size_t n_ctxs;
    char **strings; /* labels and error messages */
    size_t n_strings;
} kernel_registry;

static char *registry_keep(kernel_registry *r, const char *s)
{
    char *copy = strdup(s ? s : "");
    char **grown = copy ? realloc(r->strings, (r->n_strings + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(copy);
        return NULL;
    }
    r->strings = grown;
    r->strings[r->n_strings++] = copy;
    return copy;
}

static int registry_add_ctx(kernel_registry *r, fb_ctx *ctx)
{
    fb_ctx **grown = realloc(r->ctxs, (r->n_ctxs + 1) * sizeof *grown);
    if (!grown)
        return -1;
    r->ctxs = grown;
    r->ctxs[r->n_ctxs++] = ctx;
    return 0;
}

/* Registers every kind at every size for one context. `prefix` ends the names' variant part:
 * CPU names are <kernel>/<type>/<variant>/<rows>, OpenCL names cl:<d>/<kernel>/<type>/<rows>. */
static int registry_add_target(kernel_registry *r, fb_ctx *ctx, int cl, const char *variant, const char *label,
                               const char *error)
{
    for (size_t k = 0; k < KERNEL_N_KINDS; k++) {
        for (size_t s = 0; s < KERNEL_N_SIZES; s++) {
            if (r->n_cases == r->cap_cases)
                return -1;
            kernel_case *c = &r->cases[r->n_cases++];
            c->kind = &kernel_kinds[k];
            c->size_index = s;
            c->ctx = ctx;
            c->cl = cl;
            c->label = label;
            c->error = error;
            char name[256];
            if (cl)
                snprintf(name, sizeof name, "%s/%s/%s/%lld", variant, c->kind->name, c->kind->type_name,
                         (long long)kernel_sizes[s]);
            else
                snprintf(name, sizeof name, "%s/%s/%s/%lld", c->kind->name, c->kind->type_name, variant,
                         (long long)kernel_sizes[s]);
            if (fb_bench_register(name, kernel_bench, c, FB_BENCH_UNIT_US, cl ? FB_BENCH_REAL_TIME : FB_BENCH_CPU_TIME) != 0)
                return -1;
        }
    }
    return 0;
}

/* One context per CPU variant this machine runs. */
static int registry_add_cpu(kernel_registry *r)
{
    for (int v = FB_ISA_SCALAR; v < FB_ISA_COUNT; v++) {
        if (!fb_isa_supported((fb_isa)v))
            continue;
        fb_options *o = NULL;
        fb_ctx *ctx = NULL;
        fb_status st = fb_options_create(&o);
        if (st == FB_OK)
            st = fb_options_set_isa(o, (fb_isa)v);
        if (st == FB_OK)
            st = fb_options_set_cl_device(o, FB_CL_DEVICE_NONE);
        if (st == FB_OK)
            st = fb_ctx_create(o, &ctx);
        fb_options_destroy(o);
        const char *error = st == FB_OK ? NULL : registry_keep(r, fb_last_error(NULL));
        if (st == FB_OK && registry_add_ctx(r, ctx) != 0) {
            fb_ctx_destroy(ctx);
            return -1;
        }
        if (registry_add_target(r, st == FB_OK ? ctx : NULL, 0, fb_isa_name((fb_isa)v), NULL, error) != 0)
            return -1;
    }
    return 0;
}

/* One context per OpenCL device; a device list that cannot be had becomes one failing benchmark. */
static int registry_add_cl(kernel_registry *r)
{
    fb_ctx *ctx = NULL;
    int count = 0;
    fb_status st = fb_ctx_create(NULL, &ctx);
    if (st == FB_OK)
        st = fb_cl_device_count(ctx, &count);
    if (st != FB_OK) {
        char *msg = registry_keep(r, fb_last_error(ctx));
        fb_ctx_destroy(ctx);
        fprintf(stderr, "fbench kernels: no OpenCL benchmarks: %s\n", msg ? msg : "");
        return msg && fb_bench_register("cl/devices", kernel_error_bench, msg, FB_BENCH_UNIT_US, FB_BENCH_REAL_TIME) == 0
                   ? 0
                   : -1;
    }
    for (int i = 0; i < count; i++) {
        fb_cl_device_info info;
        char label[512];
        if (fb_cl_device_get_info(ctx, i, &info) == FB_OK)
            snprintf(label, sizeof label, "%s (%s)", info.name, info.platform);
        else
            snprintf(label, sizeof label, "OpenCL device %d", i);
        fb_options *o = NULL;
        fb_ctx *dev = NULL;
        st = fb_options_create(&o);
        if (st == FB_OK)
            st = fb_options_set_cl_device(o, i);
        if (st == FB_OK)
            st = fb_ctx_create(o, &dev);
        fb_options_destroy(o);
        const char *error = st == FB_OK ? NULL : registry_keep(r, fb_last_error(NULL));
        if (st == FB_OK && registry_add_ctx(r, dev) != 0) {
            fb_ctx_destroy(dev);
            fb_ctx_destroy(ctx);
            return -1;
        }
        char prefix[32];
        snprintf(prefix, sizeof prefix, "cl:%d", i);
        const char *kept = registry_keep(r, label);
        if (registry_add_target(r, st == FB_OK ? dev : NULL, 1, prefix, kept, error) != 0) {
            fb_ctx_destroy(ctx);
            return -1;
        }
    }
    fb_ctx_destroy(ctx);
    return 0;
}

static void registry_free(kernel_registry *r)
{
    join_builds_free(); /* their tables belong to the contexts: before those go */
    for (size_t i = 0; i < r->n_ctxs; i++)
        fb_ctx_destroy(r->ctxs[i]);
    for (size_t i = 0; i < r->n_strings; i++)
        free(r->strings[i]);
    free(r->ctxs);
    free(r->strings);
    free(r->cases);
    for (size_t i = 0; i < KERNEL_N_SIZES; i++) {
        kernel_data_free(kernel_data_by_size[i]);
        kernel_data_by_size[i] = NULL;
    }
}

int fbench_kernels_main(int argc, char **argv)
{
    kernel_registry r;
    memset(&r, 0, sizeof r);
    /* room for every CPU variant and up to 64 OpenCL devices */
    r.cap_cases = (size_t)(FB_ISA_COUNT + 64) * KERNEL_N_KINDS * KERNEL_N_SIZES;
    r.cases = calloc(r.cap_cases, sizeof *r.cases);
    if (!r.cases) {
        fprintf(stderr, "fbench kernels: out of memory\n");
        return FBENCH_EXIT_FAILURE;
    }
    if (registry_add_cpu(&r) != 0 || registry_add_cl(&r) != 0) {
        fprintf(stderr, "fbench kernels: cannot register the benchmarks\n");
        registry_free(&r);
        return FBENCH_EXIT_FAILURE;
    }
    /* google benchmark names the program by argv[0] in its messages */
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args) {
        registry_free(&r);
        return FBENCH_EXIT_FAILURE;
    }
    char program[] = "fbench kernels";
    args[0] = program;
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    int rc = fb_bench_run(argc, args);
    free(args);
    registry_free(&r);
    return rc == 0 ? FBENCH_EXIT_OK : FBENCH_EXIT_USAGE;
}
