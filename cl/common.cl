/* common.cl - what every fb OpenCL kernel shares: the fb_type codes, validity bits, the 64-bit
 * widening of values, their ordered keys (as kernels/fb_kernel_table.h defines them for the CPU),
 * the key hash, and a work-group scan in local memory.
 *
 * OpenCL C 1.2 only (the NVIDIA driver offers nothing newer): no subgroups, no C11 atomics, no
 * work-group collective functions. The sources of cl/ are built as one program, in file-name order,
 * so this file comes first and its names are visible in the others. */

/* fb_type values (pinned in include/fb/fb_column.h) */
#define FB_TYPE_INT8 1
#define FB_TYPE_INT16 2
#define FB_TYPE_INT32 3
#define FB_TYPE_INT64 4
#define FB_TYPE_UINT8 5
#define FB_TYPE_UINT16 6
#define FB_TYPE_UINT32 7
#define FB_TYPE_UINT64 8
#define FB_TYPE_FLOAT32 9
#define FB_TYPE_FLOAT64 10
#define FB_TYPE_DATE32 11

/* include/fb/fb_kernels.h */
#define FB_HASH_SEED 0x9E3779B97F4A7C15UL
#define FB_HASH_NULL 0x2545F4914F6CDD1DUL
#define FB_HASH_MUL 0xC2B2AE3D27D4EB4FUL

/* Bit `bit` of an Arrow validity bitmap (LSB first); every row is valid without a bitmap. */
int fb_bit(__global const uchar *valid, int has_valid, ulong bit)
{
    return has_valid ? (valid[bit >> 3] >> (uint)(bit & 7)) & 1 : 1;
}

/* Row `row` of a column widened to 64 bits: signed types (date32 too) sign-extended, unsigned
 * zero-extended, 64-bit values (and float bits) as they are. */
ulong fb_widen(__global const uchar *data, int type, ulong row)
{
    switch (type) {
    case FB_TYPE_INT8: return (ulong)(long)as_char(data[row]);
    case FB_TYPE_UINT8: return (ulong)data[row];
    case FB_TYPE_INT16: return (ulong)(long)((__global const short *)data)[row];
    case FB_TYPE_UINT16: return (ulong)((__global const ushort *)data)[row];
    case FB_TYPE_INT32:
    case FB_TYPE_DATE32: return (ulong)(long)((__global const int *)data)[row];
    case FB_TYPE_UINT32:
    case FB_TYPE_FLOAT32: return (ulong)((__global const uint *)data)[row];
    default: return ((__global const ulong *)data)[row];
    }
}

/* Ordered key of an IEEE float32's bits: every NaN the same and the largest, -0.0 = 0.0, negative
 * values flipped so that signed integer order is float order (fb_key_32 with FB_KEY_FLOAT). */
long fb_key_f32(uint raw)
{
    if ((raw & 0x7FFFFFFFu) > 0x7F800000u)
        raw = 0x7FC00000u;
    if (raw == 0x80000000u)
        raw = 0u;
    if (raw & 0x80000000u)
        raw ^= 0x7FFFFFFFu;
    return (long)as_int(raw);
}

long fb_key_f64(ulong raw)
{
    if ((raw & 0x7FFFFFFFFFFFFFFFUL) > 0x7FF0000000000000UL)
        raw = 0x7FF8000000000000UL;
    if (raw == 0x8000000000000000UL)
        raw = 0UL;
    if (raw & 0x8000000000000000UL)
        raw ^= 0x7FFFFFFFFFFFFFFFUL;
    return as_long(raw);
}

/* Ordered key of row `row`, as the CPU predicates see it (kernels_api.c, fb_type_key_kind):
 * 8/16-bit and signed 32-bit values are their own keys, unsigned 32/64-bit values have the top bit
 * flipped (32-bit keys live in the int32 range), floats go through fb_key_f32/f64. */
long fb_key(__global const uchar *data, int type, ulong row)
{
    switch (type) {
    case FB_TYPE_UINT32: return (long)as_int(((__global const uint *)data)[row] ^ 0x80000000u);
    case FB_TYPE_FLOAT32: return fb_key_f32(((__global const uint *)data)[row]);
    case FB_TYPE_INT64: return ((__global const long *)data)[row];
    case FB_TYPE_UINT64: return as_long(((__global const ulong *)data)[row] ^ 0x8000000000000000UL);
    case FB_TYPE_FLOAT64: return fb_key_f64(((__global const ulong *)data)[row]);
    default: return as_long(fb_widen(data, type, row));
    }
}

/* MurmurHash3's fmix64 of w + FB_HASH_SEED: the hash of a widened key (fb_hash_u64 on the CPU). */
ulong fb_hash_u64(ulong w)
{
    ulong x = w + FB_HASH_SEED;
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDUL;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53UL;
    x ^= x >> 33;
    return x;
}

/* Inclusive scan of v over the work-group (Hillis-Steele in local memory, any work-group size).
 * Every work-item must call it. Returns this work-item's inclusive prefix; scratch[local size - 1]
 * holds the group's total until the caller's next barrier. */
uint fb_group_scan(__local uint *scratch, uint v)
{
    uint lid = (uint)get_local_id(0), lsz = (uint)get_local_size(0);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = 1; s < lsz; s <<= 1) {
        uint t = lid >= s ? scratch[lid - s] : 0u;
        barrier(CLK_LOCAL_MEM_FENCE);
        scratch[lid] += t;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return scratch[lid];
}
