/* test_join.c - hash join kernels (fb_join.h): every CPU variant the machine runs (scalar, base, avx2,
 * avx512) and every join type against a nested-loop oracle written here, on random data with
 * duplicates, nulls (bitmaps at odd offsets), negatives, INT_MIN/INT_MAX, empty sides and composite
 * keys; output chunking with small capacities; one key repeated 100k times and Zipf probes (counts
 * and time); radix partitioning, and a partitioned join equal to the plain one; the memory limit;
 * bad-input statuses. The runtime's join pipelines (fb_pipeline_join_internal.h), both algorithms on every
 * variant, against a sort-merge oracle and against the kernel-level table. */
#include "fb_join_internal.h"
#include "fb_pipeline_join_internal.h"
#include "fb_test.h"
#include "fb_test_join.h"

#include <math.h>
#include <pthread.h>
#include <time.h>

FBT_VARIANTS_FIXTURE

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- data ---------------------------------------------------------------------------------------- */

/* Columns of rows [from, from + len) of a side (a morsel of it). */
static void slice(const side *s, int64_t from, int64_t len, fb_column *out)
{
    for (int c = 0; c < s->nk; c++) {
        out[c] = s->col[c];
        out[c].offset += from;
        out[c].length = len;
    }
}

/* ---- oracle -------------------------------------------------------------------------------------- */

typedef struct pairs {
    int64_t *b, *p;
    int64_t n, cap;
} pairs;

static void pairs_push(pairs *x, int64_t b, int64_t p)
{
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 1024;
        x->b = realloc(x->b, (size_t)x->cap * 8);
        x->p = realloc(x->p, (size_t)x->cap * 8);
    }
    x->b[x->n] = b;
    x->p[x->n++] = p;
}

static int keys_equal(const side *a, int64_t i, const side *b, int64_t j)
{
    for (int c = 0; c < a->nk; c++)
        if (key_at(a, c, i) != key_at(b, c, j))
            return 0;
    return 1;
}

/* Build rows get ids build_id[i]; probe rows get id probe_first + i. */
static void oracle_pairs(const side *build, const int64_t *build_id, const side *probe, int64_t probe_first,
                         int left, pairs *out)
{
    out->n = 0;
    for (int64_t i = 0; i < probe->n; i++) {
        int any = 0;
        if (live_at(probe, i))
            for (int64_t j = 0; j < build->n; j++)
                if (live_at(build, j) && keys_equal(probe, i, build, j)) {
                    pairs_push(out, build_id[j], probe_first + i);
                    any = 1;
                }
        if (!any && left)
            pairs_push(out, -1, probe_first + i);
    }
}

/* ---- the random differential test ---------------------------------------------------------------- */

/* Builds side `build` into a table of ctx in 1-3 morsels with gaps between their ids. */
static fb_hash_table *build_table(fb_ctx *ctx, const side *build, const fb_type *types, int64_t *build_id)
{
    fb_hash_table *t;
    assert_fb_ok(ctx, fb_hash_table_create(ctx, types, (size_t)build->nk, (int64_t)(fbt_next(&rng) % 3) * build->n / 2,
                                           &t));
    int parts = 1 + (int)(fbt_next(&rng) % 3);
    int64_t from = 0, id = (int64_t)(fbt_next(&rng) % 100);
    for (int k = 0; k < parts; k++) {
        int64_t len = k == parts - 1 ? build->n - from : (int64_t)(fbt_next(&rng) % (uint64_t)(build->n - from + 1));
        fb_column cols[4];
        slice(build, from, len, cols);
        assert_fb_ok(ctx, fb_hash_table_build(ctx, t, cols, (size_t)build->nk, id));
        for (int64_t i = 0; i < len; i++)
            build_id[from + i] = id + i;
        from += len;
        id += len + 1000;
    }
    assert_int_equal(fb_hash_table_rows(t), build->n);
    return t;
}

/* Runs a chunked probe (capacity cap) and appends every chunk to got. */
static void probe_all(fb_ctx *ctx, fb_hash_table *t, const side *probe, fb_join_type type, int64_t first,
                      int64_t cap, pairs *got)
{
    int64_t *bo = malloc((size_t)cap * 8), *po = malloc((size_t)cap * 8);
    fb_join_cursor cur = FB_JOIN_CURSOR_INIT;
    got->n = 0;
    for (int calls = 0;; calls++) {
        fb_join_pairs out = {bo, po, cap, -1, -1};
        assert_fb_ok(ctx, fb_hash_table_probe(ctx, t, probe->col, (size_t)probe->nk, type, first, &cur, &out));
        assert_true(out.length <= cap);
        if (out.more)
            assert_int_equal(out.length, cap); /* stops only when full */
        for (int64_t i = 0; i < out.length; i++)
            pairs_push(got, bo[i], po[i]);
        if (!out.more)
            break;
    }
    /* a finished cursor gives nothing more */
    fb_join_pairs out = {bo, po, cap, -1, -1};
    assert_fb_ok(ctx, fb_hash_table_probe(ctx, t, probe->col, (size_t)probe->nk, type, first, &cur, &out));
    assert_int_equal(out.length, 0);
    assert_int_equal(out.more, 0);
    free(bo);
    free(po);
}

static void check_pairs(const pairs *expect, const pairs *got, const char *what, fb_ctx *ctx)
{
    if (expect->n != got->n)
        fail_msg("%s variant %s: %lld pairs, expected %lld", what, fb_isa_name(fb_ctx_isa(ctx)), (long long)got->n,
                 (long long)expect->n);
    for (int64_t i = 0; i < got->n; i++)
        if (expect->b[i] != got->b[i] || expect->p[i] != got->p[i])
            fail_msg("%s variant %s: pair %lld is (%lld, %lld), expected (%lld, %lld)", what,
                     fb_isa_name(fb_ctx_isa(ctx)), (long long)i, (long long)got->b[i], (long long)got->p[i],
                     (long long)expect->b[i], (long long)expect->p[i]);
}

static void run_case(const fb_type *types, int nk, int64_t nb, int64_t np, int64_t pool)
{
    side build, probe;
    make_side(&build, types, nk, nb, pool, 1);
    make_side(&probe, types, nk, np, pool, 1);
    plant_matches(&probe, &build);
    int64_t *build_id = malloc((size_t)(nb + 1) * 8);
    int64_t first = (int64_t)(fbt_next(&rng) % 3) ? 7 : (int64_t)1 << 40; /* ids past 2^31 */
    pairs expect_inner = {0}, expect_left = {0}, got = {0};
    uint32_t *sel = malloc((size_t)(np + 1) * 4);
    uint8_t *mark = malloc((size_t)np + 1), *mvalid = malloc((size_t)(np + 7) / 8 + 1);
    for (int v = 0; v < n_variants; v++) {
        fb_ctx *ctx = variants[v];
        fb_hash_table *t = build_table(ctx, &build, types, build_id);
        oracle_pairs(&build, build_id, &probe, first, 0, &expect_inner);
        oracle_pairs(&build, build_id, &probe, first, 1, &expect_left);
        static const int64_t caps[] = {1, 3, 16, 1000, 1 << 20};
        int64_t cap = caps[fbt_next(&rng) % 5];
        probe_all(ctx, t, &probe, FB_JOIN_INNER, first, cap, &got);
        check_pairs(&expect_inner, &got, "inner", ctx);
        probe_all(ctx, t, &probe, FB_JOIN_LEFT, first, cap, &got);
        check_pairs(&expect_left, &got, "left", ctx);

        /* semi / anti / mark from the left join's oracle */
        int64_t n_sel;
        int has_null_build = 0;
        for (int64_t j = 0; j < nb; j++)
            has_null_build |= !live_at(&build, j);
        for (int type = FB_JOIN_SEMI; type <= FB_JOIN_ANTI; type++) {
            assert_fb_ok(ctx, fb_hash_table_probe_select(ctx, t, probe.col, (size_t)nk, (fb_join_type)type, sel, np,
                                                         &n_sel));
            int64_t k = 0, e = 0;
            for (int64_t i = 0; i < np; i++) {
                while (e < expect_left.n && expect_left.p[e] < first + i)
                    e++;
                int matched = e < expect_left.n && expect_left.p[e] == first + i && expect_left.b[e] >= 0;
                if (matched == (type == FB_JOIN_SEMI)) {
                    assert_true(k < n_sel);
                    assert_int_equal(sel[k], i);
                    k++;
                }
            }
            assert_int_equal(k, n_sel);
        }
        for (int with_validity = 0; with_validity < 2; with_validity++) {
            fb_column_out mo = {FB_TYPE_UINT8, np, mark, with_validity ? mvalid : NULL, -1, -1};
            assert_fb_ok(ctx, fb_hash_table_probe_mark(ctx, t, probe.col, (size_t)nk, &mo));
            assert_int_equal(mo.length, np);
            int64_t e = 0, nulls = 0;
            for (int64_t i = 0; i < np; i++) {
                while (e < expect_left.n && expect_left.p[e] < first + i)
                    e++;
                int matched = e < expect_left.n && expect_left.p[e] == first + i && expect_left.b[e] >= 0;
                assert_int_equal(mark[i], matched);
                if (with_validity) {
                    int is_null = !matched && ((!live_at(&probe, i) && nb > 0) || has_null_build);
                    nulls += is_null;
                    assert_int_equal((mvalid[i >> 3] >> (i & 7)) & 1, !is_null);
                }
            }
            assert_int_equal(mo.null_count, nulls);
        }
        fb_hash_table_destroy(t);
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
    }
    free(expect_inner.b);
    free(expect_inner.p);
    free(expect_left.b);
    free(expect_left.p);
    free(got.b);
    free(got.p);
    free(sel);
    free(mark);
    free(mvalid);
    free(build_id);
    free_side(&build);
    free_side(&probe);
}

