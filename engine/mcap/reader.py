"""MCAP files (ROS 2 bags, Foxglove recordings) -> chunks of Image, DepthImage and EncodedImage.

Naming follows Rerun 0.41's MCAP loader: entity = topic name; timelines
``message_log_time`` and ``message_publish_time`` (the MCAP record's times) plus the
message's own stamp, ``ros2_timestamp`` (a ROS 2 ``header.stamp``) or ``timestamp``
(Foxglove); the recording is named after the file.

Reading goes through the file's index: with a summary section, each MCAP chunk is
read (seek + decompress) on its own, so a damaged chunk costs only its messages and a
file larger than memory streams through the store (whose memory limit applies). A
file without a summary (a recorder that died, a truncated copy) is read linearly up
to the first record that does not parse. Every message that cannot be shown is
counted and named by topic and log time: `McapReport.problems` holds one line per
(topic, reason) with the first time and the count.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from pixelrun.engine.archetypes import DEPTH_IMAGE, ENCODED_IMAGE, IMAGE, UTF8_TYPE
from pixelrun.engine.chunk import COLUMN_BUILDERS, Chunk, TimeColumn, buffer_column, float_column, format_column
from pixelrun.engine.mcap.db3 import is_db3, iter_db3_messages, starts_with
from pixelrun.engine.mcap.messages import ImageMessage, SchemaError, decoder_for, media_type_of, missing_extra
from pixelrun.engine.mcap.ros_image import NotShown, RosImage, map_raw_image
from pixelrun.engine.rrd import StoreInfo, default_max_decompressed_bytes

__all__ = ["message_total", "MCAP_MAGIC", "is_mcap", "is_bag", "McapReport", "ImageRow", "iter_image_rows",
           "iter_chunks",
           "store_info_for",
           "McapSource", "read_mcap", "rows_to_chunk",
           "LOG_TIME", "PUBLISH_TIME", "ROS2_STAMP", "FOXGLOVE_STAMP"]

MCAP_MAGIC = b"\x89MCAP0\r\n"
LOG_TIME = "message_log_time"
PUBLISH_TIME = "message_publish_time"
ROS2_STAMP = "ros2_timestamp"
FOXGLOVE_STAMP = "timestamp"

# A store chunk holds at most this many rows / bytes of one topic. Whole store chunks
# are what the memory limit drops, so under a limit a chunk is at most 1/16 of it.
CHUNK_ROWS = 64
CHUNK_BYTES = 16 << 20


def is_mcap(path) -> bool:
    """Whether a file starts with the MCAP magic (False when unreadable)."""
    return starts_with(path, MCAP_MAGIC)


def is_bag(path) -> bool:
    """Whether a file is an MCAP file or a rosbag2 SQLite database (by its magic)."""
    return is_mcap(path) or is_db3(path)


def store_info_for(path) -> StoreInfo:
    """The recording an MCAP file becomes: application and recording id = the file's name."""
    name = os.path.basename(os.fspath(path))
    # Rerun 0.41 migrates application ids with characters other than letters, digits,
    # '-' and '_' (it warns): the file's stem, so spelled, is the application
    app = re.sub(r"[^A-Za-z0-9_-]", "_", os.path.splitext(name)[0]) or "mcap"
    return StoreInfo(application_id=app, recording_id=name)


def _fmt_time(ns: int) -> str:
    return f"{ns / 1e9:.9f} s"


@dataclass
class McapReport:
    """What reading a file found: problems (one line per topic and reason, first time
    and count), notes (topics skipped as not images), counts."""

    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    messages: int = 0
    shown: int = 0
    not_shown: int = 0
    _counts: dict = field(default_factory=dict)  # (topic, reason) -> [first log time, count]

    def drop(self, topic: str, log_time: Optional[int], reason: str, count: int = 1) -> None:
        key = (topic, reason)
        slot = self._counts.setdefault(key, [log_time, 0])
        slot[1] += count
        self.not_shown += count

    def finish(self) -> None:
        """Turn the counted drops into problem lines (call once, at the end)."""
        for (topic, reason), (first, n) in self._counts.items():
            at = f" at log time {_fmt_time(first)}" if first is not None else ""
            more = {0: " (its messages are not shown)", 1: " (1 message not shown)"}.get(
                n, f" ({n} messages not shown)")
            self.problems.append(f"{topic}{at}: {reason}{more}")
        self._counts = {}


