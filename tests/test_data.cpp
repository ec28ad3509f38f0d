// Tests of the data pipeline: IDX and CIFAR readers on files written here in the exact binary
// layouts (and on the real Fashion-MNIST package when installed), their rejection of bad
// files, the validation split, the batch loader, and the augmentation (CPU, and CUDA vs CPU).
#include <doctest/doctest.h>
#include <zlib.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "data/cifar.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "data/loader.h"
#include "data/split.h"
#include "data/transforms.h"
#include "kernels/augment.h"
#include "kernels/error.h"
#include "tests/harness.h"

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

// A fresh directory under the system temp dir, removed with its contents at scope exit.
struct TempDir {
    fs::path path;
    TempDir() {
        static std::atomic<int> counter{0};
        path = fs::temp_directory_path() /
               ("spinprune_test_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_file(const std::string& path, const Bytes& bytes) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
}

void write_gz(const std::string& path, const Bytes& bytes) {
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
    REQUIRE(gzclose(f) == Z_OK);
}

void put_u32_be(Bytes& out, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

// An IDX file: magic, big-endian dims, payload.
Bytes idx_file(uint32_t magic, const std::vector<uint32_t>& dims, const Bytes& payload) {
    Bytes out;
    put_u32_be(out, magic);
    for (uint32_t d : dims) put_u32_be(out, d);
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

Bytes pattern(size_t n, uint32_t salt) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>((i * 7 + salt * 13 + (i >> 8) * 3) % 256);
    return b;
}

// The message of the sp::Error that `f` throws ("" when it throws none).
std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const sp::Error& e) {
        return e.what();
    }
    return "";
}

#define CHECK_ERROR_HAS(message, ...)                                                 \
    do {                                                                              \
        const std::string check_error_msg_ = (message);                               \
        CHECK_MESSAGE(!check_error_msg_.empty(), "expected an sp::Error");            \
        for (const std::string& part : std::vector<std::string>{__VA_ARGS__})         \
            CHECK_MESSAGE(check_error_msg_.find(part) != std::string::npos,           \
                          "message '" << check_error_msg_ << "' lacks '" << part << "'"); \
    } while (0)

// Fashion-MNIST style files of n 28x28 images into `dir`, plain or gzipped.
struct MnistFiles {
    Bytes pixels, labels;
};
MnistFiles write_mnist(const TempDir& dir, const std::string& prefix, uint32_t n, bool gz, uint32_t salt) {
    MnistFiles f{pattern(static_cast<size_t>(n) * 784, salt), {}};
    for (uint32_t i = 0; i < n; ++i) f.labels.push_back(static_cast<uint8_t>((i * 3 + salt) % 10));
    const Bytes images = idx_file(0x803, {n, 28, 28}, f.pixels);
    const Bytes labels = idx_file(0x801, {n}, f.labels);
    const std::string ip = dir.file(prefix + "-images-idx3-ubyte"), lp = dir.file(prefix + "-labels-idx1-ubyte");
    if (gz) {
        write_gz(ip + ".gz", images);
        write_gz(lp + ".gz", labels);
    } else {
        write_file(ip, images);
        write_file(lp, labels);
    }
    return f;
}

void check_mnist_equal(const sp::Dataset& d, const MnistFiles& f) {
    REQUIRE(d.size() == static_cast<int64_t>(f.labels.size()));
    CHECK(d.images.shape() == sp::Shape{d.size(), 1, 28, 28});
    CHECK(d.num_classes == 10);
    for (size_t i = 0; i < f.labels.size(); ++i) CHECK(d.labels[i] == f.labels[i]);
    size_t bad = 0;
    for (size_t i = 0; i < f.pixels.size(); ++i) bad += d.images.data()[i] != static_cast<float>(f.pixels[i]) / 255.0f;
    CHECK(bad == 0);
}

// CIFAR records: label byte(s) then 3072 planar image bytes.
Bytes cifar_records(const std::vector<std::vector<uint8_t>>& labels, uint32_t salt) {
    Bytes out;
    for (size_t r = 0; r < labels.size(); ++r) {
        out.insert(out.end(), labels[r].begin(), labels[r].end());
        Bytes img = pattern(3072, salt + static_cast<uint32_t>(r) * 5);
        out.insert(out.end(), img.begin(), img.end());
    }
    return out;
}

// Checks record r of a file against image `item` of the dataset, channel-planar.
void check_cifar_image(const sp::Dataset& d, int64_t item, const Bytes& file, size_t record_bytes, size_t r,
                       size_t label_bytes) {
    const uint8_t* img = file.data() + r * record_bytes + label_bytes;
    size_t bad = 0;
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 0; y < 32; ++y)
            for (int64_t x = 0; x < 32; ++x) {
                const float got = d.images.data()[((item * 3 + c) * 32 + y) * 32 + x];
                bad += got != static_cast<float>(img[c * 1024 + y * 32 + x]) / 255.0f;
            }
    CHECK_MESSAGE(bad == 0, "image " << item << ": " << bad << " pixels differ");
}

