/* keys.cl - composite keys (2..4 integer columns) become one int64 key on the device (cl_keys.c):
 * every row's tuple gets the index of the first row with an equal tuple, so the single-key join
 * and group-by kernels (join.cl, group.cl) then work on that one column and give the answers of
 * the composite key, in the same order (a tuple's first row orders groups as the tuple would).
 *   fb_keys_pack:   widened values of one key column into row-major tuples (K values per row) and
 *                   the row's null pattern (bit k: key k is null; a null value is stored as 0);
 *   fb_keys_insert: each tuple into an open-addressing table whose slots hold a representative row
 *                   (32-bit atomic_cmpxchg; equal tuples compare value by value against it), and
 *                   atomic_min of the row into the slot's first row. For a join, rows with a null
 *                   anywhere are left out (FB_KEYS_NONE); for a group-by the null pattern is part of
 *                   the tuple, so nulls group together as on the CPU;
 *   fb_keys_first:  key[i] = first row of row i's slot, validity 0 for a left-out row;
 *   fb_keys_lookup: probe tuples (another column set of the same types) against a built table:
 *                   the first build row of the equal tuple, -1 when there is none, null when the
 *                   probe tuple has a null.
 * Only core 32-bit atomics. */

#define FB_KEYS_EMPTY 0xFFFFFFFFu
#define FB_KEYS_NONE 0xFFFFFFFFu

__kernel void fb_keys_pack(__global const uchar *data, int type, __global const uchar *valid, int has_valid,
                           ulong voff, ulong n, uint n_keys, uint k, __global ulong *tup, __global uchar *nulls)
{
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0)) {
        int ok = fb_bit(valid, has_valid, voff + i);
        tup[i * n_keys + k] = ok ? fb_widen(data, type, i) : 0UL;
        uchar prev = k == 0 ? (uchar)0 : nulls[i];
        nulls[i] = prev | (uchar)((ok ? 0u : 1u) << k);
    }
}

ulong fb_keys_hash(__global const ulong *t, uint n_keys, uchar nulls)
{
    ulong h = fb_hash_u64(t[0]);
    for (uint k = 1; k < n_keys; k++)
        h = h * FB_HASH_MUL ^ fb_hash_u64(t[k]);
    return h ^ (ulong)nulls;
}

int fb_keys_equal(__global const ulong *a, uchar na, __global const ulong *b, uchar nb, uint n_keys)
{
    if (na != nb)
        return 0;
    for (uint k = 0; k < n_keys; k++)
        if (a[k] != b[k])
            return 0;
    return 1;
}

/* Slot of tuple (t, tn) in the table of representatives trow[0..mask] over the build tuples
 * (btup, bnulls); inserts `row` when `insert`, else returns FB_KEYS_NONE when absent. */
uint fb_keys_find(volatile __global uint *trow, ulong mask, __global const ulong *btup, __global const uchar *bnulls,
                  uint n_keys, __global const ulong *t, uchar tn, uint row, int insert)
{
    ulong i = fb_keys_hash(t, n_keys, tn) & mask;
    for (;;) {
        uint cur = trow[i];
        if (cur == FB_KEYS_EMPTY) {
            if (!insert)
                return FB_KEYS_NONE;
            cur = atomic_cmpxchg(&trow[i], FB_KEYS_EMPTY, row);
            if (cur == FB_KEYS_EMPTY)
                return (uint)i;
        }
        if (fb_keys_equal(btup + (ulong)cur * n_keys, bnulls[cur], t, tn, n_keys))
            return (uint)i;
        i = (i + 1) & mask;
    }
}

/* skip_nulls: a join (tuples with a null are left out); else a group-by. first[] starts all EMPTY. */
__kernel void fb_keys_insert(__global const ulong *tup, __global const uchar *nulls, uint n_keys, ulong n,
                             int skip_nulls, volatile __global uint *trow, ulong mask, __global uint *slots,
                             volatile __global uint *first)
{
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0)) {
        uchar tn = nulls[i];
        if (skip_nulls && tn) {
            slots[i] = FB_KEYS_NONE;
            continue;
        }
        uint s = fb_keys_find(trow, mask, tup, nulls, n_keys, tup + i * n_keys, tn, (uint)i, 1);
        slots[i] = s;
        atomic_min(&first[s], (uint)i);
    }
}

/* key[i] = first[slots[i]]; validity (8 rows per work-item) 0 where slots[i] is FB_KEYS_NONE. */
__kernel void fb_keys_first(__global const uint *slots, __global const uint *first, ulong n, __global long *key,
                            __global uchar *valid)
{
    ulong nb = (n + 7) >> 3;
    for (ulong b = get_global_id(0); b < nb; b += get_global_size(0)) {
        uint v = 0;
        for (uint r = 0; r < 8; r++) {
            ulong i = 8 * b + r;
            if (i >= n)
                break;
            uint s = slots[i];
            key[i] = s == FB_KEYS_NONE ? 0L : (long)first[s];
            v |= (s == FB_KEYS_NONE ? 0u : 1u) << r;
        }
        valid[b] = (uchar)v;
    }
}

/* Probe tuples (ptup, pnulls) of n rows against the built table: key = the equal build tuple's first
 * row, or -1; validity 0 for a probe tuple with a null. */
__kernel void fb_keys_lookup(__global const ulong *ptup, __global const uchar *pnulls, uint n_keys, ulong n,
                             volatile __global uint *trow, ulong mask, __global const ulong *btup,
                             __global const uchar *bnulls, __global const uint *first, __global long *key,
                             __global uchar *valid)
{
    ulong nb = (n + 7) >> 3;
    for (ulong b = get_global_id(0); b < nb; b += get_global_size(0)) {
        uint v = 0;
        for (uint r = 0; r < 8; r++) {
            ulong i = 8 * b + r;
            if (i >= n)
                break;
            uchar tn = pnulls[i];
            long k = 0L;
            if (!tn) {
                uint s = fb_keys_find(trow, mask, btup, bnulls, n_keys, ptup + i * n_keys, tn, 0u, 0);
                k = s == FB_KEYS_NONE ? -1L : (long)first[s];
                v |= 1u << r;
            }
            key[i] = k;
        }
        valid[b] = (uchar)v;
    }
}
