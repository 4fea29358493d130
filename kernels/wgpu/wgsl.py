"""Loading WGSL: package-data shaders with two directives resolved at load time.

- ``#include "common.wgsl"`` is replaced by that file's text (itself loaded with the
  same rules). A file is included once per shader however often it is named, so
  shaders and included files can each say what they need; a name that is not a file
  in ``kernels/wgpu/shaders/`` is an error naming both files.
- ``#struct Name`` is replaced by the WGSL declaration of `layouts.STRUCTS[Name]` (and
  of the structs it nests, each once): the layout the CPU packs with is the one the
  shader reads.

A directive must be alone on its line (leading spaces and a trailing // comment allowed).
"""

from __future__ import annotations

import re
from importlib import resources

from pixelrun.kernels.wgpu.layouts import STRUCTS

__all__ = ["load_wgsl", "ShaderSourceError"]

_INCLUDE = re.compile(r'^[ \t]*#include[ \t]+"([^"]+)"[ \t]*(//.*)?$', re.MULTILINE)
_STRUCT = re.compile(r"^[ \t]*#struct[ \t]+(\w+)[ \t]*(//.*)?$", re.MULTILINE)


class ShaderSourceError(ValueError):
    """A shader's directive names a file or struct that does not exist."""


def _read(name: str, included_from: str | None) -> str:
    path = resources.files("pixelrun.kernels.wgpu").joinpath("shaders", name)
    if "/" in name or "\\" in name or not path.is_file():
        where = f"{included_from} includes " if included_from else ""
        raise ShaderSourceError(f'{where}"{name}", which is not a file in kernels/wgpu/shaders/')
    return path.read_text(encoding="utf-8")


def _expand(name: str, included_from: str | None, seen_files: set, seen_structs: set) -> str:
    seen_files.add(name)
    text = _read(name, included_from)

    def include(m: re.Match) -> str:
        other = m.group(1)
        if other in seen_files:
            return f"// {other}: already included"
        return _expand(other, name, seen_files, seen_structs)

    def struct(m: re.Match) -> str:
        wanted = m.group(1)
        decl = STRUCTS.get(wanted)
        if decl is None:
            raise ShaderSourceError(
                f"{name}: #struct {wanted}: no such layout (declared: {', '.join(sorted(STRUCTS))})"
            )
        parts = []
        for s in (*decl.dependencies(), decl):
            if s.name not in seen_structs:
                seen_structs.add(s.name)
                parts.append(f"// generated from kernels/wgpu/layouts.py ({s.size} bytes)\n{s.wgsl()}")
        return "\n\n".join(parts) or f"// struct {wanted}: already declared"

    text = _INCLUDE.sub(include, text)
    return _STRUCT.sub(struct, text)


def load_wgsl(name: str) -> str:
    """The source of ``kernels/wgpu/shaders/<name>`` with its directives resolved."""
    return _expand(name, None, set(), set())
