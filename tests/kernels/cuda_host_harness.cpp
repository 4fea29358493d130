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
