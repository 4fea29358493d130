// Bayer mosaics -> display RGBA8 (contract §2).
//
// Each pixel keeps its own sample; each missing colour is the mean of that colour's
// samples in the 3x3 neighbourhood cut to the image (a colour with no sample there,
// only possible when W or H is 1, is 0, like the reference). Samples are linear
// light: byte = q(srgb_encode(mean / max)), max 255 for 8-bit and 65535 for 16-bit
// mosaics (little-endian samples); rows are row_bytes apart (a row stride).
//
// The pattern arrives as the colour index (0 R, 1 G, 2 B) of the four tile positions
// (x & 1) + 2 * (y & 1), computed from formats.PixelFormatInfo.bayer_offsets().
//
// The 3x3 window splits into four classes by position: the pixel itself, its left and
// right neighbours (other column parity), above and below (other row parity), and
// the four diagonals. Within a class every sample has the same colour, so each class
// is one sum and one count, and a colour's mean is the sum over the classes of that
// colour. Everything stays in registers (no per-colour arrays indexed at run time).
//
// Launch: block (BAYER_BLOCK, 1, 1); grid (ceil(W / BAYER_BLOCK), H, frames); one
// pixel per thread. The window's nine byte loads overlap with the neighbours' and
// are served by L1, so no shared-memory tile is needed.
#include "pixelrun_common.cuh"

// Sample x of a mosaic row: one byte, or (sample_bytes 2) a little-endian 16-bit value.
__device__ __forceinline__ pr_u32 pr_bayer_sample(const pr_u8* row, int x, int sample_bytes) {
    return sample_bytes == 2 ? ((pr_u32)row[2 * x] | ((pr_u32)row[2 * x + 1] << 8)) : (pr_u32)row[x];
}

// Colour index of the tile position (px, py), px and py in {0, 1}.
__device__ __forceinline__ int pr_tile(int px, int py, int c00, int c10, int c01, int c11) {
    return py ? (px ? c11 : c01) : (px ? c10 : c00);
}

extern "C" __global__ void pr_bayer_to_rgba(
    const pr_u8* __restrict__ src, pr_u32* __restrict__ dst,
    int width, int height, pr_i64 src_frame_bytes,
    int c00, int c10, int c01, int c11, int row_bytes, int sample_bytes) {
    const int x = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    const int y = (int)blockIdx.y;
    const pr_i64 frame = (pr_i64)blockIdx.z;
    if (x >= width || y >= height) return;

    // rows are row_bytes apart (a row stride: padded rows are skipped, never read)
    const pr_u8* row = src + frame * src_frame_bytes + (pr_i64)y * row_bytes;
    const bool left = x > 0, right = x + 1 < width, up = y > 0, down = y + 1 < height;
    const pr_u8* above = row - row_bytes;
    const pr_u8* below = row + row_bytes;
    const int sb = sample_bytes;

    const pr_u32 own = pr_bayer_sample(row, x, sb);
    const pr_u32 sum_h = (left ? pr_bayer_sample(row, x - 1, sb) : 0u) + (right ? pr_bayer_sample(row, x + 1, sb) : 0u);
    const pr_u32 sum_v = (up ? pr_bayer_sample(above, x, sb) : 0u) + (down ? pr_bayer_sample(below, x, sb) : 0u);
    pr_u32 sum_d = 0u;  // at most 4 * 65535: exact in u32 and in float
    if (up) sum_d += (left ? pr_bayer_sample(above, x - 1, sb) : 0u) + (right ? pr_bayer_sample(above, x + 1, sb) : 0u);
    if (down) sum_d += (left ? pr_bayer_sample(below, x - 1, sb) : 0u) + (right ? pr_bayer_sample(below, x + 1, sb) : 0u);
    const float sample_max = sb == 2 ? 65535.0f : 255.0f;
    const pr_u32 n_h = (pr_u32)left + (pr_u32)right;
    const pr_u32 n_v = (pr_u32)up + (pr_u32)down;
    const pr_u32 n_d = n_h * n_v;

    const int px = x & 1, py = y & 1;
    const int col_own = pr_tile(px, py, c00, c10, c01, c11);
    const int col_h = pr_tile(px ^ 1, py, c00, c10, c01, c11);
    const int col_v = pr_tile(px, py ^ 1, c00, c10, c01, c11);
    const int col_d = pr_tile(px ^ 1, py ^ 1, c00, c10, c01, c11);

    pr_u32 out[3];
#pragma unroll
    for (int c = 0; c < 3; ++c) {
        float mean;
        if (c == col_own) {
            mean = (float)own;  // each pixel keeps its own sample
        } else {
            const pr_u32 sum = (col_h == c ? sum_h : 0u) + (col_v == c ? sum_v : 0u) + (col_d == c ? sum_d : 0u);
            const pr_u32 n = (col_h == c ? n_h : 0u) + (col_v == c ? n_v : 0u) + (col_d == c ? n_d : 0u);
            mean = n ? (float)sum / (float)n : 0.0f;
        }
        out[c] = pr_q(pr_srgb_encode(mean / sample_max));
    }
    dst[(frame * height + y) * (pr_i64)width + x] = pr_pack(out[0], out[1], out[2], 255u);
}
