"""The Ray-free half of the fleet: which frames a recording holds, as table rows, and
how raw rows become pixels. engine/fleet/dataset.py and engine/fleet/cluster.py run
these on Ray workers; nothing here imports Ray, so it is tested and usable without it.

A *frame* is one logged image: an image entity (Image, DepthImage, SegmentationImage,
EncodedImage) at one time point of a timeline where one of its required components was
logged (or its static image when it has no time point on the timeline). Its pixels are
``pixelrun.engine.render(path, entity=ENTITY, timeline=TIMELINE, time=TIME)`` for that
entity alone (without the entities under it), on the same backend. A recording is an
.rrd file or a bag (MCAP, rosbag2 .db3; the store reads its image messages through
engine/mcap: entity = topic).

Raw rows carry the Layer the scene built (buffer, format, opacity, kind, value range,
colormap, class colours); `decode_batch` turns a batch of them into RGBA: frames of one
format go through ``pixelrun.kernels.backends.convert_batch`` together (one launch on
CUDA), and the few that are not a plain opaque image (translucent, or a depth /
segmentation / colormapped layer) through the backend's compositor one by one, which
is what `render` does for them.
"""

from __future__ import annotations

import os
import sqlite3
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from pixelrun.engine import api as R
from pixelrun.engine.archetypes import DRAWABLE
from pixelrun.engine.chunk import printable
from pixelrun.engine.mcap import LOG_TIME, MCAP_MAGIC, McapReport, is_bag, is_mcap, iter_chunks, iter_image_rows
from pixelrun.engine.mcap.db3 import is_db3
from pixelrun.engine.mcap.messages import IMAGE_SCHEMAS
from pixelrun.engine.mcap.reader import CHUNK_BYTES
from pixelrun.engine.scene import scene_at
from pixelrun.engine.store.source import not_rrd_reason
from pixelrun.engine.store.store import ChunkStore
from pixelrun.kernels import backends
from pixelrun.kernels.errors import PixelrunWarning
from pixelrun.kernels.formats import ImageFormat
from pixelrun.kernels.layers import Layer, LayerKind, blend_opacity

__all__ = [
    "FleetWarning",
    "RecordingReadError",
    "FrameRef",
    "RAW_SCHEMA",
    "RAW_COLUMNS",
    "DECODED_COLUMNS",
    "RRD_SUFFIXES",
    "BAG_SUFFIXES",
    "expand_paths",
    "check_recordings",
    "recording_bytes",
    "BagPart",
    "bag_parts",
    "recording_frames",
    "raw_table",
    "iter_raw_tables",
    "decode_batch",
    "Decoder",
    "plan_tasks",
    "BLOCK_BYTES",
]

PathLike = Union[str, "os.PathLike[str]"]


MAX_PROBLEMS = 20  # problem lines per damaged recording; the rest are counted


class FleetWarning(PixelrunWarning):
    """A recording (or part of one) left out of a fleet run; the message names it and why."""


class RecordingReadError(OSError):
    """A recording that cannot be read at all; the message starts with its path."""


# ------------------------------------------------------------------ input files


RRD_SUFFIXES = (".rrd",)
BAG_SUFFIXES = (".mcap", ".db3")  # MCAP files, rosbag2 SQLite databases


