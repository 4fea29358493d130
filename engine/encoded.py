"""EncodedImage decoding: JPEG, PNG and the other image files Rerun 0.41 accepts, turned
into an ordinary image buffer and ImageFormat, so the rest of the path (the GPU
conversion, the compositors) is the one every Image takes.

Decoding is Pillow's (its JPEG decoder is libjpeg-turbo). The media type is the one
logged, else guessed from the first bytes. The header's width x height is checked
against MAX_DECODED_BYTES before anything is allocated: an encoded file is untrusted
and a few hundred bytes can claim gigapixels. Decoded frames are cached per store by
row id (`DecodedCache`, bounded in bytes), so scrubbing back over a stretch of JPEG
frames decodes each once.

For the CuPy backend (scene_at(decode_device="cuda")), JPEG frames are decoded by
nvImageCodec (nvJPEG) on the GPU instead, straight into device memory, and handed on as a
CuPy array (`decode_on_device`, `gpu_decoder`); where it is missing or fails, Pillow
decodes, with a GpuDecodeWarning saying why.
"""

from __future__ import annotations

import io
import warnings
import weakref
from collections import OrderedDict
from typing import Any, Optional, Union

import numpy as np
from PIL import Image as PILImage

from pixelrun.kernels.cuda import convert as cuda_convert
from pixelrun.kernels.errors import RenderWarning, user_stacklevel
from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat

__all__ = [
    "MAX_DECODED_BYTES",
    "DECODE_CACHE_BYTES",
    "DecodeError",
    "DecodedCache",
    "GPU_MEDIA_TYPES",
    "GpuDecodeWarning",
    "GpuJpegDecoder",
    "gpu_decoder",
    "decode_on_device",
    "guess_media_type",
    "header",
    "decode",
    "decoded_cache",
]

# The largest decoded frame accepted (the header says how large before decoding):
# 256 MiB holds an 8K x 8K RGBA frame.
MAX_DECODED_BYTES = 1 << 28

# Decoded frames kept per store, in bytes (about 40 decoded 1080p RGB frames).
DECODE_CACHE_BYTES = 256 << 20

# Media types EncodedImage recognizes from its first bytes (Rerun's viewer guesses the same way).
_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))

# Media type -> the one Pillow decoder allowed to read it: a blob is never handed to a
# decoder its media type does not name.
_PILLOW_FORMATS = {
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/png": "PNG",
    "image/bmp": "BMP",
    "image/gif": "GIF",
    "image/tiff": "TIFF",
    "image/webp": "WEBP",
}

# Pillow mode -> (colour model, datatype) of the buffer np.asarray gives for it.
_MODES = {
    "L": (ColorModel.L, ChannelDatatype.U8),
    "RGB": (ColorModel.RGB, ChannelDatatype.U8),
    "RGBA": (ColorModel.RGBA, ChannelDatatype.U8),
    "I;16": (ColorModel.L, ChannelDatatype.U16),
    "I;16L": (ColorModel.L, ChannelDatatype.U16),
    "I;16B": (ColorModel.L, ChannelDatatype.U16),
    "I": (ColorModel.L, ChannelDatatype.I32),
    "F": (ColorModel.L, ChannelDatatype.F32),
}
_DTYPES = {ChannelDatatype.U8: "u1", ChannelDatatype.U16: "<u2", ChannelDatatype.I32: "<i4",
           ChannelDatatype.F32: "<f4"}
# Bytes per pixel of the mode a frame is decoded into (checked before decoding).
_OUT_BYTES = {"L": 1, "RGB": 3, "RGBA": 4, "I;16": 2, "I;16L": 2, "I;16B": 2, "I": 4, "F": 4}


class DecodeError(ValueError):
    """An encoded image that cannot be decoded; the message says what came and why."""


def guess_media_type(data: Any) -> Optional[str]:
    """``image/jpeg`` or ``image/png`` from a blob's magic bytes, else None."""
    head = data[:8].tobytes() if isinstance(data, np.ndarray) else bytes(memoryview(data)[:8])
    for magic, media_type in _MAGIC:
        if head.startswith(magic):
            return media_type
    return None


