/* scan.cl - an exclusive prefix sum of any length across work-groups (fb_cl_scan in cl_job.c):
 *   fb_scan_tiles: each work-group scans its tile of 8 x local size counts in place and writes the
 *                  tile's total to partial[g];
 *   fb_select_scan (select.cl) scans the tile totals in one work-group;
 *   fb_scan_add:   adds each tile's offset to its counts.
 * Every element is read twice and written twice, spread over the whole device, where one
 * work-group alone (fb_select_scan) runs on one compute unit. */

__kernel void fb_scan_tiles(__global uint *aux, ulong n, __global uint *partial, __local uint *scratch)
{
    uint lid = (uint)get_local_id(0), lsz = (uint)get_local_size(0);
    ulong first = ((ulong)get_group_id(0) * lsz + lid) * 8;
    uint v[8];
    uint sum = 0;
    for (uint r = 0; r < 8; r++) {
        v[r] = first + r < n ? aux[first + r] : 0u;
        sum += v[r];
    }
    uint incl = fb_group_scan(scratch, sum);
    uint off = incl - sum;
    for (uint r = 0; r < 8; r++) {
        if (first + r < n)
            aux[first + r] = off;
        off += v[r];
    }
    if (lid == lsz - 1)
        partial[get_group_id(0)] = incl;
}

__kernel void fb_scan_add(__global uint *aux, ulong n, ulong tile, __global const uint *partial)
{
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0))
        aux[i] += partial[i / tile];
}
