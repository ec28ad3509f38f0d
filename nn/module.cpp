// Shared helpers of the module interface.
#include "nn/module.h"

namespace sp {

void ensure_shape(Tensor& t, const Shape& shape, Device device) {
    // A view (or a tensor elsewhere, or of another shape) is replaced by a fresh owning tensor.
    if (t.owns_memory() && t.shape() == shape && t.device() == device) return;
    t = Tensor(shape, device);
}

}  // namespace sp
