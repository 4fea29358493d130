"""Views (Rerun's default layout rule, grid, per-view pan/zoom, move/split/merge/maximise),
saved settings, timeline marks and the recording list: the viewer's model, no window."""

from __future__ import annotations

import json

import numpy as np
import pytest
from viewer_helpers import image_chunk

from pixelrun.engine.store.store import ChunkStore
from pixelrun.engine.viewer.data import EntityOverride, Recordings, ViewerData, settings_path
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
