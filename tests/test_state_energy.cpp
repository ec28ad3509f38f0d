// Energies of the mask state alone (pruning/state_energy.h): the budget term's quadratic form
// against account(), the Ising energy against a brute-force sum over every state of a tiny
// model, the couplings' structure, and EDropout searching with them.
#include <doctest/doctest.h>

#include <cmath>

#include "kernels/error.h"
#include "kernels/philox.h"
#include "pruning/accounting.h"
#include "pruning/edropout.h"
#include "pruning/state_energy.h"
#include "tests/harness.h"

using namespace sp;

namespace {

// `members` random valid states of `space` (P, D): member p keeps each unit with probability
// (p + 1) / (members + 1), so the population spans small to large networks.
std::vector<float> random_states(const MaskSpace& space, int64_t members, uint64_t seed) {
    std::vector<float> states;
    for (int64_t p = 0; p < members; ++p) {
        std::vector<float> state(static_cast<size_t>(space.size()));
        const double keep = static_cast<double>(p + 1) / static_cast<double>(members + 1);
        for (size_t i = 0; i < state.size(); ++i)
            state[i] = stream_uniform(seed + static_cast<uint64_t>(p), i) < keep ? 1.0f : 0.0f;
        space.repair(state);
        states.insert(states.end(), state.begin(), state.end());
    }
    return states;
}

struct Family {
    const char* name;
    int64_t channels, side;
    ShortcutOption shortcut;
    bool residual_groups;
};

}  // namespace

TEST_CASE("budget energy: the quadratic form equals account() on random states, every model family, params and MACs") {
    const Family families[] = {{"lenet", 1, 28, ShortcutOption::a, false},      {"resnet20", 3, 16, ShortcutOption::a, false},
                               {"resnet20", 3, 16, ShortcutOption::b, true},     {"resnet18", 3, 16, ShortcutOption::b, true},
                               {"vgg16", 3, 32, ShortcutOption::a, false},       {"alexnet", 3, 32, ShortcutOption::a, false},
                               {"squeezenet", 3, 32, ShortcutOption::a, false}};
    for (const Family& f : families) {
        ModelOptions mo;
        mo.shortcut = f.shortcut;
        auto model = make_model(f.name, f.channels, f.side, f.side, 10, mo);
        model->allocate(Device::cpu, 1);
        MaskSpaceOptions so;
        so.prune_residual_groups = f.residual_groups;
        MaskSpace space(*model, so);
        Context ctx(Device::cpu, 1);
        const int64_t members = 6;
        const std::vector<float> states = random_states(space, members, 11);
        Tensor population = Tensor::from_host(states, Shape{members, space.size()}, Device::cpu);
        for (BudgetKind kind : {BudgetKind::params, BudgetKind::macs}) {
            CAPTURE(f.name);
            CAPTURE(f.residual_groups);
            CAPTURE(static_cast<int>(kind));
            BudgetEnergy budget(ctx, space, PruneTarget{kind, 0.4}, 2.0);
            Tensor fractions(Shape{members}, Device::cpu), energies(Shape{members}, Device::cpu);
            budget.cost_fractions(ctx, population, fractions);
            budget.add_to(ctx, population, energies);
            const std::vector<float> got = fractions.to_host(), penalty = energies.to_host();
            const auto segments = static_cast<int64_t>(space.segments().size());
            // Every term of the form is non-negative and they sum to the fraction (≤ 1): a float32
            // sum of S² + S + 1 products of float-rounded coefficients and exact counts.
            const double bound = test::gamma(segments * segments + segments + 4);
            for (int64_t p = 0; p < members; ++p) {
                const std::vector<float> state(states.begin() + p * space.size(), states.begin() + (p + 1) * space.size());
                const ModelAccount a = account(space, state);
                const double expected = kind == BudgetKind::params ? a.params_kept() : a.macs_kept();
                CHECK(std::fabs(got[static_cast<size_t>(p)] - expected) <= bound);
                CHECK(std::fabs(penalty[static_cast<size_t>(p)] - 2.0 * std::max(expected - 0.4, 0.0)) <= 2.0 * bound + 1e-7);
            }
        }
    }
}

