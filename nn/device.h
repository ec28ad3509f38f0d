// Devices a tensor can live on, whether the CUDA runtime can start (and why not), and the
// --device auto|cpu|cuda choice, and the dispatch of an op to the backend of its device.
#pragma once

#include <string>

namespace sp {

enum class Device { cpu, cuda };

const char* device_name(Device d);

// Whether the CUDA runtime sees a GPU and can create a context on it, found once per process.
// `reason` holds the runtime's own error when it cannot (e.g. "cudaGetDeviceCount:
// cudaErrorInsufficientDriver (CUDA driver version is insufficient for CUDA runtime version)").
struct CudaStatus {
    bool usable = false;
    std::string reason;
};
const CudaStatus& cuda_status();
inline bool cuda_available() { return cuda_status().usable; }
// Name of GPU 0 as the driver reports it ("" without a GPU).
std::string cuda_device_name();
// "<model name> (<n> cores)" from /proc/cpuinfo, or "host CPU".
std::string cpu_name();
// The CUDA runtime and cuDNN versions this program runs with (no GPU needed; 0 in a build
// without CUDA), as the libraries report them (e.g. 13000, 91900).
int cuda_runtime_version();
int cudnn_version();

// Resolves "auto", "cpu" or "cuda". "auto" takes the GPU when one is usable; `explanation`
// receives one line saying what was picked and why. "cuda" without a GPU is an error that
// carries the runtime's reason.
Device resolve_device(const std::string& choice, std::string* explanation = nullptr);

}  // namespace sp

// Runs `op` of the backend of ctx.device(): sp::cpu or sp::cuda (nn/backends.h,
// pruning/backends.h), after the caller validated the arguments. A build without CUDA has no
// sp::cuda, and no CUDA context to ask for it.
#if SP_WITH_CUDA
#define SP_DISPATCH(op, ...) (ctx.device() == ::sp::Device::cpu ? cpu::op(__VA_ARGS__) : cuda::op(__VA_ARGS__))
#else
#define SP_DISPATCH(op, ...) cpu::op(__VA_ARGS__)
#endif
