// Constrained RL pruning: GAE and the PPO-Lagrangian loss against hand-computed values, the
// dual's direction, a toy knapsack with a known optimum, the pruning environments on LeNet
// (budgets in params and MACs met, batched == one-by-one rewards), the [prune.rl] config keys,
// and CUDA vs CPU where a GPU is present.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "nn/models/model.h"
#include "pruning/accounting.h"
#include "pruning/baselines.h"
#include "pruning/constrained_rl.h"
#include "pruning/importance.h"
#include "pruning/ppo.h"
#include "tests/harness.h"
#include "train/config.h"

using namespace sp;

namespace {

struct LenetSetup {
    std::unique_ptr<Model> model;
    Tensor images, labels;  // (B, 1, 28, 28), (B)
};

LenetSetup lenet(Device device, int64_t batch) {
    LenetSetup s;
    s.model = make_model("lenet", 1, 28, 28, 10);
    s.model->allocate(device, 11);
    s.images = test::random_tensor(Shape{batch, 1, 28, 28}, device, 4321);
    std::vector<float> l(static_cast<size_t>(batch));
    for (int64_t i = 0; i < batch; ++i) l[static_cast<size_t>(i)] = static_cast<float>((i * 3 + 1) % 10);
    s.labels = Tensor::from_host(l, Shape{batch}, device);
    return s;
}

ConstrainedRlOptions small_search(RlEnvironmentKind env, RlCostKind cost, double budget) {
    ConstrainedRlOptions o;
    o.environment = env;
    o.cost = cost;
    o.budget = budget;
    o.episodes = 16;
    o.updates = 4;
    o.ppo.epochs = 2;
    o.ppo.seed = 5;
    return o;
}

}  // namespace

TEST_CASE("ppo: GAE against hand-computed values, and Monte Carlo returns at gamma = lambda = 1") {
    const std::vector<float> rewards = {0, 0, 1, 0, 2}, values = {0.5f, 0.6f, 0.7f, 0.1f, 0.2f};
    const std::vector<uint8_t> done = {0, 0, 1, 0, 1};
    std::vector<float> adv, ret;
    gae(rewards, values, done, 0.9, 0.8, adv, ret);
    // Episode 1: δ2 = 1 − 0.7 = 0.3; δ1 = 0.9·0.7 − 0.6 = 0.03; δ0 = 0.9·0.6 − 0.5 = 0.04;
    // A2 = 0.3, A1 = 0.03 + 0.72·0.3 = 0.246, A0 = 0.04 + 0.72·0.246 = 0.21712.
    // Episode 2: δ4 = 1.8, δ3 = 0.9·0.2 − 0.1 = 0.08; A4 = 1.8, A3 = 0.08 + 0.72·1.8 = 1.376.
    const std::vector<double> expected_adv = {0.21712, 0.246, 0.3, 1.376, 1.8};
    // A handful of float roundings of values of magnitude <= 2 (inputs, products, sums).
    test::check_within(adv, expected_adv, 16 * test::kUnitRoundoff * 2.0, "advantages");
    std::vector<double> expected_ret(5);
    for (size_t i = 0; i < 5; ++i) expected_ret[i] = expected_adv[i] + values[i];
    test::check_within(ret, expected_ret, 16 * test::kUnitRoundoff * 4.0, "returns");

    gae(rewards, values, done, 1.0, 1.0, adv, ret);
    test::check_within(ret, {1, 1, 1, 2, 2}, 16 * test::kUnitRoundoff * 4.0, "Monte Carlo returns");
    CHECK_THROWS_AS(gae(rewards, values, {0, 0, 1, 0, 0}, 0.9, 0.8, adv, ret), Error);
    CHECK_THROWS_AS(gae(rewards, {0.5f}, done, 0.9, 0.8, adv, ret), Error);
}

