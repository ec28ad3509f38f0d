// TOML config loading and validation: the only library file that includes toml++ (through
// train/toml.h; it is slow to compile and does not build under nvcc).
#include "train/config.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "kernels/check.h"
#include "train/toml.h"

namespace sp {

namespace {

// Reads keys of one table, remembering which were seen so unknown ones can be reported.
class Section {
public:
    Section(const toml::table& root, std::string file, std::string name) : file_(std::move(file)), name_(std::move(name)) {
        if (name_.empty()) {
            table_ = &root;
            return;
        }
        const toml::node* node = root.at_path(name_).node();  // "prune.gibbs": a nested table
        if (!node) return;
        table_ = node->as_table();
        SP_REQUIRE(table_, file_ << ": [" << name_ << "] must be a table");
    }

    template <class T>
    void read(const char* key, T& value) {
        seen_.insert(key);
        if (!table_) return;
        const toml::node* node = table_->get(key);
        if (!node) return;
        assign(key, *node, value);
    }

    template <class T>
    void read(const char* key, T& value, std::initializer_list<const char*> choices) {
        read(key, value);
        for (const char* c : choices)
            if (value == c) return;
        std::ostringstream list;
        for (const char* c : choices) list << (list.tellp() ? ", " : "") << c;
        fail_key(key, "one of " + list.str(), "'" + value + "'");
    }

    template <class T>
    void require_range(const char* key, T value, T lo, T hi) {
        if (!(value >= lo && value <= hi)) {  // NaN fails every comparison: refused too
            std::ostringstream expected, got;
            expected << "a value in [" << lo << ", " << hi << "]";
            got << value;
            fail_key(key, expected.str(), got.str());
        }
    }

    // Every key of the table must have been read by now.
    void reject_unknown(const std::set<std::string>& subtables = {}) const {
        if (!table_) return;
        for (const auto& [key, node] : *table_) {
            std::string k(key.str());
            if (seen_.count(k) || subtables.count(k)) continue;
            fail(file_ + ": unknown key '" + qualified(k.c_str()) + "'", __FILE__, __LINE__);
        }
    }

private:
    std::string qualified(const char* key) const { return name_.empty() ? key : name_ + "." + key; }

    [[noreturn]] void fail_key(const char* key, const std::string& expected, const std::string& got) const {
        fail(file_ + ": key '" + qualified(key) + "': expected " + expected + ", got " + got, __FILE__, __LINE__);
    }

    static std::string describe(const toml::node& node) {
        std::ostringstream out;
        out << node.type() << " ";
        node.visit([&](auto&& n) { out << n; });
        return out.str();
    }

    void assign(const char* key, const toml::node& node, std::string& value) const {
        auto v = node.value<std::string>();
        if (!node.is_string() || !v) fail_key(key, "a string", describe(node));
        value = *v;
    }
    void assign(const char* key, const toml::node& node, bool& value) const {
        if (!node.is_boolean()) fail_key(key, "true or false", describe(node));
        value = *node.value<bool>();
    }
    void assign(const char* key, const toml::node& node, int64_t& value) const {
        if (!node.is_integer()) fail_key(key, "an integer", describe(node));
        value = *node.value<int64_t>();
    }
    void assign(const char* key, const toml::node& node, double& value) const {
        if (!node.is_number()) fail_key(key, "a number", describe(node));
        value = *node.value<double>();
    }
    void assign(const char* key, const toml::node& node, std::vector<double>& value) const {
        const toml::array* array = node.as_array();
        if (!array) fail_key(key, "an array of numbers", describe(node));
        value.clear();
        for (const toml::node& element : *array) {
            if (!element.is_number()) fail_key(key, "an array of numbers", describe(node));
            value.push_back(*element.value<double>());
        }
    }
        void assign(const char* key, const toml::node& node, std::vector<int64_t>& value) const {
        const toml::array* array = node.as_array();
        if (!array) fail_key(key, "an array of integers", describe(node));
        value.clear();
        for (const toml::node& element : *array) {
            if (!element.is_integer()) fail_key(key, "an array of integers", describe(node));
            value.push_back(*element.value<int64_t>());
        }
    }
    void assign(const char* key, const toml::node& node, std::map<std::string, int64_t>& value) const {
        const toml::table* table = node.as_table();
        if (!table) fail_key(key, "a table of integers (name = width)", describe(node));
        value.clear();
        for (const auto& [name, element] : *table) {
            const std::string entry = std::string(key) + "." + std::string(name.str());
            if (!element.is_integer()) fail_key(entry.c_str(), "an integer width", describe(element));
            const int64_t width = *element.value<int64_t>();
            if (width < 1 || width > 65536) fail_key(entry.c_str(), "a width in [1, 65536]", std::to_string(width));
            value[std::string(name.str())] = width;
        }
    }

