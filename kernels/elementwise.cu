// Elementwise kernels over flat float arrays.
#include "kernels/kernels.h"
#include "kernels/launch.h"

namespace sp::kernels {

namespace {
__global__ void fill_kernel(float* data, size_t n, float value) {
    SP_GRID_STRIDE_LOOP(i, n) data[i] = value;
}
}  // namespace

void fill(float* data, size_t n, float value, cudaStream_t stream) {
    if (n == 0) return;
    SP_REQUIRE(data != nullptr, "fill: null data for " << n << " elements");
    fill_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(data, n, value);
    SP_CHECK_LAUNCH("fill_kernel");
}

}  // namespace sp::kernels
