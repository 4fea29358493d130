"""pixelrun's own pixel formats (UYVY, NV21, I420, 16-bit Bayer: values from 200 on) in
the SDK: a row using one is logged (pixelrun reads it) and a RerunCompatibilityWarning
says once per entity and format that Rerun 0.41 cannot read it; the claim about Rerun
is checked against Rerun 0.41 itself (``rerun rrd verify``)."""

from __future__ import annotations

import os
import subprocess
import warnings

import numpy as np
import pytest

import pixelrun as rr
from pixelrun.engine.rrd.decode import read_rrd
from pixelrun.errors import PixelrunWarning, RerunCompatibilityWarning

RERUN = os.path.join(os.path.dirname(__file__), "..", "..", ".venv-rerun", "bin", "rerun")
W, H = 8, 6
UYVY = np.tile(np.array([90, 81, 240, 81] * (W // 2), np.uint8), (H, 1)).tobytes()


def _log_all(rec, calls) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for entity, image in calls:
            rec.log(entity, image)
    return [w for w in caught if issubclass(w.category, PixelrunWarning)]


def _formats(rec_bytes: bytes) -> dict:
    """entity -> the pixel_format of every Image row written."""
    out: dict = {}
    for c in read_rrd(rec_bytes).chunks:
        col = c.components.get("Image:format")
        if col is not None:
            out.setdefault(c.entity_path, []).extend(f[0]["pixel_format"] for f in col.to_pylist())
    return out


def test_a_pixelrun_only_format_is_logged_and_named_once_per_entity(request):
    ent = f"h16b/{request.node.name}"
    rec = rr.RecordingStream("pixelrun-formats")
    mem = rec.memory_recording()
    rec.set_time("step", sequence=0)
    uyvy = rr.Image(bytes=UYVY, width=W, height=H, pixel_format="UYVY")
    bayer16 = rr.Image(bytes=bytes(W * H * 2), width=W, height=H, pixel_format="BayerRGGB16")
    nv12 = rr.Image(bytes=bytes(W * H * 3 // 2), width=W, height=H, pixel_format="NV12")
    got = _log_all(rec, [(f"{ent}/a", uyvy), (f"{ent}/a", uyvy), (f"{ent}/b", uyvy), (f"{ent}/c", nv12),
                         (f"{ent}/d", bayer16), (f"{ent}/d", bayer16)])
    rec.flush()
    msgs = [str(w.message) for w in got]
    assert all(w.category is RerunCompatibilityWarning for w in got), msgs
    assert len(msgs) == 3, msgs  # /a once, /b once, /d once; NV12 is Rerun's own: nothing
    a, b, d = msgs
    assert a.startswith(f"/{ent}/a: pixel format UYVY (200)") and b.startswith(f"/{ent}/b: pixel format UYVY")
    for m in (a, d):
        assert "Rerun 0.41 cannot read it" in m and "rrd verify" in m and "shows no image" in m
    assert "log it as YUY2" in a
    assert d.startswith(f"/{ent}/d: pixel format BayerRGGB16 (210)") and "log it as" not in d
    # every row was kept, with its format as logged
    fmts = _formats(mem.rrd_bytes())
    assert fmts[f"/{ent}/a"] == [200, 200] and fmts[f"/{ent}/b"] == [200]
    assert fmts[f"/{ent}/c"] == [26] and fmts[f"/{ent}/d"] == [210, 210]
    rec.close()


def test_send_columns_with_a_pixelrun_only_format_warns_once(request):
    ent = f"h16b/{request.node.name}"
    rec = rr.RecordingStream("pixelrun-formats-columns")
    mem = rec.memory_recording()
    fmt = rr.components.ImageFormat(width=W, height=H, pixel_format="NV21")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            rec.send_columns(ent, indexes=[rr.TimeColumn("step", sequence=[0, 1, 2])],
                             columns=rr.Image.columns(buffer=np.zeros((3, W * H * 3 // 2), np.uint8), format=fmt))
    rec.flush()
    got = [str(w.message) for w in caught if w.category is RerunCompatibilityWarning]
    assert len(got) == 1 and got[0].startswith(f"/{ent}: pixel format NV21 (201)") and "NV12" in got[0]
    assert _formats(mem.rrd_bytes())[f"/{ent}"] == [201] * 6
    rec.close()


@pytest.mark.skipif(not os.path.exists(RERUN), reason="Rerun 0.41 is not installed in .venv-rerun")
def test_rerun_041_rejects_what_the_warning_says_it_rejects(tmp_path, request):
    """The warning's claim, checked: `rerun rrd verify` fails on the UYVY entity's
    ImageFormat and passes the same recording without it."""
    paths = {}
    for name, with_uyvy in (("both", True), ("without", False)):
        rec = rr.RecordingStream("pixelrun-formats-verify")
        path = paths[name] = tmp_path / f"{name}.rrd"
        rec.save(str(path))
        rec.set_time("step", sequence=0)
        calls = [("cam/rgb", rr.Image(np.zeros((H, W, 3), np.uint8)))]
        if with_uyvy:
            calls.append((f"h16b/{request.node.name}", rr.Image(bytes=UYVY, width=W, height=H, pixel_format="UYVY")))
        _log_all(rec, calls)
        rec.close()
    bad = subprocess.run([RERUN, "rrd", "verify", str(paths["both"])], capture_output=True, text=True, timeout=120)
    good = subprocess.run([RERUN, "rrd", "verify", str(paths["without"])], capture_output=True, text=True,
                          timeout=120)
    assert good.returncode == 0, good.stderr
    assert bad.returncode != 0
    assert "Image:format" in bad.stderr + bad.stdout and "PixelFormat" in bad.stderr + bad.stdout
