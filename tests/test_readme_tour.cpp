// The README's five-minute tour, run as written: every command of its code block, in order (with
// the run directories moved from runs/tour to a temporary folder), and the files the README says
// the second command's run directory holds.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/idx.h"
#include "tests/harness.h"

namespace {

std::string readme() {
    std::ifstream in("README.md");
    REQUIRE_MESSAGE(in.good(), "README.md not found (the suite runs from the repository root)");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// The text of the README's section `heading` (from the heading to the next "## ").
std::string section(const std::string& text, const std::string& heading) {
    const size_t start = text.find("\n## " + heading + "\n");
    REQUIRE_MESSAGE(start != std::string::npos, "README.md has no section '" << heading << "'");
    const size_t end = text.find("\n## ", start + 4);
    return text.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("README: the tour's commands run as written, and its run directory holds the files it names" *
          doctest::skip(!sp::fashion_mnist_available())) {
    namespace fs = std::filesystem;
    const std::string tour = section(readme(), "A five-minute tour");
    const size_t block = tour.find("```sh\n");
    REQUIRE(block != std::string::npos);
    std::istringstream lines(tour.substr(block + 6, tour.find("```", block + 6) - block - 6));
    std::vector<std::string> commands;
    for (std::string line; std::getline(lines, line);)
        if (!line.empty()) commands.push_back(line);
    REQUIRE(commands.size() >= 5);

    const fs::path dir = fs::temp_directory_path() / ("spinprune_tour_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (std::string command : commands) {
        REQUIRE_MESSAGE(command.rfind("bin/spinprune ", 0) == 0, "a tour command that is not bin/spinprune: " << command);
        replace_all(command, "runs/tour/", dir.string() + "/");
        const std::string args = command.substr(std::string("bin/spinprune").size());
        const std::string subcommand = args.substr(1, args.find(' ', 1) - 1);
        command = sp::test::spinprune_program() + args;
        if (subcommand == "train" || subcommand == "run" || subcommand == "prune") command += " --quiet";
        std::string out;
        const int status = sp::test::run_command(command, &out);
        CAPTURE(command);
        CAPTURE(out);
        REQUIRE(status == 0);
        if (command.find(" eval ") != std::string::npos) CHECK(out.find("test: top-1 ") != std::string::npos);
    }

    // "The run directory of the second command holds `config.toml` (...), ..., and `pruned.safetensors`."
    const std::string intro = "The run directory of the second command holds ";
    const size_t from = tour.find(intro);
    REQUIRE(from != std::string::npos);
    const std::string list = tour.substr(from, tour.find(". ", from) - from);
    int named = 0;
    for (size_t open = list.find('`'); open != std::string::npos; open = list.find('`', list.find('`', open + 1) + 1)) {
        const std::string name = list.substr(open + 1, list.find('`', open + 1) - open - 1);
        CAPTURE(name);
        CHECK(fs::exists(dir / "run" / name));
        ++named;
    }
    CHECK(named >= 8);
    fs::remove_all(dir);
}
