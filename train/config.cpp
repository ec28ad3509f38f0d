// TOML config loading and validation: the only library file that includes toml++ (through
// train/toml.h; it is slow to compile and does not build under nvcc). The keys of every section
// are declared once, in the tables below (and each method's own table, named by the method
// registry); one generic reader and writer walks them.
#include "train/config.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "kernels/error.h"
#include "nn/models/model.h"
#include "train/methods.h"
#include "train/toml.h"

namespace sp {

namespace {

// ---- the tables of the sections spinprune itself owns (a method's keys are in its own file)

const SettingTable<ExperimentConfig>& top_settings() {
    using C = ExperimentConfig;
    static const SettingTable<C> table =
        SettingTable<C>()
            .string("name", &C::name, "experiment name: names the run directory runs/<name>/<date-time>")
            .integer("seed", &C::seed, 0, INT64_MAX, "seed of every random stream (weights, data order, masks)")
            .choice("device", &C::device, {"auto", "cpu", "cuda"}, "where it runs; auto: a usable GPU, else the CPU")
            .boolean("deterministic", &C::deterministic, "fixed cuDNN algorithms and no atomics in reductions")
            .choice("math", &C::math, {"tf32", "fp32"},
                    "CUDA convolutions and GEMMs: tf32 tensor cores (FP32 accumulation) or exact fp32; the CPU is always fp32");
    return table;
}

const SettingTable<DataConfig>& data_settings() {
    using D = DataConfig;
    static const SettingTable<D> table =
        SettingTable<D>()
            .choice("dataset", &D::dataset, {"fashion-mnist", "cifar10", "cifar100"}, "the dataset")
            .string("dir", &D::dir, "where its files are (\"\": the dataset's default location)")
            .integer("validation", &D::validation, 0, 1000000, "training images held out for validation")
            .integer("train_subset", &D::train_subset, 0, INT64_MAX, "> 0: only the first N training images (quick runs)")
            .boolean("augment", &D::augment, "random crop (pad 4) and horizontal flip")
            .boolean("normalize", &D::normalize, "per-channel mean/std of the training split");
    return table;
}

const SettingTable<ModelConfig>& model_settings() {
    using M = ModelConfig;
    static const SettingTable<M> table =
        SettingTable<M>()
            .choice("name", &M::name, model_names(), "the architecture")
            .choice("shortcut", &M::shortcut, {"A", "B"}, "residual shortcut option of ResNet-20/32/56/110")
            .widths("widths", &M::widths, 1, 65536,
                    "channel-set name = width: a wider or narrower variant (spinprune info lists the sets)");
    return table;
}

// [train] and [finetune] share their keys ([finetune] epochs = 0: no fine-tuning).
const SettingTable<TrainConfig>& train_settings() {
    using T = TrainConfig;
    static const SettingTable<T> table =
        SettingTable<T>()
            .integer("epochs", &T::epochs, 0, 100000, "epochs of the phase (at least 1 in [train])")
            .integer("batch_size", &T::batch_size, 1, 1 << 20, "images per step")
            .integer("eval_batch_size", &T::eval_batch_size, 1, 1 << 20, "images per evaluation forward")
            .choice("optimizer", &T::optimizer, {"sgd", "adam", "adadelta"}, "the optimizer")
            .number("lr", &T::lr, 0.0, 1e3, "learning rate")
            .number("momentum", &T::momentum, 0.0, 1.0, "sgd: momentum")
            .boolean("nesterov", &T::nesterov, "sgd: Nesterov momentum (needs momentum > 0)")
            .number("weight_decay", &T::weight_decay, 0.0, 1.0, "L2 weight decay")
            .number("rho", &T::rho, 0.0, 1.0, "adadelta: rho")
            .number("beta1", &T::beta1, 0.0, 0.999999, "adam: beta1")
            .number("beta2", &T::beta2, 0.0, 0.999999, "adam: beta2")
            .choice("schedule", &T::schedule, {"constant", "step", "multistep", "cosine"}, "learning-rate schedule")
            .integer("step_size", &T::step_size, 1, 100000, "step: epochs between decays")
            .integers("milestones", &T::milestones, "multistep: the epochs of the decays, increasing")
            .number("gamma", &T::gamma, 0.0, 1.0, "step / multistep: the decay factor")
            .number("min_lr", &T::min_lr, 0.0, 1e3, "cosine: the floor (at most lr)")
            .number("warmup_epochs", &T::warmup_epochs, 0.0, 100000.0, "linear warm-up epochs (at most epochs)")
            .number("label_smoothing", &T::label_smoothing, 0.0, 0.999, "label smoothing of the cross-entropy")
            .integer("checkpoint_every", &T::checkpoint_every, 1, 100000, "epochs between checkpoints")
            .choice("on_nonfinite", &T::on_nonfinite, {"stop", "skip"},
                    "a step with a NaN/Inf loss or gradient: stop with an error naming the step and layer, or skip it");
    return table;
}

const SettingTable<PruneConfig>& prune_settings() {
    using P = PruneConfig;
    static const SettingTable<P> table =
        SettingTable<P>()
            .choice("method", &P::method, prune_method_choices(), "the pruning method (spinprune methods); none: train only")
            .choice("granularity", &P::granularity, {"filter", "weight", "kernel"}, "the units a mask keeps or prunes")
            .choice("budget", &P::budget, {"params", "macs"}, "what keep is a fraction of")
            .number("keep", &P::keep, 1e-6, 1.0, "the fraction of the dense model's parameters or MACs kept")
            .number("keep_tolerance", &P::keep_tolerance, 0.0, 1.0,
                    "how far a selection may land from keep, relative to it (0.01: within 1%), where units are too coarse")
            .boolean("gate_after_bn", &P::gate_after_bn, "filter masks gate after BN (true removal), else the conv output")
            .boolean("prune_residual_groups", &P::prune_residual_groups, "also prune the channels joined by residual additions")
            .integer("round_to", &P::round_to, 1, 1024,
                     "filter: kept widths rounded up to a multiple of this (8: tensor cores), adding back the largest-L1 filters")
            .string("baseline_checkpoint", &P::baseline_checkpoint, "a trained model to prune (\"\": train the baseline)")
            .string("baseline_cache", &P::baseline_cache,
                    "a folder where methods that prune a trained network keep their baseline, and reuse it when data, "
                    "model, training, seed, device and code are the same (\"\": train it every run)")
            .boolean("train_baseline", &P::train_baseline,
                     "methods that train while pruning: also train the unpruned network first, for the comparison")
            .numbers("rates", &P::rates, 0.0, 0.999, "per prunable set, the fraction to prune (empty: keep and budget)")
            .string("conv_rates", &P::conv_rates,
                    "a published per-conv rate list in HRank's notation, \"[0.1]+[0.6]*35+...\", instead of rates");
    return table;
}

const SettingTable<ScoringConfig>& scoring_settings() {
    using S = ScoringConfig;
    static const SettingTable<S> table =
        SettingTable<S>()
            .integer("images", &S::images, 1, 1000000, "training images the data-driven scores average over")
            .boolean("post_relu", &S::post_relu, "feature-map scores after ReLU (else the BN output)")
            .choice("criterion", &S::criterion, criterion_choices(),
                    "replaces a scoring method's importance (\"\": the method's own)", /*optional=*/true);
    return table;
}

// One section: its dotted name ("" = the top level), its keys and the struct they fill.
struct SectionRef {
    std::string name;
    const SettingList* keys;
    void* object;
};

// Every section of `c`, [prune]'s sub-tables included, in reading order.
std::vector<SectionRef> sections(ExperimentConfig& c) {
    std::vector<SectionRef> all = {{"", &top_settings(), &c},          {"data", &data_settings(), &c.data},
                                   {"model", &model_settings(), &c.model}, {"train", &train_settings(), &c.train},
                                   {"finetune", &train_settings(), &c.finetune}, {"prune", &prune_settings(), &c.prune},
                                   {"prune.scoring", &scoring_settings(), &c.prune.scoring}};
    for (const PruneMethod& m : prune_methods())
        if (m.table) all.push_back({std::string("prune.") + m.table, &m.settings(), m.options(c.prune)});
    return all;
}

// ---- the TOML side

std::string describe(const toml::node& node) {
    std::ostringstream out;
    out << node.type() << " ";
    node.visit([&](auto&& n) { out << n; });
    return out.str();
}

// The value of `node` as `setting`'s type; a wrong type is an error naming the file and key.
SettingValue value_of(const Setting& setting, const toml::node& node, const std::string& file, const std::string& key) {
    auto wrong = [&](const char* expected) { fail_setting(file, key, expected, describe(node)); };
    switch (setting.type) {
        case SettingType::boolean:
            if (!node.is_boolean()) wrong("true or false");
            return *node.value<bool>();
        case SettingType::integer:
            if (!node.is_integer()) wrong("an integer");
            return *node.value<int64_t>();
        case SettingType::number:
            if (!node.is_number()) wrong("a number");
            return *node.value<double>();
        case SettingType::string:
        case SettingType::choice:
            if (!node.is_string() || !node.value<std::string>()) wrong("a string");
            return *node.value<std::string>();
        case SettingType::numbers:
        case SettingType::integers: {
            const bool integers = setting.type == SettingType::integers;
            const char* expected = integers ? "an array of integers" : "an array of numbers";
            const toml::array* array = node.as_array();
            if (!array) wrong(expected);
            std::vector<double> numbers;
            std::vector<int64_t> ints;
            for (const toml::node& element : *array) {
                if (integers ? !element.is_integer() : !element.is_number()) wrong(expected);
                if (integers) ints.push_back(*element.value<int64_t>());
                else numbers.push_back(*element.value<double>());
            }
            if (integers) return ints;
            return numbers;
        }
        case SettingType::widths: {
            const toml::table* table = node.as_table();
            if (!table) wrong("a table of integers (name = width)");
            std::map<std::string, int64_t> widths;
            for (const auto& [name, element] : *table) {
                const std::string entry = key + "." + std::string(name.str());
                if (!element.is_integer()) fail_setting(file, entry, "an integer width", describe(element));
                widths[std::string(name.str())] = *element.value<int64_t>();
            }
            return widths;
        }
    }
    return false;
}

// Reads `section`'s keys from root into its struct: each given value is type- and range-checked;
// a key the table does not declare is an error (`subtables`: the nested sections it holds).
void read_section(const toml::table& root, const std::string& file, const SectionRef& section,
                  const std::set<std::string>& subtables) {
    const toml::table* table = &root;
    if (!section.name.empty()) {
        const toml::node* node = root.at_path(section.name).node();  // "prune.gibbs": a nested table
        if (!node) return;
        table = node->as_table();
        SP_REQUIRE(table, file << ": [" << section.name << "] must be a table");
    }
    const std::string prefix = section.name.empty() ? "" : section.name + ".";
    for (const Setting& s : section.keys->settings()) {
        const toml::node* node = table->get(s.name);
        if (!node) continue;
        const SettingValue value = value_of(s, *node, file, prefix + s.name);
        SettingList::check_value(s, value, file, prefix + s.name);
        s.set(section.object, value);
    }
    for (const auto& [key, node] : *table) {
        const std::string k(key.str());
        if (section.keys->find(k) || subtables.count(k)) continue;
        fail(file + ": unknown key '" + prefix + k + "'", __FILE__, __LINE__);
    }
}

toml::table write_section(const SettingList& keys, const void* object) {
    toml::table table;
    for (const Setting& s : keys.settings()) {
        const SettingValue v = s.get(object);
        if (const auto* b = std::get_if<bool>(&v)) table.insert(s.name, *b);
        else if (const auto* i = std::get_if<int64_t>(&v)) table.insert(s.name, *i);
        else if (const auto* d = std::get_if<double>(&v)) table.insert(s.name, *d);
        else if (const auto* str = std::get_if<std::string>(&v)) table.insert(s.name, *str);
        else if (const auto* numbers = std::get_if<std::vector<double>>(&v)) {
            toml::array array;
            for (double x : *numbers) array.push_back(x);
            table.insert(s.name, std::move(array));
        } else if (const auto* ints = std::get_if<std::vector<int64_t>>(&v)) {
            toml::array array;
            for (int64_t x : *ints) array.push_back(x);
            table.insert(s.name, std::move(array));
        } else if (const auto* widths = std::get_if<std::map<std::string, int64_t>>(&v)) {
            toml::table sets;
            for (const auto& [name, width] : *widths) sets.insert(name, width);
            if (!sets.empty()) table.insert(s.name, std::move(sets));  // no widths: the default architecture
        }
    }
    return table;
}

// The table at dotted `path` in root, created when `create` (else null when absent).
toml::table* table_at(toml::table& root, const std::string& path, bool create) {
    toml::table* table = &root;
    size_t start = 0;
    while (start < path.size()) {
        const size_t dot = path.find('.', start);
        const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        if (!table->contains(part)) {
            if (!create) return nullptr;
            table->insert(part, toml::table{});
        }
        table = table->get(part)->as_table();
        if (!table) return nullptr;
        start = dot == std::string::npos ? path.size() : dot + 1;
    }
    return table;
}

// Keys that have moved: in a saved config they are moved to their new place (unless it is set
// already); anywhere else they are an error naming the new key.
void apply_renames(toml::table& root, const std::string& file, bool saved) {
    std::set<std::string> moved;
    for (const auto& [from, to] : renamed_config_keys()) {
        const size_t dot = from.rfind('.');
        toml::table* parent = table_at(root, from.substr(0, dot), false);
        const std::string key = from.substr(dot + 1);
        if (!parent || !parent->contains(key)) continue;
        if (!saved) {
            std::string names;
            for (const auto& [f, t] : renamed_config_keys())
                if (f == from) names += (names.empty() ? "'" : " and '") + t + "'";
            fail(file + ": key '" + from + "' is now " + names + " (the keys of a method live in its own table)", __FILE__,
                 __LINE__);
        }
        const toml::node& value = *parent->get(key);
        const size_t to_dot = to.rfind('.');
        toml::table* target = table_at(root, to.substr(0, to_dot), true);
        const std::string to_key = to.substr(to_dot + 1);
        // "prune.energy" = "ising" has no Gibbs counterpart (the chains are scored on the batch).
        const bool fits = to != "prune.gibbs.chain_energy" || value.value<std::string>() != std::optional<std::string>("ising");
        if (target && fits && !target->contains(to_key)) target->insert(to_key, value);
        moved.insert(from);
    }
    for (const std::string& from : moved) {
        const size_t dot = from.rfind('.');
        table_at(root, from.substr(0, dot), false)->erase(from.substr(dot + 1));
    }
}

// toml++ 3.3 reaches __builtin_unreachable (undefined behaviour) when it asks whether a non-ASCII
// code point such as "§" or "é" is whitespace (is_non_ascii_horizontal_whitespace; upstream
// issues #190/#295, fixed after 3.3; found by fuzz/config_fuzz.cpp). It asks only where TOML
// allows no non-ASCII character at all — outside strings and comments, including inside a
// malformed bare value such as `1x"é"` — and after the line-ending backslash of a multi-line
// basic string. Those places are checked here first, with an error naming the line; strings and
// comments keep any UTF-8 text. A quote opens a string only where one may start (after a key's
// `=`, `[`, `{`, `,`, a dotted key's `.` or at the start of a line), so a quote inside a malformed
// bare value — after a second `=` or a time's `.` too, as in `o=0-0='…` — does not.
void refuse_misplaced_non_ascii(const std::string& text, const std::string& source) {
    enum class State { code, comment, basic, multi_basic, literal, multi_literal };
    State state = State::code;
    int line = 1;
    char before = '\n';  // in code: the last character other than a space or tab
    // Whether the next `=` separates a key from its value: at the start of a line outside arrays
    // and inline tables, and after an inline table's `{` or `,`. Another `=` opens no string.
    bool expect_key = true;
    std::vector<char> nesting;  // the open value brackets, '[' and '{'
    auto newline = [&] {
        if (nesting.empty()) expect_key = true;
    };
    auto starts = [&](size_t i, const char* token) { return text.compare(i, std::strlen(token), token) == 0; };
    auto refuse = [&](const char* where) {
        SP_REQUIRE(false, source << ":" << line << ": a non-ASCII character " << where
                                 << "; TOML allows them only inside strings and comments");
    };
    auto back_to_code = [&](char last) {
        state = State::code;
        before = last;
        if (last == '\n') newline();
    };
    size_t i = starts(0, "\xEF\xBB\xBF") ? 3 : 0;  // a byte-order mark
    for (; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\n') ++line;
        switch (state) {
            case State::code: {
                // (before != 0: strchr would find the terminator of its own string)
                const bool string_may_start = before != '\0' && std::strchr("\n=[{,.", before) != nullptr;
                if (c == '#') state = State::comment;
                else if (string_may_start && starts(i, "\"\"\"")) state = State::multi_basic, i += 2;
                else if (string_may_start && starts(i, "'''")) state = State::multi_literal, i += 2;
                else if (string_may_start && c == '"') state = State::basic;
                else if (string_may_start && c == '\'') state = State::literal;
                else if (static_cast<unsigned char>(c) >= 0x80) refuse("outside a string or comment");
                char last = c;
                if (c == '\n') {
                    newline();
                } else if (c == '=') {
                    if (!expect_key) last = 'v';  // inside a value: no string may start after it
                    expect_key = false;
                } else if (c == '.' && !expect_key) {
                    last = 'v';  // a float's or a time's point, not a dotted key's
                } else if (c == '{' || (c == '[' && !expect_key)) {  // not a table header's '['
                    nesting.push_back(c);
                    expect_key = c == '{';
                } else if ((c == '}' || c == ']') && !nesting.empty() && nesting.back() == (c == '}' ? '{' : '[')) {
                    nesting.pop_back();
                    expect_key = false;
                } else if (c == ',' && !nesting.empty() && nesting.back() == '{') {
                    expect_key = true;
                }
                if (state == State::code && c != ' ' && c != '\t' && c != '\r') before = last;
                break;
            }
            case State::comment:
                if (c == '\n') back_to_code('\n');
                break;
            case State::basic:
            case State::multi_basic:
                if (c == '\\') {
                    size_t j = i + 1;  // after a line-ending backslash the whitespace is trimmed
                    while (j < text.size() && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r' || text[j] == '\n')) {
                        if (text[j] == '\n') ++line;
                        ++j;
                    }
                    if (j < text.size() && static_cast<unsigned char>(text[j]) >= 0x80) refuse("after a backslash");
                    i = j == i + 1 ? i + 1 : j - 1;  // past the escaped character, or to the end of the run
                } else if (state == State::basic && (c == '"' || c == '\n')) {
                    back_to_code(c);
                } else if (state == State::multi_basic && starts(i, "\"\"\"")) {
                    back_to_code('"');
                    i += 2;
                }
                break;
            case State::literal:
                if (c == '\'' || c == '\n') back_to_code(c);
                break;
            case State::multi_literal:
                if (starts(i, "'''")) {
                    back_to_code('\'');
                    i += 2;
                }
                break;
        }
    }
}

// Applies "section.key=value" on top of the parsed file.
void apply_override(toml::table& root, const std::string& override_text) {
    auto eq = override_text.find('=');
    SP_REQUIRE(eq != std::string::npos && eq > 0,
               "--set '" << override_text << "': expected section.key=value (a TOML value)");
    std::string path = override_text.substr(0, eq), value = override_text.substr(eq + 1);
    const std::string assignment = "v = " + value;  // checked as toml++ will read it: as a value
    refuse_misplaced_non_ascii(assignment, "--set '" + override_text + "'");
    toml::table parsed;
    try {
        parsed = toml::parse(assignment);
    } catch (const toml::parse_error& e) {
        fail("--set '" + override_text + "': the value is not TOML (strings need quotes): " + std::string(e.description()),
             __FILE__, __LINE__);
    }
    // Every dotted prefix names a table ("prune.gibbs.beta_max": [prune] then [prune.gibbs]).
    toml::table* target = &root;
    std::string key = path;
    for (auto dot = key.find('.'); dot != std::string::npos; dot = key.find('.')) {
        std::string section = key.substr(0, dot);
        key = key.substr(dot + 1);
        if (!target->contains(section)) target->insert(section, toml::table{});
        target = target->get(section)->as_table();
        SP_REQUIRE(target, "--set '" << override_text << "': '" << section << "' is not a table");
    }
    target->insert_or_assign(key, *parsed.get("v"));
}


}  // namespace

std::vector<double> parse_rate_list(const std::string& text, const std::string& where) {
    std::vector<double> rates;
    size_t i = 0;
    auto fail = [&](const std::string& what) {
        SP_REQUIRE(false, where << ": " << what << " at character " << i + 1 << " of \"" << text
                      << "\"; expected terms [rate] or [rate]*count joined by '+', e.g. \"[0.1]+[0.6]*35\"");
    };
    auto skip_spaces = [&] {
        while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    };
    skip_spaces();
    if (i == text.size()) fail("an empty list");
    while (true) {
        skip_spaces();
        if (i >= text.size() || text[i] != '[') fail("no '['");
        ++i;
        const char* start = text.c_str() + i;
        char* end = nullptr;
        const double rate = std::strtod(start, &end);
        if (end == start) fail("no rate");
        i += static_cast<size_t>(end - start);
        if (!(rate >= 0.0 && rate < 1.0)) fail("a rate outside [0, 1)");
        if (i >= text.size() || text[i] != ']') fail("no ']'");
        ++i;
        skip_spaces();
        int64_t count = 1;
        if (i < text.size() && text[i] == '*') {
            ++i;
            skip_spaces();
            const char* cstart = text.c_str() + i;
            char* cend = nullptr;
            const long long n = std::strtoll(cstart, &cend, 10);
            if (cend == cstart || n < 1 || n > 100000) fail("a count that is not an integer in [1, 100000]");
            i += static_cast<size_t>(cend - cstart);
            count = n;
        }
        rates.insert(rates.end(), static_cast<size_t>(count), rate);
        skip_spaces();
        if (i == text.size()) break;
        if (text[i] != '+') fail("no '+' between terms");
        ++i;
    }
    return rates;
}


namespace {

toml::table parse_toml(const std::string& text, const std::string& source) {
    refuse_misplaced_non_ascii(text, source);
    try {
        return toml::parse(text, source);
    } catch (const toml::parse_error& e) {
        std::ostringstream out;
        out << source << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
        fail(out.str(), __FILE__, __LINE__);
    }
}

// "<file>: key '<key>': expected a value in [lo, hi], got v" for the limits that depend on
// another key.
template <class T>
void require_within(const std::string& file, const std::string& key, T value, T lo, T hi) {
    if (value >= lo && value <= hi) return;
    std::ostringstream range, got;
    range << "a value in [" << lo << ", " << hi << "]";
    got << value;
    fail_setting(file, key, range.str(), got.str());
}

// The checks that involve more than one key.
void check_train(const TrainConfig& t, const std::string& file, const std::string& section, int64_t min_epochs) {
    require_within<int64_t>(file, section + ".epochs", t.epochs, min_epochs, 100000);
    for (size_t i = 0; i < t.milestones.size(); ++i)
        SP_REQUIRE(t.milestones[i] > 0 && (i == 0 || t.milestones[i] > t.milestones[i - 1]),
                   file << ": key '" << section << ".milestones': expected increasing positive epochs");
    require_within(file, section + ".min_lr", t.min_lr, 0.0, t.lr);
    require_within(file, section + ".warmup_epochs", t.warmup_epochs, 0.0, static_cast<double>(t.epochs));
    SP_REQUIRE(!t.nesterov || t.momentum > 0.0,
               file << ": key '" << section << ".nesterov': Nesterov needs " << section << ".momentum > 0");
}

void check_prune(const ExperimentConfig& c, const std::string& file) {
    const PruneConfig& p = c.prune;
    SP_REQUIRE(p.round_to == 1 || p.granularity == "filter",
               file << ": key 'prune.round_to': rounds channel widths, so it needs prune.granularity = \"filter\", got \""
                    << p.granularity << "\"");
    if (!p.conv_rates.empty()) {
        parse_rate_list(p.conv_rates, file + ": key 'prune.conv_rates'");  // the notation, now
        SP_REQUIRE(p.rates.empty(), file << ": keys 'prune.rates' and 'prune.conv_rates': give one of them");
    }
    require_within<int64_t>(file, "prune.edropout.eval_images", p.edropout.eval_images, 0, c.train.batch_size);
    SP_REQUIRE(!p.edropout.evaluation.compact_members || p.gate_after_bn,
               file << ": key 'prune.edropout.compact_members': a compacted member equals its masked network only "
                       "when the masks gate after BN, so it needs prune.gate_after_bn = true");
}

ExperimentConfig config_from_table(toml::table& root, const std::string& path, const std::vector<std::string>& overrides,
                                   bool saved) {
    for (const std::string& o : overrides) apply_override(root, o);
    apply_renames(root, path, saved);

    ExperimentConfig c;
    c.source = path;
    const std::vector<SectionRef> all = sections(c);
    for (const SectionRef& section : all) {
        std::set<std::string> subtables;  // the sections nested in this one
        for (const SectionRef& other : all) {
            const std::string prefix = section.name.empty() ? "" : section.name + ".";
            if (other.name.size() > prefix.size() && other.name.compare(0, prefix.size(), prefix) == 0 &&
                other.name.find('.', prefix.size()) == std::string::npos)
                subtables.insert(other.name.substr(prefix.size()));
        }
        read_section(root, path, section, subtables);
    }
    check_train(c.train, path, "train", 1);
    check_train(c.finetune, path, "finetune", 0);
    check_prune(c, path);
    return c;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    SP_REQUIRE(in.good(), "cannot read config file " << path);
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    SP_REQUIRE(!in.bad(), "cannot read config file " << path);
    return text;
}

}  // namespace

const std::vector<std::pair<std::string, std::string>>& renamed_config_keys() {
    static const std::vector<std::pair<std::string, std::string>> renamed = [] {
        std::vector<std::pair<std::string, std::string>> r;
        for (const char* key : {"members", "mutation_rate", "crossover", "rule", "energy", "ising_keep_target", "ising_penalty",
                                "budget_weight", "member_batch_statistics", "min_epochs", "patience", "min_generations",
                                "eval_images"})
            r.emplace_back(std::string("prune.") + key, std::string("prune.edropout.") + key);
        r.emplace_back("prune.energy", "prune.gibbs.chain_energy");  // it scored Gibbs' chains too
        r.emplace_back("prune.score_images", "prune.scoring.images");
        r.emplace_back("prune.post_relu", "prune.scoring.post_relu");
        r.emplace_back("prune.criterion", "prune.scoring.criterion");
        return r;
    }();
    return renamed;
}

ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
    return parse_config(read_file(path), path, overrides);
}

