"""The relay a forked child streams through: ``python -m pixelrun.fork_relay CONFIG``.

grpcio is not fork-safe (a channel made in a forked child can hang for good), so a
forked child never makes one: its `_RelaySink` (sdk/sinks.py) starts this module in a
fresh interpreter (fork+exec is safe after a fork) and writes its messages into our
stdin as `RELAY_FRAME`s. Here an ordinary GrpcSink streams them to the URL in CONFIG
(a JSON object: url, the child's pid, and the parent sink's bounds), with every guarantee it has:
bounded queue, back-pressure then counted drops, reconnects with the static data
resent, TLS for ``rerun+https``.

Reports go back as JSON lines on stdout, as they happen: ``{"loss": [place, reason,
chunks, rows, bytes]}`` for every drop, ``{"notice": text, "category": name}`` for a
warning, ``{"closed": true}`` last. The child counts them in its own ledger.

Lifetime: as long as our stdin. A `FRAME_CLOSE` frame carries the child's remaining time:
the sink finishes within it and we report and exit. End of input without it means
the child died (os._exit, a signal): the sink still sends what it holds, within
PIXELRUN_EXIT_TIMEOUT, and we print our loss summary on stderr (the child's), since
nobody else can. Ctrl-C is ignored: the child's end decides. Pure SDK: no wgpu, no
window toolkit is imported.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import BinaryIO, Optional

from pixelrun.errors import PixelrunWarning
from pixelrun.loss import LossLedger
from pixelrun.recording import exit_timeout
from pixelrun.sinks import (
    FRAME_CLOSE,
    FRAME_STATIC,
    FRAME_STORE,
    FRAME_TEMPORAL,
    RELAY_CLOSE,
    RELAY_FRAME,
    RELAY_MAX_BODY,
    RELAY_MAX_KEY,
    GrpcSink,
    relay_place,
)

__all__ = ["main"]


class RelayFrameError(ValueError):
    """The input is not a stream of `RELAY_FRAME`s (never from our own child)."""


class _Reporter:
    """One JSON line per report on stdout; remembers when the child stopped reading."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self.failed = False

    def send(self, msg: dict) -> None:
        with self._lock:
            if self.failed:
                return
            try:
                self._out.write(json.dumps(msg).encode() + b"\n")
                self._out.flush()
            except (OSError, ValueError):  # the child is gone: its reports go to stderr at the end
                self.failed = True


class _ForwardingLedger(LossLedger):
    """Counts like any ledger (for the stderr summary) and forwards each drop and
    notice to the child as it happens."""

    def __init__(self, label: str, reporter: _Reporter) -> None:
        super().__init__(label)
        self._reporter = reporter

    def add(self, place: str, reason: str, *, chunks: int = 0, rows: int = 0, nbytes: int = 0,
            warn: bool = True) -> None:
        super().add(place, reason, chunks=chunks, rows=rows, nbytes=nbytes, warn=warn)
        self._reporter.send({"loss": [place, reason, chunks, rows, nbytes]})

    def notice(self, message: str, category: type = PixelrunWarning) -> None:
        super().notice(message, category)
        self._reporter.send({"notice": message, "category": category.__name__})


def _read_exact(inp: BinaryIO, n: int) -> Optional[bytearray]:
    """`n` bytes, or None at end of input (a frame cut short counts as the end)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = inp.readinto(view[got:])
        if not k:
            return None
        got += k
    return buf


def _read_frame(inp: BinaryIO) -> Optional[tuple[int, int, str, bytearray]]:
    """(kind, rows, key, body) of the next frame; None at end of input. Sizes are
    checked before anything is allocated."""
    head = _read_exact(inp, RELAY_FRAME.size)
    if head is None:
        return None
    kind, rows, key_len, body_len = RELAY_FRAME.unpack(head)
    if kind not in (FRAME_STORE, FRAME_STATIC, FRAME_TEMPORAL, FRAME_CLOSE):
        raise RelayFrameError(f"unknown frame kind {kind}")
    if key_len > RELAY_MAX_KEY or body_len > RELAY_MAX_BODY:
        raise RelayFrameError(f"a frame claims a {key_len}-byte key and a {body_len}-byte body (at most "
                              f"{RELAY_MAX_KEY} and {RELAY_MAX_BODY})")
    key = _read_exact(inp, key_len)
    body = _read_exact(inp, body_len) if key is not None else None
    if body is None:
        return None
    return kind, rows, key.decode("utf-8", "replace"), body


def relay(config: dict, inp: BinaryIO, out: BinaryIO) -> int:
    """Stream what `inp` carries to config["url"] until its end; 0 when the child
    closed us, 1 when it died without closing (or sent garbage)."""
    reporter = _Reporter(out)
    url = str(config["url"])
    ledger = _ForwardingLedger(f"forked process {config.get('child', os.getppid())}: ", reporter)
    settings = {k: config[k] for k in ("max_queue_bytes", "retry_secs", "connect_timeout",
                                       "handshake_timeout", "backpressure_secs") if k in config}
    sink = GrpcSink(url, place=relay_place(url, os.getpid()), **settings)
    sink.bind(ledger)
    budget: Optional[float] = None  # the child's close: its time left for us
    try:
        while True:
            frame = _read_frame(inp)
            if frame is None:
                break
            kind, rows, key, body = frame
            if kind == FRAME_CLOSE:
                budget = RELAY_CLOSE.unpack(bytes(body[:RELAY_CLOSE.size]))[0]
                break
            if kind == FRAME_STORE:
                sink.queue_store(key, bytes(body))
            else:
                sink.queue_chunk([body], rows, key if kind == FRAME_STATIC else "")
    except RelayFrameError as exc:
        sys.stderr.write(f"pixelrun: relay process {os.getpid()}: {exc}; nothing more is read\n")
    sink.close(timeout=exit_timeout() if budget is None else budget)
    reporter.send({"closed": True})
    if budget is None or reporter.failed:  # the child cannot sum up our losses: say them here
        summary = ledger.summary()
        if summary:
            sys.stderr.write(summary + "\n")
            sys.stderr.flush()
    return 0 if budget is not None else 1


def main(argv: Optional[list] = None) -> int:
    """Entry point: argv[0] is the JSON config; frames on stdin, reports on stdout."""
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the child's end (our stdin's EOF) decides, not Ctrl-C
    if len(args) != 1:
        sys.stderr.write("usage: python -m pixelrun.fork_relay CONFIG_JSON (started by a forked pixelrun child)\n")
        return 2
    return relay(json.loads(args[0]), sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(main())
