// Public pruning kernels: argument validation with errors that name the kernel, the argument and
// what was expected, then dispatch to the backend of ctx.device() (pruning/backends.h).
#include "pruning/ops.h"

#include "kernels/error.h"
#include "kernels/gibbs.h"
#include "pruning/backends.h"
#include "pruning/gibbs.h"

namespace sp {

namespace {

void require_population(const char* op, const PackedShape& shape) {
    SP_REQUIRE(shape.members >= 1 && shape.units >= 1,
               op << ": a population needs members and units, got " << shape.members << " × " << shape.units);
}

// A Buffer on the context's device with room for `bytes`.
void require_buffer(const Context& ctx, const char* op, const char* what, const Buffer& b, size_t bytes) {
    SP_REQUIRE(b.data() != nullptr || bytes == 0, op << ": " << what << " is not allocated");
    SP_REQUIRE(b.device() == ctx.device(), op << ": " << what << " is on " << device_name(b.device())
                                              << " but the context is " << device_name(ctx.device()));
    SP_REQUIRE(b.bytes() >= bytes, op << ": " << what << " holds " << b.bytes() << " bytes, expected at least " << bytes);
}

void require_words(const Context& ctx, const char* op, const char* what, const Buffer& b, const PackedShape& shape) {
    require_buffer(ctx, op, what, b, static_cast<size_t>(shape.total_words()) * sizeof(uint32_t));
}

void require_tensor(const Context& ctx, const char* op, const char* what, const Tensor& t, const Shape& expected) {
    SP_REQUIRE(t.defined(), op << ": " << what << " is not allocated");
    SP_REQUIRE(t.device() == ctx.device(), op << ": " << what << " is on " << device_name(t.device())
                                              << " but the context is " << device_name(ctx.device()));
    SP_REQUIRE(t.shape() == expected, op << ": " << what << " has shape " << t.shape().str() << ", expected "
                                         << expected.str());
}

// Any shape with n elements.
void require_elements(const Context& ctx, const char* op, const char* what, const Tensor& t, int64_t n) {
    SP_REQUIRE(t.numel() == n, op << ": " << what << " has shape " << t.shape().str() << ", expected " << n
                                  << " elements");
    require_tensor(ctx, op, what, t, t.shape());
}

}  // namespace

void evolution_initialise(Context& ctx, const PackedShape& shape, uint64_t key, Buffer& words) {
    const char* op = "evolution_initialise";
    require_population(op, shape);
    require_words(ctx, op, "words", words, shape);
    SP_DISPATCH(evolution_initialise, ctx, shape, key, words);
}

void evolution_make_trials(Context& ctx, const PackedShape& shape, const TrialDraws& draws, const Buffer& members,
                           Buffer& trials) {
    const char* op = "evolution_make_trials";
    require_population(op, shape);
    SP_REQUIRE(shape.members >= 4, op << ": needs at least 4 members (mutation takes three others), got "
                                      << shape.members);
    SP_REQUIRE(draws.mutation_rate >= 0.0f && draws.mutation_rate <= 1.0f && draws.crossover >= 0.0f &&
                   draws.crossover <= 1.0f,
               op << ": mutation_rate " << draws.mutation_rate << " and crossover " << draws.crossover
                  << " must lie in [0, 1]");
    require_words(ctx, op, "members", members, shape);
    require_words(ctx, op, "trials", trials, shape);
    SP_REQUIRE(members.data() != trials.data(), op << ": members and trials are the same buffer");
    SP_DISPATCH(evolution_make_trials, ctx, shape, draws, members, trials);
}

void evolution_repair(Context& ctx, const PackedShape& shape, const Buffer& segments, int64_t n_segments,
                      Buffer& words) {
    const char* op = "evolution_repair";
    require_population(op, shape);
    SP_REQUIRE(n_segments >= 0, op << ": " << n_segments << " segments");
    require_words(ctx, op, "words", words, shape);
    if (n_segments == 0) return;
    require_buffer(ctx, op, "segments", segments, static_cast<size_t>(3 * n_segments) * sizeof(int64_t));
    SP_DISPATCH(evolution_repair, ctx, shape, segments, n_segments, words);
}

void evolution_unpack(Context& ctx, const PackedShape& shape, const Buffer& words, Tensor& out) {
    const char* op = "evolution_unpack";
    require_population(op, shape);
    require_words(ctx, op, "words", words, shape);
    require_tensor(ctx, op, "out", out, Shape{shape.members, shape.units});
    SP_DISPATCH(evolution_unpack, ctx, shape, words, out);
}

void evolution_select(Context& ctx, const PackedShape& shape, const Buffer& trials, const Tensor& trial_energies,
                      Buffer& members, Tensor& energies, Buffer& accepted) {
    const char* op = "evolution_select";
    require_population(op, shape);
    require_words(ctx, op, "trials", trials, shape);
    require_words(ctx, op, "members", members, shape);
    require_tensor(ctx, op, "trial energies", trial_energies, Shape{shape.members});
    require_tensor(ctx, op, "energies", energies, Shape{shape.members});
    require_buffer(ctx, op, "accepted", accepted, static_cast<size_t>(shape.members) * sizeof(uint32_t));
    SP_DISPATCH(evolution_select, ctx, shape, trials, trial_energies, members, energies, accepted);
}

void evolution_best_member(Context& ctx, const PackedShape& shape, const Buffer& members, const Tensor& energies,
                           Tensor& out) {
    const char* op = "evolution_best_member";
    require_population(op, shape);
    require_words(ctx, op, "members", members, shape);
    require_tensor(ctx, op, "energies", energies, Shape{shape.members});
    require_tensor(ctx, op, "out", out, Shape{shape.units});
    SP_DISPATCH(evolution_best_member, ctx, shape, members, energies, out);
}

EvolutionCounts evolution_counts(Context& ctx, const PackedShape& shape, const Buffer& members,
                                 const Tensor& energies) {
    const char* op = "evolution_counts";
    require_population(op, shape);
    require_words(ctx, op, "members", members, shape);
    require_tensor(ctx, op, "energies", energies, Shape{shape.members});
    return SP_DISPATCH(evolution_counts, ctx, shape, members, energies);
}

void gibbs_draw(Context& ctx, const Tensor& weight, GibbsLayerShape s, const GibbsParams& p, uint64_t key,
                Tensor& mask, Tensor* masked_weight) {
    const char* op = "gibbs_draw";
    SP_REQUIRE(s.filters >= 1 && s.channels >= 1 && s.area >= 1,
               op << ": layer shape (" << s.filters << ", " << s.channels << ", " << s.area << ") has an empty axis");
    require_elements(ctx, op, "weight", weight, s.numel());
    require_elements(ctx, op, "mask", mask, s.numel());
    if (masked_weight) require_elements(ctx, op, "masked weight", *masked_weight, s.numel());
    SP_REQUIRE(p.hamiltonian == GibbsHamiltonian::unstructured || s.area <= kernels::kGibbsMaxArea,
               "Gibbs " << gibbs_hamiltonian_name(p.hamiltonian) << " sampling enumerates 2^area kernel configurations: area " << s.area << " exceeds "
                        << kernels::kGibbsMaxArea);
    SP_DISPATCH(gibbs_draw, ctx, weight, s, p, key, mask, masked_weight);
}

void gibbs_count_changes(Context& ctx, const Tensor& prev, const Tensor& cur, Buffer& counters) {
    const char* op = "gibbs_count_changes";
    require_elements(ctx, op, "cur", cur, cur.numel());
    require_elements(ctx, op, "prev", prev, cur.numel());
    require_buffer(ctx, op, "counters", counters, 2 * sizeof(unsigned long long));
    SP_DISPATCH(gibbs_count_changes, ctx, prev, cur, counters);
}

}  // namespace sp
