// First-order Taylor importance against finite differences of the loss: a channel's score is the
// squared derivative of the loss along a scaling s of the channel's gated output at s = 1,
// averaged over minibatches. The oracle scales the channel through its parameters (BN γ and β,
// or the filter's weights and bias where no BN follows) and runs forward passes only.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "harness.h"
#include "nn/layers.h"
#include "pruning/mask_space.h"
#include "train/methods.h"

using namespace sp;

namespace {

// Multiplies, for output channel c, every entry of row c of `t` (rows along dim 0) by `factor`.
void scale_row(const Tensor& t, int64_t c, double factor) {
    Tensor view = t.view();
    std::vector<float> host = view.to_host();
    const int64_t fan = t.numel() / t.dim(0);
    for (int64_t e = 0; e < fan; ++e) host[static_cast<size_t>(c * fan + e)] = static_cast<float>(host[static_cast<size_t>(c * fan + e)] * factor);
    view.copy_from(Tensor::from_host(host, t.shape(), Device::cpu));
}

// Scales channel c of the set layer `w` writes: its BN's γ and β, else its filter and bias.
void scale_channel(const LayerWiring& w, int64_t c, double factor) {
    if (w.bn) {
        scale_row(w.bn->gamma(), c, factor);
        scale_row(w.bn->beta(), c, factor);
    } else {
        scale_row(w.linear ? w.linear->weight() : w.conv->weight(), c, factor);
        const bool has_bias = w.linear ? w.linear->has_bias() : w.conv->has_bias();
        if (has_bias) scale_row(w.linear ? w.linear->bias() : w.conv->bias(), c, factor);
    }
}

double eval_loss(Context& ctx, Model& model, const Tensor& images, const Tensor& labels) {
    model.set_training(false);
    SoftmaxCrossEntropy loss;
    return loss.forward(ctx, model.forward(ctx, images), labels);
}

}  // namespace

TEST_CASE("taylor: a channel's score is the squared loss derivative along its scaling (finite differences), averaged over minibatches") {
    auto model = make_model("lenet", 1, 28, 28, 10);
    model->allocate(Device::cpu, 5);
    test::randomise_bn(*model, 7);
    MaskSpace space(*model, MaskSpaceOptions{});
    Context ctx(Device::cpu, 1);
    const int64_t n = 16;  // one minibatch
    const Tensor images = test::random_tensor(Shape{n, 1, 28, 28}, Device::cpu, 11);
    std::vector<float> classes(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) classes[static_cast<size_t>(i)] = static_cast<float>((3 * i) % 10);
    const Tensor labels = Tensor::from_host(classes, Shape{n}, Device::cpu);

    const PruneMethod& taylor = *find_method("taylor");
    ScoreInput in{ctx, space, 1};
    in.images = &images;
    in.labels = &labels;
    const std::vector<float> scores = importance_scores(*taylor.importance, in, "taylor");

    // Central differences at s = 1 ± h. ReLU and max pooling commute with a positive scaling of
    // one channel, so the loss is smooth in s except at the later layers' ReLU kinks: a step
    // that crosses k of them is off by O(k/n); at h = 1e-2 that was up to 3% on conv1, whose
    // scaling moves every later pre-activation. At h = 1e-3 the crossings are rare and the error
    // is float32 rounding of the two losses, about u·|L|·(reduction length)/h ≈ 1e-4 at most:
    // bound 3e-4 + 1% relative.
    const double h = 1e-3;
    int checked = 0, inside = 0;
    double worst_ratio = 0.0;  // |error| / bound
    std::ostringstream worst;
    for (const MaskSegment& seg : space.segments()) {
        const LayerWiring* writer = nullptr;
        for (const LayerWiring& w : model->wiring())
            if (w.out_set == seg.set) writer = &w;
        REQUIRE(writer);
        for (int64_t c = 0; c < seg.size; ++c) {
            scale_channel(*writer, c, 1 + h);
            const double up = eval_loss(ctx, *model, images, labels);
            scale_channel(*writer, c, (1 - h) / (1 + h));
            const double down = eval_loss(ctx, *model, images, labels);
            scale_channel(*writer, c, 1 / (1 - h));
            const double derivative = (up - down) / (2 * h);
            const double taylor_derivative = std::sqrt(static_cast<double>(scores[static_cast<size_t>(seg.offset + c)]));
            const double error = std::fabs(taylor_derivative - std::fabs(derivative)), bound = 3e-4 + 0.01 * std::fabs(derivative);
            const bool ok = error <= bound;
            worst_ratio = std::max(worst_ratio, error / bound);
            ++checked;
            inside += ok;
            if (!ok && worst.tellp() < 400)
                worst << seg.name << "[" << c << "]: taylor |dL/ds| " << taylor_derivative << ", finite difference " << derivative << "; ";
        }
    }
    CAPTURE(worst.str());
    CHECK(inside == checked);
    MESSAGE("taylor: " << inside << " of " << checked << " channels agree with finite differences (largest error "
                       << worst_ratio << " of its bound)");

    // Two minibatches (64 + 36 images): the mean of each minibatch's squared term.
    const int64_t m = 100;
    const Tensor more = test::random_tensor(Shape{m, 1, 28, 28}, Device::cpu, 12);
    std::vector<float> more_classes(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) more_classes[static_cast<size_t>(i)] = static_cast<float>((7 * i) % 10);
    const Tensor more_labels = Tensor::from_host(more_classes, Shape{m}, Device::cpu);
    auto scores_of = [&](int64_t first, int64_t count) {
        const Tensor x = Tensor::view(const_cast<float*>(more.data()) + first * 28 * 28, Shape{count, 1, 28, 28}, Device::cpu);
        const Tensor y = Tensor::view(const_cast<float*>(more_labels.data()) + first, Shape{count}, Device::cpu);
        ScoreInput part{ctx, space, 1};
        part.images = &x;
        part.labels = &y;
        return importance_scores(*taylor.importance, part, "taylor");
    };
    const std::vector<float> both = scores_of(0, m), first = scores_of(0, 64), second = scores_of(64, 36);
    for (size_t u = 0; u < both.size(); ++u)
        CHECK(both[u] == doctest::Approx(0.5 * (static_cast<double>(first[u]) + second[u])).epsilon(1e-6));

    // It scores from data, at filter granularity only.
    CHECK_THROWS_WITH_AS(importance_scores(*taylor.importance, ScoreInput{ctx, space, 1}, "taylor"),
                         doctest::Contains("no scoring images"), Error);
}
