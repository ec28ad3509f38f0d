// The method registry: every method is complete for its kind, the names are the config's choices,
// and the README's method table is the registry's.
#include <doctest/doctest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "kernels/error.h"
#include "train/config.h"
#include "train/methods.h"

using namespace sp;

TEST_CASE("methods: every registered method has the stages its kind needs, under a unique name") {
    std::set<std::string> names;
    for (const PruneMethod& m : prune_methods()) {
        CAPTURE(m.name);
        CHECK(names.insert(m.name).second);
        CHECK(std::string(m.paper).size() > 0);
        CHECK(std::string(m.summary).size() > 0);
        CHECK((m.kind == MethodKind::scores) == (m.importance != nullptr));
        CHECK((m.kind == MethodKind::searches) == (m.search != nullptr));
        CHECK((m.kind == MethodKind::trains) == (m.train_and_prune != nullptr));
        CHECK(find_method(m.name) == &m);
        // The config takes the name.
        CHECK(parse_config(std::string("[prune]\nmethod = \"") + m.name + "\"\n", "m.toml").prune.method == m.name);
    }
    CHECK(names.size() >= 10);
    CHECK(find_method("none") == nullptr);
    CHECK_THROWS_WITH_AS(find_method("prune-it"), doctest::Contains("unknown method 'prune-it' (none, random"), Error);
    CHECK(prune_method_choices().front() == "none");
    CHECK(prune_method_choices().size() == prune_methods().size() + 1);
}

TEST_CASE("methods: the README's method table is the registry's") {
    std::ifstream in("README.md");
    REQUIRE(in.good());
    std::stringstream text;
    text << in.rdbuf();
    const std::string readme = text.str();
    const std::string expected = methods_markdown();
    const std::string header = expected.substr(0, expected.find('\n') + 1);
    const size_t start = readme.find(header);
    REQUIRE_MESSAGE(start != std::string::npos, "README.md has no method table (spinprune methods --markdown writes it)");
    const size_t end = readme.find("\n\n", start);
    const std::string table = readme.substr(start, end == std::string::npos ? std::string::npos : end - start + 1);
    CHECK_MESSAGE(table == expected, "README.md's method table differs from `spinprune methods --markdown`:\n" << expected);
}
