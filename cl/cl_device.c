/* cl_device.c - OpenCL devices: error names, enumeration through the ICD loader, device info (with
 * the NUMA node from hwloc), opening a context's device lazily and releasing it, and the host<->device
 * transfer measurement. */
#include "fb_cl_internal.h"
#include "fb_topology_internal.h"

#include <CL/cl_ext.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- errors -------------------------------------------------------------------------------------- */

static const struct {
    cl_int code;
    const char *name;
} cl_error_names[] = {
    {0, "CL_SUCCESS"},
    {-1, "CL_DEVICE_NOT_FOUND"},
    {-2, "CL_DEVICE_NOT_AVAILABLE"},
    {-3, "CL_COMPILER_NOT_AVAILABLE"},
    {-4, "CL_MEM_OBJECT_ALLOCATION_FAILURE"},
    {-5, "CL_OUT_OF_RESOURCES"},
    {-6, "CL_OUT_OF_HOST_MEMORY"},
    {-7, "CL_PROFILING_INFO_NOT_AVAILABLE"},
    {-8, "CL_MEM_COPY_OVERLAP"},
    {-9, "CL_IMAGE_FORMAT_MISMATCH"},
    {-10, "CL_IMAGE_FORMAT_NOT_SUPPORTED"},
    {-11, "CL_BUILD_PROGRAM_FAILURE"},
    {-12, "CL_MAP_FAILURE"},
    {-13, "CL_MISALIGNED_SUB_BUFFER_OFFSET"},
    {-14, "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST"},
    {-15, "CL_COMPILE_PROGRAM_FAILURE"},
    {-16, "CL_LINKER_NOT_AVAILABLE"},
    {-17, "CL_LINK_PROGRAM_FAILURE"},
    {-18, "CL_DEVICE_PARTITION_FAILED"},
    {-19, "CL_KERNEL_ARG_INFO_NOT_AVAILABLE"},
    {-30, "CL_INVALID_VALUE"},
    {-31, "CL_INVALID_DEVICE_TYPE"},
    {-32, "CL_INVALID_PLATFORM"},
    {-33, "CL_INVALID_DEVICE"},
    {-34, "CL_INVALID_CONTEXT"},
    {-35, "CL_INVALID_QUEUE_PROPERTIES"},
    {-36, "CL_INVALID_COMMAND_QUEUE"},
    {-37, "CL_INVALID_HOST_PTR"},
    {-38, "CL_INVALID_MEM_OBJECT"},
    {-39, "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR"},
    {-40, "CL_INVALID_IMAGE_SIZE"},
    {-41, "CL_INVALID_SAMPLER"},
    {-42, "CL_INVALID_BINARY"},
    {-43, "CL_INVALID_BUILD_OPTIONS"},
    {-44, "CL_INVALID_PROGRAM"},
    {-45, "CL_INVALID_PROGRAM_EXECUTABLE"},
    {-46, "CL_INVALID_KERNEL_NAME"},
    {-47, "CL_INVALID_KERNEL_DEFINITION"},
    {-48, "CL_INVALID_KERNEL"},
    {-49, "CL_INVALID_ARG_INDEX"},
    {-50, "CL_INVALID_ARG_VALUE"},
    {-51, "CL_INVALID_ARG_SIZE"},
    {-52, "CL_INVALID_KERNEL_ARGS"},
    {-53, "CL_INVALID_WORK_DIMENSION"},
    {-54, "CL_INVALID_WORK_GROUP_SIZE"},
    {-55, "CL_INVALID_WORK_ITEM_SIZE"},
    {-56, "CL_INVALID_GLOBAL_OFFSET"},
    {-57, "CL_INVALID_EVENT_WAIT_LIST"},
    {-58, "CL_INVALID_EVENT"},
    {-59, "CL_INVALID_OPERATION"},
    {-60, "CL_INVALID_GL_OBJECT"},
    {-61, "CL_INVALID_BUFFER_SIZE"},
    {-62, "CL_INVALID_MIP_LEVEL"},
    {-63, "CL_INVALID_GLOBAL_WORK_SIZE"},
    {-64, "CL_INVALID_PROPERTY"},
    {-65, "CL_INVALID_IMAGE_DESCRIPTOR"},
    {-66, "CL_INVALID_COMPILER_OPTIONS"},
    {-67, "CL_INVALID_LINKER_OPTIONS"},
    {-68, "CL_INVALID_DEVICE_PARTITION_COUNT"},
    {-69, "CL_INVALID_PIPE_SIZE"},
    {-70, "CL_INVALID_DEVICE_QUEUE"},
    {-71, "CL_INVALID_SPEC_ID"},
    {-72, "CL_MAX_SIZE_RESTRICTION_EXCEEDED"},
    {-1001, "CL_PLATFORM_NOT_FOUND_KHR"},
};

