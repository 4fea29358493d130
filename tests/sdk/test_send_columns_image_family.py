"""``send_columns`` for the whole image family: ``DepthImage.columns``,
``SegmentationImage.columns`` and ``EncodedImage.columns`` (Rerun 0.41's
``<Archetype>.columns(...)``), not only ``Image.columns``.

One script sends depth, segmentation and PNG columns; it runs unchanged under Rerun's
SDK and under pixelrun, and both files must hold the same columns, Arrow types and
values (where .venv-rerun exists; ``rerun rrd verify`` must accept ours). The rest is
checked against the input arrays themselves: every row's bytes, a row whose buffer does
not match its format dropped and named, chunks split by the rows' bytes.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import pixelrun as rr
from pixelrun.engine.chunk import buffer_row
from pixelrun.engine.rrd import read_rrd

ROOT = Path(__file__).resolve().parents[2]
RERUN_PY = ROOT / ".venv-rerun" / "bin" / "python"
RERUN_BIN = ROOT / ".venv-rerun" / "bin" / "rerun"
ENV = dict(os.environ, XDG_RUNTIME_DIR="/tmp", RERUN_TELEMETRY_ENABLED="false")

N = 3
DEPTH = np.arange(N * 2 * 3, dtype=np.uint16).reshape(N, 2, 3) * 500
SEG = (np.arange(N * 2 * 3, dtype=np.uint8).reshape(N, 2, 3) % 4)

SCRIPT = """
import importlib, io, sys
import numpy as np
from PIL import Image as PILImage
rr = importlib.import_module(sys.argv[1])
rr.init("columns", recording_id="rec-columns")
rr.save(sys.argv[2])
N = 3
depth = np.arange(N * 2 * 3, dtype=np.uint16).reshape(N, 2, 3) * 500
seg = np.arange(N * 2 * 3, dtype=np.uint8).reshape(N, 2, 3) % 4
pngs = []
for k in range(2):
    b = io.BytesIO()
    PILImage.fromarray(np.full((2, 3, 3), 60 * k, np.uint8)).save(b, format="PNG")
    pngs.append(b.getvalue())
steps = rr.TimeColumn("step", sequence=np.arange(N))
rr.send_columns("depth", indexes=[steps], columns=rr.DepthImage.columns(
    buffer=depth.view(np.uint8).reshape(N, -1),
    format=[rr.components.ImageFormat(width=3, height=2, channel_datatype=rr.ChannelDatatype.U16)] * N,
    meter=[1000.0, 1000.0, 250.0], colormap=["viridis"] * N))
rr.send_columns("seg", indexes=[steps], columns=rr.SegmentationImage.columns(
    buffer=seg.reshape(N, -1),
    format=[rr.components.ImageFormat(width=3, height=2, channel_datatype=rr.ChannelDatatype.U8)] * N,
    opacity=[0.5] * N))
rr.send_columns("png", indexes=[rr.TimeColumn("step", sequence=[0, 1])], columns=rr.EncodedImage.columns(
    blob=pngs, media_type=["image/png"] * 2))
"""


def _columns(path) -> dict:
    """(entity, column) -> [(Arrow type, values) per chunk] of a file's content."""
    rec = read_rrd(path)
    assert rec.problems == []
    got: dict = {}
    for c in rec.chunks:
        if not c.entity_path.startswith("/__"):
            for name, col in c.components.items():
                got.setdefault((c.entity_path, name), []).append((str(col.type), col.to_pylist()))
    return got


def _rows(path, entity: str, column: str) -> list[bytes]:
    return [bytes(buffer_row(c.components[column], r)) for c in read_rrd(path).chunks
            if c.entity_path == entity and column in c.components for r in range(c.num_rows)]


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    path = tmp_path_factory.mktemp("columns") / "pixelrun.rrd"
    subprocess.run([sys.executable, "-c", SCRIPT, "pixelrun", str(path)], check=True, env=ENV, timeout=120)
    return path


