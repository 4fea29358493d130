"""`pixelrun render` (engine/cli/render.py) on a Rerun-written fixture recording.

tests/engine/fixtures/rerun_logged.rrd was written by Rerun 0.41 itself; its
/static_rgb entity is an RGB U8 image whose bytes expected.json holds, so the
rendered PNG must be exactly those bytes with alpha 255.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelrun.engine.cli.main import main
from pixelrun.engine.cli.render import output_path, parse_background, parse_time, safe_filename, time_width
from pixelrun.kernels.backends import availability

FIXTURES = Path(__file__).parent / "fixtures"
REC = FIXTURES / "rerun_logged.rrd"
BACKENDS = [b for b in ("wgpu", "numpy") if availability(b)[0]]


def static_rgb() -> np.ndarray:
    spec = json.loads((FIXTURES / "expected.json").read_text())["files"]["rerun_logged.rrd"]
    q = next(q for q in spec if q["entity"] == "/static_rgb" and q["image"])
    f = q["image"]["format"]
    rgb = np.frombuffer(base64.b64decode(q["image"]["buffer"]), np.uint8).reshape(f["height"], f["width"], 3)
    return np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_render_entity_to_png(tmp_path, backend):
    out = tmp_path / "static.png"
    assert main(["render", str(REC), "--entity", "static_rgb", "--timeline", "step", "--time", "3",
                 "-o", str(out), "--backend", backend]) == 0
    png = np.asarray(Image.open(out))
    assert png.shape[2] == 4 and np.array_equal(png, static_rgb())


def test_all_times_writes_one_png_per_time_point(tmp_path):
    from pixelrun.engine.api import open_source, time_points

    want = [int(t) for t in time_points(open_source(str(REC)), "step", "/cam")]
    assert main(["render", str(REC), "--entity", "cam", "--timeline", "step", "--all-times",
                 "-o", str(tmp_path / "frames") + "/", "-q", "--backend", BACKENDS[0]]) == 0
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == sorted(f"step_{t}.png" for t in want)


def test_unknown_timeline_is_reported(tmp_path, capsys):
    assert main(["render", str(REC), "--timeline", "nope", "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert "nope" in err and "step" in err


def test_missing_file_is_reported(tmp_path, capsys):
    assert main(["render", str(tmp_path / "missing.rrd"), "-o", str(tmp_path / "x.png")]) == 1
    assert "missing.rrd" in capsys.readouterr().err


def test_option_parsers():
    assert parse_background("1,2,3") == (1, 2, 3, 255)
    assert parse_background("1,2,3,4") == (1, 2, 3, 4)
    assert parse_time("19", "sequence") == 19
    assert parse_time("1.5", "duration") == 1_500_000_000
    with pytest.raises(ValueError):
        parse_time("1.5", "sequence")
    assert output_path("f_{time:03d}.png", "step", 7) == Path("f_007.png")
    assert output_path("out.png", "step", 7) == Path("out_7.png")
    assert output_path("dir/", "step", 7) == Path("dir/step_7.png")
    # zero-padded to the largest time's width, so the names sort in time order
    assert output_path("dir/", "step", 7, width=3) == Path("dir/step_007.png")
    assert output_path("out.png", "step", 7, width=2) == Path("out_07.png")
    assert output_path("f_{time}.png", "step", 7, width=3) == Path("f_7.png")  # a pattern says its own format
    assert time_width([3, 12, -100]) == 3 and time_width([0]) == 1


class _MemoryRecording:
    """Anything with rrd_bytes() is a memory recording to render()."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def rrd_bytes(self) -> bytes:
        return self._data


@pytest.mark.parametrize("backend", BACKENDS)
def test_render_accepts_path_memory_recording_and_store(backend):
    from pixelrun.engine.api import open_source, render

    want = static_rgb()
    for source in (str(REC), _MemoryRecording(REC.read_bytes()), open_source(str(REC))):
        got = render(source, entity="/static_rgb", timeline="step", time=0, backend=backend)
        assert np.array_equal(got, want), type(source).__name__


def test_render_python_api_reports_unknown_timeline():
    from pixelrun.engine.api import render

    with pytest.raises(ValueError, match="not in this recording"):
        render(str(REC), timeline="nope")


def test_render_unknown_backend_is_a_clear_error():
    from pixelrun.engine.api import render

    with pytest.raises(ValueError, match="unknown render backend"):
        render(str(REC), backend="opengl")


def test_safe_filename_keeps_safe_names_and_tames_the_rest():
    assert safe_filename("step") == "step" and safe_filename("log_time") == "log_time"
    assert safe_filename("température") == "température"  # letters of any script are kept
    names = ["../escaped", "/abs/path", "a/b", "nul\x00", "x" * 300, "..", ".", "", "a\\b", "new\nline"]
    safe = [safe_filename(n) for n in names]
    assert len(set(safe)) == len(names)  # distinct names stay distinct
    for n, s in zip(names, safe):
        assert "/" not in s and "\\" not in s and ".." not in s and not s.startswith("."), (n, s)
        assert s.isprintable() and 0 < len(s) <= 64 + 9, (n, s)
    assert safe_filename("a/b").startswith("a_b-") and safe_filename("x" * 300).startswith("x" * 64 + "-")
    assert output_path("dir/", "../up", 3).parent == Path("dir")
    assert output_path("dir/{timeline}_{time}.png", "/abs", 3).parent == Path("dir")
