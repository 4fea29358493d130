"""`pixelrun view --offscreen`: the viewer with no display (GPU servers, CI, NVIDIA
machines without an X server), and its loop.

The viewer processes here run with DISPLAY and WAYLAND_DISPLAY removed from their
environment, so a window could not open: every pixel checked comes from the offscreen
frame. Expected colours are the logged images' own (solid colours written here).
"""

from __future__ import annotations

import os
import platform
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from viewer_helpers import LiveViewer, image_chunk, rrd_stream, viewer_cmd, wait_until

from pixelrun.engine.viewer.window import OffscreenLoop, read_view_metadata
from pixelrun.kernels.formats import ImageFormat
from tests.net_helpers import grpc_send, rrd_messages

RED, GREEN = (255, 0, 0, 255), (0, 255, 0, 255)
FMT = ImageFormat(300, 200, color_model="RGB", channel_datatype="U8")


def no_display_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}


def red_with_green_square() -> np.ndarray:
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    image[:, :, 0] = 255
    image[50:150, 50:150] = (0, 255, 0)
    return image


def window_pixel(png: Path, u: int, v: int, entity: str | None = None) -> tuple[int, ...]:
    """Image pixel (u, v) of the (first, or `entity`'s) view, from the PNG's view metadata."""
    meta = read_view_metadata(png)
    view = next(v for v in meta["views"] if entity is None or entity in v["entities"])
    s = view["scale"]
    ox, oy = view["offset"]
    with Image.open(png) as im:
        return tuple(im.convert("RGBA").getpixel((int((u + 0.5) * s + ox), int((v + 0.5) * s + oy))))


def test_screenshot_of_a_recording_without_a_display(tmp_path):
    rec = tmp_path / "rec.rrd"
    rec.write_bytes(rrd_stream([image_chunk("image", red_with_green_square(), FMT)]))
    out = tmp_path / "out.png"
    r = subprocess.run(viewer_cmd(str(rec), "--offscreen", "--screenshot-to", str(out), "--window-size", "900x600"),
                       capture_output=True, text=True, timeout=120, env=no_display_env())
    assert r.returncode == 0, r.stderr
    with Image.open(out) as im:
        assert im.size == (900, 600)
    assert window_pixel(out, 10, 10) == RED
    assert window_pixel(out, 100, 100) == GREEN
    assert window_pixel(out, 299, 199) == RED
    assert read_view_metadata(out)["canvas"] == [300, 200]


def offscreen_viewer(tmp: Path, *extra: str) -> LiveViewer:
    """A live `pixelrun view --offscreen` with no display; screenshots on SIGUSR1."""
    return LiveViewer(tmp, extra=("--offscreen", *extra), env=no_display_env())


def test_live_data_reaches_the_offscreen_frame(tmp_path):
    v = offscreen_viewer(tmp_path)
    try:
        grpc_send(v.port, rrd_messages(rrd_stream([image_chunk("image", red_with_green_square(), FMT, step=0)],
                                                  end=False)))
        png = v.screenshot_until(lambda p: bool(read_view_metadata(p)["views"]) and window_pixel(p, 100, 100) == GREEN)
        assert window_pixel(png, 10, 10) == RED
        assert window_pixel(png, 100, 100) == GREEN
        assert v.proc.poll() is None
    finally:
        v.stop()


def test_the_probe_reads_the_same_image_pixel_in_every_view(tmp_path):
    """--probe (benchmarks/viewer.py's hook): one RGBA per view after every frame, first
    view first; two cameras in their own subtrees get a view each (Rerun's rule)."""
    probe = tmp_path / "probe.txt"
    v = offscreen_viewer(tmp_path, "--probe", str(probe), "20", "10")
    fmt = ImageFormat(64, 32, color_model="RGB", channel_datatype="U8")
    blue = np.zeros((32, 64, 3), np.uint8)
    blue[..., 2] = 255
    yellow = np.zeros((32, 64, 3), np.uint8)
    yellow[..., :2] = 255
    try:
        grpc_send(v.port, rrd_messages(rrd_stream(
            [image_chunk("cam_a/image", blue, fmt, step=0), image_chunk("cam_b/image", yellow, fmt, step=0)],
            end=False)))

        def two_views() -> list[float] | None:
            for line in reversed(probe.read_text().splitlines() if probe.exists() else []):
                vals = line.split()
                if len(vals) == 2 + 8:
                    return [int(x) for x in vals[2:]]
            return None

        assert wait_until(lambda: two_views() is not None and sorted(map(tuple, np.reshape(two_views(), (2, 4))))
                          == sorted([(0, 0, 255, 255), (255, 255, 0, 255)]), timeout=60), probe.read_text()[-2000:]
        png = v.screenshot()
        views = [view["entities"] for view in read_view_metadata(png)["views"]]
        first = two_views()[:4]
        # the first probe column is the first view of the layout
        assert first == ([0, 0, 255, 255] if "/cam_a/image" in views[0] else [255, 255, 0, 255]), views
    finally:
        v.stop()


# ----------------------------------------------------------------------- the loop


class FakeCanvas:
    def __init__(self) -> None:
        self.closed = False
        self.draws: list[float] = []

    def get_closed(self) -> bool:
        return self.closed

    def force_draw(self) -> None:
        self.draws.append(time.monotonic())


