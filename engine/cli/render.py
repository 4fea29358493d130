"""`pixelrun render`: a recording's composited 2D view (contract §4) as RGBA PNG files.

    pixelrun render REC.rrd -o out.png                               # latest data
    pixelrun render REC.rrd --timeline step --time 19 -o out.png
    pixelrun render REC.rrd --timeline step --all-times -o frames/   # one PNG per time point
    pixelrun render REC.rrd --entity cam/left -o left.png --backend numpy
    pixelrun render REC.rrd --all-times -o clip.mp4 [--fps 30 --crf 18 --codec h264]  # video

Several recordings at once, on Ray (``pip install 'pixelrun[ray]'``; engine/fleet/):

    pixelrun render A.rrd B.rrd fleet/ --all-times -o DIR --ray               # a local Ray
    pixelrun render A.mcap B.rrd --all-times -o DIR --ray                    # bags too (folders: .rrd, .mcap, .db3)
    pixelrun render A.rrd B.rrd --all-times -o DIR --ray auto --video mp4     # the cluster; a video each

Each recording gets DIR/NAME/ (its PNGs, named as for one recording) or DIR/NAME.mp4,
NAME its file name's stem made safe (`safe_filename`, a hash added when two are the
same). Frames are rendered on Ray workers and written here, with one progress bar for
the fleet; a recording that fails is named with why, and the others finish.

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
from pixelrun.engine.fleet.frames import BAG_SUFFIXES, RRD_SUFFIXES, check_recordings, expand_paths
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
FLEET_SUFFIXES = RRD_SUFFIXES + BAG_SUFFIXES  # what a folder given to --ray stands for


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

    def step(self, label: str, last: Optional[bool] = None) -> None:
        """One more frame done; `last` (default: done == total) ends the line."""
        self.done += 1
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(f"\rrendering [{bar}] {self.done}/{self.total} {label}   ")
        end = self.done == self.total if last is None else last
        if end:
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


# ------------------------------------------------------------------ --ray: many recordings


def fleet_names(paths) -> dict[str, str]:
    """Recording path -> the name of its folder (or video) under -o: the file name's
    stem made safe; when two are the same, 8 hex digits of each one's full path added."""
    stems = {p: safe_filename(Path(p).stem or "recording") for p in paths}
    seen: dict[str, int] = {}
    for st in stems.values():
        seen[st] = seen.get(st, 0) + 1
    return {p: st if seen[st] == 1 else f"{st}-{hashlib.sha1(os.path.abspath(p).encode()).hexdigest()[:8]}"
            for p, st in stems.items()}


def _fleet_args(args) -> tuple[list[str], Optional[dict]]:
    """The recordings (folders expanded) and the video options of a --ray run, checked
    before any work (OutputError saying what is wrong; the video options are checked
    once the output folder exists)."""
    recordings = list(args.recording)
    if args.ray not in (None, "local", "auto") and "://" not in args.ray and (
            args.ray.endswith(FLEET_SUFFIXES) or os.path.exists(args.ray)):
        recordings.insert(0, args.ray)  # `--ray A.rrd B.rrd`: --ray took a recording as its address
        args.ray = "local"
    if args.ray is None:
        given = "several recordings" if len(recordings) > 1 else ("--video" if args.video else "--ray-workers")
        raise OutputError(f"{given}: rendering a fleet runs on Ray; add --ray (a local Ray) or --ray ADDRESS")
    if not args.all_times:
        raise OutputError("--ray renders every time point of every recording: add --all-times")
    out = Path(args.output)
    if "{" in args.output or out.suffix.lower() in (*SUPPORTED_EXTENSIONS, *VIDEO_EXTENSIONS):
        raise OutputError(f"with --ray, -o is a folder (a folder of PNGs, or a video with --video, per recording "
                          f"goes in it), got {args.output}")
    if args.ray_workers is not None and args.ray_workers < 1:
        raise OutputError(f"--ray-workers must be at least 1, got {args.ray_workers}")
    given = [o for o, v in (("--fps", args.fps), ("--crf", args.crf), ("--codec", args.codec)) if v is not None]
    if given and not args.video:
        raise OutputError(f"{', '.join(given)} apply to video output: add --video mp4 (or mkv)")
    video = None
    if args.video:
        video = {"suffix": "." + args.video, "fps": 30 if args.fps is None else args.fps,
                 "crf": DEFAULT_CRF if args.crf is None else args.crf, "codec": args.codec or "h264"}
    return expand_paths(recordings, FLEET_SUFFIXES), video


