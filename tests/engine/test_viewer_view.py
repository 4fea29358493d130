"""Pan/zoom arithmetic of the viewer (no window needed)."""

from __future__ import annotations

from pixelrun.engine.viewer.view import MAX_SCALE, Rect, View


def test_fit_centres_and_scales_to_the_tighter_side():
    v = View()
    v.fit(Rect(300, 0, 980, 608), (300, 200))
    assert v.scale == 608 / 200  # height is the tighter side: 3.04
    assert v.offset_y == 0
    assert v.offset_x == 300 + (980 - 300 * 3.04) / 2
    assert v.mode == "fit"


def test_window_to_image_inverts_image_to_window_at_pixel_centres():
    v = View(scale=2.5, offset_x=310.0, offset_y=7.0, mode="free")
    for u, w in [(0, 0), (10, 10), (100, 100), (299, 199)]:
        px, py = v.image_to_window(u + 0.5, w + 0.5)
        assert v.window_to_image(px - 0.5, py - 0.5) == (u, w)
    # a pixel left of the image maps to a negative column
    assert v.window_to_image(309, 7)[0] == -1


def test_one_to_one_is_integer_aligned():
    v = View()
    v.one_to_one(Rect(300, 0, 981, 607), (300, 200))
    assert v.scale == 1.0
    assert v.offset_x == float(300 + (981 - 300) // 2)
    assert v.offset_y == float((607 - 200) // 2)


def test_zoom_keeps_the_point_under_the_cursor():
    v = View(scale=1.0, offset_x=100.0, offset_y=50.0, mode="fit")
    before = ((400 - v.offset_x) / v.scale, (300 - v.offset_y) / v.scale)
    v.zoom_at(400, 300, 2.0)
    after = ((400 - v.offset_x) / v.scale, (300 - v.offset_y) / v.scale)
    assert v.scale == 2.0 and before == after and v.mode == "free"
    v.zoom_at(400, 300, 1e9)
    assert v.scale == MAX_SCALE


def test_pan_moves_offset_and_refresh_leaves_free_views_alone():
    v = View()
    v.fit(Rect(0, 0, 100, 100), (50, 50))
    v.pan(5, -3)
    assert (v.offset_x, v.offset_y) == (5, -3) and v.mode == "free"
    v.refresh(Rect(0, 0, 400, 400), (50, 50))
    assert (v.scale, v.offset_x, v.offset_y) == (2.0, 5, -3)


def test_refresh_refits_after_resize():
    v = View()
    v.fit(Rect(0, 0, 100, 100), (50, 50))
    v.refresh(Rect(0, 0, 400, 200), (50, 50))
    assert v.scale == 4.0 and v.offset_x == 100.0 and v.offset_y == 0.0
