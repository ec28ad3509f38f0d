// Devices a tensor can live on, and the --device auto|cpu|cuda choice.
#pragma once

#include <string>

namespace sp {

enum class Device { cpu, cuda };

const char* device_name(Device d);

// True when the CUDA runtime sees at least one usable GPU (cached after the first call).
bool cuda_available();
// Name of GPU 0 as the driver reports it ("" without a GPU).
std::string cuda_device_name();

// Resolves "auto", "cpu" or "cuda". "auto" takes the GPU when one is usable; `explanation`
// receives one line saying what was picked and why. "cuda" without a GPU is an error.
Device resolve_device(const std::string& choice, std::string* explanation = nullptr);

}  // namespace sp
