// Selection from unit scores (pruning/importance.h): the state that keeps the best units, the same
// fraction of every layer or by one global ranking, to a target given as a kept fraction of
// parameters or MACs, or at fixed per-layer rates. The achieved fraction is within 1% (relative)
// of the target, or an sp::Error says why not.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pruning/accounting.h"
#include "pruning/mask_space.h"

namespace sp {

enum class BudgetKind { params, macs };
BudgetKind budget_from_name(const std::string& name);  // "params" | "macs"

// How far, relative to keep, a selection may land from it by default: 1%.
constexpr double kDefaultKeepTolerance = 0.01;

struct PruneTarget {
    BudgetKind kind = BudgetKind::params;
    double keep = 0.5;  // fraction of the dense model's parameters / MACs to keep
    double tolerance = kDefaultKeepTolerance;  // |kept / keep - 1| allowed (units too coarse to land closer)
};

// Kept fraction of `target.kind` under `state`.
double kept_fraction(const ModelAccount& account, BudgetKind kind);

// How units are chosen from their scores.
enum class Selection {
    global,       // the highest-scoring units over the whole space
    per_segment,  // the same kept fraction of every segment (its highest-scoring units)
};

// The state keeping the highest-scoring units under `selection` whose kept fraction meets
// `target` (within 1%); every segment keeps at least its min_kept units. When the selection's
// steps are too coarse to land within 1%, the best-scoring remaining units that fit are added
// one by one to the closest state below the target.
std::vector<float> select_to_target(const MaskSpace& space, const std::vector<float>& scores, Selection selection,
                                    const PruneTarget& target);

// Fixed per-segment rates: segment s loses round(rates[s] · size) of its lowest-scoring units
// (keeping at least min_kept). One rate per segment, in the mask space's segment order.
std::vector<float> select_by_rates(const MaskSpace& space, const std::vector<float>& scores,
                                   const std::vector<double>& rates);
// An error naming the prunable sets unless there is one rate per segment.
void check_rates(const MaskSpace& space, const std::vector<double>& rates);

}  // namespace sp
