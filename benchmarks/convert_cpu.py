"""CPU conversion: the NumPy reference decoder vs OpenCV cvtColor, 1920x1080 -> RGBA8.

Peer: OpenCV's cvtColor (COLOR_YUV2RGBA_NV12, COLOR_YUV2RGBA_I420, COLOR_YUV2RGBA_YUY2,
COLOR_BGR2RGBA, COLOR_GRAY2RGBA), measured in the same run on the same bytes (the
built-in gradient sample of each format). Contender: pixelrun.kernels.reference.convert
.to_display_rgba, which is the readable float64 oracle, not a tuned CPU path.
Ceiling: one copy of the 8.3 MB RGBA8 output (np.copyto), the least any conversion
that writes its result must pay, measured in the same run.

Note for I420: OpenCV converts with BT.601, pixelrun's Y_U_V12_LimitedRange is BT.709
(contract §2); the work is the same, the colours differ, hence the large "max |diff|".

Usage: python3 benchmarks/convert_cpu.py [--quick] [--repeat N] [--size WxH]
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench import bench_args, frame_size, measure, opencv_peer, print_table

from pixelrun.kernels.reference.convert import to_display_rgba
from pixelrun.kernels.samples import sample


def main() -> None:
    cv2 = opencv_peer("convert_cpu")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=frame_size, default=(1920, 1080), metavar="WxH")
    args = bench_args(parser=parser)
    w, h = args.size

    # case -> (pixelrun sample key, OpenCV code, shape OpenCV wants the same bytes in)
    cases = {
        "NV12": ("NV12", cv2.COLOR_YUV2RGBA_NV12, (h * 3 // 2, w)),
        "I420": ("Y_U_V12_LimitedRange", cv2.COLOR_YUV2RGBA_I420, (h * 3 // 2, w)),
        "YUY2": ("YUY2", cv2.COLOR_YUV2RGBA_YUY2, (h, w, 2)),
        "BGR": ("BGR_U8", cv2.COLOR_BGR2RGBA, (h, w, 3)),
        "L": ("L_U8", cv2.COLOR_GRAY2RGBA, (h, w)),
    }
    if w % 2 or h % 2:
        sys.exit("convert_cpu: OpenCV's YUV 4:2:0 and 4:2:2 conversions need an even size")

    rows = []
    for case, (key, code, shape) in cases.items():
        s = sample(key, w, h)
        buf = np.frombuffer(s.data, dtype=np.uint8)
        cv_in = buf.reshape(shape)
        theirs = cv2.cvtColor(cv_in, code)
        ours = to_display_rgba(buf, s.format)
        diff = int(np.abs(ours.astype(np.int16) - theirs.astype(np.int16)).max())

        # partial binds this case's arrays now; a lambda would read the loop variables when called
        peer = measure(f"OpenCV cvtColor ({cv2.getNumThreads()} threads)",
                       partial(cv2.cvtColor, cv_in, code), group=case, peer=True, repeat=args.repeat)
        peer.extra["max abs diff"] = "-"
        ref = measure("pixelrun NumPy reference", partial(to_display_rgba, buf, s.format),
                      group=case, repeat=args.repeat)
        ref.extra["max abs diff"] = diff
        dst, src = np.empty_like(ours), ours.copy()
        floor = measure("floor: one copy of the RGBA8 output", partial(np.copyto, dst, src),
                        group=case, repeat=args.repeat)
        floor.extra["max abs diff"] = "-"
        rows += [peer, ref, floor]

    print_table(rows, title=f"CPU conversion to RGBA8, {w}x{h} (median of {args.repeat} runs)",
                footer=f"_OpenCV {cv2.__version__}, NumPy {np.__version__}; max abs diff = largest "
                       "per-channel byte difference between the two outputs (I420: BT.709 vs OpenCV's BT.601)._")


if __name__ == "__main__":
    main()
