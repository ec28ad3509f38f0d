// Population-evaluation benchmark: batched (one forward of P·B images) vs one-by-one (P
// forwards of B images) for filter and weight masks, on lenet and resnet20 with
// Fashion-MNIST-shaped (1x28x28) and CIFAR-shaped (3x32x32) random data. Prints a Markdown
// table: time per member, the one-by-one / batched ratio, and the achieved MAC rate (MACs per
// image × images / time).
//   population_bench [--device cpu|cuda|auto] [--repeats N] [--batch B] [--max-members P]
//                    [--granularities filter,weight]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/timing.h"
#include "kernels/error.h"
#include "nn/cpu/gemm.h"
#include "nn/device.h"
#include "nn/models/model.h"
#include "pruning/mask_space.h"
#include "pruning/population.h"

using namespace sp;

using bench::median_seconds;

int main(int argc, char** argv) {
    cpu::configure_cpu_blas(argv);
    CLI::App app{"batched vs one-by-one population evaluation, filter and weight masks"};
    std::string device_arg = "cpu", granularities = "filter,weight";
    int repeats = -1;
    int64_t batch = 128, max_members = -1;
    app.add_option("--device", device_arg, "cpu | cuda | auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}));
    app.add_option("--repeats", repeats, "timed runs, median reported (default 10 on the GPU, 1 on the CPU)");
    app.add_option("--batch", batch, "images per member (B)")->check(CLI::PositiveNumber);
    app.add_option("--max-members", max_members, "largest P of 1, 8, 32, 128 (default 128 on the GPU, 32 on the CPU)");
    app.add_option("--granularities", granularities, "comma-separated: filter, weight, kernel");
    CLI11_PARSE(app, argc, argv);
    try {
        const Device device = resolve_device(device_arg);
        // The CPU is slow: fewer repeats and members there by default.
        if (repeats < 0) repeats = device == Device::cuda ? 10 : 1;
        if (max_members < 0) max_members = device == Device::cuda ? 128 : 32;
        Context ctx(device, 1, true);
        std::printf("Population evaluation, B = %lld, device %s, median of %d (after a warm-up). Filter masks: one "
                    "forward of P·B images with per-member channel gates; weight masks: one forward with every "
                    "conv/linear as a grouped convolution over the P members' masked weights.\n\n",
                    static_cast<long long>(batch), device_name(device), repeats);
        std::printf("| model | input | masks | P | batched ms/member | one-by-one ms/member | ratio | batched GMAC/s | one-by-one GMAC/s |\n");
        std::printf("|---|---|---|---:|---:|---:|---:|---:|---:|\n");
        struct Case { const char* model; int64_t c, hw; };
        for (Case cs : {Case{"lenet", 1, 28}, Case{"lenet", 3, 32}, Case{"resnet20", 1, 28}, Case{"resnet20", 3, 32}}) {
            auto model = make_model(cs.model, cs.c, cs.hw, cs.hw, 10);
            model->allocate(device, 3);
            const double macs = static_cast<double>(model->macs_per_image());
            std::vector<float> img(static_cast<size_t>(batch * cs.c * cs.hw * cs.hw)), lab(static_cast<size_t>(batch));
            for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<float>((i * 2654435761u) % 1000) / 500.0f - 1.0f;
            for (size_t i = 0; i < lab.size(); ++i) lab[i] = static_cast<float>(i % 10);
            Tensor images = Tensor::from_host(img, Shape{batch, cs.c, cs.hw, cs.hw}, device);
            Tensor labels = Tensor::from_host(lab, Shape{batch}, device);
            for (size_t start = 0; start <= granularities.size();) {
                const size_t comma = std::min(granularities.find(',', start), granularities.size());
                const std::string granularity = granularities.substr(start, comma - start);
                start = comma + 1;
                MaskSpaceOptions so;
                so.granularity = granularity_from_name(granularity);
                MaskSpace space(*model, so);
                for (int64_t p : {1, 8, 32, 128}) {
                    if (p > max_members) continue;
                    std::vector<float> pop(static_cast<size_t>(p * space.size()));
                    for (size_t i = 0; i < pop.size(); ++i) pop[i] = ((i * 40503u) % 10) < 7 ? 1.0f : 0.0f;
                    for (int64_t m = 0; m < p; ++m) {
                        std::vector<float> s(pop.begin() + m * space.size(), pop.begin() + (m + 1) * space.size());
                        space.repair(s);
                        std::copy(s.begin(), s.end(), pop.begin() + m * space.size());
                    }
                    Tensor population = Tensor::from_host(pop, Shape{p, space.size()}, device);
                    Tensor energies(Shape{p}, device);
                    PopulationEvaluator ev(space, PopulationOptions{});
                    const double tb = median_seconds(ctx, repeats, [&] { ev.evaluate(ctx, population, images, labels, energies); });
                    const double to = median_seconds(ctx, repeats, [&] { ev.evaluate_one_by_one(ctx, population, images, labels, energies); });
                    const double images_total = static_cast<double>(p * batch);
                    std::printf("| %s | %lldx%lldx%lld | %s | %lld | %.3f | %.3f | %.2f | %.2f | %.2f |\n", cs.model,
                                static_cast<long long>(cs.c), static_cast<long long>(cs.hw), static_cast<long long>(cs.hw),
                                granularity.c_str(), static_cast<long long>(p), 1e3 * tb / p, 1e3 * to / p, to / tb,
                                macs * images_total / tb * 1e-9, macs * images_total / to * 1e-9);
                    std::fflush(stdout);
                }
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "population_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
