// Mask spaces: the prunable units of a model at one granularity, as one flat unit vector
// s ∈ {0,1}^D (a state) or a population of P such vectors (P, D), with per-segment views.
//   filter granularity: one unit per channel of every prunable channel set (conv filters and
//     linear neurons; see nn/models/channels.h) — a residual group is one set, pruned whole;
//   weight granularity: one unit per weight of every selected conv/linear layer;
//   kernel granularity: one unit per k×k kernel (K · C/groups per conv).
// attach() hands a state or a population to the model's layers as masks (nothing is copied
// for a single state at filter/weight granularity); detach() restores the dense model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nn/context.h"
#include "nn/models/model.h"
#include "nn/tensor.h"

namespace sp {

enum class Granularity { weight, kernel, filter };
Granularity granularity_from_name(const std::string& name);  // "weight" | "kernel" | "filter"
const char* granularity_name(Granularity g);

struct MaskSpaceOptions {
    Granularity granularity = Granularity::filter;
    // Layer names (weight/kernel) or channel-set names (filter) to include; empty = all eligible.
    std::vector<std::string> include;
    bool prune_residual_groups = false;  // filter: also residual groups (not with option-A shortcuts)
    bool include_classifier = false;     // weight/kernel: also the last linear layer
    // filter: gate a channel after its BN (true removal: masked == compacted) or on the conv
    // output before BN (the EDropout reference's weight zeroing).
    bool gate_after_bn = true;
};

// One contiguous run of units: a channel set (filter) or a layer's weights (weight/kernel).
struct MaskSegment {
    std::string name;
    int64_t offset = 0, size = 0;  // in the unit vector
    int set = -1;                  // filter: the channel set
    int layer = -1;                // weight/kernel: index into model.wiring()
    int64_t min_kept = 1;          // a segment never loses all its units (filter); 0 for weights
};

class MaskSpace {
public:
    MaskSpace(Model& model, MaskSpaceOptions options);
    ~MaskSpace();  // detaches
    MaskSpace(const MaskSpace&) = delete;
    MaskSpace& operator=(const MaskSpace&) = delete;

    Granularity granularity() const { return options_.granularity; }
    const MaskSpaceOptions& options() const { return options_; }
    int64_t size() const { return size_; }  // D
    const std::vector<MaskSegment>& segments() const { return segments_; }
    Model& model() { return model_; }

    // Gives `units` — a state (D) or a population (P, D) of 0/1 floats on ctx's device — to the
    // layers as masks. With a population, every forward must run on a batch of P·B images laid
    // out member-major (rows [p·B, (p+1)·B) belong to member p); a population of weight or
    // kernel masks is for evaluation only (no backward). Valid until detach(), another
    // attach(), or the death of `units`. `masked_weights` (weight granularity, one state only):
    // every segment's w ⊙ mask (its size() values, on the device), used by the layers instead of
    // forming it (valid while the weights stay as they were when it was computed).
    void attach(Context& ctx, const Tensor& units, const std::vector<Tensor>* masked_weights = nullptr);
    void detach();
    int64_t attached_members() const { return attached_members_; }  // 0 when detached

    // Host-side helpers on one state (D floats, 0/1).
    std::vector<float> all_kept() const;
    // Makes a state valid: every segment keeps at least min_kept units (the largest-score
    // units when `scores` is given, else the first ones).
    void repair(std::vector<float>& state, const std::vector<float>* scores = nullptr) const;
    // filter granularity: rounds every segment's kept count up to a multiple of `multiple` (or
    // its whole size), turning on its best-scoring pruned units — widths that suit tensor cores.
    void round_kept_widths(std::vector<float>& state, int64_t multiple, const std::vector<float>& scores) const;
    // filter granularity: the kept channel indices per set, as compact_model() takes them.
    std::map<int, std::vector<int64_t>> kept_channels(const std::vector<float>& state) const;

private:
    Model& model_;
    MaskSpaceOptions options_;
    std::vector<MaskSegment> segments_;
    int64_t size_ = 0;
    int64_t attached_members_ = 0;
    std::vector<Tensor> expanded_;  // per-layer masks built by attach() when views do not do
    std::vector<Tensor> masked_views_;  // attach()'s masked_weights in the layers' weight shapes
};

}  // namespace sp
