// Sweeps (scripts/repro.py with scripts/sweep.py) with real runs of the program under test: two
// at once on this machine's CPU cores (SCHED=local JOBS=2), and as a Slurm job array on a real
// one-node Slurm (Debian's slurm-wlm and munge) that this file starts on localhost with a
// generated slurm.conf in a temporary folder (scripts/slurm_cluster.py) and stops by PID.
// The Slurm cases are skipped, and counted as skipped, when that cluster cannot start; the reason
// is printed before the tests run. SPINPRUNE_TEST_SLURM=0 skips them on purpose.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "data/idx.h"
#include "tests/script_helpers.h"

namespace fs = std::filesystem;
using namespace script_test;

namespace {

size_t count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
    return n;
}

// The program under test, as an absolute path: the runs start from the repository root.
std::string program() {
    const char* env = std::getenv("SPINPRUNE_BIN");
    return fs::absolute(env && *env ? env : "bin/spinprune").string();
}

// A LeNet run of a few seconds on one core: 600 training images (100 held out), `epochs` epochs,
// L1-norm filter pruning to half the parameters, one epoch of fine-tuning.
std::string tiny_config(const std::string& name, int epochs) {
    return "name = \"" + name + "\"\ndevice = \"cpu\"\ndeterministic = true\n"
           "[data]\ntrain_subset = 600\nvalidation = 100\n"
           "[train]\nepochs = " + std::to_string(epochs) + "\nbatch_size = 50\neval_batch_size = 1000\n"
           "[prune]\nmethod = \"l1-filter\"\nkeep = 0.5\n[finetune]\nepochs = 1\nbatch_size = 50\n";
}

bool completed(const fs::path& run) {
    try {
        return nlohmann::json::parse(read_text(run / "summary.json")).value("completed", false);
    } catch (const std::exception&) {
        return false;
    }
}

// metrics.jsonl as "phase epoch" -> records: a resumed run holds each once, as an uninterrupted one.
std::map<std::string, int> epoch_records(const fs::path& run) {
    std::map<std::string, int> records;
    std::ifstream in(run / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_object() && j.contains("epoch") && j.contains("phase"))
            ++records[j["phase"].get<std::string>() + " " + std::to_string(j["epoch"].get<long long>())];
    }
    return records;
}

// Polls `done` every 0.2 s for up to `seconds`; whether it came true.
template <class F>
bool wait_until(F done, double seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!done()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return true;
}

// The one-node Slurm of this test binary: started once, when the test cases are registered (a
// skip must be decided then), and stopped when the binary exits; a watcher process stops it too
// if the binary dies without running its destructors. main() may execute this binary again in
// the same process (cpu::configure_cpu_blas); the new image adopts what the first one decided,
// handed on in the environment, instead of starting a second cluster.
struct LocalSlurm {
    fs::path dir;
    std::string conf, why_not;

    LocalSlurm() {
        const std::string me = std::to_string(::getpid()) + ":";
        const char* handed = std::getenv("SPINPRUNE_TEST_SLURM_STATE");
        if (handed && std::string(handed).rfind(me, 0) == 0) {
            const std::string state = std::string(handed).substr(me.size());
            if (state.rfind("up:", 0) == 0) conf = state.substr(3), dir = fs::path(conf).parent_path();
            else why_not = state.substr(state.find(':') + 1);
            return;
        }
        const char* opt = std::getenv("SPINPRUNE_TEST_SLURM");
        if (opt && std::string(opt) == "0") {
            why_not = "SPINPRUNE_TEST_SLURM=0";
        } else if (!fs::exists("scripts/slurm_cluster.py")) {
            why_not = "scripts/slurm_cluster.py not found (run the tests from the repository root)";
        } else if (!sp::fashion_mnist_available()) {
            why_not = "Fashion-MNIST is not installed (make deps)";
        } else {
            dir = fs::temp_directory_path() / ("spinprune_test_slurm_" + std::to_string(::getpid()));
            fs::remove_all(dir);
            const fs::path out = dir.string() + ".start.txt";
            // Two CPUs whatever the machine has: two tasks at once, as the scenario expects.
            const int rc = run(python() + " scripts/slurm_cluster.py start " + dir.string() + " --cpus 2 --watch " +
                                   std::to_string(::getpid()),
                               out);
            const std::string said = read_text(out);
            fs::remove(out);
            if (rc == 0) {
                conf = (dir / "slurm.conf").string();
            } else {
                why_not = said.empty() ? "scripts/slurm_cluster.py exited with " + std::to_string(rc) : said;
                fs::remove_all(dir);
            }
        }
        ::setenv("SPINPRUNE_TEST_SLURM_STATE", (me + (up() ? "up:" + conf : "skip:" + why_not)).c_str(), 1);
        if (!up()) std::fprintf(stderr, "Slurm sweep tests skipped: %s\n", why_not.c_str());
    }
    ~LocalSlurm() {
        if (!up()) return;
        std::system((python() + " scripts/slurm_cluster.py stop " + dir.string() + " >/dev/null 2>&1").c_str());
        fs::remove_all(dir);
    }
    bool up() const { return !conf.empty(); }
    // A command line run against this cluster.
    std::string env() const { return "SLURM_CONF=" + conf + " "; }
};

