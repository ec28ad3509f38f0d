// Batch normalisation on the CUDA backend with cuDNN's spatial batch norm: biased batch
// variance for normalising, unbiased for the running variance (cuDNN's convention, which is
// PyTorch's), saved 1/sqrt(var + eps) for the backward pass.
#include "nn/backends.h"
#include "nn/cuda/cudnn_util.h"

namespace sp::cuda {

namespace {

// x's descriptor and the derived (1, C, 1, 1) descriptor of the per-channel tensors.
struct BnDescs {
    TensorDesc x, channel;
    explicit BnDescs(const Tensor& t) {
        set_nchw(x, t);
        SP_CHECK(cudnnDeriveBNTensorDescriptor(channel, x, CUDNN_BATCHNORM_SPATIAL));
    }
};

void require_eps(float eps) {
    SP_REQUIRE(static_cast<double>(eps) >= CUDNN_BN_MIN_EPSILON,
               "batchnorm: eps " << eps << " is below cuDNN's minimum " << CUDNN_BN_MIN_EPSILON);
}

}  // namespace

void batchnorm_forward_train(Context& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                             Tensor& running_mean, Tensor& running_var, float momentum, float eps, Tensor& y,
                             Tensor& saved_mean, Tensor& saved_invstd) {
    require_eps(eps);
    SP_REQUIRE(x.numel() / x.dim(1) > 1, "batchnorm_forward_train: one value per channel in "
               << x.shape().str() << " has no unbiased variance");
    BnDescs d(x);
    const float one = 1.0f, zero = 0.0f;
    // running = (1 - factor) running + factor batch: factor is PyTorch's momentum.
    SP_CHECK(cudnnBatchNormalizationForwardTraining(
        ctx.cudnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, d.x, x.data(), d.x, y.data(), d.channel, gamma.data(),
        beta.data(), static_cast<double>(momentum), running_mean.data(), running_var.data(),
        static_cast<double>(eps), saved_mean.data(), saved_invstd.data()));
}

void batchnorm_forward_eval(Context& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            const Tensor& running_mean, const Tensor& running_var, float eps, Tensor& y) {
    require_eps(eps);
    BnDescs d(x);
    const float one = 1.0f, zero = 0.0f;
    SP_CHECK(cudnnBatchNormalizationForwardInference(
        ctx.cudnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, d.x, x.data(), d.x, y.data(), d.channel, gamma.data(),
        beta.data(), running_mean.data(), running_var.data(), static_cast<double>(eps)));
}

void batchnorm_backward(Context& ctx, const Tensor& x, const Tensor& dy, const Tensor& gamma,
                        const Tensor& saved_mean, const Tensor& saved_invstd, Tensor& dx, Tensor& dgamma,
                        Tensor& dbeta, GradMode mode) {
    BnDescs d(x);
    const float one = 1.0f, zero = 0.0f;
    const float param_beta = mode == GradMode::accumulate ? 1.0f : 0.0f;
    // With the saved mean and 1/sqrt(var + eps) supplied, cuDNN does not recompute the
    // statistics, so the epsilon argument (which the op list does not carry) only has to be valid.
    const double unused_eps = CUDNN_BN_MIN_EPSILON > 1e-5 ? CUDNN_BN_MIN_EPSILON : 1e-5;
    SP_CHECK(cudnnBatchNormalizationBackward(ctx.cudnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &param_beta,
                                             d.x, x.data(), d.x, dy.data(), d.x, dx.data(), d.channel, gamma.data(),
                                             dgamma.data(), dbeta.data(), unused_eps, saved_mean.data(),
                                             saved_invstd.data()));
}

}  // namespace sp::cuda
