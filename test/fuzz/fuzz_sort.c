/* fuzz_sort.c - libFuzzer target for the CPU sorts (fb_sort.h) on every CPU variant.
 *
 * The input decodes into 1..6 key columns of any type (offsets, nulls, pools of duplicates or any value:
 * NaN of any payload and sign, ±0.0, ±inf, INT_MIN/MAX), each ascending or descending with nulls first
 * or last, 0..2 payload columns, a top-N count, and whether to run the parallel forms too. Checked
 * against qsort of the row numbers with the SQL order and the row number as the last key (stability):
 * fb_sort_permutation() equal to it, fb_sort_top_n() equal to its prefix, fb_sort_table() equal to the
 * columns gathered by it (values bit for bit where valid, validity), and the parallel sorts equal too. */
#include "fuzz_common.h"

#define MAX_ROWS 160
#define MAX_KEYS 6
#define MAX_PAYLOAD 2

static const fb_sort_key *g_keys;
static size_t g_nk;

static int ref_cmp(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    for (size_t k = 0; k < g_nk; k++) {
        const fb_sort_key *key = &g_keys[k];
        int va = fz_valid(&key->column, a), vb = fz_valid(&key->column, b);
        if (!va || !vb) {
            if (va == vb)
                continue;
            int null_first = key->nulls_first ? -1 : 1;
            return !va ? null_first : -null_first;
        }
        int c = fz_cmp_values(key->column.type, fz_at(&key->column, a), fz_at(&key->column, b));
        if (c)
            return key->descending ? -c : c;
    }
    return (a > b) - (a < b);
}

static void check_perm(fb_ctx *ctx, const char *what, const uint32_t *got, const uint32_t *want, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        FZ_CHECK(got[i] == want[i], "%s: position %lld has row %u, expected row %u [isa %s]", what, (long long)i,
                 got[i], want[i], fb_isa_name(fb_ctx_isa(ctx)));
}

/* out (a sorted column) equals col gathered by perm. */
static void check_gathered(fb_ctx *ctx, const fb_column *col, const fb_column_out *out, const uint32_t *perm, int64_t n)
{
    size_t w = fb_type_width(col->type);
    FZ_CHECK(out->length == n, "sorted column length %lld, expected %lld", (long long)out->length, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        int v = fz_valid(col, perm[i]);
        int gv = out->validity ? (out->validity[i >> 3] >> (i & 7)) & 1 : 1;
        FZ_CHECK(gv == v, "sorted %s column row %lld: validity %d, expected %d [isa %s]", fb_type_name(col->type),
                 (long long)i, gv, v, fb_isa_name(fb_ctx_isa(ctx)));
        if (v)
            FZ_CHECK(!memcmp((const uint8_t *)out->data + (size_t)i * w, fz_at(col, perm[i]), w),
                     "sorted %s column row %lld: value differs from row %u [isa %s]", fb_type_name(col->type), (long long)i,
                     perm[i], fb_isa_name(fb_ctx_isa(ctx)));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    int nctx = fz_open_variants(1);
    size_t nk = 1 + fz_pick(&in, MAX_KEYS);
    size_t np = fz_pick(&in, MAX_PAYLOAD + 1);
    int64_t n = fz_pick(&in, MAX_ROWS + 1);
    uint8_t flags = fz_u8(&in);
    int64_t top = fz_pick(&in, (uint32_t)n + 3);
    fz_col cols[MAX_KEYS + MAX_PAYLOAD];
    fb_sort_key keys[MAX_KEYS];
    fb_column payload[MAX_PAYLOAD];
    for (size_t k = 0; k < nk; k++) {
        uint8_t o = fz_u8(&in);
        fb_type t = fz_all_types[o % FZ_N_TYPES];
        fz_column(&in, t, n, 1, -1, &cols[k]);
        keys[k].column = cols[k].col;
        keys[k].descending = (o >> 4) & 1;
        keys[k].nulls_first = (o >> 5) & 1;
    }
    for (size_t j = 0; j < np; j++) {
        fz_column(&in, fz_all_types[fz_pick(&in, FZ_N_TYPES)], n, 1, 0, &cols[nk + j]);
        payload[j] = cols[nk + j].col;
    }

    uint32_t *want = malloc(((size_t)n + 1) * sizeof *want), *got = malloc(((size_t)n + 1) * sizeof *got);
    for (int64_t i = 0; i < n; i++)
        want[i] = (uint32_t)i;
    g_keys = keys;
    g_nk = nk;
    qsort(want, (size_t)n, sizeof *want, ref_cmp);

    fb_column_out outs[MAX_KEYS + MAX_PAYLOAD];
    for (size_t c = 0; c < nk + np; c++) {
        fb_type t = cols[c].col.type;
        outs[c].type = t;
        outs[c].capacity = n;
        outs[c].data = malloc((size_t)n * fb_type_width(t) + 1);
        outs[c].validity = cols[c].col.validity ? malloc(((size_t)n + 7) / 8 + 1) : NULL;
    }
    int64_t want_top = top < n ? top : n;
    for (int v = 0; v < nctx; v++) {
        fb_ctx *ctx = fz_ctx[v];
        size_t mem0 = fb_ctx_memory_used(ctx);
        memset(got, 0xFF, ((size_t)n + 1) * sizeof *got);
        FZ_OK(ctx, fb_sort_permutation(ctx, keys, nk, got, n));
        check_perm(ctx, "fb_sort_permutation", got, want, n);

        int64_t n_out = -1;
        memset(got, 0xFF, ((size_t)n + 1) * sizeof *got);
        FZ_OK(ctx, fb_sort_top_n(ctx, keys, nk, top, got, want_top, &n_out));
        FZ_CHECK(n_out == want_top, "top-%lld gave %lld rows", (long long)top, (long long)n_out);
        check_perm(ctx, "fb_sort_top_n", got, want, want_top);

        for (size_t c = 0; c < nk + np; c++)
            outs[c].length = outs[c].null_count = -1;
        FZ_OK(ctx, fb_sort_table(ctx, keys, nk, np ? payload : NULL, np, outs));
        for (size_t c = 0; c < nk + np; c++)
            check_gathered(ctx, c < nk ? &keys[c].column : &payload[c - nk], &outs[c], want, n);

        if (flags & 1) {
            memset(got, 0xFF, ((size_t)n + 1) * sizeof *got);
            FZ_OK(ctx, fb_sort_permutation_parallel(ctx, keys, nk, got, n));
            check_perm(ctx, "fb_sort_permutation_parallel", got, want, n);
            n_out = -1;
            FZ_OK(ctx, fb_sort_top_n_parallel(ctx, keys, nk, top, got, want_top, &n_out));
            FZ_CHECK(n_out == want_top, "parallel top-%lld gave %lld rows", (long long)top, (long long)n_out);
            check_perm(ctx, "fb_sort_top_n_parallel", got, want, want_top);
            FZ_OK(ctx, fb_sort_table_parallel(ctx, keys, nk, np ? payload : NULL, np, outs));
            for (size_t c = 0; c < nk + np; c++)
                check_gathered(ctx, c < nk ? &keys[c].column : &payload[c - nk], &outs[c], want, n);
        }
        FZ_NO_CTX_LEAK(ctx, mem0);
    }
    for (size_t c = 0; c < nk + np; c++) {
        free(outs[c].data);
        free(outs[c].validity);
        fz_col_free(&cols[c]);
    }
    free(want);
    free(got);
    return 0;
}
