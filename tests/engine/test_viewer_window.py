"""The viewer window under Xvfb + lavapipe: frames, screenshots, hover, live data, failures.

Every test here opens real windows on a virtual X server started by the
`xvfb_display` fixture (tests/conftest.py). Pixels are checked in screenshots of the
window's own surface texture; the PNG carries the view transform, so an image pixel
(u, v) is found at window pixel ``floor((u + 0.5) * scale + offset)``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from viewer_helpers import LiveViewer, image_chunk, rrd_stream, viewer_cmd, wait_until

from pixelrun.engine.viewer.view import default_view_key
from pixelrun.engine.viewer.window import read_view_metadata
from pixelrun.kernels.formats import ImageFormat
from tests.net_helpers import H2Conn, free_port, grpc_send, rrd_messages

RED, GREEN = (255, 0, 0, 255), (0, 255, 0, 255)


def seed1_pixels() -> np.ndarray:
    """Seed example 1's image, written here from the seed text."""
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    image[:, :, 0] = 255
    image[50:150, 50:150] = (0, 255, 0)
    return image


SEED1_FMT = ImageFormat(300, 200, color_model="RGB", channel_datatype="U8")


def window_pixel(png: Path, u: int, v: int) -> tuple[int, ...]:
    meta = read_view_metadata(png)
    s = meta["scale"]
    ox, oy = meta["offset"]
    x, y = int((u + 0.5) * s + ox), int((v + 0.5) * s + oy)
    with Image.open(png) as im:
        return tuple(im.convert("RGBA").getpixel((x, y)))


def view_pixel(png: Path, entity: str, u: int, v: int) -> tuple[int, ...] | None:
    """Pixel (u, v) of the view showing `entity` (None while no view shows it)."""
    for view in read_view_metadata(png)["views"]:
        if entity in view["entities"]:
            s = view["scale"]
            ox, oy = view["offset"]
            with Image.open(png) as im:
                return tuple(im.convert("RGBA").getpixel((int((u + 0.5) * s + ox), int((v + 0.5) * s + oy))))
    return None



@pytest.fixture
def live_viewer(xvfb_display, tmp_path):
    v = LiveViewer(tmp_path)
    yield v
    v.stop()


def seed1_ok(png: Path) -> bool:
    return window_pixel(png, 10, 10) == RED and window_pixel(png, 100, 100) == GREEN


# ----------------------------------------------------------------------- one-shot


