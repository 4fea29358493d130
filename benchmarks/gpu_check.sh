#!/usr/bin/env bash
# One-shot proof run on a lent NVIDIA machine (issue 17): install, CUDA/CuPy tests, WGSL tests on
# the NVIDIA Vulkan adapter (and GL/EGL if present), the GPU benchmarks, and a summary table.
#
# Every step runs under its own `timeout`; the timeouts add up to 8 minutes (480 s) so a second
# try fits in the 15 minutes of device time. Logs and tables go under OUT (default $OUT, else
# ./gpu-check-out). Exit status: 0 when no step failed, 1 otherwise, 2 on bad usage.
#
# Modes:
#   bash benchmarks/gpu_check.sh                 # the real run, on the NVIDIA machine
#   bash benchmarks/gpu_check.sh --dry-run       # print the plan (steps, timeouts, commands), run nothing
#   bash benchmarks/gpu_check.sh --cpu-smoke     # every step here, tiny sizes, CUDA-only steps skipped
#                                                #   with a named reason (timeouts x CPU_FACTOR, default 4)
#   bash benchmarks/gpu_check.sh --build-wheels  # fill .whl/ and .gl/ for carrying, print their size
#
# Other options: --out DIR, --wheels DIR (default .whl), --gl DIR (default .gl), --only a,b
# (step names), --pack (tar the logs into OUT/logs.tar.gz and drop OUT/logs/, so at most 8 files
# come back from the device tool).
#
# The device machine's image already has python3 3.12 with numpy, pyarrow, pillow, protobuf,
# pytest, hypothesis, opencv, psutil, pandas, torch and cupy-cuda13x (device README, KINDS.md).
# What it lacks travels as cp312 wheels in .whl/ (wgpu, cffi, pycparser, glfw, rendercanvas,
# imgui-bundle, lz4); pixelrun itself is built there from the carried working tree, so it is never
# stale. The Vulkan/EGL loaders travel as .deb files in .gl/. Rerun's SDK (163 MiB wheel) does not
# fit the 64 MiB carry limit, so on that machine render.py writes its recordings through a stand-in
# that maps `import rerun` to pixelrun's Rerun-compatible SDK, and its Rerun peer row is absent.

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2

PY="${PYTHON:-python3}"
MODE=gpu
OUT_DIR="${OUT:-$ROOT/gpu-check-out}"
WHEELS="$ROOT/.whl"
GLDEBS="$ROOT/.gl"
ONLY=""
PACK=0
CPU_FACTOR="${CPU_FACTOR:-4}"

# Wheels the device image lacks (versions as tested here; keep one version of each).
DEP_WHEELS=(wheel==0.45.1 wgpu==0.32.0 cffi==2.0.0 pycparser==3.0 glfw==2.11.0 rendercanvas==2.7.2 imgui-bundle==1.93.0 lz4==4.4.5
            # GPU JPEG decoding (pixelrun's nvjpeg extra; tests/engine/test_encoded_gpu.py): 31 + 5 MiB, .whl ~57 MiB
            nvidia-nvimgcodec-cu12==0.9.0.20 nvidia-nvjpeg-cu12==12.4.0.76)
GL_DEBS=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
# X client libraries imgui-bundle links (libX11, libXext and theirs): the device image has none; unpacked
# under WORK (not /) and put on LD_LIBRARY_PATH only where the image lacks libX11
X11_DEBS=(libx11-6 libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0)

usage() { sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) MODE=dry ;;
        --cpu-smoke) MODE=cpu ;;
        --build-wheels) MODE=wheels ;;
        --pack) PACK=1 ;;
        --out) OUT_DIR="$2"; shift ;;
        --wheels) WHEELS="$2"; shift ;;
        --gl) GLDEBS="$2"; shift ;;
        --only) ONLY="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown option '$1' (expected --dry-run, --cpu-smoke, --build-wheels, --pack," \
                "--out DIR, --wheels DIR, --gl DIR, --only STEPS)" >&2; exit 2 ;;
    esac
    shift
done