ExperimentConfig parse_config(const std::string& text, const std::string& source, const std::vector<std::string>& overrides) {
    toml::table root = parse_toml(text, source);
    return config_from_table(root, source, overrides, /*saved=*/false);
}

ExperimentConfig load_saved_config(const std::string& path) { return parse_saved_config(read_file(path), path); }

ExperimentConfig parse_saved_config(const std::string& text, const std::string& source,
                                    const std::vector<std::string>& overrides) {
    toml::table root = parse_toml(text, source);
    return config_from_table(root, source, overrides, /*saved=*/true);
}

std::string to_toml(const ExperimentConfig& config) {
    ExperimentConfig c = config;  // sections() hands out pointers into it
    toml::table root;
    for (const SectionRef& section : sections(c)) {
        toml::table table = write_section(*section.keys, section.object);
        if (section.name.empty()) {
            for (auto& [key, node] : table) root.insert(key, std::move(node));
            continue;
        }
        const size_t dot = section.name.rfind('.');
        toml::table* parent = dot == std::string::npos ? &root : table_at(root, section.name.substr(0, dot), true);
        parent->insert(dot == std::string::npos ? section.name : section.name.substr(dot + 1), std::move(table));
    }
    // Basic strings only: toml++ 3.3 writes a string holding ''' and a newline as a multi-line
    // literal string it cannot read back (found by fuzz/config_fuzz.cpp's round trip).
    constexpr auto flags = toml::toml_formatter::default_flags &
                           ~(toml::format_flags::allow_literal_strings | toml::format_flags::allow_multi_line_strings);
    std::string source = c.source;
    std::replace(source.begin(), source.end(), '\n', ' ');  // it goes into a comment line
    std::ostringstream out;
    out << "# resolved config of " << source << "\n" << toml::toml_formatter(root, flags) << "\n";
    return out.str();
}

