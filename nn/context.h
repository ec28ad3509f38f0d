// The execution context: the device, and on CUDA the stream, the cuDNN/cuBLAS/cuSOLVER handles,
// one growable workspace and the per-shape cache of convolution algorithms. Ops take it first.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cuda_types.h"
#include "nn/buffer.h"

namespace sp {

// Key of a convolution problem: (N,C,H,W), (K,C/g,R,S), stride, padding, groups.
using ConvKey = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                           int64_t, int64_t, int64_t, int64_t, int64_t>;

// Arithmetic of the CUDA convolutions and GEMMs. fp32: exact FP32 (FMA math, so results stay
// within the float32 bounds the tests derive). tf32: tensor cores with inputs rounded to TF32
// (10-bit mantissa) and FP32 accumulation. Neither uses FFT or Winograd algorithms. The CPU
// backend always computes in FP32.
enum class MathMode { fp32, tf32 };
MathMode math_mode_from_name(const std::string& name);  // "fp32" | "tf32"
const char* math_mode_name(MathMode mode);

// One cuDNN convolution algorithm with the math type it runs in (cuDNN enums stored as ints) and
// the workspace it needs under that math type (queried when the candidate is first tried).
struct ConvChoice {
    int algo = 0, math = 0;
    size_t bytes = 0;
    bool bytes_known = false;
};
// One direction of one convolution shape: the usable candidates in cuDNN's order, the current
// one, and whether it has run successfully (then it is the cached choice).
struct ConvDirection {
    std::vector<ConvChoice> candidates;
    size_t current = 0;
    bool confirmed = false;
    ConvChoice& choice() { return candidates.at(current); }
};
struct ConvAlgos {
    ConvDirection forward, backward_data, backward_filter;
};

class Context {
public:
    // `seed` keys every random stream of the run; `deterministic` fixes cuDNN algorithms to
    // deterministic ones and keeps atomics out of reductions.
    explicit Context(Device device, uint64_t seed = 0, bool deterministic = false);
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    Device device() const { return device_; }
    uint64_t seed() const { return seed_; }
    // The training step in progress (set by the trainer): per-step random streams, such as
    // dropout masks, are keyed by (seed, purpose, step), so a resumed run draws what an
    // uninterrupted one would have drawn without any generator state to save.
    uint64_t step() const { return step_; }
    void set_step(uint64_t step) { step_ = step; }
    bool deterministic() const { return deterministic_; }
    // Exact FP32 unless set otherwise (see MathMode); applies to the ops launched afterwards.
    MathMode math() const { return math_; }
    void set_math(MathMode mode);

    // CUDA only (an sp::Error on a CPU context). The stream is the process's one device stream
    // (nn/cuda/stream.h), shared by every context, so tensors move freely between contexts and
    // memory is released in order with the work that reads it.
    cudaStream_t stream() const;
    cudnnHandle_t cudnn() const;
    cublasHandle_t cublas() const;
    // Created on first use (only the batched SVD of the feature-map scoring needs it).
    cusolverDnHandle_t cusolver();

    // Scratch memory valid until the next call; grows, never shrinks (the old block is released
    // in stream order, after the work queued on it).
    void* workspace(size_t bytes);
    // Per math mode: the algorithm choice depends on it.
    std::map<ConvKey, ConvAlgos>& conv_algo_cache() { return conv_algos_[static_cast<int>(math_)]; }

    void synchronize() const;

private:
    void require_cuda(const char* what) const;

    Device device_;
    uint64_t seed_;
    uint64_t step_ = 0;
    bool deterministic_;
    cudaStream_t stream_ = nullptr;
    cudnnHandle_t cudnn_ = nullptr;
    cublasHandle_t cublas_ = nullptr;
    cusolverDnHandle_t cusolver_ = nullptr;
    Buffer workspace_;
    MathMode math_ = MathMode::fp32;
    std::map<ConvKey, ConvAlgos> conv_algos_[2];
};

// A 64-bit key for one random stream: (run seed, purpose, step). Philox counters inside the
// stream are element indices, so the CPU and CUDA backends draw the same numbers.
uint64_t random_stream_key(uint64_t seed, uint64_t purpose, uint64_t step);

}  // namespace sp
