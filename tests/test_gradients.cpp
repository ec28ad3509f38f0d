// Finite-difference checks of every CPU backward op (sp::test::check_gradient): the scalar is
// L = Σ upstream ⊙ forward(...) with a random upstream; terms_bound bounds Σ|terms| of L so the
// checker knows how much float rounding the loss carries. Ops that are linear in the checked
// input use a large step (no truncation error, small rounding error / step).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "nn/backends.h"
#include "tests/harness.h"

using namespace sp;

namespace {

using Vec = std::vector<float>;

Vec host(const Tensor& t) { return t.to_host(); }

Vec abs_of(const Vec& v) {
    Vec a(v.size());
    for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
    return a;
}

// Σ |u_i| t_i: the terms bound of L = Σ u_i y_i when y_i carries the terms t_i.
double weighted(const Vec& u, const Vec& t) {
    double s = 0.0;
    for (size_t i = 0; i < u.size(); ++i) s += std::fabs(double(u[i])) * std::fabs(double(t[i]));
    return s;
}

test::GradCheckOptions opts(double step, int64_t reduction_length, double terms_bound) {
    test::GradCheckOptions o;
    o.step = step;
    o.reduction_length = reduction_length;
    o.terms_bound = terms_bound;
    return o;
}

// n distinct values spaced by `spacing`, in an order given by a Philox-keyed shuffle.
Vec spaced_permutation(int64_t n, double spacing, uint64_t seed) {
    Vec v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>((i - n / 2) * spacing);
    for (int64_t i = n - 1; i > 0; --i) {
        const auto j = static_cast<int64_t>(stream_uniform(seed, static_cast<uint64_t>(i)) * (i + 1)) % (i + 1);
        std::swap(v[i], v[j]);
    }
    return v;
}

}  // namespace

TEST_CASE("gradients: conv2d data, weight and bias (stride 2, padding 1, groups 2)") {
    Context ctx(Device::cpu);
    ConvGeometry g;
    g.stride_h = g.stride_w = 2, g.pad_h = g.pad_w = 1, g.groups = 2;
    for (int variant = 0; variant < 2; ++variant) {
        if (variant == 1) g = ConvGeometry{1, 1, 0, 1, 1};  // stride 1, padding on W only, one group
        INFO("variant " << variant);
        const int64_t n = 2, c = 4, h = 5, w = 6, k = 4, r = 3, s = 3;
        const int64_t p = window_output_size(h, r, g.stride_h, g.pad_h), q = window_output_size(w, s, g.stride_w, g.pad_w);
        Tensor x = test::random_tensor({n, c, h, w}, Device::cpu, 1), wt = test::random_tensor({k, c / g.groups, r, s}, Device::cpu, 2);
        Tensor b = test::random_tensor({k}, Device::cpu, 3), y({n, k, p, q}, Device::cpu);
        Vec u = test::random_values(y.numel(), 4);
        Tensor ut = Tensor::from_host(u, y.shape(), Device::cpu);
        auto loss = [&] {
            cpu::conv2d_forward(ctx, x, wt, &b, g, y);
            return test::dot(u, y);
        };
        // Σ|terms| of each y: the convolution of |x| with |w| plus |b|.
        Tensor xa = Tensor::from_host(abs_of(host(x)), x.shape(), Device::cpu), wa = Tensor::from_host(abs_of(host(wt)), wt.shape(), Device::cpu);
        Tensor ba = Tensor::from_host(abs_of(host(b)), b.shape(), Device::cpu), ya(y.shape(), Device::cpu);
        cpu::conv2d_forward(ctx, xa, wa, &ba, g, ya);
        const double tb = 1.01 * weighted(u, host(ya));
        const int64_t len = c / g.groups * r * s + 1;

        Tensor dx(x.shape(), Device::cpu), dw(wt.shape(), Device::cpu), db(b.shape(), Device::cpu);
        cpu::conv2d_backward_data(ctx, ut, wt, g, dx, GradMode::overwrite);
        cpu::conv2d_backward_weight(ctx, x, ut, g, dw, GradMode::overwrite);
        cpu::channel_sum(ctx, ut, db, GradMode::overwrite);
        test::check_gradient("conv2d dx", x, host(dx), loss, opts(0.25, len, tb));
        test::check_gradient("conv2d dw", wt, host(dw), loss, opts(0.25, len, tb));
        test::check_gradient("conv2d db (channel_sum)", b, host(db), loss, opts(0.25, len, tb));
    }
}

