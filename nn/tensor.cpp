// Tensor construction, views and host/device copies.
#include "nn/tensor.h"

#include <algorithm>
#include <sstream>

#include "kernels/error.h"
#include "kernels/kernels.h"
#include "nn/cuda/stream.h"

namespace sp {

int64_t Shape::numel() const {
    int64_t n = 1;
    for (int64_t d : dims_) n *= d;
    return n;
}

std::string Shape::str() const {
    std::ostringstream out;
    out << "(";
    for (size_t i = 0; i < dims_.size(); ++i) out << (i ? ", " : "") << dims_[i];
    out << ")";
    return out.str();
}

Tensor::Tensor(Shape shape, Device device)
    : shape_(std::move(shape)), device_(device),
      owner_(device, static_cast<size_t>(shape_.numel()) * sizeof(float)) {
    for (int64_t d : shape_.dims()) SP_REQUIRE(d >= 0, "tensor: negative dimension in shape " << shape_.str());
    data_ = static_cast<float*>(owner_.data());
}

Tensor Tensor::view(float* data, Shape shape, Device device) {
    Tensor t;
    t.shape_ = std::move(shape);
    t.device_ = device;
    t.data_ = data;
    return t;
}

Tensor Tensor::from_host(const std::vector<float>& values, Shape shape, Device device) {
    SP_REQUIRE(static_cast<int64_t>(values.size()) == shape.numel(),
               "tensor: " << values.size() << " values do not fill shape " << shape.str());
    Tensor t(std::move(shape), device);
    copy_bytes(t.data_, device, values.data(), Device::cpu, values.size() * sizeof(float));
    return t;
}

Tensor Tensor::view() const { return view(data_, shape_, device_); }

Tensor Tensor::reshaped(Shape shape) const {
    SP_REQUIRE(shape.numel() == numel(), "tensor: cannot reshape " << shape_.str() << " to " << shape.str());
    return view(data_, std::move(shape), device_);
}

Tensor Tensor::to(Device device) const {
    Tensor t(shape_, device);
    t.copy_from(*this);
    return t;
}

std::vector<float> Tensor::to_host() const {
    std::vector<float> values(static_cast<size_t>(numel()));
    copy_bytes(values.data(), Device::cpu, data_, device_, values.size() * sizeof(float));
    return values;
}

void Tensor::copy_from(const Tensor& src) {
    SP_REQUIRE(src.numel() == numel(),
               "tensor: copy from " << src.shape().str() << " into " << shape_.str() << " (sizes differ)");
    copy_bytes(data_, device_, src.data_, src.device_, static_cast<size_t>(numel()) * sizeof(float));
}

void Tensor::fill(float value) {
    if (device_ == Device::cpu) std::fill(data_, data_ + numel(), value);
    else kernels::fill(data_, static_cast<size_t>(numel()), value, device_stream());
}

}  // namespace sp
