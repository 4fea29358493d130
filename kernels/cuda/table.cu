// One-channel images through a table (contract §8): depth, colormapped images and
// segmentation. kernels/table_plan.py picks the mode and builds the table (packed RGBA8
// words, R in the low byte) from the reference's own mapping; the same modes as
// kernels/wgpu/shaders/table.wgsl:
//   mode 0 (palette): <=16-bit ints, the table holds every value of the type: table[v - first]
//   mode 1 (float):   t = (v - lo) * inv_span in float (NaN -> 0, +-Inf clamp) -> colormap table
//   mode 2 (ids):     wider ints / floats, segmentation: table[id] for 0 <= id < n, else 0
// Per frame f: the table starts at table + f * table_stride (palettes depend on the frame's
// own range; shared tables have stride 0), lo[f] and inv_span[f] (inv_span 0: no range).
//
// Launch: grid (gx, frames, 1), block (COLOR_BLOCK, 1, 1) (convert.py), a grid-stride
// loop over the frame's pixels, as color.cu.
#include "pixelrun_common.cuh"

template <typename T>
__device__ __forceinline__ pr_u32 pr_table_pixel(T v, int mode, const pr_u32* __restrict__ table, int n,
                                                 int first, float lo, float inv_span) {
    typedef PrSample<T> S;
    if (mode == 0) return table[(int)(S::ivalue(v) - first)];
    if (mode == 2) {
        if (!S::is_float) {
            const pr_i64 id = S::ivalue(v);
            return (id >= 0 && id < n) ? table[id] : 0u;
        }
        const float x = S::fvalue(v);
        if (!pr_isfinite(x)) return 0u;
        const float id = floorf(x + 0.5f);
        return (id >= 0.0f && id < (float)n) ? table[(int)id] : 0u;
    }
    const float x = S::fvalue(v);
    float t = 0.0f;
    if (x != x) {
        t = 0.0f;  // NaN -> t = 0, as Rerun shows it
    } else if (!pr_isfinite(x)) {
        t = (x > 0.0f && inv_span != 0.0f) ? 1.0f : 0.0f;
    } else {
        t = fminf(fmaxf((x - lo) * inv_span, 0.0f), 1.0f);
    }
    int idx = (int)floorf(t * (float)(n - 1) + 0.5f);
    if (idx > n - 1) idx = n - 1;
    return table[idx];
}

template <typename T>
__device__ __forceinline__ void pr_table_kernel(const pr_u8* __restrict__ src, pr_u8* __restrict__ dst,
                                                long long frame_bytes, long long pixels, int mode,
                                                const pr_u32* __restrict__ table, long long table_stride,
                                                int n, int first, const float* __restrict__ lo,
                                                const float* __restrict__ inv_span) {
    const unsigned f = blockIdx.y;
    const T* s = reinterpret_cast<const T*>(src + (long long)f * frame_bytes);
    pr_u32* d = reinterpret_cast<pr_u32*>(dst + (long long)f * pixels * 4);
    const pr_u32* tab = table + (long long)f * table_stride;
    const float flo = lo[f], finv = inv_span[f];
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < pixels; i += step) {
        d[i] = pr_table_pixel<T>(s[i], mode, tab, n, first, flo, finv);
    }
}

#define PR_TABLE_KERNEL(NAME, T)                                                                    \
    extern "C" __global__ void NAME(const pr_u8* __restrict__ src, pr_u8* __restrict__ dst,         \
                                    long long frame_bytes, long long pixels, int mode,              \
                                    const pr_u32* __restrict__ table, long long table_stride, int n, \
                                    int first, const float* __restrict__ lo,                        \
                                    const float* __restrict__ inv_span) {                           \
        pr_table_kernel<T>(src, dst, frame_bytes, pixels, mode, table, table_stride, n, first, lo,  \
                           inv_span);                                                               \
    }

PR_TABLE_KERNEL(pr_table_u8, pr_u8)
PR_TABLE_KERNEL(pr_table_i8, pr_i8)
PR_TABLE_KERNEL(pr_table_u16, pr_u16)
PR_TABLE_KERNEL(pr_table_i16, pr_i16)
PR_TABLE_KERNEL(pr_table_u32, pr_u32)
PR_TABLE_KERNEL(pr_table_i32, pr_i32)
PR_TABLE_KERNEL(pr_table_u64, pr_u64)
PR_TABLE_KERNEL(pr_table_i64, pr_i64)
PR_TABLE_KERNEL(pr_table_f16, pr_f16)
PR_TABLE_KERNEL(pr_table_f32, float)
PR_TABLE_KERNEL(pr_table_f64, double)
