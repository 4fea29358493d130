"""pixelrun: Rerun-style image logging (``import pixelrun as rr``).

Both API generations of Rerun's image logging work (docs/contract.md §1):

    rr.init("app", spawn=True)
    rr.set_time("step", sequence=3)            # or rr.set_time_sequence("step", 3)
    rr.log("cam", rr.Image(frame))
    rr.send_columns("cam", indexes=[rr.TimeColumn("step", sequence=t)],
                    columns=rr.Image.columns(buffer=frames))

Sinks: ``rr.save(path)``, ``rr.memory_recording()``, ``rr.connect(addr)``,
``rr.spawn()``; ``PIXELRUN_SAVE=PATH`` captures every recording of an unmodified
script in PATH. Bad input warns (``PixelrunWarning``) and drops the row, or raises
``ValueError`` in strict mode (``init(strict=True)`` / ``PIXELRUN_STRICT=1``).

Every warning pixelrun emits (SDK, engine and kernels alike) is a ``PixelrunWarning``.

Loss is never silent: whatever a sink drops (no viewer, a full queue, rows logged
after ``close()``, rows not written within ``PIXELRUN_EXIT_TIMEOUT`` seconds at close
or exit) is counted (``rec.dropped_rows``) and reported with a ``DataLossWarning``.
"""

from __future__ import annotations

import argparse
import uuid
import warnings
from typing import Any, Optional

from pixelrun import (
    _grpc_fork,  # noqa: F401 - first of pixelrun's modules: grpcio's fork handlers off before grpc loads
    components,
)
from pixelrun.archetypes import (
    AnnotationContext,
    AnnotationInfo,
    ClassDescription,
    DepthImage,
    EncodedImage,
    Image,
    SegmentationImage,
)
from pixelrun.batcher import BatcherConfig, ChunkBatcherConfig
from pixelrun.components import Colormap, MagnificationFilter, Range1D, ValueRange
from pixelrun.errors import (
    DataLossWarning,
    PixelrunSaveError,
    PixelrunWarning,
    RecordingClosedWarning,
    is_strict,
    set_strict_mode,
    user_stacklevel,
)
from pixelrun.kernels.formats import ChannelDatatype, ColorModel, PixelFormat
from pixelrun.recording import RecordingStream, entity_path
from pixelrun.sinks import FileSinkSpec as FileSink
from pixelrun.sinks import GrpcSinkSpec as GrpcSink
from pixelrun.sinks import MemoryRecording
from pixelrun.timeline import (
    TimeColumn,
    TimeNanosColumn,
    TimeSecondsColumn,
    TimeSequenceColumn,
)

__all__ = [
    "init", "new_recording", "get_global_data_recording", "set_global_data_recording",
    "log", "send_columns", "set_time", "set_time_sequence", "set_time_seconds",
    "set_time_nanos", "reset_time", "disable_timeline", "save", "memory_recording",
    "connect", "connect_tcp", "connect_grpc", "spawn", "disconnect", "flush",
    "set_sinks", "FileSink", "GrpcSink", "ChunkBatcherConfig", "get_recording_id", "get_application_id",
    "send_recording_name", "send_recording_start_time_nanos",
    "script_add_args", "script_setup", "script_teardown",
    "Image", "DepthImage", "SegmentationImage", "EncodedImage", "AnnotationContext",
    "AnnotationInfo", "ClassDescription", "Colormap", "MagnificationFilter", "Range1D", "ValueRange",
    "components", "ColorModel", "ChannelDatatype", "PixelFormat",
    "TimeColumn", "TimeSequenceColumn", "TimeSecondsColumn", "TimeNanosColumn",
    "RecordingStream", "MemoryRecording", "BatcherConfig", "PixelrunWarning",
    "DataLossWarning", "RecordingClosedWarning", "PixelrunSaveError",
    "set_strict_mode", "is_strict", "entity_path",
]

__version__ = "0.1.0"

