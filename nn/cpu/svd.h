// Singular values by one-sided (Hestenes) Jacobi in double: the CPU reference behind the
// nuclear-norm and rank scores of feature maps (pruning/feature_scores.h).
#pragma once

#include <cstdint>

namespace sp::cpu {

// sigma (min(rows, cols)) receives the singular values of the row-major rows×cols matrix `a`,
// in descending order. Returns the number of Jacobi sweeps used (the last one rotates nothing);
// throws an sp::Error if the iteration has not converged after kMaxJacobiSweeps.
constexpr int kMaxJacobiSweeps = 100;
int singular_values(const double* a, int64_t rows, int64_t cols, double* sigma);

// sp::cpu::map_singular_values (nn/op_list.inc) runs this over every map; maps are independent,
// so they are spread over OpenMP threads.

}  // namespace sp::cpu
