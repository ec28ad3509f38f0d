// Energy-aware pruning scores: the one-sided Jacobi SVD on matrices with known singular values,
// nuclear norms and numerical ranks of constructed feature maps, and feature_map_scores on a
// small LeNet (one score per unit, dead channels at zero, batching, weight-norm criteria).
#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <numeric>

#include "kernels/error.h"
#include "nn/cpu/svd.h"
#if SP_WITH_CUDA
#include "nn/cuda/svd.h"  // the chunked call
#endif
#include "nn/layers.h"
#include "pruning/feature_scores.h"
#include "tests/harness.h"

using namespace sp;

namespace {

// Higham's gamma_n for double.
double gamma_d(int64_t n) {
    const double nu = static_cast<double>(n) * (DBL_EPSILON / 2);
    return nu / (1.0 - nu);
}

// Error bound of the computed singular values of an m×n matrix (m >= n) with Frobenius norm
// `fro`, for `sweeps` Jacobi sweeps: each column takes part in n−1 rotations per sweep, each of
// which perturbs it by a few (≤ 4) roundings relative to the two columns rotated, and the final
// column norms are sums of m products; columns left unrotated as noise (norm ≤ m·eps·‖A‖_F =
// 2m·u·‖A‖_F each, at most n of them) add 2m·n; by Weyl the values move by at most the
// perturbation's norm. `extra` adds roundings made while building the input.
double jacobi_bound(int64_t m, int64_t n, int sweeps, double fro, int64_t extra = 0) {
    return gamma_d(4 * sweeps * (n - 1) + m + 2 * m * n + extra) * fro;
}

double frobenius(const std::vector<double>& a) {
    double s = 0.0;
    for (double v : a) s += v * v;
    return std::sqrt(s);
}

std::vector<double> random_doubles(int64_t n, uint64_t seed) {
    const auto f = test::random_values(n, seed);
    return std::vector<double>(f.begin(), f.end());
}

// Small integers in [lo, hi]: their products and short sums are exact in float.
std::vector<float> random_ints(int64_t n, uint64_t seed, int lo, int hi) {
    auto v = test::random_values(n, seed, 0.0f, 1.0f);
    for (auto& x : v) x = static_cast<float>(lo + std::min(hi - lo, static_cast<int>(x * static_cast<float>(hi - lo + 1))));
    return v;
}

// An m×m orthogonal matrix: the product of two Householder reflections I − 2wwᵀ/wᵀw (row-major).
std::vector<double> orthogonal(int64_t m, uint64_t seed) {
    std::vector<double> q(static_cast<size_t>(m * m), 0.0);
    for (int64_t i = 0; i < m; ++i) q[static_cast<size_t>(i * m + i)] = 1.0;
    for (uint64_t r = 0; r < 2; ++r) {
        const auto w = random_doubles(m, seed * 10 + r);
        const double ww = std::inner_product(w.begin(), w.end(), w.begin(), 0.0);
        // q ← q (I − 2wwᵀ/ww)
        for (int64_t i = 0; i < m; ++i) {
            double qw = 0.0;
            for (int64_t k = 0; k < m; ++k) qw += q[static_cast<size_t>(i * m + k)] * w[static_cast<size_t>(k)];
            for (int64_t j = 0; j < m; ++j) q[static_cast<size_t>(i * m + j)] -= 2.0 * qw * w[static_cast<size_t>(j)] / ww;
        }
    }
    return q;
}

std::vector<double> svd(const std::vector<double>& a, int64_t rows, int64_t cols, int* sweeps = nullptr) {
    std::vector<double> s(static_cast<size_t>(std::min(rows, cols)));
    const int used = cpu::singular_values(a.data(), rows, cols, s.data());
    CHECK(used < cpu::kMaxJacobiSweeps);
    if (sweeps) *sweeps = used;
    return s;
}

void check_values(const std::vector<double>& actual, const std::vector<double>& expected, double bound) {
    REQUIRE(actual.size() == expected.size());
    for (size_t i = 0; i < actual.size(); ++i) {
        CAPTURE(i);
        CHECK(std::fabs(actual[i] - expected[i]) <= bound);
    }
}

}  // namespace

