#include "train/progress_line.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace sp {

namespace {

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double log_interval() {
    const char* text = std::getenv("SPINPRUNE_PROGRESS_SECONDS");
    if (!text || !*text) return 30.0;
    char* end = nullptr;
    const double seconds = std::strtod(text, &end);
    if (*end != '\0' || !(seconds >= 0)) {
        std::fprintf(stderr, "SPINPRUNE_PROGRESS_SECONDS=%s: expected a number of seconds >= 0; using 30\n", text);
        return 30.0;
    }
    return seconds;
}

}  // namespace

ProgressLine::ProgressLine(std::string what, int64_t total, std::string unit, bool quiet)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total), quiet_(quiet),
      terminal_(::isatty(STDOUT_FILENO) != 0), interval_(terminal_ ? 0.5 : log_interval()),
      last_shown_(terminal_ ? -1e300 : now_seconds()) {}  // a log's first line after one interval

bool ProgressLine::due(int64_t done) const {
    if (quiet_) return false;
    if (terminal_ && done >= total_) return true;  // the in-place line ends complete
    return now_seconds() - last_shown_ >= interval_;
}

void ProgressLine::show(int64_t done, double seconds, const std::string& detail) {
    if (!due(done)) return;
    last_shown_ = now_seconds();
    char eta[64] = "";
    if (done > 0 && done < total_)
        std::snprintf(eta, sizeof eta, ", %s left", clock_text(seconds / static_cast<double>(done) * static_cast<double>(total_ - done)).c_str());
    std::printf("%s%s  %lld/%lld %s  %s%s%s%s", terminal_ ? "\r" : "", what_.c_str(), static_cast<long long>(done),
                static_cast<long long>(total_), unit_.c_str(), clock_text(seconds).c_str(), eta,
                detail.empty() ? "" : "  ", detail.c_str());
    if (terminal_) {
        std::printf("   ");  // covers the tail of a longer previous line
        line_open_ = true;
    } else {
        std::printf("\n");
    }
    std::fflush(stdout);
}

void ProgressLine::end_line() {
    if (!line_open_) return;
    std::printf("\n");
    std::fflush(stdout);
    line_open_ = false;
}

std::string clock_text(double seconds) {
    const long long s = std::llround(std::max(seconds, 0.0));
    char text[32];
    if (s >= 3600) std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    else std::snprintf(text, sizeof text, "%lld:%02lld", s / 60, s % 60);
    return text;
}

}  // namespace sp
