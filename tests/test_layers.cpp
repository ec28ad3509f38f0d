// Layer tests: pruning masks equal zeroed weights, Sequential gradients by finite differences,
// BatchNorm running statistics, Dropout, shape errors, the parameter store and its init.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "kernels/error.h"
#include "nn/layers.h"
#include "nn/parameters.h"
#include "tests/harness.h"

using namespace sp;

namespace {

double max_abs(const std::vector<float>& v) {
    double m = 0.0;
    for (float x : v) m = std::max(m, std::fabs(static_cast<double>(x)));
    return m;
}

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// The message of the sp::Error thrown by `f` ("" when nothing is thrown).
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const sp::Error& e) {
        return e.what();
    }
    return "";
}

// A layer with a weight mask and an output-channel mask against the same layer whose masked
// weights (and gated filters and biases) are zeroed: same outputs and input gradients, same
// gradients for the kept weights, zero gradient for the masked ones, stored weights untouched.
// Reduction lengths: fwd = terms per output, dgrad = per input gradient, wgrad = per weight
// gradient. Both sides round independently, hence the factor 2 in every bound.
template <class Layer, class Make>
void check_masked_equals_zeroed(Device dev, const Make& make, const Shape& x_shape, int64_t fwd_len,
                                int64_t dgrad_len, int64_t wgrad_len) {
    ParameterStore store_a, store_b;
    std::unique_ptr<Layer> a = make(store_a, "masked"), b = make(store_b, "zeroed");
    store_a.allocate(dev, 7);
    store_b.allocate(dev, 8);
    Context ctx(dev, 1, /*deterministic=*/true);

    const Shape w_shape = a->weight().shape();
    const int64_t k = w_shape[0], per_filter = w_shape.numel() / k;
    std::vector<float> wmask(static_cast<size_t>(w_shape.numel())), omask(static_cast<size_t>(k), 1.0f);
    for (size_t j = 0; j < wmask.size(); ++j) wmask[j] = stream_uniform(99, j) < 0.3f ? 0.0f : 1.0f;
    omask[1] = 0.0f;
    Tensor wm = Tensor::from_host(wmask, w_shape, dev), om = Tensor::from_host(omask, Shape{k}, dev);
    a->set_weight_mask(&wm);
    a->set_output_mask(&om);
    auto kept = [&](size_t j) { return wmask[j] != 0.0f && omask[j / static_cast<size_t>(per_filter)] != 0.0f; };

    const std::vector<float> w0 = a->weight().to_host(), b0 = a->bias().to_host();
    std::vector<float> wz = w0, bz = b0;
    for (size_t j = 0; j < wz.size(); ++j)
        if (!kept(j)) wz[j] = 0.0f;
    bz[1] = 0.0f;
    b->weight().copy_from(Tensor::from_host(wz, w_shape, Device::cpu));
    b->bias().copy_from(Tensor::from_host(bz, Shape{k}, Device::cpu));

    Tensor x = test::random_tensor(x_shape, dev, 11);
    Tensor& ya = a->forward(ctx, x);
    Tensor& yb = b->forward(ctx, x);
    REQUIRE(ya.shape() == yb.shape());
    double max_filter = 0.0;  // max_k Σ|w_k|
    for (int64_t f = 0; f < k; ++f) {
        double s = 0.0;
        for (int64_t j = 0; j < per_filter; ++j) s += std::fabs(w0[static_cast<size_t>(f * per_filter + j)]);
        max_filter = std::max(max_filter, s);
    }
    const double y_bound = 2.0 * test::gamma(fwd_len + 1) * (max_filter + max_abs(b0));  // |x| <= 1
    test::check_within(ya.to_host(), to_double(yb.to_host()), y_bound, "masked vs zeroed: output");

    Tensor dy = test::random_tensor(ya.shape(), dev, 12);
    const std::vector<float> dx_a = a->backward(ctx, dy).to_host();
    const std::vector<float> dx_b = b->backward(ctx, dy).to_host();
    test::check_within(dx_a, to_double(dx_b), 2.0 * test::gamma(dgrad_len) * dgrad_len * max_abs(w0),
                       "masked vs zeroed: input gradient");

    const std::vector<float> dw_a = a->weight_grad().to_host(), dw_b = b->weight_grad().to_host();
    const double wgrad_bound = 2.0 * test::gamma(wgrad_len) * wgrad_len;  // |x|, |dy| <= 1
    std::vector<float> got;
    std::vector<double> want;
    int64_t masked_nonzero = 0;
    for (size_t j = 0; j < dw_a.size(); ++j) {
        if (kept(j)) {
            got.push_back(dw_a[j]);
            want.push_back(dw_b[j]);
        } else if (dw_a[j] != 0.0f) {
            ++masked_nonzero;
        }
    }
    CHECK(got.size() * 2 > dw_a.size());  // the comparison covers most weights
    test::check_within(got, want, wgrad_bound, "masked vs zeroed: kept weight gradients");
    CHECK_MESSAGE(masked_nonzero == 0, masked_nonzero << " masked weights got a nonzero gradient");

    const std::vector<float> db_a = a->bias_grad().to_host(), db_b = b->bias_grad().to_host();
    CHECK(db_a[1] == 0.0f);
    std::vector<float> db_kept = db_a;
    std::vector<double> db_want = to_double(db_b);
    db_kept.erase(db_kept.begin() + 1);
    db_want.erase(db_want.begin() + 1);
    test::check_within(db_kept, db_want, wgrad_bound, "masked vs zeroed: kept bias gradients");

    CHECK(a->weight().to_host() == w0);  // the stored weights survive masking
    CHECK(a->bias().to_host() == b0);
}

