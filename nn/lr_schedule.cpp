#include "nn/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "tensor/error.h"

namespace heed::optim {

namespace {
constexpr double kPi = 3.14159265358979323846;

void check_step(const char* schedule, int64_t step) {
  HEED_CHECK(step >= 1, "{}: the step must be >= 1 (the first optimizer step is 1), got {}", schedule, step);
}

const NoamOptions& checked(const NoamOptions& o) {
  HEED_CHECK(o.d_model > 0 && o.warmup_steps > 0 && o.factor > 0,
             "NoamSchedule: d_model, warmup_steps and factor must be positive, got d_model={} warmup_steps={} "
             "factor={}",
             o.d_model, o.warmup_steps, o.factor);
  return o;
}

const WarmupCosineOptions& checked(const WarmupCosineOptions& o) {
  HEED_CHECK(o.base_lr >= 0 && o.min_lr >= 0, "WarmupCosineSchedule: base_lr and min_lr must be >= 0, got {} and {}",
             o.base_lr, o.min_lr);
  HEED_CHECK(o.warmup_steps >= 0 && o.total_steps > o.warmup_steps,
             "WarmupCosineSchedule: need 0 <= warmup_steps < total_steps, got warmup_steps={} total_steps={}",
             o.warmup_steps, o.total_steps);
  return o;
}

const ConstantOptions& checked(const ConstantOptions& o) {
  HEED_CHECK(o.lr >= 0 && o.warmup_steps >= 0, "ConstantSchedule: lr and warmup_steps must be >= 0, got {} and {}",
             o.lr, o.warmup_steps);
  return o;
}
}  // namespace

double noam_lr(const NoamOptions& options, int64_t step) {
  const NoamOptions& o = checked(options);
  check_step("NoamSchedule", step);
  const double s = static_cast<double>(step);
  return o.factor * std::pow(static_cast<double>(o.d_model), -0.5) *
         std::min(std::pow(s, -0.5), s * std::pow(static_cast<double>(o.warmup_steps), -1.5));
}

double warmup_cosine_lr(const WarmupCosineOptions& options, int64_t step) {
  const WarmupCosineOptions& o = checked(options);
  check_step("WarmupCosineSchedule", step);
  if (step <= o.warmup_steps) return o.base_lr * static_cast<double>(step) / static_cast<double>(o.warmup_steps);
  if (step >= o.total_steps) return o.min_lr;
  const double progress =
      static_cast<double>(step - o.warmup_steps) / static_cast<double>(o.total_steps - o.warmup_steps);
  return o.min_lr + 0.5 * (o.base_lr - o.min_lr) * (1.0 + std::cos(kPi * progress));
}

double constant_lr(const ConstantOptions& options, int64_t step) {
  const ConstantOptions& o = checked(options);
  check_step("ConstantSchedule", step);
  if (step <= o.warmup_steps) return o.lr * static_cast<double>(step) / static_cast<double>(o.warmup_steps);
  return o.lr;
}

// ---- LRScheduler ---------------------------------------------------------------

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer), last_step_(optimizer.step_count()) {}

void LRScheduler::step() {
  HEED_CHECK(optimizer_.step_count() == last_step_,
             "LRScheduler: the optimizer has taken {} steps but the schedule has set the lr for {}; call "
             "schedule.step() once just before each optimizer.step()",
             optimizer_.step_count(), last_step_);
  optimizer_.set_lr(lr_at(last_step_ + 1));
  ++last_step_;
}

std::map<std::string, double> LRScheduler::state() const {
  return {{"last_step", static_cast<double>(last_step_)}};
}

void LRScheduler::load_state(const std::map<std::string, double>& state) {
  auto it = state.find("last_step");
  HEED_CHECK(it != state.end(), "LRScheduler::load_state: missing 'last_step'");
  for (const auto& [key, value] : state)
    HEED_CHECK(key == "last_step", "LRScheduler::load_state: unexpected key '{}' (only 'last_step' is saved)", key);
  const double v = it->second;
  HEED_CHECK(v >= 0 && v == std::floor(v) && v < 9.0e15,
             "LRScheduler::load_state: last_step must be a whole number >= 0, got {}", v);
  last_step_ = static_cast<int64_t>(v);
}

NoamSchedule::NoamSchedule(Optimizer& optimizer, const NoamOptions& options)
    : LRScheduler(optimizer), options_(checked(options)) {}

WarmupCosineSchedule::WarmupCosineSchedule(Optimizer& optimizer, const WarmupCosineOptions& options)
    : LRScheduler(optimizer), options_(checked(options)) {}

ConstantSchedule::ConstantSchedule(Optimizer& optimizer, const ConstantOptions& options)
    : LRScheduler(optimizer), options_(checked(options)) {}

}  // namespace heed::optim
