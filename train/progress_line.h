// Progress of long work (a training epoch, a search): done/total, the rate and the time left.
// On a terminal it is one line rewritten in place, at most twice a second; in a log (stdout not a
// terminal) a new line every SPINPRUNE_PROGRESS_SECONDS seconds (default 30; 0: at every update);
// nothing at all when quiet.
#pragma once

#include <cstdint>
#include <string>

namespace sp {

class ProgressLine {
public:
    // `what` leads the line ("train epoch 2/30"); `total` units of `unit` ("steps").
    ProgressLine(std::string what, int64_t total, std::string unit, bool quiet);
    ~ProgressLine() { end_line(); }
    ProgressLine(const ProgressLine&) = delete;
    ProgressLine& operator=(const ProgressLine&) = delete;

    // Whether show(done, ...) would print now: callers skip formatting their detail otherwise.
    bool due(int64_t done) const;
    // Prints the line if due: `done` of total after `seconds` of this work (a resumed piece of
    // work counts the units and the time before the resume alike); time left at the mean rate.
    void show(int64_t done, double seconds, const std::string& detail = "");
    // Ends an in-place line, so that other output starts on a line of its own.
    void end_line();

private:
    std::string what_, unit_;
    int64_t total_;
    bool quiet_, terminal_;
    double interval_;          // seconds between lines
    double last_shown_;        // the clock at the last line (a log: at construction)
    bool line_open_ = false;   // an in-place line is on the terminal
};

// "1:05", "1:02:03": a duration for people.
std::string clock_text(double seconds);

}  // namespace sp
