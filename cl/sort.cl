/* sort.cl - the device half of fb_cl_sort_* (twins of fb_sort.h): a stable LSD radix sort of
 * (32-bit key word, uint32 row id) pairs with 8-bit digits, reduce-then-scan style:
 *   fb_sort_word:       key word i = the ordered bits of column row perm[i] (one 32-bit half of
 *                       a 64-bit value, or the null bit), so a multi-column sort is a series of
 *                       stable passes from the least significant word of the last key to the
 *                       most significant word of the first, the row ids carrying the permutation;
 *   fb_sort_digit_hist: the histograms of all four digits of the words in one read, so the host
 *                       skips every digit on which all rows agree (as the CPU sort does);
 *   fb_radix_count:     per work-group digit counts over its run of tiles (digit-major, so one
 *                       exclusive scan (fb_select_scan) gives every group's start per digit);
 *   fb_radix_scatter:   each work-group walks its tiles in order, sorts a tile by the digit in
 *                       local memory (four stable 2-bit splits, four 16-bit counters packed in a
 *                       ulong, one work-group scan per split) and writes each digit's run at the
 *                       group's running offset for that digit: stable, and writes of one digit
 *                       are contiguous.
 * Tiles are RADIX_WG work-items x RADIX_ITEMS keys; the scatter needs exactly RADIX_WG work-items
 * (one per digit in the per-digit steps). Local memory: 2 x tile x 4 bytes + 2 KiB + 3 KiB. */

#define RADIX_WG 256
#define RADIX_ITEMS 8
#define RADIX_TILE (RADIX_WG * RADIX_ITEMS)

/* Word kinds of fb_sort_word */
#define FB_SORT_WORD_LOW 0  /* the value's ordered bits (32-bit types), or their low half */
#define FB_SORT_WORD_HIGH 1 /* the high half of a 64-bit type's ordered bits */
#define FB_SORT_WORD_NULL 2 /* the null bit: 0 sorts first */

/* Whether a type's ordered key lives in 32 bits (fb_key of common.cl maps these into int range). */
int fb_sort_narrow(int type) { return type != FB_TYPE_INT64 && type != FB_TYPE_UINT64 && type != FB_TYPE_FLOAT64; }

/* words[i] for i < n: see the file comment. perm is used when has_perm (else row = i). flip is all
 * ones for descending keys. Value words of null rows are 0; the null word is nulls_first ? valid : !valid. */
__kernel void fb_sort_word(__global const uchar *data, int type, __global const uchar *valid, int has_valid,
                           ulong voff, __global const uint *perm, int has_perm, ulong n, int kind, uint flip,
                           int nulls_first, __global uint *words)
{
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0)) {
        ulong row = has_perm ? (ulong)perm[i] : i;
        int ok = fb_bit(valid, has_valid, voff + row);
        uint w;
        if (kind == FB_SORT_WORD_NULL) {
            w = (uint)(nulls_first ? ok : !ok);
        } else if (!ok) {
            w = 0u;
        } else {
            long key = fb_key(data, type, row);
            if (fb_sort_narrow(type)) {
                w = ((uint)(int)key ^ 0x80000000u) ^ flip;
            } else {
                ulong o = ((ulong)key ^ 0x8000000000000000UL) ^ (((ulong)flip << 32) | (ulong)flip);
                w = kind == FB_SORT_WORD_HIGH ? (uint)(o >> 32) : (uint)o;
            }
        }
        words[i] = w;
    }
}

/* hist[d * 256 + v] += rows whose digit d (bits 8d..8d+7) is v; hist zeroed by the host. */
__kernel void fb_sort_digit_hist(__global const uint *words, ulong n, __global uint *hist, __local uint *lh)
{
    uint lid = (uint)get_local_id(0), lsz = (uint)get_local_size(0);
    for (uint i = lid; i < 1024u; i += lsz)
        lh[i] = 0u;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0)) {
        uint w = words[i];
        atomic_inc(&lh[w & 255u]);
        atomic_inc(&lh[256u + ((w >> 8) & 255u)]);
        atomic_inc(&lh[512u + ((w >> 16) & 255u)]);
        atomic_inc(&lh[768u + (w >> 24)]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint i = lid; i < 1024u; i += lsz)
        if (lh[i])
            atomic_add(&hist[i], lh[i]);
}

/* Tiles [first, end) of work-group g when n_tiles are dealt out tpg at a time. */
void fb_radix_tiles(ulong n, uint tpg, ulong *first, ulong *end)
{
    ulong n_tiles = (n + RADIX_TILE - 1) / RADIX_TILE;
    ulong f = (ulong)get_group_id(0) * tpg;
    *first = f < n_tiles ? f : n_tiles;
    *end = f + tpg < n_tiles ? f + tpg : n_tiles;
}