    std::string file_, name_;
    const toml::table* table_ = nullptr;
    std::set<std::string> seen_;
};

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
// [prune.gibbs]: the Gibbs pruning keys (METHODS.md §2).
void read_gibbs_section(Section& gibbs, GibbsConfig& g) {
    gibbs.read("p", g.p);
    gibbs.require_range("p", g.p, 0.0, 0.999);
    gibbs.read("beta_start", g.beta_start);
    gibbs.require_range("beta_start", g.beta_start, 1e-9, 1e9);
    gibbs.read("beta_end", g.beta_end);
    gibbs.require_range("beta_end", g.beta_end, 1e-9, 1e9);
    gibbs.read("anneal_epochs", g.anneal_epochs);
    gibbs.require_range<int64_t>("anneal_epochs", g.anneal_epochs, 1, 100000);
    gibbs.read("kernel_coupling", g.kernel_coupling);
    gibbs.require_range("kernel_coupling", g.kernel_coupling, -1e3, 1e3);
    gibbs.read("filter_coupling", g.filter_coupling);
    gibbs.require_range("filter_coupling", g.filter_coupling, -1e3, 1e3);
    gibbs.read("sweeps", g.sweeps);
    gibbs.require_range<int64_t>("sweeps", g.sweeps, 1, 100000);
    gibbs.read("chains", g.chains);
    gibbs.require_range<int64_t>("chains", g.chains, 1, 1024);
    gibbs.read("chain_beta_ratio", g.chain_beta_ratio);
    gibbs.require_range("chain_beta_ratio", g.chain_beta_ratio, 1.0, 1e6);
    gibbs.read("chain_images", g.chain_images);
    gibbs.require_range<int64_t>("chain_images", g.chain_images, 0, INT64_MAX);
    gibbs.read("fused_apply", g.fused_apply);
}

// [prune.rl]: the constrained RL pruning keys (METHODS.md §4).
void read_rl_section(Section& rl, ConstrainedRlConfig& r) {
    rl.read("environment", r.environment, {"layer", "filter"});
    rl.read("cost", r.cost, {"budget", "latency"});
    rl.read("reward", r.reward, {"accuracy", "margin", "cross-entropy"});
    rl.read("eval_images", r.eval_images);
    rl.require_range<int64_t>("eval_images", r.eval_images, 1, 1000000);
    rl.read("episodes", r.episodes);
    rl.require_range<int64_t>("episodes", r.episodes, 1, 65536);
    rl.read("updates", r.updates);
    rl.require_range<int64_t>("updates", r.updates, 1, 1000000);
    rl.read("batched", r.batched);
    rl.read("max_images_per_pass", r.max_images_per_pass);
    rl.require_range<int64_t>("max_images_per_pass", r.max_images_per_pass, 0, INT64_MAX);
    rl.read("max_prune", r.max_prune);
    rl.require_range("max_prune", r.max_prune, 0.0, 0.999);
    rl.read("latency_batch", r.latency_batch);
    rl.require_range<int64_t>("latency_batch", r.latency_batch, 1, 1 << 16);
    rl.read("hidden", r.hidden);
    rl.require_range<int64_t>("hidden", r.hidden, 1, 4096);
    rl.read("lr", r.lr);
    rl.require_range("lr", r.lr, 0.0, 10.0);
    rl.read("epochs", r.epochs);
    rl.require_range<int64_t>("epochs", r.epochs, 1, 1000);
    rl.read("minibatch", r.minibatch);
    rl.require_range<int64_t>("minibatch", r.minibatch, 1, 1 << 20);
    rl.read("clip", r.clip);
    rl.require_range("clip", r.clip, 1e-6, 1.0);
    rl.read("grad_clip", r.grad_clip);
    rl.require_range("grad_clip", r.grad_clip, 0.0, 1e6);
    rl.read("gamma", r.gamma);
    rl.require_range("gamma", r.gamma, 0.0, 1.0);
    rl.read("lambda_reward", r.lambda_reward);
    rl.require_range("lambda_reward", r.lambda_reward, 0.0, 1.0);
    rl.read("lambda_cost", r.lambda_cost);
    rl.require_range("lambda_cost", r.lambda_cost, 0.0, 1.0);
    rl.read("dual_lr", r.dual_lr);
    rl.require_range("dual_lr", r.dual_lr, 0.0, 1e3);
    rl.read("dual_init", r.dual_init);
    rl.require_range("dual_init", r.dual_init, -100.0, 100.0);
    rl.read("init_log_std", r.init_log_std);
    rl.require_range("init_log_std", r.init_log_std, -10.0, 2.0);
    rl.read("entropy_coef", r.entropy_coef);
    rl.require_range("entropy_coef", r.entropy_coef, 0.0, 10.0);
}

ExperimentConfig config_from_table(toml::table& root, const std::string& path, const std::vector<std::string>& overrides);

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
}  // namespace

ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
    std::ifstream in(path, std::ios::binary);
    SP_REQUIRE(in.good(), "cannot read config file " << path);
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    SP_REQUIRE(!in.bad(), "cannot read config file " << path);
    toml::table root = parse_toml(text, path);
    return config_from_table(root, path, overrides);
}

