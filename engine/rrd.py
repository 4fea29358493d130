"""The .rrd codec, both directions, as Rerun 0.41 writes it.

Layout of a stream (measured on files written by rerun-sdk 0.41, byte by byte):

    stream header   12 bytes  b"RRF2" + version [major, minor, patch, meta]
                              + options [compression (0 off, 1 LZ4), serializer (2 =
                              protobuf), 0, 0]
    message*        16-byte header (kind u64 LE, body length u64 LE) + protobuf body:
                      kind 1 SetStoreInfo  (store id, application id, SDK version)
                      kind 2 ArrowMsg      (store id, chunk id, compression,
                                            uncompressed size, is_static, payload =
                                            an Arrow IPC stream: schema + 1 batch + EOS,
                                            LZ4 *block* compressed when compression=2)
                      kind 3 BlueprintActivationCommand
                      kind 0 End           (body: RrdFooter with one manifest per
                                            recording, see rrd_footer.py)
    stream footer   32 bytes after the End message: footer body offset u64, body size
                    u64, xxh32 of the body (seed 7850921) u32, b"RRF2FOOT", u32 1.

A file may hold several streams back to back (``cat a.rrd b.rrd``); the decoder
accepts that.

Checked against the real thing (rerun-sdk 0.41 in .venv-rerun): files its SDK writes
decode here with identical pixel bytes and re-encode to batches equal to the
originals (``rerun rrd compare`` agrees); ``rerun rrd verify`` accepts what we write
(compressed or not, several recordings per file); Rerun's headless viewer shows the
seed recordings with the right pixels. See tests/engine/test_rrd.py and
tests/sdk/test_sdk_rerun_viewer.py.

Reading (for the store, the renderer and the viewer)::

    from pixelrun.engine.rrd import read_rrd
    rec = read_rrd("file.rrd")         # path, bytes, a binary file, or any object
                                       # with .rrd_bytes() (the SDK's memory sink)
    rec.chunks        # list[Chunk] in stream order (all recordings)
    rec.store_infos   # list[StoreInfo]
    rec.problems      # list[str]: truncation, corrupt messages (with byte offsets)

``read_rrd`` never raises on bad content: a truncated file gives every complete
message and a problem saying where it stopped; a corrupt message is reported with its
byte offset and skipped, and reading goes on while the framing is intact; a length
claim beyond ``max_message_bytes`` (or beyond the end of a file) is refused without
allocating it. Only an unreadable source (missing file) raises OSError.

Streaming (a socket, a growing file)::

    dec = RrdDecoder()
    for data in socket_reads:
        for msg in dec.feed(data):          # StoreInfoMsg | ChunkMsg | EndMsg | ...
            ...
    problems = dec.finish()                 # reports a partial trailing message

Writing::

    enc = RrdEncoder(StoreInfo("app", "rec-id"), compression=False)
    out.write(enc.stream_header()); out.write(enc.store_info())
    for chunk in chunks:
        for part in enc.chunk(chunk):       # bytes-like parts (header + IPC payload)
            out.write(part)
    out.write(enc.end())                    # End message + footer (rrd verify needs it)

Sinks that own a pyarrow native file use ``encode_chunk(...).write_to(f)`` instead,
which streams the IPC payload from the chunk's own buffers (the SDK's file sink).
"""

from __future__ import annotations

import os
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional, Union

import lz4.block
import pyarrow as pa

from pixelrun.engine.chunk import Chunk, chunk_id_parts, from_record_batch, to_record_batch
from pixelrun.engine.rrd_proto import pb

FOURCC = b"RRF2"
RERUN_VERSION = (0, 41, 0)  # the version we claim to write, as Rerun files carry it
STREAM_HEADER_SIZE = 12
MESSAGE_HEADER_SIZE = 16

# The TCP port a live .rrd stream goes to by default: Rerun's 9876, so `spawn=True`
# and `rr.connect()` find a viewer where Rerun users expect one. PIXELRUN_PORT moves
# both ends at once (the SDK's spawn/connect and `pixelrun view`), e.g. for tests.
RERUN_DEFAULT_PORT = 9876


