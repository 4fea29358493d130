"""A forked child streams over gRPC through a relay process (sdk/fork_relay.py), never
through a grpcio channel of its own (grpcio is not fork-safe).

Each case runs a whole script in a fresh interpreter, in its own process group, with
a timeout (a hang fails the test; the group, relay included, is killed): the parent
streams, forks (os.fork, or multiprocessing's "fork" context), the child logs images
with grpcio's channel constructors replaced by ones that fail and count, and ends
with close() or without it. Checked: the child's images arrive byte-identical in
pixelrun's viewer server and in real Rerun (``rerun --save``), with TLS too; a child
that ends without close still delivers what it flushed, or its relay prints what it
could not; a relay slower than the child makes drops that are counted, every row
either delivered or counted, and nothing hangs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from grpc_helpers import RERUN_BIN, RerunSaver
from sdk_helpers import run_isolated
from stream_helpers import Viewer, wait_until

from pixelrun.engine import rrd
from pixelrun.engine.chunk import IMAGE_BUFFER, buffer_row
from pixelrun.engine.viewer.server import ViewerServer
from tests.net_helpers import free_port

TIMEOUT = 120

SCRIPT = textwrap.dedent('''
    import json, multiprocessing, os, signal, sys, time
    import pixelrun as rr  # first, as a script does: grpcio's fork handlers stay off (sdk/_grpc_fork.py)
    import grpc, numpy as np
    from pixelrun.sinks import GrpcSink
    url, mode, cfg = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    n, h, w = cfg["n"], cfg["h"], cfg["w"]
    frames = np.random.default_rng(cfg["seed"]).integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    batching = rr.ChunkBatcherConfig.ALWAYS() if cfg.get("chunk_per_row") else None  # a chunk per log call
    rec = rr.RecordingStream("forky", recording_id="fk", send_properties=False, batcher_config=batching)
    rec._set_sinks([GrpcSink(url, **cfg.get("sink", {}))])
    rec.log("parent", rr.Image(frames[0]))
    rec.flush()

    def child():
        channels = []
        def refuse(*a, **k):  # grpcio is not fork-safe: the child must never make a channel
            channels.append(a)
            raise RuntimeError("a grpcio channel was created in the forked child")
        grpc.insecure_channel = grpc.secure_channel = refuse  # a grandchild inherits this too
        for i in range(n):
            if i == n // 2 and cfg.get("kill_relay"):  # the relay dies mid-stream
                rec.flush()
                sink = rec._sinks[0]
                os.kill(sink.relay_pid, signal.SIGKILL)
                for _ in range(1000):  # until the child's sink has seen it (bounded)
                    if sink._gone:
                        break
                    time.sleep(0.01)
            rec.set_time("i", sequence=i)
            rec.log("child", rr.Image(frames[i]))
        if cfg.get("grandchild"):  # forked again: before the child's first chunk, or after its relay started
            if cfg["grandchild"] == "started":
                rec.flush()
            gpid = os.fork()
            if gpid == 0:
                for i in range(n):
                    rec.set_time("i", sequence=i)
                    rec.log("grandchild", rr.Image(frames[i]))
                rec.close(timeout=30)
                print(json.dumps(dict(grandchild=os.getpid(), channels=len(channels), dropped=rec.dropped_rows)),
                      flush=True)
                os._exit(0)
            os.waitpid(gpid, 0)
        if cfg["end"] == "close":
            rec.close(timeout=cfg.get("close_timeout", 30))
        elif cfg["end"] == "flush":
            rec.flush()  # everything is in the relay's pipe; the process then ends without close
        print(json.dumps(dict(child=os.getpid(), channels=len(channels), dropped=rec.dropped_rows,
                              losses=rec.losses())), flush=True)
        if cfg["end"] == "exit":
            sys.exit(0)  # no close: the interpreter's exit drains the recording (its relay starts there)

    if mode == "fork":
        pid = os.fork()
        if pid == 0:
            child()
            os._exit(0)  # no atexit, no close: like a multiprocessing child
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
    else:
        p = multiprocessing.get_context("fork").Process(target=child)
        p.start()
        p.join(90)
        code = p.exitcode
    rec.log("parent2", rr.Image(frames[-1]))
    rec.close(timeout=30)
    print(json.dumps(dict(parent=os.getpid(), child_exit=code, dropped=rec.dropped_rows)), flush=True)
''')


def _run(url: str, mode: str, env: dict | None = None, **cfg) -> tuple[dict, dict, str, dict | None]:
    """Run SCRIPT; (the child's report, the parent's report, stderr, the grandchild's
    report or None). stderr is read to its end: the relays hold it too, so this also
    waits (bounded) for them."""
    cfg = {"n": 4, "h": 48, "w": 64, "seed": 1, "end": "close", **cfg}
    # not inherited from this test process (whose pixelrun set it): the script's own import decides
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXELRUN_", "GRPC_ENABLE_FORK"))}
    full_env.update(env or {})
    res = run_isolated(SCRIPT, url, mode, json.dumps(cfg), env=full_env, timeout=TIMEOUT)
    out, err = res.stdout, res.stderr
    assert res.returncode == 0, err[-3000:]
    reports = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    parent = next((r for r in reports if "parent" in r), None)
    assert parent is not None and parent["child_exit"] == 0, out + err[-3000:]
    (child,) = [r for r in reports if "child" in r]
    grand = [r for r in reports if "grandchild" in r]
    assert all(r["channels"] == 0 for r in [child, *grand]), "a forked child created a grpcio channel"
    return child, parent, err, (grand[0] if grand else None)


def _frames(**cfg) -> list[bytes]:
    cfg = {"n": 4, "h": 48, "w": 64, "seed": 1, **cfg}
    frames = np.random.default_rng(cfg["seed"]).integers(0, 256, (cfg["n"], cfg["h"], cfg["w"], 3), dtype=np.uint8)
    return [f.tobytes() for f in frames]


def _says_where_the_child_streams(err: str, child: dict) -> None:
    assert re.search(rf"process {child['child']} was forked after the recording 'forky' started; it writes its "
                     r"own rows to grpc rerun\+https?://127\.0\.0\.1:\d+/proxy \(through relay process \d+\)", err), err


class Collect:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.chunks: list = []

    def __call__(self, chunks, peer) -> None:
        with self.lock:
            self.chunks.extend(chunks)

    def images(self, entity: str) -> list[bytes]:
        with self.lock:
            return [bytes(buffer_row(c.components[IMAGE_BUFFER], i)) for c in self.chunks
                    if c.entity_path == entity and IMAGE_BUFFER in c.components for i in range(c.num_rows)]


@pytest.mark.parametrize("mode, end", [("fork", "close"), ("fork", "exit"), ("mp", "close"), ("mp", "flush")])
def test_forked_child_streams_into_the_pixelrun_viewer(mode, end):
    """end: close(); "exit": sys.exit without close (the interpreter's exit drains the
    recording, the relay starts there); "flush": a multiprocessing child that flushed
    and ends with os._exit (no atexit): the relay, at its stdin's end, still sends it all."""
    sink = Collect()
    srv = ViewerServer(sink, port=0).start()
    try:
        child, parent, err, grand = _run(f"rerun+http://127.0.0.1:{srv.port}/proxy", mode, end=end)
        assert child["dropped"] == 0 and parent["dropped"] == 0, err
        want = _frames()
        assert wait_until(lambda: sink.images("/child") == want and len(sink.images("/parent2")) == 1, 30), err
        assert sink.images("/parent") == [want[0]]
        _says_where_the_child_streams(err, child)
        assert "DataLossWarning" not in err and "not delivered" not in err, err
    finally:
        srv.stop()


