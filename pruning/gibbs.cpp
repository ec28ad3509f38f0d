// Gibbs pruning: the CPU reference samplers (behind sp::cpu::gibbs_draw, pruning/cpu/gibbs.cpp),
// energies, the annealing schedule and the training-phase sampler with its logs and checkpoint
// state. Draws on either device go through gibbs_draw (pruning/ops.h).
#include "pruning/gibbs.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cmath>

#include "kernels/error.h"
#include "kernels/gibbs.h"
#include "kernels/philox.h"

namespace sp {

namespace {

constexpr uint64_t kPurposeGibbs = 0x6769'6262'7373'7465ull;       // "gibbsste": per-step draws, + layer
constexpr uint64_t kPurposeGibbsFinal = 0x6769'6262'6669'6e6cull;  // "gibbfinl": the final draw, + layer
// Chain k > 0 of a step draws with purpose + k · stride (+ layer); chain 0 is the paper's stream.
constexpr uint64_t kChainPurposeStride = 1ull << 32;

// The samplers' arithmetic leans on fmaf (kernels/gibbs.h): without the FMA instruction set in the
// target (the portable x86-64 baseline lacks it) every fmaf is a call into libm. The hot loops
// are built twice and the FMA copy is picked at load time where the CPU has it. fmaf rounds once
// either way and the build never contracts a*b+c (-ffp-contract=off), so the masks are the same.
#if defined(__x86_64__) && defined(__GNUC__)
#define SP_FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define SP_FMA_CLONES
#endif

GibbsLayerShape layer_shape(const LayerWiring& w) {
    if (w.conv) return {w.conv->out_channels(), w.conv->in_channels() / w.conv->groups(), w.conv->kernel() * w.conv->kernel()};
    return {w.linear->out_features(), w.linear->in_features(), 1};
}

Tensor layer_weight(const LayerWiring& w) { return w.conv ? w.conv->weight() : w.linear->weight(); }

// Spin sum of filter f over channels [c0, c1).
float spin_sum_host(const float* mask, GibbsLayerShape s, int64_t f, int64_t c0, int64_t c1) {
    int64_t sum = 0;
    for (int64_t i = (f * s.channels + c0) * s.area; i < (f * s.channels + c1) * s.area; ++i) sum += mask[i] != 0.0f ? 1 : -1;
    return static_cast<float>(sum);
}

}  // namespace

GibbsHamiltonian gibbs_hamiltonian_for(Granularity g) {
    switch (g) {
        case Granularity::weight: return GibbsHamiltonian::unstructured;
        case Granularity::kernel: return GibbsHamiltonian::kernel;
        case Granularity::filter: return GibbsHamiltonian::filter;
    }
    return GibbsHamiltonian::unstructured;
}

const char* gibbs_hamiltonian_name(GibbsHamiltonian h) {
    return h == GibbsHamiltonian::unstructured ? "unstructured" : h == GibbsHamiltonian::kernel ? "kernel" : "filter";
}

double GibbsSchedule::beta(int64_t epoch) const {
    SP_REQUIRE(beta_start > 0 && beta_end > 0 && anneal_epochs >= 1,
               "GibbsSchedule: needs beta_start, beta_end > 0 and anneal_epochs >= 1");
    if (anneal_epochs == 1 || epoch >= anneal_epochs - 1) return beta_end;
    const double t = static_cast<double>(std::max<int64_t>(epoch, 0)) / static_cast<double>(anneal_epochs - 1);
    return std::pow(10.0, std::log10(beta_start) + t * (std::log10(beta_end) - std::log10(beta_start)));
}

PercentilePosition percentile_position(int64_t n, double p) {
    SP_REQUIRE(n > 0 && p >= 0 && p <= 1, "percentile_position: " << n << " values, p = " << p);
    const double pos = p * static_cast<double>(n - 1);
    PercentilePosition r;
    r.lo = std::min<int64_t>(static_cast<int64_t>(std::floor(pos)), n - 1);
    r.frac = r.lo == n - 1 ? 0.0f : static_cast<float>(pos - static_cast<double>(r.lo));
    return r;
}

float percentile_host(std::vector<float> values, double p) {
    const PercentilePosition pos = percentile_position(static_cast<int64_t>(values.size()), p);
    auto lo = values.begin() + pos.lo;
    std::nth_element(values.begin(), lo, values.end());
    const float hi = lo + 1 == values.end() ? *lo : *std::min_element(lo + 1, values.end());
    return kernels::gibbs_percentile_value(*lo, hi, pos.frac);
}

std::vector<float> gibbs_statistic_host(const float* w, GibbsLayerShape s, GibbsHamiltonian h) {
    const int kind = gibbs_statistic_kind(h);
    const int64_t per = kind == 0 ? 1 : kind == 1 ? s.area : s.channels * s.area;
    std::vector<float> out(static_cast<size_t>(s.numel() / per));
    for (size_t j = 0; j < out.size(); ++j) {
        float sum = 0.0f;  // the order of kernels/gibbs.cu's statistic_kernel
        for (int64_t i = 0; i < per; ++i) sum += kernels::gibbs_mul(w[j * per + i], w[j * per + i]);
        out[j] = kind == 0 ? sum : sum / static_cast<float>(per);
    }
    return out;
}

SP_FMA_CLONES void gibbs_draw_kernels_host(const float* w, float q, GibbsLayerShape s, int64_t c0, int64_t c1,
                             const float* other_sums, float coupling, float beta, uint64_t key, uint64_t counter_base,
                             float* mask) {
    SP_REQUIRE(s.area >= 1 && s.area <= kernels::kGibbsMaxArea,
               "Gibbs kernel sampling enumerates 2^area configurations: area " << s.area << " outside [1, "
                                                                               << kernels::kGibbsMaxArea << "]");
    const uint32_t configs = 1u << s.area;
    const int64_t width = c1 - c0, jobs = s.filters * width;
    // Kernels are independent given the fields (their uniforms are keyed by index): threads split them.
#pragma omp parallel for schedule(static) if (jobs * configs > 65536)
    for (int64_t j = 0; j < jobs; ++j) {
        const int64_t f = j / width, kernel = f * s.channels + c0 + j % width;
        const float* wk = w + kernel * s.area;
        const float shift = other_sums ? kernels::gibbs_mul(coupling, other_sums[f]) : 0.0f;
        float h[kernels::kGibbsMaxArea];
        for (int64_t i = 0; i < s.area; ++i) h[i] = (q - kernels::gibbs_mul(wk[i], wk[i])) - shift;
        const uint64_t base = (counter_base + static_cast<uint64_t>(kernel)) * configs;
        float best = -INFINITY;
        uint32_t best_config = configs;
        PhiloxBlock block{};
        uint64_t block_index = UINT64_MAX;  // uniform u is output u % 4 of Philox block u / 4
        for (uint32_t m = 0; m < configs; ++m) {
            const uint64_t u = base + m;
            if (u / 4 != block_index) block = philox_block(key, block_index = u / 4);
            const float v = kernels::gibbs_config_logit(h, static_cast<int>(s.area), m, coupling, beta) +
                            kernels::gibbs_gumbel(block.v[u % 4]);
            if (kernels::gibbs_better(v, m, best, best_config)) best = v, best_config = m;
        }
        for (int64_t i = 0; i < s.area; ++i) mask[kernel * s.area + i] = (best_config >> i) & 1u ? 1.0f : 0.0f;
    }
}

void gibbs_filter_sweeps_host(const float* w, float q, GibbsLayerShape s, const GibbsParams& p, uint64_t key,
                              float* mask) {
    const int64_t split = s.channels / 2;
    std::vector<float> sums(static_cast<size_t>(s.filters));
    for (int64_t sweep = 0; sweep < p.sweeps; ++sweep) {
        const uint64_t base = static_cast<uint64_t>(sweep) * static_cast<uint64_t>(s.filters * s.channels);
        for (int64_t f = 0; f < s.filters; ++f) sums[f] = spin_sum_host(mask, s, f, split, s.channels);
        gibbs_draw_kernels_host(w, q, s, 0, split, sums.data(), p.coupling, p.beta, key, base, mask);
        for (int64_t f = 0; f < s.filters; ++f) sums[f] = spin_sum_host(mask, s, f, 0, split);
        gibbs_draw_kernels_host(w, q, s, split, s.channels, sums.data(), p.coupling, p.beta, key, base, mask);
    }
}

SP_FMA_CLONES void gibbs_draw_host(const float* w, GibbsLayerShape s, const GibbsParams& p, uint64_t key, float* mask,
                                   float* masked_weight) {
    std::vector<float> stat = gibbs_statistic_host(w, s, p.hamiltonian);
    const bool keep_stat = p.hamiltonian == GibbsHamiltonian::filter;  // the sweeps start from it
    const float q = keep_stat ? percentile_host(stat, p.p) : percentile_host(std::move(stat), p.p);
    switch (p.hamiltonian) {
        case GibbsHamiltonian::unstructured: {
            // Weights 4b..4b+3 share Philox block b, as in kernels/gibbs.cu; every block is
            // independent, so threads split them without changing a bit.
            const int64_t n = s.numel(), blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > 65536)
            for (int64_t b = 0; b < blocks; ++b) {
                const PhiloxBlock r = philox_block(key, static_cast<uint64_t>(b));
                for (int64_t i = 4 * b; i < std::min(n, 4 * b + 4); ++i) {
                    const float m = kernels::gibbs_keep_weight(w[i], q, p.beta, r.v[i - 4 * b]) ? 1.0f : 0.0f;
                    mask[i] = m;
                    if (masked_weight) masked_weight[i] = w[i] * m;
                }
            }
            return;
        }
        case GibbsHamiltonian::kernel:
            gibbs_draw_kernels_host(w, q, s, 0, s.channels, nullptr, p.coupling, p.beta, key, 0, mask);
            break;
        case GibbsHamiltonian::filter: {
            const int64_t per_filter = s.channels * s.area;
            for (int64_t i = 0; i < s.numel(); ++i) mask[i] = stat[static_cast<size_t>(i / per_filter)] > q ? 1.0f : 0.0f;
            gibbs_filter_sweeps_host(w, q, s, p, key, mask);
            break;
        }
    }
    if (masked_weight)  // kernel / filter: the enumeration dominates; the product is a separate pass
        for (int64_t i = 0; i < s.numel(); ++i) masked_weight[i] = w[i] * mask[i];
}

