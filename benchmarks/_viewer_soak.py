"""The viewer memory soak, shared by benchmarks/viewer.py (part 5, a table) and
tests/engine/test_viewer_memory.py (the bound on `pixelrun view --memory-limit`).

It lives with the benchmarks, not under tests/, so that a benchmark never imports
test code; the test puts this folder on sys.path, as tests already do for
tests/kernels helpers. It needs psutil (the `test` extra).
"""

from __future__ import annotations

import subprocess
import sys
import time

# Logs 1080p NV12 (4 random frames in turn) to 127.0.0.1:PORT as fast as it can for
# SECONDS, then prints how many frames it logged. argv: PORT SECONDS APPLICATION_ID
SOAK_PRODUCER = r"""
import sys, time
import numpy as np
import pixelrun as rr

port, seconds, app = sys.argv[1], float(sys.argv[2]), sys.argv[3]
W, H = 1920, 1080
rng = np.random.default_rng(0)
frames = [rng.integers(0, 256, W * H * 3 // 2, dtype=np.uint8).tobytes() for _ in range(4)]
rr.init(app)
rr.connect(f"127.0.0.1:{port}")
t0 = time.monotonic()
i = 0
while time.monotonic() - t0 < seconds:
    rr.set_time("frame", sequence=i)
    rr.log("cam", rr.Image(bytes=frames[i % 4], width=W, height=H, pixel_format=rr.PixelFormat.NV12))
    i += 1
rr.flush()
print(i, flush=True)
"""

SAMPLE_S = 0.2  # between RSS samples while streaming


def empty_rss(ps, samples: int = 10) -> int:
    """The largest of `samples` RSS readings of psutil process `ps`, 0.1 s apart."""
    rss = 0
    for _ in range(samples):
        rss = max(rss, ps.memory_info().rss)
        time.sleep(0.1)
    return rss


def stream_and_sample(ps, port: int, seconds: float, app: str, grace_s: float = 120.0) -> tuple[list[int], int]:
    """Run SOAK_PRODUCER against the viewer on `port` and sample the viewer's RSS
    (psutil process `ps`) every SAMPLE_S until the producer exits, then for 2 s more
    (what was queued is still being ingested).

    Returns (RSS samples, frames logged). Bounded: a producer still running
    `seconds + grace_s` after its start is killed and RuntimeError is raised.
    """
    prod = subprocess.Popen([sys.executable, "-c", SOAK_PRODUCER, str(port), str(seconds), app],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    samples = []
    deadline = time.monotonic() + seconds + grace_s
    try:
        while prod.poll() is None and time.monotonic() < deadline:
            samples.append(ps.memory_info().rss)
            time.sleep(SAMPLE_S)
        if prod.poll() is None:
            raise RuntimeError(f"the streaming program did not finish within {seconds + grace_s:.0f} s")
        sent = int(prod.stdout.read().strip() or 0)
    finally:
        stop(prod)
    for _ in range(10):
        samples.append(ps.memory_info().rss)
        time.sleep(SAMPLE_S)
    return samples, sent


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Terminate `proc`, killing it if it has not exited after `timeout` s."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
