// CPU reference backend against naive double-precision oracles written here (nested-loop
// convolution, direct formulas), with bounds from float32 rounding: |a - b| <= 2 gamma(n) Σ|terms|.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "kernels/error.h"
#include "nn/backends.h"
#include "nn/cpu/gemm.h"
#include "tests/harness.h"

using namespace sp;
inline double g_n(int64_t n) { return sp::test::gamma(n); }  // ::gamma of <cmath> would be ambiguous
using sp::test::kUnitRoundoff;

namespace {

using Vec = std::vector<float>;
using DVec = std::vector<double>;

Vec host(const Tensor& t) { return t.to_host(); }

// Runs a gradient-style op twice: overwrite on NaN-filled output (prior content must be ignored)
// and accumulate on random prior content (which must be added). `bound` is per element.
void check_modes(const std::string& what, const Shape& shape, const std::function<void(Tensor&, GradMode)>& run,
                 const DVec& expected, const DVec& bound) {
    Tensor out(shape, Device::cpu);
    out.fill(std::numeric_limits<float>::quiet_NaN());
    run(out, GradMode::overwrite);
    test::check_within(host(out), expected, bound, what + " (overwrite)");
    Vec prior = test::random_values(shape.numel(), 777, -2.0f, 2.0f);
    Tensor acc = Tensor::from_host(prior, shape, Device::cpu);
    run(acc, GradMode::accumulate);
    DVec exp2(expected.size()), bound2(expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
        exp2[i] = expected[i] + prior[i];
        // one more float addition onto the prior content
        bound2[i] = bound[i] + 2.0 * kUnitRoundoff * (std::fabs(prior[i]) + std::fabs(expected[i]) + bound[i]);
    }
    test::check_within(host(acc), exp2, bound2, what + " (accumulate)");
}

// ---- naive convolution oracles (double) ----
struct ConvCase {
    int64_t n, c, h, w, k, r, s;
    ConvGeometry g;
    bool bias;
    int64_t p() const { return window_output_size(h, r, g.stride_h, g.pad_h); }
    int64_t q() const { return window_output_size(w, s, g.stride_w, g.pad_w); }
    int64_t cg() const { return c / g.groups; }
    int64_t kg() const { return k / g.groups; }
};

// Visits every (n, k, p, q, cc, r, s, input index) term of the convolution.
template <class F>
void for_each_term(const ConvCase& cc, F&& f) {
    for (int64_t n = 0; n < cc.n; ++n)
        for (int64_t k = 0; k < cc.k; ++k) {
            const int64_t grp = k / cc.kg();
            for (int64_t p = 0; p < cc.p(); ++p)
                for (int64_t q = 0; q < cc.q(); ++q)
                    for (int64_t c = 0; c < cc.cg(); ++c)
                        for (int64_t r = 0; r < cc.r; ++r)
                            for (int64_t s = 0; s < cc.s; ++s) {
                                const int64_t hi = p * cc.g.stride_h - cc.g.pad_h + r, wi = q * cc.g.stride_w - cc.g.pad_w + s;
                                if (hi < 0 || hi >= cc.h || wi < 0 || wi >= cc.w) continue;
                                const int64_t xi = ((n * cc.c + grp * cc.cg() + c) * cc.h + hi) * cc.w + wi;
                                const int64_t wj = ((k * cc.cg() + c) * cc.r + r) * cc.s + s;
                                const int64_t yi = ((n * cc.k + k) * cc.p() + p) * cc.q() + q;
                                f(yi, xi, wj);
                            }
        }
}

void check_conv_case(const ConvCase& cc, uint64_t seed) {
    INFO("conv N=" << cc.n << " C=" << cc.c << " H=" << cc.h << " W=" << cc.w << " K=" << cc.k << " R=" << cc.r
                   << " S=" << cc.s << " stride=" << cc.g.stride_h << "," << cc.g.stride_w << " pad=" << cc.g.pad_h
                   << "," << cc.g.pad_w << " groups=" << cc.g.groups);
    Context ctx(Device::cpu);
    Tensor x = test::random_tensor({cc.n, cc.c, cc.h, cc.w}, Device::cpu, seed);
    Tensor w = test::random_tensor({cc.k, cc.cg(), cc.r, cc.s}, Device::cpu, seed + 1);
    Tensor b = test::random_tensor({cc.k}, Device::cpu, seed + 2);
    Tensor dy = test::random_tensor({cc.n, cc.k, cc.p(), cc.q()}, Device::cpu, seed + 3);
    Vec xv = host(x), wv = host(w), bv = host(b), dyv = host(dy);

    // forward
    const size_t ny = static_cast<size_t>(dy.numel());
    DVec y(ny, 0.0), y_terms(ny, 0.0);
    for_each_term(cc, [&](int64_t yi, int64_t xi, int64_t wj) {
        y[yi] += double(xv[xi]) * wv[wj];
        y_terms[yi] += std::fabs(double(xv[xi]) * wv[wj]);
    });
    const int64_t hw_out = cc.p() * cc.q();
    if (cc.bias)
        for (size_t i = 0; i < ny; ++i) {
            const double bk = bv[(i / hw_out) % cc.k];
            y[i] += bk;
            y_terms[i] += std::fabs(bk);
        }
    const int64_t n_fwd = cc.cg() * cc.r * cc.s + 1;
    DVec y_bound(ny);
    for (size_t i = 0; i < ny; ++i) y_bound[i] = 2.0 * g_n(n_fwd) * y_terms[i];
    Tensor yt({cc.n, cc.k, cc.p(), cc.q()}, Device::cpu);
    cpu::conv2d_forward(ctx, x, w, cc.bias ? &b : nullptr, cc.g, yt);
    test::check_within(host(yt), y, y_bound, "conv2d_forward");

    // backward data: dx[xi] = Σ dy[yi] w[wj]
    DVec dx(xv.size(), 0.0), dx_terms(xv.size(), 0.0);
    for_each_term(cc, [&](int64_t yi, int64_t xi, int64_t wj) {
        dx[xi] += double(dyv[yi]) * wv[wj];
        dx_terms[xi] += std::fabs(double(dyv[yi]) * wv[wj]);
    });
    const int64_t n_bwd = cc.kg() * cc.r * cc.s + 1;
    DVec dx_bound(dx.size());
    for (size_t i = 0; i < dx.size(); ++i) dx_bound[i] = 2.0 * g_n(n_bwd) * dx_terms[i];
    check_modes("conv2d_backward_data", x.shape(),
                [&](Tensor& out, GradMode m) { cpu::conv2d_backward_data(ctx, dy, w, cc.g, out, m); }, dx, dx_bound);

    // backward weight: dw[wj] = Σ dy[yi] x[xi]
    DVec dw(wv.size(), 0.0), dw_terms(wv.size(), 0.0);
    for_each_term(cc, [&](int64_t yi, int64_t xi, int64_t wj) {
        dw[wj] += double(dyv[yi]) * xv[xi];
        dw_terms[wj] += std::fabs(double(dyv[yi]) * xv[xi]);
    });
    const int64_t n_w = cc.n * cc.p() * cc.q() + 1;
    DVec dw_bound(dw.size());
    for (size_t i = 0; i < dw.size(); ++i) dw_bound[i] = 2.0 * g_n(n_w) * dw_terms[i];
    check_modes("conv2d_backward_weight", w.shape(),
                [&](Tensor& out, GradMode m) { cpu::conv2d_backward_weight(ctx, x, dy, cc.g, out, m); }, dw, dw_bound);

    // Adjoint identity on the computed values: <conv(x) - b, dy> = <x, dx> = <w, dw>, each
    // side within Σ |other factor| * (its per-element bound).
    Tensor dxt(x.shape(), Device::cpu), dwt(w.shape(), Device::cpu), y0(yt.shape(), Device::cpu);
    cpu::conv2d_forward(ctx, x, w, nullptr, cc.g, y0);
    cpu::conv2d_backward_data(ctx, dy, w, cc.g, dxt, GradMode::overwrite);
    cpu::conv2d_backward_weight(ctx, x, dy, cc.g, dwt, GradMode::overwrite);
    Vec y0v = host(y0), dxv = host(dxt), dwv = host(dwt);
    double lhs = 0, mid = 0, rhs = 0, e_l = 0, e_m = 0, e_r = 0;
    for (size_t i = 0; i < ny; ++i) {
        lhs += double(y0v[i]) * dyv[i];
        const double bk = cc.bias ? std::fabs(bv[(i / hw_out) % cc.k]) : 0.0;
        e_l += std::fabs(dyv[i]) * 2.0 * g_n(n_fwd) * (y_terms[i] - bk);
    }
    for (size_t i = 0; i < xv.size(); ++i) mid += double(xv[i]) * dxv[i], e_m += std::fabs(xv[i]) * dx_bound[i];
    for (size_t i = 0; i < wv.size(); ++i) rhs += double(wv[i]) * dwv[i], e_r += std::fabs(wv[i]) * dw_bound[i];
    CHECK(std::fabs(lhs - mid) <= e_l + e_m);
    CHECK(std::fabs(lhs - rhs) <= e_l + e_r);
}

}  // namespace

