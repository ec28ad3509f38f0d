// One flat buffer of trainable parameters (and one of their gradients) plus one flat buffer of
// non-trainable state (BN running statistics), owned by the model and handed to modules as
// views. The optimizer updates the whole flat buffer in one pass; a checkpoint saves both.
// Every entry starts at a 256-byte boundary of its buffer (zero padding between entries), so
// the pointers handed to cuDNN/cuBLAS and to vectorised kernels are aligned whatever the
// widths of a compacted model; the padding stays zero (its gradients are zero).
//
// Use: every module registers what it needs at construction (add_parameter/add_state return
// an index), then the model calls allocate(device, seed) once, which creates the buffers and
// initialises every entry; only after that are value()/grad()/state() valid.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nn/tensor.h"

namespace sp {

enum class Init {
    zeros,
    ones,
    kaiming_normal,   // N(0, 2 / fan_in): He et al. for ReLU networks
    kaiming_uniform,  // U(±1/sqrt(fan_in)): PyTorch's default for conv/linear weights (a = √5)
    fan_in_uniform,   // U(±1/sqrt(fan_in)): PyTorch's default for conv/linear biases
};

struct ParameterInfo {
    std::string name;  // "features.0.weight"
    Shape shape;
    Init init;
    int64_t fan_in;    // inputs per output unit (C/groups · R · S for conv, IN for linear)
    int64_t offset;    // in floats, into the flat buffer (a multiple of kEntryAlignFloats)
};

class ParameterStore {
public:
    static constexpr int64_t kEntryAlignFloats = 64;  // 256 bytes

    int add_parameter(std::string name, Shape shape, Init init, int64_t fan_in = 1);
    int add_state(std::string name, Shape shape, Init init);

    // Creates the buffers on `device` and initialises them from Philox streams keyed by `seed`
    // and each entry's index, on the host, so both backends start from the same weights.
    void allocate(Device device, uint64_t seed);
    // Creates the buffers on `device` holding `values` and `states`, laid out as values() and
    // states() (padding zero), without the random initialisation: for a caller that writes
    // every entry itself (network surgery).
    void allocate(Device device, const std::vector<float>& values, const std::vector<float>& states);
    bool allocated() const { return values_.defined() || parameter_count() == 0; }

    Tensor value(int index) const;  // views, (shape of the entry)
    Tensor grad(int index) const;
    Tensor state(int index) const;

    // A (parameter_floats) tensor laid out like values() (an optimizer's state) without its
    // padding, as a (parameter_count) host tensor, and back: checkpoints store this packed form,
    // so they do not depend on the alignment.
    Tensor packed(const Tensor& flat) const;
    void unpack(const Tensor& packed, Tensor& flat) const;

    Tensor& values() { return values_; }  // (parameter_floats), padding included
    Tensor& grads() { return grads_; }
    Tensor& states() { return states_; }
    const std::vector<ParameterInfo>& parameters() const { return parameters_; }
    const std::vector<ParameterInfo>& state_entries() const { return states_info_; }
    // Numbers of parameters and state values (what the model has), and the lengths of the flat
    // buffers that hold them (padding included).
    int64_t parameter_count() const { return parameter_count_; }
    int64_t state_count() const { return state_count_; }
    int64_t parameter_floats() const { return parameter_floats_; }
    int64_t state_floats() const { return state_floats_; }
    Device device() const { return device_; }

private:
    std::vector<ParameterInfo> parameters_, states_info_;
    int64_t parameter_count_ = 0, state_count_ = 0;
    int64_t parameter_floats_ = 0, state_floats_ = 0;
    Tensor values_, grads_, states_;
    Device device_ = Device::cpu;
    bool allocate_called_ = false;  // no registration after allocate(), even of empty entries
};

}  // namespace sp
