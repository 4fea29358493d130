"""Shared helpers for every benchmark script in benchmarks/ (the project's convention).

Convention:
- one script per topic (`benchmarks/convert_cpu.py`, ...), runnable as
  ``python3 benchmarks/TOPIC.py [--quick]``;
- every contender, including the named peer, is measured in the same run;
- each timing is the median of repeated runs, reported with its min and max;
- the result is one Markdown table whose last column is the ratio to the peer
  (``time / peer time``: below 1 means faster than the peer).

Typical use::

    from _bench import bench_args, measure, print_table

    args = bench_args(__doc__)                    # adds --quick and --repeat
    rows = [
        measure("OpenCV NV12", lambda: cv2.cvtColor(...), group="NV12", peer=True,
                repeat=args.repeat),
        measure("pixelrun NV12", lambda: ref(...), group="NV12", repeat=args.repeat),
    ]
    print_table(rows, title="NV12 -> RGBA, 1920x1080")

Rows are grouped (one group per case, e.g. a format); in each group exactly one row
is the peer and the ratio column of every row of the group is relative to it.
Contenders that write files (noisy disk) go through `measure_interleaved`, which
alternates A B A B so drift hits every contender alike; write to /dev/shm.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

__all__ = ["Timing", "bench_args", "time_runs", "measure", "measure_interleaved", "print_table",
           "format_table", "machine_line", "frame_size", "opencv_peer", "scratch_dir"]


@dataclass
class Timing:
    """Repeated timings of one contender in one group (seconds)."""

    name: str
    samples: list[float]
    group: str = ""
    peer: bool = False
    note: str = ""
    extra: dict = field(default_factory=dict)  # optional extra columns, e.g. {"MB/s": 812}

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)


def bench_args(description: Optional[str] = None, argv: Optional[list[str]] = None,
               parser: Optional[argparse.ArgumentParser] = None,
               repeat: int = 15, quick_repeat: int = 3) -> argparse.Namespace:
    """Parse the common flags: ``--quick`` (few repeats, for iteration) and ``--repeat N``.

    Pass your own ``parser`` to add topic-specific flags first. The result has
    ``args.quick`` and ``args.repeat`` (already lowered when --quick is given).
    """
    p = parser or argparse.ArgumentParser(description=(description or "").strip().splitlines()[0]
                                          if description else None)
    p.add_argument("--quick", action="store_true",
                   help=f"{quick_repeat} repeats instead of {repeat}: for iteration, not for reports")
    p.add_argument("--repeat", type=int, default=None, help=f"timed runs per contender (default {repeat})")
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = quick_repeat if args.quick else repeat
    return args


def frame_size(text: str) -> tuple[int, int]:
    """``WxH`` (e.g. ``1920x1080``) -> (width, height): the ``type=`` of a ``--size`` flag."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 1920x1080; got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive width and height; got {text!r}")
    return w, h


def opencv_peer(script: str):
    """The ``cv2`` module, the peer of the conversion benchmarks, or exit naming `script`
    and how to install it."""
    try:
        import cv2  # the test extra, not a dependency of pixelrun
    except ImportError:
        sys.exit(f"{script}: OpenCV is the peer; install it with pip install -e '.[test]'")
    return cv2


@contextlib.contextmanager
def scratch_dir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A new folder for a benchmark's generated inputs, in /dev/shm where there is one (so
    the disk is not what is measured); removed at the end, or kept (--keep) and named on
    stderr."""
    work = Path(tempfile.mkdtemp(prefix=prefix, dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    try:
        yield work
    finally:
        if keep:
            print(f"generated files kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def time_runs(fn: Callable[[], object], repeat: int, warmup: int = 1,
              setup: Optional[Callable[[], object]] = None) -> list[float]:
    """Wall-clock seconds of `repeat` calls of `fn` after `warmup` untimed calls.

    `setup` (untimed) runs before every call, e.g. to reset an output file. The
    garbage collector is paused during each timed call so it does not land in one
    sample at random.
    """
    for _ in range(warmup):
        if setup:
            setup()
        fn()
    samples = []
    for _ in range(repeat):
        if setup:
            setup()
        gc_was = gc.isenabled()
        gc.disable()
        try:
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        finally:
            if gc_was:
                gc.enable()
    return samples


def measure(name: str, fn: Callable[[], object], *, group: str = "", peer: bool = False,
            repeat: int = 15, warmup: int = 1, setup: Optional[Callable[[], object]] = None,
            note: str = "") -> Timing:
    """Time one contender; see `time_runs`."""
    return Timing(name, time_runs(fn, repeat, warmup, setup), group, peer, note)


def measure_interleaved(contenders: dict[str, Callable[[], object]], *, group: str = "",
                        peer: Optional[str] = None, repeat: int = 15, warmup: int = 1,
                        setup: Optional[Callable[[], object]] = None) -> list[Timing]:
    """Time several contenders in alternation (A B A B ...), so drifting machine state
    (a noisy disk, other processes) hits them alike. `peer` names the peer contender."""
    if peer is not None and peer not in contenders:
        raise ValueError(f"peer {peer!r} is not one of the contenders: {', '.join(contenders)}")
    for _ in range(warmup):
        for fn in contenders.values():
            if setup:
                setup()
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            samples[name] += time_runs(fn, 1, warmup=0, setup=setup)
    return [Timing(name, samples[name], group, name == peer) for name in contenders]


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.1f}" if ms >= 100 else f"{ms:.2f}" if ms >= 1 else f"{ms:.4f}"


def format_table(rows: Iterable[Timing], title: Optional[str] = None,
                 ratio_label: str = "ratio vs peer") -> str:
    """The Markdown table: group, contender, median/min/max in ms, runs, ratio to the peer."""
    rows = list(rows)
    extra_cols: list[str] = []
    for r in rows:
        for k in r.extra:
            if k not in extra_cols:
                extra_cols.append(k)
    peers = {}
    for r in rows:
        if r.peer:
            if r.group in peers:
                raise ValueError(f"group {r.group!r} has two peers: {peers[r.group].name!r} and {r.name!r}")
            peers[r.group] = r
    head = ["case", "contender", "median ms", "min ms", "max ms", "runs", *extra_cols, ratio_label]
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|")
    for r in rows:
        p = peers.get(r.group)
        if p is None:
            ratio = "n/a (no peer)"
        elif r is p:
            ratio = "1.00 (peer)"
        else:
            ratio = f"{r.median / p.median:.2f}"
        name = r.name + (f" ({r.note})" if r.note else "")
        extras = [str(r.extra.get(k, "")) for k in extra_cols]
        lines.append("| " + " | ".join([r.group, name, _ms(r.median), _ms(r.min), _ms(r.max),
                                         str(len(r.samples)), *extras, ratio]) + " |")
    return "\n".join(lines)


def machine_line() -> str:
    """One line naming the machine, printed under each table so numbers carry context."""
    return (f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}, "
            f"{platform.platform(terse=True)}")


def print_table(rows: Iterable[Timing], title: Optional[str] = None,
                ratio_label: str = "ratio vs peer", footer: Optional[str] = None) -> None:
    """Print `format_table` followed by the machine line (and an optional footer)."""
    print(format_table(rows, title, ratio_label))
    print()
    print(f"_{machine_line()}; ratio = median / peer median (below 1: faster than the peer)._")
    if footer:
        print(footer)
