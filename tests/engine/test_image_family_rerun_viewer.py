"""Rerun 0.41's own headless viewer shows pixelrun's image-family files as it shows its own,
and as pixelrun draws them.

One script per case (depth with Rerun's defaults, depth with a range and Viridis, a
segmentation mask with an annotation context over an image, a JPEG and a PNG) runs
unchanged under Rerun's SDK and under pixelrun. Our file must pass `rerun rrd verify`;
Rerun's screenshot of our file must show, block by block, the colours of Rerun's
screenshot of its own file, and the colours pixelrun renders (within 2 LSB: Rerun's
blend of a half-opaque segmentation is 1 LSB off the linear-light formula).

Runs whenever .venv-rerun holds rerun-sdk 0.41 and xvfb-run exists.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from pixelrun.engine import api
from tests.net_helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
RERUN_PY = ROOT / ".venv-rerun" / "bin" / "python"
RERUN_BIN = ROOT / ".venv-rerun" / "bin" / "rerun"
ENV = dict(os.environ, XDG_RUNTIME_DIR="/tmp", RERUN_TELEMETRY_ENABLED="false")

pytestmark = [
    pytest.mark.skipif(not RERUN_BIN.exists(), reason="real rerun 0.41 not installed in .venv-rerun"),
    pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed"),
]

B = 64  # block size in pixels: each case is a row of solid blocks, one colour each

SCRIPT = """
import importlib, sys
import numpy as np
rr = importlib.import_module(sys.argv[1])
case, out, encoded = sys.argv[2], sys.argv[3], sys.argv[4]
rr.init("family-view", recording_id="family-view-" + case)
rr.save(out)
B = %d

def blocks(values, dtype):
    a = np.zeros((B, B * len(values)), dtype)
    for i, v in enumerate(values):
        a[:, i * B:(i + 1) * B] = v
    return a

if case == "depth":
    rr.log("depth", rr.DepthImage(blocks([0, 1000, 2000, 3000, 4000], np.uint16), meter=1000.0), static=True)
elif case == "depth_viridis":
    rr.log("depth", rr.DepthImage(blocks([0.5, 1.0, 1.5, 2.0, 2.5], np.float32), colormap="viridis",
                                  depth_range=[0.5, 2.5]), static=True)
elif case == "segmentation":
    rr.log("/", rr.AnnotationContext([(1, "red", (255, 0, 0)), (2, "no colour")]), static=True)
    rr.log("img", rr.Image(np.full((B, 4 * B, 3), 255, np.uint8)), static=True)
    rr.log("seg", rr.SegmentationImage(blocks([0, 1, 2, 9], np.uint8)), static=True)
elif case == "segmentation_alpha":  # translucent class colours, opaque mask, over white
    rr.log("/", rr.AnnotationContext([(1, "a", (0, 255, 0, 128)), (2, "b", (255, 0, 0, 64)),
                                      (3, "c", (0, 0, 255, 200))]), static=True)
    rr.log("img", rr.Image(np.full((B, 4 * B, 3), 255, np.uint8)), static=True)
    rr.log("seg", rr.SegmentationImage(blocks([1, 2, 3, 0], np.uint8), opacity=1.0), static=True)
else:
    media = {"jpeg": "image/jpeg", "png": "image/png", "png16": "image/png"}[case]
    rr.log("img", rr.EncodedImage(contents=open(encoded, "rb").read(), media_type=media), static=True)
