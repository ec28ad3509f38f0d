// Cost study (make cost-study): where fewer MACs do and don't give speed. For LeNet and ResNet-20
// with 50% of every prunable layer's filters removed (lowest L1 norm), the forward latency of the
// dense and the physically compacted network across batch sizes; and for 50% of the weights
// masked (per-layer magnitude), the dense network's time with and without the masks, since an
// unstructured mask leaves the dense shapes. Random weights and inputs: time does not depend on
// the values. Writes bench/results/<device>_cost_study.md and .json (the JSON feeds report.py's
// latency plot).
//   cost_study_bench [--device cpu|cuda|auto] [--max-batch N] [--repeats R] [--rounds K] [--out DIR]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "nn/cpu/gemm.h"
#include "nn/device.h"
#include "nn/models/model.h"
#include "pruning/accounting.h"
#include "pruning/baselines.h"
#include "pruning/latency.h"
#include "pruning/mask_space.h"
#include "pruning/surgery.h"
#include "train/run_dir.h"

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

// Dense vs compacted latency of `spec` with half of every prunable set's filters removed.
json structured_sweep(Context& ctx, const StudyModel& spec, int64_t max_batch, const LatencyOptions& lo, int rounds) {
    auto model = make_model(spec.name, spec.channels, spec.size, spec.size, 10);
    model->allocate(ctx.device(), 1);
    MaskSpace space(*model, MaskSpaceOptions{});
    const std::vector<float> scores = baseline_scores("l1-filter", space, 1);
    const std::vector<float> state =
        select_by_rates(space, scores, std::vector<double>(space.segments().size(), 0.5));
    const ModelAccount acc = account(space, state);
    std::unique_ptr<Model> compact = compact_model(*model, space.kept_channels(state));
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
            {"latency", points}};
}

// The dense network's time without masks and with 50% of its weights masked.
json unstructured_check(Context& ctx, const StudyModel& spec, const std::vector<int64_t>& batches,
                        const LatencyOptions& lo, int rounds) {
    auto model = make_model(spec.name, spec.channels, spec.size, spec.size, 10);
    model->allocate(ctx.device(), 1);
    MaskSpaceOptions mo;
    mo.granularity = Granularity::weight;
    MaskSpace space(*model, mo);
    const std::vector<float> state =
        baseline_state("magnitude", space, PruneTarget{BudgetKind::params, 0.5}, 1);
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

std::string utc_now() {
    char buf[32];
    const std::time_t t = std::time(nullptr);
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
    return buf;
}

std::string markdown(const json& study) {
    std::ostringstream md;
    char line[512];
    md << "# Cost study: dense vs compacted latency, unstructured masks\n\n"
       << "Device: " << study["device_name"].get<std::string>() << " (" << study["device"].get<std::string>()
       << "); date " << study["date"].get<std::string>() << "; commit " << study["git_revision"].get<std::string>()
       << ". Command: `make cost-study` (" << study["command"].get<std::string>() << ").\n"
       << "Latency: milliseconds per forward in eval mode on random input, the minimum over "
       << study["rounds"].get<int>() << " rounds of the median of " << study["repeats"].get<int>() << " forwards (after "
       << study["warmup"].get<int>() << " warm-up runs each); the minimum, since other jobs on a shared machine only "
       << "add time. MACs: multiply-accumulates per image (1 MAC = 2 FLOPs).\n\n"
       << "## Dense vs compacted (50% of every prunable layer's filters removed, lowest L1 norm)\n\n";
    for (const json& m : study["models"]) {
        std::snprintf(line, sizeof line,
                      "### %s: %.1f%% of the parameters, %.1f%% of the MACs kept (%lld -> %lld MACs/image)\n\n"
                      "| batch | dense ms | compacted ms | speed-up | MAC ratio |\n|---:|---:|---:|---:|---:|\n",
                      m["name"].get<std::string>().c_str(), 100 * m["params_kept"].get<double>(),
                      100 * m["macs_kept"].get<double>(), static_cast<long long>(m["dense_macs"].get<int64_t>()),
                      static_cast<long long>(m["compacted_macs"].get<int64_t>()));
        md << line;
        for (const json& p : m["latency"]) {
            std::snprintf(line, sizeof line, "| %lld | %.3f | %.3f | %.2fx | %.2fx |\n",
                          static_cast<long long>(p["batch"].get<int64_t>()), p["dense_ms"].get<double>(),
                          p["compacted_ms"].get<double>(), p["dense_ms"].get<double>() / p["compacted_ms"].get<double>(),
                          1.0 / m["macs_kept"].get<double>());
            md << line;
        }
        md << "\n";
    }
    md << "## Unstructured masks (50% of the weights, per-layer magnitude) on the dense network\n\n"
       << "| model | batch | dense ms | masked ms | masked / dense |\n|---|---:|---:|---:|---:|\n";
    for (const json& m : study["unstructured"])
        for (const json& p : m["latency"]) {
            std::snprintf(line, sizeof line, "| %s | %lld | %.3f | %.3f | %.2f |\n", m["name"].get<std::string>().c_str(),
                          static_cast<long long>(p["batch"].get<int64_t>()), p["dense_ms"].get<double>(),
                          p["masked_ms"].get<double>(), p["masked_ms"].get<double>() / p["dense_ms"].get<double>());
            md << line;
        }
    return md.str();
}

}  // namespace