void check_masked_layers(Device dev) {
    for (int64_t groups : {1, 2}) {
        INFO("conv groups " << groups);
        // x (2, 4, 5, 5), w (6, 4/g, 3, 3), stride 1, padding 1: y (2, 6, 5, 5)
        auto make = [groups](ParameterStore& s, const std::string& name) {
            return std::make_unique<Conv2d>(s, name, 4, 6, 3, 1, 1, groups, true);
        };
        check_masked_equals_zeroed<Conv2d>(dev, make, Shape{2, 4, 5, 5}, 4 / groups * 9, 6 / groups * 9, 2 * 25);
    }
    auto make_linear = [](ParameterStore& s, const std::string& name) {
        return std::make_unique<Linear>(s, name, 10, 5, true);
    };
    check_masked_equals_zeroed<Linear>(dev, make_linear, Shape{3, 10}, 10, 5, 3);
}

// A small CNN: conv(2→3, 3x3, pad 1) → BN → ReLU → max-pool 2 → flatten → linear(12→4).
struct SmallCnn {
    ParameterStore store;
    Sequential net{"net"};
    Conv2d* conv;
    BatchNorm2d* bn;
    Linear* fc;
    explicit SmallCnn(Device dev, uint64_t seed = 3) {
        conv = &net.emplace<Conv2d>(store, "net.conv", 2, 3, 3, 1, 1, 1, true);
        bn = &net.emplace<BatchNorm2d>(store, "net.bn", 3);
        net.emplace<ReLU>("net.relu");
        net.emplace<MaxPool2d>("net.pool", 2, 2);
        net.emplace<Flatten>("net.flatten");
        fc = &net.emplace<Linear>(store, "net.fc", 12, 4);
        store.allocate(dev, seed);
    }
};

}  // namespace

TEST_CASE("layers: masked Conv2d and Linear equal zeroed weights (cpu)") { check_masked_layers(Device::cpu); }

GPU_TEST_CASE("layers: masked Conv2d and Linear equal zeroed weights (cuda)") { check_masked_layers(Device::cuda); }

