// Config key tables: the range and choice checks, and the wording of their errors.
#include "pruning/settings.h"

#include <sstream>

#include "kernels/error.h"

namespace sp {

namespace {

std::string join(const std::vector<std::string>& items, const char* separator) {
    std::ostringstream out;
    for (size_t i = 0; i < items.size(); ++i) out << (i ? separator : "") << items[i];
    return out.str();
}

template <class T>
std::string range_text(T lo, T hi) {
    std::ostringstream out;
    out << "[" << lo << ", " << hi << "]";
    return out.str();
}

template <class T>
std::string text(T value) {
    std::ostringstream out;
    out << value;
    return out.str();
}

}  // namespace

std::string Setting::domain() const {
    switch (type) {
        case SettingType::integer:
        case SettingType::widths: return range_text(int_lo, int_hi);
        case SettingType::number:
        case SettingType::numbers: return range_text(lo, hi);
        case SettingType::choice: return join(choices, " | ") + (optional ? " | \"\"" : "");
        default: return "";
    }
}

std::string Setting::expected() const {
    switch (type) {
        case SettingType::boolean: return "true or false";
        case SettingType::integer:
        case SettingType::number: return "a value in " + domain();
        case SettingType::string: return "a string";
        case SettingType::choice: return "one of " + join(choices, ", ");
        case SettingType::numbers: return "an array of numbers in " + domain();
        case SettingType::integers: return "an array of integers";
        case SettingType::widths: return "a table of integers (name = width) in " + domain();
    }
    return "?";
}

std::string setting_value_text(const SettingValue& value) {
    struct Visitor {
        std::string operator()(bool v) const { return v ? "true" : "false"; }
        std::string operator()(int64_t v) const { return std::to_string(v); }
        std::string operator()(double v) const { return text(v); }
        std::string operator()(const std::string& v) const { return "\"" + v + "\""; }
        std::string operator()(const std::vector<double>& v) const {
            std::vector<std::string> items;
            for (double x : v) items.push_back(text(x));
            return "[" + join(items, ", ") + "]";
        }
        std::string operator()(const std::vector<int64_t>& v) const {
            std::vector<std::string> items;
            for (int64_t x : v) items.push_back(std::to_string(x));
            return "[" + join(items, ", ") + "]";
        }
        std::string operator()(const std::map<std::string, int64_t>& v) const {
            std::vector<std::string> items;
            for (const auto& [k, x] : v) items.push_back(k + " = " + std::to_string(x));
            return "{" + join(items, ", ") + "}";
        }
    };
    return std::visit(Visitor{}, value);
}

void fail_setting(const std::string& where, const std::string& key, const std::string& expected, const std::string& got) {
    fail(where + ": key '" + key + "': expected " + expected + ", got " + got, __FILE__, __LINE__);
}

const Setting* SettingList::find(const std::string& name) const {
    for (const Setting& s : settings_)
        if (s.name == name) return &s;
    return nullptr;
}

void SettingList::check_value(const Setting& s, const SettingValue& value, const std::string& where, const std::string& key) {
    auto in_range = [&](double v) {
        if (!(v >= s.lo && v <= s.hi)) fail_setting(where, key, "a value in " + s.domain(), text(v));  // NaN fails too
    };
    switch (s.type) {
        case SettingType::integer: {
            const int64_t v = std::get<int64_t>(value);
            if (v < s.int_lo || v > s.int_hi) fail_setting(where, key, "a value in " + s.domain(), std::to_string(v));
            break;
        }
        case SettingType::number: in_range(std::get<double>(value)); break;
        case SettingType::numbers:
            for (double v : std::get<std::vector<double>>(value)) in_range(v);
            break;
        case SettingType::widths:
            for (const auto& [name, width] : std::get<std::map<std::string, int64_t>>(value))
                if (width < s.int_lo || width > s.int_hi)
                    fail_setting(where, key + "." + name, "a width in " + s.domain(), std::to_string(width));
            break;
        case SettingType::choice: {
            const std::string& v = std::get<std::string>(value);
            if (s.optional && v.empty()) break;
            for (const std::string& c : s.choices)
                if (v == c) return;
            fail_setting(where, key, s.expected(), "'" + v + "'");
        }
        default: break;
    }
}

void SettingList::check_object(const void* object, const std::string& where, const std::string& prefix) const {
    for (const Setting& s : settings_) check_value(s, s.get(object), where, prefix + s.name);
}

}  // namespace sp
