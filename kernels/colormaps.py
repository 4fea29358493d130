"""Colormaps: the one definition of Rerun 0.41's colormaps, as lookup tables every backend uses.

Each colormap is written once here as a function of t in [0, 1] (Rerun 0.41's
``re_renderer/shader/colormap.wgsl``, evaluated in float64), and sampled once into a
table of `TABLE_SIZE` sRGB RGBA8 entries (straight alpha): entry i is the colormap at
t = i / (TABLE_SIZE - 1), rounded with q(). The NumPy reference indexes these arrays;
the WGSL and CUDA backends upload the same arrays as buffers. No shader restates a
colormap.

Index rule (contract §8): i = floor(clamp(t, 0, 1) * (TABLE_SIZE - 1) + 0.5). For
integer samples of at most 16 bits and an integer range lo < hi it is computed exactly,
i = floor((2 (TABLE_SIZE - 1) (v - lo) + d) / (2 d)) with d = hi - lo, v clamped to
[lo, hi] (the same shape as formats.py's exact byte formula), so all backends agree
bit for bit; float sources compute t in float (GPU: float32) and may differ by one
table step, at most 1 LSB.

Why TABLE_SIZE = 255 * 15 + 1 = 3826:
- 255 divides TABLE_SIZE - 1, so a U8 image over [0, 255] indexes entry 15 v, whose t is
  exactly v / 255: a byte depth or a full-range grey image is the colormap itself.
- 15 is odd, so the table steps never straddle Rerun's own quantisation of the RViz /
  costmap palettes (value = floor(t * 255 + 0.5)): the step palettes are exact.
- Measured (tests/kernels/test_colormaps.py re-measures it: 2**20 + 1 evenly spaced t
  and every U16 value over [0, 65535]) against evaluating Rerun's functions at the
  exact t: with 255 * k + 1 entries the worst error over all maps is 7 LSB for k = 1
  (a 256-entry table), 3 for k = 3, 2 for k = 5 and 1 from k = 7 on; with k = 15 also
  neighbouring entries differ by at most 1 LSB (k = 7: 2), so a float backend whose t
  lands one entry off is still within 1 LSB of the reference.
"""

from __future__ import annotations

import enum
from typing import Optional

import numpy as np

__all__ = [
    "Colormap",
    "DEFAULT_DEPTH_COLORMAP",
    "TABLE_SIZE",
    "colormap_srgba",
    "colormap_table",
    "colormap_tables",
    "table_index",
    "table_index_exact",
]


class Colormap(enum.IntEnum):
    """Rerun 0.41's colormaps (``rr.components.Colormap``; uint8 in files, 1-based)."""

    Grayscale = 1
    Inferno = 2
    Magma = 3
    Plasma = 4
    Turbo = 5  # DepthImage's default
    Viridis = 6
    CyanToYellow = 7
    Spectral = 8
    Twilight = 9
    RvizMap = 10
    RvizCostmap = 11
    Costmap = 12


DEFAULT_DEPTH_COLORMAP = Colormap.Turbo

TABLE_SIZE = 255 * 15 + 1

# --------------------------------------------------------------- the functions (float64)

