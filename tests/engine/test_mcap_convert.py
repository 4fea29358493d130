"""`pixelrun convert IN.mcap OUT.rrd`: the recording holds only forms Rerun 0.41 has, its
pictures are the bag's (pixels computed in test_mcap.py with NumPy), Rerun verifies it
and its headless viewer shows the colours of layouts it lacks natively (UYVY, NV21 with
padded rows)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mcap")
pytest.importorskip("mcap_ros2")

from PIL import Image as PILImage

from pixelrun.engine import api, rrd
from pixelrun.engine.chunk import formats_from_column
from pixelrun.engine.cli.convert import convert
from pixelrun.engine.cli.main import main
from tests.engine.test_mcap import CASES, _bt601_limited
from tests.mcap_fixtures import RawImage, padded, write_ros_bag

ROOT = Path(__file__).resolve().parents[2]
RERUN_BIN = ROOT / ".venv-rerun" / "bin" / "rerun"
needs_rerun = pytest.mark.skipif(not RERUN_BIN.exists(), reason="real rerun 0.41 not installed in .venv-rerun")

BE_VALUES = np.array([[0, 300], [65535, 1234]], np.uint16)
# 16-bit Bayer has no lossless form in Rerun 0.41: left out unless kept in pixelrun's form
PIXELRUN_ONLY = {t for t in CASES if t.endswith("16") and "bayer" in t}
EXTRA = [
    RawImage("/cam/mono16_be", "mono16", 2, 2, 4, BE_VALUES.astype(">u2").tobytes(), is_bigendian=True),
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    d = tmp_path_factory.mktemp("convert")
    src, dst = d / "all.mcap", d / "all.rrd"
    write_ros_bag(src, [m for m, _ in CASES.values()] + EXTRA)
    result = convert(src, dst)
    return src, dst, result


def test_every_topic_shows_the_same_pictures_from_the_rrd(converted):
    _, dst, _ = converted
    store = api.open_store(str(dst))
    for topic, (_, want) in CASES.items():
        if topic in PIXELRUN_ONLY:
            continue
        got = api.render(store, entity=topic, backend="numpy")
        tol = 1 if any(k in topic for k in ("nv", "yuy", "uyvy", "i420")) else 0
        assert np.abs(got.astype(int) - want.astype(int)).max() <= tol, topic
    # big-endian mono16 came out little-endian: the same values, auto range [0, 65535]
    got = api.render(store, entity="/cam/mono16_be", backend="numpy")[..., 0]
    want = np.floor((510 * BE_VALUES.astype(np.int64) + 65535) / (2 * 65535)).astype(np.uint8)
    np.testing.assert_array_equal(got, want)


def test_only_rerun_forms_are_written(converted):
    _, dst, result = converted
    rec = rrd.read_rrd(dst.read_bytes())
    formats = []
    for c in rec.chunks:
        col = c.components.get("Image:format")
        if col is not None:
            assert [f.name for f in col.type.value_type] == ["width", "height", "pixel_format", "color_model",
                                                            "channel_datatype"]
            formats += formats_from_column(col)
    assert formats and all(f.pixel_format is None or f.pixel_format.value < 200 for f in formats)
    assert result.transforms["/cam/uyvy_padded"] == {"UYVY -> YUY2 byte order", "padded rows -> tight"}
    assert result.transforms["/cam/nv21"] == {"NV21 -> NV12"}
    assert result.transforms["/cam/i420"] == {"I420 -> NV12"}
    assert result.transforms["/cam/mono16_be"] == {"big-endian -> little-endian"}
    assert "/cam/rgb8" not in result.transforms
    for topic in PIXELRUN_ONLY:
        assert any(p.startswith(f"{topic} at log time") and "no lossless form in Rerun 0.41" in p
                   for p in result.not_shown), topic
    assert result.written == len(CASES) - len(PIXELRUN_ONLY) + 1
    assert set(result.pixelrun_only) == PIXELRUN_ONLY


def test_keep_pixelrun_forms_writes_16_bit_bayer_that_pixelrun_shows(converted, tmp_path):
    src, _, _ = converted
    out = tmp_path / "kept.rrd"
    result = convert(src, out, topics=sorted(PIXELRUN_ONLY), keep_pixelrun_forms=True)
    assert not result.not_shown and result.written == len(PIXELRUN_ONLY)
    store = api.open_store(str(out))
    for topic in PIXELRUN_ONLY:  # padded rows (rggb16) came out tight
        np.testing.assert_array_equal(api.render(store, entity=topic, backend="numpy"), CASES[topic][1])


def test_cli_names_what_rerun_will_not_show(converted, tmp_path, capsys):
    src, _, _ = converted
    out = tmp_path / "cli.rrd"
    assert main(["convert", "-q", str(src), str(out), "--topics", "/cam/uyvy", "/cam/bayer_rggb16", "/nope"]) == 1
    cap = capsys.readouterr()
    assert "1 image messages written" in cap.out and "/cam/uyvy: rewritten losslessly" in cap.out
    assert "/cam/bayer_rggb16 at log time" in cap.err and "Rerun 0.41 will not show" in cap.err
    assert "nothing written for topic '/nope'" in cap.err
    store = api.open_store(str(out))
    assert store.entities() == ["/cam/uyvy"]
    assert not os.path.exists(str(out) + ".part")


@needs_rerun
def test_rerun_verifies_the_recording(converted):
    _, dst, _ = converted
    proc = subprocess.run([str(RERUN_BIN), "rrd", "verify", str(dst)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "verified without error" in proc.stderr + proc.stdout


W, H = 64, 48


def _uyvy(y, u, v) -> bytes:
    return np.tile(np.array([u, y, v, y] * (W // 2), np.uint8), (H, 1)).tobytes()


def _nv21_padded(y, u, v, step) -> bytes:
    return padded(np.full((H, W), y, np.uint8), step) + padded(np.tile(np.array([v, u] * (W // 2), np.uint8),
                                                                       (H // 2, 1)), step)


@needs_rerun
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed")
@pytest.mark.parametrize("name,msg,yuv", [
    ("uyvy", RawImage("/cam", "yuv422", W, H, 2 * W, _uyvy(81, 90, 240)), (81, 90, 240)),
    ("nv21", RawImage("/cam", "nv21", W, H, 80, _nv21_padded(145, 54, 34, 80)), (145, 54, 34)),
])
def test_rerun_shows_the_colour_of_layouts_it_lacks(tmp_path, name, msg, yuv):
    src, dst, png = tmp_path / f"{name}.mcap", tmp_path / f"{name}.rrd", tmp_path / "shot.png"
    write_ros_bag(src, [msg])
    convert(src, dst)
    want = _bt601_limited(*(np.array([float(c)]) for c in yuv))[0].astype(int)
    env = dict(os.environ, XDG_RUNTIME_DIR="/tmp", RERUN_TELEMETRY_ENABLED="false")
    for _ in range(3):  # Rerun may screenshot before its loader thread has shown the file
        subprocess.run(["xvfb-run", "-a", str(RERUN_BIN), str(dst), "--headless", "--window-size", "800x600",
                        "--screenshot-to", str(png)], env=env, check=True, timeout=300, capture_output=True)
        img = np.asarray(PILImage.open(png).convert("RGB")).astype(int)
        hits = int((np.abs(img - want).max(axis=-1) <= 2).sum())
        if hits:
            break
    assert hits > 10_000, f"{name}: expected colour {want.tolist()} on {hits} pixels only"
    np.testing.assert_array_equal(api.render(str(dst), backend="numpy")[0, 0, :3], want)


def test_convert_a_rosbag2_db3(tmp_path):
    from tests.mcap_fixtures import write_db3

    src, dst = tmp_path / "bag_0.db3", tmp_path / "bag.rrd"
    write_db3(src, [CASES["/cam/uyvy"][0], CASES["/cam/rgb8"][0]])
    result = convert(src, dst)
    assert result.written == 2 and result.transforms == {"/cam/uyvy": {"UYVY -> YUY2 byte order"}}
    store = api.open_store(str(dst))
    np.testing.assert_array_equal(api.render(store, entity="/cam/rgb8", backend="numpy"), CASES["/cam/rgb8"][1])
    if RERUN_BIN.exists():
        proc = subprocess.run([str(RERUN_BIN), "rrd", "verify", str(dst)], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
