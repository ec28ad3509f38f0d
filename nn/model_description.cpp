// describe_model: a model's description for its checkpoints (nn/checkpoint.h). Apart from the
// checkpoint reader, so the reader (and its fuzz target) needs none of the layers.
#include "kernels/error.h"
#include "nn/checkpoint.h"
#include "nn/models/model.h"

namespace sp {

ModelDescription describe_model(const Model& model, const std::vector<float>& mean, const std::vector<float>& std) {
    SP_REQUIRE(mean.size() == std.size() && (mean.empty() || static_cast<int64_t>(mean.size()) == model.input_shape()[0]),
               model.name() << ": normalisation of " << mean.size() << " means and " << std.size() << " stds for "
                            << model.input_shape()[0] << " input channels");
    ModelDescription d;
    d.architecture = model.name();
    d.input_shape = model.input_shape().dims();
    d.num_classes = model.num_classes();
    d.mean = mean;
    d.std = std;
    const ModelOptions& o = model.options();
    d.shortcut = o.shortcut == ShortcutOption::b ? "B" : "A";
    d.dropout = o.dropout;
    d.bn_momentum = o.bn_momentum;
    for (const LayerWiring& w : model.wiring())
        if (w.bn) d.bn_eps = w.bn->eps();  // one epsilon for every BN of the zoo
    for (const ChannelSet& set : model.channel_sets()) {
        d.channel_sets[set.name] = set.size;
        if (set.resizable) d.widths[set.name] = set.size;
    }
    return d;
}

}  // namespace sp
