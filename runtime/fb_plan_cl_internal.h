/* fb_plan_cl_internal.h - what plans on an OpenCL device (runtime/plan.c) use beyond fb_cl.h: a device join
 * table that is built once and probed by many calls (cl/cl_join.c), so that a join's build side goes to the
 * device once per run rather than once per morsel. */
#ifndef FB_PLAN_CL_INTERNAL_H
#define FB_PLAN_CL_INTERNAL_H

#include "fb/fb_join.h"
#include "fb_cl_internal.h"

#include <stddef.h>

/* A device hash table over one build key column (int32, int64, date32, uint32 or uint64), as
 * fb_cl_join_probe() builds it, kept on the context's device until fb_cl_join_table_free(). Its device
 * memory (about 28 bytes a build row) counts against the budget of every probe call. */
typedef struct fb_cl_join_table fb_cl_join_table;

/* Builds the table (first build row 0). \return FB_OK, or as fb_cl_join_probe() (FB_ERR_DEVICE_MEMORY when it
 * does not fit the budget: no partitioning here), everything freed on failure. */
fb_status fb_cl_join_table_create(fb_ctx *ctx, const fb_column *build_key, fb_cl_join_table **out);

/* Inner / left pairs (as fb_cl_join_probe() with first rows 0; FB_ERR_CAPACITY with *n_pairs set when out is
 * too small), or for semi / anti the matching probe rows as pairs' probe ids are not made: use
 * fb_cl_join_table_select(). Calls may come from several threads at once. */
fb_status fb_cl_join_table_probe(fb_cl_join_table *tb, const fb_column *probe_key, fb_join_type type,
                                 fb_join_pairs *out, int64_t *n_pairs);

/* Semi / anti: as fb_cl_join_probe_select(). */
fb_status fb_cl_join_table_select(fb_cl_join_table *tb, const fb_column *probe_key, fb_join_type type,
                                  uint32_t *sel_out, int64_t capacity, int64_t *n_out);

/* Device bytes the table holds. */
size_t fb_cl_join_table_bytes(const fb_cl_join_table *tb);

/* Frees the table (may be NULL). */
void fb_cl_join_table_free(fb_cl_join_table *tb);

/* ---- a chain of operators on device buffers (runtime/plan.c's device morsels) --------------------------- */

/* Most payload columns a table keeps on the device. */
#define FB_CL_TABLE_MAX_PAYLOAD 64

/* Uploads the build side's payload columns (cols[c] row i belongs to build row i) once, kept with the table
 * (their bytes count in fb_cl_join_table_bytes()). Once per table. */
fb_status fb_cl_join_table_payload(fb_cl_join_table *tb, const fb_column *cols, size_t n_cols);

/* Payload columns on the device, and column c of them (NULL past the end). */
int fb_cl_join_table_payload_count(const fb_cl_join_table *tb);
const fb_cl_dev_column *fb_cl_join_table_column(const fb_cl_join_table *tb, int c);

/* Probes the table with n dense rows of device column key inside job j (whose budget must count the
 * table: j->bytes += fb_cl_join_table_bytes()). Inner / left: *build_ids and *probe_ids (int64, *count
 * pairs; a left join's unmatched rows have build id -1), in the order of fb_cl_join_table_probe(); semi /
 * anti: *probe_ids (uint32) the selected rows, *build_ids NULL. Buffers NULL when *count is 0. */
fb_status fb_cl_join_table_probe_dev(fb_cl_job *j, const fb_cl_join_table *tb, const fb_cl_dev_column *key, int64_t n,
                                     fb_join_type type, cl_mem *build_ids, cl_mem *probe_ids, int64_t *count);

/* A build side's composite keys (2..4 integer columns) on the device: its tuples and their hash table, so
 * that probe tuples on the device become the one int64 key fb_cl_keys_join() gives them. */
typedef struct fb_cl_keys_table fb_cl_keys_table;

/* Builds the table of bkeys[0..n_keys) (≥ 1 row) and returns each build row's key in bkey / bvalid (as
 * fb_cl_keys_join(): the first build row with the row's tuple, null when the tuple has a null); a one-key
 * join table over bkey then answers the composite join. */
fb_status fb_cl_keys_table_create(fb_ctx *ctx, const fb_column *bkeys, size_t n_keys, int64_t *bkey, uint8_t *bvalid,
                                  fb_cl_keys_table **out);

/* n dense probe rows of the key columns pkeys[0..n_keys) (device columns of the build keys' types) in job j:
 * *out = their int64 keys (the first build row with the tuple, -1 for none, null with a null), new buffers. */
fb_status fb_cl_keys_lookup_dev(fb_cl_job *j, const fb_cl_keys_table *kt, const fb_cl_dev_column *pkeys, int64_t n,
                                fb_cl_dev_column *out);

size_t fb_cl_keys_table_bytes(const fb_cl_keys_table *kt);
void fb_cl_keys_table_free(fb_cl_keys_table *kt);

/* Tests: what pipeline `pipe` of a run did on the device (explain analyze's figures): its device morsels, those
 * run as one chain, and the bytes moved host -> device and back. FB_ERR_INVALID_ARG for no such pipeline. */
struct fb_plan_result;
fb_status fb_plan_result_device_pipe(const struct fb_plan_result *r, int pipe, long long *dev_morsels,
                                     long long *chained, long long *h2d, long long *d2h);

#endif /* FB_PLAN_CL_INTERNAL_H */
