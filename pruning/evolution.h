// Binary differential evolution over a population of P masks of D units, bit-packed (32 units
// per 32-bit word, unit d in bit d % 32 of word d / 32) on the context's device. One
// generation = make_trials() (mutation + crossover), evaluation of the trials by the caller
// (PopulationEvaluator), select(). Nothing crosses to the host per generation except stats().
//
// Randomness: every draw comes from Philox stream `key` (random_stream_key(seed, purpose,
// generation)), with fixed counters per (member, unit), so the CPU reference and the CUDA
// kernels (cuRAND Philox, see kernels/philox.h) produce bit-identical populations. The counter
// layout, the `u <= p` comparisons and the repair rule are documented in pruning/evolution.cpp.
//
// Mutation for member i with three distinct other members r1, r2, r3 (drawn per member), and per
// unit d a flag F_d ~ Bernoulli(mutation_rate):
//   reference (the EDropout authors' code): v_d = x_r1,d if !F_d; else 1 - x_r1,d if x_r2,d == x_r3,d; else 0
//   textbook binary DE:                     v_d = x_r1,d if !F_d or x_r2,d == x_r3,d; else 1 - x_r1,d
// Crossover: trial_d = v_d with probability crossover, else x_i,d.
// Selection: member i takes its trial when the trial's energy is strictly lower.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/buffer.h"
#include "nn/context.h"
#include "nn/tensor.h"
#include "pruning/ops.h"

namespace sp {

struct EvolutionOptions {
    int64_t members = 8;          // P (at least 4: mutation needs three others)
    double mutation_rate = 0.1;   // probability of the flag F_d
    double crossover = 0.9;       // CR
    MutationRule rule = MutationRule::reference;
};

// Contiguous runs of units of which at least `min_kept` must stay set (the mask space's
// segments); repair() enforces them.
struct UnitSegment {
    int64_t offset = 0, size = 0, min_kept = 1;
};

struct EvolutionStats {
    float best_energy = 0, mean_energy = 0;
    int64_t best_member = 0;
    double mean_hamming = 0;   // mean pairwise Hamming distance between members, in units
    double acceptance = 0;     // fraction of trials accepted by the last select()
    double kept_fraction = 0;  // units set in the best member / D
};

class Evolution {
public:
    Evolution(Device device, int64_t units, EvolutionOptions options, std::vector<UnitSegment> segments);

    int64_t members() const { return options_.members; }
    int64_t units() const { return shape_.units; }
    const EvolutionOptions& options() const { return options_; }

    // Members drawn Bernoulli(0.5) per unit from stream `key`, then repaired.
    void initialise(Context& ctx, uint64_t key);
    // Trials of one generation from stream `key`, repaired.
    void make_trials(Context& ctx, uint64_t key);
    // (P, D) float 0/1 masks for the evaluator.
    void unpack_members(Context& ctx, Tensor& out) const;
    void unpack_trials(Context& ctx, Tensor& out) const;
    // The members' energies (P): set once after evaluating the initial members.
    void set_energies(Context& ctx, const Tensor& energies);
    // Member i takes trial i when trial_energies[i] < energies[i]; energies follow.
    void select(Context& ctx, const Tensor& trial_energies);
    // The best member (argmin energy, lowest index on ties) as a float state (D), on the device.
    void best_state(Context& ctx, Tensor& out) const;
    // Synchronises: the scalars worth logging.
    EvolutionStats stats(Context& ctx) const;

    // Host copies for checkpoints and tests: members as (P, D) 0/1 floats, energies (P).
    std::vector<float> members_host() const;
    std::vector<float> energies_host() const;
    void restore(Context& ctx, const std::vector<float>& members, const std::vector<float>& energies);

private:
    void require_context(const Context& ctx, const char* what) const;
    void repair(Context& ctx, Buffer& words);  // every segment keeps min_kept units set

    Device device_;
    PackedShape shape_;         // (P, D)
    EvolutionOptions options_;
    std::vector<UnitSegment> segments_;
    Buffer members_, trials_;   // P × W uint32 (pruning/ops.h)
    Buffer segment_table_;      // the segments as int64 triples (offset, size, min_kept) on the device
    Tensor energies_;           // (P)
    Buffer accepted_;           // P uint32 flags of the last select
};

}  // namespace sp
