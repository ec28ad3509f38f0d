// Device detection and the --device choice.
#include "nn/device.h"

#include <fstream>

#if SP_WITH_CUDA
#include "kernels/check.h"
#else
#include "kernels/error.h"
#endif

namespace sp {

const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

std::string cpu_name() {
    std::ifstream in("/proc/cpuinfo");
    std::string line, model;
    int cores = 0;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0 && model.empty()) model = line.substr(line.find(':') + 2);
        if (line.rfind("processor", 0) == 0) ++cores;
    }
    return model.empty() ? "host CPU" : model + " (" + std::to_string(cores) + " cores)";
}

#if SP_WITH_CUDA
namespace {
std::string runtime_error_text(const char* call, cudaError_t e) {
    return std::string(call) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}
}  // namespace

const CudaStatus& cuda_status() {
    static const CudaStatus status = [] {
        CudaStatus s;
        int count = 0;
        cudaError_t e = cudaGetDeviceCount(&count);
        if (e != cudaSuccess) {
            s.reason = runtime_error_text("cudaGetDeviceCount", e);
            (void)cudaGetLastError();  // a failed start-up leaves its status behind; later checks start clean
            return s;
        }
        if (count == 0) {
            s.reason = "the CUDA runtime sees no GPU";
            return s;
        }
        // Creating the primary context is where a driver/runtime mismatch or an unusable
        // device shows; a GPU that fails here is reported, not silently treated as absent.
        e = cudaFree(nullptr);
        if (e != cudaSuccess) {
            s.reason = runtime_error_text("creating a CUDA context (cudaFree(0))", e);
            (void)cudaGetLastError();
            return s;
        }
        s.usable = true;
        return s;
    }();
    return status;
}

std::string cuda_device_name() {
    if (!cuda_available()) return "";
    cudaDeviceProp prop{};
    SP_CHECK(cudaGetDeviceProperties(&prop, 0));
    return prop.name;
}

int cuda_runtime_version() {
    int version = 0;
    cudaRuntimeGetVersion(&version);  // works without a GPU
    return version;
}

int cudnn_version() { return static_cast<int>(cudnnGetVersion()); }
#else
const CudaStatus& cuda_status() {
    static const CudaStatus status{false, "this spinprune was built without CUDA (make CUDA=0)"};
    return status;
}

std::string cuda_device_name() { return ""; }
int cuda_runtime_version() { return 0; }
int cudnn_version() { return 0; }
#endif

Device resolve_device(const std::string& choice, std::string* explanation) {
    auto explain = [&](const std::string& s) { if (explanation) *explanation = s; };
    if (choice == "cpu") {
        explain("device: cpu (as asked)");
        return Device::cpu;
    }
    if (choice == "cuda") {
        SP_REQUIRE(cuda_available(), "--device cuda: no usable CUDA GPU found: " << cuda_status().reason
                                                                                 << " (use --device cpu or auto)");
        explain("device: cuda, " + cuda_device_name() + " (as asked)");
        return Device::cuda;
    }
    SP_REQUIRE(choice == "auto", "--device: expected auto, cpu or cuda, got '" << choice << "'");
    if (cuda_available()) {
        explain("device: cuda, " + cuda_device_name() + " (auto: a usable GPU was found)");
        return Device::cuda;
    }
    explain("device: cpu (auto: no usable CUDA GPU found: " + cuda_status().reason + ")");
    return Device::cpu;
}

}  // namespace sp
