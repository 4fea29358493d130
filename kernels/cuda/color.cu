// Colour images (ColorModel x ChannelDatatype) -> display RGBA8 (contract §3).
//
// One extern "C" kernel per channel datatype (pr_color_u8 ... pr_color_f64), all
// from the template below. The colour model arrives as channel count plus the
// indices of R, G, B and alpha (-1: none) from formats.COLOR_MODELS; L is (0, 0, 0).
//
// Value range: per frame, computed on the host side by a GPU reduction (CuPy) and
// passed as arrays indexed by frame:
//   lo_d[f]   lower end as double              (mode 2)
//   lo_i[f]   lower end as an exact integer     (modes 0, 1; uint64 bits for U64)
//   span_i[f] hi - lo as an exact integer       (mode 0)
//   inv[f]    1 / (hi - lo)                     (modes 1, 2)
//   t0[f]     added to t                        (mode 1: 0.5 when min == max)
// mode 0: integer types <= 16 bits with an integer range -> formats.py's exact formula.
// mode 1: wider integers with their automatic range: v - lo in exact unsigned 64-bit
//         arithmetic (no overflow for any int64/uint64 pair), then float.
// mode 2: floats, or an explicit non-integer range: (v - lo_d) * inv in double/float.
// Alpha never uses the colour range (contract §3.3, 7): integers divide by the type's
// maximum `alpha_max` (exact formula up to 16 bits), floats are taken as they are.
//
// Launch: grid (gx, frames, 1), block (COLOR_BLOCK, 1, 1) (cupy_convert.py); blockIdx.y is the frame,
// so each thread reads its frame's range once, and a grid-stride loop over x covers
// the frame's pixels (no 64-bit division by the frame size per pixel).
#include "pixelrun_common.cuh"

// PrSample<T> (how to read one sample of each datatype) is in pixelrun_common.cuh,
// shared with table.cu.

// Exact floor(n / den) for n < 2^32 and den <= 2^24 without an integer divide: a float
// estimate is within 1 of the quotient (the quotient is at most 256 here, and float's
// relative error is 2^-24), and one remainder check fixes it.
__device__ __forceinline__ pr_u32 pr_div_small(pr_u32 n, pr_u32 den, float rcp) {
    pr_u32 q = (pr_u32)((float)n * rcp);
    const pr_i64 rem = (pr_i64)n - (pr_i64)q * den;
    if (rem < 0) return q - 1u;
    if (rem >= (pr_i64)den) return q + 1u;
    return q;
}

// Mode 0 for one frame: formats.py's exact formula with precomputed constants.
struct PrExact {
    pr_i64 lo, hi, span;
    bool small;  // span <= 8e6: 32-bit numerator, float-reciprocal division
    pr_u32 den;
    float rcp;
    __device__ __forceinline__ void init(pr_i64 lo_, pr_i64 span_) {
        lo = lo_;
        span = span_;
        hi = lo_ + span_;
        small = span_ <= 8000000;
        den = small ? 2u * (pr_u32)span_ : 0u;
        rcp = small ? 1.0f / (float)den : 0.0f;
    }
    __device__ __forceinline__ pr_u32 operator()(pr_i64 v) const {
        if (v <= lo) return 0u;
        if (v >= hi) return 255u;
        if (small) return pr_div_small(510u * (pr_u32)(v - lo) + (pr_u32)span, den, rcp);
        return pr_int_formula_inside((pr_u64)(v - lo), (pr_u64)span);
    }
};

// Mode 1 for integer T: v - lo exactly in unsigned 64-bit arithmetic, then float.
template <typename T>
__device__ __forceinline__ pr_u32 pr_wide_colour(T v, T lo, double inv, float t0) {
    if (v < lo) return 0u;
    const pr_u64 diff = (pr_u64)v - (pr_u64)lo;  // exact modulo 2^64, and v >= lo
    return pr_q((float)((double)diff * inv) + t0);
}

// Floating types never take mode 1 (the caller branches on is_float); these overloads
// only let the template below compile for them.
__device__ __forceinline__ pr_u32 pr_wide_colour(pr_f16, pr_f16, double, float) { return 0u; }
__device__ __forceinline__ pr_u32 pr_wide_colour(float, float, double, float) { return 0u; }
__device__ __forceinline__ pr_u32 pr_wide_colour(double, double, double, float) { return 0u; }

template <typename T>
__device__ __forceinline__ T pr_from_bits(pr_i64 bits) { return (T)bits; }
template <>
__device__ __forceinline__ pr_f16 pr_from_bits<pr_f16>(pr_i64) { return pr_f16{0}; }

