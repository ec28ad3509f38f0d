// `spinprune run` / `spinprune prune` with prune.method = "constrained-rl" (METHODS.md §4).
#include "kernels/check.h"
#include "train/pipeline_stages.h"

namespace sp::stages {

std::vector<float> constrained_rl_state(Run& run, MaskSpace& space) {
    SP_REQUIRE(false, run.config.source << ": prune.method 'constrained-rl' is not implemented yet");
    return {};
}

}  // namespace sp::stages