def expand_paths(paths: Union[PathLike, Iterable[PathLike]], suffixes: Sequence[str] = RRD_SUFFIXES) -> list[str]:
    """One path, or many: each a file, or a folder standing for the files directly in it
    whose names end in one of `suffixes` (sorted). Order is kept and duplicates are dropped."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            out.extend(sorted(str(c) for c in Path(p).iterdir() if c.suffix in suffixes and c.is_file()))
        else:
            out.append(p)
    return list(dict.fromkeys(out))


def _not_bag_reason(path: str) -> Optional[str]:
    if is_bag(path):
        return None
    with open(path, "rb") as f:
        head = f.read(len(MCAP_MAGIC))
    return f"not an MCAP file or rosbag2 database: {path} (it starts with {head!r}, an MCAP file with {MCAP_MAGIC!r})"


def check_recordings(paths: Sequence[str], bags_only: bool = False) -> tuple[list[str], list[str]]:
    """(readable paths, one 'PATH: why' per path that cannot be a recording).

    Looks at each file's first bytes only (`not_rrd_reason`, which takes .rrd files and
    bags; with bags_only, MCAP files and rosbag2 databases only), so that a missing
    file, a folder, or something that is not a recording is named before any work starts.
    """
    good, bad = [], []
    for p in paths:
        try:
            why = None if os.path.isfile(p) else ("it is not a file" if os.path.exists(p) else "it does not exist")
            why = why or (_not_bag_reason(p) if bags_only else not_rrd_reason(p))
        except OSError as exc:
            why = str(exc.strerror or exc)
        if why is None:
            good.append(p)
        else:
            bad.append(why if why.startswith(("not an .rrd file", "not an MCAP file")) else f"{p}: {why}")
    return good, bad


def _db3_bytes(path: str, topics: Optional[Sequence[str]]) -> Optional[int]:
    """The message bytes of a rosbag2 database (of `topics`), from SQLite (length() of a
    blob reads its record header, not its pages); None when the tables cannot be read."""
    where, args = "", []
    if topics is not None:
        where, args = f" WHERE topic_id IN (SELECT id FROM topics WHERE name IN ({','.join('?' * len(topics))}))", \
            list(topics)
    try:
        con = sqlite3.connect("file:" + os.path.abspath(path) + "?mode=ro", uri=True)
        try:
            return int(con.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM messages" + where, args).fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return None


def recording_bytes(path: str, topics: Optional[Sequence[str]] = None) -> int:
    """About how many bytes reading a recording holds, known without reading it: an
    MCAP file with a summary: the uncompressed size of its chunks that hold image
    messages (of `topics`, when given) — from the chunk index, so a compressed bag is
    not underestimated and its other sensors are not counted; a rosbag2 database: its
    messages' bytes; else the file's size."""
    size = os.path.getsize(path)
    if is_db3(path):
        got = _db3_bytes(path, topics)
        return size if got is None else got
    chunks = _image_chunks(path, topics)
    return size if chunks is None else sum(ci.uncompressed_size for _, ci in chunks)


def _image_chunks(path: str, topics: Optional[Sequence[str]]) -> Optional[list[tuple[int, object]]]:
    """(ordinal, chunk index entry) of an MCAP bag's chunks that hold image messages
    (of `topics`), in the order the reader reads them (by first log time, then offset;
    the ordinal is the position in that order of all the bag's chunks, what
    `iter_image_rows(only=...)` takes); None when it is not an MCAP file or has no
    readable summary with a chunk index."""
    if not is_mcap(path):
        return None
    try:
        from mcap.reader import SeekingReader  # noqa: PLC0415 - the optional pixelrun[mcap] extra

        with open(path, "rb") as f:
            summary = SeekingReader(f).get_summary()
    except Exception:  # no readable summary (a truncated bag), or no extra: the caller does without
        return None
    if summary is None or not summary.chunk_indexes:
        return None
    images = {name.replace("/msg/", "/") for name in IMAGE_SCHEMAS}  # sensor_msgs/Image is read as well

    def is_image(ch) -> bool:
        return getattr(summary.schemas.get(ch.schema_id), "name", "").replace("/msg/", "/") in images

    wanted = {cid for cid, ch in summary.channels.items() if (topics is None or ch.topic in topics) and is_image(ch)}
    order = sorted(summary.chunk_indexes, key=lambda ci: (ci.message_start_time, ci.chunk_start_offset))
    return [(i, ci) for i, ci in enumerate(order) if set(ci.message_index_offsets) & wanted]


@dataclass(frozen=True)
class BagPart:
    """Messages of a bag logged in [lo, hi) (None: unbounded), and the ordinals of the
    MCAP chunks that can hold them (those whose time range meets [lo, hi))."""

    lo: Optional[int]
    hi: Optional[int]
    chunks: tuple[int, ...]


def bag_parts(path: str, topics: Optional[Sequence[str]], parts: int) -> Optional[list[BagPart]]:
    """`parts` log-time ranges splitting an MCAP bag's image chunks into about equal
    uncompressed bytes, cut where a chunk starts (the summary's chunk index; nothing
    else is read). Every message falls in exactly one range, wherever its chunk lies.
    None when the bag has no chunk index (it is not split by time then)."""
    chunks = _image_chunks(path, topics)
    if not chunks:
        return None
    total = sum(ci.uncompressed_size for _, ci in chunks)
    cuts: list[int] = []  # where part 1, 2, ... starts: the first log time of the chunk that crosses its share
    done = 0
    for _, ci in chunks:
        while len(cuts) < parts - 1 and done >= (len(cuts) + 1) * total / parts:
            cuts.append(ci.message_start_time)
        done += ci.uncompressed_size
    bounds: list[Optional[int]] = [None, *cuts, None]
    ranges = []
    for lo, hi in zip(bounds, bounds[1:]):
        meets = tuple(k for k, ci in chunks if (lo is None or ci.message_end_time >= lo)
                      and (hi is None or ci.message_start_time < hi))
        ranges.append(BagPart(lo, hi, meets))
    return ranges + [BagPart(0, 0, ())] * (parts - len(ranges))  # fewer chunks than parts: empty parts


class _PartReport(McapReport):
    """A McapReport that counts only the drops inside one part's range, so that each
    problem of a bag read in parts is reported once, by the part it belongs to."""

    def __init__(self, part: BagPart) -> None:
        super().__init__()
        self.part = part

    def drop(self, topic: str, log_time: Optional[int], reason: str, count: int = 1) -> None:
        lo, hi = self.part.lo, self.part.hi
        if (lo is None if log_time is None else (lo is None or log_time >= lo) and (hi is None or log_time < hi)):
            super().drop(topic, log_time, reason, count)


def _bag_part_store(path: str, topics: Optional[Sequence[str]], part: BagPart) -> ChunkStore:
    """A store of the bag's image messages in `part`: only the MCAP chunks that can
    hold them are read (`iter_image_rows(only=...)`), and only its messages are kept, so
    the store's memory holds just them. A chunk that overlaps two parts is read by both,
    each keeping its own messages (and each problem is reported by one part: _PartReport)."""
    store = ChunkStore()
    if not part.chunks:
        return store  # an empty part (more parts than chunks)
    report = _PartReport(part)

    def rows() -> Iterator:
        for row in iter_image_rows(path, topics, report, cache={}, only=part.chunks):
            if (part.lo is None or row.log_time >= part.lo) and (part.hi is None or row.log_time < part.hi):
                yield row

    limit = store.memory_limit
    for chunk in iter_chunks(rows(), chunk_bytes=CHUNK_BYTES if limit is None else max(1, min(CHUNK_BYTES,
                                                                                             limit // 16))):
        store.add_chunks([chunk])
    report.finish()
    store.problems += report.problems
    return store


# ------------------------------------------------------------------ frames of a recording


@dataclass(frozen=True)
class FrameRef:
    """One frame of a recording: where it is, and the Layer the scene built for it."""

    path: str
    entity: str
    timeline: Optional[str]
    time: Optional[int]
    layer: Layer


def _entity_times(store, entity: str, timeline: Optional[str]) -> np.ndarray:
    """Time points where this entity (alone, not its subtree) logged an image row."""
    if timeline is None:
        return np.empty(0, np.int64)
    return np.unique(np.concatenate([store.index_times(entity, timeline, c)
                                     for a in DRAWABLE for c in a.required_columns]))


def _problem(path: str, msg: str) -> None:
    warnings.warn(f"{path}: {printable(msg, 600)}", FleetWarning, stacklevel=2)


def open_recording(path: str, topics: Optional[Sequence[str]] = None, part: Optional[BagPart] = None):
    """The recording's store (of a bag: only `topics`, when given; only the messages of
    `part`, when given); RecordingReadError ('PATH: why') when it cannot be read.
    Problems of a damaged one (what the decoder skipped) are FleetWarnings naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PixelrunWarning)  # reported below, once each, with the path
            if part is not None:
                store = _bag_part_store(path, topics, part)
            elif topics is None:
                store = R.open_store(path)
            else:  # only these topics' messages are decoded and held (the store's memory goes to them)
                store = ChunkStore()
                store.ingest_file(path, topics=topics)
    except (OSError, ValueError) as exc:
        msg = str(exc)
        raise RecordingReadError(msg if msg.startswith(("not an .rrd file", path)) else f"{path}: {msg}") from None
    for p in store.problems[:MAX_PROBLEMS]:
        _problem(path, f"damaged; what is intact is read: {p}")
    if len(store.problems) > MAX_PROBLEMS:
        _problem(path, f"... and {len(store.problems) - MAX_PROBLEMS} more problem(s) (`pixelrun info {path}`)")
    lost = [d for d in store.dropped if d.reason == "memory limit"]
    if lost:  # a recording larger than this worker's memory limit: say what is missing
        _problem(path, f"{sum(d.rows for d in lost)} row(s) in {len(lost)} chunk(s) dropped at the store's memory "
                       f"limit ({store.memory_limit} bytes); their frames are not read")
    return store


