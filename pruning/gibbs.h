// Gibbs pruning (docs/methods.md, gibbs): masks drawn from p(x) ∝ exp(−β H(x)) per layer, spins
// x = 2m − 1 per weight, Q_p the p-th percentile (linear interpolation) of a per-layer statistic:
//   unstructured: P(keep_i) = σ(β (w_i² − Q_p)), Q_p over w² (H = Σ (Q_p − w_i²) m_i);
//   kernel:       H = Σ (Q_p − w_i²) x_i − c Σ_{i≠j same kernel} x_i x_j (ordered pairs), Q_p over the
//                 per-kernel mean w²; every kernel drawn exactly from its 2^area configurations;
//   filter:       the kernel Hamiltonian with Q_p over the per-filter mean w², plus −c S_A S_B per
//                 filter (S_A, S_B: spin sums of its two halves of input channels); chromatic Gibbs:
//                 from the magnitude decision, `sweeps` times draw half A given S_B, then B given S_A
//                 (each half's kernels exactly, as above) — the authors' code.
// One CPU reference (below, and pruning/cpu/gibbs.cpp) and one CUDA path (pruning/cuda/gibbs.cpp
// over kernels/gibbs.h) behind gibbs_draw (pruning/ops.h), which give the same masks bit for bit
// for the same key. GibbsTraining draws a new mask for every pruned layer before every training step.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/buffer.h"
#include "nn/checkpoint.h"
#include "nn/context.h"
#include "nn/tensor.h"
#include "pruning/mask_space.h"
#include "pruning/ops.h"
#include "pruning/phase_hook.h"
#include "pruning/population.h"
#include "pruning/settings.h"

namespace sp {

// GibbsHamiltonian, GibbsLayerShape, GibbsParams and the draw itself, gibbs_draw (either device),
// are declared with the pruning kernels (pruning/ops.h, pruning/kernel_list.inc).
// weight → unstructured, kernel → kernel, filter → filter.
GibbsHamiltonian gibbs_hamiltonian_for(Granularity g);
const char* gibbs_hamiltonian_name(GibbsHamiltonian h);

// β per epoch: log-spaced from beta_start to beta_end over epochs [0, anneal_epochs), then held
// (np.logspace(log10 start, log10 end, anneal_epochs)[epoch]).
struct GibbsSchedule {
    double beta_start = 1.0, beta_end = 1e4;
    int64_t anneal_epochs = 128;
    double beta(int64_t epoch) const;
};

// p-th percentile of n values with linear interpolation: sorted[lo] + frac (sorted[lo+1] − sorted[lo]).
struct PercentilePosition {
    int64_t lo = 0;
    float frac = 0;
};
PercentilePosition percentile_position(int64_t n, double p);
float percentile_host(std::vector<float> values, double p);

// The per-layer statistic whose percentile is Q_p: w² (unstructured), mean w² per kernel, per filter.
std::vector<float> gibbs_statistic_host(const float* w, GibbsLayerShape s, GibbsHamiltonian h);

// CPU reference: a 0/1 mask (s.numel()) for weights w drawn with stream `key`, and, unless
// masked_weight is null, w ⊙ mask beside it (the unstructured draw writes both in one pass).
void gibbs_draw_host(const float* w, GibbsLayerShape s, const GibbsParams& p, uint64_t key, float* mask,
                     float* masked_weight = nullptr);
// The building blocks (exposed for tests): the kernels of channels [c0, c1) drawn exactly given
// fields q − w_i² − c·other_sums[f]; uniform (counter_base + f·C + ch)·2^area + config of `key`.
void gibbs_draw_kernels_host(const float* w, float q, GibbsLayerShape s, int64_t c0, int64_t c1,
                             const float* other_sums, float coupling, float beta, uint64_t key, uint64_t counter_base,
                             float* mask);
// filter: `p.sweeps` chromatic sweeps from the current `mask`.
void gibbs_filter_sweeps_host(const float* w, float q, GibbsLayerShape s, const GibbsParams& p, uint64_t key,
                              float* mask);

// H of a 0/1 mask (up to the constants dropped above), in double.
double gibbs_energy_host(const float* w, GibbsLayerShape s, const GibbsParams& p, const float* mask);

// The deterministic final selection (kernel, filter): unit u kept iff sums[u] >= Q_p(sums).
std::vector<float> gibbs_magnitude_units(const std::vector<float>& sums, double p);

// Defaults and ranges are those of gibbs_settings(), the [prune.gibbs] keys.
struct GibbsOptions {
    GibbsHamiltonian hamiltonian = GibbsHamiltonian::unstructured;  // from prune.granularity
    double p = 0.9;
    double kernel_coupling = 0.01, filter_coupling = 1.0;
    int64_t sweeps = 50;
    GibbsSchedule schedule;
    uint64_t seed = 1;  // the experiment's
    // Beyond the paper: draw `chains` masks per step (chain k at β / chain_beta_ratio^k, its own
    // stream), score them together with the population evaluator on the step's batch (its first
    // chain_images images when > 0) and train with the lowest-energy one. chains = 1: the paper.
    int64_t chains = 1;
    double chain_beta_ratio = 1.0;
    int64_t chain_images = 0;
    EnergyKind chain_energy = EnergyKind::margin;
    // The draw also writes w ⊙ m, which the layers use for the step's forward and backward
    // instead of forming it themselves (one chain only; bitwise the same training).
    bool fused_apply = true;
};

// [prune.gibbs]: every key of GibbsOptions a config sets (not the Hamiltonian nor the seed).
const SettingTable<GibbsOptions>& gibbs_settings();

// The training-phase sampler: a weight-granularity mask space over the pruned layers (every
// conv after the first and, for unstructured, the hidden linear layers; for filter, the convs
// producing prunable channel sets), a new mask per step keyed by (seed, layer, ctx.step()).
class GibbsTraining : public PhaseHook {
public:
    GibbsTraining(Model& model, GibbsOptions options, Context& ctx);