static void test_random_joins(void **state)
{
    (void)state;
    static const fb_type specs[][4] = {
        {FB_TYPE_INT32},
        {FB_TYPE_INT64},
        {FB_TYPE_UINT32},
        {FB_TYPE_UINT64},
        {FB_TYPE_DATE32},
        {FB_TYPE_INT32, FB_TYPE_INT64},
        {FB_TYPE_INT64, FB_TYPE_INT32, FB_TYPE_UINT32},
        {FB_TYPE_INT64, FB_TYPE_INT32, FB_TYPE_INT64, FB_TYPE_INT32},
    };
    static const int nks[] = {1, 1, 1, 1, 1, 2, 3, 4};
    static const int64_t sizes[][2] = {{0, 0}, {0, 40}, {40, 0}, {1, 1}, {17, 33}, {300, 500}, {1500, 2000}};
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++)
        for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
            int64_t pool = 1 + (int64_t)(fbt_next(&rng) % 2 ? sizes[z][0] / 4 : sizes[z][0] * 2);
            run_case(specs[s], nks[s], sizes[z][0], sizes[z][1], pool);
        }
}

/* ---- skew: one key 100k times, Zipf probes ------------------------------------------------------- */

static void test_heavy_duplicates(void **state)
{
    (void)state;
    const int64_t nb = 100000 + 1000, np = 3000;
    int32_t *bk = malloc((size_t)nb * 4), *pk = malloc((size_t)np * 4);
    for (int64_t i = 0; i < nb; i++)
        bk[i] = i < 100000 ? 42 : (int32_t)(i - 100000 + 1000); /* 42 x 100k, then 1000..1999 */
    int64_t hits = 0;
    for (int64_t i = 0; i < np; i++) {
        pk[i] = i % 100 == 0 ? 42 : (int32_t)(fbt_next(&rng) % 4000);
        hits += pk[i] == 42 ? 100000 : (pk[i] >= 1000 && pk[i] < 2000);
    }
    fb_column b = fb_column_make(FB_TYPE_INT32, bk, nb, NULL), p = fb_column_make(FB_TYPE_INT32, pk, np, NULL);
    fb_type ty = FB_TYPE_INT32;
    const int64_t cap = 1 << 16;
    int64_t *bo = malloc(cap * 8), *po = malloc(cap * 8);
    for (int v = 0; v < n_variants; v++) {
        fb_ctx *ctx = variants[v];
        double t0 = now_s();
        fb_hash_table *t;
        assert_fb_ok(ctx, fb_hash_table_create(ctx, &ty, 1, 0, &t));
        assert_fb_ok(ctx, fb_hash_table_build(ctx, t, &b, 1, 0));
        assert_int_equal(fb_hash_table_distinct(t), 1001);
        fb_join_cursor cur = FB_JOIN_CURSOR_INIT;
        int64_t total = 0, last_p = -1, last_b = -1;
        fb_join_pairs out = {bo, po, cap, 0, 1};
        while (out.more) {
            assert_fb_ok(ctx, fb_hash_table_probe(ctx, t, &p, 1, FB_JOIN_INNER, 0, &cur, &out));
            for (int64_t i = 0; i < out.length; i++) { /* probe order, then insertion order */
                assert_true(po[i] > last_p || (po[i] == last_p && bo[i] > last_b));
                assert_int_equal(bk[bo[i]], pk[po[i]]);
                last_p = po[i];
                last_b = bo[i];
            }
            total += out.length;
        }
        assert_int_equal(total, hits);
        double dt = now_s() - t0;
        fprintf(stderr, "[ info     ] %s: 100k-duplicate build + %lld pairs in %.3f s\n", fb_isa_name(fb_ctx_isa(ctx)),
                (long long)hits, dt);
        assert_true(dt < 10.0); /* a quadratic walk would take minutes */
        fb_hash_table_destroy(t);
    }
    free(bo);
    free(po);
    free(bk);
    free(pk);
}

static void test_zipf(void **state)
{
    (void)state;
    const int64_t keys = 50000, np = 400000;
    /* build: key k appears 1 + (k % 5 == 0 ? k % 7 : 0) times, keys 0..keys-1 shuffled; key 0 20 times */
    int64_t nb = 0;
    int64_t *dup = malloc((size_t)keys * 8);
    for (int64_t k = 0; k < keys; k++)
        nb += dup[k] = k == 0 ? 20 : 1 + (k % 5 == 0 ? k % 7 : 0);
    int64_t *bk = malloc((size_t)nb * 8), *pk = malloc((size_t)np * 8);
    for (int64_t k = 0, i = 0; k < keys; k++)
        for (int64_t d = 0; d < dup[k]; d++)
            bk[i++] = k * 1000003 - 77;
    for (int64_t i = nb - 1; i > 0; i--) {
        int64_t j = (int64_t)(fbt_next(&rng) % (uint64_t)(i + 1)), x = bk[i];
        bk[i] = bk[j];
        bk[j] = x;
    }
    int64_t expect = 0;
    for (int64_t i = 0; i < np; i++) { /* Zipf(s = 1) ranks by inverse CDF: density ~ 1/rank */
        double u = (double)(fbt_next(&rng) >> 11) / 9007199254740992.0;
        int64_t k = (int64_t)exp(u * log((double)keys + 1)) - 1;
        if (k >= keys)
            k = keys - 1;
        pk[i] = k * 1000003 - 77;
        expect += dup[k];
    }
    fb_column b = fb_column_make(FB_TYPE_INT64, bk, nb, NULL), p = fb_column_make(FB_TYPE_INT64, pk, np, NULL);
    fb_type ty = FB_TYPE_INT64;
    const int64_t cap = 100000;
    int64_t *bo = malloc(cap * 8), *po = malloc(cap * 8);
    uint64_t ref_sum = 0;
    for (int v = 0; v < n_variants; v++) {
        fb_ctx *ctx = variants[v];
        double t0 = now_s();
        fb_hash_table *t;
        assert_fb_ok(ctx, fb_hash_table_create(ctx, &ty, 1, 0, &t));
        assert_fb_ok(ctx, fb_hash_table_build(ctx, t, &b, 1, 0));
        fb_join_cursor cur = FB_JOIN_CURSOR_INIT;
        int64_t total = 0;
        uint64_t sum = 0;
        fb_join_pairs out = {bo, po, cap, 0, 1};
        while (out.more) {
            assert_fb_ok(ctx, fb_hash_table_probe(ctx, t, &p, 1, FB_JOIN_INNER, 0, &cur, &out));
            for (int64_t i = 0; i < out.length; i++) {
                assert_true(bk[bo[i]] == pk[po[i]]);
                sum = sum * 31 + (uint64_t)bo[i] * 7 + (uint64_t)po[i];
            }
            total += out.length;
        }
        assert_int_equal(total, expect);
        if (v == 0)
            ref_sum = sum;
        assert_true(sum == ref_sum); /* identical order in every variant */
        fprintf(stderr, "[ info     ] %s: zipf %lld probes, %lld pairs in %.3f s\n", fb_isa_name(fb_ctx_isa(ctx)),
                (long long)np, (long long)total, now_s() - t0);
        fb_hash_table_destroy(t);
    }
    free(bo);
    free(po);
    free(bk);
    free(pk);
    free(dup);
}

