"""rr.DepthImage, SegmentationImage, EncodedImage, AnnotationContext, Image.compress and
Image's magnification_filter / value_range: each constructor's components (values and
Arrow types), checked against values written out here as Rerun 0.41 writes them
(measured from files its SDK wrote; tests/engine/test_image_family_files.py compares
with the real SDK)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image as PILImage

import pixelrun as rr
from pixelrun.batcher import build_column
from pixelrun.engine.rrd.decode import read_rrd

U8_BLOB = pa.list_(pa.field("item", pa.uint8(), nullable=False))
FORMAT = pa.struct([
    pa.field("width", pa.uint32(), nullable=False),
    pa.field("height", pa.uint32(), nullable=False),
    pa.field("pixel_format", pa.uint8()),
    pa.field("color_model", pa.uint8()),
    pa.field("channel_datatype", pa.uint8()),
])
RANGE = pa.list_(pa.field("item", pa.float64(), nullable=False), 2)
INFO = pa.struct([pa.field("id", pa.uint16(), nullable=False), pa.field("label", pa.utf8()),
                  pa.field("color", pa.uint32())])
CONTEXT = pa.list_(pa.field("item", pa.struct([
    pa.field("class_id", pa.uint16(), nullable=False),
    pa.field("class_description", pa.struct([
        pa.field("info", INFO, nullable=False),
        pa.field("keypoint_annotations", pa.list_(pa.field("item", INFO, nullable=False)), nullable=False),
        pa.field("keypoint_connections", pa.list_(pa.field("item", pa.struct([
            pa.field("keypoint0", pa.uint16(), nullable=False),
            pa.field("keypoint1", pa.uint16(), nullable=False)]), nullable=False)), nullable=False),
    ]), nullable=False),
]), nullable=False))

JPEG = b"\xff\xd8\xff\xe0" + bytes(20)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(20)


def _columns(obj) -> dict:
    """column -> (Arrow type of one instance, Python value) as the batcher writes it."""
    out = {}
    for name, value in obj.as_row().items():
        col = build_column(name, [value])
        out[name] = (col.type.value_type, col.to_pylist()[0][0])
    return out


def _fmt(w, h, dt):
    return {"width": w, "height": h, "pixel_format": None, "color_model": None, "channel_datatype": dt}


def test_depth_image_components():
    d = np.array([[0, 1000], [2000, 65535]], dtype=np.uint16)
    cols = _columns(rr.DepthImage(d, meter=1000, colormap="viridis", depth_range=(0.5, 4), point_fill_ratio=0.5,
                                  draw_order=-20, magnification_filter="linear"))
    assert list(cols) == ["DepthImage:buffer", "DepthImage:format", "DepthImage:meter", "DepthImage:colormap",
                          "DepthImage:depth_range", "DepthImage:point_fill_ratio", "DepthImage:draw_order",
                          "DepthImage:magnification_filter"]
    assert cols["DepthImage:buffer"] == (U8_BLOB, [0, 0, 0xE8, 0x03, 0xD0, 0x07, 0xFF, 0xFF])
    assert cols["DepthImage:format"] == (FORMAT, _fmt(2, 2, 8))  # U16 = 8, no color model
    assert cols["DepthImage:meter"] == (pa.float32(), 1000.0)
    assert cols["DepthImage:colormap"] == (pa.uint8(), 6)  # Viridis
    assert cols["DepthImage:depth_range"] == (RANGE, [0.5, 4.0])
    assert cols["DepthImage:point_fill_ratio"] == (pa.float32(), 0.5)
    assert cols["DepthImage:draw_order"] == (pa.float32(), -20.0)
    assert cols["DepthImage:magnification_filter"] == (pa.uint8(), 2)  # Linear


def test_depth_image_defaults_and_input_kinds():
    # Rerun writes only what is given; size-1 axes are squeezed; f32 depth kept as is
    cols = _columns(rr.DepthImage(np.array([[[1.5, 2.5]]], dtype=np.float32)))  # (1, 1, 2) -> 1x2
    assert list(cols) == ["DepthImage:buffer", "DepthImage:format"]
    assert cols["DepthImage:format"][1] == _fmt(2, 1, 34)  # F32 = 34
    assert bytes(cols["DepthImage:buffer"][1]) == np.array([1.5, 2.5], "<f4").tobytes()
    assert _columns(rr.DepthImage(np.zeros((2, 3), np.uint8), colormap=rr.Colormap.Turbo))[
        "DepthImage:colormap"] == (pa.uint8(), 5)


def test_segmentation_image_components():
    cols = _columns(rr.SegmentationImage(np.array([[0, 1, 2]], np.uint8), opacity=0.5, draw_order=1))
    assert cols == {
        "SegmentationImage:buffer": (U8_BLOB, [0, 1, 2]),
        "SegmentationImage:format": (FORMAT, _fmt(3, 1, 6)),  # U8 = 6
        "SegmentationImage:opacity": (pa.float32(), 0.5),
        "SegmentationImage:draw_order": (pa.float32(), 1.0),
    }
    cols = _columns(rr.SegmentationImage(np.array([[300], [7]], np.uint16)))
    assert cols["SegmentationImage:format"][1] == _fmt(1, 2, 8)
    assert cols["SegmentationImage:buffer"][1] == [0x2C, 0x01, 7, 0]


def test_encoded_image_media_type_given_guessed_or_from_the_path(tmp_path):
    cols = _columns(rr.EncodedImage(contents=JPEG, opacity=0.7, draw_order=3, magnification_filter="nearest"))
    assert cols == {
        "EncodedImage:blob": (U8_BLOB, list(JPEG)),
        "EncodedImage:media_type": (pa.utf8(), "image/jpeg"),  # guessed from the magic bytes
        "EncodedImage:opacity": (pa.float32(), pytest.approx(0.7)),
        "EncodedImage:draw_order": (pa.float32(), 3.0),
        "EncodedImage:magnification_filter": (pa.uint8(), 1),
    }
    assert rr.EncodedImage(contents=io.BytesIO(PNG)).media_type == "image/png"
    assert rr.EncodedImage(contents=PNG, media_type="image/x-custom").media_type == "image/x-custom"
    assert rr.EncodedImage(contents=b"GIF89a....").media_type is None  # left to the viewer
    p = tmp_path / "frame.JPG"
    p.write_bytes(PNG)  # the suffix wins over the bytes, as in Rerun
    e = rr.EncodedImage(path=p)
    assert e.media_type == "image/jpeg" and bytes(e.blob) == PNG
    with pytest.raises(ValueError, match="exactly one of path= and contents="):
        rr.EncodedImage()
    with pytest.raises(ValueError, match="exactly one of path= and contents="):
        rr.EncodedImage(path=p, contents=PNG)


def test_annotation_context_forms():
    ctx = rr.AnnotationContext([
        (1, "car", (255, 0, 0)),
        rr.AnnotationInfo(id=2, label="person", color=(0, 255, 0, 128)),
        rr.ClassDescription(info=(3, "x"), keypoint_annotations=[(0, "nose")], keypoint_connections=[(0, 1)]),
        4,
    ])
    ((typ, value),) = _columns(ctx).values()
    assert list(_columns(ctx)) == ["AnnotationContext:context"]
    assert typ.equals(CONTEXT)

    def elem(i, label, color, kps=(), conns=()):
        return {"class_id": i, "class_description": {"info": {"id": i, "label": label, "color": color},
                                                     "keypoint_annotations": list(kps),
                                                     "keypoint_connections": list(conns)}}

    assert value == [
        elem(1, "car", 0xFF0000FF),
        elem(2, "person", 0x00FF0080),
        elem(3, "x", None, [{"id": 0, "label": "nose", "color": None}], [{"keypoint0": 0, "keypoint1": 1}]),
        elem(4, None, None),
    ]
    one = rr.AnnotationContext(rr.AnnotationInfo(7, color=(1.0, 0.0, 0.0)))  # floats are 0..1
    assert _columns(one)["AnnotationContext:context"][1] == [elem(7, None, 0xFF0000FF)]


def test_image_magnification_filter_and_value_range():
    cols = _columns(rr.Image(np.zeros((1, 2), np.uint16), magnification_filter=rr.MagnificationFilter.Linear,
                             value_range=rr.ValueRange([0, 4000])))
    assert cols["Image:magnification_filter"] == (pa.uint8(), 2)
    assert cols["Image:value_range"] == (RANGE, [0.0, 4000.0])
    assert "Image:value_range" not in rr.Image(np.zeros((1, 2), np.uint8)).as_row()
    for given, rows in (([0, 9], [(0.0, 9.0)]), (rr.Range1D([1, 2]), [(1.0, 2.0)]),
                        ([[0, 1], [2, 3]], [(0.0, 1.0), (2.0, 3.0)]),
                        ([rr.ValueRange([0, 1]), rr.ValueRange([2, 4])], [(0.0, 1.0), (2.0, 4.0)])):
        (col,) = rr.Image.columns(value_range=given)
        assert col.component_name == "Image:value_range" and col.error is None and col.values == rows
    (bad,) = rr.Image.columns(value_range=[[0, 1, 2]])
    assert "(2 numbers), got 3" in bad.error


@pytest.mark.parametrize("make, error", [
    (lambda: rr.DepthImage(np.zeros((2, 2, 3), np.uint16)), "DepthImage expects a 2-D"),
    (lambda: rr.DepthImage(np.zeros((2, 2), np.uint16), colormap="rainbow"), "DepthImage:colormap: expected one of"),
    (lambda: rr.DepthImage(np.zeros((2, 2), np.uint16), depth_range=[0, 1, 2]), r"2 numbers\), got 3"),
    (lambda: rr.DepthImage(np.zeros((2, 2), np.uint16), meter="far"), "DepthImage:meter"),
    (lambda: rr.SegmentationImage(np.zeros((2, 2), object)), "unsupported pixel dtype"),
    (lambda: rr.EncodedImage(contents=JPEG, media_type=5), "media type"),
    (lambda: rr.EncodedImage(path="/nonexistent/x.jpg"), "cannot read /nonexistent/x.jpg"),
    (lambda: rr.Image(np.zeros((2, 2), np.uint8), magnification_filter="cubic"), "Image:magnification_filter"),
    (lambda: rr.Image(np.zeros((2, 2), np.uint8), value_range=[0, float("nan")]), "without NaN"),
    (lambda: rr.AnnotationContext([(1, "a"), (1, "b")]), "class ids must be unique"),
    (lambda: rr.AnnotationContext([(70000, "a")]), "0-65535"),
    (lambda: rr.AnnotationContext([(1, "a", (300, 0, 0))]), "0-255"),
])
def test_bad_input_warns_with_the_entity_or_raises_when_strict(make, error):
    obj = make()  # construction never raises on bad values
    rec = rr.RecordingStream("family-bad")
    mem = rec.memory_recording()
    with pytest.warns(rr.PixelrunWarning, match=f"/bad: .*{error}"):
        rec.log("bad", obj)
    rec.log("good", rr.SegmentationImage(np.zeros((1, 1), np.uint8)))  # nothing else lost
    rec.flush()
    assert b"/good" in mem.rrd_bytes() and b"/bad" not in mem.rrd_bytes()
    rec.close()
    strict = rr.RecordingStream("family-strict", strict=True)
    strict.memory_recording()
    with pytest.raises(ValueError, match=error):
        strict.log("bad", obj)
    strict.close()


def test_compress_makes_a_jpeg_for_u8_l_rgb_bgr():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red
    for image, mode in ((rr.Image(rgb), "RGB"), (rr.Image(rgb[..., ::-1].copy(), color_model="BGR"), "RGB"),
                        (rr.Image(rgb[..., 0]), "L")):
        enc = image.compress(jpeg_quality=90)
        assert isinstance(enc, rr.EncodedImage) and enc.media_type == "image/jpeg"
        decoded = PILImage.open(io.BytesIO(bytes(enc.blob)))
        assert decoded.format == "JPEG" and decoded.mode == mode and decoded.size == (6, 4)
        px = np.asarray(decoded)
        assert abs(int(px.reshape(-1, px.shape[-1] if px.ndim == 3 else 1)[0][0]) - 200) <= 3  # red channel kept
    small = rr.Image(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    assert len(bytes(small.compress(jpeg_quality=10).blob)) < len(bytes(small.compress(jpeg_quality=95).blob))


@pytest.mark.parametrize("image, why", [
    (lambda: rr.Image(np.zeros((2, 2, 4), np.uint8)), "only L .* RGB and BGR"),
    (lambda: rr.Image(np.zeros((2, 2), np.uint16)), "only U8"),
    (lambda: rr.Image(bytes=bytes(6), width=2, height=2, pixel_format=rr.PixelFormat.NV12), "only L"),
])
def test_compress_returns_the_image_itself_with_a_warning_otherwise(image, why, monkeypatch):
    img = image()
    monkeypatch.setattr("pixelrun.errors._strict", False)
    with pytest.warns(rr.PixelrunWarning, match=f"Image.compress: cannot JPEG compress .*{why}"):
        assert img.compress() is img
    monkeypatch.setattr("pixelrun.errors._strict", True)
    with pytest.raises(ValueError, match=why):
        img.compress()


def test_logged_static_or_temporal_and_sent_as_columns():
    rec = rr.RecordingStream("family-log")
    mem = rec.memory_recording()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.log("cam", rr.AnnotationContext([(1, "car", (255, 0, 0))]), static=True)
        rec.set_time("step", sequence=1)
        rec.log("cam/depth", rr.DepthImage(np.zeros((2, 2), np.uint16), meter=1000))
        rec.log("cam/img", rr.Image(np.zeros((2, 2), np.uint8), value_range=[0, 10]))
        rec.send_columns("cam/img", indexes=[rr.TimeColumn("step", sequence=[2, 3])],
                         columns=rr.Image.columns(buffer=np.zeros((2, 4), np.uint8),
                                                  magnification_filter=["linear", "nearest"]))
    rec.flush()
    got = {}
    for c in read_rrd(mem.rrd_bytes()).chunks:
        for name, col in c.components.items():
            got.setdefault((c.entity_path, name, c.is_static), []).extend(col.to_pylist())
    assert got[("/cam", "AnnotationContext:context", True)][0][0][0]["class_id"] == 1
    assert got[("/cam/depth", "DepthImage:meter", False)] == [[1000.0]]
    assert got[("/cam/img", "Image:value_range", False)] == [[[0.0, 10.0]]]
    assert got[("/cam/img", "Image:magnification_filter", False)] == [[2], [1]]
    rec.close()
