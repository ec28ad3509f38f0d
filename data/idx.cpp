// IDX reader (plain or gzip through zlib) and the Fashion-MNIST loader.
#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "kernels/error.h"

namespace sp {

namespace {

// Largest payload accepted from a header (4 GiB): guards the dims product against overflow
// and against absurd headers; the real files are ~47 MB.
constexpr uint64_t kMaxIdxBytes = uint64_t{1} << 32;

// RAII gzFile that reads plain files transparently.
class GzReader {
public:
    explicit GzReader(const std::string& path) : path_(path) {
        std::error_code ec;
        SP_REQUIRE(std::filesystem::is_regular_file(path, ec),
                   "idx: cannot open '" << path << "': no such file");
        file_ = gzopen(path.c_str(), "rb");
        SP_REQUIRE(file_ != nullptr, "idx: cannot open '" << path << "': " << std::strerror(errno));
    }
    ~GzReader() {
        if (file_) gzclose(file_);
    }
    GzReader(const GzReader&) = delete;
    GzReader& operator=(const GzReader&) = delete;

    // Reads up to n bytes; returns how many were read (fewer only at the end of the data).
    // A stream that ends mid-way (truncated .gz) counts as the end; other errors throw.
    uint64_t read(void* dst, uint64_t n) {
        uint64_t done = 0;
        auto* out = static_cast<unsigned char*>(dst);
        while (done < n) {
            const unsigned chunk = static_cast<unsigned>(std::min<uint64_t>(n - done, 1u << 30));
            const int got = gzread(file_, out + done, chunk);
            if (got < 0) {
                int code = 0;
                const char* msg = gzerror(file_, &code);
                if (code == Z_BUF_ERROR) break;  // "unexpected end of file": a truncated stream
                fail("idx: reading '" + path_ + "' failed: " + (msg ? msg : "zlib error"), __FILE__, __LINE__);
            }
            if (got == 0) break;
            done += static_cast<uint64_t>(got);
        }
        return done;
    }

private:
    std::string path_;
    gzFile file_ = nullptr;
};

uint32_t big_endian_u32(const unsigned char* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string dims_str(const std::vector<int64_t>& dims) {
    std::string s;
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
    return s;
}

// `dir/name` or `dir/name.gz`, whichever exists; an error naming both when neither does.
std::string find_plain_or_gz(const std::string& dir, const std::string& name) {
    const std::filesystem::path plain = std::filesystem::path(dir) / name;
    const std::filesystem::path gz = std::filesystem::path(dir) / (name + ".gz");
    std::error_code ec;
    if (std::filesystem::is_regular_file(plain, ec)) return plain.string();
    if (std::filesystem::is_regular_file(gz, ec)) return gz.string();
    fail("fashion-mnist: missing file: neither '" + plain.string() + "' nor '" + gz.string() + "' exists",
         __FILE__, __LINE__);
}

}  // namespace

IdxArray read_idx(const std::string& path, int expected_rank) {
    SP_REQUIRE(expected_rank >= 1 && expected_rank <= 4, "idx: unsupported rank " << expected_rank);
    GzReader in(path);
    unsigned char magic_bytes[4];
    const uint64_t got_magic = in.read(magic_bytes, 4);
    SP_REQUIRE(got_magic == 4, "idx: '" << path << "' is truncated: expected at least a 4-byte magic number, found "
                                        << got_magic << " bytes");
    const uint32_t magic = big_endian_u32(magic_bytes);
    const uint32_t expected_magic = 0x00000800u | static_cast<uint32_t>(expected_rank);
    if (magic != expected_magic) {
        std::ostringstream msg;
        msg << "idx: '" << path << "' has wrong magic number: expected 0x" << std::hex;
        msg.width(8);
        msg.fill('0');
        msg << expected_magic << " (unsigned bytes, rank " << std::dec << expected_rank << "), found 0x" << std::hex;
        msg.width(8);
        msg << magic;
        fail(msg.str(), __FILE__, __LINE__);
    }

    const uint64_t header_bytes = 4 + 4 * static_cast<uint64_t>(expected_rank);
    unsigned char dim_bytes[16];
    const uint64_t got_dims = in.read(dim_bytes, 4 * static_cast<uint64_t>(expected_rank));
    SP_REQUIRE(got_dims == 4 * static_cast<uint64_t>(expected_rank),
               "idx: '" << path << "' is truncated: expected a " << header_bytes << "-byte header, found "
                        << 4 + got_dims << " bytes");

    IdxArray out;
    uint64_t total = 1;
    for (int d = 0; d < expected_rank; ++d) {
        const uint32_t dim = big_endian_u32(dim_bytes + 4 * d);
        out.dims.push_back(static_cast<int64_t>(dim));
        SP_REQUIRE(dim > 0, "idx: '" << path << "' has a zero dimension " << d << " in its header");
        // Checked before multiplying: total <= kMaxIdxBytes < 2^33 and dim < 2^32 cannot overflow 2^64.
        total *= dim;
        SP_REQUIRE(total <= kMaxIdxBytes, "idx: '" << path << "' header claims dimensions " << dims_str(out.dims)
                                                   << (d + 1 < expected_rank ? "x..." : "") << ", more than the "
                                                   << kMaxIdxBytes << " bytes accepted");
    }

    // Grow in chunks so a lying header cannot make us allocate more than the file holds.
    const uint64_t chunk = uint64_t{64} << 20;
    uint64_t have = 0;
    while (have < total) {
        const uint64_t want = std::min(chunk, total - have);
        out.data.resize(static_cast<size_t>(have + want));
        const uint64_t got = in.read(out.data.data() + have, want);
        have += got;
        if (got < want) break;
    }
    SP_REQUIRE(have == total, "idx: '" << path << "' is truncated: expected " << header_bytes + total
                                       << " bytes (" << header_bytes << "-byte header + " << dims_str(out.dims)
                                       << " bytes of data), found " << header_bytes + have
                                       << (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0
                                               ? " (uncompressed)" : ""));
    unsigned char extra;
    SP_REQUIRE(in.read(&extra, 1) == 0, "idx: '" << path << "' is longer than its header says: expected "
                                                 << header_bytes + total << " bytes (" << dims_str(out.dims)
                                                 << "), found more");
    return out;
}

Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path, int64_t num_classes,
                         const std::string& name) {
    SP_REQUIRE(num_classes > 0 && num_classes <= 256, "idx: num_classes must be in [1, 256], got " << num_classes);
    IdxArray images = read_idx(images_path, 3);
    IdxArray labels = read_idx(labels_path, 1);
    SP_REQUIRE(images.dims[0] == labels.dims[0], "idx: count mismatch: '" << images_path << "' holds "
                                                    << images.dims[0] << " images but '" << labels_path
                                                    << "' holds " << labels.dims[0] << " labels");
    const int64_t n = images.dims[0], rows = images.dims[1], cols = images.dims[2];

    Dataset out;
    out.name = name;
    out.num_classes = num_classes;
    out.labels.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        const int32_t label = labels.data[static_cast<size_t>(i)];
        SP_REQUIRE(label < num_classes, "idx: '" << labels_path << "': label " << label << " of item " << i
                                                 << " is out of range: expected 0.." << num_classes - 1);
        out.labels[static_cast<size_t>(i)] = label;
    }
    out.images = Tensor(Shape{n, 1, rows, cols}, Device::cpu);  // (N, 1, H, W)
    float* dst = out.images.data();
    for (size_t i = 0; i < images.data.size(); ++i) dst[i] = static_cast<float>(images.data[i]) / 255.0f;
    return out;
}

Dataset load_fashion_mnist(const std::string& dir, bool train) {
    const std::string prefix = train ? "train" : "t10k";
    const std::string images_path = find_plain_or_gz(dir, prefix + "-images-idx3-ubyte");
    const std::string labels_path = find_plain_or_gz(dir, prefix + "-labels-idx1-ubyte");
    Dataset out = load_idx_dataset(images_path, labels_path, 10, train ? "fashion-mnist-train" : "fashion-mnist-test");
    SP_REQUIRE(out.height() == 28 && out.width() == 28, "fashion-mnist: '" << images_path
                                                        << "' has wrong dimensions: expected 28x28 images, found "
                                                        << out.height() << "x" << out.width());
    return out;
}

std::string fashion_mnist_dir() {
    const char* carried = "third_party/data/fashion-mnist";
    return std::filesystem::exists(carried) ? carried : kFashionMnistDir;
}

bool fashion_mnist_available() {
    const std::string dir = fashion_mnist_dir();
    return std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz") || std::filesystem::exists(dir + "/train-images-idx3-ubyte");
}

}  // namespace sp
