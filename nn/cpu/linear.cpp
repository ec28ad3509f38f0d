// CPU fully connected layer: y = x wᵀ + b and its two gradients, all as sgemm calls.
#include "nn/backends.h"
#include "nn/cpu/common.h"
#include "nn/cpu/gemm.h"

namespace sp::cpu {

void linear_forward(Context& ctx, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) {
    const int64_t n = x.dim(0), in = x.dim(1), out = w.dim(0);
    float* yd = y.data();
    // y (N, OUT) = b broadcast, then += x (N, IN) wᵀ (IN, OUT)
    if (b) {
        const float* bd = b->data();
#pragma omp parallel for schedule(static) if (n * out > kParallelGrain)
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < out; ++j) yd[i * out + j] = bd[j];
    }
    sgemm(false, true, n, out, in, 1.0f, x.data(), in, w.data(), in, b ? 1.0f : 0.0f, yd, out);
}

void linear_backward_data(Context& ctx, const Tensor& dy, const Tensor& w, Tensor& dx, GradMode mode) {
    const int64_t n = dy.dim(0), out = dy.dim(1), in = w.dim(1);
    // dx (N, IN) (+)= dy (N, OUT) w (OUT, IN)
    sgemm(false, false, n, in, out, 1.0f, dy.data(), out, w.data(), in,
          mode == GradMode::accumulate ? 1.0f : 0.0f, dx.data(), in);
}

void linear_backward_weight(Context& ctx, const Tensor& x, const Tensor& dy, Tensor& dw, GradMode mode) {
    const int64_t n = x.dim(0), in = x.dim(1), out = dy.dim(1);
    // dw (OUT, IN) (+)= dyᵀ (OUT, N) x (N, IN)
    sgemm(true, false, out, in, n, 1.0f, dy.data(), out, x.data(), in,
          mode == GradMode::accumulate ? 1.0f : 0.0f, dw.data(), in);
}

}  // namespace sp::cpu
