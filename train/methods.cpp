// The method registry, built from train/method_list.inc, and the stage every scoring method shares.
#include "train/methods.h"

#include <sstream>

#include "kernels/error.h"

namespace sp {

// Pass 1: declare what the list names (each is defined in the method's own file).
#define SP_SCORING(importance, selection, name, paper, summary) extern const Importance importance;
#define SP_METHOD(descriptor) extern const PruneMethod descriptor;
#include "train/method_list.inc"
#undef SP_SCORING
#undef SP_METHOD

namespace {

PruneMethod scoring_method(const char* name, const Importance& importance, Selection selection, const char* paper,
                           const char* summary) {
    PruneMethod m{name, MethodKind::scores, paper, summary};
    m.importance = &importance;
    m.selection = selection;
    return m;
}

}  // namespace

const std::vector<PruneMethod>& prune_methods() {
    // Pass 2: the registry, in the list's order.
    static const std::vector<PruneMethod> methods = {
#define SP_SCORING(importance, selection, name, paper, summary) \
    scoring_method(name, importance, Selection::selection, paper, summary),
#define SP_METHOD(descriptor) descriptor,
#include "train/method_list.inc"
#undef SP_SCORING
#undef SP_METHOD
    };
    return methods;
}

const char* method_kind_name(MethodKind kind) {
    switch (kind) {
        case MethodKind::scores: return "scores once and selects";
        case MethodKind::searches: return "searches over masks";
        case MethodKind::trains: return "trains while pruning";
    }
    return "?";
}

std::vector<std::string> prune_method_choices() {
    std::vector<std::string> names = {"none"};
    for (const PruneMethod& m : prune_methods()) names.emplace_back(m.name);
    return names;
}

const PruneMethod* find_method(const std::string& name) {
    if (name == "none") return nullptr;
    for (const PruneMethod& m : prune_methods())
        if (name == m.name) return &m;
    std::ostringstream names;
    for (const std::string& n : prune_method_choices()) names << (names.tellp() ? ", " : "") << n;
    fail("prune: unknown method '" + name + "' (" + names.str() + ")", __FILE__, __LINE__);
}

namespace {
// Its own config table: [prune.<table>], or [prune.scoring] (criterion, and the scoring images of
// the importances that read data) for a scoring method.
std::string keys_table(const PruneMethod& m) {
    if (m.table) return std::string("[prune.") + m.table + "]";
    return m.kind == MethodKind::scores ? "[prune.scoring]" : "";
}
}  // namespace

std::string methods_markdown() {
    std::ostringstream out;
    out << "| method | kind | what it does | own keys | from |\n|---|---|---|---|---|\n";
    for (const PruneMethod& m : prune_methods())
        out << "| `" << m.name << "` | " << method_kind_name(m.kind) << " | " << m.summary << " | `" << keys_table(m)
            << "` | " << m.paper << " |\n";
    return out.str();
}

std::string methods_text() {
    std::ostringstream out;
    for (const PruneMethod& m : prune_methods()) {
        out << m.name << "  (" << method_kind_name(m.kind) << ")\n    " << m.summary << "\n    from: " << m.paper << "\n";
        if (m.importance) out << "    importance: " << m.importance->name << " (" << m.importance->doc << ")\n";
        out << "    keys: " << keys_table(m);
        if (m.settings)
            for (const Setting& s : m.settings().settings()) out << " " << s.name;
        out << " (spinprune config --keys)\n";
    }
    return out.str();
}

namespace {
const std::vector<std::pair<const char*, const Importance*>>& criteria() {
    static const std::vector<std::pair<const char*, const Importance*>> list = {
        {"nuclear", &nuclear_importance}, {"rank", &rank_importance}, {"l1", &l1_importance}, {"l2", &l2_importance}};
    return list;
}
}  // namespace

std::vector<std::string> criterion_choices() {
    std::vector<std::string> names;
    for (const auto& [name, importance] : criteria()) names.emplace_back(name);
    return names;
}

const Importance& criterion_importance(const std::string& name) {
    for (const auto& [n, importance] : criteria())
        if (name == n) return *importance;
    fail("prune: unknown criterion '" + name + "' (nuclear, rank, l1, l2)", __FILE__, __LINE__);
}

std::vector<float> scored_state(const PruneMethod& method, const ScoreInput& in, const PruneTarget& target,
                                const std::vector<double>& rates) {
    SP_REQUIRE(method.kind == MethodKind::scores && method.importance,
               "prune: " << method.name << " " << method_kind_name(method.kind) << "; it has no importance scores");
    const std::vector<float> scores = importance_scores(*method.importance, in, method.name);
    if (!rates.empty()) return select_by_rates(in.space, scores, rates);
    return select_to_target(in.space, scores, method.selection, target);
}

}  // namespace sp