TEST_CASE("svd: diagonal matrices give their absolute diagonal, sorted, without rotating") {
    // 5×3 and its 3×5 transpose with diagonal (3, −7, 0.5).
    std::vector<double> a(15, 0.0), at(15, 0.0);
    const double d[3] = {3.0, -7.0, 0.5};
    for (int i = 0; i < 3; ++i) a[static_cast<size_t>(i * 3 + i)] = at[static_cast<size_t>(i * 5 + i)] = d[i];
    int sweeps = 0;
    CHECK(svd(a, 5, 3, &sweeps) == std::vector<double>{7.0, 3.0, 0.5});  // exact: no arithmetic but √(d²)
    CHECK(sweeps == 1);
    CHECK(svd(at, 3, 5) == std::vector<double>{7.0, 3.0, 0.5});
    CHECK(svd(std::vector<double>(12, 0.0), 4, 3) == std::vector<double>{0.0, 0.0, 0.0});
}

TEST_CASE("svd: a rank-1 outer product u vᵀ has one singular value |u||v|") {
    for (auto [m, n] : {std::pair<int64_t, int64_t>{7, 5}, {5, 7}, {32, 32}, {1, 9}}) {
        CAPTURE(m);
        CAPTURE(n);
        const auto u = random_doubles(m, 11), v = random_doubles(n, 12);
        std::vector<double> a(static_cast<size_t>(m * n));
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) a[static_cast<size_t>(i * n + j)] = u[static_cast<size_t>(i)] * v[static_cast<size_t>(j)];
        int sweeps = 0;
        const auto s = svd(a, m, n, &sweeps);
        std::vector<double> expected(s.size(), 0.0);
        expected[0] = std::sqrt(std::inner_product(u.begin(), u.end(), u.begin(), 0.0)) *
                      std::sqrt(std::inner_product(v.begin(), v.end(), v.begin(), 0.0));
        // Building A rounds each entry once; the norms of u and v take max(m, n) + 2 roundings.
        check_values(s, expected, jacobi_bound(std::max(m, n), std::min(m, n), sweeps, frobenius(a), std::max(m, n) + 3));
    }
}

TEST_CASE("svd: orthogonal × diagonal × orthogonal recovers the diagonal") {
    for (auto [m, n] : {std::pair<int64_t, int64_t>{6, 4}, {3, 9}, {32, 32}, {40, 37}}) {
        CAPTURE(m);
        CAPTURE(n);
        const int64_t k = std::min(m, n);
        const auto q1 = orthogonal(m, 21), q2 = orthogonal(n, 22);
        std::vector<double> d(static_cast<size_t>(k));
        for (int64_t i = 0; i < k; ++i) d[static_cast<size_t>(i)] = (i % 3 == 2) ? 0.0 : 1.0 + static_cast<double>(k - i);
        // A = Q1[:, :k] diag(d) Q2[:k, :]
        std::vector<double> a(static_cast<size_t>(m * n), 0.0);
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
                double s = 0.0;
                for (int64_t t = 0; t < k; ++t)
                    s += q1[static_cast<size_t>(i * m + t)] * d[static_cast<size_t>(t)] * q2[static_cast<size_t>(t * n + j)];
                a[static_cast<size_t>(i * n + j)] = s;
            }
        std::vector<double> expected = d;
        std::sort(expected.begin(), expected.end(), std::greater<double>());
        int sweeps = 0;
        const auto s = svd(a, m, n, &sweeps);
        // Each Householder product rounds about 3 max(m, n) times per entry (orthogonality of the
        // computed Q is lost at that level), and the product with diag(d) takes 2k more.
        const int64_t build = 6 * std::max(m, n) + 2 * k;
        check_values(s, expected, jacobi_bound(std::max(m, n), k, sweeps, frobenius(a), build));
    }
}

TEST_CASE("svd: random matrices keep their Frobenius norm, Σσ² = ‖A‖_F²") {
    for (auto [m, n] : {std::pair<int64_t, int64_t>{16, 16}, {9, 30}, {33, 20}, {2, 2}}) {
        CAPTURE(m);
        CAPTURE(n);
        const auto a = random_doubles(m * n, 31 + static_cast<uint64_t>(m));
        int sweeps = 0;
        const auto s = svd(a, m, n, &sweeps);
        double sum = 0.0;
        for (double v : s) sum += v * v;
        const double fro2 = frobenius(a) * frobenius(a);
        CHECK(std::is_sorted(s.rbegin(), s.rend()));
        // Squaring doubles the relative error; m·n more roundings in the two sums of squares.
        CHECK(std::fabs(sum - fro2) <= 2.0 * gamma_d(4 * sweeps * (std::min(m, n) - 1) + m * n + 2 * m) * fro2);
    }
}

