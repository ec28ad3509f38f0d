// `spinprune run` with prune.method = "gibbs" (METHODS.md §2): [train] with a mask drawn from
// the layer Hamiltonians before every step (GibbsTraining as the phase hook), then the final mask
// (one draw at the final β, or the top (1 − p) kernels / filters by Σw²) through the shared
// stages: fine-tuning if [finetune] asks, evaluation, compaction (filter), latency.
#include "kernels/check.h"
#include "pruning/gibbs.h"
#include "train/pipeline_stages.h"

namespace sp::stages {

namespace {

class GibbsHook : public PhaseHook {
public:
    explicit GibbsHook(GibbsTraining& sampler) : sampler_(sampler) {}
    void before_step(Context& ctx, Model&, const Tensor& images, const Tensor& labels, int64_t epoch) override {
        sampler_.before_step(ctx, images, labels, epoch);
    }
    void after_step(Context& ctx, Model&) override { sampler_.after_step(ctx); }
    json end_epoch(Context& ctx) override { return sampler_.epoch_log(ctx); }
    void save(std::vector<std::pair<std::string, Tensor>>& tensors, std::map<std::string, std::string>& meta) const override {
        sampler_.save(tensors, meta);
    }
    void restore(Context& ctx, const Checkpoint& ck) override { sampler_.restore(ctx, ck); }

private:
    GibbsTraining& sampler_;
};

GibbsOptions gibbs_options(const ExperimentConfig& c) {
    const GibbsConfig& g = c.prune.gibbs;
    GibbsOptions o;
    o.hamiltonian = gibbs_hamiltonian_for(granularity_from_name(c.prune.granularity));
    o.p = g.p;
    o.kernel_coupling = g.kernel_coupling;
    o.filter_coupling = g.filter_coupling;
    o.sweeps = g.sweeps;
    o.schedule = GibbsSchedule{g.beta_start, g.beta_end, g.anneal_epochs};
    o.seed = static_cast<uint64_t>(c.seed);
    o.chains = g.chains;
    o.chain_beta_ratio = g.chain_beta_ratio;
    o.chain_images = g.chain_images;
    o.fused_apply = g.fused_apply;
    SP_REQUIRE(g.chains == 1 || c.prune.energy != "ising",
               c.source << ": key 'prune.energy': the Gibbs chains are scored on the batch (margin, cross-entropy "
                           "or error), not \"ising\"");
    if (g.chains > 1) o.chain_energy = energy_from_name(c.prune.energy);
    return o;
}

}  // namespace

json run_gibbs(Run& run, Model& model, json summary) {
    const ExperimentConfig& config = run.config;
    SP_REQUIRE(config.prune.baseline_checkpoint.empty(),
               config.source << ": gibbs trains and prunes from scratch: remove prune.baseline_checkpoint");
    SP_REQUIRE(!config.prune.prune_residual_groups && config.prune.rates.empty(),
               config.source << ": gibbs prunes every layer at prune.gibbs.p: remove prune.prune_residual_groups / prune.rates");
    if (config.prune.train_baseline && !train_reference_baseline(run, summary)) return summary;
    GibbsTraining sampler(model, gibbs_options(config), *run.ctx);
    GibbsHook hook(sampler);
    if (!fit(run, model, config.train, "train", &hook)) {
        summary["completed"] = false;
        return summary;
    }
    sampler.detach();
    if (!config.prune.train_baseline) {
        json dense = evaluation(run, model, config.train);
        dense.update(cost_json(model.parameter_count(), model.macs_per_image()));
        summary["baseline"] = dense;
        summary["baseline_kind"] = "the Gibbs-trained network with every weight kept";
    }
    summary["time_s"]["pretrain"] = run.phase_seconds["train"];
    summary["search"] = {{"hamiltonian", gibbs_hamiltonian_name(gibbs_options(config).hamiltonian)},
                         {"steps", sampler.steps()},
                         {"sampling_seconds", sampler.sampling_seconds()},
                         {"sampling_share", run.phase_seconds["train"] > 0
                                                ? sampler.sampling_seconds() / run.phase_seconds["train"] : 0.0}};
    MaskSpace space(model, sampler.final_space_options());
    std::vector<float> state = sampler.final_state(*run.ctx, space);
    summary = prune_and_evaluate(run, model, summary, /*finetune=*/true, space, std::move(state), sampler.sampling_seconds());
    if (!summary["completed"].get<bool>()) return summary;
    summary["time_s"]["finetune"] = run.phase_seconds["finetune"];
    return summary;
}

}  // namespace sp::stages
