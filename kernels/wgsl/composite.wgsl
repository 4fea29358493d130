// Compositing (SPEC 4), in two stages sharing a float accumulation buffer `acc`
// (one vec4<f32> per scene pixel of the current band of rows, premultiplied, linear):
//   clear   (compute): acc = background, premultiplied, linear
//   blend   (compute): for one layer tile, acc = c a + acc (1 - a), with
//                      c = srgb_decode(rgb), a = alpha * clamp(opacity, 0, 1)
//   vs/fs   (render):  maps target pixels to scene texels (scale/offset, nearest),
//                      encodes straight-alpha sRGB bytes; for *-srgb targets it outputs
//                      the decoded value of those bytes, so the stored bytes are equal.
// Blending is done here rather than by fixed-function blend state so it is in linear
// light at f32 precision on every device.

struct Scene {
    width: u32,     // scene (acc) width
    height: u32,    // scene height
    band_y0: u32,   // first scene row held by acc
    band_h: u32,    // rows held by acc
    bg: vec4<f32>,  // background, linear, premultiplied
}

struct LayerParams {
    x0: u32,        // tile origin in the scene
    y0: u32,
    w: u32,         // tile columns
    row0: u32,      // first tile row inside the band
    rows: u32,      // tile rows inside the band
    _pad0: u32,
    opacity: f32,   // already clamped to 0..1 on the CPU
    _pad1: f32,
}

struct View {
    scale: vec2<f32>,     // target pixels per scene unit
    offset: vec2<f32>,    // target position of the scene origin
    width: u32,
    height: u32,
    band_y0: u32,
    band_h: u32,
    bg_bytes: vec4<f32>,  // background as display values (straight, sRGB), for outside the scene
    srgb_target: u32,     // 1: the target encodes sRGB itself
    draw_outside: u32,    // 0: leave pixels outside the scene alone (later bands)
    _pad0: u32,
    _pad1: u32,
}

fn srgb_decode(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((max(c, vec3<f32>(0.04045)) + 0.055) / 1.055, vec3<f32>(2.4));
    return select(hi, lo, c <= vec3<f32>(0.04045));
}

fn srgb_encode(c: vec3<f32>) -> vec3<f32> {
    let lo = 12.92 * c;
    let hi = 1.055 * pow(max(c, vec3<f32>(0.0031308)), vec3<f32>(1.0 / 2.4)) - 0.055;
    return select(hi, lo, c <= vec3<f32>(0.0031308));
}

fn q(t: vec4<f32>) -> vec4<f32> {
    return floor(clamp(t, vec4<f32>(0.0), vec4<f32>(1.0)) * 255.0 + 0.5);
}

// ---------------------------------------------------------------- compute stage

@group(0) @binding(0) var<uniform> scene: Scene;
@group(0) @binding(1) var<storage, read_write> acc: array<vec4<f32>>;
// srgb_decode(b / 255) for every byte b, computed once in float64 on the CPU: exact to
// f32 and much cheaper than pow() per texel (CPU drivers such as lavapipe pay for it)
@group(0) @binding(2) var<storage, read> decode_lut: array<f32, 256>;
@group(1) @binding(0) var<uniform> layer: LayerParams;
@group(1) @binding(1) var layer_tex: texture_2d<f32>;

@compute @workgroup_size(64)
fn clear(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = scene.width * scene.band_h;
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i < n) { acc[i] = scene.bg; }
}

@compute @workgroup_size(8, 8)
fn blend(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= layer.w || gid.y >= layer.rows) { return; }
    let ty = layer.row0 + gid.y;
    let sy = layer.y0 + ty;
    let idx = (sy - scene.band_y0) * scene.width + layer.x0 + gid.x;
    let texel = textureLoad(layer_tex, vec2<u32>(gid.x, ty), 0);
    let a = texel.a * layer.opacity;
    let b = vec3<u32>(texel.rgb * 255.0 + 0.5); // the texel's bytes (unorm8 is b / 255)
    let c = vec3<f32>(decode_lut[b.x], decode_lut[b.y], decode_lut[b.z]);
    acc[idx] = vec4<f32>(c * a, a) + acc[idx] * (1.0 - a);
}

// ---------------------------------------------------------------- render stage

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> acc_in: array<vec4<f32>>;

@vertex
fn vs(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    // one triangle covering the whole target
    let p = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    return vec4<f32>(p * 2.0 - 1.0, 0.0, 1.0);
}

@fragment
fn fs(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let s = floor((pos.xy - view.offset) / view.scale);
    var bytes: vec4<f32>;
    if (s.x < 0.0 || s.y < 0.0 || s.x >= f32(view.width) || s.y >= f32(view.height)) {
        if (view.draw_outside == 0u) { discard; }
        bytes = view.bg_bytes * 255.0;
    } else {
        let sx = u32(s.x);
        let sy = u32(s.y);
        if (sy < view.band_y0 || sy >= view.band_y0 + view.band_h) { discard; }
        let v = acc_in[(sy - view.band_y0) * view.width + sx];
        var rgb = vec3<f32>(0.0);
        if (v.a > 0.0) { rgb = v.rgb / v.a; }
        bytes = q(vec4<f32>(srgb_encode(rgb), v.a));
    }
    let out = bytes / 255.0;
    if (view.srgb_target != 0u) {
        return vec4<f32>(srgb_decode(out.rgb), out.a);
    }
    return out;
}