TEST_CASE("layers: Sequential CNN gradients pass the finite-difference check") {
    SmallCnn m(Device::cpu);
    Context ctx(Device::cpu, 5);
    Tensor x = test::random_tensor(Shape{2, 2, 4, 4}, Device::cpu, 21);
    CHECK(m.net.output_shape(x.shape()) == Shape{2, 4});
    // MACs per image: conv 3·2·9·16, pool 3·2·2·4 window reads, linear 12·4.
    CHECK(m.net.macs(x.shape()) == 3 * 2 * 9 * 16 + 3 * 4 * 4 + 12 * 4);

    const std::vector<float> upstream = test::random_values(8, 22);
    Tensor dy = Tensor::from_host(upstream, Shape{2, 4}, Device::cpu);
    m.net.forward(ctx, x);
    const std::vector<float> dx = m.net.backward(ctx, dy).to_host();

    // Forward one child at a time (what Sequential does) to also read the ReLU pattern and the
    // max-pool winners: a perturbation that changes them crosses a kink and is skipped.
    std::vector<float> relu_out;
    auto loss = [&]() {
        const Tensor* h = &x;
        for (size_t i = 0; i < m.net.size(); ++i) {
            h = &m.net[i].forward(ctx, *h);
            if (i == 2) relu_out = h->to_host();
        }
        return test::dot(upstream, *h);
    };
    auto pattern = [&]() {
        loss();
        std::vector<int> p;
        for (float v : relu_out) p.push_back(v > 0.0f);
        // (2, 3, 4, 4) pooled by 2x2: index of the first maximum of each window
        for (int64_t nc = 0; nc < 6; ++nc)
            for (int64_t py = 0; py < 2; ++py)
                for (int64_t px = 0; px < 2; ++px) {
                    int best = 0;
                    float best_v = -1.0f;
                    for (int d = 0; d < 4; ++d) {
                        float v = relu_out[static_cast<size_t>(nc * 16 + (2 * py + d / 2) * 4 + 2 * px + d % 2)];
                        if (v > best_v) best_v = v, best = d;
                    }
                    p.push_back(best);
                }
        return p;
    };
    const std::vector<int> base = pattern();
    double h = 1e-2;  // a conv weight moves many ReLU inputs at once: it gets a smaller step
    auto kink_skip = [&](Tensor& t) {
        return [&, data = t.data()](int64_t i) {
            const float saved = data[i];
            bool crosses = false;
            for (double s : {h, -h, h / 2, -h / 2}) {
                data[i] = static_cast<float>(saved + s);
                crosses = crosses || pattern() != base;
            }
            data[i] = saved;
            return crosses;
        };
    };
    // Rounding of L: every output carries the rounding of conv (18 terms), BN (32 values per
    // channel), and the linear layer (12 terms); terms_bound is Σ|upstream| times a bound on
    // the linear layer's terms Σ|w||a| + |b| with |a| <= max |BN output| (computed below).
    const std::vector<float> fc_w = m.fc->weight().to_host(), fc_b = m.fc->bias().to_host();
    loss();
    const double max_a = max_abs(relu_out);
    double terms = 0.0;
    for (int64_t o = 0; o < 4; ++o) {
        double s = std::fabs(fc_b[static_cast<size_t>(o)]);
        for (int64_t j = 0; j < 12; ++j) s += std::fabs(fc_w[static_cast<size_t>(o * 12 + j)]) * max_a;
        for (int64_t n = 0; n < 2; ++n) terms += std::fabs(upstream[static_cast<size_t>(n * 4 + o)]) * s;
    }
    test::GradCheckOptions opt;
    opt.step = h;
    opt.reduction_length = 18 + 2 * 32 + 12;
    opt.terms_bound = terms;

    // Parameter gradients were written by the analytic backward above; copy them first.
    const std::vector<float> conv_dw = m.conv->weight_grad().to_host(), conv_db = m.conv->bias_grad().to_host();
    const std::vector<float> bn_dg = m.store.grad(m.bn->gamma_index()).to_host();
    const std::vector<float> fc_dw = m.fc->weight_grad().to_host();

    opt.skip = kink_skip(x);
    test::check_gradient("input", x, dx, loss, opt);
    Tensor w = m.conv->weight();
    h = opt.step = 1e-3;
    opt.skip = kink_skip(w);
    test::check_gradient("conv weight", w, conv_dw, loss, opt);
    h = opt.step = 1e-2;
    Tensor g = m.bn->gamma();
    opt.skip = kink_skip(g);
    test::check_gradient("bn gamma", g, bn_dg, loss, opt);
    Tensor fw = m.fc->weight();
    opt.skip = kink_skip(fw);
    test::check_gradient("fc weight", fw, fc_dw, loss, opt);
    // The conv bias is cancelled exactly by the batch normalisation that follows.
    for (float v : conv_db) CHECK(std::fabs(v) <= 2.0 * test::gamma(2 * 32) * 32 * max_abs(upstream) * 4);
}

