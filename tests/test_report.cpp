// The table and plot generators (scripts/report.py, scripts/repro.py) on a fixture of run
// directories written here: complete runs over two seeds, a partial run (no summary.json), a
// corrupt summary.json, an expected experiment never run and a list pattern with no config yet.
// The scripts run through std::system from the repository root, as `make test` runs the suite.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "tests/harness.h"
#include "tests/script_helpers.h"
#include "train/config.h"

namespace fs = std::filesystem;
using namespace script_test;

namespace {

bool has_matplotlib() { return std::system((python() + " -c 'import matplotlib' >/dev/null 2>&1").c_str()) == 0; }

std::string config_toml(const std::string& name, int seed, const std::string& method) {
    return "name = \"" + name + "\"\nseed = " + std::to_string(seed) +
           "\n[data]\ndataset = \"fashion-mnist\"\n[model]\nname = \"lenet\"\n[prune]\nmethod = \"" + method + "\"\n";
}

std::string summary_json(const std::string& name, int seed, double top1) {
    std::ostringstream s;
    s << R"({"experiment": ")" << name << R"(", "seed": )" << seed
      << R"(, "method": "edropout", "model": "lenet", "dataset": "fashion-mnist", "completed": true,
  "baseline": {"top1": 92.0, "top5": 99.5}, "pruned": {"top1": )" << top1 << R"(, "top5": 99.0},
  "compacted": {"top1": )" << top1 << R"(, "top5": 99.0, "params": 40000, "macs": 500000},
  "params_kept": 0.4, "macs_kept": 0.5,
  "latency_ms": {"dense": {"b1": 0.2, "b128": 8.0}, "pruned": {"b1": 0.1, "b128": 4.0}},
  "layers": [{"name": "conv1", "out": 8, "out_dense": 16}, {"name": "fc1", "out": 30, "out_dense": 64}],
  "time_s": {"total": 12.5}})";
    return s.str();
}

const char* kMetrics =
    R"({"epoch":1,"phase":"train","train_loss":1.5,"val_top1":80.0,"best_energy":-1.0,"diversity":30.0}
{"epoch":2,"phase":"train","train_loss":1.0,"val_top1":85.0,"best_energy":-2.0,"diversity":20.0}
{"epoch":1,"phase":"finetune","train_loss":0.9,"val_top1":86.0}
{"epoch":2,"phase":"finetu
)";

// The fixture: runs/exp_a seeds 1, 2 complete (top-1 90 and 92) and seed 3 partial; runs/exp_b
// seed 1 with a corrupt summary.json; configs for exp_a and exp_c (never run); a list naming
// them and a pattern with no config; a paper row for exp_a.
struct Fixture {
    fs::path root = fresh_dir("report_fixture");
    fs::path runs = root / "runs", out = root / "report", log = root / "log.txt";

    Fixture() {
        for (int seed : {1, 2}) {
            const fs::path d = runs / "exp_a" / ("seed" + std::to_string(seed));
            write_text(d / "config.toml", config_toml("exp_a", seed, "edropout"));
            write_text(d / "summary.json", summary_json("exp_a", seed, seed == 1 ? 90.0 : 92.0));
            write_text(d / "metrics.jsonl", kMetrics);
        }
        write_text(runs / "exp_a" / "seed3" / "config.toml", config_toml("exp_a", 3, "edropout"));
        write_text(runs / "exp_a" / "seed3" / "metrics.jsonl", kMetrics);
        write_text(runs / "exp_b" / "seed1" / "config.toml", config_toml("exp_b", 1, "l1-filter"));
        write_text(runs / "exp_b" / "seed1" / "summary.json", "{\"experiment\": \"exp_b\", \"top1\": 9");
        write_text(root / "configs" / "exp_a.toml", config_toml("exp_a", 1, "edropout"));
        write_text(root / "configs" / "exp_c.toml", config_toml("exp_c", 1, "gibbs"));
        write_text(root / "list.txt", "# a repro list\nconfigs/exp_a.toml\nconfigs/exp_c.toml prune.keep=0.4\n"
                                      "configs/gibbs_*.toml  # not written yet\n");
        write_text(root / "papers.csv", "# comment line\ngroup,method,model,dataset,base_top1,top1,top5,params_kept,"
                                        "macs_kept,source\nexp_a,edropout,lenet,fashion-mnist,93.0,93.5,,45.0,,Paper X - Table 1\n");
    }
    ~Fixture() { fs::remove_all(root); }

