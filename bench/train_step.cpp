// Training-step benchmark (issue 10), our side: images per second of a full training step —
// forward, softmax cross-entropy (its value read back, as the trainer does), backward, SGD
// update — for CIFAR-shaped (3x32x32) random data already on the device, after a warm-up, the
// median over repeats. Beside it, two floors for the same step: its MACs (3 × the forward's:
// forward, backward-data, backward-weight) at the device's measured SGEMM rate, and an
// estimate of its memory traffic at the device's measured bandwidth (see traffic_bytes). Prints
// one JSON object per case (for bench/train_vs_torch.sh) or a Markdown table.
// --masks adds Gibbs pruning's per-step masks (issue 6: images/s with masks on vs off): "gibbs"
// draws a new unstructured mask (p = 0.9) before every step and the layers form w ⊙ m in their
// forward; "gibbs-fused" has the draw write w ⊙ m in the same pass (prune.gibbs.fused_apply).
// Their rows also give the draw alone (ms per step, median over repeats of one draw).
//   train_step_bench [--device cpu|cuda|auto] [--models resnet20,resnet56,vgg16] [--batches 128,512]
//                    [--steps N] [--repeats R] [--masks dense,gibbs,gibbs-fused] [--json]
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/inputs.h"
#include "bench/timing.h"
#include "kernels/philox.h"
#include "nn/cpu/gemm.h"
#include "nn/device.h"
#include "nn/layers.h"
#include "nn/models/model.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "pruning/gibbs.h"

using namespace sp;

