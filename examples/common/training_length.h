#pragma once
// How long a training program trains: a fixed --steps, or a --time-budget of
// seconds that the run's length is fitted to (optim::StepBudget): the warmup
// steps are timed, and at the end of the warmup the total is fixed so that the
// cosine decay ends when the budget does. The fitted total is stored in the
// configuration ("steps") like a given one; a run interrupted before the fit
// keeps its timing in the configuration ("time_budget_*") and resumes it.
// A fitted run also stops when its budget is spent, if its steps turned out
// slower than the fit's pace: it never trains for more than its budget (plus
// the step that crossed it).
#include <cstdint>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "examples/common/progress.h"
#include "examples/common/run_config.h"
#include "optim/lr_schedule.h"

namespace heed::examples {

class TrainingLength {
 public:
  // Exactly one of steps > 0 (fixed) and budget_s > 0 (fitted at step `warmup`,
  // which must then be at least kMinTimedSteps).
  TrainingLength(int64_t steps, double budget_s, int64_t warmup);
  static constexpr int64_t kMinTimedSteps = 10;

  bool budgeted() const { return budget_.has_value(); }
  // The total number of steps: given, fitted, or 0 while not yet fitted.
  int64_t steps() const { return steps_; }
  // The total a schedule is built with before the fit (warmup + 1: any total
  // gives the same warmup learning rates).
  int64_t schedule_steps(int64_t warmup) const { return steps_ > 0 ? steps_ : warmup + 1; }
  // Whether to take another step after `step` steps: before the total, and
  // while a time budget is not spent.
  bool more(int64_t step) const { return steps_ == 0 || (step < steps_ && !budget_spent()); }
  bool budget_spent() const { return budget_ && budget_->spent(); }
  // After each step: its 1-based number and duration. When this step fixes
  // the total, the schedule's cosine is moved to end there, the progress line
  // learns it and says how the fit came out.
  void record(int64_t step, double seconds, optim::WarmupCosineSchedule& schedule, Progress& progress);
  // A line for the log: how the fit came out.
  std::string fit_message() const;
  // A line for the log when the budget ran out before the fitted total, at
  // `step` (empty otherwise).
  std::string spent_message(int64_t step) const;

  // The configuration keys: "steps", "time_budget" and the timing so far.
  void save(Config& config) const;
  // Reads what save wrote (a configuration with no "time_budget" is a fixed run).
  static TrainingLength restore(const Config& config, int64_t warmup);

 private:
  int64_t steps_ = 0;
  std::optional<optim::StepBudget> budget_;
};

// The --steps / --time-budget pair of a program's train command. After
// parsing, resolve() applies the rule: an explicit --steps turns the budget
// off; giving both is an error naming them.
class LengthFlags {
 public:
  LengthFlags(CLI::App& train, int64_t& steps, double& budget_s);
  void resolve() const;

 private:
  int64_t& steps_;
  double& budget_s_;
  CLI::Option* steps_flag_;
  CLI::Option* budget_flag_;
};

}  // namespace heed::examples
