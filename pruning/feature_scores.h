// Data-driven filter importance for the energy-aware pruning (docs/methods.md, energy-aware): the mean nuclear
// norm (sum of singular values) of each channel's feature maps over a set of images, HRank's
// mean numerical rank, and, as data-free references, the L1/L2 norms of the filter weights.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "nn/context.h"
#include "nn/ops.h"
#include "nn/tensor.h"
#include "pruning/mask_space.h"

namespace sp {

enum class FeatureCriterion { nuclear_norm, rank, l1, l2 };
FeatureCriterion feature_criterion_from_name(const std::string& name);  // "nuclear" | "rank" | "l1" | "l2"
const char* feature_criterion_name(FeatureCriterion c);

struct FeatureScoreOptions {
    FeatureCriterion criterion = FeatureCriterion::nuclear_norm;
    int64_t images = 640;      // the first min(images, N) images are used (5 batches of 128)
    int64_t batch_size = 128;  // images per forward
    // Score the map after ReLU (the energy-aware paper as we read it, and HRank), else the BN output itself.
    bool post_relu = true;
    // Called after each batch with the images scored so far and the total (progress lines).
    std::function<void(int64_t done, int64_t total)> on_batch = nullptr;
};

// The singular values of the maps come from map_singular_values, an op of nn/ops.h.

// out (C) = mean over the N images of the nuclear norm ‖F_{n,c}‖_* of maps (N, C, H, W).
void nuclear_norms(Context& ctx, const Tensor& maps, bool relu, Tensor& out);
// out (C) = mean over the N images of the numerical rank of F_{n,c}: the number of singular
// values above max(H, W) · σ_max · ε_float (HRank; numpy's matrix_rank rule for float32).
void map_ranks(Context& ctx, const Tensor& maps, bool relu, Tensor& out);

// Unit scores (higher = more important) for a filter-granularity space, one per unit on the
// host. nuclear_norm / rank: runs the model in eval mode (restored afterwards) on the first
// o.images of `images` (N, C, H, W) — on ctx's device, already normalised — and scores channel c
// of each segment on the output of the BN of the layer writing the set (the layer's own output
// when it has no BN; a linear layer's neurons are 1×1 maps). An attached single state gates as
// usual (gated channels score 0 with gate_after_bn); populations are rejected. Only layer-output
// segments are supported: a residual group's map would be its block output, which the wiring
// does not expose. l1 / l2: the norm of each channel's filter weights (stored weights, masks
// ignored) summed over the layers writing the set; `images` is not read.
// The forward behind the data-driven scores: runs the model in eval mode (restored afterwards)
// on the first o.images of `images`, o.batch_size at a time, and after each forward hands
// every segment's map — the output of the BN of the layer writing the set (B, C, H, W); a linear
// layer's neurons as (B, F, 1, 1); before any ReLU — to `visit`. Same conditions as below.
void visit_feature_maps(Context& ctx, MaskSpace& space, const Tensor& images, const FeatureScoreOptions& o,
                        const std::function<void(size_t segment, const Tensor& maps)>& visit);

std::vector<float> feature_map_scores(Context& ctx, MaskSpace& space, const Tensor& images,
                                      const FeatureScoreOptions& o);

}  // namespace sp
