"""Where bytes become chunks: the .rrd decoder, robust to damage.

Reading (for the store, the renderer and the viewer)::

    from pixelrun.engine.rrd import read_rrd
    rec = read_rrd("file.rrd")         # path, bytes, a binary file, or any object
                                       # with .rrd_bytes() (the SDK's memory sink)
    rec.chunks        # list[Chunk] in stream order (all recordings)
    rec.store_infos   # list[StoreInfo]
    rec.problems      # list[str]: truncation, corrupt messages (with byte offsets)

``read_rrd`` never raises on bad content: a truncated file gives every complete
message and a problem saying where it stopped; a corrupt message is reported with its
byte offset (and entity, when known) and skipped; after damaged framing the decoder
finds the next message and reads on; a length claim beyond ``max_message_bytes`` (or
beyond the end of a file), or an LZ4 payload declaring more than
``max_decompressed_bytes``, is refused without allocating it. Only an unreadable
source (missing file) raises OSError.

What damage can be seen: the footer's index is the only checksummed part of a Rerun
0.41 file (xxh32; LZ4 *block* compression has no checksum, messages have none), so
each chunk message is checked against it (size, chunk id, entity, rows, timelines and
their ranges, rows per component, column types), and against itself (Arrow
validation, Arrow buffers laid out in order, the redundant chunk id / timeline /
component names, LZ4 sizes). A changed value cannot be detected: a byte of pixel data,
an opacity or draw order, or a format field changed to another valid value with the
same byte count (U8 -> I8, say). Those render altered pixels without a message.

Streaming (a socket, a growing file)::

    dec = RrdDecoder()
    for data in socket_reads:
        for msg in dec.feed(data):          # StoreInfoMsg | ChunkMsg | EndMsg | ...
            ...
    problems = dec.finish()                 # reports a partial trailing message
"""

from __future__ import annotations

import os
from typing import Iterator, Optional

import numpy as np
import pyarrow as pa

from pixelrun.engine.chunk import from_record_batch
from pixelrun.engine.rrd.footer import check_against_index, read_file_index
from pixelrun.engine.rrd.ipc import check_ipc_payload, default_max_decompressed_bytes, lz4_decompress
from pixelrun.engine.rrd.messages import (
    DEFAULT_MAX_MESSAGE_BYTES,
    FOOTER_ID,
    FOURCC,
    KIND_ARROW_MSG,
    KIND_BLUEPRINT_ACTIVATION,
    KIND_END,
    KIND_NAMES,
    KIND_SET_STORE_INFO,
    MESSAGE_HEADER,
    MESSAGE_HEADER_SIZE,
    STREAM_FOOTER_SIZE,
    STREAM_HEADER_SIZE,
    BlueprintActivationMsg,
    ChunkMsg,
    DamagedMessage,
    EndMsg,
    Message,
    RrdContents,
    StoreInfo,
    StoreInfoMsg,
    read_varint,
    store_from_pb,
    version_from_bits,
)
from pixelrun.engine.rrd.proto import pb


def _plausible_header(b: bytes, at: int, max_message_bytes: int, total_size: Optional[int]) -> bool:
    """Do the 16 (+1) bytes in `b` look like a message header at stream offset `at`?"""
    if len(b) < MESSAGE_HEADER_SIZE:
        return False
    kind, length = MESSAGE_HEADER.unpack_from(b, 0)
    if kind not in KIND_NAMES or length == 0 or length > max_message_bytes:
        return False
    if total_size is not None and at + MESSAGE_HEADER_SIZE + length > total_size:
        return False
    # every body Rerun writes starts with protobuf field 1, length-delimited
    return len(b) == MESSAGE_HEADER_SIZE or b[MESSAGE_HEADER_SIZE] == 0x0A


SNIFF_BYTES = STREAM_HEADER_SIZE + MESSAGE_HEADER_SIZE + 1
# After a broken header, the end of the message before it is searched too (this much):
# bytes missing from that message's body move the next header inside it.
RESCAN_BYTES = 64 << 10


