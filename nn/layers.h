// The layers: modules with forward/backward built only from the public ops (nn/ops.h), so each
// runs on either backend. Parameters live in the model's ParameterStore; a layer keeps its
// entries' indices and fetches views, so the store may be allocated after the layers are built.
// Conv2d and Linear take pruning masks that act in forward and backward without touching the
// stored weights.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"
#include "nn/parameters.h"

namespace sp {

// The pruning masks a layer applies without touching its stored weights: an output-channel
// gate — (C), or (P, C) for a member-major batch of P·B images where rows [p·B, (p+1)·B) use
// row p — multiplying y last in forward and dy first in backward, and (conv/linear) a
// per-weight mask: forward and backward-data use w ⊙ m (scratch memory) and the weight
// gradient is multiplied by m. A gated channel thus behaves like a filter whose weights and
// bias are zero, and gets zero gradient. Masks are non-owning; null = none.
// A population of P weight masks, stacked along the output axis (P·K, ...), is for evaluation
// only: population_forward runs a member-major batch of P·B images through every member's
// masked weights in one convolution with P times the groups (no backward).
class LayerMasks {
public:
    LayerMasks(const std::string& layer, int64_t channels) : layer_(layer), channels_(channels) {}
    void set_output(const Tensor* mask);
    // `masked` (one mask only; null = none): w ⊙ mask computed by the caller for the current
    // weights (the Gibbs draw writes it in the same pass), used instead of forming it here. The
    // caller must replace it before the weights change (see GibbsTraining::after_step).
    void set_weight(const Tensor* mask, const Shape& weight_shape, const Tensor* masked = nullptr);
    const Tensor* output() const { return output_; }
    const Tensor* weight() const { return weight_; }
    int64_t weight_members() const { return weight_members_; }  // P of a stacked weight mask, 1 for one mask

    // A population gate (P, C) needs a batch of P·B images.
    void check_batch(const Shape& input) const;
    // Forward: checks the batch, and returns w or w ⊙ m.
    const Tensor& forward_weight(Context& ctx, const Tensor& w, const Shape& input);
    // Backward: the weight the last forward used (the weights have not changed since).
    const Tensor& backward_weight(const Tensor& w) const {
        return !weight_used_ ? w : supplied_masked_ ? *supplied_masked_ : masked_weight_;
    }
    void gate_output(Context& ctx, Tensor& y) const;
    const Tensor& gate_gradient(Context& ctx, const Tensor& dy);  // dy or dy ⊙ gate
    void mask_weight_gradient(Context& ctx, Tensor& dw) const;
    // With weight_members() = P > 1: y (P·B, K, P', Q') of x (P·B, C, H, W) under member p's
    // weights w ⊙ m_p for rows [p·B, (p+1)·B): the stacked masked weights (P·K, C/g, R, S)
    // convolve x regrouped as (B, P·C, H, W) with P·g groups. w (K, C/g, R, S), bias (K) or null.
    void population_forward(Context& ctx, const Tensor& x, const Tensor& w, const Tensor* bias,
                            ConvGeometry geometry, Tensor& y);

private:
    std::string layer_;
    int64_t channels_;
    const Tensor* output_ = nullptr;
    const Tensor* weight_ = nullptr;
    const Tensor* supplied_masked_ = nullptr;  // w ⊙ mask from the caller
    int64_t weight_members_ = 1;
    Tensor grouped_x_, grouped_y_;              // (B, P·C, H, W), (B, P·K, P', Q')
    Tensor repeated_bias_, tiled_bias_;         // (K, P), (P, K)
    bool weight_used_ = false;  // whether the last forward used masked_weight_
    Tensor masked_weight_;      // w ⊙ mask
    Tensor masked_dy_;          // dy ⊙ gate
};

class Conv2d : public Module {
public:
    Conv2d(ParameterStore& store, std::string name, int64_t in_channels, int64_t out_channels,
           int64_t kernel, int64_t stride = 1, int64_t padding = 0, int64_t groups = 1, bool bias = false);
    // Pruning masks (non-owning; null = none): output-channel gate (out_channels), or a
    // population of gates (P, out_channels) for a member-major batch of P·B images, and a
    // per-weight mask (shape of the weight), or P of them stacked (P·K, C/g, R, S) for
    // evaluation. Applied in forward and backward; the stored weights are never modified.
    // `masked_weight`: w ⊙ mask supplied by the caller (LayerMasks::set_weight).
    void set_output_mask(const Tensor* mask) { masks_.set_output(mask); }
    void set_weight_mask(const Tensor* mask, const Tensor* masked_weight = nullptr);
    const Tensor* output_mask() const { return masks_.output(); }
    const Tensor* weight_mask() const { return masks_.weight(); }
    Tensor weight() const;  // (K, C/g, R, S)
    Tensor weight_grad() const;
    bool has_bias() const { return bias_index_ >= 0; }
    Tensor bias() const;  // (K)
    Tensor bias_grad() const;
    int64_t in_channels() const { return in_channels_; }
    int64_t out_channels() const { return out_channels_; }
    int64_t kernel() const { return kernel_; }
    int64_t stride() const { return stride_; }
    int64_t padding() const { return padding_; }
    int64_t groups() const { return groups_; }
    int weight_index() const { return weight_index_; }
    int bias_index() const { return bias_index_; }  // -1 without bias

