// The pruning environments and the PPO-Lagrangian search loop (see constrained_rl.h).
#include "pruning/constrained_rl.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/error.h"
#include "pruning/accounting.h"
#include "pruning/baselines.h"
#include "pruning/importance.h"
#include "pruning/latency.h"
#include "pruning/surgery.h"

namespace sp {

namespace {

constexpr uint64_t kPurposeRlActions = 0x726c'6163'7469'6f6eull;  // "rlaction"
constexpr uint64_t kPurposeRlUpdate = 0x726c'7570'6461'7465ull;   // "rlupdate"

using SearchClock = std::chrono::steady_clock;
double seconds_since(SearchClock::time_point t) {
    return std::chrono::duration<double>(SearchClock::now() - t).count();
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

RlCostKind rl_cost_from_name(const std::string& name) {
    if (name == "params") return RlCostKind::params;
    if (name == "macs") return RlCostKind::macs;
    if (name == "latency") return RlCostKind::latency;
    fail("constrained-rl: unknown cost '" + name + "' (params, macs, latency)", __FILE__, __LINE__);
}

const SettingTable<ConstrainedRlOptions>& constrained_rl_settings() {
    using O = ConstrainedRlOptions;
    auto ppo = [](auto member) {  // a PpoOptions field of o.ppo
        return [member](O& o) -> auto& { return o.ppo.*member; };
    };
    static const SettingTable<O> table =
        SettingTable<O>()
            .choice("environment", &O::environment,
                    std::vector<std::pair<const char*, RlEnvironmentKind>>{{"layer", RlEnvironmentKind::layer},
                                                                           {"filter", RlEnvironmentKind::filter}},
                    "layer: one step per prunable layer (action: the fraction to prune); filter: per-filter keep values")
            .custom_choice(
                "cost", {"budget", "latency"},
                [](const O& o) { return std::string(o.cost == RlCostKind::latency ? "latency" : "budget"); },
                [](O& o, const std::string& v) { o.cost = v == "latency" ? RlCostKind::latency : RlCostKind::params; },
                "budget: the kept fraction of prune.budget (params or MACs); latency: of the measured latency (filter granularity)")
            .choice("reward", &O::reward,
                    std::vector<std::pair<const char*, RlRewardKind>>{{"accuracy", RlRewardKind::accuracy},
                                                                      {"margin", RlRewardKind::margin},
                                                                      {"cross-entropy", RlRewardKind::cross_entropy}},
                    "accuracy, or minus the margin / cross-entropy energy, on the held-out images")
            .integer("eval_images", &O::eval_images, 1, 1000000, "validation images every episode is scored on")
            .integer("episodes", &O::episodes, 1, 65536, "parallel episodes per update (one population)")
            .integer("updates", &O::updates, 1, 1000000, "PPO updates (rollouts)")
            .boolean("batched", &O::batched, "evaluate an update's episodes as one population (else one by one)")
            .integer("max_images_per_pass", &O::max_images_per_pass, 0, INT64_MAX,
                     "largest batch of one population forward (0: no limit)")
            .number("max_prune", &O::max_prune, 0.0, 0.999, "layer: the largest fraction of a layer an action prunes")
            .integer("latency_batch", &O::latency_batch, 1, 1 << 16, "cost = latency: images per timed forward")
            .integer("hidden", ppo(&PpoOptions::hidden), 1, 4096, "width of the two hidden layers of the actor and critics")
            .number("lr", ppo(&PpoOptions::lr), 0.0, 10.0, "Adam learning rate of the actor and critics")
            .integer("epochs", ppo(&PpoOptions::epochs), 1, 1000, "PPO epochs per update")
            .integer("minibatch", ppo(&PpoOptions::minibatch), 1, 1 << 20, "samples (steps) per minibatch")
            .number("clip", ppo(&PpoOptions::clip), 1e-6, 1.0, "PPO ratio clip epsilon")
            .number("grad_clip", ppo(&PpoOptions::grad_clip), 0.0, 1e6, "global gradient-norm clip per network (0: none)")
            .number("gamma", ppo(&PpoOptions::gamma), 0.0, 1.0, "discount")
            .number("lambda_reward", ppo(&PpoOptions::lambda_reward), 0.0, 1.0, "GAE lambda of the reward advantage")
            .number("lambda_cost", ppo(&PpoOptions::lambda_cost), 0.0, 1.0, "GAE lambda of the cost advantage")
            .number("dual_lr", ppo(&PpoOptions::dual_lr), 0.0, 1e3, "Adam learning rate of lambda (nu = softplus(lambda))")
            .number("dual_init", ppo(&PpoOptions::dual_init), -100.0, 100.0, "initial lambda")
            .number("init_log_std", ppo(&PpoOptions::init_log_std), -10.0, 2.0, "initial log sigma of the Gaussian policy")
            .number("entropy_coef", ppo(&PpoOptions::entropy_coef), 0.0, 10.0, "entropy bonus in the policy loss");
    return table;
}

std::vector<float> rl_unit_scores(Context& ctx, MaskSpace& space) {
    const Importance& magnitude = space.granularity() == Granularity::filter ? l1_importance : magnitude_importance;
    return importance_scores(magnitude, ScoreInput{ctx, space}, "constrained-rl");
}

namespace {

PopulationOptions population_options(const ConstrainedRlOptions& o) {
    PopulationOptions p;
    p.energy = o.reward == RlRewardKind::accuracy ? EnergyKind::error
               : o.reward == RlRewardKind::margin ? EnergyKind::margin
                                                  : EnergyKind::cross_entropy;
    p.max_images_per_pass = o.max_images_per_pass;
    return p;
}

}  // namespace

PruningEnvironment::PruningEnvironment(Context& ctx, MaskSpace& space, const ConstrainedRlOptions& options,
                                       const Tensor& images, const Tensor& labels)
    : ctx_(ctx),
      space_(space),
      options_(options),
      images_(images),
      labels_(labels),
      evaluator_(space, population_options(options)) {
    const Granularity g = space.granularity();
    SP_REQUIRE(g != Granularity::kernel, "constrained-rl: granularity 'kernel' is not supported (filter or weight)");
    SP_REQUIRE(options.environment == RlEnvironmentKind::layer || g == Granularity::filter,
               "constrained-rl: the filter-wise environment needs granularity 'filter', got " << granularity_name(g));
    SP_REQUIRE(options.cost != RlCostKind::latency || g == Granularity::filter,
               "constrained-rl: a latency cost needs granularity 'filter' (unstructured masks do not change latency)");
    SP_REQUIRE(options.budget > 0.0 && options.budget <= 1.0, "constrained-rl: budget " << options.budget
                                                                                        << " is not a kept fraction in (0, 1]");
    constrained_rl_settings().check(options, "constrained-rl");
    SP_REQUIRE(!space.segments().empty(), "constrained-rl: the mask space has no prunable units");
    SP_REQUIRE(images.rank() == 4 && labels.rank() == 1 && images.shape()[0] == labels.shape()[0],
               "constrained-rl: images " << images.shape().str() << " and labels " << labels.shape().str());
    scores_ = rl_unit_scores(ctx, space);

    // Per-step layer descriptors, each normalised by its largest value over the steps.
    const Model& model = space.model();
    for (const MaskSegment& seg : space.segments()) {
        const LayerWiring* writer = nullptr;
        if (g == Granularity::filter) {
            for (const LayerWiring& w : model.wiring())
                if (w.out_set == seg.set) {
                    writer = &w;
                    break;
                }
        } else {
            writer = &model.wiring()[static_cast<size_t>(seg.layer)];
        }
        SP_REQUIRE(writer, "constrained-rl: no layer writes " << seg.name);
        std::array<float, 6> f{};
        if (writer->conv) {
            f = {static_cast<float>(writer->conv->in_channels()), static_cast<float>(writer->conv->out_channels()),
                 static_cast<float>(writer->conv->kernel()), static_cast<float>(writer->conv->stride()),
                 static_cast<float>(writer->conv->padding()), 0.0f};
        } else {
            f = {static_cast<float>(writer->linear->in_features()), static_cast<float>(writer->linear->out_features()),
                 1.0f, 1.0f, 0.0f, 0.0f};
        }
        f[5] = static_cast<float>(seg.size) / static_cast<float>(space.size());
        layer_.push_back(f);
    }
    for (size_t k = 0; k < 5; ++k) {
        float top = 0.0f;
        for (const auto& f : layer_) top = std::max(top, f[k]);
        for (auto& f : layer_) f[k] = top > 0.0f ? f[k] / top : 0.0f;
    }
    if (options.cost == RlCostKind::latency) {
        space.detach();
        dense_latency_ms_ = measure_latency_ms(ctx, space.model(), options.latency_batch);
    }
}

int64_t PruningEnvironment::action_dim() const {
    if (options_.environment == RlEnvironmentKind::layer) return 1;
    int64_t widest = 1;
    for (const MaskSegment& seg : space_.segments()) widest = std::max(widest, seg.size);
    return widest;
}

int64_t PruningEnvironment::action_dims(int64_t step) const {
    return options_.environment == RlEnvironmentKind::layer ? 1 : space_.segments().at(static_cast<size_t>(step)).size;
}

void PruningEnvironment::observe(int64_t step, double pruned_sum, float* out) const {
    const auto& f = layer_.at(static_cast<size_t>(step));
    const auto l = static_cast<double>(steps());
    out[0] = static_cast<float>(step / l);
    for (size_t k = 0; k < 6; ++k) out[1 + k] = f[k];
    out[7] = static_cast<float>(step > 0 ? pruned_sum / static_cast<double>(step) : 0.0);
}

double PruningEnvironment::pruned_fraction(int64_t step, const float* action) const {
    if (options_.environment == RlEnvironmentKind::layer) return options_.max_prune * sigmoid(action[0]);
    const int64_t n = action_dims(step);
    int64_t pruned = 0;
    for (int64_t j = 0; j < n; ++j) pruned += action[j] > 0.0f ? 0 : 1;
    return static_cast<double>(pruned) / static_cast<double>(n);
}

std::vector<float> PruningEnvironment::episode_state(const float* actions) const {
    const int64_t a = action_dim();
    if (options_.environment == RlEnvironmentKind::layer) {
        std::vector<double> rates(static_cast<size_t>(steps()));
        for (int64_t s = 0; s < steps(); ++s) rates[static_cast<size_t>(s)] = pruned_fraction(s, actions + s * a);
        return select_by_rates(space_, scores_, rates);
    }
    std::vector<float> state(static_cast<size_t>(space_.size()), 0.0f);
    for (int64_t s = 0; s < steps(); ++s) {
        const MaskSegment& seg = space_.segments()[static_cast<size_t>(s)];
        for (int64_t j = 0; j < seg.size; ++j)
            state[static_cast<size_t>(seg.offset + j)] = actions[s * a + j] > 0.0f ? 1.0f : 0.0f;
    }
    space_.repair(state, &scores_);
    return state;
}

double PruningEnvironment::cost(const std::vector<float>& state) {
    if (options_.cost != RlCostKind::latency)
        return kept_fraction(account(space_, state), options_.cost == RlCostKind::params ? BudgetKind::params : BudgetKind::macs);
    space_.detach();
    std::unique_ptr<Model> compact = compact_model(space_.model(), space_.kept_channels(state));
    return measure_latency_ms(ctx_, *compact, options_.latency_batch) / dense_latency_ms_;
}

std::vector<double> PruningEnvironment::rewards(const std::vector<float>& states, int64_t members, bool batched) {
    const int64_t d = space_.size();
    SP_REQUIRE(members >= 1 && static_cast<int64_t>(states.size()) == members * d,
               "constrained-rl: " << states.size() << " mask values for " << members << " members of " << d << " units");
    Tensor population = Tensor::from_host(states, Shape{members, d}, ctx_.device());
    Tensor energies = Tensor::from_host(std::vector<float>(static_cast<size_t>(members)), Shape{members}, ctx_.device());
    if (batched)
        evaluator_.evaluate(ctx_, population, images_, labels_, energies);
    else
        evaluator_.evaluate_one_by_one(ctx_, population, images_, labels_, energies);
    const std::vector<float> e = energies.to_host();
    std::vector<double> r(e.size());
    // error = 1 − accuracy; the other energies are "lower is better", so the reward is −energy.
    for (size_t i = 0; i < e.size(); ++i) r[i] = options_.reward == RlRewardKind::accuracy ? 1.0 - e[i] : -static_cast<double>(e[i]);
    return r;
}

RlSearchResult constrained_rl_search(PruningEnvironment& env, const std::function<void(const nlohmann::json&)>& on_update) {
    const ConstrainedRlOptions& o = env.options();
    const int64_t l = env.steps(), a = env.action_dim(), s = PruningEnvironment::kStateDim, n = o.episodes;
    const int64_t d = env.space().size();
    PpoLagrangian ppo(s, a, o.ppo);
    RlSearchResult best;
    best.reward = -std::numeric_limits<double>::infinity();
    best.cost = std::numeric_limits<double>::infinity();
    std::vector<float> cheapest;
    double cheapest_cost = std::numeric_limits<double>::infinity(), cheapest_reward = 0.0;
    const auto search_start = SearchClock::now();

    std::vector<int64_t> dims(static_cast<size_t>(n + 1));
    for (int64_t update = 0; update < o.updates; ++update) {
        const auto update_start = SearchClock::now();
        Rollout ro;
        ro.state_dim = s;
        ro.action_dim = a;
        ro.states.assign(static_cast<size_t>(n * l * s), 0.0f);
        ro.actions.assign(static_cast<size_t>(n * l * a), 0.0f);
        ro.log_probs.assign(static_cast<size_t>(n * l), 0.0f);
        ro.dims.assign(static_cast<size_t>(n * l), 0);
        ro.rewards.assign(static_cast<size_t>(n * l), 0.0f);
        ro.costs.assign(static_cast<size_t>(n * l), 0.0f);
        ro.done.assign(static_cast<size_t>(n * l), 0);
        // Episodes 0..n−1 sample; episode n follows the policy's means (the deterministic policy).
        std::vector<double> pruned_sum(static_cast<size_t>(n + 1), 0.0);
        std::vector<float> episode_actions(static_cast<size_t>((n + 1) * l * a), 0.0f);
        std::vector<float> obs(static_cast<size_t>((n + 1) * s)), actions, log_probs;
        for (int64_t t = 0; t < l; ++t) {
            for (int64_t e = 0; e <= n; ++e) env.observe(t, pruned_sum[static_cast<size_t>(e)], obs.data() + e * s);
            std::fill(dims.begin(), dims.end(), env.action_dims(t));
            ppo.act(obs, dims, random_stream_key(o.ppo.seed, kPurposeRlActions, static_cast<uint64_t>(update * l + t)),
                    actions, log_probs);
            const std::vector<float> means = ppo.mean_actions(std::vector<float>(obs.end() - s, obs.end()));
            std::copy(means.begin(), means.end(), actions.end() - a);
            for (int64_t e = 0; e <= n; ++e) {
                const float* act = actions.data() + e * a;
                std::copy_n(act, a, episode_actions.begin() + (e * l + t) * a);
                pruned_sum[static_cast<size_t>(e)] += env.pruned_fraction(t, act);
                if (e == n) continue;
                const auto k = static_cast<size_t>(e * l + t);
                std::copy_n(obs.begin() + e * s, s, ro.states.begin() + static_cast<std::ptrdiff_t>(k) * s);
                std::copy_n(act, a, ro.actions.begin() + static_cast<std::ptrdiff_t>(k) * a);
                ro.log_probs[k] = log_probs[static_cast<size_t>(e)];
                ro.dims[k] = env.action_dims(t);
            }
        }
        // One population: every episode's mask, scored together.
        std::vector<float> population(static_cast<size_t>((n + 1) * d));
        std::vector<double> costs(static_cast<size_t>(n + 1));
        for (int64_t e = 0; e <= n; ++e) {
            std::vector<float> state = env.episode_state(episode_actions.data() + e * l * a);
            costs[static_cast<size_t>(e)] = env.cost(state);
            std::copy(state.begin(), state.end(), population.begin() + e * d);
        }
        const auto eval_start = SearchClock::now();
        const std::vector<double> rewards = env.rewards(population, n + 1, o.batched);
        const double eval_s = seconds_since(eval_start);
        best.evaluation_s += eval_s;
        best.episodes += n + 1;

        double mean_reward = 0.0, mean_cost = 0.0;
        int64_t feasible = 0;
        for (int64_t e = 0; e <= n; ++e) {
            const double r = rewards[static_cast<size_t>(e)], c = costs[static_cast<size_t>(e)];
            if (e < n) {
                mean_reward += r / static_cast<double>(n);
                mean_cost += c / static_cast<double>(n);
                const auto last = static_cast<size_t>(e * l + l - 1);
                ro.rewards[last] = static_cast<float>(r);
                ro.costs[last] = static_cast<float>(c);
                ro.done[last] = 1;
            }
            const auto first = population.begin() + e * d;
            if (c <= o.budget) {
                ++feasible;
                if (r > best.reward) {
                    best.reward = r;
                    best.cost = c;
                    best.feasible = true;
                    best.state.assign(first, first + d);
                }
            }
            if (c < cheapest_cost) {
                cheapest_cost = c;
                cheapest_reward = r;
                cheapest.assign(first, first + d);
            }
        }
        const double nu = ppo.update_dual(mean_cost, o.budget);
        const PpoUpdateStats st = ppo.update(ro, random_stream_key(o.ppo.seed, kPurposeRlUpdate, static_cast<uint64_t>(update)));
        if (on_update) {
            nlohmann::json rec = {{"update", update},
                                  {"mean_reward", mean_reward},
                                  {"mean_cost", mean_cost},
                                  {"budget", o.budget},
                                  {"feasible_episodes", feasible},
                                  {"policy_reward", rewards.back()},
                                  {"policy_cost", costs.back()},
                                  {"nu", nu},
                                  {"lambda", ppo.lambda_value()},
                                  {"entropy", st.entropy},
                                  {"kl", st.approx_kl},
                                  {"clip_fraction", st.clip_fraction},
                                  {"policy_loss", st.policy_loss},
                                  {"value_loss_reward", st.value_loss_reward},
                                  {"value_loss_cost", st.value_loss_cost},
                                  {"evaluation_s", eval_s},
                                  {"episodes_per_s", static_cast<double>(n + 1) / std::max(eval_s, 1e-9)},
                                  {"update_s", seconds_since(update_start)}};
            rec["best_feasible"] = best.feasible ? nlohmann::json{{"reward", best.reward}, {"cost", best.cost}}
                                                 : nlohmann::json(nullptr);
            on_update(rec);
        }
    }
    if (!best.feasible) {
        best.state = cheapest;
        best.reward = cheapest_reward;
        best.cost = cheapest_cost;
    }
    best.search_s = seconds_since(search_start);
    return best;
}

}  // namespace sp
