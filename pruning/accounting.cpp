// Parameter and MAC accounting of masked models.
#include "pruning/accounting.h"

#include <map>

#include "kernels/error.h"
#include "nn/layers.h"

namespace sp {

namespace {

// Kept channels of every channel set under a filter state (all channels for other granularities).
std::vector<int64_t> kept_per_set(const MaskSpace& space, const std::vector<float>& state) {
    const auto& sets = const_cast<MaskSpace&>(space).model().channel_sets();
    std::vector<int64_t> kept(sets.size());
    for (const ChannelSet& s : sets) kept[static_cast<size_t>(s.id)] = s.size;
    if (space.granularity() == Granularity::filter)
        for (const MaskSegment& seg : space.segments()) {
            int64_t k = 0;
            for (int64_t i = 0; i < seg.size; ++i) k += state[static_cast<size_t>(seg.offset + i)] != 0.0f;
            kept[static_cast<size_t>(seg.set)] = k;
        }
    // A concatenation keeps what its parts keep (parts precede it in the list).
    for (const ChannelSet& s : sets)
        if (s.kind == ChannelSet::Kind::concat) {
            int64_t k = 0;
            for (int part : s.parts) k += kept[static_cast<size_t>(part)];
            kept[static_cast<size_t>(s.id)] = k;
        }
    return kept;
}

}  // namespace

ModelAccount account(const MaskSpace& space, const std::vector<float>& state) {
    SP_REQUIRE(static_cast<int64_t>(state.size()) == space.size(),
               "account: state has " << state.size() << " units, the mask space " << space.size());
    Model& model = const_cast<MaskSpace&>(space).model();
    const std::vector<int64_t> kept = kept_per_set(space, state);
    const auto& sets = model.channel_sets();

    // Output spatial size per layer, from the model's own cost table.
    std::map<std::string, int64_t> spatial;
    for (const LayerCost& c : model.layer_costs())
        spatial[c.name] = c.output.rank() == 3 ? c.output[1] * c.output[2] : 1;

    // Kept weights per layer at weight/kernel granularity.
    std::map<int, int64_t> kept_weights;
    if (space.granularity() != Granularity::filter)
        for (const MaskSegment& seg : space.segments()) {
            const LayerWiring& w = model.wiring()[static_cast<size_t>(seg.layer)];
            const int64_t per_unit = space.granularity() == Granularity::kernel ? w.conv->kernel() * w.conv->kernel() : 1;
            int64_t k = 0;
            for (int64_t i = 0; i < seg.size; ++i) k += state[static_cast<size_t>(seg.offset + i)] != 0.0f;
            kept_weights[seg.layer] = k * per_unit;
        }

    ModelAccount total;
    int64_t wired_params_dense = 0;
    for (size_t li = 0; li < model.wiring().size(); ++li) {
        const LayerWiring& w = model.wiring()[li];
        LayerAccount a;
        a.name = w.name;
        a.out_total = sets[static_cast<size_t>(w.out_set)].size;
        a.out_kept = kept[static_cast<size_t>(w.out_set)];
        a.in_total = sets[static_cast<size_t>(w.in_set)].size * w.in_spatial;
        a.in_kept = kept[static_cast<size_t>(w.in_set)] * w.in_spatial;
        int64_t per_filter = 1, weights_dense = 0, bias = 0, groups = 1;
        if (w.conv) {
            groups = w.conv->groups();
            per_filter = w.conv->kernel() * w.conv->kernel();
            bias = w.conv->has_bias();
        } else {
            bias = w.linear->has_bias();
        }
        weights_dense = a.out_total * (a.in_total / groups) * per_filter;
        int64_t weights = a.out_kept * (a.in_kept / groups) * per_filter;
        auto kw = kept_weights.find(static_cast<int>(li));
        if (kw != kept_weights.end()) weights = kw->second;  // unstructured: the kept weights themselves
        const int64_t bn = w.bn ? 2 : 0;
        a.params_dense = weights_dense + bias * a.out_total + bn * a.out_total;
        a.params = weights + bias * a.out_kept + bn * a.out_kept;
        const int64_t hw = spatial.count(w.name) ? spatial[w.name] : 1;
        a.macs_dense = weights_dense * hw;
        a.macs = weights * hw;
        wired_params_dense += a.params_dense;
        total.params += a.params;
        total.params_dense += a.params_dense;
        total.macs += a.macs;
        total.macs_dense += a.macs_dense;
        total.layers.push_back(a);
    }
    // Parameters outside conv/linear/BN pairs (none in the zoo today) count as always kept.
    const int64_t rest = model.parameter_count() - wired_params_dense;
    SP_REQUIRE(rest >= 0, "account: the wiring counts more parameters than the model has");
    total.params += rest;
    total.params_dense += rest;
    return total;
}

}  // namespace sp
