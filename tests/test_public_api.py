"""The public surface as the README shows it: its Python blocks run verbatim, the
engine's errors, and the command line's conventions (run as a user runs it)."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pixelrun as rr
import pixelrun.engine
from pixelrun.engine import NotAnRrdFileError, NotFoundError, open_store, render
from pixelrun.engine.store.store import ChunkStore
from pixelrun.engine.viewer.data import ViewerData

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)

# What the README's logging block leaves undefined: a small BGR frame and NV12 bytes.
BGR = np.random.default_rng(7).integers(0, 256, (4, 6, 3), dtype=np.uint8)
PRELUDE = (
    "import numpy as np\n"
    "bgr_frame = np.random.default_rng(7).integers(0, 256, (4, 6, 3), dtype=np.uint8)\n"
    "nv12 = bytes(1920 * 1080 * 3 // 2)\n"
)


def _block(marker: str) -> str:
    (block,) = [b for b in BLOCKS if marker in b]
    return block


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELRUN_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def readme_recording(tmp_path_factory) -> Path:
    """REC.rrd written by the README's logging block, run as an unmodified script with
    PIXELRUN_SAVE (as the README says tests do), in a folder of its own."""
    folder = tmp_path_factory.mktemp("readme")
    script = folder / "robot.py"
    script.write_text(PRELUDE + _block("rr.init("))
    proc = subprocess.run([sys.executable, str(script)], cwd=folder, capture_output=True, text=True,
                          env=_env(PIXELRUN_SAVE=str(folder / "REC.rrd")), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return folder


def test_readme_render_block_runs_as_written(readme_recording, monkeypatch, capsys):
    monkeypatch.chdir(readme_recording)
    scope: dict = {}
    exec(compile(_block("from pixelrun.engine import"), "README.md", "exec"), scope)
    want_left = np.concatenate([BGR[..., ::-1], np.full((4, 6, 1), 255, np.uint8)], axis=-1)
    assert np.array_equal(scope["left"], want_left)  # BGR logged, RGBA rendered
    assert scope["rgba"].shape == (1080, 1920, 4)  # the NV12 image sets the canvas
    assert np.array_equal(scope["same"], scope["rgba"])
    assert isinstance(scope["store"], ChunkStore)
    printed = capsys.readouterr().out
    assert "cam/right" in printed and "/cam/left" in printed and "/cam/nv12" in printed


def test_render_signature_is_the_documented_one():
    sig = inspect.signature(pixelrun.engine.render)
    assert str(sig).startswith("(source: 'Source', *, entity: 'Optional[str]' = None, "
                               "timeline: 'Optional[str]' = None, time: 'Optional[int]' = None, "
                               "backend: 'str' = 'auto', background: 'Optional[Color]' = None)")
    assert "render(source, *, entity=None, timeline=None, time=None, backend=\"auto\"" in README.replace("\n", " ")
    assert callable(pixelrun.engine.render) and callable(pixelrun.engine.open_store)


# ------------------------------------------------------------------ errors of the API


@pytest.fixture(scope="module")
def recording():
    """Two entities on timeline 'step' at 3..12 (two digits: padding shows)."""
    stream = rr.new_recording("public-api")
    mem = stream.memory_recording()
    for t in range(3, 13):
        stream.set_time("step", sequence=t)
        stream.log("world/cam", rr.Image(np.full((2, 3, 3), t, np.uint8)))
        stream.log("world/depth", rr.Image(np.full((2, 2, 3), 200, np.uint8)))
    stream.flush()
    return mem.rrd_bytes()


def test_unknown_entity_raises_lookup_error_listing_the_entities(recording):
    with pytest.raises(LookupError) as info:
        render(recording, entity="world/lidar", backend="numpy")
    assert isinstance(info.value, NotFoundError)
    msg = str(info.value)
    assert "world/lidar" in msg and "/world/cam" in msg and "/world/depth" in msg


def test_unknown_timeline_raises_lookup_error_listing_the_timelines(recording):
    with pytest.raises(NotFoundError, match=r"'frame' is not in this recording .*step"):
        render(recording, timeline="frame", backend="numpy")


def test_time_before_any_data_raises_lookup_error_with_the_range(recording):
    with pytest.raises(NotFoundError, match=r"at or before 1 .*3\.\.12, 10 time point"):
        render(recording, timeline="step", time=1, backend="numpy")
    # at or after the first time point the view is drawn
    assert render(recording, timeline="step", time=3, backend="numpy").shape == (2, 3, 4)


def test_a_file_that_is_not_a_recording_says_so(tmp_path):
    junk = tmp_path / "photo.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(NotAnRrdFileError, match=re.escape(f"not an .rrd file: {junk}")) as info:
        render(str(junk))
    assert isinstance(info.value, ValueError)
    with pytest.raises(NotAnRrdFileError):
        open_store(junk)


def test_viewer_root_shows_only_that_subtree(recording):
    data = ViewerData(open_store(recording))
    data.playback.timeline, data.playback.time = "step", 12
    assert {l.entity for l in data.layers()} == {"/world/cam", "/world/depth"}
    data.root = "world/cam"
    assert [l.entity for l in data.layers()] == ["/world/cam"]


# ------------------------------------------------------------------ the command line


def _cli(*args, cwd=None, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pixelrun", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=_env(**env), timeout=180)


@pytest.fixture(scope="module")
def rec_file(tmp_path_factory, recording) -> Path:
    path = tmp_path_factory.mktemp("cli") / "rec.rrd"
    path.write_bytes(recording)
    return path


def test_version_and_help_list_every_command_with_a_description():
    from importlib.metadata import version

    proc = _cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"pixelrun {version('pixelrun')}"
    proc = _cli("--help")
    assert proc.returncode == 0
    for name in ("setup", "formats", "demo", "render", "info", "view"):
        line = next((l for l in proc.stdout.splitlines() if l.split()[:1] == [name]), "")
        assert len(line.split()) > 2, f"no description for {name}: {proc.stdout}"  # name + words


def test_render_unknown_entity_exits_nonzero_with_the_entities(rec_file, tmp_path):
    proc = _cli("render", rec_file, "--entity", "world/lidar", "-o", tmp_path / "x.png")
    assert proc.returncode == 1
    assert "world/lidar" in proc.stderr and "/world/cam" in proc.stderr and "/world/depth" in proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_view_unknown_entity_exits_nonzero_with_the_entities(rec_file, tmp_path, xvfb_display):
    proc = _cli("view", rec_file, "--entity", "world/lidar", "--no-listen",
                "--screenshot-to", tmp_path / "shot.png", "--screenshot-timeout", "60")
    assert proc.returncode == 1
    assert "world/lidar" in proc.stderr and "/world/cam" in proc.stderr and "/world/depth" in proc.stderr


def test_all_times_names_are_zero_padded_and_sort_in_time_order(rec_file, tmp_path):
    proc = _cli("render", rec_file, "--all-times", "--entity", "world/cam", "-o", tmp_path / "frames/",
                "-q", "--backend", "numpy")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == ["step_03.png", "step_04.png", "step_05.png", "step_06.png", "step_07.png",
                     "step_08.png", "step_09.png", "step_10.png", "step_11.png", "step_12.png"]


def test_unsupported_output_extension_names_the_supported_ones(rec_file, tmp_path):
    proc = _cli("render", rec_file, "-o", tmp_path / "x.jpg")
    assert proc.returncode == 1
    assert "'.jpg'" in proc.stderr and "supported: .png" in proc.stderr
