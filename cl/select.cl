/* select.cl - selection on the device (twin of fb_select_cmp / _range / _in), deterministic and
 * without atomics, in three passes over tiles of `items` × work-group-size candidates:
 *   1. fb_select_count: each work-group counts the candidates of its tile that pass,
 *   2. fb_select_scan:  one work-group turns the per-tile counts into exclusive offsets (and total),
 *   3. fb_select_write: each work-group re-evaluates its tile, scans the per-work-item counts in
 *      local memory and writes the passing row indices at their offsets,
 * so the output stays in candidate order whatever the launch geometry. Loads in passes 1 and 3 are
 * striped (consecutive work-items read consecutive candidates: coalesced); pass 3 transposes the
 * pass/fail flags through local memory so that each work-item then owns a contiguous run of them.
 *
 * The predicate is a range (or set) test over ordered keys, as on the CPU (fb_pred in
 * kernels/fb_kernel_table.h). Candidates are rows 0..n_cand-1, or sel_in[0..n_cand) when has_sel;
 * a sel_in index ≥ length sets aux[n_groups + 1] (the error flag) and never passes. */

#define FB_PRED_RANGE 0
#define FB_PRED_IN 1

/* Whether an ordered key passes. The IN set is sorted and duplicate-free (the host does that), so
 * a binary search replaces the CPU's linear scan; membership is the same. */
int fb_pred_pass(long key, int kind, int negate, long lo, long hi, __local const long *set, uint n_set)
{
    if (kind == FB_PRED_IN) {
        uint a = 0, b = n_set;
        while (a < b) {
            uint mid = (a + b) >> 1;
            if (set[mid] < key)
                a = mid + 1;
            else
                b = mid;
        }
        return a < n_set && set[a] == key;
    }
    return ((lo <= key) && (key <= hi)) != (negate != 0);
}

/* Whether candidate `pos` (< n_cand) passes. */
int fb_select_eval(__global const uchar *data, int type, __global const uchar *valid, int has_valid, ulong voff,
                   ulong length, __global const uint *sel_in, int has_sel, ulong pos, int kind, int negate, long lo,
                   long hi, __local const long *set, uint n_set, __global uint *err)
{
    ulong row = has_sel ? (ulong)sel_in[pos] : pos;
    if (row >= length) {
        *err = 1u;
        return 0;
    }
    if (!fb_bit(valid, has_valid, voff + row))
        return 0;
    return fb_pred_pass(fb_key(data, type, row), kind, negate, lo, hi, set, n_set);
}

/* Copies the IN set to local memory (every work-item calls it). */
void fb_select_load_set(__global const long *set, uint n_set, __local long *lset)
{
    for (uint i = (uint)get_local_id(0); i < n_set; i += (uint)get_local_size(0))
        lset[i] = set[i];
    barrier(CLK_LOCAL_MEM_FENCE);
}

/* Pass 1: aux[g] = number of passing candidates in tile g. scratch: local size uints; lset: n_set longs. */
__kernel void fb_select_count(__global const uchar *data, int type, __global const uchar *valid, int has_valid,
                              ulong voff, ulong length, __global const uint *sel_in, int has_sel, ulong n_cand,
                              uint items, int kind, int negate, long lo, long hi, __global const long *set,
                              uint n_set, __global uint *aux, ulong n_groups, __local uint *scratch,
                              __local long *lset)
{
    fb_select_load_set(set, n_set, lset);
    ulong lsz = get_local_size(0);
    ulong base = (ulong)get_group_id(0) * lsz * items;
    __global uint *err = aux + n_groups + 1;
    uint c = 0;
    for (uint k = 0; k < items; k++) {
        ulong pos = base + k * lsz + get_local_id(0);
        if (pos < n_cand)
            c += (uint)fb_select_eval(data, type, valid, has_valid, voff, length, sel_in, has_sel, pos, kind, negate,
                                      lo, hi, lset, n_set, err);
    }
    fb_group_scan(scratch, c);
    if (get_local_id(0) == 0)
        aux[get_group_id(0)] = scratch[lsz - 1];
}

/* Pass 2 (one work-group): aux[0..n) := exclusive prefix sums of aux[0..n), aux[n] := the total.
 * Each work-item takes 8 consecutive counts per round; scratch: local size uints. */
__kernel void fb_select_scan(__global uint *aux, ulong n, __local uint *scratch)
{
    uint lid = (uint)get_local_id(0), lsz = (uint)get_local_size(0);
    uint running = 0;
    for (ulong base = 0; base < n; base += (ulong)lsz * 8) {
        ulong first = base + (ulong)lid * 8;
        uint v[8];
        uint sum = 0;
        for (uint r = 0; r < 8; r++) {
            v[r] = first + r < n ? aux[first + r] : 0u;
            sum += v[r];
        }
        uint incl = fb_group_scan(scratch, sum);
        uint total = scratch[lsz - 1];
        uint off = running + incl - sum;
        for (uint r = 0; r < 8; r++) {
            if (first + r < n)
                aux[first + r] = off;
            off += v[r];
        }
        running += total;
        barrier(CLK_LOCAL_MEM_FENCE); /* scratch is reused next round */
    }
    if (lid == 0)
        aux[n] = running;
}

/* Pass 3: writes the passing candidates' row indices of tile g from out[aux[g]], in order.
 * Arguments 0..19 as fb_select_count; flags: items × local size bytes. */
__kernel void fb_select_write(__global const uchar *data, int type, __global const uchar *valid, int has_valid,
                              ulong voff, ulong length, __global const uint *sel_in, int has_sel, ulong n_cand,
                              uint items, int kind, int negate, long lo, long hi, __global const long *set,
                              uint n_set, __global uint *aux, ulong n_groups, __local uint *scratch,
                              __local long *lset, __global uint *out, __local uchar *flags)
{
    fb_select_load_set(set, n_set, lset);
    uint lid = (uint)get_local_id(0), lsz = (uint)get_local_size(0);
    ulong base = (ulong)get_group_id(0) * lsz * items;
    __global uint *err = aux + n_groups + 1;
    for (uint k = 0; k < items; k++) {
        uint p = k * lsz + lid;
        ulong pos = base + p;
        flags[p] = (uchar)(pos < n_cand && fb_select_eval(data, type, valid, has_valid, voff, length, sel_in, has_sel,
                                                          pos, kind, negate, lo, hi, lset, n_set, err));
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    uint c = 0;
    for (uint j = 0; j < items; j++)
        c += flags[lid * items + j];
    uint incl = fb_group_scan(scratch, c);
    uint o = aux[get_group_id(0)] + incl - c;
    for (uint j = 0; j < items; j++) {
        uint p = lid * items + j;
        if (flags[p]) {
            ulong pos = base + p;
            out[o++] = has_sel ? sel_in[pos] : (uint)pos;
        }
    }
}
