"""The colormap tables (kernels/colormaps.py) against Rerun 0.41 itself (RERUN_SHOWS, measured
from Rerun's own viewer: rerun_colormap_samples.py) and against the colormap functions.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from rerun_colormap_samples import RERUN_SHOWS, TRANSPARENT_IN_RERUN

from pixelrun.kernels.colormaps import (
    TABLE_SIZE,
    Colormap,
    colormap_srgba,
    colormap_table,
    colormap_tables,
    table_index,
    table_index_exact,
)

ROOT = Path(__file__).resolve().parents[2]
RERUN_PYTHON = ROOT / ".venv-rerun" / "bin" / "python"



def _q(x) -> np.ndarray:
    return np.floor(np.clip(np.asarray(x, np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.int16)


@pytest.mark.parametrize("cmap", list(Colormap), ids=[c.name for c in Colormap])
def test_table_matches_what_rerun_shows(cmap):
    table = colormap_table(cmap)
    for k, rgb in enumerate(RERUN_SHOWS[cmap]):
        entry = table[k * (TABLE_SIZE - 1) // 15]  # t = k / 15 exactly: 255 k
        if (cmap, k) in TRANSPARENT_IN_RERUN:
            assert entry[3] == 0, (cmap.name, k, entry.tolist())
            continue
        assert entry[3] == 255, (cmap.name, k, entry.tolist())
        diff = np.abs(entry[:3].astype(int) - rgb).max()
        assert diff <= 1, f"{cmap.name} t={k}/15: table {entry[:3].tolist()}, Rerun shows {list(rgb)}"


@pytest.mark.parametrize("cmap", list(Colormap), ids=[c.name for c in Colormap])
def test_table_is_within_one_lsb_of_the_function(cmap):
    """The module docstring's measurement: table lookup vs evaluating the colormap at the
    exact t, for 2**20 + 1 evenly spaced t and every U16 value over [0, 65535]; and
    neighbouring entries at most 1 apart (a float backend one entry off stays within 1)."""
    t = np.concatenate([np.linspace(0.0, 1.0, 2**20 + 1), np.arange(65536) / 65535.0])
    table = colormap_table(cmap).astype(np.int16)
    exact = _q(colormap_srgba(cmap, t))
    assert np.abs(table[table_index(t)] - exact).max() <= 1
    assert np.abs(np.diff(table, axis=0)).max() <= 1 or cmap in (
        Colormap.RvizMap, Colormap.RvizCostmap, Colormap.Costmap)  # step palettes jump by design


def test_exact_index_equals_rounding_the_exact_ratio():
    v = np.arange(-40000, 70000, 7)
    for lo, hi in [(0, 255), (0, 65535), (-32768, 32767), (100, 3000), (5, 6)]:
        want = np.floor(np.clip((v - lo) / (hi - lo), 0, 1) * (TABLE_SIZE - 1) + 0.5)
        # float64 is exact enough here to be the oracle except at exact ties, which the
        # integer formula rounds up like floor(x + 0.5)
        assert np.array_equal(table_index_exact(v, lo, hi), want.astype(np.intp)), (lo, hi)


def test_u8_full_range_is_the_colormap_at_v_over_255():
    """255 divides TABLE_SIZE - 1: a byte over [0, 255] hits the entry whose t is v / 255."""
    v = np.arange(256)
    assert np.array_equal(table_index_exact(v, 0, 255), v * (TABLE_SIZE - 1) // 255)


def test_rviz_palettes_follow_rvizs_rules():
    """The RViz map / costmap meanings (rviz map_display.cpp, as Rerun 0.41 documents
    them), for the byte values of an occupancy grid."""
    def at(cmap, value):
        return colormap_table(cmap)[value * (TABLE_SIZE - 1) // 255].tolist()

    assert at(Colormap.RvizMap, 0) == [255, 255, 255, 255]  # free
    assert at(Colormap.RvizMap, 100) == [0, 0, 0, 255]  # occupied
    assert at(Colormap.RvizMap, 50) == [128, 128, 128, 255]  # 255 - 127.5, rounded half up
    for v in (101, 127):
        assert at(Colormap.RvizMap, v) == [0, 255, 0, 255]  # illegal positive: green
    assert at(Colormap.RvizMap, 128) == [255, 0, 0, 255]  # illegal negative: red ..
    assert at(Colormap.RvizMap, 254) == [255, 255, 0, 255]  # .. to yellow
    assert at(Colormap.RvizMap, 255) == [112, 137, 134, 255]  # -1: unknown
    assert at(Colormap.RvizCostmap, 0)[3] == 0  # free: transparent
    assert at(Colormap.RvizCostmap, 99) == [0, 255, 255, 255]  # inscribed: cyan
    assert at(Colormap.RvizCostmap, 100) == [255, 0, 255, 255]  # lethal: magenta
    assert at(Colormap.RvizCostmap, 1) == [3, 0, 252, 255]  # cost 1: x = 2.55 / 255
    assert at(Colormap.Costmap, 0)[3] == 0
    assert at(Colormap.Costmap, 99) == [215, 47, 33, 255]  # Rerun red
    assert at(Colormap.Costmap, 100) == [24, 106, 221, 255]  # Rerun blue


def test_tables_are_read_only_and_unknown_colormaps_are_named():
    with pytest.raises(ValueError):
        colormap_tables()[5, 0, 0] = 1
    with pytest.raises(ValueError, match="unknown colormap 13"):
        colormap_table(13)


@pytest.mark.skipif(not RERUN_PYTHON.exists(), reason="real rerun 0.41 not installed in .venv-rerun")
def test_enum_values_are_rerun_s():
    code = "import json, rerun as rr; print(json.dumps({c.name: int(c.value) for c in rr.components.Colormap}))"
    out = subprocess.run([str(RERUN_PYTHON), "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == {c.name: int(c.value) for c in Colormap}
