"""Turning whatever a camera pipeline hands us into (raw bytes, ImageFormat).

contract §1: NumPy and array-likes, PIL images, GPU arrays (via gpu_input),
non-contiguous and big-endian arrays, or ``bytes=`` with an explicit format. The
pixels are never converted here; the only work is ONE copy (tightly packed,
row-major, little-endian) that protects the recording from later mutation by the
caller. Arrays that had to be copied anyway (GPU download, PIL export, byte swap,
non-contiguous gather) are not copied a second time.

Errors are raised as ValueError with the reason only; the caller adds the entity.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, Iterable, Optional

import numpy as np

from pixelrun import gpu_input
from pixelrun.buffer_pool import POOL
from pixelrun.engine.encoded import guess_media_type  # noqa: F401 - one sniffing rule for SDK and viewer
from pixelrun.engine.mcap.rerun_form import RERUN_PIXEL_FORMATS
from pixelrun.errors import RerunCompatibilityWarning, user_stacklevel
from pixelrun.kernels import formats
from pixelrun.kernels.formats import COLOR_MODELS, ColorModel, ImageFormat

__all__ = ["array_to_image", "bytes_to_image", "as_byte_rows", "DeferredBytes", "resolve_buffer",
           "warn_not_shown_by_rerun"]

_DEFAULT_MODEL = {1: ColorModel.L, 3: ColorModel.RGB, 4: ColorModel.RGBA}

# PIL modes whose pixels NumPy exposes directly; others are converted by PIL first.
# (I;16B arrives big-endian and is byte-swapped like any big-endian array.)
_PIL_DIRECT = {"L", "RGB", "RGBA", "I;16", "I;16L", "I;16B", "I", "F"}


def _from_pil(img) -> np.ndarray:
    if img.mode == "1":  # bilevel: one channel, shown as 0 / 255
        img = img.convert("L")
    elif img.mode not in _PIL_DIRECT:
        img = img.convert("RGBA" if "A" in img.getbands() or img.mode == "P" else "RGB")
    return np.asarray(img)  # PIL hands out a fresh buffer: this is our one copy


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "getbands")


def _to_numpy(image: Any) -> tuple[np.ndarray, bool]:
    """(array, owned): owned means the buffer is already private to us."""
    if isinstance(image, np.ndarray):
        return image, False
    if gpu_input.is_gpu_array(image):
        return np.asarray(gpu_input.to_host(image)), True
    if _is_pil(image):
        return _from_pil(image), True
    try:
        arr = np.asarray(image)
    except Exception as exc:  # reported as a clear input error
        raise ValueError(
            f"expected an image array (NumPy, array-like, PIL, CuPy/torch), got "
            f"{type(image).__name__}: {exc}"
        ) from None
    if arr.dtype == object:
        raise ValueError(f"expected a numeric image array, got {type(image).__name__} of Python objects")
    # Lists/tuples were just materialised by NumPy; other array-likes may share memory.
    return arr, isinstance(image, (list, tuple))


def _channels_of(color_model: Any) -> Optional[int]:
    try:
        return COLOR_MODELS[formats.parse_color_model(color_model)].channels if color_model is not None else None
    except ValueError:
        return None  # reported later, with the entity


def _squeezed_shape(shape: tuple, channels: Optional[int] = None) -> tuple:
    """Drop leading, then trailing, size-1 axes while ndim > 2 (contract §1).

    When a multi-channel color model is given and the last axis matches it, that
    axis is the channel axis: a one-row (1, W, C) image keeps its row.
    """
    shape = list(shape)
    keep_channels = channels is not None and channels > 1 and shape and shape[-1] == channels
    while len(shape) > (3 if keep_channels else 2) and shape[0] == 1:
        shape.pop(0)
    while len(shape) > 2 and shape[-1] == 1:
        shape.pop()
    return tuple(shape)


class DeferredBytes:
    """The raw bytes of a GPU image whose device-to-host copy is still in flight.

    `log` returns as soon as the copy is queued (gpu_input.to_host_async: pinned
    memory, its own stream); the batcher thread calls `resolve()` when it builds the
    chunk, so the logging thread never waits on the GPU. len() is known at once, so
    byte counts and batching limits work as for host buffers.
    """

    __slots__ = ("_copy", "_nbytes")

    def __init__(self, copy: "gpu_input.HostCopy", nbytes: int) -> None:
        self._copy = copy
        self._nbytes = nbytes

    def __len__(self) -> int:
        return self._nbytes

    @property
    def nbytes(self) -> int:
        """The image's byte count, known before the copy ends (as a host array's)."""
        return self._nbytes

    def resolve(self) -> np.ndarray:
        """Wait for the copy; a flat uint8 view of the image's bytes."""
        arr = np.ascontiguousarray(self._copy.result())
        if arr.dtype != _le_dtype(arr.dtype):
            arr = arr.astype(_le_dtype(arr.dtype))
        return arr.reshape(-1).view(np.uint8)