_global: Optional[RecordingStream] = None
_default_ids: dict[str, str] = {}  # application id -> its default recording id (rr.init)
_warned_no_recording = False


def init(
    application_id: str,
    *,
    recording_id: Optional[str] = None,
    spawn: bool = False,
    strict: Optional[bool] = None,
    default_enabled: bool = True,
    send_properties: bool = True,
    **_ignored: Any,
) -> RecordingStream:
    """Create the global recording (and start a viewer when ``spawn=True``).

    `strict` sets strict mode for the process (None: follow PIXELRUN_STRICT). With
    PIXELRUN_SAVE set to a path that cannot be written, the run stops here with a
    one-line message (SystemExit) rather than run with nothing saved. `send_properties`
    (as Rerun): the recording's start time is sent first (``/__properties``).
    """
    global _global
    if strict is not None:
        set_strict_mode(strict)
    if recording_id is None:  # Rerun: one default id per application in a process
        recording_id = _default_ids.setdefault(str(application_id), uuid.uuid4().hex)  # Rerun's form: 32 hex
    old = _global
    if old is not None and (old.application_id, old.recording_id) == (str(application_id), str(recording_id)):
        _global = None  # the same recording again: Rerun closes the old stream (its files get their footer)
        old.close()
    _global = RecordingStream(application_id, recording_id=recording_id, spawn=spawn,
                              send_properties=send_properties)
    return _global


def get_recording_id(recording: Optional[RecordingStream] = None) -> Optional[str]:
    """The id of `recording` (default: the global one); None before ``rr.init``."""
    rec = recording if recording is not None else _global
    return rec.get_recording_id() if rec is not None else None


def send_recording_name(name: str, recording: Optional[RecordingStream] = None) -> None:
    """Name the recording (default: the global one), as Rerun's ``/__properties`` row."""
    rec = _rec(recording)
    if rec is not None:
        rec.send_recording_name(name)


def send_recording_start_time_nanos(nanos: int, recording: Optional[RecordingStream] = None) -> None:
    """Set the recording's start time (nanoseconds since the UNIX epoch), as Rerun's
    ``/__properties`` row; ``rr.init`` already sends the time of its call."""
    rec = _rec(recording)
    if rec is not None:
        rec.send_recording_start_time_nanos(nanos)


def get_application_id(recording: Optional[RecordingStream] = None) -> Optional[str]:
    """The application id of `recording` (default: the global one); None before ``rr.init``."""
    rec = recording if recording is not None else _global
    return rec.get_application_id() if rec is not None else None


def set_sinks(*sinks: Any, default_blueprint: Any = None, recording: Optional[RecordingStream] = None) -> None:
    """Send the recording to every one of `sinks` at once: ``rr.FileSink(path)``,
    ``rr.GrpcSink(url)`` (e.g. ``set_sinks(rr.FileSink("a.rrd"), rr.GrpcSink())``)."""
    rec = _rec(recording)
    if rec is not None:
        rec.set_sinks(*sinks, default_blueprint=default_blueprint)


def new_recording(application_id: str, *, recording_id: Optional[str] = None,
                  make_default: bool = False, spawn: bool = False,
                  strict: Optional[bool] = None, send_properties: bool = True, **_: Any) -> RecordingStream:
    """A further recording stream (optionally made the global one).

    `strict` applies to this recording only (None: follow the process setting).
    """
    global _global
    rec = RecordingStream(application_id, recording_id=recording_id, spawn=spawn, strict=strict,
                          send_properties=send_properties)
    if make_default:
        _global = rec
    return rec


def get_global_data_recording() -> Optional[RecordingStream]:
    return _global


def set_global_data_recording(recording: Optional[RecordingStream]) -> Optional[RecordingStream]:
    global _global
    old, _global = _global, recording
    return old


