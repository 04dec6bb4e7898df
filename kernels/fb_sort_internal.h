/* fb_sort_internal.h - the table of sort kernels one ISA variant provides (key normalization), and
 * how sort.c picks it. The scalar variant lives in sort.c; simd_sort.c is compiled once per target
 * (fb_sort_kernels_base, _avx2, _avx512). Every variant writes bitwise identical output. */
#ifndef FB_SORT_INTERNAL_H
#define FB_SORT_INTERNAL_H

#include <stdint.h>

#include "fb/fb_core.h"
#include "fb/fb_sort.h"
#include "fb_kernel_table.h"

/* ---- the fixed-width record sort (fb_sort_radix.h) ---------------------------------------------------
 * For one key column without nulls of at most 32 bits (any order) or a 64-bit integer key without payload,
 * every row becomes one uint64 record: the ordered key in bits [lo, 64) and, below it (lo = 32), a
 * payload's bits, the row id, or 0. Sorting records by their bits [lo, 64) with a stable method sorts
 * the rows; the key and payload are decoded back from the records. */
typedef struct fb_rs_spec {
    const void *key;  /* key values of row 0 (the column's offset applied) */
    int key_width;    /* 1, 2, 4 or 8 bytes */
    int key_float;    /* float32 key (only with row ids: its bits are not decodable) */
    int lo;           /* 32 (key of up to 4 bytes in the high half) or 0 (8-byte key, nothing else) */
    uint64_t xor_;    /* ordered key = (sign- or zero-extended value ^ xor_) & key_mask: sign flip, descending */
    uint64_t key_mask;/* 0xFFFFFFFF or all ones */
    int key_signed;
    const void *pay;  /* payload values of row 0 (of at most 4 bytes), or NULL */
    int pay_width;
    int rowid;        /* low half = row number (pay NULL) */
} fb_rs_spec;

/* Where a sorted range of records goes: the key and payload columns (decoded), or row ids. */
typedef struct fb_rs_out {
    void *key;        /* key_width bytes per row, or NULL */
    void *pay;        /* pay_width bytes per row, or NULL */
    uint32_t *row_ids;/* or NULL */
} fb_rs_out;

/* Rank sort up to this many records; top-level buckets of about FB_RS_BUCKET records (the
 * records of a bucket and its scratch stay in the core's L2); at most FB_RS_MAX_BITS bits a pass. */
#define FB_RS_SMALL 32
#define FB_RS_NET 64 /* the largest run the sorting networks of simd_sort.c take (rs_small) */
#define FB_RS_BUCKET (1 << 15)
#define FB_RS_MAX_BITS 12
#define FB_RS_CHUNK 2048 /* rows encoded at a time into a worker's buffer */

typedef struct fb_sort_kernels {
    fb_isa isa;
    /* records of rows [begin, end) into out[0 .. end - begin), with the minimum and maximum ordered key */
    void (*rs_encode)(const fb_rs_spec *s, int64_t begin, int64_t end, uint64_t *out, uint64_t *kmin, uint64_t *kmax);
    /* hist[d] += count of records with digit d = (rec >> shift) & mask */
    void (*rs_histogram)(const uint64_t *a, int64_t n, int shift, uint64_t mask, uint32_t *hist);
    /* stable scatter of a[0..n) to dst[off[d]++] by digit d, in calls over consecutive pieces of one
     * range of rows: start[d] (mask + 1 entries) holds off[d] as it was before the first call, wc is
     * (mask + 1) * 8 records of 64-byte aligned scratch kept between the calls, and rs_flush ends the
     * range. */
    void (*rs_scatter)(const uint64_t *a, int64_t n, int shift, uint64_t mask, int64_t *off, uint64_t *dst,
                       uint64_t *wc, const int64_t *start);
    void (*rs_flush)(uint64_t mask, const int64_t *off, uint64_t *dst, const uint64_t *wc, const int64_t *start);
    /* stable sort of a[0..n) by bits [lo, 64); t: n records of scratch. Returns a or t, whichever holds
     * the result. */
    uint64_t *(*rs_sort)(uint64_t *a, uint64_t *t, int64_t n, int lo);
    /* stable sort of x[0..n) by bits [lo, 64) into y (distinct arrays), n <= FB_RS_NET, lo = 0 or 32:
     * the rank sort (scalar) or a sorting network (simd_sort.c); the small MSD buckets' sort */
    void (*rs_small)(const uint64_t *x, uint64_t *y, int64_t n, int lo);
    /* merge of the ascending runs a[0..na) and b[0..nb) (whole 64-bit records, unsigned) into out */
    void (*rs_merge)(const uint64_t *a, int64_t na, const uint64_t *b, int64_t nb, uint64_t *out);
    /* decodes n sorted records to rows [pos, pos + n) of out */
    void (*rs_emit)(const fb_rs_spec *s, const uint64_t *rec, int64_t n, int64_t pos, const fb_rs_out *out);
    /* out[i] = the ordered unsigned bits of v[i] (fb_key_32/fb_key_64 of kind, sign bit flipped, so
     * unsigned order = SQL order) XOR flip, zero-extended to 64 bits. flip is 0 (ascending) or all
     * ones of the lane width (descending). */
    void (*encode_32)(const uint32_t *v, int64_t n, fb_key_kind kind, uint32_t flip, uint64_t *out);
    void (*encode_64)(const uint64_t *v, int64_t n, fb_key_kind kind, uint64_t flip, uint64_t *out);
} fb_sort_kernels;

