#include "optim/optim.h"

#include <cmath>
#include <set>

#include "tensor/grad_mode.h"
#include "tensor/error.h"
#include "tensor/shape.h"

namespace heed::optim {

nn::NamedTensors numbered(const TensorList& params) {
  nn::NamedTensors named;
  named.reserve(params.size());
  for (size_t i = 0; i < params.size(); ++i) named.emplace_back(std::to_string(i), params[i]);
  return named;
}

void check_parameter_list(const std::string& who, const nn::NamedTensors& params) {
  std::set<std::string> names;
  std::set<const void*> seen;
  for (const auto& [name, p] : params) {
    HEED_CHECK(p.defined(), "{}: parameter '{}' is an undefined tensor", who, name);
    HEED_CHECK(p.is_floating_point(), "{}: parameter '{}' must be a float dtype (float32, float64 or bfloat16), got {} {}",
               who, name, shape_str(p.shape()), p.dtype());
    HEED_CHECK(names.insert(name).second, "{}: two parameters are named '{}'", who, name);
    HEED_CHECK(seen.insert(p.impl()).second, "{}: parameter '{}' is given twice (the same tensor under two names)", who,
               name);
  }
}

bool is_step_count(double v) { return v >= 0 && v == std::floor(v) && v < 9.0e15; }

namespace {
void check_lr(const std::string& who, double lr) {
  HEED_CHECK(!std::isnan(lr), "{}: no lr was given (SGD has no default; set the options' lr)", who);
  HEED_CHECK(std::isfinite(lr) && lr >= 0, "{}: lr must be a finite number >= 0, got {}", who, lr);
}
}  // namespace

// ---- Optimizer ---------------------------------------------------------------

Optimizer::Optimizer(const nn::NamedTensors& params, double lr, std::string type_name)
    : type_name_(std::move(type_name)), params_(params), lr_(lr), param_steps_(params.size(), 0) {
  check_lr(type_name_, lr);
  check_parameter_list(type_name_, params_);
}

Optimizer::Optimizer(const TensorList& params, double lr, std::string type_name)
    : Optimizer(numbered(params), lr, std::move(type_name)) {}

void Optimizer::set_lr(double lr) {
  check_lr(type_name_, lr);
  lr_ = lr;
}

void Optimizer::step() {
  NoGradGuard no_grad;
  ++step_count_;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i].second;
    const Tensor& g = p.grad();
    if (!g.defined()) continue;
    HEED_CHECK(g.shape() == p.shape() && g.dtype() == p.dtype(),
               "{}: the gradient of '{}' is {} {} but the parameter is {} {}", type_name_, params_[i].first,
               shape_str(g.shape()), g.dtype(), shape_str(p.shape()), p.dtype());
    // State made before the model moved (model.to(kCUDA) after the optimizer
    // was built) follows its parameter, once.
    for (auto& [kind, tensors] : state_)
      if (tensors[i].device() != p.device()) tensors[i] = to_device(tensors[i], p.device());
    update(i, p, g, ++param_steps_[i]);
  }
}

void Optimizer::zero_grad() {
  for (auto& [name, p] : params_) p.zero_grad();
}

void Optimizer::add_state(const std::string& kind) {
  TensorList tensors;
  tensors.reserve(params_.size());
  for (const auto& [name, p] : params_) tensors.push_back(zeros(p.shape(), p.dtype(), p.device()));
  state_.emplace_back(kind, std::move(tensors));
}

Tensor& Optimizer::state_of(const std::string& kind, size_t i) {
  for (auto& [k, tensors] : state_)
    if (k == kind) return tensors.at(i);
  HEED_FAIL("{}: no state named '{}'", type_name_, kind);
}

nn::NamedTensors Optimizer::state() const {
  nn::NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i)
    for (const auto& [kind, tensors] : state_) out.emplace_back(kind + "." + params_[i].first, tensors[i]);
  return out;
}

std::map<std::string, double> Optimizer::scalars() const {
  std::map<std::string, double> out{{"lr", lr_}, {"step", static_cast<double>(step_count_)}};
  for (size_t i = 0; i < params_.size(); ++i)
    out["step." + params_[i].first] = static_cast<double>(param_steps_[i]);
  return out;
}

void Optimizer::check_state(const nn::NamedTensors& tensors, const std::map<std::string, double>& scalars,
                            std::vector<std::string>& problems) const {
  nn::compare_named_tensors("optimizer", state(), tensors, problems);
  // The same keys as scalars(); the lr valid, the steps whole.
  const std::map<std::string, double> mine = this->scalars();
  for (const auto& [key, value] : mine) {
    auto it = scalars.find(key);
    if (it == scalars.end()) {
      problems.push_back(fmt::format("optimizer: missing scalar '{}'", key));
      continue;
    }
    const double v = it->second;
    if (key == "lr" ? !(std::isfinite(v) && v >= 0) : !is_step_count(v))
      problems.push_back(fmt::format(
          "optimizer: scalar '{}' = {} is not valid ({})", key, v,
          key == "lr" ? "an lr is a finite number >= 0" : "a step count is a whole number >= 0"));
  }
  for (const auto& [key, value] : scalars)
    if (!mine.count(key)) problems.push_back(fmt::format("optimizer: unexpected scalar '{}'", key));
}

