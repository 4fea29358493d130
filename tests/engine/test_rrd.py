"""The .rrd codec: exact framing, round trips, robustness, and the real Rerun 0.41.

Byte layouts asserted here are written out from files rerun-sdk 0.41 wrote.
Interop tests with the real SDK run it as a subprocess from .venv-rerun; they skip
(with the reason) where that environment is missing.
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import lz4.block
import numpy as np
import pytest

from pixelrun.engine import chunk as ch
from pixelrun.engine import rrd
from pixelrun.engine.rrd.footer import FOOTER_CRC_SEED, xxh32
from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat, PixelFormat

ROOT = Path(__file__).resolve().parents[2]
RERUN_PY = ROOT / ".venv-rerun" / "bin" / "python"
RERUN_BIN = ROOT / ".venv-rerun" / "bin" / "rerun"
needs_rerun = pytest.mark.skipif(not RERUN_PY.exists(), reason="real rerun-sdk 0.41 not installed in .venv-rerun")

STORE = rrd.StoreInfo("app", "rec-1")


def _chunk(entity: str, step: int, payload: bytes, cid: int) -> ch.Chunk:
    return ch.Chunk(
        entity,
        np.array([[1000 + cid, cid]], dtype=np.uint64),
        {"step": ch.TimeColumn("sequence", np.array([step]))},
        {ch.IMAGE_BUFFER: ch.buffer_column([payload]),
         ch.IMAGE_FORMAT: ch.format_column([ImageFormat(len(payload), 1, color_model="L", channel_datatype="U8")])},
        (7).to_bytes(8, "big") + cid.to_bytes(8, "big"),
    )


def _stream(n: int = 3, compression: bool = False) -> bytes:
    return rrd.encode_recording(STORE, [_chunk(f"/e{i}", i, bytes([i] * (i + 1)), i + 1) for i in range(n)],
                                compression=compression)


# ------------------------------------------------------------------ exact bytes


def test_stream_header_bytes():
    assert rrd.stream_header(False) == b"RRF2" + bytes([0, 41, 0, 0]) + bytes([0, 2, 0, 0])
    assert rrd.stream_header(True) == b"RRF2" + bytes([0, 41, 0, 0]) + bytes([1, 2, 0, 0])


def test_message_framing_and_footer():
    data = _stream(2)
    assert data[:4] == b"RRF2"
    kind, length = struct.unpack_from("<QQ", data, 12)
    assert kind == 1  # SetStoreInfo first
    pos = 12 + 16 + length
    kinds = [kind]
    while True:
        kind, length = struct.unpack_from("<QQ", data, pos)
        kinds.append(kind)
        if kind == 0:
            end_body = (pos + 16, length)
            pos += 16 + length
            break
        pos += 16 + length
    assert kinds == [1, 2, 2, 0]
    footer = data[pos:]
    assert len(footer) == 32 and footer[20:28] == b"RRF2FOOT" and footer[28:] == struct.pack("<I", 1)
    off, size, crc = struct.unpack_from("<QQI", footer)
    assert (off, size) == end_body
    assert crc == xxh32(data[off:off + size], FOOTER_CRC_SEED)


def test_xxh32_known_vectors():
    # Published xxHash32 test vectors.
    assert xxh32(b"", 0) == 0x02CC5D05
    assert xxh32(b"a", 0) == 0x550D7456
    assert xxh32(b"abc", 0) == 0x32D153FF
    assert xxh32(b"Nobody inspects the spammish repetition", 0) == 0xE2293B2F


# -------------------------------------------------------------------- round trip


@pytest.mark.parametrize("compression", [False, True])
def test_round_trip(compression):
    data = _stream(3, compression)
    rec = rrd.read_rrd(data)
    assert rec.problems == []
    assert rec.has_footer
    assert rec.store_infos[0].application_id == "app" and rec.store_infos[0].recording_id == "rec-1"
    assert [c.entity_path for c in rec.chunks] == ["/e0", "/e1", "/e2"]
    for i, c in enumerate(rec.chunks):
        assert bytes(ch.buffer_row(c.components[ch.IMAGE_BUFFER], 0)) == bytes([i] * (i + 1))
        assert c.timelines["step"].values.tolist() == [i]
        assert c.chunk_id == (7).to_bytes(8, "big") + (i + 1).to_bytes(8, "big")
    infos, chunks, problems = rrd.read_rrd(data)  # tuple-style unpacking
    assert len(chunks) == 3 and problems == []


def test_read_from_path_file_and_memory_object(tmp_path):
    data = _stream(1)
    p = tmp_path / "x.rrd"
    p.write_bytes(data)

    class Mem:
        def rrd_bytes(self):
            return data

    for src in (p, str(p), open(p, "rb"), Mem(), bytearray(data)):
        assert len(rrd.read_rrd(src).chunks) == 1
    with pytest.raises(TypeError, match="rrd_bytes"):
        rrd.read_rrd(12)


def test_incremental_feed_byte_by_byte_equals_whole():
    data = _stream(3)
    dec = rrd.RrdDecoder()
    msgs = []
    for i in range(len(data)):
        msgs.extend(dec.feed(data[i:i + 1]))
    assert dec.finish() == []
    kinds = [type(m).__name__ for m in msgs]
    assert kinds == ["StoreInfoMsg", "ChunkMsg", "ChunkMsg", "ChunkMsg", "EndMsg"]
    assert [m.chunk.entity_path for m in msgs if isinstance(m, rrd.ChunkMsg)] == ["/e0", "/e1", "/e2"]


def test_concatenated_streams():
    data = _stream(2) + rrd.encode_recording(rrd.StoreInfo("app", "rec-2"), [_chunk("/z", 5, b"z", 9)])
    rec = rrd.read_rrd(data)
    assert rec.problems == []
    assert [s.recording_id for s in rec.store_infos] == ["rec-1", "rec-2"]
    assert [c.entity_path for c in rec.chunks_of("rec-2")] == ["/z"]


# -------------------------------------------------------------------- robustness


def test_truncated_anywhere_never_raises_and_keeps_complete_messages():
    data = _stream(3)
    # Offsets where each chunk message ends (complete message boundaries).
    ends, pos = [], 12
    while pos < len(data):
        kind, length = struct.unpack_from("<QQ", data, pos)
        pos += 16 + length
        if kind == 2:
            ends.append(pos)
        if kind == 0:
            break
    for cut in range(0, len(data) - 32):  # every cut before the footer completes
        rec = rrd.read_rrd(data[:cut])
        expected = sum(1 for e in ends if e <= cut)
        assert len(rec.chunks) == expected, cut
        assert rec.problems, cut
        assert any(w in p for p in rec.problems for w in ("truncated", "footer", "empty")), rec.problems


def test_truncation_message_names_offset():
    data = _stream(2)
    cut = len(data) - 100
    rec = rrd.read_rrd(data[:cut])
    assert any(f"ends at byte {cut}" in p for p in rec.problems), rec.problems


def test_corrupt_message_is_skipped_with_offset_and_rest_is_read():
    data = bytearray(_stream(3))
    # Find the second chunk message and scramble its body (keep its framing).
    pos, seen = 12, 0
    while True:
        kind, length = struct.unpack_from("<QQ", data, pos)
        if kind == 2:
            seen += 1
            if seen == 2:
                break
        pos += 16 + length
    data[pos + 16: pos + 16 + length] = b"\xff" * length
    rec = rrd.read_rrd(bytes(data))
    assert [c.entity_path for c in rec.chunks] == ["/e0", "/e2"]
    assert any(f"byte {pos}: corrupt ArrowMsg" in p for p in rec.problems), rec.problems


def test_absurd_length_is_refused_without_allocating():
    head = rrd.stream_header() + rrd.encode_store_info(STORE)
    bogus = struct.pack("<QQ", 2, 1 << 60)
    rec = rrd.read_rrd(head + bogus + b"x" * 100)
    assert len(rec.store_infos) == 1 and rec.chunks == []
    assert any("claims 1152921504606846976 bytes" in p for p in rec.problems), rec.problems
    # Streaming (no total size known): refused by the configured limit.
    dec = rrd.RrdDecoder(max_message_bytes=1 << 20)
    dec.feed(head + struct.pack("<QQ", 2, (1 << 20) + 1))
    assert any("limit" in p for p in dec.finish())


def test_unknown_kind_and_bad_magic():
    rec = rrd.read_rrd(b"NOPE" + b"\0" * 20)
    assert rec.chunks == [] and "not an .rrd stream" in rec.problems[0]
    data = rrd.stream_header() + struct.pack("<QQ", 77, 4) + b"abcd"
    rec = rrd.read_rrd(data)
    assert "byte 12: unknown message kind 77" in rec.problems[0]


def test_no_footer_is_reported_not_raised():
    data = _stream(2)
    pos = 12
    while True:
        kind, length = struct.unpack_from("<QQ", data, pos)
        if kind == 0:
            break
        pos += 16 + length
    rec = rrd.read_rrd(data[:pos])
    assert len(rec.chunks) == 2 and not rec.has_footer
    assert any("no end-of-stream footer" in p for p in rec.problems)


# ------------------------------------------------------------- real Rerun 0.41

_REAL_SCRIPT = r"""
import sys, numpy as np, rerun as rr
rr.init("real_multi", spawn=False, recording_id="rec-real")
rr.save(sys.argv[1])
rr.set_time("step", sequence=1)
rr.log("rgb", rr.Image(np.arange(2*3*3, dtype=np.uint8).reshape(2,3,3)))
rr.log("l16", rr.Image(np.arange(6, dtype=np.uint16).reshape(2,3)*1000))
rr.log("rgbaf", rr.Image(np.linspace(0,1,2*3*4, dtype=np.float32).reshape(2,3,4), opacity=0.5, draw_order=2.0))
rr.log("nv12", rr.Image(bytes=bytes(range(6*4 + 2*3*2)), width=6, height=4, pixel_format=rr.PixelFormat.NV12))
rr.log("bgr", rr.Image(np.arange(2*3*3, dtype=np.uint8).reshape(2,3,3), color_model="bgr"))
rr.log("cols", rr.Image.from_fields(format=rr.components.ImageFormat(width=3, height=2, color_model="RGB",
                                                                      channel_datatype="U8")), static=True)
