// CUDA batch augmentation: random crop with zero padding, horizontal flip, normalisation.
#include "kernels/augment.h"
#include "kernels/launch.h"

namespace sp::kernels {

namespace {
__global__ void augment_kernel(const float* __restrict__ x, float* __restrict__ y, size_t total, int64_t c,
                               int64_t h, int64_t w, int64_t pad, bool flip, uint64_t key,
                               const float* __restrict__ mean, const float* __restrict__ std) {
    const size_t plane = static_cast<size_t>(h) * static_cast<size_t>(w);
    const size_t per_image = static_cast<size_t>(c) * plane;
    SP_GRID_STRIDE_LOOP(i, total) {
        const size_t image = i / per_image;
        const size_t rest = i % per_image;
        const int64_t ch = static_cast<int64_t>(rest / plane);
        const int64_t row = static_cast<int64_t>((rest % plane) / static_cast<size_t>(w));
        const int64_t col = static_cast<int64_t>(rest % static_cast<size_t>(w));
        // Each thread re-derives its image's draw: three Philox blocks at most, cheaper than a
        // second pass or shared-memory coordination.
        const AugmentDraw draw = augment_draw(key, image, pad, flip);
        y[i] = augment_pixel(x + image * per_image, ch, row, col, h, w, pad, draw, mean, std);
    }
}
}  // namespace

void augment_batch(const float* x, float* y, int64_t n, int64_t c, int64_t h, int64_t w, int64_t pad, bool flip,
                   uint64_t key, const float* mean, const float* std, cudaStream_t stream) {
    SP_REQUIRE(n >= 0 && c > 0 && h > 0 && w > 0, "augment_batch: bad shape (" << n << ", " << c << ", " << h
                                                                               << ", " << w << ")");
    SP_REQUIRE(pad >= 0, "augment_batch: negative padding " << pad);
    SP_REQUIRE((mean == nullptr) == (std == nullptr), "augment_batch: mean and std must both be given or both null");
    const size_t total = static_cast<size_t>(n) * static_cast<size_t>(c) * static_cast<size_t>(h) *
                         static_cast<size_t>(w);
    if (total == 0) return;
    SP_REQUIRE(x != nullptr && y != nullptr && x != y, "augment_batch: null or aliasing input/output");
    augment_kernel<<<grid_for(total), kThreadsPerBlock, 0, stream>>>(x, y, total, c, h, w, pad, flip, key, mean, std);
    SP_CHECK_LAUNCH("augment_kernel");
}

}  // namespace sp::kernels