// n images of shape (c, h, w); image i is filled with values that identify it (i + 1) / 1024
// plus a per-pixel term, and its label is i % classes.
sp::Dataset synthetic(int64_t n, int64_t c, int64_t h, int64_t w, int64_t classes) {
    sp::Dataset d;
    d.name = "synthetic";
    d.num_classes = classes;
    d.images = sp::Tensor(sp::Shape{n, c, h, w}, sp::Device::cpu);
    const int64_t per = c * h * w;
    for (int64_t i = 0; i < n; ++i) {
        d.labels.push_back(static_cast<int32_t>(i % classes));
        for (int64_t k = 0; k < per; ++k) d.images.data()[i * per + k] = static_cast<float>(i + 1) + k / 4096.0f;
    }
    return d;
}
// Which synthetic image a gathered image is (its first value is i + 1).
int64_t identify(const float* image) { return static_cast<int64_t>(image[0]) - 1; }

}  // namespace

TEST_CASE("idx: plain and gzip Fashion-MNIST files round-trip") {
    TempDir plain, gz;
    const MnistFiles train = write_mnist(plain, "train", 5, false, 1);
    const MnistFiles test = write_mnist(plain, "t10k", 3, false, 2);
    const MnistFiles train_gz = write_mnist(gz, "train", 4, true, 3);
    check_mnist_equal(sp::load_fashion_mnist(plain.path.string(), true), train);
    check_mnist_equal(sp::load_fashion_mnist(plain.path.string(), false), test);
    check_mnist_equal(sp::load_fashion_mnist(gz.path.string(), true), train_gz);

    // The generic reader keeps dimensions of any rank and size.
    const Bytes payload = pattern(2 * 3 * 5, 9);
    write_file(plain.file("small.idx"), idx_file(0x803, {2, 3, 5}, payload));
    const sp::IdxArray a = sp::read_idx(plain.file("small.idx"), 3);
    CHECK(a.dims == std::vector<int64_t>{2, 3, 5});
    CHECK(a.data == payload);
}

