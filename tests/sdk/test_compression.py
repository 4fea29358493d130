"""LZ4 compression of chunk payloads (issue 14, item 3): on by default like Rerun 0.41,
adaptive per entity (incompressible data goes raw, then is retried), explicit choices
honoured, and what we write reads back byte-exact here and in real Rerun 0.41."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grpc_helpers import RERUN_BIN, RERUN_PY, RerunSaver, wait_until

import pixelrun as rr
from pixelrun.batcher import ChunkBatcherConfig, CompressionPolicy, compression_mode
from pixelrun.engine import rrd
from pixelrun.engine.chunk import IMAGE_BUFFER, buffer_row
from pixelrun.engine.rrd.decode import ChunkMsg
from pixelrun.errors import PixelrunWarning
from tests.net_helpers import free_port

needs_rerun = pytest.mark.skipif(not (RERUN_BIN.exists() and RERUN_PY.exists()),
                                 reason="real rerun 0.41 not installed in .venv-rerun")

H, W = 48, 64  # small frames: each one its own chunk


def smooth(i: int) -> np.ndarray:
    """A compressible frame (a gradient: LZ4 shrinks it to a few per cent)."""
    x = np.arange(W, dtype=np.uint16)[None, :, None]
    y = np.arange(H, dtype=np.uint16)[:, None, None]
    return np.broadcast_to(((x + y + i + np.arange(3) * 40) % 256).astype(np.uint8), (H, W, 3)).copy()


def noise(i: int) -> np.ndarray:
    """Camera noise: LZ4 cannot shrink it (large enough that the chunk's ~3 KB of
    compressible Arrow schema stays under the 10 % margin)."""
    return np.random.default_rng(1000 + i).integers(0, 256, (2 * H, 2 * W, 3), dtype=np.uint8)


def one_row_per_chunk(**kw) -> rr.RecordingStream:
    # every row becomes its own chunk at once, so chunk order = log order (deterministic)
    return rr.RecordingStream("compression", batcher_config=ChunkBatcherConfig(flush_num_rows=1), **kw)


def chunk_messages(data) -> list:
    """(entity, payload LZ4-compressed?, image bytes per row) for every chunk message."""
    out = []
    for m in rrd.iter_messages(memoryview(bytes(data))):
        if isinstance(m, ChunkMsg):
            col = m.chunk.components.get(IMAGE_BUFFER)
            imgs = [] if col is None else [bytes(buffer_row(col, i)) for i in range(m.chunk.num_rows)]
            out.append((m.chunk.entity_path, m.compressed, imgs))
    return out


def cam_flags(data, entity: str = "/cam") -> list[bool]:
    return [c for e, c, _ in chunk_messages(data) if e == entity]


def log_frames(rec, frames, entity: str = "cam", start: int = 0) -> None:
    for i, f in enumerate(frames, start):
        rec.set_time("frame", sequence=i)
        rec.log(entity, rr.Image(f))


# ------------------------------------------------------------------ the policy itself


def test_policy_backs_off_doubles_then_retries_and_resets():
    p = CompressionPolicy("adaptive", min_saving=0.10, first_backoff=2, max_backoff=8)
    decisions = []

    def chunk(ratio: float) -> None:  # "skip": raw without an attempt; "raw": tried, not worth it
        tried = p.should_try("/cam")
        decisions.append("skip" if not tried else ("lz4" if p.record("/cam", 1000, int(1000 * ratio)) else "raw"))

    for _ in range(1 + 2 + 1 + 4 + 1 + 8 + 1 + 8):  # four misses: back-offs of 2, 4, 8, 8 (the cap)
        chunk(1.0)
    assert decisions == (["raw"] + ["skip"] * 2 + ["raw"] + ["skip"] * 4 + ["raw"] + ["skip"] * 8
                         + ["raw"] + ["skip"] * 8)
    assert p.stats()["not_useful"] == 4 and p.stats()["backed_off"] == 22 and p.stats()["retried"] == 3
    chunk(0.5)  # the retry after the cap pays: compressed, back-off cleared
    assert decisions[-1] == "lz4"
    chunk(1.0)  # a new miss starts again at the first back-off (2)
    assert decisions[-1] == "raw"
    chunk(0.1), chunk(0.1), chunk(0.1)
    assert decisions[-3:] == ["skip", "skip", "lz4"]


def test_policy_margin_is_inclusive_and_per_entity():
    p = CompressionPolicy("adaptive", min_saving=0.10, first_backoff=3)
    assert p.should_try("/a") and p.record("/a", 1000, 900)  # exactly 10 % saved: worth it
    assert p.should_try("/b") and not p.record("/b", 1000, 901)  # 9.9 %: not
    assert p.should_try("/a")  # /b backing off leaves /a alone
    assert [p.should_try("/b") for _ in range(4)] == [False, False, False, True]


def test_policy_always_and_off():
    always, off = CompressionPolicy("always"), CompressionPolicy("off")
    for _ in range(5):
        assert always.should_try("/x") and always.record("/x", 100, 200)  # kept even when it grows
        assert not off.should_try("/x")
    assert always.stats()["not_useful"] == 0
    with pytest.raises(ValueError, match="adaptive"):
        CompressionPolicy("sometimes")


def test_compression_mode_explicit_beats_environment(monkeypatch):
    monkeypatch.delenv("PIXELRUN_COMPRESSION", raising=False)
    assert compression_mode(None) == "adaptive"  # the default
    for word, mode in (("off", "off"), ("0", "off"), ("lz4", "always"), ("on", "always"), ("adaptive", "adaptive")):
        monkeypatch.setenv("PIXELRUN_COMPRESSION", word)
        assert compression_mode(None) == mode
    monkeypatch.setenv("PIXELRUN_COMPRESSION", "off")
    assert compression_mode(True) == "always" and compression_mode("adaptive") == "adaptive"
    monkeypatch.setenv("PIXELRUN_COMPRESSION", "lz4")
    assert compression_mode(False) == "off"
    monkeypatch.setenv("PIXELRUN_COMPRESSION", "zstd")
    with pytest.warns(PixelrunWarning, match="PIXELRUN_COMPRESSION='zstd'"):
        assert compression_mode(None) == "adaptive"
    with pytest.raises(ValueError, match="got 'fast'"):
        compression_mode("fast")


# ------------------------------------------------------------------ through a recording


def test_default_file_is_lz4_and_reads_back_byte_exact(tmp_path, monkeypatch):
    monkeypatch.delenv("PIXELRUN_COMPRESSION", raising=False)
    path = tmp_path / "default.rrd"
    frames = [smooth(i) for i in range(5)]
    rec = rr.RecordingStream("compression")
    rec.save(path)
    log_frames(rec, frames)
    rec.close()
    data = path.read_bytes()
    assert data[8] == 1  # the stream header announces LZ4, as Rerun's does
    msgs = chunk_messages(data)
    assert msgs and all(compressed for _, compressed, _ in msgs)
    assert [img for e, _, imgs in msgs if e == "/cam" for img in imgs] == [f.tobytes() for f in frames]
    stats = rec.compression_stats()
    assert stats["mode"] == "adaptive" and stats["compressed"] == len(msgs)
    assert stats["written_bytes"] < stats["ipc_bytes"] / 5  # the gradient really shrank
    raw = rr.RecordingStream("compression", compression=False)
    raw.save(tmp_path / "raw.rrd")
    log_frames(raw, frames)
    raw.close()
    assert path.stat().st_size < (tmp_path / "raw.rrd").stat().st_size / 2


def test_noise_goes_raw_after_the_first_attempt_and_is_retried(monkeypatch):
    monkeypatch.delenv("PIXELRUN_COMPRESSION", raising=False)
    rec = one_row_per_chunk()
    mem = rec.memory_recording()
    b = CompressionPolicy.FIRST_BACKOFF
    noisy = [noise(i) for i in range(1 + b + 1 + 2 * b)]
    log_frames(rec, noisy)  # miss, b backed off, retry misses, 2b backed off
    log_frames(rec, [smooth(i) for i in range(2)], start=len(noisy))  # the next retry pays
    log_frames(rec, [smooth(i) for i in range(2)], entity="other")  # never affected by /cam
    rec.flush()
    data = mem.rrd_bytes()
    rec.close()
    assert cam_flags(data) == [False] * len(noisy) + [True, True]
    assert cam_flags(data, "/other") == [True, True]
    s = rec.compression_stats()
    assert (s["not_useful"], s["backed_off"], s["retried"]) == (2, 3 * b, 2)
    msgs = chunk_messages(data)
    assert [i for e, _, imgs in msgs if e == "/cam" for i in imgs] == [f.tobytes() for f in noisy] + [
        smooth(i).tobytes() for i in range(2)]


def test_compression_runs_on_the_writer_thread_not_the_logging_thread(monkeypatch):
    monkeypatch.delenv("PIXELRUN_COMPRESSION", raising=False)
    threads = []
    real = rrd.lz4_compress

    def spy(ipc):
        threads.append(threading.current_thread().name)
        return real(ipc)

    monkeypatch.setattr(rrd, "lz4_compress", spy)
    rec = one_row_per_chunk()
    mem = rec.memory_recording()
    log_frames(rec, [smooth(i) for i in range(3)])
    rec.flush()
    assert cam_flags(mem.rrd_bytes()) == [True] * 3
    rec.close()
    assert len(threads) >= 3 and all(t.startswith("pixelrun-batcher") for t in threads), threads


def test_explicit_off_and_on_are_honoured(monkeypatch):
    monkeypatch.setenv("PIXELRUN_COMPRESSION", "adaptive")
    frames = [noise(0), smooth(1), noise(2)]
    for choice, want_header, want in ((False, 0, [False] * 3), (True, 1, [True] * 3)):
        rec = one_row_per_chunk(compression=choice)
        mem = rec.memory_recording()
        log_frames(rec, frames)
        rec.flush()
        data = mem.rrd_bytes()
        rec.close()
        assert data[8] == want_header, choice
        assert cam_flags(data) == want, choice  # "on" compresses noise too (Rerun's behaviour)
        assert [i for e, _, imgs in chunk_messages(data) if e == "/cam" for i in imgs] == [f.tobytes() for f in frames]
    monkeypatch.setenv("PIXELRUN_COMPRESSION", "off")  # the environment's choice when the code makes none
    rec = one_row_per_chunk()
    mem = rec.memory_recording()
    log_frames(rec, frames)
    rec.flush()
    assert cam_flags(mem.rrd_bytes()) == [False] * 3 and rec.compression_stats()["mode"] == "off"
    rec.close()


def test_a_chunk_over_the_decompression_limit_is_written_raw():
    p = CompressionPolicy("always", max_bytes=1000)
    rec = one_row_per_chunk(compression=True)
    rec._compressor = p  # a small limit instead of 512 MiB
    mem = rec.memory_recording()
    log_frames(rec, [smooth(0)])
    rec.flush()
    data = mem.rrd_bytes()
    rec.close()
    assert cam_flags(data) == [False] and p.stats()["too_large"] >= 1
    assert chunk_messages(data)[-1][2] == [smooth(0).tobytes()]


# ------------------------------------------------------------------ real Rerun 0.41

READ_WITH_RERUN = r'''
import hashlib, json, sys
from rerun.chunk import RrdReader
out = {}
for chunk in RrdReader(sys.argv[1]).stream().to_chunks():
    batch = chunk.to_record_batch()
    for name in batch.schema.names:
        if name.endswith("Image:buffer"):
            for row in batch.column(name).to_pylist():
                for blob in row or []:
                    out.setdefault(chunk.entity_path, []).append(hashlib.sha256(bytes(blob)).hexdigest())
print(json.dumps(out))
'''


@needs_rerun
def test_real_rerun_verifies_and_reads_our_default_file(tmp_path, monkeypatch):
    monkeypatch.delenv("PIXELRUN_COMPRESSION", raising=False)
    path = tmp_path / "for_rerun.rrd"
    cam = [smooth(i) for i in range(3)]
    cam_noise = [noise(i) for i in range(12)]  # compressed, raw, backed off and retried chunks in one file
    rec = one_row_per_chunk()
    rec.save(path)
    log_frames(rec, cam)
    log_frames(rec, cam_noise, entity="noise")
    rec.close()
    flags = {e: [c for ee, c, _ in chunk_messages(path.read_bytes()) if ee == e] for e in ("/cam", "/noise")}
    assert all(flags["/cam"]) and not any(flags["/noise"]) and rec.compression_stats()["retried"] == 1
    v = subprocess.run([str(RERUN_BIN), "rrd", "verify", str(path)], capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stderr[-2000:]
    r = subprocess.run([str(RERUN_PY), "-c", READ_WITH_RERUN, str(path)], capture_output=True, text=True,
                       timeout=120, env={"RERUN_TELEMETRY_ENABLED": "false", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])

    def digests(frames):
        return [hashlib.sha256(f.tobytes()).hexdigest() for f in frames]

    assert got["/cam"] == digests(cam) and got["/noise"] == digests(cam_noise)


@needs_rerun
def test_grpc_stream_is_compressed_and_rerun_receives_it_exactly(tmp_path, monkeypatch):
    monkeypatch.delenv("PIXELRUN_COMPRESSION", raising=False)
    port = free_port()
    out = tmp_path / "received.rrd"
    frames = [smooth(i) for i in range(4)] + [noise(i) for i in range(3)]
    with RerunSaver(port, out) as server:
        rec = one_row_per_chunk()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no loss, no complaint
            rec.connect_grpc(f"rerun+http://127.0.0.1:{port}/proxy")
            log_frames(rec, frames)
            rec.close()
        assert rec.dropped_rows == 0
        s = rec.compression_stats()
        assert s["compressed"] >= 4 and s["not_useful"] == 1  # what went over the wire

        def received() -> list:
            if not out.exists():
                return []
            return [i for e, _, imgs in chunk_messages(out.read_bytes()) if e == "/cam" for i in imgs]

        assert wait_until(lambda: len(received()) == len(frames), 30)
        server.stop()
    assert received() == [f.tobytes() for f in frames]
