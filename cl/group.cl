/* group.cl - the device half of fb_cl_group_by (the twin of fb_agg.h for one integer key):
 *   1. fb_gb_insert:  every key goes into a global open-addressing table (linear probing, the
 *                     key's 64 widened bits inserted by atom_cmpxchg, hashes as fb_hash_u64), and
 *                     each slot keeps the smallest row index that reached it (atomic_min). Null keys
 *                     and the one key whose bits equal the empty marker have reserved slots cap and
 *                     cap + 1, so no key value is excluded.
 *   2. fb_gb_collect: occupied slots -> (first row, slot) pairs; the host sorts them by first row
 *                     on the device (sort.cl), so groups are numbered in the order of their first
 *                     row, as on the CPU; fb_gb_dense writes slot -> group number and the group keys.
 *   3. fb_gb_lookup:  row -> group number (a read-only probe);
 *      fb_gb_update:  one aggregate over the rows, by 64-bit atomics on per-group words; when the
 *                     groups are few, each work-group first aggregates into local memory (local
 *                     atomics, no contention across work-groups) and adds its partial results to
 *                     global memory once at the end.
 * Needs cl_khr_int64_base_atomics and cl_khr_int64_extended_atomics (64-bit atom_add/cmpxchg/min/
 * max on global and local memory) and cl_khr_fp64; without them the kernels are absent and the host
 * reports the device as unable. Integer results are exact (sums of 64-bit values in two words:
 * unsigned low halves and high halves, combined in 128 bits on the host); float sums are added by
 * compare-and-swap in whatever order the rows arrive. */

#if defined(cl_khr_int64_base_atomics) && defined(cl_khr_int64_extended_atomics) && defined(cl_khr_fp64)
#pragma OPENCL EXTENSION cl_khr_int64_base_atomics : enable
#pragma OPENCL EXTENSION cl_khr_int64_extended_atomics : enable
#pragma OPENCL EXTENSION cl_khr_fp64 : enable

#define FB_GB_EMPTY 0x8000000000000000UL
#define FB_GB_NONE 0xFFFFFFFFu

/* Operations of fb_gb_update (cl_group.c mirrors them) */
#define FB_GB_COUNT_ROWS 0  /* w0 += 1 */
#define FB_GB_COUNT_VALID 1 /* w0 += valid */
#define FB_GB_SUM_INT 2     /* w0 += valid; w1 += widened value (8..32-bit types: exact in 64 bits) */
#define FB_GB_SUM_WIDE 3    /* w0 += valid; w1 += low 32 bits; w2 += high 32 bits (signed for int64) */
#define FB_GB_SUM_FLOAT 4   /* w0 += valid; w1 (a double) += value */
#define FB_GB_MIN 5         /* w0 += valid; w1 = min(w1, ordered key) */
#define FB_GB_MAX 6         /* w0 += valid; w1 = max(w1, ordered key) */

/* Slot of key bits k (not null, not FB_GB_EMPTY); inserts when `insert`, else FB_GB_NONE if absent. */
uint fb_gb_find(volatile __global ulong *tkeys, ulong mask, ulong k, int insert)
{
    ulong i = fb_hash_u64(k) & mask;
    for (;;) {
        ulong cur = tkeys[i];
        if (cur == k)
            return (uint)i;
        if (cur == FB_GB_EMPTY) {
            if (!insert)
                return FB_GB_NONE;
            /* a slot only ever goes from empty to one key, so a stale read is never wrong for long */
            cur = atom_cmpxchg(&tkeys[i], FB_GB_EMPTY, k);
            if (cur == FB_GB_EMPTY || cur == k)
                return (uint)i;
        }
        i = (i + 1) & mask;
    }
}

uint fb_gb_slot(__global const uchar *data, int type, __global const uchar *valid, int has_valid, ulong voff,
                ulong row, volatile __global ulong *tkeys, ulong mask, int insert)
{
    ulong cap = mask + 1;
    if (!fb_bit(valid, has_valid, voff + row))
        return (uint)cap;
    ulong k = fb_widen(data, type, row);
    if (k == FB_GB_EMPTY)
        return (uint)(cap + 1);
    return fb_gb_find(tkeys, mask, k, insert);
}

__kernel void fb_gb_insert(__global const uchar *data, int type, __global const uchar *valid, int has_valid,
                           ulong voff, ulong n, uint base_row, volatile __global ulong *tkeys, ulong mask,
                           volatile __global uint *first)
{
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0)) {
        uint s = fb_gb_slot(data, type, valid, has_valid, voff, i, tkeys, mask, 1);
        atomic_min(&first[s], base_row + (uint)i);
    }
}

/* pairs (first row, slot) of the occupied slots among `slots`, in any order; *count their number */
__kernel void fb_gb_collect(__global const uint *first, ulong slots, volatile __global uint *count,
                            __global uint *firsts, __global uint *slot_ids)
{
    for (ulong s = get_global_id(0); s < slots; s += get_global_size(0)) {
        uint f = first[s];
        if (f != FB_GB_NONE) {
            uint j = atomic_inc(count);
            firsts[j] = f;
            slot_ids[j] = (uint)s;
        }
    }
}

/* slot_ids sorted by first row: dense[slot] = group number, keys[group] = the key's widened bits */
__kernel void fb_gb_dense(__global const uint *slot_ids, ulong groups, __global const ulong *tkeys, ulong cap,
                          __global uint *dense, __global ulong *keys)
{
    for (ulong j = get_global_id(0); j < groups; j += get_global_size(0)) {
        uint s = slot_ids[j];
        dense[s] = (uint)j;
        keys[j] = s < cap ? tkeys[s] : s == cap ? 0UL : FB_GB_EMPTY;
    }
}

