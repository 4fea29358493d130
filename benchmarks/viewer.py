"""Viewer end to end: `log` -> pixels read back from the window, frame rate, frame cost, memory.

Measurements 1-2 are against the physical ceiling measured in the same run, 3 against
the headless render, 4 against a window-sized scene, 5 against the limit itself:

1. Latency. One program logs 1080p NV12 frames (10 per second, each a different
   grey) to a live `pixelrun view`; the viewer reads back, after every frame it draws,
   the window pixel showing the image centre (`--probe`). Latency of frame i = the
   first probe time showing frame i's grey - the time just before its `rr.log` call
   (CLOCK_MONOTONIC is shared by all processes). The first 5 frames warm the stream up
   and are not counted, and the program stays up 1 s after its last frame (so its exit
   is not in that frame's time): the numbers are a running stream's. Ceiling: the same
   bytes through a loopback socket, uploaded to the GPU, plus a 1-pixel readback (no
   decode, no composite, no window), in this process.
2. Throughput. Four programs each log 1080p NV12 at 30 Hz to their own entity; the
   table gives the viewer's frames per second (redraws, each preceded by ingest
   and the scene query), and how many of the top stream's 30 updates per second
   reached the window. Ceiling: four 1080p NV12 uploads plus one readback per frame.
3. Frame cost, in process: a window frame with 4 new 1080p NV12 layers vs the
   headless render of the same layers.
4. Scene size, in process: a frame that composites again (the zoom moves; textures
   are cached) with a window-sized layer alone (the peer), and with a 16384² layer,
   a degenerate 100000x1 + 1x100000 pair, or a decodable 8192² layer added: each
   should cost about what the window-sized frame costs.
5. Memory: `pixelrun view --memory-limit L` fed 1080p NV12 as fast as a program logs
   for S seconds; its RSS empty, at its peak, and the growth against L.
6. Views (issue 15): 1, 4 and 9 programs each log 1080p NV12 at 30 Hz to their own
   subtree (`/camK/image`: one view each, Rerun's layout rule); the viewer's drawn
   frames per second and the first view's updates per second. Floor, in this process
   in the same run: decoding and compositing one new 1080p NV12 frame per view into
   targets of the views' sizes, plus a 1-pixel readback (what a frame with every view
   new must cost at least, with no window, no socket, no ingest). The latency table
   gets the same floor for one view, measured as the latency stream has its frames: one
   every 100 ms, idle in between (the peer: target p99 <= 2x floor; half its samples
   taken just before the stream, half just after); and back to back, shown beside it
   (on a CPU adapter a frame after idle costs ~25 % more).

Runs under Xvfb + lavapipe here (it starts its own Xvfb when DISPLAY is unset), or on
any machine with a display and a GPU. ``--quick`` shortens both runs. ``--offscreen``
runs the viewer as `pixelrun view --offscreen` (the same viewer drawing into an offscreen
frame, read back each frame, instead of a window): for a GPU machine with no display;
the latency, throughput, views and memory parts work that way (frame and scene open a
window in this process).

    python3 benchmarks/viewer.py [--quick] [--offscreen] [--seconds S] [--only scene,memory] [--memory-limit 500MB]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _bench import Timing, bench_args, machine_line, measure, print_table
from _viewer_soak import SAMPLE_S, empty_rss, stop, stream_and_sample

W, H = 1920, 1080

PRODUCER = r"""
import json, sys, time
import numpy as np
import pixelrun as rr

