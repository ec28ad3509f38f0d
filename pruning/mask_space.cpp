// Mask spaces: segment layout per granularity, attaching a state or a population to the
// model's layers as masks, and the host-side helpers (repair, kept channels).
#include "pruning/mask_space.h"

#include <algorithm>
#include <numeric>

#include "kernels/error.h"
#include "nn/ops.h"

namespace sp {

Granularity granularity_from_name(const std::string& name) {
    if (name == "weight") return Granularity::weight;
    if (name == "kernel") return Granularity::kernel;
    if (name == "filter") return Granularity::filter;
    SP_REQUIRE(false, "unknown granularity '" << name << "' (expected weight, kernel or filter)");
    return Granularity::filter;
}

const char* granularity_name(Granularity g) {
    switch (g) {
        case Granularity::weight: return "weight";
        case Granularity::kernel: return "kernel";
        case Granularity::filter: return "filter";
    }
    return "?";
}

namespace {

bool included(const std::vector<std::string>& include, const std::string& name) {
    return include.empty() || std::find(include.begin(), include.end(), name) != include.end();
}

// The classifier: the layer writing the logits set.
bool is_classifier(const Model& model, const LayerWiring& w) {
    return model.channel_sets()[static_cast<size_t>(w.out_set)].kind == ChannelSet::Kind::logits;
}

}  // namespace

MaskSpace::MaskSpace(Model& model, MaskSpaceOptions options) : model_(model), options_(std::move(options)) {
    const auto& sets = model_.channel_sets();
    const auto& wiring = model_.wiring();
    std::vector<std::string> matched;
    if (options_.granularity == Granularity::filter) {
        for (const ChannelSet& set : sets) {
            bool eligible = set.prunable();
            if (set.kind == ChannelSet::Kind::residual_group && options_.prune_residual_groups &&
                included(options_.include, set.name)) {
                // Option-A shortcuts zero-pad one group into the next: the padding fixes both widths.
                bool padded = set.parent >= 0 || !set.resizable;
                for (const ChannelSet& other : sets) padded = padded || other.parent == set.id;
                SP_REQUIRE(!padded, model_.name() << ": residual group '" << set.name
                                                  << "' is joined by zero-padded (option-A) shortcuts and cannot be "
                                                     "pruned; build the model with option-B shortcuts");
                eligible = true;
            }
            if (!eligible || !included(options_.include, set.name)) continue;
            MaskSegment seg;
            seg.name = set.name;
            seg.offset = size_;
            seg.size = set.size;
            seg.set = set.id;
            seg.min_kept = 1;
            segments_.push_back(seg);
            size_ += set.size;
            matched.push_back(set.name);
        }
    } else {
        for (size_t i = 0; i < wiring.size(); ++i) {
            const LayerWiring& w = wiring[i];
            if (options_.granularity == Granularity::kernel && !w.conv) continue;  // kernels are conv only
            if (is_classifier(model_, w) && !options_.include_classifier) continue;
            if (!included(options_.include, w.name)) continue;
            MaskSegment seg;
            seg.name = w.name;
            seg.offset = size_;
            seg.layer = static_cast<int>(i);
            seg.min_kept = 0;
            if (w.conv) {
                const int64_t kernels = w.conv->out_channels() * (w.conv->in_channels() / w.conv->groups());
                seg.size = options_.granularity == Granularity::kernel ? kernels
                                                                       : kernels * w.conv->kernel() * w.conv->kernel();
            } else {
                seg.size = w.linear->out_features() * w.linear->in_features();
            }
            segments_.push_back(seg);
            size_ += seg.size;
            matched.push_back(w.name);
        }
    }
    for (const std::string& name : options_.include)
        SP_REQUIRE(std::find(matched.begin(), matched.end(), name) != matched.end(),
                   model_.name() << ": '" << name << "' names no eligible " << granularity_name(options_.granularity)
                                 << " segment");
    SP_REQUIRE(size_ > 0, model_.name() << ": the " << granularity_name(options_.granularity)
                                        << " mask space is empty");
}

MaskSpace::~MaskSpace() {
    try {
        detach();
    } catch (...) {  // a destructor must not throw; detach only clears pointers
    }
}

void MaskSpace::attach(Context& ctx, const Tensor& units, const std::vector<Tensor>* masked_weights) {
    SP_REQUIRE(units.device() == ctx.device(), "MaskSpace::attach: units on " << device_name(units.device())
                                                                            << ", context on " << device_name(ctx.device()));
    const bool population = units.rank() == 2;
    SP_REQUIRE((units.rank() == 1 && units.dim(0) == size_) || (population && units.dim(1) == size_ && units.dim(0) > 0),
               "MaskSpace::attach: units " << units.shape().str() << ", expected (" << size_ << ") or (P, " << size_
                                           << ")");
    const int64_t members = population ? units.dim(0) : 1;
    bool masked_ok = !masked_weights || (options_.granularity == Granularity::weight && !population &&
                                         masked_weights->size() == segments_.size());
    for (size_t s = 0; masked_ok && masked_weights && s < segments_.size(); ++s)
        masked_ok = (*masked_weights)[s].numel() == segments_[s].size && (*masked_weights)[s].device() == ctx.device();
    SP_REQUIRE(masked_ok, "MaskSpace::attach: masked weights need weight granularity, one state and one tensor per "
                          "segment of its size on the context's device");
    detach();
    const auto& wiring = model_.wiring();
    float* base = const_cast<float*>(units.data());  // views only read: the layers take const masks
    // Build every mask first, then hand out pointers (expanded_ must not reallocate afterwards).
    expanded_.clear();
    expanded_.reserve(segments_.size());
    masked_views_.reserve(segments_.size());
    for (const MaskSegment& seg : segments_) {
        if (options_.granularity == Granularity::filter) {
            if (members == 1) {
                expanded_.push_back(Tensor::view(base + seg.offset, Shape{seg.size}, ctx.device()));
            } else {
                Tensor m(Shape{members, seg.size}, ctx.device());  // (P, size)
                slice_columns(ctx, units, seg.offset, m);
                expanded_.push_back(std::move(m));
            }
        } else {
            const LayerWiring& w = wiring[static_cast<size_t>(seg.layer)];
            Shape shape = w.conv ? w.conv->weight().shape() : w.linear->weight().shape();
            const int64_t per_unit = options_.granularity == Granularity::kernel ? w.conv->kernel() * w.conv->kernel() : 1;
            if (members == 1 && per_unit == 1) {
                expanded_.push_back(Tensor::view(base + seg.offset, shape, ctx.device()));
                if (masked_weights) {  // segment s's: the views are pushed in segment order
                    const Tensor& masked = (*masked_weights)[masked_views_.size()];
                    masked_views_.push_back(Tensor::view(const_cast<float*>(masked.data()), shape, ctx.device()));
                }
                continue;
            }
            // A population stacks its members' masks along the output axis: (P·K, C/g, R, S).
            std::vector<int64_t> dims = shape.dims();
            dims[0] *= members;
            Tensor m(Shape(dims), ctx.device());
            Tensor units_of_layer = members == 1 ? Tensor::view(base + seg.offset, Shape{seg.size}, ctx.device())
                                                 : Tensor(Shape{members, seg.size}, ctx.device());
            if (members > 1) slice_columns(ctx, units, seg.offset, units_of_layer);
            repeat_elements(ctx, units_of_layer, per_unit, m);  // kernel units over their k×k weights
            expanded_.push_back(std::move(m));
        }
    }
    for (size_t s = 0; s < segments_.size(); ++s) {
        const MaskSegment& seg = segments_[s];
        const Tensor* mask = &expanded_[s];
        if (options_.granularity == Granularity::filter) {
            for (const LayerWiring& w : wiring) {
                if (w.out_set != seg.set) continue;
                if (options_.gate_after_bn && w.bn) w.bn->set_output_mask(mask);
                else if (w.conv) w.conv->set_output_mask(mask);
                else w.linear->set_output_mask(mask);
            }
        } else {
            const LayerWiring& w = wiring[static_cast<size_t>(seg.layer)];
            const Tensor* masked = masked_weights ? &masked_views_[s] : nullptr;
            if (w.conv) w.conv->set_weight_mask(mask, masked);
            else w.linear->set_weight_mask(mask, masked);
        }
    }
    attached_members_ = members;
}

void MaskSpace::detach() {
    for (const LayerWiring& w : model_.wiring()) {
        if (w.conv) {
            w.conv->set_output_mask(nullptr);
            w.conv->set_weight_mask(nullptr);
        } else if (w.linear) {
            w.linear->set_output_mask(nullptr);
            w.linear->set_weight_mask(nullptr);
        }
        if (w.bn) w.bn->set_output_mask(nullptr);
    }
    expanded_.clear();
    masked_views_.clear();
    attached_members_ = 0;
}

std::vector<float> MaskSpace::all_kept() const { return std::vector<float>(static_cast<size_t>(size_), 1.0f); }

namespace {

// Turns units of `seg` on, best score first (ties and no scores: the first ones), until at
// least `required` are kept; makes the segment 0/1 first.
void keep_at_least(std::vector<float>& state, const MaskSegment& seg, int64_t required, const std::vector<float>* scores) {
    auto begin = state.begin() + seg.offset, end = begin + seg.size;
    for (auto it = begin; it != end; ++it) *it = *it > 0.5f ? 1.0f : 0.0f;  // a state holds 0/1
    int64_t kept = std::count(begin, end, 1.0f);
    if (kept >= required) return;
    std::vector<int64_t> order(static_cast<size_t>(seg.size));
    std::iota(order.begin(), order.end(), int64_t{0});
    if (scores) {
        const float* sc = scores->data() + seg.offset;
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sc[a] > sc[b]; });
    }
    for (int64_t u : order) {
        if (kept >= required) break;
        float& v = state[static_cast<size_t>(seg.offset + u)];
        if (v == 0.0f) {
            v = 1.0f;
            ++kept;
        }
    }
}

}  // namespace

