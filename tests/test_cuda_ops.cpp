// CUDA backend vs the CPU reference, op by op, on random inputs. Bounds come from float32
// rounding: a length-n reduction computed in any order is within gamma(n) Σ|terms| of the exact
// value, so two implementations differ by at most 2 gamma(n) Σ|terms| (Σ|terms| is obtained by
// running the same op on |inputs| on the CPU); elementwise ops differ by a few ulps of the
// magnitudes involved (the GPU may contract a*b+c into one FMA). Every GPU case is skipped,
// and counted as skipped, without a usable GPU.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/check.h"
#include "kernels/philox.h"
#include "nn/backends.h"
#include "nn/cuda/conv_algos.h"
#include "tests/harness.h"

namespace sp::test {
namespace {

constexpr double u = kUnitRoundoff;

std::vector<double> as_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

Tensor abs_of(const Tensor& t) {
    auto v = t.to_host();
    for (float& x : v) x = std::fabs(x);
    return Tensor::from_host(v, t.shape(), Device::cpu);
}

// bound[i] = factor * magnitude[i] (+ floor, the smallest positive float32 spacing we allow).
std::vector<double> scaled(const std::vector<float>& magnitude, double factor) {
    std::vector<double> b(magnitude.size());
    for (size_t i = 0; i < b.size(); ++i) b[i] = factor * std::fabs(static_cast<double>(magnitude[i]));
    return b;
}

// Runs `op` once on the CPU with the given inputs (all CPU tensors) and returns its outputs.
std::vector<std::vector<float>> run_cpu(const std::vector<const Tensor*>& inputs, const std::vector<Shape>& out_shapes,
                                        const OpRunner& op, const std::vector<const Tensor*>& initial_outputs = {}) {
    Context ctx(Device::cpu);
    std::vector<Tensor> in, out;
    for (const Tensor* t : inputs) in.push_back(t->clone());
    for (size_t i = 0; i < out_shapes.size(); ++i) {
        out.emplace_back(out_shapes[i], Device::cpu);
        if (i < initial_outputs.size()) out.back().copy_from(*initial_outputs[i]);
    }
    op(ctx, in, out);
    std::vector<std::vector<float>> r;
    for (const Tensor& t : out) r.push_back(t.to_host());
    return r;
}

// ---------------------------------------------------------------- convolution

struct ConvCase {
    int64_t n, c, h, w, k, r, s;
    ConvGeometry g;
};

Shape conv_out(const ConvCase& cc) {
    return Shape{cc.n, cc.k, window_output_size(cc.h, cc.r, cc.g.stride_h, cc.g.pad_h),
                 window_output_size(cc.w, cc.s, cc.g.stride_w, cc.g.pad_w)};
}

void check_conv(const ConvCase& cc, GradMode mode, uint64_t seed) {
    const std::string name = "conv " + Shape{cc.n, cc.c, cc.h, cc.w}.str() + " * " +
                             Shape{cc.k, cc.c / cc.g.groups, cc.r, cc.s}.str() + " stride " +
                             std::to_string(cc.g.stride_h) + " pad " + std::to_string(cc.g.pad_h) + " groups " +
                             std::to_string(cc.g.groups) + (mode == GradMode::accumulate ? " (accumulate)" : "");
    Tensor x = random_tensor(Shape{cc.n, cc.c, cc.h, cc.w}, Device::cpu, seed);
    Tensor w = random_tensor(Shape{cc.k, cc.c / cc.g.groups, cc.r, cc.s}, Device::cpu, seed + 1);
    Tensor b = random_tensor(Shape{cc.k}, Device::cpu, seed + 2);
    const Shape ys = conv_out(cc);
    Tensor dy = random_tensor(ys, Device::cpu, seed + 3);
    Tensor dx0 = random_tensor(x.shape(), Device::cpu, seed + 4);
    Tensor dw0 = random_tensor(w.shape(), Device::cpu, seed + 5);
    const ConvGeometry g = cc.g;
    const bool acc = mode == GradMode::accumulate;

    // inputs: x, w, b, dy, dx0, dw0; outputs: y, dx, dw
    OpRunner op = [&](Context& ctx, std::vector<Tensor>& in, std::vector<Tensor>& out) {
        conv2d_forward(ctx, in[0], in[1], &in[2], g, out[0]);
        out[1].copy_from(in[4]);
        out[2].copy_from(in[5]);
        conv2d_backward_data(ctx, in[3], in[1], g, out[1], mode);
        conv2d_backward_weight(ctx, in[0], in[3], g, out[2], mode);
    };
    auto r = run_on_both({&x, &w, &b, &dy, &dx0, &dw0}, {ys, x.shape(), w.shape()}, op);
    Tensor ax = abs_of(x), aw = abs_of(w), ab = abs_of(b), ady = abs_of(dy), adx0 = abs_of(dx0), adw0 = abs_of(dw0);
    auto a = run_cpu({&ax, &aw, &ab, &ady, &adx0, &adw0}, {ys, x.shape(), w.shape()}, op);

    const int64_t fwd_len = (cc.c / g.groups) * cc.r * cc.s + 1;                 // + bias
    const int64_t bwd_data_len = (cc.k / g.groups) * cc.r * cc.s + (acc ? 1 : 0);
    const int64_t bwd_weight_len = ys[0] * ys[2] * ys[3] + (acc ? 1 : 0);
    check_within(r.cuda[0], as_double(r.cpu[0]), scaled(a[0], 2 * gamma(fwd_len)), name + ": y");
    check_within(r.cuda[1], as_double(r.cpu[1]), scaled(a[1], 2 * gamma(bwd_data_len)), name + ": dx");
    check_within(r.cuda[2], as_double(r.cpu[2]), scaled(a[2], 2 * gamma(bwd_weight_len)), name + ": dw");
}

GPU_TEST_CASE("cuda conv2d: forward, backward data and weight match the CPU over several geometries") {
    std::vector<ConvCase> cases = {
        {2, 3, 9, 9, 4, 3, 3, {1, 1, 1, 1, 1}},     // 3x3, same padding
        {2, 4, 11, 10, 6, 3, 3, {2, 2, 1, 1, 1}},   // stride 2, odd sizes
        {3, 8, 7, 7, 8, 1, 1, {1, 1, 0, 0, 1}},     // 1x1
        {2, 6, 8, 8, 9, 3, 3, {1, 1, 1, 1, 3}},     // groups 3
        {2, 8, 8, 8, 8, 3, 3, {2, 2, 1, 1, 8}},     // depthwise, strided
        {1, 3, 12, 10, 5, 5, 3, {1, 2, 2, 1, 1}},   // rectangular kernel, unequal strides/padding
    };
    uint64_t seed = 100;
    for (const ConvCase& cc : cases) {
        check_conv(cc, GradMode::overwrite, seed);
        check_conv(cc, GradMode::accumulate, seed + 10);
        seed += 20;
    }
}

// TF32: each input rounded to a 10-bit mantissa (relative error at most 2^-10, truncating or
// rounding), so a product is within 2·2^-10 + 2^-20 of exact, then summed in FP32 (gamma(n));
// the CPU reference adds its own gamma(n).
double tf32_bound(int64_t n) { return (2 * 0x1p-10 + 0x1p-20) * (1 + gamma(n)) + 2 * gamma(n); }

GPU_TEST_CASE("cuda conv2d and linear in TF32: within the TF32 rounding bound of the CPU, and not exact FP32") {
    const ConvGeometry g{1, 1, 1, 1, 1};
    Tensor x = random_tensor(Shape{4, 64, 16, 16}, Device::cpu, 31);
    Tensor w = random_tensor(Shape{64, 64, 3, 3}, Device::cpu, 32);
    Tensor dy = random_tensor(Shape{4, 64, 16, 16}, Device::cpu, 33);
    Tensor a = random_tensor(Shape{256, 512}, Device::cpu, 34), m = random_tensor(Shape{128, 512}, Device::cpu, 35);
    const std::vector<Shape> outs = {Shape{4, 64, 16, 16}, x.shape(), w.shape(), Shape{256, 128}};
    auto op_in = [&](MathMode mode) {
        return OpRunner([&, mode](Context& ctx, std::vector<Tensor>& in, std::vector<Tensor>& out) {
            ctx.set_math(mode);
            conv2d_forward(ctx, in[0], in[1], nullptr, g, out[0]);
            conv2d_backward_data(ctx, in[2], in[1], g, out[1], GradMode::overwrite);
            conv2d_backward_weight(ctx, in[0], in[2], g, out[2], GradMode::overwrite);
            linear_forward(ctx, in[3], in[4], nullptr, out[3]);
        });
    };
    auto tf32 = run_on_both({&x, &w, &dy, &a, &m}, outs, op_in(MathMode::tf32));
    auto fp32 = run_on_both({&x, &w, &dy, &a, &m}, outs, op_in(MathMode::fp32));
    Tensor ax = abs_of(x), aw = abs_of(w), ady = abs_of(dy), aa = abs_of(a), am = abs_of(m);
    auto terms = run_cpu({&ax, &aw, &ady, &aa, &am}, outs, op_in(MathMode::fp32));
    const int64_t lengths[] = {64 * 9, 64 * 9, 4 * 16 * 16, 512};
    const char* names[] = {"conv y", "conv dx", "conv dw", "linear y"};
    int differs_from_fp32 = 0;
    for (size_t i = 0; i < 4; ++i) {
        check_within(tf32.cuda[i], as_double(tf32.cpu[i]), scaled(terms[i], tf32_bound(lengths[i])),
                     std::string("tf32 ") + names[i]);
        differs_from_fp32 += tf32.cuda[i] != fp32.cuda[i] ? 1 : 0;
    }
    // The mode must change the arithmetic: on tensor-core GPUs (sm_80+) TF32 results differ.
    cudaDeviceProp prop{};
    SP_CHECK(cudaGetDeviceProperties(&prop, 0));
    if (prop.major >= 8) CHECK(differs_from_fp32 == 4);
}

GPU_TEST_CASE("cuda conv2d: algorithms are chosen once per shape and reused from the cache") {
    Context ctx(Device::cuda, 1);
    const ConvGeometry g{1, 1, 1, 1, 1};
    Tensor x = random_tensor(Shape{2, 4, 8, 8}, Device::cuda, 1);
    Tensor w = random_tensor(Shape{5, 4, 3, 3}, Device::cuda, 2);
    Tensor y(Shape{2, 5, 8, 8}, Device::cuda), y2(Shape{2, 5, 8, 8}, Device::cuda);
    REQUIRE(ctx.conv_algo_cache().empty());
    conv2d_forward(ctx, x, w, nullptr, g, y);
    REQUIRE(ctx.conv_algo_cache().size() == 1);
    const ConvKey key{2, 4, 8, 8, 5, 4, 3, 3, 1, 1, 1, 1, 1};
    REQUIRE(ctx.conv_algo_cache().count(key) == 1);

    // The second call of the same shape must read the cached entry: make its workspace size
    // distinctive and watch the context's workspace (the only allocation) grow to exactly it.
    const size_t marker = size_t{96} << 20;
    const size_t original = ctx.conv_algo_cache()[key].forward.choice().bytes;
    REQUIRE(original < marker);
    ctx.conv_algo_cache()[key].forward.choice().bytes = marker;
    const size_t before = Buffer::live_bytes(Device::cuda);
    conv2d_forward(ctx, x, w, nullptr, g, y2);
    ctx.synchronize();
    CHECK(ctx.conv_algo_cache().size() == 1);
    CHECK(Buffer::live_bytes(Device::cuda) == before - original + marker);
    CHECK(y.to_host() == y2.to_host());  // same algorithm, same bits

    // A new shape adds exactly one entry; backward passes of a known shape add none.
    Tensor x3 = random_tensor(Shape{1, 4, 6, 6}, Device::cuda, 3);
    Tensor y3(Shape{1, 5, 6, 6}, Device::cuda);
    conv2d_forward(ctx, x3, w, nullptr, g, y3);
    CHECK(ctx.conv_algo_cache().size() == 2);
    Tensor dx(x.shape(), Device::cuda), dw(w.shape(), Device::cuda);
    conv2d_backward_data(ctx, y, w, g, dx, GradMode::overwrite);
    conv2d_backward_weight(ctx, x, y, g, dw, GradMode::overwrite);
    CHECK(ctx.conv_algo_cache().size() == 2);
}

GPU_TEST_CASE("cuda deterministic mode: repeated runs are bitwise equal") {
    auto run = [] {
        Context ctx(Device::cuda, 7, /*deterministic=*/true);
        const ConvGeometry g{1, 1, 1, 1, 1};
        Tensor x = random_tensor(Shape{8, 16, 16, 16}, Device::cuda, 11);
        Tensor w = random_tensor(Shape{32, 16, 3, 3}, Device::cuda, 12);
        Tensor dy = random_tensor(Shape{8, 32, 16, 16}, Device::cuda, 13);
        Tensor dx(x.shape(), Device::cuda), dw(w.shape(), Device::cuda), db(Shape{32}, Device::cuda);
        conv2d_backward_data(ctx, dy, w, g, dx, GradMode::overwrite);
        conv2d_backward_weight(ctx, x, dy, g, dw, GradMode::overwrite);
        channel_sum(ctx, dy, db, GradMode::overwrite);
        Tensor gamma_(Shape{16}, Device::cuda), beta_(Shape{16}, Device::cuda);
        gamma_.fill(1.0f);
        Tensor rm(Shape{16}, Device::cuda), rv(Shape{16}, Device::cuda), sm(Shape{16}, Device::cuda),
            si(Shape{16}, Device::cuda), y(x.shape(), Device::cuda), dgx(x.shape(), Device::cuda),
            dg(Shape{16}, Device::cuda), dbt(Shape{16}, Device::cuda);
        batchnorm_forward_train(ctx, x, gamma_, beta_, rm, rv, 0.1f, 1e-5f, y, sm, si);
        batchnorm_backward(ctx, x, y, gamma_, sm, si, dgx, dg, dbt, GradMode::overwrite);
        const PoolGeometry pg{PoolKind::max, 3, 3, 1, 1, 1, 1};  // overlapping windows
        Tensor py(x.shape(), Device::cuda), pdx(x.shape(), Device::cuda);
        pool2d_forward(ctx, pg, x, py);
        pool2d_backward(ctx, pg, x, py, x, pdx, GradMode::overwrite);
        ctx.synchronize();
        std::vector<std::vector<float>> out;
        for (const Tensor* t : {&dx, &dw, &db, &y, &dgx, &dg, &dbt, &pdx}) out.push_back(t->to_host());
        return out;
    };
    auto first = run(), second = run();
    REQUIRE(first.size() == second.size());
    for (size_t i = 0; i < first.size(); ++i) {
        REQUIRE(first[i].size() == second[i].size());
        CHECK_MESSAGE(std::memcmp(first[i].data(), second[i].data(), first[i].size() * sizeof(float)) == 0,
                      "output " << i << " differs between two deterministic runs");
    }
}

// ---------------------------------------------------------------- linear and bias

GPU_TEST_CASE("cuda linear: forward and backward (both grad modes) match the CPU") {
    const int64_t n = 7, in_f = 33, out_f = 13;
    for (GradMode mode : {GradMode::overwrite, GradMode::accumulate}) {
        const bool acc = mode == GradMode::accumulate;
        Tensor x = random_tensor(Shape{n, in_f}, Device::cpu, 200);
        Tensor w = random_tensor(Shape{out_f, in_f}, Device::cpu, 201);
        Tensor b = random_tensor(Shape{out_f}, Device::cpu, 202);
        Tensor dy = random_tensor(Shape{n, out_f}, Device::cpu, 203);
        Tensor dx0 = random_tensor(x.shape(), Device::cpu, 204);
        Tensor dw0 = random_tensor(w.shape(), Device::cpu, 205);
        OpRunner op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>& o) {
            linear_forward(ctx, i[0], i[1], &i[2], o[0]);
            linear_forward(ctx, i[0], i[1], nullptr, o[1]);
            o[2].copy_from(i[4]);
            o[3].copy_from(i[5]);
            linear_backward_data(ctx, i[3], i[1], o[2], mode);
            linear_backward_weight(ctx, i[0], i[3], o[3], mode);
        };
        std::vector<Shape> shapes{Shape{n, out_f}, Shape{n, out_f}, x.shape(), w.shape()};
        auto r = run_on_both({&x, &w, &b, &dy, &dx0, &dw0}, shapes, op);
        Tensor ax = abs_of(x), aw = abs_of(w), ab = abs_of(b), ady = abs_of(dy), adx0 = abs_of(dx0), adw0 = abs_of(dw0);
        auto a = run_cpu({&ax, &aw, &ab, &ady, &adx0, &adw0}, shapes, op);
        check_within(r.cuda[0], as_double(r.cpu[0]), scaled(a[0], 2 * gamma(in_f + 1)), "linear y with bias");
        check_within(r.cuda[1], as_double(r.cpu[1]), scaled(a[1], 2 * gamma(in_f)), "linear y without bias");
        check_within(r.cuda[2], as_double(r.cpu[2]), scaled(a[2], 2 * gamma(out_f + acc)), "linear dx");
        check_within(r.cuda[3], as_double(r.cpu[3]), scaled(a[3], 2 * gamma(n + acc)), "linear dw");
    }
}

GPU_TEST_CASE("cuda channel_sum: conv and linear bias gradients, both grad modes") {
    for (const Shape& s : {Shape{4, 6, 5, 7}, Shape{9, 11}, Shape{2, 3, 40, 40}}) {
        for (GradMode mode : {GradMode::overwrite, GradMode::accumulate}) {
            Tensor dy = random_tensor(s, Device::cpu, 300);
            Tensor db0 = random_tensor(Shape{s[1]}, Device::cpu, 301);
            OpRunner op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>& o) {
                o[0].copy_from(i[1]);
                channel_sum(ctx, i[0], o[0], mode);
            };
            auto r = run_on_both({&dy, &db0}, {Shape{s[1]}}, op);
            Tensor ady = abs_of(dy), adb0 = abs_of(db0);
            auto a = run_cpu({&ady, &adb0}, {Shape{s[1]}}, op);
            const int64_t len = s.numel() / s[1] + (mode == GradMode::accumulate ? 1 : 0);
            check_within(r.cuda[0], as_double(r.cpu[0]), scaled(a[0], 2 * gamma(len)),
                         "channel_sum " + s.str());
        }
    }
}

