// Reference ops of training: cross_entropy, adam, adamw, sgd, clip_grad_norm, lr_schedule.
#include <map>
#include <memory>
#include <vector>

#include "optim/clip_grad.h"
#include "nn/loss.h"
#include "optim/lr_schedule.h"
#include "optim/optim.h"
#include "tensor/error.h"
#include "tests/reference/case.h"

namespace heed::reference {
namespace {

nn::Reduction reduction(const std::string& name) {
  if (name == "mean") return nn::Reduction::Mean;
  if (name == "sum") return nn::Reduction::Sum;
  if (name == "none") return nn::Reduction::None;
  HEED_FAIL("cross_entropy: unknown reduction \"{}\"", name);
}

void cross_entropy(RefCase& c) {
  nn::CrossEntropyOptions o;
  o.ignore_index = c.attr_int("ignore_index");
  o.label_smoothing = c.attr_double("label_smoothing");
  o.reduction = reduction(c.attr_string("reduction"));
  Tensor logits = c.input("logits");
  HEED_CHECK(logits.size(-1) == c.attr_int("num_classes"), "cross_entropy: logits {} do not have num_classes {}",
             logits.size(-1), c.attr_int("num_classes"));
  c.out("loss", nn::cross_entropy(logits, c.input("target"), o));
}
HEED_REFERENCE_OP("cross_entropy", cross_entropy);

// Runs `steps` optimizer steps from params/* with the gradients
// inputs/grads/<name>[t - 1], recording every parameter after each step and
// the named state kinds after the last one.
void run_optimizer(RefCase& c, const std::function<std::unique_ptr<optim::Optimizer>(const nn::NamedTensors&)>& make,
                   const std::vector<std::string>& state_kinds) {
  HEED_CHECK(!c.has_attr("amsgrad") || c.attr_int("amsgrad") == 0, "{}: amsgrad is not supported", c.op());
  nn::NamedTensors params;
  for (auto& [name, p0] : c.params()) params.emplace_back(name, p0.detach().clone().requires_grad_());
  std::map<std::string, Tensor> grads;
  for (auto& [name, g] : c.inputs_under("grads")) grads[name] = g;
  auto opt = make(params);
  const int64_t steps = c.attr_int("steps");
  std::map<std::string, TensorList> history;
  for (int64_t t = 1; t <= steps; ++t) {
    for (auto& [name, p] : params) {
      HEED_CHECK(grads.count(name), "{}: no inputs/grads/{} for parameter {}", c.op(), name, name);
      p.mutable_grad() = grads[name].select(0, t - 1).clone();
    }
    opt->step();
    for (auto& [name, p] : params) history[name].push_back(p.detach().clone());
  }
  for (auto& [name, list] : history) c.out("params/" + name, stack(list, 0));
  for (auto& [key, tensor] : opt->state()) {
    const auto dot = key.find('.');
    const std::string kind = key.substr(0, dot);
    for (const auto& wanted : state_kinds)
      if (kind == wanted) c.out(kind + "/" + key.substr(dot + 1), tensor);
  }
}

// Adam and AdamW read the same attributes into options of the same fields.
template <class Options>
Options adam_options(RefCase& c) {
  Options o;
  o.lr = c.attr_double("lr");
  o.beta1 = c.attr_double("beta1");
  o.beta2 = c.attr_double("beta2");
  o.eps = c.attr_double("eps");
  o.weight_decay = c.attr_double("weight_decay");
  o.maximize = c.attr_bool("maximize");
  return o;
}

void adam(RefCase& c) {
  const auto o = adam_options<optim::AdamOptions>(c);
  run_optimizer(c, [&](const nn::NamedTensors& p) { return std::make_unique<optim::Adam>(p, o); },
                {"exp_avg", "exp_avg_sq"});
}
HEED_REFERENCE_OP("adam", adam);

void adamw(RefCase& c) {
  const auto o = adam_options<optim::AdamWOptions>(c);
  run_optimizer(c, [&](const nn::NamedTensors& p) { return std::make_unique<optim::AdamW>(p, o); },
                {"exp_avg", "exp_avg_sq"});
}
HEED_REFERENCE_OP("adamw", adamw);

void sgd(RefCase& c) {
  optim::SGDOptions o;
  o.lr = c.attr_double("lr");
  o.momentum = c.attr_double("momentum");
  o.dampening = c.attr_double("dampening");
  o.weight_decay = c.attr_double("weight_decay");
  o.nesterov = c.attr_bool("nesterov");
  o.maximize = c.attr_bool("maximize");
  run_optimizer(c, [&](const nn::NamedTensors& p) { return std::make_unique<optim::SGD>(p, o); },
                {"momentum_buffer"});
}
HEED_REFERENCE_OP("sgd", sgd);

void clip_grad_norm(RefCase& c) {
  TensorList params;
  std::vector<std::string> names;
  for (auto& [name, g] : c.inputs_under("grads")) {
    Tensor p = zeros_like(g).requires_grad_();
    p.mutable_grad() = g.clone();
    params.push_back(p);
    names.push_back(name);
  }
  const double total = optim::clip_grad_norm(params, c.attr_double("max_norm"), c.attr_double("norm_type"));
  c.out("total_norm", scalar_tensor(total, DType::Float32));
  for (size_t i = 0; i < params.size(); ++i) c.out("clipped_grads/" + names[i], params[i].grad());
}
HEED_REFERENCE_OP("clip_grad_norm", clip_grad_norm);

void lr_schedule(RefCase& c) {
  const std::string kind = c.attr_string("schedule");
  std::function<double(int64_t)> lr_at;
  if (kind == "noam") {
    optim::NoamOptions o{c.attr_int("d_model"), c.attr_int("warmup_steps"), c.attr_double("factor")};
    lr_at = [o](int64_t s) { return optim::noam_lr(o, s); };
  } else if (kind == "warmup_cosine") {
    optim::WarmupCosineOptions o{c.attr_double("base_lr"), c.attr_double("min_lr"), c.attr_int("warmup_steps"),
                                 c.attr_int("total_steps")};
    lr_at = [o](int64_t s) { return optim::warmup_cosine_lr(o, s); };
  } else {
    HEED_FAIL("lr_schedule: unknown schedule \"{}\"", kind);
  }
  std::vector<double> lrs;
  for (int64_t s : c.input("steps").to_vector<int64_t>()) lrs.push_back(lr_at(s));
  c.out("lr", from_vector<double>(lrs).to(DType::Float32));
}
HEED_REFERENCE_OP("lr_schedule", lr_schedule);

}  // namespace
}  // namespace heed::reference