TEST_CASE("nuclear_norms: rank-1 maps give |u||v|, and |u||v⁺| after ReLU") {
    // maps (N=3, C=4, 6, 5), map (n, c) = u vᵀ with u ≥ 0 and v of both signs: ReLU(u vᵀ) = u (v⁺)ᵀ.
    const int64_t N = 3, C = 4, H = 6, W = 5;
    std::vector<float> maps(static_cast<size_t>(N * C * H * W));
    std::vector<double> plain(C, 0.0), rectified(C, 0.0);
    for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
            const auto u = random_ints(H, 100 + static_cast<uint64_t>(n * C + c), 0, 3);
            const auto v = random_ints(W, 200 + static_cast<uint64_t>(n * C + c), -4, 4);
            double uu = 0.0, vv = 0.0, vp = 0.0;
            for (float x : u) uu += double{x} * x;
            for (float x : v) {
                vv += double{x} * x;
                vp += x > 0 ? double{x} * x : 0.0;
            }
            plain[static_cast<size_t>(c)] += std::sqrt(uu * vv) / N;
            rectified[static_cast<size_t>(c)] += std::sqrt(uu * vp) / N;
            for (int64_t i = 0; i < H; ++i)
                for (int64_t j = 0; j < W; ++j)
                    maps[static_cast<size_t>(((n * C + c) * H + i) * W + j)] = u[static_cast<size_t>(i)] * v[static_cast<size_t>(j)];
        }
    REQUIRE(*std::min_element(rectified.begin(), rectified.end()) < *std::min_element(plain.begin(), plain.end()));
    Context ctx(Device::cpu);
    Tensor x = Tensor::from_host(maps, Shape{N, C, H, W}, Device::cpu);
    Tensor out(Shape{C}, Device::cpu);
    // Each singular value is rounded to float once, then summed over k = 5 values and N maps
    // in double and rounded once more: within gamma(2) of the exact mean (the double Jacobi
    // error is ~2^29 times smaller).
    nuclear_norms(ctx, x, false, out);
    test::check_within(out.to_host(), plain, [&] {
        std::vector<double> b;
        for (double p : plain) b.push_back(test::gamma(2) * p);
        return b;
    }(), "nuclear norm");
    nuclear_norms(ctx, x, true, out);
    std::vector<double> rb;
    for (double r : rectified) rb.push_back(test::gamma(2) * r);
    test::check_within(out.to_host(), rectified, rb, "nuclear norm after relu");
}

TEST_CASE("map_ranks: constructed low-rank maps have their rank; zero maps rank 0") {
    // Channel c of every image: a sum of c integer outer products (rank c, exactly in float).
    const int64_t N = 2, C = 6, H = 8, W = 6;
    std::vector<float> maps(static_cast<size_t>(N * C * H * W), 0.0f);
    for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c)
            for (int64_t r = 0; r < c; ++r) {
                const uint64_t seed = 1000 + static_cast<uint64_t>((n * C + c) * C + r);
                const auto u = random_ints(H, seed, -3, 3), v = random_ints(W, seed + 500, -3, 3);
                for (int64_t i = 0; i < H; ++i)
                    for (int64_t j = 0; j < W; ++j)
                        maps[static_cast<size_t>(((n * C + c) * H + i) * W + j)] += u[static_cast<size_t>(i)] * v[static_cast<size_t>(j)];
            }
    // The test data must leave a clear gap: σ_c well above the rank tolerance.
    for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 1; c < C; ++c) {
            std::vector<double> a(maps.begin() + (n * C + c) * H * W, maps.begin() + (n * C + c + 1) * H * W);
            const auto s = svd(a, H, W);
            REQUIRE(s[static_cast<size_t>(c - 1)] > 1e3 * std::max(H, W) * FLT_EPSILON * s[0]);
        }
    Context ctx(Device::cpu);
    Tensor x = Tensor::from_host(maps, Shape{N, C, H, W}, Device::cpu);
    Tensor out(Shape{C}, Device::cpu);
    map_ranks(ctx, x, false, out);
    const auto ranks = out.to_host();
    for (int64_t c = 0; c < C; ++c) {
        CAPTURE(c);
        CHECK(ranks[static_cast<size_t>(c)] == static_cast<float>(c));
    }
    // ReLU of a rank-1 map u vᵀ with u ≥ 0 stays rank 1 (u (v⁺)ᵀ, v⁺ ≠ 0).
    std::vector<float> one(static_cast<size_t>(H * W));
    const auto u = random_ints(H, 7, 1, 3);
    const std::vector<float> v{2, -1, 3, -4, 1, -2};
    for (int64_t i = 0; i < H; ++i)
        for (int64_t j = 0; j < W; ++j) one[static_cast<size_t>(i * W + j)] = u[static_cast<size_t>(i)] * v[static_cast<size_t>(j)];
    Tensor y = Tensor::from_host(one, Shape{1, 1, H, W}, Device::cpu);
    Tensor r1(Shape{1}, Device::cpu);
    map_ranks(ctx, y, true, r1);
    CHECK(r1.to_host()[0] == 1.0f);
}

