// libFuzzer target: the mask file reader (parse_mask, what load_mask runs on the file's
// bytes). Input: 2 bytes little-endian, the mask space's unit count, then the file's bytes.
// An accepted mask must hold exactly `units` values, each 0 or 1.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "kernels/error.h"
#include "nn/checkpoint.h"

using namespace sp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    const int64_t units = data[0] | (int64_t{data[1]} << 8);
    try {
        MaskFile mask = parse_mask(std::string(reinterpret_cast<const char*>(data + 2), size - 2), "fuzz-mask.safetensors", units);
        bool ok = static_cast<int64_t>(mask.state.size()) == units;
        for (float v : mask.state) ok = ok && (v == 0.0f || v == 1.0f);
        if (!ok) {
            std::fprintf(stderr, "mask_fuzz: an accepted mask breaks its contract\n");
            std::abort();
        }
    } catch (const Error&) {
    }
    return 0;
}