const char *fb_cl_error_name(cl_int err)
{
    for (size_t i = 0; i < sizeof cl_error_names / sizeof cl_error_names[0]; i++)
        if (cl_error_names[i].code == err)
            return cl_error_names[i].name;
    return "CL_UNKNOWN_ERROR";
}

fb_status fb_cl_fail(const fb_ctx *ctx, const char *where, const char *call, cl_int err)
{
    /* drivers that allocate lazily (NVIDIA) report a full device at the first use of a buffer */
    fb_status st = err == CL_MEM_OBJECT_ALLOCATION_FAILURE ? FB_ERR_DEVICE_MEMORY : FB_ERR_OPENCL;
    return fb_set_error(ctx, st, where, "%s failed: %d (%s)", call, (int)err, fb_cl_error_name(err));
}

cl_mem fb_cl_buffer(const fb_ctx *ctx, const struct fb_cl_state *cl, const char *where, cl_mem_flags flags,
                    size_t bytes, fb_status *st)
{
    if (bytes > cl->max_alloc) {
        *st = fb_set_error(ctx, FB_ERR_DEVICE_MEMORY, where,
                           "a buffer of %zu bytes exceeds the device's largest allocation (%llu bytes)", bytes,
                           (unsigned long long)cl->max_alloc);
        return NULL;
    }
    cl_int err = fb_cl_fault(FB_CL_FAULT_BUFFER);
    cl_mem m = err != CL_SUCCESS ? NULL : clCreateBuffer(cl->context, flags, bytes, NULL, &err);
    if (m && err == CL_SUCCESS) {
        *st = FB_OK;
        return m;
    }
    if (m)
        clReleaseMemObject(m);
    if (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES || err == CL_INVALID_BUFFER_SIZE)
        *st = fb_set_error(ctx, FB_ERR_DEVICE_MEMORY, where, "clCreateBuffer of %zu bytes failed: %d (%s)", bytes,
                           (int)err, fb_cl_error_name(err));
    else
        *st = fb_cl_fail(ctx, where, "clCreateBuffer", err);
    return NULL;
}

/* ---- enumeration ----------------------------------------------------------------------------------- */

fb_status fb_cl_list_devices(fb_ctx *ctx, const char *where, fb_cl_dev **devs, int *n)
{
    *devs = NULL;
    *n = 0;
    cl_uint n_plat = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &n_plat);
    if (err == CL_PLATFORM_NOT_FOUND_KHR || (err == CL_SUCCESS && n_plat == 0))
        return FB_OK;
    if (err != CL_SUCCESS)
        return fb_cl_fail(ctx, where, "clGetPlatformIDs", err);

    cl_platform_id *plats = NULL;
    cl_uint *counts = NULL;
    fb_cl_dev *out = NULL;
    size_t total = 0;
    fb_status st = fb_alloc(ctx, n_plat * sizeof *plats, 0, (void **)&plats, where);
    if (st == FB_OK)
        st = fb_alloc(ctx, n_plat * sizeof *counts, 0, (void **)&counts, where);
    if (st != FB_OK)
        goto done;
    err = clGetPlatformIDs(n_plat, plats, NULL);
    if (err != CL_SUCCESS) {
        st = fb_cl_fail(ctx, where, "clGetPlatformIDs", err);
        goto done;
    }
    for (cl_uint p = 0; p < n_plat; p++) {
        counts[p] = 0;
        err = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &counts[p]);
        if (err == CL_DEVICE_NOT_FOUND) {
            counts[p] = 0; /* a platform without devices is not an error */
        } else if (err != CL_SUCCESS) {
            st = fb_cl_fail(ctx, where, "clGetDeviceIDs", err);
            goto done;
        }
        total += counts[p];
    }
    if (total == 0)
        goto done;
    st = fb_alloc(ctx, total * sizeof *out, 0, (void **)&out, where);
    if (st != FB_OK)
        goto done;
    size_t k = 0;
    for (cl_uint p = 0; p < n_plat && st == FB_OK; p++) {
        if (counts[p] == 0)
            continue;
        cl_device_id *ids = NULL;
        st = fb_alloc(ctx, counts[p] * sizeof *ids, 0, (void **)&ids, where);
        if (st != FB_OK)
            break;
        err = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, counts[p], ids, NULL);
        if (err != CL_SUCCESS) {
            st = fb_cl_fail(ctx, where, "clGetDeviceIDs", err);
        } else {
            for (cl_uint d = 0; d < counts[p]; d++) {
                out[k].platform = plats[p];
                out[k].device = ids[d];
                k++;
            }
        }
        fb_free(ctx, ids, counts[p] * sizeof *ids);
    }
    if (st == FB_OK) {
        *devs = out;
        *n = (int)total;
        out = NULL;
    }