GPU_TEST_CASE("layers: Sequential CNN forward agrees on cpu and cuda") {
    SmallCnn cpu_model(Device::cpu), cuda_model(Device::cuda);
    CHECK(cpu_model.store.values().to_host() == cuda_model.store.values().to_host());  // same init
    Context cpu_ctx(Device::cpu, 5), cuda_ctx(Device::cuda, 5, /*deterministic=*/true);
    Tensor x = test::random_tensor(Shape{2, 2, 4, 4}, Device::cpu, 21);
    Tensor xc = x.to(Device::cuda);
    for (bool training : {true, false}) {
        cpu_model.net.set_training(training);
        cuda_model.net.set_training(training);
        const std::vector<float> y_cpu = cpu_model.net.forward(cpu_ctx, x).to_host();
        const std::vector<float> y_cuda = cuda_model.net.forward(cuda_ctx, xc).to_host();
        // Both sides round through conv (18 terms), BN (32 per channel) and linear (12); the
        // linear terms are bounded by Σ|w| · max|a| + |b| with BN outputs below sqrt(32).
        const std::vector<float> fc_w = cpu_model.fc->weight().to_host();
        const double bound = 2.0 * test::gamma(18 + 2 * 32 + 12) * (max_abs(fc_w) * 12 * std::sqrt(32.0) + 1.0);
        test::check_within(y_cuda, to_double(y_cpu), bound, training ? "training forward" : "eval forward");
    }
}

TEST_CASE("layers: BatchNorm2d updates running statistics and uses them in eval mode") {
    ParameterStore store;
    BatchNorm2d bn(store, "bn", 3, 0.1f, 1e-5f);
    store.allocate(Device::cpu, 1);
    Context ctx(Device::cpu, 1);
    CHECK(bn.running_mean().to_host() == std::vector<float>(3, 0.0f));
    CHECK(bn.running_var().to_host() == std::vector<float>(3, 1.0f));
    CHECK(bn.gamma().to_host() == std::vector<float>(3, 1.0f));
    CHECK(bn.beta().to_host() == std::vector<float>(3, 0.0f));
    bn.gamma().copy_from(Tensor::from_host({1.5f, -0.5f, 2.0f}, Shape{3}, Device::cpu));
    bn.beta().copy_from(Tensor::from_host({0.25f, 0.0f, -1.0f}, Shape{3}, Device::cpu));

    const Shape shape{4, 3, 2, 2};
    Tensor x = test::random_tensor(shape, Device::cpu, 31, -1.0f, 3.0f);
    const std::vector<float> xv = x.to_host();
    bn.forward(ctx, x);
    const int64_t n = 16;  // values per channel
    std::vector<double> mean(3), var(3), mean_bound(3), var_bound(3);
    for (int64_t c = 0; c < 3; ++c) {
        double s = 0.0, sa = 0.0;
        for (int64_t i = 0; i < 4; ++i)
            for (int64_t j = 0; j < 4; ++j) s += xv[static_cast<size_t>(i * 12 + c * 4 + j)], sa += std::fabs(xv[static_cast<size_t>(i * 12 + c * 4 + j)]);
        double m = s / n, ss = 0.0, sq = 0.0;
        for (int64_t i = 0; i < 4; ++i)
            for (int64_t j = 0; j < 4; ++j) {
                double d = xv[static_cast<size_t>(i * 12 + c * 4 + j)] - m;
                ss += d * d;
                sq += (std::fabs(xv[static_cast<size_t>(i * 12 + c * 4 + j)]) + std::fabs(m)) *
                      (std::fabs(xv[static_cast<size_t>(i * 12 + c * 4 + j)]) + std::fabs(m));
            }
        mean[c] = 0.1 * m;                          // 0.9 · 0 + 0.1 · batch mean
        var[c] = 0.9 + 0.1 * ss / (n - 1);          // 0.9 · 1 + 0.1 · unbiased variance
        mean_bound[c] = test::gamma(n + 3) * 0.1 * sa / n;
        var_bound[c] = test::gamma(2 * n + 6) * (0.9 + 0.1 * sq / (n - 1));
    }
    test::check_within(bn.running_mean().to_host(), mean, mean_bound, "running mean");
    test::check_within(bn.running_var().to_host(), var, var_bound, "running var");

    bn.set_training(false);
    const std::vector<float> rm = bn.running_mean().to_host(), rv = bn.running_var().to_host();
    Tensor x2 = test::random_tensor(shape, Device::cpu, 32);
    const std::vector<float> x2v = x2.to_host(), y = bn.forward(ctx, x2).to_host();
    const float gv[3] = {1.5f, -0.5f, 2.0f}, bv[3] = {0.25f, 0.0f, -1.0f};
    std::vector<double> want(y.size()), bound(y.size());
    for (size_t i = 0; i < y.size(); ++i) {
        size_t c = (i / 4) % 3;
        double inv = 1.0 / std::sqrt(static_cast<double>(rv[c]) + 1e-5);
        want[i] = gv[c] * (x2v[i] - rm[c]) * inv + bv[c];
        bound[i] = test::gamma(8) * ((std::fabs(x2v[i]) + std::fabs(rm[c])) * inv * std::fabs(gv[c]) + std::fabs(bv[c]));
    }
    test::check_within(y, want, bound, "eval forward");
    CHECK(bn.running_mean().to_host() == rm);  // eval does not touch the statistics
    CHECK(bn.running_var().to_host() == rv);

    // The eval-mode backward (an affine map per channel) against finite differences.
    const std::vector<float> upstream = test::random_values(shape.numel(), 33);
    Tensor dy = Tensor::from_host(upstream, shape, Device::cpu);
    const std::vector<float> dx = bn.backward(ctx, dy).to_host();
    const std::vector<float> dg = store.grad(bn.gamma_index()).to_host(), db = store.grad(bn.beta_index()).to_host();
    auto loss = [&]() { return test::dot(upstream, bn.forward(ctx, x2)); };
    test::GradCheckOptions opt;
    opt.reduction_length = 8;
    opt.terms_bound = 0.0;
    for (size_t i = 0; i < y.size(); ++i) opt.terms_bound += std::fabs(upstream[i]) * (bound[i] / test::gamma(8));
    test::check_gradient("eval input", x2, dx, loss, opt);
    Tensor g = bn.gamma(), b = bn.beta();
    test::check_gradient("eval gamma", g, dg, loss, opt);
    test::check_gradient("eval beta", b, db, loss, opt);
}

