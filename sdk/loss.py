"""Counting what a recording could not deliver, and saying so.

Every place that drops data — a gRPC sink with no viewer or a full queue, the no-sink
buffer, rows logged after ``close()``, chunks that could not be encoded or written,
rows still queued when the close timeout ran out — adds to its recording's ledger.
The first drop at each place queues a `DataLossWarning`; ``close()`` (and interpreter
exit) warns a summary with the totals; the totals stay readable after close
(``RecordingStream.dropped_rows`` / ``dropped_chunks``).

Background threads only record; the warnings themselves are emitted by the
recording on the caller's thread (its next log, flush or close), so they point at the
user's code and never run on a daemon thread during interpreter shutdown.
"""

from __future__ import annotations

import threading
from typing import Optional

from pixelrun.errors import DataLossWarning, PixelrunWarning

__all__ = ["LossLedger", "format_bytes"]


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


class LossLedger:
    """Drop counts by place ("grpc rerun+http://127.0.0.1:9876/proxy", "after close", ...), thread-safe.

    `label` names the recording in messages. `has_news` is a plain attribute so the
    logging hot path can test it without taking a lock.
    """

    def __init__(self, label: str = "") -> None:
        self.label = label
        self._lock = threading.Lock()
        self._places: dict[str, dict[str, list]] = {}  # place -> reason -> [chunks, rows, bytes]
        self._news: list[tuple[str, type, bool]] = []  # (message, category, is a drop start)
        self._reported = (0, 0, 0)
        self.has_news = False

    def add(self, place: str, reason: str, *, chunks: int = 0, rows: int = 0, nbytes: int = 0,
            warn: bool = True) -> None:
        """Count a drop; the first one at `place` queues a warning naming it (unless
        `warn` is false: the caller warns in its own words)."""
        with self._lock:
            reasons = self._places.get(place)
            if reasons is None and not warn:
                reasons = self._places[place] = {}
            elif reasons is None:
                reasons = self._places[place] = {}
                self._news.append((
                    f"pixelrun: {self.label}{place}: dropping data: {reason}. Every drop is "
                    "counted (rec.dropped_rows); the totals are reported at close",
                    DataLossWarning, True,
                ))
                self.has_news = True
            entry = reasons.setdefault(reason, [0, 0, 0])
            entry[0] += chunks
            entry[1] += rows
            entry[2] += nbytes

    def absorb(self, other: "LossLedger") -> None:
        """Take over `other`'s counts and queued messages (a sink that dropped before
        its recording bound it)."""
        if other is self:
            return
        with other._lock:
            places, news = other._places, other._news
            other._places, other._news, other.has_news = {}, [], False
        with self._lock:
            for place, reasons in places.items():
                mine = self._places.setdefault(place, {})
                for why, counts in reasons.items():
                    entry = mine.setdefault(why, [0, 0, 0])
                    for i in range(3):
                        entry[i] += counts[i]
            self._news += news
            self.has_news = bool(self._news)

    def notice(self, message: str, category: type = PixelrunWarning) -> None:
        """Queue a message for the caller's thread (not a drop)."""
        with self._lock:
            self._news.append((message, category, False))
            self.has_news = True

    def take_news(self, starts: bool = True) -> list[tuple[str, type]]:
        """The queued messages; without `starts`, leave out the "dropping data"
        ones (a summary that follows says the same)."""
        with self._lock:
            news, self._news = self._news, []
            self.has_news = False
        return [(m, c) for m, c, start in news if starts or not start]

    def by_place(self) -> dict[str, tuple[int, int, int]]:
        """{place: (chunks, rows, bytes)} dropped so far."""
        with self._lock:
            return {p: tuple(sum(e[i] for e in r.values()) for i in range(3))  # type: ignore[misc]
                    for p, r in self._places.items()}

    def totals(self) -> tuple[int, int, int]:
        """(chunks, rows, bytes) dropped so far, all places."""
        per = self.by_place().values()
        return tuple(sum(v[i] for v in per) for i in range(3))  # type: ignore[return-value]

    def summary(self) -> Optional[str]:
        """The totals, then per place and reason; None when nothing (new) was lost
        since the last summary."""
        totals = self.totals()
        if totals == self._reported or totals == (0, 0, 0):
            return None
        self._reported = totals
        chunks, rows, nbytes = totals
        with self._lock:
            parts = [f"{place}: {_amount(*counts)}: {why}"
                     for place, reasons in self._places.items() for why, counts in reasons.items()]
        return (f"pixelrun: {self.label}{_amount(chunks, rows, nbytes)} were not delivered — "
                + "; ".join(parts))


def _amount(chunks: int, rows: int, nbytes: int) -> str:
    in_chunks = f" in {chunks} chunk(s)" if chunks else ""
    size = f" ({format_bytes(nbytes)})" if nbytes else ""
    return f"{rows} row(s){in_chunks}{size}"
