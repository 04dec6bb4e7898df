/* dispatch.c - which CPU kernel variants this build has and this CPU runs; probed once per process. */
#include "fb_internal.h"
#include "fb_kernel_table.h"

#include <pthread.h>

/* Fallback order, best first, declared as data (BLIS style). */
static const fb_isa preference[] = {FB_ISA_AVX512, FB_ISA_AVX2, FB_ISA_BASE, FB_ISA_SCALAR};

static const fb_kernel_table *tables[FB_ISA_COUNT];
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

static void probe(void)
{
    tables[FB_ISA_SCALAR] = &fb_kernel_table_scalar;
    tables[FB_ISA_BASE] = &fb_kernel_table_base;
#if defined(FB_HAVE_X86_VARIANTS)
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2") &&
               __builtin_cpu_supports("popcnt");
    if (avx2)
        tables[FB_ISA_AVX2] = &fb_kernel_table_avx2;
    if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512cd"))
        tables[FB_ISA_AVX512] = &fb_kernel_table_avx512;
#endif
}

const fb_kernel_table *fb_kernel_table_get(fb_isa isa)
{
    pthread_once(&probe_once, probe);
    if ((unsigned)isa >= FB_ISA_COUNT)
        return NULL;
    return tables[isa];
}

fb_isa fb_isa_best(void)
{
    pthread_once(&probe_once, probe);
    for (size_t i = 0; i < sizeof preference / sizeof preference[0]; i++)
        if (tables[preference[i]])
            return preference[i];
    return FB_ISA_SCALAR;
}
