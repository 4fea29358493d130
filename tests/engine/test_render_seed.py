"""The three seed examples (contract §1), recorded by the SDK and rendered headless.

Each example's code is the seed's, unchanged except the import line; it runs in a
subprocess with PIXELRUN_SAVE pointing at a file (so `spawn=True` starts no viewer),
and the recording is rendered with `pixelrun.engine.api` on every backend present.
Expected pixels are the arrays the examples themselves build, written out here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixelrun.engine.api import open_source, render, time_points
from pixelrun.kernels.backends import availability
from pixelrun.kernels.formats import ImageFormat, PixelFormat
from pixelrun.kernels.reference import convert as reference

# The seed examples as tests/examples/ holds them: unchanged but for the import line.
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = {"ex1": "seed_image_simple", "ex2": "seed_image_formats", "ex3": "seed_image_send_columns"}

BACKENDS = [b for b in ("wgpu", "numpy") if availability(b)[0]]


def record(tmp_path, script_name: str) -> str:
    """Run an example script in a subprocess with PIXELRUN_SAVE; return the .rrd path."""
    script = EXAMPLES / f"{script_name}.py"
    out = tmp_path / f"{script_name}.rrd"
    env = dict(os.environ, PIXELRUN_SAVE=str(out), XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.exists() and out.stat().st_size > 0, f"{script_name}: PIXELRUN_SAVE wrote nothing\n{proc.stderr[-2000:]}"
    return str(out)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seed")
    return {key: record(tmp, name) for key, name in SCRIPTS.items()}


@pytest.mark.parametrize("backend", BACKENDS)
def test_example_1_red_with_green_square(recordings, backend):
    out = render(recordings["ex1"], backend=backend)
    assert out.shape == (200, 300, 4)
    assert tuple(out[10, 10]) == (255, 0, 0, 255)
    assert tuple(out[100, 100]) == (0, 255, 0, 255)
    want = np.zeros((200, 300, 4), np.uint8)
    want[..., 0] = 255
    want[..., 3] = 255
    want[50:150, 50:150, :3] = (0, 255, 0)
    assert np.array_equal(out, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_example_2_each_entity_alone(recordings, backend):
    x = np.arange(256)[None, :]
    y = np.arange(256)[:, None]
    rgb = np.stack(np.broadcast_arrays(x, np.minimum(255, x + y), y), axis=-1).astype(np.uint8)
    def opaque(a):
        return np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=-1)

    store = open_source(recordings["ex2"])
    assert np.array_equal(render(store, entity="image_rgb", backend=backend), opaque(rgb))
    assert np.array_equal(render(store, entity="image_bgr", backend=backend), opaque(rgb))
    green = rgb[..., 1:2]
    assert np.array_equal(render(store, entity="image_green_only", backend=backend), opaque(np.repeat(green, 3, -1)))
    yb = bytes([128] * 65536)
    ub = bytes([xx * 2 for _ in range(256) for xx in range(128)])
    vb = bytes([yy for yy in range(256) for _ in range(128)])
    fmt = ImageFormat(256, 256, pixel_format=PixelFormat.Y_U_V16_FullRange)
    want = reference.to_display_rgba(yb + ub + vb, fmt)
    got = render(store, entity="image_yuv422", backend=backend)
    assert np.abs(got.astype(int) - want).max() <= 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_example_3_every_step(recordings, backend):
    store = open_source(recordings["ex3"])
    steps = [int(t) for t in time_points(store, "step")]
    assert steps == list(range(20))
    for t in steps:
        out = render(store, timeline="step", time=t, backend=backend)
        want = np.zeros((200, 300, 4), np.uint8)
        want[..., 2] = 255
        want[..., 3] = 255
        want[50:150, t * 10 : t * 10 + 100, 1] = 255
        assert np.array_equal(out, want), f"step {t}"
