// The flat parameter store: registration, host-side Philox initialisation, views.
#include "nn/parameters.h"

#include <algorithm>
#include <cmath>

#include "kernels/error.h"
#include "kernels/philox.h"
#include "nn/context.h"

namespace sp {

namespace {

constexpr double kPi = 3.14159265358979323846;

// Fills `out` (the entry's floats) from the Philox stream `key` following `init`.
void initialise(float* out, int64_t n, Init init, int64_t fan_in, uint64_t key) {
    auto uniform = [&](int64_t i) { return static_cast<double>(stream_uniform(key, static_cast<uint64_t>(i))); };
    switch (init) {
        case Init::zeros:
            for (int64_t i = 0; i < n; ++i) out[i] = 0.0f;
            return;
        case Init::ones:
            for (int64_t i = 0; i < n; ++i) out[i] = 1.0f;
            return;
        case Init::kaiming_normal: {
            // Box-Muller on uniforms (2j, 2j+1) gives normals 2j (cos) and 2j+1 (sin).
            const double stddev = std::sqrt(2.0 / static_cast<double>(fan_in));
            for (int64_t j = 0; 2 * j < n; ++j) {
                double u1 = uniform(2 * j), u2 = uniform(2 * j + 1);  // u1 in (0, 1]: log is finite
                double r = std::sqrt(-2.0 * std::log(u1));
                out[2 * j] = static_cast<float>(stddev * r * std::cos(2.0 * kPi * u2));
                if (2 * j + 1 < n) out[2 * j + 1] = static_cast<float>(stddev * r * std::sin(2.0 * kPi * u2));
            }
            return;
        }
        case Init::kaiming_uniform:  // gain sqrt(2 / (1 + 5)) · sqrt(3 / fan_in) = 1 / sqrt(fan_in)
        case Init::fan_in_uniform: {
            const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
            for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(bound * (2.0 * uniform(i) - 1.0));
            return;
        }
    }
    SP_REQUIRE(false, "parameters: unknown Init value " << static_cast<int>(init));
}

int64_t aligned_offset(int64_t floats) {
    const int64_t a = ParameterStore::kEntryAlignFloats;
    return (floats + a - 1) / a * a;
}

void check_shape(const std::string& name, const Shape& shape) {
    for (int64_t d : shape.dims())
        SP_REQUIRE(d >= 0, "parameters: entry '" << name << "' has a negative dimension in " << shape.str());
}

}  // namespace

int ParameterStore::add_parameter(std::string name, Shape shape, Init init, int64_t fan_in) {
    SP_REQUIRE(!allocate_called_, "parameters: cannot add '" << name << "' after allocate()");
    SP_REQUIRE(fan_in >= 1, "parameters: entry '" << name << "' has fan_in " << fan_in << " (must be >= 1)");
    check_shape(name, shape);
    const int64_t n = shape.numel(), offset = aligned_offset(parameter_floats_);
    parameters_.push_back({std::move(name), std::move(shape), init, fan_in, offset});
    parameter_floats_ = offset + n;
    parameter_count_ += n;
    return static_cast<int>(parameters_.size()) - 1;
}

int ParameterStore::add_state(std::string name, Shape shape, Init init) {
    SP_REQUIRE(!allocate_called_, "parameters: cannot add state '" << name << "' after allocate()");
    check_shape(name, shape);
    const int64_t n = shape.numel(), offset = aligned_offset(state_floats_);
    states_info_.push_back({std::move(name), std::move(shape), init, 1, offset});
    state_floats_ = offset + n;
    state_count_ += n;
    return static_cast<int>(states_info_.size()) - 1;
}

void ParameterStore::allocate(Device device, uint64_t seed) {
    // Parameter entry i draws from stream (seed, i, 0), state entry i from (seed, i, 1): the
    // values depend only on the seed and the registration order, never on the device.
    std::vector<float> host(static_cast<size_t>(parameter_floats_));
    for (size_t i = 0; i < parameters_.size(); ++i) {
        const ParameterInfo& p = parameters_[i];
        initialise(host.data() + p.offset, p.shape.numel(), p.init, p.fan_in, random_stream_key(seed, i, 0));
    }
    std::vector<float> host_state(static_cast<size_t>(state_floats_));
    for (size_t i = 0; i < states_info_.size(); ++i) {
        const ParameterInfo& s = states_info_[i];
        initialise(host_state.data() + s.offset, s.shape.numel(), s.init, s.fan_in, random_stream_key(seed, i, 1));
    }
    allocate(device, host, host_state);
}

void ParameterStore::allocate(Device device, const std::vector<float>& values, const std::vector<float>& states) {
    SP_REQUIRE(static_cast<int64_t>(values.size()) == parameter_floats_ &&
                   static_cast<int64_t>(states.size()) == state_floats_,
               "parameters: allocate() from " << values.size() << " values and " << states.size()
                                              << " states, expected " << parameter_floats_ << " and " << state_floats_);
    device_ = device;
    allocate_called_ = true;
    values_ = Tensor::from_host(values, Shape{parameter_floats_}, device);
    grads_ = Tensor(Shape{parameter_floats_}, device);
    states_ = Tensor::from_host(states, Shape{state_floats_}, device);
}

Tensor ParameterStore::value(int index) const {
    SP_REQUIRE(index >= 0 && static_cast<size_t>(index) < parameters_.size(),
               "parameters: no parameter with index " << index << " (" << parameters_.size() << " registered)");
    SP_REQUIRE(allocated(), "parameters: value('" << parameters_[index].name << "') before allocate()");
    const ParameterInfo& p = parameters_[static_cast<size_t>(index)];
    // The store hands out mutable views of its buffers: modules update parameters in place.
    return Tensor::view(const_cast<float*>(values_.data()) + p.offset, p.shape, device_);
}

Tensor ParameterStore::grad(int index) const {
    SP_REQUIRE(index >= 0 && static_cast<size_t>(index) < parameters_.size(),
               "parameters: no parameter with index " << index << " (" << parameters_.size() << " registered)");
    SP_REQUIRE(allocated(), "parameters: grad('" << parameters_[index].name << "') before allocate()");
    const ParameterInfo& p = parameters_[static_cast<size_t>(index)];
    return Tensor::view(const_cast<float*>(grads_.data()) + p.offset, p.shape, device_);
}

Tensor ParameterStore::packed(const Tensor& flat) const {
    SP_REQUIRE(flat.numel() == parameter_floats_, "parameters: packing a tensor of " << flat.numel()
                                                  << " floats, the flat buffer has " << parameter_floats_);
    const std::vector<float> all = flat.to_host();
    std::vector<float> out;
    out.reserve(static_cast<size_t>(parameter_count_));
    for (const ParameterInfo& p : parameters_)
        out.insert(out.end(), all.begin() + p.offset, all.begin() + p.offset + p.shape.numel());
    return Tensor::from_host(out, Shape{parameter_count_}, Device::cpu);
}

void ParameterStore::unpack(const Tensor& packed, Tensor& flat) const {
    SP_REQUIRE(packed.numel() == parameter_count_ && flat.numel() == parameter_floats_,
               "parameters: unpacking " << packed.numel() << " values into " << flat.numel() << " floats; expected "
                                        << parameter_count_ << " into " << parameter_floats_);
    const std::vector<float> values = packed.to_host();
    std::vector<float> out(static_cast<size_t>(parameter_floats_), 0.0f);
    int64_t next = 0;
    for (const ParameterInfo& p : parameters_) {
        std::copy_n(values.begin() + next, p.shape.numel(), out.begin() + p.offset);
        next += p.shape.numel();
    }
    flat.copy_from(Tensor::from_host(out, flat.shape(), Device::cpu));
}

Tensor ParameterStore::state(int index) const {
    SP_REQUIRE(index >= 0 && static_cast<size_t>(index) < states_info_.size(),
               "parameters: no state entry with index " << index << " (" << states_info_.size() << " registered)");
    SP_REQUIRE(allocate_called_,
               "parameters: state('" << states_info_[index].name << "') before allocate()");
    const ParameterInfo& s = states_info_[static_cast<size_t>(index)];
    return Tensor::view(const_cast<float*>(states_.data()) + s.offset, s.shape, device_);
}

}  // namespace sp
