// Latency measurement (pruning/latency.h): the steady clock on the CPU, CUDA events on the GPU.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>

#include "nn/models/model.h"
#include "pruning/latency.h"
#include "tests/harness.h"

namespace sp::test {
namespace {

// The fastest round's median forward time is positive and finite; every round holds at least
// repeats / 2 + 1 forwards that take at least that long, so all the rounds' share of them fits
// in the wall time (warm-up included); and the model's mode is restored.
void check_latency(Device device) {
    auto model = make_model("lenet", 1, 28, 28, 10);
    model->allocate(device, 1);
    model->set_training(true);
    Context ctx(device, 1);
    LatencyOptions options;
    options.warmup = 2;
    options.repeats = 9;
    options.rounds = 3;
    const auto start = std::chrono::steady_clock::now();
    const double ms = measure_latency_ms(ctx, *model, 64, options);
    const double wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    CHECK(std::isfinite(ms));
    CHECK(ms > 0.0);
    CHECK(ms * options.rounds * (options.repeats / 2 + 1) <= wall_ms);
    CHECK(model->training());
    CHECK_THROWS_WITH_AS(measure_latency_ms(ctx, *model, 0), doctest::Contains("batch, repeats and rounds must be positive"),
                         Error);
}

}  // namespace

TEST_CASE("latency: the CPU clock measures a positive median per round, the fastest within the wall time") { check_latency(Device::cpu); }

GPU_TEST_CASE("latency (cuda): CUDA events measure a positive median per round, the fastest within the wall time") {
    check_latency(Device::cuda);
}

}  // namespace sp::test