    int report(const std::string& extra = "") const {
        return run(python() + " scripts/report.py " + runs.string() + " --out " + out.string() + " --expect " +
                       (root / "list.txt").string() + " --root " + root.string() + " --papers " +
                       (root / "papers.csv").string() + " " + extra,
                   log);
    }
};

// A stand-in for bin/spinprune at `path`: `config` is the real program's (repro.py compares configs
// with it); `latency` prints a timing; for `run` it reads --out, --seed, --config and every --set (name=... into $name),
// writes the run's config.toml as the real program resolves it, then runs `body`.
void write_fake_spinprune(const fs::path& path, const std::string& body) {
    const std::string real = fs::absolute(sp::test::spinprune_program()).string();
    write_text(path, "#!/bin/bash\nreal='" + real + R"('
if [ "$1" = config ]; then exec "$real" "$@"; fi
if [ "$1" = latency ]; then echo '{"ms": {"b1": 0.5, "b128": 20.0}, "cpu_threads": '"$OMP_NUM_THREADS"'}'; exit 0; fi
sets=()
while [ $# -gt 0 ]; do case $1 in --out) out=$2; shift;; --seed) seed=$2; shift;; --config) config=$2; shift;;
  --set) sets+=(--set "$2"); case $2 in name=*) name=${2#name=}; name=${name//\"/};; esac; shift;; esac; shift; done
mkdir -p "$out"; "$real" config --config "$config" --seed "$seed" "${sets[@]}" > "$out/config.toml" || exit 9
)" + body);
    fs::permissions(path, fs::perms::owner_all);
}

bool is_png(const fs::path& p) {
    const std::string head = read_text(p).substr(0, 8);
    return head == "\x89PNG\r\n\x1a\n";
}

}  // namespace

TEST_CASE("report.py: tables from complete, partial, corrupt and missing runs") {
    REQUIRE_MESSAGE(fs::exists("scripts/report.py"), "run the tests from the repository root");
    Fixture fx;
    REQUIRE_MESSAGE(fx.report("--no-plots") == 0, read_text(fx.log));
    REQUIRE(fs::exists(fx.out / "results.md"));
    auto rows = read_table(fx.out / "results.csv");
    INFO(read_text(fx.out / "results.csv"));

    // Two complete seeds: mean ± sample std of 90 and 92 is 91.00 ± 1.41 (√2 = 1.414).
    REQUIRE(rows.count("exp_a"));
    CHECK(rows["exp_a"]["top1"] == "91.00 ± 1.41");
    CHECK(rows["exp_a"]["top5"] == "99.00 ± 0.00");
    CHECK(rows["exp_a"]["params_kept_%"] == "40.00 ± 0.00");
    CHECK(rows["exp_a"]["macs_kept_%"] == "50.00 ± 0.00");
    CHECK(rows["exp_a"]["latency_b128_ms"] == "4.000 ± 0.000");
    CHECK(rows["exp_a"]["seeds"] == "1;2");
    CHECK(rows["exp_a"]["status"] == "ok (also 1 partial)");
    CHECK(rows["exp_a"]["paper_top1"] == "93.5");
    CHECK(rows["exp_a"]["paper_params_kept_%"] == "45.0");
    CHECK(rows["exp_a"]["paper_source"] == "Paper X - Table 1");
    // Corrupt summary: a row saying so; listed but never run; a pattern with no config.
    CHECK(rows["exp_b"]["status"] == "no complete run (1 corrupt)");
    CHECK(rows["exp_b"]["top1"] == "–");
    CHECK(rows["exp_c"]["status"] == "not run");
    CHECK(rows["exp_c"]["method"] == "gibbs");  // from the listed config
    CHECK(rows["configs/gibbs_*.toml"]["status"] == "not run (no config yet)");

    const std::string md = read_text(fx.out / "results.md");
    CHECK(md.find("| exp_a | edropout | lenet | 1;2 | ok (also 1 partial) | 91.00 ± 1.41 |") != std::string::npos);
    CHECK(md.find("partial: no summary.json") != std::string::npos);
    CHECK(md.find("corrupt summary.json") != std::string::npos);
    CHECK(md.find("metrics.jsonl line 4: not JSON, skipped") != std::string::npos);
    CHECK(md.find("Runs found: 4 (2 complete).") != std::string::npos);
    CHECK(md.find("Paper X - Table 1") != std::string::npos);
    CHECK(read_text(fx.out / "runs.csv").find("exp_b") != std::string::npos);
}

