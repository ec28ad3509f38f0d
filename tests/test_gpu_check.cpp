// The GPU check's groundwork, verified without a GPU: the test runner's GPU-case policy
// (tests/main.cpp, run on this very test binary) cannot report a pass that did not happen, and
// the build finds cuDNN and the CUDA libraries in the layouts of PyTorch's NVIDIA wheels.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/harness.h"

namespace sp::test {
namespace {

// This test binary, run again with `arguments` (and an environment prefix).
int run_suite(const std::string& environment, const std::string& arguments, std::string& output) {
    const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    return run_command(environment + " '" + self + "' " + arguments, &output);
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

NO_GPU_TEST_CASE("test runner: where a GPU is expected, a CUDA runtime that cannot start fails the GPU cases") {
    const std::string one_gpu_case = "-ts=gpu -tc='latency (cuda)*'";
    std::string out;
    // Nothing expects a GPU here: the GPU cases are skipped and counted, and the run passes.
    CHECK(run_suite("SPINPRUNE_REQUIRE_GPU=0", one_gpu_case, out) == 0);
    CAPTURE(out);
    CHECK(has(out, "GPU cases: skipped (no usable CUDA GPU: "));
    CHECK(has(out, "GPU cases: 0 of "));
    CHECK(has(out, "0 passed, 0 failed, "));
    // A GPU expected (as `make gpu-check` sets it, or as nvidia-smi listing one does): the case
    // runs, fails with the runtime's own error, and the run fails.
    CHECK(run_suite("SPINPRUNE_REQUIRE_GPU=1", one_gpu_case, out) != 0);
    CAPTURE(out);
    CHECK(has(out, "GPU cases: a GPU is expected (SPINPRUNE_REQUIRE_GPU=1) but the CUDA runtime cannot start: "));
    CHECK(has(out, cuda_status().reason));
    CHECK(has(out, "GPU cases: 1 of "));
    CHECK(has(out, "0 passed, 1 failed, "));
}

}  // namespace sp::test

namespace sp::test {
namespace {

// Symbolic links in `to` to the entries of `from`, except those whose names start with a prefix
// in `skip`.
void link_all(const std::filesystem::path& from, const std::filesystem::path& to, const std::vector<std::string>& skip) {
    namespace fs = std::filesystem;
    fs::create_directories(to);
    for (const auto& entry : fs::directory_iterator(from)) {
        const std::string name = entry.path().filename().string();
        bool skipped = false;
        for (const std::string& prefix : skip) skipped = skipped || name.rfind(prefix, 0) == 0;
        if (!skipped) fs::create_symlink(entry.path(), to / name);
    }
}

// Symbolic links in `to` to the entries of `from` named prefix...must_contain...
void link_matching(const std::filesystem::path& from, const std::string& prefix, const std::string& must_contain,
                   const std::filesystem::path& to) {
    namespace fs = std::filesystem;
    fs::create_directories(to);
    for (const auto& entry : fs::directory_iterator(from)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind(prefix, 0) == 0 && name.find(must_contain) != std::string::npos) fs::create_symlink(entry.path(), to / name);
    }
}

}  // namespace

// The GPU check builds and runs the CUDA configuration: a build without CUDA (make CUDA=0) skips it.
TEST_CASE("gpu-check: the dry run finds every stage, input, make target and run configuration in place" *
          doctest::skip(!SP_WITH_CUDA)) {
    // What `make gpu-check` does without a GPU; --dry-run forces it where there is one. Run as
    // from `make test SAN=1` (make hands SAN=1 on in MAKEFLAGS and in the environment): the check
    // still plans the release configuration it builds on the GPU machine.
    std::string out;
    const int status = run_command("SAN=1 MAKEFLAGS=' -- SAN=1' scripts/gpu_check.sh --dry-run", &out);
    CAPTURE(out);
    CHECK(status == 0);
    for (const char* stage : {"facts", "build", "gpu_tests", "memcheck", "determinism", "bench_train", "bench_pruning",
                              "runs", "racecheck", "initcheck"})
        CHECK(out.find("\n  " + std::string(stage) + " ") != std::string::npos);
    CHECK(out.find("gpu-check dry run: every stage, input, make target and run configuration is in place") !=
          std::string::npos);
}

TEST_CASE("build: cuDNN and CUDA libraries from PyTorch's NVIDIA wheels (namespace packages, versioned names only)") {
    namespace fs = std::filesystem;
    const fs::path cuda = "/usr/local/cuda";
    if (!fs::exists(cuda / "include/cudnn.h") || !fs::exists(cuda / "lib64/libcurand.so.10")) {
        MESSAGE("this machine's toolkit lacks cuDNN or cuRAND 10: nothing to lay out the wheels from");
        return;
    }
    const fs::path root = fs::temp_directory_path() / ("spinprune_wheels_" + std::to_string(::getpid()));
    fs::remove_all(root);
    // A toolkit without cuDNN and without cuRAND...
    fs::create_directories(root / "cuda");
    fs::create_symlink(cuda / "bin", root / "cuda/bin");
    link_all(cuda / "include", root / "cuda/include", {"cudnn", "curand"});
    link_all(cuda / "lib64", root / "cuda/lib64", {"libcudnn", "libcurand"});
    // ...and the wheels' layouts: nvidia/cudnn (nvidia-cudnn-cu13) and nvidia/cu13 (nvidia-curand),
    // no __init__.py anywhere, libraries under their versioned names only.
    const fs::path site = root / "site";
    link_matching(cuda / "include", "cudnn", ".h", site / "nvidia/cudnn/include");
    link_matching(cuda / "lib64", "libcudnn", ".so.9", site / "nvidia/cudnn/lib");
    link_matching(cuda / "include", "curand", ".h", site / "nvidia/cu13/include");
    link_matching(cuda / "lib64", "libcurand", ".so.10", site / "nvidia/cu13/lib");
    REQUIRE(fs::exists(site / "nvidia/cudnn/lib/libcudnn.so.9"));
    REQUIRE_FALSE(fs::exists(site / "nvidia/cudnn/lib/libcudnn.so"));
    REQUIRE_FALSE(fs::exists(site / "nvidia/__init__.py"));

    // CUDA=1: the discovery of a CUDA build, also from the suite of a CPU-only one (make CUDA=0).
    const std::string make = "make --no-print-directory print-deps CUDA=1 CUDA_HOME=" + (root / "cuda").string() +
                             " BUILD_ROOT=" + (root / "build").string();
    std::string out;
    const int status = run_command("PYTHONPATH=" + site.string() + " " + make, &out);
    CAPTURE(out);
    CHECK(status == 0);
    const std::string cudnn = (site / "nvidia/cudnn/lib/libcudnn.so.9").string();
    const std::string curand = (site / "nvidia/cu13/lib/libcurand.so.10").string();
    // Found there, and loaded from there at run time (rpath), by the program that links them all.
    CHECK(out.find("cudnn          " + cudnn + " (the nvidia-cudnn wheel") != std::string::npos);
    CHECK(out.find("curand         " + curand + " (the nvidia-cu13 wheel") != std::string::npos);
    CHECK(out.find("cublas         " + (root / "cuda/lib64/libcublas.so").string() + " (the toolkit") != std::string::npos);
    CHECK(out.find("(built against ") != std::string::npos);
    CHECK(out.find("   " + cudnn + "\n") != std::string::npos);
    CHECK(out.find("   " + curand + "\n") != std::string::npos);

    // Without the wheels, the missing libraries are named and the build does not start.
    CHECK(run_command(make, &out) != 0);
    CAPTURE(out);
    CHECK(out.find("MISSING        cudnn (cudnn.h and libcudnn.so*") != std::string::npos);
    CHECK(out.find("MISSING        curand") != std::string::npos);
    fs::remove_all(root);
}

}  // namespace sp::test
