// Device detection and the --device choice.
#include "nn/device.h"

#include "kernels/check.h"

namespace sp {

const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

bool cuda_available() {
    static const bool available = [] {
        int count = 0;
        // Without a driver or a GPU this returns an error status: that means "no GPU", not a failure.
        if (cudaGetDeviceCount(&count) != cudaSuccess) {
            cudaGetLastError();  // clear the sticky-free error so later checks start clean
            return false;
        }
        return count > 0;
    }();
    return available;
}

std::string cuda_device_name() {
    if (!cuda_available()) return "";
    cudaDeviceProp prop{};
    SP_CHECK(cudaGetDeviceProperties(&prop, 0));
    return prop.name;
}

Device resolve_device(const std::string& choice, std::string* explanation) {
    auto explain = [&](const std::string& s) { if (explanation) *explanation = s; };
    if (choice == "cpu") {
        explain("device: cpu (as asked)");
        return Device::cpu;
    }
    if (choice == "cuda") {
        SP_REQUIRE(cuda_available(), "--device cuda: no usable CUDA GPU found (use --device cpu or auto)");
        explain("device: cuda, " + cuda_device_name() + " (as asked)");
        return Device::cuda;
    }
    SP_REQUIRE(choice == "auto", "--device: expected auto, cpu or cuda, got '" << choice << "'");
    if (cuda_available()) {
        explain("device: cuda, " + cuda_device_name() + " (auto: a usable GPU was found)");
        return Device::cuda;
    }
    explain("device: cpu (auto: no usable CUDA GPU found)");
    return Device::cpu;
}

}  // namespace sp
