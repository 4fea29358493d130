// Sample readers shared by color.wgsl and table.wgsl (included; see kernels/wgpu/wgsl.py).
// The including shader declares `raw` (the image bytes as array<u32>) and the overridable
// constants DT_BYTES, DT_KIND and CHANNELS these read.
//
// 64-bit values are kept as vec2<u32>(low word, high word), two's complement.
// NaN/Inf are detected on the bits: WGSL implementations may assume floats are finite.


// Padded rows and byte order (formats.ImageFormat.row_stride / big_endian), as pipeline
// constants: ROW_STRIDE 0 means tight rows (the address is then the pixel's index times
// the pixel size, with no division); BIG_ENDIAN 1 means every sample's bytes come most
// significant first. The including shader's `params` has the image `width`.
override ROW_STRIDE: u32 = 0u;
override BIG_ENDIAN: u32 = 0u;

fn byte_at(a: u32) -> u32 {
    return (raw[a >> 2u] >> ((a & 3u) * 8u)) & 0xffu;
}

fn sample_addr(pixel: u32, c: u32) -> u32 {
    if (ROW_STRIDE == 0u) {
        return (pixel * CHANNELS + c) * DT_BYTES;
    }
    let y = pixel / params.width;
    return y * ROW_STRIDE + ((pixel - y * params.width) * CHANNELS + c) * DT_BYTES;
}

fn swap16(v: u32) -> u32 {
    return ((v & 0xffu) << 8u) | (v >> 8u);
}

fn swap32(v: u32) -> u32 {
    return (v << 24u) | ((v & 0xff00u) << 8u) | ((v >> 8u) & 0xff00u) | (v >> 24u);
}

// The 16-bit sample at a (2-byte aligned), in native order.
fn read_u16(a: u32) -> u32 {
    let v = (raw[a >> 2u] >> ((a & 2u) * 8u)) & 0xffffu;
    return select(v, swap16(v), BIG_ENDIAN != 0u);
}

// The 32-bit sample at a (4-byte aligned), in native order.
fn read_u32(a: u32) -> u32 {
    return select(raw[a >> 2u], swap32(raw[a >> 2u]), BIG_ENDIAN != 0u);
}

// The 64-bit sample at a as (low word, high word).
fn read_u64(a: u32) -> vec2<u32> {
    if (BIG_ENDIAN != 0u) {
        return vec2<u32>(swap32(raw[(a >> 2u) + 1u]), swap32(raw[a >> 2u]));
    }
    return vec2<u32>(raw[a >> 2u], raw[(a >> 2u) + 1u]);
}

// An integer sample widened to 64-bit two's complement.
fn read_int(a: u32) -> vec2<u32> {
    var lo: u32;
    if (DT_BYTES == 1u) {
        lo = byte_at(a);
        if (DT_KIND == 1u) { lo = bitcast<u32>(bitcast<i32>(lo << 24u) >> 24u); }
    } else if (DT_BYTES == 2u) {
        lo = read_u16(a);
        if (DT_KIND == 1u) { lo = bitcast<u32>(bitcast<i32>(lo << 16u) >> 16u); }
    } else if (DT_BYTES == 4u) {
        lo = read_u32(a);
    } else {
        return read_u64(a);
    }
    var hi = 0u;
    if (DT_KIND == 1u && bitcast<i32>(lo) < 0) { hi = 0xffffffffu; }
    return vec2<u32>(lo, hi);
}

const F32_MAX_BITS: u32 = 0x7f7fffffu;

// float64 bits of v -> float32 bits of v * 2^-shift, round to nearest even. The shift
// (a power of two shared by the whole image, from its largest magnitude) keeps huge
// or tiny float64 images inside f32's range; finite values still beyond it saturate
// to +-max (they stay finite, as in the float64 reference); values below f32's normal
// range become zero.
fn f64_to_f32_bits(w0: u32, w1: u32, shift: i32) -> u32 {
    let sign = w1 & 0x80000000u;
    let e = (w1 >> 20u) & 0x7ffu;
    if (e == 0x7ffu) { // Inf / NaN: keep the class
        let mant_nonzero = ((w1 & 0xfffffu) | w0) != 0u;
        return sign | 0x7f800000u | select(0u, 0x400000u, mant_nonzero);
    }
    let e32 = i32(e) - 896 - shift; // -1023 + 127
    if (e32 <= 0) { return sign; }
    if (e32 >= 255) { return sign | F32_MAX_BITS; }
    let m23 = ((w1 & 0xfffffu) << 3u) | (w0 >> 29u);
    let rest = w0 & 0x1fffffffu;
    var bits = (u32(e32) << 23u) | m23;
    if (rest > 0x10000000u || (rest == 0x10000000u && (m23 & 1u) == 1u)) { bits = bits + 1u; }
    if (bits >= 0x7f800000u) { bits = F32_MAX_BITS; }
    return sign | bits;
}

// A float sample's f32 bits (F16 and F64 converted here, on the device; F64 scaled by
// 2^-shift).
fn read_float_bits(a: u32, shift: i32) -> u32 {
    if (DT_BYTES == 2u) {
        let h = read_u16(a);
        if ((h & 0x7c00u) == 0x7c00u) { // keep Inf/NaN explicit, whatever unpack does
            return ((h & 0x8000u) << 16u) | 0x7f800000u | select(0u, 0x400000u, (h & 0x3ffu) != 0u);
        }
        return bitcast<u32>(unpack2x16float(h).x);
    } else if (DT_BYTES == 4u) {
        return read_u32(a);
    }
    let w = read_u64(a);
    return f64_to_f32_bits(w.x, w.y, shift);
}

fn f64_finite(w1: u32) -> bool {
    return (w1 & 0x7ff00000u) != 0x7ff00000u;
}

fn bits_finite(b: u32) -> bool {
    return (b & 0x7f800000u) != 0x7f800000u;
}

// ------------------------------------------------------------------ 64-bit helpers

fn sub64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let borrow = select(0u, 1u, a.x < b.x);
    return vec2<u32>(a.x - b.x, a.y - b.y - borrow);
}

fn u64_to_f32(a: vec2<u32>) -> f32 {
    return f32(a.y) * 4294967296.0 + f32(a.x);
}

fn int_to_f32(v: vec2<u32>) -> f32 {
    if (DT_KIND == 1u && (v.y & 0x80000000u) != 0u) {
        return -u64_to_f32(sub64(vec2<u32>(0u, 0u), v));
    }
    return u64_to_f32(v);
}

