// CPU normalisation ops: batch norm (train, eval, backward) and local response normalisation
// across channels. Per-channel statistics are reduced in double.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/error.h"
#include "nn/backends.h"
#include "nn/cpu/common.h"

namespace sp::cpu {

void batchnorm_forward_train(Context& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                             Tensor& running_mean, Tensor& running_var, float momentum, float eps, Tensor& y,
                             Tensor& saved_mean, Tensor& saved_invstd) {
    const int64_t n = x.dim(0), c = x.dim(1), hw = x.numel() / std::max<int64_t>(n * c, 1);
    const int64_t count = n * hw;  // values per channel
    SP_REQUIRE(count > 1, "batchnorm_forward_train: need more than one value per channel, got " << count);
    const float* xd = x.data();
    float* yd = y.data();
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t ch = 0; ch < c; ++ch) {
        double sum = 0.0;
        for (int64_t i = 0; i < n; ++i) {
            const float* p = xd + (i * c + ch) * hw;
            for (int64_t j = 0; j < hw; ++j) sum += p[j];
        }
        const double mean = sum / static_cast<double>(count);
        double sq = 0.0;  // two-pass variance: no cancellation
        for (int64_t i = 0; i < n; ++i) {
            const float* p = xd + (i * c + ch) * hw;
            for (int64_t j = 0; j < hw; ++j) sq += (p[j] - mean) * (p[j] - mean);
        }
        const double var = sq / static_cast<double>(count);  // biased: used to normalise
        const double invstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
        const double scale = gamma.data()[ch] * invstd, shift = beta.data()[ch] - mean * scale;
        for (int64_t i = 0; i < n; ++i) {
            const float* p = xd + (i * c + ch) * hw;
            float* q = yd + (i * c + ch) * hw;
            for (int64_t j = 0; j < hw; ++j) q[j] = static_cast<float>(p[j] * scale + shift);
        }
        saved_mean.data()[ch] = static_cast<float>(mean);
        saved_invstd.data()[ch] = static_cast<float>(invstd);
        const double unbiased = sq / static_cast<double>(count - 1);
        running_mean.data()[ch] = static_cast<float>((1.0 - momentum) * running_mean.data()[ch] + momentum * mean);
        running_var.data()[ch] = static_cast<float>((1.0 - momentum) * running_var.data()[ch] + momentum * unbiased);
    }
}

void batchnorm_forward_eval(Context& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            const Tensor& running_mean, const Tensor& running_var, float eps, Tensor& y) {
    const int64_t n = x.dim(0), c = x.dim(1), hw = x.numel() / std::max<int64_t>(n * c, 1);
    const float* xd = x.data();
    float* yd = y.data();
#pragma omp parallel for collapse(2) schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t ch = 0; ch < c; ++ch) {
            const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var.data()[ch]) + eps);
            const double scale = gamma.data()[ch] * invstd;
            const double shift = beta.data()[ch] - running_mean.data()[ch] * scale;
            const float* p = xd + (i * c + ch) * hw;
            float* q = yd + (i * c + ch) * hw;
            for (int64_t j = 0; j < hw; ++j) q[j] = static_cast<float>(p[j] * scale + shift);
        }
    }
}

void batchnorm_backward(Context& ctx, const Tensor& x, const Tensor& dy, const Tensor& gamma,
                        const Tensor& saved_mean, const Tensor& saved_invstd, Tensor& dx, Tensor& dgamma,
                        Tensor& dbeta, GradMode mode) {
    const int64_t n = x.dim(0), c = x.dim(1), hw = x.numel() / std::max<int64_t>(n * c, 1);
    const double count = static_cast<double>(n * hw);
    const float *xd = x.data(), *dyd = dy.data();
    float* dxd = dx.data();
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t ch = 0; ch < c; ++ch) {
        const double mean = saved_mean.data()[ch], invstd = saved_invstd.data()[ch];
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int64_t i = 0; i < n; ++i) {
            const float *p = xd + (i * c + ch) * hw, *g = dyd + (i * c + ch) * hw;
            for (int64_t j = 0; j < hw; ++j) {
                sum_dy += g[j];
                sum_dy_xhat += g[j] * (p[j] - mean) * invstd;
            }
        }
        // dx = gamma invstd / M (M dy - Σdy - xhat Σ(dy xhat))
        const double k = gamma.data()[ch] * invstd / count;
        for (int64_t i = 0; i < n; ++i) {
            const float *p = xd + (i * c + ch) * hw, *g = dyd + (i * c + ch) * hw;
            float* q = dxd + (i * c + ch) * hw;
            for (int64_t j = 0; j < hw; ++j) {
                const double xhat = (p[j] - mean) * invstd;
                q[j] = static_cast<float>(k * (count * g[j] - sum_dy - xhat * sum_dy_xhat));
            }
        }
        store_grad(dgamma.data()[ch], static_cast<float>(sum_dy_xhat), mode);
        store_grad(dbeta.data()[ch], static_cast<float>(sum_dy), mode);
    }
}

