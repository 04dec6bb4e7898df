/* move.cl - compaction by a selection vector and gather by row ids on the device (twins of
 * fb_compact / fb_gather). One work-item per output row, one kernel per value width, so each load
 * and store is a single aligned access; validity is built one output byte (8 rows) per work-item,
 * so no two work-items write the same byte and no atomics are needed. An index outside the column
 * sets *err (every writer stores the same 1, so the race is benign) and its row is written as 0,
 * never read. */

__kernel void fb_compact_w1(__global const uchar *v, ulong length, __global const uint *sel, ulong n,
                            __global uchar *out, __global uint *err)
{
    for (ulong j = get_global_id(0); j < n; j += get_global_size(0)) {
        ulong s = sel[j];
        if (s < length) {
            out[j] = v[s];
        } else {
            out[j] = 0;
            *err = 1u;
        }
    }
}

__kernel void fb_compact_w2(__global const ushort *v, ulong length, __global const uint *sel, ulong n,
                            __global ushort *out, __global uint *err)
{
    for (ulong j = get_global_id(0); j < n; j += get_global_size(0)) {
        ulong s = sel[j];
        if (s < length) {
            out[j] = v[s];
        } else {
            out[j] = 0;
            *err = 1u;
        }
    }
}

__kernel void fb_compact_w4(__global const uint *v, ulong length, __global const uint *sel, ulong n,
                            __global uint *out, __global uint *err)
{
    for (ulong j = get_global_id(0); j < n; j += get_global_size(0)) {
        ulong s = sel[j];
        if (s < length) {
            out[j] = v[s];
        } else {
            out[j] = 0u;
            *err = 1u;
        }
    }
}

__kernel void fb_compact_w8(__global const ulong *v, ulong length, __global const uint *sel, ulong n,
                            __global ulong *out, __global uint *err)
{
    for (ulong j = get_global_id(0); j < n; j += get_global_size(0)) {
        ulong s = sel[j];
        if (s < length) {
            out[j] = v[s];
        } else {
            out[j] = 0UL;
            *err = 1u;
        }
    }
}

/* Gather: id -1 is a null with value bits 0; any other id outside [0, length) is an error. */
__kernel void fb_gather_w1(__global const uchar *v, ulong length, __global const long *ids, ulong n,
                           __global uchar *out, __global uint *err)
{
    for (ulong j = get_global_id(0); j < n; j += get_global_size(0)) {
        long id = ids[j];
        if (id >= 0 && (ulong)id < length) {
            out[j] = v[id];
        } else {
            out[j] = 0;
            if (id != -1)
                *err = 1u;
        }
    }
}

__kernel void fb_gather_w2(__global const ushort *v, ulong length, __global const long *ids, ulong n,
                           __global ushort *out, __global uint *err)
{
    for (ulong j = get_global_id(0); j < n; j += get_global_size(0)) {
        long id = ids[j];
        if (id >= 0 && (ulong)id < length) {
            out[j] = v[id];
        } else {
            out[j] = 0;
            if (id != -1)
                *err = 1u;
        }
    }
}

__kernel void fb_gather_w4(__global const uint *v, ulong length, __global const long *ids, ulong n,
                           __global uint *out, __global uint *err)
{
    for (ulong j = get_global_id(0); j < n; j += get_global_size(0)) {
        long id = ids[j];
        if (id >= 0 && (ulong)id < length) {
            out[j] = v[id];
        } else {
            out[j] = 0u;
            if (id != -1)
                *err = 1u;
        }
    }
}

__kernel void fb_gather_w8(__global const ulong *v, ulong length, __global const long *ids, ulong n,
                           __global ulong *out, __global uint *err)
{
    for (ulong j = get_global_id(0); j < n; j += get_global_size(0)) {
        long id = ids[j];
        if (id >= 0 && (ulong)id < length) {
            out[j] = v[id];
        } else {
            out[j] = 0UL;
            if (id != -1)
                *err = 1u;
        }
    }
}

/* Output validity of a compaction: byte b holds rows 8b..8b+7 (bits past n are 0). A row is valid
 * when its index is inside the column and the column's bit (voff + index) is set. */
__kernel void fb_compact_validity(__global const uchar *valid, int has_valid, ulong voff, ulong length,
                                  __global const uint *sel, ulong n, __global uchar *out)
{
    ulong n_bytes = (n + 7) >> 3;
    for (ulong b = get_global_id(0); b < n_bytes; b += get_global_size(0)) {
        uint byte = 0;
        for (uint r = 0; r < 8; r++) {
            ulong j = (b << 3) + r;
            if (j < n) {
                ulong s = sel[j];
                uint ok = s < length && fb_bit(valid, has_valid, voff + s);
                byte |= ok << r;
            }
        }
        out[b] = (uchar)byte;
    }
}

/* Output validity of a gather: as fb_compact_validity, and id -1 is null. */
__kernel void fb_gather_validity(__global const uchar *valid, int has_valid, ulong voff, ulong length,
                                 __global const long *ids, ulong n, __global uchar *out)
{
    ulong n_bytes = (n + 7) >> 3;
    for (ulong b = get_global_id(0); b < n_bytes; b += get_global_size(0)) {
        uint byte = 0;
        for (uint r = 0; r < 8; r++) {
            ulong j = (b << 3) + r;
            if (j < n) {
                long id = ids[j];
                uint ok = id >= 0 && (ulong)id < length && fb_bit(valid, has_valid, voff + (ulong)id);
                byte |= ok << r;
            }
        }
        out[b] = (uchar)byte;
    }
}