done:
    fb_free(ctx, out, total * sizeof *out);
    fb_free(ctx, counts, n_plat * sizeof *counts);
    fb_free(ctx, plats, n_plat * sizeof *plats);
    return st;
}

fb_status fb_cl_device_count(fb_ctx *ctx, int *count)
{
    FB_RETURN_ERROR_IF(!ctx, NULL, FB_ERR_INVALID_ARG, "ctx must not be NULL");
    FB_RETURN_ERROR_IF(!count, ctx, FB_ERR_INVALID_ARG, "count must not be NULL");
    fb_cl_dev *devs;
    int n;
    FB_FORWARD_IF_ERROR(fb_cl_list_devices(ctx, __func__, &devs, &n));
    fb_free(ctx, devs, (size_t)n * sizeof *devs);
    *count = n;
    return FB_OK;
}

/* ---- device info ---------------------------------------------------------------------------------- */

/* A string property of a device (platform NULL) or platform, truncated to fit buf. */
static fb_status info_string(fb_ctx *ctx, const char *where, cl_device_id device, cl_platform_id platform,
                             cl_uint param, const char *call, char *buf, size_t size)
{
    size_t len = 0;
    cl_int err = platform ? clGetPlatformInfo(platform, param, 0, NULL, &len)
                          : clGetDeviceInfo(device, param, 0, NULL, &len);
    if (err != CL_SUCCESS)
        return fb_cl_fail(ctx, where, call, err);
    char *tmp = NULL;
    FB_FORWARD_IF_ERROR(fb_alloc(ctx, len + 1, 0, (void **)&tmp, where));
    err = platform ? clGetPlatformInfo(platform, param, len, tmp, NULL) : clGetDeviceInfo(device, param, len, tmp, NULL);
    if (err != CL_SUCCESS) {
        fb_free(ctx, tmp, len + 1);
        return fb_cl_fail(ctx, where, call, err);
    }
    tmp[len] = '\0';
    snprintf(buf, size, "%s", tmp);
    fb_free(ctx, tmp, len + 1);
    return FB_OK;
}

static fb_status info_value(fb_ctx *ctx, const char *where, cl_device_id device, cl_device_info param, void *out,
                            size_t size)
{
    cl_int err = clGetDeviceInfo(device, param, size, out, NULL);
    return err == CL_SUCCESS ? FB_OK : fb_cl_fail(ctx, where, "clGetDeviceInfo", err);
}

