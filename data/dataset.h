// An in-memory labelled image dataset: images as floats in [0, 1] on the host, integer labels.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nn/tensor.h"

namespace sp {

struct Dataset {
    Tensor images;                // (N, C, H, W) on the host, values in [0, 1]
    std::vector<int32_t> labels;  // (N) class indices in [0, num_classes)
    int64_t num_classes = 0;
    std::string name;

    int64_t size() const { return static_cast<int64_t>(labels.size()); }
    int64_t channels() const { return images.rank() == 4 ? images.dim(1) : 0; }
    int64_t height() const { return images.rank() == 4 ? images.dim(2) : 0; }
    int64_t width() const { return images.rank() == 4 ? images.dim(3) : 0; }
    int64_t image_numel() const { return channels() * height() * width(); }
};

// The images and labels at `indices` (in that order), as a new dataset called `name`.
Dataset subset(const Dataset& data, const std::vector<int64_t>& indices, const std::string& name);

// Checks the invariants above (host images of rank 4, one label per image, labels in range);
// throws sp::Error naming the dataset otherwise.
void validate(const Dataset& data);

}  // namespace sp
