// capture() and restore(): between live training objects and a Checkpoint
// (io/checkpoint.h). restore checks everything first and then changes
// everything, so a checkpoint that does not fit leaves the run as it was.
#include <cmath>
#include <functional>
#include <map>
#include <set>

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

nn::NamedTensors module_state(const nn::Module& model) {
  nn::NamedTensors all = model.named_parameters();
  for (const auto& entry : model.named_buffers()) all.push_back(entry);
  return all;
}

// Keys of `saved` against `live`, and the values `valid` accepts.
void compare_scalars(const char* what, const std::map<std::string, double>& live,
                     const std::map<std::string, double>& saved,
                     const std::function<bool(const std::string&, double)>& valid, std::vector<std::string>& problems) {
  for (const auto& [key, v] : live) {
    auto it = saved.find(key);
    if (it == saved.end())
      problems.push_back(fmt::format("{}: missing scalar '{}'", what, key));
    else if (!valid(key, it->second))
      problems.push_back(fmt::format("{}: scalar '{}' = {} is not valid", what, key, it->second));
  }
  for (const auto& [key, v] : saved)
    if (!live.count(key)) problems.push_back(fmt::format("{}: unexpected scalar '{}'", what, key));
}

// The rules Optimizer::load_state and LRScheduler::load_state apply.
bool whole_count(double v) { return v >= 0 && v == std::floor(v) && v < 9.0e15; }
}  // namespace

Checkpoint capture(const nn::Module& model, const optim::Optimizer* opt, const optim::LRScheduler* sched,
                   const Generator* gen, const optim::ExponentialMovingAverage* ema) {
  NoGradGuard no_grad;
  Checkpoint c;
  c.model = snapshots(module_state(model));
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
  std::vector<std::string> problems;
  nn::compare_named_tensors("model", module_state(model), ckpt.model, problems);
  if (opt != nullptr) {
    if (ckpt.optimizer_type.empty()) {
      problems.push_back(fmt::format("optimizer: the checkpoint has no optimizer state (this one is {})", opt->type_name()));
    } else if (ckpt.optimizer_type != opt->type_name()) {
      problems.push_back(fmt::format("optimizer: the checkpoint's is {}, this one is {}", ckpt.optimizer_type,
                                     opt->type_name()));
    } else {
      nn::compare_named_tensors("optimizer", opt->state(), ckpt.optimizer_tensors, problems);
      compare_scalars("optimizer", opt->scalars(), ckpt.optimizer_scalars,
                      [](const std::string& key, double v) {
                        return key == "lr" ? std::isfinite(v) && v >= 0 : whole_count(v);
                      },
                      problems);
    }
  }
  if (sched != nullptr) {
    const std::string type = sched->type_name();
    if (ckpt.scheduler_type.empty()) {
      problems.push_back(fmt::format("scheduler: the checkpoint has no scheduler state (this one is {})", type));
    } else if (ckpt.scheduler_type != type) {
      problems.push_back(fmt::format("scheduler: the checkpoint's is {}, this one is {}", ckpt.scheduler_type, type));
    } else {
      compare_scalars("scheduler", sched->state(), ckpt.scheduler_state,
                      [](const std::string&, double v) { return whole_count(v); }, problems);
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
      nn::compare_named_tensors("averages", ema->averages(), ckpt.averages, problems);
  }
  if (!problems.empty()) {
    std::string list;
    for (const std::string& p : problems) list += "\n  - " + p;
    HEED_FAIL("restore: the checkpoint does not fit this {} ({} problem{}); nothing was changed:{}", model.type_name(),
              problems.size(), problems.size() == 1 ? "" : "s", list);
  }
  // Everything fits: the loads below check again, and pass.
  if (opt != nullptr) opt->load_state(ckpt.optimizer_tensors, ckpt.optimizer_scalars);
  if (sched != nullptr) sched->load_state(ckpt.scheduler_state);
  nn::load_state(model, ckpt.model);
  if (gen != nullptr) gen->set_state(ckpt.rng_seed, ckpt.rng_offset);
  if (ema != nullptr) ema->load_state(ckpt.averages, ckpt.average_updates);
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
  if (!problems.empty()) {
    std::string list;
    for (const std::string& p : problems) list += "\n  - " + p;
    HEED_FAIL("restore_for_evaluation: the checkpoint's averages do not fit this {}; nothing was changed:{}",
              model.type_name(), list);
  }
  restore(ckpt, model);
  if (ckpt.averages.empty()) return false;
  NoGradGuard no_grad;
  for (const auto& [name, avg] : ckpt.averages) params.at(name).copy_(avg);
  return true;
}

}  // namespace heed::io
