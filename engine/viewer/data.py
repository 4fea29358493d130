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
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np

from pixelrun.engine.chunk import Chunk, default_timeline, format_time
from pixelrun.engine.scene import Layer, order_layers, scene_at, times_of, undrawn_notices
from pixelrun.engine.store.store import ChunkStore

__all__ = ["EntityOverride", "Playback", "ViewerData", "TimelineInfo", "format_time"]

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
    """The entity panel's per-entity settings; None means 'as logged'."""

    visible: bool = True
    opacity: Optional[float] = None
    draw_order: Optional[float] = None


@dataclass
class Playback:
    timeline: Optional[str] = None
    time: Optional[int] = None
    playing: bool = False
    follow: bool = True  # keep the cursor on the newest time as data arrives
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
        if new >= info.hi:
            # Stop at the end like a video player (with follow on, newer data still
            # moves the cursor): no busy redraw loop while nothing changes.
            new = info.hi
            self.playing = False
        moved = new != self.time
        self.time = new
        return moved


class ViewerData:
    """The store plus what the user chose to show of it. Thread-safe ingest."""

    def __init__(self, store=None) -> None:
        if store is None:

            store = ChunkStore()
        self.store = store
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
        report = self.store.add_chunks(chunks)
        self.dropped_chunks += len(report.dropped)
        for fn in self._listeners:
            fn()

    def load_file(self, path: str) -> list[str]:
        """Read a whole .rrd file; returns the decoder's problems (truncation...)."""
        report = self.store.ingest_file(path)
        for fn in self._listeners:
            fn()
        return [str(p) for p in report.problems]

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
            changes = {}
            if ov.opacity is not None:
                changes["opacity"] = ov.opacity
            if ov.draw_order is not None:
                changes["draw_order"] = ov.draw_order
            out.append(dataclasses.replace(layer, **changes) if changes else layer)
        return order_layers(out)


# ---------------------------------------------------------------- store adapters
# The store's query surface, in one place.


def _store_timelines(store) -> list[tuple[str, str, int, int]]:
    out = []
    for name, info in store.timelines().items():
        out.append((name, info.kind, int(info.min), int(info.max)))
    return out


def _store_entities(store) -> list[str]:
    return list(store.entity_paths())
