"""The CUDA kernels' logic, checked on the CPU against the NumPy reference.

kernels/cuda/*.cu are compiled with g++ through cuda_host_harness.h and driven by the
launch plans of pixelrun.kernels.cuda.convert built with NumPy arrays -- the same
plans, argument for argument, that the CuPy backend launches on a GPU. Every shared
conformance case must match the reference (bit-exact where the precision contract
says so, else within 1), and a batch must equal its frames converted one by one.
What this cannot see (NVRTC compilation, real parallel execution, CuPy's reductions)
is covered by test_cuda_ptx.py and, on a CUDA machine, test_cupy_backend.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from conformance_cases import CASES, Case
from cuda_host_harness import host_kernels_or_skip

from pixelrun.kernels.cuda import convert as cupy_convert
from pixelrun.kernels.cuda.convert import frame_value_ranges, plan_conversion
from pixelrun.kernels.formats import COLOR_MODELS, DATATYPES, ChannelDatatype, ColorModel, ImageFormat, PixelFormat
from pixelrun.kernels.reference import convert as reference

SENTINEL = 77  # pre-fill of the output: a pixel the kernels forgot shows up as this


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    return host_kernels_or_skip(tmp_path_factory, "cuda_host")


def convert_on_host(host, frames: list[bytes], fmt: ImageFormat, value_range=None):
    """Run cupy_convert's plan for these frames through the host-compiled kernels."""
    src = np.stack([np.frombuffer(f, dtype=np.uint8) for f in frames])  # fresh, aligned
    dst = np.full((len(frames), fmt.height, fmt.width, 4), SENTINEL, dtype=np.uint8)
    plan = plan_conversion(np, src, dst, fmt, value_range)
    host.run(plan)
    return dst, plan


def assert_close(got: np.ndarray, want: np.ndarray, tol: int, what: str) -> None:
    assert got.shape == want.shape, (what, got.shape, want.shape)
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    if diff.max() > tol:
        bad = np.argwhere(diff.max(axis=-1) > tol)[:5]
        detail = "; ".join(f"(x={x}, y={y}) got {got[y, x].tolist()} want {want[y, x].tolist()}" for y, x in bad)
        pytest.fail(f"{what}: differs by {diff.max()} > {tol}: {detail}")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kernel_matches_reference(host, case: Case):
    want = reference.to_display_rgba(case.data, case.format, value_range=case.value_range)
    got, _ = convert_on_host(host, [case.data], case.format, case.value_range)
    assert_close(got[0], want, 0 if case.exact else 1, case.id)


