"""Chunk <-> Arrow record batch: Rerun 0.41's schema, names, types and metadata.

Expected schemas below are written out by hand from files the real rerun-sdk 0.41
wrote (dissected byte by byte), not derived from the code under test.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pixelrun.engine import chunk as ch
from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat, PixelFormat

CHUNK_ID = bytes.fromhex("18EAEBB962CC376C7b37c7be313fc466")


def _image_chunk() -> ch.Chunk:
    row_ids = np.array([[0x18EAEBB962CC376C, 0x7B37C7BE313FC467],
                        [0x18EAEBB962CC376C, 0x7B37C7BE313FC468]], dtype=np.uint64)
    return ch.Chunk(
        "images",
        row_ids,
        {"step": ch.TimeColumn("sequence", np.array([0, 1], dtype=np.int64)),
         "log_time": ch.TimeColumn("timestamp", np.array([5, 7], dtype=np.int64))},
        {
            ch.IMAGE_BUFFER: ch.buffer_column([b"\x01\x02\x03", None]),
            ch.IMAGE_FORMAT: ch.format_column([
                ImageFormat(1, 1, color_model=ColorModel.RGB, channel_datatype=ChannelDatatype.U8),
                ImageFormat(4, 2, pixel_format=PixelFormat.NV12),
            ]),
            ch.IMAGE_OPACITY: ch.float_column([None, 0.25]),
        },
        CHUNK_ID,
    )


def test_schema_matches_rerun_041():
    rb = _image_chunk().to_record_batch()
    s = rb.schema
    assert s.names == ["rerun.controls.RowId", "log_time", "step",
                       "Image:buffer", "Image:format", "Image:opacity"]
    assert s.metadata == {
        b"rerun:entity_path": b"/images",
        b"rerun:id": b"chunk_18EAEBB962CC376C7b37c7be313fc466",
        b"sorbet:version": b"0.1.4",
    }
    rid = s.field("rerun.controls.RowId")
    assert rid.type == pa.binary(16) and not rid.nullable
    assert rid.metadata == {
        b"ARROW:extension:metadata": b'{"namespace":"row"}',
        b"ARROW:extension:name": b"rerun.datatypes.TUID",
        b"rerun:is_sorted": b"true",
        b"rerun:kind": b"control",
    }
    assert s.field("step").type == pa.int64()
    assert s.field("log_time").type == pa.timestamp("ns")
    assert s.field("step").metadata == {b"rerun:index_name": b"step", b"rerun:is_sorted": b"true",
                                        b"rerun:kind": b"index"}
    buf = s.field("Image:buffer")
    assert str(buf.type) == "list<item: list<item: uint8 not null>>"
    assert buf.metadata == {
        b"rerun:archetype": b"rerun.archetypes.Image",
        b"rerun:component": b"Image:buffer",
        b"rerun:component_type": b"rerun.components.ImageBuffer",
        b"rerun:kind": b"data",
    }
    fmt_t = s.field("Image:format").type.value_type
    assert [(f.name, str(f.type), f.nullable) for f in fmt_t] == [
        ("width", "uint32", False), ("height", "uint32", False), ("pixel_format", "uint8", True),
        ("color_model", "uint8", True), ("channel_datatype", "uint8", True)]
    assert s.field("Image:opacity").type == pa.list_(pa.float32())
    assert s.field("Image:opacity").metadata[b"rerun:component_type"] == b"rerun.components.Opacity"


def test_values_and_row_id_bytes():
    rb = _image_chunk().to_record_batch()
    # Row ids are big-endian (time_ns, counter): bytes sort like ids.
    assert rb.column(0)[0].as_py() == bytes.fromhex("18EAEBB962CC376C7B37C7BE313FC467")
    assert rb.column("Image:buffer").to_pylist() == [[[1, 2, 3]], None]
    assert rb.column("Image:format").to_pylist() == [
        [{"width": 1, "height": 1, "pixel_format": None, "color_model": 2, "channel_datatype": 6}],
        [{"width": 4, "height": 2, "pixel_format": 26, "color_model": None, "channel_datatype": None}],
    ]
    assert rb.column("Image:opacity").to_pylist() == [None, [0.25]]
    assert rb.column("log_time").cast(pa.int64()).to_pylist() == [5, 7]


def test_round_trip_is_exact():
    c = _image_chunk()
    back = ch.from_record_batch(c.to_record_batch())
    assert back.entity_path == "/images"
    assert back.chunk_id == CHUNK_ID
    np.testing.assert_array_equal(back.row_ids, c.row_ids)
    assert {k: (v.kind, v.values.tolist()) for k, v in back.timelines.items()} == {
        "step": ("sequence", [0, 1]), "log_time": ("timestamp", [5, 7])}
    assert back.to_record_batch().equals(c.to_record_batch())
    assert ch.formats_from_column(back.components[ch.IMAGE_FORMAT]) == [
        ImageFormat(1, 1, color_model=ColorModel.RGB, channel_datatype=ChannelDatatype.U8),
        ImageFormat(4, 2, pixel_format=PixelFormat.NV12),
    ]
    assert bytes(ch.buffer_row(back.components[ch.IMAGE_BUFFER], 0)) == b"\x01\x02\x03"
    assert ch.buffer_row(back.components[ch.IMAGE_BUFFER], 1) is None


def test_static_chunk_has_no_index_columns():
    c = ch.Chunk("/s", np.array([[1, 2]], dtype=np.uint64), {},
                 {ch.IMAGE_DRAW_ORDER: ch.float_column([3.0])}, bytes(16))
    rb = c.to_record_batch()
    assert rb.schema.names == ["rerun.controls.RowId", "Image:draw_order"]
    back = ch.from_record_batch(rb)
    assert back.is_static and back.components[ch.IMAGE_DRAW_ORDER].to_pylist() == [[3.0]]


def test_unsorted_timeline_is_not_marked_sorted():
    c = ch.Chunk("/u", np.array([[1, 1], [1, 2]], dtype=np.uint64),
                 {"t": ch.TimeColumn("duration", np.array([9, 3]))},
                 {ch.IMAGE_OPACITY: ch.float_column([1.0, 1.0])}, bytes(16))
    f = c.to_record_batch().schema.field("t")
    assert f.type == pa.duration("ns")
    assert b"rerun:is_sorted" not in f.metadata


def test_buffer_column_from_2d_rows_is_zero_copy_and_exact():
    frames = np.arange(12, dtype=np.uint8).reshape(3, 4)
    col = ch.buffer_column(frames)
    assert col.to_pylist() == [[[0, 1, 2, 3]], [[4, 5, 6, 7]], [[8, 9, 10, 11]]]
    leaf = col.values.values
    assert leaf.buffers()[1].address == frames.ctypes.data


def test_unknown_components_keep_their_metadata():
    meta = {"rerun:archetype": "rerun.archetypes.TextLog", "rerun:component": "TextLog:text",
            "rerun:component_type": "rerun.components.Text", "rerun:kind": "data"}
    c = ch.Chunk("/w", np.array([[1, 1]], dtype=np.uint64), {},
                 {"TextLog:text": pa.array([["hi"]], type=pa.list_(pa.string()))}, bytes(16),
                 {"TextLog:text": meta})
    back = ch.from_record_batch(c.to_record_batch())
    assert back.component_meta["TextLog:text"] == meta
    assert back.components["TextLog:text"].to_pylist() == [["hi"]]


def test_not_a_rerun_batch_is_refused_with_reason():
    rb = pa.RecordBatch.from_pydict({"x": [1]})
    with pytest.raises(ValueError, match="rerun:entity_path"):
        ch.from_record_batch(rb)


def test_mismatched_lengths_are_refused():
    c = ch.Chunk("/m", np.array([[1, 1], [1, 2]], dtype=np.uint64), {},
                 {ch.IMAGE_OPACITY: ch.float_column([1.0])}, bytes(16))
    with pytest.raises(ValueError, match="Image:opacity.*1 rows, expected 2"):
        c.to_record_batch()


# ------------------------------------------- damaged batches are refused (issue 11)


def _with_field(rb: pa.RecordBatch, name: str, field: pa.Field, column=None) -> pa.RecordBatch:
    i = rb.schema.get_field_index(name)
    schema = rb.schema.set(i, field)
    cols = list(rb.columns)
    if column is not None:
        cols[i] = column
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def test_a_known_component_with_another_type_is_refused():
    rb = _image_chunk().to_record_batch()
    f = rb.schema.field(ch.IMAGE_FORMAT)
    col = rb.column(ch.IMAGE_FORMAT)
    inner = col.values
    renamed = pa.StructArray.from_arrays(
        [inner.field(i) for i in range(inner.type.num_fields)],
        fields=[pa.field("height" if x.name == "width" else ("width" if x.name == "height" else x.name),
                         x.type, x.nullable) for x in inner.type])
    swapped = pa.ListArray.from_arrays(col.offsets, renamed)
    bad = _with_field(rb, ch.IMAGE_FORMAT, pa.field(f.name, swapped.type, metadata=f.metadata), swapped)
    with pytest.raises(ValueError, match="component 'Image:format' has type"):
        ch.from_record_batch(bad)


def test_the_two_copies_of_a_timeline_name_must_agree():
    rb = _image_chunk().to_record_batch()
    f = rb.schema.field("log_time")
    meta = dict(f.metadata)
    meta[b"rerun:index_name"] = b"lo\x00_time"
    with pytest.raises(ValueError, match=r"timeline column 'log_time' is named 'lo\\x00_time'"):
        ch.from_record_batch(_with_field(rb, "log_time", f.with_metadata(meta)))


def test_a_timeline_marked_sorted_must_be_sorted():
    rb = _image_chunk().to_record_batch()
    f = rb.schema.field("step")
    assert f.metadata[b"rerun:is_sorted"] == b"true"
    with pytest.raises(ValueError, match="marked sorted but its values are not"):
        ch.from_record_batch(_with_field(rb, "step", f, pa.array([1, 0], pa.int64())))


def test_printable_escapes_control_characters():
    assert ch.printable("a\x00b\nc") == "a\\x00b\\nc"
    assert ch.printable("x" * 500, 20) == "x" * 17 + "..."
