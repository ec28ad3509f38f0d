// Cost study (make cost-study), the measurements on our backend: what the pruning machinery
// costs per unit of work, each beside a training step of the same network and batch (ResNet-20,
// CIFAR-shaped): one EDropout generation, one Gibbs step per Hamiltonian, one scored filter, one
// RL episode. And where fewer MACs do and don't give speed: for LeNet and ResNet-20 with 50% of
// every prunable layer's filters removed (lowest L1 norm), the forward latency of the dense and
// the physically compacted network across batch sizes; and for 50% of the weights masked
// (per-layer magnitude), the dense network's time with and without the masks, since an
// unstructured mask leaves the dense shapes. Random weights and inputs: time does not depend on
// the values. Writes <work>/study.json and the sweep's dense and compacted networks as
// checkpoints beside it; bench/cost_study.py times those in onnxruntime at the same batches and
// rounds and writes bench/results/<device>_cost_study.md and .json (the JSON feeds report.py's
// latency plot).
//   cost_study_bench [--device cpu|cuda|auto] [--max-batch N] [--repeats R] [--rounds K]
//                    [--machinery-batch B] [--work DIR]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <omp.h>
#include <string>

#include "bench/inputs.h"
#include "bench/timing.h"
#include "nn/cpu/gemm.h"
#include "nn/device.h"
#include "nn/layers.h"
#include "nn/models/model.h"
#include "nn/optim.h"
#include "pruning/accounting.h"
#include "pruning/baselines.h"
#include "pruning/importance.h"
#include "pruning/constrained_rl.h"
#include "pruning/edropout.h"
#include "pruning/feature_scores.h"
#include "pruning/gibbs.h"
#include "pruning/latency.h"
#include "pruning/mask_space.h"
#include "pruning/surgery.h"
#include "train/run_dir.h"
#include "train/trainer.h"

using namespace sp;
using nlohmann::json;

