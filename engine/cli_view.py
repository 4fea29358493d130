"""`pixelrun view [REC.rrd ...]`: the live viewer window.

    pixelrun view                       listen on 127.0.0.1:9876, show what streams in
    pixelrun view a.rrd b.rrd           open recordings (and still listen)
    pixelrun view REC --screenshot-to out.png [--window-size 1280x720]
                                        draw one frame, save it, exit

The SDK's ``spawn=True`` runs ``python -m pixelrun.engine.cli view --port N`` when
nothing listens on the port and waits until this process accepts connections: the
listener starts before the window, so the program streaming to us never waits on
the GPU or the window system.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys

from pixelrun.engine import rrd
from pixelrun.engine.viewer_server import DEFAULT_BIND

DEFAULT_WINDOW_SIZE = (1280, 720)


def _window_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 1280x720, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def register(sub) -> None:
    p = sub.add_parser("view", help="open the viewer window (live data and/or .rrd files)")
    p.add_argument("recordings", nargs="*", metavar="REC.rrd", help=".rrd files to open")
    port = rrd.default_port()  # PIXELRUN_PORT, else Rerun's 9876: where spawn/connect look
    p.add_argument("--port", type=int, default=port, help=f"TCP port to listen on (default {port}, from PIXELRUN_PORT or Rerun's 9876; 0 picks a free one)")
    p.add_argument("--bind", default=DEFAULT_BIND, help=f"address to listen on (default {DEFAULT_BIND}; 0.0.0.0 exposes the viewer to the network)")
    p.add_argument("--no-listen", action="store_true", help="do not listen for live data")
    p.add_argument("--screenshot-to", metavar="PNG", help="draw one frame, save it as PNG, exit")
    p.add_argument("--screenshot-dir", metavar="DIR", help="where key S (and SIGUSR1) save screenshots (default: current directory)")
    p.add_argument("--window-size", type=_window_size, default=DEFAULT_WINDOW_SIZE, metavar="WxH", help="window size in logical pixels (default 1280x720)")
    p.add_argument("--memory-limit", default="75%", help="store memory limit: bytes, '2GB' or a percentage of RAM (default 75%%)")
    # Benchmark hook (benchmarks/viewer.py): after every frame, append
    # "monotonic_time frame R G B A" of the window pixel showing image pixel U,V.
    p.add_argument("--probe", nargs=3, metavar=("FILE", "U", "V"), help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from pixelrun.engine.store import ChunkStore  # noqa: PLC0415
    from pixelrun.engine.viewer import Viewer, ViewerError, check_display  # noqa: PLC0415
    from pixelrun.engine.viewer_data import ViewerData  # noqa: PLC0415
    from pixelrun.engine.viewer_server import PortInUseError, ViewerServer  # noqa: PLC0415

    try:
        check_display()  # before listening: a spawning SDK must not connect to a dying viewer
    except ViewerError as exc:
        print(f"pixelrun view: {exc}", file=sys.stderr)
        return 1

    # SIGUSR1 = "save a screenshot" (a control hook for scripts and tests). Installed
    # before the port opens: a signal sent as soon as we accept must not kill us; it
    # is remembered until the window exists.
    hook = _ScreenshotSignal()
    try:
        data = ViewerData(ChunkStore(memory_limit=args.memory_limit))
    except ValueError as exc:
        print(f"pixelrun view: --memory-limit: {exc}", file=sys.stderr)
        return 2
    for path in args.recordings:
        try:
            problems = data.load_file(path)
        except OSError as exc:
            print(f"pixelrun view: cannot open {path}: {exc}", file=sys.stderr)
            return 1
        for problem in problems:
            print(f"pixelrun view: {path}: {problem}", file=sys.stderr)

    one_shot = args.screenshot_to is not None
    server = None
    if not args.no_listen and not one_shot:
        try:
            server = ViewerServer(lambda chunks, peer: data.ingest(chunks), host=args.bind, port=args.port).start()
        except PortInUseError as exc:
            print(f"pixelrun view: {exc.strerror}", file=sys.stderr)
            return 1
        except OSError as exc:  # e.g. an address that is not this machine's
            print(f"pixelrun view: cannot listen on {args.bind}:{args.port}: {exc}", file=sys.stderr)
            return 1
        print(f"pixelrun viewer: listening on {server.address}", flush=True)
        if server.host not in ("127.0.0.1", "::1", "localhost"):
            print(f"pixelrun viewer: warning: {server.host} accepts connections from other "
                  f"machines; any of them can send data to this viewer", file=sys.stderr)

    try:
        viewer = Viewer(
            data,
            size=args.window_size,
            screenshot_to=args.screenshot_to,
            screenshot_dir=args.screenshot_dir,
            status_source=server,
        )
    except ViewerError as exc:
        print(f"pixelrun view: {exc}", file=sys.stderr)
        if server:
            server.stop()
        return 1
    hook.attach(viewer)
    if args.probe:
        _install_probe(viewer, args.probe)
    try:
        viewer.run()
    except KeyboardInterrupt:
        pass
    finally:
        if server:
            server.stop()
    if one_shot and args.screenshot_to not in viewer.screenshots_saved:
        print(f"pixelrun view: no frame was drawn, {args.screenshot_to} not written", file=sys.stderr)
        return 1
    return 0


def _install_probe(viewer, spec) -> None:
    path, u, v = spec[0], int(spec[1]), int(spec[2])
    out = open(path, "a", buffering=1)  # line-buffered: the benchmark tails it live

    def sink(t, frame, rgba):
        out.write(f"{t:.6f} {frame} {rgba[0]} {rgba[1]} {rgba[2]} {rgba[3]}\n")

    viewer.probe_at = (u, v)
    viewer.probe_sink = sink


class _ScreenshotSignal:
    def __init__(self) -> None:
        self.viewer = None
        self.pending = 0
        if hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, self._on_signal)

    def _on_signal(self, *_):
        if self.viewer is None:
            self.pending += 1
        else:
            self.viewer.request_screenshot_threadsafe()

    def attach(self, viewer) -> None:
        self.viewer = viewer
        for _ in range(self.pending):
            viewer.request_screenshot()
        self.pending = 0
