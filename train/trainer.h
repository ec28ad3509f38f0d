// Training and evaluation of one experiment: data, model, optimizer and schedule from the
// config; per-epoch metrics; atomic checkpoints that a later run resumes from exactly.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "data/dataset.h"
#include "data/split.h"
#include "data/transforms.h"
#include "nn/context.h"
#include "nn/models/model.h"
#include "nn/checkpoint.h"
#include "pruning/phase_hook.h"
#include "train/config.h"
#include "train/run_dir.h"

namespace sp {

struct TrainOptions {
    std::string out_dir;        // run directory ("" = a new runs/<experiment name>/<date-time>)
    bool resume = false;        // continue from out_dir/checkpoint.safetensors
    std::string device;         // "" = the config's
    int64_t stop_after_steps = -1;  // stop (with a checkpoint) after this many steps of this call; for tests
    bool quiet = false;         // no progress lines
};

// Trains, evaluates on the test set and returns the summary (also written to summary.json).
nlohmann::json train_experiment(const ExperimentConfig& config, const TrainOptions& options);

struct EvalResult {
    double loss = 0, top1 = 0, top5 = 0;  // mean loss, accuracies in percent
    int64_t images = 0;
};
// Evaluates `model` (in eval mode) on `data`, normalised with `norm`.
EvalResult evaluate(Context& ctx, Model& model, const Dataset& data, const Normalization& norm, int64_t batch_size);

// The training and test sets an experiment names (train = false: the test set).
Dataset load_experiment_data(const DataConfig& config, bool train);

// Everything a run takes from its data: the training subset and validation split chosen by
// the seed, the test set, and the normalisation from the training split alone.
struct ExperimentData {
    TrainValidationSplit split;
    Dataset test;
    Normalization norm;
};
ExperimentData prepare_experiment_data(const ExperimentConfig& config);

// Loads weights and BN statistics saved by a training run into an allocated model.
void load_model_weights(Model& model, const std::string& checkpoint_path);

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// One run: its device, directory, data, context and model, set up from the config.
struct Run {
    Run(const ExperimentConfig& config, const TrainOptions& options);
    // Wall time of the run: this process's, plus what earlier processes had spent up to their
    // last checkpoint when the run was resumed (elapsed.json). save_elapsed() records it.
    double seconds() const;
    void save_elapsed() const;

    ExperimentConfig config;
    TrainOptions options;
    Clock::time_point start;
    Device device = Device::cpu;
    std::unique_ptr<RunDir> dir;
    nlohmann::json environment;
    ExperimentData data;
    std::unique_ptr<Context> ctx;
    std::unique_ptr<Model> model;
    int64_t steps = 0;  // optimizer steps taken by this process, over all phases
    std::map<std::string, double> phase_seconds;  // training time per phase, resumed epochs included
    double earlier_seconds = 0;                    // of the processes before a resume
};

// The model a config names (with its model.widths), shaped by the dataset, allocated with the
// config's seed; `widths` rebuilds a compacted model.
std::unique_ptr<Model> build_model(const ExperimentConfig& config, const Dataset& shape_from, Device device,
                                   const std::map<std::string, int64_t>& widths = {});

// One training phase ("train", "finetune") of `model` with the settings `train`: per-epoch
// metrics, a checkpoint per phase (<phase>.checkpoint.safetensors; "train" writes
// checkpoint.safetensors) that a later call resumes from. Returns false when it stopped early
// (signal or step limit) after writing its checkpoint. `hook` (pruning/phase_hook.h): a method that
// prunes while it trains.
bool fit(Run& run, Model& model, const TrainConfig& train, const std::string& phase, PhaseHook* hook = nullptr);

// Weights and BN statistics with the config and the model description (its widths, the input
// normalisation `norm`), atomically. `weight_masks` (layer name -> 0/1 mask of its weight's
// shape, weight/kernel pruning): the layer's weight is saved as w ⊙ m, with the mask beside it.
void save_model(const std::string& path, Model& model, const ExperimentConfig& config, const Normalization& norm,
                const std::map<std::string, const Tensor*>& weight_masks = {});

// rows: objects with experiment, model, stage, params, macs, top1, top5.
void print_result_table(const nlohmann::json& rows);

// Set by SIGINT/SIGTERM: the trainer finishes the current step, writes a checkpoint and stops.
void install_stop_handlers();

// The numerics guard of fit(). Whether every gradient of `store` is finite, from one reduction
// of the flat gradient buffer into `partials` (scratch, reallocated as needed): a chunk's sum
// is finite only when each of its terms is (barring a float overflow of a chunk's sum, which
// only gradients near 1e36 reach).
bool gradients_finite(Context& ctx, ParameterStore& store, Tensor& partials);
// What is non-finite after a step went wrong, for its error message (copies to the host, so
// only after a hit): the input batch, parameter values, the first conv/linear output in
// execution order, and the parameters whose gradients hold a NaN/Inf.
std::string describe_nonfinite(Model& model, const Tensor& images, bool check_gradients);

// Bytes of one training checkpoint of `model` with the optimizer `train` names (weights, BN
// statistics, optimizer state, header): fit() checks the run directory's disk has room for it.
uint64_t training_checkpoint_bytes(Model& model, const TrainConfig& train);

}  // namespace sp