void MaskSpace::repair(std::vector<float>& state, const std::vector<float>* scores) const {
    SP_REQUIRE(static_cast<int64_t>(state.size()) == size_,
               "MaskSpace::repair: state has " << state.size() << " units, expected " << size_);
    SP_REQUIRE(!scores || scores->size() == state.size(),
               "MaskSpace::repair: scores have " << scores->size() << " entries, expected " << size_);
    for (const MaskSegment& seg : segments_) keep_at_least(state, seg, seg.min_kept, scores);
}

void MaskSpace::round_kept_widths(std::vector<float>& state, int64_t multiple, const std::vector<float>& scores) const {
    SP_REQUIRE(options_.granularity == Granularity::filter,
               "MaskSpace::round_kept_widths: rounds channel widths (filter granularity), this space is "
                   << granularity_name(options_.granularity));
    SP_REQUIRE(multiple >= 1, "MaskSpace::round_kept_widths: multiple must be at least 1, got " << multiple);
    SP_REQUIRE(static_cast<int64_t>(state.size()) == size_ && scores.size() == state.size(),
               "MaskSpace::round_kept_widths: state and scores must have " << size_ << " units, got " << state.size()
                                                                           << " and " << scores.size());
    for (const MaskSegment& seg : segments_) {
        const auto kept = static_cast<int64_t>(std::count_if(state.begin() + seg.offset, state.begin() + seg.offset + seg.size,
                                                             [](float v) { return v > 0.5f; }));
        const int64_t required = std::max(kept, seg.min_kept);
        keep_at_least(state, seg, std::min(seg.size, (required + multiple - 1) / multiple * multiple), &scores);
    }
}

std::map<int, std::vector<int64_t>> MaskSpace::kept_channels(const std::vector<float>& state) const {
    SP_REQUIRE(options_.granularity == Granularity::filter, "MaskSpace::kept_channels: needs filter granularity, this "
                                                                "space is " << granularity_name(options_.granularity));
    SP_REQUIRE(static_cast<int64_t>(state.size()) == size_,
               "MaskSpace::kept_channels: state has " << state.size() << " units, expected " << size_);
    std::map<int, std::vector<int64_t>> kept;
    for (const MaskSegment& seg : segments_) {
        std::vector<int64_t>& k = kept[seg.set];
        for (int64_t u = 0; u < seg.size; ++u)
            if (state[static_cast<size_t>(seg.offset + u)] > 0.5f) k.push_back(u);
    }
    return kept;
}

}  // namespace sp
