// The search for the state that meets a budget, and selection at fixed rates.
#include "pruning/baselines.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "kernels/error.h"

namespace sp {

namespace {

// Units of each segment sorted by descending score (ties: lower index first, so deterministic).
std::vector<std::vector<int64_t>> ranked_segments(const MaskSpace& space, const std::vector<float>& scores) {
    std::vector<std::vector<int64_t>> ranked;
    for (const MaskSegment& seg : space.segments()) {
        std::vector<int64_t> idx(static_cast<size_t>(seg.size));
        std::iota(idx.begin(), idx.end(), seg.offset);
        std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) {
            return scores[static_cast<size_t>(a)] > scores[static_cast<size_t>(b)];
        });
        ranked.push_back(std::move(idx));
    }
    return ranked;
}

// Same fraction of every segment: segment s keeps max(min_kept, round(f · size)) units.
std::vector<float> state_per_segment(const MaskSpace& space, const std::vector<std::vector<int64_t>>& ranked, double f) {
    std::vector<float> state(static_cast<size_t>(space.size()), 0.0f);
    for (size_t s = 0; s < ranked.size(); ++s) {
        const MaskSegment& seg = space.segments()[s];
        int64_t keep = std::max<int64_t>(seg.min_kept, std::llround(f * static_cast<double>(seg.size)));
        keep = std::min(keep, seg.size);
        for (int64_t i = 0; i < keep; ++i) state[static_cast<size_t>(ranked[s][static_cast<size_t>(i)])] = 1.0f;
    }
    return state;
}

// Global ranking: the min_kept best units of every segment first, then the rest by score.
std::vector<int64_t> global_order(const MaskSpace& space, const std::vector<float>& scores,
                                  const std::vector<std::vector<int64_t>>& ranked) {
    std::vector<int64_t> forced, rest;
    for (size_t s = 0; s < ranked.size(); ++s) {
        const int64_t m = space.segments()[s].min_kept;
        for (size_t i = 0; i < ranked[s].size(); ++i) (static_cast<int64_t>(i) < m ? forced : rest).push_back(ranked[s][i]);
    }
    std::stable_sort(rest.begin(), rest.end(), [&](int64_t a, int64_t b) {
        return scores[static_cast<size_t>(a)] > scores[static_cast<size_t>(b)];
    });
    forced.insert(forced.end(), rest.begin(), rest.end());
    return forced;
}

std::vector<float> state_global(const MaskSpace& space, const std::vector<int64_t>& order, int64_t keep) {
    std::vector<float> state(static_cast<size_t>(space.size()), 0.0f);
    for (int64_t i = 0; i < keep; ++i) state[static_cast<size_t>(order[static_cast<size_t>(i)])] = 1.0f;
    return state;
}

const char* budget_name(BudgetKind k) { return k == BudgetKind::params ? "parameters" : "MACs"; }

}  // namespace

BudgetKind budget_from_name(const std::string& name) {
    if (name == "params") return BudgetKind::params;
    SP_REQUIRE(name == "macs", "budget: expected params or macs, got '" << name << "'");
    return BudgetKind::macs;
}

double kept_fraction(const ModelAccount& a, BudgetKind kind) {
    return kind == BudgetKind::params ? a.params_kept() : a.macs_kept();
}

