"""The chunk: one entity's rows, as Rerun 0.41 stores them (contract §5).

`Chunk` is the in-memory form every part of the engine passes around: the SDK builds
them, the .rrd codec turns them into Arrow record batches and back, the store indexes
them. `to_record_batch` / `from_record_batch` define the Arrow schema, with Rerun's
column names, types and field metadata, so files interoperate.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pyarrow as pa

from pixelrun.engine.archetypes import (
    ANNOTATION_CONTEXT_TYPE,
    BLOB_TYPE,
    COMPONENTS,
    ENUM_TYPE,
    IMAGE,
    IMAGE_FORMAT_STRUCT,
    RANGE1D_TYPE,
    UTF8_TYPE,
)
from pixelrun.engine.arrow_numpy import fixed_width_values
from pixelrun.kernels.formats import ImageFormat

# The Image columns by their short names (Rerun 0.41 "Archetype:field" descriptors),
# read from the archetype table: engine/archetypes.py declares them.
IMAGE_BUFFER = IMAGE.column("buffer")
IMAGE_FORMAT = IMAGE.column("format")
IMAGE_OPACITY = IMAGE.column("opacity")
IMAGE_DRAW_ORDER = IMAGE.column("draw_order")

TIMELINE_KINDS = ("sequence", "duration", "timestamp")

# The fields `format_column` adds to Image:format for a format with padded rows or
# big-endian samples.
ROW_STRIDE_FIELD = pa.field("row_stride", pa.uint32())
BIG_ENDIAN_FIELD = pa.field("big_endian", pa.bool_())

# Timelines the SDK stamps on every row by itself (like Rerun's log_time/log_tick).
AUTOMATIC_TIMELINES = ("log_time", "log_tick")


def user_timelines(names) -> list[str]:
    """The timelines a user logged on (automatic ones left out), sorted by name."""
    return sorted(n for n in names if n not in AUTOMATIC_TIMELINES)


def default_timeline(names) -> Optional[str]:
    """The timeline a view uses when none is chosen: the first user timeline by name,
    else the first automatic one; None when there are no timelines (static data only)."""
    return (user_timelines(names) or sorted(names) or [None])[0]


def printable(text: str, limit: int = 300) -> str:
    """Text from a file made safe for a one-line message: control and other
    non-printable characters escaped (\\x00, \\n, ...), at most `limit` characters."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_time(kind: str, t: Optional[int]) -> str:
    """A time point as a person reads it: #n, seconds, or a UTC timestamp (µs)."""
    if t is None:
        return "-"
    if kind == "sequence":
        return f"#{t}"
    if kind == "duration":
        return f"{t / 1e9:.3f} s"
    secs, ns = divmod(int(t), 1_000_000_000)
    try:
        stamp = datetime.datetime.fromtimestamp(secs, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):  # beyond datetime's years
        return f"{t} ns"
    return stamp.strftime("%Y-%m-%d %H:%M:%S") + f".{ns // 1000:06d}Z"


@dataclass
class TimeColumn:
    """One timeline's values for every row of a chunk (int64: ticks or nanoseconds)."""

    kind: str  # one of TIMELINE_KINDS
    values: np.ndarray  # int64, one per row


@dataclass
class Chunk:
    """Rows of one entity.

    row_ids: (n, 2) uint64, each row (time_ns, counter) = a 128-bit time-ordered id;
    the integer key is ``time_ns << 64 | counter``.
    timelines: empty for a static chunk.
    components: component name -> Arrow list array of length n; a null entry means
    the row does not carry that component.
    """

    entity_path: str
    row_ids: np.ndarray
    timelines: dict[str, TimeColumn] = field(default_factory=dict)
    components: dict[str, pa.Array] = field(default_factory=dict)
    chunk_id: Optional[bytes] = None  # 16 bytes; assigned by the writer when None
    # Field metadata of components not in the archetype table (kept for round trips).
    component_meta: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return int(self.row_ids.shape[0])

    @property
    def is_static(self) -> bool:
        return not self.timelines

    def to_record_batch(self) -> pa.RecordBatch:
        """Rerun 0.41's Arrow record batch for this chunk (see module-level function)."""
        return to_record_batch(self)

    @staticmethod
    def from_record_batch(batch: pa.RecordBatch) -> "Chunk":
        """Chunk from a Rerun 0.41 record batch (see module-level function)."""
        return from_record_batch(batch)

    def row_id_ints(self) -> list[int]:
        """Row ids as Python ints (for cache keys; not for hot loops)."""
        return [(int(hi) << 64) | int(lo) for hi, lo in self.row_ids]


