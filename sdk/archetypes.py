"""The image family: ``rr.Image`` (seed-era and current API in one class), and Rerun
0.41's ``DepthImage``, ``SegmentationImage``, ``EncodedImage`` and ``AnnotationContext``.

Their component columns, order and Arrow types come from the archetype table
(pixelrun.engine.archetypes); this module adds Rerun's constructors. Construction never
raises on bad values: the reason is kept and reported when logged, with the entity path.
"""

from __future__ import annotations

import io
import pathlib
from typing import Any, Callable, Optional

import numpy as np
import pyarrow as pa
from PIL import Image as PILImage

from pixelrun import errors
from pixelrun.batcher import build_column
from pixelrun.components import (
    Colormap,
    ComponentColumn,
    DrawOrder,
    ImageBuffer,
    MagnificationFilter,
    MediaType,
    Opacity,
    Range1D,
    parse_enum,
    parse_float,
    parse_range,
)
from pixelrun.engine.archetypes import (
    ANNOTATION_CONTEXT,
    BLOB_TYPE,
    DEPTH_IMAGE,
    ENCODED_IMAGE,
    ENUM_TYPE,
    IMAGE,
    IMAGE_FORMAT_STRUCT,
    RANGE1D_TYPE,
    SEGMENTATION_IMAGE,
    Archetype,
)
from pixelrun.image_input import (
    _bytes_view,
    array_to_image,
    array_to_single_channel,
    as_byte_rows,
    bytes_to_image,
    guess_media_type,
    resolve_buffer,
)
from pixelrun.kernels import formats
from pixelrun.kernels.formats import ChannelDatatype, ColorModel

__all__ = [
    "Image", "Indicator", "DepthImage", "SegmentationImage", "EncodedImage",
    "AnnotationContext", "AnnotationInfo", "ClassDescription",
]

_BUFFER, _FORMAT = IMAGE.column("buffer"), IMAGE.column("format")


class Indicator:
    """``Image.indicator()``: marks an entity as an archetype. Carries no data (Rerun
    0.41 dropped indicator columns), so logging it alone is a no-op."""

    component_name = None

    def __init__(self, archetype: Archetype = IMAGE) -> None:
        self.archetype = archetype

    def as_row(self) -> dict:
        return {}

    def __repr__(self) -> str:
        return f"Indicator({self.archetype.name})"


def _to_format(value: Any) -> Optional[formats.ImageFormat]:
    if value is None:
        return None
    if isinstance(value, formats.ImageFormat):
        return value
    raise ValueError(f"format= expects an ImageFormat, got {type(value).__name__}")


def _blob_rows(column: str, values: Any) -> list:
    return as_byte_rows(values, column)


def _format_rows(column: str, values: Any) -> list:
    return [_to_format(f) for f in (values if isinstance(values, (list, tuple)) else [values])]


def _float_rows(column: str, values: Any) -> list:
    try:
        return [float(v) for v in np.asarray(values, dtype=np.float32).reshape(-1)]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{column}: {exc}") from exc


def _per_row(values: Any) -> list:
    return list(values) if isinstance(values, (list, tuple, np.ndarray)) else [values]


def _range_rows(column: str, values: Any) -> list:
    """One [min, max] (for every row), an (N, 2) array, or a list of ranges."""
    if isinstance(values, Range1D):
        return [parse_range(values, column)]
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):  # e.g. a list of Range1D: one range per row
        return [parse_range(v, column) for v in values]
    if arr.ndim == 1:
        return [parse_range(arr, column)]
    return [parse_range(v, column) for v in arr]


def _magnification_rows(column: str, values: Any) -> list:
    return [parse_enum(MagnificationFilter, v, column) for v in _per_row(values)]


# Arrow type of one instance (from the archetype table) -> per-row values for
# ``Image.columns`` (a ValueError says what is wrong with the input).
_COLUMN_VALUES = {
    BLOB_TYPE: _blob_rows, IMAGE_FORMAT_STRUCT: _format_rows, pa.float32(): _float_rows,
    ENUM_TYPE: _magnification_rows, RANGE1D_TYPE: _range_rows,
}


