// Config key tables: every key declared once drives parsing, the resolved config.toml and
// `spinprune config --keys`; keys that moved into a method's table are an error naming the new
// key, and are read at their new place in configs spinprune saved before the move (resume).
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "data/idx.h"
#include "kernels/error.h"
#include "tests/harness.h"
#include "train/config.h"
#include "train/methods.h"
#include "train/trainer.h"

using namespace sp;

namespace {

// The resolved config.toml that spinprune wrote for experiments/fashion_mnist_lenet.toml before
// the method keys moved into their tables (the EDropout keys and the scoring keys in [prune]).
const char* kSavedBeforeTheMove = R"(# resolved config of experiments/fashion_mnist_lenet.toml
deterministic = false
device = "auto"
math = "tf32"
name = "fashion_mnist_lenet"
seed = 1

[data]
augment = false
dataset = "fashion-mnist"
dir = ""
normalize = true
train_subset = 0
validation = 5000

[finetune]
batch_size = 128
beta1 = 0.90000000000000002
beta2 = 0.999
checkpoint_every = 1
epochs = 1
eval_batch_size = 500
gamma = 0.10000000000000001
label_smoothing = 0.0
lr = 0.01
milestones = []
min_lr = 0.0
momentum = 0.90000000000000002
nesterov = false
on_nonfinite = "stop"
optimizer = "sgd"
rho = 0.90000000000000002
schedule = "cosine"
step_size = 30
warmup_epochs = 0.0
weight_decay = 0.00050000000000000001

[model]
name = "lenet"
shortcut = "A"

[prune]
baseline_checkpoint = ""
budget = "params"
budget_weight = 0.0
conv_rates = ""
criterion = ""
crossover = 0.90000000000000002
energy = "margin"
eval_images = 32
gate_after_bn = true
granularity = "filter"
ising_keep_target = 0.5
ising_penalty = 100.0
keep = 0.5
member_batch_statistics = false
members = 8
method = "edropout"
min_epochs = 2
min_generations = 400
mutation_rate = 0.10000000000000001
patience = 50
post_relu = true
prune_residual_groups = false
rates = []
round_to = 1
rule = "reference"
score_images = 640
train_baseline = true

    [prune.gibbs]
    anneal_epochs = 128
    beta_end = 10000.0
    beta_start = 1.0
    chain_beta_ratio = 1.0
    chain_images = 0
    chains = 1
    filter_coupling = 1.0
    fused_apply = true
    kernel_coupling = 0.01
    p = 0.90000000000000002
    sweeps = 50

    [prune.rl]
    batched = true
    clip = 0.20000000000000001
    cost = "budget"
    dual_init = 0.0
    dual_lr = 1.0
    entropy_coef = 0.0
    environment = "layer"
    episodes = 32
    epochs = 10
    eval_images = 500
    gamma = 0.98999999999999999
    grad_clip = 0.5
    hidden = 32
    init_log_std = -0.5
    lambda_cost = 1.0
    lambda_reward = 0.94999999999999996
    latency_batch = 1
    lr = 0.00029999999999999997
    max_images_per_pass = 0
    max_prune = 0.90000000000000002
    minibatch = 64
    reward = "accuracy"
    updates = 40

[train]
batch_size = 128
beta1 = 0.90000000000000002
beta2 = 0.999
checkpoint_every = 1
epochs = 3
eval_batch_size = 500
gamma = 0.10000000000000001
label_smoothing = 0.0
lr = 0.050000000000000003
milestones = []
min_lr = 0.0
momentum = 0.90000000000000002
nesterov = false
on_nonfinite = "stop"
optimizer = "sgd"
rho = 0.90000000000000002
schedule = "cosine"
step_size = 30
warmup_epochs = 0.0
weight_decay = 0.00050000000000000001)";

std::string body(const std::string& resolved) { return resolved.substr(resolved.find('\n') + 1); }

}  // namespace

TEST_CASE("config keys: every table round-trips through the resolved config; --keys lists every key with its default") {
    for (const auto& entry : std::filesystem::directory_iterator("experiments")) {
        if (entry.path().extension() != ".toml") continue;
        CAPTURE(entry.path().string());
        const ExperimentConfig c = load_config(entry.path().string());
        CHECK(body(to_toml(parse_config(to_toml(c), "resolved"))) == body(to_toml(c)));
    }
    const std::string keys = config_keys_text();
    for (const char* line : {"[prune.edropout]\nmembers = 8 ", "[prune.gibbs]\np = 0.9 ", "[prune.rl]\nenvironment = \"layer\"",
                             "[prune.scoring]\nimages = 640 ", "[finetune]\nepochs = 0 ", "# top level\nname = \"experiment\""})
        CHECK_MESSAGE(keys.find(line) != std::string::npos, line);
    CHECK(keys.find("chain_beta_ratio = 1 ") != std::string::npos);
    CHECK(keys.find("# [1, 1e+06]: chain k draws at beta / chain_beta_ratio^k") != std::string::npos);
    for (const PruneMethod& m : prune_methods()) {
        if (!m.settings) continue;
        CHECK(keys.find(std::string("[prune.") + m.table + "]") != std::string::npos);
        for (const Setting& s : m.settings().settings())
            CHECK_MESSAGE(keys.find("\n" + s.name + " = ") != std::string::npos, m.name << "." << s.name);
    }
}

