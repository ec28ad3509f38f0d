// The population evaluator: the energies of P masks on one mini-batch of B images in one
// batched pass. The batch is replicated P times (P·B images, member-major); for filter masks
// every gated layer multiplies its output channels by its member's mask in the same kernel
// that scales channels; for weight and kernel masks every conv/linear layer runs the P members'
// masked weights as one grouped convolution (see population.cpp). Filter masks can instead run
// each member's compacted network (compact_members). The reference of every path is
// evaluate_one_by_one(): one forward per member.
#pragma once

#include <cstdint>
#include <string>

#include "nn/context.h"
#include "nn/models/model.h"
#include "nn/ops.h"
#include "nn/tensor.h"
#include "pruning/mask_space.h"

namespace sp {

// EnergyKind (cross_entropy, margin, error; lower is better) is defined with its op,
// member_energies, in nn/op_list.inc.
EnergyKind energy_from_name(const std::string& name);  // "cross-entropy" | "margin" | "error"
const char* energy_name(EnergyKind kind);

struct PopulationOptions {
    EnergyKind energy = EnergyKind::margin;
    // BN during evaluation: running statistics (eval mode, default) or each member's own batch
    // statistics (train-mode BN per member; running statistics are left untouched).
    bool member_batch_statistics = false;
    // Largest number of images in one forward (0 = no limit); the population is split into
    // chunks of whole members beyond it, and also when the device runs out of memory.
    int64_t max_images_per_pass = 0;
    // Weight/kernel masks: all members in one grouped pass (else one member after another).
    bool grouped_weight_masks = true;
    // Filter masks: each member's compacted network (pruning/surgery.h) on the B images, one
    // member after another, instead of the P·B images through the gated dense network. The same
    // energies up to float rounding, for about the MACs the members keep instead of all of them:
    // faster where arithmetic is the cost (the CPU); the batched pass, one launch per layer, suits
    // the GPU. Needs masks that gate after BN (what compaction reproduces).
    bool compact_members = false;
    // Refuse members that empty a segment or hold values other than 0/1 (a host copy of the
    // population per call; callers whose members are valid by construction, like EDropout's
    // repaired evolution, turn it off). Non-finite energies are always refused.
    bool check_members = true;
};

class PopulationEvaluator {
public:
    PopulationEvaluator(MaskSpace& space, PopulationOptions options);

    // population (P, D) 0/1 on ctx's device, images (B, C, H, W), labels (B) → energies (P).
    void evaluate(Context& ctx, const Tensor& population, const Tensor& images, const Tensor& labels,
                  Tensor& energies);
    // The reference: the same energies, one member at a time.
    void evaluate_one_by_one(Context& ctx, const Tensor& population, const Tensor& images, const Tensor& labels,
                             Tensor& energies);

    const PopulationOptions& options() const { return options_; }
    // Members per forward in the last evaluate(): fewer than asked for when it ran out of memory.
    int64_t members_per_pass() const { return members_per_pass_; }

private:
    // compact_members: member p's energy from its compacted network on `images`.
    void evaluate_compacted(Context& ctx, const Tensor& population, const Tensor& images, const Tensor& labels,
                            Tensor& energies);
    // One forward of `members` (P, D) on the first members·B rows of replicated_; energies (P).
    void evaluate_chunk(Context& ctx, const Tensor& members, int64_t batch, Tensor& energies);

    MaskSpace& space_;
    PopulationOptions options_;
    Tensor replicated_;  // (P·B, C, H, W)
    Tensor labels_;      // (P·B)
    int64_t members_per_pass_ = 0;
};

}  // namespace sp