# Degree-6 polynomials c0 + t (c1 + t (c2 + ...)) per channel, rows c0..c6, columns R, G, B
# (Rerun's fits of matplotlib's maps, and its Spectral / Twilight fits).
_POLY6 = {
    Colormap.Viridis: [
        (0.2777273272234177, 0.005407344544966578, 0.3340998053353061),
        (0.1050930431085774, 1.404613529898575, 1.384590162594685),
        (-0.3308618287255563, 0.214847559468213, 0.09509516302823659),
        (-4.634230498983486, -5.799100973351585, -19.33244095627987),
        (6.228269936347081, 14.17993336680509, 56.69055260068105),
        (4.776384997670288, -13.74514537774601, -65.35303263337234),
        (-5.435455855934631, 4.645852612178535, 26.3124352495832),
    ],
    Colormap.Plasma: [
        (0.05873234392399702, 0.02333670892565664, 0.5433401826748754),
        (2.176514634195958, 0.2383834171260182, 0.7539604599784036),
        (-2.689460476458034, -7.455851135738909, 3.110799939717086),
        (6.130348345893603, 42.3461881477227, -28.51885465332158),
        (-11.10743619062271, -82.66631109428045, 60.13984767418263),
        (10.02306557647065, 71.41361770095349, -54.07218655560067),
        (-3.658713842777788, -22.93153465461149, 18.19190778539828),
    ],
    Colormap.Magma: [
        (-0.002136485053939582, -0.000749655052795221, -0.005386127855323933),
        (0.2516605407371642, 0.6775232436837668, 2.494026599312351),
        (8.353717279216625, -3.577719514958484, 0.3144679030132573),
        (-27.66873308576866, 14.26473078096533, -13.64921318813922),
        (52.17613981234068, -27.94360607168351, 12.94416944238394),
        (-50.76852536473588, 29.04658282127291, 4.23415299384598),
        (18.65570506591883, -11.48977351997711, -5.601961508734096),
    ],
    Colormap.Inferno: [
        (0.0002189403691192265, 0.001651004631001012, -0.01948089843709184),
        (0.1065134194856116, 0.5639564367884091, 3.932712388889277),
        (11.60249308247187, -3.972853965665698, -15.9423941062914),
        (-41.70399613139459, 17.43639888205313, 44.35414519872813),
        (77.162935699427, -33.40235894210092, -81.80730925738993),
        (-71.31942824499214, 32.62606426397723, 73.20951985803202),
        (25.13112622477341, -12.24266895238567, -23.07032500287172),
    ],
    Colormap.Spectral: [
        (0.584384543712538, 0.006424432561482, 0.231061410304836),
        (3.768572852617221, 2.487082885717158, 2.821174312084977),
        (-16.262574054760623, -6.243215992229093, -37.292187460541960),
        (39.821464952234010, 39.932449794574126, 186.340471613899751),
        (-46.140976850412727, -99.423798167148249, -388.532539629914481),
        (12.716626092708825, 96.954180217298671, 360.627239851094203),
        (5.942343111972585, -33.440386037285862, -123.635206049211334),
    ],
    Colormap.Twilight: [
        (0.99435322698120177, 0.85170793387210064, 0.93942033498486266),
        (-6.61774273956635106, -0.23133259259568750, -3.96704343424284378),
        (41.78124131041812461, -7.61851602599826982, 38.98566990464263426),
        (-158.29764239605322018, 3.73408709288658525, -170.02538195370874519),
        (301.70954078396789555, 25.04157831823896174, 319.73628266524258379),
        (-265.16454480601146315, -30.83148395246298179, -271.62226902484138691),
        (86.58914784721200531, 9.90660484718943267, 86.89294583380010456),
    ],
}

# Turbo (Google's polynomial fit): dot((1, t, t^2, t^3), c4) + dot((t^4, t^5), c2) per channel.
_TURBO4 = np.array([
    (0.13572138, 4.61539260, -42.66032258, 132.13108234),
    (0.09140261, 2.19418839, 4.84296658, -14.18503333),
    (0.10667330, 12.64194608, -60.58204836, 110.36276771),
])
_TURBO2 = np.array([(-152.94239396, 59.28637943), (4.27729857, 2.82956604), (-89.90310912, 27.34824973)])

# The step palettes' special colours (sRGB bytes).
_UNKNOWN = (112, 137, 134)  # RViz's -1 ("unknown", 255 as a byte)
_RERUN_RED, _RERUN_BLUE = (215, 47, 33), (24, 106, 221)
_RERUN_GREEN, _RERUN_YELLOW = (134, 217, 166), (246, 218, 117)


def _rgba(rgb: np.ndarray, alpha=1.0) -> np.ndarray:
    out = np.empty(rgb.shape[:-1] + (4,))
    out[..., :3] = rgb
    out[..., 3] = alpha
    return out


def _palette(t: np.ndarray, which: Colormap) -> np.ndarray:
    """RViz Map / Costmap and Rerun's Costmap: step palettes of the byte value = round(t * 255)."""
    value = np.floor(t * 255.0 + 0.5)
    rgba = np.zeros(t.shape + (4,))
    rgba[..., 3] = 1.0

    def put(mask, rgb, alpha=1.0):
        rgba[mask] = _rgba(np.broadcast_to(np.asarray(rgb, dtype=np.float64), mask.shape + (3,))[mask], alpha)

    ramp_neg = (255.0 * (value - 128.0)) / (254.0 - 128.0) / 255.0  # 128..254: red -> yellow
    illegal_neg = (value >= 128) & (value < 255)
    put(value == 255, np.array(_UNKNOWN) / 255.0)
    put((value > 100) & (value < 128), (0.0, 1.0, 0.0))
    if which == Colormap.RvizMap:
        x = (255.0 - value * 255.0 / 100.0) / 255.0  # 0 free: white .. 100 occupied: black
        put(value <= 100, np.stack([x, x, x], axis=-1))
        put(illegal_neg, np.stack([np.ones_like(t), ramp_neg, np.zeros_like(t)], axis=-1))
        return rgba
    if which == Colormap.RvizCostmap:
        x = (value * 255.0 / 100.0) / 255.0
        put((value >= 1) & (value < 99), np.stack([x, np.zeros_like(t), 1.0 - x], axis=-1))
        put(value == 99, (0.0, 1.0, 1.0))
        put(value == 100, (1.0, 0.0, 1.0))
        put(illegal_neg, np.stack([np.ones_like(t), ramp_neg, np.zeros_like(t)], axis=-1))
    else:  # Costmap: the same meanings in Rerun's palette
        green, yellow = np.array(_RERUN_GREEN) / 255.0, np.array(_RERUN_YELLOW) / 255.0
        red = np.array(_RERUN_RED) / 255.0
        k = (value / 98.0)[..., None]
        put((value >= 1) & (value < 99), green + (yellow - green) * k)
        put(value == 99, red)
        put(value == 100, np.array(_RERUN_BLUE) / 255.0)
        put((value > 100) & (value < 128), green)
        k = ((value - 128.0) / (254.0 - 128.0))[..., None]
        put(illegal_neg, red + (yellow - red) * k)
    put(value == 0, (0.0, 0.0, 0.0), alpha=0.0)  # free space: transparent
    return rgba


