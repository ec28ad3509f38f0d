// Population-evaluation benchmark: batched (one forward of P·B images) vs one-by-one (P
// forwards of B images) for filter masks, on lenet and resnet20 with Fashion-MNIST-shaped
// (1x28x28) and CIFAR-shaped (3x32x32) random data. Prints a Markdown table: time per member,
// the one-by-one / batched ratio, and the achieved MAC rate (MACs per image × images / time).
//   population_bench [--device cpu|cuda] [--repeats N] [--batch B] [--max-members P]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/timing.h"
#include "kernels/check.h"
#include "nn/cpu/gemm.h"
#include "nn/device.h"
#include "nn/models/model.h"
#include "pruning/mask_space.h"
#include "pruning/population.h"

using namespace sp;

using bench::median_seconds;

int main(int argc, char** argv) {
    cpu::configure_cpu_blas(argv);
    std::string device_arg = "cpu";
    int repeats = -1;
    int64_t batch = 128, max_members = -1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
            return argv[++i];
        };
        if (a == "--device") device_arg = next();
        else if (a == "--repeats") repeats = std::stoi(next());
        else if (a == "--batch") batch = std::stoll(next());
        else if (a == "--max-members") max_members = std::stoll(next());
        else { std::fprintf(stderr, "usage: %s [--device cpu|cuda] [--repeats N] [--batch B] [--max-members P]\n", argv[0]); return 2; }
    }
    try {
        const Device device = device_arg == "cuda" ? Device::cuda : device_arg == "cpu" ? Device::cpu
                                                                 : (cuda_available() ? Device::cuda : Device::cpu);
        // The CPU is slow: fewer repeats and members there by default (about 3 minutes on 2 cores).
        if (repeats < 0) repeats = device == Device::cuda ? 10 : 1;
        if (max_members < 0) max_members = device == Device::cuda ? 128 : 32;
        Context ctx(device, 1, true);
        std::printf("Population evaluation, filter masks, B = %lld, device %s, median of %d (after a warm-up)\n\n",
                    static_cast<long long>(batch), device_name(device), repeats);
        std::printf("| model | input | P | batched ms/member | one-by-one ms/member | ratio | batched GMAC/s | one-by-one GMAC/s |\n");
        std::printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
        struct Case { const char* model; int64_t c, hw; };
        for (Case cs : {Case{"lenet", 1, 28}, Case{"lenet", 3, 32}, Case{"resnet20", 1, 28}, Case{"resnet20", 3, 32}}) {
            auto model = make_model(cs.model, cs.c, cs.hw, cs.hw, 10);
            model->allocate(device, 3);
            const double macs = static_cast<double>(model->macs_per_image());
            MaskSpace space(*model, MaskSpaceOptions{});
            std::vector<float> img(static_cast<size_t>(batch * cs.c * cs.hw * cs.hw)), lab(static_cast<size_t>(batch));
            for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<float>((i * 2654435761u) % 1000) / 500.0f - 1.0f;
            for (size_t i = 0; i < lab.size(); ++i) lab[i] = static_cast<float>(i % 10);
            Tensor images = Tensor::from_host(img, Shape{batch, cs.c, cs.hw, cs.hw}, device);
            Tensor labels = Tensor::from_host(lab, Shape{batch}, device);
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
                std::printf("| %s | %lldx%lldx%lld | %lld | %.3f | %.3f | %.2f | %.2f | %.2f |\n", cs.model,
                            static_cast<long long>(cs.c), static_cast<long long>(cs.hw), static_cast<long long>(cs.hw),
                            static_cast<long long>(p), 1e3 * tb / p, 1e3 * to / p, to / tb,
                            macs * images_total / tb * 1e-9, macs * images_total / to * 1e-9);
                std::fflush(stdout);
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "population_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
