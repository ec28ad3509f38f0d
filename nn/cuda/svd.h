// Batched singular values of feature maps on the GPU: cuSOLVER's batched Jacobi SVD.
#pragma once

#include <cstdint>

#include "nn/context.h"
#include "nn/tensor.h"

namespace sp::cuda {

// The largest map side cusolverDnSgesvdjBatched accepts.
constexpr int64_t kMaxBatchedSvdSide = 32;

// Every (H, W) map of maps (N, C, H, W), after ReLU when `relu`: sigma (N, C, min(H, W)) on the
// GPU. H, W <= kMaxBatchedSvdSide (an sp::Error otherwise). All maps go to cuSOLVER in one
// batched call, split into calls of at most `max_chunk` maps when given, else only when the
// scratch would pass ~256 MiB.
void map_singular_values(Context& ctx, const Tensor& maps, bool relu, Tensor& sigma, int64_t max_chunk = 0);

}  // namespace sp::cuda