def run_loop(loop: OffscreenLoop) -> threading.Thread:
    t = threading.Thread(target=loop.run, daemon=True)
    t.start()
    return t


def test_loop_runs_callbacks_in_order_and_timers_when_due():
    loop = OffscreenLoop()
    loop.canvas = FakeCanvas()
    seen = []
    loop.call_later(0.2, lambda: seen.append(("late", time.monotonic())))
    loop.call_later(0.05, lambda: seen.append(("early", time.monotonic())))
    t0 = time.monotonic()
    loop.call_soon_threadsafe(lambda: seen.append(("soon", time.monotonic())))
    t = run_loop(loop)
    assert wait_until(lambda: len(seen) == 3, timeout=5), seen
    assert [name for name, _ in seen] == ["soon", "early", "late"]
    assert seen[2][1] - t0 >= 0.2
    loop.stop()
    t.join(5)
    assert not t.is_alive()


def test_loop_coalesces_draw_requests_and_keeps_to_max_fps():
    loop = OffscreenLoop(max_fps=20)  # at most one draw per 50 ms
    canvas = loop.canvas = FakeCanvas()
    t = run_loop(loop)
    stop = time.monotonic() + 0.6
    while time.monotonic() < stop:  # 600 requests in 0.6 s
        loop.request_draw()
        time.sleep(0.001)
    time.sleep(0.1)
    draws = list(canvas.draws)
    # coalesced: far fewer draws than requests, never two closer than the interval (a
    # bound the loop keeps whatever the machine's load: load only spaces them further)
    assert 2 <= len(draws) <= 0.6 / 0.05 + 2, len(draws)
    assert min(np.diff(draws)) >= 0.049
    loop.request_draw()  # one more after a pause: the request wakes the loop
    t_req = time.monotonic()
    assert wait_until(lambda: len(canvas.draws) > len(draws), timeout=2)
    assert canvas.draws[-1] - t_req < 0.45  # before the loop's 0.5 s fallback wake-up
    canvas.closed = True  # a closed canvas ends the loop within one bounded wait
    t.join(2)
    assert not t.is_alive()


def test_a_failing_callback_is_reported_and_the_loop_goes_on(caplog):
    loop = OffscreenLoop()
    loop.canvas = FakeCanvas()
    seen = []

    def boom():
        raise ValueError("boom")

    loop.call_soon_threadsafe(boom)
    loop.call_soon_threadsafe(lambda: seen.append(1))
    t = run_loop(loop)
    assert wait_until(lambda: seen == [1], timeout=5)
    loop.stop()
    t.join(5)
    assert "callback failed" in caplog.text and "boom" in caplog.text


def test_callbacks_from_other_threads_wake_the_loop():
    loop = OffscreenLoop()
    loop.canvas = FakeCanvas()
    t = run_loop(loop)
    time.sleep(0.1)  # the loop is waiting
    done = threading.Event()
    t_send = time.monotonic()
    threading.Thread(target=lambda: loop.call_soon_threadsafe(done.set)).start()
    assert done.wait(2)
    assert time.monotonic() - t_send < 0.45  # woken, not found at the 0.5 s fallback wake-up
    loop.stop()
    t.join(5)


def _environ(pid: int) -> dict:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def test_the_viewer_process_runs_with_one_malloc_arena_unless_the_user_chose(tmp_path):
    # Why one arena: tests/engine/test_viewer_memory.py. The restart keeps the process id
    # (a spawning SDK or a script holding the pid still has the viewer) and its arguments.
    if platform.libc_ver()[0] != "glibc":
        pytest.skip(f"glibc's malloc arenas only; this is {platform.libc_ver()[0] or 'not glibc'}")
    for chosen, expected in ((None, "1"), ("4", "4")):
        env = no_display_env()
        env.pop("MALLOC_ARENA_MAX", None)
        if chosen is not None:
            env["MALLOC_ARENA_MAX"] = chosen
        (tmp_path / f"v{chosen}").mkdir()
        v = LiveViewer(tmp_path / f"v{chosen}", extra=("--offscreen",), env=env)
        try:
            assert _environ(v.proc.pid).get("MALLOC_ARENA_MAX") == expected
            grpc_send(v.port, rrd_messages(rrd_stream([image_chunk("image", red_with_green_square(), FMT, step=0)],
                                                      end=False)))
            png = v.screenshot_until(lambda p: bool(read_view_metadata(p)["views"]))
            assert window_pixel(png, 100, 100) == GREEN  # the restarted process is the viewer, and it works
        finally:
            v.stop()


@pytest.mark.parametrize("argv, command", [
    (["/usr/bin/python3", "/usr/local/bin/pixelrun", "view"], True),  # the console script
    (["python3", "-m", "pixelrun", "view"], True),
    (["python3", "-X", "dev", "-u", "-m", "pixelrun.engine.cli.main", "view", "--port", "9"], True),
    (["python3", "-m", "mytool", "view"], False),
    (["python3", "-c", "from pixelrun.engine.cli.main import main; main()", "view"], False),  # the user's code
    (["python3", "-", "view"], False),  # a program on stdin cannot be read again
    (["python3", "my_script.py", "view"], False),
])
def test_only_the_pixelrun_command_itself_restarts(argv, command):
    # a restart runs the process's program again: only where that program is the command
    from pixelrun.engine.cli.view import _started_as_command

    assert _started_as_command(argv) is command
