"""Rerun 0.41's gRPC message proxy on the wire, framed by hand.

An SDK streams ``WriteMessagesRequest { LogMsg log_msg = 1 }`` messages to
``/rerun.sdk_comms.v1alpha1.MessageProxyService/WriteMessages`` (client streaming; the
server answers one empty ``WriteMessagesResponse`` when the stream ends). ``LogMsg`` is
a oneof whose field numbers equal the .rrd frame kinds: 1 SetStoreInfo, 2 ArrowMsg,
3 BlueprintActivationCommand, and each body is byte for byte the body of that .rrd
message (engine/rrd/encode.py). So a request is two length-delimited protobuf headers
in front of an .rrd message body, and back again:

    request = 0x0a varint(len(logmsg)) | logmsg
    logmsg  = (kind << 3 | 2) varint(len(body)) | body

Framing here instead of through the generated classes (engine/grpc/gen/, the
reference the tests check these bytes against) keeps a frame's pixels out of
protobuf: one join on the way out, zero-copy views on the way in.
"""

from __future__ import annotations

from typing import Sequence
from urllib.parse import urlsplit

from pixelrun.engine.rrd.encode import varint
from pixelrun.engine.rrd.messages import (
    KIND_ARROW_MSG,
    KIND_BLUEPRINT_ACTIVATION,
    KIND_NAMES,
    KIND_SET_STORE_INFO,
    MESSAGE_HEADER,
    MESSAGE_HEADER_SIZE,
    RERUN_DEFAULT_PORT,
    message_header,
    read_varint,
)

__all__ = [
    "SERVICE", "WRITE_MESSAGES", "READ_MESSAGES", "DEFAULT_URL", "WireError",
    "request_from_frame", "frame_from_request", "parse_url",
]

SERVICE = "rerun.sdk_comms.v1alpha1.MessageProxyService"
WRITE_MESSAGES = f"/{SERVICE}/WriteMessages"
READ_MESSAGES = f"/{SERVICE}/ReadMessages"
DEFAULT_URL = f"rerun+http://127.0.0.1:{RERUN_DEFAULT_PORT}/proxy"
# LogMsg's oneof fields carry these .rrd kinds (field number == kind)
LOG_MSG_KINDS = (KIND_SET_STORE_INFO, KIND_ARROW_MSG, KIND_BLUEPRINT_ACTIVATION)
_REQUEST_TAG = 0x0A  # WriteMessagesRequest.log_msg: field 1, length-delimited


class WireError(ValueError):
    """Bytes that are not a WriteMessagesRequest this side can use."""


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    return read_varint(buf, pos, WireError)


def request_from_frame(parts: Sequence) -> bytes:
    """The WriteMessagesRequest carrying one .rrd message, given as bytes-like parts
    (16-byte frame header first, as engine/rrd/encode.py makes them)."""
    head = memoryview(parts[0])
    kind, length = MESSAGE_HEADER.unpack_from(head)
    if kind not in LOG_MSG_KINDS:
        raise WireError(f"an .rrd {KIND_NAMES.get(kind, kind)} message has no LogMsg form")
    inner = bytes([kind << 3 | 2]) + varint(length)
    outer = bytes([_REQUEST_TAG]) + varint(len(inner) + length)
    return b"".join([outer, inner, head[MESSAGE_HEADER_SIZE:], *parts[1:]])


def frame_from_request(data) -> tuple[int, memoryview, bytes]:
    """(kind, body, frame header) of the .rrd message a WriteMessagesRequest carries;
    `body` is a view into `data`. Raises WireError on anything else."""
    buf = memoryview(data)
    if len(buf) == 0:
        raise WireError("empty WriteMessagesRequest (no log_msg)")
    if buf[0] != _REQUEST_TAG:
        raise WireError(f"WriteMessagesRequest starts with tag byte 0x{buf[0]:02x}, expected 0x0a (log_msg)")
    n, pos = _read_varint(buf, 1)
    if pos + n != len(buf):
        raise WireError(f"log_msg claims {n} bytes, the request has {len(buf) - pos} after its header")
    if n == 0:
        raise WireError("LogMsg with no message set")
    tag, pos = _read_varint(buf, pos)
    kind, wire_type = tag >> 3, tag & 7
    if wire_type != 2 or kind not in LOG_MSG_KINDS:
        raise WireError(f"LogMsg field {kind} (wire type {wire_type}) is not set_store_info (1), "
                        "arrow_msg (2) or blueprint_activation_command (3)")
    length, pos = _read_varint(buf, pos)
    if pos + length != len(buf):
        raise WireError(f"LogMsg {KIND_NAMES[kind]} claims {length} bytes, {len(buf) - pos} follow "
                        "(one message per request expected)")
    return kind, buf[pos:], message_header(kind, length)


def parse_url(url: str) -> tuple[str, bool]:
    """("host:port", TLS?) of a Rerun proxy URL: ``rerun+http://host:port/proxy``
    (plain), ``rerun+https://`` or ``rerun://`` (TLS), also plain ``http(s)://`` and
    ``host:port``. Raises ValueError naming what was expected."""
    text = str(url).strip()
    if "://" not in text:
        text = f"rerun+http://{text}"
    parts = urlsplit(text)
    schemes = {"rerun+http": False, "http": False, "rerun+https": True, "rerun": True, "https": True}
    if parts.scheme not in schemes:
        raise ValueError(f"connect_grpc: unsupported URL scheme {parts.scheme!r} in {url!r}; expected "
                         "rerun+http://host:port/proxy (or rerun+https://, rerun://)")
    if parts.path not in ("", "/", "/proxy"):
        raise ValueError(f"connect_grpc: {url!r} does not name the message proxy (its path should be "
                         "/proxy, as in rerun+http://127.0.0.1:9876/proxy)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"connect_grpc: bad port in {url!r}") from None
    host = parts.hostname
    if not host:
        raise ValueError(f"connect_grpc: no host in {url!r}")
    if port is None:
        port = 443 if schemes[parts.scheme] and parts.scheme != "rerun" else RERUN_DEFAULT_PORT
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}", schemes[parts.scheme]
