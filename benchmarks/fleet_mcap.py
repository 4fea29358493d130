"""Reading one big ROS 2 bag into Ray Data rows: one read task vs log-time parts.

Writes one MCAP bag (ROS 2 ``sensor_msgs/msg/Image``, zstd chunks of ~1 MiB, so one
chunk per frame) of --frames (default 48) 1920x1080 NV12 frames in /dev/shm, then
times one whole pass over its raw rows (``decode=False``: the part that is MCAP's; the
decode stage is read_rrd's, measured by benchmarks/fleet.py), the median of --repeat 3
rounds, each round running every contender once:

- peer: a plain loop over ``engine/fleet/frames.py``'s ``recording_frames(bag)`` in one
  process (what one read task does, without the Arrow table);
- ``read_mcap(bag, decode=False)`` on a local Ray with 2 CPUs as one read task;
- the same as 2 read tasks split by log time at MCAP chunks (``bag_parts``: each task
  reads only its chunks and holds only its messages);
- the same as 2 read tasks that are slices of the frame list (what a shard of an .rrd,
  or of a bag on a stamp timeline, does: each reads the whole bag; asked for here with
  ``timeline="ros2_timestamp"``).

A bag is split only when it is at least 2 x MIN_SHARD_BYTES (64 MiB) of image data;
this benchmark lowers that to 16 MiB so --quick's smaller bag splits as well. Rows are
pulled to the driver (``iter_batches``), so the object store's copy is in every Ray row.

What limits it: per frame a task decompresses ~3.1 MB of zstd, CDR-decodes it (a copy)
and copies it into an Arrow block; parts divide that by the number of tasks, slices
multiply the decompression by it. On this 2-core machine the driver pulling 3.1 MB
rows shares the cores with both tasks, so 2 tasks cannot reach 2x. Measured here (48
frames, load ~6): the read itself is ~2.4 ms a frame (the peer) and moving the rows
through Ray's object store to the driver costs 5-6x that, so one task vs two parts is
within the noise; parts pay where reading bites (slow storage, bags bigger than a
worker's memory: a part holds only its own messages) and slices cost a whole extra read
per task. Decoding (the next stage, ~0.4 s a 1080p frame on numpy) dwarfs both.

Usage: python3 benchmarks/fleet_mcap.py [--quick] [--repeat N] [--frames 48] [--keep]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import ray

HERE = os.path.dirname(os.path.abspath(__file__))
# benchmarks/mcap.py would shadow the mcap package: this folder goes last, so that
# `import mcap` finds the package and `_bench` is still found (as benchmarks/mcap.py does)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE] + [HERE]
sys.path.insert(0, os.path.dirname(HERE))
from _bench import Timing, bench_args, print_table, scratch_dir, time_runs

import pixelrun.data
from pixelrun.engine.fleet import cluster
from pixelrun.engine.fleet import frames as F
from tests.mcap_fixtures import RawImage, write_ros_bag

# ...and off the path again: Ray puts the driver script's folder, when it is on the
# path, at the front of every worker's path, where benchmarks/mcap.py would shadow mcap
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

W, H = 1920, 1080
PEER = "plain loop over recording_frames(), 1 process"


def generate(path: Path, frames: int) -> None:
    """A ROS 2 bag of `frames` NV12 1080p frames (a moving gradient + noisy chroma)."""
    rng = np.random.default_rng(0)
    y = ((np.arange(W, dtype=np.uint32)[None, :] + np.arange(H, dtype=np.uint32)[:, None]) % 256).astype(np.uint8)
    msgs = []
    for t in range(frames):
        uv = rng.integers(0, 256, W * H // 2, dtype=np.uint8)
        msgs.append(RawImage("/cam/front", "nv12", W, H, W, np.concatenate([(y + t).ravel(), uv]).tobytes()))
    write_ros_bag(path, msgs, times=[1_000_000_000 + 33_000_000 * t for t in range(frames)])


def loop(bag: str) -> int:
    return sum(f.layer.buffer.nbytes > 0 for f in F.recording_frames(bag))


def ray_rows(bag: str, blocks: int, timeline=None) -> int:
    ds = pixelrun.data.read_mcap(bag, decode=False, timeline=timeline, override_num_blocks=blocks)
    return sum(len(b["buffer"]) for b in ds.iter_batches(batch_size=None, batch_format="numpy"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--frames", type=int, default=None, help="frames in the bag (default 48; --quick 16)")
    p.add_argument("--keep", action="store_true", help="keep the generated bag")
    args = bench_args(__doc__, parser=p, repeat=3, quick_repeat=1)
    frames = args.frames or (16 if args.quick else 48)
    with scratch_dir("pixelrun-fleet-mcap-bench-", args.keep) as work:
        bag = str(work / "big.mcap")
        generate(Path(bag), frames)
        F.MIN_SHARD_BYTES = 16 << 20
        parts = F.bag_parts(bag, None, 2)
        print(f"bag: {os.path.getsize(bag) / 1e6:.0f} MB on disk, {F.recording_bytes(bag) / 1e6:.0f} MB of image "
              f"chunks; 2 parts read {[len(q.chunks) for q in parts]} chunks", file=sys.stderr)
        contenders = {
            PEER: lambda: loop(bag),
            "read_mcap(decode=False), 1 read task, Ray 2 CPUs": lambda: ray_rows(bag, 1),
            "read_mcap(decode=False), 2 read tasks: log-time parts": lambda: ray_rows(bag, 2),
            "2 read tasks: frame-list slices (ros2_timestamp), each reads the whole bag":
                lambda: ray_rows(bag, 2, "ros2_timestamp"),
        }
        t0 = time.perf_counter()
        cluster.connect(None, 2)  # a local Ray, as `pixelrun render --ray` starts one
        start = time.perf_counter() - t0
        ray.data.DataContext.get_current().enable_progress_bars = False
        samples: dict[str, list[float]] = {}
        try:
            ray_rows(bag, 2)  # untimed: worker processes and their imports
            loop(bag)
            for _ in range(args.repeat):
                for name, fn in contenders.items():
                    t = time_runs(fn, 1, warmup=0)[0]
                    samples.setdefault(name, []).append(t)
                    print(f"  {name}: {t:.2f} s", file=sys.stderr)
        finally:
            ray.shutdown()
        rows = []
        for name, runs in samples.items():
            t = Timing(name, runs, "read", peer=name == PEER)
            t.extra["frames/s"] = f"{frames / t.median:.1f}"
            rows.append(t)
        print_table(rows, title=f"one ROS 2 bag of {frames} NV12 {W}x{H} frames, raw rows (decode=False)",
                    footer=f"_Ray start: {start:.1f} s, not in the rows; load average at the end: "
                           f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPU(s)._")


if __name__ == "__main__":
    main()
