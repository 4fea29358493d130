"""pixelrun.engine.fleet: many recordings at once, on Ray (``pip install 'pixelrun[ray]'``).

    from pixelrun.engine.fleet import read_rrd
    ds = read_rrd(["a.rrd", "b.rrd", "fleet/"])          # a ray.data.Dataset, one row per logged image
    for row in ds.iter_rows(): row["rgba"]                # (H, W, 4) uint8

    raw = read_rrd(paths, decode=False)                   # raw buffers + format fields
    ds = decode(raw, backend="auto")                      # the decode as its own map_batches stage
    bags = read_mcap(["run1.mcap", "bags/"], topics=["/cam/left"])   # ROS 2 / Foxglove bags, the same rows

`pixelrun render A.rrd B.mcap --all-times -o DIR --ray` renders every recording through
Ray (engine/fleet/cluster.py). Ray is imported only when one of these runs; the rest of
pixelrun never needs it. engine/fleet/frames.py holds what does not need Ray (which
frames a recording has, the raw rows, `decode_batch`).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from typing import Iterable, Optional, Sequence, Union

from pixelrun.engine import api as R
from pixelrun.engine.fleet.frames import (
    BAG_SUFFIXES,
    DECODED_COLUMNS,
    RAW_COLUMNS,
    RRD_SUFFIXES,
    Decoder,
    FleetWarning,
    RecordingReadError,
    check_recordings,
    decode_batch,
    expand_paths,
)
from pixelrun.engine.mcap.messages import missing_extra

__all__ = [
    "read_rrd", "read_mcap", "decode", "decode_batch", "Decoder", "FleetWarning", "RecordingReadError",
    "RAW_COLUMNS", "DECODED_COLUMNS",
]

ON_ERROR = ("raise", "skip")


def _dataset():
    """engine/fleet/dataset.py, or ImportError saying how to install Ray."""
    try:
        import pixelrun.engine.fleet.dataset as dataset  # noqa: PLC0415 - optional dependency (imports ray)
    except ImportError as exc:
        raise ImportError(f"pixelrun.data needs Ray Data ({exc}): pip install 'pixelrun[ray]'") from exc
    return dataset


def read_rrd(
    paths: Union[str, "os.PathLike[str]", Iterable[Union[str, "os.PathLike[str]"]]],
    *,
    entities: Optional[Sequence[str]] = None,
    timeline: Optional[str] = None,
    decode: bool = True,
    backend: str = "auto",
    on_error: str = "raise",
    batch_size: Optional[int] = None,
    override_num_blocks: Optional[int] = None,
):
    """.rrd recordings as a ``ray.data.Dataset``, one row per logged image.

    paths: a file, a folder (its .rrd files), or a list of them. entities: only these
    entity subtrees (None: every image entity); a recording without them gives no rows.
    timeline: the timeline whose time points make the rows (None: each recording's
    default, as `pixelrun.engine.render` picks it); a recording without it gives no rows,
    with a FleetWarning naming it.

    Columns: path, entity, timeline, time (null for a static image), width, height and,
    with decode=True, ``rgba``: the (H, W, 4) uint8 pixels that
    ``pixelrun.engine.render(path, entity=entity, timeline=timeline, time=time,
    backend=...)`` gives for that entity alone. With decode=False the rows hold the raw
    ``buffer`` and its format fields instead (RAW_COLUMNS), for a separate
    ``decode(ds)`` / ``ds.map_batches(decode_batch, batch_format="numpy")`` stage.

    Decoding is a Ray Data stage: CuPy on GPU workers, a batch of same-format frames per
    kernel launch, when backend is "cupy", or "auto" and the cluster has GPUs; else CPU
    workers with `backend` ("auto": wgpu where an adapter exists, else numpy).

    A recording that cannot be read (missing, not an .rrd): on_error="raise" (default)
    raises RecordingReadError naming each such path, here for what the first bytes show
    and from the dataset's execution for the rest; "skip" leaves it out with a
    FleetWarning naming it (on the driver here; in the worker's log, which Ray forwards
    to the driver, for the rest). A damaged recording gives the frames that are intact,
    each problem a FleetWarning naming the recording. Uses the running Ray
    (``ray.init(...)``), or starts a local one.
    """
    return _read(paths, bags=False, entities=entities, topics=None, timeline=timeline, decode=decode,
                 backend=backend, on_error=on_error, batch_size=batch_size, override_num_blocks=override_num_blocks)


def read_mcap(
    paths: Union[str, "os.PathLike[str]", Iterable[Union[str, "os.PathLike[str]"]]],
    *,
    topics: Optional[Sequence[str]] = None,
    timeline: Optional[str] = None,
    decode: bool = True,
    backend: str = "auto",
    on_error: str = "raise",
    batch_size: Optional[int] = None,
    override_num_blocks: Optional[int] = None,
):
    """MCAP files (ROS 2 bags, Foxglove recordings) and rosbag2 .db3 databases as a
    ``ray.data.Dataset``, one row per image message: `read_rrd`'s rows and columns.

    paths: a file, a folder (its .mcap and .db3 files), or a list of them. ``entity`` is
    the topic (as ``pixelrun.engine.render`` of the bag names it); topics: only these
    topics, by exact name (None: every image topic), and only they are decoded and held
    in a read task's memory. timeline: ``message_log_time`` (the default: the first by
    name), ``message_publish_time``, or the message's own stamp, ``ros2_timestamp``
    (ROS 2 ``header.stamp``) or ``timestamp`` (Foxglove); a bag without it gives no rows,
    with a FleetWarning naming it. Raw, depth (16UC1 / 32FC1) and compressed (JPEG,
    PNG) images are rows; with decode=False a compressed image's row holds the pixels
    its read task decoded from the file (the scene decodes them; RAW_COLUMNS).

    Read tasks: one per group of bags, balanced by the image bytes their chunk indexes
    list; when Ray asks for more tasks than there are bags, a big bag (on
    message_log_time) is split by log time at its MCAP chunks, each task reading only
    its chunks (engine/fleet/frames.py's `bag_parts`).

    Messages that cannot be shown (a damaged chunk, an encoding pixelrun does not
    draw) are FleetWarnings naming the bag, topic and log time, and the rest are read;
    a path that is no bag at all: `on_error` as for `read_rrd`. ImportError naming the
    extra when the MCAP readers (``pixelrun[mcap]``) are missing.
    """
    return _read(paths, bags=True, entities=None, topics=topics, timeline=timeline, decode=decode,
                 backend=backend, on_error=on_error, batch_size=batch_size, override_num_blocks=override_num_blocks)


def _read(paths, *, bags: bool, entities, topics, timeline, decode, backend, on_error, batch_size,
          override_num_blocks):
    """read_rrd / read_mcap: the arguments checked, the paths sorted out, the dataset made."""
    dataset = _dataset()
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    if backend not in R.BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(R.BACKENDS)}")
    if isinstance(topics, str):
        raise ValueError(f"topics is a list of topic names, got the string {topics!r} (write [{topics!r}])")
    if bags and importlib.util.find_spec("mcap") is None:  # say so here, not from every read task
        raise ImportError(missing_extra(ImportError(name="mcap")))
    files, bad = check_recordings(expand_paths(paths, BAG_SUFFIXES if bags else RRD_SUFFIXES), bags_only=bags)
    if bad and on_error == "raise":
        raise RecordingReadError(f"{len(bad)} recording(s) cannot be read: " + "; ".join(bad))
    for why in bad:
        warnings.warn(f"left out of the dataset: {why}", FleetWarning, stacklevel=3)
    if not files:
        raise RecordingReadError(f"no recording to read (given: {paths!r})")
    return dataset.read_dataset(files, entities=entities, topics=topics, timeline=timeline, decode=decode,
                                backend=backend, on_error=on_error,
                                batch_size=batch_size or dataset.DEFAULT_BATCH_SIZE,
                                override_num_blocks=override_num_blocks, bags=bags)


def decode(ds, *, backend: str = "auto", batch_size: Optional[int] = None):
    """A dataset of raw rows (``read_rrd(..., decode=False)``) with the decode stage
    added: the rows of ``read_rrd(..., decode=True)``. Where the stage runs: see `read_rrd`."""
    dataset = _dataset()
    return dataset.decode_stage(ds, backend=backend, batch_size=batch_size or dataset.DEFAULT_BATCH_SIZE)
