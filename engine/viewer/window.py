"""The live viewer window: glfw (rendercanvas) + wgpu + imgui panels.

With ``offscreen=True`` (``pixelrun view --offscreen``) the same viewer draws into an
offscreen frame instead of a window: no display is needed (a GPU server, CI), live data,
screenshots (SIGUSR1, ``--screenshot-to``) and the benchmark probe work as in a window.
rendercanvas's offscreen canvas has no scheduler, so `OffscreenLoop` below stands in for
the window toolkit's loop: it runs the callbacks and draws on request, at most max_fps.

What it does, and where:
- the active recording's images are split into 2D views by Rerun's default rule (same
  size and parent subtree share a view; view.py `Layout`), laid out in a grid over the
  image area, each with its own pan/zoom;
- each view is composited by the shared `Renderer` (kernels/wgpu/composite.py) into its
  own texture, only when its layers (rows, opacity, draw order, display settings) or its
  pan/zoom change, and copied into a window-sized cache texture; every frame copies the
  cache to the surface (kernels/wgpu/shaders/viewer_blit.wgsl) and draws the imgui panels
  (engine/viewer/panels.py) on top, so hovering and widgets never pay for a composite,
  and new data for one camera recomposites that camera's view only;
- data arrives through `viewer_server.ViewerServer` on background threads and lands in
  `viewer_data.ViewerData`; ingest asks the window thread for a redraw, so the window
  draws only when data, the time cursor, an override or the view changed;
- the composite costs what the window costs, whatever the scene's size: the renderer
  works per window pixel and draws zoomed-out layers from reduced levels, and its
  texture cache has the budget the memory plan gives it (``texture_budget``, derived
  from ``--memory-limit`` in cli_view), so store + textures stay under one limit;
- screenshots read back the surface texture of the frame just drawn (key S, SIGUSR1,
  or ``--screenshot-to``) and are saved as PNG with the view transform in a text
  chunk (``pixelrun:view``), so a test or a script can map image pixels to window
  pixels. With ``screenshot_to`` any error, or no saved frame within
  ``screenshot_timeout`` seconds, closes the window and is left in ``error`` (one
  line); a failed S-key screenshot is reported and the window goes on.

Input (panels.SHORTCUTS, shown by H): drag with the left button to pan the view under
the cursor, wheel to zoom about the cursor, F (or double click) to fit, 1 for one texel
per pixel, M to maximise, Esc to restore, space to play/pause, Left/Right to step, L to
loop, End to follow, S for a screenshot.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, PngImagePlugin

from pixelrun.engine.scene import canvas_size
from pixelrun.engine.store.memory import format_mb
from pixelrun.engine.viewer.data import Recordings, ViewerData
from pixelrun.engine.viewer.inspect import PixelReadout, ValueRangeCache, readouts_at
from pixelrun.engine.viewer.view import BOTTOM_PANEL_H, LEFT_PANEL_W, Rect, SpaceView, View
from pixelrun.kernels.wgpu import device as gpu
from pixelrun.kernels.wgpu.wgsl import load_wgsl

__all__ = [
    "Viewer", "ViewerError", "check_display", "check_writable", "WINDOW_BACKGROUND", "read_view_metadata",
]

log = logging.getLogger("pixelrun.viewer")

WINDOW_BACKGROUND = (13, 13, 13, 255)  # contract §4: the window's default background
# Frames per second at most. rendercanvas looks for requested draws once per 1/MAX_FPS
# tick; 120 halves that wait against 60 for 120 flag checks a second when idle (new data
# does not wait for the tick: `Viewer._on_data`).
MAX_FPS = 120
VIEW_METADATA_KEY = "pixelrun:view"


class ViewerError(RuntimeError):
    """The viewer cannot start (no display, no GPU adapter, port taken)."""


def check_display() -> None:
    """Raise ViewerError with a clear message when no window can be opened here."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise ViewerError(
            "no display: DISPLAY and WAYLAND_DISPLAY are unset, so no window can open. "
            "Use `pixelrun view --offscreen` (the viewer without a window: live data, screenshots), "
            "`pixelrun render` for headless images, or a virtual X server (e.g. `xvfb-run pixelrun view ...`)."
        )
    try:
        import glfw  # noqa: PLC0415 - needs a display library; a missing one becomes a ViewerError
    except ImportError as exc:
        raise ViewerError(f"the viewer needs the glfw package: {exc}") from None
    if not glfw.init():
        where = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        raise ViewerError(
            f"no display: glfw could not connect to the display {where!r}. Is the X "
            f"server running and reachable?"
        )


