"""Headless rendering: frames per second for the seed's example 3 and a 4-layer 1080p scene.

Both recordings are written by Rerun 0.41's own SDK (in .venv-rerun, as a subprocess)
to /dev/shm, so every contender reads the same file:
- example 3: 20 steps of a 300x200 RGB image (static format + columns of buffers);
- 4-layer 1080p: NV12, RGB U8 (opacity 0.5), L U16 (opacity 0.3), RGBA U8 (opacity 0.8),
  all 1920x1080, distinct draw orders.

Contenders (each row is the time of ONE frame; fps = 1 / median):
- peer: Rerun 0.41 headless screenshot (`rerun FILE --headless --screenshot-to`), one
  process per frame, at the scene's size: load + draw + PNG (its UI included);
- `pixelrun render FILE -o out.png` (wgpu), one process per frame: the same job;
- in-process wgpu Renderer.render_offscreen, cold (new rows: upload + decode +
  composite + readback) and warm (textures cached: composite + readback);
- in-process NumPy compositor (kernels/reference/composite.py, the float64 oracle).
On a machine without a GPU wgpu runs on Mesa's lavapipe, i.e. on the CPU.

Usage: python3 benchmarks/render.py [--quick] [--repeat N]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench import Timing, bench_args, print_table, time_runs

ROOT = Path(__file__).resolve().parent.parent
RERUN_PY = ROOT / ".venv-rerun" / "bin" / "python"
RERUN_BIN = ROOT / ".venv-rerun" / "bin" / "rerun"

EXAMPLE_3 = """
import numpy as np, rerun as rr, sys
rr.init("bench_example_3", recording_id="bench3")
rr.save(sys.argv[1])
times = np.arange(0, 20)
width, height = 300, 200
images = np.zeros((len(times), height, width, 3), dtype=np.uint8)
images[:, :, :, 2] = 255
for t in times:
    images[t, 50:150, (t * 10) : (t * 10 + 100), 1] = 255
rr.log("images", rr.Image.from_fields(format=rr.components.ImageFormat(width=width, height=height,
       color_model="RGB", channel_datatype="U8")), static=True)
rr.send_columns("images", indexes=[rr.TimeColumn("step", sequence=times)],
                columns=rr.Image.columns(buffer=images.reshape(len(times), -1)))
