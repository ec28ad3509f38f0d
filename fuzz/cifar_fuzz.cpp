// libFuzzer target: the CIFAR-10/100 binary readers. Input: one mode byte, two split bytes, then
// the bytes of the file(s). Mode % 3 (bits 0-6): CIFAR-10, CIFAR-100 fine, CIFAR-100 coarse
// labels; bit 7: two files (the multi-file path of the training set), split where the split
// bytes say (fuzz::split_point).
#include <cstddef>
#include <cstdint>

#include "data/cifar.h"
#include "fuzz/fuzz_input.h"
#include "kernels/error.h"

using namespace sp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 3) return 0;
    static const std::vector<std::string> files = {fuzz::scratch_path("data_batch_1.bin"),
                                                   fuzz::scratch_path("data_batch_2.bin")};
    const uint8_t mode = data[0];
    std::vector<std::string> paths = {files[0]};
    if (mode & 0x80) {
        const size_t rest = size - 3, split = fuzz::split_point(rest, data[1], data[2]);
        fuzz::write_bytes(files[0], data + 3, split);
        fuzz::write_bytes(files[1], data + 3 + split, rest - split);
        paths.push_back(files[1]);
    } else {
        fuzz::write_bytes(files[0], data + 3, size - 3);
    }
    try {
        Dataset d = (mode & 0x7f) % 3 == 0 ? load_cifar10_files(paths, "fuzz")
                                           : load_cifar100_files(paths, (mode & 0x7f) % 3 == 1 ? Cifar100Labels::fine
                                                                                               : Cifar100Labels::coarse,
                                                                 "fuzz");
        validate(d);
    } catch (const Error&) {
    }
    return 0;
}
