// Optimizer tests (each update rule against double-precision formulas, convergence on a
// least-squares problem) and learning-rate schedule values.
#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include "kernels/error.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "nn/parameters.h"
#include "nn/schedule.h"
#include "tests/harness.h"

using namespace sp;

namespace {

// One element's state before a step (as floats read back) and the expected state after it,
// with a rounding bound for every output.
struct Element {
    double p, g;
    std::vector<double> state;  // in the order of Optimizer::state()
};
struct Expected {
    double p, p_bound;
    std::vector<double> state, state_bound;
};
using Reference = std::function<Expected(const Element&, double lr, int64_t t, bool first)>;

// Runs `steps` steps with fresh random gradients and varying learning rates; before each step
// the float state is read back, and the step is compared with `reference` applied to it, so
// each comparison bounds the rounding of one step.
void check_against_reference(Optimizer& opt, const Reference& reference, int steps = 5) {
    ParameterStore store;
    store.add_parameter("w", Shape{64}, Init::fan_in_uniform, 1);
    store.allocate(Device::cpu, 17);
    Context ctx(Device::cpu, 1);
    const int64_t n = store.parameter_floats();
    for (int step = 0; step < steps; ++step) {
        INFO(opt.name() << " step " << step);
        store.grads().copy_from(test::random_tensor(Shape{n}, Device::cpu, 100 + step, -2.0f, 2.0f));
        const std::vector<float> p = store.values().to_host(), g = store.grads().to_host();
        std::vector<std::vector<float>> state;
        for (auto& [name, t] : opt.state())
            state.push_back(t->defined() ? t->to_host() : std::vector<float>(static_cast<size_t>(n), 0.0f));
        const float lr = 0.05f * (1.0f + 0.25f * step);
        const int64_t t = opt.steps() + 1;
        opt.step(ctx, store, lr);
        CHECK(opt.steps() == t);

        std::vector<double> want_p(static_cast<size_t>(n)), bound_p(static_cast<size_t>(n));
        std::vector<std::vector<double>> want_s(state.size(), want_p), bound_s(state.size(), want_p);
        for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
            Element e{p[i], g[i], {}};
            for (auto& s : state) e.state.push_back(s[i]);
            Expected x = reference(e, lr, t, step == 0);
            want_p[i] = x.p;
            bound_p[i] = x.p_bound;
            for (size_t k = 0; k < state.size(); ++k) want_s[k][i] = x.state[k], bound_s[k][i] = x.state_bound[k];
        }
        test::check_within(store.values().to_host(), want_p, bound_p, opt.name() + " parameters");
        auto named = opt.state();
        REQUIRE(named.size() == state.size());
        for (size_t k = 0; k < state.size(); ++k)
            test::check_within(named[k].second->to_host(), want_s[k], bound_s[k], opt.name() + " " + named[k].first);
    }
}

// PyTorch's SGD. Roundings: at most 4 per velocity, 10 per parameter along any path.
Reference sgd_reference(const SgdHyper& h) {
    return [h](const Element& e, double lr, int64_t, bool first) {
        const double mu = h.momentum, wd = h.weight_decay;
        const double a = std::fabs(e.g) + wd * std::fabs(e.p);  // terms of the decayed gradient
        double g = e.g + wd * e.p, v = e.state[0], vabs = a;
        if (mu != 0.0) {
            v = first ? g : mu * v + g;
            vabs = first ? a : mu * std::fabs(e.state[0]) + a;
            g = h.nesterov ? g + mu * v : v;
        }
        Expected x;
        x.p = e.p - lr * g;
        x.p_bound = test::gamma(10) * (std::fabs(e.p) + lr * (a + (1.0 + mu) * vabs));
        x.state = {mu != 0.0 ? v : e.state[0]};
        x.state_bound = {test::gamma(4) * vabs};
        return x;
    };
}