double gibbs_energy_host(const float* w, GibbsLayerShape s, const GibbsParams& p, const float* mask) {
    const float q = percentile_host(gibbs_statistic_host(w, s, p.hamiltonian), p.p);
    double energy = 0;
    for (int64_t i = 0; i < s.numel(); ++i) {
        const double b = static_cast<double>(q) - static_cast<double>(w[i]) * w[i];
        energy += p.hamiltonian == GibbsHamiltonian::unstructured ? b * mask[i] : b * (2.0 * mask[i] - 1.0);
    }
    if (p.hamiltonian == GibbsHamiltonian::unstructured) return energy;
    for (int64_t k = 0; k < s.filters * s.channels; ++k) {
        double sum = 0;
        for (int64_t i = 0; i < s.area; ++i) sum += 2.0 * mask[k * s.area + i] - 1.0;
        energy -= p.coupling * (sum * sum - static_cast<double>(s.area));
    }
    if (p.hamiltonian == GibbsHamiltonian::filter) {
        const int64_t split = s.channels / 2;
        for (int64_t f = 0; f < s.filters; ++f)
            energy -= p.coupling * static_cast<double>(spin_sum_host(mask, s, f, 0, split)) *
                      static_cast<double>(spin_sum_host(mask, s, f, split, s.channels));
    }
    return energy;
}

