/* fuzz_join.c - libFuzzer target for the kernel-level hash join (fb_join.h) on every CPU variant.
 *
 * The input decodes into 1..4 key columns (int32, int64, date32, uint32, uint64; offsets, nulls, small
 * pools for duplicates or any value), 1..3 build morsels with caller-chosen (gapped) first row ids, a
 * probe morsel and the probe's chunk capacity. Every join type is checked against a nested loop over
 * the same rows: inner and left pairs in the documented order (probe rows ascending, build rows in
 * insertion order) across resumed chunks, semi/anti selections, the mark join with and without the
 * three-valued validity, the row and distinct counts, and that the context's memory returns to zero.
 * The rest of the input drives fb_radix_partition(): hashes, bits (1..16) and shift, checked against a
 * stable counting sort by the same hash bits. */
#include "fuzz_common.h"

#define MAX_ROWS 96
#define MAX_MORSELS 3

static const fb_type key_types[] = {FB_TYPE_INT32, FB_TYPE_INT64, FB_TYPE_DATE32, FB_TYPE_UINT32, FB_TYPE_UINT64};

typedef struct side {
    fz_col cols[FB_JOIN_MAX_KEYS];
    fb_column views[FB_JOIN_MAX_KEYS];
    int64_t first_row;
    int64_t len;
} side;

static int row_null(const side *s, size_t nk, int64_t i)
{
    for (size_t k = 0; k < nk; k++)
        if (!fz_valid(&s->views[k], i))
            return 1;
    return 0;
}

static int rows_equal(const side *a, int64_t i, const side *b, int64_t j, size_t nk)
{
    for (size_t k = 0; k < nk; k++)
        if (fz_get_i64(a->views[k].type, fz_at(&a->views[k], i)) != fz_get_i64(b->views[k].type, fz_at(&b->views[k], j)))
            return 0;
    return 1;
}

