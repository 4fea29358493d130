"""Whole processes: exit without flush keeps every row (with pandas installed or not,
after a fork, with a dead writer thread), the exit drain is bounded, SIGKILL leaves a
readable file, PIXELRUN_SAVE to an unwritable path stops with one line.

Every run has a subprocess timeout: a hang fails the test instead of stalling it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest
from sdk_helpers import logged, run_isolated

from pixelrun.engine import chunk as ch
from pixelrun.engine.rrd import read_rrd

N = 57
TIMEOUT = 60

# pyarrow imports pandas on its first pa.array() call when pandas is installed: the
# finding's hang. "not-installed" makes `import pandas` fail as if it were absent;
# "none-in-modules" is the sys.modules["pandas"] = None trick, which pyarrow's compiled
# import does not take for absence (its first pa.array raises instead).
_PANDAS = {
    "installed": "",
    "not-installed": textwrap.dedent("""
        import sys
        class _NoPandas:
            def find_spec(self, name, path=None, target=None):
                if name == "pandas" or name.startswith("pandas."):
                    raise ModuleNotFoundError(f"No module named {name!r}")
        sys.meta_path.insert(0, _NoPandas())
    """),
    "none-in-modules": "import sys; sys.modules['pandas'] = None\n",
}

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


def _env(**extra):
    env = dict(os.environ)
    for k in ("PIXELRUN_SAVE", "PIXELRUN_STRICT", "PIXELRUN_EXIT_TIMEOUT"):
        env.pop(k, None)
    env.update(extra)
    return env


def _run(code: str, *args, **env) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter, in its own process group; a hang fails after
    TIMEOUT s, and the whole group (a forked child too) is killed."""
    return run_isolated(code, *args, env=_env(**env), timeout=TIMEOUT)


def _rows(path) -> list[tuple[int, bytes]]:
    rec = read_rrd(path)
    assert rec.problems == [] and rec.has_footer, rec.problems
    return sorted((int(c.timelines["i"].values[r]), bytes(ch.buffer_row(c.components[ch.IMAGE_BUFFER], r)))
                  for c in rec.chunks if ch.IMAGE_BUFFER in c.components for r in range(c.num_rows))


