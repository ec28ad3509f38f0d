// Learning-rate schedules (see nn/schedule.h).
#include "nn/schedule.h"

#include <algorithm>
#include <cmath>

#include "kernels/error.h"

namespace sp {

ScheduleKind schedule_kind_from_name(const std::string& name) {
    if (name == "constant") return ScheduleKind::constant;
    if (name == "step") return ScheduleKind::step;
    if (name == "multistep" || name == "multi_step") return ScheduleKind::multi_step;
    if (name == "cosine") return ScheduleKind::cosine;
    SP_REQUIRE(false, "schedule: unknown kind '" << name << "' (expected constant, step, multistep or cosine)");
    return ScheduleKind::constant;
}

LrSchedule::LrSchedule(ScheduleConfig config) : config_(std::move(config)) {
    const ScheduleConfig& c = config_;
    SP_REQUIRE(c.base_lr >= 0.0f, "schedule: base learning rate must be non-negative, got " << c.base_lr);
    SP_REQUIRE(c.gamma > 0.0f, "schedule: gamma must be positive, got " << c.gamma);
    SP_REQUIRE(c.kind != ScheduleKind::step || c.step_epochs > 0.0,
               "schedule: step needs step_epochs > 0, got " << c.step_epochs);
    SP_REQUIRE(std::is_sorted(c.milestones.begin(), c.milestones.end()), "schedule: milestones must be ascending");
    SP_REQUIRE(c.kind != ScheduleKind::cosine || c.total_epochs > 0.0,
               "schedule: cosine needs total_epochs > 0, got " << c.total_epochs);
    SP_REQUIRE(c.min_lr >= 0.0f && (c.kind != ScheduleKind::cosine || c.min_lr <= c.base_lr),
               "schedule: the cosine floor " << c.min_lr << " must lie in [0, base_lr]");
    SP_REQUIRE(c.warmup_epochs >= 0.0 && c.warmup_start_factor >= 0.0f && c.warmup_start_factor <= 1.0f,
               "schedule: warm-up needs warmup_epochs >= 0 and a start factor in [0, 1]");
}

float LrSchedule::lr_at(double epoch) const {
    SP_REQUIRE(epoch >= 0.0, "schedule: negative epoch " << epoch);
    const ScheduleConfig& c = config_;
    const double base = c.base_lr;
    double lr = base;
    switch (c.kind) {
        case ScheduleKind::constant:
            break;
        case ScheduleKind::step:
            lr = base * std::pow(static_cast<double>(c.gamma), std::floor(epoch / c.step_epochs));
            break;
        case ScheduleKind::multi_step: {
            // Decays already passed: milestones <= epoch.
            auto passed = std::upper_bound(c.milestones.begin(), c.milestones.end(), epoch) - c.milestones.begin();
            lr = base * std::pow(static_cast<double>(c.gamma), static_cast<double>(passed));
            break;
        }
        case ScheduleKind::cosine: {
            const double t = std::min(epoch, c.total_epochs) / c.total_epochs;
            const double kPi = 3.14159265358979323846;
            lr = c.min_lr + (base - c.min_lr) * 0.5 * (1.0 + std::cos(kPi * t));
            break;
        }
    }
    if (epoch < c.warmup_epochs) {
        const double start = c.warmup_start_factor;
        lr *= start + (1.0 - start) * epoch / c.warmup_epochs;
    }
    return static_cast<float>(lr);
}

}  // namespace sp
