// The train → prune → fine-tune → evaluate pipeline.
#include "train/pipeline.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "data/loader.h"
#include "kernels/error.h"
#include "nn/checkpoint.h"
#include "pruning/accounting.h"
#include "pruning/baselines.h"
#include "pruning/importance.h"
#include "pruning/latency.h"
#include "pruning/mask_space.h"
#include "pruning/rate_lists.h"
#include "pruning/surgery.h"
#include "train/methods.h"
#include "train/pipeline_stages.h"
#include "train/progress_line.h"

namespace sp {

namespace stages {

json evaluation(Run& run, Model& model, const TrainConfig& t) {
    EvalResult r = evaluate(*run.ctx, model, run.data.test, run.data.norm, t.eval_batch_size);
    return {{"top1", r.top1}, {"top5", r.top5}, {"loss", r.loss}};
}

MaskSpaceOptions mask_options(const PruneConfig& p) {
    MaskSpaceOptions o;
    o.granularity = granularity_from_name(p.granularity);
    o.gate_after_bn = p.gate_after_bn;
    o.prune_residual_groups = p.prune_residual_groups;
    return o;
}

// The prune stage's result is saved (save_mask), so a resumed run re-applies the same mask.
std::vector<float> pruned_state(Run& run, MaskSpace& space) {
    const std::string path = run.dir->file("mask.safetensors");
    if (std::filesystem::exists(path)) {
        const MaskFile mask = load_mask(path, space.size());  // every value exactly 0 or 1
        auto meta = [&](const char* key) {
            auto it = mask.metadata.find(key);
            return it == mask.metadata.end() ? std::string("(none)") : it->second;
        };
        SP_REQUIRE(meta("method") == run.config.prune.method && meta("granularity") == run.config.prune.granularity,
                   path << ": mask of method " << meta("method") << " / " << meta("granularity")
                        << ", the config asks for " << run.config.prune.method << " / " << run.config.prune.granularity);
        return mask.state;
    }
    const PruneConfig& p = run.config.prune;
    const PruneMethod& method = *find_method(p.method);
    if (method.kind == MethodKind::searches) return method.search(run, space);
    PruneMethod scoring = method;  // [prune.scoring] criterion replaces its importance
    if (!p.scoring.criterion.empty()) scoring.importance = &criterion_importance(p.scoring.criterion);
    ScoreInput in{*run.ctx, space, static_cast<uint64_t>(run.config.seed)};
    in.post_relu = p.scoring.post_relu;
    Batch batch;  // the first training images, for the importances that score from data
    std::unique_ptr<ProgressLine> line;
    if (scoring.importance && scoring.importance->needs_data) {
        LoaderOptions lo;
        lo.batch_size = std::min(p.scoring.images, run.data.split.train.size());
        lo.shuffle = false;
        lo.normalization = run.data.norm;
        lo.device = run.device;
        BatchLoader loader(run.data.split.train, lo);
        batch = loader.next();
        in.images = &batch.images;
        in.labels = &batch.labels;
        line = std::make_unique<ProgressLine>(std::string("prune: ") + scoring.importance->name + " scores",
                                              batch.images.dim(0), "images", run.options.quiet);
        in.on_progress = [&line, start = Clock::now()](int64_t done, int64_t) { line->show(done, seconds_since(start)); };
    }
    return scored_state(scoring, in, PruneTarget{budget_from_name(p.budget), p.keep, p.keep_tolerance},
                        segment_rates(run.config, space));
}

std::vector<double> segment_rates(const ExperimentConfig& config, MaskSpace& space) {
    const PruneConfig& p = config.prune;
    if (p.conv_rates.empty()) return p.rates;
    return map_conv_rates(space.model(), space, parse_rate_list(p.conv_rates, config.source + ": key 'prune.conv_rates'"))
        .segment_rates;
}

void save_mask(Run& run, const MaskSpace& space, const std::vector<float>& state) {
    const PruneConfig& p = run.config.prune;
    Tensor t = Tensor::from_host(state, Shape{space.size()}, Device::cpu);
    save_checkpoint(run.dir->file("mask.safetensors"), {{"state", &t}},
                    {{"method", p.method}, {"granularity", p.granularity}, {"budget", p.budget},
                     {"keep", json(p.keep).dump()}, {"format", "spinprune-mask"}, {"version", "1"}});
}

bool train_reference_baseline(Run& run, json& summary) {
    const ExperimentConfig& config = run.config;
    std::unique_ptr<Model> reference = build_model(config, run.data.split.train, run.device);
    if (!fit(run, *reference, config.train, "baseline")) {
        summary["completed"] = false;
        return false;
    }
    json baseline = evaluation(run, *reference, config.train);
    baseline.update(cost_json(reference->parameter_count(), reference->macs_per_image()));
    summary["baseline"] = baseline;
    summary["time_s"]["baseline"] = run.phase_seconds["baseline"];
    return true;
}

json cost_json(int64_t params, int64_t macs) { return {{"params", params}, {"macs", macs}}; }

json latency_json(Run& run, Model& model) {
    LatencyOptions lo;
    return {{"b1", measure_latency_ms(*run.ctx, model, 1, lo)}, {"b128", measure_latency_ms(*run.ctx, model, 128, lo)}};
}

// Applies the pruned `state` of `space` to the trained `model` and fills the summary's pruning
// fields. With `finetune`, the masked model is fine-tuned before the final evaluations.
json prune_and_evaluate(Run& run, Model& model, json summary, bool finetune, MaskSpace& space,
                        std::vector<float> state, double search_s) {
    const ExperimentConfig& config = run.config;
    const TrainConfig& eval_cfg = config.train;
    if (config.prune.round_to > 1) {
        // Widths up to the multiple, adding back the pruned filters of largest L1 norm.
        space.round_kept_widths(state, config.prune.round_to, importance_scores(l1_importance, ScoreInput{*run.ctx, space}, "round_to"));
    }
    if (!std::filesystem::exists(run.dir->file("mask.safetensors"))) save_mask(run, space, state);
    Tensor units = Tensor::from_host(state, Shape{space.size()}, run.device);
    space.attach(*run.ctx, units);
    const ModelAccount acc = account(space, state);
    summary["mask"] = {{"granularity", config.prune.granularity}, {"units", space.size()},
                       {"kept_units", std::count(state.begin(), state.end(), 1.0f)}};
    summary["pruned_before_finetune"] = evaluation(run, model, eval_cfg);

    if (finetune && config.finetune.epochs > 0) {
        if (!fit(run, model, config.finetune, "finetune")) {
            summary["completed"] = false;
            return summary;
        }
    }
    json pruned = evaluation(run, model, eval_cfg);
    pruned.update(cost_json(acc.params, acc.macs));
    summary["pruned"] = pruned;
    summary["params_kept"] = acc.params_kept();
    summary["macs_kept"] = acc.macs_kept();
    json per_layer = json::array();
    for (const LayerAccount& l : acc.layers)
        per_layer.push_back({{"name", l.name}, {"out", l.out_kept}, {"out_dense", l.out_total}, {"in", l.in_kept},
                             {"in_dense", l.in_total}, {"params", l.params}, {"macs", l.macs}});
    summary["layers"] = per_layer;
    if (!config.prune.conv_rates.empty()) {
        // The published figures of a rate list count differently (pruning/rate_lists.h): both.
        const std::vector<double> conv_rates = parse_rate_list(config.prune.conv_rates, config.source);
        const PublishedCount c = published_count(model, conv_rates);
        summary["published_convention"] = {{"params", c.params}, {"macs", c.macs}, {"dense_params", c.dense_params},
                                           {"dense_macs", c.dense_macs},
                                           {"unapplied_convs", map_conv_rates(model, space, conv_rates).unapplied}};
    }

    space.detach();
    json latency = {{"dense", latency_json(run, model)}};  // every unit, no masks
    if (space.granularity() == Granularity::filter) {
        // Physically smaller: the compacted network must agree with the masked one.
        std::unique_ptr<Model> compact = compact_model(model, space.kept_channels(state));
        json compacted = evaluation(run, *compact, eval_cfg);
        compacted.update(cost_json(compact->parameter_count(), compact->macs_per_image()));
        summary["compacted"] = compacted;
        save_model(run.dir->file("pruned.safetensors"), *compact, config, run.data.norm);  // its widths in the description
        latency["pruned"] = latency_json(run, *compact);
    } else {
        // Unstructured masks leave the dense shapes: the pruned network runs at dense cost
        // (plus the masking itself), measured with the masks on.
        space.attach(*run.ctx, units);
        latency["pruned"] = latency_json(run, model);
        std::map<std::string, const Tensor*> masks;  // the masks the layers apply
        for (const LayerWiring& w : model.wiring())
            if (const Tensor* m = w.conv ? w.conv->weight_mask() : w.linear->weight_mask()) masks[w.name] = m;
        save_model(run.dir->file("pruned.safetensors"), model, config, run.data.norm, masks);
        space.detach();
    }
    summary["latency_ms"] = latency;
    summary["time_s"]["search"] = search_s;
    return summary;
}

json prune_and_finetune(Run& run, Model& model, json summary, MaskSpace& space, std::vector<float> state,
                        double search_s) {
    summary = prune_and_evaluate(run, model, summary, /*finetune=*/true, space, std::move(state), search_s);
    if (summary["completed"].get<bool>()) summary["time_s"]["finetune"] = run.phase_seconds["finetune"];
    return summary;
}

}  // namespace stages

namespace {

using namespace stages;

// A scoring or searching method: the state from the trained model, timed as the search.
json prune_with_method(Run& run, Model& model, json summary, bool finetune) {
    auto search_start = Clock::now();
    MaskSpace space(model, mask_options(run.config.prune));
    const std::vector<float> state = pruned_state(run, space);
    const double search_s = seconds_since(search_start);
    return prune_and_evaluate(run, model, summary, finetune, space, state, search_s);
}

json base_summary(Run& run, Model& model) {
    return {{"experiment", run.config.name}, {"dataset", run.config.data.dataset}, {"model", model.name()},
            {"method", run.config.prune.method}, {"seed", run.config.seed},
            {"device", run.environment["device_name"]}, {"completed", true},
            {"time_s", {{"pretrain", 0.0}, {"search", 0.0}, {"finetune", 0.0}}}};
}

void print_summary(const json& summary) {
    json rows = json::array();
    auto row = [&](const char* stage, const json& r) {
        rows.push_back({{"experiment", summary["experiment"]}, {"model", summary["model"]}, {"stage", stage},
                        {"params", r["params"]}, {"macs", r["macs"]}, {"top1", r["top1"]}, {"top5", r["top5"]}});
    };
    row("baseline", summary["baseline"]);
    if (summary.contains("full") && summary.contains("baseline_kind") == false) row("EDropout (F), all units", summary["full"]);
    if (summary.contains("pruned")) row("pruned (masked)", summary["pruned"]);
    if (summary.contains("compacted")) row("pruned (compacted)", summary["compacted"]);
    print_result_table(rows);
    if (summary.contains("params_kept"))
        std::printf("kept: %.2f%% of parameters, %.2f%% of MACs (1 MAC = 2 FLOPs); latency b1 %.3f -> %.3f ms, "
                    "b128 %.3f -> %.3f ms\n",
                    100 * summary["params_kept"].get<double>(), 100 * summary["macs_kept"].get<double>(),
                    summary["latency_ms"]["dense"]["b1"].get<double>(), summary["latency_ms"]["pruned"]["b1"].get<double>(),
                    summary["latency_ms"]["dense"]["b128"].get<double>(),
                    summary["latency_ms"]["pruned"]["b128"].get<double>());
}

}  // namespace

namespace {

// FNV-1a over 64 bits: a name for a text that stays the same across builds (std::hash need not).
std::string text_digest(const std::string& text) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ull;
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    return hex;
}

// [train] of the run, or with prune.baseline_cache its trained baseline from an earlier run of the
// same data, model, training, seed, device and code (the same network, bit for bit), with that
// run's training epochs in metrics.jsonl; a baseline trained here is kept there for the next run.
// False when training stopped early (signal or step limit).
bool train_or_reuse_baseline(Run& run, Model& model, json& summary) {
    const ExperimentConfig& config = run.config;
    if (config.prune.baseline_cache.empty()) return fit(run, model, config.train, "train");
    ExperimentConfig decides;  // what decides the trained network, and nothing else
    decides.seed = config.seed;
    decides.deterministic = config.deterministic;
    decides.math = config.math;
    decides.data = config.data;
    decides.model = config.model;
    decides.train = config.train;
    const std::string key = to_toml(decides) + "# device " + device_name(run.device) + ", code " +
                            run.environment.value("git_revision", std::string("unknown")) + "\n";
    const std::filesystem::path entry = std::filesystem::path(config.prune.baseline_cache) / text_digest(key);
    const std::string weights = (entry / "baseline.safetensors").string();
    if (std::filesystem::exists(weights)) {
        load_model_weights(model, weights);
        run.dir->truncate_metrics("train", 0);  // a resumed run's own epochs give way to the kept ones
        std::ifstream in(entry / "metrics.jsonl");
        for (std::string line; std::getline(in, line);) run.dir->append_metrics(json::parse(line));
        run.phase_seconds["train"] = run.dir->logged_seconds("train");
        summary["baseline_reused"] = entry.string();
        return true;
    }
    if (!fit(run, model, config.train, "train")) return false;
    // The key and the training epochs first, the weights last: they mark the entry complete.
    RunDir kept(entry.string());
    kept.write_text("key.toml", key);
    std::ifstream in(run.dir->file("metrics.jsonl"));
    std::string epochs;
    for (std::string line; std::getline(in, line);) {
        const json record = json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (record.is_object() && record.value("phase", "") == "train") epochs += line + "\n";
    }
    kept.write_text("metrics.jsonl", epochs);
    save_model(weights, model, config, run.data.norm);
    return true;
}

}  // namespace

