// libFuzzer target: the safetensors checkpoint reader (parse_checkpoint, what load_checkpoint
// runs on the file's bytes). A checkpoint it accepts must also survive a write and re-read
// unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fuzz/fuzz_input.h"
#include "kernels/error.h"
#include "nn/checkpoint.h"

using namespace sp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Checkpoint ck;
    try {
        ck = parse_checkpoint(std::string(reinterpret_cast<const char*>(data), size), "fuzz.safetensors");
    } catch (const Error&) {
        return 0;
    }
    // Round trip: what was accepted is written back and must read back the same.
    static const std::string path = fuzz::scratch_path("roundtrip.safetensors");
    save_checkpoint(path, ck);
    Checkpoint again = load_checkpoint(path);
    bool same = again.metadata == ck.metadata && again.tensors.size() == ck.tensors.size();
    for (const auto& [name, e] : ck.tensors) {
        auto it = again.tensors.find(name);
        same = same && it != again.tensors.end() && it->second.shape == e.shape && it->second.values.size() == e.values.size() &&
               (e.values.empty() ||  // bytes, not floats: NaN payloads must survive too
                std::memcmp(it->second.values.data(), e.values.data(), e.values.size() * sizeof(float)) == 0);
    }
    if (!same) {
        std::fprintf(stderr, "checkpoint_fuzz: an accepted checkpoint did not survive a write and re-read\n");
        std::abort();
    }
    return 0;
}
