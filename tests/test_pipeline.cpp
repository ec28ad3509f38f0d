// Accounting, baselines to a budget, and the train → prune → fine-tune → evaluate pipeline.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/idx.h"
#include "kernels/error.h"
#include "nn/layers.h"
#include "pruning/accounting.h"
#include "pruning/baselines.h"
#include "pruning/mask_space.h"
#include "train/config.h"
#include "train/methods.h"
#include "train/pipeline.h"

using namespace sp;

namespace {

std::unique_ptr<Model> allocated(const std::string& name, int64_t c, int64_t hw, uint64_t seed = 5) {
    auto m = make_model(name, c, hw, hw, 10);
    m->allocate(Device::cpu, seed);
    return m;
}

int64_t count_kept(const std::vector<float>& s) { return std::count(s.begin(), s.end(), 1.0f); }

}  // namespace

TEST_CASE("accounting: the dense state counts exactly the model's parameters and MACs") {
    for (const char* name : {"lenet", "resnet20", "resnet18", "vgg16", "alexnet", "squeezenet"}) {
        auto model = allocated(name, 3, 32);
        for (Granularity g : {Granularity::filter, Granularity::weight}) {
            MaskSpaceOptions o;
            o.granularity = g;
            MaskSpace space(*model, o);
            ModelAccount a = account(space, space.all_kept());
            CHECK_MESSAGE(a.params == model->parameter_count(), name);
            CHECK_MESSAGE(a.params_dense == model->parameter_count(), name);
            CHECK_MESSAGE(a.macs == model->macs_per_image(), name);
            CHECK(a.params_kept() == 1.0);
        }
    }
}

TEST_CASE("accounting: pruned filters shrink the layer and its consumer (hand count, lenet 1x28x28)") {
    // lenet: conv1 1->16 3x3 (no bias) + BN, pool, conv2 16->32 3x3 + BN, pool, fc1 32·7·7 -> 64 (+bias), fc2 64 -> 10.
    auto model = allocated("lenet", 1, 28);
    MaskSpace space(*model, MaskSpaceOptions{});
    std::vector<float> state = space.all_kept();
    // Prune 6 of conv1's 16 filters, 12 of conv2's 32, 24 of fc1's 64 neurons.
    int pruned[3] = {6, 12, 24};
    REQUIRE(space.segments().size() == 3);
    for (size_t s = 0; s < 3; ++s)
        for (int i = 0; i < pruned[s]; ++i) state[static_cast<size_t>(space.segments()[s].offset + i)] = 0.0f;
    const int64_t c1 = 10, c2 = 20, f1 = 40;
    const int64_t params = (c1 * 1 * 9 + 2 * c1) + (c2 * c1 * 9 + 2 * c2) + (f1 * c2 * 49 + f1) + (10 * f1 + 10);
    const int64_t macs = c1 * 9 * 28 * 28 + c2 * c1 * 9 * 14 * 14 + f1 * c2 * 49 + 10 * f1;
    ModelAccount a = account(space, state);
    CHECK(a.params == params);
    CHECK(a.macs == macs);
    CHECK(a.layers[1].in_kept == c1);
    CHECK(a.layers[2].in_kept == c2 * 49);
}

TEST_CASE("baselines: every method meets parameter and MAC targets within 1%") {
    auto lenet = allocated("lenet", 1, 28);
    auto resnet = allocated("resnet20", 3, 16);
    struct Case { Model* model; const char* method; Granularity g; };
    for (const Case& c : {Case{lenet.get(), "l1-filter", Granularity::filter},
                          Case{lenet.get(), "random", Granularity::filter}, Case{lenet.get(), "magnitude", Granularity::weight},
                          Case{lenet.get(), "magnitude-global", Granularity::weight}, Case{resnet.get(), "l1-filter", Granularity::filter},
                          Case{resnet.get(), "bn-scale", Granularity::filter}, Case{resnet.get(), "magnitude-global", Granularity::weight},
                          Case{resnet.get(), "random", Granularity::kernel}}) {
        MaskSpaceOptions o;
        o.granularity = c.g;
        MaskSpace space(*c.model, o);
        for (BudgetKind kind : {BudgetKind::params, BudgetKind::macs}) {
            const double keep = c.g == Granularity::filter && c.model == lenet.get() ? 0.6 : 0.5;
            Context ctx(Device::cpu, 1);
            std::vector<float> state = scored_state(*find_method(c.method), ScoreInput{ctx, space, 11}, PruneTarget{kind, keep});
            ModelAccount a = account(space, state);
            const double achieved = kept_fraction(a, kind);
            CHECK_MESSAGE(std::fabs(achieved / keep - 1.0) <= 0.01, c.method << " on " << c.model->name() << ": " << achieved);
            // No segment emptied.
            for (const MaskSegment& seg : space.segments()) {
                int64_t k = 0;
                for (int64_t i = 0; i < seg.size; ++i) k += state[static_cast<size_t>(seg.offset + i)] != 0.0f;
                CHECK(k >= seg.min_kept);
            }
        }
    }
}