rr.send_columns("cols", indexes=[rr.TimeColumn("step", sequence=[0, 1])],
                columns=rr.Image.columns(buffer=np.arange(36, dtype=np.uint8).reshape(2, 18)))
"""


@pytest.fixture(scope="module")
def real_rrd(tmp_path_factory):
    if not RERUN_PY.exists():
        pytest.skip("real rerun-sdk 0.41 not installed in .venv-rerun")
    out = tmp_path_factory.mktemp("real") / "real.rrd"
    env = dict(os.environ, XDG_RUNTIME_DIR="/tmp", RERUN_TELEMETRY_ENABLED="false")
    subprocess.run([str(RERUN_PY), "-c", _REAL_SCRIPT, str(out)], check=True, env=env, timeout=120)
    return out


def _images(rec) -> dict:
    out = {}
    for c in rec.chunks:
        if ch.IMAGE_BUFFER in c.components or ch.IMAGE_FORMAT in c.components:
            out.setdefault(c.entity_path, []).append(c)
    return out


@needs_rerun
def test_real_rerun_file_decodes_with_identical_bytes(real_rrd):
    rec = rrd.read_rrd(real_rrd)
    assert rec.problems == [] and rec.has_footer
    assert rec.store_infos[0].recording_id == "rec-real"
    assert rec.store_infos[0].sdk_version == (0, 41, 0)
    imgs = _images(rec)
    (rgb,) = imgs["/rgb"]
    assert bytes(ch.buffer_row(rgb.components[ch.IMAGE_BUFFER], 0)) == bytes(range(18))
    assert ch.formats_from_column(rgb.components[ch.IMAGE_FORMAT]) == [
        ImageFormat(3, 2, color_model=ColorModel.RGB, channel_datatype=ChannelDatatype.U8)]
    (l16,) = imgs["/l16"]
    assert bytes(ch.buffer_row(l16.components[ch.IMAGE_BUFFER], 0)) == (np.arange(6, dtype="<u2") * 1000).tobytes()
    (f,) = imgs["/rgbaf"]
    assert bytes(ch.buffer_row(f.components[ch.IMAGE_BUFFER], 0)) == np.linspace(0, 1, 24, dtype="<f4").tobytes()
    assert f.components[ch.IMAGE_OPACITY].to_pylist() == [[0.5]]
    assert f.components[ch.IMAGE_DRAW_ORDER].to_pylist() == [[2.0]]
    (nv,) = imgs["/nv12"]
    assert bytes(ch.buffer_row(nv.components[ch.IMAGE_BUFFER], 0)) == bytes(range(36))
    assert ch.formats_from_column(nv.components[ch.IMAGE_FORMAT]) == [ImageFormat(6, 4, pixel_format=PixelFormat.NV12)]
    assert f.timelines["step"].values.tolist() == [1]
    assert f.timelines["log_time"].kind == "timestamp"
    static, temporal = sorted(imgs["/cols"], key=lambda c: not c.is_static)
    assert static.is_static and temporal.timelines["step"].values.tolist() == [0, 1]
    assert [bytes(ch.buffer_row(temporal.components[ch.IMAGE_BUFFER], i)) for i in range(2)] == [
        bytes(range(18)), bytes(range(18, 36))]


@needs_rerun
def test_real_rerun_chunks_reencode_to_equal_batches(real_rrd, tmp_path):
    rec = rrd.read_rrd(real_rrd)
    data = rrd.encode_recording(rec.store_infos[0], rec.chunks)
    back = rrd.read_rrd(data)
    assert back.problems == []
    for a, b in zip(rec.chunks, back.chunks):
        assert a.to_record_batch().equals(b.to_record_batch())
        assert a.to_record_batch().schema.equals(b.to_record_batch().schema, check_metadata=True)


def _rerun_cli(*args, timeout=120):
    env = dict(os.environ, XDG_RUNTIME_DIR="/tmp", RERUN_TELEMETRY_ENABLED="false")
    return subprocess.run([str(RERUN_BIN), *args], capture_output=True, text=True, env=env, timeout=timeout)


@needs_rerun
@pytest.mark.parametrize("compression", [False, True])
def test_rerun_verify_accepts_our_files(tmp_path, compression):
    p = tmp_path / "ours.rrd"
    p.write_bytes(_stream(3, compression))
    r = _rerun_cli("rrd", "verify", str(p))
    assert r.returncode == 0, r.stderr
    assert "verified without error" in r.stderr


@needs_rerun
def test_rerun_compare_says_our_reencoding_equals_the_original(real_rrd, tmp_path):
    rec = rrd.read_rrd(real_rrd)
    p = tmp_path / "reenc.rrd"
    p.write_bytes(rrd.encode_recording(rec.store_infos[0], rec.chunks))
    r = _rerun_cli("rrd", "compare", str(real_rrd), str(p))
    assert r.returncode == 0, r.stdout + r.stderr


OTHER = rrd.StoreInfo("app", "rec-2")


def _two_recordings(compression: bool = False) -> tuple[bytes, rrd.RrdEncoder, bytes]:
    """One stream, two recordings, chunks interleaved; one chunk encoded outside the
    encoder and handed in (as the SDK encodes once for all its sinks). Also returns
    the footer a snapshot taken before the end would carry."""
    enc = rrd.RrdEncoder(compression=compression)
    out = [enc.stream_header(), enc.store_info(STORE), enc.store_info(OTHER)]
    out += enc.chunk(_chunk("/a", 1, b"a" * 40, 1), STORE)
    other = _chunk("/b", 2, b"b" * 60, 2)
    batch = other.to_record_batch()
    encoded = rrd.encode_chunk(other, OTHER, compression=compression, batch=batch)
    enc.add_encoded(OTHER, other, batch, encoded)
    out += encoded.parts
    out += enc.chunk(_chunk("/a", 3, b"c" * 20, 3), STORE)
    snapshot_tail = enc.footer()
    out.append(enc.end())
    return b"".join(bytes(p) for p in out), enc, snapshot_tail


@pytest.mark.parametrize("compression", [False, True])
def test_encoder_writes_one_manifest_per_recording_with_exact_offsets(compression):
    data, enc, snapshot_tail = _two_recordings(compression)
    assert enc.offset == len(data) and enc.ended
    assert data.endswith(snapshot_tail)  # a snapshot's footer is the one the end writes
    rec = rrd.read_rrd(data)
    assert rec.problems == [] and rec.has_footer
    assert [s.recording_id for s in rec.store_infos] == ["rec-1", "rec-2"]
    assert [c.entity_path for c in rec.chunks_of("rec-1")] == ["/a", "/a"]
    assert [c.entity_path for c in rec.chunks_of("rec-2")] == ["/b"]
    index, problems = rrd.index_of(data)
    assert problems == [] and index.covers_all
    spans = {start + 16: end - start - 16 for kind, start, end in _message_spans(data) if kind == rrd.KIND_ARROW_MSG}
    assert {o: e.size for o, e in index.by_offset.items()} == spans  # every chunk, at its offset
    assert sorted(e.entity for e in index.by_offset.values()) == ["/a", "/a", "/b"]


def test_encoder_refuses_a_chunk_of_a_recording_without_its_store_info():
    enc = rrd.RrdEncoder()
    enc.stream_header()
    enc.store_info(STORE)
    with pytest.raises(ValueError, match="'rec-2', whose store info is not in this stream"):
        enc.chunk(_chunk("/b", 1, b"b", 1), OTHER)
    with pytest.raises(ValueError, match="no recording given"):
        enc.chunk(_chunk("/b", 1, b"b", 1))
    with pytest.raises(ValueError, match="stream header was already written"):
        enc.stream_header()


@needs_rerun
@pytest.mark.parametrize("compression", [False, True])
def test_rerun_verify_accepts_two_recordings_in_one_stream(tmp_path, compression):
    p = tmp_path / "two.rrd"
    p.write_bytes(_two_recordings(compression)[0])
    r = _rerun_cli("rrd", "verify", str(p))
    assert r.returncode == 0, r.stderr
    assert "verified without error" in r.stderr


def test_random_corruption_never_raises():
    data = _stream(3)
    rng = np.random.default_rng(1234)
    for _ in range(300):
        bad = bytearray(data)
        for pos in rng.integers(0, len(bad), size=int(rng.integers(1, 6))):
            bad[pos] = int(rng.integers(0, 256))
        rec = rrd.read_rrd(bytes(bad))  # must not raise, whatever the damage
        assert isinstance(rec.problems, list)
        assert len(rec.chunks) <= 3
        dec = rrd.RrdDecoder()
        for i in range(0, len(bad), 97):  # and the same, fed in pieces
            dec.feed(bytes(bad[i:i + 97]))
        dec.finish()


def test_default_port_is_reruns_unless_pixelrun_port_says_otherwise(monkeypatch):
    default_port = rrd.default_port
    monkeypatch.delenv("PIXELRUN_PORT", raising=False)
    assert default_port() == 9876
    monkeypatch.setenv("PIXELRUN_PORT", "12345")
    assert default_port() == 12345
    for bad in ("abc", "0", "70000"):
        monkeypatch.setenv("PIXELRUN_PORT", bad)
        with pytest.raises(ValueError, match="PIXELRUN_PORT"):
            default_port()


# ------------------------------------------------------ damage contained (issue 11)


def _message_spans(data: bytes) -> list[tuple[int, int, int]]:
    """(kind, start, end) of every message of a single intact stream."""
    out, pos = [], rrd.STREAM_HEADER_SIZE
    while pos + 16 <= len(data):
        kind, length = struct.unpack_from("<QQ", data, pos)
        out.append((kind, pos, pos + 16 + length))
        pos += 16 + length
        if kind == 0:
            break
    return out


@pytest.mark.parametrize("footer", [True, False])
def test_bytes_missing_from_one_message_lose_that_message_only(footer):
    data = _stream(4)
    spans = _message_spans(data)
    chunks = [(s, e) for k, s, e in spans if k == 2]
    s, e = chunks[1]  # /e1
    cut = data[: s + 40] + data[s + 45 :]  # 5 bytes of its body gone: the rest shifts
    if not footer:
        cut = cut[: spans[-1][1] - 5]
    rec = rrd.read_rrd(cut)
    assert [c.entity_path for c in rec.chunks] == ["/e0", "/e2", "/e3"]
    assert any(f"byte {s}:" in p for p in rec.problems), rec.problems


def test_bytes_inserted_between_messages_lose_nothing():
    data = _stream(3)
    _, s, _ = [m for m in _message_spans(data) if m[0] == 2][1]
    rec = rrd.read_rrd(data[:s] + b"\x07" * 11 + data[s:])
    assert [c.entity_path for c in rec.chunks] == ["/e0", "/e1", "/e2"]
    assert any(f"bytes {s}..{s + 11} (11 bytes) skipped" in p for p in rec.problems), rec.problems


def test_a_damaged_magic_does_not_hide_the_messages():
    data = bytearray(_stream(2))
    data[1] ^= 0x40
    rec = rrd.read_rrd(bytes(data))
    assert len(rec.chunks) == 2 and "stream header damaged" in rec.problems[0]


def test_chunk_disagreeing_with_the_checksummed_index_is_skipped_and_named():
    """Same chunk id and size, another step value: only the footer's index can tell."""
    good = [_chunk(f"/e{i}", i, bytes([i] * 3), i + 1) for i in range(3)]
    data = rrd.encode_recording(STORE, good)
    forged = rrd.encode_recording(STORE, [good[0], _chunk("/e1", 9, bytes([1] * 3), 2), good[2]])
    spans, fspans = _message_spans(data), _message_spans(forged)
    _, s, e = [m for m in spans if m[0] == 2][1]
    assert [m for m in fspans if m[0] == 2][1][1:] == (s, e)
    mixed = data[:s] + forged[s:e] + data[e:]  # the forged message, the original footer
    assert [c.timelines["step"].values.tolist() for c in rrd.read_rrd(forged).chunks] == [[0], [9], [2]]
    rec = rrd.read_rrd(mixed)
    assert [c.entity_path for c in rec.chunks] == ["/e0", "/e2"]
    (p,) = [p for p in rec.problems if f"byte {s}" in p]
    assert "for /e1 at step #1" in p and "step spans 9..9, the index says 1..1" in p


