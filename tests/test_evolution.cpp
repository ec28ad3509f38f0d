// Binary differential evolution (pruning/evolution.h): initialisation, mutation + crossover of
// both rules and repair against scalar references written here from the documented counter
// layout (pruning/evolution.cpp), selection, best state, statistics, determinism, checkpoints,
// and CUDA vs CPU bit-identity over several generations. Everything is integer or 0/1 logic on
// the same uniforms, so every comparison is exact.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/error.h"
#include "kernels/philox.h"
#include "nn/context.h"
#include "pruning/evolution.h"
#include "tests/harness.h"

using namespace sp;

namespace {

using State = std::vector<float>;  // (P, D) or (D) 0/1 floats

// Population of 0/1 bits from Philox stream `seed` with keep probability `keep`.
State random_bits(int64_t p, int64_t d, uint64_t seed, float keep = 0.5f) {
    auto u = test::random_values(p * d, seed, 0.0f, 1.0f);
    State s(u.size());
    for (size_t k = 0; k < u.size(); ++k) s[k] = u[k] < keep ? 1.0f : 0.0f;
    return s;
}

// The scalar reference: partners by removing chosen members from an explicit list.
std::vector<int64_t> reference_partners(int64_t p, int64_t i, uint64_t key) {
    const uint64_t pick = random_stream_key(key, 1, 0);
    std::vector<int64_t> pool;
    for (int64_t j = 0; j < p; ++j)
        if (j != i) pool.push_back(j);
    std::vector<int64_t> r;
    for (int k = 0; k < 3; ++k) {
        const float u = stream_uniform(pick, static_cast<uint64_t>(4 * i + k));
        const int64_t n = static_cast<int64_t>(pool.size());
        const int64_t idx = std::min(static_cast<int64_t>(u * static_cast<float>(n)), n - 1);
        r.push_back(pool[static_cast<size_t>(idx)]);
        pool.erase(pool.begin() + idx);
    }
    return r;
}

// Lowest-index repair of one member (D values) in place.
void reference_repair(float* member, const std::vector<UnitSegment>& segments) {
    for (const UnitSegment& s : segments) {
        int64_t kept = 0;
        for (int64_t d = s.offset; d < s.offset + s.size; ++d) kept += member[d] == 1.0f;
        for (int64_t d = s.offset; d < s.offset + s.size && kept < s.min_kept; ++d)
            if (member[d] == 0.0f) member[d] = 1.0f, ++kept;
    }
}

// Trials of population x (P, D) with stream `key`, unit by unit, then repaired.
State reference_trials(const State& x, int64_t p, int64_t d, const EvolutionOptions& o, uint64_t key,
                       const std::vector<UnitSegment>& segments) {
    const uint64_t flag_key = random_stream_key(key, 2, 0), cross_key = random_stream_key(key, 3, 0);
    State t(x.size());
    for (int64_t i = 0; i < p; ++i) {
        const std::vector<int64_t> r = reference_partners(p, i, key);
        for (int64_t u = 0; u < d; ++u) {
            const float x1 = x[static_cast<size_t>(r[0] * d + u)], x2 = x[static_cast<size_t>(r[1] * d + u)],
                        x3 = x[static_cast<size_t>(r[2] * d + u)];
            const bool flag = stream_uniform(flag_key, static_cast<uint64_t>(i * d + u)) <= static_cast<float>(o.mutation_rate);
            float v;
            if (o.rule == MutationRule::reference)
                v = !flag ? x1 : (x2 == x3 ? 1.0f - x1 : 0.0f);
            else
                v = (!flag || x2 == x3) ? x1 : 1.0f - x1;
            const bool take = stream_uniform(cross_key, static_cast<uint64_t>(i * d + u)) <= static_cast<float>(o.crossover);
            t[static_cast<size_t>(i * d + u)] = take ? v : x[static_cast<size_t>(i * d + u)];
        }
        reference_repair(t.data() + i * d, segments);
    }
    return t;
}

State unpack(Context& ctx, const Evolution& evo, bool trials) {
    Tensor out(Shape{evo.members(), evo.units()}, ctx.device());
    if (trials)
        evo.unpack_trials(ctx, out);
    else
        evo.unpack_members(ctx, out);
    return out.to_host();
}

// Σ over pairs of Hamming distances / number of pairs, directly.
double reference_mean_hamming(const State& x, int64_t p, int64_t d) {
    double sum = 0;
    for (int64_t a = 0; a < p; ++a)
        for (int64_t b = a + 1; b < p; ++b)
            for (int64_t u = 0; u < d; ++u) sum += x[static_cast<size_t>(a * d + u)] != x[static_cast<size_t>(b * d + u)];
    return sum / (static_cast<double>(p) * static_cast<double>(p - 1) / 2.0);
}

// Segments of the D = 70 tests: a partial first word, one crossing the word boundary at 32, and
// one ending inside the partial last word; units 66..69 belong to none.
const std::vector<UnitSegment> kSegments = {{0, 10, 3}, {10, 30, 6}, {40, 26, 2}};

void check_segments(const State& x, int64_t p, int64_t d, const std::vector<UnitSegment>& segments) {
    for (int64_t i = 0; i < p; ++i)
        for (const UnitSegment& s : segments) {
            int64_t kept = 0;
            for (int64_t u = s.offset; u < s.offset + s.size; ++u) kept += x[static_cast<size_t>(i * d + u)] == 1.0f;
            CHECK_MESSAGE(kept >= s.min_kept, "member " << i << " segment at " << s.offset);
        }
}

}  // namespace