TEST_CASE("map_singular_values: rejects wrong shapes and devices") {
    Context ctx(Device::cpu);
    Tensor maps(Shape{2, 3, 4, 5}, Device::cpu);
    Tensor bad(Shape{2, 3, 5}, Device::cpu), flat(Shape{6, 4, 5}, Device::cpu);
    CHECK_THROWS_AS(map_singular_values(ctx, maps, true, bad), sp::Error);
    CHECK_THROWS_AS(map_singular_values(ctx, flat, true, bad), sp::Error);
    Tensor out(Shape{4}, Device::cpu);
    CHECK_THROWS_AS(nuclear_norms(ctx, maps, true, out), sp::Error);
}

namespace {

struct LenetSetup {
    std::unique_ptr<Model> model;
    Tensor images;
    LenetSetup() {
        model = make_model("lenet", 1, 16, 16, 10);
        model->allocate(Device::cpu, 5);
        images = test::random_tensor(Shape{8, 1, 16, 16}, Device::cpu, 17);
    }
    const LayerWiring& layer(const std::string& name) const {
        for (const auto& w : model->wiring())
            if (w.name == name) return w;
        FAIL("no layer " << name);
        return model->wiring().front();
    }
    const MaskSegment& segment(const MaskSpace& space, const std::string& name) const {
        for (const auto& s : space.segments())
            if (s.name == name) return s;
        FAIL("no segment " << name);
        return space.segments().front();
    }
};

}  // namespace

TEST_CASE("feature_map_scores: lenet scores every unit, non-negative and finite; dead channels score 0") {
    LenetSetup s;
    Context ctx(Device::cpu, 1);
    MaskSpace space(*s.model, MaskSpaceOptions{});
    FeatureScoreOptions o;
    o.images = 8;
    o.batch_size = 3;  // batches of 3, 3, 2
    // Dead channels: BN gamma and beta zero → the BN output is exactly 0.
    const int dead1 = 3, dead2 = 5;
    s.layer("conv1").bn->gamma().data()[dead1] = 0.0f;
    s.layer("conv1").bn->beta().data()[dead1] = 0.0f;
    s.layer("conv2").bn->gamma().data()[dead2] = 0.0f;
    s.layer("conv2").bn->beta().data()[dead2] = 0.0f;
    s.model->set_training(true);
    for (FeatureCriterion crit : {FeatureCriterion::nuclear_norm, FeatureCriterion::rank}) {
        for (bool relu : {true, false}) {
            CAPTURE(feature_criterion_name(crit));
            CAPTURE(relu);
            o.criterion = crit;
            o.post_relu = relu;
            const auto scores = feature_map_scores(ctx, space, s.images, o);
            REQUIRE(static_cast<int64_t>(scores.size()) == space.size());
            CHECK(s.model->training());  // the mode is restored
            int64_t positive = 0;
            for (float v : scores) {
                CHECK(std::isfinite(v));
                CHECK(v >= 0.0f);
                positive += v > 0.0f;
            }
            CHECK(scores[static_cast<size_t>(s.segment(space, "conv1").offset + dead1)] == 0.0f);
            CHECK(scores[static_cast<size_t>(s.segment(space, "conv2").offset + dead2)] == 0.0f);
            CHECK(positive >= space.size() - 2 - s.segment(space, "fc1").size);  // fc1 neurons may die after ReLU
            if (crit == FeatureCriterion::rank) {
                const auto& seg = s.segment(space, "conv1");
                for (int64_t c = 0; c < seg.size; ++c) CHECK(scores[static_cast<size_t>(seg.offset + c)] <= 16.0f);
            }
        }
    }
}

