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

class Model;

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

// What a reader outside spinprune needs to rebuild and feed the network a checkpoint holds,
// stored in its metadata (each value JSON text under the key in brackets). Python's
// spinprune_torch reads the same keys.
struct ModelDescription {
    std::string architecture;          // ["architecture"] a make_model name
    std::vector<int64_t> input_shape;  // ["input_shape"] (C, H, W)
    int64_t num_classes = 0;           // ["num_classes"]
    // ["normalization"] {"mean": [...], "std": [...]} per input channel, applied as
    // (x - mean) / std to pixels scaled to [0, 1]; null (both empty) when the run used none.
    std::vector<float> mean, std;
    // ["model_options"] {"shortcut", "bn_momentum", "bn_eps", "dropout"}: the builder's options.
    std::string shortcut = "A";
    float bn_momentum = 0.1f, bn_eps = 1e-5f, dropout = 0.5f;
    // ["widths"] every resizable channel set's width (dense or compacted): with the options,
    // what rebuilds the network; ["channel_sets"] every channel set's width, for reference.
    std::map<std::string, int64_t> widths, channel_sets;
    // ["weight_masks"] layers pruned with a weight/kernel mask: the checkpoint holds w ⊙ m as
    // "<layer>.weight" and the 0/1 mask as "<layer>.weight_mask" (PyTorch's pruning name).
    std::vector<std::string> weight_masks;
};

// The description of `model` fed with inputs normalised by (mean, std) (both empty: none).
ModelDescription describe_model(const Model& model, const std::vector<float>& mean, const std::vector<float>& std);
// Adds the description's keys to `metadata`.
void add_description(const ModelDescription& description, std::map<std::string, std::string>& metadata);
// Whether `ck` holds a description (checkpoints written before spinprune stored one do not).
bool has_description(const Checkpoint& ck);
// The description `ck` holds; a missing or malformed key is an error naming the file and the key
// (a checkpoint older than the description: its "config" and "widths" still rebuild the model
// in spinprune, but nothing there records the normalisation).
ModelDescription read_description(const Checkpoint& ck);

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
