// Compositing (contract §4) in target space: every stage works on the pixels of the target
// (a window, or one tile of a headless render), never on the whole scene, so a huge
// or degenerate scene costs what the target costs. A float accumulation buffer `acc`
// holds one vec4<f32> (premultiplied, linear) per target pixel of the current band of
// target rows:
//   clear   (compute): acc = background, premultiplied, linear
//   blend   (compute): for one layer tile and the target pixels it can cover, the
//                      scene texel under each pixel centre (scale/offset, nearest; or
//                      linear, tile.sampling 1, between the four nearest texel centres) is
//                      read from the tile's texture (or its reduced level) and
//                      acc = c a + acc (1 - a), c = srgb_decode(rgb), a = alpha * opacity
//   vs/fs   (render):  encodes acc to straight-alpha sRGB bytes (the background outside
//                      the scene); for *-srgb targets it outputs the decoded value of
//                      those bytes, so the stored bytes are equal.
// Blending is done here rather than by fixed-function blend state so it is in linear
// light at f32 precision on every device. The pixel -> texel rule, floor((p + 0.5 -
// offset) / scale), is computed the same way in `blend` and `fs`, so a pixel is inside
// the scene in one exactly when it is in the other.
//
// Parameters are read-only storage buffers, not uniforms: Mesa's lavapipe (22.x)
// inlines uniform values that control branches into a freshly compiled shader at
// every draw and never frees it (about 400 kB per draw).

#include "common.wgsl"

#struct Frame

#struct Tile

// the scene texel whose square holds the centre of target pixel p (may be outside)
fn texel_of(centre: vec2<f32>, f: Frame) -> vec2<f32> {
    return floor((centre - f.offset) / f.scale);
}

@group(0) @binding(0) var<storage, read> frame: Frame;
@group(0) @binding(1) var<storage, read_write> acc: array<vec4<f32>>;
// srgb_decode(b / 255) for every byte b, computed once in float64 on the CPU: exact to
// f32 and much cheaper than pow() per texel (CPU drivers such as lavapipe pay for it)
@group(0) @binding(2) var<storage, read> decode_lut: array<f32, 256>;
@group(1) @binding(0) var<storage, read> tile: Tile;
@group(1) @binding(1) var tile_tex: texture_2d<f32>;

// ---------------------------------------------------------------- compute stage

@compute @workgroup_size(64)
fn clear(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = frame.clear_w * frame.clear_h;
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= n) { return; }
    let x = frame.clear_x0 + i % frame.clear_w;
    let y = frame.clear_y0 + i / frame.clear_w;
    acc[(y - frame.band_y0) * frame.width + x] = frame.bg_lin;
}

@compute @workgroup_size(8, 8)
fn blend(@builtin(global_invocation_id) gid: vec3<u32>) {
    blend_over(gid, false);
}

// The first layer tile of a band when its pixels cover all that `clear` would clear:
// clear and blend in one pass (acc starts as bg_lin, read from `frame` rather than from
// acc: the same values, one pass over the band fewer). Its pixels outside the tile get
// the background, as `clear` gives them.
@compute @workgroup_size(8, 8)
fn blend_first(@builtin(global_invocation_id) gid: vec3<u32>) {
    blend_over(gid, true);
}

