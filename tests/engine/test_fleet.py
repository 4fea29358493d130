"""Fleet scale on Ray (engine/fleet/, `pixelrun.data`, `pixelrun render ... --ray`).

One local Ray (2 CPUs, tests/engine/conftest.py's ray_local) for the session, over
recordings of different formats and sizes generated with the SDK: NV12 and I420 (YUV), a
translucent RGBA image with opacity and a static image, odd-sized RGB with an image entity
under another one, and U16 mono.
Every frame a dataset or `render --ray` gives is checked against the single-process
render of the same recording on the same backend (numpy, the oracle), pixel for pixel.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import pixelrun as rr
import pixelrun.data
from pixelrun.engine import api as R
from pixelrun.engine import open_store, render, rrd
from pixelrun.engine.chunk import IMAGE_BUFFER
from pixelrun.engine.cli.main import main
from pixelrun.engine.cli.render import fleet_names
from pixelrun.engine.fleet import frames as F
from pixelrun.kernels import backends

ray = pytest.importorskip("ray", reason="Ray (the pixelrun[ray] extra) is not installed")
dataset = pytest.importorskip("pixelrun.engine.fleet.dataset")

BACKEND = "numpy"  # the oracle: the same pixels on every machine
TIMELINE = "frame"


# ------------------------------------------------------------------ recordings


def _nv12(path: Path) -> set:
    """NV12 64x48 at 0..2 and I420 32x20 at 1 and 3 -> 5 frames."""
    rec = rr.new_recording("fleet", recording_id="nv12")
    mem = rec.memory_recording()
    rng = np.random.default_rng(1)
    for t in range(4):
        rec.set_time(TIMELINE, sequence=t)
        if t < 3:
            rec.log("cam/nv12", rr.Image(bytes=rng.integers(0, 256, 64 * 48 * 3 // 2, dtype=np.uint8).tobytes(),
                                         width=64, height=48, pixel_format=rr.PixelFormat.NV12))
        if t in (1, 3):
            rec.log("cam/i420", rr.Image(bytes=rng.integers(0, 256, 32 * 20 * 3 // 2, dtype=np.uint8).tobytes(),
                                         width=32, height=20, pixel_format=rr.PixelFormat.I420))
        rec.flush()
    path.write_bytes(mem.rrd_bytes())
    return {("/cam/nv12", t) for t in range(3)} | {("/cam/i420", 1), ("/cam/i420", 3)}


def _rgba(path: Path) -> set:
    """Translucent RGBA 30x20 with opacity 0.5 at 0 and 1, and a static L image -> 3 frames."""
    rec = rr.new_recording("fleet", recording_id="rgba")
    mem = rec.memory_recording()
    rng = np.random.default_rng(2)
    rec.log("static/mono", rr.Image(rng.integers(0, 256, (7, 9), dtype=np.uint8)), static=True)
    for t in range(2):
        rec.set_time(TIMELINE, sequence=t)
        rec.log("cam/rgba", rr.Image(rng.integers(0, 256, (20, 30, 4), dtype=np.uint8), opacity=0.5))
        rec.flush()
    path.write_bytes(mem.rrd_bytes())
    return {("/cam/rgba", 0), ("/cam/rgba", 1), ("/static/mono", None)}


def _mixed(path: Path) -> set:
    """RGB 33x17 with an RGB 12x10 under it, and U16 mono 16x12, at 0..3 -> 12 frames."""
    rec = rr.new_recording("fleet", recording_id="mixed")
    mem = rec.memory_recording()
    rng = np.random.default_rng(3)
    for t in range(4):
        rec.set_time(TIMELINE, sequence=t)
        rec.log("cam", rr.Image(rng.integers(0, 256, (17, 33, 3), dtype=np.uint8)))
        rec.log("cam/small", rr.Image(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)))
        rec.log("depthish", rr.Image(rng.integers(0, 65536, (12, 16), dtype=np.uint16)))
        rec.flush()
    path.write_bytes(mem.rrd_bytes())
    return {(e, t) for e in ("/cam", "/cam/small", "/depthish") for t in range(4)}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """{path: the (entity, time) frames logged in it} for three good recordings."""
    root = tmp_path_factory.mktemp("fleet")
    return {str(root / name): make(root / name)
            for name, make in (("nv12.rrd", _nv12), ("rgba.rrd", _rgba), ("mixed.rrd", _mixed))}


@pytest.fixture(scope="module")
def damaged(fleet, tmp_path_factory):
    """(garbage path, truncated path): a file that is no recording, and mixed.rrd cut short."""
    root = tmp_path_factory.mktemp("damaged")
    garbage = root / "garbage.rrd"
    garbage.write_bytes(b"this is not a recording\n" * 10)
    mixed = next(p for p in fleet if p.endswith("mixed.rrd"))
    data = Path(mixed).read_bytes()
    cut = root / "cut.rrd"
    # cut inside the last chunk that holds an image, so some frames are lost and some kept
    # whatever the chunks' sizes (compression and the footer make a fixed fraction unreliable)
    last = max(m.offset for m in rrd.iter_messages(data)
               if isinstance(m, rrd.ChunkMsg) and IMAGE_BUFFER in m.chunk.components)
    cut.write_bytes(data[: last + 24])
    return str(garbage), str(cut)


def _key(row) -> tuple:
    t = row["time"]
    return (row["path"], row["entity"], None if t is None or (isinstance(t, float) and np.isnan(t)) else int(t))


def _expected(path: str, entity: str, time) -> np.ndarray:
    """The single-process pixels of `entity` alone: `render` of it, or, for an entity
    with images under it (/cam over /cam/small), its own layer composited alone."""
    store = open_store(path)
    if store.entities(under=entity, with_component="Image:buffer") == [entity]:
        return render(store, entity=entity, timeline=TIMELINE, time=time, backend=BACKEND)
    own = [l for l in R.layers_at(store, entity=entity, timeline=TIMELINE, time=time) if l.entity == entity]
    return R.render_layers(own, backend=BACKEND)


def _rows_by_key(ds) -> dict:
    rows = ds.take_all()
    out = {_key(r): r for r in rows}
    assert len(out) == len(rows), "a frame came twice"
    return out


# ------------------------------------------------------------------ the dataset


def test_every_logged_image_is_one_row_with_the_single_process_pixels(ray_local, fleet):
    rows = _rows_by_key(pixelrun.data.read_rrd(list(fleet), backend=BACKEND))
    assert set(rows) == {(p, e, t) for p, frames in fleet.items() for e, t in frames}
    for (path, entity, time), row in rows.items():
        want = _expected(path, entity, time)
        assert row["rgba"].dtype == np.uint8 and row["rgba"].shape == want.shape, (path, entity, time)
        assert (row["width"], row["height"], row["timeline"]) == (want.shape[1], want.shape[0], TIMELINE)
        assert np.array_equal(row["rgba"], want), (path, entity, time)
    # "that entity alone": /cam's row is /cam without /cam/small drawn over it; where
    # /cam/small does not reach, it is what render(entity="/cam") shows
    mixed = next(p for p in fleet if p.endswith("mixed.rrd"))
    cam, small = rows[(mixed, "/cam", 0)]["rgba"], rows[(mixed, "/cam/small", 0)]["rgba"]
    both = render(mixed, entity="/cam", timeline=TIMELINE, time=0, backend=BACKEND)
    assert np.array_equal(both[:10, :12], small) and not np.array_equal(cam[:10, :12], small)
    assert np.array_equal(cam[10:], both[10:]) and np.array_equal(cam[:, 12:], both[:, 12:])


def test_raw_rows_then_the_decode_stage_give_the_same_rows(ray_local, fleet):
    raw = pixelrun.data.read_rrd(list(fleet), decode=False)
    assert tuple(raw.schema().names) == F.RAW_COLUMNS
    raw_rows = _rows_by_key(raw)
    for (path, entity, time), row in raw_rows.items():
        layer = next(l for l in R.layers_at(open_store(path), timeline=TIMELINE, time=time, entity=entity)
                     if l.entity == entity)
        assert bytes(row["buffer"]) == layer.buffer.tobytes() and row["width"] == layer.format.width
    decoded = _rows_by_key(pixelrun.data.decode(raw, backend=BACKEND))
    direct = _rows_by_key(pixelrun.data.read_rrd(list(fleet), backend=BACKEND))
    assert set(decoded) == set(direct) == set(raw_rows)
    for key, row in decoded.items():
        assert set(row) == set(F.DECODED_COLUMNS)
        assert np.array_equal(row["rgba"], direct[key]["rgba"]), key
    # decode_batch is an ordinary map_batches function too
    staged = _rows_by_key(raw.map_batches(pixelrun.data.decode_batch, fn_kwargs={"backend": BACKEND},
                                          batch_format="numpy", batch_size=4))
    assert all(np.array_equal(staged[k]["rgba"], direct[k]["rgba"]) for k in direct)


def test_decode_converts_frames_of_one_format_in_one_batch_call(fleet, monkeypatch):
    nv12 = next(p for p in fleet if p.endswith("nv12.rrd"))
    frames = list(F.recording_frames(nv12))
    batch = {k: np.array(v, dtype=object) for k, v in F.raw_table(frames).to_pydict().items()}
    calls = []
    real = backends.convert_batch

    def spy(frames_, fmt, value_range=None, backend="auto"):
        calls.append((len(frames_), fmt.describe()))
        return real(frames_, fmt, value_range=value_range, backend=backend)

    monkeypatch.setattr(backends, "convert_batch", spy)
    out = F.decode_batch(batch, backend=BACKEND)
    assert sorted(calls) == [(2, "I420 32x20"), (3, "NV12 64x48")]  # two formats, two calls, five frames
    for i, fr in enumerate(frames):
        assert np.array_equal(out["rgba"][i], _expected(nv12, fr.entity, fr.time))


def test_read_tasks_split_recordings_and_shards_without_losing_or_repeating_frames(ray_local, fleet, monkeypatch):
    paths = list(fleet)
    source = dataset.RrdDatasource(paths)
    everything = {(p, e, t) for p, frames in fleet.items() for e, t in frames}

    def rows_of(tasks):
        keys = []
        for task in tasks:
            for table in task():
                keys += [_key(r) for r in table.to_pylist()]
        return keys

    two = source.get_read_tasks(2)
    assert len(two) == 2 and sorted(p for t in two for p in t.metadata.input_files) == sorted(paths)
    assert sorted(rows_of(two), key=str) == sorted(everything, key=str)
    monkeypatch.setattr(F, "MIN_SHARD_BYTES", 1)  # these files are tiny: let them be split
    many = source.get_read_tasks(7)
    assert len(many) == 7  # 3 recordings, the largest split until 7 tasks
    keys = rows_of(many)
    assert len(keys) == len(everything) and set(keys) == everything
    # the size estimate is what the raw rows hold, measured, not the bytes on disk
    held = sum(f.layer.buffer.nbytes for p in paths for f in F.recording_frames(p))
    assert 0.5 * held <= source.estimate_inmemory_data_size() <= 2 * held
    assert sum(t.metadata.size_bytes for t in two) == pytest.approx(source.estimate_inmemory_data_size(), rel=0.01)


def test_a_recording_that_cannot_be_read_is_named_and_the_rest_are_read(ray_local, fleet, damaged):
    garbage, cut = damaged
    with pytest.raises(F.RecordingReadError, match="garbage.rrd"):
        pixelrun.data.read_rrd([*fleet, garbage])
    with pytest.warns(F.FleetWarning, match="garbage.rrd"):
        ds = pixelrun.data.read_rrd([*fleet, garbage, cut], backend=BACKEND, on_error="skip")
    rows = _rows_by_key(ds)
    good = {(p, e, t) for p, frames in fleet.items() for e, t in frames}
    assert good <= set(rows) and not any(k[0] == garbage for k in rows)
    # the cut recording gives the frames that are intact: those its store still has
    store = open_store(cut)
    intact = {(cut, e, int(t)) for e in store.entities() for t in store.index_times(e, TIMELINE, "Image:buffer")}
    assert 0 < len(intact) < 12 and set(rows) - good == intact
    for path, entity, time in intact:
        assert np.array_equal(rows[(path, entity, time)]["rgba"], _expected(path, entity, time))


# ------------------------------------------------------------------ render --ray


def _pngs(folder: Path) -> dict:
    return {p.name: np.asarray(PILImage.open(p)) for p in sorted(folder.glob("*.png"))}


def test_render_ray_writes_the_single_process_frames_and_names_the_failed_recording(
        ray_local, fleet, damaged, tmp_path, capsys):
    garbage, cut = damaged
    paths = [*fleet, garbage, cut]
    out = tmp_path / "fleet"
    code = main(["render", *paths, "--all-times", "-o", str(out), "--ray", "--backend", BACKEND, "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "garbage.rrd" in err and "1 recording(s) not rendered" in err
    assert sorted(p.name for p in out.iterdir()) == ["cut", "mixed", "nv12", "rgba"]
    for path in [*fleet, cut]:
        alone = tmp_path / f"alone_{Path(path).stem}"
        assert main(["render", path, "--all-times", "-o", str(alone) + "/", "--backend", BACKEND, "-q"]) == 0
        want, got = _pngs(alone), _pngs(out / Path(path).stem)
        assert want and list(got) == list(want), path
        assert all(np.array_equal(got[n], want[n]) for n in want), path


def test_one_recording_split_over_workers_gives_every_frame_once(ray_local, fleet, tmp_path):
    mixed = next(p for p in fleet if p.endswith("mixed.rrd"))
    out = tmp_path / "out"
    assert main(["render", mixed, "--all-times", "-o", str(out), "--ray", "--ray-workers", "2",
                 "--backend", BACKEND, "-q"]) == 0
    got = _pngs(out / "mixed")
    assert list(got) == [f"{TIMELINE}_{t}.png" for t in range(4)]
    for t in range(4):
        assert np.array_equal(got[f"{TIMELINE}_{t}.png"], render(mixed, timeline=TIMELINE, time=t, backend=BACKEND))


def test_render_ray_video_is_one_video_per_recording_with_the_single_process_frames(ray_local, fleet, tmp_path):
    av = pytest.importorskip("av", reason="PyAV (the pixelrun[video] extra) is not installed")
    out = tmp_path / "videos"
    assert main(["render", *fleet, "--all-times", "-o", str(out), "--ray", "--video", "mkv", "--codec", "ffv1",
                 "--backend", BACKEND, "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["mixed.mkv", "nv12.mkv", "rgba.mkv"]  # no .part left

    def frames(path):
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]

    for path in fleet:
        alone = tmp_path / f"{Path(path).stem}.mkv"
        assert main(["render", path, "--all-times", "-o", str(alone), "--codec", "ffv1", "--backend", BACKEND,
                     "-q"]) == 0
        want, got = frames(alone), frames(out / alone.name)
        assert len(got) == len(want) == len(R.time_points(open_store(path), TIMELINE))
        assert all(np.array_equal(g, w) for g, w in zip(got, want)), path


@pytest.mark.parametrize("argv, said", [
    (["a.rrd", "b.rrd", "--all-times", "-o", "out"], "add --ray"),
    (["a.rrd", "--ray", "-o", "out"], "add --all-times"),
    (["a.rrd", "--ray", "--all-times", "-o", "out.png"], "-o is a folder"),
    (["a.rrd", "--ray", "--all-times", "-o", "out", "--crf", "20"], "--video"),
    (["a.rrd", "--ray", "--all-times", "-o", "out", "--ray-workers", "0"], "at least 1"),
])
def test_ray_arguments_are_checked_before_any_work(argv, said, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["render", *argv]) == 1
    assert said in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_fleet_names_are_safe_and_distinct(tmp_path):
    a, b = tmp_path / "x" / "run 1.rrd", tmp_path / "y" / "run 1.rrd"
    names = fleet_names([str(a), str(b), str(tmp_path / "ok.rrd")])
    assert names[str(tmp_path / "ok.rrd")] == "ok"
    assert len(set(names.values())) == 3
    assert all("/" not in n and " " not in n and not n.startswith(".") for n in names.values())


def test_entities_and_timeline_choose_the_frames(fleet):
    mixed = next(p for p in fleet if p.endswith("mixed.rrd"))
    assert {f.entity for f in F.recording_frames(mixed, entities=["cam"])} == {"/cam", "/cam/small"}
    assert len(list(F.recording_frames(mixed, entities=["cam/small"], timeline=TIMELINE))) == 4
    with pytest.warns(F.FleetWarning, match=r"mixed.rrd: no timeline 'elsewhere' \(it has: .*frame"):
        assert list(F.recording_frames(mixed, timeline="elsewhere")) == []


def test_folders_expand_to_their_recordings(fleet, tmp_path):
    for p in fleet:
        shutil.copy(p, tmp_path)
    (tmp_path / "notes.txt").write_text("not a recording")
    assert F.expand_paths(tmp_path) == sorted(str(tmp_path / Path(p).name) for p in fleet)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        good, bad = F.check_recordings([*F.expand_paths(tmp_path), str(tmp_path / "missing.rrd")])
    assert len(good) == 3 and bad == [f"{tmp_path / 'missing.rrd'}: it does not exist"]
