"""The house rules for imports, checked on the source tree (docs/architecture.md).

- Every import of project code goes through ``pixelrun...``.
- Direction: ``pixelrun`` (sdk/) -> ``pixelrun.engine`` -> ``pixelrun.kernels``; kernels
  import neither, engine never imports the SDK. The seed example scripts under
  engine/cli/examples are user programs run in child processes, so they may.
- No import cycles between modules (top-level imports; a cycle hidden in a function
  still counts, since it only moves the failure to run time).
- Imports inside functions only for optional heavy dependencies, listed here with why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"sdk": "pixelrun", "engine": "pixelrun.engine", "kernels": "pixelrun.kernels"}

# Optional or heavy third-party modules that may be imported inside a function, and why.
LAZY_OK = {
    "cupy": "CUDA only; absent on most machines",
    "cupyx": "CUDA only",
    "torch": "optional input type; heavy to import",
    "wgpu": "opens GPU drivers at import; the numpy backend and the SDK must not pay for it",
    "glfw": "needs a display library; only the window uses it",
    "rendercanvas": "window toolkit; only the window uses it",
    "imgui_bundle": "window toolkit; only the window uses it",
    "xxhash": "optional accelerator for footer checksums",
    "psutil": "optional; only to read total memory for percentage limits",
    "pandas": "optional input type (timestamps) of the SDK",
    "pyarrow.compute": "imported on first use by the SDK's time columns",
    "av": "PyAV, the optional pixelrun[video] extra; only video output needs it",
    "ray": "the optional pixelrun[ray] extra; only fleet datasets and render --ray need it",
    "mcap": "the optional pixelrun[mcap] extra; only reading .mcap files needs it",
    "mcap_ros2": "the pixelrun[mcap] extra (ROS 2 CDR messages)",
    "mcap_protobuf": "the pixelrun[mcap] extra (Foxglove protobuf messages)",
    "nvidia": "nvImageCodec (nvidia-nvimgcodec-cu12), optional: JPEG decoding on the GPU for the CuPy backend",
}

# Project modules that import one of the above at their top, so importing them is as heavy.
LAZY_PROJECT = {
    "pixelrun.kernels.wgpu": "imports wgpu",
    "pixelrun.kernels.cuda": "imports cupy",
    "pixelrun.engine.viewer.window": "imports glfw, rendercanvas and imgui",
    "pixelrun.engine.viewer.panels": "imports imgui",
    "pixelrun.engine.fleet.dataset": "imports ray",
    "pixelrun.engine.fleet.cluster": "imports ray",
}


def _lazy_project_ok(name: str) -> bool:
    return any(name == k or name.startswith(k + ".") for k in LAZY_PROJECT)


def _modules() -> dict[str, Path]:
    out = {}
    for folder, pkg in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([pkg, *parts])] = path
    return out


MODULES = _modules()


def _layer(mod: str) -> str:
    if mod.startswith("pixelrun.kernels"):
        return "kernels"
    if mod.startswith("pixelrun.engine"):
        return "engine"
    return "sdk"


def _resolve(name: str) -> str | None:
    """The project module an import of `name` loads (longest known prefix)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(path: Path):
    """(module imported, line, inside a function?) for every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    nested = {id(n) for f in funcs for n in ast.walk(f) if n is not f}
    # `if TYPE_CHECKING:` imports never run, so they make no cycle and cost nothing
    typing_only = {id(n) for n in ast.walk(tree) if isinstance(n, ast.If)
                   and getattr(n.test, "id", getattr(n.test, "attr", None)) == "TYPE_CHECKING"
                   for n in ast.walk(n)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        inner = id(node) in nested
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno, inner
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno, inner
            for a in node.names:  # `from pixelrun.engine import rrd` imports a module too
                yield f"{node.module}.{a.name}", node.lineno, inner


def _is_example(path: Path) -> bool:
    return "examples" in path.parts


ALLOWED = {"kernels": {"kernels"}, "engine": {"engine", "kernels"}, "sdk": {"sdk", "engine", "kernels"}}


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_imports_flow_one_way(mod):
    path = MODULES[mod]
    if _is_example(path):
        return
    bad = []
    for name, line, _ in _imports(path):
        top = name.split(".")[0]
        if top in PACKAGES:
            bad.append(f"{path.relative_to(ROOT)}:{line}: bare import {name!r}; use pixelrun...")
        target = _resolve(name)
        if target and _layer(target) not in ALLOWED[_layer(mod)]:
            bad.append(f"{path.relative_to(ROOT)}:{line}: {_layer(mod)} imports {target}")
    assert not bad, "\n".join(sorted(set(bad)))


def test_no_import_cycles():
    graph = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for name, _, _ in _imports(path):
            target = _resolve(name)
            if target and target != mod and not mod.startswith(target + "."):
                graph[mod].add(target)
    # Tarjan's strongly connected components
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not sccs, f"import cycles: {sccs}"


def test_function_level_imports_are_only_optional_dependencies():
    bad = []
    for path in MODULES.values():
        if _is_example(path):
            continue
        for name, line, inner in _imports(path):
            if not inner:
                continue
            if _resolve(name) or name.startswith("pixelrun"):
                if not _lazy_project_ok(name):
                    bad.append(f"{path.relative_to(ROOT)}:{line}: project import {name} inside a function")
                continue
            if not any(name == k or name.startswith(k + ".") for k in LAZY_OK):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {name} imported inside a function")
    assert not bad, "\n".join(sorted(set(bad)))


def test_the_checker_sees_a_violation(tmp_path):
    """The walker must find an upward import and a cycle when there is one."""
    src = tmp_path / "m.py"
    src.write_text("import os\ndef f():\n    from pixelrun import log\n")
    found = list(_imports(src))
    assert ("pixelrun", 3, True) in found and ("os", 1, False) in found
