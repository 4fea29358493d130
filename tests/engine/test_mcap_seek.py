"""Seeking in a bag larger than the store's memory limit (issue 16, item 4).

The store reads the whole bag under a small limit, so most of it is evicted; every
time point is then rendered and compared with the pixels the fixture wrote (computed
here, never by the code under test) and with a store that has no limit. The store's
held bytes stay under the limit throughout, and its counters show that each query
read back only the MCAP chunks it needed, never the whole file.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("mcap")
pytest.importorskip("mcap_ros2")

from mcap.reader import make_reader

from pixelrun.engine import api
from pixelrun.engine.archetypes import IMAGE
from pixelrun.engine.store.store import ChunkStore
from tests.mcap_fixtures import RawImage, padded, write_ros_bag

T0 = 1_000_000_000
N = 30
A_W, A_H = 64, 48  # mono8, tight rows
B_W, B_H = 33, 17  # rgb8, rows padded to 104 bytes
B_STEP = 104
LOG = "message_log_time"
BUFFER = IMAGE.column("buffer")
RNG = np.random.default_rng(1604)


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    """30 frames of two topics, interleaved in time (/cam/a at T0 + 10 i, /cam/b 5 ns
    later), small MCAP chunks (about one frame of each topic per chunk)."""
    a = RNG.integers(0, 256, (N, A_H, A_W), dtype=np.uint8)
    b = RNG.integers(0, 256, (N, B_H, B_W, 3), dtype=np.uint8)
    msgs, times = [], []
    for i in range(N):
        msgs.append(RawImage("/cam/a", "mono8", A_W, A_H, A_W, a[i].tobytes()))
        times.append(T0 + 10 * i)
        msgs.append(RawImage("/cam/b", "rgb8", B_W, B_H, B_STEP, padded(b[i].reshape(B_H, -1), B_STEP)))
        times.append(T0 + 10 * i + 5)
    path = tmp_path_factory.mktemp("seek") / "seek.mcap"
    write_ros_bag(path, msgs, times=times, chunk_size=4096)
    with open(path, "rb") as f:
        mcap_chunks = len(make_reader(f).get_summary().chunk_indexes)
    return path, a, b, mcap_chunks


def _expected(a, b, topic: str, t: int):
    """The RGBA the topic shows at log time t: its latest frame at or before t (or None)."""
    offset = 0 if topic == "/cam/a" else 5
    i = (t - T0 - offset) // 10
    if i < 0:
        return None
    i = min(i, N - 1)
    rgb = np.stack([a[i]] * 3, -1) if topic == "/cam/a" else b[i]
    out = np.full((*rgb.shape[:2], 4), 255, np.uint8)
    out[..., :3] = rgb
    return out


def _bytes(hit) -> np.ndarray:
    """A buffer hit's bytes (the component batch holds one blob)."""
    return np.asarray(hit.values.flatten(), np.uint8)


LIMIT = 8 * A_W * A_H  # about 8 frames of /cam/a: well under the bag's 60 frames


def _limited(path) -> ChunkStore:
    store = ChunkStore(memory_limit=LIMIT)
    store.ingest_file(str(path))
    assert store.held_bytes <= LIMIT
    assert store.evicted_totals["rows"] > 2 * N // 2  # most of the bag is not held
    assert store.dropped_totals["rows"] == 0  # evicted, not lost: nothing was dropped
    return store


def test_every_time_point_renders_what_the_bag_holds_under_a_small_memory_limit(bag):
    path, a, b, mcap_chunks = bag
    assert mcap_chunks >= N  # the file really is many chunks
    store = _limited(path)
    full = ChunkStore(memory_limit=None)
    full.ingest_file(str(path))
    points = api.time_points(store, LOG)
    assert points.tolist() == api.time_points(full, LOG).tolist()  # evicted rows keep their time points
    assert len(points) == 2 * N
    evicted_at_start, held_at_start = store.evicted_totals["chunks"], store.num_chunks
    for t in points.tolist():
        for topic in ("/cam/a", "/cam/b"):
            want = _expected(a, b, topic, t)
            if want is None:
                assert store.latest_at(topic, [BUFFER], LOG, t) == {}
                continue
            got = api.render(store, entity=topic, timeline=LOG, time=t, backend="numpy")
            np.testing.assert_array_equal(got, want, err_msg=f"{topic} at {t}")
            np.testing.assert_array_equal(got, api.render(full, entity=topic, timeline=LOG, time=t, backend="numpy"))
            assert store.held_bytes <= LIMIT
    # a forward sweep reads each chunk back at most once, one MCAP chunk each: the evicted
    # ones, and those held at the start that were evicted to make room before the sweep got to them
    assert evicted_at_start <= store.reread_totals["chunks"] <= evicted_at_start + held_at_start
    assert store.reread_totals["source_chunks"] == store.reread_totals["chunks"]
    assert full.reread_totals["chunks"] == 0


def test_seeking_to_the_first_frame_reads_one_mcap_chunk_back(bag):
    path, a, b, mcap_chunks = bag
    store = _limited(path)
    size = os.path.getsize(path)
    hit = store.latest_at("/cam/a", [BUFFER], LOG, T0)[BUFFER]
    assert hit.time == T0
    np.testing.assert_array_equal(_bytes(hit).reshape(A_H, A_W), a[0])
    assert store.reread_totals["source_chunks"] == 1  # of mcap_chunks
    assert store.reread_totals["chunks"] == 1
    assert store.reread_totals["bytes"] < size / 10
    # the same query again: it is held now, nothing more is read
    store.latest_at("/cam/a", [BUFFER], LOG, T0)
    assert store.reread_totals["source_chunks"] == 1
    # range() over evicted rows reads them back too: every frame of /cam/b, in order
    r = store.range("/cam/b", BUFFER, LOG, T0, T0 + 10 * N)
    assert r.times.tolist() == [T0 + 10 * i + 5 for i in range(N)]
    for i, h in enumerate(r):
        np.testing.assert_array_equal(_bytes(h), np.frombuffer(padded(b[i].reshape(B_H, -1), B_STEP), np.uint8))
    assert store.held_bytes <= LIMIT


def test_a_bag_changed_after_reading_drops_what_cannot_be_read_again_and_says_so(bag, tmp_path):
    path, a, b, _ = bag
    copy = tmp_path / "copy.mcap"
    copy.write_bytes(path.read_bytes())
    store = ChunkStore(memory_limit=LIMIT)
    store.ingest_file(str(copy))
    os.utime(copy, ns=(0, 0))  # "rewritten": the index may no longer point at the same data
    got = store.latest_at("/cam/a", [BUFFER], LOG, T0)
    assert got == {}  # the first frame is gone for good, and nothing older exists
    assert any("/cam/a" in p and "could not be read again" in p and "changed" in p for p in store.problems)
    assert store.dropped_totals["rows"] >= 1
    assert store.dropped[-1].reason == "re-read failed"
    # the newest frames were never evicted: still shown
    hit = store.latest_at("/cam/a", [BUFFER], LOG, T0 + 10 * (N - 1))[BUFFER]
    np.testing.assert_array_equal(_bytes(hit).reshape(A_H, A_W), a[-1])
