// Experiment configs (validation and overrides) and safetensors checkpoints (round trip,
// atomic writes, corrupt files rejected with the file named).
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "kernels/error.h"
#include "nn/checkpoint.h"
#include "train/config.h"

using namespace sp;

namespace {

std::string temp_dir() {
    static std::string dir = [] {
        std::string d = std::filesystem::temp_directory_path().string() + "/spinprune_test_" + std::to_string(::getpid());
        std::filesystem::create_directories(d);
        return d;
    }();
    return dir;
}

std::string write_file(const std::string& name, const std::string& text) {
    std::string path = temp_dir() + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
}

}  // namespace

TEST_CASE("config: defaults, values, overrides and the resolved TOML") {
    std::string path = write_file("ok.toml", "name = \"x\"\nseed = 7\n[train]\nepochs = 2\nlr = 0.1\nmilestones = [1, 2]\n");
    ExperimentConfig c = load_config(path, {"train.batch_size=64", "model.name=\"resnet20\""});
    CHECK(c.name == "x");
    CHECK(c.seed == 7);
    CHECK(c.train.epochs == 2);
    CHECK(c.train.lr == doctest::Approx(0.1));
    CHECK(c.train.batch_size == 64);
    CHECK(c.model.name == "resnet20");
    CHECK(c.train.milestones == std::vector<int64_t>{1, 2});
    CHECK(c.data.dataset == "fashion-mnist");  // default
    // The resolved config loads back to the same values.
    std::string resolved = write_file("resolved.toml", to_toml(c));
    ExperimentConfig back = load_config(resolved);
    CHECK(back.train.batch_size == 64);
    CHECK(back.model.name == "resnet20");
    CHECK(back.train.milestones == c.train.milestones);
}

TEST_CASE("config: model.widths names channel sets (dotted names quoted) and survives the resolved TOML") {
    std::string path = write_file("widths.toml", "[model]\nname = \"resnet20\"\nwidths = { \"layer1.0.conv1\" = 8, stage2 = 40 }\n");
    ExperimentConfig c = load_config(path);
    CHECK(c.model.widths == std::map<std::string, int64_t>{{"layer1.0.conv1", 8}, {"stage2", 40}});
    ExperimentConfig back = load_config(write_file("widths_resolved.toml", to_toml(c)));
    CHECK(back.model.widths == c.model.widths);
    CHECK(load_config(write_file("no_widths.toml", "")).model.widths.empty());
}

TEST_CASE("config: every experiment file in experiments/ is valid") {
    int files = 0;
    for (const auto& entry : std::filesystem::directory_iterator("experiments")) {
        if (entry.path().extension() != ".toml") continue;
        ++files;
        CHECK_NOTHROW_MESSAGE(load_config(entry.path().string()), entry.path().string());
    }
    CHECK(files > 0);
}

