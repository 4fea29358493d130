"""Headless rendering: a recording's 2D view at one time point as an (H, W, 4) uint8 array.

    from pixelrun.engine import render
    rgba = render("rec.rrd", timeline="step", time=19)            # the composited view
    rgba = render(rec, entity="cam/left", backend="numpy")          # a subtree, on the CPU

``source`` is an ``.rrd`` path, a memory recording (an object with ``rrd_bytes()``),
bytes, or a store (``pixelrun.engine.store.store.ChunkStore``). The view is contract §4's: every
image entity resolved by latest-at, drawn by DrawOrder then entity path, blended in
linear light over the background (default transparent), at native size.

Backends: "wgpu" (the Renderer on this process's shared device), "numpy" (the float64
oracle, kernels/reference/composite.py), "cupy" (kernels/cuda/composite.py, NVIDIA only), "auto"
(kernels/backends.py's rule: wgpu when an adapter exists, else numpy). Every backend
gives the same pixels (within 1 LSB).

Timeline choice when ``timeline`` is None: the recording's only timeline; with several,
the first user timeline by name (``log_time``/``log_tick``, which the SDK stamps on every
``log``, only when there is nothing else); with none, static data only. ``time`` None
means the latest data on that timeline.

Errors: an entity, timeline or time the recording does not have raises `NotFoundError`
(a LookupError) whose message lists what the recording has; a path that is not an .rrd
file raises `NotAnRrdFileError` (a ValueError) naming the path. Images that cannot be
drawn are left out with a `RenderWarning` (a ``pixelrun.PixelrunWarning``).
"""

from __future__ import annotations

import os
import tempfile
import warnings
import weakref
from typing import Iterator, Optional, Protocol, Sequence, Union

import numpy as np
import pyarrow as pa

from pixelrun.engine import chunk
from pixelrun.engine.scene import Layer, canvas_size, scene_at, times_of, undrawn_notices
from pixelrun.engine.store import store as _store
from pixelrun.engine.store.source import not_rrd_reason
from pixelrun.kernels import backends
from pixelrun.kernels.errors import NotDrawnWarning, RenderWarning, user_stacklevel

__all__ = [
    "render",
    "open_store",
    "NotFoundError",
    "NotAnRrdFileError",
    "check_entity",
    "render_layers",
    "layers_at",
    "open_source",
    "default_timeline",
    "time_points",
    "render_times",
    "FRAME_ERRORS",
    "resolve_backend",
    "check_timeline",
    "shared_renderer",
    "RenderWarning",
    "BACKENDS",
]

# The registry's backends (kernels/backends.py) plus "auto".
BACKENDS = (*backends.BACKENDS, "auto")


class NotFoundError(LookupError, ValueError):
    """An entity, timeline or time point the recording does not have; the message lists
    what it has. Also a ValueError, which these errors were before it existed."""


class NotAnRrdFileError(ValueError):
    """A path given as a recording is not an .rrd file at all (the message names it)."""


class MemoryRecordingLike(Protocol):
    """Anything with ``rrd_bytes()``, such as ``pixelrun.memory_recording()``."""

    def rrd_bytes(self) -> bytes: ...


# What render() and open_store() take: a path, a memory recording, .rrd bytes, or a store.
Source = Union[str, "os.PathLike[str]", bytes, MemoryRecordingLike, _store.ChunkStore]
Color = Sequence[int]