// PyTorch's Adam (bias corrections in double). m has at most 4 roundings over terms of size
// b1|m| + (1 - b1)|g|; v has non-negative terms (6 roundings, no cancellation), so the denominator
// carries a relative error of a few u, and the update at most 12 more roundings.
Reference adam_reference(const AdamHyper& h) {
    return [h](const Element& e, double lr, int64_t t, bool) {
        const double b1 = h.beta1, b2 = h.beta2, eps = h.eps, wd = h.weight_decay;
        const double a = std::fabs(e.g) + wd * std::fabs(e.p);
        const double g = e.g + wd * e.p;
        const double m = b1 * e.state[0] + (1.0 - b1) * g;
        const double v = b2 * e.state[1] + (1.0 - b2) * g * g;
        const double bc1 = 1.0 - std::pow(b1, static_cast<double>(t)), bc2 = 1.0 - std::pow(b2, static_cast<double>(t));
        const double denom = std::sqrt(v) / std::sqrt(bc2) + eps;
        const double m_terms = b1 * std::fabs(e.state[0]) + (1.0 - b1) * a;
        Expected x;
        x.p = e.p - lr / bc1 * m / denom;
        x.p_bound = test::gamma(16) * (std::fabs(e.p) + lr / bc1 * m_terms / denom);
        x.state = {m, v};
        x.state_bound = {test::gamma(4) * m_terms, test::gamma(6) * (b2 * e.state[1] + (1.0 - b2) * a * a)};
        return x;
    };
}

// PyTorch's Adadelta. square_avg and acc_delta have non-negative terms; the delta carries the
// decayed gradient's absolute error (2 roundings over its terms) and ~10 relative roundings.
Reference adadelta_reference(const AdadeltaHyper& h) {
    return [h](const Element& e, double lr, int64_t, bool) {
        const double rho = h.rho, eps = h.eps, wd = h.weight_decay;
        const double a = std::fabs(e.g) + wd * std::fabs(e.p);
        const double g = e.g + wd * e.p;
        const double sq = rho * e.state[0] + (1.0 - rho) * g * g;
        const double ratio = std::sqrt(e.state[1] + eps) / std::sqrt(sq + eps);
        const double d = ratio * g, d_terms = ratio * a;
        const double acc = rho * e.state[1] + (1.0 - rho) * d * d;
        Expected x;
        x.p = e.p - lr * d;
        x.p_bound = test::gamma(14) * (std::fabs(e.p) + lr * d_terms);
        x.state = {sq, acc};
        x.state_bound = {test::gamma(6) * (rho * e.state[0] + (1.0 - rho) * a * a),
                         test::gamma(30) * (rho * e.state[1] + (1.0 - rho) * d_terms * d_terms)};
        return x;
    };
}

}  // namespace

TEST_CASE("optim: SGD steps follow PyTorch's update rule") {
    SgdHyper plain, momentum, nesterov;
    momentum.momentum = 0.9f;
    momentum.weight_decay = 5e-4f;
    nesterov.momentum = 0.8f;
    nesterov.nesterov = true;
    nesterov.weight_decay = 1e-2f;
    for (const SgdHyper& h : {plain, momentum, nesterov}) {
        INFO("momentum " << h.momentum << " nesterov " << h.nesterov << " weight decay " << h.weight_decay);
        Sgd opt(h);
        check_against_reference(opt, sgd_reference(h));
    }
}

TEST_CASE("optim: Adam steps follow PyTorch's update rule with bias correction") {
    AdamHyper plain, decayed;
    decayed.weight_decay = 1e-2f;
    decayed.beta1 = 0.8f;
    for (const AdamHyper& h : {plain, decayed}) {
        INFO("weight decay " << h.weight_decay);
        Adam opt(h);
        check_against_reference(opt, adam_reference(h));
        CHECK(opt.state()[0].first == "exp_avg");
        CHECK(opt.state()[1].first == "exp_avg_sq");
    }
}

