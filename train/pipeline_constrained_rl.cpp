// `spinprune run` / `spinprune prune` with prune.method = "constrained-rl" (docs/methods.md, constrained-rl): the
// PPO-Lagrangian search on the trained model, scored on the run's validation images, with one
// rl_updates.jsonl record per update in the run directory.
#include <cstdio>
#include <fstream>

#include "data/loader.h"
#include "kernels/error.h"
#include "pruning/baselines.h"
#include "pruning/constrained_rl.h"
#include "train/methods.h"
#include "train/pipeline_stages.h"
#include "train/progress_line.h"

namespace sp {

namespace {

using namespace stages;

// The [prune.rl] options with what they take from [prune] and the seed.
ConstrainedRlOptions constrained_rl_options(const ExperimentConfig& config) {
    ConstrainedRlOptions o = config.prune.rl;
    if (o.cost != RlCostKind::latency) o.cost = rl_cost_from_name(config.prune.budget);  // cost = "budget"
    o.budget = config.prune.keep;
    o.ppo.seed = static_cast<uint64_t>(config.seed);
    return o;
}

std::vector<float> constrained_rl_state(Run& run, MaskSpace& space) {
    const ExperimentConfig& config = run.config;
    const Dataset& held_out = run.data.split.validation;
    SP_REQUIRE(held_out.size() > 0, config.source << ": prune.method 'constrained-rl' scores episodes on the validation "
                                                  << "split: key 'data.validation': expected > 0, got 0");
    const ConstrainedRlOptions options = constrained_rl_options(config);

    LoaderOptions lo;
    lo.batch_size = std::min(options.eval_images, held_out.size());
    lo.shuffle = false;
    lo.normalization = run.data.norm;
    lo.device = run.device;
    BatchLoader loader(held_out, lo);
    Batch batch = loader.next();

    PruningEnvironment env(*run.ctx, space, options, batch.images, batch.labels);
    const std::string log_path = run.dir->file("rl_updates.jsonl");
    std::ofstream log(log_path, std::ios::trunc);
    SP_REQUIRE(log.good(), "cannot write " << log_path);
    const bool quiet = run.options.quiet;
    if (!quiet)
        std::printf("constrained-rl: %lld updates x %lld episodes, %lld steps each, budget %.1f%% of %s, %lld validation images\n",
                    static_cast<long long>(options.updates), static_cast<long long>(options.episodes),
                    static_cast<long long>(env.steps()), 100.0 * options.budget,
                    options.cost == RlCostKind::latency ? "latency" : config.prune.budget.c_str(),
                    static_cast<long long>(lo.batch_size));
    const Clock::time_point search_start = Clock::now();
    const RlSearchResult result = constrained_rl_search(env, [&](const nlohmann::json& rec) {
        log << rec.dump() << "\n";
        log.flush();
        const int64_t done = rec["update"].get<int64_t>() + 1;
        const double elapsed = seconds_since(search_start);
        if (!quiet)
            std::printf("  update %lld/%lld (%s, %s left): reward %.4f  cost %.4f (budget %.4f)  nu %.3f  entropy %.3f  kl %.4f  "
                        "best feasible %s\n",
                        static_cast<long long>(done), static_cast<long long>(options.updates), clock_text(elapsed).c_str(),
                        clock_text(elapsed / done * static_cast<double>(options.updates - done)).c_str(),
                        rec["mean_reward"].get<double>(),
                        rec["mean_cost"].get<double>(), options.budget, rec["nu"].get<double>(),
                        rec["entropy"].get<double>(), rec["kl"].get<double>(),
                        rec["best_feasible"].is_null() ? "none" : rec["best_feasible"]["reward"].dump().c_str());
    });
    json final_record = {{"final", true},
                         {"feasible", result.feasible},
                         {"reward", result.reward},
                         {"cost", result.cost},
                         {"budget", options.budget},
                         {"episodes", result.episodes},
                         {"search_s", result.search_s},
                         {"evaluation_s", result.evaluation_s}};
    log << final_record.dump() << "\n";
    if (!result.feasible && options.cost != RlCostKind::latency) {
        // No episode met the budget: fall back to the L1/magnitude selection at the target, so
        // the pipeline's result still respects it (reported in the log's last record).
        const std::vector<float> scores = rl_unit_scores(*run.ctx, space);
        const PruneTarget target{options.cost == RlCostKind::params ? BudgetKind::params : BudgetKind::macs, options.budget};
        log << json{{"fallback", "no feasible episode: per-layer magnitude selection to the budget"}}.dump() << "\n";
        if (!quiet) std::printf("constrained-rl: no feasible episode; falling back to per-layer magnitude selection\n");
        return select_to_target(space, scores, Selection::per_segment, target);
    }
    SP_REQUIRE(result.feasible, config.source << ": constrained-rl found no episode within the latency budget "
                                              << options.budget << " (cheapest: " << result.cost
                                              << "); raise prune.rl.updates or prune.keep");
    if (!quiet)
        std::printf("constrained-rl: best feasible episode: reward %.4f at cost %.4f (budget %.4f), %.1f s search\n",
                    result.reward, result.cost, options.budget, result.search_s);
    return result.state;
}

}  // namespace

extern const PruneMethod constrained_rl_method{
    "constrained-rl", MethodKind::searches, "Neural network pruning through constrained reinforcement learning, arXiv:2110.08558",
    "PPO-Lagrangian search of per-layer (or per-filter) pruning ratios under a params, MACs or latency budget",
    nullptr, Selection::per_segment, constrained_rl_state, nullptr,
    "rl", []() -> const SettingList& { return constrained_rl_settings(); },
    [](PruneConfig& p) -> void* { return &p.rl; }};

}  // namespace sp
