// Every YUV family (planar 4:4:4/4:2:2/4:2:0, NV12, YUY2, Y8) with one rule (contract §2):
//     address(x, y) = offset + (y >> shift_y) * row_bytes + (x >> shift_x) * step
// The three addresses, the range and the matrix come from kernels/formats.py as
// uniforms; nothing about a format is restated here. Whether there is chroma at all is
// also the pipeline constant HAS_UV, so Y8's pipeline has no chroma code.
// Output: packed RGBA8 words (R in the low byte), PX pixels per invocation along x, rows
// out_stride words apart; wgsl_convert.py copies them into the tile's rgba8unorm texture.

#include "common.wgsl"

#struct YuvParams

@group(0) @binding(0) var<uniform> params: YuvParams;
@group(0) @binding(1) var<storage, read> raw: array<u32>;
@group(0) @binding(4) var<storage, read_write> out_buf: array<u32>;

const PX: u32 = 8u; // pixels per invocation (wgsl_convert.py's _DECODE_PX)
override HAS_UV: u32 = 1u; // params.has_uv, as a pipeline constant
// Decode straight to reduced level LEVEL (every K-th texel, K = 2^LEVEL): output texel o of
// the tile is source texel min(o K + K/2, tw - 1), composite.wgsl's `reduce` rule, so the
// pixels equal decoding the whole tile and reducing it. 0: one output texel per pixel.
override LEVEL: u32 = 0u;

fn byte_at(a: u32) -> u32 {
    return (raw[a >> 2u] >> ((a & 3u) * 8u)) & 0xffu;
}

// Invocation (gx, gy) writes pixels PX gx .. PX gx + PX - 1 of tile row gy. out_stride is a
// multiple of 64 >= tw, so those words always lie in the row: pixels past the tile's edge
// land in the row padding, which the copy to the texture skips (their x is clamped to the
// image so every read stays in range). The parameters are loaded once and each sample's
// row base (the addressing rule's y term) is hoisted out of the pixel loop: much faster
// on lavapipe, and the same arithmetic for every pixel.
@compute @workgroup_size(16, 4)
fn decode(@builtin(global_invocation_id) gid: vec3<u32>) {
    let P = params;
    let lx = gid.x * PX;
    let K = 1u << LEVEL;
    if (lx >= (P.tw + K - 1u) >> LEVEL || gid.y >= (P.th + K - 1u) >> LEVEL) { return; }
    let y = P.y0 + min(gid.y * K + K / 2u, P.th - 1u);
    let o = gid.y * P.out_stride + lx;
    let xmax = P.x0 + P.tw - 1u; // the tile's last pixel (its texture's clamp, as `reduce`)
    let yb = P.ya.offset + (y >> P.ya.shift_y) * P.ya.row_bytes;
    let ub = P.ua.offset + (y >> P.ua.shift_y) * P.ua.row_bytes;
    let vb = P.va.offset + (y >> P.va.shift_y) * P.va.row_bytes;
    for (var i = 0u; i < PX; i = i + 1u) {
        let x = min(P.x0 + (lx + i) * K + K / 2u, xmax);
        let yy = (f32(byte_at(yb + (x >> P.ya.shift_x) * P.ya.step)) - P.y_offset) / P.y_scale;
        var u = 0.0;
        var v = 0.0;
        if (HAS_UV != 0u) {
            u = (f32(byte_at(ub + (x >> P.ua.shift_x) * P.ua.step)) - 128.0) / P.c_scale;
            v = (f32(byte_at(vb + (x >> P.va.shift_x) * P.va.step)) - 128.0) / P.c_scale;
        }
        let r = q(yy + P.rv * v);
        let g = q(yy - P.gu * u - P.gv * v);
        let b = q(yy + P.bu * u);
        out_buf[o + i] = pack_rgba(vec4<u32>(r, g, b, 255u));
    }
}
