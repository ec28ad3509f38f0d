// RAII wrappers of cuDNN descriptors (destroyed even when an exception unwinds) and helpers
// that describe our NCHW float tensors to cuDNN. Host code of the CUDA backend only.
#pragma once

#include <cudnn.h>

#include <climits>
#include <cstdint>

#include "kernels/check.h"
#include "nn/tensor.h"

namespace sp::cuda {

// cuDNN's legacy API takes int dimensions.
inline int to_int(int64_t v, const char* what) {
    SP_REQUIRE(v >= 0 && v <= INT_MAX, what << " = " << v << " does not fit cuDNN's int dimensions");
    return static_cast<int>(v);
}

template <typename T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class Descriptor {
public:
    Descriptor() { SP_CHECK(Create(&handle_)); }
    ~Descriptor() { Destroy(handle_); }  // must not throw; status ignored on purpose
    Descriptor(const Descriptor&) = delete;
    Descriptor& operator=(const Descriptor&) = delete;
    operator T() const { return handle_; }

private:
    T handle_{};
};

using TensorDesc = Descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDesc = Descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvDesc = Descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                            cudnnDestroyConvolutionDescriptor>;
using PoolDesc = Descriptor<cudnnPoolingDescriptor_t, cudnnCreatePoolingDescriptor, cudnnDestroyPoolingDescriptor>;
using LrnDesc = Descriptor<cudnnLRNDescriptor_t, cudnnCreateLRNDescriptor, cudnnDestroyLRNDescriptor>;

// A 4-D NCHW float tensor descriptor of dims (n, c, h, w).
inline void set_nchw(cudnnTensorDescriptor_t desc, int64_t n, int64_t c, int64_t h, int64_t w) {
    SP_REQUIRE(n * c * h * w <= INT_MAX, "cuDNN tensor (" << n << ", " << c << ", " << h << ", " << w
               << ") has more than 2^31 - 1 elements");
    SP_CHECK(cudnnSetTensor4dDescriptor(desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, to_int(n, "N"), to_int(c, "C"),
                                        to_int(h, "H"), to_int(w, "W")));
}

// Describes a rank-4 tensor; rank 2 (N, C) is described as (N, C, 1, 1).
inline void set_nchw(cudnnTensorDescriptor_t desc, const Tensor& t) {
    SP_REQUIRE(t.rank() == 4 || t.rank() == 2, "cuDNN tensor: expected rank 4 (or 2), got " << t.shape().str());
    if (t.rank() == 4) set_nchw(desc, t.dim(0), t.dim(1), t.dim(2), t.dim(3));
    else set_nchw(desc, t.dim(0), t.dim(1), 1, 1);
}

// The scaling factors of cuDNN's out = alpha * result + beta * out for a gradient mode.
struct Blend {
    float alpha = 1.0f, beta = 0.0f;
};
inline Blend blend(bool accumulate) { return {1.0f, accumulate ? 1.0f : 0.0f}; }

}  // namespace sp::cuda