const LocalSlurm& local_slurm() {
    static LocalSlurm cluster;
    return cluster;
}

// Two tiny experiments in `root`/configs and a repro list naming them.
fs::path write_sweep(const fs::path& root, int epochs_a, int epochs_b) {
    write_text(root / "configs" / "sweep_a.toml", tiny_config("sweep_a", epochs_a));
    write_text(root / "configs" / "sweep_b.toml", tiny_config("sweep_b", epochs_b));
    write_text(root / "list.txt", "# the test sweep\nconfigs/sweep_a.toml\nconfigs/sweep_b.toml\n");
    return root / "list.txt";
}

std::string repro(const fs::path& root, const fs::path& list, int seeds, const std::string& sched) {
    return python() + " scripts/repro.py " + list.string() + " --root " + root.string() + " --seeds " +
           std::to_string(seeds) + " --out " + (root / "runs").string() + " --bin " + program() +
           " --device cpu --title sweep --no-plots " + sched;
}

// Array job ids that scripts/sweep.py reported submitting, in order.
std::vector<std::string> submitted_jobs(const std::string& log) {
    std::vector<std::string> ids;
    const std::string tag = "submitted job array ";
    for (size_t at = log.find(tag); at != std::string::npos; at = log.find(tag, at + 1))
        ids.push_back(log.substr(at + tag.size(), log.find(':', at) - at - tag.size()));
    return ids;
}

}  // namespace

