// Reader for the IDX format of (Fashion-)MNIST: a big-endian header (magic 0x000008RR for
// unsigned bytes of rank RR, then RR 32-bit dimensions) followed by the bytes, row-major.
// Files may be plain or gzip-compressed (zlib reads both).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace sp {

// Default location of the Debian package dataset-fashion-mnist.
inline const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Where Fashion-MNIST is: the copy `make third-party` carries to an offline GPU machine
// (third_party/data/fashion-mnist, relative to the working directory), else the Debian package's.
std::string fashion_mnist_dir();
// Whether its training images are there.
bool fashion_mnist_available();

struct IdxArray {
    std::vector<int64_t> dims;  // from the header
    std::vector<uint8_t> data;  // product(dims) bytes
};

// Reads an unsigned-byte IDX file of the given rank (magic 0x00000800 | rank). Throws sp::Error
// naming the file on a missing/unreadable file, a wrong magic, a zero or oversized dimension,
// a truncated payload or trailing bytes.
IdxArray read_idx(const std::string& path, int expected_rank);

// Images (N, rows, cols) and labels (N) from two IDX files, as a dataset of (N, 1, rows, cols)
// floats in [0, 1]. Labels must lie in [0, num_classes); the counts must agree.
Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path, int64_t num_classes,
                         const std::string& name);

// Fashion-MNIST's train (60000) or test (10000) split from `dir`, which holds
// {train,t10k}-{images-idx3,labels-idx1}-ubyte, each plain or with a .gz suffix.
// Images must be 28x28; labels in 0..9.
Dataset load_fashion_mnist(const std::string& dir, bool train);

}  // namespace sp