def check_writable(path) -> None:
    """Raise OSError (with the reason) unless a screenshot can be saved at `path`.

    Does what saving does — make the missing parent folders, write a file beside the
    target — so a bad path fails before any window opens, not after the first frame.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(target))
    for folder in target.parents:  # the nearest existing ancestor must be a folder
        if folder.exists():
            if not folder.is_dir():
                raise NotADirectoryError(20, "Not a directory", str(folder))
            break
    target.parent.mkdir(parents=True, exist_ok=True)
    probe = target.parent / f".{target.name}.check-{os.getpid()}"
    with open(probe, "wb"):
        pass
    probe.unlink()


def read_view_metadata(png_path) -> dict:
    """The view transform stored in one of our screenshots (see module docstring)."""

    with Image.open(png_path) as im:
        return json.loads(im.text[VIEW_METADATA_KEY])


def _device():
    """The shared wgpu device (kernels/wgpu/device.py picks the adapter)."""
    try:
        return gpu.get_device()
    except gpu.GpuUnavailable as exc:
        raise ViewerError(str(exc)) from None


class OffscreenLoop:
    """The event loop of an offscreen viewer: callbacks (thread-safe) and timers, and a
    draw whenever one was requested, at most `max_fps` a second, until the canvas closes.

    The same methods the viewer uses of a rendercanvas loop (call_soon_threadsafe,
    call_later, run, stop), plus `request_draw`. Every wait is bounded (the next timer,
    the next allowed draw, or 0.5 s), so a closed canvas ends `run` promptly.
    """

    def __init__(self, max_fps: float = 120.0) -> None:
        self.canvas = None  # set by the viewer
        self._min_interval = 1.0 / max_fps
        self._cv = threading.Condition()
        self._soon: deque = deque()
        self._timers: list = []  # (due, seq, callback) heap
        self._seq = 0
        self._want_draw = False
        self._stopped = False
        self._next_draw = 0.0

    def call_soon_threadsafe(self, callback) -> None:
        with self._cv:
            self._soon.append(callback)
            self._cv.notify()

    def call_later(self, delay: float, callback) -> None:
        with self._cv:
            self._seq += 1
            heapq.heappush(self._timers, (time.monotonic() + delay, self._seq, callback))
            self._cv.notify()

    def request_draw(self) -> None:
        with self._cv:
            self._want_draw = True
            self._cv.notify()

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()

    def run(self) -> None:
        while True:
            with self._cv:
                while True:
                    if self._stopped or (self.canvas is not None and self.canvas.get_closed()):
                        return
                    now = time.monotonic()
                    due = []
                    while self._timers and self._timers[0][0] <= now:
                        due.append(heapq.heappop(self._timers)[2])
                    due.extend(self._soon)
                    self._soon.clear()
                    draw = self._want_draw and now >= self._next_draw
                    if due or draw:
                        break
                    wait = 0.5
                    if self._timers:
                        wait = min(wait, self._timers[0][0] - now)
                    if self._want_draw:
                        wait = min(wait, self._next_draw - now)
                    self._cv.wait(max(wait, 0.0))
                if draw:
                    self._want_draw = False
                    self._next_draw = now + self._min_interval
            for callback in due:
                try:
                    callback()
                except Exception:  # as a window's loop does: report, go on
                    log.exception("pixelrun viewer: callback failed")
            if draw and not self.canvas.get_closed():
                self.canvas.force_draw()  # errors are reported by rendercanvas; the loop goes on


class Viewer:
    """One window showing one `ViewerData`. Create, then `run()` (blocks until closed).

    screenshot_to: save the first complete frame there and close (``--screenshot-to``);
    an error, or no frame saved within ``screenshot_timeout`` s, closes the window too,
    with the reason in ``error``.
    screenshot_dir: where key S and SIGUSR1 save numbered screenshots.
    status_source: the `ViewerServer` (its counters go to the status panel).
    texture_budget: bytes of decoded textures the renderer may cache (None: its default).
    """

    def __init__(
        self,
        data,
        *,
        size: tuple[int, int] = (1280, 720),
        title: str = "pixelrun viewer",
        screenshot_to: Optional[str] = None,
        screenshot_dir: Optional[str] = None,
        status_source=None,
        texture_budget: Optional[int] = None,
        screenshot_timeout: float = 60.0,
        offscreen: bool = False,
    ) -> None:
        # Window toolkits load only when a window opens, so read_view_metadata and
        # check_display work where they are missing.
        import wgpu  # noqa: PLC0415 - opens GPU drivers at import
        from wgpu.utils.imgui import ImguiRenderer  # noqa: PLC0415 - window toolkit

        if offscreen:
            from rendercanvas.offscreen import RenderCanvas  # noqa: PLC0415 - no display needed

            loop = OffscreenLoop(max_fps=MAX_FPS)
        else:
            check_display()
            from rendercanvas.glfw import RenderCanvas, loop  # noqa: PLC0415 - window toolkit

        from pixelrun.engine.viewer.panels import Panels  # noqa: PLC0415 - imports imgui

        # One ViewerData per recording, never merged; the window shows the active one.
        self.recordings = data if isinstance(data, Recordings) else Recordings([data])
        self.status_source = status_source  # e.g. the ViewerServer, for its stats
        self._wgpu = wgpu
        self._loop = loop
        self.canvas = RenderCanvas(
            size=size, title=title, update_mode="ondemand", max_fps=MAX_FPS, vsync=False
        )
        self.offscreen = offscreen
        if offscreen:
            loop.canvas = self.canvas
        self.device = _device()
        self.context = self.canvas.get_wgpu_context()
        self.surface_format = self.context.get_preferred_format(self.device.adapter)
        # The scene is drawn into a window-sized cache texture in the surface format's
        # non-sRGB twin and copied to the surface through a view of that same twin
        # format, so the renderer's bytes reach the screen unchanged; imgui draws on
        # the surface's own (sRGB) view, the format its backend was built for.
        twin = self.surface_format.removesuffix("-srgb")
        # Screenshots read the surface texture back when the surface allows copies
        # (Vulkan surfaces do); otherwise the frame is drawn again offscreen. A surface
        # that can be copied into gets the cache by a texture copy (no full-window
        # fragment pass: on a CPU adapter that is a few ms of every frame).
        self._surface_copy = True
        self.cache_format = twin
        for usage, views in (
            ("RENDER_ATTACHMENT|COPY_SRC|COPY_DST", [twin]),
            ("RENDER_ATTACHMENT|COPY_SRC", [twin]),
            ("RENDER_ATTACHMENT", [twin]),
            ("RENDER_ATTACHMENT", []),
        ):
            try:
                self.context.configure(
                    device=self.device, format=self.surface_format, usage=usage,
                    view_formats=views if twin != self.surface_format else [],
                )
            except Exception:
                continue
            self._surface_copy = "COPY_SRC" in usage
            if not views:
                self.cache_format = self.surface_format  # sRGB round trip in the blit
            break
        from pixelrun.kernels.wgpu.composite import Renderer  # noqa: PLC0415 - imports wgpu

        self.renderer = Renderer(self.device, vram_budget=texture_budget)
        # compile the composite and common decode pipelines now, while the window opens:
        # the first frame with data would otherwise pay a few hundred ms for them
        self.renderer.warm_up(self.cache_format)
        self._blit_pipeline = self._make_blit_pipeline()
        self.blit_by_copy = True  # False: always the blit pass (tests compare the two)
        self._cache_tex = None
        self._cache_bind = None
        self._cache_key = None  # the view layout the cache texture was last cleared for
        self._view_tex: dict = {}  # view key -> (texture, its key of what was drawn)
        self.imgui = ImguiRenderer(self.device, self.canvas)
        # The panel layout is fixed: never write an imgui.ini into the user's directory.
        self.imgui.backend.io.set_ini_filename("")
        self.panels = Panels(self)
        self.imgui.set_gui(self.panels.draw)

        self.views: list[SpaceView] = []  # the 2D views of this frame, laid out in the image area
        self.ranges = ValueRangeCache()
        self.readout: Optional[PixelReadout] = None  # the topmost layer's readout under the cursor
        self.readouts: list[PixelReadout] = []  # every layer under the cursor, topmost first
        self.hovered: Optional[SpaceView] = None  # the view under the cursor
        self._texel: tuple = (None, None)  # the last display texel read back (key, RGBA)
        self.cursor: Optional[tuple[float, float]] = None
        self.frames = 0
        self.scene_draws = 0  # view composites (frames reuse the views whose layers did not change)
        self.view_draws: dict[str, int] = {}  # view key -> its composites
        self.last_frame_time = 0.0
        self._frame_started = 0.0  # perf_counter when the last frame began
        self._last_tick = time.perf_counter()
        self._layers: list = []
        self._scene_key = None
        self._scene_signature: tuple = ()
        self._canvas_wh = (0, 0)
        self._drag: Optional[tuple[str, float, float]] = None  # (view key, x, y) while panning
        self._redraw_pending = threading.Event()
        self._screenshot_requests: list[str] = []
        self.screenshots_saved: list[str] = []
        self._screenshot_to = screenshot_to
        self._screenshot_timeout = float(screenshot_timeout)
        self.error: Optional[str] = None  # why a --screenshot-to run failed (one line)
        self._screenshot_dir = Path(screenshot_dir or os.getcwd())
        self._screenshot_seq = 0
        self.frame_callbacks: list = []  # fn(viewer) after each presented frame
        # Benchmark probe: read back the window pixel showing image pixel `probe_at` in
        # every view after every frame and call probe_sink(monotonic_time, frame, pixels):
        # one RGBA per view, first view first, (-1, -1, -1, -1) where that point is off screen.
        self.probe_at: Optional[tuple[int, int]] = None
        self.probe_sink = None

        # Before imgui's handlers (order -99), which stop events over the panels: every
        # input event redraws, so imgui's idea of where the mouse is never goes stale,
        # and the cursor (for the hover readout) is always known.
        self.canvas.add_event_handler(
            self._on_any_input, "pointer_down", "pointer_up", "pointer_move", "wheel",
            "key_down", "key_up", "char", order=-100,
        )
        self.canvas.add_event_handler(self._on_pointer, "pointer_down", "pointer_up", "pointer_move")
        self.canvas.add_event_handler(self._on_wheel, "wheel")
        self.canvas.add_event_handler(self._on_key, "key_down")
        self.canvas.add_event_handler(self._on_double_click, "double_click")
        self.canvas.add_event_handler(lambda e: self.request_draw(), "resize", "pointer_enter", "pointer_leave")
        self.canvas.add_event_handler(lambda e: self._release_surface(), "close")
        self.canvas.request_draw(self._draw)
        if offscreen:
            self._loop.request_draw()  # the first frame (a window asks for it when it opens)
        for rec in self.recordings.items:
            rec.add_listener(self._on_data_threadsafe)
        if screenshot_to is not None:
            self._screenshot_requests.append(str(screenshot_to))

    # ------------------------------------------------------------------ setup

    def _make_blit_pipeline(self):

        src = load_wgsl("viewer_blit.wgsl")  # with its #include of common.wgsl resolved
        module = self.device.create_shader_module(code=src)
        return self.device.create_render_pipeline(
            layout="auto",
            vertex={"module": module, "entry_point": "vs_fullscreen"},
            fragment={"module": module, "entry_point": "fs_main", "targets": [{"format": self.cache_format}]},
            primitive={"topology": "triangle-list"},
        )

    def request_screenshot_threadsafe(self) -> None:
        """Ask for a screenshot from a signal handler or another thread."""
        self._loop.call_soon_threadsafe(self.request_screenshot)

    # ------------------------------------------------------------------ scheduling

    def request_draw(self) -> None:
        self.canvas.request_draw()
        if self.offscreen:
            self._loop.request_draw()  # the offscreen canvas has no scheduler of its own

    def _on_data_threadsafe(self) -> None:
        # Called from ingest threads: coalesce many chunks into one wake-up of the loop.
        if not self._redraw_pending.is_set():
            self._redraw_pending.set()
            try:
                self._loop.call_soon_threadsafe(self._on_data)
            except Exception:  # loop closed while a connection still delivers
                pass

    def _on_data(self) -> None:
        self._redraw_pending.clear()
        # New data is drawn now, not at the window loop's next tick (rendercanvas looks for
        # requested draws once per 1/max_fps: up to 8 ms of every frame's log -> pixel time),
        # unless the last frame began less than 1/max_fps ago: then the tick keeps the rate.
        if (not self.offscreen and time.perf_counter() - self._frame_started >= 1.0 / MAX_FPS
                and not self.canvas.get_closed()):
            try:
                self.canvas.force_draw()
                return
            except RuntimeError:  # a draw is under way (rendercanvas refuses to nest): the tick will do
                pass
        self.request_draw()

    def request_screenshot(self, path: Optional[str] = None) -> None:
        if path is None:
            self._screenshot_seq += 1
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = str(self._screenshot_dir / f"pixelrun-{stamp}-{self._screenshot_seq:03d}.png")
        self._screenshot_requests.append(path)
        self.request_draw()

    def run(self) -> None:
        """Show the window and process events until it is closed.

        With ``screenshot_to``: until the frame is saved, an error, or the timeout.
        """
        if self._screenshot_to is not None:
            self._loop.call_later(self._screenshot_timeout, self._screenshot_timed_out)
        self._loop.run()

    def _screenshot_timed_out(self) -> None:
        if self._screenshot_to not in self.screenshots_saved and self.error is None:
            self._fail(f"no frame was saved within {self._screenshot_timeout:g} s")

    def _fail(self, msg: str) -> None:
        """End a --screenshot-to run: remember why (one line) and close the window."""
        self.error = " ".join(str(msg).split())
        self.canvas.close()

    def close(self) -> None:
        self.canvas.close()
        self._release_surface()

    def _release_surface(self) -> None:
        # Release the wgpu surface while the display connection is still open: one
        # left to the garbage collector may be dropped after glfw has closed the X
        # connection (a process that goes on after its window, e.g. tests), which
        # deadlocks in Mesa's xcb code. rendercanvas keeps the wgpu context private.
        wctx = getattr(self.context, "_wgpu_context", None)
        release = getattr(wctx, "_release", None)
        if release is not None:
            try:
                release()
            except Exception:  # already gone: nothing to do
                pass

    def status_lines(self) -> list[str]:
        """The status panel's text: memory against its limits, the renderer's reduced
        layers and errors, and the live server's counters (refused, evicted, timed out...)."""
        mb = format_mb

        r = self.renderer
        store = self.data.store
        limit = getattr(store, "memory_limit", None)
        textures = r.cache_bytes + r.spare_bytes  # spares are held too (Renderer.retain)
        lines = [
            f"store {mb(store.held_bytes)}" + (f" of {mb(limit)}" if limit is not None else "")
            + f", {self.data.dropped_chunks} chunks dropped; textures {mb(textures)} of {mb(r.vram_budget)}"
        ]
        for entity, k in sorted(r.last_draw.over_budget.items()):
            lines.append(f"{entity}: shown at 1/{k} resolution (its textures exceed the budget)")
        for msg in list(r.last_errors.values())[:5]:
            lines.append(f"not drawn: {msg}")
        src = self.status_source
        if src is not None:
            lines.append(f"listening on {src.address}")
            snap = getattr(src, "stats_snapshot", None)
            st = snap() if snap is not None else src.stats
            if hasattr(st, "status_line"):
                lines.append(st.status_line())
            else:  # an older server without the one-line summary
                lines.append(f"connections: {st.connections_open} open, {st.connections_total} total, "
                             f"{st.connections_dropped} dropped; received {st.bytes_received / 1e6:.1f} MB")
            if st.last_error:
                lines.append(f"last error: {st.last_error}")
        return lines

    @property
    def layers(self) -> list:
        """The layers of the current frame, in draw order (overrides applied)."""
        return self._layers

    @property
    def data(self) -> ViewerData:
        """The active recording."""
        return self.recordings.current

    @property
    def view(self) -> View:
        """The pan/zoom of the first view (of the only one, in a one-view layout)."""
        return self.views[0].view if self.views else self._no_view

    _no_view = View()

    def view_at(self, px: float, py: float) -> Optional[SpaceView]:
        """The view whose image part holds window pixel (px, py)."""
        for sv in self.views:
            if sv.rect.contains(px, py):
                return sv
        return None

    def view_layers(self, sv: SpaceView) -> list:
        """The layers of view `sv`, in draw order."""
        members = set(sv.entities)
        return [l for l in self._layers if l.entity in members]

    # ------------------------------------------------------------------ geometry

    def physical_size(self) -> tuple[int, int]:
        return tuple(self.canvas.get_physical_size())

    def pixel_ratio(self) -> float:
        return float(self.canvas.get_pixel_ratio())

    def image_area(self) -> Rect:
        """The window part (physical pixels) not covered by the docked panels."""
        w, h = self.physical_size()
        r = self.pixel_ratio()
        left, bottom = LEFT_PANEL_W * r, BOTTOM_PANEL_H * r
        return Rect(left, 0.0, max(1.0, w - left), max(1.0, h - bottom))

    # ------------------------------------------------------------------ input

    def _on_any_input(self, e: dict) -> None:
        if "x" in e and "y" in e:
            r = self.pixel_ratio()
            self.cursor = (e["x"] * r, e["y"] * r)
        self.request_draw()

    def _on_pointer(self, e: dict) -> None:
        r = self.pixel_ratio()
        px, py = e["x"] * r, e["y"] * r
        kind = e["event_type"]
        if kind == "pointer_down" and e.get("button") == 1:
            sv = self.view_at(px, py)
            if sv is not None:
                self._drag = (sv.key, px, py)
        elif kind == "pointer_up":
            self._drag = None
        elif kind == "pointer_move":
            if self._drag is not None and 1 in e.get("buttons", ()):
                key, x0, y0 = self._drag
                view = self.data.layout.views.get(key)
                if view is not None:
                    view.pan(px - x0, py - y0)
                self._drag = (key, px, py)
            self.cursor = (px, py)
        self.request_draw()

    def _on_wheel(self, e: dict) -> None:
        r = self.pixel_ratio()
        px, py = e["x"] * r, e["y"] * r
        sv = self.view_at(px, py)
        if sv is not None:
            sv.view.zoom_at(px, py, 1.0015 ** (-e["dy"]))
            self.request_draw()

    def _on_double_click(self, e: dict) -> None:
        r = self.pixel_ratio()
        sv = self.view_at(e["x"] * r, e["y"] * r) if "x" in e else None
        self.fit(sv)

    def _on_key(self, e: dict) -> None:
        key = e.get("key", "")
        if key in ("s", "S"):
            self.request_screenshot()
        elif key in ("f", "F"):
            self.fit(self._hovered_view())
        elif key == "1":
            self.one_to_one(self._hovered_view())
        elif key in ("m", "M"):
            sv = self._hovered_view() or (self.views[0] if self.views else None)
            self.data.layout.toggle_maximized(sv.key if sv is not None else None)
            self.request_draw()
        elif key == "Escape":
            self.data.layout.maximized = None
            self.panels.show_help = False
            self.request_draw()
        elif key in ("h", "H", "?"):
            self.panels.show_help = not self.panels.show_help
            self.request_draw()
        elif key in ("ArrowLeft", "ArrowRight"):
            self.data.step_time(-1 if key == "ArrowLeft" else +1)
            self.request_draw()
        elif key in ("l", "L"):
            self.data.playback.loop = not self.data.playback.loop
            self.request_draw()
        elif key == "End":
            self.data.playback.follow = True
            self.request_draw()
        elif key == " ":
            self.toggle_play()

    def toggle_play(self) -> None:
        """Play/pause; playing from the end starts again at the beginning."""
        pb = self.data.playback
        pb.playing = not pb.playing
        info = self.data.sync_playback()
        if pb.playing and info is not None and pb.time is not None and pb.time >= info.hi:
            pb.time = info.lo
            pb.follow = False
        self.request_draw()

    def _hovered_view(self) -> Optional[SpaceView]:
        return self.view_at(*self.cursor) if self.cursor is not None else None

    @staticmethod
    def _canvas_of(sv: SpaceView) -> tuple[int, int]:
        return sv.canvas

    def fit(self, sv: Optional[SpaceView] = None) -> None:
        """Fit one view (all views when None) to its part of the window."""
        for one in [sv] if sv is not None else self.views:
            one.view.fit(one.rect, self._canvas_of(one))
        self.request_draw()

    def one_to_one(self, sv: Optional[SpaceView] = None) -> None:
        """One texel per pixel in one view (all views when None)."""
        for one in [sv] if sv is not None else self.views:
            one.view.one_to_one(one.rect, self._canvas_of(one))
        self.request_draw()

    # ------------------------------------------------------------------ drawing

    def _update_scene(self) -> None:
        self.recordings.follow_new_data()
        info = self.data.sync_playback()
        now = time.perf_counter()
        # at most 0.1 s per frame: a pause between frames must not jump the cursor
        dt, self._last_tick = min(0.1, now - self._last_tick), now
        self.data.playback.advance(dt, info)
        pb = self.data.playback
        key = (id(self.data), self.data.generation, pb.timeline, pb.time, self.data.overrides_version)
        if key != self._scene_key:
            self._scene_key = key
            self._layers = self.data.layers()
            self._canvas_wh = canvas_size(self._layers)
        self.views = self.data.layout.arrange(self._layers, self.image_area(), self.pixel_ratio())

    def _update_readout(self) -> None:
        self.readout = None
        self.readouts = []
        self.hovered = self._hovered_view()
        if self.hovered is None:
            return
        u, v = self.hovered.view.window_to_image(*self.cursor)
        layers = self.view_layers(self.hovered)
        self.readouts = readouts_at(
            layers, u, v, ranges=self.ranges, meters=self.data.depth_meters(layers),
            labels=self.data.class_labels(layers), display_of=self._display_texel,
        )
        self.readout = self.readouts[0] if self.readouts else None

    def _display_texel(self, layer, x: int, y: int):
        """The display RGBA the renderer decoded for pixel (x, y) of `layer` (one texel
        read back from its cached texture), for layers mapped through a colormap. The
        last answer is kept: a still cursor over a still frame reads back once."""
        key = (layer.entity, layer.row_id, layer.kind, layer.colormap, layer.value_range, x, y)
        if self._texel[0] == key:
            return self._texel[1]
        value = self._read_texel(layer, x, y)
        self._texel = (key, value)
        return value

    def _read_texel(self, layer, x: int, y: int):
        try:
            tiles = self.renderer.display_rgba(layer)
        except Exception:  # undecodable here: the readout says n/a
            return None
        for t in tiles:
            if t.x0 <= x < t.x0 + t.width and t.y0 <= y < t.y0 + t.height:
                enc = self.device.create_command_encoder()
                buf = self.device.create_buffer(size=256, usage="COPY_DST|MAP_READ")
                enc.copy_texture_to_buffer(
                    {"texture": t.texture, "origin": (x - t.x0, y - t.y0, 0)},
                    {"buffer": buf, "bytes_per_row": 256, "rows_per_image": 1}, (1, 1, 1),
                )
                self.device.queue.submit([enc.finish()])
                buf.map_sync("READ")
                px = tuple(bytes(buf.read_mapped()[:4]))
                buf.unmap()
                buf.destroy()
                return px
        return None

    def _draw(self) -> None:
        if self._screenshot_to is None:
            self._draw_frame()  # rendercanvas reports an error and the window goes on
            return
        if self.error is not None:
            return
        try:
            self._draw_frame()
        except Exception as exc:  # the one-shot run must end, whatever went wrong
            self._fail(f"{type(exc).__name__}: {exc}")

    def _draw_frame(self) -> None:
        t0 = self._frame_started = time.perf_counter()
        self._update_scene()
        self._update_readout()
        # The views' composites are submitted before the surface is acquired: acquiring can
        # wait on the presentation engine (up to 10 ms under Xvfb), and the GPU works on
        # the new frame meanwhile. The surface follows the canvas's physical size; where it
        # came out different (a resize in flight), the cache is made again at its size.
        self._update_cache(tuple(max(1, int(v)) for v in self.physical_size()))
        texture = self.context.get_current_texture()
        size = (texture.size[0], texture.size[1])
        if size != tuple(self._cache_tex.size[:2]):
            self._update_cache(size)
        encoder = self.device.create_command_encoder()
        self._record_frame(encoder, texture)
        shot = self._screenshot_requests[:]
        self._screenshot_requests.clear()
        readback = None
        if shot:
            if not self._surface_copy:
                # Surface cannot be copied from: draw the same frame into a texture.
                texture = self._offscreen_like(texture)
                self._record_frame(encoder, texture)
            readback = self._record_readback(encoder, texture)
        probe = self._record_probe(encoder, texture) if self.probe_at is not None else None
        self.device.queue.submit([encoder.finish()])
        if probe is not None:
            self._finish_probe(probe)
        if readback is not None:
            rgba = self._finish_readback(readback, texture)
            for path in shot:
                if path == self._screenshot_to:
                    self._save_png(path, rgba)  # a failure ends the one-shot run
                    continue
                try:
                    self._save_png(path, rgba)
                except OSError as exc:  # S key / SIGUSR1: say so, keep the window
                    log.error("pixelrun viewer: screenshot not saved to %s: %s", path, exc)
        self.frames += 1
        self.last_frame_time = time.perf_counter() - t0
        for fn in list(self.frame_callbacks):
            fn(self)
        if self.data.playback.playing:
            self.request_draw()  # keep animating
        if shot and self._screenshot_to in shot:
            self.canvas.close()

    def _update_cache(self, size: tuple[int, int]) -> None:
        """Composite again the views whose layers or pan/zoom changed, each into its own
        texture, copied into the window-sized cache at its place.

        A view is keyed by what its composite depends on (its layers' rows, opacity,
        draw order, display settings; its pan/zoom and size), so new data for one camera
        recomposites that camera's view only, and frames that only change the panels
        (hover, widgets) composite nothing: on a CPU adapter that is most of a frame.
        Each view's draw is submitted on its own, so the renderer's texture cache and
        accumulation buffer are never reused inside one command buffer.
        """
        wgpu = self._wgpu
        backdrop = tuple(self.panels.backdrop_rects())
        layout_key = (size, tuple((sv.key, sv.rect) for sv in self.views), backdrop)
        fresh = self._cache_tex is None or tuple(self._cache_tex.size[:2]) != size
        if fresh:
            if self._cache_tex is not None:
                self._cache_tex.destroy()
            self._cache_tex = self.device.create_texture(
                size=(size[0], size[1], 1),
                format=self.cache_format,
                usage=wgpu.TextureUsage.RENDER_ATTACHMENT | wgpu.TextureUsage.TEXTURE_BINDING
                | wgpu.TextureUsage.COPY_DST | wgpu.TextureUsage.COPY_SRC,
            )
            self._cache_bind = self.device.create_bind_group(
                layout=self._blit_pipeline.get_bind_group_layout(0),
                entries=[{"binding": 0, "resource": self._cache_tex.create_view()}],
            )
        if fresh or layout_key != self._cache_key:
            # the gaps between views show the background: clear once per layout
            bg = tuple(c / 255 for c in WINDOW_BACKGROUND)
            clear = self.device.create_command_encoder()
            rp = clear.begin_render_pass(color_attachments=[{
                "view": self._cache_tex.create_view(), "clear_value": bg, "load_op": "clear", "store_op": "store",
            }])
            rp.end()
            self.device.queue.submit([clear.finish()])
            self._paint_backdrop(backdrop)
            self._view_tex = {k: (tex, None) for k, (tex, _) in self._view_tex.items()}
            self._cache_key = layout_key
        live = set()
        for sv in self.views:
            live.add(sv.key)
            self._update_view(sv, size)
        for k in [k for k in self._view_tex if k not in live]:
            self._view_tex.pop(k)[0].destroy()
        if self.data.playback.follow:
            # following the newest data, frames newer ones replaced are not shown again
            # unless the user goes back: the next frames are decoded into their memory
            self.renderer.retain([layer for sv in self.views for layer in self.view_layers(sv)])

    def _paint_backdrop(self, rects: tuple) -> None:
        """The fixed panels' background, written into the cache under where imgui draws
        them (they draw none themselves: see panels._no_backdrop)."""
        rgba = self.panels.backdrop_rgba8(WINDOW_BACKGROUND[:3], self.surface_format.endswith("-srgb"))
        px = bytes((rgba[2], rgba[1], rgba[0], rgba[3]) if self.cache_format.startswith("bgra") else rgba)
        for x, y, w, h in rects:
            self.device.queue.write_texture(
                {"texture": self._cache_tex, "origin": (x, y, 0)}, px * (w * h),
                {"bytes_per_row": w * 4, "rows_per_image": h}, (w, h, 1),
            )

    def _update_view(self, sv: SpaceView, size: tuple[int, int]) -> None:
        wgpu = self._wgpu
        r = sv.rect
        x0, y0 = int(r.x), int(r.y)
        w, h = min(int(r.w), size[0] - x0), min(int(r.h), size[1] - y0)
        if w < 1 or h < 1:
            return
        layers = self.view_layers(sv)
        v = sv.view
        key = (
            tuple((l.entity, l.row_id, l.opacity, l.draw_order, l.kind, l.value_range, l.colormap,
                   l.magnification, l.class_colors_key) for l in layers),
            v.scale, v.offset_x, v.offset_y, x0, y0, w, h,
        )
        tex, drawn = self._view_tex.get(sv.key, (None, None))
        if drawn == key:
            return
        if tex is None or tuple(tex.size[:2]) != (w, h):
            if tex is not None:
                tex.destroy()
            tex = self.device.create_texture(
                size=(w, h, 1), format=self.cache_format,
                usage=wgpu.TextureUsage.RENDER_ATTACHMENT | wgpu.TextureUsage.COPY_SRC,
            )
        enc = self.device.create_command_encoder()
        self.renderer.draw(
            layers, tex.create_view(), (w, h), target_format=self.cache_format, background=WINDOW_BACKGROUND,
            scale=v.scale, offset=(v.offset_x - x0, v.offset_y - y0), encoder=enc,
        )
        enc.copy_texture_to_texture({"texture": tex}, {"texture": self._cache_tex, "origin": (x0, y0, 0)}, (w, h, 1))
        self.device.queue.submit([enc.finish()])
        self._view_tex[sv.key] = (tex, key)
        self.scene_draws += 1
        self.view_draws[sv.key] = self.view_draws.get(sv.key, 0) + 1

    def _record_frame(self, encoder, texture) -> None:
        """Cached scene, then the panels, into `texture` (the surface or a copy of it)."""
        from imgui_bundle import imgui  # noqa: PLC0415 - window toolkit, only once a window is open

        w, h = texture.size[0], texture.size[1]
        if self._copies_cache_into(texture):
            # same bytes as the blit (its views share cache_format), without drawing
            encoder.copy_texture_to_texture({"texture": self._cache_tex}, {"texture": texture}, (w, h, 1))
        else:
            rp = encoder.begin_render_pass(
                color_attachments=[{
                    "view": texture.create_view(format=self.cache_format),
                    "clear_value": (0, 0, 0, 1), "load_op": "clear", "store_op": "store",
                }]
            )
            rp.set_pipeline(self._blit_pipeline)
            rp.set_bind_group(0, self._cache_bind)
            rp.draw(3)
            rp.end()
        imgui.set_current_context(self.imgui.imgui_context)
        io = self.imgui.backend.io
        r = self.pixel_ratio()
        io.display_size = (w / r, h / r)
        io.display_framebuffer_scale = (r, r)
        imgui.new_frame()
        try:
            self.panels.draw()
        finally:
            imgui.render()
        rp = encoder.begin_render_pass(
            color_attachments=[{"view": texture.create_view(), "load_op": "load", "store_op": "store"}]
        )
        self.imgui.backend.render(imgui.get_draw_data(), rp)
        rp.end()
        if self.panels.wants_another_frame():
            self.request_draw()

    def _copies_cache_into(self, texture) -> bool:
        """Whether the cache can be copied into `texture` as it is: the copy needs
        COPY_DST, the same size, and a format that differs at most in its sRGB suffix
        (the blit writes the cache's bytes unchanged through a cache_format view)."""
        tex = self._cache_tex
        return (
            self.blit_by_copy and tex is not None
            and bool(texture.usage & self._wgpu.TextureUsage.COPY_DST)
            and tuple(tex.size[:2]) == tuple(texture.size[:2])
            and texture.format.removesuffix("-srgb") == self.cache_format
        )

    def _offscreen_like(self, texture):
        return self.device.create_texture(
            size=texture.size,
            format=texture.format,
            usage=self._wgpu.TextureUsage.RENDER_ATTACHMENT | self._wgpu.TextureUsage.COPY_SRC
            | self._wgpu.TextureUsage.COPY_DST,
            view_formats=[self.cache_format] if self.cache_format != texture.format else [],
        )

    def _record_readback(self, encoder, texture):
        w, h = texture.size[0], texture.size[1]
        bpr = (w * 4 + 255) // 256 * 256  # wgpu needs 256-byte aligned rows
        buf = self.device.create_buffer(size=bpr * h, usage="COPY_DST|MAP_READ")
        encoder.copy_texture_to_buffer(
            {"texture": texture}, {"buffer": buf, "bytes_per_row": bpr, "rows_per_image": h}, (w, h, 1)
        )
        return buf, bpr

    def _record_probe(self, encoder, texture):
        # the window pixel showing image pixel probe_at in every view (first view first)
        if not self._surface_copy:
            return None
        points = []
        for view in [sv.view for sv in self.views] or [self.view]:
            px, py = view.image_to_window(self.probe_at[0] + 0.5, self.probe_at[1] + 0.5)
            x, y = int(px), int(py)
            points.append((x, y) if 0 <= x < texture.size[0] and 0 <= y < texture.size[1] else None)
        if points[0] is None:
            return None
        buf = self.device.create_buffer(size=256 * len(points), usage="COPY_DST|MAP_READ")
        for k, point in enumerate(points):
            if point is not None:
                encoder.copy_texture_to_buffer(
                    {"texture": texture, "origin": (point[0], point[1], 0)},
                    {"buffer": buf, "offset": 256 * k, "bytes_per_row": 256, "rows_per_image": 1},
                    (1, 1, 1),
                )
        return buf, texture.format, [p is not None for p in points]

    def _finish_probe(self, probe) -> None:
        buf, fmt, valid = probe
        buf.map_sync("READ")
        data = bytes(buf.read_mapped())
        buf.unmap()
        buf.destroy()
        pixels = []
        for k, ok in enumerate(valid):
            px = data[256 * k: 256 * k + 4]
            if not ok:
                pixels.append((-1, -1, -1, -1))  # that view's probe point is off screen
            else:
                pixels.append((px[2], px[1], px[0], px[3]) if fmt.startswith("bgra") else tuple(px))
        if self.probe_sink is not None:
            self.probe_sink(time.monotonic(), self.frames, pixels)

    def _finish_readback(self, readback, texture) -> np.ndarray:
        buf, bpr = readback
        w, h = texture.size[0], texture.size[1]
        buf.map_sync("READ")
        try:
            data = np.frombuffer(buf.read_mapped(), dtype=np.uint8).reshape(h, bpr)[:, : w * 4]
            pixels = data.reshape(h, w, 4)
            # one copy out of the mapped buffer, the channel swap done on the way
            rgba = np.empty((h, w, 4), dtype=np.uint8)
            rgba[..., :3] = pixels[..., 2::-1] if texture.format.startswith("bgra") else pixels[..., :3]
        finally:
            buf.unmap()
            buf.destroy()
        rgba[..., 3] = 255  # the surface is presented opaque
        return rgba

    def _save_png(self, path: str, rgba: np.ndarray) -> None:

        area = self.image_area()
        meta = {
            "scale": self.view.scale,
            "offset": [self.view.offset_x, self.view.offset_y],
            "area": [area.x, area.y, area.w, area.h],
            "canvas": list(self._canvas_of(self.views[0])) if self.views else [0, 0],
            # every view: its name, entities, image rectangle (window px) and pan/zoom
            "views": [
                {"key": sv.key, "entities": sv.entities, "rect": [sv.rect.x, sv.rect.y, sv.rect.w, sv.rect.h],
                 "scale": sv.view.scale, "offset": [sv.view.offset_x, sv.view.offset_y],
                 "canvas": list(self._canvas_of(sv))}
                for sv in self.views
            ],
            "recordings": [rec.name for rec in self.recordings.items],
            "active_recording": self.recordings.active,
            "timeline": self.data.playback.timeline,
            "time": self.data.playback.time,
            "generation": self.data.generation,
        }
        info = PngImagePlugin.PngInfo()
        info.add_text(VIEW_METADATA_KEY, json.dumps(meta))
        tmp = f"{path}.tmp-{os.getpid()}"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            Image.fromarray(rgba, "RGBA").save(tmp, format="PNG", pnginfo=info)
            os.replace(tmp, path)  # readers never see a half-written file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.screenshots_saved.append(path)
        print(f"pixelrun viewer: screenshot saved to {path}", flush=True)
