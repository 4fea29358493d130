"""Helpers for the viewer tests: image chunks, .rrd byte streams, waiting, X input.

Streaming into a viewer goes over gRPC: tests/net_helpers.py (grpc_send, H2Conn).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from pixelrun.engine import rrd
from pixelrun.engine.chunk import IMAGE_BUFFER, IMAGE_FORMAT, Chunk, TimeColumn, buffer_column, format_column
from pixelrun.kernels.formats import ImageFormat

_counter = [0]


class Sink:
    """A ViewerServer sink that keeps every chunk it is handed (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.chunks = []

    def __call__(self, chunks, peer):
        with self.lock:
            self.chunks.extend(chunks)

    def __len__(self):
        with self.lock:
            return len(self.chunks)

    def entities(self):
        with self.lock:
            return [c.entity_path for c in self.chunks]


def image_chunk(entity: str, pixels: np.ndarray, fmt: ImageFormat, step: Optional[int] = None) -> Chunk:
    """One row: `pixels` (any array, taken as raw bytes) with `fmt`, at `step` (None: static)."""
    _counter[0] += 1
    row_ids = np.array([[time.time_ns(), _counter[0]]], dtype=np.uint64)
    tls = {} if step is None else {"step": TimeColumn("sequence", np.array([step], np.int64))}
    comps = {
        IMAGE_BUFFER: buffer_column([np.ascontiguousarray(pixels).reshape(-1).view(np.uint8)]),
        IMAGE_FORMAT: format_column([fmt]),
    }
    chunk_id = int(time.time_ns()).to_bytes(8, "big") + _counter[0].to_bytes(8, "big")
    return Chunk(entity, row_ids, tls, comps, chunk_id=chunk_id)


def rrd_stream(chunks, app: str = "test", rec: str = "rec-1", end: bool = True) -> bytes:
    """A whole .rrd stream; without `end`, no End message (a live stream cut short)."""
    store = rrd.StoreInfo(app, rec)
    if end:
        return rrd.encode_recording(store, chunks)
    enc = rrd.RrdEncoder(store)
    parts = [enc.stream_header(), enc.store_info()]
    for c in chunks:
        parts += [bytes(p) for p in enc.chunk(c)]
    return b"".join(parts)


@contextmanager
def in_background(target: Callable[[threading.Event], None]) -> Iterator[None]:
    """Run `target(stop)` on a daemon thread for the with-block; then set `stop` and
    join the thread (5 s at most)."""
    stop = threading.Event()
    t = threading.Thread(target=target, args=(stop,), daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(5)


def wait_until(cond, timeout: float = 20.0, interval: float = 0.02) -> bool:
    """Poll `cond()` until true or the timeout passes (waiting, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return bool(cond())


class FakeInput:
    """Real X input events through the XTEST extension (libXtst), so a test drives the
    window through the whole event path: X server -> glfw -> rendercanvas -> imgui ->
    the viewer's handlers."""

    def __init__(self) -> None:
        import ctypes
        import ctypes.util

        c = ctypes
        self.x11 = c.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
        self.xt = c.CDLL(ctypes.util.find_library("Xtst") or "libXtst.so.6")
        self.x11.XOpenDisplay.restype = c.c_void_p
        self.x11.XOpenDisplay.argtypes = [c.c_char_p]
        self.x11.XSync.argtypes = [c.c_void_p, c.c_int]
        self.x11.XCloseDisplay.argtypes = [c.c_void_p]
        self.x11.XStringToKeysym.argtypes = [c.c_char_p]
        self.x11.XStringToKeysym.restype = c.c_ulong
        self.x11.XKeysymToKeycode.argtypes = [c.c_void_p, c.c_ulong]
        self.x11.XKeysymToKeycode.restype = c.c_ubyte
        self.xt.XTestFakeMotionEvent.argtypes = [c.c_void_p, c.c_int, c.c_int, c.c_int, c.c_ulong]
        self.xt.XTestFakeButtonEvent.argtypes = [c.c_void_p, c.c_uint, c.c_int, c.c_ulong]
        self.xt.XTestFakeKeyEvent.argtypes = [c.c_void_p, c.c_uint, c.c_int, c.c_ulong]
        self.dpy = self.x11.XOpenDisplay(None)
        if not self.dpy:
            raise RuntimeError("cannot open the X display for XTEST")

    def _sync(self) -> None:
        self.x11.XSync(self.dpy, 0)

    def move(self, x: float, y: float) -> None:
        self.xt.XTestFakeMotionEvent(self.dpy, -1, int(x), int(y), 0)
        self._sync()

    def button(self, n: int, down: bool) -> None:
        self.xt.XTestFakeButtonEvent(self.dpy, n, int(down), 0)
        self._sync()

    def wheel_up(self) -> None:
        self.button(4, True)
        self.button(4, False)

    def key(self, name: str) -> None:
        code = self.x11.XKeysymToKeycode(self.dpy, self.x11.XStringToKeysym(name.encode()))
        self.xt.XTestFakeKeyEvent(self.dpy, code, 1, 0)
        self.xt.XTestFakeKeyEvent(self.dpy, code, 0, 0)
        self._sync()

    def close(self) -> None:
        self.x11.XCloseDisplay(self.dpy)


def viewer_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pixelrun.engine.cli.main", "view", *args]


class LiveViewer:
    """A `pixelrun view --port N` process; screenshots on SIGUSR1 into `shots`.

    `extra`: more arguments (e.g. --offscreen); `env`: its environment (default: ours)."""

    def __init__(self, tmp: Path, port: Optional[int] = None, extra: tuple = (), env: Optional[dict] = None) -> None:
        from tests.net_helpers import free_port

        self.port = port or free_port()
        self.shots = tmp / "shots"
        self.shots.mkdir(exist_ok=True)
        self.log = open(tmp / "viewer.log", "w+")
        self.proc = subprocess.Popen(
            viewer_cmd("--port", str(self.port), "--screenshot-dir", str(self.shots), "--window-size", "1000x700",
                       *extra),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        assert wait_until(self.accepts, timeout=60), self.output()

    def accepts(self) -> bool:
        if self.proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def screenshot(self, timeout: float = 30) -> Path:
        before = set(self.shots.glob("*.png"))
        self.proc.send_signal(signal.SIGUSR1)
        assert wait_until(lambda: set(self.shots.glob("*.png")) - before, timeout=timeout), self.output()
        (new,) = set(self.shots.glob("*.png")) - before
        return new

    def screenshot_until(self, check, timeout: float = 60) -> Path:
        """Screenshots until `check(png)` holds (data may still be arriving)."""
        deadline = time.monotonic() + timeout
        while True:
            png = self.screenshot()
            if check(png) or time.monotonic() > deadline:
                return png
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
