// Residual basic block, fire module and option-A shortcut (see blocks.h).
#include "nn/models/blocks.h"

#include "kernels/error.h"
#include "kernels/nvtx.h"

namespace sp {

// ---- ShortcutA ----------------------------------------------------------------------------

ShortcutA::ShortcutA(std::string name, int64_t in_channels, int64_t out_channels, int64_t stride)
    : name_(std::move(name)), in_channels_(in_channels), out_channels_(out_channels), stride_(stride) {
    SP_REQUIRE(out_channels >= in_channels && (out_channels - in_channels) % 2 == 0 && stride >= 1,
               name_ << ": option-A shortcut needs out_channels >= in_channels with an even difference and stride >= 1, got "
                     << in_channels << " -> " << out_channels << ", stride " << stride);
}

Shape ShortcutA::output_shape(const Shape& input) const {
    SP_REQUIRE(input.rank() == 4 && input[1] == in_channels_,
               name_ << ": expected (N, " << in_channels_ << ", H, W), got " << input.str());
    return Shape{input[0], out_channels_, (input[2] + stride_ - 1) / stride_, (input[3] + stride_ - 1) / stride_};
}

Tensor& ShortcutA::forward(Context& ctx, const Tensor& x) {
    NvtxRange range(name_.c_str());
    input_shape_ = x.shape();
    ensure_shape(y_, output_shape(x.shape()), x.device());  // (N, K, P, Q)
    shortcut_forward(ctx, x, stride_, channel_offset(), y_);
    return y_;
}

Tensor& ShortcutA::backward(Context& ctx, const Tensor& dy) {
    NvtxRange range((name_ + ".backward").c_str());
    ensure_shape(dx_, input_shape_, dy.device());  // (N, C, H, W)
    shortcut_backward(ctx, dy, stride_, channel_offset(), dx_, GradMode::overwrite);
    return dx_;
}

// ---- BasicBlock ---------------------------------------------------------------------------

BasicBlock::BasicBlock(ParameterStore& store, std::string name, int64_t in_channels, int64_t planes, int64_t stride,
                       ShortcutOption option, float bn_momentum, int64_t hidden)
    : name_(std::move(name)), in_channels_(in_channels), planes_(planes), stride_(stride), add_(name_ + ".add") {
    if (hidden == 0) hidden = planes;
    SP_REQUIRE(hidden > 0, name_ << ": hidden width must be positive, got " << hidden);
    // Registration order (conv1, bn1, conv2, bn2, shortcut) follows PyTorch's state_dict order.
    conv1_ = std::make_unique<Conv2d>(store, name_ + ".conv1", in_channels, hidden, 3, stride, 1);
    bn1_ = std::make_unique<BatchNorm2d>(store, name_ + ".bn1", hidden, bn_momentum);
    relu1_ = std::make_unique<ReLU>(name_ + ".relu1");
    conv2_ = std::make_unique<Conv2d>(store, name_ + ".conv2", hidden, planes, 3, 1, 1);
    bn2_ = std::make_unique<BatchNorm2d>(store, name_ + ".bn2", planes, bn_momentum);
    relu2_ = std::make_unique<ReLU>(name_ + ".relu2");
    if (stride != 1 || in_channels != planes) {
        if (option == ShortcutOption::a) {
            shortcut_a_ = std::make_unique<ShortcutA>(name_ + ".shortcut", in_channels, planes, stride);
        } else {
            shortcut_conv_ = std::make_unique<Conv2d>(store, name_ + ".shortcut.0", in_channels, planes, 1, stride, 0);
            shortcut_bn_ = std::make_unique<BatchNorm2d>(store, name_ + ".shortcut.1", planes, bn_momentum);
        }
    }
}

Shape BasicBlock::output_shape(const Shape& input) const {
    Shape main = bn2_->output_shape(conv2_->output_shape(conv1_->output_shape(input)));
    Shape side = shortcut_a_ ? shortcut_a_->output_shape(input)
                 : shortcut_conv_ ? shortcut_conv_->output_shape(input)
                                  : input;
    SP_REQUIRE(main == side, name_ << ": residual branch " << main.str() << " and shortcut " << side.str()
                                   << " differ for input " << input.str());
    return main;
}

Tensor& BasicBlock::forward(Context& ctx, const Tensor& x) {
    NvtxRange range(name_.c_str());
    input_shape_ = x.shape();
    Tensor& h = relu1_->forward(ctx, bn1_->forward(ctx, conv1_->forward(ctx, x)));  // (N, planes, P, Q)
    hidden_ = &h;
    Tensor& r = bn2_->forward(ctx, conv2_->forward(ctx, h));
    const Tensor* s = &x;
    if (shortcut_a_) s = &shortcut_a_->forward(ctx, x);
    if (shortcut_conv_) s = &shortcut_bn_->forward(ctx, shortcut_conv_->forward(ctx, x));
    return relu2_->forward(ctx, add_.forward(ctx, r, *s));
}

Tensor& BasicBlock::backward(Context& ctx, const Tensor& dy) {
    NvtxRange range((name_ + ".backward").c_str());
    // Gradient of the sum: the same for the residual branch and the shortcut.
    const Tensor& g = add_.backward(ctx, relu2_->backward(ctx, dy));
    Tensor& d_main = conv1_->backward(
        ctx, bn1_->backward(ctx, relu1_->backward(ctx, conv2_->backward(ctx, bn2_->backward(ctx, g)))));
    const Tensor* d_side = &g;
    if (shortcut_a_) d_side = &shortcut_a_->backward(ctx, g);
    if (shortcut_conv_) d_side = &shortcut_conv_->backward(ctx, shortcut_bn_->backward(ctx, g));
    ensure_shape(dx_, input_shape_, dy.device());  // (N, C, H, W)
    add(ctx, d_main, *d_side, dx_);
    return dx_;
}

void BasicBlock::set_training(bool training) {
    Module::set_training(training);
    for (Module* m : std::initializer_list<Module*>{conv1_.get(), bn1_.get(), relu1_.get(), conv2_.get(), bn2_.get(),
                                                    relu2_.get(), shortcut_a_.get(), shortcut_conv_.get(),
                                                    shortcut_bn_.get()})
        if (m) m->set_training(training);
}

void BasicBlock::children(const Shape& input, std::vector<std::pair<Module*, Shape>>& out) {
    Shape s1 = conv1_->output_shape(input);
    out.emplace_back(conv1_.get(), input);
    out.emplace_back(bn1_.get(), s1);
    out.emplace_back(relu1_.get(), s1);
    out.emplace_back(conv2_.get(), s1);
    Shape s2 = conv2_->output_shape(s1);
    out.emplace_back(bn2_.get(), s2);
    if (shortcut_a_) out.emplace_back(shortcut_a_.get(), input);
    if (shortcut_conv_) {
        out.emplace_back(shortcut_conv_.get(), input);
        out.emplace_back(shortcut_bn_.get(), shortcut_conv_->output_shape(input));
    }
    out.emplace_back(relu2_.get(), s2);
}

const Tensor& BasicBlock::hidden() const {
    SP_REQUIRE(hidden_ != nullptr, name_ << ": hidden() before the first forward");
    return *hidden_;
}

// ---- Fire ---------------------------------------------------------------------------------

Fire::Fire(ParameterStore& store, std::string name, int64_t in_channels, int64_t squeeze, int64_t expand1x1,
           int64_t expand3x3)
    : name_(std::move(name)), concat_(name_ + ".concat") {
    squeeze_ = std::make_unique<Conv2d>(store, name_ + ".squeeze", in_channels, squeeze, 1, 1, 0, 1, true);
    squeeze_relu_ = std::make_unique<ReLU>(name_ + ".squeeze_activation");
    expand1_ = std::make_unique<Conv2d>(store, name_ + ".expand1x1", squeeze, expand1x1, 1, 1, 0, 1, true);
    expand1_relu_ = std::make_unique<ReLU>(name_ + ".expand1x1_activation");
    expand3_ = std::make_unique<Conv2d>(store, name_ + ".expand3x3", squeeze, expand3x3, 3, 1, 1, 1, true);
    expand3_relu_ = std::make_unique<ReLU>(name_ + ".expand3x3_activation");
}

Shape Fire::output_shape(const Shape& input) const {
    Shape s = squeeze_->output_shape(input);
    Shape e1 = expand1_->output_shape(s), e3 = expand3_->output_shape(s);
    return Shape{e1[0], e1[1] + e3[1], e1[2], e1[3]};
}

Tensor& Fire::forward(Context& ctx, const Tensor& x) {
    NvtxRange range(name_.c_str());
    Tensor& s = squeeze_relu_->forward(ctx, squeeze_->forward(ctx, x));  // (N, S, H, W)
    Tensor& e1 = expand1_relu_->forward(ctx, expand1_->forward(ctx, s));
    Tensor& e3 = expand3_relu_->forward(ctx, expand3_->forward(ctx, s));
    return concat_.forward(ctx, {&e1, &e3});  // (N, E1 + E3, H, W)
}

Tensor& Fire::backward(Context& ctx, const Tensor& dy) {
    NvtxRange range((name_ + ".backward").c_str());
    std::vector<Tensor>& parts = concat_.backward(ctx, dy);
    Tensor& d1 = expand1_->backward(ctx, expand1_relu_->backward(ctx, parts[0]));
    Tensor& d3 = expand3_->backward(ctx, expand3_relu_->backward(ctx, parts[1]));
    ensure_shape(ds_, d1.shape(), dy.device());  // both expand branches read s
    add(ctx, d1, d3, ds_);
    return squeeze_->backward(ctx, squeeze_relu_->backward(ctx, ds_));
}

void Fire::set_training(bool training) {
    Module::set_training(training);
    for (Module* m : std::initializer_list<Module*>{squeeze_.get(), squeeze_relu_.get(), expand1_.get(),
                                                    expand1_relu_.get(), expand3_.get(), expand3_relu_.get()})
        m->set_training(training);
}

void Fire::children(const Shape& input, std::vector<std::pair<Module*, Shape>>& out) {
    Shape s = squeeze_->output_shape(input);
    out.emplace_back(squeeze_.get(), input);
    out.emplace_back(squeeze_relu_.get(), s);
    out.emplace_back(expand1_.get(), s);
    out.emplace_back(expand1_relu_.get(), expand1_->output_shape(s));
    out.emplace_back(expand3_.get(), s);
    out.emplace_back(expand3_relu_.get(), expand3_->output_shape(s));
}

}  // namespace sp
