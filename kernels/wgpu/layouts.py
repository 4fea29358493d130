"""Uniform and storage struct layouts, declared once for Python and WGSL.

Each struct the shaders read from a buffer the CPU fills is declared here: field
names and types, in order. Offsets follow WGSL's alignment rules (derived, never
written by hand); the WGSL struct text is generated from the same declaration and put
into the shader source by the loader (a ``#struct Name`` line, see
`pixelrun.kernels.wgpu.wgsl`), and the CPU packs values by field name::

    words = YUV_PARAMS.pack(width=640, height=480, ya={"offset": 0, ...})
    YUV_PARAMS.pack_into(words, out_stride=64)

Explicit ``_pad`` fields are kept where a shader or a binding relies on the size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Union

import numpy as np

__all__ = ["Struct", "Array", "STRUCTS", "FRAME", "TILE", "COLOR_PARAMS", "RANGE", "YUV_PARAMS",
           "ADDR", "BAYER_PARAMS", "TABLE_PARAMS"]

# WGSL type -> (align, size, component count, NumPy view dtype of its words)
_SCALARS = {"u32": np.uint32, "i32": np.int32, "f32": np.float32}


def _vector(t: str) -> tuple[int, str]:
    """'vec4<f32>' -> (4, 'f32'); 'u32' -> (1, 'u32')."""
    if t in _SCALARS:
        return 1, t
    if t.startswith("vec") and t[4] == "<" and t.endswith(">") and t[5:-1] in _SCALARS and t[3] in "234":
        return int(t[3]), t[5:-1]
    raise ValueError(f"unsupported WGSL type {t!r}: expected u32/i32/f32 or vecN<u32|i32|f32>")


@dataclass(frozen=True)
class Array:
    """array<element, count> of a scalar or vector type."""

    element: str
    count: int


FieldType = Union[str, Array, "Struct"]


def _align_size(t: FieldType) -> tuple[int, int]:
    """(alignment, size) in bytes in the uniform address space (WGSL's rules)."""
    if isinstance(t, Struct):
        return max(16, t.align), t.size  # uniform: struct members align to 16
    if isinstance(t, Array):
        align, size = _align_size(t.element)
        align = max(align, 16)  # uniform: array stride must be a multiple of 16
        stride = -(-size // align) * align
        return align, stride * t.count
    n, _ = _vector(t)
    size = 4 * n
    return (16 if n == 3 else size), size


class Struct:
    """One struct: (name, type, comment) fields in order; offsets derived.

    Types: 'u32', 'i32', 'f32', 'vecN<T>', an `Array` of those, or another `Struct`.
    """

    def __init__(self, name: str, fields: list[tuple[str, FieldType, str]]) -> None:
        self.name = name
        self.fields = list(fields)
        self.offsets: dict[str, int] = {}
        self.types: dict[str, FieldType] = {}
        end, align = 0, 4
        for fname, ftype, _ in self.fields:
            if fname in self.types:
                raise ValueError(f"struct {name}: field {fname!r} declared twice")
            a, s = _align_size(ftype)
            end = -(-end // a) * a
            self.offsets[fname], self.types[fname] = end, ftype
            end += s
            align = max(align, a if not isinstance(ftype, Struct) else ftype.align)
        self.align = align
        self.size = -(-end // align) * align

    @property
    def words(self) -> int:
        """Size in 32-bit words."""
        return self.size // 4

    def dependencies(self) -> list["Struct"]:
        """Structs this one nests, innermost first (each once)."""
        out: list[Struct] = []
        for _, t, _ in self.fields:
            if isinstance(t, Struct):
                for d in (*t.dependencies(), t):
                    if d not in out:
                        out.append(d)
        return out

    def wgsl(self) -> str:
        """The WGSL declaration of this struct (not of the structs it nests)."""
        lines = [f"struct {self.name} {{"]
        for fname, t, comment in self.fields:
            tname = t.name if isinstance(t, Struct) else (
                f"array<{t.element}, {t.count}>" if isinstance(t, Array) else t)
            text = f"    {fname}: {tname},"
            lines.append(f"{text:<26}// {comment}" if comment else text)
        lines.append("}")
        return "\n".join(lines)

    def pack(self, **values) -> np.ndarray:
        """A new zeroed word array of this struct with the given fields set."""
        words = np.zeros(self.words, dtype=np.uint32)
        self.pack_into(words, **values)
        return words

    def pack_into(self, words: np.ndarray, base: int = 0, **values) -> np.ndarray:
        """Set fields by name in a uint32 word array (struct starting at word `base`)."""
        for fname, value in values.items():
            t = self.types.get(fname)
            if t is None:
                raise KeyError(f"struct {self.name} has no field {fname!r} (fields: {', '.join(self.types)})")
            at = base + self.offsets[fname] // 4
            if isinstance(t, Struct):
                if not isinstance(value, Mapping):
                    raise TypeError(f"{self.name}.{fname} is a {t.name}: give a dict of its fields")
                t.pack_into(words, at, **value)
                continue
            elem = t.element if isinstance(t, Array) else t
            n, scalar = _vector(elem)
            arr = np.asarray(value).reshape(-1)
            if isinstance(t, Array):
                stride = _align_size(t)[1] // t.count // 4
                if arr.size != n * t.count:
                    raise ValueError(f"{self.name}.{fname}: expected {n * t.count} values, got {arr.size}")
                view = words[at : at + stride * t.count].reshape(t.count, stride)[:, :n]
                view.view(_SCALARS[scalar])[...] = arr.reshape(t.count, n).astype(_SCALARS[scalar])
                continue
            if arr.size != n:
                raise ValueError(f"{self.name}.{fname} is a {elem}: expected {n} values, got {arr.size}")
            with np.errstate(over="ignore"):  # f32 fields take out-of-range floats as +-inf
                words[at : at + n].view(_SCALARS[scalar])[:] = arr.astype(_SCALARS[scalar])
        return words

    def get(self, words: np.ndarray, fname: str, base: int = 0):
        """A scalar field's value read back from a word array."""
        t = self.types[fname]
        if not isinstance(t, str) or t not in _SCALARS:
            raise TypeError(f"{self.name}.{fname}: only scalar fields can be read back")
        at = base + self.offsets[fname] // 4
        return words[at : at + 1].view(_SCALARS[t])[0].item()


# ---------------------------------------------------------------- decode shaders
# Every decode Params starts with the tile being decoded (shared by color/yuv/bayer.wgsl).
_TILE_FIELDS = [
    ("width", "u32", "image size"),
    ("height", "u32", ""),
    ("x0", "u32", "tile origin within the image"),
    ("y0", "u32", ""),
    ("tw", "u32", "tile size"),
    ("th", "u32", ""),
]
_OUT_STRIDE = ("out_stride", "u32", "words per output row (a multiple of 64)")

COLOR_PARAMS = Struct("ColorParams", [
    *_TILE_FIELDS,
    ("n_partials", "u32", "workgroups of reduce_partial"),
    ("alpha_max_u", "u32", "integer type max, for exact alpha of <=16-bit types"),
    ("alpha_max_f", "f32", "the same as f32, for wider types"),
    _OUT_STRIDE,
    ("_pad1", "u32", ""),
    ("_pad2", "u32", ""),
    ("thresholds", Array("vec4<i32>", 64), "MODE_THRESHOLDS: byte = #{k : v >= t[k-1]}"),
])

RANGE = Struct("Range", [
    ("lo", "vec2<u32>", "integer modes: lo as 64-bit two's complement"),
    ("span", "vec2<u32>", "integer modes: hi - lo as u64"),
    ("lo_f", "f32", "MODE_FLOAT"),
    ("hi_f", "f32", ""),
    ("mode", "u32", ""),
    ("_pad3", "u32", ""),
    ("shift", "i32", "F64: values are narrowed as v * 2^-shift (lo_f, hi_f too)"),
    ("_pad0", "u32", ""),
    ("_pad1", "u32", ""),
    ("_pad2", "u32", ""),
])

ADDR = Struct("Addr", [
    ("offset", "u32", "address(x, y) = offset + (y >> shift_y) * row_bytes"),
    ("row_bytes", "u32", "                + (x >> shift_x) * step"),
    ("step", "u32", ""),
    ("shift_x", "u32", ""),
    ("shift_y", "u32", ""),
    ("_pad0", "u32", ""),
    ("_pad1", "u32", ""),
    ("_pad2", "u32", ""),
])

YUV_PARAMS = Struct("YuvParams", [
    *_TILE_FIELDS,
    ("has_uv", "u32", "0: Y8, chroma is the constant 128 (the decode entry uses HAS_UV)"),
    _OUT_STRIDE,
    ("y_offset", "f32", "y = (Y - y_offset) / y_scale; u = (U - 128) / c_scale"),
    ("y_scale", "f32", ""),
    ("c_scale", "f32", ""),
    ("_pad1", "f32", ""),
    ("rv", "f32", "R = y + rv v, G = y - gu u - gv v, B = y + bu u"),
    ("gu", "f32", ""),
    ("gv", "f32", ""),
    ("bu", "f32", ""),
    ("ya", ADDR, ""),
    ("ua", ADDR, ""),
    ("va", ADDR, ""),
])

BAYER_PARAMS = Struct("BayerParams", [
    *_TILE_FIELDS,
    _OUT_STRIDE,
    ("row_stride", "u32", "bytes from one mosaic row to the next (padded rows)"),
    ("tile", "vec4<u32>", "colour (0 R, 1 G, 2 B) at tile position (x & 1) + 2 (y & 1)"),
])

TABLE_PARAMS = Struct("TableParams", [
    *_TILE_FIELDS,
    _OUT_STRIDE,
    ("n", "u32", "table entries in use (kernels/table_plan.py)"),
    ("first", "i32", "MODE_PALETTE: the type's smallest value (table[0])"),
    ("lo", "f32", "MODE_FLOAT: t = (v - lo) * inv_span"),
    ("inv_span", "f32", "0: no range, t = 0"),
    ("_pad0", "u32", ""),
    ("_pad1", "u32", ""),
    ("_pad2", "u32", ""),
    ("_pad3", "u32", ""),
    ("_pad4", "u32", ""),
])

# ---------------------------------------------------------------- composite.wgsl
FRAME = Struct("Frame", [
    ("scale", "vec2<f32>", "target pixels per scene unit"),
    ("offset", "vec2<f32>", "target position of the scene origin"),
    ("scene_w", "u32", "scene rectangle (texels)"),
    ("scene_h", "u32", ""),
    ("width", "u32", "target width = acc row length"),
    ("band_y0", "u32", "first target row held by acc"),
    ("band_h", "u32", "target rows held by acc"),
    ("srgb_target", "u32", "1: the target encodes sRGB itself"),
    ("clear_x0", "u32", "target pixels of the band that show the scene: only these"),
    ("clear_y0", "u32", "are cleared (present reads acc there and nowhere else)"),
    ("clear_w", "u32", ""),
    ("clear_h", "u32", ""),
    ("_pad0", "u32", ""),
    ("_pad1", "u32", ""),
    ("bg_lin", "vec4<f32>", "background, linear, premultiplied (acc start)"),
    ("bg_bytes", "vec4<f32>", "background as display values (straight, sRGB), outside the scene"),
])

TILE = Struct("Tile", [
    ("x0", "u32", "target pixels to visit: x0, y0, w, h (inside the band)"),
    ("y0", "u32", ""),
    ("w", "u32", ""),
    ("h", "u32", ""),
    ("tx0", "u32", "the tile's rectangle in the scene (full-resolution texels)"),
    ("ty0", "u32", ""),
    ("tw", "u32", ""),
    ("th", "u32", ""),
    ("shift", "u32", "reduced level: texture texel = (scene texel - origin) >> shift"),
    ("sampling", "u32", "0 nearest, 1 linear (MagnificationFilter.Linear on a magnified layer)"),
    ("opacity", "f32", "already clamped to 0..1 on the CPU"),
    ("_pad1", "f32", ""),
])

# name in a shader's `#struct NAME` line -> declaration
STRUCTS: dict[str, Struct] = {
    s.name: s for s in (COLOR_PARAMS, RANGE, ADDR, YUV_PARAMS, BAYER_PARAMS, TABLE_PARAMS, FRAME, TILE)
}