# ----------------------------------------------------------------- Arrow schema (0.41)
#
# What Rerun 0.41 writes for one chunk (measured by dissecting files its SDK wrote):
# - schema metadata: rerun:entity_path ("/images"), rerun:id ("chunk_<32 hex>"),
#   sorbet:version "0.1.4";
# - first column "rerun.controls.RowId": non-null fixed_size_binary(16), each id the
#   big-endian (time_ns, counter) pair, tagged with the TUID extension name;
# - one index column per timeline, sorted by name: int64 (sequence), duration[ns],
#   timestamp[ns];
# - one list column per component, sorted by name, with archetype/component metadata.

SORBET_VERSION = "0.1.4"
ROW_ID_COLUMN = "rerun.controls.RowId"
_ROW_ID_META = {
    "ARROW:extension:metadata": '{"namespace":"row"}',
    "ARROW:extension:name": "rerun.datatypes.TUID",
    "rerun:is_sorted": "true",
    "rerun:kind": "control",
}

TIMELINE_ARROW_TYPES = {
    "sequence": pa.int64(),
    "duration": pa.duration("ns"),
    "timestamp": pa.timestamp("ns"),
}

# Component columns, their archetypes, Rerun component types and Arrow types come from
# the archetype table (engine/archetypes.py COMPONENTS).


def component_metadata(component: str) -> dict[str, str]:
    """Rerun's field metadata for a known component column (empty dict if unknown)."""
    known = COMPONENTS.get(component)
    if known is None:
        return {}
    meta = {
        "rerun:archetype": known.archetype,
        "rerun:component": component,
        "rerun:component_type": known.component_type,
        "rerun:kind": "data",
    }
    if known.extension:  # pixelrun's own field: a bare component to Rerun (archetypes.py)
        del meta["rerun:archetype"]
    return meta


# An entity path part may hold letters and digits (Unicode included), '_', '-' and
# '.' as they are; anything else is written with a backslash before it (contract §5).
_SPECIAL = re.compile(r"[^\w\-.]")
_PLAIN_PATH = re.compile(r"[\w\-./]*")


def escape_entity_part(part: str) -> str:
    """One literal part (e.g. from a list of parts), every special character escaped."""
    return _SPECIAL.sub(lambda m: "\\" + m.group(0), part)


def _parse_parts(text: str) -> list[str]:
    """Split a path string on unescaped '/', keeping `\\x` escapes and escaping the rest."""
    parts, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):  # an escape: kept exactly as written
            cur.append(text[i : i + 2])
            i += 2
            continue
        if c == "/":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(escape_entity_part(c))
        i += 1
    parts.append("".join(cur))
    return parts


def normalize_entity_path(path) -> str:
    """The one entity-path rule of contract §5, for the SDK and the engine alike.

    A string is split on '/', a leading '/' is optional, empty parts are dropped,
    `\\x` escapes are kept and other special characters are escaped; a list or tuple
    gives literal parts, each fully escaped (a backslash in it becomes `\\\\`).
    Paths already in normal form (what files hold) come back unchanged.
    """
    if isinstance(path, (list, tuple)):
        parts = [escape_entity_part(str(p)) for p in path]
    else:
        text = str(path)
        # fast path: most paths hold no special character at all
        parts = text.split("/") if _PLAIN_PATH.fullmatch(text) else _parse_parts(text)
    return "/" + "/".join(p for p in parts if p)


