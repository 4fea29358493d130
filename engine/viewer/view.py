"""Pan and zoom of the viewer's 2D view: pure arithmetic, no window, no GPU.

Convention (shared with the renderer's ``scale``/``offset`` arguments): an image point
(u, v), in texels with (0, 0) at the top-left corner of the canvas, lands on window
pixel ``(u * scale + offset_x, v * scale + offset_y)``. The image pixel under window
pixel (px, py) is therefore ``floor((px + 0.5 - offset) / scale)`` (the pixel centre
is what is sampled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

__all__ = [
    "Rect", "View", "MIN_SCALE", "MAX_SCALE", "LEFT_PANEL_W", "BOTTOM_PANEL_H", "Layout", "SpaceView",
    "default_view_key", "grid_rects", "grid_shape", "parent_path",
]

MIN_SCALE = 1.0 / 64.0
MAX_SCALE = 256.0

# The panels frame the image area: the window lays the view out with these, the panels draw
# into them (logical pixels).
LEFT_PANEL_W = 300  # entity panel + pixel readout
BOTTOM_PANEL_H = 112  # timeline panel


@dataclass(frozen=True)
class Rect:
    """A window-pixel rectangle: the part of the window the image area occupies."""

    x: float
    y: float
    w: float
    h: float

    def contains(self, px: float, py: float) -> bool:
        return self.x <= px < self.x + self.w and self.y <= py < self.y + self.h


@dataclass
class View:
    """Current pan/zoom. `mode` is 'fit' (refit whenever the area or canvas changes),
    '1:1', or 'free' (the user panned or zoomed)."""

    scale: float = 1.0
    offset_x: float = 0.0
    offset_y: float = 0.0
    mode: str = "fit"

    def image_to_window(self, u: float, v: float) -> tuple[float, float]:
        return (u * self.scale + self.offset_x, v * self.scale + self.offset_y)

    def window_to_image(self, px: float, py: float) -> tuple[int, int]:
        """The image pixel whose square contains window pixel (px, py)'s centre."""
        u = (px + 0.5 - self.offset_x) / self.scale
        v = (py + 0.5 - self.offset_y) / self.scale
        return (math.floor(u), math.floor(v))

    def fit(self, area: Rect, canvas: tuple[int, int]) -> None:
        """Whole canvas visible, centred in `area`, as large as fits (any scale)."""
        cw, ch = canvas
        if cw <= 0 or ch <= 0 or area.w <= 0 or area.h <= 0:
            self.scale, self.offset_x, self.offset_y = 1.0, area.x, area.y
        else:
            self.scale = min(area.w / cw, area.h / ch)
            self._centre(area, canvas)
        self.mode = "fit"

    def one_to_one(self, area: Rect, canvas: tuple[int, int]) -> None:
        """One texel per window pixel, centred in `area` (top-left when larger)."""
        self.scale = 1.0
        self._centre(area, canvas)
        # whole pixels so texels map to pixels exactly
        self.offset_x = float(math.floor(self.offset_x))
        self.offset_y = float(math.floor(self.offset_y))
        self.mode = "1:1"

    def _centre(self, area: Rect, canvas: tuple[int, int]) -> None:
        cw, ch = canvas
        self.offset_x = area.x + max(0.0, (area.w - cw * self.scale) / 2)
        self.offset_y = area.y + max(0.0, (area.h - ch * self.scale) / 2)

    def pan(self, dx: float, dy: float) -> None:
        self.offset_x += dx
        self.offset_y += dy
        self.mode = "free"

    def zoom_at(self, px: float, py: float, factor: float) -> None:
        """Multiply the scale by `factor`, keeping the image point under (px, py) fixed."""
        new = min(MAX_SCALE, max(MIN_SCALE, self.scale * factor))
        if new == self.scale:
            return
        u = (px - self.offset_x) / self.scale
        v = (py - self.offset_y) / self.scale
        self.scale = new
        self.offset_x = px - u * new
        self.offset_y = py - v * new
        self.mode = "free"

    def refresh(self, area: Rect, canvas: tuple[int, int]) -> None:
        """Re-apply 'fit' or '1:1' after the window or the canvas changed size."""
        if self.mode == "fit":
            self.fit(area, canvas)
        elif self.mode == "1:1":
            self.one_to_one(area, canvas)


# ---------------------------------------------------------------- several views
#
# Rerun's default layout rule for 2D images: images that share a size and an entity
# subtree (their parent path) share one view; every other image gets its own. The
# views are laid out in a grid that uses the window, each with its own pan/zoom.

VIEW_GAP = 4  # logical pixels between views
VIEW_TITLE_H = 22  # logical pixels of each view's title strip (name, Fit, 1:1, maximise)


def parent_path(entity: str) -> str:
    """'/cam' for '/cam/rgb', '/' for '/rgb'."""
    head = entity.rstrip("/").rsplit("/", 1)[0]
    return head or "/"


def default_view_key(entity: str, size: tuple[int, int]) -> str:
    """The view an image belongs to by default: its parent path and its size."""
    return f"{parent_path(entity)} {size[0]}x{size[1]}"


