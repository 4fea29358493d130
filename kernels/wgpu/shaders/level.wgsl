// Decode straight to reduced level LEVEL, shared by color.wgsl and table.wgsl (included;
// see kernels/wgpu/wgsl.py). Every K-th texel, K = 2^LEVEL: output texel o of the tile is
// source texel min(o K + K/2, tile - 1), composite.wgsl's `reduce` rule, so the pixels
// equal decoding the whole tile and reducing it. 0: one output texel per pixel.
// The including shader declares PX (texels per invocation) and a `params` with the tile
// (x0, y0, tw, th), the image `width` and the output row stride `out_stride` (words).
override LEVEL: u32 = 0u;

// A decode invocation's share: PX output texels from column lx of output row gid.y, written
// from word `out` of out_buf; `row` is the image index of the source row's first pixel.
struct LevelRun {
    inside: bool, // false: the run starts past the tile at LEVEL (nothing to write)
    lx: u32,
    row: u32,
    out: u32,
}

fn level_run(gid: vec3<u32>) -> LevelRun {
    let K = 1u << LEVEL;
    let lx = gid.x * PX;
    let inside = (lx < ((params.tw + K - 1u) >> LEVEL)) && (gid.y < ((params.th + K - 1u) >> LEVEL));
    return LevelRun(inside, lx, level_row(gid.y), gid.y * params.out_stride + lx);
}

// Index in the image of the first pixel of the source row of output row oy.
fn level_row(oy: u32) -> u32 {
    let K = 1u << LEVEL;
    return (params.y0 + min(oy * K + K / 2u, params.th - 1u)) * params.width;
}

// Image column of the source of output column ox, clamped to the tile's last pixel (its
// texture's clamp, as `reduce`).
fn level_x(ox: u32) -> u32 {
    let K = 1u << LEVEL;
    return params.x0 + min(ox * K + K / 2u, params.tw - 1u);
}
