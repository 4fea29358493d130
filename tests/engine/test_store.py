"""Store semantics (contract §5): latest-at and range, as a table of hand-written cases.

Each case ingests chunks in a stated order, asks one question and names the row that
must answer it by its row-id counter (see store_helpers.mk), or None.
"""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest
from store_helpers import VALUE, mk, one_blob_column

from pixelrun.engine.chunk import IMAGE_BUFFER
from pixelrun.engine.store.store import ChunkStore, parse_memory_limit

ALL = None  # keep every component


def _store(*chunks) -> ChunkStore:
    s = ChunkStore(memory_limit=None, keep_components=ALL)
    for c in chunks:
        s.add_chunk(c)
    return s


def _counter(hit):
    return None if hit is None else hit.row_id & ((1 << 64) - 1)


# (name, chunks in ingest order, (timeline, t), expected row counter or None)
LATEST_AT_CASES = [
    (
        "temporal only: latest time <= t",
        [mk("e", [1, 2, 3], {"step": [10, 20, 30]}, {VALUE: [1, 2, 3]})],
        ("step", 25),
        2,
    ),
    (
        "exactly at a time point",
        [mk("e", [1, 2, 3], {"step": [10, 20, 30]}, {VALUE: [1, 2, 3]})],
        ("step", 30),
        3,
    ),
    (
        "before the first time point: nothing",
        [mk("e", [1, 2], {"step": [10, 20]}, {VALUE: [1, 2]})],
        ("step", 9),
        None,
    ),
    (
        "static shadows temporal (static logged first)",
        [mk("e", [1], None, {VALUE: [1]}), mk("e", [2, 3], {"step": [10, 20]}, {VALUE: [2, 3]})],
        ("step", 20),
        1,
    ),
    (
        "static logged after temporal still wins",
        [mk("e", [1, 2], {"step": [10, 20]}, {VALUE: [1, 2]}), mk("e", [3], None, {VALUE: [3]})],
        ("step", 15),
        3,
    ),
    (
        "static wins even before the first temporal time point",
        [mk("e", [2], {"step": [10]}, {VALUE: [2]}), mk("e", [3], None, {VALUE: [3]})],
        ("step", -100),
        3,
    ),
    (
        "last static wins",
        [mk("e", [1], None, {VALUE: [1]}), mk("e", [5], None, {VALUE: [5]})],
        ("step", 0),
        5,
    ),
    (
        "last static wins by row id, not by arrival",
        [mk("e", [5], None, {VALUE: [5]}), mk("e", [1], None, {VALUE: [1]})],
        ("step", 0),
        5,
    ),
    (
        "several static rows in one chunk: greatest row id",
        [mk("e", [4, 9, 6], None, {VALUE: [4, 9, 6]})],
        ("step", 0),
        9,
    ),
    (
        "same time, different row ids: greatest row id",
        [mk("e", [7], {"step": [5]}, {VALUE: [7]}), mk("e", [3], {"step": [5]}, {VALUE: [3]})],
        ("step", 5),
        7,
    ),
    (
        "same time, different row ids within one chunk",
        [mk("e", [3, 8, 4], {"step": [5, 5, 5]}, {VALUE: [3, 8, 4]})],
        ("step", 6),
        8,
    ),
    (
        "out-of-order rows within a chunk",
        [mk("e", [1, 2, 3], {"step": [50, 10, 30]}, {VALUE: [1, 2, 3]})],
        ("step", 40),
        3,
    ),
    (
        "out-of-order rows within a chunk, before the middle",
        [mk("e", [1, 2, 3], {"step": [50, 10, 30]}, {VALUE: [1, 2, 3]})],
        ("step", 29),
        2,
    ),
    (
        "chunks ingested out of time order",
        [
            mk("e", [5, 6], {"step": [100, 110]}, {VALUE: [5, 6]}),
            mk("e", [1, 2], {"step": [10, 20]}, {VALUE: [1, 2]}),
            mk("e", [3], {"step": [60]}, {VALUE: [3]}),
        ],
        ("step", 99),
        3,
    ),
    (
        "an older row id at a later time wins (time first, then row id)",
        [mk("e", [9], {"step": [10]}, {VALUE: [9]}), mk("e", [2], {"step": [20]}, {VALUE: [2]})],
        ("step", 20),
        2,
    ),
    (
        "several timelines: each row on its own timeline time",
        [mk("e", [1, 2], {"step": [10, 20], "t": ("duration", [2000, 1000])}, {VALUE: [1, 2]})],
        ("t", 1500),
        2,
    ),
    (
        "several timelines: the other one",
        [mk("e", [1, 2], {"step": [10, 20], "t": ("duration", [2000, 1000])}, {VALUE: [1, 2]})],
        ("step", 15),
        1,
    ),
    (
        "a chunk without the queried timeline is invisible on it",
        [
            mk("e", [1], {"step": [10], "t": ("duration", [5])}, {VALUE: [1]}),
            mk("e", [2], {"step": [20]}, {VALUE: [2]}),
        ],
        ("t", 10**12),
        1,
    ),
    (
        "an unknown timeline: nothing temporal",
        [mk("e", [1], {"step": [10]}, {VALUE: [1]})],
        ("frame", 10),
        None,
    ),
    (
        "an unknown timeline still sees static",
        [mk("e", [1], {"step": [10]}, {VALUE: [1]}), mk("e", [2], None, {VALUE: [2]})],
        ("frame", 10),
        2,
    ),
    (
        "component on only some rows: null rows do not carry it",
        [mk("e", [1, 2, 3], {"step": [10, 20, 30]}, {VALUE: [1, None, None]})],
        ("step", 30),
        1,
    ),
    (
        "an empty batch is a value (a clear), not a gap",
        [mk("e", [1, 2], {"step": [10, 20]}, {VALUE: [1, []]})],
        ("step", 25),
        2,
    ),
    (
        "timeline None: static only",
        [mk("e", [1], {"step": [10]}, {VALUE: [1]})],
        (None, 10),
        None,
    ),
    (
        "t None: the latest on the timeline",
        [mk("e", [1, 2], {"step": [30, 10]}, {VALUE: [1, 2]})],
        ("step", None),
        1,
    ),
    (
        "other entities do not leak in",
        [mk("e", [1], {"step": [10]}, {VALUE: [1]}), mk("e/child", [2], {"step": [20]}, {VALUE: [2]})],
        ("step", 30),
        1,
    ),
]


