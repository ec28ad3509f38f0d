// Choosing cuDNN convolution algorithms: the usable candidates of cuDNN's ranked heuristic list,
// each with the math type it is to run in, and the first one that actually runs (later ones are
// the fallbacks). Host code of the CUDA backend; the selection logic is plain C++ over cuDNN's
// perf structs, so it is tested without a GPU.
#pragma once

#include <cudnn.h>

#include <sstream>
#include <string>
#include <vector>

#include "kernels/check.h"
#include "nn/context.h"

namespace sp::cuda {

// FFT and Winograd algorithms round in a transformed domain: their error is not bounded by that
// of a float32 sum over the kernel window (gamma(n) Σ|terms|), so neither math mode uses them.
bool transform_based(cudnnConvolutionFwdAlgo_t a);
bool transform_based(cudnnConvolutionBwdDataAlgo_t a);
bool transform_based(cudnnConvolutionBwdFilterAlgo_t a);

// The usable entries of a ranked perf list, in cuDNN's order: successful, not transform-based,
// deterministic when asked. Algorithm and math type decide together whether tensor cores run
// (as in PyTorch): in fp32 mode every candidate runs with FMA math (no TF32 conversion); in tf32
// mode with the math type the heuristic ranked it under. Workspace sizes are queried later,
// under that math type.
template <typename Perf>
std::vector<ConvChoice> conv_candidates(const Perf* perf, int count, bool deterministic, MathMode math) {
    std::vector<ConvChoice> out;
    for (int i = 0; i < count; ++i) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || transform_based(perf[i].algo)) continue;
        if (deterministic && perf[i].determinism == CUDNN_NON_DETERMINISTIC) continue;
        ConvChoice c;
        c.algo = static_cast<int>(perf[i].algo);
        c.math = static_cast<int>(math == MathMode::fp32 ? CUDNN_FMA_MATH : perf[i].mathType);
        // The heuristic may list one algorithm under several math types; fp32 folds them into one.
        bool seen = false;
        for (const ConvChoice& o : out) seen = seen || (o.algo == c.algo && o.math == c.math);
        if (!seen) out.push_back(c);
    }
    return out;
}

// Runs `attempt(choice)` (set the math type, query the workspace, call cuDNN; it returns the
// cuDNN status) for the direction's current candidate, moving on to the next candidate while a
// not-yet-confirmed one fails. A candidate that has run once stays the choice: a later failure
// is an error, as is the failure of every candidate (the message lists each one's status).
// Exceptions from `attempt` (an OutOfMemory for the workspace) propagate unchanged, and so does
// cuDNN's own allocation failure (as OutOfMemory): memory is not the algorithm's fault, and the
// callers that halve their batch on OutOfMemory must see it before a slower candidate is cached.
template <typename Attempt>
void run_first_working(ConvDirection& dir, const char* direction, Attempt&& attempt) {
    SP_REQUIRE(!dir.candidates.empty(), "conv2d: cuDNN offers no usable " << direction << " algorithm for this shape");
    std::ostringstream tried;
    while (true) {
        ConvChoice& choice = dir.candidates[dir.current];
        const cudnnStatus_t status = attempt(choice);
        if (status == CUDNN_STATUS_SUCCESS) {
            dir.confirmed = true;
            return;
        }
        tried << (tried.tellp() > 0 ? "; " : "") << "algorithm " << choice.algo << " with math type " << choice.math
              << ": " << cudnnGetErrorString(status);
        if (is_allocation_failure(status) || dir.confirmed || dir.current + 1 == dir.candidates.size())
            check_status(status, (std::string("conv2d ") + direction + " (tried " + tried.str() + ")").c_str(),
                         __FILE__, __LINE__);
        ++dir.current;
    }
}

}  // namespace sp::cuda
