/* join.cl - the device half of fb_cl_join_* (twins of the fb_join.h probes for one key column):
 *   build: fb_join_slots puts each build key's widened bits into a global open-addressing table
 *          (atom_cmpxchg, as group.cl) and writes the row's slot (FB_JOIN_NONE for a null key);
 *          the host sorts (slot, build row) pairs stably (sort.cl), so each key's build rows lie
 *          together in insertion order, and fb_join_ranges records each slot's [start, end);
 *   probe: fb_join_count gives each probe row its number of output entries (matches; for left
 *          joins at least 1; 0/1 for semi and anti), one exclusive scan (fb_select_scan) turns them
 *          into offsets, and fb_join_write writes every entry at its offset, so the output comes in
 *          the CPU's order: probe rows ascending, then build rows in insertion order;
 *          fb_join_mark writes the mark join's booleans one byte (8 rows) per work-item.
 * The key whose bits equal the empty marker has the reserved slot cap. Needs 64-bit atomics. */

#if defined(cl_khr_int64_base_atomics)
#pragma OPENCL EXTENSION cl_khr_int64_base_atomics : enable

#define FB_JOIN_EMPTY 0x8000000000000000UL
#define FB_JOIN_NONE 0xFFFFFFFFu

#define FB_JOIN_INNER 0
#define FB_JOIN_LEFT 1
#define FB_JOIN_SEMI 2
#define FB_JOIN_ANTI 3

/* Slot of key bits k, inserted when `insert`; FB_JOIN_NONE when absent and not inserting. */
uint fb_join_find(volatile __global ulong *tkeys, ulong mask, ulong k, int insert)
{
    if (k == FB_JOIN_EMPTY)
        return (uint)(mask + 1);
    ulong i = fb_hash_u64(k) & mask;
    for (;;) {
        ulong cur = tkeys[i];
        if (cur == k)
            return (uint)i;
        if (cur == FB_JOIN_EMPTY) {
            if (!insert)
                return FB_JOIN_NONE;
            cur = atom_cmpxchg(&tkeys[i], FB_JOIN_EMPTY, k);
            if (cur == FB_JOIN_EMPTY || cur == k)
                return (uint)i;
        }
        i = (i + 1) & mask;
    }
}

__kernel void fb_join_slots(__global const uchar *data, int type, __global const uchar *valid, int has_valid,
                            ulong voff, ulong n, volatile __global ulong *tkeys, ulong mask, __global uint *slots,
                            __global uint *rows)
{
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0)) {
        slots[i] = fb_bit(valid, has_valid, voff + i) ? fb_join_find(tkeys, mask, fb_widen(data, type, i), 1)
                                                      : FB_JOIN_NONE;
        rows[i] = (uint)i;
    }
}

/* sorted: the slots in ascending order; start/end[slot] = the run of that slot (untouched otherwise) */
__kernel void fb_join_ranges(__global const uint *sorted, ulong n, __global uint *start, __global uint *end)
{
    for (ulong j = get_global_id(0); j < n; j += get_global_size(0)) {
        uint s = sorted[j];
        if (s == FB_JOIN_NONE)
            continue;
        if (j == 0 || sorted[j - 1] != s)
            start[s] = (uint)j;
        if (j + 1 == n || sorted[j + 1] != s)
            end[s] = (uint)(j + 1);
    }
}

/* The build run [*b, *e) of probe row i (empty when its key is null or absent). */
void fb_join_run(__global const uchar *data, int type, __global const uchar *valid, int has_valid, ulong voff,
                 ulong i, volatile __global ulong *tkeys, ulong mask, __global const uint *start,
                 __global const uint *end, uint *b, uint *e)
{
    *b = *e = 0u;
    if (!fb_bit(valid, has_valid, voff + i))
        return;
    uint s = fb_join_find(tkeys, mask, fb_widen(data, type, i), 0);
    if (s == FB_JOIN_NONE)
        return;
    *b = start[s];
    *e = end[s];
}