TEST_CASE("evolution: initialise draws Bernoulli(0.5) bits from the documented stream, then repairs") {
    Context ctx(Device::cpu);
    const int64_t p = 5, d = 70;
    EvolutionOptions o;
    o.members = p;
    const uint64_t key = random_stream_key(11, 22, 0);
    // Without segments: exactly u <= 0.5 per unit.
    Evolution plain(Device::cpu, d, o, {});
    plain.initialise(ctx, key);
    const State x = plain.members_host();
    const uint64_t init_key = random_stream_key(key, 4, 0);
    for (int64_t k = 0; k < p * d; ++k)
        REQUIRE(x[static_cast<size_t>(k)] == (stream_uniform(init_key, static_cast<uint64_t>(k)) <= 0.5f ? 1.0f : 0.0f));
    CHECK(std::count(x.begin(), x.end(), 1.0f) > 0);
    CHECK(std::count(x.begin(), x.end(), 0.0f) > 0);

    // With segments: the same draw followed by lowest-index repair. A demanding segment
    // (min_kept = size - 1) forces repairs in most members.
    const std::vector<UnitSegment> segments = {{0, 10, 3}, {10, 30, 29}, {40, 26, 2}};
    Evolution repaired(Device::cpu, d, o, segments);
    repaired.initialise(ctx, key);
    State expected = x;
    for (int64_t i = 0; i < p; ++i) reference_repair(expected.data() + i * d, segments);
    CHECK(repaired.members_host() == expected);
    CHECK(expected != x);  // the repair did something
    check_segments(expected, p, d, segments);
}

TEST_CASE("evolution: mutation + crossover match the scalar reference for both rules (P = 5, D = 70)") {
    Context ctx(Device::cpu);
    const int64_t p = 5, d = 70;
    for (MutationRule rule : {MutationRule::reference, MutationRule::textbook}) {
        for (double rate : {0.1, 0.5, 1.0}) {
            EvolutionOptions o;
            o.members = p;
            o.mutation_rate = rate;
            o.crossover = 0.7;
            o.rule = rule;
            CAPTURE(static_cast<int>(rule));
            CAPTURE(rate);
            Evolution evo(Device::cpu, d, o, kSegments);
            const State x = random_bits(p, d, 5, 0.5f);
            evo.restore(ctx, x, std::vector<float>(static_cast<size_t>(p), 0.0f));
            const uint64_t key = random_stream_key(3, 4, static_cast<uint64_t>(rate * 10));
            evo.make_trials(ctx, key);
            const State t = unpack(ctx, evo, true);
            CHECK(t == reference_trials(x, p, d, o, key, kSegments));
            check_segments(t, p, d, kSegments);
            CHECK(t != x);
            CHECK(evo.members_host() == x);  // make_trials leaves the members alone
        }
    }
}