TEST_CASE("report.py: a folder without runs or a missing folder is reported, not crashed on") {
    REQUIRE(fs::exists("scripts/report.py"));
    const fs::path root = fresh_dir("report_empty");
    const fs::path log = root / "log.txt";
    CHECK(run(python() + " scripts/report.py " + (root / "nothing").string() + " --out " + (root / "out").string(), log) == 0);
    CHECK(read_text(log).find("no such directory") != std::string::npos);
    CHECK(read_text(root / "out" / "results.md").find("Runs found: 0") != std::string::npos);
    fs::remove_all(root);
}

TEST_CASE("report.py: PNG and SVG plots" * doctest::skip(!has_matplotlib())) {
    REQUIRE(fs::exists("scripts/report.py"));
    Fixture fx;
    REQUIRE_MESSAGE(fx.report() == 0, read_text(fx.log));
    const fs::path figures = fx.out / "figures";
    for (const char* name : {"top1_vs_params_kept", "top1_vs_macs_kept", "curves_exp_a", "traces_exp_a",
                             "widths_exp_a", "latency_vs_batch"}) {
        INFO(name);
        CHECK(is_png(figures / (std::string(name) + ".png")));
        CHECK(read_text(figures / (std::string(name) + ".svg")).find("<svg") != std::string::npos);
    }
    // The corrupt and partial runs get no width plot; exp_b has no metrics to trace.
    CHECK_FALSE(fs::exists(figures / "widths_exp_b.png"));
    CHECK_FALSE(fs::exists(figures / "traces_exp_b.png"));
}

