// Every YUV-family pixel format -> display RGBA8 (contract §2), one kernel for all of them.
//
// The layout is not known here: each sample kind (Y, U, V) comes with the generic
// addressing rule of formats.py,
//     address(x, y) = offset + (y >> shift_y) * row_bytes + (x >> shift_x) * step,
// so planar 4:4:4/4:2:2/4:2:0, NV12 and YUY2 are the same code with other arguments.
// The matrix and range arrive pre-multiplied (host, float64 -> float32):
//     R = ky*(Y - y_off) + krv*(V - 128)
//     G = ky*(Y - y_off) - kgu*(U - 128) - kgv*(V - 128)
//     B = ky*(Y - y_off) + kbu*(U - 128)
//
// Launch (cupy_convert.py): block (YUV_BLOCK, 1, 1); grid (ceil(ceil(W/4) / YUV_BLOCK), H, frames).
// One thread makes 4 horizontally adjacent pixels: with 2x chroma subsampling one
// U/V load serves two pixels, and the 4 output pixels leave as one 16-byte store.
// Neighbouring threads touch neighbouring bytes, so every load and the store are
// coalesced; the data is read exactly once, so there is nothing to stage in shared
// memory.
#include "pixelrun_common.cuh"

#define PR_YUV_PIXELS_PER_THREAD 4

extern "C" __global__ void pr_yuv_to_rgba(
    const pr_u8* __restrict__ src, pr_u32* __restrict__ dst,
    int width, int height, pr_i64 src_frame_bytes,
    int y_off, int y_row, int y_step, int y_sx, int y_sy,
    int u_off, int u_row, int u_step, int u_sx, int u_sy,
    int v_off, int v_row, int v_step, int v_sx, int v_sy,
    int has_chroma,
    float y_offset, float ky, float krv, float kgu, float kgv, float kbu) {
    const int x0 = (int)(blockIdx.x * blockDim.x + threadIdx.x) * PR_YUV_PIXELS_PER_THREAD;
    const int y = (int)blockIdx.y;
    const pr_i64 frame = (pr_i64)blockIdx.z;
    if (x0 >= width || y >= height) return;

    const pr_u8* s = src + frame * src_frame_bytes;
    const pr_i64 first_pixel = (frame * height + y) * (pr_i64)width + x0;
    pr_u32* d = dst + first_pixel;

    const pr_u8* yrow = s + y_off + (y >> y_sy) * y_row;
    const pr_u8* urow = s + u_off + (y >> u_sy) * u_row;
    const pr_u8* vrow = s + v_off + (y >> v_sy) * v_row;

    pr_u32 px[PR_YUV_PIXELS_PER_THREAD];
    int last_cx = -1;  // chroma column already loaded (reused for the pixel pair)
    float cu = 0.0f, cv = 0.0f;
#pragma unroll
    for (int k = 0; k < PR_YUV_PIXELS_PER_THREAD; ++k) {
        const int x = x0 + k;
        if (x >= width) {
            px[k] = 0u;
            continue;
        }
        if (has_chroma) {
            const int cx = x >> u_sx;  // U and V share the subsampling in every format
            if (cx != last_cx) {
                cu = (float)urow[cx * u_step] - 128.0f;
                cv = (float)vrow[(x >> v_sx) * v_step] - 128.0f;
                last_cx = cx;
            }
        }
        const float luma = ky * ((float)yrow[(x >> y_sx) * y_step] - y_offset);
        const float r = luma + krv * cv;
        const float g = luma - kgu * cu - kgv * cv;
        const float b = luma + kbu * cu;
        px[k] = pr_pack(pr_q(r), pr_q(g), pr_q(b), 255u);
    }

    if (x0 + PR_YUV_PIXELS_PER_THREAD <= width && (first_pixel & 3) == 0) {
        PR_STORE4(d, px[0], px[1], px[2], px[3]);  // 16-byte aligned: one vector store
    } else {
        for (int k = 0; k < PR_YUV_PIXELS_PER_THREAD && x0 + k < width; ++k) d[k] = px[k];
    }
}