TEST_CASE("idx: bad files are rejected with the file named") {
    TempDir dir;
    const std::string images = dir.file("images.idx"), labels = dir.file("labels.idx");
    const Bytes pixels = pattern(3 * 784, 4);
    const Bytes good_labels = {1, 2, 3};
    write_file(labels, idx_file(0x801, {3}, good_labels));
    auto load = [&] { sp::load_idx_dataset(images, labels, 10, "t"); };

    SUBCASE("missing file") {
        CHECK_ERROR_HAS(error_of(load), images, "no such file");
        CHECK_ERROR_HAS(error_of([&] { sp::load_fashion_mnist(dir.path.string(), true); }),
                        "train-images-idx3-ubyte", "train-images-idx3-ubyte.gz", "missing");
    }
    SUBCASE("wrong magic") {
        write_file(images, idx_file(0x801, {3, 28, 28}, pixels));
        CHECK_ERROR_HAS(error_of(load), images, "wrong magic", "expected 0x00000803", "found 0x00000801");
    }
    SUBCASE("truncated payload, plain and gzip") {
        Bytes file = idx_file(0x803, {3, 28, 28}, pixels);
        file.resize(file.size() - 5);
        write_file(images, file);
        CHECK_ERROR_HAS(error_of(load), images, "truncated", "expected 2368 bytes", "found 2363");
        const std::string gz = images + ".gz";
        write_gz(gz, file);
        CHECK_ERROR_HAS(error_of([&] { sp::read_idx(gz, 3); }), gz, "truncated", "expected 2368", "found 2363");
    }
    SUBCASE("gzip stream cut short") {
        const std::string gz = images + ".gz";
        write_gz(gz, idx_file(0x803, {3, 28, 28}, pixels));
        std::ifstream in(gz, std::ios::binary);
        Bytes compressed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        compressed.resize(compressed.size() / 2);
        write_file(gz, compressed);
        CHECK_ERROR_HAS(error_of([&] { sp::read_idx(gz, 3); }), gz, "truncated");
    }
    SUBCASE("truncated header") {
        write_file(images, Bytes{0, 0, 8, 3, 0, 0});
        CHECK_ERROR_HAS(error_of(load), images, "truncated", "16-byte header", "found 6");
    }
    SUBCASE("trailing bytes") {
        Bytes file = idx_file(0x803, {3, 28, 28}, pixels);
        file.push_back(0);
        write_file(images, file);
        CHECK_ERROR_HAS(error_of(load), images, "longer than its header");
    }
    SUBCASE("zero and overflowing dimensions") {
        write_file(images, idx_file(0x803, {3, 0, 28}, pixels));
        CHECK_ERROR_HAS(error_of(load), images, "zero dimension");
        // 2^32-1 cubed overflows 64 bits: must be caught from the header, before any allocation.
        write_file(images, idx_file(0x803, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, pixels));
        CHECK_ERROR_HAS(error_of(load), images, "more than");
    }
    SUBCASE("wrong image dimensions for Fashion-MNIST") {
        write_file(dir.file("train-images-idx3-ubyte"), idx_file(0x803, {3, 27, 28}, pattern(3 * 27 * 28, 1)));
        write_file(dir.file("train-labels-idx1-ubyte"), idx_file(0x801, {3}, good_labels));
        CHECK_ERROR_HAS(error_of([&] { sp::load_fashion_mnist(dir.path.string(), true); }),
                        "train-images-idx3-ubyte", "wrong dimensions", "expected 28x28", "found 27x28");
    }
    SUBCASE("label out of range") {
        write_file(images, idx_file(0x803, {3, 28, 28}, pixels));
        write_file(labels, idx_file(0x801, {3}, Bytes{1, 10, 3}));
        CHECK_ERROR_HAS(error_of(load), labels, "label 10", "item 1", "expected 0..9");
    }
    SUBCASE("count mismatch") {
        write_file(images, idx_file(0x803, {3, 28, 28}, pixels));
        write_file(labels, idx_file(0x801, {2}, Bytes{1, 2}));
        CHECK_ERROR_HAS(error_of(load), images, labels, "3 images", "2 labels");
    }
}

TEST_CASE("idx: the installed Fashion-MNIST package" * doctest::skip(!fs::exists(sp::kFashionMnistDir))) {
    for (bool train : {true, false}) {
        const sp::Dataset d = sp::load_fashion_mnist(sp::kFashionMnistDir, train);
        const int64_t n = train ? 60000 : 10000;
        REQUIRE(d.images.shape() == sp::Shape{n, 1, 28, 28});
        REQUIRE(d.size() == n);
        // Fashion-MNIST is balanced: n / 10 images of each of the 10 classes.
        std::vector<int64_t> per_class(10, 0);
        for (int32_t l : d.labels) {
            REQUIRE((l >= 0 && l <= 9));
            ++per_class[static_cast<size_t>(l)];
        }
        for (int64_t count : per_class) CHECK(count == n / 10);
        const float* p = d.images.data();
        const auto [lo, hi] = std::minmax_element(p, p + d.images.numel());
        CHECK(*lo == 0.0f);
        CHECK(*hi == 1.0f);
    }
}

