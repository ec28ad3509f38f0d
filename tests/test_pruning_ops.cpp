// The pruning kernels as ops (pruning/ops.h, pruning/kernel_list.inc): argument validation and
// the CPU reference's integer counts on hand-made inputs, and every kernel of the list run on
// both backends from the same inputs, compared bit for bit (the evolution kernels are integer
// or 0/1 logic on the same Philox uniforms; the Gibbs counts are integers).
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "pruning/ops.h"
#include "tests/harness.h"

using namespace sp;

namespace {

Buffer words_on(Device device, const std::vector<uint32_t>& words) {
    Buffer b(device, words.size() * sizeof(uint32_t));
    copy_bytes(b.data(), device, words.data(), Device::cpu, words.size() * sizeof(uint32_t));
    return b;
}

std::vector<uint32_t> words_of(const Buffer& b) {
    std::vector<uint32_t> words(b.bytes() / sizeof(uint32_t));
    copy_bytes(words.data(), Device::cpu, b.data(), b.device(), b.bytes());
    return words;
}

std::vector<unsigned long long> counters_of(const Buffer& b) {
    std::vector<unsigned long long> c(2);
    copy_bytes(c.data(), Device::cpu, b.data(), b.device(), 2 * sizeof(unsigned long long));
    return c;
}

// Random words with the padding bits past `units` clear, as every kernel keeps them.
std::vector<uint32_t> random_words(const PackedShape& shape, uint64_t seed) {
    std::vector<uint32_t> words(static_cast<size_t>(shape.total_words()));
    const int64_t wpm = shape.words();
    for (size_t k = 0; k < words.size(); ++k) {
        words[k] = philox_block(seed, k).v[0];
        const int64_t w = static_cast<int64_t>(k) % wpm;
        if (32 * (w + 1) > shape.units) words[k] &= (1u << (shape.units - 32 * w)) - 1u;
    }
    return words;
}

// What one backend writes when every evolution kernel runs once from the same inputs.
struct EvolutionRun {
    std::vector<uint32_t> initialised, trials, repaired, members_after_select, accepted;
    std::vector<float> unpacked, energies_after_select, best;
    EvolutionCounts counts;
};

EvolutionRun run_evolution_kernels(Device device, const PackedShape& shape, MutationRule rule,
                                   const std::vector<int64_t>& segments, const std::vector<uint32_t>& members,
                                   const std::vector<float>& energies, const std::vector<float>& trial_energies) {
    Context ctx(device);
    EvolutionRun r;
    const size_t bytes = static_cast<size_t>(shape.total_words()) * sizeof(uint32_t);
    Buffer words(device, bytes);
    evolution_initialise(ctx, shape, random_stream_key(3, 4, 5), words);
    r.initialised = words_of(words);

    Buffer x = words_on(device, members), trials(device, bytes);
    TrialDraws draws;
    draws.pick_key = random_stream_key(6, 1, 0);
    draws.flag_key = random_stream_key(6, 2, 0);
    draws.cross_key = random_stream_key(6, 3, 0);
    draws.mutation_rate = 0.3f;
    draws.crossover = 0.7f;
    draws.rule = rule;
    evolution_make_trials(ctx, shape, draws, x, trials);
    r.trials = words_of(trials);

    Buffer table(device, segments.size() * sizeof(int64_t));
    copy_bytes(table.data(), device, segments.data(), Device::cpu, segments.size() * sizeof(int64_t));
    evolution_repair(ctx, shape, table, static_cast<int64_t>(segments.size() / 3), trials);
    r.repaired = words_of(trials);

    Tensor unpacked(Shape{shape.members, shape.units}, device);
    evolution_unpack(ctx, shape, trials, unpacked);
    r.unpacked = unpacked.to_host();

    Tensor e = Tensor::from_host(energies, Shape{shape.members}, device);
    Tensor te = Tensor::from_host(trial_energies, Shape{shape.members}, device);
    Buffer accepted(device, static_cast<size_t>(shape.members) * sizeof(uint32_t));
    evolution_select(ctx, shape, trials, te, x, e, accepted);
    r.members_after_select = words_of(x);
    r.accepted = words_of(accepted);
    r.energies_after_select = e.to_host();

    Tensor best(Shape{shape.units}, device);
    evolution_best_member(ctx, shape, x, e, best);
    r.best = best.to_host();
    r.counts = evolution_counts(ctx, shape, x, e);
    return r;
}

}  // namespace

TEST_CASE("pruning ops: arguments are validated with the op's name before any dispatch") {
    Context ctx(Device::cpu);
    const PackedShape shape{5, 40};  // 2 words per member
    Buffer small(Device::cpu, 9 * sizeof(uint32_t)), words(Device::cpu, 10 * sizeof(uint32_t));
    CHECK(test::error_of([&] { evolution_initialise(ctx, shape, 1, small); })
              .find("evolution_initialise: words holds 36 bytes, expected at least 40") != std::string::npos);
    CHECK(test::error_of([&] { evolution_make_trials(ctx, shape, TrialDraws{}, words, words); })
              .find("evolution_make_trials: members and trials are the same buffer") != std::string::npos);
    Tensor wrong(Shape{5, 41}, Device::cpu);
    CHECK(test::error_of([&] { evolution_unpack(ctx, shape, words, wrong); })
              .find("evolution_unpack: out has shape (5, 41), expected (5, 40)") != std::string::npos);
    CHECK(test::error_of([&] { evolution_initialise(ctx, PackedShape{0, 40}, 1, words); })
              .find("evolution_initialise: a population needs members and units") != std::string::npos);
    Tensor w(Shape{4, 3, 9}, Device::cpu), mask(Shape{107}, Device::cpu);
    GibbsParams p;
    CHECK(test::error_of([&] { gibbs_draw(ctx, w, GibbsLayerShape{4, 3, 9}, p, 1, mask); })
              .find("gibbs_draw: mask has shape (107), expected 108 elements") != std::string::npos);
    Tensor cur(Shape{8}, Device::cpu), prev(Shape{7}, Device::cpu);
    Buffer counters(Device::cpu, 2 * sizeof(unsigned long long));
    CHECK(test::error_of([&] { gibbs_count_changes(ctx, prev, cur, counters); })
              .find("gibbs_count_changes: prev has shape (7), expected 8 elements") != std::string::npos);
}

