// Gibbs pruning samplers (docs/methods.md, gibbs): the arithmetic shared by the CPU reference
// (pruning/gibbs.cpp) and the CUDA kernels (kernels/gibbs.cu), and the launchers of those kernels.
//
// Bit-identical masks on both backends need bit-identical float arithmetic, so everything a
// decision depends on is written here once, as SP_HOST_DEVICE functions that (a) never leave a
// multiply next to an add for nvcc to fuse (gibbs_mul is __fmul_rn on the device; fused steps
// are explicit fmaf, which both sides round once) and (b) use their own exp/log polynomials
// instead of the libraries' (glibc and CUDA round expf/logf differently).
//
// A layer's weights are viewed as (filters, channels, area): K filters of C input channels of
// R·S = area weights (a linear layer: (OUT, IN, 1)). Spins x = 2m − 1, m the 0/1 mask.
// Random numbers: Philox stream `key`; uniform i is output i % 4 of block i / 4 (kernels/philox.h),
// turned into a float strictly inside (0, 1) by gibbs_uniform.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/cuda_types.h"

#include "kernels/philox.h"

namespace sp::kernels {

// Largest kernel area the exact 2^area enumeration accepts (4096 configurations).
constexpr int kGibbsMaxArea = 12;

SP_HOST_DEVICE inline float gibbs_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

// (2k + 1) / 2^24 from the top 23 bits: exact in float, never 0 nor 1.
SP_HOST_DEVICE inline float gibbs_uniform(uint32_t raw) {
    return static_cast<float>(((raw >> 9) << 1) | 1u) * 5.9604644775390625e-8f;  // 2^-24
}

// 2^t for t clamped to [-125, 125]; relative error below 1e-8 (degree-7 Taylor on |r| <= ln2/2).
SP_HOST_DEVICE inline float gibbs_exp2(float t) {
    t = fminf(fmaxf(t, -125.0f), 125.0f);
    const float n = rintf(t);
    const float r = gibbs_mul(t - n, 0.693147180559945309f);  // t - n is exact
    float p = 1.0f / 5040.0f;
    p = fmaf(p, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    return ldexpf(p, static_cast<int>(n));
}

// σ(z) = 1 / (1 + e^-z); z = ±inf gives 0 / 1 up to 2^-125.
SP_HOST_DEVICE inline float gibbs_sigmoid(float z) {
    return 1.0f / (1.0f + gibbs_exp2(gibbs_mul(-z, 1.44269504088896341f)));
}

// ln x for a positive normal float: x = 2^e m, m in [√½, √2), ln m = 2 atanh((m-1)/(m+1)) by
// its odd series (|s| <= 0.172: terms to s^11 leave < 1e-9).
SP_HOST_DEVICE inline float gibbs_log(float x) {
    int e = 0;
#if defined(__CUDA_ARCH__)
    float m = frexpf(x, &e);  // m in [0.5, 1)
#else
    // frexpf from the bits (libm's is an out-of-line call in the samplers' innermost loop); the
    // same m and e for the positive normal floats this function takes.
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    e = static_cast<int>((bits >> 23) & 0xffu) - 126;
    bits = (bits & 0x807fffffu) | (126u << 23);
    float m;
    std::memcpy(&m, &bits, sizeof m);
#endif
    if (m < 0.70710678118654752f) {
        m = m + m;
        --e;
    }
    const float s = (m - 1.0f) / (m + 1.0f);
    const float s2 = gibbs_mul(s, s);
    float p = 1.0f / 11.0f;
    p = fmaf(p, s2, 1.0f / 9.0f);
    p = fmaf(p, s2, 1.0f / 7.0f);
    p = fmaf(p, s2, 1.0f / 5.0f);
    p = fmaf(p, s2, 1.0f / 3.0f);
    p = fmaf(p, s2, 1.0f);
    return fmaf(static_cast<float>(e), 0.693147180559945309f, gibbs_mul(s + s, p));
}

// A standard Gumbel variate −ln(−ln u).
SP_HOST_DEVICE inline float gibbs_gumbel(uint32_t raw) { return -gibbs_log(-gibbs_log(gibbs_uniform(raw))); }

// Linear-interpolation percentile from the two order statistics around position p·(n−1).
SP_HOST_DEVICE inline float gibbs_percentile_value(float lo, float hi, float frac) { return lo + gibbs_mul(frac, hi - lo); }

// Unstructured: keep with probability σ(β (w² − Q)).
SP_HOST_DEVICE inline bool gibbs_keep_weight(float w, float q, float beta, uint32_t raw) {
    const float z = gibbs_mul(beta, gibbs_mul(w, w) - q);
    return gibbs_uniform(raw) < gibbs_sigmoid(z);
}

// Log-probability (up to a constant) of configuration `config` of one kernel whose weights have
// fields h[0..area): bit i of config set = spin +1. H = Σ h_i x_i − c Σ_{i≠j} x_i x_j (ordered
// pairs) = Σ h_i x_i − c (S² − area) with S = Σ x_i; the constant c·area is dropped.
SP_HOST_DEVICE inline float gibbs_config_logit(const float* h, int area, uint32_t config, float coupling, float beta) {
    float field = 0.0f;
    int spin_sum = 0;
    for (int i = 0; i < area; ++i) {
        const bool up = (config >> i) & 1u;
        field = up ? field + h[i] : field - h[i];
        spin_sum += up ? 1 : -1;
    }
    const float s2 = static_cast<float>(spin_sum * spin_sum);
    return gibbs_mul(beta, gibbs_mul(coupling, s2) - field);
}

// Gumbel-max pick between (value, index) pairs: the larger value, the lower index on ties.
SP_HOST_DEVICE inline bool gibbs_better(float v, uint32_t i, float best_v, uint32_t best_i) {
    return v > best_v || (v == best_v && i < best_i);
}

// ---- launchers (kernels/gibbs.cu). All pointers are device memory; shapes as above.

// kind 0: w² per weight (n = K·C·area); kind 1: mean w² per kernel (K·C); kind 2: per filter (K).
void gibbs_statistic(const float* w, int64_t filters, int64_t channels, int64_t area, int kind, float* out,
                     cudaStream_t stream);
// Scratch bytes gibbs_percentile needs for n values.
size_t gibbs_percentile_scratch_bytes(size_t n);
// *q = the interpolated order statistic between sorted[lo] and sorted[lo + 1] (or sorted[lo] at the
// end) of values[0, n), by a CUB radix sort in `scratch` (no host round trip).
void gibbs_percentile(const float* values, size_t n, int64_t lo, float frac, float* q, void* scratch,
                      size_t scratch_bytes, cudaStream_t stream);
// mask[i] = 1 with probability σ(β (w_i² − *q)), uniform i of `key`; one pass, which also writes
// masked_weight[i] = w_i · mask[i] unless masked_weight is null (the mask applied in the draw).
void gibbs_draw_unstructured(const float* w, const float* q, size_t n, float beta, uint64_t key, float* mask,
                             float* masked_weight, cudaStream_t stream);
// One thread block per kernel (f, c) with c in [channel_begin, channel_end): an exact draw from
// its 2^area configurations by Gumbel-max, fields h_i = *q − w_i² − coupling · other_sums[f]
// (other_sums null: no shift). Uniform (counter_base + f·C + c)·2^area + config of `key`.
void gibbs_draw_kernels(const float* w, const float* q, int64_t filters, int64_t channels, int64_t area,
                        int64_t channel_begin, int64_t channel_end, const float* other_sums, float coupling,
                        float beta, uint64_t key, uint64_t counter_base, float* mask, cudaStream_t stream);
// sums[f] = Σ spins of filter f over channels [channel_begin, channel_end).
void gibbs_spin_sums(const float* mask, int64_t filters, int64_t channels, int64_t area, int64_t channel_begin,
                     int64_t channel_end, float* sums, cudaStream_t stream);
// The magnitude decision: every weight of filter f is 1 when filter_means[f] > *q, else 0.
void gibbs_filter_start(const float* filter_means, const float* q, int64_t filters, int64_t per_filter, float* mask,
                        cudaStream_t stream);
// counters[0] += #{i : prev[i] != cur[i]}, counters[1] += #{i : cur[i] != 0}.
void gibbs_count(const float* prev, const float* cur, size_t n, unsigned long long* counters, cudaStream_t stream);

}  // namespace sp::kernels
