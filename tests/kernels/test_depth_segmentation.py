"""Depth, colormapped and segmentation images (contract §8) on every backend.

Expected values never come from the code under test:
- depth and colormapped images: what Rerun 0.41's own viewer draws for each colormap at
  t = k / 15 (rerun_colormap_samples.RERUN_SHOWS), with samples chosen so that t is k / 15
  through the range rule being tested (explicit range, Rerun's default [0, max], an
  Image's [0, 255]); NaN and negative depth show t = 0 and +Inf t = 1, as Rerun showed
  them (a float32 depth image with NaN, 0, -1, +Inf in its viewer);
- segmentation: the class-colour table indexed in the test.
Backends: the NumPy reference, wgpu, CuPy (skipped without CUDA) and the CUDA kernels
compiled for the CPU (cuda_host_harness; skipped without g++). Between backends integer
sources of at most 16 bits are bit-exact, float sources within 1 LSB.
"""

from __future__ import annotations

import numpy as np
import pytest
from cuda_host_harness import host_kernels_or_skip
from rerun_colormap_samples import RERUN_SHOWS, TRANSPARENT_IN_RERUN

from pixelrun.kernels.backends import availability, backend_module
from pixelrun.kernels.colormaps import Colormap
from pixelrun.kernels.cuda.convert import plan_conversion
from pixelrun.kernels.formats import DATATYPES, ChannelDatatype, ColorModel, ImageFormat
from pixelrun.kernels.reference import convert as reference

BACKEND_NAMES = ["numpy", "wgpu", "cupy", "cuda-host"]


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    return host_kernels_or_skip(tmp_path_factory, "cuda_host_table")


@pytest.fixture(scope="module", params=BACKEND_NAMES)
def convert(request):
    """convert(data, fmt, value_range=None, **kind_colormap_colours) -> (H, W, 4) uint8."""
    name = request.param
    if name == "cuda-host":
        host = request.getfixturevalue("host_kernels")

        def run(data, fmt, value_range=None, **kw):
            src = np.frombuffer(data, np.uint8)[None].copy()  # fresh, aligned
            dst = np.full((1, fmt.height, fmt.width, 4), 77, np.uint8)  # a forgotten pixel shows 77
            host.run(plan_conversion(np, src, dst, fmt, value_range, **kw))
            return dst[0]

        return run
    ok, reason = availability(name)
    if not ok:
        pytest.skip(f"{name} backend unavailable: {reason}")
    mod = backend_module(name)

    def run(data, fmt, value_range=None, **kw):
        out = mod.to_display_rgba(np.frombuffer(data, np.uint8), fmt, value_range, **kw)
        return np.asarray(out.get() if hasattr(out, "get") and not isinstance(out, np.ndarray) else out)

    return run


def _fmt(width: int, height: int, dt: ChannelDatatype, model: ColorModel = ColorModel.L) -> ImageFormat:
    return ImageFormat(width, height, None, model, dt)


def _rerun_row(cmap: Colormap, ks) -> np.ndarray:
    """(len(ks), 4): what Rerun shows at t = k / 15; transparent entries as (0, 0, 0, 0)."""
    out = np.zeros((len(ks), 4), np.int16)
    for i, k in enumerate(ks):
        if (cmap, k) not in TRANSPARENT_IN_RERUN:
            out[i, :3] = RERUN_SHOWS[cmap][k]
            out[i, 3] = 255
    return out


def _assert_close(got: np.ndarray, want: np.ndarray, tol: int, what: str) -> None:
    got = got.reshape(-1, 4).astype(np.int16)
    want = want.reshape(-1, 4).astype(np.int16)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    # a transparent pixel's colour is not seen: compare alpha there, everything elsewhere
    seen = want[:, 3] > 0
    diff = np.abs(got - want)
    diff[~seen, :3] = 0
    bad = np.argwhere(diff.max(axis=-1) > tol).reshape(-1)
    detail = "; ".join(f"#{i}: got {got[i].tolist()} want {want[i].tolist()}" for i in bad[:4])
    assert bad.size == 0, f"{what}: {bad.size} pixel(s) differ by more than {tol}: {detail}"


KS = list(range(16))
CMAPS = list(Colormap)