TEST_CASE("ppo: clipped policy loss with the Lagrange term against hand-computed values and finite differences") {
    const std::vector<double> ratio = {1.5, 0.5, 1.1, 0.7}, ar = {1, 1, -2, -1}, ac = {0.5, -1, 2, 0};
    const double nu = 0.5, clip = 0.2;
    const PolicyLoss pl = ppo_policy_loss(ratio, ar, ac, nu, clip);
    // min terms: 1.2 (clipped), 0.5, −2.2, −0.8 (clipped): sum −1.3; ρ·A_C sum: 0.75 − 0.5 + 2.2 + 0 = 2.45;
    // loss = (1.3 + 0.5·2.45) / (4·1.5) = 2.525 / 6.
    CHECK(pl.loss == doctest::Approx(2.525 / 6).epsilon(1e-14));
    const std::vector<double> grad = {0.375 / 6, -0.75 / 6, 3.3 / 6, 0.0};
    for (size_t i = 0; i < 4; ++i) CHECK(pl.dloss_dlogp[i] == doctest::Approx(grad[i]).epsilon(1e-14));
    // Central differences in log π (ρ·e^{±h}); no ratio sits on a clip boundary within ±h.
    const double h = 1e-6;
    for (size_t i = 0; i < 4; ++i) {
        std::vector<double> up = ratio, down = ratio;
        up[i] *= std::exp(h);
        down[i] *= std::exp(-h);
        const double numeric = (ppo_policy_loss(up, ar, ac, nu, clip).loss - ppo_policy_loss(down, ar, ac, nu, clip).loss) / (2 * h);
        // Truncation O(h²) and double rounding 1e-16 / h of terms of size ~1.
        CHECK(std::fabs(numeric - pl.dloss_dlogp[i]) <= 1e-8);
    }
    // ν = 0 and ratios of 1: the plain policy-gradient loss −mean(A_R).
    const PolicyLoss plain = ppo_policy_loss({1, 1}, {2, -1}, {5, 5}, 0.0, clip);
    CHECK(plain.loss == doctest::Approx(-0.5).epsilon(1e-15));
    CHECK_THROWS_AS(ppo_policy_loss({1}, {1, 2}, {1}, 0.5, clip), Error);
    CHECK_THROWS_AS(ppo_policy_loss({1}, {1}, {1}, -0.1, clip), Error);
}

TEST_CASE("ppo: the dual rises while the cost exceeds the budget and falls while under it") {
    PpoOptions o;
    o.dual_init = 0.3;
    o.dual_lr = 1.0;
    {
        PpoLagrangian over(1, 1, o);
        const double nu0 = over.nu();
        CHECK(nu0 == doctest::Approx(std::log1p(std::exp(0.3))).epsilon(1e-6));
        // Adam's first step has size lr (m̂/√v̂ = sign of the gradient, up to ε).
        double nu = over.update_dual(0.8, 0.5);
        CHECK(over.lambda_value() == doctest::Approx(1.3).epsilon(1e-6));
        for (int i = 0; i < 10; ++i) {
            const double next = over.update_dual(0.8 - 0.01 * i, 0.5);
            CHECK(next > nu);
            nu = next;
        }
        // Back under the budget: Adam's momentum carries on briefly, then ν falls for good.
        int rising = 0;
        double prev = nu;
        for (int i = 0; i < 60; ++i) {
            const double next = over.update_dual(0.2, 0.5);
            if (i >= 30) CHECK(next < prev);
            rising += next > prev;
            prev = next;
        }
        CHECK(rising < 30);
        CHECK(prev < nu0);
    }
    {
        PpoLagrangian under(1, 1, o);
        double nu = under.nu();
        for (int i = 0; i < 10; ++i) {
            const double next = under.update_dual(0.2, 0.5);
            CHECK(next < nu);
            nu = next;
        }
        CHECK(under.lambda_value() < 0.3 - 5.0);
    }
    {
        PpoLagrangian at(1, 1, o);
        at.update_dual(0.5, 0.5);  // zero gradient: λ stays
        CHECK(at.lambda_value() == doctest::Approx(0.3).epsilon(1e-7));
    }
}

