// CIFAR-10/100 binary readers.
#include "data/cifar.h"

#include <filesystem>
#include <fstream>

#include "kernels/error.h"

namespace sp {

namespace {

// One label byte of a record: its name and class count.
struct LabelByte {
    const char* kind;
    int64_t classes;
};

// Reads every record of the files. Each record starts with one byte per entry of `label_layout`
// (CIFAR-10: class; CIFAR-100: coarse, fine), each checked against its class count; byte
// `keep` becomes the label.
Dataset load_records(const std::vector<std::string>& paths, const std::vector<LabelByte>& label_layout, size_t keep,
                     const std::string& name) {
    SP_REQUIRE(!paths.empty(), "cifar: no files given for '" << name << "'");
    const int64_t label_bytes = static_cast<int64_t>(label_layout.size());
    const int64_t record = label_bytes + kCifarImageBytes;
    const int64_t num_classes = label_layout[keep].classes;

    // First pass: sizes, so the tensor is allocated once.
    std::vector<int64_t> counts;
    int64_t total = 0;
    for (const std::string& path : paths) {
        std::error_code ec;
        SP_REQUIRE(std::filesystem::is_regular_file(path, ec), "cifar: missing file '" << path << "'");
        const uintmax_t bytes = std::filesystem::file_size(path, ec);
        SP_REQUIRE(!ec, "cifar: cannot read the size of '" << path << "': " << ec.message());
        const int64_t n = static_cast<int64_t>(bytes / static_cast<uintmax_t>(record));
        SP_REQUIRE(bytes % static_cast<uintmax_t>(record) == 0,
                   "cifar: '" << path << "' is truncated: expected a multiple of " << record << " bytes (records of "
                              << label_bytes << " label byte" << (label_bytes > 1 ? "s" : "") << " + "
                              << kCifarImageBytes << " image bytes), i.e. " << (n + 1) * record
                              << " bytes for " << n + 1 << " records, found " << bytes << " bytes");
        SP_REQUIRE(n > 0, "cifar: '" << path << "' is empty: expected at least one " << record << "-byte record");
        counts.push_back(n);
        total += n;
    }

    Dataset out;
    out.name = name;
    out.num_classes = num_classes;
    out.images = Tensor(Shape{total, 3, 32, 32}, Device::cpu);  // (N, 3, 32, 32)
    out.labels.resize(static_cast<size_t>(total));
    std::vector<unsigned char> bytes;
    int64_t item = 0;
    for (size_t f = 0; f < paths.size(); ++f) {
        const std::string& path = paths[f];
        bytes.resize(static_cast<size_t>(counts[f] * record));
        std::ifstream in(path, std::ios::binary);
        SP_REQUIRE(in.good(), "cifar: cannot open '" << path << "'");
        in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        SP_REQUIRE(in.gcount() == static_cast<std::streamsize>(bytes.size()),
                   "cifar: '" << path << "': expected " << bytes.size() << " bytes, read " << in.gcount());
        for (int64_t r = 0; r < counts[f]; ++r, ++item) {
            const unsigned char* rec = bytes.data() + r * record;
            for (size_t l = 0; l < label_layout.size(); ++l)
                SP_REQUIRE(rec[l] < label_layout[l].classes,
                           "cifar: '" << path << "': " << label_layout[l].kind << " label " << int{rec[l]}
                                      << " of record " << r << " is out of range: expected 0.."
                                      << label_layout[l].classes - 1);
            out.labels[static_cast<size_t>(item)] = rec[keep];
            float* dst = out.images.data() + item * kCifarImageBytes;
            const unsigned char* src = rec + label_bytes;
            for (int64_t k = 0; k < kCifarImageBytes; ++k) dst[k] = static_cast<float>(src[k]) / 255.0f;
        }
    }
    return out;
}

// `dir`, or `dir/sub` when the files sit in the archive's own top-level folder.
std::string resolve_dir(const std::string& dir, const std::string& sub, const std::string& probe) {
    std::error_code ec;
    namespace fs = std::filesystem;
    if (!fs::exists(fs::path(dir) / probe, ec) && fs::exists(fs::path(dir) / sub / probe, ec))
        return (fs::path(dir) / sub).string();
    return dir;
}

}  // namespace

Dataset load_cifar10_files(const std::vector<std::string>& paths, const std::string& name) {
    return load_records(paths, {{"class", 10}}, 0, name);
}

Dataset load_cifar100_files(const std::vector<std::string>& paths, Cifar100Labels which, const std::string& name) {
    return load_records(paths, {{"coarse", 20}, {"fine", 100}}, which == Cifar100Labels::fine ? 1 : 0, name);
}

Dataset load_cifar10(const std::string& dir, bool train) {
    const std::string probe = train ? "data_batch_1.bin" : "test_batch.bin";
    const std::filesystem::path base = resolve_dir(dir, "cifar-10-batches-bin", probe);
    std::vector<std::string> paths;
    if (train)
        for (int b = 1; b <= 5; ++b) paths.push_back((base / ("data_batch_" + std::to_string(b) + ".bin")).string());
    else
        paths.push_back((base / "test_batch.bin").string());
    return load_cifar10_files(paths, train ? "cifar10-train" : "cifar10-test");
}

Dataset load_cifar100(const std::string& dir, bool train, Cifar100Labels which) {
    const std::string file = train ? "train.bin" : "test.bin";
    const std::filesystem::path base = resolve_dir(dir, "cifar-100-binary", file);
    return load_cifar100_files({(base / file).string()}, which, train ? "cifar100-train" : "cifar100-test");
}

}  // namespace sp
