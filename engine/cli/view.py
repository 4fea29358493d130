"""`pixelrun view [REC.rrd ...]`: the live viewer window.

    pixelrun view                       listen on 127.0.0.1:9876, show what streams in
    pixelrun view a.rrd b.rrd           open recordings (and still listen)
    pixelrun view REC --screenshot-to out.png [--window-size 1280x720]
                                        draw one frame, save it, exit

Screenshot mode never hangs: the path is checked before any window opens, any error
ends the run with one line on stderr and exit status 1, and the whole run is bounded
(``--screenshot-timeout``, then a watchdog that ends the process even if a driver
call never returns).

``--memory-limit`` bounds the process's data as a whole: the store, the decoded
textures and the messages in flight share it (store_memory.plan_memory).

The SDK's ``spawn=True`` runs ``python -m pixelrun.engine.cli.main view --port N`` when
nothing listens on the port and waits until this process accepts connections: the
listener starts before the window, so the program streaming to us never waits on
the GPU or the window system.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import re
import signal
import sys
import threading
import time

from pixelrun.engine import rrd
from pixelrun.engine.api import NotFoundError, check_entity
from pixelrun.engine.store.memory import plan_memory
from pixelrun.engine.store.store import ChunkStore
from pixelrun.engine.viewer.data import Recordings, ViewerData
from pixelrun.engine.viewer.server import (
    DEFAULT_BIND,
    DEFAULT_MAX_INFLIGHT_BYTES,
    DEFAULT_MAX_MESSAGE_BYTES,
    GRPC_TRANSPORT_BYTES,
    PortInUseError,
    ServerLimits,
    ViewerServer,
)

DEFAULT_WINDOW_SIZE = (1280, 720)
DEFAULT_SCREENSHOT_TIMEOUT_S = 120.0
WATCHDOG_GRACE_S = 15.0  # after the timeout: for a window that cannot even close


def _window_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 1280x720, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def register(p: argparse.ArgumentParser) -> None:
    """Add the arguments of `pixelrun view` to its parser (engine/cli/main.py makes it)."""
    p.add_argument("recordings", nargs="*", metavar="REC.rrd", help=".rrd files to open")
    port = rrd.default_port()  # PIXELRUN_PORT, else Rerun's 9876: where spawn/connect look
    p.add_argument("--port", type=int, default=port,
                   help=f"TCP port to listen on (default {port}, from PIXELRUN_PORT or Rerun's 9876; "
                        "0 picks a free one)")
    p.add_argument("--bind", default=DEFAULT_BIND,
                   help=f"address to listen on (default {DEFAULT_BIND}; 0.0.0.0 exposes the viewer to the network)")
    p.add_argument("--no-listen", action="store_true", help="do not listen for live data")
    p.add_argument("--entity", help="show only this entity's subtree (it must be in the REC.rrd files given)")
    p.add_argument("--screenshot-to", metavar="PNG", help="draw one frame, save it as PNG, exit")
    p.add_argument("--screenshot-timeout", type=_positive_seconds, default=DEFAULT_SCREENSHOT_TIMEOUT_S, metavar="S",
                   help="with --screenshot-to: give up (exit 1) when no frame is saved within S seconds of the "
                        f"start, loading included (default {DEFAULT_SCREENSHOT_TIMEOUT_S:g})")
    p.add_argument("--screenshot-dir", metavar="DIR",
                   help="where key S (and SIGUSR1) save screenshots (default: current directory)")
    p.add_argument("--window-size", type=_window_size, default=DEFAULT_WINDOW_SIZE, metavar="WxH",
                   help="window size in logical pixels (default 1280x720)")
    p.add_argument("--offscreen", action="store_true",
                   help="draw into an offscreen frame instead of a window: no display needed (GPU servers, CI); "
                        "live data, --screenshot-to and SIGUSR1 screenshots work as with a window")
    p.add_argument("--memory-limit", default="75%",
                   help="memory for data, all of it (store, decoded textures, messages in flight): bytes, '2GB' "
                        "or a percentage of RAM (default 75%%)")
    # Benchmark hook (benchmarks/viewer.py): after every frame, append
    # "monotonic_time frame R G B A ..." of the window pixel showing image pixel U,V
    # in each view (first view first).
    p.add_argument("--probe", nargs=3, metavar=("FILE", "U", "V"), help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def _started_as_command(argv: list[str]) -> bool:
    """Whether the interpreter's own argv (`sys.orig_argv`) started the `pixelrun` command
    itself: the console script, ``python -m pixelrun`` or ``python -m
    pixelrun.engine.cli.main``, so that starting the process again runs only the command
    again. A program of the user's (a script, ``-c``, stdin) that calls ``main()`` is not."""
    rest = argv[1:]
    i = 0
    while i < len(rest):
        a = rest[i]
        if a == "-m":
            return rest[i + 1:i + 2] in (["pixelrun"], ["pixelrun.engine.cli.main"])
        if a in ("-c", "-"):
            return False
        if a in ("-X", "-W"):  # options whose value is the next word
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return os.path.basename(a) in ("pixelrun", "pixelrun.exe")  # the console script
    return False