class _Recording:
    """What the driver knows of one recording of a --ray run."""

    def __init__(self, path: str, name: str) -> None:
        self.path, self.name = path, name
        self.plan: Optional[OutputPlan] = None
        self.timeline = ""
        self.times: list[int] = []
        self.width = 1
        self.written = self.failed = self.problems = 0
        self.error: Optional[str] = None
        self.part = None  # the video being received
        self.video_info: Optional[dict] = None


def _fleet_event(rec: _Recording, kind: str, payload, root: Path, video: Optional[dict], progress: Progress,
                 prog: str) -> None:
    """Apply one event of a recording's tasks (engine/fleet/work.py) here: write, count, say."""
    if rec.error is not None:
        return  # a recording that failed (a shard, or its output) says nothing more
    label = f"{rec.name} {printable(rec.timeline, 80)}"
    brk = "\n" if progress.enabled and progress.done else ""  # off the progress line
    if kind == "times":
        progress.total += payload["mine"]
        if not rec.times:
            rec.timeline, rec.times = payload["timeline"], payload["times"]
            rec.width = time_width(rec.times)
            if video is None:
                rec.plan = OutputPlan(str(root / rec.name) + os.sep, all_times=True)
    elif kind == "problem":
        rec.problems += 1
        if rec.problems <= MAX_PROBLEM_LINES:
            said = payload if payload.startswith(rec.path) else f"{rec.path}: {payload}"
            print(f"{brk}{prog}: {said}", file=sys.stderr)
    elif kind == "frame":
        t, png = payload
        path = rec.plan.path(rec.timeline, t, rec.width)
        path.write_bytes(png)
        rec.written += 1
        progress.step(f"{label}={t}", last=False)
    elif kind in ("frame_failed", "empty", "encoded"):
        t = payload[0] if kind == "frame_failed" else payload
        if kind == "frame_failed":
            rec.failed += 1
            gap = "; a background frame is in its place" if video else ""
            print(f"{brk}{prog}: {rec.path}: {label}={t}: not rendered: {payload[1]}{gap}", file=sys.stderr)
        elif kind == "empty":
            rec.problems += 1
            print(f"{brk}{prog}: {rec.path}: nothing to draw at {label}={t}; no PNG written", file=sys.stderr)
        progress.step(f"{label}={t}", last=False)
    elif kind == "video":
        if rec.part is None:
            rec.part = open(root / f".{rec.name}{video['suffix']}.part", "wb")  # closed at video_done / failed
        rec.part.write(payload)
    elif kind == "video_done":
        part = Path(rec.part.name)
        rec.part.close()
        rec.part = None
        final = root / f"{rec.name}{video['suffix']}"
        if final.resolve().parent != root:
            raise OutputError(f"refusing to write {final}: it would land outside {root}")
        part.replace(final)
        rec.video_info = payload
        rec.written = payload["frames"] - payload["failed"]
    elif kind == "failed":
        rec.error = payload
        if rec.part is not None:
            rec.part.close()
            Path(rec.part.name).unlink(missing_ok=True)
            rec.part = None
        print(f"{brk}{prog}: {rec.path}: not rendered: {printable(str(payload), 600)}", file=sys.stderr)


