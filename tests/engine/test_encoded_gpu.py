"""EncodedImage JPEGs decoded on the GPU by nvImageCodec for the CuPy backend (engine/encoded.py).

Two ways in:
- Here (no GPU): the choice and the plumbing, with the CuPy stand-in of
  tests/kernels/cuda_host_harness.py (its "device" arrays are NumPy memory, its kernels the
  real kernels/cuda sources compiled for the host) and a FAKE of nvImageCodec's decoder API
  only (`_fake_nvimgcodec`): its pixels are Pillow's decode of the same bytes, so what is
  checked is the path -- which frames go to the GPU decoder, that its device array reaches
  the Layer and the CUDA compositor without a host copy, the device cache, and every
  fallback to Pillow (named warning, nothing lost) -- not nvJPEG's pixels.
- On a CUDA machine (skipped here; REQUIRED under PIXELRUN_REQUIRE_CUDA=1): the real
  nvImageCodec + CUDA conversion against Pillow's decode + the NumPy reference, within
  JPEG-decoder tolerance (see JPEG_DECODER_TOLERANCE).
"""

from __future__ import annotations

import io
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import pixelrun as rr
from pixelrun.engine import api, encoded, scene
from pixelrun.engine.scene import scene_at
from pixelrun.engine.store.store import ChunkStore
from pixelrun.kernels.cuda import composite as cupy_composite
from pixelrun.kernels.cuda import convert as cupy_convert
from pixelrun.kernels.formats import ColorModel
from pixelrun.kernels.reference import composite as reference_composite
from pixelrun.kernels.reference import convert as reference_convert

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernels"))
import cuda_host_harness
from cuda_host_harness import FakeDeviceArray, clear_cupy_caches, host_kernels_or_skip, install_fake_cupy

RNG = np.random.default_rng(31)
SMOOTH = (np.stack(np.meshgrid(np.arange(40), np.arange(24)), -1).sum(-1)[..., None] * [3, 5, 7] % 256).astype(np.uint8)
RGB = np.clip(SMOOTH + RNG.integers(0, 30, SMOOTH.shape), 0, 255).astype(np.uint8)
GREY = RGB[..., 1].copy()


def _encode(pixels: np.ndarray, fmt: str, **save) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(pixels).save(out, format=fmt, **save)
    return out.getvalue()


JPEG = _encode(RGB, "JPEG", quality=90)
PNG = _encode(RGB[:10, :12], "PNG")


def _store(log) -> ChunkStore:
    rec = rr.RecordingStream("encoded-gpu-test")
    mem = rec.memory_recording()
    log(rec)
    rec.flush()
    store = ChunkStore(memory_limit=None)
    store.ingest_bytes(mem.rrd_bytes())
    rec.close()
    return store


def _jpeg_and_png(rec):
    rec.log("cam/jpeg", rr.EncodedImage(contents=JPEG, media_type="image/jpeg"), static=True)
    rec.log("cam/png", rr.EncodedImage(contents=PNG), static=True)


def _reset_gpu_choice():
    encoded._GPU.clear()
    scene._GPU_FALLBACK_SAID.clear()
    clear_cupy_caches()


# ------------------------------------------------------------------ the fake decoder API


class _FakeDecoder:
    """nvImageCodec's Decoder as far as engine/encoded.py uses it. Pixels: Pillow's."""

    calls: list = []
    fail: set = set()  # bytes it returns None for (nvImageCodec's "cannot decode")
    pad = 0  # extra bytes per row, as nvImageCodec may pitch rows

    def __init__(self, device_id=-1, max_num_cpu_threads=0, backends=None, options=""):
        kinds = {b.backend_kind for b in backends}
        assert kinds == {"GPU_ONLY", "HW_GPU_ONLY"}, kinds  # no CPU stage is allowed
        assert ":fancy_upsampling=1" in options.split()  # chroma upsampled as Pillow's libjpeg-turbo does

    def decode(self, src, *, image=None, params=None, cuda_stream=0):
        assert params.sample_format == "I_RGB" and params.color_spec == "SRGB"
        assert params.apply_exif_orientation is False
        _FakeDecoder.calls.append(src.data)
        if src.data in _FakeDecoder.fail:
            return None
        rgb = np.asarray(PILImage.open(io.BytesIO(src.data)).convert("RGB"))
        h, w, _ = rgb.shape
        pitch = w * 3 + _FakeDecoder.pad
        dev = np.zeros((h, pitch), np.uint8).view(FakeDeviceArray)
        rows = dev[:, : w * 3].reshape(h, w, 3)  # the (H, W, 3) image inside pitched rows
        rows[...] = rgb
        _FakeDecoder.last = rows
        return rows  # the fake CuPy reads it as a device array (it carries __cuda_array_interface__)