def recording_frames(
    path: str,
    *,
    store=None,
    entities: Optional[Sequence[str]] = None,
    topics: Optional[Sequence[str]] = None,
    timeline: Optional[str] = None,
    shard: int = 0,
    shards: int = 1,
) -> Iterator[FrameRef]:
    """The frames of one recording, by entity path then time (see the module docstring).

    entities: only these subtrees (None: every image entity). topics (bags): only
    these topics are read (each is an entity). timeline: None takes the
    recording's default (`pixelrun.engine.render`'s rule); a recording without the named
    timeline gives no frames, with a FleetWarning. shard / shards: the shard-th of
    `shards` parts, so one large recording can be split over tasks: for an MCAP bag with
    a chunk index on its log-time timeline (message_log_time, the default), the frames
    logged in the shard-th of `bag_parts` (each part's store holds only its messages;
    a frame is the message at its log time, so no other part is needed to draw it);
    else the shard-th of equal slices of the frame list, each reading the whole file.
    An image that cannot be drawn at its time point (wrong byte count, bad format) is
    a FleetWarning naming it; the other frames go on.
    """
    if store is None:
        parts = bag_parts(path, topics, shards) if shards > 1 and timeline in (None, LOG_TIME) else None
        if parts is not None:
            store, shard, shards = open_recording(path, topics, parts[shard]), 0, 1
        else:
            store = open_recording(path, topics)
    if timeline is None:
        timeline = R.default_timeline(store)
    elif timeline not in store.timelines():
        _problem(path, f"no timeline {timeline!r} (it has: {', '.join(sorted(store.timelines())) or 'none'}); "
                       "no frames read from it")
        return
    roots = [None] if entities is None else list(entities)
    ents = sorted({e for root in roots for a in DRAWABLE
                   for e in store.entities(under=root, with_component=a.required_columns[0])})
    todo: list[tuple[str, Optional[int]]] = []
    for ent in ents:
        times = _entity_times(store, ent, timeline)
        if times.size:
            todo.extend((ent, int(t)) for t in times)
        else:  # a static image only: one frame, what `render` shows at any time
            todo.append((ent, None))
    n = len(todo)
    for ent, t in todo[shard * n // shards:(shard + 1) * n // shards]:
        problems: list[str] = []
        layers = [l for l in scene_at(store, timeline, t, ent, problems=problems) if l.entity == ent]
        for msg in problems:
            if msg.startswith(ent + ":"):
                _problem(path, f"{msg} at {timeline}={t}; that frame is left out")
        if layers:
            yield FrameRef(path, ent, timeline, t, layers[0])


# ------------------------------------------------------------------ rows

# Raw rows (decode=False). Enum fields are Rerun 0.41's values, 0 when not set;
# row_stride 0 for tight rows (bags' images often have padded rows); big_endian for
# colour samples stored big-endian; value_range_* NaN when not set; class_colors the
# (N, 4) uint8 table's bytes.
RAW_SCHEMA = pa.schema([
    ("path", pa.string()), ("entity", pa.string()), ("timeline", pa.string()), ("time", pa.int64()),
    ("width", pa.int32()), ("height", pa.int32()),
    ("pixel_format", pa.int32()), ("color_model", pa.int32()), ("channel_datatype", pa.int32()),
    ("row_stride", pa.int64()), ("big_endian", pa.bool_()),
    ("opacity", pa.float64()), ("kind", pa.string()),
    ("value_range_lo", pa.float64()), ("value_range_hi", pa.float64()),
    ("colormap", pa.int32()), ("class_colors", pa.large_binary()),
    ("buffer", pa.large_binary()),
])
RAW_COLUMNS = tuple(RAW_SCHEMA.names)
# What decode keeps of a raw row, and adds ("rgba").
DECODED_COLUMNS = ("path", "entity", "timeline", "time", "width", "height", "rgba")

# A read task yields a block whenever this many buffer bytes have gathered: blocks stay
# well under Ray's target block size (128 MiB) once decoded to RGBA (x8/3 for NV12).
BLOCK_BYTES = 32 << 20


def raw_table(frames: Sequence[FrameRef]) -> pa.Table:
    """Frames as one Arrow table with RAW_SCHEMA (the buffers copied once, into Arrow)."""
    def col(f):
        return [f(fr) for fr in frames]

    def enum(v):
        return 0 if v is None else int(v)

    vr = [fr.layer.value_range for fr in frames]
    cc = [fr.layer.class_colors for fr in frames]
    arrays = [
        col(lambda f: f.path), col(lambda f: f.entity), col(lambda f: f.timeline), col(lambda f: f.time),
        col(lambda f: f.layer.format.width), col(lambda f: f.layer.format.height),
        col(lambda f: enum(f.layer.format.pixel_format)), col(lambda f: enum(f.layer.format.color_model)),
        col(lambda f: enum(f.layer.format.channel_datatype)), col(lambda f: enum(f.layer.format.row_stride)),
        col(lambda f: bool(f.layer.format.big_endian)),
        col(lambda f: float(f.layer.opacity)), col(lambda f: f.layer.kind),
        [np.nan if v is None else float(v[0]) for v in vr], [np.nan if v is None else float(v[1]) for v in vr],
        col(lambda f: enum(f.layer.colormap)),
        [None if c is None else np.ascontiguousarray(c, np.uint8).tobytes() for c in cc],
        [memoryview(np.ascontiguousarray(f.layer.buffer)) for f in frames],
    ]
    return pa.Table.from_arrays([pa.array(a, type=t) for a, t in zip(arrays, RAW_SCHEMA.types)], schema=RAW_SCHEMA)


def iter_raw_tables(
    items: Sequence[tuple[str, int, int]],
    *,
    entities: Optional[Sequence[str]] = None,
    topics: Optional[Sequence[str]] = None,
    timeline: Optional[str] = None,
    on_error: str = "raise",
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[pa.Table]:
    """What one read task does: the frames of each (path, shard, shards) as raw tables
    of about `block_bytes` of buffers each. A recording that cannot be read raises
    RecordingReadError naming it (on_error="raise") or is a FleetWarning and left out
    (on_error="skip")."""
    pending: list[FrameRef] = []
    size = 0
    for path, shard, shards in items:
        try:
            frames = recording_frames(path, entities=entities, topics=topics, timeline=timeline, shard=shard,
                                      shards=shards)
            for fr in frames:
                pending.append(fr)
                size += fr.layer.buffer.nbytes
                if size >= block_bytes:
                    yield raw_table(pending)
                    pending, size = [], 0
        except RecordingReadError as exc:
            if on_error == "raise":
                raise
            _problem(path, f"left out: {exc}")
    if pending:
        yield raw_table(pending)


# ------------------------------------------------------------------ decode


def _layer_of(batch: dict, i: int) -> Layer:
    """Row i of a raw numpy batch as the Layer the scene built."""
    def enum(name):
        v = int(batch[name][i])
        return v or None

    fmt = ImageFormat(int(batch["width"][i]), int(batch["height"][i]), pixel_format=enum("pixel_format"),
                      color_model=enum("color_model"), channel_datatype=enum("channel_datatype"),
                      row_stride=enum("row_stride"), big_endian=bool(batch["big_endian"][i]))
    lo, hi = float(batch["value_range_lo"][i]), float(batch["value_range_hi"][i])
    cc = batch["class_colors"][i]
    colors = None if cc is None else np.frombuffer(cc, np.uint8).reshape(-1, 4)
    return Layer(str(batch["entity"][i]), 0, np.frombuffer(batch["buffer"][i], np.uint8), fmt,
                 float(batch["opacity"][i]), kind=str(batch["kind"][i]),
                 value_range=None if np.isnan(lo) else (lo, hi), colormap=enum("colormap"),
                 class_colors=colors, class_colors_key=None if colors is None else hash(cc))


def _frame_name(batch: dict, i: int) -> str:
    return f"{batch['path'][i]}: {batch['entity'][i]} at {batch['timeline'][i]}={batch['time'][i]}"


def decode_batch(batch: dict, backend: str = "auto") -> dict:
    """A batch of raw rows (a dict of NumPy columns, RAW_COLUMNS) -> the decoded batch
    (DECODED_COLUMNS, ``rgba`` one (H, W, 4) uint8 array per row).

    Use it as a Ray Data stage: ``ds.map_batches(decode_batch, batch_format="numpy")``
    (or `pixelrun.data.decode`, which picks GPU workers where the cluster has them).
    Frames of one format and value range are converted together by
    ``pixelrun.kernels.backends.convert_batch`` (one kernel launch on CUDA); a frame
    that comes out translucent, or is not a plain image, goes through the backend's
    compositor alone, as `render` draws it. The pixels equal ``pixelrun.engine.render``
    of that entity alone on the same backend. ValueError naming the frame when one
    cannot be decoded.
    """
    n = len(batch["buffer"])
    name = R.resolve_backend(backend) if backend != "auto" else "auto"
    out: list[Optional[np.ndarray]] = [None] * n
    groups: dict[tuple, list[int]] = {}
    for i in range(n):  # per row, not per pixel: grouping only
        plain = str(batch["kind"][i]) == LayerKind.IMAGE and int(batch["colormap"][i]) == 0
        if plain and blend_opacity(batch["opacity"][i]) == 1.0:
            key = tuple(int(batch[c][i]) for c in ("width", "height", "pixel_format", "color_model",
                                                   "channel_datatype", "row_stride", "big_endian"))
            lo, hi = float(batch["value_range_lo"][i]), float(batch["value_range_hi"][i])
            key += (None,) if np.isnan(lo) else ((lo, hi),)  # not NaN in a key: NaN != NaN
            groups.setdefault(key, []).append(i)
        else:
            out[i] = _composite_one(batch, i, name)
    for key, rows in groups.items():
        w, h, pf, cm, dt, stride, be, value_range = key
        fmt = ImageFormat(w, h, pixel_format=pf or None, color_model=cm or None, channel_datatype=dt or None,
                          row_stride=stride or None, big_endian=bool(be))
        try:
            rgba = backends.convert_batch([batch["buffer"][i] for i in rows], fmt, value_range=value_range,
                                          backend=name)
        except ValueError as exc:
            raise ValueError(f"{_frame_name(batch, rows[0])} and {len(rows) - 1} more {fmt.describe()} frame(s): "
                             f"cannot be decoded: {exc}") from None
        # over a transparent canvas an opaque image composites to itself (contract §4);
        # one that came out translucent (an RGBA image) is composited as `render` does
        opaque = (rgba[..., 3] == 255).reshape(len(rows), -1).all(axis=1)
        for j, i in enumerate(rows):
            out[i] = rgba[j] if opaque[j] else _composite_one(batch, i, name)
    result = {c: batch[c] for c in DECODED_COLUMNS if c != "rgba"}
    shapes = {a.shape for a in out}
    if len(shapes) == 1:
        result["rgba"] = np.stack(out) if n else np.empty((0, 0, 0, 4), np.uint8)
    else:  # frames of different sizes: one array per row
        ragged = np.empty(n, dtype=object)
        ragged[:] = out
        result["rgba"] = ragged
    return result


def _composite_one(batch: dict, i: int, backend: str) -> np.ndarray:
    try:
        return R.render_layers([_layer_of(batch, i)], backend=backend)
    except ValueError as exc:
        raise ValueError(f"{_frame_name(batch, i)}: cannot be decoded: {exc}") from None


class Decoder:
    """`decode_batch` as a callable class, for Ray Data's actor pools: each actor keeps
    its GPU context (CuPy or wgpu) from batch to batch instead of making one per task."""

    def __init__(self, backend: str = "auto") -> None:
        self.backend = backend

    def __call__(self, batch: dict) -> dict:
        return decode_batch(batch, backend=self.backend)


# ------------------------------------------------------------------ planning


# A recording is split into shards only when Ray asks for more tasks than there are
# recordings and it is at least this large: each shard parses the whole file again
# (a part of an MCAP bag reads only its chunks, `bag_parts`, but each task has its start-up cost).
MIN_SHARD_BYTES = 64 << 20
MAX_SHARDS = 16


def plan_tasks(paths: Sequence[str], sizes: Sequence[int], parallelism: int) -> list[list[tuple[str, int, int]]]:
    """Read tasks for `parallelism`: lists of (path, shard, shards), balanced by bytes.

    Fewer tasks than recordings: whole recordings packed largest first into the
    least-loaded task. More: each recording is one task, and the largest are split into
    shards (each reads its slice of the frames) while tasks remain to fill.
    """
    parallelism = max(1, int(parallelism))
    if parallelism <= len(paths):
        tasks: list[list[tuple[str, int, int]]] = [[] for _ in range(parallelism)]
        load = [0] * parallelism
        for size, path in sorted(zip(sizes, paths), key=lambda sp: -sp[0]):
            k = load.index(min(load))
            tasks[k].append((path, 0, 1))
            load[k] += size
        return [t for t in tasks if t]
    shards = [1] * len(paths)
    spare = parallelism - len(paths)
    while spare > 0:  # give the next shard to the recording with the most bytes per shard
        k = max(range(len(paths)), key=lambda j: sizes[j] / shards[j])
        if sizes[k] / (shards[k] + 1) < MIN_SHARD_BYTES or shards[k] >= MAX_SHARDS:
            break
        shards[k] += 1
        spare -= 1
    return [[(p, s, n)] for p, n in zip(paths, shards) for s in range(n)]
