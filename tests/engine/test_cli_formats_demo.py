"""`pixelrun formats` and `pixelrun demo` end to end, through the CLI entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelrun.engine.cli.demo import decode_samples
from pixelrun.engine.cli.main import main
from pixelrun.kernels.formats import PixelFormat


def test_formats_lists_every_format_with_its_byte_count(capsys):
    assert main(["formats", "--size", "3x5"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 2 + len(PixelFormat) + 55  # two header rows
    # 3x5: N = 15, cw = 2, ch = 3 -> NV12 15 + 2*2*3 = 27; YUY2 4*2*5 = 40; RGB/U16 15*3*2 = 90
    nv12 = next(r for r in rows if r.startswith("| NV12 "))
    assert "| N + 2*cw*ch |" in nv12 and "| 27 " in nv12
    assert "| 40 " in next(r for r in rows if r.startswith("| YUY2 "))
    assert "| 90 " in next(r for r in rows if r.startswith("| RGB/U16 "))


def test_formats_rejects_bad_size(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["formats", "--size", "0x5"])
    assert exc.value.code == 2
    assert "at least 1" in capsys.readouterr().err


def test_demo_writes_one_png_per_format(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path / "out"), "--size", "9x7"]) == 0
    pngs = sorted((tmp_path / "out" / "formats").glob("*.png"))
    assert len(pngs) == len(PixelFormat) + 55
    assert str((tmp_path / "out" / "formats").resolve()) in capsys.readouterr().out
    with Image.open(tmp_path / "out" / "formats" / "RGB_U8.png") as im:
        assert im.mode == "RGBA" and im.size == (9, 7)
        rgba = np.asarray(im)
    # the gradient: red grows left to right, green top to bottom, opaque
    assert rgba[0, 0].tolist() == [0, 0, 255, 255] and rgba[-1, -1].tolist() == [255, 255, 0, 255]

    # the seed examples were recorded and rendered (contract §6 / issue 6 expectations)
    with Image.open(tmp_path / "out" / "seed_image_simple.png") as im:
        simple = np.asarray(im)
    assert simple.shape == (200, 300, 4)
    assert simple[10, 10].tolist() == [255, 0, 0, 255]
    assert simple[100, 100].tolist() == [0, 255, 0, 255]
    steps = sorted((tmp_path / "out").glob("seed_image_send_columns_step_*.png"))
    assert len(steps) == 20
    with Image.open(steps[7]) as im:
        frame = np.asarray(im)
    assert frame[60, 75].tolist() == [0, 255, 255, 255]  # inside the moving rectangle
    assert frame[60, 69].tolist() == [0, 0, 255, 255]  # just left of it (t*10 = 70)
    assert frame[10, 75].tolist() == [0, 0, 255, 255]  # above it


def test_demo_examples_are_the_tested_seed_examples():
    """The demo's copies of the seed scripts must not drift from tests/examples/."""
    root = Path(__file__).resolve().parents[2]
    for name in ("seed_image_simple", "seed_image_formats", "seed_image_send_columns"):
        shipped = (root / "engine" / "cli" / "examples" / f"{name}.py").read_text()
        tested = (root / "tests" / "examples" / f"{name}.py").read_text()
        assert shipped == tested, name


def test_decode_samples_returns_paths(tmp_path):
    paths = decode_samples(tmp_path, 4, 2)
    assert {p.stem for p in paths} >= {"NV12", "BayerRGGB8", "BGRA_F16"}
    assert all(p.exists() for p in paths)
