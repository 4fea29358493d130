// One-channel images through a table (contract §8): depth, colormapped images and
// segmentation. kernels/table_plan.py chooses the mode and builds `table` (packed RGBA8
// words, R in the low byte) on the host, from the reference's own mapping:
//   MODE_PALETTE: <=16-bit ints: table holds every value of the type: table[v - base]
//   MODE_FLOAT:   t = (v - lo) * inv_span in f32 (NaN -> 0, +-Inf clamp) -> colormap table
//   MODE_IDS:     wider ints / floats, segmentation: table[id] for 0 <= id < n, else transparent
// The decode writes PX pixels of a tile row per invocation into out_buf, as color.wgsl does.

override DT_BYTES: u32 = 1u;     // 1, 2, 4 or 8
override DT_KIND: u32 = 0u;      // 0 unsigned int, 1 signed int, 2 float
override CHANNELS: u32 = 1u;     // always 1 here; samples.wgsl reads it
override MODE: u32 = 0u;

const MODE_PALETTE: u32 = 0u;
const MODE_FLOAT: u32 = 1u;
const MODE_IDS: u32 = 2u;

#include "common.wgsl"

#struct TableParams

@group(0) @binding(0) var<uniform> params: TableParams;
@group(0) @binding(1) var<storage, read> raw: array<u32>;
// read_write only to match the converter's shared bind-group layout; never written
@group(0) @binding(2) var<storage, read_write> table: array<u32>;
@group(0) @binding(4) var<storage, read_write> out_buf: array<u32>;

#include "samples.wgsl"

const PX: u32 = 4u; // pixels per invocation (convert.py's _DECODE_PX)

// f32 bits of a float sample, or of an integer sample converted to f32.
fn sample_f32_bits(a: u32) -> u32 {
    if (DT_KIND == 2u) {
        return read_float_bits(a, 0);
    }
    return bitcast<u32>(int_to_f32(read_int(a)));
}

fn lookup(p: u32) -> u32 {
    let a = sample_addr(p, 0u);
    if (MODE == MODE_PALETTE) {
        let v = bitcast<i32>(read_int(a).x);
        return table[u32(v - params.first)];
    }
    if (MODE == MODE_IDS) {
        if (DT_KIND != 2u) {
            let v = read_int(a);
            if (v.y != 0u || v.x >= params.n) { return 0u; }
            return table[v.x];
        }
        let b = read_float_bits(a, 0);
        if (!bits_finite(b)) { return 0u; }
        let id = floor(bitcast<f32>(b) + 0.5);
        if (id < 0.0 || id >= f32(params.n)) { return 0u; }
        return table[u32(id)];
    }
    // MODE_FLOAT
    let b = sample_f32_bits(a);
    var t = 0.0;
    if (!bits_finite(b)) {
        // NaN -> t = 0; +Inf -> 1, -Inf -> 0 (clamped, as Rerun shows them)
        let is_nan = (b & 0x7fffffu) != 0u;
        if (!is_nan && (b & 0x80000000u) == 0u && params.inv_span != 0.0) { t = 1.0; }
    } else {
        t = clamp((bitcast<f32>(b) - params.lo) * params.inv_span, 0.0, 1.0);
    }
    let idx = u32(floor(t * f32(params.n - 1u) + 0.5));
    return table[min(idx, params.n - 1u)];
}

#include "level.wgsl"

@compute @workgroup_size(16, 4)
fn decode(@builtin(global_invocation_id) gid: vec3<u32>) {
    let run = level_run(gid);
    if (!run.inside) { return; }
    for (var i = 0u; i < PX; i = i + 1u) {
        out_buf[run.out + i] = lookup(run.row + level_x(run.lx + i));
    }
}
