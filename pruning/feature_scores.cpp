// Feature-map scores: the batched singular values of the maps (the map_singular_values op, CPU
// Jacobi or cuSOLVER), reduced per channel on the host, read from the model's BN outputs.
#include "pruning/feature_scores.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "kernels/error.h"
#include "nn/layers.h"
#include "pruning/importance.h"

namespace sp {

FeatureCriterion feature_criterion_from_name(const std::string& name) {
    if (name == "nuclear" || name == "nuclear_norm") return FeatureCriterion::nuclear_norm;
    if (name == "rank") return FeatureCriterion::rank;
    if (name == "l1") return FeatureCriterion::l1;
    if (name == "l2") return FeatureCriterion::l2;
    SP_REQUIRE(false, "feature criterion: unknown '" << name << "' (nuclear | rank | l1 | l2)");
}

const char* feature_criterion_name(FeatureCriterion c) {
    switch (c) {
        case FeatureCriterion::nuclear_norm: return "nuclear";
        case FeatureCriterion::rank: return "rank";
        case FeatureCriterion::l1: return "l1";
        case FeatureCriterion::l2: return "l2";
    }
    return "?";
}

namespace {

// Adds, per channel, the nuclear norm or numerical rank of every map of maps (N, C, H, W).
void accumulate_map_scores(Context& ctx, const Tensor& maps, FeatureCriterion criterion, bool relu,
                           std::vector<double>& sums) {
    const int64_t n = maps.dim(0), c = maps.dim(1), k = std::min(maps.dim(2), maps.dim(3));
    Tensor sigma(Shape{n, c, k}, ctx.device());  // (N, C, K)
    map_singular_values(ctx, maps, relu, sigma);
    const std::vector<float> s = sigma.to_host();
    const double rank_scale = static_cast<double>(std::max(maps.dim(2), maps.dim(3))) * FLT_EPSILON;
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t ch = 0; ch < c; ++ch) {
            const float* v = s.data() + (i * c + ch) * k;
            double score = 0.0;
            if (criterion == FeatureCriterion::rank) {
                const double tol = rank_scale * static_cast<double>(*std::max_element(v, v + k));
                for (int64_t j = 0; j < k; ++j) score += static_cast<double>(v[j]) > tol ? 1.0 : 0.0;
            } else {
                for (int64_t j = 0; j < k; ++j) score += v[j];
            }
            sums[static_cast<size_t>(ch)] += score;
        }
    }
}

void mean_map_scores(Context& ctx, const Tensor& maps, FeatureCriterion criterion, bool relu, Tensor& out,
                     const char* what) {
    SP_REQUIRE(maps.rank() == 4, what << ": maps must be (N, C, H, W), got " << maps.shape().str());
    SP_REQUIRE(out.shape() == Shape{maps.dim(1)}, what << ": out must be (" << maps.dim(1) << "), got "
                                                       << out.shape().str());
    SP_REQUIRE(out.device() == ctx.device(), what << ": out must be on the context's device");
    SP_REQUIRE(maps.dim(0) > 0, what << ": no maps to average");
    std::vector<double> sums(static_cast<size_t>(maps.dim(1)), 0.0);
    accumulate_map_scores(ctx, maps, criterion, relu, sums);
    std::vector<float> mean(sums.size());
    for (size_t i = 0; i < sums.size(); ++i) mean[i] = static_cast<float>(sums[i] / static_cast<double>(maps.dim(0)));
    out.copy_from(Tensor::from_host(mean, out.shape(), Device::cpu));
}

}  // namespace

void nuclear_norms(Context& ctx, const Tensor& maps, bool relu, Tensor& out) {
    mean_map_scores(ctx, maps, FeatureCriterion::nuclear_norm, relu, out, "nuclear_norms");
}

void map_ranks(Context& ctx, const Tensor& maps, bool relu, Tensor& out) {
    mean_map_scores(ctx, maps, FeatureCriterion::rank, relu, out, "map_ranks");
}