fb_status fb_cl_device_get_info(fb_ctx *ctx, int index, fb_cl_device_info *info)
{
    FB_RETURN_ERROR_IF(!ctx, NULL, FB_ERR_INVALID_ARG, "ctx must not be NULL");
    FB_RETURN_ERROR_IF(!info, ctx, FB_ERR_INVALID_ARG, "info must not be NULL");
    fb_cl_dev *devs;
    int n;
    FB_FORWARD_IF_ERROR(fb_cl_list_devices(ctx, __func__, &devs, &n));
    if (index < 0 || index >= n) {
        fb_free(ctx, devs, (size_t)n * sizeof *devs);
        return FB_ERROR(ctx, FB_ERR_NO_DEVICE, "no OpenCL device %d (%d found)", index, n);
    }
    fb_cl_dev d = devs[index];
    fb_free(ctx, devs, (size_t)n * sizeof *devs);

    fb_cl_device_info r;
    memset(&r, 0, sizeof r);
    r.index = index;
    cl_device_type type = 0;
    cl_uint cu = 0;
    cl_ulong gmem = 0, amax = 0, lmem = 0;
    size_t wg = 0;
    FB_FORWARD_IF_ERROR(info_string(ctx, __func__, d.device, NULL, CL_DEVICE_NAME, "clGetDeviceInfo", r.name, sizeof r.name));
    FB_FORWARD_IF_ERROR(info_string(ctx, __func__, d.device, NULL, CL_DEVICE_VENDOR, "clGetDeviceInfo", r.vendor,
                                    sizeof r.vendor));
    FB_FORWARD_IF_ERROR(info_string(ctx, __func__, d.device, NULL, CL_DRIVER_VERSION, "clGetDeviceInfo",
                                    r.driver_version, sizeof r.driver_version));
    FB_FORWARD_IF_ERROR(info_string(ctx, __func__, NULL, d.platform, CL_PLATFORM_NAME, "clGetPlatformInfo",
                                    r.platform, sizeof r.platform));
    FB_FORWARD_IF_ERROR(info_string(ctx, __func__, d.device, NULL, CL_DEVICE_VERSION, "clGetDeviceInfo",
                                    r.device_version, sizeof r.device_version));
    FB_FORWARD_IF_ERROR(info_value(ctx, __func__, d.device, CL_DEVICE_TYPE, &type, sizeof type));
    FB_FORWARD_IF_ERROR(info_value(ctx, __func__, d.device, CL_DEVICE_MAX_COMPUTE_UNITS, &cu, sizeof cu));
    FB_FORWARD_IF_ERROR(info_value(ctx, __func__, d.device, CL_DEVICE_GLOBAL_MEM_SIZE, &gmem, sizeof gmem));
    FB_FORWARD_IF_ERROR(info_value(ctx, __func__, d.device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, &amax, sizeof amax));
    FB_FORWARD_IF_ERROR(info_value(ctx, __func__, d.device, CL_DEVICE_LOCAL_MEM_SIZE, &lmem, sizeof lmem));
    FB_FORWARD_IF_ERROR(info_value(ctx, __func__, d.device, CL_DEVICE_MAX_WORK_GROUP_SIZE, &wg, sizeof wg));
    r.is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    r.is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
    r.compute_units = cu;
    r.global_mem_bytes = gmem;
    r.max_alloc_bytes = amax;
    r.local_mem_bytes = lmem;
    r.max_work_group_size = wg;
    r.numa_node = fb_topology_cl_device_numa_node(ctx, d.device); /* -1 when not one node */
    *info = r;
    return FB_OK;
}

/* ---- opening and releasing --------------------------------------------------------------------- */

/* Largest power of two ≤ min(limit, 256), at least 1. */
static size_t pow2_wg(size_t limit)
{
    size_t wg = 1;
    while (wg * 2 <= limit && wg * 2 <= 256)
        wg *= 2;
    return wg;
}

/* Every kernel of the program: its slot in the state, its name, and the work-group size it bounds. */
typedef struct kernel_slot {
    cl_kernel *kernel;
    const char *name;
    size_t *wg;
    int optional; /* absent when the device lacks an extension its file needs (e.g. 64-bit atomics) */
} kernel_slot;

#define N_KERNELS 49