@dataclass
class ImageRow:
    """One image message as the store keeps it (before it joins a chunk)."""

    topic: str
    log_time: int
    publish_time: Optional[int]  # None: the source has none (rosbag2 .db3)
    stamp_ns: Optional[int]
    stamp_timeline: str
    kind: str  # "image", "depth", "encoded"
    data: object  # bytes-like
    image: Optional[RosImage] = None  # image and depth rows
    media_type: Optional[str] = None  # encoded rows
    source: Optional[ImageMessage] = None  # the message fields (convert needs them)
    reason: Optional[str] = None  # kind "raw": why the store cannot show it (keep_raw)
    # (chunk ordinal, message number in that chunk) when read through the summary's chunk
    # index: where the message can be read again (McapSource.reread)
    origin: Optional[tuple[int, int]] = None


def _import_mcap():
    try:
        from mcap.reader import SeekingReader  # noqa: PLC0415 - the optional pixelrun[mcap] extra
        from mcap.records import Channel, Message, Schema  # noqa: PLC0415 - the same extra
        from mcap.records import Chunk as McapChunk  # noqa: PLC0415 - the same extra
        from mcap.stream_reader import ReadDataStream, StreamReader, breakup_chunk  # noqa: PLC0415 - the same
    except ImportError as exc:
        raise ImportError(missing_extra(exc)) from exc
    return SeekingReader, Channel, McapChunk, Message, Schema, ReadDataStream, StreamReader, breakup_chunk


class _Channels:
    """Channel id -> (topic, decoder or None, stamp timeline); schema problems counted."""

    def __init__(self, report: McapReport, topics: Optional[set]) -> None:
        self.report = report
        self.topics = topics
        self.schemas: dict = {}
        self.channels: dict = {}
        self._decoders: dict = {}

    def decoder(self, channel_id: int):
        """(topic, decode or None, stamp timeline) for a channel; None when unknown."""
        got = self._decoders.get(channel_id)
        if got is not None:
            return got
        ch = self.channels.get(channel_id)
        if ch is None:
            return None
        schema = self.schemas.get(ch.schema_id)
        topic = ch.topic
        dec: Optional[Callable] = None
        err: Optional[str] = None
        if self.topics is None or topic in self.topics:
            try:
                dec = decoder_for(schema, ch)
            except SchemaError as exc:
                err = str(exc)
            if dec is None and err is None:
                name = schema.name if schema is not None else "no schema"
                self.report.notes.append(f"{topic}: {name} is not an image message; topic skipped")
        stamp_tl = FOXGLOVE_STAMP if schema is not None and schema.name.startswith("foxglove.") else ROS2_STAMP
        got = (topic, dec, stamp_tl, err)
        self._decoders[channel_id] = got
        return got


def _row_of(topic: str, msg, decode: Callable, stamp_tl: str, report: McapReport,
            keep_raw: bool = False) -> Optional[ImageRow]:
    try:
        m = decode(msg.data)
    except Exception as exc:  # a truncated or garbled message: the decoders raise many kinds
        report.drop(topic, msg.log_time, f"message cannot be decoded ({type(exc).__name__}: {exc})")
        return None
    publish = getattr(msg, "publish_time", None)
    base = dict(topic=topic, log_time=int(msg.log_time), publish_time=None if publish is None else int(publish),
                stamp_ns=m.stamp_ns, stamp_timeline=stamp_tl, source=m)
    if m.compressed:
        media = media_type_of(m.compression)
        if media is None:
            report.drop(topic, msg.log_time, f"compressed image format {m.compression!r} is not an image file "
                        "type pixelrun decodes (jpeg, png, webp, avif)")
            return None
        return ImageRow(kind="encoded", data=m.data, media_type=media, **base)
    try:
        img = map_raw_image(m.encoding, m.width, m.height, m.step, m.is_bigendian, m.data)
    except NotShown as exc:
        if keep_raw:
            return ImageRow(kind="raw", data=m.data, reason=str(exc), **base)
        report.drop(topic, msg.log_time, str(exc))
        return None
    return ImageRow(kind=img.kind, data=img.data, image=img, **base)