def _target_mode(im: PILImage.Image, media_type: str) -> str:
    """The mode a decoded frame is handed on in: one the GPU path reads as it is
    (L, RGB, RGBA, 16-bit grey, ...); palette, CMYK, LA and the rest become RGB(A)."""
    mode = im.mode
    if mode == "I" and media_type == "image/png":
        return "I;16"  # older Pillows open 16-bit grey PNGs as 32-bit "I"; the values fit
    if mode in _MODES:
        return mode
    if mode == "1":
        return "L"
    has_alpha = "A" in mode or "a" in mode or "transparency" in im.info
    return "RGBA" if has_alpha else "RGB"


def _open(data: bytes, media_type: Optional[str]) -> tuple[PILImage.Image, str, str, str]:
    """Pillow's lazily opened image (only the header is read) -> (image, media type in
    lower case, the mode it is handed on in, a description for messages); DecodeError
    for an unknown media type, an unreadable header, or a frame past MAX_DECODED_BYTES."""
    guessed = media_type is None
    if guessed:
        media_type = guess_media_type(data)
        if media_type is None:
            raise DecodeError(
                f"no media type logged and the {len(data)} bytes are neither JPEG nor PNG "
                f"(first bytes {data[:8].hex()})"
            )
    kind = media_type.strip().lower()
    pil_format = _PILLOW_FORMATS.get(kind)
    if pil_format is None:
        raise DecodeError(
            f"media type {media_type!r} is not an image type pixelrun decodes "
            f"(expected one of {', '.join(sorted(set(_PILLOW_FORMATS)))})"
        )
    what = f"{media_type}{' (guessed from the bytes)' if guessed else ''}, {len(data)} bytes"
    try:
        with warnings.catch_warnings():
            # our own bound below is lower than Pillow's bomb threshold and says more
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            im = PILImage.open(io.BytesIO(data), formats=[pil_format])
    except PILImage.DecompressionBombError as exc:
        raise DecodeError(f"{what}: the header claims too large an image ({exc})") from None
    except Exception as exc:  # Pillow raises many types on damaged headers
        raise DecodeError(f"{what}: not a readable {pil_format} file ({type(exc).__name__}: {exc})") from None
    width, height = im.size
    mode = _target_mode(im, kind)
    need = width * height * _OUT_BYTES[mode]
    if need > MAX_DECODED_BYTES:
        raise DecodeError(
            f"{what}: the header claims {width}x{height} {mode} pixels ({need} bytes decoded), "
            f"more than the {MAX_DECODED_BYTES}-byte limit"
        )
    return im, kind, mode, what


def header(blob: Union[bytes, memoryview, np.ndarray], media_type: Optional[str] = None) -> tuple[str, int, int]:
    """(media type, width, height) from an encoded image's header, without decoding its
    pixels; the same checks as `decode` (DecodeError saying why)."""
    im, kind, _, _ = _open(_as_bytes(blob), media_type)
    return kind, im.size[0], im.size[1]


def _as_bytes(blob: Union[bytes, memoryview, np.ndarray]) -> bytes:
    return blob.tobytes() if isinstance(blob, np.ndarray) else bytes(blob)


def _pillow_decode(im: PILImage.Image, mode: str, what: str) -> tuple[np.ndarray, ImageFormat]:
    width, height = im.size
    try:
        im.load()
        if im.mode != mode:
            im = im.convert(mode)
        pixels = np.asarray(im)
    except Exception as exc:  # truncated or corrupt data: Pillow raises OSError, ValueError, ...
        raise DecodeError(f"{what}: {width}x{height} image cannot be decoded ({type(exc).__name__}: {exc})") from None
    model, datatype = _MODES[mode]
    pixels = np.ascontiguousarray(pixels, dtype=_DTYPES[datatype])  # I;16B and native-endian I become little-endian
    fmt = ImageFormat(width, height, color_model=model, channel_datatype=datatype)
    return pixels.reshape(-1).view(np.uint8), fmt


def decode(
    blob: Union[bytes, memoryview, np.ndarray], media_type: Optional[str] = None
) -> tuple[np.ndarray, ImageFormat]:
    """Decode one encoded image -> (1-D uint8 buffer, ImageFormat) in the raw-image
    layout the rest of the engine reads (contract §1).

    `media_type` None: guessed from the bytes (JPEG, PNG). Raises DecodeError saying
    what came (the media type, the byte count, the size the header claims) when the
    bytes are not an image of that type, are damaged or truncated, or would decode to
    more than MAX_DECODED_BYTES.
    """
    im, _, mode, what = _open(_as_bytes(blob), media_type)
    return _pillow_decode(im, mode, what)