int main(int argc, char** argv) {
    cpu::configure_cpu_blas(argv);
    CLI::App app{"dense vs compacted latency across batch sizes, and unstructured masks' effect on dense time"};
    std::string device_arg = "auto", out_dir = "bench/results";
    int64_t max_batch = 512;
    int repeats = -1, rounds = -1;
    app.add_option("--device", device_arg, "cpu | cuda | auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}));
    app.add_option("--max-batch", max_batch, "largest batch of the sweep (powers of two from 1)")->check(CLI::PositiveNumber);
    app.add_option("--repeats", repeats, "timed forwards per point, median reported (default: 20 on the GPU, 3 on the CPU)");
    app.add_option("--rounds", rounds, "measurements per point, the minimum reported (default: 1 on the GPU, 5 on the CPU)");
    app.add_option("--out", out_dir, "folder for <device>_cost_study.md and .json");
    CLI11_PARSE(app, argc, argv);
    try {
        const Device device = device_arg == "cuda"  ? Device::cuda
                              : device_arg == "cpu" ? Device::cpu
                                                    : (cuda_available() ? Device::cuda : Device::cpu);
        LatencyOptions lo;
        lo.repeats = repeats > 0 ? repeats : device == Device::cuda ? 20 : 1;
        lo.warmup = device == Device::cuda ? 3 : 1;
        if (rounds <= 0) rounds = device == Device::cuda ? 1 : 5;
        Context ctx(device, 1, true);
        const json env = environment_info(device);
        std::string command = "cost_study_bench --device " + std::string(device_name(device)) +
                              " --max-batch " + std::to_string(max_batch) + " --repeats " + std::to_string(lo.repeats) + " --rounds " + std::to_string(rounds);
        json study = {{"device", env["device"]}, {"device_name", env["device_name"]},
                      {"git_revision", env["git_revision"]}, {"date", utc_now()}, {"command", command},
                      {"repeats", lo.repeats}, {"rounds", rounds}, {"warmup", lo.warmup}};
        const std::vector<StudyModel> models = {{"lenet", 1, 28}, {"resnet20", 3, 32}};
        study["models"] = json::array();
        for (const StudyModel& m : models) study["models"].push_back(structured_sweep(ctx, m, max_batch, lo, rounds));
        study["unstructured"] = json::array();
        for (const StudyModel& m : models)
            study["unstructured"].push_back(unstructured_check(ctx, m, {1, std::min<int64_t>(128, max_batch)}, lo, rounds));
        const std::string base = out_dir + "/" + std::string(device_name(device)) + "_cost_study";
        std::ofstream(base + ".json") << study.dump(2) << "\n";
        std::ofstream(base + ".md") << markdown(study);
        std::printf("%s", markdown(study).c_str());
        std::fprintf(stderr, "wrote %s.md and %s.json\n", base.c_str(), base.c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
