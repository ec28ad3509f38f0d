// The model zoo: a Model owns its ParameterStore and network, runs forward/backward, and
// accounts parameters and MACs per layer, and records its channel wiring. make_model builds LeNet, the CIFAR ResNets
// (20/32/56/110 and ResNet-18/34), VGG-16, a CIFAR AlexNet and SqueezeNet for any input shape.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"
#include "nn/models/blocks.h"
#include "nn/models/channels.h"
#include "nn/parameters.h"

namespace sp {

struct ModelOptions {
    // Shortcut of the CIFAR ResNets (20/32/56/110) where a stage changes shape; ResNet-18
    // always projects (option b), as in its reference.
    ShortcutOption shortcut = ShortcutOption::a;
    float bn_momentum = 0.1f;
    float dropout = 0.5f;  // SqueezeNet's dropout before the classifier
    // Channel-set name -> width for resizable sets (ChannelSet::resizable; absent = the
    // architecture's default). make_model rejects a width < 1 and a name the model lacks.
    std::map<std::string, int64_t> widths;
};

// One leaf layer's cost for one image. MACs are multiply-accumulates (1 MAC = 2 FLOPs) and
// count only convolutions and linear layers, the convention of the pruning papers; every
// other layer reports 0.
struct LayerCost {
    std::string name;
    std::string kind;  // "conv", "linear", "batchnorm", "relu", "maxpool", "avgpool", ...
    Shape output;      // per image: (C, H, W) or (F)
    int64_t params = 0;  // trainable floats
    int64_t macs = 0;
};

class Model {
public:
    // input_shape (C, H, W); the network starts empty and is filled by a builder.
    Model(std::string name, int64_t in_channels, int64_t height, int64_t width, int64_t num_classes);
    Model(const Model&) = delete;  // layers hold references into the store
    Model& operator=(const Model&) = delete;

    const std::string& name() const { return name_; }
    const Shape& input_shape() const { return input_shape_; }  // (C, H, W)
    int64_t num_classes() const { return num_classes_; }

    // x (N, C, H, W) -> logits (N, classes); valid until the next forward.
    Tensor& forward(Context& ctx, const Tensor& x);
    // dlogits (N, classes), after forward; overwrites every parameter gradient.
    void backward(Context& ctx, const Tensor& dlogits);
    void set_training(bool training);
    bool training() const { return network_.training(); }
    void allocate(Device device, uint64_t seed);

    ParameterStore& parameters() { return store_; }
    Sequential& network() { return network_; }
    int64_t parameter_count() const { return store_.parameter_count(); }

    // Per-image accounting for input_shape(): MACs of conv and linear layers (see LayerCost).
    int64_t macs_per_image();
    std::vector<LayerCost> layer_costs();
    // The channel wiring (nn/models/channels.h): sets[0] is the input; one LayerWiring per
    // Conv2d/Linear in execution order.
    const std::vector<ChannelSet>& channel_sets() const { return sets_; }
    const std::vector<LayerWiring>& wiring() const { return wiring_; }
    int find_set(const std::string& name) const;  // -1 when absent
    // The options the model was built with (widths as given to make_model).
    const ModelOptions& options() const { return options_; }

    // For builders: record channel sets and layers, then check the wiring against the layers.
    int add_set(ChannelSet set);  // returns its id
    void add_layer(LayerWiring layer);
    void set_options(ModelOptions options) { options_ = std::move(options); }
    void check_wiring() const;

private:
    std::string name_;
    Shape input_shape_;
    int64_t num_classes_;
    ParameterStore store_;
    Sequential network_;
    ModelOptions options_;
    std::vector<ChannelSet> sets_;
    std::vector<LayerWiring> wiring_;
};

// Eval mode for a scope (scoring, evaluation, timing), whatever happens in it: the mode the model
// had is restored on exit.
class EvalModeScope {
public:
    explicit EvalModeScope(Model& model) : model_(model), was_training_(model.training()) { model_.set_training(false); }
    ~EvalModeScope() { model_.set_training(was_training_); }
    EvalModeScope(const EvalModeScope&) = delete;
    EvalModeScope& operator=(const EvalModeScope&) = delete;

private:
    Model& model_;
    bool was_training_;
};

// Names accepted by make_model.
std::vector<std::string> model_names();

// Builds a model by name: "lenet", "resnet20", "resnet32", "resnet56", "resnet110", "resnet18", "resnet34",
// "vgg11", "vgg16", "alexnet", "squeezenet". Parameters are registered but not allocated: call
// allocate(device, seed) before use. options.widths resizes channel sets by name (see
// ChannelSet::resizable): conv filters, linear neurons, SqueezeNet squeeze/expand widths,
// VGG's classifier.0, ResNet block-internal "layerS.B.conv1" and, with projections (option b,
// ResNet-18/34), the residual groups "layerS".
std::unique_ptr<Model> make_model(const std::string& name, int64_t in_channels, int64_t height, int64_t width,
                                  int64_t num_classes, const ModelOptions& options = ModelOptions{});

}  // namespace sp
