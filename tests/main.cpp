// Test runner: doctest's own main, the GPU-case policy, and a listener that closes the run with
// "GPU cases: R of G ran" and then the line "N passed, N failed, N skipped" counting test cases
// (the form CI reads).
//
// GPU cases (suite "gpu", tests/harness.h) run where the CUDA runtime starts. Where it does not,
// they are excluded, and counted as skipped, only if no GPU is visible either: when the driver
// lists one (`nvidia-smi -L`) or SPINPRUNE_REQUIRE_GPU=1 is set, a runtime that cannot start is
// a failure, not an absent GPU, so the GPU cases run and fail with the runtime's own error.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "nn/cpu/gemm.h"
#include "nn/device.h"

namespace {

constexpr const char* kGpuSuite = "gpu";
constexpr const char* kNoGpuSuite = "no-gpu";

bool in_suite(const char* suite, const char* name) { return suite && std::strcmp(suite, name) == 0; }

unsigned registered_gpu_cases() {
    unsigned n = 0;
    for (const doctest::detail::TestCase& tc : doctest::detail::getRegisteredTests()) n += in_suite(tc.m_test_suite, kGpuSuite);
    return n;
}

// Why a GPU must be there ("" when none is expected): the environment asks for one, or the
// driver lists one (to a build with CUDA: a build without it, make CUDA=0, has no GPU cases to
// run unless asked).
std::string gpu_expected() {
    const char* require = std::getenv("SPINPRUNE_REQUIRE_GPU");
    if (require && std::string(require) == "1") return "SPINPRUNE_REQUIRE_GPU=1";
    if (!SP_WITH_CUDA) return "";
    std::string listed;
    if (FILE* p = popen("nvidia-smi -L 2>/dev/null", "r")) {
        char line[512];
        if (std::fgets(line, sizeof line, p) && std::strncmp(line, "GPU ", 4) == 0) {
            listed = line;
            while (!listed.empty() && (listed.back() == '\n' || listed.back() == '\r')) listed.pop_back();
        }
        pclose(p);
    }
    return listed.empty() ? "" : "nvidia-smi lists " + listed;
}

struct SummaryLine : doctest::IReporter {
    explicit SummaryLine(const doctest::ContextOptions&) {}
    void report_query(const doctest::QueryData&) override {}
    void test_run_start() override {}
    void test_run_end(const doctest::TestRunStats& stats) override {
        unsigned ran = stats.numTestCasesPassingFilters;
        unsigned failed = stats.numTestCasesFailed;
        unsigned skipped = stats.numTestCases - ran;
        std::printf("GPU cases: %u of %u ran\n", gpu_cases_ran_, registered_gpu_cases());
        std::printf("%u passed, %u failed, %u skipped\n", ran - failed, failed, skipped);
        std::fflush(stdout);
    }
    void test_case_start(const doctest::TestCaseData& tc) override { gpu_cases_ran_ += in_suite(tc.m_test_suite, kGpuSuite); }
    void test_case_reenter(const doctest::TestCaseData&) override {}
    void test_case_end(const doctest::CurrentTestCaseStats&) override {}
    void test_case_exception(const doctest::TestCaseException&) override {}
    void subcase_start(const doctest::SubcaseSignature&) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData&) override {}
    void log_message(const doctest::MessageData&) override {}
    void test_case_skipped(const doctest::TestCaseData&) override {}
    unsigned gpu_cases_ran_ = 0;
};

}  // namespace

DOCTEST_REGISTER_LISTENER("summary-line", 1, SummaryLine);

int main(int argc, char** argv) {
    sp::cpu::configure_cpu_blas(argv);
    doctest::Context context(argc, argv);
    const sp::CudaStatus& cuda = sp::cuda_status();
    if (cuda.usable) {
        std::printf("GPU cases: running on %s\n", sp::cuda_device_name().c_str());
        context.addFilter("test-suite-exclude", kNoGpuSuite);
    } else if (const std::string expected = gpu_expected(); !expected.empty()) {
        std::printf("GPU cases: a GPU is expected (%s) but the CUDA runtime cannot start: %s\n"
                    "GPU cases: they run anyway, and fail with that error\n",
                    expected.c_str(), cuda.reason.c_str());
        context.addFilter("test-suite-exclude", kNoGpuSuite);
    } else {
        std::printf("GPU cases: skipped (no usable CUDA GPU: %s)\n", cuda.reason.c_str());
        context.addFilter("test-suite-exclude", kGpuSuite);
    }
    std::fflush(stdout);
    // Listeners print after doctest's own summary, so the last line is ours.
    return context.run();
}
