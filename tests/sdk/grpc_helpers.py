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
        env = dict(os.environ, RERUN_TELEMETRY_ENABLED="false")
        self.proc = subprocess.Popen([str(RERUN_BIN), "--port", str(port), "--save", str(out)], env=env,
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
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stderr.close()

    def __enter__(self) -> "RerunSaver":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
