// Random inputs for the benchmark programs: time does not depend on the values, only on shapes.
#pragma once

#include <vector>

#include "kernels/philox.h"
#include "nn/tensor.h"

namespace sp::bench {

// Values uniform in [-scale, scale] from Philox stream `key`.
inline Tensor uniform_tensor(Shape shape, Device device, uint64_t key, float scale) {
    std::vector<float> v(static_cast<size_t>(shape.numel()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = scale * (2.0f * stream_uniform(key, i) - 1.0f);
    return Tensor::from_host(v, std::move(shape), device);
}

// Labels 0, 1, …, classes − 1, 0, 1, … (batch).
inline Tensor cyclic_labels(int64_t batch, int64_t classes, Device device) {
    std::vector<float> y(static_cast<size_t>(batch));
    for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<float>(static_cast<int64_t>(i) % classes);
    return Tensor::from_host(y, Shape{batch}, device);
}

}  // namespace sp::bench
