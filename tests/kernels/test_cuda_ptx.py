"""Every CUDA source compiles: `nvcc --ptx -arch=sm_90`, no GPU needed.

Fails on a compile error or warning; skips (with the reason) only when nvcc is absent.
Also compiles the joined translation unit that cupy_convert hands to NVRTC, and checks
that every kernel the Python side launches is an entry point of the PTX, so a renamed
kernel fails here rather than on the first CUDA machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pixelrun.kernels.cuda import convert as cupy_convert
from pixelrun.kernels.cuda.convert import CUDA_DIR, CUDA_SOURCES, cuda_source

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None,
                                reason="nvcc is not installed: CUDA sources cannot be compiled to PTX here")

ALL_CU = sorted(p.name for p in CUDA_DIR.glob("*.cu"))


def _ptx(source: Path, out_dir: Path) -> str:
    out = out_dir / (source.stem + ".ptx")
    cmd = [NVCC, "--ptx", "-arch=sm_90", "--std=c++14", "--Werror", "all-warnings",
           "-I", str(CUDA_DIR), str(source), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    return out.read_text()


def _entries(ptx: str) -> set[str]:
    return set(re.findall(r"\.entry\s+(\w+)", ptx))


def test_every_source_is_part_of_the_module():
    """A .cu file that cupy_convert does not load would never run."""
    assert sorted(CUDA_SOURCES) == ALL_CU


@needs_nvcc
@pytest.mark.parametrize("name", ALL_CU)
def test_source_compiles_to_ptx(name, tmp_path):
    ptx = _ptx(CUDA_DIR / name, tmp_path)
    assert _entries(ptx), f"{name} defines no kernel"


@needs_nvcc
def test_joined_module_compiles_and_has_every_launched_kernel(tmp_path):
    joined = tmp_path / "pixelrun_all.cu"
    joined.write_text(cuda_source())
    entries = _entries(_ptx(joined, tmp_path))
    launched = set(cupy_convert._COLOR_KERNELS.values()) | {"pr_yuv_to_rgba", "pr_bayer_to_rgba"}
    launched |= {"pr_composite_clear", "pr_composite_layer", "pr_composite_finish"}
    assert launched <= entries, f"kernels launched from Python but missing in PTX: {sorted(launched - entries)}"


def test_yuv_pixels_per_thread_agrees_with_the_launch_plan():
    """The grid is sized in Python from YUV_PIXELS_PER_THREAD; the kernel defines it too."""
    text = (CUDA_DIR / "yuv.cu").read_text()
    m = re.search(r"#define\s+PR_YUV_PIXELS_PER_THREAD\s+(\d+)", text)
    assert m is not None, "yuv.cu must define PR_YUV_PIXELS_PER_THREAD"
    assert int(m.group(1)) == cupy_convert.YUV_PIXELS_PER_THREAD
