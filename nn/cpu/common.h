// Small helpers shared by the CPU backend's op files.
#pragma once

#include <cstdint>

#include "nn/ops.h"

namespace sp::cpu {

// Loops shorter than this run on one thread: the fork/join costs more than the work.
constexpr int64_t kParallelGrain = 16384;

// Writes or adds one gradient value according to `mode`.
inline void store_grad(float& dst, float value, GradMode mode) {
    if (mode == GradMode::accumulate) dst += value;
    else dst = value;
}

}  // namespace sp::cpu
