"""The SDK surface Rerun 0.41's image snippets (docs/snippets/all/archetypes/ in
rerun-io/rerun: image_simple, image_formats, image_advanced, image_column_updates,
image_row_updates, image_send_columns, encoded_image, depth_image_simple,
segmentation_image_simple, annotation_context_segmentation) call, each exercised by a
short program written here with the same calls and argument shapes, run the way such
a snippet runs under pixelrun: ``rr.init(app, spawn=True)`` with ``PIXELRUN_SAVE``
capturing the recording in a file.

Each file's chunks are checked byte for byte against pixels and formats computed in
the test by other means (np.where masks, PIL, OpenCV, struct packing, Rerun 0.41's
enum values written out), and, where real Rerun is installed (``.venv-rerun``, as
the README's setup and CI create it), ``rerun rrd verify`` must accept the file."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageDraw

import pixelrun as rr
from pixelrun.engine.rrd import read_rrd

RERUN_BIN = Path(__file__).resolve().parents[2] / ".venv-rerun" / "bin" / "rerun"

# Rerun 0.41's enum values as its SDK writes them (rerun.datatypes.ColorModel,
# ChannelDatatype, PixelFormat; rerun.components.Colormap), not taken from pixelrun.
L, RGB, RGBA, BGR = 1, 2, 3, 4
U8, U16 = 6, 8
Y_U_V16_FULL_RANGE = 50
VIRIDIS = 6

W, H = 300, 200  # the snippets' usual image size


@pytest.fixture(autouse=True)
def _no_global():
    yield
    old = rr.set_global_data_recording(None)
    if old is not None:
        old.close()


def _capture(monkeypatch, path: Path, app: str) -> None:
    """What a snippet does first, redirected to `path` as a user would run it."""
    monkeypatch.setenv("PIXELRUN_SAVE", str(path))
    rr.init(app, spawn=True)


def _finish() -> None:
    """What the end of a snippet's process does: the recording is closed and flushed."""
    rr.set_global_data_recording(None).close()


def _rows(path: Path, entity: str) -> list[dict]:
    """Every row logged at `entity`, in order: {"static", "times", component: arrow list}."""
    out = []
    for c in read_rrd(path).chunks:
        if c.entity_path != entity:
            continue
        for i in range(c.num_rows):
            row = {"static": c.is_static,
                   "times": {k: int(t.values[i]) for k, t in c.timelines.items() if k != "log_time"}}
            for name, arr in c.components.items():
                if arr[i].is_valid:
                    row[name] = arr[i].values
            out.append(row)
    return out


def _blob(values) -> bytes:
    """The one blob of a row's batch (list<list<uint8>>) as bytes."""
    assert len(values) == 1
    return np.asarray(values.flatten()).tobytes()


def _one(values):
    """The one instance of a row's batch, as Python."""
    assert len(values) == 1
    return values.to_pylist()[0]


def _fmt(width, height, *, color_model=None, datatype=None, pixel_format=None) -> dict:
    return {"width": width, "height": height, "pixel_format": pixel_format, "color_model": color_model,
            "channel_datatype": datatype}


def _rect_mask(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)


def _moving_frame(t: int) -> np.ndarray:
    """Frame t of the column/row-update snippets, built from masks: blue, with a rectangle
    at rows 50-150, columns 10t..10t+100 that adds green (cyan)."""
    m = _rect_mask(H, W, 50, 150, 10 * t, 10 * t + 100)
    return np.where(m[..., None], np.array([0, 255, 255], np.uint8), np.array([0, 0, 255], np.uint8))


# ------------------------------------------------------------------ the programs
# Each logs as its snippet does and returns nothing; the checks below read the file.


def prog_image_simple() -> None:
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[:, :, 0] = 255
    image[50:150, 50:150] = (0, 255, 0)
    rr.log("image", rr.Image(image))


def _gradient() -> np.ndarray:
    """(256, 256, 3): (x, min(255, x + y), y) at row y, column x."""
    yy, xx = np.mgrid[0:256, 0:256]
    return np.stack([xx, np.minimum(255, xx + yy), yy], axis=-1).astype(np.uint8)