@pytest.mark.parametrize("when", ["pending", "started"])
def test_a_grandchild_gets_a_relay_of_its_own_and_the_childs_still_ends(when):
    """Forked again, before the child's first chunk ("pending": the child's sinks are
    not open yet, the grandchild inherits their factories) or after the child's relay
    started (the grandchild lets go of that relay's pipe, else the relay would outlive
    the child): either way the grandchild streams through a relay of its own."""
    sink = Collect()
    srv = ViewerServer(sink, port=0).start()
    try:
        child, parent, err, grand = _run(f"rerun+http://127.0.0.1:{srv.port}/proxy", "fork", grandchild=when)
        assert child["dropped"] == 0 and parent["dropped"] == 0 and grand["dropped"] == 0, err
        want = _frames()
        assert wait_until(lambda: sink.images("/child") == want and sink.images("/grandchild") == want, 30), err
        relays = set(re.findall(r"through relay process (\d+)", err))
        assert len(relays) == 2, err  # the child's and the grandchild's
    finally:
        srv.stop()


def test_a_killed_relay_is_named_and_every_later_row_counted():
    sink = Collect()
    srv = ViewerServer(sink, port=0).start()
    n = 6
    try:
        child, parent, err, grand = _run(f"rerun+http://127.0.0.1:{srv.port}/proxy", "fork", n=n, kill_relay=True,
                                  chunk_per_row=True)
        assert re.search(r"the relay process exited unexpectedly \(code -9\); what it had not sent yet is lost",
                         err), err
        received = sink.images("/child")
        want = _frames(n=n)
        assert received == want[:len(received)] and len(received) <= n // 2  # nothing after the kill got there
        assert child["dropped"] == n - n // 2, err  # every row logged after the kill, counted
        assert parent["dropped"] == 0
    finally:
        srv.stop()