rr.disconnect()
"""

FOUR_LAYERS = """
import numpy as np, rerun as rr, sys
rr.init("bench_four_layers", recording_id="bench4")
rr.save(sys.argv[1])
w, h = 1920, 1080
rng = np.random.default_rng(0)
x = np.arange(w, dtype=np.uint32)[None, :]
y = np.arange(h, dtype=np.uint32)[:, None]
nv12 = ((x + y) % 256).astype(np.uint8)
uv = np.tile(np.array([90, 160], np.uint8), (h // 2, w // 2))
rr.set_time("step", sequence=0)
rr.log("a_nv12", rr.Image(bytes=nv12.tobytes() + uv.tobytes(), width=w, height=h,
       pixel_format=rr.PixelFormat.NV12, draw_order=0.0))
rgb = np.stack([(x * 255 // w) + 0 * y, (y * 255 // h) + 0 * x, ((x + y) % 256)], axis=-1).astype(np.uint8)
rr.log("b_rgb", rr.Image(rgb, opacity=0.5, draw_order=1.0))
depth = ((x * 7 + y * 13) % 5000).astype(np.uint16)
rr.log("c_depth", rr.Image(depth, opacity=0.3, draw_order=2.0))
rgba = np.zeros((h, w, 4), np.uint8)
rgba[200:800, 300:1500] = (255, 128, 0, 200)
rr.log("d_rgba", rr.Image(rgba, opacity=0.8, draw_order=3.0))
rr.disconnect()
"""


def write_recording(code: str, path: Path) -> None:
    subprocess.run([str(RERUN_PY), "-c", textwrap.dedent(code), str(path)], check=True,
                   stdout=subprocess.DEVNULL, env=dict(os.environ, RERUN_STRICT="1"))


def per_frame(name: str, fn, frames: int, group: str, repeat: int, peer: bool = False) -> Timing:
    """Time fn (which draws `frames` frames) and report seconds per frame."""
    samples = [s / frames for s in time_runs(fn, repeat)]
    t = Timing(name, samples, group, peer)
    t.extra["fps"] = f"{1 / t.median:.1f}"
    return t


def main() -> None:
    args = bench_args(__doc__)
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    with tempfile.TemporaryDirectory(prefix="pixelrun-bench-render-", dir=shm) as tmp:
        run(args, Path(tmp))


def run(args, work: Path) -> None:
    from pixelrun.kernels.wgpu import device as gpu

    scenes = {"example 3 (300x200, 20 steps)": (EXAMPLE_3, "ex3.rrd", "300x200"),
              "4 layers 1920x1080": (FOUR_LAYERS, "four.rrd", "1920x1080")}
    device = gpu.get_device()
    rows = []
    for group, (code, fname, size) in scenes.items():
        # one function per scene, so its closures hold that scene's file and frames, never a later one's
        rows += scene_rows(args, work, device, group, code, fname, size)
    print_table(rows, title=f"Headless render, per frame, on {gpu.adapter_summary()} (median of {args.repeat} runs)",
                footer="_Rows are seconds per frame; fps = 1 / median. Process-per-frame rows include "
                       "interpreter/viewer start-up, file load and PNG encoding._")


def scene_rows(args, work: Path, device, group: str, code: str, fname: str, size: str) -> list[Timing]:
    """Write one scene's recording with Rerun, then time every contender on it."""
    import numpy as np

    from pixelrun.engine.api import layers_at, open_source, time_points
    from pixelrun.kernels.reference.composite import composite
    from pixelrun.kernels.wgpu.composite import Renderer

    rows = []
    rrd = work / fname
    write_recording(code, rrd)
    store = open_source(str(rrd))
    steps = [int(t) for t in time_points(store, "step")]
    frames = [layers_at(store, timeline="step", time=t) for t in steps]
    shot = work / "shot.png"
    out = work / "out.png"
    if RERUN_BIN.exists():
        rows.append(per_frame(
            "Rerun 0.41 headless screenshot, process per frame",
            lambda: subprocess.run([str(RERUN_BIN), str(rrd), "--headless", "--screenshot-to", str(shot),
                                    "--window-size", size], check=True, capture_output=True),
            1, group, args.repeat, peer=True))
    rows.append(per_frame(
        "pixelrun render CLI (wgpu), process per frame",
        lambda: subprocess.run([sys.executable, "-m", "pixelrun.engine.cli.main", "render", str(rrd),
                                "--timeline", "step", "--time", str(steps[-1]), "-o", str(out)],
                               check=True, capture_output=True),
        1, group, args.repeat))

    def cold():
        r = Renderer(device)  # empty cache: every frame's images are uploaded and decoded
        for layers in frames:
            r.render_offscreen(layers)

    rows.append(per_frame(f"wgpu Renderer, cold ({len(frames)} frame(s) per run)", cold, len(frames),
                          group, args.repeat))
    warm_r = Renderer(device)
    for layers in frames:
        warm_r.render_offscreen(layers)

    def warm():
        for layers in frames:
            warm_r.render_offscreen(layers)

    rows.append(per_frame("wgpu Renderer, warm (textures cached)", warm, len(frames), group, args.repeat))
    rows.append(per_frame("NumPy compositor (float64 oracle)",
                          lambda: [composite(layers) for layers in frames], len(frames), group,
                          max(1, args.repeat // 3)))
    a = warm_r.render_offscreen(frames[-1])
    b = composite(frames[-1])
    rows[-1].note = f"max |wgpu - numpy| = {int(np.abs(a.astype(int) - b).max())}"
    return rows


if __name__ == "__main__":
    main()
