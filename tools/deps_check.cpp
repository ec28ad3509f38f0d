// Links every native library the build uses and prints each one's version and the file it was
// loaded from (`make print-deps`): proof that the found libraries link and load, and the device
// facts the GPU check starts with. Runs without a GPU (the driver's version is then 0).
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <curand.h>
#include <cusolverDn.h>
#include <dlfcn.h>
#include <zlib.h>

#include <cstdio>

namespace {

// The shared object that holds `symbol`, as the dynamic loader resolved it.
const char* file_of(const void* symbol) {
    Dl_info info{};
    return dladdr(symbol, &info) && info.dli_fname ? info.dli_fname : "?";
}

}  // namespace

int main() {
    int runtime = 0, driver = 0, blas_major = 0, blas_minor = 0, solver_major = 0, solver_minor = 0, rand = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);  // 0 without a driver
    cublasGetProperty(MAJOR_VERSION, &blas_major);
    cublasGetProperty(MINOR_VERSION, &blas_minor);
    cusolverGetProperty(MAJOR_VERSION, &solver_major);
    cusolverGetProperty(MINOR_VERSION, &solver_minor);
    curandGetVersion(&rand);
    std::printf("cuda runtime   %d (driver supports %d)   %s\n", runtime, driver,
                file_of(reinterpret_cast<const void*>(&cudaRuntimeGetVersion)));
    std::printf("cudnn          %zu (built against %d)   %s\n", cudnnGetVersion(), CUDNN_VERSION,
                file_of(reinterpret_cast<const void*>(&cudnnGetVersion)));
    std::printf("cublas         %d.%d   %s\n", blas_major, blas_minor,
                file_of(reinterpret_cast<const void*>(&cublasGetProperty)));
    std::printf("curand         %d   %s\n", rand, file_of(reinterpret_cast<const void*>(&curandGetVersion)));
    std::printf("cusolver       %d.%d   %s\n", solver_major, solver_minor,
                file_of(reinterpret_cast<const void*>(&cusolverGetProperty)));
    std::printf("zlib           %s   %s\n", zlibVersion(), file_of(reinterpret_cast<const void*>(&zlibVersion)));
    return 0;
}
