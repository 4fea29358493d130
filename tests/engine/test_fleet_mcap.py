"""Bags on Ray: `pixelrun.data.read_mcap` and `pixelrun render A.mcap B.rrd --ray`.

One local Ray (2 CPUs, tests/engine/conftest.py's ray_local) for the session, over bags
written with tests/mcap_fixtures.py: a ROS 2 MCAP bag (row-padded rgb8, NV12, 16UC1 depth and
PNG CompressedImage topics, several zstd chunks), a Foxglove protobuf bag (bgr8 and
JPEG) and a rosbag2 .db3 (mono8). Every row's pixels are checked against the
single-process ``pixelrun.engine.render`` of that topic at that time, on numpy.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import pixelrun as rr
import pixelrun.data
from pixelrun.engine import api as R
from pixelrun.engine import open_store, render
from pixelrun.engine.cli.main import main
from pixelrun.engine.cli.render import FLEET_SUFFIXES
from pixelrun.engine.fleet import frames as F

ray = pytest.importorskip("ray", reason="Ray (the pixelrun[ray] extra) is not installed")
pytest.importorskip("mcap_ros2", reason="the MCAP readers (the pixelrun[mcap] extra) are not installed")
dataset = pytest.importorskip("pixelrun.engine.fleet.dataset")

from tests.mcap_fixtures import (
    Compressed,
    RawImage,
    encode_jpeg,
    encode_png,
    padded,
    write_db3,
    write_foxglove_bag,
    write_ros_bag,
)

BACKEND = "numpy"  # the oracle: the same pixels on every machine
LOG = "message_log_time"
RNG = np.random.default_rng(18)


def _noise(*shape) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def _ros(path: Path) -> set:
    """4 steps of rgb8 20x12 (rows padded to 64 bytes), 16UC1 depth 16x10, and NV12 16x8
    at odd steps, PNG 9x7 at even steps; zstd chunks of ~2 KiB -> 14 messages."""
    msgs = []
    for i in range(4):
        msgs.append(RawImage("/cam/rgb", "rgb8", 20, 12, 64, padded(_noise(12, 60), 64)))
        depth = RNG.integers(0, 5000, (10, 16), dtype=np.uint16)
        msgs.append(RawImage("/cam/depth", "16UC1", 16, 10, 32, depth.tobytes()))
        if i % 2:
            msgs.append(RawImage("/cam/nv12", "nv12", 16, 8, 16, _noise(16 * 8 * 3 // 2).tobytes()))
        else:
            msgs.append(Compressed("/cam/png", "png", encode_png(_noise(7, 9, 3))))
    write_ros_bag(path, msgs, chunk_size=2048)
    return {(m.topic, 1_000_000_000 + i) for i, m in enumerate(msgs)}


def _foxglove(path: Path) -> set:
    """foxglove.RawImage bgr8 12x8 x3 and foxglove.CompressedImage JPEG 16x16 x2 (protobuf)."""
    raw = [RawImage("/front", "bgr8", 12, 8, 36, _noise(8, 36).tobytes()) for _ in range(3)]
    comp = [Compressed("/front/jpeg", "jpeg", encode_jpeg(_noise(16, 16, 3))) for _ in range(2)]
    write_foxglove_bag(path, raw, comp)
    return {(m.topic, 2_000_000_000 + i) for i, m in enumerate([*raw, *comp])}


def _db3(path: Path) -> set:
    """A rosbag2 SQLite bag: mono8 10x6 x3 (no publish times)."""
    msgs = [RawImage("/mono", "mono8", 10, 6, 10, _noise(6, 10).tobytes()) for _ in range(3)]
    write_db3(path, msgs)
    return {(m.topic, 3_000_000_000 + i) for i, m in enumerate(msgs)}


def _rrd(path: Path) -> None:
    rec = rr.new_recording("fleet", recording_id="cams")
    mem = rec.memory_recording()
    for t in range(3):
        rec.set_time("frame", sequence=t)
        rec.log("cam", rr.Image(_noise(6, 10, 3)))
        rec.flush()
    path.write_bytes(mem.rrd_bytes())


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    """{path: the (topic, log time) of every image message in it} for three good bags."""
    root = tmp_path_factory.mktemp("bags")
    return {str(root / name): make(root / name)
            for name, make in (("ros.mcap", _ros), ("fox.mcap", _foxglove), ("ros.db3", _db3))}


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """(garbage, cut, chunk): a .mcap that is no bag, a bag cut short (no summary), and
    a bag with garbage inside its second zstd chunk; each holds 6 noise frames."""
    root = tmp_path_factory.mktemp("damaged_bags")
    garbage = root / "garbage.mcap"
    garbage.write_bytes(b"this is not a bag\n" * 10)
    frames = [RawImage("/cam/a", "mono8", 48, 48, 48, _noise(48, 48).tobytes()) for _ in range(6)]
    whole = root / "whole.mcap"
    write_ros_bag(whole, frames, chunk_size=4096)
    data = whole.read_bytes()
    cut = root / "cut.mcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    from mcap.reader import make_reader

    with open(whole, "rb") as f:
        second = sorted(make_reader(f).get_summary().chunk_indexes, key=lambda c: c.chunk_start_offset)[1]
    broken = bytearray(data)
    mid = second.chunk_start_offset + second.chunk_length // 2
    broken[mid:mid + 16] = b"\xff" * 16
    chunk = root / "chunk.mcap"
    chunk.write_bytes(bytes(broken))
    return str(garbage), str(cut), str(chunk)


def _rows_by_key(ds) -> dict:
    rows = ds.take_all()
    out = {(r["path"], r["entity"], int(r["time"])): r for r in rows}
    assert len(out) == len(rows), "a frame came twice"
    return out


def _expected(path: str, topic: str, time: int, timeline: str = LOG) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a damaged bag's StoreWarning: what it says is checked elsewhere
        return render(path, entity=topic, timeline=timeline, time=time, backend=BACKEND)


def _intact(path: str) -> set:
    """(path, topic, log time) of what the single-process store still reads of a bag."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = open_store(path)
    return {(path, e, int(t)) for e in store.entities() for t in store.index_times(e, LOG, "Image:buffer")}