json run_experiment(const ExperimentConfig& config, const TrainOptions& options) {
    Run run(config, options);
    Model& model = *run.model;
    json summary = base_summary(run, model);
    if (!config.prune.rates.empty() || !config.prune.conv_rates.empty()) {
        MaskSpace probe(model, mask_options(config.prune));  // fail before training, not after
        check_rates(probe, segment_rates(config, probe));
    }
    const PruneMethod* method = find_method(config.prune.method);  // null: "none"
    if (method && method->kind == MethodKind::trains) {
        summary = method->train_and_prune(run, model, summary);
        if (!summary["completed"].get<bool>()) return summary;
    } else {
        if (!config.prune.baseline_checkpoint.empty()) {
            load_model_weights(model, config.prune.baseline_checkpoint);
        } else if (!train_or_reuse_baseline(run, model, summary)) {
            summary["completed"] = false;
            return summary;
        }
        summary["time_s"]["pretrain"] = run.phase_seconds["train"];
        json baseline = evaluation(run, model, config.train);
        baseline.update(cost_json(model.parameter_count(), model.macs_per_image()));
        summary["baseline"] = baseline;
        save_model(run.dir->file("baseline.safetensors"), model, config, run.data.norm);
        if (method) {
            summary = prune_with_method(run, model, summary, /*finetune=*/true);
            if (!summary["completed"].get<bool>()) return summary;
            summary["time_s"]["finetune"] = run.phase_seconds["finetune"];
        }
    }
    summary["time_s"]["total"] = run.seconds();
    run.dir->write_json("summary.json", summary);
    if (!options.quiet) {
        print_summary(summary);
        std::printf("run directory: %s\n", run.dir->path().c_str());
    }
    return summary;
}

json prune_checkpoint(const ExperimentConfig& config, const std::string& checkpoint, const TrainOptions& options) {
    const PruneMethod* method = find_method(config.prune.method);
    SP_REQUIRE(method, config.source << ": key 'prune.method': `spinprune prune` needs a method");
    SP_REQUIRE(method->kind != MethodKind::trains,
               "`spinprune prune` prunes a trained model; " << method->name << " trains and prunes at once (use `spinprune run`)");
    Run run(config, options);
    Model& model = *run.model;
    load_model_weights(model, checkpoint);
    json summary = base_summary(run, model);
    json baseline = evaluation(run, model, config.train);
    baseline.update(cost_json(model.parameter_count(), model.macs_per_image()));
    summary["baseline"] = baseline;
    summary = prune_with_method(run, model, summary, /*finetune=*/false);
    summary["time_s"]["total"] = run.seconds();
    run.dir->write_json("summary.json", summary);
    if (!options.quiet) {
        print_summary(summary);
        std::printf("run directory: %s\n", run.dir->path().c_str());
    }
    return summary;
}

}  // namespace sp
