"""Where a chunk becomes bytes: the .rrd encoder, as Rerun 0.41 writes a stream.

Writing::

    enc = RrdEncoder(StoreInfo("app", "rec-id"), compression=False)
    out.write(enc.stream_header()); out.write(enc.store_info())
    for chunk in chunks:
        for part in enc.chunk(chunk):       # bytes-like parts (header + IPC payload)
            out.write(part)
    out.write(enc.end())                    # End message + footer (rrd verify needs it)

`RrdEncoder` is the one writer of a stream's offsets, manifests and footer; one stream
may hold several recordings (``store_info(other)``, ``chunk(c, other)``). A caller
that encodes a chunk once for several destinations (the SDK encodes once per chunk
and hands the result to every sink) passes the `EncodedChunk` to `add_encoded`,
which records it at the current offset; a sink that owns a pyarrow native file then
writes it with ``EncodedChunk.write_to(f)``, which streams the IPC payload from the
chunk's own buffers.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Iterable, Optional

import lz4.block
import pyarrow as pa

from pixelrun.engine.chunk import Chunk, chunk_id_parts, to_record_batch
from pixelrun.engine.rrd.footer import ManifestBuilder, footer_body, stream_footer
from pixelrun.engine.rrd.messages import (
    FOURCC,
    KIND_ARROW_MSG,
    KIND_END,
    KIND_SET_STORE_INFO,
    MESSAGE_HEADER_SIZE,
    RERUN_VERSION,
    StoreInfo,
    message_header,
    store_id_pb,
    version_bits,
)
from pixelrun.engine.rrd.proto import pb


def varint(n: int) -> bytes:
    """`n` as a protobuf base-128 varint."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def stream_header(compressed: bool = False, version: tuple[int, int, int] = RERUN_VERSION) -> bytes:
    """The 12-byte stream header."""
    return FOURCC + bytes([version[0], version[1], version[2], 0]) + bytes(
        [1 if compressed else 0, 2, 0, 0]
    )


def encode_store_info(info: StoreInfo, row_id: Optional[tuple[int, int]] = None) -> bytes:
    """A complete SetStoreInfo message (header + body)."""
    msg = pb.SetStoreInfo()
    t, inc = row_id if row_id is not None else (time.time_ns(), int.from_bytes(os.urandom(8), "big"))
    msg.row_id.time_ns = t
    msg.row_id.inc = inc
    msg.info.store_id.CopyFrom(store_id_pb(info))
    src = msg.info.store_source
    src.kind = pb.STORE_SOURCE_KIND_PYTHON_SDK
    pv = info.python_version or tuple(sys.version_info[:3])
    src.extra.payload = pb.PythonVersion(major=pv[0], minor=pv[1], patch=pv[2]).SerializeToString()
    msg.info.store_version.crate_version_bits = version_bits(info.sdk_version)
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
        return encode_payload(chunk, store, batch, lz4_compress(ipc), compressed=True,
                              uncompressed_size=ipc.size)
    return encode_payload(chunk, store, batch, None, compressed=False)


def lz4_compress(ipc) -> bytes:
    """An IPC payload as one LZ4 *block* (no size prefix), as Rerun 0.41 stores it;
    python-lz4 releases the GIL while it compresses."""
    return lz4.block.compress(memoryview(ipc), store_size=False)


def encode_payload(
    chunk: Chunk, store: StoreInfo, batch: pa.RecordBatch, payload, *, compressed: bool,
    uncompressed_size: Optional[int] = None,
) -> EncodedChunk:
    """One ArrowMsg around a payload the caller prepared: `payload` is the LZ4 block
    of ``ipc_payload(batch)`` when `compressed` (`uncompressed_size` = the IPC size),
    else that IPC payload itself, or None to stream it lazily from `batch`. Lets a
    caller that tried LZ4 and kept the raw IPC bytes write them without encoding twice."""
    if chunk.chunk_id is None:
        raise ValueError("encode_payload: chunk_id must be set")
    if compressed:
        if payload is None or uncompressed_size is None:
            raise ValueError("encode_payload: a compressed payload needs its bytes and uncompressed_size")
        uncompressed, plen = uncompressed_size, len(payload)
    elif payload is None:
        uncompressed = plen = ipc_size(batch)
    else:
        uncompressed = plen = payload.size if isinstance(payload, pa.Buffer) else len(payload)
    msg = pb.ArrowMsg()
    msg.store_id.CopyFrom(store_id_pb(store))
    t, inc = chunk_id_parts(chunk.chunk_id)
    msg.chunk_id.time_ns = t
    msg.chunk_id.inc = inc
    msg.compression = pb.COMPRESSION_LZ4 if compressed else pb.COMPRESSION_NONE
    msg.uncompressed_size = uncompressed
    msg.encoding = pb.ENCODING_ARROW_IPC
    msg.is_static = chunk.is_static
    prefix = msg.SerializeToString() + b"\x2a" + varint(plen)  # field 5, wire type 2
    head = message_header(KIND_ARROW_MSG, len(prefix) + plen) + prefix
    return EncodedChunk(head, batch, payload, plen, uncompressed)


