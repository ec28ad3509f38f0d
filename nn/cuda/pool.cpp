// Pooling and local response normalisation on the CUDA backend (cuDNN; max-pool backward is our
// own gather kernel), and global average pooling with our own fixed-order reduction.
#include "kernels/kernels.h"
#include "nn/backends.h"
#include "nn/cuda/cudnn_util.h"

namespace sp::cuda {

namespace {

void set_pooling(cudnnPoolingDescriptor_t desc, const PoolGeometry& g) {
    // Max pooling ignores padded positions; average pooling divides by the whole window
    // (PyTorch's count_include_pad=True: in floor mode a window never passes the padding).
    const cudnnPoolingMode_t mode =
        g.kind == PoolKind::max ? CUDNN_POOLING_MAX : CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING;
    SP_CHECK(cudnnSetPooling2dDescriptor(desc, mode, CUDNN_NOT_PROPAGATE_NAN, to_int(g.window_h, "window_h"),
                                         to_int(g.window_w, "window_w"), to_int(g.pad_h, "pad_h"),
                                         to_int(g.pad_w, "pad_w"), to_int(g.stride_h, "stride_h"),
                                         to_int(g.stride_w, "stride_w")));
}

// cuDNN's LRN: y = x / (k + (alpha / n) Σ x²)^beta over the window [c - (n-1)/2, c + n - 1 - (n-1)/2]
// (alpha is divided by the window inside cuDNN), which for odd n is PyTorch's LocalResponseNorm.
void set_lrn(cudnnLRNDescriptor_t desc, const LrnParams& p) {
    SP_REQUIRE(p.size % 2 == 1 && p.size >= CUDNN_LRN_MIN_N && p.size <= CUDNN_LRN_MAX_N,
               "lrn: size " << p.size << " must be odd and within cuDNN's [" << CUDNN_LRN_MIN_N << ", "
               << CUDNN_LRN_MAX_N << "]");
    SP_REQUIRE(p.k >= CUDNN_LRN_MIN_K, "lrn: k " << p.k << " is below cuDNN's minimum " << CUDNN_LRN_MIN_K);
    SP_REQUIRE(p.beta >= CUDNN_LRN_MIN_BETA, "lrn: beta " << p.beta << " is below cuDNN's minimum " << CUDNN_LRN_MIN_BETA);
    SP_CHECK(cudnnSetLRNDescriptor(desc, static_cast<unsigned>(p.size), p.alpha, p.beta, p.k));
}

}  // namespace

void pool2d_forward(Context& ctx, const PoolGeometry& geom, const Tensor& x, Tensor& y) {
    PoolDesc pool;
    set_pooling(pool, geom);
    TensorDesc xd, yd;
    set_nchw(xd, x);
    set_nchw(yd, y);
    const float one = 1.0f, zero = 0.0f;
    SP_CHECK(cudnnPoolingForward(ctx.cudnn(), pool, &one, xd, x.data(), &zero, yd, y.data()));
}

void pool2d_backward(Context& ctx, const PoolGeometry& geom, const Tensor& x, const Tensor& y, const Tensor& dy,
                     Tensor& dx, GradMode mode) {
    if (geom.kind == PoolKind::max) {
        // Our gather kernel instead of cuDNN's (which scatters with atomics where windows
        // overlap): deterministic, and routes ties to the first maximum like the CPU reference.
        kernels::max_pool_backward(x.data(), dy.data(), dx.data(), static_cast<size_t>(x.dim(0) * x.dim(1)),
                                   static_cast<size_t>(x.dim(2)), static_cast<size_t>(x.dim(3)),
                                   static_cast<size_t>(dy.dim(2)), static_cast<size_t>(dy.dim(3)), geom.window_h,
                                   geom.window_w, geom.stride_h, geom.stride_w, geom.pad_h, geom.pad_w,
                                   mode == GradMode::accumulate, ctx.stream());
        return;
    }
    PoolDesc pool;
    set_pooling(pool, geom);
    TensorDesc xd, yd;
    set_nchw(xd, x);
    set_nchw(yd, y);
    const Blend s = blend(mode == GradMode::accumulate);
    SP_CHECK(cudnnPoolingBackward(ctx.cudnn(), pool, &s.alpha, yd, y.data(), yd, dy.data(), xd, x.data(), &s.beta,
                                  xd, dx.data()));
}

void global_avg_pool_forward(Context& ctx, const Tensor& x, Tensor& y) {
    // x (N, C, H, W) -> y (N, C, 1, 1)
    kernels::plane_mean(x.data(), y.data(), static_cast<size_t>(x.dim(0) * x.dim(1)),
                        static_cast<size_t>(x.dim(2) * x.dim(3)), ctx.stream());
}

void global_avg_pool_backward(Context& ctx, const Tensor& dy, Tensor& dx, GradMode mode) {
    kernels::plane_mean_backward(dy.data(), dx.data(), static_cast<size_t>(dx.dim(0) * dx.dim(1)),
                                 static_cast<size_t>(dx.dim(2) * dx.dim(3)), mode == GradMode::accumulate,
                                 ctx.stream());
}

void lrn_forward(Context& ctx, const LrnParams& params, const Tensor& x, Tensor& y) {
    LrnDesc lrn;
    set_lrn(lrn, params);
    TensorDesc xd;
    set_nchw(xd, x);
    const float one = 1.0f, zero = 0.0f;
    SP_CHECK(cudnnLRNCrossChannelForward(ctx.cudnn(), lrn, CUDNN_LRN_CROSS_CHANNEL_DIM1, &one, xd, x.data(), &zero,
                                         xd, y.data()));
}

void lrn_backward(Context& ctx, const LrnParams& params, const Tensor& x, const Tensor& y, const Tensor& dy,
                  Tensor& dx, GradMode mode) {
    LrnDesc lrn;
    set_lrn(lrn, params);
    TensorDesc xd;
    set_nchw(xd, x);
    const Blend s = blend(mode == GradMode::accumulate);
    SP_CHECK(cudnnLRNCrossChannelBackward(ctx.cudnn(), lrn, CUDNN_LRN_CROSS_CHANNEL_DIM1, &s.alpha, xd, y.data(),
                                          xd, dy.data(), xd, x.data(), &s.beta, xd, dx.data()));
}

}  // namespace sp::cuda