TEST_CASE("ising energy: every state of a tiny model against the brute-force sum; the couplings' structure") {
    ModelOptions mo;
    mo.widths = {{"conv1", 3}, {"conv2", 4}, {"fc1", 4}};
    auto model = make_model("lenet", 1, 16, 16, 10, mo);
    model->allocate(Device::cpu, 5);
    MaskSpace space(*model, MaskSpaceOptions{});
    REQUIRE(space.size() == 11);
    Context ctx(Device::cpu, 5);
    IsingOptions io;
    io.keep_target = 0.6;
    io.penalty = 7.0;
    IsingEnergy ising(space, io);
    ising.update_couplings(ctx, test::random_tensor(Shape{8, 1, 16, 16}, Device::cpu, 9));

    const int64_t d = space.size();
    const std::vector<float> j = ising.couplings_host();
    auto segment_of = [&](int64_t unit) {
        for (size_t s = 0; s < space.segments().size(); ++s) {
            const MaskSegment& seg = space.segments()[s];
            if (unit >= seg.offset && unit < seg.offset + seg.size) return static_cast<int>(s);
        }
        return -1;
    };
    double total = 0;
    for (int64_t a = 0; a < d; ++a) {
        CHECK(j[static_cast<size_t>(a * d + a)] == 0.0f);
        for (int64_t b = 0; b < d; ++b) {
            const float v = j[static_cast<size_t>(a * d + b)];
            total += v;
            CHECK(v == j[static_cast<size_t>(b * d + a)]);
            CHECK(v >= 0.0f);
            CHECK(v <= 1.0f);
            // lenet's segments conv1 → conv2 → fc1 are a chain: nothing couples conv1 with fc1.
            if (std::abs(segment_of(a) - segment_of(b)) > 1) CHECK(v == 0.0f);
        }
    }
    // Min-max normalisation: within each segment of ≥ 3 distinct filters, the pair values span [0, 1].
    for (const MaskSegment& seg : space.segments()) {
        float lo = 1, hi = 0;
        for (int64_t a = 0; a < seg.size; ++a)
            for (int64_t b = a + 1; b < seg.size; ++b) {
                const float v = j[static_cast<size_t>((seg.offset + a) * d + seg.offset + b)];
                lo = std::min(lo, v), hi = std::max(hi, v);
            }
        CHECK(lo == 0.0f);
        CHECK(hi == 1.0f);
    }

    // All 2^11 states as one population, against the term-by-term double sum.
    const int64_t members = int64_t{1} << d;
    std::vector<float> states(static_cast<size_t>(members * d));
    for (int64_t m = 0; m < members; ++m)
        for (int64_t u = 0; u < d; ++u) states[static_cast<size_t>(m * d + u)] = static_cast<float>((m >> u) & 1);
    Tensor population = Tensor::from_host(states, Shape{members, d}, Device::cpu), energies(Shape{members}, Device::cpu);
    ising.evaluate(ctx, population, energies);
    const std::vector<float> got = energies.to_host();
    // The float32 path sums D² products of J (≤ 4 after the 4/Z scale), D field terms (≤ 6 in
    // all), the constant 2 and the penalty: the bound of their magnitudes.
    const double terms = 4 + 6 + 2 + io.penalty * (1 + io.keep_target);
    const double bound = test::gamma(d * d + 2 * d + 4) * terms;
    double lowest = INFINITY, highest = -INFINITY;
    for (int64_t m = 0; m < members; ++m) {
        const std::vector<float> state(states.begin() + m * d, states.begin() + (m + 1) * d);
        const double expected = ising.energy_host(state);
        CHECK(std::fabs(got[static_cast<size_t>(m)] - expected) <= bound);
        lowest = std::min(lowest, expected), highest = std::max(highest, expected);
    }
    // Keeping everything costs nothing, pruning everything −2 + the penalty; the states differ.
    CHECK(std::fabs(got[static_cast<size_t>(members - 1)]) <= bound);
    CHECK(std::fabs(got[0] - (-2 + io.penalty * io.keep_target)) <= bound);
    CHECK(highest - lowest > 1.0);
    CHECK(total > 0);
}