def iter_image_rows(path, topics: Optional[Iterable[str]] = None, report: Optional[McapReport] = None,
                    max_chunk_bytes: Optional[int] = None, keep_raw: bool = False,
                    cache: Optional[dict] = None, only: Optional[Iterable[int]] = None) -> Iterator[ImageRow]:
    """Every image message of an MCAP file (optionally only `topics`), file order by chunk.

    keep_raw: raw images the store cannot show come as rows of kind "raw" (with the
    reason) instead of being counted as dropped (`pixelrun convert` transforms them).
    cache: a dict kept between calls on the same file; it keeps the summary section
    (read once) and, when the file has a chunk index, ``cache["order"]``: the chunk
    indexes in reading order. only: just these chunk ordinals (positions in that order;
    needs the chunk index, read again from the cache's summary).

    Problems go to `report` (counted per topic and reason; call ``report.finish()``
    after the iteration). Raises OSError for an unreadable file, ImportError when the
    pixelrun[mcap] extra is missing, ValueError when the file is not MCAP at all.
    """
    report = report if report is not None else McapReport()
    if is_db3(path):  # rosbag2's SQLite storage: the same rows, from its tables
        for topic, dec, err, msg in iter_db3_messages(path, None if topics is None else set(topics),
                                                      report.notes, report.problems):
            report.messages += 1
            if err is not None:
                report.drop(topic, msg.log_time, f"schema does not parse: {err}")
                continue
            row = _row_of(topic, msg, dec, ROS2_STAMP, report, keep_raw)
            if row is not None:
                report.shown += 1
                yield row
        return
    SeekingReader, Channel, McapChunk, Message, Schema, ReadDataStream, StreamReader, breakup_chunk = _import_mcap()
    limit = max_chunk_bytes or default_max_decompressed_bytes()
    chans = _Channels(report, set(topics) if topics is not None else None)

    def records_of(chunk, where: str) -> list:
        if chunk.uncompressed_size > limit:
            raise ValueError(f"{where} says it holds {chunk.uncompressed_size} bytes, more than the "
                             f"{limit}-byte limit")
        return breakup_chunk(chunk, validate_crc=True)

    def handle(records, ordinal: Optional[int] = None) -> Iterator[ImageRow]:
        number = -1  # message number within the chunk, counting every message (topic filters aside)
        for rec in records:
            if isinstance(rec, Schema):
                chans.schemas.setdefault(rec.id, rec)
            elif isinstance(rec, Channel):
                chans.channels.setdefault(rec.id, rec)
            elif isinstance(rec, Message):
                number += 1
                report.messages += 1
                got = chans.decoder(rec.channel_id)
                if got is None:
                    report.drop(f"channel {rec.channel_id}", rec.log_time, "message on a channel the file never "
                                "declares")
                    continue
                topic, dec, stamp_tl, err = got
                if err is not None:
                    report.drop(topic, rec.log_time, f"schema does not parse: {err}")
                    continue
                if dec is None:
                    continue
                row = _row_of(topic, rec, dec, stamp_tl, report, keep_raw)
                if row is not None:
                    if ordinal is not None:
                        row.origin = (ordinal, number)
                    report.shown += 1
                    yield row

    with open(os.fspath(path), "rb") as f:
        head = f.read(len(MCAP_MAGIC))
        if head != MCAP_MAGIC:
            raise ValueError(f"not an MCAP file or rosbag2 database: {path} (it starts with {head!r})")
        f.seek(0)
        summary = None if cache is None else cache.get("summary")
        if summary is None:
            try:
                summary = SeekingReader(f, record_size_limit=limit).get_summary()
            except Exception as exc:  # no footer (truncated, still recording): read linearly
                report.notes.append(f"{path}: no readable summary section ({type(exc).__name__}: {exc}); "
                                    "read from the start instead")
            if cache is not None and summary is not None and summary.chunk_indexes:
                cache["summary"] = summary
                cache["order"] = sorted(summary.chunk_indexes,
                                        key=lambda c: (c.message_start_time, c.chunk_start_offset))
        if only is not None and (summary is None or not summary.chunk_indexes):
            raise ValueError(f"{path}: chunks can be read again only through the chunk index of the summary")
        if summary is not None and summary.chunk_indexes:
            chans.schemas.update(summary.schemas)
            chans.channels.update(summary.channels)
            wanted = None
            if topics is not None:
                wanted = {cid for cid, ch in summary.channels.items() if ch.topic in chans.topics}
            order = (cache or {}).get("order") or sorted(
                summary.chunk_indexes, key=lambda c: (c.message_start_time, c.chunk_start_offset))
            ordinals = range(len(order)) if only is None else sorted(i for i in set(only) if 0 <= i < len(order))
            for ordinal in ordinals:
                ci = order[ordinal]
                if wanted is not None and ci.message_index_offsets and not (set(ci.message_index_offsets) & wanted):
                    continue
                where = f"chunk at byte {ci.chunk_start_offset}"
                try:
                    f.seek(ci.chunk_start_offset + 1 + 8)
                    records = records_of(McapChunk.read(ReadDataStream(f)), where)
                except Exception as exc:  # damaged chunk: its messages are lost, the rest is read
                    names = sorted({summary.channels[c].topic for c in ci.message_index_offsets
                                    if c in summary.channels}) or ["(unknown topics)"]
                    for t in names:
                        report.drop(t, ci.message_start_time, f"{where} ({_fmt_time(ci.message_start_time)}.."
                                    f"{_fmt_time(ci.message_end_time)}) cannot be read "
                                    f"({type(exc).__name__}: {exc})", count=0)
                    continue
                yield from handle(records, ordinal if cache is not None else None)
            return
        # linear: every record in order, up to the first that does not parse
        f.seek(0)
        stream = StreamReader(f, emit_chunks=True, record_size_limit=limit).records
        pos_note = None
        while True:
            try:
                rec = next(stream)
            except StopIteration:
                break
            except Exception as exc:
                pos_note = f"the file is cut short or damaged after byte {f.tell()} ({type(exc).__name__}: {exc})"
                break
            if isinstance(rec, McapChunk):
                try:
                    records = records_of(rec, "a chunk")
                except Exception as exc:
                    report.drop("(a chunk)", rec.message_start_time, f"chunk cannot be read ({type(exc).__name__}: "
                                f"{exc})", count=0)
                    continue
                yield from handle(records)
            else:
                yield from handle((rec,))
        if pos_note is not None:
            report.problems.append(f"{pos_note}; what came before is shown")


