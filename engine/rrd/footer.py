"""The end of an .rrd stream as Rerun 0.41 writes it: End message + stream footer.

Rerun 0.41's ``rrd verify`` requires both. The End message's body is an ``RrdFooter``
holding, per recording, an ``RrdManifest``: the recording's "sorbet" schema (every
entity:component column) and a one-row-per-chunk Arrow table (byte offset and size of
each chunk message, its time ranges per timeline and per component). The 32-byte
stream footer that follows points back at that body and checksums it with xxh32.

Writing it makes files we write complete in Rerun's eyes. Reading it back
(`read_file_index`) gives the decoder the one checksummed description of a file's
chunks, which each chunk message is checked against (`check_against_index`).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from pixelrun.engine.arrow_numpy import validity_mask
from pixelrun.engine.chunk import (
    ROW_ID_COLUMN,
    TIMELINE_ARROW_TYPES,
    Chunk,
    format_time,
    loose_type,
    normalize_entity_path,
    timeline_kind,
    user_timelines,
)
from pixelrun.engine.rrd.ipc import check_ipc_payload, lz4_decompress
from pixelrun.engine.rrd.messages import FOURCC, MESSAGE_HEADER_SIZE, STREAM_FOOTER_SIZE, StoreInfo, store_id_pb
from pixelrun.engine.rrd.proto import pb

try:  # optional accelerator for the footer checksum; the pure-Python xxh32 below otherwise
    import xxhash
except ImportError:
    xxhash = None

FOOTER_CRC_SEED = 7850921  # Rerun's seed ("RERUN" in base 26)
_FOOTER_TAIL = b"RRF2FOOT" + struct.pack("<I", 1)

_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M


def xxh32(data: bytes, seed: int = 0) -> int:
    """xxHash32 (the footer checksum). Uses the `xxhash` package when installed."""
    if xxhash is not None:
        return xxhash.xxh32_intdigest(data, seed)
    data = bytes(data)
    n = len(data)
    i = 0
    if n >= 16:
        v1 = (seed + _P1 + _P2) & _M
        v2 = (seed + _P2) & _M
        v3 = seed & _M
        v4 = (seed - _P1) & _M
        nblocks = n // 16
        w = struct.unpack_from(f"<{nblocks * 4}I", data)
        for j in range(0, nblocks * 4, 4):
            v1 = (_rotl((v1 + w[j] * _P2) & _M, 13) * _P1) & _M
            v2 = (_rotl((v2 + w[j + 1] * _P2) & _M, 13) * _P1) & _M
            v3 = (_rotl((v3 + w[j + 2] * _P2) & _M, 13) * _P1) & _M
            v4 = (_rotl((v4 + w[j + 3] * _P2) & _M, 13) * _P1) & _M
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
        i = nblocks * 16
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while i + 4 <= n:
        (k,) = struct.unpack_from("<I", data, i)
        h = (_rotl((h + k * _P3) & _M, 17) * _P4) & _M
        i += 4
    while i < n:
        h = (_rotl((h + data[i] * _P5) & _M, 11) * _P1) & _M
        i += 1
    h ^= h >> 15
    h = (h * _P2) & _M
    h ^= h >> 13
    h = (h * _P3) & _M
    h ^= h >> 16
    return h


def stream_footer(body_offset: int, body: bytes) -> bytes:
    """The 32 bytes after the End message: offset, size, xxh32 of its body, RRF2FOOT, 1."""
    return struct.pack("<QQI", body_offset, len(body), xxh32(body, FOOTER_CRC_SEED)) + _FOOTER_TAIL


def schema_sha256(schema: pa.Schema) -> bytes:
    """Rerun's schema hash: SHA-256 of the IPC stream of the name-sorted fields, no
    schema metadata. Rerun only checks it in its heavy (test-time) sanity check; the
    IPC bytes of pyarrow and arrow-rs may differ, so this is a best-effort value."""
    sorted_schema = pa.schema(sorted(schema, key=lambda f: f.name))
    sink = pa.BufferOutputStream()
    pa.ipc.new_stream(sink, sorted_schema).close()
    return hashlib.sha256(sink.getvalue().to_pybytes()).digest()


@dataclass
class _ChunkEntry:
    entity: str
    chunk_id: bytes
    is_static: bool
    num_rows: int
    offset: int
    size: int
    uncompressed: int
    components: list  # names present (non-null somewhere)
    timelines: dict  # name -> (min, max)
    per_component: dict  # (timeline, component) -> (min, max, rows)


@dataclass
class ManifestBuilder:
    """Collects what the RrdManifest needs while chunks are written."""

    store: StoreInfo
    entries: list = field(default_factory=list)
    component_fields: dict = field(default_factory=dict)  # component -> metadata
    timeline_kinds: dict = field(default_factory=dict)  # timeline -> kind
    sorbet_fields: dict = field(default_factory=dict)  # column name -> pa.Field

    def add(self, chunk: Chunk, batch: pa.RecordBatch, offset: int, size: int, uncompressed: int) -> None:
        entity = normalize_entity_path(chunk.entity_path)
        comps = []
        per: dict = {}
        masks = {}
        for f, col in zip(batch.schema, batch.columns):
            meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
            if meta.get("rerun:kind") != "data":
                continue
            name = meta.get("rerun:component", f.name)
            if col.null_count == 0:
                valid = None  # every row carries it (the common case: no mask to build)
            elif col.null_count == len(col):
                continue
            else:
                valid = validity_mask(col)
            comps.append(name)
            masks[name] = valid
            self.component_fields.setdefault(name, {k: v for k, v in meta.items() if k != "rerun:kind"})
            prefix = "property" if entity == "/__properties" else entity
            sname = f"{prefix}:{name}"
            smeta = dict(meta)
            smeta["rerun:entity_path"] = entity
            if chunk.is_static:
                smeta["rerun:is_static"] = "true"
            old = self.sorbet_fields.get(sname)
            if old is None or (chunk.is_static and b"rerun:is_static" not in (old.metadata or {})):
                self.sorbet_fields[sname] = pa.field(sname, f.type, metadata=smeta)
        tls = {}
        for tname, tc in chunk.timelines.items():
            vals = np.asarray(tc.values, dtype=np.int64)
            self.timeline_kinds.setdefault(tname, tc.kind)
            if vals.size:
                tls[tname] = (int(vals.min()), int(vals.max()))
            for c, valid in masks.items():
                if valid is None:
                    if vals.size:
                        per[(tname, c)] = (tls[tname][0], tls[tname][1], int(vals.size))
                    continue
                v = vals[valid]
                if v.size:
                    per[(tname, c)] = (int(v.min()), int(v.max()), int(v.size))
        self.entries.append(
            _ChunkEntry(entity, chunk.chunk_id, chunk.is_static, chunk.num_rows, offset, size,
                        uncompressed, comps, tls, per)
        )

    # -- output

    def _sorbet_schema(self) -> pa.Schema:
        fields = [
            pa.field(ROW_ID_COLUMN, pa.binary(16), nullable=False, metadata={
                "ARROW:extension:metadata": '{"namespace":"row"}',
                "ARROW:extension:name": "rerun.datatypes.TUID",
                "rerun:kind": "control",
            })
        ]
        for t in sorted(self.timeline_kinds):
            fields.append(pa.field(t, TIMELINE_ARROW_TYPES[self.timeline_kinds[t]],
                                   metadata={"rerun:index_name": t, "rerun:kind": "index"}))
        fields.extend(self.sorbet_fields[k] for k in sorted(self.sorbet_fields))
        return pa.schema(fields)

    def _table(self) -> pa.RecordBatch:
        e = self.entries
        cols: list[tuple[pa.Field, pa.Array]] = []

        def add(name, typ, values, nullable=True, meta=None):
            cols.append((pa.field(name, typ, nullable=nullable, metadata=meta), pa.array(values, type=typ)))

        add("chunk_entity_path", pa.string(), [x.entity for x in e], False)
        add("chunk_id", pa.binary(16), [x.chunk_id for x in e], False)
        add("chunk_is_static", pa.bool_(), [x.is_static for x in e], False)
        add("chunk_num_rows", pa.uint64(), [x.num_rows for x in e], False)
        add("chunk_byte_offset", pa.uint64(), [x.offset for x in e], False)
        add("chunk_byte_size", pa.uint64(), [x.size for x in e], False)
        add("chunk_byte_size_uncompressed", pa.uint64(), [x.uncompressed for x in e], False)
        comps = sorted(self.component_fields)
        for c in comps:
            meta = dict(self.component_fields[c])
            meta["rerun:index"] = "rerun:static"
            add(f"{c}:has_static_data", pa.bool_(),
                [x.is_static and c in x.components for x in e], False, meta)
        tls = sorted(self.timeline_kinds)
        for t in tls:
            typ = TIMELINE_ARROW_TYPES[self.timeline_kinds[t]]
            for which, k in (("start", 0), ("end", 1)):
                vals = [x.timelines[t][k] if t in x.timelines else None for x in e]
                add(f"{t}:{which}", typ, pa.array(vals, type=pa.int64()).cast(typ), True, {"rerun:index": t})
        for t in tls:
            typ = TIMELINE_ARROW_TYPES[self.timeline_kinds[t]]
            for c in comps:
                if not any((t, c) in x.per_component for x in e):
                    continue
                meta = dict(self.component_fields[c])
                meta["rerun:index"] = t
                for which, k in (("start", 0), ("end", 1)):
                    vals = [x.per_component[(t, c)][k] if (t, c) in x.per_component else None for x in e]
                    add(f"{t}:{c}:{which}", typ, pa.array(vals, type=pa.int64()).cast(typ), True, meta)
                add(f"{t}:{c}:num_rows", pa.uint64(),
                    [x.per_component[(t, c)][2] if (t, c) in x.per_component else 0 for x in e], True, meta)
        schema = pa.schema([f for f, _ in cols])
        return pa.RecordBatch.from_arrays([a for _, a in cols], schema=schema)

    def manifest(self):
        """This recording's RrdManifest (protobuf message)."""
        m = pb.RrdManifest()
        m.store_id.CopyFrom(store_id_pb(self.store))
        schema = self._sorbet_schema()
        m.sorbet_schema.arrow_schema = schema.serialize().to_pybytes()
        m.sorbet_schema_sha256 = schema_sha256(schema)
        payload = _ipc_bytes(self._table())
        m.data.encoder_version = pb.ENCODER_VERSION_V0
        m.data.payload = payload
        m.data.compression = pb.COMPRESSION_NONE
        m.data.uncompressed_size = len(payload)
        return m

    def footer_body(self) -> bytes:
        """Serialized RrdFooter with this recording's manifest only."""
        return footer_body([self])