TEST_CASE("optim: Adadelta steps follow PyTorch's update rule") {
    AdadeltaHyper plain, decayed;
    decayed.weight_decay = 1e-2f;
    decayed.rho = 0.95f;
    for (const AdadeltaHyper& h : {plain, decayed}) {
        INFO("weight decay " << h.weight_decay);
        Adadelta opt(h);
        check_against_reference(opt, adadelta_reference(h));
    }
}

TEST_CASE("optim: factory and state") {
    CHECK(make_optimizer("sgd")->name() == "sgd");
    CHECK(make_optimizer("adam")->name() == "adam");
    CHECK(make_optimizer("adadelta")->name() == "adadelta");
    std::string message;
    try {
        make_optimizer("rmsprop");
    } catch (const sp::Error& e) {
        message = e.what();
    }
    CHECK(message.find("rmsprop") != std::string::npos);
    OptimizerHyper hyper;
    hyper.sgd.momentum = 0.5f;
    auto opt = make_optimizer("sgd", hyper);
    CHECK(static_cast<Sgd&>(*opt).hyper().momentum == 0.5f);
    ParameterStore store;
    store.add_parameter("w", Shape{3}, Init::zeros);
    store.allocate(Device::cpu, 1);
    CHECK_FALSE(opt->state()[0].second->defined());  // allocated on the first step
    opt->ensure_state(store);
    CHECK(opt->state()[0].second->shape() == Shape{3});
    CHECK(opt->state()[0].second->device() == Device::cpu);
}

TEST_CASE("optim: each optimizer solves a least-squares problem through Linear") {
    // Y = X Wᵀ + b for X (64, 4); loss = ½ mean over rows of |Linear(X) - Y|².
    const int64_t n = 64, in = 4, out = 2;
    Tensor x = test::random_tensor(Shape{n, in}, Device::cpu, 51);
    const std::vector<float> w_true = test::random_values(out * in, 52), b_true = test::random_values(out, 53);
    const std::vector<float> xv = x.to_host();
    std::vector<float> y(static_cast<size_t>(n * out));
    for (int64_t r = 0; r < n; ++r)
        for (int64_t o = 0; o < out; ++o) {
            double s = b_true[static_cast<size_t>(o)];
            for (int64_t j = 0; j < in; ++j) s += static_cast<double>(xv[static_cast<size_t>(r * in + j)]) * w_true[static_cast<size_t>(o * in + j)];
            y[static_cast<size_t>(r * out + o)] = static_cast<float>(s);
        }
    struct Case {
        std::string name;
        OptimizerHyper hyper;
        ScheduleConfig schedule;
        int steps;
    };
    std::vector<Case> cases(3);
    cases[0].name = "sgd";
    cases[0].hyper.sgd.momentum = 0.9f;
    cases[0].schedule.base_lr = 0.1f;
    cases[0].steps = 300;
    cases[1].name = "adam";
    cases[1].schedule.kind = ScheduleKind::cosine;
    cases[1].schedule.base_lr = 0.05f;
    cases[1].schedule.total_epochs = 600;
    cases[1].schedule.warmup_epochs = 10;
    cases[1].steps = 600;
    cases[2].name = "adadelta";
    cases[2].schedule.base_lr = 1.0f;
    cases[2].steps = 600;
    for (const Case& c : cases) {
        INFO(c.name);
        ParameterStore store;
        Linear fc(store, "fc", in, out);
        store.allocate(Device::cpu, 9);
        Context ctx(Device::cpu, 1);
        auto opt = make_optimizer(c.name, c.hyper);
        LrSchedule schedule(c.schedule);
        auto loss_and_grad = [&](bool backward) {
            const std::vector<float> pred = fc.forward(ctx, x).to_host();
            std::vector<float> dy(pred.size());
            double loss = 0.0;
            for (size_t i = 0; i < pred.size(); ++i) {
                double r = static_cast<double>(pred[i]) - y[i];
                loss += 0.5 * r * r / n;
                dy[i] = static_cast<float>(r / n);
            }
            if (backward) fc.backward(ctx, Tensor::from_host(dy, Shape{n, out}, Device::cpu));
            return loss;
        };
        const double initial = loss_and_grad(false);
        for (int s = 0; s < c.steps; ++s) {
            loss_and_grad(true);
            opt->step(ctx, store, schedule.lr_at(s));  // one step per "epoch"
        }
        const double final_loss = loss_and_grad(false);
        CHECK_MESSAGE(final_loss < 1e-4 * initial, c.name << ": loss " << initial << " -> " << final_loss);
    }
}