/* counts[d * n_groups + g] = keys of group g's tiles whose digit at `shift` is d. */
__kernel void fb_radix_count(__global const uint *keys, ulong n, uint shift, uint tpg, __global uint *counts,
                             __local uint *lh)
{
    uint lid = (uint)get_local_id(0), lsz = (uint)get_local_size(0);
    for (uint d = lid; d < 256u; d += lsz)
        lh[d] = 0u;
    barrier(CLK_LOCAL_MEM_FENCE);
    ulong t0, t1;
    fb_radix_tiles(n, tpg, &t0, &t1);
    ulong end = t1 * RADIX_TILE < n ? t1 * RADIX_TILE : n;
    for (ulong i = t0 * RADIX_TILE + lid; i < end; i += lsz)
        atomic_inc(&lh[(keys[i] >> shift) & 255u]);
    barrier(CLK_LOCAL_MEM_FENCE);
    ulong groups = get_num_groups(0);
    for (uint d = lid; d < 256u; d += lsz)
        counts[(ulong)d * groups + get_group_id(0)] = lh[d];
}

/* Inclusive scan of a ulong over the work-group (Hillis-Steele); scratch[lsz - 1] is the total
 * until the caller's next barrier. */
ulong fb_group_scan_ul(__local ulong *scratch, ulong v)
{
    uint lid = (uint)get_local_id(0), lsz = (uint)get_local_size(0);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = 1; s < lsz; s <<= 1) {
        ulong t = lid >= s ? scratch[lid - s] : 0UL;
        barrier(CLK_LOCAL_MEM_FENCE);
        scratch[lid] += t;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return scratch[lid];
}

/* One stable pass: (keys_in, vals_in) -> (keys_out, vals_out) by the digit at `shift`. offsets:
 * the exclusive scan of fb_radix_count's counts (same n, shift, tpg and number of groups). */
__kernel __attribute__((reqd_work_group_size(RADIX_WG, 1, 1))) void
fb_radix_scatter(__global const uint *keys_in, __global const uint *vals_in, __global uint *keys_out,
                 __global uint *vals_out, ulong n, uint shift, uint tpg, __global const uint *offsets)
{
    __local uint lk[RADIX_TILE];
    __local uint lv[RADIX_TILE];
    __local ulong scan[RADIX_WG];
    __local uint cnt[256];
    __local uint start[256];
    __local uint run[256];
    __local uint uscan[RADIX_WG];

    uint lid = (uint)get_local_id(0);
    ulong groups = get_num_groups(0);
    run[lid] = offsets[(ulong)lid * groups + get_group_id(0)];
    ulong t0, t1;
    fb_radix_tiles(n, tpg, &t0, &t1);
    for (ulong t = t0; t < t1; t++) {
        ulong base = t * RADIX_TILE;
        cnt[lid] = 0u;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint k = 0; k < RADIX_ITEMS; k++) {
            uint p = k * RADIX_WG + lid;
            ulong i = base + p;
            /* padding sorts after every key (digit 255, and after the real 255s by position) */
            uint key = i < n ? keys_in[i] : 0xFFFFFFFFu;
            lk[p] = key;
            lv[p] = i < n ? vals_in[i] : 0u;
            if (i < n)
                atomic_inc(&cnt[(key >> shift) & 255u]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint b = 0; b < 8u; b += 2u) {
            uint kk[RADIX_ITEMS], vv[RADIX_ITEMS];
            ulong packed = 0UL;
            for (uint j = 0; j < RADIX_ITEMS; j++) {
                kk[j] = lk[lid * RADIX_ITEMS + j];
                vv[j] = lv[lid * RADIX_ITEMS + j];
                packed += 1UL << (16u * ((kk[j] >> (shift + b)) & 3u));
            }
            ulong incl = fb_group_scan_ul(scan, packed); /* its first barrier also ends the reads above */
            ulong total = scan[RADIX_WG - 1];
            ulong r = incl - packed;
            uint s0 = 0u, s1 = (uint)(total & 0xFFFFu);
            uint s2 = s1 + (uint)((total >> 16) & 0xFFFFu);
            uint s3 = s2 + (uint)((total >> 32) & 0xFFFFu);
            for (uint j = 0; j < RADIX_ITEMS; j++) {
                uint bk = (kk[j] >> (shift + b)) & 3u;
                uint s = bk == 0u ? s0 : bk == 1u ? s1 : bk == 2u ? s2 : s3;
                uint pos = s + (uint)((r >> (16u * bk)) & 0xFFFFu);
                r += 1UL << (16u * bk);
                lk[pos] = kk[j];
                lv[pos] = vv[j];
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        uint c = cnt[lid];
        uint ci = fb_group_scan(uscan, c);
        start[lid] = ci - c;
        barrier(CLK_LOCAL_MEM_FENCE);
        ulong valid = n - base < RADIX_TILE ? n - base : RADIX_TILE;
        for (uint k = 0; k < RADIX_ITEMS; k++) {
            uint p = k * RADIX_WG + lid;
            if (p < valid) {
                uint key = lk[p];
                uint d = (key >> shift) & 255u;
                uint dst = run[d] + p - start[d];
                keys_out[dst] = key;
                vals_out[dst] = lv[p];
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        run[lid] += c;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* vals[i] = i */
__kernel void fb_sort_iota(__global uint *vals, ulong n)
{
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0))
        vals[i] = (uint)i;
}
