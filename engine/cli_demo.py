"""`pixelrun demo -o DIR`: decode a built-in sample of every format into PNGs.

One PNG per PixelFormat (14) and per ColorModel x ChannelDatatype (55), each the same
gradient (pixelrun.kernels.samples) decoded to display RGBA by a conversion backend
and written with Pillow. `decode_samples` is the reusable part.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from pixelrun.engine.cli_formats import parse_size
from pixelrun.engine.convert import BACKENDS, convert
from pixelrun.kernels.samples import all_samples


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


def _run(args: argparse.Namespace) -> int:
    w, h = args.size
    paths = decode_samples(args.output, w, h, args.backend)
    where = Path(args.output).resolve()
    print(f"pixelrun demo: {len(paths)} sample images ({w}x{h}, backend {args.backend}) written to {where}/")
    print("  " + " ".join(p.name for p in paths))
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="decode a built-in sample of every format into PNGs")
    p.add_argument("-o", "--output", default="pixelrun-demo", metavar="DIR",
                   help="folder for the PNGs (created if missing; default ./pixelrun-demo)")
    p.add_argument("--size", type=parse_size, default=(256, 192), metavar="WxH",
                   help="sample size (default 256x192)")
    p.add_argument("--backend", choices=[*BACKENDS, "auto"], default="numpy",
                   help="conversion backend (default numpy, the reference)")
    p.set_defaults(func=_run)
