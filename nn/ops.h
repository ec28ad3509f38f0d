// The functional ops every layer is built from. Each validates its arguments (shapes, devices)
// with a clear error and dispatches to the CPU reference or the CUDA implementation by
// ctx.device(); a missing CUDA implementation is a loud error, never a silent CPU fallback.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/context.h"
#include "nn/tensor.h"

namespace sp {

enum class GradMode { overwrite, accumulate };

struct ConvGeometry {
    int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, groups = 1;
};

enum class PoolKind { max, average };
struct PoolGeometry {
    PoolKind kind = PoolKind::max;
    int64_t window_h = 2, window_w = 2, stride_h = 2, stride_w = 2, pad_h = 0, pad_w = 0;
};

struct LrnParams {
    int64_t size = 5;
    float alpha = 1e-4f, beta = 0.75f, k = 2.0f;
};

struct SgdHyper {
    float lr = 0.1f, momentum = 0.0f, weight_decay = 0.0f;
    bool nesterov = false;
    bool first_step = true;  // PyTorch starts the velocity at the first gradient
};
struct AdamHyper {
    float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
};
struct AdadeltaHyper {
    float lr = 1.0f, rho = 0.9f, eps = 1e-6f, weight_decay = 0.0f;
};

// Output size of a convolution or pooling window along one axis.
inline int64_t window_output_size(int64_t in, int64_t window, int64_t stride, int64_t pad) {
    return (in + 2 * pad - window) / stride + 1;
}

#include "nn/op_list.inc"

}  // namespace sp