namespace {

// s[c] = k + alpha/size Σ_{|c'-c| <= size/2} x[c']² for one (n, h, w) column with channel stride hw.
void lrn_scale_column(const LrnParams& prm, const float* x, int64_t c, int64_t hw, double* s) {
    const int64_t half = prm.size / 2;
    for (int64_t ch = 0; ch < c; ++ch) {
        double sum = 0.0;
        for (int64_t o = std::max<int64_t>(0, ch - half); o <= std::min(c - 1, ch + half); ++o) {
            const double v = x[o * hw];
            sum += v * v;
        }
        s[ch] = prm.k + static_cast<double>(prm.alpha) / static_cast<double>(prm.size) * sum;
    }
}

}  // namespace

void lrn_forward(Context& ctx, const LrnParams& params, const Tensor& x, Tensor& y) {
    const int64_t n = x.dim(0), c = x.dim(1), hw = x.numel() / std::max<int64_t>(n * c, 1);
    const float* xd = x.data();
    float* yd = y.data();
#pragma omp parallel if (x.numel() > kParallelGrain)
    {
        std::vector<double> s(static_cast<size_t>(c));
#pragma omp for collapse(2) schedule(static)
        for (int64_t i = 0; i < n; ++i) {
            for (int64_t j = 0; j < hw; ++j) {
                const float* col = xd + i * c * hw + j;
                lrn_scale_column(params, col, c, hw, s.data());
                float* out = yd + i * c * hw + j;
                for (int64_t ch = 0; ch < c; ++ch)
                    out[ch * hw] = static_cast<float>(col[ch * hw] * std::pow(s[ch], -static_cast<double>(params.beta)));
            }
        }
    }
}

void lrn_backward(Context& ctx, const LrnParams& params, const Tensor& x, const Tensor& y, const Tensor& dy,
                  Tensor& dx, GradMode mode) {
    // dx_j = dy_j s_j^-beta - (2 alpha beta / size) x_j Σ_{|c-j| <= size/2} dy_c y_c / s_c
    const int64_t n = x.dim(0), c = x.dim(1), hw = x.numel() / std::max<int64_t>(n * c, 1);
    const int64_t half = params.size / 2;
    const double coef = 2.0 * params.alpha * params.beta / static_cast<double>(params.size);
    const float *xd = x.data(), *yd = y.data(), *dyd = dy.data();
    float* dxd = dx.data();
#pragma omp parallel if (x.numel() > kParallelGrain)
    {
        std::vector<double> s(static_cast<size_t>(c)), t(static_cast<size_t>(c));
#pragma omp for collapse(2) schedule(static)
        for (int64_t i = 0; i < n; ++i) {
            for (int64_t j = 0; j < hw; ++j) {
                const int64_t base = i * c * hw + j;
                lrn_scale_column(params, xd + base, c, hw, s.data());
                for (int64_t ch = 0; ch < c; ++ch)
                    t[ch] = static_cast<double>(dyd[base + ch * hw]) * yd[base + ch * hw] / s[ch];
                for (int64_t ch = 0; ch < c; ++ch) {
                    double sum = 0.0;
                    for (int64_t o = std::max<int64_t>(0, ch - half); o <= std::min(c - 1, ch + half); ++o) sum += t[o];
                    const double g = dyd[base + ch * hw] * std::pow(s[ch], -static_cast<double>(params.beta)) -
                                     coef * xd[base + ch * hw] * sum;
                    store_grad(dxd[base + ch * hw], static_cast<float>(g), mode);
                }
            }
        }
    }
}

}  // namespace sp::cpu
