// Colour images (contract §3): ColorModel x ChannelDatatype -> display RGBA8.
//
// The raw bytes are bound as they are (array<u32>, upload padded to 4 bytes); every
// sample is read by byte address, so RGB is never padded on the CPU. Three entry
// points share the sample readers:
//   reduce_partial: per-workgroup min/max of the finite colour samples (alpha excluded)
//   reduce_final:   one workgroup folds the partials and applies contract §3.1's range rule,
//                   writing `range_buf` on the device (no CPU round trip)
//   decode:         PX pixels of a tile row per invocation, writes packed RGBA8 words
//                   (R in the low byte) into a storage buffer, rows out_stride words
//                   apart; wgsl_convert.py copies them into the tile's rgba8unorm texture
// The datatype and channel layout are pipeline-overridable constants (set from
// kernels/formats.py), so every format gets a specialised pipeline.
//
// 64-bit values are kept as vec2<u32>(low word, high word), two's complement.
// NaN/Inf are detected on the bits: WGSL implementations may assume floats are finite.

override DT_BYTES: u32 = 1u;     // 1, 2, 4 or 8
override DT_KIND: u32 = 0u;      // 0 unsigned int, 1 signed int, 2 float
override CHANNELS: u32 = 1u;     // samples per pixel
override NCOLOR: u32 = 1u;       // colour channels are 0..NCOLOR-1 (1 for L, 3 otherwise)
override RI: u32 = 0u;           // index of R, G, B within a pixel
override GI: u32 = 0u;
override BI: u32 = 0u;
override AI: i32 = -1;           // index of alpha, -1 when there is none

const MODE_EXACT_INT: u32 = 0u;  // <=16-bit ints: floor((510 d + s) / (2 s)), exact
const MODE_INT64_DIFF: u32 = 1u; // >16-bit ints: exact 64-bit v - lo, then f32 divide
const MODE_FLOAT: u32 = 2u;      // (v - lo_f) / (hi_f - lo_f) in f32
const MODE_THRESHOLDS: u32 = 3u; // explicit integer range: count thresholds <= v
const MODE_CONSTANT: u32 = 4u;   // auto range of a constant float image: t = 0.5
const MODE_ON_DEVICE: u32 = 255u; // MODE: range_buf.mode decides (float auto ranges)
// The decode pipeline's mode when the CPU knows it (explicit ranges, integer types): the
// same value range_buf.mode holds, as a constant, so the decode has no branches on it
// (much faster on CPU drivers such as lavapipe).
override MODE: u32 = MODE_ON_DEVICE;

#include "common.wgsl"

#struct ColorParams

#struct Range

@group(0) @binding(0) var<uniform> params: ColorParams;
@group(0) @binding(1) var<storage, read> raw: array<u32>;
@group(0) @binding(2) var<storage, read_write> range_buf: Range;
@group(0) @binding(3) var<storage, read_write> partials: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> out_buf: array<u32>;

const PX: u32 = 4u; // decode: pixels per invocation (wgsl_convert.py's _DECODE_PX)

// sample readers (byte_at, read_int, read_float_bits, f64/int -> f32): shared with table.wgsl
#include "samples.wgsl"

// Order-preserving keys: min/max of keys is min/max of values, for every datatype.
fn key_less(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y < b.y || (a.y == b.y && a.x < b.x);
}

fn int_key(v: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(v.x, v.y ^ select(0u, 0x80000000u, DT_KIND == 1u));
}

fn float_key(bits: u32) -> vec2<u32> {
    let k = select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
    return vec2<u32>(k, 0u);
}

// float64 bits (low, high word) -> order-preserving 64-bit key, and back.
fn f64_key(w: vec2<u32>) -> vec2<u32> {
    if ((w.y & 0x80000000u) != 0u) { return ~w; }
    return vec2<u32>(w.x, w.y | 0x80000000u);
}

fn key_to_f64(k: vec2<u32>) -> vec2<u32> {
    if ((k.y & 0x80000000u) != 0u) { return vec2<u32>(k.x, k.y ^ 0x80000000u); }
    return ~k;
}

