// libFuzzer target: the IDX reader (read_idx, load_idx_dataset), plain and gzip.
// Input: one mode byte, then the file's bytes. Mode bits 0-1: rank - 1; bit 2: gzip the bytes
// first (the reader's zlib path with any payload); bit 3: a whole dataset, the bytes after two
// split bytes cut (fuzz::split_point) into an images file (rank 3) and a labels file (rank 1).
#include <cstddef>
#include <cstdint>

#include "data/idx.h"
#include "fuzz/fuzz_input.h"
#include "kernels/error.h"

using namespace sp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const uint8_t mode = data[0];
    const bool gz = mode & 4;
    auto write = [&](const std::string& path, const uint8_t* bytes, size_t n) {
        if (gz) fuzz::write_bytes(path, fuzz::gzip(bytes, n));
        else fuzz::write_bytes(path, bytes, n);
    };
    static const std::string images = fuzz::scratch_path("images-idx");
    static const std::string labels = fuzz::scratch_path("labels-idx");
    try {
        if (mode & 8) {
            if (size < 3) return 0;
            const size_t rest = size - 3, split = fuzz::split_point(rest, data[1], data[2]);
            write(images, data + 3, split);
            write(labels, data + 3 + split, rest - split);
            Dataset d = load_idx_dataset(images, labels, 10, "fuzz");
            validate(d);
        } else {
            write(images, data + 1, size - 1);
            read_idx(images, (mode & 3) + 1);
        }
    } catch (const Error&) {
    }
    return 0;
}