std::vector<float> gibbs_magnitude_units(const std::vector<float>& sums, double p) {
    const float q = percentile_host(sums, p);
    std::vector<float> state(sums.size());
    for (size_t u = 0; u < sums.size(); ++u) state[u] = sums[u] >= q ? 1.0f : 0.0f;
    return state;
}

// ---- the training-phase sampler

namespace {

MaskSpaceOptions weight_space_options(const std::vector<std::string>& layers) {
    MaskSpaceOptions o;
    o.granularity = Granularity::weight;
    o.include = layers;
    return o;
}

// The pruned layers (docs/methods.md, gibbs): not the first conv nor the classifier; kernel/filter: convs only (filter:
// those whose output channels form a prunable set).
std::vector<std::string> pruned_layers(Model& model, GibbsHamiltonian h) {
    std::vector<std::string> names;
    bool first_conv = true;
    for (const LayerWiring& w : model.wiring()) {
        if (w.conv && first_conv) {
            first_conv = false;
            continue;
        }
        if (model.channel_sets()[static_cast<size_t>(w.out_set)].kind == ChannelSet::Kind::logits) continue;
        if (h != GibbsHamiltonian::unstructured && !w.conv) continue;
        if (h == GibbsHamiltonian::filter && !model.channel_sets()[static_cast<size_t>(w.out_set)].prunable()) continue;
        if (h != GibbsHamiltonian::unstructured)
            SP_REQUIRE(w.conv->kernel() * w.conv->kernel() <= kernels::kGibbsMaxArea,
                       model.name() << ": layer " << w.name << " has " << w.conv->kernel() << "x" << w.conv->kernel()
                                    << " kernels; Gibbs " << gibbs_hamiltonian_name(h) << " sampling enumerates 2^(k*k) "
                                    << "configurations and takes k*k <= " << kernels::kGibbsMaxArea
                                    << " (use prune.granularity = \"weight\")");
        names.push_back(w.name);
    }
    SP_REQUIRE(!names.empty(), model.name() << ": no layer for Gibbs " << gibbs_hamiltonian_name(h) << " pruning");
    return names;
}

const LayerWiring& wiring_of(Model& model, const MaskSegment& seg) { return model.wiring()[static_cast<size_t>(seg.layer)]; }

}  // namespace