// ---------------------------------------------------------------- batch norm

GPU_TEST_CASE("cuda batchnorm: training forward, eval forward and backward match the CPU") {
    const int64_t n = 4, c = 5, h = 6, w = 7, m = n * h * w;
    const float momentum = 0.1f, eps = 1e-5f;
    Tensor x = random_tensor(Shape{n, c, h, w}, Device::cpu, 400, -2.0f, 3.0f);
    Tensor gam = random_tensor(Shape{c}, Device::cpu, 401, 0.5f, 1.5f);
    Tensor bet = random_tensor(Shape{c}, Device::cpu, 402);
    Tensor rm0 = random_tensor(Shape{c}, Device::cpu, 403);
    Tensor rv0 = random_tensor(Shape{c}, Device::cpu, 404, 0.5f, 2.0f);
    Tensor dy = random_tensor(x.shape(), Device::cpu, 405);
    for (GradMode mode : {GradMode::overwrite, GradMode::accumulate}) {
        const bool acc = mode == GradMode::accumulate;
        Tensor dg0 = random_tensor(Shape{c}, Device::cpu, 406), db0 = random_tensor(Shape{c}, Device::cpu, 407);
        // outputs: y, running_mean, running_var, saved_mean, saved_invstd, y_eval, dx, dgamma, dbeta
        OpRunner op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>& o) {
            o[1].copy_from(i[3]);
            o[2].copy_from(i[4]);
            batchnorm_forward_train(ctx, i[0], i[1], i[2], o[1], o[2], momentum, eps, o[0], o[3], o[4]);
            batchnorm_forward_eval(ctx, i[0], i[1], i[2], i[3], i[4], eps, o[5]);
            o[7].copy_from(i[6]);
            o[8].copy_from(i[7]);
            batchnorm_backward(ctx, i[0], i[5], i[1], o[3], o[4], o[6], o[7], o[8], mode);
        };
        const Shape xs = x.shape(), cs{c};
        auto r = run_on_both({&x, &gam, &bet, &rm0, &rv0, &dy, &dg0, &db0}, {xs, cs, cs, cs, cs, xs, xs, cs, cs}, op);

        // Bounds from the CPU's statistics (in double), per channel.
        auto xv = x.to_host(), gv = gam.to_host(), bv = bet.to_host(), dyv = dy.to_host();
        auto rm0v = rm0.to_host(), rv0v = rv0.to_host(), dg0v = dg0.to_host(), db0v = db0.to_host();
        const auto &mean = r.cpu[3], &invstd = r.cpu[4];
        std::vector<double> by(x.numel()), bdx(x.numel()), bye(x.numel());
        std::vector<double> bmean(c), binv(c), brm(c), brv(c), bdg(c), bdb(c);
        for (int64_t ch = 0; ch < c; ++ch) {
            double s1 = 0, s2 = 0, sdy = 0, sdyx = 0;
            auto at = [&](int64_t ni, int64_t si) { return (ni * c + ch) * h * w + si; };
            for (int64_t ni = 0; ni < n; ++ni)
                for (int64_t si = 0; si < h * w; ++si) {
                    double v = xv[at(ni, si)], xh = (v - mean[ch]) * invstd[ch];
                    s1 += std::fabs(v);
                    s2 += v * v;
                    sdy += std::fabs(dyv[at(ni, si)]);
                    sdyx += std::fabs(dyv[at(ni, si)] * xh);
                }
            const double var = 1.0 / (double(invstd[ch]) * invstd[ch]) - eps;
            const double e_mean = 2 * gamma(m) * s1 / m;
            // Variance by any of the usual formulas (two-pass, Welford, E[x²] - E[x]²).
            const double e_var = 2 * gamma(m + 4) * (s2 / m + 2 * (s1 / m) * (s1 / m)) + 2 * std::fabs(mean[ch]) * e_mean;
            const double rel_inv = 0.5 * e_var / (var + eps) + 8 * u;
            bmean[ch] = e_mean;
            binv[ch] = rel_inv * invstd[ch];
            brm[ch] = momentum * e_mean + 4 * u * ((1 - momentum) * std::fabs(rm0v[ch]) + momentum * std::fabs(mean[ch]));
            brv[ch] = momentum * e_var * m / (m - 1) + 4 * u * ((1 - momentum) * rv0v[ch] + momentum * var * m / (m - 1));
            const double e_dbeta = 2 * gamma(m) * sdy, e_dgamma = 2 * gamma(m + 2) * sdyx;
            bdb[ch] = e_dbeta + (acc ? 2 * u * (std::fabs(db0v[ch]) + sdy) : 0.0);
            bdg[ch] = e_dgamma + (acc ? 2 * u * (std::fabs(dg0v[ch]) + sdyx) : 0.0);
            // Eval: y = gamma (x - rm) / sqrt(rv + eps) + beta, a handful of roundings.
            const double inv_eval = 1.0 / std::sqrt(double(rv0v[ch]) + eps);
            for (int64_t ni = 0; ni < n; ++ni)
                for (int64_t si = 0; si < h * w; ++si) {
                    const int64_t i = at(ni, si);
                    const double d = std::fabs(xv[i] - mean[ch]), xh = d * invstd[ch];
                    by[i] = 2 * std::fabs(gv[ch]) * invstd[ch] * (e_mean + d * rel_inv) +
                            8 * u * (std::fabs(gv[ch]) * xh + std::fabs(bv[ch]));
                    bye[i] = 16 * u * (std::fabs(gv[ch]) * (std::fabs(xv[i]) + std::fabs(rm0v[ch])) * inv_eval +
                                       std::fabs(bv[ch]));
                    // dx = gamma invstd / M (M dy - dbeta - xhat dgamma), dbeta/dgamma summed above
                    // from the same saved statistics on both backends.
                    const double terms = m * std::fabs(dyv[i]) + sdy + xh * sdyx;
                    bdx[i] = std::fabs(gv[ch]) * invstd[ch] / m * (e_dbeta + xh * e_dgamma + 16 * u * terms);
                }
        }
        check_within(r.cuda[0], as_double(r.cpu[0]), by, "bn train y");
        check_within(r.cuda[1], as_double(r.cpu[1]), brm, "bn running_mean");
        check_within(r.cuda[2], as_double(r.cpu[2]), brv, "bn running_var (unbiased)");
        check_within(r.cuda[3], as_double(r.cpu[3]), bmean, "bn saved_mean");
        check_within(r.cuda[4], as_double(r.cpu[4]), binv, "bn saved_invstd");
        check_within(r.cuda[5], as_double(r.cpu[5]), bye, "bn eval y");
        check_within(r.cuda[6], as_double(r.cpu[6]), bdx, "bn dx");
        check_within(r.cuda[7], as_double(r.cpu[7]), bdg, "bn dgamma");
        check_within(r.cuda[8], as_double(r.cpu[8]), bdb, "bn dbeta");
    }
}

