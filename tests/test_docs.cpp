// The documentation points only inside the repository: every path-like reference in a tracked
// text file (code comments, strings, README, docs/, scripts, experiments) names a file or folder
// that exists. A reference is a token of path characters that either starts with a top-level
// folder of the repository ("pruning/gibbs.h", "docs/methods.md", "./x" / "../x" relative to the
// file) or is a bare document name ("methods.md", "op_list.inc", "gibbs.cu"), which
// must be the name of some tracked file. Bare .h/.cpp/.py/.sh/.toml names are not checked: in
// code they are mostly member accesses (d.h, self.h) and files the tests write (bad.toml). Tokens with
// placeholders (<name>, *, {a,b}, $(VAR), NAME) are patterns, and paths in the folders .gitignore
// names (downloads and build outputs: data/cifar-10, build/...) are made by the build, not missing.
#include <doctest/doctest.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

// Bare document names that are not tracked files, each for its reason:
const std::set<std::string> kExternal = {
    "summary.md",  // written by `make gpu-check` into its OUT folder (scripts/gpu_check.sh)
    "results.md",  // written by scripts/report.py into runs/<target>/report/
};

// The tracked files: `git ls-files` from the repository root (the suite runs there). Outside a
// git checkout (a copied tree), every file below the root except the build's outputs and hidden
// folders.
std::vector<std::string> tracked_files() {
    std::vector<std::string> files;
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen("git ls-files 2>/dev/null", "r"), pclose);
    std::array<char, 4096> line{};
    while (pipe && fgets(line.data(), static_cast<int>(line.size()), pipe.get())) {
        std::string name(line.data());
        while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.pop_back();
        if (!name.empty()) files.push_back(name);
    }
    if (!files.empty()) return files;
    const std::set<std::string> outputs = {"build", "bin", "third_party", "runs", "__pycache__"};
    for (auto it = fs::recursive_directory_iterator("."); it != fs::recursive_directory_iterator(); ++it) {
        const std::string name = it->path().filename().string();
        if (it->is_directory() && (outputs.count(name) || (name[0] == '.' && name != ".ci"))) it.disable_recursion_pending();
        else if (it->is_regular_file()) files.push_back(it->path().lexically_relative(".").string());
    }
    return files;
}

// Whether `path` lies in a folder the top-level .gitignore anchors ("/build/", "/data/cifar-10/"):
// downloads and build outputs, made by the build rather than missing.
bool ignored_output(const std::string& path) {
    static const std::vector<std::string> folders = [] {
        std::vector<std::string> v;
        std::ifstream in(".gitignore");
        std::string line;
        while (std::getline(in, line))
            if (line.size() > 2 && line.front() == '/' && line.back() == '/') v.push_back(line.substr(1, line.size() - 2));
        return v;
    }();
    for (const std::string& f : folders)
        if (path == f || path.rfind(f + "/", 0) == 0) return true;
    return false;
}

bool is_path_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == '/' || c == '+';
}

bool has_extension(const std::string& token, const char* ext) {
    const std::string e(ext);
    return token.size() > e.size() && token.compare(token.size() - e.size(), e.size(), e) == 0;
}

bool document_extension(const std::string& token) {
    for (const char* ext : {".md", ".inc", ".cu"})
        if (has_extension(token, ext)) return true;
    return false;
}

// A placeholder component, as in "experiments/NAME.toml" ("make exp EXP=name"). Only NAME: an
// all-capitals rule would also pass a missing "docs/GUIDE.md".
bool has_placeholder(const std::string& token) {
    std::string component;
    std::stringstream parts(token);
    while (std::getline(parts, component, '/'))
        if (component.substr(0, component.find('.')) == "NAME") return true;
    return false;
}

struct Reference {
    std::string file, token;
    int line;
};

