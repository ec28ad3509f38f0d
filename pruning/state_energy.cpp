// The Ising energy and the budget term of EDropout's state: couplings and cost coefficients on
// the host, once per update; the population's energies on its device through sp ops.
#include "pruning/state_energy.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "kernels/error.h"
#include "nn/layers.h"
#include "nn/ops.h"
#include "pruning/accounting.h"
#include "pruning/feature_scores.h"

namespace sp {

namespace {

// Normalised histogram of `values` over [lo, hi] with `bins` bins and Jeffreys smoothing
// (+0.5 per bin), so that the KL divergences between sparse histograms stay finite.
std::vector<double> smoothed_histogram(const float* values, int64_t n, double lo, double hi, int64_t bins) {
    std::vector<double> h(static_cast<size_t>(bins), 0.5);
    const double width = hi > lo ? (hi - lo) / static_cast<double>(bins) : 1.0;
    for (int64_t i = 0; i < n; ++i) {
        const int64_t b = std::clamp(static_cast<int64_t>((values[i] - lo) / width), int64_t{0}, bins - 1);
        h[static_cast<size_t>(b)] += 1.0;
    }
    const double total = static_cast<double>(n) + 0.5 * static_cast<double>(bins);
    for (double& v : h) v /= total;
    return h;
}

double symmetric_kl(const std::vector<double>& p, const std::vector<double>& q) {
    double d = 0;
    for (size_t i = 0; i < p.size(); ++i) d += (p[i] - q[i]) * std::log(p[i] / q[i]);
    return 0.5 * d;
}

// Entropy of the histogram of values in [0, max] (post-ReLU activations), divided by log(bins):
// 0 for a dead channel or a constant one, 1 for a uniform spread.
double normalised_entropy(const std::vector<float>& values, int64_t bins) {
    const float hi = *std::max_element(values.begin(), values.end());
    if (!(hi > 0.0f)) return 0.0;
    std::vector<double> h(static_cast<size_t>(bins), 0.0);
    for (float v : values) {
        const int64_t b = std::clamp(static_cast<int64_t>(std::max(v, 0.0f) / hi * static_cast<float>(bins)), int64_t{0}, bins - 1);
        h[static_cast<size_t>(b)] += 1.0;
    }
    double e = 0;
    for (double c : h)
        if (c > 0) {
            const double p = c / static_cast<double>(values.size());
            e -= p * std::log(p);
        }
    return e / std::log(static_cast<double>(bins));
}

// Each channel's incoming weights, concatenated over the layers writing the segment's set.
std::vector<std::vector<float>> filter_weights(Model& model, const MaskSegment& seg) {
    std::vector<std::vector<float>> rows(static_cast<size_t>(seg.size));
    for (const LayerWiring& w : model.wiring()) {
        if (w.out_set != seg.set) continue;
        const Tensor weight = w.conv ? w.conv->weight() : w.linear->weight();
        const std::vector<float> host = weight.to_host();
        const int64_t fan = weight.numel() / weight.dim(0);
        SP_REQUIRE(weight.dim(0) == seg.size, "ising: layer " << w.name << " writes " << weight.dim(0)
                                                              << " channels into " << seg.name << " of " << seg.size);
        for (int64_t c = 0; c < seg.size; ++c)
            rows[static_cast<size_t>(c)].insert(rows[static_cast<size_t>(c)].end(), host.begin() + c * fan,
                                                host.begin() + (c + 1) * fan);
    }
    return rows;
}

Tensor constant_row(int64_t n, float value, Device device) {
    return Tensor::from_host(std::vector<float>(static_cast<size_t>(n), value), Shape{1, n}, device);
}

}  // namespace

IsingEnergy::IsingEnergy(MaskSpace& space, IsingOptions options) : space_(space), options_(options) {
    SP_REQUIRE(space.granularity() == Granularity::filter,
               "ising energy: needs filter/neuron units (granularity = \"filter\"), got " << granularity_name(space.granularity()));
    SP_REQUIRE(options.bins >= 2, "ising energy: bins must be at least 2, got " << options.bins);
    SP_REQUIRE(options.keep_target >= 0 && options.keep_target <= 1,
               "ising energy: keep_target must be in [0, 1], got " << options.keep_target);
    SP_REQUIRE(options.penalty >= 0, "ising energy: penalty must be non-negative, got " << options.penalty);
}

void IsingEnergy::update_couplings(Context& ctx, const Tensor& images) {
    const int64_t d = space_.size();
    const auto& segments = space_.segments();
    std::vector<float> j(static_cast<size_t>(d * d), 0.0f);
    auto at = [&](int64_t row, int64_t col) -> float& { return j[static_cast<size_t>(row * d + col)]; };

    // Within a segment: min-max normalised divergence between the filters' weight histograms.
    for (const MaskSegment& seg : segments) {
        const auto rows = filter_weights(space_.model(), seg);
        float lo = INFINITY, hi = -INFINITY;
        for (const auto& r : rows)
            for (float v : r) lo = std::min(lo, v), hi = std::max(hi, v);
        std::vector<std::vector<double>> hist;
        for (const auto& r : rows)
            hist.push_back(smoothed_histogram(r.data(), static_cast<int64_t>(r.size()), lo, hi, options_.bins));
        std::vector<double> div(static_cast<size_t>(seg.size * seg.size), 0.0);
        double dmin = INFINITY, dmax = -INFINITY;
        for (int64_t a = 0; a < seg.size; ++a)
            for (int64_t b = a + 1; b < seg.size; ++b) {
                const double v = symmetric_kl(hist[static_cast<size_t>(a)], hist[static_cast<size_t>(b)]);
                div[static_cast<size_t>(a * seg.size + b)] = v;
                dmin = std::min(dmin, v), dmax = std::max(dmax, v);
            }
        if (!(dmax > dmin)) continue;  // fewer than two filters, or all alike: no coupling
        for (int64_t a = 0; a < seg.size; ++a)
            for (int64_t b = a + 1; b < seg.size; ++b) {
                const auto v = static_cast<float>((div[static_cast<size_t>(a * seg.size + b)] - dmin) / (dmax - dmin));
                at(seg.offset + a, seg.offset + b) = at(seg.offset + b, seg.offset + a) = v;
            }
    }

    // Between consecutive segments: products of the channels' activation entropies.
    space_.detach();
    std::vector<double> entropy(static_cast<size_t>(d), 0.0);
    FeatureScoreOptions fo;
    fo.images = fo.batch_size = images.dim(0);
    visit_feature_maps(ctx, space_, images, fo, [&](size_t index, const Tensor& maps) {
        const MaskSegment& seg = segments[index];
        const std::vector<float> host = maps.to_host();  // (B, C, H, W)
        const int64_t b = maps.dim(0), c = maps.dim(1), hw = maps.dim(2) * maps.dim(3);
        std::vector<float> channel(static_cast<size_t>(b * hw));
        for (int64_t ch = 0; ch < c; ++ch) {
            for (int64_t n = 0; n < b; ++n)
                std::copy_n(host.begin() + (n * c + ch) * hw, hw, channel.begin() + n * hw);
            entropy[static_cast<size_t>(seg.offset + ch)] = normalised_entropy(channel, options_.bins);
        }
    });
    std::map<int, const MaskSegment*> segment_of_set;
    for (const MaskSegment& seg : segments) segment_of_set[seg.set] = &seg;
    for (const LayerWiring& w : space_.model().wiring()) {
        auto from = segment_of_set.find(w.in_set), to = segment_of_set.find(w.out_set);
        if (from == segment_of_set.end() || to == segment_of_set.end() || from == to) continue;
        for (int64_t a = 0; a < from->second->size; ++a)
            for (int64_t b = 0; b < to->second->size; ++b) {
                const int64_t i = from->second->offset + a, k = to->second->offset + b;
                at(i, k) = at(k, i) = static_cast<float>(entropy[static_cast<size_t>(i)] * entropy[static_cast<size_t>(k)]);
            }
    }
    set_couplings(ctx, j);
}

void IsingEnergy::set_couplings(Context& ctx, const std::vector<float>& couplings) {
    const int64_t d = space_.size();
    SP_REQUIRE(static_cast<int64_t>(couplings.size()) == d * d,
               "ising energy: couplings must be " << d << " x " << d << ", got " << couplings.size() << " values");
    std::vector<double> rows(static_cast<size_t>(d), 0.0);
    double total = 0;
    for (int64_t a = 0; a < d; ++a)
        for (int64_t b = 0; b < d; ++b) rows[static_cast<size_t>(a)] += couplings[static_cast<size_t>(a * d + b)];
    for (double r : rows) total += r;
    total_ = total > 0 ? total : 1.0;  // no couplings at all: the field and the penalty remain
    std::vector<float> field(static_cast<size_t>(d));
    for (int64_t a = 0; a < d; ++a)
        field[static_cast<size_t>(a)] =
            static_cast<float>((4 * rows[static_cast<size_t>(a)] + 2 * total / static_cast<double>(d)) / total_);
    const Device device = ctx.device();
    couplings_ = Tensor::from_host(couplings, Shape{d, d}, device);
    quadratic_row_ = constant_row(d, static_cast<float>(-4 / total_), device);
    field_row_ = Tensor::from_host(field, Shape{1, d}, device);
    field_constant_ = Tensor::from_host({total > 0 ? -2.0f : 0.0f}, Shape{1}, device);
    keep_row_ = constant_row(d, static_cast<float>(-options_.penalty / static_cast<double>(d)), device);
    keep_constant_ = Tensor::from_host({static_cast<float>(options_.penalty * options_.keep_target)}, Shape{1}, device);
}

void IsingEnergy::evaluate(Context& ctx, const Tensor& population, Tensor& energies) const {
    SP_REQUIRE(ready(), "ising energy: no couplings yet (update_couplings first)");
    const int64_t p = population.dim(0), d = space_.size();
    SP_REQUIRE(population.shape() == Shape({p, d}) && energies.shape() == Shape{p},
               "ising energy: population must be (P, " << d << ") and energies (P), got " << population.shape().str()
                                                       << " and " << energies.shape().str());
    const Device device = population.device();
    Tensor xj(Shape{p, d}, device);  // x J (J symmetric)
    linear_forward(ctx, population, couplings_, nullptr, xj);
    multiply(ctx, xj, population, xj);
    Tensor interaction(Shape{p, 1}, device), field(Shape{p, 1}, device), shortfall(Shape{p, 1}, device);
    linear_forward(ctx, xj, quadratic_row_, nullptr, interaction);               // −(4/Z) xᵀJx
    linear_forward(ctx, population, field_row_, &field_constant_, field);        // cᵀx − 2
    linear_forward(ctx, population, keep_row_, &keep_constant_, shortfall);      // penalty · (target − Σx / D)
    relu_forward(ctx, shortfall, shortfall);
    add(ctx, interaction, field, interaction);
    Tensor out = energies.reshaped(Shape{p, 1});
    add(ctx, interaction, shortfall, out);
}

double IsingEnergy::energy_host(const std::vector<float>& state) const {
    // Straight from the definition, in spins.
    const std::vector<float> j = couplings_host();
    const auto d = static_cast<int64_t>(state.size());
    SP_REQUIRE(d == space_.size(), "ising energy: state has " << d << " units, the mask space " << space_.size());
    double total = 0, interaction = 0, magnetisation = 0, kept = 0;
    for (int64_t a = 0; a < d; ++a) {
        const double sa = 2.0 * state[static_cast<size_t>(a)] - 1.0;
        magnetisation += sa;
        kept += state[static_cast<size_t>(a)];
        for (int64_t b = 0; b < d; ++b) {
            const double jab = j[static_cast<size_t>(a * d + b)];
            total += jab;
            interaction += jab * sa * (2.0 * state[static_cast<size_t>(b)] - 1.0);
        }
    }
    const double z = total > 0 ? total : 1.0;
    return (-interaction + total / static_cast<double>(d) * magnetisation) / z +
           options_.penalty * std::max(options_.keep_target - kept / static_cast<double>(d), 0.0);
}

BudgetEnergy::BudgetEnergy(Context& ctx, MaskSpace& space, PruneTarget target, double weight)
    : target_(target), weight_(weight) {
    SP_REQUIRE(space.granularity() == Granularity::filter,
               "budget energy: needs filter/neuron units (granularity = \"filter\"), got " << granularity_name(space.granularity()));
    SP_REQUIRE(target.keep > 0 && target.keep <= 1, "budget energy: keep must be in (0, 1], got " << target.keep);
    SP_REQUIRE(weight >= 0, "budget energy: weight must be non-negative, got " << weight);
    const auto& segments = space.segments();
    const auto s = static_cast<int64_t>(segments.size());
    const int64_t d = space.size();

    // cost(n): the state keeping the first n[s] units of every segment, counted by account().
    std::vector<float> state(static_cast<size_t>(d), 0.0f);
    auto cost = [&](std::vector<int64_t> counts) {
        std::fill(state.begin(), state.end(), 0.0f);
        for (int64_t k = 0; k < s; ++k)
            std::fill_n(state.begin() + segments[static_cast<size_t>(k)].offset, counts[static_cast<size_t>(k)], 1.0f);
        const ModelAccount a = account(space, state);
        return static_cast<double>(target.kind == BudgetKind::params ? a.params : a.macs);
    };
    const ModelAccount dense = account(space, space.all_kept());
    const double total = static_cast<double>(target.kind == BudgetKind::params ? dense.params_dense : dense.macs_dense);
    SP_REQUIRE(total > 0, "budget energy: the model has no " << (target.kind == BudgetKind::params ? "parameters" : "MACs"));

    // Read the coefficients off the polynomial: c0 = f(0), f(e_k) and f(2 e_k) give a_k and
    // B_kk, f(e_k + e_l) gives B_kl.
    std::vector<int64_t> n(static_cast<size_t>(s), 0);
    const double c0 = cost(n);
    std::vector<double> single(static_cast<size_t>(s)), lin(static_cast<size_t>(s)), quad(static_cast<size_t>(s * s), 0.0);
    for (int64_t k = 0; k < s; ++k) {
        n[static_cast<size_t>(k)] = 1;
        single[static_cast<size_t>(k)] = cost(n);
        double q = 0;
        if (segments[static_cast<size_t>(k)].size >= 2) {
            n[static_cast<size_t>(k)] = 2;
            q = (cost(n) - 2 * single[static_cast<size_t>(k)] + c0) / 2;
        }
        n[static_cast<size_t>(k)] = 0;
        quad[static_cast<size_t>(k * s + k)] = q;
        lin[static_cast<size_t>(k)] = single[static_cast<size_t>(k)] - c0 - q;
    }
    for (int64_t k = 0; k < s; ++k)
        for (int64_t l = k + 1; l < s; ++l) {
            n[static_cast<size_t>(k)] = n[static_cast<size_t>(l)] = 1;
            const double b = cost(n) - single[static_cast<size_t>(k)] - single[static_cast<size_t>(l)] + c0;
            n[static_cast<size_t>(k)] = n[static_cast<size_t>(l)] = 0;
            quad[static_cast<size_t>(k * s + l)] = quad[static_cast<size_t>(l * s + k)] = b / 2;
        }

    std::vector<float> indicator(static_cast<size_t>(s * d), 0.0f), a(static_cast<size_t>(s)), b(quad.size());
    for (int64_t k = 0; k < s; ++k) {
        const MaskSegment& seg = segments[static_cast<size_t>(k)];
        std::fill_n(indicator.begin() + k * d + seg.offset, seg.size, 1.0f);
        a[static_cast<size_t>(k)] = static_cast<float>(lin[static_cast<size_t>(k)] / total);
    }
    for (size_t i = 0; i < quad.size(); ++i) b[i] = static_cast<float>(quad[i] / total);
    const Device device = ctx.device();
    segment_indicator_ = Tensor::from_host(indicator, Shape{s, d}, device);
    linear_ = Tensor::from_host(a, Shape{1, s}, device);
    quadratic_ = Tensor::from_host(b, Shape{s, s}, device);
    ones_ = constant_row(s, 1.0f, device);
    constant_ = Tensor::from_host({static_cast<float>(c0 / total)}, Shape{1}, device);
    constant_minus_budget_ = Tensor::from_host({static_cast<float>(c0 / total - target.keep)}, Shape{1}, device);
}

void BudgetEnergy::quadratic_cost(Context& ctx, const Tensor& population, const Tensor& constant, Tensor& out) const {
    const int64_t p = population.dim(0), s = linear_.dim(1);
    SP_REQUIRE(population.rank() == 2 && population.dim(1) == segment_indicator_.dim(1),
               "budget energy: population must be (P, " << segment_indicator_.dim(1) << "), got "
                                                        << population.shape().str());
    const Device device = population.device();
    Tensor counts(Shape{p, s}, device), bn(Shape{p, s}, device), quadratic(Shape{p, 1}, device);
    linear_forward(ctx, population, segment_indicator_, nullptr, counts);  // n = S x
    linear_forward(ctx, counts, quadratic_, nullptr, bn);                  // B n (B symmetric)
    multiply(ctx, bn, counts, bn);
    linear_forward(ctx, bn, ones_, nullptr, quadratic);                    // nᵀ B n
    linear_forward(ctx, counts, linear_, &constant, out);                  // aᵀ n + constant
    add(ctx, out, quadratic, out);
}

void BudgetEnergy::cost_fractions(Context& ctx, const Tensor& population, Tensor& fractions) const {
    SP_REQUIRE(fractions.shape() == Shape{population.dim(0)}, "budget energy: fractions must be (P)");
    Tensor out = fractions.reshaped(Shape{population.dim(0), 1});
    quadratic_cost(ctx, population, constant_, out);
}

void BudgetEnergy::add_to(Context& ctx, const Tensor& population, Tensor& energies) const {
    const int64_t p = population.dim(0);
    SP_REQUIRE(energies.shape() == Shape{p}, "budget energy: energies must be (" << p << "), got " << energies.shape().str());
    Tensor excess(Shape{p, 1}, population.device());
    quadratic_cost(ctx, population, constant_minus_budget_, excess);
    relu_forward(ctx, excess, excess);
    Tensor out = energies.reshaped(Shape{p, 1});
    axpy(ctx, static_cast<float>(weight_), excess, out);
}

}  // namespace sp