    std::string name() const override { return name_; }
    Shape output_shape(const Shape& input) const override;
    Tensor& forward(Context& ctx, const Tensor& x) override;
    Tensor& backward(Context& ctx, const Tensor& dy) override;
    int64_t macs(const Shape& input) const override;
    const Tensor* last_output() const override { return &y_; }

private:
    ConvGeometry geometry() const;

    ParameterStore& store_;
    std::string name_;
    int64_t in_channels_, out_channels_, kernel_, stride_, padding_, groups_;
    int weight_index_ = -1, bias_index_ = -1;
    LayerMasks masks_{name_, out_channels_};
    Tensor x_;  // view of the last input (N, C, H, W)
    Tensor y_, dx_;
};

class Linear : public Module {
public:
    Linear(ParameterStore& store, std::string name, int64_t in_features, int64_t out_features, bool bias = true);
    void set_output_mask(const Tensor* mask) { masks_.set_output(mask); }  // (OUT) or (P, OUT)
    void set_weight_mask(const Tensor* mask, const Tensor* masked_weight = nullptr);  // (OUT, IN)
    const Tensor* output_mask() const { return masks_.output(); }
    const Tensor* weight_mask() const { return masks_.weight(); }
    Tensor weight() const;  // (OUT, IN)
    Tensor weight_grad() const;
    bool has_bias() const { return bias_index_ >= 0; }
    Tensor bias() const;  // (OUT)
    Tensor bias_grad() const;
    int64_t in_features() const { return in_features_; }
    int64_t out_features() const { return out_features_; }
    int weight_index() const { return weight_index_; }
    int bias_index() const { return bias_index_; }  // -1 without bias

    std::string name() const override { return name_; }
    Shape output_shape(const Shape& input) const override;
    Tensor& forward(Context& ctx, const Tensor& x) override;
    Tensor& backward(Context& ctx, const Tensor& dy) override;
    int64_t macs(const Shape& input) const override { return in_features_ * out_features_; }
    const Tensor* last_output() const override { return &y_; }

private:
    ParameterStore& store_;
    std::string name_;
    int64_t in_features_, out_features_;
    int weight_index_ = -1, bias_index_ = -1;
    LayerMasks masks_{name_, out_features_};
    Tensor x_;  // view of the last input (N, IN)
    Tensor y_, dx_;
};

class BatchNorm2d : public Module {
public:
    BatchNorm2d(ParameterStore& store, std::string name, int64_t channels, float momentum = 0.1f, float eps = 1e-5f);
    // Output-channel gate after the affine map (non-owning; null = none): (C), or (P, C) for a
    // member-major batch of P·B images. Multiplies y in forward and dy first in backward.
    void set_output_mask(const Tensor* mask) { masks_.set_output(mask); }
    const Tensor* output_mask() const { return masks_.output(); }
    Tensor gamma() const;  // (C), trainable
    Tensor beta() const;
    Tensor running_mean() const;  // (C), state
    Tensor running_var() const;
    int64_t channels() const { return channels_; }
    float eps() const { return eps_; }
    int gamma_index() const { return gamma_index_; }
    int beta_index() const { return beta_index_; }