def looks_like_rrd(head: bytes, total_size: Optional[int] = None) -> bool:
    """Whether the first `SNIFF_BYTES` of a file are an .rrd's: the RRF2 magic, or (a
    damaged magic) a message header where the first message must start."""
    if head[:4] == FOURCC:
        return True
    return _plausible_header(head[STREAM_HEADER_SIZE:], STREAM_HEADER_SIZE, DEFAULT_MAX_MESSAGE_BYTES, total_size)


class RrdDecoder:
    """Incremental, robust decoder: feed bytes as they arrive, get messages out.

    Problems (never exceptions) are collected in `problems`, each naming the byte
    offset in the stream (and the message number, and the entity when known); the
    damaged messages alone are also listed in `damaged`. Damage is contained to the
    messages it touches:

    - a message whose body does not decode, or decodes to something inconsistent
      (Arrow validation, component types, the redundant copies of chunk id, timeline
      and component names, LZ4 sizes, or the file's checksummed index), is skipped;
    - after a framing error (unknown kind, a length beyond the limit or the end of the
      file) the decoder looks for the next recognisable message header and reads on
      from there, reporting the bytes it skipped; with `index` (a file's footer, see
      `footer.read_file_index`) a damaged header is corrected from the index.

    Sizes are checked before anything is allocated: a message over
    `max_message_bytes`, an LZ4 payload declaring more than `max_decompressed_bytes`
    uncompressed (or more than LZ4 can expand to), an Arrow buffer outside its body.

    `share_payloads`: an uncompressed payload of a MiB or more stays where it was fed
    (the chunk's arrays point into the caller's buffer) instead of being copied out by
    protobuf. Only for callers that hand over a buffer of their own for good (the
    viewer's live stream), never for a file's mapping or a buffer that is reused.
    """

    def __init__(self, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 total_size: Optional[int] = None,
                 max_decompressed_bytes: Optional[int] = None,
                 index=None, resync: bool = True, share_payloads: bool = False) -> None:
        self.share_payloads = share_payloads
        self.max_message_bytes = max_message_bytes
        self.max_decompressed_bytes = (
            default_max_decompressed_bytes() if max_decompressed_bytes is None else max_decompressed_bytes
        )
        self.total_size = total_size  # when known (a file), lengths beyond it are refused
        self.index = index  # footer.FileIndex: chunk messages are checked against it
        self.resync = resync
        self.problems: list[str] = []
        self.damaged: list[DamagedMessage] = []
        self.has_footer = False
        self._buf = bytearray()  # incomplete tail kept between feeds
        self._view = memoryview(b"")
        self._i = 0
        self._pos = 0  # absolute stream offset of the next unread byte
        self._state = "header"  # header | message | footer | resync | dead
        self._store: Optional[StoreInfo] = None
        self._compressed_default = False
        self._messages = 0  # message headers read so far (numbers start at 1)
        self._lost_at = 0  # where the framing was lost (resync state)
        self._pending: Optional[ChunkMsg] = None  # files: held until the next header is sound
        self._pending_number = self._pending_length = 0
        self._prev_start = 0
        self._prev_ok = True
        self._hint: Optional[str] = None  # what the message being decoded is, for problems
        self._prev_end: Optional[int] = None  # end of the last message read
        self._prev_tail = None  # its last RESCAN_BYTES body bytes
        self._tail_copy = bytearray(RESCAN_BYTES)
        self.stream_version: Optional[tuple[int, int, int]] = None

    # -- public

    def feed(self, data) -> list[Message]:
        """Add bytes; return the messages they completed.

        Complete messages are decoded straight from `data`; only an incomplete tail is
        kept (copied) until more bytes arrive. With `total_size` known (a file), a
        chunk is passed on once the next message header (or the end of the file)
        confirms that its length was right.
        """
        if self._state == "dead":
            return []
        if self._buf:
            self._buf += data
            data = self._buf
            self._buf = bytearray()
        self._view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data.cast("B")
        self._i = 0
        out: list[Message] = []
        try:
            while self._step(out):
                pass
            if self.total_size is not None and self._pos + self._avail() >= self.total_size:
                self._confirm(out)  # all bytes are in: nothing more can contradict it
        finally:
            if self._state != "dead":
                self._buf = bytearray(self._view[self._i :])
            # never keep a view of the caller's buffer:
            if isinstance(self._prev_tail, memoryview) and self._prev_tail.obj is not self._tail_copy:
                # copied into one buffer kept for the purpose: a fresh allocation per call
                # would make glibc return and re-fault the heap top on every file read
                n = len(self._prev_tail)
                self._tail_copy[:n] = self._prev_tail
                self._prev_tail = memoryview(self._tail_copy)[:n].toreadonly()
            self._view = memoryview(b"")
            self._i = 0
        return out

    def finish(self) -> list[str]:
        """End of input: report a partial message or header, return all problems."""
        if self._state == "resync":
            end = self._pos + len(self._buf)
            self.problems.append(
                f"bytes {self._lost_at}..{end} ({end - self._lost_at} bytes) skipped: no "
                "further message could be found in them"
            )
        elif self._state != "dead" and self._buf:
            what = {"header": "stream header", "message": "message", "footer": "stream footer"}[self._state]
            if self._state == "message" and len(self._buf) >= MESSAGE_HEADER_SIZE:
                kind, length = MESSAGE_HEADER.unpack_from(self._buf, 0)
                what = f"{KIND_NAMES.get(kind, kind)} message of {length} bytes"
            self.problems.append(
                f"truncated: stream ends at byte {self._pos + len(self._buf)} inside a {what} "
                f"starting at byte {self._pos} ({len(self._buf)} bytes present); "
                "every message before it was read"
            )
        elif self._state == "header" and self._pos == 0 and not self.problems:
            self.problems.append("empty stream: 0 bytes, no .rrd stream header")
        elif self._state == "message" and not self.has_footer and not self._buf and self._pos > 0:
            self.problems.append(
                f"no end-of-stream footer after byte {self._pos}: the writer did not finish "
                "(killed or still writing); every complete message was read"
            )
        self._buf = bytearray()
        return self.problems

    # -- internals

    def _avail(self) -> int:
        return len(self._view) - self._i

    def _peek(self, n: int) -> bytes:
        return bytes(self._view[self._i : self._i + n])

    def _consume(self, n: int) -> memoryview:
        b = self._view[self._i : self._i + n]
        self._i += n
        self._pos += n
        return b

    def _die(self, why: str) -> bool:
        self.problems.append(why)
        self._state = "dead"
        self._buf = bytearray()
        return False

    def _confirm(self, out: list) -> None:
        """The message held back is sound as far as framing can tell: pass it on."""
        if self._pending is not None:
            out.append(self._pending)
            self._pending = None

    def _remember(self, start: int, body, ok: bool = True) -> None:
        """The last message read (its start, and the end of its body, kept as a view
        while the caller's buffer is ours and copied when `feed` returns): when the
        header after it turns out broken, its own length may be what is wrong."""
        self._prev_start = start
        self._prev_ok = ok
        self._prev_end = self._pos
        self._prev_tail = body[-RESCAN_BYTES:] if len(body) > RESCAN_BYTES else body

    def _lost(self, why: str, skip: int) -> bool:
        """The framing is lost at the current message header: look for the next one,
        from inside the message before it when that one ends right here (a length
        too large, or bytes missing from its body, moves the next header into it)."""
        if not self.resync:
            return self._die(why + "; the framing is lost, nothing after this offset can be read")
        self.problems.append(why + "; looking for the next message")
        self._lost_at = self._pos
        if self._prev_end == self._pos and self._prev_tail is not None and len(self._prev_tail):
            tail = bytes(self._prev_tail)
            self._view = memoryview(tail + bytes(self._view[self._i :]))  # a copy, on damage only
            self._i = 0
            self._pos -= len(tail)
        else:
            self._consume(min(skip, self._avail()))
        self._state = "resync"
        return True

    def _step(self, out: list) -> bool:
        if self._state == "header":
            return self._step_header(out)
        if self._state == "footer":
            if self._avail() < STREAM_FOOTER_SIZE:
                return False
            tail = self._peek(STREAM_FOOTER_SIZE)[20:28]
            at_end = self.total_size is not None and self._pos + STREAM_FOOTER_SIZE == self.total_size
            if tail == FOURCC + FOOTER_ID or at_end:
                if tail != FOURCC + FOOTER_ID:
                    self.problems.append(f"byte {self._pos}: stream footer damaged (no RRF2FOOT mark)")
                self._consume(STREAM_FOOTER_SIZE)
            self._state = "message"
            return True
        if self._state == "resync":
            return self._step_resync(out)
        # message
        if self._avail() >= 4 and self._peek(4) == FOURCC:
            self._confirm(out)
            self._state = "header"  # a concatenated stream starts here
            return True
        if self._avail() < MESSAGE_HEADER_SIZE:
            return False
        kind, length = MESSAGE_HEADER.unpack_from(self._view, self._i)
        start = self._pos
        entry = None
        if self.index is not None and self.index.covers_all:  # its offsets are this file's
            entry = self.index.by_offset.get(start + MESSAGE_HEADER_SIZE)
        if entry is not None and (kind, length) != (KIND_ARROW_MSG, entry.size):
            self.problems.append(
                f"byte {start}: message header damaged (kind {kind}, {length} bytes); the "
                f"file's index lists an ArrowMsg of {entry.size} bytes for {self.index.describe(entry)} "
                "here: read as that"
            )
            kind, length = KIND_ARROW_MSG, entry.size
        if kind not in KIND_NAMES:
            return self._lost(f"byte {start}: unknown message kind {kind} (expected 0-3)", 1)
        limit = self.max_message_bytes
        if self.total_size is not None:
            limit = min(limit, self.total_size - start - MESSAGE_HEADER_SIZE)
        if length > limit:
            if self.total_size is not None and length <= self.max_message_bytes:
                return self._lost(
                    f"truncated: stream ends at byte {self.total_size} inside a "
                    f"{KIND_NAMES[kind]} message of {length} bytes starting at byte {start} "
                    f"({max(limit, 0)} body bytes present); every message before it was read",
                    MESSAGE_HEADER_SIZE,
                )
            return self._lost(
                f"byte {start}: {KIND_NAMES[kind]} message claims {length} bytes, more than "
                f"the {limit}-byte limit; refused without reading it",
                MESSAGE_HEADER_SIZE,
            )
        self._confirm(out)  # a sound header follows the message held back
        if self._avail() < MESSAGE_HEADER_SIZE + length:
            return False
        self._messages += 1
        self._consume(MESSAGE_HEADER_SIZE)
        body = self._consume(length)
        self._hint = self.index.describe(entry) if entry is not None else None
        try:
            msg = self._decode(kind, body, start)
        except Exception as exc:  # any decode failure is reported, not raised
            self._damage(start, self._messages, kind, length, f"{type(exc).__name__}: {exc}")
            self._remember(start, body, ok=False)
            return True
        self._remember(start, body)
        if kind == KIND_END:
            self.has_footer = True
            self._state = "footer"
        if isinstance(msg, ChunkMsg) and self.total_size is not None:
            self._pending = msg  # until the next header shows its length was right
            self._pending_number, self._pending_length = self._messages, length
        elif msg is not None:
            out.append(msg)
        return True

    def _damage(self, start: int, number: int, kind: int, length: int, reason: str) -> None:
        d = DamagedMessage(start, number, KIND_NAMES.get(kind, str(kind)), length, self._hint, reason)
        self.damaged.append(d)
        self.problems.append(str(d))

    def _step_header(self, out: list) -> bool:
        if self._avail() < STREAM_HEADER_SIZE:
            return False
        head = self._peek(STREAM_HEADER_SIZE)
        if head[:4] != FOURCC:
            # a damaged magic at the very start of what is otherwise an .rrd stream
            if self._pos == 0 and looks_like_rrd(self._peek(SNIFF_BYTES), self.total_size):
                self.problems.append(
                    f"byte 0: stream header damaged (magic {head[:4]!r}, expected {FOURCC!r}); "
                    "the messages after it are read"
                )
            else:
                return self._die(
                    f"byte {self._pos}: not an .rrd stream "
                    f"(expected magic {FOURCC!r}, found {head[:4]!r})"
                )
        self._consume(STREAM_HEADER_SIZE)
        self.stream_version = (head[4], head[5], head[6])
        self._compressed_default = head[8] == 1
        self._state = "message"
        return True

    def _plausible_header(self, b: bytes, at: int) -> bool:
        return _plausible_header(b, at, self.max_message_bytes, self.total_size)

    def _step_resync(self, out: list) -> bool:
        """Find the next message header (or stream header) after lost framing."""
        n = self._avail()
        if n < MESSAGE_HEADER_SIZE + 1:
            return False
        arr = np.frombuffer(self._view, np.uint8, count=n, offset=self._i)
        m = n - MESSAGE_HEADER_SIZE
        cand = arr[:m] <= 3  # kind: a little-endian u64 of 0..3, length below 2**40
        for k in (1, 2, 3, 4, 5, 6, 7, 13, 14, 15):
            cand &= arr[k : m + k] == 0
        cand &= arr[MESSAGE_HEADER_SIZE : m + MESSAGE_HEADER_SIZE] == 0x0A
        magic = np.frombuffer(FOURCC, np.uint8)
        stream = (arr[:m] == magic[0]) & (arr[1 : m + 1] == magic[1]) & (arr[2 : m + 2] == magic[2]) & (
            arr[3 : m + 3] == magic[3])
        hits = np.flatnonzero(cand | stream)
        if self.index is not None and self.index.covers_all:
            known = [o - MESSAGE_HEADER_SIZE - self._pos for o in self.index.by_offset]
            hits = np.union1d(hits, [j for j in known if 0 <= j < m]).astype(np.int64)
        for j in hits.tolist():
            if self._pos + int(j) == self._lost_at:
                continue  # where the framing broke: never again (no loop, whatever an index says)
            verdict = self._resync_candidate(int(j), n)
            if verdict is None:  # cannot tell yet: wait for more bytes
                self._consume(int(j))
                return False
            if verdict:
                self._consume(int(j))
                self._resynced(out)
                return True
        self._consume(m)  # keep the last bytes: a header may start there
        if self._prev_end is not None and self._pos >= self._prev_end:
            self._confirm(out)  # nothing inside the message before: its length was right
        return False

    def _resynced(self, out: list) -> None:
        """A message starts at the current position: say what was skipped, and whether
        the message before was too long (then it ran into this one: damaged)."""
        at = self._pos
        prev_end = self._prev_end if self._prev_end is not None else -1
        if at < prev_end:
            why = (f"its length runs {prev_end - at} bytes into the message at byte {at} "
                   "(bytes missing from it, or its length changed)")
            if self._pending is not None:
                self._hint = f"{self._pending.chunk.entity_path}"
                self._damage(self._prev_start, self._pending_number, KIND_ARROW_MSG, self._pending_length, why)
                self._pending = None
            elif self._prev_ok:
                self.problems.append(f"byte {self._prev_start}: the message there was passed on, but {why}")
            self.problems.append(f"reading on from the message at byte {at}")
        else:
            self._confirm(out)
            self.problems.append(
                f"bytes {self._lost_at}..{at} ({at - self._lost_at} bytes) skipped: reading on "
                f"from the message at byte {at}"
            )
        self._state = "message"

    def _resync_candidate(self, j: int, n: int) -> Optional[bool]:
        """True: a message (or stream) starts at j; False: it does not; None: unknown yet."""
        at = self._pos + j
        head = bytes(self._view[self._i + j : self._i + j + MESSAGE_HEADER_SIZE + 1])
        if head[:4] == FOURCC:
            return True
        if self.index is not None and self.index.covers_all and at + MESSAGE_HEADER_SIZE in self.index.by_offset:
            return True
        if not self._plausible_header(head, at):
            return False
        kind, length = MESSAGE_HEADER.unpack_from(head, 0)
        nxt = j + MESSAGE_HEADER_SIZE + length  # where the next message must start
        if self.total_size is not None and self._pos + nxt == self.total_size:
            return True
        after = bytes(self._view[self._i + nxt : self._i + nxt + STREAM_FOOTER_SIZE])
        if len(after) >= MESSAGE_HEADER_SIZE + 1:
            if kind == KIND_END:
                return after[20:28] == FOURCC + FOOTER_ID
            return after[:4] == FOURCC or self._plausible_header(after, self._pos + nxt)
        if self.total_size is not None and self._pos + nxt + MESSAGE_HEADER_SIZE > self.total_size:
            return False
        return None if nxt + STREAM_FOOTER_SIZE > n else False

    def _decode(self, kind: int, body: bytes, offset: int) -> Optional[Message]:
        if kind == KIND_SET_STORE_INFO:
            m = pb.SetStoreInfo.FromString(body)
            info = store_from_pb(m.info.store_id, m.info.application_id.id)
            pv = None
            if m.info.store_source.kind == pb.STORE_SOURCE_KIND_PYTHON_SDK:
                p = pb.PythonVersion.FromString(m.info.store_source.extra.payload)
                pv = (p.major, p.minor, p.patch)
            info = StoreInfo(
                info.application_id, info.recording_id, info.kind,
                version_from_bits(m.info.store_version.crate_version_bits), pv,
            )
            self._store = info
            return StoreInfoMsg(offset, info)
        if kind == KIND_ARROW_MSG:
            return self._decode_arrow(body, offset)
        if kind == KIND_BLUEPRINT_ACTIVATION:
            m = pb.BlueprintActivationCommand.FromString(body)
            return BlueprintActivationMsg(offset, store_from_pb(m.blueprint_id), m.make_active, m.make_default)
        pb.RrdFooter.FromString(body)  # End: validate (a file's index is read from its tail first)
        return EndMsg(offset, len(body))

    def _decode_arrow(self, body, offset: int) -> ChunkMsg:
        shared = _split_payload(body) if self.share_payloads and len(body) >= SHARED_PAYLOAD_BYTES else None
        if shared is not None:
            rest, shared = shared
            m = pb.ArrowMsg.FromString(rest)
        else:
            m = pb.ArrowMsg.FromString(body)
        pb_id = None
        if m.HasField("chunk_id"):
            pb_id = m.chunk_id.time_ns.to_bytes(8, "big") + m.chunk_id.inc.to_bytes(8, "big")
        entry = self.index.by_id.get(pb_id) if self.index is not None and pb_id else None
        if entry is not None:
            self._hint = self.index.describe(entry)
        if m.encoding not in (pb.ENCODING_ARROW_IPC, pb.ENCODING_UNSPECIFIED):
            raise ValueError(f"unknown payload encoding {m.encoding}")
        payload = m.payload if shared is None else shared
        compressed = m.compression == pb.COMPRESSION_LZ4
        if compressed:
            payload = lz4_decompress(payload, m.uncompressed_size, self.max_decompressed_bytes)
        elif m.compression not in (pb.COMPRESSION_NONE, pb.COMPRESSION_UNSPECIFIED):
            raise ValueError(f"unknown compression {m.compression}")
        check_ipc_payload(payload)  # before pyarrow allocates anything on its word
        reader = pa.ipc.open_stream(pa.py_buffer(payload))
        batch = reader.read_next_batch()
        batch.validate(full=True)  # offsets, lengths, UTF-8: a bad one never reaches a query
        chunk = from_record_batch(batch)
        if self._hint is None:
            self._hint = chunk.entity_path
        if pb_id is not None and chunk.chunk_id is not None and pb_id != chunk.chunk_id:
            raise ValueError("the message's chunk id and the one in its Arrow schema differ")
        if m.HasField("is_static") and m.is_static != chunk.is_static:
            raise ValueError(
                f"the message says is_static={m.is_static} but the chunk has "
                f"{len(chunk.timelines)} timeline(s)"
            )
        if chunk.chunk_id is None and pb_id is not None:
            chunk.chunk_id = pb_id
        if self.index is not None:
            if entry is None and self.index.covers(offset + MESSAGE_HEADER_SIZE):
                raise ValueError("its chunk id is not in the file's (checksummed) index")
            if entry is not None:
                bad = check_against_index(entry, chunk, len(body), self.index)
                if bad:
                    raise ValueError("; ".join(bad) + " (the index is checksummed: the message is not)")
        store = store_from_pb(m.store_id)
        if self._store is not None and self._store.store_key == store.store_key:
            store = self._store
        return ChunkMsg(offset, store, chunk, m.is_static if m.HasField("is_static") else None, compressed)


