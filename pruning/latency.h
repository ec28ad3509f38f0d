// Measured inference latency of a model on the context's device: a forward in eval mode at a
// given batch on random input, after warm-up, the median of repeats (CUDA events on the GPU,
// the steady clock on the CPU); with several rounds, the fastest round's median (what the
// hardware can do, less what other jobs on a shared machine took from it).
#pragma once

#include <cstdint>

#include "nn/context.h"
#include "nn/models/model.h"

namespace sp {

struct LatencyOptions {
    int warmup = 3;
    int repeats = 10;
    int rounds = 1;
};

// Milliseconds per forward of `batch` images.
double measure_latency_ms(Context& ctx, Model& model, int64_t batch, const LatencyOptions& options = {});

}  // namespace sp
