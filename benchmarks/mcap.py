"""MCAP / ROS 2 bags: open + render, render every frame, convert; pixelrun vs Rerun 0.41 and mcap + OpenCV.

The bag: two 1080p camera topics, ``/cam/bayer`` (``bayer_rggb8``) and ``/cam/nv12``
(``nv12``), `--frames` messages each, zstd chunks, written by the `mcap` writers
(generation is not timed). Every run is a fresh process (import costs, caches and
peak RSS are per run); contenders alternate A B A B. Cases:

- open + last frame: the time until the last frame is on screen / in memory.
  pixelrun: ``open_store`` + ``render`` (the composited view at the latest time).
  Peer: Rerun 0.41's viewer opening the bag headless (``rerun FILE.mcap --headless
  --screenshot-to``, process start to screenshot written, under xvfb-run).
- all frames: every message decoded to RGB. pixelrun: ``render_times`` over every
  time point of message_log_time (``pixelrun render --all-times`` without PNG
  writing; each frame composites both cameras). Peer: ``mcap`` + ``mcap-ros2-support``
  + OpenCV ``cvtColor`` in Python (BayerRG2RGB, YUV2RGB_NV12), one frame at a time.
- convert: ``pixelrun convert`` vs ``rerun mcap convert`` (peer), MCAP -> .rrd.
- seek to the first frame: the bag read whole into a store with a memory limit of a
  quarter of its decoded size (most of it evicted), then the view at the first time
  point rendered: the store reads back just the MCAP chunks it needs (column "chunks
  re-read"). Timed: the render only (not the open). Peer: the same render from a store
  without a limit (everything held).

Columns: wall time per run (ms), frames/s of the case's messages, the peak RSS of the
process (max over runs), ratio to the peer. Usage:

    python3 benchmarks/mcap.py [--quick] [--frames 8] [--size 1920x1080] [--backend auto] [--only seek]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# This file is named like the `mcap` package: its folder goes to the end of the path, so
# `import mcap` finds the package and `_bench` is still found.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE] + [HERE]
from _bench import Timing, bench_args, frame_size, print_table, scratch_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r'''
import json, resource, sys, time
case, path, out, backend = sys.argv[1:5]
t0 = time.perf_counter()
frames = 0
extra = {}
if case == "pixelrun-open":
    from pixelrun.engine import api
    store = api.open_store(path)
    rgba = api.render(store, backend=backend)
    frames = 1
elif case == "pixelrun-all":
    from pixelrun.engine import api
    store = api.open_store(path)
    times = api.time_points(store, "message_log_time")
    for t, rgba in api.render_times(store, times, timeline="message_log_time", backend=backend):
        if isinstance(rgba, BaseException):
            raise rgba
        frames += 1
elif case == "opencv-all":
    import cv2, numpy as np
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    codes = {"bayer_rggb8": cv2.COLOR_BayerRG2RGB, "nv12": cv2.COLOR_YUV2RGB_NV12}
    with open(path, "rb") as f:
        for _, _, _, m in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            rows = m.height * 3 // 2 if m.encoding == "nv12" else m.height
            img = np.frombuffer(m.data, np.uint8).reshape(rows, m.step)
            rgb = cv2.cvtColor(img, codes[m.encoding])
            frames += 1
elif case in ("pixelrun-seek", "pixelrun-seek-held"):
    from pixelrun.engine import api
    from pixelrun.engine.store.store import ChunkStore
    store = ChunkStore(memory_limit=int(sys.argv[5]) if case == "pixelrun-seek" else None)
    store.ingest_file(path)
    first = int(api.time_points(store, "message_log_time")[0])
    t0 = time.perf_counter()
    rgba = api.render(store, timeline="message_log_time", time=first, backend=backend)
    frames = 1
    extra = {"chunks re-read": store.reread_totals["source_chunks"], "evicted": store.evicted_totals["chunks"],
             "held MB": round(store.held_bytes / 1e6, 1)}
elif case == "pixelrun-convert":
    from pixelrun.engine.cli.convert import convert
    frames = convert(path, out).written
else:
    raise SystemExit(f"unknown case {case}")
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "frames": frames, "extra": extra,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
'''

# Runs a command and reports its wall time and the peak RSS of its largest descendant.
WRAP = r'''
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, timeout=900)
dt = time.perf_counter() - t0
if proc.returncode != 0:
    sys.stderr.write(proc.stderr.decode(errors="replace")[-2000:])
    raise SystemExit(proc.returncode)
print(json.dumps({"seconds": dt, "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
'''


def write_bag(path: Path, frames: int, w: int, h: int) -> None:
    import numpy as np

    from tests.mcap_fixtures import RawImage, write_ros_bag

    rng = np.random.default_rng(0)
    base = (np.add.outer(np.arange(h) * 255 // max(h - 1, 1), np.arange(w) * 255 // max(w - 1, 1)) // 2)
    msgs, times = [], []
    cw, ch = (w + 1) // 2, (h + 1) // 2
    for i in range(frames):
        noise = rng.integers(0, 24, (h, w), dtype=np.uint8)
        mosaic = (base + noise + i).astype(np.uint8)
        msgs.append(RawImage("/cam/bayer", "bayer_rggb8", w, h, w, mosaic.tobytes()))
        uv = rng.integers(100, 156, (ch, 2 * cw), dtype=np.uint8)
        msgs.append(RawImage("/cam/nv12", "nv12", w, h, w, mosaic.tobytes() + uv.tobytes()))
        t = 1_000_000_000 + i * 33_333_333
        times += [t, t + 1_000_000]
    write_ros_bag(path, msgs, times=times, chunk_size=4 << 20)


def _child(case: str, bag: Path, out: Path, backend: str, limit: int = 0) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, case, str(bag), str(out), backend, str(limit)],
                          capture_output=True,
                          text=True, timeout=1800, cwd=str(ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"{case} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _command(argv: list) -> dict:
    proc = subprocess.run([sys.executable, "-c", WRAP, *map(str, argv)], capture_output=True, text=True,
                          timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=8, help="messages per camera topic (default 8; ~300 for GBs)")
    p.add_argument("--size", type=frame_size, default=(1920, 1080), metavar="WxH", help="camera resolution")
    p.add_argument("--backend", default="auto", help="pixelrun render backend")
    p.add_argument("--only", default="", help="run only the cases whose name contains this (e.g. seek)")
    p.add_argument("--rerun", default=str(ROOT / ".venv-rerun" / "bin" / "rerun"), help="Rerun 0.41 binary")
    args = bench_args(__doc__, parser=p, repeat=3, quick_repeat=1)
    w, h = args.size
    rerun = args.rerun if os.path.exists(args.rerun) else None
    xvfb = shutil.which("xvfb-run")
    with scratch_dir("pixelrun-mcap-bench-") as d:
        bag, rrd, png = d / "cams.mcap", d / "out.rrd", d / "shot.png"
        t0 = time.perf_counter()
        write_bag(bag, args.frames, w, h)
        size_mb = bag.stat().st_size / 1e6
        print(f"bag: {2 * args.frames} messages ({args.frames} bayer_rggb8 + {args.frames} nv12, {w}x{h}), "
              f"{size_mb:.1f} MB zstd, written in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        n_msgs = 2 * args.frames
        # a quarter of the decoded bag (bayer: w*h bytes, nv12: w*h*3/2 per frame)
        limit = args.frames * (w * h + w * h * 3 // 2) // 4
        contenders = {
            "open + last frame": {"pixelrun": lambda: _child("pixelrun-open", bag, rrd, args.backend)},
            "all frames": {"pixelrun render --all-times": lambda: _child("pixelrun-all", bag, rrd, args.backend),
                           "mcap + OpenCV cvtColor": lambda: _child("opencv-all", bag, rrd, args.backend)},
            "convert": {"pixelrun convert": lambda: _child("pixelrun-convert", bag, rrd, args.backend)},
            "seek to first frame": {
                f"pixelrun, limit {limit / 1e6:.0f} MB": lambda: _child("pixelrun-seek", bag, rrd, args.backend,
                                                                        limit),
                "pixelrun, whole bag held": lambda: _child("pixelrun-seek-held", bag, rrd, args.backend)},
        }
        peers = {"all frames": "mcap + OpenCV cvtColor", "seek to first frame": "pixelrun, whole bag held"}
        if rerun and xvfb:
            contenders["open + last frame"]["Rerun 0.41 headless viewer"] = lambda: _command(
                [xvfb, "-a", rerun, bag, "--headless", "--window-size", "800x600", "--screenshot-to", png])
            peers["open + last frame"] = "Rerun 0.41 headless viewer"
        if rerun:
            contenders["convert"]["rerun mcap convert"] = lambda: _command(
                [rerun, "mcap", "convert", bag, "-o", rrd])
            peers["convert"] = "rerun mcap convert"
        contenders = {g: cs for g, cs in contenders.items() if args.only in g}
        rows = []
        for group, cs in contenders.items():
            samples: dict = {name: [] for name in cs}
            for _ in range(args.repeat):  # alternate A B A B
                for name, fn in cs.items():
                    samples[name].append(fn())
            for name, runs in samples.items():
                secs = [r["seconds"] for r in runs]
                frames = runs[0].get("frames", 1 if group == "open + last frame" else n_msgs)
                t = Timing(name, secs, group, peers.get(group) == name)
                med = sorted(secs)[len(secs) // 2]
                t.extra = {"frames": frames, "frames/s": f"{frames / med:.1f}",
                           "peak RSS MB": f"{max(r['maxrss_kb'] for r in runs) / 1024:.0f}", **runs[0].get("extra", {})}
                rows.append(t)
    print_table(rows, title=f"MCAP: {args.frames} x 2 cameras at {w}x{h} ({size_mb:.0f} MB bag), "
                            f"backend {args.backend}",
                footer=("_open + last frame: frames = 1 (the composited view); Rerun's time includes its process "
                        "start and Xvfb; convert's frames = messages written; seek: the render at the first time point "
                        "only, after the bag was read whole (chunks re-read = MCAP chunks read back)._"))


if __name__ == "__main__":
    main()
