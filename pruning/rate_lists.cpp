// Published per-conv rate lists: parsing, the publications' counting and the mapping onto a mask
// space (see rate_lists.h).
#include "pruning/rate_lists.h"

#include <cmath>
#include <map>
#include <sstream>

#include "kernels/error.h"

namespace sp {

namespace {

// The convs of `model` in wiring order.
std::vector<const LayerWiring*> convs_of(Model& model) {
    std::vector<const LayerWiring*> convs;
    for (const LayerWiring& w : model.wiring())
        if (w.conv) convs.push_back(&w);
    return convs;
}

// The number of filters a rate removes, as the lists' Python code computes it: int(r * f).
int64_t pruned_filters(double rate, int64_t filters) { return static_cast<int64_t>(std::floor(rate * static_cast<double>(filters))); }

void require_one_rate_per_conv(Model& model, const std::vector<double>& conv_rates) {
    const size_t convs = convs_of(model).size();
    SP_REQUIRE(conv_rates.size() == convs, model.name() << " has " << convs << " convs; the rate list has "
                                                        << conv_rates.size() << " entries (one per conv, in order)");
    for (double r : conv_rates) SP_REQUIRE(r >= 0.0 && r < 1.0, "rate list: rate " << r << " outside [0, 1)");
}

}  // namespace

PublishedCount published_count(Model& model, const std::vector<double>& conv_rates) {
    require_one_rate_per_conv(model, conv_rates);
    std::map<std::string, LayerCost> costs;
    for (const LayerCost& l : model.layer_costs()) costs[l.name] = l;
    PublishedCount c;
    size_t conv = 0;  // the rates index the convs in wiring order, as map_conv_rates does
    for (const LayerWiring& w : model.wiring()) {
        auto found = costs.find(w.module->name());
        SP_REQUIRE(found != costs.end(), model.name() << ": no cost entry for layer " << w.module->name());
        const LayerCost& l = found->second;
        c.dense_params += l.params;
        c.dense_macs += l.macs;
        if (!w.conv) {  // linear layers count in full
            c.params += l.params;
            c.macs += l.macs;
            continue;
        }
        // Every filter carries params / filters weights and macs / filters MACs.
        const int64_t filters = l.output[0];
        const int64_t kept = filters - pruned_filters(conv_rates[conv++], filters);
        c.params += l.params / filters * kept;
        c.macs += l.macs / filters * kept;
    }
    return c;
}

MappedRates map_conv_rates(Model& model, const MaskSpace& space, const std::vector<double>& conv_rates) {
    require_one_rate_per_conv(model, conv_rates);
    SP_REQUIRE(space.granularity() == Granularity::filter, "a per-conv rate list prunes filters: prune.granularity = \"filter\"");
    const std::vector<const LayerWiring*> convs = convs_of(model);
    std::vector<bool> applied(convs.size(), false);
    MappedRates m;
    for (const MaskSegment& seg : space.segments()) {
        double rate = 0.0;
        std::ostringstream writers;
        bool first = true, differ = false;
        for (size_t i = 0; i < convs.size(); ++i) {
            if (convs[i]->out_set != seg.set) continue;
            writers << (first ? "" : ", ") << convs[i]->name << " (" << conv_rates[i] << ")";
            if (!first && conv_rates[i] != rate) differ = true;
            if (first) rate = conv_rates[i];
            first = false;
            applied[i] = true;
        }
        SP_REQUIRE(!differ, "rate list: the channels of " << seg.name << " are joined by residual additions and pruned "
                                                          << "together, but its convs have different rates: " << writers.str());
        m.segment_rates.push_back(static_cast<double>(pruned_filters(rate, seg.size)) / static_cast<double>(seg.size));
    }
    for (size_t i = 0; i < convs.size(); ++i)
        if (!applied[i] && conv_rates[i] > 0.0) m.unapplied.push_back(convs[i]->name);
    return m;
}

}  // namespace sp