namespace {

using bench::uniform_tensor;

// The device's SGEMM rate in MACs/s: an n×n×n product through our linear op (cuBLAS / OpenBLAS).
double measured_mac_rate(Context& ctx, int64_t n, int repeats) {
    Tensor a = uniform_tensor(Shape{n, n}, ctx.device(), 1, 1.0f), b = uniform_tensor(Shape{n, n}, ctx.device(), 2, 1.0f);
    Tensor c(Shape{n, n}, ctx.device());
    const double s = bench::median_seconds(ctx, repeats, [&] { linear_forward(ctx, a, b, nullptr, c); });
    return static_cast<double>(n) * n * n / s;
}

// The device's bandwidth in bytes/s: y += a·x over `n` floats reads 2n and writes n floats.
double measured_bandwidth(Context& ctx, int64_t n, int repeats) {
    Tensor x = uniform_tensor(Shape{n}, ctx.device(), 3, 1.0f), y(Shape{n}, ctx.device());
    const double s = bench::median_seconds(ctx, repeats, [&] { axpy(ctx, 0.5f, x, y); });
    return 12.0 * static_cast<double>(n) / s;
}

// A lower estimate of one step's memory traffic: every layer output written by the forward and
// read by the backward, its gradient written and read once (4 passes over the activations), and
// the SGD update reading weights, gradients and momentum and writing weights and momentum (5
// passes over the parameters), plus the forward and backward reads of the weights (2 more).
double traffic_bytes(Model& model, int64_t batch) {
    double activations = 0;
    for (const LayerCost& c : model.layer_costs()) activations += static_cast<double>(c.output.numel());
    return 4.0 * (4.0 * activations * static_cast<double>(batch) + 7.0 * static_cast<double>(model.parameter_count()));
}

std::vector<std::string> split(const std::string& list) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= list.size()) {
        const size_t comma = list.find(',', start);
        out.push_back(list.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    cpu::configure_cpu_blas(argv);
    CLI::App app{"images/s of a full training step, with MAC-rate and bandwidth floors"};
    std::string device_arg = "auto", models = "resnet20,resnet56,vgg16", batches, math = "fp32", masks = "dense";
    int steps = -1, repeats = -1;
    bool as_json = false;
    app.add_option("--device", device_arg, "cpu | cuda | auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}));
    app.add_option("--models", models, "comma-separated model names");
    app.add_option("--batches", batches, "comma-separated batch sizes (default 128,512 on the GPU, 32,128 on the CPU)");
    app.add_option("--steps", steps, "steps per timed repeat (default 20 on the GPU, 2 on the CPU)");
    app.add_option("--repeats", repeats, "timed repeats, median reported (default 5 on the GPU, 3 on the CPU)");
    app.add_option("--math", math, "fp32 (exact) | tf32 (tensor cores; CUDA only)")->check(CLI::IsMember({"fp32", "tf32"}));
    app.add_option("--masks", masks, "comma-separated: dense | gibbs | gibbs-fused (Gibbs unstructured masks every step)");
    app.add_flag("--json", as_json, "one JSON object per case instead of a table");
    CLI11_PARSE(app, argc, argv);
    try {
        const Device device = resolve_device(device_arg);
        const bool gpu = device == Device::cuda;
        if (batches.empty()) batches = gpu ? "128,512" : "32,128";
        if (steps < 0) steps = gpu ? 20 : 2;
        if (repeats < 0) repeats = gpu ? 5 : 3;
        Context ctx(device, 1);
        ctx.set_math(math_mode_from_name(math));
        const double mac_rate = measured_mac_rate(ctx, gpu ? 4096 : 1024, repeats);
        const double bandwidth = measured_bandwidth(ctx, gpu ? (int64_t{1} << 28) : (int64_t{1} << 24), repeats);
        if (!as_json)
            std::printf("Training step, %s, %s: SGEMM %.1f GMAC/s, bandwidth %.1f GB/s (measured); median of %d "
                        "repeats of %d steps\n\n| model | masks | batch | ms/step | images/s | mask draw ms/step | MAC floor ms "
                        "| traffic floor ms | step / MAC floor |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
                        math.c_str(), device_name(device), mac_rate * 1e-9, bandwidth * 1e-9, repeats, steps);
        for (const std::string& mask_mode : split(masks))
            SP_REQUIRE(mask_mode == "dense" || mask_mode == "gibbs" || mask_mode == "gibbs-fused",
                       "--masks: '" << mask_mode << "', expected dense, gibbs or gibbs-fused");
        // One row: `name` at `batch`, with `mask_mode`'s masks.
        auto run_case = [&](const std::string& name, int64_t batch, const std::string& mask_mode) {
            auto model = make_model(name, 3, 32, 32, 10);
            model->allocate(device, 1);
            model->set_training(true);
            Tensor images = uniform_tensor(Shape{batch, 3, 32, 32}, device, 4, 1.0f);
            Tensor labels = bench::cyclic_labels(batch, 10, device);
            SgdHyper hyper;
            hyper.momentum = 0.9f;
            hyper.weight_decay = 5e-4f;
            Sgd sgd(hyper);
            SoftmaxCrossEntropy loss_fn;
            std::unique_ptr<GibbsTraining> sampler;
            if (mask_mode != "dense") {
                GibbsOptions o;
                o.p = 0.9;
                o.schedule = GibbsSchedule{1e3, 1e3, 1};
                o.fused_apply = mask_mode == "gibbs-fused";
                sampler = std::make_unique<GibbsTraining>(*model, o, ctx);
            }
            uint64_t step_index = 0;
            auto step = [&] {
                ctx.set_step(step_index++);
                if (sampler) sampler->before_step(ctx, images, labels, 0);
                Tensor& logits = model->forward(ctx, images);
                loss_fn.forward(ctx, logits, labels);
                model->backward(ctx, loss_fn.backward(ctx));
                sgd.step(ctx, model->parameters(), 0.01f);
                if (sampler) sampler->after_step(ctx);
            };
            step();  // allocations and algorithm choice outside the timing
            const double seconds = bench::median_seconds(ctx, repeats, [&] {
                for (int s = 0; s < steps; ++s) step();
            }) / steps;
            const double draw_seconds = !sampler ? 0.0 : bench::median_seconds(ctx, repeats, [&] {
                ctx.set_step(step_index++);
                sampler->before_step(ctx, images, labels, 0);
            });
            const double macs = 3.0 * static_cast<double>(model->macs_per_image()) * static_cast<double>(batch);
            const double mac_floor = macs / mac_rate, traffic_floor = traffic_bytes(*model, batch) / bandwidth;
            if (as_json) {
                nlohmann::json row = {{"side", "spinprune"},          {"model", name},
                                      {"batch", batch},               {"device", device_name(device)},
                                      {"ms_per_step", 1e3 * seconds}, {"images_per_s", batch / seconds},
                                      {"params", model->parameter_count()}, {"macs_per_image", model->macs_per_image()},
                                      {"mac_floor_ms", 1e3 * mac_floor}, {"traffic_floor_ms", 1e3 * traffic_floor},
                                      {"gemm_gmac_s", mac_rate * 1e-9}, {"bandwidth_gb_s", bandwidth * 1e-9},
                                      {"math", math}, {"masks", mask_mode},
                                      {"mask_draw_ms", 1e3 * draw_seconds}};
                std::printf("%s\n", row.dump().c_str());
            } else {
                char draw[32] = "–";
                if (sampler) std::snprintf(draw, sizeof draw, "%.3f", 1e3 * draw_seconds);
                std::printf("| %s | %s | %lld | %.2f | %.0f | %s | %.2f | %.2f | %.2f |\n", name.c_str(),
                            mask_mode.c_str(), static_cast<long long>(batch), 1e3 * seconds, batch / seconds, draw,
                            1e3 * mac_floor, 1e3 * traffic_floor, seconds / mac_floor);
            }
            std::fflush(stdout);
        };
        for (const std::string& name : split(models))
            for (const std::string& batch_text : split(batches))
                for (const std::string& mask_mode : split(masks)) run_case(name, std::stoll(batch_text), mask_mode);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
