// Experiment configuration: one TOML file per experiment (experiments/*.toml). Every key is
// validated: an unknown key, a wrong type or a value out of range is an error that names the
// file, the key, what was expected and what was found. Missing keys take the defaults below.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sp {

struct DataConfig {
    std::string dataset = "fashion-mnist";  // fashion-mnist | cifar10 | cifar100
    std::string dir;                        // "" = the dataset's default location
    int64_t validation = 5000;              // images held out of the training set
    int64_t train_subset = 0;               // > 0: use only the first N training images (quick runs)
    bool augment = false;                   // random crop (pad 4) + horizontal flip
    bool normalize = true;                  // per-channel mean/std of the training set
};

struct ModelConfig {
    std::string name = "lenet";
    std::string shortcut = "A";  // residual shortcut option for ResNet-20/32/56/110: A | B
    // Channel-set name -> width, for a wider or narrower variant of the architecture
    // (`spinprune info` lists the resizable sets); absent sets keep their default width.
    std::map<std::string, int64_t> widths;
};

struct TrainConfig {
    int64_t epochs = 3;
    int64_t batch_size = 128;
    int64_t eval_batch_size = 500;
    std::string optimizer = "sgd";  // sgd | adam | adadelta
    double lr = 0.05;
    double momentum = 0.9;
    bool nesterov = false;
    double weight_decay = 5e-4;
    double rho = 0.9;                // adadelta
    double beta1 = 0.9, beta2 = 0.999;  // adam
    std::string schedule = "cosine";    // constant | step | multistep | cosine
    int64_t step_size = 30;             // step: epochs between decays
    std::vector<int64_t> milestones;    // multistep
    double gamma = 0.1;                 // step / multistep factor
    double min_lr = 0.0;                // cosine floor
    double warmup_epochs = 0.0;
    double label_smoothing = 0.0;
    int64_t checkpoint_every = 1;       // epochs
    // A step whose loss or gradients hold a NaN/Inf: "stop" (an error naming the step and the
    // layer; the last good checkpoint stays) or "skip" (no update; counted in the metrics).
    std::string on_nonfinite = "stop";
};

// [prune.gibbs]: Gibbs pruning (METHODS.md §2). The Hamiltonian follows prune.granularity:
// weight = unstructured, kernel = kernel-wise, filter = filter-wise (chromatic sweeps).
struct GibbsConfig {
    double p = 0.9;                // fraction pruned per layer: Q_p is the p-th percentile
    double beta_start = 1.0;       // β of the first epoch (the paper: 1, filter-wise 10^-2.5)
    double beta_end = 1e4;         // β from epoch anneal_epochs on (the paper: 10^4, filter-wise 1)
    int64_t anneal_epochs = 128;   // log-spaced β over these epochs, then held
    double kernel_coupling = 0.01; // c of the kernel-wise Hamiltonian
    double filter_coupling = 1.0;  // c of the filter-wise Hamiltonian (in-kernel and between halves)
    int64_t sweeps = 50;           // filter-wise: chromatic sweeps per draw
    // Beyond the paper: `chains` masks per step (chain k at β / chain_beta_ratio^k), scored with
    // prune.energy on the step's batch (its first chain_images images when > 0); the lowest is used.
    int64_t chains = 1;
    double chain_beta_ratio = 1.0;
    int64_t chain_images = 0;
    // The unstructured draw also writes w ⊙ m for the layers (one chain; same training bit for
    // bit); false: the layers multiply the weights by the mask in every forward.
    bool fused_apply = true;
};

// [prune.rl]: budget-constrained RL pruning with PPO-Lagrangian (METHODS.md §4).
// The budget fraction is prune.keep; `cost` = "budget" makes it the quantity prune.budget names.
struct ConstrainedRlConfig {
    std::string environment = "layer";  // layer (action: fraction to prune) | filter (per-filter keep values)
    std::string cost = "budget";        // budget (prune.budget: params | macs) | latency (measured, filter granularity)
    std::string reward = "accuracy";    // accuracy | margin | cross-entropy (−energy) on the validation images
    int64_t eval_images = 500;          // validation images every episode is scored on
    int64_t episodes = 32;              // parallel episodes per update (one population)
    int64_t updates = 40;               // PPO updates (rollouts)
    bool batched = true;                // evaluate an update's episodes as one population (else one by one)
    int64_t max_images_per_pass = 0;    // largest batch of one population forward (0 = no limit)
    double max_prune = 0.9;             // layer: largest fraction of a layer an action prunes
    int64_t latency_batch = 1;          // cost = latency: images per timed forward
    int64_t hidden = 32;                // width of the 2-hidden-layer actor and critics
    double lr = 3e-4;                   // Adam, actor and critics
    int64_t epochs = 10;                // PPO epochs per update
    int64_t minibatch = 64;             // samples (steps) per minibatch
    double clip = 0.2;                  // PPO ratio clip ε
    double grad_clip = 0.5;             // global gradient-norm clip per network
    double gamma = 0.99;
    double lambda_reward = 0.95;        // GAE λ of the reward advantage
    double lambda_cost = 1.0;           // GAE λ of the cost advantage
    double dual_lr = 1.0;               // Adam on λ, ν = softplus(λ)
    double dual_init = 0.0;             // initial λ
    double init_log_std = -0.5;         // initial log σ of the Gaussian policy
    double entropy_coef = 0.0;          // entropy bonus in the policy loss
};

