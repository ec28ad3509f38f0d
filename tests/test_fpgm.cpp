// FPGM importance: each filter's score is its summed Euclidean distance to the other filters of
// its layer, so the filters nearest the layer's geometric median are pruned first.
#include <doctest/doctest.h>

#include <cmath>

#include "harness.h"
#include "nn/layers.h"
#include "pruning/baselines.h"
#include "pruning/mask_space.h"
#include "train/methods.h"

using namespace sp;

TEST_CASE("fpgm: filters on a line score their summed distances; the middle ones (nearest the median) go first") {
    auto model = make_model("lenet", 1, 28, 28, 10);
    model->allocate(Device::cpu, 5);
    MaskSpace space(*model, MaskSpaceOptions{});
    Context ctx(Device::cpu, 1);
    // conv1's filters on one line through the origin: filter k = (k + 1)·v, so ‖f_i − f_j‖ = |i − j|·‖v‖
    // and filter i scores ‖v‖·Σ_j |i − j|, smallest at the median index.
    const LayerWiring& conv1 = model->wiring()[0];
    Tensor weight = conv1.conv->weight();
    const int64_t filters = weight.dim(0), fan = weight.numel() / filters;
    const std::vector<float> v = test::random_values(fan, 3);
    double norm = 0.0;
    for (float x : v) norm += static_cast<double>(x) * x;
    norm = std::sqrt(norm);
    std::vector<float> line(static_cast<size_t>(weight.numel()));
    for (int64_t k = 0; k < filters; ++k)
        for (int64_t e = 0; e < fan; ++e) line[static_cast<size_t>(k * fan + e)] = static_cast<float>(k + 1) * v[static_cast<size_t>(e)];
    weight.copy_from(Tensor::from_host(line, weight.shape(), Device::cpu));

    const PruneMethod& fpgm = *find_method("fpgm");
    const std::vector<float> scores = importance_scores(*fpgm.importance, ScoreInput{ctx, space, 1}, "fpgm");
    const MaskSegment* seg = nullptr;
    for (const MaskSegment& s : space.segments())
        if (s.set == conv1.out_set) seg = &s;
    REQUIRE(seg);
    REQUIRE(seg->size == filters);
    for (int64_t i = 0; i < filters; ++i) {
        double expected = 0.0;
        for (int64_t j = 0; j < filters; ++j) expected += std::fabs(static_cast<double>(i - j));
        expected *= norm;
        // Each distance is a float32 difference of scaled values summed in double: relative error
        // a few units of float32 roundoff.
        CHECK(scores[static_cast<size_t>(seg->offset + i)] == doctest::Approx(expected).epsilon(1e-5));
    }

    // Per layer, the same fraction goes and the pruned filters are the most central ones.
    const std::vector<float> state = scored_state(fpgm, ScoreInput{ctx, space, 1}, PruneTarget{BudgetKind::params, 0.6});
    int64_t kept = 0;
    for (int64_t i = 0; i < filters; ++i) {
        const bool keeps = state[static_cast<size_t>(seg->offset + i)] != 0.0f;
        kept += keeps;
        for (int64_t j = 0; j < filters && !keeps; ++j)  // a pruned filter is no farther out than a kept one
            if (state[static_cast<size_t>(seg->offset + j)] != 0.0f)
                CHECK(std::abs(2 * i - (filters - 1)) <= std::abs(2 * j - (filters - 1)));
    }
    CHECK(kept > 0);
    CHECK(kept < filters);
    CHECK(state[static_cast<size_t>(seg->offset + filters / 2)] == 0.0f);  // a median filter is pruned

    MaskSpaceOptions weights;
    weights.granularity = Granularity::weight;
    MaskSpace weight_space(*model, weights);
    CHECK_THROWS_WITH_AS(importance_scores(*fpgm.importance, ScoreInput{ctx, weight_space, 1}, "fpgm"),
                         doctest::Contains("needs granularity = \"filter\""), Error);
}