TEST_CASE("sweep, SCHED=local JOBS=2: two runs at once on their own cores; stopped by SIGTERM, they resume; "
          "complete runs are skipped" * doctest::skip(!sp::fashion_mnist_available())) {
    REQUIRE_MESSAGE(fs::exists("scripts/repro.py"), "run the tests from the repository root");
    REQUIRE_MESSAGE(fs::exists(program()), "the program under test " << program() << " is not built");
    const fs::path root = fresh_dir("sweep_local"), log = root / "log.txt";
    const fs::path list = write_sweep(root, 10, 10);
    const std::string cmd = repro(root, list, 1, "--sched local --jobs 2");
    const std::vector<fs::path> runs = {root / "runs" / "sweep_a" / "seed1", root / "runs" / "sweep_b" / "seed1"};
    auto starts = [](const fs::path& run) { return count(read_text(run.string() + ".log"), "== sweep: 20"); };

    // First pass: the sweep gets SIGTERM once both runs (10 epochs each) have written their first
    // epoch, so they ran at once; it hands the signal on, and each run stops with a checkpoint.
    const std::string pid_file = (root / "pid").string();
    REQUIRE(run("(exec " + cmd + ") & echo $! > " + pid_file, log) == 0);
    const bool started = wait_until([&] { return !epoch_records(runs[0]).empty() && !epoch_records(runs[1]).empty(); }, 120);
    REQUIRE(run("kill -TERM $(cat " + pid_file + ")", log) == 0);
    // The sweep's last words: the runs that did not complete, then the report.
    CHECK(wait_until([&] { return read_text(log).find("report: ") != std::string::npos; }, 60));
    REQUIRE_MESSAGE(started, read_text(log));
    const std::string first = read_text(log);
    INFO(first);
    CHECK(first.find("sweep_a seed 1 stopped with a checkpoint") != std::string::npos);
    CHECK(first.find("sweep_b seed 1 stopped with a checkpoint") != std::string::npos);
    CHECK(first.find("repro: not completed: sweep_b seed 1: see " + runs[1].string() + ".log") != std::string::npos);
    // Each pinned to its own core (this machine's cores split in two; one core each on two).
    std::set<std::string> core_sets;
    for (const fs::path& run : runs) {
        const std::string text = read_text(run.string() + ".log");
        const size_t at = text.find(", cores ");
        REQUIRE(at != std::string::npos);
        core_sets.insert(text.substr(at, text.find(':', at) - at));
        CHECK_FALSE(completed(run));
    }
    CHECK(core_sets.size() == 2);

    // Second pass: both resume from their checkpoints and complete, one metrics record per epoch.
    REQUIRE_MESSAGE(run(cmd, log) == 0, read_text(log));
    for (const fs::path& run : runs) {
        INFO(run);
        CHECK(completed(run));
        CHECK(starts(run) == 2);
        CHECK(read_text(run.string() + ".log").find(": resumed ") != std::string::npos);
        for (const auto& [record, n] : epoch_records(run)) CHECK_MESSAGE(n == 1, record);
        CHECK(epoch_records(run).size() == 11);  // 10 training epochs, 1 of fine-tuning
    }
    // Third pass: nothing left to run.
    REQUIRE_MESSAGE(run(cmd, log) == 0, read_text(log));
    CHECK(count(read_text(log), "done earlier, skipped") == 2);
    for (const fs::path& run : runs) CHECK(starts(run) == 2);
    auto rows = read_table(root / "runs" / "report" / "results.csv");
    CHECK(rows["sweep_a"]["status"] == "ok");
    CHECK(rows["sweep_b"]["status"] == "ok");
    fs::remove_all(root);
}

TEST_CASE("sweep, SCHED=slurm: a job array on a real Slurm; a task stopped by scancel resumes on resubmission, "
          "which sends only what is missing" * doctest::skip(!local_slurm().up())) {
    REQUIRE(fs::exists(program()));
    const LocalSlurm& slurm = local_slurm();
    const fs::path root = fresh_dir("sweep_slurm"), log = root / "log.txt";
    // sweep_a runs 8 epochs: its seed 1 (task 0, among the first two to start) is stopped midway.
    const fs::path list = write_sweep(root, 8, 1);
    const std::string cmd = slurm.env() + repro(root, list, 2, "--sched slurm --poll 0.5");
    const fs::path victim = root / "runs" / "sweep_a" / "seed1";

    REQUIRE_MESSAGE(run(cmd, log) == 0, read_text(log));
    const std::vector<std::string> first = submitted_jobs(read_text(log));
    REQUIRE_MESSAGE(first.size() == 1, read_text(log));
    CHECK(read_text(log).find("submitted job array " + first[0] + ": 4 runs (tasks 0-3)") != std::string::npos);
    // Stopped midway: after its first epoch's record, as a time limit or preemption would (SIGTERM
    // to the task's batch step, which hands it to the run).
    REQUIRE_MESSAGE(wait_until([&] { return !epoch_records(victim).empty(); }, 120), read_text(log));
    run(slurm.env() + "scancel --batch --signal=TERM " + first[0] + "_0", log);  // its effect is checked below
    const std::string queue = slurm.env() + "squeue -h -j " + first[0] + " | grep -q .";
    REQUIRE_MESSAGE(wait_until([&] { return run(queue, root / "ignored") != 0; }, 150), read_text(log));
    CHECK_FALSE(completed(victim));
    CHECK(read_text(victim.string() + ".log").find("stopped (signal)") != std::string::npos);

    // Resubmitted: only the stopped run goes, and the sweep waits for it, then writes the report.
    const std::string waiting = cmd + " --wait";
    REQUIRE_MESSAGE(run(waiting, log) == 0, read_text(log));
    // And once more: nothing is missing, nothing is submitted.
    REQUIRE_MESSAGE(run(waiting, log) == 0, read_text(log));
    const std::string text = read_text(log);
    INFO(text);
    const std::vector<std::string> jobs = submitted_jobs(text);
    REQUIRE(jobs.size() == 2);
    CHECK(text.find("submitted job array " + jobs[1] + ": 1 run (tasks 0-0)") != std::string::npos);
    CHECK(text.find("nothing to submit") != std::string::npos);
    CHECK(count(text, "done earlier, skipped") == 3 + 4);

    // Every run completed, each ran once, the stopped one twice: resumed from its checkpoint, with
    // one metrics record per epoch.
    for (const char* exp : {"sweep_a", "sweep_b"})
        for (const char* seed : {"seed1", "seed2"}) {
            const fs::path run = root / "runs" / exp / seed;
            INFO(run);
            CHECK(completed(run));
            CHECK(count(read_text(run.string() + ".log"), "== sweep: 20") == (run == victim ? 2 : 1));
            for (const auto& [record, n] : epoch_records(run)) CHECK_MESSAGE(n == 1, record);
        }
    CHECK(read_text(victim.string() + ".log").find(": resumed ") != std::string::npos);
    CHECK(epoch_records(victim).size() == 9);  // 8 training epochs, 1 of fine-tuning
    // The task logs of both arrays are where the sweep said.
    CHECK(fs::exists(root / "runs" / ".sweep" / "logs" / (first[0] + "_3.out")));
    CHECK(fs::exists(root / "runs" / ".sweep" / "logs" / (jobs[1] + "_0.out")));
    auto rows = read_table(root / "runs" / "report" / "results.csv");
    CHECK(rows["sweep_a"]["seeds"] == "1;2");
    CHECK(rows["sweep_b"]["seeds"] == "1;2");
    CHECK(rows["sweep_a"]["status"] == "ok");
    CHECK(rows["sweep_b"]["status"] == "ok");
    fs::remove_all(root);
}