TEST_CASE("layers: Dropout is the identity in eval mode and reproducible per seed") {
    const Shape shape{40, 100};
    Tensor x = test::random_tensor(shape, Device::cpu, 41);
    const std::vector<float> xv = x.to_host();
    const float p = 0.3f;
    Dropout d1("drop", p, 7), d2("drop", p, 7);
    Context ctx(Device::cpu, 100), same(Device::cpu, 100), other(Device::cpu, 101);

    d1.set_training(false);
    CHECK(d1.forward(ctx, x).to_host() == xv);
    Tensor dy = test::random_tensor(shape, Device::cpu, 42);
    CHECK(d1.backward(ctx, dy).to_host() == dy.to_host());
    d1.set_training(true);

    const std::vector<float> a = d1.forward(ctx, x).to_host();
    const std::vector<float> b = d2.forward(same, x).to_host();
    CHECK(a == b);  // same seed, purpose and step: same mask
    Dropout d3("drop", p, 7);
    CHECK(d3.forward(other, x).to_host() != a);  // another seed
    ctx.set_step(1);
    CHECK(d1.forward(ctx, x).to_host() != a);   // the next step draws a new mask

    // Each element is dropped or scaled by 1 / (1 - p); the kept fraction is within 5 standard
    // deviations sqrt(p (1 - p) / n) of 1 - p.
    int64_t kept = 0, bad = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i] == 0.0f && xv[i] != 0.0f) continue;
        ++kept;
        if (std::fabs(a[i] - xv[i] / (1.0f - p)) > 2 * test::kUnitRoundoff * std::fabs(a[i])) ++bad;
    }
    CHECK(bad == 0);
    const double n = static_cast<double>(a.size());
    CHECK(std::fabs(kept / n - (1.0 - p)) <= 5.0 * std::sqrt(p * (1.0 - p) / n));

    // Backward multiplies by the same mask and scale.
    d2.backward(same, dy);
    const std::vector<float> dx = d2.backward(same, dy).to_host(), dyv = dy.to_host();
    for (size_t i = 0; i < a.size(); ++i) {
        double want = (a[i] == 0.0f) ? 0.0 : dyv[i] / (1.0 - p);
        CHECK(std::fabs(dx[i] - want) <= 2 * test::kUnitRoundoff * std::fabs(want));
        if (std::fabs(dx[i] - want) > 2 * test::kUnitRoundoff * std::fabs(want)) break;
    }
}