TEST_CASE("gradients: linear data, weight and bias") {
    Context ctx(Device::cpu);
    const int64_t n = 3, in = 5, out = 4;
    Tensor x = test::random_tensor({n, in}, Device::cpu, 10), w = test::random_tensor({out, in}, Device::cpu, 11);
    Tensor b = test::random_tensor({out}, Device::cpu, 12), y({n, out}, Device::cpu);
    Vec u = test::random_values(y.numel(), 13);
    Tensor ut = Tensor::from_host(u, y.shape(), Device::cpu);
    auto loss = [&] {
        cpu::linear_forward(ctx, x, w, &b, y);
        return test::dot(u, y);
    };
    Tensor xa = Tensor::from_host(abs_of(host(x)), x.shape(), Device::cpu), wa = Tensor::from_host(abs_of(host(w)), w.shape(), Device::cpu);
    Tensor ba = Tensor::from_host(abs_of(host(b)), b.shape(), Device::cpu), ya(y.shape(), Device::cpu);
    cpu::linear_forward(ctx, xa, wa, &ba, ya);
    const double tb = 1.01 * weighted(u, host(ya));
    Tensor dx(x.shape(), Device::cpu), dw(w.shape(), Device::cpu), db(b.shape(), Device::cpu);
    cpu::linear_backward_data(ctx, ut, w, dx, GradMode::overwrite);
    cpu::linear_backward_weight(ctx, x, ut, dw, GradMode::overwrite);
    cpu::channel_sum(ctx, ut, db, GradMode::overwrite);
    test::check_gradient("linear dx", x, host(dx), loss, opts(0.25, in + 1, tb));
    test::check_gradient("linear dw", w, host(dw), loss, opts(0.25, in + 1, tb));
    test::check_gradient("linear db (channel_sum)", b, host(db), loss, opts(0.25, in + 1, tb));
}

TEST_CASE("gradients: batchnorm train (x, gamma, beta)") {
    Context ctx(Device::cpu);
    const int64_t n = 3, c = 2, hw = 6, m = n * hw;
    Tensor x = test::random_tensor({n, c, 2, 3}, Device::cpu, 20), gm = test::random_tensor({c}, Device::cpu, 21, 0.5f, 1.5f);
    Tensor bt = test::random_tensor({c}, Device::cpu, 22), rm({c}, Device::cpu), rv({c}, Device::cpu);
    Tensor y(x.shape(), Device::cpu), sm({c}, Device::cpu), si({c}, Device::cpu);
    Vec u = test::random_values(y.numel(), 23);
    Tensor ut = Tensor::from_host(u, y.shape(), Device::cpu);
    auto loss = [&] {
        cpu::batchnorm_forward_train(ctx, x, gm, bt, rm, rv, 0.1f, 1e-5f, y, sm, si);
        return test::dot(u, y);
    };
    loss();
    // y = gamma (x - mean) invstd + beta: terms |gamma| invstd (|x| + |mean|) + |beta|, with the
    // mean's reduction of length m feeding every output.
    Vec xv = host(x), smv = host(sm), siv = host(si), gv = host(gm), bv = host(bt), terms(xv.size());
    for (size_t i = 0; i < xv.size(); ++i) {
        const size_t ch = (i / hw) % c;
        terms[i] = std::fabs(gv[ch]) * siv[ch] * (std::fabs(xv[i]) + std::fabs(smv[ch])) + std::fabs(bv[ch]);
    }
    const double tb = 1.01 * weighted(u, terms);
    Tensor dx(x.shape(), Device::cpu), dg({c}, Device::cpu), db({c}, Device::cpu);
    cpu::batchnorm_backward(ctx, x, ut, gm, sm, si, dx, dg, db, GradMode::overwrite);
    test::check_gradient("batchnorm dx", x, host(dx), loss, opts(1e-2, m + 4, tb));
    test::check_gradient("batchnorm dgamma", gm, host(dg), loss, opts(0.25, m + 4, tb));  // linear in gamma
    test::check_gradient("batchnorm dbeta", bt, host(db), loss, opts(0.25, m + 4, tb));   // linear in beta
}