# ---------------------------------------------------------------------------------------------
# --build-wheels: run HERE (with network), then name .whl and .gl in the device tool's `carry`.
if [ "$MODE" = wheels ]; then
    set -e
    mkdir -p "$WHEELS" "$GLDEBS"
    plat=()
    for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
             manylinux1_x86_64 manylinux_2_24_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64; do
        plat+=(--platform "$p")
    done
    echo "+ pip download (cp312, x86-64) ${DEP_WHEELS[*]} -> $WHEELS"
    timeout 600 "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${plat[@]}" -d "$WHEELS" "${DEP_WHEELS[@]}"
    echo "+ apt-get download (amd64) ${GL_DEBS[*]} -> $GLDEBS"
    mkdir -p /tmp/amd64/partial
    o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
    timeout 300 apt-get "${o[@]}" update -qq
    (cd "$GLDEBS" && timeout 300 apt-get "${o[@]}" download -qq "${GL_DEBS[@]}")
    mkdir -p "$GLDEBS/x11"
    (cd "$GLDEBS/x11" && timeout 300 apt-get "${o[@]}" download -qq "${X11_DEBS[@]}")
    ls -la "$WHEELS" "$GLDEBS"
    du -sh "$WHEELS" "$GLDEBS"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# The steps. name | timeout on the GPU machine (s) | cuda-only | what it runs.
# The viewer first after the install (issue 15's NVIDIA targets are its numbers), then the
# correctness tests, then the benchmarks, the longest last.
STEPS=(install versions viewer viewer-trace wgsl-vulkan cuda-tests wgsl-gl convert-gpu render
       convert-cuda-1080p convert-cuda-4k)
# (cpu-smoke here, 2 cores, lavapipe: tests 15-36 s each, render 40 s, viewer 45 s; the GPU machine has 16 cores;
# there: viewer 73 s, viewer-trace ~20 s, cuda-tests 44 s, wgsl-vulkan 22 s, render 32 s, convert-cuda-1080p 41 s)
declare -A TIMEOUT=([install]=30 [versions]=15 [viewer]=110 [viewer-trace]=40 [cuda-tests]=65 [wgsl-vulkan]=40
                    [wgsl-gl]=20 [convert-cuda-1080p]=50 [convert-cuda-4k]=45 [convert-gpu]=20 [render]=45)
declare -A CUDA_ONLY=([convert-cuda-1080p]=1 [convert-cuda-4k]=1)

PYTEST=("$PY" -m pytest -p no:cacheprovider -q -rsfE)
CUDA_TESTS=(tests/kernels/test_conformance.py tests/kernels/test_cupy_backend.py tests/engine/test_cupy_composite.py
            tests/sdk/test_gpu_input_async.py tests/kernels/test_cuda_ptx.py tests/kernels/test_cupy_host_harness.py
            tests/kernels/test_cupy_glue_fake.py tests/kernels/test_depth_segmentation.py tests/engine/test_encoded_gpu.py)
WGSL_TESTS=(tests/kernels/test_conformance.py tests/kernels/test_wgsl.py tests/engine/test_gpu_convert.py
            tests/engine/test_gpu_device.py tests/engine/test_render.py)

# issue 15's report run (200 frames, 8 s per view count, 15 floor repeats); a short one for --cpu-smoke
trace_frames() { if [ "$MODE" = cpu ]; then echo 20; else echo 100; fi; }
# (GPU_CHECK_VIEWER_ARGS replaces them, e.g. "--only latency --frames 200 --trace" for a stage breakdown)
viewer_args() {
    if [ -n "${GPU_CHECK_VIEWER_ARGS:-}" ]; then echo "$GPU_CHECK_VIEWER_ARGS"
    elif [ "$MODE" = cpu ]; then echo "--only latency,views --quick --frames 20 --seconds 3"
    else echo "--only latency,views --frames 200 --seconds 8"; fi
}
describe() {  # the command line of a step, for --dry-run and the logs
    local cuda_sizes="--batch 128" small=""
    [ "$MODE" = cpu ] && small=1
    case "$1" in
        install) echo "dpkg -x .gl/*.deb / (if no libvulkan); pip wheel --no-deps . ; pip install --no-index --target WORK/site pixelrun + $WHEELS/*.whl" ;;
        versions) echo "nvidia-smi; python3 -c '<driver, CUDA, CuPy, torch, wgpu versions; Vulkan and GL adapters>'" ;;
        cuda-tests) echo "PIXELRUN_REQUIRE_CUDA=1 ${PYTEST[*]} ${CUDA_TESTS[*]} -k 'not test_conformance or cupy'" ;;
        wgsl-vulkan) echo "PIXELRUN_WGPU_BACKEND=vulkan (adapter must be NVIDIA) ${PYTEST[*]} ${WGSL_TESTS[*]} -k 'not test_conformance or wgpu'" ;;
        wgsl-gl) echo "PIXELRUN_WGPU_BACKEND=gl ${PYTEST[*]} tests/kernels/test_conformance.py tests/engine/test_gpu_convert.py -k 'not test_conformance or wgpu' (skip: no GL adapter)" ;;
        convert-cuda-1080p) echo "$PY benchmarks/convert_cuda.py --quick --sizes 1080p $cuda_sizes" ;;
        convert-cuda-4k) echo "$PY benchmarks/convert_cuda.py --quick --sizes 4k --batch 16" ;;
        convert-gpu) echo "PIXELRUN_WGPU_BACKEND=vulkan $PY benchmarks/convert_gpu.py --quick${small:+ --repeat 1 --size 320x240}" ;;
        render) echo "PIXELRUN_WGPU_BACKEND=vulkan $PY benchmarks/render.py --quick${small:+ --repeat 1}" ;;
        viewer) echo "PIXELRUN_WGPU_BACKEND=vulkan $PY benchmarks/viewer.py --offscreen $(viewer_args)" ;;
        viewer-trace) echo "PIXELRUN_WGPU_BACKEND=vulkan $PY benchmarks/viewer.py --offscreen --only latency --trace --frames $(trace_frames)" ;;
    esac
}

