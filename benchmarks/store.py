"""Store benchmark: ingest speed, memory overhead and latest-at latency, against Rerun 0.41.

    python3 benchmarks/store.py            # 2 GB of 1080p frames, 3 runs per contender
    python3 benchmarks/store.py --quick    # 256 MB, 1 run: for iteration

1. Ingest: a recording of 1080p RGB frames (6 220 800 bytes each, camera-like noise) is
   generated on the fly into /dev/shm twice: once by rerun-sdk 0.41 (`rr.log` per frame;
   LZ4, as the SDK always writes) and once by pixelrun's encoder (uncompressed). Each
   file is then read into a store by pixelrun (`ChunkStore.ingest_file`) and by Rerun's
   own reader (`rerun.chunk.RrdReader(path).stream().collect()`), each in a fresh
   process (runs alternate A B A B), timing only the read. Reported: median time, MB/s
   of image bytes, and memory overhead = (RSS after - RSS before) / image bytes held
   (target <= 1.10).
2. Latest-at: 100 000 rows over 50 entities (2 000 time points each, chunks of 100
   rows, 64-byte buffers, a static format). Per-query latency of one entity's Image
   components at a random time (p50 = the median column, p99 in its own column), and
   of a whole scene (`scene_at`, all 50 entities) at random times and at one time
   point asked again (a paused viewer redrawing). Rerun's peer is its DataFusion
   reader with `using_index_values=[t], fill_latest_at=True` on one entity (needs
   `datafusion==54.*` in .venv-rerun; the row says so when it is missing).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import Timing, bench_args, print_table

ROOT = Path(__file__).resolve().parent.parent
RERUN_PY = ROOT / ".venv-rerun" / "bin" / "python"
SHM = Path("/dev/shm")
W, H = 1920, 1080
FRAME = W * H * 3

# ---------------------------------------------------------------- frame generation

# Runs in both interpreters (pixelrun's and .venv-rerun's): a noise frame shifted per
# step, so frames differ and do not compress (like a real sensor's noise).
FRAMES_SRC = r"""
import numpy as np
W, H = 1920, 1080
_base = np.random.default_rng(7).integers(0, 256, H * W * 3 + 4096, dtype=np.uint8)
def frame(i):
    off = (i * 977) % 4096
    return _base[off : off + H * W * 3].reshape(H, W, 3)
"""

RERUN_WRITER = FRAMES_SRC + r"""
import sys, rerun as rr
path, n = sys.argv[1], int(sys.argv[2])
rr.init("pixelrun_bench_store", recording_id="bench")
rr.save(path)
for i in range(n):
    rr.set_time("step", sequence=i)
    rr.log("camera", rr.Image(frame(i)))
rr.disconnect()
"""

RERUN_INGEST = r"""
import sys, time, json, gc, psutil
from rerun.chunk import RrdReader
path = sys.argv[1]
proc = psutil.Process()
gc.collect()
before = proc.memory_info().rss
t0 = time.perf_counter()
store = RrdReader(path).stream().collect()
dt = time.perf_counter() - t0
after = proc.memory_info().rss
print(json.dumps({"seconds": dt, "rss_delta": after - before, "chunks": len(store)}))
"""

PIXELRUN_INGEST = r"""
import sys, time, json, gc, psutil
from pixelrun.engine.store.store import ChunkStore
path = sys.argv[1]
proc = psutil.Process()
store = ChunkStore(memory_limit=None)
gc.collect()
before = proc.memory_info().rss
t0 = time.perf_counter()
store.ingest_file(path)
dt = time.perf_counter() - t0
gc.collect()
after = proc.memory_info().rss
print(json.dumps({"seconds": dt, "rss_delta": after - before, "chunks": store.num_chunks,
                  "held": store.held_bytes}))
