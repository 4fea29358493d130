"""The viewer people expect (issue 15), under Xvfb + lavapipe, from screenshots.

Recordings are written by pixelrun's SDK in a child process (as a user's program
would). Expected pixels come from the NumPy reference compositor over the same store's
layers (a different code path from the window's wgpu renderer); expected raw values are
written by hand from the layouts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelrun.engine.store.store import ChunkStore
from pixelrun.engine.viewer.data import EntityOverride, Recordings, ViewerData
from pixelrun.engine.viewer.window import Viewer, read_view_metadata
from pixelrun.kernels.layers import layer_decode_args
from pixelrun.kernels.reference import composite as ref_composite
from pixelrun.kernels.reference import convert as reference

FAMILY = r"""
import sys
import numpy as np
import pixelrun as rr

rr.init("family")
rr.save(sys.argv[1])
rng = np.random.default_rng(5)
nv12 = rng.integers(0, 256, 64 * 48 * 3 // 2, dtype=np.uint8)
depth = (np.arange(32 * 24, dtype=np.uint16).reshape(24, 32) * 50)
seg = np.zeros((24, 32), np.uint8)
seg[4:12, 8:20] = 2
seg[14:20, 2:6] = 1
rr.log("cam", rr.AnnotationContext([(1, "person", (255, 0, 0)), (2, "car", (0, 0, 255))]), static=True)
rr.set_time("step", sequence=0)
rr.log("cam/rgb", rr.Image(bytes=nv12.tobytes(), width=64, height=48, pixel_format=rr.PixelFormat.NV12))
rr.log("cam/depth", rr.DepthImage(depth, meter=1000.0))
rr.log("cam/seg", rr.SegmentationImage(seg))
np.save(sys.argv[1] + ".nv12.npy", nv12)
"""

ONE_COLOUR = r"""
import sys
import numpy as np
import pixelrun as rr

rr.init("rec")
rr.save(sys.argv[1])
rr.set_time("step", sequence=0)
rr.log("cam/rgb", rr.Image(np.full((24, 32, 3), [int(v) for v in sys.argv[2].split(",")], np.uint8)))
"""


def write_rrd(script: str, path: Path, *args: str) -> Path:
    r = subprocess.run([sys.executable, "-c", script, str(path), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return path


def view_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pixelrun.engine.cli.main", "view", *args]


def pixel(png: Path, x: float, y: float) -> tuple[int, ...]:
    with Image.open(png) as im:
        return tuple(im.convert("RGBA").getpixel((int(x), int(y))))


def view_meta(png: Path, entity: str) -> dict:
    (view,) = [v for v in read_view_metadata(png)["views"] if entity in v["entities"]]
    return view


def view_pixel(png: Path, entity: str, u: int, v: int) -> tuple[int, ...]:
    m = view_meta(png, entity)
    s, (ox, oy) = m["scale"], m["offset"]
    return pixel(png, (u + 0.5) * s + ox, (v + 0.5) * s + oy)


def open_viewer(data, size=(1280, 720)):
    """An in-process window of `size` (glfw applies the size once its events are polled)."""
    import glfw

    v = Viewer(data, size=size)
    glfw.poll_events()
    v.canvas.force_draw()
    return v


def pointer(v, px: float, py: float) -> None:
    """Move the pointer to window pixel (px, py) through the canvas, as the window system does."""
    r = v.pixel_ratio()
    v.canvas.submit_event({"event_type": "pointer_move", "x": px / r, "y": py / r, "buttons": (), "button": 0,
                           "modifiers": (), "ntouches": 0, "touches": {}, "time_stamp": 0})
    v.canvas._events.flush()  # what the event loop does before drawing (no loop runs in-process)


def store_of(path: Path) -> ViewerData:
    d = ViewerData(ChunkStore(memory_limit=None), name=path.name, path=str(path))
    d.load_file(str(path))
    d.sync_playback()
    return d


def expected(layers, u: int, v: int) -> tuple[int, ...]:
    """The reference composite over the window background (contract §4), at (u, v)."""
    rgba = ref_composite.composite(layers, background=(13, 13, 13, 255))
    return tuple(int(c) for c in rgba[v, u])


def close(a, b, tol=1) -> bool:
    return all(abs(int(x) - int(y)) <= tol for x, y in zip(a, b))


@pytest.fixture(scope="module")
def family(tmp_path_factory) -> Path:
    return write_rrd(FAMILY, tmp_path_factory.mktemp("family") / "family.rrd")


# ----------------------------------------------------------------------- views


def test_two_cameras_of_different_sizes_get_two_views_both_visible(xvfb_display, family, tmp_path):
    out = tmp_path / "views.png"
    r = subprocess.run(view_cmd(str(family), "--screenshot-to", str(out), "--window-size", "1280x720"),
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    meta = read_view_metadata(out)
    assert [v["entities"] for v in meta["views"]] == [["/cam/depth", "/cam/seg"], ["/cam/rgb"]]
    a, b = (v["rect"] for v in meta["views"])
    assert a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]
    d = store_of(family)
    layers = {l.entity: l for l in d.layers()}
    rgb, small = [layers["/cam/rgb"]], [layers["/cam/depth"], layers["/cam/seg"]]
    for u, v in ((3, 3), (40, 30), (63, 47)):
        assert close(view_pixel(out, "/cam/rgb", u, v), expected(rgb, u, v))
    for u, v in ((1, 1), (10, 6), (3, 16), (31, 23)):  # depth alone, car, person, depth alone
        assert close(view_pixel(out, "/cam/depth", u, v), expected(small, u, v))
    # the depth image is not hidden under the camera: its view shows depth colours
    assert view_pixel(out, "/cam/depth", 31, 23) != view_pixel(out, "/cam/rgb", 31, 23)


# ----------------------------------------------------------------------- tooltip


@pytest.fixture
def family_viewer(xvfb_display, family):
    d = store_of(family)
    v = open_viewer(d)
    v.nv12 = np.load(str(family) + ".nv12.npy")
    yield v
    v.close()


def hover(v, entity: str, u: int, w: int) -> tuple[float, float]:
    (sv,) = [s for s in v.views if entity in s.entities]
    px, py = sv.view.image_to_window(u + 0.5, w + 0.5)
    pointer(v, px, py)
    v.canvas.force_draw()
    return px, py


def shot(v, path: Path) -> Path:
    v.request_screenshot(str(path))
    v.canvas.force_draw()
    return path


def test_tooltip_lists_nv12_depth_and_segmentation_at_known_pixels(family_viewer, tmp_path):
    v = family_viewer
    buf = v.nv12
    plain = shot(v, tmp_path / "plain.png")
    # NV12 at (41, 27): Y from the luma plane, U/V from the interleaved half-size plane
    hover(v, "/cam/rgb", 41, 27)
    (ro,) = v.readouts
    uv = 64 * 48 + (27 // 2) * 64 + (41 // 2) * 2
    assert ro.raw == (("Y", int(buf[27 * 64 + 41])), ("U", int(buf[uv])), ("V", int(buf[uv + 1])))
    assert ro.entity == "/cam/rgb" and (ro.x, ro.y) == (41, 27)
    # depth + segmentation at (10, 6): the car over depth 50 * (6 * 32 + 10) = 10100 u16 = 10.1 m
    px, py = hover(v, "/cam/seg", 10, 6)
    seg, dep = v.readouts
    assert (seg.entity, seg.raw, seg.extra) == ("/cam/seg", (("class", 2),), (("label", "car"),))
    assert seg.display == (0, 0, 255, 255)
    assert (dep.entity, dep.raw, dep.extra) == ("/cam/depth", (("depth", 10100),), (("metres", "10.1 m"),))
    layer = {l.entity: l for l in v.layers}["/cam/depth"]
    want = reference.to_display_rgba(layer.buffer, layer.format, **layer_decode_args(layer))[6, 10]
    assert close(dep.display, want)  # what the renderer decoded equals the reference colour
    # the tooltip is drawn at the cursor: the screenshot differs there, and shows the
    # first readout's colour swatch (the car's blue) just beside the cursor
    hovered = shot(v, tmp_path / "hover.png")
    with Image.open(plain) as a, Image.open(hovered) as b:
        box = (int(px) + 4, int(py) + 4, int(px) + 260, int(py) + 120)
        pa = np.asarray(a.convert("RGB").crop(box)).astype(int)
        pb = np.asarray(b.convert("RGB").crop(box))
        assert np.abs(pa - pb).sum() > 0
        assert (pb == (0, 0, 255)).all(axis=-1).sum() >= 50  # the swatch
    # off every image: no tooltip data
    pointer(v, 5, 5)
    v.canvas.force_draw()
    assert v.readouts == []


def test_high_zoom_draws_the_pixel_grid_and_values(family_viewer, tmp_path):
    v = family_viewer
    (sv,) = [s for s in v.views if "/cam/rgb" in s.entities]
    sv.view.scale = 64.0 * v.pixel_ratio()  # one image pixel = 64 screen pixels
    sv.view.offset_x, sv.view.offset_y = sv.rect.x - 10 * sv.view.scale, sv.rect.y - 10 * sv.view.scale
    sv.view.mode = "free"
    png = shot(v, tmp_path / "zoom.png")
    s = sv.view.scale
    x0, y0 = sv.view.image_to_window(12, 12)  # the corner of pixel (12, 12)
    with Image.open(png) as im:
        cell = np.asarray(im.convert("RGB").crop((int(x0) + 2, int(y0) + 2, int(x0 + s) - 2, int(y0 + s) - 2)))
    # a flat NV12 pixel would be one colour; the value text makes white pixels in it
    assert (cell == 255).all(axis=-1).sum() > 10
    # the grid line between pixels (12, 12) and (13, 12) is darker than both pixels
    line = pixel(png, x0 + s, y0 + s / 2)
    inside = pixel(png, x0 + s + 3, y0 + s / 2 + 20)
    assert sum(line[:3]) < sum(inside[:3]) or sum(inside[:3]) == 0


# ----------------------------------------------------------------------- controls


def test_pinned_range_keeps_a_pixels_colour_constant(xvfb_display, tmp_path):
    from viewer_helpers import image_chunk

    from pixelrun.kernels.formats import ImageFormat

    fmt = ImageFormat(4, 4, color_model="L", channel_datatype="U16")
    frames = []
    for step, top in enumerate((1000, 4000)):  # the automatic range follows each frame's maximum
        px = np.full((4, 4), 500, np.uint16)
        px[0, 0], px[3, 3] = top, 0
        frames.append(image_chunk("g16", px.reshape(-1).view(np.uint8), fmt, step=step))
    d = ViewerData(ChunkStore(memory_limit=None))
    d.ingest(frames)
    v = open_viewer(d, (800, 600))
    try:
        def colour_at(step: int) -> tuple:
            d.playback.follow = False
            d.playback.time = step
            png = shot(v, tmp_path / f"s{step}-{d.overrides_version}.png")
            return view_pixel(png, "/g16", 2, 2)

        auto = colour_at(0), colour_at(1)
        assert auto[0] != auto[1]  # auto range: the same value 500 changes colour
        d.overrides["/g16"] = EntityOverride(value_range=(0.0, 2000.0))
        d.overrides_version += 1
        pinned = colour_at(0), colour_at(1)
        assert pinned[0] == pinned[1]
        grey = int(np.floor(500 / 2000 * 255 + 0.5))
        assert close(pinned[0], (grey, grey, grey, 255))
        # the readout agrees with what is drawn
        hover(v, "/g16", 2, 2)
        assert close(v.readout.display, pinned[0])
    finally:
        v.close()


def test_settings_saved_next_to_a_recording_are_restored_by_pixelrun_view(xvfb_display, tmp_path):
    rec = write_rrd(ONE_COLOUR, tmp_path / "grey.rrd", "200,100,50")
    d = store_of(rec)
    d.overrides["/cam/rgb"] = EntityOverride(opacity=0.0)
    d.save_settings()
    out = tmp_path / "restored.png"
    r = subprocess.run(view_cmd(str(rec), "--screenshot-to", str(out)), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert view_pixel(out, "/cam/rgb", 5, 5) == (13, 13, 13, 255)  # opacity 0 restored: background


# ----------------------------------------------------------------------- recordings


def test_two_recordings_are_listed_not_merged(xvfb_display, tmp_path):
    a = write_rrd(ONE_COLOUR, tmp_path / "a.rrd", "255,0,0")
    b = write_rrd(ONE_COLOUR, tmp_path / "b.rrd", "0,255,0")
    out = tmp_path / "two.png"
    r = subprocess.run(view_cmd(str(a), str(b), "--screenshot-to", str(out)), capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stderr
    meta = read_view_metadata(out)
    assert meta["recordings"] == ["a.rrd", "b.rrd"] and meta["active_recording"] == 0
    assert [v["entities"] for v in meta["views"]] == [["/cam/rgb"]]  # one entity, not two merged rows
    assert view_pixel(out, "/cam/rgb", 5, 5) == (255, 0, 0, 255)


    recs = Recordings([store_of(a), store_of(b)])
    v = open_viewer(recs, (800, 600))
    try:
        assert view_pixel(shot(v, tmp_path / "first.png"), "/cam/rgb", 5, 5) == (255, 0, 0, 255)
        recs.activate(1)
        png = shot(v, tmp_path / "second.png")
        assert read_view_metadata(png)["active_recording"] == 1
        assert view_pixel(png, "/cam/rgb", 5, 5) == (0, 255, 0, 255)
    finally:
        v.close()


# ----------------------------------------------------------------------- layout that holds


def test_fifty_entities_at_1280x720_leave_every_panel_readable(xvfb_display, tmp_path):
    from viewer_helpers import image_chunk

    from pixelrun.kernels.formats import ImageFormat

    d = ViewerData(ChunkStore(memory_limit=None))
    chunks = []
    for i in range(50):
        w = 16 + 4 * (i % 5)  # five groups of ten same-size images: five views
        fmt = ImageFormat(w, 12, color_model="RGB", channel_datatype="U8")
        chunks.append(image_chunk(f"group{i % 5}/entity_{i:02d}", np.full((12, w, 3), 40 + 4 * i, np.uint8), fmt,
                                  step=i))
    d.ingest(chunks)
    v = open_viewer(d)
    try:
        for e in d.entities()[:10]:  # a few entity nodes opened: their controls take room
            d.overrides[e] = EntityOverride(opacity=0.9)
        d.overrides_version += 1
        png = shot(v, tmp_path / "fifty.png")
        w, h = v.physical_size()
        assert (w, h) == (1280, 720)
        p = v.panels
        # the status block: every line laid out inside the window, and drawn (text pixels)
        assert p.status_shown and p.status_rect is not None
        x0, y0, x1, y1 = p.status_rect
        assert 0 <= y0 < y1 <= h - 100 and x1 <= 310
        with Image.open(png) as im:
            region = np.asarray(im.convert("L").crop((int(x0), int(y0), int(x1), int(y1))))
        assert (region > 180).sum() > 50  # light text on the dark panel
        # the time range label is inside the window, not cut at the right edge
        lx0, ly0, lx1, ly1 = p.range_label_rect
        assert lx1 <= w and ly1 <= h
        # fifty entities in five subtrees: five views, none outside the window
        assert len(v.views) == 5
        for sv in v.views:
            assert sv.rect.x + sv.rect.w <= w and sv.rect.y + sv.rect.h <= h
    finally:
        v.close()


# ----------------------------------------------------------------------- live speed


def test_panel_backgrounds_painted_in_the_cache_look_as_imgui_draws_them(xvfb_display, tmp_path, monkeypatch):
    """The fixed panels draw no background (the window paints it into its cache once per
    layout): the window must look as when imgui draws those backgrounds itself."""
    from viewer_helpers import image_chunk

    from pixelrun.engine.viewer import panels as panels_mod
    from pixelrun.kernels.formats import ImageFormat

    d = ViewerData(ChunkStore(memory_limit=None))
    for k, (w, h) in enumerate([(64, 48), (32, 24)]):  # two sizes: two views, two title strips
        fmt = ImageFormat(w, h, color_model="RGB", channel_datatype="U8")
        d.ingest([image_chunk(f"cam{k}/image", np.full((h, w, 3), 90 + 60 * k, np.uint8), fmt, step=0)])
    v = open_viewer(d)
    try:
        assert len(v.views) == 2

        def shot(name: str) -> np.ndarray:
            for _ in range(3):  # imgui settles its layout over the first frames
                v.canvas.force_draw()
            v.request_screenshot(str(tmp_path / name))
            v.canvas.force_draw()
            with Image.open(tmp_path / name) as im:
                return np.asarray(im.convert("RGBA")).astype(int)

        painted = shot("painted.png")
        monkeypatch.setattr(panels_mod, "_no_backdrop", lambda: None)
        monkeypatch.setattr(Viewer, "_paint_backdrop", lambda self, rects: None)
        v._cache_key = None  # clear the cache again: no backdrop in it now
        by_imgui = shot("by_imgui.png")
    finally:
        v.close()
    diff = np.abs(painted - by_imgui).max(axis=2)
    # the panel borders' anti-aliased edge may round differently; nothing else differs
    assert diff.max() <= 4, diff.max()
    assert (diff > 0).sum() < 0.01 * diff.size
    bg = (13, 13, 13)
    inside_left = painted[400, 150, :3]  # the left panel, below its sections, above the status
    inside_timeline = painted[715, 1200, :3]
    assert tuple(inside_left) != bg and tuple(inside_left) == tuple(by_imgui[400, 150, :3])
    assert tuple(inside_timeline) == tuple(by_imgui[715, 1200, :3]) != bg
    for sv in v.views:  # each view's strip: under its buttons, the panel colour
        t = sv.title_rect
        x, y = int(t.x + t.w - 3), int(t.y + t.h / 2)
        assert tuple(painted[y, x, :3]) == tuple(by_imgui[y, x, :3]) != bg


def test_new_data_for_one_camera_recomposites_only_its_view(xvfb_display):
    from viewer_helpers import image_chunk

    from pixelrun.kernels.formats import ImageFormat

    fmt = ImageFormat(16, 8, color_model="RGB", channel_datatype="U8")
    d = ViewerData(ChunkStore(memory_limit=None))
    d.ingest([image_chunk(f"cam{k}/image", np.full((8, 16, 3), 50 * k, np.uint8), fmt, step=0) for k in range(4)])
    v = open_viewer(d, (1000, 700))
    try:
        assert len(v.views) == 4
        v.canvas.force_draw()
        before, per_view = v.scene_draws, dict(v.view_draws)
        d.ingest([image_chunk("cam2/image", np.full((8, 16, 3), 255, np.uint8), fmt, step=1)])
        v.canvas.force_draw()
        assert v.scene_draws == before + 1  # cam2's view only; the other three are reused
        changed = {k for k in v.view_draws if v.view_draws[k] != per_view.get(k)}
        assert changed == {s.key for s in v.views if "/cam2/image" in s.entities}
        (sv,) = [s for s in v.views if "/cam2/image" in s.entities]
        sv.view.pan(3, 0)
        v.canvas.force_draw()
        assert v.scene_draws == before + 2  # panning one view recomposites that view
    finally:
        v.close()


def test_shortcuts_help_overlay_and_keys(xvfb_display, tmp_path):
    from viewer_helpers import image_chunk

    from pixelrun.engine.viewer.panels import SHORTCUTS
    from pixelrun.kernels.formats import ImageFormat

    fmt = ImageFormat(16, 8, color_model="RGB", channel_datatype="U8")
    d = ViewerData(ChunkStore(memory_limit=None))
    d.ingest([image_chunk(f"cam{k}/image", np.full((8, 16, 3), 60, np.uint8), fmt, step=s)
              for k in range(2) for s in range(5)])
    v = open_viewer(d, (1000, 700))
    try:
        plain = shot(v, tmp_path / "plain.png")
        v._on_key({"event_type": "key_down", "key": "h"})
        assert v.panels.show_help
        v.canvas.force_draw()  # the frame the key asks for; it asks for one more (the overlay sizes itself)
        assert v.panels.wants_another_frame()
        helped = shot(v, tmp_path / "help.png")
        assert v.panels.show_help
        with Image.open(plain) as a, Image.open(helped) as b:
            assert np.abs(np.asarray(a).astype(int) - np.asarray(b)).sum() > 0  # the overlay is drawn
        assert {"Space", "M", "F / double click", "Left / Right"} <= {k for k, _ in SHORTCUTS}
        v._on_key({"event_type": "key_down", "key": "Escape"})
        assert not v.panels.show_help
        # M maximises the view under the cursor; Esc restores the grid
        (first, second) = v.views
        cx, cy = second.rect.x + second.rect.w / 2, second.rect.y + second.rect.h / 2
        pointer(v, cx, cy)
        v._on_key({"event_type": "key_down", "key": "m"})
        v.canvas.force_draw()
        assert [s.entities for s in v.views] == [["/cam1/image"]]
        v._on_key({"event_type": "key_down", "key": "Escape"})
        v.canvas.force_draw()
        assert len(v.views) == 2
        # Left steps one frame back and stops following; L loops; End follows again
        assert d.playback.time == 4
        v._on_key({"event_type": "key_down", "key": "ArrowLeft"})
        assert d.playback.time == 3 and not d.playback.follow
        v._on_key({"event_type": "key_down", "key": "l"})
        assert d.playback.loop
        v._on_key({"event_type": "key_down", "key": "End"})
        v.canvas.force_draw()
        assert d.playback.follow and d.playback.time == 4
    finally:
        v.close()


def test_colormap_and_visibility_controls_apply_live(xvfb_display, tmp_path):
    from viewer_helpers import image_chunk

    from pixelrun.kernels.colormaps import Colormap
    from pixelrun.kernels.formats import ImageFormat

    fmt = ImageFormat(8, 4, color_model="L", channel_datatype="U8")
    ramp = (np.arange(32, dtype=np.uint8) * 8).reshape(4, 8)
    d = ViewerData(ChunkStore(memory_limit=None))
    d.ingest([image_chunk("cam/mono", ramp, fmt, step=0)])
    v = open_viewer(d, (900, 600))
    try:
        grey = view_pixel(shot(v, tmp_path / "grey.png"), "/cam/mono", 5, 2)
        assert grey[0] == grey[1] == grey[2]
        d.overrides["/cam/mono"] = EntityOverride(colormap=int(Colormap.Turbo))
        d.overrides_version += 1
        turbo = view_pixel(shot(v, tmp_path / "turbo.png"), "/cam/mono", 5, 2)
        (layer,) = v.layers
        want = reference.to_display_rgba(layer.buffer, layer.format, **layer_decode_args(layer))[2, 5]
        assert layer.colormap == int(Colormap.Turbo) and close(turbo, want)
        assert not (turbo[0] == turbo[1] == turbo[2])
        d.overrides["/cam/mono"].visible = False
        d.overrides_version += 1
        png = shot(v, tmp_path / "hidden.png")
        assert v.layers == [] and [s.entities for s in v.views] == [["/cam/mono"]]  # the view stays, empty
        assert view_pixel(png, "/cam/mono", 5, 2) == (13, 13, 13, 255)
    finally:
        v.close()


def test_dragging_an_entity_onto_another_view_moves_it_there(xvfb_display, tmp_path, family):
    v = open_viewer(store_of(family), (1280, 720))
    try:
        assert [s.entities for s in v.views] == [["/cam/depth", "/cam/seg"], ["/cam/rgb"]]
        r = v.pixel_ratio()
        rgb_view = [s for s in v.views if "/cam/rgb" in s.entities][0]

        def event(kind, x, y, buttons):
            v.canvas.submit_event({"event_type": kind, "x": x / r, "y": y / r, "button": 1, "buttons": buttons,
                                   "modifiers": (), "ntouches": 0, "touches": {}, "time_stamp": 0})
            v.canvas._events.flush()
            v.canvas.force_draw()

        row = v.panels.entity_rows["/cam/seg"]  # (x, y) of its label, physical px, from the last frame
        event("pointer_move", *row, ())
        event("pointer_down", *row, (1,))
        for k in range(1, 6):  # a drag past imgui's threshold, over to the camera's view
            tx = row[0] + (rgb_view.rect.x + rgb_view.rect.w / 2 - row[0]) * k / 5
            ty = row[1] + (rgb_view.rect.y + rgb_view.rect.h / 2 - row[1]) * k / 5
            event("pointer_move", tx, ty, (1,))
        event("pointer_up", tx, ty, ())
        v.canvas.force_draw()
        assert [s.entities for s in v.views] == [["/cam/depth"], ["/cam/rgb", "/cam/seg"]]
    finally:
        v.close()


def test_live_data_into_a_viewer_opened_on_a_file_is_its_own_recording(xvfb_display, tmp_path):
    import signal
    import socket
    import time

    from viewer_helpers import image_chunk, rrd_stream, wait_until

    from pixelrun.kernels.formats import ImageFormat
    from tests.net_helpers import grpc_send, rrd_messages

    rec = write_rrd(ONE_COLOUR, tmp_path / "file.rrd", "255,0,0")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    shots = tmp_path / "shots"
    shots.mkdir()
    log = open(tmp_path / "viewer.log", "w+")
    proc = subprocess.Popen(view_cmd(str(rec), "--port", str(port), "--screenshot-dir", str(shots)),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        def accepts():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        assert wait_until(accepts, timeout=60)
        fmt = ImageFormat(32, 24, color_model="RGB", channel_datatype="U8")
        green = np.zeros((24, 32, 3), np.uint8)
        green[..., 1] = 255
        grpc_send(port, rrd_messages(rrd_stream([image_chunk("cam/rgb", green, fmt, step=0)])))

        def latest():
            before = set(shots.glob("*.png"))
            proc.send_signal(signal.SIGUSR1)
            assert wait_until(lambda: set(shots.glob("*.png")) - before, timeout=30)
            (png,) = set(shots.glob("*.png")) - before
            return png

        deadline = time.monotonic() + 60
        png = latest()
        while read_view_metadata(png)["active_recording"] != 1 and time.monotonic() < deadline:
            time.sleep(0.3)
            png = latest()
        meta = read_view_metadata(png)
        assert meta["recordings"] == ["file.rrd", "live"] and meta["active_recording"] == 1
        assert view_pixel(png, "/cam/rgb", 5, 5) == (0, 255, 0, 255)  # the live frame, not the file's red
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