std::vector<std::string> config_changes(const ExperimentConfig& before, const ExperimentConfig& after) {
    static const std::set<std::string> location_keys = {"data.dir", "prune.baseline_cache"};
    ExperimentConfig a = before, b = after;  // sections() hands out pointers into them
    const std::vector<SectionRef> was = sections(a), now = sections(b);
    std::vector<std::string> changes;
    for (size_t i = 0; i < was.size(); ++i) {
        for (const Setting& s : was[i].keys->settings()) {
            const std::string key = was[i].name.empty() ? s.name : was[i].name + "." + s.name;
            const SettingValue x = s.get(was[i].object), y = s.get(now[i].object);
            if (x != y && !location_keys.count(key))
                changes.push_back(key + ": " + setting_value_text(x) + " -> " + setting_value_text(y));
        }
    }
    return changes;
}

std::string config_keys_text() {
    ExperimentConfig defaults;
    std::ostringstream out;
    for (const SectionRef& section : sections(defaults)) {
        out << (section.name.empty() ? "# top level" : "[" + section.name + "]") << "\n";
        for (const Setting& s : section.keys->settings()) {
            std::string line = s.name + " = " + setting_value_text(s.get(section.object));
            if (line.size() < 40) line.resize(40, ' ');
            const std::string domain = s.domain();
            out << line << " # " << (domain.empty() ? "" : domain + ": ") << s.doc << "\n";
        }
        out << "\n";
    }
    return out.str();
}

}  // namespace sp
