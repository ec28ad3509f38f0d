// Config key tables: every key of a config section declared once — name, type, default, range or
// choices, one line of doc — bound to the field of the struct it fills (an Options struct of a
// method, or a config section). One table drives the TOML parsing and validation and the resolved
// config.toml writer (train/config.cpp), `spinprune config --keys`, and the checks the structs'
// users make (GibbsTraining checks its options against the table the config was read with).
// The default of a key is the value of a default-constructed struct; this file knows no TOML.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace sp {

enum class SettingType {
    boolean,
    integer,   // range [int_lo, int_hi]
    number,    // range [lo, hi]
    string,
    choice,    // one of `choices` (or "" when `optional`)
    numbers,   // an array of numbers, each in [lo, hi]
    integers,  // an array of integers
    widths,    // a table name = width, each width in [int_lo, int_hi]
};

using SettingValue = std::variant<bool, int64_t, double, std::string, std::vector<double>, std::vector<int64_t>,
                                  std::map<std::string, int64_t>>;

struct Setting {
    std::string name;
    SettingType type = SettingType::boolean;
    std::string doc;
    int64_t int_lo = 0, int_hi = 0;
    double lo = 0, hi = 0;
    std::vector<std::string> choices;
    bool optional = false;  // choice: "" is allowed too
    std::function<SettingValue(const void* object)> get;
    std::function<void(void* object, const SettingValue& value)> set;

    // "a value in [0, 1]", "one of a, b, c", "true or false", ...: what the key takes.
    std::string expected() const;
    // The range or choices alone ("[0, 1]", "a | b"), "" for other types.
    std::string domain() const;
};

// A value as written in TOML (strings quoted), for messages and `spinprune config --keys`.
std::string setting_value_text(const SettingValue& value);

// "<where>: key '<key>': expected <expected>, got <got>": the one wording of a bad value.
[[noreturn]] void fail_setting(const std::string& where, const std::string& key, const std::string& expected,
                               const std::string& got);

// The keys of one section, type-erased; SettingTable<S> builds one for a struct S.
class SettingList {
public:
    const std::vector<Setting>& settings() const { return settings_; }
    const Setting* find(const std::string& name) const;
    // Every value of `object` in its key's range or choices; else fail_setting(where, prefix + key).
    void check_object(const void* object, const std::string& where, const std::string& prefix) const;
    // One value (after its type is checked) against `setting`'s range or choices.
    static void check_value(const Setting& setting, const SettingValue& value, const std::string& where,
                            const std::string& key);

protected:
    std::vector<Setting> settings_;
};

template <class S>
class SettingTable : public SettingList {
public:
    // `field`: a member pointer (&S::x) or a callable S& → T& for a nested field.
    template <class F>
    SettingTable& boolean(const char* name, F field, const char* doc) {
        return add<bool>(name, SettingType::boolean, field, doc);
    }
    template <class F>
    SettingTable& integer(const char* name, F field, int64_t lo, int64_t hi, const char* doc) {
        add<int64_t>(name, SettingType::integer, field, doc);
        settings_.back().int_lo = lo;
        settings_.back().int_hi = hi;
        return *this;
    }
    template <class F>
    SettingTable& number(const char* name, F field, double lo, double hi, const char* doc) {
        add<double>(name, SettingType::number, field, doc);
        settings_.back().lo = lo;
        settings_.back().hi = hi;
        return *this;
    }
    template <class F>
    SettingTable& string(const char* name, F field, const char* doc) {
        return add<std::string>(name, SettingType::string, field, doc);
    }
    // A string field that takes one of `choices` ("" too when `optional`).
    template <class F>
    SettingTable& choice(const char* name, F field, std::vector<std::string> choices, const char* doc, bool optional = false) {
        add<std::string>(name, SettingType::choice, field, doc);
        settings_.back().choices = std::move(choices);
        settings_.back().optional = optional;
        return *this;
    }
    // An enum field, written as the names of its values.
    template <class F, class E>
    SettingTable& choice(const char* name, F field, std::vector<std::pair<const char*, E>> names, const char* doc) {
        auto get = [field, names](const S& s) {
            const E v = std::invoke(field, const_cast<S&>(s));
            for (const auto& [n, e] : names)
                if (e == v) return std::string(n);
            return std::string("?");
        };
        auto set = [field, names](S& s, const std::string& value) {
            for (const auto& [n, e] : names)
                if (value == n) std::invoke(field, s) = e;
        };
        std::vector<std::string> choices;
        for (const auto& [n, e] : names) choices.emplace_back(n);
        return custom_choice(name, std::move(choices), get, set, doc);
    }
    // An enum field, its values named by `name_of` (e.g. energy_name).
    template <class F, class E>
    SettingTable& choice(const char* name, F field, const std::vector<E>& values, const char* (*name_of)(E), const char* doc) {
        std::vector<std::pair<const char*, E>> names;
        for (E e : values) names.emplace_back(name_of(e), e);
        return choice(name, field, names, doc);
    }
    // A choice read and written by functions: for a key that sets more than one field.
    SettingTable& custom_choice(const char* name, std::vector<std::string> choices,
                                std::function<std::string(const S&)> get, std::function<void(S&, const std::string&)> set,
                                const char* doc) {
        Setting s;
        s.name = name;
        s.type = SettingType::choice;
        s.doc = doc;
        s.choices = std::move(choices);
        s.get = [get](const void* o) { return SettingValue(get(*static_cast<const S*>(o))); };
        s.set = [set](void* o, const SettingValue& v) { set(*static_cast<S*>(o), std::get<std::string>(v)); };
        settings_.push_back(std::move(s));
        return *this;
    }
    template <class F>
    SettingTable& numbers(const char* name, F field, double lo, double hi, const char* doc) {
        add<std::vector<double>>(name, SettingType::numbers, field, doc);
        settings_.back().lo = lo;
        settings_.back().hi = hi;
        return *this;
    }
    template <class F>
    SettingTable& integers(const char* name, F field, const char* doc) {
        return add<std::vector<int64_t>>(name, SettingType::integers, field, doc);
    }
    template <class F>
    SettingTable& widths(const char* name, F field, int64_t lo, int64_t hi, const char* doc) {
        add<std::map<std::string, int64_t>>(name, SettingType::widths, field, doc);
        settings_.back().int_lo = lo;
        settings_.back().int_hi = hi;
        return *this;
    }

    // Every value of `s` in range (library users check their options with it); `where` names the
    // user in the error, e.g. "Gibbs pruning".
    void check(const S& s, const std::string& where) const { check_object(&s, where, ""); }

private:
    template <class T, class F>
    SettingTable& add(const char* name, SettingType type, F field, const char* doc) {
        Setting s;
        s.name = name;
        s.type = type;
        s.doc = doc;
        s.get = [field](const void* o) { return SettingValue(T(std::invoke(field, *static_cast<S*>(const_cast<void*>(o))))); };
        s.set = [field](void* o, const SettingValue& v) { std::invoke(field, *static_cast<S*>(o)) = std::get<T>(v); };
        settings_.push_back(std::move(s));
        return *this;
    }
};

}  // namespace sp