namespace {

// The least-disturbed of `rounds` latency measurements (each a median of lo.repeats forwards):
// on a shared machine other jobs only ever add time.
double latency_ms(Context& ctx, Model& model, int64_t batch, const LatencyOptions& lo, int rounds) {
    double best = measure_latency_ms(ctx, model, batch, lo);
    for (int r = 1; r < rounds; ++r) best = std::min(best, measure_latency_ms(ctx, model, batch, lo));
    return best;
}

struct StudyModel {
    std::string name;
    int64_t channels, size;
};

// Dense vs compacted latency of `spec` with half of every prunable set's filters removed; both
// networks are saved to `work` (no input normalisation: the graph is the network we time).
json structured_sweep(Context& ctx, const StudyModel& spec, int64_t max_batch, const LatencyOptions& lo, int rounds,
                      const std::string& work) {
    auto model = make_model(spec.name, spec.channels, spec.size, spec.size, 10);
    model->allocate(ctx.device(), 1);
    MaskSpace space(*model, MaskSpaceOptions{});
    const std::vector<float> scores = importance_scores(l1_importance, ScoreInput{ctx, space}, "l1");
    const std::vector<float> state =
        select_by_rates(space, scores, std::vector<double>(space.segments().size(), 0.5));
    const ModelAccount acc = account(space, state);
    std::unique_ptr<Model> compact = compact_model(*model, space.kept_channels(state));
    // File names relative to `work`, where study.json lies.
    const json checkpoints = {{"dense", spec.name + "_dense.safetensors"}, {"compacted", spec.name + "_compacted.safetensors"}};
    save_model(work + "/" + checkpoints["dense"].get<std::string>(), *model, ExperimentConfig{}, Normalization{});
    save_model(work + "/" + checkpoints["compacted"].get<std::string>(), *compact, ExperimentConfig{}, Normalization{});
    json points = json::array();
    for (int64_t b = 1; b <= max_batch; b *= 2) {
        const double dense = latency_ms(ctx, *model, b, lo, rounds);
        const double compacted = latency_ms(ctx, *compact, b, lo, rounds);
        points.push_back({{"batch", b}, {"dense_ms", dense}, {"compacted_ms", compacted}});
        std::fprintf(stderr, "%s batch %lld: dense %.3f ms, compacted %.3f ms\n", spec.name.c_str(),
                     static_cast<long long>(b), dense, compacted);
    }
    return {{"name", spec.name}, {"params_kept", acc.params_kept()}, {"macs_kept", acc.macs_kept()},
            {"dense_macs", model->macs_per_image()}, {"compacted_macs", compact->macs_per_image()},
            {"dense_params", model->parameter_count()}, {"compacted_params", compact->parameter_count()},
            {"checkpoints", checkpoints}, {"latency", points}};
}

// The dense network's time without masks and with 50% of its weights masked.
json unstructured_check(Context& ctx, const StudyModel& spec, const std::vector<int64_t>& batches,
                        const LatencyOptions& lo, int rounds) {
    auto model = make_model(spec.name, spec.channels, spec.size, spec.size, 10);
    model->allocate(ctx.device(), 1);
    MaskSpaceOptions mo;
    mo.granularity = Granularity::weight;
    MaskSpace space(*model, mo);
    const std::vector<float> state = select_to_target(
        space, importance_scores(magnitude_importance, ScoreInput{ctx, space}, "magnitude"), Selection::per_segment,
        PruneTarget{BudgetKind::params, 0.5});
    const ModelAccount acc = account(space, state);
    Tensor units = Tensor::from_host(state, Shape{space.size()}, ctx.device());
    json points = json::array();
    for (int64_t b : batches) {
        const double dense = latency_ms(ctx, *model, b, lo, rounds);
        space.attach(ctx, units);
        const double masked = latency_ms(ctx, *model, b, lo, rounds);
        space.detach();
        points.push_back({{"batch", b}, {"dense_ms", dense}, {"masked_ms", masked}});
    }
    return {{"name", spec.name}, {"params_kept", acc.params_kept()}, {"latency", points}};
}

// The machinery of every method on ResNet-20 at `batch` random CIFAR-shaped images, in ms per
// unit of work, each the median of `repeats` after a warm-up:
//   training step  forward, cross-entropy, backward, SGD (momentum 0.9) — the yardstick;
//   edropout       one generation: P = 8 trial states of the filter masks made, scored on the
//                  batch (margin energy, one batched pass) and selected;
//   gibbs          one step's draw for every pruned layer (p = 0.9; filter-wise: 50 sweeps);
//   scored filter  the nuclear norm of every filter's maps from 640 images, per filter;
//   RL episode     32 layer-wise episodes scored as one population on 256 images, per episode.
json machinery(Context& ctx, int64_t batch, int repeats) {
    auto model = make_model("resnet20", 3, 32, 32, 10);
    model->allocate(ctx.device(), 1);
    const Tensor images = bench::uniform_tensor(Shape{batch, 3, 32, 32}, ctx.device(), 4, 1.0f);
    const Tensor labels = bench::cyclic_labels(batch, 10, ctx.device());
    json rows = json::array();
    auto add = [&](const std::string& work, const std::string& unit, double ms) {
        rows.push_back({{"work", work}, {"unit", unit}, {"ms", ms}});
        std::fprintf(stderr, "machinery %s: %.3f ms per %s\n", work.c_str(), ms, unit.c_str());
    };

    model->set_training(true);
    SgdHyper hyper;
    hyper.momentum = 0.9f;
    Sgd sgd(hyper);
    SoftmaxCrossEntropy loss_fn;
    const double step_ms = 1e3 * bench::median_seconds(ctx, repeats, [&] {
        Tensor& logits = model->forward(ctx, images);
        loss_fn.forward(ctx, logits, labels);
        model->backward(ctx, loss_fn.backward(ctx));
        sgd.step(ctx, model->parameters(), 0.01f);
    });
    add("training step", "step", step_ms);

    {
        MaskSpace space(*model, MaskSpaceOptions{});
        EDropoutOptions eo;
        eo.min_generations = 1 << 30;  // never converges here
        EDropoutSearch search(space, eo, ctx);
        int64_t generation = 0;
        const double ms = 1e3 * bench::median_seconds(ctx, repeats, [&] {
            ctx.set_step(static_cast<uint64_t>(generation++));
            search.before_step(ctx, images, labels, 0);
        });
        add("edropout generation (P = 8, filter masks)", "generation", ms);
    }
    for (GibbsHamiltonian h : {GibbsHamiltonian::unstructured, GibbsHamiltonian::kernel, GibbsHamiltonian::filter}) {
        GibbsOptions go;
        go.hamiltonian = h;
        go.schedule = GibbsSchedule{1e3, 1e3, 1};
        GibbsTraining sampler(*model, go, ctx);
        int64_t step = 0;
        const int draws = h == GibbsHamiltonian::filter ? std::max(1, repeats / 4) : repeats;  // seconds each on a CPU
        const double ms = 1e3 * bench::median_seconds(ctx, draws, [&] {
            ctx.set_step(static_cast<uint64_t>(step++));
            sampler.before_step(ctx, images, labels, 0);
        });
        sampler.detach();
        add(std::string("gibbs step, ") + gibbs_hamiltonian_name(h), "step", ms);
    }
    {
        MaskSpace space(*model, MaskSpaceOptions{});
        FeatureScoreOptions fo;
        fo.images = 640;
        fo.batch_size = std::min<int64_t>(128, batch);
        const Tensor scoring_images = bench::uniform_tensor(Shape{fo.images, 3, 32, 32}, ctx.device(), 6, 1.0f);
        const double ms = 1e3 * bench::median_seconds(ctx, std::max(1, repeats / 4),
                                                      [&] { feature_map_scores(ctx, space, scoring_images, fo); });
        add("scored filter (nuclear norm, 640 images)", "filter", ms / static_cast<double>(space.size()));
    }
    {
        MaskSpace space(*model, MaskSpaceOptions{});
        ConstrainedRlOptions ro;
        ro.budget = 0.3;
        const int64_t episodes = 32, eval_images = 256;
        const Tensor eval_x = bench::uniform_tensor(Shape{eval_images, 3, 32, 32}, ctx.device(), 7, 1.0f);
        const Tensor eval_y = bench::cyclic_labels(eval_images, 10, ctx.device());
        PruningEnvironment env(ctx, space, ro, eval_x, eval_y);
        std::vector<float> states;
        for (int64_t e = 0; e < episodes; ++e) {  // each episode prunes a different fraction of every layer
            std::vector<float> actions(static_cast<size_t>(env.steps() * env.action_dim()),
                                       0.8f * static_cast<float>(e) / static_cast<float>(episodes));
            const std::vector<float> state = env.episode_state(actions.data());
            states.insert(states.end(), state.begin(), state.end());
        }
        const double ms = 1e3 * bench::median_seconds(ctx, std::max(1, repeats / 4), [&] { env.rewards(states, episodes, true); });
        add("RL episode (layer-wise, 32 per population, 256 images)", "episode", ms / static_cast<double>(episodes));
    }
    return {{"model", "resnet20"}, {"batch", batch}, {"step_ms", step_ms}, {"rows", rows}};
}

std::string utc_now() {
    char buf[32];
    const std::time_t t = std::time(nullptr);
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
    return buf;
}

// The 1-, 5- and 15-minute load averages: how busy the machine was around the measurements.
json load_average() {
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) != 3) return nullptr;
    return {load[0], load[1], load[2]};
}

}  // namespace

