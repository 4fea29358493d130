// Bayer mosaics (SPEC 2): each pixel keeps its own sample; each missing colour is the
// mean of that colour's samples in the 3x3 neighbourhood cut to the image; samples are
// linear light, so the byte is q(srgb_encode(mean / 255)). A colour with no sample in
// the neighbourhood (only when W or H is 1) is 0, as in the reference.
// The 2x2 tile's colours come from kernels/formats.py as a uniform.

struct Params {
    width: u32,
    height: u32,
    x0: u32,
    y0: u32,
    tw: u32,
    th: u32,
    _pad0: u32,
    _pad1: u32,
    tile: vec4<u32>, // colour (0 R, 1 G, 2 B) at tile position (x & 1) + 2 (y & 1)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> raw: array<u32>;
@group(0) @binding(4) var out_tex: texture_storage_2d<rgba8unorm, write>;

fn byte_at(a: u32) -> u32 {
    return (raw[a >> 2u] >> ((a & 3u) * 8u)) & 0xffu;
}

fn colour_at(x: u32, y: u32) -> u32 {
    return params.tile[(x & 1u) + 2u * (y & 1u)];
}

fn srgb_encode(c: f32) -> f32 {
    if (c <= 0.0031308) { return 12.92 * c; }
    return 1.055 * pow(c, 1.0 / 2.4) - 0.055;
}

fn q(t: f32) -> u32 {
    return u32(floor(clamp(t, 0.0, 1.0) * 255.0 + 0.5));
}

@compute @workgroup_size(8, 8)
fn decode(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= params.tw || gid.y >= params.th) { return; }
    let x = i32(params.x0 + gid.x);
    let y = i32(params.y0 + gid.y);
    let w = i32(params.width);
    let h = i32(params.height);
    var sum = vec3<f32>(0.0);
    var cnt = vec3<f32>(0.0);
    for (var dy = -1; dy <= 1; dy = dy + 1) {
        for (var dx = -1; dx <= 1; dx = dx + 1) {
            let nx = x + dx;
            let ny = y + dy;
            if (nx < 0 || ny < 0 || nx >= w || ny >= h) { continue; }
            let c = colour_at(u32(nx), u32(ny));
            let s = f32(byte_at(u32(ny * w + nx)));
            sum[c] = sum[c] + s;
            cnt[c] = cnt[c] + 1.0;
        }
    }
    var mean = select(vec3<f32>(0.0), sum / max(cnt, vec3<f32>(1.0)), cnt > vec3<f32>(0.0));
    let own = colour_at(u32(x), u32(y));
    mean[own] = f32(byte_at(u32(y * w + x))); // each pixel keeps its own sample
    let r = q(srgb_encode(mean.x / 255.0));
    let g = q(srgb_encode(mean.y / 255.0));
    let b = q(srgb_encode(mean.z / 255.0));
    textureStore(out_tex, vec2<i32>(gid.xy), vec4<f32>(vec4<u32>(r, g, b, 255u)) / 255.0);
}
