"""`pixelrun render`: a recording's composited 2D view (SPEC 4) as RGBA PNG files.

    pixelrun render REC.rrd -o out.png                               # latest data
    pixelrun render REC.rrd --timeline step --time 19 -o out.png
    pixelrun render REC.rrd --timeline step --all-times -o frames/   # one PNG per time point
    pixelrun render REC.rrd --entity cam/left -o left.png --backend numpy

With --all-times, OUT is a folder (files TIMELINE_TIME.png), a pattern containing
``{time}`` (e.g. ``f_{time:04d}.png``), or a file name whose stem gets ``_TIME``.
--time takes the timeline's integer value (sequence ticks, or nanoseconds); a number
with a decimal point on a duration/timestamp timeline is read as seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def parse_background(text: str) -> tuple[int, int, int, int]:
    """'r,g,b[,a]' bytes -> a 4-tuple (alpha defaults to 255)."""
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) == 3:
        parts.append(255)
    if len(parts) != 4 or not all(0 <= p <= 255 for p in parts):
        raise argparse.ArgumentTypeError(f"expected r,g,b or r,g,b,a bytes in 0..255, got {text!r}")
    return tuple(parts)  # type: ignore[return-value]


def parse_time(text: str, kind: str) -> int:
    """A time value on a timeline of `kind` ('sequence', 'duration', 'timestamp')."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"--time: expected a number, got {text!r}") from None
    if kind == "sequence":
        raise ValueError(f"--time: a sequence timeline takes an integer, got {text!r}")
    return int(round(seconds * 1e9))


def output_path(out: str, timeline: str, time: int) -> Path:
    """Where the PNG of one time point goes for --all-times (see the module docstring)."""
    if "{time" in out:
        return Path(out.format(time=time, timeline=timeline))
    p = Path(out)
    if out.endswith(("/", os.sep)) or p.is_dir() or not p.suffix:
        return p / f"{timeline}_{time}.png"
    return p.with_name(f"{p.stem}_{time}{p.suffix}")


def write_png(path: Path, rgba: np.ndarray) -> None:
    """Write an (H, W, 4) uint8 array as an RGBA PNG (Pillow), creating the folder."""
    from PIL import Image  # noqa: PLC0415

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(path)


class Progress:
    """A one-line progress bar on stderr (off with -q)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, 0, enabled

    def step(self, label: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(f"\rrendering [{bar}] {self.done}/{self.total} {label}   ")
        if self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _frames(store, args, timeline: str, times):
    """(time, rgba) for every time point, on the chosen backend."""
    from pixelrun.engine import render as R  # noqa: PLC0415

    scenes = (R.layers_at(store, entity=args.entity, timeline=timeline, time=int(t)) for t in times)
    backend = R.resolve_backend(args.backend)
    bg = args.background or (0, 0, 0, 0)
    if backend == "cupy":
        from pixelrun.engine.cupy_composite import render_many  # noqa: PLC0415

        yield from zip(times, render_many(scenes, background=bg))
        return
    for t, layers in zip(times, scenes):
        yield t, R.render_layers(layers, background=bg, backend=backend)


def run(args) -> int:
    from pixelrun.engine import render as R  # noqa: PLC0415

    try:
        store = R.open_source(args.recording)
        timeline = args.timeline
        if timeline is None:
            timeline = R.default_timeline(store)
        else:
            R.check_timeline(store, timeline)
        kind = store.timelines()[timeline].kind if timeline else "sequence"
        if not args.all_times:
            time = None if args.time is None else parse_time(args.time, kind)
            rgba = R.render(store, entity=args.entity, timeline=timeline, time=time,
                            background=args.background, backend=args.backend)
            if rgba.size == 0:
                where = f" under {args.entity}" if args.entity else ""
                print(f"pixelrun render: no image to draw{where} at that time point", file=sys.stderr)
                return 1
            write_png(Path(args.output), rgba)
            print(f"wrote {args.output} ({rgba.shape[1]}x{rgba.shape[0]})")
            return 0
        if timeline is None:
            print("pixelrun render: --all-times needs a timeline, and this recording has none", file=sys.stderr)
            return 1
        times = [int(t) for t in R.time_points(store, timeline, args.entity)]
        if not times:
            print(f"pixelrun render: no image data on timeline {timeline!r}", file=sys.stderr)
            return 1
        progress = Progress(len(times), enabled=not args.quiet)
        written = 0
        # PNG compression runs in threads (zlib releases the GIL) while the next frame renders
        with ThreadPoolExecutor(max_workers=2) as pool:
            pending = []
            for t, rgba in _frames(store, args, timeline, times):
                if rgba.size == 0:
                    warnings.warn(f"nothing to draw at {timeline}={t}; no PNG written", R.RenderWarning)
                else:
                    pending.append(pool.submit(write_png, output_path(args.output, timeline, t), rgba))
                    written += 1
                progress.step(f"{timeline}={t}")
            for f in pending:
                f.result()
        print(f"wrote {written} PNG(s) for {timeline} {times[0]}..{times[-1]}")
        return 0
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"pixelrun render: {exc}", file=sys.stderr)
        return 1


def register(sub) -> None:
    p = sub.add_parser("render", help="render a recording's view to PNG (headless)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("recording", help=".rrd file")
    p.add_argument("-o", "--output", required=True, help="PNG file (or folder/pattern with --all-times)")
    p.add_argument("--entity", help="render only this entity's subtree")
    p.add_argument("--timeline", help="timeline name (default: the recording's first user timeline)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--time", help="time point on the timeline (default: latest)")
    when.add_argument("--all-times", action="store_true", help="one PNG per time point with image data")
    p.add_argument("--backend", default="wgpu", choices=["wgpu", "numpy", "cupy", "auto"])
    p.add_argument("--background", type=parse_background, default=None,
                   help="r,g,b[,a] bytes (default transparent 0,0,0,0)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
