// CPU sgemm: OpenBLAS when available (SP_USE_CBLAS), and a cache-blocked OpenMP fallback.
#include "nn/cpu/gemm.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <vector>

#include "kernels/error.h"

#if defined(SP_USE_CBLAS)
#include <cblas.h>
#endif

namespace sp::cpu {

namespace {

// Block sizes: a KC x NC panel of B (64 KiB of floats) stays in L2 while MC rows of C stream.
constexpr int64_t kMc = 64, kKc = 128, kNc = 128;

}  // namespace

void sgemm_fallback(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                    int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    // C = beta C first; beta == 0 writes zeros so stale NaNs cannot survive (BLAS semantics).
#pragma omp parallel for schedule(static) if (m * n > 32768)
    for (int64_t i = 0; i < m; ++i) {
        float* row = c + i * ldc;
        if (beta == 0.0f) std::fill(row, row + n, 0.0f);
        else if (beta != 1.0f) for (int64_t j = 0; j < n; ++j) row[j] *= beta;
    }
    if (k <= 0 || alpha == 0.0f) return;

    std::vector<float> panel(static_cast<size_t>(kKc * kNc));  // (kc, nc) packed row-major
    for (int64_t j0 = 0; j0 < n; j0 += kNc) {
        const int64_t nc = std::min(kNc, n - j0);
        for (int64_t p0 = 0; p0 < k; p0 += kKc) {
            const int64_t kc = std::min(kKc, k - p0);
            // Pack op(B)[p0:p0+kc, j0:j0+nc] contiguously, whatever B's layout.
            for (int64_t p = 0; p < kc; ++p)
                for (int64_t j = 0; j < nc; ++j)
                    panel[static_cast<size_t>(p * nc + j)] =
                        trans_b ? b[(j0 + j) * ldb + (p0 + p)] : b[(p0 + p) * ldb + (j0 + j)];
            const float* bp = panel.data();
#pragma omp parallel for schedule(static) if (m * nc * kc > 65536)
            for (int64_t i0 = 0; i0 < m; i0 += kMc) {
                const int64_t mc = std::min(kMc, m - i0);
                for (int64_t i = i0; i < i0 + mc; ++i) {
                    float* crow = c + i * ldc + j0;
                    for (int64_t p = 0; p < kc; ++p) {
                        const float aip = alpha * (trans_a ? a[(p0 + p) * lda + i] : a[i * lda + (p0 + p)]);
                        const float* brow = bp + p * nc;
                        for (int64_t j = 0; j < nc; ++j) crow[j] += aip * brow[j];
                    }
                }
            }
        }
    }
}

bool sgemm_uses_blas() {
#if defined(SP_USE_CBLAS)
    return true;
#else
    return false;
#endif
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
#if defined(SP_USE_CBLAS)
    // cblas takes (32-bit) ints; bigger problems take the 64-bit fallback.
    const int64_t limit = INT_MAX;
    if (m <= limit && n <= limit && k <= limit && lda <= limit && ldb <= limit && ldc <= limit) {
        if (m <= 0 || n <= 0) return;
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                    static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
                    static_cast<int>(std::max<int64_t>(lda, 1)), b, static_cast<int>(std::max<int64_t>(ldb, 1)),
                    beta, c, static_cast<int>(std::max<int64_t>(ldc, 1)));
        return;
    }
#endif
    sgemm_fallback(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void configure_cpu_blas(char** argv) {
#if defined(SP_USE_CBLAS) && defined(__x86_64__)
    if (std::getenv("OPENBLAS_CORETYPE") == nullptr) {
        const char* core = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                           : __builtin_cpu_supports("avx2") ? "Haswell"
                                                            : nullptr;
        if (core) {
            setenv("OPENBLAS_CORETYPE", core, 1);
            if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) setenv("OPENBLAS_NUM_THREADS", "1", 1);
            ::execv("/proc/self/exe", argv);  // returns only on failure: then go on as we are
        }
    }
    openblas_set_num_threads(1);
#endif
}

}  // namespace sp::cpu
