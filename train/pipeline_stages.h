// The stages of `spinprune run` that every pruning method shares (train/pipeline.cpp); the
// methods' own stages (train/pipeline_<method>.cpp) are built from them and registered in
// train/method_list.inc.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pruning/mask_space.h"
#include "train/config.h"
#include "train/trainer.h"

namespace sp::stages {

using json = nlohmann::json;

// top1, top5 and loss of `model` on the run's test set.
json evaluation(Run& run, Model& model, const TrainConfig& t);
MaskSpaceOptions mask_options(const PruneConfig& p);
json cost_json(int64_t params, int64_t macs);
// Latency in ms at batch 1 and 128 ({"b1", "b128"}).
json latency_json(Run& run, Model& model);

// For methods that train and prune at once (prune.train_baseline): trains the same network and
// schedule without masks or search and records it as summary["baseline"]. False when training
// stopped early (summary["completed"] is then false).
bool train_reference_baseline(Run& run, json& summary);

// The per-segment rates of the prune stage: prune.rates, or prune.conv_rates mapped onto `space`
// (pruning/rate_lists.h); empty: prune to the budget.
std::vector<double> segment_rates(const ExperimentConfig& config, MaskSpace& space);

// The pruned state of the prune stage: mask.safetensors when the run saved one, else the
// configured method's (a scoring or searching one) on the trained model.
std::vector<float> pruned_state(Run& run, MaskSpace& space);
void save_mask(Run& run, const MaskSpace& space, const std::vector<float>& state);

// Applies the pruned `state` of `space` to the trained `model` and fills the summary's pruning
// fields (masked and compacted evaluations, accounting, latency); with `finetune`, the masked
// model is fine-tuned first; with prune.round_to > 1 the kept widths are rounded up first.
// summary["completed"] is false when fine-tuning stopped early.
json prune_and_evaluate(Run& run, Model& model, json summary, bool finetune, MaskSpace& space,
                        std::vector<float> state, double search_s);
// prune_and_evaluate with fine-tuning, then the fine-tuning time in summary["time_s"].
json prune_and_finetune(Run& run, Model& model, json summary, MaskSpace& space, std::vector<float> state,
                        double search_s);

}  // namespace sp::stages
