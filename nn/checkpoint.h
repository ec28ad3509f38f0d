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

// Reads and validates a checkpoint: any truncation, bad header, overlapping or out-of-range
// offsets, or a dtype other than F32 is an error naming the file.
Checkpoint load_checkpoint(const std::string& path);

// Writes `contents` to `path` atomically (temporary file + fsync + rename).
void write_file_atomically(const std::string& path, const std::string& contents);

}  // namespace sp