# ------------------------------------------------------------------ the dataset


def test_every_image_message_is_one_row_with_the_single_process_pixels(ray_local, bags):
    rows = _rows_by_key(pixelrun.data.read_mcap(list(bags), backend=BACKEND))
    assert set(rows) == {(p, topic, t) for p, msgs in bags.items() for topic, t in msgs}
    for (path, topic, time), row in rows.items():
        want = _expected(path, topic, time)
        assert set(row) == set(F.DECODED_COLUMNS) and row["timeline"] == LOG
        assert row["rgba"].dtype == np.uint8 and row["rgba"].shape == want.shape, (path, topic, time)
        assert (row["width"], row["height"]) == (want.shape[1], want.shape[0])
        assert np.array_equal(row["rgba"], want), (path, topic, time)
    # every kind of message made its rows: raw, YUV, depth (colormapped), PNG and JPEG
    assert {k[1] for k in rows} == {"/cam/rgb", "/cam/depth", "/cam/nv12", "/cam/png", "/front", "/front/jpeg",
                                    "/mono"}


@pytest.mark.parametrize("bag, timeline, offset", [
    ("ros.mcap", "ros2_timestamp", 500), ("ros.mcap", "message_publish_time", 1), ("fox.mcap", "timestamp", 700)])
def test_the_mcap_timelines_give_the_rows_their_times(ray_local, bags, bag, timeline, offset):
    path = next(p for p in bags if p.endswith(bag))
    rows = _rows_by_key(pixelrun.data.read_mcap(path, timeline=timeline, backend=BACKEND))
    assert set(rows) == {(path, topic, t + offset) for topic, t in bags[path]}
    for (_, topic, time), row in rows.items():
        assert row["timeline"] == timeline
        assert np.array_equal(row["rgba"], _expected(path, topic, time, timeline)), (topic, time)


def test_a_bag_without_the_timeline_is_named_and_gives_no_rows(bags):
    db3 = next(p for p in bags if p.endswith(".db3"))  # rosbag2's SQLite storage has no publish times
    with pytest.warns(F.FleetWarning, match=r"ros.db3: no timeline 'message_publish_time'"):
        assert list(F.recording_frames(db3, timeline="message_publish_time")) == []