std::vector<float> select_to_target(const MaskSpace& space, const std::vector<float>& scores, Selection selection,
                                    const PruneTarget& target) {
    SP_REQUIRE(static_cast<int64_t>(scores.size()) == space.size(),
               "prune: " << scores.size() << " scores for " << space.size() << " units");
    SP_REQUIRE(target.keep > 0.0 && target.keep <= 1.0, "prune: target keep fraction must be in (0, 1], got " << target.keep);
    const auto ranked = ranked_segments(space, scores);
    auto fraction = [&](const std::vector<float>& state) { return kept_fraction(account(space, state), target.kind); };

    // Bisection on a monotone knob: the per-segment fraction f, or the number of units kept.
    std::vector<int64_t> order;
    int64_t forced = 0;  // global: the min_kept units of every segment lead the order
    if (selection == Selection::global) {
        order = global_order(space, scores, ranked);
        for (const MaskSegment& seg : space.segments()) forced += std::min(seg.min_kept, seg.size);
    }
    auto state_at = [&](double knob) {
        return selection == Selection::per_segment
                   ? state_per_segment(space, ranked, knob)
                   : state_global(space, order, forced + std::llround(knob * static_cast<double>(space.size() - forced)));
    };
    double lo = 0.0, hi = 1.0;
    const double smallest = fraction(state_at(lo));
    SP_REQUIRE(smallest <= target.keep * (1.0 + target.tolerance),
               "prune: cannot keep as little as " << target.keep * 100 << "% of the " << budget_name(target.kind)
                   << ": with every prunable unit gone but the minimum per layer, " << smallest * 100
                   << "% remain (layers outside the mask space, such as the classifier or residual groups, hold the rest)");
    for (int iteration = 0; iteration < 60 && hi - lo > 1e-9; ++iteration) {
        const double mid = 0.5 * (lo + hi);
        (fraction(state_at(mid)) > target.keep ? hi : lo) = mid;
    }
    // The closer of the two ends of the bracket.
    std::vector<float> below = state_at(lo), above = state_at(hi);
    double fb = fraction(below);
    const double fa = fraction(above);
    if (std::fabs(fa / target.keep - 1.0) > target.tolerance && std::fabs(fb / target.keep - 1.0) > target.tolerance) {
        // Units too coarse for the knob (a per-layer fraction moves whole channels in every
        // layer at once): fill the gap from below with the best-scoring pruned units that fit.
        std::vector<int64_t> pruned;
        for (int64_t i = 0; i < space.size(); ++i)
            if (below[static_cast<size_t>(i)] == 0.0f) pruned.push_back(i);
        std::stable_sort(pruned.begin(), pruned.end(), [&](int64_t a, int64_t b) {
            return scores[static_cast<size_t>(a)] > scores[static_cast<size_t>(b)];
        });
        const size_t max_tries = 20000;  // each try is one accounting pass
        for (size_t t = 0; t < pruned.size() && t < max_tries && fb / target.keep - 1.0 < -target.tolerance; ++t) {
            below[static_cast<size_t>(pruned[t])] = 1.0f;
            const double f = fraction(below);
            if (f > target.keep * (1.0 + target.tolerance)) below[static_cast<size_t>(pruned[t])] = 0.0f;
            else fb = f;
        }
    }
    const bool take_above = std::fabs(fa - target.keep) < std::fabs(fb - target.keep);
    const double achieved = take_above ? fa : fb;
    SP_REQUIRE(std::fabs(achieved / target.keep - 1.0) <= target.tolerance,
               "prune: the closest reachable kept fraction of " << budget_name(target.kind) << " is " << achieved * 100
                   << "%, not within " << target.tolerance * 100 << "% of the target " << target.keep * 100
                   << "% (units too coarse: try a finer granularity, another target, or a larger prune.keep_tolerance)");
    return take_above ? above : below;
}

void check_rates(const MaskSpace& space, const std::vector<double>& rates) {
    const auto& segments = space.segments();
    if (rates.size() != segments.size()) {
        std::ostringstream names;
        for (const MaskSegment& seg : segments) names << " " << seg.name;
        fail("prune: rates has " + std::to_string(rates.size()) + " entries, the mask space has " +
                 std::to_string(segments.size()) + " prunable sets:" + names.str(),
             __FILE__, __LINE__);
    }
}

std::vector<float> select_by_rates(const MaskSpace& space, const std::vector<float>& scores,
                                   const std::vector<double>& rates) {
    check_rates(space, rates);
    const auto& segments = space.segments();
    const auto ranked = ranked_segments(space, scores);
    std::vector<float> state(static_cast<size_t>(space.size()), 0.0f);
    for (size_t s = 0; s < segments.size(); ++s) {
        const MaskSegment& seg = segments[s];
        SP_REQUIRE(rates[s] >= 0.0 && rates[s] < 1.0, "prune: rate " << rates[s] << " of " << seg.name << " is outside [0, 1)");
        const int64_t keep = std::max<int64_t>(seg.min_kept, seg.size - std::llround(rates[s] * static_cast<double>(seg.size)));
        for (int64_t i = 0; i < keep; ++i) state[static_cast<size_t>(ranked[s][static_cast<size_t>(i)])] = 1.0f;
    }
    return state;
}

}  // namespace sp
