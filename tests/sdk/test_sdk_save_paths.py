"""Output paths: unwritable paths give a clear error, two recordings saved to one path
both survive, PIXELRUN_SAVE overriding rr.save says so."""

from __future__ import annotations

import traceback
import warnings

import numpy as np
import pytest

import pixelrun as rr
from pixelrun.engine import chunk as ch
from pixelrun.engine.rrd import read_rrd


def _log(rec, entity, values):
    for i in values:
        rec.set_time("i", sequence=i)
        rec.log(entity, rr.Image(np.full((2, 3), i, np.uint8)))


@pytest.fixture(autouse=True)
def _no_capture(monkeypatch):
    monkeypatch.delenv("PIXELRUN_SAVE", raising=False)


def test_save_to_an_unwritable_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    rec = rr.RecordingStream("bad")
    with pytest.raises(rr.PixelrunSaveError) as e:
        rec.save(blocker / "sub" / "out.rrd")
    msg = str(e.value)
    assert msg == (f"cannot write the recording to {str(blocker / 'sub' / 'out.rrd')!r}: "
                   f"{str(blocker)!r} is not a folder")
    assert isinstance(e.value, OSError)
    # short: the user's call and the SDK's save, nothing from inside the sinks
    frames = traceback.extract_tb(e.value.__traceback__)
    assert [f.name for f in frames][-1] == "save" and all("sinks.py" not in f.filename for f in frames)
    with pytest.raises(rr.PixelrunSaveError, match="it is a folder"):
        rec.save(tmp_path)
    # the recording goes on (buffered) and can still be saved elsewhere
    _log(rec, "e", range(3))
    rec.save(tmp_path / "good.rrd")
    rec.close()
    assert sum(c.num_rows for c in read_rrd(tmp_path / "good.rrd").chunks if c.entity_path == "/e") == 3


def test_two_recordings_saved_to_one_path_both_survive(tmp_path):
    path = tmp_path / "same.rrd"
    a = rr.init("first", recording_id="rec-a")
    rr.save(path)
    _log(a, "a", range(0, 5))
    b = rr.init("second", recording_id="rec-b")
    with pytest.warns(rr.PixelrunWarning, match=r"already being written by recording 'first' \(id rec-a\)"):
        rr.save(path)
    _log(b, "b", range(5, 9))
    _log(a, "a", range(9, 12))  # the first recording keeps writing
    a.close()
    _log(b, "b", range(12, 14))
    b.close()
    rr.set_global_data_recording(None)
    got = read_rrd(path)
    assert got.problems == [] and got.has_footer
    assert sorted(i.recording_id for i in got.store_infos) == ["rec-a", "rec-b"]
    rows = {}
    for c in got.chunks:
        if ch.IMAGE_BUFFER in c.components:
            rows.setdefault(c.entity_path, []).extend(int(v) for v in c.timelines["i"].values)
    assert sorted(rows["/a"]) == [0, 1, 2, 3, 4, 9, 10, 11]
    assert sorted(rows["/b"]) == [5, 6, 7, 8, 12, 13]


def test_saving_again_to_the_same_path_loses_nothing(tmp_path):
    path = tmp_path / "again.rrd"
    rec = rr.RecordingStream("again")
    rec.save(path)
    _log(rec, "e", range(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same recording: nothing to warn about
        rec.save(path)
    _log(rec, "e", range(4, 8))
    rec.close()
    got = read_rrd(path)
    assert got.problems == [] and got.has_footer
    steps = sorted(int(v) for c in got.chunks if c.entity_path == "/e" for v in c.timelines["i"].values)
    assert steps == list(range(8))


def test_pixelrun_save_overriding_rr_save_names_both_paths(tmp_path, monkeypatch):
    cap, mine = tmp_path / "cap.rrd", tmp_path / "mine.rrd"
    monkeypatch.setenv("PIXELRUN_SAVE", str(cap))
    rec = rr.RecordingStream("script")
    with pytest.warns(rr.PixelrunWarning) as w:
        rec.save(mine)
    msg = str(w[0].message)
    assert f"PIXELRUN_SAVE={str(cap)!r}" in msg and f"rr.save({str(mine)!r}) is ignored" in msg
    _log(rec, "e", range(2))
    rec.close()
    assert not mine.exists()
    assert sum(c.num_rows for c in read_rrd(cap).chunks if c.entity_path == "/e") == 2