// The prune stage of `spinprune run` (method "none": train and evaluate only).
struct PruneConfig {
    // none | random | magnitude | magnitude-global | l1-filter | bn-scale | energy-aware | hrank | edropout
    // | gibbs | constrained-rl
    std::string method = "none";
    std::string granularity = "filter";  // filter | weight | kernel
    std::string budget = "params";     // params | macs: what `keep` is a fraction of
    double keep = 0.5;                 // fraction of the dense model's parameters / MACs kept
    bool gate_after_bn = true;         // filter masks: gate after BN (true removal) or before it
    bool prune_residual_groups = false;
    int64_t round_to = 1;              // filter: kept widths rounded up to a multiple of this (8: tensor cores)
    std::string baseline_checkpoint;   // "" = train the baseline as [train] says
    // edropout: the search runs during [train]; `keep` and `budget` are its budget term's target.
    int64_t members = 8;               // population size P
    double mutation_rate = 0.1;        // probability of DE's per-unit flag F
    double crossover = 0.9;            // CR
    std::string rule = "reference";    // reference | textbook (binary DE mutation rule)
    std::string energy = "margin";     // margin | cross-entropy | error | ising (of the state alone)
    double ising_keep_target = 0.5;    // ising: the fraction of units below which the penalty applies
    double ising_penalty = 100.0;      // ising: the penalty's weight
    double budget_weight = 0.0;        // λ of the budget term λ·max(kept − keep, 0) in `budget` units (0 = none)
    bool member_batch_statistics = false;  // BN per member's batch statistics while evaluating
    int64_t min_epochs = -1;           // the search may stop from this epoch (-1 = half of train.epochs)
    int64_t patience = 50;             // generations without a change of the best energy
    int64_t min_generations = 1000;
    int64_t eval_images = 0;           // images of each batch the energies use (0 = the whole batch)
    bool train_baseline = false;       // also train an unpruned baseline first, for the comparison
    // energy-aware / hrank: feature-map importance of every filter (METHODS.md §3).
    int64_t score_images = 640;        // training images the scores average over
    bool post_relu = true;             // score the map after ReLU (else the BN output)
    std::string criterion;             // nuclear | rank | l1 | l2: overrides the method's (nuclear / rank)
    std::vector<double> rates;         // per prunable set, the fraction of filters to prune; empty: `keep` and `budget`
    // A published per-conv list in HRank's notation, "[0.1]+[0.6]*35+…" (one rate per conv, in
    // order; pruning/rate_lists.h): mapped onto the prunable sets instead of `rates`.
    std::string conv_rates;
    GibbsConfig gibbs;
    ConstrainedRlConfig rl;
};

struct ExperimentConfig {
    std::string source;  // file it came from
    std::string name = "experiment";
    int64_t seed = 1;
    std::string device = "auto";  // auto | cpu | cuda
    bool deterministic = false;
    // CUDA convolutions and GEMMs: "tf32" (tensor cores, FP32 accumulation; PyTorch's default for
    // convolutions) or "fp32" (exact). The CPU backend always computes in FP32.
    std::string math = "tf32";
    DataConfig data;
    ModelConfig model;
    TrainConfig train;
    PruneConfig prune;
    TrainConfig finetune = default_finetune();  // same keys as [train]; epochs = 0: no fine-tuning

    static TrainConfig default_finetune() {
        TrainConfig t;
        t.epochs = 0;
        t.lr = 0.01;
        return t;
    }
};

// Loads and validates a config file; `overrides` are "section.key=value" strings (TOML
// values) applied on top, as from the command line's --set.
ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The same from TOML text (`source` names it in errors), e.g. the config saved in a checkpoint.
ExperimentConfig parse_config(const std::string& text, const std::string& source,
                              const std::vector<std::string>& overrides = {});

// The resolved config (every key, defaults included) as TOML text.
std::string to_toml(const ExperimentConfig& config);

// A published per-conv rate list in HRank's notation, "[r]*n+[r]+…", as one rate per conv;
// `where` names the source in errors (file and key).
std::vector<double> parse_rate_list(const std::string& text, const std::string& where);

}  // namespace sp
