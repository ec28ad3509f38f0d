// Stream-ordered device memory from CUDA's caching pool, copies on the device stream, the pinned
// upload staging and event timing (nn/device_memory.h, nn/cuda/stream.h).
#include <cstdint>
#include <limits>
#include <string>

#include "kernels/check.h"
#include "nn/cuda/stream.h"
#include "nn/device_memory.h"

namespace sp {

cudaStream_t device_stream() {
    static const cudaStream_t stream = [] {
        SP_REQUIRE(cuda_available(), "CUDA: device memory or a stream was asked for but no usable GPU was found ("
                                         << cuda_status().reason << ")");
        int device = 0;
        SP_CHECK(cudaGetDevice(&device));
        // Keep freed blocks in the pool instead of returning them to the driver at each
        // synchronisation: the pool is then the caching allocator.
        cudaMemPool_t pool = nullptr;
        SP_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
        uint64_t keep_all = std::numeric_limits<uint64_t>::max();
        SP_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all));
        cudaStream_t s = nullptr;
        SP_CHECK(cudaStreamCreate(&s));
        return s;
    }();
    return stream;
}

namespace device_memory {

void* allocate(size_t bytes) {
    void* data = nullptr;
    cudaStream_t stream = device_stream();
    SP_CHECK(cudaMallocAsync(&data, bytes, stream));  // OutOfMemory when the pool cannot grow
    SP_CHECK(cudaMemsetAsync(data, 0, bytes, stream));
    return data;
}

void release(void* data) noexcept {
    // Never throw from here (buffers are released in destructors): a failure leaks at worst.
    if (data) (void)cudaFreeAsync(data, device_stream());
}

namespace {
// "device memory (cudaMallocAsync pool)", "pageable host memory", ...: what the driver knows of
// a pointer, for the message of a failed copy.
std::string pointer_kind(const void* p) {
    cudaPointerAttributes a{};
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        (void)cudaGetLastError();
        return "unknown to the driver";
    }
    switch (a.type) {
        case cudaMemoryTypeDevice: return "device memory of device " + std::to_string(a.device);
        case cudaMemoryTypeHost: return "pinned host memory";
        case cudaMemoryTypeManaged: return "managed memory";
        default: return "pageable host memory";
    }
}
}  // namespace

void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
    const cudaMemcpyKind kind = dst_device == Device::cpu   ? cudaMemcpyDeviceToHost
                                : src_device == Device::cpu ? cudaMemcpyHostToDevice
                                                            : cudaMemcpyDeviceToDevice;
    cudaStream_t stream = device_stream();
    const cudaError_t status = cudaMemcpyAsync(dst, src, bytes, kind, stream);
    if (status != cudaSuccess) {
        (void)cudaGetLastError();
        SP_REQUIRE(false, "CUDA error " << static_cast<int>(status) << " (" << cudaGetErrorString(status) << ") copying "
                                        << bytes << " bytes from " << src << " (" << pointer_kind(src) << ") to " << dst
                                        << " (" << pointer_kind(dst) << "); does the range lie inside its allocation?");
    }
    // The host reads what it asked for as soon as this returns. (From pageable host memory,
    // cudaMemcpyAsync has staged the source before returning, so uploads need no wait.)
    if (kind == cudaMemcpyDeviceToHost) SP_CHECK(cudaStreamSynchronize(stream));
}

void synchronize() { SP_CHECK(cudaStreamSynchronize(device_stream())); }

double timed_ms(const std::function<void()>& work) {
    cudaEvent_t begin = nullptr, end = nullptr;
    SP_CHECK(cudaEventCreate(&begin));
    float ms = 0;
    try {
        SP_CHECK(cudaEventCreate(&end));
        SP_CHECK(cudaEventRecord(begin, device_stream()));
        work();
        SP_CHECK(cudaEventRecord(end, device_stream()));
        SP_CHECK(cudaEventSynchronize(end));
        SP_CHECK(cudaEventElapsedTime(&ms, begin, end));
    } catch (...) {
        cudaEventDestroy(begin);
        if (end) cudaEventDestroy(end);
        throw;
    }
    cudaEventDestroy(begin);
    cudaEventDestroy(end);
    return ms;
}

UploadStaging::~UploadStaging() {
    // Statuses ignored: destructors must not throw.
    if (copied_) {
        cudaEventSynchronize(static_cast<cudaEvent_t>(copied_));
        cudaEventDestroy(static_cast<cudaEvent_t>(copied_));
    }
    if (host_) cudaFreeHost(host_);
}

void* UploadStaging::host(size_t bytes) {
    if (copied_) SP_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(copied_)));  // the last upload is done
    if (bytes > capacity_) {
        if (host_) SP_CHECK(cudaFreeHost(host_));
        host_ = nullptr;
        capacity_ = 0;
        SP_CHECK(cudaHostAlloc(&host_, bytes, cudaHostAllocDefault));
        capacity_ = bytes;
    }
    return host_;
}

void UploadStaging::upload(void* dst, size_t bytes) {
    SP_REQUIRE(bytes <= capacity_, "upload staging: " << bytes << " bytes asked, " << capacity_ << " staged");
    if (!copied_) {
        cudaEvent_t event = nullptr;
        SP_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
        copied_ = event;
    }
    cudaStream_t stream = device_stream();
    SP_CHECK(cudaMemcpyAsync(dst, host_, bytes, cudaMemcpyHostToDevice, stream));
    SP_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(copied_), stream));
}

}  // namespace device_memory
}  // namespace sp
