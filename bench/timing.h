// Timing for the benchmark programs: the median of repeated runs after a warm-up, with CUDA
// events on the GPU (so only the device's work on ctx's stream is timed) and a steady clock on
// the CPU.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

#include "kernels/check.h"
#include "nn/context.h"

namespace sp::bench {

// Median seconds of `repeats` runs of `run` after one warm-up (allocations, cuDNN algorithm choice).
template <typename F>
double median_seconds(Context& ctx, int repeats, F run) {
    run();
    std::vector<double> t;
    for (int r = 0; r < repeats; ++r) {
        if (ctx.device() == Device::cuda) {
            cudaEvent_t a, b;
            SP_CHECK(cudaEventCreate(&a));
            SP_CHECK(cudaEventCreate(&b));
            SP_CHECK(cudaEventRecord(a, ctx.stream()));
            run();
            SP_CHECK(cudaEventRecord(b, ctx.stream()));
            SP_CHECK(cudaEventSynchronize(b));
            float ms = 0.0f;
            SP_CHECK(cudaEventElapsedTime(&ms, a, b));
            SP_CHECK(cudaEventDestroy(a));
            SP_CHECK(cudaEventDestroy(b));
            t.push_back(ms * 1e-3);
        } else {
            auto start = std::chrono::steady_clock::now();
            run();
            t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

}  // namespace sp::bench