def _optional(row: dict, archetype: Archetype, field: str, value: Any,
              parse: Callable[[Any, str], Any]) -> Optional[str]:
    """Put `field` (when given) into `row` as parsed; the reason when it is bad."""
    if value is None:
        return None
    column = archetype.column(field)
    try:
        row[column] = parse(value, column)
    except ValueError as exc:
        return str(exc)
    return None


def _magnification(value: Any, what: str) -> int:
    return parse_enum(MagnificationFilter, value, what)


def _colormap(value: Any, what: str) -> int:
    return parse_enum(Colormap, value, what)


class ComponentBatch:
    """One component of an archetype as Rerun's ``*Batch`` objects expose it
    (``Image.buffer`` is an ImageBufferBatch, ``Image.format`` an ImageFormatBatch in
    Rerun 0.41): ``as_arrow_array()`` gives the instances as Rerun's Arrow array (built
    on first use), ``==`` compares those arrays, ``value`` is the plain value."""

    def __init__(self, column: str, value: Any) -> None:
        self.column = column
        self.value = value
        self._arrow: Optional[pa.Array] = None

    def as_arrow_array(self) -> pa.Array:
        if self._arrow is None:
            self._arrow = build_column(self.column, [self.value]).flatten()  # the row's instances
        return self._arrow

    def __len__(self) -> int:
        return 1

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ComponentBatch):
            return self.column == other.column and self.as_arrow_array().equals(other.as_arrow_array())
        if isinstance(other, pa.Array):
            return self.as_arrow_array().equals(other)
        return NotImplemented

    __hash__ = None  # mutable comparison semantics, like Rerun's batches

    def __repr__(self) -> str:
        return f"ComponentBatch({self.column!r}, {self.value!r})"


