"""Image components, as ``rr.components.X`` (Rerun's names and column descriptors).

Each component knows its column name (``Image:buffer``..., from the archetype table in
pixelrun.engine.archetypes) and holds the values of
one or more rows. They can be logged alone or in a list
(``rr.log(path, [rr.components.ImageFormat(...), rr.Image.indicator()], static=True)``)
and passed to ``send_columns(components=[...])``.
"""

from __future__ import annotations

import enum
import os
from typing import Any, Optional

import numpy as np

from pixelrun.engine.archetypes import IMAGE
from pixelrun.image_input import _bytes_view, as_byte_rows
from pixelrun.kernels import formats
from pixelrun.kernels.colormaps import Colormap  # the one definition, with its tables

__all__ = [
    "ImageBuffer", "ImageBufferBatch", "ImageFormat", "Opacity", "DrawOrder", "ComponentColumn",
    "Colormap", "MagnificationFilter", "MediaType", "Range1D", "ValueRange", "parse_enum", "parse_range",
    "parse_float",
]


class ComponentColumn:
    """Values of one component for N rows (what ``send_columns`` consumes).

    `values` is a list (one value per row) or, for image buffers, a 2-D uint8 array
    with one row of bytes per frame. `error` holds the reason when the input was bad.
    """

    def __init__(self, name: str, values: Any, error: Optional[str] = None) -> None:
        self.component_name = name
        self.values = values
        self.error = error

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return f"ComponentColumn({self.component_name!r}, {len(self)} rows)"


class ImageBuffer:
    """One image's raw bytes (a Blob). Accepts bytes-like objects or arrays."""

    component_name = IMAGE.column("buffer")

    def __init__(self, data: Any) -> None:
        self.error: Optional[str] = None
        try:
            self.value = _bytes_view(data, "ImageBuffer")
        except ValueError as exc:
            self.value, self.error = None, str(exc)

    def as_row(self) -> dict:
        return {self.component_name: self.value}


class ImageBufferBatch(ComponentColumn):
    """Several image buffers: an (N, ...) array (split per frame by bytes) or a list."""

    component_name = IMAGE.column("buffer")

    def __init__(self, data: Any) -> None:
        try:
            super().__init__(self.component_name, as_byte_rows(data, "ImageBufferBatch"))
        except ValueError as exc:
            super().__init__(self.component_name, [], str(exc))

    def as_row(self) -> dict:
        # Logged with rr.log: a batch of one row (Rerun logs its first instance).
        return {self.component_name: self.values[-1] if len(self.values) else None}


class ImageFormat(formats.ImageFormat):
    """Resolution and pixel layout of an image (``rr.components.ImageFormat``).

    Same fields as the format table's ImageFormat (names or enums accepted):
    ``ImageFormat(width, height, *, pixel_format=None, color_model=None,
    channel_datatype=None)``.
    """

    component_name = IMAGE.column("format")

    def __init__(self, width: Any, height: Any, *, pixel_format: Any = None,
                 color_model: Any = None, channel_datatype: Any = None) -> None:
        try:
            super().__init__(width, height, pixel_format, color_model, channel_datatype)
            object.__setattr__(self, "error", None)
        except (TypeError, ValueError) as exc:
            # Like every bad input, reported when logged, with the entity path, as a
            # warning (or ValueError when strict); building the component never raises.
            for name, value in (("width", width), ("height", height), ("pixel_format", pixel_format),
                                ("color_model", color_model), ("channel_datatype", channel_datatype)):
                object.__setattr__(self, name, value)
            object.__setattr__(self, "error", f"ImageFormat: {exc}")

    def as_row(self) -> dict:
        return {self.component_name: formats.ImageFormat(
            self.width, self.height, pixel_format=self.pixel_format,
            color_model=self.color_model, channel_datatype=self.channel_datatype,
        )}


class _Float32Component:
    component_name = ""

    def __init__(self, value: Any) -> None:
        self.error: Optional[str] = None
        try:
            arr = np.asarray(value, dtype=np.float32).reshape(-1)
            if arr.size != 1:
                raise ValueError(f"expected one number, got {arr.size}")
            self.value = float(arr[0])
        except (TypeError, ValueError) as exc:
            self.value, self.error = None, f"{type(self).__name__}: {exc}"

    def __float__(self) -> float:
        return float(self.value)

    def as_row(self) -> dict:
        return {self.component_name: self.value}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value})"


class Opacity(_Float32Component):
    """Opacity multiplier of an image (float32; 1.0 opaque)."""

    component_name = IMAGE.column("opacity")


class DrawOrder(_Float32Component):
    """Layer order of an image in 2D views (float32; higher on top; default -10)."""

    component_name = IMAGE.column("draw_order")


# ------------------------------------------------------------ the image family's types


