// Philox-keyed permutation and the validation split.
#include "data/split.h"

#include <algorithm>
#include <numeric>

#include "kernels/error.h"
#include "kernels/philox.h"
#include "nn/context.h"

namespace sp {

std::vector<int64_t> philox_permutation(int64_t n, uint64_t key) {
    SP_REQUIRE(n >= 0, "philox_permutation: negative length " << n);
    std::vector<int64_t> perm(static_cast<size_t>(n));
    std::iota(perm.begin(), perm.end(), int64_t{0});
    for (int64_t i = n - 1, t = 0; i > 0; --i, ++t) {
        // u in (0, 1]; j uniform in [0, i] (clamped: u == 1 would give i + 1).
        const double u = stream_uniform(key, static_cast<uint64_t>(t));
        const int64_t j = std::min<int64_t>(i, static_cast<int64_t>(u * static_cast<double>(i + 1)));
        std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
    }
    return perm;
}

TrainValidationSplit split_validation(const Dataset& full, int64_t validation_size, uint64_t seed) {
    SP_REQUIRE(validation_size >= 0 && validation_size < full.size(),
               "split of '" << full.name << "': validation size " << validation_size << " must be in [0, "
                            << full.size() << ") so that training images remain");
    std::vector<int64_t> perm = philox_permutation(full.size(), random_stream_key(seed, kPurposeValidationSplit, 0));
    std::vector<int64_t> val(perm.begin(), perm.begin() + validation_size);
    std::vector<int64_t> train(perm.begin() + validation_size, perm.end());
    std::sort(val.begin(), val.end());
    std::sort(train.begin(), train.end());
    return {subset(full, train, full.name + "-train"), subset(full, val, full.name + "-val")};
}

}  // namespace sp