/* ---- radix partitioning -------------------------------------------------------------------------- */

static void test_radix_partition(void **state)
{
    (void)state;
    static const int64_t ns[] = {0, 1, 15, 16, 17, 100, 1000, 100003};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        int64_t n = ns[ni];
        uint64_t *h = malloc((size_t)(n + 1) * 8);
        for (int64_t i = 0; i < n; i++)
            h[i] = fbt_next(&rng) % 4 ? fbt_next(&rng) : 0xABCDEF; /* some repeats */
        for (int bits = 1; bits <= 12; bits += 1 + (int)(fbt_next(&rng) % 3)) {
            int shift = (int)(fbt_next(&rng) % (uint64_t)(65 - bits));
            size_t parts = (size_t)1 << bits;
            int64_t *off = malloc((parts + 1) * 8);
            uint32_t *raw = aligned_alloc(64, ((size_t)(n + 64) * 4 + 127) / 64 * 64), *ref = malloc((size_t)(n + 1) * 4);
            for (int v = 0; v < n_variants; v++) {
                fb_ctx *ctx = variants[v];
                uint32_t *perm = raw + fbt_next(&rng) % 16; /* any alignment */
                assert_fb_ok(ctx, fb_radix_partition(ctx, h, n, bits, shift, off, perm));
                assert_int_equal(off[0], 0);
                assert_int_equal(off[parts], n);
                for (size_t p = 0; p < parts; p++) {
                    assert_true(off[p] <= off[p + 1]);
                    for (int64_t e = off[p]; e < off[p + 1]; e++) {
                        assert_true(perm[e] < (uint64_t)n);
                        assert_int_equal((h[perm[e]] >> shift) & (parts - 1), p);
                        if (e > off[p])
                            assert_true(perm[e] > perm[e - 1]); /* ascending: each row once */
                    }
                }
                if (v == 0)
                    memcpy(ref, perm, (size_t)n * 4);
                else if (n)
                    assert_memory_equal(ref, perm, (size_t)n * 4);
                assert_int_equal(fb_ctx_memory_used(ctx), 0);
            }
            free(off);
            free(raw);
            free(ref);
        }
        free(h);
    }
}

/* A radix-partitioned join gives the same pairs as the plain one: partition both sides by the low
 * hash bits, build and probe one table per partition (which places keys by the top bits), map the
 * partition-local ids back through the permutations. */
static int cmp_pair(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    return x[0] != y[0] ? (x[0] < y[0] ? -1 : 1) : x[1] < y[1] ? -1 : x[1] > y[1];
}

static void test_partitioned_join(void **state)
{
    (void)state;
    const int64_t nb = 20000, np = 30000;
    const int bits = 4, parts = 1 << bits;
    int64_t *bk = malloc((size_t)nb * 8), *pk = malloc((size_t)np * 8), *kbuf = malloc((size_t)np * 8);
    for (int64_t i = 0; i < nb; i++)
        bk[i] = (int64_t)(fbt_next(&rng) % 15000) - 7000;
    for (int64_t i = 0; i < np; i++)
        pk[i] = (int64_t)(fbt_next(&rng) % 20000) - 9000;
    uint64_t *bh = malloc((size_t)nb * 8), *ph = malloc((size_t)np * 8);
    uint32_t *bperm = malloc((size_t)nb * 4), *pperm = malloc((size_t)np * 4);
    int64_t boff[17], poff[17];
    fb_column b = fb_column_make(FB_TYPE_INT64, bk, nb, NULL), p = fb_column_make(FB_TYPE_INT64, pk, np, NULL);
    fb_type ty = FB_TYPE_INT64;
    const int64_t cap = 1 << 20;
    int64_t *bo = malloc(cap * 8), *po = malloc(cap * 8);
    int64_t *ref = malloc((size_t)cap * 16), *got = malloc((size_t)cap * 16);
    for (int v = 0; v < n_variants; v++) {
        fb_ctx *ctx = variants[v];
        fb_hash_table *t;
        fb_join_cursor cur = FB_JOIN_CURSOR_INIT;
        fb_join_pairs out = {bo, po, cap, 0, 0};
        assert_fb_ok(ctx, fb_hash_table_create(ctx, &ty, 1, nb, &t));
        assert_fb_ok(ctx, fb_hash_table_build(ctx, t, &b, 1, 0));
        assert_fb_ok(ctx, fb_hash_table_probe(ctx, t, &p, 1, FB_JOIN_INNER, 0, &cur, &out));
        assert_int_equal(out.more, 0);
        int64_t n_ref = out.length;
        for (int64_t i = 0; i < n_ref; i++) {
            ref[2 * i] = bo[i];
            ref[2 * i + 1] = po[i];
        }
        fb_hash_table_destroy(t);

        assert_fb_ok(ctx, fb_hash_columns(ctx, &b, 1, bh, nb));
        assert_fb_ok(ctx, fb_hash_columns(ctx, &p, 1, ph, np));
        assert_fb_ok(ctx, fb_radix_partition(ctx, bh, nb, bits, 0, boff, bperm));
        assert_fb_ok(ctx, fb_radix_partition(ctx, ph, np, bits, 0, poff, pperm));
        int64_t n_got = 0;
        for (int q = 0; q < parts; q++) {
            int64_t bn = boff[q + 1] - boff[q], pn = poff[q + 1] - poff[q];
            fb_column_out ko = {FB_TYPE_INT64, np, kbuf, NULL, 0, 0};
            assert_fb_ok(ctx, fb_hash_table_create(ctx, &ty, 1, bn, &t));
            assert_fb_ok(ctx, fb_compact(ctx, &b, bperm + boff[q], bn, &ko));
            fb_column bpart = fb_column_make(FB_TYPE_INT64, kbuf, bn, NULL);
            assert_fb_ok(ctx, fb_hash_table_build(ctx, t, &bpart, 1, 0));
            assert_fb_ok(ctx, fb_compact(ctx, &p, pperm + poff[q], pn, &ko));
            fb_column ppart = fb_column_make(FB_TYPE_INT64, kbuf, pn, NULL);
            fb_join_cursor pc = FB_JOIN_CURSOR_INIT;
            fb_join_pairs po_out = {bo, po, cap, 0, 0};
            assert_fb_ok(ctx, fb_hash_table_probe(ctx, t, &ppart, 1, FB_JOIN_INNER, 0, &pc, &po_out));
            assert_int_equal(po_out.more, 0);
            assert_true(n_got + po_out.length <= cap);
            for (int64_t i = 0; i < po_out.length; i++) {
                got[2 * n_got] = bperm[boff[q] + bo[i]];
                got[2 * n_got + 1] = pperm[poff[q] + po[i]];
                n_got++;
            }
            fb_hash_table_destroy(t);
        }
        assert_int_equal(n_got, n_ref);
        qsort(ref, (size_t)n_ref, 16, cmp_pair);
        qsort(got, (size_t)n_got, 16, cmp_pair);
        assert_memory_equal(ref, got, (size_t)n_ref * 16);
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
    }
    free(bk);
    free(pk);
    free(kbuf);
    free(bh);
    free(ph);
    free(bperm);
    free(pperm);
    free(bo);
    free(po);
    free(ref);
    free(got);
}

/* ---- the table built by several threads at once (fb_hash_table_build_shared) --------------------- */

typedef struct shared_job {
    fb_ctx *ctx;
    fb_hash_table *t;
    const side *build;
    int k, threads;
    int64_t morsel;
    fb_status st;
} shared_job;

