// `spinprune run`: what an experiment config says, end to end — train (or load) the baseline,
// prune it with the configured method to the configured budget, fine-tune, evaluate the
// baseline, masked and compacted networks, measure their latency, write summary.json.
// Every stage resumes: the baseline and fine-tuning from their checkpoints, the prune stage
// from the mask it saved (mask.safetensors).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "train/config.h"
#include "train/trainer.h"

namespace sp {

nlohmann::json run_experiment(const ExperimentConfig& config, const TrainOptions& options);

// `spinprune prune`: the prune stage alone on a trained checkpoint (no fine-tuning): writes the
// mask, the compacted model (filter granularity) and a summary into options.out_dir.
nlohmann::json prune_checkpoint(const ExperimentConfig& config, const std::string& checkpoint, const TrainOptions& options);

}  // namespace sp
