"""The store reading .rrd recordings: files written by Rerun 0.41, and broken ones.

Fixtures (tests/engine/fixtures/) are made by make_rerun_fixtures.py with the real
rerun-sdk 0.41; expected.json holds, for each file, latest-at questions and the exact
images (bytes, format, opacity, draw order) that script logged.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pixelrun.engine.chunk import IMAGE_BUFFER, IMAGE_DRAW_ORDER, IMAGE_FORMAT, IMAGE_OPACITY
from pixelrun.engine.scene import scene_at
from pixelrun.engine.store.store import ChunkStore, StoreWarning

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
QUERIES = [(f, q) for f, qs in EXPECTED["files"].items() for q in qs]


def _load(name: str, **kw) -> ChunkStore:
    s = ChunkStore(memory_limit=None, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)  # the uncompressed copy has no footer
        s.ingest_file(FIXTURES / name)
    return s


_STORES: dict = {}


def _store(name: str) -> ChunkStore:
    if name not in _STORES:
        _STORES[name] = _load(name)
    return _STORES[name]


def _messages(data: bytes):
    """(kind, start offset, end offset) of every message, walked independently of the codec."""
    assert data[:4] == b"RRF2"
    out, i = [], 12
    while i + 16 <= len(data):
        if data[i : i + 4] == b"RRF2":
            i += 12
            continue
        kind, length = struct.unpack_from("<QQ", data, i)
        out.append((kind, i, i + 16 + length))
        i += 16 + length
        if kind == 0:
            i += 32  # stream footer
    return out


# ------------------------------------------------------------- Rerun's own files


def test_every_fixture_file_is_listed():
    on_disk = sorted(p.name for p in FIXTURES.glob("*.rrd"))
    assert on_disk == sorted(EXPECTED["files"])
    assert EXPECTED["rerun_version"].startswith("0.41")


@pytest.mark.parametrize(
    "name,q", QUERIES, ids=[f"{f}:{q['entity']}@{q['timeline']}={q['time']}" for f, q in QUERIES]
)
def test_fixture_decodes_to_what_rerun_logged(name, q):
    store = _store(name)
    hits = store.latest_at(q["entity"], [IMAGE_BUFFER, IMAGE_FORMAT, IMAGE_OPACITY, IMAGE_DRAW_ORDER],
                           q["timeline"], q["time"])
    layers = scene_at(store, q["timeline"], q["time"], entity=q["entity"], problems=[])
    want = q["image"]
    if want is None:
        assert not (IMAGE_BUFFER in hits and IMAGE_FORMAT in hits)
        assert layers == []
        return
    blob = base64.b64decode(want["buffer"])
    got = hits[IMAGE_BUFFER].values[0].values.to_numpy()
    assert got.tobytes() == blob
    fmt = hits[IMAGE_FORMAT].values[0].as_py()
    assert fmt == want["format"]
    assert len(layers) == 1
    (layer,) = layers
    assert layer.entity == q["entity"]
    assert layer.buffer.tobytes() == blob
    assert (layer.format.width, layer.format.height) == (want["format"]["width"], want["format"]["height"])
    for field in ("pixel_format", "color_model", "channel_datatype"):
        v = getattr(layer.format, field)
        assert (None if v is None else int(v)) == want["format"][field]
    assert layer.opacity == (1.0 if want["opacity"] is None else want["opacity"])
    assert layer.draw_order == (-10.0 if want["draw_order"] is None else want["draw_order"])
    assert layer.row_id == hits[IMAGE_BUFFER].row_id


@pytest.mark.parametrize("name", sorted(EXPECTED["skipped_entities"]))
def test_unknown_archetypes_are_skipped_with_a_note(name):
    s = ChunkStore(memory_limit=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        rep = s.ingest_file(FIXTURES / name)
    for ent in EXPECTED["skipped_entities"][name]:
        assert any(n.startswith(ent + ":") for n in rep.notes), (ent, rep.notes)
        assert ent not in s.entities()


def test_uncompressed_and_compressed_copies_agree():
    a, b = _store("rerun_logged.rrd"), _store("rerun_logged_uncompressed.rrd")
    assert a.entities() == b.entities()
    assert ({k: (v.min, v.max) for k, v in a.timelines().items()}
            == {k: (v.min, v.max) for k, v in b.timelines().items()})


def test_keep_everything_lists_every_component():
    s = _load("rerun_logged.rrd", keep_components=None)
    comps = {c for e in s.entity_info() for c in e.components}
    assert {"Points2D:positions", "TextLog:text", IMAGE_BUFFER, IMAGE_OPACITY} <= comps


# ------------------------------------------------------------ sources of bytes


def test_bytes_stream_and_recording_sources_match_the_file():
    data = (FIXTURES / "rerun_formats.rrd").read_bytes()

    class Rec:
        def rrd_bytes(self):
            return data

    stores = [ChunkStore(memory_limit=None) for _ in range(4)]
    stores[0].ingest_file(FIXTURES / "rerun_formats.rrd")
    stores[1].ingest_bytes(data)
    stores[2].ingest_recording(Rec())
    stores[3].ingest_stream(io.BytesIO(data), read_size=777)  # messages split across reads
    want = stores[0].range("formats", IMAGE_BUFFER, "step", -10, 100)
    for s in stores[1:]:
        got = s.range("formats", IMAGE_BUFFER, "step", -10, 100)
        assert got.times.tolist() == want.times.tolist()
        assert [h.values.to_pylist() for h in got] == [h.values.to_pylist() for h in want]
    with pytest.raises(TypeError, match="rrd_bytes"):
        stores[0].ingest_recording(object())


def test_missing_file_raises_oserror_naming_it():
    with pytest.raises(OSError, match="nope.rrd"):
        ChunkStore().ingest_file(FIXTURES / "nope.rrd")


# ------------------------------------------------------------ broken files


def test_truncation_at_every_byte_offset():
    data = (FIXTURES / "rerun_formats.rrd").read_bytes()
    msgs = _messages(data)
    chunk_ends = [end for kind, _, end in msgs if kind == 2]
    # rows of each chunk, from the intact file
    full = ChunkStore(memory_limit=None, keep_components=None)
    full.ingest_bytes(data)
    n_chunks = full.num_chunks
    assert n_chunks == len(chunk_ends)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        for cut in range(len(data) + 1):
            s = ChunkStore(memory_limit=None, keep_components=None)
            rep = s.ingest_bytes(data[:cut])  # must never raise
            complete = sum(1 for e in chunk_ends if e <= cut)
            assert s.num_chunks == complete, cut
            if cut < msgs[-1][2]:
                assert rep.problems, cut  # a file short of a message always says so


def test_stream_split_at_every_offset_loses_nothing():
    data = (FIXTURES / "rerun_formats.rrd").read_bytes()
    want = None
    for cut in range(len(data) + 1):
        s = ChunkStore(memory_limit=None, keep_components=None)
        r1 = s.feed(data[:cut])
        r2 = s.feed(data[cut:])
        r3 = s.close_stream()
        assert r1.problems == r2.problems == r3.problems == []
        got = (s.num_chunks, s.num_rows)
        want = want or got
        assert got == want == (2, 33)


def test_corrupt_message_names_its_offset_and_the_rest_is_read():
    data = bytearray((FIXTURES / "rerun_logged.rrd").read_bytes())
    intact = _store("rerun_logged.rrd")
    # corrupt the body of the /cam chunk: find the ArrowMsg whose payload decodes to /cam
    target = None
    for kind, start, end in _messages(bytes(data)):
        if kind != 2:
            continue
        s = ChunkStore(memory_limit=None, keep_components=None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StoreWarning)  # a lone message has no footer
            s.ingest_bytes(bytes(data[:12]) + bytes(data[start:end]))
        if s.entities() == ["/cam"]:
            target = (start, end)
    assert target is not None
    start, end = target
    data[start + 16 : end] = bytes(end - start - 16)  # zeros: framing intact, body garbage
    s = ChunkStore(memory_limit=None)
    with pytest.warns(StoreWarning, match=f"byte {start}"):
        rep = s.ingest_bytes(bytes(data))
    assert any(f"byte {start}" in p for p in rep.problems)
    assert "/cam" not in s.entities()
    assert s.entities() == [e for e in intact.entities() if e != "/cam"]
    for ent in s.entities():  # everything else answers as before
        a = s.latest_at(ent, IMAGE_BUFFER, "step", 100).get(IMAGE_BUFFER)
        b = intact.latest_at(ent, IMAGE_BUFFER, "step", 100).get(IMAGE_BUFFER)
        assert (a is None) == (b is None)
        if a is not None:
            assert a.values.to_pylist() == b.values.to_pylist()


@pytest.mark.parametrize("claim", [1 << 40, (1 << 64) - 1])
def test_absurd_length_is_refused_without_allocating(claim):
    data = (FIXTURES / "rerun_formats.rrd").read_bytes()
    first_end = _messages(data)[0][2]
    evil = data[:first_end] + struct.pack("<QQ", 2, claim) + b"\x00" * 64
    s = ChunkStore(memory_limit=None)
    with pytest.warns(StoreWarning, match=f"byte {first_end}"):
        rep = s.ingest_bytes(evil)
    assert any(str(claim) in p for p in rep.problems)


def test_garbage_is_not_a_recording():
    s = ChunkStore(memory_limit=None)
    with pytest.warns(StoreWarning, match="not an .rrd"):
        rep = s.ingest_bytes(b"PNG\x00" * 10)
    assert s.num_chunks == 0 and rep.problems


_CORPORA = {
    name: (FIXTURES / name).read_bytes()
    for name in ("rerun_logged_uncompressed.rrd", "rerun_logged.rrd")
}


@pytest.mark.parametrize("name", sorted(_CORPORA))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(edits=[(0.37599489569182915, 0)], keep=1.0)  # a format struct losing `height`
@given(
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=12),
    keep=st.floats(0.5, 1.0),
)
def test_random_corruption_never_crashes(name, edits, keep):
    data = bytearray(_CORPORA[name])
    for where, val in edits:
        data[int(where * len(data))] = val
    s = ChunkStore(memory_limit=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.ingest_bytes(bytes(data[: int(keep * len(data))]))
        # whatever was accepted can be queried and drawn without raising
        for tl in list(s.timelines()) + [None]:
            for t in (None, 0, 3, 10**18):
                scene_at(s, tl, t, problems=[])


def test_file_reader_truncated_and_damaged_files(tmp_path):
    """The file path (whole-message groups read into a reused buffer) against the same
    truncations as the byte path, plus a damaged header that ends the grouping."""
    data = (FIXTURES / "rerun_logged.rrd").read_bytes()
    msgs = _messages(data)
    chunk_ends = [end for kind, _, end in msgs if kind == 2]
    boundaries = sorted({e + d for _, _, e in msgs for d in (-1, 0, 1)} | set(range(0, len(data), 499)))
    path = tmp_path / "cut.rrd"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        for cut in [b for b in boundaries if 0 <= b <= len(data)]:
            path.write_bytes(data[:cut])
            for block in (1, 1 << 20):  # one message per read, and all at once
                s = ChunkStore(memory_limit=None, keep_components=None)
                s.ingest_file(path, read_size=block)
                assert s.num_chunks == sum(1 for e in chunk_ends if e <= cut), (cut, block)
        # a header claiming more bytes than the file has, in the middle of the file:
        # the footer's (checksummed) index knows the real length, so nothing is lost
        kind, start, end = msgs[len(msgs) // 2]
        assert kind == 2
        bad = bytearray(data)
        struct.pack_into("<Q", bad, start + 8, len(data) * 10)
        path.write_bytes(bytes(bad))
        s = ChunkStore(memory_limit=None, keep_components=None)
        rep = s.ingest_file(path, read_size=1)
        assert any(f"byte {start}: message header damaged" in p for p in rep.problems), rep.problems
        assert s.num_chunks == len(chunk_ends)
        # without a footer the decoder finds the next message after the damaged one
        path.write_bytes(bytes(bad[: msgs[-1][1]]))
        for block in (1, 1 << 20):
            s = ChunkStore(memory_limit=None, keep_components=None)
            rep = s.ingest_file(path, read_size=block)
            assert any(f"at byte {start}" in p for p in rep.problems), rep.problems
            assert any(f"skipped: reading on from the message at byte {end}" in p for p in rep.problems)
            assert s.num_chunks == len(chunk_ends) - 1, block


def test_file_read_in_small_groups_equals_one_read():
    a = ChunkStore(memory_limit=None, keep_components=None)
    a.ingest_file(FIXTURES / "rerun_logged.rrd")
    b = ChunkStore(memory_limit=None, keep_components=None)
    b.ingest_file(FIXTURES / "rerun_logged.rrd", read_size=1)
    assert [(e.path, e.rows) for e in a.entity_info()] == [(e.path, e.rows) for e in b.entity_info()]
    for ent in a.entities(with_component=IMAGE_BUFFER):
        x = a.range(ent, IMAGE_BUFFER, "step", -10, 100)
        y = b.range(ent, IMAGE_BUFFER, "step", -10, 100)
        assert [h.values.to_pylist() for h in x] == [h.values.to_pylist() for h in y]


def test_socket_stream_ingested_while_queried():
    """A viewer's pattern: one thread reads a socket into the store, another draws."""
    import socket
    import threading

    data = (FIXTURES / "rerun_formats.rrd").read_bytes()
    a, b = socket.socketpair()
    store = ChunkStore(memory_limit=None)
    seen, errors = [], []

    def send():
        for i in range(0, len(data), 333):  # small, uneven pieces
            a.sendall(data[i : i + 333])
        a.close()

    def draw():
        try:
            while not done.is_set():
                for layer in scene_at(store, "step", None, problems=[]):
                    seen.append(layer.format.describe())
        except Exception as exc:  # surfaced below
            errors.append(exc)

    done = threading.Event()
    threads = [threading.Thread(target=send), threading.Thread(target=draw)]
    for t in threads:
        t.start()
    rep = store.ingest_stream(b, read_size=1000)
    done.set()
    for t in threads:
        t.join()
    b.close()
    assert errors == [] and rep.problems == []
    assert store.range("formats", IMAGE_BUFFER, "step", 0, 100).times.tolist() == list(range(32))
