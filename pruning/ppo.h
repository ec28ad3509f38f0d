// PPO-Lagrangian for constrained MDPs (docs/methods.md, constrained-rl): a Gaussian actor and separate reward and
// cost critics (MLPs with two hidden ReLU layers, nn/layers.h, trained with nn/optim.h's Adam),
// GAE, the clipped policy loss with the Lagrange term
//   L = [−mean(min(ρ·A_R, clip(ρ, 1−ε, 1+ε)·A_R)) + ν·mean(ρ·A_C)] / (1 + ν) − c_H·entropy,
// and the dual ν = softplus(λ), λ moved by Adam by gradient ascent on λ·(mean cost − budget) after
// each rollout (the reference implementation's penalty loss; see update_dual). The networks are tiny, so they always run on the CPU backend; only the
// environment (the pruned model's evaluation) uses the accelerator.
// Actions are vectors of up to action_dim components; a sample may use only its first
// `dims` components (the filter-wise environment's layers have different widths), and the
// log-probability and entropy sum over those.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/context.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "nn/parameters.h"

namespace sp {

struct PpoOptions {
    int64_t hidden = 32;
    double lr = 3e-4;
    int64_t epochs = 10;
    int64_t minibatch = 64;
    double clip = 0.2;
    double grad_clip = 0.5;  // global L2 norm per network; 0 = none
    double gamma = 0.99;
    double lambda_reward = 0.95;
    double lambda_cost = 1.0;
    double dual_lr = 1.0;
    double dual_init = 0.0;  // λ at the start (ν = softplus(λ))
    double init_log_std = -0.5;
    double entropy_coef = 0.0;
    // Early stop of an update's epochs once the approximate KL(old ‖ new) over the rollout
    // exceeds 1.5·target_kl (as in Spinning Up's PPO); 0 = never.
    double target_kl = 0.02;
    uint64_t seed = 1;
};

// Generalized advantage estimation over concatenated episodes: `done[t]` marks an episode's
// last step (no bootstrap past it; the last sample must be one). advantages[t] = Σ_k (γλ)^k δ_{t+k}
// with δ_t = r_t + γ·V_{t+1}·(1 − done_t) − V_t; returns = advantages + values (critic targets).
void gae(const std::vector<float>& rewards, const std::vector<float>& values, const std::vector<uint8_t>& done,
         double gamma, double lambda, std::vector<float>& advantages, std::vector<float>& returns);

// The clipped PPO-Lagrangian policy loss of M samples (without the entropy term) and its
// derivative with respect to each sample's log π (ratio ρ = exp(log π − log π_old)).
struct PolicyLoss {
    double loss = 0.0;
    std::vector<double> dloss_dlogp;  // (M)
};
PolicyLoss ppo_policy_loss(const std::vector<double>& ratio, const std::vector<double>& adv_reward,
                           const std::vector<double>& adv_cost, double nu, double clip);

inline double softplus(double x) { return x > 30.0 ? x : std::log1p(std::exp(x)); }

// One rollout: T steps of concatenated episodes.
struct Rollout {
    int64_t state_dim = 0, action_dim = 0;
    std::vector<float> states;     // (T, state_dim)
    std::vector<float> actions;    // (T, action_dim), unused components 0
    std::vector<int64_t> dims;     // (T) components used by each step
    std::vector<float> log_probs;  // (T) under the policy that acted
    std::vector<float> rewards, costs;  // (T)
    std::vector<uint8_t> done;     // (T) 1 at an episode's last step
    int64_t size() const { return static_cast<int64_t>(dims.size()); }
};

struct PpoUpdateStats {
    double policy_loss = 0.0, value_loss_reward = 0.0, value_loss_cost = 0.0;
    double entropy = 0.0;      // mean over the rollout's steps, before the update
    double approx_kl = 0.0;    // mean(log π_old − log π_new) over the rollout, after the update
    double clip_fraction = 0.0;  // of the last epoch's samples
    int64_t epochs = 0;          // run before the KL early stop (or all)
    double nu = 0.0;           // the dual used by this update's policy loss
};

// A two-hidden-layer ReLU MLP with its own parameters and Adam optimizer, on the CPU backend.
class Mlp {
public:
    // `extra_parameters` (name, numel) are registered in the same store (the actor's log σ).
    Mlp(const std::string& name, int64_t in, int64_t hidden, int64_t out, uint64_t seed, double lr,
        const std::vector<std::pair<std::string, int64_t>>& extra_parameters = {});
    // x (N, in) as host floats → (N, out), valid until the next forward. The input is kept
    // (the first layer's backward reads it).
    const Tensor& forward(Context& ctx, const std::vector<float>& x, int64_t rows);
    // After forward: dy (N, out); overwrites the layers' gradients (extra parameters' too:
    // set them after this call through extra_grad()).
    void backward(Context& ctx, const Tensor& dy);
    // Clips the global gradient norm to `max_norm` (0 = no clip), then one Adam step.
    void step(Context& ctx, double max_norm);
    float* extra_value(int i);
    float* extra_grad(int i);
    ParameterStore& store() { return store_; }

private:
    ParameterStore store_;
    Sequential net_;
    Tensor input_;  // (N, in), the last forward's
    std::vector<int> extra_;
    Adam adam_;
    float lr_;
};

class PpoLagrangian {
public:
    PpoLagrangian(int64_t state_dim, int64_t action_dim, const PpoOptions& options);

    // Samples actions for N states (N, state_dim) from the Gaussian policy with Philox stream
    // `key`; dims (N) as in Rollout. Fills actions (N, action_dim) and log_probs (N).
    void act(const std::vector<float>& states, const std::vector<int64_t>& dims, uint64_t key,
             std::vector<float>& actions, std::vector<float>& log_probs);
    // The policy means (N, action_dim): the deterministic action.
    std::vector<float> mean_actions(const std::vector<float>& states);

    // The dual step after a rollout whose episodes had mean cost `mean_cost` against `budget`:
    // λ ← Adam(λ, −(mean_cost − budget)): λ (and ν) rise while the cost exceeds the budget and
    // fall while under it. Returns the new ν.
    double update_dual(double mean_cost, double budget);
    double nu() const { return softplus(lambda_value()); }
    double lambda_value() const;

    // PPO epochs over the rollout (policy and both critics) with the current ν.
    PpoUpdateStats update(const Rollout& rollout, uint64_t key);

    const PpoOptions& options() const { return options_; }
    std::vector<float> log_std();

private:
    // Means (N, A) and log-probs of `actions` for the rows of `states`.
    void log_probs(const float* states, const float* actions, const int64_t* dims, int64_t n,
                   std::vector<float>& means, std::vector<double>& logp);
    // mean(log π_old − log π) over the rollout's steps.
    double approx_kl(const Rollout& rollout);
    std::vector<float> values(Mlp& critic, const std::vector<float>& states);

    int64_t state_dim_, action_dim_;
    PpoOptions options_;
    Context ctx_{Device::cpu};
    Mlp actor_, reward_critic_, cost_critic_;
    ParameterStore dual_store_;  // λ, one float
    Adam dual_adam_;
};

}  // namespace sp
