// EDropout (energy-based population pruning, docs/methods.md, edropout): during training, every
// mini-batch runs one generation of binary differential evolution over P masks of filter and
// neuron units — trials made on the device, their energies computed in one batched pass by the
// PopulationEvaluator, selection — and the training step then runs with the best mask applied
// (dropped units keep their weights; their gradients are zero). After a minimum number of
// epochs the search stops once the best energy has not changed for `patience` generations (and
// at least `min_generations` ran); the best mask then stays applied for good.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <nlohmann/json.hpp>

#include "nn/checkpoint.h"
#include "pruning/evolution.h"
#include "pruning/mask_space.h"
#include "pruning/phase_hook.h"
#include "pruning/population.h"
#include "pruning/settings.h"
#include "pruning/state_energy.h"

namespace sp {

// Defaults and ranges are those of edropout_settings(), the [prune.edropout] keys.
struct EDropoutOptions {
    EvolutionOptions evolution;
    PopulationOptions evaluation;     // energy kind, BN statistics, images per pass
    // The search may stop only from this epoch on; -1: half of the training phase's epochs, which
    // `spinprune run` resolves (EDropoutSearch itself takes -1 as no minimum).
    int64_t min_epochs = -1;
    int64_t patience = 50;            // generations without a change of the best energy
    int64_t min_generations = 1000;   // and at least this many generations in all
    int64_t eval_images = 0;          // energies from the batch's first images only (0 = all)
    // The Ising energy of the state instead of the batch's logits (evaluation.energy unused);
    // its couplings are recomputed at the first generation of every epoch.
    bool ising = false;
    IsingOptions ising_options;
    // Budget term λ · max(cost kept − budget.keep, 0) added to every energy (0 = none).
    double budget_weight = 0;
    PruneTarget budget;               // from prune.budget and prune.keep
};

// [prune.edropout]: every key of EDropoutOptions a config sets (not the budget's target).
const SettingTable<EDropoutOptions>& edropout_settings();

// The search is the training phase's hook (pruning/phase_hook.h).
class EDropoutSearch : public PhaseHook {
public:
    EDropoutSearch(MaskSpace& space, EDropoutOptions options, Context& ctx);

    // One generation on this batch (the first call initialises and evaluates the members), then
    // the best state is attached to the model for the training step. After convergence: only
    // attaches the final state.
    void before_step(Context& ctx, const Tensor& images, const Tensor& labels, int64_t epoch) override;

    bool converged() const { return converged_; }
    int64_t generations() const { return generations_; }
    const Tensor& best_state() const { return best_; }  // (D) on the device
    std::vector<float> best_state_host() const { return best_.to_host(); }
    double search_seconds() const { return search_seconds_; }  // in before_step, host clock

    // Per-epoch log fields (best/mean energy, diversity, acceptance, kept fractions), and the
    // epoch's acceptance counters reset.
    nlohmann::json epoch_log(Context& ctx) override;

    // Resume: the population, its energies and the search counters.
    void save(std::vector<std::pair<std::string, Tensor>>& tensors, std::map<std::string, std::string>& meta) const override;
    void restore(Context& ctx, const Checkpoint& ck) override;

private:
    // energies_ of `population` (P, D): the data energy on the batch, or the Ising energy, plus
    // the budget term.
    void evaluate(Context& ctx, const Tensor& population, const Tensor& images, const Tensor& labels);

    MaskSpace& space_;
    EDropoutOptions options_;
    Evolution evolution_;
    PopulationEvaluator evaluator_;
    std::unique_ptr<IsingEnergy> ising_;
    std::unique_ptr<BudgetEnergy> budget_;
    int64_t coupling_epoch_ = -1;  // the epoch whose first batch set the Ising couplings
    Tensor trials_, members_, energies_, best_;  // (P, D), (P, D), (P), (D)
    uint64_t seed_;
    bool initialised_ = false, converged_ = false;
    int64_t generations_ = 0, unchanged_ = 0;
    float last_best_ = 0;
    double accepted_sum_ = 0;
    int64_t epoch_generations_ = 0;
    double search_seconds_ = 0;
};

}  // namespace sp
