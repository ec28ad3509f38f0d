// Test runner: doctest's own main, plus a listener that closes the run with the line
// "N passed, N failed, N skipped" counting test cases (the form CI reads).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "nn/cpu/gemm.h"
#include "nn/device.h"

namespace {

struct SummaryLine : doctest::IReporter {
    explicit SummaryLine(const doctest::ContextOptions&) {}
    void report_query(const doctest::QueryData&) override {}
    void test_run_start() override {}
    void test_run_end(const doctest::TestRunStats& stats) override {
        unsigned ran = stats.numTestCasesPassingFilters;
        unsigned failed = stats.numTestCasesFailed;
        skipped_ = stats.numTestCases - ran;
        std::printf("%u passed, %u failed, %u skipped\n", ran - failed, failed, skipped_);
        std::fflush(stdout);
    }
    void test_case_start(const doctest::TestCaseData&) override {}
    void test_case_reenter(const doctest::TestCaseData&) override {}
    void test_case_end(const doctest::CurrentTestCaseStats&) override {}
    void test_case_exception(const doctest::TestCaseException&) override {}
    void subcase_start(const doctest::SubcaseSignature&) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData&) override {}
    void log_message(const doctest::MessageData&) override {}
    void test_case_skipped(const doctest::TestCaseData&) override {}
    unsigned skipped_ = 0;
};

}  // namespace

DOCTEST_REGISTER_LISTENER("summary-line", 1, SummaryLine);

int main(int argc, char** argv) {
    sp::cpu::configure_cpu_blas(argv);
    std::printf("GPU cases: %s\n", sp::cuda_available() ? ("running on " + sp::cuda_device_name()).c_str()
                                                        : "skipped (no usable CUDA GPU)");
    doctest::Context context(argc, argv);
    // Listeners print after doctest's own summary, so the last line is ours.
    return context.run();
}