TEST_CASE("config: every bad input names the file and the key") {
    auto error_of = [](const std::string& text, std::vector<std::string> overrides = {}) {
        std::string path = write_file("bad.toml", text);
        try {
            load_config(path, overrides);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(error_of("[train]\nepochz = 3\n").find("unknown key 'train.epochz'") != std::string::npos);
    CHECK(error_of("[train]\nepochs = \"3\"\n").find("key 'train.epochs': expected an integer") != std::string::npos);
    CHECK(error_of("[train]\nepochs = 0\n").find("key 'train.epochs': expected a value in [1,") != std::string::npos);
    CHECK(error_of("[model]\nname = \"resnet21\"\n").find("key 'model.name': expected one of lenet") != std::string::npos);
    CHECK(error_of("[model]\nwidths = 3\n").find("key 'model.widths': expected a table of integers") != std::string::npos);
    CHECK(error_of("[model]\nwidths = { fc1 = 0 }\n").find("key 'model.widths.fc1': expected a width in [1,") != std::string::npos);
    CHECK(error_of("[model]\nwidths = { fc1 = 2.5 }\n").find("key 'model.widths.fc1': expected an integer") != std::string::npos);
    CHECK(error_of("colour = 1\n").find("unknown key 'colour'") != std::string::npos);
    CHECK(error_of("[data\n").find("bad.toml:1") != std::string::npos);
    CHECK(error_of("", {"train.lr=fast"}).find("--set 'train.lr=fast'") != std::string::npos);
    CHECK(error_of("", {"train.lr=-1.0"}).find("key 'train.lr'") != std::string::npos);
    CHECK(error_of("[train]\nmilestones = [5, 3]\n").find("increasing") != std::string::npos);
    CHECK(error_of("[prune.scoring]\ncriterion = \"svd\"\n").find("key 'prune.scoring.criterion': expected one of nuclear") != std::string::npos);
    CHECK(error_of("[prune.edropout]\nenergy = \"ising\"\nbudget_weight = -1.0\n").find("key 'prune.edropout.budget_weight'") != std::string::npos);
    CHECK(error_of("", {"prune.gibbs.no_such_key=1"}).find("unknown key 'prune.gibbs.no_such_key'") != std::string::npos);
    CHECK(error_of("[prune.scoring]\ncriterion = \"l2\"\n[prune.edropout]\nenergy = \"ising\"\n").find("no error") != std::string::npos);
    CHECK(error_of("", {}).find("no error") != std::string::npos);
    CHECK_THROWS_WITH_AS(load_config(temp_dir() + "/missing.toml"), doctest::Contains("missing.toml"), Error);
}

TEST_CASE("checkpoint: safetensors round trip with metadata") {
    Tensor a = Tensor::from_host({1.5f, -2.0f, 3.25f, 0.0f, 5.0f, 6.0f}, Shape{2, 3}, Device::cpu);
    Tensor b = Tensor::from_host({42.0f}, Shape{1}, Device::cpu);
    std::string path = temp_dir() + "/ck.safetensors";
    save_checkpoint(path, {{"layer.weight", &a}, {"step", &b}}, {{"epoch", "3"}});
    Checkpoint ck = load_checkpoint(path);
    CHECK(ck.get("layer.weight", Shape{2, 3}).values == a.to_host());
    CHECK(ck.get("step", Shape{1}).values[0] == 42.0f);
    CHECK(ck.meta("epoch") == "3");
    CHECK_THROWS_WITH_AS(ck.get("layer.weight", Shape{3, 2}), doctest::Contains("the model expects (3, 2)"), Error);
    CHECK_THROWS_WITH_AS(ck.get("nothing", Shape{1}), doctest::Contains("no tensor 'nothing'"), Error);
    // The layout: 8-byte little-endian header length, JSON header, data of 7 floats.
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
    CHECK(bytes.size() == 8 + n + 7 * sizeof(float));
    CHECK(bytes.substr(8, 1) == "{");
    // No temporary file is left behind.
    int files = 0;
    for (auto& entry : std::filesystem::directory_iterator(temp_dir()))
        files += entry.path().string().find(".tmp.") != std::string::npos;
    CHECK(files == 0);
}

TEST_CASE("checkpoint: truncated and corrupt files are rejected with the file named") {
    Tensor a = Tensor::from_host({1, 2, 3, 4}, Shape{4}, Device::cpu);
    std::string good = temp_dir() + "/good.safetensors";
    save_checkpoint(good, {{"a", &a}}, {});
    std::ifstream in(good, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

    std::string truncated = write_file("truncated.safetensors", bytes.substr(0, bytes.size() - 3));
    CHECK_THROWS_WITH_AS(load_checkpoint(truncated), doctest::Contains("truncated.safetensors"), Error);
    std::string tiny = write_file("tiny.safetensors", "abc");
    CHECK_THROWS_WITH_AS(load_checkpoint(tiny), doctest::Contains("need at least 8"), Error);
    std::string huge = bytes;
    huge[7] = 0x7f;  // header length far beyond the file
    CHECK_THROWS_WITH_AS(load_checkpoint(write_file("huge.safetensors", huge)), doctest::Contains("exceeds the file"), Error);
    std::string garbled = bytes;
    garbled[8] = '[';
    CHECK_THROWS_WITH_AS(load_checkpoint(write_file("garbled.safetensors", garbled)), doctest::Contains("garbled.safetensors"), Error);
    std::string f16 = bytes;
    auto pos = f16.find("F32");
    f16.replace(pos, 3, "F16");
    CHECK_THROWS_WITH_AS(load_checkpoint(write_file("f16.safetensors", f16)), doctest::Contains("expected \"F32\""), Error);
    CHECK_THROWS_WITH_AS(load_checkpoint(temp_dir() + "/absent.safetensors"), doctest::Contains("absent.safetensors"), Error);
}