@dataclass
class SpaceView:
    """One 2D view: its entities (drawn in the usual draw order), pan/zoom, and where
    it is in the window (`rect`: the image part, below the title strip; physical px)."""

    key: str
    entities: list
    view: View
    rect: Rect = Rect(0, 0, 1, 1)
    title_rect: Rect = Rect(0, 0, 1, 1)
    canvas: tuple = (0, 0)  # the union of its images' sizes (last known ones included)

    @property
    def title(self) -> str:
        if len(self.entities) == 1:
            return self.entities[0]
        return self.key


def grid_shape(n: int, area: Rect, aspects: list[float]) -> tuple[int, int]:
    """(columns, rows) for n views in `area` that shows the images largest: for each
    column count, the images' fitted areas are summed (aspects: width / height)."""
    if n <= 0:
        return (0, 0)
    best, best_score = (1, n), -1.0
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        cw, ch = area.w / cols, area.h / rows
        score = 0.0
        for a in aspects:
            a = a if a > 0 else 1.0
            s = min(cw / a, ch)  # fitted height
            score += s * s * a
        if score > best_score + 1e-9:
            best, best_score = (cols, rows), score
    return best


def grid_rects(n: int, area: Rect, aspects: list[float], gap: float, title_h: float) -> list[tuple[Rect, Rect]]:
    """(title strip, image rect) per view, in reading order, whole pixels."""
    cols, rows = grid_shape(n, area, aspects)
    out = []
    for i in range(n):
        c, r = i % cols, i // cols
        x0 = math.floor(area.x + area.w * c / cols + (gap / 2 if c else 0))
        x1 = math.floor(area.x + area.w * (c + 1) / cols - (gap / 2 if c < cols - 1 else 0))
        y0 = math.floor(area.y + area.h * r / rows + (gap / 2 if r else 0))
        y1 = math.floor(area.y + area.h * (r + 1) / rows - (gap / 2 if r < rows - 1 else 0))
        th = min(title_h, max(0.0, y1 - y0 - 1))
        out.append((
            Rect(x0, y0, max(1, x1 - x0), th),
            Rect(x0, y0 + th, max(1, x1 - x0), max(1, y1 - y0 - th)),
        ))
    return out


class Layout:
    """Which entity is in which view, each view's pan/zoom, and the grid.

    Views are keyed by `default_view_key` unless the user moved an entity (`move`):
    then its key is the one chosen. An entity with no image at the current time keeps
    the view it had (its last known size), so views do not come and go while scrubbing.
    """

    def __init__(self) -> None:
        self.assigned: dict[str, str] = {}  # entity -> view key chosen by the user
        self.sizes: dict[str, tuple[int, int]] = {}  # entity -> last known image size
        self.views: dict[str, View] = {}  # view key -> its pan/zoom (kept while the view exists)
        self.maximized: Optional[str] = None
        self._split_seq = 0

    def key_of(self, entity: str) -> Optional[str]:
        if entity in self.assigned:
            return self.assigned[entity]
        size = self.sizes.get(entity)
        return None if size is None else default_view_key(entity, size)

    def arrange(self, layers: list, area: Rect, ratio: float = 1.0) -> list[SpaceView]:
        """The views for `layers` (any order) laid out in `area` (physical px)."""
        for l in layers:
            self.sizes[l.entity] = (l.format.width, l.format.height)
        groups: dict[str, list[str]] = {}
        for entity in sorted(self.sizes):
            key = self.key_of(entity)
            groups.setdefault(key, []).append(entity)
        keys = sorted(groups, key=lambda k: (groups[k][0], k))  # in entity order
        if self.maximized is not None and self.maximized not in groups:
            self.maximized = None
        shown = [self.maximized] if self.maximized is not None else keys
        canv = {k: _canvas([self.sizes[e] for e in groups[k]]) for k in shown}
        aspects = [canv[k][0] / max(1, canv[k][1]) for k in shown]
        rects = grid_rects(len(shown), area, aspects, VIEW_GAP * ratio, VIEW_TITLE_H * ratio)
        out = []
        for k, (title, rect) in zip(shown, rects):
            v = self.views.setdefault(k, View())
            v.refresh(rect, canv[k])
            out.append(SpaceView(k, groups[k], v, rect, title, canv[k]))
        for k in list(self.views):  # forget the pan/zoom of views that are gone
            if k not in groups:
                del self.views[k]
        return out

    def move(self, entity: str, key: str) -> None:
        """Put `entity` in the view `key` (an existing key, or a new name: a new view)."""
        self.assigned[entity] = key

    def split(self, view_key: str, entities: list[str]) -> list[str]:
        """Give every entity of a view its own view; the new keys."""
        keys = []
        for e in entities[1:]:
            self._split_seq += 1
            k = f"{e} (split {self._split_seq})"
            self.assigned[e] = k
            keys.append(k)
        return keys

    def merge(self, src: str, dst: str, entities: list[str]) -> None:
        """Move every entity of view `src` into view `dst`."""
        for e in entities:
            self.assigned[e] = dst
        if self.maximized == src:
            self.maximized = dst

    def toggle_maximized(self, key: Optional[str]) -> None:
        self.maximized = None if self.maximized is not None else key

    def reset(self) -> None:
        """Back to the default rule."""
        self.assigned.clear()
        self.maximized = None


def _canvas(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    return (max(s[0] for s in sizes), max(s[1] for s in sizes)) if sizes else (0, 0)
