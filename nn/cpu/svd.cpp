// One-sided Jacobi SVD (values only) in double, and its batched use on feature maps.
#include "nn/cpu/svd.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <vector>

#include "kernels/error.h"
#include "nn/backends.h"

namespace sp::cpu {

int singular_values(const double* a, int64_t rows, int64_t cols, double* sigma) {
    // Work on the orientation with fewer columns: n columns of length m (m >= n); A and Aᵀ
    // have the same singular values.
    const int64_t m = std::max(rows, cols), n = std::min(rows, cols);
    if (n == 0) return 0;
    std::vector<double> c(static_cast<size_t>(m * n));  // column j at [j·m, (j+1)·m)
    for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < m; ++i)
            c[static_cast<size_t>(j * m + i)] = cols <= rows ? a[i * cols + j] : a[j * cols + i];

    // Columns p, q count as orthogonal when |cp·cq| <= tol·|cp||cq|: below m·eps the dot
    // product itself is not resolved any better.
    const double tol = static_cast<double>(m) * DBL_EPSILON;
    // A column whose norm is below m·eps·‖A‖_F is rounding noise (a rank-deficient matrix leaves
    // such columns behind): its direction is arbitrary, so rotating against it never converges.
    // Leaving it alone perturbs the singular values by at most its norm (Weyl).
    double fro2 = 0.0;
    for (double v : c) fro2 += v * v;
    const double negligible = tol * tol * fro2;  // on squared column norms
    int sweep = 0;
    bool rotated = true;
    while (rotated) {
        SP_REQUIRE(sweep < kMaxJacobiSweeps,
                   "singular_values: Jacobi did not converge in " << kMaxJacobiSweeps << " sweeps (" << rows
                                                                   << "x" << cols << ")");
        ++sweep;
        rotated = false;
        for (int64_t p = 0; p + 1 < n; ++p) {
            double* cp = c.data() + p * m;
            for (int64_t q = p + 1; q < n; ++q) {
                double* cq = c.data() + q * m;
                double alpha = 0.0, beta = 0.0, gamma = 0.0;
                for (int64_t i = 0; i < m; ++i) {
                    alpha += cp[i] * cp[i];
                    beta += cq[i] * cq[i];
                    gamma += cp[i] * cq[i];
                }
                if (gamma == 0.0 || std::fabs(gamma) <= tol * std::sqrt(alpha * beta)) continue;
                if (alpha <= negligible || beta <= negligible) continue;
                rotated = true;
                // The rotation that zeroes the (p, q) entry of the Gram matrix; hypot keeps
                // zeta² from overflowing when gamma is tiny.
                const double zeta = (beta - alpha) / (2.0 * gamma);
                const double t = std::copysign(1.0, zeta) / (std::fabs(zeta) + std::hypot(1.0, zeta));
                const double cs = 1.0 / std::hypot(1.0, t), sn = cs * t;
                for (int64_t i = 0; i < m; ++i) {
                    const double x = cp[i], y = cq[i];
                    cp[i] = cs * x - sn * y;
                    cq[i] = sn * x + cs * y;
                }
            }
        }
    }
    for (int64_t j = 0; j < n; ++j) {
        const double* cj = c.data() + j * m;
        double s = 0.0;
        for (int64_t i = 0; i < m; ++i) s += cj[i] * cj[i];
        sigma[j] = std::sqrt(s);
    }
    std::sort(sigma, sigma + n, std::greater<double>());
    return sweep;
}

void map_singular_values(Context& ctx, const Tensor& maps, bool relu, Tensor& sigma) {
    const int64_t h = maps.dim(2), w = maps.dim(3), k = std::min(h, w);
    const int64_t count = maps.dim(0) * maps.dim(1);
    const float* x = maps.data();
    float* s = sigma.data();
    // Any thread may throw (non-convergence): remember the first failure, rethrow after.
    std::string failure;
#pragma omp parallel
    {
        std::vector<double> a(static_cast<size_t>(h * w)), values(static_cast<size_t>(k));
#pragma omp for schedule(dynamic, 4)
        for (int64_t map = 0; map < count; ++map) {
            const float* src = x + map * h * w;
            for (int64_t i = 0; i < h * w; ++i) {
                const double v = src[i];
                a[static_cast<size_t>(i)] = relu && v < 0.0 ? 0.0 : v;
            }
            try {
                singular_values(a.data(), h, w, values.data());
            } catch (const std::exception& e) {
#pragma omp critical(sp_svd_failure)
                if (failure.empty()) failure = e.what();
                std::fill(values.begin(), values.end(), 0.0);
            }
            for (int64_t j = 0; j < k; ++j) s[map * k + j] = static_cast<float>(values[static_cast<size_t>(j)]);
        }
    }
    if (!failure.empty()) throw Error(failure);
}

}  // namespace sp::cpu
