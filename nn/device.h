// Devices a tensor can live on, whether the CUDA runtime can start (and why not), and the
// --device auto|cpu|cuda choice.
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

// Resolves "auto", "cpu" or "cuda". "auto" takes the GPU when one is usable; `explanation`
// receives one line saying what was picked and why. "cuda" without a GPU is an error that
// carries the runtime's reason.
Device resolve_device(const std::string& choice, std::string* explanation = nullptr);

}  // namespace sp