const KEY64_NEG_ZERO: vec2<u32> = vec2<u32>(0xffffffffu, 0x7fffffffu); // key of -0.0
const KEY64_ONE: vec2<u32> = vec2<u32>(0u, 0xbff00000u);   // key of 1.0 (0x3ff00000 00000000)
const KEY64_255: vec2<u32> = vec2<u32>(0u, 0xc06fe000u);   // key of 255.0 (0x406fe000 00000000)

fn key_to_float(k: vec2<u32>) -> f32 {
    let bits = select(~k.x, k.x ^ 0x80000000u, (k.x & 0x80000000u) != 0u);
    return bitcast<f32>(bits);
}

// ------------------------------------------------------------------ reduction

const WG: u32 = 256u;
const NO_MIN: vec2<u32> = vec2<u32>(0xffffffffu, 0xffffffffu);
const NO_MAX: vec2<u32> = vec2<u32>(0u, 0u);

var<workgroup> s_min: array<vec2<u32>, 256>;
var<workgroup> s_max: array<vec2<u32>, 256>;

fn fold_workgroup(lid: u32, mn_in: vec2<u32>, mx_in: vec2<u32>) {
    s_min[lid] = mn_in;
    s_max[lid] = mx_in;
    workgroupBarrier();
    var stride = WG / 2u;
    loop {
        if (stride == 0u) { break; }
        if (lid < stride) {
            if (key_less(s_min[lid + stride], s_min[lid])) { s_min[lid] = s_min[lid + stride]; }
            if (key_less(s_max[lid], s_max[lid + stride])) { s_max[lid] = s_max[lid + stride]; }
        }
        workgroupBarrier();
        stride = stride / 2u;
    }
}

@compute @workgroup_size(256)
fn reduce_partial(@builtin(local_invocation_id) lid3: vec3<u32>,
                  @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let lid = lid3.x;
    let n = params.width * params.height;
    let total = nwg.x * WG;
    var mn = NO_MIN;
    var mx = NO_MAX;
    var any = false;
    for (var p = wid.x * WG + lid; p < n; p = p + total) {
        for (var c = 0u; c < NCOLOR; c = c + 1u) {
            let a = sample_addr(p, c);
            var k: vec2<u32>;
            if (DT_KIND == 2u && DT_BYTES == 8u) {
                let w = read_u64(a);
                if (!f64_finite(w.y)) { continue; }
                k = f64_key(w);
            } else if (DT_KIND == 2u) {
                let bits = read_float_bits(a, 0);
                if (!bits_finite(bits)) { continue; }
                k = float_key(bits);
            } else {
                k = int_key(read_int(a));
            }
            if (!any || key_less(k, mn)) { mn = k; }
            if (!any || key_less(mx, k)) { mx = k; }
            any = true;
        }
    }
    fold_workgroup(lid, mn, mx);
    if (lid == 0u) {
        partials[wid.x] = vec4<u32>(s_min[0], s_max[0]);
    }
}

