#pragma once
// Optimizers, as torch::optim: SGD, Adam, AdamW, with PyTorch 1.13's update
// rules (docs/optim.md gives them). An optimizer holds handles to the
// parameters it was given and updates their data in place, under
// NoGradGuard, so a module's own handles see the new values and no autograd
// history is recorded.
//
//   heed::optim::AdamW opt(model.named_parameters(), {/*lr=*/3e-4});
//   loss.backward();
//   opt.step();       // parameters whose grad is undefined are skipped
//   opt.zero_grad();
//
// Checkpoints: state() gives every state tensor by name ("exp_avg.<param>",
// "exp_avg_sq.<param>", "momentum_buffer.<param>"), scalars() the lr and the
// step counts; load_state() checks both against this optimizer and copies
// them in.
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "nn/module.h"

namespace heed::optim {

class Optimizer {
 public:
  // Names key the state; a TensorList gets the names "0", "1", ... Every
  // tensor must be a defined float tensor, each given once.
  Optimizer(const nn::NamedTensors& params, double lr, std::string type_name);
  Optimizer(const TensorList& params, double lr, std::string type_name);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient. The base class counts
  // the step and calls update() per parameter under NoGradGuard.
  virtual void step();
  // Clears every parameter's gradient (sets it to undefined, so the next
  // step skips a parameter that gets none).
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr);
  // Optimizer steps taken so far (0 before the first).
  int64_t step_count() const { return step_count_; }
  const std::string& type_name() const { return type_name_; }
  const nn::NamedTensors& named_parameters() const { return params_; }

  // Every state tensor under "<kind>.<param name>", in parameter order.
  nn::NamedTensors state() const;
  // "lr", "step" (step_count) and "step.<param name>": the steps each
  // parameter has been updated (less than "step" for one that sometimes had
  // no gradient; Adam's bias correction uses it, as PyTorch's per-parameter
  // step does).
  std::map<std::string, double> scalars() const;
  // Checks a saved state against this optimizer and changes nothing: appends
  // one line per problem, each starting "optimizer: " (a tensor name missing,
  // unexpected or given twice, a shape or dtype that differs, as
  // nn::compare_named_tensors; a scalar missing or unexpected, an lr that is
  // not a finite number >= 0, a step count that is_step_count refuses).
  void check_state(const nn::NamedTensors& tensors, const std::map<std::string, double>& scalars,
                   std::vector<std::string>& problems) const;
  // Copies a saved state in. Throws heed::Error listing every problem
  // check_state finds; nothing is changed then.
  void load_state(const nn::NamedTensors& tensors, const std::map<std::string, double>& scalars);
  // Copies a state in that check_state has found fitting, without checking
  // it again (io::restore checks a whole run first, then loads it).
  void load_checked_state(const nn::NamedTensors& tensors, const std::map<std::string, double>& scalars);

 protected:
  // Adds a state tensor (zeros shaped like parameter i) named kind.<name>.
  void add_state(const std::string& kind);
  // State tensor `kind` of parameter i (a handle; update it in place).
  Tensor& state_of(const std::string& kind, size_t i);
  // Updates parameter i in place from its gradient (defined, same shape);
  // `step` is this parameter's own step count, already incremented (1 first).
  virtual void update(size_t i, Tensor& param, const Tensor& grad, int64_t step) = 0;

 private:
  std::string type_name_;
  nn::NamedTensors params_;
  double lr_;
  int64_t step_count_ = 0;
  std::vector<int64_t> param_steps_;
  // kind -> one tensor per parameter.
  std::vector<std::pair<std::string, TensorList>> state_;
};

struct SGDOptions {
  double lr = std::numeric_limits<double>::quiet_NaN();  // required: SGD has no default lr
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;  // L2: added to the gradient
  bool nesterov = false;
  bool maximize = false;
};

// g = (maximize ? -grad : grad) + weight_decay * p; with momentum the buffer
// is g at a parameter's first step, then momentum * buf + (1 - dampening) * g;
// the direction is g + momentum * buf (Nesterov) or buf; p -= lr * direction.
// State "momentum_buffer" only when momentum != 0.
class SGD : public Optimizer {
 public:
  SGD(const nn::NamedTensors& params, const SGDOptions& options);
  SGD(const TensorList& params, const SGDOptions& options);
  const SGDOptions& options() const { return options_; }

 protected:
  void update(size_t i, Tensor& param, const Tensor& grad, int64_t step) override;

 private:
  void init();
  SGDOptions options_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;  // L2: added to the gradient
  bool maximize = false;
};

// With t the parameter's step: g = (maximize ? -grad : grad) + weight_decay * p;
// m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
// p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
// Note eps is added after the bias correction of sqrt(v), as in PyTorch.
// State "exp_avg" (m) and "exp_avg_sq" (v).
class Adam : public Optimizer {
 public:
  Adam(const nn::NamedTensors& params, const AdamOptions& options = {});
  Adam(const TensorList& params, const AdamOptions& options = {});
  const AdamOptions& options() const { return options_; }

 protected:
  Adam(const nn::NamedTensors& params, const AdamOptions& options, double decoupled_weight_decay, std::string name);
  void update(size_t i, Tensor& param, const Tensor& grad, int64_t step) override;

 private:
  AdamOptions options_;
  double decoupled_weight_decay_ = 0;  // AdamW's weight decay
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  // decoupled: p *= 1 - lr * weight_decay before the Adam update
  bool maximize = false;
};

// Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr * wd,
// then the Adam update without any L2 term in the gradient.
class AdamW : public Adam {
 public:
  AdamW(const nn::NamedTensors& params, const AdamWOptions& options = {});
  AdamW(const TensorList& params, const AdamWOptions& options = {});
  // AdamW's own options (through an Adam&, options() shows weight_decay 0:
  // the decay is decoupled, not L2).
  const AdamWOptions& options() const { return options_; }

 private:
  AdamWOptions options_;
};

// "0", "1", ... for a plain list of tensors.
nn::NamedTensors numbered(const TensorList& params);

// The parameters an optimizer or an average is given: every tensor defined
// and of a float dtype, each name and each tensor once. Throws heed::Error
// naming `who` and the parameter otherwise.
void check_parameter_list(const std::string& who, const nn::NamedTensors& params);

// Whether a saved count (a step, in a checkpoint's float64 attribute) is one:
// a whole number >= 0, small enough that the double holds it exactly.
bool is_step_count(double v);

}  // namespace heed::optim