@pytest.mark.parametrize("name,chunks,query,expected", LATEST_AT_CASES, ids=[c[0] for c in LATEST_AT_CASES])
def test_latest_at_table(name, chunks, query, expected):
    s = _store(*chunks)
    timeline, t = query
    hit = s.latest_at("e", [VALUE], timeline, t).get(VALUE)
    assert _counter(hit) == expected
    if hit is not None:
        # the value is the one logged on that row (the tests log the counter itself)
        vals = hit.values.to_pylist()
        assert vals in ([expected], [])


def test_latest_at_returns_time_and_static_flag():
    s = _store(
        mk("e", [1, 2], {"step": [10, 20]}, {VALUE: [1, 2]}),
        mk("f", [3], None, {VALUE: [3]}),
    )
    h = s.latest_at("e", VALUE, "step", 15)[VALUE]
    assert (h.time, h.is_static, h.row_id) == (10, False, (1000 << 64) | 1)
    g = s.latest_at("/f/", VALUE, "step", 15)[VALUE]
    assert (g.time, g.is_static) == (None, True)


def test_components_resolve_independently():
    a = mk("e", [1, 2], {"step": [10, 20]}, {VALUE: [1, 2], "Other:x": [100, None]})
    s = _store(a, mk("e", [3], None, {"Other:x": [300]}))
    hits = s.latest_at("e", [VALUE, "Other:x", "Missing:y"], "step", 20)
    assert _counter(hits[VALUE]) == 2
    assert _counter(hits["Other:x"]) == 3  # static
    assert "Missing:y" not in hits


# ------------------------------------------------------------------------ range


def test_range_in_time_then_row_id_order_inclusive():
    s = _store(
        mk("e", [5, 6], {"step": [30, 20]}, {VALUE: [5, 6]}),
        mk("e", [1, 2, 3], {"step": [10, 20, 40]}, {VALUE: [1, 2, None]}),
    )
    r = s.range("e", VALUE, "step", 20, 30)
    assert r.times.tolist() == [20, 20, 30]
    assert [_counter(h) for h in r] == [2, 6, 5]
    assert [h.values.to_pylist() for h in r] == [[2], [6], [5]]