GPU_TEST_CASE("cuda batchnorm: eps below cuDNN's minimum is refused") {
    // CUDNN_BN_MIN_EPSILON is 0 in cuDNN 9: the public op already requires eps > 0, so call the
    // backend directly with a negative eps.
    Context ctx(Device::cuda);
    Tensor x = random_tensor(Shape{2, 3, 4, 4}, Device::cuda, 1);
    Tensor p(Shape{3}, Device::cuda), y(x.shape(), Device::cuda);
    Tensor a(Shape{3}, Device::cuda), b(Shape{3}, Device::cuda), s(Shape{3}, Device::cuda), t(Shape{3}, Device::cuda);
    CHECK_THROWS_AS(cuda::batchnorm_forward_eval(ctx, x, p, p, a, b, -1.0f, y), Error);
    CHECK_THROWS_AS(cuda::batchnorm_forward_train(ctx, x, p, p, a, b, 0.1f, -1.0f, y, s, t), Error);
}

// ---------------------------------------------------------------- elementwise

GPU_TEST_CASE("cuda elementwise: relu, add, axpy, multiply, scale_channels") {
    const Shape s{3, 5, 7, 9};
    Tensor a = random_tensor(s, Device::cpu, 500), b = random_tensor(s, Device::cpu, 501);
    Tensor mask = random_tensor(Shape{5}, Device::cpu, 502);
    Tensor dx0 = random_tensor(s, Device::cpu, 503);
    // outputs: relu(a), relu_backward overwrite, relu_backward accumulate, a + b, b + 0.37 a, a ⊙ b, scaled
    OpRunner op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>& o) {
        relu_forward(ctx, i[0], o[0]);
        relu_backward(ctx, o[0], i[1], o[1], GradMode::overwrite);
        o[2].copy_from(i[3]);
        relu_backward(ctx, o[0], i[1], o[2], GradMode::accumulate);
        add(ctx, i[0], i[1], o[3]);
        o[4].copy_from(i[1]);
        axpy(ctx, 0.37f, i[0], o[4]);
        multiply(ctx, i[0], i[1], o[5]);
        scale_channels(ctx, i[0], i[2], o[6]);
    };
    auto r = run_on_both({&a, &b, &mask, &dx0}, std::vector<Shape>(7, s), op);
    // relu and relu_backward overwrite select values: exact.
    check_within(r.cuda[0], as_double(r.cpu[0]), 0.0, "relu forward");
    check_within(r.cuda[1], as_double(r.cpu[1]), 0.0, "relu backward");
    // One rounding each: both round the same exact value correctly, so equal.
    check_within(r.cuda[2], as_double(r.cpu[2]), 0.0, "relu backward accumulate");
    check_within(r.cuda[3], as_double(r.cpu[3]), 0.0, "add");
    check_within(r.cuda[5], as_double(r.cpu[5]), 0.0, "multiply");
    check_within(r.cuda[6], as_double(r.cpu[6]), 0.0, "scale_channels");
    // axpy: two roundings (or one with an FMA on either side): within 2u of |y| + |alpha x|.
    auto av = a.to_host(), bv = b.to_host();
    std::vector<double> bound(av.size());
    for (size_t i = 0; i < av.size(); ++i) bound[i] = 2 * u * (std::fabs(bv[i]) + 0.37 * std::fabs(av[i]));
    check_within(r.cuda[4], as_double(r.cpu[4]), bound, "axpy");
}

