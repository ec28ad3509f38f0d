// Device memory, host<->device copies, pinned upload staging and device timing, behind an
// interface with no CUDA types in it (implemented in nn/cuda/memory.cpp; in a build without
// CUDA by nn/cuda_absent.cpp, where every one of them is an error).
//
// All device work of the process runs on one CUDA stream (nn/cuda/stream.h): kernels, library
// calls, copies, and stream-ordered allocation and release from a caching pool. A buffer freed
// while queued kernels still read it is therefore reused only by work queued after those
// kernels, and per-step temporaries cost no cudaMalloc/cudaFree once the pool has grown.
#pragma once

#include <cstddef>
#include <functional>

#include "nn/device.h"

namespace sp::device_memory {

// `bytes` of zero-filled device memory; throws OutOfMemory when the device has no room.
void* allocate(size_t bytes);
// Stream-ordered release back to the pool; never throws.
void release(void* data) noexcept;
// Any direction. A copy to the host has finished when this returns; device-side copies and
// uploads from pageable memory are queued on the stream (the source may be reused at once).
void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// Waits for all work queued on the stream.
void synchronize();
// Runs `work` (which queues device work) and returns the device time it took in milliseconds,
// measured between two events recorded on the stream before and after it.
double timed_ms(const std::function<void()>& work);

// Pinned host memory for repeated uploads (the batch loader's): fill host(n), then upload()
// queues the copy; the next host() waits only until that copy has left the buffer.
class UploadStaging {
public:
    UploadStaging() = default;
    ~UploadStaging();
    UploadStaging(const UploadStaging&) = delete;
    UploadStaging& operator=(const UploadStaging&) = delete;

    // At least `bytes` of pinned host memory, free to overwrite.
    void* host(size_t bytes);
    // Queues the copy of the first `bytes` of host() into device memory `dst`.
    void upload(void* dst, size_t bytes);

private:
    void* host_ = nullptr;
    size_t capacity_ = 0;
    void* copied_ = nullptr;  // cudaEvent_t recorded after the last upload
};

}  // namespace sp::device_memory