__kernel void fb_gb_lookup(__global const uchar *data, int type, __global const uchar *valid, int has_valid,
                           ulong voff, ulong n, volatile __global ulong *tkeys, ulong mask,
                           __global const uint *dense, __global uint *gids)
{
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0))
        gids[i] = dense[fb_gb_slot(data, type, valid, has_valid, voff, i, tkeys, mask, 0)];
}

void fb_gb_add_f64_global(volatile __global ulong *p, double v)
{
    ulong old = *p, seen;
    do {
        seen = old;
        old = atom_cmpxchg(p, seen, as_ulong(as_double(seen) + v));
    } while (old != seen);
}

void fb_gb_add_f64_local(volatile __local ulong *p, double v)
{
    ulong old = *p, seen;
    do {
        seen = old;
        old = atom_cmpxchg(p, seen, as_ulong(as_double(seen) + v));
    } while (old != seen);
}

/* The initial w1 of an operation: min starts at the largest key, max at the smallest. */
ulong fb_gb_init1(int op)
{
    return op == FB_GB_MIN ? 0x7FFFFFFFFFFFFFFFUL : op == FB_GB_MAX ? 0x8000000000000000UL : 0UL;
}

/* Adds row `row` of the value column to group words at index g (global or local through `lw`). */
#define FB_GB_APPLY(W0, W1, W2, ADDF)                                                                            \
    do {                                                                                                         \
        if (op == FB_GB_COUNT_ROWS) {                                                                            \
            atom_inc(&W0[g]);                                                                                    \
            break;                                                                                               \
        }                                                                                                        \
        if (!fb_bit(valid, has_valid, voff + row))                                                               \
            break;                                                                                               \
        atom_inc(&W0[g]);                                                                                        \
        if (op == FB_GB_SUM_INT) {                                                                               \
            atom_add(&W1[g], fb_widen(data, type, row));                                                         \
        } else if (op == FB_GB_SUM_WIDE) {                                                                       \
            ulong v = fb_widen(data, type, row);                                                                 \
            atom_add(&W1[g], v & 0xFFFFFFFFUL);                                                                  \
            atom_add(&W2[g], type == FB_TYPE_INT64 ? (ulong)((long)v >> 32) : v >> 32);                         \
        } else if (op == FB_GB_SUM_FLOAT) {                                                                      \
            ulong v = fb_widen(data, type, row);                                                                 \
            ADDF(&W1[g], type == FB_TYPE_FLOAT32 ? (double)as_float((uint)v) : as_double(v));                   \
        } else if (op == FB_GB_MIN) {                                                                            \
            atom_min((volatile W1##_t *)&W1[g], fb_key(data, type, row));                                        \
        } else if (op == FB_GB_MAX) {                                                                            \
            atom_max((volatile W1##_t *)&W1[g], fb_key(data, type, row));                                        \
        }                                                                                                        \
    } while (0)

/* The words of `groups` groups for one aggregate, at words[agg_base + k * groups + g] (k = 0, 1, 2);
 * gids from fb_gb_lookup. With use_local, l0..l2 hold `groups` ulongs each. */
__kernel void fb_gb_update(__global const uint *gids, ulong n, __global const uchar *data, int type,
                           __global const uchar *valid, int has_valid, ulong voff, int op, ulong groups,
                           volatile __global ulong *words, ulong agg_base, int use_local, volatile __local ulong *l0, volatile __local ulong *l1,
                           volatile __local ulong *l2)
{
    typedef __global long w1_t;
    typedef __local long l1_t;
    volatile __global ulong *w0 = words + agg_base, *w1 = w0 + groups, *w2 = w1 + groups;
    if (!use_local) {
        for (ulong row = get_global_id(0); row < n; row += get_global_size(0)) {
            uint g = gids[row];
            FB_GB_APPLY(w0, w1, w2, fb_gb_add_f64_global);
        }
        return;
    }
    uint lid = (uint)get_local_id(0), lsz = (uint)get_local_size(0);
    ulong init1 = fb_gb_init1(op);
    for (uint g = lid; g < groups; g += lsz) {
        l0[g] = 0UL;
        l1[g] = init1;
        l2[g] = 0UL;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (ulong row = get_global_id(0); row < n; row += get_global_size(0)) {
        uint g = gids[row];
        FB_GB_APPLY(l0, l1, l2, fb_gb_add_f64_local);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint g = lid; g < groups; g += lsz) {
        ulong c = l0[g];
        if (c == 0UL)
            continue;
        atom_add(&w0[g], c);
        if (op == FB_GB_SUM_INT || op == FB_GB_SUM_WIDE)
            atom_add(&w1[g], l1[g]);
        if (op == FB_GB_SUM_WIDE)
            atom_add(&w2[g], l2[g]);
        if (op == FB_GB_SUM_FLOAT)
            fb_gb_add_f64_global(&w1[g], as_double(l1[g]));
        if (op == FB_GB_MIN)
            atom_min((volatile __global long *)&w1[g], (long)l1[g]);
        if (op == FB_GB_MAX)
            atom_max((volatile __global long *)&w1[g], (long)l1[g]);
    }
}

/* w[first + i] = value for i < n (initial words) */
__kernel void fb_gb_fill(__global ulong *w, ulong first, ulong n, ulong value)
{
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0))
        w[first + i] = value;
}

#endif
