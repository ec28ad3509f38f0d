// Public ops: argument validation with errors that name the op, the tensor and the expected
// shape, then dispatch to the backend of ctx.device() (nn/backends.h).
#include "nn/ops.h"

#include <algorithm>
#include <string>

#include "kernels/error.h"
#include "nn/backends.h"

namespace sp {

namespace {

void require_on(const Context& ctx, const char* op, const char* what, const Tensor& t) {
    SP_REQUIRE(t.defined() || t.numel() == 0, op << ": " << what << " is not allocated");
    SP_REQUIRE(t.device() == ctx.device(), op << ": " << what << " is on " << device_name(t.device())
                                               << " but the context is " << device_name(ctx.device()));
}

void require_shape(const char* op, const char* what, const Tensor& t, const Shape& expected) {
    SP_REQUIRE(t.shape() == expected,
               op << ": " << what << " has shape " << t.shape().str() << ", expected " << expected.str());
}

void require_rank(const char* op, const char* what, const Tensor& t, int rank) {
    SP_REQUIRE(t.rank() == rank, op << ": " << what << " has shape " << t.shape().str() << ", expected rank " << rank);
}

void require_same_numel(const char* op, const char* what, const Tensor& t, const Tensor& ref) {
    SP_REQUIRE(t.numel() == ref.numel(), op << ": " << what << " has shape " << t.shape().str()
                                            << ", expected " << ref.numel() << " elements like " << ref.shape().str());
}

Shape conv_output_shape(const char* op, const Tensor& x, const Tensor& w, const ConvGeometry& g) {
    require_rank(op, "input x (N, C, H, W)", x, 4);
    require_rank(op, "weight w (K, C/groups, R, S)", w, 4);
    SP_REQUIRE(g.stride_h > 0 && g.stride_w > 0 && g.pad_h >= 0 && g.pad_w >= 0 && g.groups > 0,
               op << ": stride must be positive, padding non-negative, groups positive");
    SP_REQUIRE(x.dim(1) % g.groups == 0 && w.dim(0) % g.groups == 0,
               op << ": channels " << x.dim(1) << " in / " << w.dim(0) << " out not divisible by groups " << g.groups);
    SP_REQUIRE(w.dim(1) * g.groups == x.dim(1),
               op << ": weight " << w.shape().str() << " expects " << w.dim(1) * g.groups
                  << " input channels, input " << x.shape().str() << " has " << x.dim(1));
    int64_t p = window_output_size(x.dim(2), w.dim(2), g.stride_h, g.pad_h);
    int64_t q = window_output_size(x.dim(3), w.dim(3), g.stride_w, g.pad_w);
    SP_REQUIRE(p > 0 && q > 0, op << ": kernel " << w.dim(2) << "x" << w.dim(3) << " does not fit input "
                                  << x.shape().str() << " with padding " << g.pad_h << "x" << g.pad_w);
    return Shape{x.dim(0), w.dim(0), p, q};
}

Shape pool_output_shape(const char* op, const Tensor& x, const PoolGeometry& g) {
    require_rank(op, "input x (N, C, H, W)", x, 4);
    SP_REQUIRE(g.window_h > 0 && g.window_w > 0 && g.stride_h > 0 && g.stride_w > 0,
               op << ": window and stride must be positive");
    SP_REQUIRE(g.pad_h >= 0 && 2 * g.pad_h <= g.window_h && g.pad_w >= 0 && 2 * g.pad_w <= g.window_w,
               op << ": padding must be between 0 and half the window");
    int64_t p = window_output_size(x.dim(2), g.window_h, g.stride_h, g.pad_h);
    int64_t q = window_output_size(x.dim(3), g.window_w, g.stride_w, g.pad_w);
    SP_REQUIRE(p > 0 && q > 0, op << ": window " << g.window_h << "x" << g.window_w << " does not fit input " << x.shape().str());
    return Shape{x.dim(0), x.dim(1), p, q};
}

Shape shortcut_output_spatial(const char* op, const Tensor& x, int64_t stride, int64_t channel_offset, const Tensor& y) {
    require_rank(op, "x (N, C, H, W)", x, 4);
    require_rank(op, "y (N, K, P, Q)", y, 4);
    SP_REQUIRE(stride > 0 && channel_offset >= 0, op << ": stride must be positive and channel_offset non-negative");
    SP_REQUIRE(channel_offset + x.dim(1) <= y.dim(1),
               op << ": " << x.dim(1) << " channels at offset " << channel_offset << " do not fit in " << y.dim(1));
    return Shape{x.dim(0), y.dim(1), (x.dim(2) + stride - 1) / stride, (x.dim(3) + stride - 1) / stride};
}

void require_bn(const char* op, const Context& ctx, const Tensor& x, std::initializer_list<const Tensor*> per_channel) {
    require_on(ctx, op, "x", x);
    require_rank(op, "x (N, C, H, W)", x, 4);
    for (const Tensor* t : per_channel) {
        require_on(ctx, op, "a per-channel tensor", *t);
        require_shape(op, "a per-channel tensor (C)", *t, Shape{x.dim(1)});
    }
}

void require_logits(const char* op, const Context& ctx, const Tensor& logits, const Tensor& labels) {
    require_on(ctx, op, "logits", logits);
    require_on(ctx, op, "labels", labels);
    require_rank(op, "logits (N, K)", logits, 2);
    require_shape(op, "labels (N)", labels, Shape{logits.dim(0)});
    SP_REQUIRE(logits.dim(0) > 0 && logits.dim(1) > 0, op << ": empty logits " << logits.shape().str());
}

}  // namespace

void conv2d_forward(Context& ctx, const Tensor& x, const Tensor& w, const Tensor* b, const ConvGeometry& geom, Tensor& y) {
    const char* op = "conv2d_forward";
    require_on(ctx, op, "x", x);
    require_on(ctx, op, "w", w);
    require_on(ctx, op, "y", y);
    require_shape(op, "output y", y, conv_output_shape(op, x, w, geom));
    if (b) {
        require_on(ctx, op, "bias", *b);
        require_shape(op, "bias", *b, Shape{w.dim(0)});
    }
    SP_DISPATCH(conv2d_forward, ctx, x, w, b, geom, y);
}

void conv2d_backward_data(Context& ctx, const Tensor& dy, const Tensor& w, const ConvGeometry& geom, Tensor& dx, GradMode mode) {
    const char* op = "conv2d_backward_data";
    require_on(ctx, op, "dy", dy);
    require_on(ctx, op, "w", w);
    require_on(ctx, op, "dx", dx);
    require_shape(op, "dy", dy, conv_output_shape(op, dx, w, geom));
    SP_DISPATCH(conv2d_backward_data, ctx, dy, w, geom, dx, mode);
}

void conv2d_backward_weight(Context& ctx, const Tensor& x, const Tensor& dy, const ConvGeometry& geom, Tensor& dw, GradMode mode) {
    const char* op = "conv2d_backward_weight";
    require_on(ctx, op, "x", x);
    require_on(ctx, op, "dy", dy);
    require_on(ctx, op, "dw", dw);
    require_shape(op, "dy", dy, conv_output_shape(op, x, dw, geom));
    SP_DISPATCH(conv2d_backward_weight, ctx, x, dy, geom, dw, mode);
}

void channel_sum(Context& ctx, const Tensor& dy, Tensor& db, GradMode mode) {
    const char* op = "channel_sum";
    require_on(ctx, op, "dy", dy);
    require_on(ctx, op, "db", db);
    SP_REQUIRE(dy.rank() >= 2, op << ": dy " << dy.shape().str() << " needs a channel axis (rank >= 2)");
    require_shape(op, "db", db, Shape{dy.dim(1)});
    SP_DISPATCH(channel_sum, ctx, dy, db, mode);
}

void linear_forward(Context& ctx, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) {
    const char* op = "linear_forward";
    require_on(ctx, op, "x", x);
    require_on(ctx, op, "w", w);
    require_on(ctx, op, "y", y);
    require_rank(op, "x (N, IN)", x, 2);
    require_rank(op, "w (OUT, IN)", w, 2);
    SP_REQUIRE(x.dim(1) == w.dim(1), op << ": x " << x.shape().str() << " has " << x.dim(1)
                                         << " features, weight " << w.shape().str() << " expects " << w.dim(1));
    require_shape(op, "y", y, Shape{x.dim(0), w.dim(0)});
    if (b) {
        require_on(ctx, op, "bias", *b);
        require_shape(op, "bias", *b, Shape{w.dim(0)});
    }
    SP_DISPATCH(linear_forward, ctx, x, w, b, y);
}

void linear_backward_data(Context& ctx, const Tensor& dy, const Tensor& w, Tensor& dx, GradMode mode) {
    const char* op = "linear_backward_data";
    require_on(ctx, op, "dy", dy);
    require_on(ctx, op, "w", w);
    require_on(ctx, op, "dx", dx);
    require_rank(op, "w (OUT, IN)", w, 2);
    require_rank(op, "dx (N, IN)", dx, 2);
    require_shape(op, "dx", dx, Shape{dx.dim(0), w.dim(1)});
    require_shape(op, "dy", dy, Shape{dx.dim(0), w.dim(0)});
    SP_DISPATCH(linear_backward_data, ctx, dy, w, dx, mode);
}

void linear_backward_weight(Context& ctx, const Tensor& x, const Tensor& dy, Tensor& dw, GradMode mode) {
    const char* op = "linear_backward_weight";
    require_on(ctx, op, "x", x);
    require_on(ctx, op, "dy", dy);
    require_on(ctx, op, "dw", dw);
    require_rank(op, "x (N, IN)", x, 2);
    require_rank(op, "dw (OUT, IN)", dw, 2);
    require_shape(op, "dw", dw, Shape{dw.dim(0), x.dim(1)});
    require_shape(op, "dy", dy, Shape{x.dim(0), dw.dim(0)});
    SP_DISPATCH(linear_backward_weight, ctx, x, dy, dw, mode);
}

void batchnorm_forward_train(Context& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                             Tensor& running_mean, Tensor& running_var, float momentum, float eps,
                             Tensor& y, Tensor& saved_mean, Tensor& saved_invstd) {
    const char* op = "batchnorm_forward_train";
    require_bn(op, ctx, x, {&gamma, &beta, &running_mean, &running_var, &saved_mean, &saved_invstd});
    require_on(ctx, op, "y", y);
    require_shape(op, "y", y, x.shape());
    SP_REQUIRE(x.numel() / x.dim(1) > 1, op << ": batch statistics need more than one value per channel, input "
                                            << x.shape().str());
    SP_REQUIRE(momentum >= 0.0f && momentum <= 1.0f && eps > 0.0f, op << ": momentum must be in [0, 1] and eps > 0");
    SP_DISPATCH(batchnorm_forward_train, ctx, x, gamma, beta, running_mean, running_var, momentum, eps, y,
                saved_mean, saved_invstd);
}

void batchnorm_forward_eval(Context& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            const Tensor& running_mean, const Tensor& running_var, float eps, Tensor& y) {
    const char* op = "batchnorm_forward_eval";
    require_bn(op, ctx, x, {&gamma, &beta, &running_mean, &running_var});
    require_on(ctx, op, "y", y);
    require_shape(op, "y", y, x.shape());
    SP_REQUIRE(eps > 0.0f, op << ": eps must be positive");
    SP_DISPATCH(batchnorm_forward_eval, ctx, x, gamma, beta, running_mean, running_var, eps, y);
}

void batchnorm_backward(Context& ctx, const Tensor& x, const Tensor& dy, const Tensor& gamma,
                        const Tensor& saved_mean, const Tensor& saved_invstd, Tensor& dx,
                        Tensor& dgamma, Tensor& dbeta, GradMode mode) {
    const char* op = "batchnorm_backward";
    require_bn(op, ctx, x, {&gamma, &saved_mean, &saved_invstd, &dgamma, &dbeta});
    require_on(ctx, op, "dy", dy);
    require_on(ctx, op, "dx", dx);
    require_shape(op, "dy", dy, x.shape());
    require_shape(op, "dx", dx, x.shape());
    SP_DISPATCH(batchnorm_backward, ctx, x, dy, gamma, saved_mean, saved_invstd, dx, dgamma, dbeta, mode);
}

void relu_forward(Context& ctx, const Tensor& x, Tensor& y) {
    require_on(ctx, "relu_forward", "x", x);
    require_on(ctx, "relu_forward", "y", y);
    require_same_numel("relu_forward", "y", y, x);
    SP_DISPATCH(relu_forward, ctx, x, y);
}

void relu_backward(Context& ctx, const Tensor& y, const Tensor& dy, Tensor& dx, GradMode mode) {
    const char* op = "relu_backward";
    require_on(ctx, op, "y", y);
    require_on(ctx, op, "dy", dy);
    require_on(ctx, op, "dx", dx);
    require_same_numel(op, "dy", dy, y);
    require_same_numel(op, "dx", dx, y);
    SP_DISPATCH(relu_backward, ctx, y, dy, dx, mode);
}

void add(Context& ctx, const Tensor& a, const Tensor& b, Tensor& y) {
    require_on(ctx, "add", "a", a);
    require_on(ctx, "add", "b", b);
    require_on(ctx, "add", "y", y);
    require_shape("add", "b", b, a.shape());
    require_same_numel("add", "y", y, a);
    SP_DISPATCH(add, ctx, a, b, y);
}

void axpy(Context& ctx, float alpha, const Tensor& x, Tensor& y) {
    require_on(ctx, "axpy", "x", x);
    require_on(ctx, "axpy", "y", y);
    require_same_numel("axpy", "y", y, x);
    SP_DISPATCH(axpy, ctx, alpha, x, y);
}

void multiply(Context& ctx, const Tensor& a, const Tensor& b, Tensor& y) {
    require_on(ctx, "multiply", "a", a);
    require_on(ctx, "multiply", "b", b);
    require_on(ctx, "multiply", "y", y);
    require_shape("multiply", "b", b, a.shape());
    require_same_numel("multiply", "y", y, a);
    SP_DISPATCH(multiply, ctx, a, b, y);
}

void scale_channels(Context& ctx, const Tensor& x, const Tensor& mask, Tensor& y) {
    const char* op = "scale_channels";
    require_on(ctx, op, "x", x);
    require_on(ctx, op, "mask", mask);
    require_on(ctx, op, "y", y);
    SP_REQUIRE(x.rank() >= 2, op << ": x " << x.shape().str() << " needs a channel axis (rank >= 2)");
    if (mask.rank() == 2) {
        // A population of gates: member p gates rows [p·B, (p+1)·B) of x.
        SP_REQUIRE(mask.dim(0) > 0 && mask.dim(1) == x.dim(1) && x.dim(0) % mask.dim(0) == 0,
                   op << ": mask " << mask.shape().str() << " must be (P, " << x.dim(1)
                      << ") with P dividing the batch of x " << x.shape().str());
    } else {
        require_shape(op, "mask", mask, Shape{x.dim(1)});
    }
    require_shape(op, "y", y, x.shape());
    SP_DISPATCH(scale_channels, ctx, x, mask, y);
}

void slice_columns(Context& ctx, const Tensor& src, int64_t begin, Tensor& dst) {
    const char* op = "slice_columns";
    require_on(ctx, op, "src", src);
    require_on(ctx, op, "dst", dst);
    require_rank(op, "src (R, D)", src, 2);
    require_rank(op, "dst (R, n)", dst, 2);
    SP_REQUIRE(dst.dim(0) == src.dim(0), op << ": dst " << dst.shape().str() << " and src " << src.shape().str()
                                            << " have different row counts");
    SP_REQUIRE(begin >= 0 && begin + dst.dim(1) <= src.dim(1),
               op << ": columns [" << begin << ", " << begin + dst.dim(1) << ") outside src " << src.shape().str());
    SP_REQUIRE(dst.data() != src.data() || src.numel() == 0, op << ": dst must not alias src");
    SP_DISPATCH(slice_columns, ctx, src, begin, dst);
}

void repeat_elements(Context& ctx, const Tensor& src, int64_t k, Tensor& dst) {
    const char* op = "repeat_elements";
    require_on(ctx, op, "src", src);
    require_on(ctx, op, "dst", dst);
    SP_REQUIRE(k >= 1, op << ": repeat count must be at least 1, got " << k);
    SP_REQUIRE(dst.numel() == src.numel() * k, op << ": dst " << dst.shape().str() << " must hold " << src.numel()
                                                   << " x " << k << " elements (src " << src.shape().str() << ")");
    SP_REQUIRE(dst.data() != src.data() || src.numel() == 0, op << ": dst must not alias src");
    SP_DISPATCH(repeat_elements, ctx, src, k, dst);
}

void swap_leading_axes(Context& ctx, const Tensor& src, int64_t a, int64_t b, Tensor& dst) {
    const char* op = "swap_leading_axes";
    require_on(ctx, op, "src", src);
    require_on(ctx, op, "dst", dst);
    SP_REQUIRE(a >= 1 && b >= 1 && src.numel() % (a * b) == 0,
               op << ": src " << src.shape().str() << " does not split into (" << a << ", " << b << ", ...)");
    SP_REQUIRE(dst.numel() == src.numel(), op << ": dst " << dst.shape().str() << " must hold the " << src.numel()
                                              << " elements of src " << src.shape().str());
    SP_REQUIRE(dst.data() != src.data() || src.numel() == 0, op << ": dst must not alias src");
    SP_DISPATCH(swap_leading_axes, ctx, src, a, b, dst);
}

void member_energies(Context& ctx, const Tensor& logits, const Tensor& labels, EnergyKind kind, Tensor& energies) {
    const char* op = "member_energies";
    require_logits(op, ctx, logits, labels);
    require_on(ctx, op, "energies", energies);
    require_rank(op, "energies (P)", energies, 1);
    const int64_t members = energies.dim(0);
    SP_REQUIRE(members > 0 && logits.dim(0) % members == 0,
               op << ": " << logits.dim(0) << " logit rows do not split into " << members << " members");
    SP_REQUIRE(kind != EnergyKind::margin || logits.dim(1) >= 2,
               op << ": the margin energy needs at least two classes, logits " << logits.shape().str());
    SP_DISPATCH(member_energies, ctx, logits, labels, kind, energies);
}

void pool2d_forward(Context& ctx, const PoolGeometry& geom, const Tensor& x, Tensor& y) {
    const char* op = "pool2d_forward";
    require_on(ctx, op, "x", x);
    require_on(ctx, op, "y", y);
    require_shape(op, "y", y, pool_output_shape(op, x, geom));
    SP_DISPATCH(pool2d_forward, ctx, geom, x, y);
}

void pool2d_backward(Context& ctx, const PoolGeometry& geom, const Tensor& x, const Tensor& y,
                     const Tensor& dy, Tensor& dx, GradMode mode) {
    const char* op = "pool2d_backward";
    require_on(ctx, op, "x", x);
    require_on(ctx, op, "y", y);
    require_on(ctx, op, "dy", dy);
    require_on(ctx, op, "dx", dx);
    Shape out = pool_output_shape(op, x, geom);
    require_shape(op, "y", y, out);
    require_shape(op, "dy", dy, out);
    require_shape(op, "dx", dx, x.shape());
    SP_DISPATCH(pool2d_backward, ctx, geom, x, y, dy, dx, mode);
}

void global_avg_pool_forward(Context& ctx, const Tensor& x, Tensor& y) {
    const char* op = "global_avg_pool_forward";
    require_on(ctx, op, "x", x);
    require_on(ctx, op, "y", y);
    require_rank(op, "x (N, C, H, W)", x, 4);
    require_shape(op, "y", y, Shape{x.dim(0), x.dim(1), 1, 1});
    SP_DISPATCH(global_avg_pool_forward, ctx, x, y);
}

void global_avg_pool_backward(Context& ctx, const Tensor& dy, Tensor& dx, GradMode mode) {
    const char* op = "global_avg_pool_backward";
    require_on(ctx, op, "dy", dy);
    require_on(ctx, op, "dx", dx);
    require_rank(op, "dx (N, C, H, W)", dx, 4);
    require_shape(op, "dy", dy, Shape{dx.dim(0), dx.dim(1), 1, 1});
    SP_DISPATCH(global_avg_pool_backward, ctx, dy, dx, mode);
}

void dropout_forward(Context& ctx, const Tensor& x, float p, uint64_t key, Tensor& y, Tensor& keep_scale) {
    const char* op = "dropout_forward";
    require_on(ctx, op, "x", x);
    require_on(ctx, op, "y", y);
    require_on(ctx, op, "keep_scale", keep_scale);
    require_same_numel(op, "y", y, x);
    require_same_numel(op, "keep_scale", keep_scale, x);
    SP_REQUIRE(p >= 0.0f && p < 1.0f, op << ": drop probability must be in [0, 1), got " << p);
    SP_DISPATCH(dropout_forward, ctx, x, p, key, y, keep_scale);
}

void concat_channels_forward(Context& ctx, const std::vector<const Tensor*>& xs, Tensor& y) {
    const char* op = "concat_channels_forward";
    require_on(ctx, op, "y", y);
    require_rank(op, "y (N, C, H, W)", y, 4);
    SP_REQUIRE(!xs.empty(), op << ": no inputs");
    int64_t channels = 0;
    for (const Tensor* x : xs) {
        require_on(ctx, op, "an input", *x);
        require_rank(op, "an input (N, C, H, W)", *x, 4);
        require_shape(op, "an input", *x, Shape{y.dim(0), x->dim(1), y.dim(2), y.dim(3)});
        channels += x->dim(1);
    }
    SP_REQUIRE(channels == y.dim(1), op << ": inputs have " << channels << " channels in all, y " << y.shape().str());
    SP_DISPATCH(concat_channels_forward, ctx, xs, y);
}

void concat_channels_backward(Context& ctx, const Tensor& dy, const std::vector<Tensor*>& dxs, GradMode mode) {
    const char* op = "concat_channels_backward";
    require_on(ctx, op, "dy", dy);
    require_rank(op, "dy (N, C, H, W)", dy, 4);
    SP_REQUIRE(!dxs.empty(), op << ": no input gradients");
    int64_t channels = 0;
    for (Tensor* dx : dxs) {
        require_on(ctx, op, "an input gradient", *dx);
        require_rank(op, "an input gradient (N, C, H, W)", *dx, 4);
        require_shape(op, "an input gradient", *dx, Shape{dy.dim(0), dx->dim(1), dy.dim(2), dy.dim(3)});
        channels += dx->dim(1);
    }
    SP_REQUIRE(channels == dy.dim(1), op << ": input gradients have " << channels << " channels in all, dy " << dy.shape().str());
    SP_DISPATCH(concat_channels_backward, ctx, dy, dxs, mode);
}

void lrn_forward(Context& ctx, const LrnParams& params, const Tensor& x, Tensor& y) {
    const char* op = "lrn_forward";
    require_on(ctx, op, "x", x);
    require_on(ctx, op, "y", y);
    require_rank(op, "x (N, C, H, W)", x, 4);
    require_shape(op, "y", y, x.shape());
    SP_REQUIRE(params.size >= 1 && params.size % 2 == 1 && params.size <= 15,
               op << ": size must be odd and in [1, 15], got " << params.size);
    SP_REQUIRE(params.k > 0.0f && params.alpha >= 0.0f, op << ": k must be positive and alpha non-negative");
    SP_DISPATCH(lrn_forward, ctx, params, x, y);
}

void lrn_backward(Context& ctx, const LrnParams& params, const Tensor& x, const Tensor& y,
                  const Tensor& dy, Tensor& dx, GradMode mode) {
    const char* op = "lrn_backward";
    require_on(ctx, op, "x", x);
    require_on(ctx, op, "y", y);
    require_on(ctx, op, "dy", dy);
    require_on(ctx, op, "dx", dx);
    require_rank(op, "x (N, C, H, W)", x, 4);
    for (const Tensor* t : {&y, &dy, static_cast<const Tensor*>(&dx)}) require_shape(op, "y, dy and dx", *t, x.shape());
    SP_REQUIRE(params.size >= 1 && params.size % 2 == 1 && params.size <= 15,
               op << ": size must be odd and in [1, 15], got " << params.size);
    SP_DISPATCH(lrn_backward, ctx, params, x, y, dy, dx, mode);
}

void shortcut_forward(Context& ctx, const Tensor& x, int64_t stride, int64_t channel_offset, Tensor& y) {
    const char* op = "shortcut_forward";
    require_on(ctx, op, "x", x);
    require_on(ctx, op, "y", y);
    require_shape(op, "y", y, shortcut_output_spatial(op, x, stride, channel_offset, y));
    SP_DISPATCH(shortcut_forward, ctx, x, stride, channel_offset, y);
}

void shortcut_backward(Context& ctx, const Tensor& dy, int64_t stride, int64_t channel_offset, Tensor& dx, GradMode mode) {
    const char* op = "shortcut_backward";
    require_on(ctx, op, "dy", dy);
    require_on(ctx, op, "dx", dx);
    require_shape(op, "dy", dy, shortcut_output_spatial(op, dx, stride, channel_offset, dy));
    SP_DISPATCH(shortcut_backward, ctx, dy, stride, channel_offset, dx, mode);
}

float softmax_cross_entropy(Context& ctx, const Tensor& logits, const Tensor& labels, float label_smoothing, Tensor* dlogits) {
    const char* op = "softmax_cross_entropy";
    require_logits(op, ctx, logits, labels);
    SP_REQUIRE(label_smoothing >= 0.0f && label_smoothing < 1.0f,
               op << ": label_smoothing must be in [0, 1), got " << label_smoothing);
    if (dlogits) {
        require_on(ctx, op, "dlogits", *dlogits);
        require_shape(op, "dlogits", *dlogits, logits.shape());
    }
    return SP_DISPATCH(softmax_cross_entropy, ctx, logits, labels, label_smoothing, dlogits);
}

int64_t topk_correct(Context& ctx, const Tensor& logits, const Tensor& labels, int k) {
    const char* op = "topk_correct";
    require_logits(op, ctx, logits, labels);
    SP_REQUIRE(k >= 1, op << ": k must be at least 1, got " << k);
    return SP_DISPATCH(topk_correct, ctx, logits, labels, k);
}

namespace {
void require_update(const char* op, const Context& ctx, const Tensor& params, std::initializer_list<const Tensor*> others) {
    require_on(ctx, op, "params", params);
    for (const Tensor* t : others) {
        require_on(ctx, op, "an optimizer tensor", *t);
        require_same_numel(op, "an optimizer tensor", *t, params);
    }
}
}  // namespace

void map_singular_values(Context& ctx, const Tensor& maps, bool relu, Tensor& sigma) {
    const char* op = "map_singular_values";
    require_on(ctx, op, "maps", maps);
    require_on(ctx, op, "sigma", sigma);
    require_rank(op, "maps (N, C, H, W)", maps, 4);
    require_shape(op, "sigma", sigma, Shape{maps.dim(0), maps.dim(1), std::min(maps.dim(2), maps.dim(3))});
    SP_DISPATCH(map_singular_values, ctx, maps, relu, sigma);
}

void sgd_update(Context& ctx, Tensor& params, const Tensor& grads, Tensor& velocity, const SgdHyper& hyper) {
    require_update("sgd_update", ctx, params, {&grads, &velocity});
    SP_REQUIRE(!hyper.nesterov || hyper.momentum > 0.0f, "sgd_update: Nesterov momentum needs momentum > 0");
    SP_DISPATCH(sgd_update, ctx, params, grads, velocity, hyper);
}

void adam_update(Context& ctx, Tensor& params, const Tensor& grads, Tensor& exp_avg, Tensor& exp_avg_sq,
                 const AdamHyper& hyper, int64_t step) {
    require_update("adam_update", ctx, params, {&grads, &exp_avg, &exp_avg_sq});
    SP_REQUIRE(step >= 1, "adam_update: step counts from 1, got " << step);
    SP_DISPATCH(adam_update, ctx, params, grads, exp_avg, exp_avg_sq, hyper, step);
}

void adadelta_update(Context& ctx, Tensor& params, const Tensor& grads, Tensor& square_avg, Tensor& acc_delta,
                     const AdadeltaHyper& hyper) {
    require_update("adadelta_update", ctx, params, {&grads, &square_avg, &acc_delta});
    SP_DISPATCH(adadelta_update, ctx, params, grads, square_avg, acc_delta, hyper);
}

}  // namespace sp