void visit_feature_maps(Context& ctx, MaskSpace& space, const Tensor& images, const FeatureScoreOptions& o,
                        const std::function<void(size_t segment, const Tensor& maps)>& visit) {
    Model& model = space.model();
    const auto& sets = model.channel_sets();
    const auto& wiring = model.wiring();
    // One writer per scored set, whose map we read after each forward.
    std::vector<const LayerWiring*> writers;
    for (const MaskSegment& seg : space.segments()) {
        SP_REQUIRE(sets.at(static_cast<size_t>(seg.set)).kind == ChannelSet::Kind::layer_output,
                   "feature maps: segment " << seg.name
                                            << " is not a layer-output set; its feature map (a block output) is "
                                               "not exposed, so only layer-output sets can be scored");
        const LayerWiring* writer = nullptr;
        for (const LayerWiring& w : wiring)
            if (w.out_set == seg.set) writer = &w;
        SP_REQUIRE(writer, "feature maps: no layer writes set " << seg.name);
        writers.push_back(writer);
    }
    SP_REQUIRE(images.rank() == 4 && images.dim(1) == model.input_shape()[0] &&
                   images.dim(2) == model.input_shape()[1] && images.dim(3) == model.input_shape()[2],
               "feature maps: images must be (N, " << model.input_shape()[0] << ", " << model.input_shape()[1] << ", "
                                                   << model.input_shape()[2] << "), got " << images.shape().str());
    SP_REQUIRE(images.device() == ctx.device(), "feature maps: images must be on the context's device");
    SP_REQUIRE(o.images > 0 && o.batch_size > 0,
               "feature maps: images (" << o.images << ") and batch_size (" << o.batch_size << ") must be positive");
    SP_REQUIRE(space.attached_members() <= 1, "feature maps: a population is attached; detach it or attach "
                                              "a single state");
    const int64_t n = std::min(o.images, images.dim(0));
    SP_REQUIRE(n > 0, "feature maps: no images");

    EvalModeScope eval(model);
    const int64_t per_image = images.numel() / images.dim(0);
    // A read-only view of each batch: forward never writes its input.
    float* base = const_cast<float*>(images.data());
    for (int64_t first = 0; first < n; first += o.batch_size) {
        const int64_t b = std::min(o.batch_size, n - first);
        Tensor x = Tensor::view(base + first * per_image,
                                Shape{b, images.dim(1), images.dim(2), images.dim(3)}, images.device());
        model.forward(ctx, x);
        for (size_t i = 0; i < writers.size(); ++i) {
            const MaskSegment& seg = space.segments()[i];
            const LayerWiring& w = *writers[i];
            const Module* source = w.bn ? static_cast<const Module*>(w.bn) : w.module;
            const Tensor* y = source->last_output();
            SP_REQUIRE(y && y->defined(), "feature maps: layer " << w.name << " keeps no output");
            SP_REQUIRE(y->dim(0) == b && y->dim(1) == seg.size,
                       "feature maps: output of " << w.name << " is " << y->shape().str() << ", expected (" << b
                                                  << ", " << seg.size << ", ...)");
            // Conv/BN maps (B, C, H, W); a linear layer's neurons (B, F) are 1×1 maps.
            visit(i, y->rank() == 4 ? y->view() : y->reshaped(Shape{b, y->dim(1), 1, 1}));
        }
        if (o.on_batch) o.on_batch(first + b, n);
    }
}

std::vector<float> feature_map_scores(Context& ctx, MaskSpace& space, const Tensor& images,
                                      const FeatureScoreOptions& o) {
    SP_REQUIRE(space.granularity() == Granularity::filter,
               "feature_map_scores: needs a filter-granularity space, got " << granularity_name(space.granularity()));
    // Data-free references: the filter weights' norms (pruning/importance.cpp).
    if (o.criterion == FeatureCriterion::l1) return l1_importance.scores(ScoreInput{ctx, space});
    if (o.criterion == FeatureCriterion::l2) return l2_importance.scores(ScoreInput{ctx, space});
    std::vector<double> scores(static_cast<size_t>(space.size()), 0.0);

    // Data-driven criteria: the mean per-map score over the images.
    int64_t n = 0;
    visit_feature_maps(ctx, space, images, o, [&](size_t segment, const Tensor& maps) {
        const MaskSegment& seg = space.segments()[segment];
        std::vector<double> sums(static_cast<size_t>(seg.size), 0.0);
        accumulate_map_scores(ctx, maps, o.criterion, o.post_relu, sums);
        for (int64_t c = 0; c < seg.size; ++c) scores[static_cast<size_t>(seg.offset + c)] += sums[static_cast<size_t>(c)];
        if (segment == 0) n += maps.dim(0);
    });
    std::vector<float> result(scores.size());
    for (size_t i = 0; i < scores.size(); ++i) result[i] = static_cast<float>(scores[i] / static_cast<double>(n));
    return result;
}

}  // namespace sp
