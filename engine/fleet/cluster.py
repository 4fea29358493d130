"""Rendering many recordings on Ray: what ``pixelrun render A.rrd B.rrd --all-times -o DIR
--ray [ADDRESS]`` runs (engine/cli/render.py writes the files and prints the progress).

Each recording (or, when there are fewer recordings than workers, each shard of its
time points) is one streaming Ray task running engine/fleet/work.py's `render_events`;
`run_fleet` merges their events as they come, so the driver shows progress across the
fleet and writes each frame as soon as it is rendered. A recording whose task fails
(an error, a worker that died, no progress for `stall_s`) is one "failed" event naming
it; the other tasks go on. Tasks are not retried: a re-run would repeat frames.

Imports Ray at the top; engine/cli/render.py imports this module only for --ray.
"""

from __future__ import annotations

import time
from typing import Iterator, Optional, Sequence

import ray

from pixelrun.engine.fleet.work import render_events

__all__ = ["connect", "run_fleet", "STALL_S", "MAX_SHARDS"]

STALL_S = 600.0  # a task that sends nothing for this long is cancelled and named
POLL_S = 0.5  # how often the driver looks for events (and checks for stalls)
MAX_SHARDS = 16


@ray.remote(num_returns="streaming", max_retries=0)
def _render_task(path: str, kwargs: dict):
    yield from render_events(path, **kwargs)


def connect(address: Optional[str], workers: Optional[int]) -> bool:
    """Join Ray: the running one in this process, a new local one (address None or
    "local"; `workers` CPUs), or a cluster ("auto", "ray://host:10001", "host:6379").
    True when this call started Ray here (the caller shuts it down). RuntimeError
    naming the address when it cannot be reached."""
    if ray.is_initialized():
        return False
    try:
        if address in (None, "local"):
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        else:
            ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a local Ray" if address in (None, "local") else f"the Ray cluster at {address}"
        raise RuntimeError(f"cannot start or reach {where}: {' '.join(str(exc).split())}") from None
    return True


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:600]


def run_fleet(
    paths: Sequence[str],
    task_kwargs: dict,
    *,
    address: Optional[str] = None,
    workers: Optional[int] = None,
    split: bool = True,
    num_gpus: float = 0.0,
    stall_s: float = STALL_S,
) -> Iterator[tuple[str, str, object]]:
    """(path, event, payload) for every event of every recording's tasks (work.py's
    events, plus ("failed", why) for a task that failed), as they arrive.

    workers: for a local Ray, the CPUs it starts with; on any Ray, the most tasks in
    flight (default: as many as Ray schedules). split: when there are fewer recordings
    than workers, split each recording's time points over several tasks (PNGs only:
    a video is encoded in order by one task).
    """
    started = connect(address, workers)
    try:
        slots = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        shards = max(1, min(MAX_SHARDS, slots // max(1, len(paths)))) if split else 1
        todo = [(p, s) for p in paths for s in range(shards)]
        running: dict = {}  # generator -> path
        last = time.monotonic()
        while todo or running:
            while todo and len(running) < (workers or len(todo) + len(running)):
                path, s = todo.pop(0)
                gen = _render_task.options(num_gpus=num_gpus).remote(path, dict(task_kwargs, shard=s, shards=shards))
                running[gen] = path
            ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            if not ready:
                if time.monotonic() - last > stall_s:
                    for gen, path in running.items():
                        ray.cancel(gen, force=True)
                        yield path, "failed", f"no progress for {stall_s:.0f} s; cancelled"
                    running.clear()
                    last = time.monotonic()
                continue
            last = time.monotonic()
            for gen in ready:
                path = running[gen]
                try:
                    kind, payload = ray.get(next(gen), timeout=stall_s)
                except StopIteration:
                    del running[gen]
                    continue
                except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError) as exc:
                    del running[gen]
                    yield path, "failed", _one_line(exc)
                    continue
                yield path, kind, payload
    finally:
        if started:
            ray.shutdown()