def default_port() -> int:
    """The live-stream port: PIXELRUN_PORT when set, else Rerun's 9876."""
    value = os.environ.get("PIXELRUN_PORT", "").strip()
    if not value:
        return RERUN_DEFAULT_PORT
    try:
        port = int(value)
    except ValueError:
        raise ValueError(f"PIXELRUN_PORT must be a TCP port number, got {value!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"PIXELRUN_PORT must be in 1..65535, got {port}")
    return port
STREAM_FOOTER_SIZE = 32
FOOTER_ID = b"FOOT"

KIND_END = 0
KIND_SET_STORE_INFO = 1
KIND_ARROW_MSG = 2
KIND_BLUEPRINT_ACTIVATION = 3
_KIND_NAMES = {0: "End", 1: "SetStoreInfo", 2: "ArrowMsg", 3: "BlueprintActivationCommand"}

# A larger claim than this is refused (memory safety on corrupt or hostile input).
DEFAULT_MAX_MESSAGE_BYTES = 4 << 30

_HDR = struct.Struct("<QQ")


# ------------------------------------------------------------------------ model


@dataclass(frozen=True)
class StoreInfo:
    """Which recording a stream belongs to (SetStoreInfo)."""

    application_id: str
    recording_id: str
    kind: str = "recording"  # or "blueprint"
    sdk_version: tuple[int, int, int] = RERUN_VERSION
    python_version: Optional[tuple[int, int, int]] = None

    @property
    def store_key(self) -> tuple[str, str, str]:
        return (self.kind, self.application_id, self.recording_id)


@dataclass
class StoreInfoMsg:
    offset: int
    info: StoreInfo


@dataclass
class ChunkMsg:
    """One decoded chunk; `store` is the recording it belongs to."""

    offset: int
    store: StoreInfo
    chunk: Chunk
    is_static: Optional[bool]
    compressed: bool


@dataclass
class EndMsg:
    offset: int
    body_size: int


@dataclass
class BlueprintActivationMsg:
    offset: int
    store: StoreInfo
    make_active: bool
    make_default: bool


Message = Union[StoreInfoMsg, ChunkMsg, EndMsg, BlueprintActivationMsg]


@dataclass
class RrdContents:
    """Everything `read_rrd` found: store infos, chunks in stream order, problems."""

    store_infos: list[StoreInfo] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    chunk_stores: list[StoreInfo] = field(default_factory=list)  # parallel to chunks
    problems: list[str] = field(default_factory=list)
    has_footer: bool = False

    def chunks_of(self, recording_id: str) -> list[Chunk]:
        """Chunks of one recording (a file may hold several)."""
        return [c for c, s in zip(self.chunks, self.chunk_stores) if s.recording_id == recording_id]

    def __iter__(self):  # allows `infos, chunks, problems = read_rrd(...)`
        return iter((self.store_infos, self.chunks, self.problems))


# --------------------------------------------------------------- protobuf helpers


def _version_bits(v: tuple[int, int, int]) -> int:
    return int.from_bytes(bytes([v[0], v[1], v[2], 0]), "little", signed=True)


def _version_from_bits(bits: int) -> tuple[int, int, int]:
    b = int(bits).to_bytes(4, "little", signed=True)
    return (b[0], b[1], b[2])


def _store_id_pb(info: StoreInfo):
    sid = pb.StoreId(
        kind=pb.STORE_KIND_BLUEPRINT if info.kind == "blueprint" else pb.STORE_KIND_RECORDING,
        recording_id=info.recording_id,
    )
    sid.application_id.id = info.application_id
    return sid


def _store_from_pb(sid, fallback_app: str = "") -> StoreInfo:
    kind = "blueprint" if sid.kind == pb.STORE_KIND_BLUEPRINT else "recording"
    app = sid.application_id.id if sid.HasField("application_id") else fallback_app
    return StoreInfo(app, sid.recording_id, kind)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# ------------------------------------------------------------------------ encoder


def stream_header(compressed: bool = False, version: tuple[int, int, int] = RERUN_VERSION) -> bytes:
    """The 12-byte stream header."""
    return FOURCC + bytes([version[0], version[1], version[2], 0]) + bytes(
        [1 if compressed else 0, 2, 0, 0]
    )


def message_header(kind: int, length: int) -> bytes:
    return _HDR.pack(kind, length)


def encode_store_info(info: StoreInfo, row_id: Optional[tuple[int, int]] = None) -> bytes:
    """A complete SetStoreInfo message (header + body)."""
    msg = pb.SetStoreInfo()
    t, inc = row_id if row_id is not None else (time.time_ns(), int.from_bytes(os.urandom(8), "big"))
    msg.row_id.time_ns = t
    msg.row_id.inc = inc
    msg.info.store_id.CopyFrom(_store_id_pb(info))
    src = msg.info.store_source
    src.kind = pb.STORE_SOURCE_KIND_PYTHON_SDK
    pv = info.python_version or tuple(sys.version_info[:3])
    src.extra.payload = pb.PythonVersion(major=pv[0], minor=pv[1], patch=pv[2]).SerializeToString()
    msg.info.store_version.crate_version_bits = _version_bits(info.sdk_version)
    body = msg.SerializeToString()
    return message_header(KIND_SET_STORE_INFO, len(body)) + body


def ipc_payload(batch: pa.RecordBatch) -> pa.Buffer:
    """An Arrow IPC stream (schema, one batch, end-of-stream) as Rerun embeds it."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue()


def ipc_size(batch: pa.RecordBatch) -> int:
    """Exact byte size of `ipc_payload(batch)`, computed without copying any data."""
    sink = pa.MockOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.size()


class EncodedChunk:
    """A chunk ready to write: one complete ArrowMsg message.

    Uncompressed, the Arrow IPC payload is produced lazily: `write_to` streams it
    straight from the chunk's buffers into a native file (no intermediate copy of
    the pixels), while `parts` materialises it once for sinks that keep bytes.
    """

    def __init__(self, head: bytes, batch: Optional[pa.RecordBatch], payload, payload_size: int,
                 uncompressed_size: int) -> None:
        self.head = head
        self.batch = batch
        self._payload = payload  # None until materialised (uncompressed, lazy)
        self.payload_size = payload_size
        self.uncompressed_size = uncompressed_size
        self.size = len(head) + payload_size
        self.body_offset_in_message = MESSAGE_HEADER_SIZE

    @property
    def parts(self) -> list:
        if self._payload is None:
            self._payload = ipc_payload(self.batch)
        return [self.head, self._payload]

    def write_to(self, f: pa.NativeFile) -> None:
        """Write the whole message to a pyarrow native file (GIL released in writes)."""
        f.write(self.head)
        if self._payload is not None:
            f.write(self._payload)
            return
        with pa.ipc.new_stream(f, self.batch.schema) as writer:
            writer.write_batch(self.batch)


def encode_chunk(
    chunk: Chunk, store: StoreInfo, *, compression: bool = False,
    batch: Optional[pa.RecordBatch] = None,
) -> EncodedChunk:
    """One ArrowMsg for a chunk.

    The protobuf body is written as (every field but the payload) + (payload field),
    which protobuf parsers accept in any order, so the large payload never has to be
    copied into a protobuf message; uncompressed, it is not even materialised until a
    sink needs bytes (see `EncodedChunk`).
    """
    if chunk.chunk_id is None:
        raise ValueError("encode_chunk: chunk_id must be set")
    if batch is None:
        batch = to_record_batch(chunk)
    if compression:
        ipc = ipc_payload(batch)
        uncompressed = ipc.size
        payload = lz4.block.compress(memoryview(ipc), store_size=False)
        plen = len(payload)
    else:
        payload = None
        uncompressed = plen = ipc_size(batch)
    msg = pb.ArrowMsg()
    msg.store_id.CopyFrom(_store_id_pb(store))
    t, inc = chunk_id_parts(chunk.chunk_id)
    msg.chunk_id.time_ns = t
    msg.chunk_id.inc = inc
    msg.compression = pb.COMPRESSION_LZ4 if compression else pb.COMPRESSION_NONE
    msg.uncompressed_size = uncompressed
    msg.encoding = pb.ENCODING_ARROW_IPC
    msg.is_static = chunk.is_static
    prefix = msg.SerializeToString() + b"\x2a" + _varint(plen)  # field 5, wire type 2
    head = message_header(KIND_ARROW_MSG, len(prefix) + plen) + prefix
    return EncodedChunk(head, batch, payload, plen, uncompressed)


class RrdEncoder:
    """Stateful writer of one recording's stream; tracks what the footer needs.

    Every method returns bytes (or a list of bytes-like parts) for the caller to write
    in order; the encoder does no I/O itself, so any sink (file, memory, socket) can
    use it. Thread-compatible, not thread-safe: one writer thread per encoder.
    """

    def __init__(self, store: StoreInfo, *, compression: bool = False) -> None:
        from pixelrun.engine.rrd_footer import ManifestBuilder

        self.store = store
        self.compression = compression
        self.offset = 0
        self._manifest = ManifestBuilder(store)

    def _advance(self, n: int) -> None:
        self.offset += n

    def stream_header(self) -> bytes:
        b = stream_header(self.compression)
        self._advance(len(b))
        return b

    def store_info(self) -> bytes:
        b = encode_store_info(self.store)
        self._advance(len(b))
        return b

    def chunk(self, chunk: Chunk) -> list:
        batch = to_record_batch(chunk)
        enc = encode_chunk(chunk, self.store, compression=self.compression, batch=batch)
        body_offset = self.offset + MESSAGE_HEADER_SIZE
        self._manifest.add(chunk, batch, body_offset, enc.size - MESSAGE_HEADER_SIZE, enc.uncompressed_size)
        self._advance(enc.size)
        return enc.parts

    def end(self) -> bytes:
        """The End message carrying the RrdFooter, then the 32-byte stream footer."""
        from pixelrun.engine.rrd_footer import stream_footer

        body = self._manifest.footer_body()
        body_offset = self.offset + MESSAGE_HEADER_SIZE
        out = message_header(KIND_END, len(body)) + body + stream_footer(body_offset, body)
        self._advance(len(out))
        return out


def encode_recording(store: StoreInfo, chunks: Iterable[Chunk], *, compression: bool = False) -> bytes:
    """A whole .rrd stream in memory (tests, small exports)."""
    enc = RrdEncoder(store, compression=compression)
    parts: list = [enc.stream_header(), enc.store_info()]
    for c in chunks:
        parts.extend(bytes(p) if isinstance(p, pa.Buffer) else p for p in enc.chunk(c))
    parts.append(enc.end())
    return b"".join(parts)


# ------------------------------------------------------------------------ decoder


class RrdDecoder:
    """Incremental, robust decoder: feed bytes as they arrive, get messages out.

    Problems (never exceptions) are collected in `problems`, each naming the byte
    offset in the stream. After a framing error (bad magic, unknown kind, absurd
    length) nothing more can be located and later input is ignored.
    """

    def __init__(self, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 total_size: Optional[int] = None) -> None:
        self.max_message_bytes = max_message_bytes
        self.total_size = total_size  # when known (a file), lengths beyond it are refused
        self.problems: list[str] = []
        self.has_footer = False
        self._buf = bytearray()  # incomplete tail kept between feeds
        self._view = memoryview(b"")
        self._i = 0
        self._pos = 0  # absolute stream offset of the next unread byte
        self._state = "header"  # header | message | footer | dead
        self._store: Optional[StoreInfo] = None
        self._compressed_default = False
        self.stream_version: Optional[tuple[int, int, int]] = None

    # -- public

    def feed(self, data) -> list[Message]:
        """Add bytes; return the messages they completed.

        Complete messages are decoded straight from `data`; only an incomplete tail is
        kept (copied) until more bytes arrive.
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
        finally:
            if self._state != "dead":
                self._buf = bytearray(self._view[self._i :])
            self._view = memoryview(b"")
            self._i = 0
        return out

    def finish(self) -> list[str]:
        """End of input: report a partial message or header, return all problems."""
        if self._state != "dead" and self._buf:
            what = {"header": "stream header", "message": "message", "footer": "stream footer"}[self._state]
            if self._state == "message" and len(self._buf) >= MESSAGE_HEADER_SIZE:
                kind, length = _HDR.unpack_from(self._buf, 0)
                what = f"{_KIND_NAMES.get(kind, kind)} message of {length} bytes"
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

    def _step(self, out: list) -> bool:
        if self._state == "header":
            if self._avail() < STREAM_HEADER_SIZE:
                return False
            head = bytes(self._consume(STREAM_HEADER_SIZE))
            if head[:4] != FOURCC:
                return self._die(
                    f"byte {self._pos - STREAM_HEADER_SIZE}: not an .rrd stream "
                    f"(expected magic {FOURCC!r}, found {head[:4]!r})"
                )
            self.stream_version = (head[4], head[5], head[6])
            self._compressed_default = head[8] == 1
            self._state = "message"
            return True
        if self._state == "footer":
            if self._avail() < STREAM_FOOTER_SIZE:
                return False
            if self._peek(STREAM_FOOTER_SIZE)[20:28] == FOURCC + FOOTER_ID:
                self._consume(STREAM_FOOTER_SIZE)
            self._state = "message"
            return True
        # message
        if self._avail() >= 4 and self._peek(4) == FOURCC:
            self._state = "header"  # a concatenated stream starts here
            return True
        if self._avail() < MESSAGE_HEADER_SIZE:
            return False
        kind, length = _HDR.unpack_from(self._view, self._i)
        start = self._pos
        if kind not in _KIND_NAMES:
            return self._die(
                f"byte {start}: unknown message kind {kind} (expected 0-3); the framing is "
                "lost, nothing after this offset can be read"
            )
        limit = self.max_message_bytes
        if self.total_size is not None:
            limit = min(limit, self.total_size - start - MESSAGE_HEADER_SIZE)
        if length > limit:
            if self.total_size is not None and length <= self.max_message_bytes:
                return self._die(
                    f"truncated: stream ends at byte {self.total_size} inside a "
                    f"{_KIND_NAMES[kind]} message of {length} bytes starting at byte {start} "
                    f"({max(limit, 0)} body bytes present); every message before it was read"
                )
            return self._die(
                f"byte {start}: {_KIND_NAMES[kind]} message claims {length} bytes, more than "
                f"the {limit}-byte limit; refused without reading it"
            )
        if self._avail() < MESSAGE_HEADER_SIZE + length:
            return False
        self._consume(MESSAGE_HEADER_SIZE)
        body = self._consume(length)
        try:
            msg = self._decode(kind, body, start)
        except Exception as exc:  # noqa: BLE001 - any decode failure is reported, not raised
            self.problems.append(
                f"byte {start}: corrupt {_KIND_NAMES[kind]} message ({length} bytes) skipped: "
                f"{type(exc).__name__}: {exc}"
            )
            return True
        if msg is not None:
            out.append(msg)
        if kind == KIND_END:
            self.has_footer = True
            self._state = "footer"
        return True

    def _decode(self, kind: int, body: bytes, offset: int) -> Optional[Message]:
        if kind == KIND_SET_STORE_INFO:
            m = pb.SetStoreInfo.FromString(body)
            info = _store_from_pb(m.info.store_id, m.info.application_id.id)
            pv = None
            if m.info.store_source.kind == pb.STORE_SOURCE_KIND_PYTHON_SDK:
                p = pb.PythonVersion.FromString(m.info.store_source.extra.payload)
                pv = (p.major, p.minor, p.patch)
            info = StoreInfo(
                info.application_id, info.recording_id, info.kind,
                _version_from_bits(m.info.store_version.crate_version_bits), pv,
            )
            self._store = info
            return StoreInfoMsg(offset, info)
        if kind == KIND_ARROW_MSG:
            m = pb.ArrowMsg.FromString(body)
            if m.encoding not in (pb.ENCODING_ARROW_IPC, pb.ENCODING_UNSPECIFIED):
                raise ValueError(f"unknown payload encoding {m.encoding}")
            payload = m.payload
            compressed = m.compression == pb.COMPRESSION_LZ4
            if compressed:
                if m.uncompressed_size > self.max_message_bytes:
                    raise ValueError(f"uncompressed size {m.uncompressed_size} over the limit")
                payload = lz4.block.decompress(payload, uncompressed_size=m.uncompressed_size)
            elif m.compression not in (pb.COMPRESSION_NONE, pb.COMPRESSION_UNSPECIFIED):
                raise ValueError(f"unknown compression {m.compression}")
            reader = pa.ipc.open_stream(pa.py_buffer(payload))
            batch = reader.read_next_batch()
            chunk = from_record_batch(batch)
            if m.HasField("chunk_id") and chunk.chunk_id is None:
                chunk.chunk_id = m.chunk_id.time_ns.to_bytes(8, "big") + m.chunk_id.inc.to_bytes(8, "big")
            store = _store_from_pb(m.store_id)
            if self._store is not None and self._store.store_key == store.store_key:
                store = self._store
            return ChunkMsg(offset, store, chunk, m.is_static if m.HasField("is_static") else None, compressed)
        if kind == KIND_BLUEPRINT_ACTIVATION:
            m = pb.BlueprintActivationCommand.FromString(body)
            return BlueprintActivationMsg(offset, _store_from_pb(m.blueprint_id), m.make_active, m.make_default)
        pb.RrdFooter.FromString(body)  # End: validate; the manifest is an index we rebuild
        return EndMsg(offset, len(body))


def iter_messages(data, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                  problems: Optional[list] = None) -> Iterator[Message]:
    """Messages of a complete in-memory stream; problems are appended to `problems`."""
    dec = RrdDecoder(max_message_bytes=max_message_bytes, total_size=len(data))
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


def read_rrd(source, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> RrdContents:
    """Decode a whole .rrd (path, bytes, file object, or object with ``rrd_bytes()``).

    Returns `RrdContents` (also unpackable as ``infos, chunks, problems``). Never
    raises on bad content; see the module docstring.
    """
    data = _read_source(source)
    out = RrdContents()
    dec = RrdDecoder(max_message_bytes=max_message_bytes, total_size=len(data))
    for msg in dec.feed(memoryview(data)):
        if isinstance(msg, StoreInfoMsg):
            out.store_infos.append(msg.info)
        elif isinstance(msg, ChunkMsg):
            out.chunks.append(msg.chunk)
            out.chunk_stores.append(msg.store)
    out.problems = dec.finish()
    out.has_footer = dec.has_footer
    return out
