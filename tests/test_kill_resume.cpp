// Kill and resume: `spinprune train` killed with SIGKILL at random points (one of them while a
// checkpoint is being written) and resumed each time ends with exactly the weights of an
// uninterrupted run; no checkpoint is ever left unreadable.
#include <doctest/doctest.h>

#include <signal.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "data/idx.h"
#include "kernels/philox.h"
#include "nn/checkpoint.h"
#include "nn/context.h"

using namespace sp;

namespace {

// The program under test: $SPINPRUNE_BIN (set by `make test` for its build), else bin/spinprune.
const char* program() {
    const char* env = std::getenv("SPINPRUNE_BIN");
    return env && *env ? env : "bin/spinprune";
}

pid_t start(const std::vector<std::string>& args) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int devnull = ::open("/dev/null", O_WRONLY);
        dup2(devnull, STDOUT_FILENO);
        dup2(devnull, STDERR_FILENO);
        std::vector<char*> argv;
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        execv(program(), argv.data());
        _exit(127);
    }
    return pid;
}

int wait_exit(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// A checkpoint being written: its temporary file (other files, metrics.jsonl among them, are
// written through temporaries too, and do not count).
bool checkpoint_being_written(const std::string& dir) {
    if (!std::filesystem::exists(dir)) return false;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().filename().string().find("checkpoint.safetensors.tmp.") != std::string::npos) return true;
    return false;
}

// Lines of a text file (metrics.jsonl: one record per line).
int lines(const std::string& file) {
    std::ifstream in(file);
    int n = 0;
    for (std::string l; std::getline(in, l);) ++n;
    return n;
}

}  // namespace

TEST_CASE("kill and resume: SIGKILL at random points, resume, same final weights as an uninterrupted run" * doctest::skip(!fashion_mnist_available())) {
    REQUIRE_MESSAGE(std::filesystem::exists(program()), "the program under test " << program() << " is not built");
    const std::string dir = std::filesystem::temp_directory_path().string() + "/spinprune_kill_" + std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string config = dir + "/k.toml";
    std::ofstream(config) << "name = \"k\"\nseed = 4\ndevice = \"cpu\"\ndeterministic = true\n"
                             "[data]\ntrain_subset = 2200\nvalidation = 200\n"
                             "[train]\nepochs = 3\nbatch_size = 50\neval_batch_size = 1000\ncheckpoint_every = 1\n";
    auto args = [&](const std::string& out, bool resume) {
        std::vector<std::string> a = {program(), "train", "--config", config, "--out", out};
        if (resume) a.push_back("--resume");
        return a;
    };
    const std::string straight = dir + "/straight";
    REQUIRE(wait_exit(start(args(straight, false))) == 0);

    const std::string killed = dir + "/killed";
    const uint64_t key = random_stream_key(11, 0x6b696c6c, 0);
    int kills = 0, during_write = 0, attempt = 0;
    for (; attempt < 40; ++attempt) {
        const bool resume = std::filesystem::exists(killed + "/config.toml");
        pid_t pid = start(args(killed, resume));
        if (attempt == 2) {
            // Wait for a checkpoint write in progress (its temporary file), then kill. The wait ends
            // at the first write; its limit only has to outlast a start and an epoch on a loaded
            // 2-core machine under the sanitizers (20 s did not, once, with a build running beside it).
            auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
            while (!checkpoint_being_written(killed) && std::chrono::steady_clock::now() < until)
                std::this_thread::sleep_for(std::chrono::microseconds(200));
            during_write += checkpoint_being_written(killed);
        } else {
            const double delay = 0.3 + 1.5 * stream_uniform(key, static_cast<uint64_t>(attempt));
            std::this_thread::sleep_for(std::chrono::duration<double>(delay));
        }
        if (kill(pid, SIGKILL) == 0) ++kills;
        const int code = wait_exit(pid);
        if (code == 0) break;  // finished before the kill landed
        // Whatever was on disk is readable: the checkpoint is the old or the new one, never torn.
        if (std::filesystem::exists(killed + "/checkpoint.safetensors"))
            CHECK_NOTHROW(load_checkpoint(killed + "/checkpoint.safetensors"));
        if (attempt >= 5) {  // enough kills: let it finish
            REQUIRE(wait_exit(start(args(killed, std::filesystem::exists(killed + "/config.toml")))) == 0);
            break;
        }
    }
    CHECK(kills >= 3);
    CHECK(during_write == 1);
    // The count bench/results/reliability.md reports (doctest prints it with -s or on failure).
    MESSAGE("kill and resume: survived " << kills << " SIGKILLs (" << during_write << " during a checkpoint write) in "
                                         << attempt + 1 << " starts");
    Checkpoint a = load_checkpoint(straight + "/model.safetensors"), b = load_checkpoint(killed + "/model.safetensors");
    REQUIRE(a.tensors.size() == b.tensors.size());
    size_t differing = 0;
    for (const auto& [name, e] : a.tensors) differing += e.values != b.tensors.at(name).values;
    CHECK(differing == 0);
    // One metrics record per epoch, as in the uninterrupted run.
    CHECK(lines(killed + "/metrics.jsonl") == lines(straight + "/metrics.jsonl"));
}

TEST_CASE("kill and resume: a crash between the first epoch's metrics line and its first checkpoint logs the epoch once" * doctest::skip(!fashion_mnist_available())) {
    // The run directory such a crash leaves: the epoch's record written, no checkpoint yet. The
    // resumed run redoes the epoch, so its earlier record must go (it was kept once: 3 lines for 2 epochs).
    REQUIRE_MESSAGE(std::filesystem::exists(program()), "the program under test " << program() << " is not built");
    const std::string dir = std::filesystem::temp_directory_path().string() + "/spinprune_crash_" + std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string config = dir + "/c.toml";
    std::ofstream(config) << "name = \"c\"\nseed = 5\ndevice = \"cpu\"\n"
                             "[data]\ntrain_subset = 1200\nvalidation = 200\n"
                             "[train]\nepochs = 2\nbatch_size = 100\neval_batch_size = 1000\n";
    const std::string straight = dir + "/straight", crashed = dir + "/crashed";
    REQUIRE(wait_exit(start({program(), "train", "--config", config, "--out", straight})) == 0);
    std::filesystem::create_directories(crashed);
    for (const char* name : {"config.toml", "environment.json"})
        std::filesystem::copy_file(straight + "/" + name, crashed + "/" + name);
    std::string first_record;
    std::getline(std::ifstream(straight + "/metrics.jsonl"), first_record);
    std::ofstream(crashed + "/metrics.jsonl") << first_record << "\n";
    REQUIRE(wait_exit(start({program(), "train", "--config", config, "--out", crashed, "--resume"})) == 0);
    CHECK(lines(crashed + "/metrics.jsonl") == lines(straight + "/metrics.jsonl"));
    std::filesystem::remove_all(dir);
}