def resolve_buffer(buf: Any) -> Any:
    """A host buffer for `buf` (waits for a DeferredBytes; anything else as is)."""
    return buf.resolve() if isinstance(buf, DeferredBytes) else buf


def _le_dtype(dtype: np.dtype) -> np.dtype:
    return dtype.newbyteorder("<") if dtype.byteorder == ">" or (
        dtype.byteorder == "=" and np.little_endian is False
    ) else dtype


def array_to_image(image: Any, color_model: Any = None) -> tuple[Any, ImageFormat]:
    """(flat uint8 copy of the pixels, ImageFormat) for an image-like object.

    For GPU arrays the first element is a DeferredBytes: the copy runs asynchronously.
    """
    pil = _is_pil(image)
    copy = gpu_input.to_host_async(image) if gpu_input.is_gpu_array(image) else None
    if copy is not None:
        arr, owned, dtype, shape = None, True, np.dtype(copy.dtype), tuple(copy.shape)
    else:
        arr, owned = _to_numpy(image)
        dtype, shape = arr.dtype, arr.shape
    dt = formats.datatype_from_numpy(dtype)
    if dt is None:
        names = ", ".join(i.numpy.name for i in formats.DATATYPES.values())
        raise ValueError(f"unsupported pixel dtype {dtype} (supported: {names})")
    if not pil:  # a PIL image's shape is authoritative (its mode names the channels)
        shape = _squeezed_shape(shape, _channels_of(color_model))
    if len(shape) == 2:
        channels = 1
    elif len(shape) == 3:
        channels = shape[2]
    else:
        raise ValueError(
            f"expected an image of shape (H, W) or (H, W, C), got shape {tuple(shape)}"
        )
    if color_model is not None:
        model = formats.parse_color_model(color_model)
        need = COLOR_MODELS[model].channels
        if need != channels:
            raise ValueError(
                f"color model {model.name} needs {need} channel(s), but the array of shape "
                f"{tuple(shape)} has {channels}"
            )
    else:
        model = _DEFAULT_MODEL.get(channels)
        if model is None:
            raise ValueError(
                f"cannot infer a color model for {channels} channels (shape {tuple(shape)}): "
                "expected 1 (L), 3 (RGB) or 4 (RGBA), or pass color_model="
            )
    h, w = int(shape[0]), int(shape[1])
    fmt = ImageFormat(w, h, color_model=model, channel_datatype=dt)
    if copy is not None:  # bytes still on their way from the GPU: the batcher waits
        return DeferredBytes(copy, int(np.prod(shape)) * dtype.itemsize), fmt
    arr = arr.reshape(shape) if arr.shape != shape else arr
    le = _le_dtype(arr.dtype)
    if owned and le == arr.dtype and arr.flags.c_contiguous:
        data = arr  # already a private, packed, little-endian buffer
    else:
        # The one copy: packs non-contiguous input and byte-swaps big-endian data,
        # into recycled memory (see buffer_pool).
        data = POOL.copy(arr, le)
    flat = data.reshape(-1).view(np.uint8)
    msg = formats.validate(flat.size, fmt)
    if msg is not None:
        raise ValueError(msg)
    return flat, fmt


def _bytes_view(data: Any, what: str = "bytes") -> Any:
    """A private, immutable-enough byte buffer: bytes are kept, others copied once."""
    if isinstance(data, bytes):
        return data  # immutable: no copy needed
    if isinstance(data, (bytearray, memoryview)):
        return np.frombuffer(bytes(data), dtype=np.uint8)
    if isinstance(data, np.ndarray) or gpu_input.is_gpu_array(data):
        arr, owned = _to_numpy(data)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(_le_dtype(arr.dtype))
            owned = True
        if not (owned and arr.flags.c_contiguous):
            arr = np.array(arr, order="C", copy=True)
        return arr.reshape(-1).view(np.uint8)
    try:
        # memoryview, not bytes(): bytes(16) would silently make 16 zero bytes
        return np.frombuffer(memoryview(data).tobytes(), dtype=np.uint8)
    except Exception:  # any non-buffer object: reported as a clear input error
        raise ValueError(f"{what}= must be bytes-like or an array, got {type(data).__name__}") from None


def _nbytes(buf: Any) -> int:
    return buf.size if isinstance(buf, np.ndarray) else len(buf)