def _yuv422_planes() -> tuple[bytes, bytes, bytes]:
    y = bytes([128]) * (256 * 256)
    u = bytes((2 * x) % 256 for x in range(128)) * 256  # half horizontal resolution
    v = b"".join(bytes([row]) * 128 for row in range(256))
    return y, u, v


def prog_image_formats() -> None:
    image = _gradient()
    rr.log("image_rgb", rr.Image(image))
    rr.log("image_green_only", rr.Image(image[:, :, 1], color_model="l"))
    rr.log("image_bgr", rr.Image(image[:, :, ::-1], color_model="bgr"))
    y, u, v = _yuv422_planes()
    rr.log("image_yuv422", rr.Image(bytes=y + u + v, width=256, height=256,
                                    pixel_format=rr.PixelFormat.Y_U_V16_FullRange))


def _advanced_png(path: Path) -> None:
    """A transparent 300x200 PNG with a red outline and a green rounded square."""
    img = PILImage.new("RGBA", (W, H), color=(0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, W, H), outline=(255, 0, 0), width=6)
    draw.rounded_rectangle((50, 50, 150, 150), fill=(0, 255, 0), radius=20)
    img.save(path)


def prog_image_advanced(tmp: Path) -> None:
    file_path = str(tmp / "advanced.png")  # the snippet passes a str path
    _advanced_png(Path(file_path))
    rr.log("from_file", rr.EncodedImage(path=file_path))
    rgba = np.array(PILImage.open(file_path))
    rr.log("from_pillow_rgba", rr.Image(rgba))
    rr.log("from_pillow_rgb", rr.Image(rgba[..., :3]))  # a strided view, not a copy
    rr.log("from_opencv", rr.Image(cv2.imread(file_path), color_model="BGR"))


def _frames(dtype=np.uint8) -> np.ndarray:
    images = np.zeros((20, H, W, 3), dtype=dtype)
    images[:, :, :, 2] = 255
    for t in range(20):
        images[t, 50:150, (t * 10):(t * 10 + 100), 1] = 255
    return images


def prog_image_column_updates() -> None:
    times = np.arange(0, 20)
    images = _frames()
    fmt = rr.components.ImageFormat(width=W, height=H, color_model="RGB", channel_datatype="U8")
    rr.log("images", rr.Image.from_fields(format=fmt), static=True)
    rr.send_columns("images", indexes=[rr.TimeColumn("step", sequence=times)],
                    columns=rr.Image.columns(buffer=images.view(np.uint8).reshape(len(times), -1)))


def prog_image_column_updates_u16() -> None:
    """The snippet's note: the uint8 view makes it work for other datatypes too."""
    times = np.arange(0, 20)
    images = _frames(np.uint16) * 257  # 255 -> 65535
    fmt = rr.components.ImageFormat(width=W, height=H, color_model="RGB", channel_datatype="U16")
    rr.log("images", rr.Image.from_fields(format=fmt), static=True)
    rr.send_columns("images", indexes=[rr.TimeColumn("step", sequence=times)],
                    columns=rr.Image.columns(buffer=images.view(np.uint8).reshape(len(times), -1)))


def prog_image_send_columns() -> None:
    """The pre-0.22 snippet: TimeSequenceColumn(name, times) and no uint8 view."""
    times = np.arange(0, 20)
    images = _frames()
    fmt = rr.components.ImageFormat(width=W, height=H, color_model="RGB", channel_datatype="U8")
    rr.log("images", rr.Image.from_fields(format=fmt), static=True)
    rr.send_columns("images", indexes=[rr.TimeSequenceColumn("step", times)],
                    columns=rr.Image.columns(buffer=images.reshape(len(times), -1)))


def prog_image_row_updates() -> None:
    for t in range(20):
        rr.set_time("time", sequence=t)
        image = np.zeros((H, W, 3), dtype=np.uint8)
        image[:, :, 2] = 255
        image[50:150, (t * 10):(t * 10 + 100)] = (0, 255, 255)
        rr.log("image", rr.Image(image))


def prog_encoded_image(tmp: Path) -> None:
    PILImage.new("RGB", (7, 5), (10, 20, 30)).save(tmp / "ferris.png")
    rr.log("image", rr.EncodedImage(path=tmp / "ferris.png"))


def _depth() -> np.ndarray:
    depth = 65535 * np.ones((H, W), dtype=np.uint16)
    depth[50:150, 50:150] = 20000
    depth[130:180, 100:280] = 45000
    return depth


