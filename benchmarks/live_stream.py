"""Live streaming over gRPC: pixelrun's SDK vs rerun-sdk 0.41 into the same viewers.

Workloads (issue 14): 1080p RGB u8 (random pixels) and 1080p NV12, each unpaced
(as fast as the SDK takes frames) and paced at 30 fps (a camera: the log call's own
latency, not back-pressure).

Senders x receivers, every run a fresh sender process:

- pixelrun -> pixelrun viewer: ``rr.connect_grpc`` into a headless ``pixelrun view``
  (its listener and store ingest in a process of their own, no window: this machine's
  window draws on a software GPU and would measure the rasteriser)
- pixelrun -> rerun:  into ``rerun --serve-grpc`` (Rerun 0.41's own gRPC server)
- rerun -> rerun:     rerun-sdk 0.41 into the same (the peer)
- rerun -> pixelrun viewer
- forked child -> pixelrun viewer (relay): the same pixelrun loop in a child forked
  after ``connect_grpc``; grpcio is not fork-safe, so the child streams through a
  relay process (sdk/fork_relay.py): what that extra hop costs

Columns: frames/s and MB/s over "delivered" (first log call until the SDK's close /
disconnect returned: for pixelrun's gRPC sink that is the server's answer to the
finished stream, so every frame was received), p50/p99 of the log call, and for the
pixelrun viewer the time until its store held every frame ("in store s"). Usage:

    python3 benchmarks/live_stream.py --rerun-python .venv-rerun/bin/python [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench import Timing, bench_args, print_table

WORKLOADS = {
    "rgb1080": dict(w=1920, h=1080, n=150, fmt="rgb"),
    "nv12_1080": dict(w=1920, h=1080, n=150, fmt="nv12"),
    "rgb1080_30fps": dict(w=1920, h=1080, n=90, fmt="rgb", fps=30),
    "nv12_1080_30fps": dict(w=1920, h=1080, n=90, fmt="nv12", fps=30),
}
QUICK_FRAMES = {"rgb1080": 40, "nv12_1080": 40, "rgb1080_30fps": 30, "nv12_1080_30fps": 30}

SENDER = r'''
import json, sys, time
import numpy as np
module, url, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
w, h, n, fmt, fps = spec["w"], spec["h"], spec["n"], spec["fmt"], spec.get("fps")
rng = np.random.default_rng(0)
if fmt == "rgb":
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(4)]
    frame_bytes = w * h * 3
else:
    frame_bytes = w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)
    frames = [rng.integers(0, 256, frame_bytes, dtype=np.uint8).tobytes() for _ in range(4)]
if module.startswith("pixelrun"):
    import pixelrun as rr
else:
    import rerun as rr
rr.init("live_bench", spawn=False)
rr.connect_grpc(url)

def run():
    lat = []
    t0 = time.perf_counter()
    wall0 = time.time()
    for i in range(n):
        if fps:
            time.sleep(max(0.0, t0 + i / fps - time.perf_counter()))
        a = time.perf_counter()
        rr.set_time("frame", sequence=i)
        f = frames[i % 4]
        if fmt == "rgb":
            rr.log("cam", rr.Image(f))
        else:
            rr.log("cam", rr.Image(bytes=f, width=w, height=h, pixel_format=rr.PixelFormat.NV12))
        lat.append(time.perf_counter() - a)
    rec = rr.get_global_data_recording()
    if module.startswith("pixelrun"):
        rec.close(timeout=120)  # returns once the server answered the finished stream (through the relay too)
        dropped = rec.dropped_rows
    else:
        rec.flush()
        rr.disconnect()
        dropped = None
    total = time.perf_counter() - t0
    return dict(total=total, wall0=wall0, frames=n, bytes=n * frame_bytes, lat=lat, dropped=dropped)

if module == "pixelrun-fork":  # the loop runs in a child forked after connect_grpc
    import os
    pid = os.fork()
    if pid == 0:
        print(json.dumps(run()), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
else:
    print(json.dumps(run()))
'''

# A headless pixelrun viewer: the listener and the store ingest `pixelrun view` runs,
# minus the window. Prints, per recording, when its store held `n` image rows.
VIEWER = r'''
import sys, threading, time, json
from pixelrun.engine.store.store import ChunkStore
from pixelrun.engine.viewer.data import ViewerData
from pixelrun.engine.viewer.server import ViewerServer
port = int(sys.argv[1])
lock = threading.Lock()
rows = {}
data = ViewerData(ChunkStore(memory_limit=4 << 30), name="live")
def on_chunks(chunks, peer):
    data.ingest(chunks)
    now = time.time()
    with lock:
        for c in chunks:
            if c.entity_path == "/cam":
                rows[peer] = rows.get(peer, 0) + c.num_rows
                print(json.dumps(dict(peer=peer, rows=rows[peer], t=now)), flush=True)
srv = ViewerServer(on_chunks, port=port).start()
print("ready", flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
srv.stop()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


class PixelrunViewer:
    def __init__(self) -> None:
        self.port = free_port()
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen([sys.executable, "-c", VIEWER, str(self.port)], stdin=subprocess.PIPE,
                                     stdout=self.log, text=True)
        wait_port(self.port)

    def last_full(self, n: int, after: float) -> float:
        """Wall time when some connection opened after `after` had delivered n rows (nan if none)."""
        self.log.flush()
        self.log.seek(0)
        for line in self.log.read().splitlines():
            if line.startswith("{"):
                ev = json.loads(line)
                if ev["rows"] >= n and ev["t"] >= after:
                    return ev["t"]
        return float("nan")

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


class RerunServer:
    def __init__(self, rerun_python: str) -> None:
        self.port = free_port()
        rerun = os.path.join(os.path.dirname(rerun_python), "rerun")
        env = dict(os.environ, RERUN_TELEMETRY_ENABLED="false")
        # a group of its own: `rerun` is a Python launcher whose child is the real binary,
        # and killing the launcher alone would leave the binary listening after the run
        self.proc = subprocess.Popen([rerun, "--serve-grpc", "--port", str(self.port),
                                      "--server-memory-limit", "25%"], env=env, start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def last_full(self, n: int, after: float) -> float:
        return float("nan")  # its buffer is not observable from here

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever of the group is left
        except ProcessLookupError:
            pass
        self.proc.wait(10)


def run_sender(python: str, module: str, url: str, spec: dict) -> dict:
    env = dict(os.environ, RERUN_TELEMETRY_ENABLED="false")
    for k in ("PIXELRUN_SAVE", "PIXELRUN_STRICT"):
        env.pop(k, None)
    r = subprocess.run([python, "-c", SENDER, module, url, json.dumps(spec)], capture_output=True, text=True,
                       env=env, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"{module} -> {url} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def pooled_pct(runs: list, p: float) -> float:
    lat = sorted(x for r in runs for x in r["lat"])
    return lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))] if lat else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rerun-python", default=None, help="interpreter with rerun-sdk 0.41 (the peer)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset")
    p.add_argument("--frames", type=int, default=None, help="override frames per workload")
    args = bench_args(__doc__, parser=p, repeat=3, quick_repeat=1)
    viewers = {"pixelrun viewer": PixelrunViewer()}
    if args.rerun_python:
        viewers["rerun --serve-grpc"] = RerunServer(args.rerun_python)
    # name -> (interpreter, sender module, receiver)
    contenders = {"pixelrun -> pixelrun viewer": (sys.executable, "pixelrun", "pixelrun viewer"),
                  "forked child -> pixelrun viewer (relay)": (sys.executable, "pixelrun-fork", "pixelrun viewer")}
    if args.rerun_python:
        contenders = {"rerun -> rerun": (args.rerun_python, "rerun", "rerun --serve-grpc"),
                      "pixelrun -> rerun": (sys.executable, "pixelrun", "rerun --serve-grpc"),
                      "rerun -> pixelrun viewer": (args.rerun_python, "rerun", "pixelrun viewer"),
                      **contenders}
    rows = []
    try:
        for wname in args.workloads.split(","):
            spec = dict(WORKLOADS[wname])
            if args.frames:
                spec["n"] = args.frames
            elif args.quick:
                spec["n"] = QUICK_FRAMES[wname]
            results: dict = {c: [] for c in contenders}
            for _ in range(args.repeat):  # A B C A B C
                for cname, (py, module, recv) in contenders.items():
                    v = viewers[recv]
                    url = f"rerun+http://127.0.0.1:{v.port}/proxy"
                    r = run_sender(py, module, url, spec)
                    r["in_store"] = v.last_full(spec["n"], r["wall0"]) - r["wall0"]
                    results[cname].append(r)
            case = f"{wname} ({spec['w']}x{spec['h']} x{spec['n']})"
            for cname, rs in results.items():
                med = statistics.median
                total = med([r["total"] for r in rs])
                t = Timing(cname, [r["total"] for r in rs], group=case, peer=(cname == "rerun -> rerun"))
                in_store = [r["in_store"] for r in rs if r["in_store"] == r["in_store"]]
                dropped = [r["dropped"] for r in rs if r["dropped"] is not None]
                t.extra = {
                    "frames/s": f"{rs[0]['frames'] / total:.0f}",
                    "MB/s": f"{rs[0]['bytes'] / total / 1e6:.0f}",
                    "log p50 ms": f"{pooled_pct(rs, 0.50) * 1e3:.3f}",
                    "log p99 ms": f"{pooled_pct(rs, 0.99) * 1e3:.3f}",
                    "in store s": f"{med(in_store):.2f}" if in_store else "-",
                    "dropped": str(sum(dropped)) if dropped else "-",
                }
                rows.append(t)
    finally:
        for v in viewers.values():
            v.stop()
    footer = ("_Time = first log call until close/disconnect returned (pixelrun: the server answered the finished "
              "stream); in store = until the pixelrun viewer's store held every frame; fresh sender process per "
              f"run, {args.repeat} runs, alternating; receivers run on the same 2-core machine._")
    print_table(rows, title="Live streaming (gRPC) into a viewer", footer=footer)


if __name__ == "__main__":
    main()