int main(int argc, char** argv) {
    cpu::configure_cpu_blas(argv);
    CLI::App app{"dense vs compacted latency across batch sizes, and unstructured masks' effect on dense time"};
    std::string device_arg = "auto", work = "build/cost_study";
    int64_t max_batch = 512;
    int repeats = -1, rounds = -1;
    int64_t machinery_batch = -1;
    app.add_option("--device", device_arg, "cpu | cuda | auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}));
    app.add_option("--max-batch", max_batch, "largest batch of the sweep (powers of two from 1)")->check(CLI::PositiveNumber);
    app.add_option("--repeats", repeats, "timed forwards per point, median reported (default: 20 on the GPU, 1 on the CPU)");
    app.add_option("--rounds", rounds, "measurements per point, the minimum reported (default: 1 on the GPU, 5 on the CPU)");
    app.add_option("--machinery-batch", machinery_batch, "batch of the machinery costs (default: 128 on the GPU, 32 on the CPU)");
    app.add_option("--work", work, "folder for study.json and the sweep's checkpoints (bench/cost_study.py reads them)");
    CLI11_PARSE(app, argc, argv);
    try {
        const Device device = resolve_device(device_arg);
        LatencyOptions lo;
        lo.repeats = repeats > 0 ? repeats : device == Device::cuda ? 20 : 1;
        lo.warmup = device == Device::cuda ? 3 : 1;
        if (rounds <= 0) rounds = device == Device::cuda ? 1 : 5;
        std::filesystem::create_directories(work);
        Context ctx(device, 1, true);
        const json env = environment_info(device);
        std::string command = "cost_study_bench --device " + std::string(device_name(device)) +
                              " --max-batch " + std::to_string(max_batch) + " --repeats " + std::to_string(lo.repeats) + " --rounds " + std::to_string(rounds);
        // cpu_threads: the OpenMP threads of the CPU backend; onnxruntime gets as many.
        json study = {{"device", env["device"]}, {"device_name", env["device_name"]},
                      {"git_revision", env["git_revision"]}, {"date", utc_now()}, {"command", command},
                      {"repeats", lo.repeats}, {"rounds", rounds}, {"warmup", lo.warmup},
                      {"cpu_threads", omp_get_max_threads()}, {"load_average", {{"start", load_average()}}}};
        if (machinery_batch <= 0) machinery_batch = device == Device::cuda ? 128 : 32;
        study["machinery"] = machinery(ctx, machinery_batch, device == Device::cuda ? 20 : 4);
        const std::vector<StudyModel> models = {{"lenet", 1, 28}, {"resnet20", 3, 32}};
        study["models"] = json::array();
        for (const StudyModel& m : models)
            study["models"].push_back(structured_sweep(ctx, m, max_batch, lo, rounds, work));
        study["unstructured"] = json::array();
        for (const StudyModel& m : models)
            study["unstructured"].push_back(unstructured_check(ctx, m, {1, std::min<int64_t>(128, max_batch)}, lo, rounds));
        study["load_average"]["end"] = load_average();
        const std::string path = work + "/study.json";
        write_file_atomically(path, study.dump(2) + "\n");
        std::fprintf(stderr, "wrote %s (bench/cost_study.py adds onnxruntime and writes the tables)\n", path.c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