TEST_CASE("layers: shape errors name the layer") {
    ParameterStore store;
    Sequential net("net");
    net.emplace<Conv2d>(store, "net.conv1", 3, 4, 3);
    net.emplace<Flatten>("net.flatten");
    net.emplace<Linear>(store, "net.fc", 4 * 2 * 2, 2);
    BatchNorm2d bn(store, "bn7", 5);
    store.allocate(Device::cpu, 1);
    Context ctx(Device::cpu, 1);

    Tensor wrong_channels(Shape{1, 2, 4, 4}, Device::cpu);
    CHECK(error_of([&] { net.forward(ctx, wrong_channels); }).find("net.conv1") != std::string::npos);
    Tensor wrong_size(Shape{1, 3, 5, 5}, Device::cpu);  // conv → (1, 4, 3, 3): 36 features, fc wants 16
    CHECK(error_of([&] { net.forward(ctx, wrong_size); }).find("net.fc") != std::string::npos);
    CHECK(error_of([&] { bn.forward(ctx, wrong_channels); }).find("bn7") != std::string::npos);
    Tensor good(Shape{1, 3, 4, 4}, Device::cpu);
    Tensor& y = net.forward(ctx, good);
    CHECK(y.shape() == Shape{1, 2});
    Tensor wrong_grad(Shape{1, 3}, Device::cpu);
    CHECK(error_of([&] { net.backward(ctx, wrong_grad); }).find("net.fc") != std::string::npos);
    Tensor bad_mask(Shape{3}, Device::cpu);
    auto& conv = static_cast<Conv2d&>(net[0]);
    CHECK(error_of([&] { conv.set_output_mask(&bad_mask); }).find("net.conv1") != std::string::npos);
}

TEST_CASE("parameters: offsets, views and registration") {
    ParameterStore store;
    int a = store.add_parameter("a.weight", Shape{4, 3}, Init::kaiming_normal, 3);
    int b = store.add_parameter("a.bias", Shape{4}, Init::fan_in_uniform, 3);
    int c = store.add_parameter("bn.weight", Shape{5}, Init::ones);
    int s = store.add_state("bn.running_var", Shape{5}, Init::ones);
    int s2 = store.add_state("bn.running_mean", Shape{5}, Init::zeros);
    CHECK(a == 0);
    CHECK(b == 1);
    CHECK(c == 2);
    CHECK(s == 0);
    CHECK(s2 == 1);
    // Every entry starts at a multiple of 64 floats (256 bytes): a at 0, b at 64, c at 128.
    CHECK(store.parameters()[1].offset == 64);
    CHECK(store.parameters()[2].offset == 128);
    CHECK(store.state_entries()[1].offset == 64);
    CHECK(store.parameter_count() == 21);
    CHECK(store.state_count() == 10);
    CHECK(store.parameter_floats() == 133);
    CHECK(store.state_floats() == 69);
    CHECK_FALSE(store.allocated());
    CHECK(!error_of([&] { store.value(0); }).empty());

    store.allocate(Device::cpu, 5);
    CHECK(store.allocated());
    CHECK(store.values().shape() == Shape{133});
    CHECK(store.value(1).data() == store.values().data() + 64);
    CHECK(store.value(1).shape() == Shape{4});
    CHECK(store.grad(2).data() == store.grads().data() + 128);
    CHECK(store.state(1).data() == store.states().data() + 64);
    CHECK(store.grads().to_host() == std::vector<float>(133, 0.0f));
    CHECK(store.value(2).to_host() == std::vector<float>(5, 1.0f));
    CHECK(store.state(0).to_host() == std::vector<float>(5, 1.0f));
    CHECK(store.state(1).to_host() == std::vector<float>(5, 0.0f));
    // The padding between entries is zero.
    const std::vector<float> values = store.values().to_host();
    for (int64_t i = 12; i < 64; ++i) CHECK(values[static_cast<size_t>(i)] == 0.0f);
    // Writes through a view land in the flat buffer.
    store.value(1).fill(3.0f);
    CHECK(store.values().to_host()[64] == 3.0f);
    CHECK(!error_of([&] { store.add_parameter("late", Shape{1}, Init::zeros); }).empty());
    CHECK(!error_of([&] { store.value(3); }).empty());
    for (float v : store.value(1).to_host()) CHECK(v == 3.0f);
}

