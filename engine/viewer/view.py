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

__all__ = ["Rect", "View", "MIN_SCALE", "MAX_SCALE", "LEFT_PANEL_W", "BOTTOM_PANEL_H"]

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