TEST_CASE("baselines: scores follow their criterion; unreachable targets are refused with the reason") {
    auto model = allocated("lenet", 1, 28);
    MaskSpace space(*model, MaskSpaceOptions{});
    Context ctx(Device::cpu, 1);
    // l1-filter keeps, in each layer, the filters of largest L1 norm.
    std::vector<float> scores = importance_scores(*find_method("l1-filter")->importance, ScoreInput{ctx, space, 1}, "l1-filter");
    std::vector<float> state = select_to_target(space, scores, Selection::per_segment, PruneTarget{BudgetKind::params, 0.6});
    for (const MaskSegment& seg : space.segments()) {
        float min_kept = 1e30f, max_pruned = -1e30f;
        for (int64_t i = 0; i < seg.size; ++i) {
            float sc = scores[static_cast<size_t>(seg.offset + i)];
            if (state[static_cast<size_t>(seg.offset + i)] != 0.0f) min_kept = std::min(min_kept, sc);
            else max_pruned = std::max(max_pruned, sc);
        }
        CHECK(min_kept >= max_pruned);
    }
    CHECK(count_kept(state) < space.size());
    // The classifier's 650 parameters and one channel per layer cannot go: 0.01% is out of reach.
    CHECK_THROWS_WITH_AS(scored_state(*find_method("l1-filter"), ScoreInput{ctx, space, 1}, PruneTarget{BudgetKind::params, 0.0001}),
                         doctest::Contains("cannot keep as little as"), Error);
    CHECK_THROWS_WITH_AS(scored_state(*find_method("magnitude"), ScoreInput{ctx, space, 1}, PruneTarget{BudgetKind::params, 0.5}),
                         doctest::Contains("needs granularity = \"weight\""), Error);
    // bn-scale ranks only the channels with a batch norm (conv1, conv2): a conv2 channel carries
    // 3% of the parameters, too coarse to land within 1% of 40%; a looser tolerance takes the closest.
    const PruneTarget strict{BudgetKind::params, 0.4}, loose{BudgetKind::params, 0.4, 0.1};
    CHECK_THROWS_WITH_AS(scored_state(*find_method("bn-scale"), ScoreInput{ctx, space, 1}, strict),
                         doctest::Contains("or a larger prune.keep_tolerance"), Error);
    const std::vector<float> coarse = scored_state(*find_method("bn-scale"), ScoreInput{ctx, space, 1}, loose);
    const double kept = kept_fraction(account(space, coarse), BudgetKind::params);
    CHECK(std::fabs(kept / 0.4 - 1.0) > 0.01);
    CHECK(std::fabs(kept / 0.4 - 1.0) <= 0.1);
}

TEST_CASE("pipeline: train, prune with L1 filters, fine-tune, compact — on a Fashion-MNIST subset" * doctest::skip(!fashion_mnist_available())) {
    std::string dir = std::filesystem::temp_directory_path().string() + "/spinprune_pipeline_" + std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/p.toml") << "name = \"p\"\nseed = 2\ndevice = \"cpu\"\n"
                                      "[data]\ntrain_subset = 1200\nvalidation = 200\n"
                                      "[train]\nepochs = 1\nbatch_size = 50\neval_batch_size = 1000\n"
                                      "[prune]\nmethod = \"l1-filter\"\ngranularity = \"filter\"\nbudget = \"params\"\nkeep = 0.6\n"
                                      "[finetune]\nepochs = 1\nbatch_size = 50\nlr = 0.01\neval_batch_size = 1000\n";
    ExperimentConfig config = load_config(dir + "/p.toml");
    TrainOptions options;
    options.out_dir = dir + "/run";
    options.quiet = true;
    nlohmann::json s = run_experiment(config, options);
    for (const char* key : {"experiment", "dataset", "model", "method", "seed", "device", "baseline", "pruned", "params_kept",
                            "macs_kept", "latency_ms", "time_s", "compacted"})
        CHECK_MESSAGE(s.contains(key), key);
    CHECK(std::fabs(s["params_kept"].get<double>() / 0.6 - 1.0) <= 0.01);
    // The compacted network is the masked one, physically smaller.
    CHECK(s["compacted"]["params"].get<int64_t>() == s["pruned"]["params"].get<int64_t>());
    CHECK(s["compacted"]["macs"].get<int64_t>() == s["pruned"]["macs"].get<int64_t>());
    CHECK(std::fabs(s["compacted"]["top1"].get<double>() - s["pruned"]["top1"].get<double>()) <= 0.02);  // at most 2 of 10000 images
    CHECK(s["pruned"]["params"].get<int64_t>() < s["baseline"]["params"].get<int64_t>());
    CHECK(s["latency_ms"]["dense"]["b128"].get<double>() > 0.0);
    for (const char* file : {"summary.json", "mask.safetensors", "pruned.safetensors", "baseline.safetensors"})
        CHECK_MESSAGE(std::filesystem::exists(options.out_dir + "/" + file), file);
}

TEST_CASE("pipeline: energy-aware scores prune each layer at its configured rate" * doctest::skip(!fashion_mnist_available())) {
    std::string dir = std::filesystem::temp_directory_path().string() + "/spinprune_energy_" + std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/e.toml") << "name = \"e\"\nseed = 3\ndevice = \"cpu\"\n"
                                      "[data]\ntrain_subset = 700\nvalidation = 200\n"
                                      "[train]\nepochs = 1\nbatch_size = 50\neval_batch_size = 1000\n"
                                      "[prune]\nmethod = \"energy-aware\"\nrates = [0.5, 0.25, 0.75]\n[prune.scoring]\nimages = 100\n"
                                      "[finetune]\nepochs = 0\n";
    TrainOptions options;
    options.out_dir = dir + "/run";
    options.quiet = true;
    nlohmann::json s = run_experiment(load_config(dir + "/e.toml"), options);
    // lenet's prunable sets: conv1 (16), conv2 (32), fc1 (64).
    const auto& layers = s["layers"];
    REQUIRE(layers.size() == 4);
    CHECK(layers[0]["out"].get<int64_t>() == 8);
    CHECK(layers[1]["out"].get<int64_t>() == 24);
    CHECK(layers[2]["out"].get<int64_t>() == 16);
    CHECK(layers[3]["out"].get<int64_t>() == 10);
    CHECK(s["compacted"]["params"].get<int64_t>() == s["pruned"]["params"].get<int64_t>());
}
