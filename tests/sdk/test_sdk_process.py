"""Whole processes: exit without flush keeps every row; SIGKILL leaves a readable file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from pixelrun.engine import chunk as ch
from pixelrun.engine.rrd import read_rrd

N = 57

_EXIT_SCRIPT = textwrap.dedent(f"""
    import numpy as np, pixelrun as rr
    rr.init("exit_test", recording_id="x")
    rr.save(__import__("sys").argv[1])
    for i in range({N}):
        rr.set_time("i", sequence=i)
        rr.log("e", rr.Image(np.full((2, 3), i, np.uint8)))
    # no flush(): interpreter exit must drain the batcher and write the footer
""")

_KILL_SCRIPT = textwrap.dedent("""
    import sys, time, numpy as np, pixelrun as rr
    rr.init("kill_test", recording_id="k")
    rr.save(sys.argv[1])
    i = 0
    while True:
        rr.set_time("i", sequence=i)
        rr.log("e", rr.Image(np.full((64, 64), i % 256, np.uint8)))
        i += 1
        if i == 40:
            rr.flush()
            print("flushed", flush=True)
""")


def _env():
    env = dict(os.environ)
    for k in ("PIXELRUN_SAVE", "PIXELRUN_STRICT"):
        env.pop(k, None)
    return env


def test_exit_without_flush_keeps_all_rows(tmp_path):
    path = tmp_path / "exit.rrd"
    subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, str(path)], check=True, timeout=120, env=_env())
    rec = read_rrd(path)
    assert rec.problems == [] and rec.has_footer
    rows = [(int(c.timelines["i"].values[r]), bytes(ch.buffer_row(c.components[ch.IMAGE_BUFFER], r)))
            for c in rec.chunks for r in range(c.num_rows)]
    assert sorted(rows) == [(i, bytes([i]) * 6) for i in range(N)]


def test_sigkill_leaves_every_complete_message_readable(tmp_path):
    path = tmp_path / "killed.rrd"
    env = _env()
    env["PIXELRUN_FLUSH_TICK_SECS"] = "0.001"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(path)], stdout=subprocess.PIPE,
                            env=env, text=True)
    try:
        assert proc.stdout.readline().strip() == "flushed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    data = path.read_bytes()
    rec = read_rrd(data)  # must not raise
    assert not rec.has_footer
    assert rec.problems and any("truncated" in p or "no end-of-stream footer" in p for p in rec.problems)
    seqs = sorted(int(v) for c in rec.chunks for v in c.timelines["i"].values)
    assert seqs[:40] == list(range(40))  # everything flushed before the kill is there
    assert seqs == list(range(len(seqs)))  # and nothing is duplicated or missing before the cut
    # Cut the file inside its last message as well: still every complete one, reported.
    cut = read_rrd(data[:-7])
    assert len(cut.chunks) >= len(rec.chunks) - 1
    assert any("truncated" in p for p in cut.problems)