def tuid_to_str(prefix: str, time_ns: int, inc: int) -> str:
    """Rerun's textual TUID: 'chunk_18EAEB...' = upper-hex time, lower-hex counter."""
    return f"{prefix}_{time_ns:016X}{inc:016x}"


def tuid_from_str(text: str) -> Optional[tuple[int, int]]:
    """Inverse of `tuid_to_str` (None when malformed)."""
    hexpart = text.rsplit("_", 1)[-1]
    if len(hexpart) != 32:
        return None
    try:
        return int(hexpart[:16], 16), int(hexpart[16:], 16)
    except ValueError:
        return None


def chunk_id_parts(chunk_id: bytes) -> tuple[int, int]:
    """(time_ns, inc) of a 16-byte big-endian chunk id."""
    return int.from_bytes(chunk_id[:8], "big"), int.from_bytes(chunk_id[8:16], "big")


def row_ids_to_arrow(row_ids: np.ndarray) -> pa.Array:
    """(n, 2) uint64 -> fixed_size_binary(16), big-endian so bytes sort like ids."""
    be = np.ascontiguousarray(row_ids, dtype=">u8")
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), len(be), [None, pa.py_buffer(be)]
    )


def row_ids_from_arrow(arr: pa.Array) -> np.ndarray:
    """fixed_size_binary(16) -> (n, 2) uint64 (native order)."""
    n = len(arr)
    buf = arr.buffers()[1]
    raw = np.frombuffer(buf, dtype=">u8", count=2 * (arr.offset + n))
    return raw[2 * arr.offset :].reshape(n, 2).astype(np.uint64)


# -------------------------------------------------------------- component builders
#
# The SDK builds its columns with these (COLUMN_BUILDERS picks one by the Arrow type the
# archetype table gives a component), so the Arrow types live in one place.


def buffer_column(blobs, alloc=None) -> pa.Array:
    """A blob column (`Image:buffer`): one row per blob (bytes-like or uint8 array, or None).

    A 2-D uint8 array (one row per frame) and a single blob are wrapped without
    copying; a list of several blobs is concatenated once, into ``alloc(nbytes)``
    when given (a uint8 array; the SDK passes recycled memory) or a new array.
    """
    if isinstance(blobs, np.ndarray) and blobs.ndim == 2:
        rows = np.ascontiguousarray(blobs).view(np.uint8)
        n, per = rows.shape[0], rows.shape[1] if rows.ndim == 2 else 0
        offsets = (np.arange(n + 1, dtype=np.int64) * per)
        if offsets[-1] >= 2**31:
            raise ValueError("buffer column over 2 GiB: split it into several chunks")
        inner = pa.ListArray.from_buffers(
            BLOB_TYPE, n, [None, pa.py_buffer(offsets.astype(np.int32))],
            children=[pa.Array.from_buffers(pa.uint8(), n * per, [None, pa.py_buffer(rows.reshape(-1))])],
        )
        return _wrap_rows(inner, [True] * n, n)
    n = len(blobs)
    present = [b for b in blobs if b is not None]
    views = [np.frombuffer(b, dtype=np.uint8) if not isinstance(b, np.ndarray)
             else b.reshape(-1).view(np.uint8) for b in present]
    sizes = np.array([v.size for v in views], dtype=np.int64)
    if len(views) == 1:
        values = pa.py_buffer(views[0])
    elif views:
        out = alloc(int(sizes.sum())) if alloc is not None else np.empty(int(sizes.sum()), np.uint8)
        values = pa.py_buffer(np.concatenate(views, out=out))
    else:
        values = pa.py_buffer(b"")
    total = int(sizes.sum()) if len(sizes) else 0
    inner_offsets = np.zeros(len(views) + 1, dtype=np.int32)
    np.cumsum(sizes, out=inner_offsets[1:])
    inner = pa.ListArray.from_buffers(
        BLOB_TYPE,
        len(views),
        [None, pa.py_buffer(inner_offsets)],
        children=[pa.Array.from_buffers(pa.uint8(), total, [None, values])],
    )
    return _wrap_rows(inner, [b is not None for b in blobs], n)