TEST_CASE("cpu sgemm: fallback and dispatch against a double oracle, all transposes") {
    const int64_t m = 37, n = 150, k = 300;  // crosses the fallback's block edges
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb) {
            INFO("trans_a=" << ta << " trans_b=" << tb);
            const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1;  // padded strides
            Vec a = test::random_values((ta ? k : m) * lda, 11 + ta), b = test::random_values((tb ? n : k) * ldb, 21 + tb);
            Vec c0 = test::random_values(m * ldc, 31);
            const float alpha = 0.75f, beta = -0.5f;
            DVec expected(static_cast<size_t>(m * n)), bound(expected.size());
            for (int64_t i = 0; i < m; ++i)
                for (int64_t j = 0; j < n; ++j) {
                    double s = 0, t = 0;
                    for (int64_t p = 0; p < k; ++p) {
                        const double av = ta ? a[p * lda + i] : a[i * lda + p], bw = tb ? b[j * ldb + p] : b[p * ldb + j];
                        s += av * bw;
                        t += std::fabs(av * bw);
                    }
                    expected[i * n + j] = alpha * s + beta * c0[i * ldc + j];
                    bound[i * n + j] = 2.0 * g_n(k + 2) * (std::fabs(alpha) * t + std::fabs(beta * c0[i * ldc + j]));
                }
            for (int which = 0; which < 2; ++which) {
                Vec c = c0;
                if (which == 0) cpu::sgemm_fallback(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
                else cpu::sgemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
                Vec got(static_cast<size_t>(m * n));
                for (int64_t i = 0; i < m; ++i)
                    for (int64_t j = 0; j < n; ++j) got[i * n + j] = c[i * ldc + j];
                test::check_within(got, expected, bound, which == 0 ? "sgemm_fallback" : (cpu::sgemm_uses_blas() ? "sgemm (cblas)" : "sgemm"));
                // Padding columns of C are never written.
                bool pad_untouched = true;
                for (int64_t i = 0; i < m; ++i) pad_untouched &= c[i * ldc + n] == c0[i * ldc + n];
                CHECK(pad_untouched);
            }
        }
    // beta = 0 must not read C (a NaN there must not leak).
    Vec a = test::random_values(6, 5), b = test::random_values(6, 6), c(4, std::numeric_limits<float>::quiet_NaN());
    cpu::sgemm_fallback(false, false, 2, 2, 3, 1.0f, a.data(), 3, b.data(), 2, 0.0f, c.data(), 2);
    for (float v : c) CHECK(std::isfinite(v));
}

TEST_CASE("cpu conv2d forward / backward data / backward weight against naive loops") {
    auto geom = [](int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t g) {
        ConvGeometry c;
        c.stride_h = sh; c.stride_w = sw; c.pad_h = ph; c.pad_w = pw; c.groups = g;
        return c;
    };
    check_conv_case({3, 4, 7, 5, 6, 3, 3, geom(2, 2, 1, 1, 2), true}, 100);   // stride 2, pad, groups 2, non-square
    check_conv_case({2, 3, 4, 4, 5, 1, 1, geom(1, 1, 0, 0, 1), false}, 200);  // 1x1
    check_conv_case({3, 2, 6, 6, 4, 3, 3, geom(1, 1, 1, 1, 1), true}, 300);   // 3x3 same padding, batch 3
    check_conv_case({2, 4, 6, 7, 4, 2, 3, geom(2, 1, 0, 1, 2), true}, 400);   // non-square kernel and stride
    check_conv_case({1, 3, 5, 5, 3, 3, 3, geom(1, 1, 2, 2, 3), false}, 500);  // depthwise, pad 2
    // Large enough that the forward pass and the data gradient run in several chunks of samples
    // (2, 2 and 1 at about 1 MiB of columns a chunk).
    check_conv_case({5, 16, 28, 28, 16, 3, 3, geom(1, 1, 1, 1, 1), true}, 600);
}

TEST_CASE("cpu conv2d: a batch's forward and data gradient equal each sample's alone, bit for bit") {
    // Each output sums over C·R·S (forward) or K·R·S (data gradient) only, so splitting the batch
    // into chunks, or running one sample at a time, must not change a bit.
    ConvGeometry g;
    g.pad_h = g.pad_w = 1;
    const int64_t n = 5, c = 16, hw = 28, k = 16;
    Context ctx(Device::cpu);
    Tensor x = test::random_tensor({n, c, hw, hw}, Device::cpu, 61), w = test::random_tensor({k, c, 3, 3}, Device::cpu, 62);
    Tensor b = test::random_tensor({k}, Device::cpu, 63), dy = test::random_tensor({n, k, hw, hw}, Device::cpu, 64);
    Tensor y({n, k, hw, hw}, Device::cpu), dx({n, c, hw, hw}, Device::cpu);
    cpu::conv2d_forward(ctx, x, w, &b, g, y);
    cpu::conv2d_backward_data(ctx, dy, w, g, dx, GradMode::overwrite);
    const Vec xv = host(x), dyv = host(dy), yv = host(y), dxv = host(dx);
    const int64_t x_size = c * hw * hw, y_size = k * hw * hw;
    auto same_bits = [](const Vec& a, const float* b) { return std::memcmp(a.data(), b, a.size() * sizeof(float)) == 0; };
    bool same = true;
    for (int64_t i = 0; i < n; ++i) {
        Tensor xi = Tensor::from_host(Vec(xv.begin() + i * x_size, xv.begin() + (i + 1) * x_size), {1, c, hw, hw}, Device::cpu);
        Tensor dyi = Tensor::from_host(Vec(dyv.begin() + i * y_size, dyv.begin() + (i + 1) * y_size), {1, k, hw, hw}, Device::cpu);
        Tensor yi({1, k, hw, hw}, Device::cpu), dxi({1, c, hw, hw}, Device::cpu);
        cpu::conv2d_forward(ctx, xi, w, &b, g, yi);
        cpu::conv2d_backward_data(ctx, dyi, w, g, dxi, GradMode::overwrite);
        same &= same_bits(host(yi), yv.data() + i * y_size);
        same &= same_bits(host(dxi), dxv.data() + i * x_size);
    }
    CHECK(same);
}

