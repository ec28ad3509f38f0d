// Training and evaluation of one experiment: data, model, optimizer and schedule from the
// config; per-epoch metrics; atomic checkpoints that a later run resumes from exactly.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "data/dataset.h"
#include "data/split.h"
#include "data/transforms.h"
#include "nn/context.h"
#include "nn/models/model.h"
#include "train/config.h"

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

// Set by SIGINT/SIGTERM: the trainer finishes the current step, writes a checkpoint and stops.
void install_stop_handlers();

}  // namespace sp