TEST_CASE("evolution: partners are three distinct others, and CR = 1, mutation_rate = 0 copy x_r1") {
    Context ctx(Device::cpu);
    for (int64_t p : {4, 5, 9}) {
        const int64_t d = 70;
        EvolutionOptions o;
        o.members = p;
        o.mutation_rate = 0.0;
        o.crossover = 1.0;
        Evolution evo(Device::cpu, d, o, {});
        // Distinct members: member i has unit i set only (and the rest random above unit 16).
        State x = random_bits(p, d, 17, 0.5f);
        for (int64_t i = 0; i < p; ++i)
            for (int64_t u = 0; u < 16; ++u) x[static_cast<size_t>(i * d + u)] = u == i ? 1.0f : 0.0f;
        evo.restore(ctx, x, std::vector<float>(static_cast<size_t>(p), 0.0f));
        for (uint64_t g = 0; g < 4; ++g) {
            const uint64_t key = random_stream_key(8, 9, g);
            evo.make_trials(ctx, key);
            const State t = unpack(ctx, evo, true);
            for (int64_t i = 0; i < p; ++i) {
                const std::vector<int64_t> r = reference_partners(p, i, key);
                CHECK(r[0] != i);
                CHECK(r[1] != i);
                CHECK(r[2] != i);
                CHECK(r[0] != r[1]);
                CHECK(r[0] != r[2]);
                CHECK(r[1] != r[2]);
                const State ti(t.begin() + i * d, t.begin() + (i + 1) * d), xr(x.begin() + r[0] * d, x.begin() + (r[0] + 1) * d);
                CHECK(ti == xr);
            }
        }
    }
}

TEST_CASE("evolution: repair sets the lowest-index unset units of a short segment") {
    Context ctx(Device::cpu);
    const int64_t p = 4, d = 70;
    EvolutionOptions o;
    o.members = p;
    o.mutation_rate = 0.0;
    o.crossover = 1.0;  // trials are copies of the all-zero members, then repaired
    Evolution evo(Device::cpu, d, o, kSegments);
    State x(static_cast<size_t>(p * d), 0.0f);
    // Segment 0 has one unit set (5): units 0 and 1 are added; the others get their first units.
    for (int64_t i = 0; i < p; ++i) x[static_cast<size_t>(i * d + 5)] = 1.0f;
    evo.restore(ctx, x, std::vector<float>(static_cast<size_t>(p), 0.0f));
    evo.make_trials(ctx, 1);
    const State t = unpack(ctx, evo, true);
    for (int64_t i = 0; i < p; ++i) {
        State expected(static_cast<size_t>(d), 0.0f);
        for (int64_t u : {0, 1, 5, 10, 11, 12, 13, 14, 15, 40, 41}) expected[static_cast<size_t>(u)] = 1.0f;
        CHECK(State(t.begin() + i * d, t.begin() + (i + 1) * d) == expected);
    }
}

TEST_CASE("evolution: selection takes exactly the strictly better trials; stats by hand") {
    Context ctx(Device::cpu);
    const int64_t p = 6, d = 70;
    EvolutionOptions o;
    o.members = p;
    o.mutation_rate = 0.3;
    Evolution evo(Device::cpu, d, o, kSegments);
    evo.initialise(ctx, 42);
    const State x = evo.members_host();
    const std::vector<float> energies = {1.0f, 2.0f, 3.0f, -1.0f, 0.5f, 7.0f};
    evo.set_energies(ctx, Tensor::from_host(energies, Shape{p}, Device::cpu));
    CHECK(evo.energies_host() == energies);
    evo.make_trials(ctx, 43);
    const State t = unpack(ctx, evo, true);
    // lower, equal, higher, lower by one ulp, NaN, -inf
    const std::vector<float> trial_energies = {0.5f, 2.0f, 3.5f, std::nextafter(-1.0f, -2.0f),
                                               std::numeric_limits<float>::quiet_NaN(),
                                               -std::numeric_limits<float>::infinity()};
    const std::vector<bool> take = {true, false, false, true, false, true};
    evo.select(ctx, Tensor::from_host(trial_energies, Shape{p}, Device::cpu));
    const State y = evo.members_host();
    const std::vector<float> e = evo.energies_host();
    for (int64_t i = 0; i < p; ++i) {
        CAPTURE(i);
        const State& src = take[static_cast<size_t>(i)] ? t : x;
        CHECK(State(y.begin() + i * d, y.begin() + (i + 1) * d) == State(src.begin() + i * d, src.begin() + (i + 1) * d));
        CHECK(e[static_cast<size_t>(i)] == (take[static_cast<size_t>(i)] ? trial_energies : energies)[static_cast<size_t>(i)]);
    }
    const EvolutionStats s = evo.stats(ctx);
    CHECK(s.acceptance == 0.5);
    CHECK(s.best_member == 5);
    CHECK(s.best_energy == -std::numeric_limits<float>::infinity());
    CHECK(s.mean_hamming == reference_mean_hamming(y, p, d));
    CHECK(s.mean_hamming > 0.0);
    double kept = 0;
    for (int64_t u = 0; u < d; ++u) kept += y[static_cast<size_t>(5 * d + u)];
    CHECK(s.kept_fraction == kept / d);
}

