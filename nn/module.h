// The layer interface. A module owns its outputs and input gradients (allocated on first use,
// re-allocated when the batch shape changes) and keeps what its backward needs. Parameters
// live in one flat buffer owned by a ParameterStore (nn/parameters.h); modules hold views.
//
//   Tensor& y  = layer.forward(ctx, x);    // y stays valid until the next forward
//   Tensor& dx = layer.backward(ctx, dy);  // after forward on the same x; writes (overwrites)
//                                          // this module's parameter gradients
//
// Modules with several inputs (residual add, channel concatenation) have their own
// forward/backward signatures and are composed by the model code.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/context.h"
#include "nn/ops.h"
#include "nn/tensor.h"

namespace sp {

class ParameterStore;

class Module {
public:
    virtual ~Module() = default;
    virtual std::string name() const = 0;
    virtual Shape output_shape(const Shape& input) const = 0;
    virtual Tensor& forward(Context& ctx, const Tensor& x) = 0;
    virtual Tensor& backward(Context& ctx, const Tensor& dy) = 0;
    // Training mode: batch statistics in BN, dropout active.
    virtual void set_training(bool training) { training_ = training; }
    bool training() const { return training_; }
    // Multiply-accumulates per image for this input shape (0 for modules without any).
    virtual int64_t macs(const Shape& input) const { return 0; }
    // The output of the last forward (valid until the next one), for modules that keep it —
    // conv, linear and batch norm do; scoring methods read feature maps through it.
    virtual const Tensor* last_output() const { return nullptr; }

protected:
    bool training_ = true;
};

// Makes `t` an owning tensor of `shape` on `device` unless it already is one.
void ensure_shape(Tensor& t, const Shape& shape, Device device);

}  // namespace sp
