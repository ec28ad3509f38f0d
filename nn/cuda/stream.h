// The one CUDA stream all device work of the process is queued on (see nn/device_memory.h).
#pragma once

#include "kernels/cuda_types.h"

namespace sp {

// Created on first use, with the device's default memory pool set to keep freed memory cached.
// A blocking stream, so a stray call on the legacy default stream still waits for it.
cudaStream_t device_stream();

}  // namespace sp
