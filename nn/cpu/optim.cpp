// CPU optimizer updates over flat parameter buffers, following PyTorch's SGD, Adam and
// Adadelta update rules (L2 weight decay added to the gradient).
#include <cmath>

#include "nn/backends.h"
#include "nn/cpu/common.h"

namespace sp::cpu {

void sgd_update(Context& ctx, Tensor& params, const Tensor& grads, Tensor& velocity, const SgdHyper& hyper) {
    const int64_t n = params.numel();
    float *p = params.data(), *v = velocity.data();
    const float* gr = grads.data();
    const float lr = hyper.lr, mu = hyper.momentum, wd = hyper.weight_decay;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
        float g = gr[i] + wd * p[i];
        if (mu != 0.0f) {
            v[i] = hyper.first_step ? g : mu * v[i] + g;
            g = hyper.nesterov ? g + mu * v[i] : v[i];
        }
        p[i] -= lr * g;
    }
}

void adam_update(Context& ctx, Tensor& params, const Tensor& grads, Tensor& exp_avg, Tensor& exp_avg_sq,
                 const AdamHyper& hyper, int64_t step) {
    const int64_t n = params.numel();
    float *p = params.data(), *m = exp_avg.data(), *v = exp_avg_sq.data();
    const float* gr = grads.data();
    const float b1 = hyper.beta1, b2 = hyper.beta2, wd = hyper.weight_decay, eps = hyper.eps;
    // Scalars in double, as PyTorch computes them in Python.
    const double bc1 = 1.0 - std::pow(static_cast<double>(b1), static_cast<double>(step));
    const double bc2 = 1.0 - std::pow(static_cast<double>(b2), static_cast<double>(step));
    const float step_size = static_cast<float>(hyper.lr / bc1);
    const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
        const float g = gr[i] + wd * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        const float denom = std::sqrt(v[i]) / bc2_sqrt + eps;
        p[i] -= step_size * (m[i] / denom);
    }
}

void adadelta_update(Context& ctx, Tensor& params, const Tensor& grads, Tensor& square_avg, Tensor& acc_delta,
                     const AdadeltaHyper& hyper) {
    const int64_t n = params.numel();
    float *p = params.data(), *sq = square_avg.data(), *acc = acc_delta.data();
    const float* gr = grads.data();
    const float lr = hyper.lr, rho = hyper.rho, eps = hyper.eps, wd = hyper.weight_decay;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
        const float g = gr[i] + wd * p[i];
        sq[i] = rho * sq[i] + (1.0f - rho) * g * g;
        const float d = std::sqrt(acc[i] + eps) / std::sqrt(sq[i] + eps) * g;
        acc[i] = rho * acc[i] + (1.0f - rho) * d * d;
        p[i] -= lr * d;
    }
}

}  // namespace sp::cpu
