/* fb_test_cl_faults.h - what the OpenCL fault sweeps (test_cl_faults, test_plan_cl) inject: the names of
 * the fault kinds of fb_cl_fault() and the OpenCL code injected at call k of a kind. Include after
 * fb_cl_internal.h. */
#ifndef FB_TEST_CL_FAULTS_H
#define FB_TEST_CL_FAULTS_H

static const char *const kind_names[FB_CL_FAULT_KINDS] = {"buffer", "kernel", "read", "write"};

/* The injected code for call k of a kind: allocation failures (FB_ERR_DEVICE_MEMORY) and other errors
 * (FB_ERR_OPENCL) by turns for buffers, one code each for the others. */
static cl_int code_for(int kind, long k)
{
    switch (kind) {
    case FB_CL_FAULT_BUFFER:
        return k % 2 ? CL_OUT_OF_HOST_MEMORY : CL_MEM_OBJECT_ALLOCATION_FAILURE;
    case FB_CL_FAULT_KERNEL:
        return CL_OUT_OF_RESOURCES;
    case FB_CL_FAULT_READ:
        return CL_OUT_OF_HOST_MEMORY;
    default:
        return CL_INVALID_VALUE;
    }
}

#endif /* FB_TEST_CL_FAULTS_H */