const SettingTable<GibbsOptions>& gibbs_settings() {
    using O = GibbsOptions;
    static const SettingTable<O> table =
        SettingTable<O>()
            .number("p", &O::p, 0.0, 0.999, "fraction pruned per layer: Q_p is the p-th percentile of the layer's statistic")
            .number("beta_start", [](O& o) -> double& { return o.schedule.beta_start; }, 1e-9, 1e9,
                    "beta of the first epoch (the paper: 1, filter-wise 10^-2.5)")
            .number("beta_end", [](O& o) -> double& { return o.schedule.beta_end; }, 1e-9, 1e9,
                    "beta from epoch anneal_epochs on (the paper: 10^4, filter-wise 1)")
            .integer("anneal_epochs", [](O& o) -> int64_t& { return o.schedule.anneal_epochs; }, 1, 100000,
                     "beta log-spaced from beta_start to beta_end over these epochs, then held")
            .number("kernel_coupling", &O::kernel_coupling, -1e3, 1e3, "c of the kernel-wise Hamiltonian")
            .number("filter_coupling", &O::filter_coupling, -1e3, 1e3,
                    "c of the filter-wise Hamiltonian (in-kernel and between the halves)")
            .integer("sweeps", &O::sweeps, 1, 100000, "filter-wise: chromatic sweeps per draw")
            .integer("chains", &O::chains, 1, 1024, "masks drawn per step (beyond the paper); the lowest-energy one trains")
            .number("chain_beta_ratio", &O::chain_beta_ratio, 1.0, 1e6, "chain k draws at beta / chain_beta_ratio^k")
            .integer("chain_images", &O::chain_images, 0, INT64_MAX,
                     "the chains' energies on the batch's first images (0: the whole batch)")
            .choice("chain_energy", &O::chain_energy, {EnergyKind::margin, EnergyKind::cross_entropy, EnergyKind::error},
                    energy_name, "the energy the chains are scored with on the batch")
            .boolean("fused_apply", &O::fused_apply,
                     "one chain: the draw also writes w * m for the layers (bitwise the same training)");
    return table;
}