TEST_CASE("cpu channel_sum and linear against naive loops") {
    Context ctx(Device::cpu);
    Tensor dy = test::random_tensor({3, 4, 5, 2}, Device::cpu, 1);
    Vec d = host(dy);
    DVec sum(4, 0.0), terms(4, 0.0);
    for (size_t i = 0; i < d.size(); ++i) sum[(i / 10) % 4] += d[i], terms[(i / 10) % 4] += std::fabs(d[i]);
    DVec bound(4);
    for (int i = 0; i < 4; ++i) bound[i] = 2.0 * g_n(31) * terms[i];
    check_modes("channel_sum", {4}, [&](Tensor& out, GradMode m) { cpu::channel_sum(ctx, dy, out, m); }, sum, bound);

    const int64_t n = 5, in = 7, out = 3;
    Tensor x = test::random_tensor({n, in}, Device::cpu, 2), w = test::random_tensor({out, in}, Device::cpu, 3);
    Tensor b = test::random_tensor({out}, Device::cpu, 4), g = test::random_tensor({n, out}, Device::cpu, 5);
    Vec xv = host(x), wv = host(w), bv = host(b), gv = host(g);
    DVec y(n * out), yb(n * out), dx(n * in), dxb(n * in), dw(out * in), dwb(out * in);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t o = 0; o < out; ++o) {
            double s = bv[o], t = std::fabs(bv[o]);
            for (int64_t j = 0; j < in; ++j) s += double(xv[i * in + j]) * wv[o * in + j], t += std::fabs(double(xv[i * in + j]) * wv[o * in + j]);
            y[i * out + o] = s, yb[i * out + o] = 2.0 * g_n(in + 1) * t;
        }
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < in; ++j) {
            double s = 0, t = 0;
            for (int64_t o = 0; o < out; ++o) s += double(gv[i * out + o]) * wv[o * in + j], t += std::fabs(double(gv[i * out + o]) * wv[o * in + j]);
            dx[i * in + j] = s, dxb[i * in + j] = 2.0 * g_n(out) * t;
        }
    for (int64_t o = 0; o < out; ++o)
        for (int64_t j = 0; j < in; ++j) {
            double s = 0, t = 0;
            for (int64_t i = 0; i < n; ++i) s += double(gv[i * out + o]) * xv[i * in + j], t += std::fabs(double(gv[i * out + o]) * xv[i * in + j]);
            dw[o * in + j] = s, dwb[o * in + j] = 2.0 * g_n(n) * t;
        }
    Tensor yt({n, out}, Device::cpu);
    cpu::linear_forward(ctx, x, w, &b, yt);
    test::check_within(host(yt), y, yb, "linear_forward");
    check_modes("linear_backward_data", {n, in}, [&](Tensor& o, GradMode m) { cpu::linear_backward_data(ctx, g, w, o, m); }, dx, dxb);
    check_modes("linear_backward_weight", {out, in}, [&](Tensor& o, GradMode m) { cpu::linear_backward_weight(ctx, x, g, o, m); }, dw, dwb);
}

TEST_CASE("cpu batchnorm train / eval / backward against the formulas in double") {
    Context ctx(Device::cpu);
    const int64_t n = 3, c = 4, hw = 6, m = n * hw;
    Tensor x = test::random_tensor({n, c, 2, 3}, Device::cpu, 10, -1.0f, 3.0f);
    Tensor gamma_t = test::random_tensor({c}, Device::cpu, 11, 0.5f, 1.5f), beta = test::random_tensor({c}, Device::cpu, 12);
    Tensor rm = test::random_tensor({c}, Device::cpu, 13), rv = test::random_tensor({c}, Device::cpu, 14, 0.5f, 2.0f);
    Tensor dy = test::random_tensor(x.shape(), Device::cpu, 15);
    Vec xv = host(x), gv = host(gamma_t), bv = host(beta), rmv = host(rm), rvv = host(rv), dyv = host(dy);
    const float momentum = 0.1f, eps = 1e-5f;
    auto at = [&](int64_t i, int64_t ch, int64_t j) { return static_cast<size_t>((i * c + ch) * hw + j); };

    DVec mean(c), var(c), invstd(c), y(xv.size()), yb(xv.size()), new_rm(c), new_rv(c), stat_b(c);
    DVec dx(xv.size()), dxb(xv.size()), dgamma(c), dgb(c), dbeta(c), dbb(c);
    for (int64_t ch = 0; ch < c; ++ch) {
        double s = 0, sa = 0;
        for (int64_t i = 0; i < n; ++i) for (int64_t j = 0; j < hw; ++j) s += xv[at(i, ch, j)], sa += std::fabs(xv[at(i, ch, j)]);
        mean[ch] = s / m;
        double q = 0;
        for (int64_t i = 0; i < n; ++i) for (int64_t j = 0; j < hw; ++j) q += (xv[at(i, ch, j)] - mean[ch]) * (xv[at(i, ch, j)] - mean[ch]);
        var[ch] = q / m;
        invstd[ch] = 1.0 / std::sqrt(var[ch] + eps);
        new_rm[ch] = (1 - momentum) * rmv[ch] + momentum * mean[ch];
        new_rv[ch] = (1 - momentum) * rvv[ch] + momentum * q / (m - 1);
        stat_b[ch] = 2.0 * g_n(m + 4) * (sa / m + std::fabs(rmv[ch]) + std::fabs(rvv[ch]) + q / (m - 1));
        double sdy = 0, sdyx = 0, sady = 0, sadyx = 0;
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < hw; ++j) {
                const size_t k = at(i, ch, j);
                const double xhat = (xv[k] - mean[ch]) * invstd[ch];
                y[k] = gv[ch] * xhat + bv[ch];
                // a float evaluation of (x - mean) * invstd * gamma + beta: a few roundings
                yb[k] = 2.0 * g_n(m + 4) * (std::fabs(gv[ch]) * invstd[ch] * (std::fabs(xv[k]) + std::fabs(mean[ch])) + std::fabs(bv[ch]));
                sdy += dyv[k], sdyx += dyv[k] * xhat, sady += std::fabs(dyv[k]), sadyx += std::fabs(dyv[k] * xhat);
            }
        dbeta[ch] = sdy, dbb[ch] = 2.0 * g_n(m) * sady;
        dgamma[ch] = sdyx, dgb[ch] = 2.0 * g_n(m + 4) * sady * invstd[ch] * (sa / m * 2 + std::fabs(mean[ch])) * 2;
        const double kk = gv[ch] * invstd[ch] / m;
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < hw; ++j) {
                const size_t k = at(i, ch, j);
                const double xhat = (xv[k] - mean[ch]) * invstd[ch];
                dx[k] = kk * (m * dyv[k] - sdy - xhat * sdyx);
                dxb[k] = 2.0 * g_n(m + 8) * std::fabs(kk) * (m * std::fabs(dyv[k]) + sady + std::fabs(xhat) * sadyx +
                                                               invstd[ch] * (std::fabs(xv[k]) + std::fabs(mean[ch])) * sadyx);
            }
    }
    Tensor yt(x.shape(), Device::cpu), sm({c}, Device::cpu), si({c}, Device::cpu);
    cpu::batchnorm_forward_train(ctx, x, gamma_t, beta, rm, rv, momentum, eps, yt, sm, si);
    test::check_within(host(yt), y, yb, "batchnorm train y");
    DVec mean_b(c), inv_b(c);
    for (int64_t ch = 0; ch < c; ++ch) mean_b[ch] = stat_b[ch], inv_b[ch] = 2.0 * g_n(m + 4) * invstd[ch];
    test::check_within(host(sm), mean, mean_b, "batchnorm saved_mean");
    test::check_within(host(si), invstd, inv_b, "batchnorm saved_invstd (biased variance)");
    test::check_within(host(rm), new_rm, stat_b, "batchnorm running_mean");
    test::check_within(host(rv), new_rv, stat_b, "batchnorm running_var (unbiased)");

    Tensor dx_t(x.shape(), Device::cpu);
    dx_t.fill(std::numeric_limits<float>::quiet_NaN());
    Tensor dg = Tensor::from_host(Vec(c, 5.0f), {c}, Device::cpu), db = Tensor::from_host(Vec(c, -3.0f), {c}, Device::cpu);
    cpu::batchnorm_backward(ctx, x, dy, gamma_t, sm, si, dx_t, dg, db, GradMode::accumulate);
    test::check_within(host(dx_t), dx, dxb, "batchnorm backward dx");
    DVec dg_acc(c), db_acc(c);
    for (int64_t ch = 0; ch < c; ++ch) dg_acc[ch] = dgamma[ch] + 5.0, db_acc[ch] = dbeta[ch] - 3.0, dgb[ch] += 16 * kUnitRoundoff, dbb[ch] += 8 * kUnitRoundoff;
    test::check_within(host(dg), dg_acc, dgb, "batchnorm backward dgamma (accumulate)");
    test::check_within(host(db), db_acc, dbb, "batchnorm backward dbeta (accumulate)");
    cpu::batchnorm_backward(ctx, x, dy, gamma_t, sm, si, dx_t, dg, db, GradMode::overwrite);
    test::check_within(host(dg), dgamma, dgb, "batchnorm backward dgamma (overwrite)");
    test::check_within(host(db), dbeta, dbb, "batchnorm backward dbeta (overwrite)");

    // eval uses the running statistics
    Tensor ye(x.shape(), Device::cpu);
    cpu::batchnorm_forward_eval(ctx, x, gamma_t, beta, rm, rv, eps, ye);
    Vec rm2 = host(rm), rv2 = host(rv);
    DVec e(xv.size()), eb(xv.size());
    for (int64_t ch = 0; ch < c; ++ch) {
        const double is = 1.0 / std::sqrt(double(rv2[ch]) + eps);
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < hw; ++j) {
                const size_t k = at(i, ch, j);
                e[k] = (xv[k] - rm2[ch]) * is * gv[ch] + bv[ch];
                eb[k] = 2.0 * g_n(6) * (std::fabs(gv[ch]) * is * (std::fabs(xv[k]) + std::fabs(rm2[ch])) + std::fabs(bv[ch]));
            }
    }
    test::check_within(host(ye), e, eb, "batchnorm eval");
}

