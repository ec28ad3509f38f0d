// Learning-rate schedules as pure functions of the (fractional) epoch: epoch 2.5 is halfway
// through the third epoch. A base schedule (constant, step, multi-step, cosine annealing to a
// floor) is multiplied by an optional linear warm-up over the first `warmup_epochs`.
#pragma once

#include <string>
#include <vector>

namespace sp {

enum class ScheduleKind { constant, step, multi_step, cosine };

// "constant", "step", "multistep" (or "multi_step"), "cosine"; otherwise an sp::Error.
ScheduleKind schedule_kind_from_name(const std::string& name);

struct ScheduleConfig {
    ScheduleKind kind = ScheduleKind::constant;
    float base_lr = 0.1f;
    float gamma = 0.1f;               // step, multi_step: factor per decay
    double step_epochs = 30.0;        // step: decay every this many epochs
    std::vector<double> milestones;   // multi_step: decay at each of these epochs (ascending)
    double total_epochs = 100.0;      // cosine: length of the annealing
    float min_lr = 0.0f;              // cosine: the floor reached at total_epochs
    double warmup_epochs = 0.0;       // linear warm-up length (0 = none)
    float warmup_start_factor = 0.0f; // warm-up multiplier at epoch 0, rising linearly to 1
};

class LrSchedule {
public:
    explicit LrSchedule(ScheduleConfig config);
    // Learning rate at `epoch` (>= 0, fractional within an epoch).
    float lr_at(double epoch) const;
    const ScheduleConfig& config() const { return config_; }

private:
    ScheduleConfig config_;
};

}  // namespace sp