GPU_TEST_CASE("cuda axpy over more than 2^31 elements reaches both sides of index 2^31") {
    // Windows of distinct values at the start, around index 2^31 and at the end, with room
    // between them (the end window starts 1.5 windows after the middle one ends).
    const int64_t window = 4096;
    const int64_t n = (int64_t{1} << 31) + 3 * window;
    Context ctx(Device::cuda);
    Tensor x(Shape{n}, Device::cuda), y(Shape{n}, Device::cuda);  // ~8.6 GB each
    x.fill(1.0f);
    y.fill(2.0f);
    const std::vector<int64_t> starts{0, (int64_t{1} << 31) - window / 2, n - window};
    std::vector<std::vector<float>> xs, ys;
    for (size_t k = 0; k < starts.size(); ++k) {
        xs.push_back(random_values(window, 600 + k));
        ys.push_back(random_values(window, 700 + k));
        Tensor::view(x.data() + starts[k], Shape{window}, Device::cuda).copy_from(Tensor::from_host(xs[k], Shape{window}, Device::cpu));
        Tensor::view(y.data() + starts[k], Shape{window}, Device::cuda).copy_from(Tensor::from_host(ys[k], Shape{window}, Device::cpu));
    }
    axpy(ctx, 0.5f, x, y);
    ctx.synchronize();
    for (size_t k = 0; k < starts.size(); ++k) {
        auto got = Tensor::view(y.data() + starts[k], Shape{window}, Device::cuda).to_host();
        std::vector<double> expect(window);
        for (int64_t i = 0; i < window; ++i) expect[i] = ys[k][i] + 0.5f * xs[k][i];  // float ops: exact match
        check_within(got, expect, 0.0, "axpy window at " + std::to_string(starts[k]));
    }
    // Elements between the windows: 2 + 0.5 * 1.
    for (int64_t i : {int64_t{1} << 30, (int64_t{1} << 31) + window, n - window - 1}) {
        const bool outside_middle = i >= (int64_t{1} << 31) + window / 2 || i < (int64_t{1} << 31) - window / 2;
        REQUIRE(outside_middle);
        auto v = Tensor::view(y.data() + i, Shape{1}, Device::cuda).to_host();
        CHECK_MESSAGE(v[0] == 2.5f, "y[" << i << "] = " << v[0]);
    }
}

GPU_TEST_CASE("cuda dropout is bit-exact with the CPU (Philox via cuRAND)") {
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{4096 + 3}}) {
        for (float p : {0.0f, 0.3f, 0.9f}) {
            Tensor x = random_tensor(Shape{n}, Device::cpu, 800);
            const uint64_t key = random_stream_key(42, 3, static_cast<uint64_t>(n));
            OpRunner op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>& o) {
                dropout_forward(ctx, i[0], p, key, o[0], o[1]);
            };
            auto r = run_on_both({&x}, {Shape{n}, Shape{n}}, op);
            CHECK_MESSAGE(std::memcmp(r.cuda[0].data(), r.cpu[0].data(), n * sizeof(float)) == 0, "y, n " << n << " p " << p);
            CHECK_MESSAGE(std::memcmp(r.cuda[1].data(), r.cpu[1].data(), n * sizeof(float)) == 0, "mask, n " << n << " p " << p);
            // The mask must actually depend on the uniforms: some dropped at p = 0.9 for large n.
            if (n > 1000 && p > 0.5f) CHECK(std::count(r.cuda[1].begin(), r.cuda[1].end(), 0.0f) > n / 2);
        }
    }
}