def test_range_empty_and_unknown():
    s = _store(mk("e", [1], {"step": [10]}, {VALUE: [1]}))
    assert len(s.range("e", VALUE, "step", 11, 20)) == 0
    assert len(s.range("e", VALUE, "nope", 0, 20)) == 0
    assert len(s.range("nobody", VALUE, "step", 0, 20)) == 0


def test_range_static_shadows():
    s = _store(mk("e", [1, 2], {"step": [10, 20]}, {VALUE: [1, 2]}), mk("e", [3], None, {VALUE: [3]}))
    r = s.range("e", VALUE, "step", 0, 100)
    assert len(r) == 1 and r.static is not None and _counter(r.hit(0)) == 3


# --------------------------------------------------------------- overview queries


def test_entities_tree_timelines_counts():
    s = _store(
        mk("world/cam", [1, 2], {"step": [3, 9], "t": ("timestamp", [50, 70])}, {VALUE: [1, 2]}),
        mk("/world/cam/depth", [3], {"step": [-4]}, {VALUE: [3]}),
        mk("other", [4], None, {VALUE: [4]}),
    )
    assert s.entities() == ["/other", "/world/cam", "/world/cam/depth"]
    assert s.entities(under="world/cam") == ["/world/cam", "/world/cam/depth"]
    assert s.entities(under="/world/ca") == []  # a subtree is whole path parts
    assert s.entity_tree() == {"other": {}, "world": {"cam": {"depth": {}}}}
    tl = s.timelines()
    assert sorted(tl) == ["step", "t"]
    assert (tl["step"].kind, tl["step"].min, tl["step"].max, tl["step"].rows) == ("sequence", -4, 9, 3)
    assert (tl["t"].kind, tl["t"].min, tl["t"].max) == ("timestamp", 50, 70)
    info = {e.path: e for e in s.entity_info()}
    assert (info["/world/cam"].rows, info["/world/cam"].static_rows) == (2, 0)
    assert (info["/other"].rows, info["/other"].static_rows) == (1, 1)
    # bytes: at least the int64 values of the component column (8 bytes per value)
    assert info["/world/cam"].nbytes >= 2 * 8
    assert s.num_rows == 4 and s.num_chunks == 3


def test_unknown_components_skipped_with_a_note():
    from pixelrun.engine.chunk import IMAGE_OPACITY

    s = ChunkStore(memory_limit=None)  # default: the Image archetype only
    rep = s.add_chunk(mk("e", [1, 2], {"step": [1, 2]},
                         {"Points2D:positions": [1, 2],
                          IMAGE_OPACITY: pa.array([[0.5], [1.0]], pa.list_(pa.float32()))}))
    rep2 = s.add_chunk(mk("e", [3], {"step": [3]}, {"Points2D:positions": [3]}))
    assert len(rep.notes) == 1 and "Points2D:positions" in rep.notes[0] and "/e" in rep.notes[0]
    assert rep2.notes == []  # one note per (entity, component), not per chunk
    assert s.skipped_components() == {("/e", "Points2D:positions"): 3}
    assert s.latest_at("e", "Points2D:positions", "step", 5) == {}
    assert _counter(s.latest_at("e", IMAGE_OPACITY, "step", 5)[IMAGE_OPACITY]) == 2


def test_mismatched_column_length_is_a_problem_not_a_crash():
    bad = mk("e", [1, 2], {"step": [1, 2]}, {VALUE: [1, 2]})
    bad.components[VALUE] = bad.components[VALUE].slice(0, 1)
    s = ChunkStore(memory_limit=None, keep_components=ALL)
    rep = s.add_chunk(bad)
    assert rep.chunks == 0 and len(rep.problems) == 1
    assert "/e" in rep.problems[0] and "1 rows, expected 2" in rep.problems[0]


def test_superseded_static_chunk_is_released():
    s = _store(mk("e", [1], None, {VALUE: [1]}))
    rep = s.add_chunk(mk("e", [2], None, {VALUE: [2]}))
    assert [d.reason for d in rep.dropped] == ["superseded static"]
    assert s.num_chunks == 1 and _counter(s.latest_at("e", VALUE, "x", 0)[VALUE]) == 2
    # a static chunk that still wins one component is kept
    s2 = _store(mk("e", [1], None, {VALUE: [1], "B:b": [1]}))
    s2.add_chunk(mk("e", [2], None, {VALUE: [2]}))
    assert s2.num_chunks == 2
    assert _counter(s2.latest_at("e", "B:b", None, None)["B:b"]) == 1


