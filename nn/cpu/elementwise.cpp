// CPU elementwise and data-movement ops: relu, add, axpy, multiply, scale_channels, dropout,
// channel concatenation and the option-A residual shortcut.
#include <algorithm>
#include <cstring>

#include "kernels/philox.h"
#include "nn/backends.h"
#include "nn/cpu/common.h"

namespace sp::cpu {

void relu_forward(Context& ctx, const Tensor& x, Tensor& y) {
    const int64_t n = x.numel();
    const float* xd = x.data();
    float* yd = y.data();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) yd[i] = xd[i] > 0.0f ? xd[i] : 0.0f;
}

void relu_backward(Context& ctx, const Tensor& y, const Tensor& dy, Tensor& dx, GradMode mode) {
    const int64_t n = y.numel();
    const float *yd = y.data(), *g = dy.data();
    float* d = dx.data();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i];  // read unconditionally: the select vectorises, a branch would mispredict
        store_grad(d[i], yd[i] > 0.0f ? gi : 0.0f, mode);
    }
}

void add(Context& ctx, const Tensor& a, const Tensor& b, Tensor& y) {
    const int64_t n = a.numel();
    const float *ad = a.data(), *bd = b.data();
    float* yd = y.data();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) yd[i] = ad[i] + bd[i];
}

void axpy(Context& ctx, float alpha, const Tensor& x, Tensor& y) {
    const int64_t n = x.numel();
    const float* xd = x.data();
    float* yd = y.data();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) yd[i] += alpha * xd[i];
}

void multiply(Context& ctx, const Tensor& a, const Tensor& b, Tensor& y) {
    const int64_t n = a.numel();
    const float *ad = a.data(), *bd = b.data();
    float* yd = y.data();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) yd[i] = ad[i] * bd[i];
}

void scale_channels(Context& ctx, const Tensor& x, const Tensor& mask, Tensor& y) {
    // x (N, C, ...), mask (C) or (P, C): row i uses mask row i / (N / P)
    const int64_t n = x.dim(0), c = x.dim(1);
    const int64_t inner = n * c > 0 ? x.numel() / (n * c) : 0;
    const int64_t rows_per_member = mask.rank() == 2 ? n / mask.dim(0) : n;
    const float *xd = x.data(), *m = mask.data();
    float* yd = y.data();
#pragma omp parallel for collapse(2) schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t ch = 0; ch < c; ++ch) {
            const int64_t base = (i * c + ch) * inner;
            const float g = m[(i / rows_per_member) * c + ch];
            for (int64_t j = 0; j < inner; ++j) yd[base + j] = xd[base + j] * g;
        }
    }
}

void dropout_forward(Context& ctx, const Tensor& x, float p, uint64_t key, Tensor& y, Tensor& keep_scale) {
    const int64_t n = x.numel();
    const float scale = 1.0f / (1.0f - p);  // float, as the CUDA kernel computes it
    const float* xd = x.data();
    float *yd = y.data(), *ks = keep_scale.data();
#pragma omp parallel for schedule(static) if (n > kParallelGrain / 8)
    for (int64_t i = 0; i < n; ++i) {
        const float k = stream_uniform(key, static_cast<uint64_t>(i)) >= p ? scale : 0.0f;
        ks[i] = k;
        yd[i] = xd[i] * k;
    }
}

void concat_channels_forward(Context& ctx, const std::vector<const Tensor*>& xs, Tensor& y) {
    const int64_t n = y.dim(0), c_total = y.dim(1), hw = y.dim(2) * y.dim(3);
    float* yd = y.data();
    int64_t offset = 0;
    for (const Tensor* x : xs) {
        const int64_t c = x->dim(1);
        const float* xd = x->data();
#pragma omp parallel for schedule(static) if (x->numel() > kParallelGrain)
        for (int64_t i = 0; i < n; ++i)
            std::memcpy(yd + (i * c_total + offset) * hw, xd + i * c * hw, sizeof(float) * static_cast<size_t>(c * hw));
        offset += c;
    }
}

void concat_channels_backward(Context& ctx, const Tensor& dy, const std::vector<Tensor*>& dxs, GradMode mode) {
    const int64_t n = dy.dim(0), c_total = dy.dim(1), hw = dy.dim(2) * dy.dim(3);
    const float* dyd = dy.data();
    int64_t offset = 0;
    for (Tensor* dx : dxs) {
        const int64_t c = dx->dim(1), block = c * hw;
        float* d = dx->data();
#pragma omp parallel for schedule(static) if (dx->numel() > kParallelGrain)
        for (int64_t i = 0; i < n; ++i) {
            const float* src = dyd + (i * c_total + offset) * hw;
            for (int64_t j = 0; j < block; ++j) store_grad(d[i * block + j], src[j], mode);
        }
        offset += c;
    }
}

void shortcut_forward(Context& ctx, const Tensor& x, int64_t stride, int64_t channel_offset, Tensor& y) {
    const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
    const int64_t k = y.dim(1), p_out = y.dim(2), q_out = y.dim(3);
    const float* xd = x.data();
    float* yd = y.data();
#pragma omp parallel for collapse(2) schedule(static) if (y.numel() > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t ch = 0; ch < k; ++ch) {
            float* out = yd + (i * k + ch) * p_out * q_out;
            const int64_t src_c = ch - channel_offset;
            if (src_c < 0 || src_c >= c) {
                std::fill(out, out + p_out * q_out, 0.0f);
                continue;
            }
            const float* plane = xd + (i * c + src_c) * h * w;
            for (int64_t p = 0; p < p_out; ++p)
                for (int64_t q = 0; q < q_out; ++q) out[p * q_out + q] = plane[p * stride * w + q * stride];
        }
    }
}

void shortcut_backward(Context& ctx, const Tensor& dy, int64_t stride, int64_t channel_offset, Tensor& dx,
                       GradMode mode) {
    const int64_t n = dx.dim(0), c = dx.dim(1), h = dx.dim(2), w = dx.dim(3);
    const int64_t k = dy.dim(1), p_out = dy.dim(2), q_out = dy.dim(3);
    const float* dyd = dy.data();
    float* dxd = dx.data();
#pragma omp parallel for collapse(2) schedule(static) if (dx.numel() > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t ch = 0; ch < c; ++ch) {
            const float* g = dyd + (i * k + ch + channel_offset) * p_out * q_out;
            float* d = dxd + (i * c + ch) * h * w;
            for (int64_t hi = 0; hi < h; ++hi) {
                for (int64_t wi = 0; wi < w; ++wi) {
                    const float v = (hi % stride == 0 && wi % stride == 0) ? g[(hi / stride) * q_out + wi / stride] : 0.0f;
                    store_grad(d[hi * w + wi], v, mode);
                }
            }
        }
    }
}

}  // namespace sp::cpu
