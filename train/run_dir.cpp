// Run directory creation and its files.
#include "train/run_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "kernels/error.h"
#include "nn/checkpoint.h"

namespace sp {

RunDir::RunDir(std::string path) : path_(std::move(path)) {
    std::error_code ec;
    std::filesystem::create_directories(path_, ec);
    SP_REQUIRE(!ec, "cannot create run directory " << path_ << ": " << ec.message());
    const std::string probe = file(".write_probe." + std::to_string(::getpid()));
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    SP_REQUIRE(fd >= 0, "run directory " << path_ << " is not writable: " << std::strerror(errno));
    ::close(fd);
    ::unlink(probe.c_str());
}

void RunDir::require_free_space(uint64_t bytes, const std::string& what) const {
    std::error_code ec;
    const std::filesystem::space_info space = std::filesystem::space(path_, ec);
    if (ec) return;
    auto mib = [](uint64_t b) { return std::to_string((b + (1u << 20) - 1) >> 20) + " MiB"; };
    SP_REQUIRE(space.available >= bytes, "run directory " << path_ << ": not enough free disk space for the " << what
                                                          << ": expected at least " << mib(bytes) << ", the disk has "
                                                          << mib(space.available) << " available");
}

void RunDir::write_text(const std::string& name, const std::string& text) const { write_file_atomically(file(name), text); }

void RunDir::write_json(const std::string& name, const nlohmann::json& value) const {
    write_text(name, value.dump(2) + "\n");
}

void RunDir::append_metrics(const nlohmann::json& record) const {
    std::ofstream out(file("metrics.jsonl"), std::ios::app);
    SP_REQUIRE(out, "cannot append to " << file("metrics.jsonl"));
    out << record.dump() << "\n";
    out.flush();
    SP_REQUIRE(out, "cannot write " << file("metrics.jsonl") << " (disk full?)");
}

double RunDir::logged_seconds(const std::string& phase) const {
    std::ifstream in(file("metrics.jsonl"));
    double seconds = 0;
    for (std::string line; std::getline(in, line);) {
        nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (!record.is_discarded() && record.value("phase", "") == phase) seconds += record.value("seconds", 0.0);
    }
    return seconds;
}

void RunDir::truncate_metrics(const std::string& phase, int64_t last_epoch) const {
    std::ifstream in(file("metrics.jsonl"));
    if (!in) return;
    std::string kept, line;
    bool dropped = false;
    while (std::getline(in, line)) {
        nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        const bool drop = record.is_discarded() ||  // a line torn by a crash mid-append
                          (record.value("phase", "") == phase && record.value("epoch", int64_t{0}) > last_epoch);
        if (!drop) kept += line + "\n";
        dropped |= drop;
    }
    if (dropped) write_text("metrics.jsonl", kept);  // every phase start calls this: rewrite only when needed
}

namespace {

// The commit, "-dirty" when tracked files differ from it (as git describe --dirty: untracked files
// do not count), results under bench/results aside: a study's archive changes there as its runs
// complete (scripts/repro.py --archive), and that is no change of the code that ran.
std::string git_revision() {
    std::string rev;
    if (FILE* pipe = ::popen("git rev-parse --short HEAD 2>/dev/null && git status --porcelain --untracked-files=no "
                             "-- ':/' ':(top,exclude)bench/results' 2>/dev/null | head -1", "r")) {
        char buffer[256];
        std::string out;
        while (std::fgets(buffer, sizeof buffer, pipe)) out += buffer;
        ::pclose(pipe);
        auto nl = out.find('\n');
        rev = out.substr(0, nl);
        if (nl != std::string::npos && nl + 1 < out.size()) rev += "-dirty";
    }
    return rev.empty() ? "unknown" : rev;
}
}  // namespace

nlohmann::json environment_info(Device device) {
    nlohmann::json info = {
        {"git_revision", git_revision()},
        {"device", device_name(device)},
        {"device_name", device == Device::cuda ? cuda_device_name() : cpu_name()},
        {"cuda_runtime", cuda_runtime_version()},
        {"cudnn", cudnn_version()},
        {"compiler", __VERSION__},
    };
    return info;
}

}  // namespace sp
