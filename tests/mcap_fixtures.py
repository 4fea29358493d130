"""Fixture bags for the MCAP tests and benchmark, written with the `mcap` writers.

`write_ros_bag(path, images)` writes ROS 2 ``sensor_msgs/msg/Image`` (and
``CompressedImage``) messages, one topic per entry, zstd-compressed chunks; the
Foxglove writers do the same for ``foxglove.RawImage`` / ``foxglove.CompressedImage``
in protobuf and JSON. The pixel contents are built here from NumPy arrays; what they
should look like is computed by the tests themselves, never by the code under test.
"""

from __future__ import annotations

import base64
import io
import json
import sqlite3
from dataclasses import dataclass
from typing import Optional

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from mcap.writer import CompressionType, Writer
from mcap_ros2._dynamic import serialize_dynamic
from mcap_ros2.writer import Writer as Ros2Writer
from PIL import Image

# Written out here, not imported from engine/mcap/messages.py (which .db3 files are decoded
# with): a wrong definition there must not also write the bags that test it.
_HEADER_MSGDEFS = """================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
================================================================================
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec
"""

IMAGE_MSGDEF = """std_msgs/Header header
uint32 height
uint32 width
string encoding
uint8 is_bigendian
uint32 step
uint8[] data
""" + _HEADER_MSGDEFS

COMPRESSED_MSGDEF = """std_msgs/Header header
string format
uint8[] data
""" + _HEADER_MSGDEFS


@dataclass
class RawImage:
    """One raw image message: `data` as the wire holds it (rows of `step` bytes)."""

    topic: str
    encoding: str
    width: int
    height: int
    step: int
    data: bytes
    is_bigendian: bool = False


@dataclass
class Compressed:
    topic: str
    format: str
    data: bytes


def padded(rows: np.ndarray, step: int) -> bytes:
    """(H, row_bytes) uint8 rows written `step` bytes apart (padding filled with 0xEE)."""
    h, n = rows.shape
    out = np.full((h, step), 0xEE, np.uint8)
    out[:, :n] = rows
    return out.tobytes()


