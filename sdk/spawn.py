"""Starting the pixelrun viewer for ``spawn=True`` / ``rr.spawn()``.

The viewer lives in ``pixelrun.engine.cli.view`` (``pixelrun view --port P``). When
that module is missing, or there is no display, we warn once and keep going: a
logging script must never fail because no viewer can be shown.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import warnings

from pixelrun.errors import PixelrunWarning, user_stacklevel

__all__ = ["spawn_viewer", "is_listening"]

_warned: set = set()


def _warn_once(key: str, msg: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, PixelrunWarning, stacklevel=user_stacklevel())


def is_listening(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def viewer_available() -> bool:
    try:
        return importlib.util.find_spec("pixelrun.engine.cli.view") is not None
    except (ImportError, ValueError):
        return False


def spawn_viewer(port: int, wait_secs: float = 15.0) -> bool:
    """Make sure a viewer listens on `port`; True when something does. Whether that
    is a Rerun-compatible gRPC server (a pixelrun or Rerun viewer) is checked by the
    gRPC sink (its HTTP/2 probe), which names anything else and sends it nothing."""
    if is_listening(port):
        return True
    if not viewer_available():
        _warn_once("no-viewer", "pixelrun: no viewer is available (pixelrun.engine.cli.view "
                   "is missing); logging goes on without one")
        return False
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        _warn_once("no-display", "pixelrun: spawn=True but there is no display (DISPLAY is "
                   "unset); logging goes on without a viewer (set PIXELRUN_SAVE=file.rrd "
                   "to capture it)")
        return False
    cmd = [sys.executable, "-m", "pixelrun.engine.cli.main", "view", "--port", str(port)]
    try:
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        _warn_once("spawn-failed", f"pixelrun: could not start the viewer ({exc}); going on without it")
        return False
    deadline = time.monotonic() + wait_secs
    while time.monotonic() < deadline:
        if is_listening(port):
            return True
        time.sleep(0.1)
    _warn_once("spawn-timeout", f"pixelrun: the viewer did not listen on port {port} within "
               f"{wait_secs:.0f} s; data is queued and sent if it comes up")
    return True  # connect anyway: the gRPC sink retries and never blocks