TEST_CASE("parameters: allocate from given values keeps them verbatim (no initialisation); wrong sizes are named") {
    auto registered = [] {
        auto store = std::make_unique<ParameterStore>();
        store->add_parameter("a.weight", Shape{4, 3}, Init::kaiming_normal, 3);
        store->add_parameter("bn.weight", Shape{5}, Init::ones);
        store->add_state("bn.running_var", Shape{5}, Init::ones);
        return store;
    };
    auto store = registered();
    std::vector<float> values(static_cast<size_t>(store->parameter_floats())), states(static_cast<size_t>(store->state_floats()));
    for (size_t i = 0; i < values.size(); ++i) values[i] = 0.5f * static_cast<float>(i);
    for (size_t i = 0; i < states.size(); ++i) states[i] = -static_cast<float>(i);
    store->allocate(Device::cpu, values, states);
    CHECK(store->allocated());
    CHECK(store->values().to_host() == values);  // not the kaiming / ones initialisation
    CHECK(store->states().to_host() == states);
    CHECK(store->grads().to_host() == std::vector<float>(values.size(), 0.0f));

    auto wrong = registered();
    const std::string e = error_of([&] { wrong->allocate(Device::cpu, std::vector<float>(3), states); });
    CHECK(e.find("3 values") != std::string::npos);
    CHECK(e.find(std::to_string(wrong->parameter_floats())) != std::string::npos);
    CHECK_FALSE(wrong->allocated());
}

TEST_CASE("parameters: initialisation is reproducible per seed and has the right scale") {
    auto build = [](uint64_t seed) {
        auto store = std::make_unique<ParameterStore>();
        store->add_parameter("conv.weight", Shape{128, 64, 3, 3}, Init::kaiming_normal, 64 * 9);
        store->add_parameter("conv.bias", Shape{20000}, Init::fan_in_uniform, 64 * 9);
        store->add_parameter("fc.weight", Shape{100, 50}, Init::kaiming_uniform, 50);
        store->allocate(Device::cpu, seed);
        return store;
    };
    auto s1 = build(42), s2 = build(42), s3 = build(43);
    CHECK(s1->values().to_host() == s2->values().to_host());
    const std::vector<float> v1 = s1->value(0).to_host(), v3 = s3->value(0).to_host();
    int64_t equal = 0;
    for (size_t i = 0; i < v1.size(); ++i) equal += v1[i] == v3[i];
    CHECK(equal * 1000 < static_cast<int64_t>(v1.size()));

    // Kaiming normal: N(0, 2 / fan_in). The sample mean is within 5 σ/√n of 0 and the sample
    // variance within 5 √(2/n) (relative) of σ², the standard errors for normal samples.
    const double n = static_cast<double>(v1.size()), var = 2.0 / (64 * 9);
    double sum = 0.0, sq = 0.0;
    for (float v : v1) sum += v, sq += static_cast<double>(v) * v;
    CHECK(std::fabs(sum / n) <= 5.0 * std::sqrt(var / n));
    CHECK(std::fabs(sq / n / var - 1.0) <= 5.0 * std::sqrt(2.0 / n));

    // Fan-in uniform: within ±1/√fan_in, second moment a²/3 within 5 standard errors
    // (Var x² = 4 a⁴ / 45 for U(-a, a)).
    for (int idx : {1, 2}) {
        const std::vector<float> u = s1->value(idx).to_host();
        const double a = 1.0 / std::sqrt(static_cast<double>(s1->parameters()[static_cast<size_t>(idx)].fan_in));
        double m2 = 0.0;
        bool inside = true;
        for (float v : u) m2 += static_cast<double>(v) * v, inside = inside && std::fabs(v) <= a * (1 + 1e-6);
        const double m = static_cast<double>(u.size());
        CHECK(inside);
        CHECK(std::fabs(m2 / m - a * a / 3.0) <= 5.0 * std::sqrt(4.0 * a * a * a * a / 45.0 / m));
    }
}
