// Every YUV family (planar 4:4:4/4:2:2/4:2:0, NV12, YUY2, Y8) with one rule (SPEC 2):
//     address(x, y) = offset + (y >> shift_y) * row_bytes + (x >> shift_x) * step
// The three addresses, the range and the matrix come from kernels/formats.py as
// uniforms; nothing about a format is restated here. Whether there is chroma at all is
// also the pipeline constant HAS_UV, so Y8's pipeline has no chroma code.
// Output: packed RGBA8 words (R in the low byte), PX pixels per invocation along x, rows
// out_stride words apart; wgsl_convert.py copies them into the tile's rgba8unorm texture.

struct Addr {
    offset: u32,
    row_bytes: u32,
    step: u32,
    shift_x: u32,
    shift_y: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

struct Params {
    width: u32,
    height: u32,
    x0: u32,
    y0: u32,
    tw: u32,
    th: u32,
    has_uv: u32,   // 0: Y8, chroma is the constant 128 (the decode entry uses HAS_UV)
    out_stride: u32, // words per output row (a multiple of 64)
    y_offset: f32, // y = (Y - y_offset) / y_scale; u = (U - 128) / c_scale
    y_scale: f32,
    c_scale: f32,
    _pad1: f32,
    rv: f32,       // R = y + rv v, G = y - gu u - gv v, B = y + bu u
    gu: f32,
    gv: f32,
    bu: f32,
    ya: Addr,
    ua: Addr,
    va: Addr,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> raw: array<u32>;
@group(0) @binding(4) var<storage, read_write> out_buf: array<u32>;

const PX: u32 = 8u; // pixels per invocation (wgsl_convert.py's _DECODE_PX)
override HAS_UV: u32 = 1u; // params.has_uv, as a pipeline constant

fn byte_at(a: u32) -> u32 {
    return (raw[a >> 2u] >> ((a & 3u) * 8u)) & 0xffu;
}

fn q(t: f32) -> u32 {
    return u32(floor(clamp(t, 0.0, 1.0) * 255.0 + 0.5));
}

fn pack(r: u32, g: u32, b: u32) -> u32 {
    return r | (g << 8u) | (b << 16u) | 0xff000000u;
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
    if (lx >= P.tw || gid.y >= P.th) { return; }
    let y = P.y0 + gid.y;
    let o = gid.y * P.out_stride + lx;
    let xmax = P.width - 1u;
    let yb = P.ya.offset + (y >> P.ya.shift_y) * P.ya.row_bytes;
    let ub = P.ua.offset + (y >> P.ua.shift_y) * P.ua.row_bytes;
    let vb = P.va.offset + (y >> P.va.shift_y) * P.va.row_bytes;
    for (var i = 0u; i < PX; i = i + 1u) {
        let x = min(P.x0 + lx + i, xmax);
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
        out_buf[o + i] = pack(r, g, b);
    }
}
