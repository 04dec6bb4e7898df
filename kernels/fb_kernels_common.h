/* fb_kernels_common.h - argument checks and predicate normalization shared by the CPU entry points
 * (kernels_api.c) and their OpenCL twins (cl/), so both accept and reject exactly the same input. */
#ifndef FB_KERNELS_COMMON_H
#define FB_KERNELS_COMMON_H

#include "fb_internal.h"
#include "fb_kernel_table.h"

/* Each check reports with `where` (the public function's name) and returns the status. */
fb_status fb_check_hash_args(const fb_ctx *ctx, const fb_column *key, const uint64_t *hashes, int64_t capacity,
                             const char *where);
fb_status fb_check_hash_columns_args(const fb_ctx *ctx, const fb_column *keys, size_t n_keys, const uint64_t *hashes,
                                     int64_t capacity, const char *where);
fb_status fb_check_select_args(const fb_ctx *ctx, const fb_column *col, const uint32_t *sel_in, int64_t n_in,
                               const uint32_t *sel_out, int64_t capacity, const int64_t *n_out, const char *where);
/* Compaction (is_gather 0, idx = uint32 sel) or gather (is_gather 1, idx = int64 ids). Resets out's
 * length and null count, checks its type, capacity and (where needed) validity buffer. */
fb_status fb_check_move_args(const fb_ctx *ctx, const fb_column *col, const void *idx, int64_t n, int is_gather,
                             fb_column_out *out, const char *where);

/* How a column type's values become ordered keys. */
fb_key_kind fb_type_key_kind(fb_type type);

/* Predicates as ranges (or sets) of ordered keys; see fb_kernel_table.h. `keys` has room for
 * FB_SELECT_IN_MAX values and must outlive p. */
fb_status fb_pred_make_cmp(const fb_ctx *ctx, fb_type type, fb_cmp op, const void *value, fb_pred *p,
                           const char *where);
fb_status fb_pred_make_range(const fb_ctx *ctx, fb_type type, const void *lo, const void *hi, fb_pred *p,
                             const char *where);
fb_status fb_pred_make_in(const fb_ctx *ctx, fb_type type, const void *values, int64_t n_values, int64_t *keys,
                          fb_pred *p, const char *where);

/* Output validity of a compaction (sel) or gather (ids, -1 = null); returns the null count. */
int64_t fb_move_validity(const fb_column *col, const uint32_t *sel, const int64_t *ids, int64_t n, uint8_t *out);

#endif /* FB_KERNELS_COMMON_H */