def message_total(path) -> Optional[int]:
    """The file's message count from its summary statistics; None without them."""
    SeekingReader = _import_mcap()[0]
    try:
        with open(os.fspath(path), "rb") as f:
            summary = SeekingReader(f).get_summary()
    except Exception:  # no summary (a truncated file): no total
        return None
    stats = summary.statistics if summary is not None else None
    return int(stats.message_count) if stats is not None else None


def _timelines(rows: list[ImageRow]) -> dict[str, TimeColumn]:
    tl = {LOG_TIME: TimeColumn("timestamp", np.array([r.log_time for r in rows], np.int64))}
    if rows[0].publish_time is not None:
        tl[PUBLISH_TIME] = TimeColumn("timestamp", np.array([r.publish_time for r in rows], np.int64))
    if rows[0].stamp_ns is not None:
        tl[rows[0].stamp_timeline] = TimeColumn("timestamp", np.array([r.stamp_ns for r in rows], np.int64))
    return tl


def rows_to_chunk(rows: list[ImageRow], row_ids: np.ndarray) -> Chunk:
    """One store chunk from rows of one topic and kind (all with or all without a stamp)."""
    kind = rows[0].kind
    blobs = [r.data for r in rows]
    if kind == "encoded":
        comps = {
            ENCODED_IMAGE.column("blob"): buffer_column(blobs),
            ENCODED_IMAGE.column("media_type"): COLUMN_BUILDERS[UTF8_TYPE]([r.media_type for r in rows]),
        }
    elif kind == "depth":
        comps = {
            DEPTH_IMAGE.column("buffer"): buffer_column(blobs),
            DEPTH_IMAGE.column("format"): format_column([r.image.format for r in rows]),
            DEPTH_IMAGE.column("meter"): float_column([r.image.meter for r in rows]),
        }
    else:
        comps = {
            IMAGE.column("buffer"): buffer_column(blobs),
            IMAGE.column("format"): format_column([r.image.format for r in rows]),
        }
    return Chunk(rows[0].topic, row_ids, _timelines(rows), comps)


