// Every YUV family (planar 4:4:4/4:2:2/4:2:0, NV12, YUY2, Y8) with one rule (SPEC 2):
//     address(x, y) = offset + (y >> shift_y) * row_bytes + (x >> shift_x) * step
// The three addresses, the range and the matrix come from kernels/formats.py as
// uniforms; nothing about a format is restated here.

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
    has_uv: u32,   // 0: Y8, chroma is the constant 128
    _pad0: u32,
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
@group(0) @binding(4) var out_tex: texture_storage_2d<rgba8unorm, write>;

fn byte_at(a: u32) -> u32 {
    return (raw[a >> 2u] >> ((a & 3u) * 8u)) & 0xffu;
}

fn sample(s: Addr, x: u32, y: u32) -> f32 {
    return f32(byte_at(s.offset + (y >> s.shift_y) * s.row_bytes + (x >> s.shift_x) * s.step));
}

fn q(t: f32) -> u32 {
    return u32(floor(clamp(t, 0.0, 1.0) * 255.0 + 0.5));
}

@compute @workgroup_size(8, 8)
fn decode(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= params.tw || gid.y >= params.th) { return; }
    let x = params.x0 + gid.x;
    let y = params.y0 + gid.y;
    let yy = (sample(params.ya, x, y) - params.y_offset) / params.y_scale;
    var u = 0.0;
    var v = 0.0;
    if (params.has_uv != 0u) {
        u = (sample(params.ua, x, y) - 128.0) / params.c_scale;
        v = (sample(params.va, x, y) - 128.0) / params.c_scale;
    }
    let r = q(yy + params.rv * v);
    let g = q(yy - params.gu * u - params.gv * v);
    let b = q(yy + params.bu * u);
    textureStore(out_tex, vec2<i32>(gid.xy), vec4<f32>(vec4<u32>(r, g, b, 255u)) / 255.0);
}