void Optimizer::load_state(const nn::NamedTensors& tensors, const std::map<std::string, double>& scalars) {
  std::vector<std::string> problems;
  check_state(tensors, scalars, problems);
  HEED_CHECK(problems.empty(), "{}::load_state: the saved state does not fit this optimizer ({}):{}", type_name_,
             nn::count_problems(problems), nn::list_problems(problems));
  load_checked_state(tensors, scalars);
}

void Optimizer::load_checked_state(const nn::NamedTensors& tensors, const std::map<std::string, double>& scalars) {
  nn::copy_named_tensors(state(), tensors);  // state() holds handles to the state tensors
  lr_ = scalars.at("lr");
  step_count_ = static_cast<int64_t>(scalars.at("step"));
  for (size_t i = 0; i < params_.size(); ++i)
    param_steps_[i] = static_cast<int64_t>(scalars.at("step." + params_[i].first));
}

// ---- SGD ---------------------------------------------------------------------

SGD::SGD(const nn::NamedTensors& params, const SGDOptions& options)
    : Optimizer(params, options.lr, "SGD"), options_(options) {
  init();
}

SGD::SGD(const TensorList& params, const SGDOptions& options) : SGD(numbered(params), options) {}

void SGD::init() {
  const SGDOptions& o = options_;
  HEED_CHECK(o.momentum >= 0, "SGD: momentum must be >= 0, got {}", o.momentum);
  HEED_CHECK(o.weight_decay >= 0, "SGD: weight_decay must be >= 0, got {}", o.weight_decay);
  HEED_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
             "SGD: nesterov needs momentum > 0 and dampening = 0, got momentum={} dampening={}", o.momentum,
             o.dampening);
  if (o.momentum != 0) add_state("momentum_buffer");
}

void SGD::update(size_t i, Tensor& param, const Tensor& grad, int64_t step) {
  const SGDOptions& o = options_;
  Tensor g = o.maximize ? neg(grad) : grad;
  if (o.weight_decay != 0) g = add(g, param, o.weight_decay);
  if (o.momentum != 0) {
    Tensor& buf = state_of("momentum_buffer", i);
    if (step == 1) {
      buf.copy_(g);  // the first step takes the gradient as it is, without dampening
    } else {
      buf.mul_(o.momentum);
      buf.add_(g, 1.0 - o.dampening);
    }
    g = o.nesterov ? add(g, buf, o.momentum) : buf;
  }
  param.add_(g, -lr());
}

// ---- Adam, AdamW -------------------------------------------------------------

namespace {
void check_adam(const std::string& who, double beta1, double beta2, double eps, double weight_decay) {
  HEED_CHECK(beta1 >= 0 && beta1 < 1, "{}: beta1 must be in [0, 1), got {}", who, beta1);
  HEED_CHECK(beta2 >= 0 && beta2 < 1, "{}: beta2 must be in [0, 1), got {}", who, beta2);
  HEED_CHECK(eps >= 0, "{}: eps must be >= 0, got {}", who, eps);
  HEED_CHECK(weight_decay >= 0, "{}: weight_decay must be >= 0, got {}", who, weight_decay);
}

AdamOptions without_weight_decay(const AdamWOptions& o) {
  return AdamOptions{o.lr, o.beta1, o.beta2, o.eps, /*weight_decay=*/0, o.maximize};
}
}  // namespace

Adam::Adam(const nn::NamedTensors& params, const AdamOptions& options) : Adam(params, options, 0.0, "Adam") {}

Adam::Adam(const TensorList& params, const AdamOptions& options) : Adam(numbered(params), options) {}

Adam::Adam(const nn::NamedTensors& params, const AdamOptions& options, double decoupled_weight_decay,
           std::string name)
    : Optimizer(params, options.lr, name), options_(options), decoupled_weight_decay_(decoupled_weight_decay) {
  check_adam(name, options.beta1, options.beta2, options.eps,
             decoupled_weight_decay != 0 ? decoupled_weight_decay : options.weight_decay);
  add_state("exp_avg");
  add_state("exp_avg_sq");
}

void Adam::update(size_t i, Tensor& param, const Tensor& grad, int64_t step) {
  const AdamOptions& o = options_;
  const double lr = this->lr();
  Tensor& m = state_of("exp_avg", i);
  Tensor& v = state_of("exp_avg_sq", i);
  const double t = static_cast<double>(step);
  const double bias_correction1 = 1.0 - std::pow(o.beta1, t);
  const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(o.beta2, t));
  // One pass per parameter through the fused kernel (tensor/adam_rule.h has the arithmetic).
  adam_step_(param, grad, m, v,
             AdamStepArgs{lr, o.beta1, o.beta2, o.eps, o.weight_decay, decoupled_weight_decay_, bias_correction1,
                          bias_correction2_sqrt, o.maximize});
}

AdamW::AdamW(const nn::NamedTensors& params, const AdamWOptions& options)
    : Adam(params, without_weight_decay(options), options.weight_decay, "AdamW"), options_(options) {}

AdamW::AdamW(const TensorList& params, const AdamWOptions& options) : AdamW(numbered(params), options) {}

}  // namespace heed::optim