TEST_CASE("config keys: a moved key is an error that names its new place, in a file or in --set") {
    REQUIRE(renamed_config_keys().size() >= 16);
    for (const auto& [from, to] : renamed_config_keys()) {
        CAPTURE(from);
        const std::string key = from.substr(from.find('.') + 1);
        const std::string value = key == "rule" ? "\"textbook\"" : key == "energy" || key == "criterion" ? "\"margin\"" : key == "member_batch_statistics" || key == "post_relu" ? "true" : "5";
        const std::string error = test::error_of([&] { parse_config("[prune]\n" + key + " = " + value + "\n", "old.toml"); });
        CHECK(error.find("old.toml: key '" + from + "' is now ") != std::string::npos);
        CHECK(error.find("'" + to + "'") != std::string::npos);
        const std::string set_error = test::error_of([&] { parse_config("", "cli", {from + "=" + value}); });
        CHECK(set_error.find("key '" + from + "' is now ") != std::string::npos);
    }
    // The new places take the values.
    const ExperimentConfig c = parse_config("[prune.edropout]\nmembers = 6\nenergy = \"ising\"\n[prune.scoring]\nimages = 100\n", "new.toml");
    CHECK(c.prune.edropout.evolution.members == 6);
    CHECK(c.prune.edropout.ising);
    CHECK(c.prune.scoring.images == 100);
}

TEST_CASE("config keys: a config saved before the keys moved reads them at their new place") {
    const ExperimentConfig saved = parse_saved_config(kSavedBeforeTheMove, "run/config.toml");
    CHECK(body(to_toml(saved)) == body(to_toml(load_config("experiments/fashion_mnist_lenet.toml"))));
    CHECK(saved.prune.edropout.eval_images == 32);
    CHECK(saved.prune.edropout.min_generations == 400);
    // The old [prune] energy scored EDropout's members and Gibbs' chains; "ising" only the former.
    const ExperimentConfig ising = parse_saved_config("[prune]\nenergy = \"ising\"\nmembers = 5\n", "saved");
    CHECK(ising.prune.edropout.ising);
    CHECK(ising.prune.edropout.evolution.members == 5);
    CHECK(ising.prune.gibbs.chain_energy == EnergyKind::margin);
    const ExperimentConfig error = parse_saved_config("[prune]\nenergy = \"error\"\n", "saved");
    CHECK(error.prune.gibbs.chain_energy == EnergyKind::error);
    // A key given at its new place wins over the old one (e.g. from --set).
    CHECK(parse_saved_config("[prune]\nmembers = 5\n", "saved", {"prune.edropout.members=7"}).prune.edropout.evolution.members == 7);
    // Outside saved configs the old text is refused.
    CHECK_THROWS_WITH_AS(parse_config(kSavedBeforeTheMove, "x.toml"), doctest::Contains("is now"), Error);
}

TEST_CASE("config keys: config_changes names every key that differs, but not where files are") {
    const ExperimentConfig c = load_config("experiments/fashion_mnist_lenet.toml");
    CHECK(config_changes(c, c).empty());
    // A config saved before the keys moved is the same experiment.
    CHECK(config_changes(parse_saved_config(kSavedBeforeTheMove, "run/config.toml"), c).empty());
    const ExperimentConfig changed =
        load_config("experiments/fashion_mnist_lenet.toml", {"train.lr=0.1", "prune.edropout.eval_images=16", "seed=2"});
    const std::vector<std::string> expected = {"seed: 1 -> 2", "train.lr: 0.05 -> 0.1", "prune.edropout.eval_images: 32 -> 16"};
    CHECK(config_changes(c, changed) == expected);
    // Keys that say where files are do not change the experiment.
    CHECK(config_changes(c, load_config("experiments/fashion_mnist_lenet.toml",
                                        {"data.dir=\"elsewhere\"", "prune.baseline_cache=\"cache\""}))
              .empty());
}

TEST_CASE("config keys: prune.edropout.compact_members needs masks that gate after BN") {
    const std::string text = "[prune]\nmethod = \"edropout\"\n[prune.edropout]\ncompact_members = true\n";
    CHECK(parse_config(text, "c.toml").prune.edropout.evaluation.compact_members);
    const std::string error = test::error_of([&] { parse_config(text, "c.toml", {"prune.gate_after_bn=false"}); });
    CHECK(error.find("c.toml: key 'prune.edropout.compact_members'") != std::string::npos);
    CHECK(error.find("prune.gate_after_bn = true") != std::string::npos);
}

TEST_CASE("config keys: --resume continues a run whose config.toml predates the move" * doctest::skip(!fashion_mnist_available())) {
    const std::string dir = std::filesystem::temp_directory_path().string() + "/spinprune_keys_" + std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string experiment = "name = \"moved\"\nseed = 3\ndevice = \"cpu\"\n[data]\ntrain_subset = 600\nvalidation = 100\n"
                                   "[train]\nepochs = 1\nbatch_size = 50\neval_batch_size = 1000\n";
    const ExperimentConfig config = parse_config(experiment, dir + "/moved.toml");
    TrainOptions options;
    options.out_dir = dir + "/run";
    options.quiet = true;
    options.stop_after_steps = 3;
    CHECK_FALSE(train_experiment(config, options)["completed"].get<bool>());
    // The run's config.toml as spinprune wrote it before the move: EDropout's and the scoring
    // keys under [prune] (at their defaults here).
    auto write_saved = [&](const std::string& prune_keys) {
        std::ofstream(options.out_dir + "/config.toml")
            << "# resolved config of " << dir << "/moved.toml\n" << experiment
            << "[prune]\nmembers = " << prune_keys << "\nenergy = \"margin\"\nscore_images = 640\ncriterion = \"\"\n";
    };
    write_saved("8");
    options.resume = true;
    options.stop_after_steps = -1;
    CHECK(train_experiment(config, options)["completed"].get<bool>());
    // And the moved values count: a saved run with other EDropout members is another experiment.
    write_saved("6");
    CHECK_THROWS_WITH_AS(train_experiment(config, options), doctest::Contains("the config differs"), Error);
    std::filesystem::remove_all(dir);
}