TEST_CASE("evolution: best_state is the argmin with the lowest index on ties") {
    Context ctx(Device::cpu);
    const int64_t p = 5, d = 70;
    EvolutionOptions o;
    o.members = p;
    Evolution evo(Device::cpu, d, o, {});
    const State x = random_bits(p, d, 77, 0.4f);
    for (const std::vector<float>& energies :
         {std::vector<float>{3, 1, 2, 1, 5}, std::vector<float>{0, 0, 0, 0, 0}, std::vector<float>{4, 3, 2, 1, 1},
          std::vector<float>{std::nanf(""), 9, 8, 8, 9}}) {
        evo.restore(ctx, x, energies);
        int64_t expected = -1;
        for (int64_t i = 0; i < p; ++i) {
            const float e = energies[static_cast<size_t>(i)];
            if (std::isnan(e)) continue;
            if (expected < 0 || e < energies[static_cast<size_t>(expected)]) expected = i;
        }
        Tensor best(Shape{d}, Device::cpu);
        evo.best_state(ctx, best);
        CHECK(best.to_host() == State(x.begin() + expected * d, x.begin() + (expected + 1) * d));
        const EvolutionStats s = evo.stats(ctx);
        CHECK(s.best_member == expected);
        CHECK(s.best_energy == energies[static_cast<size_t>(expected)]);
        CHECK(s.acceptance == 0.0);  // no selection since the restore
        double mean = 0;
        for (float e : energies) mean += e;
        if (!std::isnan(mean)) CHECK(s.mean_energy == static_cast<float>(mean / p));
    }
}

TEST_CASE("evolution: same key gives the same population, another key another") {
    Context ctx(Device::cpu);
    const int64_t p = 8, d = 300;
    EvolutionOptions o;
    o.members = p;
    auto run = [&](uint64_t init, uint64_t step) {
        Evolution evo(Device::cpu, d, o, {{0, 100, 1}, {100, 200, 1}});
        evo.initialise(ctx, init);
        evo.make_trials(ctx, step);
        return std::make_pair(evo.members_host(), unpack(ctx, evo, true));
    };
    const auto a = run(1, 2), b = run(1, 2), c = run(3, 2), e = run(1, 4);
    CHECK(a.first == b.first);
    CHECK(a.second == b.second);
    CHECK(a.first != c.first);
    CHECK(a.first == e.first);
    CHECK(a.second != e.second);
}

TEST_CASE("evolution: restore round-trips members and energies; invalid arguments are rejected") {
    Context ctx(Device::cpu);
    const int64_t p = 4, d = 33;
    EvolutionOptions o;
    o.members = p;
    Evolution evo(Device::cpu, d, o, {});
    const State x = random_bits(p, d, 8, 0.5f);
    const std::vector<float> energies = {0.25f, -3.0f, 8.0f, 1.0f};
    evo.restore(ctx, x, energies);
    CHECK(evo.members_host() == x);
    CHECK(evo.energies_host() == energies);
    CHECK_THROWS_AS(evo.restore(ctx, State(static_cast<size_t>(p * d), 0.5f), energies), Error);
    CHECK_THROWS_AS(evo.restore(ctx, x, {1.0f}), Error);
    Tensor wrong(Shape{p, d + 1}, Device::cpu);
    CHECK_THROWS_AS(evo.unpack_members(ctx, wrong), Error);
    CHECK_THROWS_AS(evo.select(ctx, Tensor(Shape{p + 1}, Device::cpu)), Error);

    EvolutionOptions three;
    three.members = 3;
    CHECK_THROWS_AS(Evolution(Device::cpu, d, three, {}), Error);
    CHECK_THROWS_AS(Evolution(Device::cpu, d, o, {{30, 4, 1}}), Error);  // past D
    CHECK_THROWS_AS(Evolution(Device::cpu, d, o, {{0, 4, 5}}), Error);   // min_kept > size
    // Overlapping segments (the GPU repairs segments in parallel): refused, naming both.
    const std::string overlap = test::error_of([&] { Evolution(Device::cpu, d, o, {{10, 6, 1}, {0, 12, 1}}); });
    CHECK(overlap.find("[0, 12)") != std::string::npos);
    CHECK(overlap.find("[10, 16)") != std::string::npos);
    CHECK_NOTHROW(Evolution(Device::cpu, d, o, {{12, 6, 1}, {0, 12, 1}}));  // adjacent, any order
}