TEST_CASE("cifar10: records round-trip, train batches in order") {
    TempDir dir;
    const fs::path sub = dir.path / "cifar-10-batches-bin";  // the archive's own folder is found too
    std::vector<Bytes> files;
    for (int b = 1; b <= 5; ++b) {
        files.push_back(cifar_records({{static_cast<uint8_t>(b)}, {static_cast<uint8_t>(9 - b)}}, b));
        write_file((sub / ("data_batch_" + std::to_string(b) + ".bin")).string(), files.back());
    }
    const Bytes test = cifar_records({{0}, {9}, {4}}, 77);
    write_file((sub / "test_batch.bin").string(), test);

    const sp::Dataset train = sp::load_cifar10(dir.path.string(), true);
    REQUIRE(train.images.shape() == sp::Shape{10, 3, 32, 32});
    CHECK(train.num_classes == 10);
    for (int b = 0; b < 5; ++b)
        for (size_t r = 0; r < 2; ++r) {
            const int64_t item = b * 2 + static_cast<int64_t>(r);
            CHECK(train.labels[static_cast<size_t>(item)] == (r == 0 ? b + 1 : 8 - b));
            check_cifar_image(train, item, files[static_cast<size_t>(b)], 3073, r, 1);
        }
    const sp::Dataset t = sp::load_cifar10(sub.string(), false);
    REQUIRE(t.size() == 3);
    CHECK(t.labels == std::vector<int32_t>{0, 9, 4});
    for (size_t r = 0; r < 3; ++r) check_cifar_image(t, static_cast<int64_t>(r), test, 3073, r, 1);
}

TEST_CASE("cifar100: fine labels by default, coarse on request") {
    TempDir dir;
    const Bytes train = cifar_records({{3, 99}, {19, 0}, {7, 42}}, 5);
    write_file(dir.file("train.bin"), train);
    write_file(dir.file("test.bin"), cifar_records({{0, 1}}, 6));
    const sp::Dataset fine = sp::load_cifar100(dir.path.string(), true);
    REQUIRE(fine.images.shape() == sp::Shape{3, 3, 32, 32});
    CHECK(fine.num_classes == 100);
    CHECK(fine.labels == std::vector<int32_t>{99, 0, 42});
    for (size_t r = 0; r < 3; ++r) check_cifar_image(fine, static_cast<int64_t>(r), train, 3074, r, 2);
    const sp::Dataset coarse = sp::load_cifar100(dir.path.string(), true, sp::Cifar100Labels::coarse);
    CHECK(coarse.num_classes == 20);
    CHECK(coarse.labels == std::vector<int32_t>{3, 19, 7});
    CHECK(sp::load_cifar100(dir.path.string(), false).labels == std::vector<int32_t>{1});
}

TEST_CASE("cifar: bad files are rejected with the file named") {
    TempDir dir;
    for (int b = 1; b <= 5; ++b)
        if (b != 3) write_file(dir.file("data_batch_" + std::to_string(b) + ".bin"), cifar_records({{1}}, b));
    CHECK_ERROR_HAS(error_of([&] { sp::load_cifar10(dir.path.string(), true); }), "missing file",
                    dir.file("data_batch_3.bin"));

    Bytes cut = cifar_records({{1}, {2}}, 0);
    cut.resize(cut.size() - 10);
    write_file(dir.file("data_batch_3.bin"), cut);
    CHECK_ERROR_HAS(error_of([&] { sp::load_cifar10(dir.path.string(), true); }), dir.file("data_batch_3.bin"),
                    "truncated", "multiple of 3073", "6146 bytes for 2 records", "found 6136 bytes");

    write_file(dir.file("data_batch_3.bin"), Bytes{});
    CHECK_ERROR_HAS(error_of([&] { sp::load_cifar10(dir.path.string(), true); }), dir.file("data_batch_3.bin"),
                    "empty");

    write_file(dir.file("test_batch.bin"), cifar_records({{2}, {10}}, 0));
    CHECK_ERROR_HAS(error_of([&] { sp::load_cifar10(dir.path.string(), false); }), dir.file("test_batch.bin"),
                    "label 10", "record 1", "expected 0..9");

    write_file(dir.file("train.bin"), cifar_records({{2, 100}}, 0));
    CHECK_ERROR_HAS(error_of([&] { sp::load_cifar100(dir.path.string(), true); }), dir.file("train.bin"),
                    "fine label 100", "expected 0..99");
    write_file(dir.file("train.bin"), cifar_records({{20, 5}}, 0));
    CHECK_ERROR_HAS(error_of([&] { sp::load_cifar100(dir.path.string(), true, sp::Cifar100Labels::coarse); }),
                    dir.file("train.bin"), "coarse label 20", "expected 0..19");
    // A coarse label out of range is garbage even when the fine labels are used.
    CHECK_ERROR_HAS(error_of([&] { sp::load_cifar100(dir.path.string(), true); }), dir.file("train.bin"),
                    "coarse label 20");
}