def test_topics_pick_topics_by_exact_name_and_only_they_are_read(ray_local, bags):
    ros = next(p for p in bags if p.endswith("ros.mcap"))
    rows = _rows_by_key(pixelrun.data.read_mcap(ros, topics=["/cam/png", "/cam/depth"], backend=BACKEND))
    assert set(rows) == {(ros, topic, t) for topic, t in bags[ros] if topic in ("/cam/png", "/cam/depth")}
    for (_, topic, time), row in rows.items():
        assert np.array_equal(row["rgba"], _expected(ros, topic, time))
    assert F.open_recording(ros, topics=["/cam/png"]).entities() == ["/cam/png"]  # the others are not held
    assert list(F.recording_frames(ros, topics=["/cam"])) == []  # a topic is a name, not a subtree
    with pytest.raises(ValueError, match="list of topic names"):
        pixelrun.data.read_mcap(ros, topics="/cam/png")


def test_raw_rows_then_the_decode_stage_give_the_same_rows(ray_local, bags):
    raw = pixelrun.data.read_mcap(list(bags), decode=False)
    assert tuple(raw.schema().names) == F.RAW_COLUMNS
    raw_rows = _rows_by_key(raw)
    fox = next(p for p in bags if p.endswith("fox.mcap"))
    jpeg = raw_rows[(fox, "/front/jpeg", 2_000_000_003)]  # a compressed message's row: the decoded pixels
    assert (jpeg["width"], jpeg["height"]) == (16, 16) and len(jpeg["buffer"]) == 16 * 16 * 3
    decoded = _rows_by_key(pixelrun.data.decode(raw, backend=BACKEND))
    direct = _rows_by_key(pixelrun.data.read_mcap(list(bags), backend=BACKEND))
    assert set(decoded) == set(direct) == set(raw_rows)
    assert all(np.array_equal(decoded[k]["rgba"], direct[k]["rgba"]) for k in direct)


def test_read_tasks_and_size_estimates_come_from_the_chunk_index(ray_local, bags, tmp_path, monkeypatch):
    paths = list(bags)
    source = dataset.McapDatasource(paths)
    everything = {(p, topic, t) for p, msgs in bags.items() for topic, t in msgs}

    def rows_of(tasks):
        return [(r["path"], r["entity"], r["time"]) for task in tasks for table in task() for r in table.to_pylist()]

    two = source.get_read_tasks(2)
    assert len(two) == 2 and sorted(p for t in two for p in t.metadata.input_files) == sorted(paths)
    assert sorted(rows_of(two)) == sorted(everything)
    monkeypatch.setattr(F, "MIN_SHARD_BYTES", 1)  # these bags are tiny: let them be split
    many = rows_of(source.get_read_tasks(6))
    assert len(many) == len(everything) and set(many) == everything
    held = sum(f.layer.buffer.nbytes for p in paths for f in F.recording_frames(p))
    assert 0.5 * held <= source.estimate_inmemory_data_size() <= 2 * held
    # a compressible bag: its size is the images' (the chunk index's uncompressed sizes), not
    # the file's; one topic of it: only the chunks that hold that topic
    flat = tmp_path / "flat.mcap"
    write_ros_bag(flat, [RawImage(f"/{name}", "mono8", 64, 64, 64, bytes(64 * 64)) for name in "ab" for _ in range(4)],
                  chunk_size=8192)
    images = 8 * 64 * 64
    assert flat.stat().st_size < images // 4 and images <= F.recording_bytes(str(flat)) < 1.2 * images
    assert images // 2 <= F.recording_bytes(str(flat), ["/a"]) < 0.7 * images
    cut = tmp_path / "cut.mcap"  # no summary: the file's size
    cut.write_bytes(flat.read_bytes()[:-200])
    assert F.recording_bytes(str(cut)) == cut.stat().st_size


def _frames_of_parts(path: str, shards: int, **kw) -> list[list]:
    return [list(F.recording_frames(path, shard=k, shards=shards, **kw)) for k in range(shards)]


def _part_times(path: str, part) -> list:
    store = F.open_recording(path, part=part)
    return sorted(int(t) for e in store.entities() for t in store.index_times(e, LOG, "Image:buffer"))


