// Network surgery: compacts a model to the kept channels of its sets by rebuilding the family
// at the kept widths and copying every weight, bias and BN slice on the host.
#include "pruning/surgery.h"

#include <algorithm>

#include "kernels/error.h"

namespace sp {

namespace {

using Kept = std::vector<std::vector<int64_t>>;  // per set id: kept indices, ascending

std::vector<int64_t> all_of(int64_t n) {
    std::vector<int64_t> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
    return v;
}

// Resolves `kept` into the kept indices of every set of `model`: missing sets keep all their
// channels, concatenations keep their parts' kept channels (offset by the parts before them).
Kept resolve_kept(const Model& model, const std::map<int, std::vector<int64_t>>& kept) {
    const auto& sets = model.channel_sets();
    const int n = static_cast<int>(sets.size());
    Kept out(sets.size());
    for (const auto& [id, indices] : kept) {
        SP_REQUIRE(id >= 0 && id < n, "compact_model: " << model.name() << " has no channel set " << id);
        const ChannelSet& set = sets[static_cast<size_t>(id)];
        SP_REQUIRE(!indices.empty(), "compact_model: set '" << set.name << "' would lose all its channels");
        for (size_t i = 0; i < indices.size(); ++i) {
            SP_REQUIRE(indices[i] >= 0 && indices[i] < set.size,
                       "compact_model: set '" << set.name << "' has no channel " << indices[i] << " (size " << set.size << ")");
            SP_REQUIRE(i == 0 || indices[i] > indices[i - 1],
                       "compact_model: kept channels of '" << set.name << "' must be ascending and distinct");
        }
    }
    for (const ChannelSet& set : sets) {
        auto it = kept.find(set.id);
        std::vector<int64_t>& k = out[static_cast<size_t>(set.id)];
        if (set.kind == ChannelSet::Kind::concat) {
            int64_t offset = 0;
            for (int p : set.parts) {  // parts precede the concatenation, so they are resolved
                for (int64_t c : out[static_cast<size_t>(p)]) k.push_back(offset + c);
                offset += sets[static_cast<size_t>(p)].size;
            }
            SP_REQUIRE(it == kept.end() || it->second == k,
                       "compact_model: the kept channels of concatenation '" << set.name
                                                                              << "' must be those of its parts");
            continue;
        }
        k = it == kept.end() ? all_of(set.size) : it->second;
        SP_REQUIRE(set.resizable || static_cast<int64_t>(k.size()) == set.size,
                   "compact_model: channel set '" << set.name << "' cannot be pruned");
    }
    return out;
}

// Copies the host slices of one model's flat parameter and state buffers into another's.
class SliceCopier {
public:
    SliceCopier(Model& src, Model& dst)
        : src_store_(src.parameters()),
          dst_store_(dst.parameters()),
          src_values_(src_store_.values().to_host()),
          src_states_(src_store_.states().to_host()),
          dst_values_(static_cast<size_t>(dst_store_.parameter_floats())),
          dst_states_(static_cast<size_t>(dst_store_.state_floats())),
          value_done_(dst_store_.parameters().size(), false),
          state_done_(dst_store_.state_entries().size(), false) {}

    // dst[o, i, r] = src[out[o], in[i], r] for a (O, I, R) view of one parameter (R = inner
    // block: R·S of a conv weight, in_spatial of a linear weight; I = R = 1 for a vector).
    void parameter(int src_index, int dst_index, const std::vector<int64_t>& out, const std::vector<int64_t>& in,
                   int64_t inner) {
        copy(src_store_.parameters(), dst_store_.parameters(), src_values_, dst_values_, value_done_, src_index,
             dst_index, out, in, inner);
    }
    void state(const std::string& name, const std::vector<int64_t>& out) {
        const int s = find(src_store_.state_entries(), name), d = find(dst_store_.state_entries(), name);
        copy(src_store_.state_entries(), dst_store_.state_entries(), src_states_, dst_states_, state_done_, s, d, out,
             {0}, 1);
    }
    // Every destination entry must have been written exactly once; then the destination's
    // buffers are created on `device` from them (no random initialisation to overwrite).
    void finish(Device device) {
        for (size_t i = 0; i < value_done_.size(); ++i)
            SP_REQUIRE(value_done_[i], "compact_model: parameter '" << dst_store_.parameters()[i].name << "' not copied");
        for (size_t i = 0; i < state_done_.size(); ++i)
            SP_REQUIRE(state_done_[i], "compact_model: state '" << dst_store_.state_entries()[i].name << "' not copied");
        dst_store_.allocate(device, dst_values_, dst_states_);
    }

private:
    static int find(const std::vector<ParameterInfo>& entries, const std::string& name) {
        for (size_t i = 0; i < entries.size(); ++i)
            if (entries[i].name == name) return static_cast<int>(i);
        SP_REQUIRE(false, "compact_model: no entry '" << name << "'");
        return -1;
    }