step_timeout() {
    local t="${TIMEOUT[$1]}"
    [ "$MODE" = cpu ] && t=$((t * CPU_FACTOR))
    [ "$t" -ge 1 ] || t=1  # `timeout 0` would mean no limit at all
    echo "$t"
}

for s in ${ONLY//,/ }; do
    [ -n "${TIMEOUT[$s]:-}" ] || { echo "gpu_check.sh: --only: unknown step '$s' (steps: ${STEPS[*]})" >&2; exit 2; }
done

if [ "$MODE" = dry ]; then
    total=0
    echo "gpu_check.sh plan (timeouts on the GPU machine; --cpu-smoke multiplies them by $CPU_FACTOR):"
    echo "| # | step | timeout s | CUDA only | command |"
    echo "| --- | --- | --- | --- | --- |"
    i=0
    for s in "${STEPS[@]}"; do
        i=$((i + 1)); total=$((total + TIMEOUT[$s]))
        echo "| $i | $s | ${TIMEOUT[$s]} | ${CUDA_ONLY[$s]:+yes} | $(describe "$s") |"
    done
    echo "total of the timeouts: ${total} s; logs and tables under $OUT_DIR"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# Step bodies. Each runs in its own `bash -c` under `timeout`; exit 0 = pass, 3 = skip (the reason
# is the last line of its log, prefixed SKIP:), anything else = fail.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pixelrun-gpu-check.XXXXXX")"
export ROOT PY MODE WORK WHEELS GLDEBS OUT_DIR
export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"  # the install step fills it
export PYTHONUNBUFFERED=1 XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
# the NVIDIA driver's ICD files, where the device README says they are (only if present and unset)
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && [ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ]; then
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
# imgui-bundle links libX11/libXext: where the image has none, the carried ones, unpacked under WORK
if ! ldconfig -p | grep -q 'libX11\.so\.6' && ls "$GLDEBS"/x11/*.deb >/dev/null 2>&1; then
    for f in "$GLDEBS"/x11/*.deb; do dpkg -x "$f" "$WORK/x11"; done
    export LD_LIBRARY_PATH="$WORK/x11/usr/lib/x86_64-linux-gnu:$WORK/x11/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "X client libraries from $GLDEBS/x11 (the image has no libX11)"
fi

skip() { echo "SKIP: $*"; exit 3; }
cuda_reason() {  # empty when CuPy has a CUDA device, else why not
    "$PY" -c "
from pixelrun.kernels.cuda import convert
ok, why = convert.is_available()
print('' if ok else why)" 2>&1 | tail -1
}

step_install() {
    set -e
    if [ "$MODE" = gpu ] && ! ldconfig -p | grep -q libvulkan; then
        ls "$GLDEBS"/*.deb >/dev/null 2>&1 || { echo "no libvulkan and no $GLDEBS/*.deb to unpack (carry .gl)"; exit 1; }
        for f in "$GLDEBS"/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    mkdir -p "$WORK/site" "$WORK/pkg" "$WORK/build-tools"
    # pixelrun from this working tree, with the image's setuptools; setuptools < 70.1 needs the
    # `wheel` package for bdist_wheel: where it is missing, the carried one serves the build only
    if ! "$PY" -c "import wheel" 2>/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --target "$WORK/build-tools" "$WHEELS"/wheel-*.whl
    fi
    # built from a copy: an in-tree build/ folder could carry files deleted since into the wheel
    mkdir -p "$WORK/src"
    cp -r "$ROOT/pyproject.toml" "$ROOT/README.md" "$ROOT/sdk" "$ROOT/engine" "$ROOT/kernels" "$WORK/src/"
    PYTHONPATH="$WORK/build-tools:$PYTHONPATH" \
        "$PY" -m pip wheel -q --no-deps --no-build-isolation --no-index -w "$WORK/pkg" "$WORK/src"
    wheels=("$WORK"/pkg/pixelrun-*.whl)
    pyver="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
    if [ "$MODE" = gpu ] || [ "$pyver" = 312 ]; then
        ls "$WHEELS"/*.whl >/dev/null 2>&1 || { echo "no wheels in $WHEELS (run --build-wheels here, carry .whl)"; exit 1; }
        for w in "$WHEELS"/*.whl; do [[ $(basename "$w") == wheel-* ]] || wheels+=("$w"); done
    else
        # the carried wheels are cp312 for the device image; here the dependencies are already installed
        echo "cpu-smoke: Python $pyver here, carried wheels are cp312: installing pixelrun only"
        ls "$WHEELS" 2>/dev/null || echo "(no $WHEELS here yet: --build-wheels makes it)"
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "${wheels[@]}"
    # nvImageCodec's wheel ships an (empty) nvidia/__init__.py: as a regular package first on the path it
    # would hide the image's other nvidia.* packages (CUDA libraries of torch/CuPy); a namespace merges them
    rm -f "$WORK/site/nvidia/__init__.py"
    "$PY" - <<'EOF'
import os
import sys

import cffi, glfw, imgui_bundle, lz4, numpy, pyarrow, rendercanvas, wgpu  # noqa: F401 - all must import
import pixelrun

where = os.path.dirname(pixelrun.__file__)
print("pixelrun from", where)
if not where.startswith(os.environ["WORK"]):
    sys.exit(f"pixelrun was imported from {where}, not from the fresh install under {os.environ['WORK']}")
EOF
}

step_versions() {
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi || exit 1
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$WORK/gpu.csv"
    elif [ "$MODE" = gpu ]; then
        echo "nvidia-smi not found on the NVIDIA machine"; exit 1
    else
        echo "cpu-smoke: no nvidia-smi here"
    fi
    "$PY" - <<'EOF'
import platform

import numpy
import wgpu

print(f"python {platform.python_version()}, numpy {numpy.__version__}, wgpu-py {wgpu.__version__}")
try:
    import wgpu.backends.wgpu_native as native
    print("wgpu-native", ".".join(map(str, native.lib_version_info)))
except Exception as exc:
    print("wgpu-native version unknown:", exc)
try:
    import cupy
    rt, drv = cupy.cuda.runtime.runtimeGetVersion(), cupy.cuda.runtime.driverGetVersion()
    print(f"cupy {cupy.__version__}, CUDA runtime {rt // 1000}.{rt % 1000 // 10}, driver API {drv // 1000}.{drv % 1000 // 10}")
except Exception as exc:
    print("cupy: unavailable:", exc)
try:
    import torch
    print(f"torch {torch.__version__}, cuda {torch.version.cuda}, available {torch.cuda.is_available()}")
except Exception as exc:
    print("torch: unavailable:", exc)
from pixelrun.kernels.wgpu import device as gpu

for b in ("vulkan", "gl"):
    try:
        info = gpu.select_adapter(b).info
        print(f"{b} adapter: {info.get('device')} / {info.get('adapter_type')} / driver {info.get('description')}")
    except Exception as exc:
        print(f"{b} adapter: none ({exc})")
EOF
}

step_cuda_tests() {
    local env=()
    if [ "$MODE" = gpu ]; then
        env=(PIXELRUN_REQUIRE_CUDA=1)  # tests/conftest.py turns every CUDA/CuPy/torch skip into a failure
    else
        echo "cpu-smoke: PIXELRUN_REQUIRE_CUDA unset, so the CUDA cases skip here (reason: $(cuda_reason))"
    fi
    env "${env[@]}" "${PYTEST[@]}" "${CUDA_TESTS[@]}" -k "not test_conformance or cupy"
}

adapter_is() {  # adapter_is BACKEND: print the adapter summary; in GPU mode it must be NVIDIA's
    PIXELRUN_WGPU_BACKEND="$1" "$PY" -c "
import os, sys
from pixelrun.kernels.wgpu import device as gpu
try:
    s = gpu.adapter_summary()
except Exception as exc:
    print(f'no $1 adapter: {exc}'); sys.exit(3)
print('adapter:', s)
if os.environ['MODE'] == 'gpu' and 'nvidia' not in s.lower():
    sys.exit(f'the $1 adapter is not the NVIDIA GPU: {s}')
"
}

step_wgsl_vulkan() {
    adapter_is vulkan || exit 1
    PIXELRUN_WGPU_BACKEND=vulkan "${PYTEST[@]}" "${WGSL_TESTS[@]}" -k "not test_conformance or wgpu"
}

step_wgsl_gl() {
    adapter_is gl
    case $? in 0) ;; 3) skip "no GL/EGL adapter for wgpu on this machine" ;; *) exit 1 ;; esac
    PIXELRUN_WGPU_BACKEND=gl "${PYTEST[@]}" tests/kernels/test_conformance.py tests/engine/test_gpu_convert.py \
        -k "not test_conformance or wgpu"
}

convert_cuda() {
    local why
    why="$(cuda_reason)"
    if [ -n "$why" ]; then
        [ "$MODE" = cpu ] && skip "CUDA only: no CuPy device here ($why)"
        echo "no CUDA device on the NVIDIA machine: $why"; exit 1
    fi
    "$PY" benchmarks/convert_cuda.py --quick --sizes "$1" --batch "$2"
}
step_convert_cuda_1080p() { convert_cuda 1080p 128; }
step_convert_cuda_4k() { convert_cuda 4k 16; }  # batches of 128 4K frames did not finish in 50 s there

small_args() { [ "$MODE" = cpu ] && echo "--repeat 1 $*"; }

step_convert_gpu() {
    # shellcheck disable=SC2046
    PIXELRUN_WGPU_BACKEND=vulkan "$PY" benchmarks/convert_gpu.py --quick $(small_args --size 320x240)
}

step_render() {
    if [ ! -x "$ROOT/.venv-rerun/bin/python" ]; then
        # render.py writes its two recordings with Rerun's SDK from .venv-rerun; that wheel cannot
        # travel (163 MiB), so a stand-in maps `import rerun` to pixelrun's Rerun-compatible SDK
        # (same calls, same .rrd format). Rows then lack the Rerun peer (its binary is absent too).
        echo "render: no .venv-rerun: recordings are written through pixelrun's SDK as 'rerun'"
        mkdir -p "$ROOT/.venv-rerun/bin" "$WORK/rerun-shim"
        printf 'import sys\n\nimport pixelrun\n\nsys.modules[__name__] = pixelrun\n' > "$WORK/rerun-shim/rerun.py"
        printf '#!/bin/sh\nPYTHONPATH="%s:$PYTHONPATH" exec "%s" "$@"\n' "$WORK/rerun-shim" "$(command -v "$PY")" \
            > "$ROOT/.venv-rerun/bin/python"
        chmod +x "$ROOT/.venv-rerun/bin/python"
    fi
    # shellcheck disable=SC2046
    PIXELRUN_WGPU_BACKEND=vulkan "$PY" benchmarks/render.py --quick $(small_args)
}

step_viewer() {
    # The machine has no display (and Vulkan windows on a virtual X server do not reach the
    # NVIDIA GPU): the viewer runs as `pixelrun view --offscreen`, the same draw code into an
    # offscreen frame read back every frame. latency (log -> pixel) and views (1/4/9 streams);
    # frame and scene open a window in-process, so they are left to machines with a display.
    adapter_is vulkan || exit 1
    # shellcheck disable=SC2046
    PIXELRUN_WGPU_BACKEND=vulkan "$PY" benchmarks/viewer.py --offscreen $(viewer_args)
}

step_viewer_trace() {
    # where log -> pixel time goes, frame by frame (a run of its own: the report run above
    # carries no instrumentation)
    adapter_is vulkan || exit 1
    PIXELRUN_WGPU_BACKEND=vulkan "$PY" benchmarks/viewer.py --offscreen --only latency --trace --frames "$(trace_frames)"
}

export -f skip cuda_reason adapter_is convert_cuda small_args viewer_args trace_frames step_viewer_trace step_install step_versions step_cuda_tests \
    step_wgsl_vulkan step_wgsl_gl step_convert_cuda_1080p step_convert_cuda_4k step_convert_gpu step_render step_viewer
export PYTEST_STR="${PYTEST[*]}"
# arrays cannot be exported: each step re-declares them from these strings
export CUDA_TESTS_STR="${CUDA_TESTS[*]}" WGSL_TESTS_STR="${WGSL_TESTS[*]}"
PRELUDE='read -ra PYTEST <<<"$PYTEST_STR"; read -ra CUDA_TESTS <<<"$CUDA_TESTS_STR"; read -ra WGSL_TESTS <<<"$WGSL_TESTS_STR"; cd "$ROOT";'

# ---------------------------------------------------------------------------------------------
mkdir -p "$OUT_DIR/logs"
SUMMARY="$OUT_DIR/summary.md"
TABLES="$OUT_DIR/tables.md"
: > "$TABLES"
rows=()
failed=0
t_all=$(date +%s)
i=0
for s in "${STEPS[@]}"; do
    i=$((i + 1))
    if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$s,"* ]]; then
        continue
    fi
    log="$OUT_DIR/logs/$(printf '%02d' "$i")-$s.log"
    t="$(step_timeout "$s")"
    fn="step_${s//-/_}"
    echo "== [$i/${#STEPS[@]}] $s (timeout ${t} s) -> $log"
    t0=$(date +%s)
    { echo "# $s, mode $MODE, $(date -u +%FT%TZ)"; echo "# $(describe "$s")"; } > "$log"
    timeout -k 5 "$t" bash -c "$PRELUDE $fn" >> "$log" 2>&1
    rc=$?
    dt=$(( $(date +%s) - t0 ))
    case $rc in
        0) result=PASS ;;
        3) result="SKIP ($(grep '^SKIP: ' "$log" | tail -1 | cut -c7-))" ;;
        124|137) result="FAIL (timeout after ${t} s)"; failed=1 ;;
        *) result="FAIL (exit $rc)"; failed=1 ;;
    esac
    # pytest's last line (counts of passed/skipped/failed) goes into the summary's note column
    note="$(grep -E '^=*.*[0-9]+ (passed|failed|error|skipped)' "$log" | tail -1 | tr -d '=' | sed 's/^ *//')"
    echo "   $result ${dt} s ${note}"
    rows+=("| $i | $s | $result | $dt | $t | ${note} | logs/$(basename "$log") |")
    # the versions and the benchmark tables (markdown rows and their captions) go to tables.md,
    # the draft of benchmarks/results/nvidia-<gpu>.md
    if [ "$s" = versions ]; then
        { echo "## versions ($(date -u +%F))"; echo; echo '```'; grep -v '^# ' "$log"; echo '```'; echo; } >> "$TABLES"
    elif [[ $s == convert-* || $s == render || $s == viewer* ]] && [ "$rc" = 0 ]; then
        { echo "## $s"; echo; echo "\`$(describe "$s")\`"; echo; grep -vE '^(# |SKIP: )' "$log"; echo; } >> "$TABLES"
    fi
done
total=$(( $(date +%s) - t_all ))

gpu_name="$(cut -d, -f1 "$WORK/gpu.csv" 2>/dev/null | head -1)"
{
    echo "# gpu_check.sh: ${gpu_name:-no NVIDIA GPU} ($MODE mode), $(date -u +%F)"
    echo
    echo "| # | step | result | seconds | timeout s | pytest | log |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Total ${total} s. Versions: logs/02-versions.log. Benchmark tables: tables.md."
    [ "$PACK" = 1 ] && echo "Logs are packed in logs.tar.gz."
} > "$SUMMARY"
cat "$SUMMARY"

if [ "$PACK" = 1 ]; then
    tar -czf "$OUT_DIR/logs.tar.gz" -C "$OUT_DIR" logs && rm -rf "$OUT_DIR/logs"
fi
rm -rf "$WORK"
exit "$failed"
