// The model zoo: a Model owns its ParameterStore and network, runs forward/backward, and
// accounts parameters and MACs per layer. make_model builds LeNet, the CIFAR ResNets
// (20/32/56/110 and ResNet-18), VGG-16, a CIFAR AlexNet and SqueezeNet for any input shape.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"
#include "nn/models/blocks.h"
#include "nn/parameters.h"

namespace sp {

struct ModelOptions {
    // Shortcut of the CIFAR ResNets (20/32/56/110) where a stage changes shape; ResNet-18
    // always projects (option b), as in its reference.
    ShortcutOption shortcut = ShortcutOption::a;
    float bn_momentum = 0.1f;
    float dropout = 0.5f;  // SqueezeNet's dropout before the classifier
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

// A set of channels joined by residual additions: the output channels of every member layer
// (and of the BN after it) are summed into the same tensor, so they can only be pruned
// together. With option-A shortcuts the previous stage's group feeds this one through the
// zero-padded identity: its channel c lands in channel c + parent_offset of this group.
struct ResidualGroup {
    int id = -1;
    std::string name;  // "layer2"
    int64_t channels = 0;
    std::vector<std::string> members;  // layers whose outputs are summed into the group
    int parent = -1;                   // option a: the group padded into this one, else -1
    int64_t parent_offset = 0;
};

enum class LayerKind { conv, linear };

// A Conv2d or Linear layer that pruning may act on. output_group is the residual group its
// output channels belong to (-1: free to prune alone); input_group the group its input
// channels come from (-1: not a residual group's channels).
struct PrunableLayer {
    std::string name;
    LayerKind kind = LayerKind::conv;
    Module* module = nullptr;
    Conv2d* conv = nullptr;    // set when kind == conv
    Linear* linear = nullptr;  // set when kind == linear
    int output_group = -1;
    int input_group = -1;
    int64_t out_channels() const;  // K or OUT
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
    // Every Conv2d and Linear in execution order, with its residual roles.
    std::vector<PrunableLayer> prunable_layers();
    const std::vector<ResidualGroup>& residual_groups() const { return groups_; }

    // For builders: record the residual roles of a layer, and create groups.
    int add_group(std::string name, int64_t channels, int parent = -1, int64_t parent_offset = 0);
    void set_roles(const Module& layer, int output_group, int input_group);

private:
    std::string name_;
    Shape input_shape_;
    int64_t num_classes_;
    ParameterStore store_;
    Sequential network_;
    std::vector<ResidualGroup> groups_;
    std::map<const Module*, std::pair<int, int>> roles_;  // (output_group, input_group)
};

// Names accepted by make_model.
std::vector<std::string> model_names();

// Builds a model by name: "lenet", "resnet20", "resnet32", "resnet56", "resnet110", "resnet18",
// "vgg16", "alexnet", "squeezenet". Parameters are registered but not allocated: call
// allocate(device, seed) before use.
std::unique_ptr<Model> make_model(const std::string& name, int64_t in_channels, int64_t height, int64_t width,
                                  int64_t num_classes, const ModelOptions& options = ModelOptions{});

}  // namespace sp