TEST_CASE("repro.py: runs a list over seeds, skips finished runs, reports failures and the table") {
    REQUIRE(fs::exists("scripts/repro.py"));
    Fixture fx;
    // A stand-in for bin/spinprune: writes a complete run (top-1 80 + seed), fails for seed 3.
    const fs::path fake = fx.root / "fake_spinprune.sh";
    write_fake_spinprune(fake, "[ \"$seed\" = 3 ] && { rm -r \"$out\"; echo 'seed 3 fails'; exit 3; }\n"  // before it starts
                               "name=$(basename \"$config\" .toml)\n"
                               "echo \"{\\\"experiment\\\": \\\"$name\\\", \\\"seed\\\": $seed, \\\"completed\\\": true,"
                               " \\\"compacted\\\": {\\\"top1\\\": 8$seed, \\\"top5\\\": 99}, \\\"params_kept\\\": 0.5}\""
                               " > \"$out/summary.json\"\necho ran >> \"" + (fx.root / "calls").string() + "\"\n");
    write_text(fx.root / "run_list.txt", "configs/exp_a.toml\nconfigs/missing_*.toml\n");
    const fs::path out = fx.root / "repro";
    const std::string cmd = python() + " scripts/repro.py " + (fx.root / "run_list.txt").string() +
                            " --seeds 3 --out " + out.string() + " --bin " + fake.string() + " --device cpu --root " + fx.root.string();
    const int first = run(cmd, fx.log);
    const int second = run(cmd, fx.log);  // seeds 1, 2 done: only seed 3 runs again
    const std::string log = read_text(fx.log);
    INFO(log);
    CHECK(first == 1);  // seed 3 failed
    CHECK(second == 1);
    CHECK(log.find("estimated run time on cpu") != std::string::npos);
    CHECK(log.find("missing_*.toml: no config yet") != std::string::npos);
    CHECK(log.find("exp_a seed 3 failed (exit 3)") != std::string::npos);
    CHECK(log.find("exp_a seed 1: done earlier, skipped") != std::string::npos);
    CHECK(read_text(fx.root / "calls") == "ran\nran\n");
    auto rows = read_table(out / "report" / "results.csv");
    CHECK(rows["exp_a"]["top1"] == "81.50 ± 0.71");  // 81 and 82: std √0.5
    CHECK(rows["exp_a"]["seeds"] == "1;2");
    CHECK(rows["exp_a"]["status"] == "ok");  // the failed seed 3 left no run directory
    CHECK(rows["configs/missing_*.toml"]["status"] == "not run (no config yet)");
}

TEST_CASE("repro.py: name= gives one config two rows; runs go seed by seed; --archive keeps completed runs "
          "without weights, with --latency's timing, and a fresh output folder skips them; duplicate names refused") {
    REQUIRE(fs::exists("scripts/repro.py"));
    Fixture fx;
    // A stand-in for bin/spinprune: `run` writes a complete run named by its --set name=..., with a
    // weights file, and notes "name seed" in calls.
    const fs::path fake = fx.root / "fake_spinprune.sh", calls = fx.root / "calls";
    write_fake_spinprune(fake, R"(echo weights > "$out/pruned.safetensors"
echo "{\"experiment\": \"$name\", \"seed\": $seed, \"completed\": true, \"method\": \"l1-filter\", \"compacted\": {\"top1\": 8$seed}, \"params_kept\": 0.4}" > "$out/summary.json"
echo "$name $seed" >> )" + calls.string() + "\n");
    write_text(fx.root / "two.txt", "configs/exp_a.toml name=a_k40 prune.keep=0.4\nconfigs/exp_a.toml name=a_k15 prune.keep=0.15\n");
    const fs::path archive = fx.root / "archive";
    auto repro = [&](const std::string& list, const std::string& out, const std::string& extra = "") {
        return run(python() + " scripts/repro.py " + (fx.root / list).string() + " --seeds 2 --out " + (fx.root / out).string() +
                       " --archive " + archive.string() + " --latency --no-plots --bin " + fake.string() +
                       " --device cpu --root " + fx.root.string() + extra,
                   fx.log);
    };
    REQUIRE(repro("two.txt", "out1") == 0);
    INFO(read_text(fx.log));
    CHECK(read_text(calls) == "a_k40 1\na_k15 1\na_k40 2\na_k15 2\n");  // every line with seed 1 first
    for (const char* file : {"config.toml", "summary.json", "latency.json"}) CHECK(fs::exists(archive / "a_k15" / "seed2" / file));
    CHECK_FALSE(fs::exists(archive / "a_k15" / "seed2" / "pruned.safetensors"));  // no weights in the archive
    const std::string latency = read_text(archive / "a_k40" / "seed1" / "latency.json");
    CHECK(latency.find("\"checkpoint\": \"pruned.safetensors\"") != std::string::npos);
    CHECK(latency.find("\"cpu_threads\": 1") != std::string::npos);  // timed on one core
    CHECK(latency.find("\"measured\"") != std::string::npos);

    // Another machine: a fresh output folder, the same archive: nothing runs again.
    REQUIRE(repro("two.txt", "out2") == 0);
    CHECK(read_text(calls) == "a_k40 1\na_k15 1\na_k40 2\na_k15 2\n");
    CHECK(read_text(fx.log).find("a_k15 seed 2: in the archive, skipped") != std::string::npos);
    auto rows = read_table(fx.root / "out2" / "report" / "results.csv");  // written from the archive
    CHECK(rows["a_k40"]["top1"] == "81.50 ± 0.71");
    CHECK(rows["a_k40"]["latency_b1_ms"] == "0.500 ± 0.000");  // latency.json's, the summary has none

    // The config changed since: the runs made with the old one stop the script before anything runs,
    // naming the key, and run again with --rerun-changed; a change of where files are is no change.
    write_text(fx.root / "configs" / "exp_a.toml", config_toml("exp_a", 1, "edropout") + "[train]\nepochs = 2\n");
    CHECK(repro("two.txt", "out2") == 2);
    CHECK(read_text(fx.log).find("a_k40 seed 1: its config changed since it ran (train.epochs: 3 -> 2)") != std::string::npos);
    CHECK(read_text(calls) == "a_k40 1\na_k15 1\na_k40 2\na_k15 2\n");
    REQUIRE(repro("two.txt", "out2", " --rerun-changed") == 0);
    CHECK(read_text(calls) == "a_k40 1\na_k15 1\na_k40 2\na_k15 2\na_k40 1\na_k15 1\na_k40 2\na_k15 2\n");
    CHECK(read_text(archive / "a_k40" / "seed1" / "config.toml").find("epochs = 2") != std::string::npos);
    REQUIRE(repro("two.txt", "out2", " --set prune.baseline_cache=elsewhere") == 0);
    CHECK(read_text(calls).size() == 2 * std::string("a_k40 1\na_k15 1\na_k40 2\na_k15 2\n").size());

    write_text(fx.root / "same.txt", "configs/exp_a.toml name=twice\nconfigs/exp_c.toml name=twice\n");
    CHECK(repro("same.txt", "out3") == 2);
    CHECK(read_text(fx.log).find("experiment 'twice' (configs/exp_c.toml) is also configs/exp_a.toml's name") != std::string::npos);
}