class Image:
    """A raw image: one buffer of bytes plus the ImageFormat that says what they mean.

    ``Image(image=None, color_model=None, *, pixel_format=None, datatype=None,
    bytes=None, width=None, height=None, opacity=None, draw_order=None,
    magnification_filter=None, value_range=None)`` (contract §1).

    `magnification_filter`: "nearest" (default) or "linear". `value_range`: pixelrun's
    extension, ``[min, max]`` of the values shown black to white (a component Rerun
    ignores); without it the colour-model rules of the contract apply.

    Bad pixel data raises ValueError at construction in strict mode (as Rerun);
    otherwise the reason is kept and reported when the image is logged, with the
    entity path (a warning, or ValueError when that log call or recording is
    strict). Passing neither `image` nor `bytes` always raises. ``buffer`` and
    ``format`` are `ComponentBatch` objects, as Rerun's tests compare them.
    """

    archetype: Archetype = IMAGE  # its components, in order (engine/archetypes.py)

    def __init__(
        self,
        image: Any = None,
        color_model: Any = None,
        *,
        pixel_format: Any = None,
        datatype: Any = None,
        bytes: Any = None,  # Rerun's keyword
        width: Optional[int] = None,
        height: Optional[int] = None,
        opacity: Any = None,
        draw_order: Any = None,
        magnification_filter: Any = None,
        value_range: Any = None,
    ) -> None:
        if image is None and bytes is None:
            raise ValueError("rr.Image needs either image= (an array) or bytes= (with a format)")
        if image is not None and bytes is not None:
            raise ValueError("rr.Image takes image= or bytes=, not both")
        self.error: Optional[str] = None
        self._row: dict = {}
        try:
            if image is not None:
                buf, fmt = array_to_image(image, color_model)
            else:
                buf, fmt = bytes_to_image(bytes, width, height, pixel_format, color_model, datatype)
            self._row[_BUFFER] = buf
            self._row[_FORMAT] = fmt
        except ValueError as exc:
            self.error = str(exc)
        for comp in (Opacity(opacity) if opacity is not None else None,
                     DrawOrder(draw_order) if draw_order is not None else None):
            if comp is None:
                continue
            if comp.error and not self.error:
                self.error = comp.error
            self._row[comp.component_name] = comp.value
        self._extras(magnification_filter, value_range)
        if self.error and errors.is_strict():
            raise ValueError(f"rr.Image: {self.error}")

    def _extras(self, magnification_filter: Any, value_range: Any) -> None:
        for field, value, parse in (("magnification_filter", magnification_filter, _magnification),
                                    ("value_range", value_range, parse_range)):
            err = _optional(self._row, IMAGE, field, value, parse)
            self.error = self.error or err

    # --- what the recording stream consumes

    def as_row(self) -> dict:
        """Component name -> value for one row (empty when the input was bad)."""
        return {} if self.error else dict(self._row)

    @property
    def format(self) -> Optional[ComponentBatch]:
        """The ImageFormat as Rerun's ImageFormatBatch (``.value``: the ImageFormat)."""
        fmt = self._row.get(_FORMAT)
        return None if fmt is None else ComponentBatch(_FORMAT, fmt)

    @property
    def buffer(self) -> Optional[ComponentBatch]:
        """The pixel bytes as Rerun's ImageBufferBatch (``.value``: the bytes)."""
        buf = self._row.get(_BUFFER)
        return None if buf is None else ComponentBatch(_BUFFER, buf)

    # --- alternative constructors

    @staticmethod
    def indicator() -> Indicator:
        """The (data-less) Image indicator, for seed-era code."""
        return Indicator(IMAGE)

    @classmethod
    def from_fields(
        cls,
        *,
        clear_unset: bool = False,
        buffer: Any = None,
        format: Any = None,  # Rerun's keyword
        opacity: Any = None,
        draw_order: Any = None,
        magnification_filter: Any = None,
        value_range: Any = None,
    ) -> "Image":
        """A partial Image with only the given fields (e.g. a static format).

        `clear_unset` is accepted for API compatibility; clearing is not supported
        and it is ignored.
        """
        self = cls.__new__(cls)
        self.error = None
        self._row = {}
        try:
            if buffer is not None:
                self._row[_BUFFER] = ImageBuffer(buffer).value
            if format is not None:
                self._row[_FORMAT] = _to_format(format)
            if buffer is not None and format is not None:
                msg = formats.validate(len(self._row[_BUFFER]), self._row[_FORMAT])
                if msg:
                    raise ValueError(msg)
        except ValueError as exc:
            self.error = str(exc)
        for comp in (Opacity(opacity) if opacity is not None else None,
                     DrawOrder(draw_order) if draw_order is not None else None):
            if comp is not None:
                if comp.error and not self.error:
                    self.error = comp.error
                self._row[comp.component_name] = comp.value
        self._extras(magnification_filter, value_range)
        return self

    @classmethod
    def columns(
        cls,
        *,
        buffer: Any = None,
        format: Any = None,  # Rerun's keyword
        opacity: Any = None,
        draw_order: Any = None,
        magnification_filter: Any = None,
        value_range: Any = None,
    ) -> list[ComponentColumn]:
        """Columns for ``send_columns``: `buffer` is any (N, ...) array or a list of
        blobs, split per frame by bytes (never truncated). The others are one value
        (repeated for every row) or one per row."""
        given = {"buffer": buffer, "format": format, "opacity": opacity, "draw_order": draw_order,
                 "magnification_filter": magnification_filter, "value_range": value_range}
        return _component_columns(cls.archetype, given)

    def compress(self, jpeg_quality: int = 95) -> "EncodedImage | Image":
        """This image as a JPEG EncodedImage (Pillow), like Rerun 0.41: only U8 images
        with color model L, RGB or BGR compress; for anything else (RGBA, 16-bit,
        pixel formats, a bad image) a PixelrunWarning says why and the image itself
        is returned (ValueError in strict mode). Opacity and draw order are not carried
        over (Rerun's compress drops them too)."""
        fmt, buf = self._row.get(_FORMAT), self._row.get(_BUFFER)
        if self.error or fmt is None or buf is None:
            reason = f"cannot JPEG compress an image without data ({self.error or 'partial image'})"
        elif fmt.pixel_format is not None or fmt.color_model not in (ColorModel.L, ColorModel.RGB, ColorModel.BGR):
            reason = (f"cannot JPEG compress a {fmt.describe()} image: only L (monochrome), RGB and BGR "
                      "are supported")
        elif fmt.datatype != ChannelDatatype.U8:
            reason = f"cannot JPEG compress a {fmt.describe()} image: only U8 is supported"
        else:
            pixels = np.frombuffer(resolve_buffer(buf), dtype=np.uint8)
            if fmt.color_model == ColorModel.L:
                pixels = pixels.reshape(fmt.height, fmt.width)
            else:
                pixels = pixels.reshape(fmt.height, fmt.width, 3)
                if fmt.color_model == ColorModel.BGR:
                    pixels = pixels[:, :, ::-1]
            out = io.BytesIO()
            PILImage.fromarray(np.ascontiguousarray(pixels)).save(out, format="JPEG", quality=int(jpeg_quality))
            return EncodedImage(contents=out.getvalue(), media_type="image/jpeg")
        errors.report(f"Image.compress: {reason}; the raw image is kept")
        return self

    def __repr__(self) -> str:
        fmt = self.format
        return f"Image({fmt.describe() if fmt else 'partial'}{', error: ' + self.error if self.error else ''})"


