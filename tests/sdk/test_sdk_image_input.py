"""rr.Image input handling (contract §1): what is accepted, exact bytes, and the bad-input
matrix in non-strict (warning, row dropped) and strict (ValueError) mode."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
from PIL import Image as PILImage
from sdk_helpers import logged

import pixelrun as rr
from pixelrun.engine import chunk as ch
from pixelrun.engine.rrd import read_rrd
from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat, PixelFormat


def _stream(strict=False):
    rec = rr.RecordingStream("test", recording_id="r", strict=strict)
    return rec, rec.memory_recording()


def _rows(mem) -> dict:
    """entity -> list of (buffer bytes or None, ImageFormat or None) in row order
    (the recording's /__properties are no image rows)."""
    out: dict = {}
    for c in logged(read_rrd(mem.rrd_bytes()).chunks):
        bufs = c.components.get(ch.IMAGE_BUFFER)
        if ch.IMAGE_FORMAT in c.components:
            fmts = ch.formats_from_column(c.components[ch.IMAGE_FORMAT])
        else:
            fmts = [None] * c.num_rows
        for i in range(c.num_rows):
            b = ch.buffer_row(bufs, i) if bufs is not None else None
            out.setdefault(c.entity_path, []).append((None if b is None else bytes(b), fmts[i]))
    return out


def _one(mem, entity):
    rows = _rows(mem)[entity]
    assert len(rows) == 1
    return rows[0]


# --------------------------------------------------------------------- accepted


def test_numpy_rgb_u8_bytes_and_format():
    rec, mem = _stream()
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    rec.log("cam", rr.Image(img))
    buf, fmt = _one(mem, "/cam")
    assert buf == bytes(range(18))
    assert fmt == ImageFormat(3, 2, color_model=ColorModel.RGB, channel_datatype=ChannelDatatype.U8)


def test_big_endian_is_byte_swapped_not_misread():
    rec, mem = _stream()
    img = np.array([[1, 256], [515, 65535]], dtype=">u2")
    rec.log("be", rr.Image(img))
    buf, fmt = _one(mem, "/be")
    assert buf == struct.pack("<4H", 1, 256, 515, 65535)
    assert fmt.channel_datatype == ChannelDatatype.U16 and fmt.color_model == ColorModel.L


def test_non_contiguous_is_packed_row_major():
    rec, mem = _stream()
    base = np.arange(4 * 6, dtype=np.uint8).reshape(4, 6)
    rec.log("nc", rr.Image(base[::2, 1::2]))  # rows 0,2; columns 1,3,5
    buf, fmt = _one(mem, "/nc")
    assert buf == bytes([1, 3, 5, 13, 15, 17])
    assert (fmt.width, fmt.height) == (3, 2)
    rec.log("f", rr.Image(np.asfortranarray(np.array([[1, 2], [3, 4]], dtype=np.uint8))))
    assert _one(mem, "/f")[0] == bytes([1, 2, 3, 4])


def test_squeeze_leading_then_trailing_unit_axes():
    rec, mem = _stream()
    rec.log("s", rr.Image(np.zeros((1, 1, 2, 3, 1), dtype=np.float32)))
    _, fmt = _one(mem, "/s")
    assert (fmt.width, fmt.height, fmt.color_model, fmt.channel_datatype) == (3, 2, ColorModel.L, ChannelDatatype.F32)


@pytest.mark.parametrize(
    "mode,make,expected_model,expected_dt,expected_bytes",
    [
        ("L", lambda: PILImage.frombytes("L", (2, 1), bytes([7, 9])), ColorModel.L, ChannelDatatype.U8, bytes([7, 9])),
        ("RGB", lambda: PILImage.frombytes("RGB", (1, 1), bytes([1, 2, 3])),
         ColorModel.RGB, ChannelDatatype.U8, bytes([1, 2, 3])),
        ("RGBA", lambda: PILImage.frombytes("RGBA", (1, 1), bytes([1, 2, 3, 4])),
         ColorModel.RGBA, ChannelDatatype.U8, bytes([1, 2, 3, 4])),
        ("I;16", lambda: PILImage.frombytes("I;16", (1, 1), struct.pack("<H", 1000)),
         ColorModel.L, ChannelDatatype.U16, struct.pack("<H", 1000)),
        ("F", lambda: PILImage.frombytes("F", (1, 1), struct.pack("<f", 0.5)),
         ColorModel.L, ChannelDatatype.F32, struct.pack("<f", 0.5)),
    ],
)
def test_pil_images(mode, make, expected_model, expected_dt, expected_bytes):
    rec, mem = _stream()
    rec.log("pil", rr.Image(make()))
    buf, fmt = _one(mem, "/pil")
    assert buf == expected_bytes
    assert (fmt.color_model, fmt.channel_datatype) == (expected_model, expected_dt)


def test_pil_palette_becomes_rgb():
    rec, mem = _stream()
    p = PILImage.new("P", (1, 1))
    p.putpalette([10, 20, 30] + [0] * 765)
    rec.log("p", rr.Image(p))
    buf, fmt = _one(mem, "/p")
    assert fmt.color_model in (ColorModel.RGB, ColorModel.RGBA)
    assert buf[:3] == bytes([10, 20, 30])


def test_array_likes():
    class Wrapper:
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a

    rec, mem = _stream()
    rec.log("w", rr.Image(Wrapper(np.array([[5, 6]], dtype=np.int16))))
    rec.log("lst", rr.Image([[1, 2], [3, 4]], color_model="L"))
    buf, fmt = _one(mem, "/w")
    assert buf == struct.pack("<2h", 5, 6) and fmt.channel_datatype == ChannelDatatype.I16
    buf, fmt = _one(mem, "/lst")
    assert fmt.width == 2 and len(buf) == 4 * np.asarray([[1, 2]]).dtype.itemsize


def test_gpu_arrays_go_through_gpu_input_and_are_awaited_off_the_logging_thread(monkeypatch):
    import threading

    host = np.array([[[1, 2, 3]], [[4, 5, 6]]], dtype=np.uint8)  # (H=2, W=1, 3)
    started, waited_on = [], []

    class FakeCuda:
        __cuda_array_interface__ = {"shape": (2, 1, 3), "typestr": "|u1", "data": (0, False), "version": 3}

    import pixelrun.gpu_input as gi

    class Handle(gi.HostCopy):
        shape, dtype = host.shape, host.dtype

        def done(self):
            return True

        def result(self):
            waited_on.append(threading.current_thread())
            return host.copy()

    def to_host_async(obj):
        started.append(obj)
        return Handle()

    monkeypatch.setattr(gi, "to_host_async", to_host_async)
    rec, mem = _stream()
    rec.log("gpu", rr.Image(FakeCuda()))
    assert len(started) == 1 and waited_on == []  # log only queued the copy
    assert _one(mem, "/gpu") == (bytes([1, 2, 3, 4, 5, 6]), ImageFormat(1, 2, color_model="RGB", channel_datatype="U8"))
    assert len(waited_on) == 1 and waited_on[0] is not threading.main_thread()


def test_gpu_image_with_wrong_model_is_rejected_before_its_bytes_arrive(monkeypatch):
    import pixelrun.gpu_input as gi

    class FakeCuda:
        __cuda_array_interface__ = {"shape": (2, 2, 3), "typestr": "|u1", "data": (0, False), "version": 3}

    class Handle(gi.HostCopy):
        shape, dtype = (2, 2, 3), np.dtype(np.uint8)

        def result(self):
            raise AssertionError("a rejected image must not wait for its bytes")

    monkeypatch.setattr(gi, "to_host_async", lambda obj: Handle())
    rec, mem = _stream()
    with pytest.warns(rr.PixelrunWarning, match="needs 4 channel"):
        rec.log("gpu", rr.Image(FakeCuda(), color_model="RGBA"))


def test_one_row_image_with_explicit_model_keeps_its_row():
    rec, mem = _stream()
    rec.log("row", rr.Image(np.arange(6, dtype=np.uint8).reshape(1, 2, 3), color_model="RGB"))
    assert _one(mem, "/row") == (bytes(range(6)), ImageFormat(2, 1, color_model="RGB", channel_datatype="U8"))
    # Without a model contract §1's rule applies: the leading unit axis goes, (2, 3) is L.
    rec.log("row2", rr.Image(np.arange(6, dtype=np.uint8).reshape(1, 2, 3)))
    assert _one(mem, "/row2")[1] == ImageFormat(3, 2, color_model="L", channel_datatype="U8")


def test_color_model_names_and_bgr():
    rec, mem = _stream()
    img = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    rec.log("bgr", rr.Image(img, color_model="BGR"))
    rec.log("l", rr.Image(img[:, :, 0], color_model=rr.ColorModel.L))
    assert _one(mem, "/bgr")[1].color_model == ColorModel.BGR
    assert _one(mem, "/l")[1].color_model == ColorModel.L


def test_bytes_with_pixel_format_and_with_model_datatype():
    rec, mem = _stream()
    nv12 = bytes(range(6 * 4 + 2 * 3 * 2))
    rec.log("nv12", rr.Image(bytes=nv12, width=6, height=4, pixel_format=rr.PixelFormat.NV12))
    # odd size: ceil(W/2) * ceil(H/2) chroma (contract §2): 5x3 -> 15 + 2*3*2 = 27
    rec.log("odd", rr.Image(bytes=bytes(27), width=5, height=3, pixel_format="Y_U_V12_FullRange"))
    rec.log("rgb16", rr.Image(bytes=bytes(12), width=2, height=1, color_model="RGB", datatype="U16"))
    assert _one(mem, "/nv12") == (nv12, ImageFormat(6, 4, pixel_format=PixelFormat.NV12))
    assert _one(mem, "/odd")[1].pixel_format == PixelFormat.Y_U_V12_FullRange
    assert _one(mem, "/rgb16")[1] == ImageFormat(2, 1, color_model="RGB", channel_datatype="U16")


def test_logged_data_is_protected_from_later_mutation():
    rec, mem = _stream()
    img = np.zeros((2, 2), dtype=np.uint8)
    ba = bytearray(4)
    rec.log("m", rr.Image(img))
    rec.log("b", rr.Image(bytes=ba, width=2, height=2, color_model="L", datatype="U8"))
    img[:] = 99
    ba[:] = b"\x63" * 4
    assert _one(mem, "/m")[0] == bytes(4)
    assert _one(mem, "/b")[0] == bytes(4)


def test_opacity_and_draw_order():
    rec, mem = _stream()
    rec.log("o", rr.Image(np.zeros((1, 1), np.uint8), opacity=0.25, draw_order=3))
    (c,) = [c for c in read_rrd(mem.rrd_bytes()).chunks if c.entity_path == "/o"]
    assert c.components[ch.IMAGE_OPACITY].to_pylist() == [[0.25]]
    assert c.components[ch.IMAGE_DRAW_ORDER].to_pylist() == [[3.0]]


# ------------------------------------------------------------ bad-input matrix

BAD = [
    ("dtype", lambda: rr.Image(np.zeros((2, 2), dtype=bool)), "unsupported pixel dtype bool"),
    ("complex", lambda: rr.Image(np.zeros((2, 2), dtype=np.complex64)), "unsupported pixel dtype complex64"),
    ("strings", lambda: rr.Image("not an image"), "unsupported pixel dtype"),
    ("object", lambda: rr.Image(object()), "expected a numeric image array"),
    ("rank1", lambda: rr.Image(np.zeros(5, np.uint8)),
     "expected an image of shape (H, W) or (H, W, C), got shape (5,)"),
    ("rank4", lambda: rr.Image(np.zeros((2, 2, 2, 3), np.uint8)), "got shape (2, 2, 2, 3)"),
    ("2ch", lambda: rr.Image(np.zeros((2, 2, 2), np.uint8)), "cannot infer a color model for 2 channels"),
    ("model-mismatch", lambda: rr.Image(np.zeros((2, 2, 4), np.uint8), color_model="bgr"),
     "color model BGR needs 3 channel(s), but the array of shape (2, 2, 4) has 4"),
    ("model-name", lambda: rr.Image(np.zeros((2, 2), np.uint8), color_model="xyz"), "unknown color model 'xyz'"),
    ("empty", lambda: rr.Image(np.zeros((0, 3), np.uint8)), "needs a width and height of at least 1"),
    ("nv12-short", lambda: rr.Image(bytes=bytes(5), width=2, height=2, pixel_format="NV12"),
     "NV12 2x2 needs 6 bytes (N + 2*cw*ch with N=4, cw=1, ch=1), but the buffer has 5 (1 too few)"),
    ("rgb-long", lambda: rr.Image(bytes=bytes(13), width=2, height=2, color_model="RGB", datatype="U8"),
     "RGB/U8 2x2 needs 12 bytes (2*2 pixels * 3 channels * 1 bytes), but the buffer has 13 (1 too many)"),
    ("no-size", lambda: rr.Image(bytes=bytes(4), pixel_format="Y8_FullRange"), "bytes= needs width= and height="),
    ("no-format", lambda: rr.Image(bytes=bytes(4), width=2, height=2, color_model="L"),
     "bytes= needs either pixel_format=, or both color_model= and datatype="),
    ("bad-pf", lambda: rr.Image(bytes=bytes(4), width=2, height=2, pixel_format="NV16"), "unknown pixel format 'NV16'"),
    ("opacity", lambda: rr.Image(np.zeros((1, 1), np.uint8), opacity="half"), "Opacity"),
]


@pytest.mark.parametrize("name,make,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_input_non_strict_warns_names_entity_and_drops_row(name, make, reason):
    rec, mem = _stream(strict=False)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rec.log(f"bad/{name}", make())
        rec.log("good", rr.Image(np.ones((1, 1), np.uint8)))  # the program goes on
    msgs = [str(x.message) for x in w if issubclass(x.category, rr.PixelrunWarning)]
    assert len(msgs) == 1, msgs
    assert msgs[0].startswith(f"/bad/{name}: ")
    assert reason in msgs[0]
    assert "row dropped" in msgs[0]
    rows = _rows(mem)
    assert f"/bad/{name}" not in rows
    assert rows["/good"] == [(b"\x01", ImageFormat(1, 1, color_model="L", channel_datatype="U8"))]


@pytest.mark.parametrize("name,make,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_input_strict_raises_value_error(name, make, reason):
    rec, mem = _stream(strict=True)
    with pytest.raises(ValueError) as ei:
        rec.log(f"bad/{name}", make())
    assert str(ei.value).startswith(f"/bad/{name}: ") and reason in str(ei.value)
    assert f"/bad/{name}" not in _rows(mem)


def test_strict_from_environment(monkeypatch):
    monkeypatch.setenv("PIXELRUN_STRICT", "1")
    rec, _ = _stream(strict=None)
    # process-wide strict: rr.Image raises at construction, as Rerun's does
    with pytest.raises(ValueError, match="rr.Image: .*unsupported pixel dtype"):
        rec.log("e", rr.Image(np.zeros((1, 1), bool)))
    monkeypatch.setenv("PIXELRUN_STRICT", "0")
    with pytest.warns(rr.PixelrunWarning):
        rec.log("e", rr.Image(np.zeros((1, 1), bool)))


@pytest.mark.parametrize("strict", [False, True])
def test_neither_image_nor_bytes_always_raises(strict):
    with pytest.raises(ValueError, match="needs either image= .* or bytes="):
        rr.Image()
    with pytest.raises(ValueError, match="not both"):
        rr.Image(np.zeros((1, 1), np.uint8), bytes=b"x")


def test_logging_something_that_is_not_an_archetype():
    rec, mem = _stream()
    with pytest.warns(rr.PixelrunWarning, match="/x: expected an archetype .* got int"):
        rec.log("x", 42)
    rec2, _ = _stream(strict=True)
    with pytest.raises(ValueError, match="got int"):
        rec2.log("x", 42)


def test_send_columns_bad_rows_against_static_format():
    rec, mem = _stream()
    rec.log("v", [rr.components.ImageFormat(2, 1, color_model="L", channel_datatype="U8"), rr.Image.indicator()],
            static=True)
    bufs = [b"ab", b"abc", b"cd"]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rec.send_columns("v", indexes=[rr.TimeColumn("t", sequence=[0, 1, 2])],
                         columns=rr.Image.columns(buffer=bufs))
    msgs = [str(x.message) for x in w]
    assert len(msgs) == 1 and msgs[0].startswith("/v: row 1: L/U8 2x1 needs 2 bytes") and "row dropped" in msgs[0]
    temporal = [c for c in read_rrd(mem.rrd_bytes()).chunks if c.entity_path == "/v" and not c.is_static]
    got = [(int(t), bytes(ch.buffer_row(c.components[ch.IMAGE_BUFFER], i)))
           for c in temporal for i, t in enumerate(c.timelines["t"].values)]
    assert got == [(0, b"ab"), (2, b"cd")]
    rec2, _ = _stream(strict=True)
    rec2.log("v", rr.components.ImageFormat(2, 1, color_model="L", channel_datatype="U8"), static=True)
    with pytest.raises(ValueError, match="row 1: L/U8 2x1 needs 2 bytes"):
        rec2.send_columns("v", indexes=[rr.TimeColumn("t", sequence=[0, 1, 2])], columns=rr.Image.columns(buffer=bufs))


def test_send_columns_length_mismatch():
    rec, mem = _stream()
    with pytest.warns(rr.PixelrunWarning, match="/v: column Image:buffer has 2 rows but the time columns have 3"):
        rec.send_columns("v", indexes=[rr.TimeColumn("t", sequence=[0, 1, 2])],
                         columns=rr.Image.columns(buffer=np.zeros((2, 4), np.uint8)))
    assert "/v" not in _rows(mem)


def test_send_columns_bad_rows_against_format_column():
    rec, mem = _stream()
    fmt = rr.components.ImageFormat(2, 1, color_model="L", channel_datatype="U8")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rec.send_columns("v", indexes=[rr.TimeColumn("t", sequence=[0, 1])],
                         columns=rr.Image.columns(buffer=[b"ab", b"abc"], format=fmt))
    assert [str(x.message) for x in w] == [
        "/v: row 1: L/U8 2x1 needs 2 bytes (2*1 pixels * 1 channels * 1 bytes), but the buffer has 3 "
        "(1 too many); row dropped"]
    assert _rows(mem)["/v"] == [(b"ab", ImageFormat(2, 1, color_model="L", channel_datatype="U8"))]
