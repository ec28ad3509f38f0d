// Composition: Sequential, the residual add and channel concatenation nodes, and the loss.
#include "kernels/error.h"
#include "kernels/nvtx.h"
#include "nn/layers.h"

namespace sp {

// ------------------------------------------------------------------------------ Sequential

Module& Sequential::add(std::unique_ptr<Module> m) {
    SP_REQUIRE(m != nullptr, name_ << ": cannot add a null module");
    m->set_training(training_);
    children_.push_back(std::move(m));
    return *children_.back();
}

Module& Sequential::operator[](size_t i) {
    SP_REQUIRE(i < children_.size(), name_ << ": no child " << i << " (" << children_.size() << " children)");
    return *children_[i];
}

Shape Sequential::output_shape(const Shape& input) const {
    Shape s = input;
    for (const auto& m : children_) s = m->output_shape(s);
    return s;
}

Tensor& Sequential::forward(Context& ctx, const Tensor& x) {
    SP_REQUIRE(!children_.empty(), name_ << ": forward through an empty Sequential");
    NvtxRange range(name_.c_str());
    const Tensor* cur = &x;
    Tensor* out = nullptr;
    for (auto& m : children_) {
        out = &m->forward(ctx, *cur);
        cur = out;
    }
    return *out;
}

Tensor& Sequential::backward(Context& ctx, const Tensor& dy) {
    SP_REQUIRE(!children_.empty(), name_ << ": backward through an empty Sequential");
    NvtxRange range((name_ + ".backward").c_str());
    const Tensor* cur = &dy;
    Tensor* out = nullptr;
    for (auto it = children_.rbegin(); it != children_.rend(); ++it) {
        out = &(*it)->backward(ctx, *cur);
        cur = out;
    }
    return *out;
}

void Sequential::set_training(bool training) {
    training_ = training;
    for (auto& m : children_) m->set_training(training);
}

int64_t Sequential::macs(const Shape& input) const {
    int64_t total = 0;
    Shape s = input;
    for (const auto& m : children_) {
        total += m->macs(s);
        s = m->output_shape(s);
    }
    return total;
}

// ----------------------------------------------------------------------------- ResidualAdd

Tensor& ResidualAdd::forward(Context& ctx, const Tensor& a, const Tensor& b) {
    NvtxRange range(name_.c_str());
    SP_REQUIRE(a.shape() == b.shape(), name_ << ": inputs have shapes " << a.shape().str() << " and "
                                             << b.shape().str() << " (they must match)");
    ensure_shape(y_, a.shape(), ctx.device());
    add(ctx, a, b, y_);
    return y_;
}

const Tensor& ResidualAdd::backward(Context& ctx, const Tensor& dy) {
    NvtxRange range((name_ + ".backward").c_str());
    SP_REQUIRE(dy.shape() == y_.shape(), name_ << ": gradient has shape " << dy.shape().str()
                                               << ", expected the output shape " << y_.shape().str());
    return dy;
}

// -------------------------------------------------------------------------- ConcatChannels

Tensor& ConcatChannels::forward(Context& ctx, const std::vector<const Tensor*>& xs) {
    NvtxRange range(name_.c_str());
    SP_REQUIRE(!xs.empty(), name_ << ": needs at least one input");
    input_shapes_.clear();
    int64_t channels = 0;
    for (const Tensor* x : xs) {
        SP_REQUIRE(x && x->rank() == 4 && x->dim(0) == xs[0]->dim(0) && x->dim(2) == xs[0]->dim(2) &&
                       x->dim(3) == xs[0]->dim(3),
                   name_ << ": inputs must all be (N, C_i, H, W) with the same N, H, W; got "
                         << (x ? x->shape().str() : "null") << " after " << xs[0]->shape().str());
        input_shapes_.push_back(x->shape());
        channels += x->dim(1);
    }
    ensure_shape(y_, Shape{xs[0]->dim(0), channels, xs[0]->dim(2), xs[0]->dim(3)}, ctx.device());
    concat_channels_forward(ctx, xs, y_);
    return y_;
}

std::vector<Tensor>& ConcatChannels::backward(Context& ctx, const Tensor& dy) {
    NvtxRange range((name_ + ".backward").c_str());
    SP_REQUIRE(!input_shapes_.empty(), name_ << ": backward before forward");
    SP_REQUIRE(dy.shape() == y_.shape(), name_ << ": gradient has shape " << dy.shape().str()
                                               << ", expected the output shape " << y_.shape().str());
    dxs_.resize(input_shapes_.size());
    std::vector<Tensor*> outs;
    for (size_t i = 0; i < input_shapes_.size(); ++i) {
        ensure_shape(dxs_[i], input_shapes_[i], ctx.device());
        outs.push_back(&dxs_[i]);
    }
    concat_channels_backward(ctx, dy, outs, GradMode::overwrite);
    return dxs_;
}

// --------------------------------------------------------------------- SoftmaxCrossEntropy

SoftmaxCrossEntropy::SoftmaxCrossEntropy(float label_smoothing) : label_smoothing_(label_smoothing) {
    SP_REQUIRE(label_smoothing >= 0.0f && label_smoothing < 1.0f,
               "softmax_cross_entropy: label smoothing must be in [0, 1), got " << label_smoothing);
}

float SoftmaxCrossEntropy::forward(Context& ctx, const Tensor& logits, const Tensor& labels) {
    NvtxRange range("softmax_cross_entropy");
    // The gradient costs one more pass over the logits the forward already reads: compute both.
    ensure_shape(dlogits_, logits.shape(), ctx.device());
    float loss = softmax_cross_entropy(ctx, logits, labels, label_smoothing_, &dlogits_);
    has_forward_ = true;
    return loss;
}

Tensor& SoftmaxCrossEntropy::backward(Context& ctx) {
    SP_REQUIRE(has_forward_, "softmax_cross_entropy: backward before forward");
    return dlogits_;
}

}  // namespace sp
