"""WGSL conversion on the wgpu device vs OpenCV cvtColor on the CPU, 1920x1080 -> RGBA8.

For each format the raw bytes (the built-in gradient sample) go through
pixelrun.kernels.wgpu.convert in three separately timed steps:
- upload:   the raw bytes into a storage buffer (queue.write_buffer, waited for);
- decode:   the compute passes (reduction when the value range needs it, then decode)
            into rgba8unorm textures, submitted and waited for;
- readback: texture -> mappable buffer (256-byte rows) -> NumPy (H, W, 4);
plus "total" (upload + decode + readback: what `convert(..., backend="wgpu")` costs).

Peer: OpenCV's cvtColor on the same bytes in the same run (for 16-bit and float images
the OpenCV chain that does the same job: min/max, scale to 8 bits, gray/RGB -> RGBA).
Formats with no OpenCV equivalent (planar 4:2:2 / 4:4:4) have no peer row.
GB/s = (raw bytes in + RGBA8 bytes out) / median time of the row. On a machine without
a GPU the device is Mesa's lavapipe (Vulkan on the CPU): these are CPU numbers then.

Usage: python3 benchmarks/convert_gpu.py [--quick] [--repeat N] [--size WxH] [--formats A,B]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench import bench_args, measure, print_table

from pixelrun.kernels.samples import sample


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def _cv_cases(cv2, w: int, h: int) -> dict:
    """case -> (sample key, OpenCV function of the raw byte array, or None)."""

    def cvt(code, shape):
        return lambda buf: cv2.cvtColor(buf.reshape(shape), code)

    def norm_gray(dtype, shape):
        def run(buf):
            a = buf.view(dtype).reshape(shape)
            lo, hi, _, _ = cv2.minMaxLoc(a if a.ndim == 2 else a.reshape(h, -1))
            g = cv2.convertScaleAbs(a, alpha=255.0 / max(hi - lo, 1e-12), beta=-lo * 255.0 / max(hi - lo, 1e-12))
            return cv2.cvtColor(g, cv2.COLOR_GRAY2RGBA if g.ndim == 2 else cv2.COLOR_RGB2RGBA)

        return run

    return {
        "NV12": ("NV12", cvt(cv2.COLOR_YUV2RGBA_NV12, (h * 3 // 2, w))),
        "I420": ("Y_U_V12_LimitedRange", cvt(cv2.COLOR_YUV2RGBA_I420, (h * 3 // 2, w))),
        "I422": ("Y_U_V16_FullRange", None),
        "I444": ("Y_U_V24_LimitedRange", None),
        "YUY2": ("YUY2", cvt(cv2.COLOR_YUV2RGBA_YUY2, (h, w, 2))),
        "Y8": ("Y8_FullRange", cvt(cv2.COLOR_GRAY2RGBA, (h, w))),
        "BayerRGGB8": ("BayerRGGB8", cvt(cv2.COLOR_BayerBG2RGBA, (h, w))),
        "RGB_U8": ("RGB_U8", cvt(cv2.COLOR_RGB2RGBA, (h, w, 3))),
        "BGR_U8": ("BGR_U8", cvt(cv2.COLOR_BGR2RGBA, (h, w, 3))),
        "RGBA_U8": ("RGBA_U8", lambda buf: buf.reshape(h, w, 4).copy()),
        "L_U8": ("L_U8", cvt(cv2.COLOR_GRAY2RGBA, (h, w))),
        "L_U16": ("L_U16", norm_gray(np.uint16, (h, w))),
        "RGB_F32": ("RGB_F32", norm_gray(np.float32, (h, w, 3))),
        "L_F16": ("L_F16", None),
        "RGBA_F64": ("RGBA_F64", None),
    }


def _case_rows(conv, wait, cv2, case: str, key: str, cv_fn, w: int, h: int, repeat: int) -> list:
    """The rows of one case: the OpenCV peer (if any) and the WGSL steps on the same bytes."""
    s = sample(key, w, h)
    buf = np.frombuffer(s.data, dtype=np.uint8)
    io_bytes = buf.nbytes + w * h * 4
    rows = []

    def gbps(t):
        t.extra["GB/s"] = f"{io_bytes / t.median / 1e9:.2f}"
        return t

    if cv_fn is not None:
        rows.append(gbps(measure(f"OpenCV cvtColor ({cv2.getNumThreads()} threads)", lambda: cv_fn(buf),
                                 group=case, peer=True, repeat=repeat)))

    state = {}

    def upload():
        state["raw"] = conv.upload(buf, s.format)
        wait()

    def decode():
        state["tiles"] = conv.decode(state["raw"], s.format)
        wait()

    def drop_tiles():
        for t in state.pop("tiles", []):
            t.texture.destroy()

    def readback():
        return conv.read_tiles(state["tiles"], w, h)

    rows.append(gbps(measure("WGSL upload", upload, group=case, repeat=repeat)))
    rows.append(gbps(measure("WGSL decode", decode, group=case, repeat=repeat, setup=drop_tiles)))
    rows.append(gbps(measure("WGSL readback", readback, group=case, repeat=repeat)))
    drop_tiles()
    rows.append(gbps(measure("WGSL total (upload+decode+readback)",
                             lambda: conv.to_display_rgba(buf, s.format), group=case, repeat=repeat)))
    state["raw"].destroy()
    return rows


def main() -> None:
    try:
        import cv2
    except ImportError:
        sys.exit("convert_gpu: OpenCV is the peer; install it with pip install -e '.[test]'")
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    from pixelrun.kernels.wgpu import device as gpu
    from pixelrun.kernels.wgpu.convert import converter_for, wait_idle

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=_size, default=(1920, 1080), metavar="WxH")
    parser.add_argument("--formats", default="", help="comma-separated case names (default: all)")
    args = bench_args(parser=parser)
    w, h = args.size
    device = gpu.get_device()
    conv = converter_for(device)

    def wait():
        wait_idle(device)

    cases = _cv_cases(cv2, w, h)
    if args.formats:
        cases = {k: v for k, v in cases.items() if k in args.formats.split(",")}
    rows = []
    for case, (key, cv_fn) in cases.items():
        # one function per case, so its closures hold that case's bytes and state, never a later one's
        rows += _case_rows(conv, wait, cv2, case, key, cv_fn, w, h, args.repeat)

    print_table(
        rows,
        title=f"WGSL conversion to RGBA8 on {gpu.adapter_summary()}, {w}x{h} (median of {args.repeat} runs)",
        footer=f"_OpenCV {cv2.__version__} on the CPU; GB/s = (raw in + RGBA8 out) / median. "
               "lavapipe/llvmpipe adapters run the shaders on the CPU._",
    )


if __name__ == "__main__":
    main()
