// The training pipeline end to end, on the CPU and (GPU cases) on CUDA: a short run on a
// Fashion-MNIST subset learns, writes its run directory, and an interrupted-and-resumed run ends
// with bitwise the same weights as an uninterrupted one.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "data/idx.h"
#include "harness.h"
#include "kernels/error.h"
#include "nn/checkpoint.h"
#include "train/config.h"
#include "train/pipeline.h"
#include "train/trainer.h"

using namespace sp;

namespace {

std::string scratch(const std::string& name) {
    std::string dir = std::filesystem::temp_directory_path().string() + "/spinprune_train_" + std::to_string(::getpid()) + "/" + name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

ExperimentConfig small_config(const std::string& dir, const std::string& device = "cpu") {
    std::string path = dir + "/small.toml";
    std::ofstream(path) << "name = \"small\"\nseed = 3\ndevice = \"" << device << "\"\ndeterministic = true\n"
                           "[data]\ntrain_subset = 1200\nvalidation = 200\n"
                           "[model]\nname = \"lenet\"\n"
                           "[train]\nepochs = 2\nbatch_size = 50\neval_batch_size = 1000\nlr = 0.05\nschedule = \"cosine\"\n";
    return load_config(path);
}

std::vector<nlohmann::json> read_metrics(const std::string& dir) {
    std::vector<nlohmann::json> records;
    std::ifstream in(dir + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
    return records;
}

TEST_CASE("train: two epochs on a Fashion-MNIST subset learn and write the run directory" * doctest::skip(!fashion_mnist_available())) {
    std::string dir = scratch("learn");
    TrainOptions options;
    options.out_dir = dir + "/run";
    options.quiet = true;
    nlohmann::json summary = train_experiment(small_config(dir), options);
    auto metrics = read_metrics(options.out_dir);
    REQUIRE(metrics.size() == 2);
    CHECK(metrics[1]["train_loss"].get<double>() < metrics[0]["train_loss"].get<double>());
    CHECK(summary["top1"].get<double>() > 50.0);          // 10 classes: chance is 10%
    for (const char* file : {"config.toml", "environment.json", "summary.json", "checkpoint.safetensors", "model.safetensors"})
        CHECK_MESSAGE(std::filesystem::exists(options.out_dir + "/" + file), file);
    // The resolved config in the run directory loads back.
    CHECK(load_config(options.out_dir + "/config.toml").train.batch_size == 50);
    // The saved model, rebuilt from the config saved beside it, evaluates to the same test score.
    Checkpoint saved = load_checkpoint(options.out_dir + "/model.safetensors");
    ExperimentConfig again = parse_config(saved.meta("config"), "saved config");
    ExperimentData data = prepare_experiment_data(again);
    auto model = make_model(again.model.name, data.test.channels(), data.test.height(), data.test.width(),
                            data.test.num_classes);
    model->allocate(Device::cpu, 99);  // other initial weights, overwritten by the checkpoint
    load_model_weights(*model, options.out_dir + "/model.safetensors");
    Context ctx(Device::cpu, static_cast<uint64_t>(again.seed), true);
    CHECK(evaluate(ctx, *model, data.test, data.norm, 1000).top1 == summary["top1"].get<double>());
    // A second run into the same directory without --resume is refused.
    CHECK_THROWS_WITH_AS(train_experiment(small_config(dir), options), doctest::Contains("--resume"), Error);
}

// Stopped twice (mid-epoch, then across the epoch boundary) and resumed: bitwise the weights and
// the metrics of an uninterrupted run (deterministic mode on CUDA: no atomics, fixed algorithms).
void check_resume_is_bitwise(const std::string& device) {
    std::string dir = scratch("resume_" + device);
    ExperimentConfig config = small_config(dir, device);
    TrainOptions straight;
    straight.out_dir = dir + "/straight";
    straight.quiet = true;
    nlohmann::json summary = train_experiment(config, straight);
    CHECK(summary["top1"].get<double>() > 50.0);  // it learns on this device too

    TrainOptions interrupted = straight;
    interrupted.out_dir = dir + "/interrupted";
    interrupted.stop_after_steps = 7;  // mid-epoch 1 (20 steps per epoch)
    CHECK_FALSE(train_experiment(config, interrupted)["completed"].get<bool>());
    interrupted.resume = true;
    interrupted.stop_after_steps = 20;  // across the epoch boundary, into epoch 2
    CHECK_FALSE(train_experiment(config, interrupted)["completed"].get<bool>());
    interrupted.stop_after_steps = -1;
    CHECK(train_experiment(config, interrupted)["completed"].get<bool>());

    Checkpoint a = load_checkpoint(straight.out_dir + "/model.safetensors");
    Checkpoint b = load_checkpoint(interrupted.out_dir + "/model.safetensors");
    REQUIRE(a.tensors.size() == b.tensors.size());
    size_t differing = 0;
    for (const auto& [name, entry] : a.tensors) differing += entry.values != b.tensors.at(name).values;
    CHECK(differing == 0);
    const auto straight_metrics = read_metrics(straight.out_dir), resumed_metrics = read_metrics(interrupted.out_dir);
    REQUIRE(straight_metrics.size() == resumed_metrics.size());
    for (size_t e = 0; e < straight_metrics.size(); ++e)
        CHECK(straight_metrics[e]["train_loss"] == resumed_metrics[e]["train_loss"]);
}

}  // namespace

TEST_CASE("train: an interrupted and resumed run ends with bitwise the same weights" * doctest::skip(!fashion_mnist_available())) {
    check_resume_is_bitwise("cpu");
}

GPU_TEST_CASE("train (cuda): two deterministic epochs learn; interrupted and resumed, bitwise the same weights") {
    REQUIRE(fashion_mnist_available());  // a GPU machine carries the data in third_party/
    check_resume_is_bitwise("cuda");
}

TEST_CASE("run: a resumed run's times count the epochs and the wall time of the processes before it" *
          doctest::skip(!fashion_mnist_available())) {
    const std::string dir = scratch("resumed_times");
    ExperimentConfig config = small_config(dir);
    config.prune.method = "l1-filter";
    config.prune.keep = 0.5;
    config.finetune.epochs = 1;
    TrainOptions options;
    options.out_dir = dir + "/run";
    options.quiet = true;
    options.stop_after_steps = 30;  // in epoch 2 of 2 (24 steps per epoch)
    REQUIRE_FALSE(run_experiment(config, options)["completed"].get<bool>());
    const double before = nlohmann::json::parse(std::ifstream(options.out_dir + "/elapsed.json"))["seconds"].get<double>();
    CHECK(before > 0.0);
    options.resume = true;
    options.stop_after_steps = -1;
    const nlohmann::json summary = run_experiment(config, options);
    REQUIRE(summary["completed"].get<bool>());
    double train_seconds = 0;
    for (const auto& record : read_metrics(options.out_dir))
        if (record["phase"] == "train") train_seconds += record["seconds"].get<double>();
    // Both epochs, the first one timed by the stopped process.
    CHECK(summary["time_s"]["pretrain"].get<double>() == doctest::Approx(train_seconds));
    CHECK(summary["time_s"]["total"].get<double>() >= before + summary["time_s"]["finetune"].get<double>());
}

TEST_CASE("run: prune.baseline_cache trains a baseline once; a later run with the same training reuses it and ends "
          "bitwise where a run that trained its own does" * doctest::skip(!fashion_mnist_available())) {
    const std::string dir = scratch("baseline_cache");
    ExperimentConfig config = small_config(dir);
    config.prune.method = "taylor";  // scores from gradients on data: anything training left behind would show
    config.prune.keep = 0.5;
    config.prune.keep_tolerance = 0.05;  // Taylor's one global ranking of channels lands at 49.3%
    config.finetune.epochs = 1;
    auto run_into = [&](const std::string& name, const std::string& cache) {
        TrainOptions options;
        options.out_dir = dir + "/" + name;
        options.quiet = true;
        ExperimentConfig c = config;
        c.prune.baseline_cache = cache;
        return run_experiment(c, options);
    };
    const nlohmann::json own = run_into("own", "");
    const nlohmann::json filled = run_into("fills", dir + "/cache");
    const nlohmann::json reused = run_into("reuses", dir + "/cache");
    CHECK_FALSE(filled.contains("baseline_reused"));
    REQUIRE(reused.contains("baseline_reused"));
    CHECK(std::filesystem::exists(reused["baseline_reused"].get<std::string>() + "/key.toml"));
    for (const nlohmann::json* s : {&filled, &reused}) {
        CHECK((*s)["baseline"]["top1"] == own["baseline"]["top1"]);
        CHECK((*s)["compacted"]["top1"] == own["compacted"]["top1"]);
        CHECK((*s)["params_kept"] == own["params_kept"]);
    }
    Checkpoint a = load_checkpoint(dir + "/own/pruned.safetensors"), b = load_checkpoint(dir + "/reuses/pruned.safetensors");
    REQUIRE(a.tensors.size() == b.tensors.size());
    for (const auto& [name, entry] : a.tensors) CHECK_MESSAGE(entry.values == b.tensors.at(name).values, name);
    // The reusing run's record holds the training epochs it took over, with their time.
    int train_epochs = 0;
    for (const auto& record : read_metrics(dir + "/reuses")) train_epochs += record["phase"] == "train";
    CHECK(train_epochs == config.train.epochs);
    CHECK(reused["time_s"]["pretrain"].get<double>() == doctest::Approx(filled["time_s"]["pretrain"].get<double>()));
    // Other training (another seed) is another entry: trained, not reused.
    config.seed = 4;
    CHECK_FALSE(run_into("other_seed", dir + "/cache").contains("baseline_reused"));
}

TEST_CASE("train: build_model applies model.widths; a compacted model's widths override them") {
    ExperimentConfig config;
    config.model.name = "lenet";
    config.model.widths = {{"conv1", 32}, {"conv2", 64}, {"fc1", 256}};
    Dataset shape;
    shape.images = Tensor(Shape{1, 1, 28, 28}, Device::cpu);
    shape.labels = {0};
    shape.num_classes = 10;
    // conv 1->32 3x3 + BN, conv 32->64 3x3 + BN (convs without bias), fc 64·7·7 -> 256, fc 256 -> 10.
    const int64_t wide = 9 * 32 + 2 * 32 + 9 * 32 * 64 + 2 * 64 + (64 * 49 * 256 + 256) + (256 * 10 + 10);
    CHECK(build_model(config, shape, Device::cpu)->parameter_count() == wide);
    const int64_t narrower_fc1 = wide - (64 * 49 + 1 + 10) * (256 - 100);
    CHECK(build_model(config, shape, Device::cpu, {{"fc1", 100}})->parameter_count() == narrower_fc1);
    config.model.widths["conv9"] = 4;
    CHECK_THROWS_WITH_AS(build_model(config, shape, Device::cpu), doctest::Contains("no channel set 'conv9'"), Error);
}
