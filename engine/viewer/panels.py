"""The viewer's imgui panels: recordings, entities, views, pixel readout and status (left),
timeline with data-density marks (bottom), a title strip per view, the hover tooltip,
the pixel grid and values at high zoom, and the keyboard help overlay.

Panels only read and write `ViewerData` (time cursor, playback, per-entity overrides,
the view layout) and the views' pan/zoom; the window code decides what a change means
for drawing. Every widget that changes an override bumps `overrides_version`, so the
scene is re-queried on the next frame and only then.

Layout that holds: the left panel is a scrolling region (collapsible sections) above a
status block that is always shown; the timeline's marks scroll per entity; nothing is
laid out past the window's edge at 1280 x 720 or with 50 entities.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import numpy as np
from imgui_bundle import imgui

from pixelrun.engine.viewer.data import EntityOverride, format_time
from pixelrun.engine.viewer.inspect import pixel_value_labels
from pixelrun.engine.viewer.view import BOTTOM_PANEL_H, LEFT_PANEL_W
from pixelrun.kernels.colormaps import Colormap
from pixelrun.kernels.formats import ColorModel
from pixelrun.kernels.layers import LayerKind, srgb_decode, srgb_encode

if TYPE_CHECKING:  # pragma: no cover
    from pixelrun.engine.viewer.window import Viewer

__all__ = ["Panels", "SHORTCUTS", "COLORMAP_NAMES"]

_FIXED = (
    imgui.WindowFlags_.no_move
    | imgui.WindowFlags_.no_resize
    | imgui.WindowFlags_.no_collapse
    | imgui.WindowFlags_.no_saved_settings
)
_STRIP = (
    _FIXED | imgui.WindowFlags_.no_title_bar | imgui.WindowFlags_.no_scrollbar
    | imgui.WindowFlags_.no_scroll_with_mouse
)


def _no_backdrop() -> None:
    """The next fixed panel (left, timeline, a view strip) draws no background of its
    own: the window paints it into its scene cache once per layout (`Panels.backdrop_rects`,
    `backdrop_rgba8`), and the cache is copied to the surface every frame anyway. Those
    backgrounds were most of imgui's GPU pass (~2 ms a frame on a CPU adapter, where every
    blended fragment goes through sRGB decode and encode). A zero background alpha, not
    the NoBackground flag: that one drops the window's border as well."""
    imgui.set_next_window_bg_alpha(0.0)

# Rerun 0.41's Colormap values are 1-based: combo index i is Colormap value i (0: as logged).
COLORMAP_NAMES = tuple(c.name for c in sorted(Colormap, key=int))
_MAGNIFICATION_NAMES = ("Nearest", "Linear")  # MagnificationFilter 1, 2

SHORTCUTS = (
    ("drag", "pan the view under the cursor"),
    ("wheel", "zoom about the cursor"),
    ("F / double click", "fit the view (all views: Fit button)"),
    ("1", "one image pixel per screen pixel"),
    ("M", "maximise the view under the cursor / restore"),
    ("Esc", "restore the grid, close this help"),
    ("Space", "play / pause"),
    ("Left / Right", "previous / next frame"),
    ("L", "loop on / off"),
    ("End", "follow the newest data"),
    ("S", "save a screenshot"),
    ("H or ?", "this help"),
)

_DRAG_ENTITY = "pixelrun-entity"  # imgui drag-and-drop payload type: an index into the entity list
GRID_MIN_SCALE = 8.0  # logical px per image pixel from which the pixel grid is drawn
_MAX_VALUE_CELLS = 2000  # value labels drawn at most (per view and frame)
_MARK_ROW_H = 7.0  # logical px per entity row of timeline marks
_MARKS_MAX_ROWS = 3  # rows visible before the marks scroll


def _rgba32(r: int, g: int, b: int, a: int = 255) -> int:
    return imgui.get_color_u32(imgui.ImVec4(r / 255, g / 255, b / 255, a / 255))


