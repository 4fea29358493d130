"""The chunk store: what every entity shows at any time point (contract §5).

`ChunkStore` ingests decoded chunks (from a file, a byte stream, a memory recording, or
directly) and answers

- ``latest_at(entity, components, timeline, t)``: per component, the row with the
  greatest (time <= t, row id); a static value wins over every temporal one and the
  static row with the greatest row id wins among statics;
- ``range(entity, component, timeline, t0, t1)``: every row with t0 <= time <= t1 in
  (time, row id) order, or the static value alone when one exists (it shadows them).

Each (entity, timeline, component) has its own sorted index (`store_index`), so a query
is a binary search, never a scan. A temporal row is visible only on the timelines its
chunk carries. Rows whose component entry is null do not carry the component (a
component on only some rows); an empty list is a real value (a clear).

Memory: the store counts the Arrow/NumPy buffers its chunks really hold (shared root
buffers once; see store_memory). Past the limit (default 75% of RAM, like Rerun's
viewer) it drops whole temporal chunks, oldest row id first, never static data, and
reports each drop (`IngestReport.dropped`, `ChunkStore.dropped`, `dropped_totals`).
Chunks that can be read again from their file (an MCAP file with a chunk index; see
`add_chunks(reread_from=...)`) are evicted instead of dropped: their index entries stay,
so every query still finds their rows, and a query that lands on one reads just that
data back (`_restore`) under the same limit, evicting others (re-read chunks go last,
least recently re-read first). `evicted_totals` and `reread_totals` count both. A
static chunk whose every component has been overwritten by a newer static row can no
longer be seen by any query; it is released at once (reported as superseded). Arrays
that are small views into a much larger decoded message are copied out once, so the
message can be freed (`_compact`). The query indices (32 bytes per row and component)
are not counted against the limit; `index_nbytes()` reports them.

Sources: `ingest_file` (read in groups of whole messages, see store_source),
`ingest_bytes`, `ingest_recording` (anything with ``rrd_bytes()``), `feed` /
`close_stream` / `ingest_stream` (a socket), or `add_chunks` with decoded chunks. Only
Image components are kept by default; others are skipped with one note per (entity,
component). Decoder problems (truncation, corrupt messages with their byte offsets)
come back in the report and as one StoreWarning per call.

Thread safety: one lock guards the indices. Decoding happens outside it, so a viewer
can ingest on a background thread while its draw loop queries.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from pixelrun.engine.archetypes import DRAWABLE_COLUMNS
from pixelrun.engine.arrow_numpy import validity_mask
from pixelrun.engine.chunk import Chunk, normalize_entity_path
from pixelrun.engine.mcap import McapSource, is_bag
from pixelrun.engine.store.index import SortedIndex
from pixelrun.engine.store.memory import (
    DEFAULT_MEMORY_LIMIT,
    RootLedger,
    arrow_roots,
    numpy_roots,
    parse_memory_limit,
)
from pixelrun.engine.store.source import READ_BLOCK, ChunkSource, ReadBuffer, message_groups, open_file
from pixelrun.kernels.errors import PixelrunWarning, user_stacklevel

__all__ = [
    "IMAGE_COMPONENTS",
    "StoreWarning",
    "Hit",
    "RangeResult",
    "DroppedChunk",
    "IngestReport",
    "TimelineInfo",
    "EntityInfo",
    "ChunkStore",
    "normalize_entity_path",
    "open_store",
]

# What the store keeps by default: every component of every archetype the scene draws
# (the archetype table's DRAWABLE_COLUMNS; the name is older than the table). Anything
# else is skipped with one note per (entity, component) (pass keep_components=None to
# keep everything).
IMAGE_COMPONENTS = DRAWABLE_COLUMNS


class StoreWarning(PixelrunWarning):
    """A recording could only be read in part (truncation, a corrupt message, ...)."""


def _is_under(entity: str, root: str) -> bool:
    return root == "/" or entity == root or entity.startswith(root + "/")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Hit:
    """One component value found by a query: the row it came from and its value."""

    entity: str
    component: str
    row_id: int  # 128-bit: time_ns << 64 | counter
    time: Optional[int]  # None for static rows
    chunk: Chunk
    row: int  # row within `chunk`

    @property
    def is_static(self) -> bool:
        return self.time is None

    @property
    def values(self) -> pa.Array:
        """This row's component batch (the list element): zero-copy slice of the chunk."""
        return self.chunk.components[self.component][self.row].values


@dataclass
class RangeResult:
    """Rows of one component in a time range, in (time, row id) order.

    A static value shadows the range: then there is exactly one entry, with time None.
    """

    entity: str
    component: str
    times: np.ndarray  # int64 (empty for a static result)
    row_ids: np.ndarray  # (n, 2) uint64
    static: Optional[Hit] = None
    _chunks: list = field(default_factory=list, repr=False)  # per entry: Chunk
    _rows: Optional[np.ndarray] = field(default=None, repr=False)

    def __len__(self) -> int:
        return 1 if self.static is not None else int(self.times.shape[0])

    def hit(self, i: int) -> Hit:
        if self.static is not None:
            if i != 0:
                raise IndexError(i)
            return self.static
        hi, lo = self.row_ids[i]
        return Hit(
            self.entity,
            self.component,
            (int(hi) << 64) | int(lo),
            int(self.times[i]),
            self._chunks[i],
            int(self._rows[i]),
        )

    def __iter__(self) -> Iterator[Hit]:
        for i in range(len(self)):
            yield self.hit(i)


