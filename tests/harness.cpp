// Implementation of the op-test harness (see harness.h).
#include "tests/harness.h"

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "nn/layers.h"

namespace sp::test {

void randomise_bn(Model& m, uint64_t seed) {
    auto set = [](Tensor t, const std::vector<float>& v) { t.copy_from(Tensor::from_host(v, t.shape(), Device::cpu)); };
    for (const LayerWiring& l : m.wiring()) {
        if (!l.bn) continue;
        const int64_t c = l.bn->channels();
        set(l.bn->gamma(), random_values(c, seed++, 0.5f, 1.5f));
        set(l.bn->beta(), random_values(c, seed++, -0.5f, 0.5f));
        set(l.bn->running_mean(), random_values(c, seed++, -0.3f, 0.3f));
        set(l.bn->running_var(), random_values(c, seed++, 0.5f, 2.0f));
    }
}

std::string spinprune_program() {
    const char* env = std::getenv("SPINPRUNE_BIN");
    return env && *env ? env : "bin/spinprune";
}

int run_command(const std::string& command, std::string* output) {
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    REQUIRE_MESSAGE(pipe != nullptr, "could not start: " << command);
    std::string text;
    char chunk[4096];
    for (size_t n; (n = std::fread(chunk, 1, sizeof chunk, pipe)) > 0;) text.append(chunk, n);
    const int status = pclose(pipe);
    if (output) *output = text;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void check_within(const std::vector<float>& actual, const std::vector<double>& expected,
                  const std::vector<double>& bound, const std::string& what) {
    REQUIRE_MESSAGE(actual.size() == expected.size(), what << ": " << actual.size() << " values vs " << expected.size() << " expected");
    REQUIRE(bound.size() == expected.size());
    size_t bad = 0;
    std::ostringstream first;
    for (size_t i = 0; i < actual.size(); ++i) {
        double diff = std::fabs(static_cast<double>(actual[i]) - expected[i]);
        bool ok = diff <= bound[i] && std::isfinite(actual[i]);
        if (!ok) {
            if (bad < 5) first << "\n  [" << i << "] got " << actual[i] << ", expected " << expected[i]
                               << ", |diff| " << diff << " > bound " << bound[i];
            ++bad;
        }
    }
    CHECK_MESSAGE(bad == 0, what << ": " << bad << " of " << actual.size() << " values out of bounds" << first.str());
}

void check_within(const std::vector<float>& actual, const std::vector<double>& expected, double bound,
                  const std::string& what) {
    check_within(actual, expected, std::vector<double>(expected.size(), bound), what);
}

BackendOutputs run_on_both(const std::vector<const Tensor*>& cpu_inputs,
                           const std::vector<Shape>& output_shapes, const OpRunner& op) {
    BackendOutputs result;
    for (Device device : {Device::cpu, Device::cuda}) {
        Context ctx(device, /*seed=*/1234);
        std::vector<Tensor> inputs, outputs;
        for (const Tensor* t : cpu_inputs) inputs.push_back(t->to(device));
        for (const Shape& s : output_shapes) outputs.emplace_back(s, device);
        op(ctx, inputs, outputs);
        ctx.synchronize();
        auto& dst = device == Device::cpu ? result.cpu : result.cuda;
        for (const Tensor& t : outputs) dst.push_back(t.to_host());
    }
    return result;
}

double dot(const std::vector<float>& upstream, const Tensor& y) {
    auto values = y.to_host();
    REQUIRE(values.size() == upstream.size());
    double s = 0.0;
    for (size_t i = 0; i < values.size(); ++i) s += static_cast<double>(upstream[i]) * values[i];
    return s;
}

void check_gradient(const std::string& what, Tensor& x, const std::vector<float>& analytic,
                    const std::function<double()>& loss, const GradCheckOptions& options) {
    REQUIRE(x.device() == Device::cpu);
    REQUIRE(static_cast<int64_t>(analytic.size()) == x.numel());
    const double h = options.step;
    const double rounding = 2.0 * (gamma(options.reduction_length) + kUnitRoundoff) * options.terms_bound / h;
    float* data = x.data();
    auto central = [&](int64_t i, double step) {
        const float saved = data[i];
        data[i] = static_cast<float>(saved + step);
        double up = loss();
        data[i] = static_cast<float>(saved - step);
        double down = loss();
        data[i] = saved;
        return (up - down) / (2.0 * step);
    };
    int64_t skipped = 0, bad = 0;
    std::ostringstream first;
    for (int64_t i = 0; i < x.numel(); ++i) {
        if (options.skip && options.skip(i)) { ++skipped; continue; }
        double coarse = central(i, h), fine = central(i, h / 2);
        // Richardson: the error of the h/2 estimate is about (fine - coarse) / 3.
        double truncation = std::fabs(fine - coarse) / 3.0;
        double tolerance = 2.0 * (truncation + rounding);
        double diff = std::fabs(fine - analytic[static_cast<size_t>(i)]);
        if (diff > tolerance) {
            if (bad < 5) first << "\n  [" << i << "] analytic " << analytic[static_cast<size_t>(i)] << ", numeric " << fine
                               << ", |diff| " << diff << " > tolerance " << tolerance;
            ++bad;
        }
    }
    CHECK_MESSAGE(skipped * 10 <= x.numel(), what << ": " << skipped << " of " << x.numel() << " coordinates skipped as kinks");
    CHECK_MESSAGE(bad == 0, what << ": " << bad << " of " << x.numel() - skipped << " gradient entries wrong" << first.str());
}

}  // namespace sp::test