@compute @workgroup_size(256)
fn reduce_final(@builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    var mn = NO_MIN;
    var mx = NO_MAX;
    for (var i = lid; i < params.n_partials; i = i + WG) {
        let p = partials[i];
        if (key_less(p.xy, mn)) { mn = p.xy; }
        if (key_less(mx, p.zw)) { mx = p.zw; }
    }
    fold_workgroup(lid, mn, mx);
    if (lid != 0u) { return; }
    mn = s_min[0];
    mx = s_max[0];
    var r: Range;
    r.lo = vec2<u32>(0u, 0u);
    r.span = vec2<u32>(0u, 0u);
    r.lo_f = 0.0;
    r.hi_f = 1.0;
    r.shift = 0;
    if (DT_KIND == 2u && DT_BYTES == 8u) {
        // float64: the rule is decided on exact 64-bit keys, then lo/hi are narrowed
        // with a shared power-of-two scale so any finite magnitude fits f32
        r.mode = MODE_FLOAT;
        if (!key_less(mx, mn)) {
            let nonneg = !key_less(mn, KEY64_NEG_ZERO);
            if (nonneg && !key_less(KEY64_ONE, mx)) {
                r.lo_f = 0.0; r.hi_f = 1.0;
            } else if (nonneg && !key_less(KEY64_255, mx)) {
                r.lo_f = 0.0; r.hi_f = 255.0;
            } else if (mn.x == mx.x && mn.y == mx.y) {
                r.mode = MODE_CONSTANT;
            } else {
                let vmn = key_to_f64(mn);
                let vmx = key_to_f64(mx);
                let e = max((vmn.y >> 20u) & 0x7ffu, (vmx.y >> 20u) & 0x7ffu);
                r.shift = i32(e) - 1023 - 64; // largest magnitude becomes about 2^64
                r.lo_f = bitcast<f32>(f64_to_f32_bits(vmn.x, vmn.y, r.shift));
                r.hi_f = bitcast<f32>(f64_to_f32_bits(vmx.x, vmx.y, r.shift));
            }
        }
    } else if (DT_KIND == 2u) {
        r.mode = MODE_FLOAT;
        if (!key_less(mx, mn)) { // at least one finite sample (else [0, 1])
            let fmn = key_to_float(mn);
            let fmx = key_to_float(mx);
            if (fmn >= 0.0 && fmx <= 1.0) {
                r.lo_f = 0.0; r.hi_f = 1.0;
            } else if (fmn >= 0.0 && fmx <= 255.0) {
                r.lo_f = 0.0; r.hi_f = 255.0;
            } else if (fmn == fmx) {
                r.mode = MODE_CONSTANT; // [v-1, v+1]: every finite sample is at 0.5
            } else {
                r.lo_f = fmn; r.hi_f = fmx;
            }
        }
    } else {
        // keys back to values
        let vmn = vec2<u32>(mn.x, mn.y ^ select(0u, 0x80000000u, DT_KIND == 1u));
        let vmx = vec2<u32>(mx.x, mx.y ^ select(0u, 0x80000000u, DT_KIND == 1u));
        let mn_neg = DT_KIND == 1u && (vmn.y & 0x80000000u) != 0u;
        r.mode = select(MODE_INT64_DIFF, MODE_EXACT_INT, DT_BYTES <= 2u);
        if (!mn_neg && vmx.y == 0u && vmx.x <= 255u) {
            r.lo = vec2<u32>(0u, 0u);
            r.span = vec2<u32>(255u, 0u);
        } else if (vmn.x == vmx.x && vmn.y == vmx.y) {
            r.lo = sub64(vmn, vec2<u32>(1u, 0u));
            r.span = vec2<u32>(2u, 0u);
        } else {
            r.lo = vmn;
            r.span = sub64(vmx, vmn);
        }
    }
    range_buf = r;
}

// ------------------------------------------------------------------ decode

// floor(n / den) for the exact formulas below (den = 2 s with s <= 65535, n <= 511 s, so
// the quotient is <= 255 and (quotient + 1) den fits u32) without a per-pixel integer
// division (slow on CPU drivers): the f32 estimate is off by at most one, and one exact
// integer check each way fixes it (checked against n / den for every s at every byte
// boundary, on lavapipe and llvmpipe).
fn div_exact(n: u32, den: u32) -> u32 {
    var b = u32(f32(n) * (1.0 / f32(den)));
    if (b * den > n) { b = b - 1u; }
    if ((b + 1u) * den <= n) { b = b + 1u; }
    return b;
}

fn threshold_count(v: i32) -> u32 {
    var n = 0u;
    for (var step = 128u; step > 0u; step = step / 2u) {
        let k = n + step; // candidate count; its threshold is thresholds[k - 1]
        if (k <= 255u) {
            let t = params.thresholds[(k - 1u) / 4u][(k - 1u) % 4u];
            if (t <= v) { n = k; }
        }
    }
    return n;
}

// Ranges with |lo| or |hi| above 2^100 are worked on scaled by 2^-64 (exact: a power of
// two), so that hi - lo cannot overflow f32 (e.g. [-1e38, 1e38]) and the divisor stays far
// inside [2^-126, 2^126], where WGSL's division is accurate: GPUs divide as x * (1 / y),
// and 1 / y for y > 2^126 is a denormal that NVIDIA's Vulkan driver flushes to zero
// (every pixel of such an image came out 0 there). Samples that underflow to 0 on the
// way are below the range's resolution anyway.
const PRESCALE_ABOVE: f32 = 0x1p100f;
const PRESCALE: f32 = 0x1p-64f;