TEST_CASE("pruning ops (cpu): counts of flips and kept entries accumulate; population counts are exact") {
    Context ctx(Device::cpu);
    Tensor prev = Tensor::from_host({1, 0, 1, 1, 0, 0}, Shape{6}, Device::cpu);
    Tensor cur = Tensor::from_host({1, 1, 0, 1, 0, 1}, Shape{6}, Device::cpu);
    Buffer counters(Device::cpu, 2 * sizeof(unsigned long long));
    gibbs_count_changes(ctx, prev, cur, counters);
    CHECK(counters_of(counters) == std::vector<unsigned long long>{3, 4});
    gibbs_count_changes(ctx, cur, cur, counters);  // no flips, 4 kept more
    CHECK(counters_of(counters) == std::vector<unsigned long long>{3, 8});

    // Members 0b0011, 0b0101, 0b0110, 0b1111 of 4 units: units 0, 1, 2 are set in 3 members and
    // unit 3 in 1, so Σ_pairs Hamming = Σ n (P − n) = 3 · 3 + 3 = 12 (pairwise: 2 2 2 2 2 2);
    // members 2 and 3 tie for the lowest energy.
    const PackedShape shape{4, 4};
    Buffer x = words_on(Device::cpu, {0b0011u, 0b0101u, 0b0110u, 0b1111u});
    Tensor e = Tensor::from_host({0.5f, 0.25f, -1.0f, -1.0f}, Shape{4}, Device::cpu);
    const EvolutionCounts c = evolution_counts(ctx, shape, x, e);
    CHECK(c.best_member == 2);  // the lowest index on ties
    CHECK(c.pair_distance_sum == 12);
    CHECK(c.best_kept == 2);
}

GPU_TEST_CASE("pruning ops: every evolution kernel gives the CPU's bits on CUDA") {
    struct Case {
        PackedShape shape;
        MutationRule rule;
        std::vector<int64_t> segments;  // (offset, size, min_kept) triples
    };
    const std::vector<Case> cases = {
        {{5, 70}, MutationRule::reference, {0, 30, 20, 30, 40, 39}},
        {{37, 1000}, MutationRule::textbook, {0, 64, 60, 64, 500, 3, 564, 436, 1}},
        {{256, 97}, MutationRule::reference, {0, 97, 50}},
    };
    for (const Case& c : cases) {
        CAPTURE(c.shape.members);
        CAPTURE(c.shape.units);
        const std::vector<uint32_t> members = random_words(c.shape, 11);
        const std::vector<float> energies = test::random_values(c.shape.members, 12);
        std::vector<float> trial_energies = test::random_values(c.shape.members, 13);
        trial_energies[1] = energies[1];  // a tie is not accepted
        const EvolutionRun a = run_evolution_kernels(Device::cpu, c.shape, c.rule, c.segments, members, energies,
                                                     trial_energies);
        const EvolutionRun b = run_evolution_kernels(Device::cuda, c.shape, c.rule, c.segments, members, energies,
                                                     trial_energies);
        CHECK(a.initialised == b.initialised);
        CHECK(a.trials == b.trials);
        CHECK(a.repaired == b.repaired);
        CHECK(a.unpacked == b.unpacked);
        CHECK(a.members_after_select == b.members_after_select);
        CHECK(a.accepted == b.accepted);
        CHECK(a.energies_after_select == b.energies_after_select);
        CHECK(a.best == b.best);
        CHECK(a.counts.best_member == b.counts.best_member);
        CHECK(a.counts.pair_distance_sum == b.counts.pair_distance_sum);
        CHECK(a.counts.best_kept == b.counts.best_kept);
        CHECK(a.trials != a.repaired);  // the segments' minimums made repair set bits
    }
}

GPU_TEST_CASE("pruning ops: Gibbs flip and kept counts on CUDA equal the CPU's, across two calls") {
    for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{300000}}) {
        CAPTURE(n);
        std::vector<float> a = test::random_values(n, 21, 0.0f, 1.0f), b = test::random_values(n, 22, 0.0f, 1.0f);
        for (float& v : a) v = v < 0.4f ? 1.0f : 0.0f;
        for (float& v : b) v = v < 0.6f ? 1.0f : 0.0f;
        std::vector<unsigned long long> counts[2];
        for (Device device : {Device::cpu, Device::cuda}) {
            Context ctx(device);
            Tensor prev = Tensor::from_host(a, Shape{n}, device), cur = Tensor::from_host(b, Shape{n}, device);
            Buffer counters(device, 2 * sizeof(unsigned long long));
            gibbs_count_changes(ctx, prev, cur, counters);
            gibbs_count_changes(ctx, cur, prev, counters);
            counts[device == Device::cpu ? 0 : 1] = counters_of(counters);
        }
        CHECK(counts[0] == counts[1]);
        CHECK(counts[0][1] > 0);
    }
}
