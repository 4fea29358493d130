"""Recordings as a Ray Data dataset: `RrdDatasource` and the decode stage.

Imports Ray at the top: engine/fleet/__init__.py imports this module only when a
dataset is asked for, so pixelrun works without Ray installed.

Planning (`RrdDatasource.get_read_tasks`): one read task per group of recordings,
balanced by file size, or, when Ray asks for more tasks than there are recordings, the
largest recordings split into shards (engine/fleet/frames.py's `plan_tasks`). Each task
yields blocks of about 32 MiB of raw buffers. Size estimates come from the files' sizes
times the in-memory / on-disk ratio measured on up to two sample recordings (the raw
rows are about the file's size; decoded RGBA is larger: 8/3 x for NV12, 4/3 x for RGB),
so Ray sizes its blocks and memory from what the rows will hold, not from the disk.
"""

from __future__ import annotations

import functools
import os
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
    recording_frames,
)

__all__ = ["RrdDatasource", "read_dataset", "decode_stage", "DEFAULT_BATCH_SIZE"]

# Frames per decode batch: enough to fill one CUDA launch with 1080p frames (~8 MiB of
# RGBA each) while a batch stays near Ray's block size.
DEFAULT_BATCH_SIZE = 16
SAMPLE_FILES = 2
SAMPLE_MAX_BYTES = 256 << 20  # larger recordings are not opened on the driver to estimate


class RrdDatasource(Datasource):
    """Raw image rows of .rrd recordings (engine/fleet/frames.py's RAW_SCHEMA): one row
    per logged image, read by tasks Ray schedules across the cluster."""

    def __init__(self, paths: Sequence[str], *, entities: Optional[Sequence[str]] = None,
                 timeline: Optional[str] = None, on_error: str = "raise") -> None:
        super().__init__()
        self._paths = list(paths)
        self._sizes = [os.path.getsize(p) for p in self._paths]
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
                            self._paths[i], entities=self._entities, timeline=self._timeline))
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
            read = functools.partial(iter_raw_tables, items, entities=self._entities, timeline=self._timeline,
                                     on_error=self._on_error)
            tasks.append(ReadTask(read, meta, schema=RAW_SCHEMA, per_task_row_limit=per_task_row_limit))
        return tasks


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


def read_dataset(paths: Sequence[str], *, entities=None, timeline=None, decode=True, backend="auto",
                 on_error="raise", batch_size=DEFAULT_BATCH_SIZE, override_num_blocks=None) -> Dataset:
    """engine/fleet/__init__.py's `read_rrd` once its arguments are checked."""
    ds = ray.data.read_datasource(RrdDatasource(paths, entities=entities, timeline=timeline, on_error=on_error),
                                  override_num_blocks=override_num_blocks)
    return decode_stage(ds, backend=backend, batch_size=batch_size) if decode else ds
