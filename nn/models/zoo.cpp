// The architectures of the model zoo and the make_model factory. Every builder tracks the
// activation shape through output_shape(), so any input (C, H, W) that the layers fit works,
// records the channel wiring (nn/models/channels.h) and honours ModelOptions::widths.
#include <set>
#include <sstream>
#include <type_traits>

#include "kernels/error.h"
#include "nn/models/model.h"

namespace sp {

namespace {

// Random-stream purpose of SqueezeNet's dropout (keys are (seed, purpose, step)).
constexpr uint64_t kSqueezeNetDropoutPurpose = 0x5351'5a44'524f'5001ull;

// Appends modules to a model's network while tracking the activation shape (1, C, H, W) and
// the channel set it holds, and records the wiring of every conv/linear layer.
class Builder {
public:
    Builder(Model& model, const ModelOptions& options)
        : model_(model),
          options_(options),
          shape_{1, model.input_shape()[0], model.input_shape()[1], model.input_shape()[2]} {}

    template <class M, class... Args>
    M& add(Args&&... args) {
        M& m = model_.network().emplace<M>(std::forward<Args>(args)...);
        const Shape before = shape_;
        shape_ = m.output_shape(shape_);
        // A flatten keeps the channel set; a linear then reads each channel at H·W features.
        if constexpr (std::is_same_v<M, Flatten>) {
            if (before.rank() == 4) spatial_ = before[2] * before[3];
        }
        return m;
    }
    ParameterStore& store() { return model_.parameters(); }
    const Shape& shape() const { return shape_; }  // (1, C, H, W) or (1, F)
    int64_t channels() const { return shape_[1]; }
    int64_t features() const { return shape_.numel(); }  // per image, for a flatten
    float momentum() const { return options_.bn_momentum; }

    int current() const { return current_; }  // the channel set of the activation
    void set_current(int set) { current_ = set; }
    int64_t size(int set) const { return model_.channel_sets()[static_cast<size_t>(set)].size; }

    // The width of resizable set `name`: options.widths[name], else `fallback`.
    int64_t width(const std::string& name, int64_t fallback) {
        auto it = options_.widths.find(name);
        if (it == options_.widths.end()) return fallback;
        SP_REQUIRE(it->second > 0, model_.name() << ": width of '" << name << "' must be positive, got " << it->second);
        used_.insert(name);
        return it->second;
    }
    // A resizable layer_output set named after its writing layer.
    int output_set(const std::string& name, int64_t fallback, bool cross_channel = false) {
        ChannelSet set;
        set.name = name;
        set.kind = ChannelSet::Kind::layer_output;
        set.size = width(name, fallback);
        set.resizable = true;
        set.cross_channel = cross_channel;
        return model_.add_set(std::move(set));
    }
    int logits_set(const std::string& name) {
        ChannelSet set;
        set.name = name;
        set.kind = ChannelSet::Kind::logits;
        set.size = model_.num_classes();
        return model_.add_set(std::move(set));
    }
    int add_set(ChannelSet set) { return model_.add_set(std::move(set)); }

    // Records a conv/linear reading `in_set` and writing `out_set`, with the BN on its output.
    // A linear right after a flatten reads in_set at the flattened H·W features per channel.
    void wire(Module& layer, int in_set, int out_set, BatchNorm2d* bn = nullptr) {
        LayerWiring w;
        w.name = layer.name();
        w.module = &layer;
        w.conv = dynamic_cast<Conv2d*>(&layer);
        w.linear = dynamic_cast<Linear*>(&layer);
        w.bn = bn;
        w.in_set = in_set;
        w.out_set = out_set;
        if (w.linear) {
            w.in_spatial = spatial_;
            spatial_ = 1;
        }
        model_.add_layer(std::move(w));
    }
    // wire() from the current set, which becomes out_set.
    void wire_next(Module& layer, int out_set, BatchNorm2d* bn = nullptr) {
        wire(layer, current_, out_set, bn);
        current_ = out_set;
    }

