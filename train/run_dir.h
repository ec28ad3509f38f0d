// The run directory a job writes: config.toml (resolved), metrics.jsonl (one JSON object per
// epoch), summary.json, environment.json (git revision, device, library versions), elapsed.json
// (the run's wall time at its last checkpoint, which a resumed run counts on from) and the
// checkpoints. Everything is written atomically or appended line by line.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "nn/device.h"

namespace sp {

class RunDir {
public:
    // Creates `path` (and parents) and checks it is writable (by creating and removing a probe
    // file, which also catches read-only mounts and root's writes there) before any training.
    explicit RunDir(std::string path);
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

    void write_text(const std::string& name, const std::string& text) const;  // atomic
    void write_json(const std::string& name, const nlohmann::json& value) const;  // atomic
    void append_metrics(const nlohmann::json& record) const;  // one line of metrics.jsonl
    // Drops the records of `phase` after epoch `last_epoch` (they are logged again by a resumed
    // run that redoes those epochs), and any torn last line left by a crash. Atomic.
    void truncate_metrics(const std::string& phase, int64_t last_epoch) const;
    // The "seconds" of `phase`'s records in metrics.jsonl: the phase's training time so far, over
    // every process that worked on the run.
    double logged_seconds(const std::string& phase) const;
    // Throws, naming the directory, when its file system has less than `bytes` available for
    // `what` (e.g. "train checkpoints of lenet"); says nothing when the space is unknown.
    void require_free_space(uint64_t bytes, const std::string& what) const;

private:
    std::string path_;
};

// Git revision of the source tree (or "unknown"), device and library versions.
nlohmann::json environment_info(Device device);

}  // namespace sp