TEST_CASE("sweep, SCHED=slurm: a refused submission (unknown partition) is an error naming it, and leaves nothing "
          "behind" * doctest::skip(!local_slurm().up())) {
    const LocalSlurm& slurm = local_slurm();
    const fs::path root = fresh_dir("sweep_refused"), log = root / "log.txt";
    const fs::path list = write_sweep(root, 1, 1);
    const std::string cmd = repro(root, list, 1, "--sched slurm --partition no_such_partition");
    CHECK(run(slurm.env() + cmd, log) == 2);
    std::string text = read_text(log);
    CHECK(text.find("sbatch refused the array of 2 runs, nothing was submitted") != std::string::npos);
    CHECK(text.find("--partition=no_such_partition") != std::string::npos);
    CHECK(text.find("invalid partition") != std::string::npos);
    // No manifest or batch script of the refused array is left.
    size_t left = 0;
    if (fs::exists(root / "runs" / ".sweep"))
        for (const auto& e : fs::directory_iterator(root / "runs" / ".sweep")) left += e.is_regular_file();
    CHECK(left == 0);
    fs::remove_all(root);
}

TEST_CASE("sweep, SCHED=slurm without the Slurm client commands: an error naming them, nothing submitted") {
    const fs::path root = fresh_dir("sweep_no_slurm"), log = root / "log.txt";
    const fs::path list = write_sweep(root, 1, 1);
    fs::create_directories(root / "empty_bin");
    // The Python interpreter itself (python3 may be a launcher script that needs PATH), run with
    // a PATH that holds no sbatch or squeue.
    const std::string interpreter = "\"$(" + python() + " -c 'import sys; print(sys.executable)')\"";
    const std::string sweep = repro(root, list, 1, "--sched slurm").substr(python().size());
    CHECK(run("PATH=" + (root / "empty_bin").string() + " " + interpreter + sweep, log) == 2);
    INFO(read_text(log));
    CHECK(read_text(log).find("not found: SCHED=slurm needs the Slurm client commands") != std::string::npos);
    CHECK_FALSE(fs::exists(root / "runs" / "sweep_a"));
    fs::remove_all(root);
}