TEST_CASE("ppo: a toy constrained bandit with a known optimum is solved within tolerance") {
    // One-step episodes, a constant state, a 2-D action u: reward −(u1 − 2)² − (u2 − 2)², cost
    // u1 + 2·u2, budget 3 (expected cost). For a Gaussian policy with means μ, E[cost] = μ1 + 2μ2
    // and E[reward] = −(μ1 − 2)² − (μ2 − 2)² − σ1² − σ2²; the KKT conditions 2(2 − μ1) = ν,
    // 2(2 − μ2) = 2ν with μ1 + 2μ2 = 3 give ν* = 1.2, μ* = (1.4, 0.8).
    PpoOptions o;
    o.lr = 1e-3;
    o.dual_lr = 0.05;
    o.epochs = 10;
    o.minibatch = 64;
    o.seed = 3;
    const int64_t n = 256, updates = 150;
    const double budget = 3.0;
    PpoLagrangian ppo(1, 2, o);
    std::vector<float> states(static_cast<size_t>(n), 1.0f), actions, logp;
    const std::vector<int64_t> dims(static_cast<size_t>(n), 2);
    double tail_reward = 0, tail_cost = 0, tail_nu = 0;
    const int64_t tail = 20;
    for (int64_t u = 0; u < updates; ++u) {
        ppo.act(states, dims, random_stream_key(3, 77, static_cast<uint64_t>(u)), actions, logp);
        Rollout ro;
        ro.state_dim = 1;
        ro.action_dim = 2;
        ro.states = states;
        ro.actions = actions;
        ro.dims = dims;
        ro.log_probs = logp;
        ro.done.assign(static_cast<size_t>(n), 1);
        double mean_cost = 0, mean_reward = 0;
        for (int64_t e = 0; e < n; ++e) {
            const double u1 = actions[static_cast<size_t>(2 * e)], u2 = actions[static_cast<size_t>(2 * e + 1)];
            const double r = -(u1 - 2) * (u1 - 2) - (u2 - 2) * (u2 - 2), c = u1 + 2 * u2;
            ro.rewards.push_back(static_cast<float>(r));
            ro.costs.push_back(static_cast<float>(c));
            mean_reward += r / n;
            mean_cost += c / n;
        }
        const double nu = ppo.update_dual(mean_cost, budget);
        if (u >= updates - tail) {
            tail_reward += mean_reward / tail;
            tail_cost += mean_cost / tail;
            tail_nu += nu / tail;
        }
        ppo.update(ro, random_stream_key(3, 78, static_cast<uint64_t>(u)));
    }
    const std::vector<float> mean = ppo.mean_actions({1.0f});
    MESSAGE("bandit: mu (" << mean[0] << ", " << mean[1] << "), tail reward " << tail_reward << ", cost " << tail_cost
                           << ", nu " << tail_nu);
    // Tolerances: the sampling error of one update's mean cost is σ_c/√256 ≈ 0.05 (σ_c ≈ 0.8 at
    // the final σ ≈ 0.35), and the primal–dual iteration still oscillates around the saddle by a
    // few percent (seen as ±0.1 in cost over the last updates).
    CHECK(tail_cost <= budget + 0.1);
    CHECK(std::fabs(mean[0] - 1.4) <= 0.1);
    CHECK(std::fabs(mean[1] - 0.8) <= 0.1);
    CHECK(std::fabs(tail_nu - 1.2) <= 0.15);
}

namespace {

// A bound on |reward difference| between two evaluations of the same masks whose float sums run
// in different orders (batched vs one-by-one, CUDA vs CPU), for the −cross-entropy reward: each
// logit is within gamma(L)·M of the exact one, L = Σ reduction lengths + 10 per layer, M the
// largest logit of the magnitude network (|weights|, |biases|, |BN affine|, −|running mean|,
// |images|), which bounds Σ|terms| at every layer; two passes differ by δ = 2·gamma(L)·M per
// logit, the log-sum-exp and the label's logit each move by at most δ, plus the mean's rounding.
double cross_entropy_bound(Model& model, const Tensor& images, double reward_magnitude) {
    int64_t length = 0;
    for (const LayerWiring& w : model.wiring()) {
        length += 10 + (w.conv ? w.conv->in_channels() / w.conv->groups() * w.conv->kernel() * w.conv->kernel()
                               : w.linear->in_features());
    }
    ParameterStore& store = model.parameters();
    const std::vector<float> values = store.values().to_host(), states = store.states().to_host();
    std::vector<float> abs_values(values.size()), abs_states = states;
    for (size_t i = 0; i < values.size(); ++i) abs_values[i] = std::fabs(values[i]);
    for (const ParameterInfo& e : store.state_entries())
        if (e.name.find("running_mean") != std::string::npos)
            for (int64_t i = 0; i < e.shape.numel(); ++i)
                abs_states[static_cast<size_t>(e.offset + i)] = -std::fabs(states[static_cast<size_t>(e.offset + i)]);
    store.values().copy_from(Tensor::from_host(abs_values, store.values().shape(), Device::cpu));
    if (store.state_count() > 0) store.states().copy_from(Tensor::from_host(abs_states, store.states().shape(), Device::cpu));
    std::vector<float> img = images.to_host();
    for (float& v : img) v = std::fabs(v);
    Context ctx(model.parameters().device());
    const bool was_training = model.training();
    model.set_training(false);
    const std::vector<float> logits =
        model.forward(ctx, Tensor::from_host(img, images.shape(), model.parameters().device())).to_host();
    model.set_training(was_training);
    store.values().copy_from(Tensor::from_host(values, store.values().shape(), Device::cpu));
    if (store.state_count() > 0) store.states().copy_from(Tensor::from_host(states, store.states().shape(), Device::cpu));
    double m = 0;
    for (float v : logits) m = std::max(m, static_cast<double>(std::fabs(v)));
    const double delta = 2 * test::gamma(length) * m;
    return 2 * delta + 4 * test::kUnitRoundoff * (reward_magnitude + 1);
}

// `count` episodes of random actions (N(0, 1.5) per component) turned into states.
std::vector<float> random_episodes(const PruningEnvironment& env, int64_t count, uint64_t seed) {
    const int64_t l = env.steps(), a = env.action_dim();
    std::vector<float> u = test::random_values(count * l * a, seed, -3.0f, 3.0f), states;
    for (int64_t e = 0; e < count; ++e) {
        const std::vector<float> s = env.episode_state(u.data() + e * l * a);
        states.insert(states.end(), s.begin(), s.end());
    }
    return states;
}

}  // namespace

