// Budget-constrained RL pruning (docs/methods.md, constrained-rl): the pruning environments and the
// PPO-Lagrangian search over them (pruning/ppo.h).
//   layer-wise environment (default): one step per segment of the mask space (a prunable
//     channel set at filter granularity, a layer at weight granularity); the action u ∈ ℝ prunes
//     the fraction max_prune·sigmoid(u) of the segment, its lowest-magnitude units (L1 norm of
//     the filter / |w|), as select_by_rates() does;
//   filter-wise environment (filter granularity): one step per channel set; the action has one
//     keep value per filter of the set, a filter is kept when its value is > 0 (every set keeps
//     at least its min_kept units, the highest-magnitude ones).
// The observation of a step: (step / L, the layer's C_in, C_out, kernel, stride and padding each
// over its largest value in the model, the segment's share of the units, the mean pruned
// fraction of the previous steps). Reward and cost are paid at an episode's last step:
// reward = accuracy (or −margin / −cross-entropy energy) of the masked model on held-out images,
// cost = the kept fraction of the dense model's parameters, MACs, or measured latency.
// An update's episodes (and the policy's deterministic episode) are one population: their masks
// are evaluated together by the PopulationEvaluator (or one by one, for comparison).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/context.h"
#include "nn/tensor.h"
#include "pruning/mask_space.h"
#include "pruning/population.h"
#include "pruning/ppo.h"
#include "pruning/settings.h"

namespace sp {

enum class RlEnvironmentKind { layer, filter };
enum class RlCostKind { params, macs, latency };
enum class RlRewardKind { accuracy, margin, cross_entropy };
RlCostKind rl_cost_from_name(const std::string& name);  // "params" | "macs" | "latency"

// The unit magnitudes the environments prune by: L1 norm of each filter (filter granularity) or
// |w| (weight granularity).
std::vector<float> rl_unit_scores(Context& ctx, MaskSpace& space);

// Defaults and ranges are those of constrained_rl_settings(), the [prune.rl] keys.
struct ConstrainedRlOptions {
    RlEnvironmentKind environment = RlEnvironmentKind::layer;
    RlCostKind cost = RlCostKind::params;  // [prune.rl] cost = "budget": prune.budget's (params or MACs)
    RlRewardKind reward = RlRewardKind::accuracy;
    double budget = 0.5;          // the largest kept fraction of the cost (α): prune.keep
    int64_t eval_images = 500;    // held-out images every episode is scored on (the pipeline loads them)
    int64_t episodes = 32;        // per update
    int64_t updates = 40;
    bool batched = true;          // one population per update (else one forward per episode)
    double max_prune = 0.9;       // layer-wise: the largest pruned fraction of one segment
    int64_t latency_batch = 1;    // cost = latency: images per timed forward
    int64_t max_images_per_pass = 0;  // PopulationOptions::max_images_per_pass
    PpoOptions ppo;
};

// [prune.rl]: every key of ConstrainedRlOptions a config sets (not the budget, nor the PPO seed).
const SettingTable<ConstrainedRlOptions>& constrained_rl_settings();

class PruningEnvironment {
public:
    static constexpr int64_t kStateDim = 8;

    // `images` (B, C, H, W) and `labels` (B) on ctx's device are the held-out images every
    // episode is scored on. The model's weights are read now (unit magnitudes).
    PruningEnvironment(Context& ctx, MaskSpace& space, const ConstrainedRlOptions& options, const Tensor& images,
                       const Tensor& labels);

    int64_t steps() const { return static_cast<int64_t>(space_.segments().size()); }  // L
    int64_t action_dim() const;                  // 1 (layer) or the largest segment (filter)
    int64_t action_dims(int64_t step) const;     // components step `step` uses
    // The observation of `step` (kStateDim floats) after steps whose pruned fractions sum to
    // `pruned_sum`.
    void observe(int64_t step, double pruned_sum, float* out) const;
    // The fraction of step's segment that `action` (action_dim floats) prunes, before repair.
    double pruned_fraction(int64_t step, const float* action) const;
    // The mask state (D) of one episode's actions (L, action_dim).
    std::vector<float> episode_state(const float* actions) const;

    // Kept fraction of the budgeted quantity under `state` (D, 0/1).
    double cost(const std::vector<float>& state);
    // Rewards of P states (P·D floats): one batched population pass, or one forward per state.
    std::vector<double> rewards(const std::vector<float>& states, int64_t members, bool batched);

    const ConstrainedRlOptions& options() const { return options_; }
    MaskSpace& space() { return space_; }

private:
    Context& ctx_;
    MaskSpace& space_;
    ConstrainedRlOptions options_;
    const Tensor& images_;
    const Tensor& labels_;
    PopulationEvaluator evaluator_;
    std::vector<float> scores_;                // unit magnitudes (D)
    std::vector<std::array<float, 6>> layer_;  // per step: C_in, C_out, kernel, stride, padding, unit share (normalised)
    double dense_latency_ms_ = 0.0;
};

struct RlSearchResult {
    std::vector<float> state;   // the best feasible episode's mask (D)
    double reward = 0.0, cost = 0.0;
    bool feasible = false;      // false: no episode met the budget; `state` is the cheapest one
    int64_t episodes = 0;       // evaluated, the policy's deterministic ones included
    double search_s = 0.0, evaluation_s = 0.0;
};

// The PPO-Lagrangian search: options.updates rollouts of options.episodes episodes each.
// `on_update` receives one JSON record per update (mean reward, mean cost vs budget, the dual,
// entropy, KL, the best feasible episode so far, timings).
RlSearchResult constrained_rl_search(PruningEnvironment& env,
                                     const std::function<void(const nlohmann::json&)>& on_update = {});

}  // namespace sp