/* ---- running the phases of a sort ------------------------------------------------------------------------
 * A sort runs as a few phases, each a set of independent tasks (per morsel of rows, per bucket). sort.c
 * runs them one after another on the calling thread; runtime/sort_parallel.c runs each phase's tasks on
 * the runtime's workers. Results do not depend on the runner. */
typedef fb_status (*fb_sort_task_fn)(void *arg, int64_t task, int worker);
typedef struct fb_sort_runner {
    int workers; /* tasks get worker indices 0..workers-1 */
    /* runs task(arg, t, w) for every t in [0, n_tasks), each once; the first failure is returned.
     * task_node: NULL, or per task the NUMA node whose workers should run it (-1: any); a runner
     * prefers a worker of that node and may let another one take it (work stealing). */
    fb_status (*run)(void *self, fb_ctx *ctx, int64_t n_tasks, fb_sort_task_fn task, void *arg,
                     const int *task_node);
    void *self;
    int nodes;          /* NUMA nodes of the context's topology (0 or 1: no placement) */
    const int *node;    /* NULL, or [workers]: worker w's NUMA node, the node its scratch is allocated on */
    int64_t *node_bytes;/* NULL, or [nodes]: the sort adds the bytes of worker scratch it allocates on each
                           node (a diagnostic for tests) */
} fb_sort_runner;

/* The runtime's runner (runtime/sort_parallel.c) for ctx: fb_ctx_threads() workers placed as the
 * scheduler places them (fb_numa_place_workers), so that node[w] is the node worker w runs on. Takes
 * memory; fb_sort_parallel_runner_free() gives it back. */
fb_status fb_sort_parallel_runner(fb_ctx *ctx, fb_sort_runner *out);
void fb_sort_parallel_runner_free(fb_ctx *ctx, fb_sort_runner *r);

/* The public sorts with a runner (sort.c); `where` names the public function for messages. */
fb_status fb_sort_permutation_with(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, uint32_t *row_ids,
                                   int64_t capacity, const fb_sort_runner *run, const char *where);
fb_status fb_sort_top_n_with(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t n, uint32_t *row_ids,
                             int64_t capacity, int64_t *n_out, const fb_sort_runner *run, const char *where);
fb_status fb_sort_table_with(fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, const fb_column *payload,
                             size_t n_payload, fb_column_out *out, const fb_sort_runner *run, const char *where);

extern const fb_sort_kernels fb_sort_kernels_scalar;
extern const fb_sort_kernels fb_sort_kernels_base;
extern const fb_sort_kernels fb_sort_kernels_avx2;
extern const fb_sort_kernels fb_sort_kernels_avx512;

/* Scalar encoders (sort.c), also used by the SIMD variants for tails. */
static inline uint64_t fb_sort_encode_32(uint32_t raw, fb_key_kind kind, uint32_t flip)
{
    return (uint32_t)((uint32_t)fb_key_32(raw, kind) ^ 0x80000000u ^ flip);
}

static inline uint64_t fb_sort_encode_64(uint64_t raw, fb_key_kind kind, uint64_t flip)
{
    return (uint64_t)fb_key_64(raw, kind) ^ 0x8000000000000000ull ^ flip;
}

/* The argument checks every sort entry point shares, on the CPU and on OpenCL (kernels/sort.c): non-NULL
 * ctx and keys, 1..FB_SORT_MAX_KEYS valid key columns of one length, at most FB_MORSEL_MAX_ROWS rows.
 * \param[out] rows the keys' length. \param where the public function's name for the message. */
fb_status fb_sort_check_keys(const fb_ctx *ctx, const fb_sort_key *keys, size_t n_keys, int64_t *rows,
                             const char *where);

#endif /* FB_SORT_INTERNAL_H */