/* counts[i] = output entries of probe row i; *total (64-bit) += their sum */
__kernel void fb_join_count(__global const uchar *data, int type, __global const uchar *valid, int has_valid,
                            ulong voff, ulong n, volatile __global ulong *tkeys, ulong mask,
                            __global const uint *start, __global const uint *end, int jtype, __global uint *counts,
                            volatile __global ulong *total, volatile __local ulong *sum)
{
    if (get_local_id(0) == 0)
        *sum = 0UL;
    barrier(CLK_LOCAL_MEM_FENCE);
    ulong mine = 0;
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0)) {
        uint b, e;
        fb_join_run(data, type, valid, has_valid, voff, i, tkeys, mask, start, end, &b, &e);
        uint c = e - b;
        if (jtype == FB_JOIN_LEFT && c == 0u)
            c = 1u;
        else if (jtype == FB_JOIN_SEMI)
            c = c != 0u;
        else if (jtype == FB_JOIN_ANTI)
            c = c == 0u;
        counts[i] = c;
        mine += c;
    }
    if (mine)
        atom_add(sum, mine);
    barrier(CLK_LOCAL_MEM_FENCE);
    if (get_local_id(0) == 0 && *sum)
        atom_add(total, *sum);
}

/* Writes probe row i's entries from offsets[i]: (build_first + build row, probe_first + i) pairs
 * (-1 for an unmatched left row), or probe_first + i into sel for semi/anti joins. */
__kernel void fb_join_write(__global const uchar *data, int type, __global const uchar *valid, int has_valid,
                            ulong voff, ulong n, volatile __global ulong *tkeys, ulong mask,
                            __global const uint *start, __global const uint *end, int jtype,
                            __global const uint *offsets, __global const uint *rows, long build_first,
                            long probe_first, __global long *out_b, __global long *out_p, __global uint *sel)
{
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0)) {
        uint b, e;
        fb_join_run(data, type, valid, has_valid, voff, i, tkeys, mask, start, end, &b, &e);
        uint o = offsets[i];
        if (jtype == FB_JOIN_SEMI || jtype == FB_JOIN_ANTI) {
            if ((e != b) == (jtype == FB_JOIN_SEMI))
                sel[o] = (uint)(probe_first + (long)i);
            continue;
        }
        if (b == e && jtype == FB_JOIN_LEFT) {
            out_b[o] = -1L;
            out_p[o] = probe_first + (long)i;
        }
        for (uint k = b; k < e; k++, o++) {
            out_b[o] = build_first + (long)rows[k];
            out_p[o] = probe_first + (long)i;
        }
    }
}

/* Mark join, 8 probe rows per work-item: marks[i] = matched; with three_valued, a row that is not
 * matched is null (validity bit 0) when null_result says so for it (see fb_hash_table_probe_mark):
 * null_if_null_key: a null probe key gives null; null_if_unmatched: every unmatched row is null. */
__kernel void fb_join_mark(__global const uchar *data, int type, __global const uchar *valid, int has_valid,
                           ulong voff, ulong n, volatile __global ulong *tkeys, ulong mask,
                           __global const uint *start, __global const uint *end, int three_valued,
                           int null_if_null_key, int null_if_unmatched, __global uchar *marks,
                           __global uchar *out_valid)
{
    ulong bytes = (n + 7) / 8;
    for (ulong by = get_global_id(0); by < bytes; by += get_global_size(0)) {
        uchar vbits = 0;
        for (uint k = 0; k < 8u; k++) {
            ulong i = by * 8 + k;
            if (i >= n)
                break;
            uint b, e;
            fb_join_run(data, type, valid, has_valid, voff, i, tkeys, mask, start, end, &b, &e);
            int matched = e != b;
            marks[i] = (uchar)matched;
            int is_null = !matched && three_valued &&
                          (null_if_unmatched || (null_if_null_key && !fb_bit(valid, has_valid, voff + i)));
            if (!is_null)
                vbits |= (uchar)(1u << k);
        }
        if (three_valued)
            out_valid[by] = vbits;
    }
}

/* w[i] = value for i < n */
__kernel void fb_join_fill(__global ulong *w, ulong n, ulong value)
{
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0))
        w[i] = value;
}

#endif
