// Host shim: compiles pixelrun's CUDA kernels (kernels/cuda/*.cu) as plain C++ so
// their logic runs on a CPU, for tests on machines without an NVIDIA GPU.
//
// It defines what the kernels use from CUDA -- __global__, __device__,
// __forceinline__, __restrict__, threadIdx/blockIdx/blockDim/gridDim -- and a
// launcher that runs every thread of a grid one after another. That is faithful for
// these kernels because each thread writes only its own outputs and none uses shared
// memory, barriers or atomics (pixelrun_common.cuh states that rule for the sources).
#pragma once

#include <math.h>

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict

struct pr_host_dim3 {
    unsigned x, y, z;
};

static pr_host_dim3 threadIdx, blockIdx, blockDim, gridDim;

// Run `kernel(args...)` once per thread of the grid; `dims` is
// {grid.x, grid.y, grid.z, block.x, block.y, block.z}.
template <typename... A>
static void pr_host_launch(void (*kernel)(A...), const unsigned* dims, A... args) {
    gridDim = {dims[0], dims[1], dims[2]};
    blockDim = {dims[3], dims[4], dims[5]};
    for (unsigned bz = 0; bz < gridDim.z; ++bz)
        for (unsigned by = 0; by < gridDim.y; ++by)
            for (unsigned bx = 0; bx < gridDim.x; ++bx)
                for (unsigned tz = 0; tz < blockDim.z; ++tz)
                    for (unsigned ty = 0; ty < blockDim.y; ++ty)
                        for (unsigned tx = 0; tx < blockDim.x; ++tx) {
                            blockIdx = {bx, by, bz};
                            threadIdx = {tx, ty, tz};
                            kernel(args...);
                        }
}

// A C-callable entry for one kernel: `h_<name>(dims, args...)` with the kernel's own
// parameter list, derived from the kernel's type so no signature is restated here.
// Exported as a function pointer `h_<name>` that ctypes calls with argtypes taken from
// the launch plan (pixelrun.kernels.cupy_convert.Launch).
template <auto K>
struct PrHostEntry;

template <typename... A, void (*K)(A...)>
struct PrHostEntry<K> {
    static void run(const unsigned* dims, A... args) { pr_host_launch(K, dims, args...); }
};

#define PR_HOST_EXPORT(NAME) \
    extern "C" {           \
    void* h_##NAME = (void*)&PrHostEntry<&NAME>::run; \
    }