@pytest.mark.parametrize("shuffled", [False, True])
def test_a_bag_is_split_by_log_time_at_its_chunks_and_each_part_holds_only_its_messages(tmp_path, shuffled):
    """Parts cut at chunk starts (the chunk index): every message in exactly one part,
    drawn as the whole bag draws it; in a bag whose chunks overlap in time (shuffled
    log times) as well."""
    times = [1_000 + 10 * i for i in range(12)]
    if shuffled:
        times = [times[i] for i in np.random.default_rng(5).permutation(12)]
    msgs = [RawImage("/cam/a" if i % 3 else "/cam/b", "mono8", 40, 40, 40, _noise(40, 40).tobytes())
            for i in range(12)]
    path = tmp_path / "big.mcap"
    write_ros_bag(path, msgs, times=times, chunk_size=3000)  # about 2 messages per chunk
    bag = str(path)
    parts = F.bag_parts(bag, None, 3)
    assert len(parts) == 3 and parts[0].lo is None and parts[-1].hi is None
    # chunks in time order: each part reads its own chunks; overlapping chunks: some are read by two parts
    assert (sum(len(p.chunks) for p in parts) == len(set().union(*(p.chunks for p in parts)))) == (not shuffled)
    whole = {(m.topic, t) for m, t in zip(msgs, times)}
    assert {(f.entity, f.time) for f in F.recording_frames(bag)} == whole
    seen = []
    for k, part in enumerate(parts):
        frames = list(F.recording_frames(bag, shard=k, shards=3))
        assert 0 < len(frames) < 12
        seen += [(f.entity, f.time) for f in frames]
        for f in frames:
            assert np.array_equal(R.render_layers([f.layer], backend=BACKEND), _expected(bag, f.entity, f.time))
        # the part's store holds its own messages only: the memory goes to them
        assert _part_times(bag, part) == sorted(f.time for f in frames)
    assert sorted(seen) == sorted(whole)  # every message once
    # other timelines: equal slices of the frame list (a stamp is not where a message is in the file)
    seen = [(f.entity, f.time) for k in range(3) for f in F.recording_frames(bag, shard=k, shards=3,
                                                                              timeline="ros2_timestamp")]
    assert sorted(seen) == sorted((m.topic, t + 500) for m, t in zip(msgs, times))


