/* TEMPORARY placeholder while the simde kernels are written: scalar code under the SIMD table names. */
#define fb_kernel_table_scalar FB_TMP_NAME
#if defined(FB_KERNEL_AVX512)
#define FB_TMP_NAME fb_kernel_table_avx512
#elif defined(FB_KERNEL_AVX2)
#define FB_TMP_NAME fb_kernel_table_avx2
#else
#define FB_TMP_NAME fb_kernel_table_base
#endif
#include "ref_kernels.c"
