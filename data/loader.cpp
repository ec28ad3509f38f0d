// BatchLoader: gathers shuffled batches on the host, copies them to the device, augments there.
#include "data/loader.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "data/split.h"
#include "kernels/error.h"
#include "nn/context.h"

namespace sp {

BatchLoader::BatchLoader(const Dataset& data, LoaderOptions options) : data_(data), options_(std::move(options)) {
    validate(data_);
    SP_REQUIRE(options_.batch_size > 0, "loader over '" << data_.name << "': batch size must be positive, got "
                                                        << options_.batch_size);
    SP_REQUIRE(options_.augment.pad >= 0, "loader over '" << data_.name << "': negative padding "
                                                          << options_.augment.pad);
    SP_REQUIRE(batches_per_epoch() > 0, "loader over '" << data_.name << "': " << data_.size()
                                                        << " images give no batch of " << options_.batch_size
                                                        << (options_.drop_last ? " with drop_last" : ""));
    const Normalization& norm = options_.normalization;
    if (norm.enabled()) {
        const int64_t c = data_.channels();
        SP_REQUIRE(static_cast<int64_t>(norm.mean.size()) == c && static_cast<int64_t>(norm.std.size()) == c,
                   "loader over '" << data_.name << "': normalisation has " << norm.mean.size() << " means and "
                                   << norm.std.size() << " stds for " << c << " channels");
        for (float s : norm.std)
            SP_REQUIRE(s > 0.0f, "loader over '" << data_.name << "': normalisation std " << s << " is not positive");
        mean_ = Tensor::from_host(norm.mean, Shape{c}, options_.device);
        std_ = Tensor::from_host(norm.std, Shape{c}, options_.device);
    }
}

int64_t BatchLoader::batches_per_epoch() const {
    const int64_t n = data_.size(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
}

void BatchLoader::set_cursor(const LoaderCursor& cursor) {
    SP_REQUIRE(cursor.epoch >= 0 && cursor.batch >= 0 && cursor.batch < batches_per_epoch(),
               "loader over '" << data_.name << "': cursor (epoch " << cursor.epoch << ", batch " << cursor.batch
                               << ") is outside an epoch of " << batches_per_epoch() << " batches");
    cursor_ = cursor;
}

std::vector<int64_t> BatchLoader::epoch_order(int64_t epoch) const {
    if (!options_.shuffle) {
        std::vector<int64_t> order(static_cast<size_t>(data_.size()));
        std::iota(order.begin(), order.end(), int64_t{0});
        return order;
    }
    return philox_permutation(data_.size(),
                              random_stream_key(options_.seed, kPurposeShuffle, static_cast<uint64_t>(epoch)));
}

uint64_t BatchLoader::augment_key(const LoaderCursor& at) const {
    const uint64_t step = static_cast<uint64_t>(at.epoch) * static_cast<uint64_t>(batches_per_epoch()) +
                          static_cast<uint64_t>(at.batch);
    return random_stream_key(options_.seed, kPurposeAugment, step);
}

Batch BatchLoader::next() {
    if (cached_epoch_ != cursor_.epoch) {
        order_ = epoch_order(cursor_.epoch);
        cached_epoch_ = cursor_.epoch;
    }
    const int64_t begin = cursor_.batch * options_.batch_size;
    const int64_t count = std::min(options_.batch_size, data_.size() - begin);
    const int64_t c = data_.channels(), h = data_.height(), w = data_.width();
    const int64_t per_image = c * h * w;

    // Gather on the host: for a CUDA loader straight into pinned memory, from which the upload
    // is queued without a staging copy by the driver.
    const int64_t floats = count * per_image;
    float* gathered = nullptr;
    Tensor host_images;
    if (options_.device == Device::cpu) {
        host_images = Tensor(Shape{count, c, h, w}, Device::cpu);
        gathered = host_images.data();
    } else {
        gathered = static_cast<float*>(staging_.host(static_cast<size_t>(floats) * sizeof(float)));
    }
    std::vector<float> labels(static_cast<size_t>(count));
    for (int64_t k = 0; k < count; ++k) {
        const int64_t i = order_[static_cast<size_t>(begin + k)];
        std::memcpy(gathered + k * per_image, data_.images.data() + i * per_image,
                    static_cast<size_t>(per_image) * sizeof(float));
        labels[static_cast<size_t>(k)] = static_cast<float>(data_.labels[static_cast<size_t>(i)]);
    }

    Batch batch;
    batch.epoch = cursor_.epoch;
    batch.index = cursor_.batch;
    batch.labels = Tensor::from_host(labels, Shape{count}, options_.device);  // (B)
    Tensor staged = std::move(host_images);  // (B, C, H, W) on the loader's device
    if (options_.device != Device::cpu) {
        staged = Tensor(Shape{count, c, h, w}, options_.device);
        staging_.upload(staged.data(), static_cast<size_t>(floats) * sizeof(float));
    }
    if (options_.augment.enabled() || options_.normalization.enabled()) {
        batch.images = Tensor(staged.shape(), options_.device);
        const bool norm = options_.normalization.enabled();
        transform_batch(staged, batch.images, options_.augment, augment_key(cursor_), norm ? &mean_ : nullptr,
                        norm ? &std_ : nullptr);
    } else {
        batch.images = std::move(staged);
    }

    if (++cursor_.batch == batches_per_epoch()) {
        cursor_.batch = 0;
        ++cursor_.epoch;
    }
    return batch;
}

}  // namespace sp
