// Conv2d and Linear (weights from the parameter store), and the pruning masks they and
// BatchNorm2d apply on the fly (LayerMasks, see nn/layers.h).
#include "kernels/error.h"
#include "kernels/nvtx.h"
#include "nn/layers.h"

namespace sp {

// ------------------------------------------------------------------------------ LayerMasks

void LayerMasks::set_output(const Tensor* mask) {
    if (mask) {
        const bool ok = (mask->rank() == 1 && mask->dim(0) == channels_) ||
                        (mask->rank() == 2 && mask->dim(0) > 0 && mask->dim(1) == channels_);
        SP_REQUIRE(ok, layer_ << ": output mask has shape " << mask->shape().str() << ", expected (" << channels_
                              << ") or (P, " << channels_ << ")");
    }
    output_ = mask;
}

void LayerMasks::set_weight(const Tensor* mask, const Shape& weight_shape, const Tensor* masked) {
    weight_members_ = 1;
    if (mask && mask->shape() != weight_shape) {
        // A population: P masks stacked along the output axis, (P·K, ...).
        bool stacked = mask->rank() == weight_shape.rank() && mask->dim(0) % weight_shape[0] == 0;
        for (int i = 1; stacked && i < weight_shape.rank(); ++i) stacked = mask->dim(i) == weight_shape[i];
        SP_REQUIRE(stacked, layer_ << ": weight mask has shape " << mask->shape().str() << ", expected "
                                   << weight_shape.str() << " or P of them stacked along the first axis");
        weight_members_ = mask->dim(0) / weight_shape[0];
    }
    SP_REQUIRE(!masked || (mask && weight_members_ == 1 && masked->shape() == weight_shape),
               layer_ << ": masked weights " << masked->shape().str() << " need one weight mask of shape " << weight_shape.str());
    weight_ = mask;
    supplied_masked_ = masked;
}

void LayerMasks::check_batch(const Shape& input) const {
    SP_REQUIRE(!output_ || output_->rank() != 2 || input[0] % output_->dim(0) == 0,
               layer_ << ": a population of " << output_->dim(0) << " output masks needs a batch of P·B images, got "
                      << input.str());
}

const Tensor& LayerMasks::forward_weight(Context& ctx, const Tensor& w, const Shape& input) {
    check_batch(input);
    SP_REQUIRE(weight_members_ == 1, layer_ << ": a population of weight masks takes population_forward");
    weight_used_ = weight_ != nullptr;
    if (!weight_used_) return w;
    if (supplied_masked_) return *supplied_masked_;
    ensure_shape(masked_weight_, w.shape(), ctx.device());
    multiply(ctx, w, *weight_, masked_weight_);
    return masked_weight_;
}

void LayerMasks::gate_output(Context& ctx, Tensor& y) const {
    if (output_) scale_channels(ctx, y, *output_, y);
}

const Tensor& LayerMasks::gate_gradient(Context& ctx, const Tensor& dy) {
    if (!output_) return dy;
    ensure_shape(masked_dy_, dy.shape(), ctx.device());
    scale_channels(ctx, dy, *output_, masked_dy_);
    return masked_dy_;
}

void LayerMasks::mask_weight_gradient(Context& ctx, Tensor& dw) const {
    if (weight_used_) multiply(ctx, dw, *weight_, dw);
}

void LayerMasks::population_forward(Context& ctx, const Tensor& x, const Tensor& w, const Tensor* bias,
                                    ConvGeometry geometry, Tensor& y) {
    const int64_t p = weight_members_, k = w.dim(0);
    SP_REQUIRE(weight_ && p > 1, layer_ << ": population_forward needs a stacked population of weight masks");
    SP_REQUIRE(x.dim(0) % p == 0, layer_ << ": a population of " << p << " weight masks needs a batch of P·B images, got "
                                         << x.shape().str());
    check_batch(x.shape());
    const int64_t b = x.dim(0) / p;
    // Every member's masked weights: m (P, K·C/g·R·S) scaled column-wise by w.
    ensure_shape(masked_weight_, Shape{p * k, w.dim(1), w.dim(2), w.dim(3)}, ctx.device());
    Tensor stacked = masked_weight_.reshaped(Shape{p, w.numel()});
    scale_channels(ctx, weight_->reshaped(Shape{p, w.numel()}), w.reshaped(Shape{w.numel()}), stacked);
    weight_used_ = false;  // no backward follows a population forward
    // (P, B, C·H·W) -> (B, P·C, H, W): member p's channels form group p (of g each).
    ensure_shape(grouped_x_, Shape{b, p * x.dim(1), x.dim(2), x.dim(3)}, ctx.device());
    swap_leading_axes(ctx, x, p, b, grouped_x_);
    const Tensor* tiled = nullptr;
    if (bias) {  // (K) -> (K, P) -> (P, K)
        ensure_shape(repeated_bias_, Shape{k * p}, ctx.device());
        repeat_elements(ctx, *bias, p, repeated_bias_);
        ensure_shape(tiled_bias_, Shape{p * k}, ctx.device());
        swap_leading_axes(ctx, repeated_bias_, k, p, tiled_bias_);
        tiled = &tiled_bias_;
    }
    geometry.groups *= p;
    ensure_shape(grouped_y_, Shape{b, p * k, y.dim(2), y.dim(3)}, ctx.device());
    conv2d_forward(ctx, grouped_x_, masked_weight_, tiled, geometry, grouped_y_);
    swap_leading_axes(ctx, grouped_y_, b, p, y);  // (B, P, K·P'·Q') -> (P·B, K, P', Q')
}

// ---------------------------------------------------------------------------------- Conv2d

Conv2d::Conv2d(ParameterStore& store, std::string name, int64_t in_channels, int64_t out_channels,
               int64_t kernel, int64_t stride, int64_t padding, int64_t groups, bool bias)
    : store_(store), name_(std::move(name)), in_channels_(in_channels), out_channels_(out_channels),
      kernel_(kernel), stride_(stride), padding_(padding), groups_(groups) {
    SP_REQUIRE(in_channels > 0 && out_channels > 0 && kernel > 0 && stride > 0 && padding >= 0 && groups > 0,
               name_ << ": invalid conv geometry (in " << in_channels << ", out " << out_channels << ", kernel "
                     << kernel << ", stride " << stride << ", padding " << padding << ", groups " << groups << ")");
    SP_REQUIRE(in_channels % groups == 0 && out_channels % groups == 0,
               name_ << ": channels " << in_channels << " in / " << out_channels << " out not divisible by groups "
                     << groups);
    const int64_t fan_in = in_channels / groups * kernel * kernel;
    weight_index_ = store_.add_parameter(name_ + ".weight", Shape{out_channels, in_channels / groups, kernel, kernel},
                                         Init::kaiming_normal, fan_in);
    if (bias) bias_index_ = store_.add_parameter(name_ + ".bias", Shape{out_channels}, Init::fan_in_uniform, fan_in);
}

void Conv2d::set_weight_mask(const Tensor* mask, const Tensor* masked_weight) {
    masks_.set_weight(mask, Shape{out_channels_, in_channels_ / groups_, kernel_, kernel_}, masked_weight);
}

Tensor Conv2d::weight() const { return store_.value(weight_index_); }
Tensor Conv2d::weight_grad() const { return store_.grad(weight_index_); }

Tensor Conv2d::bias() const {
    SP_REQUIRE(has_bias(), name_ << ": has no bias");
    return store_.value(bias_index_);
}

Tensor Conv2d::bias_grad() const {
    SP_REQUIRE(has_bias(), name_ << ": has no bias");
    return store_.grad(bias_index_);
}

ConvGeometry Conv2d::geometry() const {
    ConvGeometry g;
    g.stride_h = g.stride_w = stride_;
    g.pad_h = g.pad_w = padding_;
    g.groups = groups_;
    return g;
}

Shape Conv2d::output_shape(const Shape& in) const {
    SP_REQUIRE(in.rank() == 4 && in[1] == in_channels_,
               name_ << ": expected input (N, " << in_channels_ << ", H, W), got " << in.str());
    const int64_t p = window_output_size(in[2], kernel_, stride_, padding_);
    const int64_t q = window_output_size(in[3], kernel_, stride_, padding_);
    SP_REQUIRE(p > 0 && q > 0, name_ << ": kernel " << kernel_ << " with padding " << padding_
                                     << " does not fit input " << in.str());
    return Shape{in[0], out_channels_, p, q};
}

int64_t Conv2d::macs(const Shape& input) const {
    Shape out = output_shape(input);
    return out_channels_ * (in_channels_ / groups_) * kernel_ * kernel_ * out[2] * out[3];
}

Tensor& Conv2d::forward(Context& ctx, const Tensor& x) {
    NvtxRange range(name_.c_str());
    ensure_shape(y_, output_shape(x.shape()), ctx.device());
    Tensor w = weight();
    if (masks_.weight_members() > 1) {  // evaluation of a population of weight masks
        Tensor b = has_bias() ? bias() : Tensor();
        masks_.population_forward(ctx, x, w, has_bias() ? &b : nullptr, geometry(), y_);
        masks_.gate_output(ctx, y_);
        x_ = Tensor();  // no backward
        return y_;
    }
    const Tensor& effective = masks_.forward_weight(ctx, w, x.shape());
    Tensor b = has_bias() ? bias() : Tensor();
    conv2d_forward(ctx, x, effective, has_bias() ? &b : nullptr, geometry(), y_);
    masks_.gate_output(ctx, y_);
    x_ = x.view();
    return y_;
}

Tensor& Conv2d::backward(Context& ctx, const Tensor& dy) {
    NvtxRange range((name_ + ".backward").c_str());
    SP_REQUIRE(masks_.weight_members() == 1, name_ << ": a population of weight masks is for evaluation only (no backward)");
    SP_REQUIRE(x_.defined(), name_ << ": backward before forward");
    SP_REQUIRE(dy.shape() == y_.shape(), name_ << ": gradient has shape " << dy.shape().str()
                                               << ", expected the output shape " << y_.shape().str());
    const Tensor& g = masks_.gate_gradient(ctx, dy);
    ensure_shape(dx_, x_.shape(), ctx.device());
    conv2d_backward_data(ctx, g, masks_.backward_weight(weight()), geometry(), dx_, GradMode::overwrite);
    Tensor dw = weight_grad();
    conv2d_backward_weight(ctx, x_, g, geometry(), dw, GradMode::overwrite);
    masks_.mask_weight_gradient(ctx, dw);
    if (has_bias()) {
        Tensor db = bias_grad();
        channel_sum(ctx, g, db, GradMode::overwrite);
    }
    return dx_;
}

// ---------------------------------------------------------------------------------- Linear

Linear::Linear(ParameterStore& store, std::string name, int64_t in_features, int64_t out_features, bool bias)
    : store_(store), name_(std::move(name)), in_features_(in_features), out_features_(out_features) {
    SP_REQUIRE(in_features > 0 && out_features > 0,
               name_ << ": invalid sizes (in " << in_features << ", out " << out_features << ")");
    weight_index_ = store_.add_parameter(name_ + ".weight", Shape{out_features, in_features}, Init::kaiming_normal,
                                         in_features);
    if (bias) bias_index_ = store_.add_parameter(name_ + ".bias", Shape{out_features}, Init::fan_in_uniform, in_features);
}

void Linear::set_weight_mask(const Tensor* mask, const Tensor* masked_weight) {
    masks_.set_weight(mask, Shape{out_features_, in_features_}, masked_weight);
}

Tensor Linear::weight() const { return store_.value(weight_index_); }
Tensor Linear::weight_grad() const { return store_.grad(weight_index_); }

Tensor Linear::bias() const {
    SP_REQUIRE(has_bias(), name_ << ": has no bias");
    return store_.value(bias_index_);
}

Tensor Linear::bias_grad() const {
    SP_REQUIRE(has_bias(), name_ << ": has no bias");
    return store_.grad(bias_index_);
}

Shape Linear::output_shape(const Shape& in) const {
    SP_REQUIRE(in.rank() == 2 && in[1] == in_features_,
               name_ << ": expected input (N, " << in_features_ << "), got " << in.str());
    return Shape{in[0], out_features_};
}

Tensor& Linear::forward(Context& ctx, const Tensor& x) {
    NvtxRange range(name_.c_str());
    ensure_shape(y_, output_shape(x.shape()), ctx.device());
    Tensor w = weight();
    if (masks_.weight_members() > 1) {  // evaluation of a population of weight masks, as 1x1 convolutions
        Tensor b = has_bias() ? bias() : Tensor();
        Tensor y4 = y_.reshaped(Shape{y_.dim(0), out_features_, 1, 1});
        masks_.population_forward(ctx, x.reshaped(Shape{x.dim(0), in_features_, 1, 1}),
                                  w.reshaped(Shape{out_features_, in_features_, 1, 1}), has_bias() ? &b : nullptr,
                                  ConvGeometry{}, y4);
        masks_.gate_output(ctx, y_);
        x_ = Tensor();  // no backward
        return y_;
    }
    const Tensor& effective = masks_.forward_weight(ctx, w, x.shape());
    Tensor b = has_bias() ? bias() : Tensor();
    linear_forward(ctx, x, effective, has_bias() ? &b : nullptr, y_);
    masks_.gate_output(ctx, y_);
    x_ = x.view();
    return y_;
}

Tensor& Linear::backward(Context& ctx, const Tensor& dy) {
    NvtxRange range((name_ + ".backward").c_str());
    SP_REQUIRE(masks_.weight_members() == 1, name_ << ": a population of weight masks is for evaluation only (no backward)");
    SP_REQUIRE(x_.defined(), name_ << ": backward before forward");
    SP_REQUIRE(dy.shape() == y_.shape(), name_ << ": gradient has shape " << dy.shape().str()
                                               << ", expected the output shape " << y_.shape().str());
    const Tensor& g = masks_.gate_gradient(ctx, dy);
    ensure_shape(dx_, x_.shape(), ctx.device());
    linear_backward_data(ctx, g, masks_.backward_weight(weight()), dx_, GradMode::overwrite);
    Tensor dw = weight_grad();
    linear_backward_weight(ctx, x_, g, dw, GradMode::overwrite);
    masks_.mask_weight_gradient(ctx, dw);
    if (has_bias()) {
        Tensor db = bias_grad();
        channel_sum(ctx, g, db, GradMode::overwrite);
    }
    return dx_;
}

}  // namespace sp
