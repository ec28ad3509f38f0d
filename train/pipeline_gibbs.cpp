// `spinprune run` with prune.method = "gibbs" (METHODS.md §2).
#include "kernels/check.h"
#include "train/pipeline_stages.h"

namespace sp::stages {

json run_gibbs(Run& run, Model& model, json summary) {
    SP_REQUIRE(false, run.config.source << ": prune.method 'gibbs' is not implemented yet");
    return summary;
}

}  // namespace sp::stages
