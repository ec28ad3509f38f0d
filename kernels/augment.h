// Batch augmentation shared by the CPU transform (data/transforms.cpp) and the CUDA kernel
// (kernels/augment.cu): random crop from a zero-padded image, horizontal flip, per-channel
// normalisation. The per-image draws and the per-pixel arithmetic are the inline functions
// below, compiled for both sides, so both produce the same batch bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda_types.h"

#include "kernels/philox.h"

namespace sp::kernels {

// Crop offsets (in [0, 2 pad] inside the padded image) and flip bit of one image.
struct AugmentDraw {
    int64_t offset_y, offset_x;
    bool flip;
};

// Image i of a batch uses uniforms 3i (row offset), 3i+1 (column offset) and 3i+2 (flip:
// when < 0.5) of stream `key`. With pad 0 the offsets are 0; with flip off no image flips.
SP_HOST_DEVICE inline AugmentDraw augment_draw(uint64_t key, uint64_t image, int64_t pad, bool flip) {
    const int64_t span = 2 * pad + 1;  // possible offsets per axis
    const float uy = stream_uniform(key, 3 * image);
    const float ux = stream_uniform(key, 3 * image + 1);
    const float uf = stream_uniform(key, 3 * image + 2);
    // u in (0, 1]: floor(u * span) lies in [0, span]; clamp the u == 1 case.
    int64_t oy = static_cast<int64_t>(uy * static_cast<float>(span));
    int64_t ox = static_cast<int64_t>(ux * static_cast<float>(span));
    if (oy > 2 * pad) oy = 2 * pad;
    if (ox > 2 * pad) ox = 2 * pad;
    return {oy, ox, flip && uf < 0.5f};
}

// Output pixel (c, y, x) of one image: y_out = (v - mean[c]) / std[c] where v is input pixel
// (y + oy - pad, x' + ox - pad), x' = W-1-x when flipped, and 0 outside the image (the zero
// padding happens before normalisation, as in torchvision's RandomCrop then Normalize).
// `image` points at the (C, H, W) input; mean/std are null for no normalisation.
SP_HOST_DEVICE inline float augment_pixel(const float* image, int64_t c, int64_t y, int64_t x, int64_t height,
                                          int64_t width, int64_t pad, const AugmentDraw& draw, const float* mean,
                                          const float* std) {
    const int64_t xs = (draw.flip ? width - 1 - x : x) + draw.offset_x - pad;
    const int64_t ys = y + draw.offset_y - pad;
    float v = 0.0f;
    if (ys >= 0 && ys < height && xs >= 0 && xs < width)
        v = image[(static_cast<size_t>(c) * static_cast<size_t>(height) + static_cast<size_t>(ys)) *
                      static_cast<size_t>(width) + static_cast<size_t>(xs)];
    if (mean != nullptr) v = (v - mean[c]) / std[c];
    return v;
}

// y (N, C, H, W) = augment(x (N, C, H, W)) on the GPU, one thread per output pixel; image i
// of the batch draws with augment_draw(key, i, pad, flip). mean/std are device arrays of C
// floats, or both null. x and y must not overlap.
void augment_batch(const float* x, float* y, int64_t n, int64_t c, int64_t h, int64_t w, int64_t pad, bool flip,
                   uint64_t key, const float* mean, const float* std, cudaStream_t stream);

}  // namespace sp::kernels