static void kernel_slots(struct fb_cl_state *cl, kernel_slot slots[N_KERNELS])
{
    const kernel_slot table[N_KERNELS] = {
        {&cl->hash_rows, "fb_hash_rows", &cl->wg_hash, 0},
        {&cl->select_count, "fb_select_count", &cl->wg_select, 0},
        {&cl->select_scan, "fb_select_scan", &cl->wg_scan, 0},
        {&cl->select_write, "fb_select_write", &cl->wg_select, 0},
        {&cl->compact[0], "fb_compact_w1", &cl->wg_move, 0},
        {&cl->compact[1], "fb_compact_w2", &cl->wg_move, 0},
        {&cl->compact[2], "fb_compact_w4", &cl->wg_move, 0},
        {&cl->compact[3], "fb_compact_w8", &cl->wg_move, 0},
        {&cl->gather[0], "fb_gather_w1", &cl->wg_move, 0},
        {&cl->gather[1], "fb_gather_w2", &cl->wg_move, 0},
        {&cl->gather[2], "fb_gather_w4", &cl->wg_move, 0},
        {&cl->gather[3], "fb_gather_w8", &cl->wg_move, 0},
        {&cl->compact_validity, "fb_compact_validity", &cl->wg_move, 0},
        {&cl->gather_validity, "fb_gather_validity", &cl->wg_move, 0},
        {&cl->sort_word, "fb_sort_word", &cl->wg_sort, 0},
        {&cl->sort_digit_hist, "fb_sort_digit_hist", &cl->wg_sort, 0},
        {&cl->radix_count, "fb_radix_count", &cl->wg_sort, 0},
        {&cl->radix_scatter, "fb_radix_scatter", &cl->wg_radix, 0},
        {&cl->sort_iota, "fb_sort_iota", &cl->wg_sort, 0},
        {&cl->scan_tiles, "fb_scan_tiles", &cl->wg_scan, 0},
        {&cl->scan_add, "fb_scan_add", &cl->wg_scan, 0},
        {&cl->gb_insert, "fb_gb_insert", &cl->wg_group, 1},
        {&cl->gb_collect, "fb_gb_collect", &cl->wg_group, 1},
        {&cl->gb_dense, "fb_gb_dense", &cl->wg_group, 1},
        {&cl->gb_lookup, "fb_gb_lookup", &cl->wg_group, 1},
        {&cl->gb_update, "fb_gb_update", &cl->wg_group, 1},
        {&cl->gb_fill, "fb_gb_fill", &cl->wg_group, 1},
        {&cl->join_fill, "fb_join_fill", &cl->wg_group, 1},
        {&cl->join_slots, "fb_join_slots", &cl->wg_group, 1},
        {&cl->join_ranges, "fb_join_ranges", &cl->wg_group, 1},
        {&cl->join_count, "fb_join_count", &cl->wg_group, 1},
        {&cl->join_write, "fb_join_write", &cl->wg_group, 1},
        {&cl->join_mark, "fb_join_mark", &cl->wg_group, 1},
        {&cl->ex_sel_mask, "fb_expr_sel_mask", &cl->wg_expr, 0},
        {&cl->ex_pred, "fb_expr_pred", &cl->wg_expr, 0},
        {&cl->ex_cmp_cols, "fb_expr_cmp_cols", &cl->wg_expr, 0},
        {&cl->ex_validity, "fb_expr_validity", &cl->wg_expr, 0},
        {&cl->ex_logic, "fb_expr_logic", &cl->wg_expr, 0},
        {&cl->ex_cols_flags, "fb_expr_cols_flags", &cl->wg_expr, 0},
        {&cl->ex_bool_flags, "fb_expr_bool_flags", &cl->wg_expr, 0},
        {&cl->ex_member_flags, "fb_expr_member_flags", &cl->wg_expr, 0},
        {&cl->ex_scatter, "fb_expr_scatter", &cl->wg_expr, 0},
        {&cl->ex_merge, "fb_expr_merge", &cl->wg_expr, 0},
        {&cl->ex_arith, "fb_expr_arith", &cl->wg_expr, 1},
        {&cl->ex_cast, "fb_expr_cast", &cl->wg_expr, 1},
        {&cl->keys_pack, "fb_keys_pack", &cl->wg_group, 0},
        {&cl->keys_insert, "fb_keys_insert", &cl->wg_group, 0},
        {&cl->keys_first, "fb_keys_first", &cl->wg_group, 0},
        {&cl->keys_lookup, "fb_keys_lookup", &cl->wg_group, 0},
    };
    memcpy(slots, table, sizeof table);
}

static void release_kernels(struct fb_cl_state *cl)
{
    kernel_slot slots[N_KERNELS];
    kernel_slots(cl, slots);
    for (size_t i = 0; i < N_KERNELS; i++) {
        if (*slots[i].kernel)
            clReleaseKernel(*slots[i].kernel);
        *slots[i].kernel = NULL;
    }
}

