// The two implementations of the op list: sp::cpu (plain C++ reference, the oracle for the
// tests) and sp::cuda (cuDNN, cuBLAS and our kernels). Only nn/ops.cpp calls these: it has
// already validated every argument.
#pragma once

#include "nn/ops.h"

namespace sp::cpu {
#include "nn/op_list.inc"
}  // namespace sp::cpu

namespace sp::cuda {
#include "nn/op_list.inc"
}  // namespace sp::cuda
