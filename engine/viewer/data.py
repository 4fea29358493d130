"""What the window shows, apart from the window: data, time cursor, per-entity overrides.

`ViewerData` owns the store and is the only part of the viewer that talks to it, so
ingest threads (one per connection) and the window's thread meet in one place (the
store itself is thread-safe). Every ingest bumps the store's generation; the window
redraws when the generation, the time cursor,
an override or the view changed, and not otherwise.

`Playback` is the timeline panel's state: which timeline, where the cursor is,
playing or not, at what speed, and whether it follows the newest data.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np

from pixelrun.engine.archetypes import ANNOTATION_CONTEXT, ARCHETYPES, DEPTH_IMAGE
from pixelrun.engine.chunk import Chunk, default_timeline, format_time
from pixelrun.engine.scene import Layer, order_layers, scene_at, times_of, undrawn_notices
from pixelrun.engine.store.store import ChunkStore
from pixelrun.engine.viewer.view import Layout, parent_path
from pixelrun.kernels.layers import LayerKind

__all__ = [
    "EntityOverride", "Playback", "ViewerData", "TimelineInfo", "format_time", "Recordings", "settings_path",
]

# Rerun's automatic timelines: chosen last when picking the default timeline.
SEQUENCE_STEPS_PER_SECOND = 10.0  # playback speed 1.0 on a sequence timeline


@dataclass(frozen=True)
class TimelineInfo:
    name: str
    kind: str  # "sequence", "duration", "timestamp"
    lo: int
    hi: int


@dataclass
class EntityOverride:
    """The entity panel's per-entity settings; None means 'as logged'.

    value_range: a pinned (lo, hi) display range in raw sample units (None: auto, the
    logged range or contract §3.1's rule, recomputed per frame); colormap: a Colormap
    value for single-channel and depth images; magnification: 1 nearest, 2 linear.
    """

    visible: bool = True
    opacity: Optional[float] = None
    draw_order: Optional[float] = None
    value_range: Optional[tuple[float, float]] = None
    colormap: Optional[int] = None
    magnification: Optional[int] = None

    def layer_changes(self) -> dict:
        """The Layer fields this override sets (for dataclasses.replace)."""
        out = {}
        for name in ("opacity", "draw_order", "value_range", "colormap", "magnification"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def to_json(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and not (k == "visible" and v)}

    @classmethod
    def from_json(cls, entity: str, obj) -> "EntityOverride":
        """Parse one entity's saved settings; ValueError naming the entity and field."""
        if not isinstance(obj, dict):
            raise ValueError(f"{entity}: expected an object of settings, got {type(obj).__name__}")
        ov = cls()
        for key, value in obj.items():
            try:
                if key == "visible":
                    if not isinstance(value, bool):
                        raise ValueError("expected true or false")
                    ov.visible = value
                elif key in ("opacity", "draw_order"):
                    setattr(ov, key, _finite(value))
                elif key == "value_range":
                    lo, hi = (_finite(v) for v in value)
                    if not lo < hi:
                        raise ValueError("expected [lo, hi] with lo < hi")
                    ov.value_range = (lo, hi)
                elif key in ("colormap", "magnification"):
                    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 255:
                        raise ValueError("expected an enum value (an integer from 1)")
                    setattr(ov, key, value)
                else:
                    raise ValueError("unknown setting")
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{entity}: {key}={value!r}: {exc}") from None
        return ov


def _finite(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


DENSITY_REFRESH_S = 0.5  # timeline marks are recounted at most this often while data streams in
SETTINGS_SUFFIX = ".pixelrun.json"
SETTINGS_VERSION = 1
_MAX_SETTINGS_BYTES = 4 << 20  # a settings file is small; a huge one is not ours


def settings_path(recording_path: str) -> str:
    """Where the settings of a recording are saved: next to it, `<recording>.pixelrun.json`."""
    return str(recording_path) + SETTINGS_SUFFIX


@dataclass
class Playback:
    timeline: Optional[str] = None
    time: Optional[int] = None
    playing: bool = False
    follow: bool = True  # keep the cursor on the newest time as data arrives
    loop: bool = False  # playing past the end starts again at the beginning
    speed: float = 1.0
    _carry: float = 0.0  # fractional ticks not yet applied

    def advance(self, dt: float, info: Optional[TimelineInfo]) -> bool:
        """Move the cursor by dt seconds of playback; True when it moved."""
        if not self.playing or info is None:
            return False
        if self.time is None:
            self.time = info.lo
        rate = SEQUENCE_STEPS_PER_SECOND if info.kind == "sequence" else 1e9
        self._carry += dt * rate * self.speed
        step = int(self._carry)
        if step == 0:
            return False
        self._carry -= step
        new = min(info.hi, self.time + step)
        if new >= info.hi and self.loop and info.hi > info.lo:
            new = info.lo  # loop: the end wraps to the beginning
            self.follow = False
        elif new >= info.hi:
            # Stop at the end like a video player (with follow on, newer data still
            # moves the cursor): no busy redraw loop while nothing changes.
            new = info.hi
            self.playing = False
        moved = new != self.time
        self.time = new
        return moved


class ViewerData:
    """The store plus what the user chose to show of it. Thread-safe ingest."""

    def __init__(self, store=None, name: str = "live", path: Optional[str] = None) -> None:
        if store is None:
            store = ChunkStore()
        self.store = store
        self.name = name  # shown in the recording list
        self.path = path  # the recording's file, when it came from one (settings go next to it)
        self.layout = Layout()  # which entity is in which view, each view's pan/zoom
        self.settings_message: Optional[str] = None  # the last save/restore outcome, for the panel
        self._density_cache: tuple = (None, {})
        self._density_time = 0.0
        self.dropped_chunks = 0  # chunks the store let go of (memory limit)
        self.scene_problems: list = []  # images that cannot be drawn, with the reason
        self.undrawn: list[str] = []  # entities of archetypes not drawn yet, each named once
        self._undrawn_named: set = set()
        self.playback = Playback()
        self.overrides: dict[str, EntityOverride] = {}
        self.root: Optional[str] = None  # show only this entity's subtree (pixelrun view --entity)
        self.overrides_version = 0  # bump after changing `overrides` (the scene cache key)
        self.ingest_errors = 0
        self._listeners: list[Callable[[], None]] = []
        self._timelines_cache: tuple = (None, [])
        self._entities_cache: tuple = (None, [])
        self._times_cache: tuple = (None, None)

    # ------------------------------------------------------------------ ingest side

    def add_listener(self, fn: Callable[[], None]) -> None:
        """fn() is called (from the ingesting thread) after each ingest."""
        self._listeners.append(fn)

    def ingest(self, chunks: Iterable[Chunk]) -> None:
        """Add decoded chunks (any thread); the store bumps its generation."""
        chunks = list(chunks)
        gen = self.store.generation
        report = self.store.add_chunks(chunks)
        self.dropped_chunks += len(report.dropped)
        self._extend_timelines(gen, chunks, report)
        for fn in self._listeners:
            fn()

    def _extend_timelines(self, gen: int, chunks: list[Chunk], report) -> None:
        """Keep the cached timeline ranges current across a plain ingest of `chunks`
        (store generation `gen` before it) without the store's summary, which walks every
        chunk the store ever held: asked after every live ingest, a cost per frame that
        grows with the recording. Anything more than rows added to known timelines (a
        chunk refused or dropped, a new timeline, another change to the store in between)
        leaves the cache stale, and the next `timelines()` asks the store."""
        cached_gen, infos = self._timelines_cache
        if (cached_gen != gen or self.store.generation != gen + 1 or report.dropped or report.problems
                or report.chunks != len(chunks)):
            return
        ranges = {i.name: [i.lo, i.hi] for i in infos}
        for chunk in chunks:
            for tl, col in chunk.timelines.items():
                r = ranges.get(tl)
                if r is None:
                    return  # a new timeline: its kind is the store's to say
                values = np.asarray(col.values).astype(np.int64, copy=False)  # as the store keeps them
                if values.size:
                    r[0], r[1] = min(r[0], int(values.min())), max(r[1], int(values.max()))
        self._timelines_cache = (gen + 1, [TimelineInfo(i.name, i.kind, *ranges[i.name]) for i in infos])

    def load_file(self, path: str) -> list[str]:
        """Read a whole .rrd file; returns the decoder's problems (truncation...)."""
        report = self.store.ingest_file(path)
        for fn in self._listeners:
            fn()
        return [str(p) for p in report.problems]

    def depth_meters(self, layers: list[Layer]) -> dict[str, float]:
        """DepthImage:meter of each depth layer at the cursor (absent: not in the dict)."""
        out = {}
        for l in layers:
            if l.kind != LayerKind.DEPTH:
                continue
            value = self._latest_value(l.entity, _METER_COLUMN)
            if isinstance(value, (int, float)) and value > 0:
                out[l.entity] = float(value)
        return out

    def class_labels(self, layers: list[Layer]) -> dict[str, dict[int, str]]:
        """class id -> label for each segmentation layer, from the nearest AnnotationContext
        at the entity or above it (Rerun's rule)."""
        out = {}
        for l in layers:
            if l.kind != LayerKind.SEGMENTATION:
                continue
            path = l.entity
            while True:
                ctx = self._latest_value(path, _CONTEXT_COLUMN)
                if ctx is not None:
                    out[l.entity] = {
                        int(e["class_id"]): e["class_description"]["info"].get("label") or ""
                        for e in ctx if isinstance(e, dict)
                    }
                    break
                if path in ("/", ""):
                    break
                path = parent_path(path)
        return out

    def _latest_value(self, entity: str, column: str):
        """The last instance of `column` at the cursor (latest-at), as Python, or None."""
        pb = self.playback
        try:
            hit = self.store.latest_at(entity, [column], pb.timeline, pb.time).get(column)
        except (KeyError, ValueError):
            return None
        if hit is None:
            return None
        values = hit.values
        return values[len(values) - 1].as_py() if len(values) else None

    # ------------------------------------------------------------------ settings

    def settings(self) -> dict:
        """The per-entity settings and view assignments, as saved to `.pixelrun.json`."""
        ents = {e: ov.to_json() for e, ov in sorted(self.overrides.items())}
        return {
            "version": SETTINGS_VERSION,
            "entities": {e: v for e, v in ents.items() if v},
            "views": dict(sorted(self.layout.assigned.items())),
            "maximized": self.layout.maximized,
        }

    def save_settings(self, path: Optional[str] = None) -> str:
        """Write `settings()` next to the recording (or to `path`); the path written.
        OSError when it cannot be written, ValueError for live data without a path."""
        target = path or (settings_path(self.path) if self.path else None)
        if target is None:
            raise ValueError(f"{self.name}: live data has no recording file to save settings next to")
        tmp = f"{target}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.settings(), f, indent=1)
        os.replace(tmp, target)  # a reader never sees half a file
        self.settings_message = f"settings saved to {target}"
        return target

    def restore_settings(self, path: Optional[str] = None) -> bool:
        """Apply saved settings (from `path` or next to the recording) when the file exists.

        True when applied. ValueError naming the file and the bad entry when the file is
        not valid settings; nothing is applied then (all or nothing)."""
        source = path or (settings_path(self.path) if self.path else None)
        if source is None or not os.path.isfile(source):
            return False
        if os.path.getsize(source) > _MAX_SETTINGS_BYTES:
            raise ValueError(f"{source}: {os.path.getsize(source)} bytes is not a settings file "
                             f"(at most {_MAX_SETTINGS_BYTES})")
        try:
            with open(source, encoding="utf-8") as f:
                obj = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{source}: not JSON: {exc}") from None
        if not isinstance(obj, dict) or obj.get("version") != SETTINGS_VERSION:
            raise ValueError(f"{source}: expected a settings object with \"version\": {SETTINGS_VERSION}")
        ents, views, maxed = obj.get("entities", {}), obj.get("views", {}), obj.get("maximized")
        if not isinstance(ents, dict) or not isinstance(views, dict):
            raise ValueError(f"{source}: \"entities\" and \"views\" must be objects")
        try:
            overrides = {str(e): EntityOverride.from_json(str(e), v) for e, v in ents.items()}
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
        if not all(isinstance(v, str) for v in views.values()) or not (maxed is None or isinstance(maxed, str)):
            raise ValueError(f"{source}: view names must be strings")
        self.overrides = overrides
        self.layout.assigned = {str(e): v for e, v in views.items()}
        self.layout.maximized = maxed
        self.overrides_version += 1
        self.settings_message = f"settings restored from {source}"
        return True

    # ------------------------------------------------------------------ timeline marks

    def density(self, timeline: str, lo: int, hi: int, bins: int) -> dict[str, np.ndarray]:
        """Per entity, how many image rows fall in each of `bins` equal parts of [lo, hi]
        on `timeline` (the timeline's data-density marks). Cached per store generation;
        while data streams in, recounted at most every DENSITY_REFRESH_S (each count reads
        every entity's time index)."""
        key = (self.store.generation, timeline, lo, hi, bins)
        cached_key, cached = self._density_cache
        if cached_key == key:
            return cached
        now = time.monotonic()
        same_axis = cached_key is not None and (cached_key[1], cached_key[4]) == (timeline, bins)
        if same_axis and now - self._density_time < DENSITY_REFRESH_S:
            return cached  # live data: the marks follow at most every DENSITY_REFRESH_S, not every frame
        self._density_time = now
        out = {}
        span = max(1, hi - lo)
        for ent in self.entities():
            times = np.concatenate([self.store.index_times(ent, timeline, c) for c in _IMAGE_DATA_COLUMNS])
            if times.size == 0:
                continue
            idx = np.clip(((times - lo) * bins) // span, 0, bins - 1) if span > 0 else np.zeros_like(times)
            out[ent] = np.bincount(idx.astype(np.int64), minlength=bins)[:bins]
        self._density_cache = (key, out)
        return out

    @property
    def generation(self) -> int:
        """Changes whenever the store's content changed."""
        return self.store.generation

    # ------------------------------------------------------------------ window side

    def timelines(self) -> list[TimelineInfo]:
        """Timelines with their ranges; re-read from the store only after an ingest
        (the store's summary walks every chunk, too slow to repeat every frame)."""
        gen = self.store.generation
        if self._timelines_cache[0] != gen:
            infos = [TimelineInfo(n, k, lo, hi) for n, k, lo, hi in _store_timelines(self.store)]
            self._timelines_cache = (gen, infos)
        return self._timelines_cache[1]

    def entities(self) -> list[str]:
        gen = self.store.generation
        if self._entities_cache[0] != gen:
            self._entities_cache = (gen, sorted(_store_entities(self.store)))
        return self._entities_cache[1]

    def step_time(self, direction: int) -> None:
        """Move the cursor to the previous (-1) or next (+1) time holding image data."""


        pb = self.playback
        if pb.timeline is None or pb.time is None:
            return
        key = (self.store.generation, pb.timeline)
        if self._times_cache[0] != key:
            self._times_cache = (key, times_of(self.store, pb.timeline))
        times = self._times_cache[1]
        if direction < 0:
            i = int(np.searchsorted(times, pb.time, side="left")) - 1
            if i >= 0:
                pb.time = int(times[i])
        else:
            i = int(np.searchsorted(times, pb.time, side="right"))
            if i < len(times):
                pb.time = int(times[i])
        pb.follow = False

    def default_timeline(self, infos: list[TimelineInfo]) -> Optional[str]:
        return default_timeline([i.name for i in infos])

    def sync_playback(self) -> Optional[TimelineInfo]:
        """Pick a timeline if none, clamp the cursor, follow newest; the current info."""
        infos = self.timelines()
        pb = self.playback
        names = {i.name: i for i in infos}
        if pb.timeline not in names:
            pb.timeline = self.default_timeline(infos)
        info = names.get(pb.timeline) if pb.timeline else None
        if info is None:
            return None
        if pb.follow and not pb.playing:
            pb.time = info.hi
        elif pb.time is None:
            pb.time = info.hi
        else:
            pb.time = max(info.lo, min(info.hi, pb.time))
        return info

    def layers(self) -> list[Layer]:
        """The scene at the cursor with the entity panel's overrides, in draw order."""

        pb = self.playback
        problems: list = []
        raw = scene_at(self.store, pb.timeline, pb.time, self.root, problems=problems)
        self.undrawn += undrawn_notices(self.store, self.root, self._undrawn_named)
        self.scene_problems = problems + self.undrawn  # shown in the status panel, never raised
        out = []
        for layer in raw:
            ov = self.overrides.get(layer.entity)
            if ov is None:
                out.append(layer)
                continue
            if not ov.visible:
                continue
            changes = ov.layer_changes()
            out.append(dataclasses.replace(layer, **changes) if changes else layer)
        return order_layers(out)


_METER_COLUMN = DEPTH_IMAGE.column("meter")
_CONTEXT_COLUMN = ANNOTATION_CONTEXT.column("context")
# The column holding each image archetype's pixels: a row there is a frame (timeline marks).
_IMAGE_DATA_COLUMNS = tuple(
    c.column for a in ARCHETYPES for c in a.components if c.field in ("buffer", "blob")
)


class Recordings:
    """The recordings a viewer has open, never merged: one `ViewerData` each, one active."""

    def __init__(self, items: Optional[list[ViewerData]] = None) -> None:
        self.items: list[ViewerData] = []
        self.active = 0
        self.version = 0  # bumped when the active recording changes
        self.user_chose = False  # the user picked a recording: new data no longer switches
        self._had_data: list[bool] = []
        for item in items or []:
            self.add(item)

    def add(self, data: ViewerData) -> ViewerData:
        self.items.append(data)
        self._had_data.append(data.generation > 0)
        return data

    def follow_new_data(self) -> bool:
        """Rerun's rule: a recording that just received its first data becomes the active
        one (e.g. a program streams into a viewer opened on files), unless the user picked
        a recording. True when the active recording changed."""
        changed = False
        for i, rec in enumerate(self.items):
            if not self._had_data[i] and rec.generation > 0:
                self._had_data[i] = True
                if not self.user_chose and i != self.active:
                    self.activate(i)
                    changed = True
        return changed

    @property
    def current(self) -> ViewerData:
        return self.items[self.active]

    def activate(self, index: int) -> None:
        if not 0 <= index < len(self.items):
            raise IndexError(f"recording {index} does not exist (there are {len(self.items)})")
        if index != self.active:
            self.active = index
            self.version += 1


# ---------------------------------------------------------------- store adapters
# The store's query surface, in one place.


def _store_timelines(store) -> list[tuple[str, str, int, int]]:
    out = []
    for name, info in store.timelines().items():
        out.append((name, info.kind, int(info.min), int(info.max)))
    return out


def _store_entities(store) -> list[str]:
    return list(store.entity_paths())
