// Batched singular values of feature maps on the GPU: cuSOLVER's batched Jacobi SVD.
#pragma once

#include <cstdint>

#include "nn/backends.h"
#include "nn/context.h"
#include "nn/tensor.h"

namespace sp::cuda {

// The largest map side cusolverDnSgesvdjBatched accepts.
constexpr int64_t kMaxBatchedSvdSide = 32;

// sp::cuda::map_singular_values of the op list (nn/op_list.inc), with the batching exposed: all
// maps go to cuSOLVER in one batched call, split into calls of at most `max_chunk` maps when it
// is positive, else only when the scratch would pass ~256 MiB. H, W <= kMaxBatchedSvdSide (an
// sp::Error otherwise).
void map_singular_values(Context& ctx, const Tensor& maps, bool relu, Tensor& sigma, int64_t max_chunk);

}  // namespace sp::cuda
