"""`pixelrun info FILE.mcap` from the summary section alone (no message is read).

An MCAP file written to its end carries a summary: schemas, channels, per-channel
message counts, the time range and one index entry per chunk. That is all `info`
needs, so a 50 GB bag answers at once. Without a summary (a truncated file),
`summarize` returns None and the caller reads the file instead.
"""

from __future__ import annotations

import os
from typing import Optional

from pixelrun.engine.chunk import format_time, printable
from pixelrun.engine.mcap.messages import FOXGLOVE_COMPRESSED, IMAGE_SCHEMAS, ROS_COMPRESSED
from pixelrun.engine.mcap.reader import LOG_TIME, _import_mcap, store_info_for

__all__ = ["summarize", "render_text"]


def _shown_as(schema) -> str:
    if schema is None or schema.name not in IMAGE_SCHEMAS and schema.name not in ("sensor_msgs/Image",
                                                                                  "sensor_msgs/CompressedImage"):
        return "not an image (skipped)"
    if schema.name in (ROS_COMPRESSED, FOXGLOVE_COMPRESSED, "sensor_msgs/CompressedImage"):
        return "EncodedImage"
    return "Image / DepthImage (by encoding)"


def summarize(path) -> Optional[dict]:
    """What `info` prints for an MCAP file, as plain data; None when it has no summary."""
    SeekingReader = _import_mcap()[0]
    with open(os.fspath(path), "rb") as f:
        reader = SeekingReader(f)
        try:
            summary = reader.get_summary()
            header = reader.get_header()
        except Exception:  # no footer / summary: the caller reads the whole file
            return None
    if summary is None:
        return None
    stats = summary.statistics
    counts = stats.channel_message_counts if stats is not None else {}
    info = store_info_for(path)
    chunks = summary.chunk_indexes
    channels = []
    for cid, ch in sorted(summary.channels.items(), key=lambda kv: kv[1].topic):
        schema = summary.schemas.get(ch.schema_id)
        channels.append({
            "topic": ch.topic,
            "schema": schema.name if schema is not None else "",
            "schema_encoding": schema.encoding if schema is not None else "",
            "message_encoding": ch.message_encoding,
            "messages": int(counts.get(cid, 0)) if counts else None,
            "shown_as": _shown_as(schema),
        })
    return {
        "file": str(path),
        "format": "mcap",
        "profile": header.profile,
        "library": header.library,
        "recordings": [{"application_id": info.application_id, "recording_id": info.recording_id,
                        "kind": info.kind}],
        "messages": int(stats.message_count) if stats is not None else None,
        "chunks": len(chunks),
        "compression": sorted({c.compression or "none" for c in chunks}),
        "compressed_bytes": sum(c.compressed_size for c in chunks),
        "uncompressed_bytes": sum(c.uncompressed_size for c in chunks),
        "timelines": [{"timeline": LOG_TIME, "kind": "timestamp",
                       "min": int(stats.message_start_time) if stats is not None else None,
                       "max": int(stats.message_end_time) if stats is not None else None}],
        "channels": channels,
        "problems": [],
    }


def render_text(s: dict) -> str:
    """The summary as `info` prints it (names from the file made printable)."""
    comp = ", ".join(s["compression"]) or "none"
    out = [printable(f"{s['file']}: MCAP ({s['profile'] or 'no profile'}, written by {s['library'] or '?'}), "
                     f"{s['messages'] if s['messages'] is not None else '?'} messages in {s['chunks']} chunks "
                     f"({comp}; {s['compressed_bytes']} bytes, {s['uncompressed_bytes']} uncompressed)", 400)]
    for r in s["recordings"]:
        out.append(printable(f"  {r['kind']} {r['application_id']!r} / {r['recording_id']!r}"))
    for t in s["timelines"]:
        out.append(f"  {t['timeline']}: {format_time('timestamp', t['min'])} .. {format_time('timestamp', t['max'])}")
    out.append("")
    for c in s["channels"]:
        n = c["messages"] if c["messages"] is not None else "?"
        out.append(printable(f"  {c['topic']}  {n} messages  {c['schema']} ({c['schema_encoding']}/"
                             f"{c['message_encoding']}) -> {c['shown_as']}", 400))
    return "\n".join(out)