GPU_TEST_CASE("cuda concat and option-A shortcut, both grad modes") {
    Tensor a = random_tensor(Shape{2, 3, 5, 4}, Device::cpu, 900), b = random_tensor(Shape{2, 5, 5, 4}, Device::cpu, 901);
    Tensor dy = random_tensor(Shape{2, 8, 5, 4}, Device::cpu, 902);
    Tensor da0 = random_tensor(a.shape(), Device::cpu, 903), db0 = random_tensor(b.shape(), Device::cpu, 904);
    Tensor x = random_tensor(Shape{2, 3, 7, 6}, Device::cpu, 905);
    Tensor sdy = random_tensor(Shape{2, 8, 4, 3}, Device::cpu, 906);
    Tensor sdx0 = random_tensor(x.shape(), Device::cpu, 907);
    for (GradMode mode : {GradMode::overwrite, GradMode::accumulate}) {
        OpRunner op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>& o) {
            concat_channels_forward(ctx, {&i[0], &i[1]}, o[0]);
            o[1].copy_from(i[3]);
            o[2].copy_from(i[4]);
            concat_channels_backward(ctx, i[2], {&o[1], &o[2]}, mode);
            shortcut_forward(ctx, i[5], 2, 3, o[3]);
            o[4].copy_from(i[7]);
            shortcut_backward(ctx, i[6], 2, 3, o[4], mode);
        };
        auto r = run_on_both({&a, &b, &dy, &da0, &db0, &x, &sdy, &sdx0},
                             {dy.shape(), a.shape(), b.shape(), sdy.shape(), x.shape()}, op);
        // Copies, and at most one correctly rounded addition: exact.
        for (size_t k = 0; k < r.cpu.size(); ++k)
            check_within(r.cuda[k], as_double(r.cpu[k]), 0.0, "concat/shortcut output " + std::to_string(k));
    }
}

// ---------------------------------------------------------------- pooling and LRN

GPU_TEST_CASE("cuda pooling: max and average (padding counted), forward and backward") {
    struct PoolCase { PoolGeometry g; Shape x; bool ties; };
    std::vector<PoolCase> cases = {
        {{PoolKind::max, 2, 2, 2, 2, 0, 0}, Shape{2, 3, 8, 8}, false},
        {{PoolKind::max, 3, 3, 2, 2, 1, 1}, Shape{2, 3, 9, 7}, false},  // overlapping windows, padding
        {{PoolKind::max, 3, 3, 1, 1, 1, 1}, Shape{2, 3, 6, 6}, true},   // ties go to the first maximum
        {{PoolKind::average, 2, 2, 2, 2, 0, 0}, Shape{2, 3, 8, 8}, false},
        {{PoolKind::average, 3, 3, 2, 2, 1, 1}, Shape{2, 3, 9, 7}, false},
    };
    uint64_t seed = 1000;
    for (const PoolCase& pc : cases) {
        for (GradMode mode : {GradMode::overwrite, GradMode::accumulate}) {
            const PoolGeometry g = pc.g;
            const Shape ys{pc.x[0], pc.x[1], window_output_size(pc.x[2], g.window_h, g.stride_h, g.pad_h),
                           window_output_size(pc.x[3], g.window_w, g.stride_w, g.pad_w)};
            Tensor x = random_tensor(pc.x, Device::cpu, seed++);
            if (pc.ties) {  // values in {0, 1, 2}: most windows hold several maxima
                auto v = x.to_host();
                for (float& e : v) e = std::floor(1.5f * (e + 1.0f));
                x = Tensor::from_host(v, pc.x, Device::cpu);
            }
            Tensor dy = random_tensor(ys, Device::cpu, seed++);
            Tensor dx0 = random_tensor(pc.x, Device::cpu, seed++);
            // y is computed on the CPU and given to both backward passes, so they route alike.
            Tensor y_cpu(ys, Device::cpu);
            {
                Context c(Device::cpu);
                pool2d_forward(c, g, x, y_cpu);
            }
            OpRunner op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>& o) {
                pool2d_forward(ctx, g, i[0], o[0]);
                o[1].copy_from(i[3]);
                pool2d_backward(ctx, g, i[0], i[1], i[2], o[1], mode);
            };
            auto r = run_on_both({&x, &y_cpu, &dy, &dx0}, {ys, pc.x}, op);
            Tensor ax = abs_of(x), ady = abs_of(dy), adx0 = abs_of(dx0);
            // Σ|terms|: average pooling of |x|; the backward with |dy| (max routing taken from y).
            OpRunner abs_op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>& o) {
                pool2d_forward(ctx, g, i[0], o[0]);
                o[1].copy_from(i[4]);
                pool2d_backward(ctx, g, i[1], i[2], i[3], o[1], mode);
            };
            auto a = run_cpu({&ax, &x, &y_cpu, &ady, &adx0}, {ys, pc.x}, abs_op);
            const int64_t window = g.window_h * g.window_w;
            // Overlapping windows add up to ceil(R/stride) ceil(S/stride) contributions per input.
            const int64_t overlaps = ((g.window_h + g.stride_h - 1) / g.stride_h) * ((g.window_w + g.stride_w - 1) / g.stride_w);
            const std::string name = std::string(g.kind == PoolKind::max ? "max" : "avg") + " pool " + pc.x.str() +
                                     (mode == GradMode::accumulate ? " accumulate" : "");
            if (g.kind == PoolKind::max) check_within(r.cuda[0], as_double(r.cpu[0]), 0.0, name + ": y");
            else check_within(r.cuda[0], as_double(r.cpu[0]), scaled(a[0], 2 * gamma(window + 1)), name + ": y");
            check_within(r.cuda[1], as_double(r.cpu[1]),
                         scaled(a[1], 2 * gamma(overlaps + 2 + (mode == GradMode::accumulate ? 1 : 0))), name + ": dx");
        }
    }
}

GPU_TEST_CASE("cuda global average pooling, forward and backward (planes shorter and longer than a block)") {
    // 35 values per plane: one partial warp's worth per thread; 1320: more values than the 256
    // threads of a block, so each thread sums several before the block reduction.
    for (const Shape& shape : {Shape{3, 4, 7, 5}, Shape{2, 3, 40, 33}}) {
    CAPTURE(shape.str());
    const int64_t inner = shape[2] * shape[3];
    Tensor x = random_tensor(shape, Device::cpu, 1100);
    Tensor dy = random_tensor(Shape{shape[0], shape[1], 1, 1}, Device::cpu, 1101);
    Tensor dx0 = random_tensor(x.shape(), Device::cpu, 1102);
    for (GradMode mode : {GradMode::overwrite, GradMode::accumulate}) {
        OpRunner op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>& o) {
            global_avg_pool_forward(ctx, i[0], o[0]);
            o[1].copy_from(i[2]);
            global_avg_pool_backward(ctx, i[1], o[1], mode);
        };
        auto r = run_on_both({&x, &dy, &dx0}, {dy.shape(), x.shape()}, op);
        Tensor ax = abs_of(x), ady = abs_of(dy), adx0 = abs_of(dx0);
        auto a = run_cpu({&ax, &ady, &adx0}, {dy.shape(), x.shape()}, op);
        check_within(r.cuda[0], as_double(r.cpu[0]), scaled(a[0], 2 * gamma(inner + 1)), "global avg pool y");
        check_within(r.cuda[1], as_double(r.cpu[1]), scaled(a[1], 2 * gamma(3)), "global avg pool dx");
    }
    }
}

