"""Rerun 0.41's SDK surface with Rerun's semantics: the behaviours its own unit tests
(rerun_py/tests/unit: test_file_sink, test_multi_stream, test_batcher_config) check,
written here against pixelrun."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from datetime import timedelta

import numpy as np
import pytest
from grpc_helpers import wait_until
from sdk_helpers import PROPERTIES, logged

import pixelrun as rr
from pixelrun.engine import rrd
from pixelrun.engine.api import render
from pixelrun.engine.viewer.server import ViewerServer

APP = "pixelrun_parity"


def _has_stream_footer(path) -> bool:
    data = open(path, "rb").read()
    return len(data) >= 12 and data[-12:-8] == b"RRF2" and data[-8:-4] == b"FOOT"


def _log_some(rec: rr.RecordingStream, n: int = 10) -> None:
    for i in range(n):
        rec.set_time("i", sequence=i)
        rec.log("img", rr.Image(np.full((2, 2, 3), i, np.uint8)))


@pytest.fixture(autouse=True)
def _no_global():
    yield
    rr.set_strict_mode(None)  # script_setup turns strict mode on for the process, as Rerun's does
    old = rr.set_global_data_recording(None)
    if old is not None:
        old.close()


# ------------------------------------------------------------------ file sinks


def test_save_writes_a_footer_by_default(tmp_path):
    rec = rr.RecordingStream(APP)
    rec.save(tmp_path / "a.rrd")
    _log_some(rec)
    rec.disconnect()
    assert _has_stream_footer(tmp_path / "a.rrd")


def test_save_write_footer_false_leaves_it_out_and_stays_readable(tmp_path):
    rec = rr.RecordingStream(APP)
    rec.save(tmp_path / "b.rrd", write_footer=False)
    _log_some(rec)
    rec.disconnect()
    assert not _has_stream_footer(tmp_path / "b.rrd")
    got = rrd.read_rrd(tmp_path / "b.rrd")
    assert sum(c.num_rows for c in logged(got.chunks)) == 10 and not got.has_footer


def test_module_save_write_footer_false(tmp_path):
    rr.init(APP + "_module")
    rr.save(tmp_path / "m.rrd", write_footer=False)
    rr.log("img", rr.Image(np.zeros((2, 2, 3), np.uint8)))
    rr.disconnect()
    assert not _has_stream_footer(tmp_path / "m.rrd")


@pytest.mark.parametrize("footer", [True, False])
def test_file_sink_class_through_set_sinks(tmp_path, footer):
    path = tmp_path / "fs.rrd"
    rec = rr.RecordingStream(APP)
    rec.set_sinks(rr.FileSink(path) if footer else rr.FileSink(path, write_footer=False))
    _log_some(rec)
    rec.disconnect()
    assert _has_stream_footer(path) == footer


def test_set_sinks_writes_a_file_and_streams_at_once(tmp_path):
    got = []
    srv = ViewerServer(lambda chunks, peer: got.extend(chunks), port=0).start()
    try:
        rec = rr.RecordingStream(APP, recording_id="both")
        rr.set_sinks(rr.FileSink(tmp_path / "both.rrd"), rr.GrpcSink(f"rerun+http://127.0.0.1:{srv.port}/proxy"),
                     recording=rec)
        _log_some(rec, 5)
        rec.close()
        assert rec.dropped_rows == 0
        assert wait_until(lambda: sum(c.num_rows for c in logged(got)) == 5)
        saved = rrd.read_rrd(tmp_path / "both.rrd")
        assert sum(c.num_rows for c in logged(saved.chunks)) == 5 and saved.has_footer
    finally:
        srv.stop()


def test_set_sinks_refuses_what_is_not_a_sink():
    rec = rr.RecordingStream(APP)
    with pytest.raises(TypeError, match="rr.FileSink, rr.GrpcSink"):
        rec.set_sinks("out.rrd")
    rec.close()


def test_grpc_sink_with_a_bad_url_raises_at_construction():
    with pytest.raises(ValueError, match="unsupported URL scheme"):
        rr.GrpcSink("ftp://nowhere/proxy")


# ------------------------------------------------------------- recording ids


def test_init_twice_keeps_the_id_default_and_custom():
    rr.init("parity_app_id")
    first = rr.get_recording_id()
    rr.init("parity_app_id")
    assert rr.get_recording_id() == first
    rr.init("parity_app_id", recording_id="custom")
    rr.init("parity_app_id", recording_id="custom")
    assert rr.get_recording_id() == "custom"
    assert rr.get_global_data_recording().get_recording_id() == "custom"
    rr.init("another_app")
    assert rr.get_recording_id() != first


def _is_open(path) -> bool:
    real = os.path.realpath(path)
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.path.realpath(os.readlink(f"/proc/self/fd/{fd}")) == real:
                return True
        except OSError:
            continue
    return False


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_init_again_closes_the_previous_recordings_file(tmp_path):
    path = tmp_path / "reinit.rrd"
    rr.init("parity_reinit")
    rr.save(path)
    rr.log("img", rr.Image(np.zeros((2, 2, 3), np.uint8)))
    assert _is_open(path)
    rr.init("parity_reinit")
    assert not _is_open(path)
    assert _has_stream_footer(path)  # closed properly, with what was logged
    assert sum(c.num_rows for c in logged(rrd.read_rrd(path).chunks)) == 1


def test_isolated_streams_write_their_own_files(tmp_path):
    rec1 = rr.RecordingStream("parity_multi", recording_id="rec1")
    rec1.log("data1", rr.Image(np.zeros((2, 2, 3), np.uint8)))
    rec1.save(tmp_path / "rec1.rrd")
    rec2 = rr.RecordingStream("parity_multi", recording_id="rec2")
    rec2.log("data2", rr.Image(np.ones((2, 2, 3), np.uint8)))
    rec2.save(tmp_path / "rec2.rrd")
    rec1.close()
    rec2.close()
    for rid, entity in (("rec1", "/data1"), ("rec2", "/data2")):
        got = rrd.read_rrd(tmp_path / f"{rid}.rrd")
        assert [s.recording_id for s in got.store_infos] == [rid]
        assert [c.entity_path for c in got.chunks] == [PROPERTIES, entity]  # as Rerun: properties first


def test_get_recording_id_module_and_stream():
    assert rr.get_recording_id() is None
    rec = rr.RecordingStream(APP, recording_id="given")
    assert rec.get_recording_id() == "given" and rr.get_recording_id(rec) == "given"
    rec.close()


# -------------------------------------------------------------- batcher config


def test_batcher_config_getters_and_setters():
    config = rr.ChunkBatcherConfig(flush_tick=0.12, flush_num_bytes=123, flush_num_rows=456,
                                   chunk_max_rows_if_unsorted=789)
    assert config.flush_tick == timedelta(seconds=0.12)
    assert (config.flush_num_bytes, config.flush_num_rows, config.chunk_max_rows_if_unsorted) == (123, 456, 789)
    config.flush_tick = 1
    assert config.flush_tick == timedelta(seconds=1)
    config.flush_tick = 2.1
    assert config.flush_tick == timedelta(seconds=2.1)
    config.flush_tick = timedelta(seconds=3.5)
    assert config.flush_tick == timedelta(seconds=3.5)
    config.flush_num_bytes, config.flush_num_rows, config.chunk_max_rows_if_unsorted = 321, 654, 987
    assert (config.flush_num_bytes, config.flush_num_rows, config.chunk_max_rows_if_unsorted) == (321, 654, 987)
    with pytest.raises(TypeError, match="flush_tick"):
        config.flush_tick = "soon"


def test_batcher_config_environment_fills_what_is_not_given(monkeypatch):
    monkeypatch.setenv("RERUN_FLUSH_TICK_SECS", "42")
    monkeypatch.setenv("RERUN_FLUSH_NUM_ROWS", "666")
    monkeypatch.setenv("RERUN_CHUNK_MAX_ROWS_IF_UNSORTED", "17")
    config = rr.ChunkBatcherConfig(flush_num_bytes=123)
    assert config.flush_tick == timedelta(seconds=42)
    assert (config.flush_num_bytes, config.flush_num_rows, config.chunk_max_rows_if_unsorted) == (123, 666, 17)
    # and a recording made without a config follows them too
    rec = rr.RecordingStream(APP)
    assert rec.config.flush_tick == 42 and rec.config.flush_num_rows == 666
    rec.close()


def _size_after_log(rec, path) -> int:
    rec.log("img", rr.Image(np.zeros((2, 2, 3), np.uint8)))
    time.sleep(0.1)
    return os.stat(path).st_size


def test_flush_always_writes_every_row_at_once(tmp_path):
    path = tmp_path / "always.rrd"
    rec = rr.RecordingStream(APP, batcher_config=rr.ChunkBatcherConfig.ALWAYS())
    rec.save(path)
    sizes = [_size_after_log(rec, path) for _ in range(2)]
    assert wait_until(lambda: os.stat(path).st_size > sizes[0], 5)
    rec.close()


def test_flush_never_waits_for_an_explicit_flush(tmp_path):
    path = tmp_path / "never.rrd"
    rec = rr.RecordingStream(APP, batcher_config=rr.ChunkBatcherConfig.NEVER())
    rec.save(path)
    sizes = [_size_after_log(rec, path) for _ in range(3)]
    assert sizes[0] == sizes[1] == sizes[2]
    rec.flush()
    assert os.stat(path).st_size > sizes[2]
    rec.close()


def test_flush_num_rows_custom(tmp_path):
    path = tmp_path / "three.rrd"
    config = rr.ChunkBatcherConfig.NEVER()
    config.flush_num_rows = 3
    rec = rr.RecordingStream(APP, batcher_config=config)
    rec.save(path)
    s1, s2 = _size_after_log(rec, path), _size_after_log(rec, path)
    assert s1 == s2
    rec.log("img", rr.Image(np.zeros((2, 2, 3), np.uint8)))
    assert wait_until(lambda: os.stat(path).st_size > s2, 5)
    rec.close()


# ------------------------------------------------------------- script helpers


def test_script_helpers_save_and_close(tmp_path):
    parser = argparse.ArgumentParser()
    rr.script_add_args(parser)
    args = parser.parse_args(["--save", str(tmp_path / "script.rrd")])
    rec = rr.script_setup(args, "parity_script")
    assert rr.get_global_data_recording() is rec and rr.is_strict()
    rr.log("img", rr.Image(np.zeros((2, 2, 3), np.uint8)))
    rr.script_teardown(args)
    rr.set_strict_mode(None)
    assert _has_stream_footer(tmp_path / "script.rrd")
    assert [c.entity_path for c in rrd.read_rrd(tmp_path / "script.rrd").chunks] == [PROPERTIES, "/img"]


def test_script_helpers_stdout_is_named_not_silently_ignored(tmp_path):
    parser = argparse.ArgumentParser()
    rr.script_add_args(parser)
    args = parser.parse_args(["--stdout", "--headless"])
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        rr.script_setup(args, "parity_stdout")
    rr.set_strict_mode(None)
    assert any("--stdout" in str(w.message) for w in got)


# ---------------------------------------------------------------------- images

RNG = np.random.default_rng(12345)
GOOD_SHAPES = [(10, 20), (10, 20, 3), (10, 20, 4), (1, 10, 20), (1, 10, 20, 3), (1, 10, 20, 4), (10, 20, 1),
               (10, 20, 3, 1), (10, 20, 4, 1)]
BAD_SHAPES = [(10,), (10, 20, 2), (10, 20, 5), (10, 20, 3, 2)]


def test_strict_image_raises_at_construction_like_rerun():
    rr.set_strict_mode(True)
    for shape in GOOD_SHAPES:
        rr.Image(RNG.uniform(0.0, 1.0, shape))
    for shape in BAD_SHAPES:
        with pytest.raises(ValueError):
            rr.Image(RNG.uniform(0.0, 1.0, shape))
    with pytest.raises(ValueError, match="bool"):
        rr.Image(np.zeros((4, 4), bool))


def test_non_strict_image_reports_at_log_with_the_entity():
    rr.set_strict_mode(False)
    img = rr.Image(np.zeros((10, 20, 2), np.uint8))  # no raise
    rec = rr.RecordingStream(APP)
    rec.memory_recording()
    with pytest.warns(rr.PixelrunWarning, match="/two_channels: "):
        rec.log("two_channels", img)
    rec.close()


def _rerun_image_arrays(shape, dtype) -> dict:
    """What rerun-sdk 0.41 itself makes of the same image: its batches' Arrow arrays."""
    import json
    import subprocess

    from grpc_helpers import RERUN_PY

    code = ("import json, sys, numpy as np, rerun as rr; "
            "img = rr.Image(np.arange(np.prod(sys.argv[1:-1], dtype=int)).astype(sys.argv[-1])"
            ".reshape([int(a) for a in sys.argv[1:-1]])); "
            "print(json.dumps({'format': img.format.as_arrow_array().to_pylist(), "
            "'buffer': [list(b) for b in img.buffer.as_arrow_array().to_pylist()], "
            "'buffer_type': str(img.buffer.as_arrow_array().type)}))")
    out = subprocess.run([str(RERUN_PY), "-c", code, *map(str, shape), dtype], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, RERUN_TELEMETRY_ENABLED="false"))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("shape, dtype", [((3, 4, 3), "uint8"), ((2, 5), "uint16"), ((2, 3, 4), "float32")])
