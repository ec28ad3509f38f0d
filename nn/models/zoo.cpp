// The architectures of the model zoo and the make_model factory. Every builder tracks the
// activation shape through output_shape(), so any input (C, H, W) that the layers fit works.
#include <sstream>

#include "kernels/check.h"
#include "nn/models/model.h"

namespace sp {

namespace {

// Random-stream purpose of SqueezeNet's dropout (keys are (seed, purpose, step)).
constexpr uint64_t kSqueezeNetDropoutPurpose = 0x5351'5a44'524f'5001ull;

// Appends modules to a model's network while tracking the activation shape (1, C, H, W).
class Builder {
public:
    explicit Builder(Model& model)
        : model_(model), shape_{1, model.input_shape()[0], model.input_shape()[1], model.input_shape()[2]} {}

    template <class M, class... Args>
    M& add(Args&&... args) {
        M& m = model_.network().emplace<M>(std::forward<Args>(args)...);
        shape_ = m.output_shape(shape_);
        return m;
    }
    ParameterStore& store() { return model_.parameters(); }
    const Shape& shape() const { return shape_; }  // (1, C, H, W) or (1, F)
    int64_t channels() const { return shape_[1]; }
    int64_t features() const { return shape_.numel(); }  // per image, for a flatten

private:
    Model& model_;
    Shape shape_;
};

std::string index_name(const std::string& prefix, size_t i) { return prefix + "." + std::to_string(i); }

// conv(16,3x3,pad1)-BN-ReLU-maxpool2, conv(32,3x3,pad1)-BN-ReLU-maxpool2, flatten, fc 64, ReLU, fc.
void build_lenet(Model& model, const ModelOptions& o) {
    Builder b(model);
    b.add<Conv2d>(b.store(), "conv1", b.channels(), 16, 3, 1, 1);
    b.add<BatchNorm2d>(b.store(), "bn1", 16, o.bn_momentum);
    b.add<ReLU>("relu1");
    b.add<MaxPool2d>("pool1", 2, 2);
    b.add<Conv2d>(b.store(), "conv2", 16, 32, 3, 1, 1);
    b.add<BatchNorm2d>(b.store(), "bn2", 32, o.bn_momentum);
    b.add<ReLU>("relu2");
    b.add<MaxPool2d>("pool2", 2, 2);
    b.add<Flatten>("flatten");
    b.add<Linear>(b.store(), "fc1", b.features(), 64);
    b.add<ReLU>("relu3");
    b.add<Linear>(b.store(), "fc2", 64, model.num_classes());
}

// Stages of basic blocks after a stem whose output is residual group `stem_group`; each stage
// is one residual group. Records the roles of every conv and returns the last group.
int add_stages(Model& model, Builder& b, int stem_group, const std::vector<int64_t>& widths,
               const std::vector<int64_t>& strides, int blocks, ShortcutOption option, float momentum) {
    int group = stem_group;
    for (size_t s = 0; s < widths.size(); ++s) {
        const int64_t planes = widths[s], in = b.channels();
        const std::string stage = "layer" + std::to_string(s + 1);
        const bool reshapes = strides[s] != 1 || in != planes;
        int stage_group = group;
        if (reshapes) {
            // Option a pads the previous group's channels into this one; option b projects them.
            stage_group = option == ShortcutOption::a ? model.add_group(stage, planes, group, (planes - in) / 2)
                                                      : model.add_group(stage, planes);
        }
        for (int i = 0; i < blocks; ++i) {
            const int input_group = i == 0 ? group : stage_group;
            auto& block = b.add<BasicBlock>(b.store(), index_name(stage, static_cast<size_t>(i)), b.channels(), planes,
                                            i == 0 ? strides[s] : 1, option, momentum);
            model.set_roles(block.conv1(), -1, input_group);
            model.set_roles(block.conv2(), stage_group, -1);
            if (block.shortcut_conv()) model.set_roles(*block.shortcut_conv(), stage_group, input_group);
        }
        group = stage_group;
    }
    return group;
}

// He et al.'s CIFAR ResNet-(6n+2): conv3x3 16, stages 16/32/64 of n blocks, avg pool, fc.
void build_cifar_resnet(Model& model, int n, const ModelOptions& o) {
    Builder b(model);
    auto& stem = b.add<Conv2d>(b.store(), "conv1", b.channels(), 16, 3, 1, 1);
    b.add<BatchNorm2d>(b.store(), "bn1", 16, o.bn_momentum);
    b.add<ReLU>("relu");
    const int stem_group = model.add_group("layer1", 16);  // stage 1 keeps the stem's width
    model.set_roles(stem, stem_group, -1);
    const int last = add_stages(model, b, stem_group, {16, 32, 64}, {1, 2, 2}, n, o.shortcut, o.bn_momentum);
    b.add<GlobalAvgPool>("avgpool");
    b.add<Flatten>("flatten");
    auto& fc = b.add<Linear>(b.store(), "fc", b.features(), model.num_classes());
    model.set_roles(fc, -1, last);
}

// CIFAR ResNet-18: 3x3 stem conv 64 stride 1 (no max-pool), stages 64/128/256/512 of two
// basic blocks with 1x1-conv + BN projection shortcuts, avg pool, fc.
void build_resnet18(Model& model, const ModelOptions& o) {
    Builder b(model);
    auto& stem = b.add<Conv2d>(b.store(), "conv1", b.channels(), 64, 3, 1, 1);
    b.add<BatchNorm2d>(b.store(), "bn1", 64, o.bn_momentum);
    b.add<ReLU>("relu");
    const int stem_group = model.add_group("layer1", 64);
    model.set_roles(stem, stem_group, -1);
    const int last = add_stages(model, b, stem_group, {64, 128, 256, 512}, {1, 2, 2, 2}, 2, ShortcutOption::b,
                                o.bn_momentum);
    b.add<GlobalAvgPool>("avgpool");
    b.add<Flatten>("flatten");
    auto& fc = b.add<Linear>(b.store(), "fc", b.features(), model.num_classes());
    model.set_roles(fc, -1, last);
}

// VGG-16 with BN (conv3x3 pad 1 without bias, BN, ReLU; M = maxpool 2), then flatten and one
// linear layer, as in the CIFAR pruning papers. A pool that would shrink a side below 1 (28x28
// inputs reach 1x1 after four pools) is left out; the flatten size follows from the shape.
void build_vgg16(Model& model, const ModelOptions& o) {
    static const int64_t kPool = 0;
    static const std::vector<int64_t> cfg = {64, 64, kPool, 128, 128, kPool, 256, 256, 256, kPool,
                                             512, 512, 512, kPool, 512, 512, 512, kPool};
    Builder b(model);
    size_t index = 0;
    for (int64_t v : cfg) {
        if (v == kPool) {
            if (b.shape()[2] >= 2 && b.shape()[3] >= 2) b.add<MaxPool2d>(index_name("features", index++), 2, 2);
            continue;
        }
        b.add<Conv2d>(b.store(), index_name("features", index++), b.channels(), v, 3, 1, 1);
        b.add<BatchNorm2d>(b.store(), index_name("features", index++), v, o.bn_momentum);
        b.add<ReLU>(index_name("features", index++));
    }
    // The classifier of the CIFAR pruning papers' VGG-16 (Li et al.; HRank): fc 512, BN, ReLU,
    // fc classes — 14.99M parameters and 313M MACs for 10 classes on 3x32x32.
    b.add<Flatten>("flatten");
    b.add<Linear>(b.store(), "classifier.0", b.features(), 512);
    b.add<BatchNorm2d>(b.store(), "classifier.1", 512, o.bn_momentum);
    b.add<ReLU>("classifier.2");
    b.add<Linear>(b.store(), "classifier.3", 512, model.num_classes());
}

// CIFAR AlexNet (the cuda-convnet / TensorFlow CIFAR-10 tutorial network): conv 64 5x5 pad 2,
// ReLU, maxpool 3 stride 2, LRN; conv 64 5x5 pad 2, ReLU, LRN, maxpool 3 stride 2; fc 384, ReLU,
// fc 192, ReLU, fc classes. LRN as PyTorch's LocalResponseNorm(5, 1e-4, 0.75, 2).
void build_alexnet(Model& model, const ModelOptions&) {
    Builder b(model);
    b.add<Conv2d>(b.store(), "conv1", b.channels(), 64, 5, 1, 2, 1, true);
    b.add<ReLU>("relu1");
    b.add<MaxPool2d>("pool1", 3, 2);
    b.add<LocalResponseNorm>("norm1", 5, 1e-4f, 0.75f, 2.0f);
    b.add<Conv2d>(b.store(), "conv2", 64, 64, 5, 1, 2, 1, true);
    b.add<ReLU>("relu2");
    b.add<LocalResponseNorm>("norm2", 5, 1e-4f, 0.75f, 2.0f);
    b.add<MaxPool2d>("pool2", 3, 2);
    b.add<Flatten>("flatten");
    b.add<Linear>(b.store(), "fc1", b.features(), 384);
    b.add<ReLU>("relu3");
    b.add<Linear>(b.store(), "fc2", 384, 192);
    b.add<ReLU>("relu4");
    b.add<Linear>(b.store(), "fc3", 192, model.num_classes());
}

// SqueezeNet 1.1 for small inputs: the 3x3 stem has stride 1 and the max-pools are 2x2 stride 2
// (ImageNet's stride-2 stem and 3x3 ceil-mode pools would leave nothing of a 32x32 image);
// fire modules as in torchvision's squeezenet1_1; dropout, 1x1 conv to the classes, ReLU,
// global average pool.
void build_squeezenet(Model& model, const ModelOptions& o) {
    Builder b(model);
    b.add<Conv2d>(b.store(), "features.0", b.channels(), 64, 3, 1, 1, 1, true);
    b.add<ReLU>("features.1");
    b.add<MaxPool2d>("features.2", 2, 2);
    b.add<Fire>(b.store(), "features.3", 64, 16, 64, 64);
    b.add<Fire>(b.store(), "features.4", 128, 16, 64, 64);
    b.add<MaxPool2d>("features.5", 2, 2);
    b.add<Fire>(b.store(), "features.6", 128, 32, 128, 128);
    b.add<Fire>(b.store(), "features.7", 256, 32, 128, 128);
    b.add<MaxPool2d>("features.8", 2, 2);
    b.add<Fire>(b.store(), "features.9", 256, 48, 192, 192);
    b.add<Fire>(b.store(), "features.10", 384, 48, 192, 192);
    b.add<Fire>(b.store(), "features.11", 384, 64, 256, 256);
    b.add<Fire>(b.store(), "features.12", 512, 64, 256, 256);
    b.add<Dropout>("classifier.0", o.dropout, kSqueezeNetDropoutPurpose);
    b.add<Conv2d>(b.store(), "classifier.1", 512, model.num_classes(), 1, 1, 0, 1, true);
    b.add<ReLU>("classifier.2");
    b.add<GlobalAvgPool>("classifier.3");
    b.add<Flatten>("flatten");
}

}  // namespace

std::vector<std::string> model_names() {
    return {"lenet", "resnet20", "resnet32", "resnet56", "resnet110", "resnet18", "vgg16", "alexnet", "squeezenet"};
}

std::unique_ptr<Model> make_model(const std::string& name, int64_t in_channels, int64_t height, int64_t width,
                                  int64_t num_classes, const ModelOptions& options) {
    auto model = std::make_unique<Model>(name, in_channels, height, width, num_classes);
    if (name == "lenet") build_lenet(*model, options);
    else if (name == "resnet20") build_cifar_resnet(*model, 3, options);
    else if (name == "resnet32") build_cifar_resnet(*model, 5, options);
    else if (name == "resnet56") build_cifar_resnet(*model, 9, options);
    else if (name == "resnet110") build_cifar_resnet(*model, 18, options);
    else if (name == "resnet18") build_resnet18(*model, options);
    else if (name == "vgg16") build_vgg16(*model, options);
    else if (name == "alexnet") build_alexnet(*model, options);
    else if (name == "squeezenet") build_squeezenet(*model, options);
    else {
        std::ostringstream known;
        for (const auto& n : model_names()) known << " " << n;
        SP_REQUIRE(false, "make_model: unknown model '" << name << "'; known:" << known.str());
    }
    return model;
}

}  // namespace sp