TEST_CASE("gradients: relu (kinks skipped), add, multiply, scale_channels") {
    Context ctx(Device::cpu);
    const int64_t n = 2, c = 3;
    Tensor x = test::random_tensor({n, c, 2, 3}, Device::cpu, 30), y(x.shape(), Device::cpu);
    Vec u = test::random_values(y.numel(), 31);
    Tensor ut = Tensor::from_host(u, y.shape(), Device::cpu);
    {
        auto loss = [&] {
            cpu::relu_forward(ctx, x, y);
            return test::dot(u, y);
        };
        loss();
        Tensor dx(x.shape(), Device::cpu);
        cpu::relu_backward(ctx, y, ut, dx, GradMode::overwrite);
        auto o = opts(1e-2, 1, weighted(u, host(x)));
        Vec xv = host(x);
        o.skip = [xv, step = o.step](int64_t i) { return std::fabs(xv[i]) <= 2.0 * step; };  // kink within reach
        test::check_gradient("relu dx", x, host(dx), loss, o);
    }
    Tensor b = test::random_tensor(x.shape(), Device::cpu, 32);
    {
        auto loss = [&] {
            cpu::add(ctx, x, b, y);
            return test::dot(u, y);
        };
        Vec t(u.size()), xv = host(x), bv = host(b);
        for (size_t i = 0; i < t.size(); ++i) t[i] = std::fabs(xv[i]) + std::fabs(bv[i]);
        // d/da (a + b) = upstream, for both operands
        test::check_gradient("add da", x, u, loss, opts(0.25, 2, 1.01 * weighted(u, t)));
        test::check_gradient("add db", b, u, loss, opts(0.25, 2, 1.01 * weighted(u, t)));
    }
    {
        auto loss = [&] {
            cpu::multiply(ctx, x, b, y);
            return test::dot(u, y);
        };
        Tensor da(x.shape(), Device::cpu), db(x.shape(), Device::cpu);
        cpu::multiply(ctx, ut, b, da);  // d/da (a ⊙ b) = u ⊙ b
        cpu::multiply(ctx, ut, x, db);
        loss();
        const double tb = 1.01 * weighted(u, host(y));
        test::check_gradient("multiply da", x, host(da), loss, opts(0.25, 1, tb));
        test::check_gradient("multiply db", b, host(db), loss, opts(0.25, 1, tb));
    }
    {
        Tensor mask = test::random_tensor({c}, Device::cpu, 33, 0.0f, 1.0f);
        auto loss = [&] {
            cpu::scale_channels(ctx, x, mask, y);
            return test::dot(u, y);
        };
        loss();
        const double tb = 1.01 * weighted(u, host(y));
        // dx = scale_channels(u, mask); dmask = channel_sum(u ⊙ x)
        Tensor dx(x.shape(), Device::cpu), ux(x.shape(), Device::cpu), dm({c}, Device::cpu);
        cpu::scale_channels(ctx, ut, mask, dx);
        cpu::multiply(ctx, ut, x, ux);
        cpu::channel_sum(ctx, ux, dm, GradMode::overwrite);
        test::check_gradient("scale_channels dx", x, host(dx), loss, opts(0.25, 1, tb));
        test::check_gradient("scale_channels dmask", mask, host(dm), loss, opts(0.25, 1, tb));
    }
}