@dataclass(frozen=True)
class DroppedChunk:
    """A chunk the store let go of, and why ('memory limit' or 'superseded static')."""

    entity: str
    chunk_id: Optional[bytes]
    rows: int
    nbytes: int
    reason: str
    time_ranges: dict  # timeline -> (min, max)


@dataclass
class IngestReport:
    """What one ingest call did: counts, problems from the decoder, notes, drops."""

    chunks: int = 0
    rows: int = 0
    problems: list = field(default_factory=list)  # decoder problems (str or objects)
    notes: list = field(default_factory=list)  # skipped components etc.
    dropped: list = field(default_factory=list)  # DroppedChunk

    def merge(self, other: "IngestReport") -> None:
        self.chunks += other.chunks
        self.rows += other.rows
        self.problems += other.problems
        self.notes += other.notes
        self.dropped += other.dropped


@dataclass(frozen=True)
class TimelineInfo:
    name: str
    kind: str  # sequence / duration / timestamp
    min: int
    max: int
    rows: int


@dataclass(frozen=True)
class EntityInfo:
    path: str
    rows: int  # rows held (static + temporal)
    static_rows: int
    nbytes: int
    components: tuple  # component names held


# ---------------------------------------------------------------------- stored chunks


class _Stored:
    __slots__ = (
        "seq",
        "chunk",
        "entity",
        "is_static",
        "roots",
        "nbytes",
        "rows",
        "min_row",
        "components",
        "time_ranges",
        "static_wins",
        "source",
        "chunk_id",
        "topic",
        "timeline_names",
    )

    def __init__(self, seq: int, chunk: Chunk, entity: str, roots: dict, rows: int, source=None) -> None:
        self.seq = seq
        self.chunk: Optional[Chunk] = chunk  # None while evicted
        self.source = source  # reads the chunk again after eviction (None: dropped instead)
        self.chunk_id = chunk.chunk_id
        self.topic = chunk.entity_path  # the name the source knows it by
        self.timeline_names = tuple(chunk.timelines)
        self.entity = entity
        self.is_static = chunk.is_static
        self.roots = roots
        self.nbytes = sum(roots.values())
        self.rows = rows
        self.min_row = (0, 0)
        self.components: tuple = ()
        self.time_ranges: dict = {}
        self.static_wins = 0  # static chunks: how many (entity, component) they win


def _row_id_halves(chunk: Chunk) -> tuple[np.ndarray, np.ndarray]:
    rid = np.asarray(chunk.row_ids)
    if rid.ndim != 2 or rid.shape[1] != 2:
        raise ValueError(
            f"{chunk.entity_path}: row_ids must be an (n, 2) uint64 array, got shape {rid.shape}"
        )
    rid = rid.astype(np.uint64, copy=False)
    return rid[:, 0], rid[:, 1]


def _present_rows(arr: pa.Array) -> np.ndarray:
    """Row numbers whose entry is not null (null: the row does not carry the component)."""
    n = len(arr)
    if arr.null_count == 0:
        return np.arange(n, dtype=np.int32)
    valid = validity_mask(arr)
    return np.flatnonzero(valid).astype(np.int32)


# A decoded chunk's arrays are views into the decoded message. When that message holds
# much more than the arrays use (Rerun 0.41 writes an unused 1-bit-per-byte region next
# to each image buffer: +12.5 % for every frame), the arrays are copied out once into
# tight buffers and the message is let go: memory is what the store runs out of first.
COMPACT_SLACK = 0.05
DROP_LOG_SIZE = 1000  # DroppedChunk records kept in ChunkStore.dropped
COMPACT_MIN_BYTES = 64 << 10


def _compact(comps: dict, roots: dict) -> tuple[dict, dict]:
    held = sum(roots.values())
    used = sum(arr.nbytes for arr in comps.values())
    if held - used < COMPACT_MIN_BYTES or held <= used * (1 + COMPACT_SLACK):
        return comps, roots
    tight = {name: _tight_copy(arr) for name, arr in comps.items()}
    return tight, arrow_roots(tight.values())


def _tight_copy(arr: pa.Array) -> pa.Array:
    """`arr` with every buffer copied to its own allocation (children too).

    Buffers are copied with NumPy (the C heap, like the decoded messages) rather than
    into Arrow's memory pool, so that freed message memory and the copies come from
    one allocator that hands it back.
    """
    if arr.offset != 0:
        return pa.concat_arrays([arr])  # rare (sliced input): Arrow knows how
    t = arr.type
    own = arr.buffers()[: t.num_buffers]
    bufs = [None if b is None else pa.py_buffer(np.frombuffer(b, np.uint8).copy()) for b in own]
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        children = [_tight_copy(arr.values)]
    elif pa.types.is_struct(t):
        children = [_tight_copy(arr.field(i)) for i in range(t.num_fields)]
    elif t.num_fields == 0:
        children = None
    else:
        return pa.concat_arrays([arr])  # unions, maps, ...: Arrow knows how
    return pa.Array.from_buffers(t, len(arr), bufs, null_count=arr.null_count, children=children)


