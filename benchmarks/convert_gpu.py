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

Depth and segmentation (contract §8; cases DEPTH_U16, DEPTH_F32, SEG_U8, SEG_U16): the same
WGSL steps with the table lookup, plus "plan" (the host side: default depth range from
the samples and the table / palette, kernels/table_plan.py). Peers in the same run:
depth -> OpenCV minMaxLoc + convertScaleAbs to 8 bits + applyColorMap(TURBO) (a 256-entry
map, coarser than ours) + BGR -> RGBA; U8 segmentation -> cvtColor(GRAY2RGBA) + cv2.LUT with
a 4-channel 256-entry table; U16 segmentation (cv2.LUT takes 8-bit input only) -> NumPy's
table[ids] gather.
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
from _bench import bench_args, frame_size, measure, opencv_peer, print_table

from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat
from pixelrun.kernels.samples import sample
from pixelrun.kernels.table_plan import plan_for


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


def _table_cases(cv2, w: int, h: int) -> dict:
    """case -> (format, raw bytes, to_display_rgba keywords, peer name, peer function)."""
    yy, xx = np.mgrid[0:h, 0:w]
    depth_mm = (500 + 7 * xx + 3 * yy).astype(np.uint16)  # a tilted plane, 0.5 m .. 17 m
    depth_m = depth_mm.astype(np.float32) / 1000.0
    ids = ((xx // 64) + 7 * (yy // 64)).astype(np.int64)
    colors = np.random.default_rng(0).integers(0, 256, (1000, 4), dtype=np.uint8)
    colors[:, 3] = 255
    seg8, seg16 = (ids % 200).astype(np.uint8), (ids % 1000).astype(np.uint16)
    lut4 = np.zeros((256, 1, 4), np.uint8)
    lut4[:200, 0] = colors[:200]

    def cv_depth(a):
        def run(buf):
            v = buf.view(a.dtype).reshape(h, w)
            _, hi, _, _ = cv2.minMaxLoc(v)
            g = cv2.convertScaleAbs(v, alpha=255.0 / max(hi, 1e-12))
            return cv2.cvtColor(cv2.applyColorMap(g, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGBA)

        return run

    def cv_seg8(buf):
        return cv2.LUT(cv2.cvtColor(buf.reshape(h, w), cv2.COLOR_GRAY2RGBA), lut4)

    def np_seg16(buf):
        v = buf.view(np.uint16).reshape(h, w)
        return colors[v]

    def fmt(dt):
        return ImageFormat(w, h, None, ColorModel.L, dt)

    depth_peer = "OpenCV minMaxLoc+convertScaleAbs+applyColorMap(TURBO)"
    return {
        "DEPTH_U16": (fmt(ChannelDatatype.U16), depth_mm, {"kind": "depth"}, depth_peer, cv_depth(depth_mm)),
        "DEPTH_F32": (fmt(ChannelDatatype.F32), depth_m, {"kind": "depth"}, depth_peer, cv_depth(depth_m)),
        "SEG_U8": (fmt(ChannelDatatype.U8), seg8, {"kind": "segmentation", "class_colors": colors[:200]},
                   "OpenCV cvtColor(GRAY2RGBA)+LUT", cv_seg8),
        "SEG_U16": (fmt(ChannelDatatype.U16), seg16, {"kind": "segmentation", "class_colors": colors},
                    "NumPy table[ids] (cv2.LUT is 8-bit only)", np_seg16),
    }


def _table_rows(conv, wait, case: str, fmt, data, kw: dict, peer: str, peer_fn, repeat: int) -> list:
    """The rows of one depth / segmentation case: its peer and the WGSL steps."""
    buf = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
    io_bytes = buf.nbytes + fmt.num_pixels * 4
    rows = []

    def gbps(t):
        t.extra["GB/s"] = f"{io_bytes / t.median / 1e9:.2f}"
        return t

    rows.append(gbps(measure(peer, lambda: peer_fn(buf), group=case, peer=True, repeat=repeat)))
    state = {"raw": conv.upload(buf, fmt)}

    def plan():
        state["plan"] = plan_for(buf, fmt, **kw)

    def decode():
        state["tiles"] = conv.decode(state["raw"], fmt, plan=state["plan"])
        wait()

    def drop_tiles():
        for t in state.pop("tiles", []):
            t.texture.destroy()

    rows.append(gbps(measure("plan (host range + table)", plan, group=case, repeat=repeat)))
    rows.append(gbps(measure("WGSL decode (table lookup)", decode, group=case, repeat=repeat, setup=drop_tiles)))
    drop_tiles()
    rows.append(gbps(measure("WGSL total (plan+upload+decode+readback)",
                             lambda: conv.to_display_rgba(buf, fmt, **kw), group=case, repeat=repeat)))
    state["raw"].destroy()
    return rows


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
    cv2 = opencv_peer("convert_gpu")
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    from pixelrun.kernels.wgpu import device as gpu
    from pixelrun.kernels.wgpu.convert import converter_for, wait_idle

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=frame_size, default=(1920, 1080), metavar="WxH")
    parser.add_argument("--formats", default="", help="comma-separated case names (default: all)")
    args = bench_args(parser=parser)
    w, h = args.size
    device = gpu.get_device()
    conv = converter_for(device)

    def wait():
        wait_idle(device)

    cases = _cv_cases(cv2, w, h)
    table_cases = _table_cases(cv2, w, h)
    if args.formats:
        wanted = args.formats.split(",")
        cases = {k: v for k, v in cases.items() if k in wanted}
        table_cases = {k: v for k, v in table_cases.items() if k in wanted}
    rows = []
    for case, (key, cv_fn) in cases.items():
        # one function per case, so its closures hold that case's bytes and state, never a later one's
        rows += _case_rows(conv, wait, cv2, case, key, cv_fn, w, h, args.repeat)
    for case, (fmt, data, kw, peer, peer_fn) in table_cases.items():
        rows += _table_rows(conv, wait, case, fmt, data, kw, peer, peer_fn, args.repeat)

    print_table(
        rows,
        title=f"WGSL conversion to RGBA8 on {gpu.adapter_summary()}, {w}x{h} (median of {args.repeat} runs)",
        footer=f"_OpenCV {cv2.__version__} on the CPU; GB/s = (raw in + RGBA8 out) / median. "
               "lavapipe/llvmpipe adapters run the shaders on the CPU._",
    )


if __name__ == "__main__":
    main()
