"""The hover tooltip's data: every layer under the cursor, in its own terms.

NV12 samples are found by hand from the NV12 layout (contract §2); depth is the raw u16
and raw / meter in metres; segmentation is the class id, its label and its class colour.
"""

from __future__ import annotations

import numpy as np

from pixelrun.engine.viewer.inspect import default_depth_meter, inspect_layer, pixel_value_labels, readouts_at
from pixelrun.kernels.formats import ImageFormat, PixelFormat
from pixelrun.kernels.layers import Layer, LayerKind

W, H = 8, 6


def nv12_layer(entity="/cam/rgb") -> Layer:
    fmt = ImageFormat(W, H, pixel_format=PixelFormat.NV12)
    buf = np.random.default_rng(3).integers(0, 256, fmt.byte_count(), dtype=np.uint8)
    return Layer(entity, 1, buf, fmt)


def depth_layer(entity="/cam/depth") -> Layer:
    depth = (np.arange(W * H, dtype=np.uint16) * 700).reshape(H, W)
    fmt = ImageFormat(W, H, color_model="L", channel_datatype="U16")
    return Layer(entity, 2, depth.reshape(-1).view(np.uint8), fmt, draw_order=-20.0, kind=LayerKind.DEPTH)


def seg_layer(entity="/cam/seg") -> Layer:
    ids = np.zeros((H, W), np.uint8)
    ids[2:4, 3:6] = 2
    ids[5, 7] = 9  # past the colour table: transparent
    colors = np.array([[0, 0, 0, 0], [255, 0, 0, 255], [0, 200, 50, 128]], np.uint8)
    fmt = ImageFormat(W, H, color_model="L", channel_datatype="U8")
    return Layer(entity, 3, ids.reshape(-1), fmt, draw_order=0.0, kind=LayerKind.SEGMENTATION,
                 class_colors=colors, class_colors_key=7)


def test_nv12_readout_has_y_u_v_from_the_layout():
    layer = nv12_layer()
    buf = layer.buffer
    x, y = 5, 3
    ro = inspect_layer(layer, x, y)
    uv = W * H + (y // 2) * W + (x // 2) * 2
    assert ro.raw == (("Y", int(buf[y * W + x])), ("U", int(buf[uv])), ("V", int(buf[uv + 1])))
    assert ro.display is not None and ro.display[3] == 255
    assert "NV12" in ro.text() and "(5, 3)" in ro.text()


def test_depth_readout_gives_raw_u16_and_metres():
    layer = depth_layer()
    x, y = 6, 3
    raw = (y * W + x) * 700  # 21000
    ro = inspect_layer(layer, x, y, meter=1000.0)
    assert ro.raw == (("depth", raw),)
    assert ro.extra == (("metres", "21 m"),)
    assert ro.kind == "depth L/U16"
    ro = inspect_layer(layer, x, y, meter=10000.0)
    assert ro.extra == (("metres", "2.1 m"),)
    # no meter logged: Rerun's default for integer depth is millimetres
    assert default_depth_meter(layer.format) == 1000.0
    assert inspect_layer(layer, x, y).extra == (("metres", "21 m"),)
    # the display colour is what the caller says the renderer decoded
    ro = inspect_layer(layer, x, y, display_of=lambda l, xx, yy: (xx, yy, 7, 255))
    assert ro.display == (6, 3, 7, 255)


def test_segmentation_readout_gives_class_label_and_class_colour():
    layer = seg_layer()
    labels = {1: "person", 2: "car"}
    ro = inspect_layer(layer, 4, 3, labels=labels)
    assert ro.raw == (("class", 2),)
    assert ro.extra == (("label", "car"),)
    assert ro.display == (0, 200, 50, 128)
    ro = inspect_layer(layer, 0, 0, labels=labels)
    assert ro.raw == (("class", 0),) and ro.extra == (("label", "(no label)"),) and ro.display == (0, 0, 0, 0)
    ro = inspect_layer(layer, 7, 5, labels=labels)
    assert ro.raw == (("class", 9),) and ro.display == (0, 0, 0, 0)  # past the table: transparent


def test_every_layer_under_the_cursor_is_listed_topmost_first():
    layers = [depth_layer(), nv12_layer(), seg_layer()]  # draw order: depth, image, segmentation
    ros = readouts_at(layers, 4, 3, meters={"/cam/depth": 1000.0}, labels={"/cam/seg": {2: "car"}})
    assert [r.entity for r in ros] == ["/cam/seg", "/cam/rgb", "/cam/depth"]
    assert ros[0].extra == (("label", "car"),)
    assert ros[2].raw == (("depth", (3 * W + 4) * 700),)
    # outside every layer: nothing
    assert readouts_at(layers, W, 0) == []


def test_pinned_range_is_what_the_readout_displays():
    ramp = np.array([[0, 1000, 2000, 4000]], np.uint16)
    fmt = ImageFormat(4, 1, color_model="L", channel_datatype="U16")
    layer = Layer("/g", 9, ramp.reshape(-1).view(np.uint8), fmt)
    auto = inspect_layer(layer, 1, 0)  # auto range 0..4000: 1000 is a quarter
    pinned = inspect_layer(Layer("/g", 9, layer.buffer, fmt, value_range=(0.0, 2000.0)), 1, 0)  # half
    assert auto.display[0] < pinned.display[0]
    assert pinned.raw == auto.raw == (("L", 1000),)


def test_pixel_values_for_the_high_zoom_overlay():
    layer = depth_layer()
    cells = pixel_value_labels(layer, 2, 1, 4, 3)
    assert cells == [(2, 1, str(10 * 700)), (3, 1, str(11 * 700)), (2, 2, str(18 * 700)), (3, 2, str(19 * 700))]
    nv = nv12_layer()
    ((x, y, text),) = pixel_value_labels(nv, 5, 3, 6, 4)
    ro = inspect_layer(nv, 5, 3)
    assert text == "\n".join(str(v) for _, v in ro.raw)  # Y, U, V one per line
    assert pixel_value_labels(layer, W, H, W + 3, H + 3) == []  # clipped to the image


def test_value_range_of_a_padded_big_endian_frame():
    """The 'this frame' range button reads the layer's own bytes: padded rows and
    big-endian samples (ROS bags) give the same range as the tight image."""
    from pixelrun.engine.viewer.inspect import ValueRangeCache

    tight = np.array([[100, 2000, 300], [4000, 50, 600]], np.uint16)
    padded = np.zeros((2, 8), np.uint8)  # 6 bytes of samples + 2 of padding per row
    padded[:, :6] = tight.astype(">u2").view(np.uint8).reshape(2, 6)
    fmt = ImageFormat(3, 2, color_model="L", channel_datatype="U16", row_stride=8, big_endian=True)
    assert ValueRangeCache().get(1, padded.reshape(-1), fmt) == (50, 4000)
    layer = Layer("/ros", 1, padded.reshape(-1), fmt, kind=LayerKind.DEPTH)
    assert inspect_layer(layer, 0, 1).raw == (("depth", 4000),)
    assert pixel_value_labels(layer, 1, 0, 3, 1) == [(1, 0, "2000"), (2, 0, "300")]