TEST_CASE("split: sizes, disjointness, determinism by seed") {
    const sp::Dataset full = synthetic(50, 1, 2, 2, 10);
    auto ids = [](const sp::Dataset& d) {
        std::vector<int64_t> out;
        for (int64_t i = 0; i < d.size(); ++i) {
            const int64_t id = identify(d.images.data() + i * d.image_numel());
            CHECK(d.labels[static_cast<size_t>(i)] == id % 10);  // labels travel with their images
            out.push_back(id);
        }
        return out;
    };
    const sp::TrainValidationSplit a = sp::split_validation(full, 12, 7);
    CHECK(a.train.size() == 38);
    CHECK(a.validation.size() == 12);
    CHECK(a.validation.name == "synthetic-val");
    std::vector<int64_t> ta = ids(a.train), va = ids(a.validation);
    CHECK(std::is_sorted(ta.begin(), ta.end()));
    std::set<int64_t> all(ta.begin(), ta.end());
    for (int64_t v : va) CHECK(all.insert(v).second);  // disjoint
    CHECK(all.size() == 50);                            // and together everything

    const sp::TrainValidationSplit again = sp::split_validation(full, 12, 7);
    CHECK(ids(again.validation) == va);
    CHECK(ids(again.train) == ta);
    // Another seed picks another set (C(50, 12) ~ 1.2e11 possibilities).
    CHECK(ids(sp::split_validation(full, 12, 8).validation) != va);

    CHECK_ERROR_HAS(error_of([&] { sp::split_validation(full, 50, 1); }), "validation size 50");

    // philox_permutation is a permutation, and its first element is roughly uniform.
    std::vector<int64_t> first_counts(4, 0);
    for (uint64_t key = 0; key < 400; ++key) {
        std::vector<int64_t> p = sp::philox_permutation(4, key);
        std::vector<int64_t> sorted = p;
        std::sort(sorted.begin(), sorted.end());
        CHECK(sorted == std::vector<int64_t>{0, 1, 2, 3});
        ++first_counts[static_cast<size_t>(p[0])];
    }
    // Binomial(400, 1/4): mean 100, sd ~8.7; 50..150 is a > 5.7 sd band.
    for (int64_t c : first_counts) CHECK((c > 50 && c < 150));
}

