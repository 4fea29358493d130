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
from typing import Optional

import pyarrow as pa

__all__ = [
    "ComponentSpec",
    "Archetype",
    "BLOB_TYPE",
    "IMAGE_FORMAT_STRUCT",
    "ENUM_TYPE",
    "FLOAT32_TYPE",
    "RANGE1D_TYPE",
    "UTF8_TYPE",
    "ANNOTATION_CONTEXT_TYPE",
    "IMAGE",
    "DEPTH_IMAGE",
    "SEGMENTATION_IMAGE",
    "ENCODED_IMAGE",
    "ANNOTATION_CONTEXT",
    "ARCHETYPES",
    "BUFFER_FORMAT_COLUMNS",
    "DRAWABLE",
    "SCENE_INPUTS",
    "COMPONENTS",
    "DRAWABLE_COLUMNS",
    "archetype_of",
    "undrawn_archetypes",
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
ENUM_TYPE = pa.uint8()  # Rerun's enums (Colormap, MagnificationFilter): 1-based uint8
FLOAT32_TYPE = pa.float32()  # Opacity, DrawOrder, DepthMeter, FillRatio
RANGE1D_TYPE = pa.list_(pa.field("item", pa.float64(), nullable=False), 2)  # ValueRange: [min, max]
UTF8_TYPE = pa.utf8()  # MediaType
# AnnotationContext: one instance is a list of ClassDescriptionMapElem (class id ->
# ClassDescription: an AnnotationInfo plus keypoint annotations and connections).
_ANNOTATION_INFO = pa.struct(
    [
        pa.field("id", pa.uint16(), nullable=False),
        pa.field("label", pa.utf8()),
        pa.field("color", pa.uint32()),  # 0xRRGGBBAA
    ]
)
_CLASS_DESCRIPTION = pa.struct(
    [
        pa.field("info", _ANNOTATION_INFO, nullable=False),
        pa.field("keypoint_annotations", pa.list_(pa.field("item", _ANNOTATION_INFO, nullable=False)), nullable=False),
        pa.field(
            "keypoint_connections",
            pa.list_(pa.field("item", pa.struct([
                pa.field("keypoint0", pa.uint16(), nullable=False),
                pa.field("keypoint1", pa.uint16(), nullable=False),
            ]), nullable=False)),
            nullable=False,
        ),
    ]
)
ANNOTATION_CONTEXT_TYPE = pa.list_(
    pa.field(
        "item",
        pa.struct([
            pa.field("class_id", pa.uint16(), nullable=False),
            pa.field("class_description", _CLASS_DESCRIPTION, nullable=False),
        ]),
        nullable=False,
    )
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
    # pixelrun's own component of a Rerun archetype: written without rerun:archetype
    # metadata (as a bare component), since `rerun rrd verify` refuses fields Rerun's
    # archetype does not have.
    extension: bool = False


@dataclass(frozen=True)
class Archetype:
    """An archetype: its Rerun name, its components in order, its default draw order."""

    name: str
    components: tuple[ComponentSpec, ...]
    default_draw_order: float  # NaN for archetypes that are not layers (AnnotationContext)

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


def _archetype(name: str, default_draw_order: float, *components: tuple) -> Archetype:
    """An Archetype from (field, component type, Arrow type, required[, extension])
    rows; the column names follow Rerun's ``<short name>:<field>`` rule."""
    short = name.rsplit(".", 1)[-1]
    return Archetype(
        name,
        tuple(ComponentSpec(name, row[0], f"{short}:{row[0]}", *row[1:]) for row in components),
        default_draw_order,
    )


# ------------------------------------------------------------------------ the table

_OPACITY = ("opacity", "rerun.components.Opacity", FLOAT32_TYPE, False)
_DRAW_ORDER = ("draw_order", "rerun.components.DrawOrder", FLOAT32_TYPE, False)
_MAGNIFICATION = ("magnification_filter", "rerun.components.MagnificationFilter", ENUM_TYPE, False)
_BUFFER = ("buffer", "rerun.components.ImageBuffer", BLOB_TYPE, True)
_FORMAT = ("format", "rerun.components.ImageFormat", IMAGE_FORMAT_STRUCT, True)

IMAGE = _archetype(
    "rerun.archetypes.Image",
    -10.0,  # contract §4: an Image with no DrawOrder sits below other 2D content
    _BUFFER,
    _FORMAT,
    _OPACITY,
    _DRAW_ORDER,
    _MAGNIFICATION,
    # pixelrun's extension (Rerun 0.41's Image has no range; its viewer ignores the
    # column): the display range of the values, typed like DepthImage:depth_range.
    ("value_range", "rerun.components.ValueRange", RANGE1D_TYPE, False, True),
)

# The image family as Rerun 0.41 writes it (fields in its order; checked against files
# its SDK wrote).
DEPTH_IMAGE = _archetype(
    "rerun.archetypes.DepthImage",
    -20.0,  # Rerun's default: depth below images
    _BUFFER,
    _FORMAT,  # channel_datatype only (no color model)
    ("meter", "rerun.components.DepthMeter", FLOAT32_TYPE, False),
    ("colormap", "rerun.components.Colormap", ENUM_TYPE, False),
    ("depth_range", "rerun.components.ValueRange", RANGE1D_TYPE, False),
    ("point_fill_ratio", "rerun.components.FillRatio", FLOAT32_TYPE, False),
    _DRAW_ORDER,
    _MAGNIFICATION,
)

SEGMENTATION_IMAGE = _archetype(
    "rerun.archetypes.SegmentationImage",
    0.0,  # Rerun's default: segmentation above images
    _BUFFER,
    _FORMAT,  # channel_datatype only (no color model)
    _OPACITY,
    _DRAW_ORDER,
)

ENCODED_IMAGE = _archetype(
    "rerun.archetypes.EncodedImage",
    -10.0,  # drawn like an Image
    ("blob", "rerun.components.Blob", BLOB_TYPE, True),
    ("media_type", "rerun.components.MediaType", UTF8_TYPE, False),  # absent: guessed from the bytes
    _OPACITY,
    _DRAW_ORDER,
    _MAGNIFICATION,
)

ANNOTATION_CONTEXT = _archetype(
    "rerun.archetypes.AnnotationContext",
    float("nan"),  # not a layer: class ids -> labels and colours for its subtree
    ("context", "rerun.components.AnnotationContext", ANNOTATION_CONTEXT_TYPE, True),
)

ARCHETYPES: tuple[Archetype, ...] = (IMAGE, DEPTH_IMAGE, SEGMENTATION_IMAGE, ENCODED_IMAGE, ANNOTATION_CONTEXT)

# Archetypes the scene draws, each as one layer per entity (engine/scene.py builds them;
# the store keeps their components by default).
DRAWABLE: tuple[Archetype, ...] = (IMAGE, DEPTH_IMAGE, SEGMENTATION_IMAGE, ENCODED_IMAGE)

# Archetypes the scene reads without drawing them: an AnnotationContext colours the
# SegmentationImages under it. Kept by the store, and not named "not drawn".
SCENE_INPUTS: tuple[Archetype, ...] = (ANNOTATION_CONTEXT,) if SEGMENTATION_IMAGE in DRAWABLE else ()

# (buffer column, format column) of every archetype whose pixels are an ImageBuffer
# described by an ImageFormat (Image, DepthImage, SegmentationImage): where the SDK checks
# a buffer's size against its format.
BUFFER_FORMAT_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (a.column("buffer"), a.column("format")) for a in ARCHETYPES
    if {"buffer", "format"} <= {c.field for c in a.components}
)

# Column name -> its component, over every archetype.
COMPONENTS: dict[str, ComponentSpec] = {c.column: c for a in ARCHETYPES for c in a.components}

# Every column the scene reads: those of the drawable archetypes and of SCENE_INPUTS.
DRAWABLE_COLUMNS: frozenset[str] = frozenset(c for a in DRAWABLE + SCENE_INPUTS for c in a.columns)


def archetype_of(column: str) -> Optional[str]:
    """The short archetype name a component column belongs to (``DepthImage`` for
    ``DepthImage:buffer``): from the table, else from Rerun 0.41's ``<Archetype>:<field>``
    naming (``Points2D:positions``); None for a column named otherwise."""
    known = COMPONENTS.get(column)
    if known is not None:
        return known.archetype.rsplit(".", 1)[-1]
    head, sep, _ = column.partition(":")
    return head if sep and head else None


_DRAWABLE_NAMES = frozenset(a.short_name for a in DRAWABLE + SCENE_INPUTS)


def undrawn_archetypes(entity: str, columns) -> list[str]:
    """The archetypes (short names, sorted) among an entity's component columns that the
    scene does not draw. Rerun's own property entities (``/__properties``) hold
    recording metadata, not content, and have none."""
    if entity.startswith("/__"):
        return []
    names = {archetype_of(c) for c in columns}
    return sorted(n for n in names if n is not None and n not in _DRAWABLE_NAMES)
