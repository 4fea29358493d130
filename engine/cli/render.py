"""`pixelrun render`: a recording's composited 2D view (contract §4) as RGBA PNG files.

    pixelrun render REC.rrd -o out.png                               # latest data
    pixelrun render REC.rrd --timeline step --time 19 -o out.png
    pixelrun render REC.rrd --timeline step --all-times -o frames/   # one PNG per time point
    pixelrun render REC.rrd --entity cam/left -o left.png --backend numpy
    pixelrun render REC.rrd --all-times -o clip.mp4 [--fps 30 --crf 18 --codec h264]  # video

With --all-times and an OUT ending in .mp4 or .mkv, the frames go into one video instead
(engine/video.py: one frame per time point in order at a constant --fps, composited over
an opaque --background, default black, padded with it to an even size for H.264, never
scaled; --codec ffv1 (.mkv) or libx264rgb is lossless).

With --all-times, OUT is a folder (files TIMELINE_TIME.png), a pattern containing
``{time}`` (e.g. ``f_{time:04d}.png``; ``{timeline}`` may appear in the file name), or
a file name whose stem gets ``_TIME``. In the folder and stem forms TIME is
zero-padded to the width of the largest time point, so the names sort in time order.
--time takes the timeline's integer value (sequence ticks, or nanoseconds); a number
with a decimal point on a
duration/timestamp timeline is read as seconds.

The output is checked before anything is rendered: its folder must exist or have an
existing parent (then it is created) and take a test file, and the file name must end
in .png, or .mp4/.mkv for a video with --all-times (engine/video.py checks codec, fps, crf
and background there too). Names made from the recording (the timeline's) are made safe for a file name
(`safe_filename`) and every file is checked to land inside the output folder.

An --entity or --timeline the recording does not have ends the run (exit 1) with the
list of what it has. A damaged recording renders what is intact: each problem (a skipped message with its
byte offset and entity, an image left out) is one line on stderr. The exit code is 0
when PNGs were written, 1 when none could be, or with --strict when anything was
wrong with the recording.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from pixelrun.engine import api as R
from pixelrun.engine.chunk import printable
from pixelrun.engine.cli.main import warnings_as_lines
from pixelrun.engine.store.store import StoreWarning
from pixelrun.engine.video import CODECS, DEFAULT_CRF, VIDEO_EXTENSIONS, check_video_options, render_video


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


# ------------------------------------------------------------------ output files

_UNSAFE = re.compile(r"[^\w.-]")  # \w: letters and digits of any script, and '_'
SAFE_NAME_LIMIT = 64


def safe_filename(name: str, limit: int = SAFE_NAME_LIMIT) -> str:
    """A file-name part made from recorded text (a timeline or entity name).

    Keeps letters, digits, '_', '-' and '.'; anything else (separators, NUL and other
    control characters) becomes '_', runs of dots and leading dots go, and the result
    is at most `limit` characters. When anything had to change, 8 hex digits of the
    original's SHA-1 are appended, so distinct names stay distinct files.
    """
    safe = re.sub(r"\.{2,}", "_", _UNSAFE.sub("_", name)).lstrip(".")
    if safe == name and 0 < len(safe) <= limit:
        return safe
    digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe[:limit] or 'x'}-{digest}"


def time_width(times) -> int:
    """Digits of the largest time point (by magnitude): the zero-padding of file names."""
    return max((len(str(abs(int(t)))) for t in times), default=1)


def padded(time: int, width: int) -> str:
    """`time` with its digits zero-padded to `width` ('-' kept in front)."""
    return ("-" if time < 0 else "") + str(abs(time)).zfill(width)


def output_path(out: str, timeline: str, time: int, width: int = 1) -> Path:
    """Where the PNG of one time point goes for --all-times (see the module docstring).

    `width`: the digits TIME is zero-padded to in the folder and stem forms (a pattern
    says its own format). The timeline's name comes from the recording: it goes
    through `safe_filename`.
    """
    tl = safe_filename(timeline)
    if "{time" in out:
        return Path(out.format(time=time, timeline=tl))
    p = Path(out)
    if out.endswith(("/", os.sep)) or p.is_dir() or not p.suffix:
        return p / f"{tl}_{padded(time, width)}.png"
    return p.with_name(f"{p.stem}_{padded(time, width)}{p.suffix}")


class OutputError(ValueError):
    """The output path cannot be written (said before any rendering)."""


def writable_folder(folder: Path) -> Path:
    """`folder` resolved, created when only its last part is missing, and proven
    writable by creating and removing a file in it; OutputError saying why not."""
    shown = str(folder) or "."
    if not folder.exists():
        parent = folder.parent
        if not parent.is_dir():
            why = "is not a folder" if parent.exists() else "does not exist"
            raise OutputError(f"cannot write to {shown}/: its parent {parent}/ {why}")
        try:
            folder.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot create the folder {shown}/: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise OutputError(f"cannot write to {shown}/: it is not a folder")
    why = R.folder_write_error(folder)
    if why:
        raise OutputError(f"cannot write to {shown}/: {why}")
    return folder.resolve()


SUPPORTED_EXTENSIONS = (".png",)  # what write_png writes


def _check_png_name(name: str, what: str) -> None:
    ext = Path(name).suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        got = f"unsupported extension {ext!r}" if ext else "no extension"
        raise OutputError(f"{what} {name!r} has {got}: supported: {', '.join(SUPPORTED_EXTENSIONS)}, "
                          f"or {', '.join(VIDEO_EXTENSIONS)} for one video with --all-times")


class OutputPlan:
    """Checked output of one render: its folder, and the file for each time point."""

    def __init__(self, out: str, all_times: bool) -> None:
        self.out = out
        self.all_times = all_times
        p = Path(out)
        if not all_times:
            if out.endswith(("/", os.sep)) or p.is_dir():
                raise OutputError(f"{out} is a folder: give a .png file name (or use --all-times)")
            _check_png_name(out, "the output file")
            folder = p.parent
        elif "{" in out:
            try:
                sample = out.format(time=0, timeline="timeline")
            except (KeyError, IndexError, ValueError) as exc:
                raise OutputError(
                    f"bad output pattern {out!r}: {exc} (fields: {{time}}, {{timeline}})") from None
            if "{time" not in out:
                raise OutputError(f"output pattern {out!r} has no {{time}}: every frame would overwrite the last")
            if "{" in str(p.parent):
                raise OutputError(
                    f"output pattern {out!r}: {{time}} and {{timeline}} go in the file name, not the folder")
            _check_png_name(sample, "the output pattern")
            if Path(sample).parent != p.parent:
                raise OutputError(f"output pattern {out!r} puts files outside its folder ({sample})")
            folder = p.parent
        elif out.endswith(("/", os.sep)) or p.is_dir() or not p.suffix:
            folder = p
        else:
            _check_png_name(out, "the output file")
            folder = p.parent
        self.folder = writable_folder(folder)

    def path(self, timeline: Optional[str] = None, time: Optional[int] = None, width: int = 1) -> Path:
        """The file for one time point, proven to lie directly in the output folder
        (`width`: see `output_path`)."""
        path = Path(self.out) if not self.all_times else output_path(self.out, timeline or "", int(time), width)
        real = path.resolve()  # follows a symlink planted at the name, too
        if real.parent != self.folder:
            raise OutputError(f"refusing to write {path}: it would land in {real.parent}, outside {self.folder}")
        return path


def write_png(path: Path, rgba: np.ndarray) -> None:
    """Write an (H, W, 4) uint8 array as an RGBA PNG (Pillow), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(path, format="PNG")


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
    """(time, rgba or the exception that stopped that frame) for every time point."""
    return R.render_times(store, times, entity=args.entity, timeline=timeline,
                          background=args.background, backend=args.backend)


