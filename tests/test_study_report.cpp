// The matched-budget study's report (scripts/study_report.py) on a fixture of archived runs with
// known numbers: the unpruned reference, L1 and three methods over three seeds, so that every
// paired figure (differences to the unpruned network and to L1, t-interval, sign test, goals) can
// be worked out by hand.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "tests/script_helpers.h"

namespace fs = std::filesystem;
using namespace script_test;

namespace {

// One archived run: config, summary (final top-1, parameters kept) and one [train] epoch of
// `epoch_s` seconds. Method "none" is the unpruned reference (its top-1 is the baseline's).
void write_run(const fs::path& archive, const std::string& name, int seed, const std::string& method, double top1,
               double params_kept, double epoch_s, const std::string& extra_config = "", bool reused_baseline = false) {
    const fs::path d = archive / name / ("seed" + std::to_string(seed));
    write_text(d / "config.toml", "name = \"" + name + "\"\nseed = " + std::to_string(seed) +
                                      "\n[model]\nname = \"lenet\"\n[prune]\nmethod = \"" + method + "\"\n" + extra_config);
    std::ostringstream s;
    s << R"({"experiment": ")" << name << R"(", "seed": )" << seed << R"(, "method": ")" << method
      << R"(", "model": "lenet", "dataset": "fashion-mnist", "completed": true, "device": "test CPU",)"
      << R"( "time_s": {"search": 2.0, "pretrain": 30.0, "total": 60.0}, "baseline": {"top1": )" << (method == "none" ? top1 : 80.0)
      << R"(, "top5": 99.0, "macs": 1000000})";
    if (reused_baseline) s << R"(, "baseline_reused": "baselines/0123")";
    if (method != "none")
        s << R"(, "compacted": {"top1": )" << top1 << R"(, "top5": 99.0, "macs": 400000}, "params_kept": )" << params_kept
          << R"(, "macs_kept": 0.4)";
    s << "}";
    write_text(d / "summary.json", s.str());
    write_text(d / "metrics.jsonl", R"({"epoch":1,"phase":"train","seconds":)" + std::to_string(epoch_s) + "}\n");
    write_text(d / "environment.json", R"({"git_revision": "abc1234"})");
    write_text(d / "latency.json", R"({"measured": "2026-12-07T13:00:00", "pruned": {"ms": {"b1": 0.25, "b128": 8.0}},)"
                                   R"( "dense": {"ms": {"b1": 0.5, "b128": 16.0}}})");
}

}  // namespace

