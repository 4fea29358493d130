"""benchmarks/gpu_check.sh (the one-shot NVIDIA run) and the PIXELRUN_REQUIRE_CUDA hook in conftest.py.

The script itself only proves something on the GPU machine; here we check that it parses,
that its plan names every step with a timeout inside the 8-minute budget, and that on the
GPU machine a CuPy skip really becomes a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = ["install", "versions", "viewer", "viewer-trace", "wgsl-vulkan", "cuda-tests", "wgsl-gl", "convert-gpu",
         "render", "convert-cuda-1080p", "convert-cuda-4k"]
BUDGET_S = 8 * 60

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def test_script_parses():
    r = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_dry_run_lists_every_step_in_order_within_the_budget(tmp_path):
    r = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    rows = re.findall(r"^\| (\d+) \| ([\w-]+) \| (\d+) \|", r.stdout, re.M)
    assert [name for _, name, _ in rows] == STEPS, r.stdout
    assert sum(int(t) for _, _, t in rows) <= BUDGET_S
    assert not any(tmp_path.iterdir()), "--dry-run must not run or write anything"


def test_unknown_option_is_refused_with_the_choices():
    r = subprocess.run(["bash", str(SCRIPT), "--gpu"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "unknown option '--gpu'" in r.stderr and "--cpu-smoke" in r.stderr


SKIPPING_TESTS = textwrap.dedent("""
    import pytest

    def test_cupy_missing():
        pytest.skip("CuPy backend unavailable: CuPy is not installed")

    @pytest.mark.skipif(True, reason="no CUDA for the CuPy compositor: no device")
    def test_cuda_mark():
        pass

    def test_skip_because_cupy_is_present():
        pytest.skip("CuPy is installed here: the missing-CuPy message cannot be produced")

    def test_unrelated_skip():
        pytest.skip("Xvfb is not installed")

    def test_host_compiler_missing():
        pytest.skip("g++ is not installed: the CUDA kernels cannot be built for the host")
""")


def _run_pytest(tmp_path: Path, require: str | None) -> subprocess.CompletedProcess:
    """Run the five tests above with this repo's conftest.py and the given PIXELRUN_REQUIRE_CUDA."""
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_skips.py").write_text(SKIPPING_TESTS)
    env = {k: v for k, v in os.environ.items() if k != "PIXELRUN_REQUIRE_CUDA"}
    if require is not None:
        env["PIXELRUN_REQUIRE_CUDA"] = require
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", "test_skips.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_require_cuda_turns_cupy_skips_into_failures(tmp_path):
    r = _run_pytest(tmp_path, "1")
    assert r.returncode == 1, r.stdout
    # a skip in the call phase reports as FAILED, one in setup (a skipif mark, a fixture) as ERROR
    assert re.search(r"^FAILED test_skips.py::test_cupy_missing", r.stdout, re.M), r.stdout
    assert re.search(r"^(FAILED|ERROR) test_skips.py::test_cuda_mark", r.stdout, re.M), r.stdout
    assert "PIXELRUN_REQUIRE_CUDA=1, so this skip is a failure: CuPy backend unavailable" in r.stdout
    # skips that happen because CUDA is there, or that have nothing to do with it, stay skips
    assert re.search(r"^SKIPPED \[1\] test_skips.py:\d+: CuPy is installed here", r.stdout, re.M), r.stdout
    assert re.search(r"^SKIPPED \[1\] test_skips.py:\d+: Xvfb is not installed", r.stdout, re.M), r.stdout
    assert re.search(r"^SKIPPED \[1\] test_skips.py:\d+: g\+\+ is not installed", r.stdout, re.M), r.stdout
    assert "3 skipped" in r.stdout.splitlines()[-1], r.stdout


def test_without_require_cuda_the_skips_stay_skips(tmp_path):
    r = _run_pytest(tmp_path, None)
    assert r.returncode == 0, r.stdout
    assert "5 skipped" in r.stdout, r.stdout