TEST_CASE("loader: seeded order, drop_last, cursor resume") {
    const sp::Dataset data = synthetic(23, 2, 3, 3, 4);
    sp::LoaderOptions opt;
    opt.batch_size = 5;
    opt.seed = 11;
    sp::BatchLoader loader(data, opt);
    CHECK(loader.batches_per_epoch() == 5);

    // One epoch visits every image once, in epoch_order(0); labels are floats of the class.
    std::vector<int64_t> seen;
    for (int64_t b = 0; b < 5; ++b) {
        sp::Batch batch = loader.next();
        CHECK(batch.index == b);
        CHECK(batch.images.shape() == sp::Shape{b < 4 ? 5 : 3, 2, 3, 3});
        for (int64_t k = 0; k < batch.images.dim(0); ++k) {
            const int64_t id = identify(batch.images.data() + k * 18);
            seen.push_back(id);
            CHECK(batch.labels.data()[k] == static_cast<float>(id % 4));
        }
    }
    CHECK(seen == loader.epoch_order(0));
    std::vector<int64_t> sorted = seen;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 23; ++i) CHECK(sorted[static_cast<size_t>(i)] == i);
    CHECK(loader.cursor() == sp::LoaderCursor{1, 0});
    CHECK(loader.epoch_order(1) != loader.epoch_order(0));
    CHECK(sp::BatchLoader(data, opt).epoch_order(3) == loader.epoch_order(3));
    sp::LoaderOptions other = opt;
    other.seed = 12;
    CHECK(sp::BatchLoader(data, other).epoch_order(0) != loader.epoch_order(0));
    other.shuffle = false;
    std::vector<int64_t> identity(23);
    for (int64_t i = 0; i < 23; ++i) identity[static_cast<size_t>(i)] = i;
    CHECK(sp::BatchLoader(data, other).epoch_order(0) == identity);

    sp::LoaderOptions drop = opt;
    drop.drop_last = true;
    sp::BatchLoader dropping(data, drop);
    CHECK(dropping.batches_per_epoch() == 4);
    for (int b = 0; b < 4; ++b) CHECK(dropping.next().images.dim(0) == 5);
    CHECK(dropping.cursor() == sp::LoaderCursor{1, 0});

    // Resume, with augmentation and normalisation on: a fresh loader set to a saved cursor
    // delivers exactly the batches the original would have.
    sp::LoaderOptions aug = opt;
    aug.augment = {1, true};
    aug.normalization = {{0.5f, 0.25f}, {2.0f, 4.0f}};
    sp::BatchLoader first(data, aug);
    for (int b = 0; b < 7; ++b) first.next();
    const sp::LoaderCursor saved = first.cursor();
    CHECK(saved == sp::LoaderCursor{1, 2});
    sp::BatchLoader resumed(data, aug);
    resumed.set_cursor(saved);
    for (int b = 0; b < 4; ++b) {
        sp::Batch x = first.next(), y = resumed.next();
        CHECK(x.epoch == y.epoch);
        CHECK(x.index == y.index);
        CHECK(x.images.to_host() == y.images.to_host());
        CHECK(x.labels.to_host() == y.labels.to_host());
    }
    CHECK_ERROR_HAS(error_of([&] { resumed.set_cursor({0, 5}); }), "cursor", "batch 5");
    sp::LoaderOptions huge = opt;
    huge.batch_size = 24;
    huge.drop_last = true;
    CHECK_ERROR_HAS(error_of([&] { sp::BatchLoader(data, huge); }), "no batch");
}

TEST_CASE("transforms: crop with zero padding and flip, hand-checked") {
    // One 1x3x3 image 1..9, pad 1: find keys whose draw is a given (offset_y, offset_x, flip).
    const std::vector<float> img = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const sp::Tensor x = sp::Tensor::from_host(img, sp::Shape{1, 1, 3, 3}, sp::Device::cpu);
    auto find_key = [](int64_t oy, int64_t ox, bool flip) {
        for (uint64_t key = 0; key < 10000; ++key) {
            const sp::kernels::AugmentDraw d = sp::kernels::augment_draw(key, 0, 1, true);
            if (d.offset_y == oy && d.offset_x == ox && d.flip == flip) return key;
        }
        FAIL("no key gives the draw");
        return uint64_t{0};
    };
    auto run = [&](uint64_t key) {
        sp::Tensor y(x.shape(), sp::Device::cpu);
        sp::transform_batch(x, y, {1, true}, key, nullptr, nullptr);
        return y.to_host();
    };
    // Offsets index the padded 5x5 image; (1, 1) is the identity crop.
    CHECK(run(find_key(1, 1, false)) == img);
    CHECK(run(find_key(0, 0, false)) == std::vector<float>{0, 0, 0, 0, 1, 2, 0, 4, 5});
    CHECK(run(find_key(2, 2, false)) == std::vector<float>{5, 6, 0, 8, 9, 0, 0, 0, 0});
    CHECK(run(find_key(1, 1, true)) == std::vector<float>{3, 2, 1, 6, 5, 4, 9, 8, 7});
    CHECK(run(find_key(0, 2, true)) == std::vector<float>{0, 0, 0, 0, 3, 2, 0, 6, 5});
}