    static void copy(const std::vector<ParameterInfo>& src_info, const std::vector<ParameterInfo>& dst_info,
                     const std::vector<float>& src, std::vector<float>& dst, std::vector<bool>& done, int s, int d,
                     const std::vector<int64_t>& out, const std::vector<int64_t>& in, int64_t inner) {
        const ParameterInfo& si = src_info[static_cast<size_t>(s)];
        const ParameterInfo& di = dst_info[static_cast<size_t>(d)];
        SP_REQUIRE(si.name == di.name && !done[static_cast<size_t>(d)],
                   "compact_model: entry '" << di.name << "' does not match '" << si.name << "' or is copied twice");
        const int64_t O = static_cast<int64_t>(out.size()), I = static_cast<int64_t>(in.size());
        SP_REQUIRE(di.shape.numel() == O * I * inner,
                   "compact_model: '" << di.name << "' " << di.shape.str() << " is not " << O << " x " << I << " x "
                                      << inner);
        const int64_t src_rows = si.shape.numel() / si.shape[0];  // floats per output unit
        const int64_t src_in = src_rows / inner;
        for (int64_t o = 0; o < O; ++o)
            for (int64_t i = 0; i < I; ++i) {
                SP_REQUIRE(out[static_cast<size_t>(o)] < si.shape[0] && in[static_cast<size_t>(i)] < src_in,
                           "compact_model: slice outside '" << si.name << "'");
                const float* from = src.data() + si.offset + out[static_cast<size_t>(o)] * src_rows +
                                    in[static_cast<size_t>(i)] * inner;
                float* to = dst.data() + di.offset + (o * I + i) * inner;
                std::copy(from, from + inner, to);
            }
        done[static_cast<size_t>(d)] = true;
    }

    ParameterStore& src_store_;
    ParameterStore& dst_store_;
    std::vector<float> src_values_, src_states_, dst_values_, dst_states_;
    std::vector<bool> value_done_, state_done_;
};

}  // namespace

std::unique_ptr<Model> compact_model(Model& model, const std::map<int, std::vector<int64_t>>& kept) {
    SP_REQUIRE(model.parameters().allocated(), "compact_model: " << model.name() << " is not allocated");
    const Kept k = resolve_kept(model, kept);
    const auto& sets = model.channel_sets();

    ModelOptions options = model.options();
    options.widths.clear();
    for (const ChannelSet& set : sets)
        if (set.resizable) options.widths[set.name] = static_cast<int64_t>(k[static_cast<size_t>(set.id)].size());
    const Shape& in = model.input_shape();
    auto compact = make_model(model.name(), in[0], in[1], in[2], model.num_classes(), options);
    compact->set_training(model.training());

    const auto& src_layers = model.wiring();
    const auto& dst_layers = compact->wiring();
    SP_REQUIRE(src_layers.size() == dst_layers.size(), "compact_model: the rebuilt " << model.name() << " has "
                                                           << dst_layers.size() << " layers, expected "
                                                           << src_layers.size());
    SliceCopier copier(model, *compact);
    for (size_t l = 0; l < src_layers.size(); ++l) {
        const LayerWiring& s = src_layers[l];
        const LayerWiring& d = dst_layers[l];
        SP_REQUIRE(s.name == d.name, "compact_model: layer " << l << " is '" << d.name << "', expected '" << s.name << "'");
        const std::vector<int64_t>& out = k[static_cast<size_t>(s.out_set)];
        const std::vector<int64_t>& in_kept = k[static_cast<size_t>(s.in_set)];
        if (s.conv) {
            SP_REQUIRE(s.conv->groups() == 1, "compact_model: grouped convolution '" << s.name << "' is not supported");
            const int64_t rs = s.conv->kernel() * s.conv->kernel();
            copier.parameter(s.conv->weight_index(), d.conv->weight_index(), out, in_kept, rs);  // (K, C, R, S)
            if (s.conv->has_bias()) copier.parameter(s.conv->bias_index(), d.conv->bias_index(), out, {0}, 1);
        } else {
            // (OUT, IN): a flattened input holds each kept channel's in_spatial block.
            copier.parameter(s.linear->weight_index(), d.linear->weight_index(), out, in_kept, s.in_spatial);
            if (s.linear->has_bias()) copier.parameter(s.linear->bias_index(), d.linear->bias_index(), out, {0}, 1);
        }
        if (s.bn) {
            SP_REQUIRE(d.bn != nullptr, "compact_model: the rebuilt '" << d.name << "' lost its batch norm");
            copier.parameter(s.bn->gamma_index(), d.bn->gamma_index(), out, {0}, 1);
            copier.parameter(s.bn->beta_index(), d.bn->beta_index(), out, {0}, 1);
            copier.state(s.bn->name() + ".running_mean", out);
            copier.state(s.bn->name() + ".running_var", out);
        }
    }
    copier.finish(model.parameters().device());
    return compact;
}

std::map<std::string, int64_t> model_widths(const Model& model) {
    std::map<std::string, int64_t> widths;
    for (const ChannelSet& set : model.channel_sets())
        if (set.resizable) widths[set.name] = set.size;
    return widths;
}

}  // namespace sp
