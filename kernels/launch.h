// Launch-geometry helpers shared by the .cu files.
#pragma once

#include <cstddef>

#include "kernels/check.h"  // SP_CHECK_LAUNCH

namespace sp::kernels {

constexpr int kThreadsPerBlock = 256;

// Blocks for a grid-stride loop over n elements: enough to fill the GPU, never above the
// grid limit (the loop covers the rest, so n may exceed 2^31).
inline unsigned int grid_for(size_t n, int threads = kThreadsPerBlock) {
    size_t blocks = (n + threads - 1) / threads;
    const size_t max_blocks = 65535u * 32u;
    if (blocks > max_blocks) blocks = max_blocks;
    return static_cast<unsigned int>(blocks > 0 ? blocks : 1);
}

}  // namespace sp::kernels

// Grid-stride loop over [0, n) with a 64-bit index.
#define SP_GRID_STRIDE_LOOP(i, n)                                                        \
    for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
         i += static_cast<size_t>(blockDim.x) * gridDim.x)