    std::string name() const override { return name_; }
    Shape output_shape(const Shape& input) const override;
    Tensor& forward(Context& ctx, const Tensor& x) override;
    // After a training forward: the batch-statistics gradient. After an eval forward: the
    // gradient of the fixed affine map (running statistics are constants).
    Tensor& backward(Context& ctx, const Tensor& dy) override;
    const Tensor* last_output() const override { return &y_; }

private:
    ParameterStore& store_;
    std::string name_;
    int64_t channels_;
    float momentum_, eps_;
    int gamma_index_ = -1, beta_index_ = -1, mean_index_ = -1, var_index_ = -1;
    bool forward_was_training_ = true;
    LayerMasks masks_{name_, channels_};
    Tensor x_;  // view of the last input (N, C, H, W)
    Tensor y_, dx_;
    Tensor saved_mean_, saved_invstd_;   // (C)
    Tensor zeros_, ones_, xhat_;         // eval-mode backward scratch: (C), (C), (N, C, H, W)
};

class ReLU : public Module {
public:
    explicit ReLU(std::string name) : name_(std::move(name)) {}
    std::string name() const override { return name_; }
    Shape output_shape(const Shape& input) const override { return input; }
    Tensor& forward(Context& ctx, const Tensor& x) override;
    Tensor& backward(Context& ctx, const Tensor& dy) override;

private:
    std::string name_;
    Tensor y_, dx_;
};

// Max or average pooling over square windows (average counts the padding).
class Pool2d : public Module {
public:
    Pool2d(std::string name, PoolKind kind, int64_t kernel, int64_t stride, int64_t padding);
    std::string name() const override { return name_; }
    Shape output_shape(const Shape& input) const override;
    Tensor& forward(Context& ctx, const Tensor& x) override;
    Tensor& backward(Context& ctx, const Tensor& dy) override;
    int64_t macs(const Shape& input) const override;  // window reads per output, for accounting
    const PoolGeometry& geometry() const { return geom_; }

private:
    std::string name_;
    PoolGeometry geom_;
    Tensor x_;  // view of the last input
    Tensor y_, dx_;
};

class MaxPool2d : public Pool2d {
public:
    MaxPool2d(std::string name, int64_t kernel, int64_t stride, int64_t padding = 0)
        : Pool2d(std::move(name), PoolKind::max, kernel, stride, padding) {}
};

class AvgPool2d : public Pool2d {
public:
    AvgPool2d(std::string name, int64_t kernel, int64_t stride, int64_t padding = 0)
        : Pool2d(std::move(name), PoolKind::average, kernel, stride, padding) {}
};

class GlobalAvgPool : public Module {  // (N, C, H, W) -> (N, C, 1, 1)
public:
    explicit GlobalAvgPool(std::string name) : name_(std::move(name)) {}
    std::string name() const override { return name_; }
    Shape output_shape(const Shape& input) const override;
    Tensor& forward(Context& ctx, const Tensor& x) override;
    Tensor& backward(Context& ctx, const Tensor& dy) override;

private:
    std::string name_;
    Shape input_shape_;
    Tensor y_, dx_;
};

class Flatten : public Module {  // (N, ...) -> (N, rest); output and gradient are views
public:
    explicit Flatten(std::string name) : name_(std::move(name)) {}
    std::string name() const override { return name_; }
    Shape output_shape(const Shape& input) const override;
    Tensor& forward(Context& ctx, const Tensor& x) override;
    Tensor& backward(Context& ctx, const Tensor& dy) override;

private:
    std::string name_;
    Shape input_shape_;
    Tensor y_, dx_;
};

class Dropout : public Module {
public:
    // Random stream key = random_stream_key(ctx.seed(), purpose, ctx.step()), so a
    // run is reproducible; identity in eval mode.
    Dropout(std::string name, float p, uint64_t purpose);
    std::string name() const override { return name_; }
    Shape output_shape(const Shape& input) const override { return input; }
    Tensor& forward(Context& ctx, const Tensor& x) override;
    Tensor& backward(Context& ctx, const Tensor& dy) override;
    float p() const { return p_; }

private:
    std::string name_;
    float p_;
    uint64_t purpose_;
    bool forward_was_identity_ = true;
    Tensor y_, dx_, keep_scale_;
};

class LocalResponseNorm : public Module {
public:
    LocalResponseNorm(std::string name, int64_t size, float alpha = 1e-4f, float beta = 0.75f, float k = 1.0f);
    std::string name() const override { return name_; }
    Shape output_shape(const Shape& input) const override { return input; }
    Tensor& forward(Context& ctx, const Tensor& x) override;
    Tensor& backward(Context& ctx, const Tensor& dy) override;

private:
    std::string name_;
    LrnParams params_;
    Tensor x_;  // view of the last input
    Tensor y_, dx_;
};

class Sequential : public Module {
public:
    explicit Sequential(std::string name) : name_(std::move(name)) {}
    Module& add(std::unique_ptr<Module> m);  // returns the added module
    template <class M, class... Args>
    M& emplace(Args&&... args) {  // constructs and adds
        auto m = std::make_unique<M>(std::forward<Args>(args)...);
        M& ref = *m;
        add(std::move(m));
        return ref;
    }
    size_t size() const { return children_.size(); }
    Module& operator[](size_t i);