def ros_time(ns: int) -> dict:
    return {"sec": ns // 1_000_000_000, "nanosec": ns % 1_000_000_000}


def write_ros_bag(path, messages: list, times: Optional[list] = None, chunk_size: int = 1 << 20,
                  compression: CompressionType = CompressionType.ZSTD, stamp_offset: int = 500) -> None:
    """Each message (RawImage or Compressed) at log time `times[i]` (default 1000 + i ns
    per message... in order), publish time +1 ns, header.stamp + `stamp_offset` ns."""
    with open(path, "wb") as f:
        w = Ros2Writer(f, chunk_size=chunk_size, compression=compression)
        img = w.register_msgdef("sensor_msgs/msg/Image", IMAGE_MSGDEF)
        comp = w.register_msgdef("sensor_msgs/msg/CompressedImage", COMPRESSED_MSGDEF)
        for i, m in enumerate(messages):
            t = times[i] if times is not None else 1_000_000_000 + i
            header = {"stamp": ros_time(t + stamp_offset), "frame_id": "cam"}
            if isinstance(m, RawImage):
                w.write_message(m.topic, img, {"header": header, "height": m.height, "width": m.width,
                                               "encoding": m.encoding, "is_bigendian": int(m.is_bigendian),
                                               "step": m.step, "data": m.data},
                                log_time=t, publish_time=t + 1)
            else:
                w.write_message(m.topic, comp, {"header": header, "format": m.format, "data": m.data},
                                log_time=t, publish_time=t + 1)
        w.finish()


# ------------------------------------------------------------------------ Foxglove


def _foxglove_classes():
    """foxglove.RawImage and foxglove.CompressedImage classes, built from their .proto
    definitions (field numbers as in foxglove/schemas)."""
    pool = descriptor_pool.DescriptorPool()
    ts = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(ts)
    pool.Add(ts)
    T = descriptor_pb2.FieldDescriptorProto

    def file(name: str, msg: str, fields: list) -> None:
        fd = descriptor_pb2.FileDescriptorProto(name=f"foxglove/{name}.proto", package="foxglove", syntax="proto3",
                                                dependency=["google/protobuf/timestamp.proto"])
        m = fd.message_type.add(name=msg)
        for fname, num, typ in fields:
            f = m.field.add(name=fname, number=num, label=T.LABEL_OPTIONAL, type=typ)
            if typ == T.TYPE_MESSAGE:
                f.type_name = ".google.protobuf.Timestamp"
        pool.Add(fd)

    file("RawImage", "RawImage", [("timestamp", 1, T.TYPE_MESSAGE), ("frame_id", 7, T.TYPE_STRING),
                                  ("width", 2, T.TYPE_FIXED32), ("height", 3, T.TYPE_FIXED32),
                                  ("encoding", 4, T.TYPE_STRING), ("step", 5, T.TYPE_FIXED32),
                                  ("data", 6, T.TYPE_BYTES)])
    file("CompressedImage", "CompressedImage", [("timestamp", 1, T.TYPE_MESSAGE), ("frame_id", 4, T.TYPE_STRING),
                                                ("data", 2, T.TYPE_BYTES), ("format", 3, T.TYPE_STRING)])
    raw = message_factory.GetMessageClass(pool.FindMessageTypeByName("foxglove.RawImage"))
    comp = message_factory.GetMessageClass(pool.FindMessageTypeByName("foxglove.CompressedImage"))
    return raw, comp


def _descriptor_set(cls) -> bytes:
    fds = descriptor_pb2.FileDescriptorSet()
    seen = set()

    def add(fd) -> None:
        for dep in fd.dependencies:
            add(dep)
        if fd.name not in seen:
            seen.add(fd.name)
            fd.CopyToProto(fds.file.add())

    add(cls.DESCRIPTOR.file)
    return fds.SerializeToString()


def write_foxglove_bag(path, raw: list, compressed: list, times: Optional[list] = None, json_topics=(),
                       stamp_offset: int = 700) -> None:
    """foxglove.RawImage (RawImage entries) and foxglove.CompressedImage messages, in
    protobuf, except topics in `json_topics`, which use the JSON schema (data base64)."""
    Raw, Comp = _foxglove_classes()
    with open(path, "wb") as f:
        w = Writer(f, compression=CompressionType.LZ4)
        w.start(profile="", library="pixelrun-tests")
        pb_raw = w.register_schema("foxglove.RawImage", "protobuf", _descriptor_set(Raw))
        pb_comp = w.register_schema("foxglove.CompressedImage", "protobuf", _descriptor_set(Comp))
        js_raw = w.register_schema("foxglove.RawImage", "jsonschema", json.dumps(
            {"type": "object", "properties": {"data": {"type": "string", "contentEncoding": "base64"}}}).encode())
        channels: dict = {}
        msgs = [*raw, *compressed]
        for i, m in enumerate(msgs):
            t = times[i] if times is not None else 2_000_000_000 + i
            stamp = t + stamp_offset
            is_json = m.topic in json_topics
            if m.topic not in channels:
                if isinstance(m, RawImage):
                    sid, enc = (js_raw, "json") if is_json else (pb_raw, "protobuf")
                else:
                    sid, enc = pb_comp, "protobuf"
                channels[m.topic] = w.register_channel(m.topic, enc, sid)
            if isinstance(m, RawImage) and is_json:
                body = json.dumps({"timestamp": {"sec": stamp // 10**9, "nsec": stamp % 10**9}, "frame_id": "cam",
                                   "width": m.width, "height": m.height, "encoding": m.encoding, "step": m.step,
                                   "data": base64.b64encode(m.data).decode()}).encode()
            elif isinstance(m, RawImage):
                msg = Raw(frame_id="cam", width=m.width, height=m.height, encoding=m.encoding, step=m.step,
                          data=m.data)
                msg.timestamp.seconds, msg.timestamp.nanos = stamp // 10**9, stamp % 10**9
                body = msg.SerializeToString()
            else:
                msg = Comp(frame_id="cam", data=m.data, format=m.format)
                msg.timestamp.seconds, msg.timestamp.nanos = stamp // 10**9, stamp % 10**9
                body = msg.SerializeToString()
            w.add_message(channels[m.topic], log_time=t, data=body, publish_time=t + 2)
        w.finish()


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 array (Pillow)."""
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def write_db3(path, messages: list, times: Optional[list] = None, stamp_offset: int = 500) -> None:
    """A rosbag2 SQLite bag (.db3) of RawImage / Compressed messages, CDR-encoded, as
    rosbag2's sqlite3 storage plugin lays it out (topics + messages tables)."""
    enc = {"sensor_msgs/msg/Image": serialize_dynamic("sensor_msgs/msg/Image", IMAGE_MSGDEF)["sensor_msgs/msg/Image"],
           "sensor_msgs/msg/CompressedImage": serialize_dynamic("sensor_msgs/msg/CompressedImage", COMPRESSED_MSGDEF)[
               "sensor_msgs/msg/CompressedImage"]}
    con = sqlite3.connect(str(path))
    con.executescript("""
        CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);
        CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL, metadata TEXT NOT NULL);
        CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                            serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);
        CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, timestamp INTEGER NOT NULL,
                              data BLOB NOT NULL);
        CREATE INDEX timestamp_idx ON messages (timestamp ASC);
    """)
    ids: dict = {}
    for i, m in enumerate(messages):
        t = times[i] if times is not None else 3_000_000_000 + i
        typ = "sensor_msgs/msg/Image" if isinstance(m, RawImage) else "sensor_msgs/msg/CompressedImage"
        if m.topic not in ids:
            ids[m.topic] = len(ids) + 1
            con.execute("INSERT INTO topics VALUES (?, ?, ?, 'cdr', '')", (ids[m.topic], m.topic, typ))
        header = {"stamp": ros_time(t + stamp_offset), "frame_id": "cam"}
        if isinstance(m, RawImage):
            body = {"header": header, "height": m.height, "width": m.width, "encoding": m.encoding,
                    "is_bigendian": int(m.is_bigendian), "step": m.step, "data": m.data}
        else:
            body = {"header": header, "format": m.format, "data": m.data}
        con.execute("INSERT INTO messages(topic_id, timestamp, data) VALUES (?, ?, ?)",
                    (ids[m.topic], t, bytes(enc[typ](body))))
    con.commit()
    con.close()
