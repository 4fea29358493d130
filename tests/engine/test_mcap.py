"""MCAP / ROS 2 bags: every topic of a bag written here is rendered and compared with
pixels computed in this file (NumPy), on the reference and wgpu backends; Rerun 0.41's
naming; compressed and depth messages; damaged files."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

pytest.importorskip("mcap")
pytest.importorskip("mcap_ros2")

from pixelrun.engine import api
from pixelrun.engine.mcap import read_mcap
from pixelrun.engine.store.store import StoreWarning
from tests.mcap_fixtures import (
    Compressed,
    RawImage,
    encode_jpeg,
    encode_png,
    padded,
    write_foxglove_bag,
    write_ros_bag,
)

BACKENDS = ["numpy", "wgpu"]
W, H = 7, 5  # odd on purpose (contract §7)
RNG = np.random.default_rng(16)


def _q(x):
    """Display value -> byte, written out here (floor(clamp(x) * 255 + 0.5))."""
    return np.floor(np.clip(np.asarray(x, np.float64), 0, 1) * 255 + 0.5).astype(np.uint8)


def _srgb(c):
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(np.maximum(c, 0.0031308), 1 / 2.4) - 0.055)


def _rgba(rgb):
    out = np.full((*rgb.shape[:2], 4), 255, np.uint8)
    out[..., :3] = rgb
    return out


def _bt601_limited(y, u, v):
    """BT.601 limited range YUV bytes -> RGB bytes (contract §2's constants, restated)."""
    yy = (y - 16.0) / 219.0
    uu = (u - 128.0) / 224.0
    vv = (v - 128.0) / 224.0
    return np.stack([_q(yy + 1.402 * vv), _q(yy - 0.344 * uu - 0.714 * vv), _q(yy + 1.772 * uu)], -1)


# ----------------------------------------------------------------------- the cases
# topic -> (message, expected RGBA)


def _cases():
    cases = {}
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    rgba = RNG.integers(0, 256, (H, W, 4), dtype=np.uint8)
    cases["/cam/rgb8"] = (RawImage("/cam/rgb8", "rgb8", W, H, 3 * W, rgb.tobytes()), _rgba(rgb))
    cases["/cam/bgr8"] = (RawImage("/cam/bgr8", "bgr8", W, H, 3 * W, rgb[..., ::-1].tobytes()), _rgba(rgb))
    cases["/cam/rgba8"] = (RawImage("/cam/rgba8", "rgba8", W, H, 4 * W, rgba.tobytes()), rgba)
    cases["/cam/bgra8"] = (RawImage("/cam/bgra8", "bgra8", W, H, 4 * W, rgba[..., [2, 1, 0, 3]].tobytes()), rgba)
    # OpenCV's channel order (BGR), as Rerun 0.41 reads 8UC3
    cases["/cam/8UC3"] = (RawImage("/cam/8UC3", "8UC3", W, H, 3 * W, rgb[..., ::-1].tobytes()), _rgba(rgb))
    grey = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    cases["/cam/mono8"] = (RawImage("/cam/mono8", "mono8", W, H, W, grey.tobytes()), _rgba(np.stack([grey] * 3, -1)))
    # mono16 spanning 0..65535: the automatic range is [0, 65535], so k * 257 shows as k
    k = RNG.integers(0, 256, (H, W), dtype=np.uint16)
    k[0, 0], k[0, 1] = 0, 255
    cases["/cam/mono16"] = (RawImage("/cam/mono16", "mono16", W, H, 2 * W, (k * 257).astype("<u2").tobytes()),
                            _rgba(np.stack([k.astype(np.uint8)] * 3, -1)))
    # NV12: Y plane then interleaved UV at half resolution (ceil for odd sizes)
    cw, ch = (W + 1) // 2, (H + 1) // 2
    y = RNG.integers(16, 236, (H, W), dtype=np.uint8)
    u = RNG.integers(16, 241, (ch, cw), dtype=np.uint8)
    v = RNG.integers(16, 241, (ch, cw), dtype=np.uint8)
    uv = np.stack([u, v], -1).reshape(ch, 2 * cw)
    up = np.repeat(np.repeat(u, 2, 0), 2, 1)[:H, :W].astype(np.float64)
    vp = np.repeat(np.repeat(v, 2, 0), 2, 1)[:H, :W].astype(np.float64)
    nv12_rgb = _bt601_limited(y.astype(np.float64), up, vp)
    cases["/cam/nv12"] = (RawImage("/cam/nv12", "nv12", W, H, W, y.tobytes() + uv.tobytes()), _rgba(nv12_rgb))
    # YUY2 (yuv422_yuy2): Y0 U Y1 V per pixel pair, rows of 4 * ceil(W / 2) bytes
    u2 = RNG.integers(16, 241, (H, cw), dtype=np.uint8)
    v2 = RNG.integers(16, 241, (H, cw), dtype=np.uint8)
    yp = np.zeros((H, 2 * cw), np.uint8)
    yp[:, :W] = y
    yuy2 = np.stack([yp[:, 0::2], u2, yp[:, 1::2], v2], -1).reshape(H, 4 * cw)
    yuy2_rgb = _bt601_limited(y.astype(np.float64), np.repeat(u2, 2, 1)[:, :W].astype(np.float64),
                              np.repeat(v2, 2, 1)[:, :W].astype(np.float64))
    cases["/cam/yuy2"] = (RawImage("/cam/yuy2", "yuv422_yuy2", W, H, 4 * cw, yuy2.tobytes()), _rgba(yuy2_rgb))
    # the layouts Rerun lacks: UYVY (REP 104's yuv422), NV21, I420, and padded rows
    uyvy = np.stack([u2, yp[:, 0::2], v2, yp[:, 1::2]], -1).reshape(H, 4 * cw)
    cases["/cam/uyvy"] = (RawImage("/cam/uyvy", "yuv422", W, H, 4 * cw, uyvy.tobytes()), _rgba(yuy2_rgb))
    vu = np.stack([v, u], -1).reshape(ch, 2 * cw)
    cases["/cam/nv21"] = (RawImage("/cam/nv21", "nv21", W, H, W, y.tobytes() + vu.tobytes()), _rgba(nv12_rgb))
    cases["/cam/i420"] = (RawImage("/cam/i420", "i420", W, H, W, y.tobytes() + u.tobytes() + v.tobytes()),
                          _rgba(nv12_rgb))
    step = 16  # rows padded to 16 bytes, chroma rows too (ROS's nv12 `step`)
    cases["/cam/nv12_padded"] = (RawImage("/cam/nv12_padded", "nv12", W, H, step,
                                          padded(y, step) + padded(uv, step)), _rgba(nv12_rgb))
    cases["/cam/yuy2_padded"] = (RawImage("/cam/yuy2_padded", "yuv422_yuy2", W, H, 4 * cw + 5,
                                          padded(yuy2, 4 * cw + 5)), _rgba(yuy2_rgb))
    cases["/cam/uyvy_padded"] = (RawImage("/cam/uyvy_padded", "yuv422", W, H, 32, padded(uyvy, 32)),
                                 _rgba(yuy2_rgb))
    cases["/cam/mono8_padded"] = (RawImage("/cam/mono8_padded", "mono8", W, H, 12, padded(grey, 12)),
                                  _rgba(np.stack([grey] * 3, -1)))
    # Bayer: one value per colour, so every pixel's demosaiced colour is that value
    # wherever it sits, and the pattern decides which site holds which colour
    values = {"R": 200, "G": 90, "B": 30}
    for pattern in ("rggb", "bggr", "gbrg", "grbg"):
        mosaic = np.zeros((H, W), np.uint8)
        for i, c in enumerate(pattern.upper()):
            mosaic[i // 2::2, i % 2::2] = values[c]
        expect = _q(_srgb(np.array([values[c] for c in "RGB"]) / 255.0))
        topic = f"/cam/bayer_{pattern}8"
        cases[topic] = (RawImage(topic, f"bayer_{pattern}8", W, H, W, mosaic.tobytes()),
                        _rgba(np.broadcast_to(expect, (H, W, 3))))
        # 16-bit mosaics (little-endian, value / 65535), the RGGB one with padded rows
        values16 = {"R": 50000, "G": 20000, "B": 3000}
        mosaic16 = np.zeros((H, W), "<u2")
        for i, c in enumerate(pattern.upper()):
            mosaic16[i // 2::2, i % 2::2] = values16[c]
        expect16 = _q(_srgb(np.array([values16[c] for c in "RGB"]) / 65535.0))
        topic = f"/cam/bayer_{pattern}16"
        step16 = 2 * W + (6 if pattern == "rggb" else 0)
        cases[topic] = (RawImage(topic, f"bayer_{pattern}16", W, H, step16,
                                 padded(mosaic16.view(np.uint8).reshape(H, 2 * W), step16)),
                        _rgba(np.broadcast_to(expect16, (H, W, 3))))
    mosaic = np.zeros((H, W), np.uint8)
    for i, c in enumerate("GBRG"):
        mosaic[i // 2::2, i % 2::2] = values[c]
    cases["/cam/bayer_gbrg8_padded"] = (RawImage("/cam/bayer_gbrg8_padded", "bayer_gbrg8", W, H, 9,
                                                 padded(mosaic, 9)),
                                        _rgba(np.broadcast_to(_q(_srgb(np.array([values[c] for c in "RGB"]) / 255.0)),
                                                              (H, W, 3))))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def ros_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("mcap") / "robot.mcap"
    msgs = [m for m, _ in CASES.values()]
    write_ros_bag(path, msgs, chunk_size=512)  # small chunks: several zstd chunks per file
    return path


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("topic", sorted(CASES))
def test_each_topic_renders_its_pixels(ros_bag, topic, backend):
    store = api.open_store(str(ros_bag))
    got = api.render(store, entity=topic, backend=backend)
    want = CASES[topic][1]
    assert got.shape == want.shape
    diff = np.abs(got.astype(int) - want.astype(int)).max()
    assert diff <= (1 if "nv12" in topic or "yuy2" in topic else 0), f"{topic}: max diff {diff}"


def test_rerun_naming_entities_timelines_and_recording(ros_bag):
    store = api.open_store(str(ros_bag))
    assert set(store.entities()) == set(CASES)
    tls = store.timelines()
    assert {"message_log_time", "message_publish_time", "ros2_timestamp"} <= set(tls)
    assert all(tls[t].kind == "timestamp" for t in ("message_log_time", "message_publish_time", "ros2_timestamp"))
    order = list(CASES)
    i = order.index("/cam/nv12")
    # the writer put message i at log time 1e9 + i, publish +1, header.stamp +500
    for tl, delta in (("message_log_time", 0), ("message_publish_time", 1), ("ros2_timestamp", 500)):
        assert list(api.time_points(store, tl, "/cam/nv12")) == [1_000_000_000 + i + delta]
    assert [s.recording_id for s in store.store_infos] == ["robot.mcap"]
    assert not store.problems


def test_render_path_and_cli_info(ros_bag, capsys):
    """`pixelrun.engine.render(path)` and `pixelrun info` take the .mcap path itself."""
    from pixelrun.engine.cli.main import main

    got = api.render(str(ros_bag), entity="/cam/rgb8", backend="numpy")
    np.testing.assert_array_equal(got, CASES["/cam/rgb8"][1])
    assert main(["info", str(ros_bag)]) == 0
    out = capsys.readouterr().out
    assert "/cam/nv12" in out and "message_log_time" in out


def test_compressed_and_depth_messages_are_stored_as_rerun_archetypes(tmp_path):
    rgb = RNG.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    png, jpg = encode_png(rgb), encode_jpeg(rgb)
    depth_mm = RNG.integers(0, 5000, (4, 3), dtype=np.uint16)
    depth_m = RNG.random((4, 3), dtype=np.float32)
    path = tmp_path / "c.mcap"
    write_ros_bag(path, [
        Compressed("/cam/png", "png", png),
        Compressed("/cam/jpeg", "rgb8; jpeg compressed bgr8", jpg),
        RawImage("/depth/mm", "16UC1", 3, 4, 6, depth_mm.astype("<u2").tobytes()),
        RawImage("/depth/m", "32FC1", 3, 4, 12, depth_m.astype("<f4").tobytes()),
    ])
    chunks, report = read_mcap(path)
    by_topic = {c.entity_path: c for c in chunks}
    assert not report.problems
    blob = by_topic["/cam/png"].components["EncodedImage:blob"]
    assert bytes(blob[0][0].values.to_numpy()) == png
    assert by_topic["/cam/jpeg"].components["EncodedImage:media_type"].to_pylist() == [["image/jpeg"]]
    assert by_topic["/cam/png"].components["EncodedImage:media_type"].to_pylist() == [["image/png"]]
    mm = by_topic["/depth/mm"].components
    assert mm["DepthImage:meter"].to_pylist() == [[1000.0]]
    assert mm["DepthImage:format"].to_pylist()[0][0]["channel_datatype"] == 8  # U16
    assert bytes(mm["DepthImage:buffer"][0][0].values.to_numpy()) == depth_mm.astype("<u2").tobytes()
    m = by_topic["/depth/m"].components
    assert m["DepthImage:meter"].to_pylist() == [[1.0]]
    assert m["DepthImage:format"].to_pylist()[0][0]["channel_datatype"] == 34  # F32


def test_foxglove_protobuf_and_json(tmp_path):
    rgb = RNG.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    grey = RNG.integers(0, 256, (4, 2), dtype=np.uint8)
    png = encode_png(rgb)
    path = tmp_path / "fox.mcap"
    write_foxglove_bag(path, [RawImage("/fox/pb", "rgb8", 5, 3, 15, rgb.tobytes()),
                              RawImage("/fox/json", "mono8", 2, 4, 2, grey.tobytes())],
                       [Compressed("/fox/png", "png", png)], json_topics=("/fox/json",))
    store = api.open_store(str(path))
    np.testing.assert_array_equal(api.render(store, entity="/fox/pb", backend="numpy"), _rgba(rgb))
    np.testing.assert_array_equal(api.render(store, entity="/fox/json", backend="numpy"),
                                  _rgba(np.stack([grey] * 3, -1)))
    assert "timestamp" in store.timelines() and "ros2_timestamp" not in store.timelines()
    # message 0 at log time 2e9, publish +2, Foxglove timestamp +700
    assert list(api.time_points(store, "timestamp", "/fox/pb")) == [2_000_000_700]
    assert list(api.time_points(store, "message_publish_time", "/fox/pb")) == [2_000_000_002]
    chunks, report = read_mcap(path)
    enc = [c for c in chunks if c.entity_path == "/fox/png"][0]
    assert bytes(enc.components["EncodedImage:blob"][0][0].values.to_numpy()) == png
    assert not report.problems


# ----------------------------------------------------------------------- bad input


def _problems_text(store) -> str:
    return "\n".join(map(str, store.problems))


def test_bad_messages_are_named_with_topic_and_time_and_the_rest_is_shown(tmp_path):
    good = CASES["/cam/rgb8"][0]
    path = tmp_path / "bad.mcap"
    write_ros_bag(path, [
        good,
        RawImage("/cam/weird", "xyz16", 2, 2, 4, bytes(8)),
        RawImage("/cam/short_step", "rgb8", 4, 2, 10, bytes(24)),
        RawImage("/cam/short_data", "mono8", 4, 4, 4, bytes(10)),
    ], times=[10, 20, 30, 40])
    with pytest.warns(StoreWarning):
        store = api.open_store(str(path))
    text = _problems_text(store)
    assert "/cam/weird at log time 0.000000020 s: unknown encoding 'xyz16'" in text
    assert "/cam/short_step at log time 0.000000030 s: step 10 is smaller than one row" in text
    assert "/cam/short_data at log time 0.000000040 s:" in text and "needs 16 bytes, the message has 10" in text
    np.testing.assert_array_equal(api.render(store, entity="/cam/rgb8", backend="numpy"), CASES["/cam/rgb8"][1])
    assert set(store.entities()) == {"/cam/rgb8"}


def test_a_truncated_file_keeps_what_came_before(tmp_path):
    path = tmp_path / "t.mcap"
    pix = RNG.integers(0, 256, (6, 64, 64), dtype=np.uint8)  # noise: zstd cannot shrink it
    frames = [RawImage("/cam/a", "mono8", 64, 64, 64, pix[i].tobytes()) for i in range(6)]
    write_ros_bag(path, frames, chunk_size=4096)
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.warns(StoreWarning, match="cut short or damaged"):
        store = api.open_store(str(cut))
    times = api.time_points(store, "message_log_time", "/cam/a")
    assert 1 <= len(times) < 6
    last = api.render(store, entity="/cam/a", backend="numpy")
    np.testing.assert_array_equal(last[..., 0], pix[len(times) - 1])


def test_a_damaged_chunk_costs_only_its_messages(tmp_path):
    path = tmp_path / "d.mcap"
    frames = [RawImage("/cam/a", "mono8", 32, 32, 32, bytes([i]) * 1024) for i in range(4)]
    write_ros_bag(path, frames, chunk_size=1024)
    data = bytearray(path.read_bytes())
    from mcap.reader import make_reader

    with open(path, "rb") as f:
        idx = sorted(make_reader(f).get_summary().chunk_indexes, key=lambda c: c.chunk_start_offset)
    assert len(idx) == 4
    second = idx[1]
    mid = second.chunk_start_offset + second.chunk_length // 2
    data[mid:mid + 16] = b"\xff" * 16  # garbage inside the zstd stream
    path.write_bytes(bytes(data))
    with pytest.warns(StoreWarning):
        store = api.open_store(str(path))
    text = _problems_text(store)
    assert f"/cam/a at log time 1.000000001 s: chunk at byte {second.chunk_start_offset}" in text
    assert len(api.time_points(store, "message_log_time", "/cam/a")) == 3


def test_a_schema_that_does_not_parse_is_named(tmp_path):
    from mcap.writer import Writer

    path = tmp_path / "s.mcap"
    with open(path, "wb") as f:
        w = Writer(f)
        w.start()
        sid = w.register_schema("sensor_msgs/msg/Image", "ros2msg", b"this is not a message definition ][")
        ch = w.register_channel("/cam/broken", "cdr", sid)
        w.add_message(ch, log_time=5, data=b"\x00\x01\x00\x00", publish_time=5)
        w.finish()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        store = api.open_store(str(path))
    text = _problems_text(store)
    assert "/cam/broken at log time 0.000000005 s: schema does not parse" in text


def test_not_an_mcap_or_rrd_is_still_refused(tmp_path):
    p = tmp_path / "x.mcap"
    p.write_bytes(b"hello world, not a recording at all")
    with pytest.raises(api.NotAnRrdFileError):
        api.open_store(str(p))
    assert os.path.exists(p)


@pytest.mark.parametrize("backend", BACKENDS)
def test_padded_and_big_endian_colour_and_depth(tmp_path, backend):
    """Padded rows and big-endian samples of colour images and depth are drawn from the
    message bytes as they are; an 8-bit image flagged big-endian (byte order is moot)
    too. Two layouts are refused and named: a big-endian 16-bit Bayer mosaic, and a
    step that splits a 2-byte sample."""
    rgb = RNG.integers(0, 256, (2, 3, 3), dtype=np.uint8)
    k = RNG.integers(0, 256, (3, 4), dtype=np.uint16)
    k[0, 0], k[0, 1] = 0, 255  # mono16 range [0, 65535]: k * 257 shows as k
    rgb16 = RNG.integers(0, 256, (2, 3, 3), dtype=np.uint16)
    rgb16[0, 0] = (0, 255, 0)
    mm = np.array([[0, 1000, 2000, 3000, 4000]], np.uint16)
    path = tmp_path / "pad.mcap"
    write_ros_bag(path, [
        RawImage("/cam/rgb_padded", "rgb8", 3, 2, 12, padded(rgb.reshape(2, 9), 12)),
        RawImage("/cam/mono16_be", "mono16", 4, 3, 8, (k * 257).astype(">u2").tobytes(), is_bigendian=True),
        RawImage("/cam/bgr16_be_padded", "bgr16", 3, 2, 24,
                 padded((rgb16[..., ::-1] * 257).astype(">u2").view(np.uint8).reshape(2, 18), 24), is_bigendian=True),
        RawImage("/depth/padded_be", "16UC1", 5, 1, 14, padded(mm.astype(">u2").view(np.uint8), 14),
                 is_bigendian=True),
        RawImage("/cam/rgb_be", "rgb8", 3, 2, 9, rgb.tobytes(), is_bigendian=True),
        RawImage("/cam/bayer16_be", "bayer_rggb16", 4, 2, 8, bytes(16), is_bigendian=True),
        RawImage("/cam/odd_step", "mono16", 2, 2, 5, bytes(10)),
    ], times=[1, 2, 3, 4, 5, 6, 7])
    with pytest.warns(StoreWarning):
        store = api.open_store(str(path))
    text = _problems_text(store)
    assert "/cam/bayer16_be at log time 0.000000006 s: big-endian 2-byte samples (bayer_rggb16)" in text
    assert "/cam/odd_step at log time 0.000000007 s: step 5 of L/U16 2x2 is not a multiple of its 2-byte" in text
    assert "bayer16_be" not in store.entities() and "/cam/odd_step" not in store.entities()

    def show(topic):
        return api.render(store, entity=topic, backend=backend)

    np.testing.assert_array_equal(show("/cam/rgb_padded"), _rgba(rgb))
    np.testing.assert_array_equal(show("/cam/rgb_be"), _rgba(rgb))
    np.testing.assert_array_equal(show("/cam/mono16_be"), _rgba(np.stack([k.astype(np.uint8)] * 3, -1)))
    np.testing.assert_array_equal(show("/cam/bgr16_be_padded"), _rgba(rgb16.astype(np.uint8)))
    rerun_turbo = [[35, 23, 27], [38, 189, 225], [150, 250, 80], [255, 128, 29], [144, 13, 0]]
    assert np.abs(show("/depth/padded_be")[0, :, :3].astype(int) - np.array(rerun_turbo)).max() <= 1


def test_info_reads_only_the_summary_when_there_is_one(tmp_path, capsys):
    """Every chunk's bytes are garbage, the summary is intact: info answers from the
    summary (counts per topic, no problem); with the tail cut off it reads the file."""
    from mcap.reader import make_reader

    from pixelrun.engine.cli.main import main

    path = tmp_path / "s.mcap"
    pix = RNG.integers(0, 256, (3, 16, 16), dtype=np.uint8)
    write_ros_bag(path, [RawImage("/cam/a", "mono8", 16, 16, 16, p.tobytes()) for p in pix], chunk_size=64)
    data = bytearray(path.read_bytes())
    with open(path, "rb") as f:
        idx = make_reader(f).get_summary().chunk_indexes
    for ci in idx:  # overwrite each chunk's compressed payload
        data[ci.chunk_start_offset + 60: ci.chunk_start_offset + ci.chunk_length] = b"\x00" * (ci.chunk_length - 60)
    path.write_bytes(bytes(data))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "/cam/a  3 messages  sensor_msgs/msg/Image" in out and "3 messages in 3 chunks" in out
    cut = tmp_path / "cut.mcap"
    good = tmp_path / "good.mcap"
    write_ros_bag(good, [RawImage("/cam/a", "mono8", 16, 16, 16, p.tobytes()) for p in pix], chunk_size=64)
    cut.write_bytes(good.read_bytes()[:-40])  # footer gone: no summary
    assert main(["info", str(cut)]) == 1  # the damage is a problem: exit status 1
    cap = capsys.readouterr()
    assert "/cam/a" in cap.out and "Image" in cap.out and "3 messages in" not in cap.out
    assert f"{cut}: the file is cut short or damaged after byte" in cap.err


@pytest.mark.parametrize("backend", BACKENDS)
def test_depth_and_compressed_topics_render(tmp_path, backend):
    """16UC1 (mm) and 32FC1 (m) as DepthImage with Rerun's default Turbo over [0, max]
    (colours measured in Rerun 0.41's viewer for 0..4000 mm); PNG exactly, JPEG as
    OpenCV decodes the same bytes (within 3)."""
    import cv2

    rgb = RNG.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    smooth = np.clip(np.add.outer(np.arange(16) * 8, np.arange(24) * 4), 0, 255).astype(np.uint8)
    smooth = np.stack([smooth, smooth[::-1], 255 - smooth], -1)
    png, jpg = encode_png(rgb), encode_jpeg(smooth)
    mm = np.array([[0, 1000, 2000, 3000, 4000]], np.uint16)
    path = tmp_path / "dc.mcap"
    write_ros_bag(path, [
        Compressed("/cam/png", "png", png),
        Compressed("/cam/jpeg", "rgb8; jpeg compressed bgr8", jpg),
        RawImage("/depth/mm", "16UC1", 5, 1, 10, mm.astype("<u2").tobytes()),
        RawImage("/depth/m", "32FC1", 5, 1, 20, (mm / 1000.0).astype("<f4").tobytes()),
    ])
    store = api.open_store(str(path))
    rerun_turbo = [[35, 23, 27], [38, 189, 225], [150, 250, 80], [255, 128, 29], [144, 13, 0]]
    for topic in ("/depth/mm", "/depth/m"):
        got = api.render(store, entity=topic, backend=backend)
        assert np.abs(got[0, :, :3].astype(int) - np.array(rerun_turbo)).max() <= 1, (topic, got[0, :, :3].tolist())
    np.testing.assert_array_equal(api.render(store, entity="/cam/png", backend=backend), _rgba(rgb))
    want = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    got = api.render(store, entity="/cam/jpeg", backend=backend)
    assert np.abs(got[..., :3].astype(int) - want.astype(int)).max() <= 3


def test_view_opens_an_mcap_and_draws_uyvy(tmp_path, xvfb_display):
    """`pixelrun view FILE.mcap` (a separate process, headless screenshot): the UYVY
    topic's colour (BT.601 limited, computed here) fills its view."""
    import subprocess
    import sys

    from PIL import Image as PILImage

    w, h = 64, 48
    data = np.tile(np.array([90, 81, 240, 81] * (w // 2), np.uint8), (h, 1)).tobytes()  # U Y V Y
    path, png = tmp_path / "v.mcap", tmp_path / "shot.png"
    write_ros_bag(path, [RawImage("/cam/uyvy", "yuv422", w, h, 2 * w, data)])
    proc = subprocess.run([sys.executable, "-m", "pixelrun.engine.cli", "view", str(path), "--no-listen",
                           "--screenshot-to", str(png), "--screenshot-timeout", "120"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    want = _bt601_limited(np.array([81.0]), np.array([90.0]), np.array([240.0]))[0].astype(int)
    img = np.asarray(PILImage.open(png).convert("RGB")).astype(int)
    assert int((np.abs(img - want).max(axis=-1) <= 1).sum()) > 10_000


def test_a_bag_larger_than_the_memory_limit_streams_through_the_store(tmp_path):
    """The file is read chunk by chunk and the store's limit applies while reading: the
    newest frames stay, the oldest are evicted (read back when shown: test_mcap_seek),
    nothing is held past it."""
    from pixelrun.engine.store.store import ChunkStore

    pix = RNG.integers(0, 256, (40, 64, 64), dtype=np.uint8)
    path = tmp_path / "big.mcap"
    write_ros_bag(path, [RawImage("/cam/a", "mono8", 64, 64, 64, p.tobytes()) for p in pix], chunk_size=8192)
    limit = 10 * 64 * 64  # about ten frames
    store = ChunkStore(memory_limit=limit)
    store.ingest_file(str(path))
    assert store.held_bytes <= limit
    assert store.evicted_totals["rows"] > 0 and store.dropped_totals["rows"] == 0
    assert 1 <= store.num_rows < 40
    kept = api.time_points(store, "message_log_time", "/cam/a")
    assert len(kept) == 40 and kept[-1] == 1_000_000_039
    np.testing.assert_array_equal(api.render(store, entity="/cam/a", backend="numpy")[..., 0], pix[-1])


def test_viewer_readout_of_padded_big_endian_and_16_bit_bayer_topics(tmp_path):
    """The pixel readout (viewer's 'pixel under the cursor') reads the message's own
    values through padded rows, byte order and 16-bit mosaics."""
    from pixelrun.engine.viewer.inspect import inspect_layer

    v = np.array([[[1, 2, 3], [300, 400, 500]], [[7, 8, 9], [65535, 0, 1234]]], np.uint16)
    m = (np.arange(12).reshape(3, 4) * 1000).astype("<u2")
    path = tmp_path / "r.mcap"
    write_ros_bag(path, [
        RawImage("/cam/rgb16", "rgb16", 2, 2, 16, padded(v.astype(">u2").view(np.uint8).reshape(2, 12), 16),
                 is_bigendian=True),
        RawImage("/cam/bayer16", "bayer_rggb16", 4, 3, 10, padded(m.view(np.uint8).reshape(3, 8), 10)),
    ])
    store = api.open_store(str(path))
    layers = {layer.entity: layer for layer in api.layers_at(store, timeline="message_log_time")}
    got = inspect_layer(layers["/cam/rgb16"], 1, 1)
    assert got.raw == (("R", 65535), ("G", 0), ("B", 1234))
    got = inspect_layer(layers["/cam/bayer16"], 2, 1)
    assert got.raw == (("G", 6000),)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rosbag2_sqlite_db3(tmp_path, backend):
    """rosbag2's .db3 storage: the same topics, pixels and naming (message_log_time from
    the stored timestamp, ros2_timestamp from header.stamp; .db3 has no publish time)."""
    from tests.mcap_fixtures import write_db3

    topics = ["/cam/rgb8", "/cam/nv12_padded", "/cam/bayer_rggb16", "/cam/uyvy"]
    path = tmp_path / "bag_0.db3"
    write_db3(path, [CASES[t][0] for t in topics])
    store = api.open_store(str(path))
    assert set(store.entities()) == set(topics) and not store.problems
    assert set(store.timelines()) == {"message_log_time", "ros2_timestamp"}
    assert list(api.time_points(store, "ros2_timestamp", "/cam/uyvy")) == [3_000_000_003 + 500]
    for t in topics:
        got = api.render(store, entity=t, backend=backend)
        tol = 1 if ("nv12" in t or "uyvy" in t) else 0
        assert np.abs(got.astype(int) - CASES[t][1].astype(int)).max() <= tol, t


def test_a_sqlite_file_that_is_not_a_rosbag_is_named(tmp_path):
    import sqlite3

    path = tmp_path / "other.db3"
    con = sqlite3.connect(str(path))
    con.execute("CREATE TABLE people(name TEXT)")
    con.commit()
    con.close()
    with pytest.warns(StoreWarning, match="not a rosbag2 database"):
        store = api.open_store(str(path))
    assert store.entities() == []


def test_a_truncated_message_is_named_and_its_neighbours_shown(tmp_path):
    """One CDR message cut in half inside an intact chunk: named with its topic and time;
    the message before it on the same topic is what the view shows."""
    import io

    from mcap.reader import make_reader
    from mcap.writer import Writer

    src = tmp_path / "src.mcap"
    grey = RNG.integers(0, 256, (4, 4), dtype=np.uint8)
    write_ros_bag(src, [RawImage("/cam/a", "mono8", 4, 4, 4, grey.tobytes()),
                        RawImage("/cam/a", "mono8", 4, 4, 4, bytes(16))], times=[10, 20])
    with open(src, "rb") as f:
        msgs = list(make_reader(f).iter_messages())
    schema, channel, _ = msgs[0]
    out = io.BytesIO()
    w = Writer(out)
    w.start()
    sid = w.register_schema(schema.name, schema.encoding, schema.data)
    cid = w.register_channel(channel.topic, channel.message_encoding, sid)
    for i, (_, _, m) in enumerate(msgs):
        data = m.data if i == 0 else m.data[: len(m.data) // 2]
        w.add_message(cid, log_time=m.log_time, data=data, publish_time=m.publish_time)
    w.finish()
    path = tmp_path / "cut_msg.mcap"
    path.write_bytes(out.getvalue())
    with pytest.warns(StoreWarning):
        store = api.open_store(str(path))
    assert "/cam/a at log time 0.000000020 s: message cannot be decoded" in _problems_text(store)
    np.testing.assert_array_equal(api.render(store, entity="/cam/a", backend="numpy")[..., 0], grey)
