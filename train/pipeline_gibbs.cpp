// `spinprune run` with prune.method = "gibbs" (docs/methods.md, gibbs): [train] with a mask drawn from
// the layer Hamiltonians before every step (GibbsTraining is the phase hook), then the final mask
// (one draw at the final β, or the top (1 − p) kernels / filters by Σw²) through the shared
// stages: fine-tuning if [finetune] asks, evaluation, compaction (filter), latency.
#include "kernels/error.h"
#include "pruning/gibbs.h"
#include "train/methods.h"
#include "train/pipeline_stages.h"

namespace sp {

namespace {

using namespace stages;

// The [prune.gibbs] options with what they take from [prune] and the seed.
GibbsOptions gibbs_options(const ExperimentConfig& c) {
    GibbsOptions o = c.prune.gibbs;
    o.hamiltonian = gibbs_hamiltonian_for(granularity_from_name(c.prune.granularity));
    o.seed = static_cast<uint64_t>(c.seed);
    return o;
}

json run_gibbs(Run& run, Model& model, json summary) {
    const ExperimentConfig& config = run.config;
    SP_REQUIRE(config.prune.baseline_checkpoint.empty(),
               config.source << ": gibbs trains and prunes from scratch: remove prune.baseline_checkpoint");
    SP_REQUIRE(!config.prune.prune_residual_groups && config.prune.rates.empty(),
               config.source << ": gibbs prunes every layer at prune.gibbs.p: remove prune.prune_residual_groups / prune.rates");
    if (config.prune.train_baseline && !train_reference_baseline(run, summary)) return summary;
    GibbsTraining sampler(model, gibbs_options(config), *run.ctx);
    if (!fit(run, model, config.train, "train", &sampler)) {
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
    return prune_and_finetune(run, model, summary, space, std::move(state), sampler.sampling_seconds());
}

}  // namespace

extern const PruneMethod gibbs_method{
    "gibbs", MethodKind::trains,
    "Labach & Valaee, Gibbs Pruning: A Framework for Structured and Unstructured Neural Network Pruning, 2020",
    "a mask drawn from exp(-beta H) per layer before every training step; weight, kernel or filter Hamiltonians",
    nullptr, Selection::per_segment, nullptr, run_gibbs,
    "gibbs", []() -> const SettingList& { return gibbs_settings(); },
    [](PruneConfig& p) -> void* { return &p.gibbs; }};

}  // namespace sp