/* fb_radix_partition() against a stable counting sort by the same bits. */
static void radix(fz_in *in, int nctx)
{
    int64_t n = fz_pick(in, 301);
    uint8_t o = fz_u8(in);
    int bits = o == 0xFF ? 16 : 1 + (int)(o % 12);
    int shift = (int)fz_pick(in, (uint32_t)(64 - bits + 1));
    uint64_t *h = malloc(((size_t)n + 1) * sizeof *h);
    for (int64_t i = 0; i < n; i++) {
        uint8_t m = fz_u8(in);
        h[i] = m < 128 ? (uint64_t)m * 0x9E3779B97F4A7C15ull : fz_bytes(in, 8); /* repeats or any bits */
    }
    size_t np = (size_t)1 << bits;
    uint64_t mask = np - 1;
    int64_t *want_off = calloc(np + 1, sizeof *want_off), *off = malloc((np + 1) * sizeof *off);
    uint32_t *want = malloc(((size_t)n + 1) * sizeof *want), *perm = malloc(((size_t)n + 1) * sizeof *perm);
    for (int64_t i = 0; i < n; i++)
        want_off[((h[i] >> shift) & mask) + 1]++;
    for (size_t p = 0; p < np; p++)
        want_off[p + 1] += want_off[p];
    int64_t *pos = malloc((np + 1) * sizeof *pos);
    memcpy(pos, want_off, (np + 1) * sizeof *pos);
    for (int64_t i = 0; i < n; i++)
        want[pos[(h[i] >> shift) & mask]++] = (uint32_t)i;
    for (int v = 0; v < nctx; v++) {
        fb_ctx *ctx = fz_ctx[v];
        size_t mem0 = fb_ctx_memory_used(ctx);
        FZ_OK(ctx, fb_radix_partition(ctx, h, n, bits, shift, off, perm));
        for (size_t p = 0; p <= np; p++)
            FZ_CHECK(off[p] == want_off[p], "radix bits %d shift %d: offset %zu is %lld, expected %lld [isa %s]", bits, shift,
                     p, (long long)off[p], (long long)want_off[p], fb_isa_name(fb_ctx_isa(ctx)));
        for (int64_t i = 0; i < n; i++)
            FZ_CHECK(perm[i] == want[i], "radix bits %d shift %d: perm[%lld] = %u, expected %u [isa %s]", bits, shift,
                     (long long)i, perm[i], want[i], fb_isa_name(fb_ctx_isa(ctx)));
        FZ_NO_CTX_LEAK(ctx, mem0);
    }
    free(h), free(want_off), free(off), free(want), free(perm), free(pos);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    int nctx = fz_open_variants(1);
    size_t nk = 1 + fz_pick(&in, FB_JOIN_MAX_KEYS);
    fb_type types[FB_JOIN_MAX_KEYS];
    for (size_t k = 0; k < nk; k++)
        types[k] = key_types[fz_pick(&in, 5)];
    int n_build = (int)fz_pick(&in, MAX_MORSELS + 1); /* 0..3 build morsels */
    int64_t expected = (int64_t)fz_pick(&in, 4) * 40;
    side build[MAX_MORSELS], probe;
    memset(build, 0, sizeof build);
    memset(&probe, 0, sizeof probe);
    int64_t next_id = fz_u8(&in);
    for (int m = 0; m < n_build; m++) {
        build[m].len = fz_pick(&in, MAX_ROWS + 1);
        build[m].first_row = next_id;
        next_id += build[m].len + fz_pick(&in, 3) * 1000;
        for (size_t k = 0; k < nk; k++) {
            fz_column(&in, types[k], build[m].len, 1, -1, &build[m].cols[k]);
            build[m].views[k] = build[m].cols[k].col;
        }
    }
    probe.len = fz_pick(&in, MAX_ROWS + 1);
    probe.first_row = fz_u8(&in);
    for (size_t k = 0; k < nk; k++) {
        fz_column(&in, types[k], probe.len, 1, -1, &probe.cols[k]);
        probe.views[k] = probe.cols[k].col;
    }
    int64_t capacity = 1 + fz_pick(&in, 64);

    /* The reference: a nested loop, probe rows ascending, build rows in insertion order. */
    int64_t total_build = 0, build_nulls = 0, distinct = 0;
    for (int m = 0; m < n_build; m++) {
        total_build += build[m].len;
        for (int64_t i = 0; i < build[m].len; i++) {
            if (row_null(&build[m], nk, i)) {
                build_nulls++;
                continue;
            }
            int seen = 0;
            for (int m2 = 0; m2 <= m && !seen; m2++)
                for (int64_t i2 = 0; i2 < (m2 == m ? i : build[m2].len) && !seen; i2++)
                    seen = !row_null(&build[m2], nk, i2) && rows_equal(&build[m], i, &build[m2], i2, nk);
            distinct += !seen;
        }
    }
    int64_t max_pairs = probe.len * (total_build + 1) + 1;
    int64_t *ref_b = malloc((size_t)max_pairs * sizeof *ref_b), *ref_p = malloc((size_t)max_pairs * sizeof *ref_p);
    int64_t *ref_l_b = malloc((size_t)max_pairs * sizeof *ref_b), *ref_l_p = malloc((size_t)max_pairs * sizeof *ref_p);
    uint8_t *matched = calloc((size_t)probe.len + 1, 1);
    int64_t n_ref = 0, n_ref_l = 0;
    for (int64_t j = 0; j < probe.len; j++) {
        int pn = row_null(&probe, nk, j);
        for (int m = 0; m < n_build && !pn; m++)
            for (int64_t i = 0; i < build[m].len; i++)
                if (!row_null(&build[m], nk, i) && rows_equal(&build[m], i, &probe, j, nk)) {
                    ref_b[n_ref] = build[m].first_row + i;
                    ref_p[n_ref++] = probe.first_row + j;
                    ref_l_b[n_ref_l] = build[m].first_row + i;
                    ref_l_p[n_ref_l++] = probe.first_row + j;
                    matched[j] = 1;
                }
        if (!matched[j]) {
            ref_l_b[n_ref_l] = -1;
            ref_l_p[n_ref_l++] = probe.first_row + j;
        }
    }

    int64_t *got_b = malloc((size_t)max_pairs * sizeof *got_b), *got_p = malloc((size_t)max_pairs * sizeof *got_p);
    int64_t *buf_b = malloc((size_t)capacity * sizeof *buf_b), *buf_p = malloc((size_t)capacity * sizeof *buf_p);
    uint32_t *sel = malloc(((size_t)probe.len + 1) * sizeof *sel);
    uint8_t *mark = malloc((size_t)probe.len + 1), *mark_valid = malloc(((size_t)probe.len + 7) / 8 + 1);
    for (int v = 0; v < nctx; v++) {
        fb_ctx *ctx = fz_ctx[v];
        size_t mem0 = fb_ctx_memory_used(ctx);
        fb_hash_table *t = NULL;
        FZ_OK(ctx, fb_hash_table_create(ctx, types, nk, expected, &t));
        for (int m = 0; m < n_build; m++)
            FZ_OK(ctx, fb_hash_table_build(ctx, t, build[m].views, nk, build[m].first_row));
        FZ_CHECK(fb_hash_table_rows(t) == total_build, "rows %lld, expected %lld", (long long)fb_hash_table_rows(t),
                 (long long)total_build);
        FZ_CHECK(fb_hash_table_distinct(t) == distinct, "distinct %lld, expected %lld [isa %s]",
                 (long long)fb_hash_table_distinct(t), (long long)distinct, fb_isa_name(fb_ctx_isa(ctx)));

        for (int type = FB_JOIN_INNER; type <= FB_JOIN_LEFT; type++) {
            fb_join_cursor cur = FB_JOIN_CURSOR_INIT;
            int64_t n_got = 0;
            for (int guard = 0;; guard++) {
                FZ_CHECK(guard <= max_pairs + 2, "probe does not finish");
                fb_join_pairs out = {buf_b, buf_p, capacity, -1, -1};
                FZ_OK(ctx, fb_hash_table_probe(ctx, t, probe.views, nk, (fb_join_type)type, probe.first_row, &cur, &out));
                FZ_CHECK(out.length >= 0 && out.length <= capacity, "length %lld", (long long)out.length);
                FZ_CHECK(n_got + out.length < max_pairs, "too many pairs");
                memcpy(got_b + n_got, buf_b, (size_t)out.length * sizeof *buf_b);
                memcpy(got_p + n_got, buf_p, (size_t)out.length * sizeof *buf_p);
                n_got += out.length;
                if (!out.more)
                    break;
            }
            const int64_t *rb = type == FB_JOIN_INNER ? ref_b : ref_l_b, *rp = type == FB_JOIN_INNER ? ref_p : ref_l_p;
            int64_t nr = type == FB_JOIN_INNER ? n_ref : n_ref_l;
            FZ_CHECK(n_got == nr, "%s join: %lld pairs, expected %lld [isa %s]", type ? "left" : "inner",
                     (long long)n_got, (long long)nr, fb_isa_name(fb_ctx_isa(ctx)));
            for (int64_t i = 0; i < nr; i++)
                FZ_CHECK(got_b[i] == rb[i] && got_p[i] == rp[i], "%s join pair %lld: (%lld,%lld), expected (%lld,%lld) [isa %s]",
                         type ? "left" : "inner", (long long)i, (long long)got_b[i], (long long)got_p[i],
                         (long long)rb[i], (long long)rp[i], fb_isa_name(fb_ctx_isa(ctx)));
        }
        for (int type = FB_JOIN_SEMI; type <= FB_JOIN_ANTI; type++) {
            int64_t n_sel = -1;
            FZ_OK(ctx, fb_hash_table_probe_select(ctx, t, probe.views, nk, (fb_join_type)type, sel, probe.len, &n_sel));
            int64_t k = 0;
            for (int64_t j = 0; j < probe.len; j++)
                if (matched[j] == (type == FB_JOIN_SEMI)) {
                    FZ_CHECK(k < n_sel && sel[k] == (uint32_t)j, "%s join: row %lld missing or out of order [isa %s]",
                             type == FB_JOIN_SEMI ? "semi" : "anti", (long long)j, fb_isa_name(fb_ctx_isa(ctx)));
                    k++;
                }
            FZ_CHECK(k == n_sel, "%s join: %lld rows, expected %lld", type == FB_JOIN_SEMI ? "semi" : "anti",
                     (long long)n_sel, (long long)k);
        }
        for (int with_validity = 0; with_validity < 2; with_validity++) {
            fb_column_out out = {FB_TYPE_UINT8, probe.len, mark, with_validity ? mark_valid : NULL, -1, -1};
            FZ_OK(ctx, fb_hash_table_probe_mark(ctx, t, probe.views, nk, &out));
            FZ_CHECK(out.length == probe.len, "mark length");
            for (int64_t j = 0; j < probe.len; j++) {
                int want_null = 0, want = matched[j];
                if (with_validity && !matched[j] && total_build > 0 && (row_null(&probe, nk, j) || build_nulls > 0))
                    want_null = 1;
                int got_valid = with_validity ? (mark_valid[j >> 3] >> (j & 7)) & 1 : 1;
                FZ_CHECK(got_valid == !want_null && (want_null ? mark[j] == 0 : mark[j] == want),
                         "mark row %lld: %d (valid %d), expected %d (null %d) [isa %s]", (long long)j, mark[j], got_valid,
                         want, want_null, fb_isa_name(fb_ctx_isa(ctx)));
            }
        }
        fb_hash_table_destroy(t);
        FZ_NO_CTX_LEAK(ctx, mem0);
    }
    free(ref_b), free(ref_p), free(ref_l_b), free(ref_l_p), free(matched), free(got_b), free(got_p);
    free(buf_b), free(buf_p), free(sel), free(mark), free(mark_valid);
    for (int m = 0; m < n_build; m++)
        for (size_t k = 0; k < nk; k++)
            fz_col_free(&build[m].cols[k]);
    for (size_t k = 0; k < nk; k++)
        fz_col_free(&probe.cols[k]);
    radix(&in, nctx);
    return 0;
}
