// The viewer's frame cache -> window surface, texel for pixel (engine/viewer/window.py).
//
// The composited scene is kept in a texture the size of the window and only redrawn
// when the data, the time or the view changes; frames that only update the panels
// (hover readout, widgets) copy it with this pass. textureLoad, no sampler: the bytes
// arrive unchanged when source and target views share a format.

@group(0) @binding(0) var frame: texture_2d<f32>;

#include "common.wgsl"  // vertex stage: vs_fullscreen

@fragment
fn fs_main(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    return textureLoad(frame, vec2<i32>(pos.xy), 0);
}
