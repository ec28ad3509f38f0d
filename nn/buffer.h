// Move-only RAII memory on the host or a CUDA device, explicit copies between devices, and a
// count of the bytes each device has allocated through it.
#pragma once

#include <cstddef>

#include "nn/device.h"

namespace sp {

class Buffer {
public:
    Buffer() = default;
    Buffer(Device device, size_t bytes);  // zero-filled
    ~Buffer();
    Buffer(Buffer&& other) noexcept;
    Buffer& operator=(Buffer&& other) noexcept;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    void* data() { return data_; }
    const void* data() const { return data_; }
    size_t bytes() const { return bytes_; }
    Device device() const { return device_; }

    // Bytes currently allocated through Buffer on a device, and the peak since start.
    static size_t live_bytes(Device device);
    static size_t peak_bytes(Device device);

private:
    void release();
    void* data_ = nullptr;
    size_t bytes_ = 0;
    Device device_ = Device::cpu;
};

// Copies between any two devices. Device-side copies go through the legacy default stream,
// which waits for work queued on the (blocking) streams that Context creates.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);

}  // namespace sp