TEST_CASE("feature_map_scores: batched scores equal nuclear_norms of the BN output of one forward") {
    LenetSetup s;
    Context ctx(Device::cpu, 1);
    MaskSpace space(*s.model, MaskSpaceOptions{});
    FeatureScoreOptions o;
    o.images = 6;      // fewer than the 8 given: only the first 6 count
    o.batch_size = 4;  // batches of 4 and 2
    const auto scores = feature_map_scores(ctx, space, s.images, o);

    s.model->set_training(false);
    Tensor first6 = Tensor::view(s.images.data(), Shape{6, 1, 16, 16}, Device::cpu);
    s.model->forward(ctx, first6);
    const auto& seg = s.segment(space, "conv1");
    Tensor ref(Shape{seg.size}, Device::cpu);
    nuclear_norms(ctx, *s.layer("conv1").bn->last_output(), true, ref);
    const auto r = ref.to_host();
    // The same float maps either way (the CPU conv treats images independently), summed in
    // double in another grouping and rounded once: within gamma(2).
    for (int64_t c = 0; c < seg.size; ++c) {
        CAPTURE(c);
        const float v = scores[static_cast<size_t>(seg.offset + c)];
        CHECK(std::fabs(v - r[static_cast<size_t>(c)]) <= test::gamma(2) * std::fabs(r[static_cast<size_t>(c)]));
    }
}

TEST_CASE("feature_map_scores: l1/l2 are the filter weight norms; wrong inputs are rejected") {
    LenetSetup s;
    Context ctx(Device::cpu, 1);
    MaskSpace space(*s.model, MaskSpaceOptions{});
    for (FeatureCriterion crit : {FeatureCriterion::l1, FeatureCriterion::l2}) {
        FeatureScoreOptions o;
        o.criterion = crit;
        const auto scores = feature_map_scores(ctx, space, Tensor(), o);  // no data needed
        REQUIRE(static_cast<int64_t>(scores.size()) == space.size());
        for (const char* name : {"conv2", "fc1"}) {
            CAPTURE(name);
            const auto& w = s.layer(name);
            const Tensor weight = w.conv ? w.conv->weight() : w.linear->weight();
            const auto host = weight.to_host();
            const int64_t rows = weight.dim(0), fan = weight.numel() / rows;
            const auto& seg = s.segment(space, name);
            for (int64_t r = 0; r < rows; ++r) {
                double acc = 0.0, abs_sum = 0.0;
                for (int64_t i = 0; i < fan; ++i) {
                    const double v = host[static_cast<size_t>(r * fan + i)];
                    acc += crit == FeatureCriterion::l1 ? std::fabs(v) : v * v;
                    abs_sum += std::fabs(v);
                }
                const double expected = crit == FeatureCriterion::l1 ? acc : std::sqrt(acc);
                // Both sums in double, rounded once to float.
                CHECK(std::fabs(scores[static_cast<size_t>(seg.offset + r)] - expected) <= test::gamma(1) * expected);
            }
        }
    }
    FeatureScoreOptions o;
    Tensor wrong = test::random_tensor(Shape{2, 3, 16, 16}, Device::cpu, 1);
    CHECK_THROWS_AS(feature_map_scores(ctx, space, wrong, o), sp::Error);
    o.batch_size = 0;
    CHECK_THROWS_AS(feature_map_scores(ctx, space, s.images, o), sp::Error);
    MaskSpaceOptions wo;
    wo.granularity = Granularity::weight;
    MaskSpace weights(*s.model, wo);
    CHECK_THROWS_AS(feature_map_scores(ctx, weights, s.images, FeatureScoreOptions{}), sp::Error);
    CHECK(feature_criterion_from_name("rank") == FeatureCriterion::rank);
    CHECK_THROWS_AS(feature_criterion_from_name("entropy"), sp::Error);
}