TEST_CASE("transforms: every image of a batch is a padded shift or mirror of itself") {
    // 64 images (2, 8, 8), pixel value encodes (image, channel, row, col) + 1.
    const int64_t n = 64, c = 2, h = 8, w = 8, pad = 4;
    std::vector<float> v(static_cast<size_t>(n * c * h * w));
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i + 1);
    const sp::Tensor x = sp::Tensor::from_host(v, sp::Shape{n, c, h, w}, sp::Device::cpu);
    sp::Tensor y(x.shape(), sp::Device::cpu);
    const uint64_t key = sp::random_stream_key(3, sp::kPurposeAugment, 0);
    sp::transform_batch(x, y, {pad, true}, key, nullptr, nullptr);
    const std::vector<float> out = y.to_host();

    std::set<int64_t> shifts_y, shifts_x;
    int64_t flips = 0;
    for (int64_t i = 0; i < n; ++i) {
        // Find every (dy, dx, flip) for which the output is the input shifted by (dy, dx)
        // (after an optional mirror) with zeros outside: exactly one must fit.
        int matches = 0;
        int64_t found_dy = 0, found_dx = 0;
        bool found_flip = false;
        for (int64_t dy = -pad; dy <= pad; ++dy)
            for (int64_t dx = -pad; dx <= pad; ++dx)
                for (bool flip : {false, true}) {
                    bool ok = true;
                    for (int64_t ch = 0; ch < c && ok; ++ch)
                        for (int64_t r = 0; r < h && ok; ++r)
                            for (int64_t col = 0; col < w && ok; ++col) {
                                const int64_t sr = r + dy, sc = (flip ? w - 1 - col : col) + dx;
                                const float want = (sr >= 0 && sr < h && sc >= 0 && sc < w)
                                                       ? v[static_cast<size_t>(((i * c + ch) * h + sr) * w + sc)]
                                                       : 0.0f;
                                ok = out[static_cast<size_t>(((i * c + ch) * h + r) * w + col)] == want;
                            }
                    if (ok) {
                        ++matches;
                        found_dy = dy;
                        found_dx = dx;
                        found_flip = flip;
                    }
                }
        REQUIRE(matches == 1);
        const sp::kernels::AugmentDraw d = sp::kernels::augment_draw(key, static_cast<uint64_t>(i), pad, true);
        CHECK(found_dy == d.offset_y - pad);
        CHECK(found_dx == d.offset_x - pad);
        CHECK(found_flip == d.flip);
        shifts_y.insert(found_dy);
        shifts_x.insert(found_dx);
        flips += found_flip;
    }
    // The whole range of shifts is reachable (the key is fixed, so this is deterministic; a
    // fair draw misses one of 9 shifts in 64 tries with probability < 9 (8/9)^64 ~ 5e-3).
    CHECK(shifts_y.size() == 9);
    CHECK(shifts_x.size() == 9);
    CHECK((flips > 16 && flips < 48));

    // No augmentation: a copy.
    sp::transform_batch(x, y, {}, key, nullptr, nullptr);
    CHECK(y.to_host() == v);
    sp::Tensor wrong(sp::Shape{1, c, h, w}, sp::Device::cpu);
    CHECK_ERROR_HAS(error_of([&] { sp::transform_batch(x, wrong, {}, key, nullptr, nullptr); }), "must match");
}

TEST_CASE("transforms: per-channel normalisation") {
    // Channel 0 holds 0 and 1 equally (mean 1/2, std 1/2); channel 1 holds 0.25 and 0.75 (mean 1/2, std 1/4).
    sp::Dataset d;
    d.name = "norm";
    d.num_classes = 2;
    d.images = sp::Tensor(sp::Shape{2, 2, 2, 2}, sp::Device::cpu);
    d.labels = {0, 1};
    const std::vector<float> v = {0, 1, 1, 0, 0.25f, 0.75f, 0.75f, 0.25f, 1, 0, 0, 1, 0.75f, 0.25f, 0.25f, 0.75f};
    std::copy(v.begin(), v.end(), d.images.data());
    const sp::Normalization norm = sp::compute_normalization(d);
    CHECK(norm.mean == std::vector<float>{0.5f, 0.5f});
    CHECK(norm.std == std::vector<float>{0.5f, 0.25f});

    const sp::Tensor mean = sp::Tensor::from_host(norm.mean, sp::Shape{2}, sp::Device::cpu);
    const sp::Tensor stdev = sp::Tensor::from_host(norm.std, sp::Shape{2}, sp::Device::cpu);
    sp::Tensor y(d.images.shape(), sp::Device::cpu);
    sp::transform_batch(d.images, y, {}, 0, &mean, &stdev);
    // (v - 1/2) / s is exact in float for these values: ±1 and ±1.
    const std::vector<float> out = y.to_host();
    for (size_t i = 0; i < v.size(); ++i) CHECK(out[i] == (v[i] > 0.5f ? 1.0f : -1.0f));

    // Padding is zero before normalisation: with pad 2 on a 2x2 image, some draw leaves a
    // padded pixel at (0, 0), which normalises to -mean/std.
    bool saw_padding = false;
    for (uint64_t key = 0; key < 64 && !saw_padding; ++key) {
        sp::transform_batch(d.images, y, {2, false}, key, &mean, &stdev);
        const sp::kernels::AugmentDraw draw = sp::kernels::augment_draw(key, 0, 2, false);
        if (draw.offset_y < 2 || draw.offset_x < 2) {
            CHECK(y.data()[0] == -1.0f);  // channel 0: (0 - 0.5) / 0.5
            CHECK(y.data()[4] == -2.0f);  // channel 1: (0 - 0.5) / 0.25
            saw_padding = true;
        }
    }
    CHECK(saw_padding);

    sp::Dataset flat = synthetic(3, 1, 2, 2, 2);
    std::fill(flat.images.data(), flat.images.data() + flat.images.numel(), 0.5f);
    CHECK_ERROR_HAS(error_of([&] { sp::compute_normalization(flat); }), "constant");
}

