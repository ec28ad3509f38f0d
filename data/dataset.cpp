// Dataset helpers: subsets and invariant checks.
#include "data/dataset.h"

#include <algorithm>
#include <cstring>

#include "kernels/error.h"

namespace sp {

void validate(const Dataset& data) {
    SP_REQUIRE(data.images.rank() == 4, "dataset '" << data.name << "': images must be (N, C, H, W), found shape "
                                                    << data.images.shape().str());
    SP_REQUIRE(data.images.device() == Device::cpu, "dataset '" << data.name << "': images must live on the host");
    SP_REQUIRE(data.images.dim(0) == data.size(), "dataset '" << data.name << "': " << data.images.dim(0)
                                                             << " images but " << data.size() << " labels");
    SP_REQUIRE(data.num_classes > 0, "dataset '" << data.name << "': num_classes must be positive, found "
                                                 << data.num_classes);
    for (size_t i = 0; i < data.labels.size(); ++i)
        SP_REQUIRE(data.labels[i] >= 0 && data.labels[i] < data.num_classes,
                   "dataset '" << data.name << "': label " << data.labels[i] << " of image " << i
                               << " is outside [0, " << data.num_classes << ")");
}

Dataset subset(const Dataset& data, const std::vector<int64_t>& indices, const std::string& name) {
    SP_REQUIRE(data.images.rank() == 4 && data.images.device() == Device::cpu,
               "subset of '" << data.name << "': needs host images of shape (N, C, H, W)");
    const int64_t n = static_cast<int64_t>(indices.size());
    const int64_t per_image = data.image_numel();
    Dataset out;
    out.images = Tensor(Shape{n, data.channels(), data.height(), data.width()}, Device::cpu);
    out.labels.resize(indices.size());
    out.num_classes = data.num_classes;
    out.name = name;
    for (int64_t k = 0; k < n; ++k) {
        const int64_t i = indices[static_cast<size_t>(k)];
        SP_REQUIRE(i >= 0 && i < data.size(),
                   "subset of '" << data.name << "': index " << i << " is outside [0, " << data.size() << ")");
        std::memcpy(out.images.data() + k * per_image, data.images.data() + i * per_image,
                    static_cast<size_t>(per_image) * sizeof(float));
        out.labels[static_cast<size_t>(k)] = data.labels[static_cast<size_t>(i)];
    }
    return out;
}

}  // namespace sp
