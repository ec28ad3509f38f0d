// Gibbs pruning: the samplers' frequencies against the exact distributions (binomial z-bounds
// from the number of draws), β → ∞ against magnitude pruning, invariance of the chromatic sweeps,
// the schedule, the config keys, resume of the training sampler, and CPU == CUDA masks.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/error.h"
#include "kernels/gibbs.h"
#include "nn/layers.h"
#include "nn/models/model.h"
#include "nn/optim.h"
#include "pruning/gibbs.h"
#include "tests/harness.h"
#include "train/config.h"

using namespace sp;

namespace {

// Two-sided binomial bound at z = 5 per cell (≈ 6e-7 each, so a whole test's family of at most
// a few hundred cells fails by chance with probability < 1e-3), plus 1/N for the float
// probabilities and the 2^-23 grid of the uniforms.
bool within_binomial(double freq, double prob, int64_t draws) {
    const double sd = std::sqrt(std::max(prob * (1 - prob), 0.0) / static_cast<double>(draws));
    return std::fabs(freq - prob) <= 5.0 * sd + 1.0 / static_cast<double>(draws);
}

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// Exact H of ±1 spins x (filter-wise layer with one filter, or kernel-wise when `halves` = false).
double exact_energy(const std::vector<float>& w, float q, GibbsLayerShape s, double c, const std::vector<int>& x, bool halves) {
    double h = 0;
    for (size_t i = 0; i < x.size(); ++i) h += (static_cast<double>(q) - static_cast<double>(w[i]) * w[i]) * x[i];
    for (int64_t k = 0; k < s.filters * s.channels; ++k) {
        for (int64_t i = 0; i < s.area; ++i)
            for (int64_t j = 0; j < s.area; ++j)
                if (i != j) h -= c * x[static_cast<size_t>(k * s.area + i)] * x[static_cast<size_t>(k * s.area + j)];
    }
    if (halves) {
        const int64_t split = s.channels / 2;
        for (int64_t f = 0; f < s.filters; ++f) {
            double a = 0, b = 0;
            for (int64_t ch = 0; ch < s.channels; ++ch)
                for (int64_t i = 0; i < s.area; ++i) (ch < split ? a : b) += x[static_cast<size_t>((f * s.channels + ch) * s.area + i)];
            h -= c * a * b;
        }
    }
    return h;
}

std::vector<int> spins_of(uint32_t state, size_t n) {
    std::vector<int> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = (state >> i) & 1u ? 1 : -1;
    return x;
}

uint32_t state_of(const std::vector<float>& mask) {
    uint32_t s = 0;
    for (size_t i = 0; i < mask.size(); ++i) s |= mask[i] != 0.0f ? 1u << i : 0u;
    return s;
}

// Normalised exp(−β H) over all 2^n states.
std::vector<double> boltzmann(const std::vector<double>& energies, double beta) {
    const double lo = *std::min_element(energies.begin(), energies.end());
    std::vector<double> p(energies.size());
    double z = 0;
    for (size_t i = 0; i < p.size(); ++i) z += p[i] = std::exp(-beta * (energies[i] - lo));
    for (double& v : p) v /= z;
    return p;
}

// `steps` SGD steps of a lenet on 16x16 inputs with Gibbs masks (fused_apply as given), then a
// forward of other images with the last mask still attached (as validation runs): the final
// weights and those logits.
std::pair<std::vector<float>, std::vector<float>> gibbs_training_steps(Device device, bool fused, int steps) {
    auto model = make_model("lenet", 1, 16, 16, 10);
    model->allocate(device, 9);
    model->set_training(true);
    // Deterministic: two runs are compared bit for bit, and cuDNN's non-deterministic backward
    // algorithms (atomics) would make a correct CUDA implementation fail at random.
    Context ctx(device, 1, /*deterministic=*/true);
    GibbsOptions o;
    o.p = 0.8;
    o.schedule = GibbsSchedule{1e2, 1e2, 1};
    o.fused_apply = fused;
    GibbsTraining sampler(*model, o, ctx);
    const Tensor images = test::random_tensor(Shape{8, 1, 16, 16}, device, 21);
    std::vector<float> y(8);
    for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<float>(i % 10);
    const Tensor labels = Tensor::from_host(y, Shape{8}, device);
    SgdHyper hyper;
    hyper.momentum = 0.9f;
    Sgd sgd(hyper);
    SoftmaxCrossEntropy loss_fn;
    for (int step = 0; step < steps; ++step) {
        ctx.set_step(static_cast<uint64_t>(step));
        sampler.before_step(ctx, images, labels, 0);
        Tensor& logits = model->forward(ctx, images);
        loss_fn.forward(ctx, logits, labels);
        model->backward(ctx, loss_fn.backward(ctx));
        sgd.step(ctx, model->parameters(), 0.1f);
        sampler.after_step(ctx);
    }
    model->set_training(false);
    const std::vector<float> logits = model->forward(ctx, test::random_tensor(Shape{4, 1, 16, 16}, device, 22)).to_host();
    return {model->parameters().values().to_host(), logits};
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("gibbs: annealing schedule is log-spaced, then held") {
    GibbsSchedule s{1.0, 1e4, 128};
    CHECK(s.beta(0) == doctest::Approx(1.0).epsilon(1e-12));
    CHECK(s.beta(127) == doctest::Approx(1e4).epsilon(1e-12));
    CHECK(s.beta(199) == doctest::Approx(1e4).epsilon(1e-12));
    for (int64_t e : {1, 50, 100}) CHECK(s.beta(e) == doctest::Approx(std::pow(10.0, 4.0 * e / 127.0)).epsilon(1e-12));
    GibbsSchedule filter{std::pow(10.0, -2.5), 1.0, 128};
    CHECK(filter.beta(64) == doctest::Approx(std::pow(10.0, -2.5 + 2.5 * 64 / 127.0)).epsilon(1e-12));
    CHECK(GibbsSchedule{2.0, 5.0, 1}.beta(0) == 5.0);
}

TEST_CASE("gibbs: percentile is the linear interpolation of the sorted values; exp/log helpers") {
    std::vector<float> v = test::random_values(101, 5);
    std::vector<float> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    for (double p : {0.0, 0.1, 0.5, 0.9, 0.905, 1.0}) {
        const double pos = p * 100;
        const size_t lo = static_cast<size_t>(std::floor(pos));
        const double expected = lo == 100 ? sorted[100] : sorted[lo] + (pos - lo) * (sorted[lo + 1] - sorted[lo]);
        CHECK(percentile_host(v, p) == doctest::Approx(expected).epsilon(4 * test::kUnitRoundoff));
    }
    // A handful of float operations after an exact reduction: within 8 roundoffs (+ series error < 1e-8).
    for (float x : {-20.5f, -3.0f, -0.3f, 0.0f, 0.7f, 5.25f, 40.0f}) {
        CHECK(kernels::gibbs_exp2(x) == doctest::Approx(std::exp2(static_cast<double>(x))).epsilon(8 * test::kUnitRoundoff));
        CHECK(kernels::gibbs_sigmoid(x) == doctest::Approx(sigmoid(x)).epsilon(8 * test::kUnitRoundoff));
    }
    for (float x : {1e-7f, 0.01f, 0.5f, 0.9999f, 1.0f, 3.0f, 17.0f}) {
        CHECK(kernels::gibbs_log(x) == doctest::Approx(std::log(static_cast<double>(x))).epsilon(8 * test::kUnitRoundoff).scale(1e-30));
    }
    CHECK(kernels::gibbs_log(1.0f) == 0.0f);
}

TEST_CASE("gibbs: unstructured marginals are sigma(beta (w^2 - Q))") {
    const GibbsLayerShape s{4, 4, 4};  // 64 weights
    const std::vector<float> w = test::random_values(s.numel(), 11);
    GibbsParams p;
    p.p = 0.5;
    p.beta = 8.0f;
    const float q = percentile_host(gibbs_statistic_host(w.data(), s, p.hamiltonian), p.p);
    const int64_t draws = 4000;
    std::vector<int64_t> kept(w.size(), 0);
    std::vector<float> mask(w.size());
    for (int64_t t = 0; t < draws; ++t) {
        gibbs_draw_host(w.data(), s, p, random_stream_key(3, 17, static_cast<uint64_t>(t)), mask.data());
        for (size_t i = 0; i < w.size(); ++i) kept[i] += mask[i] != 0.0f;
    }
    int64_t off = 0;
    for (size_t i = 0; i < w.size(); ++i) {
        const double prob = sigmoid(p.beta * (static_cast<double>(w[i]) * w[i] - q));
        const double freq = static_cast<double>(kept[i]) / draws;
        if (!within_binomial(freq, prob, draws)) {
            ++off;
            MESSAGE("weight " << i << ": frequency " << freq << ", sigma " << prob);
        }
    }
    CHECK(off == 0);
}

TEST_CASE("gibbs: beta -> infinity is per-layer magnitude pruning") {
    const GibbsLayerShape s{10, 10, 10};  // 1000 weights: Q_0.9 at position 899.1, between two weights
    const std::vector<float> w = test::random_values(s.numel(), 23);
    GibbsParams p;
    p.p = 0.9;
    p.beta = 1e30f;
    std::vector<float> w2(w.size());
    for (size_t i = 0; i < w.size(); ++i) w2[i] = w[i] * w[i];
    std::vector<float> sorted = w2;
    std::sort(sorted.begin(), sorted.end());
    const float threshold = sorted[899];  // keep the 100 largest: w² > sorted[899]
    std::vector<float> mask(w.size());
    for (uint64_t step : {0u, 1u, 99u}) {
        gibbs_draw_host(w.data(), s, p, random_stream_key(1, 2, step), mask.data());
        int64_t kept = 0, wrong = 0;
        for (size_t i = 0; i < w.size(); ++i) {
            kept += mask[i] != 0.0f;
            wrong += (mask[i] != 0.0f) != (w2[i] > threshold);
        }
        CHECK(kept == 100);
        CHECK(wrong == 0);
    }
}

TEST_CASE("gibbs: kernel-wise draws match the exact 2^area enumeration") {
    const GibbsLayerShape s{3, 1, 4};  // three kernels of 4 weights, 16 configurations each
    const std::vector<float> w = test::random_values(s.numel(), 31, -1.2f, 1.2f);
    const float q = 0.5f;
    const double c = 0.15, beta = 1.5;
    const int64_t draws = 6000;
    std::vector<std::vector<int64_t>> counts(3, std::vector<int64_t>(16, 0));
    std::vector<float> mask(w.size());
    for (int64_t t = 0; t < draws; ++t) {
        gibbs_draw_kernels_host(w.data(), q, s, 0, 1, nullptr, static_cast<float>(c), static_cast<float>(beta),
                                random_stream_key(5, 9, static_cast<uint64_t>(t)), 0, mask.data());
        for (int64_t k = 0; k < 3; ++k)
            ++counts[k][state_of(std::vector<float>(mask.begin() + 4 * k, mask.begin() + 4 * k + 4))];
    }
    int64_t off = 0;
    for (int64_t k = 0; k < 3; ++k) {
        const GibbsLayerShape one{1, 1, 4};
        const std::vector<float> wk(w.begin() + 4 * k, w.begin() + 4 * k + 4);
        std::vector<double> energies(16);
        for (uint32_t m = 0; m < 16; ++m) energies[m] = exact_energy(wk, q, one, c, spins_of(m, 4), false);
        const std::vector<double> prob = boltzmann(energies, beta);
        for (uint32_t m = 0; m < 16; ++m) off += !within_binomial(static_cast<double>(counts[k][m]) / draws, prob[m], draws);
    }
    CHECK(off == 0);
}

TEST_CASE("gibbs: filter-wise chromatic sweeps leave the Boltzmann distribution invariant") {
    const GibbsLayerShape s{1, 2, 2};  // one filter, two channels (halves A, B) of 2 weights: 16 states
    const std::vector<float> w = {0.9f, 0.2f, -0.5f, 0.05f};
    const float q = 0.3f;
    GibbsParams p;
    p.hamiltonian = GibbsHamiltonian::filter;
    p.coupling = 0.4f;
    p.beta = 1.0f;
    p.sweeps = 1;
    std::vector<double> energies(16);
    for (uint32_t m = 0; m < 16; ++m) energies[m] = exact_energy(w, q, s, p.coupling, spins_of(m, 4), true);
    const std::vector<double> pi = boltzmann(energies, p.beta);
    // The energy of the logs equals the exact one up to a constant.
    for (uint32_t m = 0; m < 16; ++m) {
        std::vector<float> mask(4);
        for (int i = 0; i < 4; ++i) mask[i] = (m >> i) & 1u ? 1.0f : 0.0f;
        GibbsParams logged = p;
        logged.p = 0.0;  // one filter: Q = its mean w² whatever p
        const float q_mean = (w[0] * w[0] + w[1] * w[1] + w[2] * w[2] + w[3] * w[3]) / 4;
        CHECK(gibbs_energy_host(w.data(), s, logged, mask.data()) ==
              doctest::Approx(exact_energy(w, q_mean, s, p.coupling, spins_of(m, 4), true)).epsilon(1e-6));
    }
    // Starts drawn from π (inverse CDF on a separate stream), one sweep each: still π.
    const int64_t draws = 20000;
    std::vector<int64_t> counts(16, 0);
    for (int64_t t = 0; t < draws; ++t) {
        double u = stream_uniform(random_stream_key(8, 1, 0), static_cast<uint64_t>(t)), acc = 0;
        uint32_t start = 15;
        for (uint32_t m = 0; m < 16; ++m)
            if (u <= (acc += pi[m])) {
                start = m;
                break;
            }
        std::vector<float> mask(4);
        for (int i = 0; i < 4; ++i) mask[i] = (start >> i) & 1u ? 1.0f : 0.0f;
        gibbs_filter_sweeps_host(w.data(), q, s, p, random_stream_key(8, 2, static_cast<uint64_t>(t)), mask.data());
        ++counts[state_of(mask)];
    }
    int64_t off = 0;
    for (uint32_t m = 0; m < 16; ++m) off += !within_binomial(static_cast<double>(counts[m]) / draws, pi[m], draws);
    CHECK(off == 0);
    // From the fixed start "all pruned", one sweep gives P(A | S_B = −2) · P(B | S_A), enumerated.
    std::vector<double> one_sweep(16, 0.0);
    auto conditional = [&](uint32_t half_state, int other_sum, int half) {  // P(half's 2 spins | other half's sum)
        std::vector<double> e(4);
        for (uint32_t m = 0; m < 4; ++m) {
            const std::vector<int> x = spins_of(m, 2);
            e[m] = 0;
            for (int i = 0; i < 2; ++i) e[m] += (q - static_cast<double>(w[2 * half + i]) * w[2 * half + i] - p.coupling * other_sum) * x[i];
            e[m] -= p.coupling * 2 * x[0] * x[1];
        }
        return boltzmann(e, p.beta)[half_state];
    };
    for (uint32_t a = 0; a < 4; ++a)
        for (uint32_t b = 0; b < 4; ++b) {
            const std::vector<int> xa = spins_of(a, 2);
            one_sweep[a | (b << 2)] = conditional(a, -2, 0) * conditional(b, xa[0] + xa[1], 1);
        }
    std::fill(counts.begin(), counts.end(), 0);
    for (int64_t t = 0; t < draws; ++t) {
        std::vector<float> mask(4, 0.0f);
        gibbs_filter_sweeps_host(w.data(), q, s, p, random_stream_key(8, 3, static_cast<uint64_t>(t)), mask.data());
        ++counts[state_of(mask)];
    }
    off = 0;
    for (uint32_t m = 0; m < 16; ++m) off += !within_binomial(static_cast<double>(counts[m]) / draws, one_sweep[m], draws);
    CHECK(off == 0);
}

TEST_CASE("gibbs: final kernel / filter selection keeps units with sum >= Q_p") {
    const std::vector<float> sums = {5, 1, 3, 9, 7, 2, 8, 4, 6, 0};
    const std::vector<float> kept = gibbs_magnitude_units(sums, 0.7);  // Q at position 6.3: 6.3
    CHECK(kept == std::vector<float>{0, 0, 0, 1, 1, 0, 1, 0, 0, 0});
}

TEST_CASE("gibbs: [prune.gibbs] keys, ranges and the resolved config") {
    const std::string base = "[prune]\nmethod = \"gibbs\"\ngranularity = \"weight\"\n[prune.gibbs]\n";
    ExperimentConfig c = parse_config(base + "p = 0.8\nbeta_start = 0.5\nbeta_end = 100.0\nanneal_epochs = 10\nsweeps = 7\n", "g.toml");
    CHECK(c.prune.gibbs.p == 0.8);
    CHECK(c.prune.gibbs.schedule.beta_end == 100.0);
    CHECK(c.prune.gibbs.schedule.anneal_epochs == 10);
    CHECK(c.prune.gibbs.sweeps == 7);
    CHECK(parse_config(to_toml(c), "resolved").prune.gibbs.schedule.beta_start == 0.5);
    CHECK_THROWS_WITH_AS(parse_config(base + "p = 1.5\n", "g.toml"), doctest::Contains("g.toml: key 'prune.gibbs.p': expected a value in [0, 0.999], got 1.5"), Error);
    CHECK_THROWS_WITH_AS(parse_config(base + "sweeps = 0\n", "g.toml"), doctest::Contains("prune.gibbs.sweeps"), Error);
    CHECK_THROWS_WITH_AS(parse_config(base + "beta_end = \"big\"\n", "g.toml"), doctest::Contains("expected a number"), Error);
    CHECK_THROWS_WITH_AS(parse_config(base + "temperature = 1.0\n", "g.toml"), doctest::Contains("unknown key 'prune.gibbs.temperature'"), Error);
}

namespace {

// Five sampler steps straight, and two + (save, restore) + three: the same epoch log (flip and
// kept counters, β, sparsity). Returns the straight log.
nlohmann::json check_sampler_resumes(Device device) {
    auto run_steps = [device](int64_t from, int64_t to, const Checkpoint* resume, Checkpoint* save_at_end) {
        auto model = make_model("lenet", 1, 16, 16, 10);
        model->allocate(device, 3);
        Context ctx(device, 1);
        GibbsOptions o;
        o.p = 0.8;
        o.schedule = GibbsSchedule{1.0, 100.0, 4};
        GibbsTraining sampler(*model, o, ctx);
        if (resume) sampler.restore(ctx, *resume);
        for (int64_t step = from; step < to; ++step) {
            ctx.set_step(static_cast<uint64_t>(step));
            sampler.before_step(ctx, Tensor(), Tensor(), 1);  // one chain: the batch is not used
        }
        if (save_at_end) *save_at_end = test::saved_state(sampler);
        return sampler.epoch_log(ctx);
    };
    const nlohmann::json straight = run_steps(0, 5, nullptr, nullptr);
    Checkpoint ck;
    run_steps(0, 2, nullptr, &ck);
    const nlohmann::json resumed = run_steps(2, 5, &ck, nullptr);
    CHECK(straight.dump() == resumed.dump());
    return straight;
}

}  // namespace

TEST_CASE("gibbs: the training sampler resumes identically and logs its statistics") {
    const nlohmann::json straight = check_sampler_resumes(Device::cpu);
    CHECK(straight["gibbs_beta"].get<double>() == doctest::Approx(std::pow(10.0, 2.0 / 3.0)));
    CHECK(straight["gibbs_steps"].get<int64_t>() == 5);
    const double flips = straight["gibbs_flip_rate"].get<double>();
    CHECK(flips > 0.0);  // β = 4.6 on small weights: masks change between steps
    CHECK(flips < 0.5);
    CHECK(straight["gibbs_kept_mean"].get<double>() > 0.1);
    CHECK(straight["gibbs_sparsity"].size() >= 2);
}

GPU_TEST_CASE("gibbs (cuda): the training sampler resumes identically; its counters are the CPU's") {
    // The CUDA draws equal the CPU's bit for bit, so the flip and kept counters match exactly.
    CHECK(check_sampler_resumes(Device::cuda).dump() == check_sampler_resumes(Device::cpu).dump());
}

namespace {

// Four chains drawn and scored in one step on `device`: chain 0 is the single-chain draw, the
// energies are the one-by-one evaluator's, the training mask is the lowest-energy chain.
void check_chains(Device device) {
    auto model = make_model("lenet", 1, 16, 16, 10);
    model->allocate(device, 5);
    Context ctx(device, 1);
    std::vector<float> x(6 * 16 * 16), y(6);
    for (size_t i = 0; i < x.size(); ++i) x[i] = stream_uniform(11, i) - 0.5f;
    for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<float>(i % 10);
    const Tensor images = Tensor::from_host(x, Shape{6, 1, 16, 16}, device);
    const Tensor labels = Tensor::from_host(y, Shape{6}, device);
    GibbsOptions o;
    o.p = 0.7;
    o.schedule = GibbsSchedule{1e3, 1e3, 1};
    o.chain_energy = EnergyKind::cross_entropy;
    GibbsTraining single(*model, o, ctx);
    o.chains = 4;
    o.chain_beta_ratio = 1e3;  // chains 1..3 at β = 1, 1e-3, 1e-6: far from chain 0's draw
    GibbsTraining chains(*model, o, ctx);
    ctx.set_step(7);
    single.before_step(ctx, images, labels, 0);
    const std::vector<float> paper = single.mask().to_host();
    single.detach();
    chains.before_step(ctx, images, labels, 0);
    const std::vector<float> pop = chains.chain_population().to_host();
    const std::vector<float> energies = chains.chain_energies().to_host();
    const std::vector<float> picked = chains.mask().to_host();
    const size_t d = paper.size();
    REQUIRE(pop.size() == 4 * d);
    // Chain 0 is the paper's draw (the same stream); the others are other draws.
    CHECK(std::equal(paper.begin(), paper.end(), pop.begin()));
    for (size_t k = 1; k < 4; ++k) CHECK_FALSE(std::equal(paper.begin(), paper.end(), pop.begin() + k * d));
    // The energies are the population evaluator's (one by one as the reference), and the
    // training mask is the lowest-energy chain.
    MaskSpace space(*model, chains.final_space_options());
    REQUIRE(space.size() == static_cast<int64_t>(d));
    PopulationOptions po;
    po.check_members = false;
    po.energy = EnergyKind::cross_entropy;
    PopulationEvaluator reference(space, po);
    Tensor expected(Shape{4}, device);
    reference.evaluate_one_by_one(ctx, Tensor::from_host(pop, Shape{4, static_cast<int64_t>(d)}, device), images, labels, expected);
    const std::vector<float> e1 = expected.to_host();
    for (size_t k = 0; k < 4; ++k) CHECK(energies[k] == doctest::Approx(e1[k]).epsilon(1e-4));
    const size_t best = static_cast<size_t>(std::min_element(energies.begin(), energies.end()) - energies.begin());
    CHECK(std::equal(picked.begin(), picked.end(), pop.begin() + best * d));
    chains.detach();
    const nlohmann::json log = chains.epoch_log(ctx);
    CHECK(log["gibbs_chain_best_energy"].get<double>() == doctest::Approx(energies[best]));
    CHECK(log["gibbs_chain_best_energy"].get<double>() <= log["gibbs_chain_mean_energy"].get<double>());
}

}  // namespace

TEST_CASE("gibbs: several chains per step, scored together, train with the lowest-energy draw") {
    check_chains(Device::cpu);
    CHECK_THROWS_WITH_AS(parse_config("[prune]\nmethod = \"gibbs\"\n[prune.gibbs]\nchains = 0\n", "g.toml"),
                         doctest::Contains("key 'prune.gibbs.chains'"), Error);
}

TEST_CASE("gibbs: the draw applies the mask in the same pass; fused training is bitwise the unfused one") {
    // gibbs_draw's w ⊙ m equals multiply()'s, bit for bit (signed zeros included), for every
    // Hamiltonian, and the mask is the one drawn without it.
    Context ctx(Device::cpu, 1);
    for (GibbsHamiltonian h : {GibbsHamiltonian::unstructured, GibbsHamiltonian::kernel, GibbsHamiltonian::filter}) {
        CAPTURE(gibbs_hamiltonian_name(h));
        const GibbsLayerShape s{8, 6, 9};
        GibbsParams p;
        p.hamiltonian = h;
        p.p = 0.7;
        p.beta = 20.0f;
        p.sweeps = 2;
        const Tensor w = test::random_tensor(Shape{s.numel()}, Device::cpu, 31, -0.5f, 0.5f);
        Tensor plain(Shape{s.numel()}, Device::cpu), mask(Shape{s.numel()}, Device::cpu), masked(Shape{s.numel()}, Device::cpu);
        Tensor expected(Shape{s.numel()}, Device::cpu);
        gibbs_draw(ctx, w, s, p, random_stream_key(1, 2, 3), plain);
        gibbs_draw(ctx, w, s, p, random_stream_key(1, 2, 3), mask, &masked);
        multiply(ctx, w, mask, expected);
        CHECK(bitwise_equal(plain.to_host(), mask.to_host()));
        CHECK(bitwise_equal(masked.to_host(), expected.to_host()));
    }
    // A layer given w ⊙ m uses it: a supplied 2·w (not w ⊙ m) shows in the output.
    ParameterStore store;
    Linear fc(store, "fc", 6, 3);
    store.allocate(Device::cpu, 1);
    const Tensor x = test::random_tensor(Shape{2, 6}, Device::cpu, 33);
    const Tensor ones = Tensor::from_host(std::vector<float>(18, 1.0f), Shape{3, 6}, Device::cpu);
    Tensor doubled(Shape{3, 6}, Device::cpu);
    axpy(ctx, 2.0f, fc.weight(), doubled);
    const std::vector<float> plain_y = fc.forward(ctx, x).to_host();
    fc.set_weight_mask(&ones, &doubled);
    const std::vector<float> supplied_y = fc.forward(ctx, x).to_host();
    for (size_t i = 0; i < plain_y.size(); ++i) {
        const float bias = fc.bias().to_host()[i % 3];
        CHECK(supplied_y[i] - bias == doctest::Approx(2.0f * (plain_y[i] - bias)).epsilon(1e-5));
    }
    CHECK_THROWS_WITH_AS(fc.set_weight_mask(nullptr, &doubled), doctest::Contains("need one weight mask"), Error);
    // Training with the fused draw ends with bitwise the weights and logits of the unfused one
    // (the validation-time forward after the last update included: after_step drops the stale w ⊙ m).
    const auto fused = gibbs_training_steps(Device::cpu, true, 4);
    const auto unfused = gibbs_training_steps(Device::cpu, false, 4);
    CHECK(bitwise_equal(fused.first, unfused.first));
    CHECK(bitwise_equal(fused.second, unfused.second));
    CHECK_FALSE(bitwise_equal(fused.first, gibbs_training_steps(Device::cpu, true, 3).first));  // the check can tell
}

GPU_TEST_CASE("gibbs (cuda): several chains per step, scored together, train with the lowest-energy draw") {
    check_chains(Device::cuda);
}

GPU_TEST_CASE("gibbs: CUDA fused training is bitwise the unfused one") {
    const auto fused = gibbs_training_steps(Device::cuda, true, 4);
    const auto unfused = gibbs_training_steps(Device::cuda, false, 4);
    CHECK(bitwise_equal(fused.first, unfused.first));
    CHECK(bitwise_equal(fused.second, unfused.second));
}

GPU_TEST_CASE("gibbs: CUDA masks equal the CPU reference's for the same key") {
    struct Case {
        GibbsHamiltonian h;
        GibbsLayerShape s;
        float beta, coupling;
    };
    for (const Case& cs : {Case{GibbsHamiltonian::unstructured, {64, 32, 9}, 30.0f, 0.0f},
                           Case{GibbsHamiltonian::unstructured, {1000, 1, 1}, 1e30f, 0.0f},
                           Case{GibbsHamiltonian::unstructured, {7, 5, 3}, 50.0f, 0.0f},  // 105: a partial last block
                           Case{GibbsHamiltonian::kernel, {16, 8, 9}, 20.0f, 0.01f},
                           Case{GibbsHamiltonian::kernel, {8, 4, 1}, 5.0f, 0.01f},
                           Case{GibbsHamiltonian::filter, {8, 6, 9}, 0.05f, 1.0f},
                           Case{GibbsHamiltonian::filter, {4, 3, 4}, 0.5f, 0.2f}}) {
        CAPTURE(gibbs_hamiltonian_name(cs.h));
        CAPTURE(cs.s.filters);
        GibbsParams p;
        p.hamiltonian = cs.h;
        p.p = 0.7;
        p.beta = cs.beta;
        p.coupling = cs.coupling;
        p.sweeps = 3;
        const std::vector<float> w = test::random_values(cs.s.numel(), 77, -0.5f, 0.5f);
        std::vector<float> cpu_mask(w.size());
        const uint64_t key = random_stream_key(4, 5, 6);
        gibbs_draw_host(w.data(), cs.s, p, key, cpu_mask.data());
        Context ctx(Device::cuda, 1);
        Tensor wd = Tensor::from_host(w, Shape{cs.s.numel()}, Device::cuda);
        Tensor md(Shape{cs.s.numel()}, Device::cuda);
        Tensor masked(Shape{cs.s.numel()}, Device::cuda);
        gibbs_draw(ctx, wd, cs.s, p, key, md, &masked);
        const std::vector<float> gpu_mask = md.to_host();
        int64_t differ = 0;
        for (size_t i = 0; i < w.size(); ++i) differ += cpu_mask[i] != gpu_mask[i];
        CHECK(differ == 0);
        std::vector<float> cpu_masked(w.size());
        for (size_t i = 0; i < w.size(); ++i) cpu_masked[i] = w[i] * cpu_mask[i];
        CHECK(bitwise_equal(masked.to_host(), cpu_masked));
        if (cs.h != GibbsHamiltonian::unstructured) continue;
        // Views one float off 16-byte alignment take the scalar kernel instead of the float4 one.
        std::vector<float> shifted(w.size() + 1, 0.0f);
        std::copy(w.begin(), w.end(), shifted.begin() + 1);
        Tensor w_buffer = Tensor::from_host(shifted, Shape{cs.s.numel() + 1}, Device::cuda);
        Tensor m_buffer(Shape{cs.s.numel() + 1}, Device::cuda);
        Tensor w_view = Tensor::view(w_buffer.data() + 1, Shape{cs.s.numel()}, Device::cuda);
        Tensor m_view = Tensor::view(m_buffer.data() + 1, Shape{cs.s.numel()}, Device::cuda);
        gibbs_draw(ctx, w_view, cs.s, p, key, m_view);
        CHECK(bitwise_equal(m_view.to_host(), cpu_mask));
    }
}
