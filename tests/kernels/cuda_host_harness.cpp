// Every kernel of kernels/cuda, compiled for the host (see cuda_host_harness.h).
// Built by tests/kernels/test_cupy_host_harness.py with:
//   g++ -std=c++17 -O1 -shared -fPIC -I kernels/cuda -I tests/kernels cuda_host_harness.cpp
#include "cuda_host_harness.h"

#include "yuv.cu"
#include "color.cu"
#include "bayer.cu"
#include "composite.cu"
#include "table.cu"

PR_HOST_EXPORT(pr_yuv_to_rgba)
PR_HOST_EXPORT(pr_bayer_to_rgba)
PR_HOST_EXPORT(pr_color_u8)
PR_HOST_EXPORT(pr_color_i8)
PR_HOST_EXPORT(pr_color_u16)
PR_HOST_EXPORT(pr_color_i16)
PR_HOST_EXPORT(pr_color_u32)
PR_HOST_EXPORT(pr_color_i32)
PR_HOST_EXPORT(pr_color_u64)
PR_HOST_EXPORT(pr_color_i64)
PR_HOST_EXPORT(pr_color_f16)
PR_HOST_EXPORT(pr_color_f32)
PR_HOST_EXPORT(pr_color_f64)
PR_HOST_EXPORT(pr_composite_clear)
PR_HOST_EXPORT(pr_composite_layer)
PR_HOST_EXPORT(pr_composite_finish)
PR_HOST_EXPORT(pr_table_u8)
PR_HOST_EXPORT(pr_table_i8)
PR_HOST_EXPORT(pr_table_u16)
PR_HOST_EXPORT(pr_table_i16)
PR_HOST_EXPORT(pr_table_u32)
PR_HOST_EXPORT(pr_table_i32)
PR_HOST_EXPORT(pr_table_u64)
PR_HOST_EXPORT(pr_table_i64)
PR_HOST_EXPORT(pr_table_f16)
PR_HOST_EXPORT(pr_table_f32)
PR_HOST_EXPORT(pr_table_f64)

// Test hook: flush denormals to zero on the calling thread (x86 SSE FTZ and DAZ), as GPUs
// built to flush them do; test_cupy_host_harness.py calls it in a process of its own.
// Returns 0 where this processor has no such switch here.
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
extern "C" int pr_host_flush_denormals(void) {
    _mm_setcsr(_mm_getcsr() | 0x8040);  // FTZ (bit 15) | DAZ (bit 6)
    return 1;
}
#else
extern "C" int pr_host_flush_denormals(void) { return 0; }
#endif