GPU_TEST_CASE("cuda LRN (cuDNN) matches PyTorch's formula on the CPU") {
    const Shape s{2, 7, 4, 5};
    const int64_t hw = 20, channels = 7;
    for (const LrnParams& p : {LrnParams{5, 1e-2f, 0.75f, 2.0f}, LrnParams{3, 0.5f, 0.6f, 1.0f}}) {
        for (GradMode mode : {GradMode::overwrite, GradMode::accumulate}) {
            Tensor x = random_tensor(s, Device::cpu, 1200, -2.0f, 2.0f);
            Tensor dy = random_tensor(s, Device::cpu, 1201);
            Tensor dx0 = random_tensor(s, Device::cpu, 1202);
            Tensor y_cpu(s, Device::cpu);
            {
                Context c(Device::cpu);
                lrn_forward(c, p, x, y_cpu);
            }
            OpRunner op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>& o) {
                lrn_forward(ctx, p, i[0], o[0]);
                o[1].copy_from(i[3]);
                lrn_backward(ctx, p, i[0], i[1], i[2], o[1], mode);
            };
            auto r = run_on_both({&x, &y_cpu, &dy, &dx0}, {s, s}, op);
            // Bounds in double: scale_c = k + alpha/size Σ x², y = x scale^-beta,
            // dx = dy scale^-beta - 2 alpha beta / size x Σ_window dy y / scale. pow and exp may be
            // off by a few ulps (CUDA's powf: 4 ulp): 16u per term on top of the sums' gamma.
            auto xv = x.to_host(), yv = y_cpu.to_host(), dyv = dy.to_host(), dx0v = dx0.to_host();
            std::vector<double> scale(xv.size()), by(xv.size()), bdx(xv.size());
            const int64_t half = p.size / 2;
            auto idx = [&](int64_t n, int64_t c, int64_t q) { return (n * channels + c) * hw + q; };
            for (int64_t n = 0; n < 2; ++n)
                for (int64_t c = 0; c < channels; ++c)
                    for (int64_t q = 0; q < hw; ++q) {
                        double sum = 0;
                        for (int64_t j = std::max<int64_t>(0, c - half); j <= std::min(channels - 1, c + half); ++j)
                            sum += double(xv[idx(n, j, q)]) * xv[idx(n, j, q)];
                        scale[idx(n, c, q)] = p.k + p.alpha / p.size * sum;
                    }
            const double e_sum = gamma(p.size + 2) + 16 * u;
            for (int64_t n = 0; n < 2; ++n)
                for (int64_t c = 0; c < channels; ++c)
                    for (int64_t q = 0; q < hw; ++q) {
                        const int64_t i = idx(n, c, q);
                        const double direct = std::fabs(xv[i]) * std::pow(scale[i], -double(p.beta));
                        by[i] = 2 * direct * (p.beta * e_sum + 16 * u);
                        double cross = 0;
                        for (int64_t j = std::max<int64_t>(0, c - half); j <= std::min(channels - 1, c + half); ++j)
                            cross += std::fabs(dyv[idx(n, j, q)] * yv[idx(n, j, q)]) / scale[idx(n, j, q)];
                        const double terms = std::fabs(dyv[i]) * std::pow(scale[i], -double(p.beta)) +
                                             2.0 * p.alpha * p.beta / p.size * std::fabs(xv[i]) * cross +
                                             (mode == GradMode::accumulate ? std::fabs(dx0v[i]) : 0.0);
                        bdx[i] = 2 * terms * (p.beta * e_sum + gamma(p.size + 3) + 16 * u);
                    }
            check_within(r.cuda[0], as_double(r.cpu[0]), by, "lrn y, size " + std::to_string(p.size));
            check_within(r.cuda[1], as_double(r.cpu[1]), bdx, "lrn dx, size " + std::to_string(p.size));
        }
    }
}

// ---------------------------------------------------------------- loss and metrics

GPU_TEST_CASE("cuda softmax cross-entropy: loss and gradient, with and without label smoothing") {
    const int64_t n = 37, k = 10;
    for (float smoothing : {0.0f, 0.1f}) {
        Tensor logits = random_tensor(Shape{n, k}, Device::cpu, 1300, -4.0f, 4.0f);
        std::vector<float> lv(n);
        for (int64_t i = 0; i < n; ++i) lv[i] = static_cast<float>((i * 7 + 3) % k);
        Tensor labels = Tensor::from_host(lv, Shape{n}, Device::cpu);
        float loss_cpu = 0, loss_cuda = 0;
        OpRunner op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>& o) {
            float l = softmax_cross_entropy(ctx, i[0], i[1], smoothing, &o[0]);
            (ctx.device() == Device::cpu ? loss_cpu : loss_cuda) = l;
        };
        auto r = run_on_both({&logits, &labels}, {logits.shape()}, op);
        // Bounds: per row, log S with S = Σ exp(z - max) (K terms, exp a few ulps), minus
        // Σ t_j (z_j - max) (K + 1 terms); the mean over N rows adds gamma(N) Σ|row|.
        auto z = logits.to_host();
        double row_err_sum = 0, row_abs_sum = 0;
        std::vector<double> bound(z.size());
        for (int64_t i = 0; i < n; ++i) {
            double m = *std::max_element(z.begin() + i * k, z.begin() + (i + 1) * k), s = 0, shifted = 0;
            for (int64_t j = 0; j < k; ++j) { s += std::exp(z[i * k + j] - m); shifted += std::fabs(z[i * k + j] - m); }
            const double target_terms = (1 - smoothing) * std::fabs(z[i * k + lv[i]] - m) + smoothing / k * shifted;
            const double row = std::log(s) + target_terms;  // ≥ |row loss|
            row_err_sum += gamma(k + 4) + 8 * u + u * std::fabs(std::log(s)) + gamma(k + 4) * target_terms;
            row_abs_sum += row;
            for (int64_t j = 0; j < k; ++j) {
                const double pj = std::exp(z[i * k + j] - m) / s;
                const double tj = smoothing / k + (j == lv[i] ? 1 - smoothing : 0.0);
                bound[i * k + j] = 2 * ((pj * (gamma(k) + 8 * u) + 3 * u * std::fabs(pj - tj)) / n + u * std::fabs(pj - tj) / n);
            }
        }
        const double loss_bound = 2 * (row_err_sum / n + gamma(n + 1) * row_abs_sum / n);
        CHECK_MESSAGE(std::fabs(double(loss_cuda) - loss_cpu) <= loss_bound,
                      "loss cuda " << loss_cuda << " cpu " << loss_cpu << " bound " << loss_bound);
        check_within(r.cuda[0], as_double(r.cpu[0]), bound, "dlogits");
    }
}

GPU_TEST_CASE("cuda softmax cross-entropy and top-k reject invalid labels, naming the row") {
    Context ctx(Device::cuda);
    Tensor logits = random_tensor(Shape{6, 4}, Device::cuda, 1);
    for (float bad : {4.0f, -1.0f, 1.5f}) {
        std::vector<float> lv{0, 1, 2, 3, 0, 1};
        lv[3] = bad;
        Tensor labels = Tensor::from_host(lv, Shape{6}, Device::cuda);
        CHECK_THROWS_WITH_AS(softmax_cross_entropy(ctx, logits, labels, 0.0f, nullptr), doctest::Contains("row 3"), Error);
        CHECK_THROWS_WITH_AS(topk_correct(ctx, logits, labels, 1), doctest::Contains("row 3"), Error);
    }
}

GPU_TEST_CASE("cuda top-k correct counts, ties counting against the label") {
    const int64_t n = 300, k_classes = 7;
    // Logits in a small integer range so that ties with the label's logit are common.
    auto zv = random_values(n * k_classes, 1400, 0.0f, 4.0f);
    for (float& v : zv) v = std::floor(v);
    std::vector<float> lv(n);
    for (int64_t i = 0; i < n; ++i) lv[i] = static_cast<float>((i * 5 + 1) % k_classes);
    Tensor logits = Tensor::from_host(zv, Shape{n, k_classes}, Device::cpu);
    Tensor labels = Tensor::from_host(lv, Shape{n}, Device::cpu);
    for (int k : {1, 3, 7}) {
        int64_t got[2] = {-1, -1};
        OpRunner op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>&) {
            got[ctx.device() == Device::cpu ? 0 : 1] = topk_correct(ctx, i[0], i[1], k);
        };
        run_on_both({&logits, &labels}, {}, op);
        CHECK_MESSAGE(got[1] == got[0], "k " << k << ": cuda " << got[1] << ", cpu " << got[0]);
        if (k == k_classes) CHECK(got[1] == n);  // every label is in the top K of K
    }
}

// ---------------------------------------------------------------- optimizers