GibbsTraining::GibbsTraining(Model& model, GibbsOptions options, Context& ctx)
    : model_(model), options_(options), layers_(pruned_layers(model, options.hamiltonian)),
      space_ptr_(std::make_unique<MaskSpace>(model, weight_space_options(layers_))), space_(*space_ptr_),
      units_{Tensor(Shape{space_.size()}, ctx.device()), Tensor(Shape{space_.size()}, ctx.device())} {
    gibbs_settings().check(options_, "Gibbs pruning");
    counters_ = Buffer(ctx.device(), 2 * sizeof(unsigned long long));  // zero-filled
    if (fused()) {
        constexpr int64_t kAlign = 64;  // floats
        std::vector<int64_t> offsets;
        int64_t total = 0;
        for (const MaskSegment& seg : space_.segments()) {
            offsets.push_back(total);
            total += (seg.size + kAlign - 1) / kAlign * kAlign;
        }
        masked_buffer_ = Tensor(Shape{total}, ctx.device());
        for (size_t l = 0; l < offsets.size(); ++l)
            masked_weights_.push_back(Tensor::view(masked_buffer_.data() + offsets[l], Shape{space_.segments()[l].size}, ctx.device()));
    }
    if (options_.chains > 1) {
        PopulationOptions po;
        po.energy = options_.chain_energy;
        po.check_members = false;  // 0/1 by construction; an empty layer is a valid draw here
        evaluator_ = std::make_unique<PopulationEvaluator>(space_, po);
        population_ = Tensor(Shape{options_.chains, space_.size()}, ctx.device());
        energies_ = Tensor(Shape{options_.chains}, ctx.device());
    }
}

GibbsParams GibbsTraining::params_at(double beta) const {
    GibbsParams p;
    p.hamiltonian = options_.hamiltonian;
    p.p = options_.p;
    p.beta = static_cast<float>(beta);
    p.coupling = static_cast<float>(options_.hamiltonian == GibbsHamiltonian::filter ? options_.filter_coupling
                                                                                    : options_.kernel_coupling);
    p.sweeps = options_.sweeps;
    return p;
}

void GibbsTraining::draw_all(Context& ctx, double beta, uint64_t purpose, uint64_t step, Tensor& units,
                             std::vector<Tensor>* masked) {
    const GibbsParams p = params_at(beta);
    for (size_t l = 0; l < space_.segments().size(); ++l) {
        const MaskSegment& seg = space_.segments()[l];
        const LayerWiring& w = wiring_of(model_, seg);
        Tensor mask = Tensor::view(units.data() + seg.offset, Shape{seg.size}, ctx.device());
        gibbs_draw(ctx, layer_weight(w), layer_shape(w), p, random_stream_key(options_.seed, purpose + l, step), mask,
                   masked ? &(*masked)[l] : nullptr);
    }
}

void GibbsTraining::draw_best_chain(Context& ctx, const Tensor& images, const Tensor& labels, Tensor& units) {
    const int64_t d = space_.size();
    for (int64_t k = 0; k < options_.chains; ++k) {
        Tensor row = Tensor::view(population_.data() + k * d, Shape{d}, ctx.device());
        const double beta = beta_ / std::pow(options_.chain_beta_ratio, static_cast<double>(k));
        draw_all(ctx, beta, kPurposeGibbs + static_cast<uint64_t>(k) * kChainPurposeStride, ctx.step(), row);
    }
    // The energies' images: the batch, or its first chain_images rows (views, no copy).
    const int64_t b = options_.chain_images > 0 ? std::min(options_.chain_images, images.dim(0)) : images.dim(0);
    const Shape& in = images.shape();
    Tensor x = Tensor::view(const_cast<float*>(images.data()), Shape{b, in[1], in[2], in[3]}, images.device());
    Tensor y = Tensor::view(const_cast<float*>(labels.data()), Shape{b}, labels.device());
    evaluator_->evaluate(ctx, population_, x, y, energies_);
    // K scalars to the host per step: the pick and the logs need them.
    const std::vector<float> e = energies_.to_host();
    const int64_t best = std::min_element(e.begin(), e.end()) - e.begin();  // the lowest chain on ties
    epoch_best_energy_ += e[static_cast<size_t>(best)];
    for (float v : e) epoch_mean_energy_ += v / static_cast<double>(e.size());
    epoch_chain_picks_nonzero_ += best != 0 ? 1 : 0;
    units.copy_from(Tensor::view(population_.data() + best * d, Shape{d}, ctx.device()));
}

