"""The image family in the scene and on screen: EncodedImage (decoded by Pillow, then the
ordinary image path), rendered through pixelrun.engine.render on the NumPy oracle and
on wgpu.

Expected pixels never come from the code under test: an encoded frame must look exactly
like Pillow's own decode of the same bytes logged as a raw rr.Image (or, for opaque 8-bit
frames, like those bytes themselves); damaged input is left out with a message naming
the entity and media type while everything else is still drawn.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage

import pixelrun as rr
from pixelrun.engine import api, encoded
from pixelrun.engine.scene import scene_at
from pixelrun.engine.store.store import ChunkStore
from pixelrun.kernels.errors import RenderWarning
from pixelrun.kernels.formats import ChannelDatatype, ColorModel
from pixelrun.kernels.wgpu.backend import is_available

WGPU_OK, WHY = is_available()
BACKENDS = ["numpy", pytest.param("wgpu", marks=pytest.mark.skipif(not WGPU_OK, reason=f"no wgpu adapter: {WHY}"))]


def _store(log, keep_all: bool = False) -> ChunkStore:
    """A store holding what `log(rec)` logs (through the SDK and an .rrd byte stream)."""
    rec = rr.RecordingStream("image-family-test")
    mem = rec.memory_recording()
    log(rec)
    rec.flush()
    store = ChunkStore(memory_limit=None, keep_components=None) if keep_all else ChunkStore(memory_limit=None)
    store.ingest_bytes(mem.rrd_bytes())
    rec.close()
    return store


def _encode(pixels: np.ndarray, fmt: str, **save) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(pixels).save(out, format=fmt, **save)
    return out.getvalue()


def _render(store, backend, **kw) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may be left out here
        return api.render(store, backend=backend, **kw)


def _close(got, want, tol):
    got, want = np.asarray(got, int), np.asarray(want, int)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.abs(got - want).max() <= tol, np.argwhere(np.abs(got - want) > tol)[:3].tolist()


RNG = np.random.default_rng(13)
RGB = RNG.integers(0, 256, (9, 14, 3), dtype=np.uint8)
RGBA = np.concatenate([RGB, RNG.integers(1, 256, (9, 14, 1), dtype=np.uint8)], axis=-1)
GREY = RNG.integers(0, 256, (9, 14), dtype=np.uint8)
GREY16 = RNG.integers(0, 65536, (9, 14), dtype=np.uint16)


# ------------------------------------------------------------------ decode, in isolation


@pytest.mark.parametrize(
    "pixels, fmt, model, datatype",
    [(RGB, "JPEG", ColorModel.RGB, ChannelDatatype.U8), (RGB, "PNG", ColorModel.RGB, ChannelDatatype.U8),
     (RGBA, "PNG", ColorModel.RGBA, ChannelDatatype.U8), (GREY, "PNG", ColorModel.L, ChannelDatatype.U8),
     (GREY, "JPEG", ColorModel.L, ChannelDatatype.U8), (GREY16, "PNG", ColorModel.L, ChannelDatatype.U16)],
    ids=["jpeg-rgb", "png-rgb", "png-rgba", "png-l8", "jpeg-l8", "png-l16"],
)
def test_decode_gives_pillows_pixels_in_a_raw_layout(pixels, fmt, model, datatype):
    data = _encode(pixels, fmt)
    want = np.asarray(PILImage.open(io.BytesIO(data)))  # Pillow's own decode of the same bytes
    for media_type in (f"image/{fmt.lower()}", None):  # logged, or guessed from the bytes
        buf, f = encoded.decode(data, media_type)
        assert (f.width, f.height, f.color_model, f.channel_datatype) == (14, 9, model, datatype)
        dtype = "<u2" if datatype == ChannelDatatype.U16 else "u1"
        assert np.array_equal(buf.view(dtype).reshape(want.shape), want)
    if fmt == "PNG":  # lossless: the very pixels
        assert np.array_equal(buf.view(dtype).reshape(pixels.shape), pixels)


def test_palette_png_with_transparency_becomes_rgba():
    im = PILImage.fromarray(RGB).convert("P", palette=PILImage.Palette.ADAPTIVE, colors=8)
    out = io.BytesIO()
    im.save(out, format="PNG", transparency=0)
    buf, f = encoded.decode(out.getvalue(), "image/png")
    assert f.color_model == ColorModel.RGBA
    want = np.asarray(PILImage.open(io.BytesIO(out.getvalue())).convert("RGBA"))
    assert np.array_equal(buf.reshape(want.shape), want)
    assert (want[..., 3] == 0).any()  # palette entry 0 is transparent


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height RGB pixels, with a tiny body."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "data, media_type, message",
    [(_encode(RGB, "JPEG")[:-40], "image/jpeg", r"image/jpeg, \d+ bytes: 14x9 image cannot be decoded"),
     (_encode(RGB, "JPEG")[:200], "image/jpeg", r"image/jpeg, 200 bytes: not a readable JPEG file"),
     (b"\xff\xd8\xff" + bytes(50), "image/jpeg", r"image/jpeg, 53 bytes: not a readable JPEG file"),
     (_encode(RGB, "PNG"), "image/jpeg", r"image/jpeg, \d+ bytes: not a readable JPEG file"),
     (b"GIF-ish bytes", None, r"no media type logged and the 13 bytes are neither JPEG nor PNG"),
     (_encode(RGB, "PNG"), "video/mp4", r"media type 'video/mp4' is not an image type pixelrun decodes"),
     (_png_header_only(12000, 12000), "image/png",
      r"the header claims 12000x12000 RGB pixels \(432000000 bytes decoded\), more than the 268435456-byte"),
     (_png_header_only(20000, 20000), "image/png", r"image/png, 68 bytes: the header claims too large an image")],
    ids=["truncated-jpeg", "jpeg-header-cut", "garbage-jpeg", "png-labelled-jpeg", "unknown-bytes", "video",
         "huge-header", "bomb-header"],
)
def test_decode_refuses_bad_input_saying_what_came(data, media_type, message):
    with pytest.raises(encoded.DecodeError, match=message):
        encoded.decode(data, media_type)


def test_decoded_cache_is_bounded_in_bytes_least_recent_first():
    cache = encoded.DecodedCache(max_bytes=100)
    cache.put("a", "A", 40)
    cache.put("b", "B", 40)
    assert cache.get("a") == "A"  # now most recent
    cache.put("c", "C", 40)  # 120 > 100: drops b, the least recently used
    assert (cache.get("b"), cache.get("a"), cache.get("c"), cache.nbytes) == (None, "A", "C", 80)
    cache.put("huge", "H", 101)  # larger than the whole budget: not cached, nothing dropped
    assert (cache.get("huge"), len(cache), cache.nbytes) == (None, 2, 80)
    cache.put("a", "A2", 10)  # replacing an entry re-counts its bytes
    assert (cache.get("a"), cache.nbytes) == ("A2", 50)


# ------------------------------------------------------------------ rendered


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "pixels, fmt", [(RGB, "JPEG"), (RGB, "PNG"), (RGBA, "PNG"), (GREY, "PNG"), (GREY16, "PNG")],
    ids=["jpeg", "png-rgb", "png-rgba", "png-l8", "png-l16"],
)
def test_encoded_image_renders_like_pillows_decode_logged_raw(backend, pixels, fmt):
    data = _encode(pixels, fmt)
    decoded = np.asarray(PILImage.open(io.BytesIO(data)))
    got = _render(_store(lambda rec: rec.log("cam", rr.EncodedImage(contents=data))), backend)
    want = _render(_store(lambda rec: rec.log("cam", rr.Image(decoded))), "numpy")
    assert got.shape == (9, 14, 4)
    _close(got, want, 0 if backend == "numpy" else 1)
    if pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3:  # opaque 8-bit: the bytes
        _close(got[..., :3], decoded, 0 if backend == "numpy" else 1)
        assert (got[..., 3] == 255).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_encoded_image_without_media_type_is_sniffed_and_blends_by_opacity(backend):
    data = _encode(RGB, "PNG")

    def log(rec):
        img = rr.EncodedImage(contents=data, opacity=0.5, draw_order=3)
        img._row.pop("EncodedImage:media_type")  # as a file from another writer may hold it
        rec.log("top", img, static=True)
        rec.log("below", rr.Image(np.full((9, 14, 3), 255, np.uint8)), static=True)

    store = _store(log)
    (below, top) = scene_at(store, None, None)
    assert (top.entity, top.opacity, top.draw_order, below.draw_order) == ("/top", 0.5, 3.0, -10.0)
    got = _render(store, backend)
    # contract §4: blended in linear light at 0.5 over white, encoded back to sRGB
    lin = np.where(RGB / 255 <= 0.04045, RGB / 255 / 12.92, ((RGB / 255 + 0.055) / 1.055) ** 2.4)
    mix = lin * 0.5 + 0.5
    want = np.floor(np.where(mix <= 0.0031308, 12.92 * mix, 1.055 * mix ** (1 / 2.4) - 0.055) * 255 + 0.5)
    _close(got[..., :3], want, 1)
    assert (got[..., 3] == 255).all()


def test_damaged_encoded_image_is_named_and_everything_else_drawn():
    good = _encode(RGB, "JPEG")

    def log(rec):
        rec.log("cam/good", rr.EncodedImage(contents=good))
        rec.log("cam/cut", rr.EncodedImage(contents=good[:-40], media_type="image/jpeg"))
        rec.log("cam/mp4", rr.EncodedImage(contents=good, media_type="video/mp4"))

    store = _store(log)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = api.render(store, backend="numpy")
    msgs = sorted(str(w.message) for w in caught if issubclass(w.category, RenderWarning))
    assert len(msgs) == 2
    assert msgs[0].startswith("left out of the render: /cam/cut: EncodedImage cannot be decoded: "
                              f"image/jpeg, {len(good) - 40} bytes: 14x9 image cannot be decoded")
    assert msgs[1].startswith("left out of the render: /cam/mp4: EncodedImage cannot be decoded: "
                              "media type 'video/mp4' is not an image type")
    decoded = np.asarray(PILImage.open(io.BytesIO(good)))
    assert np.array_equal(out[..., :3], decoded)  # the good one is drawn all the same


def test_frames_are_decoded_once_per_row(monkeypatch):
    frames = [_encode(np.full((4, 5, 3), v, np.uint8), "PNG") for v in (10, 200)]

    def log(rec):
        for t, data in enumerate(frames):
            rec.set_time("step", sequence=t)
            rec.log("cam", rr.EncodedImage(contents=data))

    store = _store(log)
    calls = []
    real = encoded.decode
    monkeypatch.setattr(encoded, "decode", lambda *a: calls.append(1) or real(*a))
    seen = [int(api.render(store, timeline="step", time=t, backend="numpy")[0, 0, 0]) for t in (0, 1, 0, 1, 0)]
    assert seen == [10, 200, 10, 200, 10]
    assert len(calls) == 2  # scrubbing back and forth: each row decoded once


def test_encoded_time_points_are_listed_for_render_all_times():
    def log(rec):
        for t in (3, 7):
            rec.set_time("step", sequence=t)
            rec.log("cam", rr.EncodedImage(contents=_encode(RGB, "PNG")))

    assert api.time_points(_store(log), "step").tolist() == [3, 7]


# ------------------------------------------------------------------ Image: value_range, magnification_filter


@pytest.mark.parametrize("backend", BACKENDS)
def test_pinned_value_range_keeps_a_value_steady_across_frames(backend):
    """The issue's flicker: without a range, raw 1000 follows each frame's maximum;
    with value_range=[0, 4000] it is 1000/4000 of the way up in every frame."""
    def log(rec):
        for t, top in enumerate([1000, 4000, 64000]):
            rec.set_time("step", sequence=t)
            rec.log("pinned", rr.Image(np.array([[1000, top]], np.uint16), value_range=[0, 4000]))
            rec.log("free", rr.Image(np.array([[1000, top]], np.uint16)))

    store = _store(log)
    pinned = [_render(store, backend, entity="pinned", timeline="step", time=t)[0, 0] for t in range(3)]
    free = [_render(store, backend, entity="free", timeline="step", time=t)[0, 0] for t in range(3)]
    want = np.floor(1000 / 4000 * 255 + 0.5)  # grey, straight onto the sRGB byte scale
    for px in pinned:
        _close(px, [want, want, want, 255], 0 if backend == "numpy" else 1)
    assert len({tuple(px) for px in free}) > 1  # the heuristic follows each frame: what pinning fixes
    (layer,) = scene_at(store, "step", 0, entity="pinned")
    assert layer.value_range == (0.0, 4000.0)


def test_magnification_filter_reaches_the_layer():
    def log(rec):
        rec.log("img", rr.Image(GREY, magnification_filter="linear"), static=True)
        rec.log("enc", rr.EncodedImage(contents=_encode(RGB, "PNG"), magnification_filter="linear"), static=True)
        rec.log("depth", rr.DepthImage(GREY16, magnification_filter="linear"), static=True)
        rec.log("plain", rr.Image(GREY), static=True)

    got = {l.entity: l.magnification for l in scene_at(_store(log), None, None)}
    assert got == {"/img": 2, "/enc": 2, "/depth": 2, "/plain": 1}  # Rerun's default: nearest


def test_bad_value_range_is_named_and_the_heuristic_used():
    def log(rec):
        rec.log("img", rr.Image(GREY16, value_range=[100, 100]), static=True)

    problems: list = []
    (layer,) = scene_at(_store(log), None, None, problems=problems)
    assert layer.value_range is None
    assert problems == ["/img: Image:value_range [100.0, 100.0] is not a range (expected finite min < max); "
                        "drawn with the default range"]
