"""Adapter selection (kernels/wgpu/device.py): environment variables, errors, other backends."""

from __future__ import annotations

import numpy as np
import pytest

from pixelrun.kernels.formats import ImageFormat, PixelFormat
from pixelrun.kernels.reference import convert as reference
from pixelrun.kernels.wgpu import device as gpu

ok, why = gpu.is_available()
pytestmark = pytest.mark.skipif(not ok, reason=f"no wgpu adapter: {why}")


def test_shared_device_is_one_per_process():
    assert gpu.get_device() is gpu.get_device()
    assert gpu.adapter_summary()


def test_unknown_backend_name_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PIXELRUN_WGPU_BACKEND", "directx9")
    with pytest.raises(gpu.GpuUnavailable, match="PIXELRUN_WGPU_BACKEND.*vulkan, gl, metal, dx12"):
        gpu.select_adapter()


def test_unknown_power_preference_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PIXELRUN_WGPU_POWER", "fast")
    with pytest.raises(gpu.GpuUnavailable, match="PIXELRUN_WGPU_POWER"):
        gpu.select_adapter()


def test_missing_backend_names_what_is_there():
    import wgpu

    present = {a.info.get("backend_type") for a in wgpu.gpu.enumerate_adapters_sync()}
    missing = [k for k, v in gpu.ADAPTER_BACKENDS.items() if v not in present]
    if not missing:
        pytest.skip("every backend has an adapter on this machine")
    with pytest.raises(gpu.GpuUnavailable, match="available backends"):
        gpu.select_adapter(missing[0])


def _gl_version(description: str):
    """(major, minor) from a GL driver description such as '3.3.0 NVIDIA 580.159.04' or
    '4.5 (Core Profile) Mesa 22.3.6'; None when it does not start with one."""
    import re

    m = re.match(r"\s*(?:OpenGL ES )?(\d+)\.(\d+)", description)
    return (int(m.group(1)), int(m.group(2))) if m else None


def test_create_device_retries_with_default_limits_then_names_the_adapter():
    class Adapter:
        limits = {"max-buffer-size": 1 << 40}
        info = {"backend_type": "OpenGL", "device": "Some GPU", "description": "3.3.0 Vendor"}

        def __init__(self, fail_times):
            self.fail_times, self.calls = fail_times, []

        def request_device_sync(self, **kw):
            self.calls.append(kw)
            if len(self.calls) <= self.fail_times:
                raise RuntimeError(f"Request device failed ({len(self.calls)})")
            return "device"

    once = Adapter(1)
    assert gpu.create_device(once) == "device"
    assert once.calls[0]["required_limits"] == {"max-buffer-size": 1 << 40}
    assert "required_limits" not in once.calls[1]
    twice = Adapter(2)
    with pytest.raises(gpu.GpuUnavailable) as info:
        gpu.create_device(twice)
    msg = str(info.value)
    assert "OpenGL adapter 'Some GPU'" in msg and "3.3.0 Vendor" in msg
    assert "failed (2)" in msg and "failed (1)" in msg and "PIXELRUN_WGPU_BACKEND" in msg


@pytest.mark.parametrize("backend", ["vulkan", "gl"])
def test_each_present_backend_converts(backend):
    """lavapipe (Vulkan) and llvmpipe (GL) both run the WGSL path when present."""
    import wgpu

    from pixelrun.kernels.wgpu.convert import WgslConverter

    wanted = gpu.ADAPTER_BACKENDS[backend]
    if not any(a.info.get("backend_type") == wanted for a in wgpu.gpu.enumerate_adapters_sync()):
        pytest.skip(f"no {wanted} adapter on this machine")
    adapter = gpu.select_adapter(backend)
    desc = adapter.info.get("description", "")
    version = _gl_version(desc) if backend == "gl" else None
    if version is not None and version < ((3, 1) if "OpenGL ES" in desc else (4, 3)):
        # wgpu's GL backend runs compute only on GL 4.3 / GLES 3.1 (NVIDIA's EGL offered 3.3)
        with pytest.raises(gpu.GpuUnavailable, match="could not create a device"):
            gpu.create_device(adapter)
        pytest.skip(f"GL {version[0]}.{version[1]} adapter: no compute shaders (needs 4.3); refused clearly")
    device = gpu.create_device(adapter)
    conv = WgslConverter(device)
    fmt = ImageFormat(9, 7, pixel_format=PixelFormat.NV12)
    data = np.arange(fmt.byte_count(), dtype=np.uint8)
    got = conv.to_display_rgba(data, fmt)
    assert np.abs(got.astype(int) - reference.to_display_rgba(data, fmt)).max() <= 1
    u16 = np.arange(63, dtype="<u2").reshape(7, 9) * 1000
    fmt16 = ImageFormat(9, 7, color_model="L", channel_datatype="U16")
    got16 = conv.to_display_rgba(u16.view(np.uint8).reshape(-1), fmt16)
    # range [0, 62000]: exact integer formula of the precision contract
    want = (510 * u16.astype(np.int64) + 62000) // (2 * 62000)
    assert np.array_equal(got16[..., 0], want.astype(np.uint8))
