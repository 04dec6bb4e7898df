/* hash.cl - hashing of key columns on the device (twin of fb_hash_column / fb_hash_combine).
 * One work-item per row in a grid-stride loop: the kernel is bound by memory bandwidth, and the
 * type switch is uniform over the launch, so it costs no divergence. */

/* hashes[i] = hash(row i), or with combine hashes[i] * FB_HASH_MUL ^ hash(row i); nulls hash to
 * FB_HASH_NULL. Row i's validity is bit voff + i of valid. */
__kernel void fb_hash_rows(__global const uchar *data, int type, __global const uchar *valid, int has_valid,
                           ulong voff, ulong n, __global ulong *hashes, int combine)
{
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0)) {
        ulong x = fb_bit(valid, has_valid, voff + i) ? fb_hash_u64(fb_widen(data, type, i)) : FB_HASH_NULL;
        hashes[i] = combine ? (hashes[i] * FB_HASH_MUL) ^ x : x;
    }
}