def _wrap_rows(values: pa.Array, present: list[bool], n: int) -> pa.Array:
    """Outer list: each present row holds exactly one instance of `values`, in order."""
    mask = np.asarray(present, dtype=bool)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(mask, out=offsets[1:])
    typ = pa.list_(pa.field("item", values.type))
    if mask.all():
        return pa.ListArray.from_buffers(typ, n, [None, pa.py_buffer(offsets)], children=[values])
    validity = pa.py_buffer(np.packbits(mask, bitorder="little"))
    return pa.ListArray.from_buffers(
        typ, n, [validity, pa.py_buffer(offsets)], null_count=int(n - mask.sum()),
        children=[values],
    )


def format_column(formats: list) -> pa.Array:
    """`Image:format` column from kernels ImageFormat objects (or None per row)."""
    present = [f for f in formats if f is not None]

    def opt(vals):
        return pa.array([None if v is None else int(v) for v in vals], type=pa.uint8())

    arrays = [
        pa.array([f.width for f in present], type=pa.uint32()),
        pa.array([f.height for f in present], type=pa.uint32()),
        opt([f.pixel_format for f in present]),
        opt([None if f.pixel_format is not None else f.color_model for f in present]),
        opt([None if f.pixel_format is not None else f.channel_datatype for f in present]),
    ]
    fields = list(IMAGE_FORMAT_STRUCT)
    if any(f.row_stride is not None or f.big_endian for f in present):
        # pixelrun's padded rows and byte order (ROS bags' `step`, `is_bigendian`): fields
        # Rerun's struct lacks, so such a column stays in pixelrun's store (`pixelrun
        # convert` writes tight little-endian rows)
        arrays.append(pa.array([f.row_stride for f in present], type=pa.uint32()))
        arrays.append(pa.array([f.big_endian for f in present], type=pa.bool_()))
        fields += [ROW_STRIDE_FIELD, BIG_ENDIAN_FIELD]
    values = pa.StructArray.from_arrays(arrays, fields=fields)
    return _wrap_rows(values, [f is not None for f in formats], len(formats))


def float_column(values: list) -> pa.Array:
    """A float32 column (`Image:opacity`, `Image:draw_order`; None = row lacks it)."""
    present = [float(v) for v in values if v is not None]
    inner = pa.array(np.asarray(present, dtype=np.float32), type=pa.float32())
    return _wrap_rows(inner, [v is not None for v in values], len(values))


def _instances_column(typ: pa.DataType) -> Callable[[list], pa.Array]:
    """A builder for small per-row values (an enum, a range, a string, an annotation
    context) of Arrow type `typ`: each present row holds one instance, None = absent.
    The SDK has already checked the values; Arrow checks them against `typ` again."""

    def build(values: list) -> pa.Array:
        return pa.array([None if v is None else [v] for v in values], type=pa.list_(pa.field("item", typ)))

    return build


# Arrow type of one instance (the table's ComponentSpec.arrow_type) -> the builder that
# makes a column of them from per-row Python values. A new archetype whose components
# use these types needs no new builder.
COLUMN_BUILDERS: dict[pa.DataType, Callable[..., pa.Array]] = {
    BLOB_TYPE: buffer_column,
    IMAGE_FORMAT_STRUCT: format_column,
    pa.float32(): float_column,
    ENUM_TYPE: _instances_column(ENUM_TYPE),
    RANGE1D_TYPE: _instances_column(RANGE1D_TYPE),
    UTF8_TYPE: _instances_column(UTF8_TYPE),
    ANNOTATION_CONTEXT_TYPE: _instances_column(ANNOTATION_CONTEXT_TYPE),
}


def formats_from_column(col: pa.Array) -> list:
    """Decode an `Image:format` column to a list of kernels ImageFormat (None if absent).

    Rows holding several instances use the last one (Rerun's mono-component rule).
    """
    return [format_from_struct(row[-1]) if row else None for row in col.to_pylist()]