GPU_TEST_CASE("augment: the CUDA kernel equals the CPU transform bit for bit") {
    struct Case {
        int64_t n, c, h, w, pad;
        bool flip;
    };
    for (const Case& k : {Case{16, 3, 32, 32, 4, true}, Case{5, 2, 17, 9, 3, true}, Case{7, 1, 28, 28, 0, false},
                          Case{4, 3, 5, 6, 8, true}}) {
        CAPTURE(k.h);
        const sp::Tensor x = sp::test::random_tensor(sp::Shape{k.n, k.c, k.h, k.w}, sp::Device::cpu, 101, 0.0f, 1.0f);
        const std::vector<float> m = sp::test::random_values(k.c, 102, 0.2f, 0.6f);
        const std::vector<float> s = sp::test::random_values(k.c, 103, 0.1f, 0.4f);
        const uint64_t key = sp::random_stream_key(9, sp::kPurposeAugment, static_cast<uint64_t>(k.h));
        for (bool normalise : {false, true}) {
            const sp::Tensor mean_c = sp::Tensor::from_host(m, sp::Shape{k.c}, sp::Device::cpu);
            const sp::Tensor std_c = sp::Tensor::from_host(s, sp::Shape{k.c}, sp::Device::cpu);
            const sp::Tensor mean_g = mean_c.to(sp::Device::cuda), std_g = std_c.to(sp::Device::cuda);
            sp::Tensor y_cpu(x.shape(), sp::Device::cpu);
            sp::transform_batch(x, y_cpu, {k.pad, k.flip}, key, normalise ? &mean_c : nullptr,
                                normalise ? &std_c : nullptr);
            const sp::Tensor x_gpu = x.to(sp::Device::cuda);
            sp::Tensor y_gpu(x.shape(), sp::Device::cuda);
            sp::transform_batch(x_gpu, y_gpu, {k.pad, k.flip}, key, normalise ? &mean_g : nullptr,
                                normalise ? &std_g : nullptr);
            const std::vector<float> a = y_cpu.to_host(), b = y_gpu.to_host();
            CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
        }
    }

    // The loader gives the same batches on both devices.
    const sp::Dataset data = synthetic(37, 3, 8, 8, 5);
    sp::LoaderOptions opt;
    opt.batch_size = 8;
    opt.seed = 5;
    opt.augment = {4, true};
    opt.normalization = {{0.4f, 0.5f, 0.6f}, {0.2f, 0.3f, 0.7f}};
    sp::BatchLoader on_cpu(data, opt);
    opt.device = sp::Device::cuda;
    sp::BatchLoader on_gpu(data, opt);
    for (int b = 0; b < 6; ++b) {
        sp::Batch p = on_cpu.next(), q = on_gpu.next();
        CHECK(q.images.device() == sp::Device::cuda);
        CHECK(p.images.to_host() == q.images.to_host());
        CHECK(p.labels.to_host() == q.labels.to_host());
    }
}
