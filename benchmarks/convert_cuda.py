"""CUDA conversion throughput: every format -> display RGBA8, batched, against the copy ceiling.

For each size (1080p and 4K by default) and every format (14 pixel formats and the 55
colour model x datatype pairs) a batch of frames (128 unless it would not fit
--max-gb) already on the device is converted by `convert_batch_gpu` (one kernel
launch; for colour formats other than U8 this includes the per-frame value-range
reduction) and by the bare kernel with a precomputed plan. The peer of each row group
is a device-to-device copy moving the same number of bytes (cudaMemcpyAsync of
(in + out) / 2 bytes reads and writes as much as the conversion does), so the ratio
column is "how close to a copy". The "% of copy BW" column relates each contender's
GB/s (input + output bytes per second) to the copy bandwidth measured once in the
same run on a 1 GiB buffer. NV12, I420 and YUY2 are also run through CV-CUDA's
cvtcolor (when `import cvcuda` works) on the same input in the same run.

Depth -> colormap and segmentation -> colour (contract §8; groups DEPTH_U16, DEPTH_F32,
SEG_U8, SEG_U16, a batch of frames on the device, each depth frame with its own default
range): `convert_batch_gpu(..., kind=...)` against OpenCV on the CPU in the same run over
the same frames (minMaxLoc + convertScaleAbs + applyColorMap(TURBO) + BGR -> RGBA for depth;
cvtColor(GRAY2RGBA) + LUT for U8 ids; NumPy's table[ids] for U16 ids, as cv2.LUT is 8-bit only).
Timings are wall-clock around launch + device synchronisation, medians of repeated
runs with min and max (benchmarks/_bench.py). One command, e.g. on an H100:

    python3 benchmarks/convert_cuda.py            # full run, both sizes
    python3 benchmarks/convert_cuda.py --quick    # 3 repeats, for iteration

Without CuPy or a CUDA device it stops at once with "no CUDA device: <reason>" and
exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import Timing, bench_args, print_table, time_runs

from pixelrun.kernels.cuda import convert as cupy_convert
from pixelrun.kernels.formats import (
    COLOR_MODELS,
    DATATYPES,
    ChannelDatatype,
    ColorModel,
    ImageFormat,
    PixelFormat,
)

SIZES = {"1080p": (1920, 1080), "4k": (3840, 2160)}
CVCUDA_CODES = {  # our format -> CV-CUDA ColorConversion name (the peer for YUV)
    PixelFormat.NV12: "YUV2RGBA_NV12",
    PixelFormat.Y_U_V12_LimitedRange: "YUV2RGBA_I420",
    PixelFormat.YUY2: "YUV2RGBA_YUY2",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--batch", type=int, default=128, help="frames per batch (default 128)")
    p.add_argument("--sizes", default="1080p,4k", help="comma-separated: 1080p, 4k (default both)")
    p.add_argument("--only", default="", help="substring filter on format names, e.g. NV12 or RGB_F32")
    p.add_argument("--max-gb", type=float, default=16.0,
                   help="device memory for one batch's input + output; larger batches are cut (default 16)")
    return p


def _formats(width: int, height: int) -> list[ImageFormat]:
    out = [ImageFormat(width, height, pixel_format=pf) for pf in PixelFormat]
    for model in ColorModel:
        for dt in ChannelDatatype:
            out.append(ImageFormat(width, height, color_model=model, channel_datatype=dt))
    return out


def _name(fmt: ImageFormat) -> str:
    if fmt.pixel_format is not None:
        return fmt.pixel_format.name
    return f"{fmt.model.name}_{fmt.datatype.name}"


def _frames(cupy, fmt: ImageFormat, n: int):
    """(n, nbytes) uint8 frames on the device with plausible content."""
    if fmt.pixel_format is not None or not DATATYPES[fmt.datatype].is_float:
        return cupy.random.randint(0, 256, size=(n, fmt.byte_count()), dtype=cupy.uint8)
    info = DATATYPES[fmt.datatype]
    count = fmt.num_pixels * COLOR_MODELS[fmt.model].channels
    vals = cupy.random.random((n, count), dtype=cupy.float32).astype(info.numpy)
    return vals.view(cupy.uint8)


def _sync(cupy):
    cupy.cuda.runtime.deviceSynchronize()


def _timed(cupy, name, fn, group, repeat, moved, copy_bw, peer=False, note="") -> Timing:
    def run():
        fn()
        _sync(cupy)

    t = Timing(name, time_runs(run, repeat, warmup=2), group, peer, note)
    gbs = moved / t.median / 1e9
    t.extra = {"GB/s": f"{gbs:.0f}", "% of copy BW": f"{100 * gbs / copy_bw:.0f}%"}
    return t


def _copy_fn(cupy, nbytes: int):
    src = cupy.empty(nbytes, dtype=cupy.uint8)
    dst = cupy.empty(nbytes, dtype=cupy.uint8)

    def copy():
        dst.data.copy_from_device_async(src.data, nbytes)

    return copy, (src, dst)


def _copy_bandwidth(cupy, repeat: int) -> float:
    """GB/s of a 1 GiB device-to-device copy, counting bytes read plus written."""
    nbytes = 1 << 30
    copy, _keep = _copy_fn(cupy, nbytes)
    samples = time_runs(lambda: (copy(), _sync(cupy)), max(repeat, 5), warmup=2)
    return 2 * nbytes / float(np.median(samples)) / 1e9


def _cvcuda_fn(cupy, cvcuda, fmt: ImageFormat, src, dst):
    """A closure running CV-CUDA's cvtcolor on the same frames, or (None, why)."""
    code = getattr(cvcuda.ColorConversion, CVCUDA_CODES[fmt.pixel_format], None)
    if code is None:
        return None, f"cvcuda has no {CVCUDA_CODES[fmt.pixel_format]}"
    n, w, h = src.shape[0], fmt.width, fmt.height
    if fmt.pixel_format == PixelFormat.YUY2:
        shaped = src.reshape(n, h, w, 2)
    else:  # NV12 and I420: one plane of 3/2 H rows (even sizes only, as CV-CUDA needs)
        shaped = src.reshape(n, h * 3 // 2, w, 1)
    try:
        t_in = cvcuda.as_tensor(shaped, "NHWC")
        t_out = cvcuda.as_tensor(dst, "NHWC")

        def run():
            cvcuda.cvtcolor_into(dst=t_out, src=t_in, code=code)

        run()
        _sync(cupy)
    except Exception as exc:  # report in the table instead of stopping the run
        return None, f"cvcuda failed: {exc}"
    return run, ""


TABLE_CASES = ("DEPTH_U16", "DEPTH_F32", "SEG_U8", "SEG_U16")


def _table_case(cupy, case: str, width: int, height: int, n: int):
    """(format, device frames (n, nbytes), host frames (n, H, W), to_display keywords, peer, peer fn)."""
    import cv2

    yy, xx = cupy.mgrid[0:height, 0:width]
    shift = cupy.arange(n)[:, None, None]
    colors = np.random.default_rng(0).integers(0, 256, (1000, 4), dtype=np.uint8)
    colors[:, 3] = 255
    if case.startswith("DEPTH"):
        mm = (500 + 7 * xx + 3 * yy)[None] + 10 * shift  # a tilted plane moving per frame
        frames = mm.astype(cupy.uint16) if case == "DEPTH_U16" else (mm / 1000.0).astype(cupy.float32)
        kw = {"kind": "depth"}

        def peer(host):
            for v in host:
                _, hi, _, _ = cv2.minMaxLoc(v)
                g = cv2.convertScaleAbs(v, alpha=255.0 / max(hi, 1e-12))
                cv2.cvtColor(cv2.applyColorMap(g, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGBA)

        name = "OpenCV applyColorMap(TURBO) chain, CPU"
    else:
        ids = ((xx // 64) + 7 * (yy // 64))[None] + shift
        if case == "SEG_U8":
            frames, table = (ids % 200).astype(cupy.uint8), colors[:200]
            lut4 = np.zeros((256, 1, 4), np.uint8)
            lut4[:200, 0] = table

            def peer(host):
                for v in host:
                    cv2.LUT(cv2.cvtColor(v, cv2.COLOR_GRAY2RGBA), lut4)

            name = "OpenCV cvtColor+LUT, CPU"
        else:
            frames, table = (ids % 1000).astype(cupy.uint16), colors

            def peer(host):
                for v in host:
                    table[v]

            name = "NumPy table[ids], CPU"
        kw = {"kind": "segmentation", "class_colors": table}
    dt = {"DEPTH_U16": ChannelDatatype.U16, "DEPTH_F32": ChannelDatatype.F32,
          "SEG_U8": ChannelDatatype.U8, "SEG_U16": ChannelDatatype.U16}[case]
    fmt = ImageFormat(width, height, color_model=ColorModel.L, channel_datatype=dt)
    frames = cupy.ascontiguousarray(frames)
    return fmt, frames.reshape(n, -1).view(cupy.uint8), frames.get(), kw, name, peer


def _table_rows(cupy, width: int, height: int, args, copy_bw: float) -> list:
    """Depth and segmentation groups: OpenCV (CPU) as the peer, convert_batch_gpu on the same frames."""
    try:
        import cv2  # noqa: F401 - optional peer
    except ImportError:
        print("- depth/segmentation rows skipped: OpenCV (their peer) is not installed")
        return []
    rows = []
    for case in TABLE_CASES:
        if args.only and args.only.lower() not in case.lower():
            continue
        n = max(1, min(args.batch, int(args.max_gb * 1e9 // (12 * width * height))))
        fmt, src, host, kw, peer_name, peer = _table_case(cupy, case, width, height, n)
        moved = n * (fmt.byte_count() + 4 * fmt.num_pixels)
        note = f"{n} frames"
        rows.append(_timed(cupy, peer_name, partial(peer, host), case, args.repeat, moved, copy_bw,
                           peer=True, note=note))
        rows.append(_timed(cupy, "pixelrun convert_batch_gpu", partial(cupy_convert.convert_batch_gpu, src, fmt, **kw),
                           case, args.repeat, moved, copy_bw, note=note))
        src = host = None
        cupy.get_default_memory_pool().free_all_blocks()
    return rows


def main() -> int:
    args = bench_args(__doc__, parser=_parser())
    ok, reason = cupy_convert.is_available()
    if not ok:
        print(f"no CUDA device: {reason}", file=sys.stderr)
        return 2
    import cupy

    try:
        import cvcuda
    except Exception as exc:  # ImportError, or a CUDA mismatch inside it
        cvcuda, cv_reason = None, f"CV-CUDA unavailable ({exc})"
    else:
        cv_reason = ""

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    device = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    copy_bw = _copy_bandwidth(cupy, args.repeat)
    pool = cupy.get_default_memory_pool()

    for size_name in [s.strip().lower() for s in args.sizes.split(",") if s.strip()]:
        if size_name not in SIZES:
            print(f"unknown size {size_name!r}: expected one of {', '.join(SIZES)}", file=sys.stderr)
            return 2
        width, height = SIZES[size_name]
        rows: list[Timing] = []
        for fmt in _formats(width, height):
            name = _name(fmt)
            if args.only and args.only.lower() not in name.lower():
                continue
            per_frame = fmt.byte_count() + 4 * fmt.num_pixels
            n = max(1, min(args.batch, int(args.max_gb * 1e9 // per_frame)))
            note = "" if n == args.batch else f"batch {n}"
            src = _frames(cupy, fmt, n)
            dst = cupy.empty((n, height, width, 4), dtype=cupy.uint8)
            moved = n * per_frame
            group = name
            copy, _keep = _copy_fn(cupy, moved // 2)
            rows.append(_timed(cupy, "D2D copy, same bytes", copy, group, args.repeat, moved, copy_bw,
                               peer=True, note=note))
            # partial binds this format's buffers now; a lambda would read the loop variables when called
            rows.append(_timed(cupy, "pixelrun convert_batch_gpu",
                               partial(cupy_convert.convert_batch_gpu, src, fmt), group, args.repeat, moved, copy_bw))
            plan = cupy_convert.plan_conversion(cupy, src, dst, fmt)
            rows.append(_timed(cupy, "pixelrun kernel only", partial(cupy_convert.launch, plan),
                               group, args.repeat, moved, copy_bw))
            if fmt.pixel_format in CVCUDA_CODES:
                if cvcuda is None:
                    print(f"- {name}: {cv_reason}")
                else:
                    fn, why = _cvcuda_fn(cupy, cvcuda, fmt, src, dst)
                    if fn is None:
                        print(f"- {name}: {why}")
                    else:
                        rows.append(_timed(cupy, "CV-CUDA cvtcolor", fn, group, args.repeat, moved, copy_bw))
            src = dst = plan = copy = _keep = None  # release the device memory before the next format
            pool.free_all_blocks()
        rows += _table_rows(cupy, width, height, args, copy_bw)
        print()
        print_table(
            rows,
            title=f"{size_name} ({width}x{height}) -> RGBA8, batches of {args.batch} frames on {device}",
            footer=(f"_Copy ceiling measured in this run: {copy_bw:.0f} GB/s (1 GiB cudaMemcpy D2D, read + write). "
                    "GB/s counts input + output bytes. CV-CUDA's I420 uses BT.601, ours BT.709 (contract §2): "
                    "same work, different matrix._"),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
