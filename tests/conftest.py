"""Shared pytest fixtures.

`xvfb_display`: tests that open a window (the viewer) start their own virtual X
server, so CI needs nothing but the `xvfb` package (`pixelrun setup` installs it).
The server gets a free display number, DISPLAY points at it for the test session and
is restored afterwards; XDG_RUNTIME_DIR is set because some Mesa/glfw paths warn
without it.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

XVFB_SCREEN = "1280x1024x24"

# PIXELRUN_REQUIRE_CUDA=1 (set by benchmarks/gpu_check.sh on the NVIDIA machine): a test skipped
# because CUDA, CuPy or torch is missing becomes a failure there, since on that machine such a skip
# means the GPU path never ran. Matching is broad on purpose (any skip reason naming cuda, cupy or
# torch), so a new test's new wording fails loudly rather than passing silently; the exceptions are
# skips that happen *because* CUDA is present, and the g++ host harness (a missing compiler, not CUDA).
_CUDA_SKIP_WORDS = ("cuda", "cupy", "torch")
_SKIPS_NOT_ABOUT_MISSING_CUDA = ("CuPy is installed here", "g++ is not installed")


def _free_display_number(start: int = 90, stop: int = 400) -> int:
    """A display number with neither a lock file nor a socket (another X uses those)."""
    for n in range(start, stop):
        if not os.path.exists(f"/tmp/.X{n}-lock") and not os.path.exists(f"/tmp/.X11-unix/X{n}"):
            return n
    raise RuntimeError(f"no free X display number in {start}..{stop}")


def _wait_for_socket(n: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    sock = f"/tmp/.X11-unix/X{n}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Xvfb :{n} exited early with code {proc.returncode}")
        if os.path.exists(sock):
            return
        time.sleep(0.05)
    raise RuntimeError(f"Xvfb :{n} did not create {sock} within {timeout} s")


@pytest.fixture(scope="session")
def xvfb_display():
    """Start `Xvfb :N` for the session, set DISPLAY and XDG_RUNTIME_DIR; yield ':N'."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (run `pixelrun setup` or apt-get install xvfb)")
    saved = {k: os.environ.get(k) for k in ("DISPLAY", "XDG_RUNTIME_DIR")}
    proc = None
    for _attempt in range(5):  # another process may take the number between check and start
        n = _free_display_number()
        proc = subprocess.Popen(
            [xvfb, f":{n}", "-screen", "0", XVFB_SCREEN, "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_socket(n, proc)
            break
        except RuntimeError:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc = None
    if proc is None:
        raise RuntimeError("could not start Xvfb on a free display")
    os.environ["DISPLAY"] = f":{n}"
    if not os.environ.get("XDG_RUNTIME_DIR"):
        os.environ["XDG_RUNTIME_DIR"] = tempfile.gettempdir()
    try:
        yield f":{n}"
    finally:
        # Windows opened in this process must let go of the display before it goes:
        # a wgpu surface released after the X connection is gone deadlocks in
        # Mesa's xcb code at exit, and Xlib reports a fatal IO error.
        gc.collect()
        if "glfw" in sys.modules:
            try:
                sys.modules["glfw"].terminate()
            except Exception:
                pass
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under PIXELRUN_REQUIRE_CUDA=1, turn a CUDA/CuPy/torch skip into a failure (see above)."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("PIXELRUN_REQUIRE_CUDA") != "1" or not report.skipped or hasattr(report, "wasxfail"):
        return
    # a skip's longrepr is (path, line, "Skipped: reason")
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    lowered = reason.lower()
    if any(w in lowered for w in _CUDA_SKIP_WORDS) and not any(s in reason for s in _SKIPS_NOT_ABOUT_MISSING_CUDA):
        report.outcome = "failed"
        report.longrepr = f"PIXELRUN_REQUIRE_CUDA=1, so this skip is a failure: {reason}"
