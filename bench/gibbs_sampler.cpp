// Gibbs pruning sampler throughput: one mask draw per Hamiltonian (percentile included) on a
// ResNet-56 stage-3 3×3 conv (64 × 64 × 9 weights) and, for the unstructured draw, a large layer
// (512 × 512 × 9). Prints a Markdown table: median time per draw, spins updated per second
// (unstructured and kernel: every weight once; filter: every weight once per sweep; kernel and
// filter also enumerate 2^9 configurations per kernel update) and, for the unstructured draw,
// its minimal traffic (read the weights, write the mask: 8 bytes per weight) per second.
//   gibbs_sampler_bench [--device cpu|cuda|auto] [--repeats N] [--sweeps S]
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "bench/timing.h"
#include "kernels/error.h"
#include "kernels/philox.h"
#include "nn/device.h"
#include "pruning/gibbs.h"

using namespace sp;

int main(int argc, char** argv) {
    CLI::App app{"Gibbs pruning sampler throughput"};
    std::string device_arg = "cpu";
    int repeats = -1;
    int64_t sweeps = 50;
    app.add_option("--device", device_arg, "cpu | cuda | auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}));
    app.add_option("--repeats", repeats, "timed runs, median reported (default 20 on the GPU, 3 on the CPU)");
    app.add_option("--sweeps", sweeps, "filter-wise chromatic sweeps per draw (the paper: 50)")->check(CLI::PositiveNumber);
    CLI11_PARSE(app, argc, argv);
    try {
        const Device device = resolve_device(device_arg);
        if (repeats < 0) repeats = device == Device::cuda ? 20 : 3;
        Context ctx(device, 1, true);
        std::printf("Gibbs mask draws on %s, median of %d after a warm-up; p = 0.9, filter-wise %lld sweeps.\n\n",
                    device_name(device), repeats, static_cast<long long>(sweeps));
        std::printf("| sampler | layer (K, C, k²) | weights | ms / draw | spins / s | bytes / s (unstructured: 8 B per weight) |\n");
        std::printf("|---|---|---:|---:|---:|---:|\n");
        struct Case {
            GibbsHamiltonian h;
            GibbsLayerShape s;
            float beta, coupling;
        };
        for (const Case& cs : {Case{GibbsHamiltonian::unstructured, {64, 64, 9}, 1e3f, 0.0f},
                               Case{GibbsHamiltonian::unstructured, {512, 512, 9}, 1e3f, 0.0f},
                               Case{GibbsHamiltonian::kernel, {64, 64, 9}, 1e3f, 0.01f},
                               Case{GibbsHamiltonian::filter, {64, 64, 9}, 0.1f, 1.0f}}) {
            std::vector<float> w(static_cast<size_t>(cs.s.numel()));
            for (size_t i = 0; i < w.size(); ++i) w[i] = 0.1f * stream_uniform(7, i) - 0.05f;
            Tensor weight = Tensor::from_host(w, Shape{cs.s.numel()}, device);
            Tensor mask(Shape{cs.s.numel()}, device);
            GibbsParams p;
            p.hamiltonian = cs.h;
            p.p = 0.9;
            p.beta = cs.beta;
            p.coupling = cs.coupling;
            p.sweeps = sweeps;
            uint64_t step = 0;
            const double s = bench::median_seconds(ctx, repeats, [&] {
                gibbs_draw(ctx, weight, cs.s, p, random_stream_key(1, 2, step++), mask);
            });
            const double updates = static_cast<double>(cs.s.numel()) * (cs.h == GibbsHamiltonian::filter ? sweeps : 1);
            char bytes[64] = "–";
            if (cs.h == GibbsHamiltonian::unstructured) std::snprintf(bytes, sizeof bytes, "%.3g", 8.0 * cs.s.numel() / s);
            std::printf("| %s | (%lld, %lld, %lld) | %lld | %.3f | %.3g | %s |\n", gibbs_hamiltonian_name(cs.h),
                        static_cast<long long>(cs.s.filters), static_cast<long long>(cs.s.channels),
                        static_cast<long long>(cs.s.area), static_cast<long long>(cs.s.numel()), 1e3 * s, updates / s, bytes);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
