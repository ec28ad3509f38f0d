// CUDA kernels of binary differential evolution on bit-packed populations. Uniform c of stream
// `key` is output c % 4 of Philox block c / 4 (kernels/philox.h, one block computed per four
// uniforms), which is sp::stream_uniform on the CPU, so both backends build the same bits
// (layout in pruning/evolution.cpp).
#include "kernels/evolution.h"
#include "kernels/launch.h"
#include "kernels/philox.h"

namespace sp::kernels {

namespace {

// Uniforms of one stream read in increasing counter order, one Philox block per four.
struct UniformReader {
    unsigned long long key;
    size_t block = ~size_t{0};
    PhiloxBlock raw;

    __device__ explicit UniformReader(unsigned long long k) : key(k) {}
    __device__ float at(size_t counter) {
        const size_t b = counter / 4;
        if (b != block) {
            raw = philox_block(key, b);
            block = b;
        }
        return philox_uniform(philox_output(raw, counter % 4));
    }
};

// Bits of word w of member i where uniform (i·D + d) of `reader` is <= p, for the units d of w.
__device__ uint32_t draw_bits(UniformReader& reader, size_t i, size_t w, size_t units, float p) {
    uint32_t bits = 0;
    const size_t first = w * 32;
    const size_t last = first + 32 < units ? first + 32 : units;
    for (size_t d = first; d < last; ++d)
        if (reader.at(i * units + d) <= p) bits |= 1u << (d - first);
    return bits;
}

__global__ void initialise_kernel(uint32_t* words, size_t members, size_t units, size_t wpm,
                                  unsigned long long key) {
    SP_GRID_STRIDE_LOOP(j, members * wpm) {
        const size_t i = j / wpm, w = j % wpm;
        UniformReader reader(key);
        words[j] = draw_bits(reader, i, w, units, 0.5f);
    }
}

__global__ void make_trials_kernel(const uint32_t* members, uint32_t* trials, size_t n_members, size_t units,
                                   size_t wpm, unsigned long long pick_key, unsigned long long flag_key,
                                   unsigned long long cross_key, float mutation_rate, float crossover, int rule) {
    SP_GRID_STRIDE_LOOP(j, n_members * wpm) {
        const size_t i = j / wpm, w = j % wpm;
        // Partners of member i: uniforms 4i + 0..2 of the pick stream, i.e. Philox block i.
        const PhiloxBlock u = philox_block(pick_key, i);
        int64_t r[3];
        evolution_pick_partners(static_cast<int64_t>(n_members), static_cast<int64_t>(i), philox_uniform(u.v[0]),
                                philox_uniform(u.v[1]), philox_uniform(u.v[2]), r);
        UniformReader flags(flag_key), cross(cross_key);
        const uint32_t flag = draw_bits(flags, i, w, units, mutation_rate);
        const uint32_t take = draw_bits(cross, i, w, units, crossover);
        const uint32_t v = evolution_mutate_word(rule, members[static_cast<size_t>(r[0]) * wpm + w],
                                                 members[static_cast<size_t>(r[1]) * wpm + w],
                                                 members[static_cast<size_t>(r[2]) * wpm + w], flag);
        trials[j] = evolution_cross_word(v, members[j], take) & evolution_valid_bits(w, units);
    }
}

constexpr int kRepairThreads = 128;

// One block per (member, segment): the block counts the segment's set bits, then thread 0 sets
// the lowest-index unset units while the count is below min_kept. Neighbouring segments can
// share a word, so bits are set with atomicOr (each block only touches its own segment's bits).
__global__ void repair_kernel(uint32_t* words, size_t members, size_t wpm, const int64_t* segments,
                              size_t n_segments) {
    __shared__ unsigned long long partial[kRepairThreads];
    for (size_t job = blockIdx.x; job < members * n_segments; job += gridDim.x) {
        const size_t i = job / n_segments, s = job % n_segments;
        const size_t offset = static_cast<size_t>(segments[3 * s]);
        const size_t size = static_cast<size_t>(segments[3 * s + 1]);
        const unsigned long long min_kept = static_cast<unsigned long long>(segments[3 * s + 2]);
        uint32_t* row = words + i * wpm;
        const size_t w0 = offset / 32, w1 = (offset + size + 31) / 32;
        unsigned long long count = 0;
        if (size > 0)
            for (size_t w = w0 + threadIdx.x; w < w1; w += blockDim.x)
                count += static_cast<unsigned long long>(__popc(row[w] & evolution_range_bits(w, offset, size)));
        partial[threadIdx.x] = count;
        __syncthreads();
        for (int half = blockDim.x / 2; half > 0; half /= 2) {
            if (static_cast<int>(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
            __syncthreads();
        }
        if (threadIdx.x == 0 && size > 0) {
            unsigned long long kept = partial[0];
            for (size_t w = w0; w < w1 && kept < min_kept; ++w) {
                uint32_t free_bits = ~row[w] & evolution_range_bits(w, offset, size), added = 0;
                while (free_bits != 0 && kept < min_kept) {
                    const uint32_t lowest = free_bits & (~free_bits + 1u);
                    added |= lowest;
                    free_bits ^= lowest;
                    ++kept;
                }
                if (added != 0) atomicOr(row + w, added);
            }
        }
        __syncthreads();  // partial[] is reused by the next job
    }
}

__global__ void unpack_kernel(const uint32_t* words, size_t members, size_t units, size_t wpm, float* out) {
    SP_GRID_STRIDE_LOOP(j, members * units) {
        const size_t i = j / units, d = j % units;
        out[j] = static_cast<float>((words[i * wpm + d / 32] >> (d % 32)) & 1u);
    }
}

// Accepted flags and energies; the words follow in copy_accepted_kernel (no thread reads an
// energy another thread of the same launch writes).
__global__ void select_kernel(float* energies, const float* trial_energies, uint32_t* accepted, size_t members) {
    SP_GRID_STRIDE_LOOP(i, members) {
        const bool take = trial_energies[i] < energies[i];
        accepted[i] = take ? 1u : 0u;
        if (take) energies[i] = trial_energies[i];
    }
}

__global__ void copy_accepted_kernel(uint32_t* members, const uint32_t* trials, const uint32_t* accepted,
                                     size_t n_members, size_t wpm) {
    SP_GRID_STRIDE_LOOP(j, n_members * wpm) {
        if (accepted[j / wpm] != 0u) members[j] = trials[j];
    }
}

// A single thread: P is small (at most a few thousand).
__global__ void argmin_kernel(const float* energies, size_t members, int64_t* best) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    *best = static_cast<int64_t>(evolution_argmin_index(energies, members));
}

__global__ void unpack_member_kernel(const uint32_t* words, size_t units, size_t wpm, const int64_t* best,
                                     float* out) {
    const uint32_t* row = words + static_cast<size_t>(*best) * wpm;
    SP_GRID_STRIDE_LOOP(d, units) out[d] = static_cast<float>((row[d / 32] >> (d % 32)) & 1u);
}

// One thread per word: Σ over bits of c (P - c), c = members with the bit set, is the sum of
// the pairwise Hamming distances restricted to that word.
__global__ void stats_kernel(const uint32_t* words, size_t members, size_t wpm, const int64_t* best,
                             unsigned long long* counters) {
    SP_GRID_STRIDE_LOOP(w, wpm) {
        unsigned long long pairs = 0;
        for (int bit = 0; bit < 32; ++bit) {
            unsigned long long c = 0;
            for (size_t i = 0; i < members; ++i) c += (words[i * wpm + w] >> bit) & 1u;
            pairs += c * (members - c);
        }
        const unsigned long long kept = __popc(words[static_cast<size_t>(*best) * wpm + w]);
        if (pairs != 0) atomicAdd(counters, pairs);
        if (kept != 0) atomicAdd(counters + 1, kept);
    }
}

}  // namespace

void evolution_initialise(uint32_t* words, size_t members, size_t units, size_t words_per_member,
                          uint64_t init_key, cudaStream_t stream) {
    const size_t n = members * words_per_member;
    if (n == 0) return;
    SP_REQUIRE(words != nullptr, "evolution_initialise: null words");
    initialise_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(words, members, units, words_per_member,
                                                                   static_cast<unsigned long long>(init_key));
    SP_CHECK_LAUNCH("evolution_initialise_kernel");
}

void evolution_make_trials(const uint32_t* members, uint32_t* trials, size_t n_members, size_t units,
                           size_t words_per_member, uint64_t pick_key, uint64_t flag_key, uint64_t cross_key,
                           float mutation_rate, float crossover, int rule, cudaStream_t stream) {
    const size_t n = n_members * words_per_member;
    if (n == 0) return;
    SP_REQUIRE(n_members >= 4, "evolution_make_trials: needs at least 4 members, got " << n_members);
    SP_REQUIRE(members && trials && members != trials, "evolution_make_trials: null or aliased buffers");
    SP_REQUIRE(rule == 0 || rule == 1, "evolution_make_trials: unknown rule " << rule);
    make_trials_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
        members, trials, n_members, units, words_per_member, static_cast<unsigned long long>(pick_key),
        static_cast<unsigned long long>(flag_key), static_cast<unsigned long long>(cross_key), mutation_rate,
        crossover, rule);
    SP_CHECK_LAUNCH("evolution_make_trials_kernel");
}

void evolution_repair(uint32_t* words, size_t members, size_t words_per_member, const int64_t* segments,
                      size_t n_segments, cudaStream_t stream) {
    const size_t jobs = members * n_segments;
    if (jobs == 0) return;
    SP_REQUIRE(words && segments, "evolution_repair: null pointer");
    const unsigned int blocks = static_cast<unsigned int>(jobs < 65535u * 32u ? jobs : 65535u * 32u);
    repair_kernel<<<blocks, kRepairThreads, 0, stream>>>(words, members, words_per_member, segments, n_segments);
    SP_CHECK_LAUNCH("evolution_repair_kernel");
}

void evolution_unpack(const uint32_t* words, size_t members, size_t units, size_t words_per_member, float* out,
                      cudaStream_t stream) {
    const size_t n = members * units;
    if (n == 0) return;
    SP_REQUIRE(words && out, "evolution_unpack: null pointer");
    unpack_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(words, members, units, words_per_member, out);
    SP_CHECK_LAUNCH("evolution_unpack_kernel");
}

void evolution_select(uint32_t* members, const uint32_t* trials, float* energies, const float* trial_energies,
                      uint32_t* accepted, size_t n_members, size_t words_per_member, cudaStream_t stream) {
    if (n_members == 0) return;
    SP_REQUIRE(members && trials && energies && trial_energies && accepted, "evolution_select: null pointer");
    select_kernel<<<grid_for(n_members), kThreadsPerBlock, 0, stream>>>(energies, trial_energies, accepted,
                                                                        n_members);
    SP_CHECK_LAUNCH("evolution_select_kernel");
    const size_t n = n_members * words_per_member;
    if (n == 0) return;
    copy_accepted_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(members, trials, accepted, n_members,
                                                                       words_per_member);
    SP_CHECK_LAUNCH("evolution_copy_accepted_kernel");
}

void evolution_argmin(const float* energies, size_t members, int64_t* best, cudaStream_t stream) {
    SP_REQUIRE(members > 0 && energies && best, "evolution_argmin: empty population or null pointer");
    argmin_kernel<<<1, 1, 0, stream>>>(energies, members, best);
    SP_CHECK_LAUNCH("evolution_argmin_kernel");
}

void evolution_unpack_member(const uint32_t* words, size_t units, size_t words_per_member, const int64_t* best,
                             float* out, cudaStream_t stream) {
    if (units == 0) return;
    SP_REQUIRE(words && best && out, "evolution_unpack_member: null pointer");
    unpack_member_kernel<<<grid_for(units), kThreadsPerBlock, 0, stream>>>(words, units, words_per_member, best,
                                                                          out);
    SP_CHECK_LAUNCH("evolution_unpack_member_kernel");
}

void evolution_stats(const uint32_t* words, size_t members, size_t words_per_member, const int64_t* best,
                     unsigned long long* counters, cudaStream_t stream) {
    SP_REQUIRE(words && best && counters, "evolution_stats: null pointer");
    SP_CHECK(cudaMemsetAsync(counters, 0, 2 * sizeof(unsigned long long), stream));
    if (words_per_member == 0) return;
    stats_kernel<<<grid_for(words_per_member), kThreadsPerBlock, 0, stream>>>(words, members, words_per_member,
                                                                              best, counters);
    SP_CHECK_LAUNCH("evolution_stats_kernel");
}

}  // namespace sp::kernels