def test_every_row_holds_its_frame_bytes(ours):
    assert _rows(ours, "/depth", "DepthImage:buffer") == [f.astype("<u2").tobytes() for f in DEPTH]
    assert _rows(ours, "/seg", "SegmentationImage:buffer") == [f.tobytes() for f in SEG]
    pngs = _rows(ours, "/png", "EncodedImage:blob")
    assert [np.asarray(PILImage.open(io.BytesIO(b))).tolist() for b in pngs] == [
        np.full((2, 3, 3), 60 * k, np.uint8).tolist() for k in range(2)]
    meters = [v for c in read_rrd(ours).chunks if "DepthImage:meter" in c.components
              for v in c.components["DepthImage:meter"].to_pylist()]
    assert meters == [[1000.0], [1000.0], [250.0]]


@pytest.mark.skipif(not RERUN_PY.exists(), reason="real rerun-sdk 0.41 not installed in .venv-rerun")
def test_the_same_columns_as_rerun_writes_and_verify_accepts_ours(ours, tmp_path):
    theirs = tmp_path / "rerun.rrd"
    subprocess.run([str(RERUN_PY), "-c", SCRIPT, "rerun", str(theirs)], check=True, env=ENV, timeout=120)
    mine, rerun = _columns(ours), _columns(theirs)
    assert sorted(mine) == sorted(rerun)
    for key, chunks in rerun.items():
        assert mine[key] == chunks, key  # Arrow type (nullability included) and values, chunk by chunk
    r = subprocess.run([str(RERUN_BIN), "rrd", "verify", str(ours)], capture_output=True, text=True, env=ENV,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_depth_row_that_does_not_match_its_format_is_dropped_and_named():
    rec = rr.RecordingStream("cols", recording_id="cols")
    mem = rec.memory_recording()
    fmt = rr.components.ImageFormat(width=3, height=2, channel_datatype=rr.ChannelDatatype.U16)
    bufs = [DEPTH[0].tobytes(), DEPTH[1].tobytes()[:-2], DEPTH[2].tobytes()]  # row 1: 10 bytes, not 12
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec.send_columns("d", indexes=[rr.TimeColumn("t", sequence=[0, 1, 2])],
                         columns=rr.DepthImage.columns(buffer=bufs, format=[fmt] * 3))
    said = [str(w.message) for w in caught]
    assert any("/d: row 1:" in m and "12" in m and "10" in m and "dropped" in m for m in said), said
    rec.flush()
    assert _rows(mem.rrd_bytes(), "/d", "DepthImage:buffer") == [DEPTH[0].tobytes(), DEPTH[2].tobytes()]


def test_columns_name_a_field_the_archetype_does_not_have():
    with pytest.raises(TypeError, match=r"SegmentationImage.columns\(\) got unexpected keyword argument\(s\) "
                                        r"meter \(its fields: buffer, format, opacity, draw_order\)"):
        rr.SegmentationImage.columns(buffer=SEG.reshape(N, -1), meter=[1.0] * N)


def test_a_bad_colormap_name_is_said_and_nothing_is_sent():
    rec = rr.RecordingStream("cols", recording_id="cols")
    mem = rec.memory_recording()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec.send_columns("d", indexes=[rr.TimeColumn("t", sequence=[0])],
                         columns=rr.DepthImage.columns(buffer=[DEPTH[0].tobytes()], colormap=["no-such-map"]))
    assert any("DepthImage:colormap" in str(w.message) and "no-such-map" in str(w.message) for w in caught), \
        [str(w.message) for w in caught]
    rec.flush()
    assert _rows(mem.rrd_bytes(), "/d", "DepthImage:buffer") == []


def test_depth_columns_are_split_into_chunks_by_their_bytes():
    rec = rr.RecordingStream("cols", recording_id="cols",
                             batcher_config=rr.ChunkBatcherConfig(flush_num_bytes=5000))
    mem = rec.memory_recording()
    frames = np.arange(6 * 1200, dtype=np.uint16).reshape(6, 1200)  # 2400 bytes a row
    fmt = rr.components.ImageFormat(width=40, height=30, channel_datatype=rr.ChannelDatatype.U16)
    rec.send_columns("d", indexes=[rr.TimeColumn("t", sequence=np.arange(6))],
                     columns=rr.DepthImage.columns(buffer=frames.view(np.uint8), format=[fmt] * 6))
    rec.flush()
    sizes = [c.num_rows for c in read_rrd(mem.rrd_bytes()).chunks if c.entity_path == "/d"]
    assert sizes == [2, 2, 2]  # 5000 // (2400 + 64)
    assert _rows(mem.rrd_bytes(), "/d", "DepthImage:buffer") == [f.tobytes() for f in frames]