TEST_CASE("cpu pooling: max (first maximum, -inf padding), average (padding counted), global") {
    Context ctx(Device::cpu);
    // Hand case: ties route to the first maximum in row-major order; negative values next to
    // padding stay the maximum (padding is -inf, not 0).
    {
        PoolGeometry g;  // 2x2 stride 2, pad 1
        g.pad_h = g.pad_w = 1;
        Vec xv = {-5, -7, 3, 3,  //
                  -6, -5, 3, 3,  //
                  1, 3, 2, 0,    //
                  0, 2, 2, -1};
        Tensor x = Tensor::from_host(xv, {1, 1, 4, 4}, Device::cpu), y({1, 1, 3, 3}, Device::cpu);
        cpu::pool2d_forward(ctx, g, x, y);
        test::check_within(host(y), DVec{-5, 3, 3, 1, 3, 3, 0, 2, -1}, 0.0, "maxpool hand forward");
        Tensor dy = Tensor::from_host({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}, Device::cpu), dx(x.shape(), Device::cpu);
        cpu::pool2d_backward(ctx, g, x, y, dy, dx, GradMode::overwrite);
        // Window (1,1) holds 3 at (1,2) and at (2,1): row-major first is (1,2) = index 6; window
        // (2,1) holds 2 twice in row 3: the first is index 13. Window (0,0) is -5 beside padding.
        test::check_within(host(dx), DVec{1, 0, 2, 3, 0, 0, 5, 6, 4, 0, 0, 0, 7, 8, 0, 9}, 0.0, "maxpool hand backward");
    }
    // Random cases against naive loops, both kinds, with overlap (window 3, stride 2, pad 1).
    for (PoolKind kind : {PoolKind::max, PoolKind::average}) {
        INFO("kind " << (kind == PoolKind::max ? "max" : "average"));
        PoolGeometry g;
        g.kind = kind;
        g.window_h = 3, g.window_w = 2, g.stride_h = 2, g.stride_w = 1, g.pad_h = 1, g.pad_w = 1;
        const int64_t n = 2, c = 3, h = 7, w = 5;
        const int64_t p = window_output_size(h, 3, 2, 1), q = window_output_size(w, 2, 1, 1);
        Tensor x = test::random_tensor({n, c, h, w}, Device::cpu, 40), dy = test::random_tensor({n, c, p, q}, Device::cpu, 41);
        Vec xv = host(x), dyv = host(dy);
        DVec y(n * c * p * q), yb(y.size(), 0.0), dx(xv.size(), 0.0), dxt(xv.size(), 0.0);
        for (int64_t pl = 0; pl < n * c; ++pl)
            for (int64_t i = 0; i < p; ++i)
                for (int64_t j = 0; j < q; ++j) {
                    double best = -INFINITY, sum = 0, sabs = 0;
                    int64_t arg = -1;
                    for (int64_t r = 0; r < 3; ++r)
                        for (int64_t s = 0; s < 2; ++s) {
                            const int64_t hi = i * 2 - 1 + r, wi = j - 1 + s;
                            if (hi < 0 || hi >= h || wi < 0 || wi >= w) continue;
                            const double v = xv[pl * h * w + hi * w + wi];
                            if (v > best) best = v, arg = pl * h * w + hi * w + wi;
                            sum += v, sabs += std::fabs(v);
                        }
                    const size_t o = (pl * p + i) * q + j;
                    if (kind == PoolKind::max) {
                        y[o] = best;
                        dx[arg] += dyv[o], dxt[arg] += std::fabs(dyv[o]);
                    } else {
                        y[o] = sum / 6.0, yb[o] = 2.0 * g_n(7) * sabs / 6.0;
                        for (int64_t r = 0; r < 3; ++r)
                            for (int64_t s = 0; s < 2; ++s) {
                                const int64_t hi = i * 2 - 1 + r, wi = j - 1 + s;
                                if (hi < 0 || hi >= h || wi < 0 || wi >= w) continue;
                                dx[pl * h * w + hi * w + wi] += dyv[o] / 6.0, dxt[pl * h * w + hi * w + wi] += std::fabs(dyv[o]) / 6.0;
                            }
                    }
                }
        Tensor yt({n, c, p, q}, Device::cpu);
        cpu::pool2d_forward(ctx, g, x, yt);
        test::check_within(host(yt), y, yb, "pool2d_forward");
        DVec dxb(dx.size());
        for (size_t i = 0; i < dx.size(); ++i) dxb[i] = 2.0 * g_n(8) * dxt[i];  // at most 6 overlapping windows + division
        check_modes("pool2d_backward", x.shape(), [&](Tensor& o, GradMode m) { cpu::pool2d_backward(ctx, g, x, yt, dy, o, m); }, dx, dxb);
    }
    // global average pooling
    Tensor x = test::random_tensor({2, 3, 4, 5}, Device::cpu, 50), dy = test::random_tensor({2, 3, 1, 1}, Device::cpu, 51);
    Vec xv = host(x), dyv = host(dy);
    DVec y(6, 0.0), yb(6, 0.0), dx(xv.size()), dxb(xv.size());
    for (size_t i = 0; i < xv.size(); ++i) y[i / 20] += xv[i] / 20.0, yb[i / 20] += 2.0 * g_n(21) * std::fabs(xv[i]) / 20.0;
    for (size_t i = 0; i < xv.size(); ++i) dx[i] = dyv[i / 20] / 20.0, dxb[i] = 2.0 * kUnitRoundoff * std::fabs(dx[i]);
    Tensor yt({2, 3, 1, 1}, Device::cpu);
    cpu::global_avg_pool_forward(ctx, x, yt);
    test::check_within(host(yt), y, yb, "global_avg_pool_forward");
    check_modes("global_avg_pool_backward", x.shape(), [&](Tensor& o, GradMode m) { cpu::global_avg_pool_backward(ctx, dy, o, m); }, dx, dxb);
}