    // Every width given in the options must have named a resizable set; then the wiring must
    // match the layers.
    void finish() {
        for (const auto& [name, w] : options_.widths) {
            if (used_.count(name)) continue;
            std::ostringstream known;
            for (const ChannelSet& set : model_.channel_sets())
                if (set.resizable) known << " " << set.name;
            SP_REQUIRE(model_.find_set(name) < 0,
                       model_.name() << ": channel set '" << name << "' cannot be resized; resizable:" << known.str());
            SP_REQUIRE(false, model_.name() << ": no channel set '" << name << "'; resizable:" << known.str());
        }
        model_.check_wiring();
    }

private:
    Model& model_;
    const ModelOptions& options_;
    Shape shape_;
    int current_ = 0;      // the input set
    int64_t spatial_ = 1;  // H·W per channel of a flattened activation
    std::set<std::string> used_;
};

std::string index_name(const std::string& prefix, size_t i) { return prefix + "." + std::to_string(i); }

// conv(16,3x3,pad1)-BN-ReLU-maxpool2, conv(32,3x3,pad1)-BN-ReLU-maxpool2, flatten, fc 64, ReLU, fc.
void build_lenet(Model& model, const ModelOptions& o) {
    Builder b(model, o);
    int s = b.output_set("conv1", 16);
    auto& conv1 = b.add<Conv2d>(b.store(), "conv1", b.channels(), b.size(s), 3, 1, 1);
    b.wire_next(conv1, s, &b.add<BatchNorm2d>(b.store(), "bn1", b.size(s), o.bn_momentum));
    b.add<ReLU>("relu1");
    b.add<MaxPool2d>("pool1", 2, 2);
    s = b.output_set("conv2", 32);
    auto& conv2 = b.add<Conv2d>(b.store(), "conv2", b.channels(), b.size(s), 3, 1, 1);
    b.wire_next(conv2, s, &b.add<BatchNorm2d>(b.store(), "bn2", b.size(s), o.bn_momentum));
    b.add<ReLU>("relu2");
    b.add<MaxPool2d>("pool2", 2, 2);
    b.add<Flatten>("flatten");
    s = b.output_set("fc1", 64);
    b.wire_next(b.add<Linear>(b.store(), "fc1", b.features(), b.size(s)), s);
    b.add<ReLU>("relu3");
    s = b.logits_set("fc2");
    b.wire_next(b.add<Linear>(b.store(), "fc2", b.features(), model.num_classes()), s);
    b.finish();
}

// A residual group: the channels of one stage, written by every layer summed into them.
// Option-A groups receive the previous group zero-padded (parent) and cannot be resized.
int residual_group(Builder& b, const std::string& name, int64_t fallback, bool resizable, int parent = -1,
                   int64_t parent_offset = 0) {
    ChannelSet set;
    set.name = name;
    set.kind = ChannelSet::Kind::residual_group;
    set.size = resizable ? b.width(name, fallback) : fallback;
    set.resizable = resizable;
    set.parent = parent;
    set.parent_offset = parent_offset;
    return b.add_set(std::move(set));
}

// Stages of basic blocks (blocks[s] in stage s) after a stem whose output is residual group `stem_group` (the
// current set); each stage is one residual group, each block's conv1 its own set
// "layerS.B.conv1". Whether a stage projects follows the default architecture (stride or
// width change), so widths never change the topology.
void add_stages(Builder& b, int stem_group, const std::vector<int64_t>& widths, const std::vector<int64_t>& strides,
                const std::vector<int>& blocks, ShortcutOption option, float momentum) {
    int group = stem_group;
    int64_t default_in = widths[0];  // the stem has the first stage's width
    for (size_t s = 0; s < widths.size(); ++s) {
        const std::string stage = "layer" + std::to_string(s + 1);
        const bool reshapes = strides[s] != 1 || default_in != widths[s];
        int stage_group = group;
        if (reshapes) {
            // Option a pads the previous group's channels into this one; option b projects them.
            stage_group = option == ShortcutOption::a
                              ? residual_group(b, stage, widths[s], false, group, (widths[s] - b.channels()) / 2)
                              : residual_group(b, stage, widths[s], true);
        }
        const int64_t planes = b.size(stage_group);
        for (int i = 0; i < blocks[s]; ++i) {
            const std::string prefix = index_name(stage, static_cast<size_t>(i));
            const int input_group = i == 0 ? group : stage_group;
            const int hidden = b.output_set(prefix + ".conv1", widths[s]);
            auto& block = b.add<BasicBlock>(b.store(), prefix, b.channels(), planes, i == 0 ? strides[s] : 1, option,
                                            momentum, b.size(hidden));
            SP_REQUIRE(!reshapes || i > 0 || !block.identity_shortcut(), prefix << ": expected a shortcut that reshapes");
            b.wire(block.conv1(), input_group, hidden, &block.bn1());
            b.wire(block.conv2(), hidden, stage_group, &block.bn2());
            if (block.shortcut_conv()) b.wire(*block.shortcut_conv(), input_group, stage_group, block.shortcut_bn());
        }
        b.set_current(stage_group);
        group = stage_group;
        default_in = widths[s];
    }
}

// The stem conv3x3 + BN + ReLU writing the first residual group "layer1" (stage 1 keeps the
// stem's width); resizable only when a projection follows (option b).
void add_resnet_stem(Builder& b, int64_t width, bool resizable) {
    const int stem_group = residual_group(b, "layer1", width, resizable);
    auto& stem = b.add<Conv2d>(b.store(), "conv1", b.channels(), b.size(stem_group), 3, 1, 1);
    b.wire_next(stem, stem_group, &b.add<BatchNorm2d>(b.store(), "bn1", b.size(stem_group), b.momentum()));
    b.add<ReLU>("relu");
}

void add_resnet_head(Model& model, Builder& b) {
    b.add<GlobalAvgPool>("avgpool");
    b.add<Flatten>("flatten");
    const int logits = b.logits_set("fc");
    b.wire_next(b.add<Linear>(b.store(), "fc", b.features(), model.num_classes()), logits);
}

// He et al.'s CIFAR ResNet-(6n+2): conv3x3 16, stages 16/32/64 of n blocks, avg pool, fc.
void build_cifar_resnet(Model& model, int n, const ModelOptions& o) {
    Builder b(model, o);
    add_resnet_stem(b, 16, o.shortcut == ShortcutOption::b);
    add_stages(b, b.current(), {16, 32, 64}, {1, 2, 2}, {n, n, n}, o.shortcut, o.bn_momentum);
    add_resnet_head(model, b);
    b.finish();
}

// CIFAR ResNet-18 / ResNet-34: 3x3 stem conv 64 stride 1 (no max-pool), stages 64/128/256/512
// of basic blocks (2/2/2/2 or 3/4/6/3) with 1x1-conv + BN projection shortcuts, avg pool, fc.
void build_resnet18_34(Model& model, const std::vector<int>& blocks, const ModelOptions& o) {
    Builder b(model, o);
    add_resnet_stem(b, 64, true);
    add_stages(b, b.current(), {64, 128, 256, 512}, {1, 2, 2, 2}, blocks, ShortcutOption::b, o.bn_momentum);
    add_resnet_head(model, b);
    b.finish();
}

// VGG with BN for CIFAR: per `cfg` entry conv3x3 pad 1 without bias, BN, ReLU; a 0 is a 2x2
// max pool, left out when it would shrink a side below 1 (28x28 inputs reach 1x1 after four
// pools); then the classifier below, its input size following from the shape.
void build_vgg(Model& model, const ModelOptions& o, const std::vector<int64_t>& cfg) {
    static const int64_t kPool = 0;
    Builder b(model, o);
    size_t index = 0;
    for (int64_t v : cfg) {
        if (v == kPool) {
            if (b.shape()[2] >= 2 && b.shape()[3] >= 2) b.add<MaxPool2d>(index_name("features", index++), 2, 2);
            continue;
        }
        const std::string conv_name = index_name("features", index++);
        const int s = b.output_set(conv_name, v);
        auto& conv = b.add<Conv2d>(b.store(), conv_name, b.channels(), b.size(s), 3, 1, 1);
        b.wire_next(conv, s, &b.add<BatchNorm2d>(b.store(), index_name("features", index++), b.size(s), o.bn_momentum));
        b.add<ReLU>(index_name("features", index++));
    }
    // The classifier of the CIFAR pruning papers' VGG-16 (Li et al.; HRank): fc 512, BN, ReLU,
    // fc classes — for VGG-16 14.99M parameters and 313M MACs for 10 classes on 3x32x32.
    b.add<Flatten>("flatten");
    const int hidden = b.output_set("classifier.0", 512);
    auto& fc = b.add<Linear>(b.store(), "classifier.0", b.features(), b.size(hidden));
    b.wire_next(fc, hidden, &b.add<BatchNorm2d>(b.store(), "classifier.1", b.size(hidden), o.bn_momentum));
    b.add<ReLU>("classifier.2");
    const int logits = b.logits_set("classifier.3");
    b.wire_next(b.add<Linear>(b.store(), "classifier.3", b.features(), model.num_classes()), logits);
    b.finish();
}

// VGG-16 and VGG-11 (configurations D and A of Simonyan & Zisserman), with the classifier above.
void build_vgg16(Model& model, const ModelOptions& o) {
    build_vgg(model, o, {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0});
}
void build_vgg11(Model& model, const ModelOptions& o) {
    build_vgg(model, o, {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0});
}

// CIFAR AlexNet (the cuda-convnet / TensorFlow CIFAR-10 tutorial network): conv 64 5x5 pad 2,
// ReLU, maxpool 3 stride 2, LRN; conv 64 5x5 pad 2, ReLU, LRN, maxpool 3 stride 2; fc 384, ReLU,
// fc 192, ReLU, fc classes. LRN as PyTorch's LocalResponseNorm(5, 1e-4, 0.75, 2).
void build_alexnet(Model& model, const ModelOptions& o) {
    Builder b(model, o);
    int s = b.output_set("conv1", 64, /*cross_channel=*/true);
    b.wire_next(b.add<Conv2d>(b.store(), "conv1", b.channels(), b.size(s), 5, 1, 2, 1, true), s);
    b.add<ReLU>("relu1");
    b.add<MaxPool2d>("pool1", 3, 2);
    b.add<LocalResponseNorm>("norm1", 5, 1e-4f, 0.75f, 2.0f);
    s = b.output_set("conv2", 64, /*cross_channel=*/true);
    b.wire_next(b.add<Conv2d>(b.store(), "conv2", b.channels(), b.size(s), 5, 1, 2, 1, true), s);
    b.add<ReLU>("relu2");
    b.add<LocalResponseNorm>("norm2", 5, 1e-4f, 0.75f, 2.0f);
    b.add<MaxPool2d>("pool2", 3, 2);
    b.add<Flatten>("flatten");
    s = b.output_set("fc1", 384);
    b.wire_next(b.add<Linear>(b.store(), "fc1", b.features(), b.size(s)), s);
    b.add<ReLU>("relu3");
    s = b.output_set("fc2", 192);
    b.wire_next(b.add<Linear>(b.store(), "fc2", b.features(), b.size(s)), s);
    b.add<ReLU>("relu4");
    s = b.logits_set("fc3");
    b.wire_next(b.add<Linear>(b.store(), "fc3", b.features(), model.num_classes()), s);
    b.finish();
}

// A fire module reading the current set: sets "<name>.squeeze", "<name>.expand1x1",
// "<name>.expand3x3" and their concatenation "<name>.cat", which becomes current.
void add_fire(Builder& b, const std::string& name, int64_t squeeze, int64_t expand1x1, int64_t expand3x3) {
    const int sq = b.output_set(name + ".squeeze", squeeze);
    const int e1 = b.output_set(name + ".expand1x1", expand1x1);
    const int e3 = b.output_set(name + ".expand3x3", expand3x3);
    auto& fire = b.add<Fire>(b.store(), name, b.channels(), b.size(sq), b.size(e1), b.size(e3));
    b.wire(fire.squeeze(), b.current(), sq);
    b.wire(fire.expand1x1(), sq, e1);
    b.wire(fire.expand3x3(), sq, e3);
    ChannelSet cat;
    cat.name = name + ".cat";
    cat.kind = ChannelSet::Kind::concat;
    cat.size = b.size(e1) + b.size(e3);
    cat.parts = {e1, e3};
    b.set_current(b.add_set(std::move(cat)));
}

// SqueezeNet 1.1 for small inputs: the 3x3 stem has stride 1 and the max-pools are 2x2 stride 2
// (ImageNet's stride-2 stem and 3x3 ceil-mode pools would leave nothing of a 32x32 image);
// fire modules as in torchvision's squeezenet1_1; dropout, 1x1 conv to the classes, ReLU,
// global average pool.
void build_squeezenet(Model& model, const ModelOptions& o) {
    Builder b(model, o);
    const int stem = b.output_set("features.0", 64);
    b.wire_next(b.add<Conv2d>(b.store(), "features.0", b.channels(), b.size(stem), 3, 1, 1, 1, true), stem);
    b.add<ReLU>("features.1");
    b.add<MaxPool2d>("features.2", 2, 2);
    add_fire(b, "features.3", 16, 64, 64);
    add_fire(b, "features.4", 16, 64, 64);
    b.add<MaxPool2d>("features.5", 2, 2);
    add_fire(b, "features.6", 32, 128, 128);
    add_fire(b, "features.7", 32, 128, 128);
    b.add<MaxPool2d>("features.8", 2, 2);
    add_fire(b, "features.9", 48, 192, 192);
    add_fire(b, "features.10", 48, 192, 192);
    add_fire(b, "features.11", 64, 256, 256);
    add_fire(b, "features.12", 64, 256, 256);
    b.add<Dropout>("classifier.0", o.dropout, kSqueezeNetDropoutPurpose);
    const int logits = b.logits_set("classifier.1");
    b.wire_next(b.add<Conv2d>(b.store(), "classifier.1", b.channels(), model.num_classes(), 1, 1, 0, 1, true), logits);
    b.add<ReLU>("classifier.2");
    b.add<GlobalAvgPool>("classifier.3");
    b.add<Flatten>("flatten");
    b.finish();
}

}  // namespace

std::vector<std::string> model_names() {
    return {"lenet", "resnet20", "resnet32", "resnet56", "resnet110", "resnet18", "resnet34", "vgg11", "vgg16", "alexnet", "squeezenet"};
}

std::unique_ptr<Model> make_model(const std::string& name, int64_t in_channels, int64_t height, int64_t width,
                                  int64_t num_classes, const ModelOptions& options) {
    auto model = std::make_unique<Model>(name, in_channels, height, width, num_classes);
    model->set_options(options);
    if (name == "lenet") build_lenet(*model, options);
    else if (name == "resnet20") build_cifar_resnet(*model, 3, options);
    else if (name == "resnet32") build_cifar_resnet(*model, 5, options);
    else if (name == "resnet56") build_cifar_resnet(*model, 9, options);
    else if (name == "resnet110") build_cifar_resnet(*model, 18, options);
    else if (name == "resnet18") build_resnet18_34(*model, {2, 2, 2, 2}, options);
    else if (name == "resnet34") build_resnet18_34(*model, {3, 4, 6, 3}, options);
    else if (name == "vgg16") build_vgg16(*model, options);
    else if (name == "vgg11") build_vgg11(*model, options);
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
