// Scoring cost of energy-aware pruning (issue 7): the time to score every prunable filter of
// ResNet-56 (3x32x32 inputs) from N images with each criterion, and how much of it is the
// forward passes and how much the per-map SVDs (score time − forward time). Prints a Markdown
// table. Random images: the cost does not depend on the data.
//   scoring_cost_bench [--device cpu|cuda] [--images N] [--repeats R] [--model NAME]
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "bench/timing.h"
#include "kernels/philox.h"
#include "nn/cpu/gemm.h"
#include "nn/device.h"
#include "nn/models/model.h"
#include "pruning/feature_scores.h"
#include "pruning/mask_space.h"

using namespace sp;

int main(int argc, char** argv) {
    cpu::configure_cpu_blas(argv);
    CLI::App app{"time to score every filter with each feature criterion, and the SVD's share"};
    std::string device_arg = "auto", model_name = "resnet56";
    int64_t images_count = 640;
    int repeats = -1;
    app.add_option("--device", device_arg, "cpu | cuda | auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}));
    app.add_option("--images", images_count, "images scored (the energy-aware setting: 5 batches of 128)")->check(CLI::PositiveNumber);
    app.add_option("--repeats", repeats, "timed runs, median reported (default: 5 on the GPU, 1 on the CPU)");
    app.add_option("--model", model_name, "model to score");
    CLI11_PARSE(app, argc, argv);
    try {
        const Device device = resolve_device(device_arg);
        if (repeats < 0) repeats = device == Device::cuda ? 5 : 1;
        Context ctx(device, 1, true);
        auto model = make_model(model_name, 3, 32, 32, 10);
        model->allocate(device, 3);
        MaskSpace space(*model, MaskSpaceOptions{});
        std::vector<float> pixels(static_cast<size_t>(images_count * 3 * 32 * 32));
        for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = 2.0f * stream_uniform(5, i) - 1.0f;
        Tensor images = Tensor::from_host(pixels, Shape{images_count, 3, 32, 32}, device);
        FeatureScoreOptions o;
        o.images = images_count;

        int64_t maps = 0;
        visit_feature_maps(ctx, space, images, o, [&](size_t, const Tensor& m) { maps += m.dim(0) * m.dim(1); });
        const double forward = bench::median_seconds(ctx, repeats, [&] {
            visit_feature_maps(ctx, space, images, o, [](size_t, const Tensor&) {});
        });
        std::printf("Scoring every prunable filter of %s (%lld filters in %zu layers, %lld feature maps) from %lld "
                    "images, batch %lld, device %s, median of %d after a warm-up. Forward passes alone: %.3f s.\n\n",
                    model_name.c_str(), static_cast<long long>(space.size()), space.segments().size(),
                    static_cast<long long>(maps), static_cast<long long>(images_count),
                    static_cast<long long>(o.batch_size), device_name(device), repeats, forward);
        std::printf("| criterion | scoring ms | forward ms | map work ms | map work share | maps/s |\n");
        std::printf("|---|---:|---:|---:|---:|---:|\n");
        for (FeatureCriterion c : {FeatureCriterion::nuclear_norm, FeatureCriterion::rank, FeatureCriterion::l1}) {
            o.criterion = c;
            const double total = bench::median_seconds(ctx, repeats, [&] { feature_map_scores(ctx, space, images, o); });
            if (c == FeatureCriterion::l1) {  // the weights only: no forward, no maps
                std::printf("| l1 | %.3f | — | %.3f | — | — |\n", 1e3 * total, 1e3 * total);
                continue;
            }
            const double work = total - forward;
            std::printf("| %s | %.1f | %.1f | %.1f | %.0f%% | %.0f |\n", feature_criterion_name(c), 1e3 * total,
                        1e3 * forward, 1e3 * work, 100 * work / total, static_cast<double>(maps) / work);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
