"""engine/arrow_numpy.py: Arrow -> NumPy without pyarrow's to_numpy (which imports pandas
on first use, and made a live viewer's first frames ~200 ms late)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

from pixelrun.engine.arrow_numpy import fixed_width_values, validity_mask

TYPES = [pa.int8(), pa.uint16(), pa.int32(), pa.uint32(), pa.int64(), pa.float32(), pa.float64(),
         pa.timestamp("ns"), pa.duration("ns")]


@pytest.mark.parametrize("typ", TYPES, ids=str)
@pytest.mark.parametrize("offset,length", [(0, 37), (5, 20), (36, 1), (10, 0)])
def test_values_and_validity_match_python_values_for_slices_with_nulls(typ, offset, length):
    py = [None if i % 7 == 3 else (i * 3) % 100 for i in range(37)]
    arr = pa.array(py, pa.int64()).cast(typ)[offset: offset + length]
    expect = py[offset: offset + length]
    mask = validity_mask(arr)
    assert mask.tolist() == [v is not None for v in expect]
    vals = fixed_width_values(arr, np.float64 if pa.types.is_floating(typ) else np.int64)
    assert len(vals) == len(expect)
    assert [float(v) for v, ok in zip(vals, mask) if ok] == [float(v) for v in expect if v is not None]


def test_a_same_type_result_is_a_read_only_view():
    arr = pa.array(np.arange(10, dtype=np.uint8))[2:6]
    v = fixed_width_values(arr, np.uint8)
    assert v.tolist() == [2, 3, 4, 5] and not v.flags.writeable and not v.flags.owndata


def test_no_nulls_and_all_nulls():
    assert validity_mask(pa.array([1, 2, 3], pa.int32())).tolist() == [True, True, True]
    assert validity_mask(pa.array([None, None], pa.int32())).tolist() == [False, False]
    assert validity_mask(pa.nulls(3)).tolist() == [False, False, False]


def test_other_types_fall_back_to_pyarrow():
    assert fixed_width_values(pa.array([True, False, True]), np.uint8).tolist() == [1, 0, 1]


def test_decoding_a_stream_does_not_import_pandas(tmp_path):
    """A viewer's first chunk must not pay for importing pandas (measured: ~0.25 s, which
    held a live stream's first frames back ~200 ms)."""
    pytest.importorskip("pandas")  # without pandas there is nothing to import
    script = textwrap.dedent("""
        import sys
        import numpy as np
        from pixelrun.engine.rrd import read_rrd
        assert "pandas" not in sys.modules, "imported before decoding"
        chunks = read_rrd(sys.argv[1]).chunks
        assert any(c.entity_path == "/cam" for c in chunks), [c.entity_path for c in chunks]
        print("pandas" in sys.modules)
    """)
    path = tmp_path / "one.rrd"
    writer = textwrap.dedent("""
        import sys
        import numpy as np
        import pixelrun as rr
        rr.init("arrow_numpy_test")
        rr.save(sys.argv[1])
        rr.set_time("frame", sequence=0)
        rr.set_time("t", timestamp=1.5)
        rr.log("cam", rr.Image(np.zeros((4, 6, 3), np.uint8)))
        rr.disconnect()
    """)
    subprocess.run([sys.executable, "-c", writer, str(path)], check=True, timeout=120)
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