/* Inserts morsels k, k + threads, k + 2 threads, ... of the build side (ids = row numbers). */
static void *shared_worker(void *arg)
{
    shared_job *j = arg;
    for (int64_t at = j->k * j->morsel; at < j->build->n && j->st == FB_OK; at += j->threads * j->morsel) {
        int64_t len = j->build->n - at < j->morsel ? j->build->n - at : j->morsel;
        fb_column cols[4];
        slice(j->build, at, len, cols);
        j->st = fb_hash_table_build_shared(j->ctx, j->t, cols, (size_t)j->build->nk, at);
    }
    return NULL;
}

/* Sorts pairs by (build id, probe id). */
static void sort_pairs(pairs *x)
{
    int64_t *r = malloc((size_t)(x->n + 1) * 16);
    for (int64_t i = 0; i < x->n; i++) {
        r[2 * i] = x->b[i];
        r[2 * i + 1] = x->p[i];
    }
    qsort(r, (size_t)x->n, 16, cmp_pair);
    for (int64_t i = 0; i < x->n; i++) {
        x->b[i] = r[2 * i];
        x->p[i] = r[2 * i + 1];
    }
    free(r);
}

/* 4 threads insert interleaved morsels of one build side into one table: every variant's probes find
 * exactly the oracle's pairs (duplicates: chains appended from several threads at once; one key 20k
 * times; nulls; composite keys), the row counts add up, and rows past the reservation are refused. */
static void test_shared_build(void **state)
{
    (void)state;
    static const fb_type ty[][3] = {{FB_TYPE_INT32}, {FB_TYPE_INT64}, {FB_TYPE_UINT32, FB_TYPE_INT64, FB_TYPE_INT32}};
    enum { THREADS = 4 };
    for (int v = 0; v < n_variants; v++) {
        fb_ctx *ctx = variants[v];
        for (int round = 0; round < 4; round++) {
            int tk = round % 3, nk = tk == 2 ? 3 : 1;
            int64_t nb = round == 3 ? 20000 : 3000 + (int64_t)(fbt_next(&rng) % 2000);
            side b, p;
            make_side(&b, ty[tk], nk, nb, round == 0 ? 40 : 400, round != 1);
            make_side(&p, ty[tk], nk, round == 3 ? 60 : 2000, 400, round != 1);
            if (round == 3)
                for (int64_t i = 0; i < b.n; i++)
                    set_key(&b, 0, i, -5); /* one key 20k times (single-column round 3) */
            plant_matches(&p, &b);
            int64_t *ids = malloc((size_t)(b.n + 1) * 8);
            for (int64_t i = 0; i < b.n; i++)
                ids[i] = i;
            pairs want = {0}, got = {0};
            oracle_pairs(&b, ids, &p, 0, 0, &want);
            fb_hash_table *t;
            assert_fb_ok(ctx, fb_hash_table_create(ctx, ty[tk], (size_t)nk, b.n, &t));
            assert_fb_ok(ctx, fb_hash_table_reserve_shared(ctx, t, b.n));
            pthread_t th[THREADS];
            shared_job jobs[THREADS];
            int64_t morsel = 1 + (int64_t)(fbt_next(&rng) % 300);
            for (int k = 0; k < THREADS; k++) {
                jobs[k] = (shared_job){ctx, t, &b, k, THREADS, morsel, FB_OK};
                assert_int_equal(pthread_create(&th[k], NULL, shared_worker, &jobs[k]), 0);
            }
            for (int k = 0; k < THREADS; k++) {
                assert_int_equal(pthread_join(th[k], NULL), 0);
                assert_int_equal(jobs[k].st, FB_OK);
            }
            assert_int_equal(fb_hash_table_rows(t), b.n);
            /* the reservation is used up */
            fb_column one[4];
            slice(&b, 0, 1, one);
            if (b.n)
                assert_fb_status(ctx, fb_hash_table_build_shared(ctx, t, one, (size_t)nk, 0), FB_ERR_CAPACITY);
            probe_all(ctx, t, &p, FB_JOIN_INNER, 0, 777, &got);
            sort_pairs(&want);
            sort_pairs(&got);
            check_pairs(&want, &got, "shared build", ctx);
            fb_hash_table_destroy(t);
            free(want.b);
            free(want.p);
            free(got.b);
            free(got.p);
            free(ids);
            free_side(&b);
            free_side(&p);
        }
    }
}

/* ---- SQL semantics spelled out, memory limit, bad input ------------------------------------------ */

static void test_fixed_semantics(void **state)
{
    (void)state;
    int32_t bk[6] = {5, INT32_MIN, 5, 7, 9, INT32_MAX};
    uint8_t bvalid[1] = {0x3F & ~0x10}; /* row 4 (9) is null */
    int32_t pk[6] = {5, 9, INT32_MIN, 8, 7, INT32_MAX};
    uint8_t pvalid[1] = {0x3F & ~0x08}; /* row 3 is null */
    fb_column b = fb_column_make(FB_TYPE_INT32, bk, 6, bvalid), p = fb_column_make(FB_TYPE_INT32, pk, 6, pvalid);
    fb_type ty = FB_TYPE_INT32;
    for (int v = 0; v < n_variants; v++) {
        fb_ctx *ctx = variants[v];
        fb_hash_table *t;
        assert_fb_ok(ctx, fb_hash_table_create(ctx, &ty, 1, 100, &t));
        assert_fb_ok(ctx, fb_hash_table_build(ctx, t, &b, 1, 10));
        int64_t bo[16], po[16];
        fb_join_cursor cur = FB_JOIN_CURSOR_INIT;
        fb_join_pairs out = {bo, po, 16, 0, 0};
        assert_fb_ok(ctx, fb_hash_table_probe(ctx, t, &p, 1, FB_JOIN_LEFT, 100, &cur, &out));
        int64_t eb[] = {10, 12, -1, 11, -1, 13, 15}, ep[] = {100, 100, 101, 102, 103, 104, 105};
        assert_int_equal(out.length, 7);
        assert_memory_equal(bo, eb, sizeof eb);
        assert_memory_equal(po, ep, sizeof ep);
        uint32_t sel[6];
        int64_t ns;
        assert_fb_ok(ctx, fb_hash_table_probe_select(ctx, t, &p, 1, FB_JOIN_ANTI, sel, 6, &ns));
        assert_int_equal(ns, 2); /* 9 (null in build) and the null probe key: NOT EXISTS keeps both */
        assert_int_equal(sel[0], 1);
        assert_int_equal(sel[1], 3);
        uint8_t mark[6], mv[1];
        fb_column_out mo = {FB_TYPE_UINT8, 6, mark, mv, 0, 0};
        assert_fb_ok(ctx, fb_hash_table_probe_mark(ctx, t, &p, 1, &mo));
        uint8_t em[6] = {1, 0, 1, 0, 1, 1};
        assert_memory_equal(mark, em, 6);
        assert_int_equal(mv[0] & 0x3F, 0x35); /* build has a null key: unmatched rows 1 and 3 are null */
        assert_int_equal(mo.null_count, 2);
        fb_hash_table_destroy(t);
    }
}

static void test_memory_limit(void **state)
{
    (void)state;
    fb_options *o;
    fb_ctx *ctx;
    assert_int_equal(fb_options_create(&o), FB_OK);
    assert_int_equal(fb_options_set_memory_limit(o, 64 * 1024), FB_OK);
    assert_int_equal(fb_ctx_create(o, &ctx), FB_OK);
    fb_options_destroy(o);
    fb_type ty = FB_TYPE_INT64;
    fb_hash_table *t;
    assert_fb_status(ctx, fb_hash_table_create(ctx, &ty, 1, 1000000, &t), FB_ERR_OUT_OF_MEMORY);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    assert_fb_ok(ctx, fb_hash_table_create(ctx, &ty, 1, 0, &t));
    int64_t k[4000];
    for (int i = 0; i < 4000; i++)
        k[i] = i * 3;
    fb_column small = fb_column_make(FB_TYPE_INT64, k, 100, NULL), big = fb_column_make(FB_TYPE_INT64, k, 4000, NULL);
    assert_fb_ok(ctx, fb_hash_table_build(ctx, t, &small, 1, 0));
    size_t used = fb_ctx_memory_used(ctx);
    assert_fb_status(ctx, fb_hash_table_build(ctx, t, &big, 1, 100), FB_ERR_OUT_OF_MEMORY);
    assert_int_equal(fb_ctx_memory_used(ctx), used); /* the table is as before */
    assert_int_equal(fb_hash_table_rows(t), 100);
    uint32_t sel[4000];
    int64_t ns;
    assert_fb_ok(ctx, fb_hash_table_probe_select(ctx, t, &big, 1, FB_JOIN_SEMI, sel, 4000, &ns));
    assert_int_equal(ns, 100);
    uint64_t h[4000];
    int64_t off[1 << 13];
    uint32_t perm[4000];
    assert_fb_status(ctx, fb_radix_partition(ctx, h, 0, 12, 0, off, perm), FB_ERR_OUT_OF_MEMORY);
    fb_hash_table_destroy(t);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    fb_ctx_destroy(ctx);
}

