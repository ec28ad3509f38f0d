// Seeded permutations and the held-out validation split.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.h"

namespace sp {

// Purposes of the data pipeline's random streams (the `purpose` of random_stream_key).
constexpr uint64_t kPurposeValidationSplit = 0x6461'7461'7370'6c74ull;  // "datasplt"
constexpr uint64_t kPurposeShuffle = 0x6461'7461'7368'7566ull;          // "datashuf"
constexpr uint64_t kPurposeAugment = 0x6461'7461'6175'676dull;          // "dataaugm"

// A permutation of 0..n-1 from Philox stream `key`: Fisher-Yates where step t (swapping
// position n-1-t) draws stream_uniform(key, t).
std::vector<int64_t> philox_permutation(int64_t n, uint64_t key);

struct TrainValidationSplit {
    Dataset train;
    Dataset validation;
};

// Holds out `validation_size` images chosen by `seed` (the first validation_size entries of
// philox_permutation(N, random_stream_key(seed, kPurposeValidationSplit, 0))). Both parts keep
// the original order of their images. Names get "-train" / "-val" suffixes.
TrainValidationSplit split_validation(const Dataset& full, int64_t validation_size, uint64_t seed);

}  // namespace sp
