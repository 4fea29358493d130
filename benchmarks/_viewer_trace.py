"""`pixelrun view` with stage timestamps, for `benchmarks/viewer.py --trace`.

Run as ``python3 benchmarks/_viewer_trace.py TRACE_FILE view ARGS...``: the viewer runs
unchanged, with its stages wrapped to append ``stage t_start t_end`` lines (CLOCK_MONOTONIC,
shared with the producer) to TRACE_FILE. `breakdown` turns a trace and the producer's log
times into where each frame's log -> pixel time went. Benchmark instrumentation only: the
wrappers are a clock read and a line write per stage.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

# (name, meaning) in the order a frame passes them
STAGES = [
    ("transport", "rr.log -> the message whole in the viewer's gRPC call (SDK, socket, relay, grpcio)"),
    ("decode+ingest", "-> its chunks in the store (rrd decode, store insert)"),
    ("wait for draw", "-> the window thread starts the frame that shows it"),
    ("scene", "frame: scene query and readout (_update_scene, _update_readout)"),
    ("composite", "frame: decode + composite of the changed views, recorded (_update_cache)"),
    ("record", "frame: cache -> surface, imgui panels, probe copy recorded (_record_frame)"),
    ("submit+probe", "frame: queue.submit, then the probe pixel read back (GPU work done)"),
]


def install(trace_path: str) -> None:
    out = open(trace_path, "w", buffering=1)
    profiles = _profiles(trace_path) if os.environ.get("PIXELRUN_TRACE_PROFILE") else None

    def mark(tag: str, t0: float, t1: float) -> None:
        out.write(f"{tag} {t0:.6f} {t1:.6f}\n")

    from pixelrun.engine.grpc import wire
    from pixelrun.engine.viewer import data as vd
    from pixelrun.engine.viewer import server as vs
    from pixelrun.engine.viewer import window as vw

    def wrap(cls, name: str, tag: str, profile: str = "") -> None:
        orig = getattr(cls, name)

        def timed(*a, **k):
            prof = profiles.start(profile) if profiles and profile else None
            t0 = time.monotonic()
            try:
                return orig(*a, **k)
            finally:
                mark(tag, t0, time.monotonic())
                if prof is not None:
                    profiles.stop(profile, prof)

        setattr(cls, name, timed)

    wrap(vd.ViewerData, "ingest", "ingest", "ingest")
    wrap(vs.ViewerServer, "_decode", "decode", "ingest")
    for name in ("_update_scene", "_update_readout", "_update_cache", "_record_frame"):
        wrap(vw.Viewer, name, name.strip("_"))
    wrap(vw.Viewer, "_draw_frame", "draw_frame", "draw")
    frame_from_request = wire.frame_from_request

    def request(data):
        t = time.monotonic()
        mark("request", t, t)
        return frame_from_request(data)

    vs.wire.frame_from_request = request


class _profiles:
    """cProfile of the window thread's frames ("draw") and of the gRPC threads' decode and
    ingest ("ingest"), written as text next to the trace every 50 calls (the viewer is
    ended by a signal, so there is no exit hook to rely on)."""

    def __init__(self, trace_path: str) -> None:
        import cProfile

        self.base = trace_path
        self.prof = {"draw": cProfile.Profile(), "ingest": cProfile.Profile()}
        self.calls = {"draw": 0, "ingest": 0}
        self.active = threading.local()

    def start(self, name: str):
        if getattr(self.active, "on", False):  # nested (decode inside ingest's thread): one level
            return None
        self.active.on = True
        p = self.prof[name]
        try:
            p.enable()
        except ValueError:  # another thread's profiler is active (cProfile: one per thread)
            self.active.on = False
            return None
        return p

    def stop(self, name: str, p) -> None:
        import io
        import pstats

        p.disable()
        self.active.on = False
        self.calls[name] += 1
        if self.calls[name] % 50 == 0:
            s = io.StringIO()
            st = pstats.Stats(p, stream=s).sort_stats("tottime")
            st.print_stats(20)
            st.sort_stats("cumulative").print_stats("pixelrun|engine|kernels|imgui", 30)  # where the frame's time goes
            st.print_callers("proxy_func")  # which wgpu calls the native time is spent in
            Path(f"{self.base}.{name}.prof.txt").write_text(f"{self.calls[name]} calls\n" + s.getvalue())


def _first_at_or_after(ts: np.ndarray, t: float) -> float:
    i = np.searchsorted(ts, t)
    return float(ts[i]) if i < len(ts) else float("nan")


def breakdown(trace_path: Path, log_times: list[float], probe_hits: list[float]) -> dict[str, list[float]]:
    """Per frame: seconds spent in each of `STAGES` (NaN where a frame was not traced
    whole). probe_hits[i] is when frame i's pixel was first read back (NaN if never)."""
    rows: dict[str, list[tuple[float, float]]] = {}
    for line in Path(trace_path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            rows.setdefault(parts[0], []).append((float(parts[1]), float(parts[2])))
    arr = {k: np.array(sorted(v)) for k, v in rows.items()}
    empty = np.zeros((0, 2))
    req, ing, draw = (arr.get(k, empty) for k in ("request", "ingest", "draw_frame"))
    out: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    for t_log, t_hit in zip(log_times, probe_hits):
        t_req = _first_at_or_after(req[:, 0], t_log)
        t_ing = _first_at_or_after(ing[:, 1], t_req)
        # the frame that showed it: the last draw that started before the probe hit
        i = np.searchsorted(draw[:, 0], t_hit) - 1 if t_hit == t_hit else -1
        if i < 0 or not (t_ing == t_ing):
            for name, _ in STAGES:
                out[name].append(float("nan"))
            continue
        d0, d1 = draw[i]

        def inside(tag: str, lo: float = d0, hi: float = d1) -> float:
            a = arr.get(tag, empty)
            sel = a[(a[:, 0] >= lo) & (a[:, 1] <= hi)]
            return float(np.sum(sel[:, 1] - sel[:, 0]))

        scene = inside("update_scene") + inside("update_readout")
        comp = inside("update_cache")
        rec = inside("record_frame")
        out["transport"].append(t_req - t_log)
        out["decode+ingest"].append(t_ing - t_req)
        out["wait for draw"].append(d0 - t_ing)
        out["scene"].append(scene)
        out["composite"].append(comp)
        out["record"].append(rec)
        out["submit+probe"].append((t_hit - d0) - scene - comp - rec)
    return out


if __name__ == "__main__":
    install(sys.argv[1])
    from pixelrun.engine.cli.main import main

    sys.argv = ["pixelrun"] + sys.argv[2:]
    sys.exit(main())
