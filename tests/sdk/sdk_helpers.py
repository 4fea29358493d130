"""Helpers shared by the SDK tests."""

from __future__ import annotations

import threading

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
