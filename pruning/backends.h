// The two implementations of the pruning kernel list: sp::cpu (plain C++ reference,
// pruning/cpu/) and sp::cuda (the launchers of kernels/evolution.cu and kernels/gibbs.cu,
// pruning/cuda/). Only pruning/ops.cpp calls these: it has already validated every argument.
#pragma once

#include "pruning/ops.h"

namespace sp::cpu {
#include "pruning/kernel_list.inc"
}  // namespace sp::cpu

namespace sp::cuda {
#include "pruning/kernel_list.inc"
}  // namespace sp::cuda
