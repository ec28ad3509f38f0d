// PPO-Lagrangian: GAE, the clipped policy loss with the Lagrange term, the Gaussian actor, the
// reward and cost critics, and the dual update (see ppo.h).
#include "pruning/ppo.h"

#include <algorithm>

#include "data/split.h"
#include "kernels/error.h"
#include "kernels/philox.h"

namespace sp {

namespace {

constexpr double kLog2Pi = 1.8378770664093453;  // log(2π)

double mean_of(const std::vector<float>& v) {
    double s = 0.0;
    for (float x : v) s += x;
    return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

}  // namespace

void gae(const std::vector<float>& rewards, const std::vector<float>& values, const std::vector<uint8_t>& done,
         double gamma, double lambda, std::vector<float>& advantages, std::vector<float>& returns) {
    const size_t t_count = rewards.size();
    SP_REQUIRE(values.size() == t_count && done.size() == t_count,
               "gae: " << t_count << " rewards, " << values.size() << " values, " << done.size() << " done flags");
    SP_REQUIRE(t_count == 0 || done.back(), "gae: the last step must end an episode");
    advantages.assign(t_count, 0.0f);
    returns.assign(t_count, 0.0f);
    double next_adv = 0.0, next_value = 0.0;
    for (size_t i = t_count; i-- > 0;) {
        if (done[i]) next_adv = next_value = 0.0;
        const double delta = rewards[i] + gamma * next_value - values[i];
        const double adv = delta + gamma * lambda * next_adv;
        advantages[i] = static_cast<float>(adv);
        returns[i] = static_cast<float>(adv + values[i]);
        next_adv = adv;
        next_value = values[i];
    }
}

PolicyLoss ppo_policy_loss(const std::vector<double>& ratio, const std::vector<double>& adv_reward,
                           const std::vector<double>& adv_cost, double nu, double clip) {
    const size_t m = ratio.size();
    SP_REQUIRE(m > 0 && adv_reward.size() == m && adv_cost.size() == m,
               "ppo_policy_loss: " << m << " ratios, " << adv_reward.size() << " reward and " << adv_cost.size()
                                   << " cost advantages");
    SP_REQUIRE(nu >= 0.0 && clip > 0.0, "ppo_policy_loss: ν = " << nu << ", clip = " << clip);
    PolicyLoss out;
    out.dloss_dlogp.resize(m);
    const double scale = 1.0 / (static_cast<double>(m) * (1.0 + nu));
    double surrogate = 0.0, penalty = 0.0;
    for (size_t i = 0; i < m; ++i) {
        const double r = ratio[i], a = adv_reward[i];
        const double unclipped = r * a, clipped = std::clamp(r, 1.0 - clip, 1.0 + clip) * a;
        surrogate += std::min(unclipped, clipped);
        penalty += r * adv_cost[i];
        // dρ/dlog π = ρ; the clipped branch is constant in ρ when it is the smaller one.
        const double d_surrogate = unclipped <= clipped ? unclipped : 0.0;
        out.dloss_dlogp[i] = (-d_surrogate + nu * r * adv_cost[i]) * scale;
    }
    out.loss = (-surrogate + nu * penalty) * scale;
    return out;
}

// ---- Mlp ----

Mlp::Mlp(const std::string& name, int64_t in, int64_t hidden, int64_t out, uint64_t seed, double lr,
         const std::vector<std::pair<std::string, int64_t>>& extra_parameters)
    : net_(name), lr_(static_cast<float>(lr)) {
    net_.emplace<Linear>(store_, name + ".0", in, hidden);
    net_.emplace<ReLU>(name + ".1");
    net_.emplace<Linear>(store_, name + ".2", hidden, hidden);
    net_.emplace<ReLU>(name + ".3");
    Linear& last = net_.emplace<Linear>(store_, name + ".4", hidden, out);
    for (const auto& [pname, numel] : extra_parameters)
        extra_.push_back(store_.add_parameter(name + "." + pname, Shape{numel}, Init::zeros));
    store_.allocate(Device::cpu, seed);
    // A small last layer: the initial outputs are near zero for every input (the actor starts
    // as the same Gaussian everywhere), as in common PPO initialisations.
    Tensor w = last.weight();
    for (int64_t i = 0; i < w.numel(); ++i) w.data()[i] *= 0.01f;
}

const Tensor& Mlp::forward(Context& ctx, const std::vector<float>& x, int64_t rows) {
    SP_REQUIRE(rows > 0 && static_cast<int64_t>(x.size()) % rows == 0,
               net_.name() << ": " << x.size() << " input values for " << rows << " rows");
    input_ = Tensor::from_host(x, Shape{rows, static_cast<int64_t>(x.size()) / rows}, Device::cpu);
    return net_.forward(ctx, input_);
}

void Mlp::backward(Context& ctx, const Tensor& dy) {
    net_.backward(ctx, dy);
    for (int index : extra_) {
        Tensor g = store_.grad(index);
        std::fill(g.data(), g.data() + g.numel(), 0.0f);
    }
}

void Mlp::step(Context& ctx, double max_norm) {
    Tensor& g = store_.grads();  // (parameter_floats), host memory
    if (max_norm > 0.0) {
        double sq = 0.0;
        for (int64_t i = 0; i < g.numel(); ++i) sq += static_cast<double>(g.data()[i]) * g.data()[i];
        const double norm = std::sqrt(sq);
        if (norm > max_norm) {
            const auto scale = static_cast<float>(max_norm / norm);
            for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] *= scale;
        }
    }
    adam_.step(ctx, store_, lr_);
}

float* Mlp::extra_value(int i) { return store_.value(extra_.at(static_cast<size_t>(i))).data(); }
float* Mlp::extra_grad(int i) { return store_.grad(extra_.at(static_cast<size_t>(i))).data(); }

// ---- PpoLagrangian ----

PpoLagrangian::PpoLagrangian(int64_t state_dim, int64_t action_dim, const PpoOptions& options)
    : state_dim_(state_dim),
      action_dim_(action_dim),
      options_(options),
      actor_("actor", state_dim, options.hidden, action_dim, random_stream_key(options.seed, 0x5050, 0), options.lr,
             {{"log_std", action_dim}}),
      reward_critic_("reward_critic", state_dim, options.hidden, 1, random_stream_key(options.seed, 0x5050, 1),
                     options.lr),
      cost_critic_("cost_critic", state_dim, options.hidden, 1, random_stream_key(options.seed, 0x5050, 2),
                   options.lr) {
    SP_REQUIRE(state_dim > 0 && action_dim > 0, "ppo: state_dim " << state_dim << ", action_dim " << action_dim);
    SP_REQUIRE(options.epochs > 0 && options.minibatch > 0 && options.clip > 0.0,
               "ppo: epochs " << options.epochs << ", minibatch " << options.minibatch << ", clip " << options.clip);
    std::fill(actor_.extra_value(0), actor_.extra_value(0) + action_dim, static_cast<float>(options.init_log_std));
    dual_store_.add_parameter("lambda", Shape{1}, Init::zeros);
    dual_store_.allocate(Device::cpu, options.seed);
    dual_store_.values().data()[0] = static_cast<float>(options.dual_init);
}

double PpoLagrangian::lambda_value() const { return dual_store_.value(0).data()[0]; }

std::vector<float> PpoLagrangian::log_std() {
    const float* v = actor_.extra_value(0);
    return std::vector<float>(v, v + action_dim_);
}

std::vector<float> PpoLagrangian::mean_actions(const std::vector<float>& states) {
    const auto n = static_cast<int64_t>(states.size()) / state_dim_;
    SP_REQUIRE(n * state_dim_ == static_cast<int64_t>(states.size()),
               "ppo: " << states.size() << " state values is not a multiple of state_dim " << state_dim_);
    return actor_.forward(ctx_, states, n).to_host();
}

void PpoLagrangian::act(const std::vector<float>& states, const std::vector<int64_t>& dims, uint64_t key,
                        std::vector<float>& actions, std::vector<float>& log_probs) {
    const std::vector<float> means = mean_actions(states);
    const auto n = static_cast<int64_t>(dims.size());
    SP_REQUIRE(static_cast<int64_t>(means.size()) == n * action_dim_, "ppo act: " << n << " dims for "
                                                                                  << means.size() / action_dim_ << " states");
    const float* log_std = actor_.extra_value(0);
    actions.assign(static_cast<size_t>(n * action_dim_), 0.0f);
    log_probs.assign(static_cast<size_t>(n), 0.0f);
    for (int64_t i = 0; i < n; ++i) {
        const int64_t d = dims[static_cast<size_t>(i)];
        SP_REQUIRE(d >= 1 && d <= action_dim_, "ppo act: step uses " << d << " of " << action_dim_ << " action components");
        double logp = 0.0;
        for (int64_t j = 0; j < d; ++j) {
            // Box–Muller on two uniforms in (0, 1] of the stream.
            const uint64_t c = static_cast<uint64_t>(i * action_dim_ + j) * 2;
            const double u1 = stream_uniform(key, c), u2 = stream_uniform(key, c + 1);
            const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
            const double sigma = std::exp(static_cast<double>(log_std[j]));
            const size_t k = static_cast<size_t>(i * action_dim_ + j);
            actions[k] = static_cast<float>(means[k] + sigma * z);
            const double diff = (static_cast<double>(actions[k]) - means[k]) / sigma;
            logp += -0.5 * diff * diff - log_std[j] - 0.5 * kLog2Pi;
        }
        log_probs[static_cast<size_t>(i)] = static_cast<float>(logp);
    }
}

void PpoLagrangian::log_probs(const float* states, const float* actions, const int64_t* dims, int64_t n,
                              std::vector<float>& means, std::vector<double>& logp) {
    means = mean_actions(std::vector<float>(states, states + n * state_dim_));
    const float* log_std = actor_.extra_value(0);
    logp.assign(static_cast<size_t>(n), 0.0);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < dims[i]; ++j) {
            const size_t k = static_cast<size_t>(i * action_dim_ + j);
            const double diff = (static_cast<double>(actions[k]) - means[k]) / std::exp(static_cast<double>(log_std[j]));
            logp[static_cast<size_t>(i)] += -0.5 * diff * diff - log_std[j] - 0.5 * kLog2Pi;
        }
}