"""


def write_pixelrun_file(path: Path, n: int) -> None:
    """The same frames through pixelrun's encoder (one chunk per frame, uncompressed)."""
    import pyarrow as pa

    from pixelrun.engine.chunk import IMAGE_BUFFER, IMAGE_FORMAT, Chunk, TimeColumn, format_column
    from pixelrun.engine.rrd import RrdEncoder, StoreInfo
    from pixelrun.kernels.formats import ImageFormat

    ns: dict = {}
    exec(FRAMES_SRC, ns)
    enc = RrdEncoder(StoreInfo("pixelrun_bench_store", "bench"), compression=False)
    fmt = format_column([ImageFormat(W, H, color_model="RGB", channel_datatype="U8")])
    t = time.time_ns()
    with open(path, "wb") as f:
        f.write(enc.stream_header())
        f.write(enc.store_info())
        for i in range(n):
            data = np.ascontiguousarray(ns["frame"](i)).reshape(-1)
            leaf = pa.Array.from_buffers(pa.uint8(), FRAME, [None, pa.py_buffer(data)])
            inner = pa.ListArray.from_arrays(pa.array([0, FRAME], pa.int32()), leaf)
            col = pa.ListArray.from_arrays(pa.array([0, 1], pa.int32()), inner)
            c = Chunk("camera", np.array([[t + i, 0]], np.uint64),
                      {"step": TimeColumn("sequence", np.array([i], np.int64))},
                      {IMAGE_BUFFER: col, IMAGE_FORMAT: fmt},
                      chunk_id=(t + i).to_bytes(8, "big") + bytes(8))
            for part in enc.chunk(c):
                f.write(part)
        f.write(enc.end())


