// CPU pooling: max and average 2-D pooling (padding is -inf for max and counted for average)
// and global average pooling. One (sample, channel) plane per parallel iteration.
#include <algorithm>
#include <limits>

#include "nn/backends.h"
#include "nn/cpu/common.h"

namespace sp::cpu {

namespace {

// Index (h * W + w) of the first maximum of the window at output (p, q), in row-major order;
// -1 when the window holds no input pixel.
int64_t window_argmax(const float* plane, int64_t h, int64_t w, const PoolGeometry& g, int64_t p, int64_t q) {
    int64_t best = -1;
    float best_value = -std::numeric_limits<float>::infinity();
    for (int64_t r = 0; r < g.window_h; ++r) {
        const int64_t hi = p * g.stride_h - g.pad_h + r;
        if (hi < 0 || hi >= h) continue;
        for (int64_t s = 0; s < g.window_w; ++s) {
            const int64_t wi = q * g.stride_w - g.pad_w + s;
            if (wi < 0 || wi >= w) continue;
            const float v = plane[hi * w + wi];
            if (best < 0 || v > best_value) {
                best = hi * w + wi;
                best_value = v;
            }
        }
    }
    return best;
}

}  // namespace

void pool2d_forward(Context& ctx, const PoolGeometry& geom, const Tensor& x, Tensor& y) {
    const int64_t planes = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3);
    const int64_t p_out = y.dim(2), q_out = y.dim(3);
    const double area = static_cast<double>(geom.window_h * geom.window_w);
    const float* xd = x.data();
    float* yd = y.data();
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const float* plane = xd + pl * h * w;
        float* out = yd + pl * p_out * q_out;
        for (int64_t p = 0; p < p_out; ++p) {
            for (int64_t q = 0; q < q_out; ++q) {
                if (geom.kind == PoolKind::max) {
                    const int64_t idx = window_argmax(plane, h, w, geom, p, q);
                    out[p * q_out + q] = idx < 0 ? -std::numeric_limits<float>::infinity() : plane[idx];
                } else {
                    double sum = 0.0;
                    for (int64_t r = 0; r < geom.window_h; ++r) {
                        const int64_t hi = p * geom.stride_h - geom.pad_h + r;
                        if (hi < 0 || hi >= h) continue;
                        for (int64_t s = 0; s < geom.window_w; ++s) {
                            const int64_t wi = q * geom.stride_w - geom.pad_w + s;
                            if (wi >= 0 && wi < w) sum += plane[hi * w + wi];
                        }
                    }
                    out[p * q_out + q] = static_cast<float>(sum / area);
                }
            }
        }
    }
}

void pool2d_backward(Context& ctx, const PoolGeometry& geom, const Tensor& x, const Tensor& y, const Tensor& dy,
                     Tensor& dx, GradMode mode) {
    const int64_t planes = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3);
    const int64_t p_out = dy.dim(2), q_out = dy.dim(3);
    const float area = static_cast<float>(geom.window_h * geom.window_w);
    const float *xd = x.data(), *dyd = dy.data();
    float* dxd = dx.data();
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const float* plane = xd + pl * h * w;
        const float* g = dyd + pl * p_out * q_out;
        float* d = dxd + pl * h * w;
        if (mode == GradMode::overwrite) std::fill(d, d + h * w, 0.0f);
        for (int64_t p = 0; p < p_out; ++p) {
            for (int64_t q = 0; q < q_out; ++q) {
                const float gv = g[p * q_out + q];
                if (geom.kind == PoolKind::max) {
                    // The argmax is recomputed from x, so `y` is not needed here.
                    const int64_t idx = window_argmax(plane, h, w, geom, p, q);
                    if (idx >= 0) d[idx] += gv;
                } else {
                    const float share = gv / area;
                    for (int64_t r = 0; r < geom.window_h; ++r) {
                        const int64_t hi = p * geom.stride_h - geom.pad_h + r;
                        if (hi < 0 || hi >= h) continue;
                        for (int64_t s = 0; s < geom.window_w; ++s) {
                            const int64_t wi = q * geom.stride_w - geom.pad_w + s;
                            if (wi >= 0 && wi < w) d[hi * w + wi] += share;
                        }
                    }
                }
            }
        }
    }
}

void global_avg_pool_forward(Context& ctx, const Tensor& x, Tensor& y) {
    const int64_t planes = x.dim(0) * x.dim(1), hw = x.dim(2) * x.dim(3);
    const float* xd = x.data();
    float* yd = y.data();
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t pl = 0; pl < planes; ++pl) {
        double sum = 0.0;
        for (int64_t j = 0; j < hw; ++j) sum += xd[pl * hw + j];
        yd[pl] = static_cast<float>(sum / static_cast<double>(hw));
    }
}

void global_avg_pool_backward(Context& ctx, const Tensor& dy, Tensor& dx, GradMode mode) {
    const int64_t planes = dx.dim(0) * dx.dim(1), hw = dx.dim(2) * dx.dim(3);
    const float* dyd = dy.data();
    float* dxd = dx.data();
#pragma omp parallel for schedule(static) if (dx.numel() > kParallelGrain)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const float share = dyd[pl] / static_cast<float>(hw);
        for (int64_t j = 0; j < hw; ++j) store_grad(dxd[pl * hw + j], share, mode);
    }
}

}  // namespace sp::cpu