def test_image_buffer_and_format_are_batches_equal_to_reruns(shape, dtype):
    from grpc_helpers import RERUN_PY

    if not RERUN_PY.exists():
        pytest.skip("real rerun-sdk 0.41 not installed in .venv-rerun")
    pixels = np.arange(np.prod(shape)).astype(dtype).reshape(shape)
    img = rr.Image(pixels)
    theirs = _rerun_image_arrays(shape, dtype)
    assert img.format.as_arrow_array().to_pylist() == theirs["format"]
    assert [list(b) for b in img.buffer.as_arrow_array().to_pylist()] == theirs["buffer"]
    assert "uint8" in str(img.buffer.as_arrow_array().type) and len(img.buffer) == 1
    # batches compare by value, with each other and with Arrow arrays
    assert img.buffer == rr.Image(pixels.copy()).buffer
    assert img.format == img.format.as_arrow_array()
    assert img.buffer != rr.Image(pixels + 1).buffer


# ------------------------------------------------------ recording properties


def _property_columns(chunks) -> dict:
    """column -> (Arrow type, component metadata, values) of the /__properties chunks."""
    out = {}
    for c in chunks:
        if c.entity_path == PROPERTIES:
            assert not c.timelines and c.num_rows == 1  # static, one row each, as Rerun writes them
            for name, col in c.components.items():
                out[name] = (col.type, c.component_meta.get(name), col.to_pylist())
    return out


