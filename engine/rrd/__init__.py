"""Rerun 0.41 .rrd files and streams: where a chunk becomes bytes and back.

- A chunk becomes bytes in encode.py: `encode_chunk` (one ArrowMsg), `RrdEncoder`
  (a whole stream: header, store infos, chunks, and the End message + footer it is
  the one writer of; the SDK's file and memory sinks drive it), `encode_recording`.
- Bytes become chunks in decode.py: `RrdDecoder` (incremental, robust to damage),
  `iter_messages`, `read_rrd`.
- messages.py: the stream layout's constants, the decoded message types
  (`StoreInfo`, `ChunkMsg`, ...) and the StoreId protobuf helpers both sides share.
- footer.py: the End message's manifests and the stream footer, written
  (`ManifestBuilder`) and read back as the file's checksummed index.
- ipc.py: untrusted payload checks (bounded LZ4, Arrow IPC layout).
- proto.py: the protobuf classes, built from protos/*.proto.

Imports run one way: messages -> footer -> encode / decode, and this package
re-exports the public API::

    from pixelrun.engine import rrd
    rec = rrd.read_rrd("file.rrd")
"""

from pixelrun.engine.rrd.decode import (
    RESCAN_BYTES,
    SNIFF_BYTES,
    RrdDecoder,
    index_of,
    iter_messages,
    looks_like_rrd,
    read_rrd,
)
from pixelrun.engine.rrd.encode import (
    EncodedChunk,
    RrdEncoder,
    encode_chunk,
    encode_payload,
    encode_recording,
    encode_store_info,
    ipc_payload,
    ipc_size,
    lz4_compress,
    stream_header,
)
from pixelrun.engine.rrd.ipc import (
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    LZ4_MAX_EXPANSION,
    check_ipc_payload,
    default_max_decompressed_bytes,
    lz4_decompress,
)
from pixelrun.engine.rrd.messages import (
    DEFAULT_MAX_MESSAGE_BYTES,
    FOOTER_ID,
    FOURCC,
    KIND_ARROW_MSG,
    KIND_BLUEPRINT_ACTIVATION,
    KIND_END,
    KIND_NAMES,
    KIND_SET_STORE_INFO,
    MESSAGE_HEADER_SIZE,
    RERUN_DEFAULT_PORT,
    RERUN_VERSION,
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
    default_port,
    message_header,
    store_from_pb,
    store_id_pb,
)

__all__ = [
    "RESCAN_BYTES", "SNIFF_BYTES", "RrdDecoder", "index_of", "iter_messages", "looks_like_rrd", "read_rrd",
    "EncodedChunk", "RrdEncoder", "encode_chunk", "encode_payload", "encode_recording", "encode_store_info",
    "ipc_payload", "ipc_size", "lz4_compress", "stream_header",
    "DEFAULT_MAX_DECOMPRESSED_BYTES", "LZ4_MAX_EXPANSION", "check_ipc_payload",
    "default_max_decompressed_bytes", "lz4_decompress",
    "DEFAULT_MAX_MESSAGE_BYTES", "FOOTER_ID", "FOURCC", "KIND_ARROW_MSG", "KIND_BLUEPRINT_ACTIVATION",
    "KIND_END", "KIND_NAMES", "KIND_SET_STORE_INFO", "MESSAGE_HEADER_SIZE", "RERUN_DEFAULT_PORT",
    "RERUN_VERSION", "STREAM_FOOTER_SIZE", "STREAM_HEADER_SIZE", "BlueprintActivationMsg", "ChunkMsg",
    "DamagedMessage", "EndMsg", "Message", "RrdContents", "StoreInfo", "StoreInfoMsg", "default_port",
    "message_header", "store_from_pb", "store_id_pb",
]
