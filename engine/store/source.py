"""Where the store's chunks come from: .rrd files, byte strings and streams.

The framing, decompression and Arrow decoding are engine/rrd/decode.py's (`RrdDecoder`);
this module only feeds it, picks the recording chunks out of its messages and passes
on its problems. Files are read in blocks, not whole, so a recording larger than the
store's memory limit can still be opened: the store drops old data as it reads.
"""

from __future__ import annotations

import mmap
import os
from typing import Iterator, Optional

import numpy as np

from pixelrun.engine import rrd
from pixelrun.engine.mcap.db3 import SQLITE_MAGIC
from pixelrun.engine.mcap.reader import MCAP_MAGIC
from pixelrun.engine.rrd import ChunkMsg, RrdDecoder, StoreInfoMsg
from pixelrun.engine.rrd.footer import read_file_index
from pixelrun.engine.rrd.messages import MESSAGE_HEADER

# Files are read in groups of whole messages of about this many bytes, into one reused
# buffer (see ReadBuffer).
READ_BLOCK = 32 << 20


class ChunkSource:
    """An `RrdDecoder` plus bookkeeping: new problems since the last call, and notes.

    Blueprint chunks (the viewer layout Rerun may send) are skipped with a note; a
    source holding several recordings is noted once (their chunks are all kept).
    """

    def __init__(self, total_size: Optional[int] = None, index=None, index_problems=()) -> None:
        self.decoder = RrdDecoder(total_size=total_size, index=index)
        self.decoder.problems.extend(index_problems)  # reported with the first feed
        self._problems_seen = 0
        self._recordings: list = []
        self._blueprint_noted = False
        self._bytes_fed = 0
        self.store_infos: list = []  # rrd.StoreInfo of every SetStoreInfo seen

    @classmethod
    def for_file(cls, fd: int, size: int) -> "ChunkSource":
        """A source for a whole file, its chunks checked against the file's footer index."""
        index, problems = read_file_index(lambda at, n: os.pread(fd, n, at), size,
                                          rrd.default_max_decompressed_bytes())
        return cls(size, index, problems)

    @classmethod
    def for_bytes(cls, data) -> "ChunkSource":
        """A source for a complete in-memory stream (same checks as `for_file`)."""
        index, problems = rrd.index_of(data)
        return cls(len(data), index, problems)

    def _new_problems(self) -> list:
        new = self.decoder.problems[self._problems_seen :]
        self._problems_seen = len(self.decoder.problems)
        return list(new)

    def feed(self, data) -> tuple[list, list, list]:
        """(chunks, new problems, notes) for the next bytes of the stream."""
        chunks, notes = [], []
        self._bytes_fed += len(data)
        for msg in self.decoder.feed(data):
            if isinstance(msg, StoreInfoMsg):
                if msg.info not in self.store_infos:
                    self.store_infos.append(msg.info)
                continue
            if not isinstance(msg, ChunkMsg):
                continue
            store = msg.store
            if store is not None and store.kind == "blueprint":
                if not self._blueprint_noted:
                    notes.append("skipped blueprint chunks (viewer layout, not recording data)")
                    self._blueprint_noted = True
                continue
            key = store.recording_id if store is not None else None
            if key not in self._recordings:
                self._recordings.append(key)
                if len(self._recordings) == 2:
                    notes.append(
                        f"the source holds several recordings ({self._recordings[0]!r}, "
                        f"{key!r}, ...): their data is merged into one store"
                    )
            chunks.append(msg.chunk)
        return chunks, self._new_problems(), notes

    def finish(self) -> list:
        """New problems at the end of the input (a truncated last message, no footer)."""
        self.decoder.finish()
        problems = self._new_problems()
        if self._bytes_fed == 0:
            problems.append("no bytes at all: an empty source is not an .rrd recording")
        return problems


