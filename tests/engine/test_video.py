"""Video output (engine/video.py, `pixelrun render --all-times -o clip.mp4`), decoded back with PyAV.

Each frame is compared with the PNG path's pixels for its time point
(`pixelrun.engine.render` with the video's opaque background). PSNR of libx264
(yuv420p) against those, measured on the two scenes below (min / mean over 5 frames):

    scene             crf 0        crf 18 (default)  crf 23       crf 28       yuv420p alone
    edges 63x45       23.9 / 24.4  24.0 / 24.5       23.9 / 24.5  23.4 / 23.9  23.9 / 24.4
    gradients 64x48   42.9 / 43.0  41.5 / 42.1       40.2 / 40.5  37.6 / 37.9  42.9 / 43.0

("yuv420p alone": rgb24 -> yuv420p -> rgb24 through swscale, no encoder.) On sharp
edges between saturated primaries 4:2:0 chroma (one colour per 2x2 pixels) is the whole
loss, ~24 dB whatever the crf — below the issue's "near 30 dB" because these blocks are
fully saturated, harder than camera content. On smooth content the encoder is the loss.
Thresholds: 21 dB for edges (3 dB under the measured cap), 38 dB for gradients (3.5 dB
under crf 18; crf 28 would fail it). Order is checked apart from quality: each decoded
frame is closer to its own time point's PNG than to any other's.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import pixelrun as rr
from pixelrun.engine import VideoOutputError, open_store, render, render_video
from pixelrun.engine import api as R
from pixelrun.engine.cli.main import main
from pixelrun.engine.video import nvenc_status

av = pytest.importorskip("av", reason="PyAV (the pixelrun[video] extra) is not installed")

BACKEND = "numpy"  # the oracle: the same pixels on every machine, and no GPU adapter needed
BLACK = (0, 0, 0, 255)
SMOOTH_DB = 38.0  # crf 18 measured 41.5 dB min (module docstring)
EDGES_DB = 21.0  # measured 24.0 dB min: the 4:2:0 chroma cap on saturated edges


def _recording(frames: list[np.ndarray], times: list[int], timeline: str = "step", kind: str = "sequence") -> bytes:
    rec = rr.new_recording("video", recording_id="video")
    mem = rec.memory_recording()
    for t, img in zip(times, frames):
        rec.set_time(timeline, **{kind: t})
        rec.log("cam", rr.Image(img))
        rec.flush()
    return mem.rrd_bytes()


def edges(n: int = 5, h: int = 45, w: int = 63) -> list[np.ndarray]:
    """Blocks of saturated primaries (sharp colour edges), a different layout each frame."""
    rng = np.random.default_rng(7)
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 255, 255], [0, 0, 0]], np.uint8)
    out = []
    for _ in range(n):
        blocks = palette[rng.integers(0, len(palette), (h // 8 + 1, w // 8 + 1))]
        out.append(np.ascontiguousarray(blocks.repeat(8, 0).repeat(8, 1)[:h, :w]))
    return out


def gradients(n: int = 5, h: int = 48, w: int = 64) -> list[np.ndarray]:
    """Smooth colour ramps that shift with each frame."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return [np.stack([xx * 3 + 10 * i, yy * 4 + 10, 40 + xx + yy + 10 * i], -1).astype(np.uint8)
            for i in range(n)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def decode(path) -> tuple[list[np.ndarray], str, str, list[int]]:
    """(rgb24 frames, codec name, pix_fmt, pts) of the file's video stream."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        name, pix_fmt = s.codec_context.name, s.codec_context.pix_fmt
        frames, pts = [], []
        for f in c.decode(s):
            frames.append(f.to_ndarray(format="rgb24"))
            pts.append(f.pts)
    return frames, name, pix_fmt, pts


def pngs(store, timeline: str, background=BLACK) -> list[np.ndarray]:
    """What the PNG path draws for every time point, in order."""
    times = R.time_points(store, timeline)
    return [render(store, timeline=timeline, time=int(t), background=background, backend=BACKEND) for t in times]


@pytest.mark.parametrize("scene, min_db", [(edges, EDGES_DB), (gradients, SMOOTH_DB)])
def test_default_video_is_h264_yuv420p_one_frame_per_time_point_in_order(tmp_path, scene, min_db):
    times = [0, 3, 4, 10, 11]  # uneven on purpose: still one frame each, at a constant rate
    store = open_store(_recording(scene(), times))
    info = render_video(store, tmp_path / "clip.mp4", backend=BACKEND)
    frames, name, pix_fmt, pts = decode(info.path)
    assert (name, pix_fmt) == ("h264", "yuv420p") and info.pix_fmt == "yuv420p"
    assert info.frames == len(frames) == len(times) and (info.first_time, info.last_time) == (0, 11)
    assert pts == sorted(pts) and len(set(pts)) == len(pts)  # constant rate: evenly spaced
    assert len({b - a for a, b in zip(pts, pts[1:])}) == 1
    want = pngs(store, "step")
    h, w = want[0].shape[:2]
    for i, got in enumerate(frames):
        scores = [psnr(got[:h, :w], p[..., :3]) for p in want]
        assert scores[i] >= min_db, f"frame {i}: {scores[i]:.1f} dB < {min_db} dB"
        assert int(np.argmax(scores)) == i, f"frame {i} looks most like time point {np.argmax(scores)}: {scores}"


def test_default_encoder_is_nvenc_when_it_works_else_libx264_with_the_reason(tmp_path):
    store = open_store(_recording(gradients(2), [0, 1]))
    info = render_video(store, tmp_path / "clip.mp4", backend=BACKEND)
    reason = nvenc_status()
    if reason is None:
        assert info.encoder == "h264_nvenc" and info.fallback is None
    else:
        assert info.encoder == "libx264" and info.fallback == reason and "h264_nvenc" in reason


@pytest.mark.parametrize("codec, ext", [("ffv1", ".mkv"), ("libx264rgb", ".mp4")])
def test_lossless_codecs_are_exact_and_composite_over_the_background(tmp_path, codec, ext):
    rng = np.random.default_rng(3)
    # translucent RGBA: the video shows it blended over the opaque background, as a PNG
    # rendered with that --background does (the renderer does the blending)
    imgs = [rng.integers(0, 256, (13, 17, 4), dtype=np.uint8) for _ in range(3)]
    store = open_store(_recording(imgs, [1, 2, 5]))
    bg = (200, 30, 90, 255)
    info = render_video(store, tmp_path / f"exact{ext}", codec=codec, background=bg[:3], backend=BACKEND)
    frames, _, _, _ = decode(info.path)
    want = pngs(store, "step", background=bg)
    assert info.encoder == codec and (info.width, info.height) == (17, 13)  # no padding needed
    assert len(frames) == 3
    for got, png in zip(frames, want):
        assert np.all(png[..., 3] == 255)  # over an opaque background the composite is opaque
        assert np.array_equal(got, png[..., :3])
    transparent = render(store, timeline="step", time=1, backend=BACKEND)  # the PNG default
    assert not np.array_equal(frames[0], transparent[..., :3])  # so the background did matter


def test_smaller_frames_are_padded_with_the_background_never_scaled(tmp_path):
    big = np.full((10, 12, 3), 77, np.uint8)
    small = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    store = open_store(_recording([small, big, small], [0, 1, 2]))
    info = render_video(store, tmp_path / "pad.mkv", codec="ffv1", background=(5, 6, 7), backend=BACKEND)
    frames, _, _, _ = decode(info.path)
    assert (info.width, info.height) == (12, 10)
    assert np.array_equal(frames[0][:4, :6], small)  # at the top left, at native size
    rest = np.ones((10, 12), bool)
    rest[:4, :6] = False
    assert np.all(frames[0][rest] == (5, 6, 7))  # background around it
    assert np.array_equal(frames[1], big)


def test_odd_sizes_are_padded_to_even_for_yuv420p(tmp_path):
    img = np.full((45, 63, 3), (20, 120, 220), np.uint8)
    store = open_store(_recording([img, img], [0, 1]))
    bg = (250, 250, 10)
    info = render_video(store, tmp_path / "odd.mp4", codec="libx264", background=bg, backend=BACKEND)
    frames, _, _, _ = decode(info.path)
    assert (info.content_width, info.content_height) == (63, 45) and (info.width, info.height) == (64, 46)
    got = frames[0].astype(int)
    assert got.shape == (46, 64, 3)
    # not scaled: the content keeps its colour (away from the edge, where x264 rings) ...
    assert np.abs(got[:40, :56] - img[:40, :56]).max() <= 6
    # ... and the added column and row are the background. 4:2:0 shares each chroma
    # sample between the last content pixel and its pad neighbour, so compare luma,
    # which is per pixel: Y of the pad against Y of the background (swscale's BT.601)
    with av.open(str(info.path)) as c:
        y = next(c.decode(video=0)).to_ndarray(format="yuv420p")[:46].astype(int)  # the Y plane

    def luma(rgb):
        solid = np.ascontiguousarray(np.broadcast_to(np.array(rgb[:3], np.uint8), (2, 2, 3)))
        return int(av.VideoFrame.from_ndarray(solid, format="rgb24").reformat(format="yuv420p").to_ndarray()[0, 0])

    assert abs(luma(bg) - luma(img[0, 0])) > 100  # far apart, so the check below means something
    assert np.abs(y[:44, 63] - luma(bg)).max() <= 12 and np.abs(y[45, :62] - luma(bg)).max() <= 12  # x264 rings
    assert np.abs(y[:40, :56] - luma(img[0, 0])).max() <= 6


def test_cli_writes_one_video_with_a_summary_line(tmp_path, capsys):
    rec = tmp_path / "rec.rrd"
    rec.write_bytes(_recording(gradients(4), [0, 1, 2, 3]))
    out = tmp_path / "clip.mp4"
    args = ["render", str(rec), "--all-times", "-o", str(out), "--fps", "24", "--crf", "20", "-q", "--backend", BACKEND]
    assert main(args) == 0  # the frame rate is a stream property checked below, not a timing
    frames, name, pix_fmt, _ = decode(out)
    assert len(frames) == 4 and (name, pix_fmt) == ("h264", "yuv420p")
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == 24
    assert "wrote" in capsys.readouterr().out


class Rendered(Exception):
    pass


@pytest.fixture
def no_rendering(monkeypatch):
    """Fails the test when anything opens the recording (the checks must come first)."""
    def refuse(*a, **k):
        raise Rendered("the recording was opened before the output was checked")
    monkeypatch.setattr(R, "open_store", refuse)
    monkeypatch.setattr(R, "open_source", refuse)


@pytest.mark.parametrize("argv_tail, says", [
    (["-o", "{tmp}/clip.avi", "--all-times"], ".png, or .mp4, .mkv"),
    (["-o", "{tmp}/nope/clip.mp4", "--all-times"], "does not exist"),
    (["-o", "{tmp}/clip.mp4"], "add --all-times"),
    (["-o", "{tmp}/clip.mp4", "--all-times", "--codec", "ffv1"], "codec ffv1 writes .mkv"),
    (["-o", "{tmp}/x.png", "--fps", "10"], "--fps apply to video output"),
    (["-o", "{tmp}/clip.mp4", "--all-times", "--background", "1,2,3,4"], "opaque"),
    (["-o", "{tmp}/clip.mp4", "--all-times", "--crf", "99"], "crf must be"),
    (["-o", "{tmp}/clip.mp4", "--all-times", "--fps", "0"], "fps must be in (0, 1000]"),
])
def test_cli_refuses_bad_video_output_before_rendering(tmp_path, capsys, no_rendering, argv_tail, says):
    argv = ["render", str(tmp_path / "rec.rrd"), *[a.replace("{tmp}", str(tmp_path)) for a in argv_tail]]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert says in err and "\n" not in err.strip()  # one line


def test_python_api_refuses_bad_output_before_rendering(tmp_path, no_rendering):
    with pytest.raises(VideoOutputError, match=r"codec h264 writes \.mp4, \.mkv"):
        render_video("rec.rrd", tmp_path / "clip.webm")
    with pytest.raises(VideoOutputError, match="does not exist"):
        render_video("rec.rrd", tmp_path / "missing" / "clip.mp4")
    with pytest.raises(VideoOutputError, match="video has no alpha"):
        render_video("rec.rrd", tmp_path / "clip.mp4", background=(0, 0, 0, 0))


def test_timestamp_timeline_gives_one_frame_per_time_point_at_a_constant_rate(tmp_path):
    imgs = gradients(4, 6, 8)
    seconds = [0.0, 0.1, 2.5, 2.6]  # uneven: the video is not resampled to wall time
    store = open_store(_recording(imgs, seconds, timeline="clock", kind="timestamp"))
    info = render_video(store, tmp_path / "ts.mkv", codec="ffv1", fps=10, backend=BACKEND)
    frames, _, _, _ = decode(info.path)
    assert info.timeline == "clock" and len(frames) == 4
    assert all(np.array_equal(f, img) for f, img in zip(frames, imgs))  # in time order, exact
    with av.open(str(info.path)) as c:
        assert c.streams.video[0].average_rate == 10


def test_without_pyav_the_message_names_the_extra(tmp_path, monkeypatch, no_rendering):
    monkeypatch.setitem(sys.modules, "av", None)  # what `import av` sees when absent
    with pytest.raises(VideoOutputError, match=r"pixelrun\[video\]"):
        render_video("rec.rrd", tmp_path / "clip.mp4")
