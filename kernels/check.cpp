// Status-to-message translation for the checking macros in check.h.
#include "kernels/check.h"

namespace sp {

bool debug_sync_enabled() {
#ifdef SP_DEBUG_SYNC
    return true;
#else
    return false;
#endif
}

namespace {

// `out_of_memory`: the status says an allocation failed (sp::OutOfMemory, which callers may
// answer by asking for less).
[[noreturn]] void fail_call(const char* library, const char* expr, const std::string& message,
                            long code, const char* file, int line, bool out_of_memory = false) {
    std::ostringstream out;
    out << library << " error " << code << " (" << message << ") in `" << expr << "`";
    if (out_of_memory) fail_out_of_memory(out.str(), file, line);
    fail(out.str(), file, line);
}

void maybe_sync(const char* expr, const char* file, int line) {
    if (!debug_sync_enabled()) return;
    cudaError_t status = cudaDeviceSynchronize();
    if (status != cudaSuccess)
        fail_call("CUDA (after synchronising)", expr, cudaGetErrorString(status), status, file, line);
}

const char* cublas_message(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
        case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
        case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
        case CUBLAS_STATUS_MAPPING_ERROR: return "mapping error";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
        case CUBLAS_STATUS_LICENSE_ERROR: return "license error";
        default: return "unknown cuBLAS status";
    }
}

const char* curand_message(curandStatus_t s) {
    switch (s) {
        case CURAND_STATUS_VERSION_MISMATCH: return "version mismatch";
        case CURAND_STATUS_NOT_INITIALIZED: return "not initialized";
        case CURAND_STATUS_ALLOCATION_FAILED: return "allocation failed";
        case CURAND_STATUS_TYPE_ERROR: return "type error";
        case CURAND_STATUS_OUT_OF_RANGE: return "out of range";
        case CURAND_STATUS_LENGTH_NOT_MULTIPLE: return "length not a multiple";
        case CURAND_STATUS_DOUBLE_PRECISION_REQUIRED: return "double precision required";
        case CURAND_STATUS_LAUNCH_FAILURE: return "launch failure";
        case CURAND_STATUS_PREEXISTING_FAILURE: return "pre-existing failure";
        case CURAND_STATUS_INITIALIZATION_FAILED: return "initialization failed";
        case CURAND_STATUS_ARCH_MISMATCH: return "architecture mismatch";
        case CURAND_STATUS_INTERNAL_ERROR: return "internal error";
        default: return "unknown cuRAND status";
    }
}

const char* cusolver_message(cusolverStatus_t s) {
    switch (s) {
        case CUSOLVER_STATUS_NOT_INITIALIZED: return "not initialized";
        case CUSOLVER_STATUS_ALLOC_FAILED: return "allocation failed";
        case CUSOLVER_STATUS_INVALID_VALUE: return "invalid value";
        case CUSOLVER_STATUS_ARCH_MISMATCH: return "architecture mismatch";
        case CUSOLVER_STATUS_EXECUTION_FAILED: return "execution failed";
        case CUSOLVER_STATUS_INTERNAL_ERROR: return "internal error";
        case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED: return "matrix type not supported";
        case CUSOLVER_STATUS_NOT_SUPPORTED: return "not supported";
        default: return "unknown cuSOLVER status";
    }
}

}  // namespace

void check_status(cudaError_t s, const char* expr, const char* file, int line) {
    if (s != cudaSuccess) {
        // A failed call also leaves its status as the runtime's last error, which the next
        // launch check would report against an innocent kernel: clear it (sticky errors stay).
        (void)cudaGetLastError();
        fail_call("CUDA", expr, cudaGetErrorString(s), s, file, line, s == cudaErrorMemoryAllocation);
    }
    maybe_sync(expr, file, line);
}
void check_status(cudnnStatus_t s, const char* expr, const char* file, int line) {
    if (s != CUDNN_STATUS_SUCCESS) {
        // cuDNN 9 keeps a detailed reason for the last failure beside the status' name.
        char detail[512] = {};
        cudnnGetLastErrorString(detail, sizeof detail);
        std::string message = cudnnGetErrorString(s);
        if (detail[0]) message += std::string("; ") + detail;
        fail_call("cuDNN", expr, message, s, file, line, is_allocation_failure(s));
    }
    maybe_sync(expr, file, line);
}
bool is_allocation_failure(cudnnStatus_t s) {
    return s == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED || s == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED;
}
void check_status(cublasStatus_t s, const char* expr, const char* file, int line) {
    if (s != CUBLAS_STATUS_SUCCESS)
        fail_call("cuBLAS", expr, cublas_message(s), s, file, line, s == CUBLAS_STATUS_ALLOC_FAILED);
    maybe_sync(expr, file, line);
}
void check_status(curandStatus_t s, const char* expr, const char* file, int line) {
    if (s != CURAND_STATUS_SUCCESS)
        fail_call("cuRAND", expr, curand_message(s), s, file, line, s == CURAND_STATUS_ALLOCATION_FAILED);
    maybe_sync(expr, file, line);
}
void check_status(cusolverStatus_t s, const char* expr, const char* file, int line) {
    if (s != CUSOLVER_STATUS_SUCCESS)
        fail_call("cuSOLVER", expr, cusolver_message(s), s, file, line, s == CUSOLVER_STATUS_ALLOC_FAILED);
    maybe_sync(expr, file, line);
}
void check_launch(const char* kernel, const char* file, int line) {
    check_status(cudaGetLastError(), kernel, file, line);
}

}  // namespace sp
