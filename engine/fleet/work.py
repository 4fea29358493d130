"""One recording's part of ``pixelrun render ... --all-times --ray``, as a stream of events.

`render_events` is what a Ray task runs (engine/fleet/cluster.py wraps it in a streaming
task); it needs no Ray. It renders exactly what ``pixelrun render REC --all-times``
renders for that recording alone (the same `render_times` / `render_video` with the
same arguments) and sends it back instead of writing it: the driver writes every file,
so a cluster needs no shared file system and every output path is checked in one place.

Events, in order, each an (event, payload) tuple:
- ("times", {"timeline": str, "times": [every time point], "mine": n}) once, first;
- ("problem", "message") for each warning about the data (a damaged file, an image left out);
- ("frame", (time, png_bytes)), ("frame_failed", (time, "why")), ("empty", time) per time point;
- video only: ("video", bytes) pieces of the finished file, then ("video_done", {...VideoInfo fields});
- ("failed", "why") instead of the rest when the recording cannot be rendered at all.
"""

from __future__ import annotations

import io
import os
import queue
import tempfile
import threading
import warnings
from typing import Iterator, Optional

from PIL import Image

from pixelrun.engine import api as R
from pixelrun.engine.chunk import printable
from pixelrun.engine.fleet.frames import RecordingReadError, open_recording
from pixelrun.engine.video import render_video

__all__ = ["render_events", "png_bytes", "RECORDING_ERRORS", "VIDEO_CHUNK"]

# What stops one recording (it is reported by name; the other recordings go on).
RECORDING_ERRORS = (ValueError, LookupError, OSError, RuntimeError)
VIDEO_CHUNK = 8 << 20  # bytes of the video file per event
VIDEO_STALL_S = 600.0  # the encoder thread must report a frame at least this often


def png_bytes(rgba) -> bytes:
    """The PNG `pixelrun render` writes for an (H, W, 4) uint8 array (engine/cli/render.py's write_png)."""
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, format="PNG")
    return out.getvalue()


def _messages(caught) -> list[tuple[str, str]]:
    return [("problem", printable(" ".join(str(w.message).split()), 500)) for w in caught]


def render_events(
    path: str,
    *,
    shard: int = 0,
    shards: int = 1,
    entity: Optional[str] = None,
    timeline: Optional[str] = None,
    background=None,
    backend: str = "auto",
    video: Optional[dict] = None,
) -> Iterator[tuple[str, object]]:
    """The events of rendering every time point of one recording (module docstring).

    shard / shards: this task renders time points shard, shard + shards, ... (PNGs only).
    video: None for PNGs, else {"suffix": ".mp4", "fps": ..., "crf": ..., "codec": ...}.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            store = open_recording(path)
            R.check_entity(store, entity)
            if timeline is None:
                timeline = R.default_timeline(store)
            else:
                R.check_timeline(store, timeline)
        for event in _messages(caught):  # not `yield from` a list: Ray's streaming calls send()
            yield event
        if timeline is None:
            yield "failed", "--all-times needs a timeline, and this recording has none"
            return
        times = [int(t) for t in R.time_points(store, timeline, entity)]
        if not times:
            under = f" under {entity}" if entity else ""
            yield "failed", f"no image to draw{under} on timeline {printable(timeline)!r}"
            return
        mine = times if video else times[shard::shards]
        yield "times", {"timeline": timeline, "times": times, "mine": len(mine)}
        if video:
            yield from _video_events(store, path, timeline, entity, background, backend, video)
            return
        frames = R.render_times(store, mine, entity=entity, timeline=timeline, background=background,
                                backend=backend)
        while True:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                item = next(frames, None)
                if item is not None and not isinstance(item[1], BaseException) and item[1].size:
                    item = (item[0], png_bytes(item[1]))
            for event in _messages(caught):  # not `yield from` a list: Ray's streaming calls send()
                yield event
            if item is None:
                return
            t, out = item
            if isinstance(out, BaseException):
                yield "frame_failed", (t, f"{type(out).__name__}: {printable(str(out))}")
            elif isinstance(out, bytes):
                yield "frame", (t, out)
            else:
                yield "empty", t
    except RecordingReadError as exc:
        yield "failed", str(exc)
    except RECORDING_ERRORS as exc:
        yield "failed", f"{type(exc).__name__}: {printable(' '.join(str(exc).split()), 600)}"


def _video_events(store, path, timeline, entity, background, backend, video) -> Iterator[tuple[str, object]]:
    """render_video into a temporary file on this worker, its frames reported as they
    are encoded (the encoder runs in a thread), then the file sent in pieces."""
    events: "queue.Queue[tuple]" = queue.Queue()
    result: dict = {}

    def on_frame(t: int, exc) -> None:
        events.put(("frame_failed", (t, f"{type(exc).__name__}: {printable(str(exc))}")) if exc is not None
                   else ("encoded", t))

    with tempfile.TemporaryDirectory(prefix="pixelrun-fleet-") as tmp:
        out = os.path.join(tmp, "video" + video["suffix"])

        def encode() -> None:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    result["info"] = render_video(store, out, entity=entity, timeline=timeline, fps=video["fps"],
                                                  crf=video["crf"], codec=video["codec"], background=background,
                                                  backend=backend, on_frame=on_frame)
                for kind, msg in _messages(caught):
                    events.put((kind, msg))
            except BaseException as exc:  # handed to the generator, which raises or reports it
                result["error"] = exc
            finally:
                events.put(("end", None))

        worker = threading.Thread(target=encode, name=f"pixelrun-video {path}", daemon=True)
        worker.start()
        while True:
            try:  # the encoder always ends with "end" (finally above); a stuck one is bounded
                kind, payload = events.get(timeout=VIDEO_STALL_S)
            except queue.Empty:
                raise RuntimeError(f"the video encoder made no progress for {VIDEO_STALL_S:.0f} s") from None
            if kind == "end":
                break
            yield kind, payload
        worker.join()
        if "error" in result:
            raise result["error"]
        with open(out, "rb") as f:
            while True:
                piece = f.read(VIDEO_CHUNK)
                if not piece:
                    break
                yield "video", piece
    info = result["info"]
    yield "video_done", {"encoder": info.encoder, "pix_fmt": info.pix_fmt, "width": info.width,
                         "height": info.height, "frames": info.frames, "failed": info.failed,
                         "fallback": info.fallback, "first_time": info.first_time, "last_time": info.last_time}
