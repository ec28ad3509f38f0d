// Checkpoints in the safetensors layout (8-byte little-endian header length, a JSON header of
// {name: {dtype, shape, data_offsets}} plus "__metadata__" of strings, then raw tensors), so
// Python's safetensors and PyTorch read our weights. Writes are atomic: a temporary file in the
// same directory, flushed and fsync'ed, then renamed over the target.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nn/tensor.h"

namespace sp {

struct CheckpointEntry {
    Shape shape;
    std::vector<float> values;
};

struct Checkpoint {
    std::string path;
    std::map<std::string, CheckpointEntry> tensors;
    std::map<std::string, std::string> metadata;

    // The entry `name`, which must exist with `shape`: otherwise an error naming the file.
    const CheckpointEntry& get(const std::string& name, const Shape& shape) const;
    const std::string& meta(const std::string& key) const;
};

// Tensors may live on any device (copied to the host to be written). Names must be unique.
void save_checkpoint(const std::string& path, const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                     const std::map<std::string, std::string>& metadata);
// Writes a checkpoint as read (its tensors and metadata) to `path`, e.g. after editing it.
void save_checkpoint(const std::string& path, const Checkpoint& checkpoint);

// Reads and validates a checkpoint: any truncation, bad header, overlapping or out-of-range
// offsets, or a dtype other than F32 is an error naming the file.
Checkpoint load_checkpoint(const std::string& path);
// The same from the file's bytes; `path` names the source in errors.
Checkpoint parse_checkpoint(const std::string& contents, const std::string& path);

// A run's pruning mask (mask.safetensors): a checkpoint with metadata format = kMaskFormat, the
// method/granularity/budget it was made with, and one tensor "state" of one value per unit.
constexpr const char* kMaskFormat = "spinprune-mask";
struct MaskFile {
    std::vector<float> state;  // (units), each 0 (pruned) or 1 (kept)
    std::map<std::string, std::string> metadata;
};
// Reads and validates a mask file for a mask space of `units` units: the format, the state's
// shape and every value (exactly 0 or 1) are checked, with errors naming the file.
MaskFile load_mask(const std::string& path, int64_t units);
MaskFile parse_mask(const std::string& contents, const std::string& path, int64_t units);

// Writes `contents` to `path` atomically (temporary file + fsync + rename).
void write_file_atomically(const std::string& path, const std::string& contents);

}  // namespace sp