def _fake_nvimgcodec():
    n = types.ModuleType("nvidia.nvimgcodec")
    n.BackendKind = types.SimpleNamespace(GPU_ONLY="GPU_ONLY", HW_GPU_ONLY="HW_GPU_ONLY", CPU_ONLY="CPU_ONLY",
                                          HYBRID_CPU_GPU="HYBRID_CPU_GPU")
    n.Backend = lambda backend_kind: types.SimpleNamespace(backend_kind=backend_kind)
    n.ColorSpec = types.SimpleNamespace(SRGB="SRGB")
    n.SampleFormat = types.SimpleNamespace(I_RGB="I_RGB")
    n.DecodeParams = lambda **kw: types.SimpleNamespace(**kw)
    n.CodeStream = lambda data: types.SimpleNamespace(data=bytes(data))
    n.Decoder = _FakeDecoder
    pkg = types.ModuleType("nvidia")
    pkg.nvimgcodec = n
    return pkg, n


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    return host_kernels_or_skip(tmp_path_factory, "cuda_host_encoded")


@pytest.fixture
def fake_cupy(host, monkeypatch):
    cupy = install_fake_cupy(host, monkeypatch)
    # the stand-in's streams are synchronous; nvImageCodec is handed CuPy's stream handle
    monkeypatch.setattr(cuda_host_harness._FakeStream, "ptr", 0, raising=False)
    _reset_gpu_choice()
    yield cupy
    _reset_gpu_choice()


@pytest.fixture
def fake_gpu(fake_cupy, monkeypatch):
    pkg, n = _fake_nvimgcodec()
    monkeypatch.setitem(sys.modules, "nvidia", pkg)
    monkeypatch.setitem(sys.modules, "nvidia.nvimgcodec", n)
    monkeypatch.setattr(_FakeDecoder, "calls", [])
    monkeypatch.setattr(_FakeDecoder, "fail", set())
    monkeypatch.setattr(_FakeDecoder, "pad", 0)
    return n


def _by_entity(layers):
    return {l.entity: l for l in layers}


def _on_device(buf) -> bool:
    return hasattr(buf, "__cuda_array_interface__")


# ------------------------------------------------------------------ the choice and the plumbing


@pytest.mark.parametrize("pad", [0, 6], ids=["tight-rows", "pitched-rows"])
def test_jpeg_is_decoded_on_the_device_and_reaches_the_cuda_compositor(fake_gpu, pad):
    _FakeDecoder.pad = pad
    store = _store(_jpeg_and_png)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing falls back here
        layers = _by_entity(scene_at(store, None, None, decode_device="cuda"))
    jpeg, png = layers["/cam/jpeg"], layers["/cam/png"]
    assert _on_device(jpeg.buffer) and not _on_device(png.buffer)  # PNG stays with Pillow
    assert _FakeDecoder.calls[-1] == JPEG
    if pad == 0:  # no copy at all between the decoder's output and the Layer
        assert np.shares_memory(np.asarray(jpeg.buffer), np.asarray(_FakeDecoder.last))
    assert (jpeg.format.width, jpeg.format.height) == (40, 24)
    # drawn by the CUDA compositor from the device buffer == Pillow's decode on the CPU path
    cpu_layers = scene_at(store, None, None)
    assert not any(_on_device(l.buffer) for l in cpu_layers)
    want = reference_composite.composite(cpu_layers)
    got = cupy_composite.composite(list(layers.values()))
    np.testing.assert_array_equal(got, want)


def test_device_frames_are_cached_by_bytes_and_decoded_once(fake_gpu):
    store = _store(_jpeg_and_png)
    scene_at(store, None, None, decode_device="cuda")
    scene_at(store, None, None, decode_device="cpu")  # another device: the CPU cache, no GPU call
    scene._caches(store)["layers"].clear()  # the layer cache aside: the decoded-frame cache answers
    scene_at(store, None, None, decode_device="cuda")
    probe, *rest = _FakeDecoder.calls
    assert rest == [JPEG]  # after the probe frame: the JPEG once, for three scenes on two devices
    gpu_cache, cpu_cache = encoded.decoded_cache(store, "cuda"), encoded.decoded_cache(store, "cpu")
    assert gpu_cache is not cpu_cache and gpu_cache.max_bytes == encoded.DECODE_CACHE_BYTES
    assert gpu_cache.nbytes == 40 * 24 * 3 + 10 * 12 * 3  # the device JPEG frame + the PNG Pillow decoded