def test_a_damaged_footer_is_reported_and_everything_else_read():
    data = bytearray(_stream(3))
    end = _message_spans(bytes(data))[-1]
    data[end[1] + 20] ^= 1  # inside the End message's body: its checksum fails
    rec = rrd.read_rrd(bytes(data))
    assert len(rec.chunks) == 3
    assert any("fails its xxh32 checksum" in p for p in rec.problems), rec.problems


def test_a_chunk_id_missing_from_the_index_is_damage():
    data = _stream(3)
    _, s, e = [m for m in _message_spans(data) if m[0] == 2][2]
    other = _chunk("/e2", 2, bytes([2] * 3), 99)  # same shape, another id
    forged = rrd.encode_recording(STORE, [other])
    _, fs, fe = [m for m in _message_spans(forged) if m[0] == 2][0]
    assert fe - fs == e - s
    rec = rrd.read_rrd(data[:s] + forged[fs:fe] + data[e:])
    assert [c.entity_path for c in rec.chunks] == ["/e0", "/e1"]
    assert any("chunk id is not in the file's (checksummed) index" in p for p in rec.problems)


def test_lz4_declared_size_is_checked_before_decompressing():
    payload = lz4.block.compress(bytes(5000), store_size=False)
    assert rrd.lz4_decompress(payload, 5000, 1 << 20) == bytes(5000)
    with pytest.raises(ValueError, match="more than the 4096-byte limit"):
        rrd.lz4_decompress(payload, 5000, 4096)
    with pytest.raises(ValueError, match="more than LZ4 can expand to"):
        rrd.lz4_decompress(payload, 255 * len(payload) + 65, 1 << 30)
    with pytest.raises(ValueError, match="inflates to 5000 bytes, its message declares 6000"):
        rrd.lz4_decompress(payload, 6000, 1 << 20)
