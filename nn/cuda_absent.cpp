// The CUDA side that host code calls, in a build without CUDA (make CUDA=0): every entry is an
// error naming what needed CUDA. Nothing here runs in practice — no CUDA context can be made
// (nn/context.cpp) and cuda_status() says why (nn/device.cpp) — but the program links with g++
// alone. Compiled only where nn/cuda/, pruning/cuda/ and kernels/*.cu are not.
#include "kernels/augment.h"
#include "kernels/error.h"
#include "kernels/kernels.h"
#include "nn/cuda/stream.h"
#include "nn/device_memory.h"

namespace sp {

namespace {
[[noreturn]] void no_cuda(const char* what) {
    fail(std::string(what) + ": this spinprune was built without CUDA (make CUDA=0); use --device cpu or a CUDA build",
         __FILE__, __LINE__);
}
}  // namespace

cudaStream_t device_stream() { no_cuda("the device stream"); }

namespace device_memory {
void* allocate(size_t) { no_cuda("device memory"); }
void release(void*) noexcept {}
void copy(void*, Device, const void*, Device, size_t) { no_cuda("a copy to or from device memory"); }
void synchronize() { no_cuda("device synchronisation"); }
double timed_ms(const std::function<void()>&) { no_cuda("device timing"); }
UploadStaging::~UploadStaging() = default;
void* UploadStaging::host(size_t) { no_cuda("pinned upload staging"); }
void UploadStaging::upload(void*, size_t) { no_cuda("an upload to device memory"); }
}  // namespace device_memory

namespace kernels {
void fill(float*, size_t, float, cudaStream_t) { no_cuda("filling a device tensor"); }
void augment_batch(const float*, float*, int64_t, int64_t, int64_t, int64_t, int64_t, bool, uint64_t, const float*, const float*,
                   cudaStream_t) {
    no_cuda("augmenting a batch on the device");
}
}  // namespace kernels

}  // namespace sp