def _same_rows(st: _Stored, item: tuple) -> bool:
    """Whether a chunk read again (prepared) is the one that was evicted: same entity,
    components, row count and first row id."""
    chunk, entity, hi, lo = item[:4]
    if entity != st.entity or chunk.num_rows != st.rows or tuple(item[5]) != st.components:
        return False
    order = np.lexsort((lo, hi))
    return (int(hi[order[0]]), int(lo[order[0]])) == st.min_row if st.rows else True


# --------------------------------------------------------------------------- the store


class ChunkStore:
    """Indexed, memory-limited, thread-safe store of chunks (see module docstring).

    memory_limit: bytes, ``"75%"`` of RAM, ``"2GB"``, or None for no limit.
    keep_components: component names to keep (default: IMAGE_COMPONENTS, every
    component of the drawable archetypes); None keeps every component (what
    ``pixelrun info`` uses).
    """

    def __init__(
        self,
        memory_limit: Union[None, int, float, str] = DEFAULT_MEMORY_LIMIT,
        keep_components: Optional[Iterable[str]] = IMAGE_COMPONENTS,
    ) -> None:
        self.memory_limit: Optional[int] = parse_memory_limit(memory_limit)
        self._keep = None if keep_components is None else frozenset(keep_components)
        self._lock = threading.RLock()
        self._seq = 0
        self._chunks: dict[int, _Stored] = {}
        # (entity, timeline, component) -> SortedIndex
        self._index: dict[tuple[str, str, str], SortedIndex] = {}
        # (entity, component) -> (hi, lo, seq, row) of the winning static row
        self._static: dict[tuple[str, str], tuple[int, int, int, int]] = {}
        self._timeline_kinds: dict[str, str] = {}
        # What `timelines()` reports, kept up to date as chunks come and go (a live viewer
        # asks after every ingest; walking every chunk each time grew with the session):
        # timeline -> rows and chunks of temporal data held or evicted, and heaps of
        # (min time, seq) / (-max time, seq) whose entries of dropped chunks are skipped
        # when they surface and swept out when they outnumber the live ones.
        self._tl_rows: collections.Counter = collections.Counter()
        self._tl_chunks: collections.Counter = collections.Counter()
        self._tl_lo: dict[str, list] = {}
        self._tl_hi: dict[str, list] = {}
        self._entities: dict[str, set] = {}  # entity -> set of chunk seqs held
        self._ledger = RootLedger()
        # (tick, hi, lo, seq) of temporal chunks: oldest row id first among ingested chunks
        # (tick 0), then re-read ones in the order they were read back
        self._drop_heap: list[tuple[int, int, int, int]] = []
        self._tick = 0
        self._evicted: dict[int, _Stored] = {}  # seq -> evicted chunk (index entries kept)
        self._evicted_entities: collections.Counter = collections.Counter()  # entity -> chunks evicted
        self.evicted_totals = {"chunks": 0, "rows": 0, "bytes": 0}  # evictions (not losses)
        self.reread_totals = {"source_chunks": 0, "chunks": 0, "bytes": 0}  # reads back from files
        self._skipped: dict[tuple[str, str], int] = {}  # (entity, component) -> rows skipped
        # the most recent drops (a long session drops millions: keep the tail) + totals
        self.dropped: collections.deque = collections.deque(maxlen=DROP_LOG_SIZE)
        self.dropped_totals = {"chunks": 0, "rows": 0, "bytes": 0}
        self.notes: list[str] = []
        self.problems: list = []
        self.store_infos: list = []  # the recordings (rrd.StoreInfo) ingested sources named
        self._stream_decoder: Any = None
        self.generation = 0  # bumps on every change: lets viewers cache query results
        self._entities_cache: dict = {}  # (under, component) -> entities, this generation
        self._entities_cache_gen = -1

    # ================================================================ ingest: chunks

    def add_chunk(self, chunk: Chunk) -> IngestReport:
        """Index one decoded chunk (and enforce the memory limit)."""
        return self.add_chunks((chunk,))

    insert = add_chunk  # the name the viewer uses

    def add_chunks(self, chunks: Iterable[Chunk], reread_from: Any = None) -> IngestReport:
        """Index decoded chunks in order, then enforce the memory limit once.

        reread_from: the source the chunks came from, when it can give a chunk back
        (``reread(chunk_ids, topics) -> {chunk_id: Chunk}``, e.g. engine.mcap.McapSource):
        the memory limit then evicts these chunks instead of dropping them.
        """
        report = IngestReport()
        prepared = []
        for chunk in chunks:
            try:
                item = self._prepare(chunk, report)  # outside the lock: pure computation
            except (ValueError, TypeError, pa.ArrowException) as exc:
                # a chunk the codec could frame but that makes no sense: skip it, keep the rest
                msg = f"{getattr(chunk, 'entity_path', '?')}: chunk skipped: {exc}"
                report.problems.append(msg)
                self.problems.append(msg)
                continue
            if item is not None:
                prepared.append(item)
        with self._lock:
            for item in prepared:
                self._insert(*item, report, source=reread_from)
            report.dropped += self._enforce_limit()
            self.generation += 1
        return report

    def _prepare(self, chunk: Chunk, report: IngestReport):
        entity = normalize_entity_path(chunk.entity_path)
        n = chunk.num_rows
        hi, lo = _row_id_halves(chunk)
        comps: dict[str, pa.Array] = {}
        for name, arr in chunk.components.items():
            if self._keep is not None and name not in self._keep:
                key = (entity, name)
                with self._lock:  # two ingest threads may meet here
                    first = key not in self._skipped
                    self._skipped[key] = self._skipped.get(key, 0) + n
                    if first:
                        note = f"{entity}: skipped component {name!r} (not an Image component)"
                        report.notes.append(note)
                        self.notes.append(note)
                continue
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
            if len(arr) != n:
                msg = f"{entity}: component {name!r} has {len(arr)} rows, expected {n} (chunk skipped)"
                report.problems.append(msg)
                self.problems.append(msg)
                return None
            try:
                # offsets and lengths checked once here (cheap: per row, not per byte), so
                # a damaged file can never make a later query read out of bounds
                arr.validate(full=True)
            except (pa.ArrowInvalid, pa.ArrowException) as exc:
                msg = f"{entity}: component {name!r} is malformed ({exc}); chunk skipped"
                report.problems.append(msg)
                self.problems.append(msg)
                return None
            comps[name] = arr
        times: dict[str, np.ndarray] = {}
        for tl, col in chunk.timelines.items():
            v = np.asarray(col.values)
            if v.shape != (n,):
                msg = f"{entity}: timeline {tl!r} has {v.shape} values, expected {n} (chunk skipped)"
                report.problems.append(msg)
                self.problems.append(msg)
                return None
            # an owned copy (8 bytes a row): a view would keep the whole decoded message alive
            times[tl] = np.array(v, dtype=np.int64, copy=True)
        if not comps:
            return None  # nothing this store keeps
        roots = arrow_roots(comps.values())
        comps, roots = _compact(comps, roots)
        meta = {k: v for k, v in getattr(chunk, "component_meta", {}).items() if k in comps}
        chunk = dataclasses.replace(
            chunk,
            components=comps,
            component_meta=meta,
            timelines={tl: dataclasses.replace(col, values=times[tl]) for tl, col in chunk.timelines.items()},
        )
        presence = {name: _present_rows(arr) for name, arr in comps.items()}
        roots.update(numpy_roots([np.asarray(chunk.row_ids), *times.values()], roots))
        return chunk, entity, hi, lo, times, presence, roots

    def _insert(self, chunk, entity, hi, lo, times, presence, roots, report: IngestReport, source=None) -> None:
        seq = self._seq
        self._seq += 1
        st = _Stored(seq, chunk, entity, roots, chunk.num_rows, None if chunk.chunk_id is None else source)
        st.components = tuple(presence)
        if chunk.num_rows:
            order = np.lexsort((lo, hi))
            st.min_row = (int(hi[order[0]]), int(lo[order[0]]))
        self._chunks[seq] = st
        self._entities.setdefault(entity, set()).add(seq)
        self._ledger.add(roots)
        report.chunks += 1
        report.rows += chunk.num_rows

        if st.is_static:
            self._insert_static(st, hi, lo, presence, report)
            return
        for tl, t in times.items():
            self._timeline_kinds.setdefault(tl, chunk.timelines[tl].kind)
            if t.shape[0]:
                st.time_ranges[tl] = (int(t.min()), int(t.max()))
                self._summary_add(tl, st)
            for comp, rows in presence.items():
                if rows.shape[0] == 0:
                    continue
                idx = self._index.get((entity, tl, comp))
                if idx is None:
                    idx = self._index[(entity, tl, comp)] = SortedIndex()
                idx.append(t[rows], hi[rows], lo[rows], seq, rows)
        heapq.heappush(self._drop_heap, (0, st.min_row[0], st.min_row[1], seq))

    def _insert_static(self, st: _Stored, hi, lo, presence, report: IngestReport) -> None:
        losers: set[int] = set()
        for comp, rows in presence.items():
            if rows.shape[0] == 0:
                continue
            # the chunk's own winner: greatest row id among rows carrying the component
            order = np.lexsort((lo[rows], hi[rows]))
            r = int(rows[order[-1]])
            cand = (int(hi[r]), int(lo[r]), st.seq, r)
            key = (st.entity, comp)
            cur = self._static.get(key)
            if cur is None or (cand[0], cand[1]) > (cur[0], cur[1]):
                self._static[key] = cand
                st.static_wins += 1
                if cur is not None:
                    old = self._chunks.get(cur[2])
                    if old is not None:
                        old.static_wins -= 1
                        losers.add(old.seq)
        if st.static_wins == 0:
            losers.add(st.seq)  # arrived already shadowed by newer static rows
        for seq in losers:
            old = self._chunks.get(seq)
            if old is not None and old.static_wins == 0:
                report.dropped.append(self._remove(old, "superseded static"))

    # ================================================================ memory limit

    @property
    def held_bytes(self) -> int:
        """Bytes of the buffers the held chunks keep alive (shared buffers counted once)."""
        return self._ledger.total

    def set_memory_limit(self, limit: Union[None, int, float, str]) -> list[DroppedChunk]:
        """Change the limit; drops at once what no longer fits."""
        with self._lock:
            self.memory_limit = parse_memory_limit(limit)
            dropped = self._enforce_limit()
            self.generation += 1
            return dropped

    def _enforce_limit(self, room: int = 0) -> list[DroppedChunk]:
        """Drop (or evict) chunks until the held bytes plus `room` fit the limit."""
        out: list[DroppedChunk] = []
        limit = self.memory_limit
        if limit is None:
            return out
        while self._ledger.total + room > limit and self._drop_heap:
            seq = heapq.heappop(self._drop_heap)[-1]
            st = self._chunks.get(seq)
            if st is None:
                continue  # already removed
            if st.source is not None:
                self._evict(st)
            else:
                out.append(self._remove(st, "memory limit"))
        return out

    def _unhold(self, st: _Stored) -> None:
        del self._chunks[st.seq]
        seqs = self._entities.get(st.entity)
        if seqs is not None:
            seqs.discard(st.seq)
            if not seqs:
                del self._entities[st.entity]
        self._ledger.release(st.roots)

    def _evict(self, st: _Stored) -> None:
        """Let go of a chunk's data but keep its index entries: `_restore` reads it back."""
        self._unhold(st)
        st.chunk, st.roots = None, {}
        self._evicted[st.seq] = st
        self._evicted_entities[st.entity] += 1
        self.evicted_totals["chunks"] += 1
        self.evicted_totals["rows"] += st.rows
        self.evicted_totals["bytes"] += st.nbytes

    def _unevict(self, st: _Stored) -> None:
        del self._evicted[st.seq]
        self._evicted_entities[st.entity] -= 1
        if not self._evicted_entities[st.entity]:
            del self._evicted_entities[st.entity]

    def _remove(self, st: _Stored, reason: str) -> DroppedChunk:
        if st.seq in self._evicted:
            self._unevict(st)
        else:
            self._unhold(st)
        if not st.is_static:
            for tl in st.time_ranges:
                self._summary_remove(tl, st)
            for tl in st.timeline_names:
                for comp in st.components:
                    idx = self._index.get((st.entity, tl, comp))
                    if idx is not None:
                        idx.remove_chunk(st.seq)
        d = DroppedChunk(st.entity, st.chunk_id, st.rows, st.nbytes, reason, dict(st.time_ranges))
        self.dropped.append(d)
        self.dropped_totals["chunks"] += 1
        self.dropped_totals["rows"] += st.rows
        self.dropped_totals["bytes"] += st.nbytes
        return d

    def _restore(self, seqs: Iterable[int]) -> dict[int, Chunk]:
        """Read evicted chunks back from their sources: {seq: chunk} for those read back.

        Room is made first (evicting or dropping others, never past the limit); the
        chunks come back as the most recently used. One that cannot be read again (the
        file changed or is damaged now) is dropped for good: its rows leave the index and
        a problem names it. Called under the lock.
        """
        groups: dict[int, list[_Stored]] = {}
        for seq in seqs:
            st = self._evicted.get(seq)
            if st is not None:
                groups.setdefault(id(st.source), []).append(st)
        prepared = []
        for group in groups.values():
            src = group[0].source
            before = getattr(src, "rereads", 0)
            try:
                got = src.reread({st.chunk_id for st in group}, {st.topic for st in group})
                why = "its data is no longer where the file's index says"
            except (OSError, ValueError, ImportError) as exc:
                got, why = {}, f"{type(exc).__name__}: {exc}"
            self.reread_totals["source_chunks"] += getattr(src, "rereads", 0) - before
            for st in group:
                chunk = got.get(st.chunk_id)
                item = None if chunk is None else self._prepare(chunk, IngestReport())
                if item is None or not _same_rows(st, item):
                    msg = f"{st.entity}: evicted chunk could not be read again ({why}); its rows are dropped"
                    self.problems.append(msg)
                    self._remove(st, "re-read failed")
                    self.generation += 1  # what queries answer changed
                    continue
                prepared.append((st, item[0], item[-1]))
        if self._enforce_limit(sum(sum(roots.values()) for _, _, roots in prepared)):
            self.generation += 1  # chunks that cannot be read back were dropped to make room
        out: dict[int, Chunk] = {}
        for st, chunk, roots in prepared:
            self._unevict(st)
            st.chunk, st.roots, st.nbytes = chunk, roots, sum(roots.values())
            self._chunks[st.seq] = st
            self._entities.setdefault(st.entity, set()).add(st.seq)
            self._ledger.add(roots)
            self._tick += 1
            heapq.heappush(self._drop_heap, (self._tick, st.min_row[0], st.min_row[1], st.seq))
            self.reread_totals["chunks"] += 1
            self.reread_totals["bytes"] += st.nbytes
            out[st.seq] = chunk
        if self._enforce_limit():  # only when the chunks read back do not fit together
            self.generation += 1
        return out

    # ================================================================ queries

    def _hit(self, entity: str, comp: str, hi: int, lo: int, time, seq: int, row: int) -> Optional[Hit]:
        st = self._chunks.get(seq)
        if st is None:
            return None
        return Hit(entity, comp, (hi << 64) | lo, time, st.chunk, row)

    def latest_at(
        self,
        entity: str,
        components: Union[str, Sequence[str]],
        timeline: Optional[str],
        t: Optional[int],
    ) -> dict[str, Hit]:
        """Latest-at (contract §5): {component: Hit} for each component that resolves.

        timeline None: static values only. t None: the latest row on the timeline.
        Components that do not resolve are absent from the result.
        """
        entity = normalize_entity_path(entity)
        if isinstance(components, str):
            components = (components,)
        out: dict[str, Hit] = {}
        with self._lock:
            pending = list(components)
            while pending:
                waiting: dict[str, tuple] = {}  # component -> its row, in an evicted chunk
                for comp in pending:
                    s = self._static.get((entity, comp))
                    if s is not None:
                        h = self._hit(entity, comp, s[0], s[1], None, s[2], s[3])
                        if h is not None:
                            out[comp] = h
                            continue
                    if timeline is None:
                        continue
                    idx = self._index.get((entity, timeline, comp))
                    if idx is None:
                        continue
                    found = idx.latest_at(t)
                    if found is None:
                        continue
                    time, hi, lo, seq, row = found
                    h = self._hit(entity, comp, hi, lo, time, seq, row)
                    if h is not None:
                        out[comp] = h
                    elif seq in self._evicted:
                        waiting[comp] = found
                if not waiting:
                    break
                back = self._restore({found[3] for found in waiting.values()})
                pending = []
                for comp, (time, hi, lo, seq, row) in waiting.items():
                    chunk = back.get(seq)
                    if chunk is None:
                        pending.append(comp)  # dropped for good: ask the index again (it shrank)
                    else:
                        out[comp] = Hit(entity, comp, (hi << 64) | lo, time, chunk, row)
        return out

    def range(
        self,
        entity: str,
        component: str,
        timeline: str,
        t0: int,
        t1: int,
    ) -> RangeResult:
        """Every row of `component` with t0 <= time <= t1, in (time, row id) order.

        A static value shadows all temporal rows: the result is then that value alone.
        Evicted chunks in the range are read back (the result holds them even when they
        do not all fit under the memory limit together).
        """
        entity = normalize_entity_path(entity)
        with self._lock:
            s = self._static.get((entity, component))
            if s is not None:
                h = self._hit(entity, component, s[0], s[1], None, s[2], s[3])
                if h is not None:
                    return RangeResult(
                        entity,
                        component,
                        np.empty(0, np.int64),
                        np.array([[s[0], s[1]]], dtype=np.uint64),
                        static=h,
                    )
            idx = self._index.get((entity, timeline, component))
            if idx is None:
                return RangeResult(entity, component, np.empty(0, np.int64), np.empty((0, 2), np.uint64))
            while True:
                t, hi, lo, seq, rows = idx.range(int(t0), int(t1))
                # one dict lookup per distinct chunk, not per row
                uniq, inv = np.unique(seq, return_inverse=True)
                have = {s: self._chunks[s].chunk for s in uniq.tolist() if s in self._chunks}
                if len(have) < len(uniq):
                    have.update(self._restore([s for s in uniq.tolist() if s not in have]))
                if len(have) == len(uniq):
                    break  # else some could not be read again: they left the index, ask again
            chunk_of = [have[s] for s in uniq.tolist()]
            chunks = [chunk_of[i] for i in inv.tolist()]
        return RangeResult(
            entity,
            component,
            t,
            np.stack([hi, lo], axis=1) if t.shape[0] else np.empty((0, 2), np.uint64),
            None,
            chunks,
            rows,
        )

    def index_times(self, entity: str, timeline: str, component: str) -> np.ndarray:
        """Sorted time points (with repeats) of `component`'s temporal rows on `timeline`."""
        entity = normalize_entity_path(entity)
        with self._lock:
            idx = self._index.get((entity, timeline, component))
            return idx.times() if idx is not None else np.empty(0, np.int64)

    def has_static(self, entity: str, component: str) -> bool:
        with self._lock:
            return (normalize_entity_path(entity), component) in self._static

    # ================================================================ overview

    def entities(self, under: Optional[str] = None, with_component: Optional[str] = None) -> list[str]:
        """Entity paths held, sorted; `under` restricts to a subtree (the path included),
        `with_component` to entities that hold that component (static or temporal)."""
        root = normalize_entity_path(under) if under is not None else "/"
        with self._lock:
            if self._entities_cache_gen != self.generation:
                self._entities_cache.clear()
                self._entities_cache_gen = self.generation
            key = (root, with_component)
            hit = self._entities_cache.get(key)
            if hit is not None:
                return list(hit)
            ents = [e for e in self._entities.keys() | self._evicted_entities.keys() if _is_under(e, root)]
            if with_component is not None:
                have = {e for (e, c) in self._static if c == with_component}
                have |= {e for (e, _, c), idx in self._index.items() if c == with_component}
                ents = [e for e in ents if e in have]
            ents.sort()
            if len(self._entities_cache) > 64:
                self._entities_cache.clear()
            self._entities_cache[key] = tuple(ents)
        return ents

    def entity_paths(self) -> list[str]:
        """Every entity path held, sorted."""
        return self.entities()

    def entity_tree(self) -> dict:
        """Nested dict of path parts: ``{"world": {"cam": {}}}``, every held path a leaf or node."""
        tree: dict = {}
        for e in self.entities():
            node = tree
            for part in e.strip("/").split("/"):
                if part:
                    node = node.setdefault(part, {})
        return tree

    def _summary_add(self, tl: str, st: _Stored) -> None:
        lo_t, hi_t = st.time_ranges[tl]
        self._tl_rows[tl] += st.rows
        self._tl_chunks[tl] += 1
        heapq.heappush(self._tl_lo.setdefault(tl, []), (lo_t, st.seq))
        heapq.heappush(self._tl_hi.setdefault(tl, []), (-hi_t, st.seq))

    def _summary_remove(self, tl: str, st: _Stored) -> None:
        """A chunk left for good (dropped, not evicted: evicted data still counts)."""
        self._tl_rows[tl] -= st.rows
        self._tl_chunks[tl] -= 1
        if self._tl_chunks[tl] <= 0:
            for d in (self._tl_rows, self._tl_chunks, self._tl_lo, self._tl_hi):
                d.pop(tl, None)
            return
        for heap in (self._tl_lo[tl], self._tl_hi[tl]):
            if len(heap) > 2 * self._tl_chunks[tl] + 64:  # mostly dropped chunks: sweep
                heap[:] = [e for e in heap if self._known(e[1])]
                heapq.heapify(heap)

    def _known(self, seq: int) -> bool:
        return seq in self._chunks or seq in self._evicted

    def _extreme(self, heap: list) -> int:
        while not self._known(heap[0][1]):
            heapq.heappop(heap)
        return heap[0][0]

    def timelines(self) -> dict[str, TimelineInfo]:
        """Timeline name -> kind, time range and rows over the temporal data held
        (evicted chunks included: their rows come back when asked for)."""
        with self._lock:
            return {
                tl: TimelineInfo(tl, self._timeline_kinds.get(tl, "sequence"), self._extreme(self._tl_lo[tl]),
                                 -self._extreme(self._tl_hi[tl]), rows)
                for tl, rows in sorted(self._tl_rows.items())
            }

    def entity_info(self) -> list[EntityInfo]:
        """Rows, static rows, bytes and components held, per entity (sorted by path)."""
        with self._lock:
            out = []
            for e in sorted(self._entities):
                rows = srows = nbytes = 0
                comps: set = set()
                for seq in self._entities[e]:
                    st = self._chunks[seq]
                    rows += st.rows
                    nbytes += st.nbytes
                    if st.is_static:
                        srows += st.rows
                    comps.update(st.components)
                out.append(EntityInfo(e, rows, srows, nbytes, tuple(sorted(comps))))
            return out

    @property
    def num_chunks(self) -> int:
        return len(self._chunks)

    @property
    def num_rows(self) -> int:
        with self._lock:
            return sum(st.rows for st in self._chunks.values())

    def skipped_components(self) -> dict[tuple[str, str], int]:
        """(entity, component) -> rows skipped because the store does not keep it."""
        with self._lock:
            return dict(self._skipped)

    def index_nbytes(self) -> int:
        """Bytes held by the query indices (not counted against the memory limit)."""
        with self._lock:
            return sum(idx.nbytes() for idx in self._index.values())

    # ================================================================ ingest: sources
    # The .rrd framing, decompression and Arrow decoding live in engine/rrd/decode.py; the
    # store feeds it (store_source.ChunkSource) and keeps the problems it reports.

    def _ingest_source_part(self, chunks, problems, notes, report: IngestReport, src=None,
                            reread: bool = False) -> None:
        if src is not None:
            with self._lock:
                for info in src.store_infos:
                    if info not in self.store_infos:
                        self.store_infos.append(info)
        part = self.add_chunks(chunks, reread_from=src if reread else None)
        part.problems += problems
        part.notes += notes
        with self._lock:
            self.problems += problems
            self.notes += notes
        report.merge(part)

    @staticmethod
    def _warn(source: str, report: IngestReport) -> None:
        if report.problems:
            first = report.problems[0]
            more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
            warnings.warn(StoreWarning(f"{source}: read in part: {first}{more}"), stacklevel=user_stacklevel())

    def ingest_file(self, path, read_size: int = 0, topics: Optional[Iterable[str]] = None) -> IngestReport:
        """Read a .rrd file in groups of whole messages: every complete message is kept;
        problems warn. A bag (MCAP, .db3) gives its image messages; `topics` (bags
        only): just these topics' (None: every topic).

        The memory limit applies while reading, so a file larger than the limit loads
        its newest data. Only an unreadable file raises (OSError).
        """

        if is_bag(path):  # a ROS 2 bag (MCAP or .db3) / Foxglove recording: its images (engine/mcap)
            return self._ingest_mcap(path, topics)
        f, size = open_file(path)
        src = ChunkSource.for_file(f.fileno(), size)
        report = IngestReport()
        buf = ReadBuffer()
        with f:
            fd = f.fileno()
            for start, end in message_groups(fd, size, read_size or READ_BLOCK):
                view = buf.read(fd, start, end)
                if not len(view):
                    break  # the file shrank under us: what was read is kept
                chunks, problems, notes = src.feed(view)
                del view
                buf.release_if_referenced(chunks)
                self._ingest_source_part(chunks, problems, notes, report, src)
        self._ingest_source_part([], src.finish(), [], report)
        self._warn(str(path), report)
        return report

    def _ingest_mcap(self, path, topics: Optional[Iterable[str]] = None) -> IngestReport:
        """An MCAP file's (or rosbag2 .db3's) image messages, chunk by chunk (the memory limit applies)."""
        src = McapSource(path, topics=topics, memory_limit=self.memory_limit)
        report = IngestReport()
        for chunks in src.batches():
            # read through the file's chunk index: the memory limit evicts (reads back on demand)
            self._ingest_source_part(chunks, [], [], report, src, reread=src.can_reread)
        self._ingest_source_part([], src.problems, src.notes, report)
        self._warn(str(path), report)
        return report

    def ingest_bytes(self, data, source: str = "bytes") -> IngestReport:
        """Read a complete .rrd byte string (a file's content, a memory recording)."""

        view = memoryview(data).cast("B")
        src = ChunkSource.for_bytes(view)
        report = IngestReport()
        self._ingest_source_part(*src.feed(view), report, src)
        self._ingest_source_part([], src.finish(), [], report)
        self._warn(source, report)
        return report

    def ingest_recording(self, recording) -> IngestReport:
        """Read a memory recording: any object with ``rrd_bytes() -> bytes``."""
        getter = getattr(recording, "rrd_bytes", None)
        if getter is None:
            raise TypeError(
                f"ingest_recording: expected an object with rrd_bytes() -> bytes "
                f"(a memory recording), got {type(recording).__name__}"
            )
        return self.ingest_bytes(getter(), source=type(recording).__name__)

    def feed(self, data) -> IngestReport:
        """Incremental ingest for a byte stream (e.g. a socket): pass bytes as they come.

        A message split across calls is completed by later calls; call `close_stream`
        at the end of the stream to learn about a truncated tail. Problems are in the
        report (no warning per call: a live stream reports, it does not nag).
        """

        with self._lock:
            if self._stream_decoder is None:
                self._stream_decoder = ChunkSource()
            src = self._stream_decoder
        report = IngestReport()
        self._ingest_source_part(*src.feed(data), report, src)
        return report

    def close_stream(self) -> IngestReport:
        """End of the byte stream: reports (and warns about) an incomplete last message."""
        with self._lock:
            src, self._stream_decoder = self._stream_decoder, None
        report = IngestReport()
        if src is None:
            return report
        self._ingest_source_part([], src.finish(), [], report)
        self._warn("stream", report)
        return report

    def ingest_stream(self, stream, read_size: int = 1 << 20) -> IngestReport:
        """Read a binary file object or socket to its end (``read(n)`` or ``recv(n)``)."""
        reader = getattr(stream, "read", None) or getattr(stream, "recv", None)
        if reader is None:
            raise TypeError(
                f"ingest_stream: expected a file-like object (read) or a socket (recv), "
                f"got {type(stream).__name__}"
            )
        report = IngestReport()
        while True:
            data = reader(read_size)
            if not data:
                break
            report.merge(self.feed(data))
        report.merge(self.close_stream())
        return report


def open_store(source, memory_limit=DEFAULT_MEMORY_LIMIT, keep_components=IMAGE_COMPONENTS) -> ChunkStore:
    """A store filled from a path, bytes, a memory recording or a readable stream."""
    store = ChunkStore(memory_limit=memory_limit, keep_components=keep_components)
    if isinstance(source, (bytes, bytearray, memoryview)):
        store.ingest_bytes(bytes(source))
    elif hasattr(source, "rrd_bytes"):
        store.ingest_recording(source)
    elif hasattr(source, "read") or hasattr(source, "recv"):
        store.ingest_stream(source)
    else:
        store.ingest_file(source)
    return store
