// libFuzzer target: the TOML config loader with its validation (parse_config). Input: TOML
// text, optionally followed by a NUL byte and "section.key=value" override lines (--set).
// A config it accepts must be finite in every number and survive to_toml and a re-parse
// unchanged.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "kernels/error.h"
#include "train/config.h"
#include "train/toml.h"

using namespace sp;

namespace {

[[noreturn]] void broken(const char* what, const std::string& toml) {
    std::fprintf(stderr, "config_fuzz: an accepted config %s:\n%s\n", what, toml.c_str());
    std::abort();
}

bool all_finite(const toml::node& node) {
    if (const toml::table* t = node.as_table()) {
        for (const auto& [key, child] : *t)
            if (!all_finite(child)) return false;
    } else if (const toml::array* a = node.as_array()) {
        for (const toml::node& child : *a)
            if (!all_finite(child)) return false;
    } else if (node.is_floating_point()) {
        return std::isfinite(*node.value<double>());
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    const size_t nul = input.find('\0');
    std::vector<std::string> overrides;
    if (nul != std::string::npos) {
        std::istringstream lines(input.substr(nul + 1));
        for (std::string line; std::getline(lines, line);) overrides.push_back(line);
    }
    ExperimentConfig config;
    try {
        config = parse_config(input.substr(0, nul), "fuzz.toml", overrides);
    } catch (const Error&) {
        return 0;
    }
    const std::string text = to_toml(config);
    if (!all_finite(toml::parse(text))) broken("holds a non-finite number", text);
    std::string again;
    try {
        again = to_toml(parse_config(text, "fuzz.toml"));
    } catch (const Error& e) {
        broken((std::string("is refused once written back: ") + e.what()).c_str(), text);
    }
    if (again != text) broken("changes when written back and re-read", text + "\n---\n" + again);
    return 0;
}
