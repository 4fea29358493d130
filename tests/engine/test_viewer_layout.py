"""Views (Rerun's default layout rule, grid, per-view pan/zoom, move/split/merge/maximise),
saved settings, timeline marks and the recording list: the viewer's model, no window."""

from __future__ import annotations

import json

import numpy as np
import pytest
from viewer_helpers import image_chunk

from pixelrun.engine.store.store import ChunkStore
from pixelrun.engine.viewer.data import EntityOverride, Recordings, ViewerData, settings_path
from pixelrun.engine.viewer.panels import Panels
from pixelrun.engine.viewer.view import Layout, Rect, default_view_key, grid_rects, grid_shape
from pixelrun.kernels.formats import ImageFormat
from pixelrun.kernels.layers import Layer

AREA = Rect(300, 0, 980, 608)


def layer(entity: str, w: int, h: int) -> Layer:
    fmt = ImageFormat(w, h, color_model="L", channel_datatype="U8")
    return Layer(entity, 1, np.zeros(w * h, np.uint8), fmt)


def keys(views):
    return [sv.entities for sv in views]


def test_same_size_same_subtree_share_a_view_others_get_their_own():
    lay = Layout()
    views = lay.arrange([layer("/cam/rgb", 640, 480), layer("/cam/seg", 640, 480),
                         layer("/cam/depth", 320, 240), layer("/other/rgb", 640, 480)], AREA)
    assert keys(views) == [["/cam/depth"], ["/cam/rgb", "/cam/seg"], ["/other/rgb"]]
    # the views tile the area without overlapping, each inside it
    for i, a in enumerate(views):
        assert AREA.x <= a.title_rect.x and a.rect.x + a.rect.w <= AREA.x + AREA.w
        assert AREA.y <= a.title_rect.y and a.rect.y + a.rect.h <= AREA.y + AREA.h
        for b in views[i + 1:]:
            assert (a.rect.x + a.rect.w <= b.rect.x or b.rect.x + b.rect.w <= a.rect.x
                    or a.rect.y + a.rect.h <= b.title_rect.y or b.rect.y + b.rect.h <= a.title_rect.y)
    # each view fits its own canvas
    small = views[0]
    assert small.canvas == (320, 240)
    assert small.view.scale == pytest.approx(min(small.rect.w / 320, small.rect.h / 240))


def test_grid_uses_the_window():
    assert grid_shape(1, AREA, [4 / 3]) == (1, 1)
    assert grid_shape(2, AREA, [4 / 3, 4 / 3]) == (2, 1)  # a wide area: side by side
    assert grid_shape(4, AREA, [16 / 9] * 4) == (2, 2)
    tall = Rect(0, 0, 400, 1200)
    assert grid_shape(2, tall, [4 / 3, 4 / 3]) == (1, 2)
    rects = grid_rects(9, AREA, [1.0] * 9, gap=4, title_h=20)
    assert len(rects) == 9 and len({(r.x, r.y) for _, r in rects}) == 9


def test_each_view_keeps_its_own_pan_zoom_and_maximise_gives_one_view_the_area():
    lay = Layout()
    ls = [layer("/a/img", 64, 48), layer("/b/img", 32, 32)]
    a, b = lay.arrange(ls, AREA)
    a.view.zoom_at(a.rect.x + 10, a.rect.y + 10, 4.0)
    a2, b2 = lay.arrange(ls, AREA)
    assert a2.view.mode == "free" and a2.view.scale == a.view.scale
    assert b2.view.mode == "fit"
    lay.toggle_maximized(b2.key)
    (only,) = lay.arrange(ls, AREA)
    assert only.entities == ["/b/img"] and only.rect.w > b2.rect.w
    lay.toggle_maximized(None)
    assert len(lay.arrange(ls, AREA)) == 2


def test_move_split_merge_and_reset():
    lay = Layout()
    ls = [layer("/cam/rgb", 64, 48), layer("/cam/seg", 64, 48), layer("/cam/depth", 32, 24)]
    views = lay.arrange(ls, AREA)
    assert keys(views) == [["/cam/depth"], ["/cam/rgb", "/cam/seg"]]
    lay.move("/cam/depth", default_view_key("/cam/rgb", (64, 48)))  # drag depth onto the camera
    assert keys(lay.arrange(ls, AREA)) == [["/cam/depth", "/cam/rgb", "/cam/seg"]]
    (v,) = lay.arrange(ls, AREA)
    lay.split(v.key, v.entities)
    assert keys(lay.arrange(ls, AREA)) == [["/cam/depth"], ["/cam/rgb"], ["/cam/seg"]]
    views = lay.arrange(ls, AREA)
    lay.merge(views[2].key, views[1].key, views[2].entities)
    assert keys(lay.arrange(ls, AREA)) == [["/cam/depth"], ["/cam/rgb", "/cam/seg"]]
    lay.reset()
    assert keys(lay.arrange(ls, AREA)) == [["/cam/depth"], ["/cam/rgb", "/cam/seg"]]


