"""`pixelrun info`: what it reports for the Rerun fixtures (counts known from the script)."""

from __future__ import annotations

import json
from pathlib import Path

from pixelrun.engine.cli.main import main

FIXTURES = Path(__file__).parent / "fixtures"

# What make_rerun_fixtures.py logs into rerun_logged.rrd, counted by hand:
# /cam 5 frames; /seed3 5 column rows + 1 static format; /overwritten 1 temporal + 2
# static; /layered 2 rows; /static_rgb, /points, /text and Rerun's /__properties 1 each.
ROWS = {"/cam": (5, 0), "/seed3": (6, 1), "/overwritten": (3, 2), "/layered": (2, 0),
        "/static_rgb": (1, 1), "/points": (1, 0), "/text": (1, 0), "/__properties": (1, 1)}


def test_info_json_counts_and_ranges(capsys):
    assert main(["info", "--json", str(FIXTURES / "rerun_logged.rrd")]) == 0
    s = json.loads(capsys.readouterr().out)
    assert {e["entity"]: (e["rows"], e["static_rows"]) for e in s["entities"]} == ROWS
    assert s["rows"] == sum(r for r, _ in ROWS.values())
    tl = {t["timeline"]: (t["kind"], t["min"], t["max"]) for t in s["timelines"]}
    assert tl["step"] == ("sequence", 0, 14)
    assert tl["clock"] == ("duration", 0, 2_500_000_000)
    assert tl["wall"] == ("timestamp", 1_700_000_000 * 10**9, 1_700_000_005 * 10**9)
    assert tl["log_time"][0] == "timestamp"
    ents = {e["entity"]: e for e in s["entities"]}
    assert ents["/cam"]["image"] == "L/U16 4x3"
    assert ents["/overwritten"]["image"] == "RGBA/U8 2x2"
    assert ents["/points"]["components"] == ["Points2D:positions"]
    assert all(e["bytes"] > 0 for e in s["entities"])
    assert s["recordings"][0]["recording_id"] == "fixture-logged"
    assert s["problems"] == []


def test_info_text(capsys):
    assert main(["info", str(FIXTURES / "rerun_formats.rrd")]) == 0
    out = capsys.readouterr().out
    assert "| step     | sequence | #0   | #31 | 32   |" in out
    assert "/formats" in out and "Image:buffer, Image:draw_order, Image:format, Image:opacity" in out


def test_info_truncated_file_exit_1_still_shows(tmp_path, capsys):
    data = (FIXTURES / "rerun_logged.rrd").read_bytes()
    cut = tmp_path / "cut.rrd"
    cut.write_bytes(data[: len(data) // 2])
    assert main(["info", str(cut)]) == 1
    captured = capsys.readouterr()
    assert "truncated" in captured.err and "cut.rrd" in captured.err
    assert "| entity" in captured.out


def test_info_missing_file(capsys):
    assert main(["info", str(FIXTURES / "missing.rrd")]) == 1
    assert "cannot read" in capsys.readouterr().err