def test_a_part_reads_only_its_chunks_and_reports_its_own_damage(tmp_path, monkeypatch):
    msgs = [RawImage("/cam/a", "mono8", 40, 40, 40, _noise(40, 40).tobytes()) for _ in range(9)]
    path = tmp_path / "late_damage.mcap"
    write_ros_bag(path, msgs, chunk_size=3000)
    bag = str(path)
    parts = F.bag_parts(bag, None, 3)
    data = bytearray(path.read_bytes())
    from mcap.reader import make_reader

    with open(path, "rb") as f:
        final = max(make_reader(f).get_summary().chunk_indexes, key=lambda c: c.message_start_time)
    assert final.message_start_time >= parts[-1].lo  # the damage is in the last part's range
    mid = final.chunk_start_offset + final.chunk_length // 2
    data[mid:mid + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the first parts never read the damaged chunk: no warning
        first = [f.time for k in (0, 1) for f in F.recording_frames(bag, shard=k, shards=3)]
    with pytest.warns(F.FleetWarning, match=r"late_damage.mcap: damaged; .*/cam/a at log time .*cannot be read"):
        rest = [f.time for f in F.recording_frames(bag, shard=2, shards=3)]
    assert sorted(first + rest) == sorted(t for _, _, t in _intact(bag))
    assert len(first + rest) < 9
    # a part decodes the messages of its own chunks only, not the whole bag
    read = []
    real = F.iter_image_rows

    def counted(*args, **kwargs):
        for row in real(*args, **kwargs):
            read.append(row.log_time)
            yield row

    monkeypatch.setattr(F, "iter_image_rows", counted)
    for k in range(3):
        read.clear()
        mine = [f.time for f in F.recording_frames(bag, shard=k, shards=3)]
        assert sorted(read) == sorted(mine) and 0 < len(mine) < 7


def test_a_damaged_bag_among_good_ones_is_named_and_the_rest_are_read(ray_local, bags, damaged, tmp_path):
    garbage, cut, chunk = damaged
    rrd = tmp_path / "cams.rrd"
    _rrd(rrd)
    with pytest.raises(F.RecordingReadError, match=r"garbage.mcap .*not an MCAP file") as err:
        pixelrun.data.read_mcap([*bags, garbage, str(rrd)])
    assert "cams.rrd" in str(err.value)  # read_mcap reads bags only
    with pytest.warns(F.FleetWarning, match="garbage.mcap"):
        ds = pixelrun.data.read_mcap([*bags, garbage, cut, chunk], backend=BACKEND, on_error="skip")
    rows = _rows_by_key(ds)
    good = {(p, topic, t) for p, msgs in bags.items() for topic, t in msgs}
    assert good <= set(rows) and not any(k[0] == garbage for k in rows)
    # a damaged bag gives the frames that are intact: those the single-process store reads
    for bad in (cut, chunk):
        intact = _intact(bad)
        assert 0 < len(intact) < 6 and {k for k in rows if k[0] == bad} == intact, bad
        for path, topic, time in intact:
            assert np.array_equal(rows[(path, topic, time)]["rgba"], _expected(path, topic, time))


# ------------------------------------------------------------------ render --ray


def _pngs(folder: Path) -> dict:
    return {p.name: np.asarray(PILImage.open(p)) for p in sorted(folder.glob("*.png"))}


def test_render_ray_renders_bags_and_recordings_as_alone(ray_local, bags, damaged, tmp_path, capsys):
    garbage, cut, _ = damaged
    rrd = tmp_path / "cams.rrd"
    _rrd(rrd)
    ros, fox = (next(p for p in bags if p.endswith(n)) for n in ("ros.mcap", "fox.mcap"))
    paths = [ros, fox, str(rrd), cut, garbage]
    out = tmp_path / "fleet"
    code = main(["render", *paths, "--all-times", "-o", str(out), "--ray", "--backend", BACKEND, "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "garbage.mcap" in err and "1 recording(s) not rendered" in err
    assert sorted(p.name for p in out.iterdir()) == ["cams", "cut", "fox", "ros"]
    for path in paths[:-1]:
        alone = tmp_path / f"alone_{Path(path).stem}"
        assert main(["render", path, "--all-times", "-o", str(alone) + "/", "--backend", BACKEND, "-q"]) in (0, 1)
        want, got = _pngs(alone), _pngs(out / Path(path).stem)
        assert want and list(got) == list(want), path
        assert all(np.array_equal(got[n], want[n]) for n in want), path
    assert len(_pngs(out / "ros")) == len(bags[ros])  # one PNG per message time


def test_a_folder_given_to_render_ray_stands_for_its_recordings_and_bags(bags, tmp_path):
    for p in bags:
        (tmp_path / Path(p).name).write_bytes(Path(p).read_bytes())
    _rrd(tmp_path / "cams.rrd")
    (tmp_path / "notes.txt").write_text("not a recording")
    assert F.expand_paths(tmp_path, FLEET_SUFFIXES) == [str(tmp_path / n) for n in
                                                        ("cams.rrd", "fox.mcap", "ros.db3", "ros.mcap")]
    assert F.expand_paths(tmp_path) == [str(tmp_path / "cams.rrd")]  # read_rrd's folders: .rrd files only
    assert F.expand_paths(tmp_path, F.BAG_SUFFIXES) == [str(tmp_path / n) for n in ("fox.mcap", "ros.db3",
                                                                                     "ros.mcap")]


def test_ray_followed_by_a_bag_takes_it_as_a_recording_even_when_missing(ray_local, bags, tmp_path, capsys):
    """`--ray X.mcap`: X.mcap is a recording (named when it does not exist), not a Ray address."""
    ros = next(p for p in bags if p.endswith("ros.mcap"))
    missing = str(tmp_path / "missing.mcap")
    out = tmp_path / "out"
    assert main(["render", "--ray", missing, ros, "--all-times", "-o", str(out), "--backend", BACKEND, "-q"]) == 1
    assert f"{missing}: it does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["ros"] and len(_pngs(out / "ros")) == len(bags[ros])


def test_without_the_mcap_extra_read_mcap_says_which_extra(bags, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mcap" else real(name, *a))
    with pytest.raises(ImportError, match=r"pixelrun\[mcap\] extra \(mcap is not installed\)"):
        pixelrun.data.read_mcap(list(bags))
