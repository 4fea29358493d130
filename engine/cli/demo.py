"""`pixelrun demo -o DIR`: record the seed examples, render them, decode every format.

This is the README's main job. It runs the three seed examples (engine/cli/examples/,
unchanged but for `import pixelrun as rr`) as ordinary scripts with PIXELRUN_SAVE set,
so each leaves an .rrd instead of spawning a viewer; renders every recording to PNGs on
the best adapter the machine has (lavapipe when there is no GPU); and decodes a built-in
sample of every pixel format and colour model x datatype (`decode_samples`).

The engine never imports the SDK: the examples run in child processes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from pixelrun.engine.api import open_store, render, time_points
from pixelrun.engine.chunk import user_timelines
from pixelrun.engine.cli.formats import parse_size
from pixelrun.engine.cli.render import OutputError, safe_filename, writable_folder
from pixelrun.kernels.backends import BACKENDS, choose_backend, convert
from pixelrun.kernels.samples import all_samples

EXAMPLES_DIR = Path(__file__).with_name("examples")
SEED_EXAMPLES = ("seed_image_simple", "seed_image_formats", "seed_image_send_columns")


def decode_samples(out_dir, width: int = 256, height: int = 192, backend: str = "numpy") -> list[Path]:
    """Decode every built-in sample to `out_dir`/<FORMAT>.png; return the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for s in all_samples(width, height):
        rgba = convert(s.data, s.format, backend=backend)
        path = out / f"{s.name}.png"
        Image.fromarray(rgba, mode="RGBA").save(path)
        written.append(path)
    return written


def record_example(name: str, rrd_path: Path) -> None:
    """Run one seed example script with PIXELRUN_SAVE so it writes `rrd_path`."""
    env = dict(os.environ, PIXELRUN_SAVE=str(rrd_path))
    script = EXAMPLES_DIR / f"{name}.py"
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"seed example {name} failed (exit {proc.returncode}):\n{proc.stderr}")


def render_examples(out_dir, backend: str) -> list[Path]:
    """Record and render the seed examples into `out_dir`; return the PNGs written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in SEED_EXAMPLES:
        rrd = out / f"{name}.rrd"
        record_example(name, rrd)
        store = open_store(str(rrd))
        timelines = user_timelines(store.timelines())
        if timelines:  # one PNG per time point of the example's own timeline
            tl = timelines[0]
            for t in time_points(store, tl):
                path = out / f"{name}_{safe_filename(tl)}_{int(t):04d}.png"
                Image.fromarray(render(store, timeline=tl, time=int(t), backend=backend)).save(path)
                written.append(path)
        else:
            path = out / f"{name}.png"
            Image.fromarray(render(store, backend=backend)).save(path)
            written.append(path)
        for entity in sorted(store.entity_paths()) if name == "seed_image_formats" else ():
            path = out / f"{name}_{safe_filename(entity.strip('/').replace('/', '_'))}.png"
            Image.fromarray(render(store, entity=entity, backend=backend)).save(path)
            written.append(path)
    return written


def _run(args: argparse.Namespace) -> int:
    w, h = args.size
    try:
        out = writable_folder(Path(args.output))  # before recording or rendering anything
    except OutputError as exc:
        print(f"pixelrun demo: {exc}", file=sys.stderr)
        return 1
    backend = choose_backend(args.backend)
    where = ""
    if backend == "wgpu":
        from pixelrun.kernels.wgpu.device import adapter_summary  # noqa: PLC0415 - imports wgpu

        where = f" on {adapter_summary()}"
    seeds = render_examples(out, backend)
    print(f"pixelrun demo: seed examples recorded and rendered with {backend}{where}:")
    for p in seeds:
        print(f"  {p.resolve()}")
    samples = decode_samples(out / "formats", w, h, backend)
    print(f"pixelrun demo: {len(samples)} format samples ({w}x{h}) decoded to {(out / 'formats').resolve()}/")
    return 0


def register(p: argparse.ArgumentParser) -> None:
    """Add the arguments of `pixelrun demo` to its parser (engine/cli/main.py makes it)."""
    p.add_argument("-o", "--output", default="pixelrun-demo", metavar="DIR",
                   help="folder for the recordings and PNGs (created if missing; default ./pixelrun-demo)")
    p.add_argument("--size", type=parse_size, default=(256, 192), metavar="WxH",
                   help="format sample size (default 256x192)")
    p.add_argument("--backend", choices=[*BACKENDS, "auto"], default="auto",
                   help="conversion/render backend (default auto: wgpu when an adapter exists)")
    p.set_defaults(func=_run)
