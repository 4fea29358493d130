"""The archetype table: every archetype pixelrun reads and writes, declared once.

An archetype is Rerun 0.41's name for it, its components in order and the draw order
an entity gets when it logs none (contract §4). Each component carries what every
layer needs: the field name (``buffer``), the column name Rerun writes
(``Image:buffer``, the rule is ``<short archetype name>:<field>``), the Rerun component
type (``rerun.components.ImageBuffer``), the Arrow type of one instance (the column is
a list of them), and whether an entity needs it to be drawn at all.

Everything else is derived from this table: the chunk's column metadata and type
checks (chunk.py), the SDK's components, ``rr.Image`` and its column builders, the
store's default kept components, the scene's latest-at query. Adding an archetype
means adding one entry to ARCHETYPES (plus its decode and draw logic).

This module imports nothing from the project, so every layer can import it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

__all__ = [
    "ComponentSpec",
    "Archetype",
    "BLOB_TYPE",
    "IMAGE_FORMAT_STRUCT",
    "IMAGE",
    "ARCHETYPES",
    "DRAWABLE",
    "COMPONENTS",
    "DRAWABLE_COLUMNS",
]

# Arrow types of one component instance, as Rerun 0.41 writes them.
BLOB_TYPE = pa.list_(pa.field("item", pa.uint8(), nullable=False))
IMAGE_FORMAT_STRUCT = pa.struct(
    [
        pa.field("width", pa.uint32(), nullable=False),
        pa.field("height", pa.uint32(), nullable=False),
        pa.field("pixel_format", pa.uint8()),
        pa.field("color_model", pa.uint8()),
        pa.field("channel_datatype", pa.uint8()),
    ]
)


@dataclass(frozen=True)
class ComponentSpec:
    """One component of one archetype (one column of a chunk)."""

    archetype: str  # "rerun.archetypes.Image"
    field: str  # "buffer"
    column: str  # "Image:buffer"
    component_type: str  # "rerun.components.ImageBuffer"
    arrow_type: pa.DataType  # one instance; the column is a list of these
    required: bool  # an entity without it is not drawn


@dataclass(frozen=True)
class Archetype:
    """An archetype: its Rerun name, its components in order, its default draw order."""

    name: str
    components: tuple[ComponentSpec, ...]
    default_draw_order: float

    @property
    def short_name(self) -> str:
        """``Image`` for ``rerun.archetypes.Image``: the prefix of its column names."""
        return self.name.rsplit(".", 1)[-1]

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names of every component, in the table's order."""
        return tuple(c.column for c in self.components)

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns an entity needs (all found by latest-at) to be drawn."""
        return tuple(c.column for c in self.components if c.required)

    @property
    def optional_columns(self) -> tuple[str, ...]:
        """Columns looked up on their own, with a default when absent."""
        return tuple(c.column for c in self.components if not c.required)

    def component(self, field: str) -> ComponentSpec:
        """The component called `field` (KeyError naming the archetype's fields if none)."""
        for c in self.components:
            if c.field == field:
                return c
        raise KeyError(f"{self.name} has no field {field!r} (fields: {', '.join(c.field for c in self.components)})")

    def column(self, field: str) -> str:
        """Column name of the component called `field` (``Image:buffer``)."""
        return self.component(field).column


def _archetype(name: str, default_draw_order: float, *components: tuple[str, str, pa.DataType, bool]) -> Archetype:
    """An Archetype from (field, component type, Arrow type, required) rows; the
    column names follow Rerun's ``<short name>:<field>`` rule."""
    short = name.rsplit(".", 1)[-1]
    return Archetype(
        name,
        tuple(ComponentSpec(name, f, f"{short}:{f}", ctype, typ, req) for f, ctype, typ, req in components),
        default_draw_order,
    )


# ------------------------------------------------------------------------ the table

IMAGE = _archetype(
    "rerun.archetypes.Image",
    -10.0,  # contract §4: an Image with no DrawOrder sits below other 2D content
    ("buffer", "rerun.components.ImageBuffer", BLOB_TYPE, True),
    ("format", "rerun.components.ImageFormat", IMAGE_FORMAT_STRUCT, True),
    ("opacity", "rerun.components.Opacity", pa.float32(), False),
    ("draw_order", "rerun.components.DrawOrder", pa.float32(), False),
)

ARCHETYPES: tuple[Archetype, ...] = (IMAGE,)

# Archetypes the scene draws (and the store therefore keeps by default).
DRAWABLE: tuple[Archetype, ...] = (IMAGE,)

# Column name -> its component, over every archetype.
COMPONENTS: dict[str, ComponentSpec] = {c.column: c for a in ARCHETYPES for c in a.components}

# Every column of every drawable archetype.
DRAWABLE_COLUMNS: frozenset[str] = frozenset(c for a in DRAWABLE for c in a.columns)
