// Normalisation statistics and the per-batch augmentation (CPU loop; dispatch to CUDA).
#include "data/transforms.h"

#include <algorithm>
#include <cmath>

#include "kernels/augment.h"
#include "kernels/error.h"
#include "nn/cuda/stream.h"

namespace sp {

Normalization compute_normalization(const Dataset& data) {
    SP_REQUIRE(data.images.rank() == 4 && data.size() > 0,
               "compute_normalization: '" << data.name << "' has no images of shape (N, C, H, W)");
    const int64_t n = data.size(), c = data.channels(), plane = data.height() * data.width();
    Normalization out;
    for (int64_t ch = 0; ch < c; ++ch) {
        double sum = 0.0, sum_sq = 0.0;
        for (int64_t i = 0; i < n; ++i) {
            const float* p = data.images.data() + (i * c + ch) * plane;
            for (int64_t k = 0; k < plane; ++k) {
                sum += p[k];
                sum_sq += static_cast<double>(p[k]) * p[k];
            }
        }
        const double count = static_cast<double>(n * plane);
        const double mean = sum / count;
        const double var = std::max(0.0, sum_sq / count - mean * mean);
        SP_REQUIRE(var > 0.0, "compute_normalization: channel " << ch << " of '" << data.name
                                                                << "' is constant; its std would be 0");
        out.mean.push_back(static_cast<float>(mean));
        out.std.push_back(static_cast<float>(std::sqrt(var)));
    }
    return out;
}

namespace {
void check_args(const Tensor& x, const Tensor& y, const AugmentOptions& augment, const Tensor* mean,
                const Tensor* std) {
    SP_REQUIRE(x.rank() == 4, "transform_batch: x must be (B, C, H, W), got " << x.shape().str());
    SP_REQUIRE(y.shape() == x.shape(), "transform_batch: y " << y.shape().str() << " must match x " << x.shape().str());
    SP_REQUIRE(y.device() == x.device(), "transform_batch: x on " << device_name(x.device()) << ", y on "
                                                                  << device_name(y.device()));
    SP_REQUIRE(x.numel() == 0 || x.data() != y.data(), "transform_batch: x and y must not overlap");
    SP_REQUIRE(augment.pad >= 0, "transform_batch: negative padding " << augment.pad);
    SP_REQUIRE((mean == nullptr) == (std == nullptr), "transform_batch: give both mean and std, or neither");
    if (mean) {
        for (const Tensor* t : {mean, std}) {
            SP_REQUIRE(t->rank() == 1 && t->dim(0) == x.dim(1), "transform_batch: mean/std must be (C) = ("
                                                                   << x.dim(1) << "), got " << t->shape().str());
            SP_REQUIRE(t->device() == x.device(), "transform_batch: mean/std on " << device_name(t->device())
                                                                                 << ", images on "
                                                                                 << device_name(x.device()));
        }
    }
}
}  // namespace

void transform_batch_cpu(const Tensor& x, Tensor& y, const AugmentOptions& augment, uint64_t key,
                         const Tensor* mean, const Tensor* std) {
    check_args(x, y, augment, mean, std);
    const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
    const int64_t per_image = c * h * w;
    const float* mean_p = mean ? mean->data() : nullptr;
    const float* std_p = std ? std->data() : nullptr;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const kernels::AugmentDraw draw = kernels::augment_draw(key, static_cast<uint64_t>(i), augment.pad, augment.flip);
        const float* src = x.data() + i * per_image;
        float* dst = y.data() + i * per_image;
        for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t row = 0; row < h; ++row)
                for (int64_t col = 0; col < w; ++col)
                    dst[(ch * h + row) * w + col] =
                        kernels::augment_pixel(src, ch, row, col, h, w, augment.pad, draw, mean_p, std_p);
    }
}

void transform_batch(const Tensor& x, Tensor& y, const AugmentOptions& augment, uint64_t key, const Tensor* mean,
                     const Tensor* std) {
    if (x.device() == Device::cpu) {
        transform_batch_cpu(x, y, augment, key, mean, std);
        return;
    }
    check_args(x, y, augment, mean, std);
    kernels::augment_batch(x.data(), y.data(), x.dim(0), x.dim(1), x.dim(2), x.dim(3), augment.pad, augment.flip,
                           key, mean ? mean->data() : nullptr, std ? std->data() : nullptr, device_stream());
}

}  // namespace sp