template <typename T>
__device__ __forceinline__ void pr_color_body(
    const pr_u8* __restrict__ src_bytes, pr_u32* __restrict__ dst,
    pr_i64 pixels_per_frame, int channels,
    int ri, int gi, int bi, int ai, int mode,
    const double* __restrict__ lo_d, const pr_i64* __restrict__ lo_i,
    const pr_i64* __restrict__ span_i, const double* __restrict__ inv,
    const float* __restrict__ t0, double alpha_max) {
    typedef PrSample<T> S;
    const pr_i64 f = (pr_i64)blockIdx.y;
    const T* src = reinterpret_cast<const T*>(src_bytes) + f * pixels_per_frame * channels;
    pr_u32* out = dst + f * pixels_per_frame;

    // This frame's range, read once per thread.
    const double lo = lo_d[f];
    const float lo_f = (float)lo;
    // k = 1 / (hi - lo) as a normal float: for spans above 2^100 it would be near or
    // below float's smallest normal (1 / 1e38 is a denormal, flushed to zero by code
    // built to flush them), so it is taken 2^64 larger and t brought back by 2^-64 after
    // the product (both exact powers of two; t of such a range underflows only where it
    // is below the range's resolution anyway).
    // (decimal forms of 2^-100, 2^64 and 2^-64, each exact: hex floats are not C++11)
    const bool k_scaled = inv[f] < 7.888609052210118e-31;
    const float k = (float)(k_scaled ? inv[f] * 18446744073709551616.0 : inv[f]);
    const float k_post = k_scaled ? 5.421010862427522e-20f : 1.0f;
    const double wide_inv = inv[f];
    const float tz = t0[f];
    const T wide_lo = pr_from_bits<T>(lo_i[f]);
    PrExact exact;
    exact.init(lo_i[f], span_i[f]);
    // Alpha of <=16-bit integers: the same exact formula with lo = 0, hi = type max.
    PrExact alpha_exact;
    alpha_exact.init(0, (pr_i64)alpha_max);
    const int idx[3] = {ri, gi, bi};

    const pr_i64 stride = (pr_i64)blockDim.x * gridDim.x;
    for (pr_i64 i = (pr_i64)blockIdx.x * blockDim.x + threadIdx.x; i < pixels_per_frame; i += stride) {
        const T* p = src + i * channels;
        pr_u32 rgb[3];
        bool bad = false;
        if (S::is_float || mode == 2) {
#pragma unroll
            for (int c = 0; c < 3; ++c) {
                const T raw = p[idx[c]];
                float t;
                // In float mode (2) samples are halved (lo and k come halved from the planner) so
                // that v - lo cannot overflow for ranges like [-1.7e308, 1.7e308];
                // halving is exact, t is unchanged.
                if (S::needs_double) {
                    const double v = S::value(raw);
                    if (S::is_float && !pr_isfinite(v)) bad = true;
                    t = (float)(((mode == 2 ? v * 0.5 : v) - lo) * wide_inv);
                } else {
                    const float v = S::fvalue(raw);
                    if (S::is_float && !pr_isfinite(v)) bad = true;
                    t = (((mode == 2 ? v * 0.5f : v) - lo_f) * k) * k_post;
                }
                rgb[c] = pr_q(t);
            }
        } else if (mode == 0) {
#pragma unroll
            for (int c = 0; c < 3; ++c) rgb[c] = exact(S::ivalue(p[idx[c]]));
        } else {
#pragma unroll
            for (int c = 0; c < 3; ++c) rgb[c] = pr_wide_colour(p[idx[c]], wide_lo, wide_inv, tz);
        }
        if (bad) {
            out[i] = PR_MAGENTA;  // contract §3.4: NaN/Inf in a colour channel, alpha included
            continue;
        }
        pr_u32 a = 255u;
        if (ai >= 0) {
            const T av = p[ai];
            if (S::is_float) {
                a = pr_q(S::fvalue(av));  // taken as it is; NaN gives 0 like the reference
            } else if (S::narrow) {
                a = alpha_exact(S::ivalue(av));  // negative clamps to 0
            } else {
                a = pr_q((float)(S::value(av) / alpha_max));
            }
        }
        out[i] = pr_pack(rgb[0], rgb[1], rgb[2], a);
    }
}

#define PR_COLOR_KERNEL(NAME, T)                                                             \
    extern "C" __global__ void NAME(                                                         \
        const pr_u8* __restrict__ src, pr_u32* __restrict__ dst, pr_i64 pixels_per_frame,    \
        int channels, int ri, int gi, int bi, int ai, int mode,                              \
        const double* __restrict__ lo_d, const pr_i64* __restrict__ lo_i,                    \
        const pr_i64* __restrict__ span_i, const double* __restrict__ inv,                   \
        const float* __restrict__ t0, double alpha_max) {                                    \
        pr_color_body<T>(src, dst, pixels_per_frame, channels, ri, gi, bi, ai, mode,         \
                         lo_d, lo_i, span_i, inv, t0, alpha_max);                            \
    }

PR_COLOR_KERNEL(pr_color_u8, pr_u8)
PR_COLOR_KERNEL(pr_color_i8, pr_i8)
PR_COLOR_KERNEL(pr_color_u16, pr_u16)
PR_COLOR_KERNEL(pr_color_i16, pr_i16)
PR_COLOR_KERNEL(pr_color_u32, pr_u32)
PR_COLOR_KERNEL(pr_color_i32, pr_i32)
PR_COLOR_KERNEL(pr_color_u64, pr_u64)
PR_COLOR_KERNEL(pr_color_i64, pr_i64)
PR_COLOR_KERNEL(pr_color_f16, pr_f16)
PR_COLOR_KERNEL(pr_color_f32, float)
PR_COLOR_KERNEL(pr_color_f64, double)