class MediaType(str):
    """A media type (MIME type) string, ``rr.components.MediaType``, with Rerun's named
    constants (``MediaType.JPEG`` == ``"image/jpeg"``...). A ``str``, so it goes wherever
    a media type string does (``EncodedImage(media_type=...)``)."""

    TEXT: "MediaType"
    MARKDOWN: "MediaType"
    JPEG: "MediaType"
    PNG: "MediaType"
    GLB: "MediaType"
    GLTF: "MediaType"
    OBJ: "MediaType"
    PLY: "MediaType"
    STL: "MediaType"
    RVL: "MediaType"
    MP4: "MediaType"
    AAC: "MediaType"
    FLAC: "MediaType"
    M4A: "MediaType"
    MP3: "MediaType"
    OGG: "MediaType"
    WAV: "MediaType"

    @staticmethod
    def guess_from_path(path: Any) -> Optional["MediaType"]:
        """The media type a file's suffix names (JPEG and PNG, the image family's), else None."""
        found = _IMAGE_SUFFIXES.get(os.path.splitext(str(path))[1].lower())
        return MediaType(found) if found else None


# Rerun 0.41's constants (rerun.components.MediaType), by attribute name.
for _name, _value in (("TEXT", "text/plain"), ("MARKDOWN", "text/markdown"), ("JPEG", "image/jpeg"),
                      ("PNG", "image/png"), ("GLB", "model/gltf-binary"), ("GLTF", "model/gltf+json"),
                      ("OBJ", "model/obj"), ("PLY", "application/x-ply"), ("STL", "model/stl"),
                      ("RVL", "application/rvl"), ("MP4", "video/mp4"), ("AAC", "audio/aac"),
                      ("FLAC", "audio/flac"), ("M4A", "audio/mp4"), ("MP3", "audio/mpeg"), ("OGG", "audio/ogg"),
                      ("WAV", "audio/wav")):
    setattr(MediaType, _name, MediaType(_value))
del _name, _value

_IMAGE_SUFFIXES = {".jpg": MediaType.JPEG, ".jpeg": MediaType.JPEG, ".png": MediaType.PNG}


class MagnificationFilter(enum.IntEnum):
    """How a texel shown larger than a screen pixel is sampled (Rerun 0.41; uint8)."""

    Nearest = 1  # Rerun's default
    Linear = 2
    Bicubic = 3


def parse_enum(enum_type: type[enum.IntEnum], value: Any, what: str) -> int:
    """The uint8 a Rerun enum is written as, from a member, its value or its name
    (any case, '_' and '-' ignored, as Rerun's Python SDK accepts); ValueError naming
    the choices otherwise."""
    if isinstance(value, enum_type):
        return int(value)
    if isinstance(value, str):
        key = value.replace("_", "").replace("-", "").lower()
        for m in enum_type:
            if m.name.lower() == key:
                return int(m)
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if int(value) in {int(m) for m in enum_type}:
            return int(value)
    raise ValueError(
        f"{what}: expected one of {', '.join(m.name for m in enum_type)} "
        f"(a {enum_type.__name__}, its name or value), got {value!r}"
    )


def parse_float(value: Any, what: str) -> float:
    """One finite-or-not float32 number (ValueError naming `what` otherwise)."""
    try:
        arr = np.asarray(value, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: expected one number, got {value!r} ({exc})") from None
    if arr.size != 1:
        raise ValueError(f"{what}: expected one number, got {arr.size}")
    return float(arr[0])


def parse_range(value: Any, what: str) -> tuple[float, float]:
    """(min, max) as two float64 numbers, from a Range1D or any 2-sequence; NaN refused
    (a range with NaN maps every value to nothing), min > max allowed (Rerun allows it)."""
    if isinstance(value, Range1D):
        value = (value.min, value.max)
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: expected [min, max], got {value!r} ({exc})") from None
    if arr.size != 2:
        raise ValueError(f"{what}: expected [min, max] (2 numbers), got {arr.size}")
    if np.isnan(arr).any():
        raise ValueError(f"{what}: expected [min, max] without NaN, got {arr.tolist()}")
    return float(arr[0]), float(arr[1])


class Range1D:
    """A [min, max] range of values (``rr.components.Range1D`` / ``ValueRange``)."""

    def __init__(self, range: Any) -> None:
        lo, hi = parse_range(range, "Range1D")
        self.min, self.max = lo, hi

    def __iter__(self):
        return iter((self.min, self.max))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Range1D) and (self.min, self.max) == (other.min, other.max)

    def __repr__(self) -> str:
        return f"{type(self).__name__}([{self.min}, {self.max}])"


class ValueRange(Range1D):
    """The range of values a colormap or display maps (Rerun's ``ValueRange``)."""