def _saved_images(path, entity: str) -> list[bytes]:
    return [bytes(buffer_row(c.components[IMAGE_BUFFER], i)) for c in rrd.read_rrd(path).chunks
            if c.entity_path == entity and IMAGE_BUFFER in c.components for i in range(c.num_rows)]


@pytest.mark.skipif(not RERUN_BIN.exists(), reason="real Rerun 0.41 (.venv-rerun/bin/rerun) is not installed: "
                                                   "pixelrun -> Rerun through the relay cannot be checked here")
@pytest.mark.parametrize("mode, end", [("fork", "close"), ("mp", "flush")])
def test_forked_child_streams_into_real_rerun_byte_identical(tmp_path, mode, end):
    port = free_port()
    out = tmp_path / "rerun_saw.rrd"
    cfg = dict(n=3, h=270, w=480, seed=4, end=end)
    with RerunSaver(port, out) as server:
        child, parent, err, grand = _run(f"rerun+http://127.0.0.1:{port}/proxy", mode, **cfg)
        assert child["dropped"] == 0 and parent["dropped"] == 0, err
        want = _frames(**cfg)
        assert wait_until(lambda: out.exists() and _saved_images(out, "/child") == want
                          and len(_saved_images(out, "/parent2")) == 1, 30), err
        server.stop()
    assert _saved_images(out, "/child") == want  # byte-identical, in order, each once
    _says_where_the_child_streams(err, child)


def test_child_that_dies_without_close_gets_its_losses_printed_by_the_relay():
    """Nothing listens: the child flushes into its relay and ends (os._exit). The relay
    cannot deliver; at its stdin's end it gives the sink PIXELRUN_EXIT_TIMEOUT, then
    prints what it could not deliver on the child's stderr: no silent loss."""
    port = free_port()
    child, parent, err, grand = _run(f"rerun+http://127.0.0.1:{port}/proxy", "fork", env={"PIXELRUN_EXIT_TIMEOUT": "1"},
                              end="flush", sink={"retry_secs": 0.05})
    m = re.search(rf"pixelrun: forked process {child['child']}: (\d+) row\(s\) in (\d+) chunk\(s\).* were not "
                  rf"delivered — grpc rerun\+http://127\.0\.0\.1:{port}/proxy \(through relay process \d+\): .*"
                  rf"still queued at close", err)
    assert m, err
    assert int(m.group(1)) == 4  # every row the child logged: none could go anywhere
    assert parent["dropped"] == 2  # the parent's own two rows, counted by its own close