GPU_TEST_CASE("map_singular_values: cuSOLVER batched Jacobi agrees with the CPU Jacobi") {
    Context gpu(Device::cuda, 1);
    Context cpu_ctx(Device::cpu, 1);
    for (auto [h, w] : {std::pair<int64_t, int64_t>{16, 16}, {8, 12}, {32, 32}, {1, 1}}) {
        for (bool relu : {false, true}) {
            CAPTURE(h);
            CAPTURE(w);
            CAPTURE(relu);
            const int64_t N = 4, C = 5, k = std::min(h, w);
            Tensor maps = test::random_tensor(Shape{N, C, h, w}, Device::cpu, 40 + static_cast<uint64_t>(h));
            Tensor s_cpu(Shape{N, C, k}, Device::cpu), s_gpu(Shape{N, C, k}, Device::cuda);
            map_singular_values(cpu_ctx, maps, relu, s_cpu);
            Tensor maps_gpu = maps.to(Device::cuda);
            map_singular_values(gpu, maps_gpu, relu, s_gpu);
            const auto a = s_cpu.to_host(), b = s_gpu.to_host(), x = maps.to_host();
            for (int64_t m = 0; m < N * C; ++m) {
                double fro = 0.0;
                for (int64_t i = 0; i < h * w; ++i) {
                    const double v = x[static_cast<size_t>(m * h * w + i)];
                    fro += (relu && v < 0 ? 0.0 : v * v);
                }
                fro = std::sqrt(fro);
                // float32 Jacobi capped at 100 sweeps (set in nn/cuda/svd.cpp), same error model
                // as the CPU bound; the CPU values carry one float rounding.
                const double bound = test::gamma(4 * 100 * std::max<int64_t>(k - 1, 1) + std::max(h, w) + 1) * fro;
                for (int64_t j = 0; j < k; ++j) {
                    CAPTURE(m);
                    CAPTURE(j);
                    CHECK(std::fabs(double{a[static_cast<size_t>(m * k + j)]} - b[static_cast<size_t>(m * k + j)]) <= bound);
                }
            }
            Tensor nn_cpu(Shape{C}, Device::cpu), nn_gpu(Shape{C}, Device::cuda);
            nuclear_norms(cpu_ctx, maps, relu, nn_cpu);
            nuclear_norms(gpu, maps_gpu, relu, nn_gpu);
            const auto p = nn_cpu.to_host(), q = nn_gpu.to_host();
            // k values per map, each within the bound above with ‖A‖_F ≤ √(h·w) (entries in
            // [−1, 1)), plus the rounding of the two sums of k values to float.
            const double per_value = test::gamma(4 * 100 * std::max<int64_t>(k - 1, 1) + std::max(h, w) + 1) *
                                     std::sqrt(static_cast<double>(h * w));
            for (int64_t c = 0; c < C; ++c) {
                CAPTURE(c);
                const double pc = p[static_cast<size_t>(c)];
                CHECK(std::fabs(pc - q[static_cast<size_t>(c)]) <= k * per_value + 2 * test::gamma(k + 2) * std::fabs(pc));
            }
        }
    }
    Tensor big = test::random_tensor(Shape{1, 1, 33, 8}, Device::cuda, 3);
    Tensor s(Shape{1, 1, 8}, Device::cuda);
    CHECK_THROWS_AS(map_singular_values(gpu, big, false, s), sp::Error);
}

GPU_TEST_CASE("map_singular_values (cuda): maps split over several cuSOLVER calls give the one-call values") {
#if SP_WITH_CUDA  // a CPU-only build registers the case (never run there) without the CUDA backend
    // 4 × 5 = 20 maps in calls of at most 3: six full calls and a partial seventh.
    Context gpu(Device::cuda, 1);
    Tensor maps = test::random_tensor(Shape{4, 5, 12, 9}, Device::cuda, 77);
    Tensor whole(Shape{4, 5, 9}, Device::cuda), chunked(Shape{4, 5, 9}, Device::cuda);
    cuda::map_singular_values(gpu, maps, true, whole);
    cuda::map_singular_values(gpu, maps, true, chunked, 3);
    // Both runs are within the Jacobi bound of the first test of each map's exact values (a map
    // skipped or written to another map's place would not be); singular values are >= 0.
    const auto a = whole.to_host(), b = chunked.to_host(), x = maps.to_host();
    const int64_t k = 9, side = 12;
    for (int64_t m = 0; m < 20; ++m) {
        double fro = 0.0;
        for (int64_t i = 0; i < 12 * 9; ++i) fro += std::pow(std::max(0.0, double{x[static_cast<size_t>(m * 12 * 9 + i)]}), 2);
        const double bound = 2.0 * test::gamma(4 * 100 * (k - 1) + side + 1) * std::sqrt(fro);
        for (int64_t j = 0; j < k; ++j) {
            CAPTURE(m);
            CAPTURE(j);
            CHECK(std::fabs(double{a[static_cast<size_t>(m * k + j)]} - b[static_cast<size_t>(m * k + j)]) <= bound);
            CHECK(b[static_cast<size_t>(m * k + j)] >= 0.0f);
        }
    }
#endif
}
