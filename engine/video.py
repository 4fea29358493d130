"""A recording's composited view over time as a video file (PyAV, the ``pixelrun[video]`` extra).

    from pixelrun.engine import render_video
    info = render_video("rec.rrd", "clip.mp4", timeline="step")          # H.264, yuv420p
    info = render_video("rec.rrd", "exact.mkv", codec="ffv1")            # lossless

The same frames as ``pixelrun render --all-times`` writes as PNGs (api.render_times, the
same compositor and backend), encoded one at a time as they are drawn: no list of frames
is held in memory.

- Timing: one frame per time point with image data, in time order, at a constant `fps`
  (default 30). Uneven time points (timestamp timelines) are not resampled: frame i is
  time point i, so the video shows every logged view once.
- Alpha: video has none, so frames are composited over an opaque background (default
  black 0,0,0,255) by the renderer itself, exactly as a PNG rendered with that
  ``--background``; a translucent background is refused.
- Size: the largest canvas over all time points (a first pass over the scenes' layer
  sizes, nothing drawn). A smaller frame is placed at the top left and the rest is the
  background; yuv420p also needs an even width and height, so one column/row of
  background is added when odd. Nothing is ever scaled.
- A time point with nothing to draw, or whose frame damaged data stopped, is a
  background-only frame (so the timing stays one frame per time point), counted in
  ``VideoInfo.empty`` / ``VideoInfo.failed``; a failed one is also a RenderWarning.

Codecs (`codec`):

- "h264" (default): H.264 in yuv420p (BT.601, limited range, tagged so), which every
  player and browser plays; NVENC (h264_nvenc) when it is present and opens, else
  libx264 — ``VideoInfo.fallback`` says why NVENC was not used. `crf` (default 18, 0..51)
  is x264's constant rate factor, or NVENC's constant quality ``cq``.
- "libx264" / "h264_nvenc": the same, with only that encoder (no fallback).
- "libx264rgb": lossless H.264 (qp 0) in RGB, .mp4 or .mkv; exact pixels, but not all
  players take RGB H.264.
- "ffv1": lossless FFV1 in .mkv; exact pixels.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from pixelrun.engine import api as R
from pixelrun.engine.scene import canvas_size, scene_at
from pixelrun.kernels.errors import RenderWarning

__all__ = ["render_video", "VideoInfo", "VideoOutputError", "check_video_output", "check_video_options", "CODECS",
           "VIDEO_EXTENSIONS", "nvenc_status"]

VIDEO_EXTENSIONS = (".mp4", ".mkv")
DEFAULT_CODEC = "h264"
# x264's documented "visually lossless" point. Measured in tests/engine/test_video.py: on
# smooth gradients 41.5 dB PSNR against the PNGs (crf 23, x264's own default: 40.2; crf 0:
# 42.9, the yuv420p cap) for ~2% more bytes than 23; on saturated colour edges every crf
# gives ~24 dB, the 4:2:0 chroma cap. Previews are inspected closely; the bytes are cheap.
DEFAULT_CRF = 18
DEFAULT_BACKGROUND = (0, 0, 0, 255)


@dataclass(frozen=True)
class _Codec:
    encoder: str  # "" for "h264": NVENC, else libx264
    pix_fmt: str
    lossless: bool
    extensions: tuple[str, ...]


CODECS = {
    "h264": _Codec("", "yuv420p", False, (".mp4", ".mkv")),
    "libx264": _Codec("libx264", "yuv420p", False, (".mp4", ".mkv")),
    "h264_nvenc": _Codec("h264_nvenc", "yuv420p", False, (".mp4", ".mkv")),
    "libx264rgb": _Codec("libx264rgb", "rgb24", True, (".mp4", ".mkv")),
    "ffv1": _Codec("ffv1", "bgr0", True, (".mkv",)),
}


class VideoOutputError(ValueError):
    """The video cannot be written there or so (said before any rendering)."""


@dataclass(frozen=True)
class VideoInfo:
    """What `render_video` wrote."""

    path: Path
    encoder: str  # the FFmpeg encoder used: libx264, h264_nvenc, libx264rgb, ffv1
    pix_fmt: str
    width: int  # the encoded size, padding included
    height: int
    content_width: int  # the largest canvas, before padding
    content_height: int
    frames: int  # one per time point
    fps: Fraction
    timeline: Optional[str]
    first_time: Optional[int]
    last_time: Optional[int]
    empty: int  # frames with nothing to draw (background only)
    failed: int  # frames damaged data stopped (background only, each one warned)
    fallback: Optional[str]  # why NVENC was not used for codec "h264", else None


def _import_av():
    try:
        import av  # noqa: PLC0415 - optional extra pixelrun[video]; only video output needs it
    except ImportError:
        raise VideoOutputError("video output needs PyAV: pip install 'pixelrun[video]' (or pip install av)") from None
    return av


def check_video_output(path: Union[str, "os.PathLike[str]"], codec: str = DEFAULT_CODEC) -> Path:
    """`path` checked before any work: a known codec, an extension that codec's
    container takes, an existing folder that takes a file. VideoOutputError saying why not."""
    p = Path(path)
    if codec not in CODECS:
        raise VideoOutputError(f"unknown video codec {codec!r}: expected one of {', '.join(CODECS)}")
    ext = p.suffix.lower()
    exts = CODECS[codec].extensions
    if ext not in exts:
        got = f"extension {ext!r}" if ext else "no extension"
        raise VideoOutputError(f"the video {str(p)!r} has {got}: codec {codec} writes {', '.join(exts)}")
    folder = p.parent
    if p.is_dir():
        raise VideoOutputError(f"{p} is a folder: give a {'/'.join(exts)} file name")
    if not folder.is_dir():
        why = "is not a folder" if folder.exists() else "does not exist"
        raise VideoOutputError(f"cannot write {p}: its folder {folder}/ {why}")
    why = R.folder_write_error(folder)
    if why:
        raise VideoOutputError(f"cannot write to {folder}/: {why}")
    return p


def check_video_options(
    path: Union[str, "os.PathLike[str]"],
    *,
    codec: str = DEFAULT_CODEC,
    fps: Union[int, Fraction] = 30,
    crf: int = DEFAULT_CRF,
    background: Optional[R.Color] = None,
) -> tuple[Path, Fraction, tuple[int, int, int, int]]:
    """Everything about a video checked before any work -> (path, fps, opaque background);
    VideoOutputError saying what is wrong. Also proves PyAV is installed."""
    out = check_video_output(path, codec)
    try:
        fps = Fraction(fps)
    except (TypeError, ValueError):
        raise VideoOutputError(f"fps must be a number, got {fps!r}") from None
    if not 0 < fps <= 1000:
        raise VideoOutputError(f"fps must be in (0, 1000], got {fps}")
    if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= 51:
        raise VideoOutputError(f"crf must be an integer 0..51, got {crf!r}")
    bg = DEFAULT_BACKGROUND if background is None else tuple(int(c) for c in background)
    if len(bg) == 3:
        bg = (*bg, 255)
    if len(bg) != 4 or not all(0 <= c <= 255 for c in bg) or bg[3] != 255:
        raise VideoOutputError(
            f"a video background must be opaque r,g,b bytes (video has no alpha), got {background!r}")
    _import_av()
    return out, fps, bg  # type: ignore[return-value]


_NVENC: dict[str, Optional[str]] = {}  # "reason" -> None when NVENC works, else why not


def nvenc_status() -> Optional[str]:
    """None when h264_nvenc is in PyAV's FFmpeg and encodes a frame here, else why not
    (checked once per process)."""
    if "reason" not in _NVENC:
        av = _import_av()
        if "h264_nvenc" not in av.codecs_available:
            reason: Optional[str] = "h264_nvenc is not in PyAV's FFmpeg build"
        else:
            try:
                ctx = av.CodecContext.create("h264_nvenc", "w")
                ctx.width, ctx.height, ctx.pix_fmt = 256, 256, "yuv420p"
                ctx.time_base = Fraction(1, 30)
                ctx.open()
                frame = av.VideoFrame(256, 256, "yuv420p")
                frame.pts = 0
                ctx.encode(frame)
                ctx.encode(None)
                reason = None
            except Exception as exc:  # any failure to open means "not here"; the reason says which
                reason = f"h264_nvenc does not open here ({type(exc).__name__}: {exc})"
        _NVENC["reason"] = reason
    return _NVENC["reason"]


def _encoder(codec: str) -> tuple[str, Optional[str]]:
    """(FFmpeg encoder, why NVENC was not used) for a codec name."""
    if codec != "h264":
        if codec == "h264_nvenc" and nvenc_status() is not None:
            raise VideoOutputError(f"codec h264_nvenc asked for, but {nvenc_status()}")
        return CODECS[codec].encoder, None
    reason = nvenc_status()
    return ("h264_nvenc", None) if reason is None else ("libx264", reason)


def _options(encoder: str, crf: int) -> dict[str, str]:
    if encoder == "libx264":
        return {"crf": str(crf)}
    if encoder == "h264_nvenc":
        return {"rc": "vbr", "cq": str(crf), "b": "0", "preset": "p5"}
    if encoder == "libx264rgb":
        return {"qp": "0"}
    return {}  # ffv1 is lossless as it is


def _canvas(store, times, entity, timeline) -> tuple[int, int]:
    """The largest canvas over `times` (layer sizes only; nothing drawn). Built with
    scene_at, not api.layers_at, so that problems are said once, by the render pass."""
    w = h = 0
    for t in times:
        try:
            cw, ch = canvas_size(scene_at(store, timeline, int(t), entity, problems=[]))
        except R.FRAME_ERRORS:
            continue  # the render pass reports it
        w, h = max(w, cw), max(h, ch)
    return w, h


def render_video(
    source: R.Source,
    path: Union[str, "os.PathLike[str]"],
    *,
    entity: Optional[str] = None,
    timeline: Optional[str] = None,
    fps: Union[int, Fraction] = 30,
    crf: int = DEFAULT_CRF,
    codec: str = DEFAULT_CODEC,
    background: Optional[R.Color] = None,
    backend: str = "auto",
    on_frame: Optional[Callable[[int, Optional[BaseException]], None]] = None,
) -> VideoInfo:
    """Render every time point on `timeline` (with image data under `entity`) into one
    video at `path` -> VideoInfo. See the module docstring for timing, alpha, size and codecs.

    source, entity, timeline, backend: as `pixelrun.engine.render`. fps: frames per
    second (a positive int or Fraction). crf: 0..51, lower is better (lossy codecs only).
    background: opaque RGB(A) bytes under every frame (default black). on_frame: called
    after each frame with its time and the exception that stopped it (None when drawn);
    without it a stopped frame is a RenderWarning.

    Raises VideoOutputError (a ValueError) for a bad path, extension, codec, fps, crf or
    background, before anything is rendered; NotFoundError as `render` does; ValueError
    when there is no timeline or no image on it.
    """
    out, fps, bg = check_video_options(path, codec=codec, fps=fps, crf=crf, background=background)
    av = _import_av()
    encoder, fallback = _encoder(codec)
    spec = CODECS[codec]

    store = R.open_store(source)
    R.check_entity(store, entity)
    if timeline is None:
        timeline = R.default_timeline(store)
    if timeline is None:
        raise ValueError("a video needs a timeline, and this recording has none (static data only)")
    times = [int(t) for t in R.time_points(store, timeline, entity)]
    if not times:
        under = f" under {entity!r}" if entity else ""
        raise ValueError(f"no image data{under} on timeline {timeline!r}: nothing to put in a video")
    cw, ch = _canvas(store, times, entity, timeline)
    if not cw or not ch:
        raise ValueError(f"nothing to draw at any of the {len(times)} time point(s) on timeline {timeline!r}")
    sub = spec.pix_fmt == "yuv420p"  # chroma at half resolution: even sizes only
    width, height = (cw + (cw & 1), ch + (ch & 1)) if sub else (cw, ch)

    canvas = np.empty((height, width, 3), np.uint8)
    empty = failed = 0
    container = av.open(str(out), mode="w")
    try:
        stream = container.add_stream(encoder, rate=fps, options=_options(encoder, crf))
        stream.width, stream.height, stream.pix_fmt = width, height, spec.pix_fmt
        if sub:  # what swscale's rgb24 -> yuv420p writes; tagged so players decode it the same way
            cc = stream.codec_context
            cc.colorspace, cc.color_range = 6, 1  # SMPTE 170M (BT.601), limited ("tv") range
            cc.color_primaries, cc.color_trc = 6, 6
        for i, (t, rgba) in enumerate(R.render_times(store, times, entity=entity, timeline=timeline,
                                                       background=bg, backend=backend)):
            canvas[...] = bg[:3]
            if isinstance(rgba, BaseException):
                failed += 1
                if on_frame is None:
                    warnings.warn(f"{timeline}={t}: not rendered ({type(rgba).__name__}: {rgba}); "
                                  "a background frame is in its place", RenderWarning, stacklevel=2)
            elif rgba.size == 0:
                empty += 1
            else:  # over an opaque background the composite is opaque: its RGB is the pixel
                fh, fw = min(rgba.shape[0], height), min(rgba.shape[1], width)
                canvas[:fh, :fw] = rgba[:fh, :fw, :3]
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
            if on_frame is not None:
                on_frame(t, rgba if isinstance(rgba, BaseException) else None)
        container.mux(stream.encode(None))  # flush the encoder's delayed frames
    except BaseException:
        container.close()
        out.unlink(missing_ok=True)  # no half-written video left behind
        raise
    container.close()
    return VideoInfo(out, encoder, spec.pix_fmt, width, height, cw, ch, len(times), fps, timeline,
                     times[0], times[-1], empty, failed, fallback)
