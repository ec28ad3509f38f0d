// TEMPORARY: ops of the cpu backend not written yet; each throws. Remove a definition when
// its real implementation lands; delete this file when empty.
#include "kernels/check.h"
#include "nn/backends.h"

namespace sp::cpu {

void conv2d_forward(Context& ctx, const Tensor& x, const Tensor& w, const Tensor* b, const ConvGeometry& geom, Tensor& y) {
    SP_REQUIRE(false, "cpu backend: conv2d_forward is not implemented yet");
}

void conv2d_backward_data(Context& ctx, const Tensor& dy, const Tensor& w, const ConvGeometry& geom, Tensor& dx, GradMode mode) {
    SP_REQUIRE(false, "cpu backend: conv2d_backward_data is not implemented yet");
}

void conv2d_backward_weight(Context& ctx, const Tensor& x, const Tensor& dy, const ConvGeometry& geom, Tensor& dw, GradMode mode) {
    SP_REQUIRE(false, "cpu backend: conv2d_backward_weight is not implemented yet");
}

void channel_sum(Context& ctx, const Tensor& dy, Tensor& db, GradMode mode) {
    SP_REQUIRE(false, "cpu backend: channel_sum is not implemented yet");
}

void linear_forward(Context& ctx, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) {
    SP_REQUIRE(false, "cpu backend: linear_forward is not implemented yet");
}

void linear_backward_data(Context& ctx, const Tensor& dy, const Tensor& w, Tensor& dx, GradMode mode) {
    SP_REQUIRE(false, "cpu backend: linear_backward_data is not implemented yet");
}

void linear_backward_weight(Context& ctx, const Tensor& x, const Tensor& dy, Tensor& dw, GradMode mode) {
    SP_REQUIRE(false, "cpu backend: linear_backward_weight is not implemented yet");
}

void batchnorm_forward_train(Context& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var, float momentum, float eps, Tensor& y, Tensor& saved_mean, Tensor& saved_invstd) {
    SP_REQUIRE(false, "cpu backend: batchnorm_forward_train is not implemented yet");
}

void batchnorm_forward_eval(Context& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean, const Tensor& running_var, float eps, Tensor& y) {
    SP_REQUIRE(false, "cpu backend: batchnorm_forward_eval is not implemented yet");
}

void batchnorm_backward(Context& ctx, const Tensor& x, const Tensor& dy, const Tensor& gamma, const Tensor& saved_mean, const Tensor& saved_invstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta, GradMode mode) {
    SP_REQUIRE(false, "cpu backend: batchnorm_backward is not implemented yet");
}

void relu_forward(Context& ctx, const Tensor& x, Tensor& y) {
    SP_REQUIRE(false, "cpu backend: relu_forward is not implemented yet");
}

void relu_backward(Context& ctx, const Tensor& y, const Tensor& dy, Tensor& dx, GradMode mode) {
    SP_REQUIRE(false, "cpu backend: relu_backward is not implemented yet");
}

void add(Context& ctx, const Tensor& a, const Tensor& b, Tensor& y) {
    SP_REQUIRE(false, "cpu backend: add is not implemented yet");
}

void axpy(Context& ctx, float alpha, const Tensor& x, Tensor& y) {
    SP_REQUIRE(false, "cpu backend: axpy is not implemented yet");
}

void multiply(Context& ctx, const Tensor& a, const Tensor& b, Tensor& y) {
    SP_REQUIRE(false, "cpu backend: multiply is not implemented yet");
}

void scale_channels(Context& ctx, const Tensor& x, const Tensor& mask, Tensor& y) {
    SP_REQUIRE(false, "cpu backend: scale_channels is not implemented yet");
}

void pool2d_forward(Context& ctx, const PoolGeometry& geom, const Tensor& x, Tensor& y) {
    SP_REQUIRE(false, "cpu backend: pool2d_forward is not implemented yet");
}

void pool2d_backward(Context& ctx, const PoolGeometry& geom, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx, GradMode mode) {
    SP_REQUIRE(false, "cpu backend: pool2d_backward is not implemented yet");
}

void global_avg_pool_forward(Context& ctx, const Tensor& x, Tensor& y) {
    SP_REQUIRE(false, "cpu backend: global_avg_pool_forward is not implemented yet");
}

void global_avg_pool_backward(Context& ctx, const Tensor& dy, Tensor& dx, GradMode mode) {
    SP_REQUIRE(false, "cpu backend: global_avg_pool_backward is not implemented yet");
}

void dropout_forward(Context& ctx, const Tensor& x, float p, uint64_t key, Tensor& y, Tensor& keep_scale) {
    SP_REQUIRE(false, "cpu backend: dropout_forward is not implemented yet");
}

void concat_channels_forward(Context& ctx, const std::vector<const Tensor*>& xs, Tensor& y) {
    SP_REQUIRE(false, "cpu backend: concat_channels_forward is not implemented yet");
}

void concat_channels_backward(Context& ctx, const Tensor& dy, const std::vector<Tensor*>& dxs, GradMode mode) {
    SP_REQUIRE(false, "cpu backend: concat_channels_backward is not implemented yet");
}

void lrn_forward(Context& ctx, const LrnParams& params, const Tensor& x, Tensor& y) {
    SP_REQUIRE(false, "cpu backend: lrn_forward is not implemented yet");
}

void lrn_backward(Context& ctx, const LrnParams& params, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx, GradMode mode) {
    SP_REQUIRE(false, "cpu backend: lrn_backward is not implemented yet");
}

float softmax_cross_entropy(Context& ctx, const Tensor& logits, const Tensor& labels, float label_smoothing, Tensor* dlogits) {
    SP_REQUIRE(false, "cpu backend: softmax_cross_entropy is not implemented yet");
}

int64_t topk_correct(Context& ctx, const Tensor& logits, const Tensor& labels, int k) {
    SP_REQUIRE(false, "cpu backend: topk_correct is not implemented yet");
}

void sgd_update(Context& ctx, Tensor& params, const Tensor& grads, Tensor& velocity, const SgdHyper& hyper) {
    SP_REQUIRE(false, "cpu backend: sgd_update is not implemented yet");
}

void adam_update(Context& ctx, Tensor& params, const Tensor& grads, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamHyper& hyper, int64_t step) {
    SP_REQUIRE(false, "cpu backend: adam_update is not implemented yet");
}

void adadelta_update(Context& ctx, Tensor& params, const Tensor& grads, Tensor& square_avg, Tensor& acc_delta, const AdadeltaHyper& hyper) {
    SP_REQUIRE(false, "cpu backend: adadelta_update is not implemented yet");
}

}  // namespace sp::cpu
