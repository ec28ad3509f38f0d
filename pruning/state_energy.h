// Energy terms that depend on a filter-granularity mask state alone, not on a batch's logits
// (docs/methods.md, edropout): the Ising energy of the authors' "Ising pruning" paper and the budget term
// that lets a user ask EDropout for a size. Both are quadratic forms of the state, so a whole
// population (P, D) is evaluated on its device with a few GEMMs and elementwise ops — no host
// round trip per generation.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/context.h"
#include "nn/tensor.h"
#include "pruning/baselines.h"
#include "pruning/mask_space.h"

namespace sp {

// The Ising energy of the spins s = 2x − 1 (x ∈ {0, 1}^D, 1 = kept), J symmetric, zero on the
// diagonal, Z = 1ᵀ J 1:
//   H(x) = (−sᵀ J s + (Z / D) · 1ᵀ s) / Z + penalty · max(keep_target − 1ᵀ x / D, 0).
// Keeping every unit costs 0, pruning every unit −2 (+ the penalty): the field pushes units
// out, the couplings keep coupled units on the same side, the penalty stops the pruning at the
// target fraction. Dividing by Z (the scale is not given) makes the energy O(1) for
// any model, so one penalty weight serves all ("large": ≫ 2). J is block-sparse:
//   within a segment (one layer's filters): the min-max normalised symmetric KL divergence
//     between the filters' weight histograms;
//   between consecutive segments s → t (a layer reads s and writes t): J_ij = h_i · h_j, with
//     h the normalised entropy (in [0, 1]) of each channel's activation histogram on a batch.
// Our reading of the authors' description; the paper gives no closed form for the second block.
struct IsingOptions {
    double keep_target = 0.5;  // fraction of units below which the penalty applies
    double penalty = 100.0;    // its weight ("large")
    int64_t bins = 32;         // histogram bins for weight distributions and activations
};

class IsingEnergy {
public:
    IsingEnergy(MaskSpace& space, IsingOptions options);

    // Recomputes J from the current weights and the feature maps of `images` (N, C, H, W), on
    // ctx's device and normalised (one eval-mode forward of the dense model: detach masks first).
    void update_couplings(Context& ctx, const Tensor& images);
    bool ready() const { return couplings_.defined(); }

    // The couplings (D × D, row-major) on the host, and H of one state computed from them
    // term by term in double: the reference of the batched evaluation.
    std::vector<float> couplings_host() const { return couplings_.to_host(); }
    double energy_host(const std::vector<float>& state) const;

    // Sets H(x_p) into energies (P) for population (P, D), on ctx's device.
    void evaluate(Context& ctx, const Tensor& population, Tensor& energies) const;

    // Resume: the couplings as they were (a state of the search, computed on an earlier batch).
    const Tensor& couplings() const { return couplings_; }
    void set_couplings(Context& ctx, const std::vector<float>& couplings);

private:
    MaskSpace& space_;
    IsingOptions options_;
    // In x: H = −(4/Z) xᵀJx + cᵀx − 2 + penalty term, c_i = (4 (J1)_i + 2Z/D) / Z.
    Tensor couplings_;       // J (D, D)
    double total_ = 0;       // Z
    Tensor quadratic_row_;   // (1, D) of −4/Z: Σ_d (xJ ⊙ x)_d scaled
    Tensor field_row_;       // c (1, D)
    Tensor field_constant_;  // (1): −2
    Tensor keep_row_;        // (1, D) of −penalty / D
    Tensor keep_constant_;   // (1): penalty · keep_target
};

// λ · max(cost(x) / cost_dense − budget, 0): cost = parameters or MACs of the model under the
// state, exactly as account() counts them. A channel's cost depends only on how many channels
// of each set are kept, and is at most bilinear in those counts (a conv's weights = kept in ·
// kept out · k²), so cost(x) = c₀ + aᵀ n + nᵀ B n with n = S x the kept count per segment; the
// coefficients are read off account() once at construction.
class BudgetEnergy {
public:
    BudgetEnergy(Context& ctx, MaskSpace& space, PruneTarget target, double weight);

    // energies (P) += λ · max(cost_fraction(x_p) − budget, 0) for population (P, D).
    void add_to(Context& ctx, const Tensor& population, Tensor& energies) const;
    // The cost fraction of every member (P), from the quadratic form (for tests and logs).
    void cost_fractions(Context& ctx, const Tensor& population, Tensor& fractions) const;

    const PruneTarget& target() const { return target_; }

private:
    // out (P, 1) = aᵀ n + nᵀ B n + constant, n = S x
    void quadratic_cost(Context& ctx, const Tensor& population, const Tensor& constant, Tensor& out) const;

    PruneTarget target_;
    double weight_;
    Tensor segment_indicator_;  // S (segments, D): 1 where unit d belongs to the segment
    Tensor linear_;             // a (1, segments), divided by the dense cost
    Tensor constant_;           // (1): c₀ / dense cost
    Tensor constant_minus_budget_;  // (1): c₀ / dense cost − keep
    Tensor quadratic_;          // B (segments, segments), symmetric, divided by the dense cost
    Tensor ones_;               // (1, segments)
};

}  // namespace sp