# ------------------------------------------------------------------ the image family


def _each_row(parse: Callable[[Any, str], Any]) -> Callable[[str, Any], list]:
    """A column's values from a one-value parser: one value (for every row) or one per row."""
    return lambda column, values: [parse(v, column) for v in _per_row(values)]


def _component_columns(archetype: Archetype, given: dict) -> list[ComponentColumn]:
    """The ``send_columns`` columns of `archetype` from field -> values (None: not sent),
    in the table's order. A field whose values cannot be read becomes a column carrying
    the reason (send_columns reports it and sends nothing); an unknown field raises
    TypeError, as an unexpected keyword does."""
    owner = archetype.short_name
    specs = {spec.field: spec for spec in archetype.components}
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise TypeError(f"{owner}.columns() got unexpected keyword argument(s) {', '.join(unknown)} "
                        f"(its fields: {', '.join(specs)})")
    # by field where one Arrow type has several meanings (two enums), else by Arrow type
    by_field = {"colormap": _each_row(_colormap), "media_type": _each_row(_media_type)}
    cols: list[ComponentColumn] = []
    for spec in archetype.components:
        vals = given.get(spec.field)
        if vals is None:
            continue
        parse = by_field.get(spec.field) or _COLUMN_VALUES.get(spec.arrow_type)
        if parse is None:
            cols.append(ComponentColumn(spec.column, [], f"{owner}.columns({spec.field}=): not supported as a "
                                                        "column; log it per row with rr.log"))
            continue
        try:
            cols.append(ComponentColumn(spec.column, parse(spec.column, vals)))
        except ValueError as exc:
            cols.append(ComponentColumn(spec.column, [], str(exc)))
    return cols


class _Archetype:
    """One row of an archetype: column -> value, or the reason it cannot be logged."""

    archetype: Archetype

    def __init__(self) -> None:
        self.error: Optional[str] = None
        self._row: dict = {}

    def _set(self, field: str, value: Any, parse: Callable[[Any, str], Any]) -> None:
        err = _optional(self._row, self.archetype, field, value, parse)
        self.error = self.error or err

    def _set_image(self, image: Any) -> None:
        try:
            buf, fmt = array_to_single_channel(image, self.archetype.short_name)
        except ValueError as exc:
            self.error = self.error or str(exc)
            return
        self._row[self.archetype.column("buffer")] = buf
        self._row[self.archetype.column("format")] = fmt

    def as_row(self) -> dict:
        """Component name -> value for one row (empty when the input was bad)."""
        return {} if self.error else dict(self._row)

    @classmethod
    def indicator(cls) -> Indicator:
        """The (data-less) indicator, for seed-era code."""
        return Indicator(cls.archetype)

    @classmethod
    def columns(cls, **fields: Any) -> list[ComponentColumn]:
        """Columns for ``send_columns``, Rerun 0.41's ``<Archetype>.columns(...)``: one
        keyword per field of the archetype (``DepthImage.columns(buffer=, format=, meter=,
        colormap=, depth_range=, ...)``). `buffer`/`blob`: an (N, ...) array or a list of
        blobs, one per row; the others one value (for every row) or one per row."""
        return _component_columns(cls.archetype, fields)

    def __repr__(self) -> str:
        fields = ", ".join(c.split(":", 1)[1] for c in self._row)
        return f"{type(self).__name__}({fields}{', error: ' + self.error if self.error else ''})"