# ArrowMsg's `payload` field (5, length-delimited): left in place by `_split_payload`
_PAYLOAD_TAG = 5 << 3 | 2
SHARED_PAYLOAD_BYTES = 1 << 20


def _split_payload(body) -> Optional[tuple[bytes, memoryview]]:
    """(the ArrowMsg without its payload field, the payload as a view into `body`), so
    protobuf parses the small fields and a frame-sized payload is never copied. None when
    the top-level fields do not read as one payload field among well-formed others: the
    caller then lets protobuf parse (and judge) the whole message."""
    view = memoryview(body).cast("B")
    n, pos, found = len(view), 0, None
    try:
        while pos < n:
            start = pos
            tag, pos = read_varint(view, pos)
            wire = tag & 7
            if wire == 0:
                _, pos = read_varint(view, pos)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == 2:
                length, pos = read_varint(view, pos)
                if tag == _PAYLOAD_TAG:
                    if found is not None:
                        return None  # repeated: protobuf's rule (last wins) is protobuf's to apply
                    found = (start, pos, pos + length)
                pos += length
            else:
                return None
    except ValueError:  # a truncated or over-long varint
        return None
    if pos != n or found is None:
        return None
    start, data, end = found
    return bytes(view[:start]) + bytes(view[end:]), view[data:end]


