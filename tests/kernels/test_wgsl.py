"""WGSL sources: the loader's #include / #struct directives, layouts declared once in
Python (kernels/wgpu/layouts.py) and the shared code in common.wgsl."""

from __future__ import annotations

import re
from importlib import resources

import numpy as np
import pytest

from pixelrun.kernels import backends
from pixelrun.kernels.wgpu import layouts, wgsl
from pixelrun.kernels.wgpu.layouts import FRAME, TILE, YUV_PARAMS, Array, Struct

SHADERS = ("color.wgsl", "yuv.wgsl", "bayer.wgsl", "composite.wgsl", "viewer_blit.wgsl")


def _raw(name: str) -> str:
    return resources.files("pixelrun.kernels.wgpu").joinpath("shaders", name).read_text()


@pytest.mark.parametrize("name", SHADERS)
def test_shared_functions_are_defined_once_after_loading(name):
    src = wgsl.load_wgsl(name)
    assert not re.search(r"^\s*#", src, re.M), "a directive was left unresolved"
    for fn in ("q", "srgb_encode", "srgb_decode", "vs_fullscreen"):
        assert len(re.findall(rf"\bfn {fn}\(", src)) == 1, (name, fn)


def test_shared_functions_live_only_in_common_wgsl():
    for name in SHADERS:
        raw = _raw(name)
        for fn in ("q", "q4", "srgb_encode", "srgb_decode", "vs_fullscreen"):
            assert not re.search(rf"\bfn {fn}\(", raw), f"{name} defines {fn} itself"
        assert not re.search(r"^struct (Params|Frame|Tile|Range|Addr)\b", raw, re.M), name


def test_double_include_is_included_once(monkeypatch):
    texts = {"a.wgsl": '#include "common.wgsl"\n#include "common.wgsl"\nfn a() {}\n'}
    real = wgsl._read
    monkeypatch.setattr(wgsl, "_read", lambda n, f: texts[n] if n in texts else real(n, f))
    src = wgsl.load_wgsl("a.wgsl")
    assert len(re.findall(r"\bfn q\(", src)) == 1
    assert "common.wgsl: already included" in src


def test_missing_include_names_both_files(monkeypatch):
    texts = {"a.wgsl": '#include "nope.wgsl"\n'}
    real = wgsl._read
    monkeypatch.setattr(wgsl, "_read", lambda n, f: texts[n] if n in texts else real(n, f))
    with pytest.raises(wgsl.ShaderSourceError, match=r'a\.wgsl includes "nope\.wgsl"'):
        wgsl.load_wgsl("a.wgsl")


def test_include_cannot_leave_the_shader_folder(monkeypatch):
    texts = {"a.wgsl": '#include "../convert.py"\n'}
    real = wgsl._read
    monkeypatch.setattr(wgsl, "_read", lambda n, f: texts[n] if n in texts else real(n, f))
    with pytest.raises(wgsl.ShaderSourceError, match="not a file in kernels/wgpu/shaders"):
        wgsl.load_wgsl("a.wgsl")


def test_unknown_struct_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(wgsl, "_read", lambda n, f: "#struct Nope\n")
    with pytest.raises(wgsl.ShaderSourceError, match="#struct Nope: no such layout .*YuvParams"):
        wgsl.load_wgsl("a.wgsl")


def test_offsets_follow_wgsl_alignment():
    # the word positions the shaders were written against before layouts existed
    assert FRAME.words == 24 and FRAME.offsets["bg_lin"] == 64 and FRAME.offsets["clear_w"] == 48
    assert TILE.words == 12 and TILE.offsets["opacity"] == 40
    assert [YUV_PARAMS.offsets[k] // 4 for k in ("has_uv", "out_stride", "ya", "ua", "va")] == [6, 7, 16, 24, 32]
    assert layouts.COLOR_PARAMS.offsets["thresholds"] == 48 and layouts.COLOR_PARAMS.words == 12 + 256
    assert layouts.RANGE.size == 48 and layouts.BAYER_PARAMS.offsets["tile"] == 32
    s = Struct("S", [("a", "u32", ""), ("b", "vec4<f32>", ""), ("c", "vec2<u32>", ""), ("d", "f32", "")])
    assert s.offsets == {"a": 0, "b": 16, "c": 32, "d": 40} and s.size == 48


def test_pack_by_name_writes_at_the_derived_offsets():
    w = YUV_PARAMS.pack(width=640, y_scale=0.5, va={"row_bytes": 320, "shift_x": 1})
    assert w.size == 40 and w[0] == 640
    assert w[9:10].view(np.float32)[0] == 0.5
    assert w[33] == 320 and w[35] == 1 and w[32] == 0
    c = layouts.COLOR_PARAMS.pack(thresholds=np.arange(256, dtype=np.int32) - 5)
    assert c[12:].view(np.int32).tolist() == list(range(-5, 251))
    with pytest.raises(KeyError, match="YuvParams has no field 'nope'"):
        YUV_PARAMS.pack(nope=1)
    with pytest.raises(ValueError, match="expected 4 values, got 3"):
        layouts.BAYER_PARAMS.pack(tile=(0, 1, 2))
    assert Array("vec4<i32>", 2) == Array("vec4<i32>", 2)


def test_generated_struct_matches_declaration():
    text = FRAME.wgsl()
    assert text.startswith("struct Frame {") and text.endswith("}")
    for name, *_ in FRAME.fields:
        assert re.search(rf"^\s+{name}: ", text, re.M)


@pytest.mark.parametrize("name", SHADERS)
def test_every_loaded_shader_compiles(name):
    ok, reason = backends.availability("wgpu")
    if not ok:
        pytest.skip(reason)
    from pixelrun.kernels.wgpu import device as gpu  # imports wgpu

    gpu.get_device().create_shader_module(code=wgsl.load_wgsl(name))  # raises on a WGSL error


def test_registry_names_every_backend_with_both_halves():
    from pixelrun.engine import api  # engine is above kernels; only this test looks up

    assert set(backends.BACKENDS) == {"numpy", "wgpu", "cupy"}
    assert api.BACKENDS == (*backends.BACKENDS, "auto")
    for name, entry in backends.REGISTRY.items():
        assert entry.name == name and ":" in entry.composite
    assert callable(backends.compositor("numpy"))
    with pytest.raises(ValueError, match="unknown backend 'metal'"):
        backends.compositor("metal")
    assert backends.choose_backend("auto") in backends.available_backends()
