#pragma once
// Learning-rate schedules. A schedule is a function of the optimizer step
// about to be taken (the first step is 1), computed in double.
//
// Calling order: the schedule sets the lr of the NEXT optimizer.step(), so
// call schedule.step() just before optimizer.step():
//
//   heed::optim::WarmupCosineSchedule schedule(opt, {3e-4, 3e-5, 100, 5000});
//   for (...) {
//     loss.backward();
//     schedule.step();   // opt.lr() = lr_at(opt.step_count() + 1)
//     opt.step();
//     opt.zero_grad();
//   }
//
// step() checks that the two stay in lockstep (it throws when the optimizer
// has taken more or fewer steps than the schedule has set), which catches the
// usual off-by-one of calling them in the other order.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "optim/optim.h"

namespace heed::optim {

class LRScheduler {
 public:
  // Starts where the optimizer is: last_step() = optimizer.step_count().
  explicit LRScheduler(Optimizer& optimizer);
  virtual ~LRScheduler() = default;

  // The learning rate of optimizer step `step` (>= 1).
  virtual double lr_at(int64_t step) const = 0;
  // The schedule's name, which a checkpoint records and restore compares
  // ("NoamSchedule"). A schedule that does not override it is named by its
  // C++ type, readable ("my::Schedule", not "N2my8ScheduleE").
  virtual std::string type_name() const;
  // Advances to the next optimizer step and sets the optimizer's lr for it.
  void step();
  // The step whose lr was set last (0 before the first step()).
  int64_t last_step() const { return last_step_; }
  Optimizer& optimizer() const { return optimizer_; }

  // Checkpoint state: {"last_step": n}.
  std::map<std::string, double> state() const;
  // Checks a saved state and changes nothing: appends one line per problem,
  // each starting "scheduler: " (a missing or unexpected key, a last_step
  // that is not a whole number >= 0).
  void check_state(const std::map<std::string, double>& state, std::vector<std::string>& problems) const;
  // Throws heed::Error listing every problem check_state finds, else loads.
  void load_state(const std::map<std::string, double>& state);
  // Loads a state check_state has found fitting, without checking it again.
  void load_checked_state(const std::map<std::string, double>& state);

 private:
  Optimizer& optimizer_;
  int64_t last_step_;
};

// ---- the schedules as plain functions (step >= 1) ----------------------------

struct NoamOptions {
  int64_t d_model = 0;       // required
  int64_t warmup_steps = 0;  // required
  double factor = 1.0;
};
// "Attention Is All You Need": factor * d_model^-0.5 * min(s^-0.5, s * warmup^-1.5);
// rises linearly to its peak at s = warmup_steps, then falls as 1/sqrt(s).
double noam_lr(const NoamOptions& options, int64_t step);

struct WarmupCosineOptions {
  double base_lr = 0;  // required
  double min_lr = 0;
  int64_t warmup_steps = 0;  // W
  int64_t total_steps = 0;   // N > W, required
};
// s <= W: base_lr * s / W; W < s < N: min_lr + (base_lr - min_lr) * (1 + cos(pi (s - W) / (N - W))) / 2;
// s >= N: min_lr.
double warmup_cosine_lr(const WarmupCosineOptions& options, int64_t step);

struct ConstantOptions {
  double lr = 0;  // required
  int64_t warmup_steps = 0;  // W > 0: lr * s / W for s <= W
};
double constant_lr(const ConstantOptions& options, int64_t step);

// ---- the schedules as LRSchedulers ------------------------------------------

class NoamSchedule : public LRScheduler {
 public:
  NoamSchedule(Optimizer& optimizer, const NoamOptions& options);
  double lr_at(int64_t step) const override { return noam_lr(options_, step); }
  std::string type_name() const override { return "NoamSchedule"; }
  const NoamOptions& options() const { return options_; }

 private:
  NoamOptions options_;
};

class WarmupCosineSchedule : public LRScheduler {
 public:
  WarmupCosineSchedule(Optimizer& optimizer, const WarmupCosineOptions& options);
  double lr_at(int64_t step) const override { return warmup_cosine_lr(options_, step); }
  std::string type_name() const override { return "WarmupCosineSchedule"; }
  const WarmupCosineOptions& options() const { return options_; }
  // Changes where the cosine ends (a run fitted to a time budget learns its
  // length during the warmup). Only while the schedule is still in its
  // warmup, where no lr set so far depended on the total: throws otherwise,
  // or when total_steps <= warmup_steps.
  void set_total_steps(int64_t total_steps);

 private:
  WarmupCosineOptions options_;
};

class ConstantSchedule : public LRScheduler {
 public:
  ConstantSchedule(Optimizer& optimizer, const ConstantOptions& options);
  double lr_at(int64_t step) const override { return constant_lr(options_, step); }
  std::string type_name() const override { return "ConstantSchedule"; }
  const ConstantOptions& options() const { return options_; }

 private:
  ConstantOptions options_;
};

// ---- fitting a run's length to a time budget ------------------------------------
//
// "Train for 10 minutes" with a schedule that still decays to its end: the
// steps up to `fit_step` (the warmup, whose learning rates do not depend on the
// total) are timed, and at fit_step the total is fixed so that the remaining
// steps fill the budget at the pace measured over the later half of the timed
// steps (the first ones are slow while caches warm up). From then on the total
// is a plain number: kept in the checkpoint it makes a resumed run continue
// the same schedule, and a run given that number as its step count repeats
// the budgeted run bit for bit. Only the fit depends on the clock.
//
// The pace is measured over a short stretch, and a machine's speed drifts
// (other load, a shared host): when the steps after the fit run slower than
// measured, spent() turns true once the budget is used up, and the run stops
// there, short of its total, with the learning rate near its end.
//
//   optim::StepBudget budget(600.0, warmup);
//   ... after each step:  if (int64_t n = budget.record(step, seconds)) schedule.set_total_steps(n);
class StepBudget {
 public:
  // budget_s > 0 seconds of training steps; fit_step >= 2.
  StepBudget(double budget_s, int64_t fit_step);
  // Adds the duration of the step just taken (1-based `step`, in order).
  // Returns the fitted total at step == fit_step, 0 at every other step.
  int64_t record(int64_t step, double seconds);
  bool fitted() const { return total_steps_ > 0; }
  int64_t total_steps() const { return total_steps_; }  // 0 until fitted
  double budget_s() const { return budget_s_; }
  int64_t fit_step() const { return fit_step_; }
  double spent_s() const { return spent_s_; }
  // Whether the fitted run has used up its budget (before its total when the
  // steps ran slower than the fit's pace).
  bool spent() const { return fitted() && spent_s_ >= budget_s_; }
  // The pace the fit used (or would use now): seconds per step over the timed half.
  double seconds_per_step() const;

  // Checkpoint state, so that a run interrupted before the fit resumes its timing:
  // {"spent_s", "paced_s", "paced_steps", "last_step", "total_steps"}.
  std::map<std::string, double> state() const;
  void load_state(const std::map<std::string, double>& state);

 private:
  double budget_s_;
  int64_t fit_step_;
  double spent_s_ = 0, paced_s_ = 0;
  int64_t paced_steps_ = 0, last_step_ = 0, total_steps_ = 0;
};

// The total number of steps that fills `budget_s` when `steps_done` steps took
// `spent_s` and each further one takes `seconds_per_step`: steps_done plus the
// whole steps that fit in what is left, at least steps_done + 1.
int64_t fit_total_steps(double budget_s, double spent_s, int64_t steps_done, double seconds_per_step);

}  // namespace heed::optim