def iter_chunks(rows: Iterable[ImageRow], chunk_rows: int = CHUNK_ROWS,
                chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Rows grouped into store chunks per (topic, kind, has stamp), in arrival order.

    Row ids are (log time, counter): time-ordered, so the store's memory limit drops
    the oldest messages first. Rows that know their origin (read through the chunk
    index with a cache, see `iter_image_rows`) are grouped within their MCAP chunk and
    numbered by it: the counter is ``ordinal << 32 | message number`` and the chunk id
    ``(ordinal, first message number)``, so reading that MCAP chunk again gives the same
    store chunks with the same ids (`McapSource.reread`).
    """
    pending: dict[tuple, list] = {}
    sizes: dict[tuple, int] = {}
    counter = 0
    chunks_made = 0
    ordinal = None

    def flush(key) -> Chunk:
        nonlocal chunks_made
        group = pending.pop(key)
        sizes.pop(key)
        ids = np.array([[r.log_time, c] for c, r in group], dtype=np.uint64).reshape(-1, 2)
        chunk = rows_to_chunk([r for _, r in group], ids)
        chunks_made += 1
        first = group[0][1].origin
        if first is not None:  # (MCAP chunk ordinal, first message number): found again on a re-read
            chunk.chunk_id = first[0].to_bytes(8, "big") + first[1].to_bytes(8, "big")
        else:  # a chunk id like a row id: (first log time, counter), big-endian
            chunk.chunk_id = int(ids[0, 0]).to_bytes(8, "big") + chunks_made.to_bytes(8, "big")
        return chunk

    for row in rows:
        if row.origin is not None and row.origin[0] != ordinal:
            for key in list(pending):  # a store chunk never spans two MCAP chunks
                yield flush(key)
            ordinal = row.origin[0]
        key = (row.topic, row.kind, row.stamp_ns is not None)
        counter = counter + 1 if row.origin is None else (row.origin[0] << 32) | row.origin[1]
        pending.setdefault(key, []).append((counter, row))
        sizes[key] = sizes.get(key, 0) + len(memoryview(row.data).cast("B"))
        if len(pending[key]) >= chunk_rows or sizes[key] >= chunk_bytes:
            yield flush(key)
    for key in list(pending):
        yield flush(key)


def read_mcap(path, topics: Optional[Iterable[str]] = None) -> tuple[list[Chunk], McapReport]:
    """Every image chunk of a file at once (tests, small files); see `iter_image_rows`."""
    report = McapReport()
    chunks = list(iter_chunks(iter_image_rows(path, topics, report)))
    report.finish()
    return chunks, report



class McapSource:
    """An MCAP file as the store ingests it: `batches()` yields lists of chunks as they
    are read; afterwards `problems` and `notes` hold what was not shown and why.

    When the file has a chunk index (`can_reread`), a store chunk it gave can be read
    again on its own (`reread`): the store lets such chunks go under its memory limit
    and reads them back when a query lands on them. `rereads` counts the MCAP chunks
    read again.
    """

    def __init__(self, path, topics: Optional[Iterable[str]] = None, memory_limit: Optional[int] = None) -> None:
        self.path = path
        self.topics = None if topics is None else set(topics)
        self.chunk_bytes = CHUNK_BYTES if memory_limit is None else max(1, min(CHUNK_BYTES, memory_limit // 16))
        self.store_infos = [store_info_for(path)]
        self.report = McapReport()
        self.problems: list = []
        self.notes: list = []
        self.rereads = 0
        self._cache: dict = {}  # the summary and chunk order (iter_image_rows)
        self._identity = self._stat()

    def _stat(self) -> Optional[tuple]:
        try:
            st = os.stat(os.fspath(self.path))
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns, st.st_ino

    @property
    def can_reread(self) -> bool:
        """Whether the chunks read so far came through the chunk index (and can be read again)."""
        return "order" in self._cache

    def batches(self) -> Iterator[list[Chunk]]:
        rows = iter_image_rows(self.path, self.topics, self.report, cache=self._cache)
        for chunk in iter_chunks(rows, chunk_bytes=self.chunk_bytes):
            yield [chunk]
        self.report.finish()
        self.problems, self.notes = list(self.report.problems), list(self.report.notes)

    def reread(self, chunk_ids: Iterable[bytes], topics: Iterable[str]) -> dict[bytes, Chunk]:
        """The store chunks with these ids (of `topics`), read again from just the MCAP
        chunks that hold them: {chunk id: chunk}. An id whose MCAP chunk can no longer be
        read is absent. Raises OSError when the file changed since it was first read."""
        if self._stat() != self._identity:
            raise OSError(f"{self.path}: the file changed since it was read; evicted data cannot be read again")
        wanted = set(chunk_ids)
        ordinals = {int.from_bytes(cid[:8], "big") for cid in wanted}
        want_topics = set(topics) if self.topics is None else set(topics) & self.topics
        rows = iter_image_rows(self.path, want_topics, McapReport(), cache=self._cache, only=ordinals)
        got = {c.chunk_id: c for c in iter_chunks(rows, chunk_bytes=self.chunk_bytes) if c.chunk_id in wanted}
        self.rereads += len(ordinals)
        return got
