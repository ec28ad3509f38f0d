// Helpers of the tests that drive scripts and the spinprune program through the shell
// (test_report.cpp, test_sweep.cpp): whole-file reads and writes, a command's exit status with
// its output kept in a log, and the results.csv tables of scripts/report.py.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace script_test {

inline std::string read_text(const std::filesystem::path& p) {
    std::ifstream f(p);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

inline void write_text(const std::filesystem::path& p, const std::string& text) {
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
}

// Exit status of a shell command (-1 if it did not exit), its output appended to `log`.
inline int run(const std::string& command, const std::filesystem::path& log) {
    const int status = std::system(("{ " + command + "\n} >>" + log.string() + " 2>&1").c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The Python that runs the scripts: $SPINPRUNE_PYTHON, else the first python3 with matplotlib
// (for the plots), else python3.
inline const std::string& python() {
    static const std::string chosen = [] {
        if (const char* p = std::getenv("SPINPRUNE_PYTHON")) return std::string(p);
        for (const char* p : {"python3", "/usr/bin/python3"})
            if (std::system((std::string(p) + " -c 'import matplotlib' >/dev/null 2>&1").c_str()) == 0) return std::string(p);
        return std::string("python3");
    }();
    return chosen;
}

// A unique empty folder spinprune_test_<name>_<pid> under the system's temporary directory.
inline std::filesystem::path fresh_dir(const std::string& name) {
    std::filesystem::path p = std::filesystem::temp_directory_path() / ("spinprune_test_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(p);
    std::filesystem::create_directories(p);
    return p;
}

// results.csv as experiment -> column -> cell (the cells hold no commas).
inline std::map<std::string, std::map<std::string, std::string>> read_table(const std::filesystem::path& csv) {
    std::ifstream f(csv);
    auto split = [](const std::string& s) {
        std::vector<std::string> cells;
        std::stringstream ss(s);
        for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
        return cells;
    };
    std::string line;
    std::vector<std::string> header;
    std::map<std::string, std::map<std::string, std::string>> rows;
    if (std::getline(f, line)) header = split(line);
    while (std::getline(f, line)) {
        const std::vector<std::string> cells = split(line);
        for (size_t i = 0; i < cells.size() && i < header.size(); ++i) rows[cells[0]][header[i]] = cells[i];
    }
    return rows;
}

}  // namespace script_test