    std::string name() const override { return name_; }
    Shape output_shape(const Shape& input) const override;
    // forward/backward run the children in order; set_training recurses; macs sums.
    Tensor& forward(Context& ctx, const Tensor& x) override;
    Tensor& backward(Context& ctx, const Tensor& dy) override;
    void set_training(bool training) override;
    int64_t macs(const Shape& input) const override;

private:
    std::string name_;
    std::vector<std::unique_ptr<Module>> children_;
};

// Two-input and many-input nodes (not Modules): composed by model code.
class ResidualAdd {  // y = a + b; backward gives the same dy to both inputs
public:
    explicit ResidualAdd(std::string name) : name_(std::move(name)) {}
    const std::string& name() const { return name_; }
    Tensor& forward(Context& ctx, const Tensor& a, const Tensor& b);
    const Tensor& backward(Context& ctx, const Tensor& dy);  // returns dy (both inputs' gradient)

private:
    std::string name_;
    Tensor y_;
};

class ConcatChannels {
public:
    explicit ConcatChannels(std::string name) : name_(std::move(name)) {}
    const std::string& name() const { return name_; }
    Tensor& forward(Context& ctx, const std::vector<const Tensor*>& xs);
    std::vector<Tensor>& backward(Context& ctx, const Tensor& dy);  // one gradient per input

private:
    std::string name_;
    std::vector<Shape> input_shapes_;
    Tensor y_;
    std::vector<Tensor> dxs_;
};

class SoftmaxCrossEntropy {
public:
    explicit SoftmaxCrossEntropy(float label_smoothing = 0.0f);
    float forward(Context& ctx, const Tensor& logits, const Tensor& labels);  // mean loss
    Tensor& backward(Context& ctx);  // dlogits of the last forward
    float label_smoothing() const { return label_smoothing_; }

private:
    float label_smoothing_;
    bool has_forward_ = false;
    Tensor dlogits_;  // (N, K), computed by forward
};

}  // namespace sp