""" % B

# case -> blocks
CASES = {"depth": 5, "depth_viridis": 5, "segmentation": 4, "segmentation_alpha": 4, "jpeg": 4, "png": 4, "png16": 4}
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 150, 50)]


def _encoded_file(case: str, d: Path) -> Path:
    rgb = np.zeros((B, 4 * B, 3), np.uint8)
    for i, c in enumerate(COLOURS):
        rgb[:, i * B:(i + 1) * B] = c
    if case == "png16":  # 16-bit grey, as depth cameras save it
        rgb = np.zeros((B, 4 * B), np.uint16)
        for i, v in enumerate([0, 16000, 40000, 65535]):
            rgb[:, i * B:(i + 1) * B] = v
    out = io.BytesIO()
    PILImage.fromarray(rgb).save(out, format="JPEG" if case == "jpeg" else "PNG", quality=95)
    path = d / f"{case}.bin"
    path.write_bytes(out.getvalue())
    return path


def _screenshot(rrd: Path, tmp: Path, tries: int = 3) -> np.ndarray:
    """Rerun's screenshot (1600x1200 at its 2x scale), taken again while it shows no
    image yet: its viewer loads the file on a background thread."""
    png = tmp / f"{rrd.stem}.png"
    for _ in range(tries):
        subprocess.run(["xvfb-run", "-a", str(RERUN_BIN), str(rrd), "--port", str(free_port()), "--headless",
                        "--window-size", "800x600", "--screenshot-to", str(png)],
                       env=ENV, check=True, timeout=300, capture_output=True)
        img = np.asarray(PILImage.open(png).convert("RGB")).astype(int)
        if _image_rows(img).size:
            return img
    return img


# The 2D view in Rerun's default layout (screenshot pixels): right of the blueprint
# panel, below the notification toasts, above the time panel.
VIEW = (slice(540, 1100), slice(420, 1590))


def _image_rows(img: np.ndarray) -> np.ndarray:
    view = img[VIEW]
    bg = view[-5, -5]
    non_bg = np.abs(view - bg).max(axis=-1) > 3
    return np.nonzero(non_bg.sum(axis=1) > 100)[0]


def _blocks(img: np.ndarray, n: int) -> np.ndarray:
    """The colour at the centre of each of the n blocks of the image Rerun shows."""
    view = img[VIEW]
    rows = _image_rows(img)
    assert rows.size, "Rerun's screenshot shows no image"
    mid = int(rows[rows.size // 2])
    non_bg = np.abs(view[mid] - view[-5, -5]).max(axis=-1) > 3
    cols = np.nonzero(non_bg)[0]
    x0, x1 = int(cols.min()), int(cols.max())
    step = (x1 - x0 + 1) / n
    return np.array([view[mid, int(x0 + (i + 0.5) * step)] for i in range(n)])


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    d = tmp_path_factory.mktemp("family-view")
    out = {}
    for case in CASES:
        enc = _encoded_file(case, d) if case in ("jpeg", "png", "png16") else d / "none"
        for who, python, module in (("rerun", str(RERUN_PY), "rerun"), ("pixelrun", sys.executable, "pixelrun")):
            rrd = d / f"{case}-{who}.rrd"
            subprocess.run([python, "-c", SCRIPT, module, case, str(rrd), str(enc)], check=True, env=ENV, timeout=120)
            out[(case, who)] = rrd
    return d, out


@pytest.mark.parametrize("case", sorted(CASES))
def test_rerun_shows_our_file_like_its_own_and_like_pixelrun(shots, case):
    d, files = shots
    ours = files[(case, "pixelrun")]
    r = subprocess.run([str(RERUN_BIN), "rrd", "verify", str(ours)], capture_output=True, text=True, env=ENV,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    n = CASES[case]
    theirs_shown = _blocks(_screenshot(files[(case, "rerun")], d), n)
    ours_shown = _blocks(_screenshot(ours, d), n)
    assert np.array_equal(ours_shown, theirs_shown), (ours_shown.tolist(), theirs_shown.tolist())
    drawn = api.render(ours, backend="numpy")
    assert drawn.shape == (B, n * B, 4) and (drawn[..., 3] == 255).all()
    ours_drawn = drawn[B // 2, B // 2::B, :3].astype(int)
    assert np.abs(ours_drawn - ours_shown).max() <= 2, (ours_drawn.tolist(), ours_shown.tolist())
    # and Rerun's own file, drawn here, is ours to the byte
    assert np.array_equal(api.render(files[(case, "rerun")], backend="numpy"), drawn)
