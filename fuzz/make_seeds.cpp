// Writes the seed corpus of the fuzz targets: small valid inputs of every format, in the input
// layout each target expects (see the comment at the top of each *_fuzz.cpp).
//   make_seeds OUT_DIR EXPERIMENTS_DIR  ->  OUT_DIR/{idx,cifar,config,checkpoint,mask}/seed-*
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/cifar.h"
#include "fuzz/fuzz_input.h"
#include "nn/checkpoint.h"
#include "train/config.h"

using namespace sp;
namespace fs = std::filesystem;

namespace {

std::string big_endian(uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

// An unsigned-byte IDX file of `dims` filled with i % modulus.
std::string idx_file(const std::vector<uint32_t>& dims, unsigned modulus) {
    std::string s = big_endian(0x800u | static_cast<uint32_t>(dims.size()));
    size_t n = 1;
    for (uint32_t d : dims) {
        s += big_endian(d);
        n *= d;
    }
    for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(i % modulus));
    return s;
}

std::string cifar_records(int records, int label_bytes) {
    std::string s;
    for (int r = 0; r < records; ++r) {
        for (int l = 0; l < label_bytes; ++l) s.push_back(static_cast<char>((r + 3 * l) % 10));
        for (int64_t k = 0; k < kCifarImageBytes; ++k) s.push_back(static_cast<char>((k * 7 + r) % 256));
    }
    return s;
}

// The two bytes for which fuzz::split_point(rest, lo, hi) is `at`.
std::string split_bytes(size_t at, size_t rest) {
    for (unsigned s = 0; s < 65536; ++s)
        if (fuzz::split_point(rest, static_cast<uint8_t>(s), static_cast<uint8_t>(s >> 8)) == at)
            return {static_cast<char>(s & 0xff), static_cast<char>(s >> 8)};
    std::fprintf(stderr, "make_seeds: no split bytes for %zu of %zu\n", at, rest);
    std::exit(1);
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A checkpoint's bytes as save_checkpoint writes them.
std::string checkpoint_bytes(const std::string& scratch, const std::vector<std::pair<std::string, Tensor>>& tensors,
                             const std::map<std::string, std::string>& meta) {
    std::vector<std::pair<std::string, const Tensor*>> named;
    for (const auto& [name, t] : tensors) named.emplace_back(name, &t);
    save_checkpoint(scratch, named, meta);
    std::string bytes = read_file(scratch);
    fs::remove(scratch);
    return bytes;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s OUT_DIR EXPERIMENTS_DIR\n", argv[0]);
        return 2;
    }
    const fs::path out = argv[1];
    int written = 0;
    auto seed = [&](const std::string& target, const std::string& name, const std::string& bytes) {
        fs::create_directories(out / target);
        std::ofstream(out / target / ("seed-" + name), std::ios::binary) << bytes;
        ++written;
    };

    // IDX: mode byte (rank - 1, bit 2 gzip, bit 3 dataset), then the file.
    const std::string images = idx_file({3, 4, 5}, 256), labels = idx_file({3}, 10);
    seed("idx", "images", std::string(1, '\x02') + images);
    seed("idx", "labels", std::string(1, '\x00') + labels);
    seed("idx", "images-gz", std::string(1, '\x06') + images);
    seed("idx", "rank2", std::string(1, '\x01') + idx_file({2, 7}, 256));
    seed("idx", "rank4", std::string(1, '\x03') + idx_file({1, 2, 2, 3}, 256));
    const std::string gz = fuzz::gzip(reinterpret_cast<const uint8_t*>(images.data()), images.size());
    seed("idx", "images-raw-gz", std::string(1, '\x02') + gz);  // a gzip stream the fuzzer mutates
    const std::string both = images + labels;
    seed("idx", "dataset", std::string(1, '\x08') + split_bytes(images.size(), both.size()) + both);
    seed("idx", "dataset-gz", std::string(1, '\x0c') + split_bytes(images.size(), both.size()) + both);

    // CIFAR: mode byte (% 3: 10, 100 fine, 100 coarse; bit 7 two files), then the records.
    seed("cifar", "cifar10", std::string("\x00\x00\x00", 3) + cifar_records(2, 1));
    seed("cifar", "cifar100-fine", std::string("\x01\x00\x00", 3) + cifar_records(1, 2));
    seed("cifar", "cifar100-coarse", std::string("\x02\x00\x00", 3) + cifar_records(1, 2));
    const std::string two = cifar_records(2, 1);
    seed("cifar", "cifar10-two-files", std::string(1, '\x80') + split_bytes(two.size() / 2, two.size()) + two);

    // Configs: every experiment file, the defaults written out, and one with overrides.
    for (const auto& e : fs::directory_iterator(argv[2]))
        if (e.path().extension() == ".toml") seed("config", e.path().stem().string(), read_file(e.path()));
    seed("config", "defaults", to_toml(ExperimentConfig{}));
    seed("config", "overrides", std::string("[train]\nepochs = 2\n") + '\0' + "prune.keep=0.3\ntrain.lr=0.1\nprune.rl.hidden=8");

    // Checkpoints: tensors of several ranks (one empty) with metadata, and none at all.
    const std::string scratch = fuzz::scratch_path("seed.safetensors");
    std::vector<std::pair<std::string, Tensor>> tensors;
    tensors.emplace_back("conv.weight", Tensor::from_host({1, -2, 3.5f, 0, 1e-30f, 7, 8, 9}, Shape{2, 1, 2, 2}, Device::cpu));
    tensors.emplace_back("bn.running_mean", Tensor::from_host({0.5f, -0.5f}, Shape{2}, Device::cpu));
    tensors.emplace_back("empty", Tensor(Shape{0, 3}, Device::cpu));
    seed("checkpoint", "tensors", checkpoint_bytes(scratch, tensors, {{"format", "spinprune-checkpoint"}, {"model", "lenet"}, {"epoch", "1"}}));
    seed("checkpoint", "metadata-only", checkpoint_bytes(scratch, {}, {{"format", "spinprune-checkpoint"}}));

    // Masks: 2 bytes little-endian unit count, then a mask file as the pipeline writes it.
    std::vector<std::pair<std::string, Tensor>> mask;
    mask.emplace_back("state", Tensor::from_host({1, 0, 1, 1, 0, 0, 1, 1, 1, 0}, Shape{10}, Device::cpu));
    const std::map<std::string, std::string> mask_meta = {{"format", kMaskFormat}, {"method", "l1-filter"}, {"granularity", "filter"},
                                                          {"budget", "params"}, {"keep", "0.5"}, {"version", "1"}};
    seed("mask", "ten-units", std::string("\x0a\x00", 2) + checkpoint_bytes(scratch, mask, mask_meta));
    std::printf("make_seeds: %d seed files in %s\n", written, out.c_str());
    return 0;
}