def resolve_backend(backend: str) -> str:
    """A backend name checked, with "auto" resolved by kernels/backends.py's rule."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown render backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    return backends.choose_backend(backend)


def shared_renderer():
    """The process-wide wgpu Renderer (the registry's wgpu compositor draws with it)."""
    from pixelrun.kernels.wgpu.composite import shared_renderer as shared  # noqa: PLC0415 - imports wgpu

    return shared()


# The largest canvas drawn (RGBA bytes: 1 GiB). Layers are drawn at native size on a
# canvas as large as the largest of them in each direction; a recording whose formats
# ask for more (a damaged or hostile width next to a tall image) is refused, not
# allocated.
MAX_CANVAS_BYTES = 1 << 30


def render_layers(layers: Sequence[Layer], background=None, backend: str = "wgpu") -> np.ndarray:
    """Composite a list of Layers at native size with one backend -> (H, W, 4) uint8.

    ValueError when the canvas would exceed MAX_CANVAS_BYTES.
    """
    bg = (0, 0, 0, 0) if background is None else tuple(background)
    name = resolve_backend(backend)
    w, h = canvas_size(list(layers))
    if w * h * 4 > MAX_CANVAS_BYTES:
        sizes = ", ".join(f"{l.entity} {l.format.width}x{l.format.height}" for l in layers)
        raise ValueError(
            f"the view would be a {w}x{h} canvas ({w * h * 4} bytes), more than the "
            f"{MAX_CANVAS_BYTES}-byte limit (images: {sizes})"
        )
    return backends.composite(name, layers, bg)


def _is_store(source: object) -> bool:
    return hasattr(source, "latest_at") and hasattr(source, "entities")


def open_store(source: Source) -> _store.ChunkStore:
    """A store from an .rrd path, a memory recording, .rrd bytes, or a store (returned
    as is): what `render` draws from, and what to keep when rendering many time points.

    A path to something that is not an .rrd file at all raises `NotAnRrdFileError` (a
    ValueError: "not an .rrd file: PATH ..."); a missing or unreadable path raises
    OSError; a damaged .rrd opens with what is intact (its problems in
    ``store.problems`` and a StoreWarning).
    """
    if _is_store(source):
        return source  # type: ignore[return-value]
    if isinstance(source, (str, os.PathLike)):
        reason = not_rrd_reason(source)
        if reason is not None:
            raise NotAnRrdFileError(reason)
    return _store.open_store(source)


open_source = open_store  # the name the CLI and older code use


def default_timeline(store: _store.ChunkStore) -> Optional[str]:
    """The timeline a render uses when none is named (see the module docstring)."""
    return chunk.default_timeline(store.timelines())


def _listing(names: Sequence[str], limit: int = 20) -> str:
    """'a, b, c' (at most `limit` names, then how many more), each made printable."""
    shown = ", ".join(chunk.printable(n, 120) for n in names[:limit])
    more = f", ... and {len(names) - limit} more" if len(names) > limit else ""
    return shown + more


def check_timeline(store: _store.ChunkStore, timeline: Optional[str]) -> None:
    """NotFoundError naming the recording's timelines when `timeline` is not one of them."""
    if timeline is None:
        return
    names = sorted(store.timelines())
    if timeline not in names:
        raise NotFoundError(
            f"timeline {timeline!r} is not in this recording (it has: {_listing(names) or 'no timelines'})"
        )


def check_entity(store: _store.ChunkStore, entity: Optional[str]) -> None:
    """NotFoundError listing the recording's entities when nothing is at or under
    `entity` (either spelling of a path: "cam left/x" or "/cam\\ left/x")."""
    if entity is None or store.entities(under=entity):
        return
    names = store.entities()
    undrawn = undrawn_notices(store, entity, set())
    if undrawn:  # there, but only archetypes not drawn yet: say so rather than "not in"
        raise NotFoundError(
            f"nothing to draw at or under {chunk.printable(entity, 120)!r}: {'; '.join(undrawn[:5])} "
            f"(entities drawn: {_listing(names) or 'none'})"
        )
    raise NotFoundError(
        f"entity {chunk.printable(entity, 120)!r} is not in this recording "
        f"(it has: {_listing(names) or 'no entities'})"
    )


def _check_time(store: _store.ChunkStore, timeline: Optional[str], time: int, entity: Optional[str]) -> None:
    """NotFoundError when `time` comes before every image on `timeline` (under
    `entity`), so that no image can resolve there; the message gives the range."""
    under = f" under {entity!r}" if entity else ""
    if timeline is None:
        raise NotFoundError(f"time {time} given, but this recording has no timelines (static data only)")
    times = times_of(store, timeline, entity)
    if times.size and time >= int(times[0]):
        return  # data exists up to here; the view is empty for another reason (a clear)
    has = (f"it has image data{under} at {int(times[0])}..{int(times[-1])}, {times.size} time point(s)"
           if times.size else f"it has no image data{under} on this timeline")
    raise NotFoundError(f"nothing is logged{under} on timeline {timeline!r} at or before {time} ({has})")


def layers_at(
    store: _store.ChunkStore,
    *,
    entity: Optional[str] = None,
    timeline: Optional[str] = None,
    time: Optional[int] = None,
    decode_device: str = "cpu",
) -> list[Layer]:
    """The scene's layers at a time point; undrawable images are reported as RenderWarnings.
    decode_device "cuda": EncodedImage JPEGs decoded on the GPU, for the cupy backend (scene_at)."""
    problems: list[str] = []
    layers = scene_at(store, timeline, time, entity, problems=problems, decode_device=decode_device)
    for msg in problems:
        warnings.warn(f"left out of the render: {msg}", RenderWarning, stacklevel=user_stacklevel())
    try:  # each entity of an archetype not drawn yet is named once per store
        named = _UNDRAWN_NAMED.setdefault(store, set())
    except TypeError:  # a store that cannot be weakly referenced: named every time
        named = set()
    for msg in undrawn_notices(store, entity, named):
        warnings.warn(f"left out of the render: {msg}", NotDrawnWarning, stacklevel=user_stacklevel())
    return layers


# store -> entities already named by layers_at as holding archetypes not drawn yet
_UNDRAWN_NAMED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def render(
    source: Source,
    *,
    entity: Optional[str] = None,
    timeline: Optional[str] = None,
    time: Optional[int] = None,
    backend: str = "auto",
    background: Optional[Color] = None,
) -> np.ndarray:
    """Render a recording's view at one time point -> (H, W, 4) uint8 RGBA.

    source: an .rrd path, a memory recording, .rrd bytes, or a store (`open_store`).
    entity: only this entity's subtree. timeline / time: the time point (defaults in
    the module docstring; `time` is the timeline's integer value: sequence ticks or
    nanoseconds). backend: "auto", "wgpu", "numpy" or "cupy". background: RGBA bytes
    (default transparent).

    Raises NotFoundError (a LookupError) listing what the recording has when it has no
    such entity or timeline, or nothing at or before `time`; NotAnRrdFileError for a
    path that is not an .rrd file. A view with nothing to draw otherwise (no images at
    all, or all cleared) is a (0, 0, 4) array.
    """
    store = open_store(source)
    check_entity(store, entity)
    if timeline is None:
        timeline = default_timeline(store)
    else:
        check_timeline(store, timeline)
    name = resolve_backend(backend)
    layers = layers_at(store, entity=entity, timeline=timeline, time=time, decode_device=_decode_device(name))
    if not layers and time is not None:
        _check_time(store, timeline, time, entity)
    return render_layers(layers, background=background, backend=name)


def _decode_device(backend: str) -> str:
    # the CuPy backend takes device buffers: its EncodedImage JPEGs are decoded on the GPU
    return "cuda" if backend == "cupy" else "cpu"


def time_points(store: _store.ChunkStore, timeline: str, entity: Optional[str] = None) -> np.ndarray:
    """Every time point on `timeline` where image data is logged (sorted int64);
    NotFoundError for a timeline or entity the recording does not have."""
    check_timeline(store, timeline)
    check_entity(store, entity)
    return times_of(store, timeline, entity)


# Errors one frame's rendering can raise on damaged data: the frame is named and skipped.
FRAME_ERRORS = (ValueError, TypeError, RuntimeError, MemoryError, OverflowError, pa.ArrowException)


def render_times(
    store: _store.ChunkStore,
    times: Sequence[int],
    *,
    entity: Optional[str] = None,
    timeline: Optional[str] = None,
    background: Optional[Color] = None,
    backend: str = "auto",
) -> Iterator[tuple[int, Union[np.ndarray, BaseException]]]:
    """(time, rgba) for each of `times` in order, rendered one at a time (what
    ``pixelrun render --all-times`` writes as PNGs and video frames). A frame that
    damaged data stops yields the exception (one of FRAME_ERRORS) in place of its
    pixels, and the rest go on. On the cupy backend the frames are drawn in batches."""
    name = resolve_backend(backend)
    bg = (0, 0, 0, 0) if background is None else tuple(background)
    done = 0
    if name == "cupy":
        from pixelrun.kernels.cuda.composite import render_many  # noqa: PLC0415 - imports cupy

        scenes = (layers_at(store, entity=entity, timeline=timeline, time=int(t), decode_device="cuda")
                  for t in times)
        try:
            for t, rgba in zip(times, render_many(scenes, background=bg)):
                done += 1
                yield t, rgba
            return
        except FRAME_ERRORS as exc:  # the batch stopped: name the frame, go on one by one
            yield times[done], exc
            done += 1
    for t in times[done:]:
        try:
            layers = layers_at(store, entity=entity, timeline=timeline, time=int(t), decode_device=_decode_device(name))
            yield t, render_layers(layers, background=bg, backend=name)
        except FRAME_ERRORS as exc:
            yield t, exc


def folder_write_error(folder) -> Optional[str]:
    """Why nothing can be written into an existing `folder` (None when a file can be).

    Output paths are checked before any frame is rendered, by creating and removing a
    probe file: permissions alone do not say (root, read-only mounts, quotas).
    """
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".pixelrun-write-test-"):
            pass
    except OSError as exc:
        return str(exc.strerror or exc)
    return None
