// A float32 tensor: a shape, a device, and either its own Buffer or a view into another's
// memory (parameters are views into one flat buffer). Move-only; copies are explicit.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "nn/buffer.h"

namespace sp {

class Shape {
public:
    Shape() = default;
    Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
    explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

    int rank() const { return static_cast<int>(dims_.size()); }
    int64_t operator[](int i) const { return dims_.at(static_cast<size_t>(i)); }
    int64_t numel() const;
    const std::vector<int64_t>& dims() const { return dims_; }
    std::string str() const;  // "(2, 3, 4)"
    bool operator==(const Shape& o) const { return dims_ == o.dims_; }
    bool operator!=(const Shape& o) const { return dims_ != o.dims_; }

private:
    std::vector<int64_t> dims_;
};

class Tensor {
public:
    Tensor() = default;
    Tensor(Shape shape, Device device);  // owning, zero-filled
    Tensor(Tensor&&) noexcept = default;
    Tensor& operator=(Tensor&&) noexcept = default;
    Tensor(const Tensor&) = delete;
    Tensor& operator=(const Tensor&) = delete;

    // Non-owning view of `data`; the caller keeps the memory alive.
    static Tensor view(float* data, Shape shape, Device device);
    static Tensor from_host(const std::vector<float>& values, Shape shape, Device device);

    // A non-owning view of the same memory, optionally with another shape of equal numel.
    Tensor view() const;
    Tensor reshaped(Shape shape) const;

    float* data() { return data_; }
    const float* data() const { return data_; }
    const Shape& shape() const { return shape_; }
    Device device() const { return device_; }
    int64_t numel() const { return shape_.numel(); }
    int rank() const { return shape_.rank(); }
    int64_t dim(int i) const { return shape_[i]; }
    bool defined() const { return data_ != nullptr; }
    bool owns_memory() const { return static_cast<bool>(owner_.data()); }

    Tensor to(Device device) const;  // explicit copy onto a device
    Tensor clone() const { return to(device_); }
    std::vector<float> to_host() const;
    void copy_from(const Tensor& src);  // same numel, any devices
    void fill(float value);
    void zero() { fill(0.0f); }

private:
    Shape shape_;
    Device device_ = Device::cpu;
    float* data_ = nullptr;
    Buffer owner_;
};

}  // namespace sp