TEST_CASE("cpu lrn forward and backward against the formula in double") {
    Context ctx(Device::cpu);
    LrnParams prm;
    prm.size = 3, prm.alpha = 0.5f, prm.beta = 0.75f, prm.k = 1.5f;  // large alpha: the window matters
    const int64_t n = 2, c = 5, hw = 6;
    Tensor x = test::random_tensor({n, c, 2, 3}, Device::cpu, 60, -2.0f, 2.0f), dy = test::random_tensor(x.shape(), Device::cpu, 61);
    Vec xv = host(x), dyv = host(dy);
    auto at = [&](int64_t i, int64_t ch, int64_t j) { return static_cast<size_t>((i * c + ch) * hw + j); };
    auto scale = [&](int64_t i, int64_t ch, int64_t j) {
        double s = 0;
        for (int64_t o = std::max<int64_t>(0, ch - 1); o <= std::min<int64_t>(c - 1, ch + 1); ++o) s += double(xv[at(i, o, j)]) * xv[at(i, o, j)];
        return prm.k + prm.alpha / 3.0 * s;
    };
    DVec y(xv.size()), yb(xv.size()), dx(xv.size()), dxb(xv.size());
    for (int64_t i = 0; i < n; ++i)
        for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t j = 0; j < hw; ++j) {
                const size_t k = at(i, ch, j);
                y[k] = xv[k] * std::pow(scale(i, ch, j), -double(prm.beta));
                // s: a positive sum of size+1 terms; pow and the product add a few roundings
                yb[k] = 2.0 * g_n(prm.size + 8) * std::fabs(y[k]);
            }
    // dx_j = dy_j s_j^-β - 2αβ/size x_j Σ_{c ∈ W(j)} dy_c x_c s_c^{-β-1} (direct chain rule)
    for (int64_t i = 0; i < n; ++i)
        for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t j = 0; j < hw; ++j) {
                const size_t k = at(i, ch, j);
                double sum = 0, sabs = 0;
                for (int64_t o = std::max<int64_t>(0, ch - 1); o <= std::min<int64_t>(c - 1, ch + 1); ++o) {
                    const size_t ko = at(i, o, j);
                    const double t = dyv[ko] * xv[ko] * std::pow(scale(i, o, j), -double(prm.beta) - 1.0);
                    sum += t, sabs += std::fabs(t);
                }
                const double coef = 2.0 * prm.alpha * prm.beta / prm.size;
                const double first = dyv[k] * std::pow(scale(i, ch, j), -double(prm.beta));
                dx[k] = first - coef * xv[k] * sum;
                dxb[k] = 2.0 * g_n(2 * prm.size + 12) * (std::fabs(first) + coef * std::fabs(xv[k]) * sabs);
            }
    Tensor yt(x.shape(), Device::cpu);
    cpu::lrn_forward(ctx, prm, x, yt);
    test::check_within(host(yt), y, yb, "lrn_forward");
    check_modes("lrn_backward", x.shape(), [&](Tensor& o, GradMode m) { cpu::lrn_backward(ctx, prm, x, yt, dy, o, m); }, dx, dxb);
}

TEST_CASE("cpu softmax cross-entropy with label smoothing, stability and label errors") {
    Context ctx(Device::cpu);
    const int64_t n = 4, k = 6;
    const float smooth = 0.1f;
    Vec zv = test::random_values(n * k, 70, -3.0f, 3.0f);
    zv[k + 2] += 1000.0f;  // a huge logit: a naive exp overflows
    zv[2 * k] -= 1000.0f;
    Vec lv = {2, 2, 0, 5};
    Tensor z = Tensor::from_host(zv, {n, k}, Device::cpu), l = Tensor::from_host(lv, {n}, Device::cpu);
    double loss = 0, loss_b = 0;
    DVec dz(zv.size()), dzb(zv.size());
    for (int64_t i = 0; i < n; ++i) {
        double m = -INFINITY;
        for (int64_t j = 0; j < k; ++j) m = std::max(m, double(zv[i * k + j]));
        double s = 0;
        for (int64_t j = 0; j < k; ++j) s += std::exp(zv[i * k + j] - m);
        const double lse = m + std::log(s);
        for (int64_t j = 0; j < k; ++j) {
            const double t = (j == lv[i] ? 1.0 - smooth : 0.0) + smooth / k;
            loss += t * (lse - zv[i * k + j]) / n;
            loss_b += t * (std::fabs(lse) + std::fabs(zv[i * k + j])) / n;
            const double sm = std::exp(zv[i * k + j] - lse);
            dz[i * k + j] = (sm - t) / n;
            dzb[i * k + j] = 2.0 * g_n(k + 6) * (sm + t) / n;
        }
    }
    Tensor dzt({n, k}, Device::cpu);
    const float got = cpu::softmax_cross_entropy(ctx, z, l, smooth, &dzt);
    REQUIRE(std::isfinite(got));
    CHECK(std::fabs(got - loss) <= 2.0 * g_n(n * k + 8) * loss_b);
    test::check_within(host(dzt), dz, dzb, "softmax_cross_entropy dlogits");
    CHECK(cpu::softmax_cross_entropy(ctx, z, l, smooth, nullptr) == got);  // no dlogits: same loss

    for (float bad : {2.5f, -1.0f, 6.0f, std::numeric_limits<float>::quiet_NaN()}) {
        Tensor lb = Tensor::from_host({0, 1, bad, 3}, {n}, Device::cpu);
        CHECK_THROWS_AS(cpu::softmax_cross_entropy(ctx, z, lb, smooth, &dzt), sp::Error);
        try {
            cpu::softmax_cross_entropy(ctx, z, lb, smooth, nullptr);
        } catch (const sp::Error& e) {
            CHECK(std::string(e.what()).find("row 2") != std::string::npos);
        }
    }
}