def index_of(data, max_decompressed_bytes: Optional[int] = None) -> tuple:
    """(FileIndex or None, problems) for a complete in-memory .rrd (see footer.py)."""
    view = memoryview(data).cast("B")
    limit = default_max_decompressed_bytes() if max_decompressed_bytes is None else max_decompressed_bytes
    return read_file_index(lambda at, n: bytes(view[at : at + n]), len(view), limit)


def iter_messages(data, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                  problems: Optional[list] = None,
                  max_decompressed_bytes: Optional[int] = None) -> Iterator[Message]:
    """Messages of a complete in-memory stream; problems are appended to `problems`."""
    index, index_problems = index_of(data, max_decompressed_bytes)
    dec = RrdDecoder(max_message_bytes=max_message_bytes, total_size=len(data),
                     max_decompressed_bytes=max_decompressed_bytes, index=index)
    dec.problems.extend(index_problems)
    yield from dec.feed(data)
    dec.finish()
    if problems is not None:
        problems.extend(dec.problems)


def _read_source(source) -> bytes:
    if hasattr(source, "rrd_bytes"):
        return bytes(source.rrd_bytes())
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return f.read()
    if hasattr(source, "read"):
        return source.read()
    raise TypeError(
        f"read_rrd: expected a path, bytes, a binary file or an object with rrd_bytes(), "
        f"got {type(source).__name__}"
    )


def read_rrd(source, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
             max_decompressed_bytes: Optional[int] = None) -> RrdContents:
    """Decode a whole .rrd (path, bytes, file object, or object with ``rrd_bytes()``).

    Returns `RrdContents` (also unpackable as ``infos, chunks, problems``). Never
    raises on bad content; see the module docstring. Chunk messages are checked
    against the file's footer index when it is intact.
    """
    data = _read_source(source)
    out = RrdContents()
    for msg in iter_messages(memoryview(data), max_message_bytes=max_message_bytes,
                             problems=out.problems, max_decompressed_bytes=max_decompressed_bytes):
        if isinstance(msg, StoreInfoMsg):
            out.store_infos.append(msg.info)
        elif isinstance(msg, ChunkMsg):
            out.chunks.append(msg.chunk)
            out.chunk_stores.append(msg.store)
        elif isinstance(msg, EndMsg):
            out.has_footer = True
    return out