TEST_CASE("study_report.py: paired differences to the unpruned network and to L1, t-interval, sign test, goals") {
    REQUIRE_MESSAGE(fs::exists("scripts/study_report.py"), "run the tests from the repository root");
    const fs::path root = fresh_dir("study_report"), archive = root / "archive", out = root / "report", log = root / "log";
    const double unpruned[] = {90, 91, 92};
    const double l1[] = {88, 89, 90};        // −2 against the unpruned network, every seed
    const double fpgm[] = {89, 90, 91};      // +1 against L1, every seed: interval [+1, +1], above L1
    const double taylor[] = {89, 88, 90.5};  // +1, −1, +0.5 against L1: inside the noise
    const double edropout[] = {89.5, 90.5, 91.5};
    for (int seed = 1; seed <= 3; ++seed) {
        const double u = unpruned[seed - 1];
        write_run(archive, "fmnist_lenet_unpruned", seed, "none", u, 1.0, 10.0);
        write_run(archive, "fmnist_lenet_l1_filter_k40", seed, "l1-filter", l1[seed - 1], 0.4, 10.0);
        write_run(archive, "fmnist_lenet_fpgm_k40", seed, "fpgm", fpgm[seed - 1], 0.4, 10.0, "", /*reused_baseline=*/true);
        write_run(archive, "fmnist_lenet_taylor_k40", seed, "taylor", taylor[seed - 1], 0.4, 10.0);
        // EDropout at 20% of the parameters, −0.5 against the unpruned network; search epochs 1.1× as long
        // (the epoch after the search converged does not count).
        write_run(archive, "fmnist_lenet_edropout_k15", seed, "edropout", edropout[seed - 1], 0.2, 11.0,
                  "[prune.edropout]\nenergy = \"margin\"\n");
        write_text(archive / "fmnist_lenet_edropout_k15" / ("seed" + std::to_string(seed)) / "metrics.jsonl",
                   R"({"epoch":1,"phase":"train","seconds":11.5,"search_converged":false}
{"epoch":2,"phase":"train","seconds":10.5,"search_converged":false}
{"epoch":3,"phase":"train","seconds":6.0,"search_converged":true}
{"epoch":1,"phase":"finetune","seconds":6.0}
)");
    }
    write_text(root / "configs" / "never.toml", "name = \"never_run\"\n");
    write_text(root / "list.txt", "configs/never.toml name=fmnist_lenet_hrank_k40\n");
    write_text(out / "notes.md", "Seen while the runs ran.\n");  // hand-written: the report carries it
    const std::string cmd = python() + " scripts/study_report.py " + archive.string() + " --out " + out.string() +
                            " --expect " + (root / "list.txt").string() + " --root " + root.string();
    REQUIRE_MESSAGE(run(cmd, log) == 0, read_text(log));
    const std::string md = read_text(out / "README.md");
    INFO(md);
    auto rows = read_table(out / "results.csv");
    CHECK(rows["fmnist_lenet_unpruned"]["top-1 %"] == "91.00 ± 1.00");
    CHECK(rows["fmnist_lenet_unpruned"]["latency b1 ms"] == "0.500 ± 0.000");  // the dense network's
    CHECK(rows["fmnist_lenet_l1_filter_k40"]["Δ top-1 vs unpruned"] == "-2.00 ± 0.00");
    CHECK(rows["fmnist_lenet_l1_filter_k40"]["budget"] == "40% params");
    CHECK(rows["fmnist_lenet_l1_filter_k40"]["params kept %"] == "40.00 ± 0.00");
    CHECK(rows["fmnist_lenet_l1_filter_k40"]["latency b1 ms"] == "0.250 ± 0.000");  // the pruned network's
    CHECK(rows["fmnist_lenet_edropout_k15"]["method"] == "edropout");
    // A run that reused the shared baseline counts its pretraining (30 s) with its own 60 s.
    CHECK(rows["fmnist_lenet_l1_filter_k40"]["run s"] == "60 ± 0");
    CHECK(rows["fmnist_lenet_fpgm_k40"]["run s"] == "90 ± 0");
    // Paired against L1: FPGM +1 every seed (3 of 3 above: p = 2 · 1/8); Taylor +1, −1, +0.5: mean
    // +0.17, std 1.041, half-width 4.303 · 1.041 / √3 = 2.59; signs 2 / 1, p = 1.
    CHECK(md.find("| lenet | 40% | fpgm | 3 | +1.00 | [+1.00, +1.00] | 3 / 0 | 0.25 | above L1 |") != std::string::npos);
    CHECK(md.find("| lenet | 40% | taylor | 3 | +0.17 | [-2.42, +2.75] | 2 / 1 | 1.00 | inside the noise |") != std::string::npos);
    // Goals: EDropout at 20% of the parameters, −0.5 points: met; its epochs 1.1× the plain ones: met.
    CHECK(md.find("within 1 point of the unpruned network: **met**: fmnist_lenet_edropout_k15 keeps 20.0% at -0.50 points") !=
          std::string::npos);
    // In brackets, against the run's own converged epoch (6 s): 11 / 6.
    CHECK(md.find("**met**: 1.10× [1.83×] (fmnist_lenet_edropout_k15)") != std::string::npos);
    CHECK(md.find("Gibbs unstructured at p = 0.9 on the small CNN within 1 point: no complete run yet") != std::string::npos);
    CHECK(md.find("Commits of the runs: abc1234. Devices: test CPU. Runs measured: 2026-12-07 to 2026-12-07.") !=
          std::string::npos);
    CHECK(md.find("## Not run yet\n\nfmnist_lenet_hrank_k40") != std::string::npos);
    CHECK(md.find("## Notes\n\nSeen while the runs ran.") != std::string::npos);
    if (std::system((python() + " -c 'import matplotlib' >/dev/null 2>&1").c_str()) == 0)
        for (const char* png : {"top1_vs_params_kept.png", "top1_vs_macs_kept.png", "latency_vs_macs.png"})
            CHECK(read_text(out / "figures" / png).substr(0, 4) == "\x89PNG");
    fs::remove_all(root);
}

