"""The Image archetype (``rr.Image``), seed-era and current API in one class.

Its component columns, their order and their Arrow types come from the archetype table
(pixelrun.engine.archetypes.IMAGE); this module adds Rerun's constructors.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pyarrow as pa

from pixelrun.components import (
    ComponentColumn,
    DrawOrder,
    ImageBuffer,
    Opacity,
)
from pixelrun.engine.archetypes import BLOB_TYPE, IMAGE, IMAGE_FORMAT_STRUCT, Archetype
from pixelrun.image_input import array_to_image, as_byte_rows, bytes_to_image
from pixelrun.kernels import formats

__all__ = ["Image", "Indicator"]

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
    return as_byte_rows(values, "Image.columns(buffer=)")


def _format_rows(column: str, values: Any) -> list:
    return [_to_format(f) for f in (values if isinstance(values, (list, tuple)) else [values])]


def _float_rows(column: str, values: Any) -> list:
    try:
        return [float(v) for v in np.asarray(values, dtype=np.float32).reshape(-1)]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{column}: {exc}") from exc


# Arrow type of one instance (from the archetype table) -> per-row values for
# ``Image.columns`` (a ValueError says what is wrong with the input).
_COLUMN_VALUES = {BLOB_TYPE: _blob_rows, IMAGE_FORMAT_STRUCT: _format_rows, pa.float32(): _float_rows}


class Image:
    """A raw image: one buffer of bytes plus the ImageFormat that says what they mean.

    ``Image(image=None, color_model=None, *, pixel_format=None, datatype=None,
    bytes=None, width=None, height=None, opacity=None, draw_order=None)`` (contract §1).

    Construction never raises on bad pixel data: the reason is kept and reported
    when the image is logged, with the entity path (warning, or ValueError in strict
    mode). Passing neither `image` nor `bytes` always raises.
    """

    archetype: Archetype = IMAGE  # its components, in order (engine/archetypes.py)

    def __init__(
        self,
        image: Any = None,
        color_model: Any = None,
        *,
        pixel_format: Any = None,
        datatype: Any = None,
        bytes: Any = None,  # noqa: A002 - Rerun's keyword
        width: Optional[int] = None,
        height: Optional[int] = None,
        opacity: Any = None,
        draw_order: Any = None,
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

    # --- what the recording stream consumes

    def as_row(self) -> dict:
        """Component name -> value for one row (empty when the input was bad)."""
        return {} if self.error else dict(self._row)

    @property
    def format(self) -> Optional[formats.ImageFormat]:
        return self._row.get(_FORMAT)

    @property
    def buffer(self):
        return self._row.get(_BUFFER)

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
        format: Any = None,  # noqa: A002 - Rerun's keyword
        opacity: Any = None,
        draw_order: Any = None,
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
        return self

    @classmethod
    def columns(
        cls,
        *,
        buffer: Any = None,
        format: Any = None,  # noqa: A002
        opacity: Any = None,
        draw_order: Any = None,
    ) -> list[ComponentColumn]:
        """Columns for ``send_columns``: `buffer` is any (N, ...) array or a list of
        blobs, split per frame by bytes (never truncated). `format`, `opacity` and
        `draw_order` are one value (repeated for every row) or one per row."""
        given = {"buffer": buffer, "format": format, "opacity": opacity, "draw_order": draw_order}
        cols: list[ComponentColumn] = []
        for spec in cls.archetype.components:  # the table's order
            vals = given[spec.field]
            if vals is None:
                continue
            try:
                cols.append(ComponentColumn(spec.column, _COLUMN_VALUES[spec.arrow_type](spec.column, vals)))
            except ValueError as exc:
                cols.append(ComponentColumn(spec.column, [], str(exc)))
        return cols

    def __repr__(self) -> str:
        fmt = self.format
        return f"Image({fmt.describe() if fmt else 'partial'}{', error: ' + self.error if self.error else ''})"
