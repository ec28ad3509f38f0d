// Reliability: inputs the fuzzers found (as regression tests, inline bytes), the mask file
// reader, the numerics guard of training (NaN/Inf stop or skip, the last good checkpoint
// kept), resource checks before training, clean stops on SIGINT/SIGTERM, and a clear error
// naming file/key/value for every bad input of the issue's list.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "data/cifar.h"
#include "data/idx.h"
#include "kernels/error.h"
#include "nn/checkpoint.h"
#include "nn/device.h"
#include "nn/models/model.h"
#include "tests/harness.h"
#include "train/config.h"
#include "train/run_dir.h"
#include "train/trainer.h"

using namespace sp;
using sp::test::error_of;
namespace fs = std::filesystem;

namespace {

std::string scratch(const std::string& name) {
    const std::string dir = fs::temp_directory_path().string() + "/spinprune_reliability_" + std::to_string(::getpid()) + "/" + name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

std::string write_file(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A safetensors file: 8-byte little-endian header length, the JSON header, the data bytes.
std::string safetensors(const std::string& header, const std::string& data = "") {
    std::string out;
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
    return out + header + data;
}

// Runs `f` in a child process: "error: <what>" for a clean sp::Error, "ok" for a return, else
// how the child died (an abort in a library is then a failed check, not a dead test binary).
template <class F>
std::string in_child(F&& f) {
    int pipe_fd[2];
    REQUIRE(::pipe(pipe_fd) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(pipe_fd[0]);
        for (int sig : {SIGABRT, SIGSEGV, SIGFPE, SIGILL, SIGBUS}) std::signal(sig, SIG_DFL);  // not doctest's handlers
        std::string result = "ok";
        try {
            f();
        } catch (const Error& e) {
            result = std::string("error: ") + e.what();
        }
        (void)!::write(pipe_fd[1], result.data(), result.size());
        ::_exit(0);
    }
    ::close(pipe_fd[1]);
    std::string out;
    char buffer[4096];
    for (ssize_t n; (n = ::read(pipe_fd[0], buffer, sizeof buffer)) > 0;) out.append(buffer, static_cast<size_t>(n));
    ::close(pipe_fd[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
    return out;
}

// A small LeNet run on a Fashion-MNIST subset: 500 training images, 10 steps of 50 per epoch.
ExperimentConfig small_config(const std::string& dir, const std::string& train_extra = "") {
    return parse_config("name = \"rel\"\nseed = 5\ndevice = \"cpu\"\ndeterministic = true\n"
                        "[data]\ntrain_subset = 600\nvalidation = 100\n"
                        "[train]\nepochs = 2\nbatch_size = 50\neval_batch_size = 500\nlr = 0.05\n" + train_extra,
                        dir + "/rel.toml");
}

TrainOptions quiet_options(const std::string& out) {
    TrainOptions o;
    o.out_dir = out;
    o.quiet = true;
    return o;
}

std::vector<nlohmann::json> read_metrics(const std::string& dir) {
    std::vector<nlohmann::json> records;
    std::ifstream in(dir + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
    return records;
}

bool all_finite(const std::vector<float>& v) {
    for (float x : v)
        if (!std::isfinite(x)) return false;
    return true;
}

// Starts the program with `args`, its stdout and stderr into `log`.
pid_t start_program(const std::vector<std::string>& args, const std::string& log) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        FILE* out = std::freopen(log.c_str(), "w", stdout);
        if (out) ::dup2(::fileno(out), STDERR_FILENO);
        std::vector<char*> argv;
        for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    return pid;
}

int wait_exit(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

}  // namespace

// ---- inputs found by `make fuzz` ------------------------------------------------------------

TEST_CASE("fuzz regression: a checkpoint with an empty tensor loads (memcpy from a null vector was UB)") {
    // checkpoint_fuzz, first run: a (0, 3) tensor beside a (1) tensor; UBSan flagged memcpy(nullptr, ..., 0).
    const std::string bytes = safetensors(R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},)"
                                          R"("x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                          std::string("\x00\x00\x80\x3f", 4));
    Checkpoint ck = parse_checkpoint(bytes, "empty.safetensors");
    CHECK(ck.get("e", Shape{0, 3}).values.empty());
    CHECK(ck.get("x", Shape{1}).values == std::vector<float>{1.0f});
}

// toml++ 3.3.0 asserts (aborting the process) on a table header whose key starts with a
// character no key can start with (upstream: marzer/tomlplusplus#301); train/config.cpp compiles
// the assertions out, so the parser reports its own error. Run in a child: a regression aborts.
TEST_CASE("fuzz regression: a malformed table header is a parse error, not an abort") {
    for (const char* text : {"[=train]\nepochs = 3\n", "[[[a]]]\n", "[train]\n[=x]\n"}) {
        const std::string result = in_child([&] { parse_config(text, "header.toml"); });
        CHECK_MESSAGE(result.rfind("error: header.toml:", 0) == 0, text, " gave: ", result);
    }
}

// config_fuzz: NaN passes every range check (NaN < lo and NaN > hi are both false).
TEST_CASE("fuzz regression: NaN is refused for ranged keys") {
    CHECK(error_of([] { parse_config("[train]\nlr = nan\n", "nan.toml"); }).find("key 'train.lr'") != std::string::npos);
    CHECK(error_of([] { parse_config("[prune]\nkeep = nan\n", "nan.toml"); }).find("key 'prune.keep'") != std::string::npos);
}

// config_fuzz: toml++ 3.3.0 reaches __builtin_unreachable when it asks whether a non-ASCII code
// point is whitespace (a mistyped BOM "EF BB 9F", a "§" after a bare key); config.cpp refuses
// non-ASCII text where TOML allows none before parsing, and keeps it in strings and comments.
TEST_CASE("fuzz regression: non-ASCII text outside strings and comments is refused before parsing, naming the line") {
    auto error = [](const std::string& text, std::vector<std::string> overrides = {}) {
        return error_of([&] { parse_config(text, "u.toml", overrides); });
    };
    CHECK(error("seed = 1\n\xEF\xBB\x9F[train]\n").find("u.toml:2: a non-ASCII character outside a string or comment") !=
          std::string::npos);
    CHECK(error("t\xC2\xA7" "1 = 2\n").find("u.toml:1: a non-ASCII character") != std::string::npos);
    CHECK(error("a = 90x\"N\xD2\x90\"\n").find("u.toml:1: a non-ASCII character") != std::string::npos);  // no string start
    // A second `=` inside a value opens no string either (fuzz find of session 4).
    CHECK(error("o=0-0='00\xEF\xBB\xBF" "0000\n").find("u.toml:1: a non-ASCII character") != std::string::npos);
    CHECK(error("o = { a = 1, b = [1, 2] }=\"\xC2\xA7\"\n").find("u.toml:1: a non-ASCII character") != std::string::npos);
    CHECK(error("t = 06:00:06.\"\"\"S\xC2\xA7\"\"\"\n").find("u.toml:1: a non-ASCII character") != std::string::npos);
    CHECK(error("name = \"\"\"a \\\n  \xC2\xA7\"\"\"\n").find("after a backslash") != std::string::npos);
    CHECK(error("", {"train.lr=\xC2\xA7"}).find("--set 'train.lr=") != std::string::npos);
    CHECK(error("", {"train.lr=00='00\xEF\xBB\x85"}).find("--set 'train.lr=") != std::string::npos);  // a value's `=`
    CHECK(error(std::string("a = \0\"e\xEF\xBB\xBE\"\n", 11)).find("u.toml:1: a non-ASCII character") != std::string::npos);  // after NUL
    // Allowed: a byte-order mark, and any UTF-8 in comments, strings and quoted keys.
    const ExperimentConfig ok = parse_config("\xEF\xBB\xBF# docs/methods.md \xC2\xA7" "1, caf\xC3\xA9\nname = \"r\xC3\xA9sum\xC3\xA9 \xC2\xA7" "1\"\n"
                                             "seed = 7 # \xE2\x86\x92 the paper's\n"
                                             "[model]\nwidths = { \"caf\xC3\xA9\" = 2, 'b' = 3 }\n", "bom.toml");
    CHECK(ok.model.widths.at("caf\xC3\xA9") == 2);  // quoted keys after `{` and `,` (the model check comes later)
    CHECK(ok.seed == 7);
    CHECK(ok.name == "r\xC3\xA9sum\xC3\xA9 \xC2\xA7" "1");
}

// config_fuzz: toml++ 3.3's default formatter wrote a string holding ''' and a newline as a
// multi-line literal string that does not parse back; to_toml writes basic strings only.
TEST_CASE("fuzz regression: every accepted config survives to_toml and a re-parse") {
    const ExperimentConfig c = parse_config("name = \"fas')dt899_dr'''b\\ne\"\n", "q.toml");
    CHECK(c.name == "fas')dt899_dr'''b\ne");
    CHECK(parse_config(to_toml(c), "resolved").name == c.name);
}

// ---- the mask file reader -------------------------------------------------------------------

TEST_CASE("mask file: a saved mask reads back; bad values, shapes and formats are refused with the file named") {
    const std::string dir = scratch("mask");
    Tensor state = Tensor::from_host({1, 0, 1, 1, 0}, Shape{5}, Device::cpu);
    const std::map<std::string, std::string> meta = {{"format", kMaskFormat}, {"method", "l1-filter"}, {"granularity", "filter"}};
    const std::string path = dir + "/mask.safetensors";
    save_checkpoint(path, {{"state", &state}}, meta);
    MaskFile mask = load_mask(path, 5);
    CHECK(mask.state == state.to_host());
    CHECK(mask.metadata.at("method") == "l1-filter");

    CHECK(error_of([&] { load_mask(path, 6); }).find("expects (6) units") != std::string::npos);
    CHECK(error_of([&] { load_mask(dir + "/absent.safetensors", 5); }).find("absent.safetensors") != std::string::npos);
    Tensor half = Tensor::from_host({1, 0, 0.5f, 1, 0}, Shape{5}, Device::cpu);
    save_checkpoint(path, {{"state", &half}}, meta);
    CHECK(error_of([&] { load_mask(path, 5); }).find("mask unit 2 is 0.5, expected 0 (pruned) or 1 (kept)") != std::string::npos);
    Tensor nan = Tensor::from_host({1, 0, 1, NAN, 0}, Shape{5}, Device::cpu);
    save_checkpoint(path, {{"state", &nan}}, meta);
    CHECK(error_of([&] { load_mask(path, 5); }).find("mask unit 3") != std::string::npos);
    save_checkpoint(path, {{"state", &state}}, {{"format", "spinprune-checkpoint"}});
    CHECK(error_of([&] { load_mask(path, 5); }).find("not a mask file") != std::string::npos);
    save_checkpoint(path, {{"other", &state}}, meta);
    CHECK(error_of([&] { load_mask(path, 5); }).find("no tensor 'state'") != std::string::npos);
}

// ---- numerics -------------------------------------------------------------------------------

namespace {

// A store of 2 + 1500 + 7 parameters, laid out with alignment padding: 64 + 1536 + 7 = 1607
// floats = 1024 chunks of 1 with a tail of 583, so a NaN in the chunk part and one in the tail
// both have to be seen.
void check_gradient_guard(Device device) {
    ParameterStore store;
    store.add_parameter("a", Shape{2}, Init::zeros);
    store.add_parameter("b", Shape{1500}, Init::zeros);
    store.add_parameter("c", Shape{7}, Init::zeros);
    store.allocate(device, 1);
    const int64_t n = store.parameter_floats();
    REQUIRE(n == 1607);
    Context ctx(device);
    Tensor partials;
    store.grads().copy_from(Tensor::from_host(test::random_values(n, 3), Shape{n}, Device::cpu));
    CHECK(gradients_finite(ctx, store, partials));
    for (int64_t at : {int64_t{0}, int64_t{700}, store.parameters()[2].offset + 6}) {
        for (float bad : {NAN, INFINITY, -INFINITY}) {
            std::vector<float> g = test::random_values(n, 3);
            g[static_cast<size_t>(at)] = bad;
            store.grads().copy_from(Tensor::from_host(g, Shape{n}, Device::cpu));
            CHECK_MESSAGE(!gradients_finite(ctx, store, partials), "index ", at, " value ", bad);
        }
    }
    // Large finite gradients are not a false alarm: 1e30 summed over 1607 terms stays below FLT_MAX.
    store.grads().fill(1e30f);
    CHECK(gradients_finite(ctx, store, partials));
}

}  // namespace

TEST_CASE("numerics: the gradient guard finds a NaN or Inf anywhere in the flat buffer (cpu)") {
    check_gradient_guard(Device::cpu);
}

GPU_TEST_CASE("numerics: the gradient guard finds a NaN or Inf anywhere in the flat buffer (cuda)") {
    check_gradient_guard(Device::cuda);
}

TEST_CASE("numerics: describe_nonfinite names the input, the parameters and the first bad layer output") {
    auto model = make_model("lenet", 1, 28, 28, 10);
    model->allocate(Device::cpu, 2);
    Context ctx(Device::cpu);
    std::vector<float> x = test::random_values(4 * 784, 9, 0.0f, 1.0f);
    x[2 * 784 + 5] = NAN;  // image 2 of the batch
    Tensor images = Tensor::from_host(x, Shape{4, 1, 28, 28}, Device::cpu);
    model->forward(ctx, images);
    const std::string input = describe_nonfinite(*model, images, false);
    CHECK_MESSAGE(input.find("the input batch holds 1 non-finite values (the first in image 2 of the batch)") != std::string::npos, input);
    CHECK_MESSAGE(input.find("the first layer whose output is non-finite is conv1") != std::string::npos, input);

    // A NaN weight of the last layer: its output is the first bad one; its gradient, poked in,
    // is reported as the one nearest the output.
    ParameterStore& store = model->parameters();
    const ParameterInfo* fc2 = nullptr;
    for (const ParameterInfo& p : store.parameters())
        if (p.name == "fc2.weight") fc2 = &p;
    REQUIRE(fc2 != nullptr);
    std::vector<float> values = store.values().to_host();
    values[static_cast<size_t>(fc2->offset)] = INFINITY;
    store.values().copy_from(Tensor::from_host(values, Shape{store.parameter_floats()}, Device::cpu));
    x[2 * 784 + 5] = 0.5f;
    Tensor clean = Tensor::from_host(x, Shape{4, 1, 28, 28}, Device::cpu);
    model->forward(ctx, clean);
    std::vector<float> grads(static_cast<size_t>(store.parameter_floats()), 0.0f);
    grads[static_cast<size_t>(fc2->offset + 3)] = NAN;
    grads[0] = NAN;
    store.grads().copy_from(Tensor::from_host(grads, Shape{store.parameter_floats()}, Device::cpu));
    const std::string weight = describe_nonfinite(*model, clean, true);
    CHECK_MESSAGE(weight.find("input") == std::string::npos, weight);
    CHECK_MESSAGE(weight.find("non-finite parameter values in fc2.weight") != std::string::npos, weight);
    CHECK_MESSAGE(weight.find("the first layer whose output is non-finite is fc2") != std::string::npos, weight);
    CHECK_MESSAGE(weight.find("non-finite gradients in 2 of") != std::string::npos, weight);
    CHECK_MESSAGE(weight.find("first (nearest the output) in fc2.weight") != std::string::npos, weight);
}

TEST_CASE("numerics: a NaN in the input stops training naming the step and layer; the last good checkpoint stays" *
          doctest::skip(!fashion_mnist_available())) {
    const std::string dir = scratch("nan_stop");
    const ExperimentConfig config = small_config(dir);
    Run run(config, quiet_options(dir + "/run"));
    TrainConfig one_epoch = config.train;
    one_epoch.epochs = 1;
    REQUIRE(fit(run, *run.model, one_epoch, "train"));
    const std::string checkpoint = dir + "/run/checkpoint.safetensors";
    const std::string good = read_file(checkpoint);
    REQUIRE(!good.empty());
    // The disk check's estimate covers the checkpoint written, with at most the header margin to spare.
    const uint64_t estimate = training_checkpoint_bytes(*run.model, config.train);
    CHECK(estimate >= good.size());
    CHECK(estimate <= good.size() + (uint64_t{1} << 20));

    run.data.split.train.images.data()[3 * 784 + 100] = NAN;  // one pixel of training image 3
    const std::string message = error_of([&] { fit(run, *run.model, config.train, "train"); });
    INFO(message);
    // BN spreads the NaN over the batch and ReLU maps NaN to 0, so the loss may stay finite
    // while every gradient behind BN is NaN: either is caught at this step.
    CHECK((message.find("train: non-finite loss (") != std::string::npos ||
           message.find("train: non-finite gradients at step ") != std::string::npos));
    CHECK(message.find(" at step ") != std::string::npos);
    CHECK(message.find("(epoch 2, batch ") != std::string::npos);
    CHECK(message.find("the input batch holds 1 non-finite values") != std::string::npos);
    CHECK(message.find("the first layer whose output is non-finite is conv1") != std::string::npos);
    CHECK(message.find("the last good checkpoint " + checkpoint + " is kept") != std::string::npos);
    CHECK(message.find("train.on_nonfinite = \"skip\"") != std::string::npos);
    CHECK(read_file(checkpoint) == good);
    CHECK(read_metrics(dir + "/run").size() == 1);
}

TEST_CASE("numerics: on_nonfinite = \"skip\" skips the bad step, keeps the BN statistics finite and continues" *
          doctest::skip(!fashion_mnist_available())) {
    const std::string dir = scratch("nan_skip");
    const ExperimentConfig config = small_config(dir, "on_nonfinite = \"skip\"\n");
    Run run(config, quiet_options(dir + "/run"));
    run.data.split.train.images.data()[7 * 784 + 10] = INFINITY;  // in one batch of every epoch
    REQUIRE(fit(run, *run.model, config.train, "train"));
    const auto metrics = read_metrics(dir + "/run");
    REQUIRE(metrics.size() == 2);
    for (const auto& record : metrics) {
        CHECK(record["skipped_steps"].get<int64_t>() == 1);
        CHECK(std::isfinite(record["train_loss"].get<double>()));
    }
    CHECK(all_finite(run.model->parameters().values().to_host()));
    CHECK(all_finite(run.model->parameters().states().to_host()));  // the bad step's BN update was undone
    Checkpoint ck = load_checkpoint(dir + "/run/checkpoint.safetensors");
    CHECK(ck.meta("optimizer_steps") == "18");  // 2 epochs of 10 steps, 2 skipped
    CHECK(error_of([&] { small_config(dir, "on_nonfinite = \"ignore\"\n"); })
              .find("key 'train.on_nonfinite': expected one of stop, skip, got 'ignore'") != std::string::npos);
}

TEST_CASE("resources: a run whose config.toml predates a key resumes; a changed config is refused" *
          doctest::skip(!fashion_mnist_available())) {
    const std::string dir = scratch("older_config");
    const ExperimentConfig config = small_config(dir);
    TrainOptions options = quiet_options(dir + "/run");
    {
        Run run(config, options);  // writes config.toml; no training needed
    }
    // As an older spinprune wrote it: without the keys added since (here `math` and
    // `train.on_nonfinite`), which take their defaults when read back.
    const std::string path = dir + "/run/config.toml";
    std::istringstream saved(read_file(path));
    std::string older;
    for (std::string line; std::getline(saved, line);) {
        const std::string key = line.substr(std::min(line.size(), line.find_first_not_of(" \t")));
        if (key.rfind("math =", 0) != 0 && key.rfind("on_nonfinite =", 0) != 0) older += line + "\n";
    }
    REQUIRE(older.size() < read_file(path).size());
    write_file(path, older);
    options.resume = true;
    CHECK_NOTHROW(Run(config, options));
    ExperimentConfig changed = config;
    changed.train.lr = 0.1;
    const std::string error = error_of([&] { Run(changed, options); });
    CHECK(error.find("the config differs from the one") != std::string::npos);
    CHECK(error.find("train.lr: ") != std::string::npos);  // and names the key
}

TEST_CASE("numerics: corrupt progress metadata in a checkpoint is an error naming the file and key" *
          doctest::skip(!fashion_mnist_available())) {
    const std::string dir = scratch("bad_meta");
    const ExperimentConfig config = small_config(dir);
    TrainOptions options = quiet_options(dir + "/run");
    options.stop_after_steps = 3;
    Run run(config, options);
    REQUIRE_FALSE(fit(run, *run.model, config.train, "train"));
    const std::string path = dir + "/run/checkpoint.safetensors";
    Checkpoint ck = load_checkpoint(path);
    auto rewrite = [&](const std::string& key, const std::string& value) {
        Checkpoint edited = ck;
        edited.metadata[key] = value;
        save_checkpoint(path, edited);
    };
    run.options.stop_after_steps = -1;
    rewrite("epoch_loss_sum", "garbage");
    CHECK(error_of([&] { fit(run, *run.model, config.train, "train"); })
              .find(path + ": metadata 'epoch_loss_sum' is not a number: 'garbage'") != std::string::npos);
    rewrite("batch", "7x");
    CHECK(error_of([&] { fit(run, *run.model, config.train, "train"); })
              .find("metadata 'batch' is not an integer: '7x'") != std::string::npos);
    rewrite("epoch", "-3");
    CHECK(error_of([&] { fit(run, *run.model, config.train, "train"); })
              .find("its position (epoch -3, batch 3) lies outside this phase's 2 epochs of 10 batches") != std::string::npos);
}

// ---- resources ------------------------------------------------------------------------------

TEST_CASE("resources: an unusable output directory and a too-small disk are reported with the path") {
    const std::string dir = scratch("resources");
    const std::string file = write_file(dir + "/a_file", "x");
    CHECK(error_of([&] { RunDir(file + "/run"); }).find("cannot create run directory " + file + "/run") != std::string::npos);
    if (::geteuid() != 0) {  // root writes into read-only directories
        fs::create_directories(dir + "/locked");
        fs::permissions(dir + "/locked", fs::perms::owner_read | fs::perms::owner_exec);
        CHECK(error_of([&] { RunDir(dir + "/locked"); }).find("run directory " + dir + "/locked is not writable") != std::string::npos);
        fs::permissions(dir + "/locked", fs::perms::owner_all);
    }
    RunDir run_dir(dir + "/ok");
    CHECK(fs::is_empty(dir + "/ok"));  // the write probe is removed
    CHECK_NOTHROW(run_dir.require_free_space(1, "checkpoints"));
    const std::string message = error_of([&] { run_dir.require_free_space(uint64_t{1} << 62, "train checkpoints of lenet"); });
    CHECK_MESSAGE(message.find("run directory " + dir + "/ok: not enough free disk space for the train checkpoints of lenet: "
                               "expected at least 4398046511104 MiB") != std::string::npos, message);
}

TEST_CASE("resources: SIGTERM and SIGINT stop `spinprune train` cleanly with a readable final checkpoint" *
          doctest::skip(!fashion_mnist_available())) {
    REQUIRE_MESSAGE(fs::exists(test::spinprune_program()), "the program under test " << test::spinprune_program() << " is not built");
    const std::string dir = scratch("signals");
    const std::string config = write_file(dir + "/s.toml",
                                          "name = \"s\"\nseed = 2\ndevice = \"cpu\"\n[data]\ntrain_subset = 2200\nvalidation = 200\n"
                                          "[train]\nepochs = 50\nbatch_size = 50\neval_batch_size = 1000\n");
    for (int signal : {SIGTERM, SIGINT}) {
        const std::string out = dir + "/run" + std::to_string(signal), log = out + ".log";
        const pid_t pid = start_program({test::spinprune_program(), "train", "--config", config, "--out", out}, log);
        // Until training is under way (the data is loaded: the run directory has its environment).
        for (int i = 0; i < 400 && !fs::exists(out + "/environment.json"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        REQUIRE(::kill(pid, signal) == 0);
        CHECK(wait_exit(pid) == 130);  // stopped, not completed
        const std::string text = read_file(log);
        CHECK_MESSAGE(text.find("stopped (signal)") != std::string::npos, text);
        Checkpoint ck = load_checkpoint(out + "/checkpoint.safetensors");
        CHECK(std::stoll(ck.meta("optimizer_steps")) > 0);
        for (const auto& e : fs::directory_iterator(out)) CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
    }
}

// ---- bad inputs, each with a clear message ------------------------------------------------

TEST_CASE("bad inputs: data files, names, ranges, checkpoints and devices are named in the error") {
    const std::string dir = scratch("bad_inputs");
    auto config_error = [&](const std::string& text) { return error_of([&] { parse_config(text, dir + "/bad.toml"); }); };
    auto has = [](const std::string& message, const std::string& part) {
        INFO(message);
        CHECK(message.find(part) != std::string::npos);
    };
    // Missing and truncated data files, wrong image sizes.
    has(error_of([&] { load_fashion_mnist(dir, true); }), "missing file: neither '" + dir + "/train-images-idx3-ubyte'");
    DataConfig cifar;
    cifar.dataset = "cifar10";
    cifar.dir = dir + "/no-cifar";
    has(error_of([&] { load_experiment_data(cifar, true); }), "cifar10: no directory " + dir + "/no-cifar (run `make data-cifar10`");
    write_file(dir + "/test_batch.bin", std::string(3073 + 100, '\1'));
    has(error_of([&] { load_cifar10(dir, false); }), dir + "/test_batch.bin' is truncated: expected a multiple of 3073 bytes");
    // An IDX of 2 images of 32x32 where Fashion-MNIST's are 28x28.
    std::string images("\0\0\x08\x03\0\0\0\x02\0\0\0\x20\0\0\0\x20", 16), labels("\0\0\x08\x01\0\0\0\x02\x01\x02", 10);
    write_file(dir + "/t10k-images-idx3-ubyte", images + std::string(2 * 32 * 32, '\7'));
    write_file(dir + "/t10k-labels-idx1-ubyte", labels);
    has(error_of([&] { load_fashion_mnist(dir, false); }), "expected 28x28 images, found 32x32");
    write_file(dir + "/t10k-images-idx3-ubyte", images + std::string(2 * 32 * 32 - 1, '\7'));
    has(error_of([&] { load_fashion_mnist(dir, false); }), "t10k-images-idx3-ubyte' is truncated");

    // Unknown names.
    has(config_error("[model]\nname = \"resnet19\"\n"), "bad.toml: key 'model.name': expected one of lenet");
    has(config_error("[prune]\nmethod = \"prune-it\"\n"), "key 'prune.method': expected one of none, random");
    has(config_error("[prune.edropout]\nenergy = \"entropy\"\n"), "key 'prune.edropout.energy': expected one of margin, cross-entropy, error, ising, got 'entropy'");
    has(config_error("[data]\ndataset = \"mnist\"\n"), "key 'data.dataset': expected one of fashion-mnist");
    has(error_of([] { make_model("resnet19", 1, 28, 28, 10); }), "make_model: unknown model 'resnet19'; known: lenet");

    // Out-of-range keys: negative rates, budgets above 100%, populations too small for DE.
    has(config_error("[prune]\nrates = [0.5, -0.1]\n"), "key 'prune.rates': expected a value in [0, 0.999], got -0.1");
    has(config_error("[prune]\nkeep = 1.5\n"), "key 'prune.keep': expected a value in [1e-06, 1], got 1.5");
    has(config_error("[prune.edropout]\nmembers = 1\n"), "key 'prune.edropout.members': expected a value in [4, 4096], got 1");
    has(config_error("[train]\nlr = -0.1\n"), "key 'train.lr': expected a value in [0, 1000], got -0.1");
    has(config_error("[data]\nvalidation = -5\n"), "key 'data.validation'");

    // A checkpoint of another model, and of the same model at another width.
    auto lenet = make_model("lenet", 1, 28, 28, 10);
    lenet->allocate(Device::cpu, 1);
    ExperimentConfig lenet_config;
    const std::string checkpoint = dir + "/lenet.safetensors";
    save_model(checkpoint, *lenet, lenet_config, Normalization{});
    auto resnet = make_model("resnet20", 1, 28, 28, 10);
    resnet->allocate(Device::cpu, 1);
    has(error_of([&] { load_model_weights(*resnet, checkpoint); }),
        checkpoint + ": checkpoint holds model 'lenet', the config asks for 'resnet20'");
    ModelOptions narrow;
    narrow.widths = {{"conv1", 8}};
    auto thin = make_model("lenet", 1, 28, 28, 10, narrow);
    thin->allocate(Device::cpu, 1);
    has(error_of([&] { load_model_weights(*thin, checkpoint); }), checkpoint + ": tensor 'conv1.weight' has shape (16, 1, 3, 3), the model expects (8, 1, 3, 3)");

    // --device cuda without a usable GPU, from the library and from the command line.
    if (!cuda_available()) {
        has(error_of([] { resolve_device("cuda"); }), "--device cuda: no usable CUDA GPU found");
        if (fs::exists(test::spinprune_program())) {
            const std::string config = write_file(dir + "/c.toml", "name = \"c\"\n");
            const std::string log = dir + "/cuda.log";
            CHECK(wait_exit(start_program({test::spinprune_program(), "train", "--config", config, "--device", "cuda", "--out", dir + "/c"}, log)) == 1);
            has(read_file(log), "spinprune: error: --device cuda: no usable CUDA GPU found");
        }
    }
}
