"""What an .rrd stream is made of, shared by the encoder, the decoder and the footer.

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
                                            recording, see footer.py)
    stream footer   32 bytes after the End message: footer body offset u64, body size
                    u64, xxh32 of the body (seed 7850921) u32, b"RRF2FOOT", u32 1.

A file may hold several streams back to back (``cat a.rrd b.rrd``); the decoder
accepts that.

This module holds the constants of that layout, the decoded message types, and the
StoreInfo <-> protobuf StoreId helpers; it imports nothing else of engine/rrd but
proto.py, so encode.py, decode.py and footer.py all import it at module top.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Optional, Union

from pixelrun.engine.chunk import Chunk, printable
from pixelrun.engine.rrd.proto import pb

FOURCC = b"RRF2"
RERUN_VERSION = (0, 41, 0)  # the version we claim to write, as Rerun files carry it
STREAM_HEADER_SIZE = 12
MESSAGE_HEADER_SIZE = 16
STREAM_FOOTER_SIZE = 32
FOOTER_ID = b"FOOT"

KIND_END = 0
KIND_SET_STORE_INFO = 1
KIND_ARROW_MSG = 2
KIND_BLUEPRINT_ACTIVATION = 3
KIND_NAMES = {0: "End", 1: "SetStoreInfo", 2: "ArrowMsg", 3: "BlueprintActivationCommand"}

# A message header: kind u64 LE, body length u64 LE.
MESSAGE_HEADER = struct.Struct("<QQ")

# A larger claim than this is refused (memory safety on corrupt or hostile input).
DEFAULT_MAX_MESSAGE_BYTES = 4 << 30

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


@dataclass
class DamagedMessage:
    """A message the decoder skipped: where it is, what it is, why."""

    offset: int  # byte offset of its header in the stream
    number: int  # 1 for the first message after the stream header
    kind: str
    length: int
    what: Optional[str]  # entity (and time range, from the file's index) when known
    reason: str

    def __str__(self) -> str:
        what = f" for {self.what}" if self.what else ""
        return printable(f"byte {self.offset}: corrupt {self.kind} message (message {self.number}, "
                         f"{self.length} bytes){what} skipped: {self.reason}", 600)


# --------------------------------------------------------------- protobuf helpers


def version_bits(v: tuple[int, int, int]) -> int:
    """A (major, minor, patch) as Rerun's crate_version_bits (i32, bytes LE)."""
    return int.from_bytes(bytes([v[0], v[1], v[2], 0]), "little", signed=True)


def version_from_bits(bits: int) -> tuple[int, int, int]:
    b = int(bits).to_bytes(4, "little", signed=True)
    return (b[0], b[1], b[2])


def store_id_pb(info: StoreInfo):
    """The protobuf StoreId of a recording (ArrowMsg, SetStoreInfo, RrdManifest)."""
    sid = pb.StoreId(
        kind=pb.STORE_KIND_BLUEPRINT if info.kind == "blueprint" else pb.STORE_KIND_RECORDING,
        recording_id=info.recording_id,
    )
    sid.application_id.id = info.application_id
    return sid


def store_from_pb(sid, fallback_app: str = "") -> StoreInfo:
    """A StoreInfo from a protobuf StoreId (`fallback_app` when it names none)."""
    kind = "blueprint" if sid.kind == pb.STORE_KIND_BLUEPRINT else "recording"
    app = sid.application_id.id if sid.HasField("application_id") else fallback_app
    return StoreInfo(app, sid.recording_id, kind)


def message_header(kind: int, length: int) -> bytes:
    """The 16-byte header of a message of `kind` with a `length`-byte body."""
    return MESSAGE_HEADER.pack(kind, length)


def read_varint(buf, pos: int, error: type = ValueError) -> tuple[int, int]:
    """The protobuf varint at byte `pos` of `buf`: (value, position after it). Raises
    `error` for one that runs past the end or over 10 bytes."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise error(f"truncated varint at byte {pos}")
        if shift > 63:
            raise error(f"varint longer than 10 bytes at byte {pos}")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos
