"""Image messages of an MCAP file, whatever their schema, as one plain record.

Schemas read (name, schema encoding):

- ``sensor_msgs/msg/Image`` and ``sensor_msgs/msg/CompressedImage`` (``ros2msg``, CDR
  messages), decoded by ``mcap-ros2-support``;
- ``foxglove.RawImage`` and ``foxglove.CompressedImage`` as the Foxglove SDK writes
  them: ``protobuf`` (decoded by ``mcap-protobuf-support``) or ``jsonschema`` (JSON
  messages, ``data`` in base64).

`decoder_for(schema, channel)` gives a function from message bytes to `ImageMessage`,
None for a schema that is not an image (the topic is skipped with a note), or raises
`SchemaError` when the schema itself does not parse. The ``mcap*`` packages are the
``pixelrun[mcap]`` extra, imported when a file is read.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Optional

__all__ = ["ImageMessage", "SchemaError", "decoder_for", "media_type_of", "IMAGE_SCHEMAS", "missing_extra",
           "IMAGE_MSGDEF", "COMPRESSED_MSGDEF"]

ROS_IMAGE = "sensor_msgs/msg/Image"
ROS_COMPRESSED = "sensor_msgs/msg/CompressedImage"
FOXGLOVE_RAW = "foxglove.RawImage"
FOXGLOVE_COMPRESSED = "foxglove.CompressedImage"
IMAGE_SCHEMAS = (ROS_IMAGE, ROS_COMPRESSED, FOXGLOVE_RAW, FOXGLOVE_COMPRESSED)

# The two messages' ROS 2 definitions (with their dependencies, as rosbag2 writes them
# into MCAP schemas): what a rosbag2 .db3 file, which stores none, is decoded with.
_HEADER_DEFS = """================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
================================================================================
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec
"""
IMAGE_MSGDEF = ("std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n"
                "uint32 step\nuint8[] data\n" + _HEADER_DEFS)
COMPRESSED_MSGDEF = "std_msgs/Header header\nstring format\nuint8[] data\n" + _HEADER_DEFS

# ROS 1 style names ("sensor_msgs/Image") mean the same message
_ALIASES = {"sensor_msgs/Image": ROS_IMAGE, "sensor_msgs/CompressedImage": ROS_COMPRESSED}


class SchemaError(ValueError):
    """A schema that does not parse: its topic's messages cannot be read."""


@dataclass
class ImageMessage:
    """One image message: raw (encoding/width/height/step/is_bigendian) or compressed
    (`compression`: the message's format string); `stamp_ns` is the message's own time
    (ROS header.stamp or Foxglove timestamp), None when absent."""

    compressed: bool
    data: Any  # bytes-like
    stamp_ns: Optional[int]
    encoding: str = ""
    width: int = 0
    height: int = 0
    step: int = 0
    is_bigendian: bool = False
    compression: str = ""


def missing_extra(exc: ImportError) -> str:
    """The message for a missing optional reader package."""
    return (f"reading MCAP files needs the pixelrun[mcap] extra ({exc.name or exc} is not installed): "
            "pip install 'mcap>=1.2' 'mcap-ros2-support>=0.5' 'mcap-protobuf-support>=0.5' zstandard lz4")


def media_type_of(compression: str) -> Optional[str]:
    """'image/jpeg' / 'image/png' / ... for a CompressedImage format string, None when unknown.

    ROS writes e.g. ``jpeg``, ``png`` or ``bgr8; jpeg compressed bgr8``; Foxglove
    ``jpeg``, ``png``, ``webp``, ``avif``.
    """
    text = compression.lower()
    if "compresseddepth" in text:
        return None  # a 12-byte depth-quantisation header before the PNG: not an image file
    for key, media in (("jpeg", "image/jpeg"), ("jpg", "image/jpeg"), ("png", "image/png"),
                       ("webp", "image/webp"), ("avif", "image/avif")):
        if key in text:
            return media
    return None


def _stamp(sec, nsec) -> Optional[int]:
    if sec is None:
        return None
    return int(sec) * 1_000_000_000 + int(nsec or 0)


def _from_ros(msg, compressed: bool) -> ImageMessage:
    h = getattr(msg, "header", None)
    st = getattr(h, "stamp", None)
    stamp = _stamp(getattr(st, "sec", None), getattr(st, "nanosec", None))
    if compressed:
        return ImageMessage(True, msg.data, stamp, compression=str(msg.format))
    return ImageMessage(False, msg.data, stamp, str(msg.encoding), int(msg.width), int(msg.height),
                        int(msg.step), bool(msg.is_bigendian))


def _from_foxglove(msg, compressed: bool) -> ImageMessage:
    """A protobuf message or a JSON dict of foxglove.RawImage / CompressedImage."""
    get = msg.get if isinstance(msg, dict) else (lambda k, d=None: getattr(msg, k, d))
    ts = get("timestamp")
    if isinstance(ts, dict):
        stamp = _stamp(ts.get("sec"), ts.get("nsec"))
    elif ts is not None and hasattr(ts, "seconds"):
        stamp = _stamp(ts.seconds, ts.nanos)
    else:
        stamp = None
    data = get("data", b"")
    if isinstance(data, str):  # JSON: base64 (Foxglove's jsonschema says contentEncoding base64)
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"data is not base64: {exc}") from None
    if compressed:
        return ImageMessage(True, data, stamp, compression=str(get("format", "")))
    return ImageMessage(False, data, stamp, str(get("encoding", "")), int(get("width", 0)), int(get("height", 0)),
                        int(get("step", 0)), False)


def _library_decoder(module: str, schema, channel, wire: str) -> Callable[[bytes], Any]:
    """The message decoder that `module`'s DecoderFactory (mcap_ros2.decoder or
    mcap_protobuf.decoder: the optional pixelrun[mcap] extra, imported on first use) makes
    for this channel. SchemaError when the package is missing, the schema does not parse,
    or the channel's message encoding is not `wire`."""
    try:
        factory = importlib.import_module(module).DecoderFactory
    except ImportError as exc:  # this topic cannot be read; the others still are
        raise SchemaError(missing_extra(exc)) from None
    try:
        dec = factory().decoder_for(channel.message_encoding, schema)
    except Exception as exc:  # the libraries raise many kinds on a bad definition
        raise SchemaError(f"{schema.encoding} schema {schema.name!r} does not parse: {exc}") from None
    if dec is None:
        raise SchemaError(f"message encoding {channel.message_encoding!r} is not {wire}")
    return dec


def decoder_for(schema, channel) -> Optional[Callable[[bytes], ImageMessage]]:
    """bytes -> ImageMessage for a channel; None when its schema is not an image message.

    SchemaError when the schema does not parse or its reader package (the pixelrun[mcap]
    extra) is missing: that topic is named, the others are still read.
    """
    if schema is None:
        return None
    name = _ALIASES.get(schema.name, schema.name)
    if name not in IMAGE_SCHEMAS:
        return None
    enc = schema.encoding
    compressed = name in (ROS_COMPRESSED, FOXGLOVE_COMPRESSED)
    if name in (ROS_IMAGE, ROS_COMPRESSED):
        if enc != "ros2msg":
            raise SchemaError(f"schema {schema.name!r} in encoding {enc!r} (only ros2msg is read)")
        dec = _library_decoder("mcap_ros2.decoder", schema, channel, "CDR")
        return lambda data: _from_ros(dec(data), compressed)
    if enc == "protobuf":
        dec = _library_decoder("mcap_protobuf.decoder", schema, channel, "protobuf")
        return lambda data: _from_foxglove(dec(data), compressed)
    if enc == "jsonschema":
        try:
            json.loads(bytes(schema.data) or b"{}")
        except ValueError as exc:
            raise SchemaError(f"jsonschema {schema.name!r} does not parse: {exc}") from None

        def from_json(data: bytes) -> ImageMessage:
            obj = json.loads(bytes(data))
            if not isinstance(obj, dict):
                raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
            return _from_foxglove(obj, compressed)

        return from_json
    raise SchemaError(f"schema {schema.name!r} in encoding {enc!r} (expected protobuf or jsonschema)")