TEST_CASE("constrained-rl: actions to masks (layer-wise rates, filter-wise keep values) and observations") {
    LenetSetup net = lenet(Device::cpu, 8);
    Context ctx(Device::cpu);
    MaskSpace space(*net.model, MaskSpaceOptions{});
    const std::vector<float> scores = importance_scores(l1_importance, ScoreInput{ctx, space}, "l1");
    {
        ConstrainedRlOptions o = small_search(RlEnvironmentKind::layer, RlCostKind::params, 0.5);
        PruningEnvironment env(ctx, space, o, net.images, net.labels);
        REQUIRE(env.steps() == static_cast<int64_t>(space.segments().size()));
        CHECK(env.action_dim() == 1);
        std::vector<float> u(static_cast<size_t>(env.steps()));
        std::vector<double> rates;
        for (int64_t s = 0; s < env.steps(); ++s) {
            u[static_cast<size_t>(s)] = -1.0f + static_cast<float>(s);
            rates.push_back(o.max_prune / (1 + std::exp(1.0 - s)));
            CHECK(env.pruned_fraction(s, &u[static_cast<size_t>(s)]) == doctest::Approx(rates.back()).epsilon(1e-12));
        }
        CHECK(env.episode_state(u.data()) == select_by_rates(space, scores, rates));
        std::vector<float> obs(PruningEnvironment::kStateDim);
        env.observe(0, 0.0, obs.data());
        CHECK(obs[0] == 0.0f);
        CHECK(obs[7] == 0.0f);
        env.observe(1, 0.6, obs.data());
        CHECK(obs[7] == doctest::Approx(0.6));
        for (float v : obs) CHECK((v >= 0.0f && v <= 1.0f));
    }
    {
        ConstrainedRlOptions o = small_search(RlEnvironmentKind::filter, RlCostKind::params, 0.5);
        PruningEnvironment env(ctx, space, o, net.images, net.labels);
        int64_t widest = 0;
        for (const MaskSegment& seg : space.segments()) widest = std::max(widest, seg.size);
        REQUIRE(env.action_dim() == widest);
        // Keep the even filters of every set.
        std::vector<float> u(static_cast<size_t>(env.steps() * widest));
        for (int64_t s = 0; s < env.steps(); ++s)
            for (int64_t j = 0; j < widest; ++j) u[static_cast<size_t>(s * widest + j)] = j % 2 == 0 ? 0.5f : -0.5f;
        const std::vector<float> state = env.episode_state(u.data());
        for (int64_t s = 0; s < env.steps(); ++s) {
            const MaskSegment& seg = space.segments()[static_cast<size_t>(s)];
            CHECK(env.action_dims(s) == seg.size);
            CHECK(env.pruned_fraction(s, u.data() + s * widest) == doctest::Approx(static_cast<double>(seg.size / 2) / seg.size));
            for (int64_t j = 0; j < seg.size; ++j)
                CHECK(state[static_cast<size_t>(seg.offset + j)] == (j % 2 == 0 ? 1.0f : 0.0f));
        }
        // All negative: every set keeps its highest-magnitude filter (repair).
        std::fill(u.begin(), u.end(), -1.0f);
        const std::vector<float> none = env.episode_state(u.data());
        for (const MaskSegment& seg : space.segments()) {
            const auto first = none.begin() + seg.offset;
            CHECK(std::count(first, first + seg.size, 1.0f) == seg.min_kept);
        }
    }
    ConstrainedRlOptions bad = small_search(RlEnvironmentKind::filter, RlCostKind::params, 0.5);
    MaskSpaceOptions wo;
    wo.granularity = Granularity::weight;
    MaskSpace weights(*net.model, wo);
    CHECK_THROWS_AS(PruningEnvironment(ctx, weights, bad, net.images, net.labels), Error);
    bad.environment = RlEnvironmentKind::layer;
    bad.budget = 0.0;
    CHECK_THROWS_AS(PruningEnvironment(ctx, space, bad, net.images, net.labels), Error);
    CHECK_THROWS_AS(rl_cost_from_name("flops"), Error);
    CHECK(rl_cost_from_name("macs") == RlCostKind::macs);
}