fn scale_float(v: f32, r: Range) -> f32 {
    if (max(abs(r.lo_f), abs(r.hi_f)) > PRESCALE_ABOVE) { // uniform: the same branch for every pixel
        return (v * PRESCALE - r.lo_f * PRESCALE) / (r.hi_f * PRESCALE - r.lo_f * PRESCALE);
    }
    return (v - r.lo_f) / (r.hi_f - r.lo_f);
}

// One colour channel -> byte; `ok` is false for NaN/Inf.
struct Chan { byte: u32, ok: bool, }

fn colour_byte(a: u32, r: Range) -> Chan {
    if (DT_KIND == 2u) {
        let bits = read_float_bits(a, r.shift);
        if (!bits_finite(bits)) { return Chan(0u, false); }
        if (r.mode == MODE_CONSTANT) { return Chan(128u, true); }
        return Chan(q(scale_float(bitcast<f32>(bits), r)), true);
    }
    let v = read_int(a);
    if (r.mode == MODE_EXACT_INT) {
        let span = r.span.x;
        let d = u32(clamp(bitcast<i32>(v.x) - bitcast<i32>(r.lo.x), 0, i32(span)));
        return Chan(div_exact(510u * d + span, 2u * span), true);
    } else if (r.mode == MODE_THRESHOLDS) {
        return Chan(threshold_count(bitcast<i32>(v.x)), true);
    } else if (r.mode == MODE_INT64_DIFF) {
        return Chan(q(u64_to_f32(sub64(v, r.lo)) / u64_to_f32(r.span)), true);
    }
    return Chan(q(scale_float(int_to_f32(v), r)), true);
}

fn alpha_byte(a: u32) -> u32 {
    if (DT_KIND == 2u) {
        let bits = read_float_bits(a, 0);
        if (!bits_finite(bits)) {
            // NaN -> 0, +Inf -> 255, -Inf -> 0 (as the reference's q)
            let is_nan = (bits & 0x7fffffu) != 0u;
            return select(select(255u, 0u, (bits & 0x80000000u) != 0u), 0u, is_nan);
        }
        return q(bitcast<f32>(bits));
    }
    let v = read_int(a);
    if (DT_BYTES <= 2u) {
        let m = params.alpha_max_u;
        let d = u32(max(bitcast<i32>(v.x), 0));
        return div_exact(510u * d + m, 2u * m);
    }
    if (DT_KIND == 1u && (v.y & 0x80000000u) != 0u) { return 0u; }
    return q(u64_to_f32(v) / params.alpha_max_f);
}

fn pixel(p: u32, r: Range) -> u32 {
    let cr = colour_byte(sample_addr(p, RI), r);
    var rgb = vec3<u32>(cr.byte, cr.byte, cr.byte);
    var ok = cr.ok;
    if (NCOLOR == 3u) {
        let cg = colour_byte(sample_addr(p, GI), r);
        let cb = colour_byte(sample_addr(p, BI), r);
        rgb = vec3<u32>(cr.byte, cg.byte, cb.byte);
        ok = ok && cg.ok && cb.ok;
    }
    var rgba = vec4<u32>(255u, 0u, 255u, 255u); // contract §3.4: NaN/Inf -> magenta
    if (ok) {
        var alpha = 255u;
        if (AI >= 0) { alpha = alpha_byte(sample_addr(p, u32(AI))); }
        rgba = vec4<u32>(rgb, alpha);
    }
    return pack_rgba(rgba);
}

// Invocation (gx, gy) writes pixels PX gx .. PX gx + PX - 1 of tile row gy. out_stride is a
// multiple of 64 >= tw, so those words always lie in the row: pixels past the tile's edge
// land in the row padding, which the copy to the texture skips (their x is clamped to the
// image so every read stays in range).
#include "level.wgsl"

@compute @workgroup_size(16, 4)
fn decode(@builtin(global_invocation_id) gid: vec3<u32>) {
    let run = level_run(gid);
    if (!run.inside) { return; }
    var r = range_buf;
    if (MODE != MODE_ON_DEVICE) { r.mode = MODE; }
    for (var i = 0u; i < PX; i = i + 1u) {
        out_buf[run.out + i] = pixel(run.row + level_x(run.lx + i), r);
    }
}
