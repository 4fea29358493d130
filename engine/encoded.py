"""EncodedImage decoding: JPEG, PNG and the other image files Rerun 0.41 accepts, turned
into an ordinary image buffer and ImageFormat, so the rest of the path (the GPU
conversion, the compositors) is the one every Image takes.

Decoding is Pillow's (its JPEG decoder is libjpeg-turbo). The media type is the one
logged, else guessed from the first bytes. The header's width x height is checked
against MAX_DECODED_BYTES before anything is allocated: an encoded file is untrusted
and a few hundred bytes can claim gigapixels. Decoded frames are cached per store by
row id (`DecodedCache`, bounded in bytes), so scrubbing back over a stretch of JPEG
frames decodes each once.
"""

from __future__ import annotations

import io
import warnings
import weakref
from collections import OrderedDict
from typing import Any, Optional, Union

import numpy as np
from PIL import Image as PILImage

from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat

__all__ = [
    "MAX_DECODED_BYTES",
    "DECODE_CACHE_BYTES",
    "DecodeError",
    "DecodedCache",
    "guess_media_type",
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
    data = blob.tobytes() if isinstance(blob, np.ndarray) else bytes(blob)
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


# store -> its DecodedCache
_CACHES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def decoded_cache(store) -> DecodedCache:
    """The store's cache of decoded frames (a fresh, unshared one for a store that
    cannot be weakly referenced)."""
    try:
        cache = _CACHES.get(store)
        if cache is None:
            cache = _CACHES[store] = DecodedCache()
        return cache
    except TypeError:
        return DecodedCache()
