// Move-only RAII memory on the host or a CUDA device, explicit copies between devices, a count
// of the bytes each device has allocated through it, and an optional limit on that count.
#pragma once

#include <cstddef>

#include "nn/device.h"

namespace sp {

class Buffer {
public:
    Buffer() = default;
    Buffer(Device device, size_t bytes);  // zero-filled; OutOfMemory when there is no room
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
    static void reset_peak(Device device);  // peak := live, to measure one phase
    // Allocations that would take live_bytes(device) above `bytes` throw OutOfMemory, as a full
    // device would (0: no limit). Lets tests exercise out-of-memory paths on any machine.
    static void set_memory_limit(Device device, size_t bytes);

private:
    void release();
    void* data_ = nullptr;
    size_t bytes_ = 0;
    Device device_ = Device::cpu;
};

// Copies between any two devices, in order with all other device work (nn/device_memory.h): a
// copy to the host has finished when this returns.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);

}  // namespace sp
