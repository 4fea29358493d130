"""The three seed examples (only the import line changed) and their current-API twins,
run unmodified as scripts under PIXELRUN_SAVE; the file read back must hold exactly
the expected entities, components, values and times.

Expected pixels are rebuilt here from the example's own description, independently
of the SDK.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixelrun.engine import chunk as ch
from pixelrun.engine.rrd import read_rrd
from pixelrun.kernels.formats import ImageFormat, PixelFormat

HERE = Path(__file__).resolve().parent


def _run(script: str, tmp_path: Path) -> dict:
    out = tmp_path / (script + ".rrd")
    env = dict(os.environ, PIXELRUN_SAVE=str(out))
    env.pop("DISPLAY", None)
    env.pop("PIXELRUN_STRICT", None)
    r = subprocess.run([sys.executable, str(HERE / f"{script}.py")], env=env, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    rec = read_rrd(out)
    assert rec.problems == [] and rec.has_footer
    return _rows(rec)


def _rows(rec) -> dict:
    """entity -> sorted list of (static?, {timeline: value} w/o log_time, components)."""
    out: dict = {}
    for c in rec.chunks:
        fmts = ch.formats_from_column(c.components[ch.IMAGE_FORMAT]) if ch.IMAGE_FORMAT in c.components else None
        for r in range(c.num_rows):
            comps = {}
            if ch.IMAGE_BUFFER in c.components:
                b = ch.buffer_row(c.components[ch.IMAGE_BUFFER], r)
                if b is not None:
                    comps["buffer"] = bytes(b)
            if fmts is not None and fmts[r] is not None:
                comps["format"] = fmts[r]
            times = {k: int(v.values[r]) for k, v in c.timelines.items() if k != "log_time"}
            has_log_time = "log_time" in c.timelines
            out.setdefault(c.entity_path, []).append((c.is_static, has_log_time, tuple(sorted(times.items())), comps))
    for v in out.values():
        v.sort(key=lambda x: (not x[0], x[2]))
    return out


def _rgb(w, h):
    return ImageFormat(w, h, color_model="RGB", channel_datatype="U8")


def _expected_simple():
    img = bytearray()
    for y in range(200):
        for x in range(300):
            green = 50 <= y < 150 and 50 <= x < 150
            img += bytes((0, 255, 0) if green else (255, 0, 0))
    return {"/image": [(False, True, (), {"buffer": bytes(img), "format": _rgb(300, 200)})]}


def _expected_formats():
    rgb, green, bgr = bytearray(), bytearray(), bytearray()
    for y in range(256):
        for x in range(256):
            px = (x, min(255, x + y), y)
            rgb += bytes(px)
            green.append(px[1])
            bgr += bytes(px[::-1])
    yuv = bytes([128] * 65536) + bytes([(2 * x) % 256 for y in range(256) for x in range(128)]) \
        + bytes([y for y in range(256) for x in range(128)])
    return {
        "/image_rgb": [(False, True, (), {"buffer": bytes(rgb), "format": _rgb(256, 256)})],
        "/image_green_only": [(False, True, (), {
            "buffer": bytes(green), "format": ImageFormat(256, 256, color_model="L", channel_datatype="U8")})],
        "/image_bgr": [(False, True, (), {
            "buffer": bytes(bgr), "format": ImageFormat(256, 256, color_model="BGR", channel_datatype="U8")})],
        "/image_yuv422": [(False, True, (), {
            "buffer": yuv, "format": ImageFormat(256, 256, pixel_format=PixelFormat.Y_U_V16_FullRange)})],
    }


def _expected_send_columns():
    rows = [(True, False, (), {"format": _rgb(300, 200)})]
    for t in range(20):
        frame = np.zeros((200, 300, 3), np.uint8)
        frame[:, :, 2] = 255
        frame[50:150, t * 10:t * 10 + 100, 1] = 255
        rows.append((False, False, (("step", t),), {"buffer": frame.tobytes()}))
    return {"/images": rows}


# rr.init's start time, a static /__properties row with no image components, as Rerun writes it
PROPERTIES_ROWS = {"/__properties": [(True, False, (), {})]}

CASES = [
    ("image_simple", _expected_simple),
    ("image_formats", _expected_formats),
    ("image_send_columns", _expected_send_columns),
]


@pytest.mark.parametrize("name,expected", CASES, ids=[c[0] for c in CASES])
def test_seed_example(name, expected, tmp_path):
    got = _run(f"seed_{name}", tmp_path)
    assert got == {**PROPERTIES_ROWS, **expected()}


@pytest.mark.parametrize("name,expected", CASES, ids=[c[0] for c in CASES])
def test_current_api_twin_gives_the_same_data(name, expected, tmp_path):
    assert _run(f"current_{name}", tmp_path) == {**PROPERTIES_ROWS, **expected()}


def test_seed_example_3_row_count_and_times(tmp_path):
    got = _run("seed_image_send_columns", tmp_path)["/images"]
    static = [r for r in got if r[0]]
    temporal = [r for r in got if not r[0]]
    assert len(static) == 1 and set(static[0][3]) == {"format"}
    assert [dict(r[2])["step"] for r in temporal] == list(range(20))
