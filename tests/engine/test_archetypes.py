"""The archetype table (engine/archetypes.py) against Rerun 0.41, and every layer reading it.

The Rerun names and Arrow types below are written out here, independently of the
table, as Rerun 0.41's SDK writes them (what tests/engine/test_rrd.py checks in files).
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pyarrow as pa
import pytest

import pixelrun as rr
from pixelrun import components as sdk_components
from pixelrun.batcher import build_column
from pixelrun.engine import archetypes, chunk, scene
from pixelrun.engine.archetypes import IMAGE, ComponentSpec
from pixelrun.engine.store.store import IMAGE_COMPONENTS, ChunkStore

RERUN_IMAGE = "rerun.archetypes.Image"
RERUN_IMAGE_COMPONENTS = [  # (column, component type, Arrow type of one instance)
    ("Image:buffer", "rerun.components.ImageBuffer", pa.list_(pa.field("item", pa.uint8(), nullable=False))),
    ("Image:format", "rerun.components.ImageFormat", pa.struct([
        pa.field("width", pa.uint32(), nullable=False),
        pa.field("height", pa.uint32(), nullable=False),
        pa.field("pixel_format", pa.uint8()),
        pa.field("color_model", pa.uint8()),
        pa.field("channel_datatype", pa.uint8()),
    ])),
    ("Image:opacity", "rerun.components.Opacity", pa.float32()),
    ("Image:draw_order", "rerun.components.DrawOrder", pa.float32()),
    ("Image:magnification_filter", "rerun.components.MagnificationFilter", pa.uint8()),
]


def test_image_entry_matches_rerun_041():
    assert IMAGE.name == RERUN_IMAGE
    got = [(c.column, c.component_type, c.arrow_type) for c in IMAGE.components if not c.extension]
    assert [g[:2] for g in got] == [r[:2] for r in RERUN_IMAGE_COMPONENTS]
    for (column, _, typ), (_, _, want) in zip(got, RERUN_IMAGE_COMPONENTS):
        assert typ.equals(want, check_metadata=True), column
        assert str(typ) == str(want), column  # nullability of list items and fields too
    assert [c.field for c in IMAGE.components] == [
        "buffer", "format", "opacity", "draw_order", "magnification_filter", "value_range"]
    # pixelrun's extension, typed like Rerun's ValueRange; the only one
    assert [(c.column, c.component_type, str(c.arrow_type)) for c in IMAGE.components if c.extension] == [
        ("Image:value_range", "rerun.components.ValueRange", "fixed_size_list<item: double not null>[2]")]
    assert all(c.archetype == RERUN_IMAGE for c in IMAGE.components)
    # contract §4: buffer and format are needed to draw; opacity 1.0 and draw order -10 by default
    assert IMAGE.required_columns == ("Image:buffer", "Image:format")
    assert IMAGE.optional_columns == (
        "Image:opacity", "Image:draw_order", "Image:magnification_filter", "Image:value_range")
    assert IMAGE.default_draw_order == -10.0
    with pytest.raises(KeyError, match="no field 'bytes'.*buffer, format"):
        IMAGE.column("bytes")


def test_chunk_metadata_and_types_come_from_the_table():
    for column, ctype, typ in RERUN_IMAGE_COMPONENTS:
        assert chunk.component_metadata(column) == {
            "rerun:archetype": RERUN_IMAGE, "rerun:component": column,
            "rerun:component_type": ctype, "rerun:kind": "data",
        }
        chunk.check_component_type("/e", column, pa.list_(pa.field("item", typ)))
    with pytest.raises(ValueError, match="Image:opacity.*expected"):
        chunk.check_component_type("/e", "Image:opacity", pa.list_(pa.float64()))
    aliases = (chunk.IMAGE_BUFFER, chunk.IMAGE_FORMAT, chunk.IMAGE_OPACITY, chunk.IMAGE_DRAW_ORDER)
    assert aliases == IMAGE.columns[:4]


def test_one_table_entry_is_enough_to_write_and_check_a_new_component(monkeypatch):
    """A component added to the table is built by the batcher, described in the
    chunk's metadata and type-checked on read, with no other edit."""
    spec = ComponentSpec("rerun.archetypes.Fake", "gain", "Fake:gain", "rerun.components.Gain", pa.float32(), False)
    monkeypatch.setitem(archetypes.COMPONENTS, spec.column, spec)
    col = build_column("Fake:gain", [0.5, None])
    assert col.type.value_type == pa.float32() and col.to_pylist() == [[0.5], None]
    assert chunk.component_metadata("Fake:gain")["rerun:component_type"] == "rerun.components.Gain"
    with pytest.raises(ValueError, match="Fake:gain"):
        chunk.check_component_type("/e", "Fake:gain", pa.list_(pa.utf8()))
    with pytest.raises(ValueError, match="unknown component 'Nope:x'"):
        build_column("Nope:x", [1.0])