TEST_CASE("cpu topk_correct: hand cases with ties") {
    Context ctx(Device::cpu);
    // row 0: label 1 is the unique max                     -> top1 yes, top2 yes
    // row 1: label 0 ties with class 2 for the max         -> top1 no (tie counts against), top2 yes
    // row 2: label 3 is third, tied with nothing            -> top1 no, top2 no, top3 yes
    // row 3: all equal, label 2                             -> ahead = 3: top3 no, top4 yes
    Vec z = {0.1f, 0.9f, 0.3f, 0.2f,  //
             0.5f, 0.1f, 0.5f, 0.0f,  //
             0.4f, 0.9f, 0.1f, 0.3f,  //
             1.0f, 1.0f, 1.0f, 1.0f};
    Tensor zt = Tensor::from_host(z, {4, 4}, Device::cpu), l = Tensor::from_host({1, 0, 3, 2}, {4}, Device::cpu);
    CHECK(cpu::topk_correct(ctx, zt, l, 1) == 1);
    CHECK(cpu::topk_correct(ctx, zt, l, 2) == 2);
    CHECK(cpu::topk_correct(ctx, zt, l, 3) == 3);
    CHECK(cpu::topk_correct(ctx, zt, l, 4) == 4);
    Tensor bad = Tensor::from_host({1, 0, 4, 2}, {4}, Device::cpu);
    CHECK_THROWS_AS(cpu::topk_correct(ctx, zt, bad, 1), sp::Error);
}

TEST_CASE("cpu dropout: bit-exact against stream_uniform, keep fraction within a binomial bound") {
    Context ctx(Device::cpu);
    const int64_t n = 100003;
    const float p = 0.3f;
    const uint64_t key = random_stream_key(42, 7, 3);
    Tensor x = test::random_tensor({n}, Device::cpu, 80), y({n}, Device::cpu), ks({n}, Device::cpu);
    cpu::dropout_forward(ctx, x, p, key, y, ks);
    Vec xv = host(x), yv = host(y), kv = host(ks);
    const float scale = 1.0f / (1.0f - p);
    int64_t kept = 0, mismatches = 0;
    for (int64_t i = 0; i < n; ++i) {
        const float expect = stream_uniform(key, static_cast<uint64_t>(i)) >= p ? scale : 0.0f;
        mismatches += (kv[i] != expect || yv[i] != xv[i] * expect) ? 1 : 0;
        kept += kv[i] != 0.0f;
    }
    CHECK(mismatches == 0);
    // 6 standard deviations of Binomial(n, 1 - p): a false failure has probability ~1e-9
    const double sd = std::sqrt(n * p * (1.0 - p));
    CHECK(std::fabs(kept - n * (1.0 - p)) <= 6.0 * sd);
    // in place (y aliases x) gives the same numbers
    Tensor xin = x.clone();
    cpu::dropout_forward(ctx, xin, p, key, xin, ks);
    CHECK(host(xin) == yv);
}

TEST_CASE("cpu elementwise: relu, add, axpy, multiply, scale_channels") {
    Context ctx(Device::cpu);
    const int64_t n = 2, c = 3, hw = 4;
    Tensor a = test::random_tensor({n, c, 2, 2}, Device::cpu, 90), b = test::random_tensor(a.shape(), Device::cpu, 91);
    Tensor mask = Tensor::from_host({1.0f, 0.0f, 0.5f}, {c}, Device::cpu);
    Vec av = host(a), bv = host(b);
    DVec relu(av.size()), sum(av.size()), prod(av.size()), axp(av.size()), sc(av.size()), half_ulp(av.size());
    for (size_t i = 0; i < av.size(); ++i) {
        relu[i] = std::max(0.0f, av[i]);
        sum[i] = double(av[i]) + bv[i];
        prod[i] = double(av[i]) * bv[i];
        axp[i] = bv[i] + 0.25 * av[i];
        sc[i] = av[i] * (i / hw % c == 0 ? 1.0 : i / hw % c == 1 ? 0.0 : 0.5);
    }
    auto rel = [&](const DVec& e, double ops) {
        DVec bnd(e.size());
        for (size_t i = 0; i < e.size(); ++i) bnd[i] = ops * kUnitRoundoff * (std::fabs(av[i]) + std::fabs(bv[i]));
        return bnd;
    };
    Tensor y(a.shape(), Device::cpu);
    cpu::relu_forward(ctx, a, y);
    test::check_within(host(y), relu, 0.0, "relu_forward");
    cpu::add(ctx, a, b, y);
    test::check_within(host(y), sum, rel(sum, 1), "add");
    cpu::multiply(ctx, a, b, y);
    test::check_within(host(y), prod, rel(prod, 1), "multiply");
    cpu::scale_channels(ctx, a, mask, y);
    test::check_within(host(y), sc, 0.0, "scale_channels");  // mask values are exact powers of two
    Tensor yb = b.clone();
    cpu::axpy(ctx, 0.25f, a, yb);
    test::check_within(host(yb), axp, rel(axp, 2), "axpy");
    // relu backward reads the output: where y > 0 pass dy
    Tensor r(a.shape(), Device::cpu);
    cpu::relu_forward(ctx, a, r);
    DVec drelu(av.size());
    for (size_t i = 0; i < av.size(); ++i) drelu[i] = av[i] > 0 ? bv[i] : 0.0;
    check_modes("relu_backward", a.shape(), [&](Tensor& o, GradMode m) { cpu::relu_backward(ctx, r, b, o, m); }, drelu,
                DVec(av.size(), 0.0));
    // relu in place
    Tensor ai = a.clone();
    cpu::relu_forward(ctx, ai, ai);
    test::check_within(host(ai), relu, 0.0, "relu_forward in place");
}

