// One checking mechanism for every status type the project touches (CUDA, cuDNN, cuBLAS,
// cuRAND, cuSOLVER): each failure throws sp::Error naming the expression, file, line and the
// library's own message (sp::OutOfMemory for a failed allocation). Preconditions: error.h.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <curand.h>
#include <cusolver_common.h>

#include "kernels/error.h"

namespace sp {

// True when built with DEBUG=1: every check then also synchronises the device so an
// asynchronous error is reported at the call that caused it.
bool debug_sync_enabled();

void check_status(cudaError_t status, const char* expr, const char* file, int line);
void check_status(cudnnStatus_t status, const char* expr, const char* file, int line);
void check_status(cublasStatus_t status, const char* expr, const char* file, int line);
void check_status(curandStatus_t status, const char* expr, const char* file, int line);
void check_status(cusolverStatus_t status, const char* expr, const char* file, int line);
void check_launch(const char* kernel, const char* file, int line);
// cuDNN's statuses for a failed host or device allocation (check_status throws OutOfMemory).
bool is_allocation_failure(cudnnStatus_t status);

}  // namespace sp

#define SP_CHECK(expr) ::sp::check_status((expr), #expr, __FILE__, __LINE__)
// After every kernel launch: reports launch-configuration errors (and, in DEBUG, faults).
#define SP_CHECK_LAUNCH(kernel_name) ::sp::check_launch(kernel_name, __FILE__, __LINE__)