def test_batcher_builds_each_image_column_with_the_tables_type():
    fmt = rr.components.ImageFormat(2, 1, color_model="L", channel_datatype="U8").as_row()["Image:format"]
    values = {"Image:buffer": [b"ab", None], "Image:format": [fmt, None],
              "Image:opacity": [0.5, None], "Image:draw_order": [1.0, None],
              "Image:magnification_filter": [2, None]}
    for column, _, typ in RERUN_IMAGE_COMPONENTS:
        col = build_column(column, values[column])
        assert chunk.loose_type(col.type).equals(chunk.loose_type(pa.list_(pa.field("item", typ)))), column
        assert col.null_count == 1


def test_sdk_image_follows_the_table():
    assert rr.Image.archetype is IMAGE
    assert repr(rr.Image.indicator()) == "Indicator(rerun.archetypes.Image)"
    keywords = [p.name for p in inspect.signature(rr.Image.columns).parameters.values()
                if p.kind is p.KEYWORD_ONLY]
    assert keywords == [c.field for c in IMAGE.components]
    fmt = rr.components.ImageFormat(2, 1, color_model="L", channel_datatype="U8")
    cols = rr.Image.columns(buffer=np.zeros((3, 2), np.uint8), format=fmt, opacity=0.5, draw_order=[1, 2, 3],
                            magnification_filter="linear", value_range=[0, 1])
    assert [c.component_name for c in cols] == list(IMAGE.columns)
    assert all(c.error is None for c in cols)
    classes = [sdk_components.ImageBuffer, sdk_components.ImageFormat, sdk_components.Opacity,
               sdk_components.DrawOrder]
    assert tuple(c.component_name for c in classes) == IMAGE.columns[:4]
    image = rr.Image(bytes=b"ab", width=2, height=1, color_model="L", datatype="U8", opacity=1, draw_order=0,
                     magnification_filter="nearest", value_range=(0, 255))
    assert tuple(image.as_row()) == IMAGE.columns


def test_store_keeps_every_drawable_component_by_default():
    read = archetypes.DRAWABLE + archetypes.SCENE_INPUTS  # what the scene draws, and what it reads for them
    assert IMAGE_COMPONENTS == frozenset(c for a in read for c in a.columns)
    assert IMAGE in archetypes.DRAWABLE
    assert ChunkStore()._keep == IMAGE_COMPONENTS


class _SpyStore:
    """Answers the scene's questions with nothing, remembering what it was asked."""

    def __init__(self) -> None:
        self.asked: list = []

    def entities(self, under=None, with_component=None):
        self.asked.append(("entities", with_component))
        return ["/a"]

    def latest_at(self, entity, components, timeline, time):
        self.asked.append(("latest_at", tuple(components)))
        return {}


def test_scene_asks_the_store_for_the_tables_components():
    spy = _SpyStore()
    assert scene.scene_at(spy, "t", 0) == []
    # every drawable archetype, each for the entities holding its first required
    # component, with all of its components in the table's order
    assert spy.asked == [q for a in archetypes.DRAWABLE
                         for q in (("entities", a.required_columns[0]), ("latest_at", a.columns))]
    assert spy.asked[:2] == [("entities", "Image:buffer"), ("latest_at", IMAGE.columns)]


def test_scene_defaults_draw_order_from_the_table():
    rec = rr.RecordingStream("archetypes-test")
    mem = rec.memory_recording()
    rec.log("img", rr.Image(bytes=b"\x10\x20", width=2, height=1, color_model="L", datatype="U8"), static=True)
    rec.flush()
    store = ChunkStore()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.ingest_bytes(mem.rrd_bytes())
    (layer,) = scene.scene_at(store, None, None)
    assert layer.draw_order == IMAGE.default_draw_order == scene.DEFAULT_IMAGE_DRAW_ORDER
    rec.close()
