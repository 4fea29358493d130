"""Fleet throughput: many 1080p NV12 recordings through Ray vs a plain loop in one process.

Generates --recordings (default 16) recordings of --frames 1920x1080 NV12 frames each
(default 1, so a run takes a few minutes here) in /dev/shm, then times the same work
done three ways, each row one whole pass over every frame of every recording (the
median of --repeat 2 runs after one untimed run):

- decode group: every frame to an (H, W, 4) RGBA array in memory.
  peer: a plain loop over ``pixelrun.engine.render(store, time=t)`` in one process;
  the same loop over ``pixelrun.kernels.backends.convert`` (the decode stage's kernel:
  an opaque frame alone needs no compositing, and its pixels are render's, which
  tests/engine/test_fleet.py checks), to tell Ray's share from the kernel's;
  ``pixelrun.data.read_rrd(paths)`` (read tasks + the decode stage, the batches pulled
  to the driver) on a local Ray with 1 and with 2 CPUs.
- render group: every frame to a PNG file (``pixelrun render REC --all-times -o DIR``).
  peer: that command run in this process for each recording, one after the other;
  ``pixelrun render *.rrd --all-times -o DIR --ray`` on a local Ray with 1 and 2 CPUs
  (``--ray-workers`` the same).
- with CuPy and a GPU (a lent GPU machine): read_rrd's decode stage on GPU workers
  (``backend="cupy"``, a batch of 16 frames per launch) vs CPU workers (--backend).
Each round runs every contender once (so load drifting on a shared machine hits all
alike); Ray is started before its timed runs (the start is printed, ~5 s here, paid
once per job) and warmed by an untimed pass over one recording per worker, so worker
processes and their imports are not timed.

How it scales, and what limits it: the work splits by recording (and by shard of a
recording's time points for `render --ray` when workers outnumber recordings), with
no shared state, so a cluster scales with its cores until something else saturates.
Per 1080p NV12 frame a worker reads 3.1 MB from its file and produces 8.3 MB of RGBA;
on the CPU backends decode dominates (the float64 NumPy reference: ~0.4 s a frame
here), so frames/s grows with cores. Limits, in the order they bite: (1) decode on CPU
workers (move it to GPU workers: one launch per batch, then PCIe and the 8.3 MB/frame
of output dominate); (2) the object store and network for RGBA rows (8/3 of the raw
bytes: keep decode next to the consumer, or ship raw rows with decode=False); (3) for
render --ray, PNG (zlib) encoding on the workers and the driver writing every file
(one process: ~100-200 MB/s of PNG); (4) reading the .rrd files (shared storage
bandwidth / 3.1 MB per frame); each shard of a split recording parses its whole file.
On this 2-core machine "2 CPUs" shares the cores with the driver and the other work
on the machine, so it cannot reach 2x.

Usage: python3 benchmarks/fleet.py [--quick] [--repeat N] [--recordings 16] [--frames 1]
       [--backend numpy] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import ray

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench import Timing, bench_args, print_table, scratch_dir, time_runs

import pixelrun as rr
import pixelrun.data
from pixelrun.engine import api as R
from pixelrun.engine.cli.main import main as cli
from pixelrun.engine.fleet import cluster
from pixelrun.engine.fleet import frames as F
from pixelrun.kernels import backends

W, H = 1920, 1080
PEER_DECODE = "plain loop over render(), 1 process"
PEER_RENDER = "pixelrun render REC --all-times, each in turn"


def generate(folder: Path, recordings: int, frames: int) -> list[str]:
    """`recordings` .rrd files of `frames` NV12 1080p frames each (different content)."""
    rng = np.random.default_rng(0)
    y = (np.arange(W, dtype=np.uint32)[None, :] + np.arange(H, dtype=np.uint32)[:, None]) % 256
    paths = []
    for i in range(recordings):
        rec = rr.new_recording("fleet-bench", recording_id=f"rec{i}")
        mem = rec.memory_recording()
        for t in range(frames):
            rec.set_time("frame", sequence=t)
            uv = rng.integers(0, 256, W * H // 2, dtype=np.uint8)
            buf = np.concatenate([((y + 7 * t + 13 * i) % 256).astype(np.uint8).ravel(), uv])
            rec.log("cam/front", rr.Image(bytes=buf.tobytes(), width=W, height=H, pixel_format=rr.PixelFormat.NV12))
            rec.flush()
        path = folder / f"rec{i:02d}.rrd"
        path.write_bytes(mem.rrd_bytes())
        paths.append(str(path))
    return paths


def loop_decode(paths: list[str], backend: str) -> int:
    n = 0
    for p in paths:
        store = R.open_store(p)
        for t in R.time_points(store, "frame"):
            n += R.render(store, timeline="frame", time=int(t), backend=backend).shape[0] > 0
    return n


def loop_convert(paths: list[str], backend: str) -> int:
    """The decode stage's own kernel (convert, no compositing) in a plain loop."""
    n = 0
    for p in paths:
        for fr in F.recording_frames(p):
            n += backends.convert(fr.layer.buffer, fr.layer.format, backend=backend).shape[0] > 0
    return n


