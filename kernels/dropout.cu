// Dropout: element i uses output i % 4 of Philox4x32-10 block i / 4 of stream `key`
// (kernels/philox.h, cuRAND's Philox), exactly what sp::stream_uniform draws on the CPU.
#include "kernels/kernels.h"
#include "kernels/launch.h"
#include "kernels/philox.h"

namespace sp::kernels {

namespace {

// One thread per group of four elements: one Philox block serves all four.
__global__ void dropout_kernel(const float* x, float* y, float* keep_scale, size_t n, float p, float scale,
                               unsigned long long key) {
    const size_t groups = (n + 3) / 4;
    SP_GRID_STRIDE_LOOP(g, groups) {
        const PhiloxBlock r = philox_block(key, g);
#pragma unroll
        for (size_t j = 0; j < 4; ++j) {
            const size_t i = 4 * g + j;
            if (i >= n) break;
            const float s = philox_uniform(r.v[j]) >= p ? scale : 0.0f;
            keep_scale[i] = s;
            y[i] = x[i] * s;
        }
    }
}

}  // namespace

void dropout_forward(const float* x, float* y, float* keep_scale, size_t n, float p, float scale,
                     uint64_t key, cudaStream_t stream) {
    if (n == 0) return;
    SP_REQUIRE(p >= 0.0f && p < 1.0f, "dropout: p = " << p << " outside [0, 1)");
    SP_REQUIRE(x && y && keep_scale, "dropout: null pointer for " << n << " elements");
    const size_t groups = (n + 3) / 4;
    dropout_kernel<<<grid_for(groups), kThreadsPerBlock, 0, stream>>>(x, y, keep_scale, n, p, scale,
                                                                      static_cast<unsigned long long>(key));
    SP_CHECK_LAUNCH("dropout_kernel");
}

}  // namespace sp::kernels
