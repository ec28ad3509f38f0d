// BatchNorm2d (batch statistics in training, running statistics in eval) and LocalResponseNorm.
#include "kernels/error.h"
#include "kernels/nvtx.h"
#include "nn/layers.h"

namespace sp {

// ----------------------------------------------------------------------------- BatchNorm2d

BatchNorm2d::BatchNorm2d(ParameterStore& store, std::string name, int64_t channels, float momentum, float eps)
    : store_(store), name_(std::move(name)), channels_(channels), momentum_(momentum), eps_(eps) {
    SP_REQUIRE(channels > 0, name_ << ": needs at least one channel, got " << channels);
    SP_REQUIRE(momentum >= 0.0f && momentum <= 1.0f && eps > 0.0f,
               name_ << ": momentum must be in [0, 1] and eps positive (got " << momentum << ", " << eps << ")");
    gamma_index_ = store_.add_parameter(name_ + ".weight", Shape{channels}, Init::ones);
    beta_index_ = store_.add_parameter(name_ + ".bias", Shape{channels}, Init::zeros);
    mean_index_ = store_.add_state(name_ + ".running_mean", Shape{channels}, Init::zeros);
    var_index_ = store_.add_state(name_ + ".running_var", Shape{channels}, Init::ones);
}

Tensor BatchNorm2d::gamma() const { return store_.value(gamma_index_); }
Tensor BatchNorm2d::beta() const { return store_.value(beta_index_); }
Tensor BatchNorm2d::running_mean() const { return store_.state(mean_index_); }
Tensor BatchNorm2d::running_var() const { return store_.state(var_index_); }

namespace {
// (N, C) inputs (after a linear layer) are normalised as (N, C, 1, 1): BatchNorm1d's semantics.
Shape as_nchw(const Shape& s) { return s.rank() == 2 ? Shape{s[0], s[1], 1, 1} : s; }
}  // namespace

Shape BatchNorm2d::output_shape(const Shape& in) const {
    SP_REQUIRE((in.rank() == 4 || in.rank() == 2) && in[1] == channels_,
               name_ << ": expected input (N, " << channels_ << ", H, W) or (N, " << channels_ << "), got " << in.str());
    return in;
}

Tensor& BatchNorm2d::forward(Context& ctx, const Tensor& x) {
    NvtxRange range(name_.c_str());
    ensure_shape(y_, output_shape(x.shape()), ctx.device());
    Tensor g = gamma(), b = beta(), rm = running_mean(), rv = running_var();
    const Shape shape4 = as_nchw(x.shape());
    Tensor x4 = x.reshaped(shape4), y4 = y_.reshaped(shape4);
    forward_was_training_ = training_;
    if (training_) {
        SP_REQUIRE(shape4[0] * shape4[2] * shape4[3] > 1,
                   name_ << ": training needs more than one value per channel, got input " << x.shape().str());
        ensure_shape(saved_mean_, Shape{channels_}, ctx.device());
        ensure_shape(saved_invstd_, Shape{channels_}, ctx.device());
        batchnorm_forward_train(ctx, x4, g, b, rm, rv, momentum_, eps_, y4, saved_mean_, saved_invstd_);
    } else {
        batchnorm_forward_eval(ctx, x4, g, b, rm, rv, eps_, y4);
    }
    masks_.check_batch(x.shape());
    masks_.gate_output(ctx, y_);
    x_ = x4.view();
    return y_;
}

Tensor& BatchNorm2d::backward(Context& ctx, const Tensor& dy) {
    NvtxRange range((name_ + ".backward").c_str());
    SP_REQUIRE(x_.defined(), name_ << ": backward before forward");
    SP_REQUIRE(dy.shape() == y_.shape(), name_ << ": gradient has shape " << dy.shape().str()
                                               << ", expected the output shape " << y_.shape().str());
    ensure_shape(dx_, y_.shape(), ctx.device());
    Tensor g = gamma(), dg = store_.grad(gamma_index_), db = store_.grad(beta_index_);
    const Tensor& gy = masks_.gate_gradient(ctx, dy);  // the gate came last in forward
    // x_ is the input viewed as (N, C, H, W); dy and dx are viewed alike.
    Tensor dy4 = gy.reshaped(x_.shape()), dx4 = dx_.reshaped(x_.shape());
    if (forward_was_training_) {
        batchnorm_backward(ctx, x_, dy4, g, saved_mean_, saved_invstd_, dx4, dg, db, GradMode::overwrite);
        return dx_;
    }
    // Eval: y = gamma (x - rm) / sqrt(rv + eps) + beta, an affine map per channel, so
    //   dx = gamma / sqrt(rv + eps) · dy     = the eval forward of dy with zero mean and beta,
    //   dgamma = Σ dy · xhat                 with xhat = the eval forward of x with unit gamma,
    //   dbeta = Σ dy.
    const Shape c{channels_};
    if (!zeros_.owns_memory()) {
        ensure_shape(zeros_, c, ctx.device());  // zero-filled on creation
        ensure_shape(ones_, c, ctx.device());
        ones_.fill(1.0f);
    }
    Tensor rm = running_mean(), rv = running_var();
    batchnorm_forward_eval(ctx, dy4, g, zeros_, zeros_, rv, eps_, dx4);
    ensure_shape(xhat_, x_.shape(), ctx.device());
    batchnorm_forward_eval(ctx, x_, ones_, zeros_, rm, rv, eps_, xhat_);
    multiply(ctx, xhat_, dy4, xhat_);
    channel_sum(ctx, xhat_, dg, GradMode::overwrite);
    channel_sum(ctx, dy4, db, GradMode::overwrite);
    return dx_;
}

// ------------------------------------------------------------------------ LocalResponseNorm

LocalResponseNorm::LocalResponseNorm(std::string name, int64_t size, float alpha, float beta, float k)
    : name_(std::move(name)) {
    SP_REQUIRE(size > 0 && size % 2 == 1, name_ << ": size must be odd and positive, got " << size);
    params_.size = size;
    params_.alpha = alpha;
    params_.beta = beta;
    params_.k = k;
}

Tensor& LocalResponseNorm::forward(Context& ctx, const Tensor& x) {
    NvtxRange range(name_.c_str());
    SP_REQUIRE(x.rank() == 4, name_ << ": expected input (N, C, H, W), got " << x.shape().str());
    ensure_shape(y_, x.shape(), ctx.device());
    lrn_forward(ctx, params_, x, y_);
    x_ = x.view();
    return y_;
}

Tensor& LocalResponseNorm::backward(Context& ctx, const Tensor& dy) {
    NvtxRange range((name_ + ".backward").c_str());
    SP_REQUIRE(x_.defined(), name_ << ": backward before forward");
    SP_REQUIRE(dy.shape() == x_.shape(), name_ << ": gradient has shape " << dy.shape().str()
                                               << ", expected the output shape " << x_.shape().str());
    ensure_shape(dx_, x_.shape(), ctx.device());
    lrn_backward(ctx, params_, x_, y_, dy, dx_, GradMode::overwrite);
    return dx_;
}

}  // namespace sp
