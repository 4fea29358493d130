"""Shared by the gRPC tests: real Rerun 0.41 as a server, free ports, polling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RERUN_BIN = ROOT / ".venv-rerun" / "bin" / "rerun"
RERUN_PY = ROOT / ".venv-rerun" / "bin" / "python"



def start_rerun(args: list[str], **popen_kwargs) -> subprocess.Popen:
    """``.venv-rerun/bin/rerun ARGS`` in a process group of its own. That `rerun` is a
    Python launcher whose child is the real binary: killing the launcher alone would
    leave the binary running (and listening) after the test; `kill_rerun` ends both."""
    env = dict(os.environ, RERUN_TELEMETRY_ENABLED="false")
    return subprocess.Popen([str(RERUN_BIN), *args], env=env, start_new_session=True, **popen_kwargs)


def kill_rerun(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGKILL to `proc`'s whole process group (the launcher and the binary), then reap."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_until(pred, timeout: float = 20.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


class RerunSaver:
    """``rerun --port P --save FILE``: Rerun 0.41's gRPC server recording what it
    receives into FILE (no window). `stop()` ends it with SIGINT, as Ctrl-C would."""

    def __init__(self, port: int, out: Path) -> None:
        self.port, self.out = port, out
        self.proc = start_rerun(["--port", str(port), "--save", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not wait_until(lambda: listening(port) or self.proc.poll() is not None, 30):
            self.stop()
            raise RuntimeError(f"rerun did not listen on {port} within 30 s")
        if self.proc.poll() is not None:
            raise RuntimeError(f"rerun exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                kill_rerun(self.proc, 5)
        else:
            kill_rerun(self.proc, 5)  # the launcher is gone; its binary must not outlive the test
        self.proc.stderr.close()

    def __enter__(self) -> "RerunSaver":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