class DepthImage(_Archetype):
    """A depth image: one value per pixel (any integer or float dtype), Rerun 0.41's
    ``DepthImage(image, *, meter=None, colormap=None, depth_range=None,
    point_fill_ratio=None, draw_order=None, magnification_filter=None)``.

    `meter`: units per meter (e.g. 1000 for millimetres); `colormap`: a Colormap or its
    name (Rerun's default Turbo when absent); `depth_range`: ``[min, max]`` mapped onto
    the colormap (estimated from the data when absent)."""

    archetype = DEPTH_IMAGE

    def __init__(self, image: Any, *, meter: Any = None, colormap: Any = None, depth_range: Any = None,
                 point_fill_ratio: Any = None, draw_order: Any = None, magnification_filter: Any = None) -> None:
        super().__init__()
        self._set_image(image)
        self._set("meter", meter, parse_float)
        self._set("colormap", colormap, _colormap)
        self._set("depth_range", depth_range, parse_range)
        self._set("point_fill_ratio", point_fill_ratio, parse_float)
        self._set("draw_order", draw_order, parse_float)
        self._set("magnification_filter", magnification_filter, _magnification)


class SegmentationImage(_Archetype):
    """A class-id image (integer dtype; ids resolve through the AnnotationContext of the
    entity or its nearest ancestor): ``SegmentationImage(image, *, opacity=None,
    draw_order=None)``."""

    archetype = SEGMENTATION_IMAGE

    def __init__(self, image: Any, *, opacity: Any = None, draw_order: Any = None) -> None:
        super().__init__()
        self._set_image(image)
        self._set("opacity", opacity, parse_float)
        self._set("draw_order", draw_order, parse_float)


class EncodedImage(_Archetype):
    """An encoded image file (JPEG, PNG, ...): ``EncodedImage(*, path=None,
    contents=None, media_type=None, opacity=None, draw_order=None,
    magnification_filter=None)``.

    Exactly one of `path` and `contents` (raises otherwise, like ``rr.Image`` without
    data). Without `media_type` it is guessed from the path's suffix, else from the
    bytes (JPEG and PNG magic; Rerun 0.41's SDK refuses `contents` without a media
    type, its viewer guesses the same way); when nothing matches it is left out and
    the viewer guesses."""

    archetype = ENCODED_IMAGE

    def __init__(self, *, path: Any = None, contents: Any = None, media_type: Any = None, opacity: Any = None,
                 draw_order: Any = None, magnification_filter: Any = None) -> None:
        super().__init__()
        if (path is None) == (contents is None):
            raise ValueError("rr.EncodedImage needs exactly one of path= and contents=")
        blob = None
        try:
            if path is not None:
                blob = pathlib.Path(path).read_bytes()
                media_type = media_type or MediaType.guess_from_path(path)
            else:
                if hasattr(contents, "read"):  # a file object (BytesIO, BufferedReader)
                    contents = contents.read()
                blob = _bytes_view(contents, "EncodedImage contents")
        except (OSError, ValueError) as exc:
            self.error = f"EncodedImage: cannot read {path if path is not None else 'contents'}: {exc}"
            return
        self._row[self.archetype.column("blob")] = blob
        if media_type is None:
            media_type = guess_media_type(blob)
        self._set("media_type", media_type, _media_type)
        self._set("opacity", opacity, parse_float)
        self._set("draw_order", draw_order, parse_float)
        self._set("magnification_filter", magnification_filter, _magnification)

    @property
    def blob(self) -> Any:
        return self._row.get(self.archetype.column("blob"))

    @property
    def media_type(self) -> Optional[str]:
        return self._row.get(self.archetype.column("media_type"))


def _media_type(value: Any, what: str) -> str:
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"{what}: expected a media type such as 'image/jpeg', got {value!r}")
    return str(value)  # a plain str, also for a MediaType constant


