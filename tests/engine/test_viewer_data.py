"""The viewer's data side: timeline choice, playback, follow, per-entity overrides."""

from __future__ import annotations

import numpy as np
from viewer_helpers import image_chunk

from pixelrun.engine.store.store import ChunkStore
from pixelrun.engine.viewer.data import EntityOverride, Playback, TimelineInfo, ViewerData, format_time
from pixelrun.kernels.formats import ImageFormat

L8 = ImageFormat(2, 2, color_model="L", channel_datatype="U8")


def data_with(*chunks) -> ViewerData:
    d = ViewerData(ChunkStore(memory_limit=None))
    d.ingest(chunks)
    return d


def px(v):
    return np.full((2, 2), v, np.uint8)


def test_follow_newest_tracks_incoming_data():
    d = data_with(image_chunk("cam", px(1), L8, step=3))
    info = d.sync_playback()
    assert (d.playback.timeline, d.playback.time) == ("step", 3)
    d.ingest([image_chunk("cam", px(2), L8, step=7)])
    d.sync_playback()
    assert d.playback.time == 7
    (layer,) = d.layers()
    assert layer.buffer.tolist() == [2, 2, 2, 2]
    assert info.kind == "sequence"


def test_scrubbing_back_shows_older_frames_and_stops_following():
    d = data_with(*(image_chunk("cam", px(10 * i), L8, step=i) for i in range(5)))
    d.sync_playback()
    d.playback.follow = False
    d.playback.time = 2
    d.ingest([image_chunk("cam", px(99), L8, step=9)])
    d.sync_playback()
    assert d.playback.time == 2
    assert d.layers()[0].buffer.tolist() == [20] * 4


def test_listener_called_on_ingest():
    d = data_with()
    hits = []
    d.add_listener(lambda: hits.append(1))
    d.ingest([image_chunk("cam", px(1), L8, step=0)])
    assert hits == [1]


def test_playback_speed_and_stop_at_end():
    pb = Playback(timeline="step", time=0, playing=True, follow=False, speed=2.0)
    info = TimelineInfo("step", "sequence", 0, 100)
    assert pb.advance(0.5, info)  # 0.5 s * 10 steps/s * 2 = 10 steps
    assert pb.time == 10
    pb.advance(100.0, info)
    assert pb.time == 100 and not pb.playing


def test_playback_on_a_duration_timeline_is_real_time():
    pb = Playback(timeline="t", time=0, playing=True, follow=False, speed=1.0)
    info = TimelineInfo("t", "duration", 0, 10**10)
    pb.advance(0.25, info)
    assert pb.time == 250_000_000


def test_default_timeline_prefers_user_timelines():
    d = data_with()
    infos = [TimelineInfo("log_time", "timestamp", 0, 1), TimelineInfo("frame", "sequence", 0, 1)]
    assert d.default_timeline(infos) == "frame"
    assert d.default_timeline(infos[:1]) == "log_time"


def test_overrides_hide_reweight_and_reorder():
    d = data_with(image_chunk("a", px(1), L8), image_chunk("b", px(2), L8))
    d.sync_playback()
    assert [l.entity.strip("/") for l in d.layers()] == ["a", "b"]  # equal draw order: path
    d.overrides["/b"] = EntityOverride(draw_order=-20.0)
    d.overrides["/a"] = EntityOverride(opacity=0.25)
    layers = d.layers()
    assert [l.entity.strip("/") for l in layers] == ["b", "a"]
    assert layers[1].opacity == 0.25 and layers[0].draw_order == -20.0
    d.overrides["/a"] = EntityOverride(visible=False)
    assert [l.entity.strip("/") for l in d.layers()] == ["b"]


def test_format_time():
    assert format_time("sequence", 12) == "#12"
    assert format_time("duration", 1_500_000_000) == "1.500 s"
    assert format_time("timestamp", 0) == "1970-01-01 00:00:00.000000Z"


def test_playback_stops_at_the_end_even_when_following():
    pb = Playback(timeline="step", time=95, playing=True, follow=True, speed=1.0)
    pb.advance(1.0, TimelineInfo("step", "sequence", 0, 100))
    assert pb.time == 100 and not pb.playing  # no redraw loop at the end


def test_step_time_moves_between_logged_time_points():
    d = data_with(*(image_chunk("cam", px(t), L8, step=t) for t in (2, 5, 9)))
    d.sync_playback()
    assert d.playback.time == 9
    d.step_time(-1)
    assert d.playback.time == 5 and not d.playback.follow
    d.step_time(-1)
    d.step_time(-1)  # nothing before 2: stays
    assert d.playback.time == 2
    d.step_time(+1)
    assert d.playback.time == 5
