// Parameter-free layers: ReLU, pooling, global average pooling, Flatten, Dropout.
#include "kernels/error.h"
#include "kernels/nvtx.h"
#include "nn/layers.h"

namespace sp {

namespace {

void require_grad_shape(const std::string& layer, const Tensor& dy, const Shape& expected) {
    SP_REQUIRE(dy.shape() == expected, layer << ": gradient has shape " << dy.shape().str()
                                             << ", expected the output shape " << expected.str());
}

}  // namespace

// ------------------------------------------------------------------------------------ ReLU

Tensor& ReLU::forward(Context& ctx, const Tensor& x) {
    NvtxRange range(name_.c_str());
    ensure_shape(y_, x.shape(), ctx.device());
    relu_forward(ctx, x, y_);
    return y_;
}

Tensor& ReLU::backward(Context& ctx, const Tensor& dy) {
    NvtxRange range((name_ + ".backward").c_str());
    SP_REQUIRE(y_.defined(), name_ << ": backward before forward");
    require_grad_shape(name_, dy, y_.shape());
    ensure_shape(dx_, y_.shape(), ctx.device());
    relu_backward(ctx, y_, dy, dx_, GradMode::overwrite);
    return dx_;
}

// ---------------------------------------------------------------------------------- Pool2d

Pool2d::Pool2d(std::string name, PoolKind kind, int64_t kernel, int64_t stride, int64_t padding)
    : name_(std::move(name)) {
    SP_REQUIRE(kernel > 0 && stride > 0 && padding >= 0 && 2 * padding <= kernel,
               name_ << ": invalid pooling (kernel " << kernel << ", stride " << stride << ", padding " << padding
                     << "; padding may be at most half the window)");
    geom_.kind = kind;
    geom_.window_h = geom_.window_w = kernel;
    geom_.stride_h = geom_.stride_w = stride;
    geom_.pad_h = geom_.pad_w = padding;
}

Shape Pool2d::output_shape(const Shape& in) const {
    SP_REQUIRE(in.rank() == 4, name_ << ": expected input (N, C, H, W), got " << in.str());
    const int64_t p = window_output_size(in[2], geom_.window_h, geom_.stride_h, geom_.pad_h);
    const int64_t q = window_output_size(in[3], geom_.window_w, geom_.stride_w, geom_.pad_w);
    SP_REQUIRE(p > 0 && q > 0, name_ << ": window " << geom_.window_h << " does not fit input " << in.str());
    return Shape{in[0], in[1], p, q};
}

int64_t Pool2d::macs(const Shape& input) const {
    Shape out = output_shape(input);
    return out[1] * out[2] * out[3] * geom_.window_h * geom_.window_w;
}

Tensor& Pool2d::forward(Context& ctx, const Tensor& x) {
    NvtxRange range(name_.c_str());
    ensure_shape(y_, output_shape(x.shape()), ctx.device());
    pool2d_forward(ctx, geom_, x, y_);
    x_ = x.view();
    return y_;
}

Tensor& Pool2d::backward(Context& ctx, const Tensor& dy) {
    NvtxRange range((name_ + ".backward").c_str());
    SP_REQUIRE(x_.defined(), name_ << ": backward before forward");
    require_grad_shape(name_, dy, y_.shape());
    ensure_shape(dx_, x_.shape(), ctx.device());
    pool2d_backward(ctx, geom_, x_, y_, dy, dx_, GradMode::overwrite);
    return dx_;
}

// --------------------------------------------------------------------------- GlobalAvgPool

Shape GlobalAvgPool::output_shape(const Shape& in) const {
    SP_REQUIRE(in.rank() == 4, name_ << ": expected input (N, C, H, W), got " << in.str());
    return Shape{in[0], in[1], 1, 1};
}

Tensor& GlobalAvgPool::forward(Context& ctx, const Tensor& x) {
    NvtxRange range(name_.c_str());
    ensure_shape(y_, output_shape(x.shape()), ctx.device());
    global_avg_pool_forward(ctx, x, y_);
    input_shape_ = x.shape();
    return y_;
}

Tensor& GlobalAvgPool::backward(Context& ctx, const Tensor& dy) {
    NvtxRange range((name_ + ".backward").c_str());
    SP_REQUIRE(input_shape_.rank() == 4, name_ << ": backward before forward");
    require_grad_shape(name_, dy, y_.shape());
    ensure_shape(dx_, input_shape_, ctx.device());
    global_avg_pool_backward(ctx, dy, dx_, GradMode::overwrite);
    return dx_;
}

// --------------------------------------------------------------------------------- Flatten

Shape Flatten::output_shape(const Shape& in) const {
    SP_REQUIRE(in.rank() >= 1, name_ << ": expected input (N, ...), got " << in.str());
    return Shape{in[0], in[0] == 0 ? 0 : in.numel() / in[0]};
}

Tensor& Flatten::forward(Context& ctx, const Tensor& x) {
    NvtxRange range(name_.c_str());
    input_shape_ = x.shape();
    y_ = x.reshaped(output_shape(x.shape()));  // a view: no copy
    return y_;
}

Tensor& Flatten::backward(Context& ctx, const Tensor& dy) {
    NvtxRange range((name_ + ".backward").c_str());
    SP_REQUIRE(input_shape_.rank() >= 1, name_ << ": backward before forward");
    require_grad_shape(name_, dy, y_.shape());
    dx_ = dy.reshaped(input_shape_);
    return dx_;
}

// --------------------------------------------------------------------------------- Dropout

Dropout::Dropout(std::string name, float p, uint64_t purpose) : name_(std::move(name)), p_(p), purpose_(purpose) {
    SP_REQUIRE(p >= 0.0f && p < 1.0f, name_ << ": drop probability must be in [0, 1), got " << p);
}

Tensor& Dropout::forward(Context& ctx, const Tensor& x) {
    NvtxRange range(name_.c_str());
    forward_was_identity_ = !training_ || p_ == 0.0f;
    if (forward_was_identity_) {
        y_ = x.view();
        return y_;
    }
    ensure_shape(y_, x.shape(), ctx.device());
    ensure_shape(keep_scale_, x.shape(), ctx.device());
    dropout_forward(ctx, x, p_, random_stream_key(ctx.seed(), purpose_, ctx.step()), y_, keep_scale_);
    return y_;
}

Tensor& Dropout::backward(Context& ctx, const Tensor& dy) {
    NvtxRange range((name_ + ".backward").c_str());
    SP_REQUIRE(y_.defined(), name_ << ": backward before forward");
    require_grad_shape(name_, dy, y_.shape());
    if (forward_was_identity_) {
        dx_ = dy.view();
        return dx_;
    }
    ensure_shape(dx_, dy.shape(), ctx.device());
    multiply(ctx, dy, keep_scale_, dx_);
    return dx_;
}

}  // namespace sp