def _worker(python: Path, script: str, path: Path) -> dict:
    env = dict(os.environ, XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    out = subprocess.run([str(python), "-c", script, str(path)], capture_output=True, text=True, env=env,
                         timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{python} worker failed on {path}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_ingest(args) -> list[Timing]:
    n = max(1, int(args.size_gb * 1e9) // FRAME)
    raw = n * FRAME
    files = {"Rerun-written (LZ4)": SHM / "pixelrun_bench_store_rerun.rrd",
             "pixelrun-written (uncompressed)": SHM / "pixelrun_bench_store_pixelrun.rrd"}
    try:
        t0 = time.perf_counter()
        subprocess.run([str(RERUN_PY), "-c", RERUN_WRITER, str(files["Rerun-written (LZ4)"]), str(n)],
                       check=True, timeout=1800)
        write_pixelrun_file(files["pixelrun-written (uncompressed)"], n)
        print(f"_generated {n} frames ({raw / 1e9:.2f} GB of image bytes) per file in "
              f"{time.perf_counter() - t0:.1f} s; file sizes: "
              + ", ".join(f"{k} {p.stat().st_size / 1e9:.2f} GB" for k, p in files.items()) + "_\n")
        contenders = [("Rerun 0.41 RrdReader.stream().collect()", RERUN_PY, RERUN_INGEST, True),
                      ("pixelrun ChunkStore.ingest_file", Path(sys.executable), PIXELRUN_INGEST, False)]
        rows = []
        for group, path in files.items():
            results: dict = {name: [] for name, *_ in contenders}
            for _ in range(args.repeat):  # A B A B: the machine's noise hits both
                for name, py, script, _peer in contenders:
                    results[name].append(_worker(py, script, path))
            for name, _py, _script, peer in contenders:
                rs = results[name]
                secs = [r["seconds"] for r in rs]
                med = float(np.median(secs))
                overhead = float(np.median([r["rss_delta"] for r in rs])) / raw
                rows.append(Timing(name, secs, group=f"ingest {group}", peer=peer,
                                   extra={"MB/s": f"{raw / med / 1e6:.0f}",
                                          "RSS/raw": f"{overhead:.3f}"}))
        return rows
    finally:
        if not args.keep:
            for p in files.values():
                p.unlink(missing_ok=True)


# ------------------------------------------------------------------- latest-at

ENTITIES, POINTS, CHUNK_ROWS, BLOB = 50, 2000, 100, 64

RERUN_LATEST = r"""
import sys, time, json, random
import numpy as np, rerun as rr
ENTITIES, POINTS, CHUNK_ROWS, BLOB, QUERIES = (int(a) for a in sys.argv[2:7])
path = sys.argv[1]
rr.init("pixelrun_bench_latest", recording_id="latest")
rr.save(path)
fmt = rr.components.ImageFormat(width=8, height=8, color_model="L", channel_datatype="U8")
for e in range(ENTITIES):
    rr.log(f"e{e}", rr.Image.from_fields(format=fmt), static=True)
    for c0 in range(0, POINTS, CHUNK_ROWS):
        steps = np.arange(c0, c0 + CHUNK_ROWS)
        rr.send_columns(f"e{e}", indexes=[rr.TimeColumn("step", sequence=steps * 3)],
                        columns=rr.Image.columns(buffer=np.full((CHUNK_ROWS, BLOB), e % 256, np.uint8)))
rr.disconnect()
from rerun.chunk import RrdReader
try:
    import datafusion  # noqa: F401 - only asks whether it is installed
except ImportError:
    print(json.dumps({"error": "datafusion is not installed in .venv-rerun"}))
    sys.exit(0)
store = RrdReader(path).stream().collect()
rng = random.Random(1)
lat = []
for q in range(QUERIES + 3):
    e, t = rng.randrange(ENTITIES), rng.randrange(POINTS * 3)
    t0 = time.perf_counter()
    tbl = store.reader(index="step", contents=f"/e{e}", using_index_values=[t], fill_latest_at=True).to_arrow_table()
    dt = time.perf_counter() - t0
    assert tbl.num_rows == 1
    if q >= 3:
        lat.append(dt)
print(json.dumps({"latencies": lat}))
"""


def build_latest_store():
    import pyarrow as pa

    from pixelrun.engine.chunk import IMAGE_BUFFER, IMAGE_FORMAT, Chunk, TimeColumn, format_column
    from pixelrun.engine.store.store import ChunkStore
    from pixelrun.kernels.formats import ImageFormat

    store = ChunkStore(memory_limit=None)
    fmt = format_column([ImageFormat(8, 8, color_model="L", channel_datatype="U8")])
    counter = 0
    for e in range(ENTITIES):
        store.add_chunk(Chunk(f"e{e}", np.array([[1, counter]], np.uint64), {}, {IMAGE_FORMAT: fmt}))
        counter += 1
        for c0 in range(0, POINTS, CHUNK_ROWS):
            k = CHUNK_ROWS
            leaf = pa.array(np.full(k * BLOB, e % 256, np.uint8))
            inner = pa.ListArray.from_arrays(pa.array(np.arange(0, (k + 1) * BLOB, BLOB, dtype=np.int32)), leaf)
            outer = pa.ListArray.from_arrays(pa.array(np.arange(k + 1, dtype=np.int32)), inner)
            rid = np.stack([np.full(k, 2, np.uint64), np.arange(counter, counter + k, dtype=np.uint64)], axis=1)
            counter += k
            steps = np.arange(c0, c0 + k, dtype=np.int64) * 3
            store.add_chunk(Chunk(f"e{e}", rid, {"step": TimeColumn("sequence", steps)}, {IMAGE_BUFFER: outer}))
    return store


def bench_latest_at(args) -> list[Timing]:
    from pixelrun.engine.chunk import IMAGE_BUFFER, IMAGE_DRAW_ORDER, IMAGE_FORMAT, IMAGE_OPACITY
    from pixelrun.engine.scene import scene_at

    queries = 2000 if args.quick else 20000
    store = build_latest_store()
    assert store.num_rows == ENTITIES * (POINTS + 1)
    rng = np.random.default_rng(1)
    ents = [f"/e{e}" for e in rng.integers(0, ENTITIES, queries)]
    times = rng.integers(0, POINTS * 3, queries).tolist()
    comps = (IMAGE_BUFFER, IMAGE_FORMAT, IMAGE_OPACITY, IMAGE_DRAW_ORDER)
    store.latest_at(ents[0], comps, "step", times[0])  # settle the indices
    lat = []
    gc.disable()
    try:
        for e, t in zip(ents, times):
            t0 = time.perf_counter()
            hits = store.latest_at(e, comps, "step", t)
            lat.append(time.perf_counter() - t0)
            if len(hits) != 2:
                raise AssertionError(f"{e}@{t}: expected buffer and format, got {sorted(hits)}")
        scene_lat = []
        for t in times[: queries // 20]:
            t0 = time.perf_counter()
            layers = scene_at(store, "step", t)
            scene_lat.append(time.perf_counter() - t0)
            assert len(layers) == ENTITIES
        still_lat = []  # a paused viewer: the same time point, frame after frame
        for _ in range(queries // 20):
            t0 = time.perf_counter()
            layers = scene_at(store, "step", times[0])
            still_lat.append(time.perf_counter() - t0)
            assert len(layers) == ENTITIES
    finally:
        gc.enable()
    group = f"latest-at, {ENTITIES * POINTS} rows / {ENTITIES} entities"
    rows = []
    rq = max(50, queries // 100)
    out = _worker_args(RERUN_PY, RERUN_LATEST,
                       [str(SHM / "pixelrun_bench_latest.rrd"), str(ENTITIES), str(POINTS), str(CHUNK_ROWS),
                        str(BLOB), str(rq)])
    (SHM / "pixelrun_bench_latest.rrd").unlink(missing_ok=True)
    if "latencies" in out:
        rl = out["latencies"]
        rows.append(Timing("Rerun 0.41 ChunkStore.reader(fill_latest_at) 1 entity", rl, group=group, peer=True,
                           extra={"p99 ms": f"{np.percentile(rl, 99) * 1e3:.3f}"}))
    else:
        print(f"_Rerun latest-at peer skipped: {out.get('error')}_\n")
    rows.append(Timing("pixelrun ChunkStore.latest_at 1 entity, 4 components", lat, group=group,
                       extra={"p99 ms": f"{np.percentile(lat, 99) * 1e3:.4f}"}))
    rows.append(Timing(f"pixelrun scene_at, all {ENTITIES} entities, random times", scene_lat, group=group,
                       extra={"p99 ms": f"{np.percentile(scene_lat, 99) * 1e3:.3f}"}))
    rows.append(Timing(f"pixelrun scene_at, all {ENTITIES} entities, same time again", still_lat, group=group,
                       extra={"p99 ms": f"{np.percentile(still_lat, 99) * 1e3:.3f}"}))
    peer = next((r for r in rows if r.peer), None)
    if peer is not None:  # the ratio column rounds to 0.00 at these speeds: say it the other way
        for r in rows:
            r.extra["peer p50 / p50"] = "1" if r is peer else f"{peer.median / r.median:.0f}x"
    return rows


def _worker_args(python: Path, script: str, argv: list[str]) -> dict:
    out = subprocess.run([str(python), "-c", script, *argv], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{python} worker failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--size-gb", type=float, default=None, help="image bytes per recording (default 2, --quick 0.256)")
    p.add_argument("--keep", action="store_true", help="keep the generated files in /dev/shm")
    p.add_argument("--skip-ingest", action="store_true")
    p.add_argument("--skip-latest", action="store_true")
    args = bench_args(__doc__, parser=p, repeat=3, quick_repeat=1)
    if args.size_gb is None:
        args.size_gb = 0.256 if args.quick else 2.0
    if not RERUN_PY.exists():
        sys.exit(f"{RERUN_PY} is missing: the peer (rerun-sdk 0.41) lives there (see DEVELOPERS.md)")
    rows = []
    if not args.skip_ingest:
        rows += bench_ingest(args)
    if not args.skip_latest:
        rows += bench_latest_at(args)
    print_table(rows, title="Store: ingest 1080p frames, latest-at (Rerun 0.41 as peer)",
                footer="_Ingest rows: median/min/max = whole-file read time; RSS/raw = RSS growth / image "
                       "bytes (target <= 1.10). Latest-at rows: median = p50 latency of one query._")


if __name__ == "__main__":
    main()