def _one_malloc_arena() -> None:
    """Start this process again with glibc's malloc limited to one arena (MALLOC_ARENA_MAX=1).

    Why: `--memory-limit` bounds the whole process, and glibc gives threads their own
    arenas, each keeping its own freed memory that only its threads reuse. A live viewer
    that evicts frames as fast as it receives them then holds the freed frames several
    times over: measured under a 1080p NV12 stream with a 500 MB limit, RSS ended 30 to
    170 MB above the limit (run to run); with one arena, within 6 MB of it, at the same
    ingest rate (large allocations are few, and most happen under the GIL anyway).
    The setting must be in place before the first thread allocates, and importing
    pyarrow already starts threads, hence a fresh start rather than mallopt() here.
    Only when the process was started as the `pixelrun` command (not a program of the
    user's calling main(), nor a test), on glibc, and when the user has not chosen
    MALLOC_ARENA_MAX. If the restart fails, the viewer runs as it is.
    """
    argv = getattr(sys, "orig_argv", None)
    if ("MALLOC_ARENA_MAX" in os.environ or platform.libc_ver()[0] != "glibc" or not sys.executable
            or not argv or not _started_as_command(argv)):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], dict(os.environ, MALLOC_ARENA_MAX="1"))
    except OSError as exc:
        print(f"pixelrun view: note: could not restart with one malloc arena ({exc}); "
              "memory may end above --memory-limit", file=sys.stderr)


def run(args) -> int:
    _one_malloc_arena()  # first: nothing started yet that a restart would lose
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.screenshot_to is None:
        return _run(args)
    # One-shot: bounded in time, and every failure is one line and a non-zero status.
    args.deadline = time.monotonic() + args.screenshot_timeout
    _start_watchdog(args.screenshot_timeout + WATCHDOG_GRACE_S, args.screenshot_to)
    try:
        return _run(args)
    except Exception as exc:
        print(f"pixelrun view: --screenshot-to {args.screenshot_to}: {type(exc).__name__}: "
              f"{' '.join(str(exc).split())}", file=sys.stderr)
        return 1


def _start_watchdog(seconds: float, path: str) -> None:
    """End the process if the one-shot run is still going after `seconds` (a driver or
    window-system call that never returns cannot be interrupted any other way)."""

    def fire() -> None:
        print(f"pixelrun view: --screenshot-to {path}: still running after {seconds:g} s; giving up",
              file=sys.stderr, flush=True)
        os._exit(1)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


