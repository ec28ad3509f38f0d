// CPU ops behind population evaluation: column slices of a population, kernel masks repeated
// to weight masks, member-major batches regrouped for grouped convolutions, and the per-member
// energies of a member-major batch of logits.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/error.h"
#include "nn/backends.h"
#include "nn/cpu/common.h"

namespace sp::cpu {

void slice_columns(Context& ctx, const Tensor& src, int64_t begin, Tensor& dst) {
    // src (R, D), dst (R, n)
    const int64_t rows = src.dim(0), d = src.dim(1), n = dst.dim(1);
    const float* s = src.data();
    float* t = dst.data();
    for (int64_t r = 0; r < rows; ++r)
        std::memcpy(t + r * n, s + r * d + begin, sizeof(float) * static_cast<size_t>(n));
}

void repeat_elements(Context& ctx, const Tensor& src, int64_t k, Tensor& dst) {
    const int64_t n = src.numel();
    const float* s = src.data();
    float* t = dst.data();
#pragma omp parallel for schedule(static) if (n * k > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) std::fill(t + i * k, t + (i + 1) * k, s[i]);
}

void swap_leading_axes(Context& ctx, const Tensor& src, int64_t a, int64_t b, Tensor& dst) {
    // src (a, b, inner) -> dst (b, a, inner), one contiguous run of `inner` floats per (i, j)
    const int64_t inner = src.numel() / (a * b);
    const float* s = src.data();
    float* t = dst.data();
#pragma omp parallel for schedule(static) if (src.numel() > kParallelGrain)
    for (int64_t j = 0; j < b; ++j)
        for (int64_t i = 0; i < a; ++i)
            std::memcpy(t + (j * a + i) * inner, s + (i * b + j) * inner, sizeof(float) * static_cast<size_t>(inner));
}

void member_energies(Context& ctx, const Tensor& logits, const Tensor& labels, EnergyKind kind, Tensor& energies) {
    // logits (P·B, K), labels (P·B), energies (P)
    const int64_t rows = logits.dim(0), classes = logits.dim(1), members = energies.dim(0);
    const int64_t per_member = rows / members;
    const float *z = logits.data(), *l = labels.data();
    for (int64_t i = 0; i < rows; ++i) {
        const float v = l[i];
        SP_REQUIRE(v >= 0.0f && v < static_cast<float>(classes) && std::floor(v) == v,
                   "member_energies: row " << i << " has label " << v << ", not a class index in [0, " << classes
                                           << ")");
    }
    float* e = energies.data();
    // Each row's term in double; a member's rows summed in row order (the CUDA kernel's order).
#pragma omp parallel for schedule(static) if (logits.numel() > kParallelGrain)
    for (int64_t p = 0; p < members; ++p) {
        double sum = 0.0;
        for (int64_t b = 0; b < per_member; ++b) {
            const int64_t i = p * per_member + b;
            const float* row = z + i * classes;
            const int64_t y = static_cast<int64_t>(l[i]);
            const double zy = row[y];
            double v = 0.0;
            if (kind == EnergyKind::cross_entropy) {
                double m = row[0];
                for (int64_t j = 1; j < classes; ++j) m = std::max(m, static_cast<double>(row[j]));
                double s = 0.0;
                for (int64_t j = 0; j < classes; ++j) s += std::exp(static_cast<double>(row[j]) - m);
                v = m + std::log(s) - zy;
            } else if (kind == EnergyKind::margin) {
                double other = -HUGE_VAL;
                for (int64_t j = 0; j < classes; ++j)
                    if (j != y) other = std::max(other, static_cast<double>(row[j]));
                v = -10.0 * (zy - other);
            } else {
                bool beaten = false;  // another logit >= the label's: top-1 wrong (ties count against)
                for (int64_t j = 0; j < classes; ++j) beaten = beaten || (j != y && static_cast<double>(row[j]) >= zy);
                v = beaten ? 1.0 : 0.0;
            }
            sum += v;
        }
        e[p] = static_cast<float>(sum / static_cast<double>(per_member));
    }
}

}  // namespace sp::cpu
