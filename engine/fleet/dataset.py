"""Recordings as a Ray Data dataset: `RrdDatasource` (and `McapDatasource`, the same
for bags) and the decode stage.

Imports Ray at the top: engine/fleet/__init__.py imports this module only when a
dataset is asked for, so pixelrun works without Ray installed.

Planning (`RrdDatasource.get_read_tasks`): one read task per group of recordings,
balanced by file size, or, when Ray asks for more tasks than there are recordings, the
largest recordings split into shards (engine/fleet/frames.py's `plan_tasks`). Each task
yields blocks of about 32 MiB of raw buffers. Size estimates come from each recording's
size (an .rrd: the file's; an MCAP bag: its image chunks' uncompressed bytes, from the
chunk index in its summary, `recording_bytes`) times the raw-rows / size ratio measured
on up to two sample recordings (about 1 for raw images; more for JPEG/PNG messages,
whose rows hold the decoded pixels), so Ray sizes its blocks and memory from what the
rows will hold, not from the disk. Decoded RGBA is larger again: 8/3 x for NV12, 4/3 x for RGB.

A shard of an MCAP bag (on message_log_time, the default timeline) is a log-time range
cut at chunk starts from the bag's chunk index (frames.py's `bag_parts`): it reads only
the MCAP chunks whose time range meets its own, and its store holds only its messages.
A shard of an .rrd (or of a bag on another timeline, or one without a summary) parses
the whole file and keeps its slice of the frames.
"""

from __future__ import annotations

import functools
import warnings
from typing import Optional, Sequence

import ray
from ray.data import Dataset, Datasource, ReadTask
from ray.data.block import BlockMetadata

from pixelrun.engine.fleet.frames import (
    RAW_SCHEMA,
    Decoder,
    FleetWarning,
    RecordingReadError,
    decode_batch,
    iter_raw_tables,
    plan_tasks,
    recording_bytes,
    recording_frames,
)

__all__ = ["RrdDatasource", "McapDatasource", "read_dataset", "decode_stage", "DEFAULT_BATCH_SIZE"]

# Frames per decode batch: enough to fill one CUDA launch with 1080p frames (~8 MiB of
# RGBA each) while a batch stays near Ray's block size.
DEFAULT_BATCH_SIZE = 16
SAMPLE_FILES = 2
SAMPLE_MAX_BYTES = 256 << 20  # larger recordings are not opened on the driver to estimate


class RrdDatasource(Datasource):
    """Raw image rows of .rrd recordings (engine/fleet/frames.py's RAW_SCHEMA): one row
    per logged image, read by tasks Ray schedules across the cluster."""

    def __init__(self, paths: Sequence[str], *, entities: Optional[Sequence[str]] = None,
                 topics: Optional[Sequence[str]] = None, timeline: Optional[str] = None,
                 on_error: str = "raise") -> None:
        super().__init__()
        self._paths = list(paths)
        self._topics = None if topics is None else list(topics)
        self._sizes = [recording_bytes(p, self._topics) for p in self._paths]
        self._entities = None if entities is None else list(entities)
        self._timeline = timeline
        self._on_error = on_error
        self._ratio: Optional[float] = None

    def get_name(self) -> str:
        return "Rrd"

    def _bytes_ratio(self) -> float:
        """Raw row bytes per file byte, measured on a few of the recordings (1.0 when
        none can be opened here: an .rrd holds its buffers, usually uncompressed)."""
        if self._ratio is None:
            step = max(1, len(self._paths) // SAMPLE_FILES)
            sample = [i for i in range(0, len(self._paths), step)
                      if self._sizes[i] <= SAMPLE_MAX_BYTES][:SAMPLE_FILES]
            held = disk = 0
            for i in sample:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", FleetWarning)
                        held += sum(f.layer.buffer.nbytes for f in recording_frames(
                            self._paths[i], entities=self._entities, topics=self._topics,
                            timeline=self._timeline))
                    disk += self._sizes[i]
                except RecordingReadError:
                    continue  # the read task reports it
            self._ratio = held / disk if disk else 1.0
        return self._ratio

    def estimate_inmemory_data_size(self) -> Optional[int]:
        return int(sum(self._sizes) * self._bytes_ratio())

    def get_read_tasks(self, parallelism: int, per_task_row_limit: Optional[int] = None,
                       data_context=None) -> list[ReadTask]:
        ratio = self._bytes_ratio()
        size_of = dict(zip(self._paths, self._sizes))
        tasks = []
        for items in plan_tasks(self._paths, self._sizes, parallelism):
            est = sum(size_of[p] / n for p, _, n in items) * ratio
            meta = BlockMetadata(num_rows=None, size_bytes=int(est), input_files=[p for p, _, _ in items],
                                 exec_stats=None)
            read = functools.partial(iter_raw_tables, items, entities=self._entities, topics=self._topics,
                                     timeline=self._timeline, on_error=self._on_error)
            tasks.append(ReadTask(read, meta, schema=RAW_SCHEMA, per_task_row_limit=per_task_row_limit))
        return tasks


class McapDatasource(RrdDatasource):
    """Image messages of MCAP files and rosbag2 databases, as `RrdDatasource` reads
    recordings (entity = topic; `topics` picks topics by exact name)."""

    def get_name(self) -> str:
        return "Mcap"


def _cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0)) if ray.is_initialized() else 0.0


def decode_stage(ds: Dataset, *, backend: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE) -> Dataset:
    """`ds` (raw rows) with a decode stage: on GPU workers with CuPy (one actor per GPU,
    a batch of frames per launch) when backend is "cupy", or "auto" and the cluster has
    GPUs; else `decode_batch` tasks on CPU workers with `backend`."""
    gpus = _cluster_gpus()
    if backend == "cupy" and gpus < 1:
        raise ValueError("backend 'cupy' decodes on GPU workers, and this Ray cluster has no GPU "
                         "(ray.cluster_resources() lists none); use 'auto', 'wgpu' or 'numpy'")
    if backend in ("auto", "cupy") and gpus >= 1:
        return ds.map_batches(Decoder, fn_constructor_kwargs={"backend": "cupy"}, batch_format="numpy",
                              batch_size=batch_size, num_gpus=1, concurrency=(1, int(gpus)))
    return ds.map_batches(decode_batch, fn_kwargs={"backend": backend}, batch_format="numpy",
                          batch_size=batch_size)


def read_dataset(paths: Sequence[str], *, entities=None, topics=None, timeline=None, decode=True, backend="auto",
                 on_error="raise", batch_size=DEFAULT_BATCH_SIZE, override_num_blocks=None,
                 bags: bool = False) -> Dataset:
    """engine/fleet/__init__.py's `read_rrd` (`read_mcap` with bags=True) once its arguments are checked."""
    source = (McapDatasource if bags else RrdDatasource)(paths, entities=entities, topics=topics, timeline=timeline,
                                                         on_error=on_error)
    ds = ray.data.read_datasource(source, override_num_blocks=override_num_blocks)
    return decode_stage(ds, backend=backend, batch_size=batch_size) if decode else ds