/* Creates every kernel of the program and picks the work-group sizes. */
static fb_status create_kernels(fb_ctx *ctx, struct fb_cl_state *cl, const char *where)
{
    kernel_slot table[N_KERNELS];
    kernel_slots(cl, table);
    size_t item_sizes[3] = {0, 0, 0};
    cl_int err = clGetDeviceInfo(cl->device, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof item_sizes, item_sizes, NULL);
    if (err != CL_SUCCESS)
        return fb_cl_fail(ctx, where, "clGetDeviceInfo(CL_DEVICE_MAX_WORK_ITEM_SIZES)", err);
    cl->wg_hash = cl->wg_select = cl->wg_scan = cl->wg_move = item_sizes[0] ? item_sizes[0] : 1;
    cl->wg_sort = cl->wg_radix = cl->wg_group = cl->wg_expr = cl->wg_hash;
    for (size_t i = 0; i < N_KERNELS; i++) {
        if (!table[i].name)
            continue;
        *table[i].kernel = clCreateKernel(cl->program, table[i].name, &err);
        if (table[i].optional && (err == CL_INVALID_KERNEL_NAME || !*table[i].kernel)) {
            *table[i].kernel = NULL;
            continue;
        }
        if (err != CL_SUCCESS || !*table[i].kernel) {
            *table[i].kernel = NULL;
            return fb_set_error(ctx, FB_ERR_OPENCL, where, "clCreateKernel(%s) failed: %d (%s)", table[i].name, (int)err,
                                fb_cl_error_name(err));
        }
        size_t limit = 0;
        err = clGetKernelWorkGroupInfo(*table[i].kernel, cl->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof limit, &limit,
                                       NULL);
        if (err != CL_SUCCESS)
            return fb_cl_fail(ctx, where, "clGetKernelWorkGroupInfo", err);
        if (limit < *table[i].wg)
            *table[i].wg = limit;
    }
    cl->wg_hash = pow2_wg(cl->wg_hash);
    cl->wg_select = pow2_wg(cl->wg_select);
    cl->wg_scan = pow2_wg(cl->wg_scan);
    cl->wg_move = pow2_wg(cl->wg_move);
    cl->wg_sort = pow2_wg(cl->wg_sort);
    cl->wg_radix = pow2_wg(cl->wg_radix);
    cl->wg_group = pow2_wg(cl->wg_group);
    cl->wg_expr = pow2_wg(cl->wg_expr);
    return FB_OK;
}

void fb_cl_state_free(fb_ctx *ctx, struct fb_cl_state *cl)
{
    if (!cl)
        return;
    if (cl->queue)
        clFinish(cl->queue);
    if (cl->copy_queue)
        clFinish(cl->copy_queue);
    release_kernels(cl);
    if (cl->dummy)
        clReleaseMemObject(cl->dummy);
    if (cl->program)
        clReleaseProgram(cl->program);
    if (cl->queue)
        clReleaseCommandQueue(cl->queue);
    if (cl->copy_queue)
        clReleaseCommandQueue(cl->copy_queue);
    if (cl->context)
        clReleaseContext(cl->context);
    fb_free(ctx, cl, sizeof *cl);
}

void fb_cl_release(fb_ctx *ctx)
{
    if (!ctx)
        return;
    fb_cl_state_free(ctx, ctx->cl);
    ctx->cl = NULL;
}