def _color(value: Any, what: str) -> Optional[int]:
    """Rerun's Rgba32 (0xRRGGBBAA) from a packed int or 3/4 components (ints 0-255, or
    floats 0-1 as Rerun reads them); alpha 255 when not given."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if not 0 <= int(value) <= 0xFFFFFFFF:
            raise ValueError(f"{what}: a packed colour must fit 0xRRGGBBAA, got {value!r}")
        return int(value)
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.size not in (3, 4) or not (np.issubdtype(arr.dtype, np.integer)
                                                       or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{what}: expected an RGB or RGBA colour, got {value!r}")
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.round(np.clip(arr, 0.0, 1.0) * 255.0)
    if (arr < 0).any() or (arr > 255).any():
        raise ValueError(f"{what}: colour components must be 0-255, got {value!r}")
    rgba = [int(v) for v in arr] + ([255] if arr.size == 3 else [])
    return (rgba[0] << 24) | (rgba[1] << 16) | (rgba[2] << 8) | rgba[3]


def _class_id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= 0xFFFF:
        raise ValueError(f"{what}: a class id must be an integer 0-65535, got {value!r}")
    return int(value)


class AnnotationInfo:
    """A class (or keypoint) id with an optional label and colour: ``AnnotationInfo(id,
    label=None, color=None)``."""

    def __init__(self, id: Any, label: Optional[str] = None, color: Any = None) -> None:
        self.id, self.label, self.color = id, label, color

    def _struct(self, what: str) -> dict:
        if self.label is not None and not isinstance(self.label, str):
            raise ValueError(f"{what}: a label must be a string, got {self.label!r}")
        return {"id": _class_id(self.id, what), "label": self.label, "color": _color(self.color, what)}

    def __repr__(self) -> str:
        return f"AnnotationInfo(id={self.id!r}, label={self.label!r}, color={self.color!r})"


def _info(value: Any, what: str) -> AnnotationInfo:
    """An AnnotationInfo from itself, an id, or an (id, label[, color]) tuple."""
    if isinstance(value, AnnotationInfo):
        return value
    if isinstance(value, (int, np.integer)):
        return AnnotationInfo(value)
    if isinstance(value, (tuple, list)) and 1 <= len(value) <= 3:
        return AnnotationInfo(*value)
    raise ValueError(f"{what}: expected an AnnotationInfo, an id or (id, label, color), got {value!r}")


class ClassDescription:
    """A class's info plus its keypoints: ``ClassDescription(*, info,
    keypoint_annotations=(), keypoint_connections=())``."""

    def __init__(self, *, info: Any, keypoint_annotations: Any = (), keypoint_connections: Any = ()) -> None:
        self.info, self.keypoint_annotations, self.keypoint_connections = (
            info, keypoint_annotations, keypoint_connections)

    def _element(self, what: str) -> dict:
        info = _info(self.info, what)._struct(what)
        keypoints = [_info(k, what)._struct(what) for k in self.keypoint_annotations or ()]
        connections = []
        for pair in self.keypoint_connections or ():
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"{what}: a keypoint connection is a pair of ids, got {pair!r}")
            connections.append({"keypoint0": _class_id(pair[0], what), "keypoint1": _class_id(pair[1], what)})
        return {"class_id": info["id"], "class_description": {
            "info": info, "keypoint_annotations": keypoints, "keypoint_connections": connections}}


class AnnotationContext(_Archetype):
    """Labels and colours for class ids, for the entity and everything under it (the
    nearest ancestor's context applies): ``AnnotationContext(context)`` where `context`
    is a sequence of ClassDescription, AnnotationInfo or (id, label[, color]) tuples.
    Usually logged static."""

    archetype = ANNOTATION_CONTEXT

    def __init__(self, context: Any) -> None:
        super().__init__()
        self._set("context", context, _context)


def _context(value: Any, what: str) -> list:
    if isinstance(value, (ClassDescription, AnnotationInfo)) or not isinstance(value, (list, tuple)):
        value = [value]
    elements = []
    for item in value:
        desc = item if isinstance(item, ClassDescription) else ClassDescription(info=_info(item, what))
        elements.append(desc._element(what))
    ids = [e["class_id"] for e in elements]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{what}: class ids must be unique, got {ids}")
    return elements
