// The spinprune command-line program: train, run, prune, eval, info, latency, devices, methods, config.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <omp.h>

#include "kernels/error.h"
#include "nn/checkpoint.h"
#include "nn/cpu/gemm.h"
#include "nn/device.h"
#include "pruning/latency.h"
#include "train/config.h"
#include "train/methods.h"
#include "train/pipeline.h"
#include "train/trainer.h"

using namespace sp;

namespace {

void print_layer_table(Model& model) {
    std::printf("%-28s %-10s %-16s %12s %14s\n", "layer", "kind", "output", "params", "MACs");
    for (const LayerCost& c : model.layer_costs())
        std::printf("%-28s %-10s %-16s %12lld %14lld\n", c.name.c_str(), c.kind.c_str(), c.output.str().c_str(),
                    static_cast<long long>(c.params), static_cast<long long>(c.macs));
    std::printf("total: %lld parameters, %lld MACs per image (1 MAC = 2 FLOPs)\n",
                static_cast<long long>(model.parameter_count()), static_cast<long long>(model.macs_per_image()));
}

}  // namespace

int main(int argc, char** argv) {
    cpu::configure_cpu_blas(argv);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines appear as they happen in logs too
    CLI::App app{"spinprune: energy-based pruning of CNNs on cuDNN/cuBLAS, with a CPU reference backend"};
    app.require_subcommand(1);
    std::string device;

    std::string config_path, out_dir, checkpoint_path;
    std::vector<std::string> overrides;
    bool resume = false, quiet = false;
    int64_t seed = -1;

    CLI::App* train = app.add_subcommand("train", "train and evaluate one experiment");
    train->add_option("--config", config_path, "experiment TOML file")->required()->check(CLI::ExistingFile);
    train->add_option("--out", out_dir, "run directory (default: a new runs/<experiment name>/<date-time>)");
    train->add_option("--seed", seed, "override the config's seed")->check(CLI::NonNegativeNumber);
    train->add_flag("--resume", resume, "continue the run in --out from its checkpoint");
    train->add_option("--set", overrides, "override a config key: section.key=value (TOML value), repeatable");

    CLI::App* run = app.add_subcommand("run", "train (or load) a baseline, prune, fine-tune, evaluate: what the config says");
    run->add_option("--config", config_path, "experiment TOML file")->required()->check(CLI::ExistingFile);
    run->add_option("--out", out_dir, "run directory (default: a new runs/<experiment name>/<date-time>)");
    run->add_option("--seed", seed, "override the config's seed")->check(CLI::NonNegativeNumber);
    run->add_flag("--resume", resume, "continue the run in --out where it stopped");
    run->add_option("--set", overrides, "override a config key: section.key=value (TOML value), repeatable");

    CLI::App* prune = app.add_subcommand("prune", "prune a trained checkpoint as the config's [prune] says (no fine-tuning)");
    prune->add_option("--config", config_path, "experiment TOML file (default: the config saved in the checkpoint)")
        ->check(CLI::ExistingFile);
    prune->add_option("--checkpoint", checkpoint_path, "trained model (model.safetensors)")->required()->check(CLI::ExistingFile);
    prune->add_option("--out", out_dir, "output directory (default: a new runs/<experiment name>/<date-time>)");
    prune->add_option("--set", overrides, "override a config key: section.key=value, e.g. prune.keep=0.3");

    CLI::App* eval = app.add_subcommand("eval", "evaluate a checkpoint on the test set of its config");
    eval->add_option("--config", config_path, "experiment TOML file (default: the config saved in the checkpoint)")
        ->check(CLI::ExistingFile);
    eval->add_option("--checkpoint", checkpoint_path, "model.safetensors or checkpoint.safetensors")
        ->required()->check(CLI::ExistingFile);
    eval->add_option("--set", overrides, "override a config key: section.key=value");

    CLI::App* info = app.add_subcommand("info", "per-layer widths, parameters and MACs of a model");
    info->add_option("--config", config_path, "experiment TOML file (default: the config saved in the checkpoint)")
        ->check(CLI::ExistingFile);
    info->add_option("--checkpoint", checkpoint_path, "a checkpoint: its model, widths and config")
        ->check(CLI::ExistingFile);
    info->add_option("--set", overrides, "override a config key: section.key=value");

    std::vector<int64_t> batches{1, 128};
    LatencyOptions latency_options;
    latency_options.rounds = 5;
    CLI::App* latency = app.add_subcommand(
        "latency", "time a checkpoint's forward pass (eval mode, random input); JSON with ms per forward at each batch");
    latency->add_option("--checkpoint", checkpoint_path, "a model (compacted or not) and its config")
        ->required()->check(CLI::ExistingFile);
    latency->add_option("--config", config_path, "experiment TOML file (default: the config saved in the checkpoint)")
        ->check(CLI::ExistingFile);
    latency->add_option("--batches", batches, "batch sizes, comma-separated")
        ->delimiter(',')
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
    latency->add_option("--warmup", latency_options.warmup, "forwards before timing")->check(CLI::NonNegativeNumber);
    latency->add_option("--repeats", latency_options.repeats, "timed forwards per round; a round's figure is their median")
        ->check(CLI::Range(1, 1 << 20));
    latency->add_option("--rounds", latency_options.rounds, "rounds; the fastest round counts (least disturbed by other jobs)")
        ->check(CLI::Range(1, 1 << 20));

    CLI::App* devices = app.add_subcommand("devices", "say which device --device auto picks");

    bool markdown = false;
    CLI::App* methods = app.add_subcommand("methods", "list every pruning method: its kind, paper and config table");
    methods->add_flag("--markdown", markdown, "as the README's Markdown table");

    bool keys = false;
    CLI::App* config_cmd = app.add_subcommand("config", "print the resolved config of --config, or every key (--keys)");
    config_cmd->add_option("--config", config_path, "experiment TOML file")->check(CLI::ExistingFile);
    config_cmd->add_option("--set", overrides, "override a config key: section.key=value");
    config_cmd->add_option("--seed", seed, "override the config's seed")->check(CLI::NonNegativeNumber);
    config_cmd->add_flag("--keys", keys, "every key with its default, range or choices and doc");
    std::string against;
    config_cmd
        ->add_option("--against", against,
                     "a run's config.toml: print the keys that differ from it (exit 1) or nothing (exit 0)")
        ->check(CLI::ExistingFile);

    for (CLI::App* sub : {train, run, prune})
        sub->add_flag("--quiet", quiet, "print only errors (everything else is in the run directory)");
    for (CLI::App* sub : {train, run, prune, eval, info, latency, devices})
        sub->add_option("--device", device, "auto | cpu | cuda (default: the config's, else auto)")
            ->check(CLI::IsMember({"auto", "cpu", "cuda"}));

    CLI11_PARSE(app, argc, argv);
    try {
        if (*methods) {
            std::printf("%s", markdown ? methods_markdown().c_str() : methods_text().c_str());
            return 0;
        }
        if (*config_cmd) {
            SP_REQUIRE(keys != !config_path.empty(), "spinprune config: give --config FILE or --keys");
            SP_REQUIRE(against.empty() || !keys, "spinprune config: --against compares with --config FILE, not --keys");
            if (keys) {
                std::printf("%s", config_keys_text().c_str());
                return 0;
            }
            ExperimentConfig config = load_config(config_path, overrides);
            if (seed >= 0) config.seed = seed;
            if (against.empty()) {
                std::printf("%s", to_toml(config).c_str());
                return 0;
            }
            const std::vector<std::string> changes = config_changes(load_saved_config(against), config);
            for (const std::string& c : changes) std::printf("%s\n", c.c_str());
            return changes.empty() ? 0 : 1;
        }
        if (*devices) {
            std::string why;
            resolve_device(device.empty() ? "auto" : device, &why);
            std::printf("%s\n", why.c_str());
            return 0;
        }
        SP_REQUIRE(!config_path.empty() || !checkpoint_path.empty(), "give --config, --checkpoint or both");
        ExperimentConfig config = config_path.empty()
                                      ? parse_saved_config(load_checkpoint(checkpoint_path).meta("config"),
                                                           checkpoint_path + " (saved config)", overrides)
                                      : load_config(config_path, overrides);
        if (seed >= 0) config.seed = seed;
        TrainOptions options;
        options.out_dir = out_dir;
        options.resume = resume;
        options.device = device;
        options.quiet = quiet;
        if (*train || *run || *prune) {
            install_stop_handlers();
            nlohmann::json summary = *train ? train_experiment(config, options)
                                     : *run ? run_experiment(config, options)
                                            : prune_checkpoint(config, checkpoint_path, options);
            return summary.value("completed", false) ? 0 : 130;
        }
        // eval, info and latency: the model shaped by the dataset, with a compacted model's widths.
        Dataset test = load_experiment_data(config.data, false);
        std::string why;
        Device d = resolve_device(device.empty() ? config.device : device, &why);
        std::map<std::string, int64_t> widths;
        if (!checkpoint_path.empty()) {
            Checkpoint ck = load_checkpoint(checkpoint_path);
            if (ck.metadata.count("widths")) widths = nlohmann::json::parse(ck.meta("widths")).get<std::map<std::string, int64_t>>();
        }
        std::unique_ptr<Model> model = build_model(config, test, d, widths);
        if (*info) {
            if (!checkpoint_path.empty()) load_model_weights(*model, checkpoint_path);
            print_layer_table(*model);
            if (!checkpoint_path.empty() && !has_description(load_checkpoint(checkpoint_path)))
                std::printf("note: %s predates the model description (input shape, normalisation, widths in its "
                            "metadata): spinprune rebuilds it from its config, Python's spinprune_torch cannot load it\n",
                            checkpoint_path.c_str());
            return 0;
        }
        if (*latency) {
            load_model_weights(*model, checkpoint_path);
            Context ctx(d, static_cast<uint64_t>(config.seed), config.deterministic);
            nlohmann::json ms;
            for (int64_t b : batches) ms["b" + std::to_string(b)] = measure_latency_ms(ctx, *model, b, latency_options);
            nlohmann::json out = {{"checkpoint", checkpoint_path}, {"device", device_name(d)},
                                  {"device_name", d == Device::cuda ? cuda_device_name() : cpu_name()},
                                  {"cpu_threads", omp_get_max_threads()}, {"warmup", latency_options.warmup},
                                  {"repeats", latency_options.repeats}, {"rounds", latency_options.rounds},
                                  {"params", model->parameter_count()}, {"macs", model->macs_per_image()}, {"ms", ms}};
            std::printf("%s\n", out.dump(2).c_str());
            return 0;
        }
        std::printf("%s\n", why.c_str());
        load_model_weights(*model, checkpoint_path);
        // Normalisation statistics come from the training split, as in training.
        ExperimentData data = prepare_experiment_data(config);
        Context ctx(d, static_cast<uint64_t>(config.seed), config.deterministic);
        EvalResult r = evaluate(ctx, *model, data.test, data.norm, config.train.eval_batch_size);
        std::printf("test: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%lld images)\n", r.top1, r.top5, r.loss,
                    static_cast<long long>(r.images));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "spinprune: error: %s\n", e.what());
        return 1;
    }
}
