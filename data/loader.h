// Mini-batches over a Dataset: a seeded shuffle per epoch, optional augmentation and
// normalisation, batches delivered on a chosen device, and a cursor that can be saved and
// restored so a resumed run continues with the same next batch.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "data/transforms.h"
#include "nn/device_memory.h"
#include "nn/tensor.h"

namespace sp {

struct LoaderOptions {
    int64_t batch_size = 128;
    bool shuffle = true;      // order of epoch e: philox_permutation(N, random_stream_key(seed, kPurposeShuffle, e))
    bool drop_last = false;   // drop the final partial batch of each epoch
    uint64_t seed = 0;        // keys the shuffle and the augmentation
    AugmentOptions augment;   // none by default; cifar_augment() for CIFAR training
    Normalization normalization;  // none by default
    Device device = Device::cpu;
};

struct Batch {
    Tensor images;  // (B, C, H, W) on the loader's device
    Tensor labels;  // (B) class indices stored as floats, on the loader's device
    int64_t epoch = 0, index = 0;  // which batch this is
};

// Position of the next batch: epoch and batch index within it.
struct LoaderCursor {
    int64_t epoch = 0;
    int64_t batch = 0;
    bool operator==(const LoaderCursor& o) const { return epoch == o.epoch && batch == o.batch; }
};

class BatchLoader {
public:
    // Keeps a reference to `data`, which must outlive the loader.
    BatchLoader(const Dataset& data, LoaderOptions options);

    int64_t batches_per_epoch() const;
    int64_t batch_size() const { return options_.batch_size; }
    const LoaderOptions& options() const { return options_; }

    // The batch at the cursor; the cursor then moves on (to batch 0 of the next epoch after
    // the last batch of an epoch).
    Batch next();

    LoaderCursor cursor() const { return cursor_; }
    void set_cursor(const LoaderCursor& cursor);

    // Dataset indices of epoch `epoch` in delivery order.
    std::vector<int64_t> epoch_order(int64_t epoch) const;

    // Key of the augmentation stream of one batch: (seed, kPurposeAugment, global batch number).
    uint64_t augment_key(const LoaderCursor& at) const;

private:
    const Dataset& data_;
    LoaderOptions options_;
    LoaderCursor cursor_;
    int64_t cached_epoch_ = -1;
    std::vector<int64_t> order_;  // epoch_order(cached_epoch_)
    Tensor mean_, std_;           // (C) normalisation on options_.device
    device_memory::UploadStaging staging_;  // pinned host memory the CUDA batches are gathered in
};

}  // namespace sp
