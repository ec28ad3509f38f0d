// Optimizer updates over flat parameter buffers, PyTorch's rules with L2 weight decay added to
// the gradient (see nn/ops.h). One thread per parameter, grid-stride, 64-bit indices.
#include "kernels/kernels.h"
#include "kernels/launch.h"

namespace sp::kernels {

namespace {

__global__ void sgd_kernel(float* params, const float* grads, float* velocity, size_t n, float lr,
                           float momentum, float weight_decay, bool nesterov, bool first_step) {
    SP_GRID_STRIDE_LOOP(i, n) {
        float p = params[i];
        float g = grads[i] + weight_decay * p;
        if (momentum != 0.0f) {
            float v = first_step ? g : momentum * velocity[i] + g;
            velocity[i] = v;
            g = nesterov ? g + momentum * v : v;
        }
        params[i] = p - lr * g;
    }
}

__global__ void adam_kernel(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, size_t n,
                            float step_size, float bias2_sqrt, float beta1, float beta2, float eps,
                            float weight_decay) {
    SP_GRID_STRIDE_LOOP(i, n) {
        float p = params[i];
        float g = grads[i] + weight_decay * p;
        float m = beta1 * exp_avg[i] + (1.0f - beta1) * g;
        float v = beta2 * exp_avg_sq[i] + (1.0f - beta2) * g * g;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        float denom = sqrtf(v) / bias2_sqrt + eps;
        params[i] = p - step_size * (m / denom);
    }
}

__global__ void adadelta_kernel(float* params, const float* grads, float* square_avg, float* acc_delta,
                                size_t n, float lr, float rho, float eps, float weight_decay) {
    SP_GRID_STRIDE_LOOP(i, n) {
        float p = params[i];
        float g = grads[i] + weight_decay * p;
        float sq = rho * square_avg[i] + (1.0f - rho) * g * g;
        square_avg[i] = sq;
        float acc = acc_delta[i];
        float d = sqrtf(acc + eps) / sqrtf(sq + eps) * g;
        acc_delta[i] = rho * acc + (1.0f - rho) * d * d;
        params[i] = p - lr * d;
    }
}

}  // namespace

void sgd_update(float* params, const float* grads, float* velocity, size_t n, float lr, float momentum,
                float weight_decay, bool nesterov, bool first_step, cudaStream_t stream) {
    if (n == 0) return;
    SP_REQUIRE(params && grads, "sgd_update: null pointer");
    SP_REQUIRE(momentum == 0.0f || velocity, "sgd_update: momentum " << momentum << " needs a velocity buffer");
    sgd_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(params, grads, velocity, n, lr, momentum,
                                                             weight_decay, nesterov, first_step);
    SP_CHECK_LAUNCH("sgd_kernel");
}

void adam_update(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, size_t n,
                 float step_size, float bias2_sqrt, float beta1, float beta2, float eps,
                 float weight_decay, cudaStream_t stream) {
    if (n == 0) return;
    SP_REQUIRE(params && grads && exp_avg && exp_avg_sq, "adam_update: null pointer");
    SP_REQUIRE(bias2_sqrt > 0.0f, "adam_update: bias correction sqrt(1 - beta2^t) = " << bias2_sqrt);
    adam_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(params, grads, exp_avg, exp_avg_sq, n, step_size,
                                                              bias2_sqrt, beta1, beta2, eps, weight_decay);
    SP_CHECK_LAUNCH("adam_kernel");
}

void adadelta_update(float* params, const float* grads, float* square_avg, float* acc_delta, size_t n,
                     float lr, float rho, float eps, float weight_decay, cudaStream_t stream) {
    if (n == 0) return;
    SP_REQUIRE(params && grads && square_avg && acc_delta, "adadelta_update: null pointer");
    adadelta_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(params, grads, square_avg, acc_delta, n, lr,
                                                                  rho, eps, weight_decay);
    SP_CHECK_LAUNCH("adadelta_kernel");
}

}  // namespace sp::kernels
