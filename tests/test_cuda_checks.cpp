// The checked CUDA library calls (kernels/check.h): messages and the OutOfMemory type. Host-only
// (no GPU needed), but built only with the CUDA backend (make CUDA=0 leaves it out).
#include <doctest/doctest.h>

#include <string>

#include "kernels/check.h"

using namespace sp;

TEST_CASE("checked calls name the library, the expression and its message") {
    try {
        SP_CHECK(CUBLAS_STATUS_INVALID_VALUE);
        FAIL("no throw");
    } catch (const Error& e) {
        std::string what = e.what();
        CHECK(what.find("cuBLAS") != std::string::npos);
        CHECK(what.find("invalid value") != std::string::npos);
        CHECK(what.find("CUBLAS_STATUS_INVALID_VALUE") != std::string::npos);
        CHECK(what.find("test_cuda_checks.cpp") != std::string::npos);
    }
    CHECK_THROWS_WITH_AS(SP_CHECK(CUDNN_STATUS_BAD_PARAM), doctest::Contains("cuDNN"), Error);
    CHECK_THROWS_WITH_AS(SP_CHECK(CURAND_STATUS_OUT_OF_RANGE), doctest::Contains("out of range"), Error);
    CHECK_THROWS_WITH_AS(SP_CHECK(CUSOLVER_STATUS_NOT_SUPPORTED), doctest::Contains("cuSOLVER"), Error);
    CHECK_THROWS_WITH_AS(SP_CHECK(cudaErrorInvalidValue), doctest::Contains("CUDA error"), Error);
    CHECK_NOTHROW(SP_CHECK(cudaSuccess));
}

TEST_CASE("out of memory is its own error type: every library's failed allocation") {
    // Allocation failures of every library are OutOfMemory (callers can ask for less), other
    // failures are not.
    CHECK_THROWS_AS(SP_CHECK(cudaErrorMemoryAllocation), OutOfMemory);
    CHECK_THROWS_AS(SP_CHECK(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED), OutOfMemory);
    CHECK_THROWS_AS(SP_CHECK(CUBLAS_STATUS_ALLOC_FAILED), OutOfMemory);
    CHECK_THROWS_AS(SP_CHECK(CURAND_STATUS_ALLOCATION_FAILED), OutOfMemory);
    CHECK_THROWS_AS(SP_CHECK(CUSOLVER_STATUS_ALLOC_FAILED), OutOfMemory);
    auto is_out_of_memory = [](auto&& f) {
        try {
            f();
        } catch (const OutOfMemory&) {
            return true;
        } catch (const Error&) {
        }
        return false;
    };
    CHECK_FALSE(is_out_of_memory([] { SP_CHECK(cudaErrorInvalidValue); }));
    CHECK_FALSE(is_out_of_memory([] { SP_CHECK(CUDNN_STATUS_BAD_PARAM); }));
}
