// The registry of pruning methods. Each method declares its name, its kind, its paper, a one-line
// summary and its stages; `spinprune run` and `spinprune prune`, config validation,
// `spinprune methods` and the README's method table (checked by a test) all read it, and no
// method name is compared anywhere else. Adding a method is its own files plus one line in
// train/method_list.inc.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pruning/baselines.h"
#include "pruning/importance.h"
#include "pruning/mask_space.h"
#include "pruning/settings.h"
#include "train/config.h"
#include "train/trainer.h"

namespace sp {

enum class MethodKind {
    scores,    // scores every unit once on the trained model, then keeps the best (pruning/importance.h)
    searches,  // searches over masks of the trained model
    trains,    // trains and prunes at once (a PhaseHook in the training phase)
};
const char* method_kind_name(MethodKind kind);  // "scores once and selects", ...

struct PruneMethod {
    const char* name;
    MethodKind kind;
    const char* paper;    // where it comes from
    const char* summary;  // one line: what it does
    // scores: the importance and how the units are chosen from it, to prune.budget / prune.keep or
    // at prune.rates / prune.conv_rates.
    const Importance* importance = nullptr;
    Selection selection = Selection::per_segment;
    // searches: the pruned state of `space` (the trained model's), meeting the budget.
    std::vector<float> (*search)(Run& run, MaskSpace& space) = nullptr;
    // trains: trains `model` with pruning as [train] says, then selects, fine-tunes and evaluates
    // the final mask (train/pipeline_stages.h); returns the summary ("completed" false when
    // training stopped early).
    nlohmann::json (*train_and_prune)(Run& run, Model& model, nlohmann::json summary) = nullptr;
    // Its own keys, if any: the table [prune.<table>], their declarations (pruning/settings.h) and
    // the struct of PruneConfig they fill (the method's Options).
    const char* table = nullptr;
    const SettingList& (*settings)() = nullptr;
    void* (*options)(PruneConfig& config) = nullptr;
};

// Every method, in the registry's order.
const std::vector<PruneMethod>& prune_methods();
// "none" first (train and evaluate only), then every method's name: the choices of prune.method.
std::vector<std::string> prune_method_choices();
// The method prune.method names: null for "none"; an error listing the choices for any other
// unknown name.
const PruneMethod* find_method(const std::string& name);

// The importance [prune] criterion names ("nuclear" | "rank" | "l1" | "l2"), which replaces a scoring
// method's own.
const Importance& criterion_importance(const std::string& name);
std::vector<std::string> criterion_choices();

// The README's method table (Markdown, header included), one row per method in registry order.
std::string methods_markdown();
// `spinprune methods`: every method with its kind, paper and summary.
std::string methods_text();

// A scoring method's state of `space`: its importance's scores (in.images / in.labels when it
// scores from data), then its selection to `target`, or at `rates` (one per segment) when given.
std::vector<float> scored_state(const PruneMethod& method, const ScoreInput& in, const PruneTarget& target,
                                const std::vector<double>& rates = {});

}  // namespace sp