class RrdEncoder:
    """Stateful writer of one .rrd stream; tracks what the footer needs.

    Every method returns bytes (or a list of bytes-like parts) for the caller to write
    in order, and advances `offset` by exactly that many bytes; the encoder does no
    I/O itself, so any sink (file, memory) can use it. The stream may hold several
    recordings: each gets a manifest in the footer, in the order of their
    `store_info`. `store` (optional) is the recording `store_info()` and `chunk()`
    use when given none. Thread-compatible, not thread-safe: one writer at a time.
    """

    def __init__(self, store: Optional[StoreInfo] = None, *, compression: bool = False) -> None:
        self.store = store
        self.compression = compression
        self.offset = 0  # bytes of the stream returned so far
        self.started = False  # stream header returned
        self.ended = False  # End message + footer returned
        self._manifests: dict[tuple, ManifestBuilder] = {}
        if store is not None:
            self._manifests[store.store_key] = ManifestBuilder(store)

    def _store(self, store: Optional[StoreInfo]) -> StoreInfo:
        store = store if store is not None else self.store
        if store is None:
            raise ValueError("RrdEncoder: no recording given and none set at construction")
        return store

    def has_store(self, store: StoreInfo) -> bool:
        """Whether `store` has a manifest in this stream already (its store info written)."""
        return store.store_key in self._manifests

    def stream_header(self) -> bytes:
        """The 12-byte stream header (once, first)."""
        if self.started:
            raise ValueError("RrdEncoder: the stream header was already written")
        self.started = True
        b = stream_header(self.compression)
        self.offset += len(b)
        return b

    def store_info(self, store: Optional[StoreInfo] = None) -> bytes:
        """A SetStoreInfo message; the recording gets a manifest in the footer."""
        store = self._store(store)
        self._manifests.setdefault(store.store_key, ManifestBuilder(store))
        b = encode_store_info(store)
        self.offset += len(b)
        return b

    def chunk(self, chunk: Chunk, store: Optional[StoreInfo] = None) -> list:
        """Encode one chunk of `store` (default: the encoder's); its message parts."""
        store = self._store(store)
        batch = to_record_batch(chunk)
        enc = encode_chunk(chunk, store, compression=self.compression, batch=batch)
        self.add_encoded(store, chunk, batch, enc)
        return enc.parts

    def add_encoded(self, store: StoreInfo, chunk: Chunk, batch: pa.RecordBatch, enc: EncodedChunk) -> None:
        """Record a chunk message encoded elsewhere (`encode_chunk(chunk, store, batch=batch)`)
        that the caller writes next, at the current `offset`; `store_info(store)` first."""
        manifest = self._manifests.get(store.store_key)
        if manifest is None:
            raise ValueError(
                f"RrdEncoder: chunk of {chunk.entity_path!r} for recording {store.recording_id!r}, "
                "whose store info is not in this stream (call store_info first)"
            )
        manifest.add(chunk, batch, self.offset + MESSAGE_HEADER_SIZE, enc.size - MESSAGE_HEADER_SIZE,
                     enc.uncompressed_size)
        self.offset += enc.size

    def footer(self) -> bytes:
        """The End message carrying the RrdFooter, then the 32-byte stream footer, for
        what was written so far, without ending the stream (a snapshot's tail)."""
        body = footer_body(list(self._manifests.values()))
        body_offset = self.offset + MESSAGE_HEADER_SIZE
        return message_header(KIND_END, len(body)) + body + stream_footer(body_offset, body)

    def end(self) -> bytes:
        """`footer()`, ending the stream."""
        out = self.footer()
        self.offset += len(out)
        self.ended = True
        return out


def encode_recording(store: StoreInfo, chunks: Iterable[Chunk], *, compression: bool = False) -> bytes:
    """A whole .rrd stream in memory (tests, small exports)."""
    enc = RrdEncoder(store, compression=compression)
    parts: list = [enc.stream_header(), enc.store_info()]
    for c in chunks:
        parts.extend(enc.chunk(c))  # join takes Arrow buffers as they are: one copy, not two
    parts.append(enc.end())
    return b"".join(parts)