port, entity, n, hz, grey_base = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
W, H = 1920, 1080
N = W * H
buf = np.full(N + 2 * ((W + 1) // 2) * ((H + 1) // 2), 128, np.uint8)
rr.init("pixelrun_bench_viewer", spawn=False)
rr.connect(f"127.0.0.1:{port}")
times = []
t0 = time.monotonic() + 0.5
for i in range(n):
    target = t0 + i / hz
    while True:
        left = target - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(left, 0.005))
    buf[:N] = 16 + (grey_base + i) % 200
    rr.set_time("frame", sequence=i)
    t = time.monotonic()
    rr.log(entity, rr.Image(bytes=buf.tobytes(), width=W, height=H, pixel_format=rr.PixelFormat.NV12))
    times.append(t)
rr.flush()
# stay up a while: this process's exit (interpreter teardown, on the same cores) must
# not land in the last frame's log -> pixel time; a live robot does not exit per frame
time.sleep(float(sys.argv[6]) if len(sys.argv) > 6 else 0.0)
print(json.dumps({"times": times, "grey_base": grey_base}), flush=True)
"""


def grey_of(y: int) -> int:
    """Display value of NV12 luma `y` with neutral chroma, from the reference decoder."""
    from pixelrun.kernels.formats import ImageFormat, PixelFormat
    from pixelrun.kernels.reference.convert import to_display_rgba

    one = ImageFormat(1, 1, pixel_format=PixelFormat.NV12)  # Y, then U V
    return int(to_display_rgba(bytes([y, 128, 128]), one)[0, 0, 0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_display() -> subprocess.Popen | None:
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    if os.environ.get("DISPLAY"):
        return None
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        sys.exit("no DISPLAY and no Xvfb: run `pixelrun setup` or set DISPLAY")
    n = next(n for n in range(150, 400) if not os.path.exists(f"/tmp/.X{n}-lock"))
    proc = subprocess.Popen([xvfb, f":{n}", "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(f"/tmp/.X11-unix/X{n}"):
            break
        time.sleep(0.05)
    os.environ["DISPLAY"] = f":{n}"
    return proc


OFFSCREEN = False  # --offscreen: the viewer draws into an offscreen frame (no display)
TRACE = False  # --trace: the latency run's viewer records stage times (_viewer_trace.py)


class Viewer:
    def __init__(self, tmp: Path, probe_uv=(W // 2, H // 2), trace: bool = False) -> None:
        self.port = free_port()
        self.probe = tmp / f"probe-{self.port}.txt"
        self.trace = tmp / f"trace-{self.port}.txt" if trace else None
        self.log = open(tmp / f"viewer-{self.port}.log", "w")
        main = ([str(Path(__file__).parent / "_viewer_trace.py"), str(self.trace)] if trace
                else ["-m", "pixelrun.engine.cli.main"])
        self.proc = subprocess.Popen(
            [sys.executable, *main, "view", "--port", str(self.port),
             "--window-size", "1280x720", "--probe", str(self.probe), str(probe_uv[0]), str(probe_uv[1])]
            + (["--offscreen"] if OFFSCREEN else []),
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(2.0)  # let the window open (the listener starts first)

    def probes(self) -> np.ndarray:
        """(t, frame, r, g, b, a, [r, g, b, a of each further view]) rows; NaN where a
        frame had fewer views than the widest row."""
        rows = [l.split() for l in self.probe.read_text().splitlines() if l.strip()]
        cols = max((len(r) for r in rows), default=6)
        out = np.full((len(rows), cols), np.nan)
        for i, r in enumerate(rows):
            out[i, : len(r)] = np.array(r, dtype=np.float64)
        return out

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


def run_producers(port: int, specs: list[tuple[str, int, float, int]], linger: float = 0.0) -> list[dict]:
    procs = [
        subprocess.Popen([sys.executable, "-c", PRODUCER, str(port), ent, str(n), str(hz), str(base), str(linger)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for ent, n, hz, base in specs
    ]
    out = []
    for p in procs:
        so, se = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"producer failed: {se[-2000:]}")
        out.append(json.loads(so.strip().splitlines()[-1]))
    return out


LATENCY_HZ = 10.0  # the latency stream's rate: one frame per 100 ms
WARMUP_FRAMES = 5  # logged first, not counted: the stream's first frames create its textures and pipelines


def latency_run(tmp: Path, frames: int) -> tuple[list[float], dict | None]:
    """log -> pixel seconds of every counted frame seen (`frames` after WARMUP_FRAMES
    warm-up frames); with TRACE also where they went."""
    v = Viewer(tmp, trace=TRACE)
    try:
        (res,) = run_producers(v.port, [("cam", WARMUP_FRAMES + frames, LATENCY_HZ, 0)], linger=1.0)
        pr = v.probes()
    finally:
        v.stop()
    lat, hits = [], []
    for i, t_log in enumerate(res["times"]):
        g = grey_of(16 + i % 200)
        hit = pr[(pr[:, 0] >= t_log) & (pr[:, 2] == g)]
        hits.append(float(hit[0, 0]) if len(hit) else float("nan"))
        if len(hit) and i >= WARMUP_FRAMES:
            lat.append(float(hit[0, 0] - t_log))
    stages = None
    if TRACE:
        from _viewer_trace import breakdown

        stages = breakdown(v.trace, res["times"][WARMUP_FRAMES:], hits[WARMUP_FRAMES:])
        for prof in sorted(tmp.glob(f"{v.trace.name}.*.prof.txt")):  # PIXELRUN_TRACE_PROFILE=1
            print(f"#### {prof.name}\n```\n{prof.read_text()}\n```")
    return lat, stages


def print_stage_table(stages: dict, adapter: str) -> None:
    from _viewer_trace import STAGES

    print(f"### Where log -> pixel time goes ({adapter}; --trace, same run)")
    print()
    print("| stage | p50 ms | p90 ms | p99 ms | what |")
    print("|---|---:|---:|---:|---|")
    for name, what in STAGES:
        x = np.array(stages[name], dtype=np.float64) * 1e3
        x = x[np.isfinite(x)]
        if len(x):
            q = np.percentile(x, [50, 90, 99])
            print(f"| {name} | {q[0]:.2f} | {q[1]:.2f} | {q[2]:.2f} | {what} |")
    print()


def throughput_run(tmp: Path, seconds: float, streams: int = 4, views: bool = False) -> dict:
    """`streams` programs at 30 Hz: stacked in one view (entities /camK, same size and
    subtree), or with `views` one view each (/camK/image). The probed stream is the one
    drawn on top of the probed (first) view."""
    v = Viewer(tmp)
    n = int(seconds * 30)
    entity = "cam{k}/image" if views else "cam{k}"
    try:
        t_start = time.monotonic()
        res = run_producers(v.port, [(entity.format(k=k), n, 30.0, 50 * (k % 4)) for k in range(streams)])
        time.sleep(0.5)
        pr = v.probes()
    finally:
        v.stop()
    # steady window: from the first to the last log of the probed stream (with one view:
    # the last entity, drawn on top; with a view each: cam0, the first view)
    top = res[0 if views else streams - 1]["times"]
    lo, hi = top[0] + 0.5, top[-1]
    win = pr[(pr[:, 0] >= lo) & (pr[:, 0] <= hi)]
    intervals = np.diff(win[:, 0]) if len(win) > 1 else np.array([float("nan")])
    greys = win[:, 2]
    updates = int(np.count_nonzero(np.diff(greys) != 0)) if len(greys) > 1 else 0
    per_view = []  # with a view each: updates shown per second in every view (R of its probe point)
    if views:
        for k in range(streams):
            col = 2 + 4 * k
            g = win[:, col] if col < win.shape[1] else np.array([])
            g = g[np.isfinite(g) & (g >= 0)]
            n_up = int(np.count_nonzero(np.diff(g) != 0)) if len(g) > 1 else 0
            per_view.append(n_up / (hi - lo) if hi > lo else 0.0)
    logged = [len(r["times"]) / (r["times"][-1] - r["times"][0]) for r in res]
    return {
        "intervals": intervals.tolist(),
        "fps": (len(win) - 1) / (win[-1, 0] - win[0, 0]) if len(win) > 1 else 0.0,
        "updates_per_s": updates / (hi - lo) if hi > lo else 0.0,
        "updates_per_view": per_view,
        "logged_hz": logged,
        "wall": time.monotonic() - t_start,
    }


def ceiling(repeat: int, uploads: int) -> Timing:
    """Loopback socket + GPU upload of `uploads` NV12 frames + a 1-pixel readback."""
    from pixelrun.kernels.wgpu import device as gpu

    device = gpu.get_device()
    size = W * H + 2 * (W // 2) * (H // 2)
    frame = np.full(size, 128, np.uint8).tobytes()
    gpu_buf = device.create_buffer(size=size, usage="STORAGE|COPY_DST|COPY_SRC")
    read = device.create_buffer(size=256, usage="COPY_DST|MAP_READ")
    a, b = socket.socketpair()
    got = bytearray(size)

    def once():
        for _ in range(uploads):
            t = threading.Thread(target=a.sendall, args=(frame,))
            t.start()
            view = memoryview(got)
            n = 0
            while n < size:
                n += b.recv_into(view[n:], size - n)
            t.join()
            device.queue.write_buffer(gpu_buf, 0, got)
        enc = device.create_command_encoder()
        enc.copy_buffer_to_buffer(gpu_buf, 0, read, 0, 256)
        device.queue.submit([enc.finish()])
        read.map_sync("READ")
        read.unmap()

    try:
        return measure("ceiling: loopback TCP + GPU upload + 1-px readback", once, repeat=repeat, peer=True)
    finally:
        a.close()
        b.close()


def view_targets(n: int, size=(1280, 720)):
    """The image rectangles and pan/zoom (fit) the window gives n 1080p views."""
    from pixelrun.engine.viewer.view import BOTTOM_PANEL_H, LEFT_PANEL_W, Layout, Rect
    from pixelrun.kernels.formats import ImageFormat, PixelFormat
    from pixelrun.kernels.layers import Layer

    fmt = ImageFormat(W, H, pixel_format=PixelFormat.NV12)
    probe = [Layer(f"/cam{k}/image", k, np.zeros(fmt.byte_count(), np.uint8), fmt) for k in range(n)]
    area = Rect(LEFT_PANEL_W, 0, size[0] - LEFT_PANEL_W, size[1] - BOTTOM_PANEL_H)
    return [(sv.rect, sv.view.scale, sv.view.offset_x, sv.view.offset_y) for sv in Layout().arrange(probe, area)]


def floor_cost(n: int, repeat: int, group: str, period: float | None = None, peer: bool = True) -> Timing:
    """Decode + composite of n new 1080p NV12 frames, one per view, into targets of the
    views' sizes, + a 1-pixel readback: a frame's GPU floor, no window/socket/ingest.

    Back to back by default (a stream that keeps the viewer busy); with `period`, one
    frame starts every `period` seconds, idle in between, as a stream at that rate has
    them (on a CPU adapter a frame after 20 ms or more of idle costs more: cores, caches
    and the adapter's worker threads have gone cold)."""
    import wgpu

    from pixelrun.kernels.formats import ImageFormat, PixelFormat
    from pixelrun.kernels.layers import Layer
    from pixelrun.kernels.wgpu import device as gpu
    from pixelrun.kernels.wgpu.composite import Renderer

    device = gpu.get_device()
    renderer = Renderer(device)
    fmt = ImageFormat(W, H, pixel_format=PixelFormat.NV12)
    buf = np.random.default_rng(1).integers(0, 256, fmt.byte_count(), dtype=np.uint8)
    targets = []
    for rect, scale, ox, oy in view_targets(n):
        w, h = int(rect.w), int(rect.h)
        tex = device.create_texture(size=(w, h, 1), format="rgba8unorm",
                                    usage=wgpu.TextureUsage.RENDER_ATTACHMENT | wgpu.TextureUsage.COPY_SRC)
        targets.append((tex, (w, h), scale, (ox - int(rect.x), oy - int(rect.y))))
    read = device.create_buffer(size=256, usage="COPY_DST|MAP_READ")
    row = [10**12]
    last_start = [0.0]

    def wait_for_slot():  # untimed: the idle between two frames of a `period` stream
        if period is not None:
            left = last_start[0] + period - time.perf_counter()
            if left > 0:
                time.sleep(left)
            last_start[0] = time.perf_counter()

    def frame():
        # one submission per view, as the window does (the renderer's buffers are reused
        # between draws, never inside one command buffer)
        shown = []
        for k, (tex, size, scale, offset) in enumerate(targets):
            row[0] += 1  # a new row: decoded again, as a new frame is
            shown.append(Layer(f"/cam{k}/image", row[0], buf, fmt))
            enc = device.create_command_encoder()
            renderer.draw(shown[-1:], tex.create_view(), size,
                          target_format="rgba8unorm", background=(13, 13, 13, 255), scale=scale, offset=offset,
                          encoder=enc)
            device.queue.submit([enc.finish()])
        renderer.retain(shown)  # as the window does following live data: the next frame reuses this one's memory
        enc = device.create_command_encoder()
        enc.copy_texture_to_buffer({"texture": targets[-1][0]}, {"buffer": read, "bytes_per_row": 256,
                                                                   "rows_per_image": 1}, (1, 1, 1))
        device.queue.submit([enc.finish()])
        read.map_sync("READ")
        read.unmap()

    what = f"one every {period * 1e3:.0f} ms" if period is not None else "back to back"
    t = measure(f"floor: decode + composite {n} new frame(s) at view size + 1-px readback, {what}", frame,
                group=group, peer=peer, repeat=repeat, setup=wait_for_slot)
    t.extra = {"fps": f"{1 / t.median:.1f}"}
    for tex, *_ in targets:
        tex.destroy()
    renderer.clear_cache()
    return t


def views_rows(tmp: Path, seconds: float, repeat: int, counts=(1, 4, 9)) -> list[Timing]:
    """Issue 15's view-count dimension: n programs, n views, against the floor."""
    rows = []
    for n in counts:
        group = f"{n} view{'s' if n > 1 else ''}, {n} x 1080p NV12 @ 30 Hz"
        floor = floor_cost(n, repeat, group)
        tp = throughput_run(tmp, seconds, streams=n, views=True)
        rows += [floor, Timing(
            "pixelrun viewer: time per drawn frame", [x for x in tp["intervals"] if x == x] or [float("nan")],
            group=group,
            extra={"fps": f"{tp['fps']:.1f}",
                   "first view updates shown/s": f"{tp['updates_per_s']:.1f} of 30",
                   "updates shown/s per view": "/".join(f"{u:.0f}" for u in tp["updates_per_view"]),
                   "logged Hz per stream": "/".join(f"{h:.0f}" for h in tp["logged_hz"])},
        )]
    return rows


def frame_cost(repeat: int) -> list[Timing]:
    """In-process: one window frame with 4 new 1080p NV12 layers vs the headless render.

    Separates the GPU cost of a frame (lavapipe here) from the CPU contention of the
    live runs. Each timed call ingests 4 new rows (new row ids: the decode cache is
    cold) and draws; the window frame includes imgui and a 1-pixel readback (so the
    GPU work is finished when the timer stops), the headless render a full readback.
    """
    import glfw

    from pixelrun.engine.chunk import IMAGE_BUFFER, IMAGE_FORMAT, Chunk, TimeColumn, buffer_column, format_column
    from pixelrun.engine.scene import Layer
    from pixelrun.engine.store.store import ChunkStore
    from pixelrun.engine.viewer.data import ViewerData
    from pixelrun.engine.viewer.window import Viewer as Window
    from pixelrun.kernels.formats import ImageFormat, PixelFormat

    fmt = ImageFormat(W, H, pixel_format=PixelFormat.NV12)
    buf = np.random.default_rng(0).integers(0, 256, fmt.byte_count(), dtype=np.uint8)
    data = ViewerData(ChunkStore(memory_limit="2GB"))
    win = Window(data, size=(1280, 720))
    for _ in range(20):  # let the window reach its size before timing
        glfw.poll_events()
        win.canvas.force_draw()
    win.probe_at = (W // 2, H // 2)
    win.probe_sink = lambda *a: None
    step = [0]

    def ingest():
        step[0] += 1
        t = step[0]
        data.ingest([
            Chunk(f"/cam{k}", np.array([[t, k]], np.uint64),
                  {"frame": TimeColumn("sequence", np.array([t], np.int64))},
                  {IMAGE_BUFFER: buffer_column([buf]), IMAGE_FORMAT: format_column([fmt])},
                  chunk_id=(t * 8 + k).to_bytes(16, "big"))
            for k in range(4)
        ])

    def window_frame():
        ingest()
        win.canvas.force_draw()

    def idle_frame():
        win.request_draw()
        win.canvas.force_draw()

    layer_id = [10**9]

    def headless():
        layer_id[0] += 4
        layers = [Layer(f"/cam{k}", layer_id[0] + k, buf, fmt) for k in range(4)]
        win.renderer.render_offscreen(layers)

    size = "x".join(map(str, win.physical_size()))
    group = "frame cost, 4 new 1080p NV12 layers"
    rows = [
        measure("headless render_offscreen (1920x1080 readback)", headless, group=group, peer=True, repeat=repeat),
        measure(f"window frame ({size}, imgui, 1-px readback)", window_frame, group=group, repeat=repeat),
        measure("window frame, panels only (hover; scene cached)", idle_frame, group=group, repeat=repeat),
    ]
    win.close()
    glfw.terminate()  # drop the X connection before main() stops Xvfb (else Xlib aborts)
    return rows


def _window(data, size=(1280, 720)):
    """An in-process viewer window, drawn until it has its size."""
    import glfw

    from pixelrun.engine.viewer.window import Viewer as Window

    win = Window(data, size=size)
    for _ in range(20):
        glfw.poll_events()
        win.canvas.force_draw()
    return win


def scene_size_cost(repeat: int) -> list[Timing]:
    """Redraw cost (zoom moves, textures cached) with a huge or degenerate scene vs a
    window-sized one. Each timed frame composites again and reads one pixel back, so
    the GPU work is finished when the timer stops."""
    import glfw

    from pixelrun.engine.chunk import IMAGE_BUFFER, IMAGE_FORMAT, Chunk, TimeColumn, buffer_column, format_column
    from pixelrun.engine.store.store import ChunkStore
    from pixelrun.engine.viewer.data import ViewerData
    from pixelrun.kernels.formats import ImageFormat

    counter = [0]

    def chunk(entity, pixels, fmt):
        counter[0] += 1
        return Chunk(entity, np.array([[counter[0], 0]], np.uint64),
                     {"frame": TimeColumn("sequence", np.array([0], np.int64))},
                     {IMAGE_BUFFER: buffer_column([pixels.reshape(-1)]), IMAGE_FORMAT: format_column([fmt])},
                     chunk_id=counter[0].to_bytes(16, "big"))

    rng = np.random.default_rng(0)
    base = ("cam", rng.integers(0, 256, (720, 1280, 3), np.uint8),
            ImageFormat(1280, 720, color_model="RGB", channel_datatype="U8"))
    extras = {
        "+ 16384² L8 layer (256 MiB: more than lavapipe binds, left out)":
            [("huge", np.full((16384, 16384), 90, np.uint8),
              ImageFormat(16384, 16384, color_model="L", channel_datatype="U8"))],
        "+ 100000x1 and 1x100000 layers (10^10-texel canvas)":
            [("wide", np.full((1, 100000, 3), 200, np.uint8),
              ImageFormat(100000, 1, color_model="RGB", channel_datatype="U8")),
             ("tall", np.full((100000, 1, 3), 60, np.uint8),
              ImageFormat(1, 100000, color_model="RGB", channel_datatype="U8"))],
        "+ 8192² L8 layer (decoded; a reduced level when zoomed out)":
            [("big", rng.integers(0, 256, (8192, 8192), np.uint8),
              ImageFormat(8192, 8192, color_model="L", channel_datatype="U8"))],
    }
    def one(name, layers, view, group, peer):
        data = ViewerData(ChunkStore(memory_limit=None))
        data.ingest([chunk(e, px, f) for e, px, f in [base, *layers]])
        for e, _, _ in [base, *layers]:
            data.layout.move(f"/{e}", "scene")  # one view holding them all (by default: a view per size)
        win = _window(data)
        win.fit() if view == "fit" else win.one_to_one()
        win.probe_at = (5, 5)
        win.probe_sink = lambda *a: None
        flip = [0]

        def frame():
            flip[0] ^= 1
            win.view.pan(1.0 if flip[0] else -1.0, 0.0)  # a new view: composited again
            win.canvas.force_draw()

        frame()  # decode once (cold), outside the timing
        st = win.renderer.last_draw
        t = measure(name, frame, group=group, peer=peer, repeat=repeat)
        w, h = win.physical_size()
        t.extra = {"canvas": "x".join(map(str, win._canvas_wh)),
                   "acc MB": f"{st.acc_bytes / 1e6:.1f}",
                   "blended px / window px": f"{st.blended_pixels / (w * h):.2f}",
                   "levels": ", ".join(f"{e} 1/{k}" for e, k in sorted(st.levels.items())) or "full"}
        win.close()
        return t

    rows = []
    for view in ("fit", "1:1"):
        group = f"redraw, view {view}"
        rows.append(one("window-sized layer only (1280x720 RGB)", [], view, group, True))
        rows += [one(name, layers, view, group, False) for name, layers in extras.items()]
    glfw.terminate()
    return rows


def memory_soak(tmp: Path, limit: str, seconds: float) -> dict:
    """RSS of `pixelrun view --memory-limit` empty, then fed 1080p NV12 at full speed."""
    import psutil

    from pixelrun.engine.store.memory import parse_memory_limit

    port = free_port()
    log = open(tmp / f"soak-{port}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pixelrun.engine.cli.main", "view", "--port", str(port), "--memory-limit", limit,
         "--window-size", "1280x720"] + (["--offscreen"] if OFFSCREEN else []),
        stdout=log, stderr=subprocess.STDOUT)
    ps = psutil.Process(proc.pid)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(3.0)
        empty = empty_rss(ps)
        samples, sent = stream_and_sample(ps, port, seconds, "pixelrun_bench_memory")
        last = samples[-len(samples) // 4:]
    finally:
        stop(proc)
        log.close()
    return {"limit": parse_memory_limit(limit), "empty": empty, "peak": max(samples), "frames": sent,
            "last_quarter_slope": (last[-1] - last[0]) / (len(last) * SAMPLE_S) if len(last) > 1 else 0.0,
            "seconds": seconds}


def print_memory_table(res: dict, adapter: str) -> None:
    def mb(n):
        return f"{n / 1e6:.0f}"

    grown = res["peak"] - res["empty"]
    print(f"### Viewer memory under --memory-limit ({adapter}; 1080p NV12 at full speed)")
    print()
    print("| limit MB | empty viewer RSS MB | peak RSS MB | peak - empty MB | (peak - empty) / limit "
          "| RSS slope, last quarter MB/s | frames logged |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {mb(res['limit'])} | {mb(res['empty'])} | {mb(res['peak'])} | {mb(grown)} | "
          f"{grown / res['limit']:.2f} | {res['last_quarter_slope'] / 1e6:.2f} | {res['frames']} |")
    print()
    print(f"_{machine_line()}; {res['seconds']:.0f} s of streaming; the limit covers the store, decoded textures "
          "and messages in flight; what is left above it is one frame's way through the pipeline._")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=None, help="length of the 4-stream run (default 12, --quick 4)")
    p.add_argument("--frames", type=int, default=None, help="frames in the latency run (default 60, --quick 20)")
    p.add_argument("--only", default="latency,throughput,views,frame,scene,memory",
                   help="comma-separated parts to run: latency, throughput, views, frame, scene, memory "
                        "(default: all)")
    p.add_argument("--memory-limit", default="500MB", help="--memory-limit of the memory soak (default 500MB)")
    p.add_argument("--soak-seconds", type=float, default=None,
                   help="length of the memory soak (default 60, --quick 20)")
    p.add_argument("--trace", action="store_true",
                   help="latency: also print where each frame's log -> pixel time went (stage table)")
    p.add_argument("--offscreen", action="store_true",
                   help="run the viewer with --offscreen (no display needed): latency, throughput, views, memory")
    args = bench_args(__doc__, parser=p, repeat=15, quick_repeat=5)
    global OFFSCREEN, TRACE
    OFFSCREEN, TRACE = args.offscreen, args.trace
    parts = {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = parts - {"latency", "throughput", "views", "frame", "scene", "memory"}
    if unknown:
        p.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
    soak_s = args.soak_seconds or (20.0 if args.quick else 60.0)
    seconds = args.seconds or (4.0 if args.quick else 12.0)
    frames = args.frames or (20 if args.quick else 60)
    if args.offscreen and parts & {"frame", "scene"}:
        p.error("--offscreen: the frame and scene parts open a window in this process; leave them out of --only")
    xvfb = None if args.offscreen else ensure_display()
    from pixelrun.kernels.wgpu import device as gpu

    adapter = gpu.adapter_summary() if hasattr(gpu, "adapter_summary") else "?"
    try:
        with tempfile.TemporaryDirectory() as td:
            tmp = Path(td)
            rows = []
            footer = []
            stages = None
            if "latency" in parts:
                group = "latency, 1 x 1080p NV12"
                # the peer (issue 15's target is p99 <= 2x floor): the same frame's decode +
                # composite at the stream's rate, idle in between as the viewer is; half of
                # its samples just before the stream, half just after, so a machine whose
                # speed drifts during the run (this VM's does by 20-30 %) drifts in both
                before = floor_cost(1, args.repeat, group, period=1 / LATENCY_HZ)
                lat, stages = latency_run(tmp, frames)
                after = floor_cost(1, args.repeat, group, period=1 / LATENCY_HZ)
                both = before.samples + after.samples
                floor1 = Timing(after.name, both, group, peer=True, extra={
                    "fps": f"{1 / statistics.median(both):.1f}",
                    "floor before / after stream": f"{before.median * 1e3:.1f} / {after.median * 1e3:.1f}"})
                ceil1 = ceiling(args.repeat, 1)
                ceil1.group = group
                ceil1.peer = False
                busy1 = floor_cost(1, args.repeat, group, peer=False)  # shown as well: the busy-GPU cost
                rows += [floor1, busy1, ceil1]
                if lat:
                    p99 = np.percentile(lat, 99)
                    rows.append(Timing("pixelrun: rr.log -> window pixel (p50; p99 in column)", lat,
                                       group=ceil1.group,
                                       extra={"p99 ms": f"{p99 * 1e3:.1f}",
                                              "p99 / floor": f"{p99 / floor1.median:.2f}",
                                              "p99 / back-to-back floor": f"{p99 / busy1.median:.2f}",
                                              "frames seen": f"{len(lat)}/{frames}"}))
                footer.append(f"latency: {len(lat)} frames logged 100 ms apart after {WARMUP_FRAMES} warm-up frames")
            if "throughput" in parts:
                ceil4 = ceiling(args.repeat, 4)
                ceil4.group = "4 x 1080p NV12 @ 30 Hz"
                ceil4.extra = {"fps": f"{1 / ceil4.median:.1f}"}
                tp = throughput_run(tmp, seconds)
                frame_row = Timing(
                    "pixelrun viewer: time per drawn frame", [x for x in tp["intervals"] if x == x],
                    group=ceil4.group,
                    extra={
                        "fps": f"{tp['fps']:.1f}",
                        "top stream updates shown/s": f"{tp['updates_per_s']:.1f} of 30",
                        "logged Hz per stream": "/".join(f"{h:.0f}" for h in tp["logged_hz"]),
                    },
                )
                rows += [ceil4, frame_row]
                footer.append(f"throughput: {seconds:.0f} s of 4 streams")
            if "views" in parts:
                rows += views_rows(tmp, seconds, args.repeat)
                footer.append(f"views: {seconds:.0f} s per view count; floor rows are the peers")
            if "frame" in parts:
                rows += frame_cost(args.repeat)
            if rows:
                where = "offscreen frame 1280x720, read back each frame" if args.offscreen else "window 1280x720"
                print_table(rows, title=f"Viewer end to end ({adapter}; {where})",
                            footer="_" + "; ".join(
                                footer + ["ceiling rows: same bytes, no decode, no composite, no window._"]))
                print()
            if "latency" in parts and stages is not None:
                print_stage_table(stages, adapter)
            if "scene" in parts:
                print_table(scene_size_cost(args.repeat),
                            title=f"Frame cost against the scene's size ({adapter}; window 1280x720)",
                            footer="_each frame: the view pans by one pixel (the scene is composited again, "
                                   "textures cached) + a 1-pixel readback; peer: the window-sized layer alone; "
                                   "blended px: target pixels visited by blend passes, all layers._")
                print()
            if "memory" in parts:
                print_memory_table(memory_soak(tmp, args.memory_limit, soak_s), adapter)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait()


if __name__ == "__main__":
    main()