def message_groups(fd: int, size: int, block: int = READ_BLOCK) -> Iterator[tuple[int, int]]:
    """(start, end) byte ranges of a file that hold whole .rrd messages, about `block`
    bytes each, so the decoder never has to copy a partial message between reads.

    Only message headers are peeked at (16 bytes each, with the codec's constants); a
    header that makes no sense ends the grouping and the rest is handed over in plain
    blocks, where the decoder finds and reports the problem. Correctness never depends
    on these cuts, only the number of copies does.
    """
    pos = 0
    while pos < size:
        end = pos
        while end < size and end - pos < block:
            head = os.pread(fd, rrd.MESSAGE_HEADER_SIZE, end)
            if head[:4] == rrd.FOURCC:
                end += rrd.STREAM_HEADER_SIZE
                continue
            if len(head) < rrd.MESSAGE_HEADER_SIZE:
                end = -1
                break
            kind, length = MESSAGE_HEADER.unpack(head)
            nxt = end + rrd.MESSAGE_HEADER_SIZE + length
            if nxt > size:
                end = -1
                break
            if kind == rrd.KIND_END:
                foot = os.pread(fd, rrd.STREAM_FOOTER_SIZE, nxt)
                if len(foot) == rrd.STREAM_FOOTER_SIZE and foot[16:24] == rrd.FOURCC + rrd.FOOTER_ID:
                    nxt += rrd.STREAM_FOOTER_SIZE
            end = nxt
        if end < 0:  # damaged framing: the rest in plain blocks
            while pos < size:
                yield pos, min(size, pos + block)
                pos += block
            return
        if end == pos:
            return
        yield pos, end
        pos = end


class ReadBuffer:
    """One buffer reused for every read of a file, never reused once something kept it.

    It is an anonymous memory map, not a malloc'd block: it costs nothing to create
    (pages appear as they are written), and freeing it cannot move glibc's dynamic mmap
    threshold, which would otherwise send every later frame-sized allocation to the
    fragmenting heap, where RSS grows past what the store holds.

    The codec copies what it keeps today; should a decoded chunk ever hold a view into
    this buffer, `release_if_referenced` notices and the next read gets a fresh one.
    """

    def __init__(self) -> None:
        self._buf: Optional[mmap.mmap] = None
        self._addr = 0

    def read(self, fd: int, start: int, end: int) -> memoryview:
        n = end - start
        if self._buf is None or len(self._buf) < n:
            self._buf = mmap.mmap(-1, max(n, 1))
            probe = np.frombuffer(self._buf, np.uint8)
            self._addr = int(probe.__array_interface__["data"][0])
            del probe
        view = memoryview(self._buf)[:n]
        got = os.preadv(fd, [view], start)
        return view[:got]

    def release_if_referenced(self, chunks: list) -> None:
        if self._buf is None or not chunks:
            return
        lo, hi = self._addr, self._addr + len(self._buf)
        for c in chunks:
            for arr in c.components.values():
                for b in arr.buffers():
                    if b is not None and lo <= b.address < hi:
                        self._buf = None  # the chunk owns it now
                        return


def not_rrd_reason(path) -> Optional[str]:
    """'not an .rrd file: PATH (...)' when a file cannot be an .rrd at all, else None.

    Looks at the first bytes only (the magic, or a damaged magic followed by a message
    header); raises OSError when the file cannot be read.
    """
    with open(os.fspath(path), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(rrd.SNIFF_BYTES)
    if size == 0:
        return f"not an .rrd file: {path} (it is empty)"
    if rrd.looks_like_rrd(head, size) or head.startswith((MCAP_MAGIC, SQLITE_MAGIC)):  # bags: engine/mcap
        return None
    return f"not an .rrd file: {path} (it starts with {head[:8]!r}, an .rrd starts with {rrd.FOURCC!r})"


def open_file(path) -> tuple[object, int]:
    """(binary file object, size); raises OSError naming the path when unreadable."""
    f = open(os.fspath(path), "rb")
    try:
        size = os.fstat(f.fileno()).st_size
    except OSError:
        f.close()
        raise
    return f, size