@pytest.mark.parametrize("pandas", sorted(_PANDAS))
def test_exit_without_flush_keeps_all_rows(tmp_path, pandas):
    if pandas == "installed":  # the case of the finding must really be the case tested
        assert importlib.util.find_spec("pandas") is not None, "pandas is a test dependency"
    path = tmp_path / "exit.rrd"
    proc = _run(_PANDAS[pandas] + _EXIT_SCRIPT, path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    assert _rows(path) == [(i, bytes([i]) * 6) for i in range(N)]


def test_exit_with_six_images_as_in_the_finding(tmp_path):
    # The report's reproduction: six small images, no flush, pandas installed.
    code = textwrap.dedent("""
        import sys, numpy as np, pixelrun as rr
        rr.init("six")
        rr.save(sys.argv[1])
        for i in range(6):
            rr.set_time("i", sequence=i)
            rr.log("cam", rr.Image(np.full((4, 4, 3), i, np.uint8)))
    """)
    proc = _run(code, tmp_path / "six.rrd")
    assert proc.returncode == 0, proc.stderr
    assert [i for i, _ in _rows(tmp_path / "six.rrd")] == list(range(6))


@pytest.mark.parametrize("pandas", sorted(_PANDAS))
def test_fork_child_exits_and_each_process_keeps_its_rows(tmp_path, pandas):
    code = _PANDAS[pandas] + textwrap.dedent("""
        import os, sys, numpy as np, pixelrun as rr
        rr.init("fork_test", recording_id="f")
        rr.save(sys.argv[1])
        def log(i):
            rr.set_time("i", sequence=i)
            rr.log("e", rr.Image(np.full((2, 3), i % 256, np.uint8)))
        for i in range(10):          # queued, not flushed, when the fork happens
            log(i)
        pid = os.fork()
        if pid == 0:
            for i in range(100, 110):
                log(i)
            sys.exit(0)              # the child ends like a script: its atexit drain runs
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        for i in range(10, 20):
            log(i)
        print(os.waitstatus_to_exitcode(status), flush=True)
    """)
    path = tmp_path / "fork.rrd"
    proc = _run(code, path)
    assert proc.returncode == 0, proc.stderr
    child_pid, child_rc = map(int, proc.stdout.split())
    assert child_rc == 0
    assert [i for i, _ in _rows(path)] == list(range(20))  # the parent's rows, each once
    child_file = tmp_path / f"fork.pid{child_pid}.rrd"
    assert [i for i, _ in _rows(child_file)] == list(range(100, 110))  # the child's own
    assert f"process {child_pid} was forked" in proc.stderr and str(child_file) in proc.stderr


def test_fork_child_that_logs_nothing_creates_nothing(tmp_path):
    code = textwrap.dedent("""
        import os, sys, numpy as np, pixelrun as rr
        rr.init("fork_quiet")
        rr.save(sys.argv[1])
        rr.log("e", rr.Image(np.zeros((2, 2), np.uint8)))
        pid = os.fork()
        if pid == 0:
            sys.exit(0)
        os.waitpid(pid, 0)
    """)
    proc = _run(code, tmp_path / "q.rrd")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.rrd"]


def test_dead_writer_thread_rows_are_written_by_the_exit_drain(tmp_path):
    # A BaseException kills the batcher thread while it writes the first chunk: that
    # chunk's rows are counted as lost, every later row is written by the caller.
    code = textwrap.dedent("""
        import sys, numpy as np, pixelrun as rr
        class Boom(BaseException):
            pass
        rec = rr.init("dead", recording_id="d")
        rr.save(sys.argv[1])
        real = rec._batcher._emit_fn
        def emit(chunk, first=[True]):
            if first.pop() if first else False:
                raise Boom("simulated death of the writer thread")
            real(chunk)
        rec._batcher._emit_fn = emit
        rr.set_time("i", sequence=0)
        rr.log("e", rr.Image(np.full((2, 3), 0, np.uint8)))
        rr.flush()                      # the thread dies here; the flush still returns
        assert not rec._batcher.thread_alive()
        for i in range(1, 30):
            rr.set_time("i", sequence=i)
            rr.log("e", rr.Image(np.full((2, 3), i, np.uint8)))
        print(rec.dropped_rows, flush=True)
    """)
    proc = _run(code, tmp_path / "dead.rrd")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1"]
    assert [i for i, _ in _rows(tmp_path / "dead.rrd")] == list(range(1, 30))
    assert "background writer" in proc.stderr and "Boom: simulated death" in proc.stderr
    assert re.search(r"1 row\(s\) in 1 chunk\(s\).* were not delivered", proc.stderr), proc.stderr


def test_exit_drain_is_bounded_and_names_what_it_could_not_write(tmp_path):
    # A sink that never returns: the exit waits PIXELRUN_EXIT_TIMEOUT, then reports.
    code = textwrap.dedent("""
        import threading, numpy as np, pixelrun as rr
        from pixelrun.sinks import Sink
        class Stuck(Sink):
            place = "stuck sink"
            def add_store(self, store): pass
            def write_chunk(self, store, chunk, batch, enc): threading.Event().wait()
        rec = rr.init("stuck")
        rec._set_sinks([Stuck()])
        for i in range(25):
            rr.set_time("i", sequence=i)
            rr.log("e", rr.Image(np.zeros((2, 3), np.uint8)))
        print("logged", flush=True)
    """)
    proc = _run(code, PIXELRUN_EXIT_TIMEOUT="1")
    assert proc.returncode == 0 and proc.stdout.split() == ["logged"], proc.stderr
    # all 25 rows were in one chunk being written (or still queued) when time ran out
    assert re.search(r"DataLossWarning: pixelrun: recording 'stuck': 25 row\(s\)", proc.stderr), proc.stderr
    assert "not written within the close timeout (PIXELRUN_EXIT_TIMEOUT)" in proc.stderr


def test_pixelrun_save_unwritable_stops_with_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    target = blocker / "out.rrd"  # its folder is a file: cannot be created
    proc = _run("import pixelrun as rr\nrr.init('x')\nprint('ran on')", PIXELRUN_SAVE=str(target))
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("pixelrun: PIXELRUN_SAVE: cannot write the recording to ")
    assert str(target) in lines[0] and "stopping" in lines[0]


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
    seqs = sorted(int(v) for c in logged(rec.chunks) for v in c.timelines["i"].values)
    assert seqs[:40] == list(range(40))  # everything flushed before the kill is there
    assert seqs == list(range(len(seqs)))  # and nothing is duplicated or missing before the cut
    # Cut the file inside its last message as well: still every complete one, reported.
    cut = read_rrd(data[:-7])
    assert len(cut.chunks) >= len(rec.chunks) - 1
    assert any("truncated" in p for p in cut.problems)
