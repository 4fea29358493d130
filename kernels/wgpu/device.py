"""Adapter and device selection: one shared wgpu device per process.

Environment:
- ``PIXELRUN_WGPU_BACKEND``: ``vulkan``, ``gl``, ``metal`` or ``dx12`` restricts the
  adapter to that backend (e.g. ``gl`` for Mesa's llvmpipe when Vulkan is missing).
- ``PIXELRUN_WGPU_POWER``: ``high-performance`` (default) or ``low-power``.

With neither set, wgpu picks its preferred adapter for the power preference; on a
machine without a GPU that is Mesa's lavapipe (Vulkan) or llvmpipe (GL). The device
is requested with the adapter's own storage-buffer limits, so large raw images fit.
"""

from __future__ import annotations

import os
import threading
from typing import Optional

# wgpu adapter backends (PIXELRUN_WGPU_BACKEND values -> wgpu backend_type); not pixelrun backends
ADAPTER_BACKENDS = {"vulkan": "Vulkan", "gl": "OpenGL", "metal": "Metal", "dx12": "D3D12"}
POWER_PREFERENCES = ("high-performance", "low-power")

# adapter_type ranks for each power preference (smaller is better)
_RANK = {
    "high-performance": {"DiscreteGPU": 0, "IntegratedGPU": 1, "VirtualGPU": 2, "CPU": 3},
    "low-power": {"IntegratedGPU": 0, "DiscreteGPU": 1, "VirtualGPU": 2, "CPU": 3},
}

_lock = threading.Lock()
_device = None
_adapter = None


class GpuUnavailable(RuntimeError):
    """No wgpu adapter/device could be obtained; the message says why and what to do."""


def _setting(name: str, allowed, default: Optional[str]) -> Optional[str]:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value not in allowed:
        raise GpuUnavailable(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def select_adapter(backend: Optional[str] = None, power_preference: Optional[str] = None):
    """The adapter for a backend name (see ADAPTER_BACKENDS) and power preference.

    Arguments default to the environment variables in the module docstring.
    """
    import wgpu  # noqa: PLC0415 - keep `import pixelrun.engine` free of wgpu

    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # Mesa warns without it
    backend = backend or _setting("PIXELRUN_WGPU_BACKEND", ADAPTER_BACKENDS, None)
    power = power_preference or _setting("PIXELRUN_WGPU_POWER", POWER_PREFERENCES, "high-performance")
    if backend is None:
        try:
            adapter = wgpu.gpu.request_adapter_sync(power_preference=power)
        except Exception as exc:
            adapter = None
            reason = str(exc)
        else:
            reason = "none offered"
        if adapter is None:
            raise GpuUnavailable(
                f"no wgpu adapter found ({reason}); on a machine without a GPU install Mesa's "
                "lavapipe (`pixelrun setup`, or apt-get install mesa-vulkan-drivers)"
            )
        return adapter
    wanted = ADAPTER_BACKENDS[backend]
    adapters = [a for a in wgpu.gpu.enumerate_adapters_sync() if a.info.get("backend_type") == wanted]
    if not adapters:
        found = sorted({a.info.get("backend_type", "?") for a in wgpu.gpu.enumerate_adapters_sync()})
        raise GpuUnavailable(
            f"PIXELRUN_WGPU_BACKEND={backend}: no {wanted} adapter on this machine "
            f"(available backends: {', '.join(found) or 'none'})"
        )
    ranks = _RANK[power]
    return min(adapters, key=lambda a: ranks.get(a.info.get("adapter_type"), 9))


def create_device(adapter):
    """A device with the adapter's own limits for big storage buffers and textures.

    An adapter that refuses those limits gets a second request with wgpu's defaults
    (large images may then not fit one binding, which the converters report per image);
    one that refuses both raises GpuUnavailable naming the adapter and both answers.
    """
    lim = adapter.limits
    wanted = {
        k: lim[k]
        for k in ("max-storage-buffer-binding-size", "max-buffer-size", "max-texture-dimension-2d")
        if k in lim
    }
    try:
        return adapter.request_device_sync(required_limits=wanted, label="pixelrun")
    except Exception as first:  # wgpu raises RuntimeError; any refusal gets the retry
        try:
            return adapter.request_device_sync(label="pixelrun")
        except Exception as exc:
            info = adapter.info
            raise GpuUnavailable(
                f"the {info.get('backend_type', '?')} adapter {info.get('device', '?')!r} "
                f"(driver {info.get('description', '?')}) could not create a device: {exc} "
                f"(with its own limits: {first}); choose another with PIXELRUN_WGPU_BACKEND"
            ) from None


def get_device():
    """The process-wide shared device (created on first use)."""
    global _device, _adapter
    with _lock:
        if _device is None:
            adapter = select_adapter()
            _device = create_device(adapter)
            _adapter = adapter
        return _device


def adapter_summary() -> str:
    """One line naming the adapter in use, e.g. 'llvmpipe (LLVM 15) / Vulkan / CPU'."""
    get_device()
    info = _adapter.info
    return f"{info.get('device', '?')} / {info.get('backend_type', '?')} / {info.get('adapter_type', '?')}"


def is_available() -> tuple[bool, str]:
    """(True, '') when a device can be had; else (False, the reason). Never raises."""
    try:
        get_device()
    except Exception as exc:  # missing wgpu, no driver, bad env var
        return False, f"wgpu unavailable: {exc}"
    return True, ""