ExperimentConfig parse_config(const std::string& text, const std::string& source, const std::vector<std::string>& overrides) {
    toml::table root = parse_toml(text, source);
    return config_from_table(root, source, overrides);
}

namespace {
// [train] and [finetune] share their keys.
void read_train_section(Section& train, TrainConfig& t, int64_t min_epochs, const std::string& path, const char* section) {
    train.read("epochs", t.epochs);
    train.require_range<int64_t>("epochs", t.epochs, min_epochs, 100000);
    train.read("batch_size", t.batch_size);
    train.require_range<int64_t>("batch_size", t.batch_size, 1, 1 << 20);
    train.read("eval_batch_size", t.eval_batch_size);
    train.require_range<int64_t>("eval_batch_size", t.eval_batch_size, 1, 1 << 20);
    train.read("optimizer", t.optimizer, {"sgd", "adam", "adadelta"});
    train.read("lr", t.lr);
    train.require_range("lr", t.lr, 0.0, 1e3);
    train.read("momentum", t.momentum);
    train.require_range("momentum", t.momentum, 0.0, 1.0);
    train.read("nesterov", t.nesterov);
    train.read("weight_decay", t.weight_decay);
    train.require_range("weight_decay", t.weight_decay, 0.0, 1.0);
    train.read("rho", t.rho);
    train.require_range("rho", t.rho, 0.0, 1.0);
    train.read("beta1", t.beta1);
    train.require_range("beta1", t.beta1, 0.0, 0.999999);
    train.read("beta2", t.beta2);
    train.require_range("beta2", t.beta2, 0.0, 0.999999);
    train.read("schedule", t.schedule, {"constant", "step", "multistep", "cosine"});
    train.read("step_size", t.step_size);
    train.require_range<int64_t>("step_size", t.step_size, 1, 100000);
    train.read("milestones", t.milestones);
    for (size_t i = 0; i < t.milestones.size(); ++i)
        SP_REQUIRE(t.milestones[i] > 0 && (i == 0 || t.milestones[i] > t.milestones[i - 1]),
                   path << ": key 'train.milestones': expected increasing positive epochs");
    train.read("gamma", t.gamma);
    train.require_range("gamma", t.gamma, 0.0, 1.0);
    train.read("min_lr", t.min_lr);
    train.require_range("min_lr", t.min_lr, 0.0, t.lr);
    train.read("warmup_epochs", t.warmup_epochs);
    train.require_range("warmup_epochs", t.warmup_epochs, 0.0, static_cast<double>(t.epochs));
    train.read("label_smoothing", t.label_smoothing);
    train.require_range("label_smoothing", t.label_smoothing, 0.0, 0.999);
    train.read("checkpoint_every", t.checkpoint_every);
    train.require_range<int64_t>("checkpoint_every", t.checkpoint_every, 1, 100000);
    train.read("on_nonfinite", t.on_nonfinite, {"stop", "skip"});
    train.reject_unknown();
    SP_REQUIRE(!t.nesterov || t.momentum > 0.0,
               path << ": key '" << section << ".nesterov': Nesterov needs " << section << ".momentum > 0");
}

ExperimentConfig config_from_table(toml::table& root, const std::string& path, const std::vector<std::string>& overrides) {
    for (const std::string& o : overrides) apply_override(root, o);

    ExperimentConfig c;
    c.source = path;

    Section top(root, path, "");
    top.read("name", c.name);
    top.read("seed", c.seed);
    top.require_range<int64_t>("seed", c.seed, 0, INT64_MAX);
    top.read("device", c.device, {"auto", "cpu", "cuda"});
    top.read("deterministic", c.deterministic);
    top.read("math", c.math, {"tf32", "fp32"});
    top.reject_unknown({"data", "model", "train", "prune", "finetune"});

    Section data(root, path, "data");
    data.read("dataset", c.data.dataset, {"fashion-mnist", "cifar10", "cifar100"});
    data.read("dir", c.data.dir);
    data.read("validation", c.data.validation);
    data.require_range<int64_t>("validation", c.data.validation, 0, 1000000);
    data.read("train_subset", c.data.train_subset);
    data.require_range<int64_t>("train_subset", c.data.train_subset, 0, INT64_MAX);
    data.read("augment", c.data.augment);
    data.read("normalize", c.data.normalize);
    data.reject_unknown();

    Section model(root, path, "model");
    model.read("name", c.model.name,
               {"lenet", "resnet20", "resnet32", "resnet56", "resnet110", "resnet18", "resnet34", "vgg11", "vgg16", "alexnet",
                "squeezenet"});
    model.read("shortcut", c.model.shortcut, {"A", "B"});
    model.read("widths", c.model.widths);
    model.reject_unknown();

    Section train(root, path, "train");
    read_train_section(train, c.train, 1, path, "train");
    Section finetune(root, path, "finetune");
    read_train_section(finetune, c.finetune, 0, path, "finetune");

    Section prune(root, path, "prune");
    PruneConfig& p = c.prune;
    prune.read("method", p.method,
               {"none", "random", "magnitude", "magnitude-global", "l1-filter", "bn-scale", "energy-aware", "hrank", "edropout",
                "gibbs", "constrained-rl"});
    prune.read("granularity", p.granularity, {"filter", "weight", "kernel"});
    prune.read("budget", p.budget, {"params", "macs"});
    prune.read("keep", p.keep);
    prune.require_range("keep", p.keep, 1e-6, 1.0);
    prune.read("gate_after_bn", p.gate_after_bn);
    prune.read("prune_residual_groups", p.prune_residual_groups);
    prune.read("round_to", p.round_to);
    prune.require_range<int64_t>("round_to", p.round_to, 1, 1024);
    SP_REQUIRE(p.round_to == 1 || p.granularity == "filter",
               path << ": key 'prune.round_to': rounds channel widths, so it needs prune.granularity = \"filter\", got \""
                    << p.granularity << "\"");
    prune.read("baseline_checkpoint", p.baseline_checkpoint);
    prune.read("members", p.members);
    prune.require_range<int64_t>("members", p.members, 4, 4096);
    prune.read("mutation_rate", p.mutation_rate);
    prune.require_range("mutation_rate", p.mutation_rate, 0.0, 1.0);
    prune.read("crossover", p.crossover);
    prune.require_range("crossover", p.crossover, 0.0, 1.0);
    prune.read("rule", p.rule, {"reference", "textbook"});
    prune.read("energy", p.energy, {"margin", "cross-entropy", "error", "ising"});
    prune.read("ising_keep_target", p.ising_keep_target);
    prune.require_range("ising_keep_target", p.ising_keep_target, 0.0, 1.0);
    prune.read("ising_penalty", p.ising_penalty);
    prune.require_range("ising_penalty", p.ising_penalty, 0.0, 1e9);
    prune.read("budget_weight", p.budget_weight);
    prune.require_range("budget_weight", p.budget_weight, 0.0, 1e9);
    prune.read("member_batch_statistics", p.member_batch_statistics);
    prune.read("min_epochs", p.min_epochs);
    prune.require_range<int64_t>("min_epochs", p.min_epochs, -1, 100000);
    prune.read("patience", p.patience);
    prune.require_range<int64_t>("patience", p.patience, 1, INT64_MAX);
    prune.read("min_generations", p.min_generations);
    prune.require_range<int64_t>("min_generations", p.min_generations, 0, INT64_MAX);
    prune.read("eval_images", p.eval_images);
    prune.require_range<int64_t>("eval_images", p.eval_images, 0, c.train.batch_size);
    prune.read("train_baseline", p.train_baseline);
    prune.read("score_images", p.score_images);
    prune.require_range<int64_t>("score_images", p.score_images, 1, 1000000);
    prune.read("post_relu", p.post_relu);
    prune.read("criterion", p.criterion);
    if (!p.criterion.empty()) prune.read("criterion", p.criterion, {"nuclear", "rank", "l1", "l2"});
    prune.read("rates", p.rates);
    for (double r : p.rates) prune.require_range("rates", r, 0.0, 0.999);
    prune.read("conv_rates", p.conv_rates);
    if (!p.conv_rates.empty()) {
        parse_rate_list(p.conv_rates, path + ": key 'prune.conv_rates'");  // the notation, now
        SP_REQUIRE(p.rates.empty(), path << ": keys 'prune.rates' and 'prune.conv_rates': give one of them");
    }
    prune.reject_unknown({"gibbs", "rl"});

    Section gibbs(root, path, "prune.gibbs");
    read_gibbs_section(gibbs, p.gibbs);
    gibbs.reject_unknown();
    Section rl(root, path, "prune.rl");
    read_rl_section(rl, p.rl);
    rl.reject_unknown();
    return c;
}
}  // namespace

