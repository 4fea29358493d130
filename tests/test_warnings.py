"""Every warning pixelrun emits is a `pixelrun.PixelrunWarning` and points at the
caller's line: one filter turns all of them into errors."""

from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import numpy as np
import pytest

import pixelrun as rr
import pixelrun.engine
from pixelrun.engine import api
from pixelrun.engine.scene import SceneWarning
from pixelrun.engine.store.store import StoreWarning
from pixelrun.kernels import errors
from pixelrun.kernels.formats import ImageFormat
from pixelrun.kernels.layers import Layer
from pixelrun.kernels.reference.composite import CompositeWarning, composite

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"sdk": "pixelrun", "engine": "pixelrun.engine", "kernels": "pixelrun.kernels"}


def _truncated_recording() -> bytes:
    stream = rr.new_recording("warnings")
    mem = stream.memory_recording()
    for t in range(4):
        stream.set_time("step", sequence=t)
        stream.log("cam", rr.Image(np.full((8, 8, 3), t, np.uint8)))
    stream.flush()
    data = mem.rrd_bytes()
    return data[: len(data) - 200]  # the last message cut short


def _bad_layer() -> Layer:
    """An RGB image whose buffer holds 5 bytes instead of 12: it cannot be drawn."""
    return Layer("broken/cam", 7, np.zeros(5, np.uint8), ImageFormat(2, 2, color_model="RGB", channel_datatype="U8"))


def test_the_base_is_shared_by_every_layer():
    assert rr.PixelrunWarning is errors.PixelrunWarning is pixelrun.engine.PixelrunWarning
    assert issubclass(rr.PixelrunWarning, UserWarning)  # `-W error::UserWarning` still applies
    assert pixelrun.engine.RenderWarning is api.RenderWarning is errors.RenderWarning  # one RenderWarning
    for cls in (rr.DataLossWarning, rr.RecordingClosedWarning, StoreWarning, SceneWarning, CompositeWarning):
        assert issubclass(cls, rr.PixelrunWarning), cls


def test_one_filter_makes_an_engine_warning_an_error():
    data = _truncated_recording()
    with warnings.catch_warnings():
        warnings.simplefilter("error", rr.PixelrunWarning)
        with pytest.raises(StoreWarning, match="read in part"):
            pixelrun.engine.open_store(data)


def test_one_filter_makes_a_kernels_warning_an_error():
    good = Layer("good", 1, np.full(12, 255, np.uint8), ImageFormat(2, 2, color_model="RGB", channel_datatype="U8"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", rr.PixelrunWarning)
        with pytest.raises(CompositeWarning, match="broken/cam"):
            composite([good, _bad_layer()])


def test_the_wgpu_renderer_warning_is_the_same_render_warning():
    backend = pytest.importorskip("pixelrun.kernels.wgpu.backend")
    if not backend.is_available():
        pytest.skip("no wgpu adapter on this machine")
    from pixelrun.kernels.wgpu.composite import Renderer, RenderWarning
    from pixelrun.kernels.wgpu.device import get_device

    assert RenderWarning is pixelrun.engine.RenderWarning
    with warnings.catch_warnings():
        warnings.simplefilter("error", rr.PixelrunWarning)
        with pytest.raises(RenderWarning, match="broken/cam"):
            Renderer(get_device()).render_offscreen([_bad_layer()])


def test_warnings_point_at_the_callers_line():
    data = _truncated_recording()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixelrun.engine.open_store(data)  # engine: store -> source -> decoder
        composite([_bad_layer()])  # kernels
        rr.new_recording("x", strict=False).log("cam", rr.Image(bytes=b"\x00" * 5, width=2, height=2,
                                                                 pixel_format=rr.PixelFormat.NV12))  # SDK
    ours = [w for w in caught if issubclass(w.category, rr.PixelrunWarning)]
    kinds = {w.category for w in ours}
    assert {StoreWarning, CompositeWarning, rr.PixelrunWarning} <= kinds, kinds
    for w in ours:
        assert w.filename == __file__, (w.category.__name__, w.filename, w.lineno)


def _sources():
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "examples" not in path.parts:
                yield path


def _module_name(path: Path) -> str:
    folder = path.relative_to(ROOT).parts[0]
    rel = path.relative_to(ROOT / folder).with_suffix("")
    return ".".join([PACKAGES[folder], *(p for p in rel.parts if p != "__init__")])


def test_every_warning_class_and_call_in_the_source_is_a_pixelrun_warning():
    """Found in the source, not listed by hand: a new class or a bare warnings.warn fails here."""
    classes, bare_calls, categories = [], [], {}
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Warning"):
                classes.append((_module_name(path), node.name))
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "warn" and isinstance(node.func.value, ast.Name)
                  and node.func.value.id == "warnings"):
                has_category = len(node.args) >= 2 or any(k.arg == "category" for k in node.keywords)
                # warnings.warn(SomeWarning(...)) or warnings.warn(module.SomeWarning(...))
                is_instance = (node.args and isinstance(node.args[0], ast.Call)
                               and isinstance(node.args[0].func, (ast.Name, ast.Attribute))
                               and ast.unparse(node.args[0].func).endswith("Warning"))
                if not (has_category or is_instance):
                    bare_calls.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                cat = node.args[1] if len(node.args) >= 2 else next(
                    (k.value for k in node.keywords if k.arg == "category"), node.args[0].func if is_instance else None)
                if cat is not None:
                    categories[ast.unparse(cat).rpartition(".")[2]] = f"{path.relative_to(ROOT)}:{node.lineno}"
    assert not bare_calls, f"warnings.warn without a category (a plain UserWarning): {bare_calls}"
    assert len(classes) >= 7, classes  # the walk found the classes
    assert {"StoreWarning", "CompositeWarning", "RenderWarning", "PixelrunWarning"} <= set(categories), categories
    for mod, name in classes:
        cls = getattr(importlib.import_module(mod), name)
        assert issubclass(cls, rr.PixelrunWarning), f"{mod}.{name} is not a PixelrunWarning"
    # a category named in a call is one of those classes (or a variable holding one)
    known = {name for _, name in classes} | {"PixelrunWarning", "RenderWarning"}
    foreign = {c: where for c, where in categories.items() if c[:1].isupper() and c not in known}
    assert not foreign, f"warnings.warn with a category that is not a PixelrunWarning: {foreign}"
