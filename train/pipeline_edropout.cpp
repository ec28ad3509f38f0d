// `spinprune run` with prune.method = "edropout": [train] with the EDropout search as the phase
// hook (one generation of binary differential evolution per step, the best mask applied), then
// the best state through the shared stages: fine-tuning, evaluation, compaction, latency. The
// baseline is the same network with every unit kept (the paper's (F) evaluation), the pruned one
// has the best state applied ((P)).
#include "kernels/error.h"
#include "pruning/edropout.h"
#include "train/methods.h"
#include "train/pipeline_stages.h"

namespace sp {

namespace {

using namespace stages;

// The [prune.edropout] options with what they take from [prune] and [train].
EDropoutOptions edropout_options(const ExperimentConfig& c) {
    EDropoutOptions o = c.prune.edropout;
    o.budget = PruneTarget{budget_from_name(c.prune.budget), c.prune.keep};
    if (o.min_epochs < 0) o.min_epochs = c.train.epochs / 2;
    return o;
}

json run_edropout(Run& run, Model& model, json summary) {
    const ExperimentConfig& config = run.config;
    SP_REQUIRE(config.prune.baseline_checkpoint.empty(),
               config.source << ": edropout trains from scratch: remove prune.baseline_checkpoint");
    if (config.prune.train_baseline && !train_reference_baseline(run, summary)) return summary;
    MaskSpace space(model, mask_options(config.prune));
    EDropoutSearch search(space, edropout_options(config), *run.ctx);
    if (!fit(run, model, config.train, "train", &search)) {
        summary["completed"] = false;
        return summary;
    }
    space.detach();
    json full = evaluation(run, model, config.train);
    full.update(cost_json(model.parameter_count(), model.macs_per_image()));
    summary["full"] = full;  // the paper's (F)
    if (!config.prune.train_baseline) {
        summary["baseline"] = full;
        summary["baseline_kind"] = "(F): the EDropout-trained network with every unit kept";
    }
    const double seconds = search.search_seconds();
    summary["search"] = {{"generations", search.generations()}, {"converged", search.converged()},
                         {"seconds_per_generation", search.generations() ? seconds / search.generations() : 0.0}};
    summary["time_s"]["pretrain"] = run.phase_seconds["train"];
    return prune_and_finetune(run, model, summary, space, search.best_state_host(), seconds);
}

}  // namespace

extern const PruneMethod edropout_method{
    "edropout", MethodKind::trains,
    "Salehinejad & Valaee, EDropout: Energy-Based Dropout and Pruning of Deep Neural Networks, IEEE TNNLS 2021",
    "binary differential evolution over filter masks during training, energies of the batch (or Ising)",
    nullptr, Selection::per_segment, nullptr, run_edropout,
    "edropout", []() -> const SettingList& { return edropout_settings(); },
    [](PruneConfig& p) -> void* { return &p.edropout; }};

}  // namespace sp