TEST_CASE("cpu concat_channels and shortcut (option A)") {
    Context ctx(Device::cpu);
    Tensor a = test::random_tensor({2, 2, 3, 3}, Device::cpu, 100), b = test::random_tensor({2, 3, 3, 3}, Device::cpu, 101);
    Tensor y({2, 5, 3, 3}, Device::cpu);
    cpu::concat_channels_forward(ctx, {&a, &b}, y);
    Vec av = host(a), bv = host(b), yv = host(y);
    DVec expect(yv.size());
    for (int64_t i = 0; i < 2; ++i)
        for (int64_t ch = 0; ch < 5; ++ch)
            for (int64_t j = 0; j < 9; ++j)
                expect[(i * 5 + ch) * 9 + j] = ch < 2 ? av[(i * 2 + ch) * 9 + j] : bv[(i * 3 + ch - 2) * 9 + j];
    test::check_within(yv, expect, 0.0, "concat_channels_forward");
    // backward splits y back into a and b
    Tensor da({2, 2, 3, 3}, Device::cpu), dbt({2, 3, 3, 3}, Device::cpu);
    da.fill(std::numeric_limits<float>::quiet_NaN());
    cpu::concat_channels_backward(ctx, y, {&da, &dbt}, GradMode::overwrite);
    CHECK(host(da) == av);
    CHECK(host(dbt) == bv);
    cpu::concat_channels_backward(ctx, y, {&da, &dbt}, GradMode::accumulate);
    DVec twice_a(av.size());
    for (size_t i = 0; i < av.size(); ++i) twice_a[i] = 2.0 * av[i];
    test::check_within(host(da), twice_a, 0.0, "concat_channels_backward accumulate");

    // shortcut: odd H and W with stride 2 -> P = ceil(5/2) = 3
    const int64_t n = 2, c = 2, h = 5, w = 5, k = 6, off = 2, s = 2, p = 3;
    Tensor x = test::random_tensor({n, c, h, w}, Device::cpu, 102), dy = test::random_tensor({n, k, p, p}, Device::cpu, 103);
    Vec xv = host(x), dyv = host(dy);
    DVec ys(n * k * p * p, 0.0), dx(xv.size(), 0.0);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t pi = 0; pi < p; ++pi)
                for (int64_t qi = 0; qi < p; ++qi) {
                    ys[((i * k + ch + off) * p + pi) * p + qi] = xv[((i * c + ch) * h + pi * s) * w + qi * s];
                    dx[((i * c + ch) * h + pi * s) * w + qi * s] = dyv[((i * k + ch + off) * p + pi) * p + qi];
                }
    Tensor yt({n, k, p, p}, Device::cpu);
    yt.fill(std::numeric_limits<float>::quiet_NaN());
    cpu::shortcut_forward(ctx, x, s, off, yt);
    test::check_within(host(yt), ys, 0.0, "shortcut_forward");
    check_modes("shortcut_backward", x.shape(), [&](Tensor& o, GradMode m) { cpu::shortcut_backward(ctx, dy, s, off, o, m); }, dx,
                DVec(dx.size(), 0.0));
}

TEST_CASE("cpu optimizers: sgd (momentum, nesterov), adam, adadelta, step by step against double") {
    Context ctx(Device::cpu);
    const int64_t n = 64;
    // Each step is compared with the double formula applied to the float state of the previous
    // step, so the bound is the rounding of one step: g_n(ops) times the terms' magnitudes.
    SUBCASE("sgd") {
        for (int variant = 0; variant < 3; ++variant) {
            SgdHyper hp;
            hp.lr = 0.05f, hp.weight_decay = 1e-2f;
            hp.momentum = variant == 0 ? 0.0f : 0.9f;
            hp.nesterov = variant == 2;
            INFO("variant " << variant);
            Tensor pt = test::random_tensor({n}, Device::cpu, 110), vt({n}, Device::cpu);
            for (int step = 0; step < 3; ++step) {
                hp.first_step = step == 0;
                Tensor gt = test::random_tensor({n}, Device::cpu, 111 + step);
                Vec p0 = host(pt), v0 = host(vt), g0 = host(gt);
                cpu::sgd_update(ctx, pt, gt, vt, hp);
                DVec pe(n), pb(n), ve(n), vb(n);
                for (int64_t i = 0; i < n; ++i) {
                    const double mu = hp.momentum;
                    double g = g0[i] + double(hp.weight_decay) * p0[i], ga = std::fabs(g0[i]) + hp.weight_decay * std::fabs(p0[i]);
                    double v = v0[i], va = std::fabs(v0[i]);
                    if (mu != 0) {
                        v = hp.first_step ? g : mu * v0[i] + g;
                        va = hp.first_step ? ga : mu * std::fabs(v0[i]) + ga;
                        if (hp.nesterov) g = g + mu * v, ga = ga + mu * va;
                        else g = v, ga = va;
                    }
                    pe[i] = p0[i] - double(hp.lr) * g;
                    pb[i] = 2.0 * g_n(8) * (std::fabs(p0[i]) + hp.lr * ga);
                    ve[i] = mu != 0 ? v : v0[i];
                    vb[i] = 2.0 * g_n(8) * va;
                }
                test::check_within(host(pt), pe, pb, "sgd params");
                test::check_within(host(vt), ve, vb, "sgd velocity");
            }
        }
    }
    SUBCASE("adam") {
        AdamHyper hp;
        hp.lr = 0.01f, hp.weight_decay = 1e-2f;
        Tensor pt = test::random_tensor({n}, Device::cpu, 120), mt({n}, Device::cpu), vt({n}, Device::cpu);
        for (int64_t step = 1; step <= 3; ++step) {
            Tensor gt = test::random_tensor({n}, Device::cpu, 121 + step);
            Vec p0 = host(pt), m0 = host(mt), v0 = host(vt), g0 = host(gt);
            cpu::adam_update(ctx, pt, gt, mt, vt, hp, step);
            DVec pe(n), pb(n), me(n), mb(n), ve(n), vb(n);
            const double b1 = hp.beta1, b2 = hp.beta2;
            for (int64_t i = 0; i < n; ++i) {
                const double g = g0[i] + double(hp.weight_decay) * p0[i];
                const double ga = std::fabs(g0[i]) + hp.weight_decay * std::fabs(p0[i]);
                me[i] = b1 * m0[i] + (1 - b1) * g, mb[i] = 2.0 * g_n(6) * (b1 * std::fabs(m0[i]) + (1 - b1) * ga);
                ve[i] = b2 * v0[i] + (1 - b2) * g * g, vb[i] = 2.0 * g_n(8) * (b2 * v0[i] + (1 - b2) * ga * ga);
                const double denom = std::sqrt(ve[i]) / std::sqrt(1 - std::pow(b2, step)) + hp.eps;
                const double upd = hp.lr / (1 - std::pow(b1, step)) * me[i] / denom;
                pe[i] = p0[i] - upd;
                // the update is a product/quotient of ~12 rounded factors, m and v included
                const double upd_abs = hp.lr / (1 - std::pow(b1, step)) * (std::fabs(me[i]) + mb[i]) / denom;
                pb[i] = 2.0 * g_n(24) * (std::fabs(p0[i]) + upd_abs) + (std::fabs(upd) * vb[i] / (ve[i] > 0 ? ve[i] : 1));
            }
            test::check_within(host(mt), me, mb, "adam exp_avg");
            test::check_within(host(vt), ve, vb, "adam exp_avg_sq");
            test::check_within(host(pt), pe, pb, "adam params");
        }
    }
    SUBCASE("adadelta") {
        AdadeltaHyper hp;
        hp.lr = 0.5f, hp.weight_decay = 1e-2f;
        Tensor pt = test::random_tensor({n}, Device::cpu, 130), st({n}, Device::cpu), at({n}, Device::cpu);
        for (int step = 0; step < 3; ++step) {
            Tensor gt = test::random_tensor({n}, Device::cpu, 131 + step);
            Vec p0 = host(pt), s0 = host(st), a0 = host(at), g0 = host(gt);
            cpu::adadelta_update(ctx, pt, gt, st, at, hp);
            DVec pe(n), pb(n), se(n), sb(n), ae(n), ab(n);
            const double rho = hp.rho, eps = hp.eps;
            for (int64_t i = 0; i < n; ++i) {
                const double g = g0[i] + double(hp.weight_decay) * p0[i];
                const double ga = std::fabs(g0[i]) + hp.weight_decay * std::fabs(p0[i]);
                se[i] = rho * s0[i] + (1 - rho) * g * g, sb[i] = 2.0 * g_n(8) * (rho * s0[i] + (1 - rho) * ga * ga);
                const double d = std::sqrt(a0[i] + eps) / std::sqrt(se[i] + eps) * g;
                // relative error of d: sqrt/div/mul roundings plus half the relative error of sq
                const double d_b = (2.0 * g_n(8) + sb[i] / (se[i] + eps)) * std::fabs(std::sqrt(a0[i] + eps) / std::sqrt(se[i] + eps) * ga);
                ae[i] = rho * a0[i] + (1 - rho) * d * d;
                ab[i] = 2.0 * g_n(6) * (rho * a0[i] + (1 - rho) * d * d) + (1 - rho) * 2.0 * std::fabs(d) * d_b * 1.01;
                pe[i] = p0[i] - hp.lr * d;
                pb[i] = 2.0 * g_n(4) * (std::fabs(p0[i]) + hp.lr * std::fabs(d)) + hp.lr * d_b;
            }
            test::check_within(host(st), se, sb, "adadelta square_avg");
            test::check_within(host(at), ae, ab, "adadelta acc_delta");
            test::check_within(host(pt), pe, pb, "adadelta params");
        }
    }
}