def prog_depth_image_simple() -> None:
    rr.log("depth", rr.DepthImage(_depth(), meter=10_000.0))


def prog_depth_image_colormap() -> None:
    """depth_image_3d's DepthImage call (its Pinhole is outside pixelrun's image family)."""
    rr.log("world/camera/depth", rr.DepthImage(_depth(), meter=10_000.0, colormap="viridis"))


def _classes() -> list:
    return [(1, "red", (255, 0, 0)), (2, "green", (0, 255, 0))]


def prog_segmentation_image_simple() -> None:
    image = np.zeros((8, 12), dtype=np.uint8)
    image[0:4, 0:6] = 1
    image[4:8, 6:12] = 2
    rr.log("/", rr.AnnotationContext(_classes()), static=True)
    rr.log("image", rr.SegmentationImage(image))


def prog_annotation_context_segmentation() -> None:
    image = np.zeros((H, W), dtype=np.uint8)
    image[50:100, 50:120] = 1
    image[100:180, 130:280] = 2
    rr.log("segmentation", rr.AnnotationContext(_classes()), static=True)
    rr.log("segmentation/image", rr.SegmentationImage(image))


PROGRAMS = {
    "image_simple": prog_image_simple,
    "image_formats": prog_image_formats,
    "image_advanced": prog_image_advanced,
    "image_column_updates": prog_image_column_updates,
    "image_column_updates_u16": prog_image_column_updates_u16,
    "image_send_columns": prog_image_send_columns,
    "image_row_updates": prog_image_row_updates,
    "encoded_image": prog_encoded_image,
    "depth_image_simple": prog_depth_image_simple,
    "depth_image_colormap": prog_depth_image_colormap,
    "segmentation_image_simple": prog_segmentation_image_simple,
    "annotation_context_segmentation": prog_annotation_context_segmentation,
}
NEEDS_TMP = {"image_advanced", "encoded_image"}


