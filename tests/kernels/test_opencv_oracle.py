"""Outside oracles for the reference decoder.

- OpenCV's NV12 and YUY2 -> RGBA (BT.601, limited range, nearest chroma, like contract §2)
  must agree within 2 LSB on random data at even sizes. OpenCV clamps Y - 16 at 0
  (the contract does not: Y below 16 is simply darker than black and clamps at the end, which
  gives different colours when chroma is strong), so Y is drawn from 16..255 here.
- OpenCV's BGR -> RGBA and GRAY -> RGBA must agree exactly with BGR/U8 and L/U8.
- The BT.709 planar formats (I444, I422, I420, both ranges) and Y8 against contract §2's
  formula written below in vectorised float64 on random planes.
"""

from __future__ import annotations

import numpy as np
import pytest

from pixelrun.kernels.formats import ImageFormat, PixelFormat
from pixelrun.kernels.reference.convert import to_display_rgba

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (the `test` extra) is the outside oracle")

EVEN_SIZES = [(2, 2), (4, 6), (16, 8), (64, 48), (320, 240)]


def _random_yuv420sp(rng, w, h):
    n = w * h
    data = rng.integers(0, 256, n * 3 // 2, dtype=np.uint8)
    data[:n] = rng.integers(16, 256, n, dtype=np.uint8)
    return data


@pytest.mark.parametrize("w,h", EVEN_SIZES)
def test_nv12_agrees_with_opencv(w, h):
    data = _random_yuv420sp(np.random.default_rng(w + h), w, h)
    ours = to_display_rgba(data, ImageFormat(w, h, pixel_format=PixelFormat.NV12))
    theirs = cv2.cvtColor(data.reshape(h * 3 // 2, w), cv2.COLOR_YUV2RGBA_NV12)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 2


@pytest.mark.parametrize("w,h", EVEN_SIZES)
def test_yuy2_agrees_with_opencv(w, h):
    rng = np.random.default_rng(w * h)
    data = rng.integers(0, 256, w * h * 2, dtype=np.uint8)
    data[0::2] = rng.integers(16, 256, w * h, dtype=np.uint8)  # Y0 U Y1 V: Y at even bytes
    ours = to_display_rgba(data, ImageFormat(w, h, pixel_format=PixelFormat.YUY2))
    theirs = cv2.cvtColor(data.reshape(h, w, 2), cv2.COLOR_YUV2RGBA_YUY2)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 2


@pytest.mark.parametrize("w,h", [(1, 1), (7, 2), (64, 48)])
def test_bgr_and_grey_u8_agree_exactly_with_opencv(w, h):
    rng = np.random.default_rng(7)
    bgr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ours = to_display_rgba(bgr.tobytes(), ImageFormat(w, h, color_model="BGR", channel_datatype="U8"))
    assert (ours == cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA)).all()
    grey = rng.integers(0, 256, (h, w), dtype=np.uint8)
    ours = to_display_rgba(grey.tobytes(), ImageFormat(w, h, color_model="L", channel_datatype="U8"))
    assert (ours == cv2.cvtColor(grey, cv2.COLOR_GRAY2RGBA)).all()


# contract §2, BT.709: R = y + 1.575 v, G = y - 0.187 u - 0.468 v, B = y + 1.856 u
BT709_FORMATS = {
    # name: (chroma shift x, shift y, y offset, y scale, chroma scale)
    "Y_U_V24_LimitedRange": (0, 0, 16.0, 219.0, 224.0),
    "Y_U_V24_FullRange": (0, 0, 0.0, 255.0, 255.0),
    "Y_U_V16_LimitedRange": (1, 0, 16.0, 219.0, 224.0),
    "Y_U_V16_FullRange": (1, 0, 0.0, 255.0, 255.0),
    "Y_U_V12_LimitedRange": (1, 1, 16.0, 219.0, 224.0),
    "Y_U_V12_FullRange": (1, 1, 0.0, 255.0, 255.0),
}


def _q(x):
    return np.floor(np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@pytest.mark.parametrize("name", list(BT709_FORMATS))
@pytest.mark.parametrize("w,h", [(64, 48), (33, 17), (1, 9), (9, 1)])
def test_bt709_planar_against_float64_formula(name, w, h):
    sx, sy, yo, ys, cs = BT709_FORMATS[name]
    cw, ch = -(-w // (1 << sx)), -(-h // (1 << sy))
    rng = np.random.default_rng(len(name) + w)
    Y = rng.integers(0, 256, (h, w), dtype=np.uint8)
    U = rng.integers(0, 256, (ch, cw), dtype=np.uint8)
    V = rng.integers(0, 256, (ch, cw), dtype=np.uint8)
    data = Y.tobytes() + U.tobytes() + V.tobytes()

    # nearest chroma: each pixel reads chroma sample (x >> sx, y >> sy)
    def up(P):
        return np.repeat(np.repeat(P, 1 << sy, axis=0), 1 << sx, axis=1)[:h, :w].astype(np.float64)

    y = (Y.astype(np.float64) - yo) / ys
    u, v = (up(U) - 128.0) / cs, (up(V) - 128.0) / cs
    want = np.stack([_q(y + 1.575 * v), _q(y - 0.187 * u - 0.468 * v), _q(y + 1.856 * u),
                     np.full((h, w), 255, np.uint8)], axis=-1)

    got = to_display_rgba(data, ImageFormat(w, h, pixel_format=PixelFormat[name]))
    assert (got == want).all()


@pytest.mark.parametrize("name,yo,ys", [("Y8_LimitedRange", 16.0, 219.0), ("Y8_FullRange", 0.0, 255.0)])
def test_y8_against_float64_formula(name, yo, ys):
    Y = np.arange(256, dtype=np.uint8).reshape(16, 16)
    got = to_display_rgba(Y.tobytes(), ImageFormat(16, 16, pixel_format=PixelFormat[name]))
    grey = _q((Y.astype(np.float64) - yo) / ys)
    assert (got[..., :3] == grey[..., None]).all() and (got[..., 3] == 255).all()