static fb_status open_state(fb_ctx *ctx, struct fb_cl_state *cl, const char *where)
{
    cl_int err = CL_SUCCESS;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)cl->platform, 0};
    cl->context = clCreateContext(props, 1, &cl->device, NULL, NULL, &err);
    if (err != CL_SUCCESS || !cl->context) {
        cl->context = NULL;
        return fb_cl_fail(ctx, where, "clCreateContext", err);
    }
    /* profiling on both queues: the streamed operators time their transfers by events */
    cl->queue = clCreateCommandQueue(cl->context, cl->device, CL_QUEUE_PROFILING_ENABLE, &err);
    if (err != CL_SUCCESS || !cl->queue) {
        cl->queue = NULL;
        return fb_cl_fail(ctx, where, "clCreateCommandQueue", err);
    }
    /* a second in-order queue for host-to-device copies that overlap the kernels of the first */
    cl->copy_queue = clCreateCommandQueue(cl->context, cl->device, CL_QUEUE_PROFILING_ENABLE, &err);
    if (err != CL_SUCCESS || !cl->copy_queue) {
        cl->copy_queue = NULL;
        return fb_cl_fail(ctx, where, "clCreateCommandQueue", err);
    }
    FB_FORWARD_IF_ERROR(info_value(ctx, where, cl->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, &cl->max_alloc,
                                   sizeof cl->max_alloc));
    FB_FORWARD_IF_ERROR(info_value(ctx, where, cl->device, CL_DEVICE_GLOBAL_MEM_SIZE, &cl->global_mem,
                                   sizeof cl->global_mem));
    FB_FORWARD_IF_ERROR(info_value(ctx, where, cl->device, CL_DEVICE_MAX_COMPUTE_UNITS, &cl->compute_units,
                                   sizeof cl->compute_units));
    /* Grid-stride kernels get up to 2^20 work-groups, i.e. about one work-item per row for any morsel
     * size in use: PoCL vectorizes across work-items only when a work-item does not loop (measured:
     * hashing 16Mi int32 rows took 250 ms with the grid capped at 32 groups per compute unit, 140-165 ms
     * with this cap), and a GPU wants that many work-items anyway. */
    cl->max_groups = (size_t)1 << 20;

    FB_FORWARD_IF_ERROR(fb_cl_program_get(ctx, cl, where));
    fb_status st = create_kernels(ctx, cl, where);
    if (st != FB_OK && cl->origin == FB_CL_PROGRAM_CACHED) {
        /* a cached binary that builds but lacks kernels is as good as corrupt */
        release_kernels(cl);
        FB_FORWARD_IF_ERROR(fb_cl_program_rebuild(ctx, cl, where));
        st = create_kernels(ctx, cl, where);
    }
    FB_FORWARD_IF_ERROR(st);
    cl->dummy = fb_cl_buffer(ctx, cl, where, CL_MEM_READ_WRITE, 64, &st);
    return st;
}

fb_status fb_cl_acquire(fb_ctx *ctx, const char *where)
{
    if (ctx->cl)
        return FB_OK;
    if (ctx->cl_device == FB_CL_DEVICE_NONE)
        return fb_set_error(ctx, FB_ERR_NO_DEVICE, where,
                            "the context was created with FB_CL_DEVICE_NONE (or FB_CL_DEVICE=none): no OpenCL device");
    fb_cl_dev *devs;
    int n;
    FB_FORWARD_IF_ERROR(fb_cl_list_devices(ctx, where, &devs, &n));
    fb_status st = FB_OK;
    int index = ctx->cl_device;
    if (n == 0) {
        st = fb_set_error(ctx, FB_ERR_NO_DEVICE, where,
                          "no OpenCL device found (no ICD platform, or platforms without devices; see OCL_ICD_VENDORS)");
    } else if (index == FB_CL_DEVICE_DEFAULT) {
        index = 0;
        for (int i = 0; i < n; i++) {
            cl_device_type type = 0;
            if (clGetDeviceInfo(devs[i].device, CL_DEVICE_TYPE, sizeof type, &type, NULL) == CL_SUCCESS &&
                (type & CL_DEVICE_TYPE_GPU)) {
                index = i;
                break;
            }
        }
    } else if (index < 0 || index >= n) {
        st = fb_set_error(ctx, FB_ERR_NO_DEVICE, where, "no OpenCL device %d (%d found)", index, n);
    }
    struct fb_cl_state *cl = NULL;
    if (st == FB_OK)
        st = fb_alloc(ctx, sizeof *cl, 0, (void **)&cl, where);
    if (st == FB_OK) {
        memset(cl, 0, sizeof *cl);
        cl->index = index;
        cl->platform = devs[index].platform;
        cl->device = devs[index].device;
    }
    fb_free(ctx, devs, (size_t)n * sizeof *devs);
    if (st == FB_OK)
        st = open_state(ctx, cl, where);
    if (st != FB_OK) {
        fb_cl_state_free(ctx, cl);
        return st;
    }
    ctx->cl = cl;
    return FB_OK;
}

fb_status fb_cl_open(fb_ctx *ctx, int *index)
{
    FB_RETURN_ERROR_IF(!ctx, NULL, FB_ERR_INVALID_ARG, "ctx must not be NULL");
    pthread_mutex_lock(&ctx->cl_lock);
    fb_status st = fb_cl_acquire(ctx, __func__);
    if (st == FB_OK && index)
        *index = ctx->cl->index;
    pthread_mutex_unlock(&ctx->cl_lock);
    return st;
}