GPU_TEST_CASE("cuda optimizer updates: SGD (plain, momentum, Nesterov), Adam, Adadelta") {
    const int64_t n = 1000;
    Tensor p = random_tensor(Shape{n}, Device::cpu, 1500), g = random_tensor(Shape{n}, Device::cpu, 1501);
    Tensor s1 = random_tensor(Shape{n}, Device::cpu, 1502), s2 = random_tensor(Shape{n}, Device::cpu, 1503, 0.0f, 1.0f);
    auto pv = p.to_host(), gv = g.to_host(), s1v = s1.to_host(), s2v = s2.to_host();
    const Shape s{n};

    // Each update is a few roundings per element (the GPU may fuse a*b+c): bounds are 8u of
    // the magnitudes that enter the final sum, with the state's bound carried into it.
    for (int variant = 0; variant < 4; ++variant) {
        SgdHyper h;
        h.lr = 0.05f;
        h.weight_decay = 1e-3f;
        h.momentum = variant == 0 ? 0.0f : 0.9f;
        h.nesterov = variant == 3;
        h.first_step = variant == 1;
        OpRunner op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>& o) {
            o[0].copy_from(i[0]);
            o[1].copy_from(i[2]);
            sgd_update(ctx, o[0], i[1], o[1], h);
        };
        auto r = run_on_both({&p, &g, &s1}, {s, s}, op);
        std::vector<double> bp(n), bv(n);
        for (int64_t i = 0; i < n; ++i) {
            const double gr = std::fabs(gv[i]) + h.weight_decay * std::fabs(pv[i]);
            const double v = h.momentum * std::fabs(s1v[i]) + gr;
            bv[i] = 8 * u * v;
            const double step = h.momentum == 0 ? gr : (h.nesterov ? gr + h.momentum * v : v);
            bp[i] = 8 * u * (std::fabs(pv[i]) + h.lr * step) + h.lr * (1 + h.momentum) * bv[i];
        }
        check_within(r.cuda[0], as_double(r.cpu[0]), bp, "sgd params, variant " + std::to_string(variant));
        if (h.momentum != 0) check_within(r.cuda[1], as_double(r.cpu[1]), bv, "sgd velocity, variant " + std::to_string(variant));
    }
    {
        AdamHyper h;
        h.lr = 1e-2f;
        h.weight_decay = 1e-2f;
        const int64_t step = 3;
        OpRunner op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>& o) {
            o[0].copy_from(i[0]);
            o[1].copy_from(i[2]);
            o[2].copy_from(i[3]);
            adam_update(ctx, o[0], i[1], o[1], o[2], h, step);
        };
        // exp_avg_sq must be non-negative: s2 ∈ [0, 1), scaled into a plausible range.
        auto r = run_on_both({&p, &g, &s1, &s2}, {s, s, s}, op);
        const double bc1 = 1 - std::pow(double(h.beta1), step), bc2 = 1 - std::pow(double(h.beta2), step);
        std::vector<double> bp(n), bm(n), bv(n);
        for (int64_t i = 0; i < n; ++i) {
            const double gr = std::fabs(gv[i]) + h.weight_decay * std::fabs(pv[i]);
            const double m = h.beta1 * std::fabs(s1v[i]) + (1 - h.beta1) * gr;
            const double v = h.beta2 * s2v[i] + (1 - h.beta2) * gr * gr;
            bm[i] = 8 * u * m;
            bv[i] = 8 * u * v;
            const double denom = std::sqrt(v) / std::sqrt(bc2) + h.eps;
            const double update = h.lr / bc1 * m / denom;
            // relative error of m / denom: m's bound, plus half of v's (square root), plus 8u
            bp[i] = 8 * u * std::fabs(pv[i]) + update * (8 * u + bm[i] / std::max(m, 1e-30) + 0.5 * 8 * u + 8 * u);
        }
        check_within(r.cuda[0], as_double(r.cpu[0]), bp, "adam params");
        check_within(r.cuda[1], as_double(r.cpu[1]), bm, "adam exp_avg");
        check_within(r.cuda[2], as_double(r.cpu[2]), bv, "adam exp_avg_sq");
    }
    {
        AdadeltaHyper h;
        h.weight_decay = 1e-2f;
        OpRunner op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>& o) {
            o[0].copy_from(i[0]);
            o[1].copy_from(i[3]);
            o[2].copy_from(i[3]);
            adadelta_update(ctx, o[0], i[1], o[1], o[2], h);
        };
        auto r = run_on_both({&p, &g, &s1, &s2}, {s, s, s}, op);
        std::vector<double> bp(n), bsq(n), bacc(n);
        for (int64_t i = 0; i < n; ++i) {
            const double gr = std::fabs(gv[i]) + h.weight_decay * std::fabs(pv[i]);
            const double sq = h.rho * s2v[i] + (1 - h.rho) * gr * gr;
            const double d = std::sqrt(s2v[i] + h.eps) / std::sqrt(sq + h.eps) * gr;
            // relative error of d: g (3u), sq (8u, halved by the root, over sq + eps), roots and division
            const double rel_d = 3 * u + 0.5 * 8 * u * sq / (sq + h.eps) + 8 * u;
            bsq[i] = 8 * u * sq;
            bacc[i] = 8 * u * (h.rho * s2v[i] + (1 - h.rho) * d * d) + (1 - h.rho) * 2 * rel_d * d * d;
            bp[i] = 8 * u * (std::fabs(pv[i]) + h.lr * d) + h.lr * rel_d * d;
        }
        check_within(r.cuda[0], as_double(r.cpu[0]), bp, "adadelta params");
        check_within(r.cuda[1], as_double(r.cpu[1]), bsq, "adadelta square_avg");
        check_within(r.cuda[2], as_double(r.cpu[2]), bacc, "adadelta acc_delta");
    }
}

// ---------------------------------------------------------------- without a GPU

TEST_CASE("philox_block is cuRAND's Philox4x32-10: block b is subsequence b of cuRAND's stream") {
    // cuRAND's host generator (it runs on the CPU) emits its first 2^16 blocks as subsequences
    // 0, 1, ... at offset 0: what curand_init(key, b, 0) + curand4 gives in a kernel, and what
    // both our backends compute with philox_block (the kernels call it on the device).
    for (uint64_t key : {uint64_t{0}, uint64_t{0x0123456789abcdefull}, random_stream_key(7, 8, 9)}) {
        CAPTURE(key);
        curandGenerator_t gen = nullptr;
        SP_CHECK(curandCreateGeneratorHost(&gen, CURAND_RNG_PSEUDO_PHILOX4_32_10));
        SP_CHECK(curandSetPseudoRandomGeneratorSeed(gen, key));
        const size_t n = 4 * 4096;
        std::vector<uint32_t> bits(n);
        std::vector<float> uniforms(n);
        SP_CHECK(curandGenerate(gen, bits.data(), n));
        SP_CHECK(curandSetGeneratorOffset(gen, 0));
        SP_CHECK(curandGenerateUniform(gen, uniforms.data(), n));
        curandDestroyGenerator(gen);
        size_t differ = 0, differ_uniform = 0;
        for (size_t i = 0; i < n; ++i) {
            differ += philox_output(philox_block(key, i / 4), i % 4) != bits[i];
            differ_uniform += stream_uniform(key, i) != uniforms[i];
        }
        CHECK(differ == 0);
        CHECK(differ_uniform == 0);
    }
}

// cuDNN perf entries as the heuristics report them.
cudnnConvolutionFwdAlgoPerf_t perf(cudnnConvolutionFwdAlgo_t algo, cudnnMathType_t math,
                                   cudnnStatus_t status = CUDNN_STATUS_SUCCESS,
                                   cudnnDeterminism_t det = CUDNN_DETERMINISTIC) {
    cudnnConvolutionFwdAlgoPerf_t p{};
    p.algo = algo;
    p.status = status;
    p.mathType = math;
    p.determinism = det;
    return p;
}

