// The op-test harness: random inputs, tolerances derived from float32 rounding and the
// reduction length, CPU-vs-CUDA comparison (GPU cases are skipped, and counted, without a GPU),
// and a kink-aware finite-difference gradient checker for the CPU backend.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/philox.h"
#include "nn/checkpoint.h"
#include "nn/context.h"
#include "nn/device.h"
#include "nn/models/model.h"
#include "nn/ops.h"
#include "nn/tensor.h"

// A test case that needs a GPU, in test suite "gpu" (select them all with -ts=gpu). tests/main.cpp
// excludes the suite, counting its cases as skipped, where no GPU is usable, unless a GPU is
// visible to the driver: then they run, and fail with the CUDA runtime's own error.
#define GPU_TEST_CASE(name) TEST_CASE(name * doctest::test_suite("gpu"))
// A test case about behaviour without a GPU (suite "no-gpu"), excluded where a GPU is usable.
#define NO_GPU_TEST_CASE(name) TEST_CASE(name * doctest::test_suite("no-gpu"))

namespace sp::test {

// The message of the sp::Error `f` throws ("no error" when it returns).
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "no error";
}

// A training-phase hook's state (EDropoutSearch, GibbsTraining: anything with save(tensors,
// meta)) as the in-memory checkpoint its restore() reads.
template <class Hook>
Checkpoint saved_state(const Hook& hook) {
    std::vector<std::pair<std::string, Tensor>> tensors;
    Checkpoint ck;
    ck.path = "in memory";
    hook.save(tensors, ck.metadata);
    for (auto& [name, t] : tensors) ck.tensors[name] = CheckpointEntry{t.shape(), t.to_host()};
    return ck;
}

// Runs `command` through the shell; returns its exit status (-1 when it did not exit) and, when
// `output` is given, its stdout and stderr together.
int run_command(const std::string& command, std::string* output = nullptr);

// The program under test: $SPINPRUNE_BIN (set by `make test`), else bin/spinprune.
std::string spinprune_program();

// float32 unit roundoff.
constexpr double kUnitRoundoff = 0x1p-24;

// Higham's gamma_n = n u / (1 - n u): a float32 sum of n terms is within gamma_n Σ|terms| of the
// exact sum, whatever the order of summation.
inline double gamma(int64_t n) {
    double nu = static_cast<double>(n) * kUnitRoundoff;
    return nu / (1.0 - nu);
}

// Uniform values in [lo, hi) from Philox stream `seed`: reproducible and never all zeros.
inline std::vector<float> random_values(int64_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = lo + (hi - lo) * stream_uniform(seed, static_cast<uint64_t>(i));
    return v;
}

inline Tensor random_tensor(Shape shape, Device device, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
    auto values = random_values(shape.numel(), seed, lo, hi);
    return Tensor::from_host(values, std::move(shape), device);
}

// Batch norms of `m` with random gamma, beta, running mean and variance (away from their initial
// 1, 0, 0, 1), so eval mode is not close to the identity.
void randomise_bn(Model& m, uint64_t seed);

// Checks |actual[i] - expected[i]| <= bound[i] for all i and reports the first offenders with
// their index, values and bound.
void check_within(const std::vector<float>& actual, const std::vector<double>& expected,
                  const std::vector<double>& bound, const std::string& what);

// Same, with one bound for every element.
void check_within(const std::vector<float>& actual, const std::vector<double>& expected, double bound,
                  const std::string& what);

// CPU-vs-CUDA: runs `op` on a CPU context with the given CPU inputs and on a CUDA context with
// copies of them, and returns both sets of outputs (as host vectors) for the case to compare.
// The callable receives (ctx, inputs, outputs) with tensors on ctx.device().
using OpRunner = std::function<void(Context&, std::vector<Tensor>&, std::vector<Tensor>&)>;
struct BackendOutputs {
    std::vector<std::vector<float>> cpu, cuda;
};
BackendOutputs run_on_both(const std::vector<const Tensor*>& cpu_inputs,
                           const std::vector<Shape>& output_shapes, const OpRunner& op);

// Finite-difference check of an analytic gradient on the CPU backend.
//  - `loss()` evaluates the scalar L = Σ upstream ⊙ forward(...) with the current inputs
//    (computed in double from the float outputs);
//  - `x` is the CPU tensor to perturb, `analytic` its gradient from the backward pass;
//  - `terms_bound` is a bound on Σ|terms| of L (so the float rounding of L is bounded by
//    gamma(reduction_length) * terms_bound);
//  - `skip(i)` marks coordinates sitting on a kink of the function (ReLU at 0, max-pool ties,
//    masked weights at exactly zero...), which are not checked.
// The central difference with step h has truncation error h²/6 |f'''|, estimated per
// coordinate by Richardson extrapolation (the difference between steps h and h/2); the
// rounding error of L contributes 2 gamma(n) terms_bound / h. The check fails when analytic
// and numeric differ by more than twice the sum of these, or when more than a tenth of the
// coordinates had to be skipped (a check that tests nothing must not pass).
struct GradCheckOptions {
    double step = 1e-2;
    int64_t reduction_length = 1;
    double terms_bound = 1.0;
    std::function<bool(int64_t)> skip;
};
void check_gradient(const std::string& what, Tensor& x, const std::vector<float>& analytic,
                    const std::function<double()>& loss, const GradCheckOptions& options);

// Σ upstream ⊙ y in double: the scalar whose gradient w.r.t. y is `upstream`.
double dot(const std::vector<float>& upstream, const Tensor& y);

}  // namespace sp::test