TEST_CASE("schedule: values at chosen epochs") {
    ScheduleConfig c;
    c.base_lr = 0.5f;
    c.gamma = 0.25f;
    CHECK(LrSchedule(c).lr_at(0.0) == 0.5f);
    CHECK(LrSchedule(c).lr_at(123.4) == 0.5f);

    c.kind = ScheduleKind::step;
    c.step_epochs = 30;
    LrSchedule step(c);
    CHECK(step.lr_at(0.0) == 0.5f);
    CHECK(step.lr_at(29.99) == 0.5f);
    CHECK(step.lr_at(30.0) == 0.125f);
    CHECK(step.lr_at(59.5) == 0.125f);
    CHECK(step.lr_at(60.0) == 0.03125f);

    c.kind = schedule_kind_from_name("multistep");
    c.milestones = {10, 25};
    LrSchedule multi(c);
    CHECK(multi.lr_at(9.99) == 0.5f);
    CHECK(multi.lr_at(10.0) == 0.125f);
    CHECK(multi.lr_at(24.9) == 0.125f);
    CHECK(multi.lr_at(25.0) == 0.03125f);
    CHECK(multi.lr_at(400.0) == 0.03125f);

    c.kind = schedule_kind_from_name("cosine");
    c.base_lr = 1.0f;
    c.total_epochs = 100;
    c.min_lr = 0.0f;
    LrSchedule cosine(c);
    CHECK(cosine.lr_at(0.0) == 1.0f);
    CHECK(cosine.lr_at(50.0) == 0.5f);
    CHECK(cosine.lr_at(100.0) == 0.0f);
    CHECK(cosine.lr_at(150.0) == 0.0f);  // stays at the floor
    CHECK(cosine.lr_at(100.0 / 3.0) == static_cast<float>(0.5 * (1.0 + 0.5)));  // cos(π/3) = ½, within rounding
    c.min_lr = 0.25f;
    LrSchedule floor(c);
    CHECK(floor.lr_at(50.0) == 0.625f);
    CHECK(floor.lr_at(100.0) == 0.25f);
    CHECK(floor.lr_at(1000.0) == 0.25f);

    // Linear warm-up multiplies any schedule over the first warmup_epochs.
    ScheduleConfig w;
    w.base_lr = 0.5f;
    w.warmup_epochs = 5;
    LrSchedule warm(w);
    CHECK(warm.lr_at(0.0) == 0.0f);
    CHECK(warm.lr_at(1.25) == 0.125f);
    CHECK(warm.lr_at(2.5) == 0.25f);
    CHECK(warm.lr_at(5.0) == 0.5f);
    CHECK(warm.lr_at(7.0) == 0.5f);
    w.warmup_start_factor = 0.5f;
    w.kind = ScheduleKind::cosine;
    w.total_epochs = 10;
    LrSchedule warm_cosine(w);
    CHECK(warm_cosine.lr_at(0.0) == 0.25f);
    // epoch 2.5: warm-up factor 0.75, cosine 0.5 (1 + cos(π/4))/2
    CHECK(warm_cosine.lr_at(2.5) == static_cast<float>(0.75 * 0.5 * 0.5 * (1.0 + std::cos(3.14159265358979323846 / 4))));
    CHECK(warm_cosine.lr_at(5.0) == 0.25f);

    bool threw = false;
    try {
        schedule_kind_from_name("exponential");
    } catch (const sp::Error&) {
        threw = true;
    }
    CHECK(threw);
    threw = false;
    try {
        step.lr_at(-1.0);
    } catch (const sp::Error&) {
        threw = true;
    }
    CHECK(threw);
}