def ray_decode(paths: list[str], backend: str) -> int:
    n = 0
    for batch in pixelrun.data.read_rrd(paths, backend=backend).iter_batches(batch_size=None, batch_format="numpy"):
        n += len(batch["rgba"])
    return n


def run_cli(argv: list[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # its "wrote ..." lines, not the table's
        code = cli(argv)
    if code != 0:
        raise RuntimeError(f"pixelrun {' '.join(argv)} exited {code}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--recordings", type=int, default=16)
    p.add_argument("--frames", type=int, default=1, help="frames per recording (default 1)")
    p.add_argument("--backend", default="numpy", choices=R.BACKENDS,
                   help="CPU-side backend of every contender (default numpy: the same on every machine)")
    p.add_argument("--keep", action="store_true", help="keep the generated recordings")
    args = bench_args(__doc__, parser=p, repeat=2, quick_repeat=1)
    with scratch_dir("pixelrun-fleet-bench-", args.keep) as work:
        paths = generate(work, args.recordings, args.frames)
        total = args.recordings * args.frames
        out = work / "out"
        samples: dict[tuple[str, str], list[float]] = {}

        def timed(name: str, group: str, fn) -> None:
            t = time_runs(fn, 1, warmup=0)[0]
            samples.setdefault((group, name), []).append(t)
            print(f"  {group}: {name}: {t:.2f} s", file=sys.stderr)

        def clean():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()

        def render_loop():
            clean()
            for path in paths:
                run_cli(["render", path, "--all-times", "-o", str(out / Path(path).stem) + "/", "-q",
                         "--backend", args.backend])

        def fleet(recordings: list[str], workers: int) -> None:
            clean()
            run_cli(["render", *recordings, "--all-times", "-o", str(out), "--ray", "--ray-workers", str(workers),
                     "-q", "--backend", args.backend])

        gpu = backends.availability("cupy")[0]
        loop_decode(paths[:1], args.backend)  # untimed: imports, first allocations
        starts = []
        # rounds, each contender once per round: a machine whose load drifts (other work on
        # its cores) slows every contender alike instead of whichever ran then
        for _ in range(args.repeat):
            timed(PEER_DECODE, "decode", lambda: loop_decode(paths, args.backend))
            timed("plain loop over convert() (the decode stage's kernel), 1 process", "decode",
                  lambda: loop_convert(paths, args.backend))
            timed(PEER_RENDER, "render", render_loop)
            for workers in (1, 2):
                t0 = time.perf_counter()
                cluster.connect(None, workers)  # a local Ray, as `pixelrun render --ray` starts one
                starts.append(time.perf_counter() - t0)
                ray.data.DataContext.get_current().enable_progress_bars = False
                try:
                    ray_decode(paths[:workers], args.backend)  # untimed: worker processes and their imports
                    timed(f"read_rrd + decode, Ray {workers} CPU(s)", "decode", lambda: ray_decode(paths, args.backend))
                    fleet(paths[:workers], workers)  # untimed, as above
                    timed(f"render --ray, {workers} worker(s)", "render", lambda w=workers: fleet(paths, w))
                    if gpu and workers == 2 and ray.cluster_resources().get("GPU", 0) >= 1:
                        ray_decode(paths[:1], "cupy")
                        timed("read_rrd + decode on GPU workers (cupy)", "decode", lambda: ray_decode(paths, "cupy"))
                finally:
                    ray.shutdown()
        rows = []
        for (group, name), runs in sorted(samples.items(), key=lambda kv: kv[0][0]):
            t = Timing(name, runs, group, peer=name in (PEER_DECODE, PEER_RENDER))
            t.extra["frames/s"] = f"{total / t.median:.2f}"
            rows.append(t)
        print_table(rows, title=f"{args.recordings} recordings x {args.frames} frame(s) of NV12 {W}x{H} "
                                f"({args.backend} backend on CPU workers)",
                    footer=f"_Ray start: {min(starts):.1f}..{max(starts):.1f} s, not in the rows; "
                           f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPU(s)._")


if __name__ == "__main__":
    main()