def _ipc_bytes(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def footer_body(builders) -> bytes:
    """Serialized RrdFooter: one manifest per recording of the stream."""
    footer = pb.RrdFooter()
    for b in builders:
        footer.manifests.append(b.manifest())
    return footer.SerializeToString()


# ------------------------------------------------------------------ reading it back
#
# The footer is the only part of an .rrd that carries a checksum (xxh32 of the End
# message's body). Rerun 0.41 has no per-message checksum and compresses with LZ4
# *block* format, which has none either, so the manifest is what a reader can check
# each chunk message against: its size, chunk id, entity, row count, timelines with
# their ranges, rows per component and column types. Pixel bytes are in no index:
# a changed pixel value cannot be detected in an .rrd file.


@dataclass
class IndexEntry:
    """What the (checksummed) manifest says about one chunk message."""

    entity: str
    chunk_id: bytes
    is_static: bool
    num_rows: int
    body_offset: int  # absolute, in the file
    size: int  # message body bytes
    timelines: dict  # timeline -> (min, max)
    component_rows: dict  # (timeline, component) -> rows carrying it (when not 0)
    static_components: frozenset  # components a static chunk carries

    def describe(self, kinds: dict) -> str:
        """'/cam at step #5' (entity and time range, for problem messages); `kinds`
        maps timeline -> kind. The SDK's automatic timelines only when there is no other."""
        if not self.timelines:
            return f"{self.entity} (static)"
        names = user_timelines(self.timelines) or sorted(self.timelines)
        parts = []
        for tl in names:
            lo, hi = (format_time(kinds.get(tl, "sequence"), v) for v in self.timelines[tl])
            parts.append(f"{tl} {lo}" if lo == hi else f"{tl} {lo}..{hi}")
        return f"{self.entity} at " + ", ".join(parts)


@dataclass
class FileIndex:
    """A file's manifests, by chunk id and by absolute message body offset.

    `covers_all`: the footer belongs to a stream starting at byte `base` of the file
    (byte 0 for a single-stream file), so every chunk message from there on must be
    listed; a chunk that is not is damaged (its id or framing changed).
    """

    base: int
    covers_all: bool
    by_id: dict = field(default_factory=dict)
    by_offset: dict = field(default_factory=dict)
    column_types: dict = field(default_factory=dict)  # (entity, component) -> pa.DataType
    component_columns: set = field(default_factory=set)  # (timeline, component) counted
    timeline_kinds: dict = field(default_factory=dict)  # timeline -> sequence/duration/timestamp

    def describe(self, entry: IndexEntry) -> str:
        return entry.describe(self.timeline_kinds)

    def covers(self, body_offset: int) -> bool:
        return self.covers_all and body_offset >= self.base


def _manifest_table(m, max_decompressed_bytes: int) -> pa.Table:
    payload = m.data.payload
    if m.data.compression == pb.COMPRESSION_LZ4:  # the one bounded LZ4 path
        payload = lz4_decompress(payload, m.data.uncompressed_size, max_decompressed_bytes)
    check_ipc_payload(payload)
    table = pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
    for col in table.columns:
        col.validate(full=True)
    return table


def _meta(f: pa.Field) -> dict:
    return {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}


def _int_column(col) -> list:
    if not pa.types.is_integer(col.type):
        col = col.cast(pa.int64())
    return col.to_pylist()


def _entries(table: pa.Table, base: int, index: "FileIndex") -> list:
    n = table.num_rows
    ent = table.column("chunk_entity_path").to_pylist()
    ids = table.column("chunk_id").to_pylist()
    static = table.column("chunk_is_static").to_pylist()
    rows = _int_column(table.column("chunk_num_rows"))
    offs = _int_column(table.column("chunk_byte_offset"))
    sizes = _int_column(table.column("chunk_byte_size"))
    ranges: dict = {}  # timeline -> [starts, ends]
    comp_rows: dict = {}  # (timeline, component) -> counts
    static_comps: dict = {}  # component -> flags
    for f, col in zip(table.schema, table.columns):
        meta = _meta(f)
        idx, comp = meta.get("rerun:index"), meta.get("rerun:component")
        if idx is None:
            continue
        if idx == "rerun:static" and comp is not None and f.name.endswith(":has_static_data"):
            static_comps[comp] = col.to_pylist()
        elif comp is None and f.name in (f"{idx}:start", f"{idx}:end"):
            ranges.setdefault(idx, [None, None])[f.name.endswith(":end")] = _int_column(col)
            index.timeline_kinds.setdefault(idx, timeline_kind(f.type) or "sequence")
        elif comp is not None and f.name == f"{idx}:{comp}:num_rows":
            comp_rows[(idx, comp)] = _int_column(col)
            index.component_columns.add((idx, comp))
    out = []
    for i in range(n):
        tls = {tl: (se[0][i], se[1][i]) for tl, se in ranges.items()
               if se[0] is not None and se[1] is not None and se[0][i] is not None}
        crows = {k: v[i] for k, v in comp_rows.items() if v[i]}  # zeros left out
        scomps = frozenset(c for c, v in static_comps.items() if v[i])
        out.append(IndexEntry(ent[i], ids[i], bool(static[i]), int(rows[i]), base + int(offs[i]),
                              int(sizes[i]), tls, crows, scomps))
    return out


def read_file_index(read_at, size: int, max_decompressed_bytes: int) -> tuple:
    """(FileIndex or None, problems) from the stream footer at the end of a file.

    `read_at(offset, n)` returns up to n bytes of the file at offset. None without a
    problem when the file has no footer (a writer that did not finish says so
    elsewhere); a footer that fails its checksum or does not parse is a problem, and
    the file is then read without cross-checks.
    """
    if size < STREAM_FOOTER_SIZE + MESSAGE_HEADER_SIZE:
        return None, []
    tail = read_at(size - STREAM_FOOTER_SIZE, STREAM_FOOTER_SIZE)
    if len(tail) != STREAM_FOOTER_SIZE or tail[20:] != _FOOTER_TAIL:
        return None, []
    body_offset, body_size, crc = struct.unpack_from("<QQI", tail, 0)
    body_at = size - STREAM_FOOTER_SIZE - body_size
    where = f"the file's index (End message at byte {max(body_at - MESSAGE_HEADER_SIZE, 0)})"
    if body_size > size - STREAM_FOOTER_SIZE - MESSAGE_HEADER_SIZE:
        return None, [f"{where} claims {body_size} bytes, more than the file holds: "
                      "damaged; chunks are read without cross-checks"]
    body = read_at(body_at, body_size)
    if xxh32(body, FOOTER_CRC_SEED) != crc:
        return None, [f"{where} fails its xxh32 checksum: damaged; chunks are read "
                      "without cross-checks"]
    try:
        footer = pb.RrdFooter.FromString(body)
        base = body_at - body_offset
        covers_all = base >= 0 and read_at(base, 4) == FOURCC
        index = FileIndex(base if base >= 0 else 0, covers_all)
        for m in footer.manifests:
            table = _manifest_table(m, max_decompressed_bytes)
            for e in _entries(table, index.base, index):
                index.by_id[e.chunk_id] = e
                index.by_offset[e.body_offset] = e
            if m.HasField("sorbet_schema") and m.sorbet_schema.arrow_schema:
                schema = pa.ipc.read_schema(pa.py_buffer(m.sorbet_schema.arrow_schema))
                for f in schema:
                    meta = _meta(f)
                    if "rerun:entity_path" in meta and "rerun:component" in meta:
                        index.column_types[(meta["rerun:entity_path"], meta["rerun:component"])] = f.type
    except Exception as exc:  # a checksummed footer we cannot read: say so
        return None, [f"{where} cannot be read ({type(exc).__name__}: {exc}); chunks are "
                      "read without cross-checks"]
    return index, []


def check_against_index(entry: IndexEntry, chunk: Chunk, body_size: int, index: FileIndex) -> list:
    """What in a decoded chunk disagrees with its manifest entry (empty when nothing)."""
    bad = []
    if body_size != entry.size:
        bad.append(f"message is {body_size} bytes, the index says {entry.size}")
    entity = normalize_entity_path(chunk.entity_path)
    if entity != entry.entity:
        bad.append(f"entity {entity!r}, the index says {entry.entity!r}")
    if chunk.num_rows != entry.num_rows:
        bad.append(f"{chunk.num_rows} rows, the index says {entry.num_rows}")
    if chunk.is_static != entry.is_static:
        bad.append(f"{'static' if chunk.is_static else 'temporal'} chunk, the index says otherwise")
    have = {}
    for tl, tc in chunk.timelines.items():
        vals = np.asarray(tc.values)
        if vals.size:
            have[tl] = (int(vals.min()), int(vals.max()))
    if set(have) != set(entry.timelines):
        bad.append(f"timelines {sorted(have)!r}, the index says {sorted(entry.timelines)!r}")
    else:
        for tl, rng in have.items():
            if rng != tuple(entry.timelines[tl]):
                bad.append(f"{tl} spans {rng[0]}..{rng[1]}, the index says "
                           f"{entry.timelines[tl][0]}..{entry.timelines[tl][1]}")
    for name, col in chunk.components.items():
        want = index.column_types.get((entry.entity, name))
        if want is not None and not loose_type(col.type).equals(loose_type(want)):
            bad.append(f"component {name!r} has type {col.type}, the index says {want}")
    if not bad:  # only worth counting when the chunk is otherwise sound
        counts = {name: len(col) - col.null_count for name, col in chunk.components.items()}
        for tl, comp in index.component_columns:
            n = entry.component_rows.get((tl, comp), 0)
            if tl in have and counts.get(comp, 0) != n:
                bad.append(f"{counts.get(comp, 0)} rows carry {comp!r} on {tl}, the index says {n}")
        if chunk.is_static:
            carried = {c for c, n in counts.items() if n}
            if entry.static_components and carried != set(entry.static_components):
                bad.append(f"carries {sorted(carried)!r}, the index says {sorted(entry.static_components)!r}")
    return bad
