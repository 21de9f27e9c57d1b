#include "examples/common/training_length.h"

#include <map>

#include <fmt/core.h>

#include "tensor/error.h"

namespace heed::examples {

TrainingLength::TrainingLength(int64_t steps, double budget_s, int64_t warmup) {
  HEED_CHECK((steps > 0) != (budget_s > 0),
             "a run trains for a number of steps or for a time budget, one of the two (got steps {} and time budget {} s)",
             steps, budget_s);
  if (steps > 0) {
    steps_ = steps;
    return;
  }
  HEED_CHECK(warmup >= kMinTimedSteps,
             "--time-budget times the warmup steps to fit the run's length to the budget; it needs --warmup of at least "
             "{} steps (got {}), or give --steps instead",
             kMinTimedSteps, warmup);
  budget_.emplace(budget_s, warmup);
}

void TrainingLength::record(int64_t step, double seconds, optim::WarmupCosineSchedule& schedule, Progress& progress) {
  if (!budget_) return;
  const bool was_spent = budget_->spent();
  const int64_t fitted = budget_->record(step, seconds);
  if (!was_spent && step < steps_ && budget_->spent()) progress.message(spent_message(step));
  if (fitted == 0) return;
  steps_ = fitted;
  schedule.set_total_steps(fitted);
  progress.set_total_steps(fitted);
  progress.message(fit_message());
}

std::string TrainingLength::fit_message() const {
  if (!budget_ || !budget_->fitted()) return "";
  return fmt::format("time budget of {:.0f} s: the first {} steps took {:.1f} s, {:.3f} s per step from step {}; "
                     "the run is fitted to {} steps (--steps {} repeats it exactly)",
                     budget_->budget_s(), budget_->fit_step(), budget_->spent_s(), budget_->seconds_per_step(),
                     budget_->fit_step() / 2 + 1, steps_, steps_);
}

std::string TrainingLength::spent_message(int64_t step) const {
  if (!budget_spent() || step >= steps_) return "";
  return fmt::format("time budget of {:.0f} s spent at step {} of the fitted {} ({:.3f} s per step on average, against "
                     "the {:.3f} s the fit measured): training stops here (--steps {} --stop-at {} repeats it exactly)",
                     budget_->budget_s(), step, steps_, budget_->spent_s() / static_cast<double>(step),
                     budget_->seconds_per_step(), steps_, step);
}

void TrainingLength::save(Config& config) const {
  config.set("steps", steps_);
  config.set("time_budget", budget_ ? budget_->budget_s() : 0.0);
  if (!budget_) return;
  for (const auto& [key, value] : budget_->state()) config.set("time_budget_" + key, value);
}

TrainingLength TrainingLength::restore(const Config& config, int64_t warmup) {
  const double budget_s = config.real_or("time_budget", 0.0);
  const int64_t steps = config.integer("steps");
  if (budget_s <= 0) return TrainingLength(steps, 0.0, warmup);
  TrainingLength length(0, budget_s, warmup);
  std::map<std::string, double> state;
  for (const char* key : {"spent_s", "paced_s", "paced_steps", "last_step", "total_steps"})
    state[key] = config.real(std::string("time_budget_") + key);
  length.budget_->load_state(state);
  length.steps_ = length.budget_->total_steps();
  HEED_CHECK(length.steps_ == steps, "configuration: \"steps\" = {} but the time budget was fitted to {} steps", steps,
             length.steps_);
  return length;
}

LengthFlags::LengthFlags(CLI::App& train, int64_t& steps, double& budget_s)
    : steps_(steps),
      budget_s_(budget_s),
      steps_flag_(train.add_option("--steps", steps, "optimizer steps (instead of --time-budget)")
                      ->check(CLI::PositiveNumber)),
      budget_flag_(train.add_option("--time-budget", budget_s,
                                    "seconds of training to fit the run's length to: the warmup is timed, then the "
                                    "schedule is set to end with the budget (the default, unless --steps is given)")
                       ->check(CLI::PositiveNumber)
                       ->capture_default_str()) {}

void LengthFlags::resolve() const {
  const bool steps_given = steps_flag_->count() > 0, budget_given = budget_flag_->count() > 0;
  HEED_CHECK(!(steps_given && budget_given),
             "give --steps or --time-budget, not both: --steps fixes the run's length, --time-budget fits it to the "
             "time");
  if (steps_given) budget_s_ = 0;
  else if (budget_s_ > 0) steps_ = 0;
}

}  // namespace heed::examples