def format_from_struct(d) -> ImageFormat:
    """One `Image:format` struct value (as a Python dict) as a kernels ImageFormat.

    Raises ValueError for a damaged or foreign struct (not a dict, no width/height), so
    callers report it like any other bad format.
    """
    if not isinstance(d, dict) or d.get("width") is None or d.get("height") is None:
        raise ValueError(f"width and height are required, got {d!r}")
    return ImageFormat(
        d["width"], d["height"], pixel_format=d.get("pixel_format"),
        color_model=d.get("color_model"), channel_datatype=d.get("channel_datatype"),
        row_stride=d.get("row_stride"), big_endian=bool(d.get("big_endian")),
    )


def buffer_row(col: pa.Array, i: int) -> Optional[memoryview]:
    """Bytes of row i of an `Image:buffer` column without copying (None if absent)."""
    if not col[i].is_valid:
        return None
    start, end = col.offsets[i].as_py(), col.offsets[i + 1].as_py()
    if end <= start:
        return None
    inner = col.values  # list<uint8> per instance; last instance wins
    j = end - 1
    lo, hi = inner.offsets[j].as_py(), inner.offsets[j + 1].as_py()
    leaf = inner.values  # offsets above are absolute positions in `leaf`
    buf = leaf.buffers()[1]
    return memoryview(buf)[leaf.offset + lo : leaf.offset + hi]


# ------------------------------------------------------------ Chunk <-> RecordBatch


def to_record_batch(chunk: "Chunk") -> pa.RecordBatch:
    """The chunk as Rerun 0.41's Arrow record batch (schema and metadata included)."""
    if chunk.chunk_id is None:
        raise ValueError("to_record_batch: chunk_id must be assigned first")
    n = chunk.num_rows
    fields = [pa.field(ROW_ID_COLUMN, pa.binary(16), nullable=False, metadata=_ROW_ID_META)]
    arrays = [row_ids_to_arrow(chunk.row_ids)]
    for name in sorted(chunk.timelines):
        tc = chunk.timelines[name]
        vals = np.asarray(tc.values, dtype=np.int64)
        if vals.shape != (n,):
            raise ValueError(f"{chunk.entity_path}: timeline {name!r} has {vals.shape} values for {n} rows")
        meta = {"rerun:index_name": name, "rerun:kind": "index"}
        if n < 2 or bool(np.all(vals[1:] >= vals[:-1])):
            meta = {"rerun:index_name": name, "rerun:is_sorted": "true", "rerun:kind": "index"}
        typ = TIMELINE_ARROW_TYPES[tc.kind]
        arrays.append(pa.Array.from_buffers(typ, n, [None, pa.py_buffer(vals)]))
        fields.append(pa.field(name, typ, metadata=meta))
    for name in sorted(chunk.components):
        col = chunk.components[name]
        if len(col) != n:
            raise ValueError(f"{chunk.entity_path}: component {name!r} has {len(col)} rows, expected {n}")
        meta = chunk.component_meta.get(name) or component_metadata(name)
        arrays.append(col)
        fields.append(pa.field(name, col.type, metadata=meta or None))
    t, inc = chunk_id_parts(chunk.chunk_id)
    schema = pa.schema(
        fields,
        metadata={
            "rerun:entity_path": normalize_entity_path(chunk.entity_path),
            "rerun:id": tuid_to_str("chunk", t, inc),
            "sorbet:version": SORBET_VERSION,
        },
    )
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _same_name(entity: str, what: str, field_name: str, meta_name: str) -> None:
    """Rerun writes a column's name twice (field name and metadata); they must agree."""
    if field_name != meta_name and (":" in field_name or what == "timeline"):
        raise ValueError(
            f"{entity}: {what} column {field_name!r} is named {meta_name!r} in its metadata "
            "(the two copies differ: damaged)"
        )