def test_an_entity_without_an_image_now_keeps_its_view():
    lay = Layout()
    lay.arrange([layer("/a/img", 64, 48), layer("/b/img", 32, 32)], AREA)
    views = lay.arrange([layer("/a/img", 64, 48)], AREA)  # /b has no image at this time
    assert keys(views) == [["/a/img"], ["/b/img"]]


L8 = ImageFormat(2, 2, color_model="L", channel_datatype="U8")


def data_with(path=None, *chunks) -> ViewerData:
    d = ViewerData(ChunkStore(memory_limit=None), name="rec", path=path)
    d.ingest(chunks)
    return d


def test_settings_are_saved_next_to_the_recording_and_restored(tmp_path):
    rec = tmp_path / "run.rrd"
    d = data_with(str(rec), image_chunk("cam", np.zeros((2, 2), np.uint8), L8, step=0))
    d.overrides["/cam"] = EntityOverride(visible=False, opacity=0.5, value_range=(10.0, 900.0), colormap=5,
                                         magnification=2)
    d.layout.move("/cam", "my view")
    written = d.save_settings()
    assert written == settings_path(str(rec)) == str(rec) + ".pixelrun.json"
    e = data_with(str(rec))
    assert e.restore_settings()
    assert e.overrides == d.overrides
    assert e.layout.assigned == {"/cam": "my view"}
    # the restored overrides reach the layers
    e.ingest([image_chunk("cam", np.zeros((2, 2), np.uint8), L8, step=0)])
    e.overrides["/cam"].visible = True
    e.sync_playback()
    (lay,) = e.layers()
    assert (lay.opacity, lay.value_range, lay.colormap, lay.magnification) == (0.5, (10.0, 900.0), 5, 2)


def test_bad_settings_are_refused_with_the_entry_named_and_nothing_applied(tmp_path):
    rec = tmp_path / "run.rrd"
    d = data_with(str(rec))
    d.overrides["/keep"] = EntityOverride(opacity=0.25)
    for content, words in [
        ("not json", "not JSON"),
        (json.dumps({"version": 99}), "version"),
        (json.dumps({"version": 1, "entities": {"/cam": {"value_range": [5, 1]}}}), "/cam: value_range"),
        (json.dumps({"version": 1, "entities": {"/cam": {"opacity": "x"}}}), "/cam: opacity"),
        (json.dumps({"version": 1, "entities": {"/cam": {"bogus": 1}}}), "unknown setting"),
    ]:
        (tmp_path / "run.rrd.pixelrun.json").write_text(content)
        with pytest.raises(ValueError, match=words):
            d.restore_settings()
        assert d.overrides == {"/keep": EntityOverride(opacity=0.25)}
    assert not data_with(None).restore_settings()  # live data: no file, nothing to do
    with pytest.raises(ValueError, match="live data"):
        data_with(None).save_settings()


def test_density_marks_count_frames_per_entity():
    chunks = [image_chunk("a", np.zeros((2, 2), np.uint8), L8, step=s) for s in (0, 1, 2, 3, 9)]
    chunks += [image_chunk("b", np.zeros((2, 2), np.uint8), L8, step=9)]
    d = data_with(None, *chunks)
    marks = d.density("step", 0, 9, 4)
    assert marks["/a"].tolist() == [3, 1, 0, 1]
    assert marks["/b"].tolist() == [0, 0, 0, 1]


def test_timeline_marks_are_runs_of_one_colour_worked_out_once_per_count():
    """The marks drawn as runs of equal-colour bins give every bin the colour the per-bin
    rule gives it (90 + 165 * count / max), and are recomputed only for a new count."""
    panels = Panels(viewer=None)
    panels._mark_colors = list(range(256))  # colour = alpha: no imgui context needed
    rng = np.random.default_rng(3)
    steady = np.full(64, 2, np.int64)  # a steady stream: one run
    steady[40:44] = 0  # a gap
    dens = {"/steady": steady, "/noisy": rng.integers(0, 4, 200), "/none": np.zeros(8, np.int64)}
    rows = panels._mark_runs(dens)
    assert [(e, total) for e, total, _ in rows] == [(e, int(c.sum())) for e, c in dens.items()]
    for (ent, _, runs), counts in zip(rows, dens.values()):
        shown = {}
        for i0, i1, color in runs:
            assert i0 < i1
            shown.update({i: color for i in range(i0, i1)})
        top = max(1, int(counts.max()))
        assert shown == {i: 90 + int(165 * counts[i] / top) for i in range(counts.size) if counts[i]}, ent
    assert [len(runs) for _, _, runs in rows][0::2] == [2, 0]  # the steady entity: 2 runs around its gap
    assert panels._mark_runs(dens) is rows  # the same count: nothing recomputed
    again = panels._mark_runs(dict(dens))
    assert again is not rows and again == rows


