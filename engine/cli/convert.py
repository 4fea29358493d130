"""`pixelrun convert IN.mcap OUT.rrd`: a ROS 2 bag / Foxglove MCAP as a Rerun 0.41 recording.

    pixelrun convert robot.mcap robot.rrd
    pixelrun convert robot.mcap cams.rrd --topics /cam/left/image_raw /cam/right/image_raw

Every image topic becomes an entity of the same name, on Rerun's MCAP timelines
(message_log_time, message_publish_time, ros2_timestamp / timestamp). Raw images in a
layout Rerun 0.41 lacks are rewritten losslessly (padded rows -> tight, big-endian ->
little-endian, UYVY -> YUY2, NV21 / I420 -> NV12); compressed images stay as they are
(EncodedImage); 16UC1 / 32FC1 become DepthImage (REP 118). 16-bit Bayer has no
lossless form in Rerun 0.41: it is left out and named (``--keep-pixelrun-forms``
writes it in pixelrun's own form, which pixelrun shows and Rerun refuses). Unknown
encodings and every message that could not be read are named at the end with their
topics and counts. Exit status 1 when anything is left out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Iterator, Optional

from pixelrun.engine.chunk import printable
from pixelrun.engine.mcap.reader import McapReport, iter_chunks, iter_image_rows, message_total, store_info_for
from pixelrun.engine.mcap.rerun_form import rerun_image, shown_by_rerun
from pixelrun.engine.mcap.ros_image import NotShown, RosImage
from pixelrun.engine.rrd import RrdEncoder

__all__ = ["convert", "ConvertResult", "register"]


class ConvertResult:
    """What a conversion did: messages written, lossless transforms per topic, topics
    Rerun will not show (with reasons and counts), and read problems."""

    def __init__(self) -> None:
        self.written = 0
        self.topics: dict[str, int] = {}  # topic -> messages written
        self.pixelrun_only: dict[str, str] = {}  # topic -> format written that Rerun 0.41 lacks
        self.transforms: dict[str, set] = {}  # topic -> {"UYVY -> YUY2 byte order", ...}
        self.report = McapReport()

    @property
    def not_shown(self) -> list[str]:
        return list(self.report.problems)


class _Progress:
    """'converting 1234/5000 messages (24%)' on stderr, at most a few times a second."""

    def __init__(self, total: Optional[int], enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def show(self, done: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self._last < (0.25 if self.tty else 5.0):
            return
        self._last = now
        of = f"/{self.total} ({100 * done // max(self.total, 1)}%)" if self.total else ""
        end = "\n" if final or not self.tty else ""
        sys.stderr.write(f"{chr(13) if self.tty else ''}converting: {done}{of} messages{end}")
        sys.stderr.flush()


def _rerun_rows(rows, result: ConvertResult, progress: _Progress, keep_pixelrun_forms: bool) -> Iterator:
    seen = 0
    for row in rows:
        seen += 1
        progress.show(seen)
        if row.kind != "encoded":
            try:
                kind, fmt, data, meter, done = rerun_image(row.source)
            except NotShown as exc:
                result.report.drop(row.topic, row.log_time, f"{exc} (and Rerun 0.41 has no form for it)")
                continue
            if done:
                result.transforms.setdefault(row.topic, set()).update(done)
            if not shown_by_rerun(fmt):
                result.pixelrun_only[row.topic] = fmt.pixel_format.name
                if not keep_pixelrun_forms:
                    result.report.drop(row.topic, row.log_time, f"{fmt.describe()} has no lossless form in Rerun "
                                       "0.41 (pixelrun shows the .mcap; --keep-pixelrun-forms writes it anyway)")
                    continue
            row.kind, row.data = kind, data
            row.image = RosImage(kind, fmt, memoryview(data), meter)
        result.written += 1
        result.topics[row.topic] = result.topics.get(row.topic, 0) + 1
        yield row
    progress.show(seen, final=True)


def convert(src, dst, topics: Optional[list] = None, progress: bool = False,
            compression: bool = True, keep_pixelrun_forms: bool = False) -> ConvertResult:
    """Write the image topics of MCAP file `src` as a Rerun 0.41 .rrd at `dst`.

    keep_pixelrun_forms: also write images that have no lossless form in Rerun 0.41
    (16-bit Bayer) in pixelrun's own form; pixelrun shows them, but Rerun's
    ``rrd verify`` then refuses the file (an unknown PixelFormat value). By default
    they are left out and named in the result.

    The output is written to ``dst + ".part"`` and renamed at the end, so a failed
    conversion never leaves a half-written recording under the requested name.
    """
    result = ConvertResult()
    store = store_info_for(src)
    enc = RrdEncoder(store, compression=compression)
    tmp = os.fspath(dst) + ".part"
    bar = _Progress(message_total(src) if progress else None, progress)
    try:
        with open(tmp, "wb") as out:
            out.write(enc.stream_header())
            out.write(enc.store_info())
            rows = iter_image_rows(src, topics, result.report, keep_raw=True)
            for chunk in iter_chunks(_rerun_rows(rows, result, bar, keep_pixelrun_forms)):
                for part in enc.chunk(chunk):
                    out.write(part)
            out.write(enc.end())
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    result.report.finish()
    return result


def run(args: argparse.Namespace) -> int:
    prog = "pixelrun convert"
    if os.path.abspath(args.input) == os.path.abspath(args.output):
        print(f"{prog}: the output would overwrite the input ({args.input})", file=sys.stderr)
        return 2
    result = convert(args.input, args.output, topics=args.topics or None, progress=not args.quiet,
                     compression=not args.no_compression, keep_pixelrun_forms=args.keep_pixelrun_forms)
    print(f"{args.output}: {result.written} image messages written")
    for topic in sorted(result.transforms):
        how = ", ".join(sorted(result.transforms[topic]))
        print(printable(f"  {topic}: rewritten losslessly for Rerun 0.41 ({how})", 300))
    if args.keep_pixelrun_forms:
        for topic in sorted(result.pixelrun_only):
            print(printable(f"{prog}: {topic}: kept in pixelrun's own {result.pixelrun_only[topic]} form (no "
                            "lossless equivalent in Rerun 0.41): pixelrun shows it, Rerun 0.41 will not", 300),
                  file=sys.stderr)
    for note in result.report.notes:
        print(printable(f"  note: {note}", 300), file=sys.stderr)
    if result.not_shown:
        print(f"{prog}: not in the recording (Rerun 0.41 will not show them):", file=sys.stderr)
        for line in result.not_shown:
            print(printable(f"  {line}", 600), file=sys.stderr)
    for t in sorted(set(args.topics or ()) - set(result.topics)):
        print(printable(f"{prog}: nothing written for topic {t!r}", 300), file=sys.stderr)
    return 1 if result.not_shown or result.pixelrun_only or result.written == 0 else 0


def register(p: argparse.ArgumentParser) -> None:
    """Add the arguments of `pixelrun convert` to its parser (engine/cli/main.py makes it)."""
    p.add_argument("input", metavar="IN.mcap", help="MCAP file (ROS 2 bag or Foxglove recording)")
    p.add_argument("output", metavar="OUT.rrd", help="Rerun 0.41 recording to write")
    p.add_argument("--topics", nargs="+", metavar="TOPIC", help="only these topics (default: every image topic)")
    p.add_argument("--no-compression", action="store_true", help="write uncompressed chunks (LZ4 by default)")
    p.add_argument("--keep-pixelrun-forms", action="store_true",
                   help="also write images Rerun 0.41 has no form for (16-bit Bayer) in pixelrun's own form "
                        "(the file then fails `rerun rrd verify`)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)
