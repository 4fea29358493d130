"""The file sink's writer thread: a write that fails stops the file there and counts
every chunk from it on (the program goes on, the complete messages stay readable); a
write that hangs never holds a close past its timeout; flush means the bytes are in
the file."""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import numpy as np
import pytest
from sdk_helpers import run_isolated

import pixelrun as rr
from pixelrun.engine import chunk as ch
from pixelrun.engine.rrd import read_rrd
from pixelrun.sinks import FileSink

# noise frames (stored raw) under and over FileSink.INLINE_BYTES: written on the recording's
# thread, and by the file's own writer thread
SIZES = [(1000, 1000), (1100, 1000)]

FULL_DISK = r"""
import json, resource, signal, sys, warnings
import numpy as np
import pixelrun as rr
path, limit, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
rec = rr.RecordingStream("full", batcher_config=rr.BatcherConfig(flush_num_rows=1), send_properties=False)
rec.save(path)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for i in range(10):
        rec.set_time("i", sequence=i)
        rec.log("cam", rr.Image(np.random.default_rng(i).integers(0, 256, (h, w), dtype=np.uint8)))
    rec.flush(timeout_sec=30)
    dropped_before_close = rec.dropped_rows
    rec.close(timeout=30)
print(json.dumps(dict(dropped=rec.dropped_rows, before_close=dropped_before_close,
                      warnings=[f"{type(x.message).__name__}: {x.message}" for x in caught])))
"""


@pytest.mark.parametrize("H, W", SIZES)
def test_a_write_that_fails_counts_that_chunk_and_every_later_one_and_the_program_goes_on(tmp_path, H, W):
    path = tmp_path / "full.rrd"
    limit = 3 * H * W + 200_000  # three frames and their message framing; the fourth hits the limit
    r = run_isolated(FULL_DISK, path, limit, H, W, env=dict(os.environ), timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["before_close"] == 7, out  # frames 3..9: counted by the time flush returns
    assert out["dropped"] == 7, out
    said = "\n".join(out["warnings"])
    assert f"file {path}: dropping data: writing failed" in said and "File too large" in said, said
    assert "7 row(s)" in said, said  # the close's summary
    # everything before the failed write is in the file, pixel for pixel
    contents = read_rrd(path)
    frames = {int(c.timelines["i"].values[r]): c for c in contents.chunks
              if ch.IMAGE_BUFFER in c.components for r in range(c.num_rows)}
    assert sorted(frames) == [0, 1, 2]
    for i, c in frames.items():
        want = np.random.default_rng(i).integers(0, 256, (H, W), dtype=np.uint8)  # noise: no LZ4 gain
        assert bytes(ch.buffer_row(c.components[ch.IMAGE_BUFFER], 0)) == want.tobytes()
    assert contents.problems, "the cut-off message is reported by the reader"
    assert os.path.getsize(path) <= limit


class _StuckFile:
    """Stands in for the sink's native file: every write waits for `gate` (30 s at most)."""

    def __init__(self, inner):
        self.inner = inner
        self.gate = threading.Event()
        self.closed = False

    def write(self, data):
        self.gate.wait(30)
        return self.inner.write(data)

    def tell(self):
        return self.inner.tell()

    def flush(self):
        pass

    def close(self):
        self.closed = True
        self.inner.close()


def test_a_hanging_write_never_holds_the_close_past_its_timeout_and_what_waits_is_counted(tmp_path):
    path = tmp_path / "stuck.rrd"
    rec = rr.RecordingStream("stuck", batcher_config=rr.BatcherConfig(flush_num_rows=1), send_properties=False)
    sink = FileSink(str(path))
    stuck = sink._f = _StuckFile(sink._f)
    stuck.gate.set()  # the disk works at first ...
    rec.set_sinks(sink)

    def frame(i):  # noise (stored raw), over FileSink.INLINE_BYTES: written by the file's thread
        return np.random.default_rng(i).integers(0, 256, (1100, 1000), dtype=np.uint8)

    rec.set_time("i", sequence=0)
    rec.log("cam", rr.Image(frame(0)))
    rec.flush(timeout_sec=30)
    stuck.gate.clear()  # ... then hangs
    for i in range(1, 6):
        rec.set_time("i", sequence=i)
        rec.log("cam", rr.Image(frame(i)))
    t0 = time.monotonic()
    with pytest.warns(rr.DataLossWarning, match=r"5 row\(s\)"):
        with pytest.warns(rr.PixelrunWarning, match=r"left without its footer \(the close timed out\)"):
            rec.close(timeout=0.5)
    took = time.monotonic() - t0
    assert took < 10.0, f"close took {took:.1f} s with a 0.5 s timeout (the write hangs for 30 s)"
    assert rec.dropped_rows == 5  # the one being written when time ran out is counted too
    stuck.gate.set()  # let the writer thread go; it writes nothing after the close
    sink._wthread.join(5)
    assert not sink._wthread.is_alive()
    frames = [int(c.timelines["i"].values[r]) for c in read_rrd(path).chunks
              if ch.IMAGE_BUFFER in c.components for r in range(c.num_rows)]
    assert frames[0] == 0 and set(frames) <= {0, 1}  # frame 1 was in the hung write: it may land


def test_flush_means_every_logged_frame_is_in_the_file(tmp_path):
    path = tmp_path / "f.rrd"
    rec = rr.RecordingStream("flushed", send_properties=False)
    rec.save(str(path))
    for i in range(20):
        rec.set_time("i", sequence=i)
        rec.log("cam", rr.Image(np.full((480, 640, 3), i, np.uint8)))
    rec.flush(timeout_sec=30)
    got = sorted(int(c.timelines["i"].values[r]) for c in read_rrd(path).chunks
                 if ch.IMAGE_BUFFER in c.components for r in range(c.num_rows))
    assert got == list(range(20))  # read while the recording is still open
    rec.close()
    assert not read_rrd(path).problems


if sys.platform != "linux":  # RLIMIT_FSIZE and SIGXFSZ as used above are Linux behaviour
    pytestmark = pytest.mark.skip(reason="Linux only")
