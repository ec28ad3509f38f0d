// Elementwise, channel and random ops of the CUDA backend: thin wrappers over the launchers
// of kernels/kernels.h on the context's stream.
#include "kernels/error.h"
#include "kernels/kernels.h"
#include "nn/backends.h"

namespace sp::cuda {

namespace {
size_t count(const Tensor& t) { return static_cast<size_t>(t.numel()); }
bool accumulating(GradMode mode) { return mode == GradMode::accumulate; }
}  // namespace

void relu_forward(Context& ctx, const Tensor& x, Tensor& y) {
    kernels::relu_forward(x.data(), y.data(), count(x), ctx.stream());
}

void relu_backward(Context& ctx, const Tensor& y, const Tensor& dy, Tensor& dx, GradMode mode) {
    kernels::relu_backward(y.data(), dy.data(), dx.data(), count(y), accumulating(mode), ctx.stream());
}

void add(Context& ctx, const Tensor& a, const Tensor& b, Tensor& y) {
    kernels::add(a.data(), b.data(), y.data(), count(a), ctx.stream());
}

void axpy(Context& ctx, float alpha, const Tensor& x, Tensor& y) {
    kernels::axpy(alpha, x.data(), y.data(), count(x), ctx.stream());
}

void multiply(Context& ctx, const Tensor& a, const Tensor& b, Tensor& y) {
    kernels::multiply(a.data(), b.data(), y.data(), count(a), ctx.stream());
}

void scale_channels(Context& ctx, const Tensor& x, const Tensor& mask, Tensor& y) {
    // x (N, C, ...), mask (C) or (P, C)
    const size_t n = static_cast<size_t>(x.dim(0)), c = static_cast<size_t>(x.dim(1));
    const size_t inner = n * c == 0 ? 0 : count(x) / (n * c);
    const size_t members = mask.rank() == 2 ? static_cast<size_t>(mask.dim(0)) : 1;
    kernels::scale_channels(x.data(), mask.data(), y.data(), n, c, inner, members, ctx.stream());
}

void slice_columns(Context& ctx, const Tensor& src, int64_t begin, Tensor& dst) {
    // src (R, D), dst (R, n)
    kernels::slice_columns(src.data(), static_cast<size_t>(src.dim(0)), static_cast<size_t>(src.dim(1)),
                           static_cast<size_t>(begin), dst.data(), static_cast<size_t>(dst.dim(1)), ctx.stream());
}

void repeat_elements(Context& ctx, const Tensor& src, int64_t k, Tensor& dst) {
    kernels::repeat_elements(src.data(), count(src), static_cast<size_t>(k), dst.data(), ctx.stream());
}

void swap_leading_axes(Context& ctx, const Tensor& src, int64_t a, int64_t b, Tensor& dst) {
    kernels::swap_leading_axes(src.data(), static_cast<size_t>(a), static_cast<size_t>(b),
                               count(src) / static_cast<size_t>(a * b), dst.data(), ctx.stream());
}

void dropout_forward(Context& ctx, const Tensor& x, float p, uint64_t key, Tensor& y, Tensor& keep_scale) {
    // The same float expression as the CPU backend, so kept values match bit for bit.
    const float scale = 1.0f / (1.0f - p);
    kernels::dropout_forward(x.data(), y.data(), keep_scale.data(), count(x), p, scale, key, ctx.stream());
}

void concat_channels_forward(Context& ctx, const std::vector<const Tensor*>& xs, Tensor& y) {
    // y (N, ΣC_i, H, W)
    const size_t n = static_cast<size_t>(y.dim(0)), total = static_cast<size_t>(y.dim(1));
    const size_t inner = static_cast<size_t>(y.dim(2) * y.dim(3));
    size_t offset = 0;
    for (const Tensor* x : xs) {
        const size_t c = static_cast<size_t>(x->dim(1));
        kernels::copy_channels(x->data(), c, 0, y.data(), total, offset, n, c, inner, false, ctx.stream());
        offset += c;
    }
}

void concat_channels_backward(Context& ctx, const Tensor& dy, const std::vector<Tensor*>& dxs, GradMode mode) {
    const size_t n = static_cast<size_t>(dy.dim(0)), total = static_cast<size_t>(dy.dim(1));
    const size_t inner = static_cast<size_t>(dy.dim(2) * dy.dim(3));
    size_t offset = 0;
    for (Tensor* dx : dxs) {
        const size_t c = static_cast<size_t>(dx->dim(1));
        kernels::copy_channels(dy.data(), total, offset, dx->data(), c, 0, n, c, inner, accumulating(mode),
                               ctx.stream());
        offset += c;
    }
}

void shortcut_forward(Context& ctx, const Tensor& x, int64_t stride, int64_t channel_offset, Tensor& y) {
    kernels::shortcut_forward(x.data(), y.data(), static_cast<size_t>(x.dim(0)), static_cast<size_t>(x.dim(1)),
                              static_cast<size_t>(x.dim(2)), static_cast<size_t>(x.dim(3)),
                              static_cast<size_t>(y.dim(1)), static_cast<size_t>(stride),
                              static_cast<size_t>(channel_offset), ctx.stream());
}

void shortcut_backward(Context& ctx, const Tensor& dy, int64_t stride, int64_t channel_offset, Tensor& dx,
                       GradMode mode) {
    kernels::shortcut_backward(dy.data(), dx.data(), static_cast<size_t>(dx.dim(0)), static_cast<size_t>(dx.dim(1)),
                               static_cast<size_t>(dx.dim(2)), static_cast<size_t>(dx.dim(3)),
                               static_cast<size_t>(dy.dim(1)), static_cast<size_t>(stride),
                               static_cast<size_t>(channel_offset), accumulating(mode), ctx.stream());
}

}  // namespace sp::cuda