def test_screenshot_to_draws_one_frame_of_a_recording(xvfb_display, tmp_path):
    rec = tmp_path / "seed1.rrd"
    rec.write_bytes(rrd_stream([image_chunk("image", seed1_pixels(), SEED1_FMT)]))
    out = tmp_path / "out.png"
    r = subprocess.run(
        viewer_cmd(str(rec), "--screenshot-to", str(out), "--window-size", "900x600"),
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    with Image.open(out) as im:
        assert im.size == (900, 600)
    assert window_pixel(out, 10, 10) == RED
    assert window_pixel(out, 100, 100) == GREEN
    assert window_pixel(out, 299, 199) == RED  # the last pixel is inside the image too
    meta = read_view_metadata(out)
    assert meta["canvas"] == [300, 200]


def test_no_display_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run(viewer_cmd("--port", str(free_port())), capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert "no display" in r.stderr
    assert "pixelrun view --offscreen" in r.stderr  # what to run instead


def test_bad_window_size_is_rejected():
    r = subprocess.run(viewer_cmd("--window-size", "big"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "WIDTHxHEIGHT" in r.stderr


# ----------------------------------------------------------------------- live data


def test_live_stream_then_hostile_bytes_then_a_good_client(live_viewer):
    # random bytes (not gRPC: a 400), a call cut short and an absurd length: each ends
    # its connection or call only
    with socket.create_connection(("127.0.0.1", live_viewer.port), timeout=10) as s:
        s.sendall(np.random.default_rng(0).integers(0, 256, 10000, dtype=np.uint8).tobytes())
        assert s.recv(64).startswith(b"HTTP/1.1 400 ")
    good = rrd_messages(rrd_stream([image_chunk("image", seed1_pixels(), SEED1_FMT, step=0)], end=False))
    cut = H2Conn(live_viewer.port)
    cut.open_call(1)
    cut.send_message(1, good[0])
    cut.send_message(1, good[1], cut=len(good[1]) // 2)
    cut.close()
    huge = H2Conn(live_viewer.port)
    huge.open_call(1)
    huge.send_message(1, good[1], declared=(1 << 32) - 1, cut=100)
    assert huge.wait_call_end(1) is not None
    huge.close()
    assert live_viewer.proc.poll() is None
    grpc_send(live_viewer.port, good)
    png = live_viewer.screenshot_until(seed1_ok)
    assert window_pixel(png, 10, 10) == RED
    assert window_pixel(png, 100, 100) == GREEN
    assert live_viewer.proc.poll() is None


def test_several_programs_stream_into_one_viewer(live_viewer):
    fmt = ImageFormat(64, 32, color_model="RGB", channel_datatype="U8")
    left = np.zeros((32, 64, 3), np.uint8)
    left[..., 2] = 255  # blue, drawn below
    right = np.zeros((16, 16, 3), np.uint8)
    right[..., 1] = 255  # green 16x16, on top (later entity path at equal draw order)
    right_fmt = ImageFormat(16, 16, color_model="RGB", channel_datatype="U8")
    conns = []  # two programs, each with its call still open
    for entity, px, f, rec in (("a", left, fmt, "r1"), ("b", right, right_fmt, "r2")):
        c = H2Conn(live_viewer.port)
        c.open_call(1)
        for m in rrd_messages(rrd_stream([image_chunk(entity, px, f, step=0)], rec=rec, end=False)):
            c.send_message(1, m)
        conns.append(c)

    def ok(png):
        return view_pixel(png, "/a", 40, 20) == (0, 0, 255, 255) and view_pixel(png, "/b", 5, 5) == GREEN

    png = live_viewer.screenshot_until(ok)
    # different sizes: a view each (Rerun's rule), both shown
    assert [v["entities"] for v in read_view_metadata(png)["views"]] == [["/a"], ["/b"]]
    assert view_pixel(png, "/a", 40, 20) == (0, 0, 255, 255)
    assert view_pixel(png, "/a", 5, 5) == (0, 0, 255, 255)  # not covered by /b any more
    assert view_pixel(png, "/b", 5, 5) == GREEN
    for c in conns:
        c.close()


# ----------------------------------------------------------------------- in-process


@pytest.fixture
def nv12_viewer(xvfb_display):
    from pixelrun.engine.store.store import ChunkStore
    from pixelrun.engine.viewer.data import ViewerData
    from pixelrun.engine.viewer.window import Viewer
    from pixelrun.kernels.formats import PixelFormat

    fmt = ImageFormat(64, 48, pixel_format=PixelFormat.NV12)
    buf = np.random.default_rng(0).integers(0, 256, fmt.byte_count(), dtype=np.uint8)
    data = ViewerData(ChunkStore(memory_limit=None))
    data.ingest([image_chunk("cam", buf, fmt, step=0)])
    v = Viewer(data, size=(800, 600))
    v.canvas.force_draw()
    v.nv12 = (buf, fmt)
    yield v
    v.close()


def _move(v, px, py, buttons=()):
    v._on_pointer({"event_type": "pointer_move", "x": px, "y": py, "buttons": buttons, "button": 0})


def test_hover_reads_the_raw_nv12_samples_under_the_cursor(nv12_viewer):
    v = nv12_viewer
    buf, fmt = v.nv12
    u, w = 11, 21
    px, py = v.view.image_to_window(u + 0.5, w + 0.5)
    _move(v, px, py)
    v.canvas.force_draw()
    ro = v.readout
    assert (ro.x, ro.y) == (u, w)
    n, cw = 64 * 48, 32
    expected = (
        ("Y", int(buf[w * 64 + u])),
        ("U", int(buf[n + (w // 2) * 2 * cw + (u // 2) * 2])),
        ("V", int(buf[n + (w // 2) * 2 * cw + (u // 2) * 2 + 1])),
    )
    assert ro.raw == expected
    # off the image: no readout
    _move(v, 5, 5)  # over the entity panel
    v.canvas.force_draw()
    assert v.readout is None


def test_wheel_zooms_about_the_cursor_drag_pans_and_f_fits(nv12_viewer):
    v = nv12_viewer
    fit_scale = v.view.scale
    area = v.views[0].rect  # the image part of the only view
    cx, cy = area.x + area.w / 2, area.y + area.h / 2
    under = v.view.window_to_image(cx, cy)
    v._on_wheel({"event_type": "wheel", "x": cx, "y": cy, "dx": 0, "dy": -200})
    assert v.view.scale > fit_scale
    assert v.view.window_to_image(cx, cy) == under
    before = (v.view.offset_x, v.view.offset_y)
    v._on_pointer({"event_type": "pointer_down", "x": cx, "y": cy, "button": 1, "buttons": (1,)})
    _move(v, cx + 30, cy - 10, buttons=(1,))
    v._on_pointer({"event_type": "pointer_up", "x": cx + 30, "y": cy - 10, "button": 1, "buttons": ()})
    assert (v.view.offset_x, v.view.offset_y) == (before[0] + 30, before[1] - 10)
    v._on_key({"event_type": "key_down", "key": "f"})
    assert v.view.mode == "fit" and v.view.scale == fit_scale
    v._on_key({"event_type": "key_down", "key": "1"})
    assert v.view.scale == 1.0


def test_key_s_saves_a_screenshot_of_the_window(nv12_viewer, tmp_path):
    v = nv12_viewer
    v._screenshot_dir = tmp_path
    v._on_key({"event_type": "key_down", "key": "s"})
    v.canvas.force_draw()
    (png,) = list(tmp_path.glob("*.png"))
    w, h = v.physical_size()
    with Image.open(png) as im:
        assert im.size == (w, h)
        # above the fitted image (aspect 4:3 in a taller area): the window background
        top = int(v.views[0].rect.y)  # below the view's title strip
        assert v.view.offset_y > top + 2
        assert im.convert("RGBA").getpixel((w - 2, top + 2)) == (13, 13, 13, 255)
    assert read_view_metadata(png)["canvas"] == [64, 48]


# ----------------------------------------------------------------------- with the SDK

# Seed example 1, unchanged but for the import line (the SDK's copy of the seed).
SEED1_SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "seed_image_simple.py"

@pytest.fixture
def spawn_port(monkeypatch):
    """A free port for spawn=True, given to the child scripts through PIXELRUN_PORT."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("PIXELRUN_PORT", str(port))
    return port


def _port_busy(port: int, wait: float = 0.0) -> bool:
    """True when something listens on `port` (after waiting up to `wait` s for it to go)."""

    def busy() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    return not wait_until(lambda: not busy(), timeout=wait, interval=0.5) if wait else busy()


def test_seed_example_1_with_spawn_shows_its_pixels(xvfb_display, tmp_path, spawn_port):
    viewer = LiveViewer(tmp_path, port=spawn_port)
    try:
        r = subprocess.run([sys.executable, str(SEED1_SCRIPT)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        png = viewer.screenshot_until(seed1_ok)
        assert window_pixel(png, 10, 10) == RED
        assert window_pixel(png, 100, 100) == GREEN
        # spawn found the running viewer: no second one was started
        assert viewer.proc.poll() is None
    finally:
        viewer.stop()


def test_seed_example_3_send_columns_follows_to_the_last_step(xvfb_display, tmp_path, spawn_port):
    """Static format + 20 buffers on `step`: the live view follows to step 19."""
    viewer = LiveViewer(tmp_path, port=spawn_port)
    script = SEED1_SCRIPT.parent / "seed_image_send_columns.py"
    blue, cyan = (0, 0, 255, 255), (0, 255, 255, 255)
    try:
        r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        # step 19: cyan in rows 50..149 of columns 190..289, blue elsewhere
        png = viewer.screenshot_until(lambda p: window_pixel(p, 200, 100) == cyan)
        assert window_pixel(png, 200, 100) == cyan
        assert window_pixel(png, 10, 10) == blue
        assert window_pixel(png, 185, 100) == blue
        assert read_view_metadata(png)["time"] == 19
    finally:
        viewer.stop()


STREAMER = r'''
import sys, time
import numpy as np
import pixelrun as rr

port, n = sys.argv[1], int(sys.argv[2])
W, H = 1920, 1080
frame = np.random.default_rng(0).integers(0, 256, W * H * 3 // 2, dtype=np.uint8).tobytes()
rr.init("kill_test")
rr.connect(f"127.0.0.1:{port}")
t0 = time.monotonic()
for i in range(n):
    rr.set_time("frame", sequence=i)
    rr.log("cam", rr.Image(bytes=frame, width=W, height=H, pixel_format=rr.PixelFormat.NV12))
    if i == 10:
        print("streaming", flush=True)
    time.sleep(0.01)
rr.flush()
print(f"done {time.monotonic() - t0:.2f}", flush=True)
'''

KILL_BOUND_S = 60.0  # stated bound: extra time allowed after the viewer dies


def _stream(tmp_path, port, n, kill: "LiveViewer | None" = None) -> tuple[float, str]:
    script = tmp_path / "streamer.py"
    script.write_text(STREAMER)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill is not None:
        assert proc.stdout.readline().strip() == "streaming"
        kill.proc.kill()  # SIGKILL: no goodbye on the socket
        kill.proc.wait()
    return proc, t0


def test_killing_the_viewer_mid_stream_does_not_hang_the_program(xvfb_display, tmp_path):
    n = 150  # 1080p NV12 frames, about 3 MB each
    # normal time: the same program with the viewer alive throughout
    alive = LiveViewer(tmp_path)
    try:
        proc, t0 = _stream(tmp_path, alive.port, n)
        out, err = proc.communicate(timeout=600)
        normal = time.monotonic() - t0
        assert proc.returncode == 0 and "done" in out, err
    finally:
        alive.stop()
    victim = LiveViewer(tmp_path)
    proc, t0 = _stream(tmp_path, victim.port, n, kill=victim)
    try:
        out, err = proc.communicate(timeout=normal + KILL_BOUND_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"program still running {normal + KILL_BOUND_S:.0f} s after start "
                    f"(normal run {normal:.1f} s) although its viewer was killed")
    assert proc.returncode == 0, err
    assert "done" in out
    print(f"normal run {normal:.1f} s; with the viewer killed {time.monotonic() - t0:.1f} s")
    victim.stop()


def test_spawn_without_a_display_warns_once_and_the_program_goes_on(tmp_path, spawn_port):
    script = tmp_path / "image_simple.py"
    script.write_text(SEED1_SCRIPT.read_text() + "\nrr.log('image', rr.Image(image))\nprint('finished')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "finished"
    assert r.stderr.count("no display") == 1, r.stderr
    assert not _port_busy(spawn_port)  # no viewer was left behind


# ----------------------------------------------------------------------- timeline, overrides


@pytest.fixture
def two_step_viewer(xvfb_display):
    """'cam' is red at step 0 and blue at step 1; 'top' (draw order 0) green 8x8 at step 0."""
    from pixelrun.engine.store.store import ChunkStore
    from pixelrun.engine.viewer.data import ViewerData
    from pixelrun.engine.viewer.window import Viewer

    fmt = ImageFormat(32, 16, color_model="RGB", channel_datatype="U8")
    red = np.zeros((16, 32, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((16, 32, 3), np.uint8)
    blue[..., 2] = 255
    green = np.zeros((8, 8, 3), np.uint8)
    green[..., 1] = 255
    data = ViewerData(ChunkStore(memory_limit=None))
    data.ingest([
        image_chunk("cam", red, fmt, step=0),
        image_chunk("cam", blue, fmt, step=1),
        image_chunk("top", green, ImageFormat(8, 8, color_model="RGB", channel_datatype="U8"), step=0),
    ])
    # Different sizes get a view each by default; these tests stack 'top' over 'cam'
    # (moved into cam's view, as a user does from the entity panel).
    data.layout.move("/top", default_view_key("/cam", (32, 16)))
    v = Viewer(data, size=(800, 600))
    v.canvas.force_draw()
    assert [sv.entities for sv in v.views] == [["/cam", "/top"]]
    yield v
    v.close()


def _shot(v, tmp_path, name):
    path = tmp_path / f"{name}.png"
    v.request_screenshot(str(path))
    v.canvas.force_draw()
    return path


def test_follow_shows_the_newest_step_and_scrubbing_goes_back(two_step_viewer, tmp_path):
    v = two_step_viewer
    assert (v.data.playback.timeline, v.data.playback.time) == ("step", 1)
    png = _shot(v, tmp_path, "newest")
    assert window_pixel(png, 20, 12) == (0, 0, 255, 255)  # blue: step 1
    assert window_pixel(png, 3, 3) == GREEN  # 'top' still holds its step-0 image (latest-at)
    v.data.playback.follow = False
    v.data.playback.time = 0
    png = _shot(v, tmp_path, "step0")
    assert window_pixel(png, 20, 12) == RED


def test_entity_panel_overrides_change_the_picture(two_step_viewer, tmp_path):
    from pixelrun.engine.viewer.data import EntityOverride

    v = two_step_viewer
    top = next(e for e in v.data.entities() if e.strip("/") == "top")
    v.data.overrides[top] = EntityOverride(visible=False)
    v.data.overrides_version += 1
    png = _shot(v, tmp_path, "hidden")
    assert window_pixel(png, 3, 3) == (0, 0, 255, 255)  # 'cam' shows through
    cam = next(e for e in v.data.entities() if e.strip("/") == "cam")
    v.data.overrides[top] = EntityOverride(visible=True)
    v.data.overrides[cam] = EntityOverride(draw_order=5.0)  # now above 'top'
    v.data.overrides_version += 1
    png = _shot(v, tmp_path, "reordered")
    assert window_pixel(png, 3, 3) == (0, 0, 255, 255)
    v.data.overrides[cam] = EntityOverride(draw_order=5.0, opacity=0.0)
    v.data.overrides_version += 1
    png = _shot(v, tmp_path, "transparent")
    assert window_pixel(png, 3, 3) == GREEN  # cam fully transparent: 'top' below it shows


def test_the_cached_scene_reaches_the_surface_by_copy_with_the_blits_pixels(two_step_viewer, tmp_path):
    """A surface that can be copied into gets the cache by a texture copy, not the
    full-window blit pass; the window's pixels are the same either way."""
    v = two_step_viewer
    used = []
    check = v._copies_cache_into
    v._copies_cache_into = lambda texture: used.append(check(texture)) or used[-1]
    _move(v, v.image_area().x + 10, v.image_area().y + 10)  # a tooltip over the view: imgui on top
    copied = np.asarray(Image.open(_shot(v, tmp_path, "copy")))
    assert used and all(used)  # Vulkan surfaces (lavapipe here) allow COPY_DST
    v.blit_by_copy = False
    used.clear()
    blitted = np.asarray(Image.open(_shot(v, tmp_path, "blit")))
    assert used == [False]
    assert copied.shape == blitted.shape
    assert np.array_equal(copied, blitted)
    assert window_pixel(tmp_path / "copy.png", 20, 12) == (0, 0, 255, 255)


def test_panel_only_frames_reuse_the_composited_scene(two_step_viewer):
    v = two_step_viewer
    before = v.scene_draws
    area = v.image_area()
    for dx in range(3):  # hover moves: readout changes, the scene does not
        _move(v, area.x + 10 + dx, area.y + 10)
        v.canvas.force_draw()
    assert v.scene_draws == before
    v.data.ingest([image_chunk("cam", np.zeros((16, 32, 3), np.uint8),
                               ImageFormat(32, 16, color_model="RGB", channel_datatype="U8"), step=2)])
    v.canvas.force_draw()
    assert v.scene_draws == before + 1  # new data: composited again
    v._on_wheel({"event_type": "wheel", "x": area.x + 50, "y": area.y + 50, "dx": 0, "dy": -100})
    v.canvas.force_draw()
    assert v.scene_draws == before + 2  # zoom: composited again


def test_following_new_data_keeps_only_the_shown_frames_decoded(two_step_viewer, tmp_path):
    """Following a live stream, a frame a newer one replaced lets go of its texture (the
    next frame is decoded into it): the decoded textures stay at what is shown. Scrubbing
    back (follow off) decodes the old frame again, and keeps what it decodes."""
    v = two_step_viewer
    fmt = ImageFormat(32, 16, color_model="RGB", channel_datatype="U8")
    shown = v.renderer.cache_bytes
    assert shown == (32 * 16 + 8 * 8) * 4  # cam's newest frame and 'top'
    for step in range(2, 12):
        v.data.ingest([image_chunk("cam", np.full((16, 32, 3), step * 20, np.uint8), fmt, step=step)])
        v.canvas.force_draw()
        assert v.renderer.cache_bytes == shown, step
    assert window_pixel(_shot(v, tmp_path, "newest"), 20, 12) == (220, 220, 220, 255)  # step 11: 11 * 20
    v.data.playback.follow = False
    v.data.playback.time = 1
    assert window_pixel(_shot(v, tmp_path, "step1"), 20, 12) == (0, 0, 255, 255)
    assert v.renderer.cache_bytes == shown + 32 * 16 * 4  # step 11's frame is kept as well


def test_data_that_does_not_change_the_shown_scene_costs_no_composite(two_step_viewer):
    v = two_step_viewer
    v.data.playback.follow = False
    v.data.playback.time = 0
    v.canvas.force_draw()
    before = v.scene_draws
    # a new frame at step 5: the cursor stays at step 0, the picture cannot change
    v.data.ingest([image_chunk("cam", np.zeros((16, 32, 3), np.uint8),
                               ImageFormat(32, 16, color_model="RGB", channel_datatype="U8"), step=5)])
    v.canvas.force_draw()
    assert v.scene_draws == before


# ----------------------------------------------------------------------- real X input


def test_real_mouse_and_keys_drive_hover_zoom_pan_and_screenshot(xvfb_display, tmp_path):
    """Through the X server: hover reads NV12 samples, wheel zooms, drag pans, S saves."""
    import glfw
    from viewer_helpers import FakeInput

    from pixelrun.engine.store.store import ChunkStore
    from pixelrun.engine.viewer.data import ViewerData
    from pixelrun.engine.viewer.window import Viewer
    from pixelrun.kernels.formats import PixelFormat

    fmt = ImageFormat(64, 48, pixel_format=PixelFormat.NV12)
    buf = np.random.default_rng(1).integers(0, 256, fmt.byte_count(), dtype=np.uint8)
    data = ViewerData(ChunkStore(memory_limit=None))
    data.ingest([image_chunk("cam", buf, fmt, step=0)])
    v = Viewer(data, size=(800, 600), screenshot_dir=str(tmp_path))
    x = FakeInput()
    seen: dict = {}

    def screen(u, w):
        px, py = v.view.image_to_window(u + 0.5, w + 0.5)
        wx, wy = glfw.get_window_pos(v.canvas._window)
        return wx + px, wy + py

    def hover():
        x.move(*screen(11, 21))

    def zoom():
        seen["readout"] = v.readout
        seen["scale0"] = v.view.scale
        x.wheel_up()

    def drag():
        seen["scale1"] = v.view.scale
        seen["offset1"] = (v.view.offset_x, v.view.offset_y)
        sx, sy = screen(30, 30)
        x.move(sx, sy)
        x.button(1, True)
        x.move(sx + 40, sy + 25)
        x.button(1, False)

    def press_s():
        seen["offset2"] = (v.view.offset_x, v.view.offset_y)
        x.key("s")

    # (action, condition that shows the window has processed it); polled, so a busy
    # machine only makes the test slower
    steps = [
        (hover, lambda: v.readout is not None),
        (zoom, lambda: v.view.scale != seen["scale0"]),
        (drag, lambda: v._drag is None and (v.view.offset_x, v.view.offset_y) != seen["offset1"]),
        (press_s, lambda: list(tmp_path.glob("pixelrun-*.png"))),
    ]
    deadline = time.monotonic() + 60

    def tick():
        if steps and time.monotonic() < deadline:
            action, done = steps[0]
            if not seen.get(id(action)):
                seen[id(action)] = True
                action()
            elif done():
                steps.pop(0)
            v._loop.call_later(0.1, tick)
        else:
            v.close()

    v._loop.call_later(1.0, tick)
    try:
        v.run()
    finally:
        x.close()
    assert not steps, f"window did not react to step {steps[0][0].__name__}"
    ro = seen["readout"]
    assert ro is not None and (ro.x, ro.y) == (11, 21)
    n = 64 * 48
    uv = n + (21 // 2) * 64 + (11 // 2) * 2
    assert ro.raw == (("Y", int(buf[21 * 64 + 11])), ("U", int(buf[uv])), ("V", int(buf[uv + 1])))
    assert seen["scale1"] > seen["scale0"]
    dx = seen["offset2"][0] - seen["offset1"][0]
    dy = seen["offset2"][1] - seen["offset1"][1]
    assert (dx, dy) == (40, 25)
    assert len(list(tmp_path.glob("pixelrun-*.png"))) == 1


def test_cli_errors_are_clear(xvfb_display, tmp_path):
    r = subprocess.run(viewer_cmd(str(tmp_path / "missing.rrd"), "--port", "0"), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "cannot open" in r.stderr and "missing.rrd" in r.stderr
    assert "listening" not in r.stdout  # a bad file fails before the port opens
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = subprocess.run(viewer_cmd("--port", str(port)), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "already in use" in r.stderr


# ----------------------------------------------------------------------- screenshot mode never hangs

ONE_SHOT_BOUND_S = 60  # stated bound: a failing one-shot run ends well within it


@pytest.mark.parametrize("where", ["parent is a file", "under /proc"])
def test_screenshot_to_an_unwritable_path_fails_fast_with_one_line(xvfb_display, tmp_path, where):
    rec = tmp_path / "seed1.rrd"
    rec.write_bytes(rrd_stream([image_chunk("image", seed1_pixels(), SEED1_FMT)]))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # unwritable even for root (CI runs as root: a missing /unwritable folder would be made)
    out = blocker / "x.png" if where == "parent is a file" else Path("/proc/pixelrun-no-such-dir/x.png")
    try:
        r = subprocess.run(viewer_cmd(str(rec), "--screenshot-to", str(out)),
                           capture_output=True, text=True, timeout=ONE_SHOT_BOUND_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`pixelrun view --screenshot-to {out}` still running after {ONE_SHOT_BOUND_S} s")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


@pytest.fixture
def seed1_data():
    from pixelrun.engine.store.store import ChunkStore
    from pixelrun.engine.viewer.data import ViewerData

    data = ViewerData(ChunkStore(memory_limit=None))
    data.ingest([image_chunk("image", seed1_pixels(), SEED1_FMT)])
    return data


def test_an_error_while_saving_ends_the_screenshot_run(xvfb_display, tmp_path, seed1_data):
    from pixelrun.engine.viewer.window import Viewer

    out = tmp_path / "shot.png"
    v = Viewer(seed1_data, size=(400, 300), screenshot_to=str(out), screenshot_timeout=30)
    out.mkdir()  # passes any check made before; the save's final rename then fails
    v.run()  # returns: the error closed the window
    assert v.error is not None and "IsADirectoryError" in v.error and str(out) in v.error
    assert "\n" not in v.error
    assert not list(tmp_path.glob("shot.png.tmp-*"))  # no half-written file left behind


def test_a_screenshot_run_without_a_frame_is_bounded_in_time(xvfb_display, tmp_path, seed1_data, monkeypatch):
    from pixelrun.engine.viewer.window import Viewer

    out = tmp_path / "shot.png"
    v = Viewer(seed1_data, size=(400, 300), screenshot_to=str(out), screenshot_timeout=2)
    monkeypatch.setattr(v, "_draw_frame", lambda: None)  # a window whose frame never comes
    v.run()
    assert v.error == "no frame was saved within 2 s"
    assert not out.exists()


# ----------------------------------------------------------------------- cost follows the window


def test_degenerate_and_huge_canvas_draws_a_window_sized_frame(xvfb_display, tmp_path):
    """100000x1 + 1x100000 (a 10^10-texel canvas) and a 16384² layer: the frame is drawn,
    right at known pixels, and what is composited is the size of the window."""
    from pixelrun.engine.store.store import ChunkStore
    from pixelrun.engine.viewer.data import EntityOverride, ViewerData
    from pixelrun.engine.viewer.window import Viewer

    def rgb(w, h):
        return ImageFormat(w, h, color_model="RGB", channel_datatype="U8")

    wide = np.zeros((1, 100000, 3), np.uint8)
    wide[..., 2] = 255
    tall = np.zeros((100000, 1, 3), np.uint8)
    tall[..., :2] = 255
    huge = np.full((16384, 16384), 128, np.uint8)  # 256 MiB: more than lavapipe binds (left out there)
    data = ViewerData(ChunkStore(memory_limit=None))
    data.ingest([image_chunk("image", seed1_pixels(), SEED1_FMT, step=0)])
    data.ingest([image_chunk("wide", wide, rgb(100000, 1), step=0), image_chunk("tall", tall, rgb(1, 100000), step=0)])
    data.ingest([image_chunk("huge", huge, ImageFormat(16384, 16384, color_model="L", channel_datatype="U8"), step=0)])
    del huge
    overrides = {"image": 0.0, "wide": 1.0, "tall": 1.0, "huge": -20.0}  # draw orders
    for e in data.entities():
        data.overrides[e] = EntityOverride(draw_order=overrides[e.strip("/")])
        data.layout.move(e, "all")  # one view holding the four (by default: a view each)
    data.overrides_version += 1
    v = Viewer(data, size=(800, 600))
    try:
        for name, set_view in (("fit", v.fit), ("one", v.one_to_one)):
            set_view()
            png = _shot(v, tmp_path, name)
            w, h = v.physical_size()
            st = v.renderer.last_draw
            (view,) = v.views
            assert st.target_pixels == int(view.rect.w) * int(view.rect.h)  # the view's part of the window
            assert st.acc_bytes <= 16 * w * h + 256  # one f32 RGBA per window pixel, not per texel
            assert st.blended_pixels <= 4 * (w + 2) * (h + 2)  # four layers, each at most once per pixel
            assert read_view_metadata(png)["canvas"] == [100000, 100000]
        # 1:1: the canvas's top-left corner fills the image area
        assert window_pixel(png, 10, 10) == RED
        assert window_pixel(png, 100, 100) == GREEN
        assert window_pixel(png, 50, 0) == (0, 0, 255, 255)  # wide's row, over the image
        assert window_pixel(png, 0, 50) == (255, 255, 0, 255)  # tall's column
        assert window_pixel(png, 0, 0) == (0, 0, 255, 255)  # equal draw orders: 'wide' after 'tall'
    finally:
        v.close()


def test_window_frames_do_not_grow_memory(xvfb_display, seed1_data):
    """300 frames that each composite again (the zoom changes): RSS stays flat."""
    psutil = pytest.importorskip("psutil", reason="psutil measures RSS")
    import gc

    from pixelrun.engine.viewer.window import Viewer

    v = Viewer(seed1_data, size=(800, 600))
    try:
        area = v.image_area()
        cx, cy = area.x + area.w / 2, area.y + area.h / 2

        def frames(n):
            for i in range(n):
                v.view.zoom_at(cx, cy, 1.01 if i % 2 else 1 / 1.01)
                v.canvas.force_draw()
            gc.collect()

        frames(50)
        draws, before = v.scene_draws, psutil.Process().memory_info().rss
        frames(300)
        grown = psutil.Process().memory_info().rss - before
        assert v.scene_draws - draws == 300
        assert grown < 20e6, f"RSS grew {grown / 1e6:.1f} MB over 300 frames"
    finally:
        v.close()


def test_status_lines_show_memory_budget_and_server_counters(xvfb_display, seed1_data):
    from pixelrun.engine.viewer.server import ViewerServer
    from pixelrun.engine.viewer.window import Viewer

    server = ViewerServer(lambda chunks, peer: None, port=0).start()
    # a texture budget far below the 300x200 image's 240 kB: it is drawn reduced, and said so
    v = Viewer(seed1_data, size=(800, 600), status_source=server, texture_budget=20_000)
    try:
        v.one_to_one()
        v.canvas.force_draw()
        lines = v.status_lines()
        assert lines[0].startswith("store 0 MB") and "textures 0 MB of 0 MB" in lines[0]
        assert "/image: shown at 1/4 resolution (its textures exceed the budget)" in lines
        assert v.renderer.cache_bytes <= 20_000
        counters = next(l for l in lines if l.startswith("connections:"))
        for word in ("refused", "evicted", "timed out"):
            assert word in counters
    finally:
        v.close()
        server.stop()
