// Progress lines of long work: their format, the line a log gets during an epoch, and --quiet.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "data/idx.h"
#include "tests/harness.h"
#include "train/progress_line.h"

using namespace sp;

TEST_CASE("progress: durations read as m:ss or h:mm:ss") {
    CHECK(clock_text(0) == "0:00");
    CHECK(clock_text(65.4) == "1:05");
    CHECK(clock_text(3723) == "1:02:03");
    CHECK(clock_text(-3) == "0:00");
}

TEST_CASE("progress: a training epoch and scoring from data log their progress; --quiet prints nothing" *
          doctest::skip(!fashion_mnist_available())) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("spinprune_progress_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::ofstream(dir / "p.toml") << "name = \"p\"\nseed = 1\ndevice = \"cpu\"\n[data]\ntrain_subset = 600\nvalidation = 100\n"
                                     "[train]\nepochs = 1\nbatch_size = 50\n";
    const std::string train = test::spinprune_program() + " train --config " + (dir / "p.toml").string() + " --out ";
    // Not a terminal: a line per update with SPINPRUNE_PROGRESS_SECONDS=0.
    std::string out;
    REQUIRE(test::run_command("SPINPRUNE_PROGRESS_SECONDS=0 " + train + (dir / "a").string(), &out) == 0);
    CAPTURE(out);
    CHECK(out.find("train epoch 1/1  1/10 steps  0:0") != std::string::npos);
    CHECK(out.find("left  loss ") != std::string::npos);
    CHECK(out.find("train epoch 1/1  10/10 steps") != std::string::npos);
    CHECK(out.find('\r') == std::string::npos);  // in-place lines only on a terminal
    // The default interval (30 s) prints none in a run this short; --quiet prints nothing at all.
    REQUIRE(test::run_command(train + (dir / "b").string(), &out) == 0);
    CHECK(out.find(" steps ") == std::string::npos);
    CHECK(out.find("train epoch 1: train loss") != std::string::npos);
    REQUIRE(test::run_command("SPINPRUNE_PROGRESS_SECONDS=0 " + train + (dir / "c").string() + " --quiet", &out) == 0);
    CHECK(out.empty());
    // Scoring from data reports its images (here a criterion that reads data replacing l1-filter's
    // norms, which need none: the images are loaded for the importance actually used).
    REQUIRE(test::run_command("SPINPRUNE_PROGRESS_SECONDS=0 " + test::spinprune_program() + " prune --checkpoint " +
                                  (dir / "a" / "model.safetensors").string() +
                                  " --set 'prune.method=\"l1-filter\"' --set 'prune.scoring.criterion=\"rank\"'"
                                  " --set prune.scoring.images=100 --set prune.keep=0.4 --set finetune.epochs=0 --out " + (dir / "d").string(),
                              &out) == 0);
    CHECK(out.find("prune: rank scores  100/100 images") != std::string::npos);
    fs::remove_all(dir);
}
