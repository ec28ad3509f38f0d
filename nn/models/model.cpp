// Model: forward/backward over the network, per-layer parameter/MAC accounting, channel wiring.
#include "nn/models/model.h"

#include <functional>

#include "kernels/error.h"
#include "kernels/nvtx.h"

namespace sp {

namespace {

using LeafVisitor = std::function<void(Module&, const Shape&)>;

// Visits every leaf module in execution order with its input shape (batch axis included),
// descending into Sequential containers and Composite blocks.
void walk(Module& m, const Shape& input, const LeafVisitor& visit) {
    if (auto* seq = dynamic_cast<Sequential*>(&m)) {
        Shape s = input;
        for (size_t i = 0; i < seq->size(); ++i) {
            walk((*seq)[i], s, visit);
            s = (*seq)[i].output_shape(s);
        }
    } else if (auto* composite = dynamic_cast<Composite*>(&m)) {
        std::vector<std::pair<Module*, Shape>> parts;
        composite->children(input, parts);
        for (auto& [child, shape] : parts) walk(*child, shape, visit);
    } else {
        visit(m, input);
    }
}

const char* kind_of(const Module& m) {
    if (dynamic_cast<const Conv2d*>(&m)) return "conv";
    if (dynamic_cast<const Linear*>(&m)) return "linear";
    if (dynamic_cast<const BatchNorm2d*>(&m)) return "batchnorm";
    if (dynamic_cast<const ReLU*>(&m)) return "relu";
    if (dynamic_cast<const MaxPool2d*>(&m)) return "maxpool";
    if (dynamic_cast<const AvgPool2d*>(&m)) return "avgpool";
    if (dynamic_cast<const GlobalAvgPool*>(&m)) return "global_avgpool";
    if (dynamic_cast<const Flatten*>(&m)) return "flatten";
    if (dynamic_cast<const Dropout*>(&m)) return "dropout";
    if (dynamic_cast<const LocalResponseNorm*>(&m)) return "lrn";
    if (dynamic_cast<const ShortcutA*>(&m)) return "shortcut_a";
    return "module";
}

// Trainable floats of a leaf layer, from its configuration (valid before allocation).
int64_t params_of(const Module& m) {
    if (auto* c = dynamic_cast<const Conv2d*>(&m))
        return c->out_channels() * (c->in_channels() / c->groups()) * c->kernel() * c->kernel() +
               (c->has_bias() ? c->out_channels() : 0);
    if (auto* l = dynamic_cast<const Linear*>(&m))
        return l->out_features() * l->in_features() + (l->has_bias() ? l->out_features() : 0);
    if (auto* b = dynamic_cast<const BatchNorm2d*>(&m)) return 2 * b->channels();  // gamma, beta
    return 0;
}

// Multiply-accumulates per image of conv and linear layers; 0 for everything else. A conv
// output element costs (C/groups)·R·S MACs, a linear output IN MACs; biases are not counted.
int64_t macs_of(const Module& m, const Shape& output) {
    const int64_t per_image = output.numel() / output[0];
    if (auto* c = dynamic_cast<const Conv2d*>(&m))
        return per_image * (c->in_channels() / c->groups()) * c->kernel() * c->kernel();
    if (auto* l = dynamic_cast<const Linear*>(&m)) return per_image * l->in_features();
    return 0;
}

}  // namespace

Model::Model(std::string name, int64_t in_channels, int64_t height, int64_t width, int64_t num_classes)
    : name_(std::move(name)),
      input_shape_{in_channels, height, width},
      num_classes_(num_classes),
      network_(name_) {
    SP_REQUIRE(in_channels > 0 && height > 0 && width > 0 && num_classes > 0,
               name_ << ": input (C, H, W) and class count must be positive, got " << input_shape_.str() << ", "
                     << num_classes << " classes");
    ChannelSet input;
    input.name = "input";
    input.kind = ChannelSet::Kind::input;
    input.size = in_channels;
    add_set(std::move(input));
}

Tensor& Model::forward(Context& ctx, const Tensor& x) {
    SP_REQUIRE(x.rank() == 4 && x.dim(1) == input_shape_[0] && x.dim(2) == input_shape_[1] &&
                   x.dim(3) == input_shape_[2],
               name_ << ": expected input (N, " << input_shape_[0] << ", " << input_shape_[1] << ", "
                     << input_shape_[2] << "), got " << x.shape().str());
    SP_REQUIRE(store_.allocated(), name_ << ": forward before allocate()");
    NvtxRange range(name_.c_str());
    Tensor& logits = network_.forward(ctx, x);  // (N, classes)
    SP_REQUIRE(logits.rank() == 2 && logits.dim(1) == num_classes_,
               name_ << ": network produced " << logits.shape().str() << ", expected (N, " << num_classes_ << ")");
    return logits;
}

void Model::backward(Context& ctx, const Tensor& dlogits) {
    SP_REQUIRE(dlogits.rank() == 2 && dlogits.dim(1) == num_classes_,
               name_ << ": expected dlogits (N, " << num_classes_ << "), got " << dlogits.shape().str());
    NvtxRange range((name_ + ".backward").c_str());
    network_.backward(ctx, dlogits);  // the input gradient is not needed
}

void Model::set_training(bool training) { network_.set_training(training); }

void Model::allocate(Device device, uint64_t seed) { store_.allocate(device, seed); }

std::vector<LayerCost> Model::layer_costs() {
    std::vector<LayerCost> costs;
    const Shape input{1, input_shape_[0], input_shape_[1], input_shape_[2]};
    walk(network_, input, [&](Module& m, const Shape& in) {
        Shape out = m.output_shape(in);
        std::vector<int64_t> dims(out.dims().begin() + 1, out.dims().end());  // drop the batch axis
        costs.push_back(LayerCost{m.name(), kind_of(m), Shape(std::move(dims)), params_of(m), macs_of(m, out)});
    });
    return costs;
}

int64_t Model::macs_per_image() {
    int64_t total = 0;
    for (const LayerCost& c : layer_costs()) total += c.macs;
    return total;
}

int Model::find_set(const std::string& name) const {
    for (const ChannelSet& set : sets_)
        if (set.name == name) return set.id;
    return -1;
}

int Model::add_set(ChannelSet set) {
    SP_REQUIRE(set.size > 0, name_ << ": channel set '" << set.name << "' must have a positive size, got " << set.size);
    SP_REQUIRE(find_set(set.name) < 0, name_ << ": duplicate channel set '" << set.name << "'");
    const int n = static_cast<int>(sets_.size());
    SP_REQUIRE(set.parent < n, name_ << ": channel set '" << set.name << "' has unknown parent " << set.parent);
    for (int p : set.parts) SP_REQUIRE(p >= 0 && p < n, name_ << ": concat '" << set.name << "' has unknown part " << p);
    set.id = n;
    sets_.push_back(std::move(set));
    return n;
}

void Model::add_layer(LayerWiring layer) {
    const int n = static_cast<int>(sets_.size());
    SP_REQUIRE((layer.conv != nullptr) != (layer.linear != nullptr) && layer.module != nullptr,
               name_ << ": wiring of '" << layer.name << "' needs exactly one of conv / linear");
    SP_REQUIRE(layer.in_set >= 0 && layer.in_set < n && layer.out_set >= 0 && layer.out_set < n,
               name_ << ": wiring of '" << layer.name << "' names unknown channel sets");
    wiring_.push_back(std::move(layer));
}

void Model::check_wiring() const {
    for (const ChannelSet& set : sets_) {
        if (set.kind != ChannelSet::Kind::concat) continue;
        int64_t total = 0;
        for (int p : set.parts) total += sets_[static_cast<size_t>(p)].size;
        SP_REQUIRE(total == set.size, name_ << ": concat '" << set.name << "' has size " << set.size
                                            << " but its parts sum to " << total);
    }
    for (const LayerWiring& w : wiring_) {
        const ChannelSet& in = sets_[static_cast<size_t>(w.in_set)];
        const ChannelSet& out = sets_[static_cast<size_t>(w.out_set)];
        SP_REQUIRE(out.kind != ChannelSet::Kind::input && out.kind != ChannelSet::Kind::concat,
                   name_ << ": layer '" << w.name << "' writes set '" << out.name << "', which no layer can write");
        const int64_t reads = w.conv ? w.conv->in_channels() : w.linear->in_features();
        const int64_t writes = w.conv ? w.conv->out_channels() : w.linear->out_features();
        SP_REQUIRE(reads == in.size * w.in_spatial && writes == out.size,
                   name_ << ": layer '" << w.name << "' maps " << reads << " -> " << writes << " but its sets are '"
                         << in.name << "' (" << in.size << " x " << w.in_spatial << ") -> '" << out.name << "' ("
                         << out.size << ")");
        SP_REQUIRE(!w.bn || w.bn->channels() == out.size,
                   name_ << ": the batch norm of '" << w.name << "' has " << w.bn->channels() << " channels, expected "
                         << out.size);
    }
}

}  // namespace sp
