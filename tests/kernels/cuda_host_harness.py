"""Run pixelrun's CUDA kernels on the CPU: build them with g++, call them through ctypes.

The kernels in kernels/cuda are written so that plain C++ can compile them once
cuda_host_harness.h supplies CUDA's keywords and a sequential grid loop. Tests use
this module to run the *same launch plans* that pixelrun.kernels.cuda.convert hands to
CuPy (built by `plan_conversion(numpy, ...)` instead of `plan_conversion(cupy, ...)`)
and compare the result with the NumPy reference -- so kernel logic and argument
preparation are checked on machines without an NVIDIA GPU.

    lib = build_host_kernels(tmp_dir)      # FileNotFoundError when g++ is absent
    lib.run(plan)                          # executes every Launch of the plan

In a test module: `host_kernels_or_skip` (a module fixture's body: skip without g++) and,
for CuPy glue code, `install_fake_cupy` (the stand-in below, in sys.modules for one test).
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from pixelrun.kernels.cuda import convert as cupy_convert
from pixelrun.kernels.cuda.convert import CUDA_DIR, Launch

HERE = Path(__file__).resolve().parent
HARNESS_CPP = HERE / "cuda_host_harness.cpp"

_SCALAR_CTYPES = {
    np.int32: ctypes.c_int32,
    np.int64: ctypes.c_int64,
    np.float32: ctypes.c_float,
    np.float64: ctypes.c_double,
}


def gxx() -> str | None:
    """Path of g++, or None."""
    return shutil.which("g++")


class HostKernels:
    """The kernels of kernels/cuda compiled for the CPU, callable with Launch plans."""

    def __init__(self, path: Path):
        self.path = path
        self.lib = ctypes.CDLL(str(path))
        self._fns: dict = {}

    def _convert(self, args: Sequence) -> tuple[list, list]:
        types, values = [], []
        for a in args:
            if isinstance(a, np.ndarray):
                if not a.flags.c_contiguous:
                    raise ValueError("kernel arguments must be C-contiguous arrays")
                types.append(ctypes.c_void_p)
                values.append(a.ctypes.data)
            elif type(a) in _SCALAR_CTYPES:
                types.append(_SCALAR_CTYPES[type(a)])
                values.append(a.item())
            else:
                raise TypeError(f"unsupported kernel argument {a!r} of type {type(a).__name__}")
        return types, values

    def run(self, plan: Sequence[Launch]) -> None:
        """Execute each launch: every thread of its grid, one after another."""
        for item in plan:
            types, values = self._convert(item.args)
            ptr = ctypes.c_void_p.in_dll(self.lib, f"h_{item.kernel}").value
            fn = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_uint), *types)(ptr)
            dims = (ctypes.c_uint * 6)(*item.grid, *item.block)
            fn(dims, *values)


def build_host_kernels(out_dir: Path) -> HostKernels:
    """Compile the harness into out_dir and load it; raises CalledProcessError with g++'s output."""
    return HostKernels(build_host_library(out_dir))


def build_host_library(out_dir: Path) -> Path:
    """Compile the harness into out_dir (not loaded); raises CalledProcessError with g++'s output."""
    compiler = gxx()
    if compiler is None:
        raise FileNotFoundError("g++ is not installed")
    out = Path(out_dir) / "pixelrun_cuda_host.so"
    cmd = [
        compiler, "-std=c++17", "-O1", "-shared", "-fPIC", "-Wall", "-Wno-unknown-pragmas",
        "-I", str(CUDA_DIR), "-I", str(HERE), str(HARNESS_CPP), "-o", str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
    return out


def host_kernels_or_skip(tmp_path_factory: pytest.TempPathFactory, folder: str) -> HostKernels:
    """`build_host_kernels` into a new temporary `folder`, or skip the test when g++ is
    missing (conftest.py's PIXELRUN_REQUIRE_CUDA hook knows this skip is not about CUDA)."""
    if gxx() is None:
        pytest.skip("g++ is not installed: the CUDA kernels cannot be built for the host")
    return build_host_kernels(tmp_path_factory.mktemp(folder))


# ------------------------------------------------------------------- a CuPy stand-in
#
# Enough of CuPy's surface, over NumPy memory, for pixelrun's CuPy glue code
# (kernels/cuda/convert.py, kernels/cuda/composite.py, sdk/gpu_input.py) to run on a
# machine without CUDA: "device" arrays are NumPy arrays of a subclass that carries
# __cuda_array_interface__, kernels launched through RawModule run on the CPU via
# HostKernels, streams and events are synchronous. It checks the Python side (input
# handling, launch arguments, batching, copies back), not CuPy itself.


class FakeDeviceArray(np.ndarray):
    """A NumPy array that pretends to live on a CUDA device."""

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ctypes.data, False), "version": 3}

    @property
    def data(self):  # CuPy's MemoryPointer, not NumPy's buffer
        return _FakePointer(self)

    @property
    def device(self):
        return _FakeDevice()

    def get(self, stream=None, out=None):
        host = np.array(self, copy=True).view(np.ndarray)
        if out is not None:
            out[...] = host
            return out
        return host

    def set(self, host, stream=None):
        self.view(np.ndarray)[...] = host


