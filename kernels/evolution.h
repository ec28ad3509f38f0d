// Binary differential evolution on bit-packed populations (P members × W = ceil(D/32) uint32
// words, unit d in bit d % 32 of word d / 32, padding bits of the last word always 0): the
// word-level operators shared by the CPU reference (pruning/evolution.cpp) and the CUDA kernels
// (kernels/evolution.cu), and the launchers of those kernels. The counter layout of the random
// draws is documented in pruning/evolution.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda_types.h"

#include "kernels/philox.h"

namespace sp::kernels {

// Bits of word w that hold units [0, units): all ones except in a partial last word.
SP_HOST_DEVICE inline uint32_t evolution_valid_bits(size_t w, size_t units) {
    const size_t first = w * 32;
    if (first + 32 <= units) return 0xFFFFFFFFu;
    if (first >= units) return 0u;
    return (1u << (units - first)) - 1u;
}

// Bits of word w that belong to the unit range [offset, offset + size).
SP_HOST_DEVICE inline uint32_t evolution_range_bits(size_t w, size_t offset, size_t size) {
    const size_t lo = w * 32, hi = lo + 32, end = offset + size;
    const size_t a = offset > lo ? offset : lo, b = end < hi ? end : hi;
    if (a >= b) return 0u;
    const uint32_t upto_b = b - lo == 32 ? 0xFFFFFFFFu : (1u << (b - lo)) - 1u;
    const uint32_t below_a = (1u << (a - lo)) - 1u;  // a - lo < 32 here
    return upto_b & ~below_a;
}

// u in (0, 1] → an index in [0, n): floor(u · n), with u == 1 clamped to n - 1.
SP_HOST_DEVICE inline int64_t evolution_uniform_index(float u, int64_t n) {
    int64_t k = static_cast<int64_t>(u * static_cast<float>(n));
    return k < n ? k : n - 1;
}

// The three distinct partners r[0..2] of member i (all different from i) from uniforms u0..u2,
// rejection-free: r1 is index floor(u0 (P-1)) among the P-1 others, r2 index floor(u1 (P-2))
// among the P-2 members left, r3 index floor(u2 (P-3)) among the P-3 left (in increasing order).
SP_HOST_DEVICE inline void evolution_pick_partners(int64_t members, int64_t i, float u0, float u1, float u2,
                                                   int64_t r[3]) {
    const float u[3] = {u0, u1, u2};
    int64_t excluded[4] = {i, 0, 0, 0};  // kept sorted ascending
    int64_t n_excluded = 1;
    for (int k = 0; k < 3; ++k) {
        int64_t idx = evolution_uniform_index(u[k], members - n_excluded);
        // The idx-th member not excluded: step over each excluded index at or below it.
        for (int64_t e = 0; e < n_excluded; ++e)
            if (idx >= excluded[e]) ++idx;
        r[k] = idx;
        int64_t pos = n_excluded++;
        while (pos > 0 && excluded[pos - 1] > idx) {
            excluded[pos] = excluded[pos - 1];
            --pos;
        }
        excluded[pos] = idx;
    }
}

// Mutation of one word: x1, x2, x3 the partners' words, flag the F bits.
//   reference (rule 0): v = x1 where !F; else !x1 where x2 == x3; else 0
//   textbook  (rule 1): v = x1 where !F or x2 == x3; else !x1
SP_HOST_DEVICE inline uint32_t evolution_mutate_word(int rule, uint32_t x1, uint32_t x2, uint32_t x3, uint32_t flag) {
    const uint32_t equal = ~(x2 ^ x3);
    if (rule == 0) return (~flag & x1) | (flag & equal & ~x1);
    return x1 ^ (flag & ~equal);
}

// Crossover of one word: the mutant's bit where `take` is set, the parent's elsewhere.
SP_HOST_DEVICE inline uint32_t evolution_cross_word(uint32_t mutant, uint32_t parent, uint32_t take) {
    return (take & mutant) | (~take & parent);
}

// argmin of energies[0, n): lowest index on ties; NaN never wins against a number.
SP_HOST_DEVICE inline size_t evolution_argmin_index(const float* energies, size_t n) {
    size_t b = 0;
    for (size_t i = 1; i < n; ++i)
        if (energies[i] < energies[b] || (energies[b] != energies[b] && energies[i] == energies[i])) b = i;
    return b;
}

// ---- launchers (kernels/evolution.cu); words are (members, words) uint32, row-major.

// words[i] = Bernoulli(0.5) per unit from stream `init_key` (unit d of member i: uniform i·D + d).
void evolution_initialise(uint32_t* words, size_t members, size_t units, size_t words_per_member,
                          uint64_t init_key, cudaStream_t stream);
// trials = crossover(mutate(members)); one thread per (member, word). `rule` as in
// evolution_mutate_word.
void evolution_make_trials(const uint32_t* members, uint32_t* trials, size_t n_members, size_t units,
                           size_t words_per_member, uint64_t pick_key, uint64_t flag_key, uint64_t cross_key,
                           float mutation_rate, float crossover, int rule, cudaStream_t stream);
// segments: n_segments triples (offset, size, min_kept) on the device. A member whose segment
// has fewer than min_kept units set gets the lowest-index unset units of the segment set.
void evolution_repair(uint32_t* words, size_t members, size_t words_per_member, const int64_t* segments,
                      size_t n_segments, cudaStream_t stream);
// out (members, units) = the bits as float 0/1.
void evolution_unpack(const uint32_t* words, size_t members, size_t units, size_t words_per_member, float* out,
                      cudaStream_t stream);
// accepted[i] = trial_energies[i] < energies[i]; accepted members take the trial's words and energy.
void evolution_select(uint32_t* members, const uint32_t* trials, float* energies, const float* trial_energies,
                      uint32_t* accepted, size_t n_members, size_t words_per_member, cudaStream_t stream);
// *best = argmin energies (lowest index on ties; NaN never wins against a number).
void evolution_argmin(const float* energies, size_t members, int64_t* best, cudaStream_t stream);
// out (units) = member *best as float 0/1.
void evolution_unpack_member(const uint32_t* words, size_t units, size_t words_per_member, const int64_t* best,
                             float* out, cudaStream_t stream);
// counters[0] = Σ over member pairs of their Hamming distance, counters[1] = units set in
// member *best (counters are zeroed first; integer sums, so the result is order-independent).
void evolution_stats(const uint32_t* words, size_t members, size_t words_per_member, const int64_t* best,
                     unsigned long long* counters, cudaStream_t stream);

}  // namespace sp::kernels
