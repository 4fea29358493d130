"""EncodedImage decoding, 1920x1080: pixelrun's path vs OpenCV imdecode vs Pillow, same run.

Input: a photo-like 1080p frame (smooth gradients plus sensor-like noise) encoded once as
JPEG (quality 90) and as PNG, the bytes held in memory. Groups:
- "JPEG -> pixels": the decoded frame in memory. Pillow (open + asarray, libjpeg-turbo
  inside), OpenCV (cv2.imdecode, BGR out), pixelrun (engine/encoded.py: Pillow decode
  into the raw RGB buffer + ImageFormat the GPU path reads).
- "JPEG -> display RGBA": what a viewer needs. OpenCV imdecode + cvtColor(BGR2RGBA),
  Pillow open + convert("RGBA"), pixelrun decode + the GPU conversion to RGBA
  (backend wgpu: on a machine without a GPU that is Mesa's lavapipe, a CPU), and
  pixelrun's cached frame (a DecodedCache hit: what scrubbing back costs) + conversion.
- "PNG -> pixels": as the first group, for the lossless case.
- GPU rows, on a machine with CuPy, a CUDA device and nvImageCodec (pixelrun's nvjpeg
  extra) only: "nvImageCodec decode" in the first group (pixels left on the device),
  and in the second "pixelrun nvImageCodec decode + cupy convert" (what the CuPy backend
  does with a JPEG EncodedImage: engine/encoded.py decode_on_device, then the CUDA
  conversion, the RGBA on the device) next to "pixelrun Pillow decode + cupy convert"
  (the CPU decode it replaces). Each GPU row ends with a device synchronize. Elsewhere
  the table says "not measured: no CUDA device" and why.
The ratio column is time / OpenCV's time in the same group (below 1: faster).

Usage: python3 benchmarks/decode_encoded.py [--quick] [--repeat N] [--size WxH]
"""

from __future__ import annotations

import argparse
import io
import os
import sys

import numpy as np
from PIL import Image as PILImage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench import bench_args, frame_size, measure, opencv_peer, print_table

from pixelrun.engine import encoded
from pixelrun.kernels import backends
from pixelrun.kernels.cuda import convert as cupy_convert


def _frame(w: int, h: int) -> np.ndarray:
    """A photo-like RGB frame: gradients and blobs plus noise (compresses like a camera's)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 90 * np.sin(x / 97.0) * np.cos(y / 53.0)
    g = 128 + 90 * np.sin((x + y) / 151.0)
    b = 128 + 90 * np.cos(np.hypot(x - w / 2, y - h / 2) / 40.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def main() -> None:
    cv2 = opencv_peer("decode_encoded")
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=frame_size, default=(1920, 1080), metavar="WxH")
    args = bench_args(parser=parser)
    w, h = args.size
    frame = _frame(w, h)
    jpeg_io, png_io = io.BytesIO(), io.BytesIO()
    PILImage.fromarray(frame).save(jpeg_io, format="JPEG", quality=90)
    PILImage.fromarray(frame).save(png_io, format="PNG")
    jpeg, png = jpeg_io.getvalue(), png_io.getvalue()
    gpu = backends.choose_backend("auto")  # wgpu when an adapter exists
    threads = cv2.getNumThreads()

    decoder, why_not = encoded.gpu_decoder()
    if decoder is not None:
        import cupy  # optional dependency, present once gpu_decoder() found a device

        def sync():
            cupy.cuda.Device().synchronize()

    rows = []
    for label, data, media in (("JPEG -> pixels", jpeg, "image/jpeg"), ("PNG -> pixels", png, "image/png")):
        arr = np.frombuffer(data, np.uint8)
        rows.append(measure(f"OpenCV imdecode ({threads} threads)", lambda arr=arr: cv2.imdecode(arr, cv2.IMREAD_COLOR),
                            group=label, peer=True, repeat=args.repeat))
        rows.append(measure("Pillow open + asarray", lambda data=data: np.asarray(PILImage.open(io.BytesIO(data))),
                            group=label, repeat=args.repeat))
        rows.append(measure("pixelrun encoded.decode", lambda arr=arr, media=media: encoded.decode(arr, media),
                            group=label, repeat=args.repeat))
        if decoder is not None and media == "image/jpeg":
            rows.append(measure("nvImageCodec decode (GPU, pixels on the device)",
                                lambda data=data: (decoder.decode(data), sync()), group=label, repeat=args.repeat))

    label = "JPEG -> display RGBA"
    arr = np.frombuffer(jpeg, np.uint8)
    rows.append(measure(f"OpenCV imdecode + cvtColor ({threads} threads)",
                        lambda: cv2.cvtColor(cv2.imdecode(arr, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGBA),
                        group=label, peer=True, repeat=args.repeat))
    rows.append(measure("Pillow open + convert RGBA",
                        lambda: np.asarray(PILImage.open(io.BytesIO(jpeg)).convert("RGBA")),
                        group=label, repeat=args.repeat))

    def pixelrun_path():
        buf, fmt = encoded.decode(arr, "image/jpeg")
        return backends.convert(buf, fmt, backend=gpu)

    rows.append(measure(f"pixelrun decode + {gpu} convert", pixelrun_path, group=label, repeat=args.repeat))
    cache = encoded.DecodedCache()
    cache.put("frame", encoded.decode(arr, "image/jpeg"), w * h * 3)

    def cached_path():
        buf, fmt = cache.get("frame")
        return backends.convert(buf, fmt, backend=gpu)

    rows.append(measure(f"pixelrun cached frame + {gpu} convert", cached_path, group=label, repeat=args.repeat))
    if decoder is not None:
        def gpu_path(decode):
            buf, fmt = decode()
            out = cupy_convert.to_display_rgba_gpu(buf, fmt)
            sync()
            return out

        rows.append(measure("pixelrun nvImageCodec decode + cupy convert",
                            lambda: gpu_path(lambda: encoded.decode_on_device(jpeg, "image/jpeg", decoder)),
                            group=label, repeat=args.repeat))
        rows.append(measure("pixelrun Pillow decode + cupy convert",
                            lambda: gpu_path(lambda: encoded.decode(arr, "image/jpeg")), group=label,
                            repeat=args.repeat))
    print(f"frame {w}x{h}: JPEG q90 {len(jpeg)} bytes, PNG {len(png)} bytes")
    footer = None if decoder is not None else f"_GPU rows (nvImageCodec): not measured: no CUDA device ({why_not})._"
    print_table(rows, title=f"EncodedImage decode, {w}x{h}", footer=footer)


if __name__ == "__main__":
    main()