namespace {
toml::table gibbs_table(const GibbsConfig& g) {
    return toml::table{{"p", g.p}, {"beta_start", g.beta_start}, {"beta_end", g.beta_end},
                       {"anneal_epochs", g.anneal_epochs}, {"kernel_coupling", g.kernel_coupling},
                       {"filter_coupling", g.filter_coupling}, {"sweeps", g.sweeps}, {"chains", g.chains},
                       {"chain_beta_ratio", g.chain_beta_ratio}, {"chain_images", g.chain_images}, {"fused_apply", g.fused_apply}};
}

toml::table rl_table(const ConstrainedRlConfig& r) {
    return toml::table{{"environment", r.environment}, {"cost", r.cost}, {"reward", r.reward},
                       {"eval_images", r.eval_images}, {"episodes", r.episodes}, {"updates", r.updates},
                       {"batched", r.batched}, {"max_images_per_pass", r.max_images_per_pass},
                       {"max_prune", r.max_prune}, {"latency_batch", r.latency_batch},
                       {"hidden", r.hidden}, {"lr", r.lr}, {"epochs", r.epochs}, {"minibatch", r.minibatch},
                       {"clip", r.clip}, {"grad_clip", r.grad_clip}, {"gamma", r.gamma},
                       {"lambda_reward", r.lambda_reward}, {"lambda_cost", r.lambda_cost}, {"dual_lr", r.dual_lr},
                       {"dual_init", r.dual_init}, {"init_log_std", r.init_log_std},
                       {"entropy_coef", r.entropy_coef}};
}
}  // namespace

