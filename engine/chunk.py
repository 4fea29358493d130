"""The chunk: one entity's rows, as Rerun 0.41 stores them (SPEC 5).

`Chunk` is the in-memory form every part of the engine passes around: the SDK builds
them, the .rrd codec turns them into Arrow record batches and back, the store indexes
them. `to_record_batch` / `from_record_batch` define the Arrow schema, with Rerun's
column names, types and field metadata, so files interoperate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pyarrow as pa

# Component column names (Rerun 0.41 "Archetype:field" descriptors).
IMAGE_ARCHETYPE = "rerun.archetypes.Image"
IMAGE_BUFFER = "Image:buffer"
IMAGE_FORMAT = "Image:format"
IMAGE_OPACITY = "Image:opacity"
IMAGE_DRAW_ORDER = "Image:draw_order"

TIMELINE_KINDS = ("sequence", "duration", "timestamp")


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

    @property
    def num_rows(self) -> int:
        return int(self.row_ids.shape[0])

    @property
    def is_static(self) -> bool:
        return not self.timelines

    def row_id_ints(self) -> list[int]:
        """Row ids as Python ints (for cache keys; not for hot loops)."""
        return [(int(hi) << 64) | int(lo) for hi, lo in self.row_ids]