def _random_frames(fmt: ImageFormat, n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    if fmt.pixel_format is not None or fmt.datatype == ChannelDatatype.U8:
        return [rng.integers(0, 256, fmt.byte_count(), dtype=np.uint8).tobytes() for _ in range(n)]
    # Each frame its own scale, so the per-frame automatic ranges differ.
    dt = np.dtype(DATATYPES[fmt.datatype].numpy)
    out = []
    for i in range(n):
        count = fmt.byte_count() // dt.itemsize
        if dt.kind == "f":
            vals = rng.uniform(-1.0, 1.0, count) * 10.0 ** (i - 1)
        else:
            hi = min(np.iinfo(dt).max, 50 * 7 ** i)
            lo = max(np.iinfo(dt).min, -hi if dt.kind == "i" else 0)
            vals = rng.integers(lo, hi, count, endpoint=True)
        out.append(vals.astype(dt).tobytes())
    return out


BATCH_FORMATS = [
    ImageFormat(13, 7, pixel_format=PixelFormat.NV12),
    ImageFormat(16, 6, pixel_format=PixelFormat.Y_U_V12_LimitedRange),
    ImageFormat(9, 5, pixel_format=PixelFormat.YUY2),
    ImageFormat(8, 5, pixel_format=PixelFormat.Y_U_V24_FullRange),
    ImageFormat(7, 4, pixel_format=PixelFormat.Y8_LimitedRange),
    ImageFormat(11, 6, pixel_format=PixelFormat.BayerGRBG8),
    ImageFormat(5, 3, color_model=ColorModel.RGB, channel_datatype=ChannelDatatype.U8),
    ImageFormat(5, 3, color_model=ColorModel.L, channel_datatype=ChannelDatatype.U16),
    ImageFormat(4, 3, color_model=ColorModel.BGRA, channel_datatype=ChannelDatatype.I16),
    ImageFormat(4, 3, color_model=ColorModel.RGB, channel_datatype=ChannelDatatype.I64),
    ImageFormat(4, 3, color_model=ColorModel.RGBA, channel_datatype=ChannelDatatype.F32),
    ImageFormat(4, 3, color_model=ColorModel.L, channel_datatype=ChannelDatatype.F16),
]


@pytest.mark.parametrize("fmt", BATCH_FORMATS, ids=lambda f: f.describe().replace(" ", "-"))
def test_batch_is_one_launch_and_equals_frames_one_by_one(host, fmt):
    frames = _random_frames(fmt, 4, seed=fmt.width * 31 + fmt.height)
    got, plan = convert_on_host(host, frames, fmt)
    assert len(plan) == 1, [p.kernel for p in plan]
    exact = fmt.pixel_format is None and reference.uses_integer_formula(fmt.datatype, None)
    for i, frame in enumerate(frames):
        want = reference.to_display_rgba(frame, fmt)
        assert_close(got[i], want, 0 if exact else 1, f"{fmt.describe()} frame {i}")


def test_batch_frames_keep_their_own_value_range(host):
    """Frame 0 spans 0..1000, frame 1 0..200: the same sample 100 must differ."""
    fmt = ImageFormat(3, 1, color_model=ColorModel.L, channel_datatype=ChannelDatatype.U16)
    frames = [np.array([0, 100, 1000], "<u2").tobytes(), np.array([0, 100, 200], "<u2").tobytes()]
    got, _ = convert_on_host(host, frames, fmt)
    # hand-computed: frame 0 has range [0, 1000]: q(0.1) = floor(25.5 + .5) = 26;
    # frame 1 lies within 0..255, so its range is [0, 255] and bytes stay as they are
    assert got[0, 0, :, 0].tolist() == [0, 26, 255]
    assert got[1, 0, :, 0].tolist() == [0, 100, 200]


def test_explicit_value_range_applies_to_every_frame(host):
    fmt = ImageFormat(3, 1, color_model=ColorModel.L, channel_datatype=ChannelDatatype.F32)
    frames = [np.array([0.0, 5.0, 10.0], "<f4").tobytes(), np.array([-5.0, 2.5, 20.0], "<f4").tobytes()]
    got, _ = convert_on_host(host, frames, fmt, value_range=(0.0, 10.0))
    # q(0)=0, q(.5)=128, q(1)=255; q(-.5)=0, q(.25)=floor(63.75+.5)=64, q(2)=255
    assert got[0, 0, :, 0].tolist() == [0, 128, 255]
    assert got[1, 0, :, 0].tolist() == [0, 64, 255]


def test_frames_beyond_grid_z_limit_split_into_launches(host, monkeypatch):
    """More frames than gridDim.z allows: several launches, same pixels."""
    monkeypatch.setattr(cupy_convert, "MAX_GRID_Z", 2)
    fmt = ImageFormat(6, 4, pixel_format=PixelFormat.NV12)
    frames = _random_frames(fmt, 5, seed=3)
    got, plan = convert_on_host(host, frames, fmt)
    assert [p.grid[2] for p in plan] == [2, 2, 1]
    for i, frame in enumerate(frames):
        assert_close(got[i], reference.to_display_rgba(frame, fmt), 1, f"frame {i}")


def test_colour_frames_beyond_grid_y_limit_keep_their_ranges(host, monkeypatch):
    """Colour frames ride on gridDim.y: split launches must slice the per-frame ranges."""
    monkeypatch.setattr(cupy_convert, "MAX_GRID_Y", 2)
    fmt = ImageFormat(3, 3, color_model=ColorModel.RGB, channel_datatype=ChannelDatatype.I32)
    frames = _random_frames(fmt, 5, seed=9)
    got, plan = convert_on_host(host, frames, fmt)
    assert [p.grid[1] for p in plan] == [2, 2, 1]
    for i, frame in enumerate(frames):
        assert_close(got[i], reference.to_display_rgba(frame, fmt), 1, f"frame {i}")


def test_vector_store_path_and_tail_path_both_correct(host):
    """W % 4 == 0 takes the 16-byte store, W % 4 != 0 the per-pixel tail; both exact."""
    for w in (8, 10):
        fmt = ImageFormat(w, 3, pixel_format=PixelFormat.Y8_FullRange)
        data = bytes(range(0, 3 * w))
        got, _ = convert_on_host(host, [data], fmt)
        # Y8 full range: y = Y/255, u = v = 0 -> grey (Y, Y, Y, 255), exactly
        want = np.frombuffer(data, np.uint8).reshape(3, w)
        assert (got[0, ..., 0] == want).all() and (got[0, ..., 1] == want).all()
        assert (got[0, ..., 2] == want).all() and (got[0, ..., 3] == 255).all()


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.format.pixel_format is None and c.value_range is None],
    ids=lambda c: c.id,
)
def test_frame_value_ranges_agree_with_reference_rule(case):
    """The batched range rule (NumPy as xp) gives the reference's [lo, hi] per frame."""
    fmt = case.format
    info = DATATYPES[fmt.datatype]
    model = COLOR_MODELS[fmt.model]
    src = np.frombuffer(case.data, dtype=np.uint8).reshape(1, -1).copy()
    rp = frame_value_ranges(np, src, fmt)
    px = fmt.color_samples(np.frombuffer(case.data, dtype=np.uint8)).reshape(-1, model.channels)
    lo, hi = reference.value_range_for(px[:, sorted(set(model.rgb_index))], fmt.datatype)
    if rp["mode"] == cupy_convert.MODE_EXACT:
        assert (int(rp["lo_i"][0]), int(rp["lo_i"][0] + rp["span_i"][0])) == (lo, hi)
    elif rp["mode"] == cupy_convert.MODE_FLOAT:
        # float mode works on halved values (color.cu), so both come halved
        assert float(rp["lo_d"][0]) == float(lo) * 0.5
        if float(hi) > float(lo):
            want_inv = 1.0 / (float(hi) * 0.5 - float(lo) * 0.5)
            assert float(rp["inv"][0]) == pytest.approx(want_inv, rel=1e-15)
    else:  # wide integers: lo exact as bits; min == max uses t0 = 1/2
        if info.numpy.kind == "u" and info.size == 8:
            lo_native = np.array([rp["lo_i"][0]], np.int64).view(np.uint64)[0]
        else:
            lo_native = int(rp["lo_i"][0])
        if rp["t0"][0] == 0.5:
            assert (int(lo_native) - 1, int(lo_native) + 1) == (lo, hi)
        else:
            assert int(lo_native) == lo
            assert float(rp["inv"][0]) == pytest.approx(1.0 / float(hi - lo), rel=1e-15)


