// The importance scorers of the baselines and of the feature-map methods (energy-aware, HRank),
// and the one loop over filter weights that the L1 / L2 norms (and round_to) share.
#include "pruning/importance.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "kernels/error.h"
#include "kernels/philox.h"
#include "nn/layers.h"
#include "pruning/feature_scores.h"

namespace sp {

namespace {

constexpr uint64_t kPurposeRandomBaseline = 0x7072'756e'6572'6e64ull;  // "prunernd"

Tensor layer_weight(const LayerWiring& w) { return w.conv ? w.conv->weight() : w.linear->weight(); }

std::vector<float> random_scores(const ScoreInput& in) {
    std::vector<float> scores(static_cast<size_t>(in.space.size()));
    const uint64_t key = random_stream_key(in.seed, kPurposeRandomBaseline, 0);
    for (size_t i = 0; i < scores.size(); ++i) scores[i] = stream_uniform(key, i);
    return scores;
}

std::vector<float> magnitude_scores(const ScoreInput& in) {
    std::vector<float> scores(static_cast<size_t>(in.space.size()), 0.0f);
    for (const MaskSegment& seg : in.space.segments()) {
        const std::vector<float> weight = layer_weight(in.space.model().wiring()[static_cast<size_t>(seg.layer)]).to_host();
        for (int64_t i = 0; i < seg.size; ++i) scores[static_cast<size_t>(seg.offset + i)] = std::fabs(weight[static_cast<size_t>(i)]);
    }
    return scores;
}

double l1_norm(const float* row, int64_t n) {
    double acc = 0.0;
    for (int64_t i = 0; i < n; ++i) acc += std::fabs(static_cast<double>(row[i]));
    return acc;
}

double l2_norm(const float* row, int64_t n) {
    double acc = 0.0;
    for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(row[i]) * row[i];
    return std::sqrt(acc);
}

std::vector<float> l1_scores(const ScoreInput& in) { return filter_row_scores(in.space, l1_norm); }
std::vector<float> l2_scores(const ScoreInput& in) { return filter_row_scores(in.space, l2_norm); }

// Network slimming prunes BN channels only: a layer without BN (e.g. a hidden linear layer) keeps
// all its units (score +∞).
std::vector<float> bn_scale_scores(const ScoreInput& in) {
    std::vector<float> scores(static_cast<size_t>(in.space.size()), 0.0f);
    for (const MaskSegment& seg : in.space.segments())
        for (const LayerWiring& w : in.space.model().wiring()) {
            if (w.out_set != seg.set) continue;
            if (w.bn) {
                const std::vector<float> gamma = w.bn->gamma().to_host();
                for (int64_t c = 0; c < seg.size; ++c) scores[static_cast<size_t>(seg.offset + c)] += std::fabs(gamma[static_cast<size_t>(c)]);
            } else {
                for (int64_t c = 0; c < seg.size; ++c)
                    scores[static_cast<size_t>(seg.offset + c)] = std::numeric_limits<float>::infinity();
            }
        }
    return scores;
}

std::vector<float> map_scores(const ScoreInput& in, FeatureCriterion criterion) {
    FeatureScoreOptions o;
    o.criterion = criterion;
    o.images = in.images->dim(0);
    o.post_relu = in.post_relu;
    o.on_batch = in.on_progress;
    return feature_map_scores(in.ctx, in.space, *in.images, o);
}

std::vector<float> nuclear_scores(const ScoreInput& in) { return map_scores(in, FeatureCriterion::nuclear_norm); }
std::vector<float> rank_scores(const ScoreInput& in) { return map_scores(in, FeatureCriterion::rank); }

}  // namespace

const Importance random_importance{"random", "a uniform random number per unit (Philox, keyed by the seed)",
                                   {Granularity::filter, Granularity::weight, Granularity::kernel}, false, random_scores};
const Importance magnitude_importance{"magnitude", "|w| of each weight", {Granularity::weight}, false, magnitude_scores};
const Importance l1_importance{"l1", "L1 norm of each filter's weights (summed over the layers writing the channel)",
                               {Granularity::filter}, false, l1_scores};
const Importance l2_importance{"l2", "L2 norm of each filter's weights (summed over the layers writing the channel)",
                               {Granularity::filter}, false, l2_scores};
const Importance bn_scale_importance{"bn-scale", "|gamma| of each channel's batch norm; channels without one are kept",
                                     {Granularity::filter}, false, bn_scale_scores};
const Importance nuclear_importance{"nuclear", "mean nuclear norm of each channel's feature maps over the scoring images",
                                    {Granularity::filter}, true, nuclear_scores};
const Importance rank_importance{"rank", "mean numerical rank of each channel's feature maps over the scoring images",
                                 {Granularity::filter}, true, rank_scores};

std::vector<float> importance_scores(const Importance& importance, const ScoreInput& in, const std::string& who) {
    const Granularity g = in.space.granularity();
    bool scores_it = false;
    for (Granularity a : importance.granularities) scores_it = scores_it || a == g;
    if (!scores_it) {
        std::ostringstream names;
        for (Granularity a : importance.granularities) names << (names.tellp() ? " or " : "") << "\"" << granularity_name(a) << "\"";
        fail("prune: " + who + " needs granularity = " + names.str() + ", got " + granularity_name(g), __FILE__, __LINE__);
    }
    SP_REQUIRE(!importance.needs_data || (in.images && in.images->defined() && in.images->dim(0) > 0 && in.labels),
               "prune: " << who << " scores from data: no scoring images were given");
    std::vector<float> scores = importance.scores(in);
    SP_REQUIRE(static_cast<int64_t>(scores.size()) == in.space.size(),
               "prune: " << who << " gave " << scores.size() << " scores for " << in.space.size() << " units");
    return scores;
}

std::vector<float> filter_row_scores(MaskSpace& space, double (*per_filter)(const float* row, int64_t n)) {
    SP_REQUIRE(space.granularity() == Granularity::filter,
               "filter scores: need a filter-granularity space, got " << granularity_name(space.granularity()));
    std::vector<double> scores(static_cast<size_t>(space.size()), 0.0);
    Model& model = space.model();
    for (const MaskSegment& seg : space.segments())
        for (const LayerWiring& w : model.wiring()) {
            if (w.out_set != seg.set) continue;
            const Tensor weight = layer_weight(w);
            const std::vector<float> host = weight.to_host();
            SP_REQUIRE(weight.dim(0) == seg.size, "filter scores: layer " << w.name << " writes " << weight.dim(0)
                                                                          << " channels into set " << seg.name << " of " << seg.size);
            const int64_t fan = weight.numel() / weight.dim(0);
            for (int64_t c = 0; c < seg.size; ++c)
                scores[static_cast<size_t>(seg.offset + c)] += per_filter(host.data() + c * fan, fan);
        }
    return std::vector<float>(scores.begin(), scores.end());
}

}  // namespace sp