def test_relay_slower_than_the_child_drops_are_counted_and_nothing_hangs():
    """The server takes 0.15 s per message; the child logs 20 frames of 270 KiB (a chunk
    each) as fast as it can, with 1 MiB queues and a 0.1 s back-pressure budget: some
    are dropped, in the child's queue or the relay's, and each drop is counted in the
    child's ledger. Every child row is either received or counted, never both, never
    neither; what is queued at the close gets there (a 60 s close)."""
    v = Viewer(delay=0.15)
    n = 20
    cfg = dict(n=n, h=300, w=300, seed=3, sink={"max_queue_bytes": 1 << 20, "backpressure_secs": 0.1},
               close_timeout=60, chunk_per_row=True)
    try:
        child, parent, err, grand = _run(f"rerun+http://127.0.0.1:{v.port}/proxy", "fork", **cfg)
        received = v.images("/child")
        assert 0 < child["dropped"] < n, err
        assert len(received) + child["dropped"] == n, err
        assert set(received) <= set(_frames(**cfg))
        (place,) = child["losses"]
        assert re.fullmatch(rf"grpc rerun\+http://127\.0\.0\.1:{v.port}/proxy \(through relay process \d+\)", place)
        assert re.search(rf"DataLossWarning: pixelrun: recording 'forky': {child['dropped']} row\(s\)", err), err
    finally:
        v.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test's TLS certificate")
def test_forked_child_streams_over_tls_through_the_relay(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    v = Viewer(tls=(key.read_bytes(), cert.read_bytes()))
    try:
        # grpcio's roots come from this file in the script, its relay included (inherited environment)
        child, parent, err, grand = _run(f"rerun+https://127.0.0.1:{v.port}/proxy", "fork",
                                  env={"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(cert)})
        assert child["dropped"] == 0 and parent["dropped"] == 0, err
        assert wait_until(lambda: v.images("/child") == _frames(), 20), err
        _says_where_the_child_streams(err, child)
    finally:
        v.close()


@pytest.mark.parametrize("env, imports, want", [
    ({}, "import pixelrun", "false"),  # off: pixelrun never uses grpcio in a forked child
    ({"GRPC_ENABLE_FORK_SUPPORT": "1"}, "import pixelrun", "1"),  # the user's choice stands
])
def test_importing_pixelrun_turns_grpcios_fork_handlers_off_unless_chosen(env, imports, want):
    code = f"{imports}; import os, grpc; print(os.environ['GRPC_ENABLE_FORK_SUPPORT'])"
    full_env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**full_env, **env},
                       timeout=60)
    assert r.stdout.split() == [want], r.stderr


def test_a_child_is_told_when_grpc_was_imported_before_pixelrun():
    """grpcio read its setting before pixelrun could turn the handlers off: the forked
    child's stream says so (nothing listens at the URL, so no channel is ever made and
    the fork itself is safe here)."""
    code = textwrap.dedent('''
        import grpc, os, sys, numpy as np
        import pixelrun as rr
        rec = rr.RecordingStream("early", send_properties=False)
        rec.connect_grpc(sys.argv[1])
        pid = os.fork()
        if pid == 0:
            rec.log("x", rr.Image(np.zeros((2, 2), np.uint8)))
            rec.close(timeout=0.5)
            os._exit(0)
        os.waitpid(pid, 0)
        rec.close(timeout=0.5)
    ''')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXELRUN_", "GRPC_ENABLE_FORK"))}
    r = subprocess.run([sys.executable, "-c", code, f"rerun+http://127.0.0.1:{free_port()}/proxy"],
                       capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert "grpc was imported before pixelrun, so grpcio's fork handlers are on" in r.stderr, r.stderr