@pytest.mark.parametrize("cmap", CMAPS, ids=[c.name for c in CMAPS])
def test_u8_depth_with_a_depth_range(convert, cmap):
    data = np.array([KS], np.uint8)  # t = v / 15
    got = convert(data.tobytes(), _fmt(16, 1, ChannelDatatype.U8), (0, 15), kind="depth", colormap=cmap)
    _assert_close(got, _rerun_row(cmap, KS), 1, f"u8 depth {cmap.name}")


@pytest.mark.parametrize("cmap", CMAPS, ids=[c.name for c in CMAPS])
def test_u16_depth_takes_rerun_s_default_range_zero_to_max(convert, cmap):
    data = np.array([[4369 * k for k in KS]], np.uint16)  # max 65535: t = v / 65535 = k / 15
    got = convert(data.tobytes(), _fmt(16, 1, ChannelDatatype.U16), kind="depth", colormap=cmap)
    _assert_close(got, _rerun_row(cmap, KS), 1, f"u16 depth {cmap.name}")


@pytest.mark.parametrize("cmap", CMAPS, ids=[c.name for c in CMAPS])
def test_f32_depth_default_range_and_invalid_values(convert, cmap):
    values = [4.0 * k / 15 for k in KS] + [np.nan, -1.0, np.inf, -np.inf]  # max finite 4: t = k / 15
    data = np.array([values], np.float32)
    got = convert(data.tobytes(), _fmt(len(values), 1, ChannelDatatype.F32), kind="depth", colormap=cmap)
    # NaN -> t = 0, -1 -> t = 0 (clamped), +Inf -> t = 1, -Inf -> t = 0
    _assert_close(got, _rerun_row(cmap, KS + [0, 0, 15, 0]), 1, f"f32 depth {cmap.name}")


def test_depth_default_colormap_is_turbo_and_no_positive_sample_is_t0(convert):
    data = np.array([[0, 5, 15]], np.uint8)
    got = convert(data.tobytes(), _fmt(3, 1, ChannelDatatype.U8), kind="depth")
    _assert_close(got, _rerun_row(Colormap.Turbo, [0, 5, 15]), 1, "default colormap")
    zeros = np.zeros((1, 3), np.float32)
    got = convert(zeros.tobytes(), _fmt(3, 1, ChannelDatatype.F32), kind="depth")
    _assert_close(got, _rerun_row(Colormap.Turbo, [0, 0, 0]), 1, "all-zero depth")


@pytest.mark.parametrize("cmap", CMAPS, ids=[c.name for c in CMAPS])
def test_u8_image_with_a_colormap_uses_the_image_range(convert, cmap):
    data = np.array([[17 * k for k in KS]], np.uint8)  # an Image's U8 range is [0, 255]
    got = convert(data.tobytes(), _fmt(16, 1, ChannelDatatype.U8), colormap=cmap)
    _assert_close(got, _rerun_row(cmap, KS), 1, f"u8 image {cmap.name}")


@pytest.mark.parametrize("dt", [ChannelDatatype.U8, ChannelDatatype.U16], ids=["u8", "u16"])
def test_segmentation_class_colours(convert, dt):
    rng = np.random.default_rng(int(dt))
    n = 200 if dt == ChannelDatatype.U8 else 300
    colors = rng.integers(0, 256, (n, 4), dtype=np.uint8)
    top = 256 if dt == ChannelDatatype.U8 else 2000
    ids = rng.integers(0, top, (23, 31)).astype(DATATYPES[dt].numpy)
    ids[0, :3] = [0, n - 1, n]  # first, last, one past the table
    want = np.where((ids < n)[..., None], colors[np.minimum(ids, n - 1)], 0)
    got = convert(ids.tobytes(), _fmt(31, 23, dt), kind="segmentation", class_colors=colors)
    _assert_close(got, want, 0, f"segmentation {dt.name}")
    assert (got[ids >= n] == 0).all(), "ids beyond the table are transparent"


