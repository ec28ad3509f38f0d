// Optimizer steps over the flat parameter buffers (see nn/optim.h).
#include "nn/optim.h"

#include "kernels/error.h"

namespace sp {

void Optimizer::ensure_state(const ParameterStore& store) {
    const Shape shape{store.parameter_floats()};
    for (Tensor* t : state_tensors())
        if (!(t->owns_memory() && t->shape() == shape && t->device() == store.device())) *t = Tensor(shape, store.device());
}

void Optimizer::step(Context& ctx, ParameterStore& store, float lr) {
    SP_REQUIRE(store.allocated(), name() << ": step on a parameter store that is not allocated");
    SP_REQUIRE(store.device() == ctx.device(), name() << ": parameters are on " << device_name(store.device())
                                                      << " but the context is " << device_name(ctx.device()));
    SP_REQUIRE(lr >= 0.0f, name() << ": learning rate must be non-negative, got " << lr);
    if (store.parameter_count() == 0) return;
    ensure_state(store);
    update(ctx, store, lr);
    ++steps_;
}

Sgd::Sgd(const SgdHyper& hyper) : hyper_(hyper) {
    SP_REQUIRE(hyper.momentum >= 0.0f && hyper.weight_decay >= 0.0f,
               "sgd: momentum and weight decay must be non-negative");
    SP_REQUIRE(!hyper.nesterov || hyper.momentum > 0.0f, "sgd: Nesterov momentum needs momentum > 0");
}

void Sgd::update(Context& ctx, ParameterStore& store, float lr) {
    SgdHyper h = hyper_;
    h.lr = lr;
    h.first_step = steps_ == 0;  // the velocity starts at the first gradient
    sgd_update(ctx, store.values(), store.grads(), velocity_, h);
}

Adam::Adam(const AdamHyper& hyper) : hyper_(hyper) {
    SP_REQUIRE(hyper.beta1 >= 0.0f && hyper.beta1 < 1.0f && hyper.beta2 >= 0.0f && hyper.beta2 < 1.0f,
               "adam: betas must be in [0, 1), got " << hyper.beta1 << ", " << hyper.beta2);
    SP_REQUIRE(hyper.eps > 0.0f && hyper.weight_decay >= 0.0f, "adam: eps must be positive, weight decay non-negative");
}

void Adam::update(Context& ctx, ParameterStore& store, float lr) {
    AdamHyper h = hyper_;
    h.lr = lr;
    adam_update(ctx, store.values(), store.grads(), exp_avg_, exp_avg_sq_, h, steps_ + 1);  // bias correction counts from 1
}

Adadelta::Adadelta(const AdadeltaHyper& hyper) : hyper_(hyper) {
    SP_REQUIRE(hyper.rho >= 0.0f && hyper.rho <= 1.0f, "adadelta: rho must be in [0, 1], got " << hyper.rho);
    SP_REQUIRE(hyper.eps > 0.0f && hyper.weight_decay >= 0.0f,
               "adadelta: eps must be positive, weight decay non-negative");
}

void Adadelta::update(Context& ctx, ParameterStore& store, float lr) {
    AdadeltaHyper h = hyper_;
    h.lr = lr;
    adadelta_update(ctx, store.values(), store.grads(), square_avg_, acc_delta_, h);
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, const OptimizerHyper& hyper) {
    if (name == "sgd") return std::make_unique<Sgd>(hyper.sgd);
    if (name == "adam") return std::make_unique<Adam>(hyper.adam);
    if (name == "adadelta") return std::make_unique<Adadelta>(hyper.adadelta);
    SP_REQUIRE(false, "optimizer: unknown name '" << name << "' (expected sgd, adam or adadelta)");
    return nullptr;
}

}  // namespace sp