def _rec(recording: Optional[RecordingStream]) -> Optional[RecordingStream]:
    global _warned_no_recording
    rec = recording if recording is not None else _global
    if rec is None and not _warned_no_recording:
        _warned_no_recording = True
        warnings.warn("pixelrun: nothing is recorded before rr.init(...)", PixelrunWarning,
                      stacklevel=user_stacklevel())
    return rec


def log(entity_path: Any, entity: Any, *extra: Any, static: bool = False,
        timeless: bool = False, recording: Optional[RecordingStream] = None,
        strict: Optional[bool] = None) -> None:
    """Log an archetype or components at the current time (or as static data)."""
    rec = _rec(recording)
    if rec is not None:
        rec.log(entity_path, entity, *extra, static=static, timeless=timeless, strict=strict)


def send_columns(entity_path: Any, indexes: Any = None, columns: Any = None, *,
                 times: Any = None, components: Any = None,
                 recording: Optional[RecordingStream] = None, strict: Optional[bool] = None) -> None:
    """Log many rows at once (``indexes=/columns=`` or seed-era ``times=/components=``)."""
    rec = _rec(recording)
    if rec is not None:
        rec.send_columns(entity_path, indexes, columns, times=times, components=components, strict=strict)


def set_time(timeline: str, *, recording: Optional[RecordingStream] = None, sequence: Any = None,
             duration: Any = None, timestamp: Any = None) -> None:
    """Set the calling thread's time: exactly one of sequence=, duration=, timestamp=."""
    rec = _rec(recording)
    if rec is not None:
        rec.set_time(timeline, sequence=sequence, duration=duration, timestamp=timestamp)


def set_time_sequence(timeline: str, sequence: Optional[int], recording: Optional[RecordingStream] = None) -> None:
    rec = _rec(recording)
    if rec is not None:
        rec.set_time_sequence(timeline, sequence)


def set_time_seconds(timeline: str, seconds: Optional[float], recording: Optional[RecordingStream] = None) -> None:
    rec = _rec(recording)
    if rec is not None:
        rec.set_time_seconds(timeline, seconds)


def set_time_nanos(timeline: str, nanos: Optional[int], recording: Optional[RecordingStream] = None) -> None:
    rec = _rec(recording)
    if rec is not None:
        rec.set_time_nanos(timeline, nanos)


def reset_time(recording: Optional[RecordingStream] = None) -> None:
    rec = _rec(recording)
    if rec is not None:
        rec.reset_time()


def disable_timeline(timeline: str, recording: Optional[RecordingStream] = None) -> None:
    rec = _rec(recording)
    if rec is not None:
        rec.disable_timeline(timeline)


def save(path: str, default_blueprint: Any = None, recording: Optional[RecordingStream] = None, *,
         write_footer: bool = True, **_: Any) -> None:
    """Write the recording to an .rrd file (``write_footer=False``: no End message
    nor stream footer, as Rerun's opt-out).

    Raises PixelrunSaveError (an OSError) naming the path when it cannot be written.
    A path another recording of this process is still writing is shared, with a
    warning; under PIXELRUN_SAVE the call is ignored, with a warning naming both.
    """
    rec = _rec(recording)
    if rec is not None:
        rec.save(path, write_footer=write_footer)


def memory_recording(recording: Optional[RecordingStream] = None) -> Optional[MemoryRecording]:
    """Keep the recording in memory; returns an object with ``rrd_bytes()``."""
    rec = _rec(recording)
    return rec.memory_recording() if rec is not None else None


def connect_grpc(url: Optional[str] = None, *, flush_timeout_sec: Optional[float] = 2.0,
                 recording: Optional[RecordingStream] = None, **_: Any) -> None:
    """Stream to a Rerun-compatible gRPC server: a Rerun viewer, ``rerun --serve-grpc``
    or ``pixelrun view`` (default ``rerun+http://127.0.0.1:9876/proxy``)."""
    rec = _rec(recording)
    if rec is not None:
        rec.connect_grpc(url, flush_timeout_sec=flush_timeout_sec)