def loose_type(typ: pa.DataType) -> pa.DataType:
    """`typ` with every field nullable and list items named 'item': what two columns
    must share to be read the same way (value types, struct field names and order)."""
    if pa.types.is_fixed_size_list(typ):
        return pa.list_(loose_type(typ.value_type), typ.list_size)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        inner = loose_type(typ.value_type)
        return pa.list_(inner) if pa.types.is_list(typ) else pa.large_list(inner)
    if pa.types.is_struct(typ):
        return pa.struct([pa.field(typ.field(i).name, loose_type(typ.field(i).type)) for i in range(typ.num_fields)])
    return typ


def check_component_type(entity: str, component: str, typ: pa.DataType) -> None:
    """ValueError unless a known component's column has Rerun 0.41's type (nullability
    aside); unknown components are not checked."""
    known = COMPONENTS.get(component)
    if known is None:
        return
    want = pa.list_(pa.field("item", known.arrow_type))
    if not loose_type(typ).equals(loose_type(want)):
        raise ValueError(f"{entity}: component {component!r} has type {typ}, expected {want}")


def timeline_kind(typ: pa.DataType) -> Optional[str]:
    """The timeline kind an Arrow index type stands for (None: not a time type)."""
    if pa.types.is_timestamp(typ):
        return "timestamp"
    if pa.types.is_duration(typ):
        return "duration"
    if pa.types.is_integer(typ):
        return "sequence"
    return None


def from_record_batch(batch: pa.RecordBatch) -> "Chunk":
    """Inverse of `to_record_batch`; accepts any chunk Rerun 0.41 writes.

    Columns are classified by their ``rerun:kind`` metadata (control / index / data);
    unknown components are kept with their metadata so they survive a round trip.
    """
    smeta = {k.decode(): v.decode() for k, v in (batch.schema.metadata or {}).items()}
    entity = smeta.get("rerun:entity_path")
    if entity is None:
        raise ValueError("record batch has no rerun:entity_path metadata: not a Rerun chunk")
    chunk_id = None
    parts = tuid_from_str(smeta.get("rerun:id", ""))
    if parts is not None:
        chunk_id = parts[0].to_bytes(8, "big") + parts[1].to_bytes(8, "big")
    row_ids = None
    timelines: dict[str, TimeColumn] = {}
    components: dict[str, pa.Array] = {}
    meta_out: dict[str, dict[str, str]] = {}
    for i, f in enumerate(batch.schema):
        fmeta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
        kind = fmeta.get("rerun:kind")
        col = batch.column(i)
        if f.name == ROW_ID_COLUMN or kind == "control":
            if pa.types.is_fixed_size_binary(f.type) and f.type.byte_width == 16:
                row_ids = row_ids_from_arrow(col)
            continue
        if kind == "index" or (kind is None and timeline_kind(f.type) and not pa.types.is_list(f.type)):
            tk = timeline_kind(f.type)
            if tk is None:
                raise ValueError(f"{entity}: index column {f.name!r} has unsupported type {f.type}")
            name = fmeta.get("rerun:index_name", f.name)
            _same_name(entity, "timeline", f.name, name)
            if col.null_count:
                raise ValueError(f"{entity}: index column {f.name!r} has {col.null_count} null(s)")
            values = fixed_width_values(col, np.int64)  # timestamps/durations are int64 underneath
            if fmeta.get("rerun:is_sorted") == "true" and values.size > 1 and bool(np.any(values[1:] < values[:-1])):
                raise ValueError(f"{entity}: timeline {name!r} is marked sorted but its values are not")
            timelines[name] = TimeColumn(tk, values)
            continue
        name = fmeta.get("rerun:component", f.name)
        _same_name(entity, "component", f.name, name)
        check_component_type(entity, name, col.type)
        components[name] = col
        if name not in COMPONENTS and fmeta:
            meta_out[name] = fmeta
    if row_ids is None:
        raise ValueError(f"{entity}: chunk has no {ROW_ID_COLUMN} column")
    return Chunk(
        normalize_entity_path(entity), row_ids, timelines, components, chunk_id, meta_out
    )
