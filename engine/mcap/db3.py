"""rosbag2's SQLite storage (``.db3``, ROS 2's default before MCAP): its image messages.

A ``.db3`` file holds a ``topics`` table (id, name, type, serialization_format) and a
``messages`` table (topic_id, timestamp = the receive time in ns, data = the CDR
message). It carries no message definitions, so the two image types are decoded with
their well-known definitions (``sensor_msgs/msg/Image`` and ``CompressedImage``, which
have not changed since ROS 2 began) by ``mcap-ros2-support``; SQLite is Python's own
``sqlite3``. Messages are streamed in timestamp order (a cursor, never the whole file).

The timestamp becomes ``message_log_time``; ``.db3`` has no publish time, so there is no
``message_publish_time`` timeline; ``header.stamp`` is ``ros2_timestamp`` as for MCAP.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from pixelrun.engine.mcap.messages import (
    COMPRESSED_MSGDEF,
    IMAGE_MSGDEF,
    ROS_COMPRESSED,
    ROS_IMAGE,
    SchemaError,
    decoder_for,
    missing_extra,
)

__all__ = ["SQLITE_MAGIC", "is_db3", "iter_db3_messages", "Db3Message"]

SQLITE_MAGIC = b"SQLite format 3\x00"
_MSGDEFS = {ROS_IMAGE: IMAGE_MSGDEF, ROS_COMPRESSED: COMPRESSED_MSGDEF}


def starts_with(path, magic: bytes) -> bool:
    """Whether a file starts with `magic` (False when unreadable): how a bag's kind is told
    (reader.py's `is_mcap` too)."""
    try:
        with open(os.fspath(path), "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


def is_db3(path) -> bool:
    """Whether a file starts with SQLite's magic (False when unreadable)."""
    return starts_with(path, SQLITE_MAGIC)


@dataclass
class Db3Message:
    """One message row: what the MCAP path's row builder reads (no publish time)."""

    data: bytes
    log_time: int
    publish_time: Optional[int] = None


def iter_db3_messages(path, topics, notes: list, problems: list
                      ) -> Iterator[tuple[str, Optional[Callable], Optional[str], Db3Message]]:
    """(topic, decode or None, schema problem or None, message) for every message of the
    image topics (all of `topics` when given), in timestamp order. Topics of other types
    are noted once and skipped; a file that is not a rosbag2 database is a problem."""
    try:
        from mcap.records import Channel, Schema  # noqa: PLC0415 - the optional pixelrun[mcap] extra
    except ImportError as exc:
        raise ImportError(missing_extra(exc)) from exc
    uri = "file:" + os.path.abspath(os.fspath(path)) + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        problems.append(f"cannot open the SQLite file: {exc}")
        return
    try:
        try:
            rows = con.execute("SELECT id, name, type, serialization_format FROM topics").fetchall()
        except sqlite3.Error as exc:
            problems.append(f"not a rosbag2 database (no readable topics table: {exc})")
            return
        decoders: dict[int, tuple] = {}
        for tid, name, typ, ser in rows:
            if topics is not None and name not in topics:
                continue
            if typ not in _MSGDEFS:
                notes.append(f"{name}: {typ} is not an image message; topic skipped")
                continue
            dec, err = None, None
            if ser != "cdr":
                err = f"serialization {ser!r} (only cdr is read)"
            else:
                schema = Schema(id=tid, name=typ, encoding="ros2msg", data=_MSGDEFS[typ].encode())
                channel = Channel(id=tid, topic=name, message_encoding="cdr", schema_id=tid, metadata={})
                try:
                    dec = decoder_for(schema, channel)
                except SchemaError as exc:
                    err = str(exc)
            decoders[tid] = (name, dec, err)
        if not decoders:
            return
        marks = ",".join("?" * len(decoders))
        cur = con.execute(f"SELECT topic_id, timestamp, data FROM messages WHERE topic_id IN ({marks}) "
                          "ORDER BY timestamp", list(decoders))
        while True:
            try:
                batch = cur.fetchmany(64)
            except sqlite3.Error as exc:  # a damaged page: what came before is kept
                problems.append(f"the database is damaged ({exc}); what came before is shown")
                return
            if not batch:
                return
            for tid, ts, data in batch:
                name, dec, err = decoders[tid]
                yield name, dec, err, Db3Message(bytes(data), int(ts))
    finally:
        con.close()