TEST_CASE("gradients: max pool (distinct window values), average pool, global average pool") {
    Context ctx(Device::cpu);
    const int64_t n = 2, c = 2, h = 5, w = 6;
    for (PoolKind kind : {PoolKind::max, PoolKind::average}) {
        INFO("kind " << (kind == PoolKind::max ? "max" : "average"));
        PoolGeometry g;
        g.kind = kind;
        g.window_h = g.window_w = 3, g.stride_h = g.stride_w = 2, g.pad_h = g.pad_w = 1;  // overlapping windows
        const int64_t p = window_output_size(h, 3, 2, 1), q = window_output_size(w, 3, 2, 1);
        // Values 0.1 apart (> 2 steps of 1e-2): no perturbation changes which one is the maximum.
        Tensor x = Tensor::from_host(spaced_permutation(n * c * h * w, 0.1 / 1.0, 40), {n, c, h, w}, Device::cpu);
        Tensor y({n, c, p, q}, Device::cpu);
        Vec u = test::random_values(y.numel(), 41);
        Tensor ut = Tensor::from_host(u, y.shape(), Device::cpu);
        auto loss = [&] {
            cpu::pool2d_forward(ctx, g, x, y);
            return test::dot(u, y);
        };
        loss();
        Tensor dx(x.shape(), Device::cpu);
        cpu::pool2d_backward(ctx, g, x, y, ut, dx, GradMode::overwrite);
        if (kind == PoolKind::max) {
            test::check_gradient("maxpool dx", x, host(dx), loss, opts(1e-2, 1, 1.01 * weighted(u, host(y))));
        } else {
            Tensor xa = Tensor::from_host(abs_of(host(x)), x.shape(), Device::cpu), ya(y.shape(), Device::cpu);
            cpu::pool2d_forward(ctx, g, xa, ya);
            test::check_gradient("avgpool dx", x, host(dx), loss, opts(0.25, 10, 1.01 * weighted(u, host(ya))));
        }
    }
    Tensor x = test::random_tensor({n, c, h, w}, Device::cpu, 42), y({n, c, 1, 1}, Device::cpu);
    Vec u = test::random_values(y.numel(), 43);
    Tensor ut = Tensor::from_host(u, y.shape(), Device::cpu);
    auto loss = [&] {
        cpu::global_avg_pool_forward(ctx, x, y);
        return test::dot(u, y);
    };
    Tensor xa = Tensor::from_host(abs_of(host(x)), x.shape(), Device::cpu), ya(y.shape(), Device::cpu);
    cpu::global_avg_pool_forward(ctx, xa, ya);
    Tensor dx(x.shape(), Device::cpu);
    cpu::global_avg_pool_backward(ctx, ut, dx, GradMode::overwrite);
    test::check_gradient("global_avg_pool dx", x, host(dx), loss, opts(0.25, h * w + 1, 1.01 * weighted(u, host(ya))));
}