def test_probe_runs_once_and_cpu_scenes_never_use_the_gpu(fake_gpu):
    store = _store(_jpeg_and_png)
    layers = scene_at(store, None, None)  # default: CPU
    assert not any(_on_device(l.buffer) for l in layers) and _FakeDecoder.calls == []
    scene_at(store, None, None, decode_device="cuda")
    scene_at(store, None, None, decode_device="cuda")
    probe, *rest = _FakeDecoder.calls
    assert probe.startswith(b"\xff\xd8") and rest == [JPEG]  # the probe frame, then the JPEG once


def test_a_frame_the_gpu_decoder_fails_is_decoded_by_pillow_with_a_named_warning(fake_gpu):
    _FakeDecoder.fail = {JPEG}
    store = _store(_jpeg_and_png)
    with pytest.warns(encoded.GpuDecodeWarning, match=r"/cam/jpeg: image/jpeg, \d+ bytes: nvImageCodec could not"):
        layers = _by_entity(scene_at(store, None, None, decode_device="cuda"))
    assert not _on_device(layers["/cam/jpeg"].buffer)
    want = _by_entity(scene_at(store, None, None))
    np.testing.assert_array_equal(layers["/cam/jpeg"].buffer, want["/cam/jpeg"].buffer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fallback is cached: no second decode, no second warning
        scene._caches(store)["layers"].clear()
        scene_at(store, None, None, decode_device="cuda")
    assert _FakeDecoder.calls.count(JPEG) == 1


def test_a_damaged_jpeg_is_refused_by_the_header_check_before_the_gpu(fake_gpu):
    def log(rec):
        rec.log("cam/bad", rr.EncodedImage(contents=JPEG[:40], media_type="image/jpeg"), static=True)
        rec.log("cam/png", rr.EncodedImage(contents=PNG), static=True)

    problems: list = []
    layers = scene_at(_store(log), None, None, problems=problems, decode_device="cuda")
    assert [l.entity for l in layers] == ["/cam/png"]
    assert len(problems) == 1 and problems[0].startswith("/cam/bad: EncodedImage cannot be decoded: image/jpeg")
    assert JPEG[:40] not in _FakeDecoder.calls


def test_grey_jpeg_decodes_on_the_gpu_as_rgb_showing_the_same(fake_gpu):
    def log(rec):
        rec.log("g", rr.EncodedImage(contents=_encode(GREY, "JPEG", quality=85)), static=True)

    store = _store(log)
    got = scene_at(store, None, None, decode_device="cuda")[0]
    want = scene_at(store, None, None)[0]
    assert _on_device(got.buffer) and (got.format.model, want.format.model) == (ColorModel.RGB, ColorModel.L)
    np.testing.assert_array_equal(cupy_composite.composite([got]), reference_composite.composite([want]))


def test_missing_nvimgcodec_falls_back_to_pillow_once_named(fake_cupy, monkeypatch):
    monkeypatch.setitem(sys.modules, "nvidia", None)  # `from nvidia import nvimgcodec` -> ImportError
    store = _store(_jpeg_and_png)
    with pytest.warns(encoded.GpuDecodeWarning, match="decoded by Pillow on the CPU: nvImageCodec is not installed"):
        layers = scene_at(store, None, None, decode_device="cuda")
    assert not any(_on_device(l.buffer) for l in layers)
    want = scene_at(store, None, None)
    np.testing.assert_array_equal(reference_composite.composite(layers), reference_composite.composite(want))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per process
        scene._caches(store)["layers"].clear()
        scene_at(store, None, None, decode_device="cuda")


def test_a_gpu_decoder_that_fails_its_probe_is_not_chosen(fake_gpu, monkeypatch):
    def broken(self, src, **kw):
        raise RuntimeError("nvJPEG library not loaded")

    monkeypatch.setattr(_FakeDecoder, "decode", broken)
    decoder, why = encoded.gpu_decoder()
    assert decoder is None
    assert "cannot decode JPEG on the GPU here (nvImageCodec: RuntimeError: nvJPEG library not loaded)" in why
    store = _store(_jpeg_and_png)
    with pytest.warns(encoded.GpuDecodeWarning, match="decoded by Pillow on the CPU: nvImageCodec cannot decode"):
        layers = scene_at(store, None, None, decode_device="cuda")
    assert not any(_on_device(l.buffer) for l in layers)


def test_without_cuda_the_cuda_scene_is_the_cpu_scene(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # as on a machine without CuPy
    _reset_gpu_choice()
    try:
        store = _store(_jpeg_and_png)
        with pytest.warns(encoded.GpuDecodeWarning, match="decoded by Pillow on the CPU: CuPy is not installed"):
            layers = scene_at(store, None, None, decode_device="cuda")
        assert not any(_on_device(l.buffer) for l in layers)
    finally:
        _reset_gpu_choice()


def test_unknown_decode_device_is_refused():
    with pytest.raises(ValueError, match="decode_device must be one of"):
        scene_at(ChunkStore(memory_limit=None), None, None, decode_device="gpu")


def test_render_with_the_cupy_backend_decodes_on_the_gpu(fake_gpu):
    store = _store(_jpeg_and_png)
    got = api.render(store, backend="cupy")
    assert JPEG in _FakeDecoder.calls
    np.testing.assert_array_equal(got, api.render(store, backend="numpy"))
    frames = list(api.render_times(store, [0], backend="cupy"))  # the batched path (render_many)
    np.testing.assert_array_equal(frames[0][1], got)


def test_device_and_fallback_frames_of_one_format_batch_together(fake_gpu):
    other = _encode(RGB[::-1].copy(), "JPEG", quality=90)  # same size and format as JPEG
    _FakeDecoder.fail = {other}

    def log(rec):
        rec.log("a", rr.EncodedImage(contents=JPEG), static=True)
        rec.log("b", rr.EncodedImage(contents=other, opacity=0.5), static=True)

    store = _store(log)
    with pytest.warns(encoded.GpuDecodeWarning, match="/b: "):
        layers = _by_entity(scene_at(store, None, None, decode_device="cuda"))
    assert _on_device(layers["/a"].buffer) and not _on_device(layers["/b"].buffer)
    frames = list(api.render_times(store, [0], backend="cupy"))  # render_many: one batch of both
    np.testing.assert_array_equal(frames[0][1], api.render(store, backend="numpy"))


# ------------------------------------------------------------------ real nvImageCodec on a CUDA machine

# Pillow (libjpeg-turbo: its accurate integer IDCT, triangle-filter "fancy" chroma
# upsampling) and nvJPEG (its own GPU IDCT; fancy upsampling asked for, engine/encoded.py)
# are both conformant decoders, and conformance (ITU-T T.83) lets IDCT outputs differ by
# 1 LSB before YCbCr -> RGB, whose rounding adds more. Measured here on this very frame with
# nvImageCodec's CPU libjpeg-turbo decoder, as a stand-in for "another IDCT": its fast
# integer IDCT against Pillow differs by max 6 / mean 1.00 (4:4:4) and max 5 / mean 1.01
# (4:2:0); without fancy upsampling 4:2:0 differs by max 88 (the sharp chroma edges of
# the blue ramp), which is why fancy upsampling is on. Bound: every sample within 8, the
# mean within 1.5 (a swapped channel order or a missing colour conversion is off by tens).
JPEG_DECODER_TOLERANCE = 8
JPEG_DECODER_MEAN_TOLERANCE = 1.5
CUDA_OK, CUDA_WHY = cupy_convert.is_available()


@pytest.mark.skipif(not CUDA_OK, reason=f"needs CuPy and a CUDA device: {CUDA_WHY}")
@pytest.mark.parametrize("subsampling", [0, 2], ids=["444", "420"])
def test_real_nvimgcodec_decode_and_cuda_convert_match_pillow(subsampling):
    _reset_gpu_choice()
    decoder, why = encoded.gpu_decoder()
    if decoder is None:
        pytest.skip(f"no GPU JPEG decoder on this CUDA machine: {why}")
    h, w = 270, 480
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frame = np.stack([128 + 90 * np.sin(x / 37.0), 128 + 90 * np.cos(y / 23.0), (x + y) % 256], -1)
    frame = np.clip(frame + np.random.default_rng(5).normal(0, 6, frame.shape), 0, 255).astype(np.uint8)
    data = _encode(frame, "JPEG", quality=90, subsampling=subsampling)
    buf, fmt = decoder.decode(data)
    assert _on_device(buf)
    got = cupy_convert.to_display_rgba(buf, fmt)
    want = reference_convert.to_display_rgba(*encoded.decode(data, "image/jpeg"))
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= JPEG_DECODER_TOLERANCE and diff.mean() <= JPEG_DECODER_MEAN_TOLERANCE, (
        f"max {diff.max()}, mean {diff.mean():.3f}")
    # and through the scene: the Layer's buffer is the device frame
    store = _store(lambda rec: rec.log("cam", rr.EncodedImage(contents=data), static=True))
    layer = scene_at(store, None, None, decode_device="cuda")[0]
    assert _on_device(layer.buffer)
    np.testing.assert_array_equal(cupy_composite.composite([layer]), got)
