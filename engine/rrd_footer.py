"""The end of an .rrd stream as Rerun 0.41 writes it: End message + stream footer.

Rerun 0.41's ``rrd verify`` requires both. The End message's body is an ``RrdFooter``
holding, per recording, an ``RrdManifest``: the recording's "sorbet" schema (every
entity:component column) and a one-row-per-chunk Arrow table (byte offset and size of
each chunk message, its time ranges per timeline and per component). The 32-byte
stream footer that follows points back at that body and checksums it with xxh32.

Readers do not need any of this (the decoder rebuilds its own index); it exists so
that files we write are complete in Rerun's eyes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from pixelrun.engine.chunk import ROW_ID_COLUMN, Chunk, TIMELINE_ARROW_TYPES, normalize_entity_path
from pixelrun.engine.rrd_proto import pb

FOOTER_CRC_SEED = 7850921  # Rerun's seed ("RERUN" in base 26)
_FOOTER_TAIL = b"RRF2FOOT" + struct.pack("<I", 1)

_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M


def xxh32(data: bytes, seed: int = 0) -> int:
    """xxHash32 (the footer checksum). Uses the `xxhash` package when installed."""
    try:
        import xxhash  # noqa: PLC0415 - optional accelerator

        return xxhash.xxh32_intdigest(data, seed)
    except ImportError:
        pass
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
    import hashlib

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

    store: object  # rrd.StoreInfo
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
                valid = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
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
        from pixelrun.engine.rrd import _store_id_pb

        m = pb.RrdManifest()
        m.store_id.CopyFrom(_store_id_pb(self.store))
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
