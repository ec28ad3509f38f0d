// CPU pooling: max and average 2-D pooling (padding is -inf for max and counted for average)
// and global average pooling. One (sample, channel) plane per parallel iteration.
#include <algorithm>
#include <limits>

#include "nn/backends.h"
#include "nn/cpu/common.h"

namespace sp::cpu {

namespace {

// The input rows [h0, h1) and columns [w0, w1) that the window of output (p, q) covers: the
// window clipped to the plane, so the loops over it need no bounds checks.
struct Window {
    int64_t h0, h1, w0, w1;
    bool empty() const { return h0 >= h1 || w0 >= w1; }
};

Window window_of(const PoolGeometry& g, int64_t h, int64_t w, int64_t p, int64_t q) {
    const int64_t top = p * g.stride_h - g.pad_h, left = q * g.stride_w - g.pad_w;
    return {std::max<int64_t>(top, 0), std::min(top + g.window_h, h), std::max<int64_t>(left, 0),
            std::min(left + g.window_w, w)};
}

// Index (h * W + w) of the first maximum of a window, in row-major order; -1 when the window
// holds no input pixel.
int64_t window_argmax(const float* plane, int64_t w, const Window& win) {
    if (win.empty()) return -1;
    int64_t best = win.h0 * w + win.w0;
    float best_value = plane[best];
    for (int64_t hi = win.h0; hi < win.h1; ++hi) {
        for (int64_t wi = win.w0; wi < win.w1; ++wi) {
            // A select through a bit mask, not a branch: which pixel wins is data-dependent,
            // so a branch mispredicts often (and the compiler keeps `if` as one).
            const float v = plane[hi * w + wi];
            const int64_t greater = -static_cast<int64_t>(v > best_value);  // all ones or zero
            best = ((hi * w + wi) & greater) | (best & ~greater);
            best_value = v > best_value ? v : best_value;
        }
    }
    return best;
}

// The value of window_argmax: the same comparisons in the same order, as a select (x86 maxss).
float window_max(const float* plane, int64_t w, const Window& win) {
    if (win.empty()) return -std::numeric_limits<float>::infinity();
    float best = plane[win.h0 * w + win.w0];
    for (int64_t hi = win.h0; hi < win.h1; ++hi) {
        for (int64_t wi = win.w0; wi < win.w1; ++wi) {
            const float v = plane[hi * w + wi];
            best = v > best ? v : best;
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
                const Window win = window_of(geom, h, w, p, q);
                if (geom.kind == PoolKind::max) {
                    out[p * q_out + q] = window_max(plane, w, win);
                } else {
                    double sum = 0.0;
                    for (int64_t hi = win.h0; hi < win.h1; ++hi)
                        for (int64_t wi = win.w0; wi < win.w1; ++wi) sum += plane[hi * w + wi];
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
                const Window win = window_of(geom, h, w, p, q);
                if (geom.kind == PoolKind::max) {
                    // The argmax is recomputed from x, so `y` is not needed here.
                    const int64_t idx = window_argmax(plane, w, win);
                    if (idx >= 0) d[idx] += gv;
                } else {
                    const float share = gv / area;
                    for (int64_t hi = win.h0; hi < win.h1; ++hi)
                        for (int64_t wi = win.w0; wi < win.w1; ++wi) d[hi * w + wi] += share;
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