fb_status fb_cl_program_status(fb_ctx *ctx, fb_cl_program_origin *origin, char *path, size_t size)
{
    FB_RETURN_ERROR_IF(!ctx || !origin, ctx, FB_ERR_INVALID_ARG, "ctx and origin must not be NULL");
    pthread_mutex_lock(&ctx->cl_lock);
    fb_status st = fb_cl_acquire(ctx, __func__);
    if (st == FB_OK) {
        *origin = ctx->cl->origin;
        if (path && size)
            snprintf(path, size, "%s", ctx->cl->cache_file);
    }
    pthread_mutex_unlock(&ctx->cl_lock);
    return st;
}

/* ---- transfer bandwidth ------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static fb_status measure(fb_ctx *ctx, struct fb_cl_state *cl, size_t bytes, int repeats, double *h2d, double *d2h,
                         const char *where)
{
    fb_status st = FB_OK;
    cl_int err = CL_SUCCESS;
    void *host = NULL;
    cl_mem dev = NULL;
    cl_mem pinned = fb_cl_buffer(ctx, cl, where, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, bytes, &st);
    if (st == FB_OK)
        dev = fb_cl_buffer(ctx, cl, where, CL_MEM_READ_WRITE, bytes, &st);
    if (st != FB_OK)
        goto done;
    host = clEnqueueMapBuffer(cl->queue, pinned, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, bytes, 0, NULL, NULL, &err);
    if (err != CL_SUCCESS || !host) {
        host = NULL;
        st = fb_cl_fail(ctx, where, "clEnqueueMapBuffer", err);
        goto done;
    }
    memset(host, 0x5A, bytes);
    double best_w = 0, best_r = 0;
    for (int r = 0; r < repeats; r++) {
        double t0 = now_s();
        err = clEnqueueWriteBuffer(cl->queue, dev, CL_TRUE, 0, bytes, host, 0, NULL, NULL);
        double t1 = now_s();
        if (err != CL_SUCCESS) {
            st = fb_cl_fail(ctx, where, "clEnqueueWriteBuffer", err);
            goto done;
        }
        err = clEnqueueReadBuffer(cl->queue, dev, CL_TRUE, 0, bytes, host, 0, NULL, NULL);
        double t2 = now_s();
        if (err != CL_SUCCESS) {
            st = fb_cl_fail(ctx, where, "clEnqueueReadBuffer", err);
            goto done;
        }
        if (r == 0 || t1 - t0 < best_w)
            best_w = t1 - t0;
        if (r == 0 || t2 - t1 < best_r)
            best_r = t2 - t1;
    }
    /* a clock tick is the finest we can tell apart */
    *h2d = (double)bytes / (best_w > 1e-9 ? best_w : 1e-9) / 1e9;
    *d2h = (double)bytes / (best_r > 1e-9 ? best_r : 1e-9) / 1e9;
done:
    if (host)
        clEnqueueUnmapMemObject(cl->queue, pinned, host, 0, NULL, NULL);
    clFinish(cl->queue);
    if (dev)
        clReleaseMemObject(dev);
    if (pinned)
        clReleaseMemObject(pinned);
    return st;
}

fb_status fb_cl_measure_transfer(fb_ctx *ctx, size_t bytes, int repeats, double *h2d_gbps, double *d2h_gbps)
{
    FB_RETURN_ERROR_IF(!ctx, NULL, FB_ERR_INVALID_ARG, "ctx must not be NULL");
    FB_RETURN_ERROR_IF(!h2d_gbps || !d2h_gbps, ctx, FB_ERR_INVALID_ARG, "h2d_gbps and d2h_gbps must not be NULL");
    FB_RETURN_ERROR_IF(bytes == 0, ctx, FB_ERR_INVALID_ARG, "bytes must be > 0");
    FB_RETURN_ERROR_IF(repeats < 1, ctx, FB_ERR_INVALID_ARG, "repeats must be ≥ 1, got %d", repeats);
    pthread_mutex_lock(&ctx->cl_lock);
    fb_status st = fb_cl_acquire(ctx, __func__);
    if (st == FB_OK)
        st = measure(ctx, ctx->cl, bytes, repeats, h2d_gbps, d2h_gbps, __func__);
    pthread_mutex_unlock(&ctx->cl_lock);
    return st;
}