TEST_CASE("constrained-rl: batched and one-by-one episode rewards agree") {
    LenetSetup net = lenet(Device::cpu, 32);
    Context ctx(Device::cpu);
    MaskSpace space(*net.model, MaskSpaceOptions{});
    for (RlRewardKind kind : {RlRewardKind::cross_entropy, RlRewardKind::accuracy}) {
        ConstrainedRlOptions o = small_search(RlEnvironmentKind::layer, RlCostKind::params, 0.5);
        o.reward = kind;
        PruningEnvironment env(ctx, space, o, net.images, net.labels);
        const int64_t p = 9;
        const std::vector<float> states = random_episodes(env, p, 17);
        const std::vector<double> batched = env.rewards(states, p, true), single = env.rewards(states, p, false);
        REQUIRE(batched.size() == static_cast<size_t>(p));
        if (kind == RlRewardKind::cross_entropy) {
            double magnitude = 0;
            for (double r : single) magnitude = std::max(magnitude, std::fabs(r));
            const double bound = cross_entropy_bound(*net.model, net.images, magnitude);
            for (int64_t i = 0; i < p; ++i) CHECK(std::fabs(batched[static_cast<size_t>(i)] - single[static_cast<size_t>(i)]) <= bound);
            // Different masks, different rewards: the comparison is not between constants.
            CHECK(*std::max_element(single.begin(), single.end()) > *std::min_element(single.begin(), single.end()));
        } else {
            // Accuracy flips only for an image whose margin is within the bound; these random
            // images have no such ties, so the counts agree exactly.
            for (int64_t i = 0; i < p; ++i) CHECK(batched[static_cast<size_t>(i)] == single[static_cast<size_t>(i)]);
        }
    }
}

TEST_CASE("constrained-rl: the search's final masks meet params and MACs budgets on lenet") {
    LenetSetup net = lenet(Device::cpu, 64);
    Context ctx(Device::cpu);
    MaskSpace space(*net.model, MaskSpaceOptions{});
    struct Case {
        RlEnvironmentKind env;
        RlCostKind cost;
        double budget;
    };
    for (const Case& c : {Case{RlEnvironmentKind::layer, RlCostKind::params, 0.3}, Case{RlEnvironmentKind::layer, RlCostKind::macs, 0.3},
                          Case{RlEnvironmentKind::filter, RlCostKind::params, 0.5}}) {
        CAPTURE(static_cast<int>(c.env));
        CAPTURE(static_cast<int>(c.cost));
        ConstrainedRlOptions o = small_search(c.env, c.cost, c.budget);
        PruningEnvironment env(ctx, space, o, net.images, net.labels);
        std::vector<nlohmann::json> log;
        const RlSearchResult r = constrained_rl_search(env, [&](const nlohmann::json& rec) { log.push_back(rec); });
        REQUIRE(log.size() == static_cast<size_t>(o.updates));
        for (const char* key : {"mean_reward", "mean_cost", "budget", "nu", "entropy", "kl", "best_feasible", "episodes_per_s"})
            CHECK(log.back().contains(key));
        CHECK(r.episodes == o.updates * (o.episodes + 1));
        REQUIRE(r.feasible);
        const ModelAccount acc = account(space, r.state);
        const double kept = c.cost == RlCostKind::params ? acc.params_kept() : acc.macs_kept();
        CHECK(kept <= c.budget);
        CHECK(kept == doctest::Approx(r.cost).epsilon(1e-12));
        CHECK(log.back()["best_feasible"]["cost"].get<double>() == r.cost);
        // The best feasible episode's reward is the one evaluated for it.
        const std::vector<double> again = env.rewards(r.state, 1, true);
        CHECK(again[0] == r.reward);
    }
}