def connect(addr: Optional[str] = None, *, recording: Optional[RecordingStream] = None, **_: Any) -> None:
    """Alias of `connect_grpc` ("host:port" or a rerun+http:// URL)."""
    rec = _rec(recording)
    if rec is not None:
        rec.connect(addr)


def connect_tcp(addr: Optional[str] = None, *, recording: Optional[RecordingStream] = None, **_: Any) -> None:
    """Deprecated alias of `connect_grpc` (warns once): the raw .rrd-over-TCP stream
    was retired; "host:port" (default 127.0.0.1:PIXELRUN_PORT or 9876) streams over
    gRPC to ``rerun+http://host:port/proxy``."""
    rec = _rec(recording)
    if rec is not None:
        rec.connect_tcp(addr)


def spawn(*, port: Optional[int] = None, connect: bool = True, recording: Optional[RecordingStream] = None,
          **_: Any) -> None:
    """Start the pixelrun viewer (if available) and stream to it.

    port: default PIXELRUN_PORT, else 9876 (Rerun's).
    """
    rec = _rec(recording)
    if rec is not None:
        rec.spawn(port=port, connect=connect)


def disconnect(recording: Optional[RecordingStream] = None) -> None:
    rec = _rec(recording)
    if rec is not None:
        rec.disconnect()


def flush(blocking: bool = True, recording: Optional[RecordingStream] = None, **_: Any) -> None:
    """Write everything logged so far to the sinks."""
    rec = _rec(recording)
    if rec is not None:
        rec.flush(blocking)


# ---------------------------------------------------------------- script helpers


def script_add_args(parser: "argparse.ArgumentParser") -> None:
    """Rerun's standard script flags: --headless, --connect, --url, --save PATH,
    --serve / --serve-web, --stdout (see `script_setup`)."""
    parser.add_argument("--headless", action="store_true", help="Don't show the viewer")
    parser.add_argument("--connect", dest="connect", action="store_true",
                        help="Connect to a running viewer (gRPC, --url)")
    parser.add_argument("--serve", "--serve-web", dest="serve", action="store_true",
                        help="Rerun's web viewer: not in pixelrun; a viewer is spawned instead")
    parser.add_argument("--url", type=str, default=None, help="Where --connect streams to (rerun+http://...)")
    parser.add_argument("--save", type=str, default=None, help="Save the recording to this .rrd file")
    parser.add_argument("-o", "--stdout", dest="stdout", action="store_true",
                        help="Rerun's .rrd on standard output: not in pixelrun (use --save)")


def script_setup(args: "argparse.Namespace", application_id: str, *, recording_id: Optional[str] = None,
                 default_blueprint: Any = None) -> RecordingStream:
    """Init the global recording (strict mode, as Rerun) and set its sink from the
    `script_add_args` flags: --stdout / --serve are not available (a warning says
    so), --connect streams over gRPC to --url, --save writes a file, and unless
    --headless a viewer is spawned."""
    rec = init(application_id, recording_id=recording_id, strict=True)
    if getattr(args, "stdout", False):
        warnings.warn("pixelrun: --stdout (an .rrd stream on standard output) is not supported; use --save PATH",
                      PixelrunWarning, stacklevel=user_stacklevel())
    if getattr(args, "serve", False):
        warnings.warn("pixelrun: --serve (Rerun's web viewer) is not available; spawning pixelrun's viewer",
                      PixelrunWarning, stacklevel=user_stacklevel())
        rec.spawn()
    elif getattr(args, "connect", False):
        rec.connect_grpc(getattr(args, "url", None))
    elif getattr(args, "save", None) is not None:
        rec.save(args.save)
    elif not getattr(args, "headless", False):
        rec.spawn()
    return rec


def script_teardown(args: "argparse.Namespace") -> None:
    """End of a script: flush and close the global recording (files get their
    footer; a drop summary is warned if anything was lost)."""
    rec = _global
    if rec is not None:
        rec.close()