namespace {

// Energy of a member: Hamming distance to a fixed target, so ties are common.
std::vector<float> toy_energies(const State& x, int64_t p, int64_t d) {
    std::vector<float> e(static_cast<size_t>(p), 0.0f);
    for (int64_t i = 0; i < p; ++i)
        for (int64_t u = 0; u < d; ++u) e[static_cast<size_t>(i)] += x[static_cast<size_t>(i * d + u)] != static_cast<float>((u * 7) % 3 == 0);
    return e;
}

}  // namespace

TEST_CASE("evolution: a CPU search lowers the toy energy") {
    Context ctx(Device::cpu);
    const int64_t p = 8, d = 70;
    EvolutionOptions o;
    o.members = p;
    Evolution evo(Device::cpu, d, o, kSegments);
    evo.initialise(ctx, 5);
    evo.set_energies(ctx, Tensor::from_host(toy_energies(evo.members_host(), p, d), Shape{p}, Device::cpu));
    const float start = evo.stats(ctx).best_energy;
    for (uint64_t g = 1; g <= 60; ++g) {
        evo.make_trials(ctx, g);
        const State t = unpack(ctx, evo, true);
        evo.select(ctx, Tensor::from_host(toy_energies(t, p, d), Shape{p}, Device::cpu));
    }
    const EvolutionStats s = evo.stats(ctx);
    CHECK(s.best_energy < start);
    CHECK(evo.energies_host() == toy_energies(evo.members_host(), p, d));  // energies follow the members
}

GPU_TEST_CASE("evolution: CUDA members, trials, selections and stats are bit-identical to the CPU") {
    struct Case {
        int64_t p, d;
        MutationRule rule;
        std::vector<UnitSegment> segments;
    };
    const std::vector<Case> cases = {
        {5, 70, MutationRule::reference, kSegments},
        {5, 70, MutationRule::textbook, kSegments},
        {37, 1000, MutationRule::reference, {{0, 64, 60}, {64, 500, 3}, {564, 436, 1}}},
        {256, 97, MutationRule::textbook, {{0, 97, 50}}},
    };
    for (const Case& c : cases) {
        CAPTURE(c.p);
        CAPTURE(c.d);
        EvolutionOptions o;
        o.members = c.p;
        o.mutation_rate = 0.2;
        o.crossover = 0.8;
        o.rule = c.rule;
        Context cpu(Device::cpu), gpu(Device::cuda);
        Evolution a(Device::cpu, c.d, o, c.segments), b(Device::cuda, c.d, o, c.segments);
        a.initialise(cpu, 1000 + static_cast<uint64_t>(c.p));
        b.initialise(gpu, 1000 + static_cast<uint64_t>(c.p));
        REQUIRE(a.members_host() == b.members_host());
        std::vector<float> e0 = toy_energies(a.members_host(), c.p, c.d);
        a.set_energies(cpu, Tensor::from_host(e0, Shape{c.p}, Device::cpu));
        b.set_energies(gpu, Tensor::from_host(e0, Shape{c.p}, Device::cuda));
        for (uint64_t g = 1; g <= 5; ++g) {
            CAPTURE(g);
            const uint64_t key = random_stream_key(7, 8, g);
            a.make_trials(cpu, key);
            b.make_trials(gpu, key);
            const State ta = unpack(cpu, a, true), tb = unpack(gpu, b, true);
            REQUIRE(ta == tb);
            const std::vector<float> te = toy_energies(ta, c.p, c.d);
            a.select(cpu, Tensor::from_host(te, Shape{c.p}, Device::cpu));
            b.select(gpu, Tensor::from_host(te, Shape{c.p}, Device::cuda));
            REQUIRE(a.members_host() == b.members_host());
            REQUIRE(unpack(cpu, a, false) == unpack(gpu, b, false));
            REQUIRE(a.energies_host() == b.energies_host());
            Tensor best_a(Shape{c.d}, Device::cpu), best_b(Shape{c.d}, Device::cuda);
            a.best_state(cpu, best_a);
            b.best_state(gpu, best_b);
            CHECK(best_a.to_host() == best_b.to_host());
            const EvolutionStats sa = a.stats(cpu), sb = b.stats(gpu);
            CHECK(sa.best_energy == sb.best_energy);
            CHECK(sa.mean_energy == sb.mean_energy);
            CHECK(sa.best_member == sb.best_member);
            CHECK(sa.mean_hamming == sb.mean_hamming);
            CHECK(sa.acceptance == sb.acceptance);
            CHECK(sa.kept_fraction == sb.kept_fraction);
        }
        // Checkpoint round trip on the device.
        b.restore(gpu, a.members_host(), a.energies_host());
        CHECK(b.members_host() == a.members_host());
        CHECK(b.stats(gpu).acceptance == 0.0);
    }
}
