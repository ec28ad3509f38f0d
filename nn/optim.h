// Optimizers over the ParameterStore's flat buffers: one fused update op per step (SGD with
// momentum/Nesterov, Adam, Adadelta; PyTorch's rules and defaults, L2 weight decay added to the
// gradient). Each keeps its state tensors on the store's device, allocated on the first step,
// and exposes them with the step counter for checkpoints.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/context.h"
#include "nn/ops.h"
#include "nn/parameters.h"

namespace sp {

class Optimizer {
public:
    virtual ~Optimizer() = default;
    virtual std::string name() const = 0;
    // One update of every parameter from the store's gradients with learning rate `lr`.
    void step(Context& ctx, ParameterStore& store, float lr);
    // Allocates (zeroed) state for `store` unless it already matches; step() calls it, a
    // checkpoint loader calls it before copying saved state in.
    void ensure_state(const ParameterStore& store);
    // Named state tensors ("momentum_buffer", "exp_avg", ...), each (parameter_floats).
    virtual std::vector<std::pair<std::string, Tensor*>> state() = 0;
    int64_t steps() const { return steps_; }  // completed steps
    void set_steps(int64_t steps) { steps_ = steps; }

protected:
    virtual std::vector<Tensor*> state_tensors() = 0;
    virtual void update(Context& ctx, ParameterStore& store, float lr) = 0;
    int64_t steps_ = 0;
};

class Sgd : public Optimizer {
public:
    explicit Sgd(const SgdHyper& hyper = {});
    std::string name() const override { return "sgd"; }
    std::vector<std::pair<std::string, Tensor*>> state() override { return {{"momentum_buffer", &velocity_}}; }
    const SgdHyper& hyper() const { return hyper_; }

protected:
    std::vector<Tensor*> state_tensors() override { return {&velocity_}; }
    void update(Context& ctx, ParameterStore& store, float lr) override;

private:
    SgdHyper hyper_;
    Tensor velocity_;
};

class Adam : public Optimizer {
public:
    explicit Adam(const AdamHyper& hyper = {});
    std::string name() const override { return "adam"; }
    std::vector<std::pair<std::string, Tensor*>> state() override {
        return {{"exp_avg", &exp_avg_}, {"exp_avg_sq", &exp_avg_sq_}};
    }
    const AdamHyper& hyper() const { return hyper_; }

protected:
    std::vector<Tensor*> state_tensors() override { return {&exp_avg_, &exp_avg_sq_}; }
    void update(Context& ctx, ParameterStore& store, float lr) override;

private:
    AdamHyper hyper_;
    Tensor exp_avg_, exp_avg_sq_;
};

class Adadelta : public Optimizer {
public:
    explicit Adadelta(const AdadeltaHyper& hyper = {});
    std::string name() const override { return "adadelta"; }
    std::vector<std::pair<std::string, Tensor*>> state() override {
        return {{"square_avg", &square_avg_}, {"acc_delta", &acc_delta_}};
    }
    const AdadeltaHyper& hyper() const { return hyper_; }

protected:
    std::vector<Tensor*> state_tensors() override { return {&square_avg_, &acc_delta_}; }
    void update(Context& ctx, ParameterStore& store, float lr) override;

private:
    AdadeltaHyper hyper_;
    Tensor square_avg_, acc_delta_;
};

// Hyper-parameters of every optimizer (PyTorch's defaults); the name picks which one is used.
// The `lr` fields are ignored: the rate comes from the schedule through step().
struct OptimizerHyper {
    SgdHyper sgd;
    AdamHyper adam;
    AdadeltaHyper adadelta;
};

// "sgd", "adam" or "adadelta"; anything else is an sp::Error listing those.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, const OptimizerHyper& hyper = {});

}  // namespace sp