std::string to_toml(const ExperimentConfig& c) {
    auto train_table = [](const TrainConfig& t) {
        toml::array milestones;
        for (int64_t m : t.milestones) milestones.push_back(m);
        return toml::table{{"epochs", t.epochs}, {"batch_size", t.batch_size}, {"eval_batch_size", t.eval_batch_size},
                           {"optimizer", t.optimizer}, {"lr", t.lr}, {"momentum", t.momentum},
                           {"nesterov", t.nesterov}, {"weight_decay", t.weight_decay}, {"rho", t.rho},
                           {"beta1", t.beta1}, {"beta2", t.beta2}, {"schedule", t.schedule},
                           {"step_size", t.step_size}, {"milestones", milestones}, {"gamma", t.gamma},
                           {"min_lr", t.min_lr}, {"warmup_epochs", t.warmup_epochs},
                           {"label_smoothing", t.label_smoothing}, {"checkpoint_every", t.checkpoint_every},
                           {"on_nonfinite", t.on_nonfinite}};
    };
    auto model_table = [](const ModelConfig& m) {
        toml::table widths;
        for (const auto& [name, width] : m.widths) widths.insert(name, width);
        toml::table table{{"name", m.name}, {"shortcut", m.shortcut}};
        if (!widths.empty()) table.insert("widths", std::move(widths));
        return table;
    };
    const PruneConfig& p = c.prune;
    toml::array rates;
    for (double r : p.rates) rates.push_back(r);
    toml::table root{
        {"name", c.name},
        {"seed", c.seed},
        {"device", c.device},
        {"deterministic", c.deterministic},
        {"math", c.math},
        {"data", toml::table{{"dataset", c.data.dataset}, {"dir", c.data.dir}, {"validation", c.data.validation},
                             {"train_subset", c.data.train_subset}, {"augment", c.data.augment},
                             {"normalize", c.data.normalize}}},
        {"model", model_table(c.model)},
        {"train", train_table(c.train)},
        {"prune", toml::table{{"method", p.method}, {"granularity", p.granularity}, {"budget", p.budget},
                              {"keep", p.keep}, {"gate_after_bn", p.gate_after_bn},
                              {"prune_residual_groups", p.prune_residual_groups}, {"round_to", p.round_to},
                              {"baseline_checkpoint", p.baseline_checkpoint}, {"members", p.members},
                              {"mutation_rate", p.mutation_rate}, {"crossover", p.crossover}, {"rule", p.rule},
                              {"energy", p.energy}, {"ising_keep_target", p.ising_keep_target},
                              {"ising_penalty", p.ising_penalty}, {"budget_weight", p.budget_weight},
                              {"member_batch_statistics", p.member_batch_statistics},
                              {"min_epochs", p.min_epochs}, {"patience", p.patience},
                              {"min_generations", p.min_generations}, {"eval_images", p.eval_images},
                              {"train_baseline", p.train_baseline}, {"score_images", p.score_images},
                              {"post_relu", p.post_relu}, {"criterion", p.criterion}, {"rates", rates}, {"conv_rates", p.conv_rates},
                              {"gibbs", gibbs_table(p.gibbs)}, {"rl", rl_table(p.rl)}}},
        {"finetune", train_table(c.finetune)},
    };
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

}  // namespace sp
