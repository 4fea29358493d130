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


@pytest.mark.parametrize("backend", ["vulkan", "gl"])
def test_each_present_backend_converts(backend):
    """lavapipe (Vulkan) and llvmpipe (GL) both run the WGSL path when present."""
    import wgpu

    from pixelrun.kernels.wgpu.convert import WgslConverter

    wanted = gpu.ADAPTER_BACKENDS[backend]
    if not any(a.info.get("backend_type") == wanted for a in wgpu.gpu.enumerate_adapters_sync()):
        pytest.skip(f"no {wanted} adapter on this machine")
    device = gpu.create_device(gpu.select_adapter(backend))
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