def test_init_sends_the_start_time_first_as_rerun_does(tmp_path):
    before = time.time_ns()
    rr.init("parity_props", recording_id="props")
    after = time.time_ns()
    rr.save(tmp_path / "p.rrd")
    rr.send_recording_name("my name")
    rr.log("img", rr.Image(np.zeros((2, 2, 3), np.uint8)))
    rr.disconnect()
    got = rrd.read_rrd(tmp_path / "p.rrd")
    assert [c.entity_path for c in got.chunks] == [PROPERTIES, PROPERTIES, "/img"]
    props = _property_columns(got.chunks)
    assert set(props) == {"RecordingInfo:start_time", "RecordingInfo:name"}
    start_type, start_meta, start = props["RecordingInfo:start_time"]
    assert str(start_type) == "list<item: int64>" and before <= start[0][0] <= after
    assert start_meta["rerun:component_type"] == "rerun.components.Timestamp"
    assert start_meta["rerun:archetype"] == "rerun.archetypes.RecordingInfo"
    assert props["RecordingInfo:name"][2] == [["my name"]]


def test_send_properties_false_sends_none_and_start_time_can_be_set():
    rec = rr.RecordingStream(APP, send_properties=False)
    mem = rec.memory_recording()
    rec.log("img", rr.Image(np.zeros((2, 2, 3), np.uint8)))
    assert PROPERTIES not in {c.entity_path for c in rrd.read_rrd(mem.rrd_bytes()).chunks}
    rec.send_recording_start_time_nanos(123)
    assert _property_columns(rrd.read_rrd(mem.rrd_bytes()).chunks)["RecordingInfo:start_time"][2] == [[123]]
    with pytest.raises(TypeError, match="nanoseconds"):
        rec.send_recording_start_time_nanos(1.5)
    rec.close()


