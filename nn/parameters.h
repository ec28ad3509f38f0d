// One flat buffer of trainable parameters (and one of their gradients) plus one flat buffer of
// non-trainable state (BN running statistics), owned by the model and handed to modules as
// views. The optimizer updates the whole flat buffer in one pass; a checkpoint saves both.
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
    int64_t offset;    // in floats, into the flat buffer
};

class ParameterStore {
public:
    int add_parameter(std::string name, Shape shape, Init init, int64_t fan_in = 1);
    int add_state(std::string name, Shape shape, Init init);

    // Creates the buffers on `device` and initialises them from Philox streams keyed by `seed`
    // and each entry's index, on the host, so both backends start from the same weights.
    void allocate(Device device, uint64_t seed);
    bool allocated() const { return values_.defined() || parameter_count() == 0; }

    Tensor value(int index) const;  // views, (shape of the entry)
    Tensor grad(int index) const;
    Tensor state(int index) const;

    Tensor& values() { return values_; }  // (parameter_count)
    Tensor& grads() { return grads_; }
    Tensor& states() { return states_; }
    const std::vector<ParameterInfo>& parameters() const { return parameters_; }
    const std::vector<ParameterInfo>& state_entries() const { return states_info_; }
    int64_t parameter_count() const { return parameter_floats_; }
    int64_t state_count() const { return state_floats_; }
    Device device() const { return device_; }

private:
    std::vector<ParameterInfo> parameters_, states_info_;
    int64_t parameter_floats_ = 0, state_floats_ = 0;
    Tensor values_, grads_, states_;
    Device device_ = Device::cpu;
    bool allocate_called_ = false;  // no registration after allocate(), even of empty entries
};

}  // namespace sp
