// The pruning kernels (differential evolution on bit-packed populations, Gibbs draws) as public
// functions: each validates its arguments with a clear error and dispatches to the CPU reference
// or the CUDA implementation by ctx.device(), like the ops of nn/ops.h. The signatures are
// declared once, in pruning/kernel_list.inc; this header defines the types they take.
#pragma once

#include <cstdint>

#include "nn/buffer.h"
#include "nn/context.h"
#include "nn/tensor.h"

namespace sp {

// ---- differential evolution

enum class MutationRule { reference, textbook };  // see pruning/evolution.h

// A population of `members` bit-packed masks of `units` units, 32 units per uint32 word.
struct PackedShape {
    int64_t members = 0, units = 0;
    int64_t words() const { return (units + 31) / 32; }  // per member
    int64_t total_words() const { return members * words(); }
};

// The random streams (keys of sp::random_stream_key) and rates of one generation's trials.
struct TrialDraws {
    uint64_t pick_key = 0, flag_key = 0, cross_key = 0;
    float mutation_rate = 0, crossover = 0;
    MutationRule rule = MutationRule::reference;
};

struct EvolutionCounts {
    int64_t best_member = 0;                 // argmin of the energies, lowest index on ties
    unsigned long long pair_distance_sum = 0;  // Σ over member pairs of their Hamming distance
    unsigned long long best_kept = 0;          // units set in the best member
};

// ---- Gibbs samplers (see pruning/gibbs.h)

enum class GibbsHamiltonian { unstructured, kernel, filter };

// A layer's weights as (filters, channels, area): conv (K, C/g, R·S), linear (OUT, IN, 1).
struct GibbsLayerShape {
    int64_t filters = 1, channels = 1, area = 1;
    int64_t numel() const { return filters * channels * area; }
};

struct GibbsParams {
    GibbsHamiltonian hamiltonian = GibbsHamiltonian::unstructured;
    double p = 0.9;         // target pruning fraction: Q_p is the p-th percentile
    float beta = 1.0f;
    float coupling = 0.01f; // c (kernel, filter)
    int64_t sweeps = 50;    // filter: chromatic sweeps
};

// The statistic whose percentile is Q_p, as the kernels number it: 0 w² per weight
// (unstructured), 1 mean w² per kernel (kernel), 2 mean w² per filter (filter).
inline int gibbs_statistic_kind(GibbsHamiltonian h) {
    return h == GibbsHamiltonian::unstructured ? 0 : h == GibbsHamiltonian::kernel ? 1 : 2;
}

#include "pruning/kernel_list.inc"

}  // namespace sp
