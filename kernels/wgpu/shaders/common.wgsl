// Shared by every shader (included with `#include "common.wgsl"`, see kernels/wgpu/wgsl.py):
// the display-value rules of the contract (§3, §4) and the fullscreen triangle. The
// Python (kernels/layers.py) and CUDA (kernels/cuda/pixelrun_common.cuh) copies are the
// same formulas in their own languages.

// display value -> byte: floor(clamp(t, 0, 1) * 255 + 0.5)
fn q(t: f32) -> u32 {
    return u32(floor(clamp(t, 0.0, 1.0) * 255.0 + 0.5));
}

// q of each channel
fn q4(t: vec4<f32>) -> vec4<u32> {
    return vec4<u32>(q(t.x), q(t.y), q(t.z), q(t.w));
}

// bytes -> one RGBA8 word, R in the low byte (rgba8unorm's memory order)
fn pack_rgba(b: vec4<u32>) -> u32 {
    return b.x | (b.y << 8u) | (b.z << 16u) | (b.w << 24u);
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

// One triangle covering the whole target (draw 3 vertices, no buffers).
@vertex
fn vs_fullscreen(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    let p = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    return vec4<f32>(p * 2.0 - 1.0, 0.0, 1.0);
}