def bytes_to_image(
    data: Any, width: Any, height: Any, pixel_format: Any = None,
    color_model: Any = None, datatype: Any = None,
) -> tuple[Any, ImageFormat]:
    """(private buffer, ImageFormat) for ``bytes=`` input, byte count checked."""
    if width is None or height is None:
        raise ValueError("bytes= needs width= and height=")
    if pixel_format is not None:
        fmt = ImageFormat(width, height, pixel_format=pixel_format)
    elif color_model is not None and datatype is not None:
        fmt = ImageFormat(width, height, color_model=color_model, channel_datatype=datatype)
    else:
        raise ValueError(
            "bytes= needs either pixel_format=, or both color_model= and datatype= "
            f"(got pixel_format={pixel_format!r}, color_model={color_model!r}, datatype={datatype!r})"
        )
    buf = _bytes_view(data)
    msg = formats.validate(_nbytes(buf), fmt)
    if msg is not None:
        raise ValueError(msg)
    return buf, fmt


def as_byte_rows(data: Any, what: str = "buffer"):
    """Split an (N, ...) array (or a list of blobs) into N private byte blobs.

    Returns a 2-D uint8 array (N, bytes per frame) for array input, so chunks can
    slice it without copying, or a list of blobs for list input.

    Every frame keeps all its bytes, whatever the dtype or rank (Rerun's version
    silently truncates non-uint8 and 3-D input). One copy of the whole batch is made;
    the rows are views into it.
    """
    if isinstance(data, (list, tuple)):
        return [_bytes_view(b, what) for b in data]
    arr, owned = _to_numpy(data)
    if arr.ndim == 0:
        raise ValueError(f"{what}: expected an (N, ...) array of frames, got a scalar")
    if arr.ndim == 1 and arr.dtype == np.uint8:
        return [_bytes_view(arr, what)]  # one blob, as Rerun's ImageBuffer(bytes) does
    le = _le_dtype(arr.dtype)
    if not (owned and le == arr.dtype and arr.flags.c_contiguous):
        arr = POOL.copy(arr, le)
    n = arr.shape[0]
    return arr.reshape(n, -1).view(np.uint8) if n else np.zeros((0, 0), np.uint8)


def check_buffer(buf: Any, fmt: Optional[ImageFormat]) -> Optional[str]:
    """formats.validate for a blob, or None when there is no format to check against."""
    if fmt is None or buf is None:
        return None
    return formats.validate(_nbytes(buf), fmt)


# The Rerun 0.41 pixel format holding the same samples, where one exists (a lossless rewrite).
_RERUN_SAME_SAMPLES = {
    formats.PixelFormat.UYVY: "YUY2 (the same samples in Y0 U Y1 V order)",
    formats.PixelFormat.NV21: "NV12 (the same planes, U and V swapped)",
    formats.PixelFormat.I420: "NV12 (the same samples, the U and V planes interleaved)",
}
_warned: set = set()  # (entity, pixel format) said once in this process
_warned_lock = threading.Lock()


def warn_not_shown_by_rerun(entity: str, fmts: Iterable[Optional[ImageFormat]]) -> None:
    """Say once per (entity, pixel format) when a logged row uses one of pixelrun's own
    pixel formats (values from 200 on): the row is kept (pixelrun reads it), but Rerun
    0.41 cannot decode it (checked with ``rerun rrd verify`` and its viewer)."""
    own = {f.pixel_format for f in fmts if f is not None and f.pixel_format is not None} - RERUN_PIXEL_FORMATS
    for pf in own:
        with _warned_lock:
            if (entity, pf) in _warned:
                continue
            _warned.add((entity, pf))
        name = formats.PixelFormat(pf).name
        instead = _RERUN_SAME_SAMPLES.get(pf)
        warnings.warn(RerunCompatibilityWarning(
            f"{entity}: pixel format {name} ({int(pf)}) is pixelrun's own; the image is logged and pixelrun shows "
            f"it, but Rerun 0.41 cannot read it: `rerun rrd verify` rejects the recording and Rerun's viewer "
            f"discards this entity's ImageFormat ('deserialization failed ... data discarded'), so it shows "
            f"no image there" + (f"; to be seen in Rerun, log it as {instead}" if instead else "")),
            stacklevel=user_stacklevel())


def array_to_single_channel(image: Any, what: str) -> tuple[Any, ImageFormat]:
    """(flat bytes, ImageFormat with only width, height and datatype) for a 2-D array of
    values (DepthImage, SegmentationImage): size-1 axes squeezed as for Image; the
    format has no color model, as Rerun 0.41 writes these archetypes."""
    try:
        buf, fmt = array_to_image(image, ColorModel.L)
    except ValueError as exc:
        raise ValueError(f"{what} expects a 2-D (H, W) array of values: {exc}") from None
    return buf, ImageFormat(fmt.width, fmt.height, channel_datatype=fmt.channel_datatype)