def _run(args) -> int:
    # the window needs glfw, imgui and wgpu: imported only when a window is opened
    from pixelrun.engine.viewer.window import (  # noqa: PLC0415 - imports glfw, rendercanvas, imgui
        Viewer,
        ViewerError,
        check_display,
        check_writable,
    )
    from pixelrun.kernels.wgpu.composite import default_vram_budget  # noqa: PLC0415 - imports wgpu

    if args.screenshot_to is not None:
        try:
            check_writable(args.screenshot_to)  # before any window: fail in a moment, not after a frame
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename and exc.filename != args.screenshot_to else ""
            print(f"pixelrun view: cannot write the screenshot to {args.screenshot_to}: "
                  f"{exc.strerror or exc}{where}", file=sys.stderr)
            return 1
    try:
        if not args.offscreen:
            check_display()  # before listening: a spawning SDK must not connect to a dying viewer
    except ViewerError as exc:
        print(f"pixelrun view: {exc}", file=sys.stderr)
        return 1
    try:
        # a listening viewer leaves room in its limit for the gRPC front end's own memory
        listens = not args.no_listen and args.screenshot_to is None
        plan = plan_memory(args.memory_limit, textures_max=default_vram_budget(),
                           inflight_max=DEFAULT_MAX_INFLIGHT_BYTES,
                           transport_max=GRPC_TRANSPORT_BYTES if listens else 0)
    except ValueError as exc:
        print(f"pixelrun view: --memory-limit: {exc}", file=sys.stderr)
        return 2

    # SIGUSR1 = "save a screenshot" (a control hook for scripts and tests). Installed
    # before the port opens: a signal sent as soon as we accept must not kill us; it
    # is remembered until the window exists.
    hook = _ScreenshotSignal()
    one_shot = args.screenshot_to is not None
    listening = not args.no_listen and not one_shot
    # One store per recording, never merged (the window lists them); live data gets its
    # own. They share the store's part of the memory limit equally.
    n_stores = len(args.recordings) + (1 if listening or not args.recordings else 0)
    per_store = plan.store // n_stores if plan.store is not None else None
    recordings = Recordings()
    for path in args.recordings:
        rec = ViewerData(ChunkStore(memory_limit=per_store), name=os.path.basename(path), path=path)
        try:
            problems = rec.load_file(path)
        except OSError as exc:
            print(f"pixelrun view: cannot open {path}: {exc}", file=sys.stderr)
            return 1
        recordings.add(rec)  # loaded first: a file's data does not count as new data arriving
        for problem in problems:
            print(f"pixelrun view: {path}: {problem}", file=sys.stderr)
        try:
            rec.restore_settings()  # <recording>.pixelrun.json, when saved before
        except (OSError, ValueError) as exc:
            print(f"pixelrun view: settings not restored: {exc}", file=sys.stderr)
    live = None
    if listening or not args.recordings:
        live = recordings.add(ViewerData(ChunkStore(memory_limit=per_store), name="live"))
    if args.entity is not None:
        if args.recordings:  # live data has no entities yet to check against
            found = None
            for rec in recordings.items:
                try:
                    check_entity(rec.store, args.entity)
                    found = rec
                    break
                except NotFoundError as exc:
                    found = found or exc
            if not isinstance(found, ViewerData):
                print(f"pixelrun view: --entity: {found}", file=sys.stderr)
                return 1
        for rec in recordings.items:
            rec.root = args.entity

    server = None
    if listening:
        try:
            limits = ServerLimits(max_inflight_bytes=plan.inflight,
                                  max_message_bytes=min(DEFAULT_MAX_MESSAGE_BYTES, plan.inflight))
            server = ViewerServer(lambda chunks, peer: live.ingest(chunks), host=args.bind, port=args.port,
                                  limits=limits).start()
        except PortInUseError as exc:
            print(f"pixelrun view: {exc.strerror}", file=sys.stderr)
            return 1
        except OSError as exc:  # e.g. an address that is not this machine's
            print(f"pixelrun view: cannot listen on {args.bind}:{args.port}: {exc}", file=sys.stderr)
            return 1
        print(f"pixelrun viewer: listening for gRPC on {server.address} (rerun-sdk or pixelrun: rr.connect_grpc("
              f"\"rerun+http://{server.address}/proxy\")); {plan.describe()}", flush=True)
        if server.host not in ("127.0.0.1", "::1", "localhost"):
            print(f"pixelrun viewer: warning: {server.host} accepts connections from other "
                  f"machines; any of them can send data to this viewer", file=sys.stderr)

    try:
        viewer = Viewer(
            recordings,
            size=args.window_size,
            screenshot_to=args.screenshot_to,
            screenshot_dir=args.screenshot_dir,
            status_source=server,
            texture_budget=plan.textures,
            offscreen=args.offscreen,
            # one-shot: what is left of the run's time after loading (the watchdog allows a little more)
            screenshot_timeout=max(1.0, args.deadline - time.monotonic()) if one_shot else args.screenshot_timeout,
        )
    except ViewerError as exc:
        print(f"pixelrun view: {exc}", file=sys.stderr)
        if server:
            server.stop()
        return 1
    hook.attach(viewer)
    if args.offscreen and not one_shot:
        where = args.screenshot_dir or os.getcwd()
        print(f"pixelrun viewer: drawing offscreen (no window); `kill -USR1 {os.getpid()}` saves a screenshot "
              f"into {where}", flush=True)
    if args.probe:
        _install_probe(viewer, args.probe)
    # What is alive now (modules, the window, imgui, pipelines, loaded recordings) stays for
    # the viewer's life: frozen, the collector's full passes skip it and cover only what
    # live data allocates (a full pass over the start-up heap took 35 ms, on the draw
    # thread, in the middle of a live stream). Frozen objects are still freed by reference
    # counting when dropped; only cycles among them would wait.
    gc.collect()
    gc.freeze()
    try:
        viewer.run()
    except KeyboardInterrupt:
        pass
    finally:
        if server:
            server.stop()
    if one_shot and args.screenshot_to not in viewer.screenshots_saved:
        why = viewer.error or "no frame was drawn"
        print(f"pixelrun view: {args.screenshot_to} not written: {why}", file=sys.stderr)
        return 1
    return 0


def _install_probe(viewer, spec) -> None:
    path, u, v = spec[0], int(spec[1]), int(spec[2])
    out = open(path, "a", buffering=1)  # line-buffered: the benchmark tails it live

    def sink(t, frame, pixels):
        # "time frame R G B A [R G B A per further view]"
        values = " ".join(str(c) for rgba in pixels for c in rgba)
        out.write(f"{t:.6f} {frame} {values}\n")

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
