// The channel wiring of a model: which set of channels every convolution, linear layer and
// batch norm reads and writes. Masks, accounting and surgery all work on these sets: pruning
// a channel of a set removes it from every layer that writes the set (output filters / rows,
// and their BN) and from every layer that reads it (input channels / columns).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sp {

class Module;
class Conv2d;
class Linear;
class BatchNorm2d;

struct ChannelSet {
    enum class Kind {
        input,           // the network input: never pruned
        layer_output,    // the output channels of one conv/linear layer (and of its BN)
        residual_group,  // channels joined by residual additions: written by several layers
        concat,          // the concatenation of `parts` (SqueezeNet's fire modules)
        logits,          // the classifier's outputs: never pruned
    };
    int id = -1;
    std::string name;  // the writing layer's name, the residual stage ("layer2") or "<fire>.cat"
    Kind kind = Kind::layer_output;
    int64_t size = 0;
    std::vector<int> parts;  // concat only: the sets concatenated, in order
    // Option-A residual groups: the previous group enters this one through the zero-padded
    // identity shortcut, its channel c landing at channel c + parent_offset (else parent = -1).
    int parent = -1;
    int64_t parent_offset = 0;
    // The builders accept a width for this set (ModelOptions::widths) and surgery may shrink
    // it: layer outputs except the classifier's, and residual groups whose every entry is a
    // layer (option-B / ResNet-18 projections), never option-A groups (zero padding fixes them).
    bool resizable = false;
    // Read by a cross-channel normalisation (AlexNet's LRN): removing channels changes the
    // neighbourhoods, so a masked and a compacted model agree only for contiguous kept ranges.
    bool cross_channel = false;
    // May be pruned: layer outputs except the classifier's; residual groups only when the
    // caller asks for them (and never with option-A shortcuts, whose zero padding fixes widths).
    bool prunable() const { return kind == Kind::layer_output; }
};

// One conv or linear layer's place in the wiring.
struct LayerWiring {
    std::string name;
    Module* module = nullptr;
    Conv2d* conv = nullptr;      // exactly one of conv / linear is set
    Linear* linear = nullptr;
    BatchNorm2d* bn = nullptr;   // the batch norm applied to this layer's output, if any
    int in_set = -1, out_set = -1;
    // A linear layer after a flatten reads each channel of in_set at `in_spatial` consecutive
    // features (H·W of the flattened map); 1 otherwise.
    int64_t in_spatial = 1;
};

}  // namespace sp
