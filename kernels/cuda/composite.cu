// Compositing a 2D view on the GPU (contract §4), used by pixelrun/engine/cupy_composite.py.
//
// The accumulator is (H, W, 4) float32: linear-light colour, premultiplied by alpha.
//   pr_composite_clear:  acc = background (already linear and premultiplied)
//   pr_composite_layer:  for one display-RGBA8 layer with its top-left at the origin:
//                        c = srgb_decode(rgb), a = alpha * opacity (clamped by caller),
//                        acc = c * a + acc * (1 - a)   -- colour and alpha alike
//   pr_composite_finish: straight alpha, sRGB-encoded bytes; alpha 0 gives (0,0,0,0)
// Layers are applied in draw order by the host, one launch each: a layer touches only
// its own rectangle, so the grid covers just that.
#include "pixelrun_common.cuh"

extern "C" __global__ void pr_composite_clear(float* __restrict__ acc, pr_i64 pixels,
                                              float r, float g, float b, float a) {
    const pr_i64 stride = (pr_i64)blockDim.x * gridDim.x;
    for (pr_i64 i = (pr_i64)blockIdx.x * blockDim.x + threadIdx.x; i < pixels; i += stride) {
        float* p = acc + 4 * i;
        p[0] = r;
        p[1] = g;
        p[2] = b;
        p[3] = a;
    }
}

// Launch: block (BLOCK, 1, 1) (kernels/cuda/composite.py); grid (ceil(layer_w / BLOCK), layer_h, 1).
extern "C" __global__ void pr_composite_layer(float* __restrict__ acc, const pr_u32* __restrict__ layer,
                                              int canvas_w, int layer_w, int layer_h, float opacity) {
    const int x = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    const int y = (int)blockIdx.y;
    if (x >= layer_w || y >= layer_h) return;
    const pr_u32 px = layer[(pr_i64)y * layer_w + x];
    const float a = (float)(px >> 24) / 255.0f * opacity;
    if (a <= 0.0f) return;  // nothing to add, and acc * (1 - 0) is acc
    float* p = acc + 4 * ((pr_i64)y * canvas_w + x);
    const float keep = 1.0f - a;
    p[0] = pr_srgb_decode((float)(px & 0xffu) / 255.0f) * a + p[0] * keep;
    p[1] = pr_srgb_decode((float)((px >> 8) & 0xffu) / 255.0f) * a + p[1] * keep;
    p[2] = pr_srgb_decode((float)((px >> 16) & 0xffu) / 255.0f) * a + p[2] * keep;
    p[3] = a + p[3] * keep;
}

extern "C" __global__ void pr_composite_finish(const float* __restrict__ acc, pr_u32* __restrict__ out,
                                               pr_i64 pixels) {
    const pr_i64 stride = (pr_i64)blockDim.x * gridDim.x;
    for (pr_i64 i = (pr_i64)blockIdx.x * blockDim.x + threadIdx.x; i < pixels; i += stride) {
        const float* p = acc + 4 * i;
        const float a = p[3];
        if (!(a > 0.0f)) {
            out[i] = 0u;
            continue;
        }
        const float inv = 1.0f / a;
        out[i] = pr_pack(pr_q(pr_srgb_encode(p[0] * inv)), pr_q(pr_srgb_encode(p[1] * inv)),
                         pr_q(pr_srgb_encode(p[2] * inv)), pr_q(a));
    }
}
