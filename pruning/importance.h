// Importance scorers: one score per unit of a mask space (higher = more important), kept apart
// from how the units are then chosen (pruning/baselines.h: the same fraction of every layer or one
// global ranking, to a budget or at fixed per-layer rates), as Torch-Pruning separates importance
// from the pruner. Each scorer is one `Importance` object; a pruning method that scores once names
// its scorer and its selection in the method registry (train/method_list.inc).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "nn/context.h"
#include "nn/tensor.h"
#include "pruning/mask_space.h"

namespace sp {

// What a scorer may read.
struct ScoreInput {
    Context& ctx;
    MaskSpace& space;  // its model's weights
    uint64_t seed = 1;
    // Scorers that need data: training images (N, C, H, W), normalised, on ctx's device, and their
    // labels (N).
    const Tensor* images = nullptr;
    const Tensor* labels = nullptr;
    bool post_relu = true;  // feature-map scorers: the map after ReLU, else the BN output
    // Scorers that read data call it with the images scored so far and the total (progress).
    std::function<void(int64_t done, int64_t total)> on_progress = nullptr;
};

struct Importance {
    const char* name;
    const char* doc;  // one line: what the score of a unit is
    std::vector<Granularity> granularities;  // the mask spaces it scores
    bool needs_data = false;  // reads ScoreInput::images and labels
    std::vector<float> (*scores)(const ScoreInput& in) = nullptr;
};

// `importance`'s scores of every unit of in.space (host, one per unit), after checking that it
// scores the space's granularity (an error naming `who`, e.g. the method) and has its data.
std::vector<float> importance_scores(const Importance& importance, const ScoreInput& in, const std::string& who);

// The scorers of the existing methods; each further scorer is defined in its own file.
extern const Importance random_importance;     // uniform random scores (seeded Philox)
extern const Importance magnitude_importance;  // |w| of every weight
extern const Importance l1_importance;         // L1 norm of each filter's weights
extern const Importance l2_importance;         // L2 norm of each filter's weights
extern const Importance bn_scale_importance;   // |γ| of each channel's batch norm
extern const Importance nuclear_importance;    // mean nuclear norm of each channel's feature maps
extern const Importance rank_importance;       // mean numerical rank of each channel's feature maps

// The per-unit sum, over the layers writing each channel set of a filter-granularity space, of
// `per_filter(row values, count)` over each layer's output rows (conv (K, C/g·R·S), linear (OUT, IN)):
// the shared loop of the filter-weight scorers.
std::vector<float> filter_row_scores(MaskSpace& space, double (*per_filter)(const float* row, int64_t n));

}  // namespace sp
