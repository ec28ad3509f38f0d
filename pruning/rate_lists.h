// Published per-conv pruning-rate lists (HRank's notation, used by the energy-aware paper:
// "[0.1]+[0.6]*35+[0.0]*2", parsed by train/config.h's parse_rate_list): the publications' way of
// counting what such a list removes, and the mapping of a list onto our mask space.
//
// The published parameter and FLOP figures count every conv as keeping f − ⌊r·f⌋ of its f
// filters with all of its input channels (a consumer's inputs are not reduced, and the convs
// whose outputs join a residual addition count as pruned although the addition keeps their
// channels), BN not counted, linear layers in full (HRank's get_flops.py; its "FLOPs" are MACs).
// Our accounting (pruning/accounting.h) counts the physically compacted network instead, so both
// are reported side by side.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nn/models/model.h"
#include "pruning/mask_space.h"

namespace sp {

struct PublishedCount {
    int64_t params = 0, macs = 0;            // after pruning, the publications' convention
    int64_t dense_params = 0, dense_macs = 0;  // the same convention with every rate 0
};
// `conv_rates`: one rate per conv of `model` in wiring order (an error naming both counts otherwise).
PublishedCount published_count(Model& model, const std::vector<double>& conv_rates);

struct MappedRates {
    std::vector<double> segment_rates;   // per segment of the space, for select_by_rates
    std::vector<std::string> unapplied;  // convs with a rate > 0 whose outputs the space does not prune
};
// Segment rates of a filter-granularity `space` from one rate per conv: a segment written by one
// conv takes ⌊r·f⌋/f of its rate (so select_by_rates removes ⌊r·f⌋ filters, as the lists' code
// does); a residual group written by several convs takes their common rate (an error naming the
// convs when they differ); segments no conv writes (hidden linear layers) are not pruned.
MappedRates map_conv_rates(Model& model, const MaskSpace& space, const std::vector<double>& conv_rates);

}  // namespace sp
