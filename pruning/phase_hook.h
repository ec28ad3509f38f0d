// What a method that prunes while it trains does inside a training phase (train/trainer.h's
// fit() calls it around every step). It lives here, below train/, so that the methods implement
// it directly (EDropoutSearch, GibbsTraining) and no adapter class sits between them and the trainer.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "nn/checkpoint.h"
#include "nn/context.h"
#include "nn/tensor.h"

namespace sp {

class PhaseHook {
public:
    virtual ~PhaseHook() = default;
    // Before the step's forward, with the step's batch (images (B, C, H, W), labels (B), on ctx's
    // device) and the epoch (0-based): e.g. attach the mask the step trains with.
    virtual void before_step(Context& ctx, const Tensor& images, const Tensor& labels, int64_t epoch) = 0;
    // After the step's optimizer update (or its skip): the weights may have changed.
    virtual void after_step(Context& ctx) {}
    // Extra fields of the epoch's metrics record.
    virtual nlohmann::json epoch_log(Context& ctx) { return nlohmann::json::object(); }
    // Its state in the phase checkpoint, so a resumed phase continues the same search.
    virtual void save(std::vector<std::pair<std::string, Tensor>>& tensors, std::map<std::string, std::string>& meta) const {}
    virtual void restore(Context& ctx, const Checkpoint& ck) {}
};

}  // namespace sp