def test_float_segmentation_rounds_ids_and_hides_nan(convert):
    colors = np.array([[10, 20, 30, 255], [40, 50, 60, 128], [70, 80, 90, 255]], np.uint8)
    ids = np.array([[0.2, 0.6, 1.4, 2.0, np.nan, -1.0, 3.0, np.inf]], np.float32)
    want = np.array([colors[0], colors[1], colors[1], colors[2], [0] * 4, [0] * 4, [0] * 4, [0] * 4])
    got = convert(ids.tobytes(), _fmt(8, 1, ChannelDatatype.F32), kind="segmentation", class_colors=colors)
    _assert_close(got, want, 0, "float segmentation")


def test_segmentation_without_a_table_is_transparent(convert):
    ids = np.arange(6, dtype=np.uint16).reshape(2, 3)
    got = convert(ids.tobytes(), _fmt(3, 2, ChannelDatatype.U16), kind="segmentation")
    assert (got == 0).all()


@pytest.mark.parametrize("kind", ["depth", "segmentation"])
def test_multi_channel_depth_or_segmentation_is_refused(convert, kind):
    data = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(ValueError, match="one channel"):
        convert(data.tobytes(), _fmt(2, 2, ChannelDatatype.U8, ColorModel.RGB), kind=kind)


def _random_samples(dt: ChannelDatatype, rng) -> np.ndarray:
    npd = DATATYPES[dt].numpy
    if DATATYPES[dt].is_float:
        a = (rng.random((19, 27)) * 5000 - 300).astype(npd)
        a[0, :4] = [np.nan, np.inf, -np.inf, 0]
        return a
    info = np.iinfo(npd)
    return rng.integers(max(info.min, -400), min(info.max, 6000), (19, 27), endpoint=True).astype(npd)


@pytest.mark.parametrize("dt", list(ChannelDatatype), ids=[d.name for d in ChannelDatatype])
def test_backends_agree_with_the_reference_for_every_datatype_and_colormap(convert, dt):
    """Random samples of every datatype, every colormap, the default and explicit ranges
    (integer and fractional ends): bit-exact for <= 16-bit integers, else within 1."""
    rng = np.random.default_rng(int(dt))
    samples = _random_samples(dt, rng)
    fmt = _fmt(27, 19, dt)
    info = DATATYPES[dt]
    tol = 0 if (not info.is_float and info.size <= 2) else 1
    for i, cmap in enumerate(CMAPS):
        value_range = [None, (100, 3000), (-50.5, 2000.25)][i % 3]
        for kind in ("depth", "image"):
            kw = {"kind": kind, "colormap": cmap}
            want = reference.to_display_rgba(samples.tobytes(), fmt, value_range, **kw)
            got = convert(samples.tobytes(), fmt, value_range, **kw)
            _assert_close(got, want, tol, f"{dt.name} {kind} {cmap.name} range {value_range}")


def test_wgpu_tiles_and_bands_use_the_table_too():
    """Images wider or taller than the device's texture limit are decoded in tiles: each
    tile reads the same table (max_tile forces several tiles here)."""
    ok, reason = availability("wgpu")
    if not ok:
        pytest.skip(f"wgpu unavailable: {reason}")
    from pixelrun.kernels.wgpu import device as gpu
    from pixelrun.kernels.wgpu.convert import converter_for

    conv = converter_for(gpu.get_device())
    samples = np.random.default_rng(0).integers(0, 9000, (23, 37)).astype(np.uint16)
    fmt = _fmt(37, 23, ChannelDatatype.U16)
    colors = np.random.default_rng(1).integers(0, 256, (400, 4), dtype=np.uint8)
    for kw in ({"kind": "depth", "colormap": Colormap.Magma}, {"kind": "segmentation", "class_colors": colors}):
        got = conv.to_display_rgba(samples.tobytes(), fmt, max_tile=8, **kw)
        assert np.array_equal(got, reference.to_display_rgba(samples.tobytes(), fmt, **kw)), kw["kind"]


def test_a_malformed_class_colour_table_is_named(convert):
    ids = np.zeros((2, 2), np.uint8)
    with pytest.raises(ValueError, match=r"class_colors must be an \(N, 4\) uint8"):
        convert(ids.tobytes(), _fmt(2, 2, ChannelDatatype.U8), kind="segmentation",
                class_colors=np.zeros((3, 3), np.uint8))