TEST_CASE("edropout_cost.py: search epochs against the plain epoch, gated runs before compacted ones") {
    REQUIRE_MESSAGE(fs::exists("scripts/edropout_cost.py"), "run the tests from the repository root");
    const fs::path root = fresh_dir("edropout_cost"), runs = root / "runs", log = root / "log";
    auto write = [&](const std::string& name, const std::string& config, const std::string& metrics, const std::string& extra) {
        write_text(runs / name / "seed1" / "config.toml", "name = \"" + name + "\"\n[train]\nbatch_size = 128\n" + config);
        write_text(runs / name / "seed1" / "metrics.jsonl", metrics);
        write_text(runs / name / "seed1" / "summary.json",
                   R"({"experiment": ")" + name + R"(", "seed": 1, "completed": true, "device": "test CPU")" + extra + "}");
    };
    write("plain", "[prune]\nmethod = \"none\"\n",
          "{\"epoch\":1,\"phase\":\"train\",\"seconds\":9.0}\n{\"epoch\":2,\"phase\":\"train\",\"seconds\":11.0}\n", "");
    const std::string searched = R"(, "search": {"generations": 400, "seconds_per_generation": 0.0125},)"
                                 R"( "compacted": {"top1": 89.5}, "params_kept": 0.4)";
    // Search epochs 12 and 12.4 s (the converged third does not count): 1.22× the plain 10 s, and
    // 1.22× its own converged third (10 s); compact16 never converged: no own ratio.
    write("gated32", "[prune]\nmethod = \"edropout\"\n[prune.edropout]\neval_images = 32\n",
          "{\"epoch\":1,\"phase\":\"train\",\"seconds\":12.0,\"search_converged\":false}\n"
          "{\"epoch\":2,\"phase\":\"train\",\"seconds\":12.4,\"search_converged\":false}\n"
          "{\"epoch\":3,\"phase\":\"train\",\"seconds\":10.0,\"search_converged\":true}\n",
          searched);
    write("compact16", "[prune]\nmethod = \"edropout\"\n[prune.edropout]\neval_images = 16\ncompact_members = true\n",
          "{\"epoch\":1,\"phase\":\"train\",\"seconds\":11.0,\"search_converged\":false}\n", searched);
    const fs::path out = root / "cost_table.txt";
    REQUIRE_MESSAGE(run(python() + " scripts/edropout_cost.py " + runs.string() + " --out " + out.string(), log) == 0,
                    read_text(log));
    const std::string md = read_text(out);
    INFO(md);
    CHECK(md.find("Plain epoch (the unpruned reference's [train] epochs): **10.0 s**") != std::string::npos);
    const size_t gated = md.find("| gated32 | 1 | 32 | one gated pass | 12.2 | **1.22×** | 1.22× | 0.0125 | 400 | 89.50% | 40.0% |");
    const size_t compact = md.find("| compact16 | 1 | 16 | compacted, one by one | 11.0 | **1.10×** | – |");
    CHECK(gated != std::string::npos);
    CHECK(compact != std::string::npos);
    CHECK(gated < compact);
    // Without an unpruned run there is nothing to compare with: an error, not a table.
    fs::remove_all(runs / "plain");
    CHECK(run(python() + " scripts/edropout_cost.py " + runs.string() + " --out " + out.string(), log) == 2);
    CHECK(read_text(log).find("needs a complete unpruned run") != std::string::npos);
    fs::remove_all(root);
}