def _run(name: str, tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / f"{name}.rrd"
    _capture(monkeypatch, path, f"rerun_example_{name}")
    prog = PROGRAMS[name]
    if name in NEEDS_TMP:
        prog(tmp_path)
    else:
        prog()
    _finish()
    return path


# ------------------------------------------------------------------ the checks


def test_image_simple(tmp_path, monkeypatch):
    rows = _rows(_run("image_simple", tmp_path, monkeypatch), "/image")
    assert len(rows) == 1 and not rows[0]["static"]
    expected = np.where(_rect_mask(H, W, 50, 150, 50, 150)[..., None],
                        np.array([0, 255, 0], np.uint8), np.array([255, 0, 0], np.uint8))
    assert _blob(rows[0]["Image:buffer"]) == expected.tobytes()
    assert _one(rows[0]["Image:format"]) == _fmt(W, H, color_model=RGB, datatype=U8)


def test_image_formats(tmp_path, monkeypatch):
    path = _run("image_formats", tmp_path, monkeypatch)
    # The gradient, pixel by pixel in plain Python (row y, column x): (x, min(255, x + y), y).
    rgb = bytes(v for y in range(256) for x in range(256) for v in (x, min(255, x + y), y))
    green = bytes(min(255, x + y) for y in range(256) for x in range(256))
    bgr = bytes(v for y in range(256) for x in range(256) for v in (y, min(255, x + y), x))
    for entity, data, fmt in (("/image_rgb", rgb, _fmt(256, 256, color_model=RGB, datatype=U8)),
                              ("/image_green_only", green, _fmt(256, 256, color_model=L, datatype=U8)),
                              ("/image_bgr", bgr, _fmt(256, 256, color_model=BGR, datatype=U8))):
        (row,) = _rows(path, entity)
        assert _blob(row["Image:buffer"]) == data, entity
        assert _one(row["Image:format"]) == fmt, entity
    (row,) = _rows(path, "/image_yuv422")
    y, u, v = _yuv422_planes()
    assert _blob(row["Image:buffer"]) == y + u + v
    assert _one(row["Image:format"]) == _fmt(256, 256, pixel_format=Y_U_V16_FULL_RANGE)


def test_image_advanced(tmp_path, monkeypatch):
    path = _run("image_advanced", tmp_path, monkeypatch)
    png = (tmp_path / "advanced.png").read_bytes()
    (row,) = _rows(path, "/from_file")
    assert _blob(row["EncodedImage:blob"]) == png
    assert _one(row["EncodedImage:media_type"]) == "image/png"
    # The decoded pixels, by OpenCV (not the Pillow the program used), with alpha.
    bgra = cv2.imread(str(tmp_path / "advanced.png"), cv2.IMREAD_UNCHANGED)
    assert bgra.shape == (H, W, 4)
    rgba = bgra[..., [2, 1, 0, 3]]
    for entity, data, fmt in (
        ("/from_pillow_rgba", rgba.tobytes(), _fmt(W, H, color_model=RGBA, datatype=U8)),
        ("/from_pillow_rgb", rgba[..., :3].tobytes(), _fmt(W, H, color_model=RGB, datatype=U8)),
        ("/from_opencv", bgra[..., :3].tobytes(), _fmt(W, H, color_model=BGR, datatype=U8)),
    ):
        (row,) = _rows(path, entity)
        assert _blob(row["Image:buffer"]) == data, entity
        assert _one(row["Image:format"]) == fmt, entity
    # What the picture is: a red border 6 px wide, a green square, transparent elsewhere.
    assert tuple(rgba[0, 0]) == (255, 0, 0, 255) and tuple(rgba[100, 100]) == (0, 255, 0, 255)
    assert rgba[100, 250, 3] == 0


def _check_columns(path: Path, timeline: str, frame_bytes, fmt: dict) -> None:
    rows = _rows(path, "/images")
    static = [r for r in rows if r["static"]]
    timed = [r for r in rows if not r["static"]]
    # The static row holds the format alone: no buffer, so nothing is shown before step 0.
    assert len(static) == 1 and _one(static[0]["Image:format"]) == fmt
    assert "Image:buffer" not in static[0]
    assert sorted(r["times"][timeline] for r in timed) == list(range(20))
    for r in timed:
        t = r["times"][timeline]
        assert _blob(r["Image:buffer"]) == frame_bytes(t), t
        assert "Image:format" not in r  # the rows use the static format, as Rerun's do


def test_image_column_updates(tmp_path, monkeypatch):
    path = _run("image_column_updates", tmp_path, monkeypatch)
    _check_columns(path, "step", lambda t: _moving_frame(t).tobytes(), _fmt(W, H, color_model=RGB, datatype=U8))


def test_image_column_updates_other_datatype(tmp_path, monkeypatch):
    path = _run("image_column_updates_u16", tmp_path, monkeypatch)

    def frame(t: int) -> bytes:  # little-endian uint16, 255 * 257 = 65535 where the u8 frame had 255
        values = _moving_frame(t).reshape(-1).astype(int) * 257
        return struct.pack(f"<{values.size}H", *values.tolist())

    _check_columns(path, "step", frame, _fmt(W, H, color_model=RGB, datatype=U16))


def test_image_send_columns_legacy_form(tmp_path, monkeypatch):
    path = _run("image_send_columns", tmp_path, monkeypatch)
    _check_columns(path, "step", lambda t: _moving_frame(t).tobytes(), _fmt(W, H, color_model=RGB, datatype=U8))


def test_image_row_updates(tmp_path, monkeypatch):
    rows = _rows(_run("image_row_updates", tmp_path, monkeypatch), "/image")
    assert [r["times"]["time"] for r in rows] == list(range(20))
    for r in rows:
        t = r["times"]["time"]
        assert _blob(r["Image:buffer"]) == _moving_frame(t).tobytes(), t
        assert _one(r["Image:format"]) == _fmt(W, H, color_model=RGB, datatype=U8)


def test_encoded_image(tmp_path, monkeypatch):
    path = _run("encoded_image", tmp_path, monkeypatch)
    (row,) = _rows(path, "/image")
    assert _blob(row["EncodedImage:blob"]) == (tmp_path / "ferris.png").read_bytes()
    assert _one(row["EncodedImage:media_type"]) == "image/png"


def _check_depth(path: Path, entity: str) -> dict:
    (row,) = _rows(path, entity)
    expected = np.full((H, W), 65535, dtype="<u2")
    expected[_rect_mask(H, W, 50, 150, 50, 150)] = 20000
    expected[_rect_mask(H, W, 130, 180, 100, 280)] = 45000  # drawn second: on top
    assert _blob(row["DepthImage:buffer"]) == expected.tobytes()
    assert _one(row["DepthImage:format"]) == _fmt(W, H, datatype=U16)
    assert _one(row["DepthImage:meter"]) == 10_000.0
    assert str(row["DepthImage:meter"].type) == "float"  # float32, as Rerun writes it
    return row


def test_depth_image_simple(tmp_path, monkeypatch):
    row = _check_depth(_run("depth_image_simple", tmp_path, monkeypatch), "/depth")
    assert "DepthImage:colormap" not in row


def test_depth_image_with_a_colormap_name(tmp_path, monkeypatch):
    row = _check_depth(_run("depth_image_colormap", tmp_path, monkeypatch), "/world/camera/depth")
    assert _one(row["DepthImage:colormap"]) == VIRIDIS


def _expected_context() -> list:
    def entry(cid, label, rgba):
        return {"class_id": cid, "class_description": {
            "info": {"id": cid, "label": label, "color": rgba},
            "keypoint_annotations": [], "keypoint_connections": []}}
    return [entry(1, "red", 0xFF0000FF), entry(2, "green", 0x00FF00FF)]


def _check_segmentation(path: Path, context_entity: str, image_entity: str, expected: np.ndarray) -> None:
    (ctx,) = _rows(path, context_entity)
    assert ctx["static"] and _one(ctx["AnnotationContext:context"]) == _expected_context()
    (row,) = _rows(path, image_entity)
    h, w = expected.shape
    assert _blob(row["SegmentationImage:buffer"]) == expected.astype(np.uint8).tobytes()
    assert _one(row["SegmentationImage:format"]) == _fmt(w, h, datatype=U8)


def test_segmentation_image_simple(tmp_path, monkeypatch):
    expected = (_rect_mask(8, 12, 0, 4, 0, 6) * 1 + _rect_mask(8, 12, 4, 8, 6, 12) * 2)
    _check_segmentation(_run("segmentation_image_simple", tmp_path, monkeypatch), "/", "/image", expected)


def test_annotation_context_segmentation(tmp_path, monkeypatch):
    expected = (_rect_mask(H, W, 50, 100, 50, 120) * 1 + _rect_mask(H, W, 100, 180, 130, 280) * 2)
    _check_segmentation(_run("annotation_context_segmentation", tmp_path, monkeypatch), "/segmentation",
                        "/segmentation/image", expected)


def test_media_type_constants_and_guess():
    """Rerun's rr.components.MediaType: named constants that are media type strings,
    usable as EncodedImage's media_type, and the guess from a file name."""
    mt = rr.components.MediaType
    assert (mt.JPEG, mt.PNG, mt.MP4, mt.TEXT) == ("image/jpeg", "image/png", "video/mp4", "text/plain")
    assert mt.guess_from_path("a/B.JPG") == "image/jpeg" and mt.guess_from_path("x.png") == "image/png"
    assert mt.guess_from_path("x.bin") is None
    enc = rr.EncodedImage(contents=b"\xff\xd8\xff\xe0" + bytes(16), media_type=mt.JPEG)
    assert enc.error is None and enc.media_type == "image/jpeg" and type(enc.media_type) is str


def test_default_recording_id_has_rerun_s_form():
    """Rerun 0.41's default recording id is a UUID as 32 lowercase hex digits (no dashes);
    its viewer lists recordings by it."""
    rr.init("rerun_example_id_form")
    for rid in (rr.get_recording_id(), rr.RecordingStream("rerun_example_id_form_2").get_recording_id()):
        assert len(rid) == 32 and int(rid, 16) >= 0 and rid == rid.lower(), rid


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_rerun_verifies_the_file(name, tmp_path, monkeypatch):
    if not RERUN_BIN.exists():
        pytest.skip("real Rerun 0.41 is not installed (.venv-rerun/bin/rerun; `pixelrun setup --rerun-venv "
                    ".venv-rerun` creates it): the files' contents are checked above, Rerun's verify is not run")
    path = _run(name, tmp_path, monkeypatch)
    v = subprocess.run([str(RERUN_BIN), "rrd", "verify", str(path)], capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stdout + v.stderr