FTZ_SCRIPT = r"""
import json, sys
from pathlib import Path
import numpy as np
sys.path[:0] = sys.argv[1:3]
from cuda_host_harness import HostKernels
from pixelrun.kernels.cuda.convert import plan_conversion
from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat

kernels = HostKernels(Path(sys.argv[3]))
if not kernels.lib.pr_host_flush_denormals():  # this thread's FTZ/DAZ, for good: a process of its own
    print(json.dumps({"unsupported": True}))
    sys.exit(0)
probe = np.array([1e-40], np.float32) * np.float32(1.0)  # a denormal, through the FPU
fmt = ImageFormat(2, 1, color_model=ColorModel.RGBA, channel_datatype=ChannelDatatype.F32)
values = json.loads(sys.argv[4])
src = np.frombuffer(np.array(values, np.float32).tobytes(), np.uint8)[None].copy()
dst = np.zeros((1, 1, 2, 4), np.uint8)
kernels.run(plan_conversion(np, src, dst, fmt, None))
print(json.dumps({"flushed": bool(probe[0] == 0.0), "rgba": dst[0].tolist()}))
"""


@pytest.mark.parametrize("values", [
    [-1e38, 1e38, 1e-45, 1.0, 0.0, 1.0, -1.0, 0.25],  # the conformance case extremes-F32
    [-3e38, 3e38, 0.0, 1.0, 1e36, -1e36, 2e38, 0.5],
], ids=["extremes-F32", "near-max"])
def test_float_range_survives_flushed_denormals(tmp_path, values):
    """NVIDIA's CuPy run showed every colour channel of extremes-F32 as 0: 1 / (hi - lo)
    for a span near 1e38 is a denormal, which code built to flush denormals reads as
    zero. The same kernels, built here with denormals flushed (in a process of their
    own, with the processor told to flush them), must still match the reference."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from cuda_host_harness import build_host_library, gxx

    if gxx() is None:
        pytest.skip("g++ is not installed: the CUDA kernels cannot be built for the host")
    lib = build_host_library(tmp_path)  # loaded (and switched to flushing) only in the subprocess
    here = str(Path(__file__).parent)
    proc = subprocess.run([sys.executable, "-c", FTZ_SCRIPT, here, str(Path(here).parents[1]), str(lib),
                           json.dumps(values)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    if out.get("unsupported"):
        pytest.skip("no flush-to-zero switch on this processor (x86 SSE only)")
    assert out["flushed"], "the build did not flush denormals: this test would prove nothing"
    fmt = ImageFormat(2, 1, color_model=ColorModel.RGBA, channel_datatype=ChannelDatatype.F32)
    want = reference.to_display_rgba(np.array(values, np.float32).tobytes(), fmt)
    assert_close(np.array(out["rgba"], np.uint8), want, 1, "flushed denormals")