# ------------------------------------------------------------------ memory limit


@pytest.mark.parametrize(
    "text,expected",
    [
        (None, None),
        (1234, 1234),
        ("2GB", 2 * 1000**3),
        ("512MiB", 512 * 1024**2),
        ("1.5 kB", 1500),
        ("10b", 10),
    ],
)
def test_parse_memory_limit(text, expected):
    assert parse_memory_limit(text) == expected


def test_parse_memory_limit_percent_and_errors():
    import os

    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert parse_memory_limit("50%") == int(ram * 0.5)
    assert ChunkStore().memory_limit == int(ram * 0.75)  # the default
    for bad in ("lots", "-5", "5 parsecs", -1, True):
        with pytest.raises(ValueError, match="memory limit"):
            parse_memory_limit(bad)


def test_limit_drops_oldest_temporal_keeps_static():
    from store_helpers import frame_chunk

    s = ChunkStore(memory_limit=10_000, keep_components=ALL)
    s.add_chunk(mk("cfg", [0], None, {VALUE: [7]}))
    static_bytes = s.held_bytes
    dropped = []
    for i in range(1, 21):
        rep = s.add_chunk(frame_chunk("cam", i, i, 3000, i))
        dropped += rep.dropped
        assert s.held_bytes <= 10_000
    # 3000-byte frames plus the small static: at most 3 frames fit under 10 000
    kept = s.range("cam", "Image:buffer", "step", 0, 100)
    steps = kept.times.tolist()
    assert steps == list(range(21 - len(steps), 21)) and len(steps) == 3
    assert [d.reason for d in dropped] == ["memory limit"] * 17
    assert [d.time_ranges["step"] for d in dropped] == [(i, i) for i in range(1, 18)]
    assert s.dropped[-1].entity == "/cam"
    assert s.dropped_totals == {"chunks": 17, "rows": 17, "bytes": sum(d.nbytes for d in dropped)}
    assert _counter(s.latest_at("cfg", VALUE, "step", 0)[VALUE]) == 0
    assert s.held_bytes >= static_bytes
    # the newest frame holds its own bytes
    blob = s.latest_at("cam", "Image:buffer", "step", 100)["Image:buffer"].values[0].values
    assert np.all(blob.to_numpy() == 20)
    # lowering the limit drops more; static data stays even past the limit
    s.set_memory_limit(1)
    assert s.range("cam", "Image:buffer", "step", 0, 100).times.tolist() == []
    assert s.latest_at("cfg", VALUE, None, None)


def test_oldest_by_row_id_not_by_arrival():
    from store_helpers import frame_chunk

    s = ChunkStore(memory_limit=7000, keep_components=ALL)
    s.add_chunk(frame_chunk("cam", 5, 5, 3000, 5))
    s.add_chunk(frame_chunk("cam", 1, 1, 3000, 1))  # logged earlier, arrived later
    s.add_chunk(frame_chunk("cam", 9, 9, 3000, 9))
    assert s.range("cam", "Image:buffer", "step", 0, 100).times.tolist() == [5, 9]


def test_accounting_counts_shared_buffers_once():
    payload = np.arange(4096, dtype=np.uint8)
    buf = pa.py_buffer(payload)
    s = ChunkStore(memory_limit=None, keep_components=ALL)
    for i in range(4):
        # four chunks whose values are views into the same 4096-byte buffer
        leaf = pa.Array.from_buffers(pa.uint8(), 1024, [None, buf], offset=1024 * i)
        col = pa.ListArray.from_arrays(pa.array([0, 1024], pa.int32()), leaf)
        s.add_chunk(mk("e", [i], {"step": [i]}, {VALUE: col}))
    counted = s.held_bytes
    # the shared buffer once plus small per-chunk offsets / row ids / times
    assert 4096 <= counted < 4096 + 4 * 200


# ------------------------------------------------------------------ threads


