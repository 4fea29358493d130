// pixelrun CUDA kernels: shared device helpers (contract §2-4).
//
// Every .cu file in this folder includes this header. The sources are compiled three
// ways and must stay valid for all of them:
//   - by NVRTC through cupy.RawModule (pixelrun/kernels/cupy_convert.py), on device;
//   - by `nvcc --ptx -arch=sm_90` in CI (tests/kernels/test_cuda_ptx.py);
//   - by g++ on the host through tests/kernels/cuda_host_harness.h, which defines
//     __global__/__device__, threadIdx/blockIdx/... and loops over the grid, so the
//     kernel logic is checked against the NumPy reference on machines without a GPU.
// Hence: no headers (NVRTC has none by default), only built-in integer types, plain
// math functions that exist in both worlds, no shared memory, no __syncthreads, no
// intrinsics outside the PR_* macros below.
//
// No format fact lives here: plane addresses, matrices, ranges, Bayer patterns and
// value ranges arrive as kernel arguments computed from pixelrun/kernels/formats.py.
#pragma once

typedef unsigned char pr_u8;
typedef signed char pr_i8;
typedef unsigned short pr_u16;
typedef short pr_i16;
typedef unsigned int pr_u32;
typedef int pr_i32;
typedef unsigned long long pr_u64;
typedef long long pr_i64;

#if defined(__CUDACC__)
// Four packed RGBA8 pixels in one 16-byte store (caller guarantees 16-byte alignment).
#define PR_STORE4(ptr, a, b, c, d) (*reinterpret_cast<uint4*>(ptr) = make_uint4((a), (b), (c), (d)))
#else
#define PR_STORE4(ptr, a, b, c, d) \
    do {                           \
        (ptr)[0] = (a);            \
        (ptr)[1] = (b);            \
        (ptr)[2] = (c);            \
        (ptr)[3] = (d);            \
    } while (0)
#endif

// Finite test without library calls: x - x is 0 for finite x and NaN for NaN/Inf.
// (Valid because neither NVRTC, nvcc nor g++ is asked for fast-math here.)
__device__ __forceinline__ bool pr_isfinite(float x) { return (x - x) == 0.0f; }
__device__ __forceinline__ bool pr_isfinite(double x) { return (x - x) == 0.0; }

// the contract's q(): floor(clamp(x, 0, 1) * 255 + 0.5); NaN gives 0 like the reference.
__device__ __forceinline__ pr_u32 pr_q(float x) {
    if (!(x > 0.0f)) return 0u;  // also catches NaN
    if (x >= 1.0f) return 255u;
    return (pr_u32)floorf(x * 255.0f + 0.5f);
}

// Exact q((v - lo) / span) for integers, lo < hi, span = hi - lo (formats.py contract):
// floor((510 * (v - lo) + span) / (2 * span)) clamped to 0..255. `diff` is v - lo,
// already known to lie in (0, span). 32-bit arithmetic when it cannot overflow; else
// double, which is exact here: the numerator is below 2^52 and a non-integer quotient
// is at least 1/(2*span) away from the next integer, far more than double's rounding.
__device__ __forceinline__ pr_u32 pr_int_formula_inside(pr_u64 diff, pr_u64 span) {
    if (span <= 8000000ull) {
        pr_u32 n = 510u * (pr_u32)diff + (pr_u32)span;
        return n / (2u * (pr_u32)span);
    }
    double n = 510.0 * (double)diff + (double)span;
    return (pr_u32)floor(n / (2.0 * (double)span));
}

__device__ __forceinline__ pr_u32 pr_pack(pr_u32 r, pr_u32 g, pr_u32 b, pr_u32 a) {
    return r | (g << 8) | (b << 16) | (a << 24);  // bytes R, G, B, A in memory
}

#define PR_MAGENTA 0xFFFF00FFu  // (255, 0, 255, 255): NaN/Inf colour, contract §3.4

// sRGB transfer functions in float32 (contract §4); backends may differ from the float64
// reference by 1 LSB, which powf's few-ulp error stays well inside.
__device__ __forceinline__ float pr_srgb_encode(float c) {
    if (c <= 0.0031308f) return 12.92f * c;
    return 1.055f * powf(c, 1.0f / 2.4f) - 0.055f;
}

__device__ __forceinline__ float pr_srgb_decode(float c) {
    if (c <= 0.04045f) return c / 12.92f;
    return powf((c + 0.055f) / 1.055f, 2.4f);
}

// IEEE half (bits) -> float, exact, without cuda_fp16.h (not available to NVRTC by
// default and not to the host harness).
__device__ __forceinline__ float pr_half_to_float(pr_u16 h) {
    int sign = (h >> 15) & 1;
    int e = (h >> 10) & 0x1f;
    int m = h & 0x3ff;
    float v;
    if (e == 0) {
        v = ldexpf((float)m, -24);  // zero and subnormals
    } else if (e == 31) {
        float inf = ldexpf(1.0f, 200);  // overflows to +Inf; no 1/0 constant to warn about
        v = m ? inf - inf : inf;        // Inf - Inf is NaN
    } else {
        v = ldexpf((float)(m | 0x400), e - 25);
    }
    return sign ? -v : v;
}

// How to read one sample of each datatype.
//   value(): as double (exact for every type);  fvalue(): as float (exact up to 16 bits
//   and for F16/F32);  ivalue(): as int64 (integer types only).
// needs_double: (v - lo) must be taken in double to stay within float32 rounding of
// the result (32/64-bit integers and F64); the others subtract in float.
template <typename T>
struct PrSample {
    static const bool is_float = false;
    static const bool narrow = sizeof(T) <= 2;  // exact-formula types
    static const bool needs_double = sizeof(T) > 2;
    __device__ __forceinline__ static double value(T v) { return (double)v; }
    __device__ __forceinline__ static float fvalue(T v) { return (float)v; }
    __device__ __forceinline__ static pr_i64 ivalue(T v) { return (pr_i64)v; }
};

struct pr_f16 {
    pr_u16 bits;
};

template <typename F>
struct PrFloatSample {
    static const bool is_float = true;
    static const bool narrow = false;
    static const bool needs_double = sizeof(F) > 4;
    __device__ __forceinline__ static double value(F v) { return (double)v; }
    __device__ __forceinline__ static float fvalue(F v) { return (float)v; }
    __device__ __forceinline__ static pr_i64 ivalue(F) { return 0; }
};

template <>
struct PrSample<float> : PrFloatSample<float> {};

template <>
struct PrSample<double> : PrFloatSample<double> {};

template <>
struct PrSample<pr_f16> {
    static const bool is_float = true;
    static const bool narrow = false;
    static const bool needs_double = false;
    __device__ __forceinline__ static float fvalue(pr_f16 v) { return pr_half_to_float(v.bits); }
    __device__ __forceinline__ static double value(pr_f16 v) { return (double)fvalue(v); }
    __device__ __forceinline__ static pr_i64 ivalue(pr_f16) { return 0; }
};
