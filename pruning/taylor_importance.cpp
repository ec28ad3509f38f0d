// First-order Taylor importance (Molchanov et al., Importance Estimation for Neural Network
// Pruning, CVPR 2019): the squared first-order change of the loss when a channel is removed,
// averaged over minibatches of the scoring images: I_c = mean_batches (Σ_{s ∈ c} g_s · w_s)².
// The parameters s of a channel are those that scale its output where the filter mask gates it:
// the batch norm's γ and β when the layer has one (the paper's best variant, "FO on BN"), else the
// filter's weights and bias. In both cases Σ g_s · w_s equals Σ over positions of ∂L/∂y · y for the
// gated output y, the derivative of the loss along a scaling of the channel. Where several layers
// write one channel set, their terms are added before squaring (the mask removes the channel from
// all of them at once). The model runs in eval mode (running statistics), the mode it is pruned
// and deployed in; the backward pass overwrites the parameter gradients.
#include <algorithm>
#include <vector>

#include "kernels/error.h"
#include "nn/layers.h"
#include "pruning/importance.h"

namespace sp {

namespace {

constexpr int64_t kTaylorBatch = 64;  // images per minibatch (per squared term)

// Σ over each output row (filter) of value · gradient, added to out[0..rows).
void add_row_products(const Tensor& value, const Tensor& grad, double* out) {
    const std::vector<float> v = value.to_host(), g = grad.to_host();
    const int64_t rows = value.dim(0), fan = value.numel() / rows;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t e = 0; e < fan; ++e) out[r] += static_cast<double>(v[static_cast<size_t>(r * fan + e)]) * g[static_cast<size_t>(r * fan + e)];
}

std::vector<float> taylor_scores(const ScoreInput& in) {
    MaskSpace& space = in.space;
    Model& model = space.model();
    const Tensor& images = *in.images;
    SP_REQUIRE(space.attached_members() <= 1, "taylor: a population is attached; detach it or attach a single state");
    SP_REQUIRE(images.device() == in.ctx.device() && in.labels->device() == in.ctx.device(),
               "taylor: the scoring images and labels must be on the context's device");
    SP_REQUIRE(in.labels->numel() == images.dim(0),
               "taylor: " << images.dim(0) << " images but " << in.labels->numel() << " labels");
    ParameterStore& store = model.parameters();
    EvalModeScope eval(model);
    SoftmaxCrossEntropy loss;
    const int64_t n = images.dim(0), per_image = images.numel() / n;
    std::vector<double> sums(static_cast<size_t>(space.size()), 0.0), term(sums.size());
    int64_t batches = 0;
    for (int64_t first = 0; first < n; first += kTaylorBatch, ++batches) {
        const int64_t b = std::min(kTaylorBatch, n - first);
        // Read-only views: forward and the loss never write their inputs.
        Tensor x = Tensor::view(const_cast<float*>(images.data()) + first * per_image,
                                Shape{b, images.dim(1), images.dim(2), images.dim(3)}, images.device());
        Tensor y = Tensor::view(const_cast<float*>(in.labels->data()) + first, Shape{b}, images.device());
        loss.forward(in.ctx, model.forward(in.ctx, x), y);
        model.backward(in.ctx, loss.backward(in.ctx));
        std::fill(term.begin(), term.end(), 0.0);
        for (const MaskSegment& seg : space.segments())
            for (const LayerWiring& w : model.wiring()) {
                if (w.out_set != seg.set) continue;
                double* out = term.data() + seg.offset;
                if (w.bn) {
                    add_row_products(w.bn->gamma(), store.grad(w.bn->gamma_index()), out);
                    add_row_products(w.bn->beta(), store.grad(w.bn->beta_index()), out);
                } else if (w.conv) {
                    add_row_products(w.conv->weight(), w.conv->weight_grad(), out);
                    if (w.conv->has_bias()) add_row_products(w.conv->bias(), w.conv->bias_grad(), out);
                } else {
                    add_row_products(w.linear->weight(), w.linear->weight_grad(), out);
                    if (w.linear->has_bias()) add_row_products(w.linear->bias(), w.linear->bias_grad(), out);
                }
            }
        for (size_t u = 0; u < sums.size(); ++u) sums[u] += term[u] * term[u];
        if (in.on_progress) in.on_progress(first + b, n);
    }
    std::vector<float> scores(sums.size());
    for (size_t u = 0; u < sums.size(); ++u) scores[u] = static_cast<float>(sums[u] / static_cast<double>(batches));
    return scores;
}

}  // namespace

extern const Importance taylor_importance{"taylor",
                                          "mean over minibatches of the squared first-order loss change of removing each "
                                          "channel, (Σ gradient · parameter)² over its BN γ, β (else its filter)",
                                          {Granularity::filter}, true, taylor_scores};

}  // namespace sp
