"""Helpers shared by the SDK tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from pixelrun.sinks import Sink


class GateSink(Sink):
    """A sink whose every write blocks until `gate` is set (30 s at most), to observe
    back-pressure and bounded flush/close; `rows` counts what it wrote."""

    place = "gate sink"

    def __init__(self):
        self.gate = threading.Event()
        self.rows = 0

    def add_store(self, store):
        pass

    def write_chunk(self, store, chunk, batch, enc):
        self.gate.wait(30)
        self.rows += chunk.num_rows


# Rerun writes a recording's properties (RecordingInfo: start time, name) as static rows
# of this entity ahead of its data; pixelrun does too (rr.init / RecordingStream).
PROPERTIES = "/__properties"


def logged(chunks) -> list:
    """The chunks a test logged itself: all but the recording's /__properties."""
    return [c for c in chunks if c.entity_path != PROPERTIES]


def run_isolated(code: str, *args, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter, in its own process group; a hang fails the
    test after `timeout` s, and the whole group (forked children, relays) is killed."""

    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"the process did not exit within {timeout} s (it hangs)\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
