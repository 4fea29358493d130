"""contract §1 and 5 rules that an independent audit probed: byte counts checked at log for
component lists, PIL 16-bit modes, bytes= values, bad enums in components, per-recording
strictness, entity-path escaping (one rule for SDK and engine) and reserved '__' parts.

Expected values are written out from the contract text, not computed by the code under test.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image as PILImage
from test_sdk_image_input import _one, _rows, _stream

import pixelrun as rr
from pixelrun.engine.api import render
from pixelrun.kernels.formats import ImageFormat

L4x4 = dict(color_model="L", channel_datatype="U8")


# ------------------------------------------------ contract §1: byte counts checked at log


@pytest.mark.parametrize("log", [
    lambda rec, fmt: rec.log("x", [rr.components.ImageBuffer(b"\0" * 5), fmt]),
    lambda rec, fmt: rec.log("x", rr.components.ImageBuffer(b"\0" * 5), fmt, static=True),
    lambda rec, fmt: rec.log("x", [rr.Image(np.zeros((2, 2), np.uint8)), fmt]),
], ids=["list", "static-extra-args", "image-plus-format"])
def test_buffer_and_format_logged_together_are_checked(log):
    rec, mem = _stream()
    fmt = rr.components.ImageFormat(4, 4, **L4x4)
    with pytest.warns(rr.PixelrunWarning, match=r"/x: L/U8 4x4 needs 16 bytes .* row dropped"):
        log(rec, fmt)
    assert "/x" not in _rows(mem)
    strict, _ = _stream(strict=True)
    with pytest.raises(ValueError, match="needs 16 bytes"):
        log(strict, fmt)


def test_temporal_image_is_checked_against_the_static_format_that_shadows_it():
    rec, mem = _stream()
    rec.log("cam", rr.components.ImageFormat(4, 4, **L4x4), static=True)
    with pytest.warns(rr.PixelrunWarning, match=r"/cam: L/U8 4x4 needs 16 bytes.*static ImageFormat"):
        rec.log("cam", rr.Image(np.zeros((2, 2), np.uint8)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.log("cam", rr.Image(np.full((4, 4), 7, np.uint8)))  # matches: kept
    assert [b for b, _ in _rows(mem)["/cam"] if b is not None] == [bytes([7] * 16)]


# ------------------------------------------------------------------ contract §1: inputs


@pytest.mark.parametrize("mode, raw", [("I;16B", b"\x01\x02" * 6), ("I;16L", b"\x02\x01" * 6)])
def test_pil_16_bit_modes_keep_their_values(mode, raw):
    rec, mem = _stream()
    rec.log("p", rr.Image(PILImage.frombytes(mode, (3, 2), raw)))
    buf, fmt = _one(mem, "/p")
    assert fmt == ImageFormat(3, 2, color_model="L", channel_datatype="U16")
    assert buf == b"\x02\x01" * 6  # 0x0102, little-endian


def test_pil_bilevel_is_luminance():
    rec, mem = _stream()
    im = PILImage.new("1", (2, 1))
    im.putpixel((1, 0), 1)
    rec.log("b", rr.Image(im))
    assert _one(mem, "/b") == (bytes([0, 255]), ImageFormat(2, 1, **L4x4))


@pytest.mark.parametrize("value", [16, 3.0])  # bytes(16) would be 16 zero bytes
def test_bytes_must_be_bytes_like(value):
    rec, mem = _stream()
    with pytest.warns(rr.PixelrunWarning, match="bytes= must be bytes-like"):
        rec.log("b", rr.Image(bytes=value, width=4, height=4, pixel_format="Y8_FullRange"))
    assert "/b" not in _rows(mem)


def test_bad_enum_in_image_format_component_is_reported_at_log_with_the_entity():
    fmt = rr.components.ImageFormat(4, 4, color_model="zz", channel_datatype="U8")  # no raise
    rec, mem = _stream()
    with pytest.warns(rr.PixelrunWarning, match=r"/f: ImageFormat: unknown color model 'zz'"):
        rec.log("f", [rr.components.ImageBuffer(b"\0" * 16), fmt])
    strict, _ = _stream(strict=True)
    with pytest.raises(ValueError, match="unknown color model 'zz'"):
        strict.log("f", [rr.components.ImageBuffer(b"\0" * 16), fmt])


def test_new_recording_honours_strict():
    rec = rr.new_recording("t", strict=True)
    rec.memory_recording()
    with pytest.raises(ValueError, match="needs 16 bytes"):
        rec.log("x", rr.Image(bytes=b"\0" * 5, width=4, height=4, pixel_format="Y8_FullRange"))


# ------------------------------------------------------------ contract §5: entity paths


@pytest.mark.parametrize("given, stored", [
    ("cam left/x", "/cam\\ left/x"),
    ("/cam\\ left/x", "/cam\\ left/x"),  # already escaped: unchanged
    ("a//b/", "/a/b"),
    (["a\\b", "c d"], "/a\\\\b/c\\ d"),  # list parts are literal: the backslash is escaped
    ("héllo/wörld", "/héllo/wörld"),
])
def test_entity_path_escaping(given, stored):
    assert rr.entity_path(given) == stored


def test_engine_finds_an_entity_by_the_path_the_user_wrote():
    rec, mem = _stream()
    img = np.full((2, 3), 200, np.uint8)
    rec.log("cam left/x", rr.Image(img), static=True)
    rec.flush()
    want = np.zeros((2, 3, 4), np.uint8)
    want[...] = (200, 200, 200, 255)
    for name in ("cam left/x", "/cam\\ left/x", "cam left"):
        assert np.array_equal(render(mem, entity=name, backend="numpy"), want), name


@pytest.mark.parametrize("path", ["__foo", "a/__bar"])
def test_reserved_double_underscore_parts_are_refused(path):
    rec, mem = _stream()
    with pytest.warns(rr.PixelrunWarning, match="'__' are reserved"):
        rec.log(path, rr.Image(np.zeros((2, 2), np.uint8)))
    with pytest.warns(rr.PixelrunWarning, match="'__' are reserved"):
        rec.send_columns(path, indexes=[rr.TimeColumn("t", sequence=[0])],
                         columns=rr.Image.columns(buffer=np.zeros((1, 4), np.uint8)))
    assert not _rows(mem)