MAX_PROBLEM_LINES = 50  # a badly damaged file must not bury the render's own output


def _open(path: str, prog: str):
    """The recording's store, each problem found while reading printed as one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)  # printed below, one line each
        store = R.open_source(path)
    for p in store.problems[:MAX_PROBLEM_LINES]:
        print(f"{prog}: {path}: {printable(str(p), 600)}", file=sys.stderr)
    if len(store.problems) > MAX_PROBLEM_LINES:
        print(f"{prog}: {path}: ... and {len(store.problems) - MAX_PROBLEM_LINES} more problem(s) "
              f"(`pixelrun info {path}` lists them all)", file=sys.stderr)
    return store


def _render_all(store, args, timeline: str, plan: OutputPlan, prog: str) -> tuple[int, int]:
    """Every time point to a PNG: (written, frames that could not be drawn)."""
    times = [int(t) for t in R.time_points(store, timeline, args.entity)]
    if not times:
        return 0, 0
    width = time_width(times)  # names sort in time order
    progress = Progress(len(times), enabled=not args.quiet)
    written = failed = 0
    # PNG compression runs in threads (zlib releases the GIL) while the next frame renders
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = []
        for t, rgba in _frames(store, args, timeline, times):
            label = f"{printable(timeline, 80)}={t}"
            if isinstance(rgba, BaseException):
                failed += 1
                brk = "\n" if progress.enabled and progress.done else ""  # off the progress line
                print(f"{brk}{prog}: {label}: not rendered: {type(rgba).__name__}: {printable(str(rgba))}",
                      file=sys.stderr)
            elif rgba.size == 0:
                warnings.warn(f"nothing to draw at {label}; no PNG written", R.RenderWarning, stacklevel=2)
            else:
                pending.append(pool.submit(write_png, plan.path(timeline, t, width), rgba))
                written += 1
            progress.step(label)
        for f in pending:
            f.result()
    print(f"wrote {written} PNG(s) for {printable(timeline, 80)} {times[0]}..{times[-1]} in {plan.folder}")
    return written, failed


def _is_video(args) -> bool:
    """Whether -o names a video; the video options checked against it (before any work)."""
    video = Path(args.output).suffix.lower() in VIDEO_EXTENSIONS
    if video and not args.all_times:
        raise OutputError(f"{args.output} is a video: it takes every time point, so add --all-times "
                          "(or give a .png file name for one time point)")
    given = [o for o, v in (("--fps", args.fps), ("--crf", args.crf), ("--codec", args.codec)) if v is not None]
    if given and not video:
        raise OutputError(f"{', '.join(given)} apply to video output: give -o a {' or '.join(VIDEO_EXTENSIONS)} name")
    if video:
        check_video_options(args.output, codec=args.codec or "h264", fps=30 if args.fps is None else args.fps,
                            crf=DEFAULT_CRF if args.crf is None else args.crf, background=args.background)
    return video


def _render_video(store, args, timeline: str, prog: str) -> tuple[int, int]:
    """Every time point as one frame of a video: (frames written, frames that could not be drawn)."""
    progress = Progress(len(R.time_points(store, timeline, args.entity)), enabled=not args.quiet)

    def on_frame(t: int, exc) -> None:
        label = f"{printable(timeline, 80)}={t}"
        if exc is not None:
            brk = "\n" if progress.enabled and progress.done else ""  # off the progress line
            print(f"{brk}{prog}: {label}: not rendered ({type(exc).__name__}: {printable(str(exc))}); "
                  "a background frame is in its place", file=sys.stderr)
        progress.step(label)

    info = render_video(store, args.output, entity=args.entity, timeline=timeline,
                        fps=30 if args.fps is None else args.fps, crf=DEFAULT_CRF if args.crf is None else args.crf,
                        codec=args.codec or "h264", background=args.background, backend=args.backend,
                        on_frame=on_frame)
    if info.fallback and args.codec is None:
        print(f"{prog}: encoding with libx264: {info.fallback}", file=sys.stderr)
    pad = (f", padded from {info.content_width}x{info.content_height}"
           if (info.width, info.height) != (info.content_width, info.content_height) else "")
    print(f"wrote {info.path} ({info.encoder} {info.pix_fmt} {info.width}x{info.height}{pad}, {info.frames} frames "
          f"at {info.fps} fps for {printable(timeline, 80)} {info.first_time}..{info.last_time})")
    return info.frames - info.failed, info.failed


def run(args) -> int:
    prog = "pixelrun render"
    try:
        video = _is_video(args)  # before any work
        plan = None if video else OutputPlan(args.output, args.all_times)
        with warnings_as_lines(prog) as warned:
            store = _open(args.recording, prog)
            problems = len(store.problems)
            R.check_entity(store, args.entity)  # NotFoundError listing the entities
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
                written = failed = 0
                if rgba.size:
                    path = plan.path()
                    write_png(path, rgba)
                    written = 1
                    print(f"wrote {path} ({rgba.shape[1]}x{rgba.shape[0]})")
            elif timeline is None:
                print(f"{prog}: --all-times needs a timeline, and this recording has none", file=sys.stderr)
                return 1
            elif video:
                written, failed = _render_video(store, args, timeline, prog)
            else:
                written, failed = _render_all(store, args, timeline, plan, prog)
        if not written:
            where = f" under {args.entity}" if args.entity else ""
            when = f"on timeline {printable(timeline)!r}" if args.all_times else "at that time point"
            print(f"{prog}: no image to draw{where} {when}", file=sys.stderr)
            return 1
        trouble = problems + failed + len(warned)
        if trouble:
            print(f"{prog}: {trouble} problem(s) with {args.recording} (above); "
                  f"everything intact was rendered", file=sys.stderr)
        return 1 if (args.strict and trouble) else 0
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"{prog}: {printable(' '.join(str(exc).split()), 600)}", file=sys.stderr)
        return 1


def register(p: argparse.ArgumentParser) -> None:
    """Add render's arguments to its parser (engine/cli/main.py makes it)."""
    p.add_argument("recording", help=".rrd file")
    p.add_argument("-o", "--output", required=True,
                   help="PNG file (or folder/pattern, or an .mp4/.mkv video, with --all-times)")
    p.add_argument("--entity", help="render only this entity's subtree")
    p.add_argument("--timeline", help="timeline name (default: the recording's first user timeline)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--time", help="time point on the timeline (default: latest)")
    when.add_argument("--all-times", action="store_true", help="one PNG per time point with image data")
    p.add_argument("--backend", default="auto", choices=R.BACKENDS,
                   help="auto (default): wgpu when a GPU adapter exists, else numpy")
    p.add_argument("--background", type=parse_background, default=None,
                   help="r,g,b[,a] bytes (default transparent 0,0,0,0; opaque black 0,0,0 for video)")
    p.add_argument("--fps", type=Fraction, default=None, help="video: frames per second (default 30)")
    p.add_argument("--crf", type=int, default=None,
                   help=f"video: quality 0..51 of the H.264 codecs, lower is better (default {DEFAULT_CRF})")
    p.add_argument("--codec", choices=tuple(CODECS), default=None,
                   help="video: h264 (default: NVENC when it works, else libx264; yuv420p), libx264, h264_nvenc, "
                        "or lossless libx264rgb / ffv1 (.mkv)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when anything in the recording was damaged or left out")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