class _FakePointer:
    def __init__(self, arr):
        self.ptr = arr.ctypes.data

    def copy_to_host_async(self, dst, size, stream=None):
        ctypes.memmove(dst.value if isinstance(dst, ctypes.c_void_p) else dst, self.ptr, size)

    def copy_from_device_async(self, src, size, stream=None):
        ctypes.memmove(self.ptr, src.ptr, size)


class _FakeDevice:
    id = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _FakeEvent:
    def synchronize(self):
        pass

    def query(self):
        return True


class _FakeStream:
    def __init__(self, non_blocking=False):
        pass

    def synchronize(self):
        pass

    def record(self, event=None):
        return _FakeEvent()

    def wait_event(self, event):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def fake_cupy_modules(host: HostKernels, expected_source: str):
    """(cupy, cupyx) stand-in modules whose kernels run on `host`."""
    import types

    cupy = types.ModuleType("cupy")
    cupyx = types.ModuleType("cupyx")

    def asarray(obj, dtype=None):
        if isinstance(obj, FakeDeviceArray) and dtype is None:
            return obj
        return np.array(obj, dtype=dtype, copy=True).view(FakeDeviceArray)

    def array(obj, copy=True, order="C", dtype=None):
        return np.array(obj, dtype=dtype, copy=True, order=order).view(FakeDeviceArray)

    class RawModule:
        def __init__(self, code, options=()):
            assert code == expected_source, "RawModule got another source than cuda_source()"

        def get_function(self, name):
            def launch(grid, block, args, shared_mem=0):
                host.run([Launch(name, tuple(grid), tuple(block), tuple(args))])

            return launch

    cupy.ndarray = FakeDeviceArray
    cupy.uint8 = np.uint8
    cupy.float32 = np.float32
    cupy.asarray = asarray
    cupy.array = array
    cupy.ascontiguousarray = lambda a: np.ascontiguousarray(a).view(FakeDeviceArray)
    cupy.empty = lambda shape, dtype=np.float64: np.empty(shape, dtype).view(FakeDeviceArray)
    cupy.zeros = lambda shape, dtype=np.float64: np.zeros(shape, dtype).view(FakeDeviceArray)
    cupy.stack = lambda arrays: np.stack([np.asarray(a) for a in arrays]).view(FakeDeviceArray)
    cupy.from_dlpack = lambda obj: np.from_dlpack(obj).view(FakeDeviceArray)
    cupy.full = lambda shape, value, dtype=None: np.full(shape, value, dtype).view(FakeDeviceArray)
    cupy.where = lambda c, a, b: np.asarray(np.where(c, a, b)).view(FakeDeviceArray)
    cupy.isfinite = lambda a: np.isfinite(a).view(FakeDeviceArray)
    cupy.RawModule = RawModule
    cupy.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1, deviceSynchronize=lambda: None),
        get_current_stream=lambda: _FakeStream(),
        Stream=_FakeStream,
        Device=lambda i=0: _FakeDevice(),
    )
    cupyx.empty_pinned = lambda shape, dtype=np.float64: np.empty(shape, dtype)
    return cupy, cupyx


def clear_cupy_caches() -> None:
    """Forget what kernels/cuda/convert.py cached about CuPy (whether it is there, the
    compiled module, the kernels) and the copy streams sdk/gpu_input.py keeps per device,
    so a stand-in installed or removed is seen (a real CuPy stream cached by an earlier
    test, on a CUDA machine, would otherwise be handed the stand-in's events)."""
    from pixelrun import gpu_input

    cupy_convert.is_available.cache_clear()
    cupy_convert._raw_module.cache_clear()
    cupy_convert.kernel.cache_clear()
    with gpu_input._streams_lock:
        for key in [k for k in gpu_input._streams if k[0] == "cupy"]:
            del gpu_input._streams[key]


def install_fake_cupy(host: HostKernels, monkeypatch: pytest.MonkeyPatch):
    """The stand-in (cupy, cupyx) in sys.modules until `monkeypatch` undoes it, with the
    caches cleared so kernels/cuda finds it; returns the cupy stand-in. The caller clears
    the caches again (`clear_cupy_caches`) when the test is done."""
    cupy, cupyx = fake_cupy_modules(host, cupy_convert.cuda_source())
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    clear_cupy_caches()
    return cupy
