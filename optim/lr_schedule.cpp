#include "optim/lr_schedule.h"

#include <cxxabi.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <typeinfo>

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

std::string LRScheduler::type_name() const {
  const char* mangled = typeid(*this).name();
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> readable(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && readable ? std::string(readable.get()) : std::string(mangled);
}

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

void LRScheduler::check_state(const std::map<std::string, double>& state, std::vector<std::string>& problems) const {
  auto it = state.find("last_step");
  if (it == state.end())
    problems.push_back("scheduler: missing 'last_step'");
  else if (!is_step_count(it->second))
    problems.push_back(fmt::format("scheduler: last_step must be a whole number >= 0, got {}", it->second));
  for (const auto& [key, value] : state)
    if (key != "last_step")
      problems.push_back(fmt::format("scheduler: unexpected key '{}' (only 'last_step' is saved)", key));
}

void LRScheduler::load_state(const std::map<std::string, double>& state) {
  std::vector<std::string> problems;
  check_state(state, problems);
  HEED_CHECK(problems.empty(), "{}::load_state: the saved state does not fit this schedule ({}):{}", type_name(),
             nn::count_problems(problems), nn::list_problems(problems));
  load_checked_state(state);
}

void LRScheduler::load_checked_state(const std::map<std::string, double>& state) {
  last_step_ = static_cast<int64_t>(state.at("last_step"));
}

NoamSchedule::NoamSchedule(Optimizer& optimizer, const NoamOptions& options)
    : LRScheduler(optimizer), options_(checked(options)) {}

WarmupCosineSchedule::WarmupCosineSchedule(Optimizer& optimizer, const WarmupCosineOptions& options)
    : LRScheduler(optimizer), options_(checked(options)) {}

void WarmupCosineSchedule::set_total_steps(int64_t total_steps) {
  HEED_CHECK(last_step() <= options_.warmup_steps,
             "WarmupCosineSchedule::set_total_steps: the schedule is at step {}, past its warmup of {} steps, so "
             "learning rates already set depended on the old total",
             last_step(), options_.warmup_steps);
  WarmupCosineOptions o = options_;
  o.total_steps = total_steps;
  options_ = checked(o);
}

StepBudget::StepBudget(double budget_s, int64_t fit_step) : budget_s_(budget_s), fit_step_(fit_step) {
  HEED_CHECK(budget_s > 0 && std::isfinite(budget_s), "StepBudget: the budget must be a positive number of seconds, got {}",
             budget_s);
  HEED_CHECK(fit_step >= 2, "StepBudget: the steps timed before the fit must be at least 2, got {}", fit_step);
}

int64_t StepBudget::record(int64_t step, double seconds) {
  HEED_CHECK(step == last_step_ + 1, "StepBudget::record: expected step {}, got {}", last_step_ + 1, step);
  HEED_CHECK(seconds >= 0 && std::isfinite(seconds), "StepBudget::record: a step cannot take {} seconds", seconds);
  last_step_ = step;
  spent_s_ += seconds;
  if (fitted()) return 0;
  if (step > fit_step_ / 2) paced_s_ += seconds, ++paced_steps_;
  if (step < fit_step_) return 0;
  total_steps_ = fit_total_steps(budget_s_, spent_s_, step, seconds_per_step());
  return total_steps_;
}

double StepBudget::seconds_per_step() const {
  return paced_steps_ > 0 ? paced_s_ / static_cast<double>(paced_steps_) : 0.0;
}

std::map<std::string, double> StepBudget::state() const {
  return {{"spent_s", spent_s_},
          {"paced_s", paced_s_},
          {"paced_steps", static_cast<double>(paced_steps_)},
          {"last_step", static_cast<double>(last_step_)},
          {"total_steps", static_cast<double>(total_steps_)}};
}

void StepBudget::load_state(const std::map<std::string, double>& state) {
  const char* keys[] = {"spent_s", "paced_s", "paced_steps", "last_step", "total_steps"};
  for (const char* key : keys)
    HEED_CHECK(state.count(key), "StepBudget::load_state: missing '{}'", key);
  HEED_CHECK(state.size() == std::size(keys), "StepBudget::load_state: expected exactly the keys spent_s, paced_s, "
             "paced_steps, last_step and total_steps, got {}", state.size());
  auto whole = [&](const char* key) {
    const double v = state.at(key);
    HEED_CHECK(is_step_count(v), "StepBudget::load_state: {} must be a whole number >= 0, got {}", key, v);
    return static_cast<int64_t>(v);
  };
  auto seconds = [&](const char* key) {
    const double v = state.at(key);
    HEED_CHECK(v >= 0 && std::isfinite(v), "StepBudget::load_state: {} must be >= 0 seconds, got {}", key, v);
    return v;
  };
  spent_s_ = seconds("spent_s"), paced_s_ = seconds("paced_s");
  paced_steps_ = whole("paced_steps"), last_step_ = whole("last_step"), total_steps_ = whole("total_steps");
}

int64_t fit_total_steps(double budget_s, double spent_s, int64_t steps_done, double seconds_per_step) {
  HEED_CHECK(seconds_per_step > 0 && std::isfinite(seconds_per_step),
             "fit_total_steps: the pace must be a positive number of seconds per step, got {}", seconds_per_step);
  const double left = std::floor((budget_s - spent_s) / seconds_per_step);
  const double most = 1e12;  // a budget of years at nanoseconds per step: still a sane count
  return steps_done + static_cast<int64_t>(std::clamp(left, 1.0, most));
}

ConstantSchedule::ConstantSchedule(Optimizer& optimizer, const ConstantOptions& options)
    : LRScheduler(optimizer), options_(checked(options)) {}

}  // namespace heed::optim