    // Draws every layer's mask at β(epoch) and attaches them; with several chains, the one of
    // lowest energy on (images, labels).
    void before_step(Context& ctx, const Tensor& images, const Tensor& labels, int64_t epoch) override;
    // After the optimizer step: the fused w ⊙ m is stale, so the layers form it again from the
    // mask for any forward before the next draw (validation, checkpoints).
    void after_step(Context& ctx) override;
    void detach() { space_.detach(); }
    // β, sparsity per layer, magnetisation, energy, flip rate and kept fraction over the epoch's
    // steps; with several chains also the mean best and mean chain energy on the batches.
    nlohmann::json epoch_log(Context& ctx) override;
    void save(std::vector<std::pair<std::string, Tensor>>& tensors, std::map<std::string, std::string>& meta) const override;
    void restore(Context& ctx, const Checkpoint& ck) override;

    // The space the final mask lives in (weight, kernel or filter granularity, same layers) and
    // the final state (docs/methods.md, gibbs): unstructured one draw at the final β, else the top (1 − p)
    // of every layer's kernels / filters by Σw².
    MaskSpaceOptions final_space_options() const;
    std::vector<float> final_state(Context& ctx, MaskSpace& final_space);
    int64_t steps() const { return steps_; }
    // The mask of the last step (D), and with several chains that step's draws (chains, D) and
    // their energies (chains).
    const Tensor& mask() const { return units_[current_]; }
    const Tensor& chain_population() const { return population_; }
    const Tensor& chain_energies() const { return energies_; }
    double sampling_seconds() const { return sampling_seconds_; }

private:
    GibbsParams params_at(double beta) const;
    // Every layer's mask into `units` (D) with the streams (seed, purpose + layer, step), and
    // w ⊙ m into `masked` (D) unless it is null.
    void draw_all(Context& ctx, double beta, uint64_t purpose, uint64_t step, Tensor& units,
                  std::vector<Tensor>* masked = nullptr);
    bool fused() const { return options_.fused_apply && options_.chains == 1; }
    // chains > 1: every chain's draw into population_, scored; the lowest-energy one into `units`.
    void draw_best_chain(Context& ctx, const Tensor& images, const Tensor& labels, Tensor& units);

    Model& model_;
    GibbsOptions options_;
    std::vector<std::string> layers_;  // pruned layer names, wiring order
    std::unique_ptr<MaskSpace> space_ptr_;
    MaskSpace& space_;
    Tensor units_[2];  // ping-pong: the current and the previous step's masks (D)
    // fused(): the step's w ⊙ m, one view per layer into one buffer at 256-byte aligned offsets
    // (the layers hand it to cuDNN / cuBLAS as their weights).
    Tensor masked_buffer_;
    std::vector<Tensor> masked_weights_;
    int current_ = 0;
    bool drawn_ = false;
    double beta_ = 0;
    Buffer counters_;  // on ctx's device: flips, kept (uint64) over the epoch's steps
    int64_t epoch_steps_ = 0, steps_ = 0;
    double sampling_seconds_ = 0;
    // chains > 1
    std::unique_ptr<PopulationEvaluator> evaluator_;
    Tensor population_;  // (chains, D)
    Tensor energies_;    // (chains)
    double epoch_best_energy_ = 0, epoch_mean_energy_ = 0;  // sums over the epoch's steps
    int64_t epoch_chain_picks_nonzero_ = 0;                  // steps whose best chain was not chain 0
};

}  // namespace sp
