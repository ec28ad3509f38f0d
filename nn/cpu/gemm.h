// Row-major single-precision GEMM for the CPU backend: C = alpha op(A) op(B) + beta C.
// sgemm() uses cblas_sgemm when built with SP_USE_CBLAS, else the cache-blocked loop
// sgemm_fallback(), which is always compiled (and tested against the BLAS one).
#pragma once

#include <cstdint>

namespace sp::cpu {

// op(A) is (M, K), op(B) is (K, N), C is (M, N); lda/ldb/ldc are the row strides of the stored
// (untransposed) matrices. beta == 0 overwrites C without reading it (NaNs in C do not leak).
// Both versions parallelise internally: do not call them from inside an OpenMP parallel region.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

void sgemm_fallback(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                    int64_t ldc);

// True when sgemm() goes to a BLAS library.
bool sgemm_uses_blas();

// Call first thing in main(). OpenBLAS chooses its kernels once, when it is loaded, from the
// CPU model; a model it does not recognise (virtual machines report a generic "Intel Xeon
// Processor") gets its SSE3 kernels, 2-3x slower. When OPENBLAS_CORETYPE is unset this sets
// it from the CPU's features and re-executes the program (OpenBLAS reads it only at load).
// It also keeps OpenBLAS single-threaded: our CPU loops are parallel with OpenMP, and two
// thread pools on the same cores spin against each other (measured: 1.5x slower).
void configure_cpu_blas(char** argv);

}  // namespace sp::cpu