fn blend_over(gid: vec3<u32>, first: bool) {
    if (gid.x >= tile.w || gid.y >= tile.h) { return; }
    let p = vec2<u32>(tile.x0 + gid.x, tile.y0 + gid.y);
    let idx = (p.y - frame.band_y0) * frame.width + p.x;
    let s = texel_of(vec2<f32>(p) + 0.5, frame);
    let lo = vec2<f32>(f32(tile.tx0), f32(tile.ty0));
    let hi = lo + vec2<f32>(f32(tile.tw), f32(tile.th));
    if (any(s < lo) || any(s >= hi)) {
        if (first) { acc[idx] = frame.bg_lin; }
        return;
    }
    let dims = textureDimensions(tile_tex);
    var src: vec4<f32>; // premultiplied, linear
    if (tile.sampling == 1u) {
        // linear: Rerun's bilinear rule in texel space (texel centres at +0.5): the four
        // texels around the pixel centre, clamped to the edge, mixed as premultiplied
        // linear colours. (At a seam between tiles of a huge image the clamp is the tile's.)
        let u = (vec2<f32>(p) + 0.5 - frame.offset) / frame.scale - lo - 0.5;
        let base = floor(u);
        let f = u - base;
        let c00 = premultiplied(texel_at(base, dims));
        let c10 = premultiplied(texel_at(base + vec2<f32>(1.0, 0.0), dims));
        let c01 = premultiplied(texel_at(base + vec2<f32>(0.0, 1.0), dims));
        let c11 = premultiplied(texel_at(base + vec2<f32>(1.0, 1.0), dims));
        src = mix(mix(c00, c10, f.x), mix(c01, c11, f.x), f.y);
    } else {
        let t = min((vec2<u32>(s) - vec2<u32>(tile.tx0, tile.ty0)) >> vec2<u32>(tile.shift), dims - 1u);
        src = premultiplied(textureLoad(tile_tex, t, 0));
    }
    let a = src.a * tile.opacity;
    var under = frame.bg_lin;
    if (!first) { under = acc[idx]; }
    acc[idx] = vec4<f32>(src.rgb * tile.opacity, a) + under * (1.0 - a);
}

// A display texel (straight-alpha sRGB bytes) as premultiplied linear light.
fn premultiplied(texel: vec4<f32>) -> vec4<f32> {
    let b = vec3<u32>(texel.rgb * 255.0 + 0.5); // the texel's bytes (unorm8 is b / 255)
    let c = vec3<f32>(decode_lut[b.x], decode_lut[b.y], decode_lut[b.z]);
    return vec4<f32>(c * texel.a, texel.a);
}

// The tile's texel at (possibly out of range) tile-local coordinates, clamped to its edge.
fn texel_at(t: vec2<f32>, dims: vec2<u32>) -> vec4<f32> {
    let c = vec2<u32>(clamp(t, vec2<f32>(0.0), vec2<f32>(dims - 1u)));
    return textureLoad(tile_tex, c, 0);
}

// ---------------------------------------------------------------- reduced levels

// dst texel j = src texel min(j * k + k / 2, size - 1), k = 1 << shift: at zoom 1/k
// with a whole-pixel offset this is the texel nearest sampling of the full image reads.
@group(0) @binding(0) var<storage, read> reduce_shift: u32;
@group(0) @binding(1) var reduce_src: texture_2d<f32>;
@group(0) @binding(2) var reduce_dst: texture_storage_2d<rgba8unorm, write>;

@compute @workgroup_size(8, 8)
fn reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dd = textureDimensions(reduce_dst);
    if (gid.x >= dd.x || gid.y >= dd.y) { return; }
    let k = 1u << reduce_shift;
    let src = min(gid.xy * k + vec2<u32>(k / 2u), textureDimensions(reduce_src) - 1u);
    textureStore(reduce_dst, gid.xy, textureLoad(reduce_src, src, 0));
}

// ---------------------------------------------------------------- render stage

@group(0) @binding(0) var<storage, read> view: Frame;
@group(0) @binding(1) var<storage, read> acc_in: array<vec4<f32>>;

// vertex stage: common.wgsl's vs_fullscreen

@fragment
fn fs(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let py = u32(pos.y);
    if (py < view.band_y0 || py >= view.band_y0 + view.band_h) { discard; }
    let s = texel_of(pos.xy, view);
    var bytes: vec4<f32>;
    if (s.x < 0.0 || s.y < 0.0 || s.x >= f32(view.scene_w) || s.y >= f32(view.scene_h)) {
        bytes = view.bg_bytes * 255.0;
    } else {
        let v = acc_in[(py - view.band_y0) * view.width + u32(pos.x)];
        var rgb = vec3<f32>(0.0);
        if (v.a > 0.0) { rgb = v.rgb / v.a; }
        bytes = vec4<f32>(q4(vec4<f32>(srgb_encode(rgb), v.a)));
    }
    let out = bytes / 255.0;
    if (view.srgb_target != 0u) {
        return vec4<f32>(srgb_decode(out.rgb), out.a);
    }
    return out;
}
