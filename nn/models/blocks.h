// Composite building blocks of the model zoo: modules with a non-sequential data flow inside
// (the ResNet basic block, the SqueezeNet fire module) and the option-A residual shortcut.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/layers.h"
#include "nn/module.h"
#include "nn/parameters.h"

namespace sp {

// How a residual block whose shape changes (stride or width) builds its shortcut:
//   a: subsample x[:, :, ::s, ::s] and zero-pad the channels (parameter free, He et al.'s CIFAR
//      option A, as in the common PyTorch reference);
//   b: a 1x1 convolution with stride s followed by batch normalisation (projection).
// Blocks whose shape does not change always use the identity.
enum class ShortcutOption { a, b };

// A module made of other modules. It lists them, each with the input shape it sees (batch
// axis included), in execution order, so the model can account parameters and MACs per layer
// and find the prunable ones without knowing the block's data flow.
class Composite {
public:
    virtual ~Composite() = default;
    virtual void children(const Shape& input, std::vector<std::pair<Module*, Shape>>& out) = 0;
};

// Option-A shortcut: y (N, K, ceil(H/s), ceil(W/s)) holds x (N, C, H, W) subsampled by `stride`
// in channels [(K - C)/2, (K - C)/2 + C) and zeros elsewhere. For K = 2C the offset is K/4, the
// reference's F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, K//4, K//4)).
class ShortcutA : public Module {
public:
    ShortcutA(std::string name, int64_t in_channels, int64_t out_channels, int64_t stride);
    std::string name() const override { return name_; }
    Shape output_shape(const Shape& input) const override;
    Tensor& forward(Context& ctx, const Tensor& x) override;
    Tensor& backward(Context& ctx, const Tensor& dy) override;
    int64_t channel_offset() const { return (out_channels_ - in_channels_) / 2; }

private:
    std::string name_;
    int64_t in_channels_, out_channels_, stride_;
    Shape input_shape_;
    Tensor y_, dx_;
};

// He et al.'s basic block: y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), conv1 with
// the block's stride and `hidden` output channels (0: planes; a pruned block is narrower inside).
// The backward sends the gradient of the sum down both branches and adds the two input gradients.
class BasicBlock : public Module, public Composite {
public:
    BasicBlock(ParameterStore& store, std::string name, int64_t in_channels, int64_t planes, int64_t stride,
               ShortcutOption option, float bn_momentum = 0.1f, int64_t hidden = 0);
    std::string name() const override { return name_; }
    Shape output_shape(const Shape& input) const override;
    Tensor& forward(Context& ctx, const Tensor& x) override;
    Tensor& backward(Context& ctx, const Tensor& dy) override;
    void set_training(bool training) override;
    void children(const Shape& input, std::vector<std::pair<Module*, Shape>>& out) override;

    Conv2d& conv1() { return *conv1_; }
    Conv2d& conv2() { return *conv2_; }
    BatchNorm2d& bn1() { return *bn1_; }
    BatchNorm2d& bn2() { return *bn2_; }
    Conv2d* shortcut_conv() { return shortcut_conv_.get(); }  // option b with a shape change, else null
    BatchNorm2d* shortcut_bn() { return shortcut_bn_.get(); }  // the projection's BN, else null
    bool identity_shortcut() const { return !shortcut_a_ && !shortcut_conv_; }
    int64_t in_channels() const { return in_channels_; }
    int64_t planes() const { return planes_; }
    int64_t hidden_channels() const { return conv1_->out_channels(); }
    int64_t stride() const { return stride_; }
    // The post-ReLU hidden activation relu(bn1(conv1(x))) of the last forward (N, hidden, P, Q):
    // for activation-based criteria and for locating ReLU kinks in gradient checks.
    const Tensor& hidden() const;

private:
    std::string name_;
    int64_t in_channels_, planes_, stride_;
    std::unique_ptr<Conv2d> conv1_, conv2_, shortcut_conv_;
    std::unique_ptr<BatchNorm2d> bn1_, bn2_, shortcut_bn_;
    std::unique_ptr<ReLU> relu1_, relu2_;
    std::unique_ptr<ShortcutA> shortcut_a_;
    ResidualAdd add_;
    const Tensor* hidden_ = nullptr;
    Shape input_shape_;
    Tensor dx_;  // (N, C, H, W): sum of both branches' input gradients
};

// SqueezeNet fire module: s = relu(squeeze1x1(x)); y = [relu(expand1x1(s)) ‖ relu(expand3x3(s))]
// concatenated along channels. Convolutions carry biases, as in SqueezeNet.
class Fire : public Module, public Composite {
public:
    Fire(ParameterStore& store, std::string name, int64_t in_channels, int64_t squeeze, int64_t expand1x1,
         int64_t expand3x3);
    std::string name() const override { return name_; }
    Shape output_shape(const Shape& input) const override;
    Tensor& forward(Context& ctx, const Tensor& x) override;
    Tensor& backward(Context& ctx, const Tensor& dy) override;
    void set_training(bool training) override;
    void children(const Shape& input, std::vector<std::pair<Module*, Shape>>& out) override;

    Conv2d& squeeze() { return *squeeze_; }
    Conv2d& expand1x1() { return *expand1_; }
    Conv2d& expand3x3() { return *expand3_; }

private:
    std::string name_;
    std::unique_ptr<Conv2d> squeeze_, expand1_, expand3_;
    std::unique_ptr<ReLU> squeeze_relu_, expand1_relu_, expand3_relu_;
    ConcatChannels concat_;
    Tensor ds_;  // (N, squeeze, H, W): sum of both expand branches' input gradients
};

}  // namespace sp
