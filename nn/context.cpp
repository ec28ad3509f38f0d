// Context: creation and teardown of the CUDA stream and library handles (none in a build without
// CUDA, where a CUDA context cannot be made).
#include "nn/context.h"

#if SP_WITH_CUDA
#include <cusolverDn.h>

#include "kernels/check.h"
#include "nn/cuda/stream.h"
#else
#include "kernels/error.h"
#endif
#include "nn/device_memory.h"

namespace sp {

Context::Context(Device device, uint64_t seed, bool deterministic)
    : device_(device), seed_(seed), deterministic_(deterministic) {
    if (device_ != Device::cuda) return;
    SP_REQUIRE(cuda_available(),
               "context: a CUDA context was asked for but no usable GPU was found: " << cuda_status().reason);
#if SP_WITH_CUDA
    stream_ = device_stream();
    SP_CHECK(cudnnCreate(&cudnn_));
    SP_CHECK(cudnnSetStream(cudnn_, stream_));
    SP_CHECK(cublasCreate(&cublas_));
    SP_CHECK(cublasSetStream(cublas_, stream_));
    SP_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));  // exact FP32 until set_math
#endif
}

Context::~Context() {
#if SP_WITH_CUDA
    // Destruction must not throw: statuses are ignored here on purpose. The handles may still
    // have work queued; the stream is shared and outlives every context.
    if (stream_) cudaStreamSynchronize(stream_);
    if (cusolver_) cusolverDnDestroy(cusolver_);
    if (cublas_) cublasDestroy(cublas_);
    if (cudnn_) cudnnDestroy(cudnn_);
#endif
}

MathMode math_mode_from_name(const std::string& name) {
    if (name == "fp32") return MathMode::fp32;
    if (name == "tf32") return MathMode::tf32;
    SP_REQUIRE(false, "math mode '" << name << "': expected fp32 or tf32");
    return MathMode::fp32;
}

const char* math_mode_name(MathMode mode) { return mode == MathMode::tf32 ? "tf32" : "fp32"; }

void Context::set_math(MathMode mode) {
    math_ = mode;
#if SP_WITH_CUDA
    if (device_ == Device::cuda)
        SP_CHECK(cublasSetMathMode(cublas_, mode == MathMode::tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
#endif
}

void Context::require_cuda(const char* what) const {
    SP_REQUIRE(device_ == Device::cuda, "context: " << what << " exists only on a CUDA context");
}

cudaStream_t Context::stream() const { require_cuda("the stream"); return stream_; }
cudnnHandle_t Context::cudnn() const { require_cuda("the cuDNN handle"); return cudnn_; }
cublasHandle_t Context::cublas() const { require_cuda("the cuBLAS handle"); return cublas_; }

cusolverDnHandle_t Context::cusolver() {
    require_cuda("the cuSOLVER handle");
#if SP_WITH_CUDA
    if (!cusolver_) {
        SP_CHECK(cusolverDnCreate(&cusolver_));
        SP_CHECK(cusolverDnSetStream(cusolver_, stream_));
    }
#endif
    return cusolver_;
}

void* Context::workspace(size_t bytes) {
    if (bytes > workspace_.bytes()) {
        workspace_ = Buffer();  // release first, so the pool can hand its memory to the new block
        workspace_ = Buffer(device_, bytes);
    }
    return workspace_.data();
}

void Context::synchronize() const {
    if (device_ == Device::cuda) device_memory::synchronize();
}

uint64_t random_stream_key(uint64_t seed, uint64_t purpose, uint64_t step) {
    // splitmix64 finaliser over a combination of the three: distinct inputs give unrelated keys.
    auto mix = [](uint64_t z) {
        z += 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    };
    return mix(mix(mix(seed) ^ purpose) ^ step);
}

}  // namespace sp
