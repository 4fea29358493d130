"""The viewer's imgui panels: timeline (bottom), entities and pixel readout (left).

Panels only read and write `ViewerData` (time cursor, playback, per-entity
overrides) and the viewer's `View`; the window code decides what a change means for
drawing. Every widget that changes something bumps the matching version so the scene
is re-queried on the next frame and only then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgui_bundle import imgui

from pixelrun.engine.viewer.data import EntityOverride, format_time
from pixelrun.engine.viewer.view import BOTTOM_PANEL_H, LEFT_PANEL_W

if TYPE_CHECKING:  # pragma: no cover
    from pixelrun.engine.viewer.window import Viewer

__all__ = ["Panels"]

_FIXED = (
    imgui.WindowFlags_.no_move
    | imgui.WindowFlags_.no_resize
    | imgui.WindowFlags_.no_collapse
    | imgui.WindowFlags_.no_saved_settings
)


class Panels:
    def __init__(self, viewer: "Viewer") -> None:
        self.v = viewer
        self._interacting = False

    def wants_another_frame(self) -> bool:
        """imgui needs a follow-up frame while a widget is held (drag, slider)."""
        return self._interacting

    def draw(self) -> None:
        w, h = self.v.physical_size()
        r = self.v.pixel_ratio()
        lw, lh = w / r, h / r
        imgui.set_next_window_pos(imgui.ImVec2(0, 0), imgui.Cond_.always)
        imgui.set_next_window_size(imgui.ImVec2(LEFT_PANEL_W, max(1, lh - BOTTOM_PANEL_H)), imgui.Cond_.always)
        imgui.begin("Entities", None, _FIXED)
        self._entities()
        imgui.separator()
        self._readout()
        imgui.separator()
        self._status()
        imgui.end()

        imgui.set_next_window_pos(imgui.ImVec2(0, max(0, lh - BOTTOM_PANEL_H)), imgui.Cond_.always)
        imgui.set_next_window_size(imgui.ImVec2(lw, BOTTOM_PANEL_H), imgui.Cond_.always)
        imgui.begin("Timeline", None, _FIXED)
        self._timeline()
        imgui.end()
        self._interacting = imgui.is_any_item_active()

    # ------------------------------------------------------------------ timeline

    def _timeline(self) -> None:
        data = self.v.data
        pb = data.playback
        infos = data.timelines()
        if not infos:
            imgui.text("no temporal data (static data is shown at every time)")
            self._view_buttons()
            return
        names = [i.name for i in infos]
        idx = names.index(pb.timeline) if pb.timeline in names else 0
        imgui.set_next_item_width(180)
        changed, idx = imgui.combo("timeline", idx, names)
        if changed:
            pb.timeline = names[idx]
            pb.time = None
        info = infos[idx]
        imgui.same_line()
        if imgui.button("Pause" if pb.playing else "Play"):
            pb.playing = not pb.playing
            if pb.playing and pb.time is not None and pb.time >= info.hi:
                pb.time = info.lo  # play from the start when at the end
                pb.follow = False
            self.v.request_draw()
        imgui.same_line()
        changed, pb.follow = imgui.checkbox("follow newest", pb.follow)
        imgui.same_line()
        imgui.set_next_item_width(120)
        changed, pb.speed = imgui.slider_float("speed", pb.speed, 0.1, 10.0, "%.1fx")

        # The slider works on the fraction of the range so 64-bit ns times fit;
        # released values snap to whole ticks.
        span = max(1, info.hi - info.lo)
        cur = pb.time if pb.time is not None else info.hi
        frac = (cur - info.lo) / span
        imgui.set_next_item_width(max(100.0, imgui.get_content_region_avail().x - 220))
        label = format_time(info.kind, cur)
        changed, frac = imgui.slider_float("##time", float(frac), 0.0, 1.0, label)
        if changed:
            pb.time = info.lo + int(round(frac * span))
            pb.follow = False
            self.v.request_draw()
        imgui.same_line()
        if imgui.button("<"):  # previous / next time point that holds image data
            data.step_time(-1)
        imgui.same_line()
        if imgui.button(">"):
            data.step_time(+1)
        imgui.same_line()
        imgui.text(f"{format_time(info.kind, info.lo)} .. {format_time(info.kind, info.hi)}")
        self._view_buttons()

    def _view_buttons(self) -> None:
        if imgui.button("Fit"):
            self.v.fit()
        imgui.same_line()
        if imgui.button("1:1"):
            self.v.one_to_one()
        imgui.same_line()
        pct = self.v.view.scale * 100
        imgui.text(f"zoom {pct:.0f}%" if pct >= 1 else f"zoom {pct:.2g}%")  # a huge canvas fits at 0.34%

    # ------------------------------------------------------------------ entities

    def _entities(self) -> None:
        data = self.v.data
        imgui.text("Entities")
        shown = {l.entity: l for l in self.v.layers}
        for entity in data.entities():
            ov = data.overrides.get(entity) or EntityOverride()
            before = (ov.visible, ov.opacity, ov.draw_order)
            imgui.push_id(entity)
            label = entity if entity in shown or not ov.visible else f"{entity} (no image)"
            _, ov.visible = imgui.checkbox(label, ov.visible)
            layer = shown.get(entity)
            logged_opacity = layer.opacity if layer is not None else 1.0
            logged_order = layer.draw_order if layer is not None else -10.0
            imgui.set_next_item_width(140)
            shown_opacity = ov.opacity if ov.opacity is not None else logged_opacity
            changed, op = imgui.slider_float("opacity", shown_opacity, 0.0, 1.0)
            if changed:
                ov.opacity = op
            imgui.same_line()
            if imgui.small_button("auto##op"):
                ov.opacity = None
            imgui.set_next_item_width(140)
            changed, order = imgui.drag_float(
                "draw order", ov.draw_order if ov.draw_order is not None else logged_order, 0.1
            )
            if changed:
                ov.draw_order = order
            imgui.same_line()
            if imgui.small_button("auto##order"):
                ov.draw_order = None
            imgui.pop_id()
            if (ov.visible, ov.opacity, ov.draw_order) != before:
                data.overrides[entity] = ov
                data.overrides_version += 1
                self.v.request_draw()

    # ------------------------------------------------------------------ readout

    def _readout(self) -> None:
        imgui.text("Pixel under the cursor")
        ro = self.v.readout
        if ro is None:
            imgui.text_disabled("(hover the image)")
            return
        imgui.text_wrapped(ro.text())
        r, g, b, a = ro.display
        imgui.color_button("##swatch", imgui.ImVec4(r / 255, g / 255, b / 255, a / 255))

    def _status(self) -> None:
        for msg in self.v.data.scene_problems[:5]:
            imgui.text_wrapped(f"not drawn: {msg}")
        for line in self.v.status_lines():
            imgui.text_wrapped(line)