def test_live_ingest_keeps_the_timeline_ranges_without_walking_the_store():
    """While data streams in, each ingest extends the cached ranges: the store's summary
    (a walk over every chunk it ever held) is not asked again, and the answer is the one
    the store gives. A drop, a new timeline or a refused chunk falls back to the store."""
    store = ChunkStore(memory_limit=None)
    d = ViewerData(store)
    d.ingest([image_chunk("a", np.zeros((2, 2), np.uint8), L8, step=5)])
    asked = []
    walk = store.timelines
    store.timelines = lambda: asked.append(1) or walk()

    def truth():
        return [(n, k, lo, hi) for n, (k, lo, hi) in
                ((n, (i.kind, int(i.min), int(i.max))) for n, i in walk().items())]

    assert [(i.name, i.kind, i.lo, i.hi) for i in d.timelines()] == truth() == [("step", "sequence", 5, 5)]
    for step in (7, 3, 12, 6):  # out of order too: both ends move
        d.ingest([image_chunk("a", np.zeros((2, 2), np.uint8), L8, step=step),
                  image_chunk("b", np.zeros((2, 2), np.uint8), L8, step=step + 1)])
        d.sync_playback()
        assert [(i.name, i.kind, i.lo, i.hi) for i in d.timelines()] == truth()
    assert len(asked) == 1 and d.timelines()[0].hi == 13
    d.ingest([image_chunk("a", np.zeros((2, 2), np.uint8), L8, step=None)])  # static rows: no timeline
    assert [(i.lo, i.hi) for i in d.timelines()] == [(3, 13)] and len(asked) == 1
    frame = image_chunk("c", np.zeros((2, 2), np.uint8), L8, step=1)
    frame.timelines["frame"] = frame.timelines.pop("step")  # a new timeline: asked
    d.ingest([frame])
    assert [(i.name, i.lo, i.hi) for i in d.timelines()] == [(n, lo, hi) for n, _, lo, hi in truth()]
    assert len(asked) == 2 and [i.name for i in d.timelines()] == ["frame", "step"]
    store.set_memory_limit(1)  # every chunk dropped: the store is asked again
    assert [(i.name, i.lo, i.hi) for i in d.timelines()] == [(n, lo, hi) for n, _, lo, hi in truth()]
    assert len(asked) == 3


def test_loop_wraps_to_the_start():
    d = data_with(None, *(image_chunk("a", np.zeros((2, 2), np.uint8), L8, step=s) for s in range(5)))
    info = d.sync_playback()
    pb = d.playback
    pb.follow, pb.playing, pb.loop, pb.time = False, True, True, 3
    pb.advance(0.2, info)  # 2 steps at 10 steps/s: past the end
    assert pb.time == 0 and pb.playing


def test_recordings_are_listed_not_merged():
    one = data_with(None, image_chunk("cam", np.zeros((2, 2), np.uint8), L8, step=0))
    two = data_with(None, image_chunk("cam", np.ones((2, 2), np.uint8), L8, step=0))
    recs = Recordings([one, two])
    assert recs.current is one
    recs.activate(1)
    assert recs.current is two and recs.version == 1
    one.sync_playback()
    two.sync_playback()
    assert one.layers()[0].buffer.tolist() == [0, 0, 0, 0]
    assert two.layers()[0].buffer.tolist() == [1, 1, 1, 1]
    with pytest.raises(IndexError, match="recording 5"):
        recs.activate(5)


def test_a_recording_that_gets_its_first_data_becomes_active_unless_the_user_chose():
    file_rec = data_with(None, image_chunk("cam", np.zeros((2, 2), np.uint8), L8, step=0))
    live = ViewerData(ChunkStore(memory_limit=None), name="live")
    recs = Recordings([file_rec, live])
    assert not recs.follow_new_data() and recs.current is file_rec  # live has nothing yet
    live.ingest([image_chunk("cam", np.ones((2, 2), np.uint8), L8, step=0)])
    assert recs.follow_new_data() and recs.current is live
    assert not recs.follow_new_data()  # only the first data switches
    other = recs.add(ViewerData(ChunkStore(memory_limit=None), name="second live"))
    recs.activate(0)
    recs.user_chose = True
    other.ingest([image_chunk("cam", np.ones((2, 2), np.uint8), L8, step=0)])
    assert not recs.follow_new_data() and recs.current is file_rec  # the user's choice stands
