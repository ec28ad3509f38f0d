// Readers for the binary versions of CIFAR-10 and CIFAR-100 (https://www.cs.toronto.edu/~kriz/cifar.html).
// CIFAR-10 records: 1 label byte + 3072 image bytes; CIFAR-100 records: 1 coarse + 1 fine label
// byte + 3072 image bytes. Images are channel-planar 32x32 (1024 red, 1024 green, 1024 blue).
#pragma once

#include <string>
#include <vector>

#include "data/dataset.h"

namespace sp {

constexpr int64_t kCifarImageBytes = 3 * 32 * 32;

enum class Cifar100Labels { fine, coarse };

// Records from the given files, concatenated in order. Each file must hold a whole, non-zero
// number of records; every label byte must lie below its class count (10; 20 coarse, 100 fine).
Dataset load_cifar10_files(const std::vector<std::string>& paths, const std::string& name);
Dataset load_cifar100_files(const std::vector<std::string>& paths, Cifar100Labels which, const std::string& name);

// CIFAR-10 from `dir` (data_batch_1..5.bin for train, test_batch.bin for test), CIFAR-100 from
// `dir` (train.bin / test.bin). `dir` may also be the folder that holds the archive's own
// top-level directory (cifar-10-batches-bin/ or cifar-100-binary/).
Dataset load_cifar10(const std::string& dir, bool train);
Dataset load_cifar100(const std::string& dir, bool train, Cifar100Labels which = Cifar100Labels::fine);

}  // namespace sp