def _run_fleet(args, prog: str) -> int:
    """pixelrun render A.rrd B.rrd ... --all-times -o DIR --ray [ADDRESS] (module docstring)."""
    try:
        import pixelrun.engine.fleet.cluster as cluster  # noqa: PLC0415 - optional dependency (imports ray)
    except ImportError as exc:
        print(f"{prog}: --ray needs Ray ({exc}): pip install 'pixelrun[ray]'", file=sys.stderr)
        return 1
    try:
        recordings, video = _fleet_args(args)
        root = writable_folder(Path(args.output))
        if video:  # codec, fps, crf and background, as for one video (the name is each recording's)
            check_video_options(root / f"check{video['suffix']}", codec=video["codec"], fps=video["fps"],
                                crf=video["crf"], background=args.background)
    except (ValueError, OSError) as exc:
        print(f"{prog}: {printable(' '.join(str(exc).split()), 600)}", file=sys.stderr)
        return 1
    paths, bad = check_recordings(recordings)
    for why in bad:
        print(f"{prog}: {why}: not rendered", file=sys.stderr)
    names = fleet_names(paths)
    recs = {p: _Recording(p, names[p]) for p in paths}
    progress = Progress(0, enabled=not args.quiet)
    kwargs = dict(entity=args.entity, timeline=args.timeline, background=args.background, backend=args.backend,
                  video=video)
    try:
        for path, kind, payload in cluster.run_fleet(paths, kwargs, address=args.ray, workers=args.ray_workers,
                                                     split=video is None):
            try:
                _fleet_event(recs[path], kind, payload, root, video, progress, prog)
            except (ValueError, OSError) as exc:  # this recording's output cannot be written: the rest go on
                _fleet_event(recs[path], "failed", f"cannot write its output: {exc}", root, video, progress, prog)
    except RuntimeError as exc:  # Ray could not be started or reached
        print(f"{prog}: {printable(' '.join(str(exc).split()), 600)}", file=sys.stderr)
        return 1
    finally:
        for rec in recs.values():
            if rec.part is not None:
                rec.part.close()
                Path(rec.part.name).unlink(missing_ok=True)
    if progress.enabled and progress.done:
        sys.stderr.write("\n")
    failed = list(bad)
    frames = trouble = 0
    for rec in recs.values():
        trouble += rec.problems + rec.failed
        if rec.error is None and not rec.written:
            rec.error = f"no image to draw on timeline {printable(rec.timeline)!r}" if rec.timeline else "no image"
            print(f"{prog}: {rec.path}: not rendered: {rec.error}", file=sys.stderr)
        if rec.error is not None:
            failed.append(rec.path)
            continue
        frames += rec.written
        span = f"{printable(rec.timeline, 80)} {rec.times[0]}..{rec.times[-1]}"
        if rec.video_info is not None:
            v = rec.video_info
            print(f"wrote {root / (rec.name + video['suffix'])} ({v['encoder']} {v['pix_fmt']} {v['width']}x"
                  f"{v['height']}, {v['frames']} frames for {span})")
        else:
            print(f"wrote {rec.written} PNG(s) for {span} in {rec.plan.folder}")
    total = len(recs) + len(bad)
    print(f"rendered {total - len(failed)} of {total} recording(s), {frames} frame(s), in {root}")
    if failed:
        print(f"{prog}: {len(failed)} recording(s) not rendered: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 1 if (args.strict and trouble) else 0


def run(args) -> int:
    prog = "pixelrun render"
    if args.ray is not None or len(args.recording) > 1 or args.video or args.ray_workers is not None:
        return _run_fleet(args, prog)
    args.recording = args.recording[0]
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
    p.add_argument("recording", nargs="+",
                   help=".rrd file or bag (.mcap, .db3); several, or folders of them, with --ray")
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
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="render every recording on Ray (with --all-times; -o is a folder): a local Ray, "
                        "or ADDRESS: auto (the cluster this machine is in) or ray://HOST:10001")
    p.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="with --ray: the most recordings (or shards) rendered at once; a local Ray gets N CPUs")
    p.add_argument("--video", choices=tuple(e.lstrip(".") for e in VIDEO_EXTENSIONS), default=None,
                   help="with --ray: one video per recording (DIR/NAME.mp4) instead of PNG folders")
    p.set_defaults(func=run)