std::vector<float> PpoLagrangian::values(Mlp& critic, const std::vector<float>& states) {
    const auto n = static_cast<int64_t>(states.size()) / state_dim_;
    return critic.forward(ctx_, states, n).to_host();
}

double PpoLagrangian::approx_kl(const Rollout& ro) {
    std::vector<float> means;
    std::vector<double> logp;
    log_probs(ro.states.data(), ro.actions.data(), ro.dims.data(), ro.size(), means, logp);
    double kl = 0.0;
    for (int64_t i = 0; i < ro.size(); ++i) kl += ro.log_probs[static_cast<size_t>(i)] - logp[static_cast<size_t>(i)];
    return kl / static_cast<double>(ro.size());
}

double PpoLagrangian::update_dual(double mean_cost, double budget) {
    // Ascent on λ·(J_C − α), as the reference PPO-Lagrangian (safety-starter-agents) does with
    // ν = softplus(λ): without the chain factor sigmoid(λ), which would all but stop λ once it is
    // very negative. Adam minimises, so the gradient is the negative.
    dual_store_.grads().data()[0] = static_cast<float>(-(mean_cost - budget));
    dual_adam_.step(ctx_, dual_store_, static_cast<float>(options_.dual_lr));
    return nu();
}

PpoUpdateStats PpoLagrangian::update(const Rollout& ro, uint64_t key) {
    const int64_t t_count = ro.size(), s = state_dim_, a_dim = action_dim_;
    SP_REQUIRE(t_count > 0 && ro.state_dim == s && ro.action_dim == a_dim &&
                   static_cast<int64_t>(ro.states.size()) == t_count * s &&
                   static_cast<int64_t>(ro.actions.size()) == t_count * a_dim &&
                   static_cast<int64_t>(ro.log_probs.size()) == t_count &&
                   static_cast<int64_t>(ro.rewards.size()) == t_count && static_cast<int64_t>(ro.costs.size()) == t_count &&
                   static_cast<int64_t>(ro.done.size()) == t_count,
               "ppo update: inconsistent rollout (" << t_count << " steps, state_dim " << ro.state_dim << " vs " << s
                                                    << ", action_dim " << ro.action_dim << " vs " << a_dim << ")");
    PpoUpdateStats stats;
    stats.nu = nu();

    // Advantages: both centred and divided by the reward advantage's standard deviation, so the
    // policy sees the Lagrangian A_R − ν·A_C at a fixed scale with its trade-off intact.
    std::vector<float> adv_r, ret_r, adv_c, ret_c;
    gae(ro.rewards, values(reward_critic_, ro.states), ro.done, options_.gamma, options_.lambda_reward, adv_r, ret_r);
    gae(ro.costs, values(cost_critic_, ro.states), ro.done, options_.gamma, options_.lambda_cost, adv_c, ret_c);
    const double mean_r = mean_of(adv_r), mean_c = mean_of(adv_c);
    double var_r = 0.0;
    for (float v : adv_r) var_r += (v - mean_r) * (v - mean_r);
    const double std_r = std::sqrt(var_r / static_cast<double>(t_count));
    for (float& v : adv_r) v = static_cast<float>((v - mean_r) / (std_r + 1e-8));
    for (float& v : adv_c) v = static_cast<float>((v - mean_c) / (std_r + 1e-8));

    {
        const float* log_std = actor_.extra_value(0);
        double entropy = 0.0;
        for (int64_t i = 0; i < t_count; ++i)
            for (int64_t j = 0; j < ro.dims[static_cast<size_t>(i)]; ++j) entropy += log_std[j] + 0.5 * (1.0 + kLog2Pi);
        stats.entropy = entropy / static_cast<double>(t_count);
    }

    const int64_t mb = std::min(options_.minibatch, t_count);
    const double nu_now = stats.nu;
    std::vector<float> ms, mact, mret_r, mret_c;
    std::vector<int64_t> mdims;
    std::vector<float> means;
    std::vector<double> logp;
    for (int64_t epoch = 0; epoch < options_.epochs; ++epoch) {
        const std::vector<int64_t> order = philox_permutation(t_count, random_stream_key(key, 0x9090, static_cast<uint64_t>(epoch)));
        int64_t clipped = 0;
        double loss_sum = 0.0, vr_sum = 0.0, vc_sum = 0.0;
        int64_t batches = 0;
        for (int64_t start = 0; start < t_count; start += mb) {
            const int64_t m = std::min(mb, t_count - start);
            ms.resize(static_cast<size_t>(m * s));
            mact.resize(static_cast<size_t>(m * a_dim));
            mdims.resize(static_cast<size_t>(m));
            mret_r.resize(static_cast<size_t>(m));
            mret_c.resize(static_cast<size_t>(m));
            std::vector<double> old_logp(static_cast<size_t>(m)), ar(static_cast<size_t>(m)), ac(static_cast<size_t>(m));
            for (int64_t r = 0; r < m; ++r) {
                const auto src = static_cast<size_t>(order[static_cast<size_t>(start + r)]);
                std::copy_n(ro.states.begin() + static_cast<std::ptrdiff_t>(src * s), s, ms.begin() + r * s);
                std::copy_n(ro.actions.begin() + static_cast<std::ptrdiff_t>(src * a_dim), a_dim, mact.begin() + r * a_dim);
                mdims[static_cast<size_t>(r)] = ro.dims[src];
                old_logp[static_cast<size_t>(r)] = ro.log_probs[src];
                ar[static_cast<size_t>(r)] = adv_r[src];
                ac[static_cast<size_t>(r)] = adv_c[src];
                mret_r[static_cast<size_t>(r)] = ret_r[src];
                mret_c[static_cast<size_t>(r)] = ret_c[src];
            }
            // Actor: d loss / d μ and d loss / d log σ through log π of each sample.
            log_probs(ms.data(), mact.data(), mdims.data(), m, means, logp);
            std::vector<double> ratio(static_cast<size_t>(m));
            for (int64_t r = 0; r < m; ++r) {
                ratio[static_cast<size_t>(r)] = std::exp(logp[static_cast<size_t>(r)] - old_logp[static_cast<size_t>(r)]);
                if (std::fabs(ratio[static_cast<size_t>(r)] - 1.0) > options_.clip) ++clipped;
            }
            const PolicyLoss pl = ppo_policy_loss(ratio, ar, ac, nu_now, options_.clip);
            loss_sum += pl.loss;
            const float* log_std = actor_.extra_value(0);
            std::vector<float> dmean(static_cast<size_t>(m * a_dim), 0.0f);
            std::vector<double> dlog_std(static_cast<size_t>(a_dim), 0.0);
            for (int64_t r = 0; r < m; ++r) {
                const double g = pl.dloss_dlogp[static_cast<size_t>(r)];
                for (int64_t j = 0; j < mdims[static_cast<size_t>(r)]; ++j) {
                    const size_t k = static_cast<size_t>(r * a_dim + j);
                    const double inv_var = std::exp(-2.0 * log_std[j]);
                    const double diff = static_cast<double>(mact[k]) - means[k];
                    dmean[k] = static_cast<float>(g * diff * inv_var);
                    // ∂ log π / ∂ log σ = diff²/σ² − 1; the entropy bonus adds −c_H per used component.
                    dlog_std[static_cast<size_t>(j)] +=
                        g * (diff * diff * inv_var - 1.0) - options_.entropy_coef / static_cast<double>(m);
                }
            }
            actor_.backward(ctx_, Tensor::from_host(dmean, Shape{m, a_dim}, Device::cpu));
            float* glog_std = actor_.extra_grad(0);
            for (int64_t j = 0; j < a_dim; ++j) glog_std[j] = static_cast<float>(dlog_std[static_cast<size_t>(j)]);
            actor_.step(ctx_, options_.grad_clip);


            // Critics: 0.5·mean((V − target)²).
            auto fit_critic = [&](Mlp& critic, const std::vector<float>& target) {
                std::vector<float> v = critic.forward(ctx_, ms, m).to_host();
                std::vector<float> dv(static_cast<size_t>(m));
                double loss = 0.0;
                for (int64_t r = 0; r < m; ++r) {
                    const double e = static_cast<double>(v[static_cast<size_t>(r)]) - target[static_cast<size_t>(r)];
                    loss += 0.5 * e * e / static_cast<double>(m);
                    dv[static_cast<size_t>(r)] = static_cast<float>(e / static_cast<double>(m));
                }
                critic.backward(ctx_, Tensor::from_host(dv, Shape{m, 1}, Device::cpu));
                critic.step(ctx_, options_.grad_clip);
                return loss;
            };
            vr_sum += fit_critic(reward_critic_, mret_r);
            vc_sum += fit_critic(cost_critic_, mret_c);
            ++batches;
        }
        stats.policy_loss = loss_sum / static_cast<double>(batches);
        stats.value_loss_reward = vr_sum / static_cast<double>(batches);
        stats.value_loss_cost = vc_sum / static_cast<double>(batches);
        stats.clip_fraction = static_cast<double>(clipped) / static_cast<double>(t_count);
        stats.epochs = epoch + 1;
        stats.approx_kl = approx_kl(ro);
        if (options_.target_kl > 0.0 && stats.approx_kl > 1.5 * options_.target_kl) break;
    }
    return stats;
}

}  // namespace sp
