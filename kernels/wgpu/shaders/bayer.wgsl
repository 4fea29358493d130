// Bayer mosaics (contract §2): each pixel keeps its own sample; each missing colour is the
// mean of that colour's samples in the 3x3 neighbourhood cut to the image; samples are
// linear light, so the byte is q(srgb_encode(mean / max)), max 255 for 8-bit mosaics and
// 65535 for 16-bit ones (little-endian samples, SAMPLE_BYTES 2). Rows are
// params.row_stride bytes apart (padded rows are skipped). A colour with no sample in
// the neighbourhood (only when W or H is 1) is 0, as in the reference.
// The 2x2 tile's colours come from kernels/formats.py as a uniform.
// Output: packed RGBA8 words (R in the low byte), PX pixels per invocation along x, rows
// out_stride words apart; wgsl_convert.py copies them into the tile's rgba8unorm texture.

#include "common.wgsl"

#struct BayerParams

@group(0) @binding(0) var<uniform> params: BayerParams;
@group(0) @binding(1) var<storage, read> raw: array<u32>;
@group(0) @binding(4) var<storage, read_write> out_buf: array<u32>;

override SAMPLE_BYTES: u32 = 1u; // 1: 8-bit mosaic, 2: 16-bit little-endian (a pipeline constant)

// pixels per invocation (wgsl_convert.py's _DECODE_PX): divides 64, so an invocation's
// words never cross a row; at most 4, so row_bytes' 4 words hold the PX + 2 columns
// (at most 12 bytes, starting anywhere in the first word)
const PX: u32 = 4u;
const PX2: u32 = PX + 2u; // columns of their neighbourhoods

// The row's samples x - 1 .. x + PX: the 4 words that hold their bytes, and the first
// byte's position in the first word (indices clamped to the buffer: bytes outside the
// image are never used).
struct RowBytes { w0: u32, w1: u32, w2: u32, w3: u32, sh: u32, }

fn row_bytes(ny: i32, x: i32, row_ok: bool, last: i32) -> RowBytes {
    let a0 = select(0, ny * i32(params.row_stride) + (x - 1) * i32(SAMPLE_BYTES), row_ok); // >= -2
    let wi = (a0 + 4) / 4 - 1;                   // floor(a0 / 4), >= -1
    return RowBytes(raw[u32(clamp(wi, 0, last))], raw[u32(clamp(wi + 1, 0, last))],
                    raw[u32(clamp(wi + 2, 0, last))], raw[u32(clamp(wi + 3, 0, last))], u32(a0 - 4 * wi));
}

fn byte_of(r: RowBytes, j: u32) -> u32 {
    let k = r.sh + j;
    let word = select(select(select(r.w3, r.w2, k < 12u), r.w1, k < 8u), r.w0, k < 4u);
    return (word >> ((k & 3u) * 8u)) & 0xffu;
}

// Sample j (0 = column x - 1) of the row: one byte, or two little-endian bytes.
fn sample_of(r: RowBytes, j: u32) -> u32 {
    if (SAMPLE_BYTES == 2u) {
        return byte_of(r, 2u * j) | (byte_of(r, 2u * j + 1u) << 8u);
    }
    return byte_of(r, j);
}

// Invocation (gx, gy) writes pixels PX gx .. PX gx + PX - 1 of tile row gy. out_stride is a
// multiple of 64 >= tw, so those words always lie in the row: pixels past the tile's or
// the image's edge land in the row padding, which the copy to the texture skips.
//
// The PX pixels share their neighbourhoods: the PX + 2 columns x - 1 .. x + PX are read
// once. In a 3x3 neighbourhood the colour of a sample depends only on whether its row is
// the middle one and whether its column is the middle one (parities), so each column keeps
// two sums (rows y - 1 and y + 1 together; row y) with their counts, and a pixel adds its
// 4 classes into the colour channels. Every sum is of whole numbers below 2^24, so it is
// exact in f32 whatever the order of the additions: the bytes are those of the per-pixel
// 3x3 loop.
@compute @workgroup_size(16, 4)
fn decode(@builtin(global_invocation_id) gid: vec3<u32>) {
    let P = params;
    let lx = gid.x * PX;
    if (lx >= P.tw || gid.y >= P.th) { return; }
    let x = i32(P.x0 + lx);
    let y = i32(P.y0 + gid.y);
    let w = i32(P.width);
    let h = i32(P.height);
    let o = gid.y * P.out_stride + lx;
    let channel = vec3<u32>(0u, 1u, 2u);
    let last = i32(arrayLength(&raw)) - 1;
    let up_ok = y >= 1;
    let dn_ok = y + 1 < h;
    let up = row_bytes(y - 1, x, up_ok, last);
    let mid = row_bytes(y, x, true, last);
    let dn = row_bytes(y + 1, x, dn_ok, last);
    var osum: array<f32, PX2>; // rows y - 1 and y + 1
    var ocnt: array<f32, PX2>;
    var msum: array<f32, PX2>; // row y
    var mcnt: array<f32, PX2>;
    for (var j = 0u; j < PX2; j = j + 1u) {
        let nx = x - 1 + i32(j);
        let col_ok = nx >= 0 && nx < w;
        let u_ok = up_ok && col_ok;
        let d_ok = dn_ok && col_ok;
        osum[j] = select(0.0, f32(sample_of(up, j)), u_ok) + select(0.0, f32(sample_of(dn, j)), d_ok);
        ocnt[j] = select(0.0, 1.0, u_ok) + select(0.0, 1.0, d_ok);
        msum[j] = select(0.0, f32(sample_of(mid, j)), col_ok);
        mcnt[j] = select(0.0, 1.0, col_ok);
    }
    let ro = 2u * (u32(y + 1) & 1u); // tile row of rows y - 1, y + 1
    let rm = 2u * (u32(y) & 1u);     // tile row of row y
    for (var i = 0u; i < PX; i = i + 1u) {
        let pc = u32(x + i32(i)) & 1u; // tile column of the middle column
        let ps = 1u - pc;              // ... of the side columns
        let c_os = channel == vec3<u32>(P.tile[ps + ro]); // the 4 classes' colours
        let c_oc = channel == vec3<u32>(P.tile[pc + ro]);
        let c_ms = channel == vec3<u32>(P.tile[ps + rm]);
        let c_mc = channel == vec3<u32>(P.tile[pc + rm]);
        let z = vec3<f32>(0.0);
        let sum = select(z, vec3<f32>(osum[i] + osum[i + 2u]), c_os)
                + select(z, vec3<f32>(osum[i + 1u]), c_oc)
                + select(z, vec3<f32>(msum[i] + msum[i + 2u]), c_ms)
                + select(z, vec3<f32>(msum[i + 1u]), c_mc);
        let cnt = select(z, vec3<f32>(ocnt[i] + ocnt[i + 2u]), c_os)
                + select(z, vec3<f32>(ocnt[i + 1u]), c_oc)
                + select(z, vec3<f32>(mcnt[i] + mcnt[i + 2u]), c_ms)
                + select(z, vec3<f32>(mcnt[i + 1u]), c_mc);
        var mean = select(vec3<f32>(0.0), sum / max(cnt, vec3<f32>(1.0)), cnt > vec3<f32>(0.0));
        // each pixel keeps its own sample
        mean = select(mean, vec3<f32>(f32(sample_of(mid, i + 1u))), c_mc);
        let sample_max = select(255.0, 65535.0, SAMPLE_BYTES == 2u);
        out_buf[o + i] = pack_rgba(q4(vec4<f32>(srgb_encode(mean / sample_max), 1.0)));
    }
}