TEST_CASE("constrained-rl: the same seed gives the same search") {
    LenetSetup net = lenet(Device::cpu, 16);
    Context ctx(Device::cpu);
    MaskSpace space(*net.model, MaskSpaceOptions{});
    ConstrainedRlOptions o = small_search(RlEnvironmentKind::layer, RlCostKind::params, 0.5);
    o.updates = 2;
    o.episodes = 6;
    PruningEnvironment env(ctx, space, o, net.images, net.labels);
    const RlSearchResult a = constrained_rl_search(env), b = constrained_rl_search(env);
    CHECK(a.state == b.state);
    CHECK(a.reward == b.reward);
}

TEST_CASE("constrained-rl: [prune.rl] config keys, defaults, round trip and errors") {
    const std::string text = R"(
[prune]
method = "constrained-rl"
keep = 0.3
[prune.rl]
environment = "filter"
cost = "latency"
episodes = 12
updates = 5
dual_lr = 0.5
clip = 0.1
)";
    const ExperimentConfig c = parse_config(text, "rl.toml");
    CHECK(c.prune.rl.environment == RlEnvironmentKind::filter);
    CHECK(c.prune.rl.cost == RlCostKind::latency);
    CHECK(c.prune.rl.episodes == 12);
    CHECK(c.prune.rl.updates == 5);
    CHECK(c.prune.rl.ppo.dual_lr == 0.5);
    CHECK(c.prune.rl.ppo.clip == 0.1);
    CHECK(c.prune.rl.ppo.gamma == 0.99);  // default
    const ExperimentConfig back = parse_config(to_toml(c), "resolved.toml");
    CHECK(back.prune.rl.environment == RlEnvironmentKind::filter);
    CHECK(back.prune.rl.episodes == 12);
    CHECK(back.prune.rl.ppo.clip == 0.1);
    auto error_of = [&](const std::string& extra) {
        try {
            parse_config(text + extra, "rl.toml");
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(error_of("lambda_cost = 1.5\n").find("prune.rl.lambda_cost") != std::string::npos);
    CHECK(error_of("horizon = 3\n").find("unknown key 'prune.rl.horizon'") != std::string::npos);
    CHECK(error_of("reward = \"loss\"\n").find("prune.rl.reward") != std::string::npos);
    CHECK(error_of("hidden = 0\n").find("prune.rl.hidden") != std::string::npos);
}

GPU_TEST_CASE("constrained-rl: CUDA rewards == CPU rewards within the derived bound; a CUDA search meets the budget") {
    LenetSetup cpu = lenet(Device::cpu, 32), gpu = lenet(Device::cuda, 32);
    Context cpu_ctx(Device::cpu), gpu_ctx(Device::cuda);
    MaskSpace cpu_space(*cpu.model, MaskSpaceOptions{}), gpu_space(*gpu.model, MaskSpaceOptions{});
    ConstrainedRlOptions o = small_search(RlEnvironmentKind::layer, RlCostKind::params, 0.3);
    o.reward = RlRewardKind::cross_entropy;
    PruningEnvironment cpu_env(cpu_ctx, cpu_space, o, cpu.images, cpu.labels);
    PruningEnvironment gpu_env(gpu_ctx, gpu_space, o, gpu.images, gpu.labels);
    const int64_t p = 9;
    const std::vector<float> states = random_episodes(cpu_env, p, 23);
    CHECK(random_episodes(gpu_env, p, 23) == states);  // the same magnitudes on both devices
    const std::vector<double> c = cpu_env.rewards(states, p, false), g = gpu_env.rewards(states, p, true);
    double magnitude = 0;
    for (double r : c) magnitude = std::max(magnitude, std::fabs(r));
    const double bound = cross_entropy_bound(*cpu.model, cpu.images, magnitude);
    for (int64_t i = 0; i < p; ++i) CHECK(std::fabs(c[static_cast<size_t>(i)] - g[static_cast<size_t>(i)]) <= bound);

    const RlSearchResult r = constrained_rl_search(gpu_env);
    REQUIRE(r.feasible);
    CHECK(account(gpu_space, r.state).params_kept() <= 0.3);
}
