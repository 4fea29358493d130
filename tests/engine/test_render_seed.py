"""The three seed examples (SPEC 1), recorded by the SDK and rendered headless.

Each example's code is the seed's, unchanged except the import line; it runs in a
subprocess with PIXELRUN_SAVE pointing at a file (so `spawn=True` starts no viewer),
and the recording is rendered with `pixelrun.engine.render` on every backend present.
Expected pixels are the arrays the examples themselves build, written out here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pixelrun.engine.convert import availability
from pixelrun.engine.render import open_source, render, time_points
from pixelrun.kernels import reference
from pixelrun.kernels.formats import ImageFormat, PixelFormat

EXAMPLE_1 = '''
"""Create and log an image."""

import numpy as np
import pixelrun as rr

# Create an image with numpy
image = np.zeros((200, 300, 3), dtype=np.uint8)
image[:, :, 0] = 255
image[50:150, 50:150] = (0, 255, 0)

rr.init("rerun_example_image", spawn=True)

rr.log("image", rr.Image(image))
'''

EXAMPLE_2 = '''
"""Create and log an image with various formats."""

import numpy as np
import pixelrun as rr

rr.init("rerun_example_image_formats", spawn=True)

# Simple gradient image, logged in different formats.
image = np.array([[[x, min(255, x + y), y] for x in range(0, 256)] for y in range(0, 256)], dtype=np.uint8)
rr.log("image_rgb", rr.Image(image))
rr.log("image_green_only", rr.Image(image[:, :, 1], color_model="l"))  # Luminance only
rr.log("image_bgr", rr.Image(image[:, :, ::-1], color_model="bgr"))  # BGR

# New image with Separate Y/U/V planes with 4:2:2 chroma downsampling
y = bytes([128 for y in range(0, 256) for x in range(0, 256)])
u = bytes([x * 2 for y in range(0, 256) for x in range(0, 128)])  # Half horizontal resolution for chroma.
v = bytes([y for y in range(0, 256) for x in range(0, 128)])
rr.log("image_yuv422", rr.Image(bytes=y + u + v, width=256, height=256, pixel_format=rr.PixelFormat.Y_U_V16_FullRange))
'''

EXAMPLE_3 = '''
"""Send multiple images at once using `send_columns`."""

import numpy as np
import pixelrun as rr

rr.init("rerun_example_image_send_columns", spawn=True)

# Timeline on which the images are distributed.
times = np.arange(0, 20)

# Create a batch of images with a moving rectangle.
width, height = 300, 200
images = np.zeros((len(times), height, width, 3), dtype=np.uint8)
images[:, :, :, 2] = 255
for t in times:
    images[t, 50:150, (t * 10) : (t * 10 + 100), 1] = 255

# Log the ImageFormat and indicator once, as static.
format_static = rr.components.ImageFormat(width=width, height=height, color_model="RGB", channel_datatype="U8")
rr.log("images", [format_static, rr.Image.indicator()], static=True)

# Send all images at once.
rr.send_columns(
    "images",
    times=[rr.TimeSequenceColumn("step", times)],
    # Reshape the images so `ImageBufferBatch` can tell that this is several blobs.
    #
    # Note that the `ImageBufferBatch` consumes arrays of bytes,
    # so if you have a different channel datatype than `U8`, you need to make sure
    # that the data is converted to arrays of bytes before passing it to `ImageBufferBatch`.
    components=[rr.components.ImageBufferBatch(images.reshape(len(times), -1))],
)
'''

BACKENDS = [b for b in ("wgpu", "numpy") if availability(b)[0]]


def record(tmp_path, name: str, code: str) -> str:
    """Run an example in a subprocess with PIXELRUN_SAVE; return the .rrd path."""
    script = tmp_path / f"{name}.py"
    script.write_text(textwrap.dedent(code))
    out = tmp_path / f"{name}.rrd"
    env = dict(os.environ, PIXELRUN_SAVE=str(out), XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.exists() and out.stat().st_size > 0, f"{name}: PIXELRUN_SAVE wrote nothing\n{proc.stderr[-2000:]}"
    return str(out)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seed")
    return {n: record(tmp, n, c) for n, c in (("ex1", EXAMPLE_1), ("ex2", EXAMPLE_2), ("ex3", EXAMPLE_3))}


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
    opaque = lambda a: np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=-1)  # noqa: E731
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