# ------------------------------------------------------------------ on the CUDA device
#
# With the CuPy backend, JPEG frames are decoded by nvImageCodec (nvJPEG) straight into
# device memory and handed to the CUDA conversion as a device buffer (Layer.buffer may
# then be a CuPy array; kernels/layers.py). Only the header is read on the CPU (the same
# checks as Pillow's path: media type, size bound). Everything else, and any frame
# nvImageCodec cannot decode, goes through Pillow as before.

# Media types nvImageCodec decodes on the GPU (nvJPEG); Pillow modes it decodes to RGB
# exactly as Pillow's path shows them (CMYK/YCCK JPEGs stay with Pillow).
GPU_MEDIA_TYPES = frozenset({"image/jpeg", "image/jpg"})
_GPU_MODES = frozenset({"L", "RGB"})


class GpuDecodeWarning(RenderWarning):
    """nvImageCodec cannot decode (here, or this frame) on the GPU: Pillow decodes instead."""


class GpuJpegDecoder:
    """nvImageCodec's decoder restricted to its GPU backends (nvJPEG on the CUDA cores or
    the hardware JPEG engine: no CPU Huffman stage), decoding into CuPy arrays."""

    def __init__(self, nvimgcodec: Any, cupy: Any) -> None:
        n = self._n = nvimgcodec
        self._cupy = cupy
        # fancy (triangle-filter) chroma upsampling, as libjpeg-turbo does by default: nvJPEG's own
        # default repeats chroma samples, which moves sharp colour edges of 4:2:0 frames by up to
        # 88 of 255 against Pillow's decode (measured with libjpeg-turbo's fancy_upsampling=0)
        self._decoder = n.Decoder(backends=[n.Backend(n.BackendKind.GPU_ONLY), n.Backend(n.BackendKind.HW_GPU_ONLY)],
                                  options=":fancy_upsampling=1")
        # sRGB interleaved RGB, EXIF orientation not applied: what the Pillow path hands on
        self._params = n.DecodeParams(apply_exif_orientation=False, color_spec=n.ColorSpec.SRGB,
                                      sample_format=n.SampleFormat.I_RGB)

    def decode(self, data: bytes) -> tuple[Any, ImageFormat]:
        """JPEG bytes -> (1-D uint8 CuPy array of tight RGB rows, ImageFormat RGB8);
        DecodeError when nvImageCodec returns nothing or raises."""
        cupy = self._cupy
        stream = cupy.cuda.get_current_stream()
        try:
            img = self._decoder.decode(self._n.CodeStream(data), params=self._params, cuda_stream=stream.ptr)
        except Exception as exc:  # nvImageCodec raises RuntimeError and others on damaged streams
            raise DecodeError(f"nvImageCodec: {type(exc).__name__}: {exc}") from None
        if img is None:
            raise DecodeError("nvImageCodec could not decode it on the GPU")
        # zero-copy through __cuda_array_interface__ (CuPy keeps `img` alive and waits on
        # its stream); rows may be padded: one device-side copy makes them tight
        arr = cupy.asarray(img)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise DecodeError(f"nvImageCodec gave a {arr.dtype} array of shape {tuple(arr.shape)}, "
                              "expected (height, width, 3) uint8")
        if not arr.flags.c_contiguous:
            arr = cupy.ascontiguousarray(arr)
        height, width = int(arr.shape[0]), int(arr.shape[1])
        fmt = ImageFormat(width, height, color_model=ColorModel.RGB, channel_datatype=ChannelDatatype.U8)
        return arr.reshape(-1), fmt


_GPU: dict = {}  # "state": (GpuJpegDecoder or None, why not), settled once per process


def gpu_decoder() -> tuple[Optional[GpuJpegDecoder], str]:
    """(decoder, "") when JPEG can be decoded on the CUDA device here: CuPy sees a
    device and nvImageCodec imports and decodes a probe frame on its GPU backends;
    else (None, why not). Settled once per process."""
    state = _GPU.get("state")
    if state is None:
        state = _GPU["state"] = _make_gpu_decoder()
    return state


