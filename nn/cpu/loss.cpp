// CPU loss and metrics: label-smoothed softmax cross-entropy (log-sum-exp with the row maximum
// subtracted, in double) and the top-k correct count with ties counted against the label.
#include <algorithm>
#include <cmath>

#include "kernels/error.h"
#include "nn/backends.h"
#include "nn/cpu/common.h"

namespace sp::cpu {

namespace {

// Checks that every label is an integer class index in [0, classes) (before any parallel loop:
// an exception must not leave an OpenMP region).
void require_labels(const char* op, const Tensor& labels, int64_t classes) {
    const float* l = labels.data();
    for (int64_t i = 0; i < labels.numel(); ++i) {
        const float v = l[i];
        SP_REQUIRE(v >= 0.0f && v < static_cast<float>(classes) && std::floor(v) == v,
                   op << ": label of row " << i << " is " << v << ", not a class index in [0, " << classes << ")");
    }
}

}  // namespace

float softmax_cross_entropy(Context& ctx, const Tensor& logits, const Tensor& labels, float label_smoothing,
                            Tensor* dlogits) {
    const int64_t n = logits.dim(0), k = logits.dim(1);
    require_labels("softmax_cross_entropy", labels, k);
    const float *z = logits.data(), *l = labels.data();
    float* dz = dlogits ? dlogits->data() : nullptr;
    const double s = label_smoothing, off = s / static_cast<double>(k), on = 1.0 - s + off;
    double total = 0.0;
#pragma omp parallel for reduction(+ : total) schedule(static) if (logits.numel() > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
        const float* row = z + i * k;
        const int64_t y = static_cast<int64_t>(l[i]);
        double m = row[0];
        for (int64_t j = 1; j < k; ++j) m = std::max(m, static_cast<double>(row[j]));
        double sum = 0.0;
        for (int64_t j = 0; j < k; ++j) sum += std::exp(row[j] - m);
        const double lse = m + std::log(sum);
        // loss_i = Σ_j t_j (lse - z_j) with Σ_j t_j = 1
        double target_dot = 0.0;
        for (int64_t j = 0; j < k; ++j) target_dot += (j == y ? on : off) * row[j];
        total += lse - target_dot;
        if (dz) {
            for (int64_t j = 0; j < k; ++j) {
                const double softmax = std::exp(row[j] - lse);
                dz[i * k + j] = static_cast<float>((softmax - (j == y ? on : off)) / static_cast<double>(n));
            }
        }
    }
    return n > 0 ? static_cast<float>(total / static_cast<double>(n)) : 0.0f;
}

int64_t topk_correct(Context& ctx, const Tensor& logits, const Tensor& labels, int k) {
    const int64_t n = logits.dim(0), classes = logits.dim(1);
    require_labels("topk_correct", labels, classes);
    const float *z = logits.data(), *l = labels.data();
    int64_t correct = 0;
#pragma omp parallel for reduction(+ : correct) schedule(static) if (logits.numel() > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
        const float* row = z + i * classes;
        const int64_t y = static_cast<int64_t>(l[i]);
        const float zy = row[y];
        int64_t ahead = 0;  // logits that rank before the label (ties count against it)
        for (int64_t j = 0; j < classes; ++j) ahead += (row[j] > zy || (j != y && row[j] == zy)) ? 1 : 0;
        correct += ahead < k ? 1 : 0;
    }
    return correct;
}

}  // namespace sp::cpu