TEST_CASE("edropout: with the Ising energy and a budget term, a restored search continues exactly, across epochs") {
    auto model = make_model("lenet", 1, 16, 16, 10);
    model->allocate(Device::cpu, 3);
    Tensor images = test::random_tensor(Shape{16, 1, 16, 16}, Device::cpu, 7);
    std::vector<float> y(16);
    for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<float>(i % 10);
    Tensor labels = Tensor::from_host(y, Shape{16}, Device::cpu);
    Context ctx(Device::cpu, 6);
    MaskSpace space(*model, MaskSpaceOptions{});
    EDropoutOptions o;
    o.evolution.members = 6;
    o.min_epochs = 100;
    o.ising = true;
    o.budget_weight = 50;
    o.budget = PruneTarget{BudgetKind::params, 0.3};
    EDropoutSearch a(space, o, ctx);
    for (int g = 0; g < 7; ++g) a.before_step(ctx, images, labels, 0);
    const Checkpoint ck = test::saved_state(a);
    REQUIRE(ck.tensors.count("edropout.ising_couplings") == 1);

    EDropoutSearch b(space, o, ctx);
    b.restore(ctx, ck);
    for (int64_t epoch : {0, 0, 1, 1, 1}) {  // epoch 1 recomputes the couplings in both
        a.before_step(ctx, images, labels, epoch);
        b.before_step(ctx, images, labels, epoch);
    }
    CHECK(a.best_state_host() == b.best_state_host());
    const nlohmann::json log = a.epoch_log(ctx);
    CHECK(std::isfinite(log["best_energy"].get<double>()));
    CHECK(log["best_energy"].get<double>() <= log["mean_energy"].get<double>());
}

TEST_CASE("state energies: argument errors") {
    auto model = make_model("lenet", 1, 16, 16, 10);
    model->allocate(Device::cpu, 3);
    Context ctx(Device::cpu, 1);
    MaskSpaceOptions weights;
    weights.granularity = Granularity::weight;
    MaskSpace weight_space(*model, weights);
    CHECK_THROWS_WITH_AS(IsingEnergy(weight_space, IsingOptions{}), doctest::Contains("granularity"), Error);
    CHECK_THROWS_WITH_AS(BudgetEnergy(ctx, weight_space, PruneTarget{}, 1.0), doctest::Contains("granularity"), Error);
    MaskSpace space(*model, MaskSpaceOptions{});
    CHECK_THROWS_WITH_AS(BudgetEnergy(ctx, space, PruneTarget{BudgetKind::params, 1.5}, 1.0), doctest::Contains("keep"), Error);
    IsingEnergy ising(space, IsingOptions{});
    Tensor population(Shape{2, space.size()}, Device::cpu), energies(Shape{2}, Device::cpu);
    CHECK_THROWS_WITH_AS(ising.evaluate(ctx, population, energies), doctest::Contains("update_couplings"), Error);
}

GPU_TEST_CASE("state energies: CUDA population energies equal the CPU ones within the derived bound") {
    auto model = make_model("lenet", 1, 16, 16, 10);
    model->allocate(Device::cpu, 3);
    MaskSpace space(*model, MaskSpaceOptions{});
    Context cpu(Device::cpu, 1), gpu(Device::cuda, 1);
    IsingEnergy ising_cpu(space, IsingOptions{}), ising_gpu(space, IsingOptions{});
    ising_cpu.update_couplings(cpu, test::random_tensor(Shape{8, 1, 16, 16}, Device::cpu, 9));
    ising_gpu.set_couplings(gpu, ising_cpu.couplings_host());
    BudgetEnergy budget_cpu(cpu, space, PruneTarget{BudgetKind::macs, 0.5}, 3.0),
        budget_gpu(gpu, space, PruneTarget{BudgetKind::macs, 0.5}, 3.0);
    const int64_t members = 16, d = space.size();
    const std::vector<float> states = random_states(space, members, 4);
    Tensor pop_cpu = Tensor::from_host(states, Shape{members, d}, Device::cpu);
    Tensor pop_gpu = Tensor::from_host(states, Shape{members, d}, Device::cuda);
    Tensor e_cpu(Shape{members}, Device::cpu), e_gpu(Shape{members}, Device::cuda);
    ising_cpu.evaluate(cpu, pop_cpu, e_cpu);
    budget_cpu.add_to(cpu, pop_cpu, e_cpu);
    ising_gpu.evaluate(gpu, pop_gpu, e_gpu);
    budget_gpu.add_to(gpu, pop_gpu, e_gpu);
    gpu.synchronize();
    const std::vector<float> a = e_cpu.to_host(), b = e_gpu.to_host();
    // Both sides are float32 sums of the same ≤ D² + 2D + 8 terms, bounded as in the CPU test.
    const double bound = 2 * test::gamma(d * d + 2 * d + 8) * (4 + 6 + 2 + 100.0 * 1.5 + 3.0);
    for (int64_t p = 0; p < members; ++p) CHECK(std::fabs(a[static_cast<size_t>(p)] - b[static_cast<size_t>(p)]) <= bound);
}
