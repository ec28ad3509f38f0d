// Experiment configuration: one TOML file per experiment (experiments/*.toml). Every key is
// declared once, in its section's table (train/config.cpp, pruning/settings.h; `spinprune config
// --keys` lists them) and validated: an unknown key, a wrong type or a value out of range is an
// error that names the file, the key, what was expected and what was found. Missing keys take
// the defaults of the structs below.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "pruning/constrained_rl.h"
#include "pruning/edropout.h"
#include "pruning/gibbs.h"

namespace sp {

struct DataConfig {
    std::string dataset = "fashion-mnist";  // fashion-mnist | cifar10 | cifar100
    std::string dir;                        // "" = the dataset's default location
    int64_t validation = 5000;              // images held out of the training set
    int64_t train_subset = 0;               // > 0: use only the first N training images (quick runs)
    bool augment = false;                   // random crop (pad 4) + horizontal flip
    bool normalize = true;                  // per-channel mean/std of the training set
};

struct ModelConfig {
    std::string name = "lenet";
    std::string shortcut = "A";  // residual shortcut option for ResNet-20/32/56/110: A | B
    // Channel-set name -> width, for a wider or narrower variant of the architecture
    // (`spinprune info` lists the resizable sets); absent sets keep their default width.
    std::map<std::string, int64_t> widths;
};

struct TrainConfig {
    int64_t epochs = 3;
    int64_t batch_size = 128;
    int64_t eval_batch_size = 500;
    std::string optimizer = "sgd";  // sgd | adam | adadelta
    double lr = 0.05;
    double momentum = 0.9;
    bool nesterov = false;
    double weight_decay = 5e-4;
    double rho = 0.9;                // adadelta
    double beta1 = 0.9, beta2 = 0.999;  // adam
    std::string schedule = "cosine";    // constant | step | multistep | cosine
    int64_t step_size = 30;             // step: epochs between decays
    std::vector<int64_t> milestones;    // multistep
    double gamma = 0.1;                 // step / multistep factor
    double min_lr = 0.0;                // cosine floor
    double warmup_epochs = 0.0;
    double label_smoothing = 0.0;
    int64_t checkpoint_every = 1;       // epochs
    // A step whose loss or gradients hold a NaN/Inf: "stop" (an error naming the step and the
    // layer; the last good checkpoint stays) or "skip" (no update; counted in the metrics).
    std::string on_nonfinite = "stop";
};

// [prune.scoring]: what the scoring methods that read data use (train/methods.h).
struct ScoringConfig {
    int64_t images = 640;
    bool post_relu = true;
    std::string criterion;  // "" = the method's own importance
};

// The prune stage of `spinprune run` (method "none": train and evaluate only). The keys every
// method shares are here; each method's own keys are its Options struct, read from its table
// [prune.<table>] (train/methods.h). What each key means: the tables (`spinprune config --keys`).
struct PruneConfig {
    std::string method = "none";
    std::string granularity = "filter";
    std::string budget = "params";
    double keep = 0.5;
    double keep_tolerance = kDefaultKeepTolerance;
    bool gate_after_bn = true;
    bool prune_residual_groups = false;
    int64_t round_to = 1;
    std::string baseline_checkpoint;
    std::string baseline_cache;
    bool train_baseline = false;
    std::vector<double> rates;
    std::string conv_rates;
    ScoringConfig scoring;       // [prune.scoring]
    EDropoutOptions edropout;    // [prune.edropout]
    GibbsOptions gibbs;          // [prune.gibbs]
    ConstrainedRlOptions rl;     // [prune.rl]
};

struct ExperimentConfig {
    std::string source;  // file it came from
    std::string name = "experiment";
    int64_t seed = 1;
    std::string device = "auto";  // auto | cpu | cuda
    bool deterministic = false;
    // CUDA convolutions and GEMMs: "tf32" (tensor cores, FP32 accumulation; PyTorch's default for
    // convolutions) or "fp32" (exact). The CPU backend always computes in FP32.
    std::string math = "tf32";
    DataConfig data;
    ModelConfig model;
    TrainConfig train;
    PruneConfig prune;
    TrainConfig finetune = default_finetune();  // same keys as [train]; epochs = 0: no fine-tuning

    static TrainConfig default_finetune() {
        TrainConfig t;
        t.epochs = 0;
        t.lr = 0.01;
        return t;
    }
};

// Loads and validates a config file; `overrides` are "section.key=value" strings (TOML
// values) applied on top, as from the command line's --set.
ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The same from TOML text (`source` names it in errors).
ExperimentConfig parse_config(const std::string& text, const std::string& source,
                              const std::vector<std::string>& overrides = {});

// A config spinprune wrote itself (a run's config.toml, the config in a checkpoint): keys that
// have moved since (renamed_config_keys()) are read at their new place. Anywhere else an old key
// is an error that names the new one.
ExperimentConfig load_saved_config(const std::string& path);
ExperimentConfig parse_saved_config(const std::string& text, const std::string& source,
                                    const std::vector<std::string>& overrides = {});
// Old key → its new name ("prune.members" → "prune.edropout.members").
const std::vector<std::pair<std::string, std::string>>& renamed_config_keys();

// The keys whose values differ between two configs, each as "key: before -> after", in reading
// order; keys that only say where files are (data.dir, prune.baseline_cache) are not compared,
// since they do not change what a run computes. Empty: the same experiment.
std::vector<std::string> config_changes(const ExperimentConfig& before, const ExperimentConfig& after);

// `spinprune config --keys`: every key with its type, default, range or choices and doc, by section.
std::string config_keys_text();

// The resolved config (every key, defaults included) as TOML text.
std::string to_toml(const ExperimentConfig& config);

// A published per-conv rate list in HRank's notation, "[r]*n+[r]+…", as one rate per conv;
// `where` names the source in errors (file and key).
std::vector<double> parse_rate_list(const std::string& text, const std::string& where);

}  // namespace sp
