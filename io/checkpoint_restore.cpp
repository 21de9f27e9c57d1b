// capture() and restore(): between live training objects and a Checkpoint
// (io/checkpoint.h). restore checks everything first and then changes
// everything, so a checkpoint that does not fit leaves the run as it was.
#include <map>
#include <string>
#include <vector>

#include "tensor/grad_mode.h"
#include "io/checkpoint.h"
#include "tensor/ops.h"

namespace heed::io {

namespace {
// A CPU copy that later in-place updates of `t` do not reach.
Tensor snapshot(const Tensor& t) { return contiguous(clone(to_device(t.detach(), kCPU))); }

nn::NamedTensors snapshots(const nn::NamedTensors& tensors) {
  nn::NamedTensors out;
  out.reserve(tensors.size());
  for (const auto& [name, t] : tensors) out.emplace_back(name, snapshot(t));
  return out;
}

}  // namespace

Checkpoint capture(const nn::Module& model, const optim::Optimizer* opt, const optim::LRScheduler* sched,
                   const Generator* gen, const optim::ExponentialMovingAverage* ema) {
  NoGradGuard no_grad;
  Checkpoint c;
  c.model = snapshots(nn::module_state(model));
  if (opt != nullptr) {
    c.optimizer_type = opt->type_name();
    c.optimizer_tensors = snapshots(opt->state());
    c.optimizer_scalars = opt->scalars();
  }
  if (sched != nullptr) {
    c.scheduler_type = sched->type_name();
    c.scheduler_state = sched->state();
  }
  if (gen != nullptr) {
    c.rng_seed = gen->seed();
    c.rng_offset = gen->offset();
  }
  if (ema != nullptr) {
    c.averages = snapshots(ema->averages());
    c.average_updates = ema->updates();
  }
  return c;
}

void restore(const Checkpoint& ckpt, nn::Module& model, optim::Optimizer* opt, optim::LRScheduler* sched,
             Generator* gen, optim::ExponentialMovingAverage* ema) {
  // First every check, each by the part that owns it; the checkpoint's own
  // record of what it holds (types, whether a part is there) is checked here.
  std::vector<std::string> problems;
  nn::compare_named_tensors("model", nn::module_state(model), ckpt.model, problems);
  if (opt != nullptr) {
    if (ckpt.optimizer_type.empty())
      problems.push_back(fmt::format("optimizer: the checkpoint has no optimizer state (this one is {})", opt->type_name()));
    else if (ckpt.optimizer_type != opt->type_name())
      problems.push_back(fmt::format("optimizer: the checkpoint's is {}, this one is {}", ckpt.optimizer_type,
                                     opt->type_name()));
    else
      opt->check_state(ckpt.optimizer_tensors, ckpt.optimizer_scalars, problems);
  }
  if (sched != nullptr) {
    const std::string type = sched->type_name();
    if (ckpt.scheduler_type.empty()) {
      problems.push_back(fmt::format("scheduler: the checkpoint has no scheduler state (this one is {})", type));
    } else if (ckpt.scheduler_type != type) {
      problems.push_back(fmt::format("scheduler: the checkpoint's is {}, this one is {}", ckpt.scheduler_type, type));
    } else {
      sched->check_state(ckpt.scheduler_state, problems);
      // A schedule sets the lr of its optimizer's next step; the two must agree.
      auto last = ckpt.scheduler_state.find("last_step");
      auto step = ckpt.optimizer_scalars.find("step");
      if (last != ckpt.scheduler_state.end() && step != ckpt.optimizer_scalars.end() && last->second != step->second)
        problems.push_back(fmt::format("scheduler: last_step {} differs from the optimizer's step {}", last->second,
                                       step->second));
    }
  }
  if (ema != nullptr) {
    if (ckpt.averages.empty())
      problems.push_back("averages: the checkpoint has no averaged parameters (this run keeps an exponential moving average)");
    else
      ema->check_state(ckpt.averages, ckpt.average_updates, problems);
  }
  HEED_CHECK(problems.empty(), "restore: the checkpoint does not fit this {} ({}); nothing was changed:{}",
             model.type_name(), nn::count_problems(problems), nn::list_problems(problems));
  // Then every load, none of which checks again.
  if (opt != nullptr) opt->load_checked_state(ckpt.optimizer_tensors, ckpt.optimizer_scalars);
  if (sched != nullptr) sched->load_checked_state(ckpt.scheduler_state);
  nn::load_checked_state(model, ckpt.model);
  if (gen != nullptr) gen->set_state(ckpt.rng_seed, ckpt.rng_offset);
  if (ema != nullptr) ema->load_checked_state(ckpt.averages, ckpt.average_updates);
}

bool restore_for_evaluation(const Checkpoint& ckpt, nn::Module& model) {
  // The averages name a subset of the parameters (those the average was
  // given); each must be one, of its shape.
  std::vector<std::string> problems;
  std::map<std::string, Tensor> params;
  for (const auto& [name, p] : model.named_parameters()) params.emplace(name, p);
  for (const auto& [name, avg] : ckpt.averages) {
    auto it = params.find(name);
    if (it == params.end())
      problems.push_back(fmt::format("averages: '{}' is not a parameter of this {}", name, model.type_name()));
    else if (avg.shape() != it->second.shape())
      problems.push_back(fmt::format("averages: '{}' is {} in the checkpoint, {} here", name, shape_str(avg.shape()),
                                     shape_str(it->second.shape())));
  }
  HEED_CHECK(problems.empty(), "restore_for_evaluation: the checkpoint's averages do not fit this {}; nothing was changed:{}",
             model.type_name(), nn::list_problems(problems));
  restore(ckpt, model);
  if (ckpt.averages.empty()) return false;
  NoGradGuard no_grad;
  for (const auto& [name, avg] : ckpt.averages) params.at(name).copy_(avg);
  return true;
}

}  // namespace heed::io