TEST_CASE("conv algorithms: candidates keep cuDNN's order, drop failed, transform-based and (when asked) non-deterministic ones") {
    const cudnnConvolutionFwdAlgoPerf_t list[] = {
        perf(CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, CUDNN_TENSOR_OP_MATH),
        perf(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION),
        perf(CUDNN_CONVOLUTION_FWD_ALGO_GEMM, CUDNN_DEFAULT_MATH, CUDNN_STATUS_NOT_SUPPORTED),
        perf(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, CUDNN_DEFAULT_MATH, CUDNN_STATUS_SUCCESS, CUDNN_NON_DETERMINISTIC),
        perf(CUDNN_CONVOLUTION_FWD_ALGO_FFT, CUDNN_DEFAULT_MATH),
        perf(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_DEFAULT_MATH),
    };
    // TF32: each candidate with the math type it was ranked under.
    auto tf32 = cuda::conv_candidates(list, 6, false, MathMode::tf32);
    REQUIRE(tf32.size() == 3);
    CHECK(tf32[0].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
    CHECK(tf32[0].math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION);
    CHECK(tf32[1].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM);
    CHECK(tf32[2].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
    CHECK(tf32[2].math == CUDNN_DEFAULT_MATH);
    // Deterministic mode drops the non-deterministic entry.
    auto det = cuda::conv_candidates(list, 6, true, MathMode::tf32);
    REQUIRE(det.size() == 2);
    CHECK(det[1].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
    // FP32: every candidate runs in FMA math (no TF32 conversion), so an algorithm listed under
    // two math types is one candidate.
    auto fp32 = cuda::conv_candidates(list, 6, false, MathMode::fp32);
    REQUIRE(fp32.size() == 2);
    for (const ConvChoice& c : fp32) CHECK(c.math == CUDNN_FMA_MATH);
    CHECK(fp32[0].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
    CHECK(fp32[1].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM);
}

TEST_CASE("conv algorithms: a failing candidate falls back to the next; what ran is kept; all failing is an error") {
    ConvDirection dir;
    dir.candidates = {ConvChoice{1, 0}, ConvChoice{2, 0}, ConvChoice{3, 0}};
    std::vector<int> tried;
    auto attempt = [&](cudnnStatus_t for_1, cudnnStatus_t for_2, cudnnStatus_t for_3) {
        return [&tried, for_1, for_2, for_3](ConvChoice& c) {
            tried.push_back(c.algo);
            return c.algo == 1 ? for_1 : c.algo == 2 ? for_2 : for_3;
        };
    };
    cuda::run_first_working(dir, "forward",
                            attempt(CUDNN_STATUS_NOT_SUPPORTED, CUDNN_STATUS_SUCCESS, CUDNN_STATUS_SUCCESS));
    CHECK(tried == std::vector<int>{1, 2});
    CHECK(dir.choice().algo == 2);
    CHECK(dir.confirmed);
    // The confirmed candidate runs first next time; its later failure is an error, not a switch.
    tried.clear();
    cuda::run_first_working(dir, "forward", attempt(CUDNN_STATUS_SUCCESS, CUDNN_STATUS_SUCCESS, CUDNN_STATUS_SUCCESS));
    CHECK(tried == std::vector<int>{2});
    CHECK_THROWS_WITH_AS(cuda::run_first_working(dir, "forward", attempt(CUDNN_STATUS_SUCCESS, CUDNN_STATUS_EXECUTION_FAILED,
                                                                         CUDNN_STATUS_SUCCESS)),
                         doctest::Contains("algorithm 2 with math type 0"), Error);
    CHECK(dir.choice().algo == 2);
    // Every candidate failing: an error listing each, with cuDNN's status names.
    ConvDirection none;
    none.candidates = {ConvChoice{1, 0}, ConvChoice{3, 0}};
    const std::string message = error_of([&] {
        cuda::run_first_working(none, "backward-data", attempt(CUDNN_STATUS_NOT_SUPPORTED, CUDNN_STATUS_SUCCESS,
                                                               CUDNN_STATUS_BAD_PARAM));
    });
    CHECK(message.find("conv2d backward-data") != std::string::npos);
    CHECK(message.find("algorithm 1 with math type 0: CUDNN_STATUS_NOT_SUPPORTED") != std::string::npos);
    CHECK(message.find("algorithm 3 with math type 0: CUDNN_STATUS_BAD_PARAM") != std::string::npos);
    ConvDirection empty;
    CHECK(error_of([&] { cuda::run_first_working(empty, "forward", attempt(CUDNN_STATUS_SUCCESS, CUDNN_STATUS_SUCCESS,
                                                                           CUDNN_STATUS_SUCCESS)); })
              .find("no usable forward algorithm") != std::string::npos);
}

NO_GPU_TEST_CASE("a CUDA context without a GPU is a clear sp::Error") {
    auto make_context = [] { Context ctx(Device::cuda); };
    CHECK_THROWS_WITH_AS(make_context(), doctest::Contains("no usable GPU"), Error);
    auto make_tensor = [] { Tensor t(Shape{4}, Device::cuda); };
    CHECK_THROWS_AS(make_tensor(), Error);
}

}  // namespace
}  // namespace sp::test

namespace sp::test {

GPU_TEST_CASE("cuda population ops: scale_channels (P, C), slice_columns, repeat_elements, swap_leading_axes, member_energies") {
    const int64_t members = 4, per = 3, c = 5;
    Tensor x = random_tensor(Shape{members * per, c, 6, 7}, Device::cpu, 950);
    Tensor mask = random_tensor(Shape{members, c}, Device::cpu, 951);
    Tensor src = random_tensor(Shape{7, 300}, Device::cpu, 952);
    Tensor few = random_tensor(Shape{40}, Device::cpu, 953);
    Tensor logits = random_tensor(Shape{members * 33, 10}, Device::cpu, 954, -4.0f, 4.0f);
    std::vector<float> lab(static_cast<size_t>(members * 33));
    for (size_t i = 0; i < lab.size(); ++i) lab[i] = static_cast<float>((i * 3) % 10);
    Tensor labels = Tensor::from_host(lab, Shape{members * 33}, Device::cpu);
    OpRunner op = [&](Context& ctx, std::vector<Tensor>& i, std::vector<Tensor>& o) {
        scale_channels(ctx, i[0], i[1], o[0]);
        slice_columns(ctx, i[2], 123, o[1]);
        repeat_elements(ctx, i[3], 9, o[2]);
        member_energies(ctx, i[4], i[5], EnergyKind::cross_entropy, o[3]);
        member_energies(ctx, i[4], i[5], EnergyKind::margin, o[4]);
        member_energies(ctx, i[4], i[5], EnergyKind::error, o[5]);
        swap_leading_axes(ctx, i[0], members, per, o[6]);  // (P, B, C·H·W) -> (B, P, C·H·W)
    };
    auto r = run_on_both({&x, &mask, &src, &few, &logits, &labels},
                         {x.shape(), Shape{7, 100}, Shape{40, 9}, Shape{members}, Shape{members}, Shape{members},
                          Shape{per, members * c, 6, 7}},
                         op);
    check_within(r.cuda[6], as_double(r.cpu[6]), 0.0, "swap_leading_axes");
    check_within(r.cuda[0], as_double(r.cpu[0]), 0.0, "scale_channels (P, C)");  // one correctly rounded product
    check_within(r.cuda[1], as_double(r.cpu[1]), 0.0, "slice_columns");
    check_within(r.cuda[2], as_double(r.cpu[2]), 0.0, "repeat_elements");
    // Rows in double summed in the same order; only exp/log (CE) may differ in the last double
    // bits, so the float results are within one rounding: u |E|. Margin and error are exact.
    std::vector<double> ce_bound(static_cast<size_t>(members));
    for (size_t i = 0; i < ce_bound.size(); ++i) ce_bound[i] = 2 * u * std::fabs(r.cpu[3][i]);
    check_within(r.cuda[3], as_double(r.cpu[3]), ce_bound, "member_energies cross-entropy");
    check_within(r.cuda[4], as_double(r.cpu[4]), 0.0, "member_energies margin");
    check_within(r.cuda[5], as_double(r.cpu[5]), 0.0, "member_energies error");
}

}  // namespace sp::test