def _make_gpu_decoder() -> tuple[Optional[GpuJpegDecoder], str]:
    ok, why = cuda_convert.is_available()
    if not ok:
        return None, why
    try:
        from nvidia import nvimgcodec  # noqa: PLC0415 - optional dependency (nvidia-nvimgcodec-cu12)
    except ImportError as exc:
        return None, (f"nvImageCodec is not installed ({exc}); install nvidia-nvimgcodec-cu12[nvjpeg] "
                      "(pixelrun's nvjpeg extra) for JPEG decoding on the GPU")
    except Exception as exc:  # a broken CUDA installation can raise anything on import
        return None, f"nvImageCodec failed to import: {type(exc).__name__}: {exc}"
    import cupy  # noqa: PLC0415 - optional dependency, present once is_available() said so

    probe = io.BytesIO()
    PILImage.new("RGB", (16, 16), (200, 40, 90)).save(probe, format="JPEG", quality=90)
    try:
        decoder = GpuJpegDecoder(nvimgcodec, cupy)
        decoder.decode(probe.getvalue())
    except Exception as exc:  # no nvJPEG library, no device memory, ...
        detail = str(exc) if isinstance(exc, DecodeError) else f"{type(exc).__name__}: {exc}"
        return None, (f"nvImageCodec cannot decode JPEG on the GPU here ({detail}); "
                      "is nvJPEG installed (nvidia-nvjpeg-cu12)?")
    return decoder, ""


def decode_on_device(
    blob: Union[bytes, memoryview, np.ndarray], media_type: Optional[str], decoder: GpuJpegDecoder,
    entity: str = "",
) -> tuple[Any, ImageFormat]:
    """Decode one encoded image for the CuPy backend: a JPEG on the GPU with `decoder`
    (the buffer is then a 1-D uint8 CuPy array), anything else with Pillow (a NumPy
    buffer), as `decode`. The header is checked first by `decode`'s rules (DecodeError).
    A JPEG that nvImageCodec fails on is decoded by Pillow with a GpuDecodeWarning
    naming `entity`: nothing is lost."""
    data = _as_bytes(blob)
    im, kind, mode, what = _open(data, media_type)
    if kind not in GPU_MEDIA_TYPES or im.mode not in _GPU_MODES:
        return _pillow_decode(im, mode, what)
    try:
        buf, fmt = decoder.decode(data)
        if fmt.width != im.size[0] or fmt.height != im.size[1]:
            raise DecodeError(f"nvImageCodec decoded {fmt.width}x{fmt.height}, the header says "
                              f"{im.size[0]}x{im.size[1]}")
        return buf, fmt
    except DecodeError as exc:
        warnings.warn(GpuDecodeWarning(f"{entity + ': ' if entity else ''}{what}: {exc}; decoded by Pillow "
                                       "on the CPU instead"), stacklevel=user_stacklevel())
    return _pillow_decode(im, mode, what)


class DecodedCache:
    """Decoded frames (or the reason one cannot be decoded) by key, least recently
    used dropped first once more than `max_bytes` are held. A frame larger than the
    whole budget is decoded every time rather than cached."""

    def __init__(self, max_bytes: int = DECODE_CACHE_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self._items: "OrderedDict[Any, tuple[Any, int]]" = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Any) -> Any:
        """The value stored under `key` (made most recent), or None."""
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: Any, value: Any, nbytes: int) -> None:
        """Store `value` (costing `nbytes`), evicting the least recently used."""
        old = self._items.pop(key, None)
        if old is not None:
            self.nbytes -= old[1]
        if nbytes > self.max_bytes:
            return
        self._items[key] = (value, nbytes)
        self.nbytes += nbytes
        while self.nbytes > self.max_bytes:
            _, (_, n) = self._items.popitem(last=False)
            self.nbytes -= n


# store -> {device: its DecodedCache}
_CACHES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def decoded_cache(store, device: str = "cpu") -> DecodedCache:
    """The store's cache of decoded frames, one per device ("cpu": NumPy buffers;
    "cuda": frames decoded for the CuPy backend, on the device, bounded in bytes the
    same way); a fresh, unshared one for a store that cannot be weakly referenced."""
    try:
        caches = _CACHES.get(store)
        if caches is None:
            caches = _CACHES[store] = {}
        cache = caches.get(device)
        if cache is None:
            cache = caches[device] = DecodedCache()
        return cache
    except TypeError:
        return DecodedCache()