// The references of `text` (of tracked file `file`) that do not resolve.
std::vector<Reference> dangling_references(const std::string& file, const std::string& text,
                                           const std::set<std::string>& top_dirs,
                                           const std::set<std::string>& base_names) {
    std::vector<Reference> bad;
    int line = 1;
    size_t i = 0;
    while (i < text.size()) {
        if (text[i] == '\n') ++line;
        if (!is_path_char(text[i])) {
            ++i;
            continue;
        }
        const size_t begin = i;
        while (i < text.size() && is_path_char(text[i])) ++i;
        // Part of a URL, a pattern or a variable: not a reference to one file.
        const char before = begin > 0 ? text[begin - 1] : ' ';
        const char after = i < text.size() ? text[i] : ' ';
        if (before == ':' || before == '<' || before == '>' || before == '*' || before == '{' || before == '$' || before == '%' ||
            before == '@' || before == '~' || after == '*' || after == '<' || after == '{' || after == '%')
            continue;
        std::string token = text.substr(begin, i - begin);
        while (!token.empty() && (token.back() == '.' || token.back() == '-' || token.back() == '/')) token.pop_back();
        const bool relative = token.rfind("./", 0) == 0 || token.rfind("../", 0) == 0;
        const size_t slash = token.find('/');
        const bool in_repo = slash != std::string::npos && top_dirs.count(token.substr(0, slash)) > 0;
        const bool bare = slash == std::string::npos && document_extension(token) && token.front() != '.';
        if (has_placeholder(token) || (!in_repo && !bare && !relative)) continue;
        bool exists = false;
        if (relative) exists = fs::exists(fs::path(file).parent_path() / token) || fs::exists(token);
        else if (in_repo) exists = fs::exists(token);
        else exists = base_names.count(token) > 0 || kExternal.count(token) > 0;
        // A relative path may be relative to the file or, in a shell command, to the root.
        if (!exists && (in_repo || relative))
            exists = ignored_output(fs::path(token).lexically_normal().string()) ||
                     (relative && ignored_output((fs::path(file).parent_path() / token).lexically_normal().string()));
        if (!exists) bad.push_back({file, token, line});
    }
    return bad;
}

}  // namespace

TEST_CASE("docs: every reference to a repository file names one that exists") {
    const std::vector<std::string> files = tracked_files();
    std::set<std::string> top_dirs, base_names;
    for (const std::string& f : files) {
        const size_t slash = f.find('/');
        if (slash != std::string::npos) top_dirs.insert(f.substr(0, slash));
        base_names.insert(fs::path(f).filename().string());
    }
    CHECK(top_dirs.count("docs") == 1);
    CHECK(fs::exists("docs/methods.md"));
    CHECK(fs::exists("docs/architecture.md"));

    std::vector<Reference> bad;
    int scanned = 0;
    for (const std::string& f : files) {
        std::ifstream in(f, std::ios::binary);
        if (!in || f == "tests/test_docs.cpp") continue;  // deleted in the work tree; this file's examples dangle on purpose
        std::stringstream s;
        s << in.rdbuf();
        const std::string text = s.str();
        if (text.find('\0') != std::string::npos) continue;  // binary (figures)
        ++scanned;
        for (Reference& r : dangling_references(f, text, top_dirs, base_names)) bad.push_back(std::move(r));
    }
    CHECK(scanned > 100);
    for (const Reference& r : bad) FAIL_CHECK(r.file << ":" << r.line << ": '" << r.token << "' is not in the repository");

    // The checker itself: an invented file is caught, existing and external names are not.
    const auto dangling = [&](const std::string& text) { return dangling_references("x.md", text, top_dirs, base_names).size(); };
    CHECK(dangling("see pruning/no_such_file.h, NOTES.md and docs/GUIDE.md") == 3);
    CHECK(dangling("see pruning/gibbs.h, docs/methods.md and op_list.inc; runs/NAME/x.toml, data/cifar-10") == 0);
    CHECK(dangling("https://example.org/pruning/nothing.h <toml++/toml.h>") == 0);
}
