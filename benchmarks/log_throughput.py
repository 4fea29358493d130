"""Logging throughput: pixelrun's SDK vs rerun-sdk 0.41, same data, files on /dev/shm (or --dir).

Every run is a fresh process (so import costs, caches and RSS are per run), and
contenders alternate A B C A B C. Workloads (issue 4):

- rgb1080:   1920x1080 RGB u8 random pixels x 300 frames, rr.log to a file
- rgb1080_grad: the same with a compressible gradient (LZ4 shrinks it ~60x)
- scene1080: 1080p RGB like a simulator's camera (flat-shaded boxes and discs over a sky
  gradient, moving per frame): compressible the way rendered images are
- depth480:  640x480 u16 DepthImage x 1000 frames (a floor ramp, a box, a moving disc):
  a depth camera's stream, the other common compressible case
- rgb480:    640x480 RGB u8 x 2000 frames
- nv12_1080: NV12 1920x1080 (bytes=) x 300 frames
- columns:   one send_columns of 300 x 640x480 RGB u8
- rgb1080_30fps: 300 frames of 1080p RGB paced at 30 fps (the log call's own latency;
  in the unpaced workloads p50/p99 include back-pressure waits on the writer)

Contenders: "rerun 0.41" (the peer, run with --rerun-python; it LZ4-compresses every
chunk), "pixelrun lz4 adaptive" (the default: LZ4 unless an entity's chunks do not
shrink by 10 %, then raw for a back-off, see pixelrun.batcher.CompressionPolicy),
"pixelrun lz4 off" (PIXELRUN_COMPRESSION=off), and "ceiling": the physical floor
measured in the same run, i.e. one copy of each frame plus raw writes of it on a
writer thread (what any SDK must at least do). `--compression` picks pixelrun's rows.

Columns: wall time from the first log call until the file is complete (flush and
close included), frames/s, MB/s of pixel data, p50/p99 of the individual log call,
peak RSS of the process, the file size and its ratio to Rerun's file, and for
pixelrun how many chunks were written LZ4 / raw.

Files go to /dev/shm by default (no disk in the timing; there the write itself, the new
tmpfs pages, is most of a raw frame's cost). ``--dir`` puts them on a disk's file system
instead, as a user's recordings are: the page cache takes the writes, each file is deleted
right after its run (before writeback) and ``os.sync()`` runs before every run. Usage:

    python3 benchmarks/log_throughput.py --rerun-python .venv-rerun/bin/python [--quick] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench import Timing, bench_args, print_table

WORKLOADS = {
    "rgb1080": dict(kind="log", w=1920, h=1080, n=300, fmt="rgb"),
    "rgb1080_grad": dict(kind="log", w=1920, h=1080, n=300, fmt="grad"),
    "scene1080": dict(kind="log", w=1920, h=1080, n=300, fmt="scene"),
    "depth480": dict(kind="log", w=640, h=480, n=1000, fmt="depth"),
    "rgb480": dict(kind="log", w=640, h=480, n=2000, fmt="rgb"),
    "nv12_1080": dict(kind="log", w=1920, h=1080, n=300, fmt="nv12"),
    "columns": dict(kind="columns", w=640, h=480, n=300, fmt="rgb"),
    # A camera at 30 fps: the loop sleeps between frames, so the log latency is the
    # SDK's own cost, not back-pressure from a saturated writer.
    "rgb1080_30fps": dict(kind="log", w=1920, h=1080, n=300, fmt="rgb", fps=30),
}
QUICK_FRAMES = {"rgb1080": 60, "rgb1080_grad": 60, "scene1080": 60, "depth480": 200, "rgb480": 400,
                "nv12_1080": 60, "columns": 60, "rgb1080_30fps": 30}

# One child script for every contender: `MODULE` is "pixelrun", "rerun" or "ceiling".
CHILD = r'''
import json, os, resource, sys, threading, time, queue
import numpy as np
module, path, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
w, h, n, fmt, kind = spec["w"], spec["h"], spec["n"], spec["fmt"], spec["kind"]
rng = np.random.default_rng(0)
POOL = 4  # distinct random frames, cycled (generation is not what we measure)
if fmt == "rgb":
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(POOL)]
    frame_bytes = w * h * 3
elif fmt == "grad":  # compressible: a diagonal colour gradient, shifted per frame
    x = np.arange(w, dtype=np.uint16)[None, :, None]
    y = np.arange(h, dtype=np.uint16)[:, None, None]
    frames = [np.broadcast_to(((x + y + 7 * k + np.arange(3) * 40) % 256).astype(np.uint8), (h, w, 3)).copy()
              for k in range(POOL)]
    frame_bytes = w * h * 3
elif fmt == "scene":  # a rendered scene: sky gradient, flat-shaded boxes and discs, moving
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for k in range(POOL):
        img = np.empty((h, w, 3), np.uint8)
        img[:] = np.stack([90 + yy // 12, 140 + yy // 16, 230 - yy // 10], -1)[:, :1].astype(np.uint8)
        img[h // 2:] = (96, 104, 88)  # the ground
        for j, (bx, by, bw, bh) in enumerate([(200, 500, 300, 250), (900, 450, 420, 330), (1500, 560, 260, 200)]):
            x0 = bx + 9 * k
            img[by:by + bh, x0:x0 + bw] = (40 + 60 * j, 180 - 50 * j, 60 + 70 * j)
            img[by:by + bh // 6, x0:x0 + bw] = (70 + 60 * j, 210 - 50 * j, 90 + 70 * j)  # a lit top face
        disc = (xx - 700 - 15 * k) ** 2 + (yy - 300) ** 2 < 90 ** 2
        img[disc] = (250, 200, 40)
        frames.append(img)
    frame_bytes = w * h * 3
elif fmt == "depth":  # millimetres: floor ramp, a box, a disc moving across
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for k in range(POOL):
        d = (4000 - 5 * yy).astype(np.uint16)
        d[150:330, 80:240] = 1800
        d[(xx - 400 - 12 * k) ** 2 + (yy - 220) ** 2 < 60 ** 2] = 1200
        d[:20, :] = 0  # no return
        frames.append(d)
    frame_bytes = w * h * 2
else:
    nb = w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)
    frames = [rng.integers(0, 256, nb, dtype=np.uint8).tobytes() for _ in range(POOL)]
    frame_bytes = nb
lat = []
if module == "ceiling":
    q = queue.Queue(maxsize=16)
    def writer():
        with open(path, "wb", buffering=0) as f:
            while True:
                b = q.get()
                if b is None:
                    return
                f.write(b)
    th = threading.Thread(target=writer)
    t0 = time.perf_counter()
    th.start()
    if kind == "columns":
        allf = np.stack([frames[i % POOL] for i in range(n)])
        t0 = time.perf_counter()
        q.put(np.array(allf, copy=True))
    else:
        fps = spec.get("fps")
        for i in range(n):
            if fps:
                time.sleep(max(0.0, t0 + i / fps - time.perf_counter()))
            a = time.perf_counter()
            f = frames[i % POOL]
            q.put(np.array(f, copy=True) if isinstance(f, np.ndarray) else bytes(bytearray(f)))
            lat.append(time.perf_counter() - a)
    q.put(None)
    th.join()
    total = time.perf_counter() - t0
else:
    if module == "pixelrun":
        import pixelrun as rr
    else:
        import rerun as rr
    rr.init("bench", spawn=False)
    rr.save(path)
    if kind == "columns":
        allf = np.stack([frames[i % POOL] for i in range(n)])
        fmt_c = rr.components.ImageFormat(width=w, height=h, color_model="RGB", channel_datatype="U8")
        t0 = time.perf_counter()
        rr.log("cam", rr.Image.from_fields(format=fmt_c), static=True)
        rr.send_columns("cam", indexes=[rr.TimeColumn("frame", sequence=np.arange(n))],
                        columns=rr.Image.columns(buffer=allf.reshape(n, -1)))
    else:
        fps = spec.get("fps")
        t0 = time.perf_counter()
        for i in range(n):
            if fps:
                time.sleep(max(0.0, t0 + i / fps - time.perf_counter()))
            a = time.perf_counter()
            rr.set_time("frame", sequence=i)
            f = frames[i % POOL]
            if fmt in ("rgb", "grad", "scene"):
                rr.log("cam", rr.Image(f))
            elif fmt == "depth":
                rr.log("cam", rr.DepthImage(f, meter=1000.0))
            else:
                rr.log("cam", rr.Image(bytes=f, width=w, height=h, pixel_format=rr.PixelFormat.NV12))
            lat.append(time.perf_counter() - a)
    rec = rr.get_global_data_recording()
    rec.flush()  # 0.41 has no module-level flush
    rr.disconnect()
    total = time.perf_counter() - t0
    stats = rec.compression_stats() if hasattr(rec, "compression_stats") else None
size = os.path.getsize(path)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
lat.sort()
def pct(p):
    return lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))] if lat else float("nan")
print(json.dumps(dict(total=total, frames=n, bytes=n * frame_bytes, p50=pct(0.5), p99=pct(0.99),
                      lat=lat, rss=rss, size=size, lz4=globals().get("stats"))))
'''


def pooled_pct(runs: list, p: float) -> float:
    """Percentile p of the log-call latencies of all runs together (seconds)."""
    lat = sorted(x for r in runs for x in r["lat"])
    return lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))] if lat else float("nan")


def run_child(python: str, module: str, spec: dict, workdir: str, extra_env: dict) -> dict:
    path = os.path.join(workdir, f"{module}.rrd")
    env = dict(os.environ, XDG_RUNTIME_DIR="/tmp", RERUN_TELEMETRY_ENABLED="false")
    for k in ("PIXELRUN_SAVE", "PIXELRUN_STRICT", "PIXELRUN_COMPRESSION"):
        env.pop(k, None)
    env.update(extra_env)
    os.sync()  # on a disk (--dir): no contender pays for writeback of what ran before it
    try:
        r = subprocess.run([python, "-c", CHILD, module, path, json.dumps(spec)], capture_output=True,
                           text=True, env=env, timeout=900)
        if r.returncode != 0:
            raise RuntimeError(f"{module} failed: {r.stderr[-2000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        if os.path.exists(path):
            os.remove(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rerun-python", default=None, help="interpreter with rerun-sdk 0.41 (the peer)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset")
    p.add_argument("--frames", type=int, default=None, help="override frames per workload")
    p.add_argument("--dir", default="/dev/shm", help="folder for the files (default /dev/shm: no disk in the timing)")
    p.add_argument("--compression", default="adaptive,off",
                   help="pixelrun rows: comma-separated PIXELRUN_COMPRESSION modes (adaptive, off, always)")
    args = bench_args(__doc__, parser=p, repeat=5, quick_repeat=2)
    # name -> (interpreter, child module, extra environment)
    contenders = {f"pixelrun lz4 {m}": (sys.executable, "pixelrun", {"PIXELRUN_COMPRESSION": m})
                  for m in args.compression.split(",")}
    contenders["ceiling"] = (sys.executable, "ceiling", {})
    if args.rerun_python:
        contenders = {"rerun 0.41": (args.rerun_python, "rerun", {}), **contenders}
    rows = []
    workdir = tempfile.mkdtemp(prefix="pixelrun_bench_", dir=args.dir)
    for wname in args.workloads.split(","):
        spec = dict(WORKLOADS[wname])
        if args.frames:
            spec["n"] = args.frames
        elif args.quick:
            spec["n"] = QUICK_FRAMES[wname]
        results: dict = {c: [] for c in contenders}
        for _ in range(args.repeat):  # A B C A B C: drift hits everyone alike
            for cname, (py, module, extra_env) in contenders.items():
                results[cname].append(run_child(py, module, spec, workdir, extra_env))
        case = f"{wname} ({spec['w']}x{spec['h']} x{spec['n']})"
        peer_size = statistics.median([r["size"] for r in results["rerun 0.41"]]) if args.rerun_python else None
        for cname, rs in results.items():
            t = Timing(cname, [r["total"] for r in rs], group=case, peer=(cname == "rerun 0.41"))
            med = statistics.median
            total = med([r["total"] for r in rs])
            t.extra = {
                "frames/s": f"{rs[0]['frames'] / total:.0f}",
                "MB/s": f"{rs[0]['bytes'] / total / 1e6:.0f}",
                # percentiles over every log call of every run of this contender: a
                # per-run p99 of 150 calls would be the second-slowest call, not a p99
                "log p50 ms": "-" if spec["kind"] == "columns" else f"{pooled_pct(rs, 0.50) * 1e3:.3f}",
                "log p99 ms": "-" if spec["kind"] == "columns" else f"{pooled_pct(rs, 0.99) * 1e3:.3f}",
                "peak RSS MB": f"{med([r['rss'] for r in rs]) / 2**20:.0f}",
                "file MB": f"{med([r['size'] for r in rs]) / 1e6:.1f}",
                "file / rerun's": "-" if not peer_size else f"{med([r['size'] for r in rs]) / peer_size:.2f}",
                # chunks written LZ4 / raw (first run; the policy is deterministic per data)
                "lz4/raw chunks": "-" if not rs[0].get("lz4") else
                f"{rs[0]['lz4']['compressed']}/{rs[0]['lz4']['chunks'] - rs[0]['lz4']['compressed']}",
            }
            rows.append(t)
    os.rmdir(workdir)
    footer = ("_Wall time = first log call until the file is flushed and closed; "
              f"ceiling = one copy per frame + raw writes on a thread; files in {args.dir}; "
              f"{args.repeat} fresh processes per contender, alternating._")
    print_table(rows, title="Logging throughput to an .rrd file", footer=footer)


if __name__ == "__main__":
    main()