TEST_CASE("repro lists: every line of experiments/repro/*.txt loads with its overrides, and no two lines share a name") {
    REQUIRE(fs::exists("scripts/repro.py"));
    const fs::path root = fresh_dir("repro_lists"), lines = root / "lines.tsv", log = root / "log";
    // Each line's configs (globs expanded) with its overrides, tab-separated, as repro.py reads them.
    REQUIRE_MESSAGE(run(python() + R"( -c 'import glob, sys
sys.path.insert(0, "scripts")
import report
for lst in sorted(glob.glob("experiments/repro/*.txt")):
    for pattern, overrides in report.read_list(lst):
        for path in sorted(glob.glob(pattern)):
            print("\t".join([lst, path] + overrides))' > )" + lines.string(), log) == 0, read_text(log));
    std::istringstream in(read_text(lines));
    int count = 0;
    for (std::string line; std::getline(in, line); ++count) {
        std::vector<std::string> fields;
        std::istringstream cells(line);
        for (std::string cell; std::getline(cells, cell, '\t');) fields.push_back(cell);
        REQUIRE(fields.size() >= 2);
        INFO(line);
        CHECK_NOTHROW(sp::load_config(fields[1], std::vector<std::string>(fields.begin() + 2, fields.end())));
    }
    CHECK(count > 100);  // the study lists alone hold over a hundred lines
    // repro.py refuses two lines with one name before it estimates anything.
    CHECK_MESSAGE(run(python() + " scripts/repro.py experiments/repro/*.txt --seeds 1 --estimate-only --out " +
                          (root / "out").string(), log) == 0,
                  read_text(log));
    fs::remove_all(root);
}
