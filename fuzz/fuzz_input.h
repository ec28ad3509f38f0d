// Helpers shared by the libFuzzer targets: the fuzz input written to a per-process scratch
// file (for readers that take a path), gzip compression, and the rule that a reader may only
// fail with sp::Error — any other exception escapes to libFuzzer and counts as a crash.
#pragma once

#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace sp::fuzz {

// A scratch path of this process in /dev/shm (memory) when it exists, else $TMPDIR or /tmp.
inline std::string scratch_path(const std::string& name) {
    const char* tmp = std::getenv("TMPDIR");
    const std::string dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : tmp && *tmp ? tmp : "/tmp";
    return dir + "/spinprune_fuzz_" + std::to_string(::getpid()) + "_" + name;
}

// Writes `bytes` to `path` (replacing it); aborts when it cannot, which is not the reader's fault.
inline void write_bytes(const std::string& path, const uint8_t* bytes, size_t size) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || (size && std::fwrite(bytes, 1, size, f) != size) || std::fclose(f) != 0) {
        std::perror(path.c_str());
        std::abort();
    }
}
inline void write_bytes(const std::string& path, const std::string& bytes) {
    write_bytes(path, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

// `bytes` as one gzip member (what gzip(1) writes), so arbitrary payloads reach the reader's
// gzip path and not just its magic check.
inline std::string gzip(const uint8_t* bytes, size_t size) {
    z_stream z{};
    if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
    std::string out(deflateBound(&z, static_cast<uLong>(size)) + 32, '\0');
    z.next_in = const_cast<Bytef*>(bytes);
    z.avail_in = static_cast<uInt>(size);
    z.next_out = reinterpret_cast<Bytef*>(&out[0]);
    z.avail_out = static_cast<uInt>(out.size());
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

// Where to split `rest` bytes in two: the fraction (hi·256 + lo) / 65535 of them.
inline size_t split_point(size_t rest, uint8_t lo, uint8_t hi) {
    return static_cast<size_t>(static_cast<uint64_t>(rest) * (lo | (hi << 8)) / 65535);
}

}  // namespace sp::fuzz
