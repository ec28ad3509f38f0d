// CUDA implementation of the differential-evolution kernels (pruning/kernel_list.inc): the
// launchers of kernels/evolution.cu on the context's stream, scratch from ctx.workspace().
#include "kernels/evolution.h"
#include "pruning/backends.h"

namespace sp::cuda {

namespace {

uint32_t* words_of(Buffer& b) { return static_cast<uint32_t*>(b.data()); }
const uint32_t* words_of(const Buffer& b) { return static_cast<const uint32_t*>(b.data()); }
size_t size(int64_t n) { return static_cast<size_t>(n); }

}  // namespace

void evolution_initialise(Context& ctx, const PackedShape& shape, uint64_t key, Buffer& words) {
    kernels::evolution_initialise(words_of(words), size(shape.members), size(shape.units), size(shape.words()), key,
                                  ctx.stream());
}

void evolution_make_trials(Context& ctx, const PackedShape& shape, const TrialDraws& draws, const Buffer& members,
                           Buffer& trials) {
    kernels::evolution_make_trials(words_of(members), words_of(trials), size(shape.members), size(shape.units),
                                   size(shape.words()), draws.pick_key, draws.flag_key, draws.cross_key,
                                   draws.mutation_rate, draws.crossover, draws.rule == MutationRule::reference ? 0 : 1,
                                   ctx.stream());
}

void evolution_repair(Context& ctx, const PackedShape& shape, const Buffer& segments, int64_t n_segments,
                      Buffer& words) {
    kernels::evolution_repair(words_of(words), size(shape.members), size(shape.words()),
                              static_cast<const int64_t*>(segments.data()), size(n_segments), ctx.stream());
}

void evolution_unpack(Context& ctx, const PackedShape& shape, const Buffer& words, Tensor& out) {
    kernels::evolution_unpack(words_of(words), size(shape.members), size(shape.units), size(shape.words()), out.data(),
                              ctx.stream());
}

void evolution_select(Context& ctx, const PackedShape& shape, const Buffer& trials, const Tensor& trial_energies,
                      Buffer& members, Tensor& energies, Buffer& accepted) {
    kernels::evolution_select(words_of(members), words_of(trials), energies.data(), trial_energies.data(),
                              static_cast<uint32_t*>(accepted.data()), size(shape.members), size(shape.words()),
                              ctx.stream());
}

void evolution_best_member(Context& ctx, const PackedShape& shape, const Buffer& members, const Tensor& energies,
                           Tensor& out) {
    int64_t* best = static_cast<int64_t*>(ctx.workspace(sizeof(int64_t)));
    kernels::evolution_argmin(energies.data(), size(shape.members), best, ctx.stream());
    kernels::evolution_unpack_member(words_of(members), size(shape.units), size(shape.words()), best, out.data(),
                                     ctx.stream());
}

EvolutionCounts evolution_counts(Context& ctx, const PackedShape& shape, const Buffer& members,
                                 const Tensor& energies) {
    // Workspace: the best index (int64), then the two counters (uint64).
    char* scratch = static_cast<char*>(ctx.workspace(sizeof(int64_t) + 2 * sizeof(unsigned long long)));
    int64_t* best = reinterpret_cast<int64_t*>(scratch);
    auto* counters = reinterpret_cast<unsigned long long*>(scratch + sizeof(int64_t));
    kernels::evolution_argmin(energies.data(), size(shape.members), best, ctx.stream());
    kernels::evolution_stats(words_of(members), size(shape.members), size(shape.words()), best, counters, ctx.stream());
    EvolutionCounts c;
    unsigned long long host_counters[2];
    copy_bytes(&c.best_member, Device::cpu, best, Device::cuda, sizeof(int64_t));
    copy_bytes(host_counters, Device::cpu, counters, Device::cuda, sizeof(host_counters));  // synchronises
    c.pair_distance_sum = host_counters[0];
    c.best_kept = host_counters[1];
    return c;
}

}  // namespace sp::cuda