// A large-tensor case (indices past 2^31) needs >= 8 GiB per float tensor: not cheap on the CPU
// test machines, so it lives on the CUDA side only.

TEST_CASE("cpu population ops: scale_channels (P, C), slice_columns, repeat_elements, swap_leading_axes, member_energies") {
    Context ctx(Device::cpu);
    // scale_channels with a population: row n uses mask row n / (N / P).
    const int64_t members = 3, per = 2, c = 4, hw = 5;
    Tensor x = test::random_tensor(Shape{members * per, c, hw}, Device::cpu, 900);
    Tensor mask = test::random_tensor(Shape{members, c}, Device::cpu, 901);
    Tensor y(x.shape(), Device::cpu);
    scale_channels(ctx, x, mask, y);
    const Vec xv = x.to_host(), mv = mask.to_host(), yv = y.to_host();
    DVec expect(xv.size());
    for (int64_t n = 0; n < members * per; ++n)
        for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t s = 0; s < hw; ++s) {
                const size_t i = static_cast<size_t>((n * c + ch) * hw + s);
                expect[i] = static_cast<double>(xv[i]) * mv[static_cast<size_t>((n / per) * c + ch)];
            }
    // One float product each: correctly rounded from the exact double product.
    DVec bound(expect.size());
    for (size_t i = 0; i < bound.size(); ++i) bound[i] = kUnitRoundoff * std::fabs(expect[i]);
    test::check_within(yv, expect, bound, "scale_channels (P, C)");
    Tensor bad_mask(Shape{4, c}, Device::cpu);  // 4 does not divide 6
    CHECK_THROWS_AS(scale_channels(ctx, x, bad_mask, y), Error);

    Tensor src = test::random_tensor(Shape{3, 10}, Device::cpu, 902), dst(Shape{3, 4}, Device::cpu);
    slice_columns(ctx, src, 5, dst);
    const Vec sv = src.to_host(), dv = dst.to_host();
    for (int64_t r = 0; r < 3; ++r)
        for (int64_t j = 0; j < 4; ++j) CHECK(dv[static_cast<size_t>(r * 4 + j)] == sv[static_cast<size_t>(r * 10 + 5 + j)]);
    CHECK_THROWS_AS(slice_columns(ctx, src, 7, dst), Error);

    Tensor rep(Shape{10, 9}, Device::cpu), few(Shape{10}, Device::cpu);
    few.copy_from(test::random_tensor(Shape{10}, Device::cpu, 903));
    repeat_elements(ctx, few, 9, rep);
    const Vec fv = few.to_host(), rv = rep.to_host();
    for (size_t i = 0; i < rv.size(); ++i) CHECK(rv[i] == fv[i / 9]);
    CHECK_THROWS_AS(repeat_elements(ctx, few, 8, rep), Error);

    // swap_leading_axes: (3, 4, 5) -> (4, 3, 5), and back.
    Tensor abr = test::random_tensor(Shape{3, 4, 5}, Device::cpu, 905), bar(Shape{4, 3, 5}, Device::cpu),
           back(Shape{3, 4, 5}, Device::cpu);
    swap_leading_axes(ctx, abr, 3, 4, bar);
    const Vec av = abr.to_host(), bv = bar.to_host();
    for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 4; ++j)
            for (int64_t r = 0; r < 5; ++r)
                CHECK(bv[static_cast<size_t>((j * 3 + i) * 5 + r)] == av[static_cast<size_t>((i * 4 + j) * 5 + r)]);
    swap_leading_axes(ctx, bar, 4, 3, back);
    CHECK(back.to_host() == av);
    CHECK_THROWS_AS(swap_leading_axes(ctx, abr, 7, 4, bar), Error);

    // member_energies against the formulas in double, with a tie for the error energy.
    const int64_t b = 3, k = 4;
    Vec logits = test::random_values(2 * b * k, 904, -3.0f, 3.0f);
    logits[1] = logits[0];  // row 0, label 0: tied with class 1, counts as an error
    Vec labels{0, 2, 3, 1, 1, 0};
    Tensor lt = Tensor::from_host(logits, Shape{2 * b, k}, Device::cpu), lb = Tensor::from_host(labels, Shape{2 * b}, Device::cpu);
    for (EnergyKind kind : {EnergyKind::cross_entropy, EnergyKind::margin, EnergyKind::error}) {
        Tensor e(Shape{2}, Device::cpu);
        member_energies(ctx, lt, lb, kind, e);
        DVec expected(2, 0.0);
        for (int64_t r = 0; r < 2 * b; ++r) {
            const float* z = logits.data() + r * k;
            const int64_t yl = static_cast<int64_t>(labels[static_cast<size_t>(r)]);
            double lse = 0.0, other = -HUGE_VAL;
            bool beaten = false;
            for (int64_t j = 0; j < k; ++j) {
                lse += std::exp(static_cast<double>(z[j]));
                if (j != yl) other = std::max(other, static_cast<double>(z[j]));
                beaten = beaten || (j != yl && z[j] >= z[yl]);
            }
            const double v = kind == EnergyKind::cross_entropy ? std::log(lse) - z[yl]
                             : kind == EnergyKind::margin      ? -10.0 * (z[yl] - other)
                                                               : (beaten ? 1.0 : 0.0);
            expected[static_cast<size_t>(r / b)] += v / b;
        }
        // Computed in double, rounded once to float: within u (plus double-rounding slack).
        test::check_within(e.to_host(), expected, {2 * kUnitRoundoff * std::fabs(expected[0]) + 1e-12,
                                                   2 * kUnitRoundoff * std::fabs(expected[1]) + 1e-12},
                           "member_energies");
        if (kind == EnergyKind::error) CHECK(e.to_host()[0] >= 1.0f / 3.0f);  // the tie counted against
    }
    Vec bad_labels = labels;
    bad_labels[4] = 4.0f;
    Tensor blb = Tensor::from_host(bad_labels, Shape{2 * b}, Device::cpu), e2(Shape{2}, Device::cpu), e4(Shape{4}, Device::cpu);
    CHECK_THROWS_AS(member_energies(ctx, lt, blb, EnergyKind::margin, e2), Error);
    CHECK_THROWS_AS(member_energies(ctx, lt, lb, EnergyKind::margin, e4), Error);  // 6 rows, 4 members
}
