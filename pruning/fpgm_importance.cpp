// FPGM importance (He et al., Filter Pruning via Geometric Median for Deep Convolutional Neural
// Networks Acceleration, CVPR 2019): a filter close to the geometric median of its layer's filters
// is the one the others can stand in for. Its score is the sum of Euclidean distances from it to
// every filter of the same layer, the quantity the geometric median minimises; the smallest sums
// are pruned. Where several layers write one channel set (residual blocks), the channel's score is
// the sum over those layers, as for the filter norms.
#include <cmath>
#include <vector>

#include "kernels/error.h"
#include "nn/layers.h"
#include "pruning/importance.h"

namespace sp {

namespace {

std::vector<float> fpgm_scores(const ScoreInput& in) {
    MaskSpace& space = in.space;
    std::vector<double> scores(static_cast<size_t>(space.size()), 0.0);
    for (const MaskSegment& seg : space.segments())
        for (const LayerWiring& w : space.model().wiring()) {
            if (w.out_set != seg.set) continue;
            const Tensor weight = w.conv ? w.conv->weight() : w.linear->weight();
            SP_REQUIRE(weight.dim(0) == seg.size, "fpgm: layer " << w.name << " writes " << weight.dim(0)
                                                                 << " channels into set " << seg.name << " of " << seg.size);
            const std::vector<float> host = weight.to_host();
            const int64_t fan = weight.numel() / weight.dim(0);
            auto row = [&](int64_t k) { return host.data() + k * fan; };
            for (int64_t i = 0; i < seg.size; ++i)
                for (int64_t j = i + 1; j < seg.size; ++j) {
                    double squared = 0.0;
                    for (int64_t e = 0; e < fan; ++e) {
                        const double d = static_cast<double>(row(i)[e]) - row(j)[e];
                        squared += d * d;
                    }
                    const double distance = std::sqrt(squared);
                    scores[static_cast<size_t>(seg.offset + i)] += distance;
                    scores[static_cast<size_t>(seg.offset + j)] += distance;
                }
        }
    return std::vector<float>(scores.begin(), scores.end());
}

}  // namespace

extern const Importance fpgm_importance{"fpgm",
                                        "sum of Euclidean distances from each filter to the other filters of its layer "
                                        "(near the geometric median = redundant)",
                                        {Granularity::filter}, false, fpgm_scores};

}  // namespace sp