def test_concurrent_ingest_and_query():
    s = ChunkStore(memory_limit=None, keep_components=ALL)
    n = 300
    errors = []

    def ingest():
        for i in range(n):
            s.add_chunk(mk("e", [i], {"step": [i]}, {VALUE: [i]}))

    def query():
        last = -1
        try:
            for _ in range(2000):
                h = s.latest_at("e", VALUE, "step", None).get(VALUE)
                if h is None:
                    continue
                v = h.values.to_pylist()[0]
                # the answer is a whole row, and never goes back in time
                assert v == h.time and v >= last
                last = v
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=ingest)] + [threading.Thread(target=query) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert s.latest_at("e", VALUE, "step", None)[VALUE].time == n - 1
    assert len(s.range("e", VALUE, "step", 0, n)) == n


def test_views_into_a_much_larger_message_are_copied_out_tight():
    """A chunk whose arrays use 1 kB of a 1 MB decoded message must not hold the 1 MB."""
    from pixelrun.engine.chunk import IMAGE_BUFFER, IMAGE_FORMAT

    message = pa.py_buffer(np.arange(1 << 20, dtype=np.uint32).astype(np.uint8))
    leaf = pa.Array.from_buffers(pa.uint8(), 1000, [None, message.slice(5000, 1000)])
    inner = pa.ListArray.from_arrays(pa.array([0, 600, 1000], pa.int32()), leaf)
    buf_col = pa.ListArray.from_arrays(pa.array([0, 1, 1, 2], pa.int32()), inner,
                                       mask=pa.array([False, True, False]))
    from store_helpers import format_column

    fmt_col = format_column([{"width": 600, "height": 1, "color_model": 1, "channel_datatype": 6}, None,
                             {"width": 20, "height": 20, "pixel_format": 26}])
    chunk = mk("e", [1, 2, 3], {"step": [1, 2, 3]}, {IMAGE_BUFFER: buf_col, IMAGE_FORMAT: fmt_col})
    want = {k: v.to_pylist() for k, v in chunk.components.items()}
    s = ChunkStore(memory_limit=None)
    s.add_chunk(chunk)
    assert s.held_bytes < 8000  # 1000 bytes of pixels plus small columns, not 1 MB
    for comp, rows in want.items():
        got = s.range("e", comp, "step", 0, 10)
        assert [h.values.to_pylist() for h in got] == [r for r in rows if r is not None]
    assert s.latest_at("e", IMAGE_BUFFER, "step", 2)[IMAGE_BUFFER].time == 1  # row 2 is null


def test_a_nonsensical_chunk_is_a_problem_and_the_rest_is_kept():
    bad = mk("bad", [1, 2], {"step": [1, 2]}, {VALUE: [1, 2]})
    bad.row_ids = np.zeros((2, 3), np.uint64)  # not (n, 2)
    good = mk("good", [3], {"step": [1]}, {VALUE: [3]})
    s = ChunkStore(memory_limit=None, keep_components=ALL)
    rep = s.add_chunks([bad, good])
    assert s.entities() == ["/good"]
    assert len(rep.problems) == 1 and rep.problems[0].startswith("bad: chunk skipped") and "(2, 3)" in rep.problems[0]


def test_timelines_follow_chunks_as_they_come_and_are_dropped():
    """The summary is kept as chunks come and go (not recomputed per call): after every
    ingest it equals the ranges of the chunks still held, computed here from what was
    added minus what the store reported dropped."""

    rng = np.random.default_rng(7)
    s = ChunkStore(memory_limit=20_000, keep_components=ALL)
    added: dict[str, dict] = {}  # entity -> {timeline: (values)}
    dropped: set[str] = set()
    for i in range(200):
        n = int(rng.integers(1, 4))
        steps = rng.integers(-1000, 1000, n).tolist()
        tls = {"step": steps}
        if i % 3 == 0:  # a second timeline on some chunks only
            tls["t"] = ("timestamp", rng.integers(0, 10**9, n).tolist())
        entity = f"/cam{i}"
        blob = one_blob_column(np.full(int(rng.integers(500, 4000)), i % 256, np.uint8))
        comps = {IMAGE_BUFFER: pa.concat_arrays([blob] * n)}
        rep = s.add_chunk(mk(entity, list(range(3 * i, 3 * i + n)), tls, comps))
        dropped |= {d.entity for d in rep.dropped}
        added[entity] = {k: (v[1] if isinstance(v, tuple) else v) for k, v in tls.items()}
        held = [tl for e, tl in added.items() if e not in dropped]
        expect = {}
        for name in ("step", "t"):
            vals = [v for tl in held if name in tl for v in tl[name]]
            if vals:
                expect[name] = (min(vals), max(vals), len(vals))
        got = {k: (v.min, v.max, v.rows) for k, v in s.timelines().items()}
        assert got == expect, i
    assert len(dropped) > 100  # the limit did drop most of them