class Panels:
    def __init__(self, viewer: "Viewer") -> None:
        self.v = viewer
        self._interacting = False
        self.show_help = False
        self._help_frames = 0  # frames drawn since the help overlay opened
        self._drag_entities: list[str] = []  # the entity list a drag payload's index refers to
        self.entity_rows: dict[str, tuple[float, float]] = {}  # entity -> a point on its row (physical px)
        self.status_shown: list[str] = []  # the status lines of the last frame (tests read them)
        # where the last frame laid out the status block and the time range label (physical px)
        self.status_rect: Optional[tuple[float, float, float, float]] = None
        self.range_label_rect: Optional[tuple[float, float, float, float]] = None
        self._marks_cache: tuple = (None, [])  # (the density dict, its mark runs): see _mark_runs
        self._mark_colors: Optional[list[int]] = None  # packed colour of each mark alpha

    def wants_another_frame(self) -> bool:
        """imgui needs a follow-up frame while a widget is held (drag, slider), and once
        after a window appears (an auto-sized window is measured in its first frame)."""
        return self._interacting or (self.show_help and self._help_frames < 2)

    def _fixed_rects(self) -> dict[str, tuple[float, float, float, float]]:
        """(x, y, w, h) in logical px of every fixed panel window, by imgui name: the one
        place their geometry is decided (drawn by `draw`, backed by `backdrop_rects`)."""
        w, h = self.v.physical_size()
        r = self.v.pixel_ratio()
        lw, lh = w / r, h / r
        rects = {
            "pixelrun": (0.0, 0.0, float(LEFT_PANEL_W), max(1.0, lh - BOTTOM_PANEL_H)),
            "Timeline": (0.0, max(0.0, lh - BOTTOM_PANEL_H), lw, float(BOTTOM_PANEL_H)),
        }
        for sv in self.v.views:
            t = sv.title_rect
            if t.h >= 4:
                rects[f"##strip {sv.key}"] = (t.x / r, t.y / r, t.w / r, t.h / r)
        return rects

    def backdrop_rects(self) -> list[tuple[int, int, int, int]]:
        """The physical pixels (x, y, w, h) the fixed panels' background covers: those
        whose centres lie inside a panel window's rectangle, as the rasteriser fills it."""
        w, h = self.v.physical_size()
        r = self.v.pixel_ratio()
        out = []
        for x, y, rw, rh in self._fixed_rects().values():
            x0 = min(max(math.ceil(x * r - 0.5), 0), w)
            y0 = min(max(math.ceil(y * r - 0.5), 0), h)
            x1 = min(max(math.ceil((x + rw) * r - 0.5), 0), w)
            y1 = min(max(math.ceil((y + rh) * r - 0.5), 0), h)
            if x1 > x0 and y1 > y0:
                out.append((x0, y0, x1 - x0, y1 - y0))
        return out

    def backdrop_rgba8(self, under: tuple[int, int, int], srgb_target: bool) -> tuple[int, int, int, int]:
        """The bytes a panel's background leaves over `under` (the cache's clear colour):
        the style's WindowBg as imgui's wgpu backend blends it: on an sRGB target its
        colour is raised to 2.2 and blended in linear light, then encoded."""
        imgui.set_current_context(self.v.imgui.imgui_context)
        c = imgui.get_style().color_(imgui.Col_.window_bg)
        a = float(c.w)
        out = []
        for src, dst in zip((c.x, c.y, c.z), under):
            if srgb_target:
                lin = float(src) ** 2.2 * a + float(srgb_decode(dst / 255)) * (1 - a)
                v = float(srgb_encode(lin))
            else:
                v = float(src) * a + dst / 255 * (1 - a)
            out.append(int(round(min(max(v, 0.0), 1.0) * 255)))
        return (out[0], out[1], out[2], 255)

    def draw(self) -> None:
        r = self.v.pixel_ratio()
        rects = self._fixed_rects()
        lx, ly, lw_, left_h = rects["pixelrun"]
        imgui.set_next_window_pos(imgui.ImVec2(lx, ly), imgui.Cond_.always)
        imgui.set_next_window_size(imgui.ImVec2(lw_, left_h), imgui.Cond_.always)
        _no_backdrop()
        imgui.begin("pixelrun", None, _FIXED | imgui.WindowFlags_.no_scrollbar)
        status = self._status_lines()
        line_h = imgui.get_text_line_height_with_spacing()
        # status: always visible at the bottom; wrapped lines counted roughly by width
        chars = max(10, int((LEFT_PANEL_W - 20) / max(1.0, imgui.calc_text_size("M").x)))
        n_lines = sum(max(1, math.ceil(len(s) / chars)) for s in status)
        status_h = min(left_h * 0.45, n_lines * line_h + 8)
        avail = imgui.get_content_region_avail().y
        imgui.begin_child("##scroll", imgui.ImVec2(0, max(line_h, avail - status_h - 6)))
        self._recordings()
        self._views_section()
        self._entities()
        self._readout()
        imgui.end_child()
        imgui.separator()
        imgui.begin_child("##status", imgui.ImVec2(0, 0))
        top = None
        for line in status:
            imgui.text_wrapped(line)
            top = top if top is not None else imgui.get_item_rect_min()
        if top is not None:
            bottom = imgui.get_item_rect_max()
            self.status_rect = (top.x * r, top.y * r, bottom.x * r, bottom.y * r)
        imgui.end_child()
        imgui.end()

        tx, ty, tw, th = rects["Timeline"]
        imgui.set_next_window_pos(imgui.ImVec2(tx, ty), imgui.Cond_.always)
        imgui.set_next_window_size(imgui.ImVec2(tw, th), imgui.Cond_.always)
        _no_backdrop()
        imgui.begin("Timeline", None, _FIXED | imgui.WindowFlags_.no_title_bar)
        self._timeline()
        imgui.end()
        self._view_strips(rects)
        self._overlays()
        self._tooltip()
        if self.show_help:
            self._help()
            self._help_frames += 1
        else:
            self._help_frames = 0
        self._interacting = imgui.is_any_item_active()

    # ------------------------------------------------------------------ recordings

    def _recordings(self) -> None:
        recs = self.v.recordings
        if not imgui.collapsing_header(f"Recordings ({len(recs.items)})", imgui.TreeNodeFlags_.default_open):
            return
        for i, rec in enumerate(recs.items):
            label = f"{rec.name}  ({len(rec.entities())} entities)##rec{i}"
            if imgui.selectable(label, i == recs.active)[0] and i != recs.active:
                recs.activate(i)
                recs.user_chose = True
                self.v.request_draw()
        data = self.v.data
        if data.path is not None:
            if imgui.small_button("Save settings"):
                try:
                    data.save_settings()
                except (OSError, ValueError) as exc:
                    data.settings_message = f"settings not saved: {exc}"
            imgui.same_line()
            if imgui.small_button("Restore settings"):
                try:
                    if not data.restore_settings():
                        data.settings_message = "no saved settings next to this recording"
                except (OSError, ValueError) as exc:
                    data.settings_message = f"settings not restored: {exc}"
                self.v.request_draw()
        if data.settings_message:
            imgui.text_wrapped(data.settings_message)

    # ------------------------------------------------------------------ views

    def _views_section(self) -> None:
        views = self.v.views
        layout = self.v.data.layout
        if not imgui.collapsing_header(f"Views ({len(views)})"):
            return
        others = [sv.key for sv in views]
        for sv in views:
            imgui.push_id(sv.key)
            imgui.text(f"{sv.title}  [{len(sv.entities)}]")
            targets = [k for k in others if k != sv.key]
            if targets:
                imgui.same_line()
                imgui.set_next_item_width(90)
                changed, idx = imgui.combo("##merge", -1, targets)
                if changed and 0 <= idx < len(targets):  # merge this view into the chosen one
                    layout.merge(sv.key, targets[idx], sv.entities)
                    self.v.request_draw()
                imgui.set_item_tooltip("merge this view into another")
            imgui.pop_id()
        if layout.maximized is not None and imgui.small_button("Show all views"):
            layout.maximized = None
        if layout.assigned and imgui.small_button("Default layout"):
            layout.reset()
            self.v.request_draw()

    def _view_strips(self, rects: dict[str, tuple[float, float, float, float]]) -> None:
        """Each view's title strip: its name and Fit, 1:1, maximise/restore, split."""
        layout = self.v.data.layout
        for sv in self.v.views:
            name = f"##strip {sv.key}"
            if name not in rects:
                continue
            x, y, w, h = rects[name]
            imgui.set_next_window_pos(imgui.ImVec2(x, y), imgui.Cond_.always)
            imgui.set_next_window_size(imgui.ImVec2(w, h), imgui.Cond_.always)
            imgui.push_style_var(imgui.StyleVar_.window_padding, imgui.ImVec2(4, 1))
            imgui.push_style_var(imgui.StyleVar_.window_min_size, imgui.ImVec2(1, 1))  # exactly the strip
            _no_backdrop()
            imgui.begin(name, None, _STRIP)
            imgui.push_id(sv.key)
            if imgui.small_button("Fit"):
                self.v.fit(sv)
            imgui.same_line()
            if imgui.small_button("1:1"):
                self.v.one_to_one(sv)
            imgui.same_line()
            if imgui.small_button("Restore" if layout.maximized == sv.key else "Max"):
                layout.toggle_maximized(sv.key)
                self.v.request_draw()
            if len(sv.entities) > 1:
                imgui.same_line()
                if imgui.small_button("Split"):
                    layout.split(sv.key, sv.entities)
                    self.v.request_draw()
            imgui.same_line()
            pct = sv.view.scale * 100
            zoom = f"{pct:.0f}%" if pct >= 1 else f"{pct:.2g}%"
            imgui.text(f"{sv.title}  {zoom}")
            imgui.pop_id()
            imgui.end()
            imgui.pop_style_var(2)

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
        imgui.set_next_item_width(140)
        changed, idx = imgui.combo("##timeline", idx, names)
        if changed:
            pb.timeline = names[idx]
            pb.time = None
        info = infos[idx]
        imgui.same_line()
        if imgui.button("<"):  # previous / next time point that holds image data
            data.step_time(-1)
        imgui.same_line()
        if imgui.button("Pause" if pb.playing else "Play"):
            self.v.toggle_play()
        imgui.same_line()
        if imgui.button(">"):
            data.step_time(+1)
        imgui.same_line()
        _, pb.loop = imgui.checkbox("loop", pb.loop)
        imgui.same_line()
        _, pb.follow = imgui.checkbox("follow newest", pb.follow)
        imgui.same_line()
        imgui.set_next_item_width(90)
        _, pb.speed = imgui.slider_float("speed", pb.speed, 0.1, 10.0, "%.1fx")
        imgui.same_line()
        self._view_buttons()

        # The slider works on the fraction of the range so 64-bit ns times fit;
        # released values snap to whole ticks.
        span = max(1, info.hi - info.lo)
        cur = pb.time if pb.time is not None else info.hi
        frac = (cur - info.lo) / span
        imgui.set_next_item_width(-1)
        x0 = imgui.get_cursor_screen_pos().x
        width = imgui.get_content_region_avail().x
        label = format_time(info.kind, cur)
        changed, frac = imgui.slider_float("##time", float(frac), 0.0, 1.0, label)
        if changed:
            pb.time = info.lo + int(round(frac * span))
            pb.follow = False
            self.v.request_draw()
        self._marks(info, x0, width, frac)
        imgui.text_wrapped(f"{info.name}: {format_time(info.kind, info.lo)} .. {format_time(info.kind, info.hi)}")
        a, b, r = imgui.get_item_rect_min(), imgui.get_item_rect_max(), self.v.pixel_ratio()
        self.range_label_rect = (a.x * r, a.y * r, b.x * r, b.y * r)

    def _marks(self, info, x0: float, width: float, frac: float) -> None:
        """Data-density marks: one row per entity under the slider (scrolls past 3 rows);
        the darker a mark, the more frames in that stretch; the cursor is a white line."""
        data = self.v.data
        bins = max(8, min(512, int(width / 2)))
        dens = data.density(info.name, info.lo, info.hi, bins)
        rows = max(1, len(dens))
        h = min(rows, _MARKS_MAX_ROWS) * _MARK_ROW_H + 2
        imgui.begin_child("##marks", imgui.ImVec2(0, h))
        imgui.push_style_var(imgui.StyleVar_.item_spacing, imgui.ImVec2(0, 0))  # rows exactly _MARK_ROW_H
        dl = imgui.get_window_draw_list()
        y = imgui.get_cursor_screen_pos().y
        bw = width / bins
        for ent, total, runs in self._mark_runs(dens):
            for i0, i1, color in runs:
                dl.add_rect_filled(imgui.ImVec2(x0 + i0 * bw, y + 1),
                                   imgui.ImVec2(x0 + i1 * bw, y + _MARK_ROW_H - 1), color)
            imgui.dummy(imgui.ImVec2(width, _MARK_ROW_H))
            if imgui.is_item_hovered():
                imgui.set_tooltip(f"{ent}: {total} frames")
            y += _MARK_ROW_H
        cx = x0 + frac * width
        top_y = imgui.get_window_pos().y
        dl.add_line(imgui.ImVec2(cx, top_y), imgui.ImVec2(cx, top_y + h), _rgba32(255, 255, 255), 1.0)
        imgui.pop_style_var()
        imgui.end_child()

    def _mark_runs(self, dens: dict) -> list[tuple[str, int, list[tuple[int, int, int]]]]:
        """Per entity of `dens`: its frame count and its marks as runs of bins of one
        colour (i0, i1 exclusive, colour), the darker the more frames in the bin.
        Worked out once per density count (`ViewerData.density` returns the same dict
        until it recounts), not every frame: one rectangle per run, not per bin."""
        if self._marks_cache[0] is dens:
            return self._marks_cache[1]
        if self._mark_colors is None:  # imgui's packing of each alpha, asked once
            self._mark_colors = [_rgba32(90, 170, 255, a) for a in range(256)]
        rows = []
        for ent, counts in dens.items():
            top = max(1, int(counts.max()))
            nz = counts.nonzero()[0]
            alpha = (90 + 165 * counts[nz] / top).astype(np.int64)  # truncated, as int() does
            # a run ends where the next bin is empty or of another colour
            ends = np.flatnonzero((np.diff(nz) != 1) | (np.diff(alpha) != 0)) + 1
            starts = np.concatenate(([0], ends)).astype(np.int64)
            stops = np.concatenate((ends, [nz.size])).astype(np.int64)
            runs = [(int(nz[a]), int(nz[b - 1]) + 1, self._mark_colors[int(alpha[a])])
                    for a, b in zip(starts.tolist(), stops.tolist()) if b > a]
            rows.append((ent, int(counts.sum()), runs))
        self._marks_cache = (dens, rows)
        return rows

    def _view_buttons(self) -> None:
        if imgui.button("Fit all"):
            self.v.fit()
        imgui.same_line()
        if imgui.button("Help"):
            self.show_help = not self.show_help

    # ------------------------------------------------------------------ entities

    def _entities(self) -> None:
        data = self.v.data
        entities = data.entities()
        if not imgui.collapsing_header(f"Entities ({len(entities)})", imgui.TreeNodeFlags_.default_open):
            return
        shown = {l.entity: l for l in self.v.layers}
        view_keys = [sv.key for sv in self.v.views]
        self._drag_entities = entities
        for i, entity in enumerate(entities):
            ov = data.overrides.get(entity) or EntityOverride()
            before = (ov.visible, ov.opacity, ov.draw_order, ov.value_range, ov.colormap, ov.magnification)
            imgui.push_id(entity)
            _, ov.visible = imgui.checkbox("##visible", ov.visible)
            imgui.same_line()
            label = entity if entity in shown or not ov.visible else f"{entity} (no image)"
            opened = imgui.tree_node(label)
            at = imgui.get_item_rect_min()
            self.entity_rows[entity] = ((at.x + 30) * self.v.pixel_ratio(), (at.y + 6) * self.v.pixel_ratio())
            if imgui.begin_drag_drop_source():  # drag the entity onto a view to move it there
                imgui.set_drag_drop_payload_py_id(_DRAG_ENTITY, i)
                imgui.text(f"move {entity} to the view under the cursor")
                imgui.end_drag_drop_source()
            if opened:
                self._entity_controls(entity, ov, shown.get(entity), view_keys)
                imgui.tree_pop()
            imgui.pop_id()
            if (ov.visible, ov.opacity, ov.draw_order, ov.value_range, ov.colormap, ov.magnification) != before:
                data.overrides[entity] = ov
                data.overrides_version += 1
                self.v.request_draw()

    def _entity_controls(self, entity: str, ov: EntityOverride, layer, view_keys: list[str]) -> None:
        logged_opacity = layer.opacity if layer is not None else 1.0
        logged_order = layer.draw_order if layer is not None else -10.0
        imgui.set_next_item_width(120)
        changed, op = imgui.slider_float("opacity", ov.opacity if ov.opacity is not None else logged_opacity, 0.0, 1.0)
        if changed:
            ov.opacity = op
        imgui.same_line()
        if imgui.small_button("auto##op"):
            ov.opacity = None
        imgui.set_next_item_width(120)
        shown_order = ov.draw_order if ov.draw_order is not None else logged_order
        changed, order = imgui.drag_float("draw order", shown_order, 0.1)
        if changed:
            ov.draw_order = order
        imgui.same_line()
        if imgui.small_button("auto##order"):
            ov.draw_order = None
        if layer is not None:
            self._display_controls(ov, layer)
        layout = self.v.data.layout
        current = layout.key_of(entity)
        choices = view_keys + ["(new view)"]
        idx = choices.index(current) if current in choices else len(choices) - 1
        imgui.set_next_item_width(160)
        changed, idx = imgui.combo("view", idx, choices)
        if changed:
            layout.move(entity, choices[idx] if idx < len(view_keys) else f"{entity} (own view)")
            self.v.request_draw()

    def _display_controls(self, ov: EntityOverride, layer) -> None:
        """Value range, colormap and magnification, where they apply to the layer."""
        fmt = layer.format
        single = fmt.pixel_format is None and fmt.model == ColorModel.L
        if layer.kind != LayerKind.SEGMENTATION and fmt.pixel_format is None:
            imgui.text("value range:")
            imgui.same_line()
            if imgui.radio_button("auto", ov.value_range is None):
                ov.value_range = None
            imgui.same_line()
            if imgui.small_button("this frame"):
                lo, hi = self.v.ranges.get(layer.row_id, layer.buffer, fmt)
                ov.value_range = (float(lo), float(hi))
            shown = ov.value_range or layer.value_range or self.v.ranges.get(layer.row_id, layer.buffer, fmt)
            imgui.set_next_item_width(160)
            changed, pair = imgui.input_float2("pinned", [float(shown[0]), float(shown[1])], "%.6g")
            if changed and all(math.isfinite(p) for p in pair) and pair[0] < pair[1]:
                ov.value_range = (float(pair[0]), float(pair[1]))
        if layer.kind == LayerKind.DEPTH or (layer.kind == LayerKind.IMAGE and single):
            names = ["(as logged)", *COLORMAP_NAMES]
            idx = ov.colormap if ov.colormap is not None and 1 <= ov.colormap <= len(COLORMAP_NAMES) else 0
            imgui.set_next_item_width(140)
            changed, idx = imgui.combo("colormap", idx, names)
            if changed:
                ov.colormap = idx or None
        names = ["(as logged)", *_MAGNIFICATION_NAMES]
        idx = ov.magnification if ov.magnification in (1, 2) else 0
        imgui.set_next_item_width(140)
        changed, idx = imgui.combo("magnification", idx, names)
        if changed:
            ov.magnification = idx or None

    # ------------------------------------------------------------------ readout

    def _readout(self) -> None:
        if not imgui.collapsing_header("Pixel under the cursor", imgui.TreeNodeFlags_.default_open):
            return
        if not self.v.readouts:
            imgui.text_disabled("(hover an image)")
            return
        for ro in self.v.readouts:
            imgui.text_wrapped(ro.text())

    def _tooltip(self) -> None:
        """Every layer under the cursor: entity, pixel, raw value(s), display RGBA."""
        if not self.v.readouts or self.v.cursor is None or imgui.get_io().want_capture_mouse:
            return
        # beside the viewer's cursor (the one the readout is for), kept inside the window
        r = self.v.pixel_ratio()
        cx, cy = self.v.cursor[0] / r, self.v.cursor[1] / r
        w, h = self.v.physical_size()
        right, low = cx > w / r * 0.6, cy > h / r * 0.6
        imgui.set_next_window_pos(
            imgui.ImVec2(cx - 16 if right else cx + 16, cy - 16 if low else cy + 16), imgui.Cond_.always,
            imgui.ImVec2(1.0 if right else 0.0, 1.0 if low else 0.0),
        )
        imgui.begin_tooltip()
        for i, ro in enumerate(self.v.readouts):
            if i:
                imgui.separator()
            if ro.display is not None:
                r, g, b, a = ro.display
                imgui.color_button(f"##sw{i}", imgui.ImVec4(r / 255, g / 255, b / 255, a / 255),
                                   0, imgui.ImVec2(14, 14))
                imgui.same_line()
            imgui.text(ro.text())
        imgui.end_tooltip()

    def _status_lines(self) -> list[str]:
        lines = [f"not drawn: {m}" for m in self.v.data.scene_problems[:5]]
        lines += self.v.status_lines()
        self.status_shown = lines
        return lines

    # ------------------------------------------------------------------ overlays

    def _drop(self, dl, r: float) -> None:
        """An entity dragged from the entity panel: the view under the mouse is outlined,
        and releasing the button there moves the entity into that view."""
        payload = imgui.get_drag_drop_payload_py_id()
        if payload is None or payload.type != _DRAG_ENTITY or not 0 <= payload.data_id < len(self._drag_entities):
            return
        m = imgui.get_io().mouse_pos
        target = self.v.view_at(m.x * r, m.y * r)
        if target is None:
            return
        rc = target.rect
        a, b = imgui.ImVec2(rc.x / r + 1, rc.y / r + 1), imgui.ImVec2((rc.x + rc.w) / r - 1, (rc.y + rc.h) / r - 1)
        dl.add_rect(a, b, _rgba32(90, 170, 255), 0.0, 3.0)
        if imgui.is_mouse_released(0):
            self.v.data.layout.move(self._drag_entities[payload.data_id], target.key)
            self.v.request_draw()

    def _overlays(self) -> None:
        """Per view: its border, and at high zoom the pixel grid and the raw values."""
        r = self.v.pixel_ratio()
        dl = imgui.get_foreground_draw_list()
        self._drop(dl, r)
        dl = imgui.get_background_draw_list()
        for sv in self.v.views:
            rc = sv.rect
            a, b = imgui.ImVec2(rc.x / r, rc.y / r), imgui.ImVec2((rc.x + rc.w) / r, (rc.y + rc.h) / r)
            # the border lies in the gap around the view, never over its pixels
            dl.add_rect(imgui.ImVec2(a.x - 1, a.y - 1), imgui.ImVec2(b.x + 1, b.y + 1), _rgba32(60, 60, 60), 0.0, 1.0)
            scale = sv.view.scale / r  # logical px per image pixel
            if scale < GRID_MIN_SCALE:
                continue
            dl.push_clip_rect(a, b, True)
            self._grid(dl, sv, r, scale)
            dl.pop_clip_rect()

    def _grid(self, dl, sv, r: float, scale: float) -> None:
        v, rc = sv.view, sv.rect
        u0, v0 = v.window_to_image(rc.x, rc.y)
        u1, v1 = v.window_to_image(rc.x + rc.w, rc.y + rc.h)
        cw, ch = sv.canvas
        u0, v0, u1, v1 = max(0, u0), max(0, v0), min(cw, u1 + 1), min(ch, v1 + 1)
        if u1 <= u0 or v1 <= v0:
            return
        line = _rgba32(0, 0, 0, 110)
        for u in range(u0, u1 + 1):
            x = (u * v.scale + v.offset_x) / r
            dl.add_line(imgui.ImVec2(x, (v0 * v.scale + v.offset_y) / r),
                        imgui.ImVec2(x, (v1 * v.scale + v.offset_y) / r), line, 1.0)
        for w in range(v0, v1 + 1):
            y = (w * v.scale + v.offset_y) / r
            dl.add_line(imgui.ImVec2((u0 * v.scale + v.offset_x) / r, y),
                        imgui.ImVec2((u1 * v.scale + v.offset_x) / r, y), line, 1.0)
        layers = self.v.view_layers(sv)
        if not layers or (u1 - u0) * (v1 - v0) > _MAX_VALUE_CELLS:
            return
        top = layers[-1]  # the values of the topmost layer, as the tooltip lists first
        cells = pixel_value_labels(top, u0, v0, u1, v1)
        if not cells:
            return
        sample = cells[0][2]
        size = imgui.calc_text_size(sample if len(sample) > 4 else "65535")
        if size.x + 4 > scale or size.y + 2 > scale:
            return  # values do not fit in a pixel yet: grid only
        white, shadow = _rgba32(255, 255, 255), _rgba32(0, 0, 0, 200)
        for x, y, text in cells:
            px = (x * v.scale + v.offset_x) / r + 2
            py = (y * v.scale + v.offset_y) / r + 1
            dl.add_text(imgui.ImVec2(px + 1, py + 1), shadow, text)
            dl.add_text(imgui.ImVec2(px, py), white, text)

    def _help(self) -> None:
        w, h = self.v.physical_size()
        r = self.v.pixel_ratio()
        imgui.set_next_window_pos(imgui.ImVec2(w / r / 2, h / r / 2), imgui.Cond_.always, imgui.ImVec2(0.5, 0.5))
        opened = imgui.begin("Keyboard shortcuts", True,
                             imgui.WindowFlags_.always_auto_resize | imgui.WindowFlags_.no_saved_settings)[1]
        for keys, what in SHORTCUTS:
            imgui.text(f"{keys:<18} {what}")
        imgui.end()
        if not opened:
            self.show_help = False

