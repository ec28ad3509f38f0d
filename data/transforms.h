// Per-batch transforms: per-channel normalisation and the random crop (zero padding) + horizontal
// flip augmentation, on the CPU or (same numbers) with the CUDA kernel of kernels/augment.cu.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "nn/tensor.h"

namespace sp {

// Per-channel mean and standard deviation; empty vectors mean "no normalisation".
struct Normalization {
    std::vector<float> mean, std;
    bool enabled() const { return !mean.empty(); }
};

// Mean and (population) standard deviation of each channel over all images and pixels of
// `data`, accumulated in double. Use the training set's statistics for every split.
Normalization compute_normalization(const Dataset& data);

struct AugmentOptions {
    int64_t pad = 0;    // random crop of the original size from the image zero-padded by `pad`
    bool flip = false;  // horizontal flip with probability 1/2
    bool enabled() const { return pad > 0 || flip; }
};
// The standard CIFAR training augmentation.
inline AugmentOptions cifar_augment() { return {4, true}; }

// y (B, C, H, W) = normalise(augment(x (B, C, H, W))). Image i of the batch draws its crop
// offsets and flip from Philox stream `key` (kernels::augment_draw), so the CPU and CUDA paths
// give identical batches for the same key. x and y live on the same device and do not overlap;
// mean/std are (C) tensors on that device, or both null. CUDA work is queued on the device stream.
void transform_batch(const Tensor& x, Tensor& y, const AugmentOptions& augment, uint64_t key, const Tensor* mean,
                     const Tensor* std);

// The CPU implementation (called by transform_batch for host tensors).
void transform_batch_cpu(const Tensor& x, Tensor& y, const AugmentOptions& augment, uint64_t key,
                         const Tensor* mean, const Tensor* std);

}  // namespace sp