def colormap_srgba(which: int, t) -> np.ndarray:
    """Rerun 0.41's colormap `which` at t (any shape; clamped to [0, 1], NaN as 0), as
    float64 sRGB RGBA in 0..1 (straight alpha). The exact function the tables sample."""
    which = Colormap(int(which))
    t = np.nan_to_num(np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0), nan=0.0)
    if which in (Colormap.RvizMap, Colormap.RvizCostmap, Colormap.Costmap):
        return _palette(t, which)
    if which == Colormap.Grayscale:
        rgb = np.stack([t, t, t], axis=-1)
    elif which == Colormap.Turbo:
        v4 = np.stack([np.ones_like(t), t, t * t, t * t * t], axis=-1)
        v2 = np.stack([t**4, t**5], axis=-1)
        rgb = v4 @ _TURBO4.T + v2 @ _TURBO2.T
    elif which == Colormap.CyanToYellow:
        u = t * 2.0 - 1.0
        rgb = np.clip(np.stack([1.0 + 3.0 * u, 1.0 + 3.0 * u * u, 1.0 - 3.0 * u], axis=-1) / 4.0, 0.0, 1.0)
    else:
        c = np.asarray(_POLY6[which])
        rgb = np.broadcast_to(c[6], t.shape + (3,)).copy()
        for k in range(5, -1, -1):  # Horner, as Rerun evaluates it
            rgb = c[k] + t[..., None] * rgb
    return _rgba(rgb)


def _q(x: np.ndarray) -> np.ndarray:
    return np.floor(np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _build_tables() -> np.ndarray:
    t = np.arange(TABLE_SIZE, dtype=np.float64) / (TABLE_SIZE - 1)
    tables = np.zeros((len(Colormap) + 1, TABLE_SIZE, 4), dtype=np.uint8)  # row 0 unused (no map 0)
    for cmap in Colormap:
        tables[cmap] = _q(colormap_srgba(cmap, t))
    tables.setflags(write=False)
    return tables


_TABLES = _build_tables()


def colormap_tables() -> np.ndarray:
    """All tables, (13, TABLE_SIZE, 4) uint8 sRGB RGBA, indexed by Colormap value (row 0 unused).
    Read-only: the GPU backends upload this one array."""
    return _TABLES


def colormap_table(which: Optional[int]) -> np.ndarray:
    """The (TABLE_SIZE, 4) uint8 table of one colormap; ValueError naming the choices for an
    unknown value."""
    try:
        cmap = Colormap(int(which))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        names = ", ".join(f"{c.name}={c.value}" for c in Colormap)
        raise ValueError(f"unknown colormap {which!r}: expected one of {names}") from None
    return _TABLES[cmap]


def table_index(t) -> np.ndarray:
    """Table index of t (float64): floor(clamp(t, 0, 1) * (TABLE_SIZE - 1) + 0.5); NaN -> 0."""
    x = np.nan_to_num(np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0), nan=0.0)
    return np.floor(x * (TABLE_SIZE - 1) + 0.5).astype(np.intp)


def table_index_exact(v: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The exact table index of integer samples v over an integer range lo < hi (module doc)."""
    d = int(hi) - int(lo)
    n = TABLE_SIZE - 1
    vv = np.clip(np.asarray(v).astype(np.int64), lo, hi) - lo
    return ((2 * n * vv + d) // (2 * d)).astype(np.intp)