static void test_bad_input(void **state)
{
    (void)state;
    for (int v = 0; v < n_variants; v++) {
        fb_ctx *ctx = variants[v];
        int32_t d[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
        int64_t d64[20] = {0};
        fb_column c = fb_column_make(FB_TYPE_INT32, d, 20, NULL), c19 = fb_column_make(FB_TYPE_INT32, d, 19, NULL);
        fb_column c64 = fb_column_make(FB_TYPE_INT64, d64, 20, NULL);
        fb_type ty = FB_TYPE_INT32, two[2] = {FB_TYPE_INT32, FB_TYPE_INT64}, bad = FB_TYPE_FLOAT64;
        fb_type five[5] = {ty, ty, ty, ty, ty};
        fb_hash_table *t, *t2;
        assert_fb_status(NULL, fb_hash_table_create(NULL, &ty, 1, 0, &t), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_create(ctx, NULL, 1, 0, &t), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_create(ctx, &ty, 1, 0, NULL), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_create(ctx, &ty, 0, 0, &t), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_create(ctx, five, 5, 0, &t), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_create(ctx, &ty, 1, -1, &t), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_create(ctx, &bad, 1, 0, &t), FB_ERR_UNSUPPORTED_TYPE);
        fb_type small = FB_TYPE_INT16;
        assert_fb_status(ctx, fb_hash_table_create(ctx, &small, 1, 0, &t), FB_ERR_UNSUPPORTED_TYPE);
        assert_fb_ok(ctx, fb_hash_table_create(ctx, &ty, 1, 0, &t));
        assert_fb_ok(ctx, fb_hash_table_create(ctx, two, 2, 0, &t2));

        /* build */
        assert_fb_status(NULL, fb_hash_table_build(NULL, t, &c, 1, 0), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_build(ctx, NULL, &c, 1, 0), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_build(ctx, t, NULL, 1, 0), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_build(ctx, t, &c, 2, 0), FB_ERR_INVALID_ARG); /* key count */
        assert_fb_status(ctx, fb_hash_table_build(ctx, t, &c64, 1, 0), FB_ERR_UNSUPPORTED_TYPE);
        assert_fb_status(ctx, fb_hash_table_build(ctx, t, &c, 1, -1), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_build(ctx, t, &c, 1, INT64_MAX - 5), FB_ERR_INVALID_ARG);
        fb_column pair_bad[2] = {c19, c64}, pair_ok[2] = {c, c64}, pair_swapped[2] = {c64, c};
        assert_fb_status(ctx, fb_hash_table_build(ctx, t2, pair_bad, 2, 0), FB_ERR_LENGTH_MISMATCH);
        assert_fb_status(ctx, fb_hash_table_build(ctx, t2, pair_swapped, 2, 0), FB_ERR_UNSUPPORTED_TYPE);
        fb_column nodata = c;
        nodata.data = NULL;
        assert_fb_status(ctx, fb_hash_table_build(ctx, t, &nodata, 1, 0), FB_ERR_INVALID_ARG);
        assert_int_equal(fb_hash_table_rows(t), 0);
        assert_fb_ok(ctx, fb_hash_table_build(ctx, t, &c, 1, 0));
        assert_fb_ok(ctx, fb_hash_table_build(ctx, t2, pair_ok, 2, 0));

        /* probe */
        int64_t bo[4], po[4];
        fb_join_cursor cur = FB_JOIN_CURSOR_INIT;
        fb_join_pairs out = {bo, po, 4, 9, 9};
        assert_fb_status(NULL, fb_hash_table_probe(NULL, t, &c, 1, FB_JOIN_INNER, 0, &cur, &out), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_probe(ctx, NULL, &c, 1, FB_JOIN_INNER, 0, &cur, &out), FB_ERR_INVALID_ARG);
        assert_int_equal(out.length, 0);
        assert_fb_status(ctx, fb_hash_table_probe(ctx, t, &c, 1, FB_JOIN_INNER, 0, NULL, &out), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_probe(ctx, t, &c, 1, FB_JOIN_INNER, 0, &cur, NULL), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_probe(ctx, t, &c, 1, FB_JOIN_SEMI, 0, &cur, &out), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_probe(ctx, t, &c, 1, (fb_join_type)99, 0, &cur, &out), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_probe(ctx, t, &c, 0, FB_JOIN_INNER, 0, &cur, &out), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_probe(ctx, t, &c64, 1, FB_JOIN_INNER, 0, &cur, &out),
                         FB_ERR_UNSUPPORTED_TYPE);
        assert_fb_status(ctx, fb_hash_table_probe(ctx, t2, pair_bad, 2, FB_JOIN_INNER, 0, &cur, &out),
                         FB_ERR_LENGTH_MISMATCH);
        assert_fb_status(ctx, fb_hash_table_probe(ctx, t, &c, 1, FB_JOIN_INNER, -3, &cur, &out), FB_ERR_INVALID_ARG);
        out.capacity = 0;
        assert_fb_status(ctx, fb_hash_table_probe(ctx, t, &c, 1, FB_JOIN_INNER, 0, &cur, &out), FB_ERR_CAPACITY);
        out.capacity = 4;
        out.build_ids = NULL;
        assert_fb_status(ctx, fb_hash_table_probe(ctx, t, &c, 1, FB_JOIN_INNER, 0, &cur, &out), FB_ERR_INVALID_ARG);
        out.build_ids = bo;
        fb_join_cursor bad_cur = {21, 0};
        assert_fb_status(ctx, fb_hash_table_probe(ctx, t, &c, 1, FB_JOIN_INNER, 0, &bad_cur, &out), FB_ERR_INVALID_ARG);
        bad_cur.row = 3;
        bad_cur.chain = 1000;
        assert_fb_status(ctx, fb_hash_table_probe(ctx, t, &c, 1, FB_JOIN_INNER, 0, &bad_cur, &out), FB_ERR_INVALID_ARG);
        assert_fb_ok(ctx, fb_hash_table_probe(ctx, t, &c, 1, FB_JOIN_INNER, 0, &cur, &out));
        assert_int_equal(out.length, 4);
        assert_int_equal(out.more, 1);

        /* semi / anti / mark */
        uint32_t sel[20];
        int64_t ns;
        assert_fb_status(ctx, fb_hash_table_probe_select(ctx, t, &c, 1, FB_JOIN_SEMI, sel, 19, &ns), FB_ERR_CAPACITY);
        assert_fb_status(ctx, fb_hash_table_probe_select(ctx, t, &c, 1, FB_JOIN_INNER, sel, 20, &ns),
                         FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_probe_select(ctx, t, &c, 1, FB_JOIN_SEMI, NULL, 20, &ns),
                         FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_probe_select(ctx, t, &c, 1, FB_JOIN_SEMI, sel, 20, NULL),
                         FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_hash_table_probe_select(ctx, t2, &c, 1, FB_JOIN_SEMI, sel, 20, &ns),
                         FB_ERR_INVALID_ARG);
        uint8_t mk[20];
        fb_column_out mo = {FB_TYPE_INT8, 20, mk, NULL, 5, 5};
        assert_fb_status(ctx, fb_hash_table_probe_mark(ctx, t, &c, 1, &mo), FB_ERR_UNSUPPORTED_TYPE);
        assert_int_equal(mo.length, 0);
        mo.type = FB_TYPE_UINT8;
        mo.capacity = 19;
        assert_fb_status(ctx, fb_hash_table_probe_mark(ctx, t, &c, 1, &mo), FB_ERR_CAPACITY);
        assert_fb_status(ctx, fb_hash_table_probe_mark(ctx, t, &c, 1, NULL), FB_ERR_INVALID_ARG);

        /* radix */
        uint64_t h[20] = {0};
        int64_t off[17];
        uint32_t perm[20];
        assert_fb_status(NULL, fb_radix_partition(NULL, h, 20, 4, 0, off, perm), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_radix_partition(ctx, NULL, 20, 4, 0, off, perm), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_radix_partition(ctx, h, 20, 4, 0, NULL, perm), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_radix_partition(ctx, h, 20, 4, 0, off, NULL), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_radix_partition(ctx, h, -1, 4, 0, off, perm), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_radix_partition(ctx, h, 20, 0, 0, off, perm), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_radix_partition(ctx, h, 20, 17, 0, off, perm), FB_ERR_INVALID_ARG);
        assert_fb_status(ctx, fb_radix_partition(ctx, h, 20, 4, 61, off, perm), FB_ERR_INVALID_ARG);
        assert_fb_ok(ctx, fb_radix_partition(ctx, h, 20, 4, 60, off, perm));

        fb_hash_table_destroy(t);
        fb_hash_table_destroy(t2);
        fb_hash_table_destroy(NULL);
        assert_int_equal(fb_ctx_memory_used(ctx), 0);
    }
}

/* ---- the runtime's join pipelines --------------------------------------------------------------- */

typedef struct pair64 {
    int64_t b, p;
} pair64;

typedef struct brow {
    int64_t key, row;
} brow;

static int cmp_brow(const void *x, const void *y)
{
    const brow *a = x, *b = y;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

/* The oracle: build rows sorted by key, a binary search per probe row. Count, sum(bv + pv) and, when
 * pairs is given, every (build row, probe row) pair (sorted). */
static int64_t oracle_join(const side *b, const int32_t *bv, const side *p, const int32_t *pv, __int128 *sum,
                           pair64 **pairs_out)
{
    brow *r = malloc((size_t)(b->n + 1) * sizeof *r);
    int64_t nr = 0;
    for (int64_t i = 0; i < b->n; i++)
        if (live_at(b, i))
            r[nr++] = (brow){key_at(b, 0, i), i};
    qsort(r, (size_t)nr, sizeof *r, cmp_brow);
    int64_t count = 0, cap = 16;
    __int128 s = 0;
    pair64 *out = pairs_out ? malloc((size_t)cap * sizeof *out) : NULL;
    for (int64_t j = 0; j < p->n; j++) {
        if (!live_at(p, j))
            continue;
        int64_t k = key_at(p, 0, j), lo = 0, hi = nr;
        while (lo < hi) {
            int64_t mid = (lo + hi) / 2;
            if (r[mid].key < k)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (int64_t q = lo; q < nr && r[q].key == k; q++) {
            count++;
            if (bv)
                s += (int64_t)bv[r[q].row] + pv[j];
            if (pairs_out) {
                if (count > cap) {
                    cap *= 2;
                    out = realloc(out, (size_t)cap * sizeof *out);
                }
                out[count - 1] = (pair64){r[q].row, j};
            }
        }
    }
    free(r);
    if (pairs_out) {
        qsort(out, (size_t)count, sizeof *out, cmp_pair); /* pair64 is two int64, as cmp_pair reads */
        *pairs_out = out;
    }
    *sum = s;
    return count;
}

/* A context of variant `isa` with 2 workers and a forced join algorithm. */
static fb_ctx *join_ctx(fb_isa isa, fb_join_algorithm algo)
{
    fb_options *o = NULL;
    fb_ctx *ctx = NULL;
    assert_int_equal(fb_options_create(&o), FB_OK);
    assert_int_equal(fb_options_set_isa(o, isa), FB_OK);
    assert_int_equal(fb_options_set_threads(o, 2), FB_OK);
    assert_int_equal(fb_options_set_join_algorithm(o, algo), FB_OK);
    assert_int_equal(fb_ctx_create(o, &ctx), FB_OK);
    fb_options_destroy(o);
    assert_int_equal(fb_ctx_join_algorithm(ctx), algo);
    return ctx;
}

static int32_t *random_vals(int64_t n)
{
    int32_t *v = malloc((size_t)(n + 1) * 4);
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = fbt_next(&rng);
        v[i] = r % 8 == 0 ? (r % 16 == 0 ? INT32_MIN : INT32_MAX) : (int32_t)(r >> 32);
    }
    return v;
}

/* Runs the join both ways (count/sum and pairs) and checks both against the oracle. */
static void check_pipeline_join(fb_ctx *ctx, const side *b, const side *p, int bits, int morsel, const char *what)
{
    int32_t *bv = random_vals(b->n), *pv = random_vals(p->n);
    fb_join_input in;
    memset(&in, 0, sizeof in);
    in.build_key = b->col[0];
    in.probe_key = p->col[0];
    in.build_val = fb_column_make(FB_TYPE_INT32, bv, b->n, NULL);
    in.probe_val = fb_column_make(FB_TYPE_INT32, pv, p->n, NULL);
    in.radix_bits = bits;
    in.morsel_rows = morsel;
    __int128 want_sum;
    pair64 *want_pairs = NULL;
    int64_t want = oracle_join(b, bv, p, pv, &want_sum, &want_pairs);
    fb_join_result r;
    in.output = FB_JOIN_OUTPUT_COUNT_SUM;
    assert_fb_ok(ctx, fb_run_join(ctx, &in, &r));
    if (r.count != want || (__int128)r.sum != want_sum)
        fail_msg("%s (%s, bits %d, variant %s): count %lld sum %lld, expected %lld %lld", what,
                 fb_ctx_join_algorithm(ctx) == FB_JOIN_ALGO_RADIX ? "radix" : "shared", bits,
                 fb_isa_name(fb_ctx_isa(ctx)), (long long)r.count, (long long)r.sum, (long long)want,
                 (long long)want_sum);
    assert_int_equal(r.algorithm, fb_ctx_join_algorithm(ctx));
    in.output = FB_JOIN_OUTPUT_PAIRS;
    assert_fb_ok(ctx, fb_run_join(ctx, &in, &r));
    assert_int_equal(r.count, want);
    pair64 *got = malloc((size_t)(want + 1) * sizeof *got);
    int64_t at = 0;
    for (int64_t k = 0; k < r.n_blocks; k++)
        for (int64_t i = 0; i < r.blocks[k].n; i++)
            got[at++] = (pair64){r.blocks[k].build_ids[i], r.blocks[k].probe_ids[i]};
    assert_int_equal(at, r.count);
    qsort(got, (size_t)r.count, sizeof *got, cmp_pair);
    for (int64_t i = 0; i < want; i++)
        if (got[i].b != want_pairs[i].b || got[i].p != want_pairs[i].p)
            fail_msg("%s: pair %lld is (%lld, %lld), expected (%lld, %lld)", what, (long long)i, (long long)got[i].b,
                     (long long)got[i].p, (long long)want_pairs[i].b, (long long)want_pairs[i].p);
    fb_join_result_free(ctx, &r);
    assert_int_equal(fb_ctx_memory_used(ctx), 0);
    free(got);
    free(want_pairs);
    free(bv);
    free(pv);
}

static void test_pipeline_join(void **state)
{
    (void)state;
    static const fb_type types[] = {FB_TYPE_INT32, FB_TYPE_UINT32, FB_TYPE_DATE32};
    for (int v = 0; v < n_variants; v++) {
        fb_isa isa = fb_ctx_isa(variants[v]);
        for (int a = FB_JOIN_ALGO_NON_PARTITIONED; a <= FB_JOIN_ALGO_RADIX; a++) {
            fb_ctx *ctx = join_ctx(isa, (fb_join_algorithm)a);
            for (int round = 0; round < 6; round++) {
                fb_type t = types[round % 3];
                int64_t nb = round == 0 ? 0 : (int64_t)(fbt_next(&rng) % 6000) + 1;
                int64_t np = round == 1 ? 0 : (int64_t)(fbt_next(&rng) % 20000) + 1;
                side b, p;
                make_side(&b, &t, 1, nb, 3000, round >= 2);
                make_side(&p, &t, 1, np, 3000, round >= 2);
                plant_matches(&p, &b);
                int bits = a == FB_JOIN_ALGO_RADIX ? (int)(fbt_next(&rng) % 9) - 1 : -1;
                check_pipeline_join(ctx, &b, &p, bits, round % 2 ? 777 : 0, "random join");
                free_side(&b);
                free_side(&p);
            }
            fb_ctx_destroy(ctx);
        }
    }
}

/* One key 100k times in the build, probed 300 times among 50k other rows: 3e7 matches, counted in
 * time linear in the output (and the pairs of a smaller case). */
static void test_pipeline_heavy_key(void **state)
{
    (void)state;
    fb_type t = FB_TYPE_INT32;
    for (int v = 0; v < n_variants; v++) {
        fb_isa isa = fb_ctx_isa(variants[v]);
        for (int a = FB_JOIN_ALGO_NON_PARTITIONED; a <= FB_JOIN_ALGO_RADIX; a++) {
            fb_ctx *ctx = join_ctx(isa, (fb_join_algorithm)a);
            side b, p;
            make_side(&b, &t, 1, 110000, 1 << 30, 0);
            make_side(&p, &t, 1, 50000, 1 << 30, 0);
            int32_t *bk = (int32_t *)b.data[0] + b.col[0].offset, *pk = (int32_t *)p.data[0] + p.col[0].offset;
            for (int64_t i = 0; i < 100000; i++)
                bk[(i * 7919) % 110000] = 42;
            for (int64_t i = 0; i < 300; i++)
                pk[(i * 131) % 50000] = 42;
            int32_t *bv = random_vals(b.n), *pv = random_vals(p.n);
            fb_join_input in;
            memset(&in, 0, sizeof in);
            in.build_key = b.col[0];
            in.probe_key = p.col[0];
            in.build_val = fb_column_make(FB_TYPE_INT32, bv, b.n, NULL);
            in.probe_val = fb_column_make(FB_TYPE_INT32, pv, p.n, NULL);
            in.radix_bits = a == FB_JOIN_ALGO_RADIX ? 4 : -1;
            __int128 want_sum;
            int64_t want = oracle_join(&b, bv, &p, pv, &want_sum, NULL);
            assert_true(want >= 30000000);
            fb_join_result r;
            double t0 = now_s();
            assert_fb_ok(ctx, fb_run_join(ctx, &in, &r));
            double dt = now_s() - t0;
            assert_int_equal(r.count, want);
            assert_true((__int128)r.sum == want_sum);
            fprintf(stderr, "[ heavy    ] %s %s: %lld matches in %.3f s\n", fb_isa_name(isa),
                    a == FB_JOIN_ALGO_RADIX ? "radix" : "shared", (long long)r.count, dt);
            free(bv);
            free(pv);
            free_side(&p);
            /* pairs of the heavy key against a few probes */
            make_side(&p, &t, 1, 1000, 1 << 30, 0);
            pk = (int32_t *)p.data[0] + p.col[0].offset;
            for (int64_t i = 0; i < 5; i++)
                pk[i * 100] = 42;
            check_pipeline_join(ctx, &b, &p, in.radix_bits, 0, "heavy key pairs");
            free_side(&b);
            free_side(&p);
            fb_ctx_destroy(ctx);
        }
    }
}

/* The pipelines agree with the kernel-level table (fb_hash_table_probe) on the same data. */
static void test_pipeline_vs_kernel(void **state)
{
    (void)state;
    fb_type t = FB_TYPE_INT32;
    for (int v = 0; v < n_variants; v++) {
        fb_ctx *kctx = variants[v];
        side b, p;
        make_side(&b, &t, 1, 8000, 20000, 1); /* 1/8 extremes: a few hundred build rows share each */
        make_side(&p, &t, 1, 20000, 20000, 1);
        plant_matches(&p, &b);
        fb_hash_table *ht = NULL;
        assert_fb_ok(kctx, fb_hash_table_create(kctx, &t, 1, 0, &ht));
        assert_fb_ok(kctx, fb_hash_table_build(kctx, ht, b.col, 1, 0));
        int64_t cap = 1 << 14, *bo = malloc((size_t)cap * 8), *po = malloc((size_t)cap * 8);
        fb_join_cursor cur = FB_JOIN_CURSOR_INIT;
        fb_join_pairs out = {bo, po, cap, 0, 0};
        pair64 *kp = NULL;
        int64_t nk = 0;
        do {
            assert_fb_ok(kctx, fb_hash_table_probe(kctx, ht, p.col, 1, FB_JOIN_INNER, 0, &cur, &out));
            kp = realloc(kp, (size_t)(nk + out.length + 1) * sizeof *kp);
            for (int64_t i = 0; i < out.length; i++)
                kp[nk++] = (pair64){bo[i], po[i]};
        } while (out.more);
        qsort(kp, (size_t)nk, sizeof *kp, cmp_pair);
        for (int a = FB_JOIN_ALGO_NON_PARTITIONED; a <= FB_JOIN_ALGO_RADIX; a++) {
            fb_ctx *ctx = join_ctx(fb_ctx_isa(kctx), (fb_join_algorithm)a);
            fb_join_input in;
            memset(&in, 0, sizeof in);
            in.build_key = b.col[0];
            in.probe_key = p.col[0];
            in.output = FB_JOIN_OUTPUT_PAIRS;
            in.radix_bits = a == FB_JOIN_ALGO_RADIX ? 5 : -1;
            fb_join_result r;
            assert_fb_ok(ctx, fb_run_join(ctx, &in, &r));
            assert_int_equal(r.count, nk);
            pair64 *got = malloc((size_t)(nk + 1) * sizeof *got);
            int64_t at = 0;
            for (int64_t k = 0; k < r.n_blocks; k++)
                for (int64_t i = 0; i < r.blocks[k].n; i++)
                    got[at++] = (pair64){r.blocks[k].build_ids[i], r.blocks[k].probe_ids[i]};
            assert_int_equal(at, nk);
            qsort(got, (size_t)nk, sizeof *got, cmp_pair);
            assert_memory_equal(got, kp, (size_t)nk * sizeof *got);
            free(got);
            fb_join_result_free(ctx, &r);
            fb_ctx_destroy(ctx);
        }
        free(kp);
        free(bo);
        free(po);
        fb_hash_table_destroy(ht);
        free_side(&b);
        free_side(&p);
    }
}

static void test_pipeline_bad_input(void **state)
{
    (void)state;
    fb_ctx *ctx = variants[0];
    int32_t k[4] = {1, 2, 3, 4}, val[4] = {0};
    int64_t k64[4] = {0};
    uint8_t valid[1] = {0xF};
    fb_join_input in;
    memset(&in, 0, sizeof in);
    in.build_key = in.probe_key = fb_column_make(FB_TYPE_INT32, k, 4, NULL);
    in.build_val = in.probe_val = fb_column_make(FB_TYPE_INT32, val, 4, NULL);
    fb_join_result r;
    assert_fb_ok(ctx, fb_run_join(ctx, &in, &r));
    assert_int_equal(r.count, 4);
    assert_fb_status(ctx, fb_run_join(ctx, NULL, &r), FB_ERR_INVALID_ARG);
    assert_fb_status(ctx, fb_run_join(ctx, &in, NULL), FB_ERR_INVALID_ARG);
    in.radix_bits = 15;
    assert_fb_status(ctx, fb_run_join(ctx, &in, &r), FB_ERR_INVALID_ARG);
    in.radix_bits = -1;
    in.build_val.length = 3;
    assert_fb_status(ctx, fb_run_join(ctx, &in, &r), FB_ERR_LENGTH_MISMATCH);
    in.build_val.length = 4;
    in.probe_val.validity = valid;
    assert_fb_status(ctx, fb_run_join(ctx, &in, &r), FB_ERR_UNSUPPORTED_TYPE);
    in.output = FB_JOIN_OUTPUT_PAIRS; /* values are not read */
    assert_fb_ok(ctx, fb_run_join(ctx, &in, &r));
    fb_join_result_free(ctx, &r);
    in.probe_key = fb_column_make(FB_TYPE_INT64, k64, 4, NULL);
    assert_fb_status(ctx, fb_run_join(ctx, &in, &r), FB_ERR_UNSUPPORTED_TYPE);
    in.probe_key = fb_column_make(FB_TYPE_UINT32, k, 4, NULL);
    assert_fb_status(ctx, fb_run_join(ctx, &in, &r), FB_ERR_UNSUPPORTED_TYPE);
    in.output = (fb_join_output)7;
    assert_fb_status(ctx, fb_run_join(ctx, &in, &r), FB_ERR_INVALID_ARG);
    fb_options *o = NULL;
    assert_int_equal(fb_options_create(&o), FB_OK);
    assert_int_equal(fb_options_set_join_algorithm(o, (fb_join_algorithm)3), FB_ERR_INVALID_ARG);
    assert_int_equal(fb_options_set_join_algorithm(NULL, FB_JOIN_ALGO_RADIX), FB_ERR_INVALID_ARG);
    fb_options_destroy(o);
    assert_int_equal(fb_ctx_join_algorithm(NULL), FB_JOIN_ALGO_AUTO);
    /* a memory limit the radix plan cannot live with fails cleanly and frees everything */
    assert_int_equal(fb_options_create(&o), FB_OK);
    assert_int_equal(fb_options_set_join_algorithm(o, FB_JOIN_ALGO_RADIX), FB_OK);
    assert_int_equal(fb_options_set_memory_limit(o, 200000), FB_OK);
    fb_ctx *small = NULL;
    assert_int_equal(fb_ctx_create(o, &small), FB_OK);
    fb_options_destroy(o);
    in.output = FB_JOIN_OUTPUT_COUNT_SUM;
    in.probe_key = in.build_key;
    in.probe_val.validity = NULL;
    in.radix_bits = 12;
    assert_fb_status(small, fb_run_join(small, &in, &r), FB_ERR_OUT_OF_MEMORY);
    assert_int_equal(fb_ctx_memory_used(small), 0);
    fb_ctx_destroy(small);
}

/* ---- the tuple join's partition kernels, every variant, against a scalar reference ------------------ */

/* Reference of jr_probe_sum: for every probe tuple, the build tuples with its key, by sort and search. */
static int cmp_u64_key(const void *a, const void *b)
{
    uint32_t x = (uint32_t)*(const uint64_t *)a, y = (uint32_t)*(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void jr_reference(const uint64_t *build, int64_t nb, const uint64_t *probe, int64_t np, int64_t *count,
                         __int128 *sum)
{
    uint64_t *s = malloc((size_t)(nb ? nb : 1) * 8);
    assert_non_null(s);
    memcpy(s, build, (size_t)nb * 8);
    qsort(s, (size_t)nb, 8, cmp_u64_key);
    *count = 0;
    *sum = 0;
    for (int64_t i = 0; i < np; i++) {
        uint32_t k = (uint32_t)probe[i];
        int64_t lo = 0, hi = nb;
        while (lo < hi) {
            int64_t mid = (lo + hi) / 2;
            if ((uint32_t)s[mid] < k)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (int64_t j = lo; j < nb && (uint32_t)s[j] == k; j++) {
            ++*count;
            *sum += (int64_t)(int32_t)(uint32_t)(s[j] >> 32) + (int64_t)(int32_t)(uint32_t)(probe[i] >> 32);
        }
    }
    free(s);
}

/* A tuple: key from a small pool (duplicates), a random one, or an extreme; payload random or extreme. */
static uint64_t jr_tuple(uint64_t *r, const uint32_t *pool, int npool)
{
    static const uint32_t extreme[] = {0u, 1u, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu};
    uint64_t x = fbt_next(r);
    uint32_t k;
    switch (x % 8) {
    case 0: k = extreme[(x >> 8) % 5]; break;
    case 1: k = (uint32_t)(x >> 32); break;
    default: k = pool[(x >> 8) % (uint64_t)npool];
    }
    uint32_t v = (x >> 40) % 7 == 0 ? extreme[(x >> 20) % 5] : (uint32_t)(fbt_next(r) >> 32);
    return (uint64_t)k | (uint64_t)v << 32;
}

static void test_jr_kernels(void **state)
{
    (void)state;
    /* sizes: empty sides, tiny, a partition's size; "heavy": one key 100k times in the build */
    const int64_t nbs[] = {0, 1, 5, 3000, 20000, 100000}, nps[] = {0, 3, 17, 5000, 40000, 40000};
    for (size_t c = 0; c < sizeof nbs / sizeof *nbs; c++) {
        int64_t nb = nbs[c], np = nps[c];
        int heavy = nb == 100000;
        int npool = nb > 0 ? (int)(nb / 3 + 1) : 4;
        uint32_t *pool = malloc((size_t)npool * 4);
        uint64_t *build = malloc((size_t)(nb + 1) * 8), *probe = malloc((size_t)(np + 1) * 8);
        assert_true(pool && build && probe);
        for (int i = 0; i < npool; i++)
            pool[i] = (uint32_t)(fbt_next(&rng) >> 32) | (i % 5 == 0 ? 0x80000000u : 0);
        for (int64_t i = 0; i < nb; i++)
            build[i] = heavy && i % 10 ? (uint64_t)0xFFFFFFF0u | (uint64_t)(uint32_t)i << 32 : jr_tuple(&rng, pool, npool);
        for (int64_t i = 0; i < np; i++)
            probe[i] = heavy && i % 3 == 0 ? (uint64_t)0xFFFFFFF0u | (uint64_t)(uint32_t)-i << 32 : jr_tuple(&rng, pool, npool);
        int64_t want_n;
        __int128 want_s;
        jr_reference(build, nb, probe, np, &want_n, &want_s);
        for (int bits = 0; bits <= 8; bits += 4) {
            for (int v = 0; v < n_variants; v++) {
                const fb_join_kernels *jk = fb_join_kernels_get(variants[v]);
                int lb = fb_jr_log2_buckets(nb, bits, jk->jr_load);
                uint32_t *off = malloc((((size_t)1 << lb) + 2) * 4);
                uint64_t *tup = malloc((size_t)(nb + FB_JR_TUP_PAD) * 8);
                assert_true(off && tup);
                /* the build in two segments, as from two workers' chunks */
                const uint64_t *seg[2] = {build, build + nb / 3};
                int64_t seg_n[2] = {nb / 3, nb - nb / 3};
                fb_jr_table t;
                if (jk->jr_off16 && nb <= FB_JR_OFF16_MAX)
                    fb_jr_build16(&t, seg, seg_n, 2, bits, lb, (uint16_t *)off, tup);
                else
                    fb_jr_build(&t, seg, seg_n, 2, bits, lb, off, tup);
                /* the probe in pieces of odd lengths (block tails), summed */
                int64_t got_n = 0;
                __int128 got_s = 0;
                for (int64_t i = 0; i < np;) {
                    int64_t m = np - i < 1000 + i % 37 ? np - i : 1000 + i % 37;
                    jk->jr_probe_sum(&t, probe + i, m, &got_n, &got_s);
                    i += m;
                }
                if (got_n != want_n || got_s != want_s)
                    fail_msg("jr_probe_sum %s: build %lld, probe %lld, %d bits: count %lld (want %lld), sum %s",
                             fb_isa_name(jk->isa), (long long)nb, (long long)np, bits, (long long)got_n,
                             (long long)want_n, got_s == want_s ? "equal" : "differs");
                free(off);
                free(tup);
            }
        }
        free(pool);
        free(build);
        free(probe);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_joins),  cmocka_unit_test(test_fixed_semantics),
        cmocka_unit_test(test_heavy_duplicates), cmocka_unit_test(test_zipf), cmocka_unit_test(test_shared_build),
        cmocka_unit_test(test_radix_partition), cmocka_unit_test(test_partitioned_join),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_pipeline_join), cmocka_unit_test(test_pipeline_heavy_key),
        cmocka_unit_test(test_pipeline_vs_kernel), cmocka_unit_test(test_pipeline_bad_input),
        cmocka_unit_test(test_jr_kernels),
    };
    return cmocka_run_group_tests(tests, setup_variants, teardown_variants);
}