void GibbsTraining::before_step(Context& ctx, const Tensor& images, const Tensor& labels, int64_t epoch) {
    auto start = std::chrono::steady_clock::now();
    beta_ = options_.schedule.beta(epoch);
    const int next = drawn_ ? 1 - current_ : current_;
    if (options_.chains > 1) {
        space_.detach();  // scored without the previous step's mask
        draw_best_chain(ctx, images, labels, units_[next]);
    } else {
        draw_all(ctx, beta_, kPurposeGibbs, ctx.step(), units_[next], fused() ? &masked_weights_ : nullptr);
    }
    const Tensor& cur = units_[next];
    const Tensor& prev = drawn_ ? units_[current_] : units_[next];  // the first step flips nothing
    gibbs_count_changes(ctx, prev, cur, counters_);
    current_ = next;
    drawn_ = true;
    space_.attach(ctx, units_[current_], fused() ? &masked_weights_ : nullptr);
    ++epoch_steps_;
    ++steps_;
    sampling_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void GibbsTraining::after_step(Context& ctx) {
    if (fused() && drawn_) space_.attach(ctx, units_[current_]);
}

nlohmann::json GibbsTraining::epoch_log(Context& ctx) {
    unsigned long long counts[2] = {0, 0};
    copy_bytes(counts, Device::cpu, counters_.data(), counters_.device(), sizeof counts);  // waits for the draws
    const unsigned long long zeros[2] = {0, 0};
    copy_bytes(counters_.data(), counters_.device(), zeros, Device::cpu, sizeof zeros);
    const double entries = static_cast<double>(space_.size()) * static_cast<double>(std::max<int64_t>(epoch_steps_, 1));
    nlohmann::json log = {{"gibbs_beta", beta_}, {"gibbs_flip_rate", counts[0] / entries},
                          {"gibbs_kept_mean", counts[1] / entries}, {"gibbs_steps", epoch_steps_}};
    if (options_.chains > 1 && epoch_steps_ > 0) {
        const double n = static_cast<double>(epoch_steps_);
        log["gibbs_chain_best_energy"] = epoch_best_energy_ / n;
        log["gibbs_chain_mean_energy"] = epoch_mean_energy_ / n;
        log["gibbs_chain_pick_other"] = static_cast<double>(epoch_chain_picks_nonzero_) / n;  // share of steps
    }
    epoch_best_energy_ = epoch_mean_energy_ = 0;
    epoch_chain_picks_nonzero_ = 0;
    epoch_steps_ = 0;
    if (!drawn_) return log;
    const std::vector<float> units = units_[current_].to_host();
    const GibbsParams p = params_at(beta_);
    nlohmann::json sparsity = nlohmann::json::object();
    double energy = 0, kept = 0;
    for (const MaskSegment& seg : space_.segments()) {
        const LayerWiring& w = wiring_of(model_, seg);
        const std::vector<float> weight = layer_weight(w).to_host();
        const float* m = units.data() + seg.offset;
        const double k = static_cast<double>(std::count(m, m + seg.size, 1.0f));
        sparsity[seg.name] = 1.0 - k / static_cast<double>(seg.size);
        kept += k;
        energy += gibbs_energy_host(weight.data(), layer_shape(w), p, m);
    }
    log["gibbs_sparsity"] = sparsity;
    log["gibbs_magnetisation"] = 2.0 * kept / static_cast<double>(space_.size()) - 1.0;
    log["gibbs_energy"] = energy;
    return log;
}

void GibbsTraining::save(std::vector<std::pair<std::string, Tensor>>& tensors, std::map<std::string, std::string>& meta) const {
    // The draws are keyed by the step, so only the flip statistics' state is needed to continue.
    tensors.emplace_back("gibbs.units", units_[current_].to(Device::cpu));
    unsigned long long counts[2] = {0, 0};
    copy_bytes(counts, Device::cpu, counters_.data(), counters_.device(), sizeof counts);
    meta["gibbs.drawn"] = drawn_ ? "1" : "0";
    meta["gibbs.flips"] = std::to_string(counts[0]);
    meta["gibbs.kept"] = std::to_string(counts[1]);
    meta["gibbs.epoch_steps"] = std::to_string(epoch_steps_);
    meta["gibbs.beta"] = std::to_string(beta_);
    meta["gibbs.chain_best_energy"] = nlohmann::json(epoch_best_energy_).dump();  // exact round trip
    meta["gibbs.chain_mean_energy"] = nlohmann::json(epoch_mean_energy_).dump();
    meta["gibbs.chain_picks_other"] = std::to_string(epoch_chain_picks_nonzero_);
    meta["gibbs.sampling_seconds"] = nlohmann::json(sampling_seconds_).dump();  // a resumed run counts on
}

void GibbsTraining::restore(Context& ctx, const Checkpoint& ck) {
    units_[0].copy_from(Tensor::from_host(ck.get("gibbs.units", Shape{space_.size()}).values, Shape{space_.size()}, Device::cpu));
    current_ = 0;
    drawn_ = ck.meta("gibbs.drawn") == "1";
    unsigned long long counts[2] = {std::stoull(ck.meta("gibbs.flips")), std::stoull(ck.meta("gibbs.kept"))};
    copy_bytes(counters_.data(), counters_.device(), counts, Device::cpu, sizeof counts);
    epoch_steps_ = std::stoll(ck.meta("gibbs.epoch_steps"));
    beta_ = std::stod(ck.meta("gibbs.beta"));
    if (ck.metadata.count("gibbs.chain_best_energy")) {  // absent in checkpoints of earlier versions
        epoch_best_energy_ = nlohmann::json::parse(ck.meta("gibbs.chain_best_energy")).get<double>();
        epoch_mean_energy_ = nlohmann::json::parse(ck.meta("gibbs.chain_mean_energy")).get<double>();
        epoch_chain_picks_nonzero_ = std::stoll(ck.meta("gibbs.chain_picks_other"));
    }
    if (ck.metadata.count("gibbs.sampling_seconds"))
        sampling_seconds_ = nlohmann::json::parse(ck.meta("gibbs.sampling_seconds")).get<double>();
    if (drawn_) space_.attach(ctx, units_[current_]);
}

MaskSpaceOptions GibbsTraining::final_space_options() const {
    MaskSpaceOptions o;
    o.granularity = options_.hamiltonian == GibbsHamiltonian::unstructured ? Granularity::weight
                    : options_.hamiltonian == GibbsHamiltonian::kernel     ? Granularity::kernel
                                                                           : Granularity::filter;
    if (o.granularity != Granularity::filter) {
        o.include = layers_;
        return o;
    }
    for (const std::string& name : layers_)
        for (const LayerWiring& w : model_.wiring())
            if (w.name == name) o.include.push_back(model_.channel_sets()[static_cast<size_t>(w.out_set)].name);
    return o;
}

std::vector<float> GibbsTraining::final_state(Context& ctx, MaskSpace& final_space) {
    std::vector<float> state(static_cast<size_t>(final_space.size()), 1.0f);
    if (options_.hamiltonian == GibbsHamiltonian::unstructured) {
        // One draw at the final β (the same layers, in the same order as the training space).
        Tensor units(Shape{space_.size()}, ctx.device());
        draw_all(ctx, options_.schedule.beta_end, kPurposeGibbsFinal, 0, units);
        SP_REQUIRE(final_space.size() == space_.size(), "GibbsTraining::final_state: the final space differs from the training one");
        return units.to_host();
    }
    // Kernel / filter: the top (1 − p) of every layer's units by Σw².
    for (const MaskSegment& seg : final_space.segments()) {
        const LayerWiring* producer = nullptr;
        for (const LayerWiring& w : model_.wiring())
            if (final_space.granularity() == Granularity::kernel ? w.name == seg.name
                                                                  : (w.conv && w.out_set == seg.set &&
                                                                     std::find(layers_.begin(), layers_.end(), w.name) != layers_.end()))
                producer = &w;
        SP_REQUIRE(producer, "Gibbs final mask: no pruned layer for segment " << seg.name);
        const GibbsLayerShape s = layer_shape(*producer);
        const std::vector<float> weight = layer_weight(*producer).to_host();
        const int64_t per = final_space.granularity() == Granularity::kernel ? s.area : s.channels * s.area;
        std::vector<float> sums(static_cast<size_t>(s.numel() / per), 0.0f);
        for (size_t u = 0; u < sums.size(); ++u)
            for (int64_t i = 0; i < per; ++i) sums[u] += weight[u * per + i] * weight[u * per + i];
        SP_REQUIRE(static_cast<int64_t>(sums.size()) == seg.size, "Gibbs final mask: segment " << seg.name << " has " << seg.size
                                                                                              << " units, its layer " << sums.size());
        const std::vector<float> kept = gibbs_magnitude_units(sums, options_.p);
        std::copy(kept.begin(), kept.end(), state.begin() + seg.offset);
    }
    final_space.repair(state);
    return state;
}

}  // namespace sp
