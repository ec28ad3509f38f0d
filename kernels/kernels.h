// Launchers of the project's own CUDA kernels, callable from host code compiled by g++.
// Each launcher asserts its preconditions, launches on the given stream and checks the launch.
// Sizes and indices are 64-bit (size_t) throughout.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

namespace sp::kernels {

void fill(float* data, size_t n, float value, cudaStream_t stream);

}  // namespace sp::kernels
