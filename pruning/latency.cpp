// Latency measurement of a model's forward pass.
#include "pruning/latency.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <vector>

#include "kernels/error.h"
#include "kernels/philox.h"
#include "nn/device_memory.h"

namespace sp {

double measure_latency_ms(Context& ctx, Model& model, int64_t batch, const LatencyOptions& options) {
    SP_REQUIRE(batch > 0 && options.repeats > 0 && options.rounds > 0, "latency: batch, repeats and rounds must be positive");
    const Shape& in = model.input_shape();
    std::vector<float> values(static_cast<size_t>(batch * in.numel()));
    const uint64_t key = random_stream_key(ctx.seed(), 0x6c61'7465'6e63'7921ull /* "latency!" */, 0);
    for (size_t i = 0; i < values.size(); ++i) values[i] = stream_uniform(key, i);
    Tensor x = Tensor::from_host(values, Shape{batch, in[0], in[1], in[2]}, ctx.device());

    EvalModeScope eval(model);
    for (int i = 0; i < options.warmup; ++i) model.forward(ctx, x);
    ctx.synchronize();
    double fastest = std::numeric_limits<double>::infinity();
    for (int round = 0; round < options.rounds; ++round) {
        std::vector<double> times;
        for (int i = 0; i < options.repeats; ++i) {
            if (ctx.device() == Device::cuda) {
                times.push_back(device_memory::timed_ms([&] { model.forward(ctx, x); }));
            } else {
                auto t0 = std::chrono::steady_clock::now();
                model.forward(ctx, x);
                times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
            }
        }
        std::nth_element(times.begin(), times.begin() + static_cast<std::ptrdiff_t>(times.size() / 2), times.end());
        fastest = std::min(fastest, times[times.size() / 2]);
    }
    return fastest;
}

}  // namespace sp