TEST_CASE("gradients: dropout (fixed key), concat, shortcut") {
    Context ctx(Device::cpu);
    {
        Tensor x = test::random_tensor({4, 3, 2, 2}, Device::cpu, 50), y(x.shape(), Device::cpu), ks(x.shape(), Device::cpu);
        Vec u = test::random_values(y.numel(), 51);
        Tensor ut = Tensor::from_host(u, y.shape(), Device::cpu);
        const uint64_t key = random_stream_key(9, 1, 0);
        auto loss = [&] {
            cpu::dropout_forward(ctx, x, 0.4f, key, y, ks);
            return test::dot(u, y);
        };
        loss();
        Tensor dx(x.shape(), Device::cpu);
        cpu::multiply(ctx, ut, ks, dx);  // the backward of dropout is dy ⊙ keep_scale
        test::check_gradient("dropout dx", x, host(dx), loss, opts(0.25, 1, 1.01 * weighted(u, host(y))));
    }
    {
        Tensor a = test::random_tensor({2, 2, 3, 2}, Device::cpu, 52), b = test::random_tensor({2, 3, 3, 2}, Device::cpu, 53);
        Tensor y({2, 5, 3, 2}, Device::cpu);
        Vec u = test::random_values(y.numel(), 54);
        Tensor ut = Tensor::from_host(u, y.shape(), Device::cpu);
        auto loss = [&] {
            cpu::concat_channels_forward(ctx, {&a, &b}, y);
            return test::dot(u, y);
        };
        loss();
        Tensor da(a.shape(), Device::cpu), db(b.shape(), Device::cpu);
        cpu::concat_channels_backward(ctx, ut, {&da, &db}, GradMode::overwrite);
        const double tb = 1.01 * weighted(u, host(y));
        test::check_gradient("concat da", a, host(da), loss, opts(0.25, 1, tb));
        test::check_gradient("concat db", b, host(db), loss, opts(0.25, 1, tb));
    }
    {
        Tensor x = test::random_tensor({2, 2, 5, 4}, Device::cpu, 55), y({2, 5, 3, 2}, Device::cpu);
        Vec u = test::random_values(y.numel(), 56);
        Tensor ut = Tensor::from_host(u, y.shape(), Device::cpu);
        auto loss = [&] {
            cpu::shortcut_forward(ctx, x, 2, 1, y);
            return test::dot(u, y);
        };
        loss();
        Tensor dx(x.shape(), Device::cpu);
        cpu::shortcut_backward(ctx, ut, 2, 1, dx, GradMode::overwrite);
        test::check_gradient("shortcut dx", x, host(dx), loss, opts(0.25, 1, 1.01 * weighted(u, host(y))));
    }
}

TEST_CASE("gradients: lrn") {
    Context ctx(Device::cpu);
    LrnParams prm;
    prm.size = 3, prm.alpha = 0.5f, prm.beta = 0.75f, prm.k = 1.5f;
    Tensor x = test::random_tensor({2, 5, 2, 2}, Device::cpu, 60), y(x.shape(), Device::cpu);
    Vec u = test::random_values(y.numel(), 61);
    Tensor ut = Tensor::from_host(u, y.shape(), Device::cpu);
    auto loss = [&] {
        cpu::lrn_forward(ctx, prm, x, y);
        return test::dot(u, y);
    };
    loss();
    Tensor dx(x.shape(), Device::cpu);
    cpu::lrn_backward(ctx, prm, x, y, ut, dx, GradMode::overwrite);
    // y = x s^-beta with s a positive sum of size + 1 terms: relative rounding ~ gamma(size + 8)
    test::check_gradient("lrn dx", x, host(dx), loss, opts(1e-2, prm.size + 8, 1.01 * weighted(u, host(y))));
}

TEST_CASE("gradients: softmax cross-entropy w.r.t. logits (label smoothing on)") {
    Context ctx(Device::cpu);
    const int64_t n = 3, k = 5;
    Tensor z = test::random_tensor({n, k}, Device::cpu, 70, -2.0f, 2.0f);
    Tensor labels = Tensor::from_host({4, 0, 2}, {n}, Device::cpu);
    const float smooth = 0.2f;
    auto loss = [&] { return static_cast<double>(cpu::softmax_cross_entropy(ctx, z, labels, smooth, nullptr)); };
    Tensor dz({n, k}, Device::cpu);
    cpu::softmax_cross_entropy(ctx, z, labels, smooth, &dz);
    // L = mean_i (lse_i - Σ_j t_ij z_ij): terms |lse_i| + Σ_j t_ij |z_ij| (at most max|z| + log K + max|z|)
    const double tb = 2.0 * 2.0 + std::log(double(k));
    test::check_gradient("softmax_cross_entropy dlogits", z, host(dz), loss, opts(1e-2, k + 4, tb));
}