def test_a_recording_that_never_saved_is_no_data_loss():
    rec = rr.RecordingStream(APP)  # its start time waits in the buffer, then goes nowhere
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.close()
    assert rec.dropped_rows == 0


def test_properties_are_not_reported_as_undrawn(tmp_path):
    rec = rr.RecordingStream(APP)
    rec.save(tmp_path / "p.rrd")
    rec.send_recording_name("n")
    rec.log("img", rr.Image(np.zeros((2, 2, 3), np.uint8)))
    rec.close()
    info = subprocess.run([sys.executable, "-m", "pixelrun.engine.cli.main", "info", str(tmp_path / "p.rrd")],
                          capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stderr
    (line,) = [x for x in info.stdout.splitlines() if PROPERTIES in x]  # listed, as for Rerun's own files
    assert "not drawn" not in info.stdout + info.stderr, info.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "not drawn yet" notice either
        assert render(tmp_path / "p.rrd", backend="numpy").shape == (2, 2, 4)


def test_properties_equal_what_rerun_writes(tmp_path):
    from grpc_helpers import RERUN_PY

    if not RERUN_PY.exists():
        pytest.skip("real rerun-sdk 0.41 not installed in .venv-rerun")
    code = ("import sys, numpy as np, rerun as rr; rr.init('parity_props', recording_id='r'); rr.save(sys.argv[1]); "
            "rr.send_recording_name('my name'); rr.log('img', rr.Image(np.zeros((2, 2, 3), np.uint8)))")
    subprocess.run([str(RERUN_PY), "-c", code, str(tmp_path / "rerun.rrd")], check=True, timeout=120,
                   capture_output=True)
    rec = rr.RecordingStream("parity_props", recording_id="r")
    rec.save(tmp_path / "ours.rrd")
    rec.send_recording_name("my name")
    rec.log("img", rr.Image(np.zeros((2, 2, 3), np.uint8)))
    rec.close()
    theirs = rrd.read_rrd(tmp_path / "rerun.rrd").chunks
    ours = rrd.read_rrd(tmp_path / "ours.rrd").chunks
    assert sorted(c.entity_path for c in ours) == sorted(c.entity_path for c in theirs)  # (batching order differs)
    want = {k: (t, m) for k, (t, m, _) in _property_columns(theirs).items()}
    assert {k: (t, m) for k, (t, m, _) in _property_columns(ours).items()} == want
    assert _property_columns(ours)["RecordingInfo:name"][2] == _property_columns(theirs)["RecordingInfo:name"][2]
