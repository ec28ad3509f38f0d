// Buffer allocation, release and byte accounting.
#include "nn/buffer.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/error.h"
#include "nn/device_memory.h"

namespace sp {

namespace {
std::atomic<size_t> g_live[2];
std::atomic<size_t> g_peak[2];
std::atomic<size_t> g_limit[2];

int index_of(Device d) { return d == Device::cpu ? 0 : 1; }

void account(Device d, long long delta) {
    size_t now = g_live[index_of(d)].fetch_add(static_cast<size_t>(delta)) + static_cast<size_t>(delta);
    size_t peak = g_peak[index_of(d)].load();
    while (now > peak && !g_peak[index_of(d)].compare_exchange_weak(peak, now)) {}
}
}  // namespace

Buffer::Buffer(Device device, size_t bytes) : bytes_(bytes), device_(device) {
    if (bytes == 0) return;
    const size_t limit = g_limit[index_of(device)].load();
    if (limit != 0 && live_bytes(device) + bytes > limit)
        fail_out_of_memory("buffer: " + std::to_string(bytes) + " bytes on " + device_name(device) + " would exceed " +
                               "the memory limit of " + std::to_string(limit) + " bytes (" +
                               std::to_string(live_bytes(device)) + " in use)",
                           __FILE__, __LINE__);
    if (device == Device::cpu) {
        // 64-byte alignment for vectorised CPU loops; aligned_alloc needs a multiple of the alignment.
        data_ = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!data_)
            fail_out_of_memory("buffer: no room for " + std::to_string(bytes) + " bytes of host memory", __FILE__,
                               __LINE__);
        std::memset(data_, 0, bytes);
    } else {
        data_ = device_memory::allocate(bytes);
    }
    account(device, static_cast<long long>(bytes));
}

Buffer::~Buffer() { release(); }

void Buffer::release() {
    if (!data_) return;
    if (device_ == Device::cpu) std::free(data_);
    else device_memory::release(data_);
    account(device_, -static_cast<long long>(bytes_));
    data_ = nullptr;
    bytes_ = 0;
}

Buffer::Buffer(Buffer&& other) noexcept
    : data_(other.data_), bytes_(other.bytes_), device_(other.device_) {
    other.data_ = nullptr;
    other.bytes_ = 0;
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
    if (this != &other) {
        release();
        data_ = other.data_;
        bytes_ = other.bytes_;
        device_ = other.device_;
        other.data_ = nullptr;
        other.bytes_ = 0;
    }
    return *this;
}

size_t Buffer::live_bytes(Device device) { return g_live[index_of(device)].load(); }
size_t Buffer::peak_bytes(Device device) { return g_peak[index_of(device)].load(); }
void Buffer::reset_peak(Device device) { g_peak[index_of(device)].store(live_bytes(device)); }
void Buffer::set_memory_limit(Device device, size_t bytes) { g_limit[index_of(device)].store(bytes); }

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
    if (bytes == 0) return;
    if (dst_device == Device::cpu && src_device == Device::cpu) {
        std::memcpy(dst, src, bytes);
        return;
    }
    device_memory::copy(dst, dst_device, src, src_device, bytes);
}

}  // namespace sp
